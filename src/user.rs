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

/// One element of a SCIM multi-valued attribute (`emails`, `phoneNumbers`, `ims`, `photos`,
/// `x509Certificates`, `entitlements`): RFC 7643 §2.4's `value`, `type`, `primary` and
/// `display`.
///
/// # Examples
/// ```
/// use userdir::MultiValue;
/// let home = MultiValue::new("babs@jensen.org").kind("home");
/// assert_eq!(home.kind.as_deref(), Some("home"));
/// assert!(!home.primary);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MultiValue {
    /// The value (an address, a number, a URL, a certificate in base64, ...).
    pub value: String,
    /// SCIM `type`: a label such as `work`, `home`, `mobile`, `photo`.
    pub kind: Option<String>,
    /// SCIM `primary`: the preferred element; at most one element of a list is primary.
    pub primary: bool,
    /// SCIM `display`: a human-readable name.
    pub display: Option<String>,
}

impl MultiValue {
    /// An element with this value, no type, not primary.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        MultiValue {
            value: value.into(),
            ..MultiValue::default()
        }
    }
    /// Sets the `type`.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }
    /// Sets `primary`.
    #[must_use]
    pub fn primary(mut self, primary: bool) -> Self {
        self.primary = primary;
        self
    }
    /// Sets `display`.
    #[must_use]
    pub fn display(mut self, display: impl Into<String>) -> Self {
        self.display = Some(display.into());
        self
    }
}

/// One element of SCIM `addresses` (RFC 7643 §4.1.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    /// The full mailing address, formatted for display.
    pub formatted: Option<String>,
    /// Street, house number, ...
    pub street_address: Option<String>,
    /// City or locality.
    pub locality: Option<String>,
    /// State or region.
    pub region: Option<String>,
    /// Zip or postal code.
    pub postal_code: Option<String>,
    /// Country (ISO 3166-1 alpha-2, as given).
    pub country: Option<String>,
    /// SCIM `type`: `work`, `home`, `other`, ...
    pub kind: Option<String>,
    /// SCIM `primary`.
    pub primary: bool,
}

