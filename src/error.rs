//! The one error type of userdir.

use std::fmt::Write as _;

use uuid::Uuid;

use crate::problems::{ImportReport, PolicyViolation};

/// Everything that can go wrong in userdir.
///
/// Each variant is a failure a caller would handle differently. No variant ever carries a
/// password, a password hash or a token: messages name the field and the reason only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field's value is not acceptable (empty, too long, control characters, bad syntax, ...).
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field, named as in [`User`](crate::User) (`username`, `email`, `external_id`, ...).
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// A user needs a username or an email (or both) to log in with.
    #[error("a user needs a username or an email")]
    MissingLoginId,
    /// Another user already has this id.
    #[error("a user with id {0} already exists")]
    DuplicateId(Uuid),
    /// Another user already has this username (compared caselessly).
    #[error("username is taken by user {existing}")]
    DuplicateUsername {
        /// The user that owns the username (possibly deactivated).
        existing: Uuid,
    },
    /// Another user already has this email (compared lowercased).
    #[error("email is taken by user {existing}")]
    DuplicateEmail {
        /// The user that owns the email (possibly deactivated).
        existing: Uuid,
    },
    /// Another user already has this external id.
    #[error("external id is taken by user {existing}")]
    DuplicateExternalId {
        /// The user that owns the external id.
        existing: Uuid,
    },
    /// The username or email equals another user's login id of the other kind (a username equal
    /// to someone's email, or an email equal to someone's username), which would make a login
    /// ambiguous.
    #[error("{field} equals a login id of user {existing}")]
    LoginIdConflict {
        /// `username` or `email`: the field of the new value.
        field: &'static str,
        /// The user whose login id it collides with.
        existing: Uuid,
    },
    /// The username looks like another user's (same Unicode confusable skeleton); only returned
    /// when look-alike refusal is enabled on the builder.
    #[error("username looks like the username of user {existing}")]
    LookalikeUsername {
        /// The user whose username it resembles.
        existing: Uuid,
    },
    /// The password and its confirmation differ.
    #[error("password and confirmation do not match")]
    PasswordMismatch,
    /// The password breaks the password policy; every violation is listed.
    #[error("password does not meet the policy: {}", crate::problems::describe(.0))]
    PasswordPolicy(Vec<PolicyViolation>),
    /// A stored or given password hash cannot be used (unknown scheme, malformed, or cost
    /// parameters above the caps).
    #[error("unusable password hash: {0}")]
    InvalidHash(String),
    /// No user has this id.
    #[error("no user with id {0}")]
    NotFound(Uuid),
    /// The user changed since the caller read it: `expected` was given, `actual` is current.
    #[error("version conflict: expected {expected}, found {actual}")]
    VersionConflict {
        /// The version the caller expected.
        expected: u64,
        /// The user's current version.
        actual: u64,
    },
    /// The file is a userdir directory written by a newer format than this library reads.
    #[error("directory format {found} is newer than supported format {supported}")]
    UnsupportedFormat {
        /// The format version recorded in the file.
        found: u64,
        /// The newest format version this library reads.
        supported: u64,
    },
    /// The file is not a userdir directory (not a redb file, or a redb file of something else).
    #[error("not a userdir directory: {0}")]
    NotAUserdirFile(String),
    /// The file is already open, by this process or another.
    #[error("the directory file is already open elsewhere")]
    AlreadyOpen,
    /// A stored record or index entry could not be decoded or is inconsistent.
    #[error("corrupt directory: {0}")]
    Corrupt(String),
    /// `check_integrity` found records and indexes that disagree; each problem is listed.
    #[error("integrity check failed: {} problem(s), first: {}", .0.len(), .0.first().map_or("", String::as_str))]
    Integrity(Vec<String>),
    /// The storage engine failed (I/O error, full disk, permissions, ...). The
    /// [`StorageError`] names the file and keeps the operating system's error as its
    /// [`source`](std::error::Error::source), so a full disk can be told from a permission
    /// problem ([`StorageError::kind`]).
    #[error("storage failure: {0}")]
    Storage(#[source] StorageError),
    /// A read-only open found work that only a writable open can do: the file was not closed
    /// cleanly (a crash) and redb must repair it, or its redo log holds acknowledged writes not
    /// yet in the file, or its indexes must be rebuilt for a new Unicode version. Open it once
    /// with write access (any writable open does that work), then read-only again.
    #[error(
        "the directory needs a writable open first (not closed cleanly, or its redo log holds \
         writes not yet in the file)"
    )]
    NeedsRecovery,
    /// A write was attempted on a directory opened read-only
    /// ([`Builder::read_only`](crate::Builder::read_only)).
    #[error("the directory was opened read-only")]
    ReadOnly,
    /// An earlier storage failure left the directory unusable for writes; reopen the file.
    #[error("the directory had a storage failure; reopen it before writing")]
    NeedsReopen,
    /// A shared database (feature `postgres`) kept refusing the transaction as conflicting with
    /// concurrent ones (serialization failures, deadlocks) for `attempts` attempts; nothing was
    /// written. Trying again later may succeed.
    #[error(
        "the transaction conflicted with concurrent ones {attempts} time(s); nothing was written"
    )]
    TooManyConflicts {
        /// How many times the transaction ran.
        attempts: u32,
    },
    /// The connection to a shared database (feature `postgres`) was lost while the commit was
    /// in flight: the write may or may not have been applied. Read the state back before
    /// repeating a write that is not idempotent.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A shared database's login keys were computed under another Unicode version than this
    /// process's normalization tables; this process refuses to write (its keys could disagree
    /// with the stored ones). Versions are packed as `major << 16 | minor << 8 | update`.
    #[error(
        "the database's keys follow Unicode version {database:#x}, this process {process:#x}: writes refused"
    )]
    UnicodeMismatch {
        /// The Unicode version recorded in the database.
        database: u64,
        /// The Unicode version of this process.
        process: u64,
    },
    /// Password hashing failed (invalid argon2 parameters, for instance).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// A SCIM filter does not parse.
    #[error("invalid filter at position {position}: expected {expected}")]
    InvalidFilter {
        /// Byte offset in the filter where parsing stopped.
        position: usize,
        /// What the parser expected there.
        expected: String,
    },
    /// A search cursor is malformed or belongs to a search with another sort order.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A PATCH operation names an unknown or read-only path, or gives a value of the wrong
    /// shape; nothing was changed.
    #[error("invalid patch of {path:?}: {reason}")]
    InvalidPatch {
        /// The operation's path, as given.
        path: String,
        /// Why the operation was refused.
        reason: String,
    },
    /// The login id names no account, the password is wrong, or the account has no password.
    /// One variant for all three, so a caller cannot reveal which.
    #[error("invalid login id or password")]
    InvalidCredentials,
    /// The password was right but the account is deactivated.
    #[error("the account is deactivated")]
    AccountInactive,
    /// The password was right but the account's expiry instant has passed.
    #[error("the account has expired")]
    AccountExpired,
    /// Too many failed logins: the account refuses logins until `until`.
    #[error("the account is locked until {until}")]
    AccountLocked {
        /// When the lock ends, in ms since the Unix epoch.
        until: crate::user::UnixMillis,
    },
    /// The token is unknown, already used, revoked, or of another workflow.
    #[error("invalid or already used token")]
    InvalidToken,
    /// The token was valid but its lifetime has passed; start the workflow again.
    #[error("the token has expired")]
    TokenExpired,
    /// An import batch was refused; nothing was written. The report names every bad row: its
    /// index, the field and the reason.
    #[error("import refused: {0}")]
    Import(ImportReport),
    /// JSON interchange input that cannot be read: malformed JSON, or rows whose fields have
    /// the wrong shape. Every bad row is listed (see [`JsonProblem`]).
    #[error("invalid JSON input: {}", describe_json(.0))]
    InvalidJson(Vec<JsonProblem>),
}

