//! The benchmark suite end to end on tiny generated images: every suite runs, the report
//! round-trips, the outputs are written, a report compared with itself shows no regression,
//! and the learned calibration is loaded by a new engine. Nothing here asserts a speed.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::cell::Cell;

use veridoc::Engine;
use veridoc_bench::{
    self as bench, Case, Outcome, RunConfig, Suite, SuiteConfig, Verdict, Workload,
};

fn tiny(dir: &std::path::Path) -> SuiteConfig {
    let mut cfg = SuiteConfig::quick();
    cfg.threads = Some(2);
    cfg.gpu = false;
    cfg.run = RunConfig {
        warmup: 0,
        repeats: 2,
        ..RunConfig::default()
    };
    cfg.output = 32;
    cfg.distinct_images = 2;
    cfg.batch_sizes = vec![1, 2];
    cfg.batch_resolutions = vec![(64, 48)];
    cfg.sizes = vec![(64, 48), (96, 72)];
    cfg.size_batch = 2;
    cfg.latency_resolution = (64, 48);
    cfg.latency_repeats = 2;
    cfg.cold_repeats = 1;
    cfg.paths_batch = 2;
    cfg.paths_resolution = (64, 48);
    cfg.memory_concurrency = vec![1, 2];
    cfg.memory_iterations = 1;
    cfg.overhead_pairs = 1;
    cfg.calibration_file = Some(dir.join("scheduler-calibration.json"));
    cfg
}

#[test]
fn tiny_suite_on_the_cpu_writes_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(dir.path());
    let calls = Cell::new(0);
    let verify = Workload::new(
        Case {
            suite: "verify".into(),
            name: "fake verify b3".into(),
            path: "cpu".into(),
            batch: 3,
            concurrency: 1,
            ..Case::default()
        },
        || {
            calls.set(calls.get() + 1);
            Ok(Outcome {
                items: 3,
                stages: vec![("detect".into(), std::time::Duration::from_micros(50))],
                ..Outcome::default()
            })
        },
    );
    let mut lines = Vec::new();
    let report = bench::run_suites(&cfg, vec![verify], &mut |l| lines.push(l.to_string()))
        .expect("suite runs");
    assert_eq!(calls.get(), 2, "verify workload: no warm-up, 2 repeats");
    for suite in Suite::ALL {
        assert!(
            report.suite(suite.name()).count() > 0,
            "no measurement for {}: {lines:#?}",
            suite.name()
        );
    }
    for m in &report.measurements {
        assert_eq!(m.failed_items, 0, "{m:?}");
        assert!(
            m.throughput.median > 0.0 && m.latency_ms.n == m.runs,
            "{m:?}"
        );
    }
    let verify = report.suite("verify").next().unwrap();
    assert_eq!(verify.stages["detect"].n, 2);
    let mem = report.suite("memory").next().unwrap();
    assert!(
        mem.peak_host_reserved_bytes.is_some_and(|b| b > 0),
        "{mem:?}"
    );
    assert!(report
        .monitor_overhead
        .as_ref()
        .is_some_and(|o| o.pairs == 1));
    let rec = report.recommendations.as_ref().expect("recommendations");
    assert!(rec.batch_size >= 1 && rec.workers == 2, "{rec:?}");
    assert_eq!(report.fingerprint.engine_threads, 2);
    assert_eq!(report.fingerprint.adapter, "none");

    let out = dir.path().join("out");
    let files = bench::write_outputs(&report, &out).unwrap();
    for name in [
        "report.json",
        "summary.md",
        "throughput_vs_batch.svg",
        "throughput_vs_size.svg",
        "latency.svg",
        "recommendations.json",
    ] {
        assert!(files.contains(&out.join(name)), "{name} missing: {files:?}");
    }
    let text = std::fs::read_to_string(out.join("report.json")).unwrap();
    let back = bench::BenchReport::from_json(&text).unwrap();
    assert_eq!(back.measurements.len(), report.measurements.len());
    assert_eq!(back.fingerprint, report.fingerprint);
    let c = bench::compare(&report, &back);
    assert!(
        c.rows.iter().all(|r| r.verdict == Verdict::Unchanged),
        "{c:?}"
    );

    // The calibration the run learned is loaded by an engine on the same machine state.
    let engine = Engine::builder()
        .cpu_threads(2)
        .gpu(veridoc::gpu::GpuSelection::Disabled)
        .cache_dir(dir.path())
        .build()
        .unwrap();
    assert_eq!(
        engine.calibration_file(),
        Some(dir.path().join("scheduler-calibration.json"))
    );
    assert!(engine.scheduler().calibrated(), "calibration not loaded");
}

#[test]
fn tiny_suite_on_the_gpu() {
    let Some(_) = common::gpu_or_skip("tiny_suite_on_the_gpu") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(dir.path());
    cfg.gpu = true;
    cfg.run.repeats = 1;
    cfg.suites = vec![Suite::Batch, Suite::Paths];
    cfg.batch_sizes = vec![2];
    cfg.overhead_pairs = 0;
    let report = bench::run_suites(&cfg, Vec::new(), &mut |_| {}).expect("suite runs");
    let paths: Vec<&str> = report
        .suite("paths")
        .map(|m| m.case.path.as_str())
        .collect();
    assert_eq!(paths, ["cpu", "gpu", "auto", "split"]);
    let gpu = report
        .suite("paths")
        .find(|m| m.case.path == "gpu")
        .unwrap();
    assert_eq!(gpu.placement.as_deref(), Some("gpu"), "{gpu:?}");
    assert!(gpu.peak_gpu_bytes.is_some_and(|b| b > 0), "{gpu:?}");
    assert_ne!(report.fingerprint.adapter, "none");
    let rec = report.recommendations.unwrap();
    assert_eq!(rec.crossover.len(), 1, "{rec:?}");
}
