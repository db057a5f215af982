//! Streams of any length with bounded memory, and the plan API that sizes them.
//!
//! ```text
//! engine.plan(&p, &PlanRequest { items, avg_encoded_bytes, .. })
//!     -> BatchPlan { workers, batch_size, placement, peak bytes, seconds, reasons }
//! engine.stream(&p, inputs, options, |StreamItem| ..)
//!     pulls `batch_size` inputs at a time (never more: the iterator is the backpressure),
//!     reserves the batch's outputs against the host budget, runs it (cpu | gpu | split),
//!     hands each result to the sink in input order (or as completed), releases, repeats;
//!     under memory pressure: smaller batches, then trimmed pools, then paused intake.
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::report::Item;
use super::run::{assumed_size, item_features, working_bytes, ASSUMED_BYTES_PER_PIXEL};
use super::Engine;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, LimitError, Result};
use crate::geometry::Geometry;
use crate::input::Input;
use crate::memory::Pressure;
use crate::progress::{Progress, ProgressTracker, Stage};
use crate::scheduler::{Decision, Features, Placement};
use crate::spec::Pipeline;

/// Largest batch the planner proposes: 64 items amortize the GPU's per-batch costs
/// (docs/gpu-notes.md measured with 64-image batches) while keeping a batch's outputs modest.
pub const MAX_BATCH: usize = 64;
/// Fraction of the host budget a planned batch may fill, leaving room for the decode of the
/// next inputs and allocator slack.
const BUDGET_FILL: f64 = 0.8;

/// Cancels a stream from another thread; the stream stops between items and returns what
/// finished.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// The flag behind the token: storing `true` cancels (for signal handlers, e.g.
    /// `signal_hook::flag::register`, which set a flag and may do nothing else).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// A progress callback.
type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// Options of [`Engine::stream`]. Every field has a documented default.
#[must_use]
pub struct StreamOptions {
    batch_size: Option<usize>,
    ordered: bool,
    cancel: Option<CancelToken>,
    total: Option<usize>,
    progress: Option<ProgressFn>,
    interval: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOptions")
            .field("batch_size", &self.batch_size)
            .field("ordered", &self.ordered)
            .field("total", &self.total)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            batch_size: None,
            ordered: true,
            cancel: None,
            total: None,
            progress: None,
            interval: Duration::from_millis(100),
            clock: Arc::new(SystemClock),
        }
    }
}

impl StreamOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items per batch. Default: from [`Engine::plan`] (the budget and the pipeline).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n.max(1));
        self
    }

    /// Results in input order (true) or as each batch's items complete (false).
    /// Default: true.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// A cancellation token. Default: none.
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The number of inputs, when the iterator does not know it (for the ETA).
    /// Default: the iterator's exact size hint, if any.
    pub fn total(mut self, n: usize) -> Self {
        self.total = Some(n);
        self
    }

    /// A progress callback, called at most once per interval and once at the end.
    /// Default: none.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Minimum time between progress events. Default: 100 ms.
    pub fn progress_interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// The clock behind rates and ETAs. Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// One result of a stream.
#[derive(Debug)]
pub struct StreamItem {
    /// Position of the input in the stream.
    pub index: usize,
    /// The result.
    pub item: Item,
}

/// What a stream did.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    /// Items finished (ok or failed).
    pub done: usize,
    /// Of which failed.
    pub failed: usize,
    /// True when the stream stopped on its cancellation token.
    pub cancelled: bool,
    /// Batches run.
    pub batches: usize,
    /// Batches per placement: cpu, gpu, split.
    pub placements: [usize; 3],
    /// Times the batch size was reduced under memory pressure.
    pub shrinks: usize,
    /// Times intake paused under critical pressure.
    pub pauses: usize,
    /// Peak host bytes reserved during the stream.
    pub peak_reserved: u64,
    /// The host budget.
    pub budget: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The decision of the last batch that computed anything.
    pub last_decision: Option<Decision>,
    /// Items served from the result cache.
    pub cache_hits: usize,
}

/// What to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanRequest {
    /// Number of items.
    pub items: usize,
    /// Average compressed size of an input, bytes (0 for decoded frames).
    pub avg_encoded_bytes: u64,
    /// Average pixels per input, when known. Default estimate: `avg_encoded_bytes / 0.25`
    /// (photographic JPEGs at quality 90).
    pub avg_pixels: Option<u64>,
}

