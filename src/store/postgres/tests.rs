//! The PostgreSQL engine against a real server (see `scripts/pg`).

use std::ops::Bound;

use uuid::Uuid;

use super::{PgStore, testdb};
use crate::error::Error;
use crate::identity::UserKeys;
use crate::store::{
    FailureState, IndexRules, LoginKind, LoginOwner, ReadTxn, Snapshot, TokenKind, TokenRecord,
    WriteTxn,
};
use crate::user::{Profile, User};
use crate::{Argon2Params, Directory, ImportBatch, NewUser};

fn rules() -> IndexRules {
    IndexRules {
        keys: UserKeys::of,
        version: crate::identity::unicode_version_code(),
        skeletons: false,
    }
}

fn keys(u: &User) -> UserKeys {
    UserKeys::of(u, false)
}

fn owner(id: Uuid, username: bool, email: bool) -> Option<LoginOwner> {
    Some(LoginOwner {
        id,
        username,
        email,
    })
}

fn user(name: &str, email: Option<&str>, at: i64) -> User {
    let d = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .in_memory()
        .unwrap();
    let mut u = d
        .validate_new(
            None,
            Profile {
                username: Some(name.into()),
                email: email.map(Into::into),
                roles: ["staff".to_string()].into_iter().collect(),
                ..Profile::default()
            },
            true,
        )
        .unwrap();
    u.insert_instant = at;
    u
}

fn open() -> Option<PgStore> {
    let url = testdb::fresh_url()?;
    Some(PgStore::open(&url, None, rules(), 4).unwrap())
}

#[test]
fn create_find_replace_remove() {
    let Some(s) = open() else { return };
    let a = user("Bob", Some("bob@example.com"), 10);
    s.write(|w| w.insert(&a, &keys(&a))).unwrap();
    let got = s.read(|r| r.get(a.id)).unwrap().unwrap();
    assert_eq!(got, a);
    assert_eq!(
        s.read(|r| r.login("bob")).unwrap(),
        owner(a.id, true, false)
    );
    assert_eq!(
        s.read(|r| r.login("bob@example.com")).unwrap(),
        owner(a.id, false, true)
    );
    // The same caseless username, and a username equal to someone's email.
    let b = user("BOB", None, 11);
    assert!(matches!(
        s.write(|w| w.insert(&b, &keys(&b))),
        Err(Error::DuplicateUsername { existing }) if existing == a.id
    ));
    let c = user("bob@example.com", None, 12);
    assert!(matches!(
        s.write(|w| w.insert(&c, &keys(&c))),
        Err(Error::LoginIdConflict { field: "username", existing }) if existing == a.id
    ));
    assert!(
        matches!(s.write(|w| w.insert(&a, &keys(&a))), Err(Error::DuplicateId(id)) if id == a.id)
    );
    // Rename: the old key is freed, the new one taken.
    let mut a2 = a.clone();
    a2.username = Some("Robert".into());
    a2.roles.clear();
    s.write(|w| w.replace((&a, &keys(&a)), (&a2, &keys(&a2))))
        .unwrap();
    assert_eq!(s.read(|r| r.login("bob")).unwrap(), None);
    assert!(s.read(|r| r.role_members("staff")).unwrap().is_empty());
    s.write(|w| w.insert(&b, &keys(&b))).unwrap();
    assert_eq!(s.read(|r| r.count()).unwrap(), 2);
    assert!(s.read(|r| r.integrity_problems()).unwrap().is_empty());
    s.write(|w| w.remove(&a2, &keys(&a2))).unwrap();
    assert_eq!(s.read(|r| r.count()).unwrap(), 1);
    assert!(s.read(|r| r.integrity_problems()).unwrap().is_empty());
}

