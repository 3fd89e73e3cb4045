//! JSON interchange: each format reads the seed documents' own examples (tests/fixtures/) and
//! writes them back; bad input is reported row by row; hashes appear only with `with_hashes`.
#![cfg(feature = "json")]

use serde_json::{Value, json};
use userdir::json::{self, Format};
use userdir::{Argon2Params, AttrValue, Directory, Error, ManualClock, NewUser, User};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dir() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .in_memory()
        .unwrap()
}

fn create_all(dir: &Directory, rows: Vec<NewUser>) -> Vec<User> {
    rows.into_iter().map(|r| dir.create(r).unwrap()).collect()
}

fn problems(e: Error) -> Vec<userdir::JsonProblem> {
    match e {
        Error::InvalidJson(p) => p,
        other => panic!("expected InvalidJson, got {other:?}"),
    }
}

#[test]
fn fusionauth_seed_import_request_refuses_salted_sha256_by_row_and_field() {
    let e = json::read(Format::FusionAuth, &fixture("fusionauth_import.json")).unwrap_err();
    let p = problems(e);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].row, Some(0));
    assert_eq!(p[0].field.as_deref(), Some("encryptionScheme"));
    assert!(p[0].reason.contains("salted-sha256"), "{}", p[0].reason);
    // The message names the scheme, never the hash or the salt.
    let msg = Error::InvalidJson(p).to_string();
    assert!(!msg.contains("5ac152b6"), "{msg}");
    assert!(!msg.contains("47bafdd3"), "{msg}");
}

