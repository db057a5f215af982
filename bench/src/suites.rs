//! The suites: latency (cold and warm), batch-size sweep, input-size sweep, cpu vs gpu vs
//! auto vs split, memory stress, cache effect and caller-supplied workloads (verification),
//! all on generated JPEGs (`Frame::synthetic` encoded at quality 90 in memory, so decoding
//! is measured too).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    invalid, measure, measure_with, monitor_overhead, BenchReport, Case, Fingerprint, Measurement,
    Outcome, RunConfig, Workload, SCHEMA_VERSION,
};
use crate::monitor::MonitorConfig;
use veridoc::Frame;
use veridoc::Input;
use veridoc::MemoryLimit;
use veridoc::Placement;
use veridoc::Result;
use veridoc::{DevicePolicy, Engine, EngineBuilder, PlanRequest};
use veridoc::{Layout, Pipeline, Shrink};

/// A suite of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Suite {
    /// Single-item latency: cold (first call on a fresh engine) and warm, per path.
    Latency,
    /// Throughput vs batch size, per path.
    Batch,
    /// Throughput vs input size, per path.
    Size,
    /// cpu vs gpu vs auto vs split on one batch.
    Paths,
    /// Concurrent batches under a tight host budget.
    Memory,
    /// The result cache: cold vs warm (memory tier, and disk tier after a restart).
    Cache,
    /// Caller-supplied workloads (verification throughput).
    Verify,
}

impl Suite {
    /// Every suite, in run order.
    pub const ALL: [Suite; 7] = [
        Suite::Latency,
        Suite::Batch,
        Suite::Size,
        Suite::Paths,
        Suite::Memory,
        Suite::Cache,
        Suite::Verify,
    ];

    /// The suite's name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Latency => "latency",
            Suite::Batch => "batch",
            Suite::Size => "size",
            Suite::Paths => "paths",
            Suite::Memory => "memory",
            Suite::Cache => "cache",
            Suite::Verify => "verify",
        }
    }
}

impl std::str::FromStr for Suite {
    type Err = veridoc::Error;
    fn from_str(s: &str) -> Result<Suite> {
        Suite::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| invalid(format!("unknown suite {s:?}")))
    }
}

/// A path a batch can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PathKind {
    /// `Engine::run_on(Placement::Cpu)`.
    Cpu,
    /// `Engine::run_on(Placement::Gpu)`.
    Gpu,
    /// `Engine::run` (the scheduler decides).
    Auto,
    /// `Engine::run_on(Placement::Split)`, half of the batch on each path.
    Split,
}

impl PathKind {
    /// The path's name.
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Cpu => "cpu",
            PathKind::Gpu => "gpu",
            PathKind::Auto => "auto",
            PathKind::Split => "split",
        }
    }

    fn needs_gpu(self) -> bool {
        matches!(self, PathKind::Gpu | PathKind::Split)
    }
}