#[test]
fn walks_are_paged_and_ordered() {
    let Some(s) = open() else { return };
    let mut users: Vec<User> = (0..1100)
        .map(|i| user(&format!("user{i:04}"), None, 1000 + i64::from(i % 7)))
        .collect();
    s.write(|w| {
        for u in &users {
            w.insert(u, &keys(u))?;
        }
        Ok(())
    })
    .unwrap();
    let mut prefix = Vec::new();
    s.read(|r| r.login_prefix("user10", LoginKind::Username, |id| prefix.push(id)))
        .unwrap();
    assert_eq!(prefix.len(), 100);
    let mut seen = Vec::new();
    s.read(|r| {
        r.inserted_walk(Bound::Unbounded, Bound::Unbounded, false, |t, id| {
            seen.push((t, id));
            Ok(true)
        })
    })
    .unwrap();
    let mut want: Vec<(i64, Uuid)> = users.iter().map(|u| (u.insert_instant, u.id)).collect();
    want.sort();
    assert_eq!(seen, want);
    let mut rev = Vec::new();
    s.read(|r| {
        r.inserted_walk(
            Bound::Included((1002, Uuid::nil())),
            Bound::Excluded((1004, Uuid::nil())),
            true,
            |t, id| {
                rev.push((t, id));
                Ok(true)
            },
        )
    })
    .unwrap();
    let mut want_rev: Vec<(i64, Uuid)> = want
        .iter()
        .copied()
        .filter(|(t, _)| (1002..1004).contains(t))
        .collect();
    want_rev.reverse();
    assert_eq!(rev, want_rev);
    let mut ids = Vec::new();
    s.read(|r| {
        r.for_each_record_after(None, |id, _| {
            ids.push(id);
            Ok(true)
        })
    })
    .unwrap();
    users.sort_by_key(|u| u.id);
    assert_eq!(ids, users.iter().map(|u| u.id).collect::<Vec<_>>());
}

#[test]
fn tokens_and_failures() {
    let Some(s) = open() else { return };
    let a = user("ann", None, 1);
    s.write(|w| w.insert(&a, &keys(&a))).unwrap();
    let rec = |expiry| TokenRecord {
        user: a.id,
        kind: TokenKind::Reset,
        expiry,
        binding: u64::MAX,
    };
    s.write(|w| {
        w.insert_token(&[1; 32], &rec(5), 2)?;
        w.insert_token(&[2; 32], &rec(6), 2)?;
        w.insert_token(&[3; 32], &rec(7), 2)
    })
    .unwrap();
    assert_eq!(s.read(|r| r.token(&[1; 32])).unwrap(), None);
    assert_eq!(s.read(|r| r.token(&[2; 32])).unwrap(), Some(rec(6)));
    assert_eq!(s.read(|r| r.user_token_count(a.id)).unwrap(), 2);
    assert_eq!(s.write(|w| w.purge_expired_tokens(6, 10)).unwrap(), 1);
    let f = FailureState {
        count: 3,
        window_start: 9,
        locked_until: Some(99),
    };
    s.write(|w| w.set_failures(a.id, f)).unwrap();
    assert_eq!(s.read(|r| r.failures(a.id)).unwrap(), Some(f));
    s.write(|w| w.remove(&a, &keys(&a))).unwrap();
    assert_eq!(s.read(|r| r.user_token_count(a.id)).unwrap(), 0);
    assert_eq!(s.read(|r| r.failures(a.id)).unwrap(), None);
}

