//! A damaged directory file (flipped bytes, truncation) must give an error on open or on read,
//! or correct data; never a panic and never a wrong user: a lookup by username, email, login id
//! or external id must not return a user that does not carry that key, and `get(id)` must not
//! return a user with another id. After the reads, each copy also takes two writes, is dropped
//! and is reopened: none of that may panic either.
//!
//! redb itself panics on some damaged files (a slice index out of range in a page, asserts in
//! debug builds); userdir catches those at its boundary and answers `Error::Corrupt`. A panic
//! hook counts every panic raised (caught or not, with its location, for the report); a panic
//! that reaches the test, wherever it was raised, fails it.
//!
//! Damage must also be *seen*: a copy on which every read succeeds and `check_integrity` passes
//! must read back exactly the original users, every field (a record's content is covered by
//! its checksum, the pages by redb's). A copy that reads back other users, or misses one,
//! without any error is a *silent miss*, and there must be none.
//!
//! `USERDIR_DAMAGE_POINTS` sets the number of damaged copies per kind (default 150; issue 14's
//! run: 1000 per kind, 2000 copies).

mod fuzz_bodies;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use fuzz_bodies::model::Rng;
use userdir::identity::{caseless_key, lookup_key};
use userdir::{Argon2Params, Directory, ManualClock, NewUser, User};
use uuid::Uuid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn builder() -> userdir::Builder {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
}

struct Known {
    id: Uuid,
    username: String,
    email: String,
    external: String,
}

fn known_users() -> Vec<Known> {
    (0..60u32)
        .map(|i| Known {
            id: Uuid::from_u128(0xAB00_0000_0000_4000_8000_0000_0000_0000 + u128::from(i)),
            username: format!("user{i:03}"),
            email: format!("mail{i:03}@example.com"),
            external: format!("ext-{i:03}"),
        })
        .collect()
}

/// What went wrong with one damaged copy.
#[derive(Debug, Default)]
struct Tally {
    open_error: usize,
    read_error: usize,
    integrity_error: usize,
    undetected: usize,
    /// Every read succeeded and the integrity check passed, yet a user of the original was
    /// absent or read back with other data.
    silent_miss: usize,
    /// The first silent misses, for the report.
    silent_examples: Vec<String>,
    wrong_user: Vec<String>,
    /// Copies on which redb panicked and userdir turned the panic into an error.
    caught_panics: usize,
    /// Where the caught panics were raised (redb's file and line; every panic of every copy)
    /// and how often.
    caught_at: std::collections::BTreeMap<String, usize>,
    /// Panics that reached the test: must stay empty.
    escaped_panics: Vec<String>,
    /// Writes after the reads: (succeeded, failed).
    writes: (usize, usize),
    /// Reopens after the writes: (succeeded, failed).
    reopens: (usize, usize),
}

/// The panics raised since the last `take`, as `file:line: message`.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn check_user(
    what: &str,
    key: &str,
    r: userdir::Result<Option<User>>,
    ok: impl Fn(&User) -> bool,
    t: &mut Tally,
    errors: &mut bool,
    missing: &mut bool,
) {
    match r {
        Ok(Some(u)) if !ok(&u) => t.wrong_user.push(format!(
            "{what} {key:?} returned user {} ({:?}, {:?}, {:?})",
            u.id, u.username, u.email, u.external_id
        )),
        Ok(Some(_)) => {}
        Ok(None) => *missing = true,
        Err(_) => *errors = true,
    }
}

