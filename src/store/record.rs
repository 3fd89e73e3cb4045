//! The on-disk user record, separate from the public [`User`] so each can evolve.
//!
//! Format 3 (written): the attributes of the [attribute table](crate::model), each present one
//! as `(tag, value)` with the tag its position in the table, in increasing tag order; the
//! value is a [`DbField`] variant fitting the attribute's kind. Nothing here names a field:
//! a new attribute is a new row of the table.
//!
//! Format 1 (read only): [`DbUserV1`], the FusionAuth-shaped record of earlier versions.

use std::collections::{BTreeMap, BTreeSet};

use std::cell::Cell;

#[cfg(any(test, feature = "__test-hooks"))]
pub(crate) mod reference;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::model::{ATTRS, Get, N_ATTRS};
use crate::user::{Address, AttrValue, MAX_DATA_DEPTH, MultiValue, StoredHash, User};

/// The record of format 1 (and of format 2, which wraps it in a checksummed envelope).
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

impl DbUserV1 {
    /// The user this record of format 1 describes (the mobile phone and the image URL become
    /// the phone number of type `mobile` and the photo of type `photo`; the email, the only
    /// and so primary element of `emails`).
    pub(crate) fn into_user(self, id: Uuid) -> User {
        let mut p = crate::user::Profile {
            username: self.username,
            email: self.email,
            external_id: self.external_id,
            verified: self.verified,
            first_name: self.first_name,
            middle_name: self.middle_name,
            last_name: self.last_name,
            full_name: self.full_name,
            nick_name: self.nick_name,
            birth_date: self.birth_date,
            timezone: self.timezone,
            preferred_languages: self.preferred_languages,
            roles: self.roles,
            data: self.data.into_iter().map(|(k, v)| (k, v.into())).collect(),
            password_change_required: self.password_change_required,
            expiry: self.expiry,
            ..crate::user::Profile::default()
        };
        if let Some(e) = &p.email {
            p.emails
                .push(MultiValue::new(e.clone()).kind("work").primary(true));
        }
        p.set_mobile_phone(self.mobile_phone);
        p.set_image_url(self.image_url);
        User {
            id,
            profile: p,
            active: self.active,
            password: self.password.map(StoredHash::from_encoded),
            insert_instant: self.insert_instant,
            last_update_instant: self.last_update_instant,
            last_login_instant: self.last_login_instant,
            password_last_update_instant: self.password_last_update_instant,
            version: self.version,
        }
    }
}

/// The number of fields of [`DbUserV1`].
const V1_FIELDS: usize = 25;

