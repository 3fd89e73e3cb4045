//! Authentication: every outcome of `authenticate` with its error variant, lockout rules,
//! change password, and the instrumentation proving unknown logins cost a verification.

mod common;
use common::OpenEngine;

use std::time::Duration;

use userdir::test_hooks::verification_count;
use userdir::{
    Argon2Params, AuthConfig, Directory, Error, Lockout, ManualClock, NewUser, UserUpdate,
};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

fn dir_with(auth: AuthConfig) -> (Directory, ManualClock) {
    let clock = ManualClock::new(T0);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .auth(auth)
        .open_engine()
        .unwrap();
    (dir, clock)
}

fn dir() -> (Directory, ManualClock) {
    dir_with(AuthConfig::default())
}

fn ann(dir: &Directory) -> userdir::User {
    dir.create(
        NewUser::with_username("Ann")
            .email("Ann@Example.com")
            .password("correct horse"),
    )
    .unwrap()
}

#[test]
fn login_by_username_is_caseless_and_records_last_login() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    assert_eq!(u.last_login_instant, None);
    clock.advance(5_000);
    let login = dir.authenticate("aNN", "correct horse").unwrap();
    assert_eq!(login.user.id, u.id);
    assert_eq!(login.user.last_login_instant, Some(T0 + 5_000));
    assert!(!login.password_change_required);
    assert!(!login.rehashed);
    assert_eq!(
        dir.get(u.id).unwrap().unwrap().last_login_instant,
        Some(T0 + 5_000)
    );
    // The stored hash is untouched by a login with current parameters.
    assert_eq!(dir.get(u.id).unwrap().unwrap().password, u.password);
}

#[test]
fn login_by_email() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let login = dir
        .authenticate("ann@EXAMPLE.com", "correct horse")
        .unwrap();
    assert_eq!(login.user.id, u.id);
    assert!(login.user.last_login_instant.is_some());
}

#[test]
fn wrong_password_is_invalid_credentials() {
    let (dir, _) = dir();
    let u = ann(&dir);
    assert!(matches!(
        dir.authenticate("ann", "correct horsE"),
        Err(Error::InvalidCredentials)
    ));
    assert_eq!(dir.get(u.id).unwrap().unwrap().last_login_instant, None);
    assert_eq!(dir.login_failures(u.id).unwrap().count, 1);
}

#[test]
fn unknown_login_is_the_same_error() {
    let (dir, _) = dir();
    ann(&dir);
    let unknown = dir.authenticate("bob", "correct horse").unwrap_err();
    let wrong = dir.authenticate("ann", "nope").unwrap_err();
    assert!(matches!(unknown, Error::InvalidCredentials));
    assert_eq!(unknown.to_string(), wrong.to_string());
}

#[test]
fn account_without_password_cannot_log_in() {
    let (dir, _) = dir();
    dir.create(NewUser::with_username("nopass")).unwrap();
    assert!(matches!(
        dir.authenticate("nopass", ""),
        Err(Error::InvalidCredentials)
    ));
}

#[test]
fn unknown_login_runs_one_verification() {
    // Instrumentation, not timing: the per-thread count of `Hasher::verify` calls.
    let (dir, _) = dir();
    ann(&dir);
    dir.create(NewUser::with_username("nopass")).unwrap();
    for (login, password) in [
        ("nobody", "correct horse"),
        ("nobody@example.com", ""),
        ("ann", "wrong password"),
        ("ann", "correct horse"),
        ("nopass", "anything"),
    ] {
        let before = verification_count();
        let _ = dir.authenticate(login, password);
        assert_eq!(
            verification_count() - before,
            1,
            "{login}: exactly one verification"
        );
    }
}

#[test]
fn locked_account_is_refused_with_the_work_of_a_failure() {
    let (dir, _) = dir();
    let u = ann(&dir);
    for _ in 0..5 {
        let _ = dir.authenticate("ann", "wrong");
    }
    // A locked login id (known or not) verifies the dummy hash: as slow as any failure.
    let before = verification_count();
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::AccountLocked { .. })
    ));
    assert_eq!(verification_count(), before + 1);
    assert!(dir.login_failures(u.id).unwrap().locked_until.is_some());
}

