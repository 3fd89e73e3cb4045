//! Lockout under concurrency: failed logins from many threads at once are counted exactly
//! (each increment is a write transaction; redb's single writer serializes them).

mod common;
use common::OpenEngine;

use std::sync::{Arc, Barrier};
use std::thread;

use userdir::{Argon2Params, AuthConfig, Directory, Error, Lockout, ManualClock, NewUser};

const THREADS: usize = 8;

fn rounds() -> usize {
    std::env::var("LOCKOUT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn dir(max_failures: u32) -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .auth(AuthConfig::default().lockout(Lockout::default().max_failures(max_failures)))
        .open_engine()
        .unwrap()
}

/// Every thread fails once, all released together; returns each thread's error.
fn fail_at_once(dir: &Directory, login: &str) -> Vec<Error> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let dir = dir.clone();
            let barrier = Arc::clone(&barrier);
            let login = login.to_owned();
            thread::spawn(move || {
                barrier.wait();
                dir.authenticate(&login, &format!("wrong {i}")).unwrap_err()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn eight_threads_failing_at_once_are_all_counted() {
    for round in 0..rounds() {
        let dir = dir(100);
        let u = dir
            .create(NewUser::with_username("ann").password("correct horse"))
            .unwrap();
        let errors = fail_at_once(&dir, "ann");
        assert!(
            errors
                .iter()
                .all(|e| matches!(e, Error::InvalidCredentials)),
            "round {round}: {errors:?}"
        );
        let f = dir.login_failures(u.id).unwrap();
        assert_eq!(f.count, THREADS as u32, "round {round}");
        assert_eq!(f.locked_until, None);
        // A second wave adds up exactly too.
        fail_at_once(&dir, "ann");
        assert_eq!(dir.login_failures(u.id).unwrap().count, 2 * THREADS as u32);
        dir.authenticate("ann", "correct horse").unwrap();
        assert_eq!(dir.login_failures(u.id).unwrap().count, 0);
    }
}

#[test]
fn eight_threads_lock_the_account_exactly_at_the_maximum() {
    for round in 0..rounds() {
        let dir = dir(5);
        let u = dir
            .create(NewUser::with_username("ann").password("correct horse"))
            .unwrap();
        let errors = fail_at_once(&dir, "ann");
        let invalid = errors
            .iter()
            .filter(|e| matches!(e, Error::InvalidCredentials))
            .count();
        let locked: Vec<i64> = errors
            .iter()
            .filter_map(|e| match e {
                Error::AccountLocked { until } => Some(*until),
                _ => None,
            })
            .collect();
        // Four failures are counted as such, the fifth locks, the rest find the lock.
        assert_eq!(invalid, 4, "round {round}: {errors:?}");
        assert_eq!(locked.len(), THREADS - 4, "round {round}: {errors:?}");
        let f = dir.login_failures(u.id).unwrap();
        assert_eq!(f.count, 5, "round {round}");
        let until = f.locked_until.unwrap();
        assert!(locked.iter().all(|l| *l == until));
        assert!(matches!(
            dir.authenticate("ann", "correct horse"),
            Err(Error::AccountLocked { .. })
        ));
        dir.check_integrity().unwrap();
    }
}
