//! Every single-user operation of the core engine, and the one-transaction discipline.

mod common;
use common::OpenEngine;

use common::{dir, fails_without_change};
use userdir::{
    Argon2Params, AttrValue, Directory, Error, ManualClock, NewUser, PasswordPolicy,
    PolicyViolation, UserUpdate,
};
use uuid::Uuid;

#[test]
fn create_and_get_every_field() {
    let (d, clock) = dir();
    let id = Uuid::new_v4();
    let u = d
        .create(
            NewUser::with_username("Johnny123")
                .id(id)
                .email("John@Example.com")
                .external_id("crm-7")
                .first_name("John")
                .last_name("Smith")
                .full_name("John Smith")
                .birth_date("1990-02-28")
                .role("admin")
                .role("dev")
                .data("color", "blue")
                .data("n", AttrValue::Int(3))
                .verified(true)
                .password("correct horse battery")
                .confirm("correct horse battery"),
        )
        .unwrap();
    assert_eq!(u.id, id);
    assert_eq!(u.email.as_deref(), Some("john@example.com"));
    assert_eq!(u.insert_instant, clock.now());
    assert_eq!(u.version, 1);
    assert!(u.active && u.verified);
    assert!(
        u.password
            .as_ref()
            .unwrap()
            .expose()
            .starts_with("$argon2id$")
    );
    assert_eq!(d.get(id).unwrap().unwrap(), u);
    assert_eq!(d.find_by_username("JOHNNY123").unwrap().unwrap().id, id);
    assert_eq!(d.find_by_email("john@EXAMPLE.com").unwrap().unwrap().id, id);
    assert_eq!(d.find_by_login_id("johnny123").unwrap().unwrap().id, id);
    assert_eq!(
        d.find_by_login_id("JOHN@example.com").unwrap().unwrap().id,
        id
    );
    assert_eq!(d.find_by_external_id("crm-7").unwrap().unwrap().id, id);
    // A username is not an email and vice versa.
    assert!(d.find_by_email("johnny123").unwrap().is_none());
    assert!(d.find_by_username("john@example.com").unwrap().is_none());
    assert_eq!(d.count().unwrap(), 1);
    d.check_integrity().unwrap();
}

use userdir::Clock;

#[test]
fn random_ids_are_distinct_v4() {
    let (d, _) = dir();
    let a = d.create(NewUser::with_username("a")).unwrap();
    let b = d.create(NewUser::with_username("b")).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.get_version_num(), 4);
}

#[test]
fn duplicate_id_is_its_own_error() {
    let (d, _) = dir();
    let a = d.create(NewUser::with_username("a")).unwrap();
    let err = fails_without_change(&d, || d.create(NewUser::with_username("b").id(a.id)));
    assert!(matches!(err, Error::DuplicateId(id) if id == a.id));
}

#[test]
fn confirmation_must_match() {
    let (d, _) = dir();
    let err = fails_without_change(&d, || {
        d.create(
            NewUser::with_username("a")
                .password("password-one")
                .confirm("password-two"),
        )
    });
    assert!(matches!(err, Error::PasswordMismatch));
}

#[test]
fn policy_reports_every_violation_at_once() {
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .password_policy(
            PasswordPolicy::default()
                .min_length(10)
                .require_uppercase(true)
                .require_digit(true)
                .require_symbol(true)
                .breached(|p: &str| p == "short"),
        )
        .open_engine()
        .unwrap();
    let err = fails_without_change(&d, || {
        d.create(NewUser::with_username("a").password("short"))
    });
    let Error::PasswordPolicy(v) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        v,
        vec![
            PolicyViolation::TooShort { min: 10 },
            PolicyViolation::MissingUppercase,
            PolicyViolation::MissingDigit,
            PolicyViolation::MissingSymbol,
            PolicyViolation::Breached,
        ]
    );
    let err = fails_without_change(&d, || {
        d.create(NewUser::with_username("Bob-Smith-1!").password("bob-smith-1!"))
    });
    assert!(matches!(err, Error::PasswordPolicy(v) if v.contains(&PolicyViolation::SameAsLoginId)));
}

