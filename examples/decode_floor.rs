//! How close W1 and single-photo verification are to the physical limit of JPEG decoding on
//! this machine (performance issue, section 2).
//!
//! The floor is entropy decoding alone: libjpeg-turbo's `jpeg_read_coefficients` runs the
//! Huffman decoder over the whole file into DCT coefficient arrays, with no inverse DCT, no
//! upsampling and no colour conversion. Every decode of the file, at any DCT scale, pays at
//! least this. Measured on one core, interleaved per file and round with the decodes the
//! engine does (scale 1/4, W1's shrink-on-load; scale 1/1), then the engine's W1 throughput
//! on all cores and the verification latency of one photo, each as a fraction of the floor.
//!
//! ```text
//! cargo run --release --example decode_floor -- [--rounds 5] [--verify-photos N] [FILES...]
//! ```
//! Default files: `target/w1/*.jpg` (`python3 scripts/gen_w1.py`). Verification uses
//! `fixtures/models` when present.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use veridoc::verify::{Profile, VerifyOptions};
use veridoc::{Engine, Input, Layout, Pipeline, Shrink};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Entropy decoding only: header, then every scan's Huffman data into coefficient arrays.
/// Returns the number of components read (so the work is not optimised away).
fn entropy_only(bytes: &[u8]) -> usize {
    use mozjpeg_sys as f;
    #[allow(unsafe_code)]
    // SAFETY: the standard libjpeg sequence on a struct this function owns; `bytes` outlives
    // the decompressor (destroyed before returning). libjpeg's default error handler exits
    // the process on a fatal error, acceptable for this measurement of valid benchmark files.
    unsafe {
        let mut err: f::jpeg_error_mgr = std::mem::zeroed();
        let mut cinfo: f::jpeg_decompress_struct = std::mem::zeroed();
        cinfo.common.err = f::jpeg_std_error(&mut err);
        f::jpeg_create_decompress(&mut cinfo);
        f::jpeg_mem_src(&mut cinfo, bytes.as_ptr(), bytes.len() as _);
        f::jpeg_read_header(&mut cinfo, 1);
        let coefs = f::jpeg_read_coefficients(&mut cinfo);
        let n = if coefs.is_null() {
            0
        } else {
            cinfo.num_components as usize
        };
        f::jpeg_finish_decompress(&mut cinfo);
        f::jpeg_destroy_decompress(&mut cinfo);
        n
    }
}

/// A full decode to RGB at DCT scale `num`/8, as the engine's JPEG path does it.
fn decode_rgb(bytes: &[u8], num: u8) -> usize {
    let run = || -> std::io::Result<usize> {
        let mut d = mozjpeg::Decompress::new_mem(bytes)?;
        d.scale(num);
        let mut s = d.rgb()?;
        let rows: Vec<[u8; 3]> = s.read_scanlines()?;
        s.finish()?;
        Ok(rows.len())
    };
    run().unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rounds = 5usize;
    let mut verify_photos = 8usize;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().ok_or("--rounds N")?.parse()?,
            "--verify-photos" => verify_photos = args.next().ok_or("--verify-photos N")?.parse()?,
            _ => files.push(a.into()),
        }
    }
    if files.is_empty() {
        let dir = PathBuf::from("target/w1");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e} (run python3 scripts/gen_w1.py)", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        found.sort();
        files = found;
    }
    let data: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{} files, {:.2} MB mean, {rounds} rounds, {threads} threads",
        data.len(),
        data.iter().map(Vec::len).sum::<usize>() as f64 / data.len().max(1) as f64 / 1e6
    );

    // one core, interleaved: floor, scale 1/4, scale 1/1 per file and round
    let (mut entropy, mut quarter, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut sink = 0usize;
    for _ in 0..rounds {
        for b in &data {
            let t = Instant::now();
            sink += entropy_only(b);
            entropy.push(t.elapsed());
            let t = Instant::now();
            sink += decode_rgb(b, 2);
            quarter.push(t.elapsed());
            let t = Instant::now();
            sink += decode_rgb(b, 8);
            full.push(t.elapsed());
        }
    }
    let (e, q, f) = (median(entropy), median(quarter), median(full));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("one core, median per file (check {sink}):");
    println!("  entropy decoding only (the floor) {:7.2} ms", ms(e));
    println!(
        "  decode at DCT scale 1/4           {:7.2} ms  ({:.2}x the floor)",
        ms(q),
        ms(q) / ms(e)
    );
    println!(
        "  decode at DCT scale 1/1           {:7.2} ms  ({:.2}x the floor)",
        ms(f),
        ms(f) / ms(e)
    );
    let floor_rate = threads as f64 / e.as_secs_f64();

    // W1 on every core through the engine, best and median of rounds
    let engine = Engine::builder()
        .cpu_threads(threads)
        .no_persist()
        .build()?;
    // W1's DCT scale 1/4 (fast shrink-on-load), the scale this example compares to the floor
    let p = Pipeline::new()
        .fit(640, 640)
        .imagenet()
        .layout(Layout::Nchw)
        .shrink(Shrink::Fast);
    let inputs: Vec<Input> = files.iter().map(Input::path).collect();
    engine.run(&p, &inputs[..inputs.len().min(2)])?; // warm-up
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let out = engine.run(&p, &inputs)?;
        let ok = out.items.iter().filter(|i| i.result.is_ok()).count();
        rates.push(ok as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let w1 = rates[rates.len() / 2];
    println!(
        "W1 on {threads} cores: {w1:.1} img/s median (best {:.1}); the floor allows {floor_rate:.1} img/s: W1 runs at {:.0} % of it",
        rates[rates.len() - 1],
        100.0 * w1 / floor_rate
    );

    // single-photo verification latency (one photo at a time, both cores for it)
    let models = PathBuf::from("fixtures/models");
    if verify_photos > 0 && models.is_dir() {
        engine.register_face_models(&models);
        let verifier = engine.verifier(VerifyOptions::new(Profile::passport()).use_cache(false))?;
        let mut lat = Vec::new();
        verifier.verify(&inputs[..1]); // warm-up: models, scratch
        for i in 0..verify_photos {
            let one = &inputs[i % inputs.len()..][..1];
            let t = Instant::now();
            verifier.verify(one);
            lat.push(t.elapsed());
        }
        let l = median(lat);
        println!(
            "verification of one photo: {:.1} ms median over {verify_photos}; {:.2}x the single-core entropy floor, {:.2}x the 1/4-scale decode",
            ms(l),
            ms(l) / ms(e),
            ms(l) / ms(q)
        );
    } else {
        println!("verification latency skipped: fixtures/models not found (scripts/setup.sh)");
    }
    Ok(())
}
