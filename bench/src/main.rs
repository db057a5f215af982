//! Headless benchmarks: the benchmark suite (`veridoc_bench`) and the named workloads of
//! docs/benchmarks.md.
//!
//! ```text
//! cargo run --release -p veridoc-bench                       # quick suite, report folder at the end
//! cargo run --release -p veridoc-bench -- --suite full --out DIR [--json FILE]
//! cargo run --release -p veridoc-bench -- --suite batch,size --batch-sizes 1,8,64 --sizes 640x480,4032x3024
//! cargo run --release -p veridoc-bench -- --compare OLD.json NEW.json   # exit 1 on regressions
//! cargo run --release -p veridoc-bench -- --from-json REPORT.json --out DIR  # redraw, no runs
//! cargo run --release -p veridoc-bench -- --workload w1|w2|g1|sol|sweep|all [--device cpu|gpu|both]
//!     [--passes N] [--threads N] [--g1-count N] [--json FILE] [--w1-dir DIR]
//!     [--shrink exact,balanced,fast]
//! ```
//!
//! Suites (`--suite`, comma-separated): `quick` (every suite at small sizes, <= 2 minutes on
//! 2 cores with lavapipe), `full`, or any of `latency`, `batch`, `size`, `paths`, `memory`,
//! `cache`, `verify`. Each writes `report.json` (versioned schema), `summary.md`, SVG charts,
//! `recommendations.json` and `scheduler-calibration.json` into `--out` (default
//! `target/bench-<unix time>`); `--install-calibration` copies the calibration where the
//! engine loads it.
//!
//! The named workloads (`--workload`, or `--suite w1|w2|g1|sol|sweep`):
//! - W1: the JPEGs of `target/w1` (`scripts/gen_w1.py`, 24 x 4032x3024 q90) -> decode ->
//!   letterbox 640x640 bilinear -> ImageNet-normalized f32 NCHW, all cores; one row per
//!   `--shrink` mode (default exact, balanced, fast).
//! - W2: decoded 4032x3024 RGB8 frames in memory -> 224x224 bilinear -> normalized f32 NCHW;
//!   on the CPU also `fast_image_resize`'s resize alone, interleaved pass by pass.
//! - G1: `--g1-count` (default 64) decoded 4032x3024 RGB8 frames in memory -> 640x480
//!   antialiased bilinear -> ImageNet f32 NCHW back in host memory.
//! - sol: the balanced and fast shrink-on-load modes' distance from exact on W1.
//!
//! Each named measurement runs through the suites' harness (`veridoc_bench::measure_with`):
//! one warm-up pass, then `--passes` timed passes; the table shows the best and the median,
//! and for the GPU the median per-image stage times (upload fill, kernel from GPU
//! timestamps, wait, readback copy). The sweep alone interleaves its paths in time-budgeted
//! rounds, so that machine noise hits every path alike.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use fast_image_resize as fir;
use rayon::prelude::*;
use serde::Serialize;
use veridoc::verify::{Profile, VerifyOptions};
use veridoc::{DevicePolicy, Engine, Filter, Frame, Input, Layout, Pipeline, Shrink};
use veridoc_bench::monitor::MonitorConfig;
use veridoc_bench::{self as bench, Outcome, RunConfig, Suite, SuiteConfig, Workload};

