//! Configuration of authentication (lockout, token lifetimes, the failure floor) and the
//! directory's authentication state. A leaf: the directory keeps it, the rules in `auth` use it.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::user::StoredHash;

const MINUTE: Duration = Duration::from_secs(60);

/// The kinds of failed login whose cost [`FailureFloor::Adaptive`] tracks (see `auth`).
pub(crate) const KINDS: usize = 4;

/// Lockout after repeated failed logins.
///
/// After `max_failures` consecutive failures, each within `window` of the first one counted,
/// the account refuses logins (even with the right password) for `duration`. A successful
/// login, a password change and a password reset clear the count.
///
/// Build it from [`Lockout::default`] with the setters; fields can be read, and new ones may be
/// added in a minor release.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use userdir::Lockout;
/// let lockout = Lockout::default().max_failures(10).duration(Duration::from_secs(3600));
/// assert_eq!(lockout.window, Duration::from_secs(15 * 60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct Lockout {
    /// Failures that lock the account (default 5).
    pub max_failures: u32,
    /// Window, from the first counted failure, in which failures add up (default 15 minutes).
    pub window: Duration,
    /// How long the account stays locked (default 15 minutes).
    pub duration: Duration,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            max_failures: 5,
            window: 15 * MINUTE,
            duration: 15 * MINUTE,
        }
    }
}

impl Lockout {
    /// Sets the failures that lock the account (at least 1).
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }
    /// Sets the window in which failures add up (at least 1 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
    /// Sets how long the account stays locked (at least 1 ms).
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }
}

/// Configuration of authentication and the token workflows (see
/// [`Builder::auth`](crate::Builder::auth)).
///
/// Build it from [`AuthConfig::default`] with the setters; fields can be read, and new ones may
/// be added in a minor release.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use userdir::{Argon2Params, AuthConfig, Directory, Lockout};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder()
///     .hasher(Argon2Params::insecure_fast())
///     .auth(
///         AuthConfig::default()
///             .lockout(Lockout::default().max_failures(10))
///             .reset_token_ttl(Duration::from_secs(30 * 60)),
///     )
///     .in_memory()?;
/// # let _ = dir;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct AuthConfig {
    /// Lockout after failed logins; `None` disables it (default: [`Lockout::default`]).
    pub lockout: Option<Lockout>,
    /// Lifetime of a password-reset token (default 10 minutes).
    pub reset_token_ttl: Duration,
    /// Lifetime of an email-verification token (default 24 hours).
    pub verification_token_ttl: Duration,
    /// The shortest time a failed login takes (default [`FailureFloor::Adaptive`]): it hides
    /// which scheme (argon2id, bcrypt, PBKDF2) an account's hash uses, and so whether the
    /// account exists. See [`Directory::authenticate`](crate::Directory::authenticate).
    pub failure_floor: FailureFloor,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            lockout: Some(Lockout::default()),
            reset_token_ttl: 10 * MINUTE,
            verification_token_ttl: 24 * 60 * MINUTE,
            failure_floor: FailureFloor::Adaptive,
        }
    }
}

/// How long a failed login takes at least (see [`AuthConfig::failure_floor`] and
/// [`Directory::authenticate`](crate::Directory::authenticate)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureFloor {
    /// No padding: a failed login takes what its work takes. Unknown login ids and accounts
    /// with argon2id hashes of the current parameters still cost the same; accounts with
    /// imported hashes (bcrypt, PBKDF2, other argon2 parameters) can be told apart by time.
    Off,
    /// Every failed login lasts at least as long as the slowest kind of failed login measured
    /// since the directory was opened: an estimate is kept per kind of hash verified (the
    /// current argon2id, other argon2 parameters, bcrypt, PBKDF2; unknown login ids count as
    /// the current argon2id), which follows each kind's recent failures (it rises at once and
    /// decays by 1/16 of the gap per failure), capped at [`FailureFloor::ADAPTIVE_CAP`].
    Adaptive,
    /// Every failed login lasts at least this long (set it above the slowest scheme present,
    /// e.g. 300 ms for bcrypt cost 12 accounts). Failures that take longer are not padded.
    Fixed(Duration),
}

impl FailureFloor {
    /// The highest floor [`FailureFloor::Adaptive`] pads to.
    pub const ADAPTIVE_CAP: Duration = Duration::from_secs(2);
}

impl AuthConfig {
    /// Sets the lockout: a [`Lockout`], or `None` to disable it.
    pub fn lockout(mut self, lockout: impl Into<Option<Lockout>>) -> Self {
        self.lockout = lockout.into();
        self
    }
    /// Sets the lifetime of password-reset tokens (at least 1 ms).
    pub fn reset_token_ttl(mut self, ttl: Duration) -> Self {
        self.reset_token_ttl = ttl;
        self
    }
    /// Sets the lifetime of email-verification tokens (at least 1 ms).
    pub fn verification_token_ttl(mut self, ttl: Duration) -> Self {
        self.verification_token_ttl = ttl;
        self
    }
    /// Sets [`AuthConfig::failure_floor`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use userdir::{AuthConfig, FailureFloor};
    /// let config = AuthConfig::default().failure_floor(FailureFloor::Fixed(Duration::from_millis(300)));
    /// assert_eq!(config.failure_floor, FailureFloor::Fixed(Duration::from_millis(300)));
    /// ```
    pub fn failure_floor(mut self, floor: FailureFloor) -> Self {
        self.failure_floor = floor;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        if let Some(l) = &self.lockout
            && (l.max_failures == 0 || millis(l.window) <= 0 || millis(l.duration) <= 0)
        {
            return Err(Error::invalid(
                "lockout",
                "needs max_failures >= 1 and a window and duration of at least 1 ms",
            ));
        }
        if millis(self.reset_token_ttl) <= 0 || millis(self.verification_token_ttl) <= 0 {
            return Err(Error::invalid("token_ttl", "must be at least 1 ms"));
        }
        Ok(())
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The directory's authentication state: its configuration and the dummy hash verified for
/// unknown login ids.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    pub(crate) config: AuthConfig,
    pub(crate) dummy: OnceLock<StoredHash>,
    /// [`FailureFloor::Adaptive`]'s estimate of each kind of failed login, in ns.
    pub(crate) estimates: [AtomicU64; KINDS],
}

impl AuthState {
    pub(crate) fn new(config: AuthConfig) -> Result<Self> {
        config.check()?;
        Ok(AuthState {
            config,
            dummy: OnceLock::new(),
            estimates: Default::default(),
        })
    }
}
