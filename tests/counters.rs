//! Totals without walking: the counters the embedded engine keeps (users, users with a
//! username or a login email, members of each role, login keys by prefix) change in the same transaction as every
//! write, survive a crash through the redo log, stay as they were when a write fails, and are
//! computed when a file of the previous directory format (exact role keys, no counters) is
//! opened. `check_integrity` recomputes them from the records; the searches below read them.

use std::path::{Path, PathBuf};

use userdir::query::Search;
use userdir::{
    Argon2Params, Directory, Durability, Error, ImportBatch, ManualClock, NewUser, PatchOp,
    UserUpdate,
};
use uuid::Uuid;

fn open(path: &Path) -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .durability(Durability::Immediate)
        .open(path)
        .unwrap()
}

fn wal(p: &Path) -> PathBuf {
    let mut n = p.file_name().unwrap().to_os_string();
    n.push(".wal");
    p.with_file_name(n)
}

/// The totals the counters serve, each checked against the decode-and-count path.
fn totals(dir: &Directory) -> Vec<(String, u64)> {
    let searches = [
        ("all".to_owned(), Search::all()),
        (
            "by userName".to_owned(),
            Search::all().sort(userdir::query::SortField::username()),
        ),
        (
            "by email".to_owned(),
            Search::all().sort(userdir::query::SortField::email()),
        ),
        (
            "admin".to_owned(),
            Search::filter(r#"roles eq "ADMIN""#).unwrap(),
        ),
        (
            "staff".to_owned(),
            Search::filter(r#"roles eq "staff""#).unwrap(),
        ),
        (
            "sw u".to_owned(),
            Search::filter(r#"userName sw "U""#)
                .unwrap()
                .sort(userdir::query::SortField::username()),
        ),
    ];
    // Prefixes of 1 to 3 characters are counters, longer ones walks.
    let prefixes = ["us", "USE", "user1", "i", "imp", "x", "only"];
    let searches = searches
        .into_iter()
        .chain(prefixes.into_iter().flat_map(|p| {
            [
                (
                    format!("userName sw {p}"),
                    Search::filter(&format!("userName sw \"{p}\""))
                        .unwrap()
                        .sort(userdir::query::SortField::username()),
                ),
                (
                    format!("emails sw {p}"),
                    Search::filter(&format!("emails sw \"{p}\""))
                        .unwrap()
                        .sort(userdir::query::SortField::email()),
                ),
            ]
        }));
    searches
        .into_iter()
        .map(|(name, s)| {
            let fast = dir.search(&s.clone().limit(3)).unwrap();
            let slow = dir.search(&s.clone().limit(3).without_indexes()).unwrap();
            assert_eq!(
                fast.total, slow.total,
                "{name}: counter and records disagree"
            );
            assert_eq!(
                fast.users.iter().map(|u| u.id).collect::<Vec<_>>(),
                slow.users.iter().map(|u| u.id).collect::<Vec<_>>(),
                "{name}"
            );
            (name, fast.total)
        })
        .collect()
}

/// Every kind of write, checking the counters after each.
fn churn(dir: &Directory) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut n = NewUser::with_username(format!("User{i}")).role(if i % 3 == 0 {
            "Admin"
        } else {
            "staff"
        });
        if i % 4 != 0 {
            n = n.email(format!("user{i}@example.com"));
        }
        if i == 5 {
            // Two spellings of one role: one key, one member.
            n = n.role("ADMIN").role("admin");
        }
        ids.push(dir.create(n).unwrap().id);
    }
    dir.create(NewUser::with_email("only-mail@example.com").role("admin"))
        .unwrap();
    totals(dir);
    let rows = (0..5)
        .map(|i| {
            NewUser::with_username(format!("imported{i}"))
                .email(format!("imp{i}@example.com"))
                .role("admin")
                .role("imported")
        })
        .collect();
    dir.import(ImportBatch::new(rows)).unwrap();
    totals(dir);
    // A role change, a username removed, a patch adding a role.
    let u = dir.get(ids[1]).unwrap().unwrap();
    let mut up = UserUpdate::from(&u);
    up.profile.roles = ["admin".to_owned()].into();
    up.profile.email = Some("renamed1@example.com".into());
    dir.update(u.id, up, None).unwrap();
    let u = dir.get(ids[2]).unwrap().unwrap();
    let mut up = UserUpdate::from(&u);
    up.profile.username = None;
    dir.update(u.id, up, None).unwrap();
    dir.patch(ids[3], &[PatchOp::add("roles", "ADMIN")], None)
        .unwrap();
    totals(dir);
    dir.deactivate(ids[4]).unwrap();
    dir.reactivate(ids[4]).unwrap();
    dir.deactivate_many(&ids[6..8]).unwrap();
    dir.delete(ids[0]).unwrap();
    dir.delete_many(&ids[8..10]).unwrap();
    totals(dir);
    dir.check_integrity().unwrap();
    ids
}

#[test]
fn counters_follow_every_write_and_a_crash_replays_them() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p);
    churn(&dir);
    let expected = totals(&dir);
    let dump = dir.dump().unwrap();
    // The crash image: redb's last durable state and the log (what a killed process leaves).
    let q = tmp.path().join("crashed.redb");
    std::fs::copy(&p, &q).unwrap();
    std::fs::copy(wal(&p), wal(&q)).unwrap();
    drop(dir);
    let crashed = open(&q);
    crashed.check_integrity().unwrap();
    assert_eq!(totals(&crashed), expected);
    assert_eq!(crashed.dump().unwrap(), dump);
}