/// What to run. [`SuiteConfig::quick`] and [`SuiteConfig::full`] are the presets; every
/// field can be changed after.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Suites to run, in order.
    pub suites: Vec<Suite>,
    /// Engine CPU threads (default: all cores).
    pub threads: Option<usize>,
    /// Warm-up and repeats of every measurement.
    pub run: RunConfig,
    /// Use the GPU when there is one.
    pub gpu: bool,
    /// Output side of the `fit(S, S)` ImageNet f32 NCHW pipeline every suite runs.
    pub output: u32,
    /// Distinct generated images per input size (batches cycle through them).
    pub distinct_images: usize,
    /// Batch sizes of the batch suite.
    pub batch_sizes: Vec<usize>,
    /// Input sizes the batch suite sweeps at (one curve per path and size).
    pub batch_resolutions: Vec<(u32, u32)>,
    /// Input sizes of the size suite.
    pub sizes: Vec<(u32, u32)>,
    /// Batch size of the size suite.
    pub size_batch: usize,
    /// GPU measurements only for inputs up to this many pixels (a software adapter takes
    /// ~280 ms per 12 MP image).
    pub gpu_max_pixels: u64,
    /// GPU measurements only up to this batch size.
    pub gpu_max_batch: usize,
    /// The `gpu_max_pixels` cap on a software adapter (lavapipe runs the shaders on the
    /// same CPU cores: a full sweep at 12 MP would take hours).
    pub software_gpu_max_pixels: u64,
    /// Input size of the latency suite.
    pub latency_resolution: (u32, u32),
    /// Timed warm single-item calls (more than `run.repeats`: percentiles need samples).
    pub latency_repeats: usize,
    /// Fresh engines measured for cold latency.
    pub cold_repeats: usize,
    /// Batch and input size of the paths, cache and overhead measurements.
    pub paths_batch: usize,
    /// See `paths_batch`.
    pub paths_resolution: (u32, u32),
    /// Concurrent callers of the memory suite, one measurement each.
    pub memory_concurrency: Vec<usize>,
    /// Host budget of the memory suite, in items: the budget is this many times the bytes
    /// one item needs (`Engine::plan`'s `per_item_bytes`), so concurrent batches must wait
    /// for each other's reservations.
    pub memory_budget_items: f64,
    /// Batches each caller runs per timed call in the memory suite.
    pub memory_iterations: usize,
    /// Interleaved pairs measuring the monitor's overhead (0: not measured).
    pub overhead_pairs: usize,
    /// Where to write the scheduler calibration learned during the run (the engine loads
    /// it from `<cache dir>/scheduler-calibration.json`).
    pub calibration_file: Option<PathBuf>,
}

impl SuiteConfig {
    /// The quick suite: every suite at small sizes, finishing in under 2 minutes on 2 cores
    /// with a software GPU adapter (measured: docs/benchmarks.md).
    pub fn quick() -> SuiteConfig {
        SuiteConfig {
            suites: Suite::ALL.to_vec(),
            threads: None,
            run: RunConfig {
                warmup: 1,
                repeats: 7,
                ..RunConfig::default()
            },
            gpu: true,
            output: 224,
            distinct_images: 4,
            batch_sizes: vec![1, 2, 4, 8, 16],
            batch_resolutions: vec![(640, 480)],
            sizes: vec![(320, 240), (640, 480), (1280, 960), (2048, 1536)],
            size_batch: 8,
            // 1.3 MP: lavapipe takes ~30 ms per image there, so a batch of 16 stays < 1 s.
            gpu_max_pixels: 1280 * 960,
            gpu_max_batch: 16,
            // 1.3 MP as above: at 12 MP lavapipe takes ~280 ms per image.
            software_gpu_max_pixels: 1280 * 960,
            latency_resolution: (1280, 960),
            latency_repeats: 15,
            cold_repeats: 3,
            paths_batch: 8,
            paths_resolution: (1280, 960),
            memory_concurrency: vec![1, 2, 4],
            // Room for 3 items in flight: with 2 workers and up to 4 callers, at least one
            // item waits for a reservation most of the time (the stress), while any single
            // item always fits.
            memory_budget_items: 3.0,
            memory_iterations: 2,
            overhead_pairs: 10,
            calibration_file: None,
        }
    }

    /// The full suite: larger batches and sizes, GPU everywhere up to 12 MP and batch 64.
    pub fn full() -> SuiteConfig {
        SuiteConfig {
            run: RunConfig {
                warmup: 1,
                repeats: 9,
                ..RunConfig::default()
            },
            batch_sizes: vec![1, 2, 4, 8, 16, 32, 64],
            batch_resolutions: vec![(640, 480), (2048, 1536)],
            sizes: vec![
                (320, 240),
                (640, 480),
                (1280, 960),
                (2048, 1536),
                (3264, 2448),
                (4032, 3024),
            ],
            size_batch: 16,
            gpu_max_pixels: 4032 * 3024,
            gpu_max_batch: 64,
            latency_repeats: 30,
            cold_repeats: 5,
            paths_batch: 16,
            // Kept at 1.2 MP so the paths suite includes a software GPU in a few minutes.
            paths_resolution: (1280, 960),
            memory_concurrency: vec![1, 2, 4, 8],
            memory_iterations: 3,
            overhead_pairs: 20,
            ..SuiteConfig::quick()
        }
    }

