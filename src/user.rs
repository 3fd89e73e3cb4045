//! The data model: [`User`], the input types [`NewUser`] and [`UserUpdate`], and the custom
//! attribute value tree [`AttrValue`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A point in time: milliseconds since the Unix epoch (UTC), as FusionAuth's instants. Named for
/// what it is, so it is not taken for [`std::time::Instant`] (a monotonic clock reading).
pub type UnixMillis = i64;

/// The deepest nesting of custom attribute values (an array or object counts as one level, a
/// top-level value is at level 1). Deeper data is refused with [`Error::InvalidField`]
/// (field `data`): records are decoded recursively, and a bound keeps a damaged or crafted
/// record from overflowing the stack.
///
/// [`Error::InvalidField`]: crate::Error::InvalidField
pub const MAX_DATA_DEPTH: usize = 64;

/// A custom attribute value: a JSON-like tree, stored in the record as is.
///
/// # Examples
/// ```
/// use userdir::AttrValue;
/// let v = AttrValue::from("blue");
/// assert_eq!(v, AttrValue::String("blue".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string.
    String(String),
    /// An ordered list of values.
    Array(Vec<AttrValue>),
    /// A map from keys to values (ordered by key).
    Object(BTreeMap<String, AttrValue>),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::String(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::String(s)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}
impl From<f64> for AttrValue {
    fn from(f: f64) -> Self {
        AttrValue::Float(f)
    }
}

/// A plaintext password on its way to being hashed. Its `Debug` output is redacted and it
/// implements no serialization.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a plaintext password.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }
    /// The plaintext, for hashing and policy checks.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl<S: Into<String>> From<S> for Password {
    fn from(s: S) -> Self {
        Password(s.into())
    }
}

/// A stored password hash (a PHC string such as `$argon2id$v=19$...`, a bcrypt `$2b$...` string,
/// or an imported scheme). `Debug` shows only the scheme; it is never serialized for callers.
///
/// Two hashes are equal when their encoded text is.
#[derive(Clone)]
pub struct StoredHash(String, Origin);

/// Where a [`StoredHash`] value came from (known in memory only, never stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Given by a caller or read back: any hasher may have made it.
    Given,
    /// Made by a directory's hasher with a pepper (so it verifies with that pepper).
    Peppered,
}

impl PartialEq for StoredHash {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for StoredHash {}

impl StoredHash {
    /// Wraps an encoded hash without checking it (checked when used).
    #[must_use]
    pub fn from_encoded(s: impl Into<String>) -> Self {
        StoredHash(s.into(), Origin::Given)
    }
    /// A hash just made by a hasher with a pepper.
    pub(crate) fn peppered(s: String) -> Self {
        StoredHash(s, Origin::Peppered)
    }
    /// Whether this value was made by a hasher with a pepper (in this process).
    pub(crate) fn made_with_pepper(&self) -> bool {
        self.1 == Origin::Peppered
    }
    /// The encoded hash, for verification and for `export --with-hashes`.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The scheme tag, safe to show: one of [`StoredHash::SCHEMES`] (`argon2id`, `2b`,
    /// `pbkdf2-sha256`, ...), or `unknown` for anything else. Never any other part of the
    /// stored text (a value that is not a hash may be a password).
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        let tag = self
            .0
            .strip_prefix('$')
            .and_then(|s| s.split('$').next())
            .unwrap_or("");
        Self::SCHEMES
            .iter()
            .find(|s| **s == tag)
            .copied()
            .unwrap_or("unknown")
    }

    /// The scheme tags [`StoredHash::scheme`] can return, besides `unknown`.
    pub const SCHEMES: [&'static str; 8] = [
        "argon2id",
        "argon2i",
        "argon2d",
        "2a",
        "2b",
        "2y",
        "pbkdf2-sha256",
        "fa-pbkdf2-sha256",
    ];
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({}, <redacted>)", self.scheme())
    }
}

