//! TinyFaceDetector's forward pass on the CPU; twin of `shaders/detect.wgsl`.
//!
//! Activations are HWC f32. Each layer is fused with what follows it (bias, leaky ReLU and
//! the max-pool), one pooled output row at a time, and rows run in parallel on rayon. The
//! two 1x1-style products (conv0 on an im2col row of 27 values, and each pointwise conv)
//! share one register-tiled kernel ([`matmul_rows`]: an explicit AVX2+FMA kernel with
//! 6 pixels x 16 output channels in registers, or a portable tiled loop the compiler
//! vectorizes); the max-pool is a vector max. On the 2-core dev machine the network costs
//! about 12 ms per 416x416 input (see docs/benchmarks.md, "Verification").

use rayon::prelude::*;

use super::scratch::Scratch;
use crate::detect::{TinyFaceWeights, BLOCK_POOL_STRIDE, HEAD_LEN, LEAKY};
use crate::error::{Error, Result};

/// The activation fused into a product's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// None (the detector's head, the face nets' pointwise convs before their sums).
    Linear,
    /// Leaky ReLU with slope [`LEAKY`] (TinyFaceDetector).
    Leaky,
    /// ReLU (the face nets' first convolutions).
    Relu,
}

impl Act {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            Act::Linear => v,
            Act::Leaky if v > 0.0 => v,
            Act::Leaky => v * LEAKY,
            Act::Relu => v.max(0.0),
        }
    }
}

/// `out[p][co] = bias[co] + sum_ci inp[p][ci] * w[ci][co]` for `n` pixels, optionally
/// followed by leaky ReLU. `inp` is `n x ci`, `w` is `ci x co`, `out` is `n x co`.
///
/// Dispatches at run time: with AVX2 and FMA an explicit 8-lane kernel
/// ([`matmul_rows_avx2`]); otherwise the portable tiled loop the compiler vectorizes for the
/// baseline target.
pub(crate) fn matmul_rows(
    inp: &[f32],
    ci: usize,
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Act,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[allow(unsafe_code, reason = "avx2 and fma were detected just above")]
        // SAFETY: the CPU supports the features the function is compiled for.
        unsafe {
            matmul_rows_avx2(inp, ci, w, bias, out, act)
        };
        return;
    }
    matmul_rows_tiled::<8>(inp, ci, w, bias, out, act);
}

/// AVX2+FMA kernel. Output channels go in blocks of 16 (then one of 8, then the scalar
/// remainder); each block sweeps every pixel, 6 at a time (then 4, then one at a time), so
/// the block's weights (16 floats per input channel) stay in L1 across the pixels. A tile
/// holds 6 pixels x 16 channels in twelve 8-lane accumulators: per input channel two
/// weight loads, six broadcasts, twelve fused multiply-adds (measured ~5 % faster than 4
/// pixels on the fine pass; before the blocking and the vector tails, leftover pixels and
/// pooling ran scalar and one 416x416 pass took 24 ms on 2 cores, now ~12 ms). Every output channel sums bias first,
/// then inputs in order, whichever tile computes it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn matmul_rows_avx2(inp: &[f32], ci: usize, w: &[f32], bias: &[f32], out: &mut [f32], act: Act) {
    let co = bias.len();
    let n = inp.len().checked_div(ci).unwrap_or(0);
    if n == 0 || co == 0 || w.len() < ci * co || out.len() < n * co {
        return;
    }
    let mut c0 = 0;
    while c0 + 16 <= co {
        let mut p = 0;
        while p + 6 <= n {
            tile_avx2::<6, 2>(inp, ci, w, bias, out, act, p, c0);
            p += 6;
        }
        while p + 4 <= n {
            tile_avx2::<4, 2>(inp, ci, w, bias, out, act, p, c0);
            p += 4;
        }
        while p < n {
            tile_avx2::<1, 2>(inp, ci, w, bias, out, act, p, c0);
            p += 1;
        }
        c0 += 16;
    }
    if c0 + 8 <= co {
        let mut p = 0;
        while p + 4 <= n {
            tile_avx2::<4, 1>(inp, ci, w, bias, out, act, p, c0);
            p += 4;
        }
        while p < n {
            tile_avx2::<1, 1>(inp, ci, w, bias, out, act, p, c0);
            p += 1;
        }
        c0 += 8;
    }
    if c0 < co {
        for p in 0..n {
            scalar_tail(
                &inp[p * ci..(p + 1) * ci],
                w,
                bias,
                &mut out[p * co..(p + 1) * co],
                c0,
                act,
            );
        }
    }
}