/// Opens a damaged copy and reads everything; records the outcome.
fn probe(path: &std::path::Path, users: &[Known], originals: &[User], t: &mut Tally) {
    let dir = match builder().open(path) {
        Ok(d) => d,
        Err(_) => {
            t.open_error += 1;
            return;
        }
    };
    let mut errors = false;
    let mut missing = false;
    if dir.count().is_err() {
        errors = true;
    }
    for k in users {
        let (e, m) = (&mut errors, &mut missing);
        check_user(
            "get",
            &k.id.to_string(),
            dir.get(k.id),
            |u| u.id == k.id,
            t,
            e,
            m,
        );
        let ukey = lookup_key(&k.username);
        let username_ok =
            |u: &User| u.username.as_deref().map(caseless_key).as_deref() == Some(ukey.as_str());
        check_user(
            "username",
            &k.username,
            dir.find_by_username(&k.username),
            username_ok,
            t,
            e,
            m,
        );
        let ekey = lookup_key(&k.email);
        let email_ok =
            |u: &User| u.email.as_deref().map(caseless_key).as_deref() == Some(ekey.as_str());
        check_user(
            "email",
            &k.email,
            dir.find_by_email(&k.email),
            email_ok,
            t,
            e,
            m,
        );
        check_user(
            "login id",
            &k.email,
            dir.find_by_login_id(&k.email),
            |u| email_ok(u) || username_ok(u),
            t,
            e,
            m,
        );
        check_user(
            "external id",
            &k.external,
            dir.find_by_external_id(&k.external),
            |u| u.external_id.as_deref() == Some(k.external.as_str()),
            t,
            e,
            m,
        );
        check_user(
            "resolve",
            &k.username,
            dir.resolve(&k.username),
            |u| username_ok(u) || email_ok(u) || u.external_id.as_deref() == Some(&k.username),
            t,
            e,
            m,
        );
    }
    // Every field of every user, as in the original.
    let mut differs = None;
    for o in originals {
        match dir.get(o.id) {
            Ok(Some(u)) if format!("{u:?}") != format!("{o:?}") => {
                differs.get_or_insert_with(|| format!("user {} reads back changed", o.id));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                differs.get_or_insert_with(|| format!("user {} is missing", o.id));
            }
            Err(_) => errors = true,
        }
    }
    let integrity = dir.check_integrity();
    // Writes on the damaged copy: any outcome but a panic.
    let w1 = dir.create(NewUser::with_username("probe-writer").email("probe@example.com"));
    let w2 = dir.deactivate(users[0].id);
    for ok in [w1.is_ok(), w2.is_ok()] {
        if ok {
            t.writes.0 += 1;
        } else {
            t.writes.1 += 1;
        }
    }
    drop(dir);
    match builder().open(path) {
        Ok(again) => {
            let _ = again.count();
            let _ = again.get(users[1].id);
            t.reopens.0 += 1;
        }
        Err(_) => t.reopens.1 += 1,
    }
    if errors {
        t.read_error += 1;
    } else if integrity.is_err() {
        t.integrity_error += 1;
    } else if missing || differs.is_some() {
        t.silent_miss += 1;
        if t.silent_examples.len() < 5 {
            t.silent_examples
                .push(differs.unwrap_or_else(|| "a lookup found nothing".into()));
        }
    } else {
        t.undetected += 1;
    }
}

fn run_damaged(
    path: &std::path::Path,
    bytes: &[u8],
    (users, originals): (&[Known], &[User]),
    t: &mut Tally,
    label: &str,
) {
    std::fs::write(path, bytes).unwrap();
    // The log the previous copy's writes left (same directory, same salt) is not this copy's.
    let mut log = path.as_os_str().to_owned();
    log.push(".wal");
    let _ = std::fs::remove_file(log);
    PANICS.lock().unwrap().clear();
    let r = catch_unwind(AssertUnwindSafe(|| probe(path, users, originals, t)));
    let raised = std::mem::take(&mut *PANICS.lock().unwrap());
    if r.is_err() {
        t.escaped_panics.push(format!(
            "{label}: {}",
            raised.last().cloned().unwrap_or_default()
        ));
    } else if !raised.is_empty() {
        t.caught_panics += 1;
        for p in raised {
            // `…/redb-4.6.0/src/tree_store/btree_base.rs:686: message` → `redb-4.6.0/src/…:686`
            let at = p.split(": ").next().unwrap_or_default();
            let at = at.find("redb-").map_or(at, |i| &at[i..]).to_owned();
            *t.caught_at.entry(at).or_default() += 1;
        }
    }
}

