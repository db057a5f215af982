//! `veridoc serve` over loopback (docs/service.md): every endpoint, raw and multipart
//! uploads, every designed error status (400 for bad parameters, a truncated upload and
//! malformed forms, 404, 405, 408 for a stalled body, 413, 415, 422, 503 under a flooded
//! queue, 504 past a deadline), metrics that move, a slow client and 1,000 idle
//! connections that do not block others, the GPU path (`--device gpu` on lavapipe), and a
//! SIGTERM drain that answers every accepted request and exits 0. Reports are checked against
//! docs/report.schema.json. Every socket has a timeout and every test runs under an outer
//! one.

mod common;
mod schema;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_veridoc");

/// Outer limit of each test: a server start (models, warm-up) is a few seconds on two
/// cores; a test that takes this long is hung.
const TEST_LIMIT: Duration = Duration::from_secs(120);
/// Idle connections held open while others are served (the hostile-client case).
const IDLE_CONNECTIONS: usize = 1000;
/// Open files this test process keeps for itself besides the idle connections (the
/// harness, the other clients, the server's pipes).
const FD_RESERVE: usize = 64;
/// Socket read and write timeout of the test client.
const IO_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and fails the test if it takes longer than [`TEST_LIMIT`].
fn bounded(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(TEST_LIMIT) {
        Ok(()) => h.join().expect("test thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: over {TEST_LIMIT:?}"),
    }
}

/// A `veridoc serve` child process on an ephemeral loopback port; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server with `args` on the CPU path and waits until /readyz says 200.
    fn start(args: &[&str]) -> Server {
        Server::start_on("cpu", args)
    }

    /// Starts the server with `args` on `device` and waits until /readyz says 200.
    fn start_on(device: &str, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--device",
                device,
                "--log",
                "warn",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start veridoc serve");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("`listening on` line")
            .parse()
            .expect("an address");
        let s = Server { child, addr };
        let t0 = Instant::now();
        loop {
            if get(s.addr, "/readyz").status == 200 {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
fn request(addr: SocketAddr, method: &str, path: &str, extra: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
    s.set_write_timeout(Some(IO_LIMIT)).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    // the server may answer (413, 415) and close before the whole body is sent
    let _ = s.write_all(body);
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    // a reset after a complete response (the server closed with our body unread) is fine
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, "", b"")
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    request(addr, "POST", path, "", body)
}

/// The boundary of the test's multipart forms.
const BOUNDARY: &str = "veridoc-test-7MA4YWxkTrZu0gW";

/// The `Content-Type` header line of a multipart form with [`BOUNDARY`].
fn form_header() -> String {
    format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n")
}

/// A `multipart/form-data` body of `(name, file name, bytes)` parts.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, file, bytes) in parts {
        b.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").bytes(),
        );
        if let Some(f) = file {
            b.extend(format!("; filename=\"{f}\"\r\nContent-Type: image/jpeg").bytes());
        }
        b.extend(b"\r\n\r\n");
        b.extend(*bytes);
        b.extend(b"\r\n");
    }
    b.extend(format!("--{BOUNDARY}--\r\n").bytes());
    b
}

fn post_form(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    request(addr, "POST", path, &form_header(), body)
}

/// The soft limit of open files of this process (`/proc/self/limits`), if known.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The value of a metric line `name{labels} value` (or `name value`), summed over
/// the lines whose series starts with `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn assets(test: &str) -> Option<PathBuf> {
    let a = common::assets_or_skip(test)?;
    let ok = a.join("corpus/samples/clm_audrey_compliant_01.jpg");
    if !ok.exists() {
        assert!(
            std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() != Ok("1"),
            "{test}: corpus missing (scripts/make-corpus.sh)"
        );
        eprintln!("SKIPPED {test}: corpus missing");
        return None;
    }
    Some(a)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check_report(r: &Resp) -> Value {
    let (report, _) = schema::report_schemas();
    let v = r.json();
    let errors: Vec<String> = report.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "report invalid: {errors:?}\n{}",
        r.text()
    );
    v
}

