//! The record codec: one function pair, a leading format-version byte, then bincode 2.
//!
//! bincode stays inside this file so the format can move later: a new version byte can decode
//! old records and write new ones.
//!
//! # Formats
//!
//! - Version 1: `1 | payload` (the bincode of [`DbUserV1`], the FusionAuth-shaped record).
//!   Still read; never written.
//! - Version 2: the checksummed envelope ([`seal`] / [`unseal`]) around the same payload:
//!   `2 | payload | CRC-32(2 | payload)` (IEEE CRC-32, little-endian). Still read.
//! - Version 3 (written): the same envelope around the SCIM-shaped payload: the attribute
//!   entries of the [attribute table](crate::model) (see [`record`](super::record)).
//!
//! Every read of a sealed record checks its checksum, so damage to a record's bytes is an
//! error ([`Error::Corrupt`]), never a user with other data. A write re-encodes the record in
//! the current version, so older records are upgraded as they are written.

use uuid::Uuid;

use super::reader;
use super::record::{DbUserV1, Need, RecordView, ViewSeedV1, entries};
use crate::error::{Error, Result};
use crate::user::User;

/// The first record format: the FusionAuth-shaped payload without a checksum (read only).
pub(crate) const RECORD_V1: u8 = 1;
/// The checksummed envelope around the version 1 payload (read only).
pub(crate) const RECORD_V2: u8 = 2;
/// The record format written by this version: the checksummed envelope around the
/// SCIM-shaped attribute entries.
pub(crate) const RECORD_V3: u8 = 3;

/// The checksum's size at the end of an envelope.
const SEAL_LEN: usize = 4;

/// Largest record accepted by the decoder (bounds allocations on damaged input).
const MAX_RECORD_BYTES: usize = 1 << 24;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// CRC-32 (IEEE 802.3, as zlib's).
fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Builds a record in the checksummed envelope: `version`, then what `payload` appends, then
/// the CRC-32 of both.
pub(crate) fn seal(
    version: u8,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(192);
    out.push(version);
    payload(&mut out)?;
    let sum = crc32(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Opens a record in the checksummed envelope (`bytes` starts with its version byte): the
/// payload, or [`Error::Corrupt`] when the checksum does not match.
pub(crate) fn unseal(id: Uuid, bytes: &[u8]) -> Result<&[u8]> {
    let damaged = || {
        Error::Corrupt(format!(
            "record of user {id} is damaged (checksum mismatch)"
        ))
    };
    let split = bytes.len().checked_sub(SEAL_LEN).ok_or_else(damaged)?;
    let (sealed, sum) = bytes.split_at(split);
    let sum = <[u8; SEAL_LEN]>::try_from(sum).map_err(|_| damaged())?;
    if sealed.is_empty() || crc32(sealed) != u32::from_le_bytes(sum) {
        return Err(damaged());
    }
    Ok(sealed.get(1..).unwrap_or_default())
}

/// The version and payload of a record (the bytes after the version byte, checked when the
/// version has a checksum).
fn payload(id: Uuid, bytes: &[u8]) -> Result<(u8, &[u8])> {
    match bytes.first() {
        None => Err(Error::Corrupt(format!("empty record for user {id}"))),
        Some(&RECORD_V1) => Ok((RECORD_V1, bytes.get(1..).unwrap_or_default())),
        Some(&v @ (RECORD_V2 | RECORD_V3)) => Ok((v, unseal(id, bytes)?)),
        Some(v) => Err(Error::Corrupt(format!(
            "record of user {id} has unknown format version {v}"
        ))),
    }
}

/// Encodes a user record (the id is the key and is not repeated).
pub(crate) fn encode(user: &User) -> Result<Vec<u8>> {
    seal(RECORD_V3, |out| {
        bincode::serde::encode_into_std_write(entries(user), out, config())
            .map(|_| ())
            .map_err(|e| Error::Corrupt(format!("record encoding failed: {e}")))
    })
}

fn damaged(id: Uuid, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("record of user {id} does not decode: {e}"))
}

/// Decodes a record; any damage is an error, never a panic. Format 3 goes through the
/// hand-written [`reader`].
pub(crate) fn decode(id: Uuid, bytes: &[u8]) -> Result<User> {
    let (version, body) = payload(id, bytes)?;
    if version == RECORD_V3 {
        return reader::user(id, body).map_err(|e| damaged(id, e));
    }
    decode_v1(id, body)
}

/// Decodes the payload of a format-1 or format-2 record.
fn decode_v1(id: Uuid, body: &[u8]) -> Result<User> {
    let (rec, used): (DbUserV1, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| damaged(id, e))?;
    if used != body.len() {
        return Err(Error::Corrupt(format!(
            "record of user {id} has trailing bytes"
        )));
    }
    Ok(rec.into_user(id))
}

/// [`decode`] through the serde decoder that the [`reader`] replaced (the reference it is
/// checked against).
#[cfg(any(test, feature = "__test-hooks"))]
pub(crate) fn decode_reference(id: Uuid, bytes: &[u8]) -> Result<User> {
    let (version, body) = payload(id, bytes)?;
    if version != RECORD_V3 {
        return decode_v1(id, body);
    }
    let mut v = RecordView::default();
    view_into_reference(id, bytes, Need::ALL, &mut v)?;
    Ok(v.to_user())
}

/// The part of a record's bytes where the attributes `need` names are stored (see
/// [`reader::span`]); the whole record for older formats or when it does not parse. Not
/// checksummed: for prefilters, which only ever skip records that cannot match.
pub(crate) fn need_span(bytes: &[u8], need: Need) -> &[u8] {
    if bytes.first() == Some(&RECORD_V3)
        && let Some(body) = bytes.get(1..bytes.len().saturating_sub(SEAL_LEN))
        && let Some(span) = reader::span(body, need)
    {
        return span;
    }
    bytes
}

/// [`view_into`] through the serde decoder (the reference).
#[cfg(any(test, feature = "__test-hooks"))]
pub(crate) fn view_into_reference<'a>(
    id: Uuid,
    bytes: &'a [u8],
    need: Need,
    out: &mut RecordView<'a>,
) -> Result<()> {
    use super::record::reference::ViewSeed;
    out.id = id;
    let (version, body) = payload(id, bytes)?;
    if version != RECORD_V3 {
        return view_into(id, bytes, need, out);
    }
    serde_view(id, body, need, ViewSeed { view: out, need })
}