/// The variants of a stored attribute value (format 3), in encoding order. Decoding goes
/// through [`RecordView`]; this type only writes.
#[derive(Serialize)]
pub(crate) enum DbField<'a> {
    Text(&'a str),
    Flag(bool),
    Int(i64),
    Version(u64),
    Strings(Vec<&'a str>),
    Multi(Vec<DbMulti<'a>>),
    Addresses(Vec<DbAddress<'a>>),
    Data(BTreeMap<&'a str, DbValue>),
}

/// A stored [`MultiValue`]; also its in-place form (strings borrow from the record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DbMulti<'a> {
    #[serde(borrow)]
    pub value: &'a str,
    #[serde(borrow)]
    pub kind: Option<&'a str>,
    pub primary: bool,
    #[serde(borrow)]
    pub display: Option<&'a str>,
}

/// A stored [`Address`]; also its in-place form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DbAddress<'a> {
    #[serde(borrow)]
    pub formatted: Option<&'a str>,
    #[serde(borrow)]
    pub street_address: Option<&'a str>,
    #[serde(borrow)]
    pub locality: Option<&'a str>,
    #[serde(borrow)]
    pub region: Option<&'a str>,
    #[serde(borrow)]
    pub postal_code: Option<&'a str>,
    #[serde(borrow)]
    pub country: Option<&'a str>,
    #[serde(borrow)]
    pub kind: Option<&'a str>,
    pub primary: bool,
}

impl<'a> DbMulti<'a> {
    fn of(m: &'a MultiValue) -> Self {
        DbMulti {
            value: &m.value,
            kind: m.kind.as_deref(),
            primary: m.primary,
            display: m.display.as_deref(),
        }
    }
    pub(crate) fn to_owned_value(self) -> MultiValue {
        MultiValue {
            value: self.value.to_owned(),
            kind: self.kind.map(str::to_owned),
            primary: self.primary,
            display: self.display.map(str::to_owned),
        }
    }
}

impl<'a> DbAddress<'a> {
    fn of(a: &'a Address) -> Self {
        DbAddress {
            formatted: a.formatted.as_deref(),
            street_address: a.street_address.as_deref(),
            locality: a.locality.as_deref(),
            region: a.region.as_deref(),
            postal_code: a.postal_code.as_deref(),
            country: a.country.as_deref(),
            kind: a.kind.as_deref(),
            primary: a.primary,
        }
    }
    pub(crate) fn to_owned_value(self) -> Address {
        let o = |s: Option<&str>| s.map(str::to_owned);
        Address {
            formatted: o(self.formatted),
            street_address: o(self.street_address),
            locality: o(self.locality),
            region: o(self.region),
            postal_code: o(self.postal_code),
            country: o(self.country),
            kind: o(self.kind),
            primary: self.primary,
        }
    }
}

/// The stored entries of `u` (format 3): every attribute with a value, as `(tag, value)`.
pub(crate) fn entries(u: &User) -> Vec<(u8, DbField<'_>)> {
    let mut out = Vec::with_capacity(16);
    for (i, a) in ATTRS.iter().enumerate() {
        let v = match (a.get)(u) {
            Get::Text(None)
            | Get::Hash(None)
            | Get::Int(None)
            | Get::Langs([])
            | Get::Multi([])
            | Get::Addresses([]) => continue,
            Get::Text(Some(s)) => DbField::Text(s),
            Get::Hash(Some(h)) => DbField::Text(h.expose()),
            Get::Flag(b) => DbField::Flag(b),
            Get::Int(Some(x)) => DbField::Int(x),
            Get::Version(x) => DbField::Version(x),
            Get::Langs(l) => DbField::Strings(l.iter().map(String::as_str).collect()),
            Get::Set(l) if l.is_empty() => continue,
            Get::Set(l) => DbField::Strings(l.iter().map(String::as_str).collect()),
            Get::Multi(l) => DbField::Multi(l.iter().map(DbMulti::of).collect()),
            Get::Addresses(l) => DbField::Addresses(l.iter().map(DbAddress::of).collect()),
            Get::Data(d) if d.is_empty() => continue,
            Get::Data(d) => DbField::Data(d.iter().map(|(k, v)| (k.as_str(), v.into())).collect()),
        };
        // At most 64 attributes (checked at compile time in `model`).
        out.push((u8::try_from(i).unwrap_or(u8::MAX), v));
    }
    out
}

/// Which attributes a [`RecordView`] reads: a bit set of positions in the
/// [attribute table](crate::model). The attributes before the last one needed are stepped
/// over (strings without their UTF-8 check, custom data without allocating); those after it
/// are not looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Need(u64);

impl Need {
    /// Every attribute.
    pub(crate) const ALL: Need = Need(if N_ATTRS >= 64 {
        u64::MAX
    } else {
        (1 << N_ATTRS) - 1
    });

    /// Also needs attribute `i` (a position in the table).
    #[must_use]
    pub(crate) fn with(self, i: usize) -> Need {
        let bit = u32::try_from(i)
            .ok()
            .and_then(|i| 1u64.checked_shl(i))
            .unwrap_or(0);
        Need((self.0 | bit) & Need::ALL.0)
    }

    /// Both needs.
    #[must_use]
    pub(crate) fn union(self, o: Need) -> Need {
        Need(self.0 | o.0)
    }

    /// Whether attribute `i` is needed.
    pub(crate) fn has(self, i: usize) -> bool {
        u32::try_from(i)
            .ok()
            .and_then(|i| self.0.checked_shr(i))
            .is_some_and(|b| b & 1 != 0)
    }

    /// How many leading attributes must be decoded (up to the last one needed).
    pub(crate) fn fields(self) -> usize {
        (u64::BITS - self.0.leading_zeros()) as usize
    }

    /// A need from its bit set (tests).
    #[cfg(test)]
    pub(crate) fn from_bits(bits: u64) -> Need {
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
    /// Appends `s`.
    pub(crate) fn push(&mut self, s: &'a str) {
        match self {
            StrList::Few(n, a) => match a.get_mut(*n) {
                Some(slot) => {
                    *slot = s;
                    *n += 1;
                }
                None => {
                    let mut v = a.to_vec();
                    v.push(s);
                    *self = StrList::Many(v);
                }
            },
            StrList::Many(v) => v.push(s),
        }
    }

    pub(crate) fn as_slice(&self) -> &[&'a str] {
        match self {
            StrList::Few(n, a) => a.get(..*n).unwrap_or(&[]),
            StrList::Many(v) => v,
        }
    }

    /// Sorted and without duplicates, as the set it was stored from. A damaged record might
    /// hold the strings out of order, which decoding into a `BTreeSet` would repair.
    pub(crate) fn into_set(self) -> StrList<'a> {
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

/// One attribute of a record read in place (see [`RecordView`]).
#[derive(Clone, Debug, Default)]
pub(crate) enum Val<'a> {
    /// Not read, or not stored (no value).
    #[default]
    Absent,
    Text(&'a str),
    Flag(bool),
    Int(i64),
    Version(u64),
    Strings(StrList<'a>),
    Multi(Vec<DbMulti<'a>>),
    Addresses(Vec<DbAddress<'a>>),
    Data(MapRef<'a>),
}

/// A user record read in place: strings borrow from the encoded bytes. One slot per
/// attribute of the [table](crate::model); only the attributes a [`Need`] names are read,
/// the others stay [`Val::Absent`].
#[derive(Clone, Debug)]
pub(crate) struct RecordView<'a> {
    pub id: Uuid,
    pub vals: [Val<'a>; N_ATTRS],
}

impl Default for RecordView<'_> {
    fn default() -> Self {
        RecordView {
            id: Uuid::nil(),
            vals: std::array::from_fn(|_| Val::Absent),
        }
    }
}

impl<'a> RecordView<'a> {
    /// The value of attribute `i`.
    pub(crate) fn get(&self, i: usize) -> &Val<'a> {
        self.vals.get(i).unwrap_or(&Val::Absent)
    }

    fn set(&mut self, i: usize, v: Val<'a>) {
        if let Some(slot) = self.vals.get_mut(i) {
            *slot = v;
        }
    }

    /// The user this view (of every attribute) describes (the reference decoder's last step).
    #[cfg(any(test, feature = "__test-hooks"))]
    pub(crate) fn to_user(&self) -> User {
        use crate::model::Slot;
        let mut u = User::new(self.id, crate::user::Profile::default());
        u.active = false;
        for (a, v) in ATTRS.iter().zip(&self.vals) {
            match ((a.slot)(&mut u), v) {
                (Slot::Text(t), Val::Text(s)) => *t = Some((*s).to_owned()),
                (Slot::Hash(h), Val::Text(s)) => *h = Some(StoredHash::from_encoded(*s)),
                (Slot::Flag(f), Val::Flag(b)) => *f = *b,
                (Slot::OptInstant(x), Val::Int(i)) => *x = Some(*i),
                (Slot::Instant(x), Val::Int(i)) => *x = *i,
                (Slot::Version(x), Val::Version(i)) => *x = *i,
                (Slot::Langs(l), Val::Strings(s)) => {
                    *l = s.as_slice().iter().map(|x| (*x).to_owned()).collect();
                }
                (Slot::Set(l), Val::Strings(s)) => {
                    *l = s.as_slice().iter().map(|x| (*x).to_owned()).collect();
                }
                (Slot::Multi(l), Val::Multi(m)) => {
                    *l = m.iter().map(|x| x.to_owned_value()).collect();
                }
                (Slot::Addresses(l), Val::Addresses(m)) => {
                    *l = m.iter().map(|x| x.to_owned_value()).collect();
                }
                (Slot::Data(d), Val::Data(m)) => *d = m.to_owned_map(),
                // Absent, or a kind the decoder already refused.
                _ => {}
            }
        }
        u
    }
}

#[cfg(any(test, feature = "__test-hooks"))]
impl MapRef<'_> {
    fn to_owned_map(&self) -> BTreeMap<String, AttrValue> {
        self.0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_owned_value()))
            .collect()
    }
}

#[cfg(any(test, feature = "__test-hooks"))]
impl ValueRef<'_> {
    fn to_owned_value(&self) -> AttrValue {
        match self {
            ValueRef::Null => AttrValue::Null,
            ValueRef::Bool(b) => AttrValue::Bool(*b),
            ValueRef::Int(i) => AttrValue::Int(*i),
            ValueRef::Float(f) => AttrValue::Float(*f),
            ValueRef::Str(s) => AttrValue::String((*s).to_owned()),
            ValueRef::Array(a) => {
                AttrValue::Array(a.iter().map(ValueRef::to_owned_value).collect())
            }
            ValueRef::Object(m) => AttrValue::Object(m.to_owned_map()),
        }
    }
}

/// Decodes the fields of a format-1 record a [`Need`] names into a view (positions of the
/// attribute table); for files written by earlier versions, until their records are
/// rewritten.
pub(crate) struct ViewSeedV1<'v, 'a> {
    pub view: &'v mut RecordView<'a>,
    pub need: Need,
}

impl<'de> serde::de::DeserializeSeed<'de> for ViewSeedV1<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_tuple(V1_FIELDS, self)
    }
}

