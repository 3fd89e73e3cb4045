//! The embedded engine: redb. Records and index entries in one tagged-key B-tree
//! ([`tables`]), commits through a redo log ([`wal`]) and group commit ([`group`]), the panic
//! boundary around redb ([`guard`]), bulk insertion ([`batch`]), tokens and failed-login rows.
//! Nothing of redb crosses `store`'s boundary (see [`super`]).
//!
//! Every write runs in one redb write transaction; a record and its index entries change
//! together. Each mutating method checks everything it can refuse *before* it changes anything,
//! so an operation that fails inside a larger [`write`](crate::Directory::write) transaction
//! leaves that transaction as it was.

pub(crate) mod auth_state;
mod backend;
pub(crate) mod batch;
pub(crate) mod cache;
mod group;
mod guard;
mod open_sync;
pub(crate) mod tables;
pub(crate) mod tokens;
pub(crate) mod wal;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableHandle,
    WriteTransaction,
};
use uuid::Uuid;

use super::{
    BatchKeys, Clash, Durability, FailureState, IndexRules, LoginDigest, LoginKind, LoginOwner,
    ReadTxn, Snapshot, TokenHash, TokenKind, TokenRecord, UserKeys, WriteTxn, codec,
};
use crate::error::{Error, Result, StorageError};
use crate::user::{UnixMillis, User};
use tables::{
    DIR, FORMAT_VERSION, KEY_COUNT, KIND_EMAIL, KIND_USERNAME, META, TAG_EXTERNAL, TAG_INSERTED,
    TAG_LOGIN, TAG_ROLE, TAG_SKELETON, TAG_USER,
};

/// A redb error as userdir's: I/O failures keep their `io::Error`, damage redb detects is
/// [`Error::Corrupt`].
fn storage<E: Into<redb::Error>>(e: E) -> Error {
    match e.into() {
        redb::Error::Io(io) => Error::Storage(StorageError::io("I/O failure", io)),
        redb::Error::Corrupted(m) => {
            Error::Corrupt(format!("the storage engine found damage: {m}"))
        }
        redb::Error::PreviousIo => Error::NeedsReopen,
        other => Error::storage_msg(other.to_string()),
    }
}

fn db_error(e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen,
        redb::DatabaseError::RepairAborted => Error::NeedsRecovery,
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Error::NotAUserdirFile(io.to_string())
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            Error::Storage(StorageError::io("cannot open", io))
        }
        redb::DatabaseError::Storage(s) => Error::NotAUserdirFile(s.to_string()),
        other => Error::NotAUserdirFile(other.to_string()),
    }
}

/// The redb database, opened for writing or read-only.
pub(crate) enum Db {
    /// A writable open.
    Rw(Database),
    /// A read-only open ([`crate::Builder::read_only`]): nothing is ever written.
    Ro(redb::ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<ReadTransaction, redb::TransactionError> {
        match self {
            Db::Rw(d) => d.begin_read(),
            Db::Ro(d) => d.begin_read(),
        }
    }

    /// The writable database; [`Error::ReadOnly`] for a read-only open.
    fn rw(&self) -> Result<&Database> {
        match self {
            Db::Rw(d) => Ok(d),
            Db::Ro(_) => Err(Error::ReadOnly),
        }
    }
}

/// The redb database and its failure state.
pub(crate) struct Store {
    /// Always `Some` but while dropping (see `guard`: the drop is caught). Every transaction
    /// runs under the read lock (taken recursively); `check_integrity` takes the write lock to
    /// run redb's own check, which needs the database to itself.
    db: parking_lot::RecursiveRwLock<Option<Db>>,
    /// The file, for error messages (`None` for backends).
    path: Option<std::path::PathBuf>,
    /// A read-only open: every write answers [`Error::ReadOnly`].
    read_only: bool,
    failed: AtomicBool,
    /// The identity rules' keys, and whether the skeleton index is kept.
    rules: IndexRules,
    /// Operations waiting for a group commit.
    group: group::Group,
    /// The redo log of a file-backed directory (see [`wal`]).
    wal: Option<parking_lot::Mutex<wal::Wal>>,
    /// Decoded users of recent lookups (see [`cache`]); shared with the read transactions
    /// that may take users from it.
    cache: Arc<cache::UserCache>,
    /// A transaction too large for a log frame (an import) committed since the open: a clean
    /// close compacts the file (see `guard`'s `Drop for Store`).
    compact_on_close: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the file at `path`, creating it atomically when absent (see `guard`); with
    /// `read_only`, opens an existing file without ever writing to it or its log. `path` is
    /// resolved to the real file first: its log lives beside that.
    pub(crate) fn open(path: &Path, rules: IndexRules, read_only: bool) -> Result<Store> {
        guard::open_path(path, read_only, &|db, real| {
            let wal = wal::path_for(real);
            let store = Store::init(db, rules, Some(&wal))?;
            Ok(store.at(real))
        })
    }

    /// Opens a custom backend (see `guard` for a backend left by an interrupted creation).
    pub(crate) fn with_backend(
        backend: impl crate::backend::Backend,
        rules: IndexRules,
    ) -> Result<Store> {
        guard::open_backend(backend::Redb(backend), |db| {
            Store::init(Db::Rw(db), rules, None)
        })
    }

    /// Opens a new, empty directory in memory (redb's in-memory backend).
    pub(crate) fn in_memory(rules: IndexRules) -> Result<Store> {
        guard::open_backend(redb::backends::InMemoryBackend::new(), |db| {
            Store::init(Db::Rw(db), rules, None)
        })
    }

    fn at(mut self, path: &Path) -> Store {
        self.path = Some(path.to_path_buf());
        self
    }

    /// The store with a user cache of at most `entries` users (0: none); see [`cache`].
    pub(crate) fn with_cache(mut self, entries: usize) -> Store {
        self.cache = Arc::new(cache::UserCache::new(entries));
        self
    }

    /// Whether lookups may use the cache: it is on, and the store has not failed (after a
    /// failure, what a write left is unknown until the directory is reopened).
    fn cache_usable(&self) -> bool {
        self.cache.enabled() && !self.failed.load(Ordering::Acquire)
    }

    /// The user with this id: from the cache, else read (and cached).
    pub(crate) fn cached_get(&self, id: Uuid) -> Result<Option<User>> {
        if !self.cache_usable() {
            return self.read(|r| r.get(id));
        }
        if let Some(u) = self.cache.get(id) {
            return Ok(Some(User::clone(&u)));
        }
        self.read_user(|r| r.get(id))
    }

    /// The owner of a caseless login key and its user, when the cache holds them (a miss
    /// is `None`: read the store then, with [`Store::read_user`]).
    pub(crate) fn cached_login(&self, key: &str) -> Option<(LoginOwner, User)> {
        if !self.cache_usable() {
            return None;
        }
        self.cache
            .login(key)
            .map(|(owner, u)| (owner, User::clone(&u)))
    }

    /// Runs a lookup `f` on a snapshot; the users it reads by id are cached (see
    /// [`Reader::snapshot_get`]).
    pub(crate) fn read_user(
        &self,
        f: impl FnOnce(&super::Reader) -> Result<Option<User>>,
    ) -> Result<Option<User>> {
        self.read(f)
    }

    /// After a write transaction ended (committed or not), before the write returns: forgets
    /// the users it touched.
    fn invalidate(&self, touched: &Touched) {
        self.cache.invalidate(&touched.ids, touched.all);
    }

    /// Whether this is a read-only open.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Takes a freshly opened database and sets up or checks userdir's tables, replaying the
    /// redo log of a file-backed directory (`wal_path`). The store owns the database before any
    /// transaction runs, so a panic in one is caught while the database is alive, and the
    /// database closes afterwards (see `guard`).
    fn init(db: Db, rules: IndexRules, wal_path: Option<&Path>) -> Result<Store> {
        let read_only = matches!(db, Db::Ro(_));
        let mut store = Store {
            db: parking_lot::RecursiveRwLock::new(Some(db)),
            path: None,
            read_only,
            failed: AtomicBool::new(false),
            rules,
            group: group::Group::default(),
            wal: None,
            cache: Arc::new(cache::UserCache::new(cache::DEFAULT_CAPACITY)),
            compact_on_close: AtomicBool::new(false),
        };
        if store.is_read_only() {
            store.rules.skeletons = store.guarded("opening the directory", || {
                store.with_db(|db| Store::check_read_only(db, rules, wal_path))
            })?;
            return Ok(store);
        }
        let wal = store.guarded("opening the directory", || {
            store.with_db(|db| Store::init_tables(db.rw()?, rules, wal_path))
        })?;
        if let Some(mut w) = wal {
            w.restart();
            w.reset_if_cut()?;
            store.wal = Some(parking_lot::Mutex::new(w));
        }
        Ok(store)
    }

