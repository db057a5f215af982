//! Running one batch: features, the scheduler's decision, and the CPU, GPU and split paths.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::report::{BatchOutput, BatchReport, Item};
use super::{DevicePolicy, Engine, Prepared};
use crate::decode;
use crate::error::{Error, ErrorKind, LimitError, Result};
use crate::geometry::Geometry;
use crate::input::Input;
use crate::plan::ValueLut;
use crate::resample::Arithmetic;
use crate::scheduler::{Decision, Device, Features, GpuState, ModelKey, Placement, Reason};
use crate::spec::{DType, Pipeline};
use crate::tensor::Tensor;

/// A file read for its cache digest is handed to the decode when it is at most this big
/// (the size under which files get no disk path record either: a thumbnail's second read
/// cost ~10 us of kernel time, a quarter of its whole work).
const KEEP_READ_MAX: u64 = crate::cache::PATH_RECORD_MIN_BYTES;
/// ...and while the bytes kept for one call total at most this much.
const KEEP_READ_TOTAL: u64 = 32 << 20;

/// How long a worker waits for host memory held by other work before its item fails with
/// `InsufficientNow`. Generous: memory is released as soon as in-flight items finish.
pub(crate) const RESERVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of compressed input per pixel assumed before a header is read: W1's photographic
/// JPEGs at quality 90 take 0.25 B/px (3.0 MB for 12.2 MP).
pub(crate) const ASSUMED_BYTES_PER_PIXEL: f64 = 0.25;

/// The part of a batch one path ran.
#[derive(Debug, Default)]
struct Part {
    items: Vec<(usize, Item)>,
    decode: Duration,
    preprocess: Duration,
    wall: Duration,
    cpu_fallback: usize,
    gpu: Option<crate::gpu::GpuTimings>,
    /// A failure of the whole GPU part (device lost, out of memory, validation).
    gpu_failed: Option<Error>,
}

/// Estimated output megapixels for a `w` x `h` source under `p`.
fn out_mpx(p: &Pipeline, w: u32, h: u32) -> f64 {
    Geometry::plan(w, h, p).map_or(0.0, |g| g.out_pixels() as f64 / 1e6)
}

/// A 4:3 size with about `pixels` pixels (what an encoded input is assumed to hold).
pub(crate) fn assumed_size(pixels: f64) -> (u32, u32) {
    let w = (pixels * 4.0 / 3.0).sqrt().max(1.0);
    (w as u32, (w * 0.75).max(1.0) as u32)
}

/// Per-item features known before anything is decoded.
pub(crate) fn item_features(p: &Pipeline, input: &Input) -> Features {
    match input {
        Input::Frame { frame, .. } => Features {
            items: 1.0,
            encoded_mb: 0.0,
            frame_mpx: frame.width() as f64 * frame.height() as f64 / 1e6,
            out_mpx: out_mpx(p, frame.width(), frame.height()),
        },
        other => {
            let bytes = other.encoded_len().unwrap_or(0) as f64;
            let (w, h) = assumed_size(bytes / ASSUMED_BYTES_PER_PIXEL);
            Features {
                items: 1.0,
                encoded_mb: bytes / 1e6,
                frame_mpx: 0.0,
                out_mpx: out_mpx(p, w, h),
            }
        }
    }
}

/// Host bytes one item holds while it is processed: its decoded frame (and the copy an
/// orientation makes), the resize's intermediate and result, and the output tensor.
pub(crate) fn working_bytes(p: &Pipeline, g: &Geometry, frame: (u32, u32), decoded: bool) -> u64 {
    let px = |w: u32, h: u32| w as u64 * h as u64;
    let frame_bytes = if decoded {
        2 * px(frame.0, frame.1) * 3
    } else {
        0
    };
    let sample = match Arithmetic::for_filter(p.filter) {
        Arithmetic::Fixed8 => 3,
        Arithmetic::Float32 => 12,
    };
    let (rw, rh) = g.resized;
    let intermediate = rh as u64 * frame.0 as u64 * sample;
    let resized = px(rw, rh) * sample;
    let out = g.out_pixels() * p.out_channels() as u64 * p.dtype.size() as u64;
    frame_bytes + intermediate + resized + out
}

