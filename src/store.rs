//! The storage boundary: what the operations need from a storage engine, and nothing of how
//! an engine does it.
//!
//! ```text
//! directory + operations (auth, import, patch, query)    the rules; compute identity keys
//!        │  Store::read / write / write_grouped, Snapshot, WriteTxn (typed keys in, records out)
//! store  ├── redb/      the embedded engine: one tagged-key B-tree, redo log, group commit
//!        └── postgres/  (feature `postgres`) one SERIALIZABLE transaction per operation
//! codec, record         the record format every engine stores (a version byte, then bincode)
//! ```
//!
//! # The contract
//!
//! * **Transactions.** [`Store::read`] runs a closure on a consistent snapshot ([`Reader`]);
//!   [`Store::write`] runs one on a write transaction ([`Writer`]) that commits when it returns
//!   `Ok` and changes nothing when it returns `Err`. [`Store::write_grouped`] is a write that
//!   may share its commit (and its fsync) with concurrent ones: an engine without group commit
//!   runs it as a plain write. Both take `FnMut` closures that act only through the
//!   transaction, so an engine may run them again after a serialization failure (PostgreSQL
//!   retries; redb runs each once). The caller's own multi-operation transaction
//!   ([`Directory::write`](crate::Directory::write), an `FnOnce`) is wrapped to run once: a
//!   second run is an error, not a silent replay.
//! * **Reads** ([`Snapshot`], on readers and writers alike): a user by id ([`Snapshot::get`]),
//!   its encoded record in place ([`Snapshot::with_record`], for scans that evaluate a filter
//!   without decoding), the owner of a login key or external id, the holders of a role, range walks
//!   over login-key prefixes and insert instants, all records in id order, the user count,
//!   failed-login state and tokens.
//! * **Writes** ([`WriteTxn`]): insert, replace and remove a user *with its keys*; the engine
//!   keeps every key unique across users ([`WriteTxn::insert`] refuses a taken key with the
//!   caller-facing error), stores failed-login state and tokens, and inserts a whole import
//!   batch.
//! * **Import batches.** Import validates rows on all cores and adds each user, with its
//!   keys and (when its password needs no hashing) its encoded record, to a [`BatchPart`];
//!   [`BatchKeys`] sorts every key of the batch together to find in-batch duplicates before
//!   any transaction. The layout is redb's tagged keys, so redb splices the sorted entries in
//!   as packed leaves; another engine reads the same batch as typed rows
//!   ([`BatchKeys::typed`]: records, login keys with their owner and kinds, external ids,
//!   skeletons, roles, insert instants) and loads them its own way (PostgreSQL: `COPY`).
//!   [`Snapshot::batch_clashes`] and [`WriteTxn::insert_batch`] report clashes with existing
//!   users in the same [`Clash`] form.
//! * **Keys in.** Index keys are computed above the store by `identity` ([`UserKeys`]): the
//!   store never folds case or computes a skeleton. What it must know to rebuild or check its
//!   indexes on its own (after a Unicode update, in an integrity check) it is given at open
//!   time as [`IndexRules`].
//! * **Records out.** Users are encoded by [`codec`] (a leading format-version byte), the same
//!   bytes in every engine; the engine stores them opaquely (a value in redb, a `bytea`
//!   column in PostgreSQL) next to its index entries or columns.
//! * **Errors** are the crate's own, engine-neutral: [`Error::Storage`] (I/O, connection),
//!   [`Error::Corrupt`] (bytes that do not decode), [`Error::NeedsReopen`] (writes refused
//!   after a failure), and the uniqueness errors of `create`. No engine type crosses the
//!   boundary.
//!
//! # Adding an engine
//!
//! An engine implements [`Snapshot`] for its reader, [`Snapshot`] + [`WriteTxn`] for its
//! writer, and the three transaction entry points; it adds one variant to [`Store`],
//! [`Reader`] and [`Writer`] and one line to `each!` below. The enums cost one predictable
//! branch per call; the traits keep the engines' method sets identical (the compiler checks
//! them), and generic helpers (`fn f(r: &impl Snapshot)`) serve readers and writers alike.
//!
//! [`Error::Storage`]: crate::Error::Storage
//! [`Error::Corrupt`]: crate::Error::Corrupt
//! [`Error::NeedsReopen`]: crate::Error::NeedsReopen

pub(crate) mod codec;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod reader;
pub(crate) mod record;
pub(crate) mod redb;

