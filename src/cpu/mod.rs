//! The CPU path: rayon workers, `fast_image_resize` for resampling, one fused output pass.
//!
//! Each op has a GPU twin of the same name in `shaders/`: [`resize`] ↔ `resize.wgsl`,
//! [`convert`] ↔ `convert.wgsl`.

pub(crate) mod convert;
pub(crate) mod detect;
pub(crate) mod landmarks;
pub(crate) mod resize;
pub(crate) mod scratch;

use crate::error::Result;
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::plan::ValueLut;
use crate::spec::Pipeline;
use crate::tensor::Tensor;

/// Preprocesses one decoded frame on the calling thread (rayon parallelism comes from the
/// caller iterating a batch, and from `fast_image_resize` splitting large images).
pub(crate) fn preprocess(
    frame: &Frame,
    g: &Geometry,
    p: &Pipeline,
    lut: &ValueLut,
) -> Result<Tensor> {
    let resized = resize::resize(frame, g, p.filter)?;
    Ok(convert::convert(&resized, g, p, lut))
}
