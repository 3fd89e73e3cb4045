//! A plain in-memory reference model of a userdir directory, the operations the model tests,
//! fuzz targets and crash tests drive, and the comparison of a real directory with the model.
//!
//! The model knows nothing of redb: a `BTreeMap` of users plus the identity rules, computed with
//! `userdir::identity` (normalization and `caseless_key`). Every operation is applied to both the
//! directory and the model; the outcome (`Ok` value or error variant, including the ids the error
//! names) must be the same, and so must every lookup afterwards.
//!
//! Besides single-user writes the model covers bulk imports (all-or-nothing, with the report's
//! every bad row), SCIM patches on the identity fields, `active` and `name.familyName`, and
//! searches: the model evaluates its own small filter language (rendered as SCIM filter text
//! for the directory), sorts and pages the matches itself, and compares ids, totals and cursor
//! pages.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use userdir::identity::normalize_username;
use userdir::identity::{caseless_key, lookup_key, normalize_email, normalize_external_id};
use userdir::query::{Search, SortField};
use userdir::{
    AttrValue, Directory, Error, ImportBatch, NewUser, PatchOp, Profile, RowReason, StoredHash, Tx,
    User, UserUpdate,
};
use uuid::Uuid;

/// Raw usernames: a small alphabet so that collisions are frequent. Groups of caselessly equal
/// names: bob; strasse; kelvin; admin (fullwidth); café (composed/decomposed); a username that is
/// an email; Turkish dotted I (which is NOT equal to `istanbul`); invalid values; two plain
/// names that collide with nothing (so that more import batches succeed).
pub const USERNAMES: &[&str] = &[
    "bob",
    "BoB",
    "  BOB  ",
    "straße",
    "STRASSE",
    "Strasse",
    "\u{212A}elvin",
    "kelvin",
    "KELVIN",
    "ａｄｍｉｎ",
    "admin",
    "ADMIN",
    "caf\u{e9}",
    "cafe\u{301}",
    "CAF\u{c9}",
    "ann@example.com",
    "ANN@EXAMPLE.COM",
    "\u{130}stanbul",
    "i\u{307}stanbul",
    "istanbul",
    "",
    "   ",
    "a\u{0}b",
    "carol",
    "Dave",
];

/// Raw emails. Groups: ann; bob (also a username above); straße/strasse (different stored
/// forms, same caseless key); Kelvin sign; invalid values; the two plain users' addresses.
pub const EMAILS: &[&str] = &[
    "ann@example.com",
    "ANN@Example.COM",
    " ann@example.com ",
    "bob@example.com",
    "bob",
    "stra\u{df}e@example.de",
    "STRASSE@example.de",
    "\u{212A}@example.io",
    "k@example.io",
    "admin@example.com",
    "a@@b",
    "@example.com",
    "x y@example.com",
    "carol@example.org",
    "Dave@Example.org",
];

/// Raw external ids (compared exactly after trimming).
pub const EXTERNALS: &[&str] = &["ext-1", "EXT-1", " ext-1 ", "ext-2", ""];

/// Raw family names (`name.familyName`, compared exactly and stored as given): an empty one
/// (valid, but not "present" for `pr`), one with spaces around, one with a control character
/// (invalid).
pub const FAMILY: &[&str] = &["Smith", "smith", "Smithson", "", " Lee ", "O\u{0}Neil"];

/// The plaintext password of import rows that carry one, and one the policy refuses.
pub const PLAIN_PASSWORD: &str = "model import password";
pub const WEAK_PASSWORD: &str = "short";

/// Fixed ids a create may ask for (so `DuplicateId` happens) and targets may name (some are
/// never created: `NotFound`).
pub fn pool_id(i: usize) -> Uuid {
    Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 + i as u128)
}
pub const POOL: usize = 6;

/// A field of an update: keep the current value, set a raw value (index into the alphabet), or
/// clear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sel {
    Keep,
    Set(u8),
    Clear,
}

/// Which version an update expects: none, the current one, or a wrong one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ver {
    Any,
    Current,
    Stale,
}

/// The password of an import row: none, the harness's pre-hashed one, [`PLAIN_PASSWORD`]
/// (hashed by the import), or [`WEAK_PASSWORD`] (refused by the policy: a bad row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pw {
    None,
    Hashed,
    Plain,
    Weak,
}

/// One row of an import batch (indices into the alphabets, like `Op::Create`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// `Some(i)`: `pool_id(i % POOL)`; `None`: a random id chosen by the import.
    pub id: Option<u8>,
    pub username: Option<u8>,
    pub email: Option<u8>,
    pub external: Option<u8>,
    pub family: Option<u8>,
    pub active: bool,
    pub password: Pw,
}

/// The kind of a patch step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PKind {
    Add,
    Replace,
    Remove,
}

/// What a patch step changes; `ReadOnly` and `Unknown` paths are always refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PField {
    UserName,
    Email,
    ExternalId,
    Active,
    FamilyName,
    ReadOnly,
    Unknown,
}

impl PField {
    /// The spellings of the path (attribute names are case-insensitive).
    fn paths(self) -> &'static [&'static str] {
        match self {
            PField::UserName => &[
                "userName",
                "USERNAME",
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            ],
            PField::Email => &["emails.value", "email", "Emails.Value"],
            PField::ExternalId => &["externalId", "externalid"],
            PField::Active => &["active", "ACTIVE"],
            PField::FamilyName => &["name.familyName", "name:familyName", "NAME.FAMILYNAME"],
            PField::ReadOnly => &["id", "meta.version", "password"],
            PField::Unknown => &["noSuchAttribute", "name.nickName"],
        }
    }

    /// The alphabet of its text values.
    fn alphabet(self) -> &'static [&'static str] {
        match self {
            PField::UserName => USERNAMES,
            PField::Email => EMAILS,
            PField::ExternalId => EXTERNALS,
            _ => FAMILY,
        }
    }
}

/// The value of a patch step: a string of the field's alphabet, the same as `{"value": ...}`,
/// the field's value of the `i`-th other existing user (by id; for a username, that user's
/// email when it has no username: so duplicates are frequent), `null`, or a boolean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PVal {
    Str(u8),
    Obj(u8),
    Taken(u8),
    Null,
    Bool(bool),
}

/// One patch operation: `path` picks the spelling of the field's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PStep {
    pub kind: PKind,
    pub field: PField,
    pub path: u8,
    pub value: PVal,
}

impl PStep {
    pub fn path(&self) -> &'static str {
        pick(self.field.paths(), self.path)
    }

    /// The text of a `Str`, `Obj` or `Taken` value, in `model` (the state before the patch)
    /// for a patch of `target`.
    fn text(self, model: &Model, target: Uuid) -> Option<String> {
        let alphabet = self.field.alphabet();
        match self.value {
            PVal::Str(i) | PVal::Obj(i) => Some(pick(alphabet, i).to_owned()),
            PVal::Taken(i) => {
                let others: Vec<&MUser> = model
                    .by_age()
                    .into_iter()
                    .filter(|u| u.id != target)
                    .collect();
                let u = others.get(usize::from(i) % others.len().max(1));
                let taken = u.and_then(|u| match self.field {
                    PField::UserName => u.username.clone().or_else(|| u.email.clone()),
                    PField::Email => u.email.clone(),
                    PField::ExternalId => u.external_id.clone(),
                    PField::FamilyName => u.last_name.clone(),
                    _ => None,
                });
                Some(taken.unwrap_or_else(|| pick(alphabet, i).to_owned()))
            }
            PVal::Null | PVal::Bool(_) => None,
        }
    }

    /// The library's form of the step, for a patch of `target`.
    pub fn to_patch_op(self, model: &Model, target: Uuid) -> PatchOp {
        let text = || AttrValue::String(self.text(model, target).unwrap_or_default());
        let value = match self.value {
            PVal::Str(_) | PVal::Taken(_) => text(),
            PVal::Obj(_) => AttrValue::Object(BTreeMap::from([("value".to_owned(), text())])),
            PVal::Null => AttrValue::Null,
            PVal::Bool(b) => AttrValue::Bool(b),
        };
        match self.kind {
            PKind::Add => PatchOp::add(self.path(), value),
            PKind::Replace => PatchOp::replace(self.path(), value),
            PKind::Remove => PatchOp::remove(self.path()),
        }
    }
}

/// An attribute the model's filters compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MAttr {
    UserName,
    Email,
    ExternalId,
    FamilyName,
}

