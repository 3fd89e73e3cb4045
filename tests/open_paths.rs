//! How a directory file is found and opened (issue 14): links, the redo log's path, read-only
//! opens, file modes, and errors that keep their cause.
//!
//! A crash is simulated as in `tests/wal.rs`: the directory file and its log are copied while
//! the directory is open (what a killed process leaves).

use std::path::{Path, PathBuf};

use userdir::{Argon2Params, Directory, Error, ManualClock, NewUser};

fn builder() -> userdir::Builder {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
}

fn wal(p: &Path) -> PathBuf {
    let mut n = p.file_name().unwrap().to_os_string();
    n.push(".wal");
    p.with_file_name(n)
}

/// The crash image of `real` (the file and the log beside it) at `to`.
fn crash_copy(real: &Path, to: &Path) {
    std::fs::copy(real, to).unwrap();
    if wal(real).exists() {
        std::fs::copy(wal(real), wal(to)).unwrap();
    }
}

/// Scenario 2: writes acknowledged through a symbolic link survive a crash under the real
/// name: the log lives beside the real file.
#[cfg(unix)]
#[test]
fn writes_through_a_symlink_reach_the_real_files_log() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real.redb");
    drop(builder().open(&real).unwrap());
    let link = tmp.path().join("link.redb");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dir = builder().open(&link).unwrap();
    let ann = dir.create(NewUser::with_username("ann")).unwrap();
    // The process dies: only what is on disk under the real name counts.
    let img = tmp.path().join("img.redb");
    crash_copy(&real, &img);
    assert!(!wal(&link).exists(), "a log beside the link");
    drop(dir);
    let d = builder().open(&img).unwrap();
    assert_eq!(d.get(ann.id).unwrap().map(|u| u.id), Some(ann.id));
    d.check_integrity().unwrap();
    // A link to a folder's file by a relative name works the same.
    let rel = builder().open(&link).unwrap();
    assert_eq!(rel.count().unwrap(), 1);
}

