//! What a batch returns: one [`Item`] per input and a [`BatchReport`].

use std::time::Duration;

use serde::Serialize;

use crate::decode::DecodeInfo;
use crate::error::{Error, Result};
use crate::scheduler::{Decision, Placement};
use crate::tensor::Tensor;

/// The result for one input of a batch.
#[derive(Debug)]
pub struct Item {
    /// The input's name (path or given name).
    pub name: String,
    /// The tensor, or why this input failed. Other items are unaffected.
    pub result: Result<Tensor>,
    /// How the input was decoded (absent for frames, failed decodes and cache hits).
    pub decode: Option<DecodeInfo>,
    /// Served from the result cache.
    pub cached: bool,
}

fn placement_name<S: serde::Serializer>(p: &Placement, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// What happened to a batch: where it ran and why, counts and timings.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    /// Where the batch ran (serialized as `cpu`, `gpu` or `split`): the decision's
    /// placement, or the CPU after a GPU failure.
    #[serde(serialize_with = "placement_name")]
    pub device: Placement,
    /// The scheduler's decision: placement, predicted time per path, reason.
    pub decision: Decision,
    /// Inputs in the batch.
    pub items: usize,
    /// Inputs that failed.
    pub failed: usize,
    /// Wall time of the whole batch.
    pub wall: Duration,
    /// Wall time of the CPU part (split batches) or of the whole batch on the CPU.
    pub cpu_wall: Option<Duration>,
    /// Wall time of the GPU part, decode included.
    pub gpu_wall: Option<Duration>,
    /// Summed time spent reading and decoding (across threads).
    pub decode: Duration,
    /// Summed time spent resizing and converting (across threads; GPU wall for GPU items).
    pub preprocess: Duration,
    /// Items that were decoded with shrink-on-load.
    pub shrunk_on_load: usize,
    /// Items that ran on the CPU although placed on the GPU (over the GPU's limits, or the
    /// whole part after a GPU failure).
    pub cpu_fallback: usize,
    /// Host memory reserved by the engine at its peak during the batch (budget-wide).
    pub host_peak: u64,
    /// Items served from the result cache.
    pub cache_hits: usize,
    /// Items looked up in the result cache and computed.
    pub cache_misses: usize,
    /// GPU stage timings, when part of the batch ran on the GPU.
    pub gpu: Option<crate::gpu::GpuTimings>,
}

impl BatchReport {
    pub(crate) fn new(decision: Decision, items: usize) -> BatchReport {
        BatchReport {
            device: decision.placement,
            decision,
            items,
            failed: 0,
            wall: Duration::ZERO,
            cpu_wall: None,
            gpu_wall: None,
            decode: Duration::ZERO,
            preprocess: Duration::ZERO,
            shrunk_on_load: 0,
            cpu_fallback: 0,
            host_peak: 0,
            cache_hits: 0,
            cache_misses: 0,
            gpu: None,
        }
    }
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
            self.decision
        )?;
        if self.cpu_fallback > 0 {
            write!(f, "; {} items fell back to the cpu", self.cpu_fallback)?;
        }
        if self.cache_hits + self.cache_misses > 0 {
            write!(
                f,
                "; result cache {} hits, {} misses",
                self.cache_hits, self.cache_misses
            )?;
        }
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
