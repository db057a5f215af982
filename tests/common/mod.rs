//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a private module of each test binary")]

use std::path::PathBuf;

use veridoc::Frame;

/// The golden-input formula shared with `scripts/pillow_goldens.py`.
pub fn formula_frame(w: u32, h: u32) -> Frame {
    Frame::from_fn(w, h, |x, y| {
        let v = |c: u32| ((x * 73 + y * 151 + c * 29 + ((x * y * 7) % 61) * 3) % 256) as u8;
        [v(0), v(1), v(2)]
    })
}

/// The Pillow golden formula (`scripts/pillow_goldens.py`): values in [48, 207], so no
/// filter's overshoot is clipped and pass order cannot matter.
pub fn golden_frame(w: u32, h: u32) -> Frame {
    Frame::from_fn(w, h, |x, y| {
        let v = |c: u32| (48 + (x * 73 + y * 151 + c * 29 + ((x * y * 7) % 61) * 3) % 160) as u8;
        [v(0), v(1), v(2)]
    })
}

/// Path of a committed fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Directory of the fetched assets (scripts/fetch-assets.sh), if present.
pub fn assets() -> Option<PathBuf> {
    let dir = std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    dir.join(".complete-v2").exists().then_some(dir)
}

/// Assets are required in CI (`VERIDOC_REQUIRE_ASSETS=1`); elsewhere a test without them
/// skips loudly.
pub fn assets_or_skip(test: &str) -> Option<PathBuf> {
    match assets() {
        Some(d) => Some(d),
        None if std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() == Ok("1") => {
            panic!(
                "{test}: assets missing and VERIDOC_REQUIRE_ASSETS=1 (run scripts/fetch-assets.sh)"
            )
        }
        None => {
            eprintln!("SKIPPED {test}: assets missing (run scripts/fetch-assets.sh)");
            None
        }
    }
}

/// The face-api reference outputs (`scripts/faceapi-reference.sh`, run by setup):
/// `fixtures/reference`, required in CI like the assets.
pub fn reference_or_skip(test: &str) -> Option<PathBuf> {
    let dir = assets_or_skip(test)?.join("reference");
    made_or_skip(
        test,
        dir,
        ".faceapi-complete-v1",
        "face-api reference",
        "faceapi-reference.sh",
    )
}

/// The labelled conformance corpus (`scripts/make-corpus.sh`, run by setup):
/// `fixtures/corpus`, required in CI like the assets.
pub fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let dir = assets_or_skip(test)?.join("corpus");
    made_or_skip(test, dir, "labels.json", "corpus", "make-corpus.sh")
}

/// `dir` when setup's `script` made it (`marker` exists in it); else a loud skip, or a
/// failure where `VERIDOC_REQUIRE_ASSETS=1`.
fn made_or_skip(
    test: &str,
    dir: PathBuf,
    marker: &str,
    what: &str,
    script: &str,
) -> Option<PathBuf> {
    if dir.join(marker).exists() {
        return Some(dir);
    }
    if std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{test}: {what} missing and VERIDOC_REQUIRE_ASSETS=1 (run scripts/{script})");
    }
    eprintln!("SKIPPED {test}: {what} missing (run scripts/{script})");
    None
}

/// Decodes a photo at full resolution (EXIF orientation applied).
pub fn decode_full(path: &std::path::Path) -> Frame {
    let bytes = std::fs::read(path).expect("read photo");
    veridoc::decode::load(
        &bytes,
        &veridoc::DecodeOptions::default(),
        &veridoc::DecodeLimits::default(),
        |_| Ok(1),
    )
    .expect("decode photo")
    .frame
}

