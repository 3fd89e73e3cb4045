//! The redo log (`<file>.wal`): durable writes of a file-backed directory are acknowledged once
//! their frame is synced; redb commits them non-durably and checkpoints later.
//!
//! A crash is simulated by copying the directory file and its log while the directory is still
//! open (what a killed process leaves: redb's last durable commit, plus the log), then opening
//! the copies. `tests/crash_kill.rs` does the same with real SIGKILLs.

use std::path::{Path, PathBuf};

use userdir::{
    Argon2Params, Directory, Durability, ImportBatch, ManualClock, NewUser, StoredHash, UserUpdate,
};

fn open(path: &Path, d: Durability) -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .durability(d)
        .open(path)
        .unwrap()
}

fn wal(p: &Path) -> PathBuf {
    let mut n = p.file_name().unwrap().to_os_string();
    n.push(".wal");
    p.with_file_name(n)
}

/// Copies the directory file, and its log when `with_log`, to `to` (the crash image).
fn crash_copy(from: &Path, to: &Path, with_log: bool) {
    std::fs::copy(from, to).unwrap();
    let _ = std::fs::remove_file(wal(to));
    if with_log {
        std::fs::copy(wal(from), wal(to)).unwrap();
    }
}

/// Some writes of every kind: creates, updates, deactivations, deletes, a transaction, a
/// reset token and a failed login.
fn churn(dir: &Directory, n: usize) {
    let hash = dir.hash_password("a fine password").unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let u = dir
            .create(
                NewUser::with_username(format!("User{i}"))
                    .email(format!("user{i}@example.com"))
                    .role(if i % 3 == 0 { "admin" } else { "staff" })
                    .password_hash(hash.clone()),
            )
            .unwrap();
        ids.push(u);
    }
    for (i, u) in ids.iter().enumerate() {
        match i % 5 {
            0 => {
                let mut up = UserUpdate::from(u);
                up.profile.username = Some(format!("renamed{i}"));
                dir.update(u.id, up, None).unwrap();
            }
            1 => {
                dir.deactivate(u.id).unwrap();
            }
            2 => {
                dir.delete(u.id).unwrap();
            }
            _ => {}
        }
    }
    let a = dir.prepare(NewUser::with_username("txn-a")).unwrap();
    let b = dir.prepare(NewUser::with_username("txn-b")).unwrap();
    dir.write(|tx| {
        tx.create(a)?;
        tx.create(b)?;
        Ok(())
    })
    .unwrap();
    dir.start_password_reset("user3@example.com").unwrap();
    // A token issued and used: its rows are written, then removed, through the log.
    let used = dir.start_password_reset("user8@example.com").unwrap();
    dir.reset_password(&used, "another fine password").unwrap();
    assert!(dir.authenticate("user4@example.com", "wrong").is_err());
}

#[test]
fn acknowledged_writes_survive_through_the_log() {
    for d in [Durability::Immediate, Durability::Eventual] {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("users.redb");
        let dir = open(&p, d);
        churn(&dir, 60);
        let expected = dir.dump().unwrap();
        let count = dir.count().unwrap();
        // The crash image: redb's durable state and the log.
        let q = tmp.path().join("crashed.redb");
        crash_copy(&p, &q, true);
        // Without its log, the image lacks the writes made since the last checkpoint: the log
        // is what made them durable.
        let r = tmp.path().join("nolog.redb");
        crash_copy(&p, &r, false);
        drop(dir);

        let crashed = open(&q, d);
        crashed.check_integrity().unwrap();
        assert_eq!(crashed.dump().unwrap(), expected, "{d:?}");
        assert_eq!(crashed.count().unwrap(), count);
        assert!(crashed.find_by_username("RENAMED0").unwrap().is_some());
        assert!(crashed.find_by_username("txn-b").unwrap().is_some());
        drop(crashed);
        // Replayed and checkpointed: reopening changes nothing.
        let again = open(&q, d);
        assert_eq!(again.dump().unwrap(), expected);
        drop(again);

        let nolog = open(&r, d);
        nolog.check_integrity().unwrap();
        assert!(nolog.count().unwrap() < count, "{d:?}");
    }
}

