//! Files written by older record formats still open and read the same users; a write
//! upgrades the record to the current format.
//!
//! `tests/fixtures/v1.redb` was written by userdir at commit ef69e0d (record format 1) with
//! [`write_v1_fixture`] (run with `--ignored` against that version to regenerate it).

use std::path::PathBuf;

use userdir::{Argon2Params, Directory, NewUser, StoredHash};
use uuid::Uuid;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The users of the v1 fixture.
fn v1_users() -> Vec<NewUser> {
    let hash = StoredHash::from_encoded(
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$E2zqIOwEpMjGlaTHOu9/3ShWSmpqNMW+q0p9NI3MzEE",
    );
    vec![
        NewUser::with_username("Ann")
            .id(Uuid::from_u128(1))
            .email("Ann@Example.com")
            .external_id("ext-1")
            .first_name("Ann")
            .middle_name("B")
            .last_name("Smith")
            .full_name("Ann B Smith")
            .nick_name("annie")
            .birth_date("1980-02-03")
            .mobile_phone("+1 555 0100")
            .image_url("https://example.com/ann.png")
            .timezone("Europe/Paris")
            .role("admin")
            .role("staff")
            .data("department", "Sales")
            .data("level", 3i64)
            .verified(true)
            .password_hash(hash)
            .insert_instant(1_600_000_000_000),
        NewUser::with_email("bob@example.org")
            .id(Uuid::from_u128(2))
            .active(false)
            .insert_instant(1_600_000_000_001),
        NewUser::with_username("carol")
            .id(Uuid::from_u128(3))
            .expiry(1_900_000_000_000)
            .password_change_required(true)
            .insert_instant(1_600_000_000_002),
    ]
}

/// Writes `tests/fixtures/v1.redb` (run against the version that writes format 1).
#[test]
#[ignore = "regenerates the fixture; only meaningful against the format-1 version"]
fn write_v1_fixture() {
    let path = fixture("v1.redb");
    let _ = std::fs::remove_file(&path);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .expect("create fixture");
    for mut u in v1_users() {
        u.profile.preferred_languages = vec!["fr".into(), "en".into()];
        dir.create(u).expect("create user");
    }
    dir.checkpoint().expect("checkpoint");
    drop(dir);
}

/// A copy of a fixture in a fresh folder (the test writes to it).
fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join(name);
    std::fs::copy(fixture(name), &path).expect("copy fixture");
    (tmp, path)
}

#[test]
fn a_v1_file_opens_and_reads_every_user() {
    let (_tmp, path) = copy_of("v1.redb");
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .expect("open v1 file");
    dir.check_integrity().expect("integrity");
    assert_eq!(dir.count().expect("count"), 3);
    let ann = dir.find_by_login_id("ann@EXAMPLE.com").unwrap().unwrap();
    assert_eq!(ann.id, Uuid::from_u128(1));
    assert_eq!(ann.username.as_deref(), Some("Ann"));
    assert_eq!(ann.external_id.as_deref(), Some("ext-1"));
    assert_eq!(ann.first_name.as_deref(), Some("Ann"));
    assert_eq!(ann.last_name.as_deref(), Some("Smith"));
    assert_eq!(ann.full_name.as_deref(), Some("Ann B Smith"));
    assert_eq!(ann.birth_date.as_deref(), Some("1980-02-03"));
    assert_eq!(ann.preferred_languages, ["fr", "en"]);
    assert!(ann.verified);
    assert_eq!(ann.roles.len(), 2);
    assert_eq!(ann.insert_instant, 1_600_000_000_000);
    assert!(ann.password.is_some());
    let bob = dir.find_by_email("BOB@example.org").unwrap().unwrap();
    assert!(!bob.active);
    let carol = dir.find_by_username("CAROL").unwrap().unwrap();
    assert_eq!(carol.expiry, Some(1_900_000_000_000));
    assert!(carol.password_change_required);
}

/// Scans of a v1 file read its records in place (filters over the SCIM attributes the old
/// fields became), and a write upgrades a record: the file then holds both formats and
/// reads the same.
#[test]
fn a_v1_file_is_searched_and_upgraded_on_write() {
    use userdir::PatchOp;
    use userdir::query::Search;
    let (_tmp, path) = copy_of("v1.redb");
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .expect("open v1 file");
    let ids = |f: &str| -> Vec<Uuid> {
        let page = dir.search(&Search::filter(f).unwrap()).unwrap();
        page.users.iter().map(|u| u.id).collect()
    };
    // The mobile phone is the phone number of type mobile; the photo the one of type photo;
    // the email the primary (work) email; names compare caselessly.
    assert_eq!(
        ids(r#"phoneNumbers[type eq "mobile" and value sw "+1"]"#),
        [Uuid::from_u128(1)]
    );
    assert_eq!(ids(r#"photos.value co "ann.png""#), [Uuid::from_u128(1)]);
    assert_eq!(
        ids(r#"emails[type eq "work" and primary eq true and value co "example"]"#).len(),
        2
    );
    assert_eq!(ids(r#"name.familyName eq "SMITH""#), [Uuid::from_u128(1)]);
    assert_eq!(ids(r#"data.department eq "Sales""#), [Uuid::from_u128(1)]);
    let before = dir.get(Uuid::from_u128(1)).unwrap().unwrap();
    assert_eq!(before.mobile_phone(), Some("+1 555 0100"));
    assert_eq!(before.image_url(), Some("https://example.com/ann.png"));

    // A write upgrades the record (format 3) and keeps every field.
    let after = dir
        .patch(before.id, &[PatchOp::replace("title", "Engineer")], None)
        .unwrap();
    assert_eq!(after.title.as_deref(), Some("Engineer"));
    let mut expected = before.clone();
    expected.title = Some("Engineer".into());
    expected.version = after.version;
    expected.last_update_instant = after.last_update_instant;
    assert_eq!(after, expected);
    drop(dir);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .expect("reopen");
    dir.check_integrity().expect("integrity with both formats");
    assert_eq!(dir.get(before.id).unwrap().unwrap(), after);
    let bob = dir.find_by_email("bob@example.org").unwrap().unwrap();
    assert!(!bob.active);
    assert_eq!(
        dir.search(&Search::filter(r#"title eq "engineer""#).unwrap())
            .unwrap()
            .total,
        1
    );
}
