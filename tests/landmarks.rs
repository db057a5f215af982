//! face-api's 68-point landmark and expression networks, ported, against face-api itself
//! run under Node (`scripts/faceapi-reference.sh` writes the goldens at setup time):
//! the networks on identical inputs, then landmarks and expressions on the asset photos
//! through the engine's own crop preprocessing.

mod common;

use std::path::Path;

use serde_json::Value;
use veridoc::detect::Face;
use veridoc::landmarks::{FaceNetWeights, MEAN_RGB};
use veridoc::model::ModelSource;
use veridoc::verify::{Profile, VerifyOptions};
use veridoc::Placement;

fn model(assets: &Path, name: &str, outputs: usize) -> FaceNetWeights {
    let e = common::cpu_engine();
    e.models().register(
        name,
        ModelSource::TfjsFiles {
            manifest: assets.join(format!("models/{name}-weights_manifest.json")),
        },
    );
    FaceNetWeights::from_model(&e.models().get(name).expect("model"), outputs).expect("weights")
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// Raw outputs on the same 112x112 inputs: float32 rounding only (sums of up to 256
/// products through 16 layers; measured ~1e-6).
#[test]
fn networks_match_face_api_on_identical_inputs() {
    let Some(reference) = common::reference_or_skip("networks_match_face_api_on_identical_inputs")
    else {
        return;
    };
    let assets = reference.parent().expect("assets").to_path_buf();
    let lm = model(&assets, "face_landmark_68_model", 136);
    let ex = model(&assets, "face_expression_model", 7);
    let nets = json(&reference.join("nets.json"));
    let inputs = nets["inputs"].as_array().expect("inputs");
    assert!(inputs.len() >= 3);
    for inp in inputs {
        let name = inp["name"].as_str().unwrap_or("?");
        let raw = std::fs::read(reference.join(inp["file"].as_str().expect("file"))).expect("bin");
        let x: Vec<f32> = raw
            .chunks_exact(4)
            .enumerate()
            .map(|(i, b)| (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) - MEAN_RGB[i % 3]) / 255.0)
            .collect();
        let got = lm.forward_cpu(&x).expect("landmarks");
        let want = floats(&inp["landmark68"]["raw"]);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: landmark outputs max |diff| {d:e}");
        assert_eq!(got.len(), 136);
        assert!(d < 1e-4, "{name}: {d}");
        let got = ex.forward_cpu(&x).expect("expression");
        let want = floats(&inp["expression"]["logits"]);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: expression logits max |diff| {d:e}");
        assert!(d < 1e-3, "{name}: {d}");
    }
}

struct Agreement {
    mean_px: f32,
    max_px: f32,
    expressions_agree: usize,
    faces: usize,
    /// Every face's landmarks (photo pixels) and expression probabilities.
    points: Vec<Vec<(f32, f32)>>,
    expressions: Vec<Vec<f32>>,
}

