//! Verification against the labelled conformance corpus (`scripts/make-corpus.sh`, run by
//! setup, builds it from the fetched portraits; its labels come from construction, not
//! from the engine): compliant photos are accepted, each defect class is rejected for the
//! right reason, the geometry matches the construction truth, and the face search finds
//! the recall set's faces. The full tables (`examples/conformance.rs`) are in
//! docs/verification.md; this test asserts on a subset per class.

mod common;
mod schema;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use veridoc::detect::{DetectorConfig, Face};
use veridoc::verify::{CheckStatus, Profile, Verdict, VerifyOptions};
use veridoc::{Input, Placement};

/// Entries per class the test verifies (the corpus has ~14 per class).
const PER_CLASS: usize = 7;

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
}

#[test]
fn compliant_photos_pass_and_defects_fail_for_the_right_reason() {
    let test = "compliant_photos_pass_and_defects_fail_for_the_right_reason";
    let Some(dir) = common::corpus_or_skip(test) else {
        return;
    };
    let labels = json(&dir.join("labels.json"));
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    let entries: Vec<&Value> = labels
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| {
            let n = per
                .entry(e["class"].as_str().unwrap_or("").to_string())
                .or_default();
            *n += 1;
            *n <= PER_CLASS
        })
        .collect();
    let e = common::cpu_engine();
    e.register_face_models(dir.parent().expect("fixtures").join("models"));
    let v = e
        .verifier(
            VerifyOptions::new(Profile::passport())
                .placement(Placement::Cpu)
                .use_cache(false)
                .complete_search(true),
        )
        .expect("verifier");
    let inputs: Vec<Input> = entries
        .iter()
        .map(|x| Input::path(dir.join(x["file"].as_str().unwrap_or(""))))
        .collect();
    let out = v.verify(&inputs);
    schema::assert_schema(&out);
    let pose_path = dir.parent().expect("fixtures").join("reference/pose.json");
    let pose: Option<Value> = if pose_path.exists() {
        Some(json(&pose_path))
    } else if std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!(
            "{test}: {} missing and VERIDOC_REQUIRE_ASSETS=1 (run scripts/pose-reference.sh)",
            pose_path.display()
        );
    } else {
        eprintln!(
            "SKIPPED the yaw part of {test}: no {} (run scripts/pose-reference.sh)",
            pose_path.display()
        );
        None
    };
    // |our yaw - the face mesh's| (its sign is the opposite of ours)
    let mut yaw_err: Vec<f64> = Vec::new();
    // (verified, accepted or rejected for the right reason, false rejects by check)
    let mut classes: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut compliant_failures: BTreeMap<String, usize> = BTreeMap::new();
    let (mut geo_n, mut head_err, mut eye_err, mut roll_err) = (0usize, 0f64, 0f64, 0f64);
    for (x, r) in entries.iter().zip(&out.reports) {
        assert!(r.error.is_none(), "{}: {:?}", r.name, r.error);
        let class = x["class"].as_str().unwrap_or("");
        let reasons: Vec<&str> = x["reasons"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let good = if x["expect"] == "accept" {
            for f in &r.failed {
                *compliant_failures.entry(f.clone()).or_default() += 1;
            }
            r.verdict == Verdict::Accepted
        } else {
            r.verdict == Verdict::Rejected
                && r.checks
                    .iter()
                    .any(|c| c.status == CheckStatus::Fail && reasons.contains(&c.name.as_str()))
        };
        let c = classes.entry(class).or_default();
        c.0 += 1;
        c.1 += good as usize;
        if !good {
            eprintln!("{}: {class} {:?} failed {:?}", r.name, r.verdict, r.failed);
        }
        // geometry against the construction truth (a head inside the frame)
        let t = &x["truth"];
        let value = |n: &str| r.checks.iter().find(|c| c.name == n).and_then(|c| c.value);
        if let (Some(p), Some(y)) = (&pose, value("yaw")) {
            if let Some(h) = p["photos"][x["file"].as_str().unwrap_or("")]["yaw_deg"].as_f64() {
                yaw_err.push((y + h).abs());
            }
        }
        if class != "crop_head" && class != "low_res" && r.subject.is_some() {
            if let (Some(hh), Some(el), Some(ro)) =
                (value("head_height"), value("eye_line"), value("roll"))
            {
                geo_n += 1;
                head_err += (hh - t["head_height_ratio"].as_f64().unwrap_or(0.0)).abs();
                eye_err += (el - t["eye_line_from_bottom"].as_f64().unwrap_or(0.0)).abs();
                roll_err += (ro - t["roll_deg"].as_f64().unwrap_or(0.0)).abs();
            }
        }
    }
    for (class, (n, good)) in &classes {
        eprintln!("{class}: {good} of {n}");
    }
    eprintln!("false rejects of compliant photos by check: {compliant_failures:?}");
    let (n, ok) = classes
        .iter()
        .filter(|(k, _)| **k == "compliant" || **k == "roll_5")
        .fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1));
    // Measured on the whole corpus: 21 of 21 (docs/verification.md).
    assert!(
        ok * 100 >= n * 95,
        "compliant accepted {ok} of {n}: {compliant_failures:?}"
    );
    for (class, (n, good)) in &classes {
        if *class == "compliant" || *class == "roll_5" {
            continue;
        }
        // every defect class: rejected for one of its own reasons (measured 93-100 % on
        // the whole corpus, per class; one miss in this subset's 7 is 86 %)
        assert!(good * 100 >= n * 80, "{class}: {good} of {n}");
    }
    let total: usize = classes
        .iter()
        .filter(|(k, _)| !k.starts_with("compliant") && **k != "roll_5")
        .map(|(_, v)| v.0)
        .sum();
    let right: usize = classes
        .iter()
        .filter(|(k, _)| !k.starts_with("compliant") && **k != "roll_5")
        .map(|(_, v)| v.1)
        .sum();
    assert!(
        right * 100 >= total * 90,
        "defects rejected for the right reason: {right} of {total}"
    );
    let n = geo_n.max(1) as f64;
    eprintln!(
        "geometry over {geo_n} photos: mean |error| head height {:.4}, eye line {:.4}, roll {:.2} deg",
        head_err / n,
        eye_err / n,
        roll_err / n
    );
    assert!(geo_n >= 50);
    if pose.is_some() {
        yaw_err.sort_by(f64::total_cmp);
        let n = yaw_err.len();
        let mean = yaw_err.iter().sum::<f64>() / n.max(1) as f64;
        let p95 = yaw_err[(n * 95 / 100).min(n - 1)];
        eprintln!("yaw against the face mesh over {n} photos: mean {mean:.2}, p95 {p95:.2} deg");
        // measured on the whole corpus: mean 0.87 (left-out sources), p95 2.4
        assert!(
            n >= 50 && mean < 1.5 && p95 < 4.0,
            "yaw error mean {mean} p95 {p95} over {n}"
        );
    }
    assert!(head_err / n < 0.03 && eye_err / n < 0.01 && roll_err / n < 1.0);
}

