//! `userdir`: inspect and manage a userdir directory file from the command line.
//!
//! Exit codes: 0 success; 1 not found, refused (login) or no match; 2 bad input (usage, an
//! invalid filter, bad rows, a bad or missing file); 3 storage failure (I/O, a file locked by
//! another process, a failed integrity check). Errors are one line on stderr (`userdir: …`);
//! an import with bad rows prints one line per problem. With `--output json`, results and
//! summaries are JSON on stdout and an error is one JSON object on stderr
//! (`{"error": ..., "exit_code": ..., "problems": [...]}`).
//!
//! `USERDIR_DB` gives the directory file when `--db` is not given.
//!
//! `--insecure-fast-hash` makes new hashes use argon2's cheapest parameters, and says so on
//! stderr at every run. It exists for the test suite only; never use it for real data. (No
//! environment variable can weaken the hashes: an inherited variable would do it silently.)

// Held to clippy's pedantic set, as the library.
#![deny(clippy::pedantic)]
// `run` and `demo` read top to bottom as the commands and the demo's steps; product and
// variable names in help text (PostgreSQL, USERDIR_DB) are prose, shown as written by --help.
#![allow(clippy::too_many_lines, clippy::doc_markdown)]

use std::io::{BufRead, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant as Timer;

mod serve;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use userdir::json::{self, Format, ReadLimits};
use userdir::{
    Argon2Params, Directory, Error, ImportBatch, ImportSummary, JsonProblem, NewUser, Search,
    SortField, User,
};

#[derive(Parser)]
#[command(
    name = "userdir",
    version,
    about = "An embedded user directory in one redb file or a PostgreSQL database"
)]
struct Cli {
    /// The directory: a redb file, or a PostgreSQL URL (`postgresql://user@host/dbname`,
    /// `postgres://…`) shared by many processes. Also read from USERDIR_DB.
    #[arg(
        long,
        global = true,
        env = "USERDIR_DB",
        default_value = "userdir.redb"
    )]
    db: PathBuf,
    /// text: human-readable summaries; json: results, summaries and errors as JSON (users are
    /// JSON in both).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// TESTS ONLY, INSECURE: hash new passwords with argon2's cheapest parameters (printed as
    /// a warning at every run). Never use it for real data.
    #[arg(long, global = true)]
    insecure_fast_hash: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Set once in `main` when `--output json` is given: progress bars stay hidden and notices
/// are JSON objects (see [`notice`]).
static JSON_OUTPUT: AtomicBool = AtomicBool::new(false);

/// A notice on stderr that is not an error (a recovery, a warning, where a report went):
/// `userdir: <msg>` under `--output text`, `{"notice": "<msg>"}` under `--output json`.
fn notice(msg: &str) {
    if JSON_OUTPUT.load(Ordering::Relaxed) {
        eprintln!("{}", json!({ "notice": msg }));
    } else {
        eprintln!("userdir: {msg}");
    }
}

/// How results, summaries and errors are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Summaries as text lines, errors as `userdir: ...` lines.
    Text,
    /// Everything as JSON: one document or one object per line on stdout, errors on stderr.
    Json,
}

/// A JSON interchange format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// `FusionAuth`'s User API shape.
    #[value(name = "fusionauth")]
    FusionAuth,
    /// Fuse Universal's bulk create shape.
    Fuse,
    /// SCIM 2.0 (RFC 7643).
    Scim,
    /// JSON Lines: one FusionAuth-shaped user per line.
    #[value(name = "jsonl", alias = "json-lines", alias = "jsonlines")]
    JsonLines,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::FusionAuth => Format::FusionAuth,
            FormatArg::Fuse => Format::Fuse,
            FormatArg::Scim => Format::Scim,
            FormatArg::JsonLines => Format::JsonLines,
        }
    }
}

/// A sort key of `search`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SortArg {
    /// The username (caseless).
    Username,
    /// The email.
    #[value(alias = "emails")]
    Email,
    /// The full name.
    #[value(
        name = "fullName",
        alias = "full-name",
        alias = "full_name",
        alias = "name"
    )]
    FullName,
    /// The birth date.
    #[value(name = "birthDate", alias = "birth-date", alias = "birth_date")]
    BirthDate,
    /// When the user was created.
    #[value(
        name = "insertInstant",
        alias = "insert-instant",
        alias = "insert_instant",
        alias = "created"
    )]
    InsertInstant,
    /// The last login.
    #[value(
        name = "lastLogin",
        alias = "last-login",
        alias = "last_login",
        alias = "lastLoginInstant"
    )]
    LastLogin,
}

