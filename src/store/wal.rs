//! The redo log: durable commits for file-backed directories at the cost of one small
//! sequential write and one `fdatasync`.
//!
//! A redb commit with `Durability::Immediate` writes every page it copied (the path from the
//! root to each touched leaf, the allocator state, the header) to scattered places in the file
//! and fsyncs: on the 2-core VM this project is measured on, 0.5–4 ms. So, as SQLite's WAL,
//! userdir makes a write durable by appending what it changed to a log next to the directory
//! file (`<file>.wal`) and syncing that, then commits the redb transaction with
//! `Durability::None` (visible at once, on disk later). Every few MiB of log, a *checkpoint*
//! commits redb durably and the log starts over from its beginning (overwriting, so the log
//! file stops growing after its first cycle).
//!
//! Each write is still ONE redb transaction: the log only records, as a frame, the final
//! value of every key the transaction wrote or removed. A frame is
//!
//! ```text
//! magic "UDW1" | payload length u32 | lsn u64 | salt u64 | payload | SHA-256(previous)[..16]
//! ```
//!
//! (integers little-endian). The payload is a list of changes (see [`Redo`]). `lsn` numbers
//! frames 1, 2, 3… across the life of the file; `salt` is a random number kept in the
//! directory's `meta` table, so a log left by another directory file is never replayed.
//!
//! Every durable redb commit (a checkpoint, opening, a transaction too large for a frame)
//! records in `meta` the lsn of the last frame it contains. A crash loses the redb commits made
//! since the last durable one, never part of one; on open, the frames after the recorded lsn
//! are applied in order, in one transaction, and committed durably. Reading stops at the first
//! frame that is torn (checksum), from another directory (salt) or out of sequence (lsn); a
//! frame is acknowledged only after its sync, and a sync covers every earlier frame, so what
//! is cut off there was never acknowledged. Changes are absolute (the final value of a key), so
//! applying a frame twice, or to a state that already holds it, gives the same result.
//!
//! Directories on a custom [`Backend`](crate::Backend) (and in-memory ones) have
//! no log: their commits use redb's own durability directly.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"UDW1";
const HEADER: usize = 4 + 4 + 8 + 8;
const CHECKSUM: usize = 16;

/// A transaction whose changes exceed this is committed durably by redb instead of logged.
pub(crate) const MAX_FRAME: usize = 4 << 20;
/// The log is checkpointed once it holds this many bytes.
pub(crate) const CHECKPOINT_AT: u64 = 8 << 20;
/// The log file grows by zero-filled steps of this size, so that most frames overwrite
/// allocated blocks and their sync need not also commit a change of the file's size.
const GROW_BY: u64 = 256 << 10;

/// Change kinds in a frame's payload.
pub(crate) const DIR_PUT: u8 = 1;
pub(crate) const DIR_DEL: u8 = 2;
pub(crate) const TOKEN_PUT: u8 = 3;
pub(crate) const TOKEN_DEL: u8 = 4;
pub(crate) const EXPIRY_PUT: u8 = 5;
pub(crate) const EXPIRY_DEL: u8 = 6;

/// What one transaction changed, as it will be logged: a sequence of
/// `kind u8 | key length u32 | key | value length u32 | value`.
#[derive(Debug, Default)]
pub(crate) struct Redo {
    /// Whether changes are recorded (the directory has a log).
    pub(crate) on: bool,
    /// The changes did not fit in a frame: the transaction must commit durably.
    pub(crate) overflow: bool,
    pub(crate) buf: Vec<u8>,
}

impl Redo {
    pub(crate) fn new(on: bool) -> Redo {
        Redo {
            on,
            overflow: false,
            buf: Vec::new(),
        }
    }

