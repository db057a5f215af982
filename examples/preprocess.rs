//! Preprocess images into `.npy` tensors.
//!
//! ```text
//! cargo run --release --example preprocess -- [--device cpu|gpu|auto] [--size WxH]
//!     [--mode fit|fill|stretch|shorter-side] [--filter nearest|box|bilinear|bicubic|lanczos3]
//!     [--layout nchw|nhwc] [--dtype f32|f16|u8] [--mean R,G,B --std R,G,B] [--exact]
//!     [--out DIR] [INPUTS|DIRS...]
//! ```
//!
//! Writes one `.npy` per input into DIR (named after the input's file stem), prints one line
//! per item and a total. Exit status 0 when the run completed, even if some items failed;
//! non-zero only when the run itself could not proceed (bad arguments, unwritable output).
//! With no inputs it processes a built-in set of generated images.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

// A caching allocator keeps output buffers' pages between batches (glibc trims and
// re-faults them); see docs/benchmarks.md, W2.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use veridoc::cache::CacheConfig;
use veridoc::verify::printable;
use veridoc::{
    Anchor, DType, DevicePolicy, Engine, Filter, Frame, Input, Layout, MemoryLimit, Pipeline,
    Resize, StreamOptions, IMAGENET_MEAN, IMAGENET_STD,
};

#[derive(Parser, Debug)]
#[command(about = "Preprocess images into .npy tensors (veridoc)")]
struct Args {
    /// Execution path: cpu, gpu or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Output size WxH (or S for shorter-side).
    #[arg(long, default_value = "640x640")]
    size: String,
    /// Resize mode: fit (letterbox), fill (cover + centre crop), stretch, shorter-side.
    #[arg(long, default_value = "fit")]
    mode: String,
    /// Resampling filter.
    #[arg(long, default_value = "bilinear")]
    filter: String,
    /// Output layout: nchw or nhwc.
    #[arg(long, default_value = "nchw")]
    layout: String,
    /// Output dtype: f32, f16 or u8 (u8 is never normalized).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Per-channel mean in [0,1] units, R,G,B. Default: ImageNet.
    #[arg(long)]
    mean: Option<String>,
    /// Per-channel std in [0,1] units, R,G,B. Default: ImageNet.
    #[arg(long)]
    std: Option<String>,
    /// Always decode JPEGs at full resolution (no shrink-on-load).
    #[arg(long)]
    exact: bool,
    /// Output directory.
    #[arg(long, default_value = "out/preprocess")]
    out: PathBuf,
    /// Host memory budget (e.g. 512MiB, 2GiB). Default: half the available memory.
    #[arg(long)]
    host_budget: Option<String>,
    /// GPU memory budget (e.g. 1GiB). Default: derived from the adapter.
    #[arg(long)]
    gpu_budget: Option<String>,
    /// Items per batch. Default: planned from the budget.
    #[arg(long)]
    batch: Option<usize>,
    /// Result cache directory. Default: `<engine cache dir>/results`.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Do not cache results (nothing written).
    #[arg(long)]
    no_cache: bool,
    /// Image files or directories (non-recursive). None: a built-in generated set.
    inputs: Vec<PathBuf>,
}

fn parse_triplet(s: &str, what: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--{what} {s:?}: {e}"))?;
    <[f32; 3]>::try_from(v).map_err(|_| format!("--{what} needs three comma-separated values"))
}

fn pipeline(a: &Args) -> Result<Pipeline, String> {
    let (w, h) = match a.size.split_once(['x', 'X']) {
        Some((w, h)) => (
            w.parse::<u32>()
                .map_err(|e| format!("--size {}: {e}", a.size))?,
            h.parse::<u32>()
                .map_err(|e| format!("--size {}: {e}", a.size))?,
        ),
        None => {
            let s = a
                .size
                .parse::<u32>()
                .map_err(|e| format!("--size {}: {e}", a.size))?;
            (s, s)
        }
    };
    let resize = match a.mode.as_str() {
        "fit" => Resize::Fit {
            width: w,
            height: h,
            anchor: Anchor::Center,
            pad: [0, 0, 0],
        },
        "fill" => Resize::Fill {
            width: w,
            height: h,
        },
        "stretch" => Resize::Stretch {
            width: w,
            height: h,
        },
        "shorter-side" => Resize::ShorterSide {
            size: w.min(h),
            max_size: None,
        },
        m => {
            return Err(format!(
                "--mode {m:?}: expected fit, fill, stretch or shorter-side"
            ))
        }
    };
    let filter: Filter = a.filter.parse().map_err(|e| format!("--filter: {e}"))?;
    let layout = match a.layout.as_str() {
        "nchw" => Layout::Nchw,
        "nhwc" => Layout::Nhwc,
        l => return Err(format!("--layout {l:?}: expected nchw or nhwc")),
    };
    let dtype = match a.dtype.as_str() {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "u8" => DType::U8,
        d => return Err(format!("--dtype {d:?}: expected f32, f16 or u8")),
    };
    let mut p = Pipeline::new()
        .resize(resize)
        .filter(filter)
        .layout(layout)
        .exact(a.exact);
    let explicit = a.mean.is_some() || a.std.is_some();
    if dtype != DType::U8 || explicit {
        let mean = a
            .mean
            .as_deref()
            .map_or(Ok(IMAGENET_MEAN), |s| parse_triplet(s, "mean"))?;
        let std = a
            .std
            .as_deref()
            .map_or(Ok(IMAGENET_STD), |s| parse_triplet(s, "std"))?;
        p = p.normalize(mean, std);
    }
    p = p.dtype(dtype);
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

/// Parses `512MiB`, `2GiB`, `100MB`, `64k` or a plain byte count.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.trim().parse().map_err(|e| format!("size {s:?}: {e}"))?;
    let mul: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("size {s:?}: unknown unit {u:?}")),
    };
    Ok((v * mul) as u64)
}

fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, String> {
    Input::from_paths(paths).map_err(|e| e.to_string())
}

/// The built-in default set: generated JPEGs and PNGs of several sizes and aspect ratios.
fn default_inputs() -> Vec<Input> {
    let sizes = [
        (1600, 1200),
        (1200, 1600),
        (800, 800),
        (4032, 3024),
        (333, 517),
        (64, 48),
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let f = Frame::synthetic(w, h, i as u32 + 1);
            let mut bytes = Vec::new();
            let name = if i % 2 == 0 {
                f.encode_jpeg(90)
                    .map(|b| {
                        bytes = b;
                        format!("generated_{i}_{w}x{h}.jpg")
                    })
                    .map_err(|e| e.to_string())
            } else {
                image::codecs::png::PngEncoder::new(&mut bytes)
                    .write_image(f.as_bytes(), w, h, image::ExtendedColorType::Rgb8)
                    .map(|_| format!("generated_{i}_{w}x{h}.png"))
                    .map_err(|e| e.to_string())
            };
            Input::bytes(
                name.unwrap_or_else(|e| format!("generated_{i}: {e}")),
                bytes,
            )
        })
        .collect()
}

use image::ImageEncoder;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    let p = pipeline(a)?;
    let policy: DevicePolicy = a
        .device
        .parse()
        .map_err(|e: veridoc::Error| e.to_string())?;
    let inputs = if a.inputs.is_empty() {
        println!("no inputs given: processing the built-in generated set");
        default_inputs()
    } else {
        collect_inputs(&a.inputs)?
    };
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    // Output paths are checked before any work: the directory must take a file.
    let probe = a.out.join(format!(".veridoc-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("--out {}: not writable: {e}", a.out.display()))?;
    let mut builder = Engine::builder().device_policy(policy);
    if let Some(b) = &a.host_budget {
        builder = builder.host_memory_limit(MemoryLimit::Bytes(parse_size(b)?));
    }
    if let Some(b) = &a.gpu_budget {
        builder = builder.gpu_memory_limit(parse_size(b)?);
    }
    if !a.no_cache {
        let dir = a.cache_dir.clone().or_else(|| {
            Engine::builder()
                .calibrate(false)
                .device_policy(DevicePolicy::Cpu)
                .build()
                .ok()
                .and_then(|e| e.cache_dir().map(|d| d.join("results")))
        });
        if let Some(dir) = dir {
            println!("result cache: {}", dir.display());
            builder = builder.result_cache(CacheConfig::default().disk(dir));
        }
    }
    let engine = builder.build().map_err(|e| e.to_string())?;
    // why a configured cache directory went unused, once
    for w in engine.warnings() {
        eprintln!("warning: {}", veridoc::verify::printable(&w));
    }
    if let Some(gpu) = engine.gpu_info() {
        println!("gpu: {gpu}");
    }
    let total = inputs.len();
    let bar = std::io::stdout().is_terminal().then(|| {
        let b = ProgressBar::new(total as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut opts = StreamOptions::new();
    if let Some(n) = a.batch {
        opts = opts.batch_size(n);
    }
    if let Some(b) = bar.clone() {
        opts = opts.on_progress(move |p| {
            b.set_position(p.done as u64);
            b.set_message(format!("{} failed", p.failed));
        });
    }
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => println!("{line}"),
    };
    let mut used = HashSet::new();
    let mut written = 0usize;
    let mut write_error = None;
    let t0 = Instant::now();
    let summary = engine
        .stream(&p, inputs, opts, |it| {
            let item = it.item;
            match &item.result {
                Ok(t) => {
                    let stem0 = Path::new(&item.name)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| format!("item{}", it.index));
                    let mut stem = stem0.clone();
                    let mut k = 1;
                    while !used.insert(stem.clone()) {
                        k += 1;
                        stem = format!("{stem0}_{k}");
                    }
                    let path = a.out.join(format!("{stem}.npy"));
                    let res = std::fs::File::create(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|f| {
                            t.write_npy(std::io::BufWriter::new(f))
                                .map_err(|e| e.to_string())
                        });
                    if let Err(e) = res {
                        write_error.get_or_insert(format!("{}: {e}", path.display()));
                        return;
                    }
                    written += 1;
                    let cached = if item.cached {
                        ", from the result cache"
                    } else {
                        ""
                    };
                    let shrink = item
                        .decode
                        .filter(|d| d.shrink > 1)
                        .map(|d| format!(", decoded at 1/{}", d.shrink))
                        .unwrap_or_default();
                    say(format!(
                        "ok    {} -> {} {:?} {}{shrink}{cached}",
                        printable(&item.name),
                        path.display(),
                        t.shape(),
                        t.dtype().name()
                    ));
                }
                Err(e) => say(format!("FAIL  {}", printable(&e.to_string()))),
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = write_error {
        return Err(format!("writing output: {e}"));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "total: {} items, {} ok, {} failed, {} served from the result cache, in {:.2} s ({:.1} img/s); batches {} (cpu {}, gpu {}, split {}); host memory peak {} of {}; {} .npy files in {}",
        summary.done,
        summary.done - summary.failed,
        summary.failed,
        summary.cache_hits,
        secs,
        summary.done as f64 / secs.max(1e-9),
        summary.batches,
        summary.placements[0],
        summary.placements[1],
        summary.placements[2],
        veridoc::fmt_bytes(summary.peak_reserved),
        veridoc::fmt_bytes(summary.budget),
        written,
        a.out.display()
    );
    if let Some(d) = &summary.last_decision {
        println!("last decision: {d}");
    }
    Ok(())
}
