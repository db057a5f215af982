//! A performance monitor that can be attached to any run: a background sampler of the
//! process (CPU%, resident memory), the system (available memory) and the engine (host
//! bytes reserved, GPU bytes in use, any gauge the caller adds, such as queue depths), plus
//! per-stage timings recorded from [`BatchReport`]s.
//!
//! ```text
//! let m = Monitor::start(MonitorConfig::new().engine(engine.clone()))?;  // sampler thread
//!   engine.run(..) -> out;  m.record_batch(&out.report);                 // stage timings
//!   m.record_stage("detect", elapsed);                                   // any other stage
//! let summary = m.stop();          // min / median / p99 / max per metric and per stage
//! ```
//!
//! The sampler wakes every [`MonitorConfig::interval`] (default
//! [`DEFAULT_INTERVAL`]) and costs one `/proc` read of this process and one of the system
//! memory per sample: `bench --suite quick` measures the throughput with and without the
//! monitor, interleaved, and reports the ratio (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use veridoc::{BatchReport, Engine};
use veridoc::{Error, Result};

/// Default sampling interval. 50 ms resolves a 12 MP decode (~100 ms on one core) while a
/// sample costs ~30 us (two `/proc` reads), i.e. under 0.1% of one core.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

/// Shortest interval accepted: below 5 ms the sampler's own reads start to show up in the
/// process CPU% it reports.
pub const MIN_INTERVAL: Duration = Duration::from_millis(5);

/// Samples kept per metric before older ones are thinned (every other one dropped): 100,000
/// samples is 83 minutes at 50 ms, 1.6 MB per metric.
const MAX_SAMPLES: usize = 100_000;

/// Metric names recorded by the sampler.
pub mod metric {
    /// Process CPU use in percent of one core (200 = two cores busy).
    pub const CPU_PERCENT: &str = "process_cpu_percent";
    /// Process resident set size, bytes.
    pub const RSS: &str = "process_rss_bytes";
    /// System memory available to new allocations, bytes.
    pub const SYSTEM_AVAILABLE: &str = "system_available_bytes";
    /// Host bytes reserved in the engine's budget.
    pub const HOST_RESERVED: &str = "engine_host_reserved_bytes";
    /// GPU bytes held by the engine's allocator (in use or pooled).
    pub const GPU_USED: &str = "engine_gpu_used_bytes";
}

/// A gauge read on every sample (queue depths, in-flight batches, ...).
pub type Gauge = Box<dyn Fn() -> f64 + Send + 'static>;

/// What the monitor samples and how often. Every setting has a documented default.
#[must_use]
pub struct MonitorConfig {
    interval: Duration,
    engine: Option<Arc<Engine>>,
    gauges: Vec<(String, Gauge)>,
    system: bool,
}

impl std::fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("interval", &self.interval)
            .field("engine", &self.engine.is_some())
            .field(
                "gauges",
                &self.gauges.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
            )
            .field("system", &self.system)
            .finish()
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: DEFAULT_INTERVAL,
            engine: None,
            gauges: Vec::new(),
            system: true,
        }
    }
}

impl MonitorConfig {
    /// The defaults: system metrics every [`DEFAULT_INTERVAL`], no engine, no gauges.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sampling interval, at least [`MIN_INTERVAL`]. Default: [`DEFAULT_INTERVAL`].
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d.max(MIN_INTERVAL);
        self
    }

    /// Also samples this engine's host reservations and GPU memory. Default: none.
    pub fn engine(mut self, engine: Arc<Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Adds a gauge sampled with the others, e.g. a queue depth. Default: none.
    pub fn gauge(mut self, name: impl Into<String>, f: impl Fn() -> f64 + Send + 'static) -> Self {
        self.gauges.push((name.into(), Box::new(f)));
        self
    }

    /// Samples process and system metrics through sysinfo. Default: true (turn off in tests
    /// that only need gauges).
    pub fn system(mut self, on: bool) -> Self {
        self.system = on;
        self
    }
}

/// Order statistics of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Smallest value.
    pub min: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub median: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
}

