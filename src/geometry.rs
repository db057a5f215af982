//! Where each image goes: the crop box, the resized size and the placement in the output.
//!
//! Computed once per image from its (EXIF-oriented, full-resolution) size and the pipeline,
//! then shared by both paths, so CPU and GPU resize the same box to the same size.
//! [`Geometry::shrink_factor`] picks the JPEG DCT scale for shrink-on-load and
//! [`Geometry::rescaled`] maps the box onto the smaller decoded image.

use crate::error::{Error, Result};
use crate::spec::{Anchor, Pipeline, Resize};

/// The geometry of one image through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Source size the box refers to (width, height).
    pub src: (u32, u32),
    /// Source box `(left, top, width, height)`, fractional where `fill` or shrink-on-load
    /// makes it so.
    pub bx: [f64; 4],
    /// Size the box is resized to.
    pub resized: (u32, u32),
    /// Output size (the resized image plus padding).
    pub out: (u32, u32),
    /// Top-left of the resized image inside the output.
    pub offset: (u32, u32),
    /// Pad colour for the area outside the resized image.
    pub pad: [u8; 3],
}

impl Geometry {
    /// Plans `p` for a source of `width` x `height` (after EXIF orientation).
    ///
    /// # Errors
    /// `InvalidInput` when the crop lies outside the image or the image is empty.
    pub fn plan(width: u32, height: u32, p: &Pipeline) -> Result<Geometry> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!("image is empty ({width}x{height})")));
        }
        let (cx, cy, cw, ch) = match p.crop {
            None => (0, 0, width, height),
            Some(c) => {
                let inside = c.x.checked_add(c.width).is_some_and(|r| r <= width)
                    && c.y.checked_add(c.height).is_some_and(|b| b <= height);
                if !inside {
                    return Err(Error::invalid(format!(
                        "crop {}x{}+{}+{} lies outside the {width}x{height} image",
                        c.width, c.height, c.x, c.y
                    )));
                }
                (c.x, c.y, c.width, c.height)
            }
        };
        let (fx, fy, fw, fh) = (cx as f64, cy as f64, cw as f64, ch as f64);
        let mut g = Geometry {
            src: (width, height),
            bx: [fx, fy, fw, fh],
            resized: (cw, ch),
            out: (cw, ch),
            offset: (0, 0),
            pad: [0, 0, 0],
        };
        let Some(resize) = p.resize else {
            return Ok(g);
        };
        match resize {
            Resize::Stretch { width, height } => {
                g.resized = (width, height);
                g.out = (width, height);
            }
            Resize::Fit {
                width: w,
                height: h,
                anchor,
                pad,
            } => {
                // Exactly one side matches the box; the other is rounded and kept in range.
                let (rw, rh) = if w as f64 / fw <= h as f64 / fh {
                    (w, round_side(fh * w as f64 / fw, h))
                } else {
                    (round_side(fw * h as f64 / fh, w), h)
                };
                g.resized = (rw, rh);
                g.out = (w, h);
                g.offset = match anchor {
                    Anchor::Center => ((w - rw) / 2, (h - rh) / 2),
                    Anchor::TopLeft => (0, 0),
                };
                g.pad = pad;
            }
            Resize::Place {
                width: w,
                height: h,
                scale,
                anchor,
                pad,
            } => {
                let s = scale.min(w as f64 / fw).min(h as f64 / fh);
                let (rw, rh) = (round_side(fw * s, w), round_side(fh * s, h));
                g.resized = (rw, rh);
                g.out = (w, h);
                g.offset = match anchor {
                    Anchor::Center => ((w - rw) / 2, (h - rh) / 2),
                    Anchor::TopLeft => (0, 0),
                };
                g.pad = pad;
            }
            Resize::Fill {
                width: w,
                height: h,
            } => {
                let s = (w as f64 / fw).max(h as f64 / fh);
                let (bw, bh) = ((w as f64 / s).min(fw), (h as f64 / s).min(fh));
                g.bx = [fx + (fw - bw) / 2.0, fy + (fh - bh) / 2.0, bw, bh];
                g.resized = (w, h);
                g.out = (w, h);
            }
            Resize::ShorterSide { size, max_size } => {
                // torchvision's `Resize(size, max_size)`: the long side is truncated.
                let (short, long) = if cw <= ch { (cw, ch) } else { (ch, cw) };
                let mut new_short = size;
                let mut new_long = ((size as f64 * long as f64 / short as f64) as u32).max(1);
                if let Some(m) = max_size {
                    if new_long > m {
                        new_short = ((m as f64 * new_short as f64 / new_long as f64) as u32).max(1);
                        new_long = m;
                    }
                }
                let r = if cw <= ch {
                    (new_short, new_long)
                } else {
                    (new_long, new_short)
                };
                g.resized = r;
                g.out = r;
            }
        }
        Ok(g)
    }

    /// The largest JPEG shrink-on-load factor (1, 2, 4 or 8) that still leaves the decoded box
    /// at least `gap` times the resized size on both axes. 1 when nothing is downscaled.
    pub fn shrink_factor(&self, gap: f32) -> u32 {
        let gap = gap.max(1.0) as f64;
        let mut best = 1;
        for k in [2u32, 4, 8] {
            let fits = self.bx[2] / k as f64 >= self.resized.0 as f64 * gap
                && self.bx[3] / k as f64 >= self.resized.1 as f64 * gap;
            if fits {
                best = k;
            }
        }
        best
    }

    /// The same plan on the source decoded at `1/factor` scale (a shrink-on-load decode of
    /// `width` x `height` pixels). Decoded pixel `i` covers source pixels `[i*factor,
    /// (i+1)*factor)`, so the box scales by exactly `1/factor` (clamped to the decoded size,
    /// whose last row and column may cover a partial block).
    pub fn rescaled(&self, factor: u32, width: u32, height: u32) -> Geometry {
        if factor <= 1 && (width, height) == self.src {
            return *self;
        }
        let s = 1.0 / factor.max(1) as f64;
        let [l, t, w, h] = self.bx;
        let mut g = *self;
        g.src = (width, height);
        let (l2, t2) = ((l * s).min(width as f64), (t * s).min(height as f64));
        g.bx = [
            l2,
            t2,
            (w * s).min(width as f64 - l2),
            (h * s).min(height as f64 - t2),
        ];
        g
    }

    /// Number of output pixels.
    pub fn out_pixels(&self) -> u64 {
        self.out.0 as u64 * self.out.1 as u64
    }
}

