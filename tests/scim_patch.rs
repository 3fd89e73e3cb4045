//! SCIM PATCH as identity providers send it: the RFC 7644 §3.5.2 examples (those on Users)
//! and Microsoft Entra ID's request shapes (../shared/scim-entra.md), each parsed from its
//! JSON body with `PatchRequest` and applied, checking what is stored afterwards.
#![cfg(feature = "json")]

mod common;

use userdir::query::Search;
use userdir::{Directory, Error, NewUser, PatchRequest, User};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Babs Jensen as RFC 7643 §8.3 has her (the fixture), created through the SCIM reader.
fn babs(d: &Directory) -> User {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scim_user_rfc7643_enterprise.json"
    ))
    .unwrap();
    let rows = userdir::json::read(userdir::json::Format::Scim, &text).unwrap();
    d.create(rows.into_iter().next().unwrap()).unwrap()
}

/// Applies a PatchOp body; the stored user afterwards (read back, not the returned value).
fn patch(d: &Directory, u: &User, body: &str) -> User {
    let req = PatchRequest::from_json(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    let returned = d
        .patch(u.id, &req.operations, None)
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    let stored = d.get(u.id).unwrap().unwrap();
    assert_eq!(returned, stored);
    d.check_integrity().unwrap();
    stored
}

fn body(ops: &str) -> String {
    format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{ops}]}}"#
    )
}

fn emails(u: &User) -> Vec<(String, Option<String>, bool)> {
    u.emails
        .iter()
        .map(|e| (e.value.clone(), e.kind.clone(), e.primary))
        .collect()
}

fn e(v: &str, t: &str, p: bool) -> (String, Option<String>, bool) {
    (v.to_owned(), Some(t.to_owned()), p)
}

fn ids(d: &Directory, filter: &str) -> usize {
    d.search(&Search::filter(filter).unwrap()).unwrap().total as usize
}

// ---- RFC 7644 §3.5.2.1 (add) ----

