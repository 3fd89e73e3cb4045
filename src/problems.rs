//! What refused input was refused for: password policy violations and the rows of a refused
//! import. These are the payloads of [`Error::PasswordPolicy`] and [`Error::Import`]; they live
//! in this leaf module (below `error`, `password` and `import`) so that `error` imports
//! nothing above it.
//!
//! [`Error::PasswordPolicy`]: crate::Error::PasswordPolicy
//! [`Error::Import`]: crate::Error::Import

use std::collections::HashSet;
use std::fmt;

use uuid::Uuid;

/// One way a password breaks the policy.
///
/// Serializes as `{"kind": "too_short", "detail": {"min": 12}}` (`detail` only for the
/// variants that carry one), for a sign-up form's error response.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Shorter than the minimum length (in characters).
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Longer than the maximum length (in characters).
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// No uppercase letter, and the policy requires one.
    MissingUppercase,
    /// No lowercase letter, and the policy requires one.
    MissingLowercase,
    /// No digit, and the policy requires one.
    MissingDigit,
    /// No symbol (non-alphanumeric character), and the policy requires one.
    MissingSymbol,
    /// Equal (caselessly) to the user's username or email.
    SameAsLoginId,
    /// The caller's breached-password check rejected it.
    Breached,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyViolation::TooShort { min } => write!(f, "shorter than {min} characters"),
            PolicyViolation::TooLong { max } => write!(f, "longer than {max} characters"),
            PolicyViolation::MissingUppercase => f.write_str("needs an uppercase letter"),
            PolicyViolation::MissingLowercase => f.write_str("needs a lowercase letter"),
            PolicyViolation::MissingDigit => f.write_str("needs a digit"),
            PolicyViolation::MissingSymbol => f.write_str("needs a symbol"),
            PolicyViolation::SameAsLoginId => f.write_str("equals the username or email"),
            PolicyViolation::Breached => f.write_str("is a known breached password"),
        }
    }
}

/// The violations, joined for a message.
pub(crate) fn describe(v: &[PolicyViolation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a row was refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum RowReason {
    /// The value is not acceptable (the reason says why; never a password or hash).
    Invalid(String),
    /// Another row of the batch (an earlier one) has the same key: the same id, a caselessly
    /// equal username or email (a username equal to the other row's email counts), the same
    /// external id.
    DuplicateInBatch {
        /// The index of that row.
        other_index: usize,
    },
    /// An existing user (possibly deactivated) already has this key.
    DuplicateOfExisting {
        /// That user's id.
        existing: Uuid,
    },
}

impl fmt::Display for RowReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowReason::Invalid(why) => f.write_str(why),
            RowReason::DuplicateInBatch { other_index } => {
                write!(f, "duplicate of row {other_index}")
            }
            RowReason::DuplicateOfExisting { existing } => {
                write!(f, "already taken by user {existing}")
            }
        }
    }
}

/// One problem of one row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowProblem {
    /// The row's index in the batch (0-based).
    pub index: usize,
    /// The field, named as in [`User`](crate::User) (`id`, `username`, `email`, `external_id`, `password`,
    /// `confirm`, `birth_date`, ...).
    pub field: &'static str,
    /// What is wrong.
    pub reason: RowReason,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}, {}: {}", self.index, self.field, self.reason)
    }
}

/// Every problem of a refused batch, in row order. Its `Display` lists them all, one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// The problems, ordered by row index, then field name (one problem per row and field:
    /// the first found).
    pub problems: Vec<RowProblem>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: HashSet<usize> = self.problems.iter().map(|p| p.index).collect();
        write!(
            f,
            "{} problem(s) in {} row(s)",
            self.problems.len(),
            rows.len()
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}
