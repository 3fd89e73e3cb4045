//! # userdir
//!
//! An embedded user directory: user accounts in one local [redb](https://docs.rs/redb) file,
//! with unique caseless logins, argon2id password storage, and every operation one transaction.
//!
//! ```
//! use userdir::{Argon2Params, Directory, NewUser};
//! # fn main() -> Result<(), userdir::Error> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let path = tmp.path().join("users.redb");
//! let dir = Directory::builder()
//!     .hasher(Argon2Params::insecure_fast()) // tests only: the default is OWASP's argon2id
//!     .open(&path)?;
//! let ann = dir.create(NewUser::with_username("Ann").email("Ann@Example.com").password("correct horse"))?;
//!
//! // Usernames are caseless, emails are lowercased, login ids name one account.
//! assert_eq!(dir.find_by_username("ANN")?.unwrap().id, ann.id);
//! assert_eq!(dir.find_by_login_id("ann@example.COM")?.unwrap().id, ann.id);
//! assert!(matches!(
//!     dir.create(NewUser::with_username("aNN")),
//!     Err(userdir::Error::DuplicateUsername { .. })
//! ));
//!
//! // Soft delete keeps the username reserved; hard delete frees it.
//! dir.deactivate(ann.id)?;
//! assert!(dir.create(NewUser::with_username("ann")).is_err());
//! dir.delete(ann.id)?;
//! dir.create(NewUser::with_username("ann"))?;
//! dir.check_integrity()?;
//! # Ok(()) }
//! ```
//!
//! See the README for the identity rules, the file format and the benchmarks.
//!
//! # Features
//!
//! - `json` (default): JSON interchange in [`json`]: FusionAuth, Fuse, SCIM 2.0 and JSON Lines
//!   readers and writers (adds `serde_json`).
//! - `postgres`: a second engine, a PostgreSQL database shared by many processes
//!   (`Builder::open_postgres`); the same operations, errors and record format as the redb
//!   file (adds `postgres`).
//! - `scim`: the SCIM 2.0 HTTP endpoint, `scim::router` (axum 0.8 over tokio; implies
//!   `json`).
//! - `__test-hooks`: hidden, not part of the API. Hooks for userdir's own tests and fuzz
//!   targets (decoding raw records, dumping every table, failing the redo log's I/O); anything
//!   behind it may change in any release.
//!
//! Without features the library builds on its own dependencies only: the `userdir` command
//! (clap, indicatif) is a separate crate, `cli/`.
//!
//! The data types ([`User`] with its [`Profile`], [`MultiValue`], [`Address`], [`AttrValue`],
//! [`Page`], [`Cursor`], [`Login`], [`LoginFailures`], the import reports and policy
//! violations) implement serde's `Serialize`, and the input-like ones `Deserialize` too. A
//! [`User`]'s password hash is never serialized, and a deserialized `User` has none: a user
//! serializes as one flat object, its profile's fields next to `id`, `active` and the instants
//! (`#[serde(flatten)]`).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = userdir::Directory::builder().hasher(userdir::Argon2Params::insecure_fast()).in_memory()?;
//! let ann = dir.create(userdir::NewUser::with_username("ann").password("correct horse"))?;
//! let json = serde_json::to_value(&ann)?;
//! assert_eq!(json["username"], "ann");
//! assert!(json.get("password").is_none());
//! # Ok(()) }
//! ```
//!
//! # Using it from async code
//!
//! Every method of [`Directory`] blocks the calling thread: creating a user or logging in hashes
//! or verifies a password with argon2id (tens of milliseconds, by design), a write with
//! [`Durability::Immediate`] waits for the disk, and on PostgreSQL every call is a round trip
//! to the server. In an async runtime, never call it on the runtime's worker threads: run each
//! call on the blocking thread pool with a clone of the directory (clones share the open file
//! or connection pool), with `tokio::task::spawn_blocking` (or your runtime's equivalent):
//!
//! ```
//! # async fn handler(dir: userdir::Directory) -> Result<(), Box<dyn std::error::Error>> {
//! let d = dir.clone();
//! let user = tokio::task::spawn_blocking(move || d.authenticate("ann", "correct horse")).await?;
//! # let _ = user;
//! # Ok(()) }
//! ```
//!
//! Errors carry what an HTTP answer needs: [`Error::http_status`] (409 for a taken username,
//! 400 for bad input, 401 for a wrong password, ...) and [`Error::scim_type`]. The repository's
//! `examples/axum.rs` is a complete sign-up, login and user page application (CI runs it through
//! `tests/axum_example.rs`). The `scim` feature's `scim::router` already runs every call on
//! the blocking pool.

