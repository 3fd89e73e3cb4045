//! Bulk import: a batch of users written in ONE transaction, or not at all.
//!
//! [`Directory::import`] works in phases, and only the last one holds the writer:
//!
//! 1. **Validate every row** (on all cores) with the same rules as
//!    [`Directory::create`](crate::Directory::create): identity fields, text fields, the
//!    password policy for plaintext passwords, the scheme and cost caps for pre-hashed ones.
//!    In the same pass, each valid row's index keys (caseless username, lowercased email,
//!    external id, roles, insert instant, id; the confusable skeleton when look-alikes are
//!    refused) are written into a byte arena with, under its id, its encoded record (unless
//!    its password is still to be hashed), and the row is dropped.
//! 2. **Find duplicates inside the batch**: all the keys are sorted together (all cores), so
//!    equal keys, whatever their casing, sit side by side. A username equal to another row's
//!    email is a duplicate too: login ids name one account.
//! 3. If anything is wrong so far, the rows are also compared with the existing users (active
//!    or not) in a read snapshot, so that the report names **every** problem, and the import
//!    fails with [`Error::Import`]. Nothing is hashed, nothing is written.
//! 4. **Hash plaintext passwords** with the directory's argon2id parameters on all cores
//!    (rayon), reporting `(done, total)` to the progress callback, then encode those records.
//!    Before that, a batch with plaintext passwords is compared with the existing users in a
//!    read snapshot, so a doomed batch does not burn minutes of CPU.
//! 5. **One write transaction** inserts everything in key order through a redb cursor, which
//!    builds packed leaves instead of descending the tree once per entry. Each existing key
//!    the inserts meet is a clash, so the check against existing users that decides is made
//!    inside the same transaction that writes: nothing can slip in between. Any clash aborts
//!    the transaction and is reported.
//!
//! [`ImportSummary::timings`] tells how long each phase took.
//!
//! Memory: the batch itself until each row is validated, then the arenas and one 40-byte sort
//! entry per key (measured: under 600 bytes per user on top of the rows at the peak, redb's
//! dirty pages included; see the README for the 1,000,000-user run).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::password::describe;
pub use crate::problems::{ImportReport, RowProblem, RowReason};
use crate::store::{BatchKeys, BatchPart, Clash, ClashWith, Snapshot, WriteTxn};
use crate::user::{NewUser, Password, PasswordInput, Profile, User};

type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// A batch of users to import with [`Directory::import`].
///
/// # Examples
/// ```
/// use userdir::{Argon2Params, Directory, ImportBatch, NewUser};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// let rows = vec![
///     NewUser::with_username("ann").email("ann@example.com").password("correct horse"),
///     NewUser::with_username("bob").insert_instant(1_331_449_200_000),
/// ];
/// let summary = dir.import(ImportBatch::new(rows).on_progress(|done, total| {
///     eprintln!("hashed {done}/{total}");
/// }))?;
/// assert_eq!((summary.imported, summary.hashed), (2, 1));
/// # Ok(()) }
/// ```
#[must_use]
pub struct ImportBatch {
    rows: Vec<NewUser>,
    progress: Option<Progress>,
    dry_run: bool,
    peppered: bool,
}

impl fmt::Debug for ImportBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportBatch")
            .field("rows", &self.rows.len())
            .field("progress", &self.progress.is_some())
            .field("dry_run", &self.dry_run)
            .field("peppered", &self.peppered)
            .finish()
    }
}

impl ImportBatch {
    /// A batch of these rows. Each row keeps its id (a random one when `None`), instants,
    /// active and verified flags, roles, data and every other field.
    pub fn new(rows: Vec<NewUser>) -> Self {
        ImportBatch {
            rows,
            progress: None,
            dry_run: false,
            peppered: false,
        }
    }