use std::ops::Bound;
use std::path::Path;

use uuid::Uuid;

use crate::error::{Error, Result};
pub(crate) use crate::identity::UserKeys;
use crate::user::{UnixMillis, User};

#[allow(unused_imports)] // for engines that load typed entries (PostgreSQL)
pub(crate) use self::redb::batch::BatchEntry;
pub(crate) use self::redb::batch::{BatchKeys, BatchPart};

/// Users the embedded engine's lookup cache holds by default.
pub(crate) const DEFAULT_USER_CACHE: usize = self::redb::cache::DEFAULT_CAPACITY;

/// When a write is on disk.
///
/// A file-backed directory makes writes durable through its redo log (`<file>.wal`, see the
/// README's Storage section); in-memory directories and custom backends use redb's own commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A write is on disk before the call returns: its redo log frame is synced (or, without a
    /// log, the redb commit is fsynced). The default.
    #[default]
    Immediate,
    /// Writes are visible at once and reach the disk soon after: their log frames are written
    /// but not synced (without a log: until a later `Immediate` commit or a clean close). A
    /// crash of the process loses nothing that reached the log; a crash of the machine may
    /// lose the last writes, never part of one.
    Eventual,
}

/// What an engine needs to maintain its indexes on its own: at open time (a Unicode update
/// changes every caseless key; turning look-alike refusal on or off adds or drops the skeleton
/// index) and in integrity checks (which rebuild every key from the records).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexRules {
    /// The keys of a user (`identity`'s rules): `keys(user, skeletons)`.
    pub keys: fn(&User, bool) -> UserKeys,
    /// The version of those rules (the Unicode version of the case folding tables); the
    /// engine rebuilds its login and skeleton indexes when the file was keyed under another.
    pub version: u64,
    /// Whether the skeleton index is kept (look-alike refusal is on).
    pub skeletons: bool,
}

impl IndexRules {
    /// The keys of `user` under these rules.
    pub(crate) fn keys_of(&self, user: &User) -> UserKeys {
        (self.keys)(user, self.skeletons)
    }
}

/// The owner of a login key, and what the key is for them (a username and an email of one
/// user can have the same key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoginOwner {
    /// The user.
    pub id: Uuid,
    /// The key is their username's.
    pub username: bool,
    /// The key is their email's.
    pub email: bool,
}

impl LoginOwner {
    /// Whether the key is this user's login of `kind`.
    pub(crate) fn is(&self, kind: LoginKind) -> bool {
        match kind {
            LoginKind::Username => self.username,
            LoginKind::Email => self.email,
        }
    }
}

/// What the uniqueness check needs from an engine's write transaction beyond a snapshot:
/// the users whose username has a confusable skeleton.
pub(crate) trait KeyOwners: Snapshot {
    /// Users whose username has this confusable skeleton, in id order.
    fn skeleton_owners(&self, skeleton: &str) -> Result<Vec<Uuid>>;
}

/// Refuses a write of user `id` when another user owns one of the keys it claims, with the
/// error that names the rule broken. Both engines call it inside their write transaction, so
/// they refuse the same writes with the same errors.
///
/// `logins` are the login keys claimed, each with whether it is claimed as a username (else
/// as an email); `skeleton` is the username's confusable skeleton when look-alikes are
/// refused. On a replace, pass only the keys the user did not own before: a key it keeps
/// never conflicts (an unchanged username stays valid even if a look-alike was admitted
/// before look-alike refusal was turned on).
pub(crate) fn check_unique<'k>(
    owners: &impl KeyOwners,
    id: Uuid,
    logins: impl IntoIterator<Item = (&'k str, bool)>,
    external: Option<&str>,
    skeleton: Option<&str>,
) -> Result<()> {
    for (key, as_username) in logins {
        if let Some(owner) = owners.login(key)?
            && owner.id != id
        {
            return Err(login_taken(as_username, &owner));
        }
    }
    if let Some(x) = external
        && let Some(owner) = owners.external(x)?
        && owner != id
    {
        return Err(Error::DuplicateExternalId { existing: owner });
    }
    if let Some(s) = skeleton
        && let Some(owner) = owners.skeleton_owners(s)?.into_iter().find(|o| *o != id)
    {
        return Err(Error::LookalikeUsername { existing: owner });
    }
    Ok(())
}

