//! Every redb table of a directory file, and the layout of keys inside them.
//!
//! Records and all their index entries live in ONE B-tree (`directory`), under tagged keys.
//! A transaction opens one table instead of six, and a commit rewrites one tree's root path
//! instead of six. Measured against the six-table layout it replaced (same machine, same run,
//! 100k users, release build, machine loaded): `get` 6.9 → 2.6 µs, `find_by_username`
//! 7.8 → 3.0–4.2 µs, non-durable `create` 157 → 125 µs.
//!
//! | key | value |
//! |---|---|
//! | `U` id (16 bytes, big-endian) | encoded user record (see `codec`) |
//! | `L` caseless login key | id (16) + kinds (1): bit set of [`KIND_USERNAME`], [`KIND_EMAIL`] |
//! | `X` external id | id (16) |
//! | `S` skeleton `0x00` id | empty |
//! | `R` role key `0x00` id | empty (role keys are caseless, see `identity::role_key`) |
//! | `I` insert instant (8, order-preserving) id | empty |
//! | `E` email value key `0x00` id | the element's type key (secondary emails, not unique) |
//! | `#` | number of users (u64, little-endian) |
//! | `C` `u` | number of users with a username (u64 LE; absent when 0) |
//! | `C` `e` | number of users with a login email (u64 LE; absent when 0) |
//! | `C` `r` role key | number of users holding the role (u64 LE; absent when 0) |
//! | `C` `p` `u`/`e` prefix | number of username (`u`) / login email (`e`) keys starting with the prefix: every prefix of 1 to [`PREFIX_DEPTH`] characters of every login key (u64 LE; absent when 0) |
//! | `F` id | failed logins: count (u32 LE), window start (i64 LE), locked-until flag + i64 LE |
//! | `T` id token-hash (32) | empty: the user's outstanding tokens (see `tokens`) |
//!
//! The counters (`#`, `C…`) change in the same transaction as the records and entries they
//! count (and are replayed from the redo log with them), so a total is one lookup; the
//! integrity check recomputes them from the records.
//!
//! Failed-login rows and the per-user token index live in this tree too, so that a login or a
//! deactivation touches one tree; the token records themselves are in `tokens`.
//!
//! Strings in keys never contain `0x00` (control characters are refused) nor `0xFF` (not UTF-8),
//! so `prefix .. prefix + 0xFF` bounds a prefix scan.

use redb::TableDefinition;
use uuid::Uuid;

/// The directory: users and their indexes under tagged keys.
pub(crate) const DIR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
/// name → value: `format` (directory format), `unicode` (normalizer version, packed).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The login key is a username.
pub(crate) const KIND_USERNAME: u8 = 1;
/// The login key is an email.
pub(crate) const KIND_EMAIL: u8 = 2;

/// The directory format written by this version. Format 1 (userdir up to issue 18) keyed
/// roles exactly, had no secondary email index and kept no counters but `#`; format 2 had no
/// login-prefix counters. Opening an older file rekeys its roles, builds the email index and
/// computes every counter from the records (one transaction), then records format 3.
pub(crate) const FORMAT_VERSION: u64 = 3;

pub(crate) const TAG_USER: u8 = b'U';
pub(crate) const TAG_LOGIN: u8 = b'L';
pub(crate) const TAG_EXTERNAL: u8 = b'X';
pub(crate) const TAG_SKELETON: u8 = b'S';
pub(crate) const TAG_ROLE: u8 = b'R';
pub(crate) const TAG_INSERTED: u8 = b'I';
pub(crate) const KEY_COUNT: &[u8] = b"#";
pub(crate) const TAG_FAILURES: u8 = b'F';
pub(crate) const TAG_USER_TOKEN: u8 = b'T';
pub(crate) const TAG_COUNTER: u8 = b'C';
pub(crate) const TAG_EMAILS: u8 = b'E';
/// The counter of users with a username.
pub(crate) const KEY_USERNAMES: &[u8] = b"Cu";
/// The counter of users with a login email.
pub(crate) const KEY_EMAILS: &[u8] = b"Ce";
/// Second byte of the per-role counters (`C r role`).
pub(crate) const COUNTER_ROLE: u8 = b'r';

/// Second byte of the login-prefix counters (`C p kind prefix`).
pub(crate) const COUNTER_PREFIX: u8 = b'p';

/// Login keys have a counter for each of their prefixes up to this many characters, so the
/// total of `userName sw "jo"` (or `emails sw`) is one lookup. A longer prefix is counted by
/// walking its keys, which its 3-character counter bounds.
pub(crate) const PREFIX_DEPTH: usize = 3;

/// The key of the counter of login keys of `kind` ([`KIND_USERNAME`] or [`KIND_EMAIL`]) that
/// start with `prefix`.
pub(crate) fn prefix_counter_key(kind: u8, prefix: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + prefix.len());
    k.push(TAG_COUNTER);
    k.push(COUNTER_PREFIX);
    k.push(if kind == KIND_USERNAME { b'u' } else { b'e' });
    k.extend_from_slice(prefix.as_bytes());
    k
}

