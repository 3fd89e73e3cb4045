//! Crash torture with real processes: a child (this test binary re-executed with
//! `USERDIR_KILL_CHILD` set) does random creates, renames, deactivations, deletes and two-user
//! `write` transactions on a directory file with `Durability::Immediate`, printing each
//! operation before it starts (`@@B ...`) and once it is acknowledged (`@@A ...`), flushing each line.
//! The parent SIGKILLs it at a random moment, reopens the file, and checks: integrity holds,
//! every acknowledged operation is present, and the one in flight is applied entirely or not at
//! all. The same file is reused across iterations, so each child also starts from a file that
//! was killed before.
//!
//! `USERDIR_KILL_ITERS` sets the number of kills (default 5).

mod fuzz_bodies;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fuzz_bodies::model::Rng;
use userdir::{Argon2Params, Directory, Durability, ManualClock, NewUser, UserUpdate};
use uuid::Uuid;

const CHILD_ENV: &str = "USERDIR_KILL_CHILD";
const SEED_ENV: &str = "USERDIR_KILL_SEED";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(path: &str) -> userdir::Result<Directory> {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .durability(Durability::Immediate)
        .open(path)
}

/// One user as the parent expects it: username, active, version.
type State = BTreeMap<Uuid, (String, bool, u64)>;

/// An operation, as printed by the child (one line, space-separated).
#[derive(Clone, Debug, PartialEq)]
enum KOp {
    Create(Uuid, String),
    Rename(Uuid, String),
    Deactivate(Uuid),
    Delete(Uuid),
    /// Two creates in one `write` transaction.
    Pair(Uuid, String, Uuid, String),
}

impl KOp {
    fn line(&self) -> String {
        match self {
            KOp::Create(id, n) => format!("C {id} {n}"),
            KOp::Rename(id, n) => format!("R {id} {n}"),
            KOp::Deactivate(id) => format!("X {id}"),
            KOp::Delete(id) => format!("D {id}"),
            KOp::Pair(a, n, b, m) => format!("P {a} {n} {b} {m}"),
        }
    }
    fn parse(s: &str) -> Option<KOp> {
        let f: Vec<&str> = s.split(' ').collect();
        let id = |i: usize| f.get(i).and_then(|s| Uuid::parse_str(s).ok());
        let name = |i: usize| f.get(i).map(|s| (*s).to_owned());
        Some(match *f.first()? {
            "C" => KOp::Create(id(1)?, name(2)?),
            "R" => KOp::Rename(id(1)?, name(2)?),
            "X" => KOp::Deactivate(id(1)?),
            "D" => KOp::Delete(id(1)?),
            "P" => KOp::Pair(id(1)?, name(2)?, id(3)?, name(4)?),
            _ => return None,
        })
    }
    /// The state after this operation.
    fn apply(&self, s: &State) -> State {
        let mut s = s.clone();
        match self {
            KOp::Create(id, n) => {
                s.insert(*id, (n.clone(), true, 1));
            }
            KOp::Rename(id, n) => {
                if let Some(u) = s.get_mut(id) {
                    u.0 = n.clone();
                    u.2 += 1;
                }
            }
            KOp::Deactivate(id) => {
                if let Some(u) = s.get_mut(id)
                    && u.1
                {
                    u.1 = false;
                    u.2 += 1;
                }
            }
            KOp::Delete(id) => {
                s.remove(id);
            }
            KOp::Pair(a, n, b, m) => {
                s.insert(*a, (n.clone(), true, 1));
                s.insert(*b, (m.clone(), true, 1));
            }
        }
        s
    }
}

fn new_id(rng: &mut Rng) -> Uuid {
    Uuid::from_u128((u128::from(rng.next()) << 64) | u128::from(rng.next()))
}

