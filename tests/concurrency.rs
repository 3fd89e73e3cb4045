//! Concurrency: writer threads (creates, renames, deactivations, deletes) race reader threads
//! (lookups and `read` snapshots). No duplicate key may ever exist, and every snapshot must be
//! consistent: each username lookup returns a user carrying that key, every user found by id is
//! found again by its username and email, and `count()` equals the number of users in it.
//! And eight threads racing to create one username in eight casings: exactly one wins.
//!
//! `USERDIR_STRESS_ITERS` sets the operations per thread (default 1000).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use userdir::identity::{caseless_key, lookup_key};
use userdir::{Argon2Params, Directory, Error, ManualClock, NewUser, UserUpdate};
use uuid::Uuid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn directory() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .in_memory()
        .unwrap()
}

/// Usernames drawn from a small set of caseless groups, in varying forms.
const NAMES: &[&str] = &[
    "alice",
    "ALICE",
    "Alice",
    "stra\u{df}e",
    "STRASSE",
    "\u{212A}im",
    "kim",
    "KIM",
    "ａｄｍｉｎ",
    "admin",
    "caf\u{e9}",
    "cafe\u{301}",
    "bob",
    "Bob",
    "zoe",
    "ZOE",
];

/// Every id a writer may use: readers `get` all of them to count users in a snapshot.
const IDS: u128 = 24;

fn id(i: u64) -> Uuid {
    Uuid::from_u128(0x5000_0000_0000_4000_8000_0000_0000_0000 + u128::from(i) % IDS)
}

fn email_of(name: &str) -> String {
    format!("{}@example.com", caseless_key(name).replace(' ', ""))
}

/// splitmix64
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn expected_error(e: &Error) -> bool {
    matches!(
        e,
        Error::DuplicateId(_)
            | Error::DuplicateUsername { .. }
            | Error::DuplicateEmail { .. }
            | Error::LoginIdConflict { .. }
            | Error::NotFound(_)
            | Error::VersionConflict { .. }
    )
}

fn writer(dir: &Directory, seed: u64, iters: u64, ok: &AtomicU64) {
    let mut s = seed;
    for _ in 0..iters {
        let name = NAMES[(next(&mut s) % NAMES.len() as u64) as usize];
        let target = id(next(&mut s));
        let r = match next(&mut s) % 10 {
            0..=3 => dir
                .create(
                    NewUser::with_username(name)
                        .id(target)
                        .email(email_of(name)),
                )
                .map(|_| ()),
            4..=6 => match dir.get(target).unwrap() {
                // A rename, with optimistic concurrency half of the time.
                Some(u) => {
                    let mut up = UserUpdate::from(&u);
                    up.profile.username = Some(name.to_owned());
                    let expected = next(&mut s).is_multiple_of(2).then_some(u.version);
                    dir.update(target, up, expected).map(|_| ())
                }
                None => Ok(()),
            },
            7 => dir.deactivate(target).map(|_| ()),
            8 => dir.delete(target).map(|_| ()),
            _ => dir.delete_many(&[target, id(next(&mut s))]).map(|_| ()),
        };
        match r {
            Ok(()) => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if expected_error(&e) => {}
            Err(e) => panic!("writer: unexpected error {e}"),
        }
    }
}

/// One snapshot's checks; returns the number of users in it.
fn check_snapshot(dir: &Directory) -> u64 {
    dir.read(|tx| {
        let count = tx.count()?;
        let mut users = BTreeMap::new();
        for i in 0..IDS as u64 {
            if let Some(u) = tx.get(id(i))? {
                users.insert(u.id, u);
            }
        }
        assert_eq!(
            count,
            users.len() as u64,
            "count() disagrees with the users in the same snapshot"
        );
        let mut owners: BTreeMap<String, Uuid> = BTreeMap::new();
        for u in users.values() {
            let name = u.username.as_deref().unwrap();
            let key = caseless_key(name);
            if let Some(other) = owners.insert(key.clone(), u.id) {
                panic!("username key {key:?} held by {other} and {}", u.id);
            }
            let found = tx.find_by_username(&name.to_uppercase())?.map(|f| f.id);
            // `to_uppercase` may change the key (ß -> SS keeps it; others too here).
            if lookup_key(&name.to_uppercase()) == key {
                assert_eq!(
                    found,
                    Some(u.id),
                    "{name} does not find its user in the snapshot"
                );
            }
            let by_email = tx.find_by_login_id(u.email.as_deref().unwrap())?;
            assert_eq!(
                by_email.map(|f| f.id),
                Some(u.id),
                "email lookup in the snapshot"
            );
            let again = tx.find_by_username(name)?.unwrap();
            assert_eq!(
                again, *u,
                "the same snapshot returned two versions of a user"
            );
        }
        for n in NAMES {
            if let Some(u) = tx.find_by_username(n)? {
                assert_eq!(
                    u.username.as_deref().map(caseless_key),
                    Some(lookup_key(n)),
                    "lookup of {n:?} returned a user without that key"
                );
                assert!(
                    users.contains_key(&u.id),
                    "index names a user the snapshot lacks"
                );
            }
        }
        Ok(count)
    })
    .unwrap()
}