impl MAttr {
    fn names(self) -> &'static [&'static str] {
        match self {
            MAttr::UserName => &[
                "userName",
                "USERNAME",
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            ],
            MAttr::Email => &["emails.value", "emails", "email", "EMAILS.VALUE"],
            MAttr::ExternalId => &["externalId", "EXTERNALID"],
            MAttr::FamilyName => &["name.familyName", "NAME.familyname"],
        }
    }

    fn alphabet(self) -> &'static [&'static str] {
        match self {
            MAttr::UserName => USERNAMES,
            MAttr::Email => EMAILS,
            MAttr::ExternalId => EXTERNALS,
            MAttr::FamilyName => FAMILY,
        }
    }

    /// userName, emails and the name sub-attributes compare caselessly (RFC 7643
    /// caseExact=false), externalId exactly.
    fn caseless(self) -> bool {
        matches!(self, MAttr::UserName | MAttr::Email | MAttr::FamilyName)
    }

    fn value(self, u: &MUser) -> Option<&str> {
        match self {
            MAttr::UserName => u.username.as_deref(),
            MAttr::Email => u.email.as_deref(),
            MAttr::ExternalId => u.external_id.as_deref(),
            MAttr::FamilyName => u.last_name.as_deref(),
        }
    }
}

/// A comparison operator of the model's filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MOp {
    Eq,
    Ne,
    Sw,
    Ew,
    Co,
}

/// Which part of an alphabet entry a literal is: all of it, or its first / last `n % (chars +
/// 1)` characters (so prefixes, suffixes and the empty string occur).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    Whole,
    Prefix(u8),
    Suffix(u8),
}

/// The model's filter language, a small part of SCIM's; rendered as SCIM text for the directory
/// and evaluated by the model itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MFilter {
    /// `name` picks the spelling of the attribute, `lit` the alphabet entry, or with `live`
    /// the attribute's value of the `lit`-th existing user (by id) when it has one.
    Cmp {
        attr: MAttr,
        name: u8,
        op: MOp,
        lit: u8,
        live: bool,
        cut: Cut,
    },
    Pr(MAttr, u8),
    Active(bool),
    And(Box<MFilter>, Box<MFilter>),
    Or(Box<MFilter>, Box<MFilter>),
    Not(Box<MFilter>),
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn literal(model: &Model, attr: MAttr, lit: u8, live: bool, cut: Cut) -> String {
    let s = match model.nth_user(lit).and_then(|u| attr.value(u)) {
        Some(v) if live => v,
        _ => pick(attr.alphabet(), lit),
    };
    let chars: Vec<char> = s.chars().collect();
    let n = |k: u8| usize::from(k) % (chars.len() + 1);
    match cut {
        Cut::Whole => s.to_owned(),
        Cut::Prefix(k) => chars[..n(k)].iter().collect(),
        Cut::Suffix(k) => chars[chars.len() - n(k)..].iter().collect(),
    }
}

impl MFilter {
    /// The SCIM filter text (live literals taken from `model`).
    pub fn to_scim(&self, model: &Model) -> String {
        match self {
            MFilter::Cmp {
                attr,
                name,
                op,
                lit,
                live,
                cut,
            } => {
                let op = match op {
                    MOp::Eq => "eq",
                    MOp::Ne => "ne",
                    MOp::Sw => "sw",
                    MOp::Ew => "ew",
                    MOp::Co => "co",
                };
                format!(
                    "{} {op} {}",
                    pick(attr.names(), *name),
                    json_string(&literal(model, *attr, *lit, *live, *cut))
                )
            }
            MFilter::Pr(attr, name) => format!("{} pr", pick(attr.names(), *name)),
            MFilter::Active(b) => format!("active eq {b}"),
            MFilter::And(a, b) => format!("({}) and ({})", a.to_scim(model), b.to_scim(model)),
            MFilter::Or(a, b) => format!("({}) or ({})", a.to_scim(model), b.to_scim(model)),
            MFilter::Not(a) => format!("not ({})", a.to_scim(model)),
        }
    }

    /// The model's own evaluation, from the documented rules: userName and emails compare the
    /// compatibility caseless keys of both sides (also for `sw`, `ew`, `co`), the others
    /// compare code points; a missing value matches no comparison but `ne`; `pr` needs a
    /// non-empty value.
    pub fn matches(&self, model: &Model, u: &MUser) -> bool {
        match self {
            MFilter::Cmp {
                attr,
                op,
                lit,
                live,
                cut,
                ..
            } => {
                let Some(v) = attr.value(u) else {
                    return *op == MOp::Ne;
                };
                let l = literal(model, *attr, *lit, *live, *cut);
                let (v, l) = if attr.caseless() {
                    (caseless_key(v), caseless_key(&l))
                } else {
                    (v.to_owned(), l)
                };
                match op {
                    MOp::Eq => v == l,
                    MOp::Ne => v != l,
                    MOp::Sw => v.starts_with(&l),
                    MOp::Ew => v.ends_with(&l),
                    MOp::Co => v.contains(&l),
                }
            }
            MFilter::Pr(attr, _) => attr.value(u).is_some_and(|v| !v.is_empty()),
            MFilter::Active(b) => u.active == *b,
            MFilter::And(a, b) => a.matches(model, u) && b.matches(model, u),
            MFilter::Or(a, b) => a.matches(model, u) || b.matches(model, u),
            MFilter::Not(a) => !a.matches(model, u),
        }
    }
}

/// The sort of a search: by id (none), by username (caseless key) or by email (stored form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Id,
    UserName,
    Email,
}

/// A search: filter (`None`: every user), order, page size and offset. The directory's pages
/// are walked with their cursors to the end (at most [`MAX_PAGES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchSpec {
    pub filter: Option<MFilter>,
    pub sort: SortBy,
    pub desc: bool,
    pub missing_first: bool,
    pub limit: u8,
    pub offset: u8,
}

pub const MAX_PAGES: usize = 12;

impl SearchSpec {
    /// The directory's search.
    pub fn to_search(&self, model: &Model) -> userdir::Result<Search> {
        let mut s = match &self.filter {
            Some(f) => Search::filter(&f.to_scim(model))?,
            None => Search::all(),
        };
        let field = match self.sort {
            SortBy::Id => None,
            SortBy::UserName => Some(SortField::username()),
            SortBy::Email => Some(SortField::email()),
        };
        if let Some(mut f) = field {
            if self.desc {
                f = f.desc();
            }
            if self.missing_first {
                f = f.missing_first();
            }
            s = s.sort(f);
        }
        Ok(s.limit(usize::from(self.limit))
            .offset(usize::from(self.offset)))
    }

    /// The model's order of the matches: by the sort key (users without one last, or first
    /// with `missing_first`, whatever the direction), ties by id; `desc` reverses keys and ids.
    fn order(&self, users: &mut [&MUser]) {
        let key = |u: &MUser| -> Option<String> {
            match self.sort {
                SortBy::Id => Some(String::new()),
                SortBy::UserName => u.username.as_deref().map(caseless_key),
                SortBy::Email => u.email.clone(),
            }
        };
        users.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            match (&ka, &kb) {
                (None, Some(_)) if self.missing_first => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) if self.missing_first => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => {
                    let o = ka.cmp(&kb).then(a.id.cmp(&b.id));
                    if self.desc && self.sort != SortBy::Id {
                        o.reverse()
                    } else {
                        o
                    }
                }
            }
        });
    }
}

/// One page of a search: the total, the ids in order, whether a cursor to a next page came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageV {
    pub total: u64,
    pub ids: Vec<Uuid>,
    pub next: bool,
}

/// One operation on the directory. Indices are taken modulo the size of what they index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `id`: `Some(i)` asks for `pool_id(i % POOL)`, `None` for a random id.
    Create {
        id: Option<u8>,
        username: Option<u8>,
        email: Option<u8>,
        external: Option<u8>,
        active: bool,
        password: bool,
    },
    Update {
        target: u8,
        username: Sel,
        email: Sel,
        external: Sel,
        version: Ver,
    },
    Deactivate(u8),
    Reactivate(u8),
    Delete(u8),
    DeactivateMany(Vec<u8>, bool),
    DeleteMany(Vec<u8>, bool),
    /// Two operations in one `write` transaction; `fail` makes the closure return `Err` after
    /// them (nothing may be written), otherwise it commits both.
    Write(Box<Op>, Box<Op>, bool),
    /// Drop the directory and open the file again (a no-op for in-memory directories).
    Reopen,
    /// `dir.import` of these rows (not inside `write`).
    Import(Vec<Row>),
    /// `dir.patch` (or `tx.patch` inside `write`) of the target.
    Patch {
        target: u8,
        steps: Vec<PStep>,
        version: Ver,
    },
    /// `dir.search`, walking every page (not inside `write`; changes nothing).
    Search(SearchSpec),
}

impl Op {
    /// Whether the operation can run inside a `write` transaction.
    pub fn in_tx(&self) -> bool {
        !matches!(
            self,
            Op::Write(..) | Op::Reopen | Op::Import(_) | Op::Search(_)
        )
    }
}

/// A user as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MUser {
    pub id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub has_password: bool,
    pub version: u64,
    pub last_name: Option<String>,
}

