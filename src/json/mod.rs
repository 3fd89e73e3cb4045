//! JSON interchange (feature `json`): read users from, and write users to, the JSON shapes of
//! the systems userdir migrates from.
//!
//! | [`Format`] | reads | writes |
//! |---|---|---|
//! | [`Format::FusionAuth`] | `{"users":[…]}` import requests, `{"user":{…}}` requests and responses, a bare user or array | `{"users":[…]}` (an import request) |
//! | [`Format::Fuse`] | Fuse's bulk create `{"users":[…]}` | the same shape, without passwords |
//! | [`Format::Scim`] | SCIM 2.0 `User` resources, a `ListResponse`, a bare array | a `ListResponse` |
//! | [`Format::JsonLines`] | one FusionAuth-shaped user per line | the same |
//!
//! The field mappings are documented in [`fusionauth`], [`fuse`] and [`scim`].
//!
//! Readers turn JSON text into [`NewUser`]s that keep the given ids and instants, ready for an
//! import. They check the *shape* of every row (types, instants, password schemes) and report
//! every bad row at once ([`Error::InvalidJson`]); the values themselves (a username's
//! characters, an email's syntax, uniqueness) are checked by the directory when the rows are
//! written.
//!
//! Writers turn a [`User`] into a `serde_json::Value`. **No writer ever outputs a password or a
//! hash**, except with `with_hashes` (FusionAuth and JSON Lines only), whose output re-imports
//! exactly: same ids, instants, hashes and custom data. (A re-import is a new write: the
//! `lastUpdateInstant` becomes the import instant and the version restarts at 1.)
//!
//! # Examples
//! ```
//! use userdir::json::{self, Format};
//! # fn main() -> Result<(), userdir::Error> {
//! let rows = json::read(Format::FusionAuth, r#"{"users":[{"username":"ann","active":true}]}"#)?;
//! assert_eq!(rows[0].profile.username.as_deref(), Some("ann"));
//! assert!(rows[0].active);
//!
//! let err = json::read(Format::FusionAuth, r#"{"users":[{"username":7}]}"#).unwrap_err();
//! assert_eq!(err.to_string(), "invalid JSON input: row 0, field username: expected a string");
//! # Ok(()) }
//! ```

pub mod fuse;
pub mod fusionauth;
pub mod scim;
mod stream;

pub use stream::{ReadLimits, ReadOutcome, read_stream, read_stream_checked};

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::directory::Directory;
use crate::error::{Error, JsonProblem, Result};
use crate::store::Snapshot;
use crate::user::{AttrValue, NewUser, UnixMillis, User};

/// A JSON interchange format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// FusionAuth's User API shapes (seed 002).
    FusionAuth,
    /// Fuse Universal's bulk create shape (seed 001).
    Fuse,
    /// SCIM 2.0 (RFC 7643 / RFC 7644).
    Scim,
    /// JSON Lines: one FusionAuth-shaped user per line.
    JsonLines,
}

impl Format {
    /// Every format, in the order of their names in [`Format::NAMES`].
    pub const ALL: [Format; 4] = [
        Format::FusionAuth,
        Format::Fuse,
        Format::Scim,
        Format::JsonLines,
    ];
    /// The names [`Format::from_str`] accepts.
    pub const NAMES: [&'static str; 4] = ["fusionauth", "fuse", "scim", "jsonl"];

    /// The format's name (`fusionauth`, `fuse`, `scim`, `jsonl`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::FusionAuth => "fusionauth",
            Format::Fuse => "fuse",
            Format::Scim => "scim",
            Format::JsonLines => "jsonl",
        }
    }

    /// Whether the format can carry password hashes (`with_hashes`).
    #[must_use]
    pub fn carries_hashes(self) -> bool {
        matches!(self, Format::FusionAuth | Format::JsonLines)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fusionauth" => Ok(Format::FusionAuth),
            "fuse" => Ok(Format::Fuse),
            "scim" => Ok(Format::Scim),
            "jsonl" | "jsonlines" | "ndjson" => Ok(Format::JsonLines),
            _ => Err(Error::invalid(
                "format",
                format!("unknown format {s:?} (expected one of fusionauth, fuse, scim, jsonl)"),
            )),
        }
    }
}

