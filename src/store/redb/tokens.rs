//! Email-verification and password-reset tokens at rest: only the SHA-256 of each token is
//! stored (`tokens`), with two indexes kept in the same transaction: by expiry (`token_expiry`,
//! for purging) and by user (`T` keys of the directory tree, for revocation: deactivating or
//! deleting a user without tokens then touches no token table). The workflows live in
//! `crate::auth`; this module only stores.

use std::collections::BTreeSet;

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use uuid::Uuid;

use super::tables::{TAG_USER_TOKEN, TOKEN_EXPIRY, TOKEN_RESET, TOKEN_VERIFY, TOKENS};
use super::{Reader, Writer, auth_state, storage, table_error, wal};
use crate::error::{Error, Result};
use crate::store::{TokenHash, TokenKind, TokenRecord};
use crate::user::UnixMillis;

impl TokenRecord {
    fn from_row((user, kind, expiry, binding): (u128, u8, i64, u64)) -> Result<Self> {
        let kind = match kind {
            TOKEN_RESET => TokenKind::Reset,
            TOKEN_VERIFY => TokenKind::Verify,
            _ => return Err(Error::Corrupt("a token of an unknown kind".into())),
        };
        Ok(TokenRecord {
            user: Uuid::from_u128(user),
            kind,
            expiry,
            binding,
        })
    }
    fn row(&self) -> (u128, u8, i64, u64) {
        let kind = match self.kind {
            TokenKind::Reset => TOKEN_RESET,
            TokenKind::Verify => TOKEN_VERIFY,
        };
        (self.user.as_u128(), kind, self.expiry, self.binding)
    }
}

/// A token row as logged: user (u128 LE), kind, expiry (i64 LE), binding (u64 LE).
fn encode_row((user, kind, expiry, binding): (u128, u8, i64, u64)) -> [u8; 33] {
    let mut b = [0u8; 33];
    b[..16].copy_from_slice(&user.to_le_bytes());
    b[16] = kind;
    b[17..25].copy_from_slice(&expiry.to_le_bytes());
    b[25..].copy_from_slice(&binding.to_le_bytes());
    b
}

fn decode_row(b: &[u8]) -> Option<(u128, u8, i64, u64)> {
    let b: &[u8; 33] = b.try_into().ok()?;
    let (user, rest) = b.split_first_chunk::<16>()?;
    let (&kind, rest) = rest.split_first()?;
    let (expiry, binding) = rest.split_first_chunk::<8>()?;
    Some((
        u128::from_le_bytes(*user),
        kind,
        i64::from_le_bytes(*expiry),
        u64::from_le_bytes(binding.try_into().ok()?),
    ))
}

/// An expiry-index key as logged: expiry (i64 LE) then the token hash.
fn expiry_key(expiry: UnixMillis, hash: &TokenHash) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[..8].copy_from_slice(&expiry.to_le_bytes());
    b[8..].copy_from_slice(hash);
    b
}

/// Applies one logged change to the token tables (redo log replay).
pub(crate) fn replay(txn: &WriteTransaction, c: &wal::Change<'_>) -> Result<()> {
    let bad = || Error::Corrupt("malformed token change in the redo log".into());
    match c.kind {
        wal::TOKEN_PUT | wal::TOKEN_DEL => {
            let hash: TokenHash = c.key.try_into().map_err(|_| bad())?;
            let mut t = txn.open_table(TOKENS).map_err(table_error)?;
            if c.kind == wal::TOKEN_PUT {
                t.insert(hash, decode_row(c.value).ok_or_else(bad)?)
                    .map_err(storage)?;
            } else {
                t.remove(hash).map_err(storage)?;
            }
        }
        _ => {
            let (at, hash) = c.key.split_first_chunk::<8>().ok_or_else(bad)?;
            let hash: TokenHash = hash.try_into().map_err(|_| bad())?;
            let key = (i64::from_le_bytes(*at), hash);
            let mut t = txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
            if c.kind == wal::EXPIRY_PUT {
                t.insert(key, ()).map_err(storage)?;
            } else {
                t.remove(key).map_err(storage)?;
            }
        }
    }
    Ok(())
}

/// Creates the tables (at open, so read transactions find them).
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(TOKENS).map_err(table_error)?;
    txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
    Ok(())
}

/// The token with this hash in a snapshot.
pub(crate) fn get(r: &Reader, hash: &TokenHash) -> Result<Option<TokenRecord>> {
    let t = r.txn.open_table(TOKENS).map_err(table_error)?;
    t.get(hash)
        .map_err(storage)?
        .map(|g| TokenRecord::from_row(g.value()))
        .transpose()
}

