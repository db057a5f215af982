//! Headless benchmark of the preprocessing workloads.
//!
//! ```text
//! cargo run --release --example bench -- [--workload w1|w2|all] [--device cpu|gpu|both]
//!     [--passes N] [--json FILE] [--w1-dir DIR]
//! ```
//!
//! - W1: the JPEGs of `target/w1` (`scripts/gen_w1.py`, 24 x 4032x3024 q90) -> decode ->
//!   letterbox 640x640 bilinear -> ImageNet-normalized f32 NCHW, all cores.
//! - W2: decoded 4032x3024 RGB8 frames in memory -> 224x224 bilinear -> normalized f32 NCHW,
//!   compared with `fast_image_resize`'s resize alone on the same frames (same threads).
//!
//! Each workload runs one warm-up pass, then `--passes` timed passes; the table shows the
//! best and the median.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use fast_image_resize as fir;
use rayon::prelude::*;
use serde::Serialize;
use veridoc::{Engine, Filter, Frame, Input, Layout, Pipeline};

// glibc returns freed output buffers to the OS and faults them in again on the next batch:
// measured on W2 (2 threads), veridoc/fir went from 0.90 to 0.97 with a caching allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// w1, w2 or all.
    #[arg(long, default_value = "all")]
    workload: String,
    /// cpu, gpu or both.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Timed passes per measurement.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Directory of the W1 JPEGs.
    #[arg(long, default_value = "target/w1")]
    w1_dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct Row {
    workload: String,
    path: String,
    images: usize,
    best_img_s: f64,
    median_img_s: f64,
    input_mb_s: f64,
    note: String,
}

fn time_passes(passes: usize, images: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up
    let mut rates: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            images as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    (rates[rates.len() - 1], rates[rates.len() / 2])
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

fn main() -> Result<(), String> {
    let a = Args::parse();
    if a.device != "cpu" {
        return Err("only --device cpu exists in this build".into());
    }
    let mut builder = Engine::builder();
    if let Some(t) = a.threads {
        builder = builder.cpu_threads(t);
    }
    let engine = builder.build().map_err(|e| e.to_string())?;
    let threads = engine.cpu_threads();
    let mut rows = Vec::new();
    let want = |w: &str| a.workload == "all" || a.workload == w;

    let w1 = w1_inputs(&a.w1_dir)?;
    if want("w1") {
        let p = Pipeline::new()
            .fit(640, 640)
            .imagenet()
            .layout(Layout::Nchw);
        let bytes: usize = w1.iter().filter_map(|i| i.encoded_len()).sum::<u64>() as usize;
        let (best, median) = time_passes(a.passes, w1.len(), || {
            let out = engine.run(&p, &w1).expect("valid spec");
            assert_eq!(out.report.failed, 0, "W1 items failed");
        });
        rows.push(Row {
            workload: "W1".into(),
            path: "cpu".into(),
            images: w1.len(),
            best_img_s: best,
            median_img_s: median,
            input_mb_s: best * bytes as f64 / w1.len() as f64 / 1e6,
            note: format!("{threads} threads, shrink-on-load, 640x640 fit f32 NCHW"),
        });
    }
    if want("sol") || a.workload == "all" {
        // Shrink-on-load's distance from a full decode, on u8 output (before normalization).
        let fast = Pipeline::new().fit(640, 640);
        let exact = fast.clone().exact(true);
        let a_out = engine.run(&fast, &w1).map_err(|e| e.to_string())?;
        let b_out = engine.run(&exact, &w1).map_err(|e| e.to_string())?;
        let (mut max, mut sum, mut sq, mut n) = (0f64, 0f64, 0f64, 0usize);
        for (x, y) in a_out.items.iter().zip(&b_out.items) {
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
        let rmse = (sq / n as f64).sqrt();
        println!(
            "shrink-on-load vs full decode (W1, 640x640 fit bilinear, u8): mean abs {:.3} levels ({:.5} in [0,1]), max abs {} levels, RMSE {:.3}, PSNR {:.1} dB",
            sum / n as f64,
            sum / n as f64 / 255.0,
            max,
            rmse,
            20.0 * (255.0 / rmse).log10()
        );
    }
    if want("w2") {
        // Decode 4 W1 files at full resolution once, cycle them to 24 frames.
        let full = Pipeline::new().exact(true);
        let frames: Vec<Frame> = w1
            .iter()
            .take(4)
            .map(|i| {
                let t = engine.run_one(&full, i).map_err(|e| e.to_string())?;
                let s = t.shape();
                Frame::new(s[1] as u32, s[0] as u32, t.as_bytes().to_vec())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, String>>()?;
        let n = 24;
        let inputs: Vec<Input> = (0..n)
            .map(|i| Input::frame(format!("f{i}"), frames[i % frames.len()].clone()))
            .collect();
        let p = Pipeline::new()
            .stretch(224, 224)
            .filter(Filter::Bilinear)
            .imagenet()
            .layout(Layout::Nchw);
        let mb = frames[0].byte_len() as f64 / 1e6;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
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
            let out = engine.run(&p, &inputs).expect("valid spec");
            assert_eq!(out.report.failed, 0);
        };
        // Interleave the two so machine noise hits both alike; report per-pass ratios.
        ours();
        fir_alone();
        let (mut r_ours, mut r_fir, mut ratios) = (vec![], vec![], vec![]);
        for _ in 0..a.passes.max(1) {
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
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            (v[v.len() - 1], v[v.len() / 2])
        };
        let (best, median) = med(&mut r_ours);
        let (fbest, fmedian) = med(&mut r_fir);
        let (_, ratio) = med(&mut ratios);
        rows.push(Row {
            workload: "W2".into(),
            path: "cpu (veridoc: resize + normalize)".into(),
            images: n,
            best_img_s: best,
            median_img_s: median,
            input_mb_s: best * mb,
            note: format!("{threads} threads, 4032x3024 rgb8 -> 224x224 f32 NCHW"),
        });
        rows.push(Row {
            workload: "W2".into(),
            path: "cpu (fast_image_resize resize alone)".into(),
            images: n,
            best_img_s: fbest,
            median_img_s: fmedian,
            input_mb_s: fbest * mb,
            note: format!("median of per-pass ratios veridoc/fir = {ratio:.3}"),
        });
    }

    println!("| workload | path | images | best img/s | median img/s | input MB/s | note |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            r.workload, r.path, r.images, r.best_img_s, r.median_img_s, r.input_mb_s, r.note
        );
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
