//! The hand-written reader of record format 3 (the hot read path of lookups and scans).
//!
//! It reads exactly the bytes the writer ([`record::entries`] through bincode 2's serde adapter,
//! `standard()` config) produces, and refuses what the serde decoder it replaces refused
//! (kept as the reference under `cfg(test)` / feature `__test-hooks`; a proptest and the
//! `record_decode` fuzz target check that both agree on valid and damaged records). The
//! encoding, from bincode 2.0.1's source:
//!
//! - unsigned integers (lengths, `u64`, enum variant indices as `u32`) are varints: a byte
//!   below 251 is the value; 251, 252, 253 are followed by a little-endian `u16`, `u32`,
//!   `u64` (non-minimal forms are accepted; a `u32` refuses 253; 254 and 255 are refused);
//! - `i64` is the varint of its zigzag form; `f64` is 8 little-endian bytes;
//! - `u8` is one raw byte; `bool` and an `Option`'s tag are one byte, 0 or 1 (else an error);
//! - strings and lists are a length then their content; tuples and structs are their fields
//!   in order; an enum is its variant index then its content.
//!
//! A payload is the list of `(tag: u8, DbField)` entries, tags increasing. Lists are allocated
//! for no more elements than the bytes left could hold, and custom data deeper than
//! [`MAX_DATA_DEPTH`] is refused, so damaged input costs neither memory nor stack.
//!
//! [`record::entries`]: super::record::entries

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::record::{DbAddress, DbMulti, MapRef, Need, RecordView, StrList, Val, ValueRef};
use crate::model::{ATTRS, Attribute, Kind, N_ATTRS, Slot};
use crate::user::{AttrValue, MAX_DATA_DEPTH, Profile, StoredHash, User};

/// Why a payload does not decode (the caller adds which record).
pub(crate) type Fail = &'static str;
type R<T> = std::result::Result<T, Fail>;

const TRUNCATED: Fail = "truncated";
const TOO_DEEP: Fail = "custom data nested too deep";

/// The [`DbField`](super::record::DbField) variant an attribute of kind `k` is stored as.
pub(crate) fn variant_of(k: Kind) -> u32 {
    match k {
        Kind::Text | Kind::Hash => 0,
        Kind::Flag => 1,
        Kind::OptInstant | Kind::Instant => 2,
        Kind::Version => 3,
        Kind::Strings => 4,
        Kind::Multi => 5,
        Kind::Addresses => 6,
        Kind::Data => 7,
    }
}