/// Decodes arbitrary bytes as a record; for the fuzz target and its seed tests. Not part of the
/// API (feature `__test-hooks`).
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) -> Result<User> {
    decode(Uuid::nil(), bytes)
}

/// [`fuzz_decode`] through the serde reference decoder, which the fuzz target compares with.
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub fn fuzz_decode_reference(bytes: &[u8]) -> Result<User> {
    decode_reference(Uuid::nil(), bytes)
}

/// `payload` in the checksummed envelope of format `version` (so that fuzzed payloads reach
/// the decoders instead of failing the checksum).
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
#[must_use]
pub fn fuzz_seal(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1 + SEAL_LEN);
    out.push(version);
    out.extend_from_slice(payload);
    let sum = crc32(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A view of the attributes `need` names (see [`view_into`]); for tests.
#[cfg(test)]
pub(crate) fn view(id: Uuid, bytes: &[u8], need: Need) -> Result<RecordView<'_>> {
    let mut v = RecordView::default();
    view_into(id, bytes, need, &mut v)?;
    Ok(v)
}

/// Reads the attributes of a record that `need` names into `out`, in place (strings borrow
/// from `bytes`); for search, which evaluates filters and sort keys on every candidate.
/// `out` should be a default view: attributes not needed are left as they are.
///
/// Damage in the attributes read is an error, as with [`decode`]; the checksum covers the
/// whole payload. With [`Need::ALL`] the whole record is checked (trailing bytes included);
/// otherwise the attributes after the last one needed are not looked at, and those stepped
/// over before it are only checked for their framing (a string's length, not its UTF-8).
pub(crate) fn view_into<'a>(
    id: Uuid,
    bytes: &'a [u8],
    need: Need,
    out: &mut RecordView<'a>,
) -> Result<()> {
    out.id = id;
    let (version, body) = payload(id, bytes)?;
    if version == RECORD_V3 {
        return reader::view(body, need, out).map_err(|e| damaged(id, e));
    }
    serde_view(id, body, need, ViewSeedV1 { view: out, need })
}