/// One tile of [`matmul_rows_avx2`]: pixels `p .. p + P`, channels `c0 .. c0 + 8 V`.
/// The caller guarantees `p + P <= n`, `c0 + 8 V <= co`, `w.len() >= ci * co` and
/// `out.len() >= n * co`, so every slice below is in bounds (and checked anyway).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments, reason = "the kernel's operands")]
#[allow(
    unsafe_code,
    reason = "unaligned vector loads/stores of in-bounds subslices"
)]
fn tile_avx2<const P: usize, const V: usize>(
    inp: &[f32],
    ci: usize,
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Act,
    p: usize,
    c0: usize,
) {
    use std::arch::x86_64::*;
    let co = bias.len();
    // No closures (`array::from_fn`) in here: a closure does not inherit the function's
    // target features, so its intrinsics became calls in the inner loop (7 % of a 12 MP
    // photo's verification in `perf`).
    let rows = &inp[p * ci..(p + P) * ci];
    let b = &bias[c0..c0 + 8 * V];
    let mut bv = [_mm256_setzero_ps(); V];
    for (v, bv) in bv.iter_mut().enumerate() {
        // SAFETY: `b` has 8 V elements; load `v` reads elements 8 v .. 8 v + 8.
        *bv = unsafe { _mm256_loadu_ps(b.as_ptr().add(8 * v)) };
    }
    let mut acc = [bv; P];
    for i in 0..ci {
        let wr = &w[i * co + c0..i * co + c0 + 8 * V];
        let mut wv = [_mm256_setzero_ps(); V];
        for (v, wv) in wv.iter_mut().enumerate() {
            // SAFETY: `wr` has 8 V elements.
            *wv = unsafe { _mm256_loadu_ps(wr.as_ptr().add(8 * v)) };
        }
        for k in 0..P {
            let x = _mm256_set1_ps(rows[k * ci + i]);
            for v in 0..V {
                acc[k][v] = _mm256_fmadd_ps(x, wv[v], acc[k][v]);
            }
        }
    }
    let slope = _mm256_set1_ps(LEAKY);
    for (k, a) in acc.iter().enumerate() {
        let o = &mut out[(p + k) * co + c0..(p + k) * co + c0 + 8 * V];
        for (v, &r) in a.iter().enumerate() {
            let r = match act {
                Act::Linear => r,
                // leaky(x) = max(x, 0.1 x) for a slope under 1
                Act::Leaky => _mm256_max_ps(r, _mm256_mul_ps(r, slope)),
                Act::Relu => _mm256_max_ps(r, _mm256_setzero_ps()),
            };
            // SAFETY: `o` has 8 V elements; the store writes 8 v .. 8 v + 8.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * v), r) };
        }
    }
}

/// The register-tiled product: 4 pixels x `C` output channels accumulate in locals.
#[inline(always)]
fn matmul_rows_tiled<const C: usize>(
    inp: &[f32],
    ci: usize,
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Act,
) {
    let co = bias.len();
    let n = inp.len() / ci;
    const P: usize = 4;
    let mut p = 0;
    while p + P <= n {
        let rows: [&[f32]; P] = std::array::from_fn(|k| &inp[(p + k) * ci..(p + k + 1) * ci]);
        let mut c0 = 0;
        while c0 + C <= co {
            let b: [f32; C] = std::array::from_fn(|j| bias[c0 + j]);
            let mut acc = [b; P];
            for i in 0..ci {
                let wr: [f32; C] = std::array::from_fn(|j| w[i * co + c0 + j]);
                for k in 0..P {
                    let v = rows[k][i];
                    for j in 0..C {
                        acc[k][j] += v * wr[j];
                    }
                }
            }
            for (k, a) in acc.iter().enumerate() {
                let o = &mut out[(p + k) * co + c0..(p + k) * co + c0 + C];
                for j in 0..C {
                    o[j] = act.apply(a[j]);
                }
            }
            c0 += C;
        }
        for k in 0..P {
            scalar_tail(
                rows[k],
                w,
                bias,
                &mut out[(p + k) * co..(p + k + 1) * co],
                c0,
                act,
            );
        }
        p += P;
    }
    while p < n {
        scalar_tail(
            &inp[p * ci..(p + 1) * ci],
            w,
            bias,
            &mut out[p * co..(p + 1) * co],
            0,
            act,
        );
        p += 1;
    }
}

