//! face-api's face-crop networks (68 landmarks, expression) on the CPU; twin of
//! `shaders/landmarks.wgsl`.
//!
//! Activations are HWC f32, one crop at a time; rows of each layer run in parallel on
//! rayon and the 1x1 products use the detector's register-tiled kernel
//! ([`super::detect::matmul_rows`]). A dense block keeps the running sum of its outputs
//! (`sum`), and each next convolution reads its ReLU, so the block costs one extra buffer
//! and no concatenation. Summation orders (bias first, taps in `[ky][kx][ci]` order, block
//! outputs added in order) are the GPU's, so the two agree to float rounding.

use rayon::prelude::*;

use super::detect::{matmul_rows, Act};
use crate::error::{Error, Result};
use crate::landmarks::{FaceNetWeights, FirstConv, SeparableConv, CROP_SIDE};

/// TF `SAME` padding before the data for a 3x3 window: 1 at stride 1; at stride 2 over an
/// even side the single padding pixel goes after, so none before.
fn pad_before(side: usize, stride: usize) -> usize {
    let out = side.div_ceil(stride);
    ((out - 1) * stride + 3).saturating_sub(side) / 2
}

/// Rows per rayon task: enough work per task that small layers do not drown in
/// scheduling (the 7x7 layers run as one task).
const MIN_ROWS: usize = 4;

