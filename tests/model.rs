//! Model-based test: random sequences of operations run against a directory and against a
//! plain in-memory reference model (tests/fuzz_bodies/model.rs); after every step the outcome
//! (Ok value or error variant, with the ids it names), every lookup of a sample of keys, the
//! count, a battery of searches and `check_integrity()` must agree.
//!
//! Operations: create, update, deactivate, reactivate, delete, their bulk forms, `write`
//! transactions of two operations (patches included) that commit or fail half-way, reopen,
//! imports (all-or-nothing; a refused batch's report must name exactly the problems the model
//! predicts: row, field, and reason with the row or user it names), patches of userName,
//! emails, externalId, active and name.familyName (refused ones change nothing), and searches
//! (SCIM filter text generated from the model's own filter terms; ids, totals and every cursor
//! page compared).
//!
//! `USERDIR_MODEL_CASES` sets the number of cases (default 64, each up to 40 operations).

mod fuzz_bodies;

use fuzz_bodies::model::{
    Cut, Harness, MAttr, MFilter, MOp, Op, PField, PKind, PStep, PVal, Pw, Row, SearchSpec, Sel,
    SortBy, Ver,
};
use proptest::prelude::*;
use userdir::Durability;

fn cases() -> u32 {
    std::env::var("USERDIR_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn sel() -> impl Strategy<Value = Sel> {
    prop_oneof![
        3 => Just(Sel::Keep),
        3 => any::<u8>().prop_map(Sel::Set),
        1 => Just(Sel::Clear),
    ]
}

fn leaf_op() -> impl Strategy<Value = Op> {
    let create = (
        proptest::option::weighted(0.6, any::<u8>()),
        proptest::option::weighted(0.8, any::<u8>()),
        proptest::option::weighted(0.5, any::<u8>()),
        proptest::option::weighted(0.3, any::<u8>()),
        proptest::bool::weighted(0.85),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(id, username, email, external, active, password)| Op::Create {
                id,
                username,
                email,
                external,
                active,
                password,
            },
        );
    let update = (
        any::<u8>(),
        sel(),
        sel(),
        sel(),
        prop_oneof![Just(Ver::Any), Just(Ver::Current), Just(Ver::Stale)],
    )
        .prop_map(|(target, username, email, external, version)| Op::Update {
            target,
            username,
            email,
            external,
            version,
        });
    let targets = proptest::collection::vec(any::<u8>(), 0..4);
    prop_oneof![
        5 => create,
        3 => update,
        4 => patch(),
        1 => any::<u8>().prop_map(Op::Deactivate),
        1 => any::<u8>().prop_map(Op::Reactivate),
        1 => any::<u8>().prop_map(Op::Delete),
        1 => (targets.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(t, u)| Op::DeactivateMany(t, u)),
        1 => (targets, proptest::bool::weighted(0.2)).prop_map(|(t, u)| Op::DeleteMany(t, u)),
    ]
}

fn import_row() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.3, any::<u8>()),
        proptest::option::weighted(0.7, any::<u8>()),
        proptest::option::weighted(0.7, any::<u8>()),
        proptest::option::weighted(0.3, any::<u8>()),
        proptest::option::weighted(0.4, any::<u8>()),
        proptest::bool::weighted(0.8),
        prop_oneof![
            4 => Just(Pw::None),
            2 => Just(Pw::Hashed),
            1 => Just(Pw::Plain),
            1 => Just(Pw::Weak),
        ],
    )
        .prop_map(
            |(id, username, email, external, family, active, password)| Row {
                id,
                username,
                email,
                external,
                family,
                active,
                password,
            },
        )
}

