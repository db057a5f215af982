//! What the checks measure on the subject's face: eye positions, pose, head extent (chin
//! to crown), eye and mouth opening, and the regions the lighting and background checks
//! look at, all from the 68 landmarks and the analysis image.
//!
//! Everything here is computed in the analysis image's pixels and scaled to photo pixels
//! for the report ([`Subject::scaled`]).

use serde::{Deserialize, Serialize};

use super::checks::Luma;
use crate::detect::Face;
use crate::frame::Frame;
use crate::landmarks::{Expression, Landmarks, Point};

/// The crown lies this many eye-to-chin distances above the eye line when no edge can be
/// found (anthropometric prior: adult head height, vertex to menton, is about twice the
/// eye-to-menton distance; measured 1.02 +- 0.07 on the corpus's compliant portraits, see
/// docs/verification.md).
pub const CROWN_RATIO: f32 = 1.0;

/// Hair may rise at most this many eye-to-chin distances above the eye line; an edge
/// found higher is capped (tall hair, a hat of the background's colour).
pub const CROWN_MAX_RATIO: f32 = 1.6;

/// Head width as a multiple of the jaw line's width (landmarks 0 and 16 sit on the face
/// contour at the ears' height; ears and hair add about 15 % on each side).
pub const HEAD_WIDTH_RATIO: f32 = 1.3;

/// A background sample whose luma spread exceeds this (0..255) is too busy to find the
/// head's top edge in; the crown then comes from the landmarks alone.
const BUSY_BACKGROUND: f64 = 25.0;

/// Head pose in degrees. Yaw: positive when the face turns towards the image's right;
/// pitch: positive when the chin rises; roll: the eye line's angle, positive when it falls
/// towards the image's right (the head tilts clockwise as seen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Rotation about the vertical axis.
    pub yaw: f32,
    /// Rotation about the ear-to-ear axis.
    pub pitch: f32,
    /// Rotation in the image plane (the eye line's angle).
    pub roll: f32,
}

/// Where the crown estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrownSource {
    /// The top edge of the head against the background, found above the face.
    Edge,
    /// The landmarks alone ([`CROWN_RATIO`]): the background is too busy for an edge, or
    /// the head as light as the background.
    Landmarks,
    /// The head reaches the photo's top edge: the crown is cut off; its height above the
    /// frame comes from the landmarks.
    FrameTop,
}

/// An axis-aligned rectangle `[x, y, width, height]` in pixels.
pub type Rect = [f32; 4];

/// The measured subject: the face the checks judge, in pixels of the image it was
/// measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The detector's box.
    pub face: Face,
    /// 68 landmarks.
    pub landmarks: Landmarks,
    /// Expression probabilities (absent without the expression model).
    #[serde(default)]
    pub expression: Option<Expression>,
    /// Eye centres: the subject's right eye (image left), then left.
    pub eyes: [Point; 2],
    /// Midpoint of the eye centres.
    pub eye_mid: Point,
    /// Distance between the eye centres.
    pub inter_eye: f32,
    /// Head pose estimate.
    pub pose: Pose,
    /// Lowest point of the chin (landmark 8).
    pub chin: Point,
    /// Top of the head (hair included).
    pub crown: Point,
    /// How the crown was found.
    pub crown_source: CrownSource,
    /// The head's extent: left, top (crown), width, height (crown to chin).
    pub head: Rect,
    /// Eye aspect ratio of the less open eye (Soukupová & Čech 2016: open ~0.25-0.35,
    /// closed under ~0.15).
    pub eye_openness: f32,
    /// Inner-lip gap over mouth width (0 for closed lips).
    pub mouth_gap: f32,
    /// Regions the background checks measured.
    pub background: Vec<Rect>,
}

fn rect_scaled(r: &Rect, s: f32) -> Rect {
    [r[0] * s, r[1] * s, r[2] * s, r[3] * s]
}

fn pt(p: Point, s: f32) -> Point {
    Point {
        x: p.x * s,
        y: p.y * s,
    }
}

