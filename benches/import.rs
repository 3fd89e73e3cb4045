//! Bulk import: pre-hashed users into a fresh directory file beside the same rows into SQLite,
//! and plaintext import throughput against the limit `cores / time of one argon2id hash`.
//!
//! Run: `cargo bench --bench import -- --warm-up-time 1 --measurement-time 3`
//!
//! * `prehashed/userdir` imports `IMPORT_BENCH_USERS` (default 100,000) users, each with a
//!   username, email, names, a role, an insert instant and one OWASP argon2id PHC string, into
//!   a fresh directory file with `Durability::Immediate` (one transaction, fsync on commit).
//! * `prehashed/sqlite` inserts the same rows into a fresh SQLite file (rusqlite, bundled) in
//!   one transaction, WAL with `synchronous = FULL` (durable commit, like `Immediate`), with the
//!   indexes userdir keeps: `id` primary key, `username TEXT UNIQUE COLLATE NOCASE`, `email TEXT
//!   UNIQUE`, `external_id TEXT UNIQUE`, an index on the insert instant and a (role, user)
//!   table. SQLite does no validation and folds ASCII case only; userdir validates every row and
//!   keys usernames by their full Unicode caseless form.
//! * `plaintext/import` imports `IMPORT_BENCH_PLAIN` (default 64) users with plaintext
//!   passwords, hashed with OWASP argon2id (m = 19456 KiB, t = 2, p = 1) on all cores;
//!   `plaintext/one_hash` is one such hash.
//!
//! A paired summary follows criterion's figures: the measurements run in turn, round after
//! round, so that the load of a shared machine affects them alike; it prints the medians (and
//! those of userdir's phases, from `ImportSummary::timings`), the userdir:SQLite ratio (also
//! against SQLite with only the id, username and email indexes the issue names), the fraction
//! of the hashing limit reached, and the import against bare parallel hashing of the same
//! number of passwords (the limit as the loaded machine allows it in that moment).
//! `IMPORT_BENCH_PAIRS` sets the number of rounds (default 5); `-- paired` skips criterion's
//! own measurements and runs only the summary.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rayon::prelude::*;
use rusqlite::{Connection, params};
use userdir::{
    Argon2Params, Directory, Durability, Hasher, ImportBatch, ImportTimings, NewUser, StoredHash,
};
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    id: Uuid,
    username: String,
    email: String,
    first: &'static str,
    last: String,
    role: &'static str,
    insert_instant: i64,
}

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            id: Uuid::new_v4(),
            username: format!("user{i:07}"),
            email: format!("user{i:07}@example.com"),
            first: "Given",
            last: format!("Family{}", i % 1000),
            role: if i % 100 == 0 { "admin" } else { "member" },
            insert_instant: 1_331_449_200_000 + i64::try_from(i).unwrap(),
        })
        .collect()
}

fn new_users(rows: &[Row], hash: &StoredHash) -> Vec<NewUser> {
    rows.iter()
        .map(|r| {
            NewUser::with_username(&r.username)
                .id(r.id)
                .email(&r.email)
                .first_name(r.first)
                .last_name(&r.last)
                .role(r.role)
                .insert_instant(r.insert_instant)
                .password_hash(hash.clone())
        })
        .collect()
}

fn open_dir(path: &Path, params: Argon2Params) -> Directory {
    Directory::builder()
        .hasher(params)
        .durability(Durability::Immediate)
        .open(path)
        .unwrap()
}

fn userdir_import(path: &Path, users: Vec<NewUser>) -> (Duration, ImportTimings) {
    let dir = open_dir(path, Argon2Params::owasp());
    let n = users.len();
    let t = Instant::now();
    let s = dir.import(ImportBatch::new(users)).unwrap();
    let took = t.elapsed();
    assert_eq!(s.imported, n);
    (took, s.timings)
}