impl From<SortArg> for SortField {
    fn from(s: SortArg) -> SortField {
        match s {
            SortArg::Username => SortField::username(),
            SortArg::Email => SortField::email(),
            SortArg::FullName => SortField::full_name(),
            SortArg::BirthDate => SortField::birth_date(),
            SortArg::InsertInstant => SortField::insert_instant(),
            SortArg::LastLogin => SortField::last_login(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Import the sample files into a temporary directory, search, log in, reset a password,
    /// and print what happened with timings.
    Demo {
        /// Folder with the sample files (default: the crate's examples/data).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Import users from a JSON file, all or nothing. The file is read as a stream (never
    /// held whole); at most the first 100 problems are printed, with the total count.
    Import {
        /// The file (`-` for stdin). Must be a regular file: pipe into `-` otherwise.
        file: PathBuf,
        /// The file's format (default: guessed from the file).
        #[arg(long, value_enum, ignore_case = true)]
        format: Option<FormatArg>,
        /// Validate every row against the file and the directory and report, but hash and
        /// write nothing (the directory file is not created).
        #[arg(long)]
        dry_run: bool,
        /// Write every problem (not only the first 100) to this file, as JSON:
        /// `{"problems":[{"row":…,"field":…,"reason":…},…],"total":N}`.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// The largest input accepted, in bytes.
        #[arg(long, default_value_t = ReadLimits::DEFAULT_MAX_INPUT_BYTES)]
        max_input_bytes: u64,
        /// The largest record accepted (one user, one JSON Lines line), in bytes.
        #[arg(long, default_value_t = ReadLimits::DEFAULT_MAX_RECORD_BYTES)]
        max_record_bytes: u64,
    },
    /// Create one user; the password, if any, is read from stdin.
    Create(CreateArgs),
    /// Print a user found by id, username, email or external id (in that order).
    Get {
        /// Id, username, email or external id.
        id_or_login: String,
        /// The user's JSON shape.
        #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::FusionAuth)]
        format: FormatArg,
    },
    /// Print the users matching a SCIM filter, one JSON user per line.
    Search {
        /// A SCIM filter, e.g. `userName sw "jo" and active eq true`.
        filter: String,
        /// The sort key.
        #[arg(long, value_enum, ignore_case = true)]
        sort: Option<SortArg>,
        /// Sort descending.
        #[arg(long)]
        desc: bool,
        /// At most this many users (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Skip this many users.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// The users' JSON shape.
        #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::FusionAuth)]
        format: FormatArg,
    },
    /// Deactivate (soft delete) a user.
    Deactivate {
        /// Id, username, email or external id.
        id_or_login: String,
    },
    /// Reactivate a deactivated user.
    Reactivate {
        /// Id, username, email or external id.
        id_or_login: String,
    },
    /// Delete a user for good.
    Delete {
        /// Id, username, email or external id.
        id_or_login: String,
    },
    /// Check a password (read from stdin) for a login id.
    Login {
        /// Username or email.
        login_id: String,
    },
    /// Write every user to stdout.
    Export {
        /// The document's format.
        #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::FusionAuth)]
        format: FormatArg,
        /// Include password hashes (fusionauth and jsonl only); the output re-imports exactly.
        #[arg(long)]
        with_hashes: bool,
    },
    /// Check that every index agrees with the records.
    Check,
    /// Print the number of users, of active users, and the file size (for a file).
    Stats,
    /// Serve the directory over SCIM 2.0 (RFC 7644) until interrupted (Ctrl-C or SIGTERM).
    ///
    /// Prints the bound address (`{"serving": "http://…"}` under `--output json`); creates the
    /// file when missing.
    Serve {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// A file holding the bearer token clients must send (`Authorization: Bearer ...`).
        #[arg(long)]
        token_file: PathBuf,
        /// The endpoint's public URL for `meta.location` (default: from the request's Host).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Write a consistent copy of the directory to a new file.
    ///
    /// The redo log is checkpointed into the directory file, which is copied while this
    /// process holds it (no other process can write meanwhile); the copy is opened and checked
    /// before it gets its name. To restore, stop every process using the directory, replace
    /// the directory file with the copy, and delete the directory's `<file>.wal` if there is
    /// one.
    ///
    /// A PostgreSQL directory (`--db postgresql://…`) is refused: back it up with `pg_dump`.
    Backup {
        /// The new file.
        path: PathBuf,
        /// Replace an existing file (and remove its stale `<path>.wal`).
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script to stdout.
    ///
    /// For instance `userdir completions bash > /etc/bash_completion.d/userdir`. The script is
    /// printed as is under `--output json` too: it is meant for the shell, not for a parser.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// Username.
    #[arg(long)]
    username: Option<String>,
    /// Email.
    #[arg(long)]
    email: Option<String>,
    /// External id.
    #[arg(long)]
    external_id: Option<String>,
    /// First name.
    #[arg(long)]
    first_name: Option<String>,
    /// Last name.
    #[arg(long)]
    last_name: Option<String>,
    /// Full name.
    #[arg(long)]
    full_name: Option<String>,
    /// A role (repeat for several).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Create the user deactivated.
    #[arg(long)]
    inactive: bool,
    /// Create the user without a password (do not read stdin).
    #[arg(long)]
    no_password: bool,
}

/// A failure with its exit code and message lines, and for `--output json` the problems as
/// JSON.
struct Fail {
    code: u8,
    lines: Vec<String>,
    problems: Option<Value>,
}

impl Fail {
    fn new(code: u8, msg: impl Into<String>) -> Self {
        Fail {
            code,
            lines: vec![msg.into()],
            problems: None,
        }
    }

    fn print(&self, output: Output) {
        match output {
            Output::Text => {
                for l in &self.lines {
                    eprintln!("userdir: {l}");
                }
            }
            Output::Json if self.lines.is_empty() => {}
            Output::Json => {
                let mut v = json!({
                    "error": self.lines.first().cloned().unwrap_or_default(),
                    "exit_code": self.code,
                });
                if let Some(p) = &self.problems {
                    v["problems"] = p.clone();
                }
                eprintln!("{v}");
            }
        }
    }
}

/// The exit code of a library error.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound(_)
        | Error::InvalidCredentials
        | Error::AccountInactive
        | Error::AccountExpired
        | Error::AccountLocked { .. }
        | Error::InvalidToken
        | Error::TokenExpired => 1,
        Error::Storage(_)
        | Error::AlreadyOpen
        | Error::NeedsRecovery
        | Error::ReadOnly
        | Error::NeedsReopen
        | Error::Corrupt(_)
        | Error::Integrity(_)
        | Error::TooManyConflicts { .. }
        | Error::OutcomeUnknown(_)
        | Error::UnicodeMismatch { .. }
        | Error::Hashing(_) => 3,
        _ => 2,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        if closed_output(&e) {
            // The reader of the output stopped (`| head`): end quietly.
            return Fail {
                code: 0,
                lines: Vec::new(),
                problems: None,
            };
        }
        let code = exit_code(&e);
        let problems = match &e {
            Error::InvalidJson(p) => serde_json::to_value(p).ok(),
            Error::Integrity(p) => serde_json::to_value(p).ok(),
            Error::Import(r) => serde_json::to_value(&r.problems).ok(),
            _ => None,
        };
        let lines = match &e {
            Error::InvalidJson(problems) => {
                let mut l = vec![format!("invalid JSON input: {} problem(s)", problems.len())];
                l.extend(shown(
                    problems.iter().map(ToString::to_string),
                    problems.len(),
                ));
                l
            }
            Error::Integrity(problems) => {
                let mut l = vec![format!(
                    "integrity check failed: {} problem(s)",
                    problems.len()
                )];
                l.extend(problems.iter().cloned());
                l
            }
            Error::Import(report) => {
                let mut l = vec![format!(
                    "import refused, nothing written: {} problem(s)",
                    report.problems.len()
                )];
                l.extend(shown(
                    report.problems.iter().map(ToString::to_string),
                    report.problems.len(),
                ));
                l
            }
            Error::AlreadyOpen => {
                vec!["the directory file is locked: another process has it open".to_owned()]
            }
            _ => vec![e.to_string()],
        };
        Fail {
            code,
            lines,
            problems,
        }
    }
}

type CliResult<T = ()> = Result<T, Fail>;

/// Problems printed at most; `--report FILE` writes them all.
const PRINTED_PROBLEMS: usize = 100;

/// The first [`PRINTED_PROBLEMS`] lines of `total`, then how many more there are.
fn shown(lines: impl Iterator<Item = String>, total: usize) -> Vec<String> {
    let mut out: Vec<String> = lines.take(PRINTED_PROBLEMS).collect();
    if total > out.len() {
        out.push(format!(
            "... and {} more problem(s) not shown (write them all with --report FILE)",
            total - out.len()
        ));
    }
    out
}

/// Whether an error is the output's reader having gone away (`userdir export | head`).
fn closed_output(e: &Error) -> bool {
    e.io_error()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() && json_requested(std::env::args_os()) => {
            // A usage error under `--output json` is JSON too (clap's text, one line).
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!(
                "{}",
                json!({ "error": first, "exit_code": 2, "usage": msg })
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    JSON_OUTPUT.store(cli.output == Output::Json, Ordering::Relaxed);
    if fast_hash(&cli) {
        notice(
            "WARNING: --insecure-fast-hash: new password hashes use argon2's cheapest \
             parameters (m=8 KiB, t=1); for tests only, never for real data",
        );
    }
    // redb panics on some damaged files; the library catches those panics and answers
    // `Error::Corrupt`, but the default hook would still print the panic's text (which may
    // quote bytes of the file) on stderr. Nothing is printed by the hook: a panic that does
    // escape is reported below, without its text.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| run(&cli)).unwrap_or_else(|_| {
        Err(Fail::new(
            4,
            "internal error: userdir panicked (a bug; please report it)",
        ))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.code == 0 => ExitCode::SUCCESS,
        Err(f) => {
            f.print(cli.output);
            ExitCode::from(f.code)
        }
    }
}

/// Whether the arguments ask for `--output json` (read before clap, for its own errors).
fn json_requested(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<_> = args.collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--output=json"
            || (a == "--output"
                && args
                    .get(i + 1)
                    .is_some_and(|v| v.eq_ignore_ascii_case("json")))
    })
}

fn fast_hash(cli: &Cli) -> bool {
    cli.insecure_fast_hash
}

fn params(cli: &Cli) -> Argon2Params {
    if fast_hash(cli) {
        Argon2Params::insecure_fast()
    } else {
        Argon2Params::owasp()
    }
}

/// The PostgreSQL URL `--db` names, if it names one rather than a file.
fn postgres_url(cli: &Cli) -> Option<&str> {
    cli.db
        .to_str()
        .filter(|s| s.starts_with("postgresql://") || s.starts_with("postgres://"))
}

#[cfg(feature = "postgres")]
fn open_postgres(cli: &Cli, url: &str) -> CliResult<Directory> {
    Ok(Directory::builder()
        .hasher(params(cli))
        .open_postgres(url)?)
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &Cli, _: &str) -> CliResult<Directory> {
    Err(Fail::new(
        2,
        "this userdir was built without PostgreSQL support (feature `postgres`)".to_string(),
    ))
}

/// Opens the directory; `create` allows a missing file to be created. A PostgreSQL URL opens
/// (and on first use creates) the directory in that database.
fn open(cli: &Cli, create: bool) -> CliResult<Directory> {
    if let Some(url) = postgres_url(cli) {
        return open_postgres(cli, url);
    }
    if !create && !cli.db.exists() {
        return Err(Fail::new(
            2,
            format!(
                "no directory file at {} (create one with `userdir import` or `userdir create`)",
                cli.db.display()
            ),
        ));
    }
    if cli.db.is_dir() {
        return Err(Fail::new(
            2,
            format!("{} is a folder, not a directory file", cli.db.display()),
        ));
    }
    Ok(Directory::builder().hasher(params(cli)).open(&cli.db)?)
}

/// Opens the directory read-only (commands that only read: the file may be read-only, on a
/// full disk, or the process may lack write access). A file that needs recovery first (a
/// crash left writes in its log) is opened writable once to recover, when that is allowed.
fn open_read(cli: &Cli) -> CliResult<Directory> {
    // Same checks as a writable open of an existing file.
    if !cli.db.exists() || cli.db.is_dir() {
        return open(cli, false);
    }
    match Directory::builder()
        .hasher(params(cli))
        .read_only()
        .open(&cli.db)
    {
        Ok(d) => Ok(d),
        Err(Error::NeedsRecovery) => {
            let dir = Directory::builder()
                .hasher(params(cli))
                .open(&cli.db)
                .map_err(|e| match e {
                    Error::Storage(_) => Fail::from(Error::NeedsRecovery),
                    other => Fail::from(other),
                })?;
            notice("the directory was not closed cleanly; recovered it");
            Ok(dir)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `f` on the directory, created if the file does not exist; when the file did not exist
/// and `f` fails (a refused create or import), the new file and its log are removed again.
fn with_new_or_existing(cli: &Cli, f: impl FnOnce(&Directory) -> CliResult) -> CliResult {
    let existed = std::fs::symlink_metadata(&cli.db).is_ok();
    let dir = open(cli, true)?;
    let r = f(&dir);
    if r.is_err() && !existed {
        drop(dir);
        let _ = std::fs::remove_file(&cli.db);
        let mut log = cli.db.as_os_str().to_owned();
        log.push(".wal");
        let _ = std::fs::remove_file(PathBuf::from(log));
    }
    r
}

fn run(cli: &Cli) -> CliResult {
    match &cli.cmd {
        Cmd::Demo { data } => demo(cli, data.as_deref()),
        Cmd::Import {
            file,
            format,
            dry_run,
            report,
            max_input_bytes,
            max_record_bytes,
        } => {
            let limits = ReadLimits::default()
                .max_input_bytes(*max_input_bytes)
                .max_record_bytes(*max_record_bytes)
                .max_problems_kept(PRINTED_PROBLEMS);
            import(
                cli,
                file,
                format.map(Format::from),
                *dry_run,
                report.as_deref(),
                limits,
            )
        }
        Cmd::Create(args) => create(cli, args),
        Cmd::Get {
            id_or_login,
            format,
        } => {
            let dir = open_read(cli)?;
            let user = resolve(&dir, id_or_login)?;
            print_user(&user, (*format).into())
        }
        Cmd::Search {
            filter,
            sort,
            desc,
            limit,
            offset,
            format,
        } => search(cli, filter, *sort, *desc, *limit, *offset, (*format).into()),
        Cmd::Deactivate { id_or_login } => change(cli, id_or_login, |d, u| d.deactivate(u.id)),
        Cmd::Reactivate { id_or_login } => change(cli, id_or_login, |d, u| d.reactivate(u.id)),
        Cmd::Delete { id_or_login } => change(cli, id_or_login, |d, u| d.delete(u.id)),
        Cmd::Login { login_id } => {
            // The password is read before the file is opened (and locked): a prompt waiting
            // for input must not lock other processes out.
            let password = read_password()?;
            let dir = open(cli, false)?;
            let login = dir.authenticate(login_id, &password)?;
            if cli.output == Output::Json {
                let user = json::write_user(Format::FusionAuth, &login.user, false)?;
                return print_json(&json!({
                    "user": user,
                    "password_change_required": login.password_change_required,
                    "rehashed": login.rehashed,
                }));
            }
            if login.password_change_required {
                notice("login ok; the password must be changed now");
            }
            print_user(&login.user, Format::FusionAuth)
        }
        Cmd::Export {
            format,
            with_hashes,
        } => export(cli, (*format).into(), *with_hashes),
        Cmd::Check => {
            let dir = open_read(cli)?;
            let spin = spinner("checking");
            let checked = dir.check_integrity();
            spin.finish_and_clear();
            checked?;
            let users = dir.count()?;
            match cli.output {
                Output::Json => print_json(&json!({ "ok": true, "users": users })),
                Output::Text => {
                    println!("ok: {users} users, every index agrees with the records");
                    Ok(())
                }
            }
        }
        Cmd::Serve {
            listen,
            token_file,
            base_url,
        } => serve::serve(
            open(cli, true)?,
            listen,
            token_file,
            base_url.as_deref(),
            cli.output == Output::Json,
        ),
        Cmd::Stats => {
            let dir = open_read(cli)?;
            let spin = spinner("counting");
            let users = dir.count()?;
            let active = dir
                .search(&Search::filter("active eq true")?.limit(0))?
                .total;
            spin.finish_and_clear();
            // A PostgreSQL directory has no file of its own: no `file_bytes`.
            let bytes = if postgres_url(cli).is_some() {
                None
            } else {
                Some(std::fs::metadata(&cli.db).map_or(0, |m| m.len()))
            };
            match cli.output {
                Output::Json => {
                    let mut v = json!({ "users": users, "active": active });
                    if let Some(b) = bytes {
                        v["file_bytes"] = json!(b);
                    }
                    print_json(&v)
                }
                Output::Text => {
                    println!("users {users}\nactive {active}");
                    if let Some(b) = bytes {
                        println!("file_bytes {b}");
                    }
                    Ok(())
                }
            }
        }
        Cmd::Backup { path, force } => backup(cli, path, *force),
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "userdir", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Prints one JSON value on a line of stdout.
fn print_json(v: &Value) -> CliResult {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}").map_err(|e| Fail::new(3, format!("cannot write the output: {e}")))
}

fn resolve(dir: &Directory, s: &str) -> CliResult<User> {
    dir.resolve(s)?
        .ok_or_else(|| Fail::new(1, format!("no user matches {s:?}")))
}

fn change(
    cli: &Cli,
    s: &str,
    f: impl FnOnce(&Directory, &User) -> userdir::Result<User>,
) -> CliResult {
    let dir = open(cli, false)?;
    let user = resolve(&dir, s)?;
    let user = f(&dir, &user)?;
    print_user(&user, Format::FusionAuth)
}

fn print_user(user: &User, format: Format) -> CliResult {
    let v = json::write_user(format, user, false)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}").map_err(output_error)
}

/// A failed write to stdout: quiet when its reader went away (`| head`).
#[allow(clippy::needless_pass_by_value)] // the shape `map_err` calls
fn output_error(e: std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Fail {
            code: 0,
            lines: Vec::new(),
            problems: None,
        }
    } else {
        Fail::new(3, format!("cannot write the output: {e}"))
    }
}

fn read_password() -> CliResult<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (echoed): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Fail::new(2, format!("cannot read the password from stdin: {e}")))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        return Err(Fail::new(2, "no password on stdin"));
    }
    Ok(pw)
}

fn create(cli: &Cli, a: &CreateArgs) -> CliResult {
    let mut new = NewUser {
        active: !a.inactive,
        ..NewUser::default()
    };
    let p = &mut new.profile;
    p.username.clone_from(&a.username);
    p.email.clone_from(&a.email);
    p.external_id.clone_from(&a.external_id);
    p.first_name.clone_from(&a.first_name);
    p.last_name.clone_from(&a.last_name);
    p.full_name.clone_from(&a.full_name);
    p.roles.extend(a.roles.iter().cloned());
    if !a.no_password {
        new = new.password(read_password()?);
    }
    with_new_or_existing(cli, |dir| {
        let user = dir.create(new)?;
        print_user(&user, Format::FusionAuth)
    })
}

/// A progress bar on stderr when it is a terminal (hidden otherwise), ticking while the
/// position does not move.
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    bar_with(
        Some(total),
        what,
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta})",
    )
}