#[test]
fn a_torn_or_cut_log_keeps_a_prefix_of_whole_transactions() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p, Durability::Immediate);
    let mut dumps = vec![dir.dump().unwrap()];
    for i in 0..40 {
        dir.create(NewUser::with_username(format!("u{i}")).email(format!("u{i}@example.com")))
            .unwrap();
        dumps.push(dir.dump().unwrap());
    }
    let q = tmp.path().join("crashed.redb");
    crash_copy(&p, &q, true);
    drop(dir);
    let log = std::fs::read(wal(&q)).unwrap();
    let used = log.iter().rposition(|b| *b != 0).unwrap() + 1;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..40 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = usize::try_from(rng % used as u64).unwrap();
        let img = tmp.path().join(format!("img{round}.redb"));
        std::fs::copy(&q, &img).unwrap();
        let mut damaged = log.clone();
        if round % 2 == 0 {
            damaged.truncate(at);
        } else {
            damaged[at] ^= 0x5a;
        }
        std::fs::write(wal(&img), &damaged).unwrap();
        let d = open(&img, Durability::Immediate);
        d.check_integrity().unwrap();
        // Exactly the state after some number of whole creates.
        let now = d.dump().unwrap();
        assert!(
            dumps.contains(&now),
            "round {round}: not a prefix of the creates"
        );
        // And still writable.
        d.create(NewUser::with_username("after")).unwrap();
        d.check_integrity().unwrap();
    }
}

#[test]
fn another_directorys_log_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.redb");
    let b = tmp.path().join("b.redb");
    let da = open(&a, Durability::Immediate);
    da.create(NewUser::with_username("ann")).unwrap();
    let db = open(&b, Durability::Immediate);
    db.create(NewUser::with_username("bob")).unwrap();
    let expected = db.dump().unwrap();
    drop(db);
    let img = tmp.path().join("img.redb");
    crash_copy(&a, &img, false);
    drop(da);
    // b's log beside a's file.
    std::fs::copy(wal(&b), wal(&img)).unwrap();
    let d = open(&img, Durability::Immediate);
    d.check_integrity().unwrap();
    assert!(d.find_by_username("bob").unwrap().is_none());
    assert_ne!(d.dump().unwrap(), expected);
}

#[test]
fn a_transaction_too_large_for_the_log_commits_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p, Durability::Immediate);
    let hash = StoredHash::from_encoded(
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$zZz7iE6bZ1v9fJ6Kx7r9aR4cQyG2cC8m4oN5e2bV1Xk",
    );
    // Some 10 MiB of changes, over the 4 MiB a frame may hold.
    let rows: Vec<NewUser> = (0..12_000)
        .map(|i| {
            NewUser::with_username(format!("bulk{i}"))
                .email(format!("bulk{i}@example.com"))
                .nick_name("n".repeat(500))
                .password_hash(hash.clone())
        })
        .collect();
    dir.import(ImportBatch::new(rows)).unwrap();
    let img = tmp.path().join("img.redb");
    crash_copy(&p, &img, false);
    drop(dir);
    let d = open(&img, Durability::Immediate);
    d.check_integrity().unwrap();
    assert_eq!(d.count().unwrap(), 12_000);
}

#[test]
fn the_log_is_checkpointed_as_it_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p, Durability::Eventual);
    // Frames of ~1 KiB: well past the 8 MiB checkpoint size.
    let note = "x".repeat(900);
    for i in 0..10_000 {
        dir.create(NewUser::with_username(format!("u{i}")).nick_name(note.clone()))
            .unwrap();
    }
    let len = std::fs::metadata(wal(&p)).unwrap().len();
    assert!(len < 10 << 20, "the log kept growing: {len} bytes");
    let img = tmp.path().join("img.redb");
    crash_copy(&p, &img, false);
    drop(dir);
    // The durable state alone holds everything up to the last checkpoint.
    let d = open(&img, Durability::Immediate);
    d.check_integrity().unwrap();
    assert!(d.count().unwrap() > 5_000);
}

