//! A plain in-memory reference model of a userdir directory, the operations the model tests,
//! fuzz targets and crash tests drive, and the comparison of a real directory with the model.
//!
//! The model knows nothing of redb: a `BTreeMap` of users plus the identity rules, computed with
//! `userdir::identity` (normalization and `caseless_key`). Every operation is applied to both the
//! directory and the model; the outcome (`Ok` value or error variant, including the ids the error
//! names) must be the same, and so must every lookup afterwards.

#![allow(dead_code)]

use std::collections::BTreeMap;

use userdir::identity::normalize_username;
use userdir::identity::{caseless_key, lookup_key, normalize_email, normalize_external_id};
use userdir::{Directory, Error, NewUser, Profile, StoredHash, Tx, User, UserUpdate};
use uuid::Uuid;

/// Raw usernames: a small alphabet so that collisions are frequent. Groups of caselessly equal
/// names: bob; strasse; kelvin; admin (fullwidth); café (composed/decomposed); a username that is
/// an email; Turkish dotted I (which is NOT equal to `istanbul`); and invalid values.
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
];

/// Raw emails. Groups: ann; bob (also a username above); straße/strasse (different stored
/// forms, same caseless key); Kelvin sign; invalid values.
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
];

/// Raw external ids (compared exactly after trimming).
pub const EXTERNALS: &[&str] = &["ext-1", "EXT-1", " ext-1 ", "ext-2", ""];

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
        Error::Corrupt(m) if m == ABORT => ErrKind::Aborted,
        Error::Storage(_) => ErrKind::Storage,
        Error::NeedsReopen => ErrKind::NeedsReopen,
        other => ErrKind::Other(other.to_string()),
    }
}

/// The value an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    User(MUser),
    Count(usize),
    Pair(Box<Outcome>, Box<Outcome>),
    Unit,
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
                let new = MUser {
                    username: v.username,
                    email: v.email,
                    external_id: v.external_id,
                    version: old.version + 1,
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
                let ra = scratch.apply(a, created);
                let rb = scratch.apply(b, created);
                if *fail {
                    Err(ErrKind::Aborted)
                } else {
                    *self = scratch;
                    Ok(Val::Pair(Box::new(ra), Box::new(rb)))
                }
            }
            Op::Reopen => Ok(Val::Unit),
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
    }
}

/// Applies to `model` what the directory did, so that the next operation inside a transaction
/// resolves targets as the directory sees them.
fn learn(model: &mut Model, op: &Op, r: &Outcome) {
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
        // Not nested.
        Op::Write(..) | Op::Reopen => Ok(Val::Unit),
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
        _ => {}
    }
    out
}

/// Applies `op` to the model and checks the directory returned the same outcome. Returns a
/// description of the difference, if any.
pub fn apply_and_compare(model: &mut Model, op: &Op, actual: &Outcome) -> Result<(), String> {
    let ids = created_ids(op, actual);
    let mut it = ids.into_iter();
    let mut created = || it.next().flatten();
    let expected = model.apply(op, &mut created);
    if expected != *actual {
        return Err(format!(
            "outcome differs for {op:?}:\n  directory: {actual:?}\n  model:     {expected:?}"
        ));
    }
    Ok(())
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
    for s in USERNAMES.iter().chain(EMAILS) {
        let checks: [Check<'_>; 4] = [
            ("username", dir.find_by_username(s), model.find_username(s)),
            ("email", dir.find_by_email(s), model.find_email(s)),
            ("login id", dir.find_by_login_id(s), model.find_login(s)),
            ("resolve", dir.resolve(s), model.resolve(s)),
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
/// and a few argument bytes; missing bytes read as zero.
pub fn ops_from_bytes(data: &[u8], allow_reopen: bool) -> Vec<Op> {
    let mut r = Bytes { data, pos: 0 };
    let mut ops = Vec::new();
    while r.pos < data.len() && ops.len() < 64 {
        ops.push(r.op(allow_reopen, true));
    }
    ops
}

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
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
            15 if allow_reopen => Op::Reopen,
            _ => Op::Deactivate(self.u8()),
        }
    }
}

/// A directory under test, in memory or on a file (then `Op::Reopen` closes and reopens it).
pub struct Harness {
    pub dir: Option<Directory>,
    pub path: Option<std::path::PathBuf>,
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
        if let (Op::Reopen, Some(path)) = (op, &self.path) {
            drop(self.dir.take());
            self.dir = Some(
                Self::builder(self.durability)
                    .open(path)
                    .map_err(|e| format!("reopen failed: {e}"))?,
            );
        }
        let actual = run(self.dir(), &self.model, op, &self.hash);
        apply_and_compare(&mut self.model, op, &actual)?;
        compare(self.dir(), &self.model)
    }
}
