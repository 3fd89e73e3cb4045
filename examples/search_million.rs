//! Manual run: search and lookups over a large directory, beside SQLite on the same rows, with
//! medians of alternating rounds (userdir first in even rounds, SQLite first in odd ones).
//!
//! ```text
//! cargo run --release --example search_million -- [users] [data dir] [rounds] [rows]
//! ```
//!
//! `users` defaults to 1,000,000. With a data dir, the two files are built once
//! (`users-N.redb`, `users-N.sqlite`) and reused by later runs (also by another build of this
//! example, for before/after comparisons on the same files); without one, a temporary
//! directory is used. `rounds` defaults to 11. `rows` is a comma-separated list of row names
//! (default: all); `USERDIR_SKIP_SQLITE=1` times userdir alone (for profiling). The data set
//! and the SQLite schema are `benches/search.rs`'s (`benches/search_data`); the userdir file
//! is loaded with `import`.

#[path = "../benches/search_data/mod.rs"]
mod search_data;

use std::hint::black_box;
use std::time::Instant;

use search_data::*;
use userdir::query::{Search, SortField};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per call of `f`, over enough calls to last about 30 ms.
fn sample(iters: usize, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / iters as f64
}

fn calibrate(f: &mut dyn FnMut()) -> usize {
    let one = sample(1, f).max(1e-7);
    ((0.03 / one) as usize).clamp(1, 100_000)
}

fn show(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.2} µs", s * 1e6)
    }
}

