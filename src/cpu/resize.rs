//! Resize on the CPU: `fast_image_resize` (SIMD, Pillow-SIMD's 8-bit fixed point) with the
//! kernels of [`crate::resample`]. GPU twin: `shaders/resize.wgsl` (vertical pass) and the
//! horizontal pass at the top of `shaders/convert.wgsl`.

use fast_image_resize as fir;

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::resample::filter_fn;
use crate::spec::Filter;

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

/// Resizes the geometry's box of `frame` to `g.resized`, returning packed RGB8.
///
/// # Errors
/// `InvalidInput` when the box does not lie inside the frame.
pub(crate) fn resize(
    frame: &Frame,
    g: &Geometry,
    filter: Filter,
    resizer: &mut fir::Resizer,
) -> Result<Vec<u8>> {
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
    resizer
        .resize(&src, &mut dst, &opts)
        .map_err(|e| Error::invalid(format!("resize {bw}x{bh} -> {w}x{h}: {e}")))?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{resize_reference, ResizeCoeffs};
    use crate::spec::Pipeline;

    /// The CPU path must equal the reference arithmetic bit for bit: that is what lets the
    /// GPU path (which implements the reference) agree with it exactly.
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
                let mut r = fir::Resizer::new();
                let got = resize(&frame, &g, f, &mut r).unwrap();
                let c = ResizeCoeffs::new(g.src, g.bx, g.resized, f);
                let want = resize_reference(frame.as_bytes(), *w, &c);
                assert_eq!(got, want, "{w}x{h} {p:?} {f:?}");
            }
        }
    }
}
