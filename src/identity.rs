//! Identity rules: validation of usernames, emails and external ids, and their index keys.
//!
//! * A **username** is stored as given after trimming and NFC normalization. Its index key is the
//!   Unicode *compatibility caseless* form (Unicode §3.13, D146):
//!   `NFKC(NFKD(fold(NFKD(fold(NFD(x))))))`, so `bob`/`BoB`, `straße`/`STRASSE`, the Kelvin sign
//!   `K`/`k`, composed and decomposed `é`, and fullwidth `ａｄｍｉｎ`/`admin` are one username.
//!   The Turkish capital dotted `İ` (U+0130) full-case-folds to `i` followed by U+0307 COMBINING
//!   DOT ABOVE, so `İstanbul` is *not* `istanbul` (nor `ISTANBUL`); it equals `i̇stanbul` written
//!   with the combining dot. Locale-specific (Turkic) folding is deliberately not applied: the key
//!   must not depend on who is asking.
//! * An **email** is trimmed and lowercased; it is stored and compared in that form. Its index key
//!   is the same caseless form as usernames (identical to the lowercase form for ASCII
//!   addresses), so that a username and an email can be compared with each other.
//! * An **external id** is trimmed and compared exactly.
//!
//! Control characters, empty values and values over the length limits are refused.

use unicase::UniCase;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Longest accepted username, in bytes of UTF-8 after normalization.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest accepted email (RFC 5321 path limit), in bytes.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest accepted local part of an email (RFC 5321), in bytes.
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;
/// Longest accepted external id, in bytes.
pub const MAX_EXTERNAL_ID_BYTES: usize = 256;

/// The Unicode version the normalization and case folding tables follow. Recorded in the
/// directory file so that indexes can be rebuilt when it changes.
pub const UNICODE_VERSION: (u8, u8, u8) = unicode_normalization::UNICODE_VERSION;

/// The compatibility caseless key of `s` (Unicode §3.13, D146), in NFKC.
///
/// Two strings have the same key exactly when they are compatibility-caseless equal.
///
/// # Examples
/// ```
/// use userdir::identity::caseless_key;
/// assert_eq!(caseless_key("STRASSE"), caseless_key("straße"));
/// assert_eq!(caseless_key("\u{212A}elvin"), caseless_key("kelvin"));
/// assert_eq!(caseless_key("ａｄｍｉｎ"), "admin");
/// ```
#[must_use]
pub fn caseless_key(s: &str) -> String {
    // ASCII is its own NFD/NFKD/NFKC, and its full case folding is its lowercase.
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let nfd: String = s.nfd().collect();
    let step: String = UniCase::new(nfd).to_folded_case().nfkd().collect();
    let step: String = UniCase::new(step).to_folded_case().nfkd().collect();
    step.nfkc().collect()
}

/// The UTS #39 confusable skeleton of a username key: look-alike usernames (Cyrillic `а`
/// against Latin `a`) share a skeleton.
#[must_use]
pub fn skeleton(key: &str) -> String {
    unicode_security::skeleton(key).collect()
}

fn check_chars(field: &'static str, s: &str) -> Result<()> {
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Validates a username and returns its stored form (trimmed, NFC).
///
/// # Errors
/// [`Error::InvalidField`] when it is empty or whitespace only, contains control characters, or
/// is longer than [`MAX_USERNAME_BYTES`].
pub fn normalize_username(raw: &str) -> Result<String> {
    let t = raw.trim();
    // ASCII is already in NFC.
    let s: String = if t.is_ascii() {
        t.to_owned()
    } else {
        t.nfc().collect()
    };
    if s.is_empty() {
        return Err(Error::invalid("username", "is empty"));
    }
    check_chars("username", &s)?;
    if s.len() > MAX_USERNAME_BYTES {
        return Err(Error::invalid(
            "username",
            format!("is longer than {MAX_USERNAME_BYTES} bytes"),
        ));
    }
    if caseless_key(&s).is_empty() {
        return Err(Error::invalid("username", "has no visible characters"));
    }
    Ok(s)
}

/// Validates an email and returns its stored form (trimmed, lowercased, NFC).
///
/// The check is deliberately syntactic: exactly one `@`, a non-empty local part (at most 64
/// bytes) and domain, no whitespace or control characters, at most 254 bytes in all. It does not
/// decide deliverability.
///
/// # Errors
/// [`Error::InvalidField`] with field `email` and the rule that failed.
pub fn normalize_email(raw: &str) -> Result<String> {
    let t = raw.trim();
    let s: String = if t.is_ascii() {
        t.to_ascii_lowercase()
    } else {
        t.to_lowercase().nfc().collect()
    };
    if s.is_empty() {
        return Err(Error::invalid("email", "is empty"));
    }
    check_chars("email", &s)?;
    if s.chars().any(char::is_whitespace) {
        return Err(Error::invalid("email", "contains whitespace"));
    }
    if s.len() > MAX_EMAIL_BYTES {
        return Err(Error::invalid(
            "email",
            format!("is longer than {MAX_EMAIL_BYTES} bytes"),
        ));
    }
    let mut parts = s.split('@');
    let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(d), None) => (l, d),
        (_, None, _) => return Err(Error::invalid("email", "has no @")),
        _ => return Err(Error::invalid("email", "has more than one @")),
    };
    if local.is_empty() {
        return Err(Error::invalid("email", "has an empty local part"));
    }
    if local.len() > MAX_EMAIL_LOCAL_BYTES {
        return Err(Error::invalid(
            "email",
            format!("local part is longer than {MAX_EMAIL_LOCAL_BYTES} bytes"),
        ));
    }
    if domain.is_empty() {
        return Err(Error::invalid("email", "has an empty domain"));
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(Error::invalid("email", "has a malformed domain"));
    }
    Ok(s)
}

