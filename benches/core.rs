//! Core operations at 100k users, userdir beside SQLite (rusqlite, bundled) in the same run.
//!
//! `cargo bench --bench core` (set `USERDIR_BENCH_USERS` to change the directory size).
//! SQLite runs in WAL mode with `synchronous=FULL` for durable commits and `synchronous=OFF`
//! for the non-durable row, with `username TEXT UNIQUE COLLATE NOCASE` and `email TEXT UNIQUE`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, params};
use userdir::{Argon2Params, Directory, Durability, NewUser, StoredHash};

fn users() -> u64 {
    std::env::var("USERDIR_BENCH_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// A fixed argon2id hash, so that creates measure the store, not the hashing.
fn prehash() -> StoredHash {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .in_memory()
        .unwrap()
        .hash_password("benchmark-password")
        .unwrap()
}

fn userdir_at(path: &std::path::Path, n: u64, durability: Durability) -> Directory {
    let setup = Directory::builder()
        .durability(Durability::Eventual)
        .open(path)
        .unwrap();
    let hash = prehash();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let prepared: Vec<_> = chunk
            .iter()
            .map(|i| {
                setup
                    .prepare(
                        NewUser::with_username(format!("User{i}"))
                            .email(format!("user{i}@example.com"))
                            .first_name("First")
                            .last_name(format!("Last{i}"))
                            .password_hash(hash.clone()),
                    )
                    .unwrap()
            })
            .collect();
        setup
            .write(|tx| {
                for p in prepared {
                    tx.create(p)?;
                }
                Ok(())
            })
            .unwrap();
    }
    drop(setup);
    Directory::builder()
        .durability(durability)
        .open(path)
        .unwrap()
}

fn sqlite_at(path: &std::path::Path, n: u64) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE users (id BLOB PRIMARY KEY, username TEXT UNIQUE COLLATE NOCASE,
            email TEXT UNIQUE, first_name TEXT, last_name TEXT, password TEXT, active INTEGER,
            insert_instant INTEGER, version INTEGER) WITHOUT ROWID;",
    )
    .unwrap();
    let hash = prehash();
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut st = tx
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3, 'First', ?4, ?5, 1, ?6, 1)")
            .unwrap();
        for i in 0..n {
            st.execute(params![
                uuid::Uuid::new_v4().as_bytes().to_vec(),
                format!("User{i}"),
                format!("user{i}@example.com"),
                format!("Last{i}"),
                hash.expose(),
                i as i64
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    c
}

fn bench(c: &mut Criterion) {
    let n = users();
    let tmp = tempfile::tempdir().unwrap();
    let dir = userdir_at(&tmp.path().join("u.redb"), n, Durability::Immediate);
    let sql = sqlite_at(&tmp.path().join("u.sqlite"), n);
    let hash = prehash();
    let some_id = dir.find_by_username("user777").unwrap().unwrap().id;
    let sql_id: Vec<u8> = sql
        .query_row("SELECT id FROM users WHERE username = 'user777'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let counter = AtomicU64::new(0);
    let next = || counter.fetch_add(1, Ordering::Relaxed);

    let mut g = c.benchmark_group(format!("core_{n}"));
    g.sample_size(30);

    g.bench_function("userdir/create_durable", |b| {
        b.iter(|| {
            let i = next();
            dir.create(
                NewUser::with_username(format!("new{i}"))
                    .email(format!("new{i}@example.com"))
                    .password_hash(hash.clone()),
            )
            .unwrap()
        })
    });
    g.bench_function("sqlite/create_durable", |b| {
        let mut st = sql
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3, NULL, NULL, ?4, 1, 0, 1)")
            .unwrap();
        b.iter(|| {
            let i = next();
            st.execute(params![
                uuid::Uuid::new_v4().as_bytes().to_vec(),
                format!("sq{i}"),
                format!("sq{i}@example.com"),
                hash.expose()
            ])
            .unwrap()
        })
    });

    let nd_path = tmp.path().join("nd.redb");
    let nd = userdir_at(&nd_path, n, Durability::Eventual);
    // 8 threads, 10 durable creates each, per iteration (80 users).
    g.bench_function("userdir/create_durable_8_threads_x10", |b| {
        b.iter(|| {
            let base = counter.fetch_add(80, Ordering::Relaxed);
            std::thread::scope(|s| {
                for t in 0..8u64 {
                    let dir = &dir;
                    let hash = &hash;
                    s.spawn(move || {
                        for i in 0..10 {
                            let n = base + t * 10 + i;
                            dir.create(
                                NewUser::with_username(format!("mt{n}"))
                                    .email(format!("mt{n}@example.com"))
                                    .password_hash(hash.clone()),
                            )
                            .unwrap();
                        }
                    });
                }
            })
        })
    });
    let sql_path = tmp.path().join("u.sqlite");
    g.bench_function("sqlite/create_durable_8_threads_x10", |b| {
        let mut conns: Vec<Connection> = (0..8)
            .map(|_| {
                let c = Connection::open(&sql_path).unwrap();
                c.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;")
                    .unwrap();
                c
            })
            .collect();
        b.iter(|| {
            let base = counter.fetch_add(80, Ordering::Relaxed);
            std::thread::scope(|s| {
                for (t, c) in conns.iter_mut().enumerate() {
                    let hash = &hash;
                    s.spawn(move || {
                        let mut st = c
                            .prepare_cached(
                                "INSERT INTO users VALUES (?1, ?2, ?3, NULL, NULL, ?4, 1, 0, 1)",
                            )
                            .unwrap();
                        for i in 0..10u64 {
                            let n = base + t as u64 * 10 + i;
                            st.execute(params![
                                uuid::Uuid::new_v4().as_bytes().to_vec(),
                                format!("sqmt{n}"),
                                format!("sqmt{n}@example.com"),
                                hash.expose()
                            ])
                            .unwrap();
                        }
                    });
                }
            })
        })
    });

    g.bench_function("userdir/create_nondurable", |b| {
        b.iter(|| {
            let i = next();
            nd.create(
                NewUser::with_username(format!("nd{i}"))
                    .email(format!("nd{i}@example.com"))
                    .password_hash(hash.clone()),
            )
            .unwrap()
        })
    });
    sql.execute_batch("PRAGMA synchronous=OFF").unwrap();
    g.bench_function("sqlite/create_nondurable", |b| {
        let mut st = sql
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3, NULL, NULL, ?4, 1, 0, 1)")
            .unwrap();
        b.iter(|| {
            let i = next();
            st.execute(params![
                uuid::Uuid::new_v4().as_bytes().to_vec(),
                format!("sqnd{i}"),
                format!("sqnd{i}@example.com"),
                hash.expose()
            ])
            .unwrap()
        })
    });
    sql.execute_batch("PRAGMA synchronous=FULL").unwrap();

    g.bench_function("userdir/get_by_id", |b| {
        b.iter(|| black_box(dir.get(some_id).unwrap().unwrap()))
    });
    g.bench_function("sqlite/get_by_id", |b| {
        let mut st = sql
            .prepare_cached("SELECT username, email, first_name, last_name, password, active, insert_instant, version FROM users WHERE id = ?1")
            .unwrap();
        b.iter(|| {
            black_box(
                st.query_row(params![sql_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(4)?))
                })
                .unwrap(),
            )
        })
    });
    g.bench_function("userdir/find_by_username_caseless", |b| {
        b.iter(|| black_box(dir.find_by_username("USER777").unwrap().unwrap()))
    });
    g.bench_function("sqlite/find_by_username_caseless", |b| {
        let mut st = sql
            .prepare_cached("SELECT id, username, email, first_name, last_name, password, active, insert_instant, version FROM users WHERE username = ?1")
            .unwrap();
        b.iter(|| {
            black_box(
                st.query_row(params!["USER777"], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(2)?, r.get::<_, String>(5)?))
                })
                .unwrap(),
            )
        })
    });
    g.bench_function("userdir/find_by_email", |b| {
        b.iter(|| black_box(dir.find_by_email("user777@example.com").unwrap().unwrap()))
    });
    g.bench_function("sqlite/find_by_email", |b| {
        let mut st = sql
            .prepare_cached("SELECT id, username, email, first_name, last_name, password, active, insert_instant, version FROM users WHERE email = lower(?1)")
            .unwrap();
        b.iter(|| {
            black_box(
                st.query_row(params!["user777@example.com"], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(5)?))
                })
                .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
