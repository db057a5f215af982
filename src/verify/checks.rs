//! Image statistics behind the quality checks, computed on the analysis image (the photo
//! decoded with shrink-on-load to a longer side of at least [`super::ANALYSIS_MIN_SIDE`]).
//!
//! Every measure is scale-normalized so that thresholds do not depend on the photo's
//! resolution: sharpness is the variance of the Laplacian on a luma plane resampled to a fixed
//! size (the whole image to a longer side of [`SHARPNESS_SIDE`], the face to a height of
//! [`FACE_SHARPNESS_HEIGHT`]); exposure, contrast and colour are fractions and ratios.

use serde::{Deserialize, Serialize};

use crate::detect::Face;
use crate::frame::Frame;

/// Longer side of the luma plane the whole-image sharpness is measured on. 640 px keeps the
/// measure about detail visible at print size, and costs ~1 ms.
pub const SHARPNESS_SIDE: u32 = 640;

/// Height the face crop is resampled to before measuring its sharpness (the face box of a
/// passport-style photo is 35-60 % of a 1000 px analysis image, so this is a mild downscale).
pub const FACE_SHARPNESS_HEIGHT: u32 = 160;

/// Luma at or above this counts as a clipped highlight (of 255).
pub const HIGHLIGHT: u8 = 250;

/// Luma at or below this counts as a clipped shadow (of 255).
pub const SHADOW: u8 = 5;

/// A luma (BT.601) plane.
#[derive(Debug, Clone)]
pub struct Luma {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Row-major values 0..255.
    pub data: Vec<u8>,
}

impl Luma {
    /// BT.601 luma of an RGB8 frame, in 8-bit fixed point (weights 77/150/29 of 256).
    pub fn from_frame(f: &Frame) -> Luma {
        let data = f
            .as_bytes()
            .chunks_exact(3)
            .map(|p| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8)
            .collect();
        Luma {
            width: f.width() as usize,
            height: f.height() as usize,
            data,
        }
    }
}

/// Variance of the 4-neighbour Laplacian over the interior of `l` (0 for planes under 3x3).
pub fn laplacian_variance(l: &Luma) -> f64 {
    let (w, h) = (l.width, l.height);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let mut sum = 0i64;
    let mut sum2 = 0i64;
    for y in 1..h - 1 {
        let up = &l.data[(y - 1) * w..y * w];
        let row = &l.data[y * w..(y + 1) * w];
        let dn = &l.data[(y + 1) * w..(y + 2) * w];
        let mut s = 0i64;
        let mut s2 = 0i64;
        for x in 1..w - 1 {
            let v = up[x] as i32 + dn[x] as i32 + row[x - 1] as i32 + row[x + 1] as i32
                - 4 * row[x] as i32;
            s += v as i64;
            s2 += (v * v) as i64;
        }
        sum += s;
        sum2 += s2;
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum as f64 / n;
    (sum2 as f64 / n - mean * mean).max(0.0)
}

/// Exposure and contrast statistics of a luma plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// Mean luma, 0..1.
    pub mean: f64,
    /// Standard deviation of luma, 0..1 (RMS contrast).
    pub contrast: f64,
    /// Fraction of pixels at or above [`HIGHLIGHT`].
    pub highlights: f64,
    /// Fraction of pixels at or below [`SHADOW`].
    pub shadows: f64,
}

/// Exposure statistics of `l` from its histogram.
pub fn exposure(l: &Luma) -> Exposure {
    let mut hist = [0u64; 256];
    for &v in &l.data {
        hist[v as usize] += 1;
    }
    let n = l.data.len().max(1) as f64;
    let (mut s, mut s2) = (0f64, 0f64);
    for (v, &c) in hist.iter().enumerate() {
        s += v as f64 * c as f64;
        s2 += (v * v) as f64 * c as f64;
    }
    let mean = s / n;
    let var = (s2 / n - mean * mean).max(0.0);
    Exposure {
        mean: mean / 255.0,
        contrast: var.sqrt() / 255.0,
        highlights: hist[HIGHLIGHT as usize..].iter().sum::<u64>() as f64 / n,
        shadows: hist[..=SHADOW as usize].iter().sum::<u64>() as f64 / n,
    }
}

/// Colour statistics of an RGB8 frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Colour {
    /// Hasler & Süsstrunk colourfulness (0 for a grayscale image; ~15 "slightly colourful",
    /// ~33 "moderately", above 45 "quite colourful"), on the 0..255 scale.
    pub colourfulness: f64,
    /// Colour cast: the largest deviation of a channel mean from the mean of the three
    /// channel means, relative to that mean (gray-world), 0 for a neutral image.
    pub cast: f64,
}

