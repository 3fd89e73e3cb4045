//! Bulk insertion of many new users in one write transaction (import).
//!
//! The work that needs no transaction happens before it, on all cores, row by row while the
//! rows are validated: each user's id claim, which carries its encoded record, and its index
//! entries are copied into the byte arena of a [`BatchPart`]; the user itself can be dropped
//! right after. [`BatchKeys`] then sorts every entry of the batch by key (all cores). Sorting
//! finds the duplicates inside the batch (equal adjacent keys).
//!
//! The write transaction then only inserts, in key order, into the one directory tree, through
//! a redb cursor: ascending inserts into one gap are buffered and spliced in as packed leaves,
//! one parent update per megabyte, instead of one descent from the root and one in-place leaf
//! shift per entry. An existing entry of another user (possibly deactivated) inside the run
//! stops it: the cursor is moved past that entry, and an entry with the very same key is a
//! clash. Any clash marks the transaction broken, so it can never commit.

use std::ops::Bound;
use std::sync::mpsc;

use rayon::prelude::*;
use uuid::Uuid;

use super::tables::{
    self, TAG_EXTERNAL, TAG_INSERTED, TAG_LOGIN, TAG_ROLE, TAG_SKELETON, TAG_USER,
};
use super::{Counts, Reader, Writer, codec, storage, wal};
use crate::error::{Error, Result};
use crate::store::{Clash, ClashWith, LoginOwner, UserKeys};
use crate::user::User;

/// One entry: its key and then its value live in arena `chunk` at `off`. `prefix` holds the
/// first 16 bytes of the key's unique part (zero padded, big-endian), so that most comparisons
/// of the sort never touch the arena.
#[derive(Clone, Copy)]
struct Entry {
    prefix: (u64, u64),
    chunk: u32,
    off: u32,
    klen: u32,
    vlen: u32,
    row: u32,
}

fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::invalid("import", "a key or record is too large"))
}

fn prefix_of(unique: &[u8]) -> (u64, u64) {
    let mut b = [0u8; 16];
    let n = unique.len().min(16);
    if let (Some(dst), Some(src)) = (b.get_mut(..n), unique.get(..n)) {
        dst.copy_from_slice(src);
    }
    let (hi, lo) = b.split_at(8);
    (
        u64::from_be_bytes(hi.try_into().unwrap_or_default()),
        u64::from_be_bytes(lo.try_into().unwrap_or_default()),
    )
}

/// The part of a key that must be unique: the whole key, or for a skeleton entry the
/// skeleton without the id.
fn unique_part(key: &[u8]) -> Option<&[u8]> {
    match key.first() {
        Some(&(TAG_USER | TAG_LOGIN | TAG_EXTERNAL)) => Some(key),
        Some(&TAG_SKELETON) => key.get(..key.len().saturating_sub(16)),
        _ => None,
    }
}

/// The entries of some rows of a batch, built on one thread: for each user its id claim (key
/// `U` id, value the encoded record, or nothing yet while its password waits to be hashed)
/// and its index entries, all in one byte arena.
#[derive(Default)]
pub(crate) struct BatchPart {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    users: usize,
}

/// Bytes reserved per row of a part before its first row: most rows fit (a record with an
/// argon2 PHC string and five index entries take about 400), so arenas rarely grow by copying.
const ROW_BYTES: usize = 512;
/// Entries reserved per row of a part: an id claim, two login keys, a role, an insert instant.
const ROW_ENTRIES: usize = 5;

impl BatchPart {
    /// An empty part with room for `rows` typical rows (only what is written is touched).
    pub(crate) fn with_capacity(rows: usize) -> BatchPart {
        BatchPart {
            arena: Vec::with_capacity(rows * ROW_BYTES),
            entries: Vec::with_capacity(rows * ROW_ENTRIES),
            users: 0,
        }
    }

    /// Starts an entry: `key` and then the value, written by the caller into `arena`.
    fn open(&mut self, row: u32) -> Result<usize> {
        let off = self.arena.len();
        self.entries.push(Entry {
            prefix: (0, 0),
            chunk: 0,
            off: len32(off)?,
            klen: 0,
            vlen: 0,
            row,
        });
        Ok(off)
    }

    /// Ends the entry opened at `off`: its key is the first `klen` bytes written since.
    fn close(&mut self, off: usize, klen: usize) -> Result<()> {
        let total = self.arena.len().saturating_sub(off);
        let key = self.arena.get(off..off + klen).unwrap_or_default();
        let prefix = prefix_of(unique_part(key).unwrap_or(key));
        if let Some(e) = self.entries.last_mut() {
            e.prefix = prefix;
            e.klen = len32(klen)?;
            e.vlen = len32(total.saturating_sub(klen))?;
        }
        Ok(())
    }

