//! The PostgreSQL engine beside the redb file, in the same run (feature `postgres`):
//! single create p50/p99, lookups, 8-client create throughput, a bulk import, and a
//! `userName sw` page. Prints a Markdown table.
//!
//! ```text
//! scripts/pg run cargo bench --features postgres --bench postgres
//! ```
//! The server is the one of `USERDIR_TEST_PG_URL` (scripts/pg starts one with fsync on).
//! `USERDIR_BENCH_IMPORT` sets the import size (default 100 000), `USERDIR_BENCH_OPS` the
//! number of timed single operations (default 1000).

use std::time::{Duration, Instant};

use userdir::{Argon2Params, Directory, ImportBatch, NewUser, Search};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

struct Row {
    what: String,
    redb: String,
    pg: String,
}

fn measure(dir: &Directory, tag: &str, ops: usize, import_n: usize) -> Vec<String> {
    let mut out = Vec::new();
    // Single creates (no password: the storage, not argon2).
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        dir.create(
            NewUser::with_username(format!("{tag}single{i}"))
                .email(format!("{tag}s{i}@example.com")),
        )
        .unwrap();
        lat.push(t.elapsed());
    }
    out.push(format!(
        "{} / {}",
        us(pct(lat.clone(), 0.5)),
        us(pct(lat, 0.99))
    ));
    // Lookups by username.
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        let u = dir.find_by_username(&format!("{tag}SINGLE{i}")).unwrap();
        lat.push(t.elapsed());
        assert!(u.is_some());
    }
    out.push(us(pct(lat, 0.5)));
    // 8 clients creating at once.
    let per = ops / 8;
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..8 {
            let dir = dir.clone();
            s.spawn(move || {
                for i in 0..per {
                    dir.create(NewUser::with_username(format!("{tag}c{c}n{i}")))
                        .unwrap();
                }
            });
        }
    });
    let rate = (per * 8) as f64 / t.elapsed().as_secs_f64();
    out.push(format!("{rate:.0} creates/s"));
    // Bulk import.
    let rows: Vec<NewUser> = (0..import_n)
        .map(|i| {
            NewUser::with_username(format!("{tag}user{i:07}"))
                .email(format!("{tag}u{i}@example.com"))
                .role(if i % 10 == 0 { "admin" } else { "staff" })
        })
        .collect();
    let t = Instant::now();
    dir.import(ImportBatch::new(rows)).unwrap();
    out.push(format!("{:.2} s", t.elapsed().as_secs_f64()));
    // A `userName sw` page of 20.
    let search = Search::filter(&format!(r#"userName sw "{tag}user00012""#))
        .unwrap()
        .limit(20);
    let mut lat = Vec::with_capacity(ops);
    for _ in 0..ops.min(500) {
        let t = Instant::now();
        let page = dir.search(&search).unwrap();
        lat.push(t.elapsed());
        assert!(page.users.len() <= 20 && (import_n < 1300 || page.users.len() == 20));
    }
    out.push(us(pct(lat, 0.5)));
    out
}

fn main() {
    let Ok(url) = std::env::var("USERDIR_TEST_PG_URL") else {
        eprintln!("USERDIR_TEST_PG_URL is not set: run through scripts/pg");
        return;
    };
    let ops = env_num("USERDIR_BENCH_OPS", 1000);
    let import_n = env_num("USERDIR_BENCH_IMPORT", 100_000);
    let tmp = tempfile::tempdir().unwrap();
    let file = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(tmp.path().join("bench.redb"))
        .unwrap();
    let schema = format!("bench_{}", std::process::id());
    let pg = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .postgres_schema(schema)
        .postgres_pool(16)
        .open_postgres(&url)
        .unwrap();
    let a = measure(&file, "r", ops, import_n);
    let b = measure(&pg, "p", ops, import_n);
    let names = [
        "single create p50 / p99",
        "find_by_username p50",
        "8-client create throughput",
        &format!("import {import_n} users (one transaction)"),
        "`userName sw` page of 20, p50",
    ];
    let rows: Vec<Row> = names
        .iter()
        .zip(a.into_iter().zip(b))
        .map(|(w, (r, p))| Row {
            what: w.to_string(),
            redb: r,
            pg: p,
        })
        .collect();
    println!("| operation | redb file (durable commits) | PostgreSQL (local, fsync on) |");
    println!("|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} |", r.what, r.redb, r.pg);
    }
}
