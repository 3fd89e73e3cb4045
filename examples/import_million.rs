//! Manual run: import 1,000,000 pre-hashed users into a fresh directory file in one batch and
//! print the throughput, the time of each phase (`ImportSummary::timings`), the peak memory
//! and the file size per user.
//!
//! ```text
//! cargo run --release --example import_million -- [users] [path]
//! ```
//!
//! `users` defaults to 1,000,000; `path` to a file in a temporary directory (removed at the
//! end). Every row carries a username, an email, first and last names, a role, an insert
//! instant and the same argon2id hash with OWASP parameters (a real-sized PHC string: the
//! import stores hashes as given, so hashing is not part of this measurement). Ids are left to
//! the import (random, version 4).

use std::time::Instant;

use userdir::{Argon2Params, Directory, Hasher, ImportBatch, NewUser};

/// Peak resident set size of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    let path = args
        .next()
        .map_or_else(|| tmp.path().join("million.redb"), Into::into);

    let hash = Hasher::new(Argon2Params::owasp(), None)?.hash("correct horse battery staple")?;
    let rss_start = peak_rss_kib();
    let t = Instant::now();
    let rows: Vec<NewUser> = (0..n)
        .map(|i| {
            NewUser::with_username(format!("user{i:07}"))
                .email(format!("user{i:07}@example.com"))
                .first_name("Given")
                .last_name(format!("Family{}", i % 1000))
                .role(if i % 100 == 0 { "admin" } else { "member" })
                .insert_instant(1_331_449_200_000 + i64::try_from(i).unwrap_or(0))
                .password_hash(hash.clone())
        })
        .collect();
    let built = t.elapsed();
    let rss_rows = peak_rss_kib();

    let dir = Directory::open(&path)?; // OWASP hasher, Durability::Immediate
    let t = Instant::now();
    let summary = dir.import(ImportBatch::new(rows))?;
    let took = t.elapsed();
    let rss_peak = peak_rss_kib();
    assert_eq!(summary.imported, n);
    assert_eq!(dir.count()?, n as u64);
    drop(dir);
    let size = std::fs::metadata(&path)?.len();

    let secs = took.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let per = |x: u64| x as f64 / n as f64;
    println!("users:               {n}");
    println!("rows built in:       {:.2} s", built.as_secs_f64());
    println!(
        "import:              {secs:.2} s = {:.0} users/s",
        n as f64 / secs
    );
    let t = summary.timings;
    println!(
        "phases:              validate {:.2} s, sort {:.2} s, check {:.2} s, hash {:.2} s, insert {:.2} s, commit {:.2} s",
        t.validate.as_secs_f64(),
        t.sort.as_secs_f64(),
        t.check.as_secs_f64(),
        t.hash.as_secs_f64(),
        t.insert.as_secs_f64(),
        t.commit.as_secs_f64()
    );
    println!(
        "peak RSS (VmHWM):    {} MiB ({} MiB with only the rows built, {} MiB at start)",
        rss_peak / 1024,
        rss_rows / 1024,
        rss_start / 1024
    );
    println!(
        "memory per user:     {:.0} bytes for the rows, {:.0} bytes more during import",
        per((rss_rows - rss_start) * 1024),
        per((rss_peak - rss_rows) * 1024)
    );
    println!(
        "file size:           {} MiB = {:.0} bytes/user",
        size >> 20,
        per(size)
    );
    Ok(())
}