    /// `tag s 0x00 id` with an empty value (see [`tables::pair_key`]).
    fn pair(&mut self, row: u32, tag: u8, s: &str, id: Uuid) -> Result<()> {
        let off = self.open(row)?;
        self.arena.push(tag);
        self.arena.extend_from_slice(s.as_bytes());
        self.arena.push(0);
        self.arena.extend_from_slice(id.as_bytes());
        self.close(off, self.arena.len() - off)
    }

    /// `tag s` → `value` (see [`tables::str_key`]).
    fn keyed(&mut self, row: u32, tag: u8, s: &str, value: &[u8]) -> Result<()> {
        let off = self.open(row)?;
        self.arena.push(tag);
        self.arena.extend_from_slice(s.as_bytes());
        let klen = self.arena.len() - off;
        self.arena.extend_from_slice(value);
        self.close(off, klen)
    }

    /// Adds the entries of `user`, row `row` of the batch: the id claim and the index entries
    /// that `Keys::new(keys).entries(user)` gives, written straight into the arena (a unit
    /// test holds the two equal). `keys`: the user's keys (computed by `identity`, with a
    /// skeleton only when the directory keeps the look-alike index). `encode`: whether to
    /// encode the record now (`false` leaves the id claim without a record, for
    /// [`BatchKeys::set_records`]).
    pub(crate) fn add(
        &mut self,
        row: usize,
        user: &User,
        keys: &UserKeys,
        encode: bool,
    ) -> Result<()> {
        let row = len32(row)?;
        let id = user.id;
        let off = self.open(row)?;
        self.arena.extend_from_slice(&tables::user_key(id));
        if encode {
            self.arena.extend_from_slice(&codec::encode(user)?);
        }
        self.close(off, 17)?;
        // As `Keys::new`: the username key, and the email key unless it is the same string.
        match (&keys.username, &keys.email) {
            (Some(u), Some(e)) if u == e => {
                let kinds = tables::KIND_USERNAME | tables::KIND_EMAIL;
                self.keyed(row, TAG_LOGIN, u, &tables::login_entry(id, kinds))?;
            }
            _ => {
                if let Some(u) = &keys.username {
                    let v = tables::login_entry(id, tables::KIND_USERNAME);
                    self.keyed(row, TAG_LOGIN, u, &v)?;
                }
                if let Some(e) = &keys.email {
                    self.keyed(
                        row,
                        TAG_LOGIN,
                        e,
                        &tables::login_entry(id, tables::KIND_EMAIL),
                    )?;
                }
            }
        }
        if let Some(x) = &keys.external_id {
            self.keyed(row, TAG_EXTERNAL, x, id.as_bytes())?;
        }
        if let Some(s) = &keys.skeleton {
            self.pair(row, TAG_SKELETON, s, id)?;
        }
        for r in &keys.roles {
            self.pair(row, TAG_ROLE, r, id)?;
        }
        for (v, kind) in &keys.emails {
            let off = self.open(row)?;
            self.arena
                .extend_from_slice(&tables::pair_key(tables::TAG_EMAILS, v, id));
            let klen = self.arena.len() - off;
            self.arena.extend_from_slice(kind.as_bytes());
            self.close(off, klen)?;
        }
        let off = self.open(row)?;
        self.arena
            .extend_from_slice(&tables::inserted_key(user.insert_instant, id));
        self.close(off, 25)?;
        self.users += 1;
        Ok(())
    }
}

/// One entry of an import batch, typed (see [`BatchKeys::typed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BatchEntry<'b> {
    /// A user's encoded record (empty until [`BatchKeys::set_records`] for rows whose
    /// password was hashed later).
    Record {
        /// The user.
        id: Uuid,
        /// The record, as `codec` encodes it.
        record: &'b [u8],
    },
    /// A login key (username and/or email key).
    Login {
        /// The caseless key.
        key: &'b str,
        /// Its owner and kinds.
        owner: LoginOwner,
    },
    /// An external id.
    External {
        /// The external id.
        external_id: &'b str,
        /// Its owner.
        id: Uuid,
    },
    /// A username's confusable skeleton (only while look-alikes are refused).
    Skeleton {
        /// The skeleton.
        skeleton: &'b str,
        /// Its owner.
        id: Uuid,
    },
    /// A secondary email (its value key and type key).
    Email {
        /// The caseless key of the value.
        value: &'b str,
        /// The caseless key of the type (empty without one).
        kind: &'b str,
        /// Its holder.
        id: Uuid,
    },
    /// A role held.
    Role {
        /// The role.
        role: &'b str,
        /// Its holder.
        id: Uuid,
    },
    /// The insert instant.
    Inserted {
        /// When.
        at: crate::user::UnixMillis,
        /// Who.
        id: Uuid,
    },
}

