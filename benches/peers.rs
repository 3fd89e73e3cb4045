//! userdir and SQLite side by side: one criterion group per operation, `userdir` and `sqlite`
//! as its two functions, the same rows and the same unique indexes in both engines, then a
//! paired Markdown summary. Instructions: `benches/README.md`.
//!
//! ```text
//! cargo bench --bench peers                       # every row, 100k users
//! cargo bench --bench peers -- lookup             # only the lookup rows (criterion filter)
//! USERDIR_BENCH_USERS=1000000 USERDIR_BENCH_IMPORT=1000000 cargo bench --bench peers
//! ```
//!
//! Rows (group names start with the row number, so `-- '^3_'` selects one row):
//!
//! 1. durable creates from 8 threads, 10 each (80 users per iteration);
//! 2. one durable create from one thread;
//! 3. pre-hashed import of `USERDIR_BENCH_IMPORT` users (default 100,000) in one batch into a
//!    fresh file;
//! 4. caseless username lookup and id lookup at `USERDIR_BENCH_USERS` users (default 100,000),
//!    as single calls and 100 at a time inside one read transaction;
//! 5. `userName sw "ab"`, first page of 20 plus the total count;
//! 6. `name.familyName co "son"` (no index: a full scan), first page of 20 plus the total count;
//! 7. plaintext import of `USERDIR_BENCH_PLAIN` users (default 64) with the library's default
//!    argon2id parameters, beside one bare argon2id hash on one core;
//! 8. sorted and role pages, each the first page of 20 plus the total: every user sorted by
//!    userName (8a), `userName sw "jo"` sorted by userName (8b), `roles eq "admin"` (8c);
//! 9. opening an existing `USERDIR_BENCH_USERS`-user file (closed cleanly) + the first lookup;
//! 10. a login with cheap argon2id parameters: lookup, verification, durable last-login write;
//! 11. bytes per user on disk after the import (printed, not timed).
//!
//! Both engines are durable: userdir with `Durability::Immediate` (its default), SQLite
//! (rusqlite, bundled) with `journal_mode = WAL`, `synchronous = FULL`. SQLite's schema is the
//! one of `benches/import.rs`: `id BLOB PRIMARY KEY`, `username TEXT UNIQUE COLLATE NOCASE`,
//! `email TEXT UNIQUE`, `external_id TEXT UNIQUE`, an index on the insert instant and a
//! `(role, user_id)` table, so both keep the same unique indexes. A SQLite create is one
//! `BEGIN IMMEDIATE` transaction inserting the user row and its role rows. SQLite's page cache
//! is raised to `USERDIR_BENCH_SQLITE_CACHE_KIB` (default 262,144 KiB; redb's default cache is
//! 1 GiB; `0` keeps SQLite's 2 MiB default).
//!
//! The summary after criterion's output times the selected rows directly with `Instant`, in
//! `USERDIR_BENCH_ROUNDS` rounds (default 5) that alternate which engine goes first, and prints
//! the medians as a Markdown table. It runs only for rows criterion ran (so a filter selects
//! summary rows too) and only under `cargo bench` (not `--test` or `--list`).

use std::cell::{Cell, OnceCell};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use userdir::query::{Search, SortField};
use userdir::{Argon2Params, Directory, Hasher, ImportBatch, NewUser, StoredHash};
use uuid::Uuid;

/// One fixed argon2id PHC string (OWASP parameters, password `PASSWORD`) stored for every
/// pre-hashed user, so that creates and imports measure the store, not the hashing.
const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$dXNlcmRpci1iZW5jaC0wMQ$R40jYDhyHSriYn3JlbhiBHTrvO2N923+YKfElsnkuAk";
const PASSWORD: &str = "correct horse battery staple";
/// Lookups per read transaction in rows 4c and 4d.
const PER_TX: usize = 100;
/// Distinct lookup probes, cycled through.
const PROBES: usize = 1024;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Data: deterministic (xorshift from fixed seeds), with common given and family names (skewed
// towards the first ones), four username shapes in mixed case, several mail domains, external
// ids, and weighted roles (some users hold two).

#[rustfmt::skip]
const GIVEN: &[&str] = &[
    "James", "Mary", "Michael", "Jennifer", "Robert", "Linda", "John", "Patricia", "David",
    "Elizabeth", "William", "Barbara", "Abigail", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew",
    "Betty", "Anthony", "Margaret", "Mark", "Sandra", "Abdul", "Donald", "Ashley", "Steven",
    "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol",
    "Kevin", "Amanda", "Abraham", "Brian", "Dorothy", "Wei", "Fatima", "Hiroshi", "Priya", "Olga",
    "Mohammed", "Sofia", "Lucas", "Chloe", "Mateo", "Abby",
];

#[rustfmt::skip]
const FAMILY: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Abbott", "Abernathy", "Peterson", "Carlson",
    "Hanson", "Olson", "Dawson", "Gibson", "Mason", "Ellison", "Müller", "García", "Núñez",
    "Ødegaard", "Kowalczyk", "Nakamura", "Kim", "Patel", "Singh", "Chen", "O'Brien", "Łukasiewicz",
    "Dubois", "Rossi", "Svensson",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "example.co.uk",
    "users.example.io",
];

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed towards small indexes (the more common names come first).
    fn skewed(&mut self, n: usize) -> usize {
        self.below(n).min(self.below(n))
    }
    fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

/// ASCII form of a name for usernames and emails.
fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        match c {
            'ü' => s.push_str("ue"),
            'á' | 'à' => s.push('a'),
            'í' => s.push('i'),
            'ñ' => s.push('n'),
            'Ø' | 'ø' => s.push('o'),
            'Ł' | 'ł' => s.push('l'),
            c if c.is_ascii_alphanumeric() => s.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    s
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

#[derive(Clone)]
struct Row {
    id: Uuid,
    username: String,
    email: String,
    external_id: String,
    first: &'static str,
    last: &'static str,
    roles: Vec<&'static str>,
    inserted: i64,
}

fn roles(rng: &mut Rng) -> Vec<&'static str> {
    let mut v = vec![match rng.below(100) {
        0..80 => "member",
        80..92 => "editor",
        92..97 => "support",
        97..99 => "admin",
        _ => "auditor",
    }];
    if rng.below(20) == 0 {
        v.push("billing");
    }
    v
}

/// User `i` of a dataset (every dataset of the same size is the same).
fn dataset_row(i: usize, rng: &mut Rng) -> Row {
    let first = GIVEN[rng.skewed(GIVEN.len())];
    let last = FAMILY[rng.skewed(FAMILY.len())];
    let (g, f) = (slug(first), slug(last));
    let username = match rng.below(4) {
        0 => format!("{g}.{f}{i}"),
        1 => format!("{}{f}{i}", &g[..1]),
        2 => format!("{}{}{i}", capitalized(&g), capitalized(&f)),
        _ => format!("{f}_{g}{i}"),
    };
    Row {
        id: rng.uuid(),
        username,
        email: format!("{g}.{f}.{i}@{}", DOMAINS[rng.below(DOMAINS.len())]),
        // 7919 is prime, so this is unique below 10 million users.
        external_id: format!("EMP-{:07}", (i as u64 * 7919) % 10_000_000),
        first,
        last,
        roles: roles(rng),
        inserted: 1_600_000_000_000 + i as i64 * 1000 + rng.below(1000) as i64,
    }
}

