//! Manual run: requests per second and p50/p99 latency of the SCIM endpoint over loopback,
//! beside the cost of the same library call made directly.
//!
//! ```text
//! cargo run --release --features scim --example scim_load -- [users] [requests] [connections] [seconds]
//! ```
//!
//! `users` (default 10,000; the issue's measurement uses 1,000,000) are bulk-imported into a fresh
//! directory file in a temporary folder (usernames `user0000000`…, no passwords: provisioning does
//! not send any). The endpoint (`userdir::scim::router`, bearer token, group commit with
//! `Durability::Immediate`) is served on 127.0.0.1 by a tokio runtime in this process;
//! `connections` client threads (default 4) send keep-alive HTTP/1.1 requests over loopback with a
//! blocking socket each. Per operation, `requests` (default 4,000) requests are sent or `seconds`
//! (default 20) pass, whichever comes first:
//!
//! - `GET /Users/{id}` of random users;
//! - `GET /Users?filter=userName eq "…"` of random users;
//! - `POST /Users` of new users (userName, email, name, no password);
//! - `PATCH /Users/{id}` replacing `nickName` of random users.
//!
//! Then the same operations as direct library calls on one thread (`get`, `search`, `create`,
//! `patch`), bounded the same way. Latency is per request, measured by the client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use userdir::scim::{self, ScimConfig};
use userdir::{Directory, ImportBatch, NewUser, PatchOp, Search};
use uuid::Uuid;

const TOKEN: &str = "load-test-token-0123456789";

/// A tiny xorshift generator: random picks without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n.max(1) as u64).unwrap_or(0)
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Sends one request and reads the whole response; returns the status.
    fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<u16> {
        let body = body.unwrap_or("");
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf)?;
        Ok(status)
    }
}

struct Stats {
    done: usize,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, secs: f64) -> Stats {
    lat.sort_unstable();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat.get(i).copied().unwrap_or_default()
    };
    Stats {
        done: lat.len(),
        secs,
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Runs `make(conn, thread, i)` on `threads` connections until `total` requests or `limit`.
fn load(
    addr: SocketAddr,
    threads: usize,
    total: usize,
    limit: Duration,
    make: impl Fn(&mut Conn, &mut Rng, usize) -> std::io::Result<u16> + Send + Sync + 'static,
) -> Stats {
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (make, next) = (make.clone(), next.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).expect("connect");
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1000_0001));
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || start.elapsed() > limit {
                        break;
                    }
                    let t0 = Instant::now();
                    let status = make(&mut conn, &mut rng, i).expect("request");
                    lat.push(t0.elapsed());
                    assert!((200..300).contains(&status), "status {status}");
                }
                lat
            })
        })
        .collect();
    let lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    stats(lat, start.elapsed().as_secs_f64())
}

/// Runs `f(i)` on this thread until `total` calls or `limit`.
fn direct(total: usize, limit: Duration, mut f: impl FnMut(usize)) -> Stats {
    let start = Instant::now();
    let mut lat = Vec::new();
    for i in 0..total {
        if start.elapsed() > limit {
            break;
        }
        let t0 = Instant::now();
        f(i);
        lat.push(t0.elapsed());
    }
    stats(lat, start.elapsed().as_secs_f64())
}

fn row(op: &str, how: &str, s: &Stats) {
    #[allow(clippy::cast_precision_loss)]
    let rate = s.done as f64 / s.secs;
    println!(
        "| {op:<28} | {how:<11} | {:>6} | {rate:>9.0} | {:>9.1} | {:>9.1} |",
        s.done,
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(10_000), |s| s.parse())?;
    let requests: usize = args.next().map_or(Ok(4_000), |s| s.parse())?;
    let threads: usize = args.next().map_or(Ok(4), |s| s.parse())?;
    let seconds: u64 = args.next().map_or(Ok(20), |s| s.parse())?;
    let limit = Duration::from_secs(seconds);

    let tmp = tempfile::tempdir()?;
    let dir = Directory::open(tmp.path().join("load.redb"))?;
    let t = Instant::now();
    let ids: Arc<Vec<Uuid>> = Arc::new((0..n).map(|_| Uuid::new_v4()).collect());
    let rows: Vec<NewUser> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            NewUser::with_username(format!("user{i:07}"))
                .id(*id)
                .email(format!("user{i:07}@example.com"))
                .first_name("Given")
                .last_name(format!("Family{}", i % 1000))
        })
        .collect();
    dir.import(ImportBatch::new(rows))?;
    eprintln!("imported {n} users in {:.1} s", t.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = scim::router(dir.clone(), ScimConfig::with_bearer_token(TOKEN));
    runtime.spawn(async move { axum::serve(listener, app).await });

    println!(
        "{n} users; {threads} connections over loopback; at most {requests} requests or {seconds} s per row"
    );
    println!(
        "| operation                    | via         | done   | req/s     | p50 µs    | p99 µs    |"
    );
    println!("|---|---|---|---|---|---|");
    let pick = {
        let ids = ids.clone();
        move |r: &mut Rng| ids[r.next(ids.len())]
    };
    let p = pick.clone();
    let s = load(addr, threads, requests, limit, move |c, r, _| {
        c.request("GET", &format!("/Users/{}", p(r)), None)
    });
    row("GET /Users/{id}", "HTTP", &s);
    let s = load(addr, threads, requests, limit, move |c, r, _| {
        let i = r.next(n);
        c.request(
            "GET",
            &format!("/Users?filter=userName%20eq%20%22user{i:07}%22"),
            None,
        )
    });
    row("GET ?filter=userName eq", "HTTP", &s);
    let s = load(addr, threads, requests, limit, move |c, _, i| {
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"http{i:07}","emails":[{{"value":"http{i:07}@example.com","primary":true}}],"name":{{"givenName":"New","familyName":"User"}},"active":true}}"#
        );
        c.request("POST", "/Users", Some(&body))
    });
    row("POST /Users", "HTTP", &s);
    let p = pick.clone();
    let s = load(addr, threads, requests, limit, move |c, r, i| {
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"replace","path":"nickName","value":"n{i}"}}]}}"#
        );
        c.request("PATCH", &format!("/Users/{}", p(r)), Some(&body))
    });
    row("PATCH /Users/{id}", "HTTP", &s);

    let mut r = Rng(42);
    let s = direct(requests, limit, |_| {
        dir.get(pick(&mut r)).expect("get");
    });
    row("get(id)", "library", &s);
    let s = direct(requests, limit, |_| {
        let i = r.next(n);
        dir.search(&Search::filter(&format!("userName eq \"user{i:07}\"")).expect("filter"))
            .expect("search");
    });
    row("search(userName eq)", "library", &s);
    let s = direct(requests, limit, |i| {
        dir.create(
            NewUser::with_username(format!("lib{i:07}"))
                .email(format!("lib{i:07}@example.com"))
                .first_name("New")
                .last_name("User"),
        )
        .expect("create");
    });
    row("create", "library", &s);
    let s = direct(requests, limit, |i| {
        dir.patch(
            pick(&mut r),
            &[PatchOp::replace("nickName", format!("l{i}"))],
            None,
        )
        .expect("patch");
    });
    row("patch(nickName)", "library", &s);
    drop(runtime);
    Ok(())
}
