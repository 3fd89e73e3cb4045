//! The on-disk user record, separate from the public [`User`] so each can evolve.
//!
//! Record format version 1. The codec prefixes the bincode encoding with this version byte.

use std::collections::{BTreeMap, BTreeSet};

use std::cell::Cell;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::user::{AttrValue, MAX_DATA_DEPTH, StoredHash, User};

#[derive(Serialize, Deserialize)]
pub(crate) struct DbUserV1 {
    pub username: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub verified: bool,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub nick_name: Option<String>,
    pub birth_date: Option<String>,
    pub mobile_phone: Option<String>,
    pub image_url: Option<String>,
    pub timezone: Option<String>,
    pub preferred_languages: Vec<String>,
    pub roles: BTreeSet<String>,
    pub data: BTreeMap<String, DbValue>,
    pub password: Option<String>,
    pub password_change_required: bool,
    pub expiry: Option<i64>,
    pub insert_instant: i64,
    pub last_update_instant: i64,
    pub last_login_instant: Option<i64>,
    pub password_last_update_instant: Option<i64>,
    pub version: u64,
}

/// The on-disk form of [`AttrValue`]. Its `Deserialize` is written by hand (below) to bound
/// the nesting depth.
#[derive(Serialize)]
pub(crate) enum DbValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<DbValue>),
    Object(BTreeMap<String, DbValue>),
}

/// The derived decoder of [`DbValue`] (same variants, same order, so the same encoding); its
/// children decode through [`DbValue`]'s depth-bounded `Deserialize`.
#[derive(Deserialize)]
#[serde(rename = "DbValue")]
enum DbValueRepr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<DbValue>),
    Object(BTreeMap<String, DbValue>),
}