impl Subject {
    /// The subject scaled by `s` (analysis to photo pixels); ratios and angles unchanged.
    pub fn scaled(&self, s: f32) -> Subject {
        Subject {
            face: self.face.scaled(s),
            landmarks: self.landmarks.scaled(s),
            expression: self.expression.clone(),
            eyes: [pt(self.eyes[0], s), pt(self.eyes[1], s)],
            eye_mid: pt(self.eye_mid, s),
            inter_eye: self.inter_eye * s,
            pose: self.pose,
            chin: pt(self.chin, s),
            crown: pt(self.crown, s),
            crown_source: self.crown_source,
            head: rect_scaled(&self.head, s),
            eye_openness: self.eye_openness,
            mouth_gap: self.mouth_gap,
            background: self.background.iter().map(|r| rect_scaled(r, s)).collect(),
        }
    }

    /// Measures the subject from its landmarks on `frame` (the analysis image).
    pub fn measure(
        face: Face,
        landmarks: Landmarks,
        expression: Option<Expression>,
        frame: &Frame,
        luma: &Luma,
    ) -> Subject {
        let right = Point::mean(landmarks.right_eye());
        let left = Point::mean(landmarks.left_eye());
        let eye_mid = Point::mean(&[right, left]);
        let inter_eye = right.dist(&left);
        let roll = (left.y - right.y).atan2(left.x - right.x).to_degrees();
        let yaw = yaw(&landmarks);
        let pitch = pitch(&landmarks);
        let chin = landmarks.at(8);
        let d = (chin.y - eye_mid.y).max(1.0);
        let jaw = landmarks.jaw();
        let (jl, jr) = jaw
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), p| {
                (a.min(p.x), b.max(p.x))
            });
        let jaw_w = (jr - jl).max(1.0);
        let cx = (jl + jr) / 2.0;
        let head_w = jaw_w * HEAD_WIDTH_RATIO;
        let brow_y = landmarks
            .brows()
            .iter()
            .map(|p| p.y)
            .fold(f32::INFINITY, f32::min)
            .min(eye_mid.y);
        let (crown_y, crown_source) = crown(frame, luma, &landmarks, eye_mid, d, brow_y);
        let crown = Point {
            x: eye_mid.x,
            y: crown_y,
        };
        let head = [
            cx - head_w / 2.0,
            crown_y,
            head_w,
            (chin.y - crown_y).max(0.0),
        ];
        let background = background_regions(frame, &head, &landmarks);
        Subject {
            face,
            eye_openness: eye_aspect(landmarks.right_eye()).min(eye_aspect(landmarks.left_eye())),
            mouth_gap: mouth_gap(&landmarks),
            landmarks,
            expression,
            eyes: [right, left],
            eye_mid,
            inter_eye,
            pose: Pose { yaw, pitch, roll },
            chin,
            crown,
            crown_source,
            head,
            background,
        }
    }
}

/// Eye aspect ratio of six eye points `p0..p5` (corner, two upper lid, corner, two lower
/// lid): `(|p1 - p5| + |p2 - p4|) / (2 |p0 - p3|)`.
pub fn eye_aspect(eye: &[Point]) -> f32 {
    if eye.len() < 6 {
        return 0.0;
    }
    let w = eye[0].dist(&eye[3]);
    if w <= 0.0 {
        return 0.0;
    }
    (eye[1].dist(&eye[5]) + eye[2].dist(&eye[4])) / (2.0 * w)
}

/// Mean gap between the inner lips (61-67, 62-66, 63-65) over the mouth's width (48-54).
pub fn mouth_gap(l: &Landmarks) -> f32 {
    let w = l.at(48).dist(&l.at(54));
    if w <= 0.0 {
        return 0.0;
    }
    let g = (l.at(61).dist(&l.at(67)) + l.at(62).dist(&l.at(66)) + l.at(63).dist(&l.at(65))) / 3.0;
    g / w
}

/// How far the nose tip sits from the middle of the face contour, as a fraction of the
/// contour's width, maps to yaw: `sin(yaw) = YAW_GAIN * offset`. Fitted to an independent
/// reference, the head pose of @vladmandic/human 3.3.6's 468-point face mesh
/// (`scripts/pose-reference.sh`), over the 223 conformance photos: 1.00, and 0.99-1.04
/// when each of the 7 source portraits is left out of the fit in turn; the left-out
/// photos' error is 0.87 degrees mean, 2.4 at the 95th percentile (docs/verification.md).
pub const YAW_GAIN: f32 = 1.0;

