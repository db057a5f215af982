//! veridoc-bench: the benchmark suite and the performance monitor of the veridoc engine, in a
//! crate of their own (the engine never imports them), and the `bench` binary around them.
//!
//! The benchmark suite as a library: workloads, a runner (warm-up, repeats, median and
//! spread, latency percentiles, peak memory from the [`crate::monitor`]), suites over
//! generated images, a versioned JSON report with a machine fingerprint, a Markdown
//! summary, SVG charts, regression comparison and recommendations (a calibration file the
//! scheduler loads). The `bench` binary (`src/main.rs`) is a command line around it.
//!
//! ```text
//! SuiteConfig::quick() | ::full()      which suites, sizes, repeats
//!   run_suites(&cfg, extra_workloads)  -> BenchReport { schema_version, fingerprint,
//!                                         measurements, overhead, recommendations }
//!   write_outputs(&report, dir)        report.json, summary.md, *.svg, calibration files
//!   compare(&old, &new)                regressions larger than the measured noise
//! ```
//!
//! One measurement = one [`Workload`] run `warmup` times untimed, then `repeats` times
//! timed; each timed run gives one throughput (items/s) and one latency (ms per call)
//! sample, summarised by [`Summary`] (median, MAD-based spread, p50/p90/p99).

mod compare;
pub mod gpucheck;
pub mod monitor;
pub mod noise;
mod output;
mod recommend;
mod suites;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use compare::{compare, Comparison, ComparisonRow, Verdict, NOISE_FLOOR, NOISE_SIGMAS};
pub use output::{box_plot_svg, line_chart_svg, to_markdown, write_outputs, Series};
pub use recommend::{
    recommend, Crossover, Recommendations, BATCH_EFFICIENCY, BUDGET_HEADROOM, MIN_HOST_BUDGET,
    WIN_MARGIN,
};
pub use suites::{run_suites, PathKind, Suite, SuiteConfig};

pub use crate::monitor::Summary;
use crate::monitor::{metric, Monitor, MonitorConfig};
use veridoc::{BatchReport, Engine};
use veridoc::{Error, Result};

/// Version of the JSON report schema. Bump on any incompatible change (renamed or removed
/// field, changed unit); [`compare`] refuses reports of another major version.
pub const SCHEMA_VERSION: u32 = 1;

/// What one call of a workload did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Items processed.
    pub items: usize,
    /// Of which failed.
    pub failed: usize,
    /// The engine's report, when the call was one batch (its stage times are recorded).
    pub report: Option<BatchReport>,
    /// Other stage times of this call (detection, checks, engine build, ...).
    pub stages: Vec<(String, Duration)>,
}

impl Outcome {
    /// `items` processed, none failed, no report.
    pub fn items(items: usize) -> Outcome {
        Outcome {
            items,
            ..Outcome::default()
        }
    }

    /// From a batch report.
    pub fn batch(report: BatchReport) -> Outcome {
        Outcome {
            items: report.items,
            failed: report.failed,
            report: Some(report),
            stages: Vec::new(),
        }
    }
}

/// What a measurement is: its suite, name and parameters (the key [`compare`] matches on is
/// `suite/name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Suite (`latency`, `batch`, `size`, `paths`, `memory`, `cache`, `verify`, ...).
    pub suite: String,
    /// Unique within the suite.
    pub name: String,
    /// `cpu`, `gpu`, `auto`, `split`, or a free label.
    pub path: String,
    /// Items per call.
    pub batch: usize,
    /// Input width in pixels (0 when not applicable).
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Callers running concurrently (memory stress); 1 elsewhere.
    #[serde(default = "one")]
    pub concurrency: usize,
}

fn one() -> usize {
    1
}

impl Case {
    /// A case with the given suite and name; other fields empty.
    pub fn new(suite: impl Into<String>, name: impl Into<String>) -> Case {
        Case {
            suite: suite.into(),
            name: name.into(),
            concurrency: 1,
            ..Case::default()
        }
    }

    /// The comparison key, `suite/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }

    /// Input megapixels.
    pub fn megapixels(&self) -> f64 {
        self.width as f64 * self.height as f64 / 1e6
    }
}