fn reader(dir: &Directory, seed: u64, stop: &AtomicBool, snapshots: &AtomicU64) {
    let mut s = seed;
    while !stop.load(Ordering::Relaxed) {
        if next(&mut s).is_multiple_of(2) {
            check_snapshot(dir);
            snapshots.fetch_add(1, Ordering::Relaxed);
        } else {
            let n = NAMES[(next(&mut s) % NAMES.len() as u64) as usize];
            for r in [dir.find_by_username(n), dir.find_by_login_id(n)] {
                if let Some(u) = r.unwrap() {
                    assert_eq!(
                        u.username.as_deref().map(caseless_key),
                        Some(lookup_key(n)),
                        "lookup of {n:?} returned a user without that key"
                    );
                }
            }
        }
    }
}

#[test]
fn writers_and_readers_never_see_duplicates_or_torn_snapshots() {
    stress(&directory(), env_u64("USERDIR_STRESS_ITERS", 1000));
}

/// The same on a file: writes go through the redo log and group commit (`Eventual`, so that
/// the log is written but not synced: the test is about concurrency, not the disk), and the
/// directory reopened afterwards (checkpoint, replay) holds the same state.
#[test]
fn the_same_through_the_redo_log() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("stress.redb");
    let open = || {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .clock(ManualClock::new(1_700_000_000_000))
            .durability(userdir::Durability::Eventual)
            .open(&path)
            .unwrap()
    };
    let dir = open();
    stress(&dir, env_u64("USERDIR_STRESS_ITERS", 1000) / 2);
    let before = dir.dump().unwrap();
    drop(dir);
    let again = open();
    again.check_integrity().unwrap();
    assert_eq!(again.dump().unwrap(), before);
}

fn stress(dir: &Directory, iters: u64) {
    let dir = dir.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let snapshots = Arc::new(AtomicU64::new(0));
    let start = std::time::Instant::now();
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (dir, stop, snapshots) = (dir.clone(), stop.clone(), snapshots.clone());
            thread::spawn(move || reader(&dir, 1000 + r, &stop, &snapshots))
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (dir, ok) = (dir.clone(), ok.clone());
            thread::spawn(move || writer(&dir, 7 + w, iters, &ok))
        })
        .collect();
    let mut failed = Vec::new();
    for w in writers {
        if let Err(p) = w.join() {
            failed.push(p);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        if let Err(p) = r.join() {
            failed.push(p);
        }
    }
    if let Some(p) = failed.into_iter().next() {
        std::panic::resume_unwind(p);
    }
    check_snapshot(&dir);
    dir.check_integrity().unwrap();
    eprintln!(
        "3 writers x {iters} ops ({} succeeded), 3 readers ({} snapshots checked) in {:?}",
        ok.load(Ordering::Relaxed),
        snapshots.load(Ordering::Relaxed),
        start.elapsed()
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
}

/// Eight threads create one username in eight caseless-equal forms at once: exactly one wins,
/// the other seven get `DuplicateUsername` naming the winner. Then the same with emails.
#[test]
fn eight_casings_race_one_winner() {
    let groups: &[[&str; 8]] = &[
        [
            "racer",
            "RACER",
            "Racer",
            "rAcEr",
            "ｒａｃｅｒ",
            "RACEr",
            "racER",
            "Ｒacer",
        ],
        [
            "stra\u{df}e",
            "STRASSE",
            "Strasse",
            "strasse",
            "STRA\u{1E9E}E",
            "\u{17F}trasse",
            "ＳＴＲＡＳＳＥ",
            "StraSSe",
        ],
        [
            "caf\u{e9}",
            "cafe\u{301}",
            "CAF\u{c9}",
            "CAFE\u{301}",
            "Caf\u{e9}",
            "ｃａｆｅ\u{301}",
            "cAf\u{e9}",
            "CaFe\u{301}",
        ],
        [
            "\u{212A}elvin",
            "kelvin",
            "KELVIN",
            "Kelvin",
            "ｋｅｌｖｉｎ",
            "\u{212A}ELVIN",
            "kElViN",
            "KeLvIn",
        ],
    ];
    let rounds = env_u64("USERDIR_RACE_ROUNDS", 5);
    for round in 0..rounds {
        for (g, names) in groups.iter().enumerate() {
            for as_email in [false, true] {
                let dir = directory();
                let barrier = Arc::new(Barrier::new(8));
                let handles: Vec<_> = names
                    .iter()
                    .map(|n| {
                        let (dir, barrier) = (dir.clone(), barrier.clone());
                        let n = (*n).to_owned();
                        thread::spawn(move || {
                            let new = if as_email {
                                NewUser::with_email(format!("{n}@example.com"))
                            } else {
                                NewUser::with_username(n)
                            };
                            let prepared = dir.prepare(new).unwrap();
                            barrier.wait();
                            dir.write(|tx| tx.create(prepared))
                        })
                    })
                    .collect();
                let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
                let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
                assert_eq!(
                    winners.len(),
                    1,
                    "round {round} group {g} email {as_email}: {results:?}"
                );
                let winner = winners[0].id;
                for r in &results {
                    match r {
                        Ok(_) => {}
                        Err(Error::DuplicateUsername { existing }) if !as_email => {
                            assert_eq!(*existing, winner)
                        }
                        Err(Error::DuplicateEmail { existing }) if as_email => {
                            assert_eq!(*existing, winner)
                        }
                        Err(e) => panic!("round {round} group {g}: unexpected {e}"),
                    }
                }
                assert_eq!(dir.count().unwrap(), 1);
                dir.check_integrity().unwrap();
            }
        }
    }
}
