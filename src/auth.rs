//! Authentication and the account workflows: login with lockout and rehash on login, change
//! password, password reset and email verification.
//!
//! Password hashing and verification (argon2, tens of milliseconds) never run inside a write
//! transaction. Each operation reads the user in a snapshot, verifies or hashes outside any
//! transaction, then records the outcome in a short write transaction that first checks the
//! stored hash is still the one it verified against (if it changed meanwhile, the operation
//! starts over with the new one).

use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{AuthConfig, AuthState, FailureFloor, Lockout, millis};
use crate::directory::{Directory, Tx};
use crate::error::{Error, Result};
use crate::identity;
use crate::store::{FailureState, LoginDigest, Snapshot, TokenKind, TokenRecord, WriteTxn, Writer};
use crate::token::Token;
use crate::user::{StoredHash, UnixMillis, User};

/// How many times an operation starts over when the user's password hash changed between its
/// read and its write.
const MAX_ATTEMPTS: usize = 3;
/// Expired tokens removed, at most, by each operation that writes the token table.
const PURGE_BATCH: usize = 64;
/// Outstanding password-reset tokens a user can hold; issuing one more revokes the oldest.
const MAX_RESET_TOKENS: usize = 8;

impl AuthState {
    /// Records how long a failed login's work took, then returns how long it must last.
    fn floor_after(&self, kind: Kind, took: Duration) -> Duration {
        match self.config.failure_floor {
            FailureFloor::Off => Duration::ZERO,
            FailureFloor::Fixed(d) => d,
            FailureFloor::Adaptive => {
                let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                if let Some(e) = self.estimates.get(kind as usize) {
                    let _ = e.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                        Some(if sample >= old {
                            sample
                        } else {
                            old - (old - sample) / 16
                        })
                    });
                }
                let max = self
                    .estimates
                    .iter()
                    .map(|e| e.load(Ordering::Relaxed))
                    .max()
                    .unwrap_or(0);
                Duration::from_nanos(max).min(FailureFloor::ADAPTIVE_CAP)
            }
        }
    }
}

/// What a failed login verified.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The dummy hash, or a hash with the current argon2id parameters.
    Current = 0,
    /// An argon2 hash with other parameters.
    OtherArgon2 = 1,
    Bcrypt = 2,
    Pbkdf2 = 3,
}

impl Kind {
    fn of(hasher: &crate::password::Hasher, h: &StoredHash) -> Kind {
        let s = h.expose();
        if s.starts_with("$argon2") {
            if hasher.needs_rehash(h) {
                Kind::OtherArgon2
            } else {
                Kind::Current
            }
        } else if s.starts_with("$2") {
            Kind::Bcrypt
        } else {
            Kind::Pbkdf2
        }
    }
}

/// The digest under which an unknown login id's failures are counted: its caseless lookup
/// key (`key`), hashed (the store never keeps what someone typed into a login box).
fn key_digest(key: &str) -> LoginDigest {
    let mut h = Sha256::new();
    h.update(b"userdir login id\0");
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Rows of unknown login ids looked at, at most, by each failure recorded for one.
const LOGIN_PURGE_SCAN: usize = 8;

/// A successful login (see [`Directory::authenticate`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Login {
    /// The user, with its new last-login instant (and its new hash when `rehashed`).
    pub user: User,
    /// The user must change the password now: the caller should send them to a password change
    /// before letting them in further. The login itself succeeded.
    pub password_change_required: bool,
    /// The stored hash used another scheme or other argon2 parameters and was replaced by an
    /// argon2id hash with the directory's current parameters.
    pub rehashed: bool,
}

/// A user's failed-login state (see [`Directory::login_failures`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoginFailures {
    /// Consecutive failures counted in the current window.
    pub count: u32,
    /// When the current window started (0 when there are no failures).
    pub window_start: UnixMillis,
    /// Until when the account is locked, if it is locked now.
    pub locked_until: Option<UnixMillis>,
}

