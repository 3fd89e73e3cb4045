//! What a web application relies on: the public data types serialize (never the password
//! hash), and every error maps to an HTTP status and, where SCIM has one, a `scimType`.

mod common;

use serde_json::{Value, json};
use userdir::{
    Address, AttrValue, Error, ImportBatch, MultiValue, NewUser, PatchOp, Profile, Search, User,
};

#[test]
fn a_user_serializes_without_its_password_hash_and_reads_back() {
    let (dir, _) = common::dir();
    let user = dir
        .create(
            NewUser::with_username("Ann")
                .email("Ann@Example.com")
                .password("correct horse battery")
                .role("admin")
                .data("team", "blue")
                .data("level", 3_i64),
        )
        .unwrap();
    let hash = user.password.as_ref().unwrap().expose().to_owned();
    let text = serde_json::to_string(&user).unwrap();
    assert!(!text.contains(&hash), "the hash leaked: {text}");
    assert!(!text.contains("argon2"), "the hash leaked: {text}");
    assert!(!text.contains("\"password\""), "a password field: {text}");

    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["username"], "Ann");
    assert_eq!(v["email"], "ann@example.com");
    assert_eq!(v["roles"], json!(["admin"]));
    // Custom attributes are plain JSON, not tagged enum variants.
    assert_eq!(v["data"], json!({"level": 3, "team": "blue"}));
    assert_eq!(v["id"], user.id.to_string());

    let back: User = serde_json::from_str(&text).unwrap();
    assert_eq!(back.password, None, "a deserialized user has no hash");
    assert_eq!(
        User {
            password: user.password.clone(),
            ..back
        },
        user
    );
}

#[test]
fn attribute_values_are_plain_json_both_ways() {
    let v: AttrValue =
        serde_json::from_str(r#"{"a": [1, 2.5, "x", true, null], "b": {}}"#).unwrap();
    let AttrValue::Object(o) = &v else {
        panic!("an object: {v:?}")
    };
    assert_eq!(
        o["a"],
        AttrValue::Array(vec![
            AttrValue::Int(1),
            AttrValue::Float(2.5),
            AttrValue::String("x".into()),
            AttrValue::Bool(true),
            AttrValue::Null,
        ])
    );
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        json!({"a": [1, 2.5, "x", true, null], "b": {}})
    );
}

#[test]
fn a_page_serializes_with_its_cursor_as_a_string() {
    let (dir, _) = common::dir();
    for n in ["a", "b", "c"] {
        dir.create(NewUser::with_username(n)).unwrap();
    }
    let page = dir.search(&Search::all().limit(2)).unwrap();
    let v = serde_json::to_value(&page).unwrap();
    assert_eq!(v["total"], 3);
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    let cursor = v["next"].as_str().unwrap();
    let parsed: userdir::Cursor = serde_json::from_value(v["next"].clone()).unwrap();
    assert_eq!(parsed.to_string(), cursor);
    assert!(serde_json::from_value::<userdir::Cursor>(json!("not a cursor")).is_err());
}

#[test]
fn a_refused_import_report_serializes_every_problem() {
    let (dir, _) = common::dir();
    let rows = vec![NewUser::with_username("x"), NewUser::with_username("X")];
    let Err(Error::Import(report)) = dir.import(ImportBatch::new(rows)) else {
        panic!("the duplicate should refuse the batch")
    };
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(
        v["problems"][0]["reason"],
        json!({"kind": "duplicate_in_batch", "detail": {"other_index": 0}})
    );
    assert_eq!(v["problems"][0]["index"], 1);
}

#[test]
fn errors_map_to_http_statuses_and_scim_types() {
    let (dir, _) = common::dir();
    let ann = dir
        .create(NewUser::with_username("ann").password("correct horse battery"))
        .unwrap();
    let check = |e: Error, status: u16, scim: Option<&str>| {
        assert_eq!((e.http_status(), e.scim_type()), (status, scim), "{e:?}");
    };
    check(
        dir.create(NewUser::with_username("ANN")).unwrap_err(),
        409,
        Some("uniqueness"),
    );
    check(
        dir.create(NewUser::with_username("")).unwrap_err(),
        400,
        Some("invalidValue"),
    );
    check(
        dir.create(NewUser::with_username("bob").password("short"))
            .unwrap_err(),
        400,
        Some("invalidValue"),
    );
    check(
        userdir::parse_filter("userName eq").unwrap_err(),
        400,
        Some("invalidFilter"),
    );
    check(
        "garbage".parse::<userdir::Cursor>().unwrap_err(),
        400,
        Some("invalidCursor"),
    );
    check(dir.deactivate(uuid::Uuid::nil()).unwrap_err(), 404, None);
    check(
        dir.update(ann.id, (&ann).into(), Some(ann.version + 7))
            .unwrap_err(),
        412,
        None,
    );
    check(
        dir.authenticate("ann", "wrong password").unwrap_err(),
        401,
        None,
    );
    check(
        dir.patch(ann.id, &[PatchOp::replace("nosuch", "x")], None)
            .unwrap_err(),
        400,
        Some("invalidPath"),
    );
    check(
        dir.patch(ann.id, &[PatchOp::replace("id", "x")], None)
            .unwrap_err(),
        400,
        Some("mutability"),
    );
    check(
        dir.patch(ann.id, &[PatchOp::replace("active", "yes")], None)
            .unwrap_err(),
        400,
        Some("invalidValue"),
    );
    check(
        dir.patch(ann.id, &[PatchOp::remove("")], None).unwrap_err(),
        400,
        Some("noTarget"),
    );
    dir.deactivate(ann.id).unwrap();
    check(
        dir.authenticate("ann", "correct horse battery")
            .unwrap_err(),
        403,
        None,
    );
    #[cfg(feature = "json")]
    check(
        userdir::json::read(userdir::json::Format::FusionAuth, "{").unwrap_err(),
        400,
        Some("invalidSyntax"),
    );
}

