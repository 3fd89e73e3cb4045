//! Bulk import: all-or-nothing batches, every bad row reported, duplicates judged with the
//! identity rules, every field kept, progress reported.

mod common;
use common::OpenEngine;

use std::sync::{Arc, Mutex};

use common::{dir, fails_without_change};
use userdir::{
    Argon2Params, AttrValue, Clock, Directory, Error, ImportBatch, ImportReport, NewUser,
    RowProblem, RowReason, StoredHash,
};
use uuid::Uuid;

/// A cheap, valid argon2id hash (argon2-cffi, m=64 t=2 p=2) of "correct horse battery staple".
const HASH: &str = "$argon2id$v=19$m=64,t=2,p=2$dXNlcmRpci1zYWx0LTAwMA$xNszVV5zC3FO0LIKurOLbA7FPzCBoE3jAEFZbwWEcOA";

fn good(i: usize) -> NewUser {
    NewUser::with_username(format!("user{i}"))
        .email(format!("user{i}@example.com"))
        .password_hash(StoredHash::from_encoded(HASH))
}

fn refused(d: &Directory, rows: Vec<NewUser>) -> ImportReport {
    match fails_without_change(d, || d.import(ImportBatch::new(rows))) {
        Error::Import(r) => r,
        other => panic!("expected an import report, got {other}"),
    }
}

fn problem(index: usize, field: &'static str, reason: RowReason) -> RowProblem {
    RowProblem {
        index,
        field,
        reason,
    }
}

fn is_invalid(p: &RowProblem, index: usize, field: &str) -> bool {
    p.index == index && p.field == field && matches!(p.reason, RowReason::Invalid(_))
}

#[test]
fn good_batch_is_written_and_indexed() {
    let (d, _) = dir();
    let rows: Vec<NewUser> = (0..500).map(good).collect();
    let s = d.import(ImportBatch::new(rows)).unwrap();
    assert_eq!((s.imported, s.hashed, s.pre_hashed), (500, 0, 500));
    assert_eq!(d.count().unwrap(), 500);
    d.check_integrity().unwrap();
    let u = d.find_by_login_id("USER17@EXAMPLE.COM").unwrap().unwrap();
    assert_eq!(u.username.as_deref(), Some("user17"));
    assert!(
        d.hasher()
            .verify(u.password.as_ref().unwrap(), "correct horse battery staple")
            .unwrap()
    );
    // The directory works as usual afterwards.
    assert!(matches!(
        d.create(NewUser::with_username("USER3")),
        Err(Error::DuplicateUsername { .. })
    ));
    d.create(NewUser::with_username("user500")).unwrap();
    d.check_integrity().unwrap();
}

#[test]
fn empty_batch_does_nothing() {
    let (d, _) = dir();
    let before = d.dump().unwrap();
    let s = d.import(ImportBatch::new(Vec::new())).unwrap();
    assert_eq!(s.imported, 0);
    assert_eq!(d.dump().unwrap(), before);
}

#[test]
fn bad_rows_at_start_middle_and_end_are_all_reported_and_nothing_is_written() {
    let (d, _) = dir();
    d.create(NewUser::with_username("existing")).unwrap();
    let mut rows: Vec<NewUser> = (0..100).map(good).collect();
    rows[0] = NewUser::with_username("   ");
    rows[50] = good(50).email("two@@example.com");
    rows[51] = good(51).birth_date("1990-13-01");
    rows[52] = NewUser::default(); // neither username nor email
    rows[53] = good(53).password_hash(StoredHash::from_encoded("$md5$nope"));
    rows[54] = good(54).password("short");
    rows[55] = good(55)
        .password("long enough password")
        .confirm("another one");
    rows[99] = good(99).first_name("bad\u{7}name");
    let r = refused(&d, rows);
    assert_eq!(r.problems.len(), 8, "{r}");
    let expect = [
        (0, "username"),
        (50, "email"),
        (51, "birth_date"),
        (52, "username"),
        (53, "password"),
        (54, "password"),
        (55, "confirm"),
        (99, "first_name"),
    ];
    for (p, (i, f)) in r.problems.iter().zip(expect) {
        assert!(is_invalid(p, i, f), "{p} (expected row {i}, {f})");
    }
    let shown = r.to_string();
    for (i, f) in expect {
        assert!(shown.contains(&format!("row {i}, {f}:")), "{shown}");
    }
    // The policy violation is named; the password is not.
    assert!(shown.contains("shorter than 8"), "{shown}");
    assert!(
        !shown.contains("short\n") && !shown.contains("$md5$nope"),
        "{shown}"
    );
    assert_eq!(d.count().unwrap(), 1);
}

