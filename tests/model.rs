//! Model-based test: random sequences of operations run against a directory and against a
//! plain in-memory reference model (tests/fuzz_bodies/model.rs); after every step the outcome
//! (Ok value or error variant, with the ids it names), every lookup of a sample of keys, the
//! count and `check_integrity()` must agree.
//!
//! `USERDIR_MODEL_CASES` sets the number of cases (default 32, each up to 40 operations).

mod fuzz_bodies;

use fuzz_bodies::model::{Harness, Op, Sel, Ver};
use proptest::prelude::*;
use userdir::Durability;

fn cases() -> u32 {
    std::env::var("USERDIR_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
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
        1 => any::<u8>().prop_map(Op::Deactivate),
        1 => any::<u8>().prop_map(Op::Reactivate),
        1 => any::<u8>().prop_map(Op::Delete),
        1 => (targets.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(t, u)| Op::DeactivateMany(t, u)),
        1 => (targets, proptest::bool::weighted(0.2)).prop_map(|(t, u)| Op::DeleteMany(t, u)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => leaf_op(),
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