#[test]
fn fusionauth_seed_import_request_with_pbkdf2_imports_and_exports() {
    let rows = json::read(
        Format::FusionAuth,
        &fixture("fusionauth_import_pbkdf2.json"),
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    let d = dir();
    let users = create_all(&d, rows);
    let u = &users[0];
    assert_eq!(u.username.as_deref(), Some("johnny123"));
    assert_eq!(u.email.as_deref(), Some("example@fusionauth.io"));
    assert!(u.active);
    assert_eq!(u.first_name.as_deref(), Some("John"));
    assert_eq!(u.middle_name.as_deref(), Some("William"));
    assert_eq!(u.birth_date.as_deref(), Some("1976-05-30"));
    assert_eq!(u.insert_instant, 1_331_449_200_000);
    assert_eq!(u.expiry, Some(1_571_786_483_322));
    assert_eq!(u.preferred_languages, ["en", "fr"]);
    assert!(u.roles.contains("moderator"));
    assert_eq!(u.data["displayName"], AttrValue::from("Johnny Boy"));
    assert!(u.password.is_some());
    // The FusionAuth hash verifies: the seed's account expired in 2019, and expiry is reported
    // only once the password is right.
    assert!(matches!(
        d.authenticate("johnny123", "correct horse battery"),
        Err(Error::AccountExpired)
    ));
    assert!(matches!(
        d.authenticate("johnny123", "wrong horse battery"),
        Err(Error::InvalidCredentials)
    ));

    let out = json::write_user(Format::FusionAuth, u, false).unwrap();
    let seed: Value = serde_json::from_str(&fixture("fusionauth_import_pbkdf2.json")).unwrap();
    let seed = &seed["users"][0];
    for k in [
        "active",
        "birthDate",
        "data",
        "email",
        "expiry",
        "firstName",
        "fullName",
        "imageUrl",
        "insertInstant",
        "lastName",
        "middleName",
        "mobilePhone",
        "passwordChangeRequired",
        "preferredLanguages",
        "timezone",
        "username",
    ] {
        assert_eq!(out[k], seed[k], "field {k}");
    }
    assert_eq!(out["registrations"][0]["roles"], json!(["moderator"]));
    for k in ["password", "salt", "encryptionScheme", "factor"] {
        assert!(out.get(k).is_none(), "{k} must not be exported");
    }
}

#[test]
fn fusionauth_seed_response_reads_and_writes_back() {
    let text = fixture("fusionauth_user_response.json");
    let rows = json::read(Format::FusionAuth, &text).unwrap();
    assert_eq!(rows.len(), 1);
    let d = dir();
    let u = create_all(&d, rows).remove(0);
    assert_eq!(u.id.to_string(), "00000000-0000-0001-0000-000000000000");
    assert!(u.verified);
    assert_eq!(u.last_login_instant, Some(1_471_786_483_322));
    assert_eq!(
        u.roles.iter().map(String::as_str).collect::<Vec<_>>(),
        ["community_helper", "user"]
    );
    let out = json::write_user(Format::FusionAuth, &u, false).unwrap();
    let seed: Value = serde_json::from_str(&text).unwrap();
    let seed = &seed["user"];
    for k in [
        "active",
        "birthDate",
        "data",
        "email",
        "expiry",
        "firstName",
        "fullName",
        "id",
        "imageUrl",
        "lastLoginInstant",
        "lastName",
        "middleName",
        "mobilePhone",
        "passwordChangeRequired",
        "preferredLanguages",
        "timezone",
        "username",
        "verified",
    ] {
        assert_eq!(out[k], seed[k], "field {k}");
    }
    // Registration tokens (secrets of other systems) are never kept.
    assert!(!out.to_string().contains("nQbbBIzDhMXXfa7iDUoonz5zS"));
}

#[test]
fn fusionauth_import_row_without_active_is_inactive_but_a_single_user_is_active() {
    let rows = json::read(Format::FusionAuth, r#"{"users":[{"username":"a"}]}"#).unwrap();
    assert!(!rows[0].active);
    let rows = json::read(Format::FusionAuth, r#"{"user":{"username":"a"}}"#).unwrap();
    assert!(rows[0].active);
    let rows = json::read(Format::JsonLines, "{\"username\":\"a\"}\n").unwrap();
    assert!(!rows[0].active);
}

#[test]
fn fuse_seed_bulk_create_imports_and_exports() {
    let text = fixture("fuse_bulk_create.json");
    let rows = json::read(Format::Fuse, &text).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.confirm.is_some()));
    let d = dir();
    let users = create_all(&d, rows);
    let u = &users[0];
    assert_eq!(u.username.as_deref(), Some("testuser1"));
    assert_eq!(u.first_name.as_deref(), Some("test1"));
    assert_eq!(u.last_name.as_deref(), Some("user1"));
    assert!(u.active);
    assert!(u.roles.contains("user"));
    assert_eq!(u.data["plain_text_emails"], AttrValue::Bool(true));
    assert!(matches!(u.data["settings"], AttrValue::Object(_)));

    let seed: Value = serde_json::from_str(&text).unwrap();
    for (u, row) in users.iter().zip(seed["users"].as_array().unwrap()) {
        let mut out = json::write_user(Format::Fuse, u, false).unwrap();
        let o = out.as_object_mut().unwrap();
        assert_eq!(o.remove("id"), Some(json!(u.id.to_string())));
        assert_eq!(o.remove("active"), Some(json!(true)));
        let mut expected = row.clone();
        let e = expected.as_object_mut().unwrap();
        e.remove("password");
        e.remove("password_confirmation");
        assert_eq!(out, expected);
    }
}

#[test]
fn fuse_mismatched_confirmation_is_refused_by_the_directory() {
    let rows = json::read(
        Format::Fuse,
        r#"{"users":[{"username":"x","password":"Password1234!","password_confirmation":"nope nope"}]}"#,
    )
    .unwrap();
    let d = dir();
    assert!(matches!(
        d.create(rows.into_iter().next().unwrap()),
        Err(Error::PasswordMismatch)
    ));
}

#[test]
fn scim_firstup_record_keeps_its_extensions_as_data() {
    let text = fixture("scim_user_firstup.json");
    let rows = json::read(Format::Scim, &text).unwrap();
    let d = dir();
    let u = create_all(&d, rows).remove(0);
    assert_eq!(u.username.as_deref(), Some("janeDoe123"));
    assert_eq!(u.first_name.as_deref(), Some("Jane"));
    assert_eq!(u.last_name.as_deref(), Some("Doe"));
    // displayName is its own attribute (RFC 7643), no longer name.formatted.
    assert_eq!(u.full_name.as_deref(), None);
    assert_eq!(u.display_name.as_deref(), Some("Jane Doe"));
    assert_eq!(u.title.as_deref(), Some("Sales Person"));
    assert_eq!(u.addresses[0].locality.as_deref(), Some("San Francisco"));
    assert_eq!(u.nick_name.as_deref(), Some("Jane"));
    assert_eq!(u.email.as_deref(), Some("janedoe@email.com"));
    assert_eq!(u.image_url(), Some("http://an.image/url"));
    assert_eq!(u.timezone.as_deref(), Some("US/Chicago"));
    assert_eq!(u.preferred_languages, ["en-US"]);
    assert!(u.roles.contains("member"));
    assert!(u.data.contains_key("urn:SocialChorus:1.0:User"));

    let out = json::write_user(Format::Scim, &u, false).unwrap();
    let seed: Value = serde_json::from_str(&text).unwrap();
    for k in [
        "userName",
        "active",
        "name",
        "displayName",
        "nickName",
        "emails",
        "title",
        "photos",
        "preferredLanguage",
        "userType",
        "locale",
        "timezone",
    ] {
        if k == "name" || k == "emails" {
            for (sub, v) in seed[k]
                .as_object()
                .map(|o| o.iter().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                assert_eq!(&out[k][sub], v, "{k}.{sub}");
            }
            continue;
        }
        assert_eq!(out[k], seed[k], "attribute {k}");
    }
    // Another system's extension is custom data, written under userdir's extension.
    assert!(out.get("urn:SocialChorus:1.0:User").is_none());
    let data: Value =
        serde_json::from_str(out[json::scim::USERDIR_SCHEMA]["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data["urn:SocialChorus:1.0:User"],
        seed["urn:SocialChorus:1.0:User"]
    );
    assert_eq!(out["emails"][0]["value"], "janedoe@email.com");
    // Addresses keep every sub-attribute (`primary` is written when true).
    let mut seed_address = seed["addresses"][0].clone();
    seed_address.as_object_mut().unwrap().remove("primary");
    assert_eq!(out["addresses"][0], seed_address);
    assert_eq!(out["roles"], json!([{"value": "member"}]));
    let schemas = out["schemas"].as_array().unwrap();
    assert!(schemas.contains(&json!(json::scim::USER_SCHEMA)));
    assert!(schemas.contains(&json!(json::scim::USERDIR_SCHEMA)));
    assert!(!schemas.contains(&json!("urn:SocialChorus:1.0:User")));
}

#[test]
fn scim_rfc7643_user_with_enterprise_extension() {
    let text = fixture("scim_user_rfc7643_enterprise.json");
    let rows = json::read(Format::Scim, &text).unwrap();
    assert!(rows[0].password.is_some());
    let d = dir();
    let u = create_all(&d, rows).remove(0);
    assert_eq!(u.id.to_string(), "2819c223-7f76-453a-919d-413861904646");
    assert_eq!(u.external_id.as_deref(), Some("701984"));
    assert_eq!(u.email.as_deref(), Some("bjensen@example.com"));
    assert_eq!(u.mobile_phone(), Some("555-555-4444"));
    assert_eq!(u.full_name.as_deref(), Some("Ms. Barbara J Jensen, III"));
    assert_eq!(u.middle_name.as_deref(), Some("Jane"));
    assert_eq!(
        u.insert_instant,
        json::parse_rfc3339("2010-01-23T04:56:22Z").unwrap()
    );
    // The enterprise extension is part of the model now, not custom data.
    assert!(!u.data.contains_key(json::scim::ENTERPRISE_SCHEMA));
    assert_eq!(u.employee_number.as_deref(), Some("701984"));
    assert_eq!(u.department.as_deref(), Some("Tour Operations"));
    assert_eq!(
        u.manager.as_deref(),
        Some("26118915-6090-4610-87e4-49d8ca9f808d")
    );
    assert_eq!(u.honorific_prefix.as_deref(), Some("Ms."));
    assert_eq!(u.emails.len(), 2);
    assert_eq!(u.addresses.len(), 1);
    assert!(u.addresses[0].formatted.as_deref().unwrap().contains('\n'));

    let out = json::write_user(Format::Scim, &u, false).unwrap();
    let seed: Value = serde_json::from_str(&text).unwrap();
    for k in [
        "id",
        "externalId",
        "userName",
        "name",
        "displayName",
        "nickName",
        "addresses",
        "photos",
        "userType",
        "title",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "x509Certificates",
        "emails",
        "phoneNumbers",
        "ims",
    ] {
        assert_eq!(out[k], seed[k], "attribute {k}");
    }
    // `groups` (read-only in SCIM, not in userdir's model) is custom data, written under
    // userdir's extension, not as a top-level attribute.
    assert!(out.get("groups").is_none());
    let data: Value =
        serde_json::from_str(out[json::scim::USERDIR_SCHEMA]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["groups"], seed["groups"]);
    // The enterprise extension, except the manager's read-only `$ref` and `displayName`.
    let (e_out, e_seed) = (
        &out[json::scim::ENTERPRISE_SCHEMA],
        &seed[json::scim::ENTERPRISE_SCHEMA],
    );
    for k in [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
    ] {
        assert_eq!(e_out[k], e_seed[k], "enterprise {k}");
    }
    assert_eq!(e_out["manager"]["value"], e_seed["manager"]["value"]);
    assert_eq!(out["meta"]["created"], "2010-01-23T04:56:22.000Z");
    assert_eq!(out["meta"]["version"], "W/\"1\"");
    assert!(
        out["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(json::scim::ENTERPRISE_SCHEMA))
    );
    assert!(out.get("password").is_none());
    assert!(!out.to_string().contains("t1meMa$heen"));
}

#[test]
fn scim_list_response_reads_every_resource() {
    let rows = json::read(Format::Scim, &fixture("scim_list_response_rfc7644.json")).unwrap();
    let names: Vec<_> = rows
        .iter()
        .map(|r| r.profile.username.clone().unwrap())
        .collect();
    assert_eq!(names, ["bjensen", "jsmith"]);
    assert_eq!(
        rows[1].id.map(|i| i.to_string()).as_deref(),
        Some("c75ad752-64ae-4823-840d-ffa80929976c")
    );
    let d = dir();
    let users = create_all(&d, rows);
    let doc: Value =
        serde_json::from_str(&json::write_document(Format::Scim, &users, false).unwrap()).unwrap();
    assert_eq!(doc["schemas"], json!([json::scim::LIST_RESPONSE]));
    assert_eq!(doc["totalResults"], 2);
    assert_eq!(doc["Resources"][1]["userName"], "jsmith");
}

#[test]
fn malformed_seed_json_is_one_clear_problem() {
    let e = json::read(Format::Scim, &fixture("scim_user_firstup_malformed.json")).unwrap_err();
    let msg = e.to_string();
    let p = problems(e);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].row, None);
    assert!(
        msg.contains("malformed JSON") && msg.contains("line"),
        "{msg}"
    );
}

#[test]
fn every_bad_row_is_reported_with_its_field() {
    let text = r#"{"users":[
        {"username": 1},
        {"email": "fine@example.com"},
        {"username": "c", "active": "yes", "insertInstant": "soon", "registrations": [{"roles": [3]}]},
        {"username": "d", "encryptionScheme": "salted-md5", "password": "abc", "salt": ""}
    ]}"#;
    let p = problems(json::read(Format::FusionAuth, text).unwrap_err());
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.row.unwrap(), p.field.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (0, "username".to_owned()),
            (2, "registrations[0].roles[0]".to_owned()),
            (2, "active".to_owned()),
            (2, "insertInstant".to_owned()),
            (3, "encryptionScheme".to_owned()),
        ]
    );
    let jl = "{\"username\":\"a\"}\n\nnot json\n{\"username\":[]}\n";
    let p = problems(json::read(Format::JsonLines, jl).unwrap_err());
    assert_eq!(
        p.iter().map(|p| p.row).collect::<Vec<_>>(),
        [Some(2), Some(3)]
    );
}