#[test]
fn a_checkpoint_makes_the_file_alone_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p, Durability::Immediate);
    for i in 0..20 {
        dir.create(NewUser::with_username(format!("u{i}"))).unwrap();
    }
    dir.checkpoint().unwrap();
    let expected = dir.dump().unwrap();
    let img = tmp.path().join("img.redb");
    crash_copy(&p, &img, false);
    // Writes after the checkpoint go on through the log.
    dir.create(NewUser::with_username("later")).unwrap();
    drop(dir);
    let d = open(&img, Durability::Immediate);
    assert_eq!(d.dump().unwrap(), expected);
    d.check_integrity().unwrap();
}

/// A log write or sync that fails (a full or failing disk): the call errors, later writes
/// answer `NeedsReopen`, and after a reopen every acknowledged write is there and the failed one
/// is entirely applied (its frame reached the file before the sync failed) or absent.
#[test]
fn failing_log_io_loses_nothing_acknowledged() {
    use std::collections::BTreeMap;
    let tmp = tempfile::tempdir().unwrap();
    let (mut applied, mut absent) = (0, 0);
    // `USERDIR_LOG_FAIL_POINTS` failure points (default 32).
    let points = std::env::var("USERDIR_LOG_FAIL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32u64);
    for n in 0..points {
        let p = tmp.path().join(format!("f{n}.redb"));
        let dir = open(&p, Durability::Immediate);
        // A few users made durable by a checkpoint first, so renames and deletes have targets.
        let mut model: BTreeMap<uuid::Uuid, String> = BTreeMap::new();
        for i in 0..4 {
            let u = dir
                .create(NewUser::with_username(format!("base{i}")))
                .unwrap();
            model.insert(u.id, format!("base{i}"));
        }
        dir.checkpoint().unwrap();
        dir.fail_log_after(n);
        let mut in_flight = None;
        for i in 0..40u32 {
            let target = *model.keys().nth(i as usize % model.len().max(1)).unwrap();
            let (result, expect) = match i % 4 {
                1 => {
                    let cur = dir.get(target).unwrap().unwrap();
                    let mut up = UserUpdate::from(&cur);
                    up.profile.username = Some(format!("renamed{n}x{i}"));
                    (
                        dir.update(target, up, None).map(|_| ()),
                        (target, Some(format!("renamed{n}x{i}"))),
                    )
                }
                3 if model.len() > 1 => (dir.delete(target).map(|_| ()), (target, None)),
                _ => match dir.create(NewUser::with_username(format!("new{n}x{i}"))) {
                    Ok(u) => {
                        model.insert(u.id, format!("new{n}x{i}"));
                        continue;
                    }
                    Err(e) => {
                        in_flight = Some((None, format!("new{n}x{i}")));
                        assert!(matches!(e, userdir::Error::Storage(_)), "{e:?}");
                        break;
                    }
                },
            };
            match result {
                Ok(()) => match expect {
                    (id, Some(name)) => {
                        model.insert(id, name);
                    }
                    (id, None) => {
                        model.remove(&id);
                    }
                },
                Err(e) => {
                    assert!(matches!(e, userdir::Error::Storage(_)), "{e:?}");
                    in_flight = Some((Some(expect), String::new()));
                    break;
                }
            }
        }
        if in_flight.is_some() {
            assert!(matches!(
                dir.create(NewUser::with_username("refused")),
                Err(userdir::Error::NeedsReopen)
            ));
        }
        drop(dir);
        let d = open(&p, Durability::Immediate);
        d.check_integrity().unwrap();
        let mut found: BTreeMap<uuid::Uuid, String> = BTreeMap::new();
        d.read(|tx| {
            for u in tx.search(&userdir::query::Search::all().limit(1000))?.users {
                found.insert(u.id, u.profile.username.unwrap_or_default());
            }
            Ok(())
        })
        .unwrap();
        let mut after = model.clone();
        match in_flight {
            None => {}
            Some((None, name)) => {
                if let Some((id, _)) = found.iter().find(|(_, v)| **v == name) {
                    after.insert(*id, name);
                }
            }
            Some((Some((id, change)), _)) => {
                let mut with = model.clone();
                match change {
                    Some(name) => {
                        with.insert(id, name);
                    }
                    None => {
                        with.remove(&id);
                    }
                }
                if found == with {
                    after = with;
                }
            }
        }
        if after == model {
            absent += 1;
        } else {
            applied += 1;
        }
        assert_eq!(found, after, "fail after {n} log operations");
    }
    // Both outcomes occur over this range of failure points: a failed write (absent) and a
    // failed sync after the frame was written (applied by the replay).
    assert!(
        absent > 0 && applied > 0,
        "applied {applied}, absent {absent}"
    );
}

/// Issue 14, scenario 1: a log cut by damage leaves its old tail behind. A new frame written
/// over the damaged one, of the same size, must not make the old frames after it replayable
/// (they carry the next lsns): accounts must not come back from the dead.
#[test]
fn frames_after_a_cut_never_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p, Durability::Immediate);
    for i in 0..3 {
        dir.create(NewUser::with_username(format!("b{i}"))).unwrap();
    }
    // Life 1 dies with b0, b1, b2 in the log only.
    let life2 = tmp.path().join("life2.redb");
    crash_copy(&p, &life2, true);
    drop(dir);
    // One byte of the first frame (where the name b0 is) is damaged: the log is cut there.
    let mut log = std::fs::read(wal(&life2)).unwrap();
    let at = log.windows(2).position(|w| w == b"b0").unwrap();
    log[at] ^= 0x40;
    std::fs::write(wal(&life2), &log).unwrap();
    let dir = open(&life2, Durability::Immediate);
    assert_eq!(dir.count().unwrap(), 0, "the cut log replays nothing");
    // Life 2 creates b1 again (a new id, a frame of the same size as the old first one) and
    // dies.
    let b1 = dir.create(NewUser::with_username("b1")).unwrap();
    let life3 = tmp.path().join("life3.redb");
    crash_copy(&life2, &life3, true);
    drop(dir);
    let dir = open(&life3, Durability::Immediate);
    dir.check_integrity().unwrap();
    assert_eq!(dir.count().unwrap(), 1);
    assert_eq!(
        dir.find_by_username("b1").unwrap().map(|u| u.id),
        Some(b1.id)
    );
    assert!(
        dir.find_by_username("b2").unwrap().is_none(),
        "b2 came back"
    );
    assert!(dir.find_by_username("b0").unwrap().is_none());
}

