//! Streaming readers with bounded cost: the input is read once, front to back, and each user
//! is turned into a [`NewUser`] as soon as its JSON value ends, so the text is never held
//! whole (a JSON array is walked element by element; JSON Lines line by line).
//!
//! Limits ([`ReadLimits`]): the input's size, each record's size (a user object, a JSON Lines
//! line, any other top-level value), and how many problems are kept (every problem is still
//! counted and handed to the caller's callback, for a full report written as it goes). Once a
//! problem is found, rows are no longer kept (the import is refused anyway), so a file of bad
//! rows costs memory for the problems kept only.
//!
//! Duplicate keys in any JSON object are an error (JSON parsers disagree on which one wins).

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{Fields, Format, detect, fuse, fusionauth, scim};
use crate::error::JsonProblem;
use crate::user::NewUser;

/// Limits of a streaming read (see [`read_stream`]).
///
/// # Examples
/// ```
/// use userdir::json::ReadLimits;
/// let limits = ReadLimits::default().max_record_bytes(64 * 1024);
/// assert_eq!(limits.record_bytes(), 64 * 1024);
/// assert_eq!(limits.input_bytes(), ReadLimits::DEFAULT_MAX_INPUT_BYTES);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadLimits {
    max_input_bytes: u64,
    max_record_bytes: u64,
    max_problems_kept: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_input_bytes: Self::DEFAULT_MAX_INPUT_BYTES,
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
            max_problems_kept: Self::DEFAULT_MAX_PROBLEMS_KEPT,
        }
    }
}

impl ReadLimits {
    /// Default input size cap: 4 GiB (a million users with hashes and some custom data is
    /// well under 1 GiB).
    pub const DEFAULT_MAX_INPUT_BYTES: u64 = 4 << 30;
    /// Default record size cap: 1 MiB for one user (its custom `data` included), one JSON
    /// Lines line, or any other top-level value.
    pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;
    /// Default number of problems kept in [`ReadOutcome::problems`] (all are counted).
    pub const DEFAULT_MAX_PROBLEMS_KEPT: usize = 100;

    /// Sets the input size cap, in bytes.
    #[must_use]
    pub fn max_input_bytes(mut self, n: u64) -> Self {
        self.max_input_bytes = n;
        self
    }
    /// Sets the record size cap, in bytes.
    #[must_use]
    pub fn max_record_bytes(mut self, n: u64) -> Self {
        self.max_record_bytes = n;
        self
    }
    /// Sets how many problems are kept (all are counted and passed to the callback).
    #[must_use]
    pub fn max_problems_kept(mut self, n: usize) -> Self {
        self.max_problems_kept = n;
        self
    }
    /// The input size cap, in bytes.
    #[must_use]
    pub fn input_bytes(&self) -> u64 {
        self.max_input_bytes
    }
    /// The record size cap, in bytes.
    #[must_use]
    pub fn record_bytes(&self) -> u64 {
        self.max_record_bytes
    }
    /// How many problems are kept.
    #[must_use]
    pub fn problems_kept(&self) -> usize {
        self.max_problems_kept
    }
}

/// What [`read_stream`] read.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReadOutcome {
    /// The format read (given, or guessed from the file name and the start of the input).
    pub format: Option<Format>,
    /// The users, when there was no problem (empty otherwise).
    pub rows: Vec<NewUser>,
    /// The first problems (at most [`ReadLimits::problems_kept`]).
    pub problems: Vec<JsonProblem>,
    /// How many problems there were in all.
    pub problem_count: usize,
    /// Rows that are inactive only because they have no `active` field: FusionAuth import
    /// rows (and JSON Lines rows) default to inactive, as FusionAuth documents.
    pub inactive_by_default: usize,
    /// Bytes read.
    pub bytes: u64,
}