#[test]
fn rfc_add_without_path_adds_a_secondary_email_and_a_nickname() {
    let (d, _) = common::dir();
    let u = d
        .create(NewUser::with_username("bjensen").email("bjensen@example.com"))
        .unwrap();
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"}],"nickname":"Babs"}}"#,
        ),
    );
    assert_eq!(
        emails(&u),
        [
            e("bjensen@example.com", "work", true),
            e("babs@jensen.org", "home", false)
        ]
    );
    assert_eq!(
        u.email.as_deref(),
        Some("bjensen@example.com"),
        "login email kept"
    );
    assert_eq!(u.nick_name.as_deref(), Some("Babs"));
    // Secondary emails are searchable, not login ids.
    assert_eq!(ids(&d, r#"emails co "jensen.org""#), 1);
    assert_eq!(ids(&d, r#"emails[type eq "home"]"#), 1);
    assert_eq!(
        ids(
            &d,
            r#"emails[type eq "home" and value eq "BABS@jensen.org"]"#
        ),
        1
    );
    assert!(d.find_by_email("babs@jensen.org").unwrap().is_none());
    // Adding the same email again changes nothing (values are not duplicated).
    let again = patch(
        &d,
        &u,
        &body(
            r#"{"op":"add","path":"emails","value":[{"value":"babs@jensen.org","type":"home"}]}"#,
        ),
    );
    assert_eq!(again.emails.len(), 2);
    // A secondary email is not unique: another user may hold it.
    let other = d
        .create(
            NewUser::with_username("other")
                .add_email(userdir::MultiValue::new("babs@jensen.org").kind("home")),
        )
        .unwrap();
    assert_eq!(other.email.as_deref(), Some("babs@jensen.org"));
}

// ---- RFC 7644 §3.5.2.2 (remove) ----

#[test]
fn rfc_remove_with_a_filter_removes_the_matching_emails() {
    let (d, _) = common::dir();
    let u = babs(&d);
    assert_eq!(u.emails.len(), 2);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"remove","path":"emails[type eq \"work\" and value ew \"example.com\"]"}"#),
    );
    // The login email went with its element; the one left is the login email now.
    assert_eq!(emails(&u), [e("babs@jensen.org", "home", true)]);
    assert_eq!(u.email.as_deref(), Some("babs@jensen.org"));
    assert!(d.find_by_email("bjensen@example.com").unwrap().is_none());
    assert_eq!(
        d.find_by_email("babs@jensen.org").unwrap().unwrap().id,
        u.id
    );
    // A filter that matches nothing: noTarget, nothing changed.
    let before = d.dump().unwrap();
    let req = PatchRequest::from_json(&body(
        r#"{"op":"remove","path":"emails[type eq \"work\"]"}"#,
    ))
    .unwrap();
    let err = d.patch(u.id, &req.operations, None).unwrap_err();
    assert!(matches!(err, Error::InvalidPatch { ref reason, .. } if reason.contains("noTarget")));
    assert_eq!(before, d.dump().unwrap());
}

#[test]
fn remove_emails_of_a_type_and_remove_all_emails() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"remove","path":"emails[type eq \"home\"]"}"#),
    );
    assert_eq!(emails(&u), [e("bjensen@example.com", "work", true)]);
    // `remove emails` removes every email, the login email too (userName stays the login id).
    let u = patch(&d, &u, &body(r#"{"op":"remove","path":"emails"}"#));
    assert!(u.emails.is_empty());
    assert_eq!(u.email, None);
    assert!(d.find_by_email("bjensen@example.com").unwrap().is_none());
    assert_eq!(
        d.find_by_login_id("BJensen@example.com")
            .unwrap()
            .unwrap()
            .id,
        u.id,
        "the userName"
    );
}

#[test]
fn replace_emails_replaces_all_of_them() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"replace","path":"emails","value":[{"value":"new@x.io","type":"other"}]}"#),
    );
    assert_eq!(emails(&u), [e("new@x.io", "other", true)]);
    assert_eq!(u.email.as_deref(), Some("new@x.io"));
    assert!(!u.verified, "a new login email is not verified");
    assert!(d.find_by_email("bjensen@example.com").unwrap().is_none());
}

// ---- RFC 7644 §3.5.2.3 (replace) ----

#[test]
fn rfc_replace_an_address_by_filter_and_one_sub_attribute() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"replace","path":"addresses[type eq \"work\"]","value":{"type":"work","streetAddress":"911 Universal City Plaza","locality":"Hollywood","region":"CA","postalCode":"91608","country":"US","formatted":"911 Universal City Plaza\nHollywood, CA 91608 US","primary":true}}"#,
        ),
    );
    assert_eq!(u.addresses.len(), 1);
    let a = &u.addresses[0];
    assert_eq!(
        a.street_address.as_deref(),
        Some("911 Universal City Plaza")
    );
    assert_eq!(a.country.as_deref(), Some("US"));
    assert!(a.primary);
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"1010 Broadway Ave"}"#,
        ),
    );
    assert_eq!(
        u.addresses[0].street_address.as_deref(),
        Some("1010 Broadway Ave")
    );
    assert_eq!(u.addresses[0].locality.as_deref(), Some("Hollywood"));
    assert_eq!(
        ids(
            &d,
            r#"addresses[type eq "work" and streetAddress sw "1010"]"#
        ),
        1
    );
    assert_eq!(ids(&d, r#"addresses.locality eq "hollywood""#), 1);
}

#[test]
fn rfc_replace_without_path() {
    let (d, _) = common::dir();
    let u = d
        .create(NewUser::with_username("bjensen").email("old@example.com"))
        .unwrap();
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"replace","value":{"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],"nickname":"Babs"}}"#,
        ),
    );
    assert_eq!(
        emails(&u),
        [
            e("bjensen@example.com", "work", true),
            e("babs@jensen.org", "home", false)
        ]
    );
    assert_eq!(u.email.as_deref(), Some("bjensen@example.com"));
    assert_eq!(u.nick_name.as_deref(), Some("Babs"));
}