impl MUser {
    pub fn of(u: &User) -> MUser {
        MUser {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            external_id: u.external_id.clone(),
            active: u.active,
            has_password: u.password.is_some(),
            version: u.version,
            last_name: u.last_name.clone(),
        }
    }
}

/// The kind of an error, with the ids and fields it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrKind {
    InvalidField(&'static str),
    MissingLoginId,
    DuplicateId(Uuid),
    DuplicateUsername(Uuid),
    DuplicateEmail(Uuid),
    DuplicateExternalId(Uuid),
    LoginIdConflict(&'static str, Uuid),
    NotFound(Uuid),
    VersionConflict(u64, u64),
    /// An import refused: every problem as (row, field, reason).
    Import(BTreeSet<(usize, &'static str, Reason)>),
    /// A patch step refused, with the path as given.
    InvalidPatch(String),
    /// The sentinel a failing `write` closure returns.
    Aborted,
    Storage,
    NeedsReopen,
    Other(String),
}

const ABORT: &str = "model: abort the transaction";

pub fn abort_error() -> Error {
    Error::Corrupt(ABORT.into())
}

pub fn kind(e: &Error) -> ErrKind {
    match e {
        Error::InvalidField { field, .. } => ErrKind::InvalidField(field),
        Error::MissingLoginId => ErrKind::MissingLoginId,
        Error::DuplicateId(id) => ErrKind::DuplicateId(*id),
        Error::DuplicateUsername { existing } => ErrKind::DuplicateUsername(*existing),
        Error::DuplicateEmail { existing } => ErrKind::DuplicateEmail(*existing),
        Error::DuplicateExternalId { existing } => ErrKind::DuplicateExternalId(*existing),
        Error::LoginIdConflict { field, existing } => ErrKind::LoginIdConflict(field, *existing),
        Error::NotFound(id) => ErrKind::NotFound(*id),
        Error::VersionConflict { expected, actual } => ErrKind::VersionConflict(*expected, *actual),
        // The report is documented as ordered by row index.
        Error::Import(report) if !report.problems.is_sorted_by_key(|p| p.index) => {
            ErrKind::Other(format!("import report not ordered by row: {report}"))
        }
        Error::Import(report) => ErrKind::Import(
            report
                .problems
                .iter()
                .map(|p| {
                    let reason = match &p.reason {
                        RowReason::Invalid(_) => Reason::Invalid,
                        RowReason::DuplicateInBatch { other_index } => {
                            Reason::InBatch(*other_index)
                        }
                        RowReason::DuplicateOfExisting { existing } => Reason::Existing(*existing),
                    };
                    (p.index, p.field, reason)
                })
                .collect(),
        ),
        Error::InvalidPatch { path, .. } => ErrKind::InvalidPatch(path.clone()),
        Error::Corrupt(m) if m == ABORT => ErrKind::Aborted,
        Error::Storage(_) => ErrKind::Storage,
        Error::NeedsReopen => ErrKind::NeedsReopen,
        other => ErrKind::Other(other.to_string()),
    }
}

/// Why an import row was refused (the report's reason without its text).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Invalid,
    InBatch(usize),
    Existing(Uuid),
}

/// The value an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    User(MUser),
    Count(usize),
    Pair(Box<Outcome>, Box<Outcome>),
    Unit,
    /// An import's summary and the ids of its rows, in row order.
    Imported {
        imported: usize,
        hashed: usize,
        pre_hashed: usize,
        ids: Vec<Uuid>,
    },
    /// A search's pages.
    Pages(Vec<PageV>),
}

pub type Outcome = Result<Val, ErrKind>;

pub fn outcome_user(r: userdir::Result<User>) -> Outcome {
    r.map(|u| Val::User(MUser::of(&u))).map_err(|e| kind(&e))
}

const KIND_USERNAME: u8 = 1;
const KIND_EMAIL: u8 = 2;

/// The reference model.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub users: BTreeMap<Uuid, MUser>,
    /// Every id ever created, in creation order (targets index `pool ++ seen`).
    pub seen: Vec<Uuid>,
}

struct Validated {
    username: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
}

fn pick<'a>(alphabet: &[&'a str], i: u8) -> &'a str {
    alphabet[usize::from(i) % alphabet.len()]
}

impl Model {
    /// The id a target index names.
    pub fn target(&self, t: u8) -> Uuid {
        let n = POOL + self.seen.len();
        let i = usize::from(t) % n;
        if i < POOL {
            pool_id(i)
        } else {
            self.seen[i - POOL]
        }
    }

    /// The id a patch's target names: mostly an existing user (the `t / 8`-th by age), else
    /// (`t % 8 == 7`, or nobody exists) as [`Model::target`].
    pub fn live_target(&self, t: u8) -> Uuid {
        let users = self.by_age();
        match users.get(usize::from(t / 8) % users.len().max(1)) {
            Some(u) if t % 8 != 7 => u.id,
            _ => self.target(t),
        }
    }

    /// The existing users in a deterministic order that does not depend on their ids (pool
    /// ids first, then creation order): generated ids differ between engines, and the
    /// cross-engine test must resolve an operation to the same users on both.
    pub fn by_age(&self) -> Vec<&MUser> {
        let rank = |id: &Uuid| {
            (0..POOL)
                .position(|i| pool_id(i) == *id)
                .or_else(|| self.seen.iter().position(|s| s == id).map(|p| POOL + p))
                .unwrap_or(usize::MAX)
        };
        let mut users: Vec<&MUser> = self.users.values().collect();
        users.sort_by_key(|u| (rank(&u.id), u.id));
        users
    }

    /// The `i`-th existing user in [`Model::by_age`] order (modulo their number).
    pub fn nth_user(&self, i: u8) -> Option<&MUser> {
        let users = self.by_age();
        users.get(usize::from(i) % users.len().max(1)).copied()
    }