/// What a storage failure was: what failed, on which file, and the operating system's error.
///
/// `Display` reads `<file>: <what failed>: <os error>` (the parts that are known);
/// [`source`](std::error::Error::source) is the [`std::io::Error`], when there is one.
#[derive(Clone, Debug)]
pub struct StorageError {
    what: String,
    path: Option<std::path::PathBuf>,
    /// Shared, so that one failure can be reported to every writer of a group commit.
    io: Option<std::sync::Arc<std::io::Error>>,
}

impl StorageError {
    /// A failure without an operating-system error behind it.
    pub(crate) fn msg(what: impl Into<String>) -> StorageError {
        StorageError {
            what: what.into(),
            path: None,
            io: None,
        }
    }

    /// A failed I/O operation: `what` says which (`"cannot open"`, `"sync failed"`).
    pub(crate) fn io(what: impl Into<String>, io: std::io::Error) -> StorageError {
        StorageError {
            what: what.into(),
            path: None,
            io: Some(std::sync::Arc::new(io)),
        }
    }

    /// The same failure, on the file at `path` (kept when one is already named).
    #[must_use]
    pub(crate) fn at(mut self, path: &std::path::Path) -> StorageError {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// The operating system's error, when the failure has one.
    #[must_use]
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.io.as_deref()
    }

