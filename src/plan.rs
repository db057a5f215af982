//! Everything both paths need to preprocess one image, computed once on the host.
//!
//! An [`ImagePlan`] holds the geometry, the fixed-point resize coefficients
//! ([`crate::resample`]) and the value tables below. The CPU path and the GPU path read the
//! same plan, which is why their outputs agree: the resize is the same integer arithmetic, and
//! every output value is a table lookup `lut[channel][u8]`, so the float math (`/255`,
//! `-mean`, `/std`, f32 to f16 rounding) happens once, here, on the host.

use half::f16;

use crate::geometry::Geometry;
use crate::resample::ResizeCoeffs;
use crate::spec::{ChannelOrder, DType, Pipeline};

/// How 8-bit-scale values become output values, and the tables that cache it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueLut {
    /// `(mean, std)` per output channel when normalizing.
    pub normalize: Option<[(f32, f32); 3]>,
    /// Divide by 255.
    pub scale: bool,
    /// f32 values, `[channel][value]` (for f32 and f16 outputs).
    pub f32: Vec<[f32; 256]>,
    /// f16 values, `[channel][value]`, rounded to nearest even from `f32`.
    pub f16: Vec<[f16; 256]>,
}

impl ValueLut {
    /// Tables for `p`: `(v/255 - mean[c]) / std[c]` with `normalize`, `v/255` with `scale`,
    /// `v` otherwise; computed in f32 as torchvision does.
    pub(crate) fn new(p: &Pipeline) -> ValueLut {
        let n = p.out_channels();
        let mut lut = ValueLut {
            normalize: p
                .normalize
                .map(|nm| std::array::from_fn(|c| (nm.mean[c], nm.std[c]))),
            scale: p.scale || p.normalize.is_some(),
            f32: vec![[0f32; 256]; n],
            f16: vec![[f16::ZERO; 256]; n],
        };
        for c in 0..n {
            for v in 0..256usize {
                let y = lut.map(c, v as f32);
                lut.f32[c][v] = y;
                lut.f16[c][v] = f16::from_f32(y);
            }
        }
        lut
    }

    /// The value of channel `c` for an input on the 0..=255 scale (fractional for the float
    /// resize arithmetic). Shaders compute exactly this expression.
    #[inline]
    pub(crate) fn map(&self, c: usize, v: f32) -> f32 {
        match self.normalize {
            Some(ms) => (v / 255.0 - ms[c].0) / ms[c].1,
            None if self.scale => v / 255.0,
            None => v,
        }
    }
}

/// Luma of float RGB on the 0..=255 scale, the float twin of [`luma`].
#[inline]
pub(crate) fn luma_f32(r: f32, g: f32, b: f32) -> f32 {
    (19595.0 * r + 38470.0 * g + 7471.0 * b) / 65536.0
}

/// Rounds a float value on the 0..=255 scale to 8 bits: `floor(v + 0.5)`, clamped (both paths
/// use this form; WGSL's `round` would tie to even).
#[inline]
pub(crate) fn round_u8(v: f32) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// ITU-R 601 luma on 8-bit RGB, Pillow's `L` conversion: `(19595 R + 38470 G + 7471 B +
/// 0x8000) >> 16`. Integer, so both paths agree exactly.
#[inline]
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8
}

/// Source channel (0 = R, 1 = G, 2 = B) for each output channel; gray reads all three.
pub(crate) fn source_channels(order: ChannelOrder) -> [usize; 3] {
    match order {
        ChannelOrder::Bgr => [2, 1, 0],
        _ => [0, 1, 2],
    }
}

/// The per-image plan: geometry on the decoded frame, coefficients, output shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImagePlan {
    /// Geometry relative to the decoded frame.
    pub geometry: Geometry,
    /// Resize coefficients (identity when nothing is resized).
    pub coeffs: ResizeCoeffs,
    /// Output channels.
    pub channels: usize,
    /// Output element type.
    pub dtype: DType,
}

impl ImagePlan {
    /// The plan for `geometry` (already rescaled to the decoded frame) under `p`.
    pub(crate) fn new(geometry: Geometry, p: &Pipeline) -> ImagePlan {
        let coeffs = ResizeCoeffs::new(geometry.src, geometry.bx, geometry.resized, p.filter);
        ImagePlan {
            geometry,
            coeffs,
            channels: p.out_channels(),
            dtype: p.dtype,
        }
    }

    /// Elements in the output tensor.
    #[cfg_attr(
        not(feature = "gpu"),
        allow(dead_code, reason = "sizes the GPU path's buffers")
    )]
    pub(crate) fn out_len(&self) -> usize {
        self.geometry.out.0 as usize * self.geometry.out.1 as usize * self.channels
    }

    /// Bytes of the output tensor.
    #[cfg_attr(
        not(feature = "gpu"),
        allow(dead_code, reason = "sizes the GPU path's buffers")
    )]
    pub(crate) fn out_bytes(&self) -> usize {
        self.out_len() * self.dtype.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lut_matches_formula() {
        let p = Pipeline::new().imagenet();
        let l = ValueLut::new(&p);
        let want = (200.0f32 / 255.0 - 0.456) / 0.224;
        assert_eq!(l.f32[1][200], want);
        assert_eq!(l.f16[1][200], f16::from_f32(want));
        let raw = ValueLut::new(&Pipeline::new().dtype(DType::F32));
        assert_eq!(raw.f32[0][7], 7.0);
    }

    #[test]
    fn luma_is_pillow_l() {
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }
}
