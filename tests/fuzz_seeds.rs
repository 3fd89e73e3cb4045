//! Runs every fuzz target's body (tests/fuzz_bodies) on stable Rust: over the checked-in seed
//! corpus `fuzz/seeds/<target>/*`, and over random inputs from a seeded generator
//! (`USERDIR_FUZZ_ITERS` inputs per target, default 200; `USERDIR_FUZZ_SEED` picks the seed).

mod fuzz_bodies;

use std::path::Path;

use fuzz_bodies::model::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_target_has_seeds_and_passes_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, body) in fuzz_bodies::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "target {name} failed on seed {}", path.display());
            n += 1;
        }
        assert!(n >= 3, "target {name} has only {n} seeds");
    }
}

/// Inputs biased towards what the targets parse: random bytes, bytes from the seeds' alphabet,
/// and mutations of seeds.
fn random_input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let len = rng.below(96) as usize;
    match rng.below(3) {
        0 => (0..len).map(|_| rng.byte()).collect(),
        1 => {
            const PIECES: &[&str] = &[
                "a", "B", "ß", "SS", "\u{212A}", "ｋ", "e\u{301}", "é", "İ", "ı", "@", ".", " ",
                "\u{0}", "\u{85}", "\u{200b}", "ﬀ", "ǅ", "Σ", "ς", "ᾼ", "ﬃ", "㎒", "ⓐ",
            ];
            let mut s = String::new();
            for _ in 0..len / 3 {
                s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
            }
            s.into_bytes()
        }
        _ if !seeds.is_empty() => {
            let mut d = seeds[rng.below(seeds.len() as u64) as usize].clone();
            for _ in 0..=rng.below(4) {
                if d.is_empty() || rng.chance(30) {
                    let at = rng.below(d.len() as u64 + 1) as usize;
                    d.insert(at, rng.byte());
                } else {
                    let at = rng.below(d.len() as u64) as usize;
                    d[at] = rng.byte();
                }
            }
            d
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_target_survives_random_inputs() {
    let iters = env_u64("USERDIR_FUZZ_ITERS", 200);
    let seed = env_u64("USERDIR_FUZZ_SEED", 0x5eed);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, body) in fuzz_bodies::TARGETS {
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join(name))
            .map(|rd| {
                rd.map(|e| std::fs::read(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let mut rng = Rng(seed ^ name.len() as u64);
        let start = std::time::Instant::now();
        for i in 0..iters {
            let data = random_input(&mut rng, &seeds);
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(
                r.is_ok(),
                "target {name} failed on random input #{i} (seed {seed}): {data:?}"
            );
        }
        eprintln!("{name}: {iters} inputs in {:?}", start.elapsed());
    }
}
