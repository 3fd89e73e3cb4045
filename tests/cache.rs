//! The lookup cache never answers with a user as it was before a committed write: writer
//! threads rename, re-mail, update, deactivate, delete and re-create users while reader threads
//! look them up (by id, username, email and login id, answered from the cache when it holds
//! them). After each write returns, the writer publishes what it wrote; a reader takes the
//! published state *before* its lookup, so its answer must be at least that new.
//!
//! `USERDIR_CACHE_TEST_ROUNDS` sets the writes per writer thread (default 300).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use userdir::{Argon2Params, Directory, Durability, ManualClock, NewUser, User, UserUpdate};
use uuid::Uuid;

fn rounds() -> u64 {
    std::env::var("USERDIR_CACHE_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// What the last acknowledged write of one slot left: the user's id (a deleted user is
/// re-created under a new id), the generation `g` that its names carry, and its version.
#[derive(Clone, Debug)]
struct Published {
    id: Uuid,
    g: u64,
    version: u64,
    active: bool,
    /// A write of the slot is under way (a delete and re-create is two writes).
    writing: bool,
}

fn name(slot: usize, g: u64) -> String {
    format!("Slot{slot}-Gen{g}")
}

fn mail(slot: usize, g: u64) -> String {
    format!("slot{slot}.gen{g}@example.com")
}

/// Every name a slot had before generation `g` is free once `g` is published: no lookup may
/// find it (names are never reused).
fn check_stale_names(dir: &Directory, slot: usize, p: &Published) {
    if p.g == 0 {
        return;
    }
    let old = p.g - 1;
    assert_eq!(dir.find_by_username(&name(slot, old)).unwrap(), None);
    assert_eq!(dir.find_by_email(&mail(slot, old)).unwrap(), None);
    assert_eq!(
        dir.find_by_login_id(&name(slot, old).to_uppercase())
            .unwrap(),
        None
    );
}

/// A lookup's answer against the state published before it began.
fn check_answer(what: &str, got: Option<User>, p: &Published, live: &Mutex<Published>) {
    match got {
        Some(u) if u.id == p.id => {
            assert!(
                u.version >= p.version,
                "{what}: version {} answered after version {} was written",
                u.version,
                p.version
            );
            if u.version == p.version {
                assert_eq!(u.active, p.active, "{what}: stale active flag");
            }
        }
        Some(u) => {
            // Only a later write (a delete and re-create) gives the slot another id.
            let now = live.lock().clone();
            assert!(
                now.writing || now.id != p.id,
                "{what}: answered {} for {}",
                u.id,
                p.id
            );
        }
        None => {
            // Only a later write (a rename, a delete) makes the published names miss.
            let now = live.lock().clone();
            assert!(
                now.writing || now.id != p.id || now.g > p.g,
                "{what}: missed the user written as {p:?}"
            );
        }
    }
}

fn run(dir: &Directory) {
    const SLOTS: usize = 6;
    const WRITERS: usize = 2;
    const READERS: usize = 3;
    let rounds = rounds();
    let slots: Arc<Vec<Mutex<Published>>> = Arc::new(
        (0..SLOTS)
            .map(|s| {
                let u = dir
                    .create(NewUser::with_username(name(s, 0)).email(mail(s, 0)))
                    .unwrap();
                Mutex::new(Published {
                    id: u.id,
                    g: 0,
                    version: u.version,
                    active: true,
                    writing: false,
                })
            })
            .collect(),
    );
    // Writers that finished their rounds; the readers stop when all did.
    let done = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let (slots, done) = (Arc::clone(&slots), Arc::clone(&done));
            scope.spawn(move || {
                // Each writer owns the slots w, w + WRITERS, ...
                for round in 0..rounds {
                    let slot = w + WRITERS * (round as usize % (SLOTS / WRITERS));
                    let p = {
                        let mut live = slots[slot].lock();
                        live.writing = true;
                        live.clone()
                    };
                    let g = p.g + 1;
                    let written = match round % 5 {
                        // Rename (username and email) through an update.
                        0 | 1 => {
                            let u = dir.get(p.id).unwrap().unwrap();
                            let mut up = UserUpdate::from(&u);
                            up.profile.username = Some(name(slot, g));
                            up.profile.email = Some(mail(slot, g));
                            up.profile.emails.clear();
                            dir.update(p.id, up, None).unwrap()
                        }
                        // Deactivate or reactivate: same names, a new version.
                        2 | 3 => {
                            let u = if p.active {
                                dir.deactivate(p.id).unwrap()
                            } else {
                                dir.reactivate(p.id).unwrap()
                            };
                            *slots[slot].lock() = Published {
                                version: u.version,
                                active: u.active,
                                writing: false,
                                ..p
                            };
                            continue;
                        }
                        // Delete, then create under new names and a new id.
                        _ => {
                            dir.delete(p.id).unwrap();
                            dir.create(NewUser::with_username(name(slot, g)).email(mail(slot, g)))
                                .unwrap()
                        }
                    };
                    *slots[slot].lock() = Published {
                        id: written.id,
                        g,
                        version: written.version,
                        active: written.active,
                        writing: false,
                    };
                }
                done.fetch_add(1, Ordering::AcqRel);
            });
        }
        for r in 0..READERS {
            let (slots, done, reads) = (Arc::clone(&slots), Arc::clone(&done), Arc::clone(&reads));
            scope.spawn(move || {
                let mut k = r;
                while done.load(Ordering::Acquire) < WRITERS {
                    k = k.wrapping_add(1);
                    let slot = k % SLOTS;
                    let live = &slots[slot];
                    let p = live.lock().clone();
                    match k % 4 {
                        0 => check_answer("get", dir.get(p.id).unwrap(), &p, live),
                        1 => check_answer(
                            "find_by_username",
                            dir.find_by_username(&name(slot, p.g).to_lowercase())
                                .unwrap(),
                            &p,
                            live,
                        ),
                        2 => check_answer(
                            "find_by_email",
                            dir.find_by_email(&mail(slot, p.g)).unwrap(),
                            &p,
                            live,
                        ),
                        _ => check_answer(
                            "find_by_login_id",
                            dir.find_by_login_id(&mail(slot, p.g).to_uppercase())
                                .unwrap(),
                            &p,
                            live,
                        ),
                    }
                    check_stale_names(dir, slot, &p);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert!(reads.load(Ordering::Relaxed) > 0);
    // Finally every lookup agrees with a fresh snapshot.
    for (slot, s) in slots.iter().enumerate() {
        let p = s.lock().clone();
        let want = dir.read(|tx| tx.get(p.id)).unwrap();
        assert_eq!(dir.get(p.id).unwrap(), want);
        assert_eq!(dir.find_by_username(&name(slot, p.g)).unwrap(), want);
        assert_eq!(dir.find_by_email(&mail(slot, p.g)).unwrap(), want);
    }
    assert!(dir.check_integrity().is_ok());
}

fn builder() -> userdir::Builder {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
}

#[test]
fn no_stale_lookup_after_a_write_returns_in_memory() {
    run(&builder().in_memory().unwrap());
}

#[test]
fn no_stale_lookup_after_a_write_returns_in_a_file_with_group_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = builder()
        .durability(Durability::Eventual)
        .open(tmp.path().join("users.redb"))
        .unwrap();
    run(&dir);
}

#[test]
fn a_tiny_cache_evicts_and_stays_consistent() {
    run(&builder().user_cache(2).in_memory().unwrap());
}

/// Writes inside `Directory::write` (several operations in one transaction) and imports
/// invalidate too; a transaction that fails changes nothing in the cache either.
#[test]
fn transactions_and_imports_invalidate() {
    let dir = builder().in_memory().unwrap();
    let a = dir.create(NewUser::with_username("ann")).unwrap();
    let b = dir.create(NewUser::with_username("bob")).unwrap();
    // Cached.
    assert!(dir.find_by_username("ann").unwrap().is_some());
    assert!(dir.get(b.id).unwrap().unwrap().active);
    dir.write(|tx| {
        tx.deactivate(b.id)?;
        tx.delete(a.id)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(dir.find_by_username("ann").unwrap(), None);
    assert_eq!(dir.get(a.id).unwrap(), None);
    assert!(!dir.get(b.id).unwrap().unwrap().active);
    // A failed transaction: nothing changed, the cache answers the committed state.
    let r: userdir::Result<()> = dir.write(|tx| {
        tx.reactivate(b.id)?;
        Err(userdir::Error::NotFound(Uuid::nil()))
    });
    assert!(r.is_err());
    assert!(!dir.get(b.id).unwrap().unwrap().active);
    // An import of a new user named as the deleted one was.
    let report = dir
        .import(userdir::ImportBatch::new(vec![NewUser::with_username(
            "ann",
        )]))
        .unwrap();
    assert_eq!(report.imported, 1);
    let ann = dir.find_by_username("ANN").unwrap().unwrap();
    assert_ne!(ann.id, a.id);
    assert_eq!(dir.get(ann.id).unwrap().unwrap(), ann);
}

/// The cache off: the same answers.
#[test]
fn without_the_cache() {
    run(&builder().user_cache(0).in_memory().unwrap());
}

/// A read transaction takes users from the cache only as its snapshot holds them: while a
/// writer moves the one `token` role from user to user and swaps the two users' names (in one
/// transaction), readers list every user sorted by userName, page the `roles eq "token"`
/// index and read every user by id inside one `Directory::read`, with the cache warm. Each
/// answer is one snapshot: exactly one holder, names in strict index order.
fn pages_hold_one_snapshot(dir: &Directory) {
    use userdir::PatchOp;
    use userdir::query::{Search, SortField};
    const USERS: usize = 16;
    let ids: Vec<Uuid> = (0..USERS)
        .map(|i| {
            let mut n = NewUser::with_username(format!("u{i:02}"));
            if i == 0 {
                n = n.role("token");
            }
            dir.create(n).unwrap().id
        })
        .collect();
    let done = AtomicUsize::new(0);
    let checks = AtomicU64::new(0);
    let holders = |users: &[User]| users.iter().filter(|u| u.roles.contains("token")).count();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut holder = 0usize;
            for round in 1..=rounds() {
                let next = (holder + 1 + (round as usize * 7) % (USERS - 1)) % USERS;
                let (from, to) = (ids[holder], ids[next]);
                dir.write(|tx| {
                    // The two swap names (through a third one): a name read in an older
                    // snapshot belongs to the other user in a newer one.
                    let a = tx.get(from)?.and_then(|u| u.username.clone()).unwrap();
                    let b = tx.get(to)?.and_then(|u| u.username.clone()).unwrap();
                    let swap = |n: &str| PatchOp::replace("userName", n.to_owned());
                    tx.patch(from, &[swap(&format!("tmp-{round}"))], None)?;
                    tx.patch(to, &[swap(&a), PatchOp::add("roles", "token")], None)?;
                    tx.patch(
                        from,
                        &[swap(&b), PatchOp::remove(r#"roles[value eq "token"]"#)],
                        None,
                    )?;
                    Ok(())
                })
                .unwrap();
                holder = next;
            }
            done.store(1, Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let all = Search::all().sort(SortField::username()).limit(USERS);
                let token = Search::filter(r#"roles eq "token""#).unwrap();
                while done.load(Ordering::Acquire) == 0 {
                    let page = dir.search(&all).unwrap();
                    assert_eq!(page.total, USERS as u64);
                    assert_eq!(page.users.len(), USERS);
                    assert_eq!(holders(&page.users), 1, "one snapshot, one holder");
                    let names: Vec<&str> = page
                        .users
                        .iter()
                        .map(|u| u.username.as_deref().unwrap())
                        .collect();
                    assert!(names.is_sorted_by(|a, b| a < b), "index order: {names:?}");
                    let page = dir.search(&token).unwrap();
                    assert_eq!(page.total, 1);
                    assert_eq!(page.users.len(), 1);
                    assert!(page.users[0].roles.contains("token"));
                    let users = dir
                        .read(|tx| {
                            let users = ids
                                .iter()
                                .map(|id| tx.get(*id))
                                .collect::<userdir::Result<Vec<_>>>()?;
                            // Each name finds its user in the same snapshot (login keys
                            // from the cache too).
                            for u in users.iter().flatten() {
                                let name = u.username.as_deref().unwrap();
                                let found = tx.find_by_username(name)?.map(|f| f.id);
                                assert_eq!(found, Some(u.id), "{name} in one snapshot");
                            }
                            Ok(users)
                        })
                        .unwrap();
                    let users: Vec<User> = users.into_iter().flatten().collect();
                    assert_eq!(holders(&users), 1, "one snapshot, one holder");
                    // Warm the cache with the newest state, out of any snapshot.
                    for id in &ids {
                        if let Some(u) = dir.get(*id).unwrap() {
                            dir.find_by_username(u.username.as_deref().unwrap())
                                .unwrap();
                        }
                    }
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert!(checks.load(Ordering::Relaxed) > 0);
    dir.check_integrity().unwrap();
}

#[test]
fn pages_and_read_transactions_hold_one_snapshot_in_memory() {
    pages_hold_one_snapshot(&builder().in_memory().unwrap());
}

#[test]
fn pages_and_read_transactions_hold_one_snapshot_in_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = builder()
        .durability(Durability::Eventual)
        .open(tmp.path().join("users.redb"))
        .unwrap();
    pages_hold_one_snapshot(&dir);
}