    fn gpu_ok(&self, (w, h): (u32, u32), batch: usize, software: bool) -> bool {
        let max = if software {
            self.gpu_max_pixels.min(self.software_gpu_max_pixels)
        } else {
            self.gpu_max_pixels
        };
        w as u64 * h as u64 <= max && batch <= self.gpu_max_batch
    }

    /// The suites' pipeline. Shrink-on-load is `fast`, the library default before it became
    /// `exact`, so that reports stay comparable (`--compare`) across that change.
    fn pipeline(&self) -> Pipeline {
        Pipeline::new()
            .fit(self.output, self.output)
            .imagenet()
            .layout(Layout::Nchw)
            .shrink(Shrink::Fast)
    }

    fn builder(&self) -> EngineBuilder {
        let mut b = Engine::builder().no_persist();
        if let Some(t) = self.threads {
            b = b.cpu_threads(t);
        }
        b
    }
}

/// Generated JPEG inputs, encoded once per size.
#[derive(Debug, Default)]
struct Inputs {
    distinct: usize,
    by_size: HashMap<(u32, u32), Vec<Input>>,
    encoded_bytes: BTreeMap<String, u64>,
}

impl Inputs {
    fn batch(&mut self, (w, h): (u32, u32), n: usize) -> Result<Vec<Input>> {
        if !self.by_size.contains_key(&(w, h)) {
            let mut v = Vec::new();
            let mut total = 0u64;
            for seed in 0..self.distinct.max(1) as u32 {
                let bytes = Frame::synthetic(w, h, seed + 1).encode_jpeg(90)?;
                total += bytes.len() as u64;
                v.push(Input::bytes(format!("gen-{w}x{h}-{seed}.jpg"), bytes));
            }
            self.encoded_bytes
                .insert(format!("{w}x{h}"), total / v.len() as u64);
            self.by_size.insert((w, h), v);
        }
        let v = &self.by_size[&(w, h)];
        Ok((0..n).map(|i| v[i % v.len()].clone()).collect())
    }
}

fn run_path(e: &Engine, p: &Pipeline, inputs: &[Input], path: PathKind) -> Result<Outcome> {
    let out = match path {
        PathKind::Auto => e.run(p, inputs)?,
        PathKind::Cpu => e.run_on(p, inputs, Placement::Cpu)?,
        PathKind::Gpu => e.run_on(p, inputs, Placement::Gpu)?,
        PathKind::Split => e.run_on(
            p,
            inputs,
            Placement::Split {
                gpu_items: (inputs.len() / 2).max(1),
            },
        )?,
    };
    Ok(Outcome::batch(out.report))
}

fn fallback_note(m: &mut Measurement, path: PathKind, placement_seen: &str) {
    if path == PathKind::Gpu && placement_seen != "gpu" {
        m.note = format!("ran on {placement_seen}");
    }
}

struct Ctx<'c> {
    cfg: &'c SuiteConfig,
    p: Pipeline,
    main: Arc<Engine>,
    has_gpu: bool,
    inputs: Inputs,
    out: Vec<Measurement>,
    log: &'c mut dyn FnMut(&str),
}

