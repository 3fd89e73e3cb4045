//! Email-verification and password-reset tokens: form, single use, expiry with an injected
//! clock, revocation, refusal across workflows, cleanup on delete and deactivate.

mod common;
use common::OpenEngine;

use userdir::{
    Argon2Params, AuthConfig, Directory, Error, ManualClock, NewUser, Token, User, UserUpdate,
};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

fn dir() -> (Directory, ManualClock) {
    let clock = ManualClock::new(T0);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .open_engine()
        .unwrap();
    (dir, clock)
}

fn ann(dir: &Directory) -> User {
    dir.create(
        NewUser::with_username("ann")
            .email("ann@example.com")
            .password("correct horse"),
    )
    .unwrap()
}

#[test]
fn token_form() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let a = dir.start_password_reset("ann").unwrap();
    let b = dir.start_email_verification(u.id).unwrap();
    for t in [&a, &b] {
        assert_eq!(t.as_str().len(), 43);
        assert!(
            t.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let parsed: Token = t.as_str().parse().unwrap();
        assert_eq!(&parsed, t);
        assert_eq!(Token::from(t.as_str().to_owned()), parsed);
    }
    assert_ne!(a, b);
    for bad in ["", "abc", &format!("{}=", a.as_str()), &"+".repeat(43)] {
        assert!(matches!(bad.parse::<Token>(), Err(Error::InvalidToken)));
    }
    // Garbage given as text is simply unknown.
    assert!(matches!(
        dir.verify_email("not a token"),
        Err(Error::InvalidToken)
    ));
    assert!(matches!(
        dir.reset_password("not a token", "new secret"),
        Err(Error::InvalidToken)
    ));
}

#[test]
fn only_a_hash_of_the_token_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .unwrap();
    let u = ann(&dir);
    let t1 = dir.start_password_reset("ann").unwrap();
    let t2 = dir.start_email_verification(u.id).unwrap();
    drop(dir);
    let bytes = std::fs::read(&path).unwrap();
    for t in [t1, t2] {
        let needle = t.as_str().as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn email_verification_is_single_use() {
    let (dir, _) = dir();
    let u = ann(&dir);
    assert!(!u.verified);
    let t = dir.start_email_verification(u.id).unwrap();
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 1);
    let v = dir.verify_email(&t).unwrap();
    assert!(v.verified);
    assert!(dir.get(u.id).unwrap().unwrap().verified);
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 0);
    assert!(matches!(dir.verify_email(&t), Err(Error::InvalidToken)));
    dir.check_integrity().unwrap();
}

#[test]
fn password_reset_is_single_use() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let t = dir.start_password_reset("ANN@example.com").unwrap();
    let r = dir.reset_password(t.as_str(), "brand new secret").unwrap();
    assert_eq!(r.id, u.id);
    dir.authenticate("ann", "brand new secret").unwrap();
    assert!(matches!(
        dir.authenticate("ann", "correct horse"),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        dir.reset_password(&t, "another secret"),
        Err(Error::InvalidToken)
    ));
    dir.authenticate("ann", "brand new secret").unwrap();
    dir.check_integrity().unwrap();
}

#[test]
fn reset_token_expires_after_ten_minutes() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    let t = dir.start_password_reset("ann").unwrap();
    clock.advance(10 * MIN - 1);
    let t2 = dir.start_password_reset("ann").unwrap();
    dir.reset_password(&t, "brand new secret").unwrap();
    // t2 was revoked by the reset; a fresh one expires on time.
    assert!(matches!(
        dir.reset_password(&t2, "x brand new"),
        Err(Error::InvalidToken)
    ));
    let t3 = dir.start_password_reset("ann").unwrap();
    clock.advance(10 * MIN);
    assert!(matches!(
        dir.reset_password(&t3, "too late secret"),
        Err(Error::TokenExpired)
    ));
    // An expired token is removed when presented.
    assert!(matches!(
        dir.reset_password(&t3, "too late secret"),
        Err(Error::InvalidToken)
    ));
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 0);
    dir.authenticate("ann", "brand new secret").unwrap();
}

#[test]
fn verification_token_expires_after_a_day_and_ttls_are_configurable() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    let t = dir.start_email_verification(u.id).unwrap();
    clock.advance(24 * 60 * MIN);
    assert!(matches!(dir.verify_email(&t), Err(Error::TokenExpired)));
    assert!(matches!(dir.verify_email(&t), Err(Error::InvalidToken)));
    assert!(!dir.get(u.id).unwrap().unwrap().verified);

    let clock = ManualClock::new(T0);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .auth(
            AuthConfig::default()
                .reset_token_ttl(std::time::Duration::from_secs(1))
                .verification_token_ttl(std::time::Duration::from_secs(2)),
        )
        .open_engine()
        .unwrap();
    let u = ann(&dir);
    let r = dir.start_password_reset("ann").unwrap();
    let v = dir.start_email_verification(u.id).unwrap();
    clock.advance(1_000);
    assert!(matches!(
        dir.reset_password(&r, "brand new secret"),
        Err(Error::TokenExpired)
    ));
    dir.verify_email(&v).unwrap();
}

