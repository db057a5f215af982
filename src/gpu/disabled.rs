//! The GPU path's disabled twin: what `crate::gpu` is in a build without the `gpu` feature
//! (no wgpu compiled in). It has the same types and methods as the wgpu backend, so the
//! engine, the scheduler and verification read the same in both builds; no backend can
//! exist (`GpuBackend` has no values), and asking for one says why.

#[path = "info.rs"]
mod info;

pub use info::{GpuInfo, GpuMemoryUsage, GpuSelection, GpuTimings};

/// The adapters this machine offers for compute: none without the `gpu` feature.
pub fn adapters() -> Vec<GpuInfo> {
    Vec::new()
}

use crate::detect::TinyFaceWeights;
use crate::error::{GpuError, Result};
use crate::frame::Frame;
use crate::landmarks::FaceNetWeights;
use crate::plan::{ImagePlan, ValueLut};
use crate::spec::Pipeline;
use crate::tensor::Tensor;

/// Why there is no GPU.
const NO_GPU: &str = "no GPU in this build (built without the `gpu` feature)";

/// The GPU backend: none can exist in this build.
#[derive(Debug)]
pub(crate) enum GpuBackend {}

/// A detector resident on the GPU: none can exist in this build.
#[derive(Debug)]
pub enum GpuDetector {}

/// A face-crop network resident on the GPU: none can exist in this build.
#[derive(Debug)]
pub enum GpuFaceNet {}

impl GpuBackend {
    /// `Ok(None)` where the selection allows no GPU, else the error saying why there is
    /// none.
    pub(crate) fn new(sel: &GpuSelection, _budget: Option<u64>) -> Result<Option<GpuBackend>> {
        match sel {
            GpuSelection::Auto | GpuSelection::Disabled => Ok(None),
            _ => Err(GpuError::NoAdapter(NO_GPU.into()).into()),
        }
    }

    pub(crate) fn info(&self) -> &GpuInfo {
        match *self {}
    }

    pub(crate) fn memory(&self) -> GpuMemoryUsage {
        match *self {}
    }

    pub(crate) fn trim(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn check_item(&self, _frame: &Frame, _plan: &ImagePlan) -> Result<()> {
        match *self {}
    }

    pub(crate) fn run(
        &self,
        _jobs: &[(usize, &Frame, &ImagePlan)],
        _p: &Pipeline,
        _lut: &ValueLut,
    ) -> Result<(Vec<(usize, Tensor)>, GpuTimings)> {
        match *self {}
    }

    pub(crate) fn upload_detector(&self, _w: &TinyFaceWeights) -> Result<(GpuDetector, u64)> {
        match *self {}
    }

    pub(crate) fn detect(
        &self,
        _det: &GpuDetector,
        _inputs: &[&[f32]],
        _size: (usize, usize),
    ) -> Result<Vec<Vec<f32>>> {
        match *self {}
    }

    pub(crate) fn upload_face_net(&self, _w: &FaceNetWeights) -> Result<(GpuFaceNet, u64)> {
        match *self {}
    }

    pub(crate) fn face_net(&self, _net: &GpuFaceNet, _crops: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        match *self {}
    }
}
