//! Everything that knows redb: tables, the record codec, index maintenance, transactions.
//!
//! Every write runs in one redb write transaction; a record and its index entries change
//! together. Each mutating method checks everything it can refuse *before* it changes anything,
//! so an operation that fails inside a larger [`write`](crate::Directory::write) transaction
//! leaves that transaction as it was.

pub(crate) mod codec;
mod record;
pub(crate) mod tables;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableHandle, WriteTransaction,
};
use uuid::Uuid;

pub use redb::StorageBackend;
pub use redb::backends::InMemoryBackend;

use crate::error::{Error, Result};
use crate::identity;
use crate::user::User;
use tables::{
    EXTERNAL_IDS, FORMAT_VERSION, INSERTED, KIND_EMAIL, KIND_USERNAME, LOGINS, META, ROLES,
    SKELETONS, USERS,
};

/// When a write is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Each commit is flushed (fsync) before the call returns. The default.
    #[default]
    Immediate,
    /// Commits are visible at once but reach the disk only with a later `Immediate` commit or a
    /// clean close; a crash may lose them (never half of one).
    Eventual,
}

fn storage<E: std::fmt::Display>(e: E) -> Error {
    Error::Storage(e.to_string())
}

fn db_error(e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::Storage(io.to_string()),
        redb::DatabaseError::Storage(s) => Error::NotADirectory(s.to_string()),
        other => Error::NotADirectory(other.to_string()),
    }
}

/// The redb database and its failure state.
pub(crate) struct Store {
    db: Database,
    failed: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Store> {
        let db = Database::builder().create(path).map_err(db_error)?;
        Store::init(db)
    }

    pub(crate) fn with_backend(backend: impl StorageBackend) -> Result<Store> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(db_error)?;
        Store::init(db)
    }

    fn init(db: Database) -> Result<Store> {
        let txn = db.begin_write().map_err(storage)?;
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
                    let (a, b, c) = identity::UNICODE_VERSION;
                    meta.insert(
                        "unicode",
                        (u64::from(a) << 16) | (u64::from(b) << 8) | u64::from(c),
                    )
                    .map_err(storage)?;
                }
                None => {
                    return Err(Error::NotADirectory(
                        "a redb file without userdir's format marker".into(),
                    ));
                }
            }
        }
        // Create every table now so that read transactions always find them.
        Tables::open(&txn)?;
        txn.commit().map_err(storage)?;
        Ok(Store {
            db,
            failed: AtomicBool::new(false),
        })
    }

    /// Runs `f` in one write transaction; commits when it returns `Ok`, aborts otherwise.
    pub(crate) fn write<T>(
        &self,
        durability: Durability,
        lookalikes: bool,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.set_durability(match durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::Eventual => redb::Durability::None,
        })
        .map_err(storage)?;
        let result = {
            let mut w = Writer {
                t: Tables::open(&txn)?,
                txn: &txn,
                lookalikes,
                broken: false,
            };
            let r = f(&mut w);
            if w.broken && r.is_ok() {
                Err(Error::Storage(
                    "a write failed inside the transaction; nothing was committed".into(),
                ))
            } else {
                r
            }
        };
        match result {
            Ok(v) => {
                txn.commit().map_err(|e| self.fail(e))?;
                Ok(v)
            }
            Err(e) => {
                txn.abort().map_err(|e| self.fail(e))?;
                Err(e)
            }
        }
    }

    fn fail<E: std::fmt::Display>(&self, e: E) -> Error {
        self.failed.store(true, Ordering::Release);
        Error::Storage(e.to_string())
    }

    /// Runs `f` on a consistent snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(storage)?;
        let r = Reader::open(txn)?;
        f(&r)
    }
}

fn table_error(e: redb::TableError) -> Error {
    match e {
        redb::TableError::TableTypeMismatch { .. } | redb::TableError::TableIsMultimap(_) => {
            Error::NotADirectory(e.to_string())
        }
        other => Error::Storage(other.to_string()),
    }
}

