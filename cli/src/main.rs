//! `userdir`: inspect and manage a userdir directory file from the command line.
//!
//! Exit codes: 0 success; 1 not found, refused (login) or no match; 2 bad input (usage, an
//! invalid filter, bad rows, a bad or missing file); 3 storage failure (I/O, a file locked by
//! another process, a failed integrity check). Errors are one line on stderr (`userdir: …`);
//! an import with bad rows prints one line per problem.
//!
//! `--insecure-fast-hash` makes new hashes use argon2's cheapest parameters, and says so on
//! stderr at every run. It exists for the test suite only; never use it for real data. (No
//! environment variable can weaken the hashes: an inherited variable would do it silently.)

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant as Timer;

mod serve;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use userdir::json::{self, Format, ReadLimits};
use userdir::{
    Argon2Params, Directory, Error, ImportBatch, ImportSummary, JsonProblem, NewUser, Search,
    SortField, User,
};

#[derive(Parser)]
#[command(
    name = "userdir",
    version,
    about = "An embedded user directory in one redb file"
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
    /// TESTS ONLY, INSECURE: hash new passwords with argon2's cheapest parameters (printed as
    /// a warning at every run). Never use it for real data.
    #[arg(long, global = true)]
    insecure_fast_hash: bool,
    #[command(subcommand)]
    cmd: Cmd,
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
        /// fusionauth, fuse, scim or jsonl (default: guessed from the file).
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
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
        /// Output shape: fusionauth, fuse, scim or jsonl.
        #[arg(long, value_parser = parse_format, default_value = "fusionauth")]
        format: Format,
    },
    /// Print the users matching a SCIM filter, one JSON user per line.
    Search {
        /// A SCIM filter, e.g. `userName sw "jo" and active eq true`.
        filter: String,
        /// username, email, fullName, birthDate, insertInstant or lastLogin.
        #[arg(long)]
        sort: Option<String>,
        /// Sort descending.
        #[arg(long)]
        desc: bool,
        /// At most this many users (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Skip this many users.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Output shape: fusionauth, fuse, scim or jsonl.
        #[arg(long, value_parser = parse_format, default_value = "fusionauth")]
        format: Format,
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
        /// fusionauth, fuse, scim or jsonl.
        #[arg(long, value_parser = parse_format, default_value = "fusionauth")]
        format: Format,
        /// Include password hashes (fusionauth and jsonl only); the output re-imports exactly.
        #[arg(long)]
        with_hashes: bool,
    },
    /// Check that every index agrees with the records.
    Check,
    /// Print the number of users, of active users, and the file size.
    Stats,
    /// Serve the directory over SCIM 2.0 (RFC 7644) until interrupted (Ctrl-C or SIGTERM).
    /// Prints the bound address; creates the file when missing.
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

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse::<Format>().map_err(|e| e.to_string())
}

/// A failure with its exit code and message lines.
struct Fail {
    code: u8,
    lines: Vec<String>,
}

