//! Running the networks of verification on a decided placement: the face search's
//! detector passes, and the landmark and expression networks on the subject's face.
//!
//! Every stage is batched over a chunk of photos: one preprocessing call for all the
//! passes (or crops) of all the photos (`Engine::preprocess_frames`), then the network,
//! grouped by input size (on the GPU one dispatch chain per size).

use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::Verifier;
use crate::detect::{self, Face, Pass, PlannedPass};
use crate::engine::FrameJob;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::landmarks::{self, Expression, FaceNetWeights, Landmarks};
use crate::scheduler::Placement;
use crate::tensor::Tensor;

/// The fine pass keeps faces up to this height in its input (pixels); larger ones are the
/// coarse passes' range, and at the fine pass's scale a large face is often boxed in part
/// only.
pub(crate) const FINE_MAX_FACE: f32 = 200.0;

/// A face-crop network's raw outputs for one photo, and the crop's geometry.
type CropOut = Option<Result<(Vec<f32>, Geometry)>>;

/// What the face-crop networks give for one photo's subject.
pub(crate) type FaceNets = Option<(Landmarks, Option<Expression>)>;

/// Per-photo results of a stage, with each photo's share of the preprocessing and
/// network time.
pub(crate) struct StageOut<T> {
    pub(crate) results: Vec<Result<T>>,
    pub(crate) preprocess: Vec<Duration>,
    pub(crate) network: Vec<Duration>,
    /// Set when the GPU failed and the stage re-ran on the CPU.
    pub(crate) fell_back: Option<String>,
}

/// Splits `total` over items in proportion to `weights`.
fn shares(total: Duration, weights: &[f64]) -> Vec<Duration> {
    let sum: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| {
            if sum > 0.0 {
                total.mul_f64(w / sum)
            } else {
                Duration::ZERO
            }
        })
        .collect()
}