struct Tables<'t> {
    users: Table<'t, u128, &'static [u8]>,
    logins: Table<'t, &'static str, (u128, u8)>,
    external: Table<'t, &'static str, u128>,
    skeletons: Table<'t, (&'static str, u128), ()>,
    roles: Table<'t, (&'static str, u128), ()>,
    inserted: Table<'t, (i64, u128), ()>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Tables {
            users: txn.open_table(USERS).map_err(table_error)?,
            logins: txn.open_table(LOGINS).map_err(table_error)?,
            external: txn.open_table(EXTERNAL_IDS).map_err(table_error)?,
            skeletons: txn.open_table(SKELETONS).map_err(table_error)?,
            roles: txn.open_table(ROLES).map_err(table_error)?,
            inserted: txn.open_table(INSERTED).map_err(table_error)?,
        })
    }
}

/// The index keys one user record owns.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    /// (caseless key, kinds)
    pub logins: Vec<(String, u8)>,
    pub external: Option<String>,
    pub skeleton: Option<String>,
}

impl Keys {
    pub(crate) fn of(u: &User) -> Keys {
        let mut logins: Vec<(String, u8)> = Vec::with_capacity(2);
        let uk = u.username.as_deref().map(identity::username_key);
        if let Some(k) = &uk {
            logins.push((k.clone(), KIND_USERNAME));
        }
        if let Some(e) = &u.email {
            let k = identity::email_key(e);
            match logins.first_mut() {
                Some((uk, kinds)) if *uk == k => *kinds |= KIND_EMAIL,
                _ => logins.push((k, KIND_EMAIL)),
            }
        }
        Keys {
            logins,
            external: u.external_id.clone(),
            skeleton: uk.as_deref().map(identity::skeleton),
        }
    }
}

