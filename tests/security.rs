//! Security findings of issue 15, one test each: no hash or password text in any output, a
//! login never changes which passwords are accepted, peppered directories and imported hashes,
//! one deactivation path for tokens.

use userdir::{
    Argon2Params, Directory, Error, ImportBatch, ManualClock, NewUser, PatchOp, StoredHash,
};

const T0: i64 = 1_700_000_000_000;

fn dir() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(T0))
        .in_memory()
        .unwrap()
}

fn peppered() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .pepper(b"a pepper kept out of the file".to_vec())
        .clock(ManualClock::new(T0))
        .in_memory()
        .unwrap()
}

#[test]
fn scheme_names_come_from_a_fixed_list() {
    for (text, scheme) in [
        ("$uperSecretDollarPw", "unknown"),
        ("$uperSecret$DollarPw", "unknown"),
        ("no dollar at all", "unknown"),
        (
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "argon2id",
        ),
        ("$2b$04$abcdefghijklmnopqrstuv", "2b"),
        ("$pbkdf2-sha256$i=1000$YWJj$YWJj", "pbkdf2-sha256"),
        ("$fa-pbkdf2-sha256$i=1$$YWJj", "fa-pbkdf2-sha256"),
    ] {
        let h = StoredHash::from_encoded(text);
        assert_eq!(h.scheme(), scheme, "{text}");
        assert!(StoredHash::SCHEMES.contains(&h.scheme()) || h.scheme() == "unknown");
        let debug = format!("{h:?}");
        assert!(!debug.contains("uperSecret"), "{debug}");
    }
}

#[test]
fn an_unsupported_hash_is_never_echoed() {
    let d = dir();
    let err = d
        .create(
            NewUser::with_username("ann")
                .password_hash(StoredHash::from_encoded("$uperSecretDollarPw")),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidHash(_)));
    let text = format!("{err} {err:?}");
    assert!(!text.contains("uperSecret"), "{text}");
    let err = d
        .import(ImportBatch::new(vec![
            NewUser::with_username("bob")
                .password_hash(StoredHash::from_encoded("$uperSecretDollarPw")),
        ]))
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("uperSecret"), "{text}");
}

/// bcrypt only reads 72 bytes: a login with a typo after byte 72 matches, and must not store
/// an argon2id hash of the typo (the real password would be refused from then on).
#[test]
fn bcrypt_truncation_never_decides_a_rehash() {
    let d = dir();
    let real = format!("{}-the-real-end", "x".repeat(72));
    let typo = format!("{}-a-typo-here", "x".repeat(72));
    let h = bcrypt::hash(&real, 4).unwrap();
    d.create(NewUser::with_username("long").password_hash(StoredHash::from_encoded(h)))
        .unwrap();
    let login = d.authenticate("long", &typo).unwrap();
    assert!(!login.rehashed);
    assert!(
        d.authenticate("long", &real).is_ok(),
        "the real password still works"
    );
    // A short password decides the match by itself: rehashed as before.
    let h = bcrypt::hash("short password", 4).unwrap();
    d.create(NewUser::with_username("short").password_hash(StoredHash::from_encoded(h)))
        .unwrap();
    assert!(d.authenticate("short", "short password").unwrap().rehashed);
    assert!(d.authenticate("short", "short password").is_ok());
}

#[test]
fn peppered_directories_refuse_foreign_argon2_hashes_and_take_the_others() {
    let plain = dir();
    let foreign = plain.hash_password("correct horse").unwrap();
    // Unpeppered directory: the argon2 hash imports and verifies.
    plain
        .import(ImportBatch::new(vec![
            NewUser::with_username("ann").password_hash(foreign.clone()),
        ]))
        .unwrap();
    assert!(plain.authenticate("ann", "correct horse").is_ok());

    // Peppered directory: refused at import and at create, with a message naming the pepper.
    let pd = peppered();
    let err = pd
        .import(ImportBatch::new(vec![
            NewUser::with_username("ann").password_hash(StoredHash::from_encoded(foreign.expose())),
        ]))
        .unwrap_err();
    let Error::Import(report) = &err else {
        panic!("{err}")
    };
    assert_eq!(report.problems[0].field, "password");
    assert!(report.problems[0].to_string().contains("pepper"), "{err}");
    assert!(matches!(
        pd.create(NewUser::with_username("ann").password_hash(foreign.clone())),
        Err(Error::InvalidHash(m)) if m.contains("pepper")
    ));
    assert_eq!(pd.count().unwrap(), 0);

    // bcrypt and PBKDF2 do not use the pepper: imported, verified, rehashed with the pepper.
    let b = bcrypt::hash("bcrypt password", 4).unwrap();
    pd.import(ImportBatch::new(vec![
        NewUser::with_username("bee").password_hash(StoredHash::from_encoded(b)),
    ]))
    .unwrap();
    assert!(pd.authenticate("bee", "bcrypt password").unwrap().rehashed);
    assert!(pd.authenticate("bee", "bcrypt password").is_ok());

    // Hashes made by the peppered directory itself, or declared as made with its pepper.
    let own = pd.hash_password("own password").unwrap();
    pd.create(NewUser::with_username("own").password_hash(own.clone()))
        .unwrap();
    assert!(pd.authenticate("own", "own password").is_ok());
    pd.import(
        ImportBatch::new(vec![
            NewUser::with_username("moved").password_hash(StoredHash::from_encoded(own.expose())),
        ])
        .hashes_made_with_pepper(),
    )
    .unwrap();
    assert!(pd.authenticate("moved", "own password").is_ok());
}

