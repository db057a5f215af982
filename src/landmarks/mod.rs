//! 68 facial landmarks and facial expression: face-api's two face-crop networks (MIT).
//!
//! Both networks share one architecture, face-api's `FaceFeatureExtractor`, and differ in
//! their weights and the size of the last layer:
//!
//! ```text
//! 112x112x3 crop, (x - MEAN_RGB) / 255
//! dense0: conv0 = 3x3 conv 3 -> 32, stride 2, + bias, ReLU            -> out1 (56x56)
//!         conv1..3 = separable convs 32 -> 32 (3x3 depthwise, 1x1 pointwise + bias)
//!         out2 = conv1(out1); out3 = conv2(relu(out1 + out2));
//!         out4 = conv3(relu(out1 + out2 + out3)); block = relu(out1 + ... + out4)
//! dense1..3: the same with a separable stride-2 conv0, 32 -> 64 -> 128 -> 256 channels
//! average pool 7x7 -> 256 values -> fully connected 256 -> 136 (68 x, y) or 7 (expressions)
//! ```
//!
//! Convolutions are TF `SAME`: a stride-1 3x3 window pads one pixel on every side; a
//! stride-2 window over an even side pads only the bottom/right one (TF puts the odd
//! padding pixel after), so output `o` reads input rows and columns `2o .. 2o + 2`.
//! The tiny landmark model (`face_landmark_68_tiny_model`: three blocks of three
//! convolutions, 128 channels) has the same shape and is read by the same code.
//!
//! What both paths share lives here: the weights checked against the architecture
//! ([`FaceNetWeights`]), the crop pipeline ([`crop_pipeline`]) and the decoding of the
//! outputs ([`Landmarks`], [`Expression`]). The networks run on the CPU
//! (`src/cpu/landmarks.rs`) or on the GPU (`src/gpu/landmarks.rs` with
//! `shaders/landmarks.wgsl`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::geometry::Geometry;
use crate::model::Model;
use crate::spec::{Anchor, DType, Filter, Layout, Pipeline, Resize};

/// The name the engine's model cache knows the landmark network by.
pub const LANDMARK_MODEL: &str = "face_landmark_68";

/// The name the engine's model cache knows the expression network by.
pub const EXPRESSION_MODEL: &str = "face_expression";

/// Side of the square face crop both networks read.
pub const CROP_SIDE: u32 = 112;

/// face-api's `FaceFeatureExtractor` mean (RGB, 0..255); the input is `(x - mean) / 255`.
pub const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// Landmark points (iBUG 68: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
pub const POINTS: usize = 68;

/// Expression classes, in the network's output order.
pub const EXPRESSIONS: [&str; 7] = [
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
];

/// A 3x3 depthwise convolution followed by a 1x1 pointwise convolution and a bias (TF's
/// `separableConv2d` + bias), stride 1 or 2, `SAME` padding.
#[derive(Debug, Clone)]
pub struct SeparableConv {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// 1 or 2.
    pub stride: usize,
    /// `[ky][kx][c]`.
    pub depthwise: Vec<f32>,
    /// `[ci][co]`.
    pub pointwise: Vec<f32>,
    /// `[co]`.
    pub bias: Vec<f32>,
}

/// A dense block's first (stride-2) convolution.
#[derive(Debug, Clone)]
pub enum FirstConv {
    /// A full 3x3 convolution (the network's first layer): filters `[ky][kx][ci][co]`.
    Full {
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// `[ky][kx][ci][co]`.
        filters: Vec<f32>,
        /// `[co]`.
        bias: Vec<f32>,
    },
    /// A separable convolution.
    Separable(SeparableConv),
}

impl FirstConv {
    /// Output channels.
    pub fn cout(&self) -> usize {
        match self {
            FirstConv::Full { cout, .. } => *cout,
            FirstConv::Separable(s) => s.cout,
        }
    }

    /// Input channels.
    pub fn cin(&self) -> usize {
        match self {
            FirstConv::Full { cin, .. } => *cin,
            FirstConv::Separable(s) => s.cin,
        }
    }
}

/// One dense block: `first` (stride 2, ReLU), then `rest` (stride 1), each reading the
/// ReLU of the sum of every output before it in the block; the block returns the ReLU of
/// the sum of all of them.
#[derive(Debug, Clone)]
pub struct DenseBlock {
    /// The stride-2 convolution.
    pub first: FirstConv,
    /// The densely connected stride-1 separable convolutions.
    pub rest: Vec<SeparableConv>,
}