/// The plan: how to run `items` under the budgets, each choice with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct BatchPlan {
    /// CPU worker threads to use.
    pub workers: usize,
    /// Items per batch.
    pub batch_size: usize,
    /// Where a full batch runs.
    pub placement: Placement,
    /// Predicted peak host bytes held by the engine.
    pub predicted_peak_bytes: u64,
    /// Predicted wall time for all items, seconds.
    pub predicted_seconds: f64,
    /// Host bytes one item needs while processed (and its output while held).
    pub per_item_bytes: u64,
    /// One line per choice, saying why.
    pub reasons: Vec<String>,
}

impl Engine {
    /// Plans `req` under this engine's budgets and cost models.
    ///
    /// # Errors
    /// `InvalidSpec` for a bad pipeline; `Limit(ExceedsBudget)` when one item alone needs
    /// more than the host budget.
    pub fn plan(&self, p: &Pipeline, req: &PlanRequest) -> Result<BatchPlan> {
        p.validate()?;
        let pixels = req
            .avg_pixels
            .map(|x| x as f64)
            .unwrap_or_else(|| req.avg_encoded_bytes as f64 / ASSUMED_BYTES_PER_PIXEL);
        let (w, h) = assumed_size(pixels.max(1.0));
        let g = Geometry::plan(w, h, p)?;
        let decoded = req.avg_encoded_bytes > 0;
        let k = match p.decode.effective_gap() {
            Some(gap) if decoded => g.shrink_factor(gap),
            _ => 1,
        };
        let frame = (w.div_ceil(k), h.div_ceil(k));
        let out_bytes = g.out_pixels() * p.out_channels() as u64 * p.dtype.size() as u64;
        let work = working_bytes(p, &g, frame, decoded) + req.avg_encoded_bytes;
        let available = self.host.limit().saturating_sub(self.host.used());
        let mut reasons = Vec::new();
        if work > self.host.limit() {
            return Err(LimitError::ExceedsBudget {
                what: crate::error::Resource::HostMemory,
                requested: work,
                limit: self.host.limit(),
            }
            .into());
        }
        // A batch holds its outputs until delivered, plus `workers` items' working memory.
        let workers = self.threads;
        let room = (available as f64 * BUDGET_FILL) as u64;
        let fit = room.saturating_sub(workers as u64 * work) / out_bytes.max(1);
        let mut batch = (fit as usize).clamp(1, MAX_BATCH);
        reasons.push(format!(
            "batch size {batch}: {} of outputs each, {} working memory per worker, {} budget available ({}% usable)",
            crate::error::fmt_bytes(out_bytes),
            crate::error::fmt_bytes(work),
            crate::error::fmt_bytes(available),
            (BUDGET_FILL * 100.0) as u32
        ));
        if req.items > 0 && batch > req.items {
            batch = req.items;
            reasons.push(format!("batch size capped at the {} items", req.items));
        }
        let workers = workers.min(batch).max(1);
        reasons.push(format!(
            "workers {workers}: one per cpu thread ({}), at most one per item in a batch",
            self.threads
        ));
        let one = Features {
            items: 1.0,
            encoded_mb: req.avg_encoded_bytes as f64 / 1e6,
            frame_mpx: if decoded {
                0.0
            } else {
                w as f64 * h as f64 / 1e6
            },
            out_mpx: g.out_pixels() as f64 / 1e6,
        };
        let feats = vec![one; batch];
        let d = self.decide(p, &feats);
        let per_batch = match d.placement {
            Placement::Cpu => d.predicted_cpu,
            Placement::Gpu => d.predicted_gpu,
            Placement::Split { .. } => d.predicted_split,
        }
        .unwrap_or(0.0);
        reasons.push(format!("path: {d}"));
        let batches = req.items.div_ceil(batch).max(1);
        if k > 1 {
            reasons.push(format!("inputs decoded at 1/{k} scale (shrink-on-load)"));
        }
        Ok(BatchPlan {
            workers,
            batch_size: batch,
            placement: d.placement,
            predicted_peak_bytes: batch as u64 * out_bytes + workers as u64 * work,
            predicted_seconds: per_batch * batches as f64,
            per_item_bytes: work + out_bytes,
            reasons,
        })
    }

