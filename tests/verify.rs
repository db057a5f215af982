//! Face detection and photo verification on the real asset photos (fetched by
//! `scripts/fetch-assets.sh`): the expected detection counts of `shared/ASSETS.md`,
//! CPU/GPU agreement box for box, and quality checks that accept good portraits and reject
//! degraded copies of them.

mod common;

use std::path::Path;

use veridoc::detect::{DetectorConfig, Face};
use veridoc::verify::{CheckStatus, PhotoReport, Profile, Verdict, VerifyOptions};
use veridoc::{Engine, Frame, Input, Placement};

/// Expected counts with face-api's settings (score 0.5, NMS 0.4), from shared/ASSETS.md.
const EXPECTED: [(&str, usize); 9] = [
    ("astronaut.png", 1),
    ("sample1.jpg", 3),
    ("sample2.jpg", 1),
    ("sample3.jpg", 3),
    ("sample4.jpg", 3),
    ("sample5.jpg", 5),
    ("sample6.jpg", 5),
    ("coffee.png", 0),
    ("chelsea.png", 0),
];

fn engine_with_model(assets: &Path, e: Engine) -> Engine {
    e.register_face_model(assets.join("models/tiny_face_detector_model-weights_manifest.json"));
    e
}

fn photos(assets: &Path, names: &[&str]) -> Vec<Input> {
    names
        .iter()
        .map(|n| Input::path(assets.join("photos").join(n)))
        .collect()
}

fn detect(e: &Engine, inputs: &[Input], p: Placement) -> Vec<Vec<Face>> {
    e.detect_faces(inputs, Some(p), &DetectorConfig::default())
        .expect("model")
        .into_iter()
        .map(|r| r.expect("photo").faces)
        .collect()
}

#[test]
fn cpu_detections_match_the_expected_counts() {
    let Some(assets) = common::assets_or_skip("cpu_detections_match_the_expected_counts") else {
        return;
    };
    let e = engine_with_model(&assets, common::cpu_engine());
    let names: Vec<&str> = EXPECTED.iter().map(|x| x.0).collect();
    let found = detect(&e, &photos(&assets, &names), Placement::Cpu);
    for ((name, want), faces) in EXPECTED.iter().zip(&found) {
        eprintln!("{name}: {} faces {:?}", faces.len(), faces);
        assert_eq!(faces.len(), *want, "{name}");
        for f in faces {
            assert!(
                f.score >= 0.5 && f.width > 8.0 && f.height > 8.0,
                "{name}: {f:?}"
            );
        }
    }
}

#[test]
fn gpu_detections_agree_with_the_cpu_box_for_box() {
    let Some(assets) = common::assets_or_skip("gpu_detections_agree_with_the_cpu_box_for_box")
    else {
        return;
    };
    let Some(gpu) = common::gpu_or_skip("gpu_detections_agree_with_the_cpu_box_for_box") else {
        return;
    };
    let gpu = engine_with_model(&assets, gpu);
    let cpu = engine_with_model(&assets, common::cpu_engine());
    let names: Vec<&str> = EXPECTED.iter().map(|x| x.0).collect();
    let inputs = photos(&assets, &names);
    let c = detect(&cpu, &inputs, Placement::Cpu);
    let g = detect(&gpu, &inputs, Placement::Gpu);
    for ((name, want), (cf, gf)) in EXPECTED.iter().zip(c.iter().zip(&g)) {
        assert_eq!(gf.len(), *want, "{name}: gpu count");
        assert_eq!(cf.len(), gf.len(), "{name}: cpu vs gpu count");
        for (a, b) in cf.iter().zip(gf) {
            let iou = a.iou(b);
            assert!(iou >= 0.95, "{name}: IoU {iou} cpu {a:?} gpu {b:?}");
            assert!((a.score - b.score).abs() < 0.01, "{name}: {a:?} {b:?}");
        }
    }
}

fn value(r: &PhotoReport, check: &str) -> Option<f64> {
    r.checks
        .iter()
        .find(|c| c.name == check)
        .and_then(|c| c.value)
}

