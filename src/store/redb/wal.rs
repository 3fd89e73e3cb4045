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
//! value of every key the transaction wrote or removed. The log file is
//!
//! ```text
//! header (512 bytes): magic "UDWH" | version u32 (2) | salt u64 | epoch u64 | first lsn u64
//!                     | SHA-256(the 32 bytes before)[..16] | zeros
//! frames:             magic "UDW2" | payload length u32 | lsn u64 | epoch u64 | payload
//!                     | SHA-256(the frame before this field)[..16]
//! ```
//!
//! (integers little-endian). The payload is a list of changes (see [`Redo`]). `lsn` numbers
//! frames 1, 2, 3… across the life of the file; `salt` is a random number kept in the
//! directory's `meta` table, so a log left by another directory file is never replayed.
//!
//! Every durable redb commit (a checkpoint, a replay on open, a transaction too large for a
//! frame) records in `meta` the lsn of the last frame it contains. A crash loses the redb
//! commits made since the last durable one, never part of one; on open, the frames after the
//! recorded lsn are applied in order, in one transaction, and committed durably. Reading stops
//! at the first frame that is torn (checksum), of another epoch or out of sequence (lsn); a
//! frame is acknowledged only after its sync, and a sync covers every earlier frame, so what
//! is cut off there was never acknowledged. Changes are absolute (the final value of a key), so
//! applying a frame twice, or to a state that already holds it, gives the same result.
//!
//! # The invariant: the log never replays the past
//!
//! **A frame is replayed only if it was written after the last open, cut or checkpoint that
//! preceded it; no frame written before one of those is ever replayed after it.** It holds by
//! construction, through *epochs*:
//!
//! 1. After every open and every checkpoint (each leaves redb's durable state holding every
//!    frame the log may still contain, or the log was cut and its tail must be forgotten), the
//!    log is *fresh*: nothing is appended to it before a new header is written at offset 0,
//!    with a new random 64-bit epoch (different from the one it replaces) and the lsn its first
//!    frame will have.
//! 2. Every frame carries its epoch, and replay accepts only frames of the header's epoch,
//!    consecutive from the header's first lsn, each checked whole (SHA-256).
//! 3. An open that finds the log *cut* (reading stopped at damage or a torn frame rather than
//!    at the log's clean end: the end of the file, zeros, or a whole frame of an earlier epoch;
//!    also a foreign or pre-epoch log) starts the new epoch at once, synced, after redb holds
//!    what was replayed ([`Wal::reset_if_cut`]). So what an open left out is never read again,
//!    even if a later read of the same bytes would differ (a transient read error).
//! 4. So a frame of an earlier epoch (the tail left behind a cut, frames older than a
//!    checkpoint, frames a shorter new frame did not overwrite) never matches the header: it
//!    ends the replay. A header that is torn or damaged matches no frame, and replays nothing,
//!    which is right, since it is only ever written when redb already holds everything the log
//!    had (point 1). A new frame whose header write was lost carries an epoch the old header
//!    does not have, and the old epoch's frames are all already in redb.
//!
//! The header is not synced on its own: the first frame's sync covers it (`fdatasync` flushes
//! every write to the file before it), and until that sync nothing of the new epoch is
//! acknowledged. The chance that a stale frame carries the new random epoch is 2^-64 per
//! epoch, and it must then also sit exactly where the next frame is expected, with the next
//! lsn and a valid checksum. `tests/wal_model.rs` checks the invariant with random writes,
//! checkpoints, reopenings, crashes at every log I/O step and damage anywhere in the log.
//!
//! Logs written before epochs (frames with magic "UDW1" from offset 0, no header) are still
//! read once, and replaced by a fresh epoch at the next write.
//!
//! # Files
//!
//! The log lives beside the real directory file (links are resolved when opening). A log path
//! that is a symbolic link is refused, never followed. The log is created with the first frame,
//! with mode 0600: it holds password hashes, as the directory file does. An open writes
//! nothing when there is nothing to recover: no frame to replay and no cut log to reset.
//! A clean close, after its checkpoint, cuts the log to nothing ([`Wal::empty`]): a closed
//! directory keeps no frames already applied, and an empty log has nothing to replay.
//!
//! Directories on a custom [`Backend`](crate::Backend) (and in-memory ones) have
//! no log: their commits use redb's own durability directly.

