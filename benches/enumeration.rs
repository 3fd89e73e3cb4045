//! Account enumeration by time (issue 15): how long a failed login takes for an unknown login
//! id and for a wrong password, per kind of stored hash, on a file directory with the default
//! settings (OWASP argon2id, default lockout, `FailureFloor::Adaptive`), and with the floor
//! off for comparison.
//!
//! Run: `cargo bench --bench enumeration` (about two minutes on 2 cores).
//! `ENUM_BENCH_TRIES` sets the tries per kind (default 30). Each try uses a fresh account and
//! a fresh unknown login id, so that the default lockout (5 failures) never decides the
//! answer; the tries of all kinds are interleaved, so a shared machine's load falls on all
//! alike. Prints the median of each kind and the ratio unknown / wrong password (the target
//! is 0.9 to 1.1 with the floor on).

use std::time::{Duration, Instant};

use sha2::Sha256;
use userdir::{AuthConfig, Directory, FailureFloor, NewUser, StoredHash};

const PASSWORD: &str = "correct horse battery staple";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Kind {
    name: &'static str,
    prefix: &'static str,
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "argon2id (OWASP, current parameters)",
        prefix: "a",
    },
    Kind {
        name: "bcrypt cost 12 (imported)",
        prefix: "b",
    },
    Kind {
        name: "FusionAuth PBKDF2 24,000 (imported)",
        prefix: "p",
    },
];

fn run(floor: FailureFloor, tries: usize, bcrypt_hash: &str, pbkdf2: &StoredHash) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Directory::builder()
        .auth(AuthConfig::default().failure_floor(floor))
        .open(tmp.path().join("enum.redb"))
        .unwrap();
    for i in 0..tries {
        dir.create(NewUser::with_username(format!("a{i}")).password(PASSWORD))
            .unwrap();
        dir.create(
            NewUser::with_username(format!("b{i}"))
                .password_hash(StoredHash::from_encoded(bcrypt_hash)),
        )
        .unwrap();
        dir.create(NewUser::with_username(format!("p{i}")).password_hash(pbkdf2.clone()))
            .unwrap();
    }
    // The dummy hash for unknown ids is made at the first failure: not part of any sample.
    let _ = dir.authenticate("warm-up", "wrong password");
    let mut wrong: Vec<Vec<Duration>> = vec![Vec::new(); KINDS.len()];
    let mut unknown: Vec<Vec<Duration>> = vec![Vec::new(); KINDS.len()];
    let time = |login: &str| {
        let t = Instant::now();
        let r = dir.authenticate(login, "wrong password");
        let el = t.elapsed();
        assert!(
            matches!(r, Err(userdir::Error::InvalidCredentials)),
            "{r:?}"
        );
        el
    };
    for i in 0..tries {
        for (k, kind) in KINDS.iter().enumerate() {
            unknown[k].push(time(&format!("nobody-{}-{i}", kind.prefix)));
            wrong[k].push(time(&format!("{}{i}", kind.prefix)));
        }
    }
    println!("\nfailure floor: {floor:?}; {tries} tries per kind; medians");
    println!(
        "  {:<40} {:>12} {:>12} {:>8} {:>14}",
        "accounts", "wrong pw ms", "unknown ms", "ratio", "1st wrong ms"
    );
    for (k, kind) in KINDS.iter().enumerate() {
        let w = median(wrong[k].clone());
        let u = median(unknown[k].clone());
        println!(
            "  {:<40} {:>12.1} {:>12.1} {:>8.3} {:>14.1}",
            kind.name,
            ms(w),
            ms(u),
            u.as_secs_f64() / w.as_secs_f64(),
            ms(wrong[k][0])
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let tries: usize = std::env::var("ENUM_BENCH_TRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let bcrypt_hash = bcrypt::hash(PASSWORD, 12).unwrap();
    let salt = b"fa-salt-0-0123456789abcdef";
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(PASSWORD.as_bytes(), salt, 24_000, &mut key);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pbkdf2 =
        StoredHash::fusionauth_pbkdf2(&b64.encode(salt), 24_000, &b64.encode(key)).unwrap();
    println!(
        "account enumeration by time: file directory, default settings (OWASP argon2id, lockout 5)"
    );
    run(FailureFloor::Adaptive, tries, &bcrypt_hash, &pbkdf2);
    run(FailureFloor::Off, tries, &bcrypt_hash, &pbkdf2);
}