#[test]
fn errors_and_debug_never_show_secrets() {
    let (d, _) = dir();
    let u = d
        .create(NewUser::with_username("a").password("s3cret-password"))
        .unwrap();
    let hash = u.password.clone().unwrap();
    let dbg = format!("{u:?}");
    assert!(!dbg.contains(hash.expose()) && !dbg.contains("s3cret"));
    let new = NewUser::with_username("b")
        .password("s3cret-password")
        .confirm("other-s3cret");
    assert!(!format!("{new:?}").contains("s3cret"));
    let err = d.create(new).unwrap_err();
    assert!(!err.to_string().contains("s3cret") && !format!("{err:?}").contains("s3cret"));
    let dump = format!("{:?}", d.dump().unwrap());
    assert!(!dump.contains(hash.expose()));
}

#[test]
fn update_replaces_keeps_password_and_reindexes() {
    let (d, clock) = dir();
    let u = d
        .create(
            NewUser::with_username("old")
                .email("old@example.com")
                .role("a")
                .password("password-1"),
        )
        .unwrap();
    clock.advance(1000);
    let mut up = UserUpdate::from(&u);
    up.profile.username = Some("New".into());
    up.profile.email = Some("NEW@example.com".into());
    up.profile.roles = ["b".to_string()].into();
    let v2 = d.update(u.id, up, Some(1)).unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.password, u.password);
    assert_eq!(v2.last_update_instant, u.last_update_instant + 1000);
    assert_eq!(v2.insert_instant, u.insert_instant);
    assert!(d.find_by_username("old").unwrap().is_none());
    assert!(d.find_by_email("old@example.com").unwrap().is_none());
    assert_eq!(d.find_by_username("new").unwrap().unwrap().id, u.id);
    assert_eq!(
        d.find_by_email("new@example.com").unwrap().unwrap().id,
        u.id
    );
    d.check_integrity().unwrap();
    // The old names are free again.
    d.create(NewUser::with_username("OLD").email("old@example.com"))
        .unwrap();

    // Stale version: conflict, nothing changes.
    let err = fails_without_change(&d, || d.update(u.id, UserUpdate::from(&u), Some(1)));
    assert!(matches!(
        err,
        Error::VersionConflict {
            expected: 1,
            actual: 2
        }
    ));

    // A new password replaces the hash.
    let mut up = UserUpdate::from(&v2);
    up.password = Some("another-password".into());
    let v3 = d.update(u.id, up, None).unwrap();
    assert_ne!(v3.password, v2.password);
    assert_eq!(v3.password_last_update_instant, Some(clock.now()));
}

#[test]
fn update_into_taken_names_changes_nothing() {
    let (d, _) = dir();
    let a = d
        .create(NewUser::with_username("a").email("a@example.com"))
        .unwrap();
    let b = d
        .create(NewUser::with_username("b").email("b@example.com"))
        .unwrap();
    let mut up = UserUpdate::from(&b);
    up.profile.username = Some("A".into());
    let err = fails_without_change(&d, || d.update(b.id, up, None));
    assert!(matches!(err, Error::DuplicateUsername { existing } if existing == a.id));
    let mut up = UserUpdate::from(&b);
    up.profile.email = Some("A@example.com".into());
    let err = fails_without_change(&d, || d.update(b.id, up, None));
    assert!(matches!(err, Error::DuplicateEmail { existing } if existing == a.id));
    let err = fails_without_change(&d, || d.update(Uuid::new_v4(), UserUpdate::from(&b), None));
    assert!(matches!(err, Error::NotFound(_)));
    // Swapping case of one's own username is fine.
    let mut up = UserUpdate::from(&b);
    up.profile.username = Some("B".into());
    assert_eq!(
        d.update(b.id, up, None).unwrap().username.as_deref(),
        Some("B")
    );
}