    /// A read-only open: checks what `init_tables` would set up or change, and refuses a file
    /// that needs a writable open first (log frames to replay, indexes to rebuild). Returns
    /// whether the file keeps the skeleton index.
    fn check_read_only(db: &Db, rules: IndexRules, wal_path: Option<&Path>) -> Result<bool> {
        let txn = db.begin_read().map_err(storage)?;
        let meta = match txn.open_table(META) {
            Ok(m) => m,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(Error::NotAUserdirFile(
                    "a redb file without userdir's format marker".into(),
                ));
            }
            Err(e) => return Err(table_error(e)),
        };
        let get = |k: &str| -> Result<Option<u64>> {
            Ok(meta.get(k).map_err(storage)?.map(|g| g.value()))
        };
        match get("format")? {
            Some(f) if f > FORMAT_VERSION => {
                return Err(Error::UnsupportedFormat {
                    found: f,
                    supported: FORMAT_VERSION,
                });
            }
            // An older format is migrated by a writable open.
            Some(f) if f < FORMAT_VERSION => return Err(Error::NeedsRecovery),
            Some(_) => {}
            None => {
                return Err(Error::NotAUserdirFile(
                    "a redb file without userdir's format marker".into(),
                ));
            }
        }
        if get("unicode")? != Some(rules.version) {
            // The login keys must be rebuilt for this Unicode version.
            return Err(Error::NeedsRecovery);
        }
        if let (Some(p), Some(salt)) = (wal_path, get("wal_salt")?) {
            let applied = get("wal_lsn")?.unwrap_or(0);
            if wal::pending_frames(p, salt, applied)? > 0 {
                return Err(Error::NeedsRecovery);
            }
        }
        Ok(get("skeletons")? == Some(1))
    }

    fn init_tables(
        db: &Database,
        rules: IndexRules,
        wal_path: Option<&Path>,
    ) -> Result<Option<wal::Wal>> {
        let txn = db.begin_write().map_err(storage)?;
        // Whether opening changed anything: if not, nothing is committed (an open with
        // nothing to replay writes nothing of userdir's).
        let mut changed = false;
        let tables_before = txn.list_tables().map_err(storage)?.count();
        {
            let existing: Vec<String> = txn
                .list_tables()
                .map_err(storage)?
                .map(|t| t.name().to_owned())
                .collect();
            let mut meta = txn.open_table(META).map_err(table_error)?;
            let format = meta.get("format").map_err(storage)?.map(|g| g.value());
            match format {
                Some(f) if f > FORMAT_VERSION => {
                    return Err(Error::UnsupportedFormat {
                        found: f,
                        supported: FORMAT_VERSION,
                    });
                }
                Some(_) => {}
                None if existing.is_empty() => {
                    meta.insert("format", FORMAT_VERSION).map_err(storage)?;
                    meta.insert("unicode", rules.version).map_err(storage)?;
                    changed = true;
                }
                None => {
                    return Err(Error::NotAUserdirFile(
                        "a redb file without userdir's format marker".into(),
                    ));
                }
            }
        }
        // The authentication tables (failed logins, tokens), also created up front.
        tokens::create_tables(&txn)?;
        // Commits acknowledged through the redo log but not yet in redb's durable state.
        let wal = match wal_path {
            Some(p) => {
                let (log, replayed) = replay_log(&txn, p)?;
                changed |= replayed;
                Some(log)
            }
            None => None,
        };
        // Create every table now so that read transactions always find them.
        let mut table = txn.open_table(DIR).map_err(table_error)?;
        // Keys follow the Unicode version of the normalization tables: when the file was indexed
        // under another version, rebuild the keyed indexes from the records.
        // The skeleton index exists only while look-alike refusal is on (it costs an index entry
        // per user): build or drop it when the setting changed since the last open.
        let mut meta = txn.open_table(META).map_err(table_error)?;
        let recorded = meta.get("unicode").map_err(storage)?.map(|g| g.value());
        let had_skeletons = meta.get("skeletons").map_err(storage)?.map(|g| g.value()) == Some(1);
        let format = meta.get("format").map_err(storage)?.map(|g| g.value());
        if recorded != Some(rules.version) || format.is_some_and(|f| f < FORMAT_VERSION) {
            // Format 1 (exact role keys, no email index, no counters), or caseless keys of
            // another Unicode version.
            rebuild_caseless_indexes(&mut table, rules)?;
            meta.insert("format", FORMAT_VERSION).map_err(storage)?;
            changed = true;
        }
        if recorded != Some(rules.version) || had_skeletons != rules.skeletons {
            rebuild_login_indexes(&mut table, rules)?;
            meta.insert("unicode", rules.version).map_err(storage)?;
            meta.insert("skeletons", u64::from(rules.skeletons))
                .map_err(storage)?;
            changed = true;
        }

        drop((table, meta));
        changed |= txn.list_tables().map_err(storage)?.count() != tables_before;
        if changed {
            // A durable commit: it holds every frame replayed, and the log starts over.
            txn.commit().map_err(storage)?;
        } else {
            txn.abort().map_err(storage)?;
        }
        Ok(wal)
    }

    /// Runs `f` in one write transaction; commits when it returns `Ok`, aborts otherwise. A
    /// panic inside (redb's, on a damaged file) becomes [`Error::Corrupt`] (see `guard`).
    pub(crate) fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut super::Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        self.guarded("a write", || {
            self.with_db(|db| self.write_unguarded(db.rw()?, durability, f))
        })
    }

    /// Runs `f` with the database, under the read lock (see `db`).
    fn with_db<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let db = self.db.read();
        f(db.as_ref().ok_or(Error::NeedsReopen)?)
    }

    fn write_unguarded<T>(
        &self,
        db: &Database,
        durability: Durability,
        f: impl FnOnce(&mut super::Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = db.begin_write().map_err(|e| self.fail(e))?;
        let (result, redo, touched) = {
            let mut w = super::Writer::Redb(Writer::new(&txn, self)?);
            let r = f(&mut w);
            let Some(w) = w.redb() else {
                return Err(Error::storage_msg("a redb write ran on another engine"));
            };
            let r = if w.broken && r.is_ok() {
                Err(Error::storage_msg(
                    "a write failed inside the transaction; nothing was committed",
                ))
            } else {
                r
            };
            (
                r,
                std::mem::take(&mut w.redo),
                std::mem::take(&mut w.touched),
            )
        };
        let ended = match result {
            Ok(v) => self.commit(txn, &redo, durability).map(|()| v),
            Err(e) => txn.abort().map_err(|e| self.fail(e)).and(Err(e)),
        };
        self.invalidate(&touched);
        ended
    }

    /// Commits a write transaction: through the redo log when the directory has one (a frame,
    /// synced when `durability` asks for it, then a non-durable redb commit), with redb's own
    /// durability otherwise. A transaction too large for a frame commits durably.
    fn commit(
        &self,
        mut txn: WriteTransaction,
        redo: &wal::Redo,
        durability: Durability,
    ) -> Result<()> {
        let Some(wal) = &self.wal else {
            txn.set_durability(match durability {
                Durability::Immediate => redb::Durability::Immediate,
                Durability::Eventual => redb::Durability::None,
            })
            .map_err(storage)?;
            self.cache.begin_publish();
            return txn.commit().map_err(|e| self.fail(e));
        };
        let checkpoint = {
            let mut log = wal.lock();
            if redo.overflow {
                set_applied(&txn, log.last_lsn())?;
                txn.set_durability(redb::Durability::Immediate)
                    .map_err(storage)?;
                self.cache.begin_publish();
                txn.commit().map_err(|e| self.fail(e))?;
                log.restart();
                self.compact_on_close.store(true, Ordering::Release);
                false
            } else {
                let durable = durability == Durability::Immediate;
                let logged = if redo.buf.is_empty() {
                    // Nothing changed; a durable call still makes earlier writes durable.
                    if durable { log.sync() } else { Ok(()) }
                } else {
                    log.append(&redo.buf, durable).map(|_| ())
                };
                if let Err(e) = logged {
                    self.failed.store(true, Ordering::Release);
                    let _ = txn.abort();
                    return Err(e);
                }
                txn.set_durability(redb::Durability::None)
                    .map_err(storage)?;
                self.cache.begin_publish();
                txn.commit().map_err(|e| self.fail(e))?;
                log.wants_checkpoint()
            }
        };
        if checkpoint {
            // The write is durable through the log already; a failed checkpoint marks the
            // store failed, and the next write reports it.
            let _ = self.checkpoint();
        }
        Ok(())
    }

    /// Tests: makes every redo log I/O operation after the next `n` fail.
    #[cfg(any(test, feature = "__test-hooks"))]
    pub(crate) fn fail_log_after(&self, n: u64) {
        if let Some(w) = &self.wal {
            w.lock().fail_after(n);
        }
    }

    /// Commits redb durably with every logged frame in it, and starts the log over. Called when
    /// the log has grown, and when the directory is closed.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.with_db(|db| match db {
            Db::Rw(db) => self.checkpoint_in(db),
            Db::Ro(_) => Ok(()),
        })
    }

    fn checkpoint_in(&self, db: &Database) -> Result<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        let mut txn = db.begin_write().map_err(|e| self.fail(e))?;
        let mut log = wal.lock();
        if !log.has_frames() {
            // redb's durable state already holds everything.
            drop(log);
            return txn.abort().map_err(storage);
        }
        set_applied(&txn, log.last_lsn())?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(storage)?;
        txn.commit().map_err(|e| self.fail(e))?;
        log.restart();
        Ok(())
    }

    /// redb's own check of the file (every page checksum of the committed trees, the
    /// allocator state), after a checkpoint so that every commit is durable. Problems found
    /// are returned as text, and the store then needs a reopen (redb may have repaired its
    /// in-memory state). Read-only opens cannot run it (redb's check commits), nor can a store
    /// that already failed: none are found there.
    /// Takes the database to itself: waits for running transactions.
    pub(crate) fn engine_problems(&self) -> Result<Vec<String>> {
        if self.failed.load(Ordering::Acquire) {
            // After a failure redb's state is unknown: the reads still check what they can.
            return Ok(Vec::new());
        }
        self.guarded("checking the file", || {
            let mut db = self.db.write();
            let Some(Db::Rw(d)) = db.as_mut() else {
                return Ok(Vec::new());
            };
            self.checkpoint_in(d)?;
            let found = match d.check_integrity() {
                Ok(true) => return Ok(Vec::new()),
                Ok(false) => "the storage engine's check found damage (page checksums or \
                              allocator state) and repaired its in-memory state; reopen the \
                              directory"
                    .to_owned(),
                Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(m))) => {
                    format!("the storage engine's check found damage: {m}")
                }
                Err(redb::DatabaseError::Storage(e)) => return Err(storage(e)),
                Err(e) => return Err(Error::storage_msg(e.to_string())),
            };
            self.failed.store(true, Ordering::Release);
            Ok(vec![found])
        })
    }

    fn fail<E: Into<redb::Error>>(&self, e: E) -> Error {
        self.failed.store(true, Ordering::Release);
        storage(e)
    }

    /// Runs `f` on a consistent snapshot. A panic inside (redb's, on a damaged file, also in a
    /// parallel scan's worker) becomes [`Error::Corrupt`] (see `guard`).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&super::Reader) -> Result<T>) -> Result<T> {
        self.guarded("a read", || {
            let db = self.db.read();
            // Read before and after the transaction begins: the same even generation means
            // the snapshot holds exactly that generation's state (see `cache`).
            let before = self.cache_usable().then(|| self.cache.generation());
            let txn = db
                .as_ref()
                .ok_or(Error::NeedsReopen)?
                .begin_read()
                .map_err(storage)?;
            let cache = before
                .filter(|g| g % 2 == 0 && self.cache.generation() == *g)
                .map(|g| (Arc::clone(&self.cache), g));
            // Built in place: the transaction and the table are a few hundred bytes, and every
            // lookup goes through here.
            let r = super::Reader::Redb(Reader {
                t: txn.open_table(DIR).map_err(table_error)?,
                rules: self.rules,
                txn,
                cache,
            });
            f(&r)
        })
    }
}