/// Yaw (degrees; positive when the face turns towards the image's right) from the nose
/// tip's offset between the two sides of the face contour (landmarks 1 and 15, beside the
/// eyes), measured along the eye line so that roll does not read as yaw: a turned head
/// brings the nose, in front of the contour, towards the side it turns to while the
/// contour's outline stays about where it was. [`YAW_GAIN`] says how the offset was
/// calibrated.
pub fn yaw(l: &Landmarks) -> f32 {
    let right = Point::mean(l.right_eye());
    let left = Point::mean(l.left_eye());
    let (dx, dy) = (left.x - right.x, left.y - right.y);
    let n = (dx * dx + dy * dy).sqrt();
    if n <= 0.0 {
        return 0.0;
    }
    let along = |p: Point| (p.x * dx + p.y * dy) / n;
    let (a, b) = (along(l.at(1)), along(l.at(15)));
    let w = b - a;
    if w <= 0.0 {
        return 0.0;
    }
    let offset = (along(l.at(30)) - (a + b) / 2.0) / w;
    (YAW_GAIN * offset).clamp(-1.0, 1.0).asin().to_degrees()
}

/// Pitch (degrees) from a weak-perspective fit of seven landmarks to a generic 3D
/// face: nose tip, chin, the four eye corners and the nasion, positions after the model of
/// Mallick's "Head Pose Estimation using OpenCV and Dlib" (2016; arbitrary units, about
/// 5 per mm, y up, z towards the camera), with the mouth corners (which rise in a smile and
/// read as pitch) replaced by the inner eye corners and the nasion (placed from adult
/// anthropometry: inner canthi 32 mm apart, nasion 18 mm behind the nose tip). The 2x3
/// projection is solved by least squares, its rows orthonormalized, and the angle read
/// from the rotation. Pitch from 2D landmarks mixes head rotation with facial proportions
/// (chin length, nose length): the corpus's frontal portraits read -24 to +4 degrees, so
/// only gross pitch can be told (docs/verification.md). The same fit's yaw over-reads a
/// turn about 3 times against the face-mesh reference, which is why [`yaw`] is measured
/// otherwise.
pub fn pitch(l: &Landmarks) -> f32 {
    yaw_pitch(l).1
}

fn yaw_pitch(l: &Landmarks) -> (f32, f32) {
    const MODEL: [[f64; 3]; 7] = [
        [0.0, 0.0, 0.0],         // 30 nose tip
        [0.0, -330.0, -65.0],    // 8 chin
        [-225.0, 170.0, -135.0], // 36 right eye, outer corner (image left)
        [225.0, 170.0, -135.0],  // 45 left eye, outer corner
        [-80.0, 170.0, -120.0],  // 39 right eye, inner corner
        [80.0, 170.0, -120.0],   // 42 left eye, inner corner
        [0.0, 175.0, -90.0],     // 27 nasion
    ];
    const IDX: [usize; 7] = [30, 8, 36, 45, 39, 42, 27];
    // image points with y up
    let img: Vec<[f64; 2]> = IDX
        .iter()
        .map(|&i| {
            let p = l.at(i);
            [p.x as f64, -(p.y as f64)]
        })
        .collect();
    let n = MODEL.len() as f64;
    let mm: [f64; 3] = std::array::from_fn(|k| MODEL.iter().map(|m| m[k]).sum::<f64>() / n);
    let im: [f64; 2] = std::array::from_fn(|k| img.iter().map(|p| p[k]).sum::<f64>() / n);
    // normal equations: M (2x3) = (sum x X^T) (sum X X^T)^-1
    let mut xx = [[0f64; 3]; 3];
    let mut yx = [[0f64; 3]; 2];
    for (m, p) in MODEL.iter().zip(&img) {
        let x: [f64; 3] = std::array::from_fn(|k| m[k] - mm[k]);
        let y = [p[0] - im[0], p[1] - im[1]];
        for a in 0..3 {
            for b in 0..3 {
                xx[a][b] += x[a] * x[b];
            }
            for (r, yr) in y.iter().enumerate() {
                yx[r][a] += yr * x[a];
            }
        }
    }
    let Some(inv) = invert3(&xx) else {
        return (0.0, 0.0);
    };
    let row = |r: usize| -> [f64; 3] {
        std::array::from_fn(|b| (0..3).map(|a| yx[r][a] * inv[a][b]).sum())
    };
    let (r1, r2) = (row(0), row(1));
    let norm = |v: [f64; 3]| {
        let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if l > 0.0 {
            [v[0] / l, v[1] / l, v[2] / l]
        } else {
            v
        }
    };
    // symmetric orthonormalization of the two rows
    let (a, b) = (norm(r1), norm(r2));
    let (s, t) = (
        norm(std::array::from_fn(|k| a[k] + b[k])),
        norm(std::array::from_fn(|k| a[k] - b[k])),
    );
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let r1: [f64; 3] = std::array::from_fn(|k| h * (s[k] + t[k]));
    let r2: [f64; 3] = std::array::from_fn(|k| h * (s[k] - t[k]));
    let r3 = [
        r1[1] * r2[2] - r1[2] * r2[1],
        r1[2] * r2[0] - r1[0] * r2[2],
        r1[0] * r2[1] - r1[1] * r2[0],
    ];
    // R = Ry(yaw) Rx(pitch)...: r3 is the model's z axis seen from the camera; yaw is its
    // horizontal tilt, pitch its vertical one.
    // a yaw `a` about the vertical axis makes r3 = (-sin a, 0, cos a); a pitch `b` (chin
    // forward) makes r3 = (0, -sin b, cos b)
    let yaw = (-r3[0]).atan2(r3[2]).to_degrees();
    let pitch = (-r3[1])
        .atan2((r3[0] * r3[0] + r3[2] * r3[2]).sqrt())
        .to_degrees();
    (yaw as f32, pitch as f32)
}

fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let c = |r: usize, k: usize| {
        let (r0, r1) = ((r + 1) % 3, (r + 2) % 3);
        let (k0, k1) = ((k + 1) % 3, (k + 2) % 3);
        m[r0][k0] * m[r1][k1] - m[r0][k1] * m[r1][k0]
    };
    Some(std::array::from_fn(|i| {
        std::array::from_fn(|j| c(j, i) / det)
    }))
}

/// The crown's height: the top edge of the head against the background, scanning up from
/// the brows in a band between the eyes; the landmark prior when the background is busy;
/// the frame's top when background is never reached.
fn crown(
    frame: &Frame,
    luma: &Luma,
    l: &Landmarks,
    eye_mid: Point,
    d: f32,
    brow_y: f32,
) -> (f32, CrownSource) {
    let prior = eye_mid.y - CROWN_RATIO * d;
    let cap = eye_mid.y - CROWN_MAX_RATIO * d;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w < 8 || h < 8 {
        return (prior.max(0.0), CrownSource::Landmarks);
    }
    // background sample: the top rows' outer eighths (a close-up head may fill the
    // middle of the top rows; the corners are background in a passport photo)
    let rows = (h / 40).max(2);
    let px = frame.as_bytes();
    let side = (w / 8).max(1);
    let mut sample: Vec<[f32; 3]> = Vec::new();
    for y in 0..rows {
        for x in (0..side).chain(w - side..w).step_by(2) {
            let o = (y * w + x) * 3;
            sample.push([px[o] as f32, px[o + 1] as f32, px[o + 2] as f32]);
        }
    }
    let n = sample.len().max(1) as f32;
    let mean: [f32; 3] = std::array::from_fn(|c| sample.iter().map(|p| p[c]).sum::<f32>() / n);
    let spread = {
        let lum: Vec<f64> = (0..rows)
            .flat_map(|y| {
                (0..side)
                    .chain(w - side..w)
                    .map(move |x| luma.data[y * luma.width + x] as f64)
            })
            .collect();
        let m = lum.iter().sum::<f64>() / lum.len().max(1) as f64;
        (lum.iter().map(|v| (v - m).powi(2)).sum::<f64>() / lum.len().max(1) as f64).sqrt()
    };
    if spread > BUSY_BACKGROUND {
        return (prior.max(0.0), CrownSource::Landmarks);
    }
    let tol = (3.0 * spread as f32).max(24.0);
    let (x0, x1) = {
        let a = Point::mean(l.right_eye()).x;
        let b = Point::mean(l.left_eye()).x;
        let (a, b) = (a.min(b), a.max(b));
        (
            (a.max(0.0) as usize).min(w - 1),
            (b.max(0.0) as usize).min(w - 1),
        )
    };
    if x1 <= x0 {
        return (prior.max(0.0), CrownSource::Landmarks);
    }
    let is_bg = |y: usize| -> bool {
        let row = &px[y * w * 3..(y + 1) * w * 3];
        let mut hits = 0usize;
        for x in x0..=x1 {
            let o = x * 3;
            let dd = (0..3)
                .map(|c| (row[o + c] as f32 - mean[c]).powi(2))
                .sum::<f32>()
                .sqrt();
            hits += (dd <= tol) as usize;
        }
        hits * 10 >= (x1 - x0 + 1) * 8
    };
    // Scanning down from the top in the band between the eyes, the first run of `need`
    // rows that are not background is the top of the head (hair included). Scanning down
    // rather than up from the brows keeps a forehead as light as the background from
    // passing for background.
    let need = ((0.02 * d) as usize).max(2);
    let start = brow_y.clamp(0.0, (h - 1) as f32) as usize;
    let mut run = 0usize;
    for y in 0..=start {
        if is_bg(y) {
            run = 0;
            continue;
        }
        run += 1;
        if run >= need {
            let edge = y + 1 - run;
            if edge == 0 {
                // the head runs off the top: the crown lies above the frame, where the
                // landmarks put it (at least a pixel above, so the head counts as cut)
                return (prior.min(-1.0), CrownSource::FrameTop);
            }
            // an edge within 0.6 eye-to-chin distances of the eye line is a forehead as
            // light as the background (a bald or fair head): the prior is better
            if (edge as f32) > eye_mid.y - 0.6 * d {
                break;
            }
            return ((edge as f32).max(cap), CrownSource::Edge);
        }
    }
    (prior.max(0.0), CrownSource::Landmarks)
}

