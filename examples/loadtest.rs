//! Load test of `veridoc serve` over loopback, against `veridoc verify` as the ceiling.
//!
//! ```text
//! cargo build --release --bin veridoc --example loadtest
//! target/release/examples/loadtest [--requests N] [--levels 1,8,32,128] [--bin PATH]
//!                                  [-- extra serve flags]
//! ```
//!
//! Photos: the sample photos and the corpus samples (fixtures/photos, fixtures/corpus/samples).
//! The ceiling is `veridoc verify --device cpu --no-cache` over the same photos, listed again
//! until they are as many as one level sends (its summary's photos/s, best of three). The
//! server runs with `--device cpu --no-cache` (every request runs the engine) and the
//! default queue, batch and deadline; each concurrency level sends a fixed number of
//! requests, one connection per request (`Connection: close`), from that many client
//! threads. Prints throughput, p50/p99 latency, statuses and the server's RSS and peak RSS
//! (VmHWM) after each level, as a Markdown table. Pass `--bin` a private copy of the binary
//! when other builds share the target directory.

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

fn post(addr: SocketAddr, body: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(IO_LIMIT))?;
    s.set_write_timeout(Some(IO_LIMIT))?;
    s.set_nodelay(true)?;
    let head = format!(
        "POST /v1/verify HTTP/1.1\r\nHost: load\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let line = raw.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let code = String::from_utf8_lossy(line)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(code)
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
/// `requests` photos (chunked as the server batches them): its photos/s (best of 3).
fn ceiling(bin: &Path, paths: &[String], requests: usize) -> f64 {
    let paths: Vec<&String> = paths.iter().cycle().take(requests.max(1)).collect();
    let mut best: f64 = 0.0;
    for _ in 0..3 {
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
    let ceil = ceiling(&bin, &paths, requests);
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
    while post(addr, &photos[0].1).ok() != Some(200) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("server {addr} (pid {pid}), {requests} requests per level\n");
    println!("| concurrency | photos/s | vs ceiling | p50 ms | p99 ms | 200 | 503 | 504 | other | VmRSS MiB | VmHWM MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &c in &levels {
        let next = Arc::new(AtomicUsize::new(0));
        let results = Arc::new(Mutex::new(Vec::with_capacity(requests)));
        let t = Instant::now();
        let threads: Vec<_> = (0..c)
            .map(|_| {
                let (next, results, photos) = (next.clone(), results.clone(), photos.clone());
                std::thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let body = &photos[i % photos.len()].1;
                    let s = Instant::now();
                    let code = post(addr, body).unwrap_or(0);
                    let ms = s.elapsed().as_secs_f64() * 1e3;
                    if let Ok(mut r) = results.lock() {
                        r.push((code, ms));
                    }
                })
            })
            .collect();
        for th in threads {
            let _ = th.join();
        }
        let wall = t.elapsed().as_secs_f64();
        let r = results.lock().map(|r| r.clone()).unwrap_or_default();
        let count = |k: u16| r.iter().filter(|(c, _)| *c == k).count();
        let ok = count(200);
        let mut lat: Vec<f64> = r
            .iter()
            .filter(|(c, _)| *c == 200)
            .map(|(_, ms)| *ms)
            .collect();
        let other = r.len() - ok - count(503) - count(504);
        println!(
            "| {c} | {:.1} | {:.0} % | {:.1} | {:.1} | {ok} | {} | {} | {other} | {:.0} | {:.0} |",
            ok as f64 / wall,
            100.0 * ok as f64 / wall / ceil,
            quantile(&mut lat, 0.5),
            quantile(&mut lat, 0.99),
            count(503),
            count(504),
            status_kb(pid, "VmRSS:") as f64 / 1024.0,
            status_kb(pid, "VmHWM:") as f64 / 1024.0,
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let code = child.wait().ok().and_then(|s| s.code());
    println!("\nserver exit status after SIGTERM: {code:?}");
}