/// Guesses the format of a document: JSON Lines when the file name ends in `.jsonl` or
/// `.ndjson` or the text has several top-level values on separate lines; SCIM when it has
/// `schemas`, `Resources` or `userName`; Fuse when its first user has `password_confirmation`,
/// `profile` or `role`; FusionAuth otherwise.
///
/// # Examples
/// ```
/// use userdir::json::{detect, Format};
/// assert_eq!(detect(None, r#"{"Resources":[]}"#), Format::Scim);
/// assert_eq!(detect(None, r#"{"users":[{"username":"a","role":"user"}]}"#), Format::Fuse);
/// assert_eq!(detect(None, r#"{"users":[{"username":"a"}]}"#), Format::FusionAuth);
/// assert_eq!(detect(Some("users.jsonl"), "{}"), Format::JsonLines);
/// ```
#[must_use]
pub fn detect(file_name: Option<&str>, text: &str) -> Format {
    if let Some(name) = file_name {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            return Format::JsonLines;
        }
    }
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let several = lines
            .next()
            .is_some_and(|l| serde_json::from_str::<Value>(l).is_ok())
            && lines.next().is_some();
        return if several {
            Format::JsonLines
        } else {
            Format::FusionAuth
        };
    };
    let has = |v: &Value, keys: &[&str]| keys.iter().any(|k| v.get(k).is_some());
    if has(&doc, &["schemas", "Resources", "userName"]) {
        return Format::Scim;
    }
    let first = match &doc {
        Value::Array(a) => a.first(),
        _ => doc.get("users").and_then(|u| u.get(0)).or(doc.get("user")),
    };
    match first {
        Some(u) if has(u, &["userName", "schemas"]) => Format::Scim,
        Some(u) if has(u, &["password_confirmation", "profile", "role"]) => Format::Fuse,
        _ => Format::FusionAuth,
    }
}

/// Reads every user of a JSON document (or JSON Lines text) in `format`. The text is read
/// as [`read_stream`] reads it: duplicate keys are refused and a record may take at most
/// [`ReadLimits::DEFAULT_MAX_RECORD_BYTES`]; every problem is reported.
///
/// # Errors
/// [`Error::InvalidJson`] listing every problem: malformed JSON, a duplicate key, an
/// unexpected document shape, a record over the size limit, or rows whose fields have the
/// wrong type, an unparsable instant or an unsupported password scheme.
pub fn read(format: Format, text: &str) -> Result<Vec<NewUser>> {
    let limits = ReadLimits::default()
        .max_input_bytes(u64::MAX)
        .max_problems_kept(usize::MAX);
    let out = read_stream(Some(format), None, text.as_bytes(), limits, &mut |_| {});
    if out.problem_count == 0 {
        Ok(out.rows)
    } else {
        Err(Error::InvalidJson(out.problems))
    }
}

/// Writes one user in `format` (for [`Format::JsonLines`] and [`Format::FusionAuth`], the
/// FusionAuth user object; for SCIM, a `User` resource; for Fuse, one bulk-create row).
///
/// # Errors
/// [`Error::InvalidField`] (`with_hashes`) when `with_hashes` is asked of a format that cannot
/// carry hashes (Fuse, SCIM).
pub fn write_user(format: Format, user: &User, with_hashes: bool) -> Result<Value> {
    if with_hashes && !format.carries_hashes() {
        return Err(no_hashes(format));
    }
    Ok(match format {
        Format::FusionAuth | Format::JsonLines => fusionauth::write_user(user, with_hashes),
        Format::Fuse => fuse::write_user(user),
        Format::Scim => scim::write_user(user),
    })
}

fn no_hashes(format: Format) -> Error {
    Error::invalid(
        "with_hashes",
        format!("the {format} format cannot carry password hashes (use fusionauth or jsonl)"),
    )
}

/// Writes every user of `users` as one document in `format` (the shape [`read`] reads back).
///
/// # Errors
/// As [`write_user`].
pub fn write_document(format: Format, users: &[User], with_hashes: bool) -> Result<String> {
    let mut out = Vec::new();
    write_stream(
        format,
        with_hashes,
        users.len() as u64,
        users.iter().cloned().map(Ok),
        &mut out,
        &mut |_, _| {},
    )?;
    String::from_utf8(out).map_err(|e| Error::storage_msg(e.to_string()))
}

/// Streams every user of the directory to `out` in `format`, from one consistent snapshot,
/// in id order, calling `progress(done, total)` after each user. Returns how many users were
/// written. Memory stays flat: one user is held at a time.
///
/// # Errors
/// As [`write_user`]; [`Error::Storage`] when the directory cannot be read or `out` cannot be
/// written (a closed pipe, a full disk).
pub fn export(
    dir: &Directory,
    format: Format,
    with_hashes: bool,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    if with_hashes && !format.carries_hashes() {
        return Err(no_hashes(format));
    }
    dir.read_raw(|r| {
        let total = r.count()?;
        let mut w = StreamWriter::start(format, total, out)?;
        r.for_each_user(|u| {
            w.user(&u, with_hashes)?;
            progress(w.done, total);
            Ok(true)
        })?;
        w.finish()
    })
}