/// Running sums for Hasler & Süsstrunk colourfulness and the gray-world cast.
#[derive(Debug, Clone, Copy, Default)]
struct ColourSums {
    n: f64,
    rg: f64,
    yb: f64,
    rg2: f64,
    yb2: f64,
    rgb: [f64; 3],
}

impl ColourSums {
    fn add(&mut self, p: &[u8]) {
        let (r, g, b) = (p[0] as f64, p[1] as f64, p[2] as f64);
        let rg = r - g;
        let yb = 0.5 * (r + g) - b;
        self.n += 1.0;
        self.rg += rg;
        self.yb += yb;
        self.rg2 += rg * rg;
        self.yb2 += yb * yb;
        self.rgb[0] += r;
        self.rgb[1] += g;
        self.rgb[2] += b;
    }

    fn colourfulness(&self) -> f64 {
        if self.n == 0.0 {
            return 0.0;
        }
        let (m_rg, m_yb) = (self.rg / self.n, self.yb / self.n);
        let sd_rg = (self.rg2 / self.n - m_rg * m_rg).max(0.0).sqrt();
        let sd_yb = (self.yb2 / self.n - m_yb * m_yb).max(0.0).sqrt();
        (sd_rg * sd_rg + sd_yb * sd_yb).sqrt() + 0.3 * (m_rg * m_rg + m_yb * m_yb).sqrt()
    }

    fn cast(&self) -> f64 {
        if self.n == 0.0 {
            return 0.0;
        }
        let means = self.rgb.map(|s| s / self.n);
        let grey = (means[0] + means[1] + means[2]) / 3.0;
        if grey < 1.0 {
            0.0
        } else {
            means
                .iter()
                .map(|m| (m - grey).abs() / grey)
                .fold(0.0, f64::max)
        }
    }
}

/// Colour statistics, sampling every `step`-th pixel (1 = all).
pub fn colour(f: &Frame, step: usize) -> Colour {
    let mut c = ColourSums::default();
    for p in f.as_bytes().chunks_exact(3).step_by(step.max(1)) {
        c.add(p);
    }
    Colour {
        colourfulness: c.colourfulness(),
        cast: c.cast(),
    }
}

/// Background statistics outside the face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Background {
    /// Standard deviation of luma in the background region, 0..1.
    pub std: f64,
    /// Mean luma of the background region, 0..1.
    pub mean: f64,
    /// Fraction of the image the region covers.
    pub coverage: f64,
}

/// The background region of a portrait: everything above the head (above the face box
/// raised by 35 % of its height, for hair) and, down to the face's bottom edge, everything
/// left and right of the face box widened by 25 % of its width on each side (ears, hair).
/// The margins were set on the asset portraits so the region holds no hair or ears.
/// Shoulders and body below the face are excluded. `face` is in `l`'s pixels.
pub fn background(l: &Luma, face: &Face) -> Option<Background> {
    let (w, h) = (l.width as f32, l.height as f32);
    let top = (face.y - 0.35 * face.height).clamp(0.0, h) as usize;
    let bottom = (face.y + face.height).clamp(0.0, h) as usize;
    let left = (face.x - 0.25 * face.width).clamp(0.0, w) as usize;
    let right = (face.x + 1.25 * face.width).clamp(0.0, w) as usize;
    let (mut n, mut s, mut s2) = (0u64, 0u64, 0u64);
    let mut add = |v: u8| {
        n += 1;
        s += v as u64;
        s2 += (v as u64) * (v as u64);
    };
    for y in 0..bottom {
        let row = &l.data[y * l.width..(y + 1) * l.width];
        if y < top {
            row.iter().for_each(|&v| add(v));
        } else {
            row[..left].iter().for_each(|&v| add(v));
            row[right.min(l.width)..].iter().for_each(|&v| add(v));
        }
    }
    // Under 2 % of the image is too little to judge (a face filling the frame).
    if (n as f64) < 0.02 * (l.width * l.height) as f64 {
        return None;
    }
    let mean = s as f64 / n as f64;
    let var = (s2 as f64 / n as f64 - mean * mean).max(0.0);
    Some(Background {
        std: var.sqrt() / 255.0,
        mean: mean / 255.0,
        coverage: n as f64 / (l.width * l.height) as f64,
    })
}

