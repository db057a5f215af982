//! The engine's entry for clients inside the crate (verification): preprocess borrowed,
//! already decoded frames, each with its own geometry, on a placement decided by the
//! caller. No copies of the frames, no scheduler round trip, no cache.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::Engine;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::plan::ValueLut;
use crate::scheduler::{Decision, Features, Placement};
use crate::spec::Pipeline;
use crate::tensor::Tensor;

/// One frame to preprocess: the frame and where its pixels go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameJob<'a> {
    pub(crate) frame: &'a Frame,
    pub(crate) geometry: Geometry,
}

/// Results in job order, and the wall time of the whole call.
pub(crate) type FrameResults = (Vec<Result<Tensor>>, Duration);

impl Engine {
    /// The scheduler's decision for preprocessing `frames` with `p` (decoded frames: no
    /// encoded bytes to account for), without copying them into inputs.
    pub(crate) fn decide_frames(&self, p: &Pipeline, frames: &[&Frame]) -> Decision {
        let feats: Vec<Features> = frames
            .iter()
            .map(|f| Features {
                items: 1.0,
                encoded_mb: 0.0,
                frame_mpx: f.width() as f64 * f.height() as f64 / 1e6,
                out_mpx: Geometry::plan(f.width(), f.height(), p)
                    .map_or(0.0, |g| g.out_pixels() as f64 / 1e6),
            })
            .collect();
        self.decide(p, &feats)
    }

    /// Preprocesses `jobs` on `placement` (`Split` runs on the CPU): every job shares `p`'s
    /// output format (channel order, normalization, layout, dtype, filter) and has its own
    /// geometry (crop, size, placement in the output). One result per job, in order.
    ///
    /// On the GPU the jobs run in one pipelined batch; an item over the GPU's limits runs
    /// on the CPU. A failure of the GPU batch (device lost, out of memory) is returned for
    /// every job, so the caller can fall back.
    pub(crate) fn preprocess_frames(
        &self,
        jobs: &[FrameJob<'_>],
        p: &Pipeline,
        placement: Placement,
    ) -> FrameResults {
        let t0 = Instant::now();
        let lut = ValueLut::new(p);
        if placement == Placement::Gpu {
            if let Some(r) = self.preprocess_frames_gpu(jobs, p, &lut) {
                return (r, t0.elapsed());
            }
        }
        let out = self.pool().install(|| {
            jobs.par_iter()
                .map(|j| crate::cpu::preprocess(j.frame, &j.geometry, p, &lut))
                .collect()
        });
        (out, t0.elapsed())
    }

    /// The GPU part of [`Engine::preprocess_frames`]; `None` without a GPU backend.
    fn preprocess_frames_gpu(
        &self,
        jobs: &[FrameJob<'_>],
        p: &Pipeline,
        lut: &ValueLut,
    ) -> Option<Vec<Result<Tensor>>> {
        use crate::plan::ImagePlan;
        let gpu = self.gpu_backend()?;
        let plans: Vec<ImagePlan> = jobs.iter().map(|j| ImagePlan::new(j.geometry, p)).collect();
        let mut out: Vec<Option<Result<Tensor>>> = (0..jobs.len()).map(|_| None).collect();
        let mut gpu_jobs = Vec::with_capacity(jobs.len());
        let mut cpu_jobs = Vec::new();
        for (i, (j, plan)) in jobs.iter().zip(&plans).enumerate() {
            match gpu.check_item(j.frame, plan) {
                Ok(()) => gpu_jobs.push((i, j.frame, plan)),
                Err(_) => cpu_jobs.push(i),
            }
        }
        match gpu.run(&gpu_jobs, p, lut) {
            Ok((tensors, _)) => {
                for (i, t) in tensors {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(Ok(t));
                    }
                }
            }
            Err(e) => {
                for &(i, _, _) in &gpu_jobs {
                    out[i] = Some(Err(e.duplicate()));
                }
            }
        }
        let cpu: Vec<(usize, Result<Tensor>)> = self.pool().install(|| {
            cpu_jobs
                .par_iter()
                .map(|&i| {
                    (
                        i,
                        crate::cpu::preprocess(jobs[i].frame, &jobs[i].geometry, p, lut),
                    )
                })
                .collect()
        });
        for (i, r) in cpu {
            out[i] = Some(r);
        }
        Some(
            out.into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::invalid("gpu batch lost an item"))))
                .collect(),
        )
    }
}