    /// Every id worth looking up.
    pub fn known_ids(&self) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = (0..POOL).map(pool_id).collect();
        v.extend(self.seen.iter().copied());
        v
    }

    /// The owner of a caseless login key and the kinds it is for them.
    fn login(&self, key: &str) -> Option<(Uuid, u8)> {
        for u in self.users.values() {
            let mut kinds = 0;
            if u.username.as_deref().map(caseless_key).as_deref() == Some(key) {
                kinds |= KIND_USERNAME;
            }
            if u.email.as_deref().map(caseless_key).as_deref() == Some(key) {
                kinds |= KIND_EMAIL;
            }
            if kinds != 0 {
                return Some((u.id, kinds));
            }
        }
        None
    }

    fn validate(
        username: Option<&str>,
        email: Option<&str>,
        external: Option<&str>,
    ) -> Result<Validated, ErrKind> {
        let inv = |e: Error| kind(&e);
        let username = username.map(normalize_username).transpose().map_err(inv)?;
        let email = email.map(normalize_email).transpose().map_err(inv)?;
        let external_id = external
            .map(normalize_external_id)
            .transpose()
            .map_err(inv)?;
        if username.is_none() && email.is_none() {
            return Err(ErrKind::MissingLoginId);
        }
        Ok(Validated {
            username,
            email,
            external_id,
        })
    }

    /// The uniqueness rules, in the order the store checks them.
    fn check_unique(&self, u: &MUser) -> Result<(), ErrKind> {
        let mut keys: Vec<(String, u8)> = Vec::new();
        if let Some(n) = &u.username {
            keys.push((caseless_key(n), KIND_USERNAME));
        }
        if let Some(e) = &u.email {
            let k = caseless_key(e);
            match keys.first_mut() {
                Some((uk, kinds)) if *uk == k => *kinds |= KIND_EMAIL,
                _ => keys.push((k, KIND_EMAIL)),
            }
        }
        for (key, kinds) in &keys {
            if let Some((owner, owner_kinds)) = self.login(key)
                && owner != u.id
            {
                let as_username = kinds & KIND_USERNAME != 0;
                return Err(match (as_username, owner_kinds & KIND_USERNAME != 0) {
                    (true, true) => ErrKind::DuplicateUsername(owner),
                    (true, false) => ErrKind::LoginIdConflict("username", owner),
                    (false, _) if owner_kinds & KIND_EMAIL != 0 => ErrKind::DuplicateEmail(owner),
                    (false, _) => ErrKind::LoginIdConflict("email", owner),
                });
            }
        }
        if let Some(x) = &u.external_id
            && let Some(owner) = self
                .users
                .values()
                .find(|o| o.external_id.as_deref() == Some(x.as_str()))
            && owner.id != u.id
        {
            return Err(ErrKind::DuplicateExternalId(owner.id));
        }
        Ok(())
    }

    fn existing(&self, id: Uuid) -> Result<MUser, ErrKind> {
        self.users.get(&id).cloned().ok_or(ErrKind::NotFound(id))
    }

    /// The raw inputs of an update: the target's current fields with the selected changes.
    pub fn update_inputs(
        &self,
        target: Uuid,
        username: Sel,
        email: Sel,
        external: Sel,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let cur = self.users.get(&target);
        let f = |sel: Sel, alphabet: &[&str], cur: Option<&String>| match sel {
            Sel::Keep => cur.cloned(),
            Sel::Set(i) => Some(pick(alphabet, i).to_owned()),
            Sel::Clear => None,
        };
        (
            f(username, USERNAMES, cur.and_then(|u| u.username.as_ref())),
            f(email, EMAILS, cur.and_then(|u| u.email.as_ref())),
            f(
                external,
                EXTERNALS,
                cur.and_then(|u| u.external_id.as_ref()),
            ),
        )
    }

    pub fn expected_version(&self, target: Uuid, v: Ver) -> Option<u64> {
        let cur = self.users.get(&target).map_or(1, |u| u.version);
        match v {
            Ver::Any => None,
            Ver::Current => Some(cur),
            Ver::Stale => Some(cur + 1),
        }
    }

    /// Applies an operation to the model. `created` is the id the directory gave a user created
    /// without an id (the model cannot guess a random id).
    pub fn apply(&mut self, op: &Op, created: &mut dyn FnMut() -> Option<Uuid>) -> Outcome {
        match op {
            Op::Create {
                id,
                username,
                email,
                external,
                active,
                password,
            } => {
                // A random id: the one the directory chose (known only when it succeeded; one
                // entry per such create, in order).
                let random = if id.is_none() { created() } else { None };
                let v = Self::validate(
                    username.map(|i| pick(USERNAMES, i)),
                    email.map(|i| pick(EMAILS, i)),
                    external.map(|i| pick(EXTERNALS, i)),
                )?;
                let id = match id {
                    Some(i) => pool_id(usize::from(*i) % POOL),
                    None => random.unwrap_or_else(Uuid::nil),
                };
                if self.users.contains_key(&id) {
                    return Err(ErrKind::DuplicateId(id));
                }
                let u = MUser {
                    id,
                    username: v.username,
                    email: v.email,
                    external_id: v.external_id,
                    active: *active,
                    has_password: *password,
                    version: 1,
                    last_name: None,
                };
                self.check_unique(&u)?;
                self.users.insert(id, u.clone());
                if !self.seen.contains(&id) {
                    self.seen.push(id);
                }
                Ok(Val::User(u))
            }
            Op::Update {
                target,
                username,
                email,
                external,
                version,
            } => {
                let id = self.target(*target);
                let (n, e, x) = self.update_inputs(id, *username, *email, *external);
                let expected = self.expected_version(id, *version);
                let v = Self::validate(n.as_deref(), e.as_deref(), x.as_deref())?;
                let old = self.existing(id)?;
                if let Some(exp) = expected
                    && exp != old.version
                {
                    return Err(ErrKind::VersionConflict(exp, old.version));
                }
                // A full replace: the update carries no family name.
                let new = MUser {
                    username: v.username,
                    email: v.email,
                    external_id: v.external_id,
                    version: old.version + 1,
                    last_name: None,
                    ..old
                };
                self.check_unique(&new)?;
                self.users.insert(id, new.clone());
                Ok(Val::User(new))
            }
            Op::Deactivate(t) | Op::Reactivate(t) => {
                let id = self.target(*t);
                let mut u = self.existing(id)?;
                let active = matches!(op, Op::Reactivate(_));
                if u.active != active {
                    u.active = active;
                    u.version += 1;
                    self.users.insert(id, u.clone());
                }
                Ok(Val::User(u))
            }
            Op::Delete(t) => {
                let id = self.target(*t);
                let u = self.existing(id)?;
                self.users.remove(&id);
                Ok(Val::User(u))
            }
            Op::DeactivateMany(ts, unknown) | Op::DeleteMany(ts, unknown) => {
                let ids = self.many_ids(ts, *unknown);
                for id in &ids {
                    self.existing(*id)?;
                }
                let mut n = 0;
                for id in &ids {
                    if matches!(op, Op::DeleteMany(..)) {
                        if self.users.remove(id).is_some() {
                            n += 1;
                        }
                    } else if let Some(u) = self.users.get_mut(id)
                        && u.active
                    {
                        u.active = false;
                        u.version += 1;
                        n += 1;
                    }
                }
                Ok(Val::Count(n))
            }
            Op::Write(a, b, fail) => {
                let mut scratch = self.clone();
                let mut nested = |m: &mut Model, op: &Op| {
                    if op.in_tx() {
                        m.apply(op, created)
                    } else {
                        Ok(Val::Unit)
                    }
                };
                let ra = nested(&mut scratch, a);
                let rb = nested(&mut scratch, b);
                if *fail {
                    Err(ErrKind::Aborted)
                } else {
                    *self = scratch;
                    Ok(Val::Pair(Box::new(ra), Box::new(rb)))
                }
            }
            Op::Reopen => Ok(Val::Unit),
            Op::Import(rows) => self.import(rows, created),
            Op::Patch {
                target,
                steps,
                version,
            } => self.patch(*target, steps, *version),
            Op::Search(spec) => Ok(Val::Pages(self.search(spec))),
        }
    }

    /// The index entries of a user that must be unique, as the store keys them: `id`, the
    /// caseless login keys (one entry when username and email have the same key, named
    /// `username`), the external id. Each with the field a clash on it names.
    fn unique_keys(u: &MUser, with_id: bool) -> Vec<(u8, String, &'static str)> {
        let mut out = Vec::new();
        if with_id {
            out.push((0, u.id.to_string(), "id"));
        }
        let uk = u.username.as_deref().map(caseless_key);
        if let Some(k) = &uk {
            out.push((1, k.clone(), "username"));
        }
        if let Some(e) = &u.email {
            let k = caseless_key(e);
            if uk.as_deref() != Some(k.as_str()) {
                out.push((1, k, "email"));
            }
        }
        if let Some(x) = &u.external_id {
            out.push((2, x.clone(), "external_id"));
        }
        out
    }

    /// The owner of a unique key among the users.
    fn owner_of(&self, ns: u8, key: &str) -> Option<Uuid> {
        match ns {
            0 => Uuid::parse_str(key)
                .ok()
                .filter(|id| self.users.contains_key(id)),
            1 => self.login(key).map(|(id, _)| id),
            _ => self
                .users
                .values()
                .find(|u| u.external_id.as_deref() == Some(key))
                .map(|u| u.id),
        }
    }

    /// An import: every row validated (the rules of create, plus the family name and the
    /// password policy); rows whose identity fields are valid are compared with the earlier
    /// rows (a later row names the first row with the key) and with the existing users; one
    /// problem per (row, field), the first found in that order. Any problem: nothing is
    /// written. Otherwise every row is, with version 1.
    fn import(&mut self, rows: &[Row], created: &mut dyn FnMut() -> Option<Uuid>) -> Outcome {
        let mut problems: Vec<(usize, &'static str, Reason)> = Vec::new();
        let mut valid: Vec<(usize, MUser, bool)> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let v = Self::validate(
                r.username.map(|x| pick(USERNAMES, x)),
                r.email.map(|x| pick(EMAILS, x)),
                r.external.map(|x| pick(EXTERNALS, x)),
            )
            .and_then(|v| {
                let family = r.family.map(|x| pick(FAMILY, x).to_owned());
                if family
                    .as_deref()
                    .is_some_and(|f| f.chars().any(char::is_control))
                {
                    return Err(ErrKind::InvalidField("last_name"));
                }
                Ok((v, family))
            });
            match v {
                Ok((v, last_name)) => valid.push((
                    i,
                    MUser {
                        id: r.id.map_or(Uuid::nil(), |x| pool_id(usize::from(x) % POOL)),
                        username: v.username,
                        email: v.email,
                        external_id: v.external_id,
                        active: r.active,
                        has_password: r.password != Pw::None,
                        version: 1,
                        last_name,
                    },
                    r.id.is_some(),
                )),
                Err(ErrKind::InvalidField(f)) => problems.push((i, f, Reason::Invalid)),
                Err(ErrKind::MissingLoginId) => problems.push((i, "username", Reason::Invalid)),
                Err(other) => return Err(other),
            }
            if r.password == Pw::Weak {
                problems.push((i, "password", Reason::Invalid));
            }
        }
        let mut first: BTreeMap<(u8, String), usize> = BTreeMap::new();
        for (i, u, explicit) in &valid {
            for (ns, key, field) in Self::unique_keys(u, *explicit) {
                match first.get(&(ns, key.clone())) {
                    Some(&j) => problems.push((*i, field, Reason::InBatch(j))),
                    None => {
                        first.insert((ns, key), *i);
                    }
                }
            }
        }
        for (i, u, explicit) in &valid {
            for (ns, key, field) in Self::unique_keys(u, *explicit) {
                if let Some(owner) = self.owner_of(ns, &key) {
                    problems.push((*i, field, Reason::Existing(owner)));
                }
            }
        }
        if !problems.is_empty() {
            let mut seen = BTreeSet::new();
            problems.retain(|(i, f, _)| seen.insert((*i, *f)));
            return Err(ErrKind::Import(problems.into_iter().collect()));
        }
        let mut ids = Vec::new();
        for (_, mut u, explicit) in valid {
            if !explicit {
                u.id = created().unwrap_or_else(Uuid::nil);
            }
            ids.push(u.id);
            if !self.seen.contains(&u.id) {
                self.seen.push(u.id);
            }
            self.users.insert(u.id, u);
        }
        let count = |p: Pw| rows.iter().filter(|r| r.password == p).count();
        Ok(Val::Imported {
            imported: rows.len(),
            hashed: count(Pw::Plain),
            pre_hashed: count(Pw::Hashed),
            ids,
        })
    }

    /// A patch: the steps apply in order to a copy (the first refused step fails the patch),
    /// then the result is validated like an update; a result equal to the user changes nothing
    /// (same version); otherwise the uniqueness rules, then a new version.
    fn patch(&mut self, target: u8, steps: &[PStep], version: Ver) -> Outcome {
        let id = self.live_target(target);
        let expected = self.expected_version(id, version);
        let old = self.existing(id)?;
        if let Some(exp) = expected
            && exp != old.version
        {
            return Err(ErrKind::VersionConflict(exp, old.version));
        }
        let mut new = old.clone();
        for st in steps {
            let refuse = || ErrKind::InvalidPatch(st.path().to_owned());
            let text = match (st.kind, st.value) {
                (PKind::Remove, _) | (_, PVal::Null) => Ok(None),
                (_, PVal::Str(_) | PVal::Obj(_) | PVal::Taken(_)) => Ok(st.text(self, id)),
                (_, PVal::Bool(_)) => Err(refuse()),
            };
            match st.field {
                PField::UserName => new.username = text?,
                PField::Email => new.email = text?,
                PField::ExternalId => new.external_id = text?,
                PField::FamilyName => new.last_name = text?,
                PField::Active => match (st.kind, st.value) {
                    (PKind::Add | PKind::Replace, PVal::Bool(b)) => new.active = b,
                    _ => return Err(refuse()),
                },
                PField::ReadOnly | PField::Unknown => return Err(refuse()),
            }
        }
        let v = Self::validate(
            new.username.as_deref(),
            new.email.as_deref(),
            new.external_id.as_deref(),
        )?;
        if new
            .last_name
            .as_deref()
            .is_some_and(|f| f.chars().any(char::is_control))
        {
            return Err(ErrKind::InvalidField("last_name"));
        }
        new.username = v.username;
        new.email = v.email;
        new.external_id = v.external_id;
        if new == old {
            return Ok(Val::User(old));
        }
        self.check_unique(&new)?;
        new.version = old.version + 1;
        self.users.insert(id, new.clone());
        Ok(Val::User(new))
    }

    /// The pages a search returns: the matches in the model's order, `offset` skipped, pages of
    /// `limit` rows; a cursor comes with a non-empty page when rows remain after it.
    pub fn search(&self, spec: &SearchSpec) -> Vec<PageV> {
        let mut rows: Vec<&MUser> = self
            .users
            .values()
            .filter(|u| spec.filter.as_ref().is_none_or(|f| f.matches(self, u)))
            .collect();
        spec.order(&mut rows);
        let total = rows.len() as u64;
        let limit = usize::from(spec.limit);
        let mut start = usize::from(spec.offset).min(rows.len());
        let mut pages = Vec::new();
        loop {
            let end = (start + limit).min(rows.len());
            let ids: Vec<Uuid> = rows[start..end].iter().map(|u| u.id).collect();
            let next = end < rows.len() && !ids.is_empty();
            pages.push(PageV { total, ids, next });
            if !next || pages.len() >= MAX_PAGES {
                return pages;
            }
            start = end;
        }
    }

    /// The ids a bulk operation names; `unknown` appends an id no user ever has.
    pub fn many_ids(&self, ts: &[u8], unknown: bool) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = ts.iter().map(|t| self.target(*t)).collect();
        if unknown {
            ids.push(Uuid::from_u128(0xdead));
        }
        ids
    }

    pub fn find_username(&self, s: &str) -> Option<&MUser> {
        let k = lookup_key(s);
        self.users
            .values()
            .find(|u| u.username.as_deref().map(caseless_key) == Some(k.clone()))
    }
    pub fn find_email(&self, s: &str) -> Option<&MUser> {
        let k = lookup_key(s);
        self.users
            .values()
            .find(|u| u.email.as_deref().map(caseless_key) == Some(k.clone()))
    }
    pub fn find_login(&self, s: &str) -> Option<&MUser> {
        self.find_username(s).or_else(|| self.find_email(s))
    }
    pub fn find_external(&self, s: &str) -> Option<&MUser> {
        let s = s.trim();
        self.users
            .values()
            .find(|u| u.external_id.as_deref() == Some(s))
    }
    pub fn resolve(&self, s: &str) -> Option<&MUser> {
        if let Ok(id) = Uuid::parse_str(s.trim())
            && let Some(u) = self.users.get(&id)
        {
            return Some(u);
        }
        self.find_username(s)
            .or_else(|| self.find_email(s))
            .or_else(|| self.find_external(s))
    }
}