/// A patch step: mostly one that can apply (a text value for a text field, a boolean for
/// `active`), sometimes anything (read-only and unknown paths, values of the wrong type).
fn patch_step() -> impl Strategy<Value = PStep> {
    let text_field = prop_oneof![
        3 => Just(PField::UserName),
        3 => Just(PField::Email),
        2 => Just(PField::ExternalId),
        2 => Just(PField::FamilyName),
    ];
    let text_value = prop_oneof![
        4 => any::<u8>().prop_map(PVal::Str),
        4 => any::<u8>().prop_map(PVal::Taken),
        1 => any::<u8>().prop_map(PVal::Obj),
        1 => Just(PVal::Null),
    ];
    let set = prop_oneof![3 => Just(PKind::Replace), 1 => Just(PKind::Add)];
    let text = (
        prop_oneof![5 => set.clone(), 1 => Just(PKind::Remove)],
        text_field,
        text_value,
    );
    let active = (
        set,
        Just(PField::Active),
        any::<bool>().prop_map(PVal::Bool),
    );
    let any_kind = prop_oneof![Just(PKind::Add), Just(PKind::Replace), Just(PKind::Remove)];
    let any_field = prop_oneof![
        Just(PField::UserName),
        Just(PField::Email),
        Just(PField::ExternalId),
        Just(PField::Active),
        Just(PField::FamilyName),
        Just(PField::ReadOnly),
        Just(PField::Unknown),
    ];
    let any_value = prop_oneof![
        any::<u8>().prop_map(PVal::Str),
        any::<u8>().prop_map(PVal::Taken),
        any::<u8>().prop_map(PVal::Obj),
        Just(PVal::Null),
        any::<bool>().prop_map(PVal::Bool),
    ];
    (
        prop_oneof![
            6 => text,
            2 => active,
            1 => (any_kind, any_field, any_value),
        ],
        any::<u8>(),
    )
        .prop_map(|((kind, field, value), path)| PStep {
            kind,
            field,
            path,
            value,
        })
}

fn patch() -> impl Strategy<Value = Op> {
    (
        any::<u8>(),
        proptest::collection::vec(patch_step(), 0..4),
        prop_oneof![
            3 => Just(Ver::Any),
            2 => Just(Ver::Current),
            1 => Just(Ver::Stale)
        ],
    )
        .prop_map(|(target, steps, version)| Op::Patch {
            target,
            steps,
            version,
        })
}

fn filter() -> impl Strategy<Value = MFilter> {
    let attr = prop_oneof![
        3 => Just(MAttr::UserName),
        3 => Just(MAttr::Email),
        1 => Just(MAttr::ExternalId),
        1 => Just(MAttr::FamilyName),
    ];
    let op = prop_oneof![
        3 => Just(MOp::Eq),
        1 => Just(MOp::Ne),
        3 => Just(MOp::Sw),
        1 => Just(MOp::Ew),
        1 => Just(MOp::Co),
    ];
    // Short prefixes and suffixes match several users.
    let cut = prop_oneof![
        2 => Just(Cut::Whole),
        2 => (0u8..4).prop_map(Cut::Prefix),
        1 => any::<u8>().prop_map(Cut::Prefix),
        1 => (0u8..6).prop_map(Cut::Suffix),
    ];
    let leaf = prop_oneof![
        // Half the literals are (cut from) an existing user's value.
        6 => (attr.clone(), any::<u8>(), op, any::<u8>(), any::<bool>(), cut).prop_map(
            |(attr, name, op, lit, live, cut)| MFilter::Cmp {
                attr,
                name,
                op,
                lit,
                live,
                cut
            }
        ),
        1 => (attr, any::<u8>()).prop_map(|(a, n)| MFilter::Pr(a, n)),
        1 => any::<bool>().prop_map(MFilter::Active),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| MFilter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| MFilter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| MFilter::Not(Box::new(a))),
        ]
    })
}

