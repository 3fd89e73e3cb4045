//! Creating a directory file is atomic: `Directory::open(path)` builds a new directory under a
//! temporary name in the same folder (`.<name>.creating-<32 hex digits>`) and links it to `path`
//! only once it is complete, so the path either does not exist or holds a whole directory. A
//! crash during creation leaves a temporary file at most; these tests lay such files down by hand
//! (`tests/crash_kill.rs` kills real processes while they create files).
//!
//! Also: two creators racing for one path (one wins, the other gets `AlreadyOpen`, nothing is
//! replaced), stale temporary files (removed when old, left alone when young or not ours), a
//! custom backend left by an interrupted creation (started afresh), and content that is not a
//! directory (refused, never wiped).

use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use userdir::{Argon2Params, Backend, Directory, Error, ManualClock, MemoryBackend, NewUser};
use uuid::Uuid;

fn builder() -> userdir::Builder {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
}

fn open(path: &Path) -> userdir::Result<Directory> {
    builder().open(path)
}

fn temp_name(name: &str) -> String {
    format!(".{name}.creating-{}", Uuid::new_v4().simple())
}

/// The names of the temporary files of `name` in `folder`, sorted.
fn temps(folder: &Path, name: &str) -> Vec<String> {
    let prefix = format!(".{name}.creating-");
    let mut out: Vec<String> = fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    out.sort();
    out
}

/// The bytes of a directory file as a crash before redb's last creation step leaves them: all
/// there but the magic number (redb writes it last).
fn without_magic() -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("whole.redb");
    drop(open(&path).unwrap());
    let mut bytes = fs::read(&path).unwrap();
    bytes[..9].fill(0);
    bytes
}

/// Moves the file's modification time `age` into the past (from its own, to leave the clock
/// alone).
fn set_age(path: &Path, age: Duration) {
    let f = fs::File::options().write(true).open(path).unwrap();
    let mtime = f.metadata().unwrap().modified().unwrap();
    f.set_modified(mtime - age).unwrap();
}

#[test]
fn a_crash_during_creation_leaves_a_temporary_file_that_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let interrupted = without_magic();
    // What crashes at different moments of a creation leave behind.
    let strays: Vec<(String, Vec<u8>)> = vec![
        (temp_name("users.redb"), interrupted.clone()),
        (temp_name("users.redb"), interrupted[..100].to_vec()),
        (temp_name("users.redb"), Vec::new()),
    ];
    for (name, bytes) in &strays {
        fs::write(tmp.path().join(name), bytes).unwrap();
    }
    let dir = open(&path).expect("the path opens as a fresh directory");
    assert_eq!(dir.count().unwrap(), 0);
    let u = dir.create(NewUser::with_username("alice")).unwrap();
    dir.check_integrity().unwrap();
    // Young temporary files may belong to a creation in progress: left alone, never read.
    let mut names: Vec<String> = strays.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        temps(tmp.path(), "users.redb"),
        names,
        "no temporary file of ours is left"
    );
    for (name, bytes) in &strays {
        assert_eq!(&fs::read(tmp.path().join(name)).unwrap(), bytes);
    }
    drop(dir);
    let dir = open(&path).unwrap();
    assert_eq!(dir.get(u.id).unwrap().map(|u| u.id), Some(u.id));
}

#[test]
fn old_temporary_files_of_the_path_are_removed_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let hour = Duration::from_secs(3600);
    let old_ours = temp_name("users.redb");
    let young_ours = temp_name("users.redb");
    let keep = [
        young_ours.clone(),
        ".users.redb.creating-notours".to_owned(),
        temp_name("other.redb"),
        "users.redb.bak".to_owned(),
        ".users.redb".to_owned(),
    ];
    for name in keep.iter().chain([&old_ours]) {
        fs::write(tmp.path().join(name), b"x").unwrap();
    }
    for name in keep.iter().filter(|n| **n != young_ours).chain([&old_ours]) {
        set_age(&tmp.path().join(name), hour);
    }
    let dir = open(&path).unwrap();
    assert!(
        !tmp.path().join(&old_ours).exists(),
        "an old temporary file is removed"
    );
    for name in &keep {
        assert!(tmp.path().join(name).exists(), "{name} is left alone");
    }
    drop(dir);
    // Opening an existing directory also clears them.
    let another = temp_name("users.redb");
    fs::write(tmp.path().join(&another), b"x").unwrap();
    set_age(&tmp.path().join(&another), hour);
    drop(open(&path).unwrap());
    assert!(!tmp.path().join(&another).exists());
    let mut left = vec![young_ours, ".users.redb.creating-notours".to_owned()];
    left.sort();
    assert_eq!(temps(tmp.path(), "users.redb"), left);
}