// glibc returns freed output buffers to the OS and faults them in again on the next batch:
// measured on W2 (2 threads), veridoc/fir went from 0.90 to 0.97 with a caching allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// Suites, comma-separated: quick, full, latency, batch, size, paths, memory, cache,
    /// verify; or a named workload: w1, w2, g1, sol, sweep.
    #[arg(long, default_value = "quick")]
    suite: String,
    /// A named workload (w1, w2, g1, sol, sweep or all); overrides --suite.
    #[arg(long)]
    workload: Option<String>,
    /// Output folder of a suite run. Default: `target/bench-<unix time>`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the JSON report (suites) or the rows (named workloads) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Compare two JSON reports and flag regressions larger than the measured noise.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    compare: Option<Vec<PathBuf>>,
    /// cpu, gpu, auto, both (cpu and gpu) or all (cpu, gpu and auto) in named workloads;
    /// cpu turns the GPU off in suites.
    #[arg(long, default_value = "both")]
    device: String,
    /// Timed passes per named-workload measurement.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Timed repeats per suite measurement (default: the preset's).
    #[arg(long)]
    repeats: Option<usize>,
    /// Interleaved pairs of the monitor-overhead measurement in suites (default: the
    /// preset's; 0 skips it).
    #[arg(long)]
    overhead_pairs: Option<usize>,
    /// Batch sizes of the batch suite, e.g. 1,2,4,8.
    #[arg(long, value_delimiter = ',')]
    batch_sizes: Option<Vec<usize>>,
    /// Input sizes of the size suite, e.g. 640x480,4032x3024.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<String>>,
    /// Largest input (megapixels) measured on the GPU in suites (default: 12.2 in full,
    /// 1.2 in quick and on software adapters).
    #[arg(long)]
    gpu_max_mpx: Option<f64>,
    /// Regenerate a report folder (summary, charts, recommendations) from a saved
    /// report.json into --out, without measuring.
    #[arg(long, value_name = "REPORT")]
    from_json: Option<PathBuf>,
    /// Copy the learned scheduler calibration into the engine's cache dir.
    #[arg(long)]
    install_calibration: bool,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Frames in the G1 batch.
    #[arg(long, default_value_t = 64)]
    g1_count: usize,
    /// Shrink-on-load modes W1 is measured in (one row each), comma-separated: exact,
    /// balanced, fast.
    #[arg(long, value_delimiter = ',', default_value = "exact,balanced,fast")]
    shrink: Vec<Shrink>,
    /// Directory of the W1 JPEGs.
    #[arg(long, default_value = "target/w1")]
    w1_dir: PathBuf,
    /// Write W1-like JPEGs into this folder and exit: the asset photos (`VERIDOC_FIXTURES`,
    /// else synthetic frames) resized to `--w1-size` (bicubic) with seeded grain, quality
    /// 90 (`scripts/gen_w1.py`'s recipe, for machines without Python).
    #[arg(long, value_name = "DIR")]
    gen_w1: Option<PathBuf>,
    /// Files written by --gen-w1.
    #[arg(long, default_value_t = 24)]
    w1_count: usize,
    /// Size of the --gen-w1 files (every 4th is portrait).
    #[arg(long, default_value = "4032x3024")]
    w1_size: String,
    /// Input megapixels of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "0.3,3,12")]
    sweep_mpx: Vec<f64>,
    /// Batch sizes of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    sweep_batches: Vec<usize>,
    /// Output sizes (square) of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "224,640")]
    sweep_outputs: Vec<u32>,
    /// Summarize a GPU check's work folder (steps.tsv and the steps' JSON) into
    /// gpu-check.json and gpu-check.md in --out (scripts/gpu-check.sh).
    #[arg(long, value_name = "DIR")]
    gpu_check_summary: Option<PathBuf>,
    /// With --gpu-check-summary: the check ran at QUICK sizes.
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Default, Serialize)]
struct Row {
    workload: String,
    path: String,
    images: usize,
    best_img_s: f64,
    median_img_s: f64,
    input_mb_s: f64,
    /// Per-image GPU stage times of the median pass, ms.
    upload_ms: Option<f64>,
    kernel_ms: Option<f64>,
    wait_ms: Option<f64>,
    readback_ms: Option<f64>,
    note: String,
}

fn w1_inputs(dir: &PathBuf) -> Result<Vec<Input>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e} (run `python3 scripts/gen_w1.py`)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no JPEGs in {} (run `python3 scripts/gen_w1.py`)",
            dir.display()
        ));
    }
    // Read once: the benchmark measures decode and preprocessing, not the disk.
    files
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(|b| Input::bytes(p.display().to_string(), b))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// Full-resolution frames of the first `n` W1 files (or synthetic ones if W1 is missing).
fn decoded_frames(engine: &Engine, w1: &[Input], n: usize) -> Result<Vec<Frame>, String> {
    if w1.is_empty() {
        return Ok((0..n as u32)
            .map(|i| Frame::synthetic(4032, 3024, i))
            .collect());
    }
    let full = Pipeline::new().shrink(Shrink::Exact);
    w1.iter()
        .take(n)
        .map(|i| {
            let t = engine.run_one(&full, i).map_err(|e| e.to_string())?;
            let s = t.shape();
            Frame::new(s[1] as u32, s[0] as u32, t.as_bytes().to_vec()).map_err(|e| e.to_string())
        })
        .collect()
}

fn frame_inputs(frames: &[Frame], n: usize) -> Vec<Input> {
    (0..n)
        .map(|i| Input::frame(format!("f{i}"), frames[i % frames.len()].clone()))
        .collect()
}

