//! Resampling coefficients shared by both paths.
//!
//! The CPU path resizes with `fast_image_resize` (SIMD, u8 fixed point); the GPU path runs
//! `shaders/resize.wgsl` and `shaders/convert.wgsl`. For the two to agree bit for bit, both
//! use the coefficients computed here:
//!
//! 1. [`filter_fn`] gives each filter's kernel; the CPU path hands these very functions to
//!    `fast_image_resize` as custom filters, so its weights come from the same code.
//! 2. [`precompute`] is the per-axis weight computation (a port of `fast_image_resize`'s
//!    `precompute_coefficients`, itself Pillow's `precompute_coeffs`): for every output pixel
//!    the first source index and f64 weights that sum to 1, with the support scaled by the
//!    reduction factor on downscale (antialiasing).
//! 3. [`AxisWeights::new`] turns them into i16 fixed point with a per-axis precision, as
//!    `fast_image_resize` does for 8-bit images (Pillow-SIMD's scheme), and into f32.
//! 4. [`Arithmetic`] picks how the passes run, per filter. `Fixed8` (kernels without negative
//!    lobes): both passes compute `clamp((2^(p-1) + sum(k_i * x_i)) >> p, 0, 255)` in i32,
//!    vertical first over the columns the horizontal pass needs; [`resize_fixed_reference`] is
//!    that arithmetic in plain Rust, the CPU path matches it bit for bit, and the shaders
//!    implement it in integers. `Float32` (bicubic, lanczos3): the same passes in f32 with an
//!    unrounded intermediate, on both paths.

use crate::spec::Filter;

/// A kernel: weight at distance `x` (in source pixels, already divided by the filter scale).
pub type KernelFn = fn(f64) -> f64;

fn box_kernel(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn triangle_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn catmull_rom_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.) * x - (A + 3.)) * x * x + 1.
    } else if x < 2.0 {
        (((x - 5.) * x + 8.) * x - 4.) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos3_kernel(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.)
    } else {
        0.0
    }
}

/// The kernel, its support (radius in source pixels at scale 1) and whether the support
/// grows with the reduction factor (antialiasing). `Nearest` is the box kernel at a fixed
/// support of 0.5: point sampling of the source pixel whose centre is nearest.
pub fn filter_fn(filter: Filter) -> (KernelFn, f64, bool) {
    match filter {
        Filter::Nearest => (box_kernel, 0.5, false),
        Filter::Box => (box_kernel, 0.5, true),
        Filter::Bilinear => (triangle_kernel, 1.0, true),
        Filter::Bicubic => (catmull_rom_kernel, 2.0, true),
        Filter::Lanczos3 => (lanczos3_kernel, 3.0, true),
    }
}

/// f64 weights for one axis: output pixel `i` reads `sizes[i]` source pixels from
/// `starts[i]`, with weights `values[i * window .. i * window + sizes[i]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Coeffs {
    /// Stride of `values` per output pixel (max taps).
    pub window: usize,
    /// First source index per output pixel.
    pub starts: Vec<u32>,
    /// Number of taps per output pixel.
    pub sizes: Vec<u32>,
    /// Weights, `window` per output pixel, zero-padded.
    pub values: Vec<f64>,
}