/// A login writes only the user's record (no key is recomputed or rewritten): its last-login
/// stamp, its rehashed password and the cleared failure count are durable through the log
/// alone, and the user keeps every key.
#[test]
fn logins_are_durable_through_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let clock = ManualClock::new(1_700_000_000_000);
    let open_with = |path: &Path, params: Argon2Params| {
        Directory::builder()
            .hasher(params)
            .clock(clock.clone())
            .open(path)
            .unwrap()
    };
    let old_params = Argon2Params::new(16, 1, 1);
    let dir = open_with(&p, old_params);
    let ann = dir
        .create(
            NewUser::with_username("Ann")
                .email("ann@example.com")
                .role("admin")
                .external_id("EMP-1")
                .password("correct horse"),
        )
        .unwrap();
    let bob = dir
        .create(NewUser::with_username("Bob").password("battery staple"))
        .unwrap();
    drop(dir);
    // The next open has other parameters: Bob's login rehashes.
    let dir = open_with(&p, Argon2Params::insecure_fast());
    dir.checkpoint().unwrap();
    for _ in 0..3 {
        let _ = dir.authenticate("ann", "wrong");
    }
    assert_eq!(dir.login_failures(ann.id).unwrap().count, 3);
    clock.advance(5_000);
    let a = dir
        .authenticate("ANN@example.com", "correct horse")
        .unwrap();
    assert_eq!(a.user.last_login_instant, Some(1_700_000_005_000));
    assert_eq!(dir.login_failures(ann.id).unwrap().count, 0);
    clock.advance(1_000);
    let b = dir.authenticate("bob", "battery staple").unwrap();
    assert!(b.rehashed && a.rehashed, "both hashes had other parameters");
    let expected = dir.dump().unwrap();
    let q = tmp.path().join("crashed.redb");
    crash_copy(&p, &q, true);
    drop(dir);

    let crashed = open_with(&q, Argon2Params::insecure_fast());
    crashed.check_integrity().unwrap();
    assert_eq!(crashed.dump().unwrap(), expected);
    let ann2 = crashed.find_by_username("ANN").unwrap().unwrap();
    assert_eq!(ann2, a.user);
    assert_eq!(ann2.version, ann.version + 1);
    assert_eq!(
        crashed.find_by_external_id("EMP-1").unwrap().unwrap().id,
        ann.id
    );
    assert_eq!(crashed.login_failures(ann.id).unwrap().count, 0);
    assert_eq!(crashed.get(bob.id).unwrap().unwrap(), b.user);
    assert_eq!(b.user.last_login_instant, Some(1_700_000_006_000));
    assert!(
        !crashed
            .hasher()
            .needs_rehash(b.user.password.as_ref().unwrap())
    );
    // The rehashed passwords still verify, and log in without another rehash.
    assert!(
        !crashed
            .authenticate("bob", "battery staple")
            .unwrap()
            .rehashed
    );
    assert!(
        !crashed
            .authenticate("ann", "correct horse")
            .unwrap()
            .rehashed
    );
}