#[test]
fn a_refused_write_leaves_counters_and_records_agreeing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = open(&tmp.path().join("users.redb"));
    churn(&dir);
    let before = totals(&dir);
    let dump = dir.dump().unwrap();
    // An import whose last row takes an existing username: refused as a whole.
    let mut rows: Vec<NewUser> = (0..4)
        .map(|i| NewUser::with_username(format!("new{i}")).role("admin"))
        .collect();
    rows.push(NewUser::with_username("USER3").role("admin"));
    assert!(dir.import(ImportBatch::new(rows)).is_err());
    // A transaction whose second create fails: the first is not committed either.
    let a = dir
        .prepare(NewUser::with_username("txn-a").role("admin"))
        .unwrap();
    let b = dir
        .prepare(NewUser::with_username("user5").role("admin"))
        .unwrap();
    let r = dir.write(|tx| {
        tx.create(a)?;
        tx.create(b)?;
        Ok(())
    });
    assert!(matches!(r, Err(Error::DuplicateUsername { .. })), "{r:?}");
    dir.check_integrity().unwrap();
    assert_eq!(totals(&dir), before);
    assert_eq!(dir.dump().unwrap(), dump);
}

/// Rewrites a directory file into the previous format (1): role entries keyed by the role as
/// written, no counters but the user count, `format` 1 — what userdir before issue 18 wrote.
fn downgrade_to_format_1(path: &Path, roles: &[(Uuid, &str)]) {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    const DIR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(DIR).unwrap();
        t.retain(|k, _| !matches!(k.first(), Some(b'C' | b'R')))
            .unwrap();
        for (id, role) in roles {
            let mut k = vec![b'R'];
            k.extend_from_slice(role.as_bytes());
            k.push(0);
            k.extend_from_slice(id.as_bytes());
            t.insert(k.as_slice(), &[][..]).unwrap();
        }
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format", 1).unwrap();
    }
    txn.commit().unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_table(DIR).unwrap();
    assert!(t.iter().unwrap().all(|e| e.unwrap().0.value()[0] != b'C'));
}

