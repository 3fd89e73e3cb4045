//! Robustness at the boundary with redb: no panic escapes it, and a new file appears whole.
//!
//! # Panics inside redb
//!
//! redb panics on some damaged files (a slice index out of range in a page, an `unwrap` or an
//! `assert` on a header field, more `debug_assert`s in debug builds) instead of returning an
//! error. userdir promises no panic on any input, including the bytes of a file, so every way
//! into redb runs under [`catch`]: opening (`Store::open`, `Store::with_backend`),
//! `Store::read`, `Store::write`, the group-commit batch, and dropping the database. Everything
//! userdir does with redb happens inside one of these: iterators, tables and transactions never
//! outlive the closure they were opened in, and a parallel scan (rayon) re-raises a worker's
//! panic on the calling thread, inside the same `catch`.
//!
//! A caught panic becomes [`Error::Corrupt`] with a fixed message (the panic's own message is
//! dropped: it could quote bytes of the file, that is user data). The store is then marked
//! failed, as after an I/O error: redb's in-memory state after a panic is unknown (its `std`
//! mutexes may be poisoned, a write transaction was abandoned half-way), so later writes answer
//! [`Error::NeedsReopen`]. Reads still run, each under its own `catch`. The `Directory` can be
//! dropped (the drop is caught too) and the file reopened.
//!
//! A panic in the closure a caller gives [`Directory::write`](crate::Directory::write) or
//! [`Directory::read`](crate::Directory::read) unwinds through the same boundary and is
//! converted the same way: nothing commits, and the store needs a reopen. The process's panic
//! hook is left alone, so the default hook still prints each caught panic on stderr. With
//! `panic = "abort"` nothing can be caught: the process aborts.
//!
//! # Creating a file
//!
//! redb initializes a new file in place, in several writes and fsyncs; a crash in between leaves
//! a file that has no redb magic number, which redb then refuses to open ("magic number
//! mismatch") until it is deleted. So when the path does not exist, [`open_path`] creates the
//! directory under a temporary name in the same folder (`.<name>.creating-<random>`), lets redb
//! initialize it and commits userdir's tables durably, then links it to the final name with
//! [`std::fs::hard_link`], which never replaces an existing file, removes the temporary name and
//! fsyncs the folder. The path therefore either does not exist or holds a complete directory.
//!
//! Two processes (or threads) creating the same path at once both build a temporary file; the
//! first link wins, and the loser drops its own file and opens the winner's, which answers
//! [`Error::AlreadyOpen`] while the winner holds it. Where hard links are not supported (FAT,
//! some network file systems) the link falls back to checking that the path is still absent and
//! renaming, which leaves a window of a few microseconds in which two creators could both rename
//! and the later one replaces the earlier one's fresh, empty directory.
//!
//! A crash during creation leaves only a temporary file. Temporary files of the path older than
//! [`STALE_AFTER`] are removed by later opens of the path (younger ones may belong to a creation
//! in progress and are left alone); none is ever read.
//!
//! An existing file is opened as before, by redb directly: an existing *empty* file (made by
//! `touch` or a temp-file helper) is initialized in place, without this protection.
//!
//! Custom backends ([`open_backend`]) cannot be renamed. There, a backend whose first bytes (where
//! redb's magic number goes) are all zero, or that is shorter than the magic number and all
//! zero, is taken for an interrupted creation: redb writes the magic number last, after every
//! other byte of the new file is on disk, and never clears it afterwards, so such a backend holds
//! no directory yet. It is emptied and initialized afresh. Any other content is left to redb,
//! which opens it or refuses it.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redb::backends::FileBackend;
use redb::{Database, StorageBackend};

use super::{Db, Store, db_error};
use crate::error::{Error, Result};

/// A panic was caught; its payload is gone.
#[derive(Debug)]
pub(crate) struct Panicked;

/// Runs `f`; a panic that unwinds out of it becomes `Err(Panicked)`.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> std::result::Result<R, Panicked> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(payload) => {
            // A payload's destructor may panic in turn; if it does, leak that second payload.
            if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            Err(Panicked)
        }
    }
}

/// The error a caught panic becomes. Fixed text: the panic's message is not passed on, since
/// it may quote bytes of the file.
pub(crate) fn panicked(during: &'static str) -> Error {
    Error::Corrupt(panic_text(during))
}