/// Records in `meta` the lsn of the last log frame a durable commit holds.
fn set_applied(txn: &WriteTransaction, lsn: u64) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(table_error)?;
    meta.insert("wal_lsn", lsn).map_err(storage)?;
    Ok(())
}

/// Opens the redo log of a file-backed directory and applies, in `txn`, the frames after the
/// last durable commit (see [`wal`]). Returns the log and whether `txn` changed.
fn replay_log(txn: &WriteTransaction, path: &Path) -> Result<(wal::Wal, bool)> {
    let mut meta = txn.open_table(META).map_err(table_error)?;
    let recorded = meta.get("wal_salt").map_err(storage)?.map(|g| g.value());
    let mut changed = false;
    let salt = match recorded {
        Some(s) => s,
        None => {
            let s: u64 = rand::random();
            meta.insert("wal_salt", s).map_err(storage)?;
            changed = true;
            s
        }
    };
    let applied = meta
        .get("wal_lsn")
        .map_err(storage)?
        .map_or(0, |g| g.value());
    let (log, frames) = wal::Wal::open(path, salt, applied)?;
    {
        let mut t = txn.open_table(DIR).map_err(table_error)?;
        for frame in &frames {
            let changes = wal::changes(frame)
                .ok_or_else(|| Error::Corrupt("malformed redo log frame".into()))?;
            for c in &changes {
                match c.kind {
                    wal::DIR_PUT => {
                        t.insert(c.key, c.value).map_err(storage)?;
                    }
                    wal::DIR_DEL => {
                        t.remove(c.key).map_err(storage)?;
                    }
                    _ => tokens::replay(txn, c)?,
                }
            }
        }
    }
    if !frames.is_empty() {
        meta.insert("wal_lsn", log.last_lsn()).map_err(storage)?;
        changed = true;
    }
    Ok((log, changed))
}

type DirTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// Counter changes: counter key → signed change.
pub(crate) type Counts = std::collections::BTreeMap<Vec<u8>, i64>;

/// A stored counter value (u64 little-endian).
fn counter_value(v: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_le_bytes)
        .map_err(|_| Error::Corrupt("malformed counter".into()))
}

/// Rebuilds the role and secondary email entries (caseless keys, see `identity`) and every
/// counter from the records: format 1 → 2, and after a Unicode version change.
fn rebuild_caseless_indexes(t: &mut DirTable<'_>, rules: IndexRules) -> Result<()> {
    t.retain(|k, _| {
        !matches!(
            k.first(),
            Some(&(TAG_ROLE | tables::TAG_COUNTER | tables::TAG_EMAILS))
        )
    })
    .map_err(storage)?;
    let mut roles = Vec::new();
    let mut counts = Counts::new();
    for e in t
        .range(&[TAG_USER][..]..&[TAG_USER + 1][..])
        .map_err(storage)?
    {
        let (k, v) = e.map_err(storage)?;
        let id = user_id_of(k.value())?;
        let uk = rules.keys_of(&codec::decode(id, v.value())?);
        Keys::new(&uk).count_into(1, &mut counts);
        for r in uk.roles {
            roles.push((tables::pair_key(TAG_ROLE, &r, id), String::new()));
        }
        for (v, kind) in uk.emails {
            roles.push((tables::pair_key(tables::TAG_EMAILS, &v, id), kind));
        }
    }
    for (k, v) in roles {
        t.insert(k.as_slice(), v.as_bytes()).map_err(storage)?;
    }
    for (k, n) in counts {
        let n = u64::try_from(n).map_err(|_| Error::Corrupt("negative counter".into()))?;
        if n > 0 {
            t.insert(k.as_slice(), n.to_le_bytes().as_slice())
                .map_err(storage)?;
        }
    }
    Ok(())
}

/// Recomputes the login and skeleton entries from the records (after a Unicode version
/// change). Two users whose keys now collide are reported as corruption rather than silently
/// merged.
fn rebuild_login_indexes(t: &mut DirTable<'_>, rules: IndexRules) -> Result<()> {
    t.retain(|k, _| !matches!(k.first(), Some(&(TAG_LOGIN | TAG_SKELETON))))
        .map_err(storage)?;
    let mut entries = Vec::new();
    for e in t
        .range(&[TAG_USER][..]..&[TAG_USER + 1][..])
        .map_err(storage)?
    {
        let (k, v) = e.map_err(storage)?;
        let id = user_id_of(k.value())?;
        entries.push((id, rules.keys_of(&codec::decode(id, v.value())?)));
    }
    for (id, user_keys) in entries {
        let keys = Keys::new(&user_keys);
        for (k, kinds) in &keys.logins {
            let key = tables::str_key(TAG_LOGIN, k);
            if let Some(prev) = t
                .insert(key.as_slice(), tables::login_entry(id, *kinds).as_slice())
                .map_err(storage)?
                && tables::login_value(prev.value()).map(|p| p.0) != Some(id)
            {
                return Err(Error::Corrupt(format!(
                    "after the Unicode update, user {id} and another user share the login key {k:?}"
                )));
            }
        }
        if let Some(s) = &keys.skeleton {
            t.insert(tables::pair_key(TAG_SKELETON, s, id).as_slice(), &[][..])
                .map_err(storage)?;
        }
    }
    Ok(())
}

/// Calls `f` with `tables::str_key(tag, s)`, built on the stack when it is short (up to 127
/// bytes: nearly every login key), allocated otherwise.
fn with_str_key<R>(tag: u8, s: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = [0u8; 128];
    match buf.get_mut(..=s.len()) {
        Some(k) => {
            if let Some((t, rest)) = k.split_first_mut() {
                *t = tag;
                rest.copy_from_slice(s.as_bytes());
            }
            f(k)
        }
        None => f(&tables::str_key(tag, s)),
    }
}