/// A user of the directory.
///
/// A plain struct with public fields. The `password` hash is redacted in `Debug` and never
/// serialized: `Serialize` skips it, and a deserialized `User` has none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Immutable unique id.
    pub id: Uuid,
    /// Login name, as given (trimmed, NFC); unique regardless of case.
    pub username: Option<String>,
    /// Email, trimmed and lowercased; unique.
    pub email: Option<String>,
    /// Id of this user in another system; unique when present.
    pub external_id: Option<String>,
    /// `false` once deactivated (soft deleted); the user keeps its username and email.
    pub active: bool,
    /// Whether the email has been verified.
    pub verified: bool,
    /// Given name.
    pub first_name: Option<String>,
    /// Middle name.
    pub middle_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Full name.
    pub full_name: Option<String>,
    /// Nickname.
    pub nick_name: Option<String>,
    /// Birth date, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Mobile phone number, as given.
    pub mobile_phone: Option<String>,
    /// URL of the user's picture.
    pub image_url: Option<String>,
    /// IANA time zone name, as given.
    pub timezone: Option<String>,
    /// Preferred languages (BCP 47 tags), most preferred first.
    pub preferred_languages: Vec<String>,
    /// Roles (a set).
    pub roles: BTreeSet<String>,
    /// Custom attributes.
    pub data: BTreeMap<String, AttrValue>,
    /// The stored password hash, if the user has a password.
    #[serde(skip)]
    pub password: Option<StoredHash>,
    /// The user must change the password at next login.
    pub password_change_required: bool,
    /// When the account expires (ms since the Unix epoch).
    pub expiry: Option<UnixMillis>,
    /// When the user was created.
    pub insert_instant: UnixMillis,
    /// When the user was last changed.
    pub last_update_instant: UnixMillis,
    /// When the user last logged in.
    pub last_login_instant: Option<UnixMillis>,
    /// When the password was last set.
    pub password_last_update_instant: Option<UnixMillis>,
    /// Bumped by every write; for optimistic concurrency.
    pub version: u64,
}

/// The profile fields shared by [`NewUser`] and [`UserUpdate`]: everything but the id, the
/// password and the bookkeeping instants.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// See [`User::username`].
    pub username: Option<String>,
    /// See [`User::email`].
    pub email: Option<String>,
    /// See [`User::external_id`].
    pub external_id: Option<String>,
    /// See [`User::verified`].
    pub verified: bool,
    /// See [`User::first_name`].
    pub first_name: Option<String>,
    /// See [`User::middle_name`].
    pub middle_name: Option<String>,
    /// See [`User::last_name`].
    pub last_name: Option<String>,
    /// See [`User::full_name`].
    pub full_name: Option<String>,
    /// See [`User::nick_name`].
    pub nick_name: Option<String>,
    /// See [`User::birth_date`].
    pub birth_date: Option<String>,
    /// See [`User::mobile_phone`].
    pub mobile_phone: Option<String>,
    /// See [`User::image_url`].
    pub image_url: Option<String>,
    /// See [`User::timezone`].
    pub timezone: Option<String>,
    /// See [`User::preferred_languages`].
    pub preferred_languages: Vec<String>,
    /// See [`User::roles`].
    pub roles: BTreeSet<String>,
    /// See [`User::data`].
    pub data: BTreeMap<String, AttrValue>,
    /// See [`User::password_change_required`].
    pub password_change_required: bool,
    /// See [`User::expiry`].
    pub expiry: Option<UnixMillis>,
}

impl Profile {
    /// The profile part of an existing user.
    #[must_use]
    pub fn of(user: &User) -> Self {
        Profile {
            username: user.username.clone(),
            email: user.email.clone(),
            external_id: user.external_id.clone(),
            verified: user.verified,
            first_name: user.first_name.clone(),
            middle_name: user.middle_name.clone(),
            last_name: user.last_name.clone(),
            full_name: user.full_name.clone(),
            nick_name: user.nick_name.clone(),
            birth_date: user.birth_date.clone(),
            mobile_phone: user.mobile_phone.clone(),
            image_url: user.image_url.clone(),
            timezone: user.timezone.clone(),
            preferred_languages: user.preferred_languages.clone(),
            roles: user.roles.clone(),
            data: user.data.clone(),
            password_change_required: user.password_change_required,
            expiry: user.expiry,
        }
    }
}

/// The password part of a new user: plaintext (hashed by the directory) or a hash.
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordInput {
    /// A plaintext password, checked against the policy and hashed with argon2id.
    Plain(Password),
    /// An already hashed password, stored as given and checked for a supported scheme.
    Hashed(StoredHash),
}

