//! The scheduler: per batch, CPU, GPU or a split of both, from a cost model calibrated on
//! the machine; every decision says what it predicted and why.
//!
//! ```text
//! features per item (encoded MB, frame Mpx, output Mpx)  ->  Scheduler::decide
//!     predicted seconds on each path (cost.rs), plus the GPU's cold-start cost until its
//!     first batch; the best split (GPU takes a prefix so both finish together)
//!     -> Decision { placement, predictions, reason }
//! measured batch  ->  Scheduler::observe  (online refinement, outliers rejected)
//! ```
//!
//! See `README.md` in this folder for the reasoning behind the rules and constants.

pub mod cost;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use cost::{Features, LinearModel};

use crate::resample::Arithmetic;

/// Where a batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "path")]
#[non_exhaustive]
pub enum Placement {
    /// All items on the CPU path.
    Cpu,
    /// All items on the GPU path.
    Gpu,
    /// The first `gpu_items` on the GPU, the rest on the CPU, concurrently.
    Split {
        /// Items (a prefix of the batch) given to the GPU.
        gpu_items: usize,
    },
}

/// A device: where one item, stage or report's work ran. A batch's placement
/// ([`Placement`]) puts its items on one device or splits them over both; the engine's
/// policy (`DevicePolicy`) says which placements are allowed; a [`Reason`] says why one
/// was chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The rayon CPU path (the default: every engine has it).
    #[default]
    Cpu,
    /// The wgpu GPU path.
    Gpu,
}

impl Device {
    /// `"cpu"` or `"gpu"` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Placement {
    /// The device of a single-device placement; `None` for a split.
    pub fn device(self) -> Option<Device> {
        match self {
            Placement::Cpu => Some(Device::Cpu),
            Placement::Gpu => Some(Device::Gpu),
            Placement::Split { .. } => None,
        }
    }

    /// `"cpu"`, `"gpu"` or `"split"` (how batch reports name it).
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Cpu => "cpu",
            Placement::Gpu => "gpu",
            Placement::Split { .. } => "split",
        }
    }
}

impl From<Device> for Placement {
    fn from(p: Device) -> Placement {
        match p {
            Device::Cpu => Placement::Cpu,
            Device::Gpu => Placement::Gpu,
        }
    }
}

/// Why a placement was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Reason {
    /// The device policy forces the CPU.
    PolicyCpu,
    /// The device policy forces the GPU.
    PolicyGpu,
    /// No usable GPU.
    NoGpu,
    /// The only adapter is a software rasterizer sharing the CPU cores.
    SoftwareAdapter,
    /// Latency mode: a single item would pay the GPU's cold start.
    GpuCold,
    /// The cost model predicts this placement is fastest.
    Fastest,
    /// Exploration: the cost model predicts `predicted_best`, but the path chosen instead
    /// has never run a batch of this shape, so its prediction is a guess; running it once
    /// measures it (within a bounded share of the engine's time).
    Explore {
        /// What the cost model alone would have chosen.
        predicted_best: Placement,
    },
    /// The caller asked for this placement for the batch (`Engine::run_on`).
    Requested,
    /// Every item was served from the result cache.
    AllCached,
    /// The GPU run failed; the batch was re-run on the CPU.
    GpuFailedFellBack {
        /// The GPU error.
        error: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::PolicyCpu => write!(f, "policy: cpu"),
            Reason::PolicyGpu => write!(f, "policy: gpu"),
            Reason::NoGpu => write!(f, "no usable gpu adapter"),
            Reason::SoftwareAdapter => {
                write!(
                    f,
                    "the only adapter is a software rasterizer sharing the cpu cores"
                )
            }
            Reason::GpuCold => write!(f, "latency mode: the gpu is cold"),
            Reason::Fastest => write!(f, "predicted fastest"),
            Reason::Explore { predicted_best } => write!(
                f,
                "exploring: this path has not run a batch of this shape (predicted best: {predicted_best:?})"
            ),
            Reason::Requested => write!(f, "placement requested by the caller"),
            Reason::AllCached => write!(f, "every item served from the result cache"),
            Reason::GpuFailedFellBack { error } => {
                write!(f, "gpu failed ({error}); re-ran on the cpu")
            }
        }
    }
}

