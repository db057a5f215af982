//! The release fuzz run: seeded mutants of real photos and of one small file per supported
//! format, through the decoders (in-process, every mutant) and the whole verification
//! (a batch per seed file), checking that nothing panics, every mutant ends within the
//! decode deadline plus a margin, and every input gets exactly one report.
//!
//! ```text
//! cargo run --release --example fuzz -- [--mutants 2000] [--seed 24301] [PHOTOS...]
//! ```
//! Without photos it takes the fetched sample photos (fixtures/photos). The test suite runs
//! the same mutator on small files (tests/bounded.rs); this run is the longer one for
//! releases, and its numbers go into docs/reliability.md. Exit code 1 when a check fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use veridoc::testing::Mutator;
use veridoc::verify::VerifyOptions;
use veridoc::{DecodeLimits, Engine, Frame, Input};

#[derive(Parser, Debug)]
#[command(about = "Seeded mutation fuzzing of the decoders and verification (veridoc)")]
struct Args {
    /// Mutants per seed file.
    #[arg(long, default_value_t = 2000)]
    mutants: usize,
    /// Mutator seed (the same seed gives the same mutants everywhere).
    #[arg(long, default_value_t = 24301)]
    seed: u64,
    /// Mutants per seed file also run through a whole verification batch.
    #[arg(long, default_value_t = 64)]
    verify: usize,
    /// Seed photos (default: fixtures/photos).
    photos: Vec<PathBuf>,
}

fn fixtures() -> PathBuf {
    std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

/// Small generated files of every format the image crate writes for us.
fn generated() -> Vec<(String, Vec<u8>)> {
    let f = Frame::synthetic(64, 48, 11);
    let mut out = Vec::new();
    if let Ok(j) = f.encode_jpeg(85) {
        out.push(("generated.jpg".to_string(), j));
    }
    if let Some(img) = image::RgbImage::from_raw(64, 48, f.as_bytes().to_vec()) {
        let img = image::DynamicImage::ImageRgb8(img);
        for (name, fmt) in [
            ("generated.png", image::ImageFormat::Png),
            ("generated.gif", image::ImageFormat::Gif),
            ("generated.bmp", image::ImageFormat::Bmp),
            ("generated.tiff", image::ImageFormat::Tiff),
            ("generated.webp", image::ImageFormat::WebP),
        ] {
            let mut c = std::io::Cursor::new(Vec::new());
            if img.write_to(&mut c, fmt).is_ok() {
                out.push((name.to_string(), c.into_inner()));
            }
        }
    }
    out
}

fn run(a: Args) -> Result<bool, String> {
    let mut seeds = generated();
    let photos = if a.photos.is_empty() {
        let dir = fixtures().join("photos");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| {
                format!(
                    "{}: {e} (run scripts/setup.sh, or name photos)",
                    dir.display()
                )
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        a.photos.clone()
    };
    for p in photos {
        let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        // images only (the fixtures also hold a .npy)
        if veridoc::decode::sniff(&b).is_some() {
            seeds.push((p.display().to_string(), b));
        }
    }
    let limits = DecodeLimits::default();
    let margin = Duration::from_secs(2);
    let engine = Engine::builder()
        .device_policy(veridoc::DevicePolicy::Cpu)
        .decode_limits(limits)
        .build()
        .map_err(|e| e.to_string())?;
    let models = fixtures().join("models");
    let verifier = if engine.register_face_models(&models).is_empty() {
        eprintln!("no models in {}: decoders only", models.display());
        None
    } else {
        Some(
            engine
                .verifier(VerifyOptions::default().use_cache(false))
                .map_err(|e| e.to_string())?,
        )
    };
    let mut all_ok = true;
    let t_all = Instant::now();
    let mut total = 0usize;
    println!("| seed file | mutants | decoded | refused | panics | slowest ms | verify batch: reports/inputs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, seed) in &seeds {
        let mut m = Mutator::new(a.seed);
        let (mut ok, mut refused, mut panics) = (0usize, 0usize, 0usize);
        let mut slowest = Duration::ZERO;
        let mut batch = Vec::new();
        for i in 0..a.mutants {
            let b = m.mutate(seed);
            let t = Instant::now();
            let r = std::panic::catch_unwind(|| {
                veridoc::decode::load(&b, &veridoc::DecodeOptions::default(), &limits, |_| Ok(1))
                    .map(|d| d.frame.width())
            });
            let took = t.elapsed();
            slowest = slowest.max(took);
            match r {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(_)) => refused += 1,
                Err(_) => {
                    panics += 1;
                    eprintln!("{name}: mutant {i} (seed {}) panicked", a.seed);
                }
            }
            if took > limits.max_decode_time + margin {
                all_ok = false;
                eprintln!("{name}: mutant {i} took {took:?}");
            }
            if i < a.verify {
                batch.push(Input::bytes(format!("{name}#{i}"), b));
            }
        }
        total += a.mutants;
        let reports = verifier
            .as_ref()
            .map(|v| v.verify(&batch).reports.len())
            .unwrap_or(batch.len());
        all_ok &= panics == 0 && reports == batch.len();
        println!(
            "| {} | {} | {ok} | {refused} | {panics} | {:.1} | {reports}/{} |",
            veridoc::verify::printable(name),
            a.mutants,
            slowest.as_secs_f64() * 1e3,
            batch.len()
        );
    }
    println!(
        "\n{total} mutants of {} seed files in {:.1} s (seed {}): {}",
        seeds.len(),
        t_all.elapsed().as_secs_f64(),
        a.seed,
        if all_ok { "all checks held" } else { "FAILED" }
    );
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fuzz: {e}");
            ExitCode::from(2)
        }
    }
}