/// Luma statistics of a set of rectangles (`[x, y, w, h]`, clipped to the plane; overlaps
/// counted once per rectangle): mean, spread about a fitted plane, and the texture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegionStats {
    /// Mean luma, 0..1.
    pub mean: f64,
    /// Standard deviation of luma about a plane fitted to each rectangle (least squares in
    /// x and y), pooled over the rectangles, 0..1: a smooth falloff of the light is
    /// removed, stripes, checks, folds and objects remain.
    pub std: f64,
    /// Mean gradient magnitude, 0..1 per pixel: central differences over 2 pixels on each
    /// axis (`(v[x+2] - v[x-2]) / 4`), which smooths single-pixel JPEG noise; patterns and
    /// edges raise it, smooth illumination falloff hardly does.
    pub texture: f64,
    /// Fraction of the plane the rectangles cover.
    pub coverage: f64,
}

/// Solves the 3x3 system `m x = b` (Cramer's rule); `None` when singular.
fn solve3(m: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    if d.abs() < 1e-12 || !d.is_finite() {
        return None;
    }
    Some(std::array::from_fn(|k| {
        let mut mk = m;
        for (r, row) in mk.iter_mut().enumerate() {
            row[k] = b[r];
        }
        det(&mk) / d
    }))
}

/// Statistics over `rects` of `l`; `None` when they hold fewer than `min_fraction` of the
/// plane's pixels.
pub fn region_stats(l: &Luma, rects: &[[f32; 4]], min_fraction: f64) -> Option<RegionStats> {
    let (w, h) = (l.width, l.height);
    let (mut n, mut s, mut g, mut gn, mut resid) = (0u64, 0f64, 0f64, 0u64, 0f64);
    let at = |x: usize, y: usize| l.data[y * w + x] as f64;
    for r in rects {
        let x0 = (r[0].max(0.0) as usize).min(w);
        let y0 = (r[1].max(0.0) as usize).min(h);
        let x1 = ((r[0] + r[2]).max(0.0) as usize).min(w);
        let y1 = ((r[1] + r[3]).max(0.0) as usize).min(h);
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        // sums for the plane v = a + b u + c t, with u, t in [0, 1) over the rectangle
        let (sw, sh) = ((x1 - x0) as f64, (y1 - y0) as f64);
        let mut m = [[0f64; 3]; 3];
        let mut mv = [0f64; 3];
        let mut vv = 0f64;
        for y in y0..y1 {
            let t = (y - y0) as f64 / sh;
            for x in x0..x1 {
                let u = (x - x0) as f64 / sw;
                let v = at(x, y);
                let f = [1.0, u, t];
                for i in 0..3 {
                    for j in 0..3 {
                        m[i][j] += f[i] * f[j];
                    }
                    mv[i] += f[i] * v;
                }
                vv += v * v;
                n += 1;
                s += v;
                if x >= x0 + 2 && x + 2 < x1 && y >= y0 + 2 && y + 2 < y1 {
                    let gx = (at(x + 2, y) - at(x - 2, y)) / 4.0;
                    let gy = (at(x, y + 2) - at(x, y - 2)) / 4.0;
                    g += (gx * gx + gy * gy).sqrt();
                    gn += 1;
                }
            }
        }
        // residual sum of squares: vv - beta . mv (a strip one pixel tall fits a line)
        let fitted = solve3(m, mv).map_or_else(
            || mv[0] * mv[0] / m[0][0].max(1.0),
            |b| b[0] * mv[0] + b[1] * mv[1] + b[2] * mv[2],
        );
        resid += (vv - fitted).max(0.0);
    }
    let total = (w * h).max(1) as f64;
    if n == 0 || (n as f64) < min_fraction * total {
        return None;
    }
    let mean = s / n as f64;
    Some(RegionStats {
        mean: mean / 255.0,
        std: (resid / n as f64).sqrt() / 255.0,
        texture: if gn > 0 { g / gn as f64 / 255.0 } else { 0.0 },
        coverage: n as f64 / total,
    })
}

/// Lighting on the face: mean luma of each half (split by the nose axis), clipped
/// fractions, colourfulness of the face's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceLight {
    /// Mean luma of the face, 0..1.
    pub mean: f64,
    /// Darker half's mean luma over the brighter half's (1 for even light).
    pub balance: f64,
    /// Fraction of face pixels at or above [`HIGHLIGHT`] (hot spots).
    pub highlights: f64,
    /// Fraction of face pixels at or below [`SHADOW`].
    pub shadows: f64,
    /// Colourfulness of the face's pixels (Hasler & Süsstrunk; 0 for grayscale).
    pub colourfulness: f64,
}