/// The error for a login key claimed as a username (`as_username`) or an email that `owner`
/// already holds: the owner's kinds decide between a duplicate and a login id conflict (a
/// username equal to someone's email, or the reverse).
pub(crate) fn login_taken(as_username: bool, owner: &LoginOwner) -> Error {
    let existing = owner.id;
    match (as_username, owner.username, owner.email) {
        (true, true, _) => Error::DuplicateUsername { existing },
        (true, false, _) => Error::LoginIdConflict {
            field: "username",
            existing,
        },
        (false, _, true) => Error::DuplicateEmail { existing },
        (false, _, false) => Error::LoginIdConflict {
            field: "email",
            existing,
        },
    }
}

/// Which secondary emails a search wants (keys are caseless, see `identity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmailMatch<'a> {
    /// A value key equal to this.
    Eq(&'a str),
    /// A value key starting with this.
    Prefix(&'a str),
    /// A value key containing this (every key is read; no record is).
    Contains(&'a str),
    /// An element whose type key is this (every key is read; no record is).
    Type(&'a str),
}

/// A kind of login id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginKind {
    /// A username.
    Username,
    /// An email.
    Email,
}

/// A user's failed-login state (the lockout rules live in `auth`; the store only keeps it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FailureState {
    /// Consecutive failures counted in the current window.
    pub count: u32,
    /// When the current counting window started.
    pub window_start: UnixMillis,
    /// Until when the account is locked, if it was locked.
    pub locked_until: Option<UnixMillis>,
}

/// The digest naming a login id that no account has (see `auth`): its failed logins are
/// counted under it, so that an unknown login id locks as an account does.
pub(crate) type LoginDigest = [u8; 32];

/// SHA-256 of a token: only this is stored, never the token.
pub(crate) type TokenHash = [u8; 32];

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A password reset.
    Reset,
    /// An email verification.
    Verify,
}

/// A stored token (the workflows live in `auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    /// The user it was issued to.
    pub user: Uuid,
    /// What it is for.
    pub kind: TokenKind,
    /// When it stops being usable.
    pub expiry: UnixMillis,
    /// A fingerprint of what it was issued for (the email, the password hash).
    pub binding: u64,
}

/// What a batch row's key collides with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClashWith {
    /// The same key in an earlier row of the batch (its index).
    Row(usize),
    /// The key of an existing user.
    User(Uuid),
    /// A username with the same confusable skeleton in an earlier row.
    LookalikeRow(usize),
    /// A username of an existing user with the same confusable skeleton.
    LookalikeUser(Uuid),
}

/// A key of a batch row that is not free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clash {
    /// The row's index in the batch.
    pub row: usize,
    /// The field whose key collides: `id`, `username`, `email`, `external_id`.
    pub field: &'static str,
    /// What it collides with.
    pub with: ClashWith,
}

/// Reads, on a snapshot ([`Reader`]) or inside a write transaction ([`Writer`], which sees its
/// own changes). Closures given to walks return `Ok(false)` to stop early.
pub(crate) trait Snapshot {
    /// The user with this id.
    fn get(&self, id: Uuid) -> Result<Option<User>>;

