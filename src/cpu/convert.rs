//! The fused output pass on the CPU: place the resized image in the output (letterbox
//! padding), reorder or reduce channels, map every value (scale, normalize, dtype) and write
//! the layout, in one pass over the output. GPU twin: `shaders/convert.wgsl`.

use half::f16;

use super::resize::Resized;
use crate::geometry::Geometry;
use crate::plan::{luma, luma_f32, round_u8, source_channels, ValueLut};
use crate::spec::{ChannelOrder, Layout, Pipeline};
use crate::tensor::{Tensor, TensorData};

/// A resized sample: 8-bit or float on the 0..=255 scale.
trait Sample: Copy + Send + Sync {
    fn from_u8(v: u8) -> Self;
    fn luma(r: Self, g: Self, b: Self) -> Self;
}

impl Sample for u8 {
    fn from_u8(v: u8) -> Self {
        v
    }
    fn luma(r: u8, g: u8, b: u8) -> u8 {
        luma(r, g, b)
    }
}

impl Sample for f32 {
    fn from_u8(v: u8) -> Self {
        v as f32
    }
    fn luma(r: f32, g: f32, b: f32) -> f32 {
        luma_f32(r, g, b)
    }
}

/// Converts the resized image (`g.resized`) into the output tensor for `p`.
pub(crate) fn convert(resized: &Resized, g: &Geometry, p: &Pipeline, lut: &ValueLut) -> Tensor {
    let (ow, oh) = (g.out.0 as usize, g.out.1 as usize);
    let n = p.out_channels();
    let shape = match p.layout {
        Layout::Nchw => vec![n, oh, ow],
        Layout::Nhwc => vec![oh, ow, n],
    };
    let mut data = TensorData::zeros(p.dtype, n * ow * oh);
    match (resized, &mut data) {
        (Resized::U8(src), TensorData::U8(out)) => {
            let ident: [u8; 256] = std::array::from_fn(|i| i as u8);
            fill_lut(src, g, p, &[ident; 3], out)
        }
        (Resized::U8(src), TensorData::F32(out)) => fill_lut(src, g, p, &lut.f32, out),
        (Resized::U8(src), TensorData::F16(out)) => fill_lut(src, g, p, &lut.f16, out),
        (Resized::F32(src), TensorData::U8(out)) => fill(src, g, p, |_, v: f32| round_u8(v), out),
        (Resized::F32(src), TensorData::F32(out)) => fill(src, g, p, |c, v| lut.map(c, v), out),
        (Resized::F32(src), TensorData::F16(out)) => {
            fill(src, g, p, |c, v| f16::from_f32(lut.map(c, v)), out)
        }
    }
    // The shape was built from the same sizes as the data: this cannot fail.
    Tensor::new(shape, p.layout, data).expect("shape matches data")
}

/// The 8-bit hot path: NCHW image runs are a table lookup per element with the table and
/// source channel fixed per run (no per-element indexing of the channel), everything else
/// goes through [`fill`].
fn fill_lut<T: Copy>(resized: &[u8], g: &Geometry, p: &Pipeline, lut: &[[T; 256]], out: &mut [T]) {
    if p.layout != Layout::Nchw || p.channels == ChannelOrder::Gray {
        return fill(resized, g, p, |c, v: u8| lut[c][v as usize], out);
    }
    let (ow, oh) = (g.out.0 as usize, g.out.1 as usize);
    let (rw, rh) = (g.resized.0 as usize, g.resized.1 as usize);
    let (ox, oy) = (g.offset.0 as usize, g.offset.1 as usize);
    let src_c = source_channels(p.channels);
    let plane = ow * oh;
    for (c, &sc) in src_c.iter().enumerate() {
        let table = &lut[c];
        let pad = table[g.pad[sc] as usize];
        let out_plane = &mut out[c * plane..][..plane];
        for (y, row) in out_plane.chunks_exact_mut(ow).enumerate() {
            if y < oy || y >= oy + rh {
                row.fill(pad);
                continue;
            }
            row[..ox].fill(pad);
            row[ox + rw..].fill(pad);
            let src = &resized[(y - oy) * rw * 3..][..rw * 3];
            let dst = &mut row[ox..ox + rw];
            // A constant channel index per loop lets the compiler drop the bounds checks.
            match sc {
                0 => lookup::<T, 0>(src, dst, table),
                1 => lookup::<T, 1>(src, dst, table),
                _ => lookup::<T, 2>(src, dst, table),
            }
        }
    }
}

#[inline(always)]
fn lookup<T: Copy, const C: usize>(src: &[u8], dst: &mut [T], table: &[T; 256]) {
    for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
        *d = table[px[C] as usize];
    }
}