#[test]
fn endpoints_statuses_and_metrics() {
    let Some(a) = assets("endpoints_statuses_and_metrics") else {
        return;
    };
    bounded("endpoints_statuses_and_metrics", move || {
        let s = Server::start(&[
            "--header-timeout-ms",
            "500",
            "--body-timeout-ms",
            "1000",
            "--max-body",
            "4MiB",
        ]);
        let addr = s.addr;
        let ok = read(&a.join("corpus/samples/clm_audrey_compliant_01.jpg"));
        let group = read(&a.join("photos/biden.jpg"));

        let h = get(addr, "/healthz");
        assert_eq!((h.status, h.text().as_str()), (200, "ok\n"));
        assert!(h.header("x-request-id").is_some_and(|v| !v.is_empty()));
        assert_eq!(get(addr, "/readyz").status, 200);

        // accepted, with the client's request id echoed
        let r = request(addr, "POST", "/v1/verify", "x-request-id: abc-123\r\n", &ok);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = check_report(&r);
        assert_eq!(v["verdict"], "accepted", "{v}");
        assert_eq!(v["cached"], false);
        // the same bytes again: answered by the result cache (the digest is the key)
        let again = check_report(&post(addr, "/v1/verify?profile=passport", &ok));
        assert_eq!(again["cached"], true);
        assert_eq!(again["verdict"], "accepted");

        let r = post(addr, "/v1/verify?name=group.jpg", &group);
        assert_eq!(r.status, 200);
        let v = check_report(&r);
        assert_eq!(
            (v["verdict"].as_str(), v["name"].as_str()),
            (Some("rejected"), Some("group.jpg"))
        );

        // a JPEG cut short: a report with verdict error, 422
        let r = post(addr, "/v1/verify", &ok[..ok.len().min(600)]);
        assert_eq!(r.status, 422, "{}", r.text());
        let v = check_report(&r);
        assert_eq!(v["verdict"], "error");
        assert_eq!(v["error"]["code"], "decode");

        // no image at all: 415 before the engine
        let r = post(addr, "/v1/verify", b"%PDF-1.7 not a photo");
        assert_eq!(r.status, 415);
        assert_eq!(r.json()["error"]["code"], "unsupported");
        // over the body limit, refused from Content-Length (1 GiB announced, none sent)
        assert_eq!(post(addr, "/v1/verify", b"").status, 400, "an empty body");
        let mut big = TcpStream::connect(addr).expect("connect");
        big.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
        big.write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n\xff\xd8\xff",
        )
        .expect("write");
        let r = read_response(&mut big);
        assert_eq!(r.status, 413);
        assert_eq!(r.json()["error"]["code"], "too_large");
        // over the limit without a Content-Length (chunked): 413 when the limit is crossed
        let chunk = vec![0xffu8; 1 << 20];
        let mut s2 = TcpStream::connect(addr).expect("connect");
        s2.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
        s2.set_write_timeout(Some(IO_LIMIT)).expect("timeout");
        let _ = s2.write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for _ in 0..5 {
            let _ = s2.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
            let _ = s2.write_all(&chunk);
            let _ = s2.write_all(b"\r\n");
        }
        let _ = s2.write_all(b"0\r\n\r\n");
        assert_eq!(read_response(&mut s2).status, 413);

        // a truncated upload (the client stops writing mid-body): 400, nothing queued
        let mut cut = TcpStream::connect(addr).expect("connect");
        cut.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
        cut.write_all(b"POST /v1/verify HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
            .expect("write");
        cut.write_all(&ok[..100]).expect("write");
        cut.shutdown(std::net::Shutdown::Write).expect("half-close");
        let r = read_response(&mut cut);
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (400, &Value::from("bad_body"))
        );
        // a body that stalls: 408 at the body timeout (1 s here)
        let mut stall = TcpStream::connect(addr).expect("connect");
        stall.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
        stall
            .write_all(b"POST /v1/verify HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
            .expect("write");
        stall.write_all(&ok[..100]).expect("write");
        let r = read_response(&mut stall);
        assert_eq!(r.status, 408);

        assert_eq!(post(addr, "/v1/verify?profile=nope", &ok).status, 400);
        assert_eq!(post(addr, "/v1/verify?colour=red", &ok).status, 400);
        let r = get(addr, "/v1/verify");
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
        assert_eq!(get(addr, "/nowhere").status, 404);

        // preprocess: a .npy of the asked shape
        let r = post(
            addr,
            "/v1/preprocess?size=32x16&dtype=u8&layout=nhwc&mode=stretch",
            &group,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(r.body.starts_with(b"\x93NUMPY"));
        let head = String::from_utf8_lossy(&r.body[..r.body.len().min(128)]).into_owned();
        assert!(
            head.contains("(16, 32, 3)") && head.contains("|u1"),
            "{head}"
        );
        assert!(r.body.len() > 16 * 32 * 3, "{} bytes", r.body.len());
        assert_eq!(post(addr, "/v1/preprocess?dtype=f64", &group).status, 400);

        // multipart/form-data: the part `image` (its file name names the report) and an
        // optional field `profile`, which wins over the query's
        let r = post_form(
            addr,
            "/v1/verify",
            &form(&[
                ("image", Some("upload one.jpg"), &group),
                ("profile", None, b"passport"),
            ]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = check_report(&r);
        assert_eq!(
            (v["verdict"].as_str(), v["name"].as_str()),
            (Some("rejected"), Some("upload one.jpg"))
        );
        let r = post_form(
            addr,
            "/v1/verify?profile=passport",
            &form(&[("image", Some("a.jpg"), &ok), ("profile", None, b"nope")]),
        );
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (400, &Value::from("unknown_profile"))
        );
        let r = post_form(
            addr,
            "/v1/preprocess?size=8x8&dtype=u8",
            &form(&[("image", Some("g.jpg"), &group)]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body.starts_with(b"\x93NUMPY"));
        // a form's image that is no image: 415, as a raw body
        let r = post_form(addr, "/v1/verify", &form(&[("image", None, b"%PDF-1.7")]));
        assert_eq!(r.status, 415);
        // malformed forms: 400 with a JSON error, nothing queued
        let no_image = form(&[("profile", None, b"passport")]);
        let unknown = form(&[("image", None, &ok), ("colour", None, b"red")]);
        let twice = form(&[("image", None, &ok), ("image", None, &ok)]);
        let cut = form(&[("image", Some("a.jpg"), &ok)]);
        let cut = &cut[..cut.len() - 200]; // no closing boundary
        let garbage = b"this is not a multipart body at all".to_vec();
        for (what, body) in [
            ("no image part", &no_image[..]),
            ("an unknown part", &unknown[..]),
            ("two image parts", &twice[..]),
            ("no closing boundary", cut),
            ("no boundary at all", &garbage[..]),
        ] {
            let r = post_form(addr, "/v1/verify", body);
            assert_eq!(r.status, 400, "{what}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], "bad_multipart", "{what}");
        }
        let r = request(
            addr,
            "POST",
            "/v1/verify",
            "Content-Type: multipart/form-data\r\n",
            &ok,
        );
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (400, &Value::from("bad_multipart")),
            "no boundary parameter"
        );
        // the size limit holds while a chunked form streams in (4 MiB here)
        let mut s3 = TcpStream::connect(addr).expect("connect");
        s3.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
        s3.set_write_timeout(Some(IO_LIMIT)).expect("timeout");
        let head = format!(
            "POST /v1/verify HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n{}\r\n",
            form_header()
        );
        let _ = s3.write_all(head.as_bytes());
        let start = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n\r\n"
        );
        let _ = s3.write_all(format!("{:x}\r\n{start}\r\n", start.len()).as_bytes());
        for _ in 0..5 {
            let _ = s3.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
            let _ = s3.write_all(&chunk);
            let _ = s3.write_all(b"\r\n");
        }
        let _ = s3.write_all(b"0\r\n\r\n");
        let r = read_response(&mut s3);
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (413, &Value::from("too_large"))
        );

        // a slowloris client (half a header line, then nothing) and idle connections
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        slow.write_all(b"POST /v1/verify HTTP/1.1\r\nHost: sl")
            .expect("write");
        // 1,000 idle connections (fewer only when this process's open-files limit is
        // lower: said loudly); the server raises its own soft limit to the hard one
        let fds = open_files_limit().unwrap_or(1024);
        let n_idle = IDLE_CONNECTIONS.min(fds.saturating_sub(FD_RESERVE));
        if n_idle < IDLE_CONNECTIONS {
            eprintln!(
                "NOTE: {n_idle} idle connections, not {IDLE_CONNECTIONS} (open files limit {fds})"
            );
        }
        let idle: Vec<TcpStream> = (0..n_idle)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        assert_eq!(idle.len(), n_idle);
        let t = Instant::now();
        assert_eq!(post(addr, "/v1/verify", &group).status, 200);
        assert_eq!(get(addr, "/healthz").status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "others were kept waiting"
        );
        // the slow one is closed at the header timeout (500 ms here)
        let mut rest = Vec::new();
        let closed = match slow.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        assert!(closed, "the slow client was not closed");
        drop(idle);

        let m = get(addr, "/metrics");
        assert_eq!(m.status, 200);
        assert!(m
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
        let t = m.text();
        assert!(
            metric(
                &t,
                "veridoc_requests_total{endpoint=\"verify\",status=\"200\"}"
            ) >= 4.0,
            "{t}"
        );
        assert!(
            metric(
                &t,
                "veridoc_requests_total{endpoint=\"verify\",status=\"415\"}"
            ) >= 1.0
        );
        assert!(
            metric(
                &t,
                "veridoc_requests_total{endpoint=\"verify\",status=\"413\"}"
            ) >= 2.0
        );
        assert!(metric(&t, "veridoc_cache_hits_total") >= 1.0);
        assert!(metric(&t, "veridoc_verdicts_total{verdict=\"rejected\"}") >= 2.0);
        assert!(metric(&t, "veridoc_check_failures_total{check=") >= 1.0);
        assert!(metric(&t, "veridoc_photo_errors_total{code=\"decode\"}") >= 1.0);
        assert!(metric(&t, "veridoc_photos_total{device=\"cpu\"}") >= 2.0);
        assert!(metric(&t, "veridoc_stage_duration_seconds_count{stage=\"detect\"}") >= 2.0);
        assert!(t.contains("veridoc_queue_depth 0"));
        assert!(t.contains("veridoc_ready 1"));
        assert!(t.contains("device=\"cpu\""));
    });
}

#[test]
fn flooded_queue_answers_503() {
    let Some(a) = assets("flooded_queue_answers_503") else {
        return;
    };
    bounded("flooded_queue_answers_503", move || {
        let s = Server::start(&[
            "--queue",
            "1",
            "--max-batch",
            "1",
            "--batch-window-ms",
            "0",
            "--no-cache",
        ]);
        let addr = s.addr;
        let photo = Arc::new(read(&a.join("photos/biden.jpg")));
        let n = 16;
        let go = Arc::new(Barrier::new(n));
        let clients: Vec<_> = (0..n)
            .map(|_| {
                let (photo, go) = (photo.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    post(addr, "/v1/verify", &photo)
                })
            })
            .collect();
        let rs: Vec<Resp> = clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect();
        let busy: Vec<&Resp> = rs.iter().filter(|r| r.status == 503).collect();
        assert!(
            !busy.is_empty(),
            "no 503 from a queue of 1 under {n} requests"
        );
        assert!(rs.iter().any(|r| r.status == 200));
        assert!(
            rs.iter().all(|r| matches!(r.status, 200 | 503)),
            "{:?}",
            rs.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for r in busy {
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.json()["error"]["code"], "busy");
            assert_eq!(r.json()["error"]["retryable"], true);
        }
        let t = get(addr, "/metrics").text();
        assert!(
            metric(
                &t,
                "veridoc_requests_total{endpoint=\"verify\",status=\"503\"}"
            ) >= 1.0
        );
    });
}

#[test]
fn deadline_answers_504() {
    let Some(a) = assets("deadline_answers_504") else {
        return;
    };
    bounded("deadline_answers_504", move || {
        let s = Server::start(&["--deadline-ms", "1", "--no-cache"]);
        let photo = read(&a.join("photos/biden.jpg"));
        let r = post(s.addr, "/v1/verify", &photo);
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "deadline");
        // the server still answers, and counts it
        let t = get(s.addr, "/metrics").text();
        assert!(
            metric(
                &t,
                "veridoc_requests_total{endpoint=\"verify\",status=\"504\"}"
            ) >= 1.0
        );
    });
}