fn uid(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

// Each reader method is used by some operations on one side (read or write) only.
macro_rules! read_ops {
    () => {
        /// The user with this id.
        #[allow(dead_code)]
        pub(crate) fn get(&self, id: Uuid) -> Result<Option<User>> {
            match self.t.users.get(id.as_u128()).map_err(storage)? {
                Some(g) => codec::decode(id, g.value()).map(Some),
                None => Ok(None),
            }
        }

        /// The owner of a caseless login key and the kinds of login id it is for them.
        #[allow(dead_code)]
        pub(crate) fn login(&self, key: &str) -> Result<Option<(Uuid, u8)>> {
            Ok(self.t.logins.get(key).map_err(storage)?.map(|g| {
                let (id, kinds) = g.value();
                (uid(id), kinds)
            }))
        }

        /// The owner of an external id.
        #[allow(dead_code)]
        pub(crate) fn external(&self, external_id: &str) -> Result<Option<Uuid>> {
            Ok(self
                .t
                .external
                .get(external_id)
                .map_err(storage)?
                .map(|g| uid(g.value())))
        }

        /// Users whose username has this confusable skeleton.
        #[allow(dead_code)]
        pub(crate) fn skeleton_owners(&self, skeleton: &str) -> Result<Vec<Uuid>> {
            let mut out = Vec::new();
            for e in self
                .t
                .skeletons
                .range((skeleton, 0u128)..=(skeleton, u128::MAX))
                .map_err(storage)?
            {
                let (k, _) = e.map_err(storage)?;
                out.push(uid(k.value().1));
            }
            Ok(out)
        }

        /// Number of users.
        #[allow(dead_code)]
        pub(crate) fn count(&self) -> Result<u64> {
            self.t.users.len().map_err(storage)
        }

        /// Ids of users holding `role`, in id order, starting after `after`.
        #[allow(dead_code)]
        pub(crate) fn role_members(&self, role: &str) -> Result<Vec<Uuid>> {
            let mut out = Vec::new();
            for e in self
                .t
                .roles
                .range((role, 0u128)..=(role, u128::MAX))
                .map_err(storage)?
            {
                let (k, _) = e.map_err(storage)?;
                out.push(uid(k.value().1));
            }
            Ok(out)
        }

        /// Calls `f` for every user in id order until it returns `false`.
        #[allow(dead_code)]
        pub(crate) fn for_each_user(&self, mut f: impl FnMut(User) -> Result<bool>) -> Result<()> {
            for e in self.t.users.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                let user = codec::decode(uid(k.value()), v.value())?;
                if !f(user)? {
                    break;
                }
            }
            Ok(())
        }

        /// `(id, kinds)` of every login key starting with `prefix`, in key order (search).
        #[allow(dead_code)]
        pub(crate) fn login_prefix(&self, prefix: &str) -> Result<Vec<(Uuid, u8)>> {
            let mut out = Vec::new();
            for e in self.t.logins.range::<&str>(prefix..).map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                let (id, kinds) = v.value();
                out.push((uid(id), kinds));
            }
            Ok(out)
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
            let conv = |b: std::ops::Bound<(i64, Uuid)>| b.map(|(t, id)| (t, id.as_u128()));
            let range = self
                .t
                .inserted
                .range::<(i64, u128)>((conv(lo), conv(hi)))
                .map_err(storage)?;
            let mut step = |e: std::result::Result<
                (
                    redb::AccessGuard<'_, (i64, u128)>,
                    redb::AccessGuard<'_, ()>,
                ),
                redb::StorageError,
            >|
             -> Result<bool> {
                let (k, _) = e.map_err(storage)?;
                let (t, id) = k.value();
                f(t, uid(id))
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
            for e in self.t.users.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                if !f(uid(k.value()), v.value())? {
                    break;
                }
            }
            Ok(())
        }

        /// Calls `f` for every user with an id greater than `after` (all when `None`), in id
        /// order, until it returns `false` (search).
        #[allow(dead_code)]
        pub(crate) fn for_each_user_after(
            &self,
            after: Option<Uuid>,
            mut f: impl FnMut(User) -> Result<bool>,
        ) -> Result<()> {
            let lo = after.map_or(std::ops::Bound::Unbounded, |a| {
                std::ops::Bound::Excluded(a.as_u128())
            });
            for e in self
                .t
                .users
                .range::<u128>((lo, std::ops::Bound::Unbounded))
                .map_err(storage)?
            {
                let (k, v) = e.map_err(storage)?;
                let user = codec::decode(uid(k.value()), v.value())?;
                if !f(user)? {
                    break;
                }
            }
            Ok(())
        }

        /// Compares every index with what the records say it must hold. Returns the problems.
        #[allow(dead_code)]
        pub(crate) fn integrity_problems(&self) -> Result<Vec<String>> {
            use std::collections::BTreeSet;
            let mut problems = Vec::new();
            let mut logins: BTreeSet<(String, u128, u8)> = BTreeSet::new();
            let mut external: BTreeSet<(String, u128)> = BTreeSet::new();
            let mut skeletons: BTreeSet<(String, u128)> = BTreeSet::new();
            let mut roles: BTreeSet<(String, u128)> = BTreeSet::new();
            let mut inserted: BTreeSet<(i64, u128)> = BTreeSet::new();
            for e in self.t.users.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                let id = k.value();
                let user = match codec::decode(uid(id), v.value()) {
                    Ok(u) => u,
                    Err(e) => {
                        problems.push(e.to_string());
                        continue;
                    }
                };
                if user.username.is_none() && user.email.is_none() {
                    problems.push(format!("user {} has no username and no email", uid(id)));
                }
                let keys = Keys::of(&user);
                for (key, kinds) in keys.logins {
                    if let Some((_, other, _)) = logins
                        .range((key.clone(), 0, 0)..)
                        .next()
                        .filter(|(k2, _, _)| *k2 == key)
                    {
                        problems.push(format!(
                            "login key {key:?} is claimed by users {} and {}",
                            uid(*other),
                            uid(id)
                        ));
                    }
                    logins.insert((key, id, kinds));
                }
                if let Some(x) = keys.external {
                    external.insert((x, id));
                }
                if let Some(s) = keys.skeleton {
                    skeletons.insert((s, id));
                }
                for r in &user.roles {
                    roles.insert((r.clone(), id));
                }
                inserted.insert((user.insert_instant, id));
            }
            let mut actual_logins = BTreeSet::new();
            for e in self.t.logins.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                let (id, kinds) = v.value();
                actual_logins.insert((k.value().to_owned(), id, kinds));
            }
            diff(&mut problems, "logins", &logins, &actual_logins);
            let mut actual = BTreeSet::new();
            for e in self.t.external.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                actual.insert((k.value().to_owned(), v.value()));
            }
            diff(&mut problems, "external_ids", &external, &actual);
            let mut actual = BTreeSet::new();
            for e in self.t.skeletons.iter().map_err(storage)? {
                let (k, _) = e.map_err(storage)?;
                let (s, id) = k.value();
                actual.insert((s.to_owned(), id));
            }
            diff(&mut problems, "skeletons", &skeletons, &actual);
            let mut actual = BTreeSet::new();
            for e in self.t.roles.iter().map_err(storage)? {
                let (k, _) = e.map_err(storage)?;
                let (s, id) = k.value();
                actual.insert((s.to_owned(), id));
            }
            diff(&mut problems, "roles", &roles, &actual);
            let mut actual = BTreeSet::new();
            for e in self.t.inserted.iter().map_err(storage)? {
                let (k, _) = e.map_err(storage)?;
                actual.insert(k.value());
            }
            diff(&mut problems, "inserted", &inserted, &actual);
            Ok(problems)
        }

        /// Every entry of every table as (table, key, SHA-256 of the value): for tests that
        /// compare whole states. Values are digested so no hash ever appears in the output.
        #[allow(dead_code)]
        pub(crate) fn dump(&self) -> Result<Vec<(&'static str, String, String)>> {
            use sha2::{Digest, Sha256};
            fn dig(b: &[u8]) -> String {
                Sha256::digest(b)
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect()
            }
            let mut out = Vec::new();
            for e in self.t.users.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                out.push(("users", uid(k.value()).to_string(), dig(v.value())));
            }
            for e in self.t.logins.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                out.push(("logins", k.value().to_owned(), format!("{:?}", v.value())));
            }
            for e in self.t.external.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                out.push(("external_ids", k.value().to_owned(), v.value().to_string()));
            }
            for e in self.t.skeletons.iter().map_err(storage)? {
                let (k, _) = e.map_err(storage)?;
                out.push(("skeletons", format!("{:?}", k.value()), String::new()));
            }
            for e in self.t.roles.iter().map_err(storage)? {
                let (k, _) = e.map_err(storage)?;
                out.push(("roles", format!("{:?}", k.value()), String::new()));
            }
            for e in self.t.inserted.iter().map_err(storage)? {
                let (k, _) = e.map_err(storage)?;
                out.push(("inserted", format!("{:?}", k.value()), String::new()));
            }
            Ok(out)
        }
    };
}