    /// `f(encoded record)` of the user with this id, read in place when the engine can (scans
    /// evaluate filters on [`record::RecordView`]s without decoding whole users).
    fn with_record<R>(&self, id: Uuid, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<Option<R>>;

    /// The number of users.
    fn count(&self) -> Result<u64>;

    /// The owner of a login key (a username or email key, see [`UserKeys`]).
    fn login(&self, key: &str) -> Result<Option<LoginOwner>>;

    /// Calls `f(id)` for every login key of `kind` starting with `prefix`, in key order.
    fn login_prefix(&self, prefix: &str, kind: LoginKind, f: impl FnMut(Uuid)) -> Result<()>;

    /// Calls `f(key, id)` for every login key of `kind` starting with `prefix`, in key order
    /// (descending when `rev`), strictly after the key `after` in that order, until it returns
    /// `false`: a sorted page read from the index. `hint` is how many rows the caller
    /// expects to take (an engine that fetches rows in batches sizes its first one by it).
    fn login_walk(
        &self,
        kind: LoginKind,
        prefix: &str,
        after: Option<&str>,
        rev: bool,
        hint: usize,
        f: impl FnMut(&str, Uuid) -> Result<bool>,
    ) -> Result<()>;

    /// The number of login keys of `kind` starting with `prefix` (all: the number of users
    /// with a username, or with a login email), counted without reading records.
    fn login_count(&self, kind: LoginKind, prefix: &str) -> Result<u64>;

    /// The owner of an external id.
    fn external(&self, external_id: &str) -> Result<Option<Uuid>>;

    /// Calls `f(id)` for every user with a secondary email (any element of `emails`) that
    /// `m` matches; a user may come more than once, in no particular order.
    fn email_holders(&self, m: EmailMatch<'_>, f: impl FnMut(Uuid)) -> Result<()>;

    /// Users holding the role key `role` (see `identity::role_key`), in id order.
    fn role_members(&self, role: &str) -> Result<Vec<Uuid>>;

    /// Calls `f(id)` for the holders of the role key `role` with an id greater than `after`,
    /// in id order, until it returns `false`; `hint` as for [`Snapshot::login_walk`].
    fn role_walk(
        &self,
        role: &str,
        after: Option<Uuid>,
        hint: usize,
        f: impl FnMut(Uuid) -> Result<bool>,
    ) -> Result<()>;

    /// The number of users holding the role key `role`, without walking them.
    fn role_count(&self, role: &str) -> Result<u64>;

    /// Walks users by (insert instant, id) between `lo` and `hi`, ascending (descending when
    /// `rev`), calling `f(instant, id)` until it returns `false`.
    fn inserted_walk(
        &self,
        lo: Bound<(UnixMillis, Uuid)>,
        hi: Bound<(UnixMillis, Uuid)>,
        rev: bool,
        f: impl FnMut(UnixMillis, Uuid) -> Result<bool>,
    ) -> Result<()>;

    /// Calls `f(id, encoded record)` for every user with an id greater than `after` (all when
    /// `None`), in id order, until it returns `false`.
    fn for_each_record_after(
        &self,
        after: Option<Uuid>,
        f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
    ) -> Result<()>;

    /// The failed-login state of a user.
    fn failures(&self, id: Uuid) -> Result<Option<FailureState>>;

    /// The failed-login state of a login id no account has.
    fn login_id_failures(&self, digest: &LoginDigest) -> Result<Option<FailureState>>;

    /// The token with this hash.
    fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>>;

    /// How many tokens a user holds (expired ones not yet purged included).
    fn user_token_count(&self, user: Uuid) -> Result<usize>;

    /// Which rows of a batch clash with existing users (import's report of a refused batch).
    fn batch_clashes(&self, batch: &BatchKeys) -> Result<Vec<Clash>>;

    /// Calls `f` for every user in id order until it returns `false` (the JSON exports).
    #[cfg(feature = "json")]
    fn for_each_user(&self, mut f: impl FnMut(User) -> Result<bool>) -> Result<()> {
        self.for_each_record_after(None, |id, bytes| f(codec::decode(id, bytes)?))
    }
}

/// What only a read transaction offers: whole-directory work that a write transaction never
/// needs (search's parallel fold, the integrity check, the test dump).
pub(crate) trait ReadTxn: Snapshot {
    /// Folds every record into one accumulator per id range (`f(acc, id, record)`), the
    /// accumulators in id order. Engines that can scan ranges in parallel split the ids; the
    /// default is one range, on the calling thread.
    fn fold_records<A: Send>(
        &self,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, Uuid, &[u8]) -> Result<()> + Sync,
    ) -> Result<Vec<A>> {
        let mut acc = init();
        self.for_each_record_after(None, |id, bytes| {
            f(&mut acc, id, bytes)?;
            Ok(true)
        })?;
        Ok(vec![acc])
    }

    /// Everything wrong in the stored data: index entries that do not match the records
    /// (rebuilt with the [`IndexRules`] given at open), records that do not decode, orphan
    /// failed-login rows and tokens. Empty when all is well.
    fn integrity_problems(&self) -> Result<Vec<String>>;

    /// Every stored entry as (table, key, value fingerprint), for tests that compare whole
    /// states. Values are digested, so no secret appears.
    #[cfg(any(test, feature = "__test-hooks"))]
    fn dump(&self) -> Result<Vec<(&'static str, String, String)>>;
}

/// Changes inside one write transaction. Every method checks what it can refuse before it
/// changes anything, so a failed call leaves the transaction as it was (a larger
/// [`Directory::write`](crate::Directory::write) may go on); an engine that cannot undo a
/// half-done change must refuse to commit the transaction.
pub(crate) trait WriteTxn: Snapshot {
    /// Inserts a new user with its keys.
    ///
    /// # Errors
    /// [`Error::DuplicateId`](crate::Error::DuplicateId), and for a key another user holds:
    /// `DuplicateUsername`, `DuplicateEmail`, `LoginIdConflict` (a username equal to another
    /// user's email or the reverse), `DuplicateExternalId`, `LookalikeUsername`.
    fn insert(&mut self, user: &User, keys: &UserKeys) -> Result<()>;

    /// Replaces `old` by `new` (the same id), each with its keys; only keys `old` did not hold
    /// can clash.
    ///
    /// # Errors
    /// The key errors of [`WriteTxn::insert`].
    fn replace(&mut self, old: (&User, &UserKeys), new: (&User, &UserKeys)) -> Result<()>;

    /// Replaces the record of `new.id` by `new`, when nothing any index or column derives from
    /// changed (the caller checked: same profile, `active` and insert instant; a login's stamp,
    /// a rehash): no key is computed, compared or written.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no such record (PostgreSQL),
    /// storage errors.
    fn replace_record(&mut self, new: &User) -> Result<()>;

    /// Removes a user and its keys (its tokens and failed-login state are the caller's).
    fn remove(&mut self, user: &User, keys: &UserKeys) -> Result<()>;

    /// Inserts every user of an import batch, unless a key clashes with an existing user:
    /// then it returns the clashes and the transaction must not commit.
    fn insert_batch(&mut self, batch: &BatchKeys) -> Result<Vec<Clash>>;

    /// Stores a user's failed-login state.
    fn set_failures(&mut self, id: Uuid, state: FailureState) -> Result<()>;

    /// Forgets a user's failed logins.
    fn clear_failures(&mut self, id: Uuid) -> Result<()>;

    /// Stores the failed-login state of a login id no account has.
    fn set_login_id_failures(&mut self, digest: &LoginDigest, state: FailureState) -> Result<()>;

    /// Removes up to `limit` failed-login rows of login ids without an account that `stale`
    /// says are over, looking at the rows after `after` (digests are spread uniformly, so each
    /// failure sweeps another stretch); returns how many.
    fn purge_stale_login_id_failures(
        &mut self,
        after: &LoginDigest,
        limit: usize,
        stale: impl Fn(&FailureState) -> bool,
    ) -> Result<usize>;

    /// Stores a new token; when its user already holds `keep` tokens of that kind, those
    /// expiring first are revoked so that at most `keep` remain.
    fn insert_token(&mut self, hash: &TokenHash, token: &TokenRecord, keep: usize) -> Result<()>;

    /// Removes a token; returns what it was.
    fn remove_token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>>;

    /// Revokes a user's tokens of `kind` (all when `None`); returns how many.
    fn revoke_tokens(&mut self, user: Uuid, kind: Option<TokenKind>) -> Result<usize>;

    /// Removes up to `limit` tokens expired at `now`; returns how many.
    fn purge_expired_tokens(&mut self, now: UnixMillis, limit: usize) -> Result<usize>;
}

/// An open store: one engine.
#[derive(Debug)]
pub(crate) enum Store {
    /// The embedded engine.
    Redb(redb::Store),
    /// A shared PostgreSQL database (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStore),
}

/// A consistent snapshot of one engine.
pub(crate) enum Reader {
    /// The embedded engine's.
    Redb(redb::Reader),
    /// PostgreSQL's: a `REPEATABLE READ READ ONLY` transaction.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgTx),
}

/// A write transaction of one engine.
pub(crate) enum Writer<'t> {
    /// The embedded engine's.
    Redb(redb::Writer<'t>),
    /// PostgreSQL's: a `SERIALIZABLE` transaction.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgTx),
}

/// `each!(value, x => expr)`: `expr` with `x` bound to the engine inside `value` (a [`Store`],
/// [`Reader`] or [`Writer`]). A new engine adds its variant here.
macro_rules! each {
    ($v:expr, $x:ident => $e:expr) => {
        match $v {
            Self::Redb($x) => $e,
            #[cfg(feature = "postgres")]
            Self::Postgres($x) => $e,
        }
    };
}

impl Store {
    /// Opens (or creates) the directory file at `path` with the embedded engine; with
    /// `read_only`, opens an existing file without ever writing to it.
    pub(crate) fn open(path: &Path, rules: IndexRules, read_only: bool) -> Result<Store> {
        redb::Store::open(path, rules, read_only).map(Store::Redb)
    }

    /// Opens a new, empty directory in memory with the embedded engine.
    pub(crate) fn in_memory(rules: IndexRules) -> Result<Store> {
        redb::Store::in_memory(rules).map(Store::Redb)
    }

    /// Opens the embedded engine on a custom backend.
    pub(crate) fn with_backend(
        backend: impl crate::backend::Backend,
        rules: IndexRules,
    ) -> Result<Store> {
        redb::Store::with_backend(backend, rules).map(Store::Redb)
    }

    /// Opens (or creates) the directory in a PostgreSQL database (see `postgres`).
    #[cfg(feature = "postgres")]
    pub(crate) fn open_postgres(
        url: &str,
        schema: Option<&str>,
        rules: IndexRules,
        pool: usize,
    ) -> Result<Store> {
        postgres::PgStore::open(url, schema, rules, pool).map(Store::Postgres)
    }

    /// The store with a cache of at most `entries` recently looked-up users (0: none). Only
    /// the embedded engine caches: a PostgreSQL database is written by other processes too.
    pub(crate) fn with_user_cache(self, entries: usize) -> Store {
        match self {
            Store::Redb(s) => Store::Redb(s.with_cache(entries)),
            #[cfg(feature = "postgres")]
            other @ Store::Postgres(_) => other,
        }
    }

    /// The user with this id, from the engine's cache when it holds it (never a user that a
    /// committed write changed or removed).
    pub(crate) fn cached_get(&self, id: Uuid) -> Result<Option<User>> {
        match self {
            Store::Redb(s) => s.cached_get(id),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.read(|r| r.get(id)),
        }
    }

    /// The owner of a caseless login key and its user, when the engine's cache holds them;
    /// `None` is a miss (look it up with [`Store::read_user`]).
    pub(crate) fn cached_login(&self, key: &str) -> Option<(LoginOwner, User)> {
        match self {
            Store::Redb(s) => s.cached_login(key),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => None,
        }
    }

    /// Runs a lookup of one user on a consistent snapshot; the engine may cache the user.
    pub(crate) fn read_user(
        &self,
        f: impl FnOnce(&Reader) -> Result<Option<User>>,
    ) -> Result<Option<User>> {
        match self {
            Store::Redb(s) => s.read_user(f),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.read(f),
        }
    }

    /// Runs `f` on a consistent snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        each!(self, s => s.read(f))
    }

    /// Runs `f` in one write transaction: commits when it returns `Ok`, changes nothing
    /// otherwise. An engine may run `f` again after a conflict (redb never does).
    pub(crate) fn write<T>(
        &self,
        durability: Durability,
        f: impl FnMut(&mut Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        match self {
            Store::Redb(s) => s.write(durability, f),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.write(f),
        }
    }

    /// As [`Store::write`] for a closure that runs at most once: an engine that retries
    /// conflicts reports one as [`Error::TooManyConflicts`](crate::Error::TooManyConflicts)
    /// with `attempts: 1` instead (the caller may run the whole thing again).
    pub(crate) fn write_once<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        match self {
            Store::Redb(s) => s.write(durability, f),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.write_single(f),
        }
    }

    /// A write that may share its commit with concurrent ones (group commit); `f` must be one
    /// check-then-mutate operation (a failing `f` changes nothing). As with [`Store::write`],
    /// an engine may run `f` again after a conflict.
    pub(crate) fn write_grouped<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnMut(&mut Writer<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match self {
            Store::Redb(s) => s.write_grouped(durability, f),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.write(f),
        }
    }

    /// Makes the main file hold every committed write on its own (redb: folds the redo log in);
    /// nothing for engines without one.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        match self {
            Store::Redb(s) => s.checkpoint(),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Problems the engine itself finds in its storage (redb: page checksums and allocator
    /// state), for `check_integrity`.
    pub(crate) fn engine_problems(&self) -> Result<Vec<String>> {
        match self {
            Store::Redb(s) => s.engine_problems(),
            // PostgreSQL checks its own pages (data checksums, when the cluster has them on).
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// Tests: every redo log I/O operation after the next `n` fails (redb only).
    #[cfg(any(test, feature = "__test-hooks"))]
    pub(crate) fn fail_log_after(&self, n: u64) {
        match self {
            Store::Redb(s) => s.fail_log_after(n),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => {}
        }
    }
}

impl Reader {
    /// The embedded engine's snapshot, for the engine's own modules.
    #[allow(dead_code)]
    // `None` only exists with another engine compiled in (feature `postgres`).
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unnecessary_wraps))]
    pub(crate) fn redb(&self) -> Option<&redb::Reader> {
        match self {
            Reader::Redb(r) => Some(r),
            #[cfg(feature = "postgres")]
            Reader::Postgres(_) => None,
        }
    }
}

impl<'t> Writer<'t> {
    /// The embedded engine's transaction, for the engine's own modules.
    // `None` only exists with another engine compiled in (feature `postgres`).
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unnecessary_wraps))]
    pub(crate) fn redb(&mut self) -> Option<&mut redb::Writer<'t>> {
        match self {
            Writer::Redb(w) => Some(w),
            #[cfg(feature = "postgres")]
            Writer::Postgres(_) => None,
        }
    }
}