#[test]
fn the_face_search_finds_small_faces_and_the_group_photo() {
    let test = "the_face_search_finds_small_faces_and_the_group_photo";
    let Some(dir) = common::corpus_or_skip(test) else {
        return;
    };
    let labels = json(&dir.join("recall.json"));
    let items: Vec<&Value> = labels.as_array().expect("list").iter().collect();
    let e = common::cpu_engine();
    e.register_face_models(dir.parent().expect("fixtures").join("models"));
    let inputs: Vec<Input> = items
        .iter()
        .map(|x| Input::path(dir.join(x["file"].as_str().unwrap_or(""))))
        .collect();
    let found = e
        .detect_faces(&inputs, Some(Placement::Cpu), &DetectorConfig::default())
        .expect("model");
    let (mut need, mut hit, mut fp) = (0usize, 0usize, 0usize);
    for (x, d) in items.iter().zip(found) {
        let d = d.expect("photo");
        let long = d.size.0.max(d.size.1) as f32;
        let mut used = vec![false; d.faces.len()];
        let truth = x["faces"].as_array().expect("faces");
        let mut n_hit = 0;
        for b in truth {
            let g = |i: usize| b[i].as_f64().unwrap_or(0.0) as f32;
            let t = Face {
                x: g(0),
                y: g(1),
                width: g(2),
                height: g(3),
                score: 1.0,
            };
            let m = (0..d.faces.len()).find(|&i| !used[i] && d.faces[i].iou(&t) >= 0.3);
            if let Some(i) = m {
                used[i] = true;
                n_hit += 1;
            }
            // the verification issue's population: >= 40 px and >= 3 % of the longer side
            if t.height >= 40f32.max(0.03 * long) {
                need += 1;
                hit += m.is_some() as usize;
            }
        }
        fp += used.iter().filter(|u| !**u).count();
        if x["file"].as_str().unwrap_or("").contains("group") {
            eprintln!("group photo: {n_hit} of {} faces", truth.len());
            assert!(n_hit >= 25, "group photo: {n_hit} of {}", truth.len());
        }
    }
    eprintln!("faces of >= 40 px and >= 3 %: {hit} of {need}; {fp} false boxes");
    assert!(need >= 40);
    assert!(hit * 100 >= need * 95, "{hit} of {need}");
    assert!(fp <= 2, "{fp} false boxes");
}