/// A function measured by the runner: each call processes some items and says what
/// happened. Plug any work in (the verification pipeline, a custom batch).
pub struct Workload<'a> {
    /// What is measured.
    pub case: Case,
    run: Box<dyn FnMut() -> Result<Outcome> + 'a>,
}

impl std::fmt::Debug for Workload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("case", &self.case)
            .finish_non_exhaustive()
    }
}

impl<'a> Workload<'a> {
    /// A workload calling `run` once per timed repeat.
    pub fn new(case: Case, run: impl FnMut() -> Result<Outcome> + 'a) -> Workload<'a> {
        Workload {
            case,
            run: Box::new(run),
        }
    }

    /// Runs it once.
    ///
    /// # Errors
    /// What the workload returns.
    pub fn call(&mut self) -> Result<Outcome> {
        (self.run)()
    }
}

/// How a measurement is run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Untimed calls first (pipelines built, caches and allocators warm). Default: 1.
    pub warmup: usize,
    /// Timed calls. Default: 7 (the median of 7 is stable to a few percent on the 2-core
    /// development machine, whose run-to-run noise is +-15%).
    pub repeats: usize,
    /// Attach a monitor during the timed calls (peak RSS, reservations, stage times).
    /// Default: true.
    pub monitor: bool,
    /// The monitor's interval. Default: [`crate::monitor::DEFAULT_INTERVAL`].
    pub interval: Duration,
    /// Timed calls run again, per measurement, when other processes took more than
    /// [`noise::NOISY_FOREIGN_SHARE`] of the machine during them. Default:
    /// [`noise::DEFAULT_NOISE_RETRIES`]; 0 only flags them.
    pub noise_retries: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            warmup: 1,
            repeats: 7,
            monitor: true,
            interval: crate::monitor::DEFAULT_INTERVAL,
            noise_retries: noise::DEFAULT_NOISE_RETRIES,
        }
    }
}

/// One measured case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured.
    #[serde(flatten)]
    pub case: Case,
    /// Timed calls.
    pub runs: usize,
    /// Items per second, one sample per timed call.
    pub throughput: Summary,
    /// Milliseconds per call, one sample per timed call.
    pub latency_ms: Summary,
    /// Items that failed over all timed calls.
    pub failed_items: usize,
    /// Peak resident set size of the process during the timed calls (includes memory kept
    /// by earlier cases: the allocator keeps freed pages).
    pub peak_rss_bytes: Option<u64>,
    /// Peak host bytes reserved in the engine's budget during the timed calls.
    pub peak_host_reserved_bytes: Option<u64>,
    /// Peak GPU bytes held by the engine's allocator.
    pub peak_gpu_bytes: Option<u64>,
    /// Stage timings, milliseconds per call (from batch reports and workload stages).
    pub stages: BTreeMap<String, Summary>,
    /// Where the last timed call ran (the scheduler's placement), when known.
    pub placement: Option<String>,
    /// Anything worth knowing (fallbacks, budgets).
    pub note: String,
    /// Other processes' share of the machine's CPU time during the kept timed calls (0 to
    /// 1; [`noise::foreign_share`]); `None` where `/proc` is unreadable or the timed calls
    /// took less than [`noise::MIN_TICKS`] of machine time together.
    #[serde(default)]
    pub foreign_cpu: Option<f64>,
    /// Timed calls measured again because other processes took more than
    /// [`noise::NOISY_FOREIGN_SHARE`] of the machine during them.
    #[serde(default)]
    pub noisy_retries: usize,
    /// Kept timed calls that were still noisy when the retries ran out.
    #[serde(default)]
    pub noisy_calls: usize,
}

/// Runs `w`: `cfg.warmup` untimed calls, then `cfg.repeats` timed ones, with a monitor of
/// `engine` attached when `cfg.monitor` is set.
///
/// # Errors
/// The first error a call returns; `InvalidInput` when `repeats` is 0.
pub fn measure(
    w: &mut Workload<'_>,
    cfg: &RunConfig,
    engine: Option<&Arc<Engine>>,
) -> Result<Measurement> {
    let mut mc = MonitorConfig::new().interval(cfg.interval);
    if let Some(e) = engine {
        mc = mc.engine(Arc::clone(e));
    }
    measure_with(w, cfg, mc, engine.map(|e| &**e))
}