fn user_id_of(key: &[u8]) -> Result<Uuid> {
    key.get(1..)
        .and_then(|b| Uuid::from_slice(b).ok())
        .ok_or_else(|| Error::Corrupt("malformed user key".into()))
}

fn table_error(e: redb::TableError) -> Error {
    match e {
        redb::TableError::TableTypeMismatch { .. } | redb::TableError::TableIsMultimap(_) => {
            Error::NotAUserdirFile(e.to_string())
        }
        other => storage(other),
    }
}

/// The index keys one user record owns, as this engine lays them out: a username and an
/// email with the same key share one login entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Keys<'k> {
    /// (caseless key, kinds)
    pub logins: Vec<(&'k str, u8)>,
    pub external: Option<&'k str>,
    pub skeleton: Option<&'k str>,
    /// Role keys (caseless, distinct).
    pub roles: &'k [String],
    /// Secondary email keys (value, type).
    pub emails: &'k [(String, String)],
}

impl<'k> Keys<'k> {
    pub(crate) fn new(k: &'k UserKeys) -> Keys<'k> {
        let mut logins: Vec<(&str, u8)> = Vec::with_capacity(2);
        if let Some(u) = &k.username {
            logins.push((u, KIND_USERNAME));
        }
        if let Some(e) = &k.email {
            match logins.first_mut() {
                Some((u, kinds)) if *u == e.as_str() => *kinds |= KIND_EMAIL,
                _ => logins.push((e, KIND_EMAIL)),
            }
        }
        Keys {
            logins,
            external: k.external_id.as_deref(),
            skeleton: k.skeleton.as_deref(),
            roles: &k.roles,
            emails: &k.emails,
        }
    }

    /// Adds `sign` times this user's share of each counter (users with a username, with a
    /// login email, holding each role; login keys by prefix) to `out`.
    fn count_into(&self, sign: i64, out: &mut Counts) {
        let kinds = self.logins.iter().fold(0, |a, (_, k)| a | k);
        if kinds & KIND_USERNAME != 0 {
            *out.entry(tables::KEY_USERNAMES.to_vec()).or_default() += sign;
        }
        if kinds & KIND_EMAIL != 0 {
            *out.entry(tables::KEY_EMAILS.to_vec()).or_default() += sign;
        }
        for r in self.roles {
            *out.entry(tables::role_counter_key(r)).or_default() += sign;
        }
        for (key, kinds) in &self.logins {
            for kind in [KIND_USERNAME, KIND_EMAIL] {
                if kinds & kind != 0 {
                    for p in tables::counted_prefixes(key) {
                        *out.entry(tables::prefix_counter_key(kind, p)).or_default() += sign;
                    }
                }
            }
        }
    }

    /// Every index entry (key, value) of `user` with these keys.
    fn entries(&self, user: &User) -> Vec<(Vec<u8>, Vec<u8>)> {
        let id = user.id;
        let mut out = Vec::with_capacity(4 + self.roles.len());
        for (k, kinds) in &self.logins {
            out.push((
                tables::str_key(TAG_LOGIN, k),
                tables::login_entry(id, *kinds).to_vec(),
            ));
        }
        if let Some(x) = &self.external {
            out.push((tables::str_key(TAG_EXTERNAL, x), id.as_bytes().to_vec()));
        }
        if let Some(s) = &self.skeleton {
            out.push((tables::pair_key(TAG_SKELETON, s, id), Vec::new()));
        }
        for r in self.roles {
            out.push((tables::pair_key(TAG_ROLE, r, id), Vec::new()));
        }
        for (v, kind) in self.emails {
            out.push((
                tables::pair_key(tables::TAG_EMAILS, v, id),
                kind.as_bytes().to_vec(),
            ));
        }
        out.push((
            tables::inserted_key(user.insert_instant, id).to_vec(),
            Vec::new(),
        ));
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// A key shown for humans: the tag, then printable text or hex.
fn show_key(k: &[u8]) -> String {
    match k.split_first() {
        Some((&tag, rest)) if matches!(tag, TAG_LOGIN | TAG_EXTERNAL | tables::TAG_COUNTER) => {
            format!("{}:{}", tag as char, String::from_utf8_lossy(rest))
        }
        Some((&tag, rest)) => format!("{}:{}", tag as char, hex(rest)),
        None => String::new(),
    }
}

// Each reader method is used by some operations on one side (read or write) only.
macro_rules! read_ops {
    () => {
        fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.with_value(key, <[u8]>::to_vec)
        }

        /// `f(value)` of `key`, read in place (no copy).
        fn with_value<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
            Ok(self.t.get(key).map_err(storage)?.map(|g| f(g.value())))
        }

        /// Calls `f(key, value)` for every entry in `lo..hi` until it returns `false`.
        #[allow(dead_code)]
        pub(crate) fn scan(
            &self,
            lo: &[u8],
            hi: &[u8],
            f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
        ) -> Result<()> {
            self.walk(lo..hi, f)
        }

        /// Calls `f(key, value)` for every entry in `range` until it returns `false`.
        #[allow(dead_code)]
        fn walk<'k>(
            &self,
            range: impl std::ops::RangeBounds<&'k [u8]> + 'k,
            mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
        ) -> Result<()> {
            let mut entries = self.t.range(range).map_err(storage)?;
            loop {
                // The entry is borrowed where `next` left it: moving the pair of guards out
                // costs a copy of a few hundred bytes per entry.
                let entry = entries.next();
                let (k, v) = match &entry {
                    None => break,
                    Some(Err(_)) => {
                        return Err(match entry {
                            Some(Err(e)) => storage(e),
                            _ => Error::storage_msg("a range read failed"),
                        });
                    }
                    Some(Ok((k, v))) => (k.value(), v.value()),
                };
                if !f(k, v)? {
                    break;
                }
            }
            Ok(())
        }

        /// The user with this id.
        #[allow(dead_code)]
        pub(crate) fn get(&self, id: Uuid) -> Result<Option<User>> {
            match self
                .t
                .get(tables::user_key(id).as_slice())
                .map_err(storage)?
            {
                Some(g) => codec::decode(id, g.value()).map(Some),
                None => Ok(None),
            }
        }

        /// The owner of a caseless login key and the kinds of login id it is for them.
        #[allow(dead_code)]
        pub(crate) fn login_entry(&self, key: &str) -> Result<Option<(Uuid, u8)>> {
            with_str_key(TAG_LOGIN, key, |k| self.with_value(k, tables::login_value))?
                .map(|v| v.ok_or_else(|| Error::Corrupt("malformed login entry".into())))
                .transpose()
        }

        /// Calls `f(id)` for every login key starting with `prefix` whose kinds include one
        /// of `kinds`, in key order (search).
        #[allow(dead_code)]
        pub(crate) fn login_prefix_kinds(
            &self,
            prefix: &str,
            kinds: u8,
            mut f: impl FnMut(Uuid),
        ) -> Result<()> {
            let (lo, hi) = tables::prefix_range(TAG_LOGIN, prefix);
            self.scan(&lo, &hi, |_, v| {
                let (id, k) = tables::login_value(v)
                    .ok_or_else(|| Error::Corrupt("malformed login entry".into()))?;
                if k & kinds != 0 {
                    f(id);
                }
                Ok(true)
            })
        }

        /// Calls `f(key, id)` for every login key starting with `prefix` whose kinds include
        /// one of `kinds`, in key order (descending when `rev`), strictly after `after` in that
        /// order, until it returns `false` (sorted pages).
        #[allow(dead_code)]
        pub(crate) fn login_walk(
            &self,
            kinds: u8,
            prefix: &str,
            after: Option<&str>,
            rev: bool,
            mut f: impl FnMut(&str, Uuid) -> Result<bool>,
        ) -> Result<()> {
            use std::ops::Bound;
            let (lo, hi) = tables::prefix_range(TAG_LOGIN, prefix);
            let at = after.map(|a| tables::str_key(TAG_LOGIN, a));
            let (lo, hi) = match (&at, rev) {
                (Some(a), false) if a.as_slice() >= lo.as_slice() => (
                    Bound::Excluded(a.as_slice()),
                    Bound::Excluded(hi.as_slice()),
                ),
                (Some(a), true) if a.as_slice() <= hi.as_slice() => (
                    Bound::Included(lo.as_slice()),
                    Bound::Excluded(a.as_slice()),
                ),
                _ => (
                    Bound::Included(lo.as_slice()),
                    Bound::Excluded(hi.as_slice()),
                ),
            };
            if let (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h)) = (lo, hi)
                && l >= h
            {
                return Ok(());
            }
            let range = self.t.range::<&[u8]>((lo, hi)).map_err(storage)?;
            let mut step = |e: std::result::Result<
                (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>),
                redb::StorageError,
            >|
             -> Result<bool> {
                let (k, v) = e.map_err(storage)?;
                let (id, k_kinds) = tables::login_value(v.value())
                    .ok_or_else(|| Error::Corrupt("malformed login entry".into()))?;
                if k_kinds & kinds == 0 {
                    return Ok(true);
                }
                let key = k
                    .value()
                    .get(1..)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .ok_or_else(|| Error::Corrupt("malformed login key".into()))?;
                f(key, id)
            };
            if rev {
                for e in range.rev() {
                    if !step(e)? {
                        break;
                    }
                }
            } else {
                for e in range {
                    if !step(e)? {
                        break;
                    }
                }
            }
            Ok(())
        }

