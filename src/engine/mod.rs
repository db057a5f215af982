//! [`Engine`]: the long-lived worker that owns the thread pool, the GPU device, the
//! scheduler and the memory budgets, and runs batches and streams.
//!
//! ```text
//! Engine::builder()...build()
//!   engine.run(&pipeline, &inputs)      one batch -> BatchOutput (one result per input)
//!   engine.stream(&pipeline, iter, ..)  any number of inputs, bounded memory, progress,
//!                                       cancellation, results to a sink
//!   engine.plan(&pipeline, &request)    workers, batch size, path, peak memory, time
//! per batch: features -> scheduler decision (cpu | gpu | split) -> per item: read ->
//! header -> reserve host memory -> decode (shrink-on-load) -> resize -> convert
//! ```

mod frames;
mod report;
mod run;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub(crate) use frames::FrameJob;
pub use report::{BatchOutput, BatchReport, Item};
pub(crate) use run::RESERVE_TIMEOUT;
pub use stream::{
    BatchPlan, CancelToken, PlanRequest, StreamItem, StreamOptions, StreamSummary, MAX_BATCH,
};

use crate::decode::{DecodeInfo, DecodeLimits};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::memory::{HostBudget, MemoryLimit, SysinfoProbe, SystemProbe};
use crate::scheduler::Scheduler;

/// Where batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DevicePolicy {
    /// The scheduler decides per batch (and re-runs on the CPU when the GPU fails).
    #[default]
    Auto,
    /// Always the CPU path.
    Cpu,
    /// Always the GPU path (building the engine fails without an adapter).
    Gpu,
}

impl std::str::FromStr for DevicePolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DevicePolicy::Auto),
            "cpu" => Ok(DevicePolicy::Cpu),
            "gpu" => Ok(DevicePolicy::Gpu),
            _ => Err(Error::spec(
                "device",
                format!("{s:?}: expected auto, cpu or gpu"),
            )),
        }
    }
}

/// Default host budget: half of the memory available when the engine is built, leaving the
/// rest to the embedding application and the page cache (libvips and DALI users report
/// OOMs when a pipeline takes everything it sees).
pub const DEFAULT_HOST_FRACTION: f64 = 0.5;

/// Builds an [`Engine`]. Every setting has a documented default.
///
/// # Examples
///
/// ```no_run
/// use veridoc::{DevicePolicy, Engine, MemoryLimit};
///
/// let engine = Engine::builder()
///     .cpu_threads(4)
///     .device_policy(DevicePolicy::Auto) // the scheduler picks CPU, GPU or a split
///     .host_memory_limit(MemoryLimit::Bytes(2 << 30))
///     .cache_dir("/var/cache/veridoc") // the scheduler's calibration
///     .build()?;
/// for w in engine.warnings() {
///     eprintln!("warning: {w}"); // e.g. an unusable cache directory
/// }
/// # Ok::<(), veridoc::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EngineBuilder {
    threads: Option<usize>,
    limits: DecodeLimits,
    policy: DevicePolicy,
    gpu: crate::gpu::GpuSelection,
    gpu_budget: Option<u64>,
    host_limit: MemoryLimit,
    probe: Option<Arc<dyn SystemProbe>>,
    cache_dir: Option<PathBuf>,
    persist: bool,
    calibrate: bool,
    result_cache: Option<crate::cache::CacheConfig>,
    model_cache: Option<crate::cache::ModelCacheConfig>,
}