    /// The kind of the operating system's error (`StorageFull`, `PermissionDenied`, ...).
    pub fn kind(&self) -> Option<std::io::ErrorKind> {
        self.io.as_deref().map(std::io::Error::kind)
    }

    /// The file the failure happened on, when known.
    #[must_use]
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        f.write_str(&self.what)?;
        if let Some(io) = &self.io {
            write!(f, ": {io}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with userdir's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status code that fits this error when it answers a web request.
    ///
    /// 400 for bad input (fields, policy, filters, cursors, patches, JSON, import reports,
    /// tokens), 401 for [`Error::InvalidCredentials`], 403 for an inactive or expired account,
    /// 404 for [`Error::NotFound`], 409 for a taken id, username, email or external id,
    /// 412 for [`Error::VersionConflict`] (an `If-Match` that no longer matches), 429 for
    /// [`Error::AccountLocked`] (retry after `until`), 503 for [`Error::AlreadyOpen`] and
    /// [`Error::NeedsReopen`] and [`Error::NeedsRecovery`], 405 for [`Error::ReadOnly`] (a write on
    /// a read-only open), 500 for everything else (a damaged or unreadable file, I/O,
    /// hashing). Log 5xx errors server-side rather than showing them: their messages may name
    /// files.
    ///
    /// # Examples
    /// ```
    /// # fn main() -> Result<(), userdir::Error> {
    /// # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
    /// dir.create(userdir::NewUser::with_username("ann"))?;
    /// let err = dir.create(userdir::NewUser::with_username("ANN")).unwrap_err();
    /// assert_eq!(err.http_status(), 409);
    /// assert_eq!(err.scim_type(), Some("uniqueness"));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidField { .. }
            | Error::MissingLoginId
            | Error::PasswordMismatch
            | Error::PasswordPolicy(_)
            | Error::InvalidHash(_)
            | Error::InvalidFilter { .. }
            | Error::InvalidCursor(_)
            | Error::InvalidPatch { .. }
            | Error::InvalidToken
            | Error::TokenExpired
            | Error::Import(_)
            | Error::InvalidJson(_) => 400,
            Error::InvalidCredentials => 401,
            Error::AccountInactive | Error::AccountExpired => 403,
            Error::NotFound(_) => 404,
            Error::DuplicateId(_)
            | Error::DuplicateUsername { .. }
            | Error::DuplicateEmail { .. }
            | Error::DuplicateExternalId { .. }
            | Error::LoginIdConflict { .. }
            | Error::LookalikeUsername { .. } => 409,
            Error::VersionConflict { .. } => 412,
            Error::AccountLocked { .. } => 429,
            Error::ReadOnly => 405,
            Error::AlreadyOpen
            | Error::NeedsReopen
            | Error::NeedsRecovery
            | Error::TooManyConflicts { .. } => 503,
            Error::UnsupportedFormat { .. }
            | Error::NotAUserdirFile(_)
            | Error::Corrupt(_)
            | Error::Integrity(_)
            | Error::Storage(_)
            | Error::OutcomeUnknown(_)
            | Error::UnicodeMismatch { .. }
            | Error::Hashing(_) => 500,
        }
    }

