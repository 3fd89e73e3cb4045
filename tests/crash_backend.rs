//! Crash torture over a storage backend that fails every I/O after N operations, as redb's own
//! fuzzer does: for many N, run a fixed sequence of operations until the failure, "crash", reopen
//! on the surviving bytes with failures off, and compare with the reference model: every
//! acknowledged operation is present, the one that failed is applied entirely or not at all,
//! and `check_integrity()` passes.
//!
//! Three crash models for the bytes that survive:
//! * `KeepAll`: every write that reached the backend survives (a process crash: the OS keeps
//!   its page cache);
//! * `LoseUnsynced`: only what was synced survives (power loss);
//! * `TornUnsynced`: what was synced, plus a random subset of the later writes (power loss with
//!   a page cache that flushed some pages in any order).
//!
//! Every commit uses `Durability::Immediate`, so every acknowledged write must survive each
//! model. A crash while the directory is being created (the first I/O calls) must leave a backend
//! that opens as a directory (redb writes its magic number last; userdir takes a backend without
//! one for an interrupted creation and starts it afresh), never one redb refuses for ever. `USERDIR_CRASH_POINTS` sets how many N are tried per model and sequence (default 40),
//! `USERDIR_CRASH_SEQS` how many random sequences (default 2).

mod fuzz_bodies;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuzz_bodies::model::{self, Model, Op, Outcome, Rng};
use userdir::{
    Argon2Params, Backend, Directory, Durability, ManualClock, MemoryBackend, StoredHash,
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashModel {
    KeepAll,
    LoseUnsynced,
    TornUnsynced,
}

/// What the "disk" holds: the live bytes, and for the power-loss models the synced image and
/// the writes since.
#[derive(Debug, Default)]
struct Disk {
    durable: Vec<u8>,
    /// `(offset, bytes)` writes and `(len, None)` resizes since the last sync, in order.
    unsynced: Vec<(u64, Option<Vec<u8>>)>,
}

/// A backend over a shared [`MemoryBackend`] that fails every call from the `countdown`-th on.
#[derive(Debug)]
struct FailingBackend {
    inner: Arc<MemoryBackend>,
    disk: Arc<Mutex<Disk>>,
    countdown: Arc<AtomicU64>,
    /// I/O calls made (for sizing the crash points).
    calls: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl FailingBackend {
    fn tick(&self) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failed.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected failure (disk gone)"));
        }
        let left = self.countdown.load(Ordering::SeqCst);
        if left == 0 {
            self.failed.store(true, Ordering::SeqCst);
            return Err(io::Error::other("injected failure"));
        }
        if left != u64::MAX {
            self.countdown.store(left - 1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl Backend for FailingBackend {
    fn len(&self) -> io::Result<u64> {
        self.tick()?;
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.tick()?;
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.tick()?;
        self.inner.set_len(len)?;
        self.disk.lock().unwrap().unsynced.push((len, None));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_data()?;
        let len = self.inner.len()?;
        let mut image = vec![0; usize::try_from(len).unwrap()];
        self.inner.read(0, &mut image)?;
        let mut disk = self.disk.lock().unwrap();
        disk.durable = image;
        disk.unsynced.clear();
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.tick()?;
        self.inner.write(offset, data)?;
        self.disk
            .lock()
            .unwrap()
            .unsynced
            .push((offset, Some(data.to_vec())));
        Ok(())
    }
}

/// The bytes that survive a crash, as a fresh in-memory backend.
fn survivor(live: &MemoryBackend, disk: &Disk, crash: CrashModel, rng: &mut Rng) -> MemoryBackend {
    let out = MemoryBackend::new();
    let mut image = match crash {
        CrashModel::KeepAll => {
            let mut b = vec![0; usize::try_from(live.len().unwrap()).unwrap()];
            live.read(0, &mut b).unwrap();
            b
        }
        CrashModel::LoseUnsynced | CrashModel::TornUnsynced => disk.durable.clone(),
    };
    if crash == CrashModel::TornUnsynced {
        for (at, data) in &disk.unsynced {
            match data {
                None => image.resize(usize::try_from(*at).unwrap(), 0),
                Some(d) if rng.chance(50) => {
                    let at = usize::try_from(*at).unwrap();
                    if image.len() < at + d.len() {
                        image.resize(at + d.len(), 0);
                    }
                    image[at..at + d.len()].copy_from_slice(d);
                }
                Some(_) => {}
            }
        }
    }
    out.set_len(image.len() as u64).unwrap();
    out.write(0, &image).unwrap();
    out
}

struct Setup {
    inner: Arc<MemoryBackend>,
    disk: Arc<Mutex<Disk>>,
    calls: Arc<AtomicU64>,
}

fn open(backend: FailingBackend) -> userdir::Result<Directory> {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .durability(Durability::Immediate)
        .open_backend(backend)
}

fn backend(inner: Arc<MemoryBackend>, countdown: u64) -> (FailingBackend, Setup) {
    let disk = Arc::new(Mutex::new(Disk::default()));
    let calls = Arc::new(AtomicU64::new(0));
    let b = FailingBackend {
        inner: inner.clone(),
        disk: disk.clone(),
        countdown: Arc::new(AtomicU64::new(countdown)),
        calls: calls.clone(),
        failed: Arc::new(AtomicBool::new(false)),
    };
    (b, Setup { inner, disk, calls })
}

/// A deterministic operation sequence with explicit ids (so an operation whose outcome is
/// unknown still has a known effect).
fn sequence(seed: u64, len: usize) -> Vec<Op> {
    let mut rng = Rng(seed);
    let bytes: Vec<u8> = (0..len * 6).map(|_| rng.byte()).collect();
    model::ops_from_bytes(&bytes, false)
        .into_iter()
        .map(|op| explicit_ids(op, &mut rng))
        .take(len)
        .collect()
}

fn explicit_ids(op: Op, rng: &mut Rng) -> Op {
    match op {
        Op::Create {
            id: None,
            username,
            email,
            external,
            active,
            password,
        } => Op::Create {
            id: Some(rng.byte()),
            username,
            email,
            external,
            active,
            password,
        },
        Op::Write(a, b, f) => Op::Write(
            Box::new(explicit_ids(*a, rng)),
            Box::new(explicit_ids(*b, rng)),
            f,
        ),
        other => other,
    }
}

fn is_io(r: &Outcome) -> bool {
    matches!(
        r,
        Err(model::ErrKind::Storage | model::ErrKind::NeedsReopen)
    )
}

/// The result of one crash run.
#[derive(Debug)]
enum Run {
    /// The directory could not even be created before the failure; `fresh_start` when the
    /// crash left a backend without redb's magic number (an interrupted creation), which the
    /// reopen started afresh.
    FailedAtOpen { fresh_start: bool },
    /// `acked` operations were acknowledged, the next one failed with an I/O error; a write
    /// after it answered `NeedsReopen` (rather than a plain storage error) if `needs_reopen`.
    Crashed { acked: usize, needs_reopen: bool },
    /// No failure happened: N was past the end.
    Completed,
}

/// Runs `ops` with failures after `n` I/O calls, crashes, reopens, and checks. Returns how the
/// run went, or the problem found.
fn crash_run(
    ops: &[Op],
    n: u64,
    crash: CrashModel,
    hash: &StoredHash,
    seed: u64,
) -> Result<Run, String> {
    let inner = Arc::new(MemoryBackend::new());
    let (b, setup) = backend(inner, n);
    let mut model = Model::default();
    // The states the reopened directory may be in: the model after every acknowledged op, or
    // that plus the operation that failed.
    let mut candidates: Vec<Model> = Vec::new();
    let mut run = Run::Completed;
    match open(b) {
        Err(e) => {
            if !matches!(
                e,
                userdir::Error::Storage(_) | userdir::Error::NotAUserdirFile(_)
            ) {
                return Err(format!("open failed with an unexpected error: {e}"));
            }
            run = Run::FailedAtOpen { fresh_start: false };
            candidates.push(Model::default());
        }
        Ok(dir) => {
            for (i, op) in ops.iter().enumerate() {
                let actual = model::run(&dir, &model, op, hash);
                if is_io(&actual) {
                    let mut after = model.clone();
                    let _ = after.apply(op, &mut || None);
                    candidates.push(model.clone());
                    candidates.push(after);
                    // Further writes are refused until the file is reopened.
                    let again = model::run(&dir, &model, &Op::Deactivate(0), hash);
                    if !is_io(&again) {
                        return Err(format!("after an I/O failure, a write returned {again:?}"));
                    }
                    run = Run::Crashed {
                        acked: i,
                        needs_reopen: again == Err(model::ErrKind::NeedsReopen),
                    };
                    break;
                }
                model::apply_and_compare(&mut model, op, &actual)
                    .map_err(|e| format!("before the crash, op {i}: {e}"))?;
            }
            if candidates.is_empty() {
                candidates.push(model.clone());
            }
            // The crash: drop the handle (its close fails like everything else after N).
            drop(dir);
        }
    }
    let mut rng = Rng(seed ^ n);
    let image = {
        let disk = setup.disk.lock().unwrap();
        survivor(&setup.inner, &disk, crash, &mut rng)
    };
    if let Run::FailedAtOpen { fresh_start } = &mut run {
        let mut magic = [0u8; 9];
        let len = usize::try_from(image.len().unwrap())
            .unwrap()
            .min(magic.len());
        image.read(0, &mut magic[..len]).unwrap();
        *fresh_start = len > 0 && magic[..len].iter().all(|b| *b == 0);
    }
    let (b, _) = backend(Arc::new(image), u64::MAX);
    let reopened = match catch_unwind(AssertUnwindSafe(|| open(b)))
        .map_err(|p| format!("PANIC while reopening: {}", panic_message(&p)))?
    {
        Ok(d) => d,
        Err(e) => return Err(format!("reopen after the crash ({run:?}) failed: {e}")),
    };
    let mut errors = Vec::new();
    for m in &candidates {
        match catch_unwind(AssertUnwindSafe(|| model::compare(&reopened, m))) {
            Ok(Ok(())) => {
                // Writes work again after the reopen.
                let probe = Op::Create {
                    id: Some(250),
                    username: None,
                    email: Some(9),
                    external: None,
                    active: true,
                    password: false,
                };
                let mut m = m.clone();
                let actual = model::run(&reopened, &m, &probe, hash);
                model::apply_and_compare(&mut m, &probe, &actual)
                    .and_then(|()| model::compare(&reopened, &m))
                    .map_err(|e| format!("write after reopen: {e}"))?;
                return Ok(run);
            }
            Ok(Err(e)) => errors.push(e),
            Err(p) => return Err(format!("PANIC while reading: {}", panic_message(&p))),
        }
    }
    Err(format!(
        "after the crash ({run:?}) the directory matches no allowed state: {}",
        errors.join(" | ")
    ))
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn torture(crash: CrashModel) {
    let points = env_u64("USERDIR_CRASH_POINTS", 40);
    let seqs = env_u64("USERDIR_CRASH_SEQS", 2);
    let hash = {
        let (b, _) = backend(Arc::new(MemoryBackend::new()), u64::MAX);
        model::prehashed(&open(b).unwrap())
    };
    let mut findings = Vec::new();
    let (mut crashed, mut at_open, mut total) = (0, 0, 0);
    let (mut fresh_starts, mut plain_storage, mut acked_total) = (0, 0, 0);
    for s in 0..seqs {
        let seed = 0xC0FFEE + s;
        let ops = sequence(seed, 30);
        // How many I/O calls the whole sequence makes without failures.
        let calls = {
            let (b, setup) = backend(Arc::new(MemoryBackend::new()), u64::MAX);
            let dir = open(b).unwrap();
            let mut m = Model::default();
            for op in &ops {
                let r = model::run(&dir, &m, op, &hash);
                model::apply_and_compare(&mut m, op, &r).unwrap();
            }
            setup.calls.load(Ordering::SeqCst)
        };
        let mut rng = Rng(seed);
        let mut ns: Vec<u64> = if points >= calls {
            (0..calls).collect()
        } else {
            (0..points)
                .map(|i| {
                    if i < 12 {
                        i // the first calls: creating the file
                    } else {
                        rng.below(calls)
                    }
                })
                .collect()
        };
        ns.sort_unstable();
        ns.dedup();
        for n in ns {
            total += 1;
            match crash_run(&ops, n, crash, &hash, seed) {
                Ok(Run::Crashed {
                    needs_reopen,
                    acked,
                }) => {
                    crashed += 1;
                    acked_total += acked;
                    if !needs_reopen {
                        plain_storage += 1;
                    }
                }
                Ok(Run::FailedAtOpen { fresh_start }) => {
                    at_open += 1;
                    fresh_starts += usize::from(fresh_start);
                }
                Ok(Run::Completed) => {}
                Err(e) => findings.push(format!("seq {s} N={n}: {e}")),
            }
        }
        eprintln!("{crash:?}: sequence {s}: {calls} I/O calls without failures");
    }
    eprintln!(
        "{crash:?}: {total} crash points, {crashed} crashed mid-sequence \
         (after {acked_total} acknowledged operations in all), {at_open} at open, \
         {} findings; writes after a failure answered Storage instead of NeedsReopen {} times; \
         {} crashes during creation left a backend without redb's magic number, each reopened \
         as a fresh directory",
        findings.len(),
        plain_storage,
        fresh_starts
    );
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    // The first twelve N (creating the directory) are always tried: some of them crash between
    // redb's first write and its magic number.
    assert!(
        points < 12 || fresh_starts > 0,
        "no crash hit the creation of the directory: the crash points are wrong"
    );
    assert!(
        crashed > 0,
        "no run crashed mid-sequence: the crash points are wrong"
    );
}

#[test]
fn crash_keep_all_writes() {
    torture(CrashModel::KeepAll);
}

#[test]
fn crash_lose_unsynced_writes() {
    torture(CrashModel::LoseUnsynced);
}

#[test]
fn crash_torn_unsynced_writes() {
    torture(CrashModel::TornUnsynced);
}