/// Face lighting over the masked pixels of `frame` / `luma`.
pub fn face_light(frame: &Frame, l: &Luma, mask: &super::measure::FaceMask) -> Option<FaceLight> {
    let px = frame.as_bytes();
    let (mut n, mut s, mut hi, mut lo) = (0u64, 0f64, 0u64, 0u64);
    let (mut nl, mut sl, mut nr, mut sr) = (0u64, 0f64, 0u64, 0f64);
    let mut colour = ColourSums::default();
    mask.for_each(|x, y, left| {
        let v = l.data[y * l.width + x];
        n += 1;
        s += v as f64;
        hi += (v >= HIGHLIGHT) as u64;
        lo += (v <= SHADOW) as u64;
        if left {
            nl += 1;
            sl += v as f64;
        } else {
            nr += 1;
            sr += v as f64;
        }
        let o = (y * l.width + x) * 3;
        colour.add(&px[o..o + 3]);
    });
    if n == 0 || nl == 0 || nr == 0 {
        return None;
    }
    let nf = n as f64;
    let (ml, mr) = (sl / nl as f64, sr / nr as f64);
    Some(FaceLight {
        mean: s / nf / 255.0,
        balance: if ml.max(mr) > 0.0 {
            ml.min(mr) / ml.max(mr)
        } else {
            1.0
        },
        highlights: hi as f64 / nf,
        shadows: lo as f64 / nf,
        colourfulness: colour.colourfulness(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Luma {
        Luma {
            width: w,
            height: h,
            data: (0..w * h).map(|i| f(i % w, i / w)).collect(),
        }
    }

    #[test]
    fn flat_plane_has_no_laplacian_and_a_checkerboard_has_a_large_one() {
        assert_eq!(laplacian_variance(&plane(32, 32, |_, _| 128)), 0.0);
        let cb = laplacian_variance(&plane(
            32,
            32,
            |x, y| if (x + y) % 2 == 0 { 0 } else { 255 },
        ));
        // interior values are +-1020 exactly
        assert!((cb - 1020.0 * 1020.0).abs() < 1.0, "{cb}");
        assert_eq!(laplacian_variance(&plane(2, 2, |_, _| 9)), 0.0);
    }

    #[test]
    fn exposure_counts_clipped_pixels() {
        let l = plane(10, 10, |x, _| {
            if x < 2 {
                0
            } else if x < 5 {
                255
            } else {
                128
            }
        });
        let e = exposure(&l);
        assert!((e.shadows - 0.2).abs() < 1e-9);
        assert!((e.highlights - 0.3).abs() < 1e-9);
        assert!(e.contrast > 0.3);
    }

    #[test]
    fn grayscale_has_no_colourfulness_and_no_cast() {
        let g = Frame::from_fn(16, 16, |x, y| {
            let v = (x * 16 + y) as u8;
            [v, v, v]
        });
        let c = colour(&g, 1);
        assert!(c.colourfulness < 1e-9 && c.cast < 1e-9);
        let red = Frame::from_fn(16, 16, |_, _| [200, 100, 100]);
        let c = colour(&red, 1);
        assert!(c.cast > 0.4 && c.colourfulness > 30.0, "{c:?}");
    }

    #[test]
    fn region_stats_tell_a_plain_region_from_a_pattern() {
        // a light falloff of 60 levels across the region is not a pattern
        let ramp = plane(64, 64, |x, y| (150 + x / 2 + y / 3) as u8);
        let r = region_stats(&ramp, &[[0.0, 0.0, 64.0, 64.0]], 0.0).unwrap();
        assert!(r.std < 0.005, "{r:?}");
        let plain = plane(64, 64, |x, _| 200 + (x / 16) as u8);
        let striped = plane(64, 64, |x, _| if (x / 3) % 2 == 0 { 60 } else { 200 });
        let all = [[0.0, 0.0, 64.0, 64.0]];
        let p = region_stats(&plain, &all, 0.0).unwrap();
        let s = region_stats(&striped, &all, 0.0).unwrap();
        assert!(p.texture < 0.01 && p.std < 0.01, "{p:?}");
        assert!(s.texture > 0.05 && s.std > 0.2, "{s:?}");
        assert!((p.coverage - 1.0).abs() < 1e-9);
        assert!(region_stats(&plain, &[[0.0, 0.0, 4.0, 4.0]], 0.02).is_none());
    }

    #[test]
    fn background_excludes_the_face_and_body() {
        // white background, dark face box, dark body below it
        let face = Face {
            x: 40.0,
            y: 40.0,
            width: 20.0,
            height: 30.0,
            score: 1.0,
        };
        let l = plane(100, 120, |x, y| {
            let in_face = (35..65).contains(&x) && (29..70).contains(&y);
            if in_face || y >= 70 {
                20
            } else {
                240
            }
        });
        let b = background(&l, &face).unwrap();
        assert!(
            b.std < 1e-9 && (b.mean - 240.0 / 255.0).abs() < 1e-9,
            "{b:?}"
        );
    }
}
