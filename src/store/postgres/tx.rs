//! One transaction on PostgreSQL: the same reads and writes as the redb store's `Reader` and
//! `Writer`, as indexed SQL over the schema of [`super::schema`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Bound;

use parking_lot::Mutex;
use postgres::types::ToSql;
use postgres::{Client, GenericClient};
use uuid::Uuid;

use super::{Failure, FailureCell, storage};
use crate::error::{Error, Result};
use crate::store::redb::batch::Claim;
use crate::store::{
    BatchKeys, Clash, ClashWith, EmailMatch, FailureState, IndexRules, LoginDigest, LoginKind,
    LoginOwner, ReadTxn, Snapshot, TokenHash, TokenKind, TokenRecord, UserKeys, WriteTxn, codec,
};
use crate::user::{UnixMillis, User};

/// `kinds` bit of a login row: the key is the user's username.
const KIND_USERNAME: u8 = 1;
/// `kinds` bit of a login row: the key is the user's email.
const KIND_EMAIL: u8 = 2;
/// `kind` of a password-reset token row.
const TOKEN_RESET: i16 = 1;
/// `kind` of an email-verification token row.
const TOKEN_VERIFY: i16 = 2;

fn kind_code(k: TokenKind) -> i16 {
    match k {
        TokenKind::Reset => TOKEN_RESET,
        TokenKind::Verify => TOKEN_VERIFY,
    }
}

fn login_kind_bit(k: LoginKind) -> u8 {
    match k {
        LoginKind::Username => KIND_USERNAME,
        LoginKind::Email => KIND_EMAIL,
    }
}

/// A record by id (lookups, id lists).
pub(super) const SQL_BY_ID: &str = "SELECT record FROM userdir_users WHERE id = $1";
/// The owner of a login key (username, email, login id equality).
pub(super) const SQL_LOGIN: &str = "SELECT user_id, kinds FROM userdir_logins WHERE key = $1";
/// Login keys in a prefix range (`userName sw`, `emails sw`).
pub(super) const SQL_LOGIN_PREFIX: &str = "SELECT user_id FROM userdir_logins WHERE key >= $1 AND key < $2 \
                 AND kinds & $3 <> 0 ORDER BY key";
/// The owner of an external id.
pub(super) const SQL_EXTERNAL: &str = "SELECT id FROM userdir_users WHERE external_id = $1";
/// Inserts a user's secondary email rows: `$1` the user, `$2` the values, `$3` their types.
const SQL_INSERT_EMAILS: &str = "INSERT INTO userdir_emails (value, user_id, types) \
     SELECT v, $1, t FROM unnest($2::text[], $3::text[]) AS u(v, t)";

/// The secondary email rows of `keys` as columns: values and types (the type keys joined by
/// U+0001: PostgreSQL text cannot hold the NUL the identity rules join them with).
fn email_columns(keys: &Keys) -> (Vec<String>, Vec<String>) {
    keys.emails
        .iter()
        .map(|(v, t)| (v.clone(), t.replace('\0', "\u{1}")))
        .unzip()
}

fn insert_emails(t: &mut impl GenericClient, id: Uuid, keys: &Keys) -> Result<()> {
    if keys.emails.is_empty() {
        return Ok(());
    }
    let (v, ty) = email_columns(keys);
    t.execute(SQL_INSERT_EMAILS, &[&id, &v, &ty])
        .map_err(|e| storage(&e))?;
    Ok(())
}

/// The number of members of a role (an index-only count over the primary key).
pub(super) const SQL_ROLE_COUNT: &str = "SELECT count(*) FROM userdir_roles WHERE role = $1";
/// The members of a role.
pub(super) const SQL_ROLE: &str =
    "SELECT user_id FROM userdir_roles WHERE role = $1 ORDER BY user_id";
/// One page of the insert-instant walk (`insert_instant` ranges, sorting by insert instant):
/// `lo` and `hi` are the comparison operators of the bounds present (`>=`, `>`, `<=`, `<`);
/// the parameters are (instant, id) of each present bound, low first.
pub(super) fn inserted_page_sql(lo: Option<&str>, hi: Option<&str>, rev: bool) -> String {
    let mut sql = String::from("SELECT insert_instant, id FROM userdir_users WHERE true");
    let mut n = 0;
    for op in [lo, hi].into_iter().flatten() {
        let _ = write!(
            sql,
            " AND (insert_instant, id) {op} (${}, ${})",
            n + 1,
            n + 2
        );
        n += 2;
    }
    let dir = if rev { "DESC" } else { "ASC" };
    let _ = write!(sql, " ORDER BY insert_instant {dir}, id {dir} LIMIT {PAGE}");
    sql
}

/// One page of the login keys of `kind` starting with `prefix` in key order (descending when
/// `rev`), after the key `after` when given: parameters, in order, `prefix` (when not empty),
/// `hi` (the prefix's upper bound, when there is one), `after`. `ORDER BY key LIMIT n` over
/// the kind's partial index (migration 3): the database reads n index entries, no sort.
pub(super) fn login_page_sql(
    kind: LoginKind,
    prefix: &str,
    hi: Option<&str>,
    after: Option<&str>,
    rev: bool,
    limit: i64,
) -> String {
    use std::fmt::Write;
    let mut sql = format!(
        "SELECT key, user_id FROM userdir_logins WHERE kinds & {} <> 0",
        login_kind_bit(kind)
    );
    let mut n = 0;
    let bounds = [
        (!prefix.is_empty(), ">="),
        (!prefix.is_empty() && hi.is_some(), "<"),
        (after.is_some(), if rev { "<" } else { ">" }),
    ];
    for (present, op) in bounds {
        if present {
            n += 1;
            let _ = write!(sql, " AND key {op} ${n}");
        }
    }
    let dir = if rev { "DESC" } else { "ASC" };
    let _ = write!(sql, " ORDER BY key {dir} LIMIT {limit}");
    sql
}

/// One page of a role's members in id order after `$2` (the `(role, user_id)` primary key).
pub(super) fn role_page_sql(limit: i64) -> String {
    format!(
        "SELECT user_id FROM userdir_roles WHERE role = $1 AND user_id > $2 \
         ORDER BY user_id LIMIT {limit}"
    )
}

/// Rows fetched per round trip by the walks (bounded memory for any directory size).
const PAGE: i64 = 512;

type Param<'a> = &'a (dyn ToSql + Sync);

/// A transaction: a snapshot for reads, or a serializable write. It owns its connection
/// (begun with `BEGIN`, ended by [`PgTx::finish`]), so it has no lifetime and can sit in the
/// store's engine-neutral reader and writer.
/// A connection and the statements prepared on it (each SQL text is parsed and planned by
/// the server once per connection, not once per call).
pub(crate) struct PgConn {
    pub(super) client: Client,
    statements: std::collections::HashMap<String, postgres::Statement>,
}

