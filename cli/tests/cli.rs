//! The `userdir` binary run as a process: every command and its exit code, the
//! `export --with-hashes` → `import` round trip, bad JSON, a file that is not a directory, and a
//! file locked by another process.
//!
//! Every run passes `--insecure-fast-hash` (cheap argon2, for tests only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_userdir");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.tmp.path().join("users.redb")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn run_db(&self, db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--db")
            .arg(db)
            .arg("--insecure-fast-hash")
            .args(args)
            .current_dir(self.tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_db(&self.db(), args, stdin)
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The warning every run prints, since every run passes `--insecure-fast-hash`.
const FAST_HASH_WARNING: &str = "userdir: WARNING: --insecure-fast-hash";
/// The same warning under `--output json`.
const FAST_HASH_NOTICE: &str = r#"{"notice":"WARNING: --insecure-fast-hash"#;

/// stderr without the `--insecure-fast-hash` warning line.
fn stderr(o: &Output) -> String {
    let all = String::from_utf8_lossy(&o.stderr);
    assert!(
        all.starts_with(FAST_HASH_WARNING) || all.starts_with(FAST_HASH_NOTICE),
        "the warning is printed: {all}"
    );
    all.lines()
        .filter(|l| !l.starts_with(FAST_HASH_WARNING) && !l.starts_with(FAST_HASH_NOTICE))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[track_caller]
fn expect(o: &Output, want: i32) {
    assert_eq!(
        code(o),
        want,
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn import(env: &Env, fixture_name: &str, format: &str) -> Output {
    let f = fixture(fixture_name);
    env.run(&["import", f.to_str().unwrap(), "--format", format], None)
}

#[test]
fn create_get_login_deactivate_reactivate_delete() {
    let env = Env::new();
    let o = env.run(
        &[
            "create",
            "--username",
            "Ann",
            "--email",
            "Ann@Example.com",
            "--role",
            "admin",
            "--first-name",
            "Ann",
        ],
        Some("correct horse battery\n"),
    );
    expect(&o, 0);
    let created = &json_lines(&o)[0];
    assert_eq!(created["email"], "ann@example.com");
    assert!(!stdout(&o).contains("argon2"), "no hash in the output");
    let id = created["id"].as_str().unwrap().to_owned();

    for key in [id.as_str(), "ANN", "ann@example.com"] {
        let o = env.run(&["get", key], None);
        expect(&o, 0);
        assert_eq!(json_lines(&o)[0]["id"], id.as_str());
    }
    let o = env.run(&["get", "ann", "--format", "scim"], None);
    expect(&o, 0);
    assert_eq!(json_lines(&o)[0]["userName"], "Ann");
    expect(&env.run(&["get", "nobody"], None), 1);

    expect(
        &env.run(
            &["login", "ann@example.com"],
            Some("correct horse battery\n"),
        ),
        0,
    );
    let o = env.run(&["login", "ann"], Some("wrong password\n"));
    expect(&o, 1);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    expect(&env.run(&["login", "nobody"], Some("whatever it is\n")), 1);

    let o = env.run(&["deactivate", "ann"], None);
    expect(&o, 0);
    assert_eq!(json_lines(&o)[0]["active"], false);
    expect(
        &env.run(&["login", "ann"], Some("correct horse battery\n")),
        1,
    );
    let o = env.run(&["reactivate", &id], None);
    expect(&o, 0);
    assert_eq!(json_lines(&o)[0]["active"], true);
    expect(
        &env.run(&["login", "ann"], Some("correct horse battery\n")),
        0,
    );

    // Duplicate username: bad input.
    let o = env.run(&["create", "--username", "aNN", "--no-password"], None);
    expect(&o, 2);
    assert!(stderr(&o).contains("username is taken"), "{}", stderr(&o));
    // Policy violation: bad input, the password never echoed.
    let o = env.run(&["create", "--username", "zed"], Some("short\n"));
    expect(&o, 2);
    assert!(!stderr(&o).contains("short\n") && stderr(&o).contains("policy"));

    expect(&env.run(&["delete", "ann"], None), 0);
    expect(&env.run(&["get", &id], None), 1);
    expect(&env.run(&["delete", "ann"], None), 1);
}

#[test]
fn import_search_check_stats() {
    let env = Env::new();
    let o = import(&env, "fuse_bulk_create.json", "fuse");
    expect(&o, 0);
    // Format guessed from the content.
    expect(&import(&env, "scim_list_response_rfc7644.json", "scim"), 0);
    let f = fixture("fusionauth_user_response.json");
    expect(&env.run(&["import", f.to_str().unwrap()], None), 0);

    let o = env.run(
        &[
            "search",
            r#"userName sw "testuser""#,
            "--sort",
            "username",
            "--desc",
        ],
        None,
    );
    expect(&o, 0);
    let names: Vec<_> = json_lines(&o)
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["testuser3", "testuser2", "testuser1"]);
    let o = env.run(
        &[
            "search",
            r#"userName sw "testuser""#,
            "--sort",
            "username",
            "--limit",
            "1",
            "--offset",
            "1",
        ],
        None,
    );
    expect(&o, 0);
    assert_eq!(json_lines(&o).len(), 1);
    assert_eq!(json_lines(&o)[0]["username"], "testuser2");
    let o = env.run(
        &[
            "search",
            r#"roles eq "community_helper""#,
            "--format",
            "scim",
        ],
        None,
    );
    expect(&o, 0);
    assert_eq!(json_lines(&o)[0]["userName"], "johnny123");
    expect(&env.run(&["search", r#"userName eq "nobody""#], None), 1);
    let o = env.run(&["search", r#"userName eq"#], None);
    expect(&o, 2);
    assert!(stderr(&o).contains("position"), "{}", stderr(&o));
    expect(
        &env.run(&["search", "active eq true", "--sort", "shoe size"], None),
        2,
    );

    let o = env.run(&["check"], None);
    expect(&o, 0);
    assert!(stdout(&o).starts_with("ok: 6 users"), "{}", stdout(&o));
    let o = env.run(&["stats"], None);
    expect(&o, 0);
    let s = stdout(&o);
    assert!(
        s.contains("users 6\n") && s.contains("active 6\n") && s.contains("file_bytes "),
        "{s}"
    );

    // Login of a Fuse user imported with a plaintext password.
    expect(
        &env.run(&["login", "testuser2"], Some("Password1234@\n")),
        0,
    );
}

#[test]
fn bad_rows_are_all_reported_and_nothing_is_written() {
    let env = Env::new();
    expect(&import(&env, "fuse_bulk_create.json", "fuse"), 0);
    let bad = env.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"users":[
            {"username":"fine","active":true},
            {"username":"testuser1","active":true},
            {"username":"x","email":"not an email"},
            {"username":"fine2"}
        ]}"#,
    )
    .unwrap();
    let o = env.run(
        &["import", bad.to_str().unwrap(), "--format", "fusionauth"],
        None,
    );
    expect(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("row 2"), "{err}");
    assert!(err.contains("nothing written"), "{err}");
    expect(&env.run(&["get", "fine"], None), 1);
    let o = env.run(&["stats"], None);
    assert!(stdout(&o).contains("users 3\n"));

    // Shape problems: every row listed, one per line.
    std::fs::write(
        &bad,
        r#"{"users":[{"username":1},{"username":"ok"},{"email":[]}]}"#,
    )
    .unwrap();
    let o = env.run(&["import", bad.to_str().unwrap()], None);
    expect(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("row 0, field username") && err.contains("row 2, field email"),
        "{err}"
    );
    assert!(err.lines().count() >= 3, "{err}");
}

#[test]
fn bad_json_and_bad_files_exit_2() {
    let env = Env::new();
    let o = import(&env, "scim_user_firstup_malformed.json", "scim");
    expect(&o, 2);
    assert!(stderr(&o).contains("malformed JSON"), "{}", stderr(&o));
    let o = env.run(&["import", "no-such-file.json"], None);
    expect(&o, 2);
    expect(&env.run(&["import", "x.json", "--format", "xml"], None), 2);
    expect(&env.run(&["frobnicate"], None), 2);
    // A missing directory file for a read command.
    let o = env.run(&["get", "ann"], None);
    expect(&o, 2);
    assert!(stderr(&o).contains("no directory file"), "{}", stderr(&o));
    assert!(
        !env.db().exists(),
        "a read command must not create the file"
    );

    // A file that is not a directory file.
    let not_db = env.path("notes.txt");
    std::fs::write(
        &not_db,
        "these are not the users you are looking for\n".repeat(200),
    )
    .unwrap();
    for args in [&["get", "ann"][..], &["stats"], &["check"]] {
        let o = env.run_db(&not_db, args, None);
        expect(&o, 2);
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("not a userdir directory"),
            "{}",
            stderr(&o)
        );
    }
    // The file is unchanged.
    assert!(
        std::fs::read_to_string(&not_db)
            .unwrap()
            .starts_with("these are not")
    );
}

#[test]
fn a_file_locked_by_another_process_exits_3() {
    let env = Env::new();
    expect(
        &env.run(&["create", "--username", "ann", "--no-password"], None),
        0,
    );
    // This test process holds the file open (redb locks it), so the `userdir` process
    // cannot. Deterministic, unlike waiting for another child to reach its open.
    let holder = userdir::Directory::open(env.db()).unwrap();
    let o = env.run(&["get", "ann"], None);
    expect(&o, 3);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("locked") && err.contains("another process"),
        "{err}"
    );
    drop(holder);
    expect(&env.run(&["get", "ann"], None), 0);
}

#[test]
fn export_with_hashes_round_trips_into_a_fresh_file() {
    let env = Env::new();
    expect(&import(&env, "fuse_bulk_create.json", "fuse"), 0);
    expect(
        &import(&env, "scim_user_rfc7643_enterprise.json", "scim"),
        0,
    );
    expect(
        &import(&env, "fusionauth_user_response.json", "fusionauth"),
        0,
    );
    expect(&env.run(&["deactivate", "testuser3"], None), 0);

    for format in ["fusionauth", "jsonl"] {
        let o = env.run(&["export", "--format", format, "--with-hashes"], None);
        expect(&o, 0);
        let dump = env.path(&format!("dump.{format}"));
        std::fs::write(&dump, &o.stdout).unwrap();
        let fresh = env.path(&format!("fresh-{format}.redb"));
        let o = env.run_db(
            &fresh,
            &["import", dump.to_str().unwrap(), "--format", format],
            None,
        );
        expect(&o, 0);

        let a = env.run(&["export", "--format", "jsonl", "--with-hashes"], None);
        let b = env.run_db(
            &fresh,
            &["export", "--format", "jsonl", "--with-hashes"],
            None,
        );
        expect(&b, 0);
        let (mut a, mut b) = (json_lines(&a), json_lines(&b));
        assert_eq!(a.len(), 5);
        for u in a.iter_mut().chain(b.iter_mut()) {
            u.as_object_mut().unwrap().remove("lastUpdateInstant");
        }
        assert_eq!(a, b, "{format}");
        // Passwords still work in the fresh file.
        let o = env.run_db(&fresh, &["login", "testuser1"], Some("Password1234!\n"));
        expect(&o, 0);
    }

    // Without --with-hashes nothing secret is written, in any format.
    for format in ["fusionauth", "fuse", "scim", "jsonl"] {
        let o = env.run(&["export", "--format", format], None);
        expect(&o, 0);
        let s = stdout(&o);
        assert!(!s.contains("$argon2"), "{format}");
        assert!(!s.contains("Password1234"), "{format}");
    }
    let o = env.run(&["export", "--format", "scim", "--with-hashes"], None);
    expect(&o, 2);
}

#[test]
fn demo_runs_on_a_small_sample_folder() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    // A few users of each sample file, to keep the test fast.
    for name in [
        "fusionauth_users.json",
        "scim_users.json",
        "fuse_users.json",
    ] {
        let text = std::fs::read_to_string(samples.join(name)).unwrap();
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        let key = if name.starts_with("scim") {
            "Resources"
        } else {
            "users"
        };
        doc[key].as_array_mut().unwrap().truncate(5);
        std::fs::write(data.join(name), doc.to_string()).unwrap();
    }
    let jl = std::fs::read_to_string(samples.join("users.jsonl")).unwrap();
    let few: Vec<&str> = jl.lines().take(5).collect();
    std::fs::write(data.join("users.jsonl"), few.join("\n")).unwrap();

    let o = env.run(&["demo", "--data", data.to_str().unwrap()], None);
    expect(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("5 users from fusionauth_users.json"), "{out}");
    assert!(out.contains("directory holds 20 users"), "{out}");
    assert!(out.contains("login with the new password: ok"), "{out}");
    assert!(out.contains("integrity check"), "{out}");

    let o = env.run(
        &["--output", "json", "demo", "--data", data.to_str().unwrap()],
        None,
    );
    expect(&o, 0);
    let steps = json_lines(&o);
    let step = |name: &str| -> Vec<&Value> { steps.iter().filter(|s| s["step"] == name).collect() };
    assert_eq!(step("import").len(), 4);
    assert_eq!(step("import")[0]["users"], 5);
    assert_eq!(step("search").len(), 6);
    assert!(step("login").iter().all(|l| l["ok"] == true), "{steps:?}");
    assert_eq!(step("password_reset")[0]["token_reuse_refused"], true);
    assert_eq!(step("password_reset")[0]["login_with_new_password"], true);
    assert_eq!(step("summary")[0]["users"], 20);
}

/// stderr as it is (runs without `--insecure-fast-hash`, or refused while parsing arguments).
fn raw_stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one JSON object of stdout.
fn json_out(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The one JSON object of stderr (an error under `--output json`).
fn json_err(o: &Output) -> Value {
    serde_json::from_str(stderr(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)))
}

#[test]
fn output_json_on_every_command() {
    let env = Env::new();
    let j = ["--output", "json"];
    let run = |args: &[&str], stdin: Option<&str>| {
        let all: Vec<&str> = j.iter().chain(args).copied().collect();
        env.run(&all, stdin)
    };
    let f = fixture("fuse_bulk_create.json");
    let o = run(&["import", f.to_str().unwrap()], None);
    expect(&o, 0);
    let v = json_out(&o);
    assert_eq!(
        (&v["imported"], &v["hashed"], &v["format"], &v["dry_run"]),
        (&3.into(), &3.into(), &"fuse".into(), &false.into()),
        "{v}"
    );
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    let o = run(
        &["create", "--username", "ann"],
        Some("correct horse battery\n"),
    );
    expect(&o, 0);
    assert_eq!(json_out(&o)["username"], "ann");
    let o = run(&["get", "ANN"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["username"], "ann");
    let o = run(&["login", "ann"], Some("correct horse battery\n"));
    expect(&o, 0);
    let v = json_out(&o);
    assert_eq!(v["user"]["username"], "ann");
    assert_eq!(v["password_change_required"], false);
    let o = run(&["search", "active eq true", "--sort", "username"], None);
    expect(&o, 0);
    assert_eq!(json_lines(&o).len(), 4);
    let o = run(&["stats"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["users"], 4);
    assert_eq!(json_out(&o)["active"], 4);
    assert!(json_out(&o)["file_bytes"].as_u64().unwrap() > 0);
    let o = run(&["check"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o), serde_json::json!({"ok": true, "users": 4}));
    let o = run(&["deactivate", "ann"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["active"], false);
    let o = run(&["reactivate", "ann"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["active"], true);
    let o = run(&["deactivate", "ann"], None);
    expect(&o, 0);
    let o = run(&["export", "--format", "scim"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["totalResults"], 4);
    let backup = env.path("copy.redb");
    let o = run(&["backup", backup.to_str().unwrap()], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["users"], 4);

    // Errors: one JSON object on stderr, nothing on stdout.
    let o = run(&["get", "nobody"], None);
    expect(&o, 1);
    assert!(stdout(&o).is_empty());
    let e = json_err(&o);
    assert_eq!(e["exit_code"], 1);
    assert!(e["error"].as_str().unwrap().contains("nobody"), "{e}");
    let bad = env.path("bad.json");
    // Rows bad on their own are refused while the file is read.
    std::fs::write(
        &bad,
        r#"{"users":[{"username":"zed"},{"username":"x","email":"not an email"}]}"#,
    )
    .unwrap();
    let o = run(
        &["import", bad.to_str().unwrap(), "--format", "fusionauth"],
        None,
    );
    expect(&o, 2);
    let e = json_err(&o);
    let problems = e["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{e}");
    assert_eq!(problems[0]["row"], 1);
    assert_eq!(problems[0]["field"], "email");
    // Rows that clash with existing users are refused by the import: its report.
    std::fs::write(&bad, r#"{"users":[{"username":"zed"},{"username":"ANN"}]}"#).unwrap();
    let o = run(
        &["import", bad.to_str().unwrap(), "--format", "fusionauth"],
        None,
    );
    expect(&o, 2);
    let e = json_err(&o);
    let problems = e["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{e}");
    assert_eq!(problems[0]["index"], 1);
    assert_eq!(problems[0]["reason"]["kind"], "duplicate_of_existing");

    // A dry run, a full report and a deletion.
    let o = run(&["import", f.to_str().unwrap(), "--dry-run"], None);
    expect(&o, 2);
    assert!(json_err(&o)["problems"].as_array().unwrap().len() >= 3);
    let report = env.path("report.json");
    let o = run(
        &[
            "import",
            bad.to_str().unwrap(),
            "--format",
            "fusionauth",
            "--report",
            report.to_str().unwrap(),
        ],
        None,
    );
    expect(&o, 2);
    let lines: Vec<Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines[0]["notice"].as_str().unwrap().contains("written to"));
    assert_eq!(lines[1]["exit_code"], 2);
    let o = run(&["delete", "ann"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["username"], "ann");

    // Usage errors are JSON too; every stderr line of every run above was.
    let o = run(&["search", "active eq true", "--sort", "shoe"], None);
    expect(&o, 2);
    let e: Value = serde_json::from_str(raw_stderr(&o).trim()).unwrap();
    assert_eq!(e["exit_code"], 2);
    assert!(e["error"].as_str().unwrap().contains("shoe"), "{e}");
    assert!(
        e["usage"].as_str().unwrap().contains("possible values"),
        "{e}"
    );
    let o = env.run(&["--output=json", "frobnicate"], None);
    expect(&o, 2);
    assert!(serde_json::from_str::<Value>(raw_stderr(&o).trim()).is_ok());
    // Without --output json they stay clap's text.
    let o = env.run(&["frobnicate"], None);
    expect(&o, 2);
    assert!(raw_stderr(&o).starts_with("error:"), "{}", raw_stderr(&o));
}

/// `serve` under `--output json` prints its address as JSON (then runs until stopped).
#[test]
fn serve_prints_its_address_as_json() {
    use std::io::BufRead;
    let env = Env::new();
    let token = env.path("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(env.db())
        .args([
            "--output",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
        ])
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    let url = v["serving"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{v}"
    );
    assert!(!line.contains("s3cret"), "the token was printed");
}

#[test]
fn completions_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = env.run(&["completions", shell], None);
        expect(&o, 0);
        let s = stdout(&o);
        assert!(s.contains("userdir"), "{shell}: {s}");
        assert!(s.contains("backup") && s.contains("dry-run"), "{shell}");
    }
    let o = env.run(&["completions", "bash"], None);
    // Value lists reach the completions too.
    assert!(stdout(&o).contains("fusionauth"), "{}", stdout(&o));
    expect(&env.run(&["completions", "tcsh"], None), 2);
}

#[test]
fn help_lists_the_values_of_format_sort_and_output() {
    let env = Env::new();
    let o = env.run(&["search", "--help"], None);
    expect(&o, 0);
    let h = stdout(&o);
    for v in [
        "username",
        "email",
        "fullName",
        "birthDate",
        "insertInstant",
        "lastLogin",
        "fusionauth",
        "fuse",
        "scim",
        "jsonl",
        "text",
        "json",
        "USERDIR_DB",
    ] {
        assert!(h.contains(v), "{v} missing from:\n{h}");
    }
    // The old spellings still work, case-insensitively.
    expect(&import(&env, "fuse_bulk_create.json", "FUSE"), 0);
    for sort in [
        "fullName",
        "full_name",
        "FULLNAME",
        "created",
        "lastLoginInstant",
    ] {
        expect(
            &env.run(&["search", "active eq true", "--sort", sort], None),
            0,
        );
    }
    let o = env.run(&["search", "active eq true", "--sort", "shoe"], None);
    expect(&o, 2);
    assert!(
        raw_stderr(&o).contains("possible values"),
        "{}",
        raw_stderr(&o)
    );
}

#[test]
fn userdir_db_names_the_file_when_db_is_not_given() {
    let env = Env::new();
    let file = env.path("from-env.redb");
    let run = |args: &[&str], db: Option<&Path>| {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("USERDIR_DB")
            .current_dir(env.tmp.path());
        if let Some(db) = db {
            cmd.env("USERDIR_DB", db);
        }
        cmd.output().unwrap()
    };
    expect(
        &run(
            &["create", "--username", "ann", "--no-password"],
            Some(&file),
        ),
        0,
    );
    assert!(file.exists());
    expect(&run(&["get", "ann"], Some(&file)), 0);
    // --db wins over the variable.
    let mut cmd = Command::new(BIN);
    let o = cmd
        .args(["--db", "other.redb", "get", "ann"])
        .env("USERDIR_DB", &file)
        .current_dir(env.tmp.path())
        .output()
        .unwrap();
    expect(&o, 2);
    // Without either: userdir.redb in the working directory.
    expect(&run(&["get", "ann"], None), 2);
    assert!(
        raw_stderr(&run(&["get", "ann"], None)).contains("userdir.redb"),
        "the default file is named"
    );
}

#[test]
fn import_dry_run_validates_everything_and_writes_nothing() {
    let env = Env::new();
    let f = fixture("fuse_bulk_create.json");
    let f = f.to_str().unwrap();
    // No directory file yet: validated against an empty directory, and none is created.
    let o = env.run(&["--output", "json", "import", f, "--dry-run"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["imported"], 3);
    assert_eq!(json_out(&o)["dry_run"], true);
    assert!(!env.db().exists(), "a dry run created the file");
    let o = env.run(&["import", f, "--dry-run"], None);
    expect(&o, 0);
    assert!(stderr(&o).contains("nothing written"), "{}", stderr(&o));

    expect(&env.run(&["import", f], None), 0);
    let dump = || stdout(&env.run(&["export", "--format", "jsonl", "--with-hashes"], None));
    let before = dump();
    // Against the existing users: every row is a duplicate now (username and email), all
    // reported.
    let o = env.run(&["import", f, "--dry-run"], None);
    expect(&o, 2);
    assert_eq!(
        stderr(&o).matches("already taken").count(),
        6,
        "{}",
        stderr(&o)
    );
    let other = env.path("new.json");
    std::fs::write(
        &other,
        r#"{"users":[{"username":"zed","password":"a long password"}]}"#,
    )
    .unwrap();
    let o = env.run(
        &[
            "import",
            other.to_str().unwrap(),
            "--dry-run",
            "--format",
            "fusionauth",
        ],
        None,
    );
    expect(&o, 0);
    expect(&env.run(&["get", "zed"], None), 1);
    assert_eq!(dump(), before, "a dry run wrote");
}

#[test]
fn a_backup_holds_every_acknowledged_user_and_restores() {
    let env = Env::new();
    expect(&import(&env, "fuse_bulk_create.json", "fuse"), 0);
    // Acknowledged writes after the import: they may still be only in the redo log.
    for name in ["ann", "bob", "cid"] {
        expect(
            &env.run(
                &["create", "--username", name],
                Some("correct horse battery\n"),
            ),
            0,
        );
    }
    expect(&env.run(&["deactivate", "bob"], None), 0);
    let copy = env.path("backup.redb");
    let o = env.run(&["backup", copy.to_str().unwrap()], None);
    expect(&o, 0);
    assert!(stderr(&o).contains("backed up 6 users"), "{}", stderr(&o));
    assert!(!log_of(&copy).exists(), "the backup is one file");

    // Restore: the copy alone, somewhere else, with no log.
    let restored = env.path("restored.redb");
    std::fs::copy(&copy, &restored).unwrap();
    let o = env.run_db(&restored, &["--output", "json", "stats"], None);
    expect(&o, 0);
    assert_eq!(json_out(&o)["users"], 6);
    assert_eq!(json_out(&o)["active"], 5);
    expect(&env.run_db(&restored, &["check"], None), 0);
    expect(
        &env.run_db(
            &restored,
            &["login", "cid"],
            Some("correct horse battery\n"),
        ),
        0,
    );
    expect(
        &env.run_db(&restored, &["login", "testuser2"], Some("Password1234@\n")),
        0,
    );

    // An existing file is kept unless --force; --force also drops a stale log.
    let o = env.run(&["backup", copy.to_str().unwrap()], None);
    expect(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    expect(
        &env.run(&["create", "--username", "dan", "--no-password"], None),
        0,
    );
    std::fs::write(log_of(&copy), b"stale").unwrap();
    expect(
        &env.run(&["backup", copy.to_str().unwrap(), "--force"], None),
        0,
    );
    assert!(!log_of(&copy).exists());
    expect(&env.run_db(&copy, &["get", "dan"], None), 0);
    // Never onto the directory itself.
    let db = env.db();
    expect(
        &env.run(&["backup", db.to_str().unwrap(), "--force"], None),
        2,
    );
    expect(&env.run(&["check"], None), 0);
    let left: Vec<_> = std::fs::read_dir(env.tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".userdir-backup")
        })
        .collect();
    assert!(left.is_empty(), "temporary folders left behind");
}

fn log_of(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap().to_os_string();
    name.push(".wal");
    db.with_file_name(name)
}

/// No environment variable weakens the hashes of a release binary: only the explicit, loudly
/// printed `--insecure-fast-hash` does.
#[test]
fn the_environment_never_weakens_hashes() {
    let env = Env::new();
    let o = Command::new(BIN)
        .arg("--db")
        .arg(env.db())
        .args(["create", "--username", "ann"])
        .env("USERDIR_INSECURE_FAST_HASH", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"correct horse battery\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("WARNING"));
    let o = env.run(&["export", "--format", "jsonl", "--with-hashes"], None);
    expect(&o, 0);
    assert!(
        stdout(&o).contains("$argon2id$v=19$m=19456,t=2,p=1$"),
        "OWASP parameters despite the variable: {}",
        stdout(&o)
    );
}

/// A file of many bad rows: at most 100 problems printed with the total; `--report FILE`
/// holds them all, as JSON.
#[test]
fn import_prints_the_first_100_problems_and_reports_all() {
    let env = Env::new();
    let rows: Vec<String> = (0..250)
        .map(|i| format!(r#"{{"username":{i},"active":true}}"#))
        .collect();
    let file = env.path("bad.json");
    std::fs::write(&file, format!("{{\"users\":[{}]}}", rows.join(","))).unwrap();
    let report = env.path("report.json");
    let o = env.run(
        &[
            "import",
            file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        None,
    );
    expect(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("250 problem(s)"), "{err}");
    assert!(err.contains("and 150 more problem(s) not shown"), "{err}");
    assert!(
        err.lines().filter(|l| l.contains("field username")).count() == 100,
        "{err}"
    );
    let rep: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rep["total"], 250);
    assert_eq!(rep["problems"].as_array().unwrap().len(), 250);
    assert_eq!(rep["problems"][249]["row"], 249);
    assert!(
        !env.db().exists(),
        "nothing written, not even the directory file"
    );

    // Rows bad only for the directory (duplicates): the same printing and report.
    let rows: Vec<String> = (0..150)
        .map(|_| r#"{"username":"same","active":true}"#.to_owned())
        .collect();
    std::fs::write(&file, format!("{{\"users\":[{}]}}", rows.join(","))).unwrap();
    let o = env.run(
        &[
            "import",
            file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        None,
    );
    expect(&o, 2);
    assert!(
        stderr(&o).contains("and 49 more problem(s)"),
        "{}",
        stderr(&o)
    );
    let rep: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rep["total"], 149);
}

#[test]
fn import_limits_stdin_fifo_duplicate_keys_and_inactive_rows() {
    let env = Env::new();
    // `-` reads stdin, streamed; rows without `active` are imported inactive and counted.
    let o = env.run(
        &["import", "-", "--format", "fusionauth"],
        Some(r#"{"users":[{"username":"ann","active":true},{"username":"bob"}]}"#),
    );
    expect(&o, 0);
    assert!(stderr(&o).contains("imported 2 users"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 of them imported INACTIVE"),
        "{}",
        stderr(&o)
    );

    // Duplicate keys: refused, exit 2.
    let o = env.run(
        &["import", "-", "--format", "fusionauth"],
        Some(r#"{"users":[{"username":"carl","active":true}],"users":[]}"#),
    );
    expect(&o, 2);
    assert!(stderr(&o).contains("duplicate key"), "{}", stderr(&o));

    // Record and input caps.
    let big = format!(
        r#"{{"users":[{{"username":"dan","active":true,"data":{{"x":"{}"}}}}]}}"#,
        "z".repeat(10_000)
    );
    let o = env.run(
        &[
            "import",
            "-",
            "--format",
            "fusionauth",
            "--max-record-bytes",
            "1000",
        ],
        Some(&big),
    );
    expect(&o, 2);
    assert!(
        stderr(&o).contains("larger than the limit of 1000 bytes"),
        "{}",
        stderr(&o)
    );
    let file = env.path("big.json");
    std::fs::write(&file, &big).unwrap();
    let o = env.run(
        &[
            "import",
            file.to_str().unwrap(),
            "--max-input-bytes",
            "1000",
        ],
        None,
    );
    expect(&o, 2);
    assert!(
        stderr(&o).contains("over the limit of 1000"),
        "{}",
        stderr(&o)
    );

    // A FIFO (no writer would make opening it block forever): refused before opening.
    #[cfg(unix)]
    {
        let fifo = env.path("users.fifo");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let o = env.run(&["import", fifo.to_str().unwrap()], None);
            expect(&o, 2);
            assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
        }
    }
}

/// Issue 14: `login` reads the password before it opens (and locks) the file, so a prompt
/// waiting for input locks no other process out.
#[test]
fn login_reads_stdin_before_it_opens_the_file() {
    let env = Env::new();
    expect(
        &env.run(&["create", "--username", "ann"], Some("a fine password\n")),
        0,
    );
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(env.db())
        .args(["login", "ann"])
        .arg("--insecure-fast-hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While `login` waits for its password, the file is free: another process (this one)
    // opens it. Retried briefly: `login` may not have reached its read yet, but it never
    // holds the file before the password arrives, so every try succeeds.
    for _ in 0..20 {
        let dir = userdir::Directory::open(env.db()).unwrap();
        assert_eq!(dir.count().unwrap(), 1);
        drop(dir);
    }
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"a fine password\n").unwrap();
    drop(input);
    expect(&child.wait_with_output().unwrap(), 0);
}

/// Issue 14: the reading commands open the file read-only: they work on a file and a folder
/// without write permission, and leave the file and its log byte for byte as they were.
#[cfg(unix)]
#[test]
fn reading_commands_do_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    expect(&import(&env, "fuse_bulk_create.json", "fuse"), 0);
    let log = env.path("users.redb.wal");
    let before = (std::fs::read(env.db()).unwrap(), std::fs::read(&log).ok());
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&env.db(), 0o444).unwrap();
    if log.exists() {
        mode(&log, 0o444).unwrap();
    }
    mode(env.tmp.path(), 0o555).unwrap();
    let runs = [
        env.run(&["stats"], None),
        env.run(&["check"], None),
        env.run(&["search", "userName pr"], None),
        env.run(&["get", "testuser1"], None),
        env.run(&["export", "--format", "fusionauth"], None),
    ];
    // Root may write anyway; where `setpriv` can drop to `nobody`, the commands also run as a
    // user that truly cannot write the file or its folder (needs the binary readable by it).
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BIN,
                "--db",
            ])
            .arg(env.db())
            .args(args)
            .output()
            .ok()
            .filter(|o| !String::from_utf8_lossy(&o.stderr).contains("setpriv"))
    };
    for args in [&["stats"][..], &["get", "testuser1"][..], &["check"][..]] {
        if let Some(o) = as_nobody(args) {
            expect(&o, 0);
        }
    }
    mode(env.tmp.path(), 0o755).unwrap();
    for o in &runs {
        expect(o, 0);
    }
    assert_eq!(
        (std::fs::read(env.db()).unwrap(), std::fs::read(&log).ok()),
        before,
        "a reading command changed the file or its log"
    );
    // Two readers at once (read-only opens share the file).
    let holder = userdir::Directory::builder()
        .read_only()
        .open(env.db())
        .unwrap();
    expect(&env.run(&["stats"], None), 0);
    drop(holder);
}

/// Issue 14: `export | head` ends quietly when its reader goes away.
#[test]
fn export_to_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    let rows: Vec<String> = (0..3000)
        .map(|i| format!(r#"{{"username": "user{i}", "email": "user{i}@example.com"}}"#))
        .collect();
    let file = env.path("many.json");
    std::fs::write(&file, format!(r#"{{"users": [{}]}}"#, rows.join(","))).unwrap();
    let o = env.run(
        &["import", file.to_str().unwrap(), "--format", "fusionauth"],
        None,
    );
    expect(&o, 0);
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(env.db())
        .args(["export", "--format", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `head -1` does.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.is_empty(), "{err}");
    expect(&o, 0);
}

/// Issue 14: a refused `create` or `import` on a path that did not exist leaves no file.
#[test]
fn a_refused_create_or_import_leaves_no_file() {
    let env = Env::new();
    let o = env.run(
        &["create", "--username", "bad\u{7}name", "--no-password"],
        None,
    );
    expect(&o, 2);
    assert!(!env.db().exists(), "a refused create left a file");
    assert!(!env.path("users.redb.wal").exists());
    let file = env.path("dups.json");
    std::fs::write(
        &file,
        r#"{"users": [{"username": "x"}, {"username": "X"}]}"#,
    )
    .unwrap();
    let o = env.run(
        &["import", file.to_str().unwrap(), "--format", "fusionauth"],
        None,
    );
    expect(&o, 2);
    assert!(!env.db().exists(), "a refused import left a file");
    // An existing directory stays, of course.
    expect(
        &env.run(&["create", "--username", "ann", "--no-password"], None),
        0,
    );
    expect(
        &env.run(&["create", "--username", "ANN", "--no-password"], None),
        2,
    );
    assert!(env.db().exists());
}

/// Issue 14: on damaged files (some make redb panic; the library turns those panics into
/// `Corrupt`), the command exits 0, 2 or 3 and never prints a panic's text. Roughly one copy in
/// a hundred makes redb panic; `USERDIR_CLI_DAMAGE_COPIES` sets the number (default 120; the
/// code before the fix printed redb's panic within 400).
#[test]
fn damaged_files_never_print_panic_text() {
    let env = Env::new();
    expect(&import(&env, "fuse_bulk_create.json", "fuse"), 0);
    expect(&env.run(&["check"], None), 0);
    let original = std::fs::read(env.db()).unwrap();
    let data: Vec<usize> = (0..original.len()).filter(|i| original[*i] != 0).collect();
    let copy = env.path("damaged.redb");
    let mut x = 0x5eed_u64;
    let copies = std::env::var("USERDIR_CLI_DAMAGE_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    for _ in 0..copies {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = original.clone();
        let at = data[(x % data.len() as u64) as usize];
        b[at] ^= 1 << (x % 8);
        std::fs::write(&copy, &b).unwrap();
        let _ = std::fs::remove_file(env.path("damaged.redb.wal"));
        for args in [&["check"][..], &["get", "testuser1"][..]] {
            let o = env.run_db(&copy, args, None);
            let err = stderr(&o);
            // The hook's text (`thread '…' panicked at file:line:` and the message), never the
            // library's own `Corrupt` message (which says the engine panicked).
            assert!(
                !err.contains("panicked at")
                    && !err.contains("thread '")
                    && !err.contains("RUST_BACKTRACE"),
                "byte {at}: {err}"
            );
            if err.contains("panicked") {
                assert_eq!(code(&o), 3, "{err}");
                assert_eq!(err.lines().count(), 1, "{err}");
            }
            assert!(matches!(code(&o), 0..=3), "byte {at}: {err}");
        }
    }
}