fn write_stream(
    format: Format,
    with_hashes: bool,
    total: u64,
    users: impl Iterator<Item = Result<User>>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    if with_hashes && !format.carries_hashes() {
        return Err(no_hashes(format));
    }
    let mut w = StreamWriter::start(format, total, out)?;
    for u in users {
        w.user(&u?, with_hashes)?;
        progress(w.done, total);
    }
    w.finish()
}

fn io_error(e: std::io::Error) -> Error {
    Error::Storage(crate::error::StorageError::io("cannot write the output", e))
}

/// Writes a document's opening, its users one at a time, and its closing.
struct StreamWriter<'o> {
    format: Format,
    out: &'o mut dyn Write,
    done: u64,
}

impl<'o> StreamWriter<'o> {
    fn start(format: Format, total: u64, out: &'o mut dyn Write) -> Result<Self> {
        let head = match format {
            Format::FusionAuth | Format::Fuse => "{\"users\":[\n".to_owned(),
            Format::Scim => format!(
                "{{\"schemas\":[\"{}\"],\"totalResults\":{total},\"startIndex\":1,\"itemsPerPage\":{total},\"Resources\":[\n",
                scim::LIST_RESPONSE
            ),
            Format::JsonLines => String::new(),
        };
        out.write_all(head.as_bytes()).map_err(io_error)?;
        Ok(StreamWriter {
            format,
            out,
            done: 0,
        })
    }

    fn user(&mut self, u: &User, with_hashes: bool) -> Result<()> {
        let v = write_user(self.format, u, with_hashes)?;
        let sep = match self.format {
            Format::JsonLines => "",
            _ if self.done == 0 => "",
            _ => ",\n",
        };
        let text = serde_json::to_string(&v).map_err(|e| Error::storage_msg(e.to_string()))?;
        let end = if self.format == Format::JsonLines {
            "\n"
        } else {
            ""
        };
        write!(self.out, "{sep}{text}{end}").map_err(io_error)?;
        self.done += 1;
        Ok(())
    }

    fn finish(self) -> Result<u64> {
        let tail = match self.format {
            Format::JsonLines => "",
            _ => "\n]}\n",
        };
        self.out
            .write_all(tail.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(io_error)?;
        Ok(self.done)
    }
}

/// Converts a JSON value to a custom attribute value. Integers that fit `i64` become
/// [`AttrValue::Int`], other numbers [`AttrValue::Float`].
#[must_use]
pub fn attr_from_json(v: &Value) -> AttrValue {
    match v {
        Value::Null => AttrValue::Null,
        Value::Bool(b) => AttrValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AttrValue::Int(i),
            None => AttrValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => AttrValue::String(s.clone()),
        Value::Array(a) => AttrValue::Array(a.iter().map(attr_from_json).collect()),
        Value::Object(o) => AttrValue::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), attr_from_json(v)))
                .collect(),
        ),
    }
}

/// Converts a custom attribute value to JSON. A non-finite float (which JSON cannot hold)
/// becomes `null`.
#[must_use]
pub fn attr_to_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::Null => Value::Null,
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Int(i) => Value::from(*i),
        AttrValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AttrValue::String(s) => Value::String(s.clone()),
        AttrValue::Array(a) => Value::Array(a.iter().map(attr_to_json).collect()),
        AttrValue::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), attr_to_json(v)))
                .collect(),
        ),
    }
}

/// Converts a user's custom data to a JSON object.
#[must_use]
pub fn data_to_json(data: &BTreeMap<String, AttrValue>) -> Map<String, Value> {
    data.iter()
        .map(|(k, v)| (k.clone(), attr_to_json(v)))
        .collect()
}

/// Formats an instant (ms since the Unix epoch) as RFC 3339 UTC with milliseconds, e.g.
/// `2010-01-23T04:56:22.000Z` (with the `jiff` crate). Instants outside the years -9999 to
/// 9999, which the directory refuses to store, are shown as the nearest end of that range.
///
/// # Examples
/// ```
/// assert_eq!(userdir::json::format_rfc3339(1_264_222_582_000), "2010-01-23T04:56:22.000Z");
/// ```
#[must_use]
pub fn format_rfc3339(ms: UnixMillis) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    format!("{ts:.3}")
}

