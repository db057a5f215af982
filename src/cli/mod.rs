//! The `veridoc` command-line tool (feature `cli`): `verify`, `preprocess` and `profile`.
//!
//! The binary (`src/bin/veridoc.rs`) and the `verify` / `preprocess` examples call
//! [`main`]; everything the tool promises to scripts is here and in `docs/cli.md`:
//!
//! - **Exit status** ([`exit`]): 0 all good; 1 some photos rejected (only with
//!   `--fail-on rejected`); 2 usage or fatal error (bad arguments, no models, an output that
//!   cannot be written); 3 some items could not be processed; 130 / 143 interrupted by
//!   SIGINT / SIGTERM (the current chunk finishes and every output is flushed first).
//! - **Streaming**: `verify --jsonl FILE|-` writes one report per line as each chunk of
//!   photos is done, then a last line `{"summary": {...}}`; `--json FILE` a document
//!   `{"reports": [...], "summary": {...}}` written the same way (valid after an
//!   interruption too). Output paths are opened before any work.
//! - **Quiet pipes**: a closed standard output (`verify | head -1`) stops the run quietly;
//!   files already written are complete.
//!
//! This module is the tool's implementation, public so that the binary, the examples and
//! the Python package share it; its Rust API is not covered by the crate's stability.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::CancelToken;

mod engine;
mod inputs;
mod io;
mod preprocess;
mod profile;
#[cfg(feature = "serve")]
mod serve;
mod shard;
mod verify;

/// Exit statuses: the tool's contract with scripts (also in `docs/cli.md`).
pub mod exit {
    /// Every item was processed (and, with `--fail-on rejected`, none was rejected).
    pub const OK: u8 = 0;
    /// Some photos were rejected (only with `--fail-on rejected`).
    pub const REJECTED: u8 = 1;
    /// A usage error (bad arguments) or a fatal error before or during the run (no models,
    /// an unwritable output, a failed write of the summary): nothing can be trusted.
    pub const FATAL: u8 = 2;
    /// Some items could not be processed (missing, corrupt, over a limit); the others were.
    pub const ITEM_ERRORS: u8 = 3;
    /// Interrupted by SIGINT (128 + 2): what was done is written and flushed.
    pub const INTERRUPTED: u8 = 130;
    /// Interrupted by SIGTERM (128 + 15).
    pub const TERMINATED: u8 = 143;
}

/// The version line: the crate version and the build fingerprint ([`crate::BUILD_ID`]).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("VERIDOC_BUILD_ID"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "veridoc",
    version,
    long_version = LONG_VERSION,
    about = "Identity-photo verification and image preprocessing (CPU and GPU)",
    after_help = "Exit status: 0 ok; 1 photos rejected (with --fail-on rejected); 2 usage or \
                  fatal error; 3 some items failed; 130/143 interrupted (SIGINT/SIGTERM)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify identity photos against a profile (ICAO 9303 / ISO/IEC 19794-5 rules).
    Verify(verify::Args),
    /// Turn images into model-ready tensors (.npy), one per image or one stacked batch.
    Preprocess(preprocess::Args),
    /// Print or check a verification profile.
    #[command(subcommand)]
    Profile(profile::Command),
    /// Serve verification over HTTP (micro-batched, with backpressure and metrics).
    #[cfg(feature = "serve")]
    Serve(serve::Args),
}

/// Runs the tool with the process's arguments and returns its exit status.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the tool with `args` (the first one is the program name) and returns its exit
/// status. Call it before starting threads: it may set `XDG_RUNTIME_DIR` (see
/// [`quiet_mesa`]) and installs SIGINT / SIGTERM handlers.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; the rest are usage errors
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::FATAL
            } else {
                exit::OK
            });
        }
    };
    quiet_mesa();
    let signals = Signals::install();
    let code = match cli.command {
        Command::Verify(a) => verify::run(a, &signals),
        Command::Preprocess(a) => preprocess::run(a, &signals),
        Command::Profile(c) => profile::run(c),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a, &signals),
    };
    ExitCode::from(code.unwrap_or_else(|e| {
        eprintln!("veridoc: {}", crate::verify::printable(&e.0));
        exit::FATAL
    }))
}

/// `--device`: where the work runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceArg {
    /// The scheduler decides per batch from its calibrated cost model.
    Auto,
    /// The CPU path (rayon workers).
    Cpu,
    /// The GPU path (WGSL compute shaders); fails when there is no GPU.
    Gpu,
}

impl DeviceArg {
    fn policy(self) -> (crate::DevicePolicy, Option<crate::Placement>) {
        match self {
            DeviceArg::Auto => (crate::DevicePolicy::Auto, None),
            DeviceArg::Cpu => (crate::DevicePolicy::Cpu, Some(crate::Placement::Cpu)),
            DeviceArg::Gpu => (crate::DevicePolicy::Gpu, Some(crate::Placement::Gpu)),
        }
    }
}

/// The fetched test assets: `$VERIDOC_FIXTURES`, else `fixtures/` of the source tree
/// (`scripts/fetch-assets.sh`).
fn assets_dir() -> std::path::PathBuf {
    std::env::var_os("VERIDOC_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

/// face-api's model folder: `--models`, else `$VERIDOC_MODELS`, else the fetched
/// `fixtures/models`.
fn models_dir(arg: Option<std::path::PathBuf>) -> std::path::PathBuf {
    arg.or_else(|| std::env::var_os("VERIDOC_MODELS").map(std::path::PathBuf::from))
        .unwrap_or_else(|| assets_dir().join("models"))
}

/// A fatal error: printed, exit status [`exit::FATAL`].
#[derive(Debug)]
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

/// SIGINT and SIGTERM: the first one cancels (the run stops after its current chunk and
/// flushes); a second one ends the process at once with the same status.
struct Signals {
    cancel: CancelToken,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Signals {
        let cancel = CancelToken::new();
        let term = Arc::new(AtomicBool::new(false));
        for (sig, code) in [
            (signal_hook::consts::SIGINT, exit::INTERRUPTED),
            (signal_hook::consts::SIGTERM, exit::TERMINATED),
        ] {
            // order matters: the shutdown check sees the flag as it was before this signal
            let _ = signal_hook::flag::register_conditional_shutdown(
                sig,
                i32::from(code),
                cancel.flag(),
            );
            let _ = signal_hook::flag::register(sig, cancel.flag());
        }
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone());
        Signals { cancel, term }
    }

    fn interrupted(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The exit status for an interrupted run.
    fn code(&self) -> u8 {
        if self.term.load(Ordering::Relaxed) {
            exit::TERMINATED
        } else {
            exit::INTERRUPTED
        }
    }
}

/// Mesa's Vulkan drivers print `error: XDG_RUNTIME_DIR is invalid or not set` on every
/// device creation when the variable is unset (always, under cron, systemd services and
/// containers): it looks like a failure and is not one. When it is unset, point it at a
/// private directory (`$TMPDIR/veridoc-runtime-<uid>`, mode 0700) before any thread starts.
pub fn quiet_mesa() {
    let set = std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|d| !d.is_empty() && std::path::Path::new(&d).is_dir());
    if set {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
        let dir = std::env::temp_dir().join(format!("veridoc-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // only a directory of ours, private: never one another user planted
        let ok = std::fs::symlink_metadata(&dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
        if ok {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}