fn with_tokens(d: &Directory, name: &str) -> uuid::Uuid {
    let u = d
        .create(
            NewUser::with_username(name)
                .email(format!("{name}@example.com"))
                .password("correct horse"),
        )
        .unwrap();
    d.start_password_reset(name).unwrap();
    d.start_email_verification(u.id).unwrap();
    assert_eq!(d.outstanding_tokens(u.id).unwrap(), 2);
    u.id
}

/// Every way of deactivating a user revokes its tokens: a reset link issued before does not
/// come back to life on reactivation.
#[test]
fn every_deactivation_revokes_tokens() {
    let d = dir();
    // patch active=false
    let id = with_tokens(&d, "patched");
    let token = d.start_password_reset("patched").unwrap();
    d.patch(id, &[PatchOp::replace("active", false)], None)
        .unwrap();
    assert_eq!(d.outstanding_tokens(id).unwrap(), 0);
    d.reactivate(id).unwrap();
    assert!(matches!(
        d.reset_password(&token, "a new secret"),
        Err(Error::InvalidToken)
    ));

    // deactivate
    let id = with_tokens(&d, "single");
    d.deactivate(id).unwrap();
    assert_eq!(d.outstanding_tokens(id).unwrap(), 0);

    // deactivate_many
    let a = with_tokens(&d, "many-a");
    let b = with_tokens(&d, "many-b");
    assert_eq!(d.deactivate_many(&[a, b]).unwrap(), 2);
    assert_eq!(
        d.outstanding_tokens(a).unwrap() + d.outstanding_tokens(b).unwrap(),
        0
    );

    // a transaction that deactivates through a patch
    let id = with_tokens(&d, "in-tx");
    d.write(|tx| {
        tx.patch(id, &[PatchOp::replace("active", false)], None)
            .map(|_| ())
    })
    .unwrap();
    assert_eq!(d.outstanding_tokens(id).unwrap(), 0);

    // update keeps `active` (it is not a profile field): tokens stay with an active user
    let id = with_tokens(&d, "updated");
    let u = d.get(id).unwrap().unwrap();
    d.update(id, userdir::UserUpdate::from(&u), None).unwrap();
    assert!(d.get(id).unwrap().unwrap().active);

    // import of an inactive row: no token can be issued for it
    let s = d
        .import(ImportBatch::new(vec![
            NewUser::with_username("imported-inactive")
                .email("ii@example.com")
                .active(false),
        ]))
        .unwrap();
    assert_eq!(s.imported, 1);
    let u = d.find_by_username("imported-inactive").unwrap().unwrap();
    assert_eq!(d.outstanding_tokens(u.id).unwrap(), 0);
    assert!(matches!(
        d.start_password_reset("imported-inactive"),
        Err(Error::AccountInactive)
    ));
    assert!(matches!(
        d.start_email_verification(u.id),
        Err(Error::AccountInactive)
    ));
}

/// Answers and writes do not tell an unknown login id from a wrong password: unknown ids are
/// counted and lock after the same number of failures, with the same error, and each failure
/// changes exactly one failed-login row in both cases.
#[test]
fn unknown_login_ids_lock_and_write_like_accounts() {
    let d = dir();
    d.create(NewUser::with_username("ann").password("correct horse"))
        .unwrap();
    let answers = |login: &str| -> Vec<String> {
        (0..7)
            .map(|_| match d.authenticate(login, "wrong password") {
                Err(Error::AccountLocked { until }) => format!("locked until {until}"),
                Err(e) => e.to_string(),
                Ok(_) => "ok".into(),
            })
            .collect()
    };
    let known = answers("ann");
    let unknown = answers("nobody");
    assert_eq!(known, unknown);
    assert!(known[4].starts_with("locked"), "{known:?}");
    // Another spelling of the same unknown id is the same login key.
    assert!(matches!(
        d.authenticate(" NOBODY ", "x"),
        Err(Error::AccountLocked { .. })
    ));

    // Writes: each failure changes one row, known or unknown.
    let changed = |login: &str| {
        let before = d.dump().unwrap();
        let _ = d.authenticate(login, "wrong password");
        let after = d.dump().unwrap();
        let b: std::collections::BTreeSet<_> = before.into_iter().collect();
        let a: std::collections::BTreeSet<_> = after.into_iter().collect();
        (a.difference(&b).count(), b.difference(&a).count())
    };
    d.create(NewUser::with_username("bob").password("correct horse"))
        .unwrap();
    assert_eq!(
        changed("bob"),
        (1, 0),
        "first failure of an account: one row added"
    );
    assert_eq!(
        changed("carol"),
        (1, 0),
        "first failure of an unknown id: one row added"
    );
    assert_eq!(changed("bob"), (1, 1), "next failure: the row changes");
    assert_eq!(changed("carol"), (1, 1));
    // A locked id, known or unknown, writes nothing.
    assert_eq!(changed("ann"), (0, 0));
    assert_eq!(changed("nobody"), (0, 0));
    d.check_integrity().unwrap();
}

