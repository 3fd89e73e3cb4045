//! The user's fields, defined once: the attribute table.
//!
//! [`Profile`](crate::Profile) and [`User`] declare the fields as Rust struct fields; this
//! table lists each of them once more with what the rest of the crate needs to know: its SCIM
//! name and schema, its kind, whether strings compare case-exactly (RFC 7643), and how to read
//! and write it. The record format (each attribute is stored under its position in the
//! table), the in-place view used by scans, filters, sorting, PATCH and the SCIM mapping all
//! walk this table, so adding an attribute is one field and one row here.
//!
//! Rows are never reordered or removed: a row's position is its tag in stored records. A new
//! attribute is appended.

use std::collections::{BTreeMap, BTreeSet};

use crate::user::{Address, AttrValue, MultiValue, StoredHash, User};

/// The schema an attribute belongs to, as SCIM documents name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schema {
    /// `urn:ietf:params:scim:schemas:core:2.0:User`.
    Core,
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`.
    Enterprise,
    /// userdir's extension (`urn:userdir:params:scim:schemas:extension:userdir:2.0:User`).
    Userdir,
    /// Kept by the directory and written under SCIM `meta` (read-only).
    Meta,
    /// Not a SCIM attribute of its own: the login email (SCIM's primary `emails` element)
    /// and the password hash (never written out).
    Internal,
}

impl Schema {
    /// The schema URN (`None` for [`Schema::Meta`] and [`Schema::Internal`]).
    #[must_use]
    pub fn urn(self) -> Option<&'static str> {
        match self {
            Schema::Core => Some(CORE_URN),
            Schema::Enterprise => Some(ENTERPRISE_URN),
            Schema::Userdir => Some(USERDIR_URN),
            Schema::Meta | Schema::Internal => None,
        }
    }
}

/// The SCIM core `User` schema URN.
pub const CORE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The SCIM enterprise `User` extension URN.
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// userdir's own extension URN, for the fields SCIM's schemas have no place for.
pub const USERDIR_URN: &str = "urn:userdir:params:scim:schemas:extension:userdir:2.0:User";

/// The shape of an attribute's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// An optional string.
    Text,
    /// A boolean.
    Flag,
    /// An optional instant (ms since the epoch).
    OptInstant,
    /// An instant (ms since the epoch).
    Instant,
    /// A counter.
    Version,
    /// A list of strings (`preferredLanguage`, `roles`).
    Strings,
    /// A list of [`MultiValue`]s.
    Multi,
    /// A list of [`Address`]es.
    Addresses,
    /// The custom attribute tree.
    Data,
    /// The password hash.
    Hash,
}

/// An attribute's value, borrowed from a [`User`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Get<'a> {
    Text(Option<&'a str>),
    Flag(bool),
    Int(Option<i64>),
    Version(u64),
    Langs(&'a [String]),
    Set(&'a BTreeSet<String>),
    Multi(&'a [MultiValue]),
    Addresses(&'a [Address]),
    Data(&'a BTreeMap<String, AttrValue>),
    Hash(Option<&'a StoredHash>),
}

/// An attribute's place in a [`User`], to write it.
#[derive(Debug)]
pub(crate) enum Slot<'a> {
    Text(&'a mut Option<String>),
    Flag(&'a mut bool),
    OptInstant(&'a mut Option<i64>),
    Instant(&'a mut i64),
    Version(&'a mut u64),
    Langs(&'a mut Vec<String>),
    Set(&'a mut BTreeSet<String>),
    Multi(&'a mut Vec<MultiValue>),
    Addresses(&'a mut Vec<Address>),
    Data(&'a mut BTreeMap<String, AttrValue>),
    Hash(&'a mut Option<StoredHash>),
}

/// One row of the attribute table.
pub(crate) struct Attribute {
    /// The SCIM name within its schema (`userName`, `name.givenName`, `employeeNumber`,
    /// `meta.created`).
    pub name: &'static str,
    /// The Rust field name (for errors).
    pub field: &'static str,
    /// Its schema.
    pub schema: Schema,
    /// Its shape.
    pub kind: Kind,
    /// Whether strings compare case-exactly (RFC 7643 `caseExact`).
    pub case_exact: bool,
    /// Reads it.
    pub get: for<'a> fn(&'a User) -> Get<'a>,
    /// Its place, to write it.
    pub slot: for<'a> fn(&'a mut User) -> Slot<'a>,
}

/// A row for an optional string field of the profile.
macro_rules! text {
    ($name:expr, $schema:ident, $exact:expr, $f:ident) => {
        Attribute {
            name: $name,
            field: stringify!($f),
            schema: Schema::$schema,
            kind: Kind::Text,
            case_exact: $exact,
            get: |u| Get::Text(u.profile.$f.as_deref()),
            slot: |u| Slot::Text(&mut u.profile.$f),
        }
    };
}

/// A row for a list of [`MultiValue`]s of the profile.
macro_rules! multi {
    ($name:expr, $exact:expr, $f:ident) => {
        Attribute {
            name: $name,
            field: stringify!($f),
            schema: Schema::Core,
            kind: Kind::Multi,
            case_exact: $exact,
            get: |u| Get::Multi(&u.profile.$f),
            slot: |u| Slot::Multi(&mut u.profile.$f),
        }
    };
}

/// A row for a boolean.
macro_rules! flag {
    ($name:expr, $schema:ident, $($f:ident).+) => {
        Attribute {
            name: $name,
            field: stringify!($($f).+),
            schema: Schema::$schema,
            kind: Kind::Flag,
            case_exact: true,
            get: |u| Get::Flag(u.$($f).+),
            slot: |u| Slot::Flag(&mut u.$($f).+),
        }
    };
}

/// A row for an optional instant.
macro_rules! opt_instant {
    ($name:expr, $schema:ident, $($f:ident).+) => {
        Attribute {
            name: $name,
            field: stringify!($($f).+),
            schema: Schema::$schema,
            kind: Kind::OptInstant,
            case_exact: true,
            get: |u| Get::Int(u.$($f).+),
            slot: |u| Slot::OptInstant(&mut u.$($f).+),
        }
    };
}

/// A row for an instant.
macro_rules! instant {
    ($name:expr, $f:ident) => {
        Attribute {
            name: $name,
            field: stringify!($f),
            schema: Schema::Meta,
            kind: Kind::Instant,
            case_exact: true,
            get: |u| Get::Int(Some(u.$f)),
            slot: |u| Slot::Instant(&mut u.$f),
        }
    };
}

/// The attribute table. The position of a row is its tag in stored records (format 3):
/// append, never reorder or remove.
pub(crate) const ATTRS: &[Attribute] = &[
    text!("userName", Core, false, username),
    text!("email", Internal, false, email),
    text!("externalId", Core, true, external_id),
    flag!("active", Core, active),
    flag!("verified", Userdir, profile.verified),
    text!("name.givenName", Core, false, first_name),
    text!("name.middleName", Core, false, middle_name),
    text!("name.familyName", Core, false, last_name),
    text!("name.formatted", Core, false, full_name),
    text!("name.honorificPrefix", Core, false, honorific_prefix),
    text!("name.honorificSuffix", Core, false, honorific_suffix),
    text!("displayName", Core, false, display_name),
    text!("nickName", Core, false, nick_name),
    text!("profileUrl", Core, false, profile_url),
    text!("title", Core, false, title),
    text!("userType", Core, false, user_type),
    Attribute {
        name: "preferredLanguage",
        field: "preferred_languages",
        schema: Schema::Core,
        kind: Kind::Strings,
        case_exact: false,
        get: |u| Get::Langs(&u.profile.preferred_languages),
        slot: |u| Slot::Langs(&mut u.profile.preferred_languages),
    },
    text!("locale", Core, false, locale),
    text!("timezone", Core, false, timezone),
    multi!("emails", false, emails),
    multi!("phoneNumbers", false, phone_numbers),
    multi!("ims", false, ims),
    multi!("photos", false, photos),
    Attribute {
        name: "addresses",
        field: "addresses",
        schema: Schema::Core,
        kind: Kind::Addresses,
        case_exact: false,
        get: |u| Get::Addresses(&u.profile.addresses),
        slot: |u| Slot::Addresses(&mut u.profile.addresses),
    },
    multi!("x509Certificates", true, x509_certificates),
    multi!("entitlements", false, entitlements),
    Attribute {
        name: "roles",
        field: "roles",
        schema: Schema::Core,
        kind: Kind::Strings,
        // RFC 7643: caseExact=false; the role index is keyed by the caseless form.
        case_exact: false,
        get: |u| Get::Set(&u.profile.roles),
        slot: |u| Slot::Set(&mut u.profile.roles),
    },
    text!("employeeNumber", Enterprise, false, employee_number),
    text!("costCenter", Enterprise, false, cost_center),
    text!("organization", Enterprise, false, organization),
    text!("division", Enterprise, false, division),
    text!("department", Enterprise, false, department),
    text!("manager", Enterprise, false, manager),
    text!("birthDate", Userdir, true, birth_date),
    flag!(
        "passwordChangeRequired",
        Userdir,
        profile.password_change_required
    ),
    opt_instant!("expiry", Userdir, profile.expiry),
    Attribute {
        name: "data",
        field: "data",
        schema: Schema::Userdir,
        kind: Kind::Data,
        case_exact: true,
        get: |u| Get::Data(&u.profile.data),
        slot: |u| Slot::Data(&mut u.profile.data),
    },
    Attribute {
        name: "password",
        field: "password",
        schema: Schema::Internal,
        kind: Kind::Hash,
        case_exact: true,
        get: |u| Get::Hash(u.password.as_ref()),
        slot: |u| Slot::Hash(&mut u.password),
    },
    instant!("meta.created", insert_instant),
    instant!("meta.lastModified", last_update_instant),
    opt_instant!("lastLoginInstant", Userdir, last_login_instant),
    opt_instant!(
        "passwordLastUpdateInstant",
        Userdir,
        password_last_update_instant
    ),
    Attribute {
        name: "meta.version",
        field: "version",
        schema: Schema::Meta,
        kind: Kind::Version,
        case_exact: true,
        get: |u| Get::Version(u.version),
        slot: |u| Slot::Version(&mut u.version),
    },
];

/// The number of attributes (at most 64: [`Need`](crate::store::record::Need) is a `u64`).
pub(crate) const N_ATTRS: usize = ATTRS.len();

const _: () = assert!(N_ATTRS <= 64);

/// Positions of the attributes other modules name directly.
pub(crate) mod at {
    pub(crate) const USERNAME: usize = 0;
    pub(crate) const EMAIL: usize = 1;
    pub(crate) const EXTERNAL_ID: usize = 2;
    pub(crate) const ACTIVE: usize = 3;
    pub(crate) const FULL_NAME: usize = 8;
    pub(crate) const EMAILS: usize = 19;
    pub(crate) const PHONE_NUMBERS: usize = 20;
    pub(crate) const PHOTOS: usize = 22;
    pub(crate) const ROLES: usize = 26;
    pub(crate) const BIRTH_DATE: usize = 33;
    pub(crate) const DATA: usize = 36;
    pub(crate) const PASSWORD: usize = 37;
    pub(crate) const CREATED: usize = 38;
    pub(crate) const LAST_MODIFIED: usize = 39;
    pub(crate) const LAST_LOGIN: usize = 40;
    pub(crate) const VERSION: usize = 42;
}

/// The attribute at position `i`.
pub(crate) fn attr(i: usize) -> Option<&'static Attribute> {
    ATTRS.get(i)
}

/// The position of the attribute a (lowercased) name denotes: its SCIM name, optionally
/// prefixed by its schema URN and `:`, or one of the older names userdir accepted.
pub(crate) fn lookup(lower: &str) -> Option<usize> {
    let lower = lower
        .strip_suffix(".value")
        .filter(|s| s.ends_with("manager"))
        .unwrap_or(lower);
    let alias = match lower {
        "insertinstant" => Some(at::CREATED),
        "lastupdateinstant" => Some(at::LAST_MODIFIED),
        "lastlogin" => Some(at::LAST_LOGIN),
        _ => None,
    };
    alias.or_else(|| {
        ATTRS.iter().position(|a| {
            a.name.eq_ignore_ascii_case(lower)
                || a.schema.urn().is_some_and(|urn| {
                    strip_urn(lower, urn).is_some_and(|n| n.eq_ignore_ascii_case(a.name))
                })
        })
    })
}

/// `s` without the prefix `urn` and `:` (any case).
pub(crate) fn strip_urn<'a>(s: &'a str, urn: &str) -> Option<&'a str> {
    let p = s.get(..urn.len())?;
    if !p.eq_ignore_ascii_case(urn) {
        return None;
    }
    s.get(urn.len()..)?.strip_prefix(':')
}

/// A description of one attribute of the SCIM `User` as userdir stores it, for publishing
/// schemas (`/Schemas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttributeInfo {
    /// The SCIM name within its schema (`userName`, `name.givenName`, `employeeNumber`).
    pub name: &'static str,
    /// Its schema.
    pub schema: Schema,
    /// Its shape.
    pub kind: Kind,
    /// RFC 7643 `caseExact`.
    pub case_exact: bool,
}