        /// The number of login keys starting with `prefix` whose kinds include one of `kinds`:
        /// a counter for the whole key space and for prefixes of up to
        /// [`tables::PREFIX_DEPTH`] characters, a walk over the keys (no record read) otherwise.
        #[allow(dead_code)]
        pub(crate) fn login_count(&self, kinds: u8, prefix: &str) -> Result<u64> {
            if prefix.is_empty() && (kinds == KIND_USERNAME || kinds == KIND_EMAIL) {
                let key = if kinds == KIND_USERNAME {
                    tables::KEY_USERNAMES
                } else {
                    tables::KEY_EMAILS
                };
                return self.counter(key);
            }
            if (kinds == KIND_USERNAME || kinds == KIND_EMAIL) && tables::prefix_is_counted(prefix)
            {
                return self.counter(&tables::prefix_counter_key(kinds, prefix));
            }
            let (lo, hi) = tables::prefix_range(TAG_LOGIN, prefix);
            let mut n = 0u64;
            self.scan(&lo, &hi, |_, v| {
                if v.get(16).is_some_and(|k| k & kinds != 0) {
                    n += 1;
                }
                Ok(true)
            })?;
            Ok(n)
        }

        /// Calls `f(id)` for the holders of the secondary emails `m` matches (see
        /// [`super::EmailMatch`]): a range of the `E` entries, or all of them, keys only.
        #[allow(dead_code)]
        pub(crate) fn email_holders(
            &self,
            m: super::EmailMatch<'_>,
            mut f: impl FnMut(Uuid),
        ) -> Result<()> {
            use super::EmailMatch;
            let tag = tables::TAG_EMAILS;
            let (lo, hi) = match m {
                EmailMatch::Eq(v) => tables::pair_range(tag, v),
                EmailMatch::Prefix(v) => tables::prefix_range(tag, v),
                EmailMatch::Contains(_) | EmailMatch::Type(_) => (vec![tag], vec![tag + 1]),
            };
            let finder = match m {
                EmailMatch::Contains(v) => Some(memchr::memmem::Finder::new(v.as_bytes())),
                _ => None,
            };
            self.scan(&lo, &hi, |k, v| {
                let value = k.get(1..k.len().saturating_sub(17)).unwrap_or_default();
                let hit = match m {
                    EmailMatch::Contains(_) => {
                        finder.as_ref().is_some_and(|x| x.find(value).is_some())
                    }
                    EmailMatch::Type(t) => v.split(|b| *b == 0).any(|x| x == t.as_bytes()),
                    EmailMatch::Eq(_) | EmailMatch::Prefix(_) => true,
                };
                if hit {
                    f(tables::trailing_id(k)
                        .ok_or_else(|| Error::Corrupt("malformed index key".into()))?);
                }
                Ok(true)
            })
        }

        /// A counter's value (0 when absent).
        #[allow(dead_code)]
        pub(crate) fn counter(&self, key: &[u8]) -> Result<u64> {
            self.with_value(key, counter_value)?.unwrap_or(Ok(0))
        }

        /// Calls `f(id)` for the holders of a role key with an id after `after`, in id order,
        /// until it returns `false`.
        #[allow(dead_code)]
        pub(crate) fn role_walk(
            &self,
            role: &str,
            after: Option<Uuid>,
            mut f: impl FnMut(Uuid) -> Result<bool>,
        ) -> Result<()> {
            let (lo, hi) = tables::pair_range(TAG_ROLE, role);
            let lo = match after {
                Some(a) => {
                    let mut k = tables::pair_key(TAG_ROLE, role, a);
                    k.push(0); // the smallest key after `a`'s
                    k
                }
                None => lo,
            };
            self.scan(&lo, &hi, |k, _| {
                f(tables::trailing_id(k)
                    .ok_or_else(|| Error::Corrupt("malformed index key".into()))?)
            })
        }

        /// The owner of an external id.
        #[allow(dead_code)]
        pub(crate) fn external(&self, external_id: &str) -> Result<Option<Uuid>> {
            with_str_key(TAG_EXTERNAL, external_id, |k| {
                self.with_value(k, |v| Uuid::from_slice(v).ok())
            })?
            .map(|v| v.ok_or_else(|| Error::Corrupt("malformed external id entry".into())))
            .transpose()
        }

        /// `f(encoded record)` of the user with this id, read in place (search).
        #[allow(dead_code)]
        pub(crate) fn with_record<R>(
            &self,
            id: Uuid,
            f: impl FnOnce(&[u8]) -> Result<R>,
        ) -> Result<Option<R>> {
            self.with_value(tables::user_key(id).as_slice(), f)?
                .transpose()
        }

        fn pair_ids(&self, tag: u8, s: &str) -> Result<Vec<Uuid>> {
            let (lo, hi) = tables::pair_range(tag, s);
            let mut out = Vec::new();
            self.scan(&lo, &hi, |k, _| {
                out.push(
                    tables::trailing_id(k)
                        .ok_or_else(|| Error::Corrupt("malformed index key".into()))?,
                );
                Ok(true)
            })?;
            Ok(out)
        }

        /// The first user holding the skeleton of a skeleton entry key (`S skeleton 0x00 id`),
        /// whatever the id in the key (import checks look-alikes with it).
        #[allow(dead_code)]
        pub(crate) fn skeleton_key_owner(&self, key: &[u8]) -> Result<Option<Uuid>> {
            let Some(prefix) = key.get(..key.len().saturating_sub(16)) else {
                return Ok(None);
            };
            let mut hi = prefix.to_vec();
            if let Some(last) = hi.last_mut() {
                *last = 1; // the 0x00 separator + 1: past every id
            }
            let mut owner = None;
            self.scan(prefix, &hi, |k, _| {
                owner = tables::trailing_id(k);
                Ok(false)
            })?;
            Ok(owner)
        }

        /// Users whose username has this confusable skeleton.
        #[allow(dead_code)]
        pub(crate) fn skeleton_owners(&self, skeleton: &str) -> Result<Vec<Uuid>> {
            self.pair_ids(TAG_SKELETON, skeleton)
        }

        /// Ids of users holding `role`, in id order.
        #[allow(dead_code)]
        pub(crate) fn role_members(&self, role: &str) -> Result<Vec<Uuid>> {
            self.pair_ids(TAG_ROLE, role)
        }

        /// Walks the insert-instant index between `lo` and `hi` (ascending, or descending when
        /// `rev`), calling `f(instant, id)` until it returns `false` (search).
        #[allow(dead_code)]
        pub(crate) fn inserted_walk(
            &self,
            lo: std::ops::Bound<(i64, Uuid)>,
            hi: std::ops::Bound<(i64, Uuid)>,
            rev: bool,
            mut f: impl FnMut(i64, Uuid) -> Result<bool>,
        ) -> Result<()> {
            use std::ops::Bound;
            let conv = |b: Bound<(i64, Uuid)>, open_end: [u8; 1]| match b {
                Bound::Included((t, id)) => Bound::Included(tables::inserted_key(t, id).to_vec()),
                Bound::Excluded((t, id)) => Bound::Excluded(tables::inserted_key(t, id).to_vec()),
                Bound::Unbounded => Bound::Included(open_end.to_vec()),
            };
            let lo = conv(lo, [TAG_INSERTED]);
            let hi = match conv(hi, [TAG_INSERTED + 1]) {
                Bound::Included(k) if k.len() == 1 => Bound::Excluded(k),
                other => other,
            };
            let range = self
                .t
                .range::<&[u8]>((
                    lo.as_ref().map(Vec::as_slice),
                    hi.as_ref().map(Vec::as_slice),
                ))
                .map_err(storage)?;
            let mut step = |e: std::result::Result<
                (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>),
                redb::StorageError,
            >|
             -> Result<bool> {
                let (k, _) = e.map_err(storage)?;
                let k = k.value();
                let at = k
                    .get(1..9)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(tables::instant_from);
                match (at, tables::trailing_id(k)) {
                    (Some(at), Some(id)) if k.len() == 25 => f(at, id),
                    _ => Err(Error::Corrupt("malformed insert-instant key".into())),
                }
            };
            if rev {
                for e in range.rev() {
                    if !step(e)? {
                        break;
                    }
                }
            } else {
                for e in range {
                    if !step(e)? {
                        break;
                    }
                }
            }
            Ok(())
        }

