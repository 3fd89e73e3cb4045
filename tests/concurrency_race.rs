//! Threads racing on the same keys; readers during writes.

mod common;

use std::sync::{Arc, Barrier};

use userdir::{Error, NewUser};

#[test]
fn eight_casings_race_one_wins() {
    for _round in 0..5 {
        let (d, _) = common::dir();
        let names = ["sam", "Sam", "SAM", "sAm", "saM", "SAm", "sAM", "ＳＡＭ"];
        let barrier = Arc::new(Barrier::new(names.len()));
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let d = d.clone();
                let b = barrier.clone();
                let n = n.to_string();
                std::thread::spawn(move || {
                    let p = d
                        .prepare(NewUser::with_username(n).password("pw-for-sam-1"))
                        .unwrap();
                    b.wait();
                    // Re-runnable: on PostgreSQL a serialization failure runs it again.
                    d.write_retrying(|tx| tx.create(p.clone()))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1);
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::DuplicateUsername { existing } if *existing == winners[0].id),
                    "{e:?}"
                );
            }
        }
        assert_eq!(d.count().unwrap(), 1);
        d.check_integrity().unwrap();
    }
}

#[test]
fn readers_see_consistent_snapshots_during_writes() {
    let (d, _) = common::dir();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let d = d.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                let u = d
                    .create(NewUser::with_username(format!("w{i}")).email(format!("w{i}@x.org")))
                    .unwrap();
                if i % 3 == 0 {
                    let mut up = userdir::UserUpdate::from(&u);
                    up.profile.username = Some(format!("renamed{i}"));
                    d.update(u.id, up, None).unwrap();
                }
                if i % 5 == 0 {
                    d.delete(u.id).unwrap();
                }
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let d = d.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    d.read(|tx| {
                        let n = tx.count()?;
                        // Every user in the snapshot is found by its own keys, in the same snapshot.
                        for i in 0..300 {
                            for name in [format!("w{i}"), format!("renamed{i}")] {
                                if let Some(u) = tx.find_by_username(&name)? {
                                    assert_eq!(
                                        userdir::identity::caseless_key(
                                            u.username.as_deref().unwrap()
                                        ),
                                        name
                                    );
                                    assert_eq!(
                                        tx.find_by_email(u.email.as_deref().unwrap())?.unwrap().id,
                                        u.id
                                    );
                                    assert_eq!(tx.get(u.id)?.unwrap(), u);
                                }
                            }
                        }
                        assert_eq!(tx.count()?, n);
                        Ok(())
                    })
                    .unwrap();
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    writer.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    d.check_integrity().unwrap();
}

#[test]
fn directory_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone>() {}
    assert_traits::<userdir::Directory>();
    let _: Option<Error> = None;
}