#[test]
fn deactivate_reactivate_delete() {
    let (d, _) = dir();
    let a = d.create(NewUser::with_username("a")).unwrap();
    let x = d.deactivate(a.id).unwrap();
    assert!(!x.active);
    assert_eq!(x.version, 2);
    // Idempotent: no new version.
    assert_eq!(d.deactivate(a.id).unwrap().version, 2);
    assert!(
        d.find_by_username("a").unwrap().is_some(),
        "soft-deleted users stay findable"
    );
    assert!(d.reactivate(a.id).unwrap().active);
    let gone = d.delete(a.id).unwrap();
    assert_eq!(gone.id, a.id);
    assert!(d.get(a.id).unwrap().is_none());
    assert!(d.find_by_username("a").unwrap().is_none());
    let err = fails_without_change(&d, || d.delete(a.id));
    assert!(matches!(err, Error::NotFound(id) if id == a.id));
    let err = fails_without_change(&d, || d.deactivate(a.id));
    assert!(matches!(err, Error::NotFound(_)));
    let err = fails_without_change(&d, || d.reactivate(a.id));
    assert!(matches!(err, Error::NotFound(_)));
    assert_eq!(
        d.dump().unwrap(),
        vec![],
        "hard delete leaves no index entry"
    );
}

#[test]
fn bulk_operations_are_all_or_nothing() {
    let (d, _) = dir();
    let ids: Vec<Uuid> = (0..5)
        .map(|i| {
            d.create(NewUser::with_username(format!("u{i}")).role("r"))
                .unwrap()
                .id
        })
        .collect();
    let unknown = Uuid::new_v4();
    let mut with_unknown = ids.clone();
    with_unknown.insert(2, unknown);
    let err = fails_without_change(&d, || d.deactivate_many(&with_unknown));
    assert!(matches!(err, Error::NotFound(id) if id == unknown));
    let err = fails_without_change(&d, || d.delete_many(&with_unknown));
    assert!(matches!(err, Error::NotFound(id) if id == unknown));
    assert_eq!(d.deactivate_many(&ids[..3]).unwrap(), 3);
    assert_eq!(d.deactivate_many(&ids).unwrap(), 2);
    assert_eq!(d.delete_many(&ids[1..]).unwrap(), 4);
    assert_eq!(d.count().unwrap(), 1);
    d.check_integrity().unwrap();
}

#[test]
fn resolve_order_id_username_email_external() {
    let (d, _) = dir();
    let by_ext = d
        .create(NewUser::with_username("x").external_id("shared"))
        .unwrap();
    let by_name = d.create(NewUser::with_username("Shared")).unwrap();
    let by_mail = d
        .create(NewUser::with_email("m@example.com").external_id("m@example.com"))
        .unwrap();
    assert_eq!(
        d.resolve(&by_ext.id.to_string()).unwrap().unwrap().id,
        by_ext.id
    );
    assert_eq!(d.resolve("shared").unwrap().unwrap().id, by_name.id);
    assert_eq!(d.resolve("M@example.com").unwrap().unwrap().id, by_mail.id);
    d.delete(by_name.id).unwrap();
    assert_eq!(d.resolve("shared").unwrap().unwrap().id, by_ext.id);
    assert!(d.resolve("nobody").unwrap().is_none());
    assert!(d.resolve(&Uuid::new_v4().to_string()).unwrap().is_none());
}

#[test]
fn write_transaction_commits_together_or_not_at_all() {
    let (d, _) = dir();
    let a = d.create(NewUser::with_username("a")).unwrap();
    let p = d
        .prepare(NewUser::with_username("b").password("password-b"))
        .unwrap();
    let before = d.dump().unwrap();
    let err = d
        .write(|tx| {
            tx.deactivate(a.id)?;
            tx.create(p.clone())?;
            tx.create(d.prepare(NewUser::with_username("A"))?)?; // duplicate: whole tx fails
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateUsername { .. }));
    assert_eq!(d.dump().unwrap(), before);

    // A failed operation inside a transaction that goes on leaves no partial change.
    d.write(|tx| {
        let c = tx.create(d.prepare(NewUser::with_username("c").role("r"))?)?;
        let mut up = userdir::UserUpdate::from(&c);
        up.profile.username = Some("A".into());
        let err = tx.update(c.id, d.prepare_update(up)?, None).unwrap_err();
        assert!(matches!(err, Error::DuplicateUsername { .. }));
        assert_eq!(tx.find_by_username("c")?.unwrap().id, c.id);
        tx.create(p)?;
        Ok(())
    })
    .unwrap();
    assert!(d.find_by_username("b").unwrap().is_some());
    assert!(d.find_by_username("c").unwrap().is_some());
    d.check_integrity().unwrap();
}