/// A file left at the path itself by an in-place creation (earlier versions, or redb directly)
/// is refused with a clear error and never wiped: userdir cannot tell it from a foreign file.
#[test]
fn a_file_without_magic_at_the_path_is_refused_not_wiped() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let bytes = without_magic();
    fs::write(&path, &bytes).unwrap();
    match open(&path) {
        Err(Error::NotAUserdirFile(_)) => {}
        other => panic!("expected NotAUserdirFile, got {:?}", other.map(|_| ())),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(temps(tmp.path(), "users.redb").is_empty());
}

#[test]
fn racing_creators_one_wins_and_nothing_is_replaced() {
    const THREADS: usize = 6;
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let path = tmp.path().join(format!("race{round}.redb"));
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    open(&path)
                })
            })
            .collect();
        // Every result is kept alive until all are in: the winner holds the file meanwhile.
        let results: Vec<userdir::Result<Directory>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&Directory> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one creator gets the file"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, Error::AlreadyOpen), "round {round}: {e}");
            }
        }
        let u = winners[0]
            .create(NewUser::with_username(format!("winner{round}")))
            .unwrap();
        drop(results);
        let dir = open(&path).unwrap();
        assert_eq!(dir.count().unwrap(), 1, "round {round}");
        assert!(dir.get(u.id).unwrap().is_some());
        let name = format!("race{round}.redb");
        assert!(
            temps(tmp.path(), &name).is_empty(),
            "round {round}: {:?}",
            temps(tmp.path(), &name)
        );
    }
}

#[test]
fn creation_failures_are_errors_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_folder = tmp.path().join("no-such-folder").join("users.redb");
    assert!(matches!(open(&missing_folder), Err(Error::Storage(_))));
    let folder = tmp.path().join("a-folder");
    fs::create_dir(&folder).unwrap();
    assert!(open(&folder).is_err());
    assert!(open(Path::new("/")).is_err());
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the folder made above");
}

/// A custom backend sharing its bytes with the test, which keeps the other handle.
#[derive(Debug)]
struct Shared(Arc<MemoryBackend>);

impl Backend for Shared {
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write(offset, data)
    }
}

fn backend_with(bytes: &[u8]) -> Arc<MemoryBackend> {
    let b = MemoryBackend::new();
    b.set_len(bytes.len() as u64).unwrap();
    b.write(0, bytes).unwrap();
    Arc::new(b)
}

fn contents(b: &MemoryBackend) -> Vec<u8> {
    let mut out = vec![0; usize::try_from(b.len().unwrap()).unwrap()];
    b.read(0, &mut out).unwrap();
    out
}

#[test]
fn a_backend_left_by_an_interrupted_creation_starts_afresh() {
    let interrupted = without_magic();
    for bytes in [
        vec![0u8; 8192],
        vec![0u8; 5],
        interrupted.clone(),
        interrupted[..4096].to_vec(),
    ] {
        let b = backend_with(&bytes);
        let dir = builder()
            .open_backend(Shared(b.clone()))
            .unwrap_or_else(|e| panic!("{} bytes: {e}", bytes.len()));
        assert_eq!(dir.count().unwrap(), 0);
        dir.create(NewUser::with_username("alice")).unwrap();
        dir.check_integrity().unwrap();
        drop(dir);
        let dir = builder().open_backend(Shared(b)).unwrap();
        assert_eq!(dir.count().unwrap(), 1);
    }
}

#[test]
fn a_backend_with_other_content_is_refused_untouched() {
    let mut other = b"not a directory".to_vec();
    other.resize(8192, 0);
    let mut late_byte = vec![0u8; 8192];
    late_byte[8] = 1; // zero where the magic number goes but for its last byte
    for bytes in [other, b"abc".to_vec(), late_byte] {
        let b = backend_with(&bytes);
        match builder().open_backend(Shared(b.clone())) {
            Err(Error::NotAUserdirFile(_)) => {}
            r => panic!("expected NotAUserdirFile, got {:?}", r.map(|_| ())),
        }
        assert_eq!(contents(&b), bytes, "the backend is left as it was");
    }
}