/// Like [`measure`], with a monitor configured by the caller (extra gauges such as queue
/// depths); `cfg.monitor` false ignores it. With `engine`, its pooled GPU buffers are
/// released before the warm-up and its host peak restarted after it, so the peaks are this
/// case's own (exact, not sampled).
///
/// # Errors
/// The first error a call returns; `InvalidInput` when `repeats` is 0.
pub fn measure_with(
    w: &mut Workload<'_>,
    cfg: &RunConfig,
    monitor: MonitorConfig,
    engine: Option<&Engine>,
) -> Result<Measurement> {
    if cfg.repeats == 0 {
        return Err(Error::from(veridoc::ErrorKind::InvalidInput(
            "bench: repeats must be at least 1".into(),
        )));
    }
    if let Some(e) = engine {
        e.trim();
    }
    for _ in 0..cfg.warmup {
        w.call()?;
    }
    if let Some(e) = engine {
        e.host_budget().reset_peak();
    }
    let monitor = if cfg.monitor {
        Some(Monitor::start(monitor)?)
    } else {
        None
    };
    let (mut tput, mut lat) = (Vec::new(), Vec::new());
    let mut failed = 0;
    let mut placement = None;
    let mut host_peak = 0u64;
    let mut retries_left = cfg.noise_retries;
    let mut tally = noise::NoiseTally::default();
    // foreign ticks summed over the kept calls: (busy - own, total)
    let (mut foreign_ticks, mut total_ticks) = (0u64, 0u64);
    while tput.len() < cfg.repeats {
        let before = noise::CpuSample::read();
        let t = Instant::now();
        let out = w.call()?;
        let secs = t.elapsed().as_secs_f64().max(1e-9);
        let after = noise::CpuSample::read();
        let share = before
            .zip(after)
            .and_then(|(a, b)| noise::foreign_share(&a, &b, noise::MIN_TICKS));
        if !noise::keep_call(share, &mut retries_left, &mut tally) {
            continue;
        }
        if let Some((a, b)) = before.zip(after) {
            let total = b.total.saturating_sub(a.total);
            let busy = b.busy.saturating_sub(a.busy);
            foreign_ticks += busy.saturating_sub(b.own.saturating_sub(a.own));
            total_ticks += total;
        }
        tput.push(out.items as f64 / secs);
        lat.push(secs * 1e3);
        failed += out.failed;
        if let Some(m) = &monitor {
            if let Some(r) = &out.report {
                m.record_batch(r);
            }
            for (name, d) in &out.stages {
                m.record_stage(name, *d);
            }
        }
        if let Some(r) = &out.report {
            placement = Some(placement_name(r));
            host_peak = host_peak.max(r.host_peak);
        }
    }
    let summary = monitor.map(Monitor::stop);
    let peak = |name: &str| {
        summary
            .as_ref()
            .and_then(|s| s.peak(name))
            .map(|v| v as u64)
    };
    let mut gpu_peak = peak(metric::GPU_USED);
    if let Some(e) = engine {
        host_peak = host_peak.max(e.host_budget().peak());
        // The pool only grows within a case (it was trimmed before the warm-up), so what
        // it holds at the end is the case's peak.
        if let Some(g) = e.gpu_memory() {
            gpu_peak = gpu_peak.max(Some(g.used)).filter(|&b| b > 0);
        }
    }
    let reserved = peak(metric::HOST_RESERVED)
        .max(Some(host_peak))
        .filter(|&v| v > 0);
    Ok(Measurement {
        case: w.case.clone(),
        runs: cfg.repeats,
        throughput: summary_or_zero(&tput),
        latency_ms: summary_or_zero(&lat),
        failed_items: failed,
        peak_rss_bytes: peak(metric::RSS),
        peak_host_reserved_bytes: reserved,
        peak_gpu_bytes: gpu_peak,
        stages: summary.map(|s| s.stages).unwrap_or_default(),
        placement,
        note: String::new(),
        // a case shorter than MIN_TICKS of machine time is too short to judge
        foreign_cpu: (total_ticks >= noise::MIN_TICKS)
            .then(|| (foreign_ticks as f64 / total_ticks as f64).clamp(0.0, 1.0)),
        noisy_retries: tally.retried,
        noisy_calls: tally.noisy_kept,
    })
}