/// The `q` quantile (0..=1) of sorted values, linearly interpolated between the closest
/// ranks (NumPy's default); NaN for an empty slice.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

impl Summary {
    /// The summary of `values` (NaNs ignored); `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let median = percentile(&v, 0.5);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(|a, b| a.total_cmp(b));
        Some(Summary {
            n: v.len(),
            min: v[0],
            p25: percentile(&v, 0.25),
            median,
            p75: percentile(&v, 0.75),
            p90: percentile(&v, 0.90),
            p99: percentile(&v, 0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
            mad: percentile(&dev, 0.5),
        })
    }

    /// Robust relative spread: `1.4826 * MAD / median` (the MAD scaled to a normal
    /// distribution's standard deviation), 0 when the median is 0.
    pub fn relative_spread(&self) -> f64 {
        if self.median.abs() > 0.0 {
            1.4826 * self.mad / self.median.abs()
        } else {
            0.0
        }
    }
}

/// What a monitor saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorSummary {
    /// Sampling interval, milliseconds.
    pub interval_ms: f64,
    /// Time the monitor ran, seconds.
    pub duration_s: f64,
    /// Samples taken.
    pub samples: usize,
    /// Per sampled metric (see [`metric`], plus gauges): its summary.
    pub metrics: BTreeMap<String, Summary>,
    /// Per stage, milliseconds per recorded batch (or per recorded call for
    /// [`Monitor::record_stage`]).
    pub stages: BTreeMap<String, Summary>,
    /// Whether GPU kernel times came from GPU timestamps (false: the adapter has none and
    /// `gpu_kernel` is absent).
    pub gpu_timestamps: bool,
    /// Batches recorded.
    pub batches: usize,
}

impl MonitorSummary {
    /// The peak of a metric, if it was sampled.
    pub fn peak(&self, metric: &str) -> Option<f64> {
        self.metrics.get(metric).map(|s| s.max)
    }
}

#[derive(Debug, Default)]
struct Recorded {
    metrics: BTreeMap<String, Vec<f64>>,
    stages: BTreeMap<String, Vec<f64>>,
    samples: usize,
    batches: usize,
    gpu_timestamps: bool,
}

impl Recorded {
    fn push(map: &mut BTreeMap<String, Vec<f64>>, name: &str, v: f64) {
        let vs = match map.get_mut(name) {
            Some(vs) => vs,
            None => map.entry(name.to_string()).or_default(),
        };
        if vs.len() >= MAX_SAMPLES {
            // Thin evenly rather than drop the tail: the distribution stays representative.
            let mut i = 0;
            vs.retain(|_| {
                i += 1;
                i % 2 == 0
            });
        }
        vs.push(v);
    }
}

/// A running monitor; [`Monitor::stop`] ends it and returns the summary. Dropping it stops
/// the sampler too.
#[derive(Debug)]
pub struct Monitor {
    data: Arc<Mutex<Recorded>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    started: Instant,
    interval: Duration,
}

struct Sampler {
    sys: Option<(sysinfo::System, Option<sysinfo::Pid>)>,
    engine: Option<Arc<Engine>>,
    gauges: Vec<(String, Gauge)>,
}

impl Sampler {
    fn new(cfg: MonitorConfig) -> Sampler {
        Sampler {
            sys: cfg.system.then(|| {
                (
                    sysinfo::System::new_with_specifics(
                        sysinfo::RefreshKind::nothing()
                            .with_memory(sysinfo::MemoryRefreshKind::nothing().with_ram()),
                    ),
                    sysinfo::get_current_pid().ok(),
                )
            }),
            engine: cfg.engine,
            gauges: cfg.gauges,
        }
    }

