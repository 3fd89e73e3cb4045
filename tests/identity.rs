//! The identity rules of DESIGN.md, one test per rule, with the error variant asserted.

mod common;
use common::OpenEngine;

use common::{dir, fails_without_change};
use userdir::identity::{caseless_key, normalize_email, normalize_username};
use userdir::{Argon2Params, Directory, Error, NewUser};

fn dup_username(dir: &Directory, first: &str, second: &str) {
    let a = dir.create(NewUser::with_username(first)).expect("first");
    let err = fails_without_change(dir, || dir.create(NewUser::with_username(second)));
    assert!(
        matches!(err, Error::DuplicateUsername { existing } if existing == a.id),
        "{first:?} vs {second:?}: {err:?}"
    );
    assert_eq!(dir.find_by_username(second).unwrap().unwrap().id, a.id);
}

#[test]
fn ascii_case_is_one_username() {
    let (d, _) = dir();
    dup_username(&d, "bob", "BoB");
}

#[test]
fn sharp_s_equals_double_s() {
    let (d, _) = dir();
    dup_username(&d, "straße", "STRASSE");
}

#[test]
fn kelvin_sign_equals_k() {
    let (d, _) = dir();
    dup_username(&d, "\u{212A}elvin", "kelvin");
}

#[test]
fn composed_and_decomposed_e_acute() {
    let (d, _) = dir();
    dup_username(&d, "caf\u{e9}", "cafe\u{301}");
    assert_eq!(caseless_key("CAFE\u{301}"), caseless_key("caf\u{e9}"));
}

#[test]
fn fullwidth_equals_ascii() {
    let (d, _) = dir();
    dup_username(&d, "ａｄｍｉｎ", "admin");
}

#[test]
fn stored_form_is_as_given_after_trim_and_nfc() {
    let (d, _) = dir();
    let u = d.create(NewUser::with_username("  Cafe\u{301}  ")).unwrap();
    assert_eq!(u.username.as_deref(), Some("Caf\u{e9}"));
}

#[test]
fn lookalikes_allowed_by_default_refused_when_enabled() {
    let (d, _) = dir();
    d.create(NewUser::with_username("admin")).unwrap();
    // Cyrillic а (U+0430) in front: a different username by default.
    d.create(NewUser::with_username("\u{430}dmin")).unwrap();

    let strict = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .refuse_lookalikes(true)
        .open_engine()
        .unwrap();
    let a = strict.create(NewUser::with_username("admin")).unwrap();
    let err = fails_without_change(&strict, || {
        strict.create(NewUser::with_username("\u{430}dmin"))
    });
    assert!(matches!(err, Error::LookalikeUsername { existing } if existing == a.id));
    // Renaming to a look-alike of one's own name is fine.
    let mut up = userdir::UserUpdate::from(&a);
    up.profile.username = Some("ADMIN".into());
    strict.update(a.id, up, None).unwrap();
}

/// Documented result: the Turkish capital dotted İ (U+0130) full-case-folds to `i` + U+0307, so
/// it is not the same as dotless-capital `I` or plain `i`; it equals `i` + combining dot above.
#[test]
fn turkish_dotted_capital_i() {
    assert_ne!(caseless_key("\u{130}stanbul"), caseless_key("istanbul"));
    assert_ne!(caseless_key("\u{130}STANBUL"), caseless_key("ISTANBUL"));
    assert_eq!(
        caseless_key("\u{130}stanbul"),
        caseless_key("i\u{307}stanbul")
    );
    let (d, _) = dir();
    d.create(NewUser::with_username("\u{130}stanbul")).unwrap();
    d.create(NewUser::with_username("istanbul")).unwrap();
    // Dotless ı (U+0131) does not fold to i; plain ASCII I/i stay one letter.
    assert_ne!(caseless_key("\u{131}stanbul"), caseless_key("istanbul"));
    let (d2, _) = dir();
    dup_username(&d2, "ISTANBUL", "Istanbul");
}

#[test]
fn surrounding_spaces_are_trimmed() {
    let (d, _) = dir();
    dup_username(&d, "  carol ", "carol");
    let u = d
        .create(NewUser::with_email("  Dave@Example.COM "))
        .unwrap();
    assert_eq!(u.email.as_deref(), Some("dave@example.com"));
}

fn invalid(field: &'static str, new: NewUser) {
    let (d, _) = dir();
    let err = fails_without_change(&d, || d.create(new));
    assert!(
        matches!(err, Error::InvalidField { field: f, .. } if f == field),
        "{err:?}"
    );
}

#[test]
fn control_characters_refused() {
    invalid("username", NewUser::with_username("bob\u{0}"));
    invalid("username", NewUser::with_username("bo\nb"));
    invalid("email", NewUser::with_email("bob\u{7}@example.com"));
    invalid(
        "external_id",
        NewUser::with_username("x").external_id("a\u{1b}b"),
    );
}