fn summary_or_zero(v: &[f64]) -> Summary {
    Summary::of(v).unwrap_or(Summary {
        n: 0,
        min: 0.0,
        p25: 0.0,
        median: 0.0,
        p75: 0.0,
        p90: 0.0,
        p99: 0.0,
        max: 0.0,
        mean: 0.0,
        mad: 0.0,
    })
}

/// `cpu`, `gpu` or `split(k)` for a report's placement.
pub(crate) fn placement_name(r: &BatchReport) -> String {
    match r.decision.placement {
        veridoc::Placement::Cpu => "cpu".into(),
        veridoc::Placement::Gpu => "gpu".into(),
        veridoc::Placement::Split { gpu_items } => format!("split({gpu_items} gpu)"),
        // a placement added after this crate was written
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The machine and engine a report was measured on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// CPU brand string.
    pub cpu_model: String,
    /// Logical cores.
    pub logical_cores: usize,
    /// Physical cores, when known.
    pub physical_cores: Option<usize>,
    /// Total physical memory, bytes.
    pub memory_total_bytes: u64,
    /// Operating system and version.
    pub os: String,
    /// GPU adapter name (`none` without one).
    pub adapter: String,
    /// Graphics backend.
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// True for a software adapter (lavapipe): GPU numbers are functional only.
    pub adapter_is_software: bool,
    /// GPU timestamps available (kernel times measured on the GPU).
    pub gpu_timestamps: bool,
    /// `veridoc::VERSION`.
    pub engine_version: String,
    /// Engine CPU threads used by the suite.
    pub engine_threads: usize,
}

impl Fingerprint {
    /// The fingerprint of this machine, with `engine` for the adapter and threads.
    pub fn collect(engine: Option<&Engine>) -> Fingerprint {
        let sys = sysinfo::System::new_with_specifics(
            sysinfo::RefreshKind::nothing()
                .with_memory(sysinfo::MemoryRefreshKind::nothing().with_ram())
                .with_cpu(sysinfo::CpuRefreshKind::nothing()),
        );
        let mut f = Fingerprint {
            cpu_model: sys
                .cpus()
                .first()
                .map_or("unknown".into(), |c| c.brand().trim().to_string()),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            physical_cores: sysinfo::System::physical_core_count(),
            memory_total_bytes: sys.total_memory(),
            os: sysinfo::System::long_os_version().unwrap_or_else(|| "unknown".into()),
            adapter: "none".into(),
            engine_version: veridoc::VERSION.into(),
            engine_threads: engine.map_or(0, |e| e.cpu_threads()),
            ..Fingerprint::default()
        };
        if let Some(i) = engine.and_then(|e| e.gpu_info()) {
            f.adapter = i.name.clone();
            f.backend = i.backend.clone();
            f.driver = format!("{} {}", i.driver, i.driver_info).trim().to_string();
            f.adapter_is_software = i.is_software;
            f.gpu_timestamps = i.timestamps;
        }
        f
    }
}

/// The monitor's cost: the same workload with and without a monitor, interleaved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// What was run.
    pub workload: String,
    /// Interleaved (without, with) pairs of passes.
    pub pairs: usize,
    /// Workload calls per pass (a pass lasts at least 0.5 s).
    pub calls_per_pass: usize,
    /// Throughput without the monitor, items/s.
    pub without: Summary,
    /// Throughput with the monitor attached, items/s.
    pub with: Summary,
    /// Median of per-pair ratios with/without (1.0 = no cost).
    pub ratio_median: f64,
    /// `(1 - ratio_median) * 100`: the throughput drop in percent (negative: within noise).
    pub drop_percent: f64,
    /// The monitor's interval, ms.
    pub interval_ms: f64,
    /// Median time of one sample (all metrics), microseconds.
    pub sample_us: f64,
    /// `sample_us / interval`: the share of one core the sampler keeps busy, percent.
    pub sampler_load_percent: f64,
}

/// Shortest timed pass of the overhead measurement: a monitor is attached for a whole
/// pass, as in real use, so its start and stop (thread spawn, first `/proc` reads, ~1 ms)
/// are amortized as they would be over a run; 0.5 s is 10 sampling intervals.
const OVERHEAD_PASS: Duration = Duration::from_millis(500);

