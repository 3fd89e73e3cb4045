//! Imported (legacy) password hashes: bcrypt, PBKDF2-SHA256 and FusionAuth's
//! `salted-pbkdf2-hmac-sha256`. argon2 PHC strings are handled by the parent module.
//!
//! Accepted encodings:
//!
//! * **bcrypt**: `$2a$`, `$2b$`, `$2y$` modular crypt strings (60 characters), cost
//!   4..=[`MAX_BCRYPT_COST`]. Like every bcrypt implementation, only the first 72 bytes of a
//!   password count.
//! * **PBKDF2-HMAC-SHA256, PHC form**: `$pbkdf2-sha256$i=<iterations>[,l=<key bytes>]$<salt>$<hash>`
//!   with salt and hash in the PHC string format's B64 (standard alphabet, no padding), as
//!   written by RustCrypto's `pbkdf2` crate.
//! * **PBKDF2-HMAC-SHA256, passlib form**: `$pbkdf2-sha256$<rounds>$<salt>$<hash>` with passlib's
//!   "adapted base64" (`.` instead of `+`, no padding), as written by Python's
//!   `passlib.hash.pbkdf2_sha256`.
//! * **FusionAuth `salted-pbkdf2-hmac-sha256`** (and `salted-pbkdf2-hmac-sha256-512`): FusionAuth
//!   exports the salt (base64), the factor (the iteration count) and the hash (base64 of the
//!   256-bit, or 512-bit, derived key) as separate fields. userdir stores them as one string,
//!   `$fa-pbkdf2-sha256$i=<factor>$<salt base64>$<hash base64>` (standard base64 with padding,
//!   the salt possibly empty); build it with [`StoredHash::fusionauth_pbkdf2`]. The password is
//!   used as UTF-8 bytes and the salt is the base64-*decoded* bytes, as FusionAuth documents.
//!
//! Cost caps keep a crafted hash from making one login take minutes: a bcrypt cost above
//! [`MAX_BCRYPT_COST`] or PBKDF2 iterations above [`MAX_PBKDF2_ITERATIONS`] make the hash
//! unusable ([`Error::InvalidHash`]), both at import and at verification.

use base64::Engine as _;
use base64::engine::general_purpose::{
    STANDARD, STANDARD_NO_PAD_INDIFFERENT, STANDARD_PAD_INDIFFERENT,
};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::user::StoredHash;

/// Highest bcrypt cost accepted in an imported hash: 2^14 rounds, about one second on one core
/// of a 2020s server (cost 12, the common default, takes about a quarter of that).
pub const MAX_BCRYPT_COST: u32 = 14;

/// Highest PBKDF2 iteration count accepted in an imported hash (PHC, passlib and FusionAuth
/// forms): 2,000,000, about twice Django 5.2's default (1,000,000) and over three times OWASP's
/// 2023 recommendation for PBKDF2-HMAC-SHA256 (600,000); well under a second per 32-byte key on
/// one core.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// Longest PBKDF2 derived key accepted, in bytes (two SHA-256 blocks: FusionAuth's 512-bit
/// variant). Each further 32 bytes would cost a full run of the iterations again.
pub const MAX_PBKDF2_KEY_BYTES: usize = 64;

/// Shortest PBKDF2 derived key accepted, in bytes: a shorter key would let a wrong password
/// match by chance too often.
pub const MIN_PBKDF2_KEY_BYTES: usize = 16;

/// Longest PBKDF2 salt accepted, in bytes.
pub const MAX_PBKDF2_SALT_BYTES: usize = 1024;

/// How many bytes of a password bcrypt uses: later bytes do not change the hash.
pub(crate) const BCRYPT_MAX_BYTES: usize = 72;

/// Whether an encoded hash is a bcrypt hash.
pub(crate) fn is_bcrypt(s: &str) -> bool {
    s.starts_with("$2")
}

const PBKDF2_PREFIX: &str = "$pbkdf2-sha256$";
const FA_PREFIX: &str = "$fa-pbkdf2-sha256$";

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidHash(msg.into())
}