#![deny(missing_docs, unsafe_code)]
// Library code is held to clippy's pedantic set (unit tests are not: they favour brevity).
#![cfg_attr(not(test), deny(clippy::pedantic))]
// The pedantic lints userdir allows, each for a reason:
#![allow(
    // Product and format names in prose (FusionAuth, PostgreSQL, JSON Lines) are not code.
    clippy::doc_markdown,
    // The import and search pipelines read top to bottom as their phases.
    clippy::too_many_lines,
    // `r`, `w`, `u`, `k` for reader, writer, user and key in short scopes.
    clippy::many_single_char_names,
    // PasswordPolicy's flags are independent switches, not a state machine.
    clippy::struct_excessive_bools,
    // A two-arm `match` reads as well as `if let … else`.
    clippy::single_match_else,
    // Pairs such as `hasher`/`hashed` name different things on purpose.
    clippy::similar_names,
    // FusionAuth's `factor`: absent, `null` and a number are three different inputs.
    clippy::option_option,
    // `json::detect` lowercases the file name before comparing extensions.
    clippy::case_sensitive_file_extension_comparisons,
    // Local type aliases sit next to their only use.
    clippy::items_after_statements,
    // Limits named `max_*` (json::ReadLimits) say what they are.
    clippy::struct_field_names
)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

mod auth;
mod backend;
mod clock;
mod config;
mod directory;
mod error;
pub mod identity;
mod import;
#[cfg(feature = "json")]
pub mod json;
pub mod model;
mod password;
mod patch;
mod problems;
pub mod query;
#[cfg(feature = "scim")]
pub mod scim;
mod store;
mod token;
mod user;

pub use auth::{Login, LoginFailures};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AuthConfig, FailureFloor, Lockout};
pub use directory::{
    Builder, Directory, MAX_FIELD_BYTES, PreparedUpdate, PreparedUser, ReadTx, Tx,
};
pub use error::{Error, JsonProblem, Result, StorageError};
pub use import::{ImportBatch, ImportReport, ImportSummary, ImportTimings, RowProblem, RowReason};
pub use password::{
    Argon2Params, BreachedCheck, Hasher, MAX_ARGON2_M_KIB, MAX_ARGON2_P, MAX_ARGON2_T,
    PasswordPolicy, PolicyViolation, check_stored_hash,
};
pub use password::{
    MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS, MAX_PBKDF2_KEY_BYTES, MAX_PBKDF2_SALT_BYTES,
    MIN_PBKDF2_KEY_BYTES,
};
pub use patch::{PATCH_OP_SCHEMA, PatchErrorKind, PatchKind, PatchOp, PatchRequest};
pub use query::{Cursor, Filter, Page, Plan, Search, SortField, parse_filter};
/// Hooks for userdir's own tests and fuzz targets; not part of the API.
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub mod test_hooks {
    pub use crate::password::verification_count;
    pub use crate::store::codec::{fuzz_decode, fuzz_decode_reference, fuzz_seal};
}
pub use backend::{Backend, MemoryBackend};
pub use store::Durability;
pub use token::Token;
pub use user::MAX_DATA_DEPTH;
pub use user::{
    Address, AttrValue, MultiValue, NewUser, Password, PasswordInput, Profile, StoredHash,
    UnixMillis, User, UserUpdate,
};

/// The README's examples, compiled and run as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