fn scalar_tail(row: &[f32], w: &[f32], bias: &[f32], out: &mut [f32], from: usize, act: Act) {
    let co = bias.len();
    for c in from..co {
        let mut a = bias[c];
        for (i, &v) in row.iter().enumerate() {
            a += v * w[i * co + c];
        }
        out[c] = act.apply(a);
    }
}

/// Defines `$name` to call the `#[inline(always)]` portable `$body` compiled for AVX2 where
/// the CPU has it (the compiler vectorizes the portable loops 8 lanes wide; no FMA
/// contraction, so the results are bit-identical either way), else for the baseline target.
macro_rules! avx2_twin {
    ($(#[$doc:meta])* fn $name:ident => $body:ident ($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[allow(unsafe_code, reason = "avx2 was detected just above")]
                // SAFETY: the CPU supports the feature the function is compiled for.
                unsafe { avx2($($arg),*) };
                return;
            }
            $body($($arg),*)
        }
    };
}

avx2_twin! {
    /// Max of two pre-pooled rows into a pooled row (2x2 window, `stride` 2 or 1; stride 1
    /// pads right with -inf as TF 'same' does). `b` is `None` past the bottom edge.
    fn pool_rows => pool_rows_body(
        a: &[f32],
        b: Option<&[f32]>,
        w: usize,
        c: usize,
        stride: usize,
        out: &mut [f32],
    )
}

#[inline(always)]
fn pool_rows_body(
    a: &[f32],
    b: Option<&[f32]>,
    w: usize,
    c: usize,
    stride: usize,
    out: &mut [f32],
) {
    // a select on values (not `f32::max`, whose NaN rule costs two more instructions, nor
    // a conditional store, which becomes a slow masked store): the activations are finite,
    // and for finite values all three agree
    #[inline(always)]
    fn mx(p: f32, q: f32) -> f32 {
        if q > p {
            q
        } else {
            p
        }
    }
    let ow = w / stride;
    let px = |x: usize| x * c..(x + 1) * c;
    for x in 0..ow {
        let x0 = x * stride;
        // a missing right neighbour (stride 1's padding) repeats the pixel: same maximum
        let x1 = if x0 + 1 < w { x0 + 1 } else { x0 };
        let o = &mut out[x * c..(x + 1) * c];
        let (a0, a1) = (&a[px(x0)], &a[px(x1)]);
        match b {
            Some(b) => {
                let (b0, b1) = (&b[px(x0)], &b[px(x1)]);
                for ((((o, &p), &q), &r), &t) in o.iter_mut().zip(a0).zip(a1).zip(b0).zip(b1) {
                    *o = mx(mx(p, q), mx(r, t));
                }
            }
            None => {
                for ((o, &p), &q) in o.iter_mut().zip(a0).zip(a1) {
                    *o = mx(p, q);
                }
            }
        }
    }
}