#[test]
fn one_row_can_have_several_problems() {
    let (d, _) = dir();
    let r = refused(
        &d,
        vec![
            good(0),
            NewUser::with_email("nope").password_hash(StoredHash::from_encoded("$2b$99$x")),
        ],
    );
    assert_eq!(r.problems.len(), 2, "{r}");
    assert!(is_invalid(&r.problems[0], 1, "email"));
    assert!(is_invalid(&r.problems[1], 1, "password"));
}

#[test]
fn duplicates_in_the_batch_in_other_casings() {
    let (d, _) = dir();
    let id = Uuid::new_v4();
    let rows = vec![
        NewUser::with_username("Bob"),                         // 0
        NewUser::with_email("a@x.com"),                        // 1
        NewUser::with_username("BOB"),                         // 2: username of 0
        NewUser::with_email("A@X.COM"),                        // 3: email of 1
        NewUser::with_username("a@X.com"),                     // 4: username = email of 1
        NewUser::with_username("carol").email("BOB@x.com"),    // 5: email (later username of 12)
        NewUser::with_username("straße").external_id("ext-1"), // 6
        NewUser::with_username("STRASSE"),                     // 7: caseless equal to 6
        NewUser::with_username("dave").external_id("ext-1"),   // 8: external id of 6
        NewUser::with_username("erin").id(id),                 // 9
        NewUser::with_username("frank").id(id),                // 10: id of 9
        NewUser::with_username("ｂｏｂ"),                      // 11: fullwidth bob
        NewUser::with_username("bob@X.com").email("ok@x.com"), // 12: username = email of 5
    ];
    let r = refused(&d, rows);
    let dup = |other_index| RowReason::DuplicateInBatch { other_index };
    assert_eq!(
        r.problems,
        vec![
            problem(2, "username", dup(0)),
            problem(3, "email", dup(1)),
            problem(4, "username", dup(1)),
            problem(7, "username", dup(6)),
            problem(8, "external_id", dup(6)),
            problem(10, "id", dup(9)),
            problem(11, "username", dup(0)),
            problem(12, "username", dup(5)),
        ],
        "{r}"
    );
}

#[test]
fn duplicates_of_existing_and_deactivated_users() {
    let (d, _) = dir();
    let alice = d
        .create(
            NewUser::with_username("Alice")
                .email("alice@x.com")
                .external_id("crm-1"),
        )
        .unwrap();
    let gone = d
        .create(NewUser::with_username("gone").email("gone@x.com"))
        .unwrap();
    d.deactivate(gone.id).unwrap();
    let carl = d
        .create(NewUser::with_username("carl").email("carl@x.com"))
        .unwrap();
    let rows = vec![
        good(0),
        NewUser::with_username("ALICE"),    // 1: username of alice
        NewUser::with_email("Alice@X.com"), // 2: email of alice
        NewUser::with_username("GONE"),     // 3: deactivated user's username
        NewUser::with_username("x").email("GONE@x.com"), // 4: deactivated user's email
        NewUser::with_username("CARL@x.com"), // 5: username = carl's email
        NewUser::with_username("y").external_id("crm-1"), // 6
        NewUser::with_username("z").id(alice.id), // 7
        good(8),
    ];
    let r = refused(&d, rows);
    let of = |existing| RowReason::DuplicateOfExisting { existing };
    assert_eq!(
        r.problems,
        vec![
            problem(1, "username", of(alice.id)),
            problem(2, "email", of(alice.id)),
            problem(3, "username", of(gone.id)),
            problem(4, "email", of(gone.id)),
            problem(5, "username", of(carl.id)),
            problem(6, "external_id", of(alice.id)),
            problem(7, "id", of(alice.id)),
        ],
        "{r}"
    );
    assert!(
        r.to_string()
            .contains(&format!("already taken by user {}", gone.id))
    );
}

