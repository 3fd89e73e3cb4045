//! Bounded imports: the streaming readers' limits, duplicate keys, problems kept and counted,
//! and the count of FusionAuth rows made inactive by a missing `active`.

use userdir::json::{Format, ReadLimits, read, read_stream};

fn stream(format: Option<Format>, text: &str, limits: ReadLimits) -> userdir::json::ReadOutcome {
    read_stream(format, None, text.as_bytes(), limits, &mut |_| {})
}

#[test]
fn duplicate_keys_are_an_error_at_every_level() {
    for text in [
        r#"{"users":[],"users":[{"username":"ann"}]}"#,
        r#"{"users":[{"username":"ann","username":"bob"}]}"#,
        r#"{"users":[{"username":"ann","data":{"a":1,"a":2}}]}"#,
        r#"{"username":"ann","active":true,"active":false}"#,
    ] {
        let out = stream(None, text, ReadLimits::default());
        assert_eq!(out.problem_count, 1, "{text}");
        assert!(
            out.problems[0].reason.contains("duplicate key"),
            "{:?}",
            out.problems
        );
        assert!(out.rows.is_empty());
        assert!(read(Format::FusionAuth, text).is_err(), "{text}");
    }
    let line = "{\"username\":\"ann\",\"email\":\"a@x.org\",\"email\":\"b@x.org\"}\n";
    let out = stream(Some(Format::JsonLines), line, ReadLimits::default());
    assert_eq!(out.problem_count, 1);
}

#[test]
fn records_and_inputs_over_the_caps_are_refused() {
    let big = format!(
        r#"{{"users":[{{"username":"ann","data":{{"blob":"{}"}}}}]}}"#,
        "x".repeat(5000)
    );
    let limits = ReadLimits::default().max_record_bytes(4096);
    let out = stream(Some(Format::FusionAuth), &big, limits);
    assert_eq!(out.problem_count, 1);
    assert!(
        out.problems[0]
            .reason
            .contains("larger than the limit of 4096"),
        "{:?}",
        out.problems
    );
    // The reader stopped there: it did not read the rest of the record.
    assert!(out.bytes < big.len() as u64 + 1);
    assert_eq!(
        stream(Some(Format::FusionAuth), &big, ReadLimits::default()).problem_count,
        0
    );

    let lines = format!(
        "{{\"username\":\"a\"}}\n{{\"username\":\"{}\"}}\n{{\"username\":\"c\"}}\n",
        "y".repeat(5000)
    );
    let out = stream(Some(Format::JsonLines), &lines, limits);
    assert_eq!(out.problem_count, 1);
    assert_eq!(out.problems[0].row, Some(1));
    assert!(out.problems[0].reason.contains("longer than the limit"));

    let limits = ReadLimits::default().max_input_bytes(100);
    let many = format!("[{}]", vec![r#"{"username":"u"}"#; 50].join(","));
    let out = stream(Some(Format::FusionAuth), &many, limits);
    assert_eq!(out.problem_count, 1);
    assert!(
        out.problems[0]
            .reason
            .contains("input is larger than the limit of 100")
    );
}

#[test]
fn problems_are_counted_all_and_kept_first() {
    let ones = format!("[{}]", vec!["1"; 10_000].join(","));
    let mut seen = 0;
    let out = read_stream(
        Some(Format::FusionAuth),
        None,
        ones.as_bytes(),
        ReadLimits::default(),
        &mut |_| seen += 1,
    );
    assert_eq!(out.problem_count, 10_000);
    assert_eq!(seen, 10_000);
    assert_eq!(out.problems.len(), ReadLimits::DEFAULT_MAX_PROBLEMS_KEPT);
    assert_eq!(out.problems[0].row, Some(0));
    assert!(out.rows.is_empty());
}

#[test]
fn rows_inactive_for_lack_of_active_are_counted() {
    let text = r#"{"users":[{"username":"a","active":true},{"username":"b"},{"username":"c","active":null},{"username":"d","active":false}]}"#;
    let out = stream(None, text, ReadLimits::default());
    assert_eq!(out.rows.len(), 4);
    assert_eq!(out.inactive_by_default, 2);
    // A single FusionAuth user (a create request) defaults to active: not counted.
    let out = stream(None, r#"{"user":{"username":"a"}}"#, ReadLimits::default());
    assert_eq!((out.rows.len(), out.inactive_by_default), (1, 0));
    assert!(out.rows[0].active);
}

#[test]
fn large_inputs_are_guessed_from_their_start() {
    let mut text = String::from("{\"users\":[");
    for i in 0..3000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"username":"user{i}","active":true,"firstName":"Given name number {i}"}}"#
        ));
    }
    text.push_str("]}");
    assert!(text.len() > 64 * 1024);
    let out = stream(None, &text, ReadLimits::default());
    assert_eq!(out.format, Some(Format::FusionAuth));
    assert_eq!((out.rows.len(), out.problem_count), (3000, 0));
    let lines: String = (0..3000)
        .map(|i| {
            format!(
                "{{\"username\":\"user{i}\",\"active\":true,\"firstName\":\"Given name {i}\"}}\n"
            )
        })
        .collect();
    let out = stream(None, &lines, ReadLimits::default());
    assert_eq!(out.format, Some(Format::JsonLines));
    assert_eq!(out.rows.len(), 3000);
}