/// Computes the weights mapping the source interval `[in0, in1)` of an axis of `in_size`
/// pixels onto `out_size` pixels. A port of `fast_image_resize::convolution::
/// precompute_coefficients` (6.1), kept identical so both paths share coefficients.
pub fn precompute(in_size: u32, in0: f64, in1: f64, out_size: u32, filter: Filter) -> Coeffs {
    let (kernel, support, adaptive) = filter_fn(filter);
    let empty = Coeffs {
        window: 0,
        starts: vec![],
        sizes: vec![],
        values: vec![],
    };
    if in_size == 0 || out_size == 0 {
        return empty;
    }
    let scale = (in1 - in0) / out_size as f64;
    if scale <= 0. {
        return empty;
    }
    let filter_scale = if adaptive { scale.max(1.0) } else { 1.0 };
    let radius = support * filter_scale;
    let window = radius.ceil() as usize * 2 + 1;
    let recip = 1.0 / filter_scale;
    let mut values: Vec<f64> = Vec::with_capacity(window * out_size as usize);
    let mut starts = Vec::with_capacity(out_size as usize);
    let mut sizes = Vec::with_capacity(out_size as usize);
    for out_x in 0..out_size {
        let in_center = in0 + (out_x as f64 + 0.5) * scale;
        let x_min = (in_center - radius).floor().max(0.) as u32;
        let x_max = (in_center + radius).ceil().min(in_size as f64) as u32;
        let cur = values.len();
        let mut ww = 0.0;
        let center = in_center - 0.5;
        let mut bound_start = x_min;
        let mut bound_end = x_max;
        for x in x_min..x_max {
            let w = kernel((x as f64 - center) * recip);
            if x == bound_start && w == 0. {
                bound_start += 1;
            } else {
                values.push(w);
                ww += w;
            }
        }
        for &c in values.iter().rev() {
            if bound_end <= bound_start || c != 0. {
                break;
            }
            bound_end -= 1;
        }
        if ww != 0.0 {
            values[cur..].iter_mut().for_each(|w| *w /= ww);
        }
        values.resize(cur + window, 0.);
        starts.push(bound_start);
        sizes.push(bound_end.saturating_sub(bound_start));
    }
    Coeffs {
        window,
        starts,
        sizes,
        values,
    }
}

/// Identity weights (one tap of 1.0 at `offset + i`), used where the CPU path skips a pass.
pub fn identity(out_size: u32, offset: u32) -> Coeffs {
    Coeffs {
        window: 1,
        starts: (0..out_size).map(|i| i + offset).collect(),
        sizes: vec![1; out_size as usize],
        values: vec![1.0; out_size as usize],
    }
}

/// How a resize is computed. Both paths follow the same choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arithmetic {
    /// 8-bit fixed point with an 8-bit intermediate (Pillow-SIMD's scheme, what
    /// `fast_image_resize` runs with SIMD). Exact to one level for kernels without negative
    /// lobes: the intermediate rounding error cannot be amplified.
    Fixed8,
    /// f32 with an unrounded intermediate clamped to \[0, 255\]. Used for kernels with negative
    /// lobes (bicubic, lanczos3), whose weights amplify an 8-bit intermediate's rounding past
    /// one level (measured: 1.05 levels on a 13x7 -> 41x29 bicubic upscale).
    Float32,
}

impl Arithmetic {
    /// The arithmetic a filter needs to stay within one level of the exact result.
    pub fn for_filter(filter: Filter) -> Arithmetic {
        match filter {
            Filter::Bicubic | Filter::Lanczos3 => Arithmetic::Float32,
            _ => Arithmetic::Fixed8,
        }
    }
}

/// Weights of one axis in both representations.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisWeights {
    /// Stride of the weight arrays per output pixel.
    pub window: usize,
    /// First source index per output pixel.
    pub starts: Vec<u32>,
    /// Taps per output pixel.
    pub sizes: Vec<u32>,
    /// Fractional bits of the fixed-point weights on this axis.
    pub precision: u32,
    /// Fixed-point weights `round(w * 2^precision)`, `window` per output pixel.
    pub fixed: Vec<i16>,
    /// The same weights as f32, `window` per output pixel.
    pub float: Vec<f32>,
}

/// 8 bits of result plus 2 bits of headroom for negative lobes in an i32 accumulator.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Weights are stored as i16.
const MAX_COEFFS_PRECISION: u32 = 16 - 1;