/// Every attribute of the model, in table order (see [`AttributeInfo`]).
///
/// # Examples
/// ```
/// use userdir::model::{Schema, attributes};
/// assert!(attributes().any(|a| a.name == "employeeNumber" && a.schema == Schema::Enterprise));
/// ```
pub fn attributes() -> impl Iterator<Item = AttributeInfo> {
    ATTRS.iter().map(|a| AttributeInfo {
        name: a.name,
        schema: a.schema,
        kind: a.kind,
        case_exact: a.case_exact,
    })
}

#[cfg(test)]
mod tests {
    use super::{ATTRS, Get, Slot, at, lookup};
    use crate::user::{Profile, User};
    use uuid::Uuid;

    #[test]
    fn named_positions_match_the_table() {
        let names = [
            (at::USERNAME, "userName"),
            (at::EMAIL, "email"),
            (at::EXTERNAL_ID, "externalId"),
            (at::ACTIVE, "active"),
            (at::FULL_NAME, "name.formatted"),
            (at::EMAILS, "emails"),
            (at::PHONE_NUMBERS, "phoneNumbers"),
            (at::PHOTOS, "photos"),
            (at::ROLES, "roles"),
            (at::BIRTH_DATE, "birthDate"),
            (at::DATA, "data"),
            (at::PASSWORD, "password"),
            (at::CREATED, "meta.created"),
            (at::LAST_MODIFIED, "meta.lastModified"),
            (at::LAST_LOGIN, "lastLoginInstant"),
            (at::VERSION, "meta.version"),
        ];
        for (i, name) in names {
            assert_eq!(ATTRS[i].name, name);
        }
    }