fn fill<S: Sample, T: Copy>(
    resized: &[S],
    g: &Geometry,
    p: &Pipeline,
    map: impl Fn(usize, S) -> T,
    out: &mut [T],
) {
    let (ow, oh) = (g.out.0 as usize, g.out.1 as usize);
    let (rw, rh) = (g.resized.0 as usize, g.resized.1 as usize);
    let (ox, oy) = (g.offset.0 as usize, g.offset.1 as usize);
    let gray = p.channels == ChannelOrder::Gray;
    let n = if gray { 1 } else { 3 };
    let src_c = source_channels(p.channels);
    let pad_px = g.pad.map(S::from_u8);
    let pad: [T; 3] = if gray {
        let v = map(0, S::luma(pad_px[0], pad_px[1], pad_px[2]));
        [v; 3]
    } else {
        std::array::from_fn(|c| map(c, pad_px[src_c[c]]))
    };
    let plane = ow * oh;
    // Row by row: padding runs are filled in bulk, image runs read one source row.
    for y in 0..oh {
        let src_row = (y >= oy && y < oy + rh).then(|| &resized[(y - oy) * rw * 3..][..rw * 3]);
        let (x0, x1) = match src_row {
            Some(_) => (ox, ox + rw),
            None => (ow, ow),
        };
        match p.layout {
            Layout::Nchw => {
                for c in 0..n {
                    let row = &mut out[c * plane + y * ow..][..ow];
                    row[..x0.min(ow)].fill(pad[c]);
                    row[x1.min(ow)..].fill(pad[c]);
                    let Some(src) = src_row else { continue };
                    let dst = &mut row[x0..x1];
                    if gray {
                        for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
                            *d = map(0, S::luma(px[0], px[1], px[2]));
                        }
                    } else {
                        let sc = src_c[c];
                        for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
                            *d = map(c, px[sc]);
                        }
                    }
                }
            }
            Layout::Nhwc => {
                let row = &mut out[y * ow * n..][..ow * n];
                for px in row[..x0.min(ow) * n].chunks_exact_mut(n) {
                    px.copy_from_slice(&pad[..n]);
                }
                for px in row[x1.min(ow) * n..].chunks_exact_mut(n) {
                    px.copy_from_slice(&pad[..n]);
                }
                let Some(src) = src_row else { continue };
                let dst = &mut row[x0 * n..x1 * n];
                for (d, px) in dst.chunks_exact_mut(n).zip(src.chunks_exact(3)) {
                    if gray {
                        d[0] = map(0, S::luma(px[0], px[1], px[2]));
                    } else {
                        for c in 0..3 {
                            d[c] = map(c, px[src_c[c]]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_bgr_nchw() {
        // 2x1 image into a 2x3 box, centred: pad row, image row, pad row.
        let p = Pipeline::new()
            .fit(2, 3)
            .channels(ChannelOrder::Bgr)
            .layout(Layout::Nchw);
        let g = Geometry::plan(2, 1, &p).unwrap();
        assert_eq!((g.offset, g.resized), ((0, 1), (2, 1)));
        let t = convert(
            &Resized::U8(vec![1, 2, 3, 4, 5, 6]),
            &g,
            &p,
            &ValueLut::new(&p),
        );
        assert_eq!(t.shape(), &[3, 3, 2]);
        let v = t.as_u8().unwrap();
        // channel 0 is blue
        assert_eq!(&v[0..6], &[0, 0, 3, 6, 0, 0]);
        assert_eq!(&v[12..18], &[0, 0, 1, 4, 0, 0]);
    }

    #[test]
    fn gray_nhwc_f32_normalized() {
        let p = Pipeline::new()
            .channels(ChannelOrder::Gray)
            .normalize([0.5; 3], [0.5; 3]);
        let g = Geometry::plan(1, 1, &p).unwrap();
        let t = convert(
            &Resized::U8(vec![255, 255, 255]),
            &g,
            &p,
            &ValueLut::new(&p),
        );
        assert_eq!(t.shape(), &[1, 1, 1]);
        assert_eq!(t.as_f32().unwrap(), &[1.0]);
        let t = convert(&Resized::F32(vec![255.0; 3]), &g, &p, &ValueLut::new(&p));
        assert_eq!(t.as_f32().unwrap(), &[1.0]);
    }

    #[test]
    fn float_source_rounds_half_up_for_u8() {
        let p = Pipeline::new();
        let g = Geometry::plan(1, 1, &p).unwrap();
        let t = convert(
            &Resized::F32(vec![0.5, 1.49, 254.5]),
            &g,
            &p,
            &ValueLut::new(&p),
        );
        assert_eq!(t.as_u8().unwrap(), &[1, 1, 255]);
    }
}
