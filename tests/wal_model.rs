//! A model-based crash test of the redo log (issue 14): random sequences of writes, checkpoints,
//! clean reopenings, crashes (also at every log I/O step, through injected failures) and damage
//! anywhere in the log (flipped bytes, truncation, a damaged header). After every reopen:
//!
//! - the directory equals the state after some prefix of the acknowledged writes (a write that
//!   failed may be there too, whole, as the last one: its frame can reach the file before its
//!   sync fails);
//! - exactly all acknowledged writes are there when nothing damaged the log;
//! - `check_integrity` passes.
//!
//! The expected states come from the directory's own `dump` after each acknowledged write, and
//! for a failed write from a shadow in-memory directory that replays the same writes. Lost
//! writes (damage) shorten the history: later crashes are judged against what survived, so a
//! frame from before a cut coming back (accounts back from the dead) fails the test.
//!
//! A crash is simulated as in `tests/wal.rs`: the directory file and its log are copied while
//! the directory is open (what a killed process leaves).
//!
//! Size: `USERDIR_WAL_MODEL_CASES` cases (default 12) of `USERDIR_WAL_MODEL_STEPS` steps
//! (default 50). The long setting, run for issue 14: `USERDIR_WAL_MODEL_CASES=1000
//! USERDIR_WAL_MODEL_STEPS=100 cargo test --test wal_model -- --nocapture`.

use std::path::{Path, PathBuf};

use userdir::{Argon2Params, Directory, Durability, Error, ManualClock, NewUser, UserUpdate};
use uuid::Uuid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn builder(d: Durability) -> userdir::Builder {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .durability(d)
}

fn wal(p: &Path) -> PathBuf {
    let mut n = p.file_name().unwrap().to_os_string();
    n.push(".wal");
    p.with_file_name(n)
}

type Dump = Vec<(&'static str, String, String)>;

/// One write of the model.
#[derive(Clone, Debug)]
enum Op {
    Create { id: Uuid, name: String, note: usize },
    Rename { id: Uuid, name: String },
    Deactivate { id: Uuid },
    Delete { id: Uuid },
}

impl Op {
    fn random(rng: &mut Rng, ids: &[Uuid]) -> Op {
        // Names of one length and mostly empty notes: many frames of exactly the same size,
        // so that a new frame often ends where an old one of the next lsn begins (the case
        // that replayed stale frames before epochs).
        let name = format!("u{}", rng.below(10));
        let pick = |rng: &mut Rng| {
            ids.get(rng.below(ids.len() as u64) as usize)
                .copied()
                .unwrap_or_else(Uuid::nil)
        };
        match rng.below(10) {
            0..=4 => Op::Create {
                id: Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next())),
                name,
                // Frames of varied sizes, so that new frames end inside old ones.
                note: [0, 0, 0, 0, 0, 40, 700, 3000][rng.below(8) as usize],
            },
            5 | 6 => Op::Rename {
                id: pick(rng),
                name,
            },
            7 => Op::Deactivate { id: pick(rng) },
            _ => Op::Delete { id: pick(rng) },
        }
    }

    /// Applies the write; `Ok(false)` when the directory refused it (a duplicate name, an
    /// unknown id): nothing changed.
    fn apply(&self, dir: &Directory) -> Result<bool, Error> {
        let r = match self {
            Op::Create { id, name, note } => dir
                .create(
                    NewUser::with_username(name.clone())
                        .id(*id)
                        .nick_name("n".repeat(*note)),
                )
                .map(|_| ()),
            Op::Rename { id, name } => match dir.get(*id)? {
                None => return Ok(false),
                Some(u) => {
                    let mut up = UserUpdate::from(&u);
                    up.profile.username = Some(name.clone());
                    dir.update(*id, up, None).map(|_| ())
                }
            },
            Op::Deactivate { id } => dir.deactivate(*id).map(|_| ()),
            Op::Delete { id } => dir.delete(*id).map(|_| ()),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e @ (Error::Storage(_) | Error::NeedsReopen | Error::Corrupt(_))) => Err(e),
            Err(_) => Ok(false),
        }
    }

    fn id(&self) -> Uuid {
        match self {
            Op::Create { id, .. }
            | Op::Rename { id, .. }
            | Op::Deactivate { id }
            | Op::Delete { id } => *id,
        }
    }
}

