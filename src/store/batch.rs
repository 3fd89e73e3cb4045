//! Bulk insertion of many new users in one write transaction (import).
//!
//! The work that needs no transaction happens before it: the index entries of every user are
//! computed, copied into one byte arena and sorted by key on all cores ([`BatchKeys`]); the
//! records are encoded on all cores and sorted by id ([`BatchRecords`]). Sorting finds the
//! duplicates inside the batch (equal adjacent keys). The write transaction then only inserts,
//! in key order, into the one directory tree, and learns from each insert whether the key
//! already belonged to an existing user (redb returns the value it replaced): one B-tree
//! operation per entry, no separate lookup. Any such clash marks the transaction broken, so it
//! can never commit.

use rayon::prelude::*;
use redb::ReadableTable;
use uuid::Uuid;

use super::tables::{self, TAG_EXTERNAL, TAG_LOGIN, TAG_SKELETON, TAG_USER};
use super::{Keys, Reader, Writer, codec, storage};
use crate::error::{Error, Result};
use crate::user::User;

/// Rows handled per parallel task when building a batch.
const CHUNK: usize = 4096;

/// What a batch row's key collides with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClashWith {
    /// The same key in an earlier row of the batch (its index).
    Row(usize),
    /// The key of an existing user.
    User(Uuid),
    /// A username with the same confusable skeleton in an earlier row.
    LookalikeRow(usize),
    /// A username of an existing user with the same confusable skeleton.
    LookalikeUser(Uuid),
}

/// A key of a batch row that is not free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clash {
    /// The row's index in the batch.
    pub row: usize,
    /// The field whose key collides: `id`, `username`, `email`, `external_id`.
    pub field: &'static str,
    /// What it collides with.
    pub with: ClashWith,
}

/// One index entry: its key and then its value live in arena `chunk` at `off`. `prefix` holds
/// the first 16 bytes of the key's unique part (zero padded, big-endian), so that most
/// comparisons of the sort never touch the arena.
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

/// Every index entry of the users of a batch (plus an `id` claim per user), sorted by key.
pub(crate) struct BatchKeys {
    arenas: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    users: usize,
}

impl BatchKeys {
    /// Computes and sorts the index entries of `users` (`(row, user)` pairs). `skeletons`: whether
    /// the directory keeps the look-alike index.
    pub(crate) fn new(users: &[(usize, &User)], skeletons: bool) -> Result<BatchKeys> {
        let parts: Vec<Result<(Vec<u8>, Vec<Entry>)>> = users
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(chunk, rows)| {
                let chunk = len32(chunk)?;
                let mut arena = Vec::with_capacity(rows.len() * 160);
                let mut entries = Vec::with_capacity(rows.len() * 5);
                for (row, user) in rows {
                    let row = len32(*row)?;
                    let keys = Keys::of(user, skeletons);
                    let claim = (tables::user_key(user.id).to_vec(), Vec::new());
                    for (k, v) in std::iter::once(claim).chain(keys.entries(user)) {
                        entries.push(Entry {
                            prefix: prefix_of(Self::unique_part(&k).unwrap_or(&k)),
                            chunk,
                            off: len32(arena.len())?,
                            klen: len32(k.len())?,
                            vlen: len32(v.len())?,
                            row,
                        });
                        arena.extend_from_slice(&k);
                        arena.extend_from_slice(&v);
                    }
                }
                Ok((arena, entries))
            })
            .collect();
        let mut arenas = Vec::with_capacity(parts.len());
        let mut entries = Vec::with_capacity(users.len() * 5);
        for part in parts {
            let (a, es) = part?;
            arenas.push(a);
            entries.extend(es);
        }
        let mut keys = BatchKeys {
            arenas,
            entries: Vec::new(),
            users: users.len(),
        };
        // By the unique part of the key first, so that the rows sharing one sit together in
        // row order (a skeleton key ends with the id, which must not decide).
        entries.par_sort_unstable_by(|a, b| {
            a.prefix.cmp(&b.prefix).then_with(|| {
                let (ka, kb) = (keys.key(a), keys.key(b));
                let ua = Self::unique_part(ka).unwrap_or(ka);
                let ub = Self::unique_part(kb).unwrap_or(kb);
                ua.cmp(ub)
                    .then_with(|| a.row.cmp(&b.row))
                    .then_with(|| ka.cmp(kb))
            })
        });
        keys.entries = entries;
        Ok(keys)
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

