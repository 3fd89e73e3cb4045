//! A damaged directory file (flipped bytes, truncation) must give an error on open or on read,
//! never a panic in userdir and never a wrong user: a lookup by username, email, login id or
//! external id must not return a user that does not carry that key, and `get(id)` must not
//! return a user with another id.
//!
//! Panics are caught at the test boundary and attributed by their source location: one in
//! userdir's own code fails the test; one inside redb is counted and reported (redb is not
//! ours to fix; debug builds of redb assert on some corrupt states).
//!
//! `USERDIR_DAMAGE_POINTS` sets the number of damaged copies per kind (default 150).

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
    /// A user that exists in the original was reported absent without any error.
    silent_miss: usize,
    wrong_user: Vec<String>,
    redb_panics: Vec<String>,
    userdir_panics: Vec<String>,
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

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
fn probe(path: &std::path::Path, users: &[Known], t: &mut Tally) {
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
    let integrity = dir.check_integrity();
    if errors {
        t.read_error += 1;
    } else if integrity.is_err() {
        t.integrity_error += 1;
    } else if missing {
        t.silent_miss += 1;
    } else {
        t.undetected += 1;
    }
}

fn run_damaged(path: &std::path::Path, bytes: &[u8], users: &[Known], t: &mut Tally, label: &str) {
    std::fs::write(path, bytes).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| probe(path, users, t)));
    if r.is_err() {
        let loc = LAST_PANIC.lock().unwrap().take().unwrap_or_default();
        // userdir's own files are `src/...` relative to the crate; tests are `tests/...`.
        if loc.starts_with("src/") || loc.starts_with("tests/") {
            t.userdir_panics.push(format!("{label}: {loc}"));
        } else {
            t.redb_panics.push(format!("{label}: {loc}"));
        }
    }
}

#[test]
fn damaged_files_never_panic_in_userdir_nor_return_a_wrong_user() {
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
        *LAST_PANIC.lock().unwrap() = Some(format!("{loc}: {msg}"));
    }));
    let points = env_u64("USERDIR_DAMAGE_POINTS", 150);
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("original.redb");
    let users = known_users();
    {
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
    }
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
        run_damaged(&damaged, &b, &users, &mut flips, &format!("flip at {at}"));
    }
    let mut cuts = Tally::default();
    for i in 0..points {
        let at = if i < 8 {
            [0, 1, 16, 512, 4096, 4097, bytes.len() / 2, bytes.len() - 1][i as usize]
        } else {
            rng.below(bytes.len() as u64) as usize
        };
        run_damaged(
            &damaged,
            &bytes[..at],
            &users,
            &mut cuts,
            &format!("truncate at {at}"),
        );
    }
    drop(std::panic::take_hook()); // the default hook again, for the assertions below
    for (kind, t) in [("flipped bytes", &flips), ("truncated", &cuts)] {
        eprintln!(
            "{kind} ({points} copies of a {} byte file): open error {}, read error {}, \
             integrity error {}, silent miss {}, undetected {}, wrong user {}, redb panics {}, \
             userdir panics {}",
            bytes.len(),
            t.open_error,
            t.read_error,
            t.integrity_error,
            t.silent_miss,
            t.undetected,
            t.wrong_user.len(),
            t.redb_panics.len(),
            t.userdir_panics.len()
        );
        for p in t.redb_panics.iter().take(5) {
            eprintln!("  redb panic: {p}");
        }
    }
    for t in [&flips, &cuts] {
        assert!(
            t.userdir_panics.is_empty(),
            "panics in userdir: {:#?}",
            t.userdir_panics
        );
        assert!(
            t.wrong_user.is_empty(),
            "wrong users: {:#?}",
            &t.wrong_user[..t.wrong_user.len().min(10)]
        );
    }
}