#[test]
fn a_new_verification_token_replaces_the_previous_one() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let old = dir.start_email_verification(u.id).unwrap();
    let new = dir.start_email_verification(u.id).unwrap();
    assert!(matches!(dir.verify_email(&old), Err(Error::InvalidToken)));
    dir.verify_email(&new).unwrap();
}

#[test]
fn change_password_revokes_reset_tokens() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let r1 = dir.start_password_reset("ann").unwrap();
    let r2 = dir.start_password_reset("ann").unwrap();
    let v = dir.start_email_verification(u.id).unwrap();
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 3);
    dir.change_password("ann", "correct horse", "battery staple")
        .unwrap();
    for r in [&r1, &r2] {
        assert!(matches!(
            dir.reset_password(r, "attacker secret"),
            Err(Error::InvalidToken)
        ));
    }
    // The verification token is another workflow's and stays valid.
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 1);
    dir.verify_email(&v).unwrap();
    dir.authenticate("ann", "battery staple").unwrap();
}

#[test]
fn reset_revokes_the_other_reset_tokens_and_clears_flags() {
    let (dir, _) = dir();
    let u = dir
        .create(
            NewUser::with_username("bob")
                .password("initial secret")
                .password_change_required(true),
        )
        .unwrap();
    for _ in 0..5 {
        let _ = dir.authenticate("bob", "wrong");
    }
    assert!(matches!(
        dir.authenticate("bob", "initial secret"),
        Err(Error::AccountLocked { .. })
    ));
    let tokens: Vec<Token> = (0..3)
        .map(|_| dir.start_password_reset("bob").unwrap())
        .collect();
    let r = dir.reset_password(&tokens[1], "fresh secret").unwrap();
    assert!(!r.password_change_required);
    for t in &tokens {
        assert!(matches!(
            dir.reset_password(t, "again secret"),
            Err(Error::InvalidToken)
        ));
    }
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 0);
    // The reset lifted the lockout.
    let login = dir.authenticate("bob", "fresh secret").unwrap();
    assert!(!login.password_change_required);
}

#[test]
fn reset_applies_the_policy_and_keeps_the_token_usable() {
    let (dir, _) = dir();
    ann(&dir);
    let t = dir.start_password_reset("ann").unwrap();
    assert!(matches!(
        dir.reset_password(&t, "short"),
        Err(Error::PasswordPolicy(_))
    ));
    assert!(matches!(
        dir.reset_password(&t, "Ann@Example.com"),
        Err(Error::PasswordPolicy(_))
    ));
    dir.reset_password(&t, "long enough").unwrap();
}

#[test]
fn a_token_of_one_kind_is_refused_by_the_other_workflow() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let reset = dir.start_password_reset("ann").unwrap();
    let verify = dir.start_email_verification(u.id).unwrap();
    assert!(matches!(dir.verify_email(&reset), Err(Error::InvalidToken)));
    assert!(matches!(
        dir.reset_password(&verify, "brand new secret"),
        Err(Error::InvalidToken)
    ));
    assert!(!dir.get(u.id).unwrap().unwrap().verified);
    dir.authenticate("ann", "correct horse").unwrap();
    // Refused, not consumed: each still works in its own workflow.
    dir.verify_email(&verify).unwrap();
    dir.reset_password(&reset, "brand new secret").unwrap();
}

#[test]
fn changing_what_a_token_was_issued_for_voids_it() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let verify = dir.start_email_verification(u.id).unwrap();
    let reset = dir.start_password_reset("ann").unwrap();
    let mut up = UserUpdate::from(&u);
    up.profile.email = Some("other@example.com".into());
    up.password = Some("admin set secret".into());
    dir.update(u.id, up, None).unwrap();
    // The token verified the old address, and the reset was for the old password.
    assert!(matches!(
        dir.verify_email(&verify),
        Err(Error::InvalidToken)
    ));
    assert!(matches!(
        dir.reset_password(&reset, "attacker secret"),
        Err(Error::InvalidToken)
    ));
    assert!(!dir.get(u.id).unwrap().unwrap().verified);
    dir.authenticate("ann", "admin set secret").unwrap();
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 0);
}

#[test]
fn start_errors() {
    let (dir, _) = dir();
    let u = ann(&dir);
    assert!(matches!(
        dir.start_password_reset("nobody"),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        dir.start_email_verification(uuid::Uuid::new_v4()),
        Err(Error::NotFound(_))
    ));
    let no_email = dir.create(NewUser::with_username("carl")).unwrap();
    assert!(matches!(
        dir.start_email_verification(no_email.id),
        Err(Error::InvalidField { field: "email", .. })
    ));
    // A user without a password can get one through a reset.
    let t = dir.start_password_reset("carl").unwrap();
    dir.reset_password(&t, "first secret").unwrap();
    dir.authenticate("carl", "first secret").unwrap();

    dir.deactivate(u.id).unwrap();
    assert!(matches!(
        dir.start_password_reset("ann"),
        Err(Error::AccountInactive)
    ));
    assert!(matches!(
        dir.start_email_verification(u.id),
        Err(Error::AccountInactive)
    ));
}

