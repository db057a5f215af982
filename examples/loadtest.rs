//! Load test of `veridoc serve` over loopback, against `veridoc verify` as the ceiling.
//!
//! ```text
//! cargo build --release --bin veridoc --example loadtest
//! target/release/examples/loadtest [--requests N] [--levels 1,8,32,128] [--bin PATH]
//!                                  [--rss-requests N] [--rss-every N] [--idle N]
//!                                  [-- extra serve flags]
//! ```
//!
//! Photos: the sample photos and the corpus samples (fixtures/photos, fixtures/corpus/samples).
//! The ceiling is `veridoc verify --device cpu --no-cache` over the same photos, listed again
//! until they are as many as one level sends (its summary's photos/s), measured before the
//! first level (best of three) and again after every level and after the RSS run (once):
//! each ratio is against the mean of the ceilings just before and just after, so a shared
//! machine's load, which moves both, cancels out as far as it can. The
//! server runs with `--device cpu --no-cache` (every request runs the engine) and the
//! default queue, batch and deadline; each concurrency level sends a fixed number of
//! requests from that many client threads, each over one HTTP/1.1 keep-alive connection
//! (reopened only when the server closes it). Prints throughput, p50/p99 latency, statuses
//! and the server's RSS and peak RSS (VmHWM) after each level, as a Markdown table.
//!
//! Then the RSS run: `--rss-requests` (10,000) more requests at concurrency 8 while
//! `--idle` (1,000) idle connections stay open, sampling the server's VmRSS from
//! /proc/PID/status every `--rss-every` (500) requests. "Flat": the largest of the last
//! three samples is within [`FLAT_BOUND`] of the largest sample between the end of the
//! warm-up (the first tenth) and a third of the run. Pass `--bin` a private copy of the
//! binary when other builds share the target directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Default requests per level: a few seconds of work at the CPU path's ~40-60 photos/s.
const REQUESTS: usize = 600;
/// Client socket timeout: longer than any answer the server gives (its deadline is 2 s).
const IO_LIMIT: Duration = Duration::from_secs(30);
/// Default requests of the RSS run: the issue's "RSS flat over 10,000 requests".
const RSS_REQUESTS: usize = 10_000;
/// Default sampling period of the RSS run, in requests (20 samples over 10,000).
const RSS_EVERY: usize = 500;
/// Default idle connections held open during the RSS run (the issue's hostile-client case).
const IDLE: usize = 1000;
/// Concurrency of the RSS run: where batches fill (docs/service.md's table).
const RSS_CONCURRENCY: usize = 8;
/// "Flat": the end of the run within 10 % of the RSS after warm-up. Allocator caches and
/// the result of which photos share a batch move RSS by a few percent; a leak of even
/// 1 KiB per request (10 MiB over the run) on top of that would cross it.
const FLAT_BOUND: f64 = 0.10;

fn photos() -> Vec<(String, Vec<u8>)> {
    let root = std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    let mut out = Vec::new();
    for dir in [root.join("photos"), root.join("corpus/samples")] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for p in paths {
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if matches!(ext.as_str(), "jpg" | "jpeg" | "png") {
                if let Ok(b) = std::fs::read(&p) {
                    out.push((p.display().to_string(), b));
                }
            }
        }
    }
    out
}