/// A face-crop network's weights, checked against the architecture.
#[derive(Debug, Clone)]
pub struct FaceNetWeights {
    /// Model name (errors name it).
    pub name: String,
    /// The dense blocks, in order.
    pub blocks: Vec<DenseBlock>,
    /// Fully connected layer `[ci][co]`.
    pub fc: Vec<f32>,
    /// `[co]`.
    pub fc_bias: Vec<f32>,
}

impl FaceNetWeights {
    /// Reads `dense{k}/conv{j}` blocks and `fc` from `model`, checking every shape; the
    /// last layer must have `outputs` values (136 for landmarks, 7 for expressions).
    ///
    /// # Errors
    /// `Model` naming the tensor that is missing or has the wrong shape.
    pub fn from_model(model: &Model, outputs: usize) -> Result<FaceNetWeights> {
        let err = |m: String| Error::new(ErrorKind::Model(format!("{}: {m}", model.name)));
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = model
                .tensor(name)
                .ok_or_else(|| err(format!("tensor {name} is missing")))?;
            if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                return Err(err(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.shape
                )));
            }
            Ok(t.data.to_vec())
        };
        let shape_of = |name: &str| model.tensor(name).map(|t| t.shape.clone());
        let separable = |p: &str, cin: usize, stride: usize| -> Result<SeparableConv> {
            let pw = shape_of(&format!("{p}/pointwise_filter"))
                .ok_or_else(|| err(format!("tensor {p}/pointwise_filter is missing")))?;
            let cout = pw.last().copied().unwrap_or(0);
            Ok(SeparableConv {
                cin,
                cout,
                stride,
                depthwise: get(&format!("{p}/depthwise_filter"), &[3, 3, cin, 1])?,
                pointwise: get(&format!("{p}/pointwise_filter"), &[1, 1, cin, cout])?,
                bias: get(&format!("{p}/bias"), &[cout])?,
            })
        };
        let mut blocks = Vec::new();
        let mut c = 3usize;
        for k in 0.. {
            let p = format!("dense{k}/conv0");
            let first = if let Some(s) = shape_of(&format!("{p}/filters")) {
                let cout = s.last().copied().unwrap_or(0);
                FirstConv::Full {
                    cin: c,
                    cout,
                    filters: get(&format!("{p}/filters"), &[3, 3, c, cout])?,
                    bias: get(&format!("{p}/bias"), &[cout])?,
                }
            } else if shape_of(&format!("{p}/depthwise_filter")).is_some() {
                FirstConv::Separable(separable(&p, c, 2)?)
            } else {
                break;
            };
            c = first.cout();
            if c == 0 {
                return Err(err(format!("{p} has no output channels")));
            }
            let mut rest = Vec::new();
            for j in 1.. {
                let p = format!("dense{k}/conv{j}");
                if shape_of(&format!("{p}/depthwise_filter")).is_none() {
                    break;
                }
                let s = separable(&p, c, 1)?;
                if s.cout != c {
                    return Err(err(format!(
                        "{p} has {} outputs, the block has {c} channels",
                        s.cout
                    )));
                }
                rest.push(s);
            }
            blocks.push(DenseBlock { first, rest });
        }
        if blocks.is_empty() {
            return Err(err(
                "tensor dense0/conv0/filters is missing (not a face-api face-crop network?)".into(),
            ));
        }
        let side = CROP_SIDE as usize >> blocks.len();
        if side == 0 || (CROP_SIDE as usize) % (1 << blocks.len()) != 0 {
            return Err(err(format!(
                "{} blocks do not fit a 112 crop",
                blocks.len()
            )));
        }
        Ok(FaceNetWeights {
            name: model.name.clone(),
            fc: get("fc/weights", &[c, outputs])?,
            fc_bias: get("fc/bias", &[outputs])?,
            blocks,
        })
    }

    /// Channels of the last block (the fully connected layer's inputs).
    pub fn features(&self) -> usize {
        self.fc.len() / self.fc_bias.len().max(1)
    }

    /// Outputs of the fully connected layer.
    pub fn outputs(&self) -> usize {
        self.fc_bias.len()
    }

    /// Side of the last block's output (the average pool's window): 112 / 2^blocks.
    pub fn final_side(&self) -> usize {
        CROP_SIDE as usize >> self.blocks.len()
    }

    /// Runs the network on the CPU on one crop (112 x 112 x 3 HWC f32, normalized as
    /// [`crop_pipeline`] does) and returns its raw outputs (136 landmark coordinates in
    /// units of the 112 square, or 7 expression logits).
    ///
    /// # Errors
    /// `InvalidInput` when the input length is not 112 * 112 * 3.
    pub fn forward_cpu(&self, input: &[f32]) -> Result<Vec<f32>> {
        crate::cpu::landmarks::forward(self, input)
    }

    /// Bytes of weights (f32).
    pub fn bytes(&self) -> u64 {
        let sep = |s: &SeparableConv| s.depthwise.len() + s.pointwise.len() + s.bias.len();
        let mut n = self.fc.len() + self.fc_bias.len();
        for b in &self.blocks {
            n += match &b.first {
                FirstConv::Full { filters, bias, .. } => filters.len() + bias.len(),
                FirstConv::Separable(s) => sep(s),
            };
            n += b.rest.iter().map(sep).sum::<usize>();
        }
        4 * n as u64
    }
}

