//! [`Directory`]: opening and configuring a directory file, and every single-user operation.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::backend::Backend;
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthConfig, AuthState};
use crate::error::{Error, Result};
use crate::identity;
use crate::identity::UserKeys;
use crate::model::{Get, Schema};
use crate::password::{Argon2Params, Hasher, PasswordPolicy};
use crate::store::{
    Durability, IndexRules, LoginKind, LoginOwner, ReadTxn, Reader, Snapshot, Store, WriteTxn,
    Writer,
};
use crate::user::{AttrValue, MAX_DATA_DEPTH};
use crate::user::{NewUser, PasswordInput, Profile, StoredHash, UnixMillis, User, UserUpdate};

/// Longest accepted free-text field (names, phone, URL, time zone, role), in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Configures and opens a [`Directory`]. Obtain it with [`Directory::builder`].
///
/// # Examples
/// ```
/// use userdir::{Argon2Params, Directory, Durability, PasswordPolicy};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder()
///     .hasher(Argon2Params::owasp())
///     .password_policy(PasswordPolicy::default().min_length(12))
///     .durability(Durability::Immediate)
///     .in_memory()?;
/// assert_eq!(dir.count()?, 0);
/// # Ok(()) }
/// ```
#[must_use]
pub struct Builder {
    params: Argon2Params,
    pepper: Option<Vec<u8>>,
    policy: PasswordPolicy,
    durability: Durability,
    clock: Arc<dyn Clock>,
    refuse_lookalikes: bool,
    auth: AuthConfig,
    read_only: bool,
    user_cache: usize,
    #[cfg(feature = "postgres")]
    postgres: PostgresOptions,
}

/// Where a PostgreSQL-backed directory keeps its tables and how many connections it keeps.
#[cfg(feature = "postgres")]
#[derive(Clone, Debug)]
struct PostgresOptions {
    schema: Option<String>,
    pool: usize,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Builder");
        d.field("params", &self.params)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .field("policy", &self.policy)
            .field("durability", &self.durability)
            .field("clock", &self.clock)
            .field("refuse_lookalikes", &self.refuse_lookalikes)
            .field("auth", &self.auth)
            .field("read_only", &self.read_only)
            .field("user_cache", &self.user_cache);
        #[cfg(feature = "postgres")]
        d.field("postgres", &self.postgres);
        d.finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            params: Argon2Params::owasp(),
            pepper: None,
            policy: PasswordPolicy::default(),
            durability: Durability::Immediate,
            clock: Arc::new(SystemClock),
            refuse_lookalikes: false,
            auth: AuthConfig::default(),
            read_only: false,
            user_cache: crate::store::DEFAULT_USER_CACHE,
            #[cfg(feature = "postgres")]
            postgres: PostgresOptions {
                schema: None,
                pool: 8,
            },
        }
    }
}

