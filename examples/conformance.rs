//! Measures verification against the labelled conformance corpus (`scripts/make-corpus.sh`
//! builds it from the fetched portraits): false rejects of compliant photos, false accepts
//! per defect class (and whether each rejection names the right check), the accuracy of
//! the geometry against the corpus's construction truth, and the face search's recall on
//! the small-face set.
//!
//! ```text
//! cargo run --release --example conformance -- [--corpus fixtures/corpus] [--device cpu|gpu]
//!     [--markdown FILE] [--limit N]
//! ```
//! Prints Markdown tables (the ones in docs/verification.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::Value;
use veridoc::detect::DetectorConfig;
use veridoc::verify::{CheckStatus, PhotoReport, Profile, Verdict, VerifyOptions};
use veridoc::{DevicePolicy, Engine, Input, Placement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Verification error rates on the conformance corpus (veridoc)")]
struct Args {
    /// The corpus (labels.json, recall.json and the images).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Path: cpu or gpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also write the tables to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Only the first N labelled entries (and recall images).
    #[arg(long)]
    limit: Option<usize>,
    /// Print every entry's verdict and failed checks.
    #[arg(long)]
    verbose: bool,
    /// Head-pose reference (scripts/pose-reference.sh); default
    /// fixtures/reference/pose.json, skipped with a note when absent.
    #[arg(long)]
    pose: Option<PathBuf>,
}

fn fixtures() -> PathBuf {
    std::env::var_os("VERIDOC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn value(r: &PhotoReport, name: &str) -> Option<f64> {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.value)
}

#[derive(Default)]
struct Class {
    n: usize,
    accepted: usize,
    right_reason: usize,
    failed: BTreeMap<String, usize>,
}

fn run(a: Args) -> Result<String, String> {
    let dir = a
        .corpus
        .clone()
        .unwrap_or_else(|| fixtures().join("corpus"));
    let labels: Value = serde_json::from_slice(
        &std::fs::read(dir.join("labels.json"))
            .map_err(|e| format!("{}: {e} (run scripts/make-corpus.sh)", dir.display()))?,
    )
    .map_err(|e| e.to_string())?;
    let mut entries: Vec<&Value> = labels
        .as_array()
        .map(|v| v.iter().collect())
        .ok_or("labels.json: not a list")?;
    if let Some(n) = a.limit {
        entries.truncate(n);
    }
    let (policy, placement) = match a.device.as_str() {
        "gpu" => (DevicePolicy::Gpu, Placement::Gpu),
        _ => (DevicePolicy::Cpu, Placement::Cpu),
    };
    let engine = Engine::builder()
        .device_policy(policy)
        .build()
        .map_err(|e| e.to_string())?;
    engine.register_face_models(fixtures().join("models"));
    let verifier = engine
        .verifier(
            VerifyOptions::new(Profile::passport())
                .placement(placement)
                .use_cache(false)
                .complete_search(true),
        )
        .map_err(|e| e.to_string())?;
    let inputs: Vec<Input> = entries
        .iter()
        .map(|e| Input::path(dir.join(e["file"].as_str().unwrap_or(""))))
        .collect();
    let pose_path = a
        .pose
        .clone()
        .unwrap_or_else(|| fixtures().join("reference/pose.json"));
    let pose: Option<Value> = std::fs::read(&pose_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let t0 = Instant::now();
    let out = verifier.verify(&inputs);
    let wall = t0.elapsed();
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut geo: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut compliant_fail: BTreeMap<String, usize> = BTreeMap::new();
    let (mut acc_n, mut acc_ok) = (0usize, 0usize);
    for (e, r) in entries.iter().zip(&out.reports) {
        let class = e["class"].as_str().unwrap_or("?").to_string();
        let expect = e["expect"].as_str().unwrap_or("reject");
        let reasons: Vec<&str> = e["reasons"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let c = classes.entry(class.clone()).or_default();
        c.n += 1;
        let accepted = r.verdict == Verdict::Accepted;
        c.accepted += accepted as usize;
        for name in &r.failed {
            *c.failed.entry(name.clone()).or_default() += 1;
        }
        let right = r
            .checks
            .iter()
            .any(|ch| ch.status == CheckStatus::Fail && reasons.contains(&ch.name.as_str()));
        c.right_reason += right as usize;
        if expect == "accept" {
            acc_n += 1;
            acc_ok += accepted as usize;
            for name in &r.failed {
                *compliant_fail.entry(name.clone()).or_default() += 1;
            }
        }
        if a.verbose {
            println!(
                "{:<40} {:<8} expect {:<6} {:?} {}",
                e["file"].as_str().unwrap_or(""),
                format!("{:?}", r.verdict),
                expect,
                r.failed,
                r.error.as_ref().map_or("", |e| e.message.as_str())
            );
        }
        // yaw against the face-mesh reference, every photo with a subject (its yaw is
        // positive with the nose towards the image's left: the opposite of ours)
        if let (Some(p), Some(y)) = (&pose, value(r, "yaw")) {
            let reference = &p["photos"][e["file"].as_str().unwrap_or("")]["yaw_deg"];
            if let Some(h) = reference.as_f64() {
                geo.entry("yaw - face-mesh reference (all)")
                    .or_default()
                    .push(y + h);
            }
        }
        // geometry against the construction truth (photos without a cut-off head)
        let t = &e["truth"];
        if r.subject.is_some() && class != "low_res" && class != "crop_head" {
            let h = f(&t["height"]);
            let mut push = |k: &'static str, v: Option<f64>, truth: f64| {
                if let Some(v) = v {
                    if truth.is_finite() {
                        geo.entry(k).or_default().push(v - truth);
                    }
                }
            };
            push(
                "head_height",
                value(r, "head_height"),
                f(&t["head_height_ratio"]),
            );
            push(
                "eye_line",
                value(r, "eye_line"),
                f(&t["eye_line_from_bottom"]),
            );
            push(
                "eye_center_x",
                value(r, "eye_center_x"),
                f(&t["eye_center_x"]),
            );
            push("roll", value(r, "roll"), f(&t["roll_deg"]));
            push(
                "inter_eye_distance",
                value(r, "inter_eye_distance"),
                f(&t["inter_eye_px"]),
            );
            if let Some(s) = &r.subject {
                push(
                    "crown_y / height",
                    Some(s.crown.y as f64 / h),
                    f(&t["crown_y"]) / h,
                );
                push(
                    "chin_y / height",
                    Some(s.chin.y as f64 / h),
                    f(&t["chin_y"]) / h,
                );
            }
            if expect == "accept" {
                for k in ["yaw", "pitch"] {
                    push(
                        if k == "yaw" {
                            "yaw (compliant)"
                        } else {
                            "pitch (compliant)"
                        },
                        value(r, k),
                        0.0,
                    );
                }
            }
        }
    }
    let mut md = String::new();
    let pct = |a: usize, n: usize| {
        if n == 0 {
            0.0
        } else {
            100.0 * a as f64 / n as f64
        }
    };
    md += &format!(
        "{} photos verified on the {} path in {:.1} s ({:.1} photos/s).\n\n",
        entries.len(),
        a.device,
        wall.as_secs_f64(),
        entries.len() as f64 / wall.as_secs_f64().max(1e-9)
    );
    md += "| class | photos | expected | accepted | rejected | rejected for the right reason | checks failed (count) |\n|---|---:|---|---:|---:|---:|---|\n";
    for (name, c) in &classes {
        let expect = if name == "compliant" || name == "roll_5" {
            "accept"
        } else {
            "reject"
        };
        let failed: Vec<String> = c.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
        md += &format!(
            "| {name} | {} | {expect} | {} ({:.0} %) | {} ({:.0} %) | {} | {} |\n",
            c.n,
            c.accepted,
            pct(c.accepted, c.n),
            c.n - c.accepted,
            pct(c.n - c.accepted, c.n),
            if expect == "accept" {
                "-".to_string()
            } else {
                format!("{} ({:.0} %)", c.right_reason, pct(c.right_reason, c.n))
            },
            failed.join(", ")
        );
    }
    md +=
        &format!(
        "\nCompliant photos accepted: {acc_ok} of {acc_n} ({:.1} %); false rejects by check: {}.\n",
        pct(acc_ok, acc_n),
        if compliant_fail.is_empty() {
            "none".to_string()
        } else {
            compliant_fail.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        }
    );
    if pose.is_none() {
        md += &format!(
            "\n(no head-pose reference at {}: scripts/pose-reference.sh)\n",
            pose_path.display()
        );
    }
    md += "\n| measure (engine - construction truth) | n | mean | median abs | p95 abs | max abs |\n|---|---:|---:|---:|---:|---:|\n";
    for (k, v) in &geo {
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n.max(1) as f64;
        let mut abs: Vec<f64> = v.iter().map(|x| x.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let med = abs.get(n / 2).copied().unwrap_or(0.0);
        let p95 = abs
            .get((n * 95 / 100).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let max = abs.last().copied().unwrap_or(0.0);
        md += &format!("| {k} | {n} | {mean:+.4} | {med:.4} | {p95:.4} | {max:.4} |\n");
    }
    md += &recall(&engine, &dir, placement, a.limit)?;
    Ok(md)
}

/// Recall of the face search on the small-face set: a labelled face counts as found when a
/// detected box overlaps it with IoU >= 0.3 (boxes of different passes differ in size) or
/// contains its centre.
fn recall(
    engine: &Engine,
    dir: &std::path::Path,
    placement: Placement,
    limit: Option<usize>,
) -> Result<String, String> {
    let Ok(raw) = std::fs::read(dir.join("recall.json")) else {
        return Ok("\n(no recall.json)\n".into());
    };
    let labels: Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
    let mut items: Vec<&Value> = labels
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    if let Some(n) = limit {
        items.truncate(n.min(items.len()));
    }
    let inputs: Vec<Input> = items
        .iter()
        .map(|e| Input::path(dir.join(e["file"].as_str().unwrap_or(""))))
        .collect();
    let t0 = Instant::now();
    let found = engine
        .detect_faces(&inputs, Some(placement), &DetectorConfig::default())
        .map_err(|e| e.to_string())?;
    let wall = t0.elapsed();
    let mut md = String::from(
        "\n| recall image | size | faces | found | false boxes |\n|---|---|---:|---:|---:|\n",
    );
    let mut buckets: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    let (mut tot, mut hit, mut fp) = (0, 0, 0);
    let (mut need, mut need_hit) = (0usize, 0usize);
    for (e, d) in items.iter().zip(found) {
        let d = d.map_err(|e| e.to_string())?;
        let truth: Vec<[f32; 4]> = e["faces"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|b| {
                        let g = |i: usize| b[i].as_f64().unwrap_or(0.0) as f32;
                        [g(0), g(1), g(2), g(3)]
                    })
                    .collect()
            })
            .unwrap_or_default();
        let long = d.size.0.max(d.size.1) as f32;
        let mut used = vec![false; d.faces.len()];
        let mut n_hit = 0;
        for t in &truth {
            let tf = veridoc::detect::Face {
                x: t[0],
                y: t[1],
                width: t[2],
                height: t[3],
                score: 1.0,
            };
            let (cx, cy) = tf.center();
            let m = d.faces.iter().enumerate().find(|(i, f)| {
                !used[*i]
                    && (f.iou(&tf) >= 0.3
                        || (cx >= f.x && cx <= f.x + f.width && cy >= f.y && cy <= f.y + f.height))
            });
            // the issue's size classes: height in px and as a share of the longer side
            let share = (t[3] / long * 100.0).round() as u32;
            let b = buckets.entry(share.min(20)).or_default();
            b.0 += 1;
            if let Some((i, _)) = m {
                used[i] = true;
                n_hit += 1;
                b.1 += 1;
            }
            if t[3] >= 40f32.max(0.03 * long) {
                need += 1;
                need_hit += m.is_some() as usize;
            }
        }
        let n_fp = used.iter().filter(|u| !**u).count();
        tot += truth.len();
        hit += n_hit;
        fp += n_fp;
        md += &format!(
            "| {} | {}x{} | {} | {} | {} |\n",
            e["file"].as_str().unwrap_or(""),
            d.size.0,
            d.size.1,
            truth.len(),
            n_hit,
            n_fp
        );
    }
    md += &format!(
        "\nFaces of at least 40 px and 3 % of the longer side: {need_hit} of {need} found ({:.1} %). All faces: {hit} of {tot} ({:.1} %), {fp} false boxes, {:.1} s for {} images.\n\n| face height, % of the longer side | faces | found |\n|---:|---:|---:|\n",
        100.0 * need_hit as f64 / need.max(1) as f64,
        100.0 * hit as f64 / tot.max(1) as f64,
        wall.as_secs_f64(),
        items.len()
    );
    for (k, (n, h)) in buckets {
        md += &format!("| {k} | {n} | {h} |\n");
    }
    Ok(md)
}

fn main() -> ExitCode {
    let a = Args::parse();
    let md_path = a.markdown.clone();
    match run(a) {
        Ok(md) => {
            println!("{md}");
            if let Some(p) = md_path {
                if let Err(e) = std::fs::write(&p, &md) {
                    eprintln!("conformance: {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::FAILURE
        }
    }
}
