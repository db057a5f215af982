//! Bounded cost per input, measured with a counting allocator: decompression bombs that
//! are tiny on disk (a GIF of a few dozen bytes declaring a 40 MP canvas, a PNG whose
//! iCCP chunk inflates to 64 MiB) stay within the engine's host budget and the decode
//! limits, and every input still gets exactly one report.

mod common;
mod schema;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::ImageEncoder;
use veridoc::verify::{Verdict, VerifyOptions};
use veridoc::{DecodeLimits, Engine, Input, MemoryLimit};

/// Heap bytes in use and their peak, for the whole test binary.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests of this binary share the counters: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Peak heap growth over what was in use when `f` started.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// A valid GIF of `w` x `h` whose only frame is one pixel: 43 bytes on disk.
fn gif_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&w.to_le_bytes());
    g.extend_from_slice(&h.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0]); // global color table of 2 entries
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // 1x1 frame at 0,0
    g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW: clear, index 0, end
    g.push(0x3B);
    g
}

const MIB: usize = 1 << 20;

#[test]
fn gif_bombs_stay_inside_the_host_budget_when_verified() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(assets) =
        common::assets_or_skip("gif_bombs_stay_inside_the_host_budget_when_verified")
    else {
        return;
    };
    let budget = 600 * MIB;
    let e = Engine::builder()
        .cpu_threads(2)
        .device_policy(veridoc::DevicePolicy::Cpu)
        .host_memory_limit(MemoryLimit::Bytes(budget as u64))
        .build()
        .expect("engine");
    e.register_face_models(assets.join("models"));
    let v = e
        .verifier(VerifyOptions::default().use_cache(false))
        .expect("verifier");
    // 8000x5000 = 40 MP: ~440 MB at the decode's peak (canvas, RGBA8 copy, RGB8), so the
    // budget admits one decode at a time; unreserved, two workers would hold ~900 MB and a
    // chunk would keep every full frame.
    let bomb = gif_bomb(8000, 5000);
    assert!(bomb.len() < 50);
    let inputs: Vec<Input> = (0..6)
        .map(|i| Input::bytes(format!("bomb{i}.gif"), bomb.clone()))
        .collect();
    let (out, grew) = peak_growth(|| v.verify(&inputs));
    eprintln!(
        "6 GIF bombs of {} bytes: peak heap growth {} MiB (budget {} MiB)",
        bomb.len(),
        grew / MIB,
        budget / MIB
    );
    assert_eq!(out.reports.len(), inputs.len(), "one report per input");
    for r in &out.reports {
        assert_ne!(r.verdict, Verdict::Error, "{}: {:?}", r.name, r.error);
    }
    // The budget, plus what is not reserved (models, reports, the detector's buffers).
    assert!(grew < budget + 64 * MIB, "peak growth {} MiB", grew / MIB);
}

#[test]
fn an_icc_profile_bomb_inflates_no_further_than_the_metadata_limit() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut png = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut png);
    enc.set_icc_profile(vec![0u8; 64 * MIB])
        .expect("png takes a profile");
    enc.write_image(
        &[128u8; 16 * 16 * 3],
        16,
        16,
        image::ExtendedColorType::Rgb8,
    )
    .expect("png");
    assert!(
        png.len() < MIB,
        "the profile compresses: {} bytes",
        png.len()
    );
    let (res, grew) = peak_growth(|| {
        veridoc::decode::load(
            &png,
            &veridoc::DecodeOptions::default(),
            &DecodeLimits::default(),
            |_| Ok(1),
        )
    });
    eprintln!(
        "png of {} KiB with a 64 MiB iCCP: peak heap growth {} MiB, decoded: {}",
        png.len() >> 10,
        grew / MIB,
        res.is_ok()
    );
    // The profile is dropped (we never colour-manage) and the pixels decode.
    let d = res.expect("the image itself is fine");
    assert_eq!(d.frame.width(), 16);
    let limit = DecodeLimits::default().max_metadata_bytes as usize;
    assert!(grew <= 2 * limit, "peak growth {} MiB", grew / MIB);
}

/// One small valid file of every supported format (and both JPEG modes).
fn seed_files() -> Vec<(&'static str, Vec<u8>)> {
    let f = veridoc::Frame::synthetic(48, 40, 7);
    let img = image::RgbImage::from_raw(48, 40, f.as_bytes().to_vec()).expect("frame");
    let img = image::DynamicImage::ImageRgb8(img);
    let enc = |fmt: image::ImageFormat| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, fmt).expect("encode");
        out.into_inner()
    };
    let progressive = {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(48, 40);
        c.set_progressive_mode();
        c.set_quality(85.0);
        let mut c = c.start_compress(Vec::new()).expect("start");
        c.write_scanlines(f.as_bytes()).expect("rows");
        c.finish().expect("finish")
    };
    vec![
        ("jpeg", f.encode_jpeg(85).expect("jpeg")),
        ("progressive jpeg", progressive),
        ("png", enc(image::ImageFormat::Png)),
        ("gif", enc(image::ImageFormat::Gif)),
        ("bmp", enc(image::ImageFormat::Bmp)),
        ("tiff", enc(image::ImageFormat::Tiff)),
        ("webp", enc(image::ImageFormat::WebP)),
    ]
}