/// A view read from `body` by a serde `seed` (format 1, and the format-3 reference); with
/// [`Need::ALL`], no byte may follow.
fn serde_view<'a>(
    id: Uuid,
    body: &'a [u8],
    need: Need,
    seed: impl serde::de::DeserializeSeed<'a, Value = ()>,
) -> Result<()> {
    let used = bincode::serde::seed_decode_from_slice(seed, body, config())
        .map_err(|e| damaged(id, e))?
        .1;
    if need == Need::ALL && used != body.len() {
        return Err(Error::Corrupt(format!(
            "record of user {id} has trailing bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::collection::{btree_map, btree_set, vec};
    use proptest::prelude::*;

    use super::{crc32, decode, decode_reference, encode, view, view_into, view_into_reference};
    use crate::model::{ATTRS, at};
    use crate::query::Fields;
    use crate::store::record::{DbUserV1, Need, RecordView};
    use crate::user::{Address, AttrValue, MultiValue, Profile, StoredHash, User};
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

    fn multi() -> impl Strategy<Value = Vec<MultiValue>> {
        vec(
            ("[a-z@.]{1,8}", text(), any::<bool>(), text()).prop_map(
                |(value, kind, primary, display)| MultiValue {
                    value,
                    kind,
                    primary,
                    display,
                },
            ),
            0..3,
        )
    }

    prop_compose! {
        fn user()(
            id in any::<u128>(),
            texts in vec(text(), 30),
            flags in (any::<bool>(), any::<bool>(), any::<bool>()),
            langs in vec("[a-z]{2}", 0..6),
            roles in btree_set("[a-z]{1,5}", 0..6),
            data in btree_map("[a-d]{1,3}", attr(), 0..4),
            lists in vec(multi(), 6),
            addr in vec((text(), text(), any::<bool>()), 0..3),
            password in text(),
            instants in (any::<Option<i64>>(), any::<Option<i64>>(), any::<Option<i64>>()),
            fixed in (any::<i64>(), any::<i64>(), any::<u64>()),
        ) -> User {
            let mut u = User::new(Uuid::from_u128(id), Profile::default());
            let mut texts = texts.into_iter();
            let mut lists = lists.into_iter();
            for a in ATTRS {
                match (a.slot)(&mut u) {
                    crate::model::Slot::Text(t) => *t = texts.next().flatten(),
                    crate::model::Slot::Multi(l) => *l = lists.next().unwrap_or_default(),
                    _ => {}
                }
            }
            u.active = flags.0;
            u.profile.verified = flags.1;
            u.profile.password_change_required = flags.2;
            u.profile.preferred_languages = langs;
            u.profile.roles = roles;
            u.profile.data = data;
            u.profile.addresses = addr
                .into_iter()
                .map(|(locality, kind, primary)| Address { locality, kind, primary, ..Address::default() })
                .collect();
            u.password = password.map(StoredHash::from_encoded);
            (u.profile.expiry, u.last_login_instant, u.password_last_update_instant) = instants;
            (u.insert_instant, u.last_update_instant, u.version) = fixed;
            u
        }
    }

    /// What a view read of every attribute, as a user.
    fn same(a: &User, b: &User) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Encoding then decoding gives the user back; a view of any attributes reads
        /// exactly them, as the full decode has them, and leaves the others absent.
        #[test]
        fn views_agree_with_the_full_decode(u in user(), bits: u64) {
            let bytes = encode(&u).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded = decode(u.id, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(same(&decoded, &u), "{decoded:?} != {u:?}");
            let need = Need::from_bits(bits);
            let part = view(u.id, &bytes, need).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let d = RecordView::default();
            for (i, a) in ATTRS.iter().enumerate() {
                if need.has(i) {
                    prop_assert_eq!(part.text(i), u.text(i), "{}", a.name);
                    prop_assert_eq!(part.int(i), u.int(i), "{}", a.name);
                    prop_assert_eq!(part.flag(i), u.flag(i), "{}", a.name);
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    part.any_elem(i, &mut |e| { x.push(format!("{e:?}")); false });
                    u.any_elem(i, &mut |e| { y.push(format!("{e:?}")); false });
                    prop_assert_eq!(x, y, "{}", a.name);
                } else {
                    prop_assert!(matches!(part.get(i), crate::store::record::Val::Absent), "{}", a.name);
                    let _ = &d;
                }
            }
        }

        /// Damaged records: a view of every attribute fails exactly when the full decode
        /// does; partial views never panic.
        #[test]
        fn damaged_records_fail_alike(u in user(), flips in vec((any::<usize>(), any::<u8>()), 1..4), bits: u64, len in any::<usize>()) {
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
            prop_assert_eq!(full.is_ok(), all.is_ok());
            let _ = view(u.id, &bytes, Need::from_bits(bits));
        }
    }

    /// Cases of the reader-against-reference proptests: `USERDIR_DECODE_CASES` (default 256).
    fn decode_cases() -> u32 {
        std::env::var("USERDIR_DECODE_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    /// One change to a payload.
    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Truncate(usize),
    }

    /// Mostly letters written over a byte (inside a string the record often still decodes,
    /// to another user: the path where both decoders must give the same user), then flips,
    /// special varint and tag bytes, insertions, removals and cuts (mostly refused).
    fn mutation() -> impl Strategy<Value = Mutation> {
        let special = prop_oneof![
            Just(0u8),
            Just(1),
            Just(250),
            Just(251),
            Just(252),
            Just(253),
            Just(254),
            Just(255),
            any::<u8>()
        ];
        prop_oneof![
            4 => (any::<usize>(), b'a'..=b'z').prop_map(|(i, x)| Mutation::Set(i, x)),
            1 => (any::<usize>(), 1..=u8::MAX).prop_map(|(i, x)| Mutation::Flip(i, x)),
            1 => (any::<usize>(), special).prop_map(|(i, x)| Mutation::Set(i, x)),
            1 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
            1 => any::<usize>().prop_map(Mutation::Remove),
            1 => any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn mutate(p: &mut Vec<u8>, m: &Mutation) {
        let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
        match *m {
            Mutation::Flip(i, x) if !p.is_empty() => {
                let i = at(i, p.len());
                p[i] ^= x;
            }
            Mutation::Set(i, x) if !p.is_empty() => {
                let i = at(i, p.len());
                p[i] = x;
            }
            Mutation::Insert(i, x) => p.insert(at(i, p.len() + 1), x),
            Mutation::Remove(i) if !p.is_empty() => {
                p.remove(at(i, p.len()));
            }
            Mutation::Truncate(i) => p.truncate(at(i, p.len() + 1)),
            _ => {}
        }
    }

    /// The reader and the reference decoder agree on `bytes`: both refuse it, or both give
    /// the same user (the hash compared too: `Debug` hides it), and the same view of the
    /// attributes `need` names.
    fn agree(id: Uuid, bytes: &[u8], need: Need) -> Result<(), TestCaseError> {
        match (decode(id, bytes), decode_reference(id, bytes)) {
            (Ok(a), Ok(b)) => {
                prop_assert!(same(&a, &b) && a.password == b.password, "{a:?} != {b:?}");
            }
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "reader: {a:?}, reference: {b:?}"),
        }
        for need in [need, Need::ALL] {
            let (mut a, mut b) = (RecordView::default(), RecordView::default());
            let ra = view_into(id, bytes, need, &mut a);
            let rb = view_into_reference(id, bytes, need, &mut b);
            prop_assert_eq!(ra.is_ok(), rb.is_ok(), "{:?} vs {:?} ({:?})", ra, rb, need);
            if ra.is_ok() {
                prop_assert_eq!(format!("{:?}", a.vals), format!("{:?}", b.vals));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(decode_cases()))]

        /// The hand-written reader decodes every record as the serde reference does.
        #[test]
        fn reader_agrees_with_reference_on_valid_records(u in user(), bits: u64) {
            let bytes = encode(&u).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = decode(u.id, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(same(&got, &u) && got.password == u.password);
            agree(u.id, &bytes, Need::from_bits(bits))?;
        }

        /// Damaged payloads (re-sealed, so the checksum passes and the decoders see the
        /// damage): the reader refuses exactly what the reference refuses, and otherwise
        /// reads the same user and views.
        #[test]
        fn reader_agrees_with_reference_on_damaged_payloads(
            u in user(),
            muts in vec(mutation(), 1..3),
            bits: u64,
        ) {
            let bytes = encode(&u).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut p = bytes[1..bytes.len() - 4].to_vec();
            for m in &muts {
                mutate(&mut p, m);
            }
            let sealed = super::seal(super::RECORD_V3, |out| {
                out.extend_from_slice(&p);
                Ok(())
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            agree(u.id, &sealed, Need::from_bits(bits))?;
        }
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    fn ann() -> User {
        let mut u = User::new(Uuid::nil(), Profile::default());
        u.username = Some("ann".into());
        u.last_name = Some("Smithson".into());
        u.insert_instant = 1;
        u.last_update_instant = 2;
        u.version = 3;
        u
    }

    #[test]
    fn records_check_their_version_checksum_and_trailing_bytes() {
        let u = ann();
        let bytes = encode(&u).unwrap();
        assert_eq!(bytes[0], 3);
        let need = Need::default().with(7);
        assert_eq!(view(u.id, &bytes, need).unwrap().text(7), Some("Smithson"));
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(view(u.id, &other, need).is_err());
        other[0] = 9;
        assert!(view(u.id, &other, need).is_err());
        assert!(view(u.id, &[], need).is_err());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(
            decode(u.id, &flipped)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
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
        let skip = Need::default().with(at::VERSION);
        assert!(view(d.id, &bytes, skip).is_err());
        assert!(view(d.id, &bytes, need).is_ok());
    }

    /// A format-1 record decodes (and views) as the SCIM-shaped user it stands for.
    #[test]
    fn format_1_records_still_read() {
        let old = DbUserV1 {
            username: Some("ann".into()),
            email: Some("ann@example.com".into()),
            external_id: None,
            active: true,
            verified: true,
            first_name: Some("Ann".into()),
            middle_name: None,
            last_name: Some("Smith".into()),
            full_name: None,
            nick_name: None,
            birth_date: None,
            mobile_phone: Some("+1 555".into()),
            image_url: Some("https://x/a.png".into()),
            timezone: None,
            preferred_languages: vec!["fr".into()],
            roles: ["admin".to_owned()].into(),
            data: BTreeMap::new(),
            password: None,
            password_change_required: false,
            expiry: None,
            insert_instant: 10,
            last_update_instant: 11,
            last_login_instant: None,
            password_last_update_instant: None,
            version: 4,
        };
        let mut bytes = vec![1u8];
        bincode::serde::encode_into_std_write(&old, &mut bytes, super::config()).unwrap();
        // Format 2 (the envelope around the same payload) reads the same.
        let v2 = super::seal(super::RECORD_V2, |out| {
            out.extend_from_slice(&bytes[1..]);
            Ok(())
        })
        .unwrap();
        let u = decode(Uuid::nil(), &bytes).unwrap();
        assert!(same(&decode(Uuid::nil(), &v2).unwrap(), &u));
        assert!(same(
            &view(Uuid::nil(), &v2, Need::ALL).unwrap().to_user(),
            &u
        ));
        assert_eq!(u.email.as_deref(), Some("ann@example.com"));
        assert_eq!(
            u.emails,
            [MultiValue::new("ann@example.com")
                .kind("work")
                .primary(true)]
        );
        assert_eq!(u.mobile_phone(), Some("+1 555"));
        assert_eq!(u.image_url(), Some("https://x/a.png"));
        assert_eq!(u.version, 4);
        let all = view(Uuid::nil(), &bytes, Need::ALL).unwrap();
        assert!(same(&all.to_user(), &u));
        let need = Need::default().with(at::EMAILS).with(at::PHONE_NUMBERS);
        let part = view(Uuid::nil(), &bytes, need).unwrap();
        assert!(part.any_elem(at::EMAILS, &mut |e| e.value == Some("ann@example.com")));
        assert!(part.any_elem(at::PHONE_NUMBERS, &mut |e| e.kind == Some("mobile")));
        // Re-encoded, it is format 3 and the same user.
        let again = encode(&u).unwrap();
        assert_eq!(again[0], 3);
        assert!(same(&decode(Uuid::nil(), &again).unwrap(), &u));
    }

    #[test]
    fn a_need_span_holds_the_needed_attributes_only() {
        use super::need_span;
        let mut u = User::new(Uuid::from_u128(7), Profile::default());
        u.profile.username = Some("alice".into());
        u.profile.first_name = Some("Ann".into());
        u.profile.last_name = Some("Jackson".into());
        u.profile.title = Some("Mason".into());
        u.password = Some(StoredHash::from_encoded("$argon2id$v=19$sonsonson"));
        let bytes = encode(&u).unwrap();
        let at_family = ATTRS
            .iter()
            .position(|a| a.name == "name.familyName")
            .unwrap();
        let family = Need::default().with(at_family);
        let span = need_span(&bytes, family);
        let has = |hay: &[u8], s: &str| hay.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(span, "Jackson"));
        for other in ["alice", "Ann", "Mason", "sonsonson"] {
            assert!(!has(span, other), "{other}");
        }
        // Two attributes: everything from the first to the end of the last.
        let both = family.with(at::USERNAME);
        let span = need_span(&bytes, both);
        assert!(has(span, "alice") && has(span, "Ann") && has(span, "Jackson"));
        assert!(!has(span, "Mason"));
        // Not stored: nothing to look at.
        assert!(need_span(&bytes, Need::default().with(at::BIRTH_DATE)).is_empty());
        // Damaged framing: the whole record (the decoder reports it).
        let mut bad = bytes.clone();
        bad[1] = 0xff;
        assert_eq!(need_span(&bad, family), bad.as_slice());
        // Older formats are searched whole.
        let old = [1u8, 2, 3];
        assert_eq!(need_span(&old, family), &old[..]);
    }
}
