//! The PostgreSQL engine (feature `postgres`): the same operations as the redb file, on a
//! relational schema (see [`schema`]) that the database itself keeps unique across processes.
//!
//! Every operation is one transaction: reads are `REPEATABLE READ READ ONLY` (one snapshot),
//! writes `SERIALIZABLE`, retried on serialization failure (`40001`) and deadlock (`40P01`)
//! with capped exponential backoff and full jitter; exhaustion is
//! [`Error::TooManyConflicts`]. A connection lost while `COMMIT` was in flight is
//! [`Error::OutcomeUnknown`]: the write may or may not have committed.
//!
//! Records are stored with the same codec as in the redb file, so the search evaluation, the
//! identity keys and the integrity rules are shared code; only the storage differs.

pub(crate) mod schema;
mod tx;

use std::time::Duration;

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::{Config, IsolationLevel, NoTls};

use super::{IndexRules, Reader, Writer};
use crate::error::{Error, Result};

use tx::PgConn;
pub(crate) use tx::PgTx;

/// How a failed statement affects the transaction it ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A serialization failure, a deadlock or a unique violation raised by a concurrent
    /// transaction: running the transaction again may succeed (or give a typed error).
    Retry,
    /// The connection is gone.
    Lost,
    /// Anything else: the transaction is aborted.
    Other,
}

/// Retry settings of write transactions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// The first backoff ceiling; it doubles after each attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 30,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(100),
        }
    }
}

impl Retry {
    /// The pause before attempt `n + 1` (n ≥ 1): uniform in `[0, min(cap, base·2ⁿ⁻¹)]`.
    fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if nanos == 0 {
            0
        } else {
            rand::random::<u64>() % nanos
        })
    }
}

/// Classifies a driver error.
pub(crate) fn classify(e: &postgres::Error) -> Failure {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::UNIQUE_VIOLATION =>
        {
            Failure::Retry
        }
        // The server ended the session (administrator command, crash shutdown) or the
        // connection broke (class 08): whatever was in flight may or may not have happened.
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || c.code().starts_with("08") =>
        {
            Failure::Lost
        }
        Some(_) => Failure::Other,
        None if e.is_closed() => Failure::Lost,
        None => {
            // An I/O error on the socket (reset, timeout) leaves no code either.
            let io = std::error::Error::source(e)
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
            if io { Failure::Lost } else { Failure::Other }
        }
    }
}

/// A driver error as userdir's error: the SQLSTATE and the server's message, never its
/// `DETAIL` (which can quote the values of a row).
pub(crate) fn storage(e: &postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            Error::storage_msg(format!("postgresql {}: {}", db.code().code(), db.message()))
        }
        None => Error::storage_msg(format!("postgresql: {e}")),
    }
}

/// The connection settings of a URL, with the password never shown.
fn parse_url(url: &str) -> Result<Config> {
    url.parse::<Config>().map_err(|e| {
        Error::InvalidField {
            field: "url",
            // The driver's message names the bad part, not the password.
            reason: format!("is not a PostgreSQL connection URL: {e}"),
        }
    })
}

/// A schema name is spliced into SQL: only plain lowercase identifiers are accepted.
fn check_schema_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: "postgres_schema",
            reason:
                "must be 1 to 63 lowercase ASCII letters, digits or _, not starting with a digit"
                    .into(),
        })
    }
}

/// A PostgreSQL database and a small pool of connections to it.
pub(crate) struct PgStore {
    config: Config,
    idle: Mutex<Vec<PgConn>>,
    max_idle: usize,
    rules: IndexRules,
    /// `Some((recorded, ours))` when the database's keys were computed under another Unicode
    /// version than this process's: writes are refused.
    unicode_mismatch: Option<(u64, u64)>,
    retry: Retry,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("skeletons", &self.rules.skeletons)
            .finish_non_exhaustive()
    }
}

/// A connection taken from the pool; it goes back when dropped, unless it broke.
struct Conn<'s> {
    store: &'s PgStore,
    client: Option<PgConn>,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.client.is_closed()
        {
            let mut idle = self.store.idle.lock();
            if idle.len() < self.store.max_idle {
                idle.push(c);
            }
        }
    }
}