#[test]
fn inactive_account() {
    let (dir, _) = dir();
    let u = ann(&dir);
    dir.deactivate(u.id).unwrap();
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::AccountInactive)
    ));
    // Without the right password, an inactive account looks like any failed login.
    assert!(matches!(
        dir.authenticate("ann", "wrong"),
        Err(Error::InvalidCredentials)
    ));
    dir.reactivate(u.id).unwrap();
    dir.authenticate("ann", "correct horse").unwrap();
}

#[test]
fn expired_account_with_injected_clock() {
    let (dir, clock) = dir();
    let u = dir
        .create(
            NewUser::with_username("temp")
                .password("correct horse")
                .expiry(T0 + 10 * MIN),
        )
        .unwrap();
    dir.authenticate("temp", "correct horse").unwrap();
    clock.advance(10 * MIN - 1);
    dir.authenticate("temp", "correct horse").unwrap();
    clock.advance(1);
    assert!(matches!(
        dir.authenticate("temp", "correct horse"),
        Err(Error::AccountExpired)
    ));
    assert!(matches!(
        dir.authenticate("temp", "wrong"),
        Err(Error::InvalidCredentials)
    ));
    // Extending the expiry lets the user back in.
    let mut up = UserUpdate::from(&dir.get(u.id).unwrap().unwrap());
    up.profile.expiry = Some(T0 + 60 * MIN);
    dir.update(u.id, up, None).unwrap();
    dir.authenticate("temp", "correct horse").unwrap();
}

#[test]
fn locked_after_max_failures_and_unlocked_after_duration() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    for i in 1..5 {
        assert!(matches!(
            dir.authenticate("ann", "wrong"),
            Err(Error::InvalidCredentials)
        ));
        assert_eq!(dir.login_failures(u.id).unwrap().count, i);
        clock.advance(1_000);
    }
    let locked_at = dir.now();
    match dir.authenticate("ann", "wrong") {
        Err(Error::AccountLocked { until }) => assert_eq!(until, locked_at + 15 * MIN),
        other => panic!("expected a lock, got {other:?}"),
    }
    // The right password does not help while locked.
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::AccountLocked { until }) if until == locked_at + 15 * MIN
    ));
    clock.advance(15 * MIN - 1);
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::AccountLocked { .. })
    ));
    clock.advance(1);
    assert_eq!(dir.login_failures(u.id).unwrap().locked_until, None);
    dir.authenticate("ann", "correct horse").unwrap();
    assert_eq!(
        dir.login_failures(u.id).unwrap(),
        userdir::LoginFailures::default()
    );
}

#[test]
fn a_failure_after_the_lock_ends_starts_a_new_count() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    for _ in 0..5 {
        let _ = dir.authenticate("ann", "wrong");
    }
    clock.advance(15 * MIN);
    assert!(matches!(
        dir.authenticate("ann", "wrong"),
        Err(Error::InvalidCredentials)
    ));
    assert_eq!(dir.login_failures(u.id).unwrap().count, 1);
}

#[test]
fn success_resets_the_count() {
    let (dir, _) = dir();
    let u = ann(&dir);
    for _ in 0..4 {
        let _ = dir.authenticate("ann", "wrong");
    }
    dir.authenticate("ann", "correct horse").unwrap();
    assert_eq!(dir.login_failures(u.id).unwrap().count, 0);
    for _ in 0..4 {
        let _ = dir.authenticate("ann", "wrong");
    }
    assert_eq!(dir.login_failures(u.id).unwrap().count, 4);
    dir.authenticate("ann", "correct horse").unwrap();
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let (dir, clock) = dir_with(
        AuthConfig::default().lockout(
            Lockout::default()
                .max_failures(3)
                .window(Duration::from_millis(MIN as u64))
                .duration(Duration::from_millis(5 * MIN as u64)),
        ),
    );
    let u = ann(&dir);
    for _ in 0..10 {
        assert!(matches!(
            dir.authenticate("ann", "wrong"),
            Err(Error::InvalidCredentials)
        ));
        let _ = dir.authenticate("ann", "wrong");
        clock.advance(MIN);
    }
    assert_eq!(dir.login_failures(u.id).unwrap().count, 2);
    dir.authenticate("ann", "correct horse").unwrap();
}