fn search() -> impl Strategy<Value = Op> {
    (
        proptest::option::weighted(0.9, filter()),
        prop_oneof![
            Just(SortBy::Id),
            Just(SortBy::UserName),
            Just(SortBy::Email)
        ],
        any::<bool>(),
        proptest::bool::weighted(0.3),
        prop_oneof![1 => Just(0u8), 4 => 1u8..3, 2 => 3u8..6],
        prop_oneof![3 => Just(0u8), 1 => 1u8..4],
    )
        .prop_map(|(filter, sort, desc, missing_first, limit, offset)| {
            Op::Search(SearchSpec {
                filter,
                sort,
                desc,
                missing_first,
                limit,
                offset,
            })
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => leaf_op(),
        3 => proptest::collection::vec(import_row(), 0..5).prop_map(Op::Import),
        3 => search(),
        2 => (leaf_op(), leaf_op(), any::<bool>())
            .prop_map(|(a, b, fail)| Op::Write(Box::new(a), Box::new(b), fail)),
        1 => Just(Op::Reopen),
    ]
}

fn run_ops(ops: &[Op], durability: Durability) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::on_file(tmp.path().join("model.redb"), durability);
    for (i, op) in ops.iter().enumerate() {
        h.step(op)
            .map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn directory_matches_model(
        ops in proptest::collection::vec(op(), 1..40),
        eventual in any::<bool>(),
    ) {
        let d = if eventual { Durability::Eventual } else { Durability::Immediate };
        run_ops(&ops, d)?;
    }
}

/// A fixed sequence touching every identity rule, so the interesting cases run on every
/// `cargo test` whatever the random cases hit.
#[test]
fn fixed_identity_sequence() {
    let c = |id, username, email| Op::Create {
        id,
        username,
        email,
        external: None,
        active: true,
        password: false,
    };
    let ops = vec![
        c(Some(0), Some(0), Some(0)), // bob / ann@example.com
        c(None, Some(1), None),       // BoB: duplicate username
        c(None, Some(15), None),      // username ann@example.com: is pool0's email
        c(Some(1), Some(3), Some(5)), // straße / straße@example.de
        c(None, Some(4), None),       // STRASSE: duplicate
        c(None, None, Some(6)),       // STRASSE@example.de: duplicate email
        c(Some(2), Some(6), None),    // Kelvin sign
        c(None, Some(7), None),       // kelvin: duplicate
        c(Some(3), Some(9), None),    // fullwidth admin
        c(None, Some(10), None),      // admin: duplicate
        c(Some(4), Some(12), None),   // café composed
        c(None, Some(13), None),      // decomposed: duplicate
        c(Some(5), Some(17), None),   // İstanbul
        c(None, Some(19), None),      // istanbul: distinct
        c(None, Some(18), None),      // i + combining dot: duplicate of İstanbul
        c(None, Some(20), None),      // empty: invalid
        c(Some(0), Some(21), None),   // whitespace only: invalid before duplicate id
        Op::Deactivate(0),
        c(None, Some(2), None), // BOB while bob is deactivated: still taken
        Op::Reopen,
        Op::Write(
            Box::new(Op::Delete(0)),
            Box::new(c(None, Some(2), None)),
            true,
        ),
        Op::Write(
            Box::new(Op::Delete(0)),
            Box::new(c(None, Some(2), None)),
            false,
        ),
        Op::DeleteMany(vec![1, 2], true),
        Op::DeactivateMany(vec![1, 2, 2], false),
        Op::Reopen,
        Op::Update {
            target: 1,
            username: Sel::Set(0),
            email: Sel::Keep,
            external: Sel::Set(0),
            version: Ver::Current,
        },
        Op::Update {
            target: 1,
            username: Sel::Clear,
            email: Sel::Clear,
            external: Sel::Keep,
            version: Ver::Stale,
        },
    ];
    for d in [Durability::Immediate, Durability::Eventual] {
        run_ops(&ops, d).unwrap();
    }
}

fn row(id: Option<u8>, username: Option<u8>, email: Option<u8>) -> Row {
    Row {
        id,
        username,
        email,
        external: None,
        family: None,
        active: true,
        password: Pw::None,
    }
}

fn step(kind: PKind, field: PField, value: PVal) -> PStep {
    PStep {
        kind,
        field,
        path: 0,
        value,
    }
}

fn patch_op(target: u8, steps: Vec<PStep>) -> Op {
    Op::Patch {
        target,
        steps,
        version: Ver::Current,
    }
}

/// Imports, patches and searches with hand-written expectations (besides the model's), so that
/// each rule is exercised on every `cargo test`.
#[test]
fn fixed_import_patch_search_sequence() {
    use fuzz_bodies::model::{ErrKind, Reason, Val, pool_id};
    use std::collections::BTreeSet;
    use userdir::Durability;

    let p0 = pool_id(0);
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::on_file(tmp.path().join("fixed.redb"), Durability::Eventual);
    let step_ok = |h: &mut Harness, op: Op| h.step_outcome(&op).unwrap();
    let ok = |h: &mut Harness, op: Op| {
        let r = step_ok(h, op);
        assert!(r.is_ok(), "{r:?}");
    };

    // pool 0: bob / ann@example.com / ext-1, then deactivated: still owns all three.
    ok(
        &mut h,
        Op::Create {
            id: Some(0),
            username: Some(0),
            email: Some(0),
            external: Some(0),
            active: true,
            password: false,
        },
    );
    ok(&mut h, Op::Deactivate(0));

    // A batch with a bad row of every kind: nothing written, every bad row reported.
    let bad = vec![
        Row {
            password: Pw::Plain,
            ..row(None, Some(23), Some(13)) // 0: carol / carol@example.org: fine
        },
        row(None, Some(24), Some(13)), // 1: Dave, email of row 0
        row(None, Some(1), None),      // 2: BoB: the deactivated user's username
        row(None, Some(20), None),     // 3: empty username
        Row {
            family: Some(5),
            ..row(None, None, Some(4)) // 4: email "bob" (and a bad family name)
        },
        row(None, Some(15), None),    // 5: username = pool 0's email
        row(Some(0), Some(23), None), // 6: pool 0's id, row 0's username
        Row {
            external: Some(2),
            ..row(None, Some(19), None) // 7: " ext-1 ": pool 0's external id
        },
        Row {
            password: Pw::Weak,
            ..row(None, Some(17), None) // 8: a password the policy refuses
        },
        row(None, None, None), // 9: neither username nor email
    ];
    let want: BTreeSet<(usize, &str, Reason)> = [
        (1, "email", Reason::InBatch(0)),
        (2, "username", Reason::Existing(p0)),
        (3, "username", Reason::Invalid),
        (4, "email", Reason::Invalid),
        (5, "username", Reason::Existing(p0)),
        (6, "id", Reason::Existing(p0)),
        (6, "username", Reason::InBatch(0)),
        (7, "external_id", Reason::Existing(p0)),
        (8, "password", Reason::Invalid),
        (9, "username", Reason::Invalid),
    ]
    .into_iter()
    .collect();
    assert_eq!(step_ok(&mut h, Op::Import(bad)), Err(ErrKind::Import(want)));
    assert_eq!(h.model.users.len(), 1);

    // A good batch: random and given ids, every kind of password, family names.
    let good = vec![
        Row {
            family: Some(0),
            password: Pw::Plain,
            ..row(None, Some(23), Some(13)) // carol, Smith
        },
        Row {
            family: Some(3),
            active: false,
            password: Pw::Hashed,
            ..row(None, Some(24), Some(14)) // Dave, empty family name
        },
        Row {
            family: Some(4),
            external: Some(3),
            ..row(Some(1), Some(3), Some(5)) // pool 1: straße / straße@example.de / ext-2
        },
        row(Some(2), None, Some(8)), // pool 2: k@example.io only
    ];
    match step_ok(&mut h, Op::Import(good)) {
        Ok(Val::Imported {
            imported: 4,
            hashed: 1,
            pre_hashed: 1,
            ids,
        }) => assert_eq!(&ids[2..], &[pool_id(1), pool_id(2)]),
        other => panic!("good import: {other:?}"),
    }
    assert_eq!(h.model.users.len(), 5);

    // Patches that must fail and change nothing.
    let before = h.model.users.clone();
    let refused = [
        // userName of the deactivated pool 0.
        (
            vec![step(PKind::Replace, PField::UserName, PVal::Str(1))],
            ErrKind::DuplicateUsername(p0),
        ),
        // Pool 0's email.
        (
            vec![step(PKind::Add, PField::Email, PVal::Str(2))],
            ErrKind::DuplicateEmail(p0),
        ),
        (
            vec![step(PKind::Replace, PField::ExternalId, PVal::Str(0))],
            ErrKind::DuplicateExternalId(p0),
        ),
        // Invalid values, after a valid step.
        (
            vec![
                step(PKind::Replace, PField::FamilyName, PVal::Str(2)),
                step(PKind::Replace, PField::Email, PVal::Str(10)),
            ],
            ErrKind::InvalidField("email"),
        ),
        (
            vec![step(PKind::Replace, PField::FamilyName, PVal::Str(5))],
            ErrKind::InvalidField("last_name"),
        ),
        (
            vec![
                step(PKind::Remove, PField::UserName, PVal::Null),
                step(PKind::Replace, PField::Email, PVal::Null),
            ],
            ErrKind::MissingLoginId,
        ),
        // Refused steps.
        (
            vec![
                step(PKind::Replace, PField::Active, PVal::Bool(false)),
                step(PKind::Replace, PField::ReadOnly, PVal::Str(0)),
            ],
            ErrKind::InvalidPatch("id".into()),
        ),
        (
            vec![step(PKind::Remove, PField::Active, PVal::Null)],
            ErrKind::InvalidPatch("active".into()),
        ),
        (
            vec![step(PKind::Replace, PField::Active, PVal::Str(0))],
            ErrKind::InvalidPatch("active".into()),
        ),
        (
            vec![step(PKind::Replace, PField::UserName, PVal::Bool(true))],
            ErrKind::InvalidPatch("userName".into()),
        ),
    ];
    // The patches' target: pool 1 (straße).
    let t1 = (0..=255u8)
        .find(|t| h.model.live_target(*t) == pool_id(1))
        .unwrap();
    for (steps, err) in refused {
        assert_eq!(step_ok(&mut h, patch_op(t1, steps)), Err(err));
        assert_eq!(h.model.users, before);
    }

    // Patches that apply.
    let version = |h: &Harness| h.model.users[&pool_id(1)].version;
    let v = version(&h);
    // No step, a no-op step: same version.
    ok(&mut h, patch_op(t1, vec![]));
    ok(
        &mut h,
        patch_op(
            t1,
            vec![step(PKind::Replace, PField::UserName, PVal::Str(3))],
        ),
    );
    assert_eq!(version(&h), v);
    // The same username in other letters (STRASSE), a family name, inactive, no external id.
    let r = step_ok(
        &mut h,
        patch_op(
            t1,
            vec![
                step(PKind::Replace, PField::UserName, PVal::Str(4)),
                step(PKind::Add, PField::FamilyName, PVal::Str(0)),
                step(PKind::Replace, PField::Active, PVal::Bool(false)),
                step(PKind::Remove, PField::ExternalId, PVal::Null),
            ],
        ),
    );
    match r {
        Ok(Val::User(u)) => {
            assert_eq!(u.username.as_deref(), Some("STRASSE"));
            assert_eq!(u.last_name.as_deref(), Some("Smith"));
            assert!(!u.active && u.external_id.is_none());
            assert_eq!(u.version, v + 1);
        }
        other => panic!("patch: {other:?}"),
    }
    // An email as {"value": ...} through a transaction that then fails: nothing written.
    let p = |value| patch_op(t1, vec![step(PKind::Replace, PField::Email, value)]);
    assert_eq!(
        step_ok(
            &mut h,
            Op::Write(Box::new(p(PVal::Obj(9))), Box::new(p(PVal::Str(11))), true)
        ),
        Err(ErrKind::Aborted)
    );
    assert_eq!(
        h.model.users[&pool_id(1)].email.as_deref(),
        Some("stra\u{df}e@example.de")
    );
    ok(
        &mut h,
        Op::Write(
            Box::new(p(PVal::Obj(9))),
            Box::new(Op::Reactivate(1)),
            false,
        ),
    );
    assert_eq!(
        h.model.users[&pool_id(1)].email.as_deref(),
        Some("admin@example.com")
    );
    ok(&mut h, Op::Reopen);

    // Searches beyond the battery, with expected totals: 5 users; pool 0, Dave inactive.
    let total = |h: &mut Harness, filter: Option<MFilter>, sort: SortBy, desc: bool| {
        let spec = SearchSpec {
            filter,
            sort,
            desc,
            missing_first: false,
            limit: 2,
            offset: 0,
        };
        match step_ok(h, Op::Search(spec)) {
            Ok(Val::Pages(p)) => p[0].total,
            other => panic!("search: {other:?}"),
        }
    };
    let c = |attr, op, lit, cut| MFilter::Cmp {
        attr,
        name: 0,
        op,
        lit,
        live: false,
        cut,
    };
    // userName sw "" (every username), sorted by username, descending.
    let everyone = c(MAttr::UserName, MOp::Sw, 0, Cut::Prefix(0));
    assert_eq!(total(&mut h, Some(everyone), SortBy::UserName, true), 4);
    // emails.value co "@example": all five have one.
    let example = c(MAttr::Email, MOp::Co, 11, Cut::Prefix(8));
    assert_eq!(total(&mut h, Some(example), SortBy::Email, true), 5);
    // active eq false: pool 0 and Dave.
    assert_eq!(
        total(&mut h, Some(MFilter::Active(false)), SortBy::Id, false),
        2
    );
    // name.familyName pr: Smith twice; Dave's empty family name is not present.
    assert_eq!(
        total(
            &mut h,
            Some(MFilter::Pr(MAttr::FamilyName, 0)),
            SortBy::Id,
            false
        ),
        2
    );
    // userName eq "STRASSE" or emails.value eq "k@example.io" (the Kelvin sign form).
    let either = MFilter::Or(
        Box::new(c(MAttr::UserName, MOp::Eq, 5, Cut::Whole)),
        Box::new(c(MAttr::Email, MOp::Eq, 7, Cut::Whole)),
    );
    assert_eq!(total(&mut h, Some(either), SortBy::UserName, false), 2);
}

/// `ImportReport::problems` is documented as "ordered by row index, then field"; the model
/// comparison above compares the problems as a set (and the row order, which holds). Within a
/// row the library keeps the order it found the problems in (duplicates inside the batch
/// before duplicates of existing users), so a row whose username repeats an earlier row's and
/// whose id is an existing user's lists `username` before `id`. Kept as a failing test, marked,
/// until the library sorts by field or the documentation changes.
#[test]
fn import_report_is_ordered_by_row_then_field() {
    use userdir::{Argon2Params, Directory, Error, ImportBatch, NewUser};
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .in_memory()
        .unwrap();
    let existing = dir.create(NewUser::with_username("bob")).unwrap();
    let mut second = NewUser::with_username("carol");
    second.id = Some(existing.id);
    let rows = vec![NewUser::with_username("carol"), second];
    let Err(Error::Import(report)) = dir.import(ImportBatch::new(rows)) else {
        panic!("the batch must be refused");
    };
    let fields: Vec<(usize, &str)> = report.problems.iter().map(|p| (p.index, p.field)).collect();
    // `id` comes before `username` in the field order of `User` and alphabetically.
    assert_eq!(fields, [(1, "id"), (1, "username")]);
}

/// Cases of the cross-engine model test (`USERDIR_MODEL_ENGINE_CASES`, default 256).
#[cfg(feature = "postgres")]
fn engine_cases() -> u32 {
    std::env::var("USERDIR_MODEL_ENGINE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The PostgreSQL server of the cross-engine test: `None` (skipped, loudly) without one, unless
/// `USERDIR_REQUIRE_PG` is set (`scripts/test-all` sets it and starts a server).
#[cfg(feature = "postgres")]
fn pg_url() -> Option<String> {
    match std::env::var("USERDIR_TEST_PG_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var_os("USERDIR_REQUIRE_PG").is_none(),
                "USERDIR_REQUIRE_PG is set but USERDIR_TEST_PG_URL is not"
            );
            eprintln!("skipped: USERDIR_TEST_PG_URL is not set (run through scripts/pg)");
            None
        }
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: engine_cases(), ..ProptestConfig::default() })]

    /// The same random operation sequence on the redb file and on PostgreSQL: after every step
    /// each engine agrees with the reference model (outcome, lookups, count, the search
    /// battery, integrity), and the two outcomes are of the same kind (the same value, or the
    /// same error variant). Reopen closes and reopens both (PostgreSQL: a new pool, the
    /// migration check again).
    #[test]
    fn redb_and_postgres_agree_with_the_model_and_each_other(
        ops in proptest::collection::vec(op(), 1..24),
    ) {
        let Some(url) = pg_url() else { return Ok(()) };
        let tmp = tempfile::tempdir().unwrap();
        let mut file = Harness::on_file(tmp.path().join("model.redb"), Durability::Immediate);
        let mut pg = Harness::on_postgres(&url);
        for (i, op) in ops.iter().enumerate() {
            let a = file
                .step_outcome(op)
                .map_err(|e| TestCaseError::fail(format!("redb, step {i}: {e}")))?;
            let b = pg
                .step_outcome(op)
                .map_err(|e| TestCaseError::fail(format!("postgres, step {i}: {e}")))?;
            let kind = |o: &fuzz_bodies::model::Outcome| match o {
                Ok(v) => format!("ok {:?}", std::mem::discriminant(v)),
                Err(e) => format!("err {:?}", std::mem::discriminant(e)),
            };
            prop_assert_eq!(kind(&a), kind(&b), "step {}: {:?}", i, op);
        }
    }
}