/// The text of [`panicked`].
pub(crate) fn panic_text(during: &'static str) -> String {
    format!(
        "the storage engine panicked during {during} (the file is likely damaged); nothing was \
         committed, reopen the directory before writing"
    )
}

impl Store {
    /// Runs `f`, which uses redb; a panic becomes [`Error::Corrupt`] and marks the store failed.
    pub(super) fn guarded<T>(
        &self,
        during: &'static str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let r = catch(f).unwrap_or_else(|Panicked| {
            self.failed.store(true, Ordering::Release);
            Err(panicked(during))
        });
        // Storage failures name the file.
        match (r, &self.path) {
            (Err(Error::Storage(s)), Some(p)) => Err(Error::Storage(s.at(p))),
            (r, _) => r,
        }
    }
}

impl Store {
    /// At a clean close, after the checkpoint (redb's durable state holds every logged
    /// write): gives back the disk space that only served the session.
    ///
    /// - The redo log is emptied (its frames are all in redb; see [`super::wal::Wal::empty`]).
    ///   The next session grows it again, a step at a time.
    /// - After a transaction too large for the log (an import), the file is compacted
    ///   (`Database::compact`: pages moved down into the free ones, the free tail cut off).
    ///   redb allocates a growing file's pages from the top of the space it added, so a large
    ///   transaction leaves free pages below used ones that its commit cannot cut off: 13 % of
    ///   the file after importing 100k users into a new file, 4 % at 1M (`USERDIR_BENCH_SIZE_DETAIL`,
    ///   see `benches/peers.rs`). Compacting costs about a quarter of such an import (0.5 s
    ///   after 100k users, loaded 2-core VM), once, at the close rather than in it. Nobody else holds the database here (no read
    ///   transaction, no savepoint), and redb compacts with durable two-phase commits, so a
    ///   crash in it leaves the file as it was before one of them. A failure is ignored: the
    ///   file keeps its free pages.
    fn shrink_on_close(&mut self) {
        if let Some(wal) = &self.wal {
            let _ = catch(|| wal.lock().empty());
        }
        if self.compact_on_close.load(Ordering::Acquire)
            && let Some(Db::Rw(db)) = self.db.get_mut().as_mut()
        {
            let _ = catch(|| db.compact());
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // A clean close leaves redb durable with every logged write in it (see `wal`).
        if !self.failed.load(Ordering::Acquire) && matches!(catch(|| self.checkpoint()), Ok(Ok(())))
        {
            self.shrink_on_close();
        }
        // Closing runs redb code (a final commit of the allocator state) that may panic on a
        // damaged file or after an earlier panic poisoned one of its locks.
        if let Some(db) = self.db.get_mut().take() {
            let _ = catch(move || drop(db));
        }
    }
}

/// How old a temporary file of a creation must be before an open removes it. A creation takes
/// milliseconds; this leaves room for a very slow disk.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

const TEMP_INFIX: &str = ".creating-";

/// Opens the directory file at `path`, creating it atomically when it does not exist (see the
/// module docs); `read_only` opens an existing file only, and never writes. `init` checks or
/// sets up userdir's tables; it is given the real path of the file (links resolved).
pub(super) fn open_path(
    path: &Path,
    read_only: bool,
    init: &dyn Fn(Db, &Path) -> Result<Store>,
) -> Result<Store> {
    let real = resolve(path)?;
    let store = catch(|| match fs::symlink_metadata(&real) {
        Err(e) if e.kind() == ErrorKind::NotFound && read_only => {
            Err(Error::storage_io("cannot open", path, e))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => create_new(&real, init),
        // It exists, or whether it does cannot be told (the open reports why).
        _ => open_existing(&real, read_only, init),
    })
    .unwrap_or_else(|Panicked| Err(panicked("opening the file")))?;
    if !read_only {
        remove_stale_temps(&real, STALE_AFTER);
    }
    Ok(store)
}

/// The real path of the directory file: symbolic links resolved (the file's redo log lives
/// beside the file itself, whatever name it was opened by). A path that does not exist yet
/// resolves its folder.
fn resolve(path: &Path) -> Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::storage_io(
                    "is a symbolic link to a file that does not exist",
                    path,
                    e,
                ));
            }
            let Some(name) = path.file_name() else {
                return Ok(path.to_path_buf());
            };
            let folder = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let folder = fs::canonicalize(folder)
                .map_err(|e| Error::storage_io("cannot open the folder of", path, e))?;
            Ok(folder.join(name))
        }
        Err(e) => Err(Error::storage_io("cannot open", path, e)),
    }
}