/// Eight threads create users whose names collide caselessly: exactly one wins each name,
/// every loser gets `DuplicateUsername` naming the winner (serialization failures are retried).
#[test]
fn racing_creates_have_one_winner_per_key() {
    let Some(url) = testdb::fresh_url() else {
        return;
    };
    let s = std::sync::Arc::new(PgStore::open(&url, None, rules(), 8).unwrap());
    let names: Vec<String> = (0..40).map(|i| format!("Racer{i}")).collect();
    let results: Vec<Vec<(usize, Result<Uuid, Error>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                let names = &names;
                scope.spawn(move || {
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| {
                            let name = if t % 2 == 0 {
                                n.to_uppercase()
                            } else {
                                n.to_lowercase()
                            };
                            let u = user(&name, None, 0);
                            (i, s.write(|w| w.insert(&u, &keys(&u))).map(|()| u.id))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for i in 0..names.len() {
        let outcomes: Vec<&Result<Uuid, Error>> = results
            .iter()
            .flat_map(|r| r.iter().filter(|(j, _)| *j == i).map(|(_, o)| o))
            .collect();
        let winners: Vec<Uuid> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "name {i}: {outcomes:?}");
        for o in outcomes {
            match o {
                Ok(_) => {}
                Err(Error::DuplicateUsername { existing }) => assert_eq!(*existing, winners[0]),
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
    }
    assert_eq!(s.read(|r| r.count()).unwrap(), 40);
    assert!(s.read(|r| r.integrity_problems()).unwrap().is_empty());
}

#[test]
fn a_different_unicode_version_refuses_writes() {
    let Some(url) = testdb::fresh_url() else {
        return;
    };
    let s = PgStore::open(&url, None, rules(), 1).unwrap();
    s.write(|w| {
        let u = user("uni", None, 0);
        w.insert(&u, &keys(&u))
    })
    .unwrap();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.execute("UPDATE userdir_meta SET unicode_version = 1", &[])
        .unwrap();
    let s = PgStore::open(&url, None, rules(), 1).unwrap();
    assert!(matches!(
        s.write(|w| {
            let u = user("other", None, 0);
            w.insert(&u, &keys(&u))
        }),
        Err(Error::UnicodeMismatch { database: 1, .. })
    ));
    // Reads still work.
    assert_eq!(s.read(|r| r.count()).unwrap(), 1);
    c.execute("UPDATE userdir_meta SET schema_version = 99", &[])
        .unwrap();
    assert!(matches!(
        PgStore::open(&url, None, rules(), 1),
        Err(Error::UnsupportedFormat { found: 99, .. })
    ));
}

#[test]
fn a_lost_connection_at_commit_is_outcome_unknown() {
    let Some(url) = testdb::fresh_url() else {
        return;
    };
    let s = PgStore::open(&url, None, rules(), 1).unwrap();
    let r = s.write(|w| {
        let u = user("lost", None, 0);
        w.insert(&u, &keys(&u))?;
        // Another session ends this connection's backend before COMMIT is sent.
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let crate::store::Writer::Postgres(tx) = w else {
            unreachable!()
        };
        let pid: i32 = tx.backend_pid()?;
        c.execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        Ok(())
    });
    assert!(matches!(r, Err(Error::OutcomeUnknown(_))), "{r:?}");
}

#[test]
fn import_checks_every_key_then_copies() {
    let Some(url) = testdb::fresh_url() else {
        return;
    };
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open_postgres(&url)
        .unwrap();
    let a = dir
        .create(NewUser::with_username("taken").email("taken@example.com"))
        .unwrap();
    let rows = |n: usize| -> Vec<NewUser> {
        (0..n)
            .map(|i| {
                NewUser::with_username(format!("bulk{i}"))
                    .email(format!("bulk{i}@example.com"))
                    .role("staff")
            })
            .collect()
    };
    let mut bad = rows(3000);
    bad[7] = NewUser::with_username("TAKEN");
    bad[9] = NewUser::with_username("x9").email("taken@example.com");
    bad[11].id = Some(a.id);
    let Err(Error::Import(report)) = dir.import(ImportBatch::new(bad)) else {
        panic!("the batch must be refused")
    };
    let got: Vec<(usize, &str)> = report.problems.iter().map(|p| (p.index, p.field)).collect();
    assert_eq!(got, [(7, "username"), (9, "email"), (11, "id")]);
    assert_eq!(dir.count().unwrap(), 1);
    dir.import(ImportBatch::new(rows(3000))).unwrap();
    assert_eq!(dir.count().unwrap(), 3001);
    assert_eq!(
        dir.find_by_login_id("BULK77").unwrap().unwrap().roles.len(),
        1
    );
    dir.check_integrity().unwrap();
}

#[test]
fn a_schema_option_keeps_directories_apart() {
    let Some(url) = testdb::fresh_url() else {
        return;
    };
    let tag = Uuid::new_v4().simple().to_string();
    let a = PgStore::open(&url, Some(&format!("a_{tag}")), rules(), 1).unwrap();
    let b = PgStore::open(&url, Some(&format!("b_{tag}")), rules(), 1).unwrap();
    let (u, v) = (user("same", None, 0), user("same", None, 0));
    a.write(|w| w.insert(&u, &keys(&u))).unwrap();
    b.write(|w| w.insert(&v, &keys(&v))).unwrap();
    assert_eq!(a.read(|r| r.count()).unwrap(), 1);
    assert_eq!(b.read(|r| r.dump()).unwrap().len(), 4);
    assert!(matches!(
        PgStore::open(&url, Some("x; DROP TABLE y"), rules(), 1),
        Err(Error::InvalidField {
            field: "postgres_schema",
            ..
        })
    ));
}

/// The indexed accesses of search (id lists, login-key equality and prefix, external id, role,
/// insert-instant ranges) are index scans, not sequential scans, on a directory of some size.
#[test]
fn search_accesses_use_indexes() {
    use super::tx::{
        SQL_BY_ID, SQL_EXTERNAL, SQL_LOGIN, SQL_LOGIN_PREFIX, SQL_ROLE, SQL_ROLE_COUNT,
        inserted_page_sql, login_page_sql, role_page_sql,
    };
    use crate::store::LoginKind;
    let Some(url) = testdb::fresh_url() else {
        return;
    };
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .open_postgres(&url)
        .unwrap();
    let rows: Vec<NewUser> = (0..5000)
        .map(|i| {
            let mut u = NewUser::with_username(format!("member{i:05}"))
                .email(format!("m{i}@example.com"))
                .external_id(format!("ext-{i}"))
                .role("staff");
            u.insert_instant = Some(i);
            u
        })
        .collect();
    dir.import(ImportBatch::new(rows)).unwrap();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("ANALYZE").unwrap();
    let id = dir.find_by_username("member00010").unwrap().unwrap().id;
    let kinds: i16 = 1;
    let (lo, hi) = (100_i64, 200_i64);
    let explain =
        |c: &mut postgres::Client, sql: &str, p: &[&(dyn postgres::types::ToSql + Sync)]| {
            let plan: Vec<String> = c
                .query(&format!("EXPLAIN {sql}"), p)
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let plan = plan.join("\n");
            eprintln!("EXPLAIN {sql}\n{plan}\n");
            assert!(plan.contains("Index"), "not an index scan:\n{plan}");
            assert!(!plan.contains("Seq Scan"), "a sequential scan:\n{plan}");
        };
    explain(&mut c, SQL_BY_ID, &[&id]);
    explain(&mut c, SQL_LOGIN, &[&"member00010"]);
    explain(
        &mut c,
        SQL_LOGIN_PREFIX,
        &[&"member0001", &"member0002", &kinds],
    );
    explain(&mut c, SQL_EXTERNAL, &[&"ext-10"]);
    // Sorted pages (issue 18): read in index order, no sort node, both orders, with and
    // without a prefix and a start key; counts over the indexes.
    let ordered =
        |c: &mut postgres::Client, sql: &str, p: &[&(dyn postgres::types::ToSql + Sync)]| {
            let plan: Vec<String> = c
                .query(&format!("EXPLAIN {sql}"), p)
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let plan = plan.join("\n");
            eprintln!("EXPLAIN {sql}\n{plan}\n");
            assert!(plan.contains("Index"), "not an index scan:\n{plan}");
            assert!(!plan.contains("Sort"), "not in index order:\n{plan}");
            assert!(!plan.contains("Seq Scan"), "a sequential scan:\n{plan}");
        };
    for kind in [LoginKind::Username, LoginKind::Email] {
        for rev in [false, true] {
            ordered(&mut c, &login_page_sql(kind, "", None, None, rev, 21), &[]);
            ordered(
                &mut c,
                &login_page_sql(
                    kind,
                    "member0",
                    Some("member1"),
                    Some("member00100"),
                    rev,
                    21,
                ),
                &[&"member0", &"member1", &"member00100"],
            );
        }
    }
    ordered(&mut c, &role_page_sql(21), &[&"staff", &id]);
    explain(
        &mut c,
        "SELECT count(*) FROM userdir_logins WHERE kinds & 1 <> 0 AND key >= $1 AND key < $2",
        &[&"member0001", &"member0002"],
    );
    explain(&mut c, SQL_ROLE_COUNT, &[&"auditor"]);
    // One role holds every user here: the planner may read the whole table for it, so the
    // role plan is checked on a role few users hold.
    c.execute(
        "INSERT INTO userdir_roles (role, user_id) VALUES ('auditor', $1)",
        &[&id],
    )
    .unwrap();
    c.batch_execute("ANALYZE userdir_roles").unwrap();
    explain(&mut c, SQL_ROLE, &[&"auditor"]);
    let (nil, sql) = (
        uuid::Uuid::nil(),
        inserted_page_sql(Some(">="), Some("<"), false),
    );
    explain(&mut c, &sql, &[&lo, &nil, &hi, &nil]);
    let sql = inserted_page_sql(None, Some("<"), true);
    explain(&mut c, &sql, &[&hi, &nil]);
}
