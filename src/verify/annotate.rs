//! Reviewable results: a photo with what verification saw drawn on it (face boxes, the 68
//! landmarks, the eye line, the head's extent from crown to chin, the background regions)
//! and, in a panel below, the verdict and every failed check with its value and range.
//!
//! Drawing is done on a copy of the photo (any scale: the report's photo-pixel
//! coordinates are scaled to it); text uses the public-domain 8x8 bitmap font of the
//! `font8x8` crate, doubled for legibility.

use font8x8::legacy::BASIC_LEGACY;

use super::report::{CheckStatus, PhotoReport, Verdict};
use crate::frame::Frame;

const GREEN: [u8; 3] = [40, 220, 60];
const RED: [u8; 3] = [235, 40, 40];
const YELLOW: [u8; 3] = [250, 210, 30];
const CYAN: [u8; 3] = [40, 200, 230];
const BLUE: [u8; 3] = [60, 110, 255];
const WHITE: [u8; 3] = [255, 255, 255];
const PANEL: [u8; 3] = [24, 24, 28];

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
    /// Text scale: each font pixel becomes `glyph` x `glyph` (1 under 800 px of width).
    glyph: usize,
}

impl Canvas {
    /// Pixels per text line.
    fn line_h(&self) -> usize {
        8 * self.glyph + 4
    }
}