impl EngineBuilder {
    /// Worker threads of the engine's private rayon pool.
    /// Default: the machine's available parallelism.
    pub fn cpu_threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Decode limits checked from each header. Default: [`DecodeLimits::default`].
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Where batches run. Default: [`DevicePolicy::Auto`].
    pub fn device_policy(mut self, policy: DevicePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Which GPU to use. Default: `GpuSelection::Auto` (the best adapter, or none).
    pub fn gpu(mut self, selection: crate::gpu::GpuSelection) -> Self {
        self.gpu = selection;
        self
    }

    /// GPU memory budget in bytes (wgpu cannot report free VRAM, so the engine accounts its
    /// own buffers against this). Default: derived from the adapter (512 MiB for software
    /// adapters, otherwise twice the largest buffer clamped to 1-4 GiB).
    pub fn gpu_memory_limit(mut self, bytes: u64) -> Self {
        self.gpu_budget = Some(bytes);
        self
    }

    /// Host memory budget for the engine's own work (decoded frames, intermediates, and in
    /// streams the outputs it holds). Default:
    /// `MemoryLimit::FractionOfAvailable(0.5)` ([`DEFAULT_HOST_FRACTION`]).
    pub fn host_memory_limit(mut self, limit: MemoryLimit) -> Self {
        self.host_limit = limit;
        self
    }

    /// The system probe behind pressure levels and fractional limits. Default: sysinfo.
    pub fn system_probe(mut self, probe: Arc<dyn SystemProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Directory for persistent state (the scheduler's calibration; caches later).
    /// Default: `$VERIDOC_CACHE_DIR`, else `$XDG_CACHE_HOME/veridoc`, else
    /// `$HOME/.cache/veridoc`; none if those are unset.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Keep nothing on disk (no calibration file). Default: false.
    pub fn no_persist(mut self) -> Self {
        self.persist = false;
        self
    }

    /// Calibrate the cost model with a short measurement at first use when a GPU is
    /// available and no calibration file matches. Default: true.
    pub fn calibrate(mut self, on: bool) -> Self {
        self.calibrate = on;
        self
    }

    /// Enables the result cache (memory tier, plus a disk tier when the config has a
    /// directory). Default: none (identity photos are not kept unless asked for).
    pub fn result_cache(mut self, cfg: crate::cache::CacheConfig) -> Self {
        self.result_cache = Some(cfg);
        self
    }

    /// Model cache settings. Default: `ModelCacheConfig::default()` with its disk tier in
    /// `<cache dir>/models` (none with `no_persist`).
    pub fn model_cache(mut self, cfg: crate::cache::ModelCacheConfig) -> Self {
        self.model_cache = Some(cfg);
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    /// `InvalidInput` when the thread pool cannot be created; `Gpu(NoAdapter)` when the
    /// policy or selection requires a GPU and none is found; other `Gpu` errors when the
    /// device or its shaders fail to initialize. A cache directory that cannot be created or
    /// written is not an error: that cache runs without its disk tier, and
    /// [`Engine::warnings`] says so (also printed once to stderr).
    pub fn build(self) -> Result<Engine> {
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("veridoc-cpu-{i}"))
            .build()
            .map_err(|e| Error::invalid(format!("cpu thread pool: {e}")))?;
        let gpu = {
            use crate::gpu::GpuSelection as S;
            let sel = match (&self.gpu, self.policy) {
                (S::Auto, DevicePolicy::Gpu) => S::Required,
                (S::Disabled, DevicePolicy::Gpu) => {
                    return Err(Error::spec("device", "policy gpu with the gpu disabled"));
                }
                (S::Auto, DevicePolicy::Cpu) => S::Disabled,
                (sel, _) => sel.clone(),
            };
            crate::gpu::GpuBackend::new(&sel, self.gpu_budget)?
        };
        let probe: Arc<dyn SystemProbe> = match self.probe {
            Some(p) => p,
            None => Arc::new(SysinfoProbe::new()),
        };
        let host = HostBudget::new(self.host_limit.resolve(probe.as_ref()).max(1));
        let cache_dir = self.cache_dir.or_else(default_cache_dir);
        let cache_dir = if self.persist { cache_dir } else { None };
        let results = match self.result_cache {
            Some(cfg) => Some(crate::cache::ResultCache::new(cfg)?),
            None => None,
        };
        let model_cfg = match (self.model_cache, &cache_dir) {
            (Some(c), _) => c,
            (None, Some(d)) => {
                crate::cache::ModelCacheConfig::default().spill_dir(d.join("models"))
            }
            (None, None) => crate::cache::ModelCacheConfig::default(),
        };
        let models = crate::cache::ModelCache::new(model_cfg)?;
        let engine = Engine {
            pool: Arc::new(pool),
            threads,
            limits: self.limits,
            policy: self.policy,
            gpu_explicit: !matches!(self.gpu, crate::gpu::GpuSelection::Auto),
            gpu,
            scheduler: Scheduler::new(),
            host,
            probe,
            cache_dir,
            calibrate: self.calibrate,
            results,
            models,
            scratch: crate::cpu::scratch::Scratch::default(),
            detector_photos: std::sync::atomic::AtomicU64::new(0),
            calibration_lock: std::sync::Mutex::new(()),
        };
        if let Some(path) = engine.calibration_path() {
            engine.scheduler.load(&path, &engine.fingerprint());
        }
        // The library prints nothing: callers show `Engine::warnings` (the CLIs do, once).
        Ok(engine)
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("VERIDOC_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("veridoc"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("veridoc"))
}

/// The preprocessing engine. Share it across threads by reference or `Arc` (`Send + Sync`).
///
/// # Examples
///
/// ```
/// use veridoc::{DevicePolicy, Engine, Frame, Input, Pipeline};
///
/// let engine = Engine::builder()
///     .cpu_threads(2)
///     .device_policy(DevicePolicy::Cpu)
///     .no_persist()
///     .build()?;
/// let inputs = [Input::frame("synthetic", Frame::synthetic(320, 240, 1))];
/// let out = engine.run(&Pipeline::new().fit(64, 64), &inputs)?;
/// match &out.items[0].result {
///     Ok(tensor) => assert_eq!(tensor.shape(), &[64, 64, 3]), // NHWC u8 by default
///     Err(e) => panic!("{e}"),
/// }
/// # Ok::<(), veridoc::Error>(())
/// ```
#[derive(Debug)]
pub struct Engine {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    limits: DecodeLimits,
    policy: DevicePolicy,
    gpu: Option<crate::gpu::GpuBackend>,
    /// The caller chose the adapter (so `auto` uses it even when it is a software one).
    gpu_explicit: bool,
    scheduler: Scheduler,
    host: HostBudget,
    probe: Arc<dyn SystemProbe>,
    cache_dir: Option<PathBuf>,
    calibrate: bool,
    calibration_lock: std::sync::Mutex<()>,
    results: Option<crate::cache::ResultCache>,
    models: crate::cache::ModelCache,
    /// Reused activation buffers of the CPU networks ([`crate::cpu::scratch`]).
    scratch: crate::cpu::scratch::Scratch,
    /// Photos run through the face detector ([`Engine::detector_photos`]).
    detector_photos: std::sync::atomic::AtomicU64,
}

/// One decoded, planned input, ready for either path, with the host memory it holds.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) frame: Frame,
    pub(crate) geometry: Geometry,
    pub(crate) info: Option<DecodeInfo>,
    pub(crate) _reservation: Option<crate::memory::Reservation>,
}

impl Engine {
    /// A builder with the documented defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            threads: None,
            limits: DecodeLimits::default(),
            policy: DevicePolicy::Auto,
            gpu: crate::gpu::GpuSelection::Auto,
            gpu_budget: None,
            host_limit: MemoryLimit::FractionOfAvailable(DEFAULT_HOST_FRACTION),
            probe: None,
            cache_dir: None,
            persist: true,
            calibrate: true,
            result_cache: None,
            model_cache: None,
        }
    }

    /// The result cache, when enabled.
    pub fn result_cache(&self) -> Option<&crate::cache::ResultCache> {
        self.results.as_ref()
    }

    /// The model cache.
    pub fn models(&self) -> &crate::cache::ModelCache {
        &self.models
    }

    /// What the engine runs without that it was asked for: a cache disk tier whose
    /// directory cannot be created or written (the cache then works in memory only). The
    /// library prints nothing; command-line tools show these once after building.
    pub fn warnings(&self) -> Vec<String> {
        let results = self.results.as_ref().and_then(|r| r.disk_warning());
        results
            .into_iter()
            .chain(self.models.disk_warning())
            .map(str::to_string)
            .collect()
    }

    /// Forgets every cached result and model, in memory and on disk; returns the number of
    /// result entries removed.
    pub fn wipe_caches(&self) -> usize {
        self.models.wipe();
        self.results.as_ref().map_or(0, |r| r.wipe())
    }

    /// Worker threads of the CPU pool.
    pub fn cpu_threads(&self) -> usize {
        self.threads
    }

    /// Decode limits in force.
    pub fn decode_limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// The device policy.
    pub fn device_policy(&self) -> DevicePolicy {
        self.policy
    }

    /// The host memory budget (shared with everything the engine reserves).
    pub fn host_budget(&self) -> &HostBudget {
        &self.host
    }

    /// Current memory pressure, from the budget and the system probe.
    pub fn pressure(&self) -> crate::memory::Pressure {
        self.host.pressure(self.probe.as_ref())
    }

    /// The system probe.
    pub fn system_probe(&self) -> &Arc<dyn SystemProbe> {
        &self.probe
    }

    /// The scheduler (cost models, calibration state).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// How many photos this engine has run through the face detector since it was built
    /// (verification and [`Engine::detect_faces`]); a report served from the result cache
    /// does not count. Jobs and tests read it to prove that a re-run did no detector work.
    pub fn detector_photos(&self) -> u64 {
        self.detector_photos
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `n` more photos run through the face detector.
    pub(crate) fn count_detector_photos(&self, n: usize) {
        self.detector_photos
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The directory for persistent state, if any.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    /// The GPU in use, if any.
    pub fn gpu_info(&self) -> Option<&crate::gpu::GpuInfo> {
        self.gpu.as_ref().map(|g| g.info())
    }

    /// GPU memory accounting (budget, in use, pooled, peak), if a GPU is in use.
    pub fn gpu_memory(&self) -> Option<crate::gpu::GpuMemoryUsage> {
        self.gpu.as_ref().map(|g| g.memory())
    }

    /// The engine's CPU worker pool.
    pub(crate) fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// The CPU networks' reusable activation buffers.
    pub(crate) fn scratch(&self) -> &crate::cpu::scratch::Scratch {
        &self.scratch
    }

    /// The GPU backend, if one is open.
    pub(crate) fn gpu_backend(&self) -> Option<&crate::gpu::GpuBackend> {
        self.gpu.as_ref()
    }

    /// Releases pooled GPU buffers; returns the bytes freed.
    pub fn trim(&self) -> u64 {
        if let Some(g) = &self.gpu {
            return g.trim();
        }
        0
    }

    /// Identifies the machine state the calibration belongs to: engine version, adapter and
    /// CPU threads.
    pub(crate) fn fingerprint(&self) -> String {
        let adapter = self.gpu.as_ref().map_or("none".to_string(), |g| {
            let i = g.info();
            format!("{}|{}|{}", i.name, i.driver, i.driver_info)
        });
        format!("{}|{}|threads={}", crate::VERSION, adapter, self.threads)
    }

    /// Writes what the scheduler has learned so far (its cost models, refined by every batch
    /// this engine ran) as a calibration file. An engine built on the same machine state
    /// (version, adapter, threads) loads it at build when it lies at
    /// [`Engine::calibration_file`] (the `veridoc-bench` crate writes one after a run).
    ///
    /// # Errors
    /// `Io` when the directory or file cannot be written.
    pub fn save_calibration(&self, path: &std::path::Path) -> Result<()> {
        self.scheduler
            .save(path, &self.fingerprint())
            .map_err(Error::from)
    }

    /// Where this engine loads its calibration from at build (none without a cache dir).
    pub fn calibration_file(&self) -> Option<PathBuf> {
        self.calibration_path()
    }

    fn calibration_path(&self) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join("scheduler-calibration.json"))
    }
}