/// Background regions beside and above the head: the band above the crown (less a
/// margin) across the whole width, and, from the crown down to the nose tip, the strips
/// left and right of the head (its width by [`HEAD_WIDTH_RATIO`], plus a margin). Below the
/// nose the shoulders begin; inside the head box are hair and ears.
fn background_regions(frame: &Frame, head: &Rect, l: &Landmarks) -> Vec<Rect> {
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let margin = 0.04 * head[3].max(1.0);
    let mut v = Vec::new();
    let top = head[1] - margin;
    if top >= 2.0 {
        v.push([0.0, 0.0, w, top]);
    }
    let y0 = head[1].max(0.0);
    let y1 = l.at(30).y.min(h);
    if y1 > y0 + 2.0 {
        let left = head[0] - margin;
        if left >= 2.0 {
            v.push([0.0, y0, left, y1 - y0]);
        }
        let right = head[0] + head[2] + margin;
        if w - right >= 2.0 {
            v.push([right, y0, w - right, y1 - y0]);
        }
    }
    v
}

/// Whether `(x, y)` lies inside the closed polygon `poly` (even-odd rule): the per-point
/// reference that [`FaceMask::new`]'s scanlines are tested against.
#[cfg(test)]
fn inside(poly: &[Point], x: f32, y: f32) -> bool {
    let mut c = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + n - 1) % n]);
        if (a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x {
            c = !c;
        }
    }
    c
}

/// The face region's pixels as a mask over `luma`: the polygon of the jaw line (0-16) and
/// the brows (26 back to 17). Returns (mask, bounding rows and columns) and the nose axis
/// for splitting left from right: for a row `y`, pixels left of `axis(y)` are the
/// image's left half.
#[derive(Debug, Clone)]
pub struct FaceMask {
    /// `[x0, y0, x1, y1)` of the mask in the image.
    pub bounds: [usize; 4],
    /// Row-major mask over `bounds`.
    pub mask: Vec<bool>,
    /// x of the nose axis at the top and bottom rows of `bounds` (interpolated between).
    pub axis: (f32, f32),
}