/// One client's HTTP/1.1 keep-alive connection, reopened when the server closes it.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    /// Connections opened (1 for a connection reused throughout).
    opened: usize,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            opened: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::new(s));
            self.opened += 1;
        }
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no connection"))
    }

    /// POSTs `body` to /v1/verify and returns the status (one retry on a fresh connection
    /// when a reused one turns out closed).
    fn post(&mut self, body: &[u8]) -> std::io::Result<u16> {
        let reused = self.stream.is_some();
        match self.exchange(body) {
            Err(_) if reused => {
                self.stream = None;
                self.exchange(body)
            }
            r => r,
        }
    }

    fn exchange(&mut self, body: &[u8]) -> std::io::Result<u16> {
        let r = self.open()?;
        let head = format!(
            "POST /v1/verify HTTP/1.1\r\nHost: load\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        r.get_mut().write_all(head.as_bytes())?;
        r.get_mut().write_all(body)?;
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            self.stream = None;
            return Err(std::io::Error::other("closed"));
        }
        let code = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("closed in the headers"));
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut rest = vec![0u8; length];
        r.read_exact(&mut rest)?;
        if close {
            self.stream = None;
        }
        Ok(code)
    }
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `veridoc verify --device cpu --no-cache` over the photos, listed again until they are
/// `requests` photos (chunked as the server batches them): its photos/s (best of `tries`).
fn ceiling(bin: &Path, paths: &[String], requests: usize, tries: usize) -> f64 {
    let paths: Vec<&String> = paths.iter().cycle().take(requests.max(1)).collect();
    let mut best: f64 = 0.0;
    for _ in 0..tries {
        let out = Command::new(bin)
            .args([
                "verify",
                "--device",
                "cpu",
                "--no-cache",
                "--quiet",
                "--jsonl",
                "-",
            ])
            .args(&paths)
            .stderr(Stdio::null())
            .output();
        let Ok(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        let rate = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v["summary"]["photos_per_s"].as_f64())
            .unwrap_or(0.0);
        best = best.max(rate);
    }
    best
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut requests = REQUESTS;
    let mut levels = vec![1usize, 8, 32, 128];
    let mut bin = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("veridoc")))
        .unwrap_or_else(|| PathBuf::from("veridoc"));
    let mut extra: Vec<String> = Vec::new();
    let (mut rss_requests, mut rss_every, mut idle) = (RSS_REQUESTS, RSS_EVERY, IDLE);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--requests" => requests = args.next().and_then(|v| v.parse().ok()).unwrap_or(requests),
            "--levels" => {
                levels = args
                    .next()
                    .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or(levels)
            }
            "--bin" => bin = args.next().map(PathBuf::from).unwrap_or(bin),
            "--rss-requests" => {
                rss_requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(rss_requests)
            }
            "--rss-every" => {
                rss_every = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(rss_every)
                    .max(1)
            }
            "--idle" => idle = args.next().and_then(|v| v.parse().ok()).unwrap_or(idle),
            "--" => extra.extend(args.by_ref()),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let photos = Arc::new(photos());
    if photos.is_empty() {
        eprintln!("no photos (run scripts/fetch-assets.sh)");
        std::process::exit(2);
    }
    let paths: Vec<String> = photos.iter().map(|(p, _)| p.clone()).collect();
    let mut ceil = ceiling(&bin, &paths, requests, 3);
    println!(
        "ceiling: `veridoc verify --device cpu --no-cache` over {requests} photos ({} distinct): {ceil:.1} photos/s",
        photos.len()
    );

    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--device",
            "cpu",
            "--no-cache",
            "--log",
            "warn",
        ])
        .args(&extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = l.strip_prefix("listening on ") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
    }
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the server did not start"));
    // ready: one request answered
    let t0 = Instant::now();
    while Conn::new(addr).post(&photos[0].1).ok() != Some(200)
        && t0.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("server {addr} (pid {pid}), {requests} requests per level\n");
    println!("| concurrency | photos/s | vs ceiling | p50 ms | p99 ms | 200 | 503 | 504 | other | VmRSS MiB | VmHWM MiB | connections | ceiling before, after |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &c in &levels {
        let run = send(addr, &photos, c, requests, 0, |_| {});
        let (rss, hwm) = (status_kb(pid, "VmRSS:"), status_kb(pid, "VmHWM:"));
        let after = ceiling(&bin, &paths, requests, 1);
        println!(
            "| {c} | {} | {:.0} | {:.0} | {} | {ceil:.1}, {after:.1} |",
            run.cells((ceil + after) / 2.0),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            run.opened,
        );
        ceil = after;
    }
    if rss_requests > 0 {
        let ceil_after = || ceiling(&bin, &paths, requests, 1);
        let rss = Rss {
            requests: rss_requests,
            every: rss_every,
            idle,
        };
        rss_run(addr, pid, &photos, rss, ceil, ceil_after);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let code = child.wait().ok().and_then(|s| s.code());
    println!("\nserver exit status after SIGTERM: {code:?}");
}

/// What one batch of requests did.
struct Run {
    wall: f64,
    ok: usize,
    busy: usize,
    late: usize,
    other: usize,
    p50: f64,
    p99: f64,
    /// Connections the clients opened.
    opened: usize,
}

impl Run {
    /// `photos/s | vs ceiling | p50 | p99 | 200 | 503 | 504 | other`, as table cells.
    fn cells(&self, ceil: f64) -> String {
        let rate = self.ok as f64 / self.wall;
        format!(
            "{rate:.1} | {:.0} % | {:.1} | {:.1} | {} | {} | {} | {}",
            100.0 * rate / ceil,
            self.p50,
            self.p99,
            self.ok,
            self.busy,
            self.late,
            self.other
        )
    }
}