/// How much of the input is looked at to guess its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Reads users from `input` in `format` (or the format [`detect`] guesses from `file_name` and
/// the first 64 KiB), within `limits`, calling `on_problem` with every problem as it is found.
///
/// Never fails: an I/O error, malformed JSON, a duplicate key or a limit reached is a
/// problem (without a row) after which reading stops; a bad row is a problem after which
/// reading goes on with the next row.
///
/// # Examples
/// ```
/// use userdir::json::{read_stream, Format, ReadLimits};
/// let text = r#"{"users":[{"username":"ann","active":true},{"username":"bob"}]}"#;
/// let out = read_stream(None, None, text.as_bytes(), ReadLimits::default(), &mut |_| {});
/// assert_eq!(out.format, Some(Format::FusionAuth));
/// assert_eq!(out.rows.len(), 2);
/// assert_eq!(out.inactive_by_default, 1);
///
/// let dup = r#"{"users":[{"username":"ann","username":"bob"}]}"#;
/// let out = read_stream(None, None, dup.as_bytes(), ReadLimits::default(), &mut |_| {});
/// assert_eq!(out.problem_count, 1);
/// assert!(out.problems[0].reason.contains("duplicate key"));
/// ```
pub fn read_stream(
    format: Option<Format>,
    file_name: Option<&str>,
    input: impl Read,
    limits: ReadLimits,
    on_problem: &mut dyn FnMut(&JsonProblem),
) -> ReadOutcome {
    read_stream_checked(format, file_name, input, limits, on_problem, &|_, _| {
        Vec::new()
    })
}

/// [`read_stream`], calling `check(index, row)` on each row read without problems (in
/// chunks of rows, on all cores, in row order for the problems): what it returns are problems
/// of that row (for instance a directory's
/// [`row_problems`](crate::Directory::row_problems)). Checking rows as they come means a file
/// of rows that are bad for the directory is never held whole either.
///
/// # Examples
/// ```
/// use userdir::json::{read_stream_checked, Format, ReadLimits};
/// use userdir::{Argon2Params, Directory, JsonProblem};
/// # fn main() -> Result<(), userdir::Error> {
/// let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// let text = r#"[{"username":"ann","email":"not an email","active":true}]"#;
/// let out = read_stream_checked(Some(Format::FusionAuth), None, text.as_bytes(),
///     ReadLimits::default(), &mut |_| {}, &|i, row| {
///         dir.row_problems(i, row).into_iter().map(|p| JsonProblem {
///             row: Some(p.index), field: Some(p.field.into()), reason: p.reason.to_string(),
///         }).collect()
///     });
/// assert_eq!(out.problem_count, 1);
/// # Ok(()) }
/// ```
pub fn read_stream_checked(
    format: Option<Format>,
    file_name: Option<&str>,
    input: impl Read,
    limits: ReadLimits,
    on_problem: &mut dyn FnMut(&JsonProblem),
    check: &(dyn Fn(usize, &NewUser) -> Vec<JsonProblem> + Sync),
) -> ReadOutcome {
    let state = Rc::new(Budget {
        read: Cell::new(0),
        parsed: Cell::new(0),
        record_start: Cell::new(None),
        hit: Cell::new(None),
        limits,
    });
    let mut counted = Counted {
        inner: input,
        budget: Rc::clone(&state),
    };
    let mut sink = Sink {
        format: Format::FusionAuth,
        out: ReadOutcome::default(),
        keep: limits.max_problems_kept,
        on_problem,
        check,
        pending: Vec::new(),
        index: 0,
    };
    // The start of the input, to guess the format.
    let mut head = Vec::new();
    if let Err(e) = (&mut counted)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
    {
        sink.io_problem(&e, &state);
        sink.out.bytes = state.read.get();
        return sink.out;
    }
    let complete = head.len() < SNIFF_BYTES;
    let format = format.unwrap_or_else(|| guess(file_name, &head, complete));
    sink.format = format;
    sink.out.format = Some(format);
    let reader = BufReader::with_capacity(64 * 1024, io::Cursor::new(head).chain(counted));
    if format == Format::JsonLines {
        read_lines(reader, &state, &mut sink);
    } else {
        let parsed = Parsed {
            inner: reader,
            budget: Rc::clone(&state),
        };
        read_document(parsed, &state, &mut sink);
    }
    sink.flush();
    sink.out.bytes = state.read.get();
    sink.out
}