/// Measures `p` over `inputs` on `engine` with the suite's harness (`bench::measure_with`:
/// one warm-up call, `passes` timed calls, the monitor attached), filling the GPU stage
/// times of the median call when the batch ran there.
fn measure(
    engine: &Engine,
    p: &Pipeline,
    inputs: &[Input],
    passes: usize,
    workload: &str,
    path: &str,
    mb_per_image: f64,
) -> Row {
    let mut w = Workload::new(bench::Case::new(workload, path), || {
        Ok(Outcome::batch(engine.run(p, inputs)?.report))
    });
    let cfg = RunConfig {
        warmup: 1,
        repeats: passes.max(1),
        ..RunConfig::default()
    };
    let monitor = MonitorConfig::new().interval(cfg.interval);
    let m = bench::measure_with(&mut w, &cfg, monitor, Some(engine)).expect("valid spec");
    assert_eq!(m.failed_items, 0, "{workload} items failed on {path}");
    let n = inputs.len().max(1) as f64;
    let per = |stage: &str| m.stages.get(stage).map(|s| s.median / n);
    Row {
        workload: workload.into(),
        path: path.into(),
        images: inputs.len(),
        best_img_s: m.throughput.max,
        median_img_s: m.throughput.median,
        input_mb_s: m.throughput.max * mb_per_image,
        upload_ms: per("gpu_upload"),
        kernel_ms: per("gpu_kernel"),
        wait_ms: per("gpu_wait"),
        readback_ms: per("gpu_readback"),
        note: format!("ran on {}", m.placement.as_deref().unwrap_or("?")),
    }
}

fn main() -> Result<(), String> {
    let a = Args::parse();
    if let Some(files) = &a.compare {
        return compare(files);
    }
    if let Some(path) = &a.from_json {
        let mut report = read_report(path)?;
        report.recommendations = Some(bench::recommend(&report));
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/bench-rewritten"));
        let files = bench::write_outputs(&report, &out).map_err(|e| e.to_string())?;
        println!(
            "wrote {} files; report folder: {}",
            files.len(),
            out.display()
        );
        return Ok(());
    }
    if let Some(dir) = &a.gen_w1 {
        return gen_w1(&a, dir);
    }
    if let Some(dir) = &a.gpu_check_summary {
        // the adapter the check ran on, as the engine selects it by default for the gpu path
        let gpu = Engine::builder().device_policy(DevicePolicy::Gpu).build();
        let engine = match &gpu {
            Ok(e) => Some(e),
            Err(e) => {
                println!("gpu: none ({e})");
                None
            }
        };
        let check = bench::gpucheck::summarize(dir, a.quick, bench::Fingerprint::collect(engine))
            .map_err(|e| e.to_string())?;
        let out = a.out.clone().unwrap_or_else(|| dir.clone());
        check.write(&out).map_err(|e| e.to_string())?;
        println!(
            "wrote {0}/gpu-check.json and {0}/gpu-check.md",
            out.display()
        );
        return Ok(());
    }
    let named = ["w1", "w2", "g1", "sol", "sweep", "all"];
    if let Some(w) = a.workload.clone() {
        return workloads(&a, &w);
    }
    if named.contains(&a.suite.as_str()) {
        let w = a.suite.clone();
        return workloads(&a, &w);
    }
    suites(&a)
}

fn read_report(path: &PathBuf) -> Result<bench::BenchReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    bench::BenchReport::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `--compare OLD NEW`: a table, and an error (exit status 1) when anything regressed.
fn compare(files: &[PathBuf]) -> Result<(), String> {
    let [old, new] = files else {
        return Err("--compare takes OLD.json NEW.json".into());
    };
    let c = bench::compare(&read_report(old)?, &read_report(new)?);
    print!("{}", c.to_markdown());
    let n = c.regressions().count();
    if n > 0 {
        return Err(format!(
            "{n} regression(s) larger than the measured noise (threshold: max({} x combined spread, {:.0}%))",
            bench::NOISE_SIGMAS,
            bench::NOISE_FLOOR * 100.0
        ));
    }
    println!("no regression larger than the measured noise");
    Ok(())
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("size {s:?}: expected WxH"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|e| format!("size {s:?}: {e}"))
    };
    Ok((p(w)?, p(h)?))
}