impl<'de> serde::de::Visitor<'de> for ViewSeedV1<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a user record")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use crate::model::at;
        let (v, need) = (self.view, self.need);
        let missing = |at: usize| A::Error::invalid_length(at, &"25 record fields");
        let mut i = 0usize;
        // Each format-1 field in order: read into attribute `$attr` as `$ty` and stored with
        // `$wrap`, or stepped over as `$skip`. All fields are walked (the format-1 order is
        // not the table's), which is fine for files awaiting their upgrade.
        macro_rules! field {
            ($attr:expr, $ty:ty, $skip:ty, $wrap:expr) => {{
                let want: Option<usize> = $attr;
                if want.is_some_and(|a| need.has(a)) {
                    let x: $ty = seq.next_element()?.ok_or_else(|| missing(i))?;
                    if let (Some(a), Some(val)) = (want, $wrap(x)) {
                        v.set(a, val);
                    }
                } else {
                    seq.next_element::<$skip>()?.ok_or_else(|| missing(i))?;
                }
                i += 1;
            }};
        }
        let text = |x: Option<&'de str>| x.map(Val::Text);
        let flag = |x: bool| Some(Val::Flag(x));
        let int = |x: i64| Some(Val::Int(x));
        let opt_int = |x: Option<i64>| x.map(Val::Int);
        let one = |kind: &'static str| {
            move |x: Option<&'de str>| {
                x.map(|value| {
                    Val::Multi(vec![DbMulti {
                        value,
                        kind: Some(kind),
                        primary: false,
                        display: None,
                    }])
                })
            }
        };
        let email_need = need.has(at::EMAIL) || need.has(at::EMAILS);
        // The email feeds both the login email and the `emails` list.
        if email_need {
            field!(
                Some(at::USERNAME),
                Option<&'de str>,
                Option<SkipBytes>,
                text
            );
            let e: Option<&'de str> = seq.next_element()?.ok_or_else(|| missing(1))?;
            if let Some(e) = e {
                if need.has(at::EMAIL) {
                    v.set(at::EMAIL, Val::Text(e));
                }
                if need.has(at::EMAILS) {
                    v.set(
                        at::EMAILS,
                        Val::Multi(vec![DbMulti {
                            value: e,
                            kind: Some("work"),
                            primary: true,
                            display: None,
                        }]),
                    );
                }
            }
            i += 1;
        } else {
            field!(
                Some(at::USERNAME),
                Option<&'de str>,
                Option<SkipBytes>,
                text
            );
            field!(None, Option<&'de str>, Option<SkipBytes>, text);
        }
        field!(
            Some(at::EXTERNAL_ID),
            Option<&'de str>,
            Option<SkipBytes>,
            text
        );
        field!(Some(at::ACTIVE), bool, bool, flag);
        field!(Some(4), bool, bool, flag);
        field!(Some(5), Option<&'de str>, Option<SkipBytes>, text);
        field!(Some(6), Option<&'de str>, Option<SkipBytes>, text);
        field!(Some(7), Option<&'de str>, Option<SkipBytes>, text);
        field!(
            Some(at::FULL_NAME),
            Option<&'de str>,
            Option<SkipBytes>,
            text
        );
        field!(Some(12), Option<&'de str>, Option<SkipBytes>, text);
        field!(
            Some(at::BIRTH_DATE),
            Option<&'de str>,
            Option<SkipBytes>,
            text
        );
        field!(
            Some(at::PHONE_NUMBERS),
            Option<&'de str>,
            Option<SkipBytes>,
            one("mobile")
        );
        field!(
            Some(at::PHOTOS),
            Option<&'de str>,
            Option<SkipBytes>,
            one("photo")
        );
        field!(Some(18), Option<&'de str>, Option<SkipBytes>, text);
        field!(Some(16), StrList<'de>, SkipStrings, |x: StrList<'de>| {
            (!x.as_slice().is_empty()).then_some(Val::Strings(x))
        });
        field!(Some(at::ROLES), StrList<'de>, SkipStrings, |x: StrList<
            'de,
        >| {
            (!x.as_slice().is_empty()).then(|| Val::Strings(x.into_set()))
        });
        field!(Some(at::DATA), MapRef<'de>, SkipMap, |x: MapRef<'de>| {
            (!x.0.is_empty()).then_some(Val::Data(x))
        });
        field!(
            Some(at::PASSWORD),
            Option<&'de str>,
            Option<SkipBytes>,
            text
        );
        field!(Some(34), bool, bool, flag);
        field!(Some(35), Option<i64>, Option<i64>, opt_int);
        field!(Some(at::CREATED), i64, i64, int);
        field!(Some(at::LAST_MODIFIED), i64, i64, int);
        field!(Some(at::LAST_LOGIN), Option<i64>, Option<i64>, opt_int);
        field!(Some(41), Option<i64>, Option<i64>, opt_int);
        field!(Some(at::VERSION), u64, u64, |x: u64| Some(Val::Version(x)));
        debug_assert_eq!(i, V1_FIELDS);
        Ok(())
    }
}