fn status(r: &PhotoReport, check: &str) -> CheckStatus {
    r.checks
        .iter()
        .find(|c| c.name == check)
        .map(|c| c.status)
        .unwrap_or_else(|| panic!("{} has no check {check}", r.name))
}

fn print(r: &PhotoReport) {
    let vals: Vec<String> = r
        .checks
        .iter()
        .map(|c| {
            format!(
                "{}={:.3?}{}",
                c.name,
                c.value,
                if c.status == CheckStatus::Fail {
                    "!"
                } else {
                    ""
                }
            )
        })
        .collect();
    eprintln!("{} {:?} {}", r.name, r.verdict, vals.join(" "));
}

/// A passport-style photo made from a real face: the face of `name` (its detected box,
/// widened a little) pasted on a plain light background of 35:45 shape, face centred and a
/// bit above the middle, face box ~ 50 % of the height. `busy` paints a striped background.
fn passport_photo(assets: &Path, name: &str, e: &Engine, busy: bool) -> Frame {
    let path = assets.join("photos").join(name);
    let det = e
        .detect_faces(
            &[Input::path(&path)],
            Some(Placement::Cpu),
            &DetectorConfig::default(),
        )
        .unwrap()
        .remove(0)
        .unwrap();
    let f = det.faces[0];
    let img = image::open(&path).unwrap().to_rgb8();
    let (pw, ph) = ((f.width * 1.1) as u32, (f.height * 1.1) as u32);
    let (cx, cy) = f.center();
    let x0 = (cx - pw as f32 / 2.0).max(0.0) as u32;
    let y0 = (cy - ph as f32 / 2.0).max(0.0) as u32;
    let face = image::imageops::crop_imm(&img, x0, y0, pw, ph).to_image();
    let h = (ph as f32 / 0.55) as u32;
    let w = h * 35 / 45;
    let mut canvas = image::RgbImage::from_fn(w, h, |x, y| {
        if busy && (x / 12 + y / 9) % 2 == 0 {
            image::Rgb([40, 90, 30])
        } else {
            let v = 215 - (y * 20 / h) as u8;
            image::Rgb([v, v, v + 4])
        }
    });
    let px = (w - face.width()) / 2;
    let py = (h as f32 * 0.42 - face.height() as f32 / 2.0) as u32;
    image::imageops::replace(&mut canvas, &face, px as i64, py as i64);
    Frame::new(w, h, canvas.into_raw()).unwrap()
}

fn degrade(f: &Frame, op: &str) -> Frame {
    let img = image::RgbImage::from_raw(f.width(), f.height(), f.as_bytes().to_vec()).unwrap();
    let out = match op {
        "blur" => image::imageops::blur(&img, 2.5),
        "dark" => image::imageops::colorops::brighten(&img, -110),
        "gray" => image::DynamicImage::ImageLuma8(image::imageops::grayscale(&img)).to_rgb8(),
        _ => img,
    };
    Frame::new(f.width(), f.height(), out.into_raw()).unwrap()
}