    /// Validates only: every row is checked as for a real import (fields, policy, hash caps,
    /// duplicates in the batch and against the existing users) and refused rows are reported
    /// the same way, but nothing is hashed and nothing is written. The summary says what the
    /// import would do (`imported`, `hashed`, `pre_hashed`); `timings.hash`, `insert` and
    /// `commit` stay zero. A later real import can still meet users created in between.
    ///
    /// # Examples
    /// ```
    /// use userdir::{Argon2Params, Directory, ImportBatch, NewUser};
    /// # fn main() -> Result<(), userdir::Error> {
    /// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let rows = vec![NewUser::with_username("ann").password("correct horse")];
    /// let summary = dir.import(ImportBatch::new(rows).dry_run(true))?;
    /// assert_eq!((summary.imported, summary.hashed), (1, 1));
    /// assert_eq!(dir.count()?, 0);
    /// # Ok(()) }
    /// ```
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Declares that the batch's argon2 hashes were made with this directory's pepper (an
    /// export, with hashes, of a directory with the same pepper). Without it, a peppered
    /// directory refuses imported argon2 hashes, which could never verify there (see
    /// [`Hasher::check_given`](crate::Hasher::check_given)). Has no effect without a pepper.
    pub fn hashes_made_with_pepper(mut self) -> Self {
        self.peppered = true;
        self
    }

    /// Calls `f(done, total)` while plaintext passwords are hashed: once with `done == 0`
    /// before the first hash, then after each hash (from the hashing threads, in any order of
    /// completion; `done` grows by one each call). Not called when no row has a plaintext
    /// password.
    pub fn on_progress(mut self, f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch has no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// What a successful import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ImportSummary {
    /// Users written.
    pub imported: usize,
    /// Plaintext passwords hashed with argon2id.
    pub hashed: usize,
    /// Pre-hashed passwords stored as given.
    pub pre_hashed: usize,
    /// How long each phase took.
    pub timings: ImportTimings,
}

/// How long each phase of a successful [`Directory::import`] took (wall-clock time, in the
/// order the phases run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ImportTimings {
    /// Validating every row, building its index entries and encoding its record (all cores).
    pub validate: Duration,
    /// Sorting the index entries and finding the duplicates inside the batch (all cores).
    pub sort: Duration,
    /// Comparing the batch with the existing users before hashing (only with plaintext
    /// passwords).
    pub check: Duration,
    /// Hashing plaintext passwords and encoding those records (all cores).
    pub hash: Duration,
    /// Inserting the records and index entries in the write transaction (from asking for
    /// it: a concurrent writer's transaction delays it).
    pub insert: Duration,
    /// Committing the transaction (with `Durability::Immediate`, until it is on disk).
    pub commit: Duration,
}

/// Rows validated per rayon task: each task builds one [`BatchPart`].
const PART_ROWS: usize = 4096;

/// What validating some rows produced.
#[derive(Default)]
struct Part {
    keys: BatchPart,
    problems: Vec<RowProblem>,
    /// Valid rows whose plaintext password is still to be hashed.
    plain: Vec<(usize, User, Password)>,
    pre_hashed: usize,
}

/// A row that passed validation (its password may still be refused).
struct Valid {
    user: User,
    plain: Option<Password>,
}

fn problem(index: usize, field: &'static str, reason: impl Into<String>) -> RowProblem {
    RowProblem {
        index,
        field,
        reason: RowReason::Invalid(reason.into()),
    }
}

fn from_error(index: usize, e: Error) -> RowProblem {
    match e {
        Error::InvalidField { field, reason } => problem(index, field, reason),
        Error::MissingLoginId => problem(index, "username", "a user needs a username or an email"),
        Error::InvalidHash(why) => problem(index, "password", why),
        other => problem(index, "row", other.to_string()),
    }
}

fn from_clash(c: Clash) -> RowProblem {
    RowProblem {
        index: c.row,
        field: c.field,
        reason: match c.with {
            ClashWith::Row(other_index) => RowReason::DuplicateInBatch { other_index },
            ClashWith::User(existing) => RowReason::DuplicateOfExisting { existing },
            ClashWith::LookalikeRow(i) => {
                RowReason::Invalid(format!("looks like the username of row {i}"))
            }
            ClashWith::LookalikeUser(id) => {
                RowReason::Invalid(format!("looks like the username of user {id}"))
            }
        },
    }
}

/// Drops repeated (row, field) problems, keeping the first reported, and sorts by row, then
/// field name.
fn report(mut problems: Vec<RowProblem>) -> Error {
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert((p.index, p.field)));
    problems.sort_by_key(|p| (p.index, p.field));
    Error::Import(ImportReport { problems })
}

