//! [`Engine`]: the long-lived worker that owns thread pools (and, with the GPU path, the
//! device), and runs batches.
//!
//! ```text
//! Engine::builder()...build()  ->  engine.run(&pipeline, &inputs)  ->  BatchOutput
//!                                   per item: read -> decode (shrink-on-load) -> plan
//!                                   -> resize -> convert; errors stay with their item
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::decode::{self, DecodeInfo, DecodeLimits};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::input::Input;
use crate::plan::ValueLut;
use crate::spec::Pipeline;
use crate::tensor::Tensor;

/// Where batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DevicePolicy {
    /// The engine decides per batch (and falls back to the CPU when the GPU fails).
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

/// Builds an [`Engine`]. Every setting has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct EngineBuilder {
    threads: Option<usize>,
    limits: DecodeLimits,
    policy: DevicePolicy,
    #[cfg(feature = "gpu")]
    gpu: crate::gpu::GpuSelection,
    gpu_budget: Option<u64>,
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
    #[cfg(feature = "gpu")]
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

    /// Builds the engine.
    ///
    /// # Errors
    /// `InvalidInput` when the thread pool cannot be created; `Gpu(NoAdapter)` when the
    /// policy or selection requires a GPU and none is found; other `Gpu` errors when the
    /// device or its shaders fail to initialize.
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
        #[cfg(feature = "gpu")]
        let gpu = {
            let sel = match (&self.gpu, self.policy) {
                (crate::gpu::GpuSelection::Auto, DevicePolicy::Gpu) => {
                    crate::gpu::GpuSelection::Required
                }
                (crate::gpu::GpuSelection::Disabled, DevicePolicy::Gpu) => {
                    return Err(Error::spec("device", "policy gpu with the gpu disabled"));
                }
                (sel, _) if self.policy == DevicePolicy::Cpu => match sel {
                    crate::gpu::GpuSelection::Auto => crate::gpu::GpuSelection::Disabled,
                    other => other.clone(),
                },
                (sel, _) => sel.clone(),
            };
            crate::gpu::GpuBackend::new(&sel, self.gpu_budget)?
        };
        #[cfg(not(feature = "gpu"))]
        if self.policy == DevicePolicy::Gpu {
            return Err(Error::unsupported(
                "policy gpu: built without the `gpu` feature",
            ));
        }
        Ok(Engine {
            pool: Arc::new(pool),
            threads,
            limits: self.limits,
            policy: self.policy,
            #[cfg(feature = "gpu")]
            gpu,
            #[cfg(feature = "gpu")]
            gpu_explicit: !matches!(self.gpu, crate::gpu::GpuSelection::Auto),
        })
    }
}

/// The preprocessing engine. Cheap to share across threads (`Send + Sync`).
#[derive(Debug)]
pub struct Engine {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    limits: DecodeLimits,
    policy: DevicePolicy,
    #[cfg(feature = "gpu")]
    gpu: Option<crate::gpu::GpuBackend>,
    /// The caller chose the adapter (so `auto` uses it even when it is a software one).
    #[cfg(feature = "gpu")]
    gpu_explicit: bool,
}

/// One decoded, planned input, ready for either path.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) frame: Frame,
    pub(crate) geometry: Geometry,
    pub(crate) info: Option<DecodeInfo>,
}

/// The result for one input of a batch.
#[derive(Debug)]
pub struct Item {
    /// The input's name (path or given name).
    pub name: String,
    /// The tensor, or why this input failed. Other items are unaffected.
    pub result: Result<Tensor>,
    /// How the input was decoded (absent for frames and failed decodes).
    pub decode: Option<DecodeInfo>,
}

/// Where a batch ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Device {
    /// The rayon CPU path.
    Cpu,
    /// The wgpu GPU path.
    Gpu,
}

/// What happened to a batch: where it ran and why, counts and timings.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    /// Path the batch ran on.
    pub device: Device,
    /// Why that path was chosen.
    pub reason: String,
    /// Inputs in the batch.
    pub items: usize,
    /// Inputs that failed.
    pub failed: usize,
    /// Wall time of the whole batch.
    pub wall: Duration,
    /// Summed time spent reading and decoding (across threads).
    pub decode: Duration,
    /// Summed time spent resizing and converting (across threads).
    pub preprocess: Duration,
    /// Items that were decoded with shrink-on-load.
    pub shrunk_on_load: usize,
    /// Items that ran on the CPU although the batch ran on the GPU (over the GPU's limits,
    /// or the whole batch after a GPU failure).
    pub cpu_fallback: usize,
    /// GPU stage timings, when the batch ran on the GPU.
    #[cfg(feature = "gpu")]
    pub gpu: Option<crate::gpu::GpuTimings>,
}