fn diff<T: Ord + std::fmt::Debug>(
    problems: &mut Vec<String>,
    table: &str,
    expected: &std::collections::BTreeSet<T>,
    actual: &std::collections::BTreeSet<T>,
) {
    for missing in expected.difference(actual).take(20) {
        problems.push(format!("{table}: missing entry {missing:?}"));
    }
    for extra in actual.difference(expected).take(20) {
        problems.push(format!("{table}: entry {extra:?} matches no record"));
    }
}

struct ReadTables {
    users: ReadOnlyTable<u128, &'static [u8]>,
    logins: ReadOnlyTable<&'static str, (u128, u8)>,
    external: ReadOnlyTable<&'static str, u128>,
    skeletons: ReadOnlyTable<(&'static str, u128), ()>,
    roles: ReadOnlyTable<(&'static str, u128), ()>,
    inserted: ReadOnlyTable<(i64, u128), ()>,
}

/// A consistent snapshot of the directory.
pub(crate) struct Reader {
    t: ReadTables,
    /// The snapshot, for modules that keep tables of their own (`store::*`).
    #[allow(dead_code)]
    pub(crate) txn: ReadTransaction,
}

impl Reader {
    fn open(txn: ReadTransaction) -> Result<Reader> {
        Ok(Reader {
            t: ReadTables {
                users: txn.open_table(USERS).map_err(table_error)?,
                logins: txn.open_table(LOGINS).map_err(table_error)?,
                external: txn.open_table(EXTERNAL_IDS).map_err(table_error)?,
                skeletons: txn.open_table(SKELETONS).map_err(table_error)?,
                roles: txn.open_table(ROLES).map_err(table_error)?,
                inserted: txn.open_table(INSERTED).map_err(table_error)?,
            },
            txn,
        })
    }
    read_ops!();
}

/// The tables of one write transaction, with index maintenance.
pub(crate) struct Writer<'t> {
    t: Tables<'t>,
    /// The transaction, for modules that keep tables of their own (`store::*`).
    #[allow(dead_code)]
    pub(crate) txn: &'t WriteTransaction,
    lookalikes: bool,
    /// Set when a mutation failed half-way: the transaction must not commit.
    broken: bool,
}

impl Writer<'_> {
    read_ops!();