    fn sample(&mut self, out: &mut Vec<(&'static str, Option<String>, f64)>) {
        out.clear();
        if let Some((sys, pid)) = &mut self.sys {
            sys.refresh_memory();
            out.push((
                metric::SYSTEM_AVAILABLE,
                None,
                sys.available_memory() as f64,
            ));
            if let Some(pid) = *pid {
                sys.refresh_processes_specifics(
                    sysinfo::ProcessesToUpdate::Some(&[pid]),
                    false,
                    sysinfo::ProcessRefreshKind::nothing()
                        .with_memory()
                        .with_cpu(),
                );
                if let Some(p) = sys.process(pid) {
                    out.push((metric::CPU_PERCENT, None, p.cpu_usage() as f64));
                    out.push((metric::RSS, None, p.memory() as f64));
                }
            }
        }
        if let Some(e) = &self.engine {
            out.push((metric::HOST_RESERVED, None, e.host_budget().used() as f64));
            if let Some(g) = e.gpu_memory() {
                out.push((metric::GPU_USED, None, g.used as f64));
            }
        }
        for (name, g) in &self.gauges {
            out.push(("", Some(name.clone()), g()));
        }
    }
}

/// The median time one sample takes with `cfg` (every metric it would record), over `n`
/// samples taken back to back on this thread: the sampler's cost, free of scheduling
/// noise. `cfg.interval` is ignored.
pub fn sample_cost(cfg: MonitorConfig, n: usize) -> Duration {
    let mut s = Sampler::new(cfg);
    let mut buf = Vec::new();
    s.sample(&mut buf);
    let mut times: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let t = Instant::now();
            s.sample(&mut buf);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    Duration::from_secs_f64(percentile(&times, 0.5))
}

impl Monitor {
    /// Starts the sampler thread (takes a first sample at once).
    ///
    /// # Errors
    /// `Io` when the thread cannot be spawned.
    pub fn start(cfg: MonitorConfig) -> Result<Monitor> {
        let data = Arc::new(Mutex::new(Recorded::default()));
        let (tx, rx) = mpsc::channel::<()>();
        let interval = cfg.interval;
        let mut sampler = Sampler::new(cfg);
        let shared = Arc::clone(&data);
        let thread = std::thread::Builder::new()
            .name("veridoc-monitor".into())
            .spawn(move || {
                let mut buf = Vec::new();
                let mut first = true;
                loop {
                    sampler.sample(&mut buf);
                    {
                        let mut d = shared.lock().unwrap_or_else(|e| e.into_inner());
                        d.samples += 1;
                        for (name, custom, v) in &buf {
                            // sysinfo's first CPU reading has no previous one to diff
                            // against (always 0): skip it.
                            if first && *name == metric::CPU_PERCENT {
                                continue;
                            }
                            let n = custom.as_deref().unwrap_or(name);
                            Recorded::push(&mut d.metrics, n, *v);
                        }
                    }
                    first = false;
                    match rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        // Stop requested or the monitor was dropped.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| Error::from(std::io::Error::other(format!("monitor thread: {e}"))))?;
        Ok(Monitor {
            data,
            stop: Some(tx),
            thread: Some(thread),
            started: Instant::now(),
            interval,
        })
    }

    /// Records one batch's stage timings, in milliseconds: `wall`, `decode` and
    /// `preprocess` (thread-summed), and for GPU batches `gpu_upload`, `gpu_kernel` (GPU
    /// timestamps, when the adapter has them), `gpu_wait` and `gpu_readback`.
    pub fn record_batch(&self, r: &BatchReport) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut d = self.lock();
        d.batches += 1;
        Recorded::push(&mut d.stages, "wall", ms(r.wall));
        Recorded::push(&mut d.stages, "decode", ms(r.decode));
        Recorded::push(&mut d.stages, "preprocess", ms(r.preprocess));
        if let Some(g) = &r.gpu {
            Recorded::push(&mut d.stages, "gpu_upload", ms(g.upload));
            if g.kernel > Duration::ZERO {
                d.gpu_timestamps = true;
                Recorded::push(&mut d.stages, "gpu_kernel", ms(g.kernel));
            }
            Recorded::push(&mut d.stages, "gpu_wait", ms(g.wait));
            Recorded::push(&mut d.stages, "gpu_readback", ms(g.readback));
        }
    }

    /// Records the time of any other stage (detection, checks, ...), in milliseconds.
    pub fn record_stage(&self, stage: &str, elapsed: Duration) {
        Recorded::push(&mut self.lock().stages, stage, elapsed.as_secs_f64() * 1e3);
    }

    /// The summary so far (the sampler keeps running).
    pub fn snapshot(&self) -> MonitorSummary {
        let d = self.lock();
        MonitorSummary {
            interval_ms: self.interval.as_secs_f64() * 1e3,
            duration_s: self.started.elapsed().as_secs_f64(),
            samples: d.samples,
            metrics: d
                .metrics
                .iter()
                .filter_map(|(k, v)| Summary::of(v).map(|s| (k.clone(), s)))
                .collect(),
            stages: d
                .stages
                .iter()
                .filter_map(|(k, v)| Summary::of(v).map(|s| (k.clone(), s)))
                .collect(),
            gpu_timestamps: d.gpu_timestamps,
            batches: d.batches,
        }
    }

    /// Stops the sampler and returns the summary.
    pub fn stop(mut self) -> MonitorSummary {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            // A panicking gauge only loses the samples after it.
            let _ = t.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Equality through JSON with a relative tolerance of 1e-12 on numbers (serde_json's
    /// default float parser can be one ulp off).
    pub(crate) fn same_json<T: Serialize>(a: &T, b: &T) -> bool {
        fn eq(x: &serde_json::Value, y: &serde_json::Value) -> bool {
            use serde_json::Value as V;
            match (x, y) {
                (V::Number(p), V::Number(q)) => {
                    let (p, q) = (
                        p.as_f64().unwrap_or(f64::NAN),
                        q.as_f64().unwrap_or(f64::NAN),
                    );
                    p == q || (p - q).abs() <= 1e-12 * p.abs().max(q.abs())
                }
                (V::Array(p), V::Array(q)) => {
                    p.len() == q.len() && p.iter().zip(q).all(|(a, b)| eq(a, b))
                }
                (V::Object(p), V::Object(q)) => {
                    p.len() == q.len() && p.iter().all(|(k, v)| q.get(k).is_some_and(|w| eq(v, w)))
                }
                _ => x == y,
            }
        }
        eq(
            &serde_json::to_value(a).unwrap(),
            &serde_json::to_value(b).unwrap(),
        )
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.25), 2.0);
        assert!((percentile(&v, 0.99) - 4.96).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        let s = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert_eq!(
            (s.n, s.min, s.median, s.max, s.mean),
            (5, 1.0, 3.0, 5.0, 3.0)
        );
        assert_eq!(s.mad, 1.0);
        assert!((s.relative_spread() - 1.4826 / 3.0).abs() < 1e-12);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn monitor_collects_gauges_and_stages() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let m = Monitor::start(
            MonitorConfig::new()
                .interval(Duration::from_millis(5))
                .gauge("queue_depth", move || {
                    c.fetch_add(1, Ordering::SeqCst) as f64
                }),
        )
        .unwrap();
        // Wait for a few samples (bounded by the sample count, not by timing).
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        m.record_stage("detect", Duration::from_millis(2));
        m.record_stage("detect", Duration::from_millis(4));
        let s = m.stop();
        let q = &s.metrics["queue_depth"];
        assert!(q.n >= 4, "{s:?}");
        assert_eq!(q.min, 0.0);
        assert!(s.metrics.contains_key(metric::RSS), "{s:?}");
        assert!(s.peak(metric::RSS).unwrap() > 0.0);
        assert!(sample_cost(MonitorConfig::new(), 3) > Duration::ZERO);
        assert_eq!(s.stages["detect"].median, 3.0);
        let json = serde_json::to_string(&s).unwrap();
        let back: MonitorSummary = serde_json::from_str(&json).unwrap();
        assert!(same_json(&back, &s), "{back:?} != {s:?}");
    }

    #[test]
    fn thinning_keeps_the_count_bounded() {
        let mut m = BTreeMap::new();
        for i in 0..(MAX_SAMPLES + 10) {
            Recorded::push(&mut m, "x", i as f64);
        }
        assert!(m["x"].len() <= MAX_SAMPLES);
    }
}