#[test]
fn read_is_a_snapshot() {
    let (d, _) = dir();
    d.create(NewUser::with_username("a")).unwrap();
    d.read(|tx| {
        assert_eq!(tx.count()?, 1);
        d.create(NewUser::with_username("b")).unwrap();
        assert_eq!(tx.count()?, 1);
        assert!(tx.find_by_username("b")?.is_none());
        Ok(())
    })
    .unwrap();
    assert_eq!(d.count().unwrap(), 2);
}

#[test]
fn data_survives_close_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let clock = ManualClock::new(5);
    let open = || {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .clock(clock.clone())
            .open(&path)
            .unwrap()
    };
    let d = open();
    let a = d
        .create(
            NewUser::with_username("Ann")
                .email("ann@example.com")
                .password("password-ann")
                .data("k", AttrValue::Array(vec![AttrValue::Null, 1.5.into()])),
        )
        .unwrap();
    let b = d.create(NewUser::with_username("Ben")).unwrap();
    d.deactivate(b.id).unwrap();
    drop(d);
    let d = open();
    assert_eq!(d.get(a.id).unwrap().unwrap(), a);
    assert!(!d.find_by_username("BEN").unwrap().unwrap().active);
    assert_eq!(d.count().unwrap(), 2);
    d.check_integrity().unwrap();
}

#[test]
fn not_a_directory_and_newer_format_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.redb");
    std::fs::write(
        &junk,
        b"this is not a database at all, just some text".repeat(100),
    )
    .unwrap();
    let err = Directory::open(&junk).unwrap_err();
    assert!(matches!(err, Error::NotAUserdirFile(_)), "{err:?}");

    // A redb file of something else.
    let other = tmp.path().join("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let t: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("stuff");
            tx.open_table(t).unwrap().insert(1, 2).unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(matches!(
        Directory::open(&other).unwrap_err(),
        Error::NotAUserdirFile(_)
    ));

    // A userdir file from a newer format.
    let newer = tmp.path().join("newer.redb");
    drop(Directory::open(&newer).unwrap());
    {
        let db = redb::Database::open(&newer).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let t: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            tx.open_table(t).unwrap().insert("format", 99).unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(matches!(
        Directory::open(&newer).unwrap_err(),
        Error::UnsupportedFormat {
            found: 99,
            supported: 3
        }
    ));
}

#[test]
fn second_open_of_same_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("u.redb");
    let _d = Directory::open(&path).unwrap();
    assert!(matches!(
        Directory::open(&path).unwrap_err(),
        Error::AlreadyOpen
    ));
}

#[test]
fn record_decoder_rejects_garbage() {
    for bytes in [
        &b""[..],
        &[0],
        &[1],
        &[1, 255, 255, 255],
        &[2, 0, 0],
        &[1; 64],
    ] {
        assert!(userdir::test_hooks::fuzz_decode(bytes).is_err());
    }
}

#[test]
fn indexes_are_rebuilt_when_the_unicode_version_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("u.redb");
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open(&path)
        .unwrap();
    let a = d
        .create(NewUser::with_username("Straße").email("a@example.com"))
        .unwrap();
    drop(d);
    // Simulate a file indexed under another Unicode version, with stale keys.
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            tx.open_table(meta).unwrap().insert("unicode", 1).unwrap();
            let logins: redb::TableDefinition<&str, (u128, u8)> =
                redb::TableDefinition::new("logins");
            let mut t = tx.open_table(logins).unwrap();
            t.remove("strasse").unwrap();
            t.insert("stale-key", (a.id.as_u128(), 1)).unwrap();
        }
        tx.commit().unwrap();
    }
    let d = Directory::open(&path).unwrap();
    d.check_integrity().unwrap();
    assert_eq!(d.find_by_username("STRASSE").unwrap().unwrap().id, a.id);
    assert!(d.find_by_username("stale-key").unwrap().is_none());
}
