//! Search: planned results equal a naive scan, explain, sort orders, offset and cursor pages.

mod common;
use common::OpenEngine;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use userdir::identity::caseless_key;
use userdir::query::{Attr, CompareOp, Filter, Multi, Plan, Search, SortField, Sub, Value};
use userdir::{Argon2Params, Directory, ManualClock, NewUser, User};
use uuid::Uuid;

/// The attribute a filter path names.
fn at(name: &str) -> Attr {
    Attr::parse(name).expect(name)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn dir_with_clock() -> (Directory, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(clock.clone())
        .open_engine()
        .unwrap();
    (dir, clock)
}

/// Every user, in id order, read without the planner's help.
fn all_users(dir: &Directory) -> Vec<User> {
    let page = dir.search(&Search::all().limit(usize::MAX)).unwrap();
    assert_eq!(page.total as usize, page.users.len());
    page.users
}

// ---- the test's own model of the sort order ----

#[derive(Clone, Copy, Debug)]
enum By {
    Username,
    Email,
    FullName,
    BirthDate,
    Insert,
    LastLogin,
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    by: By,
    desc: bool,
    missing_first: bool,
}

impl Spec {
    fn field(self) -> SortField {
        let f = match self.by {
            By::Username => SortField::username(),
            By::Email => SortField::email(),
            By::FullName => SortField::full_name(),
            By::BirthDate => SortField::birth_date(),
            By::Insert => SortField::insert_instant(),
            By::LastLogin => SortField::last_login(),
        };
        let f = if self.desc { f.desc() } else { f };
        if self.missing_first {
            f.missing_first()
        } else {
            f.missing_last()
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
enum K {
    S(String),
    I(i64),
}

fn key(by: By, u: &User) -> Option<K> {
    match by {
        By::Username => u.username.as_deref().map(|x| K::S(caseless_key(x))),
        By::Email => u.email.as_deref().map(|x| K::S(caseless_key(x))),
        By::FullName => u.full_name.as_deref().map(|x| K::S(caseless_key(x))),
        By::BirthDate => u.birth_date.clone().map(K::S),
        By::Insert => Some(K::I(u.insert_instant)),
        By::LastLogin => u.last_login_instant.map(K::I),
    }
}

fn model_cmp(specs: &[Spec], a: &User, b: &User) -> Ordering {
    for s in specs {
        let o = match (key(s.by, a), key(s.by, b)) {
            (None, None) => continue,
            (None, Some(_)) => {
                return if s.missing_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            (Some(_), None) => {
                return if s.missing_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (Some(x), Some(y)) => x.cmp(&y),
        };
        let o = if s.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = a.id.cmp(&b.id);
    if specs.last().is_some_and(|s| s.desc) {
        o.reverse()
    } else {
        o
    }
}

fn naive(users: &[User], f: Option<&Filter>, specs: &[Spec]) -> Vec<Uuid> {
    let mut m: Vec<&User> = users
        .iter()
        .filter(|u| f.is_none_or(|f| f.matches(u)))
        .collect();
    m.sort_by(|a, b| model_cmp(specs, a, b));
    m.into_iter().map(|u| u.id).collect()
}

fn ids(us: &[User]) -> Vec<Uuid> {
    us.iter().map(|u| u.id).collect()
}

// ---- random users and filters ----

const NAMES: &[&str] = &["ab", "Abc", "abd", "b", "straße", "STRASSE", "ＡＢe", "zed"];
const EMAILS: &[&str] = &["ab@x.io", "AB2@x.io", "b@y.io", "abc", "zed@x.io"];
const LAST: &[&str] = &["Smith", "Johnson", "son", "Ng"];
const ROLES: &[&str] = &["admin", "staff", "x", "ADMIN"];
const DATES: &[&str] = &["1990-01-01", "2000-12-31", "1985-06-15"];

#[derive(Clone, Debug)]
struct Row {
    username: Option<usize>,
    email: Option<usize>,
    external: Option<u8>,
    last: Option<usize>,
    full: Option<usize>,
    roles: Vec<usize>,
    birth: Option<usize>,
    login: Option<i64>,
    active: bool,
    advance: i64,
    data: Option<i64>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        (
            prop::option::of(0..NAMES.len()),
            prop::option::of(0..EMAILS.len()),
            prop::option::of(0u8..4),
            prop::option::of(0..LAST.len()),
            prop::option::of(0..NAMES.len()),
        ),
        (
            prop::collection::vec(0..ROLES.len(), 0..3),
            prop::option::of(0..DATES.len()),
            prop::option::of(0i64..5),
            any::<bool>(),
            0i64..3,
            prop::option::of(-2i64..3),
        ),
    )
        .prop_map(
            |(
                (username, email, external, last, full),
                (roles, birth, login, active, advance, data),
            )| Row {
                username,
                email,
                external,
                last,
                full,
                roles,
                birth,
                login,
                active,
                advance,
                data,
            },
        )
}

fn populate(rows: &[Row]) -> (Directory, Vec<User>) {
    let (dir, clock) = dir_with_clock();
    for r in rows {
        clock.advance(r.advance);
        let mut n = NewUser::default().active(r.active);
        n.profile.username = r.username.map(|i| NAMES[i].to_owned());
        n.profile.email = r.email.map(|i| {
            let e = EMAILS[i];
            if e.contains('@') {
                e.to_owned()
            } else {
                format!("{e}@q.io")
            }
        });
        n.profile.external_id = r.external.map(|x| format!("ext-{x}"));
        // A secondary email (indexed, not unique) for some users.
        if let Some(x) = r.external {
            let kind = if x % 2 == 0 { "home" } else { "Work" };
            n.profile
                .emails
                .push(userdir::MultiValue::new(format!("Sec{}@Home.io", x / 2)).kind(kind));
        }
        n.profile.last_name = r.last.map(|i| LAST[i].to_owned());
        n.profile.full_name = r.full.map(|i| format!("{} {}", NAMES[i], r.advance));
        n.profile.roles = r.roles.iter().map(|i| ROLES[*i].to_owned()).collect();
        n.profile.birth_date = r.birth.map(|i| DATES[i].to_owned());
        if let Some(d) = r.data {
            n.profile.data.insert("level".into(), d.into());
        }
        n.last_login_instant = r.login.map(|x| 1_000_000 + x);
        // Duplicates and users without a login id are refused: fine, they are skipped.
        let _ = dir.create(n);
    }
    let users = all_users(&dir);
    (dir, users)
}

fn str_pool() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMES).prop_map(str::to_owned),
        prop::sample::select(EMAILS).prop_map(str::to_owned),
        prop::sample::select(LAST).prop_map(str::to_owned),
        prop::sample::select(ROLES).prop_map(str::to_owned),
        prop::sample::select(DATES).prop_map(str::to_owned),
        Just("a".to_owned()),
        Just("AB".to_owned()),
        Just("st".to_owned()),
        Just("ext-1".to_owned()),
        Just(String::new()),
    ]
}

fn leaf(users_ids: Vec<Uuid>) -> impl Strategy<Value = Filter> {
    let c = |attr: Attr, op: CompareOp, value: Value| Filter::Compare { attr, op, value };
    let sop = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Sw,
        CompareOp::Co,
        CompareOp::Ne,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Le,
    ]);
    let tattr = prop::sample::select(vec![
        at("userName"),
        at("emails.value"),
        at("externalId"),
        at("name.familyName"),
        at("name.formatted"),
        at("roles.value"),
        at("birthDate"),
    ]);
    let ids = if users_ids.is_empty() {
        vec![Uuid::nil()]
    } else {
        users_ids
    };
    prop_oneof![
        4 => (tattr.clone(), sop, str_pool()).prop_map(move |(a, o, v)| c(a, o, Value::String(v))),
        3 => (prop::sample::select(vec![at("userName"), at("emails.value"), at("externalId"), at("roles.value")]), str_pool())
            .prop_map(move |(a, v)| c(a, CompareOp::Eq, Value::String(v))),
        1 => tattr.prop_map(Filter::Present),
        1 => any::<bool>().prop_map(move |b| c(at("active"), CompareOp::Eq, Value::Bool(b))),
        1 => (prop::sample::select(vec![CompareOp::Gt, CompareOp::Ge, CompareOp::Lt, CompareOp::Le, CompareOp::Eq]), 1_000_000i64..1_000_040)
            .prop_map(move |(o, t)| c(at("meta.created"), o, Value::Int(t))),
        1 => (prop::sample::select(vec![CompareOp::Gt, CompareOp::Eq, CompareOp::Ne]), -2i64..3)
            .prop_map(move |(o, t)| c(Attr::Data(vec!["level".into()]), o, Value::Int(t))),
        1 => prop::sample::select(ids).prop_map(move |id| c(Attr::Id, CompareOp::Eq, Value::String(id.to_string().to_uppercase()))),
        1 => str_pool().prop_map(|v| Filter::ValuePath { attr: Multi::EMAILS, filter: Box::new(Filter::Compare { attr: Attr::Element(Sub::Value), op: CompareOp::Sw, value: Value::String(v) }) }),
        1 => (prop::sample::select(vec!["home", "WORK", "other"]), str_pool()).prop_map(|(t, v)| Filter::ValuePath { attr: Multi::EMAILS, filter: Box::new(Filter::Compare { attr: Attr::Element(Sub::Type), op: CompareOp::Eq, value: Value::String(t.to_owned()) }.and(Filter::Compare { attr: Attr::Element(Sub::Value), op: CompareOp::Co, value: Value::String(v) })) }),
        1 => prop::sample::select(vec!["home", "WORK", "other"]).prop_map(|t| Filter::ValuePath { attr: Multi::EMAILS, filter: Box::new(Filter::Compare { attr: Attr::Element(Sub::Type), op: CompareOp::Eq, value: Value::String(t.to_owned()) }) }),
        1 => (prop::sample::select(vec![CompareOp::Eq, CompareOp::Sw, CompareOp::Co]), prop::sample::select(vec!["sec0@home.io", "SEC1", "home.io", "s", "ab"])).prop_map(move |(o, v)| c(at("emails"), o, Value::String(v.to_owned()))),
        1 => str_pool().prop_map(|v| Filter::ValuePath { attr: Multi::ROLES, filter: Box::new(Filter::Compare { attr: Attr::Element(Sub::Value), op: CompareOp::Eq, value: Value::String(v) }) }),
        1 => Just(c(at("lastLogin"), CompareOp::Eq, Value::Null)),
    ]
}

fn filter(users_ids: Vec<Uuid>) -> impl Strategy<Value = Filter> {
    leaf(users_ids).prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            3 => (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            1 => inner.prop_map(Filter::negate),
        ]
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec![
            By::Username,
            By::Email,
            By::FullName,
            By::BirthDate,
            By::Insert,
            By::LastLogin,
        ]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(by, desc, missing_first)| Spec {
            by,
            desc,
            missing_first,
        })
}