/// A user to create. Build it with [`NewUser::with_username`] or [`NewUser::with_email`] and the
/// chained setters; every field is also public.
///
/// # Examples
/// ```
/// use userdir::NewUser;
/// let u = NewUser::with_username("Johnny123")
///     .email("John@Example.com")
///     .password("correct horse battery")
///     .confirm("correct horse battery")
///     .role("admin");
/// assert_eq!(u.profile.username.as_deref(), Some("Johnny123"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct NewUser {
    /// The id to use; a random UUID v4 when `None`.
    pub id: Option<Uuid>,
    /// The profile fields.
    pub profile: Profile,
    /// Whether the user starts active (default `true`).
    pub active: bool,
    /// The password, if any.
    pub password: Option<PasswordInput>,
    /// A confirmation that must equal the plaintext password when given.
    pub confirm: Option<Password>,
    /// Creation instant to keep (import); the directory's clock when `None`.
    pub insert_instant: Option<UnixMillis>,
    /// Last login instant to keep (import).
    pub last_login_instant: Option<UnixMillis>,
    /// Password change instant to keep (import); the creation instant when `None`.
    pub password_last_update_instant: Option<UnixMillis>,
}

macro_rules! opt_setters {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        pub fn $name(mut self, v: impl Into<String>) -> Self {
            self.profile.$name = Some(v.into());
            self
        }
    )*};
}

impl NewUser {
    /// A new active user with a username.
    pub fn with_username(username: impl Into<String>) -> Self {
        NewUser {
            active: true,
            ..NewUser::default()
        }
        .username(username)
    }
    /// A new active user with an email.
    pub fn with_email(email: impl Into<String>) -> Self {
        NewUser {
            active: true,
            ..NewUser::default()
        }
        .email(email)
    }
    /// Uses this id instead of a random one.
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }
    opt_setters!(
        /// Sets the username.
        username,
        /// Sets the email.
        email,
        /// Sets the external id.
        external_id,
        /// Sets the first name.
        first_name,
        /// Sets the middle name.
        middle_name,
        /// Sets the last name.
        last_name,
        /// Sets the full name.
        full_name,
        /// Sets the nickname.
        nick_name,
        /// Sets the birth date (`YYYY-MM-DD`).
        birth_date,
        /// Sets the mobile phone.
        mobile_phone,
        /// Sets the image URL.
        image_url,
        /// Sets the time zone.
        timezone,
    );
    /// Sets a plaintext password (hashed with the directory's argon2id parameters).
    pub fn password(mut self, p: impl Into<String>) -> Self {
        self.password = Some(PasswordInput::Plain(Password::new(p)));
        self
    }
    /// Sets the confirmation, which must equal the password.
    pub fn confirm(mut self, p: impl Into<String>) -> Self {
        self.confirm = Some(Password::new(p));
        self
    }
    /// Sets an already hashed password (argon2, bcrypt, PBKDF2 PHC strings).
    pub fn password_hash(mut self, h: StoredHash) -> Self {
        self.password = Some(PasswordInput::Hashed(h));
        self
    }
    /// Adds a role.
    pub fn role(mut self, r: impl Into<String>) -> Self {
        self.profile.roles.insert(r.into());
        self
    }
    /// Sets a custom attribute.
    pub fn data(mut self, key: impl Into<String>, v: impl Into<AttrValue>) -> Self {
        self.profile.data.insert(key.into(), v.into());
        self
    }
    /// Sets whether the user starts active.
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }
    /// Sets whether the email is verified.
    pub fn verified(mut self, verified: bool) -> Self {
        self.profile.verified = verified;
        self
    }
    /// Requires a password change at next login.
    pub fn password_change_required(mut self, required: bool) -> Self {
        self.profile.password_change_required = required;
        self
    }
    /// Sets the account expiry instant.
    pub fn expiry(mut self, at: UnixMillis) -> Self {
        self.profile.expiry = Some(at);
        self
    }
    /// Keeps a given creation instant (for imports).
    pub fn insert_instant(mut self, at: UnixMillis) -> Self {
        self.insert_instant = Some(at);
        self
    }
}

/// A full replacement of a user's profile. The password is kept unless `password` is given.
///
/// Start from the current user with [`UserUpdate::from`] and change what you need.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), userdir::Error> {
/// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
/// let user = dir.create(userdir::NewUser::with_username("ann"))?;
/// let mut update = userdir::UserUpdate::from(&user);
/// update.profile.last_name = Some("Smith".into());
/// let user = dir.update(user.id, update, Some(user.version))?;
/// assert_eq!(user.last_name.as_deref(), Some("Smith"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct UserUpdate {
    /// The new profile (replaces the old one entirely).
    pub profile: Profile,
    /// A new plaintext password, or `None` to keep the current one.
    pub password: Option<Password>,
}

impl From<&User> for UserUpdate {
    fn from(u: &User) -> Self {
        UserUpdate {
            profile: Profile::of(u),
            password: None,
        }
    }
}