/// Opens an existing file (read-only: without ever writing). A file with more than one hard
/// link is refused: its redo log would sit beside one name only, and writes made through
/// another name would be lost in a crash or mixed with another log.
fn open_existing(
    path: &Path,
    read_only: bool,
    init: &dyn Fn(Db, &Path) -> Result<Store>,
) -> Result<Store> {
    let file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .map_err(|e| Error::storage_io("cannot open", path, e))?;
    let probe = file
        .try_clone()
        .map_err(|e| Error::storage_io("cannot open", path, e))?;
    // Storage failures name the file.
    let db_error = |e| match db_error(e) {
        Error::Storage(s) => Error::Storage(s.at(path)),
        other => other,
    };
    let backend = FileBackend::new(file).map_err(db_error)?;
    let builder = Database::builder();
    let db = if read_only {
        Db::Ro(
            builder
                .open_read_only_with_backend(backend)
                .map_err(db_error)?,
        )
    } else {
        // The sync that marks the file in use waits for the first change (see `open_sync`).
        Db::Rw(
            builder
                .create_with_backend(super::open_sync::LazyOpenSync::new(backend))
                .map_err(db_error)?,
        )
    };
    // Checked once redb holds its lock: a creator that just linked this file in place (see
    // `create_new`) has removed its temporary name by the time it lets go of the lock.
    check_links(&probe, path)?;
    init(db, path)
}