#[test]
fn verification_accepts_portraits_and_rejects_degraded_ones() {
    let Some(assets) = common::assets_or_skip("verification_accepts_portraits") else {
        return;
    };
    let e = engine_with_model(&assets, common::cpu_engine());
    let good = passport_photo(&assets, "obama.jpg", &e, false);
    let inputs = vec![
        Input::frame("good", good.clone()),
        Input::frame("busy", passport_photo(&assets, "obama.jpg", &e, true)),
        Input::frame("blur", degrade(&good, "blur")),
        Input::frame("dark", degrade(&good, "dark")),
        Input::frame("gray", degrade(&good, "gray")),
    ];
    let opts = VerifyOptions::new(Profile::passport()).placement(Placement::Cpu);
    let out = e.verify(&opts, &inputs).unwrap();
    for r in &out.reports {
        print(r);
    }
    let [g, busy, blur, dark, gray] = &out.reports[..] else {
        panic!("5 reports")
    };
    assert_eq!(g.verdict, Verdict::Accepted, "{:?}", g.failed);
    assert_eq!(g.faces.len(), 1);
    assert_eq!(busy.verdict, Verdict::Rejected);
    assert_eq!(status(busy, "background_uniformity"), CheckStatus::Fail);
    assert_eq!(blur.verdict, Verdict::Rejected);
    assert_eq!(status(blur, "face_sharpness"), CheckStatus::Fail);
    assert!(value(blur, "face_sharpness") < value(g, "face_sharpness"));
    assert_eq!(dark.verdict, Verdict::Rejected);
    // underexposed: an exposure check (clipped shadows or mean brightness) fails
    assert!(
        status(dark, "shadows") == CheckStatus::Fail
            || status(dark, "brightness") == CheckStatus::Fail
    );
    assert!(value(dark, "brightness") < value(g, "brightness"));
    assert_eq!(gray.verdict, Verdict::Rejected);
    assert_eq!(status(gray, "colourfulness"), CheckStatus::Fail);
    assert_eq!(out.summary.accepted, 1);
    assert_eq!(out.summary.rejected, 4);
}

#[test]
fn group_photos_and_no_face_photos_are_rejected_for_the_right_reason() {
    let Some(assets) = common::assets_or_skip("group_photos_are_rejected") else {
        return;
    };
    let e = engine_with_model(&assets, common::cpu_engine());
    let mut inputs = photos(&assets, &["sample1.jpg", "coffee.png", "obama.jpg"]);
    inputs.push(Input::bytes("broken.jpg", vec![0xFF, 0xD8, 0xFF, 0x00]));
    let opts = VerifyOptions::new(Profile::passport()).placement(Placement::Cpu);
    let out = e.verify(&opts, &inputs).unwrap();
    for r in &out.reports {
        print(r);
    }
    let r = &out.reports;
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].verdict, Verdict::Rejected);
    assert_eq!(status(&r[0], "faces"), CheckStatus::Fail);
    assert_eq!(value(&r[0], "faces"), Some(3.0));
    // face-dependent checks are skipped, not failed, without exactly one face
    assert_eq!(status(&r[0], "face_height"), CheckStatus::Skipped);
    assert_eq!(status(&r[1], "faces"), CheckStatus::Fail);
    assert_eq!(value(&r[2], "faces"), Some(1.0));
    assert_eq!(r[3].verdict, Verdict::Error);
    assert!(r[3].error.is_some());
    // the report is plain JSON and round-trips
    let j = serde_json::to_string(&out).unwrap();
    let back: veridoc::verify::VerifyOutput = serde_json::from_str(&j).unwrap();
    assert_eq!(back.reports, out.reports);
    assert!(r[2].warnings.iter().any(|w| w.contains("shrink-on-load")) || r[2].width < 1920);
}

#[test]
fn results_are_cached_by_content_and_profile() {
    let Some(assets) = common::assets_or_skip("results_are_cached") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::builder()
        .cpu_threads(2)
        .device_policy(veridoc::DevicePolicy::Cpu)
        .result_cache(veridoc::cache::CacheConfig::memory(64 << 20).disk(dir.path()))
        .build()
        .unwrap();
    let e = engine_with_model(&assets, e);
    let inputs = photos(&assets, &["obama2.jpg"]);
    let opts = VerifyOptions::new(Profile::passport());
    let first = e.verify(&opts, &inputs).unwrap();
    let second = e.verify(&opts, &inputs).unwrap();
    assert!(!first.reports[0].cached);
    assert!(second.reports[0].cached);
    assert_eq!(second.summary.cache_hits, 1);
    let mut a = first.reports[0].clone();
    a.cached = true;
    assert_eq!(a, second.reports[0]);
    // another profile is another key
    let mut other = Profile::passport();
    other.name = "other".into();
    let third = e.verify(&VerifyOptions::new(other), &inputs).unwrap();
    assert!(!third.reports[0].cached);
}