/// 3x3 depthwise convolution (no bias) of an `s x s x c` input with `stride`.
fn depthwise(inp: &[f32], s: usize, c: usize, stride: usize, f: &[f32]) -> (Vec<f32>, usize) {
    let os = s.div_ceil(stride);
    let pad = pad_before(s, stride) as isize;
    let mut out = vec![0f32; os * os * c];
    out.par_chunks_mut(os * c)
        .with_min_len(MIN_ROWS)
        .enumerate()
        .for_each(|(oy, row)| {
            for ky in 0..3 {
                let yy = (oy * stride) as isize + ky as isize - pad;
                if yy < 0 || yy >= s as isize {
                    continue;
                }
                let src_row = &inp[yy as usize * s * c..(yy as usize + 1) * s * c];
                for kx in 0..3 {
                    let fk = &f[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                    for ox in 0..os {
                        let xx = (ox * stride) as isize + kx as isize - pad;
                        if xx < 0 || xx >= s as isize {
                            continue;
                        }
                        let src = &src_row[xx as usize * c..(xx as usize + 1) * c];
                        let dst = &mut row[ox * c..(ox + 1) * c];
                        for ch in 0..c {
                            dst[ch] += src[ch] * fk[ch];
                        }
                    }
                }
            }
        });
    (out, os)
}

/// Pointwise product + bias (+ `act`) of `n` pixels, rows in parallel.
fn pointwise(inp: &[f32], ci: usize, w: &[f32], bias: &[f32], row_px: usize, act: Act) -> Vec<f32> {
    let co = bias.len();
    let mut out = vec![0f32; inp.len() / ci * co];
    out.par_chunks_mut(row_px * co)
        .zip(inp.par_chunks(row_px * ci))
        .with_min_len(MIN_ROWS)
        .for_each(|(o, i)| matmul_rows(i, ci, w, bias, o, act));
    out
}

/// A separable convolution: depthwise, then pointwise + bias (+ `act`).
fn separable(inp: &[f32], s: usize, c: &SeparableConv, act: Act) -> (Vec<f32>, usize) {
    let (dw, os) = depthwise(inp, s, c.cin, c.stride, &c.depthwise);
    (pointwise(&dw, c.cin, &c.pointwise, &c.bias, os, act), os)
}

/// The full 3x3 stride-2 convolution (the first layer) + bias + ReLU, by im2col rows.
fn full_conv_s2(
    inp: &[f32],
    s: usize,
    cin: usize,
    filters: &[f32],
    bias: &[f32],
) -> (Vec<f32>, usize) {
    let os = s.div_ceil(2);
    let pad = pad_before(s, 2) as isize;
    let co = bias.len();
    let k = 9 * cin;
    let mut out = vec![0f32; os * os * co];
    out.par_chunks_mut(os * co)
        .with_min_len(MIN_ROWS)
        .enumerate()
        .for_each_init(
            || vec![0f32; os * k],
            |col, (oy, row)| {
                for ox in 0..os {
                    let dst = &mut col[ox * k..(ox + 1) * k];
                    for ky in 0..3 {
                        let yy = (2 * oy) as isize + ky as isize - pad;
                        for kx in 0..3 {
                            let xx = (2 * ox) as isize + kx as isize - pad;
                            let d = &mut dst[(ky * 3 + kx) * cin..(ky * 3 + kx + 1) * cin];
                            if yy < 0 || xx < 0 || yy >= s as isize || xx >= s as isize {
                                d.fill(0.0);
                            } else {
                                let o = (yy as usize * s + xx as usize) * cin;
                                d.copy_from_slice(&inp[o..o + cin]);
                            }
                        }
                    }
                }
                matmul_rows(col, k, filters, bias, row, Act::Relu);
            },
        );
    (out, os)
}

/// Runs a face-crop network on one crop (112 x 112 x 3 HWC f32, already normalized) and
/// returns its raw outputs (136 landmark coordinates or 7 expression logits).
///
/// # Errors
/// `InvalidInput` when the input length is not 112 * 112 * 3.
pub(crate) fn forward(w: &FaceNetWeights, input: &[f32]) -> Result<Vec<f32>> {
    let side = CROP_SIDE as usize;
    if input.len() != side * side * 3 {
        return Err(Error::invalid(format!(
            "face crop: {} values (need 112 * 112 * 3)",
            input.len()
        )));
    }
    let mut x: Vec<f32> = input.to_vec();
    let mut s = side;
    for b in &w.blocks {
        let (first, os) = match &b.first {
            FirstConv::Full {
                cin, filters, bias, ..
            } => full_conv_s2(&x, s, *cin, filters, bias),
            FirstConv::Separable(c) => separable(&x, s, c, Act::Relu),
        };
        s = os;
        if b.rest.is_empty() {
            x = first;
            continue;
        }
        // x is the next convolution's input: relu(sum of the block's outputs so far)
        let mut sum = first.clone();
        x = first;
        for c in &b.rest {
            let (o, _) = separable(&x, s, c, Act::Linear);
            sum.par_iter_mut()
                .zip(x.par_iter_mut())
                .zip(o.par_iter())
                .with_min_len(1024)
                .for_each(|((acc, xi), v)| {
                    *acc += v;
                    *xi = acc.max(0.0);
                });
        }
    }
    // average pool over the final s x s (7x7 for four blocks), then the fully connected layer
    let c = w.features();
    let mut feat = vec![0f32; c];
    for px in x.chunks_exact(c) {
        for (f, v) in feat.iter_mut().zip(px) {
            *f += v;
        }
    }
    let n = (s * s) as f32;
    feat.iter_mut().for_each(|f| *f /= n);
    let mut out = vec![0f32; w.outputs()];
    matmul_rows(&feat, c, &w.fc, &w.fc_bias, &mut out, Act::Linear);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_is_tf_s() {
        assert_eq!(pad_before(56, 1), 1);
        assert_eq!(pad_before(112, 2), 0);
        assert_eq!(pad_before(7, 2), 1);
    }

    #[test]
    fn stride_two_depthwise_reads_rows_2o_to_2o_plus_2() {
        // 4x4x1 input of ones; a filter with only the centre tap (ky=1, kx=1) copies
        // input (2o+1, 2o+1); the bottom-right tap (2, 2) reads 2o+2, which is the
        // padding for the last output.
        let inp: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let mut f = vec![0f32; 9];
        f[4] = 1.0;
        let (o, os) = depthwise(&inp, 4, 1, 2, &f);
        assert_eq!(os, 2);
        assert_eq!(o, vec![5.0, 7.0, 13.0, 15.0]);
        let mut f = vec![0f32; 9];
        f[8] = 1.0;
        let (o, _) = depthwise(&inp, 4, 1, 2, &f);
        assert_eq!(o, vec![10.0, 0.0, 0.0, 0.0]);
        let mut f = vec![0f32; 9];
        f[0] = 1.0;
        let (o, _) = depthwise(&inp, 4, 1, 1, &f);
        // stride 1: the top-left tap reads (y-1, x-1)
        assert_eq!(&o[..5], &[0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(o[5], 0.0);
        assert_eq!(o[6], 1.0);
    }

    #[test]
    fn wrong_input_length_is_an_error() {
        let w = FaceNetWeights {
            name: "x".into(),
            blocks: vec![],
            fc: vec![],
            fc_bias: vec![],
        };
        assert!(forward(&w, &[0.0; 10]).is_err());
    }
}
