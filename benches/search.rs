//! Search at scale, beside SQLite on the same data.
//!
//! ```text
//! cargo bench --bench search -- --warm-up-time 1 --measurement-time 3
//! USERDIR_BENCH_USERS=1000000 cargo bench --bench search -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Builds one directory file (100k users by default, `USERDIR_BENCH_USERS` to change; no
//! passwords, `Durability::Eventual`) and one SQLite file with the same rows and the indexes a
//! SQLite user would create (a `NOCASE` unique username index, the roles table index, the
//! insert-instant index). Each query returns the first page of 20 users *and* the total count,
//! in both engines.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, params};
use userdir::query::{Search, SortField};
use userdir::{Argon2Params, Directory, Durability, NewUser};
use uuid::Uuid;

const LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Nguyen", "Hill",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Row {
    id: Uuid,
    username: String,
    email: String,
    last: &'static str,
    role: String,
    inserted: i64,
}

fn rows(n: usize) -> Vec<Row> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    (0..n)
        .map(|i| {
            let len = 3 + rng.below(6);
            let name: String = (0..len)
                .map(|_| char::from(b'a' + u8::try_from(rng.below(26)).unwrap()))
                .collect();
            Row {
                id: Uuid::from_u128(u128::from(rng.next()) << 64 | i as u128),
                username: format!("{name}{i}"),
                email: format!("user{i}@example.com"),
                last: LAST[rng.below(LAST.len() as u64) as usize],
                role: format!("role{}", rng.below(10)),
                inserted: 1_600_000_000_000 + i as i64,
            }
        })
        .collect()
}

fn build_userdir(path: &std::path::Path, rows: &[Row]) -> Directory {
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .durability(Durability::Eventual)
        .open(path)
        .unwrap();
    for chunk in rows.chunks(20_000) {
        let prepared: Vec<_> = chunk
            .iter()
            .map(|r| {
                dir.prepare(
                    NewUser::with_username(&r.username)
                        .id(r.id)
                        .email(&r.email)
                        .last_name(r.last)
                        .role(&r.role)
                        .insert_instant(r.inserted),
                )
                .unwrap()
            })
            .collect();
        dir.write(|tx| {
            for p in prepared {
                tx.create(p)?;
            }
            Ok(())
        })
        .unwrap();
    }
    dir
}

fn build_sqlite(path: &std::path::Path, rows: &[Row]) -> Connection {
    let mut c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         CREATE TABLE users(id BLOB PRIMARY KEY, username TEXT COLLATE NOCASE UNIQUE,
                            email TEXT UNIQUE, last_name TEXT, insert_instant INTEGER NOT NULL,
                            active INTEGER NOT NULL, version INTEGER NOT NULL);
         CREATE TABLE roles(role TEXT NOT NULL, user_id BLOB NOT NULL, PRIMARY KEY(role, user_id))
            WITHOUT ROWID;
         CREATE INDEX users_inserted ON users(insert_instant, id);",
    )
    .unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut u = tx
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, 1, 1)")
            .unwrap();
        let mut r = tx.prepare("INSERT INTO roles VALUES (?1, ?2)").unwrap();
        for row in rows {
            let id = row.id.as_bytes().to_vec();
            u.execute(params![id, row.username, row.email, row.last, row.inserted])
                .unwrap();
            r.execute(params![row.role, id]).unwrap();
        }
    }
    tx.commit().unwrap();
    c.execute_batch("ANALYZE;").unwrap();
    c
}

type SqlRow = (Vec<u8>, String, String, Option<String>, i64);

fn sql_page(c: &Connection, page_sql: &str, count_sql: &str) -> (Vec<SqlRow>, i64) {
    let mut st = c.prepare_cached(page_sql).unwrap();
    let page: Vec<SqlRow> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut st = c.prepare_cached(count_sql).unwrap();
    let total: i64 = st.query_row([], |r| r.get(0)).unwrap();
    (page, total)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("USERDIR_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let data = rows(n);
    let t = std::time::Instant::now();
    let dir = build_userdir(&tmp.path().join("users.redb"), &data);
    eprintln!("userdir: {n} users loaded in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let sql = build_sqlite(&tmp.path().join("users.sqlite"), &data);
    eprintln!("sqlite: {n} users loaded in {:?}", t.elapsed());
    let probe = &data[n / 2].username;

    let mut g = c.benchmark_group(format!("search_{n}"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let s = Search::filter(&format!(r#"userName eq "{}""#, probe.to_uppercase())).unwrap();
    assert_eq!(dir.search(&s).unwrap().total, 1);
    g.bench_function("userdir/userName_eq", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });

    let s = Search::filter(r#"userName sw "ab""#).unwrap().limit(20);
    let ours = dir.search(&s).unwrap();
    let theirs = sql_page(
        &sql,
        "SELECT id, username, email, last_name, insert_instant FROM users \
         WHERE username LIKE 'ab%' ORDER BY id LIMIT 20",
        "SELECT COUNT(*) FROM users WHERE username LIKE 'ab%'",
    );
    assert_eq!(ours.total, u64::try_from(theirs.1).unwrap());
    eprintln!("userName sw \"ab\": {} matches", ours.total);
    g.bench_function("userdir/userName_sw_ab_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/userName_sw_ab_page20", |b| {
        b.iter(|| {
            black_box(sql_page(
                &sql,
                "SELECT id, username, email, last_name, insert_instant FROM users \
                 WHERE username LIKE 'ab%' ORDER BY id LIMIT 20",
                "SELECT COUNT(*) FROM users WHERE username LIKE 'ab%'",
            ))
        });
    });

    let s = Search::filter(r#"role eq "role3""#).unwrap().limit(20);
    eprintln!(
        "role eq \"role3\": {} matches",
        dir.search(&s).unwrap().total
    );
    g.bench_function("userdir/role_eq_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });

    let s = Search::filter(r#"name.familyName co "son""#)
        .unwrap()
        .limit(20);
    let ours = dir.search(&s).unwrap();
    let full_page = "SELECT id, username, email, last_name, insert_instant FROM users \
                     WHERE instr(last_name, 'son') > 0 ORDER BY id LIMIT 20";
    let full_count = "SELECT COUNT(*) FROM users WHERE instr(last_name, 'son') > 0";
    assert_eq!(
        ours.total,
        u64::try_from(sql_page(&sql, full_page, full_count).1).unwrap()
    );
    eprintln!("name.familyName co \"son\": {} matches", ours.total);
    g.bench_function("userdir/full_scan_familyName_co_son_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/full_scan_familyName_co_son_page20", |b| {
        b.iter(|| black_box(sql_page(&sql, full_page, full_count)));
    });

    let s = Search::all().sort(SortField::insert_instant()).limit(20);
    g.bench_function("userdir/sort_insert_instant_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    let s = Search::all()
        .sort(SortField::insert_instant().desc())
        .limit(20);
    g.bench_function("userdir/sort_insert_instant_desc_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