#[test]
fn existing_duplicates_are_found_with_other_problems_and_with_plaintext() {
    let (d, _) = dir();
    let bob = d.create(NewUser::with_username("bob")).unwrap();
    // Together with an invalid row.
    let r = refused(
        &d,
        vec![NewUser::with_username("BOB"), NewUser::with_email("bad")],
    );
    assert_eq!(r.problems.len(), 2, "{r}");
    assert_eq!(
        r.problems[0],
        problem(
            0,
            "username",
            RowReason::DuplicateOfExisting { existing: bob.id }
        )
    );
    // A batch with plaintext passwords is refused before anything is hashed.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let before = d.dump().unwrap();
    let err = d
        .import(
            ImportBatch::new(vec![
                NewUser::with_username("Bob").password("long enough pw"),
                good(1).password("another long pw"),
            ])
            .on_progress(move |done, total| seen.lock().unwrap().push((done, total))),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Import(ref r) if r.problems.len() == 1),
        "{err}"
    );
    assert!(calls.lock().unwrap().is_empty(), "hashed a doomed batch");
    assert_eq!(d.dump().unwrap(), before);
}

#[test]
fn lookalikes_are_refused_in_the_batch_and_against_existing_users() {
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .refuse_lookalikes(true)
        .open_engine()
        .unwrap();
    let admin = d.create(NewUser::with_username("admin")).unwrap();
    let r = refused(
        &d,
        vec![
            NewUser::with_username("\u{0430}dmin"), // Cyrillic а: like existing admin
            NewUser::with_username("paypal"),
            NewUser::with_username("p\u{0430}yp\u{0430}l"), // like row 1
        ],
    );
    assert_eq!(r.problems.len(), 2, "{r}");
    assert!(is_invalid(&r.problems[0], 0, "username"));
    assert!(r.problems[0].to_string().contains(&admin.id.to_string()));
    assert!(is_invalid(&r.problems[1], 2, "username"), "{r}");
    assert!(r.problems[1].to_string().contains("row 1"));
    d.import(ImportBatch::new(vec![NewUser::with_username("paypal")]))
        .unwrap();
    d.check_integrity().unwrap();
}