fn scenario() -> impl Strategy<Value = (Vec<Row>, Vec<u8>, Vec<Spec>, usize, u8)> {
    (
        prop::collection::vec(row(), 0..25),
        prop::collection::vec(any::<u8>(), 0..6),
        prop::collection::vec(spec(), 0..3),
        1usize..7,
        any::<u8>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn planned_search_equals_a_naive_scan(
        (rows, id_picks, specs, limit, seed) in scenario(),
        filter_seed in any::<u64>(),
    ) {
        let (dir, users) = populate(&rows);
        let all_ids = ids(&users);
        // Draw a filter that can name existing ids.
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            ProptestConfig::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &{ let mut s = [0u8; 32]; s[..8].copy_from_slice(&filter_seed.to_le_bytes()); s },
            ),
        );
        let f = filter(all_ids.clone()).new_tree(&mut runner).unwrap().current();
        let sorts: Vec<SortField> = specs.iter().map(|s| s.field()).collect();
        let with_sort = |mut s: Search| { for f in &sorts { s = s.sort(*f); } s };

        // Filtered search vs the naive scan, whole result in one page.
        let expected = naive(&users, Some(&f), &specs);
        let page = dir.search(&with_sort(Search::with_filter(f.clone()).limit(usize::MAX))).unwrap();
        prop_assert_eq!(ids(&page.users), expected.clone(), "filter {} plan {}", f,
            dir.explain(&Search::with_filter(f.clone())).unwrap());
        prop_assert_eq!(page.total as usize, expected.len());

        // Offset pages reassemble the same list.
        let mut got = Vec::new();
        let mut off = 0;
        loop {
            let p = dir.search(&with_sort(Search::with_filter(f.clone())).offset(off).limit(limit)).unwrap();
            prop_assert_eq!(p.total as usize, expected.len());
            if p.users.is_empty() { break; }
            off += p.users.len();
            got.extend(ids(&p.users));
        }
        prop_assert_eq!(&got, &expected);

        // Cursor pages too (with an offset on the first page only).
        let first_offset = usize::from(seed % 3);
        let mut got = Vec::new();
        let mut search = with_sort(Search::with_filter(f.clone())).offset(first_offset).limit(limit);
        loop {
            let p = dir.search(&search).unwrap();
            got.extend(ids(&p.users));
            match p.next_search() { Some(s) => search = s, None => break }
        }
        prop_assert_eq!(&got[..], expected.get(first_offset..).unwrap_or(&[]));

        // Without a filter, and by ids.
        let page = dir.search(&with_sort(Search::all().limit(usize::MAX))).unwrap();
        prop_assert_eq!(ids(&page.users), naive(&users, None, &specs));
        let picked: Vec<Uuid> = id_picks.iter().filter_map(|i| all_ids.get(usize::from(*i) % all_ids.len().max(1)).copied())
            .chain([Uuid::nil()]).collect();
        let page = dir.search(&with_sort(Search::ids(picked.clone()).and_filter(f.clone()).limit(usize::MAX))).unwrap();
        let chosen: Vec<User> = users.iter().filter(|u| picked.contains(&u.id)).cloned().collect();
        prop_assert_eq!(ids(&page.users), naive(&chosen, Some(&f), &specs));
    }
}