        /// Calls `f(id, encoded record)` for every user in id order until it returns `false`;
        /// decode with `codec::decode` (search skips records that cannot match undecoded).
        #[allow(dead_code)]
        pub(crate) fn for_each_record(
            &self,
            mut f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
        ) -> Result<()> {
            self.scan(&[TAG_USER], &[TAG_USER + 1], |k, v| f(user_id_of(k)?, v))
        }

        /// Calls `f(id, encoded record)` for every user with an id greater than `after` (all
        /// when `None`), in id order, until it returns `false` (search).
        #[allow(dead_code)]
        pub(crate) fn for_each_record_after(
            &self,
            after: Option<Uuid>,
            mut f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
        ) -> Result<()> {
            let lo = match after {
                Some(a) => {
                    let mut k = tables::user_key(a).to_vec();
                    k.push(0); // the smallest key after `a`'s
                    k
                }
                None => vec![TAG_USER],
            };
            self.scan(&lo, &[TAG_USER + 1], |k, v| f(user_id_of(k)?, v))
        }

        /// Number of users.
        #[allow(dead_code)]
        pub(crate) fn count(&self) -> Result<u64> {
            Ok(
                match self.with_value(KEY_COUNT, |v| <[u8; 8]>::try_from(v).ok())? {
                    Some(Some(v)) => u64::from_le_bytes(v),
                    Some(None) => return Err(Error::Corrupt("malformed user count".into())),
                    None => 0,
                },
            )
        }

        /// Rebuilds every index entry from the records and compares with what is stored.
        #[allow(dead_code)]
        pub(crate) fn tree_problems(&self) -> Result<Vec<String>> {
            use std::collections::{BTreeMap, BTreeSet};
            let mut problems = Vec::new();
            let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut users = 0u64;
            let mut actual: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut counts = Counts::new();
            let mut stored_counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for e in self.t.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                let (k, v) = (k.value(), v.value());
                // A damaged branch page can misdirect point lookups while a scan still walks
                // every leaf: every entry the scan finds must also be found by its key.
                if self.t.get(k).map_err(storage)?.map(|g| g.value() == v) != Some(true) {
                    problems.push(format!(
                        "entry {} is not found by its key (damaged tree)",
                        show_key(k)
                    ));
                }
                if k.first() != Some(&TAG_USER) {
                    if k.first().is_some_and(|t| tables::INDEX_TAGS.contains(t)) {
                        actual.insert(k.to_vec(), v.to_vec());
                    } else if k.first() == Some(&tables::TAG_COUNTER) {
                        match counter_value(v) {
                            Ok(n) => {
                                stored_counts.insert(k.to_vec(), n);
                            }
                            Err(e) => problems.push(format!("counter {}: {e}", show_key(k))),
                        }
                    }
                    continue;
                }
                users += 1;
                let user = match user_id_of(k).and_then(|id| codec::decode(id, v)) {
                    Ok(u) => u,
                    Err(e) => {
                        problems.push(e.to_string());
                        continue;
                    }
                };
                if user.username.is_none() && user.email.is_none() {
                    problems.push(format!("user {} has no username and no email", user.id));
                }
                let user_keys = self.rules.keys_of(&user);
                Keys::new(&user_keys).count_into(1, &mut counts);
                for (key, value) in Keys::new(&user_keys).entries(&user) {
                    if let Some(prev) = expected.insert(key.clone(), value) {
                        let other = tables::login_value(&prev)
                            .map(|p| p.0)
                            .or_else(|| Uuid::from_slice(&prev).ok());
                        problems.push(format!(
                            "key {} is claimed by user {} and by user {:?}",
                            show_key(&key),
                            user.id,
                            other
                        ));
                    }
                }
            }
            if self.count()? != users {
                problems.push(format!(
                    "user count says {} but there are {users} records",
                    self.count()?
                ));
            }
            let counters: BTreeSet<&Vec<u8>> = counts.keys().chain(stored_counts.keys()).collect();
            for k in counters {
                let want = counts.get(k).copied().unwrap_or(0);
                let have = stored_counts.get(k).copied().unwrap_or(0);
                if u64::try_from(want).ok() != Some(have) {
                    problems.push(format!(
                        "counter {} says {have} but the records give {want}",
                        show_key(k)
                    ));
                }
            }
            let keys: BTreeSet<&Vec<u8>> = expected.keys().chain(actual.keys()).collect();
            for k in keys {
                match (expected.get(k), actual.get(k)) {
                    (Some(_), None) => {
                        problems.push(format!("missing index entry {}", show_key(k)))
                    }
                    (None, Some(_)) => {
                        problems.push(format!("index entry {} matches no record", show_key(k)));
                    }
                    (Some(a), Some(b)) if a != b => problems.push(format!(
                        "index entry {} points elsewhere than its record says",
                        show_key(k)
                    )),
                    _ => {}
                }
                if problems.len() > 100 {
                    break;
                }
            }
            Ok(problems)
        }

        /// Every entry as (table, key, value fingerprint): for tests that compare whole states.
        /// Values are SHA-256 digests, so no hash ever appears in the output.
        #[allow(dead_code)]
        pub(crate) fn tree_dump(&self) -> Result<Vec<(&'static str, String, String)>> {
            use sha2::{Digest, Sha256};
            let mut out = Vec::new();
            for e in self.t.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                out.push((
                    "directory",
                    show_key(k.value()),
                    hex(Sha256::digest(v.value()).as_slice()),
                ));
            }
            Ok(out)
        }
    };
}

/// A consistent snapshot of the directory.
pub(crate) struct Reader {
    t: ReadOnlyTable<&'static [u8], &'static [u8]>,
    rules: IndexRules,
    /// The snapshot, for modules that keep tables of their own (`store::*`).
    #[allow(dead_code)]
    pub(crate) txn: ReadTransaction,
    /// The user cache and the generation whose state this snapshot holds, when it began
    /// while no write was publishing (see [`cache`]).
    cache: Option<(Arc<cache::UserCache>, u64)>,
}

impl Reader {
    /// The user with this id in this snapshot: from the cache when it holds the user as this
    /// snapshot does, else decoded (and offered to the cache).
    fn snapshot_get(&self, id: Uuid) -> Result<Option<User>> {
        let Some((cache, generation)) = &self.cache else {
            return self.get(id);
        };
        if let Some(u) = cache.get_at(id, *generation) {
            return Ok(Some(User::clone(&u)));
        }
        let user = self.get(id)?;
        if let Some(u) = &user {
            cache.fill(*generation, u, &(self.rules.keys)(u, false));
        }
        Ok(user)
    }

    /// The owner of a caseless login key in this snapshot: from the cache when it holds the
    /// owner as this snapshot does, else from the login entry.
    fn snapshot_login(&self, key: &str) -> Result<Option<LoginOwner>> {
        if let Some((cache, generation)) = &self.cache
            && let Some((owner, _)) = cache.login_at(key, *generation)
        {
            return Ok(Some(owner));
        }
        Ok(login_owner(self.login_entry(key)?))
    }

