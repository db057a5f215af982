//! Verification over HTTP (feature `serve`): the library behind `veridoc serve`.
//!
//! [`Server::bind`] opens the listener; [`Server::run`] serves until its shutdown future
//! resolves, then drains: it stops accepting, lets every accepted request finish, closes
//! the queue and joins the engine thread. The HTTP API, the status mapping and the metrics
//! are documented in `docs/service.md`; in short:
//!
//! - `POST /v1/verify[?profile=NAME][&name=LABEL]`: the raw image as the body, or a
//!   `multipart/form-data` form with the part `image` and an optional field `profile`
//!   (400 `bad_multipart` for anything else); the answer is the photo's report (schema 4, `docs/report.schema.json`): 200 for `accepted` and
//!   `rejected`, 422 when the photo could not be decoded or is over a decode limit, 415 for
//!   a body that is no image the engine reads.
//! - `POST /v1/preprocess[?size=WxH][&mode=fit|fill|stretch|shorter-side][&dtype=f32|f16|u8]
//!   [&layout=nchw|nhwc]`: the tensor as `.npy` bytes.
//! - `GET /healthz` (the process answers), `GET /readyz` (models loaded and warmed up, not
//!   draining), `GET /metrics` (Prometheus text).
//! - Backpressure: a bounded queue (503 with `Retry-After` when full), a deadline per
//!   request (504; queued work past it is dropped unstarted), a body limit (413), timeouts
//!   on slow headers and bodies (the connection is closed; 408 for a slow body).
//!
//! Requests are gathered into micro-batches by one engine thread (`batcher`): all of the
//! engine's work is blocking and already parallel inside (rayon, the GPU), so the async
//! side only parses HTTP and waits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::cache::CacheConfig;
use crate::verify::{PhotoReport, Profile, Verdict};
use crate::{DType, Engine, EngineBuilder, Input, Pipeline, Placement};

mod batcher;
mod metrics;

use batcher::{Answer, Job, Work};

/// The server's settings (`veridoc serve`'s flags; defaults in [`Config::new`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0: any free port, see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Profiles requests may name with `?profile=`; the first is the default. Never empty
    /// ([`Config::new`] starts with the built-in `passport`).
    pub profiles: Vec<Profile>,
    /// The engine: device policy, GPU selection, threads, memory budgets and the result
    /// cache (a memory tier answers repeats of the same bytes: the content digest is the
    /// idempotency key). Default ([`Config::new`]): `Engine::builder()` with a 256 MiB
    /// memory-tier result cache.
    pub engine: EngineBuilder,
    /// Where every batch runs (`None`: the scheduler decides per batch).
    pub placement: Option<Placement>,
    /// Folder of face-api's models.
    pub models: PathBuf,
    /// Answer repeats of the same content from the result cache (when the engine has one).
    pub use_cache: bool,
    /// Most requests waiting for the engine; one more is answered 503.
    pub queue: usize,
    /// Most requests in one micro-batch.
    pub max_batch: usize,
    /// How long a batch waits for more requests while others are on their way.
    pub batch_window: Duration,
    /// Time from a request's arrival to its answer, after which it is answered 504.
    pub deadline: Duration,
    /// Largest request body, in bytes (413 above it).
    pub max_body: u64,
    /// Time a client has to send a request's headers (the connection is closed after it).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body (408 after it).
    pub body_timeout: Duration,
    /// Most open connections; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

