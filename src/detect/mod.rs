//! Face detection with TinyFaceDetector (face-api's 416x416 YOLO-style CNN, MIT).
//!
//! What both paths share lives here: the validated weights ([`TinyFaceWeights`]), the
//! detector's input pipeline ([`detector_pipeline`]), the head decoding and the greedy NMS.
//! The network itself runs on the CPU (`src/cpu/detect.rs`) or on the GPU
//! (`src/gpu/detect.rs` with `shaders/detect.wgsl`); both return the same raw head tensor
//! (13 x 13 x 5 anchors x (tx, ty, tw, th, score)) within float rounding, which this module
//! turns into [`Face`]s.
//!
//! Architecture (weights in manifest order, HWIO): `conv0` 3x3 conv 3->16 + bias, leaky
//! ReLU(0.1), maxpool 2x2/2; five depthwise-separable blocks `conv1..conv5` (3x3 depthwise,
//! 1x1 pointwise C->2C, bias, leaky ReLU(0.1)) each followed by a 2x2 maxpool with strides
//! 2,2,2,2,1 (the stride-1 pool pads bottom/right, TF 'same'); `conv8` 1x1 512->25 + bias.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::geometry::Geometry;
use crate::model::Model;
use crate::spec::{Anchor, DType, Filter, Layout, Pipeline, Resize};

/// The name the engine's model cache knows the detector by.
pub const TINY_FACE_MODEL: &str = "tiny_face_detector";

/// The detector's input side (pixels).
pub const INPUT_SIDE: u32 = 416;

/// Output grid side (416 / 32).
pub const GRID: usize = 13;

/// Anchors per cell.
pub const ANCHORS: usize = 5;

/// Values per anchor: tx, ty, tw, th, score.
pub const BOX_VALUES: usize = 5;

/// Length of the raw head tensor: `GRID * GRID * ANCHORS * BOX_VALUES` (row, col, anchor,
/// value order).
pub const HEAD_LEN: usize = GRID * GRID * ANCHORS * BOX_VALUES;

/// Anchor sizes (width, height) in grid cells, from face-api's TinyFaceDetector config.
pub const ANCHOR_SIZES: [(f32, f32); ANCHORS] = [
    (1.603231, 2.094468),
    (6.041143, 7.080126),
    (2.882459, 3.518061),
    (4.266906, 5.178857),
    (9.041765, 10.66308),
];

/// face-api's per-channel mean (RGB, 0..255 scale); the input is `(x - mean) / 255`.
pub const MEAN_RGB: [f32; 3] = [117.001, 114.697, 97.404];

/// Channels of the five separable blocks' inputs (their outputs double it).
pub const BLOCK_CHANNELS: [usize; 5] = [16, 32, 64, 128, 256];

/// Max-pool stride after each separable block.
pub const BLOCK_POOL_STRIDE: [usize; 5] = [2, 2, 2, 2, 1];

/// Leaky ReLU slope.
pub const LEAKY: f32 = 0.1;

/// Detection settings. The score and NMS defaults are face-api's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Keep boxes whose sigmoid score is at least this. Default 0.5 (face-api's default;
    /// with it the asset photos give the counts listed in `shared/ASSETS.md`).
    pub score_threshold: f32,
    /// Greedy NMS: drop a box overlapping a better one by more than this IoU. Default 0.4.
    pub nms_iou: f32,
    /// Across passes, also drop a box lying mostly inside a better one: more than this
    /// fraction of its own area (a face found whole at one scale and in part at another).
    /// Default 0.6.
    pub nms_contained: f32,
    /// ... but only when its width is at least this fraction of the better box's: a part of
    /// the same face found at another scale is not much smaller than the whole, while a face
    /// a fifth of the size inside a box (a second person by the chin or the shoulder) is
    /// another face. Default 0.3 (on the conformance corpus the only contained boxes were
    /// such second faces, at 0.21 and 0.23 of the subject's width).
    pub nms_contained_min_width: f32,
    /// Which passes run and how small a face they look for.
    pub search: SearchConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            score_threshold: 0.5,
            nms_iou: 0.4,
            nms_contained: 0.6,
            nms_contained_min_width: 0.3,
            search: SearchConfig::default(),
        }
    }
}