/// A pre-hashed password for creates that carry one (computed once; no hashing per op).
pub fn prehashed(dir: &Directory) -> StoredHash {
    dir.hash_password("model test password")
        .expect("hashing with test parameters")
}

fn new_user(
    id: Option<u8>,
    username: Option<u8>,
    email: Option<u8>,
    external: Option<u8>,
    active: bool,
    password: Option<&StoredHash>,
) -> NewUser {
    let mut n = NewUser {
        active,
        ..NewUser::default()
    };
    n.id = id.map(|i| pool_id(usize::from(i) % POOL));
    n.profile.username = username.map(|i| pick(USERNAMES, i).to_owned());
    n.profile.email = email.map(|i| pick(EMAILS, i).to_owned());
    n.profile.external_id = external.map(|i| pick(EXTERNALS, i).to_owned());
    if let Some(h) = password {
        n = n.password_hash(h.clone());
    }
    n
}

fn update_of(model: &Model, id: Uuid, username: Sel, email: Sel, external: Sel) -> UserUpdate {
    let (n, e, x) = model.update_inputs(id, username, email, external);
    UserUpdate {
        profile: Profile {
            username: n,
            email: e,
            external_id: x,
            ..Profile::default()
        },
        password: None,
    }
}

/// Runs `op` on the directory through its public single-operation methods (or `write` for
/// `Op::Write`). `model` is the state *before* the operation (targets are resolved with it).
pub fn run(dir: &Directory, model: &Model, op: &Op, hash: &StoredHash) -> Outcome {
    match op {
        Op::Create {
            id,
            username,
            email,
            external,
            active,
            password,
        } => outcome_user(dir.create(new_user(
            *id,
            *username,
            *email,
            *external,
            *active,
            password.then_some(hash),
        ))),
        Op::Update {
            target,
            username,
            email,
            external,
            version,
        } => {
            let id = model.target(*target);
            let up = update_of(model, id, *username, *email, *external);
            outcome_user(dir.update(id, up, model.expected_version(id, *version)))
        }
        Op::Deactivate(t) => outcome_user(dir.deactivate(model.target(*t))),
        Op::Reactivate(t) => outcome_user(dir.reactivate(model.target(*t))),
        Op::Delete(t) => outcome_user(dir.delete(model.target(*t))),
        Op::DeactivateMany(ts, unknown) => dir
            .deactivate_many(&model.many_ids(ts, *unknown))
            .map(Val::Count)
            .map_err(|e| kind(&e)),
        Op::DeleteMany(ts, unknown) => dir
            .delete_many(&model.many_ids(ts, *unknown))
            .map(Val::Count)
            .map_err(|e| kind(&e)),
        Op::Write(a, b, fail) => {
            let mut results = (None, None);
            let r = dir.write(|tx| {
                // Targets inside the transaction are resolved against the model as it evolves.
                let mut scratch = model.clone();
                let ra = run_tx(tx, dir, &scratch, a, hash);
                learn(&mut scratch, a, &ra);
                let rb = run_tx(tx, dir, &scratch, b, hash);
                results = (Some(ra), Some(rb));
                if *fail { Err(abort_error()) } else { Ok(()) }
            });
            match r {
                Ok(()) => Ok(Val::Pair(
                    Box::new(results.0.expect("ran")),
                    Box::new(results.1.expect("ran")),
                )),
                Err(e) => Err(kind(&e)),
            }
        }
        Op::Reopen => Ok(Val::Unit),
        Op::Import(rows) => run_import(dir, rows, hash),
        Op::Patch {
            target,
            steps,
            version,
        } => {
            let id = model.live_target(*target);
            let ops: Vec<PatchOp> = steps.iter().map(|s| s.to_patch_op(model, id)).collect();
            outcome_user(dir.patch(id, &ops, model.expected_version(id, *version)))
        }
        Op::Search(spec) => run_search(dir, model, spec),
    }
}