#[test]
fn reset_tokens_per_user_are_bounded() {
    let (dir, clock) = dir();
    let u = ann(&dir);
    let first = dir.start_password_reset("ann").unwrap();
    for _ in 0..20 {
        // The tokens expiring first (issued first) make room for new ones.
        clock.advance(1);
        dir.start_password_reset("ann").unwrap();
    }
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 8);
    assert!(matches!(
        dir.reset_password(&first, "brand new secret"),
        Err(Error::InvalidToken)
    ));
    dir.check_integrity().unwrap();
}

#[test]
fn expired_tokens_are_purged_by_later_token_operations() {
    let (dir, clock) = dir();
    let a = ann(&dir);
    let b = dir
        .create(NewUser::with_email("bob@example.com").password("bob secret"))
        .unwrap();
    dir.start_password_reset("ann").unwrap();
    dir.start_email_verification(a.id).unwrap();
    assert_eq!(dir.outstanding_tokens(a.id).unwrap(), 2);
    clock.advance(24 * 60 * MIN);
    // Nobody presents Ann's tokens again; Bob's request cleans them up.
    dir.start_password_reset("bob@example.com").unwrap();
    assert_eq!(dir.outstanding_tokens(a.id).unwrap(), 0);
    assert_eq!(dir.outstanding_tokens(b.id).unwrap(), 1);
    dir.check_integrity().unwrap();
}

#[test]
fn delete_and_deactivate_remove_tokens() {
    let (dir, _) = dir();
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let u = dir
            .create(
                NewUser::with_username(format!("user{i}"))
                    .email(format!("user{i}@example.com"))
                    .password("correct horse"),
            )
            .unwrap();
        let r = dir.start_password_reset(&format!("user{i}")).unwrap();
        let v = dir.start_email_verification(u.id).unwrap();
        let _ = dir.authenticate(&format!("user{i}"), "wrong");
        tokens.push((r, v));
        users.push(u);
    }
    dir.delete(users[0].id).unwrap();
    dir.deactivate(users[1].id).unwrap();
    dir.delete_many(&[users[2].id, users[3].id]).unwrap();
    dir.deactivate_many(&[users[4].id]).unwrap();
    for (u, (r, v)) in users.iter().zip(&tokens).take(5) {
        assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 0);
        assert!(matches!(dir.verify_email(v), Err(Error::InvalidToken)));
        assert!(matches!(
            dir.reset_password(r, "brand new secret"),
            Err(Error::InvalidToken)
        ));
    }
    // A reactivated user does not get its old tokens back.
    dir.reactivate(users[1].id).unwrap();
    assert!(matches!(
        dir.verify_email(&tokens[1].1),
        Err(Error::InvalidToken)
    ));
    // The untouched user keeps its tokens.
    assert_eq!(dir.outstanding_tokens(users[5].id).unwrap(), 2);
    dir.verify_email(&tokens[5].1).unwrap();
    dir.check_integrity().unwrap();
    // A freed username can be taken again, with a clean failure count.
    let again = dir
        .create(NewUser::with_username("user0").password("correct horse"))
        .unwrap();
    assert_eq!(dir.login_failures(again.id).unwrap().count, 0);
    dir.check_integrity().unwrap();
}

#[test]
fn a_failed_transaction_keeps_the_tokens() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let v = dir.start_email_verification(u.id).unwrap();
    let r = dir.write(|tx| {
        tx.delete(u.id)?;
        tx.delete(uuid::Uuid::new_v4())?;
        Ok(())
    });
    assert!(matches!(r, Err(Error::NotFound(_))));
    assert_eq!(dir.outstanding_tokens(u.id).unwrap(), 1);
    dir.verify_email(&v).unwrap();
    dir.check_integrity().unwrap();
}

#[test]
fn refused_requests_change_nothing() {
    let (dir, _) = dir();
    let u = ann(&dir);
    let reset = dir.start_password_reset("ann").unwrap();
    let verify = dir.start_email_verification(u.id).unwrap();
    let before = dir.dump().unwrap();
    assert!(before.iter().any(|(t, _, _)| *t == "tokens"));
    assert!(before.iter().all(|(_, k, v)| {
        !k.contains(reset.as_str()) && !v.contains(reset.as_str()) && !k.contains(verify.as_str())
    }));
    let _ = dir.verify_email(&reset);
    let _ = dir.reset_password(&verify, "brand new secret");
    let _ = dir.reset_password(&reset, "short");
    let _ = dir.reset_password("unknown token", "brand new secret");
    let _ = dir.start_password_reset("nobody");
    let _ = dir.change_password("ann", "correct horse", "short");
    assert_eq!(dir.dump().unwrap(), before);
}