#[test]
fn every_field_is_kept() {
    let (d, clock) = dir();
    let id = Uuid::new_v4();
    let row = NewUser::with_username("Johnny123")
        .id(id)
        .email("John@Example.com")
        .external_id("crm-7")
        .first_name("John")
        .middle_name("William")
        .last_name("Doe")
        .full_name("John Doe")
        .nick_name("JD")
        .birth_date("1976-05-30")
        .mobile_phone("303-555-1234")
        .image_url("http://example.com/jd.png")
        .timezone("America/Denver")
        .role("admin")
        .role("moderator")
        .data("displayName", "Johnny Boy")
        .data(
            "favoriteColors",
            AttrValue::Array(vec!["Red".into(), "Blue".into()]),
        )
        .active(false)
        .verified(true)
        .password_change_required(true)
        .expiry(1_871_786_483_322)
        .insert_instant(1_331_449_200_000)
        .password_hash(StoredHash::from_encoded(HASH));
    let mut row = row;
    row.profile.preferred_languages = vec!["en".into(), "fr".into()];
    row.last_login_instant = Some(1_500_000_000_000);
    row.password_last_update_instant = Some(1_400_000_000_000);
    let second = NewUser::with_email("no-instants@example.com").password("plain but long");
    d.import(ImportBatch::new(vec![row, second])).unwrap();

    let u = d.get(id).unwrap().unwrap();
    assert_eq!(u.username.as_deref(), Some("Johnny123"));
    assert_eq!(u.email.as_deref(), Some("john@example.com"));
    assert_eq!(u.external_id.as_deref(), Some("crm-7"));
    assert_eq!(
        (
            u.first_name.as_deref(),
            u.middle_name.as_deref(),
            u.last_name.as_deref()
        ),
        (Some("John"), Some("William"), Some("Doe"))
    );
    assert_eq!(u.full_name.as_deref(), Some("John Doe"));
    assert_eq!(u.nick_name.as_deref(), Some("JD"));
    assert_eq!(u.birth_date.as_deref(), Some("1976-05-30"));
    assert_eq!(u.mobile_phone(), Some("303-555-1234"));
    assert_eq!(u.image_url(), Some("http://example.com/jd.png"));
    assert_eq!(u.timezone.as_deref(), Some("America/Denver"));
    assert_eq!(u.preferred_languages, vec!["en", "fr"]);
    assert_eq!(
        u.roles.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["admin", "moderator"]
    );
    assert_eq!(
        u.data["displayName"],
        AttrValue::String("Johnny Boy".into())
    );
    assert_eq!(
        u.data["favoriteColors"],
        AttrValue::Array(vec!["Red".into(), "Blue".into()])
    );
    assert!(!u.active && u.verified && u.password_change_required);
    assert_eq!(u.expiry, Some(1_871_786_483_322));
    assert_eq!(u.insert_instant, 1_331_449_200_000);
    assert_eq!(u.last_login_instant, Some(1_500_000_000_000));
    assert_eq!(u.password_last_update_instant, Some(1_400_000_000_000));
    assert_eq!(u.last_update_instant, clock.now());
    assert_eq!(u.version, 1);
    assert_eq!(u.password.as_ref().map(StoredHash::expose), Some(HASH));
    assert_eq!(d.role_members_for_test("moderator"), vec![id]);

    let v = d.find_by_email("NO-INSTANTS@example.com").unwrap().unwrap();
    assert_eq!(v.insert_instant, clock.now());
    assert_eq!(v.password_last_update_instant, Some(clock.now()));
    assert!(v.active);
    assert!(
        d.hasher()
            .verify(v.password.as_ref().unwrap(), "plain but long")
            .unwrap()
    );
    assert!(!d.hasher().needs_rehash(v.password.as_ref().unwrap()));
    d.check_integrity().unwrap();
}

/// A crate-external way to list a role's members: a search by role.
trait RoleMembers {
    fn role_members_for_test(&self, role: &str) -> Vec<Uuid>;
}

impl RoleMembers for Directory {
    fn role_members_for_test(&self, role: &str) -> Vec<Uuid> {
        let search = userdir::Search::filter(&format!("roles eq \"{role}\"")).unwrap();
        self.search(&search)
            .unwrap()
            .users
            .iter()
            .map(|u| u.id)
            .collect()
    }
}

#[test]
fn legacy_hashes_import_and_verify() {
    let (d, _) = dir();
    let fa = StoredHash::fusionauth_pbkdf2(
        "ZmEtc2FsdC0wLTAxMjM0NTY3ODlhYmNkZWY=",
        24000,
        "98CUhx4MRZV62JJJH6mn90fEWS61FUKJEB/atLyR4z4=",
    )
    .unwrap();
    let rows = vec![
        NewUser::with_username("fa").password_hash(fa),
        NewUser::with_username("bc").password_hash(StoredHash::from_encoded(
            "$2b$05$userdirsaltsalt000abce2gD2t1gfexGuIPLWqaxSw/oQNpga9qG",
        )),
        NewUser::with_username("pl").password_hash(StoredHash::from_encoded(
            "$pbkdf2-sha256$1000$dXNlcmRpci1zYWx0LTAwMA$5SZQ7k.cPdaWtkQCWO5Xzxb5OZ9UBmWd2KoYz.Y.9Gc",
        )),
    ];
    d.import(ImportBatch::new(rows)).unwrap();
    for name in ["fa", "bc", "pl"] {
        let u = d.find_by_username(name).unwrap().unwrap();
        let h = u.password.as_ref().unwrap();
        assert!(
            d.hasher()
                .verify(h, "correct horse battery staple")
                .unwrap(),
            "{name}"
        );
        assert!(!d.hasher().verify(h, "nope").unwrap(), "{name}");
        assert!(d.hasher().needs_rehash(h));
    }
}