/// Pages of `file` that redb counts as allocated, and its page size (the file closed).
fn allocated_bytes(file: &Path) -> u64 {
    let db = redb::Database::open(file).unwrap();
    let w = db.begin_write().unwrap();
    let s = w.stats().unwrap();
    let bytes = s.allocated_pages() * s.page_size() as u64;
    w.abort().unwrap();
    bytes
}

/// A clean close gives back what only served the session: the log is emptied (every frame is
/// in the file after the closing checkpoint), and after an import too large for the log the
/// file is compacted, so that it holds next to no free page. Reopening finds everything, writes
/// nothing more, and the log grows again with the next write.
#[test]
fn a_clean_close_empties_the_log_and_compacts_after_an_import() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p, Durability::Immediate);
    churn(&dir, 30);
    assert!(std::fs::metadata(wal(&p)).unwrap().len() > 0);
    let expected = dir.dump().unwrap();
    drop(dir);
    assert_eq!(std::fs::metadata(wal(&p)).unwrap().len(), 0);
    let dir = open(&p, Durability::Immediate);
    assert_eq!(dir.dump().unwrap(), expected);
    // An empty log is not a cut one: the open leaves it empty.
    assert_eq!(std::fs::metadata(wal(&p)).unwrap().len(), 0);
    dir.create(NewUser::with_username("after")).unwrap();
    assert!(std::fs::metadata(wal(&p)).unwrap().len() > 0);
    // A crash now: the log holds the new write.
    let img = tmp.path().join("img.redb");
    crash_copy(&p, &img, true);
    assert!(
        open(&img, Durability::Immediate)
            .find_by_username("after")
            .unwrap()
            .is_some()
    );

    // Some 10 MiB of changes, over the 4 MiB a frame may hold: redb commits them durably.
    let hash = dir.hash_password("a fine password").unwrap();
    let rows: Vec<NewUser> = (0..12_000)
        .map(|i| {
            NewUser::with_username(format!("bulk{i}"))
                .email(format!("bulk{i}@example.com"))
                .nick_name("n".repeat(500))
                .password_hash(hash.clone())
        })
        .collect();
    dir.import(ImportBatch::new(rows)).unwrap();
    let open_len = std::fs::metadata(&p).unwrap().len();
    let expected = dir.dump().unwrap();
    drop(dir);
    let len = std::fs::metadata(&p).unwrap().len();
    let used = allocated_bytes(&p);
    assert!(len <= open_len, "{len} > {open_len}");
    assert!(
        len <= used + (64 << 10),
        "{len} bytes of file for {used} bytes of pages"
    );
    assert_eq!(std::fs::metadata(wal(&p)).unwrap().len(), 0);
    let dir = open(&p, Durability::Immediate);
    assert_eq!(dir.dump().unwrap(), expected);
    dir.check_integrity().unwrap();
    assert_eq!(dir.count().unwrap(), 12_000 + 30 - 6 + 2 + 1);
}