impl AxisWeights {
    /// Quantizes f64 weights the way `fast_image_resize`'s `Normalizer16` does (the largest
    /// precision for which the biggest weight still fits an i16, then `round(w * 2^p)`), and
    /// rounds them to f32 for the float arithmetic.
    pub fn new(c: &Coeffs) -> AxisWeights {
        let max_weight = c.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let max_weight = if max_weight.is_finite() {
            max_weight
        } else {
            0.0
        };
        let mut precision = 0u32;
        for cur in 0..PRECISION_BITS {
            precision = cur;
            let next = (max_weight * (1i64 << (cur + 1)) as f64).round() as i64;
            if next >= (1 << MAX_COEFFS_PRECISION) {
                break;
            }
        }
        let scale = (1i64 << precision) as f64;
        AxisWeights {
            window: c.window,
            starts: c.starts.clone(),
            sizes: c.sizes.clone(),
            precision,
            fixed: c
                .values
                .iter()
                .map(|&v| (v * scale).round() as i16)
                .collect(),
            float: c.values.iter().map(|&v| v as f32).collect(),
        }
    }

    /// Number of output pixels on this axis.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when the axis has no output pixels.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Fixed-point taps of output pixel `i`.
    pub fn fixed_taps(&self, i: usize) -> &[i16] {
        let s = i * self.window;
        &self.fixed[s..s + self.sizes[i] as usize]
    }

    /// f32 taps of output pixel `i`.
    pub fn float_taps(&self, i: usize) -> &[f32] {
        let s = i * self.window;
        &self.float[s..s + self.sizes[i] as usize]
    }

    /// Source indices `[first, last)` read by any output pixel.
    pub fn source_span(&self) -> (u32, u32) {
        let first = self.starts.first().copied().unwrap_or(0);
        let last = self
            .starts
            .iter()
            .zip(&self.sizes)
            .map(|(s, n)| s + n)
            .max()
            .unwrap_or(0);
        (first, last.max(first))
    }

    /// `clamp((2^(p-1) + acc) >> p, 0, 255)`: the rounding step of both fixed-point passes.
    #[inline]
    pub fn finish(&self, acc: i32) -> u8 {
        let rounded = (acc + (1i32 << self.precision.saturating_sub(1))) >> self.precision;
        rounded.clamp(0, 255) as u8
    }
}

/// Both axes of one resize. Passes run vertical first, over the columns the horizontal pass
/// needs (`column_offset .. column_offset + column_count`), in either arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizeCoeffs {
    /// Which arithmetic the filter needs.
    pub arithmetic: Arithmetic,
    /// Vertical pass: output rows from source rows.
    pub vertical: AxisWeights,
    /// Horizontal pass: output columns from the vertical pass's columns, with starts
    /// relative to `column_offset`.
    pub horizontal: AxisWeights,
    /// First source column the vertical pass produces.
    pub column_offset: u32,
    /// Columns the vertical pass produces.
    pub column_count: u32,
}

impl ResizeCoeffs {
    /// Coefficients for resizing the box `(left, top, width, height)` of a `src_w` x `src_h`
    /// image to `dst_w` x `dst_h`. A pass whose axis is unchanged (same size, integral
    /// offset) gets identity weights, exactly as `fast_image_resize` skips it.
    pub fn new(src: (u32, u32), bx: [f64; 4], dst: (u32, u32), filter: Filter) -> ResizeCoeffs {
        let [left, top, width, height] = bx;
        let need_h = dst.0 as f64 != width || left != left.round();
        let need_v = dst.1 as f64 != height || top != top.round();
        let h = if need_h {
            precompute(src.0, left, left + width, dst.0, filter)
        } else {
            identity(dst.0, left as u32)
        };
        let v = if need_v {
            precompute(src.1, top, top + height, dst.1, filter)
        } else {
            identity(dst.1, top as u32)
        };
        let vertical = AxisWeights::new(&v);
        let mut horizontal = AxisWeights::new(&h);
        let (first, last) = horizontal.source_span();
        horizontal.starts.iter_mut().for_each(|s| *s -= first);
        ResizeCoeffs {
            arithmetic: Arithmetic::for_filter(filter),
            vertical,
            horizontal,
            column_offset: first,
            column_count: last - first,
        }
    }
}

