//! SCIM PATCH: every operation kind, atomicity, uniqueness and version conflicts.

mod common;
use common::OpenEngine;

use std::collections::BTreeMap;

use userdir::{
    Argon2Params, AttrValue, Directory, Error, ManualClock, NewUser, PatchKind, PatchOp, User,
};

fn dir() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_000))
        .open_engine()
        .unwrap()
}

fn kenny(d: &Directory) -> User {
    d.create(
        NewUser::with_username("kenny")
            .email("kenny@example.com")
            .first_name("Kenny")
            .last_name("McGregor")
            .role("staff")
            .role("writer")
            .external_id("ext-1")
            .data("laptop", "X1")
            .verified(true),
    )
    .unwrap()
}

fn obj(pairs: &[(&str, AttrValue)]) -> AttrValue {
    AttrValue::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn arr(xs: Vec<AttrValue>) -> AttrValue {
    AttrValue::Array(xs)
}

#[test]
fn replace_single_attributes() {
    let d = dir();
    let u = kenny(&d);
    let u2 = d
        .patch(
            u.id,
            &[
                PatchOp::replace("nickName", "Kenneth"),
                PatchOp::replace("name.familyName", "Smith"),
                PatchOp::replace("name:givenName", "Ken"),
                PatchOp::replace("displayName", "Ken Smith"),
                PatchOp::replace("userName", "KenS"),
                PatchOp::replace("externalId", " ext-2 "),
                PatchOp::replace("active", false),
                PatchOp::replace("timezone", "Europe/Paris"),
                PatchOp::replace("preferredLanguage", "fr"),
                PatchOp::replace("birthDate", "1990-02-03"),
                PatchOp::replace("phoneNumbers[type eq \"mobile\"].value", "+33 1"),
            ],
            Some(u.version),
        )
        .unwrap();
    assert_eq!(u2.nick_name.as_deref(), Some("Kenneth"));
    assert_eq!(u2.last_name.as_deref(), Some("Smith"));
    assert_eq!(u2.first_name.as_deref(), Some("Ken"));
    // RFC 7643: displayName is its own attribute (not name.formatted).
    assert_eq!(u2.display_name.as_deref(), Some("Ken Smith"));
    assert_eq!(u2.username.as_deref(), Some("KenS"));
    assert_eq!(u2.external_id.as_deref(), Some("ext-2"));
    assert!(!u2.active);
    assert_eq!(u2.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(u2.preferred_languages, ["fr"]);
    assert_eq!(u2.birth_date.as_deref(), Some("1990-02-03"));
    assert_eq!(u2.mobile_phone(), Some("+33 1"));
    assert_eq!(u2.version, u.version + 1);
    // Indexes follow.
    assert_eq!(d.find_by_username("kens").unwrap().unwrap().id, u.id);
    assert!(d.find_by_username("kenny").unwrap().is_none());
    assert_eq!(d.find_by_external_id("ext-2").unwrap().unwrap().id, u.id);
    d.check_integrity().unwrap();
}

#[test]
fn work_email_value_path() {
    let d = dir();
    let u = kenny(&d);
    let u2 = d
        .patch(
            u.id,
            &[PatchOp::replace(
                r#"emails[type eq "work"].value"#,
                "JaneDoe@Email.com",
            )],
            None,
        )
        .unwrap();
    assert_eq!(u2.email.as_deref(), Some("janedoe@email.com"));
    assert!(!u2.verified, "a new email is not verified");
    assert_eq!(
        d.find_by_email("janedoe@email.com").unwrap().unwrap().id,
        u.id
    );
    assert!(d.find_by_email("kenny@example.com").unwrap().is_none());
    // Another type: a filtered replace that matches nothing adds that element (Entra ID's
    // rule, RFC 7644 §3.5.2.3); it is a secondary email, the login email stays.
    let u2 = d
        .patch(
            u.id,
            &[PatchOp::replace(
                r#"emails[type eq "home"].value"#,
                "h@x.io",
            )],
            None,
        )
        .unwrap();
    assert_eq!(u2.email.as_deref(), Some("janedoe@email.com"));
    assert_eq!(u2.emails.len(), 2);
    assert_eq!(u2.emails[1].value, "h@x.io");
    assert_eq!(u2.emails[1].kind.as_deref(), Some("home"));
    assert!(!u2.emails[1].primary);
    assert!(
        d.find_by_email("h@x.io").unwrap().is_none(),
        "not a login id"
    );
    // `emails` with a SCIM array: the primary wins.
    let u3 = d
        .patch(
            u.id,
            &[PatchOp::replace(
                "emails",
                arr(vec![
                    obj(&[("value", "other@x.io".into()), ("type", "home".into())]),
                    obj(&[("value", "p@x.io".into()), ("primary", true.into())]),
                ]),
            )],
            None,
        )
        .unwrap();
    assert_eq!(u3.email.as_deref(), Some("p@x.io"));
    // A user without an email gets one through the work value path.
    let v = d.create(NewUser::with_username("noemail")).unwrap();
    let v = d
        .patch(
            v.id,
            &[PatchOp::add(r#"emails[type eq "work"].value"#, "n@x.io")],
            None,
        )
        .unwrap();
    assert_eq!(v.email.as_deref(), Some("n@x.io"));
    d.check_integrity().unwrap();
}

#[test]
fn roles_add_replace_remove() {
    let d = dir();
    let u = kenny(&d);
    let roles = |u: &User| u.roles.iter().cloned().collect::<Vec<_>>();
    let u = d
        .patch(
            u.id,
            &[PatchOp::add(
                "roles",
                arr(vec!["admin".into(), obj(&[("value", "ops".into())])]),
            )],
            None,
        )
        .unwrap();
    assert_eq!(roles(&u), ["admin", "ops", "staff", "writer"]);
    let u = d
        .patch(u.id, &[PatchOp::remove(r#"roles[value eq "ops"]"#)], None)
        .unwrap();
    assert_eq!(roles(&u), ["admin", "staff", "writer"]);
    let u = d
        .patch(
            u.id,
            &[PatchOp::remove(
                r#"roles[value sw "s" or value eq "writer"]"#,
            )],
            None,
        )
        .unwrap();
    assert_eq!(roles(&u), ["admin"]);
    let u = d.patch(u.id, &[PatchOp::add("role", "b")], None).unwrap();
    let u = d
        .patch(
            u.id,
            &[PatchOp::replace("roles", arr(vec!["x".into()]))],
            None,
        )
        .unwrap();
    assert_eq!(roles(&u), ["x"]);
    let u = d
        .patch(
            u.id,
            &[PatchOp {
                op: PatchKind::Remove,
                path: Some("roles".into()),
                value: Some("x".into()),
            }],
            None,
        )
        .unwrap();
    assert!(u.roles.is_empty());
    let u = d.patch(u.id, &[PatchOp::add("roles", "a")], None).unwrap();
    let u = d.patch(u.id, &[PatchOp::remove("roles")], None).unwrap();
    assert!(u.roles.is_empty());
    // The role index follows.
    let page = d
        .search(&userdir::Search::filter(r#"role eq "admin""#).unwrap())
        .unwrap();
    assert_eq!(page.total, 0);
    d.check_integrity().unwrap();
}

#[test]
fn remove_and_data_and_pathless() {
    let d = dir();
    let u = kenny(&d);
    let u = d
        .patch(
            u.id,
            &[
                PatchOp::remove("name.familyName"),
                PatchOp::add("data.device.os", "linux"),
                PatchOp::add("data.device.year", 2024i64),
                PatchOp::remove("data.laptop"),
                PatchOp::remove("externalId"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(u.last_name, None);
    assert_eq!(u.external_id, None);
    assert!(!u.data.contains_key("laptop"));
    assert_eq!(
        u.data.get("device"),
        Some(&obj(&[("os", "linux".into()), ("year", 2024i64.into())]))
    );
    let u = d
        .patch(
            u.id,
            &[PatchOp::replace(
                "",
                obj(&[
                    ("active", false.into()),
                    (
                        "name",
                        obj(&[("familyName", "Doe".into()), ("givenName", "Jane".into())]),
                    ),
                    ("nickName", "JD".into()),
                    ("data", obj(&[("team", "blue".into())])),
                ]),
            )],
            None,
        )
        .unwrap();
    assert!(!u.active);
    assert_eq!(u.last_name.as_deref(), Some("Doe"));
    assert_eq!(u.first_name.as_deref(), Some("Jane"));
    assert_eq!(u.nick_name.as_deref(), Some("JD"));
    assert_eq!(u.data.get("team"), Some(&AttrValue::from("blue")));
    assert!(u.data.contains_key("device"), "data keys not given stay");
    let u = d.patch(u.id, &[PatchOp::remove("name")], None).unwrap();
    assert_eq!((u.profile.first_name, u.profile.last_name), (None, None));
    let u = d.patch(u.id, &[PatchOp::remove("data")], None).unwrap();
    assert!(u.data.is_empty());
}

#[test]
fn no_change_keeps_the_version() {
    let d = dir();
    let u = kenny(&d);
    let same = d
        .patch(
            u.id,
            &[PatchOp::replace("name.familyName", "McGregor")],
            None,
        )
        .unwrap();
    assert_eq!(same, u);
}

#[test]
fn invalid_paths_and_values_change_nothing() {
    let d = dir();
    let u = kenny(&d);
    let before = d.dump().unwrap();
    let bad: Vec<Vec<PatchOp>> = vec![
        vec![PatchOp::replace("fooBar", "x")],
        vec![PatchOp::replace("meta.version", 9i64)],
        vec![PatchOp::replace("id", "x")],
        vec![PatchOp::replace("password", "secret")],
        vec![PatchOp::replace("active", "yes")],
        vec![PatchOp::remove("active")],
        vec![PatchOp::replace("name.familyName", 3i64)],
        vec![PatchOp::replace("name", "x")],
        vec![PatchOp::replace("name", obj(&[("nickname", "x".into())]))],
        vec![PatchOp::replace(r#"emails[type eq "work""#, "x@y.z")],
        vec![PatchOp::replace(r#"userName[value eq "x"]"#, "x")],
        vec![PatchOp::remove(r#"roles[value eq "nobody"]"#)],
        vec![PatchOp::remove("")],
        vec![PatchOp::replace("", "not an object")],
        vec![PatchOp::replace("data.laptop.model", "X")],
        // Valid first op, invalid second: the first must not apply either.
        vec![
            PatchOp::replace("nickName", "Kenneth"),
            PatchOp::replace("birthDate", "yesterday"),
        ],
        vec![
            PatchOp::replace("name.familyName", "Z"),
            PatchOp::replace("emails.value", "not-an-email"),
        ],
        vec![PatchOp::remove("userName"), PatchOp::remove("emails")],
        vec![PatchOp::replace("userName", "bad\u{7}name")],
    ];
    for ops in &bad {
        let r = d.patch(u.id, ops, None);
        assert!(r.is_err(), "{ops:?} should fail");
        assert_eq!(before, d.dump().unwrap(), "{ops:?} changed something");
    }
    // Same inside a larger transaction: the failed patch leaves the transaction as it was.
    let r = d.write(|tx| {
        tx.patch(u.id, &[PatchOp::replace("nickName", "A")], None)?;
        tx.patch(u.id, &[PatchOp::replace("fooBar", "x")], None)
    });
    assert!(r.is_err());
    assert_eq!(before, d.dump().unwrap());
}

#[test]
fn uniqueness_conflicts_change_nothing() {
    let d = dir();
    let u = kenny(&d);
    let other = d
        .create(
            NewUser::with_username("bob")
                .email("bob@example.com")
                .external_id("ext-bob"),
        )
        .unwrap();
    let before = d.dump().unwrap();
    type Case = (Vec<PatchOp>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (vec![PatchOp::replace("userName", "BOB")], |e| {
            matches!(e, Error::DuplicateUsername { .. })
        }),
        (
            vec![
                PatchOp::replace("nickName", "x"),
                PatchOp::replace("emails.value", "Bob@Example.com"),
            ],
            |e| matches!(e, Error::DuplicateEmail { .. }),
        ),
        (vec![PatchOp::replace("externalId", "ext-bob")], |e| {
            matches!(e, Error::DuplicateExternalId { .. })
        }),
        (vec![PatchOp::replace("userName", "bob@example.com")], |e| {
            matches!(e, Error::LoginIdConflict { .. })
        }),
    ];
    for (ops, is) in cases {
        let e = d.patch(u.id, &ops, None).unwrap_err();
        assert!(is(&e), "{ops:?}: {e:?}");
        assert_eq!(before, d.dump().unwrap(), "{ops:?} changed something");
    }
    assert_eq!(d.find_by_username("bob").unwrap().unwrap().id, other.id);
    d.check_integrity().unwrap();
}

#[test]
fn version_conflict() {
    let d = dir();
    let u = kenny(&d);
    let u2 = d
        .patch(u.id, &[PatchOp::replace("nickName", "a")], Some(u.version))
        .unwrap();
    let before = d.dump().unwrap();
    let e = d
        .patch(u.id, &[PatchOp::replace("nickName", "b")], Some(u.version))
        .unwrap_err();
    assert!(
        matches!(e, Error::VersionConflict { expected, actual } if expected == u.version && actual == u2.version),
        "{e:?}"
    );
    assert_eq!(before, d.dump().unwrap());
    assert!(matches!(
        d.patch(
            uuid::Uuid::nil(),
            &[PatchOp::replace("nickName", "b")],
            None
        ),
        Err(Error::NotFound(_))
    ));
}

/// RFC 7643 §2.4: at most one email is primary, and a list may have none. The login email is
/// the primary email, or the only one; `primary` is stored and returned as given.
#[test]
fn the_login_email_is_the_primary_or_the_only_email() {
    let d = dir();
    // One email, not marked primary: it is the login email and stays unmarked.
    let u = d
        .create(
            NewUser::with_username("one")
                .add_email(userdir::MultiValue::new("One@X.io").kind("home")),
        )
        .unwrap();
    assert_eq!(u.email.as_deref(), Some("one@x.io"));
    assert!(!u.emails[0].primary);
    assert_eq!(d.find_by_email("ONE@x.io").unwrap().unwrap().id, u.id);
    assert_eq!(d.get(u.id).unwrap().unwrap(), u);

    // Several, none primary: no login email, every email kept unmarked.
    let two = d
        .create(
            NewUser::with_username("two")
                .add_email(userdir::MultiValue::new("a@two.io"))
                .add_email(userdir::MultiValue::new("b@two.io")),
        )
        .unwrap();
    assert_eq!(two.email, None);
    assert_eq!(two.emails.len(), 2);
    assert!(two.emails.iter().all(|e| !e.primary));
    assert!(d.find_by_email("a@two.io").unwrap().is_none());
    // ... which is no login id at all without a username.
    let err = d
        .create(NewUser {
            active: true,
            ..NewUser::default()
                .add_email(userdir::MultiValue::new("c@two.io"))
                .add_email(userdir::MultiValue::new("d@two.io"))
        })
        .unwrap_err();
    assert!(matches!(err, Error::MissingLoginId), "{err:?}");

    // PATCH add of one email with `primary: false` to a user without emails (what
    // scim2-tester sends): stored and returned as sent, and it is the login email.
    let v = d.create(NewUser::with_username("noemail")).unwrap();
    let v = d
        .patch(
            v.id,
            &[PatchOp::add(
                "emails",
                arr(vec![obj(&[
                    ("value", "v@x.io".into()),
                    ("type", "work".into()),
                    ("primary", false.into()),
                ])]),
            )],
            None,
        )
        .unwrap();
    assert_eq!(v.email.as_deref(), Some("v@x.io"));
    assert!(!v.emails[0].primary);
    // Marking it primary changes nothing but the flag.
    let v = d
        .patch(
            v.id,
            &[PatchOp::replace(
                r#"emails[value eq "v@x.io"].primary"#,
                true,
            )],
            None,
        )
        .unwrap();
    assert_eq!(v.email.as_deref(), Some("v@x.io"));
    assert!(v.emails[0].primary);
    // A second email, primary: it becomes the login email, the first loses the mark.
    let v = d
        .patch(
            v.id,
            &[PatchOp::add(
                "emails",
                obj(&[("value", "w@x.io".into()), ("primary", true.into())]),
            )],
            None,
        )
        .unwrap();
    assert_eq!(v.email.as_deref(), Some("w@x.io"));
    assert_eq!(
        v.emails.iter().map(|e| e.primary).collect::<Vec<_>>(),
        [false, true]
    );
    // Removing the primary one leaves the only other one as the login email, unmarked.
    let v = d
        .patch(v.id, &[PatchOp::remove(r#"emails[primary eq true]"#)], None)
        .unwrap();
    assert_eq!(v.email.as_deref(), Some("v@x.io"));
    assert!(!v.emails[0].primary);
    // Two unmarked emails: no login email; the old one is free for another user.
    let v = d
        .patch(v.id, &[PatchOp::add("emails", "z@x.io")], None)
        .unwrap();
    assert_eq!(v.email, None);
    assert!(v.emails.iter().all(|e| !e.primary));
    d.create(NewUser::with_email("v@x.io")).unwrap();
    d.check_integrity().unwrap();
}