impl Builder {
    /// argon2id parameters for new hashes (default: [`Argon2Params::owasp`]).
    pub fn hasher(mut self, params: Argon2Params) -> Self {
        self.params = params;
        self
    }
    /// A pepper: a secret mixed into every argon2id hash (argon2's `secret` input). Keep it out
    /// of the directory file; hashes made with it verify only with it.
    pub fn pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(pepper.into());
        self
    }
    /// The password policy (default: [`PasswordPolicy::default`]).
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// When commits reach the disk (default: [`Durability::Immediate`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
    /// The clock (default: the system clock). Tests inject a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// Refuse a username whose Unicode confusable skeleton (UTS #39) equals another user's,
    /// such as Cyrillic `аdmin` against Latin `admin`. Off by default.
    pub fn refuse_lookalikes(mut self, refuse: bool) -> Self {
        self.refuse_lookalikes = refuse;
        self
    }

    /// Authentication settings: lockout and token lifetimes (default:
    /// [`AuthConfig::default`](crate::AuthConfig::default)).
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// Opens the file read-only: [`Builder::open`] then never writes to the file or its redo
    /// log, never creates them, and works on a file the process cannot write (permissions, a
    /// read-only mount, a full disk). Every read serves as usual; writes answer
    /// [`Error::ReadOnly`], and so does `authenticate` (it records logins). Any number of
    /// read-only opens may share a file, but not with a writable open ([`Error::AlreadyOpen`]).
    ///
    /// A file that needs work only a writable open does (a crash left writes in its redo log,
    /// or redb must repair it) is refused with [`Error::NeedsRecovery`]. `check_integrity` on a
    /// read-only directory checks records and indexes, but not redb's page checksums (redb's
    /// check needs a writable open).
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let path = tmp.path().join("users.redb");
    /// # drop(Directory::builder().hasher(Argon2Params::insecure_fast()).open(&path)?);
    /// let dir = Directory::builder().read_only().open(&path)?;
    /// assert_eq!(dir.count()?, 0);
    /// assert!(dir.create(NewUser::with_username("ann")).is_err());
    /// # Ok::<(), userdir::Error>(())
    /// ```
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// How many users the lookup cache of a file or in-memory directory holds (default
    /// 16,384; 0 turns it off).
    ///
    /// [`Directory::get`], [`Directory::find_by_username`], [`Directory::find_by_email`] and
    /// [`Directory::find_by_login_id`] answer from it without a read transaction when they
    /// can: the users of recent lookups, decoded. It is consistent with every committed write:
    /// a write forgets the users it changed or removed before it returns, so a lookup never
    /// answers with a user as it was before a committed write (lookups inside
    /// [`Directory::read`] and [`Directory::write`] read their snapshot). A cached user costs
    /// its decoded size (typically under 2 KiB). A PostgreSQL directory has no cache (other
    /// processes write the same database).
    pub fn user_cache(mut self, users: usize) -> Self {
        self.user_cache = users;
        self
    }

    /// The identity rules the store keeps its indexes by.
    fn index_rules(&self) -> IndexRules {
        IndexRules {
            keys: UserKeys::of,
            version: identity::unicode_version_code(),
            skeletons: self.refuse_lookalikes,
        }
    }

    fn build(self, store: Store) -> Result<Directory> {
        let store = store.with_user_cache(self.user_cache);
        Ok(Directory {
            inner: Arc::new(Inner {
                hasher: Hasher::new(self.params, self.pepper)?,
                store,
                policy: self.policy,
                durability: self.durability,
                clock: self.clock,
                refuse_lookalikes: self.refuse_lookalikes,
                auth: AuthState::new(self.auth)?,
            }),
        })
    }

    /// Opens the directory file at `path`, creating it when absent.
    ///
    /// Creation is atomic: the directory is built under a temporary name in the same folder
    /// (`.<name>.creating-<random>`) and linked to `path` (never replacing a file) only once it
    /// is complete and on disk, so a crash leaves either no file at `path` or a whole directory.
    /// When two processes create the same path at once, one wins and the other opens the
    /// winner's file ([`Error::AlreadyOpen`] while the winner holds it). Temporary files left by
    /// a crash are ignored, and removed by a later open once ten minutes old. An existing empty
    /// file is initialized in place by redb, without this protection. New files and their redo
    /// logs get mode 0600 (they hold password hashes).
    ///
    /// Symbolic links are resolved: the redo log (`<file>.wal`) lives beside the real file,
    /// whatever name opened it. A file with more than one hard link is refused (its log could
    /// sit beside one name only; keep one name, or use a symbolic link), and so is a log path
    /// that is a symbolic link. Opening writes nothing of userdir's when the log has nothing to
    /// replay and is not damaged; use [`Builder::read_only`] to never write at all.
    ///
    /// # Errors
    /// [`Error::NotAUserdirFile`] for a file that is not a userdir directory,
    /// [`Error::UnsupportedFormat`] for one written by a newer format, [`Error::AlreadyOpen`]
    /// when another handle holds it, [`Error::Storage`] for I/O failures and refused links
    /// (naming the file, with the `io::Error` as its source), and for a read-only open
    /// [`Error::NeedsRecovery`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<Directory> {
        let store = Store::open(path.as_ref(), self.index_rules(), self.read_only)?;
        self.build(store)
    }

    /// The PostgreSQL schema that holds the directory's tables (default: the connection's
    /// `search_path`, normally `public`). Created when missing; several directories can share
    /// one database in schemas of their own. Feature `postgres`.
    ///
    /// The name must be a plain identifier: 1 to 63 lowercase ASCII letters, digits or `_`,
    /// not starting with a digit ([`Builder::open_postgres`] refuses others).
    #[cfg(feature = "postgres")]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.postgres.schema = Some(schema.into());
        self
    }

    /// How many idle connections to PostgreSQL the directory keeps for reuse (default 8).
    /// Every operation takes one connection for its transaction; more concurrent operations
    /// than this open extra connections, closed after use. Feature `postgres`.
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(mut self, connections: usize) -> Self {
        self.postgres.pool = connections.max(1);
        self
    }

    /// Opens (or creates) a directory in a PostgreSQL database, shared by every process that
    /// opens it: the same identity rules, operations and errors as the file, with the
    /// database enforcing unique login ids across processes. Feature `postgres`.
    ///
    /// `url` is a libpq connection URL or key-value string:
    /// `postgresql://user:password@host:5432/dbname`, `postgresql:///dbname?host=/run/postgresql`
    /// (a Unix socket), `host=localhost user=app dbname=users`. Connections are not encrypted
    /// (TLS is not built in yet): use a Unix socket, a local host or a trusted network.
    ///
    /// Opening creates the tables when absent and migrates an older schema, one process at a
    /// time (a row lock on the meta row). Every operation is one transaction: reads see one
    /// snapshot (`REPEATABLE READ`), writes are `SERIALIZABLE` and are run again after a
    /// serialization failure or deadlock (with backoff; [`Error::TooManyConflicts`] when they
    /// keep failing). See [`Directory::write`] for closures given by the caller.
    ///
    /// # Examples
    /// ```no_run
    /// use userdir::{Directory, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// let dir = Directory::builder().open_postgres("postgresql://app@localhost/users")?;
    /// dir.create(NewUser::with_username("ann"))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidField`] for a malformed URL or schema name, [`Error::Storage`] when the
    /// database cannot be reached or refuses, [`Error::UnsupportedFormat`] for tables written
    /// by a newer schema version. A process whose Unicode tables differ from the ones the
    /// database was keyed with opens, reads, and gets [`Error::UnicodeMismatch`] on writes.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(self, url: &str) -> Result<Directory> {
        let store = Store::open_postgres(
            url,
            self.postgres.schema.as_deref(),
            self.index_rules(),
            self.postgres.pool,
        )?;
        self.build(store)
    }

    /// Opens a directory that lives in memory only; it is gone when the last clone is dropped.
    ///
    /// # Errors
    /// [`Error::Hashing`] for argon2 parameters argon2 refuses.
    pub fn in_memory(self) -> Result<Directory> {
        let store = Store::in_memory(self.index_rules())?;
        self.build(store)
    }

    /// Opens a directory on a custom [`Backend`] (for instance one that injects I/O failures
    /// in crash tests, or a [`MemoryBackend`](crate::MemoryBackend) holding a copy of a file).
    ///
    /// A backend cannot be created atomically under a temporary name: redb initializes it in
    /// place and writes its magic number (the first 9 bytes) last. A backend whose first bytes
    /// are all zero (or that is shorter than 9 bytes and all zero) is therefore taken for an
    /// interrupted creation and initialized afresh: never give this a backend holding other
    /// data that starts with zeros. Anything else that is not a directory is refused and left
    /// as it was.
    ///
    /// # Errors
    /// As [`Builder::open`].
    pub fn open_backend(self, backend: impl Backend) -> Result<Directory> {
        let store = Store::with_backend(backend, self.index_rules())?;
        self.build(store)
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) hasher: Hasher,
    pub(crate) policy: PasswordPolicy,
    pub(crate) durability: Durability,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) refuse_lookalikes: bool,
    /// Authentication settings and state (the dummy hash, failure-floor estimates).
    pub(crate) auth: AuthState,
}

/// A user directory stored in one redb file (or in memory).
///
/// `Directory` is `Send + Sync` and cheap to clone (clones share the open file). Every operation
/// is one transaction: a record and its index entries change together or not at all.
///
/// # Examples
/// ```
/// use userdir::{Argon2Params, Directory, NewUser};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// let user = dir.create(NewUser::with_username("Johnny123").email("John@Example.com")
///     .password("correct horse battery").confirm("correct horse battery"))?;
/// assert_eq!(dir.find_by_username("JOHNNY123")?.map(|u| u.id), Some(user.id));
/// assert_eq!(dir.find_by_email("john@EXAMPLE.com")?.map(|u| u.id), Some(user.id));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Directory {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("hasher", &self.inner.hasher)
            .field("durability", &self.inner.durability)
            .field("refuse_lookalikes", &self.inner.refuse_lookalikes)
            .finish_non_exhaustive()
    }
}

/// A user validated and with its password hashed, ready to be written inside a transaction
/// (see [`Directory::prepare`] and [`Tx::create`]).
#[derive(Clone, Debug)]
pub struct PreparedUser {
    pub(crate) user: User,
    pub(crate) insert_instant: Option<UnixMillis>,
    pub(crate) password_last_update_instant: Option<UnixMillis>,
}

impl PreparedUser {
    /// The id the user will have.
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.user.id
    }
}

/// A profile replacement validated and with its new password (if any) hashed, ready to be
/// applied inside a transaction (see [`Directory::prepare_update`] and [`Tx::update`]).
#[derive(Clone, Debug)]
pub struct PreparedUpdate {
    pub(crate) profile: Profile,
    pub(crate) password: Option<StoredHash>,
}