/// Measures the monitor's overhead on `w`: `pairs` interleaved pairs of passes, one
/// without and one with a monitor (with the engine's metrics) attached; the order inside
/// each pair alternates so drift hits both alike. A pass repeats the workload for at least
/// 0.5 s. Also times the sampler's own cost per sample.
///
/// # Errors
/// What the workload returns; `InvalidInput` for 0 pairs.
pub fn monitor_overhead(
    w: &mut Workload<'_>,
    pairs: usize,
    engine: Option<&Arc<Engine>>,
    interval: Duration,
) -> Result<Overhead> {
    if pairs == 0 {
        return Err(Error::from(veridoc::ErrorKind::InvalidInput(
            "bench: overhead needs at least one pair".into(),
        )));
    }
    let t = Instant::now();
    w.call()?;
    let one = t.elapsed().max(Duration::from_micros(1));
    let calls = (OVERHEAD_PASS.as_secs_f64() / one.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let config = || {
        let mut mc = MonitorConfig::new().interval(interval);
        if let Some(e) = engine {
            mc = mc.engine(Arc::clone(e));
        }
        mc
    };
    let (mut without, mut with, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let mut pass = |monitored: bool| -> Result<f64> {
            let t = Instant::now();
            let m = if monitored {
                Some(Monitor::start(config())?)
            } else {
                None
            };
            let mut items = 0;
            for _ in 0..calls {
                let out = w.call()?;
                items += out.items;
                if let (Some(m), Some(r)) = (&m, &out.report) {
                    m.record_batch(r);
                }
            }
            drop(m);
            Ok(items as f64 / t.elapsed().as_secs_f64().max(1e-9))
        };
        let (a, b) = if i % 2 == 0 {
            let a = pass(false)?;
            (a, pass(true)?)
        } else {
            let b = pass(true)?;
            (pass(false)?, b)
        };
        without.push(a);
        with.push(b);
        ratios.push(b / a.max(1e-12));
    }
    let ratio = summary_or_zero(&ratios).median;
    let sample = crate::monitor::sample_cost(config(), 200);
    Ok(Overhead {
        workload: w.case.key(),
        pairs,
        calls_per_pass: calls,
        without: summary_or_zero(&without),
        with: summary_or_zero(&with),
        ratio_median: ratio,
        drop_percent: (1.0 - ratio) * 100.0,
        interval_ms: interval.as_secs_f64() * 1e3,
        sample_us: sample.as_secs_f64() * 1e6,
        sampler_load_percent: sample.as_secs_f64() / interval.as_secs_f64() * 100.0,
    })
}

/// A benchmark run: what was measured, where, and what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// The machine and engine.
    pub fingerprint: Fingerprint,
    /// Suites run, in order.
    pub suites: Vec<String>,
    /// Free-form settings of the run (repeats, sizes), for the record.
    pub settings: BTreeMap<String, String>,
    /// Every measurement.
    pub measurements: Vec<Measurement>,
    /// The monitor's measured overhead, when measured.
    pub monitor_overhead: Option<Overhead>,
    /// Recommendations derived from the measurements.
    pub recommendations: Option<Recommendations>,
}