#[test]
fn damaged_files_never_panic_nor_return_a_wrong_user() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
            })
            .unwrap_or_default();
        // Only the start of the message: enough to tell the panics apart.
        let msg: String = msg.chars().take(80).collect();
        if let Ok(mut p) = PANICS.lock() {
            p.push(format!("{loc}: {msg}"));
        }
    }));
    let points = env_u64("USERDIR_DAMAGE_POINTS", 150);
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("original.redb");
    let users = known_users();
    let originals: Vec<User> = {
        let dir = builder().open(&original).unwrap();
        for k in &users {
            dir.create(
                NewUser::with_username(&k.username)
                    .id(k.id)
                    .email(&k.email)
                    .external_id(&k.external)
                    .role("staff"),
            )
            .unwrap();
        }
        dir.check_integrity().unwrap();
        users
            .iter()
            .map(|k| dir.get(k.id).unwrap().unwrap())
            .collect()
    };
    let bytes = std::fs::read(&original).unwrap();
    // Offsets: where the file holds data (non-zero bytes), plus anywhere.
    let data_offsets: Vec<usize> = (0..bytes.len()).filter(|i| bytes[*i] != 0).collect();
    let mut rng = Rng(0xDA4A6E);
    let damaged = tmp.path().join("damaged.redb");
    let mut flips = Tally::default();
    for i in 0..points {
        let at = if i % 4 == 3 {
            rng.below(bytes.len() as u64) as usize
        } else {
            data_offsets[rng.below(data_offsets.len() as u64) as usize]
        };
        let mut b = bytes.clone();
        b[at] ^= 1 << rng.below(8);
        if rng.chance(30) {
            // A second flip nearby: a burst.
            let at2 = (at + 1 + rng.below(64) as usize).min(b.len() - 1);
            b[at2] ^= 0xFF;
        }
        run_damaged(
            &damaged,
            &b,
            (&users, &originals),
            &mut flips,
            &format!("flip at {at}"),
        );
    }
    let mut cuts = Tally::default();
    for i in 0..points {
        // Never to zero bytes: an empty file is what `touch` makes, and opening one makes a
        // new, empty directory (documented on `Builder::open`); nothing is left to detect.
        let at = if i < 7 {
            [1, 16, 512, 4096, 4097, bytes.len() / 2, bytes.len() - 1][i as usize]
        } else {
            1 + rng.below(bytes.len() as u64 - 1) as usize
        };
        run_damaged(
            &damaged,
            &bytes[..at],
            (&users, &originals),
            &mut cuts,
            &format!("truncate at {at}"),
        );
    }
    drop(std::panic::take_hook()); // the default hook again, for the assertions below
    for (kind, t) in [("flipped bytes", &flips), ("truncated", &cuts)] {
        eprintln!(
            "{kind} ({points} copies of a {} byte file): open error {}, read error {}, \
             integrity error {}, silent miss {}, undetected {}, wrong user {}; \
             redb panicked on {} copies, every one caught and turned into an error; \
             escaped panics {}; writes after the reads: {} ok, {} refused; \
             reopens: {} ok, {} refused",
            bytes.len(),
            t.open_error,
            t.read_error,
            t.integrity_error,
            t.silent_miss,
            t.undetected,
            t.wrong_user.len(),
            t.caught_panics,
            t.escaped_panics.len(),
            t.writes.0,
            t.writes.1,
            t.reopens.0,
            t.reopens.1,
        );
        for (at, n) in &t.caught_at {
            eprintln!("  caught {n} panic(s) raised at {at}");
        }
    }
    for t in [&flips, &cuts] {
        assert!(
            t.escaped_panics.is_empty(),
            "panics reached the caller: {:#?}",
            t.escaped_panics
        );
        assert_eq!(
            t.silent_miss, 0,
            "damage that no read and no check saw: {:#?}",
            t.silent_examples
        );
        assert!(
            t.wrong_user.is_empty(),
            "wrong users: {:#?}",
            &t.wrong_user[..t.wrong_user.len().min(10)]
        );
    }
}