/// The profile of a user: every attribute a caller sets, i.e. all but the id, the password
/// and the bookkeeping instants. [`User`] holds one (and dereferences to it, so
/// `user.username` reads `user.profile.username`); [`NewUser`] and [`UserUpdate`] carry one.
///
/// The fields are the SCIM 2.0 `User` (RFC 7643 §4.1), its enterprise extension (§4.3) and
/// userdir's own extension ([`USERDIR_SCHEMA`](crate::json::scim::USERDIR_SCHEMA) in SCIM
/// documents), named in snake_case. Each field is also listed once in the crate's attribute
/// table, from which the record format, filters, sorting, PATCH and the SCIM mapping follow.
///
/// The login email is [`email`](Profile::email): unique, caseless, stored lowercased. The
/// list [`emails`](Profile::emails) holds every email with its `type` and `display`; the
/// directory keeps the two in step on every write: the element equal to `email` is the
/// primary one (added when missing); with `email` unset, the primary element (else the first)
/// becomes the login email. The other emails are neither unique nor used to log in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// SCIM `userName`: login name, as given (trimmed, NFC); unique regardless of case.
    pub username: Option<String>,
    /// The login email (the primary element of `emails`): trimmed, lowercased, unique.
    pub email: Option<String>,
    /// SCIM `externalId`: id of this user in another system; unique when present.
    pub external_id: Option<String>,
    /// Whether the login email has been verified (userdir extension).
    pub verified: bool,
    /// SCIM `name.givenName`.
    pub first_name: Option<String>,
    /// SCIM `name.middleName`.
    pub middle_name: Option<String>,
    /// SCIM `name.familyName`.
    pub last_name: Option<String>,
    /// SCIM `name.formatted`: the full name (not `displayName`).
    pub full_name: Option<String>,
    /// SCIM `name.honorificPrefix` (`Ms.`).
    pub honorific_prefix: Option<String>,
    /// SCIM `name.honorificSuffix` (`III`).
    pub honorific_suffix: Option<String>,
    /// SCIM `displayName`: the name to show.
    pub display_name: Option<String>,
    /// SCIM `nickName`.
    pub nick_name: Option<String>,
    /// SCIM `profileUrl`.
    pub profile_url: Option<String>,
    /// SCIM `title` (`Vice President`).
    pub title: Option<String>,
    /// SCIM `userType` (`Employee`, `Contractor`).
    pub user_type: Option<String>,
    /// SCIM `preferredLanguage`: BCP 47 tags, most preferred first (written as one
    /// Accept-Language list in SCIM).
    pub preferred_languages: Vec<String>,
    /// SCIM `locale` (`en-US`).
    pub locale: Option<String>,
    /// SCIM `timezone`: IANA time zone name, as given.
    pub timezone: Option<String>,
    /// SCIM `emails`: every email; the primary one is [`email`](Profile::email).
    pub emails: Vec<MultiValue>,
    /// SCIM `phoneNumbers` (FusionAuth's `mobilePhone` is the element of type `mobile`).
    pub phone_numbers: Vec<MultiValue>,
    /// SCIM `ims`: instant messaging addresses.
    pub ims: Vec<MultiValue>,
    /// SCIM `photos`: URLs of pictures (FusionAuth's `imageUrl` is the element of type
    /// `photo`).
    pub photos: Vec<MultiValue>,
    /// SCIM `addresses`.
    pub addresses: Vec<Address>,
    /// SCIM `x509Certificates` (values in base64 DER).
    pub x509_certificates: Vec<MultiValue>,
    /// SCIM `entitlements`.
    pub entitlements: Vec<MultiValue>,
    /// SCIM `roles` (their values; a set).
    pub roles: BTreeSet<String>,
    /// Enterprise `employeeNumber`.
    pub employee_number: Option<String>,
    /// Enterprise `costCenter`.
    pub cost_center: Option<String>,
    /// Enterprise `organization`.
    pub organization: Option<String>,
    /// Enterprise `division`.
    pub division: Option<String>,
    /// Enterprise `department`.
    pub department: Option<String>,
    /// Enterprise `manager.value`: the manager's id.
    pub manager: Option<String>,
    /// Birth date, `YYYY-MM-DD` (userdir extension).
    pub birth_date: Option<String>,
    /// The user must change the password at next login (userdir extension).
    pub password_change_required: bool,
    /// Instant after which the account is expired (userdir extension).
    pub expiry: Option<UnixMillis>,
    /// Custom attributes: anything without a SCIM attribute (userdir extension `data`).
    pub data: BTreeMap<String, AttrValue>,
}

impl Profile {
    /// The profile part of an existing user.
    #[must_use]
    pub fn of(user: &User) -> Self {
        user.profile.clone()
    }

    /// The value of the first element of `list` of type `kind`.
    fn of_kind<'a>(list: &'a [MultiValue], kind: &str) -> Option<&'a str> {
        list.iter()
            .find(|e| e.kind.as_deref() == Some(kind))
            .map(|e| e.value.as_str())
    }

    /// Sets (or, with `None`, removes) the value of the first element of `list` of type
    /// `kind`, adding one when missing.
    fn set_kind(list: &mut Vec<MultiValue>, kind: &str, value: Option<String>) {
        let at = list.iter().position(|e| e.kind.as_deref() == Some(kind));
        match (at, value) {
            (Some(i), Some(v)) => {
                if let Some(e) = list.get_mut(i) {
                    e.value = v;
                }
            }
            (Some(i), None) => {
                list.remove(i);
            }
            (None, Some(v)) => list.push(MultiValue::new(v).kind(kind)),
            (None, None) => {}
        }
    }

    /// The mobile phone: the phone number of type `mobile` (FusionAuth's `mobilePhone`).
    #[must_use]
    pub fn mobile_phone(&self) -> Option<&str> {
        Self::of_kind(&self.phone_numbers, "mobile")
    }

    /// Sets or removes the phone number of type `mobile`.
    pub fn set_mobile_phone(&mut self, phone: Option<String>) {
        Self::set_kind(&mut self.phone_numbers, "mobile", phone);
    }

    /// The picture URL: the photo of type `photo`, else the first (FusionAuth's `imageUrl`).
    #[must_use]
    pub fn image_url(&self) -> Option<&str> {
        Self::of_kind(&self.photos, "photo")
            .or_else(|| self.photos.first().map(|e| e.value.as_str()))
    }

    /// Sets or removes the photo of type `photo`.
    pub fn set_image_url(&mut self, url: Option<String>) {
        Self::set_kind(&mut self.photos, "photo", url);
    }
}