/// The [`Snapshot`] methods of an enum over engines, each forwarded to the engine inside.
macro_rules! forward_snapshot {
    () => {
        fn get(&self, id: Uuid) -> Result<Option<User>> {
            each!(self, x => Snapshot::get(x, id))
        }
        fn with_record<R>(
            &self,
            id: Uuid,
            f: impl FnOnce(&[u8]) -> Result<R>,
        ) -> Result<Option<R>> {
            each!(self, x => Snapshot::with_record(x, id, f))
        }
        fn count(&self) -> Result<u64> {
            each!(self, x => Snapshot::count(x))
        }
        fn login(&self, key: &str) -> Result<Option<LoginOwner>> {
            each!(self, x => Snapshot::login(x, key))
        }
        fn login_prefix(&self, prefix: &str, kind: LoginKind, f: impl FnMut(Uuid)) -> Result<()> {
            each!(self, x => Snapshot::login_prefix(x, prefix, kind, f))
        }
        fn login_walk(
            &self,
            kind: LoginKind,
            prefix: &str,
            after: Option<&str>,
            rev: bool,
            hint: usize,
            f: impl FnMut(&str, Uuid) -> Result<bool>,
        ) -> Result<()> {
            each!(self, x => Snapshot::login_walk(x, kind, prefix, after, rev, hint, f))
        }
        fn login_count(&self, kind: LoginKind, prefix: &str) -> Result<u64> {
            each!(self, x => Snapshot::login_count(x, kind, prefix))
        }
        fn external(&self, external_id: &str) -> Result<Option<Uuid>> {
            each!(self, x => Snapshot::external(x, external_id))
        }
        fn email_holders(&self, m: EmailMatch<'_>, f: impl FnMut(Uuid)) -> Result<()> {
            each!(self, x => Snapshot::email_holders(x, m, f))
        }
        fn role_members(&self, role: &str) -> Result<Vec<Uuid>> {
            each!(self, x => Snapshot::role_members(x, role))
        }
        fn role_walk(
            &self,
            role: &str,
            after: Option<Uuid>,
            hint: usize,
            f: impl FnMut(Uuid) -> Result<bool>,
        ) -> Result<()> {
            each!(self, x => Snapshot::role_walk(x, role, after, hint, f))
        }
        fn role_count(&self, role: &str) -> Result<u64> {
            each!(self, x => Snapshot::role_count(x, role))
        }
        fn inserted_walk(
            &self,
            lo: Bound<(UnixMillis, Uuid)>,
            hi: Bound<(UnixMillis, Uuid)>,
            rev: bool,
            f: impl FnMut(UnixMillis, Uuid) -> Result<bool>,
        ) -> Result<()> {
            each!(self, x => Snapshot::inserted_walk(x, lo, hi, rev, f))
        }
        fn for_each_record_after(
            &self,
            after: Option<Uuid>,
            f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
        ) -> Result<()> {
            each!(self, x => Snapshot::for_each_record_after(x, after, f))
        }
        fn failures(&self, id: Uuid) -> Result<Option<FailureState>> {
            each!(self, x => Snapshot::failures(x, id))
        }
        fn login_id_failures(&self, digest: &LoginDigest) -> Result<Option<FailureState>> {
            each!(self, x => Snapshot::login_id_failures(x, digest))
        }
        fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
            each!(self, x => Snapshot::token(x, hash))
        }
        fn user_token_count(&self, user: Uuid) -> Result<usize> {
            each!(self, x => Snapshot::user_token_count(x, user))
        }
        fn batch_clashes(&self, batch: &BatchKeys) -> Result<Vec<Clash>> {
            each!(self, x => Snapshot::batch_clashes(x, batch))
        }
    };
}

