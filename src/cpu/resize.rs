//! Resize on the CPU, in the arithmetic [`crate::resample::Arithmetic`] picks:
//!
//! - `Fixed8`: `fast_image_resize` (SIMD, Pillow-SIMD's 8-bit fixed point) with the kernels
//!   of [`crate::resample`], bit-exact with [`crate::resample::resize_fixed_reference`].
//! - `Float32`: separable f32 passes written here (rows vectorize), vertical first.
//!
//! GPU twin: `shaders/resize.wgsl` (vertical pass) and the horizontal pass at the top of
//! `shaders/convert.wgsl`, which implement both arithmetics the same way.

use fast_image_resize as fir;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::resample::{filter_fn, Arithmetic, ResizeCoeffs};
use crate::spec::Filter;

/// A resized RGB image: 8-bit values, or f32 values in \[0, 255\].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resized {
    /// From the fixed-point arithmetic.
    U8(Vec<u8>),
    /// From the float arithmetic (unrounded).
    F32(Vec<f32>),
}

fn fir_alg(filter: Filter) -> Result<fir::ResizeAlg> {
    let (kernel, support, adaptive) = filter_fn(filter);
    // Custom filters hand fast_image_resize our own kernel functions, so its weights come
    // from the same code the GPU path's coefficients do.
    let f = fir::Filter::new(filter.name(), kernel, support)
        .map_err(|e| Error::invalid(format!("filter {}: {e}", filter.name())))?;
    Ok(if adaptive {
        fir::ResizeAlg::Convolution(fir::FilterType::Custom(f))
    } else {
        fir::ResizeAlg::Interpolation(fir::FilterType::Custom(f))
    })
}

/// Resizes the geometry's box of `frame` to `g.resized`.
///
/// # Errors
/// `InvalidInput` when the box does not lie inside the frame.
pub(crate) fn resize(frame: &Frame, g: &Geometry, filter: Filter) -> Result<Resized> {
    match Arithmetic::for_filter(filter) {
        Arithmetic::Fixed8 => resize_fixed(frame, g, filter).map(Resized::U8),
        Arithmetic::Float32 => {
            let c = ResizeCoeffs::new(g.src, g.bx, g.resized, filter);
            Ok(Resized::F32(resize_float(
                frame.as_bytes(),
                frame.width(),
                &c,
            )))
        }
    }
}

fn resize_fixed(frame: &Frame, g: &Geometry, filter: Filter) -> Result<Vec<u8>> {
    let src = fir::images::ImageRef::new(
        frame.width(),
        frame.height(),
        frame.as_bytes(),
        fir::PixelType::U8x3,
    )
    .map_err(|e| Error::invalid(format!("source frame: {e}")))?;
    let (w, h) = g.resized;
    let mut dst = fir::images::Image::new(w, h, fir::PixelType::U8x3);
    let [l, t, bw, bh] = g.bx;
    let opts = fir::ResizeOptions::new()
        .resize_alg(fir_alg(filter)?)
        .crop(l, t, bw, bh);
    fir::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| Error::invalid(format!("resize {bw}x{bh} -> {w}x{h}: {e}")))?;
    Ok(dst.into_vec())
}

/// Rows of work per rayon task in the float passes (each row is a few thousand values).
const ROWS_PER_TASK: usize = 8;

/// The float arithmetic: `acc = sum(w_i * x_i)` in tap order, starting from 0, clamped to
/// \[0, 255\] after each pass; vertical pass first over the needed columns.
pub(crate) fn resize_float(src: &[u8], src_w: u32, c: &ResizeCoeffs) -> Vec<f32> {
    let out_h = c.vertical.len();
    let out_w = c.horizontal.len();
    let tw = c.column_count as usize * 3;
    let sw = src_w as usize * 3;
    let off = c.column_offset as usize * 3;
    let mut tmp = vec![0f32; out_h * tw];
    tmp.par_chunks_mut(tw * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            for (r, row) in rows.chunks_exact_mut(tw).enumerate() {
                let y = task * ROWS_PER_TASK + r;
                let y0 = c.vertical.starts[y] as usize;
                for (i, &w) in c.vertical.float_taps(y).iter().enumerate() {
                    let s = &src[(y0 + i) * sw + off..][..tw];
                    for (a, &x) in row.iter_mut().zip(s) {
                        *a += w * x as f32;
                    }
                }
                row.iter_mut().for_each(|a| *a = a.clamp(0.0, 255.0));
            }
        });
    let mut out = vec![0f32; out_h * out_w * 3];
    out.par_chunks_mut(out_w * 3 * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            for (r, row) in rows.chunks_exact_mut(out_w * 3).enumerate() {
                let trow = &tmp[(task * ROWS_PER_TASK + r) * tw..][..tw];
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    let x0 = c.horizontal.starts[x] as usize * 3;
                    let mut acc = [0f32; 3];
                    for (i, &w) in c.horizontal.float_taps(x).iter().enumerate() {
                        let s = &trow[x0 + i * 3..x0 + i * 3 + 3];
                        acc[0] += w * s[0];
                        acc[1] += w * s[1];
                        acc[2] += w * s[2];
                    }
                    for (p, a) in px.iter_mut().zip(acc) {
                        *p = a.clamp(0.0, 255.0);
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::resize_fixed_reference;
    use crate::spec::Pipeline;

    /// The fixed-point CPU path must equal the reference arithmetic bit for bit: that is
    /// what lets the GPU path (which implements the reference) agree with it exactly.
    #[test]
    fn fir_equals_reference_arithmetic() {
        let cases: &[(u32, u32, Pipeline)] = &[
            (97, 61, Pipeline::new().stretch(31, 17)),
            (31, 17, Pipeline::new().stretch(97, 61)),
            (64, 48, Pipeline::new().fit(40, 40)),
            (1, 37, Pipeline::new().stretch(5, 9)),
            (37, 1, Pipeline::new().stretch(9, 5)),
            (227, 214, Pipeline::new().fill(224, 220)),
            (50, 40, Pipeline::new().crop(3, 5, 31, 17).stretch(13, 29)),
            (40, 30, Pipeline::new().stretch(40, 13)),
        ];
        for (w, h, p) in cases {
            for f in Filter::ALL {
                let frame = Frame::synthetic(*w, *h, w + h);
                let g = Geometry::plan(*w, *h, p).unwrap();
                let got = resize_fixed(&frame, &g, f).unwrap();
                let c = ResizeCoeffs::new(g.src, g.bx, g.resized, f);
                let want = resize_fixed_reference(frame.as_bytes(), *w, &c);
                assert_eq!(got, want, "{w}x{h} {p:?} {f:?}");
            }
        }
    }

    #[test]
    fn float_path_is_identity_on_unchanged_size() {
        let frame = Frame::synthetic(9, 7, 3);
        let g = Geometry::plan(9, 7, &Pipeline::new()).unwrap();
        let Resized::F32(v) = resize(&frame, &g, Filter::Lanczos3).unwrap() else {
            panic!("lanczos3 runs in float");
        };
        let want: Vec<f32> = frame.as_bytes().iter().map(|&b| b as f32).collect();
        assert_eq!(v, want);
    }
}