    /// Records a change.
    pub(crate) fn record(&mut self, kind: u8, key: &[u8], value: &[u8]) {
        if !self.on || self.overflow {
            return;
        }
        if self.buf.len() + key.len() + value.len() + 9 > MAX_FRAME {
            self.overflow = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.push(kind);
        push_bytes(&mut self.buf, key);
        push_bytes(&mut self.buf, value);
    }
}

fn push_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    // Frames are at most MAX_FRAME bytes, so lengths fit in u32.
    buf.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(b);
}

/// One change read back from a frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    pub(crate) kind: u8,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// Splits a frame's payload into its changes; `None` if it is malformed.
pub(crate) fn changes(mut p: &[u8]) -> Option<Vec<Change<'_>>> {
    fn take<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, rest) = p.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let (b, rest) = rest.split_at_checked(len)?;
        *p = rest;
        Some(b)
    }
    let mut out = Vec::new();
    while let Some((&kind, rest)) = p.split_first() {
        p = rest;
        let key = take(&mut p)?;
        let value = take(&mut p)?;
        if !(DIR_PUT..=EXPIRY_DEL).contains(&kind) {
            return None;
        }
        out.push(Change { kind, key, value });
    }
    Some(out)
}

/// Positioned I/O through `Seek` (portable; the log is only used under its mutex).
fn read_at(mut file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(pos))?;
    file.read_exact(buf)
}

fn write_at(mut file: &File, buf: &[u8], pos: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(pos))?;
    file.write_all(buf)
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match File::open(dir).and_then(|f| f.sync_all()) {
        // File systems that cannot fsync a folder.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Folders cannot be opened and synced elsewhere (Windows journals its metadata).
#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn checksum(b: &[u8]) -> [u8; CHECKSUM] {
    let d = Sha256::digest(b);
    let mut c = [0u8; CHECKSUM];
    c.copy_from_slice(d.get(..CHECKSUM).unwrap_or(&[0u8; CHECKSUM]));
    c
}

fn io_error(what: &str, e: &std::io::Error) -> Error {
    Error::Storage(format!("redo log: {what}: {e}"))
}

/// The log file and where the next frame goes.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    salt: u64,
    /// lsn of the last frame written (0: none yet).
    last_lsn: u64,
    /// Where the next frame is written.
    pos: u64,
    /// The file's length.
    len: u64,
    /// A frame buffer, reused.
    frame: Vec<u8>,
    /// Tests: the number of log I/O operations that succeed before every later one fails.
    fail_after: Option<u64>,
    /// Frames were written since the last sync (`Durability::Eventual`).
    unsynced: bool,
}

/// The log's path for a directory file: `<file name>.wal` beside it.
pub(crate) fn path_for(db: &Path) -> PathBuf {
    let mut name = db
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".wal");
    db.with_file_name(name)
}