    /// The part of a key that must be unique: the whole key, or for a skeleton entry the
    /// skeleton without the id.
    fn unique_part(key: &[u8]) -> Option<&[u8]> {
        match key.first() {
            Some(&(TAG_USER | TAG_LOGIN | TAG_EXTERNAL)) => Some(key),
            Some(&TAG_SKELETON) => key.get(..key.len().saturating_sub(16)),
            _ => None,
        }
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

    /// Keys that two rows of the batch share: each later row names the first row that has it.
    pub(crate) fn duplicates(&self) -> Vec<Clash> {
        let mut out = Vec::new();
        let mut first: Option<&Entry> = None;
        for e in &self.entries {
            let key = self.key(e);
            let Some(part) = Self::unique_part(key) else {
                first = None;
                continue;
            };
            match first {
                Some(f) if Self::unique_part(self.key(f)) == Some(part) => {
                    let with = if key.first() == Some(&TAG_SKELETON) {
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

/// (id, chunk, offset in the chunk's arena, length, row) of one encoded record.
type Item = (Uuid, u32, u32, u32, u32);

/// The encoded records of a batch, sorted by id.
pub(crate) struct BatchRecords {
    arenas: Vec<Vec<u8>>,
    items: Vec<Item>,
}

impl BatchRecords {
    /// Encodes `users` (`(row, user)` pairs) on all cores, consuming them.
    pub(crate) fn encode(users: Vec<(usize, User)>) -> Result<BatchRecords> {
        let parts: Vec<Result<(Vec<u8>, Vec<Item>)>> = users
            .into_par_iter()
            .chunks(CHUNK)
            .enumerate()
            .map(|(chunk, rows)| {
                let chunk = len32(chunk)?;
                let mut arena = Vec::with_capacity(rows.len() * 256);
                let mut items = Vec::with_capacity(rows.len());
                for (row, user) in rows {
                    let bytes = codec::encode(&user)?;
                    items.push((
                        user.id,
                        chunk,
                        len32(arena.len())?,
                        len32(bytes.len())?,
                        len32(row)?,
                    ));
                    arena.extend_from_slice(&bytes);
                }
                Ok((arena, items))
            })
            .collect();
        let mut arenas = Vec::with_capacity(parts.len());
        let mut items = Vec::new();
        for part in parts {
            let (a, its) = part?;
            arenas.push(a);
            items.extend(its);
        }
        items.par_sort_unstable_by_key(|it| it.0);
        Ok(BatchRecords { arenas, items })
    }

    fn bytes(&self, &(_, chunk, off, len, _): &Item) -> &[u8] {
        let start = off as usize;
        self.arenas
            .get(chunk as usize)
            .and_then(|a| a.get(start..start + len as usize))
            .unwrap_or_default()
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

impl Reader {
    /// Every key of the batch that an existing user already holds (the `id` claims included).
    pub(crate) fn batch_clashes(&self, keys: &BatchKeys) -> Result<Vec<Clash>> {
        let mut out = Vec::new();
        for e in &keys.entries {
            let key = keys.key(e);
            match key.first() {
                Some(&TAG_USER) if self.t.get(key).map_err(storage)?.is_some() => {
                    let id = tables::trailing_id(key).unwrap_or_default();
                    out.push(keys.clash(e, ClashWith::User(id)));
                }
                Some(&(TAG_LOGIN | TAG_EXTERNAL)) => {
                    if let Some(g) = self.t.get(key).map_err(storage)? {
                        out.push(keys.clash(e, ClashWith::User(owner(key, g.value()))));
                    }
                }
                Some(&TAG_SKELETON) if self.lookalikes => {
                    if let Some(owner) = skeleton_owner(key, |lo, hi| {
                        let mut r = self.t.range(lo..hi).map_err(storage)?;
                        Ok(match r.next() {
                            Some(x) => tables::trailing_id(x.map_err(storage)?.0.value()),
                            None => None,
                        })
                    })? {
                        out.push(keys.clash(e, ClashWith::LookalikeUser(owner)));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The owner named by the value of a login or external-id entry.
fn owner(key: &[u8], value: &[u8]) -> Uuid {
    if key.first() == Some(&TAG_LOGIN) {
        tables::login_value(value).map(|v| v.0).unwrap_or_default()
    } else {
        Uuid::from_slice(value).unwrap_or_default()
    }
}

/// Looks up any existing owner of the skeleton in a skeleton entry key (`S skeleton 0x00 id`).
fn skeleton_owner(
    key: &[u8],
    first_in: impl FnOnce(&[u8], &[u8]) -> Result<Option<Uuid>>,
) -> Result<Option<Uuid>> {
    let Some(prefix) = key.get(..key.len().saturating_sub(16)) else {
        return Ok(None);
    };
    let lo = prefix.to_vec();
    let mut hi = prefix.to_vec();
    if let Some(last) = hi.last_mut() {
        *last = 1; // the 0x00 separator + 1: past every id
    }
    first_in(&lo, &hi)
}

impl Writer<'_> {
    /// Inserts every record and index entry of a batch whose rows are unique among
    /// themselves (see [`BatchKeys::duplicates`]), in key order. `records` produces the
    /// encoded records; it runs on another thread while the index entries are inserted.
    ///
    /// Returns the keys that existing users already held. When there is any, the tables hold a
    /// mix of old and new entries and the transaction is marked broken: it will not commit.
    pub(crate) fn insert_batch(
        &mut self,
        keys: &BatchKeys,
        records: impl FnOnce() -> Result<BatchRecords> + Send,
    ) -> Result<Vec<Clash>> {
        let count = self.count()?;
        let mut clashes = Vec::new();
        self.guard(|w| {
            let records = std::thread::scope(|scope| -> Result<BatchRecords> {
                let encoding = scope.spawn(records);
                w.insert_index_entries(keys, &mut clashes)?;
                encoding
                    .join()
                    .map_err(|_| Error::Corrupt("record encoding failed".into()))?
            })?;
            if keys.users != records.len() {
                return Err(Error::Corrupt(
                    "import batch keys and records disagree".into(),
                ));
            }
            let added = u64::try_from(records.len()).unwrap_or(u64::MAX);
            for item in &records.items {
                let &(id, _, _, _, row) = item;
                let bytes = records.bytes(item);
                if w.dir_replace(tables::user_key(id).as_slice(), bytes)?
                    .is_some()
                {
                    clashes.push(Clash {
                        row: row as usize,
                        field: "id",
                        with: ClashWith::User(id),
                    });
                }
            }
            w.set_count(count.saturating_add(added))
        })?;
        if !clashes.is_empty() {
            self.broken = true;
        }
        Ok(clashes)
    }

    fn insert_index_entries(&mut self, keys: &BatchKeys, clashes: &mut Vec<Clash>) -> Result<()> {
        for e in &keys.entries {
            let key = keys.key(e);
            match key.first() {
                // The record itself is written after the index entries, in id order.
                Some(&TAG_USER) => continue,
                Some(&TAG_SKELETON) if self.lookalikes => {
                    if let Some(owner) = skeleton_owner(key, |lo, hi| {
                        let mut r = self.t.range(lo..hi).map_err(storage)?;
                        Ok(match r.next() {
                            Some(x) => tables::trailing_id(x.map_err(storage)?.0.value()),
                            None => None,
                        })
                    })? {
                        clashes.push(keys.clash(e, ClashWith::LookalikeUser(owner)));
                    }
                }
                _ => {}
            }
            if let Some(old) = self.dir_replace(key, keys.value(e))?
                && matches!(key.first(), Some(&(TAG_LOGIN | TAG_EXTERNAL)))
            {
                clashes.push(keys.clash(e, ClashWith::User(owner(key, &old))));
            }
        }
        Ok(())
    }
}