/// Every entry of the users of a batch, sorted by key: one id claim (with the record) and the
/// index entries of each user.
pub(crate) struct BatchKeys {
    arenas: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    users: usize,
}

impl BatchKeys {
    /// Joins the parts and sorts their entries (all cores).
    pub(crate) fn new(parts: Vec<BatchPart>) -> Result<BatchKeys> {
        let total = parts.iter().map(|p| p.entries.len()).sum();
        let mut arenas = Vec::with_capacity(parts.len());
        let mut entries = Vec::with_capacity(total);
        let mut users = 0;
        for (chunk, part) in parts.into_iter().enumerate() {
            let chunk = len32(chunk)?;
            entries.extend(part.entries.into_iter().map(|mut e| {
                e.chunk = chunk;
                e
            }));
            arenas.push(part.arena);
            users += part.users;
        }
        let mut keys = BatchKeys {
            arenas,
            entries: Vec::new(),
            users,
        };
        // By the unique part of the key first, so that the rows sharing one sit together in
        // row order (a skeleton key ends with the id, which must not decide). Keys of a batch
        // without duplicates end up in strict key order.
        entries.par_sort_unstable_by(|a, b| {
            a.prefix.cmp(&b.prefix).then_with(|| {
                let (ka, kb) = (keys.key(a), keys.key(b));
                let ua = unique_part(ka).unwrap_or(ka);
                let ub = unique_part(kb).unwrap_or(kb);
                ua.cmp(ub)
                    .then_with(|| a.row.cmp(&b.row))
                    .then_with(|| ka.cmp(kb))
            })
        });
        keys.entries = entries;
        Ok(keys)
    }

    /// Encodes the records of `users` (`(row, user)`, each added without its record) on all
    /// cores and attaches them to their id claims.
    pub(crate) fn set_records(&mut self, mut users: Vec<(usize, User)>) -> Result<()> {
        users.par_sort_unstable_by_key(|(row, _)| *row);
        let first = self.arenas.len();
        // Per chunk of users: an arena, and (row, offset, record length) of each user in it.
        type Encoded = (Vec<u8>, Vec<(u32, u32, u32)>);
        let parts: Vec<Result<Encoded>> = users
            .par_chunks(1024)
            .map(|users| {
                let mut arena = Vec::new();
                let mut at = Vec::with_capacity(users.len());
                for (row, user) in users {
                    let off = len32(arena.len())?;
                    arena.extend_from_slice(&tables::user_key(user.id));
                    let record = codec::encode(user)?;
                    arena.extend_from_slice(&record);
                    at.push((len32(*row)?, off, len32(record.len())?));
                }
                Ok((arena, at))
            })
            .collect();
        let mut located: Vec<(u32, u32, u32, u32)> = Vec::with_capacity(users.len());
        for (i, part) in parts.into_iter().enumerate() {
            let (arena, at) = part?;
            let chunk = len32(first + i)?;
            located.extend(at.into_iter().map(|(row, off, len)| (row, chunk, off, len)));
            self.arenas.push(arena);
        }
        // `located` is in row order, as `users` was.
        for e in &mut self.entries {
            if tag_of(e) != TAG_USER {
                continue;
            }
            if let Ok(i) = located.binary_search_by_key(&e.row, |l| l.0)
                && let Some(&(_, chunk, off, len)) = located.get(i)
            {
                (e.chunk, e.off, e.vlen) = (chunk, off, len);
            }
        }
        Ok(())
    }

    /// Every user of the batch as `(row, user)`, in row order, decoded from its id claim
    /// (engines that load rows rather than sorted entries: PostgreSQL). Call it after
    /// [`BatchKeys::set_records`].
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn rows(&self) -> Result<Vec<(usize, User)>> {
        let mut out = Vec::with_capacity(self.users);
        for e in self.entries.iter().filter(|e| tag_of(e) == TAG_USER) {
            let id = tables::trailing_id(self.key(e))
                .ok_or_else(|| Error::Corrupt("malformed id claim in a batch".into()))?;
            out.push((e.row as usize, codec::decode(id, self.value(e))?));
        }
        out.sort_unstable_by_key(|(row, _)| *row);
        Ok(out)
    }