impl std::fmt::Display for BatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.wall.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} items ({} failed) on {:?} in {:.3} s ({:.1} img/s); decode {:.3} s, preprocess {:.3} s (thread-summed); {}",
            self.items,
            self.failed,
            self.device,
            secs,
            self.items as f64 / secs,
            self.decode.as_secs_f64(),
            self.preprocess.as_secs_f64(),
            self.reason
        )?;
        if self.cpu_fallback > 0 {
            write!(f, "; {} items fell back to the cpu", self.cpu_fallback)?;
        }
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            write!(
                f,
                "; gpu: upload {:.1} ms, kernel {:.1} ms, wait {:.1} ms, readback {:.1} ms, {} chunks",
                g.upload.as_secs_f64() * 1e3,
                g.kernel.as_secs_f64() * 1e3,
                g.wait.as_secs_f64() * 1e3,
                g.readback.as_secs_f64() * 1e3,
                g.chunks
            )?;
        }
        Ok(())
    }
}

/// The device chosen for a batch and why.
#[derive(Debug, Clone)]
struct Decision {
    device: Device,
    reason: String,
}

/// Items per batch below which `auto` keeps a batch on the CPU: a GPU batch pays fixed costs
/// (upload setup, submission, readback mapping; 5-15 ms per batch reported for mapAsync,
/// gpuweb#4432) that a few images cannot amortize. A starting point until the scheduler's
/// calibrated cost model replaces it.
const AUTO_GPU_MIN_ITEMS: usize = 4;

/// Results of a batch, in input order, plus its report.
#[derive(Debug)]
pub struct BatchOutput {
    /// One entry per input, in order.
    pub items: Vec<Item>,
    /// Where and how the batch ran.
    pub report: BatchReport,
}

impl BatchOutput {
    /// Stacks all tensors into one `[N, ...]` batch tensor.
    ///
    /// # Errors
    /// The first item error, or `InvalidInput` when shapes differ.
    pub fn stacked(&self) -> Result<Tensor> {
        let mut ts = Vec::with_capacity(self.items.len());
        for it in &self.items {
            match &it.result {
                Ok(t) => ts.push(t),
                Err(e) => return Err(Error::invalid(format!("item {} failed: {e}", it.name))),
            }
        }
        Tensor::stack(&ts)
    }
}