/// A parsed PBKDF2-HMAC-SHA256 hash (any of the three forms).
struct Pbkdf2 {
    iterations: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

impl Pbkdf2 {
    fn checked(iterations: u32, salt: Vec<u8>, key: Vec<u8>) -> Result<Self> {
        if iterations == 0 {
            return Err(invalid("pbkdf2: zero iterations"));
        }
        if iterations > MAX_PBKDF2_ITERATIONS {
            return Err(invalid(format!(
                "pbkdf2: {iterations} iterations is above the cap {MAX_PBKDF2_ITERATIONS}"
            )));
        }
        if salt.len() > MAX_PBKDF2_SALT_BYTES {
            return Err(invalid(format!(
                "pbkdf2: salt longer than {MAX_PBKDF2_SALT_BYTES} bytes"
            )));
        }
        if !(MIN_PBKDF2_KEY_BYTES..=MAX_PBKDF2_KEY_BYTES).contains(&key.len()) {
            return Err(invalid(format!(
                "pbkdf2: derived key of {} bytes (accepted: {MIN_PBKDF2_KEY_BYTES} to {MAX_PBKDF2_KEY_BYTES})",
                key.len()
            )));
        }
        Ok(Pbkdf2 {
            iterations,
            salt,
            key,
        })
    }

    fn verify(&self, password: &str) -> bool {
        let mut out = [0u8; MAX_PBKDF2_KEY_BYTES];
        let Some(out) = out.get_mut(..self.key.len()) else {
            return false;
        };
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &self.salt, self.iterations, out);
        bool::from(out.ct_eq(&self.key))
    }
}

fn parse_iterations(s: &str) -> Result<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("pbkdf2: the iteration count is not a number"));
    }
    // Longer than any u32: surely above the cap.
    s.parse::<u32>().or(Ok(u32::MAX))
}

/// Decodes PHC B64 or passlib's adapted base64 (`.` for `+`), without padding.
fn decode_phc_b64(what: &str, s: &str) -> Result<Vec<u8>> {
    let std: String = s.chars().map(|c| if c == '.' { '+' } else { c }).collect();
    STANDARD_NO_PAD_INDIFFERENT
        .decode(std)
        .map_err(|_| invalid(format!("pbkdf2: the {what} is not valid base64")))
}

/// `$pbkdf2-sha256$i=..,l=..$salt$hash` or `$pbkdf2-sha256$rounds$salt$hash`.
fn parse_pbkdf2(rest: &str) -> Result<Pbkdf2> {
    let mut parts = rest.split('$');
    let (Some(params), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "pbkdf2: expected $pbkdf2-sha256$<params>$<salt>$<hash>",
        ));
    };
    let (iterations, length) = if params.bytes().all(|b| b.is_ascii_digit()) {
        (parse_iterations(params)?, None)
    } else {
        let mut i = None;
        let mut l = None;
        for kv in params.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| invalid("pbkdf2: malformed parameters"))?;
            let slot = match k {
                "i" => &mut i,
                "l" => &mut l,
                _ => return Err(invalid("pbkdf2: unknown parameter")),
            };
            if slot.replace(parse_iterations(v)?).is_some() {
                return Err(invalid("pbkdf2: repeated parameter"));
            }
        }
        (
            i.ok_or_else(|| invalid("pbkdf2: missing the iteration count i"))?,
            l,
        )
    };
    let salt = decode_phc_b64("salt", salt)?;
    let key = decode_phc_b64("hash", hash)?;
    if let Some(l) = length
        && usize::try_from(l).ok() != Some(key.len())
    {
        return Err(invalid("pbkdf2: l does not match the hash length"));
    }
    Pbkdf2::checked(iterations, salt, key)
}

fn decode_b64(what: &str, s: &str) -> Result<Vec<u8>> {
    STANDARD_PAD_INDIFFERENT
        .decode(s)
        .map_err(|_| invalid(format!("fusionauth pbkdf2: the {what} is not valid base64")))
}

/// `$fa-pbkdf2-sha256$i=<factor>$<salt b64>$<hash b64>`.
fn parse_fusionauth(rest: &str) -> Result<Pbkdf2> {
    let mut parts = rest.split('$');
    let (Some(params), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "fusionauth pbkdf2: expected $fa-pbkdf2-sha256$i=<factor>$<salt>$<hash>",
        ));
    };
    let factor = params
        .strip_prefix("i=")
        .ok_or_else(|| invalid("fusionauth pbkdf2: missing the factor i"))?;
    Pbkdf2::checked(
        parse_iterations(factor)?,
        decode_b64("salt", salt)?,
        decode_b64("hash", hash)?,
    )
}