#[test]
fn empty_and_overlong_refused() {
    invalid("username", NewUser::with_username(""));
    invalid("username", NewUser::with_username("   "));
    invalid("username", NewUser::with_username("a".repeat(257)));
    normalize_username(&"a".repeat(256)).unwrap();
    invalid("email", NewUser::with_email(""));
    invalid(
        "email",
        NewUser::with_email(format!("{}@example.com", "a".repeat(65))),
    );
    invalid(
        "email",
        NewUser::with_email(format!("a@{}.com", "b".repeat(250))),
    );
}

#[test]
fn email_syntax() {
    assert_eq!(
        normalize_email(" Bob@Example.COM ").unwrap(),
        "bob@example.com"
    );
    invalid("email", NewUser::with_email("bob.example.com"));
    invalid("email", NewUser::with_email("bob@@example.com"));
    invalid("email", NewUser::with_email("bob@x@example.com"));
    invalid("email", NewUser::with_email("@example.com"));
    invalid("email", NewUser::with_email("bob@"));
    invalid("email", NewUser::with_email("bo b@example.com"));
}

#[test]
fn email_duplicates_are_case_insensitive() {
    let (d, _) = dir();
    let a = d.create(NewUser::with_email("ann@example.com")).unwrap();
    let err = fails_without_change(&d, || d.create(NewUser::with_email("ANN@Example.com")));
    assert!(matches!(err, Error::DuplicateEmail { existing } if existing == a.id));
}

#[test]
fn missing_login_id_refused() {
    let (d, _) = dir();
    let err = fails_without_change(&d, || d.create(NewUser::default()));
    assert!(matches!(err, Error::MissingLoginId));
}

#[test]
fn deactivated_users_keep_their_names() {
    let (d, _) = dir();
    let a = d
        .create(NewUser::with_username("erin").email("erin@example.com"))
        .unwrap();
    d.deactivate(a.id).unwrap();
    let err = fails_without_change(&d, || d.create(NewUser::with_username("ERIN")));
    assert!(matches!(err, Error::DuplicateUsername { .. }));
    let err = fails_without_change(&d, || d.create(NewUser::with_email("Erin@example.com")));
    assert!(matches!(err, Error::DuplicateEmail { .. }));
    d.delete(a.id).unwrap();
    d.create(NewUser::with_username("ERIN").email("erin@example.com"))
        .unwrap();
    d.check_integrity().unwrap();
}

#[test]
fn username_may_not_equal_another_users_email() {
    let (d, _) = dir();
    let a = d.create(NewUser::with_email("frank@example.com")).unwrap();
    let err = fails_without_change(&d, || d.create(NewUser::with_username("FRANK@example.com")));
    assert!(
        matches!(err, Error::LoginIdConflict { field: "username", existing } if existing == a.id)
    );
    let b = d
        .create(NewUser::with_username("gina@example.com"))
        .unwrap();
    let err = fails_without_change(&d, || d.create(NewUser::with_email("Gina@Example.com")));
    assert!(matches!(err, Error::LoginIdConflict { field: "email", existing } if existing == b.id));
    // One user may use the same string as both username and email.
    let c = d
        .create(NewUser::with_username("hal@example.com").email("HAL@example.com"))
        .unwrap();
    assert_eq!(
        d.find_by_username("hal@example.com").unwrap().unwrap().id,
        c.id
    );
    assert_eq!(
        d.find_by_email("hal@example.com").unwrap().unwrap().id,
        c.id
    );
    d.check_integrity().unwrap();
}

#[test]
fn external_id_unique_and_exact() {
    let (d, _) = dir();
    let a = d
        .create(NewUser::with_username("a").external_id("EXT-1"))
        .unwrap();
    let err = fails_without_change(&d, || {
        d.create(NewUser::with_username("b").external_id(" EXT-1 "))
    });
    assert!(matches!(err, Error::DuplicateExternalId { existing } if existing == a.id));
    d.create(NewUser::with_username("c").external_id("ext-1"))
        .unwrap();
    assert_eq!(d.find_by_external_id("EXT-1").unwrap().unwrap().id, a.id);
}

#[test]
fn lookalike_index_follows_the_setting_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("u.redb");
    let open = |refuse: bool| {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .refuse_lookalikes(refuse)
            .open(&path)
            .unwrap()
    };
    let d = open(false);
    let a = d.create(NewUser::with_username("paypal")).unwrap();
    drop(d);
    let d = open(true);
    d.check_integrity().unwrap();
    let err = fails_without_change(&d, || {
        d.create(NewUser::with_username("p\u{430}yp\u{430}l"))
    });
    assert!(matches!(err, Error::LookalikeUsername { existing } if existing == a.id));
    drop(d);
    let d = open(false);
    d.check_integrity().unwrap();
    d.create(NewUser::with_username("p\u{430}yp\u{430}l"))
        .unwrap();
    drop(d);
    // Turning it on with look-alikes already present still opens; new look-alikes are refused.
    let d = open(true);
    d.check_integrity().unwrap();
    let err = fails_without_change(&d, || d.create(NewUser::with_username("p\u{430}ypal")));
    assert!(matches!(err, Error::LookalikeUsername { .. }));
    d.create(NewUser::with_username("paypa1-support")).unwrap();
}
