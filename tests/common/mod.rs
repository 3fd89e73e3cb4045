//! Helpers shared by the integration tests.
#![allow(dead_code)]

use userdir::{Argon2Params, Builder, Directory, ManualClock};

/// Opens a builder on the engine the backend-generic tests run on: redb in memory, or
/// PostgreSQL when `USERDIR_TEST_ENGINE=postgres` (the server of `USERDIR_TEST_PG_URL`, see
/// `scripts/pg`; a fresh schema for every directory). `scripts/test-all` runs these tests on
/// both.
pub trait OpenEngine {
    /// Opens the directory on the chosen engine.
    fn open_engine(self) -> userdir::Result<Directory>;
}

impl OpenEngine for Builder {
    fn open_engine(self) -> userdir::Result<Directory> {
        match std::env::var("USERDIR_TEST_ENGINE").as_deref() {
            Ok("postgres") => open_postgres(self),
            Ok("redb") | Err(_) => self.in_memory(),
            Ok(other) => panic!("USERDIR_TEST_ENGINE={other}: expected redb or postgres"),
        }
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(b: Builder) -> userdir::Result<Directory> {
    let url = std::env::var("USERDIR_TEST_PG_URL")
        .expect("USERDIR_TEST_ENGINE=postgres needs USERDIR_TEST_PG_URL (run through scripts/pg)");
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    b.postgres_schema(schema)
        .postgres_pool(2)
        .open_postgres(&url)
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: Builder) -> userdir::Result<Directory> {
    panic!("USERDIR_TEST_ENGINE=postgres needs the `postgres` feature")
}

/// A directory on the test engine (in memory by default) with cheap argon2 parameters and a
/// manual clock.
pub fn dir() -> (Directory, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .open_engine()
        .expect("open directory");
    (dir, clock)
}

/// Asserts that `f` fails and leaves every table exactly as it was, with integrity intact.
pub fn fails_without_change<T: std::fmt::Debug>(
    dir: &Directory,
    f: impl FnOnce() -> userdir::Result<T>,
) -> userdir::Error {
    let before = dir.dump().expect("dump");
    let err = f().expect_err("operation should fail");
    assert_eq!(
        dir.dump().expect("dump"),
        before,
        "a failed operation changed the directory"
    );
    dir.check_integrity().expect("integrity after failure");
    err
}