#[test]
fn wrong_document_shapes_are_refused() {
    for (fmt, text) in [
        (Format::FusionAuth, "42"),
        (Format::FusionAuth, r#"{"users": 3}"#),
        (Format::Scim, r#"{"Resources": {}}"#),
        (Format::Fuse, "[1]"),
    ] {
        assert!(
            matches!(json::read(fmt, text), Err(Error::InvalidJson(_))),
            "{fmt} {text}"
        );
    }
}

fn rich_users(d: &Directory) -> Vec<User> {
    let hash = d.hash_password("correct horse battery").unwrap();
    let mut out = vec![
        d.create(
            NewUser::with_username("Ann")
                .email("Ann@Example.com")
                .external_id("ext-1")
                .first_name("Ann")
                .middle_name("B")
                .last_name("Smith")
                .full_name("Ann B Smith")
                .nick_name("Annie")
                .birth_date("1990-02-03")
                .mobile_phone("+1 555")
                .image_url("https://example.com/a.png")
                .timezone("Europe/Paris")
                .role("admin")
                .role("ops")
                .data("n", 3i64)
                .data("f", 2.5f64)
                .data(
                    "nested",
                    AttrValue::Array(vec![AttrValue::Null, AttrValue::from("x")]),
                )
                .verified(true)
                .password_change_required(true)
                .expiry(1_900_000_000_000)
                .insert_instant(1_000)
                .password_hash(hash),
        )
        .unwrap(),
        d.create(NewUser::with_email("bob@example.com").active(false))
            .unwrap(),
    ];
    out[0].preferred_languages.clear();
    out
}

#[test]
fn with_hashes_round_trips_exactly_in_fusionauth_and_jsonl() {
    for fmt in [Format::FusionAuth, Format::JsonLines] {
        let a = dir();
        let users = rich_users(&a);
        let text = json::write_document(fmt, &users, true).unwrap();
        assert!(text.contains("$argon2id$"));
        let b = dir();
        let again = create_all(&b, json::read(fmt, &text).unwrap());
        assert_eq!(again.len(), users.len());
        for (x, y) in users.iter().zip(&again) {
            let mut y = y.clone();
            y.last_update_instant = x.last_update_instant;
            y.version = x.version;
            assert_eq!(*x, y, "{fmt}");
        }
    }
}

#[test]
fn no_output_without_with_hashes_contains_a_hash() {
    let d = dir();
    let users = rich_users(&d);
    for fmt in Format::ALL {
        let text = json::write_document(fmt, &users, false).unwrap();
        assert!(!text.contains("$argon2"), "{fmt}");
        assert!(!text.contains("password\""), "{fmt}: {text}");
        let back = json::read(fmt, &text).unwrap();
        assert_eq!(back.len(), 2, "{fmt}");
    }
    for fmt in [Format::Fuse, Format::Scim] {
        assert!(matches!(
            json::write_document(fmt, &users, true),
            Err(Error::InvalidField {
                field: "with_hashes",
                ..
            })
        ));
    }
}

#[test]
fn scim_and_fuse_round_trip_what_they_carry() {
    let a = dir();
    let users = rich_users(&a);
    let text = json::write_document(Format::Scim, &users, false).unwrap();
    let b = dir();
    let again = create_all(&b, json::read(Format::Scim, &text).unwrap());
    for (x, y) in users.iter().zip(&again) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.username, y.username);
        assert_eq!(x.email, y.email);
        assert_eq!(x.external_id, y.external_id);
        assert_eq!(
            (&x.first_name, &x.middle_name, &x.last_name),
            (&y.first_name, &y.middle_name, &y.last_name)
        );
        assert_eq!(x.full_name, y.full_name);
        assert_eq!(x.birth_date, y.birth_date);
        assert_eq!(x.roles, y.roles);
        assert_eq!(x.data, y.data);
        assert_eq!(x.active, y.active);
        assert_eq!(x.verified, y.verified);
        assert_eq!(x.expiry, y.expiry);
        assert_eq!(x.insert_instant, y.insert_instant);
        assert!(y.password.is_none());
    }
    let text = json::write_document(Format::Fuse, &users, false).unwrap();
    let again = json::read(Format::Fuse, &text).unwrap();
    assert_eq!(again[0].profile.roles, users[0].roles);
    assert_eq!(again[0].profile.data, users[0].data);
}

#[test]
fn export_streams_the_directory() {
    let d = dir();
    rich_users(&d);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let n = json::export(
        &d,
        Format::JsonLines,
        false,
        &mut out,
        &mut |done, total| {
            seen.push((done, total));
        },
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(seen, [(1, 2), (2, 2)]);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
}