impl Ctx<'_> {
    fn batch_case(
        &mut self,
        suite: &str,
        name: String,
        path: PathKind,
        wh: (u32, u32),
        n: usize,
        run: &RunConfig,
    ) -> Result<()> {
        let inputs = self.inputs.batch(wh, n)?;
        let case = Case {
            suite: suite.into(),
            name,
            path: path.name().into(),
            batch: n,
            width: wh.0,
            height: wh.1,
            concurrency: 1,
        };
        let (main, p) = (Arc::clone(&self.main), self.p.clone());
        let e = &*main;
        let mut w = Workload::new(case, || run_path(e, &p, &inputs, path));
        let mut m = measure(&mut w, run, Some(&self.main))?;
        let seen = m.placement.clone().unwrap_or_default();
        fallback_note(&mut m, path, &seen);
        self.push(m);
        Ok(())
    }

    fn push(&mut self, m: Measurement) {
        (self.log)(&format!(
            "  {:<8} {:<28} {:>9.2} items/s (+-{:.1}%), {:>9.2} ms/call p50, {:>9.2} p99, others {}{}{}",
            m.case.suite,
            m.case.name,
            m.throughput.median,
            m.throughput.relative_spread() * 100.0,
            m.latency_ms.median,
            m.latency_ms.p99,
            crate::noise::fmt_share(m.foreign_cpu),
            crate::noise::flag(&m),
            if m.note.is_empty() {
                String::new()
            } else {
                format!("  [{}]", m.note)
            }
        ));
        self.out.push(m);
    }

    fn paths(&self) -> Vec<PathKind> {
        [
            PathKind::Cpu,
            PathKind::Gpu,
            PathKind::Auto,
            PathKind::Split,
        ]
        .into_iter()
        .filter(|k| self.has_gpu || !k.needs_gpu())
        .collect()
    }

    fn latency(&mut self) -> Result<()> {
        let wh = self.cfg.latency_resolution;
        let one = self.inputs.batch(wh, 1)?;
        let warm = RunConfig {
            repeats: self.cfg.latency_repeats.max(1),
            ..self.cfg.run.clone()
        };
        let cold = RunConfig {
            warmup: 0,
            repeats: self.cfg.cold_repeats.max(1),
            ..self.cfg.run.clone()
        };
        let mut kinds = vec![PathKind::Cpu];
        if self.has_gpu {
            kinds.push(PathKind::Gpu);
        }
        kinds.push(PathKind::Auto);
        for path in kinds {
            let case = |name: &str| Case {
                suite: "latency".into(),
                name: format!("{} {name}", path.name()),
                path: path.name().into(),
                batch: 1,
                width: wh.0,
                height: wh.1,
                concurrency: 1,
            };
            if path != PathKind::Auto {
                // Cold: the first call on a fresh engine, built outside the timing.
                let policy = if path == PathKind::Gpu {
                    DevicePolicy::Gpu
                } else {
                    DevicePolicy::Cpu
                };
                let mut engines = Vec::new();
                let mut build_ms = Vec::new();
                for _ in 0..cold.repeats {
                    let t = Instant::now();
                    engines.push(
                        self.cfg
                            .builder()
                            .device_policy(policy)
                            .calibrate(false)
                            .build()?,
                    );
                    build_ms.push(t.elapsed());
                }
                let engines = RefCell::new(engines);
                let p = self.p.clone();
                let (p, one) = (&p, &one);
                let mut w = Workload::new(case("cold"), || {
                    let e = engines
                        .borrow_mut()
                        .pop()
                        .ok_or_else(|| invalid("bench: no fresh engine left"))?;
                    let mut o = run_path(&e, p, one, path)?;
                    o.stages
                        .push(("engine_build".into(), build_ms.pop().unwrap_or_default()));
                    Ok(o)
                });
                let mut m = measure(&mut w, &cold, None)?;
                m.note = "first call on a fresh engine (build time in stages.engine_build)".into();
                self.push(m);
            }
            let (main, p) = (Arc::clone(&self.main), self.p.clone());
            let (e, p, one) = (&*main, &p, &one);
            let mut w = Workload::new(case("warm"), || run_path(e, p, one, path));
            let m = measure(&mut w, &warm, Some(&self.main))?;
            self.push(m);
        }
        Ok(())
    }

    fn memory(&mut self) -> Result<()> {
        let wh = self.cfg.paths_resolution;
        let n = self.cfg.paths_batch;
        let batch = self.inputs.batch(wh, n)?;
        let encoded = batch.first().and_then(|i| i.encoded_len()).unwrap_or(0);
        let per_item = self
            .main
            .plan(
                &self.p,
                &PlanRequest {
                    items: 1,
                    avg_encoded_bytes: encoded,
                    avg_pixels: Some(wh.0 as u64 * wh.1 as u64),
                },
            )?
            .per_item_bytes;
        let budget = ((per_item as f64 * self.cfg.memory_budget_items) as u64).max(1);
        for &c in &self.cfg.memory_concurrency {
            let c = c.max(1);
            let engine = Arc::new(
                self.cfg
                    .builder()
                    .device_policy(DevicePolicy::Cpu)
                    .host_memory_limit(MemoryLimit::Bytes(budget))
                    .build()?,
            );
            let inflight = Arc::new(AtomicUsize::new(0));
            let gauge = Arc::clone(&inflight);
            let mc = MonitorConfig::new()
                .interval(self.cfg.run.interval)
                .engine(Arc::clone(&engine))
                .gauge("inflight_batches", move || {
                    gauge.load(Ordering::Relaxed) as f64
                });
            let p = self.p.clone();
            let (e, p, batch, iters) = (&*engine, &p, &batch, self.cfg.memory_iterations);
            let inflight = &inflight;
            let case = Case {
                suite: "memory".into(),
                name: format!("{c} concurrent"),
                path: "cpu".into(),
                batch: n,
                width: wh.0,
                height: wh.1,
                concurrency: c,
            };
            let mut w = Workload::new(case, || {
                let results: Vec<Result<(usize, usize, Vec<Duration>)>> = std::thread::scope(|s| {
                    let hs: Vec<_> = (0..c)
                        .map(|_| {
                            s.spawn(move || -> Result<(usize, usize, Vec<Duration>)> {
                                let (mut items, mut failed, mut walls) = (0, 0, Vec::new());
                                for _ in 0..iters.max(1) {
                                    inflight.fetch_add(1, Ordering::Relaxed);
                                    let out = e.run(p, batch);
                                    inflight.fetch_sub(1, Ordering::Relaxed);
                                    let out = out?;
                                    items += out.report.items;
                                    failed += out.report.failed;
                                    walls.push(out.report.wall);
                                }
                                Ok((items, failed, walls))
                            })
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err(invalid("bench: a caller panicked")))
                        })
                        .collect()
                });
                let mut o = Outcome::default();
                for r in results {
                    let (i, f, walls) = r?;
                    o.items += i;
                    o.failed += f;
                    o.stages
                        .extend(walls.into_iter().map(|d| ("batch_wall".to_string(), d)));
                }
                Ok(o)
            });
            let mut m = measure_with(&mut w, &self.cfg.run, mc, Some(e))?;
            let peak = engine.host_budget().peak();
            m.peak_host_reserved_bytes = m.peak_host_reserved_bytes.max(Some(peak));
            m.note = format!(
                "host budget {} ({} items), peak reserved {}, {} items failed",
                veridoc::fmt_bytes(budget),
                self.cfg.memory_budget_items,
                veridoc::fmt_bytes(peak),
                m.failed_items
            );
            self.push(m);
        }
        Ok(())
    }

    fn cache(&mut self) -> Result<()> {
        let wh = self.cfg.paths_resolution;
        let n = self.cfg.paths_batch;
        let inputs = self.inputs.batch(wh, n)?;
        let case = |name: &str| Case {
            suite: "cache".into(),
            name: name.into(),
            path: "cpu".into(),
            batch: n,
            width: wh.0,
            height: wh.1,
            concurrency: 1,
        };
        let mem = Arc::new(
            self.cfg
                .builder()
                .device_policy(DevicePolicy::Cpu)
                .result_cache(veridoc::cache::CacheConfig::memory(512 << 20))
                .build()?,
        );
        let p = self.p.clone();
        let (e, p, xs) = (&*mem, &p, &inputs);
        let mut w = Workload::new(case("memory cold"), || {
            e.wipe_caches();
            Ok(Outcome::batch(e.run(p, xs)?.report))
        });
        let mut m = measure(&mut w, &self.cfg.run, Some(&mem))?;
        m.note = "result cache wiped before each call (wipe included)".into();
        self.push(m);
        let mut w = Workload::new(case("memory warm"), || {
            Ok(Outcome::batch(e.run(p, xs)?.report))
        });
        let mut m = measure(&mut w, &self.cfg.run, Some(&mem))?;
        m.note = "every item served from the memory tier".into();
        self.push(m);
        // Disk tier after a restart: a fresh engine (empty memory tier) over a filled dir.
        let dir = std::env::temp_dir().join(format!(
            "veridoc-bench-cache-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let cache_cfg = || veridoc::cache::CacheConfig::memory(512 << 20).disk(&dir);
        let result = (|| -> Result<Measurement> {
            let filler = self
                .cfg
                .builder()
                .device_policy(DevicePolicy::Cpu)
                .result_cache(cache_cfg())
                .build()?;
            filler.run(p, xs)?;
            drop(filler);
            let runs = self.cfg.run.repeats + self.cfg.run.warmup;
            let mut engines = Vec::new();
            for _ in 0..runs {
                engines.push(
                    self.cfg
                        .builder()
                        .device_policy(DevicePolicy::Cpu)
                        .result_cache(cache_cfg())
                        .build()?,
                );
            }
            let engines = RefCell::new(engines);
            let mut w = Workload::new(case("disk warm (restart)"), || {
                let e = engines
                    .borrow_mut()
                    .pop()
                    .ok_or_else(|| invalid("bench: no fresh engine left"))?;
                Ok(Outcome::batch(e.run(p, xs)?.report))
            });
            let mut m = measure(&mut w, &self.cfg.run, None)?;
            m.note = "fresh engine per call, every item read from the disk tier".into();
            Ok(m)
        })();
        let _ = std::fs::remove_dir_all(&dir);
        self.push(result?);
        Ok(())
    }
}

/// Runs the configured suites and `extra` workloads (the `verify` suite), then the
/// monitor-overhead measurement and the recommendations. `log` receives one line per
/// measurement as it finishes.
///
/// # Errors
/// Engine build failures, and the first error a workload returns.
pub fn run_suites(
    cfg: &SuiteConfig,
    extra: Vec<Workload<'_>>,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let main = {
        let b = cfg.builder();
        let b = if cfg.gpu {
            b
        } else {
            b.gpu(veridoc::gpu::GpuSelection::Disabled)
        };
        Arc::new(b.build()?)
    };
    let has_gpu = main.gpu_info().is_some();
    let fingerprint = Fingerprint::collect(Some(&main));
    let software = fingerprint.adapter_is_software;
    let gpu_ok = |wh: (u32, u32), n: usize| has_gpu && cfg.gpu_ok(wh, n, software);
    log(&format!(
        "machine: {} ({} cores), adapter {}, engine {} threads",
        fingerprint.cpu_model,
        fingerprint.logical_cores,
        fingerprint.adapter,
        fingerprint.engine_threads
    ));
    let mut ctx = Ctx {
        cfg,
        p: cfg.pipeline(),
        main: Arc::clone(&main),
        has_gpu,
        inputs: Inputs {
            distinct: cfg.distinct_images,
            ..Inputs::default()
        },
        out: Vec::new(),
        log,
    };
    let mut extra = extra;
    for suite in &cfg.suites {
        let t = Instant::now();
        (ctx.log)(&format!("suite {}", suite.name()));
        match suite {
            Suite::Latency => ctx.latency()?,
            Suite::Batch => {
                for &wh in &cfg.batch_resolutions {
                    for &n in &cfg.batch_sizes {
                        for path in [PathKind::Cpu, PathKind::Gpu, PathKind::Auto] {
                            if path.needs_gpu() && !gpu_ok(wh, n) {
                                continue;
                            }
                            let name = format!("{} b{n} {}x{}", path.name(), wh.0, wh.1);
                            ctx.batch_case("batch", name, path, wh, n, &cfg.run)?;
                        }
                    }
                }
            }
            Suite::Size => {
                let n = cfg.size_batch;
                for &wh in &cfg.sizes {
                    for path in [PathKind::Cpu, PathKind::Gpu] {
                        if path.needs_gpu() && !gpu_ok(wh, n) {
                            continue;
                        }
                        let name = format!("{} {}x{}", path.name(), wh.0, wh.1);
                        ctx.batch_case("size", name, path, wh, n, &cfg.run)?;
                    }
                }
            }
            Suite::Paths => {
                let (wh, n) = (cfg.paths_resolution, cfg.paths_batch);
                for path in ctx.paths() {
                    if path.needs_gpu() && !gpu_ok(wh, n) {
                        continue;
                    }
                    ctx.batch_case("paths", path.name().into(), path, wh, n, &cfg.run)?;
                }
            }
            Suite::Memory => ctx.memory()?,
            Suite::Cache => ctx.cache()?,
            Suite::Verify => {
                if extra.is_empty() {
                    (ctx.log)("  (no verification workload plugged in)");
                }
                for mut w in extra.drain(..) {
                    if w.case.suite.is_empty() {
                        w.case.suite = "verify".into();
                    }
                    let m = measure(&mut w, &cfg.run, Some(&main))?;
                    ctx.push(m);
                }
            }
        }
        (ctx.log)(&format!(
            "  ({} in {:.1} s)",
            suite.name(),
            t.elapsed().as_secs_f64()
        ));
    }
    let monitor_overhead = if cfg.overhead_pairs > 0 {
        let (wh, n) = (cfg.paths_resolution, cfg.paths_batch);
        let inputs = ctx.inputs.batch(wh, n)?;
        let case = Case {
            suite: "overhead".into(),
            name: format!("cpu b{n} {}x{}", wh.0, wh.1),
            path: "cpu".into(),
            batch: n,
            width: wh.0,
            height: wh.1,
            concurrency: 1,
        };
        let (e, p) = (&*main, &ctx.p);
        let mut w = Workload::new(case, || run_path(e, p, &inputs, PathKind::Cpu));
        let o = monitor_overhead(&mut w, cfg.overhead_pairs, Some(&main), cfg.run.interval)?;
        (ctx.log)(&format!(
            "monitor overhead: with/without {:.3} ({:+.1}% drop) over {} pairs of {}-call passes; one sample {:.0} us ({:.2}% of a core)",
            o.ratio_median, o.drop_percent, o.pairs, o.calls_per_pass, o.sample_us, o.sampler_load_percent
        ));
        Some(o)
    } else {
        None
    };
    if let Some(path) = &cfg.calibration_file {
        main.save_calibration(path)?;
    }
    let mut settings = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        settings.insert(k.to_string(), v);
    };
    set("warmup", cfg.run.warmup.to_string());
    set("repeats", cfg.run.repeats.to_string());
    set(
        "monitor_interval_ms",
        format!("{}", cfg.run.interval.as_millis()),
    );
    set(
        "pipeline",
        format!("fit {0}x{0} bilinear, ImageNet f32 NCHW", cfg.output),
    );
    set(
        "inputs",
        format!(
            "Frame::synthetic JPEG q90, {} distinct per size",
            cfg.distinct_images
        ),
    );
    set("batch_sizes", format!("{:?}", cfg.batch_sizes));
    set("gpu_max_pixels", cfg.gpu_max_pixels.to_string());
    set(
        "software_gpu_max_pixels",
        cfg.software_gpu_max_pixels.to_string(),
    );
    set("gpu_max_batch", cfg.gpu_max_batch.to_string());
    set("memory_budget_items", cfg.memory_budget_items.to_string());
    for (k, v) in &ctx.inputs.encoded_bytes {
        set(&format!("jpeg_bytes_{k}"), v.to_string());
    }
    let mut report = BenchReport {
        schema_version: SCHEMA_VERSION,
        started_unix,
        duration_s: 0.0,
        fingerprint,
        suites: cfg.suites.iter().map(|s| s.name().to_string()).collect(),
        settings,
        measurements: ctx.out,
        monitor_overhead,
        recommendations: None,
    };
    report.recommendations = Some(super::recommend(&report));
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}
