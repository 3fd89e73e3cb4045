//! The record codec: one function pair, a leading format-version byte, then bincode 2.
//!
//! bincode stays inside this file so the format can move later: a new version byte can decode
//! old records and write new ones.
//!
//! # Formats
//!
//! - Version 1: `1 | payload` (the bincode of [`DbUserV1`]). Still read; never written.
//! - Version 2: the checksummed envelope ([`seal`] / [`unseal`]) around the same payload:
//!   `2 | payload | CRC-32(2 | payload)` (IEEE CRC-32, little-endian). Every read of a record
//!   checks its checksum, so damage to a record's bytes is an error ([`Error::Corrupt`]),
//!   never a user with other data; `check_integrity` reports it. A write re-encodes the record
//!   in the current version, so version 1 records are upgraded as they are written.
//!
//! The envelope is independent of the payload: a later version (a new payload) reuses
//! [`seal`] and [`unseal`] with its own version byte.

use uuid::Uuid;

use super::record::{DbUserV1, Need, RecordView, ViewSeed};
use crate::error::{Error, Result};
use crate::user::User;

/// The first record format: the payload without a checksum (read only).
pub(crate) const RECORD_V1: u8 = 1;
/// The record format written by this version: the checksummed envelope around the v1 payload.
pub(crate) const RECORD_V2: u8 = 2;

/// The checksum's size at the end of an envelope.
const SEAL_LEN: usize = 4;

/// Builds a record in the checksummed envelope: `version`, then what `payload` appends, then
/// the CRC-32 of both.
pub(crate) fn seal(
    version: u8,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(160);
    out.push(version);
    payload(&mut out)?;
    let sum = crc32fast::hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Opens a record in the checksummed envelope (`bytes` starts with its version byte): the
/// payload, or [`Error::Corrupt`] when the checksum does not match (the record of user `id`
/// was damaged).
pub(crate) fn unseal(id: Uuid, bytes: &[u8]) -> Result<&[u8]> {
    let damaged = || {
        Error::Corrupt(format!(
            "record of user {id} is damaged (checksum mismatch)"
        ))
    };
    let split = bytes.len().checked_sub(SEAL_LEN).ok_or_else(damaged)?;
    let (sealed, sum) = bytes.split_at(split);
    let sum = <[u8; SEAL_LEN]>::try_from(sum).map_err(|_| damaged())?;
    if sealed.is_empty() || crc32fast::hash(sealed) != u32::from_le_bytes(sum) {
        return Err(damaged());
    }
    Ok(sealed.get(1..).unwrap_or_default())
}

/// The payload of a record of a known version (the bytes after the version byte, checked when
/// the version has a checksum).
fn payload(id: Uuid, bytes: &[u8]) -> Result<&[u8]> {
    match bytes.first() {
        None => Err(Error::Corrupt(format!("empty record for user {id}"))),
        Some(&RECORD_V1) => Ok(bytes.get(1..).unwrap_or_default()),
        Some(&RECORD_V2) => unseal(id, bytes),
        Some(v) => Err(Error::Corrupt(format!(
            "record of user {id} has unknown format version {v}"
        ))),
    }
}

/// Largest record accepted by the decoder (bounds allocations on damaged input).
const MAX_RECORD_BYTES: usize = 1 << 24;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes a user record (the id is the key and is not repeated).
pub(crate) fn encode(user: &User) -> Result<Vec<u8>> {
    seal(RECORD_V2, |out| {
        bincode::serde::encode_into_std_write(DbUserV1::from(user), out, config())
            .map(|_| ())
            .map_err(|e| Error::Corrupt(format!("record encoding failed: {e}")))
    })
}

/// Encodes a user record in the first format (no checksum), for tests of old files.
#[cfg(test)]
pub(crate) fn encode_v1(user: &User) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_V1];
    bincode::serde::encode_into_std_write(DbUserV1::from(user), &mut out, config())
        .map_err(|e| Error::Corrupt(format!("record encoding failed: {e}")))?;
    Ok(out)
}