thread_local! {
    /// How deep the `DbValue` being decoded on this thread is nested.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One level of `DbValue` nesting; leaving it (also on error) restores the depth.
struct Level;

impl Level {
    fn enter() -> Option<Level> {
        DEPTH.with(|d| {
            let n = d.get();
            (n < MAX_DATA_DEPTH).then(|| {
                d.set(n + 1);
                Level
            })
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<'de> Deserialize<'de> for DbValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decoding is recursive: a damaged or crafted record nested millions deep would
        // overflow the stack (an abort, not an error) without this bound.
        let _level = Level::enter().ok_or_else(|| {
            D::Error::custom(format!(
                "custom data nested deeper than {MAX_DATA_DEPTH} levels"
            ))
        })?;
        Ok(match DbValueRepr::deserialize(d)? {
            DbValueRepr::Null => DbValue::Null,
            DbValueRepr::Bool(b) => DbValue::Bool(b),
            DbValueRepr::Int(i) => DbValue::Int(i),
            DbValueRepr::Float(f) => DbValue::Float(f),
            DbValueRepr::String(s) => DbValue::String(s),
            DbValueRepr::Array(a) => DbValue::Array(a),
            DbValueRepr::Object(o) => DbValue::Object(o),
        })
    }
}

impl From<&AttrValue> for DbValue {
    fn from(v: &AttrValue) -> Self {
        match v {
            AttrValue::Null => DbValue::Null,
            AttrValue::Bool(b) => DbValue::Bool(*b),
            AttrValue::Int(i) => DbValue::Int(*i),
            AttrValue::Float(f) => DbValue::Float(*f),
            AttrValue::String(s) => DbValue::String(s.clone()),
            AttrValue::Array(a) => DbValue::Array(a.iter().map(Into::into).collect()),
            AttrValue::Object(o) => {
                DbValue::Object(o.iter().map(|(k, v)| (k.clone(), v.into())).collect())
            }
        }
    }
}

impl From<DbValue> for AttrValue {
    fn from(v: DbValue) -> Self {
        match v {
            DbValue::Null => AttrValue::Null,
            DbValue::Bool(b) => AttrValue::Bool(b),
            DbValue::Int(i) => AttrValue::Int(i),
            DbValue::Float(f) => AttrValue::Float(f),
            DbValue::String(s) => AttrValue::String(s),
            DbValue::Array(a) => AttrValue::Array(a.into_iter().map(Into::into).collect()),
            DbValue::Object(o) => {
                AttrValue::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<&User> for DbUserV1 {
    fn from(u: &User) -> Self {
        DbUserV1 {
            username: u.username.clone(),
            email: u.email.clone(),
            external_id: u.external_id.clone(),
            active: u.active,
            verified: u.verified,
            first_name: u.first_name.clone(),
            middle_name: u.middle_name.clone(),
            last_name: u.last_name.clone(),
            full_name: u.full_name.clone(),
            nick_name: u.nick_name.clone(),
            birth_date: u.birth_date.clone(),
            mobile_phone: u.mobile_phone.clone(),
            image_url: u.image_url.clone(),
            timezone: u.timezone.clone(),
            preferred_languages: u.preferred_languages.clone(),
            roles: u.roles.clone(),
            data: u.data.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
            password: u.password.as_ref().map(|p| p.expose().to_owned()),
            password_change_required: u.password_change_required,
            expiry: u.expiry,
            insert_instant: u.insert_instant,
            last_update_instant: u.last_update_instant,
            last_login_instant: u.last_login_instant,
            password_last_update_instant: u.password_last_update_instant,
            version: u.version,
        }
    }
}

impl DbUserV1 {
    pub(crate) fn into_user(self, id: Uuid) -> User {
        User {
            id,
            username: self.username,
            email: self.email,
            external_id: self.external_id,
            active: self.active,
            verified: self.verified,
            first_name: self.first_name,
            middle_name: self.middle_name,
            last_name: self.last_name,
            full_name: self.full_name,
            nick_name: self.nick_name,
            birth_date: self.birth_date,
            mobile_phone: self.mobile_phone,
            image_url: self.image_url,
            timezone: self.timezone,
            preferred_languages: self.preferred_languages,
            roles: self.roles,
            data: self.data.into_iter().map(|(k, v)| (k, v.into())).collect(),
            password: self.password.map(StoredHash::from_encoded),
            password_change_required: self.password_change_required,
            expiry: self.expiry,
            insert_instant: self.insert_instant,
            last_update_instant: self.last_update_instant,
            last_login_instant: self.last_login_instant,
            password_last_update_instant: self.password_last_update_instant,
            version: self.version,
        }
    }
}

/// The number of fields of [`DbUserV1`].
pub(crate) const FIELDS: usize = 25;

/// Field positions in [`DbUserV1`] (and [`RecordView`]), for [`Need`].
pub(crate) mod field {
    pub(crate) const USERNAME: usize = 0;
    pub(crate) const EMAIL: usize = 1;
    pub(crate) const EXTERNAL_ID: usize = 2;
    pub(crate) const ACTIVE: usize = 3;
    pub(crate) const VERIFIED: usize = 4;
    pub(crate) const FIRST_NAME: usize = 5;
    pub(crate) const MIDDLE_NAME: usize = 6;
    pub(crate) const LAST_NAME: usize = 7;
    pub(crate) const FULL_NAME: usize = 8;
    pub(crate) const NICK_NAME: usize = 9;
    pub(crate) const BIRTH_DATE: usize = 10;
    pub(crate) const MOBILE_PHONE: usize = 11;
    pub(crate) const IMAGE_URL: usize = 12;
    pub(crate) const TIMEZONE: usize = 13;
    pub(crate) const PREFERRED_LANGUAGES: usize = 14;
    pub(crate) const ROLES: usize = 15;
    pub(crate) const DATA: usize = 16;
    pub(crate) const PASSWORD: usize = 17;
    pub(crate) const PASSWORD_CHANGE_REQUIRED: usize = 18;
    pub(crate) const EXPIRY: usize = 19;
    pub(crate) const INSERT_INSTANT: usize = 20;
    pub(crate) const LAST_UPDATE_INSTANT: usize = 21;
    pub(crate) const LAST_LOGIN_INSTANT: usize = 22;
    pub(crate) const PASSWORD_LAST_UPDATE_INSTANT: usize = 23;
    pub(crate) const VERSION: usize = 24;
}

/// Which fields of a record a [`RecordView`] reads: a bit set of positions from [`field`].
/// The fields before the last one needed are stepped over (strings without their UTF-8
/// check, custom data without allocating); those after it are not looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Need(u32);

impl Need {
    /// Every field.
    pub(crate) const ALL: Need = Need((1 << FIELDS) - 1);

    /// Also needs field `i` (a position from [`field`]).
    #[must_use]
    pub(crate) fn with(self, i: usize) -> Need {
        let bit = u32::try_from(i)
            .ok()
            .and_then(|i| 1u32.checked_shl(i))
            .unwrap_or(0);
        Need((self.0 | bit) & Need::ALL.0)
    }

    /// Both needs.
    #[must_use]
    pub(crate) fn union(self, o: Need) -> Need {
        Need(self.0 | o.0)
    }

    /// Whether field `i` is needed.
    pub(crate) fn has(self, i: usize) -> bool {
        u32::try_from(i)
            .ok()
            .and_then(|i| self.0.checked_shr(i))
            .is_some_and(|b| b & 1 != 0)
    }

    /// How many leading fields must be decoded (up to the last one needed).
    pub(crate) fn fields(self) -> usize {
        (u32::BITS - self.0.leading_zeros()) as usize
    }

    /// A need from its bit set (tests).
    #[cfg(test)]
    pub(crate) fn from_bits(bits: u32) -> Need {
        Need(bits & Need::ALL.0)
    }
}

/// Steps over an encoded string (or byte string) without checking it.
struct SkipBytes;

impl<'de> Deserialize<'de> for SkipBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SkipBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                _: &'de [u8],
            ) -> Result<SkipBytes, E> {
                Ok(SkipBytes)
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<SkipBytes, E> {
                Ok(SkipBytes)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Steps over a list of strings without checking them.
struct SkipStrings;

impl<'de> Deserialize<'de> for SkipStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SkipStrings;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkipStrings, A::Error> {
                while seq.next_element::<SkipBytes>()?.is_some() {}
                Ok(SkipStrings)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A list of strings read in place; up to three without allocating.
#[derive(Clone, Debug)]
pub(crate) enum StrList<'a> {
    Few(usize, [&'a str; 3]),
    Many(Vec<&'a str>),
}

impl Default for StrList<'_> {
    fn default() -> Self {
        StrList::Few(0, [""; 3])
    }
}

impl<'a> StrList<'a> {
    pub(crate) fn as_slice(&self) -> &[&'a str] {
        match self {
            StrList::Few(n, a) => a.get(..*n).unwrap_or(&[]),
            StrList::Many(v) => v,
        }
    }

    /// Sorted and without duplicates, as the set it was stored from. A damaged record might
    /// hold the strings out of order, which decoding into a `BTreeSet` would repair.
    fn into_set(self) -> StrList<'a> {
        if self.as_slice().is_sorted_by(|a, b| a < b) {
            return self;
        }
        let mut v = self.as_slice().to_vec();
        v.sort_unstable();
        v.dedup();
        StrList::Many(v)
    }
}

impl<'de> Deserialize<'de> for StrList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StrList<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StrList<'de>, A::Error> {
                let mut few = [""; 3];
                let mut n = 0;
                while let Some(s) = seq.next_element::<&'de str>()? {
                    match few.get_mut(n) {
                        Some(slot) => {
                            *slot = s;
                            n += 1;
                        }
                        None => {
                            let mut v = few.to_vec();
                            v.push(s);
                            while let Some(s) = seq.next_element::<&'de str>()? {
                                v.push(s);
                            }
                            return Ok(StrList::Many(v));
                        }
                    }
                }
                Ok(StrList::Few(n, few))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A custom attribute value read in place (the borrowed form of [`DbValue`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Array(Vec<ValueRef<'a>>),
    Object(MapRef<'a>),
}

/// Custom attributes read in place: (key, value) in key order, as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MapRef<'a>(pub Vec<(&'a str, ValueRef<'a>)>);

impl<'a> MapRef<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&ValueRef<'a>> {
        self.0
            .binary_search_by(|(k, _)| (*k).cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for MapRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MapRef<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of custom attributes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MapRef<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = map.next_entry::<&'de str, ValueRef<'de>>()? {
                    out.push(kv);
                }
                // Stored from a BTreeMap, so in strict key order. A damaged record might not
                // be: then the last value of a key wins, as when decoding into a BTreeMap.
                if !out.is_sorted_by(|a, b| a.0 < b.0) {
                    out.reverse();
                    out.sort_by(|a, b| a.0.cmp(b.0));
                    out.dedup_by(|later, kept| later.0 == kept.0);
                }
                Ok(MapRef(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ValueRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::VariantAccess;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ValueRef<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a custom attribute value")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                e: A,
            ) -> Result<ValueRef<'de>, A::Error> {
                // The variants of `DbValue`, in its order (the encoding is the index).
                let (i, v) = e.variant::<u32>()?;
                Ok(match i {
                    0 => {
                        v.unit_variant()?;
                        ValueRef::Null
                    }
                    1 => ValueRef::Bool(v.newtype_variant()?),
                    2 => ValueRef::Int(v.newtype_variant()?),
                    3 => ValueRef::Float(v.newtype_variant()?),
                    4 => ValueRef::Str(v.newtype_variant()?),
                    5 => ValueRef::Array(v.newtype_variant()?),
                    6 => ValueRef::Object(v.newtype_variant()?),
                    other => return Err(bad_variant(other)),
                })
            }
        }
        let _level = Level::enter().ok_or_else(|| {
            D::Error::custom(format!(
                "custom data nested deeper than {MAX_DATA_DEPTH} levels"
            ))
        })?;
        d.deserialize_enum("DbValue", DB_VALUE_VARIANTS, V)
    }
}

fn bad_variant<E: serde::de::Error>(i: u32) -> E {
    E::invalid_value(
        serde::de::Unexpected::Unsigned(u64::from(i)),
        &"a variant index 0 ..= 6",
    )
}

/// Steps over custom attributes without keeping (or allocating) anything.
struct SkipMap;
/// Steps over one custom attribute value.
struct SkipValue;
/// Steps over a list of custom attribute values.
struct SkipSeq;

impl<'de> Deserialize<'de> for SkipMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SkipMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of custom attributes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SkipMap, A::Error> {
                while map.next_entry::<&'de str, SkipValue>()?.is_some() {}
                Ok(SkipMap)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for SkipSeq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SkipSeq;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of custom attribute values")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkipSeq, A::Error> {
                while seq.next_element::<SkipValue>()?.is_some() {}
                Ok(SkipSeq)
            }
        }
        d.deserialize_seq(V)
    }
}

/// The variants of [`DbValue`], in encoding order.
const DB_VALUE_VARIANTS: &[&str] = &["Null", "Bool", "Int", "Float", "String", "Array", "Object"];

impl<'de> Deserialize<'de> for SkipValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::VariantAccess;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SkipValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a custom attribute value")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                e: A,
            ) -> Result<SkipValue, A::Error> {
                let (i, v) = e.variant::<u32>()?;
                match i {
                    0 => v.unit_variant()?,
                    1 => {
                        v.newtype_variant::<bool>()?;
                    }
                    2 => {
                        v.newtype_variant::<i64>()?;
                    }
                    3 => {
                        v.newtype_variant::<f64>()?;
                    }
                    4 => {
                        v.newtype_variant::<&'de str>()?;
                    }
                    5 => {
                        v.newtype_variant::<SkipSeq>()?;
                    }
                    6 => {
                        v.newtype_variant::<SkipMap>()?;
                    }
                    other => return Err(bad_variant(other)),
                }
                Ok(SkipValue)
            }
        }
        let _level = Level::enter().ok_or_else(|| {
            D::Error::custom(format!(
                "custom data nested deeper than {MAX_DATA_DEPTH} levels"
            ))
        })?;
        d.deserialize_enum("DbValue", DB_VALUE_VARIANTS, V)
    }
}

/// A user record read in place: strings borrow from the encoded bytes, nothing is allocated
/// for records without custom data or with at most three languages and three roles. Its
/// fields mirror [`DbUserV1`]'s, in the same order (the encoding is that order). Only the
/// fields a [`Need`] names are read; the others keep their defaults.
#[derive(Clone, Debug, Default)]
pub(crate) struct RecordView<'a> {
    pub id: Uuid,
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub active: bool,
    pub verified: bool,
    pub first_name: Option<&'a str>,
    pub middle_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub nick_name: Option<&'a str>,
    pub birth_date: Option<&'a str>,
    pub mobile_phone: Option<&'a str>,
    pub image_url: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub preferred_languages: StrList<'a>,
    pub roles: StrList<'a>,
    pub data: MapRef<'a>,
    pub password: Option<&'a str>,
    pub password_change_required: bool,
    pub expiry: Option<i64>,
    pub insert_instant: i64,
    pub last_update_instant: i64,
    pub last_login_instant: Option<i64>,
    pub password_last_update_instant: Option<i64>,
    pub version: u64,
}

/// Decodes the fields of a [`RecordView`] a [`Need`] names, into a view given by the caller
/// (a view is a few hundred bytes: filled in place rather than moved out).
pub(crate) struct ViewSeed<'v, 'a> {
    pub view: &'v mut RecordView<'a>,
    pub need: Need,
}

impl<'de> serde::de::DeserializeSeed<'de> for ViewSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_tuple(FIELDS, self)
    }
}