/// The face search: which detector passes run over a photo (see [`Pass`]).
///
/// TinyFaceDetector sees faces of about 40 to 200 pixels in its input: its grid cells are 32
/// pixels and its anchors span 51 to 341 pixels, and boxes between the two largest anchors
/// (200-230 px) are missed. One 416x416 letterbox therefore misses close-up portraits and
/// every face under about 10 % of the photo's longer side; the portrait and fine passes
/// cover both ends (docs/verification.md has the recall measured per face size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Run the portrait pass. Default true.
    pub portrait: bool,
    /// The portrait pass's canvas side as a multiple of the photo's longer side (the photo
    /// zoomed out by this factor, centred). Default 2.5: a head filling 70-80 % of the
    /// photo's height then spans ~115-135 px of the input, the anchors' best range, and a
    /// face wider than the photo (a close-up cut at the cheeks) is still seen whole enough:
    /// on the conformance corpus's closest source (obama3, 31 photos) the best box scored
    /// 0.39-0.95 at 1.75 (3 photos without a face at 0.5) and 0.62-0.99 at 2.5.
    pub portrait_zoom: f32,
    /// Run the fine pass for faces smaller than the letterbox resolves. Default true.
    pub fine: bool,
    /// Smallest face to find, in photo pixels. Default 40.
    pub min_face_px: f32,
    /// Smallest face to find as a fraction of the photo's longer side (the larger of the
    /// two minimums applies). Default 0.025: aiming under the 3 % that verification must
    /// find gives those a margin (measured on the corpus's recall set: at 0.03, 51 of 52
    /// faces of at least 3 % were found and 23 of the group photo's 29; at 0.025, 52 and
    /// 26; docs/verification.md).
    pub min_face_fraction: f32,
    /// Height the smallest face is scaled to in the fine pass's input. Default 48 (the
    /// detector's recall falls off under ~40 px; 52 and 56 found fewer of the recall set's
    /// faces, 64 fewer still: larger scales push the upper end of the range out of it).
    pub fine_face_px: f32,
    /// Largest fine-pass input, in pixels (bounds its cost: about 14 ms per 416x416 on two
    /// cores); a photo that would need more is searched at the scale that fits, and its
    /// face count is reported as a lower bound. Default 4 MP.
    pub max_fine_pixels: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            portrait: true,
            portrait_zoom: 2.5,
            fine: true,
            min_face_px: 40.0,
            min_face_fraction: 0.025,
            fine_face_px: 48.0,
            max_fine_pixels: 4_000_000,
        }
    }
}

/// A pass of the face search: how the detector's input is made from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    /// face-api's own: the image letterboxed into 416x416 at the top-left.
    Letterbox,
    /// The image zoomed out and centred in 416x416 ([`SearchConfig::portrait_zoom`]), for
    /// faces too large for the letterbox.
    Portrait,
    /// The whole image in one rectangular input (the network is fully convolutional) at the
    /// scale that makes the smallest face to find [`SearchConfig::fine_face_px`] tall.
    Fine,
}

/// One planned pass: its kind and the pipeline that makes its input.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPass {
    /// Which pass.
    pub pass: Pass,
    /// The detector input's pipeline (its output size is a multiple of 32 on both axes).
    pub pipeline: Pipeline,
    /// The fine pass had to search at a coarser scale than asked (its input would have
    /// exceeded [`SearchConfig::max_fine_pixels`]).
    pub limited: bool,
}