/// An independent f64 model of antialiased separable resampling (Pillow's definition:
/// support scaled by the reduction factor, weights normalized to sum 1, pixel centres at
/// +0.5), with no fixed point and no intermediate rounding; each pass clamps to [0, 255]
/// like every 8-bit implementation does. Vertical pass first, as the engine's 8-bit path.
pub fn resize_f64(src: &Frame, box_: [f64; 4], dw: u32, dh: u32, filter: &str) -> Vec<f64> {
    let (kernel, support): (fn(f64) -> f64, f64) = match filter {
        "box" => (|x| if x > -0.5 && x <= 0.5 { 1.0 } else { 0.0 }, 0.5),
        "bilinear" => (|x: f64| (1.0 - x.abs()).max(0.0), 1.0),
        "bicubic" => (
            |x: f64| {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            },
            2.0,
        ),
        "lanczos3" => (
            |x: f64| {
                let sinc = |t: f64| {
                    if t == 0.0 {
                        1.0
                    } else {
                        (t * std::f64::consts::PI).sin() / (t * std::f64::consts::PI)
                    }
                };
                if x.abs() < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            },
            3.0,
        ),
        other => panic!("no f64 model for {other}"),
    };
    let weights = |in_size: u32, in0: f64, in1: f64, out: u32| -> Vec<Vec<(usize, f64)>> {
        let scale = (in1 - in0) / out as f64;
        let fs = scale.max(1.0);
        (0..out)
            .map(|i| {
                let center = in0 + (i as f64 + 0.5) * scale;
                let lo = ((center - support * fs).floor().max(0.0)) as usize;
                let hi = ((center + support * fs).ceil().min(in_size as f64)) as usize;
                let mut ws: Vec<(usize, f64)> = (lo..hi)
                    .map(|x| (x, kernel((x as f64 + 0.5 - center) / fs)))
                    .collect();
                let s: f64 = ws.iter().map(|w| w.1).sum();
                ws.iter_mut().for_each(|w| w.1 /= s);
                ws
            })
            .collect()
    };
    let [l, t, bw, bh] = box_;
    let wx = weights(src.width(), l, l + bw, dw);
    let wy = weights(src.height(), t, t + bh, dh);
    let sw = src.width() as usize;
    let px = src.as_bytes();
    let mut tmp = vec![0f64; dh as usize * sw * 3];
    for (y, ws) in wy.iter().enumerate() {
        for x in 0..sw {
            for c in 0..3 {
                let v: f64 = ws
                    .iter()
                    .map(|&(sy, w)| w * px[(sy * sw + x) * 3 + c] as f64)
                    .sum();
                tmp[(y * sw + x) * 3 + c] = v.clamp(0.0, 255.0);
            }
        }
    }
    let mut out = vec![0f64; dh as usize * dw as usize * 3];
    for y in 0..dh as usize {
        for (x, ws) in wx.iter().enumerate() {
            for c in 0..3 {
                let v: f64 = ws
                    .iter()
                    .map(|&(sx, w)| w * tmp[(y * sw + sx) * 3 + c])
                    .sum();
                out[(y * dw as usize + x) * 3 + c] = v.clamp(0.0, 255.0);
            }
        }
    }
    out
}

/// Max and mean absolute difference, in 8-bit units.
pub fn max_mean_abs(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let mut max: f64 = 0.0;
    let mut sum = 0.0;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += d;
    }
    (max, sum / a.len().max(1) as f64)
}

/// An engine on the GPU path (policy gpu), or `None` after printing `SKIPPED (no adapter)`.
/// With `VERIDOC_REQUIRE_GPU=1` a missing adapter fails the test instead. In a build
/// without the `gpu` feature the engine says so and the test skips (or fails, required).
pub fn gpu_or_skip(test: &str) -> Option<veridoc::Engine> {
    let built = veridoc::Engine::builder()
        .cpu_threads(2)
        .device_policy(veridoc::DevicePolicy::Gpu)
        .build();
    match built {
        Ok(e) => {
            if let Some(info) = e.gpu_info() {
                eprintln!("{test}: gpu {info}");
            }
            Some(e)
        }
        Err(err) if std::env::var("VERIDOC_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("{test}: VERIDOC_REQUIRE_GPU=1 but no GPU: {err}")
        }
        Err(err) => {
            eprintln!("SKIPPED (no adapter) {test}: {err}");
            None
        }
    }
}

/// The CPU-only twin of an engine, for parity comparisons.
pub fn cpu_engine() -> veridoc::Engine {
    veridoc::Engine::builder()
        .cpu_threads(2)
        .device_policy(veridoc::DevicePolicy::Cpu)
        .build()
        .expect("cpu engine")
}

/// Deterministic random RGB frame (xorshift), for parity tests.
pub fn random_frame(w: u32, h: u32, seed: u32) -> Frame {
    let mut s = seed.wrapping_mul(0x9E37_79B9).max(1);
    Frame::from_fn(w, h, |_, _| {
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        };
        [next(), next(), next()]
    })
}
