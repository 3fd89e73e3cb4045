//! What a web application relies on: the public data types serialize (never the password
//! hash), and every error maps to an HTTP status and, where SCIM has one, a `scimType`.

mod common;

use serde_json::{Value, json};
use userdir::{AttrValue, Error, ImportBatch, NewUser, PatchOp, Search, User};

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
