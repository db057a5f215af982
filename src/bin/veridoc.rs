//! The `veridoc` command-line tool: `veridoc verify`, `veridoc preprocess`,
//! `veridoc profile`. See `veridoc --help` and docs/cli.md (exit statuses, outputs).

// A caching allocator keeps output buffers' pages between batches (glibc trims and
// re-faults them); see docs/benchmarks.md, W2.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    veridoc::cli::main()
}