#[test]
fn replace_of_a_complex_attribute_keeps_sub_attributes_not_given() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"replace","path":"name","value":{"givenName":"Babs"}}"#),
    );
    assert_eq!(u.first_name.as_deref(), Some("Babs"));
    assert_eq!(u.last_name.as_deref(), Some("Jensen"));
    assert_eq!(u.honorific_prefix.as_deref(), Some("Ms."));
}

// ---- Microsoft Entra ID ----

#[test]
fn entra_op_in_any_case_and_string_booleans() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"Replace","path":"active","value":"False"}"#),
    );
    assert!(!u.active);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"replace","path":"active","value":"TRUE"}"#),
    );
    assert!(u.active);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"Add","path":"title","value":"Boss"},{"op":"Remove","path":"nickName"}"#),
    );
    assert_eq!(u.title.as_deref(), Some("Boss"));
    assert_eq!(u.nick_name, None);
    // Not a boolean at all: refused, nothing changed.
    let req = PatchRequest::from_json(&body(r#"{"op":"replace","path":"active","value":"nope"}"#))
        .unwrap();
    assert!(d.patch(u.id, &req.operations, None).is_err());
    // An unknown op is refused by the parser.
    assert!(
        PatchRequest::from_json(&body(r#"{"op":"merge","path":"title","value":"x"}"#)).is_err()
    );
}

#[test]
fn entra_pathless_values_keyed_by_paths_and_urns() {
    let (d, _) = common::dir();
    let u = d.create(NewUser::with_username("ann@contoso.com")).unwrap();
    let u = patch(
        &d,
        &u,
        &body(&format!(
            r#"{{"op":"Add","value":{{"name.givenName":"Ann","emails[type eq \"work\"].value":"a@x.com","{ENTERPRISE}:employeeNumber":"42"}}}}"#
        )),
    );
    assert_eq!(u.first_name.as_deref(), Some("Ann"));
    assert_eq!(emails(&u), [e("a@x.com", "work", true)]);
    assert_eq!(
        u.email.as_deref(),
        Some("a@x.com"),
        "the only email is the login email"
    );
    assert_eq!(u.employee_number.as_deref(), Some("42"));
    // The whole extension as one key.
    let u = patch(
        &d,
        &u,
        &body(&format!(
            r#"{{"op":"replace","value":{{"{ENTERPRISE}":{{"department":"Sales","costCenter":"CC-1"}}}}}}"#
        )),
    );
    assert_eq!(u.department.as_deref(), Some("Sales"));
    assert_eq!(u.cost_center.as_deref(), Some("CC-1"));
    assert_eq!(u.employee_number.as_deref(), Some("42"));
    // The core schema's URN as a key, and an attribute name in another case.
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"replace","value":{"urn:ietf:params:scim:schemas:core:2.0:User":{"DISPLAYNAME":"Ann A"}}}"#,
        ),
    );
    assert_eq!(u.display_name.as_deref(), Some("Ann A"));
}