#[test]
fn sigterm_drains_every_accepted_request() {
    let Some(a) = assets("sigterm_drains_every_accepted_request") else {
        return;
    };
    bounded("sigterm_drains_every_accepted_request", move || {
        let mut s = Server::start(&["--no-cache", "--max-batch", "4"]);
        let addr = s.addr;
        let names = [
            "photos/biden.jpg",
            "photos/obama.jpg",
            "photos/clm_audrey.jpg",
            "corpus/samples/clm_audrey_compliant_01.jpg",
        ];
        let n = 12;
        let clients: Vec<_> = (0..n)
            .map(|k| {
                let photo = read(&a.join(names[k % names.len()]));
                std::thread::spawn(move || post(addr, "/v1/verify", &photo))
            })
            .collect();
        // wait until every request is in (being read, queued, running or answered)
        let t0 = Instant::now();
        loop {
            let t = get(addr, "/metrics").text();
            let seen = metric(&t, "veridoc_in_flight ")
                + metric(&t, "veridoc_requests_total{endpoint=\"verify\"");
            if seen >= n as f64 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "requests never arrived"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let killed = Command::new("kill")
            .args(["-TERM", &s.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        for c in clients {
            let r = c.join().expect("client");
            assert_eq!(r.status, 200, "{}", r.text());
            check_report(&r);
        }
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = s.child.try_wait().expect("wait") {
                break st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0));
        // nothing listens any more
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    });
}

#[test]
fn gpu_device_serves_on_the_gpu() {
    let Some(a) = assets("gpu_device_serves_on_the_gpu") else {
        return;
    };
    // the adapter as every GPU test looks for it: skipped loudly without one, a failure
    // with VERIDOC_REQUIRE_GPU=1
    if common::gpu_or_skip("gpu_device_serves_on_the_gpu").is_none() {
        return;
    }
    bounded("gpu_device_serves_on_the_gpu", move || {
        let s = Server::start_on("gpu", &["--no-cache"]);
        let group = read(&a.join("photos/biden.jpg"));
        let r = post_form(
            s.addr,
            "/v1/verify",
            &form(&[("image", Some("group.jpg"), &group)]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = check_report(&r);
        assert_eq!(v["device"], "gpu", "{v}");
        assert_eq!(v["verdict"], "rejected", "{v}");
        let t = get(s.addr, "/metrics").text();
        assert!(
            metric(&t, "veridoc_photos_total{device=\"gpu\"}") >= 1.0,
            "{t}"
        );
        assert_eq!(
            metric(&t, "veridoc_photos_total{device=\"cpu\"}"),
            0.0,
            "{t}"
        );
    });
}