/// Right after an acknowledged write, the lookups that may answer from the user cache
/// (`get`, `find_by_username`) answer as a fresh snapshot does (`read`, never cached): the
/// write's user, and the name it created or renamed to.
fn cache_agrees(dir: &Directory, op: &Op, ctx: &str) {
    let id = op.id();
    let snapshot = dir.read(|tx| tx.get(id)).unwrap();
    assert_eq!(
        dir.get(id).unwrap(),
        snapshot,
        "{ctx}: get({id}) after {op:?}"
    );
    // Twice: the first may fill the cache, the second answers from it.
    assert_eq!(
        dir.get(id).unwrap(),
        snapshot,
        "{ctx}: cached get({id}) after {op:?}"
    );
    let names = match op {
        Op::Create { name, .. } | Op::Rename { name, .. } => vec![name.clone()],
        _ => Vec::new(),
    };
    for name in names
        .iter()
        .chain(snapshot.iter().filter_map(|u| u.username.as_ref()))
    {
        let want = dir.read(|tx| tx.find_by_username(name)).unwrap();
        for _ in 0..2 {
            assert_eq!(
                dir.find_by_username(name).unwrap(),
                want,
                "{ctx}: find_by_username({name:?}) after {op:?}"
            );
        }
    }
}

/// The acknowledged writes of the current lineage and the state after each prefix.
struct History {
    ops: Vec<Op>,
    /// `dumps[k]`: the state after `ops[..k]`.
    dumps: Vec<Dump>,
}

impl History {
    /// The state after the acknowledged writes and then `extra`, computed on a fresh
    /// in-memory directory.
    fn shadow(&self, extra: &Op) -> Dump {
        let dir = builder(Durability::Immediate).in_memory().unwrap();
        for op in &self.ops {
            assert!(op.apply(&dir).unwrap(), "the shadow refused {op:?}");
        }
        if !extra.apply(&dir).unwrap() {
            return self.dumps.last().unwrap().clone();
        }
        dir.dump().unwrap()
    }
}

#[derive(Debug, Default)]
struct Counts {
    writes: u64,
    refused: u64,
    failed_io: u64,
    checkpoints: u64,
    clean_reopens: u64,
    crashes: u64,
    damaged: u64,
    /// Crash reopens that kept every acknowledged write.
    kept_all: u64,
    /// Damaged crash reopens that kept a shorter prefix.
    kept_prefix: u64,
    /// Reopens where the write that failed was there, whole.
    in_flight_applied: u64,
    lost_writes: u64,
}

/// Damages the log at `p` (if any); returns whether bytes changed.
fn damage(p: &Path, rng: &mut Rng) -> bool {
    let Ok(mut log) = std::fs::read(p) else {
        return false;
    };
    let used = log.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    if used == 0 {
        return false;
    }
    match rng.below(4) {
        0 => {
            // A single bit, anywhere in the written part or in the first frames.
            let span = if rng.chance(50) { used.min(900) } else { used };
            let at = rng.below(span as u64) as usize;
            log[at] ^= 1 << rng.below(8);
        }
        1 => {
            // Torn: cut anywhere.
            log.truncate(rng.below(used as u64) as usize);
        }
        2 => {
            // The header.
            let at = rng.below(used.min(64) as u64) as usize;
            log[at] ^= 0xff;
        }
        _ => {
            // A burst of garbage somewhere.
            let at = rng.below(used as u64) as usize;
            for b in log.iter_mut().skip(at).take(1 + rng.below(40) as usize) {
                *b = rng.next() as u8;
            }
        }
    }
    std::fs::write(p, &log).unwrap();
    true
}

/// Tracing: the log's header and frames.
fn show_log(p: &Path) {
    let Ok(log) = std::fs::read(p) else {
        eprintln!("  no log");
        return;
    };
    let u64_at = |i: usize| u64::from_le_bytes(log[i..i + 8].try_into().unwrap());
    if log.len() < 64 {
        eprintln!("  short log {}", log.len());
        return;
    }
    eprintln!(
        "  header {:?} epoch {:x} first {}",
        String::from_utf8_lossy(&log[..4]),
        u64_at(16),
        u64_at(24)
    );
    let mut pos = 512;
    while pos + 40 <= log.len() && &log[pos..pos + 4] == b"UDW2" {
        let len = u32::from_le_bytes(log[pos + 4..pos + 8].try_into().unwrap()) as usize;
        eprintln!(
            "  frame at {pos}: lsn {} epoch {:x} len {len}",
            u64_at(pos + 8),
            u64_at(pos + 16)
        );
        pos += 24 + len + 16;
    }
}