/// A profile with every kind of field set: SCIM core, multi-valued, addresses, enterprise and
/// userdir's extension.
fn full_profile() -> Profile {
    Profile {
        username: Some("Babs".into()),
        email: Some("babs@example.com".into()),
        external_id: Some("hr-7".into()),
        first_name: Some("Barbara".into()),
        last_name: Some("Jensen".into()),
        honorific_prefix: Some("Ms.".into()),
        display_name: Some("Babs Jensen".into()),
        title: Some("Tour Guide".into()),
        user_type: Some("Employee".into()),
        locale: Some("en-US".into()),
        timezone: Some("America/Los_Angeles".into()),
        preferred_languages: vec!["en-US".into(), "fr".into()],
        emails: vec![
            MultiValue::new("babs@example.com")
                .kind("work")
                .primary(true),
            MultiValue::new("babs@jensen.org").kind("home"),
        ],
        phone_numbers: vec![MultiValue::new("555-555-8377").kind("mobile")],
        ims: vec![MultiValue::new("babs_aim").kind("aim").display("AIM")],
        photos: vec![MultiValue::new("https://photos.example.com/babs.jpg").kind("photo")],
        addresses: vec![Address {
            street_address: Some("100 Universal City Plaza".into()),
            locality: Some("Hollywood".into()),
            region: Some("CA".into()),
            postal_code: Some("91608".into()),
            country: Some("US".into()),
            kind: Some("work".into()),
            primary: true,
            ..Address::default()
        }],
        entitlements: vec![MultiValue::new("beta")],
        roles: ["admin".to_string()].into(),
        employee_number: Some("701984".into()),
        cost_center: Some("4130".into()),
        organization: Some("Universal Studios".into()),
        division: Some("Theme Park".into()),
        department: Some("Tour Operations".into()),
        manager: Some("26118915-6090-4610-87e4-49d8ca9f808d".into()),
        birth_date: Some("1980-02-29".into()),
        password_change_required: true,
        expiry: Some(4_102_444_800_000),
        data: [("team".to_string(), AttrValue::from("blue"))].into(),
        ..Profile::default()
    }
}

#[test]
fn every_profile_field_round_trips_flat_in_the_user_and_the_hash_never_does() {
    let (dir, _) = common::dir();
    let user = dir
        .create(
            NewUser {
                profile: full_profile(),
                ..NewUser::default()
            }
            .password("correct horse battery"),
        )
        .unwrap();
    let hash = user.password.as_ref().unwrap().expose().to_owned();
    let v = serde_json::to_value(&user).unwrap();
    let text = v.to_string();
    assert!(
        !text.contains(&hash) && !text.contains("argon2"),
        "the hash leaked: {text}"
    );
    assert!(
        v.get("password").is_none() && v.get("profile").is_none(),
        "{text}"
    );
    // The profile's fields sit next to the id: one flat object.
    assert_eq!(v["username"], "Babs");
    assert_eq!(v["employee_number"], "701984");
    assert_eq!(
        v["emails"][1],
        json!({"value": "babs@jensen.org", "kind": "home", "primary": false, "display": null})
    );
    assert_eq!(v["addresses"][0]["postal_code"], "91608");
    assert_eq!(v["id"], user.id.to_string());

    let back: User = serde_json::from_value(v).unwrap();
    assert_eq!(back.password, None, "a deserialized user has no hash");
    assert_eq!(
        User {
            password: user.password.clone(),
            ..back
        },
        user
    );

    // A profile alone (a form's body): missing fields take their defaults.
    let p: Profile = serde_json::from_value(json!({
        "username": "cy",
        "emails": [{"value": "cy@example.com"}],
        "addresses": [{"locality": "Oslo"}]
    }))
    .unwrap();
    assert_eq!(p.username.as_deref(), Some("cy"));
    assert_eq!(p.emails, vec![MultiValue::new("cy@example.com")]);
    assert_eq!(p.addresses[0].locality.as_deref(), Some("Oslo"));
    assert!(p.roles.is_empty() && !p.password_change_required);
    let full = full_profile();
    let again: Profile = serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap();
    assert_eq!(again, full);
}

#[test]
fn policy_violations_serialize_for_a_form() {
    let (dir, _) = common::dir();
    let Err(Error::PasswordPolicy(v)) = dir.create(NewUser::with_username("dee").password("short"))
    else {
        panic!("the policy should refuse a short password")
    };
    let j = serde_json::to_value(&v).unwrap();
    assert!(
        j.as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "too_short" && p["detail"]["min"].is_u64()),
        "{j}"
    );
}

/// The SCIM endpoint answers a library error with the library's own mapping.
#[cfg(feature = "scim")]
#[test]
fn the_scim_endpoint_uses_the_library_mapping() {
    use userdir::scim::ScimError;
    let id = uuid::Uuid::nil();
    let errors = vec![
        Error::DuplicateEmail { existing: id },
        Error::NotFound(id),
        Error::VersionConflict {
            expected: 1,
            actual: 2,
        },
        Error::TooManyConflicts { attempts: 8 },
        Error::OutcomeUnknown("connection lost".into()),
        Error::UnicodeMismatch {
            database: 1,
            process: 2,
        },
        Error::ReadOnly,
        Error::InvalidPatch {
            path: String::new(),
            reason: "remove needs a path".into(),
        },
        userdir::parse_filter("userName eq").unwrap_err(),
    ];
    for e in errors {
        let (status, scim_type) = (e.http_status(), e.scim_type());
        let s = ScimError::from(e);
        assert_eq!((s.status.as_u16(), s.scim_type), (status, scim_type));
    }
}