/// Scenario 2: a directory file with a second hard link is refused with a clear error (its log
/// could sit beside one name only).
#[cfg(unix)]
#[test]
fn a_file_with_two_hard_links_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.redb");
    let dir = builder().open(&a).unwrap();
    dir.create(NewUser::with_username("ann")).unwrap();
    drop(dir);
    let b = tmp.path().join("b.redb");
    std::fs::hard_link(&a, &b).unwrap();
    for p in [&a, &b] {
        match builder().open(p) {
            Err(e @ Error::Storage(_)) => {
                let msg = e.to_string();
                assert!(msg.contains("hard links"), "{msg}");
                assert!(msg.contains(".redb"), "the message names the file: {msg}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        assert!(builder().read_only().open(p).is_err());
    }
    std::fs::remove_file(&b).unwrap();
    assert_eq!(builder().open(&a).unwrap().count().unwrap(), 1);
}

/// Scenario 2: a `<file>.wal` that is a symbolic link is never followed: the open is refused
/// and the link's target is left as it was.
#[cfg(unix)]
#[test]
fn a_symlinked_log_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    drop(builder().open(&p).unwrap());
    let _ = std::fs::remove_file(wal(&p));
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, wal(&p)).unwrap();
    let r = builder()
        .open(&p)
        .and_then(|d| d.create(NewUser::with_username("ann")).map(|_| d));
    match r {
        Err(e @ Error::Storage(_)) => assert!(e.to_string().contains("symbolic link"), "{e}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // A dangling link at the log's path is refused too (never created through).
    std::fs::remove_file(&victim).unwrap();
    let r = builder()
        .open(&p)
        .and_then(|d| d.create(NewUser::with_username("ann")).map(|_| d));
    assert!(r.is_err());
    assert!(
        !victim.exists(),
        "the log was created through a dangling link"
    );
}

/// Scenario 3: a read-only open serves every read, refuses writes, and leaves the file and its
/// log byte for byte as they were.
#[test]
fn a_read_only_open_reads_everything_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = builder().open(&p).unwrap();
    let ann = dir
        .create(
            NewUser::with_username("ann")
                .email("ann@example.com")
                .external_id("x-1")
                .role("admin"),
        )
        .unwrap();
    dir.create(NewUser::with_username("bob")).unwrap();
    drop(dir);
    let before = (std::fs::read(&p).unwrap(), std::fs::read(wal(&p)).ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let ro = builder().read_only().open(&p).unwrap();
    // Read-only opens share the file.
    let ro2 = builder().read_only().open(&p).unwrap();
    assert_eq!(ro2.count().unwrap(), 2);
    assert_eq!(ro.count().unwrap(), 2);
    assert_eq!(ro.get(ann.id).unwrap().unwrap().id, ann.id);
    assert!(ro.find_by_username("ANN").unwrap().is_some());
    assert!(ro.find_by_email("ann@example.com").unwrap().is_some());
    assert!(ro.find_by_external_id("x-1").unwrap().is_some());
    assert!(ro.resolve("bob").unwrap().is_some());
    let found = ro
        .search(&userdir::query::Search::filter("roles eq \"admin\"").unwrap())
        .unwrap();
    assert_eq!(found.users.len(), 1);
    ro.check_integrity().unwrap();
    ro.checkpoint().unwrap();
    assert!(matches!(
        ro.create(NewUser::with_username("carl")),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(ro.delete(ann.id), Err(Error::ReadOnly)));
    // A writable open is refused while readers hold the file.
    assert!(matches!(builder().open(&p), Err(Error::AlreadyOpen)));
    drop((ro, ro2));
    assert_eq!(
        (std::fs::read(&p).unwrap(), std::fs::read(wal(&p)).ok()),
        before
    );
    // Opening read-only never creates a file.
    let missing = tmp.path().join("missing.redb");
    assert!(builder().read_only().open(&missing).is_err());
    assert!(!missing.exists() && !wal(&missing).exists());
}

/// Scenario 3: a file whose log holds writes not yet in it (a crash) needs a writable open
/// first: the read-only open says so instead of serving stale data.
#[test]
fn a_read_only_open_of_a_crashed_file_asks_for_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = builder().open(&p).unwrap();
    dir.create(NewUser::with_username("ann")).unwrap();
    let img = tmp.path().join("img.redb");
    crash_copy(&p, &img);
    drop(dir);
    assert!(matches!(
        builder().read_only().open(&img),
        Err(Error::NeedsRecovery)
    ));
    // A writable open recovers; then read-only opens work.
    drop(builder().open(&img).unwrap());
    assert_eq!(
        builder().read_only().open(&img).unwrap().count().unwrap(),
        1
    );
}

/// A writable open with nothing to replay leaves the log as it was, and so does closing it.
#[test]
fn opening_with_nothing_to_replay_leaves_the_log_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = builder().open(&p).unwrap();
    dir.create(NewUser::with_username("ann")).unwrap();
    drop(dir);
    let log = std::fs::read(wal(&p)).unwrap();
    for _ in 0..3 {
        let d = builder().open(&p).unwrap();
        assert_eq!(d.count().unwrap(), 1);
    }
    assert_eq!(std::fs::read(wal(&p)).unwrap(), log);
}

/// Issue 14 item 6: new directory files and logs are private (mode 0600).
#[cfg(unix)]
#[test]
fn new_files_and_logs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = builder().open(&p).unwrap();
    dir.create(NewUser::with_username("ann")).unwrap();
    for f in [p.clone(), wal(&p)] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
}

/// Issue 14 item 5: a storage error keeps its `io::Error` (its kind tells a full disk from a
/// permission problem) and names the file, with one prefix.
#[test]
fn storage_errors_keep_their_cause_and_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = builder().open(&p).unwrap();
    dir.fail_log_after(0);
    let e = dir.create(NewUser::with_username("ann")).unwrap_err();
    let msg = e.to_string();
    assert_eq!(msg.matches("storage failure").count(), 1, "{msg}");
    assert!(msg.contains("users.redb.wal"), "{msg}");
    let Error::Storage(s) = &e else {
        panic!("{e:?}")
    };
    assert!(s.io_error().is_some() && e.io_error().is_some());
    let source = std::error::Error::source(&e).unwrap();
    assert!(std::error::Error::source(source).is_some(), "the io::Error");
    // A missing folder: the kind is there to inspect.
    let e = builder()
        .read_only()
        .open(tmp.path().join("no/such/users.redb"))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        e.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    // A group commit (concurrent writers) keeps one prefix too.
    drop(dir);
    let dir = builder().open(&p).unwrap();
    dir.fail_log_after(0);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let d = dir.clone();
            std::thread::spawn(move || d.create(NewUser::with_username(format!("u{i}"))))
        })
        .collect();
    for t in threads {
        if let Err(e) = t.join().unwrap() {
            let msg = e.to_string();
            assert!(msg.matches("storage failure").count() <= 1, "{msg}");
        }
    }
}