#[test]
fn a_file_of_the_previous_format_is_migrated_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p);
    let a = dir
        .create(NewUser::with_username("ann").role("Admin"))
        .unwrap();
    let b = dir
        .create(
            NewUser::with_username("bob")
                .email("bob@example.com")
                .role("ADMIN")
                .role("admin")
                .role("Staff"),
        )
        .unwrap();
    let mut cy = NewUser::with_email("cy@example.com");
    cy.profile
        .emails
        .push(userdir::MultiValue::new("Cy@Home.example").kind("home"));
    let c = dir.create(cy).unwrap();
    dir.checkpoint().unwrap();
    drop(dir);
    downgrade_to_format_1(
        &p,
        &[
            (a.id, "Admin"),
            (b.id, "ADMIN"),
            (b.id, "Staff"),
            (b.id, "admin"),
        ],
    );
    // A read-only open cannot migrate: it asks for a writable open first.
    let ro = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .read_only()
        .open(&p);
    assert!(matches!(ro, Err(Error::NeedsRecovery)), "{ro:?}");

    let dir = open(&p);
    dir.check_integrity().unwrap();
    let admins = dir
        .search(&Search::filter(r#"roles eq "admin""#).unwrap())
        .unwrap();
    assert_eq!(admins.total, 2);
    assert_eq!(admins.users.iter().map(|u| u.id).collect::<Vec<_>>(), {
        let mut v = vec![a.id, b.id];
        v.sort();
        v
    });
    assert_eq!(
        dir.search(&Search::filter(r#"roles eq "STAFF""#).unwrap())
            .unwrap()
            .total,
        1
    );
    // The secondary email index was built from the records.
    let homes = dir
        .search(&Search::filter(r#"emails[type eq "HOME"]"#).unwrap())
        .unwrap();
    assert_eq!(homes.users.iter().map(|u| u.id).collect::<Vec<_>>(), [c.id]);
    assert_eq!(
        dir.search(&Search::filter(r#"emails eq "cy@home.EXAMPLE""#).unwrap())
            .unwrap()
            .total,
        1
    );
    totals(&dir);
    drop(dir);
    // Migrated once: a read-only open now works and reads the same totals.
    let ro = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .read_only()
        .open(&p)
        .unwrap();
    assert_eq!(
        ro.search(&Search::filter(r#"roles eq "Admin""#).unwrap())
            .unwrap()
            .total,
        2
    );
}

/// The committed format-1 fixture (tests/backward_compatibility.rs) gains its counters and
/// caseless role keys on open.
#[test]
fn the_format_1_fixture_gains_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("v1.redb");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1.redb"),
        &p,
    )
    .unwrap();
    let dir = open(&p);
    dir.check_integrity().unwrap();
    let admins = dir
        .search(&Search::filter(r#"roles eq "ADMIN""#).unwrap())
        .unwrap();
    assert_eq!(admins.total, 1);
    assert_eq!(admins.users[0].id, Uuid::from_u128(1));
    assert_eq!(totals(&dir)[0].1, 3);
}

/// `check_integrity` recomputes every counter: a counter that disagrees with the records is
/// reported.
#[test]
fn a_wrong_counter_is_reported() {
    use redb::TableDefinition;
    const DIR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p);
    dir.create(NewUser::with_username("ann").role("admin"))
        .unwrap();
    dir.checkpoint().unwrap();
    drop(dir);
    {
        let db = redb::Database::open(&p).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(DIR).unwrap();
            t.insert(&b"Cradmin"[..], &7u64.to_le_bytes()[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let dir = open(&p);
    match dir.check_integrity() {
        Err(Error::Integrity(problems)) => {
            assert!(
                problems
                    .iter()
                    .any(|m| m.contains("counter C:radmin says 7 but the records give 1")),
                "{problems:?}"
            );
        }
        other => panic!("expected a counter problem, got {other:?}"),
    }
}

/// A file of directory format 2 (no login-prefix counters) gains them on its first writable
/// open; the integrity check and the `sw` totals agree with the records afterwards.
#[test]
fn a_file_of_format_2_gains_prefix_counters() {
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
    const DIR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("users.redb");
    let dir = open(&p);
    churn(&dir);
    let expected = totals(&dir);
    dir.checkpoint().unwrap();
    drop(dir);
    {
        let db = redb::Database::open(&p).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(DIR).unwrap();
            let before = t.len().unwrap();
            t.retain(|k, _| !k.starts_with(b"Cp")).unwrap();
            assert!(t.len().unwrap() < before, "the file had prefix counters");
            txn.open_table(META).unwrap().insert("format", 2).unwrap();
        }
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_table(DIR).unwrap();
        assert!(
            t.iter()
                .unwrap()
                .all(|e| !e.unwrap().0.value().starts_with(b"Cp"))
        );
    }
    let ro = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .read_only()
        .open(&p);
    assert!(matches!(ro, Err(Error::NeedsRecovery)), "{ro:?}");
    let dir = open(&p);
    dir.check_integrity().unwrap();
    assert_eq!(totals(&dir), expected);
}
