//! Failed-login bookkeeping for lockout: one row per user with recent failures, under the
//! `F` tag of the directory tree (so a login touches one tree). The lockout rules live in
//! `crate::auth`; this module only stores.

use uuid::Uuid;

use super::tables::{TAG_FAILURES, TAG_USER};
use super::{Reader, Writer};
use crate::error::{Error, Result};
use crate::user::UnixMillis;

/// A user's failed-login state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FailureState {
    /// Consecutive failures counted in the current window.
    pub count: u32,
    /// When the current counting window started.
    pub window_start: UnixMillis,
    /// Until when the account is locked, if it was locked.
    pub locked_until: Option<UnixMillis>,
}

const ROW_LEN: usize = 4 + 8 + 1 + 8;

impl FailureState {
    fn encode(&self) -> [u8; ROW_LEN] {
        let mut b = [0u8; ROW_LEN];
        b[..4].copy_from_slice(&self.count.to_le_bytes());
        b[4..12].copy_from_slice(&self.window_start.to_le_bytes());
        if let Some(t) = self.locked_until {
            b[12] = 1;
            b[13..].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8]) -> Result<Self> {
        let bad = || Error::Corrupt("malformed failed-login row".into());
        let b: &[u8; ROW_LEN] = b.try_into().map_err(|_| bad())?;
        let mut c = [0u8; 4];
        c.copy_from_slice(&b[..4]);
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[4..12]);
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[13..]);
        Ok(FailureState {
            count: u32::from_le_bytes(c),
            window_start: i64::from_le_bytes(w),
            locked_until: match b[12] {
                0 => None,
                1 => Some(i64::from_le_bytes(l)),
                _ => return Err(bad()),
            },
        })
    }
}

/// The digest naming a login id that has no account (see `crate::auth`): its failed logins
/// are counted under it, so that an unknown login id locks as an account does.
pub(crate) type LoginDigest = [u8; 32];

/// Length of a failure row's key for a login id without an account (a user's is 17).
const LOGIN_KEY_LEN: usize = 33;

fn login_key(d: &LoginDigest) -> [u8; LOGIN_KEY_LEN] {
    let mut k = [TAG_FAILURES; LOGIN_KEY_LEN];
    k[1..].copy_from_slice(d);
    k
}

/// The failure state of a login id without an account, in a snapshot.
pub(crate) fn get_login(r: &Reader, d: &LoginDigest) -> Result<Option<FailureState>> {
    r.raw(&login_key(d))?
        .map(|v| FailureState::decode(&v))
        .transpose()
}

/// The failure state of a login id without an account, inside a write transaction.
pub(crate) fn get_login_w(w: &Writer<'_>, d: &LoginDigest) -> Result<Option<FailureState>> {
    w.raw(&login_key(d))?
        .map(|v| FailureState::decode(&v))
        .transpose()
}

/// Stores the failure state of a login id without an account.
pub(crate) fn put_login(w: &mut Writer<'_>, d: &LoginDigest, s: FailureState) -> Result<()> {
    w.guard(|w| w.dir_put(login_key(d).as_slice(), s.encode().as_slice()))
}

/// Removes up to `limit` rows of login ids without an account that `stale` says are over
/// (no lock in force, window closed), looking at the rows that follow `after` in key order
/// (digests are uniformly spread, so each failure sweeps a different stretch).
pub(crate) fn purge_stale_logins(
    w: &mut Writer<'_>,
    after: &LoginDigest,
    limit: usize,
    stale: impl Fn(&FailureState) -> bool,
) -> Result<usize> {
    let from = login_key(after);
    let mut doomed = Vec::new();
    let mut seen = 0;
    w.scan(&from, &[TAG_FAILURES + 1], |k, v| {
        if k.len() == LOGIN_KEY_LEN && k != from.as_slice() {
            seen += 1;
            if FailureState::decode(v).is_ok_and(|s| stale(&s)) {
                doomed.push(k.to_vec());
            }
        }
        Ok(seen < limit)
    })?;
    for k in &doomed {
        w.guard(|w| w.dir_del(k))?;
    }
    Ok(doomed.len())
}

fn key(id: Uuid) -> [u8; 17] {
    let mut k = [TAG_FAILURES; 17];
    k[1..].copy_from_slice(id.as_bytes());
    k
}

/// The failure state of `id` in a snapshot.
pub(crate) fn get(r: &Reader, id: Uuid) -> Result<Option<FailureState>> {
    r.raw(&key(id))?
        .map(|v| FailureState::decode(&v))
        .transpose()
}

/// The failure state of `id` inside a write transaction.
pub(crate) fn get_w(w: &Writer<'_>, id: Uuid) -> Result<Option<FailureState>> {
    w.raw(&key(id))?
        .map(|v| FailureState::decode(&v))
        .transpose()
}

/// Stores the failure state of `id`.
pub(crate) fn put(w: &mut Writer<'_>, id: Uuid, s: FailureState) -> Result<()> {
    w.guard(|w| w.dir_put(key(id).as_slice(), s.encode().as_slice()))
}

/// Forgets the failures of `id` (after a successful login, a password reset, a delete).
pub(crate) fn clear(w: &mut Writer<'_>, id: Uuid) -> Result<()> {
    w.guard(|w| w.dir_del(key(id).as_slice()))
}

/// Rows that belong to no user, or do not decode.
pub(crate) fn integrity_problems(r: &Reader) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    r.scan(&[TAG_FAILURES], &[TAG_FAILURES + 1], |k, v| {
        rows.push((k.to_vec(), FailureState::decode(v).is_ok()));
        Ok(true)
    })?;
    let mut problems = Vec::new();
    for (k, ok) in rows {
        if k.len() == LOGIN_KEY_LEN {
            // A login id without an account: belongs to no user.
            if !ok {
                problems.push("login_failures: malformed row".into());
            }
            continue;
        }
        let id = k.get(1..).and_then(|b| Uuid::from_slice(b).ok());
        match id {
            Some(id) if r.raw(&[&[TAG_USER][..], id.as_bytes()].concat())?.is_some() => {}
            Some(id) => problems.push(format!("login_failures: entry for unknown user {id}")),
            None => problems.push("login_failures: malformed key".into()),
        }
        if !ok {
            problems.push("login_failures: malformed row".into());
        }
    }
    Ok(problems)
}