fn guess(file_name: Option<&str>, head: &[u8], complete: bool) -> Format {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => {
            std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default()
        }
    };
    if complete {
        return detect(file_name, text);
    }
    if let Some(name) = file_name {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            return Format::JsonLines;
        }
    }
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if lines
        .next()
        .is_some_and(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        && lines.next().is_some()
    {
        return Format::JsonLines;
    }
    let has = |k: &str| text.contains(&format!("\"{k}\""));
    if has("schemas") || has("Resources") || has("userName") {
        Format::Scim
    } else if has("password_confirmation") || has("role") || has("profile") {
        Format::Fuse
    } else {
        Format::FusionAuth
    }
}

/// The read budget shared by the counting readers and the parser.
struct Budget {
    /// Bytes read from the input.
    read: Cell<u64>,
    /// Bytes handed to the JSON parser (read-ahead excluded).
    parsed: Cell<u64>,
    /// Where the current record started (bytes parsed then).
    record_start: Cell<Option<u64>>,
    /// The limit that stopped the read.
    hit: Cell<Option<String>>,
    limits: ReadLimits,
}

impl Budget {
    fn start_record(&self) {
        self.record_start.set(Some(self.parsed.get()));
    }
}

/// Counts the bytes handed to the parser and fails the read when the current record grows
/// past the record limit, so that no record is ever held whole beyond it.
struct Parsed<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Parsed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let b = &self.budget;
        let parsed = b.parsed.get().saturating_add(n as u64);
        b.parsed.set(parsed);
        if let Some(start) = b.record_start.get() {
            let max = b.limits.max_record_bytes;
            if parsed.saturating_sub(start) > max {
                let why = format!("a record is larger than the limit of {max} bytes");
                b.hit.set(Some(why.clone()));
                return Err(io::Error::other(why));
            }
        }
        Ok(n)
    }
}

/// Counts the bytes read and fails the read past a limit.
struct Counted<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let b = &self.budget;
        let read = b.read.get().saturating_add(n as u64);
        b.read.set(read);
        let limits = b.limits;
        if read > limits.max_input_bytes {
            let why = format!(
                "the input is larger than the limit of {} bytes",
                limits.max_input_bytes
            );
            b.hit.set(Some(why.clone()));
            return Err(io::Error::other(why));
        }
        Ok(n)
    }
}

/// Collects rows and problems.
struct Sink<'c> {
    format: Format,
    out: ReadOutcome,
    keep: usize,
    on_problem: &'c mut dyn FnMut(&JsonProblem),
    check: &'c (dyn Fn(usize, &NewUser) -> Vec<JsonProblem> + Sync),
    /// Rows read, not checked yet: (index, row, inactive for lack of `active`).
    pending: Vec<(usize, NewUser, bool)>,
    index: usize,
}

/// Rows checked together (on all cores).
const CHECK_CHUNK: usize = 2048;