impl Directory {
    fn validate_row(
        &self,
        index: usize,
        row: NewUser,
        now: i64,
        peppered: bool,
    ) -> (Option<Valid>, Vec<RowProblem>) {
        let NewUser {
            id,
            profile,
            active,
            password,
            confirm,
            insert_instant,
            last_login_instant,
            password_last_update_instant,
        } = row;
        let mut problems = Vec::new();
        // Random ids from the thread's CSPRNG: one getrandom call per row is slow in bulk.
        let id = id.unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid());
        let mut user = match self.validate_new(Some(id), profile, active) {
            Ok(u) => Some(u),
            Err(e) => {
                problems.push(from_error(index, e));
                None
            }
        };
        for (field, ms) in [
            ("insert_instant", insert_instant),
            ("last_login_instant", last_login_instant),
            ("password_last_update_instant", password_last_update_instant),
        ] {
            if let Err(e) = crate::directory::check_instant(field, ms) {
                problems.push(from_error(index, e));
            }
        }
        let mut plain = None;
        let mut hash = None;
        match password {
            None => {
                if confirm.is_some() {
                    problems.push(problem(index, "confirm", "given without a password"));
                }
            }
            Some(PasswordInput::Plain(p)) => {
                if let Err(e) = crate::password::refuse_hash_as_plaintext(p.expose()) {
                    problems.push(from_error(index, e));
                }
                if confirm.as_ref().is_some_and(|c| c != &p) {
                    problems.push(problem(index, "confirm", "does not match the password"));
                }
                let profile = user.as_ref().map(Profile::of).unwrap_or_default();
                let ids: Vec<&str> = profile
                    .username
                    .as_deref()
                    .into_iter()
                    .chain(profile.email.as_deref())
                    .collect();
                let v = self.password_policy().check(p.expose(), &ids);
                if !v.is_empty() {
                    problems.push(problem(
                        index,
                        "password",
                        format!("does not meet the policy: {}", describe(&v)),
                    ));
                }
                plain = Some(p);
            }
            Some(PasswordInput::Hashed(h)) => match self.hasher().check_given(&h, peppered) {
                Ok(()) => hash = Some(h),
                Err(e) => problems.push(from_error(index, e)),
            },
        }
        let has_password = plain.is_some() || hash.is_some();
        if let Some(u) = &mut user {
            u.insert_instant = insert_instant.unwrap_or(now);
            u.last_update_instant = now;
            u.last_login_instant = last_login_instant;
            if has_password {
                u.password_last_update_instant =
                    Some(password_last_update_instant.unwrap_or(u.insert_instant));
            }
            u.password = hash;
        }
        (user.map(|user| Valid { user, plain }), problems)
    }

    /// The problems [`Directory::import`] would find in `row` on its own, as row `index`
    /// (field values, the password policy, hash schemes and caps, instants), without the
    /// comparisons with other rows and existing users. For readers that check rows as they
    /// stream in, so that a file of bad rows never has to be held whole.
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// assert!(dir.row_problems(0, &NewUser::with_username("ann")).is_empty());
    /// let p = dir.row_problems(7, &NewUser::with_email("not an email"));
    /// assert_eq!((p[0].index, p[0].field), (7, "email"));
    /// # Ok::<(), userdir::Error>(())
    /// ```
    #[must_use]
    pub fn row_problems(&self, index: usize, row: &NewUser) -> Vec<RowProblem> {
        let (_, problems) = self.validate_row(index, row.clone(), self.now(), false);
        problems
    }

    /// Imports a batch of users: all of them in one transaction, or none.
    ///
    /// Every row is validated first, with the rules of [`Directory::create`]; duplicates are
    /// judged with the same caseless username and lowercased email keys, inside the batch and
    /// against every existing user (deactivated ones included). Plaintext passwords are
    /// checked against the policy and hashed with the directory's argon2id parameters on all
    /// cores before the write transaction; pre-hashed ones (argon2, bcrypt, PBKDF2-SHA256,
    /// FusionAuth's PBKDF2, see [`StoredHash`](crate::StoredHash)) are checked for a supported
    /// scheme and cost caps, then stored as given. Rows keep their ids and instants (the
    /// directory's clock fills in missing insert instants). The phases are those of
    /// [`ImportTimings`]: validation (which also builds every index entry and encodes the
    /// records), sorting the keys to find duplicates, hashing, then one write transaction that
    /// inserts in key order.
    ///
    /// # Examples
    /// ```
    /// use userdir::{Argon2Params, Directory, Error, ImportBatch, NewUser, RowReason};
    /// # fn main() -> Result<(), userdir::Error> {
    /// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let rows = vec![
    ///     NewUser::with_username("Bob"),
    ///     NewUser::with_username("BOB"),
    ///     NewUser::with_email("not an email"),
    /// ];
    /// let Err(Error::Import(report)) = dir.import(ImportBatch::new(rows)) else { panic!() };
    /// assert_eq!(report.problems.len(), 2);
    /// assert_eq!(report.problems[0].reason, RowReason::DuplicateInBatch { other_index: 0 });
    /// assert_eq!(dir.count()?, 0); // nothing written
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Import`] with a report naming every bad row (nothing is written then);
    /// [`Error::Hashing`] if argon2 fails; [`Error::Storage`] and [`Error::NeedsReopen`] for
    /// storage failures.
    pub fn import(&self, batch: ImportBatch) -> Result<ImportSummary> {
        let ImportBatch {
            rows,
            progress,
            dry_run,
            peppered,
        } = batch;
        if rows.is_empty() {
            return Ok(ImportSummary::default());
        }
        if u32::try_from(rows.len()).is_err() {
            return Err(Error::invalid(
                "import",
                "a batch holds at most 2^32 - 1 rows",
            ));
        }
        let now = self.now();
        let mut timings = ImportTimings::default();
        let mut lap = Instant::now();

        // 1. Validate every row; build its entries and, unless its password is still to be
        //    hashed, encode its record. Then the row itself is dropped.
        let part_rows = rows.len().min(PART_ROWS);
        let parts: Vec<Result<Part>> = rows
            .into_par_iter()
            .enumerate()
            .with_max_len(PART_ROWS)
            .fold(
                || {
                    Ok(Part {
                        keys: BatchPart::with_capacity(part_rows),
                        ..Part::default()
                    })
                },
                |part, (i, row)| {
                    let mut part = part?;
                    let (valid, p) = self.validate_row(i, row, now, peppered);
                    part.problems.extend(p);
                    if let Some(Valid { user, plain }) = valid {
                        part.keys
                            .add(i, &user, &self.keys(&user), plain.is_none())?;
                        match plain {
                            Some(p) => part.plain.push((i, user, p)),
                            None if user.password.is_some() => part.pre_hashed += 1,
                            None => {}
                        }
                    }
                    Ok(part)
                },
            )
            .collect();
        let mut problems = Vec::new();
        let mut plain = Vec::new();
        let mut pre_hashed = 0;
        let mut keys = Vec::with_capacity(parts.len());
        for part in parts {
            let part = part?;
            problems.extend(part.problems);
            plain.extend(part.plain);
            pre_hashed += part.pre_hashed;
            keys.push(part.keys);
        }
        timings.validate = lap.elapsed();
        lap = Instant::now();

        // 2. Duplicates inside the batch.
        let mut keys = BatchKeys::new(keys)?;
        problems.extend(keys.duplicates().into_iter().map(from_clash));
        timings.sort = lap.elapsed();
        lap = Instant::now();

        // 3. A refused batch: complete the report with the existing users, write nothing.
        let plaintext = plain.len();
        if !problems.is_empty() || plaintext > 0 || dry_run {
            let existing = self.read_raw(|r| r.batch_clashes(&keys))?;
            problems.extend(existing.into_iter().map(from_clash));
            if !problems.is_empty() {
                return Err(report(problems));
            }
        }
        timings.check = lap.elapsed();
        if dry_run {
            return Ok(ImportSummary {
                imported: keys.users(),
                hashed: plaintext,
                pre_hashed,
                timings,
            });
        }
        lap = Instant::now();

        // 4. Hash plaintext passwords on all cores, outside any transaction, then encode
        //    those records.
        if plaintext > 0 {
            let done = AtomicUsize::new(0);
            if let Some(f) = &progress {
                f(0, plaintext);
            }
            let hasher = self.hasher();
            let hashed: Vec<(usize, User)> = plain
                .into_par_iter()
                .with_max_len(1)
                .map(|(i, mut user, p)| -> Result<(usize, User)> {
                    user.password = Some(hasher.hash(p.expose())?);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(f) = &progress {
                        f(n, plaintext);
                    }
                    Ok((i, user))
                })
                .collect::<Result<_>>()?;
            keys.set_records(hashed)?;
        }
        let imported = keys.users();
        timings.hash = lap.elapsed();
        lap = Instant::now();

        // 5. One write transaction, inserting in key order. The decisive check against
        //    existing users is made by the inserts themselves.
        let mut inserted = Duration::ZERO;
        self.write_raw(|w| {
            let clashes = w.insert_batch(&keys)?;
            inserted = lap.elapsed();
            if clashes.is_empty() {
                Ok(())
            } else {
                Err(report(clashes.into_iter().map(from_clash).collect()))
            }
        })?;
        timings.insert = inserted;
        timings.commit = lap.elapsed().saturating_sub(inserted);
        Ok(ImportSummary {
            imported,
            hashed: plaintext,
            pre_hashed,
            timings,
        })
    }
}