#[cfg(unix)]
fn check_links(file: &fs::File, path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let links = file
        .metadata()
        .map_err(|e| Error::storage_io("cannot read", path, e))?
        .nlink();
    if links > 1 {
        return Err(Error::storage_io(
            format!(
                "the directory file has {links} hard links; refusing it, since its redo log \
                 can only sit beside one of its names (keep one name; a symbolic link is fine)"
            ),
            path,
            std::io::Error::from(ErrorKind::InvalidInput),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_links(_file: &fs::File, _path: &Path) -> Result<()> {
    Ok(())
}

/// The folder of `path` and the temporary-file prefix of its name (`.<name>.creating-`), or
/// `None` for a path without a file name (`/`, `..`).
fn temp_prefix(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = path.file_name()?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(TEMP_INFIX);
    Some((folder, prefix))
}

/// Whether `file_name` is a temporary file of a creation with this prefix: the prefix, then the
/// 32 lowercase hex digits of a random UUID.
fn is_temp_of(file_name: &std::ffi::OsStr, prefix: &std::ffi::OsStr) -> bool {
    let (Some(name), Some(prefix)) = (file_name.to_str(), prefix.to_str()) else {
        return false;
    };
    name.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn create_new(path: &Path, init: &dyn Fn(Db, &Path) -> Result<Store>) -> Result<Store> {
    let Some((folder, prefix)) = temp_prefix(path) else {
        return open_existing(path, false, init);
    };
    let mut name = prefix;
    name.push(uuid::Uuid::new_v4().simple().to_string());
    let temp = folder.join(name);
    // `create_new`: a file of our own, never one a concurrent creator picked.
    // Mode 0600: the file holds password hashes.
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&temp)
        .map_err(|e| Error::storage_io("cannot create", path, e))?;
    // redb initializes the file and `init` commits userdir's tables (`Durability::Immediate`:
    // fsynced), so from here on the temporary file holds a complete directory.
    let made = catch(|| {
        let backend = FileBackend::new(file).map_err(db_error)?;
        // The store is given the final path: its log and its error messages use that name.
        init(
            Db::Rw(
                Database::builder()
                    .create_with_backend(backend)
                    .map_err(db_error)?,
            ),
            path,
        )
    });
    let store = match made {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        Err(Panicked) => {
            let _ = fs::remove_file(&temp);
            return Err(panicked("creating the file"));
        }
    };
    match fs::hard_link(&temp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return lost_race(store, &temp, path, init);
        }
        Err(e) if e.kind() == ErrorKind::NotFound && fs::symlink_metadata(&temp).is_err() => {
            drop(store);
            return Err(Error::storage_io(
                format!(
                    "the new directory's temporary file was removed before it was linked in \
                     place (creation took longer than {} s?)",
                    STALE_AFTER.as_secs()
                ),
                path,
                e,
            ));
        }
        Err(_) => {
            // No hard links here: rename, if the path is still free.
            if fs::symlink_metadata(path).is_ok() {
                return lost_race(store, &temp, path, init);
            }
            if let Err(e) = fs::rename(&temp, path) {
                drop(store);
                let _ = fs::remove_file(&temp);
                return Err(Error::storage_io(
                    "cannot move the new file in place",
                    path,
                    e,
                ));
            }
        }
    }
    // The directory is in place (and stays open: the link is another name of the same file).
    let _ = fs::remove_file(&temp);
    sync_folder(&folder)?;
    Ok(store)
}

/// Another creator linked its directory first: drop ours and open theirs.
fn lost_race(
    store: Store,
    temp: &Path,
    path: &Path,
    init: &dyn Fn(Db, &Path) -> Result<Store>,
) -> Result<Store> {
    drop(store);
    let _ = fs::remove_file(temp);
    open_existing(path, false, init)
}

/// Makes the new name durable (on Unix; elsewhere renames and links are durable with the file
/// system's own metadata journaling).
fn sync_folder(folder: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        match fs::File::open(folder).and_then(|f| f.sync_all()) {
            Ok(()) => {}
            // File systems that cannot fsync a folder.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => {}
            Err(e) => return Err(Error::storage_io("cannot sync the folder", folder, e)),
        }
    }
    #[cfg(not(unix))]
    let _ = folder;
    Ok(())
}

/// Removes the temporary files of creations of `path` last modified more than `age` ago (best
/// effort: errors are ignored).
pub(crate) fn remove_stale_temps(path: &Path, age: Duration) {
    let Some((folder, prefix)) = temp_prefix(path) else {
        return;
    };
    let Ok(entries) = fs::read_dir(&folder) else {
        return;
    };
    // File times come from the system clock, not from the directory's `Clock`.
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    for entry in entries.flatten() {
        if !is_temp_of(&entry.file_name(), &prefix) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d >= age);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The length of redb's magic number, at the start of every redb file.
const MAGIC_LEN: u64 = 9;

/// Opens a directory on a custom backend; a backend left by an interrupted creation (see the
/// module docs) is emptied first.
pub(super) fn open_backend(
    backend: impl StorageBackend,
    init: impl FnOnce(Database) -> Result<Store>,
) -> Result<Store> {
    catch(|| {
        let io = |e| Error::Storage(crate::error::StorageError::io("backend I/O failed", e));
        if interrupted_creation(&backend).map_err(io)? {
            backend.set_len(0).map_err(io)?;
        }
        init(
            Database::builder()
                .create_with_backend(backend)
                .map_err(db_error)?,
        )
    })
    .unwrap_or_else(|Panicked| Err(panicked("opening the backend")))
}

/// Whether the backend is non-empty but has no byte set where redb's magic number goes.
fn interrupted_creation(backend: &impl StorageBackend) -> std::io::Result<bool> {
    let len = backend.len()?;
    if len == 0 {
        return Ok(false);
    }
    let mut head = vec![0u8; usize::try_from(len.min(MAGIC_LEN)).unwrap_or(0)];
    backend.read(0, &mut head)?;
    Ok(head.iter().all(|b| *b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Argon2Params, Directory, Durability, ManualClock, NewUser};

    fn open(path: &Path) -> Directory {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .clock(ManualClock::new(0))
            .open(path)
            .unwrap()
    }

    fn is_clean_corrupt<T: std::fmt::Debug>(r: Result<T>) {
        match r {
            Err(Error::Corrupt(m)) => {
                assert!(m.contains("panicked"), "{m}");
                assert!(!m.contains("secret"), "the panic message leaked: {m}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// The unwinding path of a redb panic, driven by a panic in the closure (redb's own panics
    /// on damaged files are exercised by tests/damaged_file.rs).
    #[test]
    fn a_panic_in_a_read_becomes_corrupt_and_the_file_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.redb");
        let dir = open(&path);
        let u = dir.create(NewUser::with_username("alice")).unwrap();
        is_clean_corrupt(dir.read(|_| -> Result<()> { panic!("secret in a read") }));
        // A panic in a rayon worker reaches the caller's thread, inside the same guard.
        is_clean_corrupt(dir.read(|_| -> Result<()> {
            use rayon::prelude::*;
            (0..64u32).into_par_iter().for_each(|i| {
                if i == 37 {
                    panic!("secret in a worker");
                }
            });
            Ok(())
        }));
        // Reads go on; writes need a reopen.
        assert_eq!(dir.get(u.id).unwrap().map(|u| u.id), Some(u.id));
        assert!(matches!(
            dir.create(NewUser::with_username("bob")),
            Err(Error::NeedsReopen)
        ));
        assert!(matches!(dir.write(|_| Ok(())), Err(Error::NeedsReopen)));
        drop(dir);
        let dir = open(&path);
        dir.create(NewUser::with_username("bob")).unwrap();
        assert_eq!(dir.count().unwrap(), 2);
        dir.check_integrity().unwrap();
    }

    #[test]
    fn a_panic_in_a_write_commits_nothing_and_the_file_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.redb");
        let dir = open(&path);
        let carol = dir.prepare(NewUser::with_username("carol")).unwrap();
        is_clean_corrupt(dir.write(|tx| -> Result<()> {
            tx.create(carol)?;
            panic!("secret in a write");
        }));
        assert!(matches!(
            dir.create(NewUser::with_username("dave")),
            Err(Error::NeedsReopen)
        ));
        assert_eq!(dir.find_by_username("carol").unwrap(), None);
        drop(dir);
        let dir = open(&path);
        assert_eq!(dir.count().unwrap(), 0);
        dir.check_integrity().unwrap();
        dir.create(NewUser::with_username("carol")).unwrap();
    }

    /// A panic in a group commit fails its whole group and never leaves the leader flag set
    /// (which would put every later writer to sleep for ever).
    #[test]
    fn a_panic_in_a_group_commit_fails_the_group_without_a_deadlock() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.redb");
        let dir = open(&path);
        let writers: Vec<_> = (0..6)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    (0..20)
                        .map(|j| dir.create(NewUser::with_username(format!("u{i}x{j}"))))
                        .filter_map(|r| r.err())
                        .collect::<Vec<Error>>()
                })
            })
            .collect();
        // The writers are committing (no sleeping in tests: wait for their first user).
        while dir.count().unwrap() == 0 {
            std::thread::yield_now();
        }
        let store = &dir.inner.store;
        is_clean_corrupt(
            store.write_grouped(Durability::Immediate, |_| -> Result<()> {
                panic!("secret in a group")
            }),
        );
        // Every writer returns: those in the panicking group or after it get an error.
        for errors in writers.into_iter().map(|w| w.join().unwrap()) {
            for e in errors {
                match e {
                    Error::NeedsReopen => {}
                    Error::Corrupt(m) => assert!(m.contains("panicked") && !m.contains("secret")),
                    other => panic!("unexpected error {other}"),
                }
            }
        }
        assert!(matches!(
            store.write_grouped(Durability::Immediate, |_| Ok(())),
            Err(Error::NeedsReopen)
        ));
        let before = dir.count().unwrap();
        drop(dir);
        let dir = open(&path);
        assert_eq!(dir.count().unwrap(), before);
        dir.check_integrity().unwrap();
        dir.create(NewUser::with_username("after")).unwrap();
    }

    #[test]
    fn temp_names_match_only_our_pattern() {
        let (folder, prefix) = temp_prefix(Path::new("/x/users.redb")).unwrap();
        assert_eq!(folder, Path::new("/x"));
        assert_eq!(prefix, ".users.redb.creating-");
        let ok = format!(".users.redb.creating-{}", uuid::Uuid::new_v4().simple());
        assert!(is_temp_of(ok.as_ref(), &prefix));
        for bad in [
            ".users.redb.creating-",
            ".users.redb.creating-xyz",
            ".users.redb.creating-0123456789ABCDEF0123456789abcdef",
            ".users.redb.creating-0123456789abcdef0123456789abcdef0",
            ".other.redb.creating-0123456789abcdef0123456789abcdef",
            "users.redb",
        ] {
            assert!(!is_temp_of(bad.as_ref(), &prefix), "{bad}");
        }
        assert_eq!(
            temp_prefix(Path::new("users.redb")).unwrap().0,
            Path::new(".")
        );
        assert!(temp_prefix(Path::new("/")).is_none());
    }
}