impl Sink<'_> {
    /// Checks the pending rows; keeps them when there is no problem so far.
    fn flush(&mut self) {
        use rayon::prelude::*;
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return;
        }
        let check = self.check;
        let found: Vec<Vec<JsonProblem>> =
            pending.par_iter().map(|(i, u, _)| check(*i, u)).collect();
        for (problems, (_, u, defaulted)) in found.into_iter().zip(pending) {
            for p in problems {
                self.report(p);
            }
            if self.out.problem_count == 0 {
                self.out.inactive_by_default += usize::from(defaulted);
                self.out.rows.push(u);
            }
        }
    }

    fn problem(&mut self, p: JsonProblem) {
        // Earlier rows' problems first.
        self.flush();
        self.report(p);
    }

    fn report(&mut self, p: JsonProblem) {
        (self.on_problem)(&p);
        if self.out.problems.len() < self.keep {
            self.out.problems.push(p);
        }
        self.out.problem_count += 1;
        if self.out.problem_count == 1 {
            // The import is refused: stop keeping rows.
            self.out.rows = Vec::new();
            self.out.inactive_by_default = 0;
        }
    }

    fn doc_problem(&mut self, reason: String) {
        self.problem(JsonProblem {
            row: None,
            field: None,
            reason,
        });
    }

    fn io_problem(&mut self, e: &io::Error, budget: &Budget) {
        match budget.hit.take() {
            Some(why) => self.doc_problem(why),
            None => self.doc_problem(format!("cannot read the input: {e}")),
        }
    }

    /// A parse error: a limit reached, an I/O error, or malformed JSON.
    fn json_problem(&mut self, e: &serde_json::Error, budget: &Budget, row: Option<usize>) {
        let reason = match budget.hit.take() {
            Some(why) => why,
            None if e.is_io() => format!("cannot read the input: {e}"),
            None => format!("malformed JSON: {e}"),
        };
        self.problem(JsonProblem {
            row,
            field: None,
            reason,
        });
    }

    /// One user value; `default_active` is FusionAuth's default for a missing `active`.
    fn row(&mut self, v: &Value, default_active: bool) {
        let i = self.index;
        self.index += 1;
        let mut problems = Vec::new();
        let mut f = Fields::new(Some(i), &mut problems);
        let row = match self.format {
            Format::FusionAuth | Format::JsonLines => {
                fusionauth::read_row(v, default_active, &mut f)
            }
            Format::Fuse => fuse::read_row(v, &mut f),
            Format::Scim => scim::read_row(v, &mut f),
        };
        for p in problems {
            self.problem(p);
        }
        let Some(u) = row else {
            return;
        };
        let defaulted = matches!(self.format, Format::FusionAuth | Format::JsonLines)
            && !default_active
            && matches!(v.get("active"), None | Some(Value::Null));
        self.pending.push((i, u, defaulted));
        if self.pending.len() >= CHECK_CHUNK {
            self.flush();
        }
    }
}

fn read_lines(mut r: impl BufRead, budget: &Budget, sink: &mut Sink<'_>) {
    let max = budget.limits.max_record_bytes;
    let mut line = Vec::new();
    for number in 0.. {
        line.clear();
        // One line, but never more than the record limit in memory.
        let mut too_long = false;
        let mut ended = false;
        loop {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    sink.io_problem(&e, budget);
                    return;
                }
            };
            if buf.is_empty() {
                ended = true;
                break;
            }
            let (chunk, newline) = match memchr::memchr(b'\n', buf) {
                Some(p) => (buf.get(..p).unwrap_or_default(), true),
                None => (buf, false),
            };
            let used = chunk.len() + usize::from(newline);
            if !too_long {
                if (line.len() + chunk.len()) as u64 > max {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(chunk);
                }
            }
            r.consume(used);
            if newline {
                break;
            }
        }
        if too_long {
            sink.index = number + 1;
            sink.problem(JsonProblem {
                row: Some(number),
                field: None,
                reason: format!(
                    "line {} is longer than the limit of {max} bytes",
                    number + 1
                ),
            });
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            sink.index = number;
            let mut de = serde_json::Deserializer::from_slice(&line);
            match StrictValue.deserialize(&mut de).and_then(|v| {
                de.end()?;
                Ok(v)
            }) {
                Ok(v) => sink.row(&v, false),
                Err(e) => sink.problem(JsonProblem {
                    row: Some(number),
                    field: None,
                    reason: format!("malformed JSON on line {}: {e}", number + 1),
                }),
            }
        }
        if ended {
            return;
        }
    }
}