    /// Processes any number of inputs with bounded memory: a batch at a time, results handed
    /// to `sink` as they are ready (in input order unless `ordered(false)`), with progress
    /// events and cancellation. Memory does not grow with the number of inputs.
    ///
    /// # Errors
    /// `InvalidSpec` for a bad pipeline. Per-input failures go to the sink; cancellation is
    /// reported in the summary.
    pub fn stream<I>(
        &self,
        p: &Pipeline,
        inputs: I,
        mut opts: StreamOptions,
        mut sink: impl FnMut(StreamItem),
    ) -> Result<StreamSummary>
    where
        I: IntoIterator<Item = Input>,
    {
        p.validate()?;
        let start = Instant::now();
        let mut iter = inputs.into_iter().peekable();
        let total = opts.total.or_else(|| {
            let (lo, hi) = iter.size_hint();
            (Some(lo) == hi).then_some(lo)
        });
        let mut tracker = ProgressTracker::new(total, opts.interval, opts.clock.clone());
        let mut summary = StreamSummary {
            done: 0,
            failed: 0,
            cancelled: false,
            batches: 0,
            placements: [0; 3],
            shrinks: 0,
            pauses: 0,
            peak_reserved: 0,
            budget: self.host.limit(),
            elapsed: Duration::ZERO,
            last_decision: None,
            cache_hits: 0,
        };
        let mut batch_size = opts.batch_size.unwrap_or(MAX_BATCH);
        let mut planned = opts.batch_size.is_some();
        let mut index = 0usize;
        let cancelled = |o: &StreamOptions| o.cancel.as_ref().is_some_and(|c| c.is_cancelled());
        while iter.peek().is_some() {
            if cancelled(&opts) {
                summary.cancelled = true;
                break;
            }
            if !planned {
                // Size batches from the first input's size (cheap: file metadata).
                if let Some(first) = iter.peek() {
                    let f = item_features(p, first);
                    let req = PlanRequest {
                        items: total.unwrap_or(0),
                        avg_encoded_bytes: (f.encoded_mb * 1e6) as u64,
                        avg_pixels: (f.frame_mpx > 0.0).then_some((f.frame_mpx * 1e6) as u64),
                    };
                    batch_size = self.plan(p, &req).map(|pl| pl.batch_size).unwrap_or(1);
                }
                planned = true;
            }
            // Memory pressure: shrink, then trim, then pause intake.
            match self.pressure() {
                Pressure::Normal => {}
                Pressure::High => {
                    if batch_size > 1 {
                        batch_size = (batch_size / 2).max(1);
                        summary.shrinks += 1;
                    }
                    self.trim();
                }
                Pressure::Critical => {
                    batch_size = 1;
                    self.trim();
                    summary.pauses += 1;
                    if let Some(cb) = opts.progress.as_mut() {
                        cb(&tracker.snapshot(Stage::Paused));
                    }
                    self.wait_for_pressure(&opts);
                }
            }
            let batch: Vec<Input> = iter.by_ref().take(batch_size).collect();
            // Reserve the batch's outputs: the engine holds them until the sink takes them.
            let out_bytes: u64 = batch.iter().map(|i| output_bytes(p, i)).sum();
            let outputs = self.host.reserve_wait(out_bytes, Duration::from_secs(60));
            let first_index = index;
            index += batch.len();
            let (results, decision) = match outputs {
                Ok(r) => {
                    let mut decision = None;
                    let out = self.with_cache(p, &batch, |todo| {
                        let feats: Vec<Features> =
                            todo.iter().map(|i| item_features(p, i)).collect();
                        let d = self.decide(p, &feats);
                        decision = Some(d.clone());
                        let items = self.run_batch_cancellable(p, todo, &feats, d.clone(), &opts);
                        let mut report = super::report::BatchReport::new(d, todo.len());
                        report.failed = items.iter().filter(|i| i.result.is_err()).count();
                        super::report::BatchOutput { items, report }
                    });
                    summary.cache_hits += out.report.cache_hits;
                    summary.peak_reserved = summary.peak_reserved.max(self.host.peak());
                    drop(r);
                    (out.items, decision)
                }
                // The outputs alone cannot fit: every item of this batch fails with it.
                Err(e) => (
                    batch
                        .iter()
                        .map(|i| Item {
                            name: i.name(),
                            result: Err(Error::from(match e.kind() {
                                crate::ErrorKind::Limit(l) => l.clone(),
                                _ => LimitError::ExceedsBudget {
                                    what: crate::error::Resource::HostMemory,
                                    requested: out_bytes,
                                    limit: self.host.limit(),
                                },
                            })
                            .with_input(i.name())),
                            decode: None,
                            cached: false,
                        })
                        .collect(),
                    None,
                ),
            };
            summary.batches += 1;
            if let Some(d) = &decision {
                let slot = match d.placement {
                    Placement::Cpu => 0,
                    Placement::Gpu => 1,
                    Placement::Split { .. } => 2,
                };
                summary.placements[slot] += 1;
            }
            if decision.is_some() {
                summary.last_decision = decision;
            }
            let mut order: Vec<(usize, Item)> = results
                .into_iter()
                .enumerate()
                .map(|(k, it)| (first_index + k, it))
                .collect();
            if !opts.ordered {
                // Failures are known first (they finish early); successes follow.
                order.sort_by_key(|(_, it)| it.result.is_ok());
            }
            for (i, item) in order {
                let cancelled_item = matches!(
                    item.result.as_ref().err().map(|e| e.kind()),
                    Some(crate::ErrorKind::Cancelled)
                );
                if cancelled_item {
                    summary.cancelled = true;
                    continue;
                }
                let failed = item.result.is_err() as usize;
                summary.done += 1;
                summary.failed += failed;
                sink(StreamItem { index: i, item });
                if let Some(ev) = tracker.record(1, failed, Stage::Preprocess) {
                    if let Some(cb) = opts.progress.as_mut() {
                        cb(&ev);
                    }
                }
            }
            if summary.cancelled {
                break;
            }
        }
        if cancelled(&opts) {
            summary.cancelled = true;
        }
        let last = tracker.finish();
        if let Some(cb) = opts.progress.as_mut() {
            cb(&last);
        }
        summary.peak_reserved = summary.peak_reserved.max(self.host.peak());
        summary.elapsed = start.elapsed();
        Ok(summary)
    }