    #[test]
    fn names_resolve_with_and_without_their_urn() {
        assert_eq!(lookup("username"), Some(at::USERNAME));
        assert_eq!(
            lookup("urn:ietf:params:scim:schemas:core:2.0:user:username"),
            Some(at::USERNAME)
        );
        assert_eq!(
            lookup("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager"),
            Some(32)
        );
        assert_eq!(lookup("department"), Some(31));
        assert_eq!(lookup("nosuch"), None);
    }

    /// Every row reads and writes the field it names, and no two rows share a field.
    #[test]
    fn rows_read_what_they_write() {
        let mut u = User::new(Uuid::nil(), Profile::default());
        for (i, a) in ATTRS.iter().enumerate() {
            let marker = format!("m{i}");
            match (a.slot)(&mut u) {
                Slot::Text(t) => *t = Some(marker.clone()),
                Slot::Flag(b) => *b = !*b,
                Slot::OptInstant(x) => *x = Some(i as i64),
                Slot::Instant(x) => *x = i as i64,
                Slot::Version(x) => *x = i as u64,
                Slot::Langs(l) => l.push(marker.clone()),
                Slot::Set(s) => {
                    s.insert(marker.clone());
                }
                Slot::Multi(m) => m.push(crate::user::MultiValue::new(marker.clone())),
                Slot::Addresses(m) => m.push(crate::user::Address {
                    locality: Some(marker.clone()),
                    ..Default::default()
                }),
                Slot::Data(d) => {
                    d.insert(marker.clone(), crate::user::AttrValue::Null);
                }
                Slot::Hash(h) => *h = Some(crate::user::StoredHash::from_encoded(marker.clone())),
            }
            match (a.get)(&u) {
                Get::Text(t) => assert_eq!(t, Some(marker.as_str()), "{}", a.name),
                Get::Flag(_) | Get::Version(_) => {}
                Get::Int(x) => assert_eq!(x, Some(i as i64), "{}", a.name),
                Get::Langs(l) => assert_eq!(l, std::slice::from_ref(&marker)),
                Get::Set(s) => assert!(s.contains(&marker)),
                Get::Multi(m) => assert_eq!(m.len(), 1),
                Get::Addresses(m) => assert_eq!(m.len(), 1),
                Get::Data(d) => assert!(d.contains_key(&marker)),
                Get::Hash(h) => assert!(h.is_some()),
            }
        }
        // Each text field was written by exactly one row.
        let debug = format!("{u:?}");
        for (i, a) in ATTRS.iter().enumerate() {
            if matches!(a.kind, super::Kind::Text) {
                let n = debug.matches(&format!("\"m{i}\"")).count();
                assert_eq!(n, 1, "{}", a.name);
            }
        }
    }
}