#[test]
fn entra_filtered_paths_create_missing_elements() {
    let (d, _) = common::dir();
    let u = d.create(NewUser::with_username("ann@contoso.com")).unwrap();
    let ops = [
        r#"{"op":"Add","path":"emails[type eq \"work\"].value","value":"ann@contoso.com"}"#,
        r#"{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0100"}"#,
        r#"{"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"+1 555 0199"}"#,
        r#"{"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Main St"}"#,
        r#"{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"}"#,
        r#"{"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"}"#,
        r#"{"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"98052"}"#,
        r#"{"op":"Add","path":"addresses[type eq \"work\"].country","value":"US"}"#,
        r#"{"op":"Add","path":"addresses[type eq \"work\"].formatted","value":"1 Main St, Redmond"}"#,
    ];
    let u = patch(&d, &u, &body(&ops.join(",")));
    assert_eq!(emails(&u), [e("ann@contoso.com", "work", true)]);
    assert_eq!(u.email.as_deref(), Some("ann@contoso.com"));
    assert_eq!(u.mobile_phone(), Some("+1 555 0100"));
    assert_eq!(u.phone_numbers.len(), 2);
    assert_eq!(
        u.addresses.len(),
        1,
        "one work address, filled in five steps"
    );
    let a = &u.addresses[0];
    assert_eq!(a.kind.as_deref(), Some("work"));
    assert_eq!(a.street_address.as_deref(), Some("1 Main St"));
    assert_eq!(a.locality.as_deref(), Some("Redmond"));
    assert_eq!(a.region.as_deref(), Some("WA"));
    assert_eq!(a.postal_code.as_deref(), Some("98052"));
    assert_eq!(a.country.as_deref(), Some("US"));
    assert_eq!(a.formatted.as_deref(), Some("1 Main St, Redmond"));
    // Replacing the existing element changes it in place.
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0101"}"#,
        ),
    );
    assert_eq!(u.mobile_phone(), Some("+1 555 0101"));
    assert_eq!(u.phone_numbers.len(), 2);
    assert_eq!(
        ids(
            &d,
            r#"phoneNumbers[type eq "work" and value eq "+1 555 0199"]"#
        ),
        1
    );
}

