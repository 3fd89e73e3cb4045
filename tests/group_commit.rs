//! Group commit: concurrent single-operation writes share transactions; each caller gets its own
//! result, and a caller whose operation fails its checks does not affect the others.

mod common;

use std::sync::{Arc, Barrier};

use userdir::{Argon2Params, Directory, Durability, Error, NewUser};

#[test]
fn concurrent_creates_with_conflicts_each_get_their_own_result() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .durability(Durability::Immediate)
        .open(tmp.path().join("g.redb"))
        .unwrap();
    let threads = 8;
    let per = 40;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let d = d.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                let mut mine = Vec::new();
                for i in 0..per {
                    // Every thread also tries a name every other thread tries: one wins.
                    let own = d.create(NewUser::with_username(format!("t{t}-u{i}")));
                    mine.push(own.unwrap().id);
                    let shared = d.create(NewUser::with_username(format!("SHARED-{i}")));
                    match shared {
                        Ok(u) => mine.push(u.id),
                        Err(Error::DuplicateUsername { .. }) => {}
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), threads * per + per);
    assert_eq!(d.count().unwrap(), all.len() as u64);
    for id in &all {
        assert!(d.get(*id).unwrap().is_some());
    }
    for i in 0..per {
        assert!(
            d.find_by_username(&format!("shared-{i}"))
                .unwrap()
                .is_some()
        );
    }
    d.check_integrity().unwrap();
}

#[test]
fn mixed_operations_from_many_threads_stay_consistent() {
    let (d, _) = common::dir();
    let ids: Vec<_> = (0..64)
        .map(|i| {
            d.create(NewUser::with_username(format!("m{i}")))
                .unwrap()
                .id
        })
        .collect();
    let ids = Arc::new(ids);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let d = d.clone();
            let ids = ids.clone();
            std::thread::spawn(move || {
                for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 8 == t) {
                    d.deactivate(*id).unwrap();
                    if n % 3 == 0 {
                        d.delete(*id).unwrap();
                        assert!(matches!(d.reactivate(*id), Err(Error::NotFound(_))));
                    } else {
                        d.reactivate(*id).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(d.count().unwrap(), 64 - 22);
    d.check_integrity().unwrap();
}