/// Engines (one per path) and photos for the verification suite; empty without assets.
fn verify_engines(a: &Args, full: bool) -> Vec<(String, Engine, Vec<Input>)> {
    let assets = std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    let model = assets.join("models/tiny_face_detector_model-weights_manifest.json");
    let Ok(dir) = std::fs::read_dir(assets.join("photos")) else {
        println!("  verify: no asset photos (run scripts/fetch-assets.sh); suite skipped");
        return Vec::new();
    };
    let mut photos: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    photos.sort();
    if photos.is_empty() || !model.is_file() {
        println!("  verify: no asset photos or model; suite skipped");
        return Vec::new();
    }
    let mut paths = vec![("cpu", DevicePolicy::Cpu), ("auto", DevicePolicy::Auto)];
    if a.device != "cpu" {
        paths.push(("gpu", DevicePolicy::Gpu));
    }
    let mut out = Vec::new();
    for (name, policy) in paths {
        let mut b = Engine::builder().device_policy(policy);
        if let Some(t) = a.threads {
            b = b.cpu_threads(t);
        }
        let Ok(engine) = b.build() else {
            println!("  verify: no {name} engine; case skipped");
            continue;
        };
        // detector and landmark models: the passport profile needs both
        engine.register_face_models(assets.join("models"));
        let n = if name == "gpu" && !full {
            4
        } else {
            photos.len()
        };
        let inputs = photos.iter().take(n).map(Input::path).collect();
        out.push((name.to_string(), engine, inputs));
    }
    out
}

/// One verification workload per engine: verify its photos once per call.
fn verify_workloads(engines: &[(String, Engine, Vec<Input>)]) -> Vec<Workload<'_>> {
    engines
        .iter()
        .map(|(name, engine, inputs)| {
            let placement = match name.as_str() {
                "cpu" => Some(veridoc::Placement::Cpu),
                "gpu" => Some(veridoc::Placement::Gpu),
                _ => None,
            };
            let mut opts = VerifyOptions::new(Profile::passport()).use_cache(false);
            opts.placement = placement;
            let case = bench::Case {
                suite: "verify".into(),
                name: format!("{name} {} asset photos", inputs.len()),
                path: name.clone(),
                batch: inputs.len(),
                width: 0,
                height: 0,
                concurrency: 1,
            };
            Workload::new(case, move || {
                let out = engine.verify(&opts, inputs)?;
                let ms = |f: fn(&veridoc::verify::StageTimes) -> f64| {
                    let total: f64 = out.reports.iter().map(|r| f(&r.timings)).sum();
                    std::time::Duration::from_secs_f64(total / 1e3)
                };
                Ok(bench::Outcome {
                    items: out.reports.len(),
                    failed: out.summary.errors,
                    report: None,
                    stages: vec![
                        ("decode".into(), ms(|t| t.decode_ms)),
                        ("preprocess".into(), ms(|t| t.preprocess_ms)),
                        ("detection".into(), ms(|t| t.detect_ms)),
                        ("checks".into(), ms(|t| t.checks_ms)),
                    ],
                })
            })
        })
        .collect()
}