fn rows(n: usize) -> Vec<Row> {
    let mut rng = Rng::new(0x5EED);
    (0..n).map(|i| dataset_row(i, &mut rng)).collect()
}

/// The `k`th user created by rows 1 and 2 (each engine creates the same sequence). Created
/// users never match the queries of rows 5 and 6 (their usernames start with `new.`, their
/// family names do not contain `son`), so those rows see the same matches whatever ran before.
fn created_row(k: u64) -> Row {
    let mut rng = Rng::new(k + 1_000_003);
    let first = GIVEN[rng.skewed(GIVEN.len())];
    let last = loop {
        let f = FAMILY[rng.skewed(FAMILY.len())];
        if !f.contains("son") {
            break f;
        }
    };
    let (g, f) = (slug(first), slug(last));
    Row {
        id: rng.uuid(),
        username: format!("new.{g}.{f}{k}"),
        email: format!("new.{g}.{f}.{k}@{}", DOMAINS[rng.below(DOMAINS.len())]),
        external_id: format!("NEW-{k:09}"),
        first,
        last,
        roles: roles(&mut rng),
        inserted: 1_700_000_000_000 + k as i64,
    }
}

fn new_user(r: &Row, hash: &StoredHash) -> NewUser {
    let mut u = NewUser::with_username(&r.username)
        .id(r.id)
        .email(&r.email)
        .external_id(&r.external_id)
        .first_name(r.first)
        .last_name(r.last)
        .insert_instant(r.inserted)
        .password_hash(hash.clone());
    for role in &r.roles {
        u = u.role(*role);
    }
    u
}

// ---------------------------------------------------------------------------------------------
// SQLite

const SQL_INSERT_USER: &str = "INSERT INTO users (id, username, email, external_id, first_name,
    last_name, active, password, insert_instant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8)";
const SQL_INSERT_ROLE: &str = "INSERT INTO user_roles (role, user_id) VALUES (?1, ?2)";
const SQL_COLUMNS: &str =
    "id, username, email, external_id, first_name, last_name, active, password, insert_instant";

/// Every column of a `users` row, as the lookups and pages materialize it.
type SqlUser = (
    Vec<u8>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    i64,
);

fn sql_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

/// A connection with the per-connection settings (the WAL mode is kept by the file).
fn sqlite_connect(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    let cache = env("USERDIR_BENCH_SQLITE_CACHE_KIB", 262_144);
    if cache > 0 {
        c.pragma_update(None, "cache_size", -(cache as i64))
            .unwrap();
    }
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c
}

/// A fresh SQLite file with the schema of `benches/import.rs`.
fn sqlite_create(path: &Path) -> Connection {
    let c = sqlite_connect(path);
    c.execute_batch(
        "CREATE TABLE users (
            id BLOB PRIMARY KEY,
            username TEXT UNIQUE COLLATE NOCASE,
            email TEXT UNIQUE,
            external_id TEXT UNIQUE,
            first_name TEXT,
            last_name TEXT,
            active INTEGER NOT NULL,
            password TEXT,
            insert_instant INTEGER NOT NULL,
            last_login INTEGER
        );
        CREATE INDEX users_inserted ON users (insert_instant);
        CREATE TABLE user_roles (role TEXT NOT NULL, user_id BLOB NOT NULL,
            PRIMARY KEY (role, user_id)) WITHOUT ROWID;",
    )
    .unwrap();
    c
}

fn sqlite_insert(c: &Connection, r: &Row, hash: &str) {
    c.prepare_cached(SQL_INSERT_USER)
        .unwrap()
        .execute(params![
            r.id.as_bytes(),
            r.username,
            r.email,
            r.external_id,
            r.first,
            r.last,
            hash,
            r.inserted
        ])
        .unwrap();
    let mut role = c.prepare_cached(SQL_INSERT_ROLE).unwrap();
    for name in &r.roles {
        role.execute(params![name, r.id.as_bytes()]).unwrap();
    }
}

/// Every row in one transaction (SQLite's bulk import).
fn sqlite_import(c: &Connection, rows: &[Row], hash: &str) {
    let tx = c.unchecked_transaction().unwrap();
    for r in rows {
        sqlite_insert(&tx, r, hash);
    }
    tx.commit().unwrap();
}

/// One durable create: the user row and its role rows in one `BEGIN IMMEDIATE` transaction.
fn sqlite_create_user(c: &Connection, r: &Row, hash: &str) {
    let tx = Transaction::new_unchecked(c, TransactionBehavior::Immediate).unwrap();
    sqlite_insert(&tx, r, hash);
    tx.commit().unwrap();
}

fn sqlite_by_username(c: &Connection, username: &str) -> SqlUser {
    c.prepare_cached(&format!(
        "SELECT {SQL_COLUMNS} FROM users WHERE username = ?1"
    ))
    .unwrap()
    .query_row(params![username], sql_user)
    .unwrap()
}

fn sqlite_by_id(c: &Connection, id: &Uuid) -> SqlUser {
    c.prepare_cached(&format!("SELECT {SQL_COLUMNS} FROM users WHERE id = ?1"))
        .unwrap()
        .query_row(params![id.as_bytes()], sql_user)
        .unwrap()
}

/// The first page of 20 in id order (userdir's order without a sort) and the total count,
/// both in one read transaction (one snapshot, like userdir's search).
struct SqlQuery {
    page: String,
    count: String,
}

impl SqlQuery {
    fn new(condition: &str) -> Self {
        SqlQuery {
            page: format!("SELECT {SQL_COLUMNS} FROM users WHERE {condition} ORDER BY id LIMIT 20"),
            count: format!("SELECT COUNT(*) FROM users WHERE {condition}"),
        }
    }
    /// A page query and its count query, as given.
    fn raw(page: String, count: &str) -> Self {
        SqlQuery {
            page,
            count: count.to_owned(),
        }
    }
    fn run(&self, c: &Connection) -> (Vec<SqlUser>, i64) {
        let tx = c.unchecked_transaction().unwrap();
        let page = tx
            .prepare_cached(&self.page)
            .unwrap()
            .query_map([], sql_user)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let total = tx
            .prepare_cached(&self.count)
            .unwrap()
            .query_row([], |r| r.get(0))
            .unwrap();
        tx.commit().unwrap();
        (page, total)
    }
    fn plan(&self, c: &Connection) -> String {
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {}", self.count))
            .unwrap();
        let steps: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        steps.join("; ")
    }
}

// ---------------------------------------------------------------------------------------------
// The N-user datasets: built once per run, when a row first needs them.

struct Base {
    _tmp: tempfile::TempDir,
    dir: Directory,
    sql: Connection,
    /// One connection per writer thread (row 1).
    sql_threads: Vec<Mutex<Connection>>,
    /// One connection shared by the 8 writer threads behind a mutex (row 1, second variant).
    sql_shared: Mutex<Connection>,
    hash: StoredHash,
    /// Existing usernames in upper case (caseless lookups) and ids.
    names: Vec<String>,
    ids: Vec<Uuid>,
    /// The next `created_row` index, per engine.
    ud_next: AtomicU64,
    sq_next: AtomicU64,
    sw: (Search, SqlQuery),
    co: (Search, SqlQuery),
    /// Rows 8a, 8b, 8c.
    sorted: (Search, SqlQuery),
    sorted_sw: (Search, SqlQuery),
    admins: (Search, SqlQuery),
}

