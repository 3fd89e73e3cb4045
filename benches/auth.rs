//! `authenticate` against one bare argon2id verification of the same hash, and unknown-login
//! against known-login timing.
//!
//! Run: `cargo bench --bench auth -- --warm-up-time 1 --measurement-time 3`
//!
//! Besides criterion's figures, a paired summary is printed at the end: the operations are
//! timed in turn (verify, login, unknown login, ...) so that the load of a shared machine
//! affects them alike, and their medians compared. `AUTH_BENCH_PAIRS` sets how many rounds
//! (default 30).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use userdir::{Argon2Params, AuthConfig, Directory, Durability, Lockout, NewUser, StoredHash};

const PASSWORD: &str = "correct horse battery staple";

fn setup(
    params: Argon2Params,
    durability: Durability,
    file: Option<&std::path::Path>,
) -> (Directory, StoredHash) {
    let b = Directory::builder()
        .hasher(params)
        .durability(durability)
        // Failed logins are timed too: never lock the account during the run.
        .auth(AuthConfig::default().lockout(Lockout::default().max_failures(u32::MAX)));
    let dir = match file {
        Some(p) => b.open(p).unwrap(),
        None => b.in_memory().unwrap(),
    };
    for i in 0..1000 {
        dir.create(
            NewUser::with_username(format!("user{i}")).email(format!("user{i}@example.com")),
        )
        .unwrap();
    }
    let u = dir
        .create(
            NewUser::with_username("ann")
                .email("ann@example.com")
                .password(PASSWORD),
        )
        .unwrap();
    // Warm up: the dummy hash for unknown logins is made on first use.
    dir.authenticate("ann", PASSWORD).unwrap();
    let _ = dir.authenticate("nobody", PASSWORD);
    (dir, u.password.unwrap())
}

fn bench(c: &mut Criterion) {
    let (dir, hash) = setup(Argon2Params::owasp(), Durability::Immediate, None);
    let mut g = c.benchmark_group("owasp");
    g.sample_size(10);
    g.bench_function("argon2id_verify", |b| {
        b.iter(|| {
            assert!(
                dir.hasher()
                    .verify(black_box(&hash), black_box(PASSWORD))
                    .unwrap()
            )
        });
    });
    g.bench_function("authenticate_known", |b| {
        b.iter(|| {
            dir.authenticate(black_box("ann"), black_box(PASSWORD))
                .unwrap()
        });
    });
    g.bench_function("authenticate_unknown", |b| {
        b.iter(|| {
            dir.authenticate(black_box("nobody"), black_box(PASSWORD))
                .unwrap_err()
        });
    });
    g.finish();

    // With the cheapest argon2 parameters the verification takes microseconds, so what
    // `authenticate` adds (lookups, the write transaction) stands out of the noise.
    let (cheap, cheap_hash) = setup(Argon2Params::insecure_fast(), Durability::Immediate, None);
    let mut g = c.benchmark_group("overhead");
    g.sample_size(10);
    g.bench_function("cheap_verify", |b| {
        b.iter(|| {
            assert!(
                cheap
                    .hasher()
                    .verify(black_box(&cheap_hash), PASSWORD)
                    .unwrap()
            )
        });
    });
    g.bench_function("cheap_authenticate_known", |b| {
        b.iter(|| cheap.authenticate(black_box("ann"), PASSWORD).unwrap());
    });
    g.finish();

    paired_summary(&dir, &hash, &cheap, &cheap_hash);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn paired_summary(dir: &Directory, hash: &StoredHash, cheap: &Directory, cheap_hash: &StoredHash) {
    let pairs: usize = std::env::var("AUTH_BENCH_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    // Each round runs the cheap operations 10 times.
    let tmp = tempfile::tempdir().unwrap();
    let (file_dir, _) = setup(
        Argon2Params::insecure_fast(),
        Durability::Immediate,
        Some(&tmp.path().join("b.redb")),
    );
    let (eventual, _) = setup(Argon2Params::insecure_fast(), Durability::Eventual, None);
    let mut rows: [(&str, Vec<Duration>); 10] = Default::default();
    let names = [
        "owasp: argon2id verify",
        "owasp: authenticate known",
        "owasp: authenticate unknown",
        "owasp: authenticate wrong password",
        "cheap: argon2id verify",
        "cheap: authenticate known (in memory)",
        "cheap: authenticate known (file, fsync)",
        "cheap: authenticate unknown (in memory)",
        "cheap: authenticate wrong password (in memory)",
        "cheap: authenticate known (in memory, eventual)",
    ];
    for (r, n) in rows.iter_mut().zip(names) {
        r.0 = n;
    }
    for _ in 0..pairs {
        rows[0].1.push(time(|| {
            assert!(dir.hasher().verify(hash, PASSWORD).unwrap())
        }));
        rows[1]
            .1
            .push(time(|| drop(dir.authenticate("ann", PASSWORD).unwrap())));
        rows[2].1.push(time(|| {
            drop(dir.authenticate("nobody", PASSWORD).unwrap_err())
        }));
        rows[3]
            .1
            .push(time(|| drop(dir.authenticate("ann", "wrong").unwrap_err())));
        for _ in 0..10 {
            rows[4].1.push(time(|| {
                assert!(cheap.hasher().verify(cheap_hash, PASSWORD).unwrap())
            }));
            rows[5]
                .1
                .push(time(|| drop(cheap.authenticate("ann", PASSWORD).unwrap())));
            rows[6].1.push(time(|| {
                drop(file_dir.authenticate("ann", PASSWORD).unwrap())
            }));
            rows[7].1.push(time(|| {
                drop(cheap.authenticate("nobody", PASSWORD).unwrap_err())
            }));
            rows[8].1.push(time(|| {
                drop(cheap.authenticate("ann", "wrong").unwrap_err())
            }));
            rows[9].1.push(time(|| {
                drop(eventual.authenticate("ann", PASSWORD).unwrap())
            }));
        }
    }
    let m: Vec<Duration> = rows.iter().map(|(_, v)| median(v.clone())).collect();
    println!("\npaired summary ({pairs} rounds; medians)");
    for ((name, _), d) in rows.iter().zip(&m) {
        println!("  {name:<48} {:>12.1} µs", us(*d));
    }
    println!(
        "  owasp overhead of authenticate over verify:      {:>12.1} µs",
        us(m[1]) - us(m[0])
    );
    println!(
        "  cheap overhead of authenticate over verify:      {:>12.1} µs (in memory), {:.1} µs (in memory, eventual), {:.1} µs (file, fsync)",
        us(m[5]) - us(m[4]),
        us(m[9]) - us(m[4]),
        us(m[6]) - us(m[4])
    );
    println!(
        "  unknown / known login median ratio:              {:>12.3} (owasp), {:.3} (owasp, vs wrong password)",
        m[2].as_secs_f64() / m[1].as_secs_f64(),
        m[2].as_secs_f64() / m[3].as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
