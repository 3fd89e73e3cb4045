//! Several processes on one PostgreSQL directory (feature `postgres`): 4 processes create the
//! same 200 usernames in different casings while importing overlapping batches. Exactly one
//! process wins each username, every loser gets `DuplicateUsername` naming the winner, each
//! import batch is applied whole or not at all, and the integrity check passes.
//!
//! The processes are this test binary run again (`child_process`, ignored in normal runs).
//! Needs a server (`scripts/pg`); skipped, loudly, without `USERDIR_TEST_PG_URL` unless
//! `USERDIR_REQUIRE_PG` is set.
#![cfg(feature = "postgres")]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use userdir::{Argon2Params, Directory, Error, ImportBatch, NewUser};
use uuid::Uuid;

const PROCESSES: usize = 4;
const NAMES: usize = 200;
/// Import batches per process, of `BATCH` names each, overlapping the next process's.
const BATCHES: usize = 5;
const BATCH: usize = 10;

fn open(url: &str, schema: &str) -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .postgres_schema(schema)
        .postgres_pool(2)
        .open_postgres(url)
        .expect("open the PostgreSQL directory")
}

/// The casing process `k` uses for `name`.
fn casing(k: usize, name: &str) -> String {
    match k % 4 {
        0 => name.to_lowercase(),
        1 => name.to_uppercase(),
        2 => {
            let mut c = name.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        _ => name
            .chars()
            .enumerate()
            .map(|(i, ch)| {
                if i % 2 == 0 {
                    ch.to_ascii_uppercase()
                } else {
                    ch
                }
            })
            .collect(),
    }
}

/// The import names of batch `b` of process `k`: each batch shares half its names with a
/// batch of the next process.
fn batch_names(k: usize, b: usize) -> Vec<String> {
    let start = k * BATCHES * BATCH / 2 + b * BATCH;
    (start..start + BATCH)
        .map(|n| format!("imp{n:04}"))
        .collect()
}

/// One process's work, printed as lines the parent parses:
/// `C <i> OK <id>`, `C <i> DUP <existing>`, `I <b> OK|REFUSED <id,id,…>`.
#[test]
#[ignore = "run by multiple_processes_one_winner_per_key as a child process"]
fn child_process() {
    let (Ok(k), Ok(url), Ok(schema)) = (
        std::env::var("USERDIR_PG_CHILD"),
        std::env::var("USERDIR_TEST_PG_URL"),
        std::env::var("USERDIR_PG_CHILD_SCHEMA"),
    ) else {
        panic!("child_process runs only as a child of multiple_processes_one_winner_per_key");
    };
    let k: usize = k.parse().unwrap();
    let dir = open(&url, &schema);
    let mut batch = 0;
    for i in 0..NAMES {
        // Processes walk the names from different starting points, so they collide all along.
        let i = (i + k * 37) % NAMES;
        match dir.create(NewUser::with_username(casing(k, &format!("user{i:03}")))) {
            Ok(u) => println!("C {i} OK {}", u.id),
            Err(Error::DuplicateUsername { existing }) => println!("C {i} DUP {existing}"),
            Err(e) => println!("C {i} ERR {e}"),
        }
        if i.is_multiple_of(NAMES / BATCHES) && batch < BATCHES {
            let rows: Vec<NewUser> = batch_names(k, batch)
                .iter()
                .map(|n| NewUser::with_username(casing(k, n)).id(Uuid::new_v4()))
                .collect();
            let ids: Vec<String> = rows
                .iter()
                .map(|r| r.id.map(|i| i.to_string()).unwrap_or_default())
                .collect();
            let outcome = match dir.import(ImportBatch::new(rows)) {
                Ok(_) => "OK".to_string(),
                Err(Error::Import(_)) => "REFUSED".to_string(),
                Err(e) => format!("ERR-{e}").replace(' ', "_"),
            };
            println!("I {k}.{batch} {outcome} {}", ids.join(","));
            batch += 1;
        }
    }
}

#[test]
fn multiple_processes_one_winner_per_key() {
    let Ok(url) = std::env::var("USERDIR_TEST_PG_URL") else {
        assert!(
            std::env::var_os("USERDIR_REQUIRE_PG").is_none(),
            "USERDIR_REQUIRE_PG is set but USERDIR_TEST_PG_URL is not"
        );
        eprintln!("skipped: USERDIR_TEST_PG_URL is not set (run through scripts/pg)");
        return;
    };
    let schema = format!("procs_{}", Uuid::new_v4().simple());
    let dir = open(&url, &schema);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|k| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_process",
                    "--ignored",
                    "--nocapture",
                    "--quiet",
                ])
                .env("USERDIR_PG_CHILD", k.to_string())
                .env("USERDIR_PG_CHILD_SCHEMA", &schema)
                .env("USERDIR_TEST_PG_URL", &url)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut creates: BTreeMap<usize, Vec<(String, Uuid)>> = BTreeMap::new();
    let mut imported: Vec<Vec<Uuid>> = Vec::new();
    let mut refused: Vec<Vec<Uuid>> = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a child process failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["C", i, what, id] => {
                    assert!(*what == "OK" || *what == "DUP", "{line}");
                    creates
                        .entry(i.parse().unwrap())
                        .or_default()
                        .push((what.to_string(), id.parse().unwrap()));
                }
                ["I", _, what, ids] => {
                    let ids: Vec<Uuid> = ids.split(',').map(|s| s.parse().unwrap()).collect();
                    match *what {
                        "OK" => imported.push(ids),
                        "REFUSED" => refused.push(ids),
                        other => panic!("import failed otherwise: {other}"),
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(creates.len(), NAMES);
    for (i, outcomes) in &creates {
        assert_eq!(outcomes.len(), PROCESSES, "user{i:03}: {outcomes:?}");
        let winners: Vec<Uuid> = outcomes
            .iter()
            .filter(|(w, _)| w == "OK")
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(winners.len(), 1, "user{i:03}: {outcomes:?}");
        for (what, id) in outcomes {
            assert_eq!(
                id, &winners[0],
                "user{i:03}: a loser names another user ({what})"
            );
        }
        let found = dir
            .find_by_username(&format!("USER{i:03}"))
            .unwrap()
            .unwrap();
        assert_eq!(found.id, winners[0]);
    }
    assert_eq!(imported.len() + refused.len(), PROCESSES * BATCHES);
    assert!(!imported.is_empty(), "some batch must have gone in");
    let mut imported_ids = BTreeSet::new();
    for ids in &imported {
        for id in ids {
            assert!(
                dir.get(*id).unwrap().is_some(),
                "an accepted batch lost a row"
            );
            imported_ids.insert(*id);
        }
    }
    for ids in &refused {
        for id in ids {
            assert!(
                dir.get(*id).unwrap().is_none(),
                "a refused batch left a row"
            );
        }
    }
    let total = u64::try_from(NAMES + imported_ids.len()).unwrap();
    assert_eq!(dir.count().unwrap(), total);
    dir.check_integrity().unwrap();
}