fn import_row(r: &Row, hash: &StoredHash) -> NewUser {
    let mut n = new_user(r.id, r.username, r.email, r.external, r.active, None);
    n.profile.last_name = r.family.map(|i| pick(FAMILY, i).to_owned());
    match r.password {
        Pw::None => n,
        Pw::Hashed => n.password_hash(hash.clone()),
        Pw::Plain => n.password(PLAIN_PASSWORD),
        Pw::Weak => n.password(WEAK_PASSWORD),
    }
}

/// `dir.import`; on success the ids of the rows, those with random ids found by their login
/// id (nil when not found, which the comparison with the model then shows).
pub fn run_import(dir: &Directory, rows: &[Row], hash: &StoredHash) -> Outcome {
    let batch = ImportBatch::new(rows.iter().map(|r| import_row(r, hash)).collect());
    let summary = dir.import(batch).map_err(|e| kind(&e))?;
    let mut ids = Vec::with_capacity(rows.len());
    for r in rows {
        let id = match r.id {
            Some(i) => pool_id(usize::from(i) % POOL),
            None => {
                let login = r
                    .username
                    .map(|i| pick(USERNAMES, i))
                    .or_else(|| r.email.map(|i| pick(EMAILS, i)))
                    .unwrap_or_default();
                dir.find_by_login_id(login)
                    .map_err(|e| kind(&e))?
                    .map_or(Uuid::nil(), |u| u.id)
            }
        };
        ids.push(id);
    }
    Ok(Val::Imported {
        imported: summary.imported,
        hashed: summary.hashed,
        pre_hashed: summary.pre_hashed,
        ids,
    })
}

/// `dir.search`, then the following pages through their cursors.
pub fn run_search(dir: &Directory, model: &Model, spec: &SearchSpec) -> Outcome {
    let mut search = spec.to_search(model).map_err(|e| kind(&e))?;
    let mut pages = Vec::new();
    loop {
        let page = dir.search(&search).map_err(|e| kind(&e))?;
        pages.push(PageV {
            total: page.total,
            ids: page.users.iter().map(|u| u.id).collect(),
            next: page.next.is_some(),
        });
        match page.next_search() {
            Some(next) if pages.len() < MAX_PAGES => search = next,
            _ => return Ok(Val::Pages(pages)),
        }
    }
}

/// Applies to `model` what the directory did, so that the next operation inside a transaction
/// resolves targets as the directory sees them.
fn learn(model: &mut Model, op: &Op, r: &Outcome) {
    if !op.in_tx() {
        return;
    }
    let mut id = match r {
        Ok(Val::User(u)) => Some(u.id),
        _ => None,
    };
    let mut created = || id.take();
    let _ = model.apply(op, &mut created);
}

/// One operation inside a `write` transaction.
fn run_tx(
    tx: &mut Tx<'_, '_>,
    dir: &Directory,
    model: &Model,
    op: &Op,
    hash: &StoredHash,
) -> Outcome {
    match op {
        Op::Create {
            id,
            username,
            email,
            external,
            active,
            password,
        } => {
            let new = new_user(
                *id,
                *username,
                *email,
                *external,
                *active,
                password.then_some(hash),
            );
            match dir.prepare(new) {
                Ok(p) => outcome_user(tx.create(p)),
                Err(e) => Err(kind(&e)),
            }
        }
        Op::Update {
            target,
            username,
            email,
            external,
            version,
        } => {
            let id = model.target(*target);
            let up = update_of(model, id, *username, *email, *external);
            match dir.prepare_update(up) {
                Ok(p) => outcome_user(tx.update(id, p, model.expected_version(id, *version))),
                Err(e) => Err(kind(&e)),
            }
        }
        Op::Deactivate(t) => outcome_user(tx.deactivate(model.target(*t))),
        Op::Reactivate(t) => outcome_user(tx.reactivate(model.target(*t))),
        Op::Delete(t) => outcome_user(tx.delete(model.target(*t))),
        Op::DeactivateMany(ts, unknown) => tx
            .deactivate_many(&model.many_ids(ts, *unknown))
            .map(Val::Count)
            .map_err(|e| kind(&e)),
        Op::DeleteMany(ts, unknown) => tx
            .delete_many(&model.many_ids(ts, *unknown))
            .map(Val::Count)
            .map_err(|e| kind(&e)),
        Op::Patch {
            target,
            steps,
            version,
        } => {
            let id = model.live_target(*target);
            let ops: Vec<PatchOp> = steps.iter().map(|s| s.to_patch_op(model, id)).collect();
            outcome_user(tx.patch(id, &ops, model.expected_version(id, *version)))
        }
        // Not in a transaction (see `Op::in_tx`).
        Op::Write(..) | Op::Reopen | Op::Import(_) | Op::Search(_) => Ok(Val::Unit),
    }
}

/// The ids of users the directory created with random ids in `r` (in order), so that the model
/// can adopt them.
pub fn created_ids(op: &Op, r: &Outcome) -> Vec<Option<Uuid>> {
    let mut out = Vec::new();
    match (op, r) {
        (Op::Create { id: None, .. }, Ok(Val::User(u))) => out.push(Some(u.id)),
        (Op::Create { id: None, .. }, Err(_)) => out.push(None),
        (Op::Write(a, b, _), Ok(Val::Pair(ra, rb))) => {
            out.extend(created_ids(a, ra));
            out.extend(created_ids(b, rb));
        }
        (Op::Import(rows), Ok(Val::Imported { ids, .. })) => {
            for (r, id) in rows.iter().zip(ids) {
                if r.id.is_none() {
                    out.push(Some(*id));
                }
            }
        }
        _ => {}
    }
    out
}

/// Applies `op` to the model and checks the directory returned the same outcome. Returns a
/// description of the difference, if any.
pub fn apply_and_compare(model: &mut Model, op: &Op, actual: &Outcome) -> Result<(), String> {
    let filter = match op {
        Op::Search(spec) => spec.filter.as_ref().map(|f| f.to_scim(model)),
        _ => None,
    };
    let ids = created_ids(op, actual);
    let mut it = ids.into_iter();
    let mut created = || it.next().flatten();
    let expected = model.apply(op, &mut created);
    if expected != *actual && !email_element_reshaped(model, op, &expected, actual) {
        return Err(format!(
            "outcome differs for {op:?} (filter {filter:?}):\n  directory: {actual:?}\n  model:     {expected:?}"
        ));
    }
    Ok(())
}

/// The one difference the model cannot predict, adopted from the directory: a patch whose
/// steps touch the login email and leave its value as it was may still change the record,
/// because the model keeps the email's value but not its element's `type` and `primary`. An
/// element made by setting `email` is `{type: "work", primary: true}`; removing it and
/// creating it again through the path `emails.value` gives a bare `{value}` (RFC 7644: a new
/// element), so the directory writes a new version where the model saw no change. Accepted
/// only when every field the model keeps is equal and the version is the next one; the
/// model takes that version, so later conditional writes stay in step.
fn email_element_reshaped(
    model: &mut Model,
    op: &Op,
    expected: &Outcome,
    actual: &Outcome,
) -> bool {
    let Op::Patch { steps, .. } = op else {
        return false;
    };
    if !steps.iter().any(|s| s.field == PField::Email) {
        return false;
    }
    let (Ok(Val::User(m)), Ok(Val::User(a))) = (expected, actual) else {
        return false;
    };
    let same_fields = MUser {
        version: m.version,
        ..a.clone()
    } == *m;
    if !same_fields || a.version != m.version + 1 {
        return false;
    }
    match model.users.get_mut(&m.id) {
        Some(u) if u.version == m.version => {
            u.version = a.version;
            true
        }
        _ => false,
    }
}

type Check<'a> = (
    &'static str,
    userdir::Result<Option<User>>,
    Option<&'a MUser>,
);