    /// Runs a batch, but an item whose turn comes after cancellation is skipped
    /// (`ErrorKind::Cancelled`) instead of processed.
    fn run_batch_cancellable(
        &self,
        p: &Pipeline,
        batch: &[Input],
        feats: &[Features],
        decision: Decision,
        opts: &StreamOptions,
    ) -> Vec<Item> {
        match &opts.cancel {
            None => self.execute(p, batch, feats, decision).items,
            Some(token) => {
                if token.is_cancelled() {
                    return batch
                        .iter()
                        .map(|i| Item {
                            name: i.name(),
                            result: Err(Error::new(crate::ErrorKind::Cancelled)),
                            decode: None,
                            cached: false,
                        })
                        .collect();
                }
                // CPU batches check the token per item; GPU batches finish what they started.
                if decision.placement == Placement::Cpu {
                    let lut = crate::plan::ValueLut::new(p);
                    use rayon::prelude::*;
                    self.pool.install(|| {
                        batch
                            .par_iter()
                            .with_max_len(1)
                            .map(|input| {
                                if token.is_cancelled() {
                                    Item {
                                        name: input.name(),
                                        result: Err(Error::new(crate::ErrorKind::Cancelled)),
                                        decode: None,
                                        cached: false,
                                    }
                                } else {
                                    self.run_item_cpu(p, &lut, input).0
                                }
                            })
                            .collect()
                    })
                } else {
                    self.execute(p, batch, feats, decision).items
                }
            }
        }
    }

    /// Blocks while pressure is critical (up to 10 s, re-checking every 20 ms), so in-flight
    /// work elsewhere in the process can release memory.
    fn wait_for_pressure(&self, opts: &StreamOptions) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pressure() == Pressure::Critical && Instant::now() < deadline {
            if opts.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                return;
            }
            // Waiting on the budget's release signal covers the engine's own memory; the
            // system's memory has no signal, so re-check on a short period.
            self.host.wait_release(Duration::from_millis(20));
        }
    }
}

/// Output bytes one input will produce (exact for frames, estimated for encoded inputs).
fn output_bytes(p: &Pipeline, input: &Input) -> u64 {
    let f = item_features(p, input);
    (f.out_mpx * 1e6) as u64 * p.out_channels() as u64 * p.dtype.size() as u64
}
