//! Bulk import's write path: sorted inserts through a redb cursor into a directory that already
//! holds users whose keys interleave with the batch's, clashes found by those inserts reported
//! as the read-snapshot check reports them, records of hashed plaintext passwords attached
//! after the sort, and large batches on a file (the redo log's oversized path).

mod common;

use common::{dir, fails_without_change};
use userdir::{
    Argon2Params, Directory, Error, ImportBatch, ImportReport, NewUser, RowProblem, RowReason,
    StoredHash,
};
use uuid::Uuid;

/// A cheap, valid argon2id hash (argon2-cffi, m=64 t=2 p=2) of "correct horse battery staple".
const HASH: &str = "$argon2id$v=19$m=64,t=2,p=2$dXNlcmRpci1zYWx0LTAwMA$xNszVV5zC3FO0LIKurOLbA7FPzCBoE3jAEFZbwWEcOA";

/// User `i`: every kind of index entry, and a record of about 600 bytes, so that a few
/// thousand rows fill more than one of the cursor's 1 MiB insert runs.
fn row(i: usize) -> NewUser {
    NewUser::with_username(format!("user{i:05}"))
        .email(format!("user{i:05}@example.com"))
        .external_id(format!("crm-{i:05}"))
        .role(if i.is_multiple_of(7) {
            "admin"
        } else {
            "member"
        })
        .insert_instant(1_600_000_000_000 + i64::try_from(i).unwrap())
        .data("padding", "x".repeat(500))
        .password_hash(StoredHash::from_encoded(HASH))
}

fn import(d: &Directory, rows: impl Iterator<Item = NewUser>) {
    d.import(ImportBatch::new(rows.collect())).unwrap();
}

fn refused(d: &Directory, rows: Vec<NewUser>) -> ImportReport {
    match fails_without_change(d, || d.import(ImportBatch::new(rows))) {
        Error::Import(r) => r,
        other => panic!("expected an import report, got {other}"),
    }
}

fn assert_all_found(d: &Directory, n: usize) {
    assert_eq!(d.count().unwrap(), n as u64);
    for i in 0..n {
        let u = d
            .find_by_username(&format!("USER{i:05}"))
            .unwrap()
            .unwrap_or_else(|| panic!("user{i:05} is missing"));
        assert_eq!(
            d.find_by_email(&format!("user{i:05}@EXAMPLE.com"))
                .unwrap()
                .map(|x| x.id),
            Some(u.id)
        );
        assert_eq!(
            d.find_by_external_id(&format!("crm-{i:05}"))
                .unwrap()
                .map(|x| x.id),
            Some(u.id)
        );
        assert_eq!(
            d.get(u.id).unwrap().map(|x| x.profile.username),
            Some(u.profile.username)
        );
    }
    d.check_integrity().unwrap();
}

#[test]
fn batch_keys_interleaved_with_existing_users() {
    let (d, _) = dir();
    // Even users first, then the odd ones: every index (ids are random) interleaves.
    import(&d, (0..3000).step_by(2).map(row));
    import(&d, (1..3000).step_by(2).map(row));
    assert_all_found(&d, 3000);
    // A batch entirely before, then entirely after, the existing keys.
    let (d, _) = dir();
    import(&d, (1500..3000).map(row));
    import(&d, (0..1500).map(row));
    assert_all_found(&d, 3000);
    // Some users created one by one between two batches.
    let (d, _) = dir();
    import(&d, (0..1000).map(row));
    for i in 1000..1010 {
        d.create(row(i)).unwrap();
    }
    import(&d, (1010..2000).map(row));
    assert_all_found(&d, 2000);
}