fn run_case(seed: u64, steps: u64, c: &mut Counts) {
    let mut rng = Rng(seed);
    let durability = if rng.chance(25) {
        Durability::Eventual
    } else {
        Durability::Immediate
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut life = 0u32;
    let mut path = tmp.path().join("life0.redb");
    let mut dir = builder(durability).open(&path).unwrap();
    let mut h = History {
        ops: Vec::new(),
        dumps: vec![dir.dump().unwrap()],
    };
    let mut ids: Vec<Uuid> = Vec::new();
    let ctx = |step: u64| format!("seed {seed:#x}, step {step}");
    let trace = std::env::var("USERDIR_WAL_MODEL_TRACE").is_ok();
    for step in 0..steps {
        let r = rng.below(100);
        let mut in_flight: Option<Op> = None;
        let mut crash = false;
        if r < 66 {
            let op = Op::random(&mut rng, &ids);
            let outcome = op.apply(&dir);
            if trace {
                eprintln!("{step}: {op:?} -> {outcome:?}");
            }
            match outcome {
                Ok(true) => {
                    c.writes += 1;
                    cache_agrees(&dir, &op, &ctx(step));
                    if let Op::Create { id, .. } = op {
                        ids.push(id);
                    }
                    h.ops.push(op);
                    h.dumps.push(dir.dump().unwrap());
                }
                Ok(false) => c.refused += 1,
                Err(Error::NeedsReopen) => crash = true,
                Err(_) => {
                    c.failed_io += 1;
                    in_flight = Some(op);
                    crash = true;
                }
            }
        } else if r < 71 {
            match dir.checkpoint() {
                Ok(()) => c.checkpoints += 1,
                Err(_) => crash = true,
            }
        } else if r < 76 {
            // A clean close and reopen: exactly the acknowledged state, unless a failure
            // left the store needing a reopen (then the close did not checkpoint: a crash).
            c.clean_reopens += 1;
            drop(dir);
            dir = builder(durability).open(&path).unwrap();
            let now = dir.dump().unwrap();
            assert!(
                &now == h.dumps.last().unwrap(),
                "{}: a clean reopen changed the state",
                ctx(step)
            );
            dir.check_integrity().unwrap();
        } else if r < 83 {
            // The next writes fail after a few more log I/O operations (grow, header, frame,
            // sync): a crash at that step follows.
            dir.fail_log_after(rng.below(6));
        } else {
            crash = true;
        }
        if !crash {
            continue;
        }
        // The crash image: the file and its log as the process leaves them.
        c.crashes += 1;
        life += 1;
        let next = tmp.path().join(format!("life{life}.redb"));
        std::fs::copy(&path, &next).unwrap();
        if wal(&path).exists() {
            std::fs::copy(wal(&path), wal(&next)).unwrap();
        }
        drop(dir);
        let damaged = rng.chance(45) && damage(&wal(&next), &mut rng);
        if trace {
            eprintln!(
                "{step}: crash, damaged {damaged}, acknowledged {}",
                h.ops.len()
            );
            show_log(&wal(&next));
        }
        if damaged {
            c.damaged += 1;
        }
        path = next;
        dir = builder(durability)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: reopen failed: {e}", ctx(step)));
        if let Err(e) = dir.check_integrity() {
            panic!("{}: integrity after a crash: {e}", ctx(step));
        }
        let now = dir.dump().unwrap();
        let all = h.dumps.len() - 1;
        if let Some(op) = in_flight.take()
            && now != h.dumps[all]
        {
            let with = h.shadow(&op);
            if now == with {
                c.in_flight_applied += 1;
                if let Op::Create { id, .. } = op {
                    ids.push(id);
                }
                let _ = op.id();
                h.ops.push(op);
                h.dumps.push(with);
                continue;
            }
        }
        if now == h.dumps[all] {
            c.kept_all += 1;
            continue;
        }
        assert!(
            damaged,
            "{}: the log was not damaged, yet the state is not the acknowledged one",
            ctx(step)
        );
        let Some(k) = h.dumps.iter().rposition(|d| *d == now) else {
            if trace {
                let last = &h.dumps[all];
                for e in now.iter().filter(|e| !last.contains(e)) {
                    eprintln!("only now: {e:?}");
                }
                for e in last.iter().filter(|e| !now.contains(e)) {
                    eprintln!("only acknowledged: {e:?}");
                }
            }
            panic!(
                "{}: after damage, the state is not that of any prefix of the acknowledged \
                 writes (a stale frame was replayed?)",
                ctx(step)
            );
        };
        c.kept_prefix += 1;
        c.lost_writes += (all - k) as u64;
        h.ops.truncate(k);
        h.dumps.truncate(k + 1);
    }
    drop(dir);
}

#[test]
fn the_log_replays_a_prefix_of_acknowledged_writes_never_the_past() {
    let cases = env_u64("USERDIR_WAL_MODEL_CASES", 12);
    let steps = env_u64("USERDIR_WAL_MODEL_STEPS", 50);
    let seed0 = env_u64("USERDIR_WAL_MODEL_SEED", 0x14_0000);
    let mut c = Counts::default();
    for case in 0..cases {
        run_case(seed0 + case, steps, &mut c);
    }
    eprintln!("redo log model: {cases} cases x {steps} steps: {c:?}");
    assert!(c.crashes > 0 && c.writes > 0);
    if cases >= 12 {
        // The runs exercise what they claim to.
        assert!(c.damaged > 0 && c.failed_io > 0 && c.kept_all > 0, "{c:?}");
    }
}