impl Snapshot for Reader {
    forward_snapshot!();
}

impl ReadTxn for Reader {
    fn fold_records<A: Send>(
        &self,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, Uuid, &[u8]) -> Result<()> + Sync,
    ) -> Result<Vec<A>> {
        each!(self, x => ReadTxn::fold_records(x, init, f))
    }
    fn integrity_problems(&self) -> Result<Vec<String>> {
        each!(self, x => ReadTxn::integrity_problems(x))
    }
    #[cfg(any(test, feature = "__test-hooks"))]
    fn dump(&self) -> Result<Vec<(&'static str, String, String)>> {
        each!(self, x => ReadTxn::dump(x))
    }
}

impl Snapshot for Writer<'_> {
    forward_snapshot!();
}

impl WriteTxn for Writer<'_> {
    fn insert(&mut self, user: &User, keys: &UserKeys) -> Result<()> {
        each!(self, x => WriteTxn::insert(x, user, keys))
    }
    fn replace(&mut self, old: (&User, &UserKeys), new: (&User, &UserKeys)) -> Result<()> {
        each!(self, x => WriteTxn::replace(x, old, new))
    }
    fn replace_record(&mut self, new: &User) -> Result<()> {
        each!(self, x => WriteTxn::replace_record(x, new))
    }
    fn remove(&mut self, user: &User, keys: &UserKeys) -> Result<()> {
        each!(self, x => WriteTxn::remove(x, user, keys))
    }
    fn insert_batch(&mut self, batch: &BatchKeys) -> Result<Vec<Clash>> {
        each!(self, x => WriteTxn::insert_batch(x, batch))
    }
    fn set_failures(&mut self, id: Uuid, state: FailureState) -> Result<()> {
        each!(self, x => WriteTxn::set_failures(x, id, state))
    }
    fn clear_failures(&mut self, id: Uuid) -> Result<()> {
        each!(self, x => WriteTxn::clear_failures(x, id))
    }
    fn set_login_id_failures(&mut self, digest: &LoginDigest, state: FailureState) -> Result<()> {
        each!(self, x => WriteTxn::set_login_id_failures(x, digest, state))
    }
    fn purge_stale_login_id_failures(
        &mut self,
        after: &LoginDigest,
        limit: usize,
        stale: impl Fn(&FailureState) -> bool,
    ) -> Result<usize> {
        each!(self, x => WriteTxn::purge_stale_login_id_failures(x, after, limit, stale))
    }
    fn insert_token(&mut self, hash: &TokenHash, token: &TokenRecord, keep: usize) -> Result<()> {
        each!(self, x => WriteTxn::insert_token(x, hash, token, keep))
    }
    fn remove_token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        each!(self, x => WriteTxn::remove_token(x, hash))
    }
    fn revoke_tokens(&mut self, user: Uuid, kind: Option<TokenKind>) -> Result<usize> {
        each!(self, x => WriteTxn::revoke_tokens(x, user, kind))
    }
    fn purge_expired_tokens(&mut self, now: UnixMillis, limit: usize) -> Result<usize> {
        each!(self, x => WriteTxn::purge_expired_tokens(x, now, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_login_key_names_the_rule_by_the_owner_kinds() {
        let id = Uuid::from_u128(7);
        let owner = |username, email| LoginOwner {
            id,
            username,
            email,
        };
        let cases = [
            (true, owner(true, false), "DuplicateUsername"),
            (true, owner(true, true), "DuplicateUsername"),
            (
                true,
                owner(false, true),
                "LoginIdConflict { field: \"username\"",
            ),
            (false, owner(false, true), "DuplicateEmail"),
            (false, owner(true, true), "DuplicateEmail"),
            (
                false,
                owner(true, false),
                "LoginIdConflict { field: \"email\"",
            ),
        ];
        for (as_username, o, expected) in cases {
            let e = format!("{:?}", login_taken(as_username, &o));
            assert!(e.starts_with(expected), "{as_username} {o:?}: {e}");
            assert!(e.contains(&id.to_string()), "{e}");
        }
    }
}