impl PgConn {
    pub(super) fn new(client: Client) -> PgConn {
        PgConn {
            client,
            statements: std::collections::HashMap::new(),
        }
    }

    fn statement(
        &mut self,
        sql: &str,
    ) -> std::result::Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        // Bounded: the SQL texts are the engine's own (a few dozen shapes).
        if self.statements.len() < 256 {
            self.statements.insert(sql.to_string(), s.clone());
        }
        Ok(s)
    }
}

pub(crate) struct PgTx {
    c: Mutex<PgConn>,
    rules: IndexRules,
    failure: FailureCell,
}

impl PgTx {
    /// Starts a transaction on `c` with `begin` (`BEGIN ISOLATION LEVEL …`).
    pub(super) fn begin(
        mut c: PgConn,
        begin: &str,
        rules: IndexRules,
    ) -> std::result::Result<PgTx, Box<(PgConn, postgres::Error)>> {
        match c.client.batch_execute(begin) {
            Ok(()) => Ok(PgTx {
                c: Mutex::new(c),
                rules,
                failure: FailureCell::default(),
            }),
            Err(e) => Err(Box::new((c, e))),
        }
    }

    /// The first failure of a statement in this transaction, if any.
    pub(super) fn failure(&self) -> Option<Failure> {
        self.failure.get()
    }

    /// Commits (`commit`) or rolls back; gives the connection back.
    pub(super) fn finish(self, commit: bool) -> (PgConn, std::result::Result<(), postgres::Error>) {
        let mut c = self.c.into_inner();
        let r = c
            .client
            .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" });
        (c, r)
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut PgConn) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        let mut c = self
            .c
            .try_lock()
            .ok_or_else(|| Error::storage_msg("a query ran inside another one's callback"))?;
        f(&mut c).map_err(|e| self.failure.note(&e))
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<postgres::Row>> {
        self.with(|c| {
            let st = c.statement(sql)?;
            c.client.query(&st, params)
        })
    }

    fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<postgres::Row>> {
        self.with(|c| {
            let st = c.statement(sql)?;
            c.client.query_opt(&st, params)
        })
    }

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.with(|c| {
            let st = c.statement(sql)?;
            c.client.execute(&st, params)
        })
    }

    // ---- reads (the redb `Reader`'s operations) ----

    /// The user with this id.
    pub(crate) fn fetch_user(&self, id: Uuid) -> Result<Option<User>> {
        self.fetch_record(id, |b| codec::decode(id, b))
    }

    /// `f(encoded record)` of the user with this id.
    pub(crate) fn fetch_record<R>(
        &self,
        id: Uuid,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<Option<R>> {
        match self.query_opt(SQL_BY_ID, &[&id])? {
            Some(row) => f(row.get::<_, &[u8]>(0)).map(Some),
            None => Ok(None),
        }
    }

    /// The owner of a caseless login key and the kinds of login id it is for them.
    pub(crate) fn login_row(&self, key: &str) -> Result<Option<(Uuid, u8)>> {
        if key.contains('\0') {
            // PostgreSQL text cannot hold NUL, and no stored key has one.
            return Ok(None);
        }
        self.query_opt(SQL_LOGIN, &[&key])?
            .map(|row| Ok((row.get(0), kinds_of(row.get(1))?)))
            .transpose()
    }

    /// Calls `f(id)` for every login key starting with `prefix` whose kinds include one of
    /// `kinds`, in key order.
    pub(crate) fn login_prefix_ids(
        &self,
        prefix: &str,
        kinds: u8,
        mut f: impl FnMut(Uuid),
    ) -> Result<()> {
        if prefix.contains('\0') {
            // PostgreSQL text cannot hold NUL, and no stored key has one.
            return Ok(());
        }
        let kinds = i16::from(kinds);
        let rows = match prefix_upper(prefix) {
            Some(hi) => self.query(SQL_LOGIN_PREFIX, &[&prefix, &hi, &kinds])?,
            None => self.query(
                "SELECT user_id FROM userdir_logins WHERE key >= $1 AND kinds & $2 <> 0 \
                 ORDER BY key",
                &[&prefix, &kinds],
            )?,
        };
        for row in rows {
            f(row.get(0));
        }
        Ok(())
    }

    /// The owner of an external id.
    pub(crate) fn external_owner(&self, external_id: &str) -> Result<Option<Uuid>> {
        if external_id.contains('\0') {
            // PostgreSQL text cannot hold NUL, and no stored key has one.
            return Ok(None);
        }
        Ok(self
            .query_opt(SQL_EXTERNAL, &[&external_id])?
            .map(|r| r.get(0)))
    }

    /// Users whose username has this confusable skeleton, in id order.
    pub(crate) fn skeleton_owners(&self, skeleton: &str) -> Result<Vec<Uuid>> {
        if skeleton.contains('\0') {
            // PostgreSQL text cannot hold NUL, and no stored key has one.
            return Ok(Vec::new());
        }
        Ok(self
            .query(
                "SELECT user_id FROM userdir_skeletons WHERE skeleton = $1 ORDER BY user_id",
                &[&skeleton],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Ids of users holding `role`, in id order.
    pub(crate) fn role_ids(&self, role: &str) -> Result<Vec<Uuid>> {
        if role.contains('\0') {
            // PostgreSQL text cannot hold NUL, and no stored key has one.
            return Ok(Vec::new());
        }
        Ok(self
            .query(SQL_ROLE, &[&role])?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Walks the login keys of `kind` starting with `prefix` in key order (descending when
    /// `rev`), strictly after `after`, calling `f(key, id)` until it returns `false`. Pages of
    /// rows (the first sized by `hint`), each `ORDER BY key LIMIT n` over the partial index of
    /// that kind's keys (migration 3), so the database reads the page in index order.
    pub(crate) fn walk_logins(
        &self,
        kind: LoginKind,
        prefix: &str,
        after: Option<&str>,
        rev: bool,
        hint: usize,
        mut f: impl FnMut(&str, Uuid) -> Result<bool>,
    ) -> Result<()> {
        if prefix.contains('\0') || after.is_some_and(|a| a.contains('\0')) {
            return Ok(());
        }
        let hi = prefix_upper(prefix);
        let mut limit = i64::try_from(hint.clamp(1, 4096)).unwrap_or(PAGE);
        let mut after: Option<String> = after.map(str::to_owned);
        loop {
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            if !prefix.is_empty() {
                params.push(&prefix);
                if let Some(h) = &hi {
                    params.push(h);
                }
            }
            if let Some(a) = &after {
                params.push(a);
            }
            let sql = login_page_sql(kind, prefix, hi.as_deref(), after.as_deref(), rev, limit);
            let rows = self.query(&sql, &params)?;
            let full = rows.len() == usize::try_from(limit).unwrap_or(usize::MAX);
            let Some(end) = rows.last().map(|r| r.get::<_, String>(0)) else {
                return Ok(());
            };
            for row in &rows {
                if !f(row.get::<_, &str>(0), row.get(1))? {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            after = Some(end);
            limit = PAGE;
        }
    }

    /// The number of login keys of `kind` starting with `prefix` (an index-only count over
    /// the partial index of that kind).
    pub(crate) fn count_logins(&self, kind: LoginKind, prefix: &str) -> Result<u64> {
        if prefix.contains('\0') {
            return Ok(0);
        }
        let bit = login_kind_bit(kind);
        let row = if prefix.is_empty() {
            self.query_opt(
                &format!("SELECT count(*) FROM userdir_logins WHERE kinds & {bit} <> 0"),
                &[],
            )?
        } else if let Some(hi) = prefix_upper(prefix) {
            self.query_opt(
                &format!(
                    "SELECT count(*) FROM userdir_logins WHERE kinds & {bit} <> 0 \
                     AND key >= $1 AND key < $2"
                ),
                &[&prefix, &hi],
            )?
        } else {
            self.query_opt(
                &format!(
                    "SELECT count(*) FROM userdir_logins WHERE kinds & {bit} <> 0 AND key >= $1"
                ),
                &[&prefix],
            )?
        }
        .ok_or_else(|| Error::storage_msg("count returned no row"))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Calls `f(id)` for the holders of a role key with an id after `after`, in id order,
    /// until it returns `false` (pages over the `(role, user_id)` primary key).
    pub(crate) fn walk_role(
        &self,
        role: &str,
        mut after: Option<Uuid>,
        hint: usize,
        mut f: impl FnMut(Uuid) -> Result<bool>,
    ) -> Result<()> {
        if role.contains('\0') {
            return Ok(());
        }
        let mut limit = i64::try_from(hint.clamp(1, 4096)).unwrap_or(PAGE);
        loop {
            let rows = self.query(
                &role_page_sql(limit),
                &[&role, &after.unwrap_or(Uuid::nil())],
            )?;
            let full = rows.len() == usize::try_from(limit).unwrap_or(usize::MAX);
            for row in &rows {
                let id: Uuid = row.get(0);
                after = Some(id);
                if !f(id)? {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            limit = PAGE;
        }
    }

    /// Walks the insert-instant index between `lo` and `hi` (ascending, or descending when
    /// `rev`), calling `f(instant, id)` until it returns `false`. Fetches pages of rows, so
    /// `f` may read through this transaction.
    pub(crate) fn walk_inserted(
        &self,
        mut lo: Bound<(i64, Uuid)>,
        mut hi: Bound<(i64, Uuid)>,
        rev: bool,
        mut f: impl FnMut(i64, Uuid) -> Result<bool>,
    ) -> Result<()> {
        loop {
            let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
            let mut ops: [Option<&str>; 2] = [None, None];
            for (i, b) in [&lo, &hi].into_iter().enumerate() {
                let (op, (t, id)) = match (b, i == 0) {
                    (Bound::Included(v), true) => (">=", v),
                    (Bound::Excluded(v), true) => (">", v),
                    (Bound::Included(v), false) => ("<=", v),
                    (Bound::Excluded(v), false) => ("<", v),
                    (Bound::Unbounded, _) => continue,
                };
                params.push(Box::new(*t));
                params.push(Box::new(*id));
                if let Some(slot) = ops.get_mut(i) {
                    *slot = Some(op);
                }
            }
            let sql = inserted_page_sql(ops[0], ops[1], rev);
            let refs: Vec<Param<'_>> = params.iter().map(|b| b.as_ref() as Param<'_>).collect();
            let rows = self.query(&sql, &refs)?;
            let full = rows.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
            let mut last = None;
            for row in rows {
                let (t, id): (i64, Uuid) = (row.get(0), row.get(1));
                last = Some((t, id));
                if !f(t, id)? {
                    return Ok(());
                }
            }
            match last {
                Some(l) if full => {
                    if rev {
                        hi = Bound::Excluded(l);
                    } else {
                        lo = Bound::Excluded(l);
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Calls `f(id, encoded record)` for every user with an id greater than `after` (all when
    /// `None`), in id order, until it returns `false`. Pages of rows: bounded memory.
    pub(crate) fn records_after(
        &self,
        mut after: Option<Uuid>,
        mut f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        loop {
            let rows = match after {
                Some(a) => self.query(
                    &format!(
                        "SELECT id, record FROM userdir_users WHERE id > $1 ORDER BY id LIMIT {PAGE}"
                    ),
                    &[&a],
                )?,
                None => self.query(
                    &format!("SELECT id, record FROM userdir_users ORDER BY id LIMIT {PAGE}"),
                    &[],
                )?,
            };
            let full = rows.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
            for row in &rows {
                let id: Uuid = row.get(0);
                after = Some(id);
                if !f(id, row.get::<_, &[u8]>(1))? {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Calls `f(id, encoded record)` for every user in id order until it returns `false`.
    pub(crate) fn records(&self, f: impl FnMut(Uuid, &[u8]) -> Result<bool>) -> Result<()> {
        self.records_after(None, f)
    }

    /// Number of users.
    pub(crate) fn user_count(&self) -> Result<u64> {
        let row = self
            .query_opt("SELECT count(*) FROM userdir_users", &[])?
            .ok_or_else(|| Error::storage_msg("count returned no row"))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    // ---- writes (the redb `Writer`'s operations) ----

    /// Refuses `user` if any of `keys` belongs to another user, with the same errors as the
    /// redb engine (see [`crate::store::check_unique`]).
    fn check_unique(&self, user: &User, keys: &Keys) -> Result<()> {
        crate::store::check_unique(
            self,
            user.id,
            keys.logins
                .iter()
                .map(|(k, kinds)| (k.as_str(), kinds & KIND_USERNAME != 0)),
            keys.external.as_deref(),
            keys.skeleton.as_deref().filter(|_| self.rules.skeletons),
        )
    }

    /// Inserts a new user and its index rows.
    pub(crate) fn insert_user(&mut self, user: &User, keys: &UserKeys) -> Result<()> {
        if self
            .query_opt("SELECT 1 FROM userdir_users WHERE id = $1", &[&user.id])?
            .is_some()
        {
            return Err(Error::DuplicateId(user.id));
        }
        let keys = Keys::new(keys);
        self.check_unique(user, &keys)?;
        let bytes = codec::encode(user)?;
        self.execute(
            "INSERT INTO userdir_users (id, record, username, email, external_id, active, \
             insert_instant) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &user.id,
                &bytes,
                &user.username,
                &user.email,
                &user.external_id,
                &user.active,
                &user.insert_instant,
            ],
        )?;
        self.index(user, &keys)
    }

    /// Inserts the login, role, email and skeleton rows of `user`.
    fn index(&self, user: &User, keys: &Keys) -> Result<()> {
        if !keys.emails.is_empty() {
            let (v, t) = email_columns(keys);
            self.execute(SQL_INSERT_EMAILS, &[&user.id, &v, &t])?;
        }
        if !keys.logins.is_empty() {
            let k: Vec<&str> = keys.logins.iter().map(|(k, _)| k.as_str()).collect();
            let kinds: Vec<i16> = keys.logins.iter().map(|(_, k)| i16::from(*k)).collect();
            self.execute(
                "INSERT INTO userdir_logins (key, user_id, kinds) \
                 SELECT k, $1, n FROM unnest($2::text[], $3::smallint[]) AS u(k, n)",
                &[&user.id, &k, &kinds],
            )?;
        }
        if !keys.roles.is_empty() {
            let roles: Vec<&str> = keys.roles.iter().map(String::as_str).collect();
            self.execute(
                "INSERT INTO userdir_roles (role, user_id) SELECT r, $1 FROM unnest($2::text[]) r",
                &[&user.id, &roles],
            )?;
        }
        if let Some(s) = &keys.skeleton {
            self.execute(
                "INSERT INTO userdir_skeletons (skeleton, user_id) VALUES ($1, $2)",
                &[s, &user.id],
            )?;
        }
        Ok(())
    }

    /// Replaces `old` by `new` (same id), re-indexing what changed.
    pub(crate) fn replace_user(
        &mut self,
        (old, old_keys): (&User, &UserKeys),
        (new, new_keys): (&User, &UserKeys),
    ) -> Result<()> {
        let new_keys = Keys::new(new_keys);
        let old_keys = Keys::new(old_keys);
        self.check_unique(new, &new_keys.added_since(&old_keys))?;
        let bytes = codec::encode(new)?;
        let n = self.execute(
            "UPDATE userdir_users SET record = $2, username = $3, email = $4, external_id = $5, \
             active = $6, insert_instant = $7 WHERE id = $1",
            &[
                &new.id,
                &bytes,
                &new.username,
                &new.email,
                &new.external_id,
                &new.active,
                &new.insert_instant,
            ],
        )?;
        if n != 1 {
            return Err(Error::NotFound(new.id));
        }
        let _ = old;
        if old_keys == new_keys {
            return Ok(());
        }
        for table in [
            "userdir_logins",
            "userdir_roles",
            "userdir_skeletons",
            "userdir_emails",
        ] {
            self.execute(
                &format!("DELETE FROM {table} WHERE user_id = $1"),
                &[&new.id],
            )?;
        }
        self.index(new, &new_keys)
    }

    /// Removes a user and every row it owns (the foreign keys cascade).
    pub(crate) fn remove_user(&mut self, user: &User) -> Result<()> {
        self.execute("DELETE FROM userdir_users WHERE id = $1", &[&user.id])?;
        Ok(())
    }

    // ---- tokens and failed logins ----

    /// The token with this hash.
    pub(crate) fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.query_opt(
            "SELECT user_id, kind, expiry, binding FROM userdir_tokens WHERE hash = $1",
            &[&hash.as_slice()],
        )?
        .map(|r| token_of(&r))
        .transpose()
    }

    /// The number of tokens a user holds.
    pub(crate) fn token_count(&self, user: Uuid) -> Result<usize> {
        let row = self
            .query_opt(
                "SELECT count(*) FROM userdir_tokens WHERE user_id = $1",
                &[&user],
            )?
            .ok_or_else(|| Error::storage_msg("count returned no row"))?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Stores a new token; at most `keep` of its kind remain for the user (the ones expiring
    /// first are revoked).
    pub(crate) fn token_insert(
        &mut self,
        hash: &TokenHash,
        rec: &TokenRecord,
        keep: usize,
    ) -> Result<()> {
        let kind = kind_code(rec.kind);
        let rows = self.query(
            "SELECT hash FROM userdir_tokens WHERE user_id = $1 AND kind = $2 \
             ORDER BY expiry, hash",
            &[&rec.user, &kind],
        )?;
        let excess = (rows.len() + 1).saturating_sub(keep.max(1));
        for row in rows.iter().take(excess) {
            let h: &[u8] = row.get(0);
            self.execute("DELETE FROM userdir_tokens WHERE hash = $1", &[&h])?;
        }
        self.execute(
            "INSERT INTO userdir_tokens (hash, user_id, kind, expiry, binding) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &hash.as_slice(),
                &rec.user,
                &kind,
                &rec.expiry,
                &rec.binding.cast_signed(),
            ],
        )?;
        Ok(())
    }

    /// Removes a token; returns what it was.
    pub(crate) fn token_remove(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.query_opt(
            "DELETE FROM userdir_tokens WHERE hash = $1 \
             RETURNING user_id, kind, expiry, binding",
            &[&hash.as_slice()],
        )?
        .map(|r| token_of(&r))
        .transpose()
    }

    /// Revokes a user's tokens of `kind` (all when `None`); returns how many.
    pub(crate) fn token_revoke_user(
        &mut self,
        user: Uuid,
        kind: Option<TokenKind>,
    ) -> Result<usize> {
        let n = match kind {
            Some(k) => self.execute(
                "DELETE FROM userdir_tokens WHERE user_id = $1 AND kind = $2",
                &[&user, &kind_code(k)],
            )?,
            None => self.execute("DELETE FROM userdir_tokens WHERE user_id = $1", &[&user])?,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Removes up to `limit` tokens that expired at or before `now`, earliest first.
    pub(crate) fn token_purge_expired(&mut self, now: UnixMillis, limit: usize) -> Result<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let n = self.execute(
            "DELETE FROM userdir_tokens WHERE hash IN (SELECT hash FROM userdir_tokens \
             WHERE expiry <= $1 ORDER BY expiry, hash LIMIT $2)",
            &[&now, &limit],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The failed-login state of `id`.
    pub(crate) fn failure_row(&self, id: Uuid) -> Result<Option<FailureState>> {
        self.query_opt(
            "SELECT count, window_start, locked_until FROM userdir_login_failures \
             WHERE user_id = $1",
            &[&id],
        )?
        .map(|r| {
            Ok(FailureState {
                count: u32::try_from(r.get::<_, i64>(0))
                    .map_err(|_| Error::Corrupt("malformed failed-login row".into()))?,
                window_start: r.get(1),
                locked_until: r.get(2),
            })
        })
        .transpose()
    }

    /// Stores the failed-login state of `id`.
    pub(crate) fn failures_put(&mut self, id: Uuid, s: FailureState) -> Result<()> {
        self.execute(
            "INSERT INTO userdir_login_failures (user_id, count, window_start, locked_until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET count = $2, \
             window_start = $3, locked_until = $4",
            &[&id, &i64::from(s.count), &s.window_start, &s.locked_until],
        )?;
        Ok(())
    }

    /// The failed-login state of a login id no account has (by the digest of its key).
    pub(crate) fn login_id_failure_row(
        &self,
        digest: &LoginDigest,
    ) -> Result<Option<FailureState>> {
        self.query_opt(
            "SELECT count, window_start, locked_until FROM userdir_login_id_failures \
             WHERE digest = $1",
            &[&digest.as_slice()],
        )?
        .map(|r| failure_state(&r))
        .transpose()
    }

    /// Stores the failed-login state of a login id no account has.
    pub(crate) fn login_id_failures_put(
        &mut self,
        digest: &LoginDigest,
        s: FailureState,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO userdir_login_id_failures (digest, count, window_start, locked_until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO UPDATE SET count = $2, \
             window_start = $3, locked_until = $4",
            &[
                &digest.as_slice(),
                &i64::from(s.count),
                &s.window_start,
                &s.locked_until,
            ],
        )?;
        Ok(())
    }

    /// Removes up to `limit` rows after `after` (in digest order) that `stale` says are over.
    pub(crate) fn login_id_failures_purge(
        &mut self,
        after: &LoginDigest,
        limit: usize,
        stale: impl Fn(&FailureState) -> bool,
    ) -> Result<usize> {
        let lim = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(
            "SELECT count, window_start, locked_until, digest FROM userdir_login_id_failures \
             WHERE digest > $1 ORDER BY digest LIMIT $2",
            &[&after.as_slice(), &lim],
        )?;
        let mut gone: Vec<Vec<u8>> = Vec::new();
        for r in &rows {
            if stale(&failure_state(r)?) {
                gone.push(r.get(3));
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        let n = self.execute(
            "DELETE FROM userdir_login_id_failures WHERE digest = ANY($1)",
            &[&gone],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Forgets the failed-login state of `id`.
    pub(crate) fn failures_clear(&mut self, id: Uuid) -> Result<()> {
        self.execute(
            "DELETE FROM userdir_login_failures WHERE user_id = $1",
            &[&id],
        )?;
        Ok(())
    }

    /// The keys of a batch that existing users already hold, in the batch's key order (as the
    /// redb engine reports them): one query for every key of the batch.
    pub(crate) fn clashes(&self, batch: &BatchKeys) -> Result<Vec<Clash>> {
        let claims = batch.claims();
        let (mut logins, mut externals, mut skeletons, mut ids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (_, _, c) in &claims {
            match *c {
                Claim::Id(id) => ids.push(id),
                Claim::Login(k) => logins.push(k),
                Claim::External(x) => externals.push(x),
                Claim::Skeleton(s) if self.rules.skeletons => skeletons.push(s),
                Claim::Skeleton(_) => {}
            }
        }
        let rows = self.query(
            "SELECT 'L', key, user_id FROM userdir_logins WHERE key = ANY($1) \
             UNION ALL SELECT 'S', skeleton, min(user_id::text)::uuid FROM userdir_skeletons \
                 WHERE skeleton = ANY($2) GROUP BY skeleton \
             UNION ALL SELECT 'X', external_id, id FROM userdir_users WHERE external_id = ANY($3) \
             UNION ALL SELECT 'U', id::text, id FROM userdir_users WHERE id = ANY($4)",
            &[&logins, &skeletons, &externals, &ids],
        )?;
        let mut owners: BTreeMap<(String, String), Uuid> = BTreeMap::new();
        for r in rows {
            owners.insert((r.get(0), r.get(1)), r.get(2));
        }
        let owner = |tag: &str, key: &str| owners.get(&(tag.to_string(), key.to_string())).copied();
        let mut out = Vec::new();
        for (row, field, c) in claims {
            let with = match c {
                Claim::Id(id) => owner("U", &id.to_string()).map(ClashWith::User),
                Claim::Login(k) => owner("L", k).map(ClashWith::User),
                Claim::External(x) => owner("X", x).map(ClashWith::User),
                Claim::Skeleton(s) => owner("S", s).map(ClashWith::LookalikeUser),
            };
            if let Some(with) = with {
                out.push(Clash { row, field, with });
            }
        }
        Ok(out)
    }

    /// Inserts a whole import batch (rows unique among themselves): checks every key with one
    /// query, then loads each table with binary `COPY`. Returns the clashes with existing users
    /// instead when there are any (nothing is loaded then).
    pub(crate) fn load(&mut self, batch: &BatchKeys) -> Result<Vec<Clash>> {
        let clashes = self.clashes(batch)?;
        if !clashes.is_empty() {
            return Ok(clashes);
        }
        let users = batch.rows()?;
        let users = users.as_slice();
        use postgres::binary_copy::BinaryCopyInWriter;
        use postgres::types::Type;
        let rules = self.rules;
        let records: Vec<Vec<u8>> = {
            use rayon::prelude::*;
            users
                .par_iter()
                .map(|(_, u)| codec::encode(u))
                .collect::<Result<_>>()?
        };
        self.with(|c| {
            let t = &mut c.client;
            let sink = t.copy_in(
                "COPY userdir_users (id, record, username, email, external_id, active, \
                 insert_instant) FROM STDIN BINARY",
            )?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[
                    Type::UUID,
                    Type::BYTEA,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::BOOL,
                    Type::INT8,
                ],
            );
            for ((_, u), record) in users.iter().zip(&records) {
                w.write(&[
                    &u.id,
                    record,
                    &u.username,
                    &u.email,
                    &u.external_id,
                    &u.active,
                    &u.insert_instant,
                ])?;
            }
            w.finish()?;
            let sink = t.copy_in("COPY userdir_logins (key, user_id, kinds) FROM STDIN BINARY")?;
            let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::UUID, Type::INT2]);
            let mut skeletons = Vec::new();
            for (_, u) in users {
                let k = Keys::new(&rules.keys_of(u));
                for (key, kinds) in &k.logins {
                    w.write(&[key, &u.id, &i16::from(*kinds)])?;
                }
                if let Some(s) = k.skeleton {
                    skeletons.push((s, u.id));
                }
            }
            w.finish()?;
            let sink =
                t.copy_in("COPY userdir_emails (value, user_id, types) FROM STDIN BINARY")?;
            let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::UUID, Type::TEXT]);
            for (_, u) in users {
                let k = Keys::new(&rules.keys_of(u));
                let (values, types) = email_columns(&k);
                for (v, t) in values.iter().zip(&types) {
                    w.write(&[v, &u.id, t])?;
                }
            }
            w.finish()?;
            let sink = t.copy_in("COPY userdir_roles (role, user_id) FROM STDIN BINARY")?;
            let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::UUID]);
            for (_, u) in users {
                for r in &rules.keys_of(u).roles {
                    w.write(&[r, &u.id])?;
                }
            }
            w.finish()?;
            if !skeletons.is_empty() {
                let sink =
                    t.copy_in("COPY userdir_skeletons (skeleton, user_id) FROM STDIN BINARY")?;
                let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::UUID]);
                for (s, id) in &skeletons {
                    w.write(&[s, id])?;
                }
                w.finish()?;
            }
            Ok(())
        })?;
        Ok(Vec::new())
    }

    /// Every stored row as (table, key, value fingerprint), in table and key order: for tests
    /// that compare whole states. Records and token hashes are digested (SHA-256), so no
    /// password hash or token appears.
    #[cfg(any(test, feature = "__test-hooks"))]
    pub(crate) fn dump_rows(&self) -> Result<Vec<(&'static str, String, String)>> {
        use sha2::{Digest, Sha256};
        fn hex(b: &[u8]) -> String {
            b.iter()
                .fold(String::with_capacity(2 * b.len()), |mut s, x| {
                    let _ = write!(s, "{x:02x}");
                    s
                })
        }
        let mut out = Vec::new();
        self.records(|id, b| {
            out.push(("users", id.to_string(), hex(&Sha256::digest(b))));
            Ok(true)
        })?;
        let tables: [(&'static str, &str); 7] = [
            (
                "users.columns",
                "SELECT id::text, concat_ws(' ', username, email, external_id, active::text, \
                 insert_instant::text) FROM userdir_users ORDER BY id",
            ),
            (
                "logins",
                "SELECT key, user_id::text || ' ' || kinds::text FROM userdir_logins ORDER BY key",
            ),
            (
                "roles",
                "SELECT role || ' ' || user_id::text, '' FROM userdir_roles ORDER BY role, user_id",
            ),
            (
                "skeletons",
                "SELECT skeleton || ' ' || user_id::text, '' FROM userdir_skeletons \
                 ORDER BY skeleton, user_id",
            ),
            (
                "emails",
                "SELECT value || ' ' || user_id::text, types FROM userdir_emails \
                 ORDER BY value, user_id",
            ),
            (
                "tokens",
                "SELECT encode(sha256(hash), 'hex'), concat_ws(' ', user_id, kind, expiry, \
                 binding) FROM userdir_tokens ORDER BY hash",
            ),
            (
                "login_failures",
                "SELECT user_id::text, concat_ws(' ', count, window_start, locked_until) \
                 FROM userdir_login_failures ORDER BY user_id",
            ),
        ];
        for (name, sql) in tables {
            for r in self.query(sql, &[])? {
                out.push((name, r.get(0), r.get(1)));
            }
        }
        Ok(out)
    }

    /// Tests: the server process of this transaction's connection.
    #[cfg(test)]
    pub(crate) fn backend_pid(&self) -> Result<i32> {
        self.query_opt("SELECT pg_backend_pid()", &[])?
            .map(|r| r.get(0))
            .ok_or_else(|| Error::storage_msg("no pid"))
    }

    // ---- whole-state checks ----

    /// Rebuilds every index row from the records and compares with what is stored.
    pub(crate) fn problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut logins: BTreeMap<String, (Uuid, u8)> = BTreeMap::new();
        let mut roles: BTreeSet<(String, Uuid)> = BTreeSet::new();
        let mut emails: BTreeSet<(String, Uuid, String)> = BTreeSet::new();
        let mut skeletons: BTreeSet<(String, Uuid)> = BTreeSet::new();
        let mut columns: BTreeMap<Uuid, (Option<String>, i64, bool)> = BTreeMap::new();
        self.records(|id, b| {
            let user = match codec::decode(id, b) {
                Ok(u) => u,
                Err(e) => {
                    problems.push(e.to_string());
                    return Ok(true);
                }
            };
            if user.username.is_none() && user.email.is_none() {
                problems.push(format!("user {id} has no username and no email"));
            }
            let keys = Keys::new(&self.rules.keys_of(&user));
            let (values, types) = email_columns(&keys);
            for (v, t) in values.into_iter().zip(types) {
                emails.insert((v, id, t));
            }
            for (k, kinds) in keys.logins {
                if let Some((other, _)) = logins.insert(k.clone(), (id, kinds)) {
                    problems.push(format!(
                        "login key {k:?} is claimed by user {id} and by user {other}"
                    ));
                }
            }
            for r in &keys.roles {
                roles.insert((r.clone(), id));
            }

            if let Some(s) = keys.skeleton {
                skeletons.insert((s, id));
            }
            columns.insert(id, (keys.external, user.insert_instant, user.active));
            Ok(true)
        })?;
        let mut seen = BTreeSet::new();
        for row in self.query("SELECT key, user_id, kinds FROM userdir_logins", &[])? {
            let (k, id, kinds): (String, Uuid, i16) = (row.get(0), row.get(1), row.get(2));
            match logins.get(&k) {
                Some((owner, want)) if *owner == id && i16::from(*want) == kinds => {}
                Some(_) => problems.push(format!(
                    "index entry L:{k} points elsewhere than its record says"
                )),
                None => problems.push(format!("index entry L:{k} matches no record")),
            }
            seen.insert(k);
        }
        for k in logins.keys().filter(|k| !seen.contains(*k)) {
            problems.push(format!("missing index entry L:{k}"));
        }
        let stored: BTreeSet<(String, Uuid)> = self
            .query("SELECT role, user_id FROM userdir_roles", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (r, id) in stored.symmetric_difference(&roles) {
            problems.push(format!(
                "role index entry ({r:?}, {id}) disagrees with the records"
            ));
        }
        let stored: BTreeSet<(String, Uuid, String)> = self
            .query("SELECT value, user_id, types FROM userdir_emails", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        for (v, id, _) in stored.symmetric_difference(&emails) {
            problems.push(format!(
                "email index entry ({v:?}, {id}) disagrees with the records"
            ));
        }
        let stored: BTreeSet<(String, Uuid)> = self
            .query("SELECT skeleton, user_id FROM userdir_skeletons", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (s, id) in stored.symmetric_difference(&skeletons) {
            problems.push(format!(
                "skeleton index entry ({s:?}, {id}) disagrees with the records"
            ));
        }
        // The columns beside the record (external id, insert instant, active) must agree with
        // it; they are what the unique constraint and the range index read.
        let mut after: Option<Uuid> = None;
        loop {
            let rows = self.query(
                &format!(
                    "SELECT id, external_id, insert_instant, active FROM userdir_users \
                     WHERE id > $1 ORDER BY id LIMIT {PAGE}"
                ),
                &[&after.unwrap_or(Uuid::nil())],
            )?;
            let full = rows.len() == usize::try_from(PAGE).unwrap_or(usize::MAX);
            for row in &rows {
                let id: Uuid = row.get(0);
                after = Some(id);
                let got: (Option<String>, i64, bool) = (row.get(1), row.get(2), row.get(3));
                if let Some(want) = columns.get(&id)
                    && *want != got
                {
                    problems.push(format!("the columns of user {id} disagree with its record"));
                }
            }
            if !full || problems.len() > 100 {
                break;
            }
        }
        // Tokens and failed-login rows cannot outlive their user (foreign keys); their values
        // must still be in range.
        for row in self.query("SELECT user_id, kind FROM userdir_tokens", &[])? {
            let kind: i16 = row.get(1);
            if !matches!(kind, TOKEN_RESET | TOKEN_VERIFY) {
                problems.push(format!(
                    "tokens: a token of user {} has unknown kind {kind}",
                    row.get::<_, Uuid>(0)
                ));
            }
        }
        problems.truncate(101);
        Ok(problems)
    }
}

impl crate::store::KeyOwners for PgTx {
    fn skeleton_owners(&self, skeleton: &str) -> Result<Vec<Uuid>> {
        PgTx::skeleton_owners(self, skeleton)
    }
}

impl Snapshot for PgTx {
    fn get(&self, id: Uuid) -> Result<Option<User>> {
        self.fetch_user(id)
    }
    fn with_record<R>(&self, id: Uuid, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<Option<R>> {
        self.fetch_record(id, f)
    }
    fn count(&self) -> Result<u64> {
        self.user_count()
    }
    fn login(&self, key: &str) -> Result<Option<LoginOwner>> {
        Ok(self.login_row(key)?.map(|(id, kinds)| LoginOwner {
            id,
            username: kinds & KIND_USERNAME != 0,
            email: kinds & KIND_EMAIL != 0,
        }))
    }
    fn login_prefix(&self, prefix: &str, kind: LoginKind, f: impl FnMut(Uuid)) -> Result<()> {
        self.login_prefix_ids(prefix, login_kind_bit(kind), f)
    }
    fn external(&self, external_id: &str) -> Result<Option<Uuid>> {
        self.external_owner(external_id)
    }
    fn role_members(&self, role: &str) -> Result<Vec<Uuid>> {
        self.role_ids(role)
    }
    fn email_holders(&self, m: EmailMatch<'_>, mut f: impl FnMut(Uuid)) -> Result<()> {
        let text = match m {
            EmailMatch::Eq(s)
            | EmailMatch::Prefix(s)
            | EmailMatch::Contains(s)
            | EmailMatch::Type(s) => s,
        };
        if text.contains('\0') {
            return Ok(());
        }
        let rows = match m {
            EmailMatch::Eq(v) => {
                self.query("SELECT user_id FROM userdir_emails WHERE value = $1", &[&v])?
            }
            EmailMatch::Prefix(v) => match prefix_upper(v) {
                Some(hi) => self.query(
                    "SELECT user_id FROM userdir_emails WHERE value >= $1 AND value < $2",
                    &[&v, &hi],
                )?,
                None => self.query(
                    "SELECT user_id FROM userdir_emails WHERE value >= $1",
                    &[&v],
                )?,
            },
            EmailMatch::Contains(v) => self.query(
                "SELECT user_id FROM userdir_emails WHERE strpos(value, $1) > 0",
                &[&v],
            )?,
            EmailMatch::Type(t) => self.query(
                "SELECT user_id FROM userdir_emails \
                 WHERE $1 = ANY(string_to_array(types, chr(1)))",
                &[&t],
            )?,
        };
        for r in rows {
            f(r.get(0));
        }
        Ok(())
    }
    fn login_walk(
        &self,
        kind: LoginKind,
        prefix: &str,
        after: Option<&str>,
        rev: bool,
        hint: usize,
        f: impl FnMut(&str, Uuid) -> Result<bool>,
    ) -> Result<()> {
        self.walk_logins(kind, prefix, after, rev, hint, f)
    }
    fn login_count(&self, kind: LoginKind, prefix: &str) -> Result<u64> {
        self.count_logins(kind, prefix)
    }
    fn role_walk(
        &self,
        role: &str,
        after: Option<Uuid>,
        hint: usize,
        f: impl FnMut(Uuid) -> Result<bool>,
    ) -> Result<()> {
        self.walk_role(role, after, hint, f)
    }
    fn role_count(&self, role: &str) -> Result<u64> {
        if role.contains('\0') {
            return Ok(0);
        }
        let row = self
            .query_opt(SQL_ROLE_COUNT, &[&role])?
            .ok_or_else(|| Error::storage_msg("count returned no row"))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
    fn inserted_walk(
        &self,
        lo: Bound<(UnixMillis, Uuid)>,
        hi: Bound<(UnixMillis, Uuid)>,
        rev: bool,
        f: impl FnMut(UnixMillis, Uuid) -> Result<bool>,
    ) -> Result<()> {
        self.walk_inserted(lo, hi, rev, f)
    }
    fn for_each_record_after(
        &self,
        after: Option<Uuid>,
        f: impl FnMut(Uuid, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.records_after(after, f)
    }
    fn failures(&self, id: Uuid) -> Result<Option<FailureState>> {
        self.failure_row(id)
    }
    fn login_id_failures(&self, digest: &LoginDigest) -> Result<Option<FailureState>> {
        self.login_id_failure_row(digest)
    }
    fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.token_by_hash(hash)
    }
    fn user_token_count(&self, user: Uuid) -> Result<usize> {
        self.token_count(user)
    }
    fn batch_clashes(&self, batch: &BatchKeys) -> Result<Vec<Clash>> {
        self.clashes(batch)
    }
}

impl ReadTxn for PgTx {
    fn integrity_problems(&self) -> Result<Vec<String>> {
        self.problems()
    }
    #[cfg(any(test, feature = "__test-hooks"))]
    fn dump(&self) -> Result<Vec<(&'static str, String, String)>> {
        self.dump_rows()
    }
}

impl WriteTxn for PgTx {
    fn insert(&mut self, user: &User, keys: &UserKeys) -> Result<()> {
        self.insert_user(user, keys)
    }
    fn replace(&mut self, old: (&User, &UserKeys), new: (&User, &UserKeys)) -> Result<()> {
        self.replace_user(old, new)
    }
    fn replace_record(&mut self, new: &User) -> Result<()> {
        let bytes = codec::encode(new)?;
        let n = self.execute(
            "UPDATE userdir_users SET record = $2 WHERE id = $1",
            &[&new.id, &bytes],
        )?;
        if n != 1 {
            return Err(Error::NotFound(new.id));
        }
        Ok(())
    }
    fn remove(&mut self, user: &User, _keys: &UserKeys) -> Result<()> {
        self.remove_user(user)
    }
    fn insert_batch(&mut self, batch: &BatchKeys) -> Result<Vec<Clash>> {
        self.load(batch)
    }
    fn set_failures(&mut self, id: Uuid, state: FailureState) -> Result<()> {
        self.failures_put(id, state)
    }
    fn clear_failures(&mut self, id: Uuid) -> Result<()> {
        self.failures_clear(id)
    }
    fn set_login_id_failures(&mut self, digest: &LoginDigest, state: FailureState) -> Result<()> {
        self.login_id_failures_put(digest, state)
    }
    fn purge_stale_login_id_failures(
        &mut self,
        after: &LoginDigest,
        limit: usize,
        stale: impl Fn(&FailureState) -> bool,
    ) -> Result<usize> {
        self.login_id_failures_purge(after, limit, stale)
    }
    fn insert_token(&mut self, hash: &TokenHash, token: &TokenRecord, keep: usize) -> Result<()> {
        self.token_insert(hash, token, keep)
    }
    fn remove_token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.token_remove(hash)
    }
    fn revoke_tokens(&mut self, user: Uuid, kind: Option<TokenKind>) -> Result<usize> {
        self.token_revoke_user(user, kind)
    }
    fn purge_expired_tokens(&mut self, now: UnixMillis, limit: usize) -> Result<usize> {
        self.token_purge_expired(now, limit)
    }
}

/// The keys one user owns as this engine stores them: a username and an email with the same
/// key share one login row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    /// (caseless key, kinds)
    pub logins: Vec<(String, u8)>,
    pub external: Option<String>,
    pub skeleton: Option<String>,
    /// Role keys (caseless, distinct).
    pub roles: Vec<String>,
    /// Secondary email keys (value, types joined by `0x00`).
    pub emails: Vec<(String, String)>,
}

impl Keys {
    pub(crate) fn new(k: &UserKeys) -> Keys {
        let mut logins: Vec<(String, u8)> = Vec::with_capacity(2);
        if let Some(u) = &k.username {
            logins.push((u.clone(), KIND_USERNAME));
        }
        if let Some(e) = &k.email {
            match logins.first_mut() {
                Some((u, kinds)) if u == e => *kinds |= KIND_EMAIL,
                _ => logins.push((e.clone(), KIND_EMAIL)),
            }
        }
        Keys {
            logins,
            external: k.external_id.clone(),
            skeleton: k.skeleton.clone(),
            roles: k.roles.clone(),
            emails: k.emails.clone(),
        }
    }

    /// The keys of `self` that `old` does not hold: only those can conflict on a replace.
    fn added_since(&self, old: &Keys) -> Keys {
        Keys {
            logins: self
                .logins
                .iter()
                .filter(|l| !old.logins.contains(l))
                .cloned()
                .collect(),
            external: self
                .external
                .clone()
                .filter(|x| old.external.as_ref() != Some(x)),
            skeleton: self
                .skeleton
                .clone()
                .filter(|s| old.skeleton.as_ref() != Some(s)),
            roles: Vec::new(),
            emails: Vec::new(),
        }
    }
}

/// Migration 3: role rows keyed by the caseless role key (`identity::role_key`), as the
/// identity rules compute them (roles that fold to one key merge), and the secondary email
/// rows of every user.
pub(super) fn migrate_v3(t: &mut impl GenericClient, rules: IndexRules) -> Result<()> {
    let rows = t
        .query("SELECT id, record FROM userdir_users", &[])
        .map_err(|e| storage(&e))?;
    for row in rows {
        let id: Uuid = row.get(0);
        let keys = Keys::new(&rules.keys_of(&codec::decode(id, row.get::<_, &[u8]>(1))?));
        insert_emails(t, id, &keys)?;
    }
    let roles: Vec<String> = t
        .query("SELECT DISTINCT role FROM userdir_roles", &[])
        .map_err(|e| storage(&e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for r in roles {
        let key = crate::identity::role_key(&r);
        if key == r {
            continue;
        }
        t.execute(
            "INSERT INTO userdir_roles (role, user_id) SELECT $2, user_id FROM userdir_roles \
             WHERE role = $1 ON CONFLICT DO NOTHING",
            &[&r, &key],
        )
        .map_err(|e| storage(&e))?;
        t.execute("DELETE FROM userdir_roles WHERE role = $1", &[&r])
            .map_err(|e| storage(&e))?;
    }
    Ok(())
}

/// Rebuilds (look-alike refusal on) or drops the skeleton rows of every user; the skeletons
/// come from the identity rules (`rules`), as every key.
pub(super) fn rebuild_skeletons(t: &mut impl GenericClient, rules: IndexRules) -> Result<()> {
    t.execute("DELETE FROM userdir_skeletons", &[])
        .map_err(|e| storage(&e))?;
    if !rules.skeletons {
        return Ok(());
    }
    let rows = t
        .query("SELECT id, record FROM userdir_users", &[])
        .map_err(|e| storage(&e))?;
    for row in rows {
        let id: Uuid = row.get(0);
        let user = codec::decode(id, row.get::<_, &[u8]>(1))?;
        if let Some(s) = rules.keys_of(&user).skeleton {
            t.execute(
                "INSERT INTO userdir_skeletons (skeleton, user_id) VALUES ($1, $2)",
                &[&s, &id],
            )
            .map_err(|e| storage(&e))?;
        }
    }
    Ok(())
}

fn kinds_of(k: i16) -> Result<u8> {
    match u8::try_from(k) {
        Ok(k) if k & (KIND_USERNAME | KIND_EMAIL) != 0 && k <= (KIND_USERNAME | KIND_EMAIL) => {
            Ok(k)
        }
        _ => Err(Error::Corrupt("malformed login entry".into())),
    }
}

fn token_of(r: &postgres::Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        user: r.get(0),
        kind: match r.get::<_, i16>(1) {
            TOKEN_RESET => TokenKind::Reset,
            TOKEN_VERIFY => TokenKind::Verify,
            k => return Err(Error::Corrupt(format!("a token of unknown kind {k}"))),
        },
        expiry: r.get(2),
        binding: r.get::<_, i64>(3).cast_unsigned(),
    })
}

/// The smallest string greater than every string that starts with `prefix` (`None` when
/// there is none: every string then qualifies from `prefix` on).
fn prefix_upper(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut n = u32::from(last) + 1;
        if (0xD800..0xE000).contains(&n) {
            n = 0xE000;
        }
        if let Some(c) = char::from_u32(n) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A failed-login row's first three columns (count, window start, locked until).
fn failure_state(r: &postgres::Row) -> Result<FailureState> {
    Ok(FailureState {
        count: u32::try_from(r.get::<_, i64>(0))
            .map_err(|_| Error::Corrupt("malformed failed-login row".into()))?,
        window_start: r.get(1),
        locked_until: r.get(2),
    })
}

#[cfg(test)]
mod tests {
    use super::prefix_upper;

    #[test]
    fn prefix_upper_bounds_the_prefix() {
        assert_eq!(prefix_upper("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper(""), None);
        assert_eq!(prefix_upper("\u{10FFFF}"), None);
    }
}