    /// Every unique key the batch claims, as `(row, field, claim)` in key order: what another
    /// engine checks against its existing users (PostgreSQL, with one query).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn claims(&self) -> Vec<(usize, &'static str, Claim<'_>)> {
        let mut out = Vec::new();
        for e in &self.entries {
            let key = self.key(e);
            let claim = match key.split_first() {
                Some((&TAG_USER, _)) => tables::trailing_id(key).map(Claim::Id),
                Some((&TAG_LOGIN, k)) => Some(Claim::Login(text(k))),
                Some((&TAG_EXTERNAL, k)) => Some(Claim::External(text(k))),
                // `S skeleton 0x00 id`
                Some((&TAG_SKELETON, k)) => k
                    .get(..k.len().saturating_sub(17))
                    .map(|s| Claim::Skeleton(text(s))),
                _ => None,
            };
            if let Some(c) = claim {
                out.push((e.row as usize, self.field(e), c));
            }
        }
        out
    }

    /// The number of users.
    pub(crate) fn users(&self) -> usize {
        self.users
    }

    /// Every entry of the batch as typed values, in key order, with the row it belongs to:
    /// what an engine that does not store tagged keys (PostgreSQL's `COPY`) loads. Call after
    /// [`BatchKeys::set_records`], once the batch has no duplicates.
    #[allow(dead_code)]
    pub(crate) fn typed(&self) -> impl Iterator<Item = Result<(usize, BatchEntry<'_>)>> + '_ {
        self.entries.iter().map(|e| {
            let key = self.key(e);
            let bad = || Error::Corrupt("malformed import entry".into());
            let text = |k| std::str::from_utf8(k).map_err(|_| bad());
            let (&tag, rest) = key.split_first().ok_or_else(bad)?;
            let id = || tables::trailing_id(key).ok_or_else(bad);
            let pair = || text(rest.get(..rest.len().saturating_sub(17)).ok_or_else(bad)?);
            let entry = match tag {
                TAG_USER => BatchEntry::Record {
                    id: id()?,
                    record: self.value(e),
                },
                TAG_LOGIN => {
                    let (id, kinds) = tables::login_value(self.value(e)).ok_or_else(bad)?;
                    BatchEntry::Login {
                        key: text(rest)?,
                        owner: LoginOwner {
                            id,
                            username: kinds & tables::KIND_USERNAME != 0,
                            email: kinds & tables::KIND_EMAIL != 0,
                        },
                    }
                }
                TAG_EXTERNAL => BatchEntry::External {
                    external_id: text(rest)?,
                    id: Uuid::from_slice(self.value(e)).map_err(|_| bad())?,
                },
                TAG_SKELETON => BatchEntry::Skeleton {
                    skeleton: pair()?,
                    id: id()?,
                },
                TAG_ROLE => BatchEntry::Role {
                    role: pair()?,
                    id: id()?,
                },
                tables::TAG_EMAILS => BatchEntry::Email {
                    value: pair()?,
                    kind: text(self.value(e))?,
                    id: id()?,
                },
                TAG_INSERTED => BatchEntry::Inserted {
                    at: rest
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(tables::instant_from)
                        .ok_or_else(bad)?,
                    id: id()?,
                },
                _ => return Err(bad()),
            };
            Ok((e.row as usize, entry))
        })
    }

    fn key(&self, e: &Entry) -> &[u8] {
        let start = e.off as usize;
        self.arenas
            .get(e.chunk as usize)
            .and_then(|a| a.get(start..start + e.klen as usize))
            .unwrap_or_default()
    }

    fn value(&self, e: &Entry) -> &[u8] {
        let start = e.off as usize + e.klen as usize;
        self.arenas
            .get(e.chunk as usize)
            .and_then(|a| a.get(start..start + e.vlen as usize))
            .unwrap_or_default()
    }

    /// The field a clash on this entry concerns.
    fn field(&self, e: &Entry) -> &'static str {
        match self.key(e).first() {
            Some(&TAG_USER) => "id",
            Some(&TAG_LOGIN) => match tables::login_value(self.value(e)) {
                Some((_, kinds)) if kinds & tables::KIND_USERNAME != 0 => "username",
                _ => "email",
            },
            Some(&TAG_EXTERNAL) => "external_id",
            _ => "username",
        }
    }

    fn clash(&self, e: &Entry, with: ClashWith) -> Clash {
        Clash {
            row: e.row as usize,
            field: self.field(e),
            with,
        }
    }

    /// What inserting the batch adds to the counters (users with a username, with a login
    /// email, holding each role; login keys by prefix).
    pub(crate) fn counts(&self) -> Counts {
        let mut out = Counts::new();
        let (mut usernames, mut emails) = (0i64, 0i64);
        // Role entries sit together by role (key order): count runs.
        let mut run: Option<(&[u8], i64)> = None;
        // Login keys are in key order too, so each prefix of a given length and kind is one
        // run: one counter change per distinct prefix, not per key.
        const KINDS: [u8; 2] = [tables::KIND_USERNAME, tables::KIND_EMAIL];
        let mut prefix_runs: [[Option<(&str, i64)>; tables::PREFIX_DEPTH]; 2] = Default::default();
        let flush = |out: &mut Counts, kind: u8, run: Option<(&str, i64)>| {
            if let Some((p, n)) = run {
                *out.entry(tables::prefix_counter_key(kind, p)).or_default() += n;
            }
        };
        for e in &self.entries {
            match tag_of(e) {
                TAG_LOGIN => {
                    if let Some((_, kinds)) = tables::login_value(self.value(e)) {
                        usernames += i64::from(kinds & tables::KIND_USERNAME != 0);
                        emails += i64::from(kinds & tables::KIND_EMAIL != 0);
                        let key = text(self.key(e).get(1..).unwrap_or_default());
                        for (kind, runs) in KINDS.into_iter().zip(&mut prefix_runs) {
                            if kinds & kind == 0 {
                                continue;
                            }
                            for (p, slot) in tables::counted_prefixes(key).zip(runs.iter_mut()) {
                                match slot {
                                    Some((q, n)) if *q == p => *n += 1,
                                    _ => flush(&mut out, kind, slot.replace((p, 1))),
                                }
                            }
                        }
                    }
                }
                TAG_ROLE => {
                    let k = self.key(e);
                    let role = k.get(1..k.len().saturating_sub(17)).unwrap_or_default();
                    match &mut run {
                        Some((r, n)) if *r == role => *n += 1,
                        _ => {
                            if let Some((r, n)) = run.replace((role, 1)) {
                                *out.entry(tables::role_counter_key(text(r))).or_default() += n;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some((r, n)) = run {
            *out.entry(tables::role_counter_key(text(r))).or_default() += n;
        }
        for (kind, runs) in KINDS.into_iter().zip(prefix_runs) {
            for r in runs {
                flush(&mut out, kind, r);
            }
        }
        if usernames > 0 {
            out.insert(tables::KEY_USERNAMES.to_vec(), usernames);
        }
        if emails > 0 {
            out.insert(tables::KEY_EMAILS.to_vec(), emails);
        }
        out
    }

    /// Keys that two rows of the batch share: each later row names the first row that has it.
    pub(crate) fn duplicates(&self) -> Vec<Clash> {
        let mut out = Vec::new();
        let mut first: Option<&Entry> = None;
        for e in &self.entries {
            // Equal unique parts have equal prefixes: only then are the keys read.
            if !matches!(
                tag_of(e),
                TAG_USER | TAG_LOGIN | TAG_EXTERNAL | TAG_SKELETON
            ) {
                first = None;
                continue;
            }
            match first {
                Some(f)
                    if f.prefix == e.prefix
                        && unique_part(self.key(f)) == unique_part(self.key(e)) =>
                {
                    let with = if tag_of(e) == TAG_SKELETON {
                        ClashWith::LookalikeRow(f.row as usize)
                    } else {
                        ClashWith::Row(f.row as usize)
                    };
                    out.push(self.clash(e, with));
                }
                _ => first = Some(e),
            }
        }
        out
    }
}

/// Key bytes as text (keys of a batch are built from strings).
fn text(k: &[u8]) -> &str {
    std::str::from_utf8(k).unwrap_or_default()
}

/// A unique key of a batch row (see [`BatchKeys::claims`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Claim<'a> {
    /// The user id.
    Id(Uuid),
    /// A caseless login key (username or email).
    Login(&'a str),
    /// An external id.
    External(&'a str),
    /// The confusable skeleton of the username (only while look-alikes are refused).
    Skeleton(&'a str),
}

/// The tag of an entry's key (the first byte of its prefix).
fn tag_of(e: &Entry) -> u8 {
    e.prefix.0.to_be_bytes()[0]
}

// On a snapshot (a refused batch's report) and in a write transaction alike.
macro_rules! batch_clashes {
    () => {
        /// Every key of the batch that an existing user already holds (the `id` claims included).
        pub(crate) fn batch_clashes(&self, keys: &BatchKeys) -> Result<Vec<Clash>> {
            let mut out = Vec::new();
            for e in &keys.entries {
                let key = keys.key(e);
                match key.first() {
                    Some(&TAG_USER) if self.with_value(key, |_| ())?.is_some() => {
                        let id = tables::trailing_id(key).unwrap_or_default();
                        out.push(keys.clash(e, ClashWith::User(id)));
                    }
                    Some(&(TAG_LOGIN | TAG_EXTERNAL)) => {
                        if let Some(o) = self.with_value(key, |v| owner(key, v))? {
                            out.push(keys.clash(e, ClashWith::User(o)));
                        }
                    }
                    Some(&TAG_SKELETON) if self.rules.skeletons => {
                        if let Some(owner) = self.skeleton_key_owner(key)? {
                            out.push(keys.clash(e, ClashWith::LookalikeUser(owner)));
                        }
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
    };
}

impl Reader {
    batch_clashes!();
}

impl Writer<'_> {
    batch_clashes!();
}

/// The owner named by the value of a login or external-id entry.
fn owner(key: &[u8], value: &[u8]) -> Uuid {
    if key.first() == Some(&TAG_LOGIN) {
        tables::login_value(value).map(|v| v.0).unwrap_or_default()
    } else {
        Uuid::from_slice(value).unwrap_or_default()
    }
}

/// Clashes found while inserting, kept apart by kind so that they are reported in the order
/// of the per-entry inserts this replaced: logins, look-alikes, external ids, then ids.
#[derive(Default)]
struct Found {
    logins: Vec<Clash>,
    lookalikes: Vec<Clash>,
    externals: Vec<Clash>,
    ids: Vec<Clash>,
}

impl Writer<'_> {
    /// Inserts every record and index entry of a batch whose rows are unique among
    /// themselves (see [`BatchKeys::duplicates`]), in key order.
    ///
    /// Returns the keys that existing users already held. When there is any, the tables hold a
    /// mix of old and new entries and the transaction is marked broken: it will not commit.
    pub(crate) fn insert_batch(&mut self, keys: &BatchKeys) -> Result<Vec<Clash>> {
        let count = self.count()?;
        let counters = self.counters_after(&keys.counts())?;
        let mut found = Found::default();
        // New users only (a taken id is a clash), but the cache is emptied all the same.
        self.touch_all();
        self.guard(|w| {
            if w.rules.skeletons {
                w.lookalike_clashes(keys, &mut found.lookalikes)?;
            }
            w.insert_sorted(keys, &mut found)?;
            let added = u64::try_from(keys.users).unwrap_or(u64::MAX);
            w.set_count(count.saturating_add(added))?;
            w.put_counters(&counters)
        })?;
        let Found {
            mut logins,
            lookalikes,
            externals,
            ids,
        } = found;
        logins.extend(lookalikes);
        logins.extend(externals);
        logins.extend(ids);
        if !logins.is_empty() {
            self.broken = true;
        }
        Ok(logins)
    }

    /// Usernames of the batch whose confusable skeleton an existing user's username has.
    fn lookalike_clashes(&self, keys: &BatchKeys, out: &mut Vec<Clash>) -> Result<()> {
        for e in &keys.entries {
            let key = keys.key(e);
            if key.first() != Some(&TAG_SKELETON) {
                continue;
            }
            if let Some(owner) = self.skeleton_key_owner(key)? {
                out.push(keys.clash(e, ClashWith::LookalikeUser(owner)));
            }
        }
        Ok(())
    }

    /// Inserts the entries (in strictly ascending key order) through a cursor, recording each
    /// in the redo log. A key some existing entry already has is a clash and is not written.
    ///
    /// A helper thread copies the entries, in key order, out of the arenas ([`Gathered`]).
    fn insert_sorted(&mut self, keys: &BatchKeys, found: &mut Found) -> Result<()> {
        std::thread::scope(|scope| {
            let mut entries = Gathered::start(keys, scope);
            self.insert_gathered(keys, &mut entries, found)
        })
    }

    fn insert_gathered(
        &mut self,
        keys: &BatchKeys,
        entries: &mut Gathered<'_>,
        found: &mut Found,
    ) -> Result<()> {
        let Writer { t, redo, .. } = self;
        let mut next = 0;
        while next < keys.entries.len() {
            // Place a cursor in the gap where this key belongs.
            let (e, key, _) = entries.get(next)?;
            let mut cursor = t.lower_bound_mut(Bound::Included(key)).map_err(storage)?;
            let taken = match cursor.peek_next().map_err(storage)? {
                Some((k, v)) if k.value() == key => Some(v.value().to_vec()),
                _ => None,
            };
            if let Some(old) = taken {
                match key.first() {
                    Some(&TAG_USER) => found.ids.push(keys.clash(
                        e,
                        ClashWith::User(tables::trailing_id(key).unwrap_or_default()),
                    )),
                    Some(&TAG_LOGIN) => found
                        .logins
                        .push(keys.clash(e, ClashWith::User(owner(key, &old)))),
                    Some(&TAG_EXTERNAL) => found
                        .externals
                        .push(keys.clash(e, ClashWith::User(owner(key, &old)))),
                    // An insert-instant, role or skeleton key holds the id: the id clash
                    // reports it.
                    _ => {}
                }
                next += 1;
            }
            // Then insert until an existing entry stands in the way.
            while next < keys.entries.len() {
                let (_, key, value) = entries.get(next)?;
                if key.first() == Some(&TAG_USER) && value.is_empty() {
                    return Err(Error::Corrupt("an imported user has no record".into()));
                }
                match cursor.insert_before(key, value) {
                    Ok(()) => {
                        redo.record(wal::DIR_PUT, key, value);
                        next += 1;
                    }
                    Err(redb::CursorError::UnorderedKey) => break,
                    Err(e) => return Err(storage(e)),
                }
            }
            cursor.close().map_err(storage)?;
        }
        Ok(())
    }
}

/// Entries per block of [`Gathered`].
const BLOCK: usize = 1024;
/// Blocks filled ahead of the inserts.
const BLOCKS_AHEAD: usize = 4;

/// Consecutive entries (in key order), their keys and values copied next to each other.
#[derive(Default)]
struct Block {
    /// Index of the first entry held.
    first: usize,
    /// (start in `bytes`, key length, value length), one per entry held.
    held: Vec<(usize, usize, usize)>,
    bytes: Vec<u8>,
}

impl Block {
    /// Fills the block with the entries from `first` on.
    fn fill(&mut self, keys: &BatchKeys, first: usize) {
        self.first = first;
        self.held.clear();
        self.bytes.clear();
        for e in keys.entries.iter().skip(first).take(BLOCK) {
            let (k, v) = (keys.key(e), keys.value(e));
            self.held.push((self.bytes.len(), k.len(), v.len()));
            self.bytes.extend_from_slice(k);
            self.bytes.extend_from_slice(v);
        }
    }

    /// Index of the first entry after the block.
    fn end(&self) -> usize {
        self.first + self.held.len()
    }
}

/// The entries of a batch in key order, for the inserts.
///
/// The arenas are in row order, and key order jumps around in them (ids are random): one
/// cache and TLB miss per entry, a third of the insert phase when the inserting thread took
/// them. A helper thread copies blocks of entries ahead (a tight loop whose misses overlap);
/// the inserts read each block sequentially. Without the helper (a batch of one block, or a
/// thread could not be started), blocks are filled on the inserting thread.
struct Gathered<'k> {
    keys: &'k BatchKeys,
    /// Filled blocks, in order, from the helper thread.
    filled: Option<mpsc::Receiver<Block>>,
    /// Used blocks, back to the helper thread for reuse.
    used: Option<mpsc::Sender<Block>>,
    current: Block,
}

impl<'k> Gathered<'k> {
    /// Starts the helper thread in `scope`.
    fn start<'s>(keys: &'k BatchKeys, scope: &'s std::thread::Scope<'s, '_>) -> Gathered<'k>
    where
        'k: 's,
    {
        if keys.entries.len() <= BLOCK {
            // One block: not worth a thread.
            return Gathered::inline(keys);
        }
        let (fill, filled) = mpsc::sync_channel::<Block>(BLOCKS_AHEAD);
        let (used, reuse) = mpsc::channel::<Block>();
        let helper = std::thread::Builder::new()
            .name("userdir-import-gather".into())
            .spawn_scoped(scope, move || {
                let mut first = 0;
                while first < keys.entries.len() {
                    let mut block = reuse.try_recv().unwrap_or_default();
                    block.fill(keys, first);
                    first = block.end();
                    // The inserts stopped (an error): nothing more to do.
                    if fill.send(block).is_err() {
                        break;
                    }
                }
            });
        match helper {
            Ok(_) => Gathered {
                keys,
                filled: Some(filled),
                used: Some(used),
                current: Block::default(),
            },
            Err(_) => Gathered::inline(keys),
        }
    }

    /// Without a helper thread: blocks are filled when the inserts need them.
    fn inline(keys: &'k BatchKeys) -> Gathered<'k> {
        Gathered {
            keys,
            filled: None,
            used: None,
            current: Block::default(),
        }
    }

    /// Entry `i`, its key and its value. `i` never decreases from one call to the next.
    fn get(&mut self, i: usize) -> Result<(&'k Entry, &[u8], &[u8])> {
        while i >= self.current.end() {
            let next = match &self.filled {
                Some(filled) => filled
                    .recv()
                    .map_err(|_| Error::Corrupt("import entries ended early".into()))?,
                None => {
                    let mut block = std::mem::take(&mut self.current);
                    let first = block.end();
                    block.fill(self.keys, first);
                    block
                }
            };
            let done = std::mem::replace(&mut self.current, next);
            if let Some(used) = &self.used {
                let _ = used.send(done);
            }
        }
        let entry = self.keys.entries.get(i);
        let held = i
            .checked_sub(self.current.first)
            .and_then(|j| self.current.held.get(j));
        let (Some(e), Some(&(at, klen, vlen))) = (entry, held) else {
            return Err(Error::Corrupt("import entry out of order".into()));
        };
        let bytes = &self.current.bytes;
        Ok((
            e,
            bytes.get(at..at + klen).unwrap_or_default(),
            bytes.get(at + klen..at + klen + vlen).unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::Keys;

    fn user(username: Option<&str>, email: Option<&str>, external: Option<&str>) -> User {
        let mut u = User::new(
            Uuid::new_v4(),
            crate::user::Profile {
                username: username.map(str::to_owned),
                email: email.map(str::to_owned),
                external_id: external.map(str::to_owned),
                first_name: Some("Given".into()),
                ..Default::default()
            },
        );
        u.insert_instant = -5;
        u.last_update_instant = 7;
        u.version = 1;
        u.roles.insert("member".into());
        u.roles.insert("Zeta admins".into());
        u
    }

    /// The entries a part writes are the record under the user key, then exactly what
    /// `Keys::new(..).entries(..)` gives (the layout `check_integrity` rebuilds).
    #[test]
    fn part_entries_are_the_store_entries() {
        let users = [
            user(Some("Bob"), Some("bob@example.com"), Some("crm-1")),
            user(Some("bob@example.com"), Some("bob@example.com"), None),
            user(Some("Straße"), None, None),
            user(None, Some("ÉLODIE@exemple.fr"), Some("x")),
            user(Some("\u{0430}dmin"), Some("a@b.c"), None),
        ];
        for skeletons in [false, true] {
            for (encode, u) in [true, false].into_iter().cycle().zip(&users) {
                let mut part = BatchPart::with_capacity(1);
                let uk = UserKeys::of(u, skeletons);
                part.add(3, u, &uk, encode).unwrap();
                let keys = BatchKeys {
                    arenas: vec![part.arena],
                    entries: part.entries,
                    users: part.users,
                };
                let got: Vec<(Vec<u8>, Vec<u8>)> = keys
                    .entries
                    .iter()
                    .map(|e| (keys.key(e).to_vec(), keys.value(e).to_vec()))
                    .collect();
                let record = if encode {
                    codec::encode(u).unwrap()
                } else {
                    Vec::new()
                };
                let typed: Vec<(usize, BatchEntry<'_>)> =
                    keys.typed().collect::<Result<_>>().unwrap();
                assert!(typed.iter().all(|(row, _)| *row == 3));
                assert!(typed.contains(&(
                    3,
                    BatchEntry::Record {
                        id: u.id,
                        record: &record
                    }
                )));
                assert!(typed.contains(&(
                    3,
                    BatchEntry::Inserted {
                        at: u.insert_instant,
                        id: u.id
                    }
                )));
                for r in &uk.roles {
                    assert!(typed.contains(&(3, BatchEntry::Role { role: r, id: u.id })));
                }
                if let Some(k) = &uk.username {
                    assert!(typed.iter().any(|(_, e)| matches!(e,
                        BatchEntry::Login { key, owner } if key == k && owner.username && owner.id == u.id)));
                }
                if let Some(s) = &uk.skeleton {
                    assert!(typed.contains(&(
                        3,
                        BatchEntry::Skeleton {
                            skeleton: s,
                            id: u.id
                        }
                    )));
                }
                if let Some(x) = &uk.external_id {
                    assert!(typed.contains(&(
                        3,
                        BatchEntry::External {
                            external_id: x,
                            id: u.id
                        }
                    )));
                }
                let mut want = vec![(tables::user_key(u.id).to_vec(), record)];
                want.extend(Keys::new(&uk).entries(u));
                assert_eq!(got, want);
                for e in &keys.entries {
                    let key = keys.key(e);
                    assert_eq!(e.prefix, prefix_of(unique_part(key).unwrap_or(key)));
                    assert_eq!(e.row, 3);
                }
            }
        }
    }

    /// Both ways of gathering (helper thread, or inline when no thread could be started) give
    /// every entry in sorted order, across block boundaries.
    #[test]
    fn gathered_entries_are_the_sorted_entries() {
        let mut parts = Vec::new();
        for p in 0..3 {
            let mut part = BatchPart::with_capacity(1000);
            for i in 0..1000 {
                let name = format!("u{p}-{i}");
                let u = user(Some(&name), Some(&format!("{name}@example.com")), None);
                let uk = UserKeys::of(&u, false);
                part.add(p * 1000 + i, &u, &uk, i % 3 != 0).unwrap();
            }
            parts.push(part);
        }
        let keys = BatchKeys::new(parts).unwrap();
        assert!(keys.entries.len() > 3 * BLOCK);
        let want: Vec<(Vec<u8>, Vec<u8>)> = keys
            .entries
            .iter()
            .map(|e| (keys.key(e).to_vec(), keys.value(e).to_vec()))
            .collect();
        assert!(want.windows(2).all(|w| w[0].0 < w[1].0));
        for helper in [true, false] {
            std::thread::scope(|scope| {
                let mut g = if helper {
                    Gathered::start(&keys, scope)
                } else {
                    Gathered::inline(&keys)
                };
                assert_eq!(g.filled.is_some(), helper);
                for (i, (k, v)) in want.iter().enumerate() {
                    let (e, key, value) = g.get(i).unwrap();
                    assert_eq!((key, value), (k.as_slice(), v.as_slice()));
                    assert_eq!(keys.key(e), k.as_slice());
                }
                // Going back is an error, not a panic.
                assert!(g.get(0).is_err());
            });
        }
    }
}