/// The crop both networks read, as an engine pipeline: the face box cut out of the image
/// (`crop`, whole pixels inside the image), padded to a square with black, centred, as
/// face-api's `padToSquare(.., true)` does, resized to 112x112 (antialiased bilinear),
/// `(x - mean) / 255`, NHWC f32.
pub fn crop_pipeline(crop: [u32; 4]) -> Pipeline {
    let mean = MEAN_RGB.map(|m| m / 255.0);
    Pipeline::new()
        .crop(crop[0], crop[1], crop[2], crop[3])
        .resize(Resize::Fit {
            width: CROP_SIDE,
            height: CROP_SIDE,
            anchor: Anchor::Center,
            pad: [0, 0, 0],
        })
        .filter(Filter::Bilinear)
        .normalize(mean, [1.0; 3])
        .layout(Layout::Nhwc)
        .dtype(DType::F32)
}

/// The crop box of a face box in an image of `width` x `height`: face-api's
/// `clipAtImageBorders` (the box cut at the image's edges, then floored to whole pixels).
/// `None` when less than 2x2 pixels remain.
pub fn crop_box(x: f32, y: f32, w: f32, h: f32, width: u32, height: u32) -> Option<[u32; 4]> {
    if !(x.is_finite() && y.is_finite() && w.is_finite() && h.is_finite()) {
        return None;
    }
    let cx = x.max(0.0);
    let cy = y.max(0.0);
    let cw = (x + w - cx).min(width as f32 - cx);
    let ch = (y + h - cy).min(height as f32 - cy);
    let (fx, fy, fw, fh) = (cx.floor(), cy.floor(), cw.floor(), ch.floor());
    if fw < 2.0 || fh < 2.0 || fx >= width as f32 || fy >= height as f32 {
        return None;
    }
    let (fx, fy) = (fx as u32, fy as u32);
    let fw = (fw as u32).min(width - fx);
    let fh = (fh as u32).min(height - fy);
    Some([fx, fy, fw, fh])
}

/// A point in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
}

impl Point {
    /// Mean of `pts`.
    pub fn mean(pts: &[Point]) -> Point {
        let n = pts.len().max(1) as f32;
        Point {
            x: pts.iter().map(|p| p.x).sum::<f32>() / n,
            y: pts.iter().map(|p| p.y).sum::<f32>() / n,
        }
    }

    /// Euclidean distance.
    pub fn dist(&self, o: &Point) -> f32 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }
}

/// 68 landmarks of one face, in pixels of the image they were measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landmarks {
    /// The points in iBUG 68 order.
    pub points: Vec<Point>,
}

impl Landmarks {
    /// Maps the landmark network's 136 outputs (x, y interleaved, in units of the 112
    /// square) back through the crop's geometry `g` into image pixels.
    pub fn from_outputs(out: &[f32], g: &Geometry) -> Landmarks {
        let side = CROP_SIDE as f64;
        let [bx, by, bw, bh] = g.bx;
        let sx = bw / g.resized.0.max(1) as f64;
        let sy = bh / g.resized.1.max(1) as f64;
        let points = out
            .chunks_exact(2)
            .take(POINTS)
            .map(|p| Point {
                x: (bx + (p[0] as f64 * side - g.offset.0 as f64) * sx) as f32,
                y: (by + (p[1] as f64 * side - g.offset.1 as f64) * sy) as f32,
            })
            .collect();
        Landmarks { points }
    }