impl Engine {
    /// Preprocesses a batch: one result per input, in order. A bad input fails alone.
    ///
    /// Working memory (decoded frames, intermediates) is reserved against the host budget
    /// per item and released as each item finishes; the returned tensors are the caller's
    /// (use [`Engine::stream`] for budgets that cover outputs too).
    ///
    /// # Errors
    /// Only when the pipeline itself is invalid (`InvalidSpec`); per-input failures are in
    /// the items.
    pub fn run(&self, p: &Pipeline, inputs: &[Input]) -> Result<BatchOutput> {
        p.validate()?;
        Ok(self.with_cache(p, inputs, |todo| {
            let feats: Vec<Features> = todo.iter().map(|i| item_features(p, i)).collect();
            let decision = self.decide(p, &feats);
            self.execute(p, todo, &feats, decision)
        }))
    }

    /// Serves what the result cache has, runs `compute` on the rest, stores its results.
    pub(crate) fn with_cache(
        &self,
        p: &Pipeline,
        inputs: &[Input],
        compute: impl FnOnce(&[Input]) -> BatchOutput,
    ) -> BatchOutput {
        let Some(cache) = &self.results else {
            return compute(inputs);
        };
        let start = Instant::now();
        // files read for their digest are decoded from those bytes (not read twice) when
        // small: up to KEEP_READ_MAX each and KEEP_READ_TOTAL per call, so the bytes held
        // between the digest and the decode stay bounded
        let kept_total = AtomicU64::new(0);
        let pipeline_hash = p.stable_hash();
        let (keys, mut kept): (Vec<Option<[u8; 32]>>, Vec<_>) = self.pool.install(|| {
            inputs
                .par_iter()
                .map(
                    |i| match cache.digest_read(i, self.limits.max_input_bytes) {
                        Ok((d, bytes)) => {
                            let bytes = bytes.filter(|b| {
                                let n = b.len() as u64;
                                n <= KEEP_READ_MAX
                                    && kept_total.fetch_add(n, Ordering::Relaxed) + n
                                        <= KEEP_READ_TOTAL
                            });
                            let key = crate::cache::ResultCache::key_with(&d, &pipeline_hash);
                            (Some(key), bytes)
                        }
                        Err(_) => (None, None),
                    },
                )
                .unzip()
        });
        // Lookups and stores run on the pool: a disk-tier entry costs ~50-90 us of kernel
        // time (create, write, rename), as much as the whole work for a thumbnail, and a
        // serial loop left the other cores idle (docs/benchmarks.md, cache reliability).
        let found: Vec<Option<Tensor>> = self.pool.install(|| {
            keys.par_iter()
                .map(|k| k.and_then(|k| cache.get(&k)))
                .collect()
        });
        let mut slots: Vec<Option<Item>> = (0..inputs.len()).map(|_| None).collect();
        let mut todo_idx = Vec::new();
        for (i, got) in found.into_iter().enumerate() {
            match got {
                Some(t) => {
                    slots[i] = Some(Item {
                        name: inputs[i].name(),
                        result: Ok(t),
                        decode: None,
                        cached: true,
                    })
                }
                None => todo_idx.push(i),
            }
        }
        let hits = inputs.len() - todo_idx.len();
        let todo: Vec<Input> = todo_idx
            .iter()
            .map(|&i| match kept[i].take() {
                Some(bytes) => Input::Bytes {
                    name: inputs[i].name(),
                    bytes,
                },
                None => inputs[i].clone(),
            })
            .collect();
        drop(kept);
        let mut out = if todo.is_empty() {
            let d = Decision::fixed(Placement::Cpu, Reason::AllCached);
            BatchOutput {
                items: Vec::new(),
                report: BatchReport::new(d, 0),
            }
        } else {
            compute(&todo)
        };
        self.pool.install(|| {
            todo_idx
                .par_iter()
                .zip(out.items.par_iter())
                .for_each(|(&i, item)| {
                    if let (Some(k), Ok(t)) = (keys[i], &item.result) {
                        cache.put(&k, t);
                    }
                })
        });
        for (&i, item) in todo_idx.iter().zip(out.items.drain(..)) {
            slots[i] = Some(item);
        }
        let mut report = out.report;
        report.items = inputs.len();
        report.cache_hits = hits;
        report.cache_misses = todo_idx.len();
        if todo_idx.is_empty() {
            report.wall = start.elapsed();
        }
        let items = slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.unwrap_or_else(|| Item {
                    name: inputs[i].name(),
                    result: Err(
                        Error::invalid("item produced no result").with_input(inputs[i].name())
                    ),
                    decode: None,
                    cached: false,
                })
            })
            .collect();
        BatchOutput { items, report }
    }

    /// Like [`Engine::run`], but on the given placement instead of the scheduler's choice
    /// (the device policy's fallbacks still apply: under `auto`, items over the GPU's limits
    /// and failed GPU parts run on the CPU).
    ///
    /// # Errors
    /// Only when the pipeline itself is invalid.
    pub fn run_on(
        &self,
        p: &Pipeline,
        inputs: &[Input],
        placement: Placement,
    ) -> Result<BatchOutput> {
        p.validate()?;
        let feats: Vec<Features> = inputs.iter().map(|i| item_features(p, i)).collect();
        let decision = Decision::fixed(placement, Reason::Requested);
        Ok(self.execute(p, inputs, &feats, decision))
    }

    /// Preprocesses one input (latency mode: a cold GPU never serves it).
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

    /// What the scheduler would decide for `inputs` (no work is done).
    ///
    /// # Errors
    /// `InvalidSpec` for a bad pipeline.
    pub fn decide_for(&self, p: &Pipeline, inputs: &[Input]) -> Result<Decision> {
        p.validate()?;
        let feats: Vec<Features> = inputs.iter().map(|i| item_features(p, i)).collect();
        Ok(self.decide(p, &feats))
    }

    pub(crate) fn gpu_state(&self) -> GpuState {
        if let Some(g) = &self.gpu {
            return GpuState {
                available: true,
                software_excluded: g.info().is_software && !self.gpu_explicit,
                warm: self.scheduler.gpu_warm(),
                shares_cpu: g.info().is_software,
            };
        }
        GpuState {
            available: false,
            software_excluded: false,
            warm: false,
            shares_cpu: false,
        }
    }

    pub(crate) fn decide(&self, p: &Pipeline, feats: &[Features]) -> Decision {
        let arith = Arithmetic::for_filter(p.filter);
        let total = feats.iter().fold(Features::default(), |a, f| a.add(f));
        match self.policy {
            DevicePolicy::Cpu => Decision {
                placement: Placement::Cpu,
                predicted_cpu: Some(
                    self.scheduler
                        .predict(ModelKey::new(Device::Cpu, arith), &total),
                ),
                predicted_gpu: None,
                predicted_split: None,
                reason: Reason::PolicyCpu,
            },
            DevicePolicy::Gpu => Decision {
                placement: Placement::Gpu,
                predicted_cpu: None,
                predicted_gpu: Some(
                    self.scheduler
                        .predict(ModelKey::new(Device::Gpu, arith), &total),
                ),
                predicted_split: None,
                reason: Reason::PolicyGpu,
            },
            DevicePolicy::Auto => {
                let state = self.gpu_state();
                if state.available && !state.software_excluded {
                    self.ensure_calibrated();
                }
                self.scheduler.decide(feats, arith, self.gpu_state())
            }
        }
    }

    /// Runs a batch where `decision` says, learning from the measured times.
    pub(crate) fn execute(
        &self,
        p: &Pipeline,
        inputs: &[Input],
        feats: &[Features],
        mut decision: Decision,
    ) -> BatchOutput {
        let start = Instant::now();
        let peak_before = self.host.used();
        let lut = ValueLut::new(p);
        let arith = Arithmetic::for_filter(p.filter);
        let all: Vec<usize> = (0..inputs.len()).collect();
        let (cpu_idx, gpu_idx): (Vec<usize>, Vec<usize>) = match decision.placement {
            Placement::Cpu => (all, vec![]),
            Placement::Gpu => (vec![], all),
            Placement::Split { gpu_items } => {
                let k = gpu_items.min(inputs.len());
                ((k..inputs.len()).collect(), (0..k).collect())
            }
        };
        let (cpu_part, gpu_part) = if gpu_idx.is_empty() {
            (self.cpu_part(p, &lut, inputs, &cpu_idx), None)
        } else if cpu_idx.is_empty() {
            (
                Part::default(),
                Some(self.gpu_part(p, &lut, inputs, &gpu_idx)),
            )
        } else {
            std::thread::scope(|s| {
                let g = s.spawn(|| self.gpu_part(p, &lut, inputs, &gpu_idx));
                let c = self.cpu_part(p, &lut, inputs, &cpu_idx);
                let g = g.join().unwrap_or_else(|_| Part {
                    gpu_failed: Some(
                        crate::GpuError::Validation("gpu worker panicked".into()).into(),
                    ),
                    ..Part::default()
                });
                (c, Some(g))
            })
        };
        let mut report = BatchReport::new(decision.clone(), inputs.len());
        let mut slots: Vec<Option<Item>> = (0..inputs.len()).map(|_| None).collect();
        let sum = |idx: &[usize]| {
            idx.iter()
                .fold(Features::default(), |a, &i| a.add(&feats[i]))
        };
        if !cpu_idx.is_empty() {
            self.scheduler.observe(
                ModelKey::new(Device::Cpu, arith),
                &sum(&cpu_idx),
                cpu_part.wall.as_secs_f64(),
            );
            report.cpu_wall = Some(cpu_part.wall);
        }
        report.decode += cpu_part.decode;
        report.preprocess += cpu_part.preprocess;
        for (i, it) in cpu_part.items {
            slots[i] = Some(it);
        }
        if let Some(g) = gpu_part {
            report.decode += g.decode;
            report.preprocess += g.preprocess;
            report.gpu_wall = Some(g.wall);
            report.cpu_fallback += g.cpu_fallback;
            {
                report.gpu = g.gpu;
            }
            match g.gpu_failed {
                Some(e) if self.policy == DevicePolicy::Auto && e.is_gpu_fallback_eligible() => {
                    // Re-run the GPU part on the CPU; the report says so.
                    decision.reason = Reason::GpuFailedFellBack {
                        error: e.to_string(),
                    };
                    report.decision = decision;
                    report.device = Placement::Cpu;
                    let again = self.cpu_part(p, &lut, inputs, &gpu_idx);
                    report.cpu_fallback += gpu_idx.len();
                    report.decode += again.decode;
                    report.preprocess += again.preprocess;
                    for (i, it) in again.items {
                        slots[i] = Some(it);
                    }
                }
                failed => {
                    if failed.is_none() && g.cpu_fallback == 0 {
                        // Learn only from clean GPU runs.
                        self.scheduler.observe(
                            ModelKey::new(Device::Gpu, arith),
                            &sum(&gpu_idx),
                            g.wall.as_secs_f64(),
                        );
                    }
                    for (i, it) in g.items {
                        slots[i] = Some(it);
                    }
                }
            }
        }
        let mut items = Vec::with_capacity(inputs.len());
        for (i, slot) in slots.into_iter().enumerate() {
            let it = slot.unwrap_or_else(|| Item {
                name: inputs[i].name(),
                result: Err(Error::invalid("item produced no result").with_input(inputs[i].name())),
                decode: None,
                cached: false,
            });
            report.failed += it.result.is_err() as usize;
            report.shrunk_on_load += it.decode.is_some_and(|d| d.shrink > 1) as usize;
            items.push(it);
        }
        report.host_peak = self.host.peak().max(peak_before);
        report.wall = start.elapsed();
        self.scheduler.account(
            report.wall.as_secs_f64(),
            matches!(report.decision.reason, Reason::Explore { .. })
                .then_some(report.decision.placement),
        );
        BatchOutput { items, report }
    }

    fn cpu_part(&self, p: &Pipeline, lut: &ValueLut, inputs: &[Input], idx: &[usize]) -> Part {
        let start = Instant::now();
        let results: Vec<(usize, Item, Duration, Duration)> = self.pool.install(|| {
            idx.par_iter()
                .with_max_len(1)
                .map(|&i| {
                    let (item, d, pp) = self.run_item_cpu(p, lut, &inputs[i]);
                    (i, item, d, pp)
                })
                .collect()
        });
        let mut part = Part::default();
        for (i, item, d, pp) in results {
            part.decode += d;
            part.preprocess += pp;
            part.items.push((i, item));
        }
        part.wall = start.elapsed();
        part
    }

    pub(crate) fn run_item_cpu(
        &self,
        p: &Pipeline,
        lut: &ValueLut,
        input: &Input,
    ) -> (Item, Duration, Duration) {
        let name = input.name();
        let t0 = Instant::now();
        let prepared = self.prepare(p, input, true);
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
            cached: false,
        };
        (item, t1 - t0, t2 - t1)
    }

    /// Reads, decodes (with shrink-on-load) and plans one input, reserving its working
    /// memory first (waiting for other work to release memory when `wait`).
    pub(crate) fn prepare(&self, p: &Pipeline, input: &Input, wait: bool) -> Result<Prepared> {
        let reserve = |bytes: u64| {
            if wait {
                self.host.reserve_wait(bytes, RESERVE_TIMEOUT)
            } else {
                self.host.reserve(bytes)
            }
        };
        let Some(bytes) = input.read(self.limits.max_input_bytes)? else {
            let Input::Frame { frame, .. } = input else {
                return Err(Error::invalid("input has neither bytes nor a frame"));
            };
            let geometry = Geometry::plan(frame.width(), frame.height(), p)?;
            let r = reserve(working_bytes(
                p,
                &geometry,
                (frame.width(), frame.height()),
                false,
            ))?;
            return Ok(Prepared {
                frame: frame.clone(),
                geometry,
                info: None,
                _reservation: Some(r),
            });
        };
        let mut planned = None;
        let mut reservation = None;
        let decoded = decode::load(&bytes, &p.decode, &self.limits, |h| {
            let (w, hh) = h.oriented_size();
            let g = Geometry::plan(w, hh, p)?;
            let k = match p.decode.effective_gap() {
                Some(gap) if h.format == decode::ImageFormat::Jpeg => g.shrink_factor(gap),
                _ => 1,
            };
            let frame = (w.div_ceil(k), hh.div_ceil(k));
            reservation = Some(reserve(
                working_bytes(p, &g, frame, false) + h.decode_peak(k) + bytes.len() as u64,
            )?);
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
        let reservation = match reservation {
            Some(r) => r,
            // the plan always runs before a decode; kept for inputs a decoder plans itself
            None => {
                reserve(working_bytes(p, &full, decoded.info.decoded, true) + bytes.len() as u64)?
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
            _reservation: Some(reservation),
        })
    }

    /// The GPU part: decode on the CPU workers (in groups that fit the host budget), run
    /// each group on the GPU; items over the GPU's limits run on the CPU under `auto`.
    fn gpu_part(&self, p: &Pipeline, lut: &ValueLut, inputs: &[Input], idx: &[usize]) -> Part {
        use crate::plan::ImagePlan;
        let start = Instant::now();
        let mut part = Part::default();
        let Some(gpu) = &self.gpu else {
            part.gpu_failed =
                Some(crate::GpuError::NoAdapter("no gpu in this engine".into()).into());
            return part;
        };
        let auto = self.policy == DevicePolicy::Auto;
        let mut pending: Vec<usize> = idx.to_vec();
        let mut timings = crate::gpu::GpuTimings::default();
        while !pending.is_empty() {
            // Decode what fits now; items that do not fit wait for the next group.
            let t0 = Instant::now();
            let alone = pending.len() == 1;
            let prepared: Vec<(usize, Result<(Prepared, ImagePlan)>)> = self.pool.install(|| {
                pending
                    .par_iter()
                    .with_max_len(1)
                    .map(|&i| {
                        let r = self.prepare(p, &inputs[i], alone).map(|pr| {
                            let plan = ImagePlan::new(pr.geometry, p);
                            (pr, plan)
                        });
                        (i, r)
                    })
                    .collect()
            });
            part.decode += t0.elapsed();
            let mut next = Vec::new();
            let mut group = Vec::new();
            for (i, r) in prepared {
                match r {
                    Err(e) if is_insufficient_now(&e) => next.push(i),
                    Err(e) => part.items.push((i, failed_item(&inputs[i], e, None))),
                    Ok(x) => group.push((i, x)),
                }
            }
            if group.is_empty() && !next.is_empty() {
                // Nothing fitted beside each other: take the first alone, waiting.
                let i = next.remove(0);
                match self.prepare(p, &inputs[i], true) {
                    Ok(pr) => {
                        let plan = ImagePlan::new(pr.geometry, p);
                        group.push((i, (pr, plan)));
                    }
                    Err(e) => part.items.push((i, failed_item(&inputs[i], e, None))),
                }
            }
            pending = next;
            let mut jobs = Vec::new();
            let mut cpu_items = Vec::new();
            for (i, (pr, plan)) in &group {
                match gpu.check_item(&pr.frame, plan) {
                    Ok(()) => jobs.push((*i, &pr.frame, plan)),
                    Err(_) if auto => cpu_items.push(*i),
                    Err(e) => part.items.push((*i, failed_item(&inputs[*i], e, pr.info))),
                }
            }
            let t1 = Instant::now();
            match gpu.run(&jobs, p, lut) {
                Ok((tensors, t)) => {
                    timings.upload += t.upload;
                    timings.kernel += t.kernel;
                    timings.wait += t.wait;
                    timings.readback += t.readback;
                    timings.chunks += t.chunks;
                    timings.bytes_up += t.bytes_up;
                    timings.bytes_down += t.bytes_down;
                    for (i, tensor) in tensors {
                        let info = group.iter().find(|g| g.0 == i).and_then(|g| g.1 .0.info);
                        part.items.push((
                            i,
                            Item {
                                name: inputs[i].name(),
                                result: Ok(tensor),
                                decode: info,
                                cached: false,
                            },
                        ));
                    }
                }
                Err(e) => {
                    part.gpu_failed = Some(e);
                    part.wall = start.elapsed();
                    return part;
                }
            }
            // Over the GPU's limits: the CPU takes them (same prepared frames).
            part.cpu_fallback += cpu_items.len();
            let done: Vec<(usize, Item)> = self.pool.install(|| {
                cpu_items
                    .par_iter()
                    .filter_map(|&i| group.iter().find(|g| g.0 == i))
                    .map(|(i, (pr, _))| {
                        let r = crate::cpu::preprocess(&pr.frame, &pr.geometry, p, lut);
                        let item = Item {
                            name: inputs[*i].name(),
                            result: r.map_err(|e| e.with_input(inputs[*i].name())),
                            decode: pr.info,
                            cached: false,
                        };
                        (*i, item)
                    })
                    .collect()
            });
            part.items.extend(done);
            part.preprocess += t1.elapsed();
        }
        part.gpu = Some(timings);
        part.wall = start.elapsed();
        part
    }

    /// Measures both paths on small synthetic batches so the first `auto` decisions rest on
    /// this machine's numbers, then persists the calibration. Runs once per engine (or never,
    /// when a matching calibration file was loaded).
    fn ensure_calibrated(&self) {
        if !self.calibrate || self.scheduler.calibrated() {
            return;
        }
        let _g = self
            .calibration_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.scheduler.calibrated() {
            return;
        }
        let fixed = Pipeline::new()
            .fit(224, 224)
            .imagenet()
            .layout(crate::spec::Layout::Nchw)
            .dtype(DType::F32);
        let float = fixed.clone().filter(crate::spec::Filter::Lanczos3);
        let jpeg = |w: u32, h: u32, seed: u32| -> Option<Input> {
            let out = crate::frame::Frame::synthetic(w, h, seed)
                .encode_jpeg(90)
                .ok()?;
            Some(Input::bytes(format!("calibration-{seed}.jpg"), out))
        };
        let frames = |n: u32, w: u32, h: u32| -> Vec<Input> {
            (0..n)
                .map(|i| {
                    Input::frame(
                        format!("calibration-{i}"),
                        crate::frame::Frame::synthetic(w, h, i),
                    )
                })
                .collect()
        };
        let sets: Vec<(Pipeline, Vec<Input>)> = vec![
            (fixed.clone(), frames(2, 320, 240)),
            (fixed.clone(), frames(4, 640, 480)),
            (fixed.clone(), frames(8, 1280, 960)),
            (
                fixed.clone(),
                (0..4).filter_map(|i| jpeg(1600, 1200, i)).collect(),
            ),
            // large outputs and small JPEGs: the output and decode terms need their own
            // excitation (a software adapter's output pass is ~100x slower per Mpx)
            (
                fixed.clone().fit(640, 640),
                (0..4).filter_map(|i| jpeg(640, 480, 10 + i)).collect(),
            ),
            (float.clone(), frames(4, 640, 480)),
            (float, frames(4, 1280, 960)),
        ];
        let placements = [
            Decision::fixed(Placement::Gpu, Reason::PolicyGpu),
            Decision::fixed(Placement::Cpu, Reason::PolicyCpu),
        ];
        // Warm the GPU first so calibration measures warm costs (cold start is separate).
        let warm = &sets[0];
        let wf: Vec<Features> = warm.1.iter().map(|i| item_features(&warm.0, i)).collect();
        let _ = self.execute(&warm.0, &warm.1, &wf, placements[0].clone());
        for (p, inputs) in &sets {
            let feats: Vec<Features> = inputs.iter().map(|i| item_features(p, i)).collect();
            for d in &placements {
                let _ = self.execute(p, inputs, &feats, d.clone());
            }
        }
        self.scheduler.set_calibrated();
        if let Some(path) = self.calibration_path() {
            // Best effort: an unwritable cache only means calibrating again next time.
            let _ = self.scheduler.save(&path, &self.fingerprint());
        }
    }
}

fn is_insufficient_now(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Limit(LimitError::InsufficientNow { .. })
    )
}

fn failed_item(input: &Input, e: Error, decode: Option<crate::decode::DecodeInfo>) -> Item {
    Item {
        name: input.name(),
        result: Err(e.with_input(input.name())),
        decode,
        cached: false,
    }
}