impl Wal {
    /// Opens (creating if needed) the log at `path` and returns it with the frames that follow
    /// `applied` (the lsn recorded by the last durable commit), in order, as payloads.
    pub(crate) fn open(path: &Path, salt: u64, applied: u64) -> Result<(Wal, Vec<Vec<u8>>)> {
        let existed = path.exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_error("cannot open", &e))?;
        if !existed {
            // The new file's name must be durable before a frame in it is acknowledged.
            sync_parent(path).map_err(|e| io_error("cannot sync its folder", &e))?;
        }
        let len = file
            .metadata()
            .map_err(|e| io_error("cannot read", &e))?
            .len();
        let mut frames = Vec::new();
        let mut pos = 0u64;
        let mut expected = applied + 1;
        let mut header = [0u8; HEADER];
        while pos + (HEADER + CHECKSUM) as u64 <= len {
            if read_at(&file, &mut header, pos).is_err() {
                break;
            }
            let Some(f) = parse_header(&header) else {
                break;
            };
            if f.salt != salt || pos + f.frame_len() > len {
                break;
            }
            let mut body = vec![0u8; usize::try_from(f.frame_len()).unwrap_or(usize::MAX)];
            if read_at(&file, &mut body, pos).is_err() {
                break;
            }
            let (data, sum) = body.split_at(body.len() - CHECKSUM);
            if checksum(data) != sum {
                break;
            }
            if f.lsn > applied {
                if f.lsn != expected {
                    break;
                }
                let payload = data.get(HEADER..).unwrap_or(&[]);
                if changes(payload).is_none() {
                    return Err(Error::Corrupt(format!(
                        "redo log frame {} has a valid checksum but malformed changes",
                        f.lsn
                    )));
                }
                frames.push(payload.to_vec());
                expected += 1;
            }
            pos += f.frame_len();
        }
        let wal = Wal {
            file,
            salt,
            last_lsn: expected - 1,
            pos: 0,
            len,
            frame: Vec::new(),
            fail_after: None,
            unsynced: false,
        };
        Ok((wal, frames))
    }

    /// Makes every log I/O operation after the next `n` fail (for crash tests).
    #[cfg(feature = "__test-hooks")]
    pub(crate) fn fail_after(&mut self, n: u64) {
        self.fail_after = Some(n);
    }

    /// Counts one I/O operation; fails it when the failure injected for tests is due.
    fn io_tick(&mut self) -> Result<()> {
        match &mut self.fail_after {
            Some(0) => Err(Error::Storage("redo log: injected I/O failure".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The lsn of the last frame written.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.last_lsn
    }

    /// Whether the log has grown enough to be checkpointed.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.pos >= CHECKPOINT_AT
    }

    /// Appends one frame holding `payload`; syncs it when `durable`. Returns its lsn.
    pub(crate) fn append(&mut self, payload: &[u8], durable: bool) -> Result<u64> {
        let lsn = self.last_lsn + 1;
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(MAGIC);
        f.extend_from_slice(
            &u32::try_from(payload.len())
                .map_err(|_| Error::Storage("redo log: frame too large".into()))?
                .to_le_bytes(),
        );
        f.extend_from_slice(&lsn.to_le_bytes());
        f.extend_from_slice(&self.salt.to_le_bytes());
        f.extend_from_slice(payload);
        let sum = checksum(f);
        f.extend_from_slice(&sum);
        let end = self.pos + f.len() as u64;
        if end > self.len {
            let grown = end.div_ceil(GROW_BY) * GROW_BY;
            let zeros = vec![0u8; usize::try_from(grown - self.len).unwrap_or(0)];
            self.io_tick()?;
            write_at(&self.file, &zeros, self.len).map_err(|e| io_error("write failed", &e))?;
            self.len = grown;
        }
        self.io_tick()?;
        write_at(&self.file, &self.frame, self.pos).map_err(|e| io_error("write failed", &e))?;
        self.unsynced = true;
        self.pos += self.frame.len() as u64;
        self.last_lsn = lsn;
        if durable {
            self.sync()?;
        }
        Ok(lsn)
    }

    /// Syncs the frames written without a sync (`Durability::Eventual`), if any: a durable
    /// write that changed nothing still makes the writes before it durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.io_tick()?;
            self.file
                .sync_data()
                .map_err(|e| io_error("sync failed", &e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Whether frames were written since the last durable redb commit (a checkpoint has work).
    pub(crate) fn has_frames(&self) -> bool {
        self.pos > 0
    }

    /// After a durable redb commit that holds every frame: the next frame starts the log over.
    pub(crate) fn restart(&mut self) {
        self.pos = 0;
        self.unsynced = false;
    }
}

struct FrameHeader {
    len: u64,
    lsn: u64,
    salt: u64,
}

impl FrameHeader {
    fn frame_len(&self) -> u64 {
        HEADER as u64 + self.len + CHECKSUM as u64
    }
}

fn parse_header(h: &[u8; HEADER]) -> Option<FrameHeader> {
    let (magic, rest) = h.split_first_chunk::<4>()?;
    if magic != MAGIC {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let (lsn, rest) = rest.split_first_chunk::<8>()?;
    let (salt, _) = rest.split_first_chunk::<8>()?;
    let len = u64::from(u32::from_le_bytes(*len));
    if len > MAX_FRAME as u64 {
        return None;
    }
    Some(FrameHeader {
        len,
        lsn: u64::from_le_bytes(*lsn),
        salt: u64::from_le_bytes(*salt),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redo(changes: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
        let mut r = Redo::new(true);
        for (k, key, v) in changes {
            r.record(*k, key, v);
        }
        r.buf
    }

    #[test]
    fn frames_round_trip_and_stop_at_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.wal");
        let (mut w, frames) = Wal::open(&p, 7, 0).unwrap();
        assert!(frames.is_empty());
        let a = redo(&[(DIR_PUT, b"Ua", b"1"), (DIR_DEL, b"Lb", b"")]);
        let b = redo(&[(TOKEN_PUT, b"t", b"2")]);
        assert_eq!(w.append(&a, true).unwrap(), 1);
        assert_eq!(w.append(&b, false).unwrap(), 2);
        drop(w);
        let (w, frames) = Wal::open(&p, 7, 0).unwrap();
        assert_eq!(frames, vec![a.clone(), b.clone()]);
        assert_eq!(w.last_lsn(), 2);
        assert_eq!(
            changes(&frames[0]).unwrap(),
            vec![
                Change {
                    kind: DIR_PUT,
                    key: b"Ua",
                    value: b"1"
                },
                Change {
                    kind: DIR_DEL,
                    key: b"Lb",
                    value: b""
                }
            ]
        );
        // Frames already in the durable state are skipped.
        let (_, frames) = Wal::open(&p, 7, 1).unwrap();
        assert_eq!(frames, vec![b.clone()]);
        // Another directory's log is ignored.
        let (w, frames) = Wal::open(&p, 8, 0).unwrap();
        assert!(frames.is_empty());
        assert_eq!(w.last_lsn(), 0);
        // A flipped byte in the second frame cuts the log there.
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let second = (HEADER + a.len() + CHECKSUM) as u64;
        write_at(&f, &[0xff], second + HEADER as u64 + 2).unwrap();
        let (_, frames) = Wal::open(&p, 7, 0).unwrap();
        assert_eq!(frames, vec![a]);
    }

    #[test]
    fn restarted_log_never_replays_stale_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.wal");
        let (mut w, _) = Wal::open(&p, 1, 0).unwrap();
        let big = redo(&[(DIR_PUT, b"k", &[9u8; 300])]);
        for _ in 0..5 {
            w.append(&big, false).unwrap();
        }
        // Checkpointed at lsn 5; a new cycle writes a smaller frame over the first one.
        w.restart();
        let small = redo(&[(DIR_PUT, b"k", b"x")]);
        assert_eq!(w.append(&small, true).unwrap(), 6);
        drop(w);
        let (w, frames) = Wal::open(&p, 1, 5).unwrap();
        assert_eq!(frames, vec![small]);
        assert_eq!(w.last_lsn(), 6);
        // Nothing after the checkpoint: nothing to replay, numbering goes on.
        let (w, frames) = Wal::open(&p, 1, 6).unwrap();
        assert!(frames.is_empty());
        assert_eq!(w.last_lsn(), 6);
    }

    #[test]
    fn oversized_transactions_overflow() {
        let mut r = Redo::new(true);
        let v = vec![0u8; MAX_FRAME / 2];
        r.record(DIR_PUT, b"a", &v);
        assert!(!r.overflow);
        r.record(DIR_PUT, b"b", &v);
        assert!(r.overflow && r.buf.is_empty());
        let mut off = Redo::new(false);
        off.record(DIR_PUT, b"a", b"b");
        assert!(off.buf.is_empty() && !off.overflow);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert!(changes(&[DIR_PUT, 5, 0, 0, 0, 1]).is_none());
        assert!(changes(&[99, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert_eq!(changes(&[]), Some(vec![]));
    }
}