fn round_side(v: f64, max: u32) -> u32 {
    (v.round() as u32).clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Pipeline;

    #[test]
    fn fit_letterboxes_centred_and_top_left() {
        let g = Geometry::plan(4032, 3024, &Pipeline::new().fit(640, 640)).unwrap();
        assert_eq!(g.resized, (640, 480));
        assert_eq!(g.out, (640, 640));
        assert_eq!(g.offset, (0, 80));
        let p = Pipeline::new().resize(Resize::Fit {
            width: 416,
            height: 416,
            anchor: Anchor::TopLeft,
            pad: [0; 3],
        });
        let g = Geometry::plan(1434, 2333, &p).unwrap();
        assert_eq!(g.resized, (256, 416));
        assert_eq!(g.offset, (0, 0));
        // extreme aspect keeps at least one pixel
        let g = Geometry::plan(10000, 1, &Pipeline::new().fit(64, 64)).unwrap();
        assert_eq!(g.resized, (64, 1));
    }

    #[test]
    fn place_scales_and_pads_and_never_overflows_the_canvas() {
        let p = |scale, anchor| {
            Pipeline::new().resize(Resize::Place {
                width: 416,
                height: 416,
                scale,
                anchor,
                pad: [0; 3],
            })
        };
        let g = Geometry::plan(1000, 800, &p(0.2, Anchor::Center)).unwrap();
        assert_eq!(
            (g.resized, g.out, g.offset),
            ((200, 160), (416, 416), (108, 128))
        );
        let g = Geometry::plan(1000, 800, &p(1.0, Anchor::TopLeft)).unwrap();
        assert_eq!((g.resized, g.offset), ((416, 333), (0, 0)));
        assert!(Pipeline::new()
            .resize(Resize::Place {
                width: 32,
                height: 32,
                scale: f64::NAN,
                anchor: Anchor::Center,
                pad: [0; 3],
            })
            .validate()
            .is_err());
    }

    #[test]
    fn fill_crops_centre() {
        let g = Geometry::plan(400, 200, &Pipeline::new().fill(100, 100)).unwrap();
        assert_eq!(g.bx, [100.0, 0.0, 200.0, 200.0]);
        assert_eq!(g.out, (100, 100));
    }

    #[test]
    fn shorter_side_matches_torchvision() {
        let p = Pipeline::new().resize(Resize::ShorterSide {
            size: 256,
            max_size: None,
        });
        let g = Geometry::plan(500, 375, &p).unwrap();
        assert_eq!(g.resized, (341, 256));
        let p = Pipeline::new().resize(Resize::ShorterSide {
            size: 256,
            max_size: Some(300),
        });
        let g = Geometry::plan(500, 375, &p).unwrap();
        assert_eq!(g.resized, (300, 225));
    }

    #[test]
    fn crop_outside_is_refused() {
        let e = Geometry::plan(100, 100, &Pipeline::new().crop(90, 0, 20, 10)).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let g = Geometry::plan(100, 100, &Pipeline::new().crop(10, 20, 30, 40)).unwrap();
        assert_eq!(g.bx, [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(g.out, (30, 40));
    }

    #[test]
    fn shrink_factor_and_rescale() {
        let g = Geometry::plan(4032, 3024, &Pipeline::new().fit(640, 640)).unwrap();
        assert_eq!(g.shrink_factor(1.0), 4);
        assert_eq!(g.shrink_factor(2.0), 2);
        let r = g.rescaled(4, 1008, 756);
        assert_eq!(r.bx, [0.0, 0.0, 1008.0, 756.0]);
        let g = Geometry::plan(4032, 3024, &Pipeline::new().crop(1000, 1000, 2000, 1000)).unwrap();
        assert_eq!(g.shrink_factor(1.0), 1, "no resize, no shrink");
        let g = Geometry::plan(
            4032,
            3024,
            &Pipeline::new()
                .crop(1001, 999, 2000, 1000)
                .stretch(100, 100),
        )
        .unwrap();
        assert_eq!(g.shrink_factor(1.0), 8);
        let r = g.rescaled(8, 504, 378);
        assert!((r.bx[0] - 125.125).abs() < 1e-9 && (r.bx[1] - 124.875).abs() < 1e-9);
    }
}
