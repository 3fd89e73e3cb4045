//! Runs every fuzz target's body (tests/fuzz_bodies) on stable Rust: over the checked-in seed
//! corpus `fuzz/seeds/<target>/*`, and over random inputs from a seeded generator
//! (`USERDIR_FUZZ_ITERS` inputs per target, default 200; `USERDIR_FUZZ_SEED` picks the seed).

mod fuzz_bodies;

use std::path::Path;

use fuzz_bodies::model::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_target_has_seeds_and_passes_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, body) in fuzz_bodies::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "target {name} failed on seed {}", path.display());
            n += 1;
        }
        assert!(n >= 3, "target {name} has only {n} seeds");
    }
}

/// The `v3_*` seeds of `record_decode` are `3 | payload` without the checksum: sealed, the
/// full and minimal ones decode (so fuzzing starts from records the reader accepts), the
/// others are refused.
#[test]
fn format_3_seeds_decode_once_sealed() {
    use userdir::test_hooks::{fuzz_decode, fuzz_seal};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/record_decode");
    let sealed = |name: &str| {
        let seed = std::fs::read(dir.join(name)).unwrap();
        fuzz_decode(&fuzz_seal(3, &seed[1..]))
    };
    let u = sealed("v3_full").unwrap();
    assert_eq!(u.username.as_deref(), Some("ann"));
    assert_eq!(u.last_name.as_deref(), Some("Smithson"));
    assert_eq!(u.roles.iter().collect::<Vec<_>>(), ["admin", "ops"]);
    assert_eq!(u.addresses[0].locality.as_deref(), Some("Paris"));
    assert_eq!(u.data.len(), 2);
    assert_eq!((u.insert_instant, u.version), (5000, 7));
    assert!(u.active && u.password.is_some());
    assert_eq!(
        sealed("v3_minimal").unwrap().username.as_deref(),
        Some("bob")
    );
    assert!(sealed("v3_out_of_order").is_err());
}