fn sqlite_open(path: &Path, minimal: bool) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    if minimal {
        c.execute_batch(
            "CREATE TABLE users (
                id BLOB PRIMARY KEY,
                username TEXT UNIQUE COLLATE NOCASE,
                email TEXT UNIQUE,
                first_name TEXT,
                last_name TEXT,
                active INTEGER NOT NULL,
                password TEXT,
                insert_instant INTEGER NOT NULL
            );",
        )
        .unwrap();
        return c;
    }
    c.execute_batch(
        "CREATE TABLE users (
            id BLOB PRIMARY KEY,
            username TEXT UNIQUE COLLATE NOCASE,
            email TEXT UNIQUE,
            external_id TEXT UNIQUE,
            first_name TEXT,
            last_name TEXT,
            active INTEGER NOT NULL,
            password TEXT,
            insert_instant INTEGER NOT NULL
        );
        CREATE INDEX users_inserted ON users (insert_instant);
        CREATE TABLE user_roles (role TEXT NOT NULL, user_id BLOB NOT NULL,
            PRIMARY KEY (role, user_id)) WITHOUT ROWID;",
    )
    .unwrap();
    c
}

fn sqlite_import(path: &Path, rows: &[Row], hash: &str, minimal: bool) -> Duration {
    let mut c = sqlite_open(path, minimal);
    let t = Instant::now();
    let tx = c.transaction().unwrap();
    {
        let mut user = tx
            .prepare(
                "INSERT INTO users (id, username, email, first_name, last_name, active, password,
                 insert_instant) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
            )
            .unwrap();
        let mut role = (!minimal).then(|| {
            tx.prepare("INSERT INTO user_roles (role, user_id) VALUES (?1, ?2)")
                .unwrap()
        });
        for r in rows {
            let email = r.email.to_lowercase();
            user.execute(params![
                r.id.as_bytes(),
                r.username,
                email,
                r.first,
                r.last,
                hash,
                r.insert_instant
            ])
            .unwrap();
            if let Some(role) = &mut role {
                role.execute(params![r.role, r.id.as_bytes()]).unwrap();
            }
        }
    }
    tx.commit().unwrap();
    t.elapsed()
}

fn plaintext_rows(n: usize) -> Vec<NewUser> {
    (0..n)
        .map(|i| {
            NewUser::with_username(format!("plain{i}"))
                .password(format!("correct horse battery staple {i}"))
        })
        .collect()
}