/// Default memory tier of the result cache: 256 MiB, [`CacheConfig`]'s own default
/// (~70,000 reports of ~3.6 KiB).
pub const DEFAULT_CACHE_MEMORY: u64 = 256 << 20;
/// Default queue: two of the verifier's chunks (32 photos); at ~20 ms a photo on two
/// cores that is ~1.3 s of work, inside the default deadline.
pub const DEFAULT_QUEUE: usize = 64;
/// Default batch maximum: the verifier's chunk (`VERIFY_CHUNK`, 32 photos), the unit the
/// scheduler decides CPU or GPU for.
pub const DEFAULT_MAX_BATCH: usize = 32;
/// Default batch window: a quarter of one photo's CPU time (~20 ms), so a lone request
/// is delayed at most that much (and only while other requests are on their way).
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Default deadline: the "answer in well under 3 s", with a second to spare for
/// the network and the client.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// Default body limit: 16 MiB, several times a 24-megapixel camera JPEG (~8 MB); the
/// engine's own decode limits still refuse pixel bombs from the header.
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;
/// Default header timeout: 5 s, a slow mobile link's worth for a few hundred bytes.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default body timeout: 10 s, 16 MiB at ~13 Mbit/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connection limit: 4096, a quarter of a common 16384 open-files limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Config {
    /// The defaults: listen on `listen`, the `passport` profile, the scheduler's choice of
    /// device, the models in `models`, a memory-only result cache of
    /// [`DEFAULT_CACHE_MEMORY`], and the
    /// `DEFAULT_*` limits of this module.
    pub fn new(listen: SocketAddr, models: impl Into<PathBuf>) -> Config {
        Config {
            listen,
            profiles: vec![Profile::passport()],
            engine: Engine::builder().result_cache(CacheConfig::memory(DEFAULT_CACHE_MEMORY)),
            placement: None,
            models: models.into(),
            use_cache: true,
            queue: DEFAULT_QUEUE,
            max_batch: DEFAULT_MAX_BATCH,
            batch_window: DEFAULT_BATCH_WINDOW,
            deadline: DEFAULT_DEADLINE,
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// What the handlers and the engine thread share.
#[derive(Debug)]
struct Shared {
    metrics: metrics::Metrics,
    ready: AtomicBool,
    draining: AtomicBool,
    /// Requests queued and not yet taken by the engine thread.
    queue_depth: AtomicUsize,
    /// Verify and preprocess requests received and not yet answered.
    in_flight: AtomicUsize,
    connections: AtomicUsize,
    next_id: AtomicU64,
}

/// The handlers' view: settings, the queue's sending end, profile names.
#[derive(Debug)]
struct State {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    /// `None` once draining is over: the engine thread then finishes and exits.
    jobs: Mutex<Option<SyncSender<Job>>>,
    profiles: HashMap<String, usize>,
    /// Prefix of generated request ids (this process's start time), so ids from two runs
    /// of the server do not collide in one log.
    id_prefix: String,
}

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    cfg: Config,
}

impl Server {
    /// Opens the listener. Call it inside a tokio runtime.
    ///
    /// # Errors
    /// The address cannot be bound, or the configuration is unusable (no profile, a zero
    /// queue or batch).
    pub async fn bind(cfg: Config) -> std::io::Result<Server> {
        if cfg.profiles.is_empty() || cfg.queue == 0 || cfg.max_batch == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the server needs a profile, a queue and a batch of at least one",
            ));
        }
        let listener = TcpListener::bind(cfg.listen).await?;
        Ok(Server { listener, cfg })
    }

    /// The address it listens on (the port chosen when the configuration said 0).
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting, finishes every
    /// accepted request, lets the engine thread finish its queue, and returns.
    ///
    /// # Errors
    /// The engine cannot be built (no models, a profile that needs a missing model), or
    /// the engine thread cannot be started.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let cfg = Arc::new(self.cfg);
        let shared = Arc::new(Shared {
            metrics: metrics::Metrics::default(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            queue_depth: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        let (tx, rx) = sync_channel::<Job>(cfg.queue);
        let (started_tx, mut started) = oneshot::channel();
        let engine = {
            let (cfg, shared) = (cfg.clone(), shared.clone());
            std::thread::Builder::new()
                .name("veridoc-engine".into())
                .spawn(move || batcher::run(&cfg, &shared, &rx, started_tx))?
        };
        let profiles = cfg
            .profiles
            .iter()
            .enumerate()
            .rev() // the first of two profiles with one name wins
            .map(|(k, p)| (p.name.clone(), k))
            .collect();
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let st = Arc::new(State {
            cfg: cfg.clone(),
            shared: shared.clone(),
            jobs: Mutex::new(Some(tx)),
            profiles,
            id_prefix,
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(cfg.header_timeout);
        let graceful = GracefulShutdown::new();
        let mut waiting = true;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                r = &mut started, if waiting => {
                    waiting = false;
                    match r {
                        Ok(Ok(())) => tracing::info!("ready"),
                        Ok(Err(e)) => return Err(std::io::Error::other(e)),
                        Err(_) => return Err(std::io::Error::other("the engine thread ended")),
                    }
                }
                r = self.listener.accept() => {
                    let (stream, peer) = match r {
                        Ok(s) => s,
                        Err(e) => {
                            // out of file descriptors and the like: back off a little
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    if shared.connections.load(Ordering::Acquire) >= cfg.max_connections {
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    shared.connections.fetch_add(1, Ordering::AcqRel);
                    let st = st.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(&st, req, peer).await) }
                    });
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, "connection: {e}");
                        }
                        shared.connections.fetch_sub(1, Ordering::AcqRel);
                    });
                }
            }
        }
        drop(self.listener);
        shared.draining.store(true, Ordering::Release);
        tracing::info!("draining");
        // every handler answers by its deadline after its body arrived
        let bound = cfg.body_timeout + cfg.deadline + Duration::from_secs(1);
        if tokio::time::timeout(bound, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain: connections still open after {bound:?}");
        }
        // close the queue: the engine thread finishes what is queued and ends
        st.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let joined = tokio::task::spawn_blocking(move || engine.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            return Err(std::io::Error::other("the engine thread panicked"));
        }
        tracing::info!("drained");
        Ok(())
    }
}

