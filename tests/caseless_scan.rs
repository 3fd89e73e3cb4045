//! Full scans with caseless filters (RFC 7643 `caseExact=false`): the byte prefilter that
//! skips records must never skip a match, including values whose non-ASCII characters fold to
//! ASCII (`ß` → `ss`, Kelvin sign → `k`, fullwidth letters, ligatures, `İ` → `i̇`) and
//! literals that are not ASCII. Search results are compared with an oracle written from the
//! definition: the compatibility caseless keys of both sides compared with `eq`, `co`, `sw`,
//! `ew`.

mod common;

use std::collections::BTreeSet;

use userdir::identity::caseless_key;
use userdir::query::Search;
use userdir::{MultiValue, NewUser, User};
use uuid::Uuid;

/// Family names (and, as secondary emails' display names, multi-valued sub-attributes).
const NAMES: &[&str] = &[
    "Johnson",
    "JOHNSON",
    "johnSON",
    "Ｊｏｈｎｓｏｎ",
    "Strauß",
    "STRASSE",
    "Straße",
    "\u{212A}elly",
    "Kelly",
    "ﬁsher",
    "Fisher",
    "İstanbul",
    "i\u{307}stanbul",
    "Istanbul",
    "Müller",
    "MÜLLER",
    "Mu\u{308}ller",
    "Ǳiga",
    "dziga",
    "Ødegård",
    "ǰames",
    "𝐒𝐨𝐧",
    "Sonja",
    "Anderſon",
    "Smith",
    "日本",
    "Ελένη",
    "ΕΛΈΝΗ",
];

/// Literals, each tried with `eq`, `co`, `sw` and `ew`.
const LITERALS: &[&str] = &[
    "son",
    "SON",
    "johnson",
    "ss",
    "STRASSE",
    "straß",
    "kel",
    "K",
    "fi",
    "ﬁ",
    "i",
    "İ",
    "ist",
    "müller",
    "ÜLL",
    "ller",
    "dz",
    "Ǳ",
    "ødeg",
    "son",
    "日",
    "έλ",
    "ΕΛΈΝΗ",
    "ja",
    "ǰ",
    "x",
];

fn holds(op: &str, stored: &str, lit: &str) -> bool {
    let (s, l) = (caseless_key(stored), caseless_key(lit));
    match op {
        "eq" => s == l,
        "co" => s.contains(&l),
        "sw" => s.starts_with(&l),
        "ew" => s.ends_with(&l),
        _ => unreachable!(),
    }
}

#[test]
fn caseless_scans_match_exactly_what_the_keys_say() {
    let (dir, _clock) = common::dir();
    let mut users: Vec<User> = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let u = NewUser::with_username(format!("user{i}"))
            .last_name(*name)
            .add_email(MultiValue::new(format!("other{i}@example.com")).display(*name));
        users.push(dir.create(u).unwrap());
    }
    let mut checked = 0;
    for lit in LITERALS {
        for op in ["eq", "co", "sw", "ew"] {
            let q = serde_json::to_string(lit).unwrap();
            for filter in [
                format!("name.familyName {op} {q}"),
                format!("emails.display {op} {q}"),
                format!("emails[display {op} {q}]"),
            ] {
                let page = dir
                    .search(&Search::filter(&filter).unwrap().limit(usize::MAX))
                    .unwrap();
                let got: BTreeSet<Uuid> = page.users.iter().map(|u| u.id).collect();
                let want: BTreeSet<Uuid> = users
                    .iter()
                    .zip(NAMES)
                    .filter(|(_, name)| holds(op, name, lit))
                    .map(|(u, _)| u.id)
                    .collect();
                assert_eq!(got, want, "{filter}");
                assert_eq!(page.total as usize, want.len(), "{filter}");
                checked += want.len();
            }
        }
    }
    // The cases above do match things (the oracle is not vacuous).
    assert!(checked > 100, "{checked}");
}