#[test]
fn entra_extension_attributes_by_urn_path() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(&format!(
            r#"{{"op":"Replace","path":"{ENTERPRISE}:manager","value":"boss-id-1"}},
               {{"op":"Replace","path":"{ENTERPRISE}:department","value":"Ops"}},
               {{"op":"Add","path":"{ENTERPRISE}:costCenter","value":"CC"}},
               {{"op":"Add","path":"{ENTERPRISE}:organization","value":"Org"}},
               {{"op":"Add","path":"{ENTERPRISE}:division","value":"Div"}}"#
        )),
    );
    assert_eq!(u.manager.as_deref(), Some("boss-id-1"));
    assert_eq!(u.department.as_deref(), Some("Ops"));
    assert_eq!(u.cost_center.as_deref(), Some("CC"));
    assert_eq!(u.organization.as_deref(), Some("Org"));
    assert_eq!(u.division.as_deref(), Some("Div"));
    // `{"value": id}` is accepted too; filters see the extension.
    let u = patch(
        &d,
        &u,
        &body(&format!(
            r#"{{"op":"replace","path":"{ENTERPRISE}:manager","value":{{"value":"boss-id-2"}}}}"#
        )),
    );
    assert_eq!(u.manager.as_deref(), Some("boss-id-2"));
    assert_eq!(ids(&d, &format!(r#"{ENTERPRISE}:department eq "ops""#)), 1);
    assert_eq!(ids(&d, r#"manager.value eq "boss-id-2""#), 1);
    let u = patch(
        &d,
        &u,
        &body(&format!(
            r#"{{"op":"Remove","path":"{ENTERPRISE}:manager"}}"#
        )),
    );
    assert_eq!(u.manager, None);
}

#[test]
fn entra_empty_operations_is_a_no_op() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let before = d.dump().unwrap();
    let after = patch(&d, &u, &body(""));
    assert_eq!(after, u);
    assert_eq!(before, d.dump().unwrap());
}

#[test]
fn entra_disables_with_active_false_and_keeps_the_logins() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let u = patch(
        &d,
        &u,
        &body(r#"{"op":"Replace","path":"active","value":false}"#),
    );
    assert!(!u.active);
    assert_eq!(
        d.find_by_username("BJENSEN@example.com")
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
}

#[test]
fn one_bad_operation_changes_nothing() {
    let (d, _) = common::dir();
    let u = babs(&d);
    let before = d.dump().unwrap();
    for bad in [
        r#"{"op":"replace","path":"title","value":"x"},{"op":"replace","path":"meta.created","value":"x"}"#,
        r#"{"op":"replace","path":"nosuch","value":"x"}"#,
        r#"{"op":"replace","path":"emails[type eq \"work\"].nosuch","value":"x"}"#,
        r#"{"op":"add","path":"emails","value":[{"value":"not an email"}]}"#,
        r#"{"op":"replace","path":"password","value":"secret secret"}"#,
        r#"{"op":"remove","path":"active"}"#,
    ] {
        let req = PatchRequest::from_json(&body(bad)).unwrap();
        let err = d.patch(u.id, &req.operations, None).unwrap_err();
        assert!(!err.to_string().contains("secret secret"), "{err}");
        assert_eq!(before, d.dump().unwrap(), "{bad}");
    }
    // Bodies that are not PatchOp requests.
    for bad in [
        "not json",
        "[]",
        r#"{"Operations":{}}"#,
        r#"{"schemas":["urn:x"],"Operations":[]}"#,
        r#"{"Operations":[{"op":"add","path":"title"}]}"#,
        r#"{"Operations":[{"op":"add","path":7,"value":"x"}]}"#,
    ] {
        assert!(
            matches!(
                PatchRequest::from_json(bad),
                Err(Error::InvalidPatch { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn every_core_attribute_can_be_patched_and_filtered() {
    let (d, _) = common::dir();
    let u = d.create(NewUser::with_username("kim")).unwrap();
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"add","value":{
                "displayName":"Kim K","profileUrl":"https://x/kim","title":"CTO","userType":"Employee",
                "preferredLanguage":"da, en-gb;q=0.8","locale":"da-DK","timezone":"Europe/Copenhagen",
                "name":{"formatted":"Ms. Kim K","familyName":"K","givenName":"Kim","middleName":"M",
                        "honorificPrefix":"Ms.","honorificSuffix":"II"},
                "ims":[{"value":"kim@im","type":"xmpp"}],
                "photos":[{"value":"https://x/kim.png","type":"photo"}],
                "x509Certificates":[{"value":"MIIDQzCC"}],
                "entitlements":[{"value":"buy","display":"Buy"}],
                "roles":[{"value":"admin"}]}}"#,
        ),
    );
    assert_eq!(u.preferred_languages, ["da", "en-gb"]);
    assert_eq!(u.honorific_suffix.as_deref(), Some("II"));
    assert_eq!(u.full_name.as_deref(), Some("Ms. Kim K"));
    assert_eq!(u.display_name.as_deref(), Some("Kim K"));
    for (f, n) in [
        (r#"displayName eq "KIM K""#, 1),
        (r#"name.formatted co "ms.""#, 1),
        (r#"profileUrl sw "https://x""#, 1),
        (r#"title eq "cto""#, 1),
        (r#"userType eq "employee""#, 1),
        (r#"preferredLanguage eq "en-gb""#, 1),
        (r#"locale eq "da-dk""#, 1),
        (r#"timezone eq "europe/copenhagen""#, 1),
        (r#"name.honorificPrefix eq "ms.""#, 1),
        (r#"ims[type eq "xmpp"]"#, 1),
        (r#"photos.value ew "kim.png""#, 1),
        (r#"x509Certificates.value eq "MIIDQzCC""#, 1),
        (r#"x509Certificates.value eq "miidqzcc""#, 0),
        (r#"entitlements.display eq "buy""#, 1),
        // Roles compare caselessly (RFC 7643 caseExact=false; the role index is caseless).
        (r#"roles eq "admin""#, 1),
        (r#"roles eq "ADMIN""#, 1),
        (r#"roles eq "admins""#, 0),
    ] {
        assert_eq!(ids(&d, f), n, "{f}");
    }
    // And removed again.
    let u = patch(
        &d,
        &u,
        &body(
            r#"{"op":"remove","path":"ims"},{"op":"remove","path":"entitlements[value eq \"buy\"]"},
               {"op":"remove","path":"name.honorificSuffix"},{"op":"remove","path":"preferredLanguage"}"#,
        ),
    );
    assert!(u.ims.is_empty() && u.entitlements.is_empty());
    assert_eq!(u.honorific_suffix, None);
    assert!(u.preferred_languages.is_empty());
}