/// A spinner on stderr for work without a known length; the position counts what is done.
fn spinner(what: &str) -> ProgressBar {
    bar_with(None, what, "{spinner} {msg} {pos} {elapsed}")
}

/// Hidden when stderr is not a terminal or under `--output json` (stderr then carries JSON
/// only).
fn bar_with(total: Option<u64>, what: &str, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || JSON_OUTPUT.load(Ordering::Relaxed) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// The full problem report of `--report FILE`, written as problems are found.
struct Report {
    out: Option<BufWriter<std::fs::File>>,
    path: PathBuf,
    total: usize,
    error: Option<std::io::Error>,
}

impl Report {
    fn create(path: Option<&Path>) -> CliResult<Report> {
        let mut r = Report {
            out: None,
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            total: 0,
            error: None,
        };
        if let Some(p) = path {
            let f = std::fs::File::create(p)
                .map_err(|e| Fail::new(2, format!("cannot create {}: {e}", p.display())))?;
            let mut w = BufWriter::new(f);
            r.error = w.write_all(b"{\"problems\":[").err();
            r.out = Some(w);
        }
        Ok(r)
    }

    fn add(&mut self, row: Option<usize>, field: Option<&str>, reason: &str) {
        let first = self.total == 0;
        self.total += 1;
        if let (Some(w), None) = (&mut self.out, &self.error) {
            let v = serde_json::json!({ "row": row, "field": field, "reason": reason });
            let sep = if first { "\n" } else { ",\n" };
            self.error = write!(w, "{sep}{v}").err();
        }
    }

    fn finish(mut self) -> CliResult {
        if let Some(mut w) = self.out.take() {
            if self.error.is_none() {
                self.error = write!(w, "\n],\"total\":{}}}\n", self.total)
                    .and_then(|()| w.flush())
                    .err();
            }
            if let Some(e) = self.error {
                return Err(Fail::new(
                    3,
                    format!("cannot write the report {}: {e}", self.path.display()),
                ));
            }
            notice(&format!(
                "{} problem(s) written to {}",
                self.total,
                self.path.display()
            ));
        }
        Ok(())
    }
}

/// Users read from a file, with what the reader noticed.
struct ReadRows {
    rows: Vec<NewUser>,
    format: Format,
    inactive_by_default: usize,
}

/// Reads and checks a file as a stream: its rows and its format (given or guessed). Every
/// problem goes to `report`; the first ones to the error.
fn read_rows(
    cli: &Cli,
    file: &Path,
    format: Option<Format>,
    limits: ReadLimits,
    report: &mut Report,
) -> CliResult<ReadRows> {
    let name = file.file_name().and_then(|n| n.to_str());
    let mut on_problem = |p: &JsonProblem| report.add(p.row, p.field.as_deref(), &p.reason);
    // Rows are checked as they are read (the directory is not opened yet: an in-memory one
    // with the same settings judges them), so that a file of bad rows is never held whole.
    let judge = Directory::builder().hasher(params(cli)).in_memory()?;
    let check = |i: usize, row: &NewUser| -> Vec<JsonProblem> {
        judge
            .row_problems(i, row)
            .into_iter()
            .map(|p| JsonProblem {
                row: Some(p.index),
                field: Some(p.field.to_owned()),
                reason: p.reason.to_string(),
            })
            .collect()
    };
    let out = if file == Path::new("-") {
        json::read_stream_checked(
            format,
            None,
            std::io::stdin().lock(),
            limits,
            &mut on_problem,
            &check,
        )
    } else {
        // A FIFO or a device would block or never end: only regular files (or `-`).
        let meta = std::fs::metadata(file)
            .map_err(|e| Fail::new(2, format!("cannot read {}: {e}", file.display())))?;
        if !meta.is_file() {
            return Err(Fail::new(
                2,
                format!(
                    "{} is not a regular file (to read a pipe, give `-` and redirect it to stdin)",
                    file.display()
                ),
            ));
        }
        if meta.len() > limits.input_bytes() {
            return Err(Fail::new(
                2,
                format!(
                    "{} is {} bytes, over the limit of {} (--max-input-bytes)",
                    file.display(),
                    meta.len(),
                    limits.input_bytes()
                ),
            ));
        }
        let f = std::fs::File::open(file)
            .map_err(|e| Fail::new(2, format!("cannot read {}: {e}", file.display())))?;
        json::read_stream_checked(format, name, f, limits, &mut on_problem, &check)
    };
    if out.problem_count > 0 {
        let mut lines = vec![format!(
            "invalid JSON input, nothing written: {} problem(s)",
            out.problem_count
        )];
        lines.extend(shown(
            out.problems.iter().map(ToString::to_string),
            out.problem_count,
        ));
        return Err(Fail {
            code: 2,
            lines,
            problems: serde_json::to_value(&out.problems).ok(),
        });
    }
    Ok(ReadRows {
        rows: out.rows,
        format: out.format.unwrap_or(Format::FusionAuth),
        inactive_by_default: out.inactive_by_default,
    })
}

fn import(
    cli: &Cli,
    file: &Path,
    format: Option<Format>,
    dry_run: bool,
    report: Option<&Path>,
    limits: ReadLimits,
) -> CliResult {
    // The file is read and checked before the directory file is opened (or created).
    let t = Timer::now();
    let mut rep = Report::create(report)?;
    let read = match read_rows(cli, file, format, limits, &mut rep) {
        Ok(r) => r,
        Err(f) => {
            rep.finish()?;
            return Err(f);
        }
    };
    let format = read.format;
    let inactive = read.inactive_by_default;
    let rows = read.rows;
    let mut s = None;
    let run = |dir: &Directory| -> CliResult {
        match import_rows(dir, rows, dry_run) {
            Ok(sum) => {
                s = Some(sum);
                Ok(())
            }
            Err(e) => {
                if let Error::Import(r) = &e {
                    for p in &r.problems {
                        rep.add(Some(p.index), Some(p.field), &p.reason.to_string());
                    }
                }
                Err(e.into())
            }
        }
    };
    let outcome = if dry_run {
        // Nothing is written: an existing file is opened read-only; without one, an empty
        // in-memory directory judges the rows and no file is created. On PostgreSQL the
        // database's users judge them.
        let dir = if postgres_url(cli).is_some() {
            // The database's users judge the rows; no user is written (opening creates the
            // empty tables on first use, as every command does).
            open(cli, false)
        } else if cli.db.exists() {
            open_read(cli)
        } else {
            Directory::builder()
                .hasher(params(cli))
                .in_memory()
                .map_err(Fail::from)
        };
        dir.and_then(|d| run(&d))
    } else {
        with_new_or_existing(cli, run)
    };
    rep.finish()?;
    outcome?;
    let s = s.ok_or_else(|| Fail::new(4, "internal error: no import summary"))?;
    let elapsed = t.elapsed();
    match cli.output {
        Output::Json => print_json(&json!({
            "dry_run": dry_run,
            "format": format.to_string(),
            "imported": s.imported,
            "hashed": s.hashed,
            "pre_hashed": s.pre_hashed,
            "inactive_by_default": inactive,
            "seconds": elapsed.as_secs_f64(),
        }))?,
        Output::Text if dry_run => eprintln!(
            "userdir: dry run: {} users would be imported ({format}; {} passwords to hash, {} pre-hashed); nothing written",
            s.imported, s.hashed, s.pre_hashed
        ),
        Output::Text => eprintln!(
            "userdir: imported {} users ({format}; {} passwords hashed, {} pre-hashed) in {elapsed:.2?}",
            s.imported, s.hashed, s.pre_hashed
        ),
    }
    if inactive > 0 && cli.output == Output::Text {
        eprintln!(
            "userdir: {inactive} of them {} INACTIVE because their row has no `active` \
             field (FusionAuth import rows default to inactive); reactivate them or add \
             \"active\": true",
            if dry_run {
                "would be imported"
            } else {
                "imported"
            }
        );
    }
    Ok(())
}

/// Imports rows all or nothing with the library's bulk import (validation of every row,
/// parallel hashing outside the write transaction, one transaction), or only validates them.
fn import_rows(
    dir: &Directory,
    rows: Vec<NewUser>,
    dry_run: bool,
) -> userdir::Result<ImportSummary> {
    let bar = progress_bar(rows.len() as u64, "validating");
    let b = bar.clone();
    let batch = ImportBatch::new(rows)
        .dry_run(dry_run)
        .on_progress(move |done, total| {
            if done == 0 {
                b.set_length(total as u64);
                b.set_message("hashing");
            }
            b.set_position(done as u64);
            if done == total {
                b.set_message("writing");
            }
        });
    let r = dir.import(batch);
    bar.finish_and_clear();
    r
}

/// Users fetched per search page.
const PAGE: usize = 500;

fn search(
    cli: &Cli,
    filter: &str,
    sort: Option<SortArg>,
    desc: bool,
    limit: Option<usize>,
    offset: usize,
    format: Format,
) -> CliResult {
    let mut s = Search::filter(filter)?;
    if let Some(field) = sort {
        let f = SortField::from(field);
        s = s.sort(if desc { f.desc() } else { f });
    }
    let dir = open_read(cli)?;
    let mut left = limit.unwrap_or(usize::MAX);
    let mut search = s.offset(offset).limit(left.min(PAGE));
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut printed = 0usize;
    let bar = spinner("searching");
    while left > 0 {
        let page = dir.search(&search)?;
        bar.set_length(page.total);
        for u in &page.users {
            let v = json::write_user(format, u, false)?;
            writeln!(out, "{v}").map_err(output_error)?;
        }
        printed += page.users.len();
        bar.inc(page.users.len() as u64);
        left = left.saturating_sub(page.users.len());
        match page.next_search() {
            Some(next) if left > 0 && !page.users.is_empty() => search = next.limit(left.min(PAGE)),
            _ => break,
        }
    }
    bar.finish_and_clear();
    out.flush().map_err(output_error)?;
    if printed == 0 {
        return Err(Fail::new(1, "no user matches the filter"));
    }
    Ok(())
}

fn export(cli: &Cli, format: Format, with_hashes: bool) -> CliResult {
    let dir = open_read(cli)?;
    let bar = progress_bar(dir.count()?, "exporting");
    let mut out = BufWriter::new(std::io::stdout().lock());
    let n = json::export(&dir, format, with_hashes, &mut out, &mut |done, _| {
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    if std::io::stderr().is_terminal() && cli.output == Output::Text {
        eprintln!("userdir: exported {n} users ({format})");
    }
    Ok(())
}

/// Copies the directory file to `dest` (see `Cmd::Backup`).
fn backup(cli: &Cli, dest: &Path, force: bool) -> CliResult {
    if postgres_url(cli).is_some() {
        // A JSON export is not a backup (the FusionAuth shapes that carry hashes do not carry
        // every SCIM attribute, nor tokens or lockout state); PostgreSQL's own tool takes a
        // consistent snapshot of all of it.
        return Err(Fail::new(
            2,
            format!(
                "backup copies a directory file; a PostgreSQL directory is backed up with \
                 PostgreSQL's tools: pg_dump --format=custom --file={} '<the URL>' (a \
                 consistent snapshot of every table; restore with pg_restore)",
                dest.display()
            ),
        ));
    }
    let dir = open(cli, false)?;
    let dest_log = log_path(dest);
    if dest.is_dir() {
        return Err(Fail::new(
            2,
            format!("{} is a folder, not a file name", dest.display()),
        ));
    }
    if same_file(&cli.db, dest) {
        return Err(Fail::new(2, "the backup cannot replace the directory file"));
    }
    if !force && (dest.exists() || dest_log.exists()) {
        return Err(Fail::new(
            2,
            format!(
                "{} or its .wal exists (give --force to replace it)",
                dest.display()
            ),
        ));
    }
    let t = Timer::now();
    // Everything acknowledged so far goes into the directory file, which this process keeps
    // open (and locked) while it is copied: nobody can write in between.
    dir.checkpoint()?;
    let users = dir.count()?;
    let folder = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |what: String, e: std::io::Error| Fail::new(3, format!("{what}: {e}"));
    let tmp = tempfile::Builder::new()
        .prefix(".userdir-backup-")
        .tempdir_in(&folder)
        .map_err(|e| io(format!("cannot write in {}", folder.display()), e))?;
    let copy = tmp.path().join("backup.redb");
    let bytes = copy_file(&cli.db, &copy)
        .map_err(|e| io(format!("cannot copy {}", cli.db.display()), e))?;
    drop(dir);
    // The copy must open and agree with itself before it gets its name.
    {
        let spin = spinner("verifying");
        let copied = Directory::builder().hasher(params(cli)).open(&copy)?;
        copied.check_integrity()?;
        let n = copied.count()?;
        spin.finish_and_clear();
        if n != users {
            return Err(Fail::new(
                3,
                format!("the copy holds {n} users, the directory {users}"),
            ));
        }
    }
    // A log left next to the old backup would be replayed onto the new one.
    if let Err(e) = std::fs::remove_file(&dest_log)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(io(format!("cannot remove {}", dest_log.display()), e));
    }
    std::fs::rename(&copy, dest).map_err(|e| io(format!("cannot create {}", dest.display()), e))?;
    if let Ok(f) = std::fs::File::open(&folder) {
        let _ = f.sync_all();
    }
    match cli.output {
        Output::Json => print_json(&json!({
            "backup": dest.display().to_string(),
            "users": users,
            "bytes": bytes,
            "seconds": t.elapsed().as_secs_f64(),
        })),
        Output::Text => {
            eprintln!(
                "userdir: backed up {users} users ({} KiB) to {} in {:.2?}",
                bytes / 1024,
                dest.display(),
                t.elapsed()
            );
            Ok(())
        }
    }
}

/// The redo log next to a directory file (`<file>.wal`).
fn log_path(db: &Path) -> PathBuf {
    let mut name = db
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".wal");
    db.with_file_name(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies `from` to a new file `to` with a progress bar, and syncs it.
fn copy_file(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut src = std::fs::File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let bar = progress_bar(len, "copying");
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(buf.get(..n).unwrap_or_default())?;
        copied += n as u64;
        bar.set_position(copied);
    }
    dst.sync_all()?;
    bar.finish_and_clear();
    Ok(copied)
}

// ---------------------------------------------------------------------------------------------
// demo

/// The password of sample user `n` of a sample file (see `examples/gen_samples.rs`).
fn sample_password(prefix: &str, n: usize) -> String {
    format!("{prefix}-password-{n}")
}

/// `println!` for `--output text` only.
macro_rules! text {
    ($out:expr, $($arg:tt)*) => {
        if $out == Output::Text {
            println!($($arg)*);
        }
    };
}

/// Milliseconds, for JSON.
fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn demo(cli: &Cli, data: Option<&Path>) -> CliResult {
    let data = data.map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data")),
        Path::to_path_buf,
    );
    if !data.is_dir() {
        return Err(Fail::new(
            2,
            format!("no sample folder at {}", data.display()),
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("userdir-demo-")
        .tempdir()
        .map_err(|e| Fail::new(3, format!("cannot create a temporary folder: {e}")))?;
    let path = tmp.path().join("demo.redb");
    let params = params(cli);
    // Text lines for `--output text`, one JSON object per step for `--output json`.
    let out = cli.output;
    let event = |v: Value| {
        if out == Output::Json {
            println!("{v}");
        }
    };
    text!(out, "userdir demo");
    text!(
        out,
        "  directory file: {} (argon2id m={} KiB, t={}, p={}{})",
        path.display(),
        params.m_kib,
        params.t,
        params.p,
        if fast_hash(cli) {
            ", INSECURE test parameters"
        } else {
            ", OWASP defaults"
        }
    );
    let dir = Directory::builder().hasher(params).open(&path)?;

    text!(
        out,
        "\n1. import the sample files (each all or nothing, one transaction)"
    );
    let files = [
        (
            "fusionauth_users.json",
            "FusionAuth import request, salted-pbkdf2-hmac-sha256 hashes",
        ),
        (
            "scim_users.json",
            "SCIM 2.0 ListResponse, enterprise extension, no passwords",
        ),
        (
            "users.jsonl",
            "JSON Lines, argon2id hashes (userdir export --with-hashes)",
        ),
        (
            "fuse_users.json",
            "Fuse bulk create, plaintext passwords hashed now in parallel",
        ),
    ];
    for (name, what) in files {
        let t = Timer::now();
        let mut report = Report::create(None)?;
        let ReadRows { rows, format, .. } = read_rows(
            cli,
            &data.join(name),
            None,
            ReadLimits::default(),
            &mut report,
        )?;
        let read = t.elapsed();
        let n = import_rows(&dir, rows, false)?.imported;
        let el = t.elapsed();
        event(
            json!({"step": "import", "file": name, "format": format.to_string(),
            "users": n, "ms": ms(el), "parse_ms": ms(read)}),
        );
        text!(
            out,
            "   {n:>5} users from {name:<22} [{format:<10}] in {el:>9.2?} (parsing {read:.2?}; {what})"
        );
    }
    let total = dir.count()?;
    text!(out, "   directory holds {total} users");

    text!(
        out,
        "\n2. searches (SCIM filters; the planner uses an index when it can)"
    );
    let searches = [
        r#"userName sw "fa-user-00""#,
        r#"data.department eq "Sales" and active eq true"#,
        r#"emails.value ew "@example.org""#,
        r#"roles eq "admin""#,
        r#"name.familyName co "son" or nickName pr"#,
        r"not (active eq true)",
    ];
    for f in searches {
        let s = Search::filter(f)?.sort(SortField::username()).limit(3);
        let t = Timer::now();
        let page = dir.search(&s)?;
        let el = t.elapsed();
        let plan = dir.explain(&s)?;
        let names: Vec<_> = page
            .users
            .iter()
            .filter_map(|u| u.username.clone().or_else(|| u.email.clone()))
            .collect();
        event(
            json!({"step": "search", "filter": f, "matches": page.total, "ms": ms(el),
            "plan": plan.to_string(), "first": names}),
        );
        text!(
            out,
            "   {f:<52} {:>5} matches in {el:>9.2?}  plan: {plan}",
            page.total
        );
        text!(out, "   {:<52} first: {}", "", names.join(", "));
    }
    let s = Search::all().sort(SortField::last_login().desc()).limit(1);
    if let Some(u) = dir.search(&s)?.users.first() {
        text!(
            out,
            "   most recent login: {} at {}",
            u.username.as_deref().unwrap_or("?"),
            u.last_login_instant
                .map(json::format_rfc3339)
                .unwrap_or_default()
        );
    }

    text!(
        out,
        "\n3. logins (an imported hash is verified with its own scheme, then rehashed to argon2id)"
    );
    let who = [
        ("fa", "fa-user-0001", "FusionAuth pbkdf2 user"),
        ("jl", "jl-user-0001", "argon2id user from JSON Lines"),
        ("fu", "fu-user-0001", "Fuse user (hashed at import)"),
    ];
    for (prefix, login, what) in who {
        let pw = sample_password(prefix, 1);
        let t = Timer::now();
        let r = dir.authenticate(login, &pw);
        let el = t.elapsed();
        event(json!({"step": "login", "login": login, "ok": r.is_ok(),
            "rehashed": r.as_ref().is_ok_and(|l| l.rehashed), "ms": ms(el)}));
        match r {
            Ok(l) => text!(
                out,
                "   {login:<14} ok in {el:>9.2?}  rehashed: {:<5} ({what})",
                l.rehashed
            ),
            Err(e) => text!(out, "   {login:<14} refused in {el:>9.2?}: {e} ({what})"),
        }
        if prefix == "fa" {
            let t = Timer::now();
            let again = dir.authenticate(login, &pw).is_ok();
            text!(
                out,
                "   {login:<14} again: {} in {:>9.2?}  (now argon2id)",
                if again { "ok" } else { "refused" },
                t.elapsed()
            );
        }
    }
    let t = Timer::now();
    let wrong = dir.authenticate("fa-user-0002", "not the password");
    text!(
        out,
        "   {:<14} wrong password: {} in {:>9.2?}",
        "fa-user-0002",
        wrong.err().map(|e| e.to_string()).unwrap_or_default(),
        t.elapsed()
    );
    let t = Timer::now();
    let unknown = dir.authenticate("nobody@example.com", "whatever password");
    text!(
        out,
        "   {:<14} unknown login: {} in {:>9.2?}  (same error, dummy hash verified)",
        "nobody",
        unknown.err().map(|e| e.to_string()).unwrap_or_default(),
        t.elapsed()
    );

    text!(out, "\n4. password reset");
    let login = "sc-user-0003";
    let t = Timer::now();
    let token = dir.start_password_reset(login)?;
    text!(
        out,
        "   reset token issued for {login} in {:.2?} (only its hash is stored)",
        t.elapsed()
    );
    let t = Timer::now();
    dir.reset_password(&token, "a brand new passphrase")?;
    text!(
        out,
        "   password reset with the token in {:.2?}",
        t.elapsed()
    );
    let reused = dir.reset_password(&token, "another passphrase");
    let relogin = dir.authenticate(login, "a brand new passphrase").is_ok();
    event(
        json!({"step": "password_reset", "login": login, "reset": true,
        "token_reuse_refused": reused.is_err(), "login_with_new_password": relogin}),
    );
    text!(
        out,
        "   reusing the token: {}",
        reused
            .err()
            .map_or_else(|| "accepted?!".into(), |e| e.to_string())
    );
    let ok = relogin;
    text!(
        out,
        "   login with the new password: {}",
        if ok { "ok" } else { "refused" }
    );

    text!(out, "\n5. housekeeping");
    let t = Timer::now();
    dir.check_integrity()?;
    event(json!({"step": "check", "users": total, "ms": ms(t.elapsed())}));
    text!(
        out,
        "   integrity check of {total} users and their indexes: ok in {:.2?}",
        t.elapsed()
    );
    let t = Timer::now();
    let n = json::export(
        &dir,
        Format::JsonLines,
        false,
        &mut std::io::sink(),
        &mut |_, _| {},
    )?;
    text!(
        out,
        "   export of {n} users as JSON Lines in {:.2?}",
        t.elapsed()
    );
    event(json!({"step": "export", "users": n, "ms": ms(t.elapsed())}));
    let active = dir
        .search(&Search::filter("active eq true")?.limit(0))?
        .total;
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    event(json!({"step": "summary", "users": total, "active": active, "file_bytes": bytes}));
    text!(
        out,
        "   {total} users, {active} active, file size {} KiB",
        bytes / 1024
    );
    drop(dir);
    text!(out, "\nthe temporary folder is removed now.");
    Ok(())
}