impl Canvas {
    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let o = (y as usize * self.w + x as usize) * 3;
            self.px[o..o + 3].copy_from_slice(&c);
        }
    }

    fn blend(&mut self, x: usize, y: usize, c: [u8; 3], alpha: u32) {
        if x < self.w && y < self.h {
            let o = (y * self.w + x) * 3;
            for (p, &v) in self.px[o..o + 3].iter_mut().zip(&c) {
                *p = ((*p as u32 * (256 - alpha) + v as u32 * alpha) >> 8) as u8;
            }
        }
    }

    /// A line `t` pixels thick (Bresenham, with a square brush).
    fn line(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), c: [u8; 3], t: i64) {
        let (mut x, mut y) = (x0.round() as i64, y0.round() as i64);
        let (xe, ye) = (x1.round() as i64, y1.round() as i64);
        let (dx, dy) = ((xe - x).abs(), -(ye - y).abs());
        let (sx, sy) = (if x < xe { 1 } else { -1 }, if y < ye { 1 } else { -1 });
        let mut err = dx + dy;
        // a bound on the loop for absurd coordinates
        for _ in 0..(dx - dy + 1).min(1 << 16) {
            for a in -(t / 2)..=(t - 1) / 2 {
                for b in -(t / 2)..=(t - 1) / 2 {
                    self.put(x + a, y + b, c);
                }
            }
            if x == xe && y == ye {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn rect(&mut self, r: [f32; 4], c: [u8; 3], t: i64) {
        let [x, y, w, h] = r;
        self.line((x, y), (x + w, y), c, t);
        self.line((x + w, y), (x + w, y + h), c, t);
        self.line((x + w, y + h), (x, y + h), c, t);
        self.line((x, y + h), (x, y), c, t);
    }

    fn fill(&mut self, r: [f32; 4], c: [u8; 3], alpha: u32) {
        let x0 = r[0].max(0.0) as usize;
        let y0 = r[1].max(0.0) as usize;
        let x1 = ((r[0] + r[2]).max(0.0) as usize).min(self.w);
        let y1 = ((r[1] + r[3]).max(0.0) as usize).min(self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                self.blend(x, y, c, alpha);
            }
        }
    }

    fn dot(&mut self, x: f32, y: f32, c: [u8; 3], r: i64) {
        let (cx, cy) = (x.round() as i64, y.round() as i64);
        for a in -r..=r {
            for b in -r..=r {
                if a * a + b * b <= r * r {
                    self.put(cx + a, cy + b, c);
                }
            }
        }
    }

    /// Text at `(x, y)` (top-left), clipped at the right edge; non-ASCII and control
    /// characters are drawn as `?`.
    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let code = ch as u32;
            let glyph = if (32..127).contains(&code) {
                BASIC_LEGACY[code as usize]
            } else {
                BASIC_LEGACY[b'?' as usize]
            };
            let gx = x + i * 8 * self.glyph;
            if gx + 8 * self.glyph > self.w {
                break;
            }
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        for a in 0..self.glyph {
                            for b in 0..self.glyph {
                                let px = (gx + col * self.glyph + a) as i64;
                                let py = (y + row * self.glyph + b) as i64;
                                self.put(px, py, c);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The lines of the panel under the photo: the verdict, then each failed check's message
/// (value against range), then warnings.
fn panel_lines(r: &PhotoReport) -> Vec<(String, [u8; 3])> {
    let mut v = Vec::new();
    let verdict = match r.verdict {
        Verdict::Accepted => ("ACCEPTED".to_string(), GREEN),
        Verdict::Rejected => (format!("REJECTED ({} checks failed)", r.failed.len()), RED),
        Verdict::Error => (
            format!(
                "ERROR: {}",
                r.error.as_ref().map_or("", |e| e.message.as_str())
            ),
            RED,
        ),
    };
    v.push(verdict);
    for c in r.checks.iter().filter(|c| c.status == CheckStatus::Fail) {
        v.push((format!("{}: {}", c.name, c.message), YELLOW));
    }
    if !r.faces_complete {
        v.push((
            "face count is a lower bound (search stopped early)".into(),
            WHITE,
        ));
    }
    v
}

/// Draws `report` on `photo` (the photo at any scale) and returns the annotated image:
/// the photo on top, the panel of failed checks below it.
pub fn annotate(photo: &Frame, report: &PhotoReport) -> Frame {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let s = if report.width > 0 {
        w as f32 / report.width as f32
    } else {
        1.0
    };
    let lines = panel_lines(report);
    let glyph = (w / 800).clamp(1, 3);
    // the panel wraps nothing: lines longer than the width are clipped
    let panel = (8 * glyph + 4) * lines.len() + 8;
    let mut c = Canvas {
        w,
        h: h + panel,
        px: vec![0u8; w * (h + panel) * 3],
        glyph,
    };
    let line = c.line_h();
    c.px[..w * h * 3].copy_from_slice(photo.as_bytes());
    for y in h..h + panel {
        for x in 0..w {
            c.put(x as i64, y as i64, PANEL);
        }
    }
    let t = ((w.max(h) as f32 / 400.0).ceil() as i64).max(1);
    let sc = |r: [f32; 4]| [r[0] * s, r[1] * s, r[2] * s, r[3] * s];
    if let Some(sub) = &report.subject {
        for r in &sub.background {
            c.fill(sc(*r), BLUE, 70);
        }
        c.rect(sc(sub.head), CYAN, t);
        let cx = (sub.crown.x * s, sub.crown.y * s);
        let chin = (sub.chin.x * s, sub.chin.y * s);
        c.line(
            (cx.0 - 12.0 * t as f32, cx.1),
            (cx.0 + 12.0 * t as f32, cx.1),
            CYAN,
            t,
        );
        c.line(
            (chin.0 - 12.0 * t as f32, chin.1),
            (chin.0 + 12.0 * t as f32, chin.1),
            CYAN,
            t,
        );
        let [a, b] = sub.eyes;
        c.line((a.x * s, a.y * s), (b.x * s, b.y * s), YELLOW, t);
        for p in &sub.landmarks.points {
            c.dot(p.x * s, p.y * s, GREEN, t);
        }
    }
    for (i, f) in report.faces.iter().enumerate() {
        let subject = report
            .subject
            .as_ref()
            .is_some_and(|sub| (sub.face.x - f.x).abs() < 1.0 && (sub.face.y - f.y).abs() < 1.0);
        let col = if subject { GREEN } else { RED };
        c.rect(sc([f.x, f.y, f.width, f.height]), col, t);
        c.text(
            (f.x * s).max(0.0) as usize,
            ((f.y * s) as usize).saturating_sub(line),
            &format!("{} {:.2}", i + 1, f.score),
            col,
        );
    }
    for (i, (text, col)) in lines.iter().enumerate() {
        c.text(6, h + 4 + i * line, text, *col);
    }
    Frame::new(c.w as u32, c.h as u32, c.px).unwrap_or_else(|_| photo.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Face;
    use crate::verify::report::{Check, StageTimes, REPORT_SCHEMA};

    fn report(faces: Vec<Face>) -> PhotoReport {
        PhotoReport {
            schema_version: REPORT_SCHEMA,
            engine_version: crate::VERSION.into(),
            build_id: crate::BUILD_ID.into(),
            name: "x".into(),
            path: None,
            verdict: Verdict::Rejected,
            failed: vec!["faces".into()],
            error: None,
            profile: "p".into(),
            profile_hash: String::new(),
            models_hash: String::new(),
            pipeline_hash: String::new(),
            width: 200,
            height: 100,
            checks: vec![Check {
                name: "faces".into(),
                value: Some(2.0),
                min: Some(1.0),
                max: Some(1.0),
                unit: "count".into(),
                status: CheckStatus::Fail,
                clause: String::new(),
                message: "more than one face: 2 > 1".into(),
            }],
            faces,
            faces_complete: true,
            subject: None,
            timings: StageTimes::default(),
            device: crate::Device::Cpu,
            cached: false,
            warnings: vec![],
        }
    }

    #[test]
    fn boxes_and_the_panel_are_drawn_at_the_photos_scale() {
        // the photo at half the report's scale
        let photo = Frame::from_fn(100, 50, |_, _| [128, 128, 128]);
        let f = Face {
            x: 20.0,
            y: 20.0,
            width: 40.0,
            height: 40.0,
            score: 0.9,
        };
        let out = annotate(&photo, &report(vec![f, f]));
        assert_eq!(out.width(), 100);
        assert!(out.height() > 50, "a panel below the photo");
        let px = |x: u32, y: u32| {
            let o = ((y * out.width() + x) * 3) as usize;
            [
                out.as_bytes()[o],
                out.as_bytes()[o + 1],
                out.as_bytes()[o + 2],
            ]
        };
        // the box's left edge at x = 10 (20 * 0.5), red (not the subject)
        assert_eq!(px(10, 15), RED);
        // untouched photo inside the box
        assert_eq!(px(20, 15), [128, 128, 128]);
        // absurd boxes never panic
        let huge = Face {
            x: -1e9,
            y: f32::NAN,
            width: 1e12,
            height: 5.0,
            score: 0.5,
        };
        let _ = annotate(&photo, &report(vec![huge]));
    }
}