/// Compares every lookup of the sample and the count with the model, and checks integrity.
pub fn compare(dir: &Directory, model: &Model) -> Result<(), String> {
    let m = |r: userdir::Result<Option<User>>| -> Result<Option<MUser>, String> {
        r.map(|o| o.map(|u| MUser::of(&u)))
            .map_err(|e| format!("lookup failed: {e}"))
    };
    let count = dir.count().map_err(|e| format!("count failed: {e}"))?;
    if count != model.users.len() as u64 {
        return Err(format!(
            "count: directory {count}, model {}",
            model.users.len()
        ));
    }
    for id in model.known_ids() {
        let got = m(dir.get(id))?;
        if got.as_ref() != model.users.get(&id) {
            return Err(format!(
                "get({id}): directory {got:?}, model {:?}",
                model.users.get(&id)
            ));
        }
        let got = m(dir.resolve(&id.to_string()))?;
        if got.as_ref() != model.resolve(&id.to_string()) {
            return Err(format!("resolve({id}): directory {got:?}"));
        }
    }
    // The model's login keys, computed once (the same answers as `find_username`,
    // `find_email`, `find_login` and `resolve`, without folding every user's names per lookup).
    let mut logins: BTreeMap<String, (&MUser, u8)> = BTreeMap::new();
    for u in model.users.values() {
        for (v, kind) in [(&u.username, KIND_USERNAME), (&u.email, KIND_EMAIL)] {
            if let Some(v) = v {
                logins.entry(caseless_key(v)).or_insert((u, 0)).1 |= kind;
            }
        }
    }
    for s in USERNAMES.iter().chain(EMAILS) {
        let entry = logins.get(&lookup_key(s));
        let by = |kind: u8| entry.filter(|(_, k)| k & kind != 0).map(|(u, _)| *u);
        let login = entry.map(|(u, _)| *u);
        let resolved = Uuid::parse_str(s.trim())
            .ok()
            .and_then(|id| model.users.get(&id))
            .or(login)
            .or_else(|| model.find_external(s));
        let checks: [Check<'_>; 4] = [
            ("username", dir.find_by_username(s), by(KIND_USERNAME)),
            ("email", dir.find_by_email(s), by(KIND_EMAIL)),
            ("login id", dir.find_by_login_id(s), login),
            ("resolve", dir.resolve(s), resolved),
        ];
        for (what, got, want) in checks {
            let got = m(got)?;
            if got.as_ref() != want {
                return Err(format!(
                    "find by {what} {s:?}: directory {got:?}, model {want:?}"
                ));
            }
        }
    }
    for s in EXTERNALS {
        let got = m(dir.find_by_external_id(s))?;
        if got.as_ref() != model.find_external(s) {
            return Err(format!(
                "find by external id {s:?}: directory {got:?}, model {:?}",
                model.find_external(s)
            ));
        }
    }
    dir.check_integrity()
        .map_err(|e| format!("check_integrity: {e}"))?;
    Ok(())
}

fn cmp(attr: MAttr, op: MOp, lit: u8, cut: Cut) -> MFilter {
    MFilter::Cmp {
        attr,
        name: 0,
        op,
        lit,
        live: false,
        cut,
    }
}

/// The searches [`compare_searches`] runs after every step of a [`Harness`]: one of each kind
/// of index access and a scan, sorted pages walked by cursor.
pub fn battery() -> Vec<SearchSpec> {
    let spec = |filter: Option<MFilter>, sort: SortBy, desc: bool, limit: u8| SearchSpec {
        filter,
        sort,
        desc,
        missing_first: false,
        limit,
        offset: 0,
    };
    vec![
        // userName sw "b": a prefix range over the caseless keys.
        spec(
            Some(cmp(MAttr::UserName, MOp::Sw, 0, Cut::Prefix(1))),
            SortBy::UserName,
            false,
            2,
        ),
        // userName eq "STRASSE": the login index.
        spec(
            Some(cmp(MAttr::UserName, MOp::Eq, 4, Cut::Whole)),
            SortBy::Id,
            false,
            5,
        ),
        // emails.value eq "ANN@Example.COM".
        spec(
            Some(cmp(MAttr::Email, MOp::Eq, 1, Cut::Whole)),
            SortBy::Id,
            false,
            5,
        ),
        // active eq false: a scan.
        spec(Some(MFilter::Active(false)), SortBy::Email, true, 3),
        // externalId pr.
        spec(
            Some(MFilter::Pr(MAttr::ExternalId, 0)),
            SortBy::UserName,
            true,
            2,
        ),
        // userName eq "kelvin" or emails.value ew ".de": a union.
        spec(
            Some(MFilter::Or(
                Box::new(cmp(MAttr::UserName, MOp::Eq, 7, Cut::Whole)),
                Box::new(cmp(MAttr::Email, MOp::Ew, 5, Cut::Suffix(3))),
            )),
            SortBy::Id,
            false,
            4,
        ),
        // name.familyName eq "Smith" or not (userName pr).
        spec(
            Some(MFilter::Or(
                Box::new(cmp(MAttr::FamilyName, MOp::Eq, 0, Cut::Whole)),
                Box::new(MFilter::Not(Box::new(MFilter::Pr(MAttr::UserName, 0)))),
            )),
            SortBy::Id,
            false,
            4,
        ),
        // Every user by username, missing first, from the second.
        SearchSpec {
            filter: None,
            sort: SortBy::UserName,
            desc: false,
            missing_first: true,
            limit: 3,
            offset: 1,
        },
    ]
}

/// Runs the [`battery`] of searches on the directory and on the model.
pub fn compare_searches(dir: &Directory, model: &Model) -> Result<(), String> {
    for spec in battery() {
        let got = run_search(dir, model, &spec);
        let want = Ok(Val::Pages(model.search(&spec)));
        if got != want {
            let filter = spec.filter.as_ref().map(|f| f.to_scim(model));
            return Err(format!(
                "search {filter:?} ({spec:?}):\n  directory: {got:?}\n  model:     {want:?}"
            ));
        }
    }
    Ok(())
}

/// A tiny deterministic PRNG (splitmix64) for the crash and stress tests.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Decodes operations from bytes (the fuzz input, or a PRNG's output): each op takes a tag byte
/// and a few argument bytes; missing bytes read as zero. Only the operations the crash tests
/// replay: creates, updates, (bulk) deactivations and deletions, `write` transactions, reopen;
/// see [`all_ops_from_bytes`] for imports, patches and searches too.
pub fn ops_from_bytes(data: &[u8], allow_reopen: bool) -> Vec<Op> {
    decode(data, allow_reopen, false)
}

/// As [`ops_from_bytes`], plus imports, patches and searches (the `ops` fuzz target): a tag
/// whose low four bits are 15 selects, by its bits 4-5, an import (0), a patch (1), a search
/// (2), or reopen (3; a search when reopening is not allowed). Inside a `write`, each of them
/// is a patch. Layouts (each field one byte):
///
/// * import: `n`, then `n % 5` rows of `flags [id] username [email] [external] [family]`:
///   flags bit 0 gives an id, bits 1, 2, 3 an email, external id, family name; bit 4 makes
///   the row inactive; bits 5-6 pick the password (none, pre-hashed, plaintext, too short);
///   a username byte with bit 7 set means none;
/// * patch: `target n`, then `n % 4` steps of `a v`: kind `a % 3` (add, replace, remove),
///   field `a / 3 % 7` (userName, email, externalId, active, name.familyName, a read-only
///   path, an unknown one), path spelling `a / 21`; value `v % 8`: 0-2 a string, 3 an existing user's value, 4 the same
///   as `{"value": ...}`, 5 null, 6 true, 7 false, of alphabet entry `v / 8`; the expected
///   version by `n / 4 % 4` as for updates;
/// * search: `s b` then a filter when `s & 16 == 0`: sort `s % 3` (id, userName, email),
///   `s & 4` descending, `s & 8` missing first; limit `b % 6`, offset `b / 6 % 4`. A filter
///   is `f`, then by `f % 8`: 0-3 a comparison `lit cut` on attribute `f / 8 % 4` (userName,
///   emails, externalId, name.familyName) with operator `f / 32 % 5` (eq ne sw ew co), a
///   literal from entry `lit`, cut by `cut % 4` (0-1 whole, 2 prefix, 3 suffix of `cut / 4`
///   characters); 4 `pr`; 5 `active eq` (`f & 8`); 6 `and`/`or` (`f & 8`) and 7 `not` of
///   filters that follow (three levels deep at most).
pub fn all_ops_from_bytes(data: &[u8], allow_reopen: bool) -> Vec<Op> {
    decode(data, allow_reopen, true)
}

