//! [`Token`]: the secret handed out by the email-verification and password-reset workflows.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Length of a token's text: 32 random bytes in URL-safe base64 without padding.
const TOKEN_CHARS: usize = 43;

/// A single-use secret for the email-verification or password-reset workflow: 256 random bits
/// as URL-safe base64 without padding (43 characters), fit for a link.
///
/// The directory stores only its SHA-256, so a copy of the file does not reveal usable tokens.
/// `Debug` is redacted; read the text with [`Token::as_str`] to send it to the user, and turn
/// the text they bring back into a `Token` with [`str::parse`] (or pass the `&str` directly).
///
/// # Examples
/// ```
/// use userdir::{Argon2Params, Directory, NewUser, Token};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// let ann = dir.create(NewUser::with_email("ann@example.com"))?;
/// let token = dir.start_email_verification(ann.id)?;
/// assert_eq!(token.as_str().len(), 43);
/// assert_eq!(format!("{token:?}"), "Token(<redacted>)");
///
/// let link = format!("https://example.com/verify?t={}", token.as_str());
/// let from_link: Token = link.rsplit('=').next().unwrap_or_default().parse()?;
/// assert!(dir.verify_email(&from_link)?.verified);
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A fresh token from the thread's cryptographically secure generator.
    pub(crate) fn generate() -> Token {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token's text, to put in a link or a message to the user.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of a token's text: the only form in which tokens are stored.
    pub(crate) fn digest(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl AsRef<str> for Token {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    /// Wraps a token's text without checking its form (an ill-formed token is simply unknown
    /// to the directory: [`Error::InvalidToken`]).
    fn from(s: String) -> Self {
        Token(s)
    }
}

impl FromStr for Token {
    type Err = Error;

    /// Parses a token's text (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`Error::InvalidToken`] when the text is not 43 characters of URL-safe base64.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let well_formed = s.len() == TOKEN_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        if well_formed {
            Ok(Token(s.to_owned()))
        } else {
            Err(Error::InvalidToken)
        }
    }
}
