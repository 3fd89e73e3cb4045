//! The bodies of the fuzz targets, shared by the cargo-fuzz project (`fuzz/`, which includes this
//! file with `#[path]`) and by `tests/fuzz_seeds.rs`, which runs every body over the checked-in
//! seed corpus on stable Rust. A body panics exactly when it found a bug.

#![allow(dead_code)]

pub mod model;

use userdir::identity::{caseless_key, lookup_key, normalize_email, normalize_username};

/// A fuzz target's body (the directory names under `fuzz/seeds/` are the target names).
pub type Body = fn(&[u8]);

/// The fuzz targets, by name.
pub const TARGETS: &[(&str, Body)] = &[
    ("record_decode", record_decode),
    ("identity", identity),
    ("ops", ops),
    ("filter_parse", filter_parse),
    ("json_import", json_import),
];

/// Text through every JSON import reader, then the rows that read into an in-memory directory:
/// the readers and the import return errors, never panic; an import either writes every row or
/// nothing, and the directory stays consistent.
pub fn json_import(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for format in userdir::json::Format::ALL {
        let Ok(rows) = userdir::json::read(format, &text) else {
            continue;
        };
        let dir = userdir::Directory::builder()
            .hasher(userdir::Argon2Params::insecure_fast())
            .in_memory()
            .expect("in-memory directory");
        let n = rows.len() as u64;
        match dir.import(userdir::ImportBatch::new(rows)) {
            Ok(summary) => {
                assert_eq!(summary.imported as u64, n);
                assert_eq!(dir.count().expect("count"), n);
            }
            Err(_) => assert_eq!(dir.count().expect("count"), 0, "a failed import wrote rows"),
        }
        dir.check_integrity().expect("integrity after import");
    }
}

/// Random bytes as a stored record, and (when they start with a sealed version, 2 or 3) the
/// bytes after the first as a payload sealed with its checksum, so that damage reaches the
/// decoder rather than the checksum: decoding returns an error or a user, never panics; the
/// hand-written format-3 reader agrees with the serde reference decoder (both refuse, or both
/// give the same user); a decoded user never shows its password hash in `Debug`.
pub fn record_decode(data: &[u8]) {
    use userdir::test_hooks::{fuzz_decode, fuzz_decode_reference, fuzz_seal};
    let mut inputs = vec![data.to_vec()];
    if let Some((&v @ (2 | 3), payload)) = data.split_first() {
        inputs.push(fuzz_seal(v, payload));
    }
    for record in inputs {
        let (got, want) = (fuzz_decode(&record), fuzz_decode_reference(&record));
        match (&got, &want) {
            (Ok(a), Ok(b)) => {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "decoders disagree");
                assert!(a.password == b.password, "decoders disagree on the hash");
            }
            (Err(_), Err(_)) => {}
            _ => panic!("decoders disagree: reader {got:?}, reference {want:?}"),
        }
        if let Ok(u) = got {
            // A record that decodes is a whole user: its debug form never shows a hash.
            let dbg = format!("{u:?}");
            if let Some(h) = &u.password {
                assert!(
                    h.expose().len() < 8 || !dbg.contains(h.expose()),
                    "debug output shows the stored hash"
                );
            }
        }
    }
}

/// Random strings through the identity functions: no panic; the caseless key is idempotent and
/// is the key of every accepted form.
pub fn identity(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let k = caseless_key(&s);
    assert_eq!(
        caseless_key(&k),
        k,
        "caseless_key is not idempotent for {s:?}"
    );
    assert_eq!(lookup_key(&s), caseless_key(s.trim()));
    if let Ok(n) = normalize_username(&s) {
        assert_eq!(
            normalize_username(&n).ok().as_deref(),
            Some(n.as_str()),
            "normalize_username is not idempotent for {s:?}"
        );
        assert_eq!(
            caseless_key(&n),
            lookup_key(&s),
            "stored username and typed login differ for {s:?}"
        );
        assert!(!caseless_key(&n).is_empty());
    }
    if let Ok(e) = normalize_email(&s) {
        assert_eq!(
            normalize_email(&e).ok().as_deref(),
            Some(e.as_str()),
            "normalize_email is not idempotent for {s:?}"
        );
        assert_eq!(
            caseless_key(&e),
            lookup_key(&s),
            "stored email and typed login differ for {s:?}"
        );
    }
}

/// Bytes as a sequence of operations (imports, patches and searches included) on an in-memory
/// directory, compared with the reference model after every step: outcome, lookups, count,
/// a battery of searches, `check_integrity()`.
pub fn ops(data: &[u8]) {
    let mut h = model::Harness::in_memory();
    for op in model::all_ops_from_bytes(data, false) {
        if let Err(e) = h.step(&op) {
            panic!("{e}");
        }
    }
}

/// A user with most fields set, for evaluating parsed filters.
fn sample_user() -> &'static userdir::User {
    static USER: std::sync::OnceLock<userdir::User> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        let dir = userdir::Directory::builder()
            .hasher(userdir::Argon2Params::insecure_fast())
            .clock(userdir::ManualClock::new(1_700_000_000_000))
            .in_memory()
            .expect("in-memory directory");
        dir.create(
            userdir::NewUser::with_username("Stra\u{df}e")
                .email("ann@example.com")
                .external_id("ext-1")
                .first_name("Ann")
                .last_name("Smithson")
                .full_name("Ann Smithson")
                .birth_date("1990-02-03")
                .mobile_phone("+1 555 0100")
                .role("admin")
                .data("plan", "gold")
                .data("seats", 5i64),
        )
        .expect("sample user")
    })
}

/// Random text as a SCIM filter and as a page cursor: parsing returns a value or an error,
/// never panics; a parsed filter prints as text that parses back to the same filter and can be
/// evaluated; a parsed cursor prints as text that parses back to the same cursor.
pub fn filter_parse(data: &[u8]) {
    use userdir::query::{Cursor, parse_filter};
    let s = String::from_utf8_lossy(data);
    if let Ok(f) = parse_filter(&s) {
        let printed = f.to_string();
        match parse_filter(&printed) {
            Ok(again) => assert_eq!(again, f, "{s:?} printed as {printed:?} parses differently"),
            Err(e) => panic!("{s:?} printed as {printed:?}, which does not parse: {e}"),
        }
        let _ = f.matches(sample_user());
    }
    if let Ok(c) = s.parse::<Cursor>() {
        let printed = c.to_string();
        assert_eq!(
            printed.parse::<Cursor>().ok(),
            Some(c),
            "cursor {s:?} does not round-trip"
        );
    }
}