/// The prefixes of `key` that have counters: its first 1 to [`PREFIX_DEPTH`] characters.
pub(crate) fn counted_prefixes(key: &str) -> impl Iterator<Item = &str> {
    key.char_indices()
        .skip(1)
        .map(|(i, _)| i)
        .chain(std::iter::once(key.len()))
        .take(PREFIX_DEPTH)
        .filter_map(|end| key.get(..end))
        .filter(|p| !p.is_empty())
}

/// Whether `prefix` has counters (1 to [`PREFIX_DEPTH`] characters).
pub(crate) fn prefix_is_counted(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.chars().nth(PREFIX_DEPTH).is_none()
}

/// The key of a role's member counter.
pub(crate) fn role_counter_key(role: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + role.len());
    k.push(TAG_COUNTER);
    k.push(COUNTER_ROLE);
    k.extend_from_slice(role.as_bytes());
    k
}

/// Tags of the index entries `check_integrity` rebuilds from the records.
pub(crate) const INDEX_TAGS: [u8; 6] = [
    TAG_LOGIN,
    TAG_EXTERNAL,
    TAG_SKELETON,
    TAG_ROLE,
    TAG_INSERTED,
    TAG_EMAILS,
];

pub(crate) fn user_key(id: Uuid) -> [u8; 17] {
    let mut k = [TAG_USER; 17];
    k[1..].copy_from_slice(id.as_bytes());
    k
}

pub(crate) fn str_key(tag: u8, s: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + s.len());
    k.push(tag);
    k.extend_from_slice(s.as_bytes());
    k
}

/// `tag s 0x00 id`: a (string, id) pair, ordered by string then id.
pub(crate) fn pair_key(tag: u8, s: &str, id: Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(18 + s.len());
    k.push(tag);
    k.extend_from_slice(s.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Range bounds of all `pair_key(tag, s, _)`.
pub(crate) fn pair_range(tag: u8, s: &str) -> (Vec<u8>, Vec<u8>) {
    let mut lo = str_key(tag, s);
    let mut hi = lo.clone();
    lo.push(0);
    hi.push(1);
    (lo, hi)
}

/// Range bounds of every key with this tag whose string starts with `prefix`.
pub(crate) fn prefix_range(tag: u8, prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let lo = str_key(tag, prefix);
    let mut hi = lo.clone();
    hi.push(0xff);
    (lo, hi)
}

/// Order-preserving encoding of an i64 (sign bit flipped, big-endian).
pub(crate) fn instant_bytes(at: i64) -> [u8; 8] {
    (at.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn instant_from(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)).cast_signed()
}

pub(crate) fn inserted_key(at: i64, id: Uuid) -> [u8; 25] {
    let mut k = [TAG_INSERTED; 25];
    k[1..9].copy_from_slice(&instant_bytes(at));
    k[9..].copy_from_slice(id.as_bytes());
    k
}

/// The id at the end of a `pair_key` or `inserted_key`.
pub(crate) fn trailing_id(key: &[u8]) -> Option<Uuid> {
    let start = key.len().checked_sub(16)?;
    Uuid::from_slice(key.get(start..)?).ok()
}

/// Decodes a login entry value: id and kinds.
pub(crate) fn login_value(v: &[u8]) -> Option<(Uuid, u8)> {
    if v.len() != 17 {
        return None;
    }
    Some((Uuid::from_slice(v.get(..16)?).ok()?, *v.get(16)?))
}

pub(crate) fn login_entry(id: Uuid, kinds: u8) -> [u8; 17] {
    let mut v = [kinds; 17];
    v[..16].copy_from_slice(id.as_bytes());
    v
}

/// SHA-256 of a token → (user id, kind, expiry, binding). Only the hash of a token is stored.
/// `binding` fingerprints what the token was issued for (the email it verifies, the password
/// hash it replaces), so a token outlived by a change of either is refused.
pub(crate) const TOKENS: TableDefinition<[u8; 32], (u128, u8, i64, u64)> =
    TableDefinition::new("tokens");
/// (expiry, token hash) → (): expired tokens are purged in expiry order.
pub(crate) const TOKEN_EXPIRY: TableDefinition<(i64, [u8; 32]), ()> =
    TableDefinition::new("token_expiry");

/// A password-reset token.
pub(crate) const TOKEN_RESET: u8 = 1;
/// An email-verification token.
pub(crate) const TOKEN_VERIFY: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_prefixes_are_the_first_characters() {
        fn p(k: &str) -> Vec<&str> {
            counted_prefixes(k).collect()
        }
        assert_eq!(p(""), Vec::<&str>::new());
        assert_eq!(p("j"), ["j"]);
        assert_eq!(p("jo"), ["j", "jo"]);
        assert_eq!(p("john"), ["j", "jo", "joh"]);
        // Characters, not bytes.
        assert_eq!(p("éßx@y"), ["é", "éß", "éßx"]);
        assert!(prefix_is_counted("éßx"));
        assert!(!prefix_is_counted("éßxy"));
        assert!(!prefix_is_counted(""));
        assert_ne!(
            prefix_counter_key(KIND_USERNAME, "jo"),
            prefix_counter_key(KIND_EMAIL, "jo")
        );
    }
}