    /// The SCIM `scimType` of this error (RFC 7644 §3.12), for errors SCIM gives one:
    /// `uniqueness` (409), `invalidFilter`, `invalidValue`, `invalidSyntax` (malformed JSON),
    /// `invalidPath`, `mutability` and `noTarget` (PATCH), `invalidCursor` (RFC 9865). `None`
    /// for errors SCIM answers with the status alone (404, 412, 5xx, authentication).
    ///
    /// A SCIM error response is then `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
    /// "status": "<http_status>", "scimType": ..., "detail": "<Display of the error>"}`.
    ///
    /// # Examples
    /// ```
    /// let err = userdir::parse_filter("userName eq").unwrap_err();
    /// assert_eq!((err.http_status(), err.scim_type()), (400, Some("invalidFilter")));
    /// ```
    #[must_use]
    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            Error::DuplicateId(_)
            | Error::DuplicateUsername { .. }
            | Error::DuplicateEmail { .. }
            | Error::DuplicateExternalId { .. }
            | Error::LoginIdConflict { .. }
            | Error::LookalikeUsername { .. } => Some("uniqueness"),
            Error::InvalidFilter { .. } => Some("invalidFilter"),
            Error::InvalidCursor(_) => Some("invalidCursor"),
            Error::InvalidJson(_) => Some("invalidSyntax"),
            Error::InvalidPatch { path, reason } => Some(patch_scim_type(path, reason)),
            Error::InvalidField { .. }
            | Error::MissingLoginId
            | Error::PasswordMismatch
            | Error::PasswordPolicy(_)
            | Error::InvalidHash(_)
            | Error::Import(_) => Some("invalidValue"),
            // No `_` arm: a new variant must be decided here (and in `http_status`).
            Error::NotFound(_)
            | Error::VersionConflict { .. }
            | Error::UnsupportedFormat { .. }
            | Error::NotAUserdirFile(_)
            | Error::AlreadyOpen
            | Error::Corrupt(_)
            | Error::Integrity(_)
            | Error::Storage(_)
            | Error::NeedsRecovery
            | Error::ReadOnly
            | Error::NeedsReopen
            | Error::TooManyConflicts { .. }
            | Error::OutcomeUnknown(_)
            | Error::UnicodeMismatch { .. }
            | Error::Hashing(_)
            | Error::InvalidCredentials
            | Error::AccountInactive
            | Error::AccountExpired
            | Error::AccountLocked { .. }
            | Error::InvalidToken
            | Error::TokenExpired => None,
        }
    }

    /// The operating system's error behind a storage failure, if this is one that has it.
    #[must_use]
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            Error::Storage(s) => s.io_error(),
            _ => None,
        }
    }

    /// A storage failure without an operating-system error.
    pub(crate) fn storage_msg(what: impl Into<String>) -> Self {
        Error::Storage(StorageError::msg(what))
    }

    /// A failed I/O operation on the file at `path`.
    pub(crate) fn storage_io(
        what: impl Into<String>,
        path: &std::path::Path,
        io: std::io::Error,
    ) -> Self {
        Error::Storage(StorageError::io(what, io).at(path))
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// One problem found while reading JSON interchange input (see [`Error::InvalidJson`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JsonProblem {
    /// The 0-based index of the row (user) in the input; for JSON Lines, the 0-based line
    /// number. `None` for a problem with the document as a whole.
    pub row: Option<usize>,
    /// The field, named as in the input format (`email`, `profile.FirstName`, `name.givenName`).
    pub field: Option<String>,
    /// What is wrong; never contains a password or hash.
    pub reason: String,
}