fn read_document(r: impl Read, budget: &Budget, sink: &mut Sink<'_>) {
    let mut de = serde_json::Deserializer::from_reader(r);
    let result = (Top { sink, budget })
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Err(e) = result {
        sink.json_problem(&e, budget, None);
    }
}

/// The top-level value of a document.
struct Top<'s, 'c> {
    sink: &'s mut Sink<'c>,
    budget: &'s Budget,
}

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn rows_keys(format: Format) -> &'static [&'static str] {
    match format {
        Format::Scim => &["Resources", "resources"],
        _ => &["users"],
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        stream_rows(self.sink, self.budget, seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        let mut rest = Map::new();
        let mut rows_seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(duplicate(&key)));
            }
            if rows_keys(self.sink.format).contains(&key.as_str()) && !rows_seen {
                rows_seen = true;
                map.next_value_seed(Rows {
                    sink: &mut *self.sink,
                    budget: self.budget,
                    key: &key,
                })?;
            } else {
                self.budget.start_record();
                let v = map.next_value_seed(StrictValue)?;
                check_record(self.budget).map_err(de::Error::custom)?;
                if !rows_seen {
                    rest.insert(key, v);
                }
            }
        }
        if !rows_seen {
            // A single user: `{"user":{…}}` or the bare object.
            let doc = Value::Object(rest);
            match self.sink.format {
                Format::Scim => self.sink.row(&doc, true),
                _ => self.sink.row(doc.get("user").unwrap_or(&doc), true),
            }
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_a_document();
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_a_document();
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_a_document();
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_a_document();
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_a_document();
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_a_document();
        Ok(())
    }
}

impl Top<'_, '_> {
    fn not_a_document(self) {
        self.sink
            .doc_problem("expected a JSON object or array".into());
    }
}

/// The record limit, checked again when a record's value has ended (the counting reader
/// stops a record that grows past it while it is read).
fn check_record(budget: &Budget) -> Result<(), String> {
    let Some(start) = budget.record_start.get() else {
        return Ok(());
    };
    let max = budget.limits.max_record_bytes;
    if budget.parsed.get().saturating_sub(start) > max {
        let why = format!("a record is larger than the limit of {max} bytes");
        budget.hit.set(Some(why.clone()));
        return Err(why);
    }
    Ok(())
}

fn duplicate(key: &str) -> String {
    let shown: String = key.chars().take(40).collect();
    format!("duplicate key {shown:?}")
}

/// The array of users under a document's key.
struct Rows<'s, 'c, 'k> {
    sink: &'s mut Sink<'c>,
    budget: &'s Budget,
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        stream_rows(self.sink, self.budget, seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Not an array: read it through (bounded like a record) and report it.
        self.budget.start_record();
        while let Some(k) = map.next_key::<String>()? {
            map.next_value_seed(StrictValue)?;
            drop(k);
            check_record(self.budget).map_err(de::Error::custom)?;
        }
        self.wrong();
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
}

impl Rows<'_, '_, '_> {
    fn wrong(self) {
        self.sink.problem(JsonProblem {
            row: None,
            field: Some(self.key.to_owned()),
            reason: "expected an array of users".into(),
        });
    }
}

fn stream_rows<'de, A: SeqAccess<'de>>(
    sink: &mut Sink<'_>,
    budget: &Budget,
    mut seq: A,
) -> Result<(), A::Error> {
    loop {
        budget.start_record();
        let Some(v) = seq.next_element_seed(StrictValue)? else {
            break;
        };
        check_record(budget).map_err(de::Error::custom)?;
        sink.row(&v, false);
    }
    budget.record_start.set(None);
    Ok(())
}

/// A `serde_json::Value` that refuses duplicate keys and stops when the current record grows
/// past its limit.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(duplicate(&k)));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}
