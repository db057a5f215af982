//! Bounded cost per input, measured with a counting allocator: decompression bombs that
//! are tiny on disk (a GIF of a few dozen bytes declaring a 40 MP canvas, a PNG whose
//! iCCP chunk inflates to 64 MiB) stay within the engine's host budget and the decode
//! limits, and every input still gets exactly one report.

mod common;

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