fn plaintext_import(users: Vec<NewUser>) -> Duration {
    let dir = Directory::builder()
        .hasher(Argon2Params::owasp())
        .durability(Durability::Eventual)
        .in_memory()
        .unwrap();
    let t = Instant::now();
    dir.import(ImportBatch::new(users)).unwrap();
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let n = env("IMPORT_BENCH_USERS", 100_000);
    let plain = env("IMPORT_BENCH_PLAIN", 64);
    let owasp = Hasher::new(Argon2Params::owasp(), None).unwrap();
    let hash = owasp.hash("correct horse battery staple").unwrap();
    let rows = rows(n);

    let mut g = c.benchmark_group("prehashed");
    g.sample_size(10);
    g.bench_function(format!("userdir_{n}"), |b| {
        b.iter_batched(
            || (tempfile::tempdir().unwrap(), new_users(&rows, &hash)),
            |(tmp, users)| {
                userdir_import(&tmp.path().join("u.redb"), users);
                tmp
            },
            BatchSize::PerIteration,
        );
    });
    g.bench_function(format!("sqlite_{n}"), |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |tmp| {
                sqlite_import(&tmp.path().join("u.sqlite"), &rows, hash.expose(), false);
                tmp
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();

    let mut g = c.benchmark_group("plaintext");
    g.sample_size(10);
    g.bench_function("one_hash_owasp", |b| {
        b.iter(|| {
            owasp
                .hash(black_box("correct horse battery staple"))
                .unwrap()
        });
    });
    g.bench_function(format!("import_{plain}_owasp"), |b| {
        b.iter_batched(
            || plaintext_rows(plain),
            plaintext_import,
            BatchSize::PerIteration,
        );
    });
    g.finish();

    paired_summary(n, plain, &rows, &hash, &owasp);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn paired_summary(n: usize, plain: usize, rows: &[Row], hash: &StoredHash, owasp: &Hasher) {
    let pairs = env("IMPORT_BENCH_PAIRS", 5);
    let (mut ud, mut sq, mut sqm, mut one, mut pt, mut raw) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for _ in 0..pairs {
        let tmp = tempfile::tempdir().unwrap();
        let (took, t) = userdir_import(&tmp.path().join("u.redb"), new_users(rows, hash));
        ud.push(took);
        for (all, d) in phases
            .iter_mut()
            .zip([t.validate, t.sort, t.insert, t.commit])
        {
            all.push(d);
        }
        sq.push(sqlite_import(
            &tmp.path().join("u.sqlite"),
            rows,
            hash.expose(),
            false,
        ));
        sqm.push(sqlite_import(
            &tmp.path().join("min.sqlite"),
            rows,
            hash.expose(),
            true,
        ));
        let passwords: Vec<String> = (0..plain).map(|i| format!("pw {i}")).collect();
        let t = Instant::now();
        passwords.par_iter().for_each(|p| {
            black_box(owasp.hash(p).unwrap());
        });
        raw.push(t.elapsed());
        let mut hashes = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            black_box(owasp.hash("correct horse battery staple").unwrap());
            hashes.push(t.elapsed());
        }
        one.push(median(hashes));
        pt.push(plaintext_import(plaintext_rows(plain)));
    }
    let (ud, sq, sqm, one, pt, raw) = (
        median(ud),
        median(sq),
        median(sqm),
        median(one),
        median(pt),
        median(raw),
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rate = |d: Duration, k: usize| k as f64 / d.as_secs_f64();
    let limit = cores as f64 / one.as_secs_f64();
    println!("\npaired summary ({pairs} rounds; medians)");
    println!(
        "  pre-hashed import, {n} users, durable:  userdir {:>8.3} s ({:>7.0} users/s)",
        ud.as_secs_f64(),
        rate(ud, n)
    );
    let [validate, sort, insert, commit] = phases.map(median);
    println!(
        "    phases (medians): validate {:.3} s, sort {:.3} s, insert {:.3} s, commit {:.3} s",
        validate.as_secs_f64(),
        sort.as_secs_f64(),
        insert.as_secs_f64(),
        commit.as_secs_f64()
    );
    println!(
        "                                           sqlite  {:>8.3} s ({:>7.0} users/s)",
        sq.as_secs_f64(),
        rate(sq, n)
    );
    println!(
        "  userdir:sqlite time ratio:              {:>8.3} (userdir {:.2}x faster)",
        ud.as_secs_f64() / sq.as_secs_f64(),
        sq.as_secs_f64() / ud.as_secs_f64()
    );
    println!(
        "  sqlite, only id + username + email indexes: {:>6.3} s ({:>7.0} users/s); userdir:sqlite time ratio {:.2}",
        sqm.as_secs_f64(),
        rate(sqm, n),
        ud.as_secs_f64() / sqm.as_secs_f64()
    );
    println!(
        "  one argon2id hash (OWASP):              {:>8.1} ms; limit {cores} cores / hash = {limit:.1} users/s",
        one.as_secs_f64() * 1e3
    );
    println!(
        "  plaintext import, {plain} users:            {:>8.3} s = {:.1} users/s = {:.1}% of the limit",
        pt.as_secs_f64(),
        rate(pt, plain),
        100.0 * rate(pt, plain) / limit
    );
    println!(
        "  bare parallel hashing of {plain} passwords (rayon, no import): {:.3} s; import reaches {:.1}% of it",
        raw.as_secs_f64(),
        100.0 * raw.as_secs_f64() / pt.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
