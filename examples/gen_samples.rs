//! Generates the sample files under `examples/data/` that `userdir demo` imports:
//!
//! * `fusionauth_users.json`: 1500 users, a FusionAuth import request whose passwords are
//!   `salted-pbkdf2-hmac-sha256` hashes (factor 24000, FusionAuth's default);
//! * `scim_users.json`: 1500 users, a SCIM 2.0 ListResponse with the enterprise extension and no
//!   passwords (SSO-provisioned accounts);
//! * `users.jsonl`: 1500 users in JSON Lines, with argon2id hashes at OWASP's parameters, as
//!   `userdir export --with-hashes` writes them;
//! * `fuse_users.json`: 300 users, a Fuse bulk create request with plaintext passwords, which
//!   the import hashes (in parallel) — kept small so that the demo runs in seconds with the real
//!   argon2id parameters.
//!
//! User `n` of a file has the username `<prefix>-user-<nnnn>` and the password
//! `<prefix>-password-<n>` (prefixes `fa`, `sc`, `jl`, `fu`). The output is deterministic.
//!
//! Run with `MALLOC_MMAP_THRESHOLD_=131072 cargo run --release --example gen_samples` (about
//! half a minute: hashing). The variable stops glibc from keeping every freed 19 MiB argon2
//! buffer of the worker threads (without it the run can take gigabytes).

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rayon::prelude::*;
use serde_json::{Value, json};
use userdir::{Argon2Params, Hasher};

const FIRST: [&str; 24] = [
    "Ann", "Bob", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tamar", "Uma", "Viktor",
    "Wen", "Yusuf",
];
const LAST: [&str; 20] = [
    "Anderson", "Brown", "Carlsson", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito",
    "Johnson", "Kowalski", "Larsen", "Martin", "Nguyen", "Olsen", "Petersen", "Rossi", "Smith",
    "Thompson", "Wilson",
];
const DOMAINS: [&str; 3] = ["example.com", "example.org", "example.net"];
const DEPARTMENTS: [&str; 6] = [
    "Sales",
    "Engineering",
    "Support",
    "Finance",
    "Legal",
    "Marketing",
];
const ZONES: [&str; 5] = [
    "America/Denver",
    "Europe/Paris",
    "Asia/Tokyo",
    "America/New_York",
    "Europe/Berlin",
];
const APP_ID: &str = "3c219e58-ed0e-4b18-ad48-f4f92793ae32";
const JAN_2019: i64 = 1_546_300_800_000;
const DAY: i64 = 86_400_000;

/// splitmix64: a tiny deterministic generator, so the files do not change between runs.
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
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The common facts of sample user `n`.
struct Person {
    n: usize,
    id: String,
    username: String,
    password: String,
    first: &'static str,
    last: &'static str,
    email: String,
    active: bool,
    department: &'static str,
    zone: &'static str,
    birth: String,
    inserted: i64,
    last_login: Option<i64>,
    roles: Vec<&'static str>,
}

fn person(rng: &mut Rng, prefix: &str, n: usize) -> Person {
    let first = rng.pick(&FIRST);
    let last = rng.pick(&LAST);
    let domain = rng.pick(&DOMAINS);
    let inserted = JAN_2019 + rng.below(1500) as i64 * DAY + rng.below(DAY as u64) as i64;
    let last_login = (rng.below(4) != 0).then(|| inserted + rng.below(300) as i64 * DAY);
    let mut roles = vec!["user"];
    if n.is_multiple_of(50) {
        roles.push("admin");
    }
    if n.is_multiple_of(7) {
        roles.push("editor");
    }
    Person {
        n,
        id: rng.uuid(),
        username: format!("{prefix}-user-{n:04}"),
        password: format!("{prefix}-password-{n}"),
        first,
        last,
        email: format!(
            "{}.{}.{prefix}{n}@{domain}",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        active: !n.is_multiple_of(20),
        department: rng.pick(&DEPARTMENTS),
        zone: rng.pick(&ZONES),
        birth: format!(
            "{}-{:02}-{:02}",
            1960 + rng.below(45),
            1 + rng.below(12),
            1 + rng.below(28)
        ),
        inserted,
        last_login,
        roles,
    }
}

fn people(seed: u64, prefix: &str, count: usize) -> Vec<Person> {
    let mut rng = Rng(seed);
    (1..=count).map(|n| person(&mut rng, prefix, n)).collect()
}

fn fusionauth_user(p: &Person) -> Value {
    let mut u = json!({
        "id": p.id,
        "active": p.active,
        "username": p.username,
        "email": p.email,
        "verified": !p.n.is_multiple_of(3),
        "firstName": p.first,
        "lastName": p.last,
        "fullName": format!("{} {}", p.first, p.last),
        "birthDate": p.birth,
        "mobilePhone": format!("+1 303 555 {:04}", p.n),
        "timezone": p.zone,
        "preferredLanguages": if p.n.is_multiple_of(4) { json!(["fr", "en"]) } else { json!(["en"]) },
        "insertInstant": p.inserted,
        "data": { "department": p.department, "employeeNumber": format!("E{:05}", p.n) },
        "registrations": [{ "applicationId": APP_ID, "roles": p.roles }],
    });
    if let Some(t) = p.last_login {
        u["lastLoginInstant"] = json!(t);
    }
    u
}

fn fusionauth(seed: u64) -> String {
    let ps = people(seed, "fa", 1500);
    let mut rng = Rng(seed ^ 0xFA);
    let salts: Vec<Vec<u8>> = ps.iter().map(|_| rng.bytes(16)).collect();
    let rows: Vec<Value> = ps
        .par_iter()
        .zip(salts.par_iter())
        .map(|(p, salt)| {
            let mut key = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p.password.as_bytes(), salt, 24_000, &mut key);
            let mut u = fusionauth_user(p);
            u["encryptionScheme"] = json!("salted-pbkdf2-hmac-sha256");
            u["factor"] = json!(24_000);
            u["salt"] = json!(STANDARD.encode(salt));
            u["password"] = json!(STANDARD.encode(key));
            u["passwordLastUpdateInstant"] = json!(p.inserted);
            u
        })
        .collect();
    array_document("{\"users\":[\n", &rows, "\n]}\n")
}