#[test]
fn clashes_met_by_the_inserts_are_reported_like_the_read_check_reports_them() {
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .refuse_lookalikes(true)
        .in_memory()
        .unwrap();
    import(&d, (0..2000).step_by(2).map(row));
    let admin = d.create(NewUser::with_username("admin")).unwrap();
    let taken = d.find_by_username("user00100").unwrap().unwrap();
    // The odd users, some replaced by rows that clash with existing users only: no problem
    // is found before the write transaction, whose inserts find them.
    let clashing = || {
        let mut rows: Vec<NewUser> = (1..2000).step_by(2).map(row).collect();
        rows[10] = NewUser::with_username("x10").id(taken.id); // an existing id
        rows[20] = NewUser::with_username("USER00200"); // an existing username
        rows[30] = NewUser::with_username("x30").email("User00300@Example.com"); // email
        rows[40] = NewUser::with_username("user00400@example.com"); // = an existing email
        rows[50] = NewUser::with_username("x50").external_id("crm-00500"); // external id
        rows[60] = NewUser::with_username("\u{0430}dmin"); // looks like "admin"
        rows[999] = NewUser::with_username("user01998"); // the last existing username
        rows
    };
    let written = refused(&d, clashing());
    let of = |existing| RowReason::DuplicateOfExisting { existing };
    let user = |name: &str| d.find_by_username(name).unwrap().unwrap().id;
    let expected = vec![
        RowProblem {
            index: 10,
            field: "id",
            reason: of(taken.id),
        },
        RowProblem {
            index: 20,
            field: "username",
            reason: of(user("user00200")),
        },
        RowProblem {
            index: 30,
            field: "email",
            reason: of(user("user00300")),
        },
        RowProblem {
            index: 40,
            field: "username",
            reason: of(user("user00400")),
        },
        RowProblem {
            index: 50,
            field: "external_id",
            reason: of(user("user00500")),
        },
        RowProblem {
            index: 60,
            field: "username",
            reason: RowReason::Invalid(format!("looks like the username of user {}", admin.id)),
        },
        RowProblem {
            index: 999,
            field: "username",
            reason: of(user("user01998")),
        },
    ];
    assert_eq!(written.problems, expected, "{written}");
    // The same rows plus an invalid one take the read-snapshot path: the same report.
    let mut rows = clashing();
    rows.push(NewUser::with_email("not an email"));
    let read = refused(&d, rows);
    assert_eq!(read.problems[..expected.len()], expected[..], "{read}");
    assert_eq!(read.problems.len(), expected.len() + 1, "{read}");
    assert_eq!(d.count().unwrap(), 1001);
}

#[test]
fn plaintext_rows_among_pre_hashed_ones_get_their_records_after_hashing() {
    let (d, _) = dir();
    let rows: Vec<NewUser> = (0..3000)
        .map(|i| {
            if i % 500 == 7 {
                NewUser::with_username(format!("user{i:05}"))
                    .email(format!("user{i:05}@example.com"))
                    .external_id(format!("crm-{i:05}"))
                    .password(format!("plaintext password {i}"))
            } else {
                row(i)
            }
        })
        .collect();
    let summary = d.import(ImportBatch::new(rows)).unwrap();
    assert_eq!(
        (summary.imported, summary.hashed, summary.pre_hashed),
        (3000, 6, 2994)
    );
    assert_all_found(&d, 3000);
    for i in (0..3000).filter(|i| i % 500 == 7) {
        d.authenticate(&format!("user{i:05}"), &format!("plaintext password {i}"))
            .unwrap();
    }
    d.authenticate("user00001", "correct horse battery staple")
        .unwrap();
}

#[test]
fn generated_ids_are_distinct_and_random() {
    let (d, _) = dir();
    let rows: Vec<NewUser> = (0..2000)
        .map(|i| NewUser::with_username(format!("u{i}")))
        .collect();
    d.import(ImportBatch::new(rows)).unwrap();
    let mut ids = Vec::new();
    for i in 0..2000 {
        ids.push(d.find_by_username(&format!("u{i}")).unwrap().unwrap().id);
    }
    assert!(ids.iter().all(|id| id.get_version_num() == 4));
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 2000);
    // Not in row order: v4 ids reveal nothing of when or in which order users were created.
    assert_ne!(sorted, ids);
    assert!(ids.iter().all(|id| *id != Uuid::nil()));
}

#[test]
fn file_backed_batches_small_and_large_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("users.redb");
    let open = || {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .open(&path)
            .unwrap()
    };
    {
        let d = open();
        // Under the redo log's 4 MiB frame: logged, then checkpointed on close.
        import(&d, (0..100).map(row));
        // Over it: committed durably by redb itself.
        import(&d, (100..9000).map(row));
        import(&d, (9000..9010).map(row));
    }
    let d = open();
    assert_all_found(&d, 9010);
}
