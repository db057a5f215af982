//! `cargo run --release --example verify -- [ARGS]` is `veridoc verify [ARGS]` (the tool in
//! `src/cli/`): kept so that the README's commands and older scripts keep working. See
//! `veridoc verify --help` and docs/cli.md.

use std::ffi::OsString;
use std::process::ExitCode;

// A caching allocator keeps output buffers' pages between batches (glibc trims and
// re-faults them); see docs/benchmarks.md, W2.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = [OsString::from("veridoc"), OsString::from("verify")]
        .into_iter()
        .chain(std::env::args_os().skip(1));
    veridoc::cli::run(args)
}