struct Bench<'a> {
    name: &'static str,
    ours: Box<dyn FnMut() + 'a>,
    theirs: Option<Box<dyn FnMut() + 'a>>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1_000_000, |s| s.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = args
        .next()
        .filter(|s| !s.is_empty() && s != "-")
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let rounds: usize = args.next().map_or(11, |s| s.parse().unwrap());
    let only: Option<Vec<String>> = args
        .next()
        .map(|s| s.split(',').map(str::to_owned).collect());
    std::fs::create_dir_all(&data_dir).unwrap();
    let redb_path = data_dir.join(format!("users-{n}.redb"));
    let sql_path = data_dir.join(format!("users-{n}.sqlite"));
    let data = rows(n);
    let dir = if redb_path.exists() {
        open_userdir(&redb_path)
    } else {
        let t = Instant::now();
        let d = import_userdir(&redb_path, &data);
        eprintln!("userdir: {n} users imported in {:?}", t.elapsed());
        d
    };
    let sql = if sql_path.exists() {
        rusqlite::Connection::open(&sql_path).unwrap()
    } else {
        let t = Instant::now();
        let c = build_sqlite(&sql_path, &data);
        eprintln!("sqlite: {n} users loaded in {:?}", t.elapsed());
        c
    };
    assert_eq!(dir.count().unwrap(), n as u64);
    let probe = &data[n / 2];
    let probe_upper = probe.username.to_uppercase();
    let probe_id = probe.id;
    let probe_id_bytes = probe_id.as_bytes().to_vec();
    // Lookups inside one read transaction: this many per transaction.
    const IN_TX: usize = 1000;
    let tx_probes: Vec<&Row> = data
        .iter()
        .step_by((n / IN_TX).max(1))
        .take(IN_TX)
        .collect();
    let tx_upper: Vec<String> = tx_probes
        .iter()
        .map(|r| r.username.to_uppercase())
        .collect();

    let eq = Search::filter(&format!(r#"userName eq "{probe_upper}""#)).unwrap();
    let sw = Search::filter(r#"userName sw "ab""#).unwrap().limit(20);
    let role = Search::filter(r#"role eq "role3""#).unwrap().limit(20);
    let co = Search::filter(r#"name.familyName co "son""#)
        .unwrap()
        .limit(20);
    let co_sorted = Search::filter(r#"name.familyName co "son""#)
        .unwrap()
        .sort(SortField::username())
        .limit(20);
    let ins = Search::all().sort(SortField::insert_instant()).limit(20);

    // Same answers in both engines.
    assert_eq!(
        dir.search(&sw).unwrap().total,
        sql_page(&sql, SW_PAGE, SW_COUNT).1 as u64
    );
    let co_total = dir.search(&co).unwrap().total;
    assert_eq!(co_total, sql_page(&sql, CO_PAGE, CO_COUNT).1 as u64);
    let ours: Vec<_> = dir
        .search(&co_sorted)
        .unwrap()
        .users
        .iter()
        .map(|u| u.id.as_bytes().to_vec())
        .collect();
    let theirs: Vec<_> = sql_page(&sql, CO_SORTED_PAGE, CO_COUNT)
        .0
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(
        dir.search(&role).unwrap().total,
        sql_page(&sql, ROLE_PAGE, ROLE_COUNT).1 as u64
    );
    eprintln!(
        "{n} users; sw \"ab\": {} matches; co \"son\": {co_total}; role3: {}",
        dir.search(&sw).unwrap().total,
        dir.search(&role).unwrap().total
    );

    let mut benches: Vec<Bench<'_>> = vec![
        Bench {
            name: "userName_eq",
            ours: Box::new(|| {
                black_box(dir.search(&eq).unwrap());
            }),
            theirs: None,
        },
        Bench {
            name: "userName_sw_ab_page20",
            ours: Box::new(|| {
                black_box(dir.search(&sw).unwrap());
            }),
            theirs: Some(Box::new(|| {
                black_box(sql_page(&sql, SW_PAGE, SW_COUNT));
            })),
        },
        Bench {
            name: "role_eq_page20",
            ours: Box::new(|| {
                black_box(dir.search(&role).unwrap());
            }),
            theirs: Some(Box::new(|| {
                black_box(sql_page(&sql, ROLE_PAGE, ROLE_COUNT));
            })),
        },
        Bench {
            name: "familyName_co_son_page20",
            ours: Box::new(|| {
                black_box(dir.search(&co).unwrap());
            }),
            theirs: Some(Box::new(|| {
                black_box(sql_page(&sql, CO_PAGE, CO_COUNT));
            })),
        },
        Bench {
            name: "familyName_co_son_by_username_page20",
            ours: Box::new(|| {
                black_box(dir.search(&co_sorted).unwrap());
            }),
            theirs: Some(Box::new(|| {
                black_box(sql_page(&sql, CO_SORTED_PAGE, CO_COUNT));
            })),
        },
        Bench {
            name: "sort_insert_instant_page20",
            ours: Box::new(|| {
                black_box(dir.search(&ins).unwrap());
            }),
            theirs: None,
        },
        Bench {
            name: "get_by_id",
            ours: Box::new(|| {
                black_box(dir.get(probe_id).unwrap().unwrap());
            }),
            theirs: Some(Box::new(|| {
                black_box(sql_user(&sql, BY_ID, &probe_id_bytes));
            })),
        },
        Bench {
            name: "find_by_username_caseless",
            ours: Box::new(|| {
                black_box(dir.find_by_username(&probe_upper).unwrap().unwrap());
            }),
            theirs: Some(Box::new(|| {
                black_box(sql_user(&sql, BY_USERNAME, &probe_upper));
            })),
        },
        Bench {
            name: "get_by_id_x1000_in_read",
            ours: Box::new(|| {
                dir.read(|tx| {
                    for r in &tx_probes {
                        black_box(tx.get(r.id)?.unwrap());
                    }
                    Ok(())
                })
                .unwrap();
            }),
            theirs: Some(Box::new(|| {
                sql.execute_batch("BEGIN").unwrap();
                for r in &tx_probes {
                    black_box(sql_user(&sql, BY_ID, &r.id.as_bytes().to_vec()));
                }
                sql.execute_batch("COMMIT").unwrap();
            })),
        },
        Bench {
            name: "find_by_username_x1000_in_read",
            ours: Box::new(|| {
                dir.read(|tx| {
                    for u in &tx_upper {
                        black_box(tx.find_by_username(u)?.unwrap());
                    }
                    Ok(())
                })
                .unwrap();
            }),
            theirs: Some(Box::new(|| {
                sql.execute_batch("BEGIN").unwrap();
                for u in &tx_upper {
                    black_box(sql_user(&sql, BY_USERNAME, u));
                }
                sql.execute_batch("COMMIT").unwrap();
            })),
        },
    ];
    if let Some(only) = &only {
        benches.retain(|b| only.iter().any(|o| o == b.name));
    }
    if std::env::var_os("USERDIR_SKIP_SQLITE").is_some() {
        for b in &mut benches {
            b.theirs = None;
        }
    }

    println!(
        "{:<40} {:>12} {:>12} {:>7}   (medians of {rounds} rounds, {n} users)",
        "row", "userdir", "sqlite", "ratio"
    );
    for b in &mut benches {
        let it_ours = calibrate(&mut *b.ours);
        let it_theirs = b.theirs.as_mut().map(|f| calibrate(&mut **f));
        let (mut os, mut ts) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            if r % 2 == 0 {
                os.push(sample(it_ours, &mut *b.ours));
            }
            if let (Some(f), Some(it)) = (b.theirs.as_mut(), it_theirs) {
                ts.push(sample(it, &mut **f));
            }
            if r % 2 == 1 {
                os.push(sample(it_ours, &mut *b.ours));
            }
        }
        let o = median(&mut os);
        if ts.is_empty() {
            println!("{:<40} {:>12} {:>12} {:>7}", b.name, show(o), "–", "–");
        } else {
            let t = median(&mut ts);
            println!(
                "{:<40} {:>12} {:>12} {:>7.2}",
                b.name,
                show(o),
                show(t),
                t / o
            );
        }
    }
}