impl Fail {
    fn new(code: u8, msg: impl Into<String>) -> Self {
        Fail {
            code,
            lines: vec![msg.into()],
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
            };
        }
        let code = exit_code(&e);
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
        Fail { code, lines }
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
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if fast_hash(&cli) {
        eprintln!(
            "userdir: WARNING: --insecure-fast-hash: new password hashes use argon2's cheapest \
             parameters (m=8 KiB, t=1); for tests only, never for real data"
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
            for l in &f.lines {
                eprintln!("userdir: {l}");
            }
            ExitCode::from(f.code)
        }
    }
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
            eprintln!("userdir: the directory was not closed cleanly; recovered it");
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
            report,
            max_input_bytes,
            max_record_bytes,
        } => {
            let limits = ReadLimits::default()
                .max_input_bytes(*max_input_bytes)
                .max_record_bytes(*max_record_bytes)
                .max_problems_kept(PRINTED_PROBLEMS);
            import(cli, file, *format, report.as_deref(), limits)
        }
        Cmd::Create(args) => create(cli, args),
        Cmd::Get {
            id_or_login,
            format,
        } => {
            let dir = open_read(cli)?;
            let user = resolve(&dir, id_or_login)?;
            print_user(&user, *format)
        }
        Cmd::Search {
            filter,
            sort,
            desc,
            limit,
            offset,
            format,
        } => search(
            cli,
            filter,
            sort.as_deref(),
            *desc,
            *limit,
            *offset,
            *format,
        ),
        Cmd::Deactivate { id_or_login } => change(cli, id_or_login, |d, u| d.deactivate(u.id)),
        Cmd::Reactivate { id_or_login } => change(cli, id_or_login, |d, u| d.reactivate(u.id)),
        Cmd::Delete { id_or_login } => change(cli, id_or_login, |d, u| d.delete(u.id)),
        Cmd::Login { login_id } => {
            // The password is read before the file is opened (and locked): a prompt waiting
            // for input must not lock other processes out.
            let password = read_password()?;
            let dir = open(cli, false)?;
            let login = dir.authenticate(login_id, &password)?;
            if login.password_change_required {
                eprintln!("userdir: login ok; the password must be changed now");
            }
            print_user(&login.user, Format::FusionAuth)
        }
        Cmd::Export {
            format,
            with_hashes,
        } => export(cli, *format, *with_hashes),
        Cmd::Check => {
            let dir = open_read(cli)?;
            dir.check_integrity()?;
            println!(
                "ok: {} users, every index agrees with the records",
                dir.count()?
            );
            Ok(())
        }
        Cmd::Serve {
            listen,
            token_file,
            base_url,
        } => serve::serve(open(cli, true)?, listen, token_file, base_url.as_deref()),
        Cmd::Stats => {
            let dir = open_read(cli)?;
            let users = dir.count()?;
            let active = dir
                .search(&Search::filter("active eq true")?.limit(0))?
                .total;
            if postgres_url(cli).is_some() {
                println!("users {users}\nactive {active}");
            } else {
                let bytes = std::fs::metadata(&cli.db).map(|m| m.len()).unwrap_or(0);
                println!("users {users}\nactive {active}\nfile_bytes {bytes}");
            }
            Ok(())
        }
    }
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
fn output_error(e: std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Fail {
            code: 0,
            lines: Vec::new(),
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

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
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
            eprintln!(
                "userdir: {} problem(s) written to {}",
                self.total,
                self.path.display()
            );
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
        return Err(Fail { code: 2, lines });
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
    let outcome = with_new_or_existing(cli, |dir| match import_rows(dir, rows) {
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
    });
    rep.finish()?;
    outcome?;
    let s = s.ok_or_else(|| Fail::new(4, "internal error: no import summary"))?;
    eprintln!(
        "userdir: imported {} users ({format}; {} passwords hashed, {} pre-hashed) in {:.2?}",
        s.imported,
        s.hashed,
        s.pre_hashed,
        t.elapsed()
    );
    if inactive > 0 {
        eprintln!(
            "userdir: {inactive} of them imported INACTIVE because their row has no `active` \
             field (FusionAuth import rows default to inactive); reactivate them or add \
             \"active\": true"
        );
    }
    Ok(())
}

/// Imports rows all or nothing with the library's bulk import (validation of every row,
/// parallel hashing outside the write transaction, one transaction).
fn import_rows(dir: &Directory, rows: Vec<NewUser>) -> userdir::Result<ImportSummary> {
    let bar = progress_bar(rows.len() as u64, "importing");
    let b = bar.clone();
    let r =
        dir.import(ImportBatch::new(rows).on_progress(move |done, _| b.set_position(done as u64)));
    bar.finish_and_clear();
    r
}

fn sort_field(s: &str) -> CliResult<SortField> {
    Ok(match s.to_ascii_lowercase().replace('_', "").as_str() {
        "username" => SortField::username(),
        "email" | "emails" => SortField::email(),
        "fullname" | "name" => SortField::full_name(),
        "birthdate" => SortField::birth_date(),
        "insertinstant" | "created" => SortField::insert_instant(),
        "lastlogin" | "lastlogininstant" => SortField::last_login(),
        _ => {
            return Err(Fail::new(
                2,
                format!(
                    "unknown sort field {s:?} (expected username, email, fullName, birthDate, insertInstant or lastLogin)"
                ),
            ));
        }
    })
}

fn search(
    cli: &Cli,
    filter: &str,
    sort: Option<&str>,
    desc: bool,
    limit: Option<usize>,
    offset: usize,
    format: Format,
) -> CliResult {
    let mut s = Search::filter(filter)?;
    if let Some(field) = sort {
        let f = sort_field(field)?;
        s = s.sort(if desc { f.desc() } else { f });
    }
    let dir = open_read(cli)?;
    const PAGE: usize = 500;
    let mut left = limit.unwrap_or(usize::MAX);
    let mut search = s.offset(offset).limit(left.min(PAGE));
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut printed = 0usize;
    while left > 0 {
        let page = dir.search(&search)?;
        for u in &page.users {
            let v = json::write_user(format, u, false)?;
            writeln!(out, "{v}").map_err(output_error)?;
        }
        printed += page.users.len();
        left = left.saturating_sub(page.users.len());
        match page.next_search() {
            Some(next) if left > 0 && !page.users.is_empty() => search = next.limit(left.min(PAGE)),
            _ => break,
        }
    }
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
    if std::io::stderr().is_terminal() {
        eprintln!("userdir: exported {n} users ({format})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// demo

/// The password of sample user `n` of a sample file (see examples/gen_samples.rs).
fn sample_password(prefix: &str, n: usize) -> String {
    format!("{prefix}-password-{n}")
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
    println!("userdir demo");
    println!(
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

    println!("\n1. import the sample files (each all or nothing, one transaction)");
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
        let n = import_rows(&dir, rows)?.imported;
        let el = t.elapsed();
        println!(
            "   {n:>5} users from {name:<22} [{format:<10}] in {el:>9.2?} (parsing {read:.2?}; {what})"
        );
    }
    let total = dir.count()?;
    println!("   directory holds {total} users");

    println!("\n2. searches (SCIM filters; the planner uses an index when it can)");
    let searches = [
        r#"userName sw "fa-user-00""#,
        r#"data.department eq "Sales" and active eq true"#,
        r#"emails.value ew "@example.org""#,
        r#"roles eq "admin""#,
        r#"name.familyName co "son" or nickName pr"#,
        r#"not (active eq true)"#,
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
        println!(
            "   {f:<52} {:>5} matches in {el:>9.2?}  plan: {plan}",
            page.total
        );
        println!("   {:<52} first: {}", "", names.join(", "));
    }
    let s = Search::all().sort(SortField::last_login().desc()).limit(1);
    if let Some(u) = dir.search(&s)?.users.first() {
        println!(
            "   most recent login: {} at {}",
            u.username.as_deref().unwrap_or("?"),
            u.last_login_instant
                .map(json::format_rfc3339)
                .unwrap_or_default()
        );
    }

    println!(
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
        match r {
            Ok(l) => println!(
                "   {login:<14} ok in {el:>9.2?}  rehashed: {:<5} ({what})",
                l.rehashed
            ),
            Err(e) => println!("   {login:<14} refused in {el:>9.2?}: {e} ({what})"),
        }
        if prefix == "fa" {
            let t = Timer::now();
            let again = dir.authenticate(login, &pw).is_ok();
            println!(
                "   {login:<14} again: {} in {:>9.2?}  (now argon2id)",
                if again { "ok" } else { "refused" },
                t.elapsed()
            );
        }
    }
    let t = Timer::now();
    let wrong = dir.authenticate("fa-user-0002", "not the password");
    println!(
        "   {:<14} wrong password: {} in {:>9.2?}",
        "fa-user-0002",
        wrong.err().map(|e| e.to_string()).unwrap_or_default(),
        t.elapsed()
    );
    let t = Timer::now();
    let unknown = dir.authenticate("nobody@example.com", "whatever password");
    println!(
        "   {:<14} unknown login: {} in {:>9.2?}  (same error, dummy hash verified)",
        "nobody",
        unknown.err().map(|e| e.to_string()).unwrap_or_default(),
        t.elapsed()
    );

    println!("\n4. password reset");
    let login = "sc-user-0003";
    let t = Timer::now();
    let token = dir.start_password_reset(login)?;
    println!(
        "   reset token issued for {login} in {:.2?} (only its hash is stored)",
        t.elapsed()
    );
    let t = Timer::now();
    dir.reset_password(&token, "a brand new passphrase")?;
    println!("   password reset with the token in {:.2?}", t.elapsed());
    let reused = dir.reset_password(&token, "another passphrase");
    println!(
        "   reusing the token: {}",
        reused
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "accepted?!".into())
    );
    let ok = dir.authenticate(login, "a brand new passphrase").is_ok();
    println!(
        "   login with the new password: {}",
        if ok { "ok" } else { "refused" }
    );

    println!("\n5. housekeeping");
    let t = Timer::now();
    dir.check_integrity()?;
    println!(
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
    println!(
        "   export of {n} users as JSON Lines in {:.2?}",
        t.elapsed()
    );
    let active = dir
        .search(&Search::filter("active eq true")?.limit(0))?
        .total;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "   {total} users, {active} active, file size {} KiB",
        bytes / 1024
    );
    drop(dir);
    println!("\nthe temporary folder is removed now.");
    Ok(())
}