/// Parses an RFC 3339 date-time (`2010-01-23T04:56:22Z`, with optional fraction and a `Z` or
/// `±hh:mm` offset, which is honoured) to ms since the Unix epoch, with the `jiff` crate.
/// `None` when it is not one: an impossible date (`2023-02-31`, `2023-02-29`), a missing
/// offset, or an instant outside the years -9999 to 9999. A leap second (`23:59:60`) is read
/// as `23:59:59`. Digits beyond milliseconds are dropped.
///
/// # Examples
/// ```
/// use userdir::json::parse_rfc3339;
/// assert_eq!(parse_rfc3339("2010-01-23T04:56:22Z"), Some(1_264_222_582_000));
/// assert_eq!(parse_rfc3339("2010-01-23T06:56:22.5+02:00"), Some(1_264_222_582_500));
/// assert_eq!(parse_rfc3339("2023-02-31T00:00:00Z"), None);
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
#[must_use]
pub fn parse_rfc3339(s: &str) -> Option<UnixMillis> {
    crate::clock::parse_rfc3339_ms(s)
}

/// Reads the typed fields of one row, recording every problem with the row index and the
/// field's path.
pub(crate) struct Fields<'p> {
    row: Option<usize>,
    problems: &'p mut Vec<JsonProblem>,
    before: usize,
}

impl<'p> Fields<'p> {
    pub(crate) fn new(row: Option<usize>, problems: &'p mut Vec<JsonProblem>) -> Self {
        let before = problems.len();
        Fields {
            row,
            problems,
            before,
        }
    }

    /// Whether a problem was recorded for this row.
    pub(crate) fn failed(&self) -> bool {
        self.problems.len() > self.before
    }

    pub(crate) fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(JsonProblem {
            row: self.row,
            field: (!field.is_empty()).then(|| field.to_owned()),
            reason: reason.into(),
        });
    }

    /// A string field; `null` and absent are `None`.
    pub(crate) fn string(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(path, "expected a string");
                None
            }
        }
    }

    pub(crate) fn boolean(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<bool> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.problem(path, "expected true or false");
                None
            }
        }
    }

    /// An integer field (an instant in ms, a factor); numeric strings are accepted.
    pub(crate) fn int(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<i64> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            Some(_) => {
                self.problem(path, "expected an integer");
                None
            }
        }
    }

    pub(crate) fn uuid(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<Uuid> {
        let s = self.string(obj, key, path)?;
        match Uuid::parse_str(s.trim()) {
            Ok(id) => Some(id),
            Err(_) => {
                self.problem(path, "expected a UUID");
                None
            }
        }
    }

    /// An array of strings; a single string is accepted as a one-element array.
    pub(crate) fn strings(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Vec<String> {
        match obj.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    match v {
                        Value::String(s) => out.push(s.clone()),
                        _ => self.problem(&format!("{path}[{i}]"), "expected a string"),
                    }
                }
                out
            }
            Some(_) => {
                self.problem(path, "expected an array of strings");
                Vec::new()
            }
        }
    }

    /// An object field; `null` and absent are `None`.
    pub(crate) fn object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Map<String, Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.problem(path, "expected an object");
                None
            }
        }
    }

    /// An array field; `null` and absent are empty.
    pub(crate) fn array<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> &'v [Value] {
        match obj.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.problem(path, "expected an array");
                &[]
            }
        }
    }
}

/// Puts `v` under `key` when it is present.
pub(crate) fn put(m: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(key.to_owned(), v.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for ms in [
            0,
            1,
            999,
            1_264_222_582_000,
            -86_400_001,
            253_402_207_199_999,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            parse_rfc3339("2000-01-01T00:00:00.000Z"),
            Some(946_684_800_000)
        );
        // Offsets are honoured; 2024 is a leap year; a leap second is not a rollover.
        assert_eq!(
            parse_rfc3339("2000-01-01T01:30:00+01:30"),
            Some(946_684_800_000)
        );
        assert_eq!(
            parse_rfc3339("1999-12-31T19:00:00-05:00"),
            Some(946_684_800_000)
        );
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert_eq!(
            parse_rfc3339("1998-12-31T23:59:60Z"),
            parse_rfc3339("1998-12-31T23:59:59Z")
        );
        for bad in [
            "",
            "2000-13-01T00:00:00Z",
            "2000-01-01",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00+0100",
            "2023-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2000-01-01T24:00:00Z",
            "+292278994-01-01T00:00:00Z",
            "2000-01-01T00:00:00Z[Europe/Paris]",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn attr_values_round_trip() {
        let v: Value = serde_json::from_str(
            r#"{"a":[1,2.5,"x",null,true,{"b":-3}],"big":18446744073709551615}"#,
        )
        .unwrap_or_default();
        let a = attr_from_json(&v);
        let back = attr_to_json(&a);
        assert_eq!(back["a"], v["a"]);
        assert!(back["big"].is_f64());
    }
}
