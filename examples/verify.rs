//! Verify identity photos against a profile: the engine's main job.
//!
//! ```text
//! cargo run --release --example verify -- [--device cpu|gpu|auto] [--profile FILE|passport]
//!     [--json FILE] [--annotate DIR] [--models DIR] [--cache-dir DIR] [--no-cache]
//!     [INPUTS|DIRS]...
//! ```
//!
//! Shows a progress bar (on a terminal) and a summary table: one line per photo with its
//! verdict, faces and failed checks. `--json` writes `{"reports": [...], "summary": {...}}`.
//! With no inputs it verifies the sample photos fetched by `scripts/fetch-assets.sh`
//! (`fixtures/photos`) and the sample passport photos of the conformance corpus
//! (`fixtures/corpus/samples`, built by `scripts/make-corpus.sh`). Exit status 0 when the run completed, whatever the verdicts;
//! non-zero only when it could not run (bad arguments, no model, unwritable output).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use veridoc::cache::CacheConfig;
use veridoc::verify::{printable, Profile, Verdict, VerifyOptions};
use veridoc::{DevicePolicy, Engine, Input, Placement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Verify identity photos against a profile (veridoc)")]
struct Args {
    /// Execution path: cpu, gpu or auto (the scheduler decides per batch).
    #[arg(long, default_value = "auto")]
    device: String,
    /// A built-in profile name (passport) or a profile file (.json or .toml).
    #[arg(long, default_value = "passport")]
    profile: String,
    /// Write every report and the summary as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write each photo with what verification saw drawn on it (face boxes, landmarks,
    /// eye line, head extent, background regions, failed checks) as DIR/<name>.jpg.
    #[arg(long)]
    annotate: Option<PathBuf>,
    /// Folder of face-api's models (TinyFaceDetector, 68 landmarks, expression: their
    /// `*-weights_manifest.json` and `.bin` files). Default: the fetched fixtures/models.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Persistent result cache directory (a second run over the same photos is served
    /// from it).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Disable the result cache.
    #[arg(long)]
    no_cache: bool,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Verify each photo alone this many extra times after the run (cache off) and print
    /// the median and p90 single-photo latency: the engine's warm end-to-end latency.
    #[arg(long, default_value_t = 0)]
    repeat: usize,
    /// Photos or directories of photos.
    inputs: Vec<PathBuf>,
}

fn assets_dir() -> PathBuf {
    std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, String> {
    Input::from_paths(paths).map_err(|e| e.to_string())
}

fn run(a: Args) -> Result<(), String> {
    let profile = Profile::resolve(&a.profile).map_err(|e| e.to_string())?;
    // Output paths are checked before any work: an unwritable --json fails now.
    let json_out = a
        .json
        .as_ref()
        .map(|p| std::fs::File::create(p).map_err(|e| format!("--json {}: {e}", p.display())))
        .transpose()?;
    let (policy, placement) = match a.device.as_str() {
        "cpu" => (DevicePolicy::Cpu, Some(Placement::Cpu)),
        "gpu" => (DevicePolicy::Gpu, Some(Placement::Gpu)),
        "auto" => (DevicePolicy::Auto, None),
        d => return Err(format!("--device {d}: expected cpu, gpu or auto")),
    };
    let mut b = Engine::builder().device_policy(policy);
    if let Some(t) = a.threads {
        b = b.cpu_threads(t);
    }
    if !a.no_cache {
        if let Some(dir) = &a.cache_dir {
            b = b
                .cache_dir(dir)
                .result_cache(CacheConfig::memory(256 << 20).disk(dir.join("results")));
        }
    }
    let engine = b.build().map_err(|e| e.to_string())?;
    // why a configured cache directory went unused, once
    for w in engine.warnings() {
        eprintln!("warning: {}", veridoc::verify::printable(&w));
    }
    let assets = assets_dir();
    let models = a.models.clone().unwrap_or_else(|| assets.join("models"));
    let found = engine.register_face_models(&models);
    if found.is_empty() {
        return Err(format!(
            "no face models in {} (run scripts/fetch-assets.sh, or pass --models)",
            models.display()
        ));
    }
    let inputs = if a.inputs.is_empty() {
        let dir = assets.join("photos");
        if !dir.is_dir() {
            return Err(format!(
                "no inputs and no sample photos in {} (run scripts/fetch-assets.sh)",
                dir.display()
            ));
        }
        // the sample photos, and the corpus's sample passport photos (compliant ones and
        // single-defect ones) when scripts/make-corpus.sh has built it
        let samples = assets.join("corpus/samples");
        let mut dirs = vec![dir];
        if samples.is_dir() {
            dirs.push(samples);
        }
        collect_inputs(&dirs)?
    } else {
        collect_inputs(&a.inputs)?
    };
    if inputs.is_empty() {
        return Err("no photos to verify".into());
    }
    let mut opts = VerifyOptions::new(profile).use_cache(!a.no_cache);
    opts.placement = placement;
    let total = inputs.len();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(total as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let t0 = Instant::now();
    let verifier = engine.verifier(opts.clone()).map_err(|e| e.to_string())?;
    let out = verifier.verify_with_progress(&inputs, |done| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    println!(
        "{:<34} {:<9} {:>5} {:>9} {:>8}  failed checks / error",
        "photo", "verdict", "faces", "size", "ms"
    );
    for r in &out.reports {
        let name = Path::new(&r.name)
            .file_name()
            .map_or(r.name.clone(), |n| n.to_string_lossy().into_owned());
        let name = printable(&name);
        let what = match r.verdict {
            Verdict::Error => printable(r.error.as_deref().unwrap_or_default()).into_owned(),
            _ => r.failed.join(", "),
        };
        let verdict = match r.verdict {
            Verdict::Accepted => "accepted",
            Verdict::Rejected => "rejected",
            Verdict::Error => "error",
        };
        println!(
            "{:<34} {:<9} {:>5} {:>9} {:>8}  {}",
            name,
            verdict,
            r.faces.len(),
            format!("{}x{}", r.width, r.height),
            if r.cached {
                "cached".to_string()
            } else {
                format!("{:.1}", r.timings.total_ms)
            },
            what
        );
    }
    println!();
    print!("{}", out.summary);
    println!("total {:.2} s", t0.elapsed().as_secs_f64());
    if a.repeat > 0 {
        let once = engine
            .verifier(opts.clone().use_cache(false))
            .map_err(|e| e.to_string())?;
        let mut ms = Vec::new();
        let mut stages = Vec::new();
        for _ in 0..a.repeat {
            for i in &inputs {
                let t = Instant::now();
                let out = once.verify(std::slice::from_ref(i));
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                stages.push(out.summary.median);
            }
        }
        if ms.is_empty() {
            return Err("no latency measured".into());
        }
        let stage = |f: fn(&veridoc::verify::StageTimes) -> f64| {
            quantile(&stages.iter().map(f).collect::<Vec<_>>(), 0.5)
        };
        let total = Latency {
            n: ms.len(),
            median: quantile(&ms, 0.5),
            p90: quantile(&ms, 0.9),
            min: quantile(&ms, 0.0),
        };
        println!(
            "single-photo latency over {} runs: median {:.1} ms, p90 {:.1} ms, min {:.1} ms \
             (median stages: decode {:.1}, preprocess {:.1}, detect {:.1}, landmarks {:.1}, checks {:.1} ms)",
            total.n,
            total.median,
            total.p90,
            total.min,
            stage(|s| s.decode_ms),
            stage(|s| s.preprocess_ms),
            stage(|s| s.detect_ms),
            stage(|s| s.landmarks_ms),
            stage(|s| s.checks_ms)
        );
    }
    if let Some(dir) = &a.annotate {
        let n = annotate(dir, &inputs, &out.reports)?;
        println!("{n} annotated photos written to {}", dir.display());
    }
    if let (Some(path), Some(f)) = (&a.json, json_out) {
        // Every byte reaches the file or the run fails: the flush's error (a full disk,
        // /dev/full) is an error, never "reports written" over an empty file.
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        w.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        println!("reports written to {}", path.display());
    }
    Ok(())
}

/// Longer side of the annotated copies (the photo is decoded at a reduced scale).
const ANNOTATE_SIDE: u32 = 1200;

/// The photo decoded at the smallest JPEG scale that keeps its longer side at least
/// [`ANNOTATE_SIDE`] (reports are in full-resolution pixels; drawing scales them).
fn decode_for_annotation(
    input: &Input,
    r: &veridoc::verify::PhotoReport,
) -> Result<veridoc::Frame, String> {
    let bytes = match input {
        Input::Path(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        Input::Bytes { bytes, .. } => bytes.to_vec(),
        Input::Frame { frame, .. } => return Ok(frame.clone()),
        _ => return Err(format!("{}: cannot re-read this input", r.name)),
    };
    veridoc::decode::load(
        &bytes,
        &veridoc::DecodeOptions::default(),
        &veridoc::DecodeLimits::default(),
        |h| {
            let (w, hh) = h.oriented_size();
            let long = w.max(hh);
            Ok([8u32, 4, 2]
                .into_iter()
                .find(|k| long / k >= ANNOTATE_SIDE)
                .unwrap_or(1))
        },
    )
    .map(|d| d.frame)
    .map_err(|e| format!("{}: {e}", r.name))
}

/// Writes an annotated copy of each verified photo into `dir`; returns how many.
fn annotate(
    dir: &Path,
    inputs: &[Input],
    reports: &[veridoc::verify::PhotoReport],
) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut n = 0;
    let mut used = std::collections::HashSet::new();
    for (input, r) in inputs.iter().zip(reports) {
        if r.verdict == Verdict::Error {
            continue;
        }
        let frame = decode_for_annotation(input, r)?;
        let img = veridoc::verify::annotate::annotate(&frame, r);
        let stem = Path::new(&r.name)
            .file_stem()
            .map_or_else(|| "photo".to_string(), |s| s.to_string_lossy().into_owned());
        let mut name = format!("{stem}.jpg");
        let mut k = 2;
        while !used.insert(name.clone()) {
            name = format!("{stem}_{k}.jpg");
            k += 1;
        }
        let path = dir.join(name);
        image::save_buffer(
            &path,
            img.as_bytes(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        n += 1;
    }
    Ok(n)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Single-photo latencies of `--repeat`, in ms.
struct Latency {
    n: usize,
    median: f64,
    p90: f64,
    min: f64,
}

/// The `q` quantile of `values`, interpolated linearly between order statistics as NumPy's
/// default does (the method of veridoc-bench's `Summary`); NaN when empty.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        }
    }
}