/// conv0 (3x3, 3 -> 16, SAME) + bias + leaky on row `y` of a `w x h x 3` input.
fn conv0_row(
    inp: &[f32],
    (iw, ih): (usize, usize),
    y: usize,
    w: &TinyFaceWeights,
    col: &mut [f32],
    out: &mut [f32],
) {
    // im2col: 27 values per pixel in [ky][kx][ci] order, zero outside the image. For an
    // interior pixel the three taps of a kernel row are 9 contiguous input values.
    for ky in 0..3 {
        let yy = y as isize + ky as isize - 1;
        let row = (yy >= 0 && yy < ih as isize)
            .then(|| &inp[yy as usize * iw * 3..(yy as usize + 1) * iw * 3]);
        for x in 0..iw {
            let d = &mut col[x * 27 + ky * 9..x * 27 + ky * 9 + 9];
            match row {
                None => d.fill(0.0),
                Some(r) if x >= 1 && x + 1 < iw => d.copy_from_slice(&r[(x - 1) * 3..(x + 2) * 3]),
                Some(r) => {
                    for kx in 0..3 {
                        let xx = x as isize + kx as isize - 1;
                        let t = &mut d[kx * 3..kx * 3 + 3];
                        if xx < 0 || xx >= iw as isize {
                            t.fill(0.0);
                        } else {
                            t.copy_from_slice(&r[xx as usize * 3..xx as usize * 3 + 3]);
                        }
                    }
                }
            }
        }
    }
    matmul_rows(col, 27, &w.conv0, &w.conv0_bias, out, Act::Leaky);
}

avx2_twin! {
    /// Depthwise 3x3 (SAME, no bias) on row `y` of a `w x h x c` input. Each output value
    /// sums its taps in `ky`, `kx` order (as the WGSL twin does); the three taps of a kernel
    /// row are three shifted whole-row products, so the inner loops have no edge tests.
    fn depthwise_row => depthwise_dispatch(
        inp: &[f32],
        size: (usize, usize),
        c: usize,
        y: usize,
        f: &[f32],
        out: &mut [f32],
    )
}

#[inline(always)]
fn depthwise_dispatch(
    inp: &[f32],
    size: (usize, usize),
    c: usize,
    y: usize,
    f: &[f32],
    out: &mut [f32],
) {
    match c {
        16 => depthwise_body::<16>(inp, size, c, y, f, out),
        32 => depthwise_body::<32>(inp, size, c, y, f, out),
        64 => depthwise_body::<64>(inp, size, c, y, f, out),
        128 => depthwise_body::<128>(inp, size, c, y, f, out),
        256 => depthwise_body::<256>(inp, size, c, y, f, out),
        _ => depthwise_body::<0>(inp, size, c, y, f, out),
    }
}

/// [`depthwise_row`] with `C` channels known at compile time (`C = 0`: `c` at run time).
#[inline(always)]
fn depthwise_body<const C: usize>(
    inp: &[f32],
    (iw, ih): (usize, usize),
    c: usize,
    y: usize,
    f: &[f32],
    out: &mut [f32],
) {
    let c = if C == 0 { c } else { C };
    let out = &mut out[..iw * c];
    out.fill(0.0);
    if iw == 0 || c == 0 {
        return;
    }
    for ky in 0..3 {
        let yy = y as isize + ky as isize - 1;
        if yy < 0 || yy >= ih as isize {
            continue;
        }
        let row = &inp[yy as usize * iw * c..(yy as usize + 1) * iw * c];
        for kx in 0..3 {
            let fk = &f[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
            // output pixel x reads input pixel x + kx - 1
            let n = (iw - 1) * c;
            let (dst, src) = match kx {
                0 => (&mut out[c..], &row[..n]),
                1 => (&mut out[..], row),
                _ => (&mut out[..n], &row[c..]),
            };
            for (d, s) in dst.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
                for ((d, s), k) in d.iter_mut().zip(s).zip(fk) {
                    *d += s * k;
                }
            }
        }
    }
}

/// Runs the network on one preprocessed input (`width x height x 3` HWC f32, both multiples
/// of 32) and returns the raw head: `(height / 32) x (width / 32)` cells of 5 anchors x
/// 5 values, [`HEAD_LEN`] values for face-api's 416 x 416.
///
/// # Errors
/// `InvalidInput` when the input length does not match the size.
#[cfg(test)]
pub(crate) fn forward(
    w: &TinyFaceWeights,
    input: &[f32],
    size: (usize, usize),
) -> Result<Vec<f32>> {
    forward_with(w, input, size, &Scratch::new(0))
}