impl BenchReport {
    /// Parses a report, refusing other schema versions.
    ///
    /// # Errors
    /// `InvalidInput` for malformed JSON or another schema version.
    pub fn from_json(text: &str) -> Result<BenchReport> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let v: Version = serde_json::from_str(text)
            .map_err(|e| invalid(format!("bench report: no schema_version: {e}")))?;
        if v.schema_version != SCHEMA_VERSION {
            return Err(invalid(format!(
                "bench report: schema version {} (this build reads {SCHEMA_VERSION})",
                v.schema_version
            )));
        }
        serde_json::from_str(text).map_err(|e| invalid(format!("bench report: {e}")))
    }

    /// The report as pretty JSON.
    ///
    /// # Errors
    /// `InvalidInput` if serialization fails (non-finite numbers are written as null).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| invalid(format!("bench report: {e}")))
    }

    /// Measurements of one suite.
    pub fn suite<'a>(&'a self, suite: &'a str) -> impl Iterator<Item = &'a Measurement> + 'a {
        self.measurements
            .iter()
            .filter(move |m| m.case.suite == suite)
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::from(veridoc::ErrorKind::InvalidInput(msg.into()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A measurement with throughput samples spread around `median` by `spread` (relative).
    pub(crate) fn fake(
        suite: &str,
        name: &str,
        path: &str,
        batch: usize,
        wh: (u32, u32),
        median: f64,
        spread: f64,
    ) -> Measurement {
        let v: Vec<f64> = [-1.0, -0.5, 0.0, 0.5, 1.0]
            .iter()
            .map(|k| median * (1.0 + k * spread))
            .collect();
        let lat: Vec<f64> = v.iter().map(|t| batch as f64 / t * 1e3).collect();
        Measurement {
            case: Case {
                suite: suite.into(),
                name: name.into(),
                path: path.into(),
                batch,
                width: wh.0,
                height: wh.1,
                concurrency: 1,
            },
            runs: 5,
            throughput: Summary::of(&v).unwrap(),
            latency_ms: Summary::of(&lat).unwrap(),
            failed_items: 0,
            peak_rss_bytes: Some(100 << 20),
            peak_host_reserved_bytes: Some(batch as u64 * (4 << 20)),
            peak_gpu_bytes: (path == "gpu").then_some(64 << 20),
            stages: BTreeMap::new(),
            placement: Some(path.into()),
            note: String::new(),
            foreign_cpu: Some(0.0),
            noisy_retries: 0,
            noisy_calls: 0,
        }
    }

    pub(crate) fn fake_report(ms: Vec<Measurement>) -> BenchReport {
        BenchReport {
            schema_version: SCHEMA_VERSION,
            started_unix: 0,
            duration_s: 1.0,
            fingerprint: Fingerprint {
                cpu_model: "test cpu".into(),
                logical_cores: 2,
                engine_version: veridoc::VERSION.into(),
                engine_threads: 2,
                adapter: "none".into(),
                ..Fingerprint::default()
            },
            suites: vec!["batch".into()],
            settings: BTreeMap::new(),
            measurements: ms,
            monitor_overhead: None,
            recommendations: None,
        }
    }

    #[test]
    fn runner_measures_repeats_and_counts() {
        let mut calls = 0;
        let mut w = Workload::new(Case::new("t", "count"), || {
            calls += 1;
            Ok(Outcome {
                items: 4,
                failed: 1,
                report: None,
                stages: vec![("detect".into(), Duration::from_millis(1))],
            })
        });
        let cfg = RunConfig {
            warmup: 2,
            repeats: 3,
            ..RunConfig::default()
        };
        let m = measure(&mut w, &cfg, None).unwrap();
        drop(w);
        assert_eq!(calls, 5);
        assert_eq!((m.runs, m.throughput.n, m.failed_items), (3, 3, 3));
        assert_eq!(m.stages["detect"].median, 1.0);
        assert!(m.peak_rss_bytes.is_some_and(|b| b > 0));
        let zero = RunConfig {
            repeats: 0,
            ..RunConfig::default()
        };
        let mut w = Workload::new(Case::new("t", "x"), || Ok(Outcome::items(1)));
        assert!(measure(&mut w, &zero, None).is_err());
    }

    #[test]
    fn report_round_trips_and_refuses_other_versions() {
        let r = fake_report(vec![fake(
            "batch",
            "cpu b8",
            "cpu",
            8,
            (640, 480),
            100.0,
            0.05,
        )]);
        let text = r.to_json().unwrap();
        let back = BenchReport::from_json(&text).unwrap();
        assert!(crate::monitor::tests::same_json(&back, &r));
        let other = text.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1);
        let e = BenchReport::from_json(&other).unwrap_err();
        assert!(e.to_string().contains("schema version 99"), "{e}");
        assert!(BenchReport::from_json("{}").is_err());
    }

    #[test]
    fn overhead_reports_a_ratio() {
        let mut w = Workload::new(Case::new("t", "spin"), || {
            let mut x = 0u64;
            for i in 0..20_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            Ok(Outcome::items(1))
        });
        let o = monitor_overhead(&mut w, 1, None, Duration::from_millis(20)).unwrap();
        assert_eq!(o.pairs, 1);
        assert!(
            o.calls_per_pass >= 1 && o.ratio_median > 0.0 && o.sample_us > 0.0,
            "{o:?}"
        );
        assert!(monitor_overhead(&mut w, 0, None, Duration::from_millis(20)).is_err());
    }
}