    /// Folds every user record into one accumulator per id range: `f(acc, id, encoded record)`,
    /// accumulators returned in id order (each made by `init`, each fed its range in id
    /// order). Large directories are split into ranges scanned on all cores; small ones are
    /// one range, scanned on the calling thread.
    ///
    /// The split interpolates between the smallest and the largest id (two lookups): ranges
    /// hold similar numbers of users when ids are spread evenly between those two, as random
    /// (v4) ids are, and sequential ones (a fixed split on the first id byte put every
    /// sequential or time-ordered id in one range). There are 16 ranges per core: a range
    /// costs one seek (microseconds; at 1M users, 1 to 128 ranges measured the same CPU
    /// time), and small ranges keep every core busy when one of them is taken by other work.
    pub(crate) fn fold_records<A: Send>(
        &self,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, Uuid, &[u8]) -> Result<()> + Sync,
    ) -> Result<Vec<A>> {
        use rayon::prelude::*;
        const PARALLEL_FROM: u64 = 16_384;
        let threads = rayon::current_num_threads();
        let edges: Vec<u128> = if threads > 1 && self.count()? >= PARALLEL_FROM {
            self.split_points((threads * 16).min(256))?
        } else {
            Vec::new()
        };
        // Ranges [lo, hi) of ids; `None` is the end of the user keys.
        let mut ranges: Vec<(Option<u128>, Option<u128>)> = Vec::with_capacity(edges.len() + 1);
        let mut lo = None;
        for e in edges {
            ranges.push((lo, Some(e)));
            lo = Some(e);
        }
        ranges.push((lo, None));
        let fold_range = |&(lo, hi): &(Option<u128>, Option<u128>)| -> Result<A> {
            let mut acc = init();
            let start = lo.map_or_else(
                || vec![TAG_USER],
                |lo| tables::user_key(Uuid::from_u128(lo)).to_vec(),
            );
            // Open-ended in redb (which then compares no key with a bound); the end of the
            // range is checked here, on the id.
            self.walk(start.as_slice().., |k, v| {
                let Some((&TAG_USER, id)) = k.split_first() else {
                    return Ok(false);
                };
                let id = <[u8; 16]>::try_from(id)
                    .map(Uuid::from_bytes)
                    .map_err(|_| Error::Corrupt("malformed user key".into()))?;
                if hi.is_some_and(|hi| id.as_u128() >= hi) {
                    return Ok(false);
                }
                f(&mut acc, id, v)?;
                Ok(true)
            })?;
            Ok(acc)
        };
        if ranges.len() == 1 {
            return ranges.iter().map(fold_range).collect();
        }
        ranges.par_iter().map(fold_range).collect()
    }

    /// `parts - 1` increasing ids that cut the ids between the smallest and the largest
    /// into `parts` equal intervals (none when there are fewer than two users).
    fn split_points(&self, parts: usize) -> Result<Vec<u128>> {
        let mut range = self
            .t
            .range(&[TAG_USER][..]..&[TAG_USER + 1][..])
            .map_err(storage)?;
        let first = range.next().transpose().map_err(storage)?;
        let last = range.next_back().transpose().map_err(storage)?;
        let (Some((first, _)), Some((last, _))) = (first, last) else {
            return Ok(Vec::new());
        };
        let lo = user_id_of(first.value())?.as_u128();
        let hi = user_id_of(last.value())?.as_u128();
        let parts = u128::try_from(parts.max(1)).unwrap_or(1);
        let step = hi.saturating_sub(lo) / parts;
        if step == 0 {
            return Ok(Vec::new());
        }
        Ok((1..parts).map(|i| lo + step * i).collect())
    }

    read_ops!();
}

/// The directory table of one write transaction, with index maintenance.
pub(crate) struct Writer<'t> {
    t: DirTable<'t>,
    /// The transaction, for modules that keep tables of their own (`store::*`).
    #[allow(dead_code)]
    pub(crate) txn: &'t WriteTransaction,
    rules: IndexRules,
    /// Set when a mutation failed half-way: the transaction must not commit.
    broken: bool,
    /// What this transaction changed, for the redo log.
    redo: wal::Redo,
    /// The users whose record it put or deleted, for the cache.
    touched: Touched,
}

/// The users a write transaction touched (see [`cache`]).
#[derive(Debug, Default)]
pub(crate) struct Touched {
    /// Ids whose record was put or deleted.
    ids: Vec<Uuid>,
    /// Any record may have changed (an import batch).
    all: bool,
}

impl<'t> Writer<'t> {
    /// A writer on `txn`'s directory table, for `store`.
    fn new(txn: &'t WriteTransaction, store: &Store) -> Result<Writer<'t>> {
        Ok(Writer {
            t: txn.open_table(DIR).map_err(table_error)?,
            txn,
            rules: store.rules,
            broken: false,
            redo: wal::Redo::new(store.wal.is_some()),
            touched: Touched::default(),
        })
    }
}

impl Writer<'_> {
    read_ops!();

    /// The user with this id as this transaction has it (never from the cache: it holds
    /// committed state, not this transaction's changes).
    fn snapshot_get(&self, id: Uuid) -> Result<Option<User>> {
        self.get(id)
    }

    /// The owner of a caseless login key as this transaction has it (never from the cache).
    fn snapshot_login(&self, key: &str) -> Result<Option<LoginOwner>> {
        Ok(login_owner(self.login_entry(key)?))
    }

    /// Notes a change of the directory table's entry `key` for the cache.
    fn touch(&mut self, key: &[u8]) {
        if let Some((&TAG_USER, id)) = key.split_first()
            && let Ok(id) = Uuid::from_slice(id)
        {
            self.touched.ids.push(id);
        }
    }

    /// Notes that any record may have changed (the cache is emptied after the commit).
    pub(crate) fn touch_all(&mut self) {
        self.touched.all = true;
    }

    /// Refuses `user` if any of `keys` belongs to another user (see [`super::check_unique`]).
    fn check_unique(&self, user: &User, keys: &Keys) -> Result<()> {
        super::check_unique(
            self,
            user.id,
            keys.logins
                .iter()
                .map(|(k, kinds)| (*k, kinds & KIND_USERNAME != 0)),
            keys.external,
            keys.skeleton.filter(|_| self.rules.skeletons),
        )
    }

    /// Inserts a new user and its index entries.
    fn insert_user(&mut self, user: &User, user_keys: &UserKeys) -> Result<()> {
        if self.raw(&tables::user_key(user.id))?.is_some() {
            return Err(Error::DuplicateId(user.id));
        }
        let keys = Keys::new(user_keys);
        self.check_unique(user, &keys)?;
        let bytes = codec::encode(user)?;
        let count = self.count()?;
        let mut counts = Counts::new();
        keys.count_into(1, &mut counts);
        let counters = self.counters_after(&counts)?;
        self.guard(|w| {
            w.put(user, &keys, &bytes)?;
            w.set_count(count + 1)?;
            w.put_counters(&counters)
        })
    }

    /// Replaces `old` by `new` (same id), re-indexing what changed.
    fn replace_user(
        &mut self,
        (old, old_uk): (&User, &UserKeys),
        (new, new_uk): (&User, &UserKeys),
    ) -> Result<()> {
        let new_keys = Keys::new(new_uk);
        let old_keys = Keys::new(old_uk);
        // Only keys the user does not own yet can conflict: an unchanged username stays valid
        // even if a look-alike was admitted before look-alike refusal was turned on.
        let added = Keys {
            logins: new_keys
                .logins
                .iter()
                .filter(|l| !old_keys.logins.contains(l))
                .copied()
                .collect(),
            external: new_keys.external.filter(|x| old_keys.external != Some(*x)),
            skeleton: new_keys.skeleton.filter(|s| old_keys.skeleton != Some(*s)),
            roles: &[],
            emails: &[],
        };
        self.check_unique(new, &added)?;
        let bytes = codec::encode(new)?;
        if old_keys == new_keys && old.insert_instant == new.insert_instant {
            // Only the record changes (a login stamp, a flag): skip the indexes.
            return self
                .guard(|w| w.dir_put(tables::user_key(new.id).as_slice(), bytes.as_slice()));
        }
        let mut counts = Counts::new();
        old_keys.count_into(-1, &mut counts);
        new_keys.count_into(1, &mut counts);
        let counters = self.counters_after(&counts)?;
        self.guard(|w| {
            w.unindex(old, &old_keys)?;
            w.put(new, &new_keys, &bytes)?;
            w.put_counters(&counters)
        })
    }

    /// Removes a user and every index entry it owns.
    fn remove_user(&mut self, user: &User, user_keys: &UserKeys) -> Result<()> {
        let keys = Keys::new(user_keys);
        let count = self.count()?;
        let mut counts = Counts::new();
        keys.count_into(-1, &mut counts);
        let counters = self.counters_after(&counts)?;
        self.guard(|w| {
            w.unindex(user, &keys)?;
            w.dir_del(tables::user_key(user.id).as_slice())?;
            w.set_count(count.saturating_sub(1))?;
            w.put_counters(&counters)
        })
    }