/// Stale rows of unknown login ids are forgotten as failures of other ids sweep past them.
#[test]
fn rows_of_unknown_login_ids_do_not_pile_up() {
    let clock = ManualClock::new(T0);
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .in_memory()
        .unwrap();
    let rows = |d: &Directory| {
        d.dump()
            .unwrap()
            .into_iter()
            .filter(|(_, k, _)| k.starts_with("F:"))
            .count()
    };
    for i in 0..200 {
        let _ = d.authenticate(&format!("sprayed-{i}"), "wrong password");
    }
    assert_eq!(rows(&d), 200);
    clock.advance(60 * 60 * 1000);
    for i in 0..200 {
        let _ = d.authenticate(&format!("later-{i}"), "wrong password");
    }
    assert!(rows(&d) < 300, "stale rows purged: {} left", rows(&d));
}

/// Dates and instants go through `jiff`: impossible dates are refused, offsets honoured, and
/// instants no date can show are refused at import.
#[test]
fn dates_and_instants_are_checked() {
    use userdir::json::{self, Format};
    let d = dir();
    for bad in [
        "2023-02-31",
        "2023-02-29",
        "2023-13-01",
        "2023-1-01",
        "20230101xx",
    ] {
        let err = d
            .create(NewUser::with_username("ann").birth_date(bad))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidField {
                    field: "birth_date",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    d.create(NewUser::with_username("leap").birth_date("2024-02-29"))
        .unwrap();

    // SCIM meta.created: impossible dates refused, offsets honoured.
    let scim = |created: &str| {
        json::read(
            Format::Scim,
            &format!(
                r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","meta":{{"created":"{created}"}}}}"#
            ),
        )
    };
    assert!(scim("2023-02-31T00:00:00Z").is_err());
    assert!(scim("2023-02-29T00:00:00Z").is_err());
    let rows = scim("2000-01-01T01:30:00+01:30").unwrap();
    assert_eq!(rows[0].insert_instant, Some(946_684_800_000));

    // FusionAuth instants out of any date's range: refused at import, nothing written.
    for field in ["insertInstant", "lastLoginInstant", "expiry"] {
        let rows = json::read(
            Format::FusionAuth,
            &format!(
                r#"{{"users":[{{"username":"far","active":true,"{field}":9223372036854775807}}]}}"#
            ),
        )
        .unwrap();
        let err = d.import(ImportBatch::new(rows)).unwrap_err();
        assert!(
            err.to_string().contains("outside the years"),
            "{field}: {err}"
        );
    }
    assert!(d.find_by_username("far").unwrap().is_none());
    assert_eq!(
        json::format_rfc3339(946_684_800_000),
        "2000-01-01T00:00:00.000Z"
    );
}

/// A plaintext password that is plainly a hash is refused, naming `encryptionScheme`.
#[test]
fn a_hash_given_as_plaintext_is_refused() {
    use userdir::json::{self, Format};
    let d = dir();
    let bcrypt_hash = bcrypt::hash("correct horse", 4).unwrap();
    let argon = d.hash_password("correct horse").unwrap();
    for h in [bcrypt_hash.as_str(), argon.expose()] {
        let rows = json::read(
            Format::FusionAuth,
            &format!(r#"{{"users":[{{"username":"ann","active":true,"password":"{h}"}}]}}"#),
        )
        .unwrap();
        let err = d.import(ImportBatch::new(rows)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("encryptionScheme"), "{text}");
        assert!(!text.contains(&h[8..]), "the hash is not echoed: {text}");
        let err = d
            .create(NewUser::with_username("ann").password(h))
            .unwrap_err();
        assert!(err.to_string().contains("encryptionScheme"), "{err}");
    }
    assert_eq!(d.count().unwrap(), 0);
    // With its scheme it imports, and logs in.
    let rows = json::read(
        Format::FusionAuth,
        &format!(
            r#"{{"users":[{{"username":"ann","active":true,"password":"{}","encryptionScheme":"userdir-phc"}}]}}"#,
            argon.expose()
        ),
    )
    .unwrap();
    d.import(ImportBatch::new(rows)).unwrap();
    assert!(d.authenticate("ann", "correct horse").is_ok());
}