/// An answer before it becomes a response.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    retry_after: bool,
    allow: Option<&'static str>,
}

impl Reply {
    fn json(status: StatusCode, v: &impl serde::Serialize) -> Reply {
        match serde_json::to_vec(v) {
            Ok(b) => Reply {
                status,
                content_type: "application/json",
                body: Bytes::from(b),
                retry_after: false,
                allow: None,
            },
            Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
        }
    }

    fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            retry_after: false,
            allow: None,
        }
    }

    /// `{"error": {"code", "message", "retryable"}}`: the shape of a report's error.
    fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Reply {
        let retryable = matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        let mut r = Reply::json(
            status,
            &serde_json::json!({"error": {
                "code": code,
                "message": message.to_string(),
                "retryable": retryable,
            }}),
        );
        r.retry_after = status == StatusCode::SERVICE_UNAVAILABLE;
        r
    }
}

/// The metrics label of a path.
fn endpoint(path: &str) -> &'static str {
    match path {
        "/v1/verify" => "verify",
        "/v1/preprocess" => "preprocess",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        _ => "other",
    }
}

/// The client's `x-request-id` when it is a short token, else a new one.
fn request_id(st: &State, req: &Request<Incoming>) -> String {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            // an id is logged and echoed: only a short plain token is taken
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(s) => s.to_string(),
        None => format!(
            "{}-{}",
            st.id_prefix,
            st.shared.next_id.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

async fn handle(st: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let id = request_id(st, &req);
    let ep = endpoint(req.uri().path());
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path(), %peer);
    let reply = route(st, req, &id, arrived).instrument(span.clone()).await;
    let took = arrived.elapsed();
    st.shared.metrics.request(ep, reply.status.as_u16(), took);
    span.in_scope(|| {
        tracing::info!(
            status = reply.status.as_u16(),
            ms = took.as_secs_f64() * 1e3,
            "answered"
        );
    });
    let mut resp = Response::new(Full::new(reply.body));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    if reply.retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Some(a) = reply.allow {
        h.insert(ALLOW, HeaderValue::from_static(a));
    }
    resp
}

async fn route(st: &State, req: Request<Incoming>, id: &str, arrived: Instant) -> Reply {
    let path = req.uri().path().to_string();
    let allowed = match path.as_str() {
        "/v1/verify" | "/v1/preprocess" => Method::POST,
        "/healthz" | "/readyz" | "/metrics" => Method::GET,
        _ => return Reply::error(StatusCode::NOT_FOUND, "not_found", format!("no {path}")),
    };
    if req.method() != allowed && !(allowed == Method::GET && req.method() == Method::HEAD) {
        let mut r = Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {allowed}"),
        );
        r.allow = Some(if allowed == Method::POST {
            "POST"
        } else {
            "GET, HEAD"
        });
        return r;
    }
    let sh = &st.shared;
    match path.as_str() {
        "/healthz" => Reply::text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" if sh.draining.load(Ordering::Acquire) => {
            Reply::error(StatusCode::SERVICE_UNAVAILABLE, "draining", "shutting down")
        }
        "/readyz" if !sh.ready.load(Ordering::Acquire) => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "loading and warming up the models",
        ),
        "/readyz" => Reply::text(StatusCode::OK, "text/plain", "ready\n"),
        "/metrics" => {
            let g = metrics::Gauges {
                queue_depth: sh.queue_depth.load(Ordering::Acquire),
                in_flight: sh.in_flight.load(Ordering::Acquire),
                connections: sh.connections.load(Ordering::Acquire),
                ready: sh.ready.load(Ordering::Acquire),
                queue_capacity: st.cfg.queue,
            };
            let device = match st.cfg.placement {
                Some(Placement::Gpu) => "gpu",
                Some(Placement::Cpu) => "cpu",
                _ => "auto",
            };
            Reply::text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                sh.metrics.render(g, device),
            )
        }
        _ => {
            sh.in_flight.fetch_add(1, Ordering::AcqRel);
            let r = work(st, req, id, arrived, path == "/v1/verify").await;
            sh.in_flight.fetch_sub(1, Ordering::AcqRel);
            r
        }
    }
}