/// Decodes a record; any damage is an error, never a panic.
pub(crate) fn decode(id: Uuid, bytes: &[u8]) -> Result<User> {
    let body = payload(id, bytes)?;
    let (rec, used): (DbUserV1, usize) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| Error::Corrupt(format!("record of user {id} does not decode: {e}")))?;
    if used != body.len() {
        return Err(Error::Corrupt(format!(
            "record of user {id} has trailing bytes"
        )));
    }
    Ok(rec.into_user(id))
}

/// Decodes arbitrary bytes as a record; for the fuzz target and its seed tests. Not part of the
/// API (feature `__test-hooks`).
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) -> Result<User> {
    decode(Uuid::nil(), bytes)
}

/// A view of the fields `need` names (see [`view_into`]); for tests.
#[cfg(test)]
pub(crate) fn view(id: Uuid, bytes: &[u8], need: Need) -> Result<RecordView<'_>> {
    let mut v = RecordView::default();
    view_into(id, bytes, need, &mut v)?;
    Ok(v)
}

/// Reads the fields of a record that `need` names into `out`, in place (strings borrow from
/// `bytes`); for search, which evaluates filters and sort keys on every candidate. `out`
/// should be a default view: fields not needed are left as they are.
///
/// Damage in the fields read is an error, as with [`decode`]. With [`Need::ALL`] the whole
/// record is checked (trailing bytes included); otherwise the fields after the last one
/// needed are not looked at, and those stepped over before it are only checked for their
/// framing (a string's length, not its UTF-8).
pub(crate) fn view_into<'a>(
    id: Uuid,
    bytes: &'a [u8],
    need: Need,
    out: &mut RecordView<'a>,
) -> Result<()> {
    out.id = id;
    let body = payload(id, bytes)?;
    let ((), used) =
        bincode::serde::seed_decode_from_slice(ViewSeed { view: out, need }, body, config())
            .map_err(|e| Error::Corrupt(format!("record of user {id} does not decode: {e}")))?;
    if need == Need::ALL && used != body.len() {
        return Err(Error::Corrupt(format!(
            "record of user {id} has trailing bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::collection::{btree_map, btree_set, vec};
    use proptest::prelude::*;

    use super::{decode, encode, encode_v1, view};
    use crate::store::record::{MapRef, Need, RecordView, ValueRef, field};
    use crate::user::{AttrValue, StoredHash, User};
    use uuid::Uuid;

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-zA-Z0-9 éß]{0,10}")
    }

    fn attr() -> impl Strategy<Value = AttrValue> {
        let leaf = prop_oneof![
            Just(AttrValue::Null),
            any::<bool>().prop_map(AttrValue::Bool),
            any::<i64>().prop_map(AttrValue::Int),
            any::<f64>().prop_map(AttrValue::Float),
            "[a-z]{0,6}".prop_map(AttrValue::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(AttrValue::Array),
                btree_map("[a-c]{1,2}", inner, 0..4).prop_map(AttrValue::Object),
            ]
        })
    }

    prop_compose! {
        fn user()(
            id in any::<u128>(),
            (username, email, external_id, first_name, middle_name, last_name) in
                (text(), text(), text(), text(), text(), text()),
            (full_name, nick_name, birth_date, mobile_phone, image_url, timezone) in
                (text(), text(), text(), text(), text(), text()),
            (active, verified, password_change_required) in (any::<bool>(), any::<bool>(), any::<bool>()),
            preferred_languages in vec("[a-z]{2}", 0..6),
            roles in btree_set("[a-z]{1,5}", 0..6),
            data in btree_map("[a-d]{1,3}", attr(), 0..4),
            password in text(),
            (expiry, last_login_instant, password_last_update_instant) in
                (any::<Option<i64>>(), any::<Option<i64>>(), any::<Option<i64>>()),
            (insert_instant, last_update_instant, version) in (any::<i64>(), any::<i64>(), any::<u64>()),
        ) -> User {
            User {
                id: Uuid::from_u128(id),
                username, email, external_id, active, verified, first_name, middle_name,
                last_name, full_name, nick_name, birth_date, mobile_phone, image_url, timezone,
                preferred_languages,
                roles,
                data,
                password: password.map(StoredHash::from_encoded),
                password_change_required,
                expiry, insert_instant, last_update_instant, last_login_instant,
                password_last_update_instant, version,
            }
        }
    }

    fn same_value(a: &AttrValue, b: &ValueRef<'_>) -> bool {
        match (a, b) {
            (AttrValue::Null, ValueRef::Null) => true,
            (AttrValue::Bool(x), ValueRef::Bool(y)) => x == y,
            (AttrValue::Int(x), ValueRef::Int(y)) => x == y,
            (AttrValue::Float(x), ValueRef::Float(y)) => x.to_bits() == y.to_bits(),
            (AttrValue::String(x), ValueRef::Str(y)) => x == y,
            (AttrValue::Array(x), ValueRef::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
            }
            (AttrValue::Object(x), ValueRef::Object(y)) => same_map(x, y),
            _ => false,
        }
    }

    fn same_map(a: &BTreeMap<String, AttrValue>, b: &MapRef<'_>) -> bool {
        a.len() == b.0.len()
            && a.iter()
                .zip(&b.0)
                .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
    }

    /// Compares the fields a view read (`need`) with the decoded user; the others must have
    /// kept their defaults.
    fn check(u: &User, v: &RecordView<'_>, need: Need) -> Result<(), TestCaseError> {
        let d = RecordView::default();
        macro_rules! text {
            ($($f:ident = $i:expr),*) => {$(
                if need.has($i) {
                    prop_assert_eq!(u.$f.as_deref(), v.$f, "{}", stringify!($f));
                } else {
                    prop_assert_eq!(d.$f, v.$f, "{}", stringify!($f));
                }
            )*};
        }
        macro_rules! plain {
            ($($f:ident = $i:expr),*) => {$(
                if need.has($i) {
                    prop_assert_eq!(u.$f, v.$f, "{}", stringify!($f));
                } else {
                    prop_assert_eq!(d.$f, v.$f, "{}", stringify!($f));
                }
            )*};
        }
        prop_assert_eq!(u.id, v.id);
        text!(
            username = field::USERNAME,
            email = field::EMAIL,
            external_id = field::EXTERNAL_ID,
            first_name = field::FIRST_NAME,
            middle_name = field::MIDDLE_NAME,
            last_name = field::LAST_NAME,
            full_name = field::FULL_NAME,
            nick_name = field::NICK_NAME,
            birth_date = field::BIRTH_DATE,
            mobile_phone = field::MOBILE_PHONE,
            image_url = field::IMAGE_URL,
            timezone = field::TIMEZONE
        );
        plain!(
            active = field::ACTIVE,
            verified = field::VERIFIED,
            password_change_required = field::PASSWORD_CHANGE_REQUIRED,
            expiry = field::EXPIRY,
            insert_instant = field::INSERT_INSTANT,
            last_update_instant = field::LAST_UPDATE_INSTANT,
            last_login_instant = field::LAST_LOGIN_INSTANT,
            password_last_update_instant = field::PASSWORD_LAST_UPDATE_INSTANT,
            version = field::VERSION
        );
        let langs: Vec<&str> = u.preferred_languages.iter().map(String::as_str).collect();
        let roles: Vec<&str> = u.roles.iter().map(String::as_str).collect();
        let empty: &[&str] = &[];
        prop_assert_eq!(
            v.preferred_languages.as_slice(),
            if need.has(field::PREFERRED_LANGUAGES) {
                langs.as_slice()
            } else {
                empty
            }
        );
        prop_assert_eq!(
            v.roles.as_slice(),
            if need.has(field::ROLES) {
                roles.as_slice()
            } else {
                empty
            }
        );
        if need.has(field::DATA) {
            prop_assert!(same_map(&u.data, &v.data), "data");
        } else {
            prop_assert!(v.data.0.is_empty(), "data not read");
        }
        let password = u.password.as_ref().map(StoredHash::expose);
        prop_assert_eq!(
            if need.has(field::PASSWORD) {
                password
            } else {
                None
            },
            v.password
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A view of every field agrees with the full decode; so does every prefix view on
        /// the fields it reads, with or without custom data.
        #[test]
        fn views_agree_with_the_full_decode(u in user(), bits: u32) {
            let bytes = encode(&u).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded = decode(u.id, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let same_floats = |a: &User, b: &User| format!("{a:?}") == format!("{b:?}");
            prop_assert!(same_floats(&decoded, &u));
            let all = view(u.id, &bytes, Need::ALL).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check(&u, &all, Need::ALL)?;
            let need = Need::from_bits(bits);
            let part = view(u.id, &bytes, need).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check(&u, &part, need)?;
        }

        /// Damaged records: a view of every field fails exactly when the full decode does,
        /// and agrees with it when both succeed; prefix views never panic.
        #[test]
        fn damaged_records_fail_alike(u in user(), flips in vec((any::<usize>(), any::<u8>()), 1..4), bits: u32, len in any::<usize>()) {
            let mut bytes = encode(&u).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (at, x) in flips {
                let i = at % bytes.len();
                bytes[i] ^= x;
            }
            if len % 4 == 0 {
                bytes.truncate(len % (bytes.len() + 1));
            }
            let full = decode(u.id, &bytes);
            let all = view(u.id, &bytes, Need::ALL);
            prop_assert_eq!(full.is_ok(), all.is_ok(), "{:?} / {:?}", full.as_ref().err(), all.as_ref().err());
            if let (Ok(full), Ok(all)) = (&full, &all) {
                check(full, all, Need::ALL)?;
            }
            let _ = view(u.id, &bytes, Need::from_bits(bits));
        }
    }

    #[test]
    fn views_check_the_version_byte_and_trailing_bytes() {
        let u = User {
            id: Uuid::nil(),
            username: Some("ann".into()),
            email: None,
            external_id: None,
            active: true,
            verified: false,
            first_name: None,
            middle_name: None,
            last_name: Some("Smithson".into()),
            full_name: None,
            nick_name: None,
            birth_date: None,
            mobile_phone: None,
            image_url: None,
            timezone: None,
            preferred_languages: Vec::new(),
            roles: BTreeSet::new(),
            data: BTreeMap::new(),
            password: None,
            password_change_required: false,
            expiry: None,
            insert_instant: 1,
            last_update_instant: 2,
            last_login_instant: None,
            password_last_update_instant: None,
            version: 3,
        };
        let bytes = encode_v1(&u).unwrap();
        let need = Need::default().with(field::LAST_NAME);
        assert_eq!(
            view(u.id, &bytes, need).unwrap().last_name,
            Some("Smithson")
        );
        // Version 1 records still read, and decode as the same user as version 2.
        assert_eq!(
            format!("{:?}", decode(u.id, &bytes).unwrap()),
            format!("{:?}", decode(u.id, &encode(&u).unwrap()).unwrap())
        );
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(view(u.id, &other, need).is_err());
        assert!(view(u.id, &[], need).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(u.id, &longer).is_err());
        assert!(view(u.id, &longer, Need::ALL).is_err());
        // A prefix view of a version 1 record does not look past the fields it reads.
        assert!(view(u.id, &longer, need).is_ok());
        // Version 2: any change anywhere is seen by every read (the checksum).
        let sealed = encode(&u).unwrap();
        assert_eq!(sealed[0], 2);
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut d = sealed.clone();
                d[i] ^= bit;
                assert!(decode(u.id, &d).is_err(), "byte {i}");
                assert!(view(u.id, &d, need).is_err(), "byte {i}");
            }
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(view(u.id, &longer, need).is_err());
        assert!(view(u.id, &sealed[..sealed.len() - 1], need).is_err());
        // Custom data nested deeper than the bound is refused, read or skipped.
        let mut deep = AttrValue::Null;
        for _ in 0..(crate::user::MAX_DATA_DEPTH + 2) {
            deep = AttrValue::Array(vec![deep]);
        }
        let mut d = u.clone();
        d.data.insert("k".into(), deep);
        let bytes = encode(&d).unwrap();
        assert!(decode(d.id, &bytes).is_err());
        assert!(view(d.id, &bytes, Need::ALL).is_err());
        let skip = Need::default().with(field::VERSION);
        assert!(!skip.has(field::DATA));
        assert!(view(d.id, &bytes, skip).is_err());
        assert!(view(d.id, &bytes, need).is_ok());
    }
}
