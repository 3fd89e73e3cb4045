//! The `userdir` command on a PostgreSQL directory: `--db postgresql://…` and `USERDIR_DB`
//! reach every command (create, get, login, search, import, export, check, stats, deactivate,
//! delete). Needs a server (`scripts/pg`); skipped, loudly, without `USERDIR_TEST_PG_URL`
//! unless `USERDIR_REQUIRE_PG` is set.
#![cfg(feature = "postgres")]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_userdir");

/// A URL whose connections use a fresh schema (created by opening a directory there).
fn fresh_url() -> Option<String> {
    let Ok(base) = std::env::var("USERDIR_TEST_PG_URL") else {
        assert!(
            std::env::var_os("USERDIR_REQUIRE_PG").is_none(),
            "USERDIR_REQUIRE_PG is set but USERDIR_TEST_PG_URL is not"
        );
        eprintln!("skipped: USERDIR_TEST_PG_URL is not set (run through scripts/pg)");
        return None;
    };
    let schema = format!("cli_{}", uuid_like());
    userdir::Directory::builder()
        .postgres_schema(schema.clone())
        .open_postgres(&base)
        .expect("create the schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{t}", std::process::id())
}

fn run(db: Option<&str>, env_db: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    cmd.args(args)
        .env("USERDIR_INSECURE_FAST_HASH", "1")
        .env_remove("USERDIR_DB")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(e) = env_db {
        cmd.env("USERDIR_DB", e);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn expect(o: &Output, code: i32) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {out}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn every_command_reaches_a_postgresql_directory() {
    let Some(url) = fresh_url() else { return };
    let db = Some(url.as_str());
    let out = expect(
        &run(
            db,
            None,
            &["create", "--username", "Ann", "--email", "Ann@Example.com"],
            Some("correct horse battery\n"),
        ),
        0,
    );
    assert!(out.contains("ann@example.com") && !out.contains("argon2"));
    // The same directory through USERDIR_DB.
    expect(&run(None, Some(&url), &["get", "ANN"], None), 0);
    expect(
        &run(
            None,
            Some(&url),
            &["login", "ann"],
            Some("correct horse battery\n"),
        ),
        0,
    );
    expect(&run(db, None, &["login", "ann"], Some("wrong one\n")), 1);
    let o = run(
        db,
        None,
        &["create", "--username", "aNN", "--no-password"],
        None,
    );
    expect(&o, 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("username is taken"));
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fuse_bulk_create.json");
    // A dry run judges the rows against the database's users and writes none.
    let out = expect(
        &run(
            db,
            None,
            &[
                "--output",
                "json",
                "import",
                fixture.to_str().unwrap(),
                "--format",
                "fuse",
                "--dry-run",
            ],
            None,
        ),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["imported"].as_u64(), v["dry_run"].as_bool()),
        (Some(3), Some(true))
    );
    expect(&run(db, None, &["get", "testuser1"], None), 1);
    expect(
        &run(
            db,
            None,
            &["import", fixture.to_str().unwrap(), "--format", "fuse"],
            None,
        ),
        0,
    );
    let out = expect(
        &run(
            db,
            None,
            &["search", r#"userName sw "testuser""#, "--sort", "username"],
            None,
        ),
        0,
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = expect(&run(db, None, &["export", "--format", "jsonl"], None), 0);
    assert_eq!(out.lines().count(), 4, "{out}");
    expect(&run(db, None, &["check"], None), 0);
    let out = expect(&run(db, None, &["stats"], None), 0);
    assert!(
        out.contains("users 4") && !out.contains("file_bytes"),
        "{out}"
    );
    let out = expect(&run(db, None, &["--output", "json", "stats"], None), 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v, serde_json::json!({"users": 4, "active": 4}));
    // Every row of the fixture is taken now: the dry run reports them, against the database.
    let o = run(
        db,
        None,
        &[
            "import",
            fixture.to_str().unwrap(),
            "--format",
            "fuse",
            "--dry-run",
        ],
        None,
    );
    expect(&o, 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already taken"));
    // A backup of a database is pg_dump's job: a clear refusal, no file.
    let dest = std::env::temp_dir().join(format!("userdir-pg-backup-{}", uuid_like()));
    let o = run(db, None, &["backup", dest.to_str().unwrap()], None);
    expect(&o, 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("pg_dump"));
    assert!(!dest.exists());
    expect(&run(db, None, &["deactivate", "ann"], None), 0);
    expect(
        &run(db, None, &["login", "ann"], Some("correct horse battery\n")),
        1,
    );
    expect(&run(db, None, &["delete", "ann"], None), 0);
    expect(&run(db, None, &["get", "ann"], None), 1);
    // An unreachable server is a clear storage error, not a panic.
    let o = run(
        Some("postgresql://nobody@127.0.0.1:1/none"),
        None,
        &["get", "x"],
        None,
    );
    assert!(o.status.code().is_some_and(|c| c != 0 && c != 101));
}