/// `/v1/verify` and `/v1/preprocess`: parameters, body (raw or a multipart form), queue,
/// answer.
async fn work(
    st: &State,
    req: Request<Incoming>,
    id: &str,
    arrived: Instant,
    verify: bool,
) -> Reply {
    let params = query(req.uri().query().unwrap_or(""));
    let mut name = None;
    let mut profile = 0;
    let mut pipe = None;
    if verify {
        for (k, v) in &params {
            match k.as_str() {
                "profile" => match profile_index(st, v) {
                    Ok(i) => profile = i,
                    Err(r) => return r,
                },
                "name" => name = Some(v.clone()),
                _ => return unknown_param(k),
            }
        }
    } else {
        match pipeline(&params) {
            Ok(p) => pipe = Some(Box::new(p)),
            Err(r) => return r,
        }
    }
    let up = match read_upload(st, req, verify).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    // a form's profile field wins over the query's
    if let Some(p) = &up.profile {
        match profile_index(st, p) {
            Ok(i) => profile = i,
            Err(r) => return r,
        }
    }
    let w = match pipe {
        Some(p) => Work::Preprocess(p),
        None => Work::Verify(profile),
    };
    if crate::decode::sniff(&up.image).is_none() {
        return Reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported",
            "the body is not a JPEG, PNG, WebP, BMP, TIFF or GIF image",
        );
    }
    let name = name
        .or(up.filename)
        .unwrap_or_else(|| format!("request-{id}"));
    let input = Input::bytes(name, Arc::<[u8]>::from(&up.image[..]));
    drop(up.image);
    match submit(st, w, input, arrived).await {
        Ok(Answer::Report(r)) => report_reply(&r),
        Ok(Answer::Npy(Ok(npy))) => Reply::text(StatusCode::OK, "application/octet-stream", npy),
        Ok(Answer::Npy(Err(e))) => Reply::error(status_of(e.code()), e.code(), e),
        Err(r) => r,
    }
}

/// The index of the profile named `name` among the server's, or a 400 listing them.
fn profile_index(st: &State, name: &str) -> Result<usize, Reply> {
    st.profiles.get(name.trim()).copied().ok_or_else(|| {
        let mut known: Vec<&str> = st.profiles.keys().map(String::as_str).collect();
        known.sort_unstable();
        Reply::error(
            StatusCode::BAD_REQUEST,
            "unknown_profile",
            format!(
                "no profile {name:?} (this server has: {})",
                known.join(", ")
            ),
        )
    })
}

fn unknown_param(k: &str) -> Reply {
    Reply::error(
        StatusCode::BAD_REQUEST,
        "unknown_parameter",
        format!("unknown query parameter {k:?}"),
    )
}

/// The HTTP status of an engine error code (docs/service.md has the table).
fn status_of(code: &str) -> StatusCode {
    match code {
        "unsupported" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "decode" | "invalid_input" | "over_limit" | "invalid_spec" => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        "busy" => StatusCode::SERVICE_UNAVAILABLE,
        "deadline" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn report_reply(r: &PhotoReport) -> Reply {
    let status = match (&r.verdict, &r.error) {
        (Verdict::Error, Some(e)) => status_of(&e.code),
        (Verdict::Error, None) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    let mut reply = Reply::json(status, r);
    reply.retry_after = status == StatusCode::SERVICE_UNAVAILABLE;
    reply
}

/// What a request uploaded: the image's bytes and, from a multipart form, its `profile`
/// field and the image part's file name.
struct Upload {
    image: Bytes,
    profile: Option<String>,
    filename: Option<String>,
}

/// The multipart form's part that holds the image.
const IMAGE_PART: &str = "image";

/// The upload: the raw body, or the parts of a `multipart/form-data` body, within the size
/// limit (counted as the bytes stream in, headers and boundaries included) and the body
/// timeout.
async fn read_upload(st: &State, req: Request<Incoming>, verify: bool) -> Result<Upload, Reply> {
    let limit = st.cfg.max_body;
    // refused from the header, before a byte of the body is read
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = if content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        Some(multer::parse_boundary(content_type).map_err(|e| bad_multipart(&e))?)
    } else {
        None
    };
    let body = Limited::new(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    );
    let read = async {
        match boundary {
            None => raw_body(body, limit).await,
            Some(b) => form(body, b, verify, limit).await,
        }
    };
    match tokio::time::timeout(st.cfg.body_timeout, read).await {
        Err(_) => Err(Reply::error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {:?}", st.cfg.body_timeout),
        )),
        Ok(r) => r,
    }
}

async fn raw_body(body: Limited<Incoming>, limit: u64) -> Result<Upload, Reply> {
    let b = body
        .collect()
        .await
        .map_err(|e| body_error(&*e, limit))?
        .to_bytes();
    if b.is_empty() {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "send the image as the request body",
        ));
    }
    Ok(Upload {
        image: b,
        profile: None,
        filename: None,
    })
}