fn decode(data: &[u8], allow_reopen: bool, extended: bool) -> Vec<Op> {
    let mut r = Bytes {
        data,
        pos: 0,
        extended,
    };
    let mut ops = Vec::new();
    while r.pos < data.len() && ops.len() < 64 {
        ops.push(r.op(allow_reopen, true));
    }
    ops
}

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
    extended: bool,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn opt(&mut self) -> Option<u8> {
        let b = self.u8();
        if b & 0x80 != 0 { None } else { Some(b) }
    }
    fn sel(&mut self) -> Sel {
        let b = self.u8();
        match b % 4 {
            0 | 1 => Sel::Keep,
            2 => Sel::Set(b / 4),
            _ => Sel::Clear,
        }
    }
    fn op(&mut self, allow_reopen: bool, allow_write: bool) -> Op {
        let tag = self.u8();
        match tag % 16 {
            0..=4 => {
                let flags = self.u8();
                Op::Create {
                    id: (flags & 1 != 0).then_some(flags >> 4),
                    username: self.opt(),
                    email: if flags & 2 != 0 {
                        Some(self.u8())
                    } else {
                        None
                    },
                    external: if flags & 4 != 0 {
                        Some(self.u8())
                    } else {
                        None
                    },
                    active: flags & 8 == 0,
                    password: tag & 0x80 != 0,
                }
            }
            5..=7 => Op::Update {
                target: self.u8(),
                username: self.sel(),
                email: self.sel(),
                external: self.sel(),
                version: match self.u8() % 4 {
                    0 | 1 => Ver::Any,
                    2 => Ver::Current,
                    _ => Ver::Stale,
                },
            },
            8 => Op::Deactivate(self.u8()),
            9 => Op::Reactivate(self.u8()),
            10 => Op::Delete(self.u8()),
            11 | 12 => {
                let n = self.u8();
                let ts = (0..(n % 4)).map(|_| self.u8()).collect();
                if tag % 16 == 11 {
                    Op::DeactivateMany(ts, n & 0x80 != 0)
                } else {
                    Op::DeleteMany(ts, n & 0x80 != 0)
                }
            }
            13 | 14 if allow_write => {
                let a = self.op(false, false);
                let b = self.op(false, false);
                Op::Write(Box::new(a), Box::new(b), tag % 16 == 13)
            }
            15 if self.extended => match (tag >> 4) % 4 {
                _ if !allow_write => self.patch(),
                0 => self.import(),
                1 => self.patch(),
                3 if allow_reopen => Op::Reopen,
                _ => Op::Search(self.search()),
            },
            15 if allow_reopen => Op::Reopen,
            _ => Op::Deactivate(self.u8()),
        }
    }

    fn import(&mut self) -> Op {
        let n = self.u8() % 5;
        let rows = (0..n)
            .map(|_| {
                let flags = self.u8();
                let id = (flags & 1 != 0).then(|| self.u8());
                let username = self.opt();
                let mut field = |bit: u8| (flags & bit != 0).then(|| self.u8());
                let (email, external, family) = (field(2), field(4), field(8));
                Row {
                    id,
                    username,
                    email,
                    external,
                    family,
                    active: flags & 16 == 0,
                    password: match (flags >> 5) & 3 {
                        0 => Pw::None,
                        1 => Pw::Hashed,
                        2 => Pw::Plain,
                        _ => Pw::Weak,
                    },
                }
            })
            .collect();
        Op::Import(rows)
    }

    fn patch(&mut self) -> Op {
        let target = self.u8();
        let n = self.u8();
        let steps = (0..n % 4)
            .map(|_| {
                let a = self.u8();
                let v = self.u8();
                PStep {
                    kind: match a % 3 {
                        0 => PKind::Add,
                        1 => PKind::Replace,
                        _ => PKind::Remove,
                    },
                    field: match a / 3 % 7 {
                        0 => PField::UserName,
                        1 => PField::Email,
                        2 => PField::ExternalId,
                        3 => PField::Active,
                        4 => PField::FamilyName,
                        5 => PField::ReadOnly,
                        _ => PField::Unknown,
                    },
                    path: a / 21,
                    value: match v % 8 {
                        0..=2 => PVal::Str(v / 8),
                        3 => PVal::Taken(v / 8),
                        4 => PVal::Obj(v / 8),
                        5 => PVal::Null,
                        6 => PVal::Bool(true),
                        _ => PVal::Bool(false),
                    },
                }
            })
            .collect();
        Op::Patch {
            target,
            steps,
            version: match n / 4 % 4 {
                0 | 1 => Ver::Any,
                2 => Ver::Current,
                _ => Ver::Stale,
            },
        }
    }

    fn search(&mut self) -> SearchSpec {
        let s = self.u8();
        let b = self.u8();
        SearchSpec {
            filter: (s & 16 == 0).then(|| self.filter(0)),
            sort: match s % 3 {
                0 => SortBy::Id,
                1 => SortBy::UserName,
                _ => SortBy::Email,
            },
            desc: s & 4 != 0,
            missing_first: s & 8 != 0,
            limit: b % 6,
            offset: b / 6 % 4,
        }
    }

    fn filter(&mut self, depth: u8) -> MFilter {
        let f = self.u8();
        let attr = match f / 8 % 4 {
            0 => MAttr::UserName,
            1 => MAttr::Email,
            2 => MAttr::ExternalId,
            _ => MAttr::FamilyName,
        };
        match f % 8 {
            0..=3 => {
                let lit = self.u8();
                let cut = self.u8();
                MFilter::Cmp {
                    attr,
                    name: lit / 32,
                    op: match f / 32 % 5 {
                        0 => MOp::Eq,
                        1 => MOp::Ne,
                        2 => MOp::Sw,
                        3 => MOp::Ew,
                        _ => MOp::Co,
                    },
                    lit,
                    live: f & 64 != 0 && f & 128 != 0,
                    cut: match cut % 4 {
                        0 | 1 => Cut::Whole,
                        2 => Cut::Prefix(cut / 4),
                        _ => Cut::Suffix(cut / 4),
                    },
                }
            }
            5 => MFilter::Active(f & 8 != 0),
            6 if depth < 3 => {
                let a = Box::new(self.filter(depth + 1));
                let b = Box::new(self.filter(depth + 1));
                if f & 8 != 0 {
                    MFilter::Or(a, b)
                } else {
                    MFilter::And(a, b)
                }
            }
            7 if depth < 3 => MFilter::Not(Box::new(self.filter(depth + 1))),
            _ => MFilter::Pr(attr, f / 32),
        }
    }
}

/// A directory under test, in memory or on a file (then `Op::Reopen` closes and reopens it).
pub struct Harness {
    pub dir: Option<Directory>,
    pub path: Option<std::path::PathBuf>,
    /// A PostgreSQL directory: (URL, schema); `Op::Reopen` closes and reopens it.
    pub postgres: Option<(String, String)>,
    pub durability: userdir::Durability,
    pub model: Model,
    pub hash: StoredHash,
}

impl Harness {
    fn builder(durability: userdir::Durability) -> userdir::Builder {
        Directory::builder()
            .hasher(userdir::Argon2Params::insecure_fast())
            .clock(userdir::ManualClock::new(1_700_000_000_000))
            .durability(durability)
    }

    pub fn in_memory() -> Harness {
        let dir = Self::builder(userdir::Durability::Immediate)
            .in_memory()
            .expect("in-memory directory");
        Harness::with(dir, None, userdir::Durability::Immediate)
    }

    /// A directory in a fresh schema of the PostgreSQL database at `url` (feature `postgres`).
    #[cfg(feature = "postgres")]
    pub fn on_postgres(url: &str) -> Harness {
        let schema = format!("m_{}", Uuid::new_v4().simple());
        let dir = Self::builder(userdir::Durability::Immediate)
            .postgres_schema(schema.clone())
            .postgres_pool(1)
            .open_postgres(url)
            .expect("PostgreSQL directory");
        let mut h = Harness::with(dir, None, userdir::Durability::Immediate);
        h.postgres = Some((url.to_string(), schema));
        h
    }

    pub fn on_file(path: std::path::PathBuf, durability: userdir::Durability) -> Harness {
        let dir = Self::builder(durability)
            .open(&path)
            .expect("directory file");
        Harness::with(dir, Some(path), durability)
    }

    fn with(
        dir: Directory,
        path: Option<std::path::PathBuf>,
        durability: userdir::Durability,
    ) -> Harness {
        let hash = prehashed(&dir);
        Harness {
            dir: Some(dir),
            path,
            postgres: None,
            durability,
            model: Model::default(),
            hash,
        }
    }

    pub fn dir(&self) -> &Directory {
        self.dir.as_ref().expect("open directory")
    }

    /// Runs one operation on both sides and compares outcome and state.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        self.step_outcome(op).map(drop)
    }

    /// As [`Harness::step`], and returns the outcome (the same on both sides).
    pub fn step_outcome(&mut self, op: &Op) -> Result<Outcome, String> {
        if let (Op::Reopen, Some(path)) = (op, &self.path) {
            drop(self.dir.take());
            self.dir = Some(
                Self::builder(self.durability)
                    .open(path)
                    .map_err(|e| format!("reopen failed: {e}"))?,
            );
        }
        #[cfg(feature = "postgres")]
        if let (Op::Reopen, Some((url, schema))) = (op, &self.postgres) {
            drop(self.dir.take());
            self.dir = Some(
                Self::builder(self.durability)
                    .postgres_schema(schema.clone())
                    .postgres_pool(1)
                    .open_postgres(url)
                    .map_err(|e| format!("reopen failed: {e}"))?,
            );
        }
        let actual = run(self.dir(), &self.model, op, &self.hash);
        apply_and_compare(&mut self.model, op, &actual)?;
        compare(self.dir(), &self.model)?;
        compare_searches(self.dir(), &self.model)?;
        Ok(actual)
    }
}
