//! Configuration of authentication: lockout and token lifetimes. A leaf: the directory keeps
//! it, the operations in `auth` read it.

use crate::error::{Error, Result};

const MINUTE_MS: i64 = 60 * 1000;

/// Lockout after repeated failed logins.
///
/// After `max_failures` consecutive failures, each within `window_ms` of the first one counted,
/// the account refuses logins (even with the right password) for `duration_ms`. A successful
/// login, a password change and a password reset clear the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// Failures that lock the account (default 5).
    pub max_failures: u32,
    /// Window, from the first counted failure, in which failures add up (default 15 minutes).
    pub window_ms: i64,
    /// How long the account stays locked (default 15 minutes).
    pub duration_ms: i64,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            max_failures: 5,
            window_ms: 15 * MINUTE_MS,
            duration_ms: 15 * MINUTE_MS,
        }
    }
}

/// Configuration of authentication and the token workflows (see
/// [`Builder::auth`](crate::Builder::auth)).
///
/// # Examples
/// ```
/// use userdir::{Argon2Params, AuthConfig, Directory, Lockout};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder()
///     .hasher(Argon2Params::insecure_fast())
///     .auth(AuthConfig {
///         lockout: Some(Lockout { max_failures: 10, ..Lockout::default() }),
///         reset_token_ttl_ms: 30 * 60 * 1000,
///         ..AuthConfig::default()
///     })
///     .in_memory()?;
/// # let _ = dir;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Lockout after failed logins; `None` disables it (default: [`Lockout::default`]).
    pub lockout: Option<Lockout>,
    /// Lifetime of a password-reset token in ms (default 10 minutes).
    pub reset_token_ttl_ms: i64,
    /// Lifetime of an email-verification token in ms (default 24 hours).
    pub verification_token_ttl_ms: i64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            lockout: Some(Lockout::default()),
            reset_token_ttl_ms: 10 * MINUTE_MS,
            verification_token_ttl_ms: 24 * 60 * MINUTE_MS,
        }
    }
}

impl AuthConfig {
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(l) = &self.lockout
            && (l.max_failures == 0 || l.window_ms <= 0 || l.duration_ms <= 0)
        {
            return Err(Error::invalid(
                "lockout",
                "needs max_failures >= 1 and a positive window and duration",
            ));
        }
        if self.reset_token_ttl_ms <= 0 || self.verification_token_ttl_ms <= 0 {
            return Err(Error::invalid("token_ttl", "must be positive"));
        }
        Ok(())
    }
}