/// The child: random operations until killed (or 20 000 of them).
fn child(path: &str, seed: u64) {
    let dir = open(path).expect("child opens the directory");
    let mut rng = Rng(seed);
    // The users left by earlier (killed) children, as the parent verified them.
    let mut live: Vec<Uuid> = Vec::new();
    for line in std::env::var("USERDIR_KILL_LIVE")
        .unwrap_or_default()
        .split(',')
    {
        if let Ok(id) = Uuid::parse_str(line) {
            live.push(id);
        }
    }
    let out = std::io::stdout();
    let say = |s: String| {
        let mut o = out.lock();
        o.write_all(s.as_bytes()).unwrap();
        o.write_all(b"\n").unwrap();
        o.flush().unwrap();
    };
    // Names are unique per child run: a seed-derived prefix, in varying case.
    let tag = format!("{:x}", seed & 0xffff_ffff);
    let name = |rng: &mut Rng, n: u64| {
        let base = format!("u{tag}x{n}");
        match rng.below(3) {
            0 => base,
            1 => base.to_uppercase(),
            _ => format!("Stra\u{df}e{base}"),
        }
    };
    for n in 0..20_000u64 {
        let pick = |rng: &mut Rng, live: &[Uuid]| live[rng.below(live.len() as u64) as usize];
        let op = match rng.below(10) {
            _ if live.len() < 3 => KOp::Create(new_id(&mut rng), name(&mut rng, n)),
            0..=3 => KOp::Create(new_id(&mut rng), name(&mut rng, n)),
            4 | 5 => KOp::Rename(pick(&mut rng, &live), name(&mut rng, n)),
            6 => KOp::Deactivate(pick(&mut rng, &live)),
            7 | 8 => KOp::Delete(pick(&mut rng, &live)),
            _ => KOp::Pair(
                new_id(&mut rng),
                name(&mut rng, n),
                new_id(&mut rng),
                format!("{}b", name(&mut rng, n)),
            ),
        };
        say(format!("@@B {}", op.line()));
        let ok = match &op {
            KOp::Create(id, n) => dir.create(NewUser::with_username(n).id(*id)).map(|_| ()),
            KOp::Rename(id, n) => {
                let u = dir.get(*id).unwrap().expect("live user");
                let mut up = UserUpdate::from(&u);
                up.profile.username = Some(n.clone());
                dir.update(*id, up, Some(u.version)).map(|_| ())
            }
            KOp::Deactivate(id) => dir.deactivate(*id).map(|_| ()),
            KOp::Delete(id) => dir.delete(*id).map(|_| ()),
            KOp::Pair(a, n, b, m) => {
                let pa = dir.prepare(NewUser::with_username(n).id(*a)).unwrap();
                let pb = dir.prepare(NewUser::with_username(m).id(*b)).unwrap();
                dir.write(|tx| {
                    tx.create(pa)?;
                    tx.create(pb)?;
                    Ok(())
                })
            }
        };
        ok.unwrap_or_else(|e| panic!("child op {op:?} failed: {e}"));
        match &op {
            KOp::Create(id, _) => live.push(*id),
            KOp::Pair(a, _, b, _) => live.extend([*a, *b]),
            KOp::Delete(id) => live.retain(|x| x != id),
            _ => {}
        }
        say(format!("@@A {}", op.line()));
    }
}

/// The child role: runs only when the parent set `USERDIR_KILL_CHILD`.
#[test]
fn child_process() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path, env_u64(SEED_ENV, 1));
    }
}

fn check(dir: &Directory, s: &State) -> Result<(), String> {
    dir.check_integrity().map_err(|e| e.to_string())?;
    let count = dir.count().map_err(|e| e.to_string())?;
    if count != s.len() as u64 {
        return Err(format!("count {count}, expected {}", s.len()));
    }
    for (id, (name, active, version)) in s {
        let u = dir
            .get(*id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("user {id} ({name}) is missing"))?;
        if u.username.as_deref() != Some(name.as_str())
            || u.active != *active
            || u.version != *version
        {
            return Err(format!(
                "user {id}: found {:?}/{}/{}, expected {name}/{active}/{version}",
                u.username, u.active, u.version
            ));
        }
        let by_name = dir
            .find_by_username(&name.to_uppercase())
            .map_err(|e| e.to_string())?;
        if by_name.map(|u| u.id) != Some(*id) {
            return Err(format!("username {name} does not find user {id}"));
        }
    }
    Ok(())
}

#[test]
fn kill_child_at_random_moments() {
    let iters = env_u64("USERDIR_KILL_ITERS", 5);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("killed.redb");
    let path_s = path.to_str().unwrap().to_owned();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(env_u64(SEED_ENV, 0x4B11));
    let mut state = State::new();
    let (mut acked_total, mut in_flight_applied, mut in_flight_lost) = (0usize, 0, 0);
    let start = Instant::now();
    for it in 0..iters {
        let live: Vec<String> = state.keys().map(Uuid::to_string).collect();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path_s)
            .env(SEED_ENV, rng.next().to_string())
            .env("USERDIR_KILL_LIVE", live.join(","))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill once the k-th line (a begin or an acknowledgement) is read, after a random extra
        // spin, so the kill lands anywhere in an operation or between two.
        let k = 1 + rng.below(300);
        let spin = Duration::from_micros(rng.below(3000));
        let mut lines = Vec::new();
        let mut seen = 0;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print "test child_process ... " in front of the first line.
            let Some(at) = line.find("@@") else { continue };
            let line = line[at + 2..].to_owned();
            seen += 1;
            lines.push(line);
            if seen == k && !killed {
                let t = Instant::now();
                while t.elapsed() < spin {
                    std::hint::spin_loop();
                }
                child.kill().unwrap(); // SIGKILL
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        if !killed {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("child exited before the kill ({status}): {err}");
        }
        // Replay: every acknowledged op; the last begun one may or may not have happened.
        let mut pending: Option<KOp> = None;
        for line in &lines {
            if let Some(rest) = line.strip_prefix("B ") {
                // A line cut by the kill cannot parse; then the op may still have started.
                pending = KOp::parse(rest);
                assert!(pending.is_some(), "bad line {line:?}");
            } else if let Some(rest) = line.strip_prefix("A ") {
                let op = KOp::parse(rest).expect("ack line");
                assert_eq!(pending.as_ref(), Some(&op), "ack without begin");
                state = op.apply(&state);
                pending = None;
                acked_total += 1;
            }
        }
        let dir = catch_unwind(AssertUnwindSafe(|| open(&path_s)))
            .unwrap_or_else(|_| panic!("PANIC reopening after kill {it}"))
            .unwrap_or_else(|e| panic!("reopen after kill {it} failed: {e}"));
        let before = check(&dir, &state);
        match (&pending, before) {
            (_, Ok(())) => {
                if pending.is_some() {
                    in_flight_lost += 1;
                }
            }
            (Some(op), Err(e1)) => {
                let after = op.apply(&state);
                check(&dir, &after).unwrap_or_else(|e2| {
                    panic!("kill {it}: state matches neither before ({e1}) nor after ({e2}) {op:?}")
                });
                state = after;
                in_flight_applied += 1;
            }
            (None, Err(e)) => panic!("kill {it}: {e}"),
        }
    }
    eprintln!(
        "{iters} kills in {:?}: {acked_total} acknowledged operations all present; \
         in-flight operation applied {in_flight_applied} times, absent {in_flight_lost} times; \
         {} users at the end",
        start.elapsed(),
        state.len()
    );
}