/// The smallest face to find in an image of `size` analysed from a photo of `photo`
/// pixels, in the image's pixels.
pub fn min_face(size: (u32, u32), photo: (u32, u32), s: &SearchConfig) -> f32 {
    let long_photo = photo.0.max(photo.1).max(1) as f32;
    let k = size.0.max(size.1) as f32 / long_photo;
    s.min_face_px.max(s.min_face_fraction * long_photo) * k
}

/// The letterbox and portrait passes for an image of `size`.
pub fn coarse_passes(size: (u32, u32), cfg: &DetectorConfig) -> Vec<PlannedPass> {
    let mut v = vec![PlannedPass {
        pass: Pass::Letterbox,
        pipeline: detector_pipeline(),
        limited: false,
    }];
    if cfg.search.portrait {
        let long = size.0.max(size.1).max(1) as f64;
        let zoom = (cfg.search.portrait_zoom as f64).max(1.0);
        v.push(PlannedPass {
            pass: Pass::Portrait,
            pipeline: detector_pipeline().resize(Resize::Place {
                width: INPUT_SIDE,
                height: INPUT_SIDE,
                scale: INPUT_SIDE as f64 / (zoom * long),
                anchor: Anchor::Center,
                pad: [0, 0, 0],
            }),
            limited: false,
        });
    }
    v
}

/// The fine pass for an image of `size` analysed from a photo of `photo` pixels, or
/// `None` when the letterbox already sees the smallest face to find at
/// [`SearchConfig::fine_face_px`] (within 15 %) or the pass is off.
pub fn fine_pass(size: (u32, u32), photo: (u32, u32), cfg: &DetectorConfig) -> Option<PlannedPass> {
    let s = &cfg.search;
    if !s.fine || size.0 == 0 || size.1 == 0 {
        return None;
    }
    let long = size.0.max(size.1) as f64;
    let letterbox = INPUT_SIDE as f64 / long;
    let want = s.fine_face_px as f64 / min_face(size, photo, s).max(1.0) as f64;
    if want <= 1.15 * letterbox {
        return None;
    }
    let canvas = |r: f64| {
        let side = |v: u32| (((v as f64 * r).round() as u32).max(1)).next_multiple_of(32);
        (side(size.0), side(size.1))
    };
    let mut r = want;
    let mut limited = false;
    let px = |c: (u32, u32)| c.0 as u64 * c.1 as u64;
    while px(canvas(r)) > s.max_fine_pixels.max(INPUT_SIDE as u64 * INPUT_SIDE as u64) {
        r *= 0.95;
        limited = true;
    }
    if r <= letterbox {
        return None;
    }
    let (w, h) = canvas(r);
    Some(PlannedPass {
        pass: Pass::Fine,
        pipeline: detector_pipeline().resize(Resize::Place {
            width: w,
            height: h,
            scale: r,
            anchor: Anchor::TopLeft,
            pad: [0, 0, 0],
        }),
        limited,
    })
}

/// A detected face, in pixels of the (EXIF-oriented) photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Left edge (may be slightly outside the photo: boxes are not clipped).
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
    /// Confidence (sigmoid of the score logit), 0..1.
    pub score: f32,
}

impl Face {
    /// Intersection over union with `other` (0 when either is empty).
    pub fn iou(&self, other: &Face) -> f32 {
        let ix = (self.x + self.width).min(other.x + other.width) - self.x.max(other.x);
        let iy = (self.y + self.height).min(other.y + other.height) - self.y.max(other.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = self.width * self.height + other.width * other.height - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The fraction of this box's area inside `other` (0 when either is empty).
    pub fn inside(&self, other: &Face) -> f32 {
        let ix = (self.x + self.width).min(other.x + other.width) - self.x.max(other.x);
        let iy = (self.y + self.height).min(other.y + other.height) - self.y.max(other.y);
        let area = self.width * self.height;
        if ix <= 0.0 || iy <= 0.0 || area <= 0.0 {
            return 0.0;
        }
        ix * iy / area
    }

    /// The box scaled by `s` (from analysis-image to photo pixels).
    pub fn scaled(&self, s: f32) -> Face {
        Face {
            x: self.x * s,
            y: self.y * s,
            width: self.width * s,
            height: self.height * s,
            score: self.score,
        }
    }

    /// Centre (x, y).
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.width / 2.0, self.y + self.height / 2.0)
    }
}

