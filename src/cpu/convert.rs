//! The fused output pass on the CPU: place the resized image in the output (letterbox
//! padding), reorder or reduce channels, map every 8-bit value through the plan's value
//! table (scale, normalize, dtype) and write the layout, in one pass over the output.
//! GPU twin: `shaders/convert.wgsl`.

use half::f16;

use crate::geometry::Geometry;
use crate::plan::{luma, source_channels, ValueLut};
use crate::spec::{ChannelOrder, DType, Layout, Pipeline};
use crate::tensor::{Tensor, TensorData};

/// Converts the resized RGB8 image (`g.resized`) into the output tensor for `p`.
pub(crate) fn convert(resized: &[u8], g: &Geometry, p: &Pipeline, lut: &ValueLut) -> Tensor {
    let (ow, oh) = (g.out.0 as usize, g.out.1 as usize);
    let n = p.out_channels();
    let shape = match p.layout {
        Layout::Nchw => vec![n, oh, ow],
        Layout::Nhwc => vec![oh, ow, n],
    };
    let mut data = TensorData::zeros(p.dtype, n * ow * oh);
    match &mut data {
        TensorData::U8(out) => {
            let ident: Vec<[u8; 256]> = vec![std::array::from_fn(|i| i as u8); n];
            fill(resized, g, p, &ident, out);
        }
        TensorData::F32(out) => fill(resized, g, p, &lut.f32, out),
        TensorData::F16(out) => fill::<f16>(resized, g, p, &lut.f16, out),
    }
    debug_assert!(matches!(p.dtype, DType::U8 | DType::F16 | DType::F32));
    // The shape was built from the same sizes as the data: this cannot fail.
    Tensor::new(shape, p.layout, data).expect("shape matches data")
}

fn fill<T: Copy + Send + Sync>(
    resized: &[u8],
    g: &Geometry,
    p: &Pipeline,
    lut: &[[T; 256]],
    out: &mut [T],
) {
    let (ow, oh) = (g.out.0 as usize, g.out.1 as usize);
    let (rw, rh) = (g.resized.0 as usize, g.resized.1 as usize);
    let (ox, oy) = (g.offset.0 as usize, g.offset.1 as usize);
    let gray = p.channels == ChannelOrder::Gray;
    let n = if gray { 1 } else { 3 };
    let src_c = source_channels(p.channels);
    let pad: [T; 3] = if gray {
        let v = lut[0][luma(g.pad[0], g.pad[1], g.pad[2]) as usize];
        [v; 3]
    } else {
        std::array::from_fn(|c| lut[c][g.pad[src_c[c]] as usize])
    };
    let plane = ow * oh;
    for y in 0..oh {
        let inside_y = y >= oy && y < oy + rh;
        let src_row = if inside_y {
            &resized[(y - oy) * rw * 3..(y - oy + 1) * rw * 3]
        } else {
            &[][..]
        };
        for x in 0..ow {
            let inside = inside_y && x >= ox && x < ox + rw;
            let px = if inside {
                let i = (x - ox) * 3;
                Some(&src_row[i..i + 3])
            } else {
                None
            };
            for c in 0..n {
                let v = match px {
                    None => pad[c],
                    Some(px) if gray => lut[0][luma(px[0], px[1], px[2]) as usize],
                    Some(px) => lut[c][px[src_c[c]] as usize],
                };
                let idx = match p.layout {
                    Layout::Nchw => c * plane + y * ow + x,
                    Layout::Nhwc => (y * ow + x) * n + c,
                };
                out[idx] = v;
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
        let t = convert(&[1, 2, 3, 4, 5, 6], &g, &p, &ValueLut::new(&p));
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
        let t = convert(&[255, 255, 255], &g, &p, &ValueLut::new(&p));
        assert_eq!(t.shape(), &[1, 1, 1]);
        assert_eq!(t.as_f32().unwrap(), &[1.0]);
    }
}