/// Validates an external id and returns its stored form (trimmed; compared exactly).
///
/// # Errors
/// [`Error::InvalidField`] when empty, over [`MAX_EXTERNAL_ID_BYTES`] or with control characters.
pub fn normalize_external_id(raw: &str) -> Result<String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Error::invalid("external_id", "is empty"));
    }
    check_chars("external_id", s)?;
    if s.len() > MAX_EXTERNAL_ID_BYTES {
        return Err(Error::invalid(
            "external_id",
            format!("is longer than {MAX_EXTERNAL_ID_BYTES} bytes"),
        ));
    }
    Ok(s.to_owned())
}

/// The index key for a login id as someone typed it (a username or an email, trimmed).
#[must_use]
pub fn lookup_key(raw: &str) -> String {
    caseless_key(raw.trim())
}

/// The index key of a stored username.
#[must_use]
pub fn username_key(stored: &str) -> String {
    caseless_key(stored)
}

/// The index key of a stored (already lowercased) email: its caseless form, so that it can be
/// compared with usernames (for ASCII addresses, the lowercase address itself).
#[must_use]
pub fn email_key(stored: &str) -> String {
    caseless_key(stored)
}

/// The index keys one user owns, computed here by the identity rules and handed to the store,
/// which only keeps them unique and findable (it never decides what a username is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UserKeys {
    /// The caseless key of the username ([`username_key`]).
    pub username: Option<String>,
    /// The caseless key of the email ([`email_key`]).
    pub email: Option<String>,
    /// The external id, as stored (compared exactly).
    pub external_id: Option<String>,
    /// The confusable [`skeleton`] of the username key, only while look-alikes are refused.
    pub skeleton: Option<String>,
    /// The role keys: each role's [`role_key`] (roles compare caselessly, RFC 7643
    /// `roles.value` caseExact=false), without duplicates, in key order.
    pub roles: Vec<String>,
    /// Every email of the user (`emails`, the login email's element included): the caseless
    /// key of its value and the caseless keys of the types of the elements with that value
    /// (distinct, sorted, joined by `0x00`; empty without any), one per value key, in key
    /// order. Neither unique nor used to log in: the secondary index
    /// that `emails eq`/`sw`/`co` and `emails[type eq ...]` filters read.
    pub emails: Vec<(String, String)>,
}

impl UserKeys {
    /// The keys of `user`; `skeletons`: whether look-alike refusal is on (the skeleton costs
    /// an index entry per user, so it is only computed then).
    pub(crate) fn of(user: &crate::user::User, skeletons: bool) -> UserKeys {
        let username = user.username.as_deref().map(username_key);
        UserKeys {
            skeleton: username.as_deref().filter(|_| skeletons).map(skeleton),
            username,
            email: user.email.as_deref().map(email_key),
            external_id: user.external_id.clone(),
            roles: role_keys(&user.roles),
            emails: email_value_keys(&user.emails),
        }
    }
}

/// The index key of a role: its caseless form, so that `roles eq "ADMIN"` finds users holding
/// `admin` (RFC 7643: `roles.value` is caseExact=false).
#[must_use]
pub fn role_key(role: &str) -> String {
    caseless_key(role)
}

/// The secondary email keys of `emails` (see [`UserKeys::emails`]).
pub(crate) fn email_value_keys(emails: &[crate::user::MultiValue]) -> Vec<(String, String)> {
    let mut by_value: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for e in emails {
        let types = by_value.entry(caseless_key(&e.value)).or_default();
        if let Some(t) = e.kind.as_deref() {
            types.insert(caseless_key(t));
        }
    }
    by_value
        .into_iter()
        .map(|(v, types)| (v, types.into_iter().collect::<Vec<_>>().join("\0")))
        .collect()
}

/// The distinct role keys of a set of roles, in key order (`Admin` and `admin` are one key).
pub(crate) fn role_keys(roles: &std::collections::BTreeSet<String>) -> Vec<String> {
    let mut keys: Vec<String> = roles.iter().map(|r| role_key(r)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// [`UNICODE_VERSION`] packed in one number (`major << 16 | minor << 8 | patch`), as the store
/// records it.
pub(crate) fn unicode_version_code() -> u64 {
    let (a, b, c) = UNICODE_VERSION;
    (u64::from(a) << 16) | (u64::from(b) << 8) | u64::from(c)
}