fn build_base(n: usize) -> Base {
    let tmp = tempfile::tempdir().unwrap();
    let hash = StoredHash::from_encoded(PHC);
    let data = rows(n);

    let t = Instant::now();
    // The library's defaults: OWASP argon2id, `Durability::Immediate`.
    let dir = Directory::open(tmp.path().join("users.redb")).unwrap();
    let batch: Vec<NewUser> = data.iter().map(|r| new_user(r, &hash)).collect();
    assert_eq!(dir.import(ImportBatch::new(batch)).unwrap().imported, n);
    eprintln!(
        "peers: userdir dataset, {n} users, built in {:.2?}",
        t.elapsed()
    );

    let t = Instant::now();
    let sql_path: PathBuf = tmp.path().join("users.sqlite");
    let sql = sqlite_create(&sql_path);
    sqlite_import(&sql, &data, PHC);
    sql.execute_batch("ANALYZE").unwrap();
    eprintln!(
        "peers: SQLite dataset, {n} users, built in {:.2?}",
        t.elapsed()
    );
    let sql_threads = (0..8)
        .map(|_| Mutex::new(sqlite_connect(&sql_path)))
        .collect();
    let sql_shared = Mutex::new(sqlite_connect(&sql_path));

    let mut rng = Rng::new(0xBEEF);
    let picks: Vec<usize> = (0..PROBES).map(|_| rng.below(n)).collect();
    let names: Vec<String> = picks
        .iter()
        .map(|&i| data[i].username.to_uppercase())
        .collect();
    let ids: Vec<Uuid> = picks.iter().map(|&i| data[i].id).collect();
    drop(data);

    // Both engines answer alike.
    for (name, id) in names.iter().zip(&ids).take(16) {
        assert_eq!(dir.find_by_username(name).unwrap().unwrap().id, *id);
        assert_eq!(sqlite_by_username(&sql, name).0, id.as_bytes());
        assert_eq!(dir.get(*id).unwrap().unwrap().id, *id);
    }
    let sw = (
        Search::filter(r#"userName sw "ab""#).unwrap().limit(20),
        SqlQuery::new("username LIKE 'ab%'"),
    );
    let co = (
        Search::filter(r#"name.familyName co "son""#)
            .unwrap()
            .limit(20),
        // Like userdir, `co` on a family name is case-sensitive.
        SqlQuery::new("instr(last_name, 'son') > 0"),
    );
    let sorted = (
        Search::all().sort(SortField::username()).limit(20),
        SqlQuery::raw(
            format!("SELECT {SQL_COLUMNS} FROM users ORDER BY username LIMIT 20"),
            "SELECT COUNT(*) FROM users",
        ),
    );
    let sorted_sw = (
        Search::filter(r#"userName sw "jo""#)
            .unwrap()
            .sort(SortField::username())
            .limit(20),
        SqlQuery::raw(
            format!(
                "SELECT {SQL_COLUMNS} FROM users WHERE username LIKE 'jo%' ORDER BY username \
                 LIMIT 20"
            ),
            "SELECT COUNT(*) FROM users WHERE username LIKE 'jo%'",
        ),
    );
    let admins = (
        Search::filter(r#"roles eq "admin""#).unwrap().limit(20),
        SqlQuery::raw(
            format!(
                "SELECT {SQL_COLUMNS} FROM user_roles JOIN users ON users.id = user_roles.user_id \
                 WHERE role = 'admin' ORDER BY user_id LIMIT 20"
            ),
            "SELECT COUNT(*) FROM user_roles WHERE role = 'admin'",
        ),
    );
    for (s, q) in [&sorted, &sorted_sw, &admins] {
        // Same totals; the same page where both orders agree (SQLite's NOCASE folds ASCII only:
        // a difference is printed, not fatal).
        let ours = dir.search(s).unwrap();
        let (page, total) = q.run(&sql);
        assert_eq!(ours.total, total as u64);
        let ours: Vec<&[u8]> = ours.users.iter().map(|u| &u.id.as_bytes()[..]).collect();
        let theirs: Vec<&[u8]> = page.iter().map(|u| &u.0[..]).collect();
        if ours != theirs {
            eprintln!("peers: the engines' first pages differ for {}", q.page);
        }
        eprintln!(
            "peers: {total} matches; userdir plan: {}; SQLite plan: {}",
            dir.explain(s).unwrap(),
            q.plan(&sql)
        );
    }
    for (s, q) in [&sw, &co] {
        let ours = dir.search(s).unwrap();
        let (page, total) = q.run(&sql);
        assert_eq!(ours.total, total as u64);
        let ours: Vec<&[u8]> = ours.users.iter().map(|u| &u.id.as_bytes()[..]).collect();
        let theirs: Vec<&[u8]> = page.iter().map(|u| &u.0[..]).collect();
        assert_eq!(ours, theirs);
        eprintln!(
            "peers: {} matches {total} users; userdir plan: {}; SQLite plan: {}",
            s.filter_ref().unwrap(),
            dir.explain(s).unwrap(),
            q.plan(&sql)
        );
    }
    Base {
        _tmp: tmp,
        dir,
        sql,
        sql_threads,
        sql_shared,
        hash,
        names,
        ids,
        ud_next: AtomicU64::new(0),
        sq_next: AtomicU64::new(0),
        sw,
        co,
        sorted,
        sorted_sw,
        admins,
    }
}

impl Base {
    fn ud_create(&self) {
        let r = created_row(self.ud_next.fetch_add(1, Ordering::Relaxed));
        black_box(self.dir.create(new_user(&r, &self.hash)).unwrap());
    }
    fn sq_create(&self) {
        let r = created_row(self.sq_next.fetch_add(1, Ordering::Relaxed));
        sqlite_create_user(&self.sql, &r, PHC);
    }
    /// Row 1: 8 threads, 10 durable creates each.
    fn ud_create_8x10(&self) {
        let base = self.ud_next.fetch_add(80, Ordering::Relaxed);
        let (dir, hash) = (&self.dir, &self.hash);
        std::thread::scope(|s| {
            for t in 0..8 {
                s.spawn(move || {
                    for i in 0..10 {
                        let r = created_row(base + t * 10 + i);
                        dir.create(new_user(&r, hash)).unwrap();
                    }
                });
            }
        });
    }
    /// Row 1 in SQLite, each thread on its own connection (`busy_timeout` waits for the lock).
    fn sq_create_8x10(&self) {
        let base = self.sq_next.fetch_add(80, Ordering::Relaxed);
        std::thread::scope(|s| {
            for (t, c) in (0..).zip(&self.sql_threads) {
                s.spawn(move || {
                    let c = c.lock().unwrap();
                    for i in 0..10 {
                        sqlite_create_user(&c, &created_row(base + t * 10 + i), PHC);
                    }
                });
            }
        });
    }
    /// Row 1 in SQLite, the 8 threads sharing one connection behind a mutex.
    fn sq_create_8x10_shared(&self) {
        let base = self.sq_next.fetch_add(80, Ordering::Relaxed);
        let shared = &self.sql_shared;
        std::thread::scope(|s| {
            for t in 0..8 {
                s.spawn(move || {
                    for i in 0..10 {
                        let r = created_row(base + t * 10 + i);
                        sqlite_create_user(&shared.lock().unwrap(), &r, PHC);
                    }
                });
            }
        });
    }
    fn ud_by_username(&self, k: usize) {
        black_box(
            self.dir
                .find_by_username(&self.names[k % PROBES])
                .unwrap()
                .unwrap(),
        );
    }
    fn sq_by_username(&self, k: usize) {
        black_box(sqlite_by_username(&self.sql, &self.names[k % PROBES]));
    }
    fn ud_by_id(&self, k: usize) {
        black_box(self.dir.get(self.ids[k % PROBES]).unwrap().unwrap());
    }
    fn sq_by_id(&self, k: usize) {
        black_box(sqlite_by_id(&self.sql, &self.ids[k % PROBES]));
    }
    /// `PER_TX` username lookups in one read transaction, from probe `k` on.
    fn ud_by_username_tx(&self, k: usize) {
        self.dir
            .read(|tx| {
                for j in k..k + PER_TX {
                    black_box(tx.find_by_username(&self.names[j % PROBES])?.unwrap());
                }
                Ok(())
            })
            .unwrap();
    }
    fn sq_by_username_tx(&self, k: usize) {
        let tx = self.sql.unchecked_transaction().unwrap();
        for j in k..k + PER_TX {
            black_box(sqlite_by_username(&tx, &self.names[j % PROBES]));
        }
        tx.commit().unwrap();
    }
    fn ud_by_id_tx(&self, k: usize) {
        self.dir
            .read(|tx| {
                for j in k..k + PER_TX {
                    black_box(tx.get(self.ids[j % PROBES])?.unwrap());
                }
                Ok(())
            })
            .unwrap();
    }
    fn sq_by_id_tx(&self, k: usize) {
        let tx = self.sql.unchecked_transaction().unwrap();
        for j in k..k + PER_TX {
            black_box(sqlite_by_id(&tx, &self.ids[j % PROBES]));
        }
        tx.commit().unwrap();
    }
    fn ud_search(&self, s: &Search) {
        black_box(self.dir.search(s).unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Rows 9, 10 and 11: a second pair of files, closed after their import

/// Users with a cheap argon2id hash, for the login row (10).
const LOGIN_USERS: usize = 64;

/// The `k`th login user (both engines hold the same).
fn login_row(k: usize) -> Row {
    let mut r = created_row(10_000_000 + k as u64);
    r.username = format!("login.user{k}");
    r.email = format!("login.user{k}@example.com");
    r.external_id = format!("LOGIN-{k:04}");
    r
}

struct Aside {
    _tmp: tempfile::TempDir,
    /// The userdir file (closed) and the SQLite file (closed, its WAL checkpointed).
    ud_path: PathBuf,
    sq_path: PathBuf,
    /// Bytes per user on disk after the import (row 11): the files and their logs.
    ud_bytes: f64,
    sq_bytes: f64,
    /// The first lookups of row 9, cycled.
    names: Vec<String>,
}

fn file_bytes(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Row 11 in detail (`USERDIR_BENCH_SIZE_DETAIL=1`), on stderr: where the bytes of the closed
/// userdir file go. redb's own statistics (pages of every table, bytes stored in leaves,
/// per-page overhead, free and fragmented bytes) and, for the `directory` tree, the key and
/// value bytes under each tag (see `src/store/redb/tables.rs`).
fn size_detail(path: &Path, users: usize) {
    use redb::{
        ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    };
    let per = |b: u64| b as f64 / users as f64;
    let file = file_bytes(&[path.to_path_buf()]);
    let log = file_bytes(&[with_suffix(path, ".wal")]);
    eprintln!(
        "size detail: file {file} B ({:.1}/user), log {log} B ({:.1}/user)",
        per(file),
        per(log)
    );
    let db = redb::Database::open(path).unwrap();
    let w = db.begin_write().unwrap();
    let s = w.stats().unwrap();
    let page = s.page_size() as u64;
    eprintln!(
        "size detail: redb page {page} B, allocated pages {} ({:.1}/user), leaf {} branch {} \
         (tree height {}), stored leaf bytes {} ({:.1}/user), metadata {} ({:.1}/user), \
         fragmented + free {} ({:.1}/user)",
        s.allocated_pages(),
        per(s.allocated_pages() * page),
        s.leaf_pages(),
        s.branch_pages(),
        s.tree_height(),
        s.stored_bytes(),
        per(s.stored_bytes()),
        s.metadata_bytes(),
        per(s.metadata_bytes()),
        s.fragmented_bytes(),
        per(s.fragmented_bytes()),
    );
    w.abort().unwrap();
    let r = db.begin_read().unwrap();
    let handles: Vec<_> = r.list_tables().unwrap().collect();
    for h in handles {
        let name = h.name().to_owned();
        let t = r.open_untyped_table(h).unwrap();
        let st = t.stats().unwrap();
        eprintln!(
            "size detail: table {name}: {} entries, leaf pages {} branch {} ({:.1} B/user), \
             stored {} ({:.1}/user), metadata {}, fragmented {} ({:.1}/user)",
            t.len().unwrap(),
            st.leaf_pages(),
            st.branch_pages(),
            per((st.leaf_pages() + st.branch_pages()) * page),
            st.stored_bytes(),
            per(st.stored_bytes()),
            st.metadata_bytes(),
            st.fragmented_bytes(),
            per(st.fragmented_bytes()),
        );
    }
    let dir: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
    let t = r.open_table(dir).unwrap();
    let mut tags: std::collections::BTreeMap<u8, (u64, u64, u64)> = Default::default();
    for e in t.iter().unwrap() {
        let (k, v) = e.unwrap();
        let (k, v) = (k.value(), v.value());
        let c = tags.entry(k[0]).or_default();
        c.0 += 1;
        c.1 += k.len() as u64;
        c.2 += v.len() as u64;
    }
    for (tag, (count, k, v)) in tags {
        eprintln!(
            "size detail: tag {:?}: {count} entries, keys {k} B ({:.1}/user), values {v} B \
             ({:.1}/user)",
            tag as char,
            per(k),
            per(v)
        );
    }
}

fn build_aside(n: usize) -> Aside {
    let tmp = tempfile::tempdir().unwrap();
    let data = rows(n);
    let cheap = Hasher::new(Argon2Params::insecure_fast(), None)
        .unwrap()
        .hash(PASSWORD)
        .unwrap();
    let owasp = StoredHash::from_encoded(PHC);
    let logins: Vec<Row> = (0..LOGIN_USERS).map(login_row).collect();

    let ud_path = tmp.path().join("aside.redb");
    let t = Instant::now();
    {
        let dir = Directory::open(&ud_path).unwrap();
        let mut batch: Vec<NewUser> = data.iter().map(|r| new_user(r, &owasp)).collect();
        batch.extend(logins.iter().map(|r| new_user(r, &cheap)));
        let imported = Instant::now();
        assert_eq!(
            dir.import(ImportBatch::new(batch)).unwrap().imported,
            n + LOGIN_USERS
        );
        let imported = imported.elapsed();
        let closed = Instant::now();
        drop(dir);
        eprintln!(
            "peers: second userdir file: import {imported:.2?}, close {:.2?} (compacts after an \
             import)",
            closed.elapsed()
        );
    }
    let ud_bytes = file_bytes(&[ud_path.clone(), with_suffix(&ud_path, ".wal")]) as f64
        / (n + LOGIN_USERS) as f64;
    if std::env::var_os("USERDIR_BENCH_SIZE_DETAIL").is_some() {
        size_detail(&ud_path, n + LOGIN_USERS);
    }

    let sq_path = tmp.path().join("aside.sqlite");
    {
        let c = sqlite_create(&sq_path);
        let tx = c.unchecked_transaction().unwrap();
        for r in &data {
            sqlite_insert(&tx, r, PHC);
        }
        for r in &logins {
            sqlite_insert(&tx, r, cheap.expose());
        }
        tx.commit().unwrap();
        c.execute_batch("ANALYZE").unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let sq_bytes = file_bytes(&[
        sq_path.clone(),
        with_suffix(&sq_path, "-wal"),
        with_suffix(&sq_path, "-shm"),
    ]) as f64
        / (n + LOGIN_USERS) as f64;
    eprintln!(
        "peers: second pair of files, {n} users, built in {:.2?}; bytes per user: userdir \
         {ud_bytes:.0} (file {} + log {} bytes), SQLite {sq_bytes:.0}",
        t.elapsed(),
        file_bytes(std::slice::from_ref(&ud_path)),
        file_bytes(&[with_suffix(&ud_path, ".wal")]),
    );
    let mut rng = Rng::new(0x09E1);
    let names = (0..PROBES)
        .map(|_| data[rng.below(n)].username.to_uppercase())
        .collect();
    Aside {
        _tmp: tmp,
        ud_path,
        sq_path,
        ud_bytes,
        sq_bytes,
        names,
    }
}

impl Aside {
    /// Row 9, userdir: open the closed file (the library's defaults) and look one user up;
    /// returns the directory so that its close is not timed.
    fn ud_open(&self, k: usize) -> Directory {
        let dir = Directory::open(&self.ud_path).unwrap();
        black_box(
            dir.find_by_username(&self.names[k % PROBES])
                .unwrap()
                .unwrap(),
        );
        dir
    }
    /// Row 9b: the same with `Builder::read_only` (redb then writes nothing, so no sync).
    fn ud_open_read_only(&self, k: usize) -> Directory {
        let dir = Directory::builder()
            .read_only()
            .open(&self.ud_path)
            .unwrap();
        black_box(
            dir.find_by_username(&self.names[k % PROBES])
                .unwrap()
                .unwrap(),
        );
        dir
    }
    fn sq_open(&self, k: usize) -> Connection {
        let c = sqlite_connect(&self.sq_path);
        black_box(sqlite_by_username(&c, &self.names[k % PROBES]));
        c
    }
    /// Row 10: the userdir file opened with cheap argon2id parameters (the login users' hashes
    /// were made with them, so nothing is rehashed).
    fn ud_login_dir(&self) -> Directory {
        Directory::builder()
            .hasher(Argon2Params::insecure_fast())
            .open(&self.ud_path)
            .unwrap()
    }
}

fn ud_login(dir: &Directory, k: usize) {
    let login = dir
        .authenticate(&format!("LOGIN.USER{}", k % LOGIN_USERS), PASSWORD)
        .unwrap();
    assert!(!login.rehashed);
    black_box(login);
}

/// Row 10, SQLite: the row by username, the same argon2id verification, then the last-login
/// instant written in a durable transaction.
fn sq_login(c: &Connection, hasher: &Hasher, k: usize) {
    let u = sqlite_by_username(c, &format!("LOGIN.USER{}", k % LOGIN_USERS));
    let hash = StoredHash::from_encoded(u.7.clone().unwrap());
    assert!(hasher.verify(&hash, PASSWORD).unwrap());
    let tx = Transaction::new_unchecked(c, TransactionBehavior::Immediate).unwrap();
    // An instant that moves on with every login (its value costs nothing to compute).
    let now = 1_800_000_000_000 + k as i64;
    tx.prepare_cached("UPDATE users SET last_login = ?1 WHERE id = ?2")
        .unwrap()
        .execute(params![now, u.0])
        .unwrap();
    tx.commit().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Rows 3 and 7

/// Row 3, userdir: a fresh file with the library's defaults, the batch built beforehand.
fn ud_import_setup(
    rows: &[Row],
    hash: &StoredHash,
) -> (tempfile::TempDir, Directory, Vec<NewUser>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Directory::open(tmp.path().join("import.redb")).unwrap();
    let batch = rows.iter().map(|r| new_user(r, hash)).collect();
    (tmp, dir, batch)
}

fn ud_import(dir: &Directory, batch: Vec<NewUser>) {
    let n = batch.len();
    assert_eq!(dir.import(ImportBatch::new(batch)).unwrap().imported, n);
}

fn sq_import_setup() -> (tempfile::TempDir, Connection) {
    let tmp = tempfile::tempdir().unwrap();
    let c = sqlite_create(&tmp.path().join("import.sqlite"));
    (tmp, c)
}

/// Row 7: plaintext users, hashed by the import with the default parameters.
fn plain_setup(m: usize) -> (tempfile::TempDir, Directory, Vec<NewUser>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Directory::open(tmp.path().join("plain.redb")).unwrap();
    assert_eq!(dir.hasher().params(), Argon2Params::default());
    let batch = (0..m)
        .map(|i| {
            NewUser::with_username(format!("plain{i}"))
                .email(format!("plain{i}@example.com"))
                .password(format!("{PASSWORD} {i}"))
        })
        .collect();
    (tmp, dir, batch)
}

fn plain_import(dir: &Directory, batch: Vec<NewUser>) {
    let n = batch.len();
    assert_eq!(dir.import(ImportBatch::new(batch)).unwrap().hashed, n);
}

/// One argon2id hash with the default parameters straight from the `argon2` crate, into a
/// reused memory buffer: the most one core can do.
struct BareArgon2 {
    argon: argon2::Argon2<'static>,
    blocks: Vec<argon2::Block>,
    salt: u128,
}

impl BareArgon2 {
    fn new() -> Self {
        let p = Argon2Params::default();
        let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(32)).unwrap();
        let blocks = vec![argon2::Block::default(); params.block_count()];
        BareArgon2 {
            argon: argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
            blocks,
            salt: 0,
        }
    }
    fn hash(&mut self, password: &str) -> [u8; 32] {
        self.salt += 1;
        let mut out = [0u8; 32];
        self.argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                &self.salt.to_le_bytes(),
                &mut out,
                &mut self.blocks[..],
            )
            .unwrap();
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Criterion groups

const R1: u32 = 1;
const R2: u32 = 1 << 1;
const R3: u32 = 1 << 2;
const R4A: u32 = 1 << 3;
const R4B: u32 = 1 << 4;
const R4C: u32 = 1 << 5;
const R4D: u32 = 1 << 6;
const R5: u32 = 1 << 7;
const R6: u32 = 1 << 8;
const R7: u32 = 1 << 9;
const R8A: u32 = 1 << 10;
const R8B: u32 = 1 << 11;
const R8C: u32 = 1 << 12;
const R9: u32 = 1 << 13;
const R10: u32 = 1 << 14;
const R11: u32 = 1 << 15;

struct Ctx {
    users: usize,
    import: usize,
    plain: usize,
    base: OnceCell<Base>,
    aside: OnceCell<Aside>,
    import_rows: OnceCell<Vec<Row>>,
    /// The rows criterion ran (the summary repeats those).
    ran: Cell<u32>,
}

impl Ctx {
    fn base(&self) -> &Base {
        self.base.get_or_init(|| build_base(self.users))
    }
    fn aside(&self) -> &Aside {
        self.aside.get_or_init(|| build_aside(self.users))
    }
    fn import_rows(&self) -> &[Row] {
        self.import_rows.get_or_init(|| rows(self.import))
    }
    fn mark(&self, row: u32) {
        self.ran.set(self.ran.get() | row);
    }
}

fn bench(c: &mut Criterion) {
    let ctx = Ctx {
        users: env("USERDIR_BENCH_USERS", 100_000),
        import: env("USERDIR_BENCH_IMPORT", 100_000),
        plain: env("USERDIR_BENCH_PLAIN", 64),
        base: OnceCell::new(),
        aside: OnceCell::new(),
        import_rows: OnceCell::new(),
        ran: Cell::new(0),
    };
    let hasher = Hasher::new(Argon2Params::default(), None).unwrap();
    let hash = StoredHash::from_encoded(PHC);
    assert!(
        hasher.verify(&hash, PASSWORD).unwrap(),
        "PHC is a hash of PASSWORD"
    );
    let (n, ni, m) = (ctx.users, ctx.import, ctx.plain);

    // Reads first: the creates of rows 1 and 2 then go into the same datasets.
    let mut lookup =
        |name: &str, row: u32, per: usize, ud: fn(&Base, usize), sq: fn(&Base, usize)| {
            let mut g = c.benchmark_group(format!("{name}_{n}"));
            g.throughput(Throughput::Elements(per as u64));
            g.bench_function("userdir", |b| {
                ctx.mark(row);
                let base = ctx.base();
                let mut k = 0;
                b.iter(|| {
                    k += per;
                    ud(base, k)
                });
            });
            g.bench_function("sqlite", |b| {
                ctx.mark(row);
                let base = ctx.base();
                let mut k = 0;
                b.iter(|| {
                    k += per;
                    sq(base, k)
                });
            });
            g.finish();
        };
    lookup(
        "4a_lookup_username_caseless",
        R4A,
        1,
        Base::ud_by_username,
        Base::sq_by_username,
    );
    lookup("4b_lookup_id", R4B, 1, Base::ud_by_id, Base::sq_by_id);
    lookup(
        "4c_lookup_username_x100_in_read_tx",
        R4C,
        PER_TX,
        Base::ud_by_username_tx,
        Base::sq_by_username_tx,
    );
    lookup(
        "4d_lookup_id_x100_in_read_tx",
        R4D,
        PER_TX,
        Base::ud_by_id_tx,
        Base::sq_by_id_tx,
    );

    let mut g = c.benchmark_group(format!("5_search_userName_sw_ab_page20_{n}"));
    g.bench_function("userdir", |b| {
        ctx.mark(R5);
        let base = ctx.base();
        b.iter(|| base.ud_search(&base.sw.0));
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R5);
        let base = ctx.base();
        b.iter(|| black_box(base.sw.1.run(&base.sql)));
    });
    g.finish();

    let mut g = c.benchmark_group(format!("6_scan_familyName_co_son_page20_{n}"));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function("userdir", |b| {
        ctx.mark(R6);
        let base = ctx.base();
        b.iter(|| base.ud_search(&base.co.0));
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R6);
        let base = ctx.base();
        b.iter(|| black_box(base.co.1.run(&base.sql)));
    });
    g.finish();

    type Pick = fn(&Base) -> &(Search, SqlQuery);
    let pages: [(&str, u32, Pick); 3] = [
        ("8a_sorted_userName_page20", R8A, |b| &b.sorted),
        ("8b_userName_sw_jo_sorted_page20", R8B, |b| &b.sorted_sw),
        ("8c_roles_eq_admin_page20", R8C, |b| &b.admins),
    ];
    for (name, row, which) in pages {
        let mut g = c.benchmark_group(format!("{name}_{n}"));
        // Up to seconds per call at 1M users while the sort reads every record.
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        g.bench_function("userdir", |b| {
            ctx.mark(row);
            let base = ctx.base();
            b.iter(|| base.ud_search(&which(base).0));
        });
        g.bench_function("sqlite", |b| {
            ctx.mark(row);
            let base = ctx.base();
            b.iter(|| black_box(which(base).1.run(&base.sql)));
        });
        g.finish();
    }

    let mut g = c.benchmark_group(format!("9_open_and_first_lookup_{n}"));
    g.bench_function("userdir", |b| {
        ctx.mark(R9 | R11);
        let aside = ctx.aside();
        // Each open timed alone; its close is not (and comes before the next open).
        b.iter_custom(|iters| {
            (0..iters as usize)
                .map(|k| {
                    let t = Instant::now();
                    let d = aside.ud_open(k);
                    let e = t.elapsed();
                    drop(d);
                    e
                })
                .sum()
        });
    });
    g.bench_function("userdir_read_only", |b| {
        ctx.mark(R9 | R11);
        let aside = ctx.aside();
        b.iter_custom(|iters| {
            (0..iters as usize)
                .map(|k| {
                    let t = Instant::now();
                    let d = aside.ud_open_read_only(k);
                    let e = t.elapsed();
                    drop(d);
                    e
                })
                .sum()
        });
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R9 | R11);
        let aside = ctx.aside();
        b.iter_custom(|iters| {
            (0..iters as usize)
                .map(|k| {
                    let t = Instant::now();
                    let c = aside.sq_open(k);
                    let e = t.elapsed();
                    drop(c);
                    e
                })
                .sum()
        });
    });
    g.finish();

    let mut g = c.benchmark_group(format!("10_login_cheap_argon2id_{n}"));
    g.bench_function("userdir", |b| {
        ctx.mark(R10 | R11);
        let dir = ctx.aside().ud_login_dir();
        let mut k = 0;
        b.iter(|| {
            k += 1;
            ud_login(&dir, k);
        });
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R10 | R11);
        let c = sqlite_connect(&ctx.aside().sq_path);
        let hasher = Hasher::new(Argon2Params::insecure_fast(), None).unwrap();
        let mut k = 0;
        b.iter(|| {
            k += 1;
            sq_login(&c, &hasher, k);
        });
    });
    g.finish();

    let mut g = c.benchmark_group(format!("1_create_durable_8_threads_x10_{n}"));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(80));
    g.bench_function("userdir", |b| {
        ctx.mark(R1);
        let base = ctx.base();
        b.iter(|| base.ud_create_8x10());
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R1);
        let base = ctx.base();
        b.iter(|| base.sq_create_8x10());
    });
    g.bench_function("sqlite_shared_connection", |b| {
        ctx.mark(R1);
        let base = ctx.base();
        b.iter(|| base.sq_create_8x10_shared());
    });
    g.finish();

    let mut g = c.benchmark_group(format!("2_create_durable_1_thread_{n}"));
    g.bench_function("userdir", |b| {
        ctx.mark(R2);
        let base = ctx.base();
        b.iter(|| base.ud_create());
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R2);
        let base = ctx.base();
        b.iter(|| base.sq_create());
    });
    g.finish();

    let mut g = c.benchmark_group(format!("3_import_prehashed_{ni}"));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(ni as u64));
    g.bench_function("userdir", |b| {
        ctx.mark(R3);
        let rows = ctx.import_rows();
        b.iter_batched(
            || ud_import_setup(rows, &hash),
            |(tmp, dir, batch)| {
                ud_import(&dir, batch);
                (tmp, dir)
            },
            BatchSize::PerIteration,
        );
    });
    g.bench_function("sqlite", |b| {
        ctx.mark(R3);
        let rows = ctx.import_rows();
        b.iter_batched(
            sq_import_setup,
            |(tmp, c)| {
                sqlite_import(&c, rows, PHC);
                (tmp, c)
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();

    let mut g = c.benchmark_group(format!("7_import_plaintext_{m}_default_argon2id"));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(m as u64));
    g.bench_function("userdir", |b| {
        ctx.mark(R7);
        b.iter_batched(
            || plain_setup(m),
            |(tmp, dir, batch)| {
                plain_import(&dir, batch);
                (tmp, dir)
            },
            BatchSize::PerIteration,
        );
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("argon2id_one_hash_one_core", |b| {
        ctx.mark(R7);
        let mut bare = BareArgon2::new();
        b.iter(|| black_box(bare.hash(black_box(PASSWORD))));
    });
    g.finish();

    if benchmarking() && ctx.ran.get() != 0 {
        summary(&ctx);
    }
}

/// Whether this is `cargo bench` measuring (not `--test`, `--list` or `--profile-time`, nor
/// `cargo test --benches`).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a == "--test" || a == "--list" || a.starts_with("--profile-time"))
}

// ---------------------------------------------------------------------------------------------
// The paired summary

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// `times` calls of `f(k)`, as the mean time of one.
fn mean_of(times: usize, mut f: impl FnMut(usize)) -> Duration {
    time(|| {
        for k in 0..times {
            f(k);
        }
    }) / u32::try_from(times).unwrap()
}

/// [`mean_of`] after `times / 4` untimed calls (at least one), so that the measurement does not
/// start with the caches the other engine just used. For reads only.
fn warm_mean_of(times: usize, mut f: impl FnMut(usize)) -> Duration {
    for k in 0..(times / 4).max(1) {
        f(k);
    }
    mean_of(times, f)
}

/// [`warm_mean_of`] with as many calls as fit in about 300 ms (3 to `max`), from one timed
/// call: the search rows take microseconds or seconds depending on the size and the engine.
fn budget_mean_of(max: usize, mut f: impl FnMut(usize)) -> Duration {
    let one = time(|| f(0)).max(Duration::from_micros(1));
    let fit =
        usize::try_from(Duration::from_millis(300).as_nanos() / one.as_nanos()).unwrap_or(max);
    warm_mean_of(fit.clamp(3, max), f)
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn fmt_time(d: Duration) -> String {
    let s = d.as_secs_f64();
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else {
        (s * 1e6, "µs")
    };
    format!("{} {unit}", sig3(v))
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_rate(per_second: f64) -> String {
    if per_second >= 1000.0 {
        format!("{}k users/s", sig3(per_second / 1000.0))
    } else {
        format!("{} users/s", sig3(per_second))
    }
}

struct Line {
    label: String,
    ud: Vec<Duration>,
    sq: Vec<Duration>,
    /// Users per operation, to print a rate beside the time.
    users: Option<usize>,
}

impl Line {
    fn new(label: String, users: Option<usize>) -> Self {
        Line {
            label,
            ud: Vec::new(),
            sq: Vec::new(),
            users,
        }
    }
    /// One round: both measurements, the engine that goes first alternating with the round.
    fn round(&mut self, r: usize, ud: impl FnOnce() -> Duration, sq: impl FnOnce() -> Duration) {
        if r.is_multiple_of(2) {
            self.ud.push(ud());
            self.sq.push(sq());
        } else {
            self.sq.push(sq());
            self.ud.push(ud());
        }
    }
    fn cell(&self, d: Duration) -> String {
        match self.users {
            Some(n) => format!("{} ({})", fmt_time(d), fmt_rate(n as f64 / d.as_secs_f64())),
            None => fmt_time(d),
        }
    }
    fn print(&self) {
        let (ud, sq) = (median(&self.ud), median(&self.sq));
        println!(
            "| {} | {} | {} | {:.2} |",
            self.label,
            self.cell(ud),
            self.cell(sq),
            sq.as_secs_f64() / ud.as_secs_f64()
        );
    }
}

fn summary(ctx: &Ctx) {
    let ran = ctx.ran.get();
    let rounds = env("USERDIR_BENCH_ROUNDS", 5).max(1);
    let (n, ni, m) = (ctx.users, ctx.import, ctx.plain);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let hash = StoredHash::from_encoded(PHC);
    let on = |row: u32| ran & row != 0;
    let started = Instant::now();

    let mut r1 = Line::new(
        "1. durable creates, 8 threads × 10 (80 users); SQLite: a connection per thread".into(),
        Some(80),
    );
    let mut r1b = Line::new(
        "1b. the same; SQLite: one connection shared behind a mutex".into(),
        Some(80),
    );
    let mut r2 = Line::new("2. one durable create, 1 thread".into(), None);
    let mut r3 = Line::new(
        format!("3. import {ni} pre-hashed users, one batch, fresh file"),
        Some(ni),
    );
    let mut r4a = Line::new(
        format!("4a. caseless username lookup at {n} users, single call"),
        None,
    );
    let mut r4b = Line::new(format!("4b. id lookup at {n} users, single call"), None);
    let mut r4c = Line::new(
        format!("4c. caseless username lookup, {PER_TX} in one read transaction (per lookup)"),
        None,
    );
    let mut r4d = Line::new(
        format!("4d. id lookup, {PER_TX} in one read transaction (per lookup)"),
        None,
    );
    let mut r8 = [
        Line::new(
            format!("8a. every user sorted by userName at {n} users, page of 20 + total"),
            None,
        ),
        Line::new(String::new(), None),
        Line::new(String::new(), None),
    ];
    let mut r9 = Line::new(
        format!("9. open an existing {n}-user file + first lookup"),
        None,
    );
    let mut r9b = Line::new(
        "9b. the same, userdir opened with `Builder::read_only` (no write, no sync)".into(),
        None,
    );
    let mut r10 = Line::new(
        format!(
            "10. login at {n} users, cheap argon2id (lookup + verify + durable last-login write)"
        ),
        None,
    );
    let mut r5 = Line::new(String::new(), None);
    let mut r6 = Line::new(String::new(), None);
    let mut r7 = Vec::new();
    let mut one_hash = Vec::new();
    let mut parallel = Vec::new();

    for r in 0..rounds {
        if on(R4A | R4B | R4C | R4D | R5 | R6 | R1 | R2) {
            let b = ctx.base();
            if on(R4A) {
                r4a.round(
                    r,
                    || warm_mean_of(4 * PROBES, |k| b.ud_by_username(k)),
                    || warm_mean_of(4 * PROBES, |k| b.sq_by_username(k)),
                );
            }
            if on(R4B) {
                r4b.round(
                    r,
                    || warm_mean_of(4 * PROBES, |k| b.ud_by_id(k)),
                    || warm_mean_of(4 * PROBES, |k| b.sq_by_id(k)),
                );
            }
            let per_tx = |f: fn(&Base, usize)| {
                warm_mean_of(4 * PROBES / PER_TX, |k| f(b, k * PER_TX))
                    / u32::try_from(PER_TX).unwrap()
            };
            if on(R4C) {
                r4c.round(
                    r,
                    || per_tx(Base::ud_by_username_tx),
                    || per_tx(Base::sq_by_username_tx),
                );
            }
            if on(R4D) {
                r4d.round(
                    r,
                    || per_tx(Base::ud_by_id_tx),
                    || per_tx(Base::sq_by_id_tx),
                );
            }
            if on(R5) {
                r5.round(
                    r,
                    || budget_mean_of(200, |_| b.ud_search(&b.sw.0)),
                    || budget_mean_of(200, |_| drop(black_box(b.sw.1.run(&b.sql)))),
                );
            }
            if on(R6) {
                r6.round(
                    r,
                    || warm_mean_of(5, |_| b.ud_search(&b.co.0)),
                    || warm_mean_of(5, |_| drop(black_box(b.co.1.run(&b.sql)))),
                );
            }
            let pages: [(u32, &(Search, SqlQuery)); 3] =
                [(R8A, &b.sorted), (R8B, &b.sorted_sw), (R8C, &b.admins)];
            for ((row, (search, query)), line) in pages.into_iter().zip(&mut r8) {
                if on(row) {
                    line.round(
                        r,
                        || budget_mean_of(100, |_| b.ud_search(search)),
                        || budget_mean_of(100, |_| drop(black_box(query.run(&b.sql)))),
                    );
                }
            }
            if on(R1) {
                r1.round(
                    r,
                    || time(|| b.ud_create_8x10()),
                    || time(|| b.sq_create_8x10()),
                );
                r1b.ud.push(*r1.ud.last().unwrap());
                r1b.sq.push(time(|| b.sq_create_8x10_shared()));
            }
            if on(R2) {
                r2.round(
                    r,
                    || mean_of(50, |_| b.ud_create()),
                    || mean_of(50, |_| b.sq_create()),
                );
            }
        }
        if on(R9) {
            let a = ctx.aside();
            // Each open timed alone (its close is not), 20 per round.
            let opens = |f: &dyn Fn(usize) -> Duration| {
                let mut v: Vec<Duration> = (0..20).map(f).collect();
                v.sort_unstable();
                v[v.len() / 2]
            };
            r9.round(
                r,
                || {
                    opens(&|k| {
                        let t = Instant::now();
                        let d = a.ud_open(k);
                        let e = t.elapsed();
                        drop(d);
                        e
                    })
                },
                || {
                    opens(&|k| {
                        let t = Instant::now();
                        let c = a.sq_open(k);
                        let e = t.elapsed();
                        drop(c);
                        e
                    })
                },
            );
            r9b.ud.push(opens(&|k| {
                let t = Instant::now();
                let d = a.ud_open_read_only(k);
                let e = t.elapsed();
                drop(d);
                e
            }));
            r9b.sq.push(*r9.sq.last().unwrap());
        }
        if on(R10) {
            let a = ctx.aside();
            let dir = a.ud_login_dir();
            let c = sqlite_connect(&a.sq_path);
            let hasher = Hasher::new(Argon2Params::insecure_fast(), None).unwrap();
            r10.round(
                r,
                || warm_mean_of(200, |k| ud_login(&dir, k)),
                || warm_mean_of(200, |k| sq_login(&c, &hasher, k)),
            );
        }
        if on(R3) {
            let rows = ctx.import_rows();
            r3.round(
                r,
                || {
                    let (_tmp, dir, batch) = ud_import_setup(rows, &hash);
                    time(|| ud_import(&dir, batch))
                },
                || {
                    let (_tmp, c) = sq_import_setup();
                    time(|| sqlite_import(&c, rows, PHC))
                },
            );
        }
        if on(R7) {
            let (_tmp, dir, batch) = plain_setup(m);
            r7.push(time(|| plain_import(&dir, batch)));
            let mut bare = BareArgon2::new();
            let mut hashes: Vec<Duration> = (0..5)
                .map(|_| {
                    time(|| {
                        black_box(bare.hash(PASSWORD));
                    })
                })
                .collect();
            hashes.sort_unstable();
            one_hash.push(hashes[2]);
            // The same number of hashes on all cores, without the import: what the machine
            // gives right now.
            parallel.push(time(|| {
                (0..m)
                    .into_par_iter()
                    .with_max_len(1)
                    .for_each_init(BareArgon2::new, |bare, i| {
                        black_box(bare.hash(&format!("{PASSWORD} {i}")));
                    });
            }));
        }
    }

    println!();
    println!(
        "## userdir and SQLite, paired summary ({rounds} alternating rounds, medians, \
         {cores} cores, {:.0?})",
        started.elapsed()
    );
    println!();
    println!("| row | userdir | SQLite | ratio (SQLite time / userdir time) |");
    println!("|---|---|---|---|");
    for (row, line) in [
        (R1, &r1),
        (R1, &r1b),
        (R2, &r2),
        (R3, &r3),
        (R4A, &r4a),
        (R4B, &r4b),
        (R4C, &r4c),
        (R4D, &r4d),
    ] {
        if on(row) {
            line.print();
        }
    }
    if on(R5 | R6) {
        let b = ctx.base();
        if on(R5) {
            r5.label = format!(
                "5. `userName sw \"ab\"` at {n} users, page of 20 + total ({} matches)",
                b.dir.search(&b.sw.0).unwrap().total
            );
            r5.print();
        }
        if on(R6) {
            r6.label = format!(
                "6. `name.familyName co \"son\"` (no index) at {n} users, page of 20 + total \
                 ({} matches)",
                b.dir.search(&b.co.0).unwrap().total
            );
            r6.print();
        }
    }
    if on(R8A | R8B | R8C) {
        let b = ctx.base();
        let total = |s: &Search| b.dir.search(s).unwrap().total;
        r8[1].label = format!(
            "8b. `userName sw \"jo\"` sorted by userName at {n} users, page of 20 + total ({} \
             matches)",
            total(&b.sorted_sw.0)
        );
        r8[2].label = format!(
            "8c. `roles eq \"admin\"` at {n} users, page of 20 + total ({} matches)",
            total(&b.admins.0)
        );
        for (row, line) in [R8A, R8B, R8C].into_iter().zip(&r8) {
            if on(row) {
                line.print();
            }
        }
    }
    if on(R9) {
        r9.print();
        r9b.print();
    }
    if on(R10) {
        r10.print();
    }
    if on(R11) {
        let a = ctx.aside();
        println!(
            "| 11. bytes per user on disk after importing {n} users (file + log) | {:.0} | {:.0} \
             | {:.2} |",
            a.ud_bytes,
            a.sq_bytes,
            a.sq_bytes / a.ud_bytes
        );
    }
    if on(R7) {
        let (pt, one, par) = (median(&r7), median(&one_hash), median(&parallel));
        let rate = m as f64 / pt.as_secs_f64();
        let one_rate = 1.0 / one.as_secs_f64();
        let limit = cores as f64 * one_rate;
        let p = Argon2Params::default();
        println!(
            "| 7. plaintext import, {m} users, default argon2id (m = {} KiB, t = {}, p = {}) \
             | {} ({}) | – | – |",
            p.m_kib,
            p.t,
            p.p,
            fmt_time(pt),
            fmt_rate(rate)
        );
        println!();
        println!(
            "Row 7: one bare argon2id hash on one core takes {} ({} hashes/s), so {cores} cores \
             × that rate = {}; the import reaches {:.0}% of it. Bare hashing of the same {m} \
             passwords on all cores in the same rounds: {} ({}); the import reaches {:.0}% of \
             that.",
            fmt_time(one),
            sig3(one_rate),
            fmt_rate(limit),
            100.0 * rate / limit,
            fmt_time(par),
            fmt_rate(m as f64 / par.as_secs_f64()),
            100.0 * par.as_secs_f64() / pt.as_secs_f64()
        );
    }
    println!();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