/// Searches the ordered index plans serve (sorted by userName or email, alone or under an
/// `sw` on the same attribute; `roles eq` alone), over random users.
fn ordered_search() -> impl Strategy<Value = Search> {
    let sorted = (
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            "a", "AB", "s", "b", "z", "q", "",
        ])),
    )
        .prop_map(|(by, desc, missing_first, prefix)| {
            let (f, attr) = match by {
                0 => (SortField::username(), "userName"),
                1 => (SortField::email(), "email"),
                // SCIM `sortBy=emails`: by the primary email, the login email.
                _ => (SortField::attribute("emails").unwrap(), "email"),
            };
            let f = if desc { f.desc() } else { f };
            let f = if missing_first { f.missing_first() } else { f };
            match prefix {
                None => Search::all().sort(f),
                Some(p) => Search::filter(&format!(r#"{attr} sw "{p}""#))
                    .unwrap()
                    .sort(f),
            }
        });
    prop_oneof![
        3 => sorted,
        1 => prop::sample::select(ROLES.to_vec())
            .prop_map(|r| Search::filter(&format!(r#"roles eq "{r}""#)).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Pages read from an index in order (and their totals from counters or key counts) are
    /// the pages of the decode-and-sort path (`without_indexes`): same users, same order,
    /// same ties broken by id, same totals, same cursor chains, both orders, any offset.
    #[test]
    fn index_ordered_pages_equal_the_decode_and_sort_path(
        (rows, _, _, limit, seed) in scenario(),
        search in ordered_search(),
        offset in 0usize..4,
        remove in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let (dir, users) = populate(&rows);
        // Some deletes and a deactivation, so that counters have gone down too.
        for r in &remove {
            if let Some(u) = users.get(usize::from(*r) % users.len().max(1)) {
                let _ = dir.delete(u.id);
            }
        }
        if let Some(u) = users.get(usize::from(seed) % users.len().max(1)) {
            let _ = dir.deactivate(u.id);
        }
        dir.check_integrity().unwrap();
        let plan = dir.explain(&search).unwrap().to_string();
        prop_assert!(plan.contains("Ordered"), "plan {}", plan);
        let whole = |s: Search| dir.search(&s.limit(usize::MAX)).unwrap();
        let want = whole(search.clone().without_indexes());
        let got = whole(search.clone());
        prop_assert_eq!(ids(&got.users), ids(&want.users), "plan {}", plan);
        prop_assert_eq!(got.total, want.total);
        // Offset pages, then cursor pages (the first with an offset), on both paths.
        let pages = |s: Search| {
            let mut out = Vec::new();
            let mut s = s.offset(offset).limit(limit);
            loop {
                let p = dir.search(&s).unwrap();
                out.push((ids(&p.users), p.total, p.next.is_some()));
                match p.next_search() { Some(n) => s = n, None => break }
            }
            out
        };
        prop_assert_eq!(pages(search.clone()), pages(search.clone().without_indexes()), "plan {}", plan);
        let p = dir.search(&search.clone().offset(offset).limit(limit)).unwrap();
        let q = dir.search(&search.clone().without_indexes().offset(offset).limit(limit)).unwrap();
        prop_assert_eq!(ids(&p.users), ids(&q.users));
        prop_assert_eq!(p.total, q.total);
    }
}

// ---- explain ----

fn explain(dir: &Directory, s: Search) -> Plan {
    dir.explain(&s).unwrap()
}

#[test]
fn explain_uses_an_index_for_each_indexable_shape() {
    let (dir, _) = dir_with_clock();
    let f = |s: &str| Search::filter(s).unwrap();
    let show = |s: Search| explain(&dir, s).to_string();
    let id = Uuid::from_u128(7);
    assert_eq!(show(Search::ids(vec![id, id])), "IdList(1 ids)");
    assert_eq!(show(f(&format!(r#"id eq "{id}""#))), "IdList(1 ids)");
    assert_eq!(
        show(f(r#"userName eq "BoB""#)),
        r#"LoginKeyEq(userName = "bob")"#
    );
    // `email` is the login email (the unique login index); `emails` are all of a user's
    // emails (the secondary, non-unique index).
    assert_eq!(
        show(f(r#"email eq "A@X.io""#)),
        r#"LoginKeyEq(email = "a@x.io")"#
    );
    assert_eq!(
        show(f(r#"emails eq "A@X.io""#)),
        r#"EmailValue(emails eq "a@x.io")"#
    );
    assert_eq!(
        show(f(r#"emails.value co "X.IO""#)),
        r#"EmailValue(emails co "x.io")"#
    );
    assert_eq!(
        show(f(r#"emails[type eq "Home"]"#)),
        r#"EmailType("home") + filter emails[type eq "Home"]"#
    );
    assert_eq!(
        show(f(r#"emails[type eq "home" and value sw "b"]"#)),
        r#"EmailValue(emails sw "b") + filter emails[type eq "home" and value sw "b"]"#
    );
    assert_eq!(
        show(f(r#"userName sw "AB""#)),
        r#"LoginKeyPrefix(userName sw "ab")"#
    );
    assert_eq!(
        show(f(r#"email sw "ab""#)),
        r#"LoginKeyPrefix(email sw "ab")"#
    );
    assert_eq!(show(f(r#"externalId eq "x-1""#)), r#"ExternalIdEq("x-1")"#);
    // `roles eq` alone, in id order: the page from the index, the total from its counter.
    // Roles compare caselessly (RFC 7643 caseExact=false).
    assert_eq!(show(f(r#"role eq "Admin""#)), r#"RoleOrdered("admin")"#);
    assert_eq!(
        show(f(r#"roles[value eq "admin"]"#)),
        r#"RoleOrdered("admin")"#
    );
    assert_eq!(
        show(f(r#"role eq "admin""#).sort(SortField::full_name())),
        r#"RoleEq("admin")"#
    );
    // Sorted by userName or email: the login keys in order, also under an `sw` on the same
    // attribute; another filter or sort decodes and sorts the matches.
    assert_eq!(
        show(Search::all().sort(SortField::username())),
        "LoginKeyOrdered(userName, asc)"
    );
    assert_eq!(
        show(f(r#"userName sw "JO""#).sort(SortField::username().desc())),
        r#"LoginKeyOrdered(userName sw "jo", desc)"#
    );
    assert_eq!(
        show(f(r#"email sw "jo""#).sort(SortField::email())),
        r#"LoginKeyOrdered(email sw "jo", asc)"#
    );
    assert_eq!(
        show(f(r#"email sw "jo""#).sort(SortField::username())),
        r#"LoginKeyPrefix(email sw "jo")"#
    );
    assert_eq!(
        show(
            f(r#"userName sw "jo""#)
                .sort(SortField::username())
                .without_indexes()
        ),
        r#"FullScan + filter userName sw "jo""#
    );
    assert_eq!(
        show(f(
            r#"meta.created ge 10 and meta.created lt "1970-01-01T00:00:01Z""#
        )),
        "InsertRange([10, 1000))"
    );
    assert_eq!(
        show(Search::all().sort(SortField::insert_instant().desc())),
        "InsertRange((-inf, +inf), ordered)"
    );
    assert_eq!(
        show(f("meta.created gt 5").sort(SortField::insert_instant())),
        "InsertRange((5, +inf), ordered)"
    );
    // Equality beats prefix beats role; the rest is the residual.
    assert_eq!(
        show(f(
            r#"role eq "a" and userName sw "x" and name.familyName co "son" and userName eq "bob""#
        )),
        r#"LoginKeyEq(userName = "bob") + filter roles.value eq "a" and userName sw "x" and name.familyName co "son""#
    );
    assert_eq!(
        show(f(r#"userName eq "a" or role eq "b""#)),
        r#"Union(LoginKeyEq(userName = "a") | RoleEq("b"))"#
    );
    assert_eq!(
        show(f(r#"(userName eq "a" and active eq true) or role eq "b""#)),
        r#"Union(LoginKeyEq(userName = "a") | RoleEq("b")) + filter userName eq "a" and active eq true or roles.value eq "b""#
    );
    assert_eq!(
        show(f(r#"userName eq "a" or active eq true"#)),
        r#"FullScan + filter userName eq "a" or active eq true"#
    );
    assert_eq!(
        show(f(r#"name.familyName co "son""#)),
        r#"FullScan + filter name.familyName co "son""#
    );
    assert_eq!(
        show(f(r#"not (userName eq "a")"#)),
        r#"FullScan + filter not (userName eq "a")"#
    );
    assert_eq!(show(Search::all()), "FullScan");
    assert!(matches!(
        explain(&dir, f(r#"userName sw "a""#)),
        Plan::LoginKeyPrefix { residual: None, .. }
    ));
}

// ---- sort orders ----

#[test]
fn sort_orders_with_missing_values_and_direction() {
    let (dir, clock) = dir_with_clock();
    let mk = |name: &str, full: Option<&str>, login: Option<i64>| {
        clock.advance(10);
        let mut n = NewUser::with_username(name);
        n.profile.full_name = full.map(str::to_owned);
        n.last_login_instant = login;
        dir.create(n).unwrap()
    };
    let bob = mk("bob", Some("Bob Z"), Some(5));
    let ann = mk("Ann", None, None);
    let cid = mk("cid", Some("alice A"), Some(9));
    let dee = mk("DEE", None, Some(5));
    let names = |s: Search| -> Vec<String> {
        dir.search(&s.limit(100))
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.profile.username.unwrap())
            .collect()
    };
    assert_eq!(
        names(Search::all().sort(SortField::username())),
        ["Ann", "bob", "cid", "DEE"]
    );
    assert_eq!(
        names(Search::all().sort(SortField::username().desc())),
        ["DEE", "cid", "bob", "Ann"]
    );
    assert_eq!(
        names(Search::all().sort(SortField::insert_instant())),
        ["bob", "Ann", "cid", "DEE"]
    );
    assert_eq!(
        names(Search::all().sort(SortField::insert_instant().desc())),
        ["DEE", "cid", "Ann", "bob"]
    );
    // Missing full names last (default) or first, in either direction.
    let full = names(Search::all().sort(SortField::full_name()));
    assert_eq!(&full[..2], ["cid", "bob"]);
    let missing_tail: BTreeSet<_> = full[2..].iter().cloned().collect();
    assert_eq!(
        missing_tail,
        BTreeSet::from(["Ann".to_owned(), "DEE".to_owned()])
    );
    let full = names(Search::all().sort(SortField::full_name().desc().missing_first()));
    assert_eq!(&full[2..], ["bob", "cid"]);
    let full = names(Search::all().sort(SortField::full_name().desc().missing_last()));
    assert_eq!(&full[..2], ["bob", "cid"]);
    // Ties on last login broken by id; a second key orders within the tie.
    let by_login = names(
        Search::all()
            .sort(SortField::last_login())
            .sort(SortField::username().desc()),
    );
    assert_eq!(by_login, ["DEE", "bob", "cid", "Ann"]);
    let by_login = names(Search::all().sort(SortField::last_login().missing_first()));
    assert_eq!(by_login[0], "Ann");
    assert_eq!(by_login[3], "cid");
    let mut tie = [bob.id, dee.id];
    tie.sort();
    let tie_names: Vec<_> = tie
        .iter()
        .map(|id| if *id == bob.id { "bob" } else { "DEE" })
        .collect();
    assert_eq!(&by_login[1..3], &tie_names[..]);
    let _ = (ann, cid);
}

#[test]
fn offset_paging_and_total() {
    let (dir, clock) = dir_with_clock();
    for i in 0..25 {
        clock.advance(1);
        dir.create(
            NewUser::with_username(format!("user{i:02}")).role(if i % 2 == 0 {
                "even"
            } else {
                "odd"
            }),
        )
        .unwrap();
    }
    let s = Search::filter(r#"role eq "even""#)
        .unwrap()
        .sort(SortField::username());
    let p = dir.search(&s.clone()).unwrap();
    assert_eq!((p.total, p.users.len()), (13, 13));
    let p = dir.search(&s.clone().offset(10).limit(2)).unwrap();
    let names: Vec<_> = p
        .users
        .iter()
        .map(|u| u.username.clone().unwrap())
        .collect();
    assert_eq!(names, ["user20", "user22"]);
    assert!(p.next.is_some());
    let p = dir.search(&s.clone().offset(12).limit(2)).unwrap();
    assert_eq!(p.users.len(), 1);
    assert!(p.next.is_none());
    let p = dir.search(&s.offset(50)).unwrap();
    assert_eq!((p.total, p.users.len()), (13, 0));
    // Default page size.
    assert_eq!(dir.search(&Search::all()).unwrap().users.len(), 20);
    assert_eq!(dir.search(&Search::all()).unwrap().total, 25);
}

#[test]
fn cursor_of_another_order_is_refused_and_cursors_round_trip() {
    let (dir, _) = dir_with_clock();
    for i in 0..3 {
        dir.create(NewUser::with_username(format!("u{i}"))).unwrap();
    }
    let p = dir
        .search(&Search::all().sort(SortField::username()).limit(1))
        .unwrap();
    let c = p.next.clone().unwrap();
    let text = c.to_string();
    assert_eq!(text.parse::<userdir::Cursor>().unwrap(), c);
    assert!(matches!(
        dir.search(&Search::all().sort(SortField::email()).after(c)),
        Err(userdir::Error::InvalidCursor(_))
    ));
    assert!("not a cursor".parse::<userdir::Cursor>().is_err());
    assert!("".parse::<userdir::Cursor>().is_err());
}

// ---- cursor paging while users come and go ----

fn churn_paging(search: Search, filter_keeps: impl Fn(&User) -> bool, seed: u64) {
    let (dir, clock) = dir_with_clock();
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut counter = 0;
    let mut make = |dir: &Directory, clock: &ManualClock, r: u64| {
        counter += 1;
        if !r.is_multiple_of(3) {
            clock.advance(1);
        }
        let name = format!("{}{counter:04}", ["ab", "b", "Ab", "c"][(r % 4) as usize]);
        dir.create(NewUser::with_username(name).role(if r.is_multiple_of(2) { "r" } else { "s" }))
            .unwrap()
    };
    let mut present: Vec<Uuid> = Vec::new();
    for _ in 0..60 {
        let r = next();
        present.push(make(&dir, &clock, r).id);
    }
    let initial: HashSet<Uuid> = present.iter().copied().collect();
    let mut deleted: HashSet<Uuid> = HashSet::new();
    let mut seen: Vec<Uuid> = Vec::new();
    let mut s = search.limit(7);
    loop {
        let page = dir.search(&s).unwrap();
        seen.extend(page.users.iter().map(|u| u.id));
        // Between pages: insert a few users and delete a few.
        for _ in 0..3 {
            let r = next();
            present.push(make(&dir, &clock, r).id);
        }
        for _ in 0..2 {
            if present.is_empty() {
                break;
            }
            let i = (next() as usize) % present.len();
            let id = present.swap_remove(i);
            dir.delete(id).unwrap();
            deleted.insert(id);
        }
        match page.next_search() {
            Some(n) => s = n,
            None => break,
        }
    }
    let unique: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a user was returned twice");
    let final_users = all_users(&dir);
    for u in final_users
        .iter()
        .filter(|u| initial.contains(&u.id) && !deleted.contains(&u.id))
    {
        if filter_keeps(u) {
            assert!(
                unique.contains(&u.id),
                "user {} present throughout was skipped",
                u.username.as_deref().unwrap_or("")
            );
        }
    }
}

#[test]
fn cursor_paging_under_concurrent_inserts_and_deletes() {
    let seeds: u64 = std::env::var("CHURN_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for seed in 1..=seeds {
        let seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        churn_paging(Search::all(), |_| true, seed);
        churn_paging(Search::all().sort(SortField::username()), |_| true, seed);
        churn_paging(
            Search::all().sort(SortField::username().desc()),
            |_| true,
            seed,
        );
        churn_paging(
            Search::all().sort(SortField::insert_instant()),
            |_| true,
            seed,
        );
        churn_paging(
            Search::all().sort(SortField::insert_instant().desc()),
            |_| true,
            seed,
        );
        churn_paging(
            Search::filter(r#"userName sw "ab""#).unwrap(),
            |u| caseless_key(u.username.as_deref().unwrap_or("")).starts_with("ab"),
            seed,
        );
        churn_paging(
            Search::filter(r#"role eq "r""#)
                .unwrap()
                .sort(SortField::username().desc()),
            |u| u.roles.contains("r"),
            seed,
        );
        churn_paging(
            Search::filter(r#"userName co "b""#)
                .unwrap()
                .sort(SortField::last_login().missing_first()),
            |u| caseless_key(u.username.as_deref().unwrap_or("")).contains('b'),
            seed,
        );
    }
}

/// `SortField::attribute` sorts by any attribute: text caselessly, multi-valued attributes
/// by their primary element, and pages by cursor across such keys.
#[test]
fn sort_by_any_attribute() {
    let (dir, _) = dir_with_clock();
    for (n, title, email) in [
        ("a", "beta", "z@x.io"),
        ("b", "Alpha", "y@x.io"),
        ("c", "gamma", "x@x.io"),
    ] {
        dir.create(
            NewUser::with_username(n)
                .title(title)
                .email(email)
                .add_email(userdir::MultiValue::new(format!("{n}@home.io")).kind("home")),
        )
        .unwrap();
    }
    dir.create(NewUser::with_username("d")).unwrap();
    let names = |s: Search| -> Vec<String> {
        dir.search(&s)
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.profile.username.unwrap())
            .collect()
    };
    let by = |a: &str| SortField::attribute(a).unwrap();
    assert_eq!(names(Search::all().sort(by("title"))), ["b", "a", "c", "d"]);
    assert_eq!(
        names(Search::all().sort(by("title").desc())),
        ["c", "a", "b", "d"]
    );
    // emails: the primary (login) email decides.
    assert_eq!(
        names(Search::all().sort(by("emails"))),
        ["c", "b", "a", "d"]
    );
    // Paging by cursor with such a key.
    let first = dir
        .search(&Search::all().sort(by("title")).limit(2))
        .unwrap();
    let rest = dir
        .search(
            &Search::all()
                .sort(by("title"))
                .limit(2)
                .after(first.next.unwrap()),
        )
        .unwrap();
    let ids: Vec<_> = rest
        .users
        .iter()
        .map(|u| u.profile.username.clone().unwrap())
        .collect();
    assert_eq!(ids, ["c", "d"]);
    assert!(SortField::attribute("password").is_none());
    assert!(SortField::attribute("data.x").is_none());
}