/// A `multipart/form-data` body: the part `image` (its bytes, and its file name as the
/// report's name), and for verify an optional field `profile`; any other part is refused.
async fn form(
    body: Limited<Incoming>,
    boundary: String,
    verify: bool,
    limit: u64,
) -> Result<Upload, Reply> {
    let mut mp = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut image: Option<Vec<u8>> = None;
    let (mut profile, mut filename) = (None, None);
    let fail = |e: multer::Error| multipart_error(e, limit);
    while let Some(mut field) = mp.next_field().await.map_err(fail)? {
        let part = field.name().unwrap_or("").to_string();
        match part.as_str() {
            IMAGE_PART if image.is_none() => {
                filename = field.file_name().map(str::to_string);
                let mut buf = Vec::new();
                while let Some(c) = field.chunk().await.map_err(fail)? {
                    buf.extend_from_slice(&c);
                }
                image = Some(buf);
            }
            "profile" if verify && profile.is_none() => {
                profile = Some(field.text().await.map_err(fail)?);
            }
            _ => {
                let what = if part.is_empty() {
                    "a part without a name".to_string()
                } else {
                    format!("part {part:?} (unknown or repeated)")
                };
                let allowed = if verify { "image and profile" } else { "image" };
                return Err(Reply::error(
                    StatusCode::BAD_REQUEST,
                    "bad_multipart",
                    format!("{what}: the form takes the parts {allowed}"),
                ));
            }
        }
    }
    match image {
        Some(b) if !b.is_empty() => Ok(Upload {
            image: Bytes::from(b),
            profile,
            filename,
        }),
        _ => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "bad_multipart",
            format!("the form has no (or an empty) part {IMAGE_PART:?}"),
        )),
    }
}

fn too_large(limit: u64) -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is over {}", crate::fmt_bytes(limit)),
    )
}

/// A failed body read: over the limit (413), else broken or cut short (400).
fn body_error(e: &(dyn std::error::Error + 'static), limit: u64) -> Reply {
    if e.downcast_ref::<LengthLimitError>().is_some() {
        return too_large(limit);
    }
    Reply::error(
        StatusCode::BAD_REQUEST,
        "bad_body",
        format!("reading the body: {e}"),
    )
}

fn bad_multipart(e: &multer::Error) -> Reply {
    Reply::error(
        StatusCode::BAD_REQUEST,
        "bad_multipart",
        format!("malformed multipart/form-data: {e}"),
    )
}

fn multipart_error(e: multer::Error, limit: u64) -> Reply {
    match e {
        multer::Error::StreamReadFailed(inner) => body_error(&*inner, limit),
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
        e => bad_multipart(&e),
    }
}

/// Queues a job and waits for its answer until its deadline.
async fn submit(st: &State, work: Work, input: Input, arrived: Instant) -> Result<Answer, Reply> {
    let deadline = arrived + st.cfg.deadline;
    let late = || {
        Reply::error(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline",
            format!("no answer within {:?}", st.cfg.deadline),
        )
    };
    let (reply, answer) = oneshot::channel();
    let now = Instant::now();
    let job = Job {
        work,
        input,
        arrived,
        queued: now,
        deadline,
        reply,
    };
    let sender = st
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .cloned();
    let Some(sender) = sender else {
        return Err(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "shutting down",
        ));
    };
    let depth = &st.shared.queue_depth;
    depth.fetch_add(1, Ordering::AcqRel);
    if let Err(e) = sender.try_send(job) {
        depth.fetch_sub(1, Ordering::AcqRel);
        return Err(match e {
            TrySendError::Full(_) => Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the queue is full ({} requests)", st.cfg.queue),
            ),
            TrySendError::Disconnected(_) => {
                Reply::error(StatusCode::SERVICE_UNAVAILABLE, "draining", "shutting down")
            }
        });
    }
    drop(sender);
    match tokio::time::timeout_at(deadline.into(), answer).await {
        Ok(Ok(a)) => Ok(a),
        Err(_) => Err(late()),
        // the engine thread dropped it: past its deadline, or the thread is gone
        Ok(Err(_)) if Instant::now() >= deadline => Err(late()),
        Ok(Err(_)) => Err(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the engine thread is gone",
        )),
    }
}