/// What the write phase of an operation found.
enum Outcome<T> {
    Done(T),
    /// The stored hash changed since it was verified (the user is now at this version): start
    /// over.
    Changed(u64),
    /// A refusal that must still commit what was written (an expired token's removal).
    Refused(Error),
}

fn lock_of(s: Option<FailureState>, now: UnixMillis) -> Option<UnixMillis> {
    s.and_then(|s| s.locked_until).filter(|u| *u > now)
}

/// A fingerprint binding a token to the value it was issued for.
fn binding(value: Option<&str>) -> u64 {
    let d = Sha256::digest(value.unwrap_or("").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(b)
}

fn reset_binding(u: &User) -> u64 {
    binding(u.password.as_ref().map(StoredHash::expose))
}

fn verify_binding(u: &User) -> u64 {
    binding(u.email.as_deref())
}

fn login_ids(u: &User) -> Vec<&str> {
    u.username
        .as_deref()
        .into_iter()
        .chain(u.email.as_deref())
        .collect()
}

/// The user a login id names (on a snapshot or in a write transaction).
fn find_login(r: &impl Snapshot, login_id: &str) -> Result<Option<User>> {
    find_key(r, &identity::lookup_key(login_id))
}

/// The user whose login id has the caseless lookup key `key`.
fn find_key(r: &impl Snapshot, key: &str) -> Result<Option<User>> {
    match r.login(key)? {
        Some(owner) => r.get(owner.id),
        None => Ok(None),
    }
}

impl Directory {
    fn auth_config(&self) -> &AuthConfig {
        &self.inner.auth.config
    }

    /// The argon2id hash verified when a login id is unknown (or the account has no password),
    /// made once with the directory's parameters and pepper, so that such a login costs what a
    /// real one does.
    fn dummy_hash(&self) -> Result<&StoredHash> {
        let cell = &self.inner.auth.dummy;
        if let Some(h) = cell.get() {
            return Ok(h);
        }
        let h = self.inner.hasher.hash(Token::generate().as_str())?;
        let _ = cell.set(h);
        cell.get()
            .ok_or_else(|| Error::Hashing("dummy hash unavailable".into()))
    }

    /// Refuses a verified user who may not log in now: inactive, expired, or locked.
    fn check_status(
        &self,
        user: &User,
        failures: Option<FailureState>,
        now: UnixMillis,
    ) -> Result<()> {
        if !user.active {
            return Err(Error::AccountInactive);
        }
        if user.expiry.is_some_and(|e| e <= now) {
            return Err(Error::AccountExpired);
        }
        if self.auth_config().lockout.is_some()
            && let Some(until) = lock_of(failures, now)
        {
            return Err(Error::AccountLocked { until });
        }
        Ok(())
    }

    /// Verifies a login id and password. On success returns the user (whose stored hash is the
    /// one verified); on failure records it (per account, or per login id when no account has
    /// it) and makes the failure last the [floor](AuthConfig::failure_floor).
    fn check_credentials(&self, login_id: &str, password: &str) -> Result<User> {
        let started = std::time::Instant::now();
        let (r, kind) = self.check_credentials_timed(login_id, password);
        if matches!(
            r,
            Err(Error::InvalidCredentials | Error::AccountLocked { .. })
        ) {
            let took = started.elapsed();
            let floor = self.inner.auth.floor_after(kind, took);
            if let Some(rest) = floor.checked_sub(took) {
                // The floor is wall-clock time an observer measures, not directory time: the
                // injected clock has no say here.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(rest);
            }
        }
        r
    }

    /// [`Directory::check_credentials`] without the floor; also says what was verified.
    ///
    /// The work is the same whether the login id names an account or not: one verification
    /// (the account's hash, or the dummy hash for an unknown id, an account without a password
    /// or a locked one), then, with lockout on, one write recording the failure (under the
    /// account, or under the login id's digest). A locked login id, known or not, verifies the
    /// dummy hash and writes nothing.
    fn check_credentials_timed(&self, login_id: &str, password: &str) -> (Result<User>, Kind) {
        let dummy = match self.dummy_hash() {
            Ok(d) => d,
            Err(e) => return (Err(e), Kind::Current),
        };
        let lockout = self.auth_config().lockout;
        // The caseless key once, for the lookup and for the digest (which every attempt
        // computes, known login id or not: the same work either way).
        let key = identity::lookup_key(login_id);
        let digest = key_digest(&key);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.now();
            let read = self.read_raw(|r| {
                let user = find_key(r, &key)?;
                let failures = match (&user, lockout) {
                    (_, None) => None,
                    (Some(u), Some(_)) => r.failures(u.id)?,
                    (None, Some(_)) => r.login_id_failures(&digest)?,
                };
                Ok((user, failures))
            });
            let (user, failures) = match read {
                Ok(x) => x,
                Err(e) => return (Err(e), Kind::Current),
            };
            if lockout.is_some()
                && let Some(until) = lock_of(failures, now)
            {
                // Same work for a known and an unknown login id: one verification.
                let _ = self.inner.hasher.verify(dummy, password);
                return (Err(Error::AccountLocked { until }), Kind::Current);
            }
            let (ok, kind) = match user.as_ref().and_then(|u| u.password.as_ref()) {
                // What was verified only matters to a failure's floor: a success does not parse
                // the hash's parameters for it.
                Some(h) => match self.inner.hasher.verify(h, password) {
                    Ok(true) => (true, Kind::Current),
                    Ok(false) => (false, Kind::of(&self.inner.hasher, h)),
                    Err(e) => return (Err(e), Kind::of(&self.inner.hasher, h)),
                },
                None => {
                    // Same cost as a real login, so timing does not reveal that the id is
                    // unknown (or that the account has no password).
                    let _ = self.inner.hasher.verify(dummy, password);
                    (false, Kind::Current)
                }
            };
            if ok && let Some(user) = user {
                return match self.check_status(&user, failures, now) {
                    Ok(()) => (Ok(user), kind),
                    // Padded as a failure (see `check_credentials`): say what was verified.
                    Err(e @ Error::AccountLocked { .. }) => {
                        let kind = user
                            .password
                            .as_ref()
                            .map_or(Kind::Current, |h| Kind::of(&self.inner.hasher, h));
                        (Err(e), kind)
                    }
                    Err(e) => (Err(e), kind),
                };
            }
            let Some(lockout) = lockout else {
                return (Err(Error::InvalidCredentials), kind);
            };
            let outcome = match user {
                Some(user) => self.record_user_failure(user.id, user.password, lockout),
                None => self.record_login_failure(digest, lockout),
            };
            return match outcome {
                Ok(Outcome::Done(Some(until))) => (Err(Error::AccountLocked { until }), kind),
                Ok(Outcome::Done(None)) => (Err(Error::InvalidCredentials), kind),
                Ok(Outcome::Refused(e)) | Err(e) => (Err(e), kind),
                Ok(Outcome::Changed(_)) => continue,
            };
        }
        (Err(Error::InvalidCredentials), Kind::Current)
    }

    /// Counts a failed login of an account whose hash was `verified`; returns the lock it
    /// set, if any.
    fn record_user_failure(
        &self,
        id: Uuid,
        verified: Option<StoredHash>,
        lockout: Lockout,
    ) -> Result<Outcome<Option<UnixMillis>>> {
        self.write_one(move |tx| {
            let now = tx.dir.now();
            let Some(cur) = tx.w.get(id)? else {
                return Ok(Outcome::Refused(Error::InvalidCredentials));
            };
            if cur.password != verified {
                return Ok(Outcome::Changed(cur.version));
            }
            let prev = tx.w.failures(id)?;
            if let Some(until) = lock_of(prev, now) {
                return Ok(Outcome::Refused(Error::AccountLocked { until }));
            }
            let next = next_failure_state(prev, now, &lockout);
            tx.w.set_failures(id, next)?;
            Ok(Outcome::Done(next.locked_until))
        })
    }

    /// Counts a failed login of a login id that names no account (so that it locks as an
    /// account would), and forgets a few such rows that are over.
    fn record_login_failure(
        &self,
        digest: LoginDigest,
        lockout: Lockout,
    ) -> Result<Outcome<Option<UnixMillis>>> {
        self.write_one(move |tx| {
            let now = tx.dir.now();
            let prev = tx.w.login_id_failures(&digest)?;
            if let Some(until) = lock_of(prev, now) {
                return Ok(Outcome::Refused(Error::AccountLocked { until }));
            }
            let next = next_failure_state(prev, now, &lockout);
            tx.w.set_login_id_failures(&digest, next)?;
            tx.w.purge_stale_login_id_failures(&digest, LOGIN_PURGE_SCAN, |s| {
                lock_of(Some(*s), now).is_none()
                    && now.saturating_sub(s.window_start) >= millis(lockout.window)
            })?;
            Ok(Outcome::Done(next.locked_until))
        })
    }

    /// Logs a user in with a login id (username, caselessly, or email) and a password.
    ///
    /// The password is verified outside any write transaction. On success, the last-login
    /// instant is recorded, the failed-login count is cleared, and a password stored with an
    /// imported scheme or other argon2 parameters is rehashed with the current ones (see
    /// [`Login::rehashed`]), all in one short write transaction. A bcrypt hash matched by a
    /// password of 72 bytes or more is not rehashed: bcrypt ignores the bytes after the 72nd,
    /// so the match does not prove which password was hashed, and a login never changes which
    /// passwords are accepted.
    ///
    /// # Account enumeration
    /// A login id that names no account and a wrong password for an account answer alike:
    ///
    /// * **Answer**: [`Error::InvalidCredentials`], and [`Error::AccountLocked`] after
    ///   [`Lockout::max_failures`] failures in either case: failures are counted per account,
    ///   and per login id (its caseless form) when no account has it.
    /// * **Work and writes**: one password verification (the account's hash, or a dummy
    ///   argon2id hash with the current parameters and pepper), then one write transaction
    ///   recording the failure (with lockout on). A locked login id, known or not, verifies
    ///   the dummy hash and writes nothing.
    /// * **Time**: every failure (wrong password, unknown id, locked) then lasts at least
    ///   [`AuthConfig::failure_floor`]. With the default, [`FailureFloor::Adaptive`], that is
    ///   the slowest kind of failure measured since the directory was opened.
    ///
    /// What remains observable, precisely:
    ///
    /// * With [`FailureFloor::Adaptive`], until a failed login of an account whose hash is of
    ///   a slower kind (bcrypt, PBKDF2 or argon2 with other parameters than the current ones)
    ///   has been measured since the directory was opened, failures are not padded to it: the
    ///   first failed logins of such accounts after opening take longer than an unknown id's.
    ///   Kinds slower than [`FailureFloor::ADAPTIVE_CAP`] stay slower. A
    ///   [`FailureFloor::Fixed`] floor above the slowest scheme present closes both gaps;
    ///   [`FailureFloor::Off`] leaves every scheme's own cost visible.
    /// * A success is not padded: the right password for an inactive, expired or locked-out
    ///   account answers as such (only to someone who knows the password).
    /// * The failures of an account's username and email count together, those of an unknown
    ///   id alone: someone who locks an account through its username learns that its email
    ///   is locked too, which tells that the two belong together (not that an unknown id
    ///   exists or not).
    /// * [`Directory::start_password_reset`] answers [`Error::InvalidCredentials`] for an
    ///   unknown id (see there).
    ///
    /// A user flagged `password_change_required` logs in; [`Login::password_change_required`]
    /// tells the caller to ask for a new password.
    ///
    /// # Examples
    /// ```
    /// use userdir::{Argon2Params, Directory, Error, ManualClock, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// let clock = ManualClock::new(1_700_000_000_000);
    /// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).clock(clock).in_memory()?;
    /// dir.create(NewUser::with_username("Ann").email("ann@example.com").password("correct horse"))?;
    ///
    /// let login = dir.authenticate("ANN", "correct horse")?;
    /// assert_eq!(login.user.last_login_instant, Some(1_700_000_000_000));
    /// assert!(dir.authenticate("ann@example.com", "correct horse").is_ok());
    /// assert!(matches!(dir.authenticate("ann", "wrong"), Err(Error::InvalidCredentials)));
    /// assert!(matches!(dir.authenticate("bob", "wrong"), Err(Error::InvalidCredentials)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for an unknown login id, a wrong password or an account
    /// without a password (one error for all, so callers cannot tell them apart);
    /// [`Error::AccountLocked`] after too many failures of the login id, whether an account
    /// has it or not (checked before the password);
    /// [`Error::AccountInactive`] and [`Error::AccountExpired`] (reported only when the
    /// password is right); [`Error::InvalidHash`] when the stored hash cannot be used;
    /// [`Error::VersionConflict`] when the password kept changing during the call (each change
    /// makes it verify again, three times at most); [`Error::Storage`].
    pub fn authenticate(&self, login_id: &str, password: &str) -> Result<Login> {
        let mut last = Error::InvalidCredentials;
        for _ in 0..MAX_ATTEMPTS {
            let user = self.check_credentials(login_id, password)?;
            let verified = user.password.clone();
            let new_hash = match &verified {
                Some(h) if self.inner.hasher.should_rehash(h, password) => {
                    Some(self.inner.hasher.hash(password)?)
                }
                _ => None,
            };
            let id = user.id;
            let outcome = self.write_one(move |tx| {
                let now = tx.dir.now();
                let Some(cur) = tx.w.get(id)? else {
                    return Ok(Outcome::Refused(Error::InvalidCredentials));
                };
                if cur.password != verified {
                    return Ok(Outcome::Changed(cur.version));
                }
                let failures = tx.w.failures(id)?;
                tx.dir.check_status(&cur, failures, now)?;
                if failures.is_some() {
                    tx.w.clear_failures(id)?;
                }
                let rehashed = new_hash.is_some();
                // As `Tx::modify`, without reading and decoding the record a second time, and
                // without its keys: only fields no index reads change.
                let mut new = cur;
                new.last_login_instant = Some(now);
                if let Some(h) = &new_hash {
                    new.password = Some(h.clone());
                }
                new.version += 1;
                new.last_update_instant = now;
                tx.replace_unindexed(&new)?;
                Ok(Outcome::Done(Login {
                    password_change_required: new.password_change_required,
                    user: new,
                    rehashed,
                }))
            })?;
            match outcome {
                Outcome::Done(login) => return Ok(login),
                Outcome::Refused(e) => return Err(e),
                Outcome::Changed(actual) => {
                    last = Error::VersionConflict {
                        expected: user.version,
                        actual,
                    };
                }
            }
        }
        Err(last)
    }

    /// Changes a user's password after checking the current one.
    ///
    /// The current password is checked as [`Directory::authenticate`] checks it (a wrong one
    /// counts towards the lockout). The new password must meet the policy. On success the
    /// password-change-required flag is cleared, the failed-login count too, and every
    /// outstanding password-reset token of the user is revoked.
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(NewUser::with_username("ann").password("correct horse"))?;
    /// dir.change_password("ann", "correct horse", "battery staple")?;
    /// assert!(dir.authenticate("ann", "battery staple").is_ok());
    /// assert!(dir.authenticate("ann", "correct horse").is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The errors of [`Directory::authenticate`] for the current password, then
    /// [`Error::PasswordPolicy`] for the new one.
    pub fn change_password(&self, login_id: &str, current: &str, new: &str) -> Result<User> {
        let mut last = Error::InvalidCredentials;
        for _ in 0..MAX_ATTEMPTS {
            let user = self.check_credentials(login_id, current)?;
            let violations = self.inner.policy.check(new, &login_ids(&user));
            if !violations.is_empty() {
                return Err(Error::PasswordPolicy(violations));
            }
            let new_hash = self.inner.hasher.hash(new)?;
            let verified = user.password.clone();
            let id = user.id;
            let outcome = self.write_one(move |tx| {
                let now = tx.dir.now();
                let Some(cur) = tx.w.get(id)? else {
                    return Ok(Outcome::Refused(Error::InvalidCredentials));
                };
                if cur.password != verified {
                    return Ok(Outcome::Changed(cur.version));
                }
                tx.dir.check_status(&cur, tx.w.failures(id)?, now)?;
                Ok(Outcome::Done(set_password(tx, id, new_hash.clone(), now)?))
            })?;
            match outcome {
                Outcome::Done(u) => return Ok(u),
                Outcome::Refused(e) => return Err(e),
                Outcome::Changed(actual) => {
                    last = Error::VersionConflict {
                        expected: user.version,
                        actual,
                    };
                }
            }
        }
        Err(last)
    }

    /// Starts the password-reset workflow: returns a single-use token, valid for
    /// [`AuthConfig::reset_token_ttl`] (10 minutes by default), to send to the user. The
    /// user may hold a few outstanding reset tokens at once; using one revokes the others.
    ///
    /// An unknown login id gets [`Error::InvalidCredentials`], the same error as a failed login
    /// (FusionAuth answers 404 here). A caller that must not reveal whether an account exists
    /// should answer its end user identically in both cases ("if the account exists, we sent a
    /// link"). A locked account may reset its password (that is the way out of a lockout).
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for an unknown login id, [`Error::AccountInactive`] for a
    /// deactivated account, [`Error::Storage`].
    pub fn start_password_reset(&self, login_id: &str) -> Result<Token> {
        let token = Token::generate();
        let hash = Token::digest(token.as_str());
        let ttl = millis(self.auth_config().reset_token_ttl);
        let login_id = login_id.to_owned();
        self.write_one(move |tx| {
            let now = tx.dir.now();
            let w = &mut *tx.w;
            let user = find_login(w, &login_id)?.ok_or(Error::InvalidCredentials)?;
            if !user.active {
                return Err(Error::AccountInactive);
            }
            w.purge_expired_tokens(now, PURGE_BATCH)?;
            let rec = TokenRecord {
                user: user.id,
                kind: TokenKind::Reset,
                expiry: now.saturating_add(ttl),
                binding: reset_binding(&user),
            };
            w.insert_token(&hash, &rec, MAX_RESET_TOKENS)
        })?;
        Ok(token)
    }

    /// Finishes the password-reset workflow: checks the token, applies the password policy,
    /// stores the new password's hash (made outside the write transaction), clears the
    /// password-change-required flag and the failed-login count, and revokes every outstanding
    /// reset token of the user (this one included). Accepts a [`Token`] or its text.
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, Error, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(NewUser::with_username("ann").password("forgotten one"))?;
    /// let token = dir.start_password_reset("ann")?;
    /// dir.reset_password(&token, "a new secret")?;
    /// assert!(dir.authenticate("ann", "a new secret").is_ok());
    /// assert!(matches!(dir.reset_password(&token, "another one"), Err(Error::InvalidToken)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for an unknown, used, revoked or verification token;
    /// [`Error::TokenExpired`] for an expired one; [`Error::PasswordPolicy`] (the token stays
    /// usable); [`Error::Storage`].
    pub fn reset_password(&self, token: impl AsRef<str>, new_password: &str) -> Result<User> {
        let hash = Token::digest(token.as_ref());
        // Check the token in a snapshot first, so a bad token costs no argon2 hashing.
        let now = self.now();
        let (rec, user) = self.read_raw(|r| {
            let Some(rec) = r.token(&hash)? else {
                return Ok((None, None));
            };
            Ok((Some(rec), r.get(rec.user)?))
        })?;
        let rec = rec
            .filter(|r| r.kind == TokenKind::Reset)
            .ok_or(Error::InvalidToken)?;
        if rec.expiry > now
            && let Some(user) = &user
        {
            let violations = self.inner.policy.check(new_password, &login_ids(user));
            if !violations.is_empty() {
                return Err(Error::PasswordPolicy(violations));
            }
        }
        let new_hash = if rec.expiry > now && user.is_some() {
            Some(self.inner.hasher.hash(new_password)?)
        } else {
            None
        };
        let outcome = self.write_one(move |tx| {
            let now = tx.dir.now();
            let (_, u) = match take_token(tx.w, &hash, TokenKind::Reset, now)? {
                Ok(found) => found,
                Err(e) => return Ok(Outcome::Refused(e)),
            };
            let Some(new_hash) = new_hash.clone() else {
                return Ok(Outcome::Refused(Error::InvalidToken));
            };
            Ok(Outcome::Done(set_password(tx, u.id, new_hash, now)?))
        })?;
        match outcome {
            Outcome::Done(u) => Ok(u),
            Outcome::Refused(e) => Err(e),
            Outcome::Changed(_) => Err(Error::InvalidToken),
        }
    }

    /// Starts the email-verification workflow: returns a single-use token, valid for
    /// [`AuthConfig::verification_token_ttl`] (24 hours by default), to send to the user's
    /// email. Issuing a new one revokes the previous one. The token is bound to the current
    /// email: if the email changes before the token is used, the token is refused.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_email("ann@example.com"))?;
    /// let token = dir.start_email_verification(ann.id)?; // send token.as_str() by mail
    /// assert!(dir.verify_email(token.as_str())?.verified);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidField`] when the user has no email,
    /// [`Error::AccountInactive`], [`Error::Storage`].
    pub fn start_email_verification(&self, id: Uuid) -> Result<Token> {
        let token = Token::generate();
        let hash = Token::digest(token.as_str());
        let ttl = millis(self.auth_config().verification_token_ttl);
        self.write_one(move |tx| {
            let now = tx.dir.now();
            let w = &mut *tx.w;
            let user = w.get(id)?.ok_or(Error::NotFound(id))?;
            if user.email.is_none() {
                return Err(Error::invalid("email", "is not set"));
            }
            if !user.active {
                return Err(Error::AccountInactive);
            }
            w.purge_expired_tokens(now, PURGE_BATCH)?;
            let rec = TokenRecord {
                user: id,
                kind: TokenKind::Verify,
                expiry: now.saturating_add(ttl),
                binding: verify_binding(&user),
            };
            w.insert_token(&hash, &rec, 1)
        })?;
        Ok(token)
    }

    /// Finishes the email-verification workflow: checks and consumes the token and marks the
    /// user's email verified. Accepts a [`Token`] or its text.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for an unknown, used or revoked token, a password-reset token,
    /// or a token issued for an email the user no longer has; [`Error::TokenExpired`];
    /// [`Error::Storage`].
    pub fn verify_email(&self, token: impl AsRef<str>) -> Result<User> {
        let hash = Token::digest(token.as_ref());
        let outcome = self.write_one(move |tx| {
            let now = tx.dir.now();
            let (_, u) = match take_token(tx.w, &hash, TokenKind::Verify, now)? {
                Ok(found) => found,
                Err(e) => return Ok(Outcome::Refused(e)),
            };
            tx.w.remove_token(&hash)?;
            tx.w.purge_expired_tokens(now, PURGE_BATCH)?;
            Ok(Outcome::Done(tx.modify(u.id, |u| u.verified = true)?))
        })?;
        match outcome {
            Outcome::Done(u) => Ok(u),
            Outcome::Refused(e) => Err(e),
            Outcome::Changed(_) => Err(Error::InvalidToken),
        }
    }

    /// A user's failed-login state: the consecutive failures counted and, when locked, until
    /// when. All zero for a user without recent failures.
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann").password("correct horse"))?;
    /// assert!(dir.authenticate("ann", "wrong horse").is_err());
    /// assert_eq!(dir.login_failures(ann.id)?.count, 1);
    /// dir.unlock(ann.id)?;
    /// assert_eq!(dir.login_failures(ann.id)?.count, 0);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn login_failures(&self, id: Uuid) -> Result<LoginFailures> {
        let now = self.now();
        let s = self.read_raw(|r| r.failures(id))?;
        Ok(s.map_or_else(LoginFailures::default, |s| LoginFailures {
            count: s.count,
            window_start: s.window_start,
            locked_until: lock_of(Some(s), now),
        }))
    }

    /// Clears a user's failed logins and lifts a lockout (an administrator's action).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub fn unlock(&self, id: Uuid) -> Result<()> {
        self.write_one(move |tx| {
            tx.w.get(id)?.ok_or(Error::NotFound(id))?;
            tx.w.clear_failures(id)
        })
    }

    /// How many email-verification and password-reset tokens a user holds (expired ones not
    /// yet purged included).
    ///
    /// # Examples
    /// ```
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(userdir::NewUser::with_username("ann").password("correct horse"))?;
    /// dir.start_password_reset("ann")?;
    /// assert_eq!(dir.outstanding_tokens(ann.id)?, 1);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn outstanding_tokens(&self, id: Uuid) -> Result<usize> {
        self.read_raw(|r| r.user_token_count(id))
    }
}