use std::fs::File;
#[cfg(not(unix))]
use std::io::Write;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Frames of logs written before epochs (no header; read once, never written).
const MAGIC_V1: &[u8; 4] = b"UDW1";
const HEADER_V1: usize = 4 + 4 + 8 + 8;
const MAGIC: &[u8; 4] = b"UDW2";
const HEADER: usize = 4 + 4 + 8 + 8;
const CHECKSUM: usize = 16;
const LOG_MAGIC: &[u8; 4] = b"UDWH";
const LOG_VERSION: u32 = 2;
/// The log header's size: the first frame starts after it.
const LOG_HEADER: u64 = 512;
const LOG_HEADER_USED: usize = 4 + 4 + 8 + 8 + 8;

/// A transaction whose changes exceed this is committed durably by redb instead of logged.
pub(crate) const MAX_FRAME: usize = 4 << 20;
/// The log is checkpointed once it holds this many bytes.
pub(crate) const CHECKPOINT_AT: u64 = 8 << 20;
/// The log file grows by zero-filled steps of this size, so that most frames overwrite
/// allocated blocks and their sync need not also commit a change of the file's size.
const GROW_BY: u64 = 256 << 10;

/// The initial capacity of a transaction's change list.
const REDO_CAPACITY: usize = 1024;

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
            // A create or a login logs well under 1 KiB: one allocation instead of a string
            // of doublings as the changes are recorded.
            buf: if on {
                Vec::with_capacity(REDO_CAPACITY)
            } else {
                Vec::new()
            },
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

/// Writes `buf` at `pos`: one `pwrite` on Unix (a durable commit then costs exactly one write
/// and one `fdatasync`), a seek and a write elsewhere.
#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], pos: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, pos)
}

#[cfg(not(unix))]
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

