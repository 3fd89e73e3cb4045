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