impl FaceMask {
    /// The mask of `l` over an image of `w` x `h`.
    pub fn new(l: &Landmarks, w: usize, h: usize) -> Option<FaceMask> {
        let mut poly: Vec<Point> = l.jaw().to_vec();
        poly.extend(l.brows().iter().rev());
        if poly.len() < 3 {
            return None;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        );
        for p in &poly {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
            return None;
        }
        let bx0 = (x0.max(0.0) as usize).min(w);
        let by0 = (y0.max(0.0) as usize).min(h);
        let bx1 = ((x1.ceil().max(0.0)) as usize).min(w);
        let by1 = ((y1.ceil().max(0.0)) as usize).min(h);
        if bx1 <= bx0 + 2 || by1 <= by0 + 2 {
            return None;
        }
        // scanlines: the even-odd test of `inside` per pixel centre, with each row's edge
        // crossings computed once (the same expression) and sorted, instead of every edge
        // per pixel (5 % of a 12 MP photo's verification)
        let mut mask = Vec::with_capacity((bx1 - bx0) * (by1 - by0));
        let mut xs: Vec<f32> = Vec::with_capacity(poly.len());
        let n = poly.len();
        for y in by0..by1 {
            let yc = y as f32 + 0.5;
            xs.clear();
            for i in 0..n {
                let (a, b) = (poly[i], poly[(i + n - 1) % n]);
                if (a.y > yc) != (b.y > yc) {
                    xs.push((b.x - a.x) * (yc - a.y) / (b.y - a.y) + a.x);
                }
            }
            xs.sort_by(f32::total_cmp);
            // crossings at or left of the pixel centre so far: inside when the count of
            // those to its right is odd
            let mut k = 0;
            for x in bx0..bx1 {
                let xc = x as f32 + 0.5;
                while k < xs.len() && xs[k] <= xc {
                    k += 1;
                }
                mask.push((xs.len() - k) % 2 == 1);
            }
        }
        // nose axis: through the bridge's top (27) and the chin (8)
        let (a, b) = (l.at(27), l.at(8));
        let at = |y: f32| {
            if (b.y - a.y).abs() < 1e-3 {
                a.x
            } else {
                a.x + (b.x - a.x) * (y - a.y) / (b.y - a.y)
            }
        };
        Some(FaceMask {
            bounds: [bx0, by0, bx1, by1],
            mask,
            axis: (at(by0 as f32), at(by1 as f32)),
        })
    }