/// A cursor over a payload.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn byte(&mut self) -> R<u8> {
        let (&b, rest) = self.0.split_first().ok_or(TRUNCATED)?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.0.len() {
            return Err(TRUNCATED);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| TRUNCATED)
    }

    /// A `u64` varint.
    fn varint(&mut self) -> R<u64> {
        match self.byte()? {
            b @ 0..=250 => Ok(u64::from(b)),
            251 => Ok(u64::from(u16::from_le_bytes(self.array()?))),
            252 => Ok(u64::from(u32::from_le_bytes(self.array()?))),
            253 => Ok(u64::from_le_bytes(self.array()?)),
            _ => Err("invalid integer encoding"),
        }
    }

    /// An enum's variant index (a `u32` varint).
    fn variant(&mut self) -> R<u32> {
        match self.byte()? {
            b @ 0..=250 => Ok(u32::from(b)),
            251 => Ok(u32::from(u16::from_le_bytes(self.array()?))),
            252 => Ok(u32::from_le_bytes(self.array()?)),
            _ => Err("invalid variant encoding"),
        }
    }

    /// A length; a list of it must fit in the bytes left when each element takes at least
    /// `min` bytes (so nothing is allocated for lengths the record cannot hold).
    fn len(&mut self, min: usize) -> R<usize> {
        let n = usize::try_from(self.varint()?).map_err(|_| TRUNCATED)?;
        if n.saturating_mul(min) > self.0.len() {
            return Err(TRUNCATED);
        }
        Ok(n)
    }

    fn i64(&mut self) -> R<i64> {
        let z = self.varint()?;
        let half = i64::from_le_bytes((z >> 1).to_le_bytes());
        Ok(if z & 1 == 0 { half } else { !half })
    }

    fn f64(&mut self) -> R<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn bool(&mut self) -> R<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("invalid boolean or option tag"),
        }
    }

    /// A string's bytes, not checked.
    fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }

    fn str(&mut self) -> R<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "invalid UTF-8")
    }

    fn opt_str(&mut self) -> R<Option<&'a str>> {
        if self.bool()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    fn skip_opt_str(&mut self) -> R<()> {
        if self.bool()? {
            self.bytes()?;
        }
        Ok(())
    }

    /// The next entry's tag (checked: known, not below `min`) and attribute (its kind
    /// checked against the stored variant).
    fn entry(&mut self, min: usize) -> R<(usize, &'static Attribute)> {
        let tag = usize::from(self.byte()?);
        let attr = ATTRS.get(tag).ok_or("unknown attribute tag")?;
        if tag < min {
            return Err("attribute tags out of order");
        }
        if self.variant()? != variant_of(attr.kind) {
            return Err("attribute stored as the wrong variant");
        }
        Ok((tag, attr))
    }

    fn multi(&mut self) -> R<DbMulti<'a>> {
        Ok(DbMulti {
            value: self.str()?,
            kind: self.opt_str()?,
            primary: self.bool()?,
            display: self.opt_str()?,
        })
    }

    fn address(&mut self) -> R<DbAddress<'a>> {
        Ok(DbAddress {
            formatted: self.opt_str()?,
            street_address: self.opt_str()?,
            locality: self.opt_str()?,
            region: self.opt_str()?,
            postal_code: self.opt_str()?,
            country: self.opt_str()?,
            kind: self.opt_str()?,
            primary: self.bool()?,
        })
    }

    /// A list of `len(min)` elements read by `f`.
    fn list<T>(&mut self, min: usize, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let n = self.len(min)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// Steps over `len(min)` elements with `f`.
    fn skip_list(&mut self, min: usize, mut f: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        for _ in 0..self.len(min)? {
            f(self)?;
        }
        Ok(())
    }

    /// A custom attribute value at nesting level `depth` (1 for the map's values).
    fn value(&mut self, depth: usize) -> R<AttrValue> {
        if depth > MAX_DATA_DEPTH {
            return Err(TOO_DEEP);
        }
        Ok(match self.variant()? {
            0 => AttrValue::Null,
            1 => AttrValue::Bool(self.bool()?),
            2 => AttrValue::Int(self.i64()?),
            3 => AttrValue::Float(self.f64()?),
            4 => AttrValue::String(self.str()?.to_owned()),
            5 => AttrValue::Array(self.list(1, |r| r.value(depth + 1))?),
            6 => AttrValue::Object(self.data(depth + 1)?),
            _ => return Err("unknown custom value variant"),
        })
    }

    /// A map of custom attributes whose values are at level `depth`; of a key stored twice
    /// (only in a damaged record), the last value wins.
    fn data(&mut self, depth: usize) -> R<BTreeMap<String, AttrValue>> {
        let mut out = BTreeMap::new();
        for _ in 0..self.len(2)? {
            let k = self.str()?.to_owned();
            let v = self.value(depth)?;
            out.insert(k, v);
        }
        Ok(out)
    }

    /// [`Self::value`] read in place.
    fn value_ref(&mut self, depth: usize) -> R<ValueRef<'a>> {
        if depth > MAX_DATA_DEPTH {
            return Err(TOO_DEEP);
        }
        Ok(match self.variant()? {
            0 => ValueRef::Null,
            1 => ValueRef::Bool(self.bool()?),
            2 => ValueRef::Int(self.i64()?),
            3 => ValueRef::Float(self.f64()?),
            4 => ValueRef::Str(self.str()?),
            5 => ValueRef::Array(self.list(1, |r| r.value_ref(depth + 1))?),
            6 => ValueRef::Object(self.data_ref(depth + 1)?),
            _ => return Err("unknown custom value variant"),
        })
    }

    /// [`Self::data`] read in place (in key order, as stored).
    fn data_ref(&mut self, depth: usize) -> R<MapRef<'a>> {
        let mut out = self.list(2, |r| Ok((r.str()?, r.value_ref(depth)?)))?;
        if !out.is_sorted_by(|a, b| a.0 < b.0) {
            // Damaged: sort, the last value of a key winning.
            out.reverse();
            out.sort_by(|a, b| a.0.cmp(b.0));
            out.dedup_by(|later, kept| later.0 == kept.0);
        }
        Ok(MapRef(out))
    }

    /// Steps over a custom attribute value, checking it as [`Self::value`] does (without
    /// allocating).
    fn skip_value(&mut self, depth: usize) -> R<()> {
        if depth > MAX_DATA_DEPTH {
            return Err(TOO_DEEP);
        }
        match self.variant()? {
            0 => {}
            1 => {
                self.bool()?;
            }
            2 => {
                self.varint()?;
            }
            3 => {
                self.f64()?;
            }
            4 => {
                self.str()?;
            }
            5 => self.skip_list(1, |r| r.skip_value(depth + 1))?,
            6 => self.skip_data(depth + 1)?,
            _ => return Err("unknown custom value variant"),
        }
        Ok(())
    }

    fn skip_data(&mut self, depth: usize) -> R<()> {
        self.skip_list(2, |r| {
            r.str()?;
            r.skip_value(depth)
        })
    }

    /// Reads an attribute's value into its slot of a user.
    fn fill(&mut self, slot: Slot<'_>) -> R<()> {
        match slot {
            Slot::Text(t) => *t = Some(self.str()?.to_owned()),
            Slot::Hash(h) => *h = Some(StoredHash::from_encoded(self.str()?)),
            Slot::Flag(f) => *f = self.bool()?,
            Slot::OptInstant(x) => *x = Some(self.i64()?),
            Slot::Instant(x) => *x = self.i64()?,
            Slot::Version(x) => *x = self.varint()?,
            Slot::Langs(l) => *l = self.list(1, |r| r.str().map(str::to_owned))?,
            Slot::Set(s) => {
                *s = BTreeSet::new();
                for _ in 0..self.len(1)? {
                    s.insert(self.str()?.to_owned());
                }
            }
            Slot::Multi(l) => *l = self.list(4, |r| r.multi().map(DbMulti::to_owned_value))?,
            Slot::Addresses(l) => {
                *l = self.list(8, |r| r.address().map(DbAddress::to_owned_value))?;
            }
            Slot::Data(d) => *d = self.data(1)?,
        }
        Ok(())
    }

    /// Reads a value of attribute kind `kind` in place; `set`: sorted and deduplicated.
    fn val(&mut self, kind: Kind, set: bool) -> R<Val<'a>> {
        Ok(match kind {
            Kind::Text | Kind::Hash => Val::Text(self.str()?),
            Kind::Flag => Val::Flag(self.bool()?),
            Kind::OptInstant | Kind::Instant => Val::Int(self.i64()?),
            Kind::Version => Val::Version(self.varint()?),
            Kind::Strings => {
                let mut l = StrList::default();
                for _ in 0..self.len(1)? {
                    l.push(self.str()?);
                }
                Val::Strings(if set { l.into_set() } else { l })
            }
            Kind::Multi => Val::Multi(self.list(4, Self::multi)?),
            Kind::Addresses => Val::Addresses(self.list(8, Self::address)?),
            Kind::Data => Val::Data(self.data_ref(1)?),
        })
    }

    /// Steps over a value of attribute kind `kind`, checking its framing (strings' lengths
    /// and booleans; not their UTF-8, except in custom data).
    fn skip(&mut self, kind: Kind) -> R<()> {
        match kind {
            Kind::Text | Kind::Hash => {
                self.bytes()?;
            }
            Kind::Flag => {
                self.bool()?;
            }
            Kind::OptInstant | Kind::Instant | Kind::Version => {
                self.varint()?;
            }
            Kind::Strings => self.skip_list(1, |r| r.bytes().map(drop))?,
            Kind::Multi => self.skip_list(4, |r| {
                r.bytes()?;
                r.skip_opt_str()?;
                r.bool()?;
                r.skip_opt_str()
            })?,
            Kind::Addresses => self.skip_list(8, |r| {
                for _ in 0..7 {
                    r.skip_opt_str()?;
                }
                r.bool().map(drop)
            })?,
            Kind::Data => self.skip_data(1)?,
        }
        Ok(())
    }
}