/// The benchmark suite: runs, writes the report folder, prints where it is.
fn suites(a: &Args) -> Result<(), String> {
    let names: Vec<&str> = a.suite.split(',').map(str::trim).collect();
    let mut cfg = if names.contains(&"full") {
        SuiteConfig::full()
    } else {
        SuiteConfig::quick()
    };
    let picked: Vec<Suite> = names
        .iter()
        .filter(|n| !matches!(**n, "quick" | "full"))
        .map(|n| n.parse::<Suite>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if !picked.is_empty() {
        cfg.suites = picked;
    }
    cfg.threads = a.threads;
    cfg.gpu = a.device != "cpu";
    if let Some(r) = a.repeats {
        cfg.run.repeats = r.max(1);
    }
    if let Some(p) = a.overhead_pairs {
        cfg.overhead_pairs = p;
    }
    if let Some(b) = &a.batch_sizes {
        cfg.batch_sizes = b.clone();
    }
    if let Some(s) = &a.sizes {
        cfg.sizes = s.iter().map(|s| parse_size(s)).collect::<Result<_, _>>()?;
    }
    if let Some(m) = a.gpu_max_mpx {
        // An explicit cap applies to software adapters too.
        cfg.gpu_max_pixels = (m * 1e6) as u64;
        cfg.software_gpu_max_pixels = cfg.gpu_max_pixels;
    }
    let out = a.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("target/bench-{t}"))
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    cfg.calibration_file = Some(out.join("scheduler-calibration.json"));
    // Verification: the fetched asset photos (scripts/fetch-assets.sh) verified against the
    // passport profile, cache off, per path. The GPU case takes 4 photos in quick runs
    // (lavapipe runs the detector at ~0.3 s per photo).
    let verify_engines = verify_engines(a, names.contains(&"full"));
    let extra: Vec<Workload<'_>> = verify_workloads(&verify_engines);
    let t = Instant::now();
    let report = bench::run_suites(&cfg, extra, &mut |line| println!("{line}"))
        .map_err(|e| e.to_string())?;
    let files = bench::write_outputs(&report, &out).map_err(|e| e.to_string())?;
    if let Some(path) = &a.json {
        let text = report.to_json().map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(rec) = &report.recommendations {
        println!("recommendations:");
        for r in &rec.reasons {
            println!("  - {r}");
        }
    }
    if a.install_calibration {
        let engine = Engine::builder().build().map_err(|e| e.to_string())?;
        match engine.calibration_file() {
            Some(dest) => {
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::copy(out.join("scheduler-calibration.json"), &dest)
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
                println!("installed the scheduler calibration at {}", dest.display());
            }
            None => println!("no cache dir: calibration not installed"),
        }
    }
    println!(
        "wrote {} files in {:.1} s; report folder: {}",
        files.len() + 1,
        t.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// `--gen-w1 DIR`: W1-like JPEGs (see [`Args::gen_w1`]); existing files are kept.
fn gen_w1(a: &Args, dir: &PathBuf) -> Result<(), String> {
    let (w, h) = parse_size(&a.w1_size)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let engine = Engine::builder()
        .device_policy(DevicePolicy::Cpu)
        .build()
        .map_err(|e| e.to_string())?;
    let assets = std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures"));
    // the sources of scripts/gen_w1.py: sample*.jpg, then obama*.jpg
    let mut srcs: Vec<PathBuf> = Vec::new();
    for prefix in ["sample", "obama"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(assets.join("photos"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| {
            p.extension().is_some_and(|e| e == "jpg")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        });
        v.sort();
        srcs.extend(v);
    }
    if srcs.is_empty() {
        println!(
            "no asset photos in {}: synthetic frames instead",
            assets.display()
        );
    }
    let t = Instant::now();
    (0..a.w1_count).into_par_iter().try_for_each(|i| {
        let path = dir.join(format!("w1_{i:03}.jpg"));
        if path.exists() {
            return Ok(());
        }
        let (fw, fh) = if i % 4 == 3 { (h, w) } else { (w, h) };
        let frame = match srcs.get(i % srcs.len().max(1)) {
            Some(src) => {
                let p = Pipeline::new().stretch(fw, fh).filter(Filter::Bicubic);
                let t = engine
                    .run_one(&p, &Input::path(src))
                    .map_err(|e| format!("{}: {e}", src.display()))?;
                Frame::new(fw, fh, t.as_bytes().to_vec()).map_err(|e| e.to_string())?
            }
            None => Frame::synthetic(fw, fh, i as u32),
        };
        let bytes = bench::gpucheck::with_grain(&frame, 1000 + i as u64)
            .and_then(|f| f.encode_jpeg(90))
            .map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    })?;
    println!(
        "w1: {} images of {w}x{h} in {} ({:.1} s)",
        a.w1_count,
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The named workloads (W1, W2, G1, sol, sweep).
fn workloads(a: &Args, workload: &str) -> Result<(), String> {
    let mut builder = Engine::builder();
    if let Some(t) = a.threads {
        builder = builder.cpu_threads(t);
    }
    let mut engines: Vec<(&str, Engine)> = Vec::new();
    if a.device == "cpu" || a.device == "both" || a.device == "all" {
        let e = builder
            .clone()
            .device_policy(DevicePolicy::Cpu)
            .build()
            .map_err(|e| e.to_string())?;
        engines.push(("cpu", e));
    }
    let all = a.device == "all";
    if a.device == "gpu" || a.device == "both" || all {
        match builder.clone().device_policy(DevicePolicy::Gpu).build() {
            Ok(e) => {
                if let Some(i) = e.gpu_info() {
                    println!("gpu: {i}");
                }
                engines.push(("gpu", e));
            }
            Err(e) if a.device == "both" || all => println!("gpu: none ({e}); cpu only"),
            Err(e) => return Err(e.to_string()),
        }
    }
    if a.device == "auto" || all {
        // the default policy: the scheduler places each batch
        let e = builder.clone().build().map_err(|e| e.to_string())?;
        engines.push(("auto", e));
    }
    let Some((_, first)) = engines.first() else {
        return Err(format!(
            "--device {:?}: expected cpu, gpu, auto, both (cpu and gpu) or all",
            a.device
        ));
    };
    let threads = first.cpu_threads();
    println!("cpu threads: {threads}");
    let mut rows = Vec::new();
    let want = |w: &str| workload == "all" || workload == w;
    let w1 = match w1_inputs(&a.w1_dir) {
        Ok(v) => v,
        Err(e) if workload == "g1" || workload == "w2" => {
            println!("{e}; using synthetic frames");
            Vec::new()
        }
        Err(e) => return Err(e),
    };

    if want("w1") {
        let mb =
            w1.iter().filter_map(|i| i.encoded_len()).sum::<u64>() as f64 / w1.len() as f64 / 1e6;
        for &mode in &a.shrink {
            let p = Pipeline::new()
                .fit(640, 640)
                .imagenet()
                .layout(Layout::Nchw)
                .shrink(mode);
            for (name, e) in &engines {
                rows.push(measure(
                    e,
                    &p,
                    &w1,
                    a.passes,
                    &format!("W1 {mode}"),
                    name,
                    mb,
                ));
            }
        }
    }
    if want("sol") {
        // each mode's distance from the exact (full-decode) output; the distance from an
        // independent f64 reference is `tests/shrink_quality.rs` (`--ignored` runs it on W1)
        let e = &engines[0].1;
        let base = Pipeline::new().fit(640, 640);
        let exact = e
            .run(&base.clone().shrink(Shrink::Exact), &w1)
            .map_err(|e| e.to_string())?;
        for mode in [Shrink::Balanced, Shrink::Fast] {
            let out = e
                .run(&base.clone().shrink(mode), &w1)
                .map_err(|e| e.to_string())?;
            let (mut max, mut sum, mut sq, mut n) = (0f64, 0f64, 0f64, 0usize);
            for (x, y) in out.items.iter().zip(&exact.items) {
                let (Ok(x), Ok(y)) = (&x.result, &y.result) else {
                    return Err("W1 item failed".into());
                };
                for (p, q) in x.as_bytes().iter().zip(y.as_bytes()) {
                    let d = (*p as f64 - *q as f64).abs();
                    max = max.max(d);
                    sum += d;
                    sq += d * d;
                    n += 1;
                }
            }
            let rmse = (sq / n.max(1) as f64).sqrt();
            println!(
                "{mode} vs exact (W1, 640x640 fit bilinear, u8): mean abs {:.3} levels ({:.5} in [0,1]), max abs {} levels, RMSE {:.3}, PSNR {:.1} dB",
                sum / n.max(1) as f64,
                sum / n.max(1) as f64 / 255.0,
                max,
                rmse,
                20.0 * (255.0 / rmse).log10()
            );
        }
    }
    if want("w2") {
        let frames = decoded_frames(&engines[0].1, &w1, 4)?;
        let inputs = frame_inputs(&frames, 24);
        let p = Pipeline::new()
            .stretch(224, 224)
            .filter(Filter::Bilinear)
            .imagenet()
            .layout(Layout::Nchw);
        let mb = frames[0].byte_len() as f64 / 1e6;
        for (name, e) in &engines {
            if *name == "cpu" {
                rows.extend(w2_cpu_vs_fir(e, &p, &frames, &inputs, a.passes, mb)?);
            } else {
                rows.push(measure(e, &p, &inputs, a.passes, "W2", name, mb));
            }
        }
    }
    if want("g1") {
        let frames = decoded_frames(&engines[0].1, &w1, 4)?;
        let inputs = frame_inputs(&frames, a.g1_count);
        let p = Pipeline::new()
            .stretch(640, 480)
            .filter(Filter::Bilinear)
            .imagenet()
            .layout(Layout::Nchw);
        let mb = frames[0].byte_len() as f64 / 1e6;
        for (name, e) in &engines {
            rows.push(measure(e, &p, &inputs, a.passes, "G1", name, mb));
        }
    }

    if want_only(workload, "sweep") {
        rows.extend(sweep(a, &engines, &w1)?);
    }

    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    println!("| workload | path | images | best img/s | median img/s | input MB/s | upload ms/img | kernel ms/img | wait ms/img | readback ms/img | note |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            r.workload,
            r.path,
            r.images,
            r.best_img_s,
            r.median_img_s,
            r.input_mb_s,
            ms(r.upload_ms),
            ms(r.kernel_ms),
            ms(r.wait_ms),
            ms(r.readback_ms),
            r.note
        );
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn want_only(workload: &str, w: &str) -> bool {
    workload == w
}

/// JPEG inputs of about `mpx` megapixels: W1 photos resized (4:3) and re-encoded at q90.
fn jpeg_inputs(engine: &Engine, w1: &[Input], mpx: f64, n: usize) -> Result<Vec<Input>, String> {
    let w = ((mpx * 1e6 * 4.0 / 3.0).sqrt()) as u32;
    let h = w * 3 / 4;
    let p = Pipeline::new().stretch(w, h);
    let mut out = Vec::new();
    for (i, src) in w1.iter().take(n.min(8)).enumerate() {
        let t = engine.run_one(&p, src).map_err(|e| e.to_string())?;
        let bytes = Frame::new(w, h, t.as_bytes().to_vec())
            .and_then(|f| f.encode_jpeg(90))
            .map_err(|e| e.to_string())?;
        out.push(Input::bytes(format!("sweep_{mpx}mp_{i}.jpg"), bytes));
    }
    Ok((0..n).map(|i| out[i % out.len()].clone()).collect())
}

/// auto vs the fixed paths over batch size x input size x output size. `auto` uses the
/// default adapter selection (a software adapter is excluded); `auto-explicit` selects the
/// adapter explicitly, so the scheduler weighs it (calibrated at first use).
fn sweep(a: &Args, engines: &[(&str, Engine)], w1: &[Input]) -> Result<Vec<Row>, String> {
    let mut builder = Engine::builder().no_persist();
    if let Some(t) = a.threads {
        builder = builder.cpu_threads(t);
    }
    let auto = builder.clone().build().map_err(|e| e.to_string())?;
    let explicit = builder
        .gpu(veridoc::gpu::GpuSelection::Required)
        .build()
        .ok();
    let mut all: Vec<(&str, &Engine)> = engines.iter().map(|(n, e)| (*n, e)).collect();
    all.push(("auto", &auto));
    if let Some(e) = &explicit {
        all.push(("auto-explicit", e));
    }
    let conv = &engines[0].1;
    let mut rows = Vec::new();
    println!("| batch | input MP | output | cpu img/s | gpu img/s | auto img/s | auto/best | auto-explicit img/s | auto-explicit/best | auto-explicit placement |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for &mpx in &a.sweep_mpx {
        let base = if mpx >= 12.0 {
            w1.iter().take(8).cloned().collect::<Vec<_>>()
        } else {
            jpeg_inputs(conv, w1, mpx, 8)?
        };
        for &out in &a.sweep_outputs {
            // fast shrink-on-load, as the sweep's earlier split points were measured with
            let p = Pipeline::new()
                .fit(out, out)
                .imagenet()
                .layout(Layout::Nchw)
                .shrink(Shrink::Fast);
            for &n in &a.sweep_batches {
                let inputs: Vec<Input> = (0..n).map(|i| base[i % base.len()].clone()).collect();
                // Interleaved rounds (`--passes`, at most 5), each engine timed over >= 0.25 s of back-to-back
                // calls per round (a batch of one small image takes well under 1 ms: a
                // single call is noise), best round kept; the GPU gets one round on a
                // software adapter's slow path.
                let mut per_round: std::collections::BTreeMap<&str, Vec<f64>> =
                    std::collections::BTreeMap::new();
                let mut placement = String::new();
                let mut reports = std::collections::BTreeMap::new();
                for (_, e) in &all {
                    e.run(&p, &inputs).expect("valid");
                }
                // the order rotates each round, so no engine always runs right after
                // another's threads (or lavapipe's) went idle
                let rounds = a.passes.clamp(1, 5);
                for round in 0..rounds {
                    for j in 0..all.len() {
                        let (name, e) = &all[(j + round) % all.len()];
                        if *name == "gpu" && round > 0 {
                            continue;
                        }
                        let t0 = Instant::now();
                        let mut calls = 0usize;
                        let report = loop {
                            let o = e.run(&p, &inputs).expect("valid");
                            assert_eq!(o.report.failed, 0);
                            calls += 1;
                            if t0.elapsed().as_secs_f64() >= 0.25 {
                                break o.report;
                            }
                        };
                        let rate = (calls * n) as f64 / t0.elapsed().as_secs_f64();
                        per_round.entry(*name).or_default().push(rate);
                        reports.insert(*name, report);
                    }
                }
                // each engine's best round
                let rates: std::collections::BTreeMap<&str, f64> = per_round
                    .iter()
                    .map(|(n, r)| (*n, r.iter().copied().fold(0.0, f64::max)))
                    .collect();
                for (name, _) in &all {
                    let (Some(best), Some(report)) = (rates.get(name), reports.get(name)) else {
                        continue;
                    };
                    if *name == "auto-explicit" {
                        placement = format!("{:?}", report.decision.placement);
                    }
                    rows.push(Row {
                        workload: format!("sweep b{n} {mpx}MP {out}px"),
                        path: name.to_string(),
                        images: n,
                        best_img_s: *best,
                        median_img_s: *best,
                        note: format!("{}", report.decision),
                        ..Row::default()
                    });
                }
                let cpu = rates.get("cpu").copied().unwrap_or(0.0);
                let gpu = rates.get("gpu").copied().unwrap_or(0.0);
                let au = rates.get("auto").copied().unwrap_or(0.0);
                let ae = rates.get("auto-explicit").copied();
                // auto / best as the median over rounds of each round's ratio to the better
                // fixed path in that round (the engines ran back to back, so a machine that
                // slows down between rounds cancels out); the gpu's one round counts for all
                let ratio = |name: &str| -> Option<f64> {
                    let mine = per_round.get(name)?;
                    let cpus = per_round.get("cpu")?;
                    let mut r: Vec<f64> =
                        mine.iter().zip(cpus).map(|(m, c)| m / c.max(gpu)).collect();
                    r.sort_by(f64::total_cmp);
                    r.get(r.len() / 2).copied()
                };
                let fmt =
                    |v: Option<f64>, prec: usize| v.map_or("-".into(), |v| format!("{v:.prec$}"));
                println!(
                    "| {n} | {mpx} | {out}x{out} | {cpu:.1} | {gpu:.1} | {au:.1} | {} | {} | {} | {placement} |",
                    fmt(ratio("auto"), 2),
                    fmt(ae, 1),
                    fmt(ratio("auto-explicit"), 2),
                );
            }
        }
    }
    Ok(rows)
}

/// W2 on the CPU against `fast_image_resize` alone, interleaved so machine noise hits both
/// alike; the ratio is the median of per-pass ratios.
fn w2_cpu_vs_fir(
    engine: &Engine,
    p: &Pipeline,
    frames: &[Frame],
    inputs: &[Input],
    passes: usize,
    mb: f64,
) -> Result<Vec<Row>, String> {
    let n = inputs.len();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(engine.cpu_threads())
        .build()
        .map_err(|e| e.to_string())?;
    let alg = fir::ResizeAlg::Convolution(fir::FilterType::Bilinear);
    let fir_alone = || {
        pool.install(|| {
            (0..n).into_par_iter().with_max_len(1).for_each(|i| {
                let f = &frames[i % frames.len()];
                let src = fir::images::ImageRef::new(
                    f.width(),
                    f.height(),
                    f.as_bytes(),
                    fir::PixelType::U8x3,
                )
                .expect("frame buffer");
                let mut dst = fir::images::Image::new(224, 224, fir::PixelType::U8x3);
                fir::Resizer::new()
                    .resize(&src, &mut dst, &fir::ResizeOptions::new().resize_alg(alg))
                    .expect("resize");
                std::hint::black_box(dst);
            })
        })
    };
    let ours = || {
        let out = engine.run(p, inputs).expect("valid spec");
        assert_eq!(out.report.failed, 0);
    };
    ours();
    fir_alone();
    let (mut r_ours, mut r_fir, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        ours();
        let o = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        fir_alone();
        let f = n as f64 / t.elapsed().as_secs_f64();
        r_ours.push(o);
        r_fir.push(f);
        ratios.push(o / f);
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (v[v.len() - 1], v[v.len() / 2])
    };
    let (best, median) = stats(&mut r_ours);
    let (fbest, fmedian) = stats(&mut r_fir);
    let (_, ratio) = stats(&mut ratios);
    Ok(vec![
        Row {
            workload: "W2".into(),
            path: "cpu (veridoc: resize + normalize)".into(),
            images: n,
            best_img_s: best,
            median_img_s: median,
            input_mb_s: best * mb,
            note: format!("{} threads", engine.cpu_threads()),
            ..Row::default()
        },
        Row {
            workload: "W2".into(),
            path: "cpu (fast_image_resize resize alone)".into(),
            images: n,
            best_img_s: fbest,
            median_img_s: fmedian,
            input_mb_s: fbest * mb,
            note: format!("median of per-pass ratios veridoc/fir = {ratio:.3}"),
            ..Row::default()
        },
    ])
}
