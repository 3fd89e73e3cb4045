//! Passwords: the policy, argon2id hashing, and verification of stored hashes.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};
pub use crate::problems::PolicyViolation;
pub(crate) use crate::problems::describe;
use crate::user::StoredHash;

mod legacy;
pub use legacy::{
    MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS, MAX_PBKDF2_KEY_BYTES, MAX_PBKDF2_SALT_BYTES,
    MIN_PBKDF2_KEY_BYTES,
};

/// Highest argon2 memory cost accepted in a stored or imported hash, in KiB (256 MiB).
pub const MAX_ARGON2_M_KIB: u32 = 256 * 1024;
/// Highest argon2 time cost accepted in a stored or imported hash.
pub const MAX_ARGON2_T: u32 = 16;
/// Highest argon2 parallelism accepted in a stored or imported hash.
pub const MAX_ARGON2_P: u32 = 16;

/// argon2id cost parameters used for new hashes.
///
/// The default is OWASP's recommendation (m = 19456 KiB, t = 2, p = 1). Tests can use
/// [`Argon2Params::insecure_fast`]; never in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Number of passes.
    pub t: u32,
    /// Degree of parallelism.
    pub p: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::owasp()
    }
}

impl Argon2Params {
    /// OWASP's recommended argon2id parameters: m = 19456 KiB, t = 2, p = 1.
    #[must_use]
    pub const fn owasp() -> Self {
        Argon2Params {
            m_kib: 19456,
            t: 2,
            p: 1,
        }
    }
    /// The cheapest parameters argon2 allows (m = 8 KiB, t = 1, p = 1): for tests only.
    #[must_use]
    pub const fn insecure_fast() -> Self {
        Argon2Params {
            m_kib: 8,
            t: 1,
            p: 1,
        }
    }
    /// Custom parameters.
    #[must_use]
    pub const fn new(m_kib: u32, t: u32, p: u32) -> Self {
        Argon2Params { m_kib, t, p }
    }
}