fn check_bcrypt(s: &str) -> Result<()> {
    let ok_prefix = ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p));
    if !ok_prefix {
        return Err(invalid("bcrypt: only $2a$, $2b$ and $2y$ are accepted"));
    }
    let parts: bcrypt::HashParts = s.parse().map_err(|_| invalid("bcrypt: malformed hash"))?;
    let cost = parts.get_cost();
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(invalid(format!(
            "bcrypt: cost {cost} is outside 4..={MAX_BCRYPT_COST}"
        )));
    }
    Ok(())
}

enum Legacy {
    Bcrypt,
    Pbkdf2(Pbkdf2),
}

fn parse(s: &str) -> Result<Legacy> {
    if s.starts_with("$2") {
        check_bcrypt(s)?;
        return Ok(Legacy::Bcrypt);
    }
    if let Some(rest) = s.strip_prefix(PBKDF2_PREFIX) {
        return parse_pbkdf2(rest).map(Legacy::Pbkdf2);
    }
    if let Some(rest) = s.strip_prefix(FA_PREFIX) {
        return parse_fusionauth(rest).map(Legacy::Pbkdf2);
    }
    // Never echo the text: a value that is not a hash may be a password.
    Err(invalid(
        "not a hash of a supported scheme (argon2 PHC, bcrypt $2a$/$2b$/$2y$, \
         $pbkdf2-sha256$, $fa-pbkdf2-sha256$)",
    ))
}

/// Checks that an encoded non-argon2 hash is of a supported scheme, well formed and within the
/// caps.
pub(crate) fn check(s: &str) -> Result<()> {
    parse(s).map(|_| ())
}

/// Verifies `password` against an encoded non-argon2 hash.
pub(crate) fn verify(s: &str, password: &str) -> Result<bool> {
    match parse(s)? {
        Legacy::Bcrypt => {
            bcrypt::verify(password, s).map_err(|_| invalid("bcrypt: malformed hash"))
        }
        Legacy::Pbkdf2(p) => Ok(p.verify(password)),
    }
}

impl StoredHash {
    /// The stored form of a FusionAuth `salted-pbkdf2-hmac-sha256` password (or
    /// `salted-pbkdf2-hmac-sha256-512`): FusionAuth's `salt` (base64), `factor` (the iteration
    /// count) and `password` (base64 of the derived key) fields, as its export and import APIs
    /// carry them.
    ///
    /// # Examples
    /// ```
    /// use userdir::StoredHash;
    /// # fn main() -> Result<(), userdir::Error> {
    /// let h = StoredHash::fusionauth_pbkdf2(
    ///     "ZmEtc2FsdC0wLTAxMjM0NTY3ODlhYmNkZWY=",
    ///     24000,
    ///     "98CUhx4MRZV62JJJH6mn90fEWS61FUKJEB/atLyR4z4=",
    /// )?;
    /// assert_eq!(h.scheme(), "fa-pbkdf2-sha256");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHash`] when the salt or hash is not base64, the derived key is not
    /// 16 to 64 bytes long, or the factor is 0 or above [`MAX_PBKDF2_ITERATIONS`].
    pub fn fusionauth_pbkdf2(salt_b64: &str, factor: u32, hash_b64: &str) -> Result<StoredHash> {
        let p = Pbkdf2::checked(
            factor,
            decode_b64("salt", salt_b64.trim())?,
            decode_b64("hash", hash_b64.trim())?,
        )?;
        Ok(StoredHash::from_encoded(format!(
            "{FA_PREFIX}i={}${}${}",
            p.iterations,
            STANDARD.encode(&p.salt),
            STANDARD.encode(&p.key)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        for s in [
            "$2b$",
            "$2b$99$",
            "$2b$1x$abc",
            "$2b$05$ünicode-in-the-salt-part-of-the-bcrypt-hash-ok-ok-ok",
            "$pbkdf2-sha256$",
            "$pbkdf2-sha256$$$",
            "$pbkdf2-sha256$i=$a$b",
            "$pbkdf2-sha256$i=1,i=2$YWJj$YWJj",
            "$pbkdf2-sha256$99999999999999999999$YWJj$YWJj",
            "$pbkdf2-sha256$i=10,l=99999999999$YWJj$YWJj",
            "$fa-pbkdf2-sha256$",
            "$fa-pbkdf2-sha256$i=1$%%%$YWJj",
            "$fa-pbkdf2-sha256$x=1$$",
            "",
            "$",
        ] {
            assert!(matches!(check(s), Err(Error::InvalidHash(_))), "{s}");
            assert!(matches!(verify(s, "pw"), Err(Error::InvalidHash(_))), "{s}");
        }
    }
}
