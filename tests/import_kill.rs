//! A process importing 200k users is killed (SIGKILL) in the middle of the import; on reopen
//! the directory holds all of the batch or none of it, and its indexes agree with its records.
//!
//! The test re-executes its own binary as the child (`USERDIR_IMPORT_KILL_CHILD=<file>`),
//! running only `child_imports_until_killed`. The child prints `hashing done` from the progress
//! callback (one row of the batch has a plaintext password, all others one fixed cheap argon2
//! hash), then encodes, sorts and writes; the parent kills it after a delay that differs per
//! round, measured from that line. `USERDIR_KILL_ROUNDS` sets the number of rounds (default 3);
//! `USERDIR_KILL_USERS` the batch size (default 200,000).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use userdir::{Argon2Params, Directory, Durability, ImportBatch, NewUser, StoredHash};

const CHILD_ENV: &str = "USERDIR_IMPORT_KILL_CHILD";
/// A cheap, valid argon2id hash (argon2-cffi, m=64 t=2 p=2).
const HASH: &str = "$argon2id$v=19$m=64,t=2,p=2$dXNlcmRpci1zYWx0LTAwMA$xNszVV5zC3FO0LIKurOLbA7FPzCBoE3jAEFZbwWEcOA";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn users() -> usize {
    env_usize("USERDIR_KILL_USERS", 200_000)
}

fn open(path: &std::path::Path) -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .durability(Durability::Immediate)
        .open(path)
        .unwrap()
}

/// The child's body; a no-op unless the parent started this process.
#[test]
fn child_imports_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let n = users();
    let dir = open(std::path::Path::new(&path));
    let mut rows: Vec<NewUser> = (0..n)
        .map(|i| {
            NewUser::with_username(format!("user{i}"))
                .email(format!("user{i}@example.com"))
                .role(if i % 10 == 0 { "admin" } else { "member" })
                .password_hash(StoredHash::from_encoded(HASH))
        })
        .collect();
    rows[0] = NewUser::with_username("user0").password("the one plaintext password");
    println!("rows built");
    let summary = dir
        .import(ImportBatch::new(rows).on_progress(|done, total| {
            if done == total {
                println!("hashing done");
            }
        }))
        .unwrap();
    println!("imported {}", summary.imported);
}

#[test]
fn killed_import_leaves_all_or_nothing() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let n = users();
    let rounds = env_usize("USERDIR_KILL_ROUNDS", 3);
    let exe = std::env::current_exe().unwrap();
    // Round 0 runs to completion and measures how long the import takes after hashing; the
    // other rounds kill the child at fractions of that time, so that the kill lands in
    // validation of keys, encoding, the write transaction, or its commit.
    let mut full = None;
    let mut outcomes = Vec::new();
    for round in 0..rounds {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("users.redb");
        let mut child = Command::new(&exe)
            .args(["--exact", "child_imports_until_killed", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut hashed = false;
        for line in lines.by_ref() {
            if line.unwrap().trim() == "hashing done" {
                hashed = true;
                break;
            }
        }
        assert!(hashed, "the child never finished hashing");
        let start = Instant::now();
        let delay = match full {
            None => None,
            Some(t) => {
                let fractions = [0.6, 0.95, 0.25, 0.8, 0.99];
                Some(Duration::mul_f64(
                    t,
                    fractions[(round - 1) % fractions.len()],
                ))
            }
        };
        let completed = match delay {
            None => {
                let done = lines.any(|l| l.unwrap().starts_with("imported"));
                full = Some(start.elapsed());
                assert!(child.wait().unwrap().success());
                done
            }
            Some(d) => {
                // The one place this test waits on wall time: the kill must land mid-import.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(d);
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                false
            }
        };
        let dir = open(&path);
        let count = dir.count().unwrap();
        assert!(
            count == 0 || count == n as u64,
            "round {round}: {count} users after the kill (expected 0 or {n})"
        );
        dir.check_integrity().unwrap();
        if count > 0 {
            assert!(dir.find_by_login_id("USER7@example.com").unwrap().is_some());
            assert!(dir.find_by_username("user0").unwrap().is_some());
        }
        if completed {
            assert_eq!(count, n as u64);
        }
        outcomes.push((delay, count));
    }
    eprintln!("kill rounds (delay after hashing, users found): {outcomes:?}; full run {full:?}");
}