/// Decodes a format-3 payload (after the checksum) into the user it stores: every entry is
/// checked, and no byte may follow the last one.
pub(crate) fn user(id: Uuid, payload: &[u8]) -> R<User> {
    let mut u = User::new(id, Profile::default());
    u.active = false;
    let mut r = Rd(payload);
    let mut next = 0;
    for _ in 0..r.len(0)? {
        // The last attribute read: what follows is trailing bytes.
        if next >= N_ATTRS {
            break;
        }
        let (tag, attr) = r.entry(next)?;
        r.fill((attr.slot)(&mut u))?;
        next = tag + 1;
    }
    if !r.0.is_empty() {
        return Err("trailing bytes");
    }
    Ok(u)
}

/// Reads the attributes of a format-3 payload that `need` names into `out` (see
/// [`view_into`](super::codec::view_into)): attributes before the last one needed are stepped
/// over, those after it are not looked at; with [`Need::ALL`], no byte may follow the last
/// entry.
pub(crate) fn view<'a>(payload: &'a [u8], need: Need, out: &mut RecordView<'a>) -> R<()> {
    let mut r = Rd(payload);
    let last = need.fields();
    let mut next = 0;
    for _ in 0..r.len(0)? {
        if next >= last {
            break;
        }
        let (tag, attr) = r.entry(next)?;
        if need.has(tag) {
            let v = r.val(attr.kind, tag == crate::model::at::ROLES)?;
            if let Some(slot) = out.vals.get_mut(tag) {
                *slot = v;
            }
        } else {
            r.skip(attr.kind)?;
        }
        next = tag + 1;
    }
    if need == Need::ALL && !r.0.is_empty() {
        return Err("trailing bytes");
    }
    Ok(())
}