/// Inputs biased towards what the targets parse: random bytes, bytes from the seeds' alphabet,
/// and mutations of seeds.
fn random_input(rng: &mut Rng, seeds: &[Vec<u8>], target: &str) -> Vec<u8> {
    let len = rng.below(96) as usize;
    match rng.below(3) {
        0 => (0..len).map(|_| rng.byte()).collect(),
        1 if target == "filter_parse" => {
            const TOKENS: &[&str] = &[
                "userName",
                "emails",
                "name.familyName",
                "meta.created",
                "roles",
                "active",
                "externalId",
                "data.plan",
                "value",
                "type",
                " eq ",
                " ne ",
                " co ",
                " sw ",
                " gt ",
                " le ",
                " pr",
                " and ",
                " or ",
                "not ",
                "(",
                ")",
                "[",
                "]",
                "\"",
                "\\u00e9",
                "\\",
                "true",
                "false",
                "null",
                "1",
                "-2.5",
                "1e999",
                "-0",
                "9223372036854775808",
                "\"2020-01-01T00:00:00Z\"",
                " ",
                "ß",
                "\u{212A}",
            ];
            let mut s = String::new();
            for _ in 0..len / 4 {
                s.push_str(TOKENS[rng.below(TOKENS.len() as u64) as usize]);
            }
            s.into_bytes()
        }
        1 => {
            const PIECES: &[&str] = &[
                "a", "B", "ß", "SS", "\u{212A}", "ｋ", "e\u{301}", "é", "İ", "ı", "@", ".", " ",
                "\u{0}", "\u{85}", "\u{200b}", "ﬀ", "ǅ", "Σ", "ς", "ᾼ", "ﬃ", "㎒", "ⓐ",
            ];
            let mut s = String::new();
            for _ in 0..len / 3 {
                s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
            }
            s.into_bytes()
        }
        _ if !seeds.is_empty() => {
            let mut d = seeds[rng.below(seeds.len() as u64) as usize].clone();
            for _ in 0..=rng.below(4) {
                if d.is_empty() || rng.chance(30) {
                    let at = rng.below(d.len() as u64 + 1) as usize;
                    d.insert(at, rng.byte());
                } else {
                    let at = rng.below(d.len() as u64) as usize;
                    d[at] = rng.byte();
                }
            }
            d
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_target_survives_random_inputs() {
    let iters = env_u64("USERDIR_FUZZ_ITERS", 200);
    let seed = env_u64("USERDIR_FUZZ_SEED", 0x5eed);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, body) in fuzz_bodies::TARGETS {
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join(name))
            .map(|rd| {
                rd.map(|e| std::fs::read(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let mut rng = Rng(seed ^ name.len() as u64);
        let start = std::time::Instant::now();
        for i in 0..iters {
            let data = random_input(&mut rng, &seeds, name);
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(
                r.is_ok(),
                "target {name} failed on random input #{i} (seed {seed}): {data:?}"
            );
        }
        eprintln!("{name}: {iters} inputs in {:?}", start.elapsed());
    }
}

/// A record as the codec writes it (version 1), holding `data` (already encoded) for a user
/// named `bob`.
fn record_with_data(data: &[u8]) -> Vec<u8> {
    let mut r = vec![1u8, 1, 3];
    r.extend_from_slice(b"bob");
    r.extend_from_slice(&[0, 0, 1, 0]); // email, external id: none; active; not verified
    r.extend_from_slice(&[0; 9]); // names, birth date, phone, image, timezone: none
    r.extend_from_slice(&[0, 0]); // languages, roles: empty
    r.extend_from_slice(data);
    r.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]); // password .. version
    r
}

/// `{"k": [[[ ... null ... ]]]}` nested `levels` deep (the value at the top is level 1).
fn nested_data(levels: usize) -> Vec<u8> {
    let mut d = vec![1u8, 1, b'k'];
    for _ in 1..levels {
        d.extend_from_slice(&[5, 1]); // Array of one element
    }
    d.push(0); // Null
    d
}

/// Regression: decoding was recursive without a bound, so a damaged or crafted record nested a
/// million levels deep overflowed the stack and aborted the process.
#[test]
fn deeply_nested_record_is_an_error_not_a_stack_overflow() {
    let r = userdir::test_hooks::fuzz_decode(&record_with_data(&nested_data(1_000_000)));
    assert!(matches!(r, Err(userdir::Error::Corrupt(_))), "{r:?}");
    let r = userdir::test_hooks::fuzz_decode(&record_with_data(&nested_data(
        userdir::MAX_DATA_DEPTH + 1,
    )));
    assert!(matches!(r, Err(userdir::Error::Corrupt(_))), "{r:?}");
    let u =
        userdir::test_hooks::fuzz_decode(&record_with_data(&nested_data(userdir::MAX_DATA_DEPTH)))
            .expect("the deepest allowed data decodes");
    assert_eq!(u.username.as_deref(), Some("bob"));
    // And the hand-made encoding matches what the decoder expects for ordinary data.
    let u = userdir::test_hooks::fuzz_decode(&record_with_data(&nested_data(2))).unwrap();
    assert_eq!(
        u.data.get("k"),
        Some(&userdir::AttrValue::Array(vec![userdir::AttrValue::Null]))
    );
}

/// Data deeper than `MAX_DATA_DEPTH` is refused on write (so every stored record decodes);
/// data exactly that deep is stored and read back.
#[test]
fn deeply_nested_data_is_refused_on_write() {
    use userdir::{Argon2Params, AttrValue, Directory, NewUser};
    let nest = |levels: usize| {
        let mut v = AttrValue::Null;
        for _ in 1..levels {
            v = AttrValue::Array(vec![v]);
        }
        v
    };
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .in_memory()
        .unwrap();
    let r = dir.create(NewUser::with_username("deep").data("k", nest(userdir::MAX_DATA_DEPTH + 1)));
    assert!(
        matches!(r, Err(userdir::Error::InvalidField { field: "data", .. })),
        "{r:?}"
    );
    let u = dir
        .create(NewUser::with_username("deep").data("k", nest(userdir::MAX_DATA_DEPTH)))
        .unwrap();
    assert_eq!(dir.get(u.id).unwrap().unwrap().data, u.data);
    let mut up = userdir::UserUpdate::from(&u);
    up.profile
        .data
        .insert("k".into(), nest(userdir::MAX_DATA_DEPTH + 1));
    assert!(matches!(
        dir.update(u.id, up, None),
        Err(userdir::Error::InvalidField { field: "data", .. })
    ));
}

/// Regression: the filter parser recursed once per parenthesis and built a tree as deep as the
/// filter was long, so `((((...` or a chain of 200 000 `and`s overflowed the stack (an abort)
/// when parsed, printed or dropped. Filters are bounded now, and the bounds themselves work.
#[test]
fn hostile_filters_are_errors_not_stack_overflows() {
    use userdir::query::{MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parse_filter};
    let term = r#"userName eq "a""#;
    let invalid = |s: &str| matches!(parse_filter(s), Err(userdir::Error::InvalidFilter { .. }));
    let n = 100_000;
    assert!(invalid(&format!(
        "{}{term}{}",
        "(".repeat(n),
        ")".repeat(n)
    )));
    assert!(invalid(&format!(
        "{}{term}{}",
        "not (".repeat(n),
        ")".repeat(n)
    )));
    assert!(invalid(&vec![term; 200_000].join(" and ")));
    assert!(invalid(&vec![term; 200_000].join(" or ")));
    assert!(invalid(&format!(
        "emails[{}]",
        vec![r#"value eq "a""#; 100_000].join(" or ")
    )));
    // At the limits: parses, prints, parses back, evaluates.
    let d = MAX_FILTER_DEPTH;
    let deep = format!("{}{term}{}", "(".repeat(d), ")".repeat(d));
    assert!(parse_filter(&deep).is_ok());
    assert!(invalid(&format!("({deep})")));
    let long = vec![term; MAX_FILTER_TERMS].join(" or ");
    let f = parse_filter(&long).unwrap();
    assert_eq!(parse_filter(&f.to_string()).unwrap(), f);
    assert!(invalid(&format!("{long} or {term}")));
    let dir = userdir::Directory::builder()
        .hasher(userdir::Argon2Params::insecure_fast())
        .in_memory()
        .unwrap();
    dir.create(userdir::NewUser::with_username("A")).unwrap();
    let page = dir
        .search(&userdir::Search::filter(&long).unwrap())
        .unwrap();
    assert_eq!(page.users.len(), 1);
}