/// Checks a token in the write phase: returns its record and user, or the refusal to
/// report (after removing a token that can never be used).
fn take_token(
    w: &mut Writer<'_>,
    hash: &[u8; 32],
    kind: TokenKind,
    now: UnixMillis,
) -> Result<std::result::Result<(TokenRecord, User), Error>> {
    let Some(rec) = w.token(hash)? else {
        return Ok(Err(Error::InvalidToken));
    };
    if rec.kind != kind {
        // Another workflow's token: refused, and left for its own workflow.
        return Ok(Err(Error::InvalidToken));
    }
    if rec.expiry <= now {
        w.remove_token(hash)?;
        return Ok(Err(Error::TokenExpired));
    }
    let user = w.get(rec.user)?;
    let bound = user.as_ref().map(|u| {
        if kind == TokenKind::Reset {
            reset_binding(u)
        } else {
            verify_binding(u)
        }
    });
    match user {
        Some(u) if u.active && bound == Some(rec.binding) => Ok(Ok((rec, u))),
        _ => {
            // The password or email it was issued for changed, or the user is gone.
            w.remove_token(hash)?;
            Ok(Err(Error::InvalidToken))
        }
    }
}

/// Stores a new password hash: clears the change-required flag and the failed logins, revokes
/// the reset tokens, purges expired tokens.
fn set_password(tx: &mut Tx<'_, '_>, id: Uuid, hash: StoredHash, now: UnixMillis) -> Result<User> {
    let user = tx.modify(id, |u| {
        u.password = Some(hash);
        u.password_change_required = false;
        u.password_last_update_instant = Some(now);
    })?;
    tx.w.revoke_tokens(id, Some(TokenKind::Reset))?;
    tx.w.clear_failures(id)?;
    tx.w.purge_expired_tokens(now, PURGE_BATCH)?;
    Ok(user)
}

/// The failure state after one more failed login at `now`.
fn next_failure_state(prev: Option<FailureState>, now: UnixMillis, l: &Lockout) -> FailureState {
    let fresh = FailureState {
        count: 0,
        window_start: now,
        locked_until: None,
    };
    let mut s = match prev {
        // A lock that has ended, or a window that has closed, starts a new count.
        Some(s)
            if s.locked_until.is_none()
                && now.saturating_sub(s.window_start) < millis(l.window) =>
        {
            s
        }
        _ => fresh,
    };
    s.count = s.count.saturating_add(1);
    if s.count >= l.max_failures {
        s.locked_until = Some(now.saturating_add(millis(l.duration)));
    }
    s
}
