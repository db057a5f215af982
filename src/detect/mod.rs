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

use crate::cache::Model;
use crate::error::{Error, ErrorKind, Result};
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

/// Detection settings. Defaults are face-api's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Keep boxes whose sigmoid score is at least this. Default 0.5 (face-api's default;
    /// with it the asset photos give the counts listed in `shared/ASSETS.md`).
    pub score_threshold: f32,
    /// Greedy NMS: drop a box overlapping a better one by more than this IoU. Default 0.4.
    pub nms_iou: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            score_threshold: 0.5,
            nms_iou: 0.4,
        }
    }
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

/// Turns a raw head (`HEAD_LEN` values, `[row][col][anchor][tx, ty, tw, th, score]`) into
/// faces in pixels of a square of side `side` (the letterbox square: the photo's longer
/// side in the pixels the caller wants), then greedy NMS.
pub fn decode_head(head: &[f32], side: f32, cfg: &DetectorConfig) -> Vec<Face> {
    let mut faces = Vec::new();
    let g = GRID as f32;
    for (cell, values) in head
        .chunks_exact(ANCHORS * BOX_VALUES)
        .take(GRID * GRID)
        .enumerate()
    {
        let (row, col) = ((cell / GRID) as f32, (cell % GRID) as f32);
        for (a, v) in values.chunks_exact(BOX_VALUES).enumerate() {
            let score = sigmoid(v[4]);
            // NaN scores (a broken model) are dropped too.
            if score.is_nan() || score < cfg.score_threshold {
                continue;
            }
            let (aw, ah) = ANCHOR_SIZES[a];
            let cx = (col + sigmoid(v[0])) / g;
            let cy = (row + sigmoid(v[1])) / g;
            let bw = v[2].exp() * aw / g;
            let bh = v[3].exp() * ah / g;
            if !(bw.is_finite() && bh.is_finite()) {
                continue;
            }
            faces.push(Face {
                x: (cx - bw / 2.0) * side,
                y: (cy - bh / 2.0) * side,
                width: bw * side,
                height: bh * side,
                score,
            });
        }
    }
    nms(faces, cfg.nms_iou)
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