/// Opens the existing log at `path` (`None` when there is none), refusing a symbolic link:
/// the log is always the regular file beside the directory, never another file it points to.
fn open_existing(path: &Path, write: bool) -> Result<Option<File>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::storage_io("redo log: cannot read", path, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::storage_io(
            "redo log: refusing to follow a symbolic link at the log's path",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    if !meta.is_file() {
        return Err(Error::storage_io(
            "redo log: not a regular file",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| Error::storage_io("redo log: cannot open", path, e))?;
    // The name may have been swapped for a link between the check and the open.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = file
            .metadata()
            .map_err(|e| Error::storage_io("redo log: cannot read", path, e))?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(Error::storage_io(
                "redo log: the file changed while it was opened",
                path,
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
    }
    Ok(Some(file))
}

/// Creates the log at `path`: a new file (never through a link: `create_new` refuses any
/// existing name), mode 0600, its name made durable before a frame in it is acknowledged.
fn create(path: &Path) -> Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = match o.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return open_existing(path, true)?
                .ok_or_else(|| Error::storage_io("redo log: cannot create", path, e));
        }
        Err(e) => return Err(Error::storage_io("redo log: cannot create", path, e)),
    };
    sync_parent(path)
        .map_err(|e| Error::storage_io("redo log: cannot sync its folder", path, e))?;
    Ok(file)
}

/// What reading a log found.
struct Found {
    /// Payloads of the frames after `applied`, in order.
    frames: Vec<Vec<u8>>,
    /// The epoch of the log's header (0: none).
    epoch: u64,
    /// The log was cut: reading stopped at something other than its clean end (the end of the
    /// file, zeros, or a whole frame header of an earlier epoch): damage, a torn frame, a
    /// foreign or pre-epoch log.
    cut: bool,
}

impl Found {
    fn none(cut: bool) -> Found {
        Found {
            frames: Vec::new(),
            epoch: 0,
            cut,
        }
    }
}

/// Whether the `n` bytes at `pos` are all zero (or cannot be read: past the end).
fn zeros_at(file: &File, pos: u64, n: usize) -> bool {
    let mut b = vec![0u8; n];
    read_at(file, &mut b, pos).map_or(true, |()| b.iter().all(|x| *x == 0))
}

/// Reads the frames after `applied` from a log (either format).
fn read_log(file: &File, len: u64, salt: u64, applied: u64) -> Result<Found> {
    let mut magic = [0u8; 4];
    if len < 4 || read_at(file, &mut magic, 0).is_err() {
        return Ok(Found::none(len > 0));
    }
    if &magic == MAGIC_V1 {
        return read_v1(file, len, salt, applied);
    }
    let mut h = [0u8; LOG_HEADER_USED + CHECKSUM];
    let Some(header) = read_at(file, &mut h, 0)
        .ok()
        .and_then(|()| parse_log_header(&h))
        .filter(|hd| hd.salt == salt)
    else {
        // No valid header of this directory: nothing to replay (a log never written to past
        // its zero-filled start is not cut).
        let header_len = usize::try_from(len.min(LOG_HEADER)).unwrap_or(0);
        return Ok(Found::none(!zeros_at(file, 0, header_len)));
    };
    let mut frames = Vec::new();
    if header.first_lsn > applied.saturating_add(1) {
        // The log starts after what redb holds (the directory file is older than its log, a
        // restored copy): its frames cannot be applied in order.
        return Ok(Found {
            frames,
            epoch: header.epoch,
            cut: true,
        });
    }
    let mut pos = LOG_HEADER;
    let mut expected = header.first_lsn;
    let mut fh = [0u8; HEADER];
    let mut cut = false;
    while pos + (HEADER + CHECKSUM) as u64 <= len {
        if read_at(file, &mut fh, pos).is_err() {
            cut = true;
            break;
        }
        let Some(f) = parse_frame_header(&fh, MAGIC) else {
            cut = fh.iter().any(|b| *b != 0);
            break;
        };
        if f.tag != header.epoch {
            // A frame of an earlier epoch: the clean end of this one.
            break;
        }
        if f.lsn != expected || pos + f.frame_len() > len {
            cut = true;
            break;
        }
        let Some(payload) = read_frame(file, pos, &f)? else {
            cut = true;
            break;
        };
        if f.lsn > applied {
            frames.push(payload);
        }
        expected += 1;
        pos += f.frame_len();
    }
    if pos < len && pos + (HEADER + CHECKSUM) as u64 > len {
        // A few bytes left at the end: a torn frame, unless they are zeros.
        let rest = usize::try_from(len - pos).unwrap_or(0);
        cut |= !zeros_at(file, pos, rest);
    }
    Ok(Found {
        frames,
        epoch: header.epoch,
        cut,
    })
}

/// A pre-epoch log: frames from offset 0, tagged with the directory's salt.
fn read_v1(file: &File, len: u64, salt: u64, applied: u64) -> Result<Found> {
    let mut frames = Vec::new();
    let mut pos = 0u64;
    let mut expected = applied + 1;
    let mut fh = [0u8; HEADER_V1];
    while pos + (HEADER_V1 + CHECKSUM) as u64 <= len {
        if read_at(file, &mut fh, pos).is_err() {
            break;
        }
        let Some(f) = parse_frame_header(&fh, MAGIC_V1) else {
            break;
        };
        if f.tag != salt || pos + f.frame_len() > len {
            break;
        }
        let Some(payload) = read_frame(file, pos, &f)? else {
            break;
        };
        if f.lsn > applied {
            if f.lsn != expected {
                break;
            }
            frames.push(payload);
            expected += 1;
        }
        pos += f.frame_len();
    }
    // A pre-epoch log is always replaced by a fresh epoch.
    Ok(Found {
        frames,
        epoch: 0,
        cut: true,
    })
}

/// The payload of the frame at `pos`, `None` if its checksum fails.
fn read_frame(file: &File, pos: u64, f: &FrameHeader) -> Result<Option<Vec<u8>>> {
    let mut body = vec![0u8; usize::try_from(f.frame_len()).unwrap_or(usize::MAX)];
    if read_at(file, &mut body, pos).is_err() {
        return Ok(None);
    }
    let (data, sum) = body.split_at(body.len() - CHECKSUM);
    if checksum(data) != sum {
        return Ok(None);
    }
    let payload = data.get(HEADER..).unwrap_or(&[]);
    if changes(payload).is_none() {
        return Err(Error::Corrupt(format!(
            "redo log frame {} has a valid checksum but malformed changes",
            f.lsn
        )));
    }
    Ok(Some(payload.to_vec()))
}

/// The log file and where the next frame goes.
#[derive(Debug)]
pub(crate) struct Wal {
    path: PathBuf,
    /// `None` until the first frame creates the file.
    file: Option<File>,
    salt: u64,
    /// The epoch of the frames being written.
    epoch: u64,
    /// A new epoch (header) must be written before the next frame (see the module docs).
    fresh: bool,
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
    /// Opening found the log cut (see [`Wal::reset_if_cut`]).
    cut: bool,
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

/// For a read-only open: the number of frames after `applied` that the log at `path` holds
/// (writes acknowledged but not yet in the directory file). Writes nothing.
pub(crate) fn pending_frames(path: &Path, salt: u64, applied: u64) -> Result<usize> {
    let Some(file) = open_existing(path, false)? else {
        return Ok(0);
    };
    let len = file
        .metadata()
        .map_err(|e| Error::storage_io("redo log: cannot read", path, e))?
        .len();
    Ok(read_log(&file, len, salt, applied)?.frames.len())
}

impl Wal {
    /// Opens the log at `path`, if there is one, and returns it with the frames that follow
    /// `applied` (the lsn recorded by the last durable commit), in order, as payloads. Writes
    /// nothing: the file is created by the first frame. The log is fresh (see the module docs).
    pub(crate) fn open(path: &Path, salt: u64, applied: u64) -> Result<(Wal, Vec<Vec<u8>>)> {
        let file = open_existing(path, true)?;
        let (len, found) = match &file {
            Some(f) => {
                let len = f
                    .metadata()
                    .map_err(|e| Error::storage_io("redo log: cannot read", path, e))?
                    .len();
                (len, read_log(f, len, salt, applied)?)
            }
            None => (0, Found::none(false)),
        };
        let last_lsn = applied + found.frames.len() as u64;
        let wal = Wal {
            path: path.to_path_buf(),
            file,
            salt,
            epoch: found.epoch,
            fresh: true,
            last_lsn,
            pos: LOG_HEADER,
            len,
            frame: Vec::new(),
            fail_after: None,
            unsynced: false,
            cut: found.cut,
        };
        Ok((wal, found.frames))
    }

    /// After opening, once redb's durable state holds every frame replayed: when the log was
    /// cut (damage, a torn frame, a foreign or pre-epoch log), starts a new epoch at once and
    /// syncs it, so that no later open can read past the cut differently (a transient read
    /// error, a second change to the same bytes) and replay frames this open left out. An
    /// open whose log ends cleanly writes nothing here.
    pub(crate) fn reset_if_cut(&mut self) -> Result<()> {
        if !self.cut {
            return Ok(());
        }
        self.start_epoch()?;
        self.io_tick()?;
        if let Some(file) = &self.file {
            file.sync_data().map_err(self.io_error("sync failed"))?;
        }
        self.unsynced = false;
        self.cut = false;
        Ok(())
    }

    /// Makes every log I/O operation after the next `n` fail (for crash tests).
    #[cfg(any(test, feature = "__test-hooks"))]
    pub(crate) fn fail_after(&mut self, n: u64) {
        self.fail_after = Some(n);
    }

    /// Counts one I/O operation; fails it when the failure injected for tests is due.
    fn io_tick(&mut self) -> Result<()> {
        match &mut self.fail_after {
            Some(0) => Err(Error::storage_io(
                "redo log: injected I/O failure",
                &self.path,
                std::io::Error::other("injected"),
            )),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn io_error(&self, what: &str) -> impl FnOnce(std::io::Error) -> Error {
        let path = self.path.clone();
        let what = format!("redo log: {what}");
        move |e| Error::storage_io(what, &path, e)
    }

    /// The lsn of the last frame written.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.last_lsn
    }

    /// Whether the log has grown enough to be checkpointed.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.pos >= CHECKPOINT_AT
    }

    /// Grows the file with zeros so that `end` fits.
    fn reserve(&mut self, end: u64) -> Result<()> {
        if end <= self.len {
            return Ok(());
        }
        let grown = end.div_ceil(GROW_BY) * GROW_BY;
        let zeros = vec![0u8; usize::try_from(grown - self.len).unwrap_or(0)];
        self.io_tick()?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::storage_msg("redo log: no file"))?;
        write_at(file, &zeros, self.len).map_err(self.io_error("write failed"))?;
        self.len = grown;
        Ok(())
    }

    /// Starts a new epoch: a header with a new random epoch and the next lsn at offset 0
    /// (see the module docs: redb's durable state holds everything the log held).
    fn start_epoch(&mut self) -> Result<()> {
        if self.file.is_none() {
            self.io_tick()?;
            self.file = Some(create(&self.path)?);
            self.len = 0;
        }
        let mut epoch: u64 = rand::random();
        while epoch == self.epoch || epoch == 0 {
            epoch = epoch.wrapping_add(1);
        }
        let mut h = Vec::with_capacity(LOG_HEADER_USED + CHECKSUM);
        h.extend_from_slice(LOG_MAGIC);
        h.extend_from_slice(&LOG_VERSION.to_le_bytes());
        h.extend_from_slice(&self.salt.to_le_bytes());
        h.extend_from_slice(&epoch.to_le_bytes());
        h.extend_from_slice(&(self.last_lsn + 1).to_le_bytes());
        let sum = checksum(&h);
        h.extend_from_slice(&sum);
        self.reserve(LOG_HEADER)?;
        self.io_tick()?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::storage_msg("redo log: no file"))?;
        write_at(file, &h, 0).map_err(self.io_error("write failed"))?;
        self.unsynced = true;
        self.epoch = epoch;
        self.pos = LOG_HEADER;
        self.fresh = false;
        Ok(())
    }

    /// Appends one frame holding `payload`; syncs it when `durable`. Returns its lsn.
    pub(crate) fn append(&mut self, payload: &[u8], durable: bool) -> Result<u64> {
        if self.fresh {
            self.start_epoch()?;
        }
        let lsn = self.last_lsn + 1;
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(MAGIC);
        f.extend_from_slice(
            &u32::try_from(payload.len())
                .map_err(|_| Error::storage_msg("redo log: frame too large"))?
                .to_le_bytes(),
        );
        f.extend_from_slice(&lsn.to_le_bytes());
        f.extend_from_slice(&self.epoch.to_le_bytes());
        f.extend_from_slice(payload);
        let sum = checksum(f);
        f.extend_from_slice(&sum);
        let end = self.pos + f.len() as u64;
        self.reserve(end)?;
        self.io_tick()?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::storage_msg("redo log: no file"))?;
        write_at(file, &self.frame, self.pos).map_err(self.io_error("write failed"))?;
        self.unsynced = true;
        self.pos = end;
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
            if let Some(file) = &self.file {
                file.sync_data().map_err(self.io_error("sync failed"))?;
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// Whether frames were written since the last durable redb commit (a checkpoint has work).
    pub(crate) fn has_frames(&self) -> bool {
        !self.fresh && self.pos > LOG_HEADER
    }

    /// At a clean close, after the checkpoint (redb's durable state holds every frame the log
    /// has): cuts the log file to nothing, so that a closed directory does not keep up to
    /// [`CHECKPOINT_AT`] + [`MAX_FRAME`] bytes of frames already applied. Not synced: a crash
    /// leaves either the old frames, which are all at or before the lsn that redb recorded and
    /// are skipped, or an empty log; an empty log is a log with nothing to replay, not a cut
    /// one. The next frame starts a new epoch, growing the file again.
    pub(crate) fn empty(&mut self) -> Result<()> {
        self.restart();
        if self.len == 0 {
            return Ok(());
        }
        self.io_tick()?;
        if let Some(file) = &self.file {
            file.set_len(0).map_err(self.io_error("truncate failed"))?;
        }
        self.len = 0;
        Ok(())
    }

    /// After a durable redb commit that holds every frame: the next frame starts a new epoch
    /// at the start of the log.
    pub(crate) fn restart(&mut self) {
        self.pos = LOG_HEADER;
        self.fresh = true;
        self.unsynced = false;
    }
}

struct FrameHeader {
    len: u64,
    lsn: u64,
    /// The epoch (salt in pre-epoch logs).
    tag: u64,
}

impl FrameHeader {
    fn frame_len(&self) -> u64 {
        HEADER as u64 + self.len + CHECKSUM as u64
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // the magic constants are passed as they are declared
fn parse_frame_header(h: &[u8; HEADER], magic: &[u8; 4]) -> Option<FrameHeader> {
    let (m, rest) = h.split_first_chunk::<4>()?;
    if m != magic {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let (lsn, rest) = rest.split_first_chunk::<8>()?;
    let (tag, _) = rest.split_first_chunk::<8>()?;
    let len = u64::from(u32::from_le_bytes(*len));
    if len > MAX_FRAME as u64 {
        return None;
    }
    Some(FrameHeader {
        len,
        lsn: u64::from_le_bytes(*lsn),
        tag: u64::from_le_bytes(*tag),
    })
}

struct LogHeader {
    salt: u64,
    epoch: u64,
    first_lsn: u64,
}

fn parse_log_header(h: &[u8; LOG_HEADER_USED + CHECKSUM]) -> Option<LogHeader> {
    let (data, sum) = h.split_at(LOG_HEADER_USED);
    if checksum(data) != sum {
        return None;
    }
    let (m, rest) = data.split_first_chunk::<4>()?;
    let (version, rest) = rest.split_first_chunk::<4>()?;
    if m != LOG_MAGIC || u32::from_le_bytes(*version) != LOG_VERSION {
        return None;
    }
    let (salt, rest) = rest.split_first_chunk::<8>()?;
    let (epoch, rest) = rest.split_first_chunk::<8>()?;
    let (first, _) = rest.split_first_chunk::<8>()?;
    Some(LogHeader {
        salt: u64::from_le_bytes(*salt),
        epoch: u64::from_le_bytes(*epoch),
        first_lsn: u64::from_le_bytes(*first),
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
        let second = LOG_HEADER + (HEADER + a.len() + CHECKSUM) as u64;
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

    /// The tail behind a cut is never replayed, even when a new frame of the same size and
    /// the next lsn is written over the damaged one.
    #[test]
    fn the_tail_behind_a_cut_is_never_replayed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.wal");
        let (mut w, _) = Wal::open(&p, 3, 0).unwrap();
        let frames: Vec<Vec<u8>> = (0..3u8)
            .map(|i| redo(&[(DIR_PUT, &[b'k', i], b"old")]))
            .collect();
        for f in &frames {
            w.append(f, true).unwrap();
        }
        drop(w);
        // Damage the first frame: the log is cut before it.
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        write_at(&f, &[0xee], LOG_HEADER + HEADER as u64 + 1).unwrap();
        let (mut w, replay) = Wal::open(&p, 3, 0).unwrap();
        assert!(replay.is_empty());
        assert_eq!(w.last_lsn(), 0);
        // A new first frame of the same size: the old frames 2 and 3 follow it on disk.
        let new = redo(&[(DIR_PUT, b"k\x09", b"new")]);
        assert_eq!(new.len(), frames[0].len());
        assert_eq!(w.append(&new, true).unwrap(), 1);
        drop(w);
        let (w, replay) = Wal::open(&p, 3, 0).unwrap();
        assert_eq!(replay, vec![new]);
        assert_eq!(w.last_lsn(), 1);
        // A damaged header replays nothing.
        write_at(&f, &[0xee], 20).unwrap();
        let (_, replay) = Wal::open(&p, 3, 0).unwrap();
        assert!(replay.is_empty());
    }

    /// An open that cut the log resets it: a later open that reads the cut bytes differently
    /// (here, the damage undone) still replays nothing from before.
    #[test]
    fn a_cut_is_final() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.wal");
        let (mut w, _) = Wal::open(&p, 4, 0).unwrap();
        w.append(&redo(&[(DIR_PUT, b"k", b"v")]), true).unwrap();
        drop(w);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let mut b = [0u8; 1];
        read_at(&f, &mut b, 20).unwrap();
        write_at(&f, &[b[0] ^ 0xff], 20).unwrap();
        let (mut w, replay) = Wal::open(&p, 4, 0).unwrap();
        assert!(replay.is_empty());
        w.restart();
        w.reset_if_cut().unwrap();
        drop(w);
        // The same change again, which would have undone the damage to the old header.
        read_at(&f, &mut b, 20).unwrap();
        write_at(&f, &[b[0] ^ 0xff], 20).unwrap();
        let (mut w, replay) = Wal::open(&p, 4, 0).unwrap();
        assert!(
            replay.is_empty(),
            "a frame left out by an earlier open came back"
        );
        w.restart();
        w.reset_if_cut().unwrap();
        drop(w);
        // A clean log is not reset: opening it writes nothing.
        let (mut w, replay) = Wal::open(&p, 4, 0).unwrap();
        assert!(replay.is_empty());
        let before = std::fs::read(&p).unwrap();
        w.restart();
        w.reset_if_cut().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn pre_epoch_logs_are_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.wal");
        let a = redo(&[(DIR_PUT, b"Ua", b"1")]);
        let mut log = Vec::new();
        for lsn in 1..=2u64 {
            let start = log.len();
            log.extend_from_slice(MAGIC_V1);
            log.extend_from_slice(&u32::try_from(a.len()).unwrap().to_le_bytes());
            log.extend_from_slice(&lsn.to_le_bytes());
            log.extend_from_slice(&5u64.to_le_bytes());
            log.extend_from_slice(&a);
            let sum = checksum(&log[start..]);
            log.extend_from_slice(&sum);
        }
        std::fs::write(&p, &log).unwrap();
        let (w, replay) = Wal::open(&p, 5, 1).unwrap();
        assert_eq!(replay, vec![a]);
        assert_eq!(w.last_lsn(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_log_path_is_refused_and_new_logs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("victim");
        std::fs::write(&target, b"keep me").unwrap();
        let p = tmp.path().join("x.wal");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(matches!(Wal::open(&p, 1, 0), Err(Error::Storage(_))));
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        std::fs::remove_file(&p).unwrap();
        let (mut w, _) = Wal::open(&p, 1, 0).unwrap();
        assert!(!p.exists(), "opening writes nothing");
        w.append(&redo(&[(DIR_PUT, b"a", b"b")]), true).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
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