/// The fixed-point two-pass resize in plain Rust (RGB, 3 bytes per pixel): the arithmetic
/// `fast_image_resize` runs and `shaders/resize.wgsl` + `convert.wgsl` implement. Slow; for
/// tests and as the readable definition.
pub fn resize_fixed_reference(src: &[u8], src_w: u32, c: &ResizeCoeffs) -> Vec<u8> {
    let out_h = c.vertical.len();
    let out_w = c.horizontal.len();
    let tw = c.column_count as usize;
    let sw = src_w as usize;
    let mut tmp = vec![0u8; out_h * tw * 3];
    for y in 0..out_h {
        let taps = c.vertical.fixed_taps(y);
        let y0 = c.vertical.starts[y] as usize;
        for x in 0..tw {
            let sx = x + c.column_offset as usize;
            for ch in 0..3 {
                let mut acc = 0i32;
                for (i, &k) in taps.iter().enumerate() {
                    acc += k as i32 * src[((y0 + i) * sw + sx) * 3 + ch] as i32;
                }
                tmp[(y * tw + x) * 3 + ch] = c.vertical.finish(acc);
            }
        }
    }
    let mut out = vec![0u8; out_h * out_w * 3];
    for y in 0..out_h {
        for x in 0..out_w {
            let taps = c.horizontal.fixed_taps(x);
            let x0 = c.horizontal.starts[x] as usize;
            for ch in 0..3 {
                let mut acc = 0i32;
                for (i, &k) in taps.iter().enumerate() {
                    acc += k as i32 * tmp[(y * tw + x0 + i) * 3 + ch] as i32;
                }
                out[(y * out_w + x) * 3 + ch] = c.horizontal.finish(acc);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_antialias() {
        for f in Filter::ALL {
            for (i, o) in [
                (100u32, 7u32),
                (7, 100),
                (1, 5),
                (5, 1),
                (227, 224),
                (13, 13),
            ] {
                let c = precompute(i, 0.0, i as f64, o, f);
                assert_eq!(c.starts.len(), o as usize);
                for k in 0..o as usize {
                    let s: f64 = c.values[k * c.window..(k + 1) * c.window].iter().sum();
                    assert!((s - 1.0).abs() < 1e-9, "{f:?} {i}->{o} pixel {k}: sum {s}");
                    assert!(c.starts[k] + c.sizes[k] <= i, "{f:?} reads past the edge");
                }
            }
        }
        // Downscale by 10 with bilinear: the support covers ~20 source pixels (antialiased),
        // not 2 as a plain interpolation would.
        let c = precompute(1000, 0.0, 1000.0, 100, Filter::Bilinear);
        assert!(c.sizes[50] >= 19, "taps {}", c.sizes[50]);
        let n = precompute(1000, 0.0, 1000.0, 100, Filter::Nearest);
        assert_eq!(n.sizes[50], 1, "nearest is point sampling");
    }

    #[test]
    fn fixed_point_precision_fits_i16() {
        let c = precompute(4032, 0.0, 4032.0, 640, Filter::Lanczos3);
        let f = AxisWeights::new(&c);
        assert!(f.precision >= 14, "precision {}", f.precision);
        let sum: i32 = f.fixed_taps(100).iter().map(|&v| v as i32).sum();
        assert!((sum - (1 << f.precision)).abs() <= f.fixed_taps(100).len() as i32);
        let fsum: f32 = f.float_taps(100).iter().sum();
        assert!((fsum - 1.0).abs() < 1e-5, "float weights sum {fsum}");
    }

    #[test]
    fn identity_pass_is_exact() {
        let c = ResizeCoeffs::new((4, 3), [0.0, 0.0, 4.0, 3.0], (4, 3), Filter::Lanczos3);
        let src: Vec<u8> = (0..36).map(|i| (i * 7) as u8).collect();
        assert_eq!(resize_fixed_reference(&src, 4, &c), src);
    }
}