fn jsonl(seed: u64) -> String {
    let ps = people(
        seed,
        "jl",
        std::env::var("GEN_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1500),
    );
    let hasher = Hasher::new(Argon2Params::owasp(), None).expect("argon2 parameters");
    let rows: Vec<Value> = ps
        .par_iter()
        .map(|p| {
            let mut u = fusionauth_user(p);
            let h = hasher.hash(&p.password).expect("argon2 hash");
            u["encryptionScheme"] = json!(userdir::json::fusionauth::USERDIR_PHC);
            u["password"] = json!(h.expose());
            u["passwordLastUpdateInstant"] = json!(p.inserted);
            u
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        writeln!(s, "{r}").expect("write to a String");
    }
    s
}

fn scim(seed: u64) -> String {
    let ps = people(seed, "sc", 1500);
    let rows: Vec<Value> = ps
        .iter()
        .map(|p| {
            json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
                ],
                "id": p.id,
                "externalId": format!("HR-{:06}", p.n),
                "userName": p.username,
                "name": { "givenName": p.first, "familyName": p.last, "formatted": format!("{} {}", p.first, p.last) },
                "displayName": format!("{} {}", p.first, p.last),
                "emails": [{ "value": p.email, "type": "work", "primary": true }],
                "phoneNumbers": [{ "value": format!("+1 415 555 {:04}", p.n), "type": "mobile" }],
                "active": p.active,
                "roles": p.roles.iter().map(|r| json!({ "value": r })).collect::<Vec<_>>(),
                "title": if p.n % 10 == 0 { "Manager" } else { "Associate" },
                "preferredLanguage": "en-US",
                "timezone": p.zone,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "employeeNumber": format!("{:06}", p.n),
                    "department": p.department,
                    "organization": "Example Corp",
                    "costCenter": format!("CC{}", p.n % 12),
                },
                "meta": { "resourceType": "User", "created": userdir::json::format_rfc3339(p.inserted) },
            })
        })
        .collect();
    let head = format!(
        "{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],\"totalResults\":{n},\"startIndex\":1,\"itemsPerPage\":{n},\"Resources\":[\n",
        n = rows.len()
    );
    array_document(&head, &rows, "\n]}\n")
}

fn fuse(seed: u64) -> String {
    let ps = people(seed, "fu", 300);
    let rows: Vec<Value> = ps
        .iter()
        .map(|p| {
            json!({
                "username": p.username,
                "password": p.password,
                "password_confirmation": p.password,
                "email": p.email,
                "role": if p.roles.contains(&"admin") { "admin" } else { "user" },
                "profile": { "FirstName": p.first, "LastName": p.last, "Department": p.department },
                "plain_text_emails": p.n % 2 == 0,
                "hidden_from_leaderboard": false,
                "settings": { "default_locale": "en-GB", "digest_emails": "Off" },
            })
        })
        .collect();
    array_document("{\"users\":[\n", &rows, "\n]}\n")
}

fn array_document(head: &str, rows: &[Value], tail: &str) -> String {
    let body: Vec<String> = rows.iter().map(Value::to_string).collect();
    format!("{head}{}{tail}", body.join(",\n"))
}

/// A sample file: its name, its generator and the generator's seed.
type Sample = (&'static str, fn(u64) -> String, u64);

fn main() {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    std::fs::create_dir_all(&out).expect("create examples/data");
    let only = std::env::var("GEN_ONLY").unwrap_or_default();
    let files: [Sample; 4] = [
        ("fusionauth_users.json", fusionauth, 1),
        ("scim_users.json", scim, 2),
        ("users.jsonl", jsonl, 3),
        ("fuse_users.json", fuse, 4),
    ];
    for (name, make, seed) in files {
        if !only.is_empty() && !name.starts_with(&only) {
            continue;
        }
        let text = make(seed);
        std::fs::write(out.join(name), &text).expect("write a sample file");
        println!("{name}: {} bytes", text.len());
    }
}