/// A user of the directory: an id, a [`Profile`], the password hash and the bookkeeping.
///
/// A plain struct with public fields; it dereferences to its profile, so `user.username`,
/// `user.email` or `user.roles` read the profile's fields. The `password` hash is redacted in
/// `Debug` and never serialized: `Serialize` skips it, and a deserialized `User` has none. In
/// serialized form the profile's fields sit next to `id`, `active` and the instants (one flat
/// object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Immutable unique id.
    pub id: Uuid,
    /// Every attribute a caller sets.
    #[serde(flatten)]
    pub profile: Profile,
    /// `false` once deactivated (soft deleted); the user keeps its username and email.
    pub active: bool,
    /// The stored password hash, if the user has a password.
    #[serde(skip)]
    pub password: Option<StoredHash>,
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

impl User {
    /// A user with this id and profile, active, without password, created at instant 0.
    #[must_use]
    pub fn new(id: Uuid, profile: Profile) -> Self {
        User {
            id,
            profile,
            active: true,
            password: None,
            insert_instant: 0,
            last_update_instant: 0,
            last_login_instant: None,
            password_last_update_instant: None,
            version: 0,
        }
    }
}

impl std::ops::Deref for User {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        &self.profile
    }
}

impl std::ops::DerefMut for User {
    fn deref_mut(&mut self) -> &mut Profile {
        &mut self.profile
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
        /// Sets the time zone.
        timezone,
        /// Sets SCIM `name.honorificPrefix`.
        honorific_prefix,
        /// Sets SCIM `name.honorificSuffix`.
        honorific_suffix,
        /// Sets SCIM `displayName`.
        display_name,
        /// Sets SCIM `profileUrl`.
        profile_url,
        /// Sets SCIM `title`.
        title,
        /// Sets SCIM `userType`.
        user_type,
        /// Sets SCIM `locale`.
        locale,
        /// Sets the enterprise `employeeNumber`.
        employee_number,
        /// Sets the enterprise `costCenter`.
        cost_center,
        /// Sets the enterprise `organization`.
        organization,
        /// Sets the enterprise `division`.
        division,
        /// Sets the enterprise `department`.
        department,
        /// Sets the enterprise `manager` (the manager's id).
        manager,
    );
    /// Sets the mobile phone (the phone number of type `mobile`).
    pub fn mobile_phone(mut self, phone: impl Into<String>) -> Self {
        self.profile.set_mobile_phone(Some(phone.into()));
        self
    }
    /// Sets the picture URL (the photo of type `photo`).
    pub fn image_url(mut self, url: impl Into<String>) -> Self {
        self.profile.set_image_url(Some(url.into()));
        self
    }
    /// Adds an email (not the login email unless it is primary or the only one).
    pub fn add_email(mut self, email: MultiValue) -> Self {
        self.profile.emails.push(email);
        self
    }
    /// Adds a phone number.
    pub fn add_phone_number(mut self, phone: MultiValue) -> Self {
        self.profile.phone_numbers.push(phone);
        self
    }
    /// Adds an address.
    pub fn add_address(mut self, address: Address) -> Self {
        self.profile.addresses.push(address);
        self
    }
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