/// Sends `requests` requests from `c` keep-alive clients; `tick(k)` runs on the client that
/// sent request `k` (`offset` + its index), after its answer.
fn send(
    addr: SocketAddr,
    photos: &Arc<Vec<(String, Vec<u8>)>>,
    c: usize,
    requests: usize,
    offset: usize,
    tick: impl Fn(usize) + Send + Sync + 'static,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let opened = Arc::new(AtomicUsize::new(0));
    let tick = Arc::new(tick);
    let t = Instant::now();
    let threads: Vec<_> = (0..c)
        .map(|_| {
            let (next, results, photos) = (next.clone(), results.clone(), photos.clone());
            let (opened, tick) = (opened.clone(), tick.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::new(addr);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let body = &photos[(offset + i) % photos.len()].1;
                    let s = Instant::now();
                    let code = conn.post(body).unwrap_or(0);
                    let ms = s.elapsed().as_secs_f64() * 1e3;
                    if let Ok(mut r) = results.lock() {
                        r.push((code, ms));
                    }
                    tick(offset + i);
                }
                opened.fetch_add(conn.opened, Ordering::Relaxed);
            })
        })
        .collect();
    for th in threads {
        let _ = th.join();
    }
    let wall = t.elapsed().as_secs_f64();
    let r = results.lock().map(|r| r.clone()).unwrap_or_default();
    let count = |k: u16| r.iter().filter(|(c, _)| *c == k).count();
    let mut lat: Vec<f64> = r
        .iter()
        .filter(|(c, _)| *c == 200)
        .map(|(_, ms)| *ms)
        .collect();
    let ok = count(200);
    Run {
        wall,
        ok,
        busy: count(503),
        late: count(504),
        other: r.len() - ok - count(503) - count(504),
        p50: quantile(&mut lat, 0.5),
        p99: quantile(&mut lat, 0.99),
        opened: opened.load(Ordering::Relaxed),
    }
}

/// The RSS run's settings.
struct Rss {
    /// Requests sent.
    requests: usize,
    /// Sampling period, in requests.
    every: usize,
    /// Idle connections held open.
    idle: usize,
}

/// The RSS run: `requests` requests at [`RSS_CONCURRENCY`] with `idle` idle connections
/// open, VmRSS sampled every `every` requests.
fn rss_run(
    addr: SocketAddr,
    pid: u32,
    photos: &Arc<Vec<(String, Vec<u8>)>>,
    rss: Rss,
    ceil: f64,
    ceil_after: impl FnOnce() -> f64,
) {
    let Rss {
        requests,
        every,
        idle,
    } = rss;
    let held: Vec<TcpStream> = (0..idle)
        .map_while(|_| TcpStream::connect(addr).ok())
        .collect();
    // the idle connections are accepted (the server's connection gauge counts them)
    std::thread::sleep(Duration::from_millis(500));
    let samples = Arc::new(Mutex::new(vec![(0usize, status_kb(pid, "VmRSS:"))]));
    let s2 = samples.clone();
    let run = send(addr, photos, RSS_CONCURRENCY, requests, 0, move |k| {
        if (k + 1) % every == 0 {
            if let Ok(mut v) = s2.lock() {
                v.push((k + 1, status_kb(pid, "VmRSS:")));
            }
        }
    });
    let mut v = samples.lock().map(|v| v.clone()).unwrap_or_default();
    v.sort_unstable();
    let connections = held.len();
    drop(held);
    let after = ceil_after();
    println!(
        "\nRSS run: {requests} keep-alive requests at concurrency {RSS_CONCURRENCY} with \
         {connections} of {idle} idle connections open ({} connections opened by the clients)\n\n\
         | photos/s | vs ceiling | p50 ms | p99 ms | 200 | 503 | 504 | other | ceiling before, after |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {ceil:.1}, {after:.1} |\n",
        run.opened,
        run.cells((ceil + after) / 2.0)
    );
    let mib = |kb: u64| kb as f64 / 1024.0;
    let line: Vec<String> = v
        .iter()
        .map(|(k, kb)| format!("{k}:{:.0}", mib(*kb)))
        .collect();
    println!("VmRSS MiB by requests sent: {}", line.join(" "));
    let after = |lo: usize, hi: usize| {
        v.iter()
            .filter(|(k, _)| *k >= lo && *k <= hi)
            .map(|(_, kb)| *kb)
            .max()
            .unwrap_or(0)
    };
    let base = after(requests / 10, requests / 3);
    let last = v.iter().rev().take(3).map(|(_, kb)| *kb).max().unwrap_or(0);
    let flat = last as f64 <= base as f64 * (1.0 + FLAT_BOUND);
    println!(
        "RSS after warm-up {:.0} MiB, at the end {:.0} MiB ({:+.1} %): {} (bound {:.0} %)",
        mib(base),
        mib(last),
        100.0 * (last as f64 / base.max(1) as f64 - 1.0),
        if flat { "flat" } else { "NOT flat" },
        FLAT_BOUND * 100.0
    );
}
