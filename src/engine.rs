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

/// Builds an [`Engine`]. Every setting has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct EngineBuilder {
    threads: Option<usize>,
    limits: DecodeLimits,
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

    /// Builds the engine.
    ///
    /// # Errors
    /// `InvalidInput` when the thread pool cannot be created.
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
        Ok(Engine {
            pool: Arc::new(pool),
            threads,
            limits: self.limits,
        })
    }
}

/// The preprocessing engine. Cheap to share across threads (`Send + Sync`).
#[derive(Debug)]
pub struct Engine {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    limits: DecodeLimits,
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
        )
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

impl Engine {
    /// A builder with the documented defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            threads: None,
            limits: DecodeLimits::default(),
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
        let start = Instant::now();
        let lut = ValueLut::new(p);
        let results: Vec<(Item, Duration, Duration)> = self.pool.install(|| {
            inputs
                .par_iter()
                .with_max_len(1)
                .map(|input| self.run_item_cpu(p, &lut, input))
                .collect()
        });
        let mut report = BatchReport {
            device: Device::Cpu,
            reason: "cpu path (the only path in this engine)".into(),
            items: inputs.len(),
            failed: 0,
            wall: Duration::ZERO,
            decode: Duration::ZERO,
            preprocess: Duration::ZERO,
            shrunk_on_load: 0,
        };
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

    /// Preprocesses one input.
    ///
    /// # Errors
    /// `InvalidSpec` for a bad pipeline, otherwise the input's own error.
    pub fn run_one(&self, p: &Pipeline, input: &Input) -> Result<Tensor> {
        p.validate()?;
        let lut = ValueLut::new(p);
        self.pool
            .install(|| self.run_item_cpu(p, &lut, input))
            .0
            .result
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