#[test]
fn progress_reports_every_hash_up_to_the_total() {
    let (d, _) = dir();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let mut rows: Vec<NewUser> = (0..40)
        .map(|i| NewUser::with_username(format!("p{i}")).password(format!("password number {i}")))
        .collect();
    rows.extend((100..110).map(good));
    let s = d
        .import(
            ImportBatch::new(rows)
                .on_progress(move |done, total| seen.lock().unwrap().push((done, total))),
        )
        .unwrap();
    assert_eq!((s.imported, s.hashed, s.pre_hashed), (50, 40, 10));
    let mut calls = calls.lock().unwrap().clone();
    assert!(calls.iter().all(|&(_, total)| total == 40));
    assert_eq!(calls.first(), Some(&(0, 40)));
    calls.sort_unstable();
    assert_eq!(calls, (0..=40).map(|i| (i, 40)).collect::<Vec<_>>());
    for i in [0, 39] {
        let u = d.find_by_username(&format!("P{i}")).unwrap().unwrap();
        assert!(
            d.hasher()
                .verify(
                    u.password.as_ref().unwrap(),
                    &format!("password number {i}")
                )
                .unwrap()
        );
    }
    d.check_integrity().unwrap();
}

#[test]
fn a_second_batch_against_the_first() {
    let (d, _) = dir();
    d.import(ImportBatch::new((0..300).map(good).collect()))
        .unwrap();
    let before = d.dump().unwrap();
    // Same users again: every row clashes on username and email; one problem per field.
    let r = refused(&d, (0..300).map(good).collect());
    assert_eq!(r.problems.len(), 600);
    assert_eq!(d.dump().unwrap(), before);
    // Fresh users go in.
    d.import(ImportBatch::new((300..600).map(good).collect()))
        .unwrap();
    assert_eq!(d.count().unwrap(), 600);
    d.check_integrity().unwrap();
}

#[test]
fn file_backed_import_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    {
        let d = Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .open(&path)
            .unwrap();
        d.import(ImportBatch::new((0..1000).map(good).collect()))
            .unwrap();
    }
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .unwrap();
    assert_eq!(d.count().unwrap(), 1000);
    assert!(d.find_by_username("USER999").unwrap().is_some());
    d.check_integrity().unwrap();
}

#[test]
fn a_dry_run_reports_like_an_import_and_writes_nothing() {
    let (d, _) = dir();
    d.create(NewUser::with_username("taken")).unwrap();
    let before = d.dump().unwrap();
    let rows = vec![
        good(1),
        NewUser::with_username("ann").password("correct horse battery"),
    ];
    let s = d.import(ImportBatch::new(rows).dry_run(true)).unwrap();
    assert_eq!((s.imported, s.hashed, s.pre_hashed), (2, 1, 1));
    assert_eq!(d.dump().unwrap(), before, "a dry run wrote");

    // Only pre-hashed rows (no check against existing users in a real import's first pass)
    // still meet the existing users.
    let rows = vec![good(2), good(3).username("TAKEN")];
    let Err(Error::Import(r)) = d.import(ImportBatch::new(rows).dry_run(true)) else {
        panic!("the taken username should be reported")
    };
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].index, 1);
    assert!(matches!(
        r.problems[0].reason,
        RowReason::DuplicateOfExisting { .. }
    ));
    assert_eq!(d.dump().unwrap(), before);
}
