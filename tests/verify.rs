//! Face detection and photo verification on the real asset photos (fetched by
//! `scripts/fetch-assets.sh`): the expected detection counts of `shared/ASSETS.md`,
//! CPU/GPU agreement box for box, and quality checks that accept good portraits and reject
//! degraded copies of them.

mod common;
mod schema;

use std::path::Path;

use veridoc::detect::{DetectorConfig, Face};
use veridoc::verify::{CheckStatus, PhotoReport, Profile, Verdict, VerifyOptions};
use veridoc::{Engine, Input, Placement};

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
    assert_eq!(
        e.register_face_models(assets.join("models")).len(),
        3,
        "face-api's three models"
    );
    e
}

fn photos(assets: &Path, names: &[&str]) -> Vec<Input> {
    names
        .iter()
        .map(|n| Input::path(assets.join("photos").join(n)))
        .collect()
}

fn detect_with(e: &Engine, inputs: &[Input], p: Placement, cfg: &DetectorConfig) -> Vec<Vec<Face>> {
    e.detect_faces(inputs, Some(p), cfg)
        .expect("model")
        .into_iter()
        .map(|r| r.expect("photo").faces)
        .collect()
}

/// face-api's own search: the 416x416 letterbox alone.
fn letterbox_only() -> DetectorConfig {
    let mut cfg = DetectorConfig::default();
    cfg.search.portrait = false;
    cfg.search.fine = false;
    cfg
}

#[test]
fn cpu_detections_match_the_expected_counts() {
    let Some(assets) = common::assets_or_skip("cpu_detections_match_the_expected_counts") else {
        return;
    };
    let e = engine_with_model(&assets, common::cpu_engine());
    let names: Vec<&str> = EXPECTED.iter().map(|x| x.0).collect();
    let inputs = photos(&assets, &names);
    let found = detect_with(&e, &inputs, Placement::Cpu, &letterbox_only());
    // the whole search (portrait and fine passes) adds no false box on these photos
    let all = detect_with(&e, &inputs, Placement::Cpu, &DetectorConfig::default());
    for (((name, want), faces), every) in EXPECTED.iter().zip(&found).zip(&all) {
        eprintln!(
            "{name}: {} faces {:?}; whole search {}",
            faces.len(),
            faces,
            every.len()
        );
        assert_eq!(faces.len(), *want, "{name}");
        assert!(every.len() >= *want, "{name}: the search lost a face");
        // by eye: sample2 has 3 faces, sample4 4, sample6 4 (face-api boxes one twice)
        let by_eye = match *name {
            "sample2.jpg" => 3,
            "sample4.jpg" => 4,
            "sample6.jpg" => 5,
            _ => *want,
        };
        assert!(every.len() <= by_eye, "{name}: {} boxes", every.len());
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
    let agree = |c: &[Vec<Face>], g: &[Vec<Face>], names: &[&str]| {
        for (name, (cf, gf)) in names.iter().zip(c.iter().zip(g)) {
            assert_eq!(cf.len(), gf.len(), "{name}: cpu vs gpu count");
            for (a, b) in cf.iter().zip(gf) {
                let iou = a.iou(b);
                assert!(iou >= 0.95, "{name}: IoU {iou} cpu {a:?} gpu {b:?}");
                assert!((a.score - b.score).abs() < 0.01, "{name}: {a:?} {b:?}");
            }
        }
    };
    let c = detect_with(&cpu, &inputs, Placement::Cpu, &letterbox_only());
    let g = detect_with(&gpu, &inputs, Placement::Gpu, &letterbox_only());
    for ((name, want), gf) in EXPECTED.iter().zip(&g) {
        assert_eq!(gf.len(), *want, "{name}: gpu count");
    }
    agree(&c, &g, &names);
    // every pass of the search, batched on the GPU (small photos: lavapipe runs a
    // 416x416 pass in ~0.4-0.9 s)
    let small = ["astronaut.png", "chelsea.png"];
    let inputs = photos(&assets, &small);
    let c = detect_with(&cpu, &inputs, Placement::Cpu, &DetectorConfig::default());
    let g = detect_with(&gpu, &inputs, Placement::Gpu, &DetectorConfig::default());
    agree(&c, &g, &small);
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
    schema::assert_schema(&out);
    for r in &out.reports {
        print(r);
    }
    let r = &out.reports;
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].verdict, Verdict::Rejected);
    assert_eq!(status(&r[0], "faces"), CheckStatus::Fail);
    assert_eq!(value(&r[0], "faces"), Some(3.0));
    // three faces already fail: the search stopped early and says so
    assert!(!r[0].faces_complete);
    assert!(r[0].warnings.iter().any(|w| w.contains("lower bound")));
    // the largest face is still measured for the reviewer
    assert!(r[0].subject.is_some() && value(&r[0], "roll").is_some());
    assert_eq!(status(&r[1], "faces"), CheckStatus::Fail);
    assert_eq!(value(&r[1], "faces"), Some(0.0));
    // without a face, face checks are skipped with a reason, and never pass
    assert_eq!(status(&r[1], "head_height"), CheckStatus::Skipped);
    assert!(r[1]
        .checks
        .iter()
        .any(|c| c.name == "head_height" && !c.message.is_empty()));
    assert_eq!(value(&r[2], "faces"), Some(1.0));
    assert_eq!(r[3].verdict, Verdict::Error);
    assert!(r[3].error.is_some());
    // the report is plain JSON and round-trips
    let j = serde_json::to_string(&out).unwrap();
    let back: veridoc::verify::VerifyOutput = serde_json::from_str(&j).unwrap();
    assert_eq!(back.reports, out.reports);
    assert!(r[2].warnings.iter().any(|w| w.contains("shrink-on-load")) || r[2].width < 1920);
    // obama.jpg smiles broadly with open lips: rejected for its expression and mouth
    assert_eq!(r[2].verdict, Verdict::Rejected);
    assert_eq!(status(&r[2], "expression_neutral"), CheckStatus::Fail);
    assert_eq!(status(&r[2], "mouth_closed"), CheckStatus::Fail);
    for c in &r[2].checks {
        if c.status == CheckStatus::Fail {
            assert!(!c.message.is_empty() && !c.clause.is_empty(), "{c:?}");
        }
    }
    let s = r[2].subject.as_ref().expect("subject");
    assert_eq!(s.landmarks.points.len(), 68);
    assert!(s.inter_eye > 50.0, "{s:?}");
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