/// [`forward`] with the activations in buffers from `scratch` (returned to it after).
pub(crate) fn forward_with(
    w: &TinyFaceWeights,
    input: &[f32],
    (width, height): (usize, usize),
    scratch: &Scratch,
) -> Result<Vec<f32>> {
    if width == 0
        || height == 0
        || width % 32 != 0
        || height % 32 != 0
        || input.len() != width * height * 3
    {
        return Err(Error::invalid(format!(
            "detector input: {} values for {width}x{height} (need sides that are multiples of 32 and w*h*3 values)",
            input.len()
        )));
    }
    // conv0 + leaky + pool 2x2/2; every element of `act` is written below
    let (mut sw, mut sh) = (width / 2, height / 2);
    let mut act = scratch.take(sw * sh * 16);
    act.par_chunks_mut(sw * 16).enumerate().for_each_init(
        || {
            (
                vec![0f32; width * 27],
                vec![0f32; width * 16],
                vec![0f32; width * 16],
            )
        },
        |(col, r0, r1), (oy, out)| {
            conv0_row(input, (width, height), 2 * oy, w, col, r0);
            conv0_row(input, (width, height), 2 * oy + 1, w, col, r1);
            pool_rows(r0, Some(r1), width, 16, 2, out);
        },
    );
    // separable blocks
    for (k, b) in w.blocks.iter().enumerate() {
        let (c, co, stride) = (b.channels, 2 * b.channels, BLOCK_POOL_STRIDE[k]);
        let (ow, oh) = (sw / stride, sh / stride);
        let mut next = scratch.take(ow * oh * co);
        let inp = &act;
        let row = |y: usize, dw: &mut [f32], out: &mut [f32]| {
            depthwise_row(inp, (sw, sh), c, y, &b.depthwise, dw);
            matmul_rows(dw, c, &b.pointwise, &b.bias, out, Act::Leaky);
        };
        if stride == 2 {
            // each pooled row reads two rows no other pooled row reads
            next.par_chunks_mut(ow * co).enumerate().for_each_init(
                || (vec![0f32; sw * c], vec![0f32; sw * co], vec![0f32; sw * co]),
                |(dw, r0, r1), (oy, out)| {
                    let y0 = 2 * oy;
                    row(y0, dw, r0);
                    let second = (y0 + 1 < sh).then(|| {
                        row(y0 + 1, dw, r1);
                        &r1[..]
                    });
                    pool_rows(r0, second, sw, co, 2, out);
                },
            );
        } else {
            // stride 1: each row feeds two pooled rows, so every row is computed once
            // first (it used to be computed twice, ~10 % of a pass)
            let mut full = scratch.take(sw * sh * co);
            full.par_chunks_mut(sw * co)
                .enumerate()
                .for_each_init(|| vec![0f32; sw * c], |dw, (y, out)| row(y, dw, out));
            let rows = &full;
            next.par_chunks_mut(ow * co)
                .enumerate()
                .for_each(|(oy, out)| {
                    let a = &rows[oy * sw * co..(oy + 1) * sw * co];
                    let below =
                        (oy + 1 < sh).then(|| &rows[(oy + 1) * sw * co..(oy + 2) * sw * co]);
                    pool_rows(a, below, sw, co, 1, out);
                });
            scratch.give(full);
        }
        scratch.give(std::mem::replace(&mut act, next));
        (sw, sh) = (ow, oh);
    }
    // conv8: 1x1 512 -> 25, no activation
    let mut head = vec![0f32; sw * sh * w.head_bias.len()];
    matmul_rows(&act, 512, &w.head, &w.head_bias, &mut head, Act::Linear);
    scratch.give(act);
    if (width, height) == (416, 416) {
        debug_assert_eq!(head.len(), HEAD_LEN);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_rows_matches_the_naive_product() {
        for &(n, ci, co) in &[
            (9usize, 27usize, 16usize),
            (5, 16, 25),
            (4, 3, 8),
            (1, 7, 3),
        ] {
            let inp: Vec<f32> = (0..n * ci)
                .map(|i| ((i * 37 % 17) as f32 - 8.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..ci * co)
                .map(|i| ((i * 11 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let bias: Vec<f32> = (0..co).map(|i| i as f32 * 0.1 - 0.5).collect();
            let mut out = vec![0f32; n * co];
            matmul_rows(&inp, ci, &w, &bias, &mut out, Act::Leaky);
            // the portable kernel too (the dispatch above may pick AVX2), and every
            // activation on both
            let mut portable = vec![0f32; n * co];
            matmul_rows_tiled::<8>(&inp, ci, &w, &bias, &mut portable, Act::Leaky);
            for (a, b) in out.iter().zip(&portable) {
                assert!((a - b).abs() < 1e-4);
            }
            for act in [Act::Linear, Act::Relu] {
                let mut fast = vec![0f32; n * co];
                matmul_rows(&inp, ci, &w, &bias, &mut fast, act);
                matmul_rows_tiled::<8>(&inp, ci, &w, &bias, &mut portable, act);
                for (p, (a, b)) in fast.iter().zip(&portable).enumerate() {
                    let mut want = bias[p % co] as f64;
                    for i in 0..ci {
                        want += inp[(p / co) * ci + i] as f64 * w[i * co + p % co] as f64;
                    }
                    if act == Act::Relu {
                        want = want.max(0.0);
                    }
                    assert!((*a as f64 - want).abs() < 1e-4 && (a - b).abs() < 1e-4);
                }
            }
            for p in 0..n {
                for c in 0..co {
                    let mut a = bias[c] as f64;
                    for i in 0..ci {
                        a += inp[p * ci + i] as f64 * w[i * co + c] as f64;
                    }
                    let a = if a > 0.0 { a } else { a * 0.1 };
                    assert!(
                        (out[p * co + c] as f64 - a).abs() < 1e-4,
                        "{n} {ci} {co} p{p} c{c}"
                    );
                }
            }
        }
    }

    #[test]
    fn depthwise_rows_equal_the_per_pixel_sum_in_tap_order() {
        // compile-time channel counts and the run-time fallback, edges included
        for &(w, h, c) in &[(5usize, 4usize, 16usize), (3, 3, 32), (1, 2, 16), (4, 3, 8)] {
            let inp: Vec<f32> = (0..w * h * c)
                .map(|i| ((i * 29 % 23) as f32 - 11.0) / 9.0)
                .collect();
            let f: Vec<f32> = (0..9 * c)
                .map(|i| ((i * 7 % 19) as f32 - 9.0) / 8.0)
                .collect();
            let mut out = vec![f32::NAN; w * c];
            for y in 0..h {
                depthwise_row(&inp, (w, h), c, y, &f, &mut out);
                for x in 0..w {
                    for ch in 0..c {
                        let mut want = 0f32;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (yy, xx) = (y + ky, x + kx);
                                if yy < 1 || yy > h || xx < 1 || xx > w {
                                    continue;
                                }
                                want += inp[((yy - 1) * w + xx - 1) * c + ch]
                                    * f[(ky * 3 + kx) * c + ch];
                            }
                        }
                        assert_eq!(out[x * c + ch], want, "{w}x{h}x{c} y{y} x{x} c{ch}");
                    }
                }
            }
        }
    }

    #[test]
    fn stride_one_pool_pads_right_and_bottom() {
        // 2x2 image, 1 channel: values 1 2 / 3 4
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut out = [0f32; 2];
        pool_rows(&a, Some(&b), 2, 1, 1, &mut out);
        assert_eq!(out, [4.0, 4.0]);
        pool_rows(&b, None, 2, 1, 1, &mut out);
        assert_eq!(out, [4.0, 4.0]);
        let mut out2 = [0f32; 1];
        pool_rows(&a, Some(&b), 2, 1, 2, &mut out2);
        assert_eq!(out2, [4.0]);
    }

    #[test]
    fn wrong_input_length_is_an_error() {
        let w = TinyFaceWeights {
            conv0: vec![],
            conv0_bias: vec![],
            blocks: vec![],
            head: vec![],
            head_bias: vec![],
        };
        assert!(forward(&w, &[0.0; 10], (416, 416)).is_err());
        assert!(forward(&w, &[0.0; 32 * 48 * 3], (32, 48)).is_err());
    }
}