impl Engine {
    /// A builder with the documented defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            threads: None,
            limits: DecodeLimits::default(),
            policy: DevicePolicy::Auto,
            #[cfg(feature = "gpu")]
            gpu: crate::gpu::GpuSelection::Auto,
            gpu_budget: None,
        }
    }

    /// Worker threads of the CPU pool.
    pub fn cpu_threads(&self) -> usize {
        self.threads
    }

    /// Decode limits in force.
    pub fn decode_limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Preprocesses a batch: one result per input, in order. A bad input fails alone.
    ///
    /// # Errors
    /// Only when the pipeline itself is invalid (`InvalidSpec`); per-input failures are in
    /// the items.
    pub fn run(&self, p: &Pipeline, inputs: &[Input]) -> Result<BatchOutput> {
        p.validate()?;
        let decision = self.decide(inputs.len());
        #[cfg(feature = "gpu")]
        if decision.device == Device::Gpu {
            if let Some(gpu) = &self.gpu {
                return self.run_gpu(gpu, p, inputs, decision);
            }
        }
        self.run_cpu(p, inputs, decision)
    }

    fn decide(&self, items: usize) -> Decision {
        let cpu = |reason: &str| Decision {
            device: Device::Cpu,
            reason: reason.to_string(),
        };
        match self.policy {
            DevicePolicy::Cpu => return cpu("policy: cpu"),
            DevicePolicy::Gpu => {
                return Decision {
                    device: Device::Gpu,
                    reason: "policy: gpu".into(),
                }
            }
            DevicePolicy::Auto => {}
        }
        #[cfg(feature = "gpu")]
        if let Some(gpu) = &self.gpu {
            if gpu.info().is_software && !self.gpu_explicit {
                return cpu(
                    "auto: the only adapter is a software rasterizer sharing the cpu cores",
                );
            }
            if items < AUTO_GPU_MIN_ITEMS {
                return cpu(&format!(
                    "auto: {items} items is below {AUTO_GPU_MIN_ITEMS}; gpu fixed costs dominate"
                ));
            }
            return Decision {
                device: Device::Gpu,
                reason: format!("auto: {items} items on {}", gpu.info().name),
            };
        }
        let _ = items;
        cpu("auto: no gpu adapter")
    }

    fn empty_report(&self, decision: &Decision, items: usize) -> BatchReport {
        BatchReport {
            device: decision.device,
            reason: decision.reason.clone(),
            items,
            failed: 0,
            wall: Duration::ZERO,
            decode: Duration::ZERO,
            preprocess: Duration::ZERO,
            shrunk_on_load: 0,
            cpu_fallback: 0,
            #[cfg(feature = "gpu")]
            gpu: None,
        }
    }

    fn run_cpu(&self, p: &Pipeline, inputs: &[Input], decision: Decision) -> Result<BatchOutput> {
        let start = Instant::now();
        let lut = ValueLut::new(p);
        let results: Vec<(Item, Duration, Duration)> = self.pool.install(|| {
            inputs
                .par_iter()
                .with_max_len(1)
                .map(|input| self.run_item_cpu(p, &lut, input))
                .collect()
        });
        let mut report = self.empty_report(&decision, inputs.len());
        let mut items = Vec::with_capacity(results.len());
        for (item, d, pp) in results {
            report.decode += d;
            report.preprocess += pp;
            report.failed += item.result.is_err() as usize;
            report.shrunk_on_load += item.decode.is_some_and(|i| i.shrink > 1) as usize;
            items.push(item);
        }
        report.wall = start.elapsed();
        Ok(BatchOutput { items, report })
    }

    /// Preprocesses one input (on the device the policy picks for a batch of one).
    ///
    /// # Errors
    /// `InvalidSpec` for a bad pipeline, otherwise the input's own error.
    pub fn run_one(&self, p: &Pipeline, input: &Input) -> Result<Tensor> {
        let out = self.run(p, std::slice::from_ref(input))?;
        out.items
            .into_iter()
            .next()
            .map(|i| i.result)
            .unwrap_or_else(|| Err(Error::invalid("empty batch result")))
    }

    /// The GPU in use, if any.
    #[cfg(feature = "gpu")]
    pub fn gpu_info(&self) -> Option<&crate::gpu::GpuInfo> {
        self.gpu.as_ref().map(|g| g.info())
    }

    /// GPU memory accounting (budget, in use, pooled, peak), if a GPU is in use.
    #[cfg(feature = "gpu")]
    pub fn gpu_memory(&self) -> Option<crate::gpu::GpuMemoryUsage> {
        self.gpu.as_ref().map(|g| g.memory())
    }

    /// Releases pooled GPU buffers; returns the bytes freed.
    pub fn trim(&self) -> u64 {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.trim();
        }
        0
    }

    /// The device policy.
    pub fn device_policy(&self) -> DevicePolicy {
        self.policy
    }

    #[cfg(feature = "gpu")]
    fn run_gpu(
        &self,
        gpu: &crate::gpu::GpuBackend,
        p: &Pipeline,
        inputs: &[Input],
        decision: Decision,
    ) -> Result<BatchOutput> {
        use crate::plan::ImagePlan;
        let start = Instant::now();
        let lut = ValueLut::new(p);
        let auto = self.policy == DevicePolicy::Auto;
        let mut report = self.empty_report(&decision, inputs.len());
        // 1. decode and plan on the CPU workers
        let t0 = Instant::now();
        let prepared: Vec<Result<(Prepared, ImagePlan)>> = self.pool.install(|| {
            inputs
                .par_iter()
                .with_max_len(1)
                .map(|input| {
                    let pr = self.prepare(p, input)?;
                    let plan = ImagePlan::new(pr.geometry, p);
                    Ok((pr, plan))
                })
                .collect()
        });
        report.decode = t0.elapsed();
        // 2. items over the GPU's limits run on the CPU (auto) or fail (gpu policy)
        let mut results: Vec<Option<Result<Tensor>>> = (0..inputs.len()).map(|_| None).collect();
        let mut jobs = Vec::new();
        let mut cpu_items = Vec::new();
        for (i, r) in prepared.iter().enumerate() {
            match r {
                Err(_) => {}
                Ok((pr, plan)) => match gpu.check_item(&pr.frame, plan) {
                    Ok(()) => jobs.push((i, &pr.frame, plan)),
                    Err(e) if auto => {
                        let _ = e;
                        cpu_items.push(i);
                    }
                    Err(e) => results[i] = Some(Err(e)),
                },
            }
        }
        // 3. the GPU batch; a failure of the whole batch falls back to the CPU under auto
        let t1 = Instant::now();
        match gpu.run(&jobs, p, &lut) {
            Ok((tensors, timings)) => {
                for (i, t) in tensors {
                    results[i] = Some(Ok(t));
                }
                report.gpu = Some(timings);
            }
            Err(e) if auto && e.is_gpu_fallback_eligible() => {
                report.reason = format!("{}; gpu failed ({e}), fell back to cpu", report.reason);
                report.device = Device::Cpu;
                cpu_items.extend(jobs.iter().map(|j| j.0));
            }
            Err(e) => {
                let msg = e.to_string();
                for j in &jobs {
                    results[j.0] = Some(Err(match e.kind() {
                        crate::ErrorKind::Gpu(g) => Error::from(g.clone()),
                        _ => Error::from(crate::GpuError::Validation(msg.clone())),
                    }));
                }
            }
        }
        report.cpu_fallback = cpu_items.len();
        let cpu_done: Vec<(usize, Result<Tensor>)> = self.pool.install(|| {
            cpu_items
                .par_iter()
                .map(|&i| {
                    let r = match &prepared[i] {
                        Ok((pr, _)) => crate::cpu::preprocess(&pr.frame, &pr.geometry, p, &lut),
                        Err(_) => Err(Error::invalid("not prepared")),
                    };
                    (i, r)
                })
                .collect()
        });
        for (i, r) in cpu_done {
            results[i] = Some(r);
        }
        report.preprocess = t1.elapsed();
        // 4. assemble in input order
        let mut items = Vec::with_capacity(inputs.len());
        for ((input, prep), res) in inputs.iter().zip(prepared).zip(results) {
            let name = input.name();
            let (result, decode) = match prep {
                Err(e) => (Err(e), None),
                Ok((pr, _)) => (
                    res.unwrap_or_else(|| Err(Error::invalid("item produced no result"))),
                    pr.info,
                ),
            };
            report.failed += result.is_err() as usize;
            report.shrunk_on_load += decode.is_some_and(|i| i.shrink > 1) as usize;
            items.push(Item {
                result: result.map_err(|e| e.with_input(name.clone())),
                name,
                decode,
            });
        }
        report.wall = start.elapsed();
        Ok(BatchOutput { items, report })
    }

    fn run_item_cpu(
        &self,
        p: &Pipeline,
        lut: &ValueLut,
        input: &Input,
    ) -> (Item, Duration, Duration) {
        let name = input.name();
        let t0 = Instant::now();
        let prepared = self.prepare(p, input);
        let t1 = Instant::now();
        let (result, decode) = match prepared {
            Ok(pr) => (
                crate::cpu::preprocess(&pr.frame, &pr.geometry, p, lut),
                pr.info,
            ),
            Err(e) => (Err(e), None),
        };
        let t2 = Instant::now();
        let item = Item {
            result: result.map_err(|e| e.with_input(name.clone())),
            name,
            decode,
        };
        (item, t1 - t0, t2 - t1)
    }

    /// Reads, decodes (with shrink-on-load) and plans one input.
    pub(crate) fn prepare(&self, p: &Pipeline, input: &Input) -> Result<Prepared> {
        let Some(bytes) = input.read()? else {
            let Input::Frame { frame, .. } = input else {
                return Err(Error::invalid("input has neither bytes nor a frame"));
            };
            let geometry = Geometry::plan(frame.width(), frame.height(), p)?;
            return Ok(Prepared {
                frame: frame.clone(),
                geometry,
                info: None,
            });
        };
        let mut planned = None;
        let decoded = decode::load(&bytes, &p.decode, &self.limits, |h| {
            let (w, hh) = h.oriented_size();
            let g = Geometry::plan(w, hh, p)?;
            let k = g.shrink_factor(p.decode.reducing_gap);
            planned = Some(g);
            Ok(k)
        })?;
        let full = match planned {
            Some(g) => g,
            None => {
                let (w, h) = decoded.info.original;
                Geometry::plan(w, h, p)?
            }
        };
        let geometry = full.rescaled(
            decoded.info.shrink,
            decoded.frame.width(),
            decoded.frame.height(),
        );
        Ok(Prepared {
            frame: decoded.frame,
            geometry,
            info: Some(decoded.info),
        })
    }
}