/// The token with this hash inside a write transaction.
pub(crate) fn get_w(w: &Writer<'_>, hash: &TokenHash) -> Result<Option<TokenRecord>> {
    let t = w.txn.open_table(TOKENS).map_err(table_error)?;
    t.get(hash)
        .map_err(storage)?
        .map(|g| TokenRecord::from_row(g.value()))
        .transpose()
}

fn user_key(user: Uuid, hash: &TokenHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(49);
    k.push(TAG_USER_TOKEN);
    k.extend_from_slice(user.as_bytes());
    k.extend_from_slice(hash);
    k
}

fn user_range(user: Uuid) -> (Vec<u8>, Vec<u8>) {
    (user_key(user, &[0; 32]), user_key(user, &[0xff; 32]))
}

fn hash_of(k: &[u8]) -> Option<TokenHash> {
    k.get(17..).and_then(|h| h.try_into().ok())
}

/// The hashes of a user's tokens with their records, in hash order.
fn user_tokens(w: &Writer<'_>, user: Uuid) -> Result<Vec<(TokenHash, TokenRecord)>> {
    let (lo, hi) = user_range(user);
    let mut hashes = Vec::new();
    w.scan(&lo, &hi, |k, _| {
        if let Some(h) = hash_of(k) {
            hashes.push(h);
        }
        Ok(true)
    })?;
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let tokens = w.txn.open_table(TOKENS).map_err(table_error)?;
    let mut out = Vec::new();
    for hash in hashes {
        if let Some(g) = tokens.get(&hash).map_err(storage)? {
            out.push((hash, TokenRecord::from_row(g.value())?));
        }
    }
    Ok(out)
}