/// `k=v&k=v` with `%XX` and `+` decoded.
fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Default output side of `/v1/preprocess`: 224, the input of the ImageNet classifiers.
const PREPROCESS_SIDE: u32 = 224;

/// The pipeline of a `/v1/preprocess` request's parameters.
fn pipeline(params: &[(String, String)]) -> Result<Pipeline, Reply> {
    let bad = |k: &str, v: &str, want: &str| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("{k}={v:?}: {want}"),
        )
    };
    let (mut w, mut h) = (PREPROCESS_SIDE, PREPROCESS_SIDE);
    let mut mode = "fit".to_string();
    let mut dtype = DType::F32;
    let mut layout = crate::Layout::Nchw;
    let mut shrink = crate::Shrink::default();
    for (k, v) in params {
        match k.as_str() {
            "size" => {
                let parsed = match v.split_once(['x', 'X']) {
                    Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                    None => v.parse().ok().map(|s| (s, s)),
                };
                (w, h) = parsed.ok_or_else(|| bad(k, v, "WxH or S"))?;
            }
            "mode" => mode.clone_from(v),
            "dtype" => {
                dtype = match v.as_str() {
                    "f32" => DType::F32,
                    "f16" => DType::F16,
                    "u8" => DType::U8,
                    _ => return Err(bad(k, v, "f32, f16 or u8")),
                }
            }
            "shrink" => {
                shrink = v
                    .parse()
                    .map_err(|_| bad(k, v, "exact, balanced or fast"))?
            }
            "layout" => {
                layout = match v.as_str() {
                    "nchw" => crate::Layout::Nchw,
                    "nhwc" => crate::Layout::Nhwc,
                    _ => return Err(bad(k, v, "nchw or nhwc")),
                }
            }
            _ => return Err(unknown_param(k)),
        }
    }
    let resize = match mode.as_str() {
        "fit" => crate::Resize::Fit {
            width: w,
            height: h,
            anchor: crate::Anchor::Center,
            pad: [0, 0, 0],
        },
        "fill" => crate::Resize::Fill {
            width: w,
            height: h,
        },
        "stretch" => crate::Resize::Stretch {
            width: w,
            height: h,
        },
        "shorter-side" => crate::Resize::ShorterSide {
            size: w.min(h),
            max_size: None,
        },
        _ => return Err(bad("mode", &mode, "fit, fill, stretch or shorter-side")),
    };
    let mut p = Pipeline::new().resize(resize).layout(layout).shrink(shrink);
    if dtype != DType::U8 {
        p = p.normalize(crate::IMAGENET_MEAN, crate::IMAGENET_STD);
    }
    p = p.dtype(dtype);
    p.validate()
        .map_err(|e| Reply::error(StatusCode::BAD_REQUEST, "bad_parameter", e))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            query("profile=my%20one&name=a+b&x"),
            vec![
                ("profile".into(), "my one".into()),
                ("name".into(), "a b".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(decode("50%"), "50%");
        assert_eq!(decode("%4"), "%4");
    }

    #[test]
    fn error_codes_map_to_statuses() {
        assert_eq!(status_of("unsupported"), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(status_of("decode"), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status_of("over_limit"), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status_of("busy"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_of("gpu"), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn preprocess_parameters() {
        let p = |q: &str| pipeline(&query(q));
        assert!(p("size=64x32&mode=fill&dtype=u8&layout=nhwc").is_ok());
        assert!(p("size=big").is_err());
        assert!(p("dtype=f64").is_err());
        assert!(p("mode=crop").is_err());
        assert!(p("colour=red").is_err());
        let shrink = |q: &str| p(q).map(|p| p.decode.shrink).ok();
        assert_eq!(shrink(""), Some(crate::Shrink::Exact));
        assert_eq!(shrink("shrink=balanced"), Some(crate::Shrink::Balanced));
        assert_eq!(shrink("shrink=fast"), Some(crate::Shrink::Fast));
        assert!(p("shrink=draft").is_err());
    }
}
