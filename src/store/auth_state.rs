//! Failed-login bookkeeping for lockout: one row per user with recent failures, in the
//! `login_failures` table. The lockout rules live in `crate::auth`; this module only stores.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::tables::LOGIN_FAILURES;
use super::{Reader, Writer, storage, table_error};
use crate::error::Result;
use crate::user::Instant;

/// A user's failed-login state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FailureState {
    /// Consecutive failures counted in the current window.
    pub count: u32,
    /// When the current counting window started.
    pub window_start: Instant,
    /// Until when the account is locked, if it was locked.
    pub locked_until: Option<Instant>,
}

impl FailureState {
    fn from_row((count, window_start, locked_until): (u32, i64, Option<i64>)) -> Self {
        FailureState {
            count,
            window_start,
            locked_until,
        }
    }
}

/// Creates the table (at open, so read transactions find it).
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(LOGIN_FAILURES).map_err(table_error)?;
    Ok(())
}

/// The failure state of `id` in a snapshot.
pub(crate) fn get(r: &Reader, id: Uuid) -> Result<Option<FailureState>> {
    let t = r.txn.open_table(LOGIN_FAILURES).map_err(table_error)?;
    Ok(t.get(id.as_u128())
        .map_err(storage)?
        .map(|g| FailureState::from_row(g.value())))
}

/// The failure state of `id` inside a write transaction.
pub(crate) fn get_w(w: &Writer<'_>, id: Uuid) -> Result<Option<FailureState>> {
    let t = w.txn.open_table(LOGIN_FAILURES).map_err(table_error)?;
    Ok(t.get(id.as_u128())
        .map_err(storage)?
        .map(|g| FailureState::from_row(g.value())))
}

/// Stores the failure state of `id`.
pub(crate) fn put(w: &mut Writer<'_>, id: Uuid, s: FailureState) -> Result<()> {
    w.guard(|w| {
        let mut t = w.txn.open_table(LOGIN_FAILURES).map_err(table_error)?;
        t.insert(id.as_u128(), (s.count, s.window_start, s.locked_until))
            .map_err(storage)?;
        Ok(())
    })
}

/// Forgets the failures of `id` (after a successful login, a password reset, a delete).
pub(crate) fn clear(w: &mut Writer<'_>, id: Uuid) -> Result<()> {
    w.guard(|w| {
        let mut t = w.txn.open_table(LOGIN_FAILURES).map_err(table_error)?;
        t.remove(id.as_u128()).map_err(storage)?;
        Ok(())
    })
}

/// Rows that belong to no user.
pub(crate) fn integrity_problems(r: &Reader) -> Result<Vec<String>> {
    let t = r.txn.open_table(LOGIN_FAILURES).map_err(table_error)?;
    let mut problems = Vec::new();
    for e in t.iter().map_err(storage)? {
        let (k, _) = e.map_err(storage)?;
        let id = Uuid::from_u128(k.value());
        if r.get(id)?.is_none() {
            problems.push(format!("login_failures: entry for unknown user {id}"));
        }
    }
    Ok(problems)
}