/// The number of tokens a user holds (expired ones not yet purged included).
pub(crate) fn count_user(r: &Reader, user: Uuid) -> Result<usize> {
    let (lo, hi) = user_range(user);
    let mut n = 0;
    r.scan(&lo, &hi, |_, _| {
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}

/// The number of tokens a user holds, inside a write transaction.
pub(crate) fn count_user_w(w: &Writer<'_>, user: Uuid) -> Result<usize> {
    let (lo, hi) = user_range(user);
    let mut n = 0;
    w.scan(&lo, &hi, |_, _| {
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}

/// Stores a new token. When the user already holds `keep` tokens of that kind, the ones
/// expiring first are revoked so that at most `keep` remain, the new one included.
pub(crate) fn insert(
    w: &mut Writer<'_>,
    hash: &TokenHash,
    rec: &TokenRecord,
    keep: usize,
) -> Result<()> {
    let mut same_kind: Vec<(UnixMillis, TokenHash)> = user_tokens(w, rec.user)?
        .into_iter()
        .filter(|(_, r)| r.kind == rec.kind)
        .map(|(h, r)| (r.expiry, h))
        .collect();
    same_kind.sort_unstable();
    let excess = (same_kind.len() + 1).saturating_sub(keep.max(1));
    for (_, h) in same_kind.iter().take(excess) {
        remove(w, h)?;
    }
    w.guard(|w| {
        let mut tokens = w.txn.open_table(TOKENS).map_err(table_error)?;
        tokens.insert(hash, rec.row()).map_err(storage)?;
        let mut by_expiry = w.txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
        by_expiry.insert((rec.expiry, *hash), ()).map_err(storage)?;
        drop((tokens, by_expiry));
        w.record(wal::TOKEN_PUT, hash, &encode_row(rec.row()));
        w.record(wal::EXPIRY_PUT, &expiry_key(rec.expiry, hash), &[]);
        w.dir_put(user_key(rec.user, hash).as_slice(), &[][..])
    })
}

/// Removes a token and its index entries; returns what it was.
pub(crate) fn remove(w: &mut Writer<'_>, hash: &TokenHash) -> Result<Option<TokenRecord>> {
    let Some(rec) = get_w(w, hash)? else {
        return Ok(None);
    };
    w.guard(|w| {
        let mut tokens = w.txn.open_table(TOKENS).map_err(table_error)?;
        tokens.remove(hash).map_err(storage)?;
        let mut by_expiry = w.txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
        by_expiry.remove((rec.expiry, *hash)).map_err(storage)?;
        drop((tokens, by_expiry));
        w.record(wal::TOKEN_DEL, hash, &[]);
        w.record(wal::EXPIRY_DEL, &expiry_key(rec.expiry, hash), &[]);
        w.dir_del(user_key(rec.user, hash).as_slice())
    })?;
    Ok(Some(rec))
}

/// Revokes a user's tokens: those of `kind`, or all of them when `kind` is `None`. Returns how
/// many were removed.
pub(crate) fn revoke_user(
    w: &mut Writer<'_>,
    user: Uuid,
    kind: Option<TokenKind>,
) -> Result<usize> {
    let mut n = 0;
    for (hash, rec) in user_tokens(w, user)? {
        if kind.is_none_or(|k| k == rec.kind) {
            remove(w, &hash)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Removes up to `limit` tokens that expired at or before `now`, earliest first. Returns how
/// many were removed.
pub(crate) fn purge_expired(w: &mut Writer<'_>, now: UnixMillis, limit: usize) -> Result<usize> {
    let expired: Vec<TokenHash> = {
        let by_expiry = w.txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
        let mut out = Vec::new();
        for e in by_expiry
            .range((i64::MIN, [0u8; 32])..=(now, [0xffu8; 32]))
            .map_err(storage)?
            .take(limit)
        {
            let (k, _) = e.map_err(storage)?;
            out.push(k.value().1);
        }
        out
    };
    for h in &expired {
        remove(w, h)?;
    }
    Ok(expired.len())
}

/// Checks that the three token tables agree and that every token and failed-login row belongs
/// to an existing user.
pub(crate) fn integrity_problems(r: &Reader) -> Result<Vec<String>> {
    let mut problems = auth_state::integrity_problems(r)?;
    let tokens = r.txn.open_table(TOKENS).map_err(table_error)?;
    let mut expected_expiry: BTreeSet<(i64, TokenHash)> = BTreeSet::new();
    let mut expected_user: BTreeSet<(u128, TokenHash)> = BTreeSet::new();
    for e in tokens.iter().map_err(storage)? {
        let (k, v) = e.map_err(storage)?;
        let hash = k.value();
        let rec = match TokenRecord::from_row(v.value()) {
            Ok(rec) => rec,
            Err(e) => {
                problems.push(format!("tokens: {e}"));
                continue;
            }
        };
        if r.get(rec.user)?.is_none() {
            problems.push(format!("tokens: a token of unknown user {}", rec.user));
        }
        expected_expiry.insert((rec.expiry, hash));
        expected_user.insert((rec.user.as_u128(), hash));
    }
    let by_expiry = r.txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
    if by_expiry.len().map_err(storage)? != tokens.len().map_err(storage)? {
        problems.push("tokens: the expiry index size differs from the token table".into());
    }
    for e in by_expiry.iter().map_err(storage)? {
        let (k, _) = e.map_err(storage)?;
        if !expected_expiry.contains(&k.value()) {
            problems.push(format!(
                "token_expiry: entry at {} matches no token",
                k.value().0
            ));
        }
    }
    let mut actual_user: BTreeSet<(u128, TokenHash)> = BTreeSet::new();
    r.scan(&[TAG_USER_TOKEN], &[TAG_USER_TOKEN + 1], |k, _| {
        match (
            k.get(1..17).and_then(|b| Uuid::from_slice(b).ok()),
            hash_of(k),
        ) {
            (Some(u), Some(h)) if k.len() == 49 => {
                actual_user.insert((u.as_u128(), h));
            }
            _ => problems.push("user_tokens: malformed entry".into()),
        }
        Ok(true)
    })?;
    for (u, _) in actual_user.difference(&expected_user) {
        problems.push(format!(
            "user_tokens: entry of user {} matches no token",
            Uuid::from_u128(*u)
        ));
    }
    for (u, _) in expected_user.difference(&actual_user) {
        problems.push(format!(
            "user_tokens: a token of user {} is missing from the user index",
            Uuid::from_u128(*u)
        ));
    }
    Ok(problems)
}

/// Every entry of the token tables as (table, key, fingerprint), for
/// [`Directory::dump`](crate::Directory::dump). Token hashes are digested once more, so the
/// output holds nothing that was ever stored as is.
#[cfg(any(test, feature = "__test-hooks"))]
pub(crate) fn dump(r: &Reader) -> Result<Vec<(&'static str, String, String)>> {
    use sha2::{Digest, Sha256};
    fn hex(b: &[u8]) -> String {
        b.iter()
            .fold(String::with_capacity(b.len() * 2), |mut s, x| {
                let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{x:02x}"));
                s
            })
    }
    fn dig(b: &[u8]) -> String {
        hex(&Sha256::digest(b))
    }
    let mut out = Vec::new();
    let t = r.txn.open_table(TOKENS).map_err(table_error)?;
    for e in t.iter().map_err(storage)? {
        let (k, v) = e.map_err(storage)?;
        out.push(("tokens", dig(&k.value()), format!("{:?}", v.value())));
    }
    let t = r.txn.open_table(TOKEN_EXPIRY).map_err(table_error)?;
    for e in t.iter().map_err(storage)? {
        let (k, _) = e.map_err(storage)?;
        let (expiry, h) = k.value();
        out.push((
            "token_expiry",
            format!("{expiry} {}", dig(&h)),
            String::new(),
        ));
    }
    Ok(out)
}