/// Mutants per seed file. Seed 0x5EED; a failure names the format and the mutant index,
/// reproducible with `veridoc::testing::Mutator::new(SEED)`. The release fuzz run
/// (`examples/fuzz.rs`) runs the same mutator for longer over the real photos too.
const MUTANTS: usize = 1000;
const SEED: u64 = 0x5EED;

#[test]
fn seeded_mutants_of_every_format_decode_or_fail_cleanly_within_bounds() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Tight limits keep the worst mutant small: a header bent to claim 65535 px wide
    // stops at 4 MP, one allocation at 64 MiB, any JPEG at 2 s.
    let limits = DecodeLimits {
        max_pixels: 1 << 22,
        max_alloc: 64 * MIB as u64,
        max_decode_time: std::time::Duration::from_secs(2),
        ..DecodeLimits::default()
    };
    let mut worst_time = std::time::Duration::ZERO;
    let mut worst_heap = 0usize;
    for (format, seed) in seed_files() {
        let mut m = veridoc::testing::Mutator::new(SEED);
        let (mut ok, mut failed) = (0usize, 0usize);
        for i in 0..MUTANTS {
            let b = m.mutate(&seed);
            let t = std::time::Instant::now();
            let (r, grew) = peak_growth(|| {
                std::panic::catch_unwind(|| {
                    veridoc::decode::load(&b, &veridoc::DecodeOptions::default(), &limits, |_| {
                        Ok(1)
                    })
                    .map(|d| d.frame.width())
                })
            });
            let took = t.elapsed();
            let r = r.unwrap_or_else(|_| panic!("{format} mutant {i} panicked"));
            match r {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
            assert!(
                took < std::time::Duration::from_secs(5),
                "{format} mutant {i} took {took:?}"
            );
            // 4 MP at the largest native pixel (16-bit RGBA, 8 B) plus conversions.
            assert!(grew < 256 * MIB, "{format} mutant {i}: {} MiB", grew / MIB);
            worst_time = worst_time.max(took);
            worst_heap = worst_heap.max(grew);
        }
        eprintln!("{format}: {MUTANTS} mutants, {ok} decoded, {failed} refused");
    }
    eprintln!(
        "worst mutant: {:.1} ms, {:.1} MiB of heap",
        worst_time.as_secs_f64() * 1e3,
        worst_heap as f64 / MIB as f64
    );
}

#[test]
fn a_batch_of_mutants_gets_one_result_per_item() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut inputs = Vec::new();
    for (format, seed) in seed_files() {
        let mut m = veridoc::testing::Mutator::new(SEED ^ 1);
        for i in 0..40 {
            inputs.push(Input::bytes(format!("{format}-{i}"), m.mutate(&seed)));
        }
    }
    let e = Engine::builder()
        .cpu_threads(2)
        .device_policy(veridoc::DevicePolicy::Cpu)
        .decode_limits(DecodeLimits {
            max_pixels: 1 << 22,
            ..DecodeLimits::default()
        })
        .build()
        .expect("engine");
    let p = veridoc::Pipeline::new();
    let out = e.run(&p, &inputs).expect("batch");
    assert_eq!(out.items.len(), inputs.len());
    for (item, input) in out.items.iter().zip(&inputs) {
        assert_eq!(item.name, input.name(), "results stay in input order");
    }
    let failed = out.items.iter().filter(|i| i.result.is_err()).count();
    eprintln!(
        "preprocess: {} mutants, {failed} failed alone",
        inputs.len()
    );
    let Some(assets) = common::assets_or_skip("a_batch_of_mutants_gets_one_result_per_item") else {
        return;
    };
    e.register_face_models(assets.join("models"));
    let v = e
        .verifier(VerifyOptions::default().use_cache(false))
        .expect("verifier");
    let out = v.verify(&inputs);
    schema::assert_schema(&out);
    assert_eq!(out.reports.len(), inputs.len());
    for (r, input) in out.reports.iter().zip(&inputs) {
        assert_eq!(r.name, input.name());
    }
    eprintln!(
        "verify: {} mutants, {} errors",
        inputs.len(),
        out.reports
            .iter()
            .filter(|r| r.verdict == Verdict::Error)
            .count()
    );
}