/// The face detections of one photo, in photo pixels.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Faces, best first.
    pub faces: Vec<Face>,
    /// Full-resolution photo size (after orientation).
    pub size: (u32, u32),
}

/// The detector's preprocessing as an engine pipeline: letterbox into 416x416 at the
/// top-left with black padding (face-api pads right/bottom to a square, then resizes), an
/// antialiased bilinear resize, `(x - mean) / 255`, NHWC f32.
pub fn detector_pipeline() -> Pipeline {
    let mean = MEAN_RGB.map(|m| m / 255.0);
    Pipeline::new()
        .resize(Resize::Fit {
            width: INPUT_SIDE,
            height: INPUT_SIDE,
            anchor: Anchor::TopLeft,
            pad: [0, 0, 0],
        })
        .filter(Filter::Bilinear)
        .normalize(mean, [1.0; 3])
        .layout(Layout::Nhwc)
        .dtype(DType::F32)
}

/// One depthwise-separable block's weights.
#[derive(Debug, Clone)]
pub struct SeparableWeights {
    /// Input channels.
    pub channels: usize,
    /// 3x3 depthwise filter, `[ky][kx][c]`.
    pub depthwise: Vec<f32>,
    /// 1x1 pointwise filter, `[ci][co]` (co = 2 x channels).
    pub pointwise: Vec<f32>,
    /// Bias, `[co]`.
    pub bias: Vec<f32>,
}

/// TinyFaceDetector's weights, checked against the architecture and laid out for both paths
/// (the TF.js HWIO order is already `[ky][kx][ci][co]`, the order the kernels read).
#[derive(Debug, Clone)]
pub struct TinyFaceWeights {
    /// `conv0` 3x3 filter `[ky][kx][ci][co]`, 3 -> 16.
    pub conv0: Vec<f32>,
    /// `conv0` bias (16).
    pub conv0_bias: Vec<f32>,
    /// `conv1` .. `conv5`.
    pub blocks: Vec<SeparableWeights>,
    /// `conv8` 1x1 filter `[ci][co]`, 512 -> 25.
    pub head: Vec<f32>,
    /// `conv8` bias (25).
    pub head_bias: Vec<f32>,
}