    /// Calls `f(x, y, left)` for every masked pixel (`left`: left of the nose axis).
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, bool)) {
        let [x0, y0, x1, y1] = self.bounds;
        let rows = (y1 - y0).max(1) as f32;
        for (j, y) in (y0..y1).enumerate() {
            let ax = self.axis.0 + (self.axis.1 - self.axis.0) * j as f32 / rows;
            let row = &self.mask[j * (x1 - x0)..(j + 1) * (x1 - x0)];
            for (i, &m) in row.iter().enumerate() {
                if m {
                    let x = x0 + i;
                    f(x, y, (x as f32 + 0.5) < ax);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lm(f: impl Fn(usize) -> (f32, f32)) -> Landmarks {
        Landmarks {
            points: (0..68)
                .map(|i| {
                    let (x, y) = f(i);
                    Point { x, y }
                })
                .collect(),
        }
    }

    #[test]
    fn eye_aspect_of_an_open_and_a_closed_eye() {
        let open = [
            (0.0, 0.0),
            (1.0, -1.0),
            (2.0, -1.0),
            (3.0, 0.0),
            (2.0, 1.0),
            (1.0, 1.0),
        ];
        let pts: Vec<Point> = open.iter().map(|&(x, y)| Point { x, y }).collect();
        assert!((eye_aspect(&pts) - 2.0 / 3.0).abs() < 1e-6);
        let closed: Vec<Point> = open.iter().map(|&(x, _)| Point { x, y: 0.0 }).collect();
        assert_eq!(eye_aspect(&closed), 0.0);
        assert_eq!(eye_aspect(&pts[..3]), 0.0);
    }

    #[test]
    fn a_frontal_symmetric_face_has_no_yaw_or_pitch_and_turning_it_gives_yaw() {
        // the model's own points projected orthographically, y down
        let model = |yaw: f64| {
            let pts: [(usize, [f64; 3]); 7] = [
                (30, [0.0, 0.0, 0.0]),
                (8, [0.0, -330.0, -65.0]),
                (36, [-225.0, 170.0, -135.0]),
                (45, [225.0, 170.0, -135.0]),
                (39, [-80.0, 170.0, -120.0]),
                (42, [80.0, 170.0, -120.0]),
                (27, [0.0, 175.0, -90.0]),
            ];
            let (c, s) = (yaw.to_radians().cos(), yaw.to_radians().sin());
            lm(|i| {
                pts.iter()
                    .find(|p| p.0 == i)
                    .map(|(_, m)| {
                        let x = c * m[0] + s * m[2];
                        (500.0 + 0.5 * x as f32, 500.0 - 0.5 * m[1] as f32)
                    })
                    .unwrap_or((500.0, 500.0))
            })
        };
        let (y0, p0) = yaw_pitch(&model(0.0));
        assert!(y0.abs() < 0.5 && p0.abs() < 0.5, "{y0} {p0}");
        let (y1, _) = yaw_pitch(&model(20.0));
        assert!((y1 - 20.0).abs() < 3.0, "{y1}");
        let (y2, _) = yaw_pitch(&model(-20.0));
        assert!((y2 + 20.0).abs() < 3.0, "{y2}");
    }

    #[test]
    fn yaw_follows_the_nose_between_the_contour_sides_and_ignores_roll() {
        // contour sides at +-100 px beside the eyes, the nose tip 200 px in front of the
        // contour's axis (the depth YAW_GAIN = 1 stands for), turned by `deg`, rolled by
        // `roll` about (500, 500)
        let face = |deg: f32, roll: f32| {
            let nose_x = 200.0 * deg.to_radians().sin();
            let (c, s) = (roll.to_radians().cos(), roll.to_radians().sin());
            lm(|i| {
                let (x, y) = match i {
                    1 => (-100.0, 0.0),
                    15 => (100.0, 0.0),
                    30 => (nose_x, 60.0),
                    36..=41 => (-45.0, -10.0),
                    42..=47 => (45.0, -10.0),
                    _ => (0.0, 0.0),
                };
                (500.0 + c * x - s * y, 500.0 + s * x + c * y)
            })
        };
        assert!(yaw(&face(0.0, 0.0)).abs() < 1e-3);
        for deg in [-30.0f32, -5.0, 5.0, 12.0, 30.0] {
            let y = yaw(&face(deg, 0.0));
            assert!((y - deg).abs() < 1e-2, "{deg}: {y}");
            // roll does not move it
            let rolled = yaw(&face(deg, 20.0));
            assert!((rolled - deg).abs() < 1e-2, "{deg} rolled: {rolled}");
        }
        // degenerate landmarks give 0, not NaN
        assert_eq!(yaw(&lm(|_| (1.0, 1.0))), 0.0);
    }

    #[test]
    fn face_mask_scanlines_equal_the_point_test() {
        // a jaw and brows with a dent, rolled and partly outside the image
        let l = lm(|i| {
            let t = i as f32 / 26.0 * std::f32::consts::TAU;
            let r = if i % 5 == 0 { 30.0 } else { 45.0 };
            (
                60.0 + r * t.cos() + 0.3 * i as f32,
                50.0 + r * 1.2 * t.sin(),
            )
        });
        for (w, h) in [(200usize, 200usize), (90, 80)] {
            let m = FaceMask::new(&l, w, h).expect("mask");
            let mut poly: Vec<Point> = l.jaw().to_vec();
            poly.extend(l.brows().iter().rev());
            let [x0, y0, x1, y1] = m.bounds;
            let mut n = 0;
            for y in y0..y1 {
                for x in x0..x1 {
                    let want = inside(&poly, x as f32 + 0.5, y as f32 + 0.5);
                    assert_eq!(m.mask[(y - y0) * (x1 - x0) + x - x0], want, "{x},{y}");
                    n += want as usize;
                }
            }
            assert!(n > 100, "{n}");
        }
    }

    #[test]
    fn point_in_polygon() {
        let sq = [
            Point { x: 0.0, y: 0.0 },
            Point { x: 10.0, y: 0.0 },
            Point { x: 10.0, y: 10.0 },
            Point { x: 0.0, y: 10.0 },
        ];
        assert!(inside(&sq, 5.0, 5.0));
        assert!(!inside(&sq, 15.0, 5.0));
        assert!(!inside(&sq, 5.0, -1.0));
    }
}