    /// The points scaled by `s` (from analysis-image to photo pixels).
    pub fn scaled(&self, s: f32) -> Landmarks {
        Landmarks {
            points: self
                .points
                .iter()
                .map(|p| Point {
                    x: p.x * s,
                    y: p.y * s,
                })
                .collect(),
        }
    }

    fn range(&self, r: std::ops::Range<usize>) -> &[Point] {
        self.points.get(r).unwrap_or(&[])
    }

    /// The subject's right eye (points 36-41, on the left of the image).
    pub fn right_eye(&self) -> &[Point] {
        self.range(36..42)
    }

    /// The subject's left eye (points 42-47).
    pub fn left_eye(&self) -> &[Point] {
        self.range(42..48)
    }

    /// Jaw line (0-16).
    pub fn jaw(&self) -> &[Point] {
        self.range(0..17)
    }

    /// Both brows (17-26).
    pub fn brows(&self) -> &[Point] {
        self.range(17..27)
    }

    /// Nose (27-35: bridge 27-30, tip 30, base 31-35).
    pub fn nose(&self) -> &[Point] {
        self.range(27..36)
    }

    /// Outer lip contour (48-59) and inner (60-67).
    pub fn mouth(&self) -> &[Point] {
        self.range(48..68)
    }

    /// Point `i` (the origin when out of range: never panics).
    pub fn at(&self, i: usize) -> Point {
        self.points
            .get(i)
            .copied()
            .unwrap_or(Point { x: 0.0, y: 0.0 })
    }
}

/// The expression network's probabilities (softmax of its 7 outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expression {
    /// Probability per class, in [`EXPRESSIONS`] order.
    pub probabilities: Vec<f32>,
}

impl Expression {
    /// Softmax of the raw outputs.
    pub fn from_logits(logits: &[f32]) -> Expression {
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        Expression {
            probabilities: e
                .iter()
                .map(|v| if s > 0.0 { v / s } else { 0.0 })
                .collect(),
        }
    }

    /// Probability of `name` (0 for an unknown class).
    pub fn probability(&self, name: &str) -> f32 {
        EXPRESSIONS
            .iter()
            .position(|e| *e == name)
            .and_then(|i| self.probabilities.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// The most probable class.
    pub fn dominant(&self) -> &'static str {
        let i = self
            .probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        EXPRESSIONS.get(i).copied().unwrap_or("neutral")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_clips_and_floors_like_face_api() {
        assert_eq!(
            crop_box(10.7, -5.0, 100.2, 50.0, 200, 100),
            Some([10, 0, 100, 45])
        );
        assert_eq!(
            crop_box(150.0, 50.0, 100.0, 100.0, 200, 100),
            Some([150, 50, 50, 50])
        );
        assert_eq!(crop_box(250.0, 0.0, 10.0, 10.0, 200, 100), None);
        assert_eq!(crop_box(f32::NAN, 0.0, 10.0, 10.0, 200, 100), None);
    }

    #[test]
    fn outputs_map_back_through_the_letterbox() {
        // a 200x100 crop at (50, 20) letterboxed into 112: scale 0.56, 56 px tall,
        // offset 28 px from the top
        let g = Geometry::plan(400, 300, &crop_pipeline([50, 20, 200, 100])).unwrap();
        assert_eq!(g.resized, (112, 56));
        assert_eq!(g.offset, (0, 28));
        // the 112-square's centre is the crop's centre; (0, 0.25) its top-left corner
        let lm = Landmarks::from_outputs(&[0.5, 0.5, 0.0, 0.25], &g);
        assert!((lm.points[0].x - 150.0).abs() < 1e-3 && (lm.points[0].y - 70.0).abs() < 1e-3);
        assert!((lm.points[1].x - 50.0).abs() < 1e-3 && (lm.points[1].y - 20.0).abs() < 1e-3);
    }

    #[test]
    fn softmax_sums_to_one_and_names_the_dominant_class() {
        let e = Expression::from_logits(&[0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let s: f32 = e.probabilities.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert_eq!(e.dominant(), "happy");
        assert!(e.probability("happy") > 0.7);
        assert_eq!(e.probability("bored"), 0.0);
    }

    #[test]
    fn a_model_without_dense_blocks_is_an_error_naming_the_tensor() {
        let m = Model {
            name: "x".into(),
            tensors: vec![],
        };
        let e = FaceNetWeights::from_model(&m, 136).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Model(s) if s.contains("dense0/conv0")));
    }
}