impl TinyFaceWeights {
    /// Validates `model` against the architecture.
    ///
    /// # Errors
    /// `Model` naming the tensor that is missing or has the wrong shape.
    pub fn from_model(model: &Model) -> Result<TinyFaceWeights> {
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = model.tensor(name).ok_or_else(|| {
                Error::new(ErrorKind::Model(format!(
                    "{}: tensor {name} is missing (not a TinyFaceDetector?)",
                    model.name
                )))
            })?;
            if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                return Err(Error::new(ErrorKind::Model(format!(
                    "{}: tensor {name} has shape {:?}, expected {shape:?}",
                    model.name, t.shape
                ))));
            }
            Ok(t.data.to_vec())
        };
        let mut blocks = Vec::with_capacity(5);
        for (k, &c) in BLOCK_CHANNELS.iter().enumerate() {
            let n = k + 1;
            blocks.push(SeparableWeights {
                channels: c,
                depthwise: get(&format!("conv{n}/depthwise_filter"), &[3, 3, c, 1])?,
                pointwise: get(&format!("conv{n}/pointwise_filter"), &[1, 1, c, 2 * c])?,
                bias: get(&format!("conv{n}/bias"), &[2 * c])?,
            });
        }
        Ok(TinyFaceWeights {
            conv0: get("conv0/filters", &[3, 3, 3, 16])?,
            conv0_bias: get("conv0/bias", &[16])?,
            blocks,
            head: get("conv8/filters", &[1, 1, 512, ANCHORS * BOX_VALUES])?,
            head_bias: get("conv8/bias", &[ANCHORS * BOX_VALUES])?,
        })
    }

    /// Bytes of weights (f32).
    pub fn bytes(&self) -> u64 {
        let b: usize = self
            .blocks
            .iter()
            .map(|b| b.depthwise.len() + b.pointwise.len() + b.bias.len())
            .sum();
        4 * (self.conv0.len() + self.conv0_bias.len() + b + self.head.len() + self.head_bias.len())
            as u64
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Pixels of the detector's input per output cell (416 / 13).
pub const CELL: f32 = 32.0;

/// Turns a raw head of a `grid.0 x grid.1` grid (columns x rows; cells of [`CELL`] input
/// pixels, `[row][col][anchor][tx, ty, tw, th, score]`) into boxes in input pixels whose
/// score is at least `threshold`, before NMS.
pub fn decode_grid(head: &[f32], grid: (usize, usize), threshold: f32) -> Vec<Face> {
    let mut faces = Vec::new();
    let (gw, gh) = grid;
    for (cell, values) in head
        .chunks_exact(ANCHORS * BOX_VALUES)
        .take(gw * gh)
        .enumerate()
    {
        let (row, col) = ((cell / gw.max(1)) as f32, (cell % gw.max(1)) as f32);
        for (a, v) in values.chunks_exact(BOX_VALUES).enumerate() {
            let score = sigmoid(v[4]);
            // NaN scores (a broken model) are dropped too.
            if score.is_nan() || score < threshold {
                continue;
            }
            let (aw, ah) = ANCHOR_SIZES[a];
            let cx = (col + sigmoid(v[0])) * CELL;
            let cy = (row + sigmoid(v[1])) * CELL;
            let bw = v[2].exp() * aw * CELL;
            let bh = v[3].exp() * ah * CELL;
            if !(bw.is_finite() && bh.is_finite()) {
                continue;
            }
            faces.push(Face {
                x: cx - bw / 2.0,
                y: cy - bh / 2.0,
                width: bw,
                height: bh,
                score,
            });
        }
    }
    faces
}

/// Turns a raw 416x416 head (`HEAD_LEN` values) into faces in pixels of a square of side
/// `side` (the letterbox square: the photo's longer side in the pixels the caller wants),
/// then greedy NMS: face-api's decoding.
pub fn decode_head(head: &[f32], side: f32, cfg: &DetectorConfig) -> Vec<Face> {
    let s = side / INPUT_SIDE as f32;
    let faces = decode_grid(head, (GRID, GRID), cfg.score_threshold)
        .into_iter()
        .map(|f| f.scaled(s))
        .collect();
    nms(faces, cfg.nms_iou)
}

/// The faces of one pass's raw head, mapped through the pass's geometry `g` (the input
/// pipeline planned on the image) into the image's pixels, before NMS. Boxes centred in
/// the padding outside the image are dropped.
pub fn pass_faces(head: &[f32], g: &Geometry, cfg: &DetectorConfig) -> Vec<Face> {
    let grid = (
        g.out.0 as usize / CELL as usize,
        g.out.1 as usize / CELL as usize,
    );
    let [bx, by, bw, bh] = g.bx;
    let sx = (bw / g.resized.0.max(1) as f64) as f32;
    let sy = (bh / g.resized.1.max(1) as f64) as f32;
    let (ox, oy) = (g.offset.0 as f32, g.offset.1 as f32);
    let (rw, rh) = (g.resized.0 as f32, g.resized.1 as f32);
    decode_grid(head, grid, cfg.score_threshold)
        .into_iter()
        .filter(|f| {
            let (cx, cy) = f.center();
            cx >= ox && cy >= oy && cx <= ox + rw && cy <= oy + rh
        })
        .map(|f| Face {
            x: bx as f32 + (f.x - ox) * sx,
            y: by as f32 + (f.y - oy) * sy,
            width: f.width * sx,
            height: f.height * sy,
            score: f.score,
        })
        .collect()
}

/// Merges the boxes of several passes: greedy NMS at `cfg.nms_iou`, also dropping a box
/// that lies mostly inside a better one (more than `cfg.nms_contained` of its area) and is
/// not much smaller than it (at least `cfg.nms_contained_min_width` of its width).
pub fn merge(mut faces: Vec<Face>, cfg: &DetectorConfig) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::with_capacity(faces.len());
    for f in faces {
        let part_of = |k: &Face| {
            f.inside(k) > cfg.nms_contained && f.width >= cfg.nms_contained_min_width * k.width
        };
        if kept.iter().all(|k| k.iou(&f) <= cfg.nms_iou && !part_of(k)) {
            kept.push(f);
        }
    }
    kept
}