    /// Refuses `user` if any of its keys belongs to another user. `self_id` is the user being
    /// replaced (its own entries do not conflict).
    fn check_unique(&self, user: &User, keys: &Keys) -> Result<()> {
        for (key, kinds) in &keys.logins {
            if let Some((owner, owner_kinds)) = self.login(key)?
                && owner != user.id
            {
                let as_username = kinds & KIND_USERNAME != 0;
                return Err(match (as_username, owner_kinds & KIND_USERNAME != 0) {
                    (true, true) => Error::DuplicateUsername { existing: owner },
                    (true, false) => Error::LoginIdConflict {
                        field: "username",
                        existing: owner,
                    },
                    (false, _) if owner_kinds & KIND_EMAIL != 0 => {
                        Error::DuplicateEmail { existing: owner }
                    }
                    (false, _) => Error::LoginIdConflict {
                        field: "email",
                        existing: owner,
                    },
                });
            }
        }
        if let Some(x) = &keys.external
            && let Some(owner) = self.external(x)?
            && owner != user.id
        {
            return Err(Error::DuplicateExternalId { existing: owner });
        }
        if self.lookalikes
            && let Some(s) = &keys.skeleton
            && let Some(owner) = self.skeleton_owners(s)?.into_iter().find(|o| *o != user.id)
        {
            return Err(Error::LookalikeUsername { existing: owner });
        }
        Ok(())
    }

    /// Inserts a new user and its index entries.
    pub(crate) fn insert(&mut self, user: &User) -> Result<()> {
        if self
            .t
            .users
            .get(user.id.as_u128())
            .map_err(storage)?
            .is_some()
        {
            return Err(Error::DuplicateId(user.id));
        }
        let keys = Keys::of(user);
        self.check_unique(user, &keys)?;
        let bytes = codec::encode(user)?;
        self.guard(|w| w.put(user, &keys, &bytes))
    }

    /// Replaces `old` by `new` (same id), re-indexing what changed.
    pub(crate) fn replace(&mut self, old: &User, new: &User) -> Result<()> {
        let new_keys = Keys::of(new);
        self.check_unique(new, &new_keys)?;
        let bytes = codec::encode(new)?;
        let old_keys = Keys::of(old);
        if old_keys == new_keys
            && old.roles == new.roles
            && old.insert_instant == new.insert_instant
        {
            // Only the record changes (a login stamp, a flag): skip the indexes.
            return self.guard(|w| {
                w.t.users
                    .insert(new.id.as_u128(), bytes.as_slice())
                    .map_err(storage)?;
                Ok(())
            });
        }
        self.guard(|w| {
            w.unindex(old, &old_keys)?;
            w.put(new, &new_keys, &bytes)
        })
    }

    /// Removes a user and every index entry it owns.
    pub(crate) fn remove(&mut self, user: &User) -> Result<()> {
        let keys = Keys::of(user);
        self.guard(|w| {
            w.unindex(user, &keys)?;
            w.t.users.remove(user.id.as_u128()).map_err(storage)?;
            Ok(())
        })
    }

    fn guard(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let r = f(self);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn put(&mut self, user: &User, keys: &Keys, bytes: &[u8]) -> Result<()> {
        let id = user.id.as_u128();
        self.t.users.insert(id, bytes).map_err(storage)?;
        for (k, kinds) in &keys.logins {
            self.t
                .logins
                .insert(k.as_str(), (id, *kinds))
                .map_err(storage)?;
        }
        if let Some(x) = &keys.external {
            self.t.external.insert(x.as_str(), id).map_err(storage)?;
        }
        if let Some(s) = &keys.skeleton {
            self.t
                .skeletons
                .insert((s.as_str(), id), ())
                .map_err(storage)?;
        }
        for r in &user.roles {
            self.t.roles.insert((r.as_str(), id), ()).map_err(storage)?;
        }
        self.t
            .inserted
            .insert((user.insert_instant, id), ())
            .map_err(storage)?;
        Ok(())
    }

    fn unindex(&mut self, user: &User, keys: &Keys) -> Result<()> {
        let id = user.id.as_u128();
        for (k, _) in &keys.logins {
            self.t.logins.remove(k.as_str()).map_err(storage)?;
        }
        if let Some(x) = &keys.external {
            self.t.external.remove(x.as_str()).map_err(storage)?;
        }
        if let Some(s) = &keys.skeleton {
            self.t.skeletons.remove((s.as_str(), id)).map_err(storage)?;
        }
        for r in &user.roles {
            self.t.roles.remove((r.as_str(), id)).map_err(storage)?;
        }
        self.t
            .inserted
            .remove((user.insert_instant, id))
            .map_err(storage)?;
        Ok(())
    }
}
