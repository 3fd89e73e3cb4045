//! The relational schema on PostgreSQL, and its migrations.
//!
//! The database enforces what must hold across processes:
//!
//! | table | holds | enforced by the database |
//! |---|---|---|
//! | `userdir_meta` | one row: schema version, record format, Unicode version, look-alike flag | `id = 1` |
//! | `userdir_users` | id, the encoded record (the same codec as the redb file), and the columns an operator reads | `id` primary key, `external_id` unique |
//! | `userdir_logins` | caseless login keys of usernames AND emails, one key space | `key` primary key: a login id names one account |
//! | `userdir_roles` | (role, user) | primary key; rows go with their user |
//! | `userdir_emails` | (caseless email value key, user, the elements' type keys joined by U+0001): every element of `emails` (migration 3) | rows go with their user |
//! | `userdir_skeletons` | (confusable skeleton, user), while look-alike refusal is on | rows go with their user |
//! | `userdir_tokens` | SHA-256 of a token, user, kind, expiry, binding | primary key; rows go with their user |
//! | `userdir_login_failures` | failed-login state per user | one row per user; rows go with their user |
//!
//! Keys are computed in Rust by [`crate::identity`], exactly as for the redb file; text keys use
//! the `C` collation so that their order (prefix walks, pages) is byte order, as in redb.
//!
//! Migrations run on open, one transaction each, while holding the meta row
//! (`SELECT … FOR UPDATE`): CockroachDB has no advisory locks, and a row lock works on all three
//! databases the feature is written for.

/// The schema version this library writes. Opening a database with a newer one fails.
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The meta table and its row; created idempotently before anything else.
pub(crate) const META: &str = "
CREATE TABLE IF NOT EXISTS userdir_meta (
    id integer PRIMARY KEY CHECK (id = 1),
    schema_version bigint NOT NULL,
    record_format bigint NOT NULL,
    unicode_version bigint NOT NULL,
    skeletons boolean NOT NULL
)";

/// Migration `n` (index `n - 1`) takes the schema from version `n - 1` to `n`.
pub(crate) const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE userdir_users (
    id uuid PRIMARY KEY,
    record bytea NOT NULL,
    username text COLLATE \"C\",
    email text COLLATE \"C\",
    external_id text COLLATE \"C\" CONSTRAINT userdir_users_external_id_key UNIQUE,
    active boolean NOT NULL,
    insert_instant bigint NOT NULL
);
CREATE INDEX userdir_users_inserted ON userdir_users (insert_instant, id);
CREATE TABLE userdir_logins (
    key text COLLATE \"C\" CONSTRAINT userdir_logins_pkey PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES userdir_users (id) ON DELETE CASCADE,
    kinds smallint NOT NULL CHECK (kinds BETWEEN 1 AND 3)
);
CREATE INDEX userdir_logins_user ON userdir_logins (user_id);
CREATE TABLE userdir_roles (
    role text COLLATE \"C\" NOT NULL,
    user_id uuid NOT NULL REFERENCES userdir_users (id) ON DELETE CASCADE,
    PRIMARY KEY (role, user_id)
);
CREATE INDEX userdir_roles_user ON userdir_roles (user_id);
CREATE TABLE userdir_skeletons (
    skeleton text COLLATE \"C\" NOT NULL,
    user_id uuid NOT NULL REFERENCES userdir_users (id) ON DELETE CASCADE,
    PRIMARY KEY (skeleton, user_id)
);
CREATE INDEX userdir_skeletons_user ON userdir_skeletons (user_id);
CREATE TABLE userdir_tokens (
    hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES userdir_users (id) ON DELETE CASCADE,
    kind smallint NOT NULL,
    expiry bigint NOT NULL,
    binding bigint NOT NULL
);
CREATE INDEX userdir_tokens_expiry ON userdir_tokens (expiry, hash);
CREATE INDEX userdir_tokens_user ON userdir_tokens (user_id);
CREATE TABLE userdir_login_failures (
    user_id uuid PRIMARY KEY REFERENCES userdir_users (id) ON DELETE CASCADE,
    count bigint NOT NULL,
    window_start bigint NOT NULL,
    locked_until bigint
);
",
    "
CREATE TABLE userdir_login_id_failures (
    digest bytea PRIMARY KEY,
    count bigint NOT NULL,
    window_start bigint NOT NULL,
    locked_until bigint
);
",
    // Sorted pages and key-only totals: usernames and login emails each in key order (the
    // owner included, for index-only scans), so `ORDER BY key LIMIT n` reads n index
    // entries of that kind. The secondary email index. Role keys become caseless and the
    // email rows are built from the records (`migrate_v3`, run after this step).
    "
CREATE INDEX userdir_logins_usernames ON userdir_logins (key) INCLUDE (user_id)
    WHERE kinds & 1 <> 0;
CREATE INDEX userdir_logins_emails ON userdir_logins (key) INCLUDE (user_id)
    WHERE kinds & 2 <> 0;
CREATE TABLE userdir_emails (
    value text COLLATE \"C\" NOT NULL,
    user_id uuid NOT NULL REFERENCES userdir_users (id) ON DELETE CASCADE,
    types text COLLATE \"C\" NOT NULL,
    PRIMARY KEY (value, user_id)
);
CREATE INDEX userdir_emails_user ON userdir_emails (user_id);
",
];

/// The schema version after which role keys are caseless and secondary emails indexed
/// ([`super::tx::migrate_v3`]).
pub(crate) const CASELESS_ROLES: i64 = 3;

/// Every table of the schema, for tests that start over.
#[allow(dead_code)]
pub(crate) const TABLES: &[&str] = &[
    "userdir_login_id_failures",
    "userdir_login_failures",
    "userdir_tokens",
    "userdir_skeletons",
    "userdir_emails",
    "userdir_roles",
    "userdir_logins",
    "userdir_users",
    "userdir_meta",
];
