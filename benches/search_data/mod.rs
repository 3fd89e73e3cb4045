//! The data set of `benches/search.rs` and `examples/search_million.rs`: deterministic rows,
//! loaded into a userdir file and into a SQLite file with the same columns and indexes.

#![allow(dead_code)]

use rusqlite::{Connection, params};
use userdir::{Argon2Params, Directory, Durability, ImportBatch, NewUser};
use uuid::Uuid;

pub const LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Nguyen", "Hill",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub struct Row {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub last: &'static str,
    pub role: String,
    /// Every fourth user also holds `admin` (the issue-18 `roles eq "admin"` rows: 25%).
    pub admin: bool,
    pub inserted: i64,
}

pub fn rows(n: usize) -> Vec<Row> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    (0..n)
        .map(|i| {
            let len = 3 + rng.below(6);
            let name: String = (0..len)
                .map(|_| char::from(b'a' + u8::try_from(rng.below(26)).unwrap()))
                .collect();
            Row {
                id: Uuid::from_u128(u128::from(rng.next()) << 64 | i as u128),
                username: format!("{name}{i}"),
                email: format!("user{i}@example.com"),
                last: LAST[rng.below(LAST.len() as u64) as usize],
                role: format!("role{}", rng.below(10)),
                admin: i % 4 == 0,
                inserted: 1_600_000_000_000 + i as i64,
            }
        })
        .collect()
}

fn new_user(r: &Row) -> NewUser {
    let u = NewUser::with_username(&r.username)
        .id(r.id)
        .email(&r.email)
        .last_name(r.last)
        .role(&r.role)
        .insert_instant(r.inserted);
    if r.admin { u.role("admin") } else { u }
}

pub fn open_userdir(path: &std::path::Path) -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .durability(Durability::Eventual)
        .open(path)
        .unwrap()
}

/// Creates the users in transactions of 20,000 `create`s.
pub fn build_userdir(path: &std::path::Path, rows: &[Row]) -> Directory {
    let dir = open_userdir(path);
    for chunk in rows.chunks(20_000) {
        let prepared: Vec<_> = chunk
            .iter()
            .map(|r| dir.prepare(new_user(r)).unwrap())
            .collect();
        dir.write(|tx| {
            for p in prepared {
                tx.create(p)?;
            }
            Ok(())
        })
        .unwrap();
    }
    dir
}

/// The same users through `import`, in batches of 100,000 (faster for large sets).
pub fn import_userdir(path: &std::path::Path, rows: &[Row]) -> Directory {
    let dir = open_userdir(path);
    for chunk in rows.chunks(100_000) {
        dir.import(ImportBatch::new(chunk.iter().map(new_user).collect()))
            .unwrap();
    }
    dir
}

pub fn build_sqlite(path: &std::path::Path, rows: &[Row]) -> Connection {
    let mut c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         CREATE TABLE users(id BLOB PRIMARY KEY, username TEXT COLLATE NOCASE UNIQUE,
                            email TEXT UNIQUE, last_name TEXT, insert_instant INTEGER NOT NULL,
                            active INTEGER NOT NULL, version INTEGER NOT NULL);
         CREATE TABLE roles(role TEXT NOT NULL, user_id BLOB NOT NULL, PRIMARY KEY(role, user_id))
            WITHOUT ROWID;
         CREATE INDEX users_inserted ON users(insert_instant, id);",
    )
    .unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut u = tx
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, 1, 1)")
            .unwrap();
        let mut r = tx.prepare("INSERT INTO roles VALUES (?1, ?2)").unwrap();
        for row in rows {
            let id = row.id.as_bytes().to_vec();
            u.execute(params![id, row.username, row.email, row.last, row.inserted])
                .unwrap();
            r.execute(params![row.role, id]).unwrap();
            if row.admin {
                r.execute(params!["admin", id]).unwrap();
            }
        }
    }
    tx.commit().unwrap();
    c.execute_batch("ANALYZE;").unwrap();
    c
}

pub type SqlRow = (Vec<u8>, String, String, Option<String>, i64);

/// A page of rows and a count, as two prepared (cached) statements.
pub fn sql_page(c: &Connection, page_sql: &str, count_sql: &str) -> (Vec<SqlRow>, i64) {
    let mut st = c.prepare_cached(page_sql).unwrap();
    let page: Vec<SqlRow> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut st = c.prepare_cached(count_sql).unwrap();
    let total: i64 = st.query_row([], |r| r.get(0)).unwrap();
    (page, total)
}

pub const SW_PAGE: &str = "SELECT id, username, email, last_name, insert_instant FROM users \
                           WHERE username LIKE 'ab%' ORDER BY id LIMIT 20";
pub const SW_COUNT: &str = "SELECT COUNT(*) FROM users WHERE username LIKE 'ab%'";
pub const CO_PAGE: &str = "SELECT id, username, email, last_name, insert_instant FROM users \
                           WHERE instr(last_name, 'son') > 0 ORDER BY id LIMIT 20";
pub const CO_COUNT: &str = "SELECT COUNT(*) FROM users WHERE instr(last_name, 'son') > 0";
/// The scan sorted by username (caseless), first page.
pub const CO_SORTED_PAGE: &str = "SELECT id, username, email, last_name, insert_instant FROM users \
                           WHERE instr(last_name, 'son') > 0 ORDER BY username COLLATE NOCASE, id LIMIT 20";
pub const ROLE_PAGE: &str = "SELECT u.id, u.username, u.email, u.last_name, u.insert_instant \
                             FROM roles r JOIN users u ON u.id = r.user_id \
                             WHERE r.role = 'role3' ORDER BY r.user_id LIMIT 20";
pub const ROLE_COUNT: &str = "SELECT COUNT(*) FROM roles WHERE role = 'role3'";
/// Every user by username (caseless), first page; the total.
pub const BY_USERNAME_PAGE: &str = "SELECT id, username, email, last_name, insert_instant \
                           FROM users ORDER BY username COLLATE NOCASE LIMIT 20";
pub const ALL_COUNT: &str = "SELECT COUNT(*) FROM users";
/// `userName sw "jo"` by username, first page; the total.
pub const SW_JO_SORTED_PAGE: &str = "SELECT id, username, email, last_name, insert_instant \
                           FROM users WHERE username LIKE 'jo%' \
                           ORDER BY username COLLATE NOCASE LIMIT 20";
pub const SW_JO_COUNT: &str = "SELECT COUNT(*) FROM users WHERE username LIKE 'jo%'";
/// `roles eq "admin"` (a quarter of the users) in id order, first page; the total.
pub const ADMIN_PAGE: &str = "SELECT u.id, u.username, u.email, u.last_name, u.insert_instant \
                             FROM roles r JOIN users u ON u.id = r.user_id \
                             WHERE r.role = 'admin' ORDER BY r.user_id LIMIT 20";
pub const ADMIN_COUNT: &str = "SELECT COUNT(*) FROM roles WHERE role = 'admin'";
pub const BY_ID: &str = "SELECT id, username, email, last_name, insert_instant, active, version \
                         FROM users WHERE id = ?1";
pub const BY_USERNAME: &str = "SELECT id, username, email, last_name, insert_instant, active, \
                               version FROM users WHERE username = ?1";

pub type SqlUser = (Vec<u8>, String, String, Option<String>, i64, i64, i64);

pub fn sql_user(c: &Connection, sql: &str, p: &dyn rusqlite::ToSql) -> SqlUser {
    let mut st = c.prepare_cached(sql).unwrap();
    st.query_row([p], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
}