#[test]
fn lockout_can_be_disabled_and_unlock_lifts_it() {
    let (dir, _) = dir_with(AuthConfig::default().lockout(None));
    let u = ann(&dir);
    for _ in 0..20 {
        let _ = dir.authenticate("ann", "wrong");
    }
    assert_eq!(dir.login_failures(u.id).unwrap().count, 0);
    dir.authenticate("ann", "correct horse").unwrap();

    let (dir, _) = dir_with(AuthConfig::default());
    let u = ann(&dir);
    for _ in 0..5 {
        let _ = dir.authenticate("ann", "wrong");
    }
    assert!(dir.login_failures(u.id).unwrap().locked_until.is_some());
    dir.unlock(u.id).unwrap();
    dir.authenticate("ann", "correct horse").unwrap();
    assert!(matches!(
        dir.unlock(uuid::Uuid::new_v4()),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn failure_counts_persist_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let clock = ManualClock::new(T0);
    let open = || {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .clock(clock.clone())
            .open(&path)
            .unwrap()
    };
    let dir = open();
    let u = ann(&dir);
    for _ in 0..4 {
        let _ = dir.authenticate("ann", "wrong");
    }
    drop(dir);
    let dir = open();
    assert_eq!(dir.login_failures(u.id).unwrap().count, 4);
    assert!(matches!(
        dir.authenticate("ann", "wrong"),
        Err(Error::AccountLocked { .. })
    ));
    drop(dir);
    let dir = open();
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::AccountLocked { .. })
    ));
    dir.check_integrity().unwrap();
}

#[test]
fn password_change_required_is_flagged_not_refused() {
    let (dir, _) = dir();
    let u = dir
        .create(
            NewUser::with_username("newbie")
                .password("temporary pw")
                .password_change_required(true),
        )
        .unwrap();
    let login = dir.authenticate("newbie", "temporary pw").unwrap();
    assert!(login.password_change_required);
    assert_eq!(login.user.id, u.id);
    let changed = dir
        .change_password("newbie", "temporary pw", "my own secret")
        .unwrap();
    assert!(!changed.password_change_required);
    let login = dir.authenticate("newbie", "my own secret").unwrap();
    assert!(!login.password_change_required);
}

#[test]
fn change_password_checks_the_current_one_and_the_policy() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    assert!(matches!(
        dir.change_password("ann", "wrong", "battery staple"),
        Err(Error::InvalidCredentials)
    ));
    assert_eq!(dir.login_failures(u.id).unwrap().count, 1);
    assert!(matches!(
        dir.change_password("nobody", "correct horse", "battery staple"),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        dir.change_password("ann", "correct horse", "short"),
        Err(Error::PasswordPolicy(_))
    ));
    assert!(matches!(
        dir.change_password("ann", "correct horse", "ANN@example.com"),
        Err(Error::PasswordPolicy(_))
    ));
    clock.advance(MIN);
    let changed = dir
        .change_password("ann@example.com", "correct horse", "battery staple")
        .unwrap();
    assert_eq!(changed.password_last_update_instant, Some(T0 + MIN));
    assert_eq!(dir.login_failures(u.id).unwrap().count, 0);
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::InvalidCredentials)
    ));
    dir.authenticate("ann", "battery staple").unwrap();

    dir.deactivate(u.id).unwrap();
    assert!(matches!(
        dir.change_password("ann", "battery staple", "third secret"),
        Err(Error::AccountInactive)
    ));
}

#[test]
fn invalid_auth_config_is_refused() {
    for auth in [
        AuthConfig::default().lockout(Lockout::default().max_failures(0)),
        AuthConfig::default().lockout(Lockout::default().window(Duration::ZERO)),
        AuthConfig::default().reset_token_ttl(Duration::ZERO),
        AuthConfig::default().verification_token_ttl(Duration::from_micros(999)),
    ] {
        assert!(matches!(
            Directory::builder().auth(auth).open_engine(),
            Err(Error::InvalidField { .. })
        ));
    }
}

#[test]
fn errors_never_show_the_password() {
    let (dir, _) = dir();
    ann(&dir);
    for e in [
        dir.authenticate("ann", "s3cr3t-guess").unwrap_err(),
        dir.authenticate("s3cr3t-guess", "s3cr3t-guess")
            .unwrap_err(),
        dir.change_password("ann", "correct horse", "s3cr3t")
            .unwrap_err(),
    ] {
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");
    }
}