    /// The new values of the counters `counts` changes (unchanged ones left out), read before
    /// anything is written: a malformed or underflowing counter refuses the write.
    pub(crate) fn counters_after(&self, counts: &Counts) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut out = Vec::with_capacity(counts.len());
        for (k, d) in counts {
            if *d == 0 {
                continue;
            }
            let now = match self.with_value(k, counter_value)? {
                Some(v) => v?,
                None => 0,
            };
            let next = now
                .checked_add_signed(*d)
                .ok_or_else(|| Error::Corrupt("a counter does not match its entries".into()))?;
            out.push((k.clone(), next));
        }
        Ok(out)
    }

    /// Writes counter values (a zero counter is removed).
    pub(crate) fn put_counters(&mut self, counters: &[(Vec<u8>, u64)]) -> Result<()> {
        for (k, n) in counters {
            if *n == 0 {
                self.dir_del(k)?;
            } else {
                self.dir_put(k, n.to_le_bytes().as_slice())?;
            }
        }
        Ok(())
    }

    /// Writes `key` = `value` in the directory table (and in the redo log).
    pub(crate) fn dir_put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.touch(key);
        self.t.insert(key, value).map_err(storage)?;
        self.redo.record(wal::DIR_PUT, key, value);
        Ok(())
    }

    /// Removes `key` from the directory table (and records it in the redo log).
    pub(crate) fn dir_del(&mut self, key: &[u8]) -> Result<()> {
        self.touch(key);
        self.t.remove(key).map_err(storage)?;
        self.redo.record(wal::DIR_DEL, key, &[]);
        Ok(())
    }

    /// Records a change another module made to its own table (tokens).
    pub(crate) fn record(&mut self, kind: u8, key: &[u8], value: &[u8]) {
        self.redo.record(kind, key, value);
    }

    fn guard(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let r = f(self);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn set_count(&mut self, n: u64) -> Result<()> {
        if n == 0 {
            // An empty directory has no entries at all.
            self.dir_del(KEY_COUNT)?;
        } else {
            self.dir_put(KEY_COUNT, n.to_le_bytes().as_slice())?;
        }
        Ok(())
    }

    fn put(&mut self, user: &User, keys: &Keys, bytes: &[u8]) -> Result<()> {
        self.dir_put(tables::user_key(user.id).as_slice(), bytes)?;
        for (k, v) in keys.entries(user) {
            self.dir_put(k.as_slice(), v.as_slice())?;
        }
        Ok(())
    }

    fn unindex(&mut self, user: &User, keys: &Keys) -> Result<()> {
        for (k, _) in keys.entries(user) {
            self.dir_del(k.as_slice())?;
        }
        Ok(())
    }
}

/// The owner a login entry (id, kinds) names.
fn login_owner(entry: Option<(Uuid, u8)>) -> Option<LoginOwner> {
    entry.map(|(id, kinds)| LoginOwner {
        id,
        username: kinds & KIND_USERNAME != 0,
        email: kinds & KIND_EMAIL != 0,
    })
}

/// The login entry kind bit of a login kind.
fn kind_bit(kind: LoginKind) -> u8 {
    match kind {
        LoginKind::Username => KIND_USERNAME,
        LoginKind::Email => KIND_EMAIL,
    }
}

/// [`Snapshot`] for a reader or a writer: the shared read methods, tokens and failed-login
/// rows.
macro_rules! snapshot_ops {
    () => {
        fn get(&self, id: Uuid) -> Result<Option<User>> {
            Self::snapshot_get(self, id)
        }
        fn with_record<R>(
            &self,
            id: Uuid,
            f: impl FnOnce(&[u8]) -> Result<R>,
        ) -> Result<Option<R>> {
            Self::with_record(self, id, f)
        }
        fn count(&self) -> Result<u64> {
            Self::count(self)
        }
        fn login(&self, key: &str) -> Result<Option<LoginOwner>> {
            Self::snapshot_login(self, key)
        }
        fn login_prefix(&self, prefix: &str, kind: LoginKind, f: impl FnMut(Uuid)) -> Result<()> {
            self.login_prefix_kinds(prefix, kind_bit(kind), f)
        }
        fn login_walk(
            &self,
            kind: LoginKind,
            prefix: &str,
            after: Option<&str>,
            rev: bool,
            _hint: usize,
            f: impl FnMut(&str, Uuid) -> Result<bool>,
        ) -> Result<()> {
            Self::login_walk(self, kind_bit(kind), prefix, after, rev, f)
        }
        fn login_count(&self, kind: LoginKind, prefix: &str) -> Result<u64> {
            Self::login_count(self, kind_bit(kind), prefix)
        }
        fn external(&self, external_id: &str) -> Result<Option<Uuid>> {
            Self::external(self, external_id)
        }
        fn email_holders(&self, m: super::EmailMatch<'_>, f: impl FnMut(Uuid)) -> Result<()> {
            Self::email_holders(self, m, f)
        }
        fn role_members(&self, role: &str) -> Result<Vec<Uuid>> {
            Self::role_members(self, role)
        }
        fn role_walk(
            &self,
            role: &str,
            after: Option<Uuid>,
            _hint: usize,
            f: impl FnMut(Uuid) -> Result<bool>,
        ) -> Result<()> {
            Self::role_walk(self, role, after, f)
        }
        fn role_count(&self, role: &str) -> Result<u64> {
            Self::counter(self, &tables::role_counter_key(role))
        }
        fn inserted_walk(
            &self,
            lo: std::ops::Bound<(UnixMillis, Uuid)>,
            hi: std::ops::Bound<(UnixMillis, Uuid)>,
            rev: bool,
            f: impl FnMut(UnixMillis, Uuid) -> Result<bool>,
        ) -> Result<()> {
            Self::inserted_walk(self, lo, hi, rev, f)
        }
        fn for_each_record_after(
            &self,
            after: Option<Uuid>,
            f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
        ) -> Result<()> {
            Self::for_each_record_after(self, after, f)
        }
        fn batch_clashes(&self, batch: &BatchKeys) -> Result<Vec<Clash>> {
            Self::batch_clashes(self, batch)
        }
    };
}

impl Snapshot for Reader {
    snapshot_ops!();

    fn failures(&self, id: Uuid) -> Result<Option<FailureState>> {
        auth_state::get(self, id)
    }
    fn login_id_failures(&self, digest: &LoginDigest) -> Result<Option<FailureState>> {
        auth_state::get_login(self, digest)
    }
    fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        tokens::get(self, hash)
    }
    fn user_token_count(&self, user: Uuid) -> Result<usize> {
        tokens::count_user(self, user)
    }
}

impl ReadTxn for Reader {
    fn fold_records<A: Send>(
        &self,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, Uuid, &[u8]) -> Result<()> + Sync,
    ) -> Result<Vec<A>> {
        Self::fold_records(self, init, f)
    }
    fn integrity_problems(&self) -> Result<Vec<String>> {
        let mut p = self.tree_problems()?;
        p.extend(tokens::integrity_problems(self)?);
        Ok(p)
    }
    #[cfg(any(test, feature = "__test-hooks"))]
    fn dump(&self) -> Result<Vec<(&'static str, String, String)>> {
        let mut d = self.tree_dump()?;
        d.extend(tokens::dump(self)?);
        Ok(d)
    }
}

impl super::KeyOwners for Writer<'_> {
    fn skeleton_owners(&self, skeleton: &str) -> Result<Vec<Uuid>> {
        Writer::skeleton_owners(self, skeleton)
    }
}

impl Snapshot for Writer<'_> {
    snapshot_ops!();

    fn failures(&self, id: Uuid) -> Result<Option<FailureState>> {
        auth_state::get_w(self, id)
    }
    fn login_id_failures(&self, digest: &LoginDigest) -> Result<Option<FailureState>> {
        auth_state::get_login_w(self, digest)
    }
    fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        tokens::get_w(self, hash)
    }
    fn user_token_count(&self, user: Uuid) -> Result<usize> {
        tokens::count_user_w(self, user)
    }
}

impl WriteTxn for Writer<'_> {
    fn insert(&mut self, user: &User, keys: &UserKeys) -> Result<()> {
        self.insert_user(user, keys)
    }
    fn replace(&mut self, old: (&User, &UserKeys), new: (&User, &UserKeys)) -> Result<()> {
        self.replace_user(old, new)
    }
    fn replace_record(&mut self, new: &User) -> Result<()> {
        let bytes = codec::encode(new)?;
        self.guard(|w| w.dir_put(tables::user_key(new.id).as_slice(), bytes.as_slice()))
    }
    fn remove(&mut self, user: &User, keys: &UserKeys) -> Result<()> {
        self.remove_user(user, keys)
    }
    fn insert_batch(&mut self, batch: &BatchKeys) -> Result<Vec<Clash>> {
        Self::insert_batch(self, batch)
    }
    fn set_failures(&mut self, id: Uuid, state: FailureState) -> Result<()> {
        auth_state::put(self, id, state)
    }
    fn clear_failures(&mut self, id: Uuid) -> Result<()> {
        auth_state::clear(self, id)
    }
    fn set_login_id_failures(&mut self, digest: &LoginDigest, state: FailureState) -> Result<()> {
        auth_state::put_login(self, digest, state)
    }
    fn purge_stale_login_id_failures(
        &mut self,
        after: &LoginDigest,
        limit: usize,
        stale: impl Fn(&FailureState) -> bool,
    ) -> Result<usize> {
        auth_state::purge_stale_logins(self, after, limit, stale)
    }
    fn insert_token(&mut self, hash: &TokenHash, token: &TokenRecord, keep: usize) -> Result<()> {
        tokens::insert(self, hash, token, keep)
    }
    fn remove_token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        tokens::remove(self, hash)
    }
    fn revoke_tokens(&mut self, user: Uuid, kind: Option<TokenKind>) -> Result<usize> {
        tokens::revoke_user(self, user, kind)
    }
    fn purge_expired_tokens(&mut self, now: UnixMillis, limit: usize) -> Result<usize> {
        tokens::purge_expired(self, now, limit)
    }
}