/// A scheduling decision with the predictions behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Where the batch runs.
    pub placement: Placement,
    /// Predicted seconds on the CPU path.
    pub predicted_cpu: Option<f64>,
    /// Predicted seconds on the GPU path (cold start included when cold).
    pub predicted_gpu: Option<f64>,
    /// Predicted seconds of the best split.
    pub predicted_split: Option<f64>,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// A decision without predictions: a fixed path (a policy, the caller's request, a
    /// fully cached batch, a fallback).
    pub fn fixed(placement: Placement, reason: Reason) -> Decision {
        Decision {
            placement,
            predicted_cpu: None,
            predicted_gpu: None,
            predicted_split: None,
            reason,
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or("-".into(), |s| format!("{:.1} ms", s * 1e3));
        write!(
            f,
            "{:?} ({}; predicted cpu {}, gpu {}, split {})",
            self.placement,
            self.reason,
            ms(self.predicted_cpu),
            ms(self.predicted_gpu),
            ms(self.predicted_split)
        )
    }
}

/// What the scheduler knows of the GPU when deciding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuState {
    /// A GPU exists and may be used.
    pub available: bool,
    /// It is a software adapter that `auto` should not use (not chosen explicitly).
    pub software_excluded: bool,
    /// It has completed a batch (pipelines built, first mapping done).
    pub warm: bool,
    /// It runs on the CPU cores (a software adapter chosen explicitly): a split would make
    /// both halves compete for the same cores, so the scheduler never splits.
    pub shares_cpu: bool,
}

/// Extra seconds a cold GPU's first batch costs. docs/gpu-notes.md (H200): a cold first batch costs
/// 0.15-1 s more than a warm one; 0.3 s is the median of those runs.
pub const COLD_START_SECONDS: f64 = 0.3;
/// A split must beat the best single path by this factor: both halves share the CPU cores
/// for decoding and the host memory bus, which the per-path models do not see.
const SPLIT_MARGIN: f64 = 0.9;
/// Items at or below which a batch is latency-bound (one photo being verified).
pub const LATENCY_ITEMS: usize = 1;
/// Exploring a path may take at most this share of the wall time of the batches run so far
/// (calibration included), per path; a costly exploration therefore pauses exploring that
/// path until the engine has done 20x as much other work. 5% is the overhead StarPU's calibration mode and
/// epsilon-greedy schedulers typically accept; the sweep's worst exploration (64 photos on
/// lavapipe, ~20 s) is then amortized over the next ~400 s.
const EXPLORE_SHARE: f64 = 0.05;
/// Batches of a shape a path must have run before its prediction there is trusted (no
/// exploration, outlier rejection on): one measurement corrects a far-off extrapolation
/// only partly when earlier batches pinned the model, the second confirms it.
pub const EXPLORE_SAMPLES: usize = 2;
/// Batch shapes remembered per path for "has this path run something like it?".
const SHAPES_KEPT: usize = 64;
/// Two batch shapes are alike when their item counts are within 4x and each per-item
/// feature (encoded MB, frame Mpx, output Mpx) is zero in both or within 2x: the sweep's
/// classes (0.3 / 3 / 12 MP inputs, 224² / 640² outputs, 1 / 8 / 64 items) are each
/// their own shape, neighbouring sizes of one class are not.
const SHAPE_ITEMS_RATIO: f64 = 4.0;
const SHAPE_FEATURE_RATIO: f64 = 2.0;

/// A batch's shape: items and per-item encoded MB, frame Mpx and output Mpx.
fn shape(total: &Features) -> [f64; 4] {
    let n = total.items.max(1.0);
    [
        total.items,
        total.encoded_mb / n,
        total.frame_mpx / n,
        total.out_mpx / n,
    ]
}

/// How many of the remembered shapes `q` are alike `want`.
fn count_alike(q: &std::collections::VecDeque<[f64; 4]>, want: &[f64; 4]) -> usize {
    q.iter().filter(|s| alike(s, want)).count()
}