fn check_text(field: &'static str, v: Option<&str>) -> Result<()> {
    if let Some(s) = v {
        if s.len() > MAX_FIELD_BYTES {
            return Err(Error::invalid(
                field,
                format!("is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(Error::invalid(field, "contains control characters"));
        }
    }
    Ok(())
}

fn check_birth_date(s: &str) -> Result<()> {
    // `YYYY-MM-DD` exactly, and a date that exists (no February 30th, no 2023-02-29).
    match crate::clock::parse_date_ms(s) {
        Some(_) => Ok(()),
        None => Err(Error::invalid(
            "birth_date",
            "is not a valid YYYY-MM-DD date",
        )),
    }
}

/// Refuses an instant (ms since the Unix epoch) outside the years -9999 to 9999 (what dates
/// can show; `i64` milliseconds reach year 292278994).
pub(crate) fn check_instant(field: &'static str, ms: Option<i64>) -> Result<()> {
    match ms {
        Some(ms) if jiff::Timestamp::from_millisecond(ms).is_err() => {
            Err(Error::invalid(field, "is outside the years -9999 to 9999"))
        }
        _ => Ok(()),
    }
}

/// Validates and normalizes a profile: identity fields per the identity rules, every other
/// attribute of the [table](crate::model) bounded and free of control characters, emails
/// syntax-checked and lowercased, at most one primary element per list. The login email and
/// `emails` are put in step by [`sync_emails`] (which needs the previous profile, if any).
pub(crate) fn normalize_profile(mut p: Profile) -> Result<Profile> {
    p.username = p
        .username
        .as_deref()
        .map(identity::normalize_username)
        .transpose()?;
    p.email = p
        .email
        .as_deref()
        .map(identity::normalize_email)
        .transpose()?;
    p.external_id = p
        .external_id
        .as_deref()
        .map(identity::normalize_external_id)
        .transpose()?;
    if p.username.is_none() && p.email.is_none() && p.emails.is_empty() {
        return Err(Error::MissingLoginId);
    }
    for e in &mut p.emails {
        e.value = identity::normalize_email(&e.value).map_err(|err| match err {
            Error::InvalidField { reason, .. } => Error::invalid("emails", reason),
            other => other,
        })?;
    }
    let mut seen = std::collections::BTreeSet::new();
    p.emails.retain(|e| seen.insert(e.value.clone()));
    let u = User::new(Uuid::nil(), p);
    for a in crate::model::ATTRS {
        if matches!(a.schema, Schema::Meta | Schema::Internal) {
            continue;
        }
        match (a.get)(&u) {
            Get::Text(t) => check_text(a.field, t)?,
            Get::Langs(l) => {
                for x in l {
                    check_text(a.field, Some(x))?;
                }
            }
            Get::Set(l) => {
                for r in l {
                    if r.trim().is_empty() {
                        return Err(Error::invalid(a.field, "contains an empty value"));
                    }
                    check_text(a.field, Some(r))?;
                }
            }
            Get::Multi(l) => {
                for m in l {
                    if m.value.trim().is_empty() {
                        return Err(Error::invalid(a.field, "contains an empty value"));
                    }
                    check_text(a.field, Some(&m.value))?;
                    check_text(a.field, m.kind.as_deref())?;
                    check_text(a.field, m.display.as_deref())?;
                }
            }
            Get::Addresses(l) => {
                for x in l {
                    // Mailing addresses span lines (RFC 7643 §4.1.2's own example).
                    for t in [&x.formatted, &x.street_address] {
                        let one_line = t.as_deref().map(|s| s.replace(['\n', '\r'], " "));
                        check_text(a.field, one_line.as_deref())?;
                    }
                    for t in [&x.locality, &x.region, &x.postal_code, &x.country, &x.kind] {
                        check_text(a.field, t.as_deref())?;
                    }
                }
            }
            Get::Data(d) => {
                if !d.values().all(|v| data_depth_ok(v, 1)) {
                    return Err(Error::invalid(
                        "data",
                        format!("is nested deeper than {MAX_DATA_DEPTH} levels"),
                    ));
                }
            }
            Get::Flag(_) | Get::Int(_) | Get::Version(_) | Get::Hash(_) => {}
        }
    }
    let mut p = u.profile;
    if let Some(d) = &p.birth_date {
        check_birth_date(d)?;
    }
    check_instant("expiry", p.expiry)?;
    one_primary(&mut p.emails, |e| &mut e.primary);
    one_primary(&mut p.phone_numbers, |e| &mut e.primary);
    one_primary(&mut p.ims, |e| &mut e.primary);
    one_primary(&mut p.photos, |e| &mut e.primary);
    one_primary(&mut p.addresses, |e| &mut e.primary);
    one_primary(&mut p.x509_certificates, |e| &mut e.primary);
    one_primary(&mut p.entitlements, |e| &mut e.primary);
    Ok(p)
}

/// Keeps `primary` on the first element that has it only (RFC 7643 §2.4: at most one).
fn one_primary<T>(list: &mut [T], primary: impl Fn(&mut T) -> &mut bool) {
    let mut seen = false;
    for e in list {
        let p = primary(e);
        if *p && seen {
            *p = false;
        }
        seen |= *p;
    }
}

/// Puts the login email and `emails` in step, after [`normalize_profile`], given the
/// previous profile when the user exists. The login email is the primary element of
/// `emails`, or the only element when none is primary (RFC 7643 §2.4: `primary` marks the
/// preferred value, at most one; an only email is the login email whether or not it is
/// marked, and its `primary` is kept as given). Several emails, none primary: no login email.
/// - A login email given: the element with that value is the login one, else the element of
///   the previous login email takes the new value, else it is added first (type `work`,
///   primary). Among several elements, the login one is made the primary one.
/// - No login email: an existing user whose `emails` did not change loses the element of its
///   previous login email (the caller cleared it); then the login email is taken from the
///   list as above.
///
/// # Errors
/// [`Error::MissingLoginId`] when the user is left without username and email.
pub(crate) fn sync_emails(p: &mut Profile, old: Option<&Profile>) -> Result<()> {
    let old_email = old.and_then(|o| o.email.as_deref());
    match p.email.clone() {
        Some(e) => {
            let at = if let Some(i) = p.emails.iter().position(|x| x.value == e) {
                i
            } else if let Some(i) =
                old_email.and_then(|o| p.emails.iter().position(|x| x.value == o))
            {
                if let Some(x) = p.emails.get_mut(i) {
                    x.value = e;
                }
                i
            } else {
                // Without a type given, the login email is the `work` one (as Entra ID maps
                // `emails[type eq "work"]`).
                p.emails.insert(
                    0,
                    crate::user::MultiValue::new(e).kind("work").primary(true),
                );
                0
            };
            if p.emails.len() > 1 {
                for (j, x) in p.emails.iter_mut().enumerate() {
                    x.primary = j == at;
                }
            }
        }
        None => {
            let unchanged = old.is_some_and(|o| o.emails == p.emails);
            if let Some(o) = old_email
                && unchanged
            {
                p.emails.retain(|x| x.value != o);
            }
            sync_from_list(p);
        }
    }
    if p.username.is_none() && p.email.is_none() {
        return Err(Error::MissingLoginId);
    }
    Ok(())
}

/// The position of the login email in `emails`: the primary element, else the only one.
pub(crate) fn login_email_at(emails: &[crate::user::MultiValue]) -> Option<usize> {
    match emails.iter().position(|e| e.primary) {
        Some(i) => Some(i),
        None if emails.len() == 1 => Some(0),
        None => None,
    }
}

/// The login email from `emails` (see [`login_email_at`]); `primary` flags are left as they
/// are.
pub(crate) fn sync_from_list(p: &mut Profile) {
    p.email = login_email_at(&p.emails)
        .and_then(|i| p.emails.get(i))
        .map(|e| e.value.clone());
}

/// Whether `v`, at nesting level `level`, stays within [`MAX_DATA_DEPTH`] (the recursion is
/// bounded by it).
fn data_depth_ok(v: &AttrValue, level: usize) -> bool {
    if level > MAX_DATA_DEPTH {
        return false;
    }
    match v {
        AttrValue::Array(a) => a.iter().all(|x| data_depth_ok(x, level + 1)),
        AttrValue::Object(o) => o.values().all(|x| data_depth_ok(x, level + 1)),
        _ => true,
    }
}

fn login_ids(p: &Profile) -> Vec<&str> {
    p.username
        .as_deref()
        .into_iter()
        .chain(p.email.as_deref())
        .collect()
}

impl Directory {
    /// A builder to configure argon2 parameters, pepper, policy, durability and clock.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Opens (or creates) the directory file at `path` with the default configuration.
    ///
    /// # Examples
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = userdir::Directory::open(tmp.path().join("users.redb"))?;
    /// assert_eq!(dir.count()?, 0);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// See [`Builder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Directory> {
        Builder::default().open(path)
    }

    /// A directory in memory with the default configuration.
    ///
    /// # Examples
    /// ```
    /// let dir = userdir::Directory::in_memory()?;
    /// assert_eq!(dir.count()?, 0);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// See [`Builder::in_memory`].
    pub fn in_memory() -> Result<Directory> {
        Builder::default().in_memory()
    }

    /// The index keys of `user` under this directory's identity rules.
    pub(crate) fn keys(&self, user: &User) -> UserKeys {
        UserKeys::of(user, self.inner.refuse_lookalikes)
    }

    /// The current instant of the directory's clock.
    #[must_use]
    pub fn now(&self) -> UnixMillis {
        self.inner.clock.now()
    }

    /// The password hasher (current argon2id parameters and pepper).
    #[must_use]
    pub fn hasher(&self) -> &Hasher {
        &self.inner.hasher
    }

    /// The password policy.
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.inner.policy
    }

    /// Hashes a password with the directory's argon2id parameters (outside any transaction).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let hash = dir.hash_password("correct horse battery")?;
    /// assert_eq!(hash.scheme(), "argon2id");
    /// assert!(dir.hasher().verify(&hash, "correct horse battery")?);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Hashing`] if argon2 fails.
    pub fn hash_password(&self, password: &str) -> Result<StoredHash> {
        self.inner.hasher.hash(password)
    }

    /// Validates a new user, checks the password policy and confirmation, and hashes the
    /// password; the result can be written by [`Tx::create`] without any hashing in the
    /// transaction.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// // Hashing happens here, before the transaction.
    /// let ann = dir.prepare(userdir::NewUser::with_username("ann").password("correct horse"))?;
    /// let bob = dir.prepare(userdir::NewUser::with_username("bob").password("battery staple"))?;
    /// dir.write(|tx| {
    ///     tx.create(ann)?;
    ///     tx.create(bob)?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(dir.count()?, 2);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidField`], [`Error::MissingLoginId`], [`Error::PasswordMismatch`],
    /// [`Error::PasswordPolicy`] (every violation), [`Error::InvalidHash`] for an unusable
    /// pre-hashed password.
    pub fn prepare(&self, new: NewUser) -> Result<PreparedUser> {
        let mut user = self.validate_new(new.id, new.profile, new.active)?;
        check_instant("insert_instant", new.insert_instant)?;
        check_instant("last_login_instant", new.last_login_instant)?;
        check_instant(
            "password_last_update_instant",
            new.password_last_update_instant,
        )?;
        user.password = match new.password {
            None => {
                if new.confirm.is_some() {
                    return Err(Error::PasswordMismatch);
                }
                None
            }
            Some(PasswordInput::Plain(p)) => {
                crate::password::refuse_hash_as_plaintext(p.expose())?;
                if let Some(c) = &new.confirm
                    && c != &p
                {
                    return Err(Error::PasswordMismatch);
                }
                let v = self
                    .inner
                    .policy
                    .check(p.expose(), &login_ids(&Profile::of(&user)));
                if !v.is_empty() {
                    return Err(Error::PasswordPolicy(v));
                }
                Some(self.inner.hasher.hash(p.expose())?)
            }
            Some(PasswordInput::Hashed(h)) => {
                self.inner.hasher.check_given(&h, false)?;
                Some(h)
            }
        };
        user.last_login_instant = new.last_login_instant;
        Ok(PreparedUser {
            user,
            insert_instant: new.insert_instant,
            password_last_update_instant: new.password_last_update_instant,
        })
    }

    #[allow(clippy::unused_self)] // one of the directory's validations, called as a method
    pub(crate) fn validate_new(
        &self,
        id: Option<Uuid>,
        profile: Profile,
        active: bool,
    ) -> Result<User> {
        let mut p = normalize_profile(profile)?;
        sync_emails(&mut p, None)?;
        let mut u = User::new(id.unwrap_or_else(Uuid::new_v4), p);
        u.active = active;
        u.version = 1;
        Ok(u)
    }

    /// Validates a profile replacement and hashes its new password, if any (see
    /// [`Tx::update`]).
    ///
    /// # Errors
    /// As [`Directory::prepare`].
    pub fn prepare_update(&self, update: UserUpdate) -> Result<PreparedUpdate> {
        let profile = normalize_profile(update.profile)?;
        let password = match update.password {
            None => None,
            Some(p) => {
                let v = self.inner.policy.check(p.expose(), &login_ids(&profile));
                if !v.is_empty() {
                    return Err(Error::PasswordPolicy(v));
                }
                Some(self.inner.hasher.hash(p.expose())?)
            }
        };
        Ok(PreparedUpdate { profile, password })
    }

    /// One write transaction that a shared database may run again after a conflict (`f` is
    /// re-runnable).
    pub(crate) fn write_raw<T>(&self, f: impl FnMut(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        self.inner.store.write(self.inner.durability, f)
    }

    /// Runs one operation through group commit: concurrent calls share a transaction and an
    /// fsync. `f` must be a single check-then-mutate operation (a failing `f` changes nothing),
    /// re-runnable: on PostgreSQL it runs again after a serialization failure.
    pub(crate) fn write_one<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let dir = self.clone();
        self.inner
            .store
            .write_grouped(self.inner.durability, move |w| {
                let mut tx = Tx { w, dir: &dir };
                f(&mut tx)
            })
    }

    pub(crate) fn read_raw<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        self.inner.store.read(f)
    }

    /// Runs `f` in one write transaction: everything it does commits together when it returns
    /// `Ok`, and nothing does when it returns `Err`.
    ///
    /// Operations that need a password hash take one computed beforehand
    /// ([`Directory::prepare`], [`Directory::prepare_update`]), so the single writer never waits
    /// on argon2.
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let old = dir.create(NewUser::with_username("old-admin"))?;
    /// let new = dir.prepare(NewUser::with_username("new-admin").role("admin"))?;
    /// dir.write(|tx| {
    ///     tx.deactivate(old.id)?;
    ///     tx.create(new)?;
    ///     Ok(())
    /// })?;
    /// assert!(!dir.get(old.id)?.unwrap().active);
    /// # Ok(()) }
    /// ```
    ///
    /// On PostgreSQL (feature `postgres`) `f` runs exactly once, in one `SERIALIZABLE`
    /// transaction: when the database refuses it as conflicting with concurrent transactions,
    /// nothing is written and the call returns [`Error::TooManyConflicts`] with `attempts: 1`,
    /// which the caller may retry. [`Directory::write_retrying`] retries by itself, for a
    /// closure that can run more than once. Every built-in operation (create, update, login,
    /// import, ...) retries by itself.
    ///
    /// A panic inside the transaction, whether the storage engine's on a damaged file or `f`'s
    /// own, is caught: nothing commits, the call returns [`Error::Corrupt`], and later writes
    /// return [`Error::NeedsReopen`] until the directory is reopened.
    ///
    /// # Errors
    /// The first error `f` returns (nothing is written), or a storage error on commit.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T>) -> Result<T> {
        self.inner.store.write_once(self.inner.durability, |w| {
            let mut tx = Tx { w, dir: self };
            f(&mut tx)
        })
    }

    /// As [`Directory::write`], for a closure that may run more than once: on PostgreSQL, a
    /// transaction refused as conflicting with concurrent ones (a serialization failure or a
    /// deadlock) is rolled back and `f` runs again in a new one, after a random pause that
    /// doubles with each attempt (up to 100 ms), until it commits or 30 attempts failed
    /// ([`Error::TooManyConflicts`]). `f` must take everything it decides from `tx` (what it
    /// read before may have changed) and have no other effects. On the redb file it runs once,
    /// as [`Directory::write`].
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let new = dir.prepare(NewUser::with_username("ops").role("admin"))?;
    /// let created = dir.write_retrying(|tx| {
    ///     // A clone: the closure may run again.
    ///     let user = tx.create(new.clone())?;
    ///     Ok(user.id)
    /// })?;
    /// assert!(dir.get(created)?.is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Directory::write`], and [`Error::TooManyConflicts`] after the last attempt.
    pub fn write_retrying<T>(&self, mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T>) -> Result<T> {
        self.write_raw(|w| {
            let mut tx = Tx { w, dir: self };
            f(&mut tx)
        })
    }

    /// Runs `f` on one consistent snapshot of the directory.
    ///
    /// A panic inside (the storage engine's on a damaged file, or `f`'s own) is caught and
    /// returned as [`Error::Corrupt`]; later writes return [`Error::NeedsReopen`] until the
    /// directory is reopened.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_username("ann").email("ann@example.com"))?;
    /// // Both lookups see the same state, whatever writes happen meanwhile.
    /// let (by_name, by_email) = dir.read(|tx| {
    ///     Ok((tx.find_by_username("ann")?, tx.find_by_email("ann@example.com")?))
    /// })?;
    /// assert_eq!(by_name, by_email);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error `f` returns, or a storage error.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T>) -> Result<T> {
        self.read_raw(|r| f(&ReadTx { r }))
    }

    /// Creates a user: validates, checks the password policy, hashes (outside the transaction),
    /// then writes the record and its index entries in one transaction.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("Ann").email("Ann@Example.com")
    ///     .password("correct horse battery").confirm("correct horse battery"))?;
    /// assert_eq!(ann.email.as_deref(), Some("ann@example.com"));
    /// assert!(matches!(
    ///     dir.create(userdir::NewUser::with_username("ANN")),
    ///     Err(userdir::Error::DuplicateUsername { existing }) if existing == ann.id
    /// ));
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// Everything [`Directory::prepare`] returns, and [`Error::DuplicateId`],
    /// [`Error::DuplicateUsername`], [`Error::DuplicateEmail`], [`Error::DuplicateExternalId`],
    /// [`Error::LoginIdConflict`], [`Error::LookalikeUsername`].
    pub fn create(&self, new: NewUser) -> Result<User> {
        let prepared = self.prepare(new)?;
        self.write_one(move |tx| tx.create(prepared.clone()))
    }

    /// Replaces a user's profile (the password is kept unless the update gives one). Changed
    /// usernames and emails are re-indexed in the same transaction. With `expected_version`, the
    /// update fails with [`Error::VersionConflict`] if the user changed since.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann"))?;
    /// let mut change = userdir::UserUpdate::from(&ann);
    /// change.profile.email = Some("ann@example.com".into());
    /// let ann2 = dir.update(ann.id, change.clone(), Some(ann.version))?;
    /// assert_eq!(ann2.version, ann.version + 1);
    /// // The same expected version again: someone else changed the user since.
    /// assert!(matches!(
    ///     dir.update(ann.id, change, Some(ann.version)),
    ///     Err(userdir::Error::VersionConflict { .. })
    /// ));
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::VersionConflict`], and the validation and uniqueness errors
    /// of [`Directory::create`].
    pub fn update(
        &self,
        id: Uuid,
        update: UserUpdate,
        expected_version: Option<u64>,
    ) -> Result<User> {
        let prepared = self.prepare_update(update)?;
        self.write_one(move |tx| tx.update(id, prepared.clone(), expected_version))
    }

    /// Makes the directory file hold every write so far on its own, without the redo log
    /// (`<file>.wal`): one durable redb commit, after which the log starts over. Writes are
    /// durable without it (the log is synced); call it before copying the directory file
    /// alone. Closing the directory does the same. A no-op for in-memory directories and
    /// custom backends, which have no log.
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = Directory::builder()
    ///     .hasher(Argon2Params::insecure_fast())
    ///     .open(tmp.path().join("users.redb"))?;
    /// dir.create(NewUser::with_username("ann"))?;
    /// dir.checkpoint()?;
    /// std::fs::copy(tmp.path().join("users.redb"), tmp.path().join("backup.redb")).unwrap();
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Storage`] for an I/O failure (later writes then report
    /// [`Error::NeedsReopen`]); [`Error::NeedsReopen`] after an earlier one.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.store.checkpoint()
    }

    /// For crash tests only: every redo log I/O operation after the next `n` fails, as on a
    /// full or failing disk. Not part of the API (feature `__test-hooks`).
    #[cfg(feature = "__test-hooks")]
    #[doc(hidden)]
    pub fn fail_log_after(&self, n: u64) {
        self.inner.store.fail_log_after(n);
    }

    /// Checks the file's content and consistency: redb's own page checksums and allocator
    /// state (after a checkpoint; not on a [read-only](Builder::read_only) open, where redb
    /// cannot run its check), the checksum of every record, that every index entry points to
    /// a record carrying that key and every record is in every index it belongs to, and the
    /// user count. Waits for running transactions to end (do not call it inside
    /// [`Directory::read`] or [`Directory::write`]).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_username("ann"))?;
    /// dir.check_integrity()?;
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Integrity`] listing the problems (after damage in the file's pages, writes
    /// then answer [`Error::NeedsReopen`]); [`Error::Corrupt`] or [`Error::Storage`].
    pub fn check_integrity(&self) -> Result<()> {
        let mut problems = self.inner.store.engine_problems()?;
        problems.extend(self.read_raw(ReadTxn::integrity_problems)?);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Integrity(problems))
        }
    }

    /// Every entry of every table as `(table, key, value fingerprint)`, in table and key order.
    /// Values are SHA-256 digests, so no secret appears. Meant for tests that compare whole
    /// states before and after an operation. Not part of the API (feature `__test-hooks`).
    ///
    /// # Errors
    /// [`Error::Storage`].
    #[cfg(feature = "__test-hooks")]
    #[doc(hidden)]
    pub fn dump(&self) -> Result<Vec<(&'static str, String, String)>> {
        self.read_raw(ReadTxn::dump)
    }
}

/// The lookups shared by [`Directory`], [`ReadTx`] and [`Tx`], over any snapshot.
mod lookup {
    use super::{check_external, find_kind};
    use crate::error::Result;
    use crate::identity;
    use crate::store::{LoginKind, Snapshot};
    use crate::user::User;
    use uuid::Uuid;

    pub(super) fn by_username(r: &impl Snapshot, username: &str) -> Result<Option<User>> {
        let key = identity::lookup_key(username);
        find_kind(r.login(&key)?, Some(LoginKind::Username), &key, |id| {
            r.get(id)
        })
    }

    pub(super) fn by_email(r: &impl Snapshot, email: &str) -> Result<Option<User>> {
        let key = identity::lookup_key(email);
        find_kind(r.login(&key)?, Some(LoginKind::Email), &key, |id| r.get(id))
    }

    pub(super) fn by_login_id(r: &impl Snapshot, login_id: &str) -> Result<Option<User>> {
        let key = identity::lookup_key(login_id);
        find_kind(r.login(&key)?, None, &key, |id| r.get(id))
    }

    pub(super) fn by_external_id(r: &impl Snapshot, external_id: &str) -> Result<Option<User>> {
        let external_id = external_id.trim();
        match r.external(external_id)? {
            Some(id) => check_external(r.get(id)?, external_id),
            None => Ok(None),
        }
    }

    pub(super) fn resolve(r: &impl Snapshot, s: &str) -> Result<Option<User>> {
        if let Ok(id) = Uuid::parse_str(s.trim())
            && let Some(u) = r.get(id)?
        {
            return Ok(Some(u));
        }
        let key = identity::lookup_key(s);
        let login = r.login(&key)?;
        if let Some(u) = find_kind(login, Some(LoginKind::Username), &key, |id| r.get(id))? {
            return Ok(Some(u));
        }
        if let Some(u) = find_kind(login, Some(LoginKind::Email), &key, |id| r.get(id))? {
            return Ok(Some(u));
        }
        by_external_id(r, s)
    }
}

/// The user a login entry names, when the entry is for `kind` (any kind when `None`).
fn find_kind(
    login: Option<LoginOwner>,
    kind: Option<LoginKind>,
    key: &str,
    get: impl FnOnce(Uuid) -> Result<Option<User>>,
) -> Result<Option<User>> {
    let Some(owner) = login else {
        return Ok(None);
    };
    // The kinds the entry was found by.
    let (username, email) = match kind {
        Some(k) if !owner.is(k) => return Ok(None),
        Some(k) => (k == LoginKind::Username, k == LoginKind::Email),
        None => (owner.username, owner.email),
    };
    let user = get(owner.id)?;
    // Never hand out a user that does not carry the key it was found by (a damaged record or
    // index): redb does not checksum pages on every read.
    if let Some(u) = &user {
        let username_ok =
            !username || u.username.as_deref().map(identity::username_key).as_deref() == Some(key);
        let email_ok =
            !email || u.email.as_deref().map(identity::email_key).as_deref() == Some(key);
        if !(username_ok && email_ok) {
            return Err(Error::Corrupt(format!(
                "the login index names user {}, whose record does not carry that login id",
                owner.id
            )));
        }
    }
    Ok(user)
}

/// The user an external-id index entry names, if its record carries that external id.
fn check_external(user: Option<User>, external_id: &str) -> Result<Option<User>> {
    match user {
        Some(u) if u.external_id.as_deref() != Some(external_id) => Err(Error::Corrupt(format!(
            "the external id index names user {}, whose record does not carry that external id",
            u.id
        ))),
        other => Ok(other),
    }
}

impl Directory {
    /// The user with this id, if any (from the lookup cache when it holds it, see
    /// [`Builder::user_cache`]).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann"))?;
    /// assert_eq!(dir.get(ann.id)?.map(|u| u.profile.username), Some(Some("ann".into())));
    /// assert!(dir.get(uuid::Uuid::new_v4())?.is_none());
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn get(&self, id: Uuid) -> Result<Option<User>> {
        self.inner.store.cached_get(id)
    }

    /// The user whose username is caselessly equal to `username` (`straße` finds `STRASSE`).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_username("Straße"))?;
    /// assert!(dir.find_by_username("STRASSE")?.is_some());
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        self.find_login(username, Some(LoginKind::Username))
    }

    /// The user with this email (compared lowercased).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_email("Ann@Example.com"))?;
    /// assert!(dir.find_by_email("ann@EXAMPLE.com")?.is_some());
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_email(&self, email: &str) -> Result<Option<User>> {
        self.find_login(email, Some(LoginKind::Email))
    }

    /// The user whose username or email is `login_id` (one account at most: login ids are
    /// unambiguous).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann").email("ann@example.com"))?;
    /// assert_eq!(dir.find_by_login_id("ANN")?.map(|u| u.id), Some(ann.id));
    /// assert_eq!(dir.find_by_login_id("ann@example.com")?.map(|u| u.id), Some(ann.id));
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_login_id(&self, login_id: &str) -> Result<Option<User>> {
        self.find_login(login_id, None)
    }

    /// The user holding login id `s` as `kind` (either when `None`): from the lookup cache
    /// when it holds the key's owner, else from a snapshot (then cached).
    fn find_login(&self, s: &str, kind: Option<LoginKind>) -> Result<Option<User>> {
        let key = identity::lookup_key(s);
        if let Some((owner, user)) = self.inner.store.cached_login(&key) {
            return Ok(match kind {
                Some(k) if !owner.is(k) => None,
                _ => Some(user),
            });
        }
        self.inner
            .store
            .read_user(|r| find_kind(r.login(&key)?, kind, &key, |id| r.get(id)))
    }

    /// The user with this external id (exact match after trimming).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_username("ann").external_id("hr-0042"))?;
    /// assert!(dir.find_by_external_id("hr-0042")?.is_some());
    /// assert!(dir.find_by_external_id("HR-0042")?.is_none());
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_external_id(&self, external_id: &str) -> Result<Option<User>> {
        self.read_raw(|r| lookup::by_external_id(r, external_id))
    }

    /// Finds a user by id, then username, then email, then external id (the SCIM `user_id`
    /// rule).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann").external_id("hr-0042"))?;
    /// for s in [ann.id.to_string().as_str(), "ANN", "hr-0042"] {
    ///     assert_eq!(dir.resolve(s)?.map(|u| u.id), Some(ann.id));
    /// }
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn resolve(&self, s: &str) -> Result<Option<User>> {
        self.read_raw(|r| lookup::resolve(r, s))
    }

    /// The number of users (active and inactive).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_username("ann"))?;
    /// assert_eq!(dir.count()?, 1);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn count(&self) -> Result<u64> {
        self.read_raw(Reader::count)
    }

    /// Deactivates (soft deletes) a user: it can no longer log in but keeps its username and
    /// email. Deactivating an inactive user changes nothing.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann"))?;
    /// assert!(!dir.deactivate(ann.id)?.active);
    /// // The username stays taken.
    /// assert!(dir.create(userdir::NewUser::with_username("ann")).is_err());
    /// assert!(dir.reactivate(ann.id)?.active);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn deactivate(&self, id: Uuid) -> Result<User> {
        self.write_one(move |tx| tx.deactivate(id))
    }

    /// Reactivates a deactivated user. Reactivating an active user changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn reactivate(&self, id: Uuid) -> Result<User> {
        self.write_one(move |tx| tx.reactivate(id))
    }

    /// Deletes a user for good, with every index entry; its username and email become free.
    /// Returns the deleted user.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann"))?;
    /// dir.delete(ann.id)?;
    /// assert!(dir.get(ann.id)?.is_none());
    /// dir.create(userdir::NewUser::with_username("ann"))?; // the username is free again
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn delete(&self, id: Uuid) -> Result<User> {
        self.write_one(move |tx| tx.delete(id))
    }

    /// Deactivates every listed user, all or nothing. Returns how many changed.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the first unknown id; nothing is changed then.
    pub fn deactivate_many(&self, ids: &[Uuid]) -> Result<usize> {
        let ids = ids.to_vec();
        self.write_one(move |tx| tx.deactivate_many(&ids))
    }

    /// Deletes every listed user, all or nothing. Returns how many were deleted.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let a = dir.create(userdir::NewUser::with_username("a"))?.id;
    /// let b = dir.create(userdir::NewUser::with_username("b"))?.id;
    /// // One unknown id: nothing is deleted.
    /// assert!(dir.delete_many(&[a, b, uuid::Uuid::new_v4()]).is_err());
    /// assert_eq!(dir.count()?, 2);
    /// assert_eq!(dir.delete_many(&[a, b])?, 2);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the first unknown id; nothing is changed then.
    pub fn delete_many(&self, ids: &[Uuid]) -> Result<usize> {
        let ids = ids.to_vec();
        self.write_one(move |tx| tx.delete_many(&ids))
    }
}

/// A consistent, read-only snapshot (see [`Directory::read`]).
pub struct ReadTx<'a> {
    pub(crate) r: &'a Reader,
}

impl fmt::Debug for ReadTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadTx")
    }
}

impl ReadTx<'_> {
    /// As [`Directory::get`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn get(&self, id: Uuid) -> Result<Option<User>> {
        self.r.get(id)
    }

    /// As [`Directory::find_by_username`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        lookup::by_username(self.r, username)
    }

    /// As [`Directory::find_by_email`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_email(&self, email: &str) -> Result<Option<User>> {
        lookup::by_email(self.r, email)
    }

    /// As [`Directory::find_by_login_id`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_login_id(&self, login_id: &str) -> Result<Option<User>> {
        lookup::by_login_id(self.r, login_id)
    }

    /// As [`Directory::find_by_external_id`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_external_id(&self, external_id: &str) -> Result<Option<User>> {
        lookup::by_external_id(self.r, external_id)
    }

    /// As [`Directory::resolve`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn resolve(&self, s: &str) -> Result<Option<User>> {
        lookup::resolve(self.r, s)
    }

    /// As [`Directory::count`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn count(&self) -> Result<u64> {
        self.r.count()
    }
}

/// A write transaction (see [`Directory::write`]). Each operation is atomic on its own (a
/// failed one changes nothing); all of them commit together.
pub struct Tx<'a, 't> {
    pub(crate) w: &'a mut Writer<'t>,
    pub(crate) dir: &'a Directory,
}

impl fmt::Debug for Tx<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx<'_, '_> {
    /// As [`Directory::get`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn get(&self, id: Uuid) -> Result<Option<User>> {
        self.w.get(id)
    }

    /// As [`Directory::find_by_username`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        lookup::by_username(&*self.w, username)
    }

    /// As [`Directory::find_by_email`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_email(&self, email: &str) -> Result<Option<User>> {
        lookup::by_email(&*self.w, email)
    }

    /// As [`Directory::find_by_login_id`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_login_id(&self, login_id: &str) -> Result<Option<User>> {
        lookup::by_login_id(&*self.w, login_id)
    }

    /// As [`Directory::find_by_external_id`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn find_by_external_id(&self, external_id: &str) -> Result<Option<User>> {
        lookup::by_external_id(&*self.w, external_id)
    }

    /// As [`Directory::resolve`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Storage`].
    pub fn resolve(&self, s: &str) -> Result<Option<User>> {
        lookup::resolve(&*self.w, s)
    }

    /// As [`Directory::count`], in this transaction.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn count(&self) -> Result<u64> {
        self.w.count()
    }

    fn existing(&self, id: Uuid) -> Result<User> {
        self.w.get(id)?.ok_or(Error::NotFound(id))
    }

    /// Writes a prepared user (see [`Directory::prepare`]).
    ///
    /// # Errors
    /// The uniqueness errors of [`Directory::create`].
    pub fn create(&mut self, prepared: PreparedUser) -> Result<User> {
        let now = self.dir.now();
        let mut user = prepared.user;
        user.insert_instant = prepared.insert_instant.unwrap_or(now);
        user.last_update_instant = now;
        if user.password.is_some() {
            user.password_last_update_instant = Some(
                prepared
                    .password_last_update_instant
                    .unwrap_or(user.insert_instant),
            );
        }
        let keys = self.dir.keys(&user);
        self.w.insert(&user, &keys)?;
        Ok(user)
    }

    /// Applies a prepared update (see [`Directory::update`]).
    ///
    /// # Errors
    /// As [`Directory::update`].
    pub fn update(
        &mut self,
        id: Uuid,
        update: PreparedUpdate,
        expected_version: Option<u64>,
    ) -> Result<User> {
        let old = self.existing(id)?;
        if let Some(expected) = expected_version
            && expected != old.version
        {
            return Err(Error::VersionConflict {
                expected,
                actual: old.version,
            });
        }
        let now = self.dir.now();
        let mut profile = update.profile;
        sync_emails(&mut profile, Some(&old.profile))?;
        let mut new = User {
            profile,
            last_update_instant: now,
            version: old.version + 1,
            ..old.clone()
        };
        if let Some(h) = update.password {
            new.password = Some(h);
            new.password_last_update_instant = Some(now);
        }
        self.replace(&old, &new)?;
        Ok(new)
    }

    /// Writes `new` over `old` with their keys: every change of a user goes through here, so
    /// that whatever deactivates a user (an update, a patch of `active`, [`Tx::deactivate`])
    /// revokes its outstanding tokens the same way.
    pub(crate) fn replace(&mut self, old: &User, new: &User) -> Result<()> {
        let (old_keys, new_keys) = (self.dir.keys(old), self.dir.keys(new));
        self.w.replace((old, &old_keys), (new, &new_keys))?;
        if old.active && !new.active {
            self.w.revoke_tokens(new.id, None)?;
        }
        Ok(())
    }

    /// Writes `new` over the record of the same id, for a change that no index sees: only
    /// the last-login instant, the password hash, the version and the last-update instant may
    /// differ from the stored record (a login's stamp, a rehash). Neither user's keys are
    /// computed and no index entry is rewritten. The profile, `active` and the insert
    /// instant must be the stored ones (tests/wal.rs checks a login's keys after a crash).
    pub(crate) fn replace_unindexed(&mut self, new: &User) -> Result<()> {
        self.w.replace_record(new)
    }

    /// Removes a user with everything kept about it: keys, tokens, failed-login state.
    fn remove_user(&mut self, user: &User) -> Result<()> {
        self.w.revoke_tokens(user.id, None)?;
        self.w.clear_failures(user.id)?;
        let keys = self.dir.keys(user);
        self.w.remove(user, &keys)
    }

    /// Writes `f(user)` back if it changed anything, bumping version and update instant.
    pub(crate) fn modify(&mut self, id: Uuid, f: impl FnOnce(&mut User)) -> Result<User> {
        let old = self.existing(id)?;
        let mut new = old.clone();
        f(&mut new);
        if new == old {
            return Ok(old);
        }
        new.version = old.version + 1;
        new.last_update_instant = self.dir.now();
        self.replace(&old, &new)?;
        Ok(new)
    }

    /// Deactivates a user (see [`Directory::deactivate`]); its outstanding tokens are revoked.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn deactivate(&mut self, id: Uuid) -> Result<User> {
        let user = self.modify(id, |u| u.active = false)?;
        // An inactive user holds no usable token either (issued before a crash of an older
        // version, say): deactivating it again clears them too.
        self.w.revoke_tokens(id, None)?;
        Ok(user)
    }

    /// Reactivates a user (see [`Directory::reactivate`]).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn reactivate(&mut self, id: Uuid) -> Result<User> {
        self.modify(id, |u| u.active = true)
    }

    /// Deletes a user (see [`Directory::delete`]).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn delete(&mut self, id: Uuid) -> Result<User> {
        let user = self.existing(id)?;
        self.remove_user(&user)?;
        Ok(user)
    }

    fn all_exist(&self, ids: &[Uuid]) -> Result<()> {
        for id in ids {
            self.existing(*id)?;
        }
        Ok(())
    }

    /// Deactivates every listed user (see [`Directory::deactivate_many`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] for the first unknown id, before anything changes.
    pub fn deactivate_many(&mut self, ids: &[Uuid]) -> Result<usize> {
        self.all_exist(ids)?;
        let mut n = 0;
        for id in ids {
            let before = self.existing(*id)?;
            if before.active {
                self.deactivate(*id)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes every listed user (see [`Directory::delete_many`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] for the first unknown id, before anything changes.
    pub fn delete_many(&mut self, ids: &[Uuid]) -> Result<usize> {
        self.all_exist(ids)?;
        let mut n = 0;
        for id in ids {
            if let Some(u) = self.w.get(*id)? {
                self.remove_user(&u)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod damaged_record_tests {
    use super::*;
    use crate::{ManualClock, NewUser};

    /// A record whose username no longer matches its index entry (a flipped byte redb does not
    /// detect) must give `Corrupt`, never the user to the caller who asked for another name.
    #[test]
    fn lookups_refuse_a_record_that_does_not_carry_the_key() {
        let dir = Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .clock(ManualClock::new(0))
            .in_memory()
            .unwrap();
        let u = dir
            .create(
                NewUser::with_username("user000")
                    .email("mail000@example.com")
                    .external_id("ext-000"),
            )
            .unwrap();
        let mut damaged = u.clone();
        damaged.username = Some("uses000".into());
        damaged.email = Some("mail0q0@example.com".into());
        damaged.external_id = Some("ext-00q".into());
        // `replace` with equal old and new keys rewrites only the record, not the indexes:
        // the record now disagrees with its index entries, as after an undetected bit flip.
        let keys = dir.keys(&damaged);
        dir.write_raw(|w| w.replace((&damaged, &keys), (&damaged, &keys)))
            .unwrap();
        let corrupt = |r: Result<Option<User>>| matches!(r, Err(Error::Corrupt(_)));
        assert!(corrupt(dir.find_by_username("user000")));
        assert!(corrupt(dir.find_by_email("mail000@example.com")));
        assert!(corrupt(dir.find_by_login_id("user000")));
        assert!(corrupt(dir.find_by_external_id("ext-000")));
        assert!(corrupt(dir.resolve("user000")));
        assert!(corrupt(dir.resolve("ext-000")));
        assert_eq!(
            dir.get(u.id).unwrap().unwrap().username.as_deref(),
            Some("uses000")
        );
        assert!(dir.check_integrity().is_err());
    }
}