/// Landmarks of every face face-api found, from face-api's own boxes, through the engine's
/// crop preprocessing (antialiased bilinear where face-api uses TF's point-sampled
/// bilinear), compared at the model's input scale (112 px for the crop's longer side).
fn agreement(placement: Placement) -> Option<Agreement> {
    let reference = common::reference_or_skip("landmarks_agree_with_face_api")?;
    let assets = reference.parent().expect("assets").to_path_buf();
    let e = if placement == Placement::Gpu {
        common::gpu_or_skip("landmarks_agree_with_face_api_on_the_gpu")?
    } else {
        common::cpu_engine()
    };
    e.register_face_models(assets.join("models"));
    let v = e
        .verifier(VerifyOptions::new(Profile::passport()).placement(placement))
        .expect("verifier");
    let golden = json(&reference.join("faceapi.json"));
    let (mut sum, mut n, mut max) = (0f32, 0usize, 0f32);
    let (mut agree, mut faces) = (0usize, 0usize);
    let (mut points, mut expressions) = (Vec::new(), Vec::new());
    for (photo, g) in golden["photos"].as_object().expect("photos") {
        let list = g["faces"].as_array().expect("faces");
        if list.is_empty() {
            continue;
        }
        let frame = common::decode_full(&assets.join("photos").join(photo));
        let boxes: Vec<Face> = list
            .iter()
            .map(|f| Face {
                x: f["box"]["x"].as_f64().unwrap_or(0.0) as f32,
                y: f["box"]["y"].as_f64().unwrap_or(0.0) as f32,
                width: f["box"]["width"].as_f64().unwrap_or(0.0) as f32,
                height: f["box"]["height"].as_f64().unwrap_or(0.0) as f32,
                score: f["score"].as_f64().unwrap_or(0.0) as f32,
            })
            .collect();
        let ours = v.measure_faces(&frame, &boxes).expect("landmarks");
        for (f, (lm, ex)) in list.iter().zip(&ours) {
            let crop = &f["landmark_crop"];
            let (cx, cy) = (
                crop["x"].as_f64().unwrap_or(0.0) as f32,
                crop["y"].as_f64().unwrap_or(0.0) as f32,
            );
            let (cw, ch) = (
                crop["width"].as_f64().unwrap_or(1.0) as f32,
                crop["height"].as_f64().unwrap_or(1.0) as f32,
            );
            let to_model = 112.0 / cw.max(ch);
            let rel = f["landmarks_crop_relative"].as_array().expect("relative");
            let mut face_sum = 0f32;
            for (p, r) in lm.points.iter().zip(rel) {
                // face-api's positions relative to its crop, placed at the crop's origin
                let rx = cx + r[0].as_f64().unwrap_or(0.0) as f32 * cw;
                let ry = cy + r[1].as_f64().unwrap_or(0.0) as f32 * ch;
                let d = ((p.x - rx).powi(2) + (p.y - ry).powi(2)).sqrt() * to_model;
                face_sum += d;
                max = max.max(d);
                n += 1;
            }
            sum += face_sum;
            eprintln!(
                "{photo}: mean landmark distance {:.2} px at 112",
                face_sum / 68.0
            );
            faces += 1;
            let want = f["expression"].as_str().unwrap_or("");
            let got = ex.as_ref().map(|x| x.dominant()).unwrap_or("-");
            eprintln!("{photo}: expression {got} (face-api {want})");
            agree += (got == want) as usize;
            points.push(lm.points.iter().map(|p| (p.x, p.y)).collect());
            expressions.push(
                ex.as_ref()
                    .map(|x| x.probabilities.clone())
                    .unwrap_or_default(),
            );
        }
    }
    Some(Agreement {
        mean_px: sum / n.max(1) as f32,
        max_px: max,
        expressions_agree: agree,
        faces,
        points,
        expressions,
    })
}

#[test]
fn landmarks_agree_with_face_api() {
    let Some(a) = agreement(Placement::Cpu) else {
        return;
    };
    eprintln!(
        "cpu: {} faces, landmarks mean {:.2} px, max {:.2} px at 112; expression agrees on {}",
        a.faces, a.mean_px, a.max_px, a.expressions_agree
    );
    assert!(a.faces >= 20);
    assert!(a.mean_px <= 1.0, "mean {}", a.mean_px);
    assert!(
        a.expressions_agree * 10 >= a.faces * 9,
        "{} of {}",
        a.expressions_agree,
        a.faces
    );
}

#[test]
fn gpu_landmarks_and_expressions_agree_with_the_cpu() {
    let Some(g) = agreement(Placement::Gpu) else {
        return;
    };
    let Some(c) = agreement(Placement::Cpu) else {
        return;
    };
    assert_eq!(g.faces, c.faces);
    let mut worst = 0f32;
    for (a, b) in g.points.iter().zip(&c.points) {
        for (p, q) in a.iter().zip(b) {
            worst = worst.max(((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt());
        }
    }
    let mut worst_p = 0f32;
    for (a, b) in g.expressions.iter().zip(&c.expressions) {
        assert_eq!(a.len(), 7);
        for (p, q) in a.iter().zip(b) {
            worst_p = worst_p.max((p - q).abs());
        }
    }
    eprintln!("gpu vs cpu: landmarks within {worst:.4} px (photo), expressions within {worst_p:e}");
    // same crops (the preprocessing paths agree within a level), networks within 1e-4
    assert!(worst < 0.1, "{worst}");
    assert!(worst_p < 1e-3, "{worst_p}");
    assert!(g.mean_px <= 1.0);
}