impl std::fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.row, &self.field) {
            (Some(r), Some(field)) => write!(f, "row {r}, field {field}: {}", self.reason),
            (Some(r), None) => write!(f, "row {r}: {}", self.reason),
            (None, Some(field)) => write!(f, "field {field}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

/// The `scimType` of a refused PATCH operation, from its path and the reason `patch` gives.
fn patch_scim_type(path: &str, reason: &str) -> &'static str {
    if reason.contains("remove needs a path") {
        // RFC 7644 §3.5.2.2: a remove without a path is `noTarget`.
        "noTarget"
    } else if path.is_empty() || path.starts_with("Operations[") {
        // The PatchOp body itself, or one of its operations, does not follow the schema.
        "invalidSyntax"
    } else if reason.contains("noTarget") {
        "noTarget"
    } else if reason.contains("read-only") || reason.contains("cannot be") {
        "mutability"
    } else if reason.contains("unknown") || reason.contains("path") {
        "invalidPath"
    } else {
        "invalidValue"
    }
}

fn describe_json(problems: &[JsonProblem]) -> String {
    let mut s = problems
        .iter()
        .take(3)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > 3 {
        let _ = write!(s, "; and {} more", problems.len() - 3);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant with the status and `scimType` it answers with: the one table behind
    /// `http_status`, `scim_type` and the SCIM endpoint's error responses.
    #[test]
    fn every_variant_has_a_status_and_a_scim_type() {
        let id = Uuid::nil();
        let patch = |path: &str, reason: &str| Error::InvalidPatch {
            path: path.into(),
            reason: reason.into(),
        };
        let table: Vec<(Error, u16, Option<&str>)> = vec![
            (Error::invalid("email", "bad"), 400, Some("invalidValue")),
            (Error::MissingLoginId, 400, Some("invalidValue")),
            (Error::DuplicateId(id), 409, Some("uniqueness")),
            (
                Error::DuplicateUsername { existing: id },
                409,
                Some("uniqueness"),
            ),
            (
                Error::DuplicateEmail { existing: id },
                409,
                Some("uniqueness"),
            ),
            (
                Error::DuplicateExternalId { existing: id },
                409,
                Some("uniqueness"),
            ),
            (
                Error::LoginIdConflict {
                    field: "email",
                    existing: id,
                },
                409,
                Some("uniqueness"),
            ),
            (
                Error::LookalikeUsername { existing: id },
                409,
                Some("uniqueness"),
            ),
            (Error::PasswordMismatch, 400, Some("invalidValue")),
            (Error::PasswordPolicy(Vec::new()), 400, Some("invalidValue")),
            (Error::InvalidHash("x".into()), 400, Some("invalidValue")),
            (Error::NotFound(id), 404, None),
            (
                Error::VersionConflict {
                    expected: 1,
                    actual: 2,
                },
                412,
                None,
            ),
            (
                Error::UnsupportedFormat {
                    found: 9,
                    supported: 3,
                },
                500,
                None,
            ),
            (Error::NotAUserdirFile("f".into()), 500, None),
            (Error::AlreadyOpen, 503, None),
            (Error::Corrupt("x".into()), 500, None),
            (Error::Integrity(vec!["x".into()]), 500, None),
            (Error::storage_msg("x"), 500, None),
            (Error::NeedsRecovery, 503, None),
            (Error::ReadOnly, 405, None),
            (Error::NeedsReopen, 503, None),
            (Error::TooManyConflicts { attempts: 8 }, 503, None),
            (Error::OutcomeUnknown("lost".into()), 500, None),
            (
                Error::UnicodeMismatch {
                    database: 0x0f_00_00,
                    process: 0x10_00_00,
                },
                500,
                None,
            ),
            (Error::Hashing("x".into()), 500, None),
            (
                Error::InvalidFilter {
                    position: 0,
                    expected: "x".into(),
                },
                400,
                Some("invalidFilter"),
            ),
            (Error::InvalidCursor("x".into()), 400, Some("invalidCursor")),
            (patch("", "not a PatchOp"), 400, Some("invalidSyntax")),
            (patch("Operations[0]", "no op"), 400, Some("invalidSyntax")),
            (patch("", "remove needs a path"), 400, Some("noTarget")),
            (
                patch("emails[type eq \"x\"]", "noTarget"),
                400,
                Some("noTarget"),
            ),
            (patch("id", "read-only"), 400, Some("mutability")),
            (
                patch("nosuch", "unknown attribute"),
                400,
                Some("invalidPath"),
            ),
            (
                patch("active", "expects a boolean"),
                400,
                Some("invalidValue"),
            ),
            (Error::InvalidCredentials, 401, None),
            (Error::AccountInactive, 403, None),
            (Error::AccountExpired, 403, None),
            (Error::AccountLocked { until: 0 }, 429, None),
            (Error::InvalidToken, 400, None),
            (Error::TokenExpired, 400, None),
            (
                Error::Import(ImportReport::default()),
                400,
                Some("invalidValue"),
            ),
            (Error::InvalidJson(Vec::new()), 400, Some("invalidSyntax")),
        ];
        for (e, status, scim) in &table {
            assert_eq!((e.http_status(), e.scim_type()), (*status, *scim), "{e:?}");
        }
    }
}