impl PgStore {
    /// Connects to `url`, creates or migrates the schema, and checks the meta row. With
    /// `schema`, the tables live in that PostgreSQL schema (created when missing), so several
    /// directories can share one database.
    pub(crate) fn open(
        url: &str,
        schema: Option<&str>,
        rules: IndexRules,
        max_idle: usize,
    ) -> Result<PgStore> {
        let mut config = parse_url(url)?;
        if let Some(name) = schema {
            check_schema_name(name)?;
            let mut c = config.connect(NoTls).map_err(|e| storage(&e))?;
            c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}"))
                .or_else(|e| {
                    // Two processes creating it at once: the loser finds it made.
                    if classify(&e) == Failure::Retry {
                        Ok(())
                    } else {
                        Err(storage(&e))
                    }
                })?;
            let options = config.get_options().unwrap_or_default().to_string();
            config.options(&format!("{options} -c search_path={name}"));
        }
        let mut store = PgStore {
            config,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
            rules,
            unicode_mismatch: None,
            retry: Retry::default(),
        };
        store.unicode_mismatch = store.migrate()?;
        Ok(store)
    }

    fn connect(&self) -> Result<PgConn> {
        self.config
            .connect(NoTls)
            .map(PgConn::new)
            .map_err(|e| storage(&e))
    }

    fn conn(&self) -> Result<Conn<'_>> {
        let pooled = self.idle.lock().pop();
        let client = match pooled {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect()?,
        };
        Ok(Conn {
            store: self,
            client: Some(client),
        })
    }

    /// Creates the meta row and applies the missing migrations, under `SELECT … FOR UPDATE`
    /// on the meta row. Returns the Unicode mismatch, if any.
    fn migrate(&self) -> Result<Option<(u64, u64)>> {
        let ours = self.rules.version;
        let mut conn = self.conn()?;
        let client = &mut conn.client.as_mut().ok_or_else(gone)?.client;
        // Two processes creating the table at once: one of them gets a unique violation on
        // the catalog; it retries and then finds the table.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = client.batch_execute(&format!(
                "BEGIN; {}; INSERT INTO userdir_meta VALUES (1, 0, {}, {ours}, {}) \
                 ON CONFLICT (id) DO NOTHING; COMMIT",
                schema::META,
                super::codec::RECORD_V1,
                self.rules.skeletons
            ));
            match r {
                Ok(()) => break,
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK");
                    if attempt >= self.retry.attempts || classify(&e) != Failure::Retry {
                        return Err(storage(&e));
                    }
                    pause(self.retry.backoff(attempt));
                }
            }
        }
        let mut t = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .map_err(|e| storage(&e))?;
        let row = t
            .query_one(
                "SELECT schema_version, unicode_version, skeletons FROM userdir_meta \
                 WHERE id = 1 FOR UPDATE",
                &[],
            )
            .map_err(|e| storage(&e))?;
        let version: i64 = row.get(0);
        let unicode: i64 = row.get(1);
        let skeletons: bool = row.get(2);
        if version > schema::SCHEMA_VERSION {
            return Err(Error::UnsupportedFormat {
                found: u64::try_from(version).unwrap_or(0),
                supported: u64::try_from(schema::SCHEMA_VERSION).unwrap_or(0),
            });
        }
        for (i, step) in schema::MIGRATIONS.iter().enumerate() {
            let to = i64::try_from(i + 1).unwrap_or(i64::MAX);
            if to > version {
                t.batch_execute(step).map_err(|e| storage(&e))?;
                if to == schema::CASELESS_ROLES {
                    tx::migrate_v3(&mut t, self.rules)?;
                }
                t.execute(
                    "UPDATE userdir_meta SET schema_version = $1 WHERE id = 1",
                    &[&to],
                )
                .map_err(|e| storage(&e))?;
            }
        }
        let recorded = u64::try_from(unicode).unwrap_or(0);
        let mismatch = (recorded != ours).then_some((recorded, ours));
        if mismatch.is_none() && skeletons != self.rules.skeletons {
            // Look-alike refusal was switched: build or drop the skeleton index.
            tx::rebuild_skeletons(&mut t, self.rules)?;
            t.execute(
                "UPDATE userdir_meta SET skeletons = $1 WHERE id = 1",
                &[&self.rules.skeletons],
            )
            .map_err(|e| storage(&e))?;
        }
        t.commit().map_err(|e| storage(&e))?;
        Ok(mismatch)
    }

    /// Runs `f` on one snapshot (`REPEATABLE READ READ ONLY`).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let client = conn.client.take().ok_or_else(gone)?;
        let tx = PgTx::begin(
            client,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            self.rules,
        )
        .map_err(|b| {
            let (c, e) = *b;
            conn.client = Some(c);
            storage(&e)
        })?;
        let reader = Reader::Postgres(tx);
        let r = f(&reader);
        let Reader::Postgres(tx) = reader else {
            return Err(gone());
        };
        // Read-only: nothing to commit; ending it returns the connection clean.
        let (c, _) = tx.finish(false);
        conn.client = Some(c);
        r
    }

    /// Runs `f` in one `SERIALIZABLE` transaction and commits when it returns `Ok`, running it
    /// again after a serialization failure or deadlock (see the module docs).
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        if let Some((recorded, ours)) = self.unicode_mismatch {
            return Err(Error::UnicodeMismatch {
                database: recorded,
                process: ours,
            });
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write_once(&mut f) {
                Err(Attempt::Retry(e)) => {
                    if attempt >= self.retry.attempts {
                        drop(e);
                        return Err(Error::TooManyConflicts { attempts: attempt });
                    }
                    pause(self.retry.backoff(attempt));
                }
                Err(Attempt::Done(e)) => return Err(e),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// Runs `f` once in one `SERIALIZABLE` transaction (see [`PgStore::write`]).
    pub(crate) fn write_single<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        if let Some((recorded, ours)) = self.unicode_mismatch {
            return Err(Error::UnicodeMismatch {
                database: recorded,
                process: ours,
            });
        }
        let mut f = Some(f);
        match self.write_once(&mut |tx: &mut Writer<'_>| match f.take() {
            Some(f) => f(tx),
            None => Err(Error::storage_msg("a transaction ran twice")),
        }) {
            Ok(v) => Ok(v),
            Err(Attempt::Retry(_)) => Err(Error::TooManyConflicts { attempts: 1 }),
            Err(Attempt::Done(e)) => Err(e),
        }
    }

    fn write_once<T>(
        &self,
        f: &mut impl FnMut(&mut Writer<'_>) -> Result<T>,
    ) -> std::result::Result<T, Attempt> {
        let mut conn = self.conn().map_err(Attempt::Done)?;
        let client = conn.client.take().ok_or_else(gone).map_err(Attempt::Done)?;
        let tx =
            PgTx::begin(client, "BEGIN ISOLATION LEVEL SERIALIZABLE", self.rules).map_err(|b| {
                let (c, e) = *b;
                conn.client = Some(c);
                match classify(&e) {
                    Failure::Retry => Attempt::Retry(storage(&e)),
                    _ => Attempt::Done(storage(&e)),
                }
            })?;
        let mut w = Writer::Postgres(tx);
        let r = f(&mut w);
        let Writer::Postgres(tx) = w else {
            return Err(Attempt::Done(gone()));
        };
        let failure = tx.failure();
        let commit = r.is_ok() && failure.is_none();
        let (c, ended) = tx.finish(commit);
        conn.client = Some(c);
        match (r, failure) {
            (r, Some(Failure::Retry)) => Err(Attempt::Retry(
                r.err().unwrap_or(Error::TooManyConflicts { attempts: 1 }),
            )),
            (Err(e), _) => Err(Attempt::Done(e)),
            (Ok(_), Some(_)) => Err(Attempt::Done(Error::storage_msg(
                "a statement failed inside the transaction; nothing was committed",
            ))),
            (Ok(v), None) => match ended {
                Ok(()) => Ok(v),
                Err(e) => Err(match classify(&e) {
                    Failure::Retry => Attempt::Retry(storage(&e)),
                    Failure::Lost => Attempt::Done(Error::OutcomeUnknown(
                        "the connection to PostgreSQL was lost during COMMIT".into(),
                    )),
                    Failure::Other => Attempt::Done(storage(&e)),
                }),
            },
        }
    }
}

/// The outcome of one attempt of a write transaction.
enum Attempt {
    /// Worth running again.
    Retry(Error),
    /// Final.
    Done(Error),
}

/// Waits out a retry backoff. The one sleep of the library: a backoff between attempts of a
/// conflicting transaction is wall-clock time by nature (the clock rule is about instants a
/// test must control, and no test waits on this beyond milliseconds).
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn gone() -> Error {
    Error::storage_msg("postgresql: no connection")
}

/// Records the first failure of a transaction's statements.
#[derive(Default)]
pub(crate) struct FailureCell(Mutex<Option<Failure>>);

impl FailureCell {
    pub(crate) fn note(&self, e: &postgres::Error) -> Error {
        self.0.lock().get_or_insert(classify(e));
        storage(e)
    }
    pub(crate) fn get(&self) -> Option<Failure> {
        *self.0.lock()
    }
}

#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;