/// Greedy non-maximum suppression: best score first, dropping boxes that overlap a kept one
/// by more than `iou`. Ties keep the earlier box (stable sort), so the result does not
/// depend on the path that produced the scores when they agree.
pub fn nms(mut faces: Vec<Face>, iou: f32) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::with_capacity(faces.len());
    for f in faces {
        if kept.iter().all(|k| k.iou(&f) <= iou) {
            kept.push(f);
        }
    }
    kept
}

/// Activation sizes through the network for an input of `side` (a multiple of 32):
/// `(side, channels)` after conv0+pool and after each block.
pub fn stage_shapes(side: usize) -> Vec<(usize, usize)> {
    let mut s = side / 2;
    let mut out = vec![(s, 16)];
    for (k, &c) in BLOCK_CHANNELS.iter().enumerate() {
        s /= BLOCK_POOL_STRIDE[k];
        out.push((s, 2 * c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, w: f32, s: f32) -> Face {
        Face {
            x,
            y,
            width: w,
            height: w,
            score: s,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = face(0.0, 0.0, 10.0, 1.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&face(20.0, 0.0, 10.0, 1.0)), 0.0);
        // half overlap: inter 50, union 150
        let b = face(5.0, 0.0, 10.0, 1.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let kept = nms(
            vec![
                face(0.0, 0.0, 10.0, 0.6),
                face(1.0, 0.0, 10.0, 0.9),
                face(50.0, 50.0, 10.0, 0.7),
            ],
            0.4,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.7);
    }

    #[test]
    fn head_decoding_places_a_box_in_its_cell() {
        let mut head = vec![-20.0f32; HEAD_LEN];
        // row 6, col 6, anchor 1: centred in the cell, anchor-sized, score logit 3
        let base = ((6 * GRID + 6) * ANCHORS + 1) * BOX_VALUES;
        head[base..base + 5].copy_from_slice(&[0.0, 0.0, 0.0, 0.0, 3.0]);
        let faces = decode_head(&head, 416.0, &DetectorConfig::default());
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        let (cx, cy) = f.center();
        assert!((cx - 6.5 / 13.0 * 416.0).abs() < 1e-3);
        assert!((cy - 6.5 / 13.0 * 416.0).abs() < 1e-3);
        assert!((f.width - ANCHOR_SIZES[1].0 / 13.0 * 416.0).abs() < 1e-3);
        assert!((f.score - sigmoid(3.0)).abs() < 1e-6);
        // NaN logits are dropped, never panic
        head[base + 4] = f32::NAN;
        assert!(decode_head(&head, 416.0, &DetectorConfig::default()).is_empty());
    }

    #[test]
    fn stage_shapes_end_at_the_grid() {
        let s = stage_shapes(416);
        assert_eq!(s[0], (208, 16));
        assert_eq!(*s.last().unwrap(), (13, 512));
    }

    #[test]
    fn wrong_architecture_is_a_model_error_naming_the_tensor() {
        let m = Model {
            name: "x".into(),
            tensors: vec![],
        };
        let e = TinyFaceWeights::from_model(&m).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Model(s) if s.contains("conv1/depthwise_filter")));
    }
}