/// Hashes and verifies passwords with argon2id and an optional pepper (argon2 secret).
#[derive(Clone)]
pub struct Hasher {
    params: Argon2Params,
    pepper: Option<Arc<[u8]>>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.params)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Hasher {
    /// A hasher with these parameters and an optional pepper.
    ///
    /// # Errors
    /// [`Error::Hashing`] when argon2 rejects the parameters.
    pub fn new(params: Argon2Params, pepper: Option<Vec<u8>>) -> Result<Self> {
        let h = Hasher {
            params,
            pepper: pepper.map(Into::into),
        };
        h.argon2(params)?;
        Ok(h)
    }

    /// The parameters new hashes are made with.
    #[must_use]
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    fn argon2(&self, p: Argon2Params) -> Result<Argon2<'_>> {
        let params = Params::new(p.m_kib, p.t, p.p, None)
            .map_err(|e| Error::Hashing(format!("argon2 parameters: {e}")))?;
        match &self.pepper {
            Some(secret) => {
                Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params)
                    .map_err(|e| Error::Hashing(format!("argon2 pepper: {e}")))
            }
            None => Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
        }
    }

    /// Hashes a password with argon2id, a random salt and the current parameters.
    ///
    /// # Errors
    /// [`Error::Hashing`] if argon2 fails (it does not for valid parameters).
    pub fn hash(&self, password: &str) -> Result<StoredHash> {
        use base64::Engine as _;
        // Each thread reuses one argon2 memory buffer: allocating and freeing ~19 MiB per hash on
        // many threads made glibc keep hundreds of MiB (import of 400 plaintext users: 335 MiB
        // resident afterwards) where one buffer per thread is enough.
        thread_local! {
            static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let p = self.params;
        let a = self.argon2(p)?;
        let blocks = Params::new(p.m_kib, p.t, p.p, None)
            .map_err(|e| Error::Hashing(format!("argon2 parameters: {e}")))?
            .block_count();
        let salt = argon2::password_hash::generate_salt();
        let mut out = [0u8; 32];
        BLOCKS
            .with(|b| {
                let mut b = b.borrow_mut();
                b.resize(blocks, argon2::Block::default());
                a.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut b[..])
            })
            .map_err(|e| Error::Hashing(e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let encoded = format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.m_kib,
            p.t,
            p.p,
            b64.encode(salt),
            b64.encode(out)
        );
        Ok(if self.pepper.is_some() {
            StoredHash::peppered(encoded)
        } else {
            StoredHash::from_encoded(encoded)
        })
    }

    /// Whether this hasher mixes a pepper into its hashes.
    #[must_use]
    pub fn has_pepper(&self) -> bool {
        self.pepper.is_some()
    }

    /// Checks a hash given to the directory (import, `NewUser::password_hash`): as
    /// [`check_stored_hash`], and, when this hasher has a pepper, that an argon2 hash can
    /// verify here. An argon2 hash made without the pepper never verifies in a peppered
    /// directory, so it is refused, unless it was made by a peppered hasher in this process
    /// ([`Directory::hash_password`](crate::Directory::hash_password)) or `peppered` says the
    /// caller knows it was made with this pepper (an export of a directory with the same
    /// pepper). bcrypt and PBKDF2 hashes do not use the pepper: they verify, and are rehashed
    /// with the pepper at the first login.
    ///
    /// # Errors
    /// [`Error::InvalidHash`] naming the problem (never the hash).
    pub fn check_given(&self, hash: &StoredHash, peppered: bool) -> Result<()> {
        check_stored_hash(hash)?;
        if self.pepper.is_some()
            && hash.expose().starts_with("$argon2")
            && !peppered
            && !hash.made_with_pepper()
        {
            return Err(Error::InvalidHash(
                "this directory has a pepper: an argon2 hash made elsewhere (without it) could \
                 never verify; import the plaintext, a bcrypt or PBKDF2 hash (rehashed with the \
                 pepper at the first login), or declare hashes made with this same pepper"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Verifies `password` against a stored hash of any supported scheme.
    ///
    /// Returns `Ok(false)` for a wrong password.
    ///
    /// # Errors
    /// [`Error::InvalidHash`] when the hash is malformed, of an unknown scheme, or over the caps.
    pub fn verify(&self, hash: &StoredHash, password: &str) -> Result<bool> {
        VERIFICATIONS.with(|n| n.set(n.get().wrapping_add(1)));
        let s = hash.expose();
        if s.starts_with("$argon2") {
            let phc = parse_argon2(s)?;
            let a = self.argon2(self.params)?;
            return match a.verify_password(password.as_bytes(), &phc) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(e) => Err(Error::InvalidHash(format!("argon2: {e}"))),
            };
        }
        legacy::verify(s, password)
    }

    /// Whether a stored hash that `password` just matched may be replaced by an argon2id hash
    /// of `password`: it [needs a rehash](Hasher::needs_rehash) and the match proves that
    /// `password` is the one that was hashed. A bcrypt hash only covers the first 72 bytes of
    /// a password, so a password of 72 bytes or more may have matched with different later
    /// bytes (a typo after byte 72): rehashing it would make the login change which passwords
    /// are accepted. Such a hash is kept as it is.
    #[must_use]
    pub fn should_rehash(&self, hash: &StoredHash, password: &str) -> bool {
        if legacy::is_bcrypt(hash.expose()) && password.len() >= legacy::BCRYPT_MAX_BYTES {
            return false;
        }
        self.needs_rehash(hash)
    }

    /// Whether a stored hash should be replaced by a fresh argon2id hash with the current
    /// parameters (another scheme, or other argon2 parameters).
    #[must_use]
    pub fn needs_rehash(&self, hash: &StoredHash) -> bool {
        let Ok(phc) = PhcHash::new(hash.expose()) else {
            return true;
        };
        if phc.algorithm.as_str() != "argon2id" {
            return true;
        }
        let Ok(p) = Params::try_from(&phc) else {
            return true;
        };
        p.m_cost() != self.params.m_kib
            || p.t_cost() != self.params.t
            || p.p_cost() != self.params.p
    }
}

thread_local! {
    static VERIFICATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many password verifications ([`Hasher::verify`]) ran on the calling thread so far.
///
/// Instrumentation for tests (for instance, proving that a login with an unknown login id
/// still verifies a password); per thread so that parallel tests do not disturb each other.
/// Not part of the API (feature `__test-hooks`).
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
#[must_use]
pub fn verification_count() -> u64 {
    VERIFICATIONS.with(std::cell::Cell::get)
}

fn parse_argon2(s: &str) -> Result<PhcHash> {
    let phc = PhcHash::new(s).map_err(|e| Error::InvalidHash(format!("argon2: {e}")))?;
    let p = Params::try_from(&phc).map_err(|e| Error::InvalidHash(format!("argon2: {e}")))?;
    // A PHC string without salt or output (or with an unknown variant) can never verify.
    Algorithm::try_from(phc.algorithm.as_str())
        .map_err(|e| Error::InvalidHash(format!("argon2: {e}")))?;
    if phc.salt.is_none() || phc.hash.as_ref().is_none_or(|h| h.len() < 16) {
        return Err(Error::InvalidHash(
            "argon2: missing salt or an output shorter than 16 bytes".into(),
        ));
    }
    if p.m_cost() > MAX_ARGON2_M_KIB || p.t_cost() > MAX_ARGON2_T || p.p_cost() > MAX_ARGON2_P {
        return Err(Error::InvalidHash(format!(
            "argon2 cost above the caps (m <= {MAX_ARGON2_M_KIB} KiB, t <= {MAX_ARGON2_T}, p <= {MAX_ARGON2_P})"
        )));
    }
    Ok(phc)
}

/// Checks that a hash given to the directory (import, `NewUser::password_hash`) can be verified
/// later: a supported scheme, well formed, cost parameters within the caps.
///
/// # Errors
/// [`Error::InvalidHash`] naming the problem (never the hash).
pub fn check_stored_hash(hash: &StoredHash) -> Result<()> {
    let s = hash.expose();
    if s.starts_with("$argon2") {
        return parse_argon2(s).map(|_| ());
    }
    legacy::check(s)
}

/// Refuses a plaintext password that is plainly a password hash of a known scheme (an
/// exported hash given without its scheme would be hashed again, and the user could never log
/// in).
pub(crate) fn refuse_hash_as_plaintext(password: &str) -> Result<()> {
    let scheme = StoredHash::from_encoded(password.trim()).scheme();
    if scheme == "unknown" {
        return Ok(());
    }
    Err(Error::invalid(
        "password",
        format!(
            "is plainly a {scheme} password hash, not a plaintext password: give it as a hash \
             (in JSON, with its encryptionScheme: bcrypt, salted-pbkdf2-hmac-sha256, or \
             userdir-phc for a hash as userdir stores it; in Rust, NewUser::password_hash)"
        ),
    ))
}

/// A caller-supplied breached-password check: returns `true` when the password is known to be
/// breached.
pub type BreachedCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The password policy. Every violation is reported at once.
///
/// Build it from [`PasswordPolicy::default`] with the setters; fields can be read, and new ones
/// may be added in a minor release.
///
/// # Examples
/// ```
/// use userdir::PasswordPolicy;
/// let policy = PasswordPolicy::default().min_length(10).require_digit(true);
/// let violations = policy.check("short", &[]);
/// assert_eq!(violations.len(), 2);
/// ```
#[derive(Clone)]
#[non_exhaustive]
#[must_use]
pub struct PasswordPolicy {
    /// Minimum length in characters (default 8).
    pub min_length: usize,
    /// Maximum length in characters (default 256).
    pub max_length: usize,
    /// Require an uppercase letter.
    pub require_uppercase: bool,
    /// Require a lowercase letter.
    pub require_lowercase: bool,
    /// Require a digit.
    pub require_digit: bool,
    /// Require a symbol.
    pub require_symbol: bool,
    /// Refuse a password equal (caselessly) to the user's username or email.
    pub reject_login_id: bool,
    /// A breached-password check (for instance against a k-anonymity service or a local list).
    pub breached: Option<BreachedCheck>,
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_length", &self.min_length)
            .field("max_length", &self.max_length)
            .field("require_uppercase", &self.require_uppercase)
            .field("require_lowercase", &self.require_lowercase)
            .field("require_digit", &self.require_digit)
            .field("require_symbol", &self.require_symbol)
            .field("reject_login_id", &self.reject_login_id)
            .field("breached", &self.breached.is_some())
            .finish()
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 256,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_symbol: false,
            reject_login_id: true,
            breached: None,
        }
    }
}

impl PasswordPolicy {
    /// Sets the minimum length in characters.
    pub fn min_length(mut self, n: usize) -> Self {
        self.min_length = n;
        self
    }
    /// Sets the maximum length in characters.
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = n;
        self
    }
    /// Requires an uppercase letter, or not.
    pub fn require_uppercase(mut self, on: bool) -> Self {
        self.require_uppercase = on;
        self
    }
    /// Requires a lowercase letter, or not.
    pub fn require_lowercase(mut self, on: bool) -> Self {
        self.require_lowercase = on;
        self
    }
    /// Requires a digit, or not.
    pub fn require_digit(mut self, on: bool) -> Self {
        self.require_digit = on;
        self
    }
    /// Requires a symbol, or not.
    pub fn require_symbol(mut self, on: bool) -> Self {
        self.require_symbol = on;
        self
    }
    /// Refuses a password equal (caselessly) to the user's username or email, or not.
    pub fn reject_login_id(mut self, on: bool) -> Self {
        self.reject_login_id = on;
        self
    }
    /// Sets a breached-password check: `check(password)` returns `true` for a password known
    /// to be breached.
    ///
    /// # Examples
    /// ```
    /// use userdir::{PasswordPolicy, PolicyViolation};
    /// let policy = PasswordPolicy::default().breached(|p: &str| p == "password123");
    /// assert_eq!(policy.check("password123", &[]), vec![PolicyViolation::Breached]);
    /// ```
    pub fn breached(mut self, check: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.breached = Some(Arc::new(check));
        self
    }

    /// Every violation of the policy by `password`; `login_ids` are the user's username and email.
    #[must_use]
    pub fn check(&self, password: &str, login_ids: &[&str]) -> Vec<PolicyViolation> {
        let mut v = Vec::new();
        let n = password.chars().count();
        if n < self.min_length {
            v.push(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if n > self.max_length {
            v.push(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }
        if self.require_uppercase && !password.chars().any(char::is_uppercase) {
            v.push(PolicyViolation::MissingUppercase);
        }
        if self.require_lowercase && !password.chars().any(char::is_lowercase) {
            v.push(PolicyViolation::MissingLowercase);
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            v.push(PolicyViolation::MissingDigit);
        }
        if self.require_symbol && !password.chars().any(|c| !c.is_alphanumeric()) {
            v.push(PolicyViolation::MissingSymbol);
        }
        if self.reject_login_id {
            let key = crate::identity::caseless_key(password);
            if login_ids
                .iter()
                .any(|id| crate::identity::caseless_key(id) == key)
            {
                v.push(PolicyViolation::SameAsLoginId);
            }
        }
        if let Some(check) = &self.breached
            && check(password)
        {
            v.push(PolicyViolation::Breached);
        }
        v
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn hashes_verify_with_and_without_pepper_and_only_with_the_right_one() {
        let plain = Hasher::new(Argon2Params::insecure_fast(), None).unwrap();
        let peppered =
            Hasher::new(Argon2Params::insecure_fast(), Some(b"pepper".to_vec())).unwrap();
        let h = plain.hash("correct horse").unwrap();
        assert!(h.expose().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(plain.verify(&h, "correct horse").unwrap());
        assert!(!plain.verify(&h, "wrong horse").unwrap());
        assert!(!plain.needs_rehash(&h));
        let hp = peppered.hash("correct horse").unwrap();
        assert!(peppered.verify(&hp, "correct horse").unwrap());
        assert!(!plain.verify(&hp, "correct horse").unwrap());
        assert_ne!(
            plain.hash("x").unwrap(),
            plain.hash("x").unwrap(),
            "salts differ"
        );
    }
}
