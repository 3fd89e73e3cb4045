//! Helpers shared by the integration tests.
#![allow(dead_code)]

use userdir::{Argon2Params, Directory, ManualClock};

/// An in-memory directory with cheap argon2 parameters and a manual clock.
pub fn dir() -> (Directory, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .in_memory()
        .expect("open in-memory directory");
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