fn alike(a: &[f64; 4], b: &[f64; 4]) -> bool {
    let within = |x: f64, y: f64, r: f64| {
        if x <= 0.0 || y <= 0.0 {
            // zero in both (or a negligible amount in one): the same kind of work
            x.max(y) < 1e-6
        } else {
            x.max(y) / x.min(y) <= r
        }
    };
    within(a[0].max(1.0), b[0].max(1.0), SHAPE_ITEMS_RATIO)
        && (1..4).all(|i| within(a[i], b[i], SHAPE_FEATURE_RATIO))
}

/// Model key: the path and the arithmetic (float resizes cost far more on the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    /// The device.
    pub device: Device,
    /// The resize arithmetic.
    pub arithmetic: Arithmetic,
}

impl ModelKey {
    /// The key for a path and arithmetic.
    pub fn new(device: Device, arithmetic: Arithmetic) -> ModelKey {
        ModelKey { device, arithmetic }
    }
}

/// Starting coefficients `[fixed s, s/item, s/encoded MB, s/frame Mpx, s/output Mpx]`,
/// measured on the development machine (2 vCPU Xeon, docs/benchmarks.md): W1 gives 0.011
/// s/MB of JPEG, W2 0.00023 s/Mpx of bilinear input, the output pass ~0.0015 s/Mpx;
/// lanczos3 input costs ~0.0017 s/Mpx. The GPU prior is the H200 of docs/gpu-notes.md: ~5 ms per
/// submission and readback mapping, uploads at ~3 GB/s (3 bytes/px), readback ~9 GB/s.
pub fn prior(key: ModelKey) -> [f64; cost::FEATURES] {
    match (key.device, key.arithmetic) {
        (Device::Cpu, Arithmetic::Fixed8) => [0.0005, 0.0002, 0.011, 0.00023, 0.0015],
        (Device::Cpu, Arithmetic::Float32) => [0.0005, 0.0002, 0.011, 0.0017, 0.0015],
        (Device::Gpu, Arithmetic::Fixed8) => [0.005, 0.0001, 0.011, 0.001, 0.0015],
        (Device::Gpu, Arithmetic::Float32) => [0.005, 0.0001, 0.011, 0.0012, 0.0015],
    }
}

/// How much a prior is trusted, in "observations": a few calibration batches move it.
const PRIOR_TRUST: f64 = 2.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    models: HashMap<String, LinearModel>,
    #[serde(skip)]
    gpu_warm: bool,
    calibrated: bool,
    /// Recent batch shapes measured per path (model key name), newest last.
    #[serde(default)]
    shapes: HashMap<String, std::collections::VecDeque<[f64; 4]>>,
    /// Wall seconds of executed batches, and of explorations per explored path (`[cpu,
    /// gpu]`; this process only: a restarted engine may explore again).
    #[serde(skip)]
    wall_total: f64,
    #[serde(skip)]
    wall_exploring: [f64; 2],
}

/// The calibration file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    fingerprint: String,
    state: State,
}

/// Cost models and decisions. Thread-safe; one per engine.
#[derive(Debug, Default)]
pub struct Scheduler {
    state: Mutex<State>,
}

fn key_name(k: ModelKey) -> String {
    format!(
        "{}-{}",
        k.device,
        if k.arithmetic == Arithmetic::Float32 {
            "float32"
        } else {
            "fixed8"
        }
    )
}

