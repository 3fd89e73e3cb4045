//! Every redb table of a directory file, in one place.

use redb::TableDefinition;

/// id → encoded user record (see `codec`).
pub(crate) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// caseless login key (username or email) → (id, kinds). `kinds` is a bit set of
/// [`KIND_USERNAME`] and [`KIND_EMAIL`]: one key names one account.
pub(crate) const LOGINS: TableDefinition<&str, (u128, u8)> = TableDefinition::new("logins");
/// external id → id.
pub(crate) const EXTERNAL_IDS: TableDefinition<&str, u128> = TableDefinition::new("external_ids");
/// (confusable skeleton of the username key, id) → ().
pub(crate) const SKELETONS: TableDefinition<(&str, u128), ()> = TableDefinition::new("skeletons");
/// (role, id) → ().
pub(crate) const ROLES: TableDefinition<(&str, u128), ()> = TableDefinition::new("roles");
/// (insert instant, id) → ().
pub(crate) const INSERTED: TableDefinition<(i64, u128), ()> = TableDefinition::new("inserted");
/// name → value: `format` (directory format), `unicode` (normalizer version, packed).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The login key is a username.
pub(crate) const KIND_USERNAME: u8 = 1;
/// The login key is an email.
pub(crate) const KIND_EMAIL: u8 = 2;

/// The directory format written by this version.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// user id → (consecutive failed logins, start of their counting window, locked until). Only
/// users with recent failures have a row; a successful login removes it.
pub(crate) const LOGIN_FAILURES: TableDefinition<u128, (u32, i64, Option<i64>)> =
    TableDefinition::new("login_failures");
/// SHA-256 of a token → (user id, kind, expiry, binding). Only the hash of a token is stored.
/// `binding` fingerprints what the token was issued for (the email it verifies, the password
/// hash it replaces), so a token outlived by a change of either is refused.
pub(crate) const TOKENS: TableDefinition<[u8; 32], (u128, u8, i64, u64)> =
    TableDefinition::new("tokens");
/// (expiry, token hash) → (): expired tokens are purged in expiry order.
pub(crate) const TOKEN_EXPIRY: TableDefinition<(i64, [u8; 32]), ()> =
    TableDefinition::new("token_expiry");
/// (user id, token hash) → (): a user's tokens, revoked together.
pub(crate) const USER_TOKENS: TableDefinition<(u128, [u8; 32]), ()> =
    TableDefinition::new("user_tokens");

/// A password-reset token.
pub(crate) const TOKEN_RESET: u8 = 1;
/// An email-verification token.
pub(crate) const TOKEN_VERIFY: u8 = 2;