impl<'de> serde::de::Visitor<'de> for ViewSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a user record")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (v, need) = (self.view, self.need);
        let n = need.fields();
        let missing = |at: usize| A::Error::invalid_length(at, &"25 record fields");
        // Field `$i`: read into `$dst` when needed, stepped over as `$skip` when a later
        // field is; once the last needed field is read, the rest is not looked at.
        macro_rules! field {
            ($i:expr, $dst:expr, $skip:ty) => {
                if $i >= n {
                    return Ok(());
                }
                if need.has($i) {
                    $dst = seq.next_element()?.ok_or_else(|| missing($i))?;
                } else {
                    seq.next_element::<$skip>()?.ok_or_else(|| missing($i))?;
                }
            };
        }
        field!(field::USERNAME, v.username, Option<SkipBytes>);
        field!(field::EMAIL, v.email, Option<SkipBytes>);
        field!(field::EXTERNAL_ID, v.external_id, Option<SkipBytes>);
        field!(field::ACTIVE, v.active, bool);
        field!(field::VERIFIED, v.verified, bool);
        field!(field::FIRST_NAME, v.first_name, Option<SkipBytes>);
        field!(field::MIDDLE_NAME, v.middle_name, Option<SkipBytes>);
        field!(field::LAST_NAME, v.last_name, Option<SkipBytes>);
        field!(field::FULL_NAME, v.full_name, Option<SkipBytes>);
        field!(field::NICK_NAME, v.nick_name, Option<SkipBytes>);
        field!(field::BIRTH_DATE, v.birth_date, Option<SkipBytes>);
        field!(field::MOBILE_PHONE, v.mobile_phone, Option<SkipBytes>);
        field!(field::IMAGE_URL, v.image_url, Option<SkipBytes>);
        field!(field::TIMEZONE, v.timezone, Option<SkipBytes>);
        field!(
            field::PREFERRED_LANGUAGES,
            v.preferred_languages,
            SkipStrings
        );
        field!(field::ROLES, v.roles, SkipStrings);
        if need.has(field::ROLES) {
            v.roles = std::mem::take(&mut v.roles).into_set();
        }
        field!(field::DATA, v.data, SkipMap);
        field!(field::PASSWORD, v.password, Option<SkipBytes>);
        field!(
            field::PASSWORD_CHANGE_REQUIRED,
            v.password_change_required,
            bool
        );
        field!(field::EXPIRY, v.expiry, Option<i64>);
        field!(field::INSERT_INSTANT, v.insert_instant, i64);
        field!(field::LAST_UPDATE_INSTANT, v.last_update_instant, i64);
        field!(field::LAST_LOGIN_INSTANT, v.last_login_instant, Option<i64>);
        field!(
            field::PASSWORD_LAST_UPDATE_INSTANT,
            v.password_last_update_instant,
            Option<i64>
        );
        field!(field::VERSION, v.version, u64);
        Ok(())
    }
}