impl Verifier<'_> {
    /// Raw detector heads of `inputs` (all of one size) on `placement`.
    fn heads(
        &self,
        inputs: &[&Tensor],
        size: (usize, usize),
        placement: Placement,
    ) -> Vec<Result<Vec<f32>>> {
        if placement == Placement::Gpu {
            let r = self.engine.gpu_face_model().and_then(|det| {
                let gpu = self.engine.gpu_backend().ok_or_else(|| {
                    Error::from(crate::GpuError::NoAdapter("no gpu in this engine".into()))
                })?;
                let xs: Vec<&[f32]> = inputs
                    .iter()
                    .map(|t| {
                        t.as_f32()
                            .ok_or_else(|| Error::invalid("detector input is not f32"))
                    })
                    .collect::<Result<_>>()?;
                gpu.detect(&det, &xs, size)
            });
            return match r {
                Ok(h) => h.into_iter().map(Ok).collect(),
                Err(e) => inputs.iter().map(|_| Err(e.duplicate())).collect(),
            };
        }
        let _ = placement;
        let w = &self.models.detector;
        self.engine.pool().install(|| {
            inputs
                .par_iter()
                .map(|t| {
                    t.as_f32()
                        .ok_or_else(|| Error::invalid("detector input is not f32"))
                        .and_then(|x| {
                            crate::cpu::detect::forward_with(w, x, size, self.engine.scratch())
                        })
                })
                .collect()
        })
    }

    /// Runs `passes[i]` over `frames[i]`: the faces each photo's passes found (in its
    /// pixels, before merging).
    pub(crate) fn run_passes(
        &self,
        frames: &[&Frame],
        passes: &[Vec<PlannedPass>],
        placement: Placement,
    ) -> StageOut<Vec<Face>> {
        let out = self.run_passes_on(frames, passes, placement);
        if placement == Placement::Gpu {
            let gpu_failed = out.results.iter().find_map(|r| match r {
                Err(e) if e.is_gpu_fallback_eligible() => Some(e.to_string()),
                _ => None,
            });
            if let Some(why) = gpu_failed {
                let mut cpu = self.run_passes_on(frames, passes, Placement::Cpu);
                cpu.fell_back = Some(why);
                return cpu;
            }
        }
        out
    }

    fn run_passes_on(
        &self,
        frames: &[&Frame],
        passes: &[Vec<PlannedPass>],
        placement: Placement,
    ) -> StageOut<Vec<Face>> {
        let cfg = &self.opts.profile.detector;
        // one job per (photo, pass)
        let mut jobs: Vec<FrameJob<'_>> = Vec::new();
        let mut owner: Vec<(usize, Pass)> = Vec::new();
        let mut results: Vec<Result<Vec<Face>>> = frames.iter().map(|_| Ok(Vec::new())).collect();
        for (i, (f, ps)) in frames.iter().zip(passes).enumerate() {
            for p in ps {
                match Geometry::plan(f.width(), f.height(), &p.pipeline) {
                    Ok(g) => {
                        jobs.push(FrameJob {
                            frame: f,
                            geometry: g,
                        });
                        owner.push((i, p.pass));
                    }
                    Err(e) => results[i] = Err(e),
                }
            }
        }
        let weights: Vec<f64> = jobs
            .iter()
            .map(|j| j.geometry.out_pixels() as f64)
            .collect();
        let (tensors, pre) =
            self.engine
                .preprocess_frames(&jobs, &detect::detector_pipeline(), placement);
        // group by input size
        let t0 = Instant::now();
        let mut heads: Vec<Option<Result<Vec<f32>>>> = (0..jobs.len()).map(|_| None).collect();
        let mut sizes: Vec<(usize, usize)> = jobs
            .iter()
            .map(|j| (j.geometry.out.0 as usize, j.geometry.out.1 as usize))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let idx: Vec<usize> = (0..jobs.len())
                .filter(|&k| {
                    (
                        jobs[k].geometry.out.0 as usize,
                        jobs[k].geometry.out.1 as usize,
                    ) == size
                })
                .collect();
            let ok: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&k| tensors[k].is_ok())
                .collect();
            let inputs: Vec<&Tensor> = ok
                .iter()
                .filter_map(|&k| tensors[k].as_ref().ok())
                .collect();
            for (k, h) in ok.iter().zip(self.heads(&inputs, size, placement)) {
                heads[*k] = Some(h);
            }
        }
        let net = t0.elapsed();
        for (k, ((i, pass), t)) in owner.iter().zip(tensors).enumerate() {
            let head = match (t, heads[k].take()) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(h)) => h,
                (Ok(_), None) => Err(Error::invalid("detector head missing")),
            };
            match (&mut results[*i], head) {
                (Ok(faces), Ok(h)) => {
                    let g = &jobs[k].geometry;
                    let scale = g.resized.1 as f32 / g.bx[3].max(1e-9) as f32;
                    faces.extend(
                        detect::pass_faces(&h, g, cfg)
                            .into_iter()
                            .filter(|f| *pass != Pass::Fine || f.height * scale <= FINE_MAX_FACE),
                    );
                }
                (slot @ Ok(_), Err(e)) => *slot = Err(e),
                (Err(_), _) => {}
            }
        }
        let mut w = vec![0f64; frames.len()];
        for ((i, _), x) in owner.iter().zip(&weights) {
            w[*i] += x;
        }
        StageOut {
            results,
            preprocess: shares(pre, &w),
            network: shares(net, &w),
            fell_back: None,
        }
    }

    /// Raw outputs of a face-crop network for `crops` on `placement`.
    fn face_net(
        &self,
        net: &FaceNetWeights,
        model: &str,
        crops: &[&Tensor],
        placement: Placement,
    ) -> Vec<Result<Vec<f32>>> {
        if placement == Placement::Gpu {
            let r = self
                .engine
                .gpu_face_net(model, net.outputs())
                .and_then(|resident| {
                    let gpu = self.engine.gpu_backend().ok_or_else(|| {
                        Error::from(crate::GpuError::NoAdapter("no gpu in this engine".into()))
                    })?;
                    let xs: Vec<&[f32]> = crops
                        .iter()
                        .map(|t| {
                            t.as_f32()
                                .ok_or_else(|| Error::invalid("face crop is not f32"))
                        })
                        .collect::<Result<_>>()?;
                    gpu.face_net(&resident, &xs)
                });
            return match r {
                Ok(h) => h.into_iter().map(Ok).collect(),
                Err(e) => crops.iter().map(|_| Err(e.duplicate())).collect(),
            };
        }
        let _ = (placement, model);
        self.engine.pool().install(|| {
            crops
                .par_iter()
                .map(|t| {
                    t.as_f32()
                        .ok_or_else(|| Error::invalid("face crop is not f32"))
                        .and_then(|x| crate::cpu::landmarks::forward(net, x))
                })
                .collect()
        })
    }

    /// Crops `boxes[i]` out of `frames[i]` (skipping `None`), preprocesses them and runs
    /// `net`: per photo, the raw outputs and the crop's geometry.
    fn crops_through(
        &self,
        frames: &[&Frame],
        boxes: &[Option<[u32; 4]>],
        net: &FaceNetWeights,
        model: &str,
        placement: Placement,
    ) -> (Vec<CropOut>, Duration, Duration) {
        let mut jobs = Vec::new();
        let mut owner = Vec::new();
        let mut out: Vec<CropOut> = frames.iter().map(|_| None).collect();
        for (i, (f, b)) in frames.iter().zip(boxes).enumerate() {
            let Some(b) = b else { continue };
            match Geometry::plan(f.width(), f.height(), &landmarks::crop_pipeline(*b)) {
                Ok(g) => {
                    jobs.push(FrameJob {
                        frame: f,
                        geometry: g,
                    });
                    owner.push(i);
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        if jobs.is_empty() {
            return (out, Duration::ZERO, Duration::ZERO);
        }
        let (tensors, pre) = self.engine.preprocess_frames(
            &jobs,
            &landmarks::crop_pipeline([0, 0, 1, 1]),
            placement,
        );
        let t0 = Instant::now();
        let ok: Vec<usize> = (0..jobs.len()).filter(|&k| tensors[k].is_ok()).collect();
        let inputs: Vec<&Tensor> = ok
            .iter()
            .filter_map(|&k| tensors[k].as_ref().ok())
            .collect();
        let mut outs: Vec<Option<Result<Vec<f32>>>> = (0..jobs.len()).map(|_| None).collect();
        for (k, o) in ok.iter().zip(self.face_net(net, model, &inputs, placement)) {
            outs[*k] = Some(o);
        }
        let net_t = t0.elapsed();
        for (k, (i, t)) in owner.iter().zip(tensors).enumerate() {
            out[*i] = Some(match (t, outs[k].take()) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(Ok(o))) => Ok((o, jobs[k].geometry)),
                (Ok(_), Some(Err(e))) => Err(e),
                (Ok(_), None) => Err(Error::invalid("face net output missing")),
            });
        }
        (out, pre, net_t)
    }

    /// Landmarks (and expressions, with the expression model) of `faces[i]` in
    /// `frames[i]`, as face-api computes them: landmarks on the detection box's crop, the
    /// expression on the landmarks' bounding box padded by 20 % (face-api's `alignedRect`).
    pub(crate) fn run_face_nets(
        &self,
        frames: &[&Frame],
        faces: &[Option<Face>],
        placement: Placement,
    ) -> StageOut<FaceNets> {
        let out = self.run_face_nets_on(frames, faces, placement);
        if placement == Placement::Gpu {
            let gpu_failed = out.results.iter().find_map(|r| match r {
                Err(e) if e.is_gpu_fallback_eligible() => Some(e.to_string()),
                _ => None,
            });
            if let Some(why) = gpu_failed {
                let mut cpu = self.run_face_nets_on(frames, faces, Placement::Cpu);
                cpu.fell_back = Some(why);
                return cpu;
            }
        }
        out
    }

    fn run_face_nets_on(
        &self,
        frames: &[&Frame],
        faces: &[Option<Face>],
        placement: Placement,
    ) -> StageOut<FaceNets> {
        let n = frames.len();
        let mut results: Vec<Result<FaceNets>> = (0..n).map(|_| Ok(None)).collect();
        let Some(lm_net) = &self.models.landmarks else {
            return StageOut {
                results,
                preprocess: vec![Duration::ZERO; n],
                network: vec![Duration::ZERO; n],
                fell_back: None,
            };
        };
        let boxes: Vec<Option<[u32; 4]>> = frames
            .iter()
            .zip(faces)
            .map(|(f, face)| {
                face.and_then(|b| {
                    landmarks::crop_box(b.x, b.y, b.width, b.height, f.width(), f.height())
                })
            })
            .collect();
        let (lm, pre1, net1) =
            self.crops_through(frames, &boxes, lm_net, landmarks::LANDMARK_MODEL, placement);
        let mut marks: Vec<Option<Landmarks>> = vec![None; n];
        for (i, r) in lm.into_iter().enumerate() {
            match r {
                Some(Ok((o, g))) => marks[i] = Some(Landmarks::from_outputs(&o, &g)),
                Some(Err(e)) => results[i] = Err(e),
                None => {}
            }
        }
        let (mut pre2, mut net2) = (Duration::ZERO, Duration::ZERO);
        let mut expr: Vec<Option<Expression>> = vec![None; n];
        if let Some(ex_net) = &self.models.expression {
            let boxes: Vec<Option<[u32; 4]>> = frames
                .iter()
                .zip(&marks)
                .map(|(f, m)| {
                    let m = m.as_ref()?;
                    let (mut x0, mut y0) = (f32::INFINITY, f32::INFINITY);
                    let (mut x1, mut y1) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
                    for p in &m.points {
                        x0 = x0.min(p.x);
                        y0 = y0.min(p.y);
                        x1 = x1.max(p.x);
                        y1 = y1.max(p.y);
                    }
                    let (w, h) = (x1 - x0, y1 - y0);
                    landmarks::crop_box(
                        x0 - 0.1 * w,
                        y0 - 0.1 * h,
                        1.2 * w,
                        1.2 * h,
                        f.width(),
                        f.height(),
                    )
                })
                .collect();
            let (ex, p2, n2) = self.crops_through(
                frames,
                &boxes,
                ex_net,
                landmarks::EXPRESSION_MODEL,
                placement,
            );
            pre2 = p2;
            net2 = n2;
            for (i, r) in ex.into_iter().enumerate() {
                match r {
                    Some(Ok((o, _))) => expr[i] = Some(Expression::from_logits(&o)),
                    Some(Err(e)) => results[i] = Err(e),
                    None => {}
                }
            }
        }
        for i in 0..n {
            if let (Ok(slot), Some(m)) = (&mut results[i], marks[i].take()) {
                *slot = Some((m, expr[i].take()));
            }
        }
        let weights: Vec<f64> = faces.iter().map(|f| f.is_some() as u8 as f64).collect();
        StageOut {
            results,
            preprocess: shares(pre1 + pre2, &weights),
            network: shares(net1 + net2, &weights),
            fell_back: None,
        }
    }
}