const CREATE_CHILD_ENV: &str = "USERDIR_KILL_CREATE_CHILD";

/// The child of `kill_child_while_it_creates_files`: creates `f<n>.redb` in the folder, one
/// user in each, announcing each file before (`@@B n`) and after (`@@A n`).
#[test]
fn create_child_process() {
    let Ok(folder) = std::env::var(CREATE_CHILD_ENV) else {
        return;
    };
    let out = std::io::stdout();
    let say = |s: String| {
        let mut o = out.lock();
        o.write_all(s.as_bytes()).unwrap();
        o.write_all(b"\n").unwrap();
        o.flush().unwrap();
    };
    for n in 0..100_000u64 {
        say(format!("@@B {n}"));
        let dir = open(&format!("{folder}/f{n}.redb")).expect("child creates a file");
        dir.create(NewUser::with_username(format!("u{n}")))
            .expect("child creates a user");
        drop(dir);
        say(format!("@@A {n}"));
    }
}

/// SIGKILL while directory files are being created: every acknowledged file opens with its
/// user; the file in flight is absent or opens as a directory (empty, or with its user), never
/// as a file redb refuses. A kill during a creation leaves a temporary file, which later opens
/// ignore.
#[test]
fn kill_child_while_it_creates_files() {
    let iters = env_u64("USERDIR_KILL_ITERS", 5) * 2;
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(env_u64(SEED_ENV, 0xC4EA7E));
    let (mut acked, mut in_flight_absent, mut in_flight_present, mut left_temp) = (0, 0, 0, 0);
    for it in 0..iters {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().to_str().unwrap().to_owned();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "create_child_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CREATE_CHILD_ENV, &folder)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let k = 1 + rng.below(40);
        let spin = Duration::from_micros(rng.below(4000));
        let (mut seen, mut killed) = (0, false);
        let (mut begun, mut done): (Option<u64>, Option<u64>) = (None, None);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(at) = line.find("@@") else { continue };
            let mut f = line[at + 2..].split(' ');
            match (f.next(), f.next().and_then(|n| n.parse::<u64>().ok())) {
                (Some("B"), Some(n)) => begun = Some(n),
                (Some("A"), Some(n)) => done = Some(n),
                _ => {}
            }
            seen += 1;
            if seen == k && !killed {
                let t = Instant::now();
                while t.elapsed() < spin {
                    std::hint::spin_loop();
                }
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        if !killed {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("child exited before the kill ({status}): {err}");
        }
        let temps = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".creating-")
            })
            .count();
        left_temp += usize::from(temps > 0);
        let open_checked = |n: u64| -> Result<u64, String> {
            let dir = catch_unwind(AssertUnwindSafe(|| open(&format!("{folder}/f{n}.redb"))))
                .map_err(|_| format!("kill {it}: PANIC opening f{n}"))?
                .map_err(|e| format!("kill {it}: f{n} does not open: {e}"))?;
            dir.check_integrity().map_err(|e| e.to_string())?;
            dir.count().map_err(|e| e.to_string())
        };
        for n in done.map_or(0..0, |d| 0..d + 1) {
            assert_eq!(open_checked(n), Ok(1), "kill {it}: acknowledged file f{n}");
            acked += 1;
        }
        if let Some(b) = begun.filter(|b| done != Some(*b)) {
            if std::path::Path::new(&format!("{folder}/f{b}.redb")).exists() {
                let count = open_checked(b).unwrap_or_else(|e| panic!("{e}"));
                assert!(count <= 1, "kill {it}: f{b} has {count} users");
                in_flight_present += 1;
            } else {
                in_flight_absent += 1;
                // The path is free: it can be created now, past any temporary file.
                assert_eq!(open_checked(b), Ok(0), "kill {it}: creating f{b} again");
            }
        }
    }
    eprintln!(
        "{iters} kills while creating files: {acked} acknowledged files all open with their user; \
         the file in flight was absent {in_flight_absent} times and a directory \
         {in_flight_present} times; {left_temp} kills left a temporary file (a kill inside a \
         creation), ignored by the reopens"
    );
}
