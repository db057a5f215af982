//! `veridoc serve`: verification over HTTP (`crate::service`; the API in docs/service.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::engine::{EngineArgs, MemoryTier};
use super::io::parse_size;
use super::{exit, Fatal, Signals};
use crate::service::{self, Config, Server};
use crate::verify::Profile;

/// How often the shutdown watch looks at the signal flag: 50 ms, short next to a
/// Kubernetes termination grace period (30 s by default) and invisible in CPU time.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Threads of the HTTP runtime: two, since they only parse HTTP and wait; the engine's
/// work runs on its own thread and the rayon pool.
const HTTP_THREADS: usize = 2;

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed as
    /// `listening on ADDR` on standard output).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// A profile requests may name with `?profile=` (repeatable; a built-in name or a
    /// .toml/.json file). The first is the default; built-in profiles are always there.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Vec<String>,
    /// Folder of face-api's models. Default: $VERIDOC_MODELS, else the fetched
    /// fixtures/models.
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// Most requests waiting for the engine; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = service::DEFAULT_QUEUE, value_name = "N")]
    queue: usize,
    /// Most requests in one micro-batch.
    #[arg(long, default_value_t = service::DEFAULT_MAX_BATCH, value_name = "N")]
    max_batch: usize,
    /// How long a batch waits for more requests while others are arriving.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    batch_window_ms: u64,
    /// Answer 504 when a request is not answered this long after it arrived.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    deadline_ms: u64,
    /// Largest request body (413 above it).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    max_body: u64,
    /// Time a client has to send its request headers (then the connection is closed).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    header_timeout_ms: u64,
    /// Time a client has to send its request body (then 408).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    body_timeout_ms: u64,
    /// Most open connections; more are closed at once.
    #[arg(long, default_value_t = service::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
    /// Log level of the structured logs on standard error (error, warn, info, debug).
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log: tracing::Level,
    #[command(flatten)]
    engine: EngineArgs,
}

pub(super) fn run(a: Args, sig: &Signals) -> Result<u8, Fatal> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(a.log)
        .with_ansi(false)
        .try_init();
    if let Some(n) = raise_open_files() {
        tracing::debug!(open_files = n, "open files limit");
    }
    let models = super::models_dir(a.models.clone());
    let mut cfg = Config::new(a.listen, models);
    let mut profiles = Vec::new();
    for p in &a.profile {
        profiles.push(Profile::resolve(p)?);
    }
    for name in Profile::builtin_names() {
        if !profiles.iter().any(|p| p.name == *name) {
            profiles.push(Profile::builtin(name)?);
        }
    }
    cfg.profiles = profiles;
    cfg.engine = a.engine.builder(MemoryTier::Always)?;
    cfg.placement = a.engine.placement();
    cfg.use_cache = !a.engine.no_cache;
    cfg.queue = a.queue;
    cfg.max_batch = a.max_batch;
    cfg.batch_window = Duration::from_millis(a.batch_window_ms);
    cfg.deadline = Duration::from_millis(a.deadline_ms);
    cfg.max_body = a.max_body;
    cfg.header_timeout = Duration::from_millis(a.header_timeout_ms);
    cfg.body_timeout = Duration::from_millis(a.body_timeout_ms);
    cfg.max_connections = a.max_connections;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_THREADS)
        .thread_name("veridoc-http")
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = Server::bind(cfg).await?;
        let addr = server.local_addr()?;
        // the line scripts and tests wait for (stdout, flushed by println's newline only
        // on a terminal: flush it)
        println!("listening on {addr}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        server
            .run(async {
                while !sig.interrupted() {
                    tokio::time::sleep(SIGNAL_POLL).await;
                }
            })
            .await
    })?;
    Ok(exit::OK)
}

/// Raises this process's soft limit of open files to its hard limit, as servers commonly
/// do at start: every connection is a descriptor, and the usual default soft limit (1024)
/// is below `--max-connections`. Returns the soft limit in force afterwards.
#[cfg(unix)]
fn raise_open_files() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code, reason = "getrlimit writes the one struct it is given")]
    // SAFETY: `lim` is a valid, writable rlimit.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if got != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        #[allow(unsafe_code, reason = "setrlimit reads the one struct it is given")]
        // SAFETY: `want` is a valid rlimit; raising the soft limit up to the hard one
        // needs no privilege (a refusal, e.g. macOS above OPEN_MAX, keeps the old one).
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) };
        if set == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(not(unix))]
fn raise_open_files() -> Option<u64> {
    None
}