impl Scheduler {
    /// A scheduler starting from the priors.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_model<T>(&self, key: ModelKey, f: impl FnOnce(&mut LinearModel) -> T) -> T {
        let mut s = self.lock();
        let m = s
            .models
            .entry(key_name(key))
            .or_insert_with(|| LinearModel::new(prior(key), PRIOR_TRUST));
        f(m)
    }

    /// Predicted seconds for `f` on a path.
    pub fn predict(&self, key: ModelKey, f: &Features) -> f64 {
        self.with_model(key, |m| m.predict(f))
    }

    /// Learns from a measured batch; false when rejected as an outlier (the batch's shape
    /// counts as measured on this path either way).
    ///
    /// The first [`EXPLORE_SAMPLES`] batches of a shape on a path skip the outlier test:
    /// their residual is the model's extrapolation error, which is what they must correct.
    pub fn observe(&self, key: ModelKey, f: &Features, seconds: f64) -> bool {
        let novel = {
            let mut s = self.lock();
            if key.device == Device::Gpu {
                s.gpu_warm = true;
            }
            let want = shape(f);
            let q = s.shapes.entry(key_name(key)).or_default();
            let novel = count_alike(q, &want) < EXPLORE_SAMPLES;
            q.push_back(want);
            while q.len() > SHAPES_KEPT {
                q.pop_front();
            }
            novel
        };
        self.with_model(key, |m| {
            if novel {
                m.observe_new_shape(f, seconds)
            } else {
                m.observe(f, seconds)
            }
        })
    }

    /// Counts an executed batch's wall time towards the exploration budgets; `exploring`
    /// names the path explored (`Placement::Cpu` or `Placement::Gpu`), if any.
    pub fn account(&self, seconds: f64, exploring: Option<Placement>) {
        if seconds.is_finite() && seconds > 0.0 {
            let mut s = self.lock();
            s.wall_total += seconds;
            match exploring {
                Some(Placement::Cpu) => s.wall_exploring[0] += seconds,
                Some(_) => s.wall_exploring[1] += seconds,
                None => {}
            }
        }
    }

    /// How many of `key`'s remembered batches are shaped like `total`.
    pub fn alike_runs(&self, key: ModelKey, total: &Features) -> usize {
        let want = shape(total);
        self.lock()
            .shapes
            .get(&key_name(key))
            .map_or(0, |q| count_alike(q, &want))
    }

    /// True while exploring `path` is within its share of the wall time so far. Each path
    /// has its own budget: costly explorations of a slow GPU must not starve the cheap ones
    /// of the CPU (a bench sweep did: the CPU's extrapolation for 3 MP photos stayed 27x too
    /// pessimistic and the batches went to lavapipe).
    fn may_explore(&self, path: Placement) -> bool {
        let s = self.lock();
        let spent = s.wall_exploring[usize::from(path != Placement::Cpu)];
        s.wall_total > 0.0 && spent <= EXPLORE_SHARE * s.wall_total
    }

    /// A copy of a path's model (for reports and tests).
    pub fn model(&self, key: ModelKey) -> LinearModel {
        self.with_model(key, |m| m.clone())
    }

    /// True once the GPU has completed a batch.
    pub fn gpu_warm(&self) -> bool {
        self.lock().gpu_warm
    }

    /// True once calibrated (or loaded from a calibration file).
    pub fn calibrated(&self) -> bool {
        self.lock().calibrated
    }

    /// Marks calibration done.
    pub fn set_calibrated(&self) {
        self.lock().calibrated = true;
    }

    /// Decides where a batch with per-item features `items` runs (policy `auto`).
    pub fn decide(&self, items: &[Features], arithmetic: Arithmetic, gpu: GpuState) -> Decision {
        let total = items.iter().fold(Features::default(), |a, f| a.add(f));
        let cpu_key = ModelKey::new(Device::Cpu, arithmetic);
        let gpu_key = ModelKey::new(Device::Gpu, arithmetic);
        let t_cpu = self.predict(cpu_key, &total);
        let cpu_only = |reason| Decision {
            placement: Placement::Cpu,
            predicted_cpu: Some(t_cpu),
            predicted_gpu: None,
            predicted_split: None,
            reason,
        };
        if !gpu.available {
            return cpu_only(Reason::NoGpu);
        }
        if gpu.software_excluded {
            return cpu_only(Reason::SoftwareAdapter);
        }
        let cold = if gpu.warm { 0.0 } else { COLD_START_SECONDS };
        let t_gpu = self.predict(gpu_key, &total) + cold;
        if items.len() <= LATENCY_ITEMS && !gpu.warm {
            let mut d = cpu_only(Reason::GpuCold);
            d.predicted_gpu = Some(t_gpu);
            return d;
        }
        // Best split: the GPU takes the first k items, the CPU the rest, concurrently.
        let mut prefix = Vec::with_capacity(items.len() + 1);
        prefix.push(Features::default());
        for f in items {
            let last = prefix[prefix.len() - 1];
            prefix.push(last.add(f));
        }
        let mut best_split: Option<(usize, f64)> = None;
        for (k, head) in prefix.iter().enumerate().take(items.len()).skip(1) {
            let g = self.predict(gpu_key, head) + cold;
            let c = self.predict(cpu_key, &total.sub(head));
            let t = g.max(c);
            if best_split.is_none_or(|(_, bt)| t < bt) {
                best_split = Some((k, t));
            }
        }
        let single = t_cpu.min(t_gpu);
        if gpu.shares_cpu {
            best_split = None;
        }
        let (placement, predicted_split) = match best_split {
            Some((k, t)) if t < SPLIT_MARGIN * single => {
                (Placement::Split { gpu_items: k }, Some(t))
            }
            other => (
                if t_gpu < t_cpu {
                    Placement::Gpu
                } else {
                    Placement::Cpu
                },
                other.map(|o| o.1),
            ),
        };
        // Exploration: the model's prediction for a path that has never run a batch of this
        // shape is extrapolated from other shapes and can be far off (a pessimistic prior
        // would keep the cpu from ever running again); run it once, within the budget. A
        // cold gpu is never explored (its cold start is not a measurement of the shape).
        let other = match placement {
            Placement::Cpu if gpu.warm => Some((Placement::Gpu, gpu_key)),
            Placement::Gpu | Placement::Split { .. } => Some((Placement::Cpu, cpu_key)),
            Placement::Cpu => None,
        };
        if let Some((alt, key)) = other {
            if self.alike_runs(key, &total) < EXPLORE_SAMPLES && self.may_explore(alt) {
                return Decision {
                    placement: alt,
                    predicted_cpu: Some(t_cpu),
                    predicted_gpu: Some(t_gpu),
                    predicted_split,
                    reason: Reason::Explore {
                        predicted_best: placement,
                    },
                };
            }
        }
        Decision {
            placement,
            predicted_cpu: Some(t_cpu),
            predicted_gpu: Some(t_gpu),
            predicted_split,
            reason: Reason::Fastest,
        }
    }

    /// Loads a calibration file if its fingerprint (engine version, adapter, threads)
    /// matches; a stale or unreadable file is ignored (and will be overwritten).
    pub fn load(&self, path: &Path, fingerprint: &str) -> bool {
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let Ok(p) = serde_json::from_str::<Persisted>(&text) else {
            return false;
        };
        if p.fingerprint != fingerprint {
            return false;
        }
        let mut s = self.lock();
        let warm = s.gpu_warm;
        *s = p.state;
        s.gpu_warm = warm;
        s.calibrated = true;
        true
    }

    /// Writes the calibration file atomically (temporary file, then rename).
    ///
    /// # Errors
    /// I/O errors creating the directory or writing the file.
    pub fn save(&self, path: &Path, fingerprint: &str) -> std::io::Result<()> {
        let state = self.lock().clone();
        let text = serde_json::to_string_pretty(&Persisted {
            fingerprint: fingerprint.to_string(),
            state,
        })
        .map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(mb: f64, out: f64) -> Features {
        Features {
            items: 1.0,
            encoded_mb: mb,
            frame_mpx: 0.0,
            out_mpx: out,
        }
    }

    fn frame(mpx: f64, out: f64) -> Features {
        Features {
            items: 1.0,
            encoded_mb: 0.0,
            frame_mpx: mpx,
            out_mpx: out,
        }
    }

    const WARM_GPU: GpuState = GpuState {
        available: true,
        software_excluded: false,
        warm: true,
        shares_cpu: false,
    };

    /// A scheduler whose models follow the given per-item costs exactly.
    fn trained(cpu_per_mpx: f64, gpu_per_mpx: f64, gpu_fixed: f64) -> Scheduler {
        let s = Scheduler::new();
        for n in 1..=30 {
            let f = Features {
                items: (n % 8 + 1) as f64,
                encoded_mb: 0.0,
                frame_mpx: (n % 8 + 1) as f64 * 12.0 * (1.0 + (n % 3) as f64),
                out_mpx: 0.0,
            };
            s.observe(
                ModelKey::new(Device::Cpu, Arithmetic::Fixed8),
                &f,
                cpu_per_mpx * f.frame_mpx,
            );
            s.observe(
                ModelKey::new(Device::Gpu, Arithmetic::Fixed8),
                &f,
                gpu_fixed + gpu_per_mpx * f.frame_mpx,
            );
        }
        s
    }

    #[test]
    fn no_gpu_or_software_gpu_means_cpu_with_reason() {
        let s = Scheduler::new();
        let items = vec![item(3.0, 0.4); 16];
        let d = s.decide(
            &items,
            Arithmetic::Fixed8,
            GpuState {
                available: false,
                software_excluded: false,
                warm: false,
                shares_cpu: false,
            },
        );
        assert_eq!(
            (d.placement, d.reason.clone()),
            (Placement::Cpu, Reason::NoGpu)
        );
        let d = s.decide(
            &items,
            Arithmetic::Fixed8,
            GpuState {
                available: true,
                software_excluded: true,
                warm: true,
                shares_cpu: true,
            },
        );
        assert_eq!(d.reason, Reason::SoftwareAdapter);
        assert!(d.predicted_cpu.is_some());
    }

    #[test]
    fn a_cold_gpu_never_serves_a_single_photo() {
        let s = trained(0.01, 0.0001, 0.001);
        let cold = GpuState {
            warm: false,
            ..WARM_GPU
        };
        let d = s.decide(&[frame(12.0, 0.4)], Arithmetic::Fixed8, cold);
        assert_eq!(d.placement, Placement::Cpu);
        assert_eq!(d.reason, Reason::GpuCold);
        assert!(d.predicted_gpu.unwrap() >= COLD_START_SECONDS);
        // once warm, the same photo goes to the (much faster) gpu
        let d = s.decide(&[frame(12.0, 0.4)], Arithmetic::Fixed8, WARM_GPU);
        assert_eq!(d.placement, Placement::Gpu, "{d}");
    }

    #[test]
    fn big_batches_go_to_the_faster_path_and_small_ones_stay() {
        // gpu: 20 ms fixed, 10x cheaper per Mpx than the cpu
        let s = trained(0.002, 0.0002, 0.020);
        let small = vec![frame(0.3, 0.05)];
        let d = s.decide(&small, Arithmetic::Fixed8, WARM_GPU);
        assert_eq!(d.placement, Placement::Cpu, "fixed cost dominates: {d}");
        let big = vec![frame(12.0, 0.3); 64];
        let d = s.decide(&big, Arithmetic::Fixed8, WARM_GPU);
        assert!(
            matches!(d.placement, Placement::Gpu | Placement::Split { .. }),
            "{d}"
        );
    }

    #[test]
    fn comparable_paths_split_so_both_finish_together() {
        // equal per-Mpx cost, no fixed cost: the best is half and half
        let s = trained(0.001, 0.001, 0.0);
        let items = vec![frame(10.0, 0.0); 20];
        let d = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        match d.placement {
            Placement::Split { gpu_items } => assert!((9..=11).contains(&gpu_items), "{d}"),
            p => panic!("expected a split, got {p:?}: {d}"),
        }
        let t = d.predicted_split.unwrap();
        assert!(t < 0.6 * d.predicted_cpu.unwrap(), "{d}");
        // a software adapter shares the cores: never split
        let sw = GpuState {
            shares_cpu: true,
            ..WARM_GPU
        };
        let d = s.decide(&items, Arithmetic::Fixed8, sw);
        assert!(!matches!(d.placement, Placement::Split { .. }), "{d}");
    }

    #[test]
    fn calibration_round_trips_and_is_discarded_on_fingerprint_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calibration.json");
        let s = trained(0.003, 0.0005, 0.01);
        s.save(&path, "v1|gpu-a").unwrap();
        let t = Scheduler::new();
        assert!(t.load(&path, "v1|gpu-a"));
        let key = ModelKey::new(Device::Cpu, Arithmetic::Fixed8);
        assert_eq!(t.model(key), s.model(key));
        assert!(t.calibrated());
        let u = Scheduler::new();
        assert!(!u.load(&path, "v2|gpu-a"), "another engine version");
        assert!(!u.load(&path, "v1|gpu-b"), "another adapter");
        assert!(!u.calibrated());
    }

    /// A fake backend: true seconds per path for a batch's summed features.
    struct Truth {
        cpu: fn(&Features) -> f64,
        gpu: fn(&Features) -> f64,
    }

    /// Runs `rounds` batches of `items` through decide -> the fake backend -> observe and
    /// account, as `Engine::execute` does. Returns the decisions and the seconds spent.
    fn simulate(
        s: &Scheduler,
        items: &[Features],
        truth: &Truth,
        rounds: usize,
    ) -> (Vec<Decision>, f64) {
        let cpu = ModelKey::new(Device::Cpu, Arithmetic::Fixed8);
        let gpu = ModelKey::new(Device::Gpu, Arithmetic::Fixed8);
        let mut out = Vec::new();
        let mut spent = 0.0;
        for _ in 0..rounds {
            let d = s.decide(items, Arithmetic::Fixed8, WARM_GPU);
            let k = match d.placement {
                Placement::Cpu => 0,
                Placement::Gpu => items.len(),
                Placement::Split { gpu_items } => gpu_items,
            };
            let sum = |f: &[Features]| f.iter().fold(Features::default(), |a, x| a.add(x));
            let (g, c) = (sum(&items[..k]), sum(&items[k..]));
            let tg = if k > 0 { (truth.gpu)(&g) } else { 0.0 };
            let tc = if k < items.len() {
                (truth.cpu)(&c)
            } else {
                0.0
            };
            if k > 0 {
                s.observe(gpu, &g, tg);
            }
            if k < items.len() {
                s.observe(cpu, &c, tc);
            }
            let wall = tg.max(tc);
            let explored = matches!(d.reason, Reason::Explore { .. }).then_some(d.placement);
            s.account(wall, explored);
            spent += wall;
            out.push(d);
        }
        (out, spent)
    }

    /// The bench sweep's failure: a cpu model ~70x too pessimistic for small photos and a
    /// gpu (a software adapter chosen explicitly) predicted fast. Without exploration the cpu
    /// never ran again; now the batch shape is explored, the models corrected, and the
    /// batches settle on the cpu.
    #[test]
    fn a_pessimistic_cpu_model_is_corrected_by_exploration() {
        let s = Scheduler::new();
        let cpu = ModelKey::new(Device::Cpu, Arithmetic::Fixed8);
        let gpu = ModelKey::new(Device::Gpu, Arithmetic::Fixed8);
        {
            let mut st = s.lock();
            // many earlier observations pinned these (high trust, past the warm-up)
            let mut c = LinearModel::new([0.05, 0.05, 0.8, 0.05, 0.05], 2.0);
            c.observations = 50;
            st.models.insert(key_name(cpu), c);
            let mut g = LinearModel::new([0.002, 0.0005, 0.011, 0.001, 0.002], 2.0);
            g.observations = 50;
            st.models.insert(key_name(gpu), g);
        }
        s.account(2.0, None); // calibration time
                              // 8 photos of 0.3 MP (0.05 MB of JPEG each) -> 640x640
        let items = vec![item(0.05, 0.41); 8];
        let truth = Truth {
            cpu: |f| 0.0005 + 0.0025 * f.items,
            gpu: |f| 0.005 + 0.3 * f.items,
        };
        let before = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        let (decisions, spent) = simulate(&s, &items, &truth, 200);
        let explored = decisions
            .iter()
            .filter(|d| matches!(d.reason, Reason::Explore { .. }))
            .count();
        assert!(explored >= 1, "the cpu was explored: {before}");
        let last = decisions.last().unwrap();
        assert_eq!(last.placement, Placement::Cpu, "{last}");
        let p = last.predicted_cpu.unwrap();
        let t = (truth.cpu)(&items.iter().fold(Features::default(), |a, x| a.add(x)));
        assert!((p - t).abs() / t < 0.5, "cpu model corrected: {p} vs {t}");
        // the gpu's cost was paid only while learning: total within 1.5x of all-cpu plus
        // the first few gpu batches
        let all_cpu = 200.0 * t;
        assert!(
            spent < all_cpu + 10.0 * (truth.gpu)(&items[0]) * 8.0,
            "{spent}"
        );
    }

    #[test]
    fn a_new_shape_is_explored_twice_then_trusted() {
        // gpu 10x faster per Mpx on 12 MP frames; the cpu has never run 0.3 MP JPEGs
        let s = trained(0.002, 0.0002, 0.001);
        s.account(10.0, None);
        let items = vec![item(0.05, 0.05); 8];
        let truth = Truth {
            cpu: |f| 0.0002 + 0.002 * f.items,
            gpu: |f| 0.001 + 0.004 * f.items,
        };
        let (d, _) = simulate(&s, &items, &truth, 12);
        let explore: Vec<bool> = d
            .iter()
            .map(|d| matches!(d.reason, Reason::Explore { .. }))
            .collect();
        // each path explored at most EXPLORE_SAMPLES times, then the models are trusted
        assert!(
            explore.iter().filter(|e| **e).count() <= 2 * EXPLORE_SAMPLES,
            "{d:?}"
        );
        assert!(
            !explore[2 * EXPLORE_SAMPLES + 2..].iter().any(|e| *e),
            "{d:?}"
        );
        // settled on a placement within 10 % of the truly better single path (a split
        // where both paths are close, as here, or the cpu)
        let last = d.last().unwrap();
        let sum = |f: &[Features]| f.iter().fold(Features::default(), |a, x| a.add(x));
        let k = match last.placement {
            Placement::Cpu => 0,
            Placement::Gpu => 8,
            Placement::Split { gpu_items } => gpu_items,
        };
        let t = |k: usize| {
            let g = if k > 0 {
                (truth.gpu)(&sum(&items[..k]))
            } else {
                0.0
            };
            let c = if k < 8 {
                (truth.cpu)(&sum(&items[k..]))
            } else {
                0.0
            };
            g.max(c)
        };
        assert!(t(k) <= 1.1 * t(0).min(t(8)), "{last}");
    }

    #[test]
    fn exploration_stays_within_its_share_of_the_time() {
        let s = trained(0.002, 0.0002, 0.001);
        let items = vec![item(0.05, 0.05); 8];
        // nothing measured yet: no budget
        let d = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        assert!(!matches!(d.reason, Reason::Explore { .. }), "{d}");
        s.account(1.0, None);
        let d = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        assert!(matches!(d.reason, Reason::Explore { .. }), "{d}");
        let explored = d.placement;
        // a costly exploration of another path does not use this path's budget
        let other = if explored == Placement::Cpu {
            Placement::Gpu
        } else {
            Placement::Cpu
        };
        s.account(1.0, Some(other));
        let d = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        assert!(matches!(d.reason, Reason::Explore { .. }), "{d}");
        // a costly exploration of this path: 1 s of 3 s of work, far over 5 %
        s.account(1.0, Some(explored));
        let d = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        assert_eq!(d.reason, Reason::Fastest, "{d}");
        // ... until the engine has done 20x as much work
        s.account(17.5, None);
        let d = s.decide(&items, Arithmetic::Fixed8, WARM_GPU);
        assert!(matches!(d.reason, Reason::Explore { .. }), "{d}");
        // a cold gpu is never explored
        let cold = GpuState {
            warm: false,
            ..WARM_GPU
        };
        let fresh = Scheduler::new();
        fresh.account(100.0, None);
        let d = fresh.decide(&items, Arithmetic::Fixed8, cold);
        assert_eq!(
            (d.placement, d.reason.clone()),
            (Placement::Cpu, Reason::Fastest),
            "{d}"
        );
    }
}
