//! The pipeline spec: a serializable, validated description of the preprocessing.
//!
//! A [`Pipeline`] says what to do to every image of a batch, in this fixed order:
//!
//! ```text
//! decode (shrink-on-load per `decode.shrink`, default none) -> EXIF orientation -> crop (region of
//! interest) -> resize (stretch | fit | fill | shorter-side, antialiased filter) -> channel
//! order (rgb | bgr | gray) -> scale to [0,1] and normalize (mean/std) -> layout (nchw | nhwc)
//! -> dtype (u8 | f32 | f16)
//! ```
//!
//! Build one in code with the fluent setters or read it from JSON; either way call
//! [`Pipeline::validate`] (the engine does) and key caches with [`Pipeline::stable_hash`].
//!
//! ```
//! use veridoc::{Pipeline, Filter, Layout, DType};
//! let p = Pipeline::new()
//!     .fit(640, 640)
//!     .filter(Filter::Bilinear)
//!     .imagenet()
//!     .layout(Layout::Nchw)
//!     .dtype(DType::F32);
//! p.validate().unwrap();
//! let json = serde_json::to_string(&p).unwrap();
//! let back: Pipeline = serde_json::from_str(&json).unwrap();
//! assert_eq!(p.stable_hash(), back.stable_hash());
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ImageNet channel means in \[0,1\] units (torchvision's constants).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations in \[0,1\] units.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Largest output side accepted by a spec (guards against typos like `640000`).
pub const MAX_OUTPUT_SIDE: u32 = 16384;

/// The whole preprocessing description. Every field has a documented default
/// (`Pipeline::default()` keeps the image as decoded: RGB, u8, NHWC, no resize).
///
/// # Examples
///
/// ```
/// use veridoc::{DType, ErrorKind, Layout, Pipeline};
///
/// let p = Pipeline::new()
///     .fill(224, 224) // cover 224x224, cropping the overflow
///     .imagenet() // scale to [0, 1], then ImageNet mean and std
///     .layout(Layout::Nchw)
///     .dtype(DType::F16);
/// p.validate()?;
/// // The spec is data (serde), and its hash keys cached results.
/// assert_eq!(p.clone().stable_hash(), p.stable_hash());
/// assert_ne!(p.clone().dtype(DType::F32).stable_hash(), p.stable_hash());
/// // An invalid setting names its field.
/// let e = Pipeline::new().crop(0, 0, 0, 10).validate().unwrap_err();
/// assert!(matches!(e.kind(), ErrorKind::InvalidSpec { field, .. } if field == "crop.width"));
/// # Ok::<(), veridoc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Decode options. Default: full-resolution decode ([`Shrink::Exact`]), white background
    /// for alpha.
    pub decode: DecodeOptions,
    /// Region of interest, in pixels of the EXIF-oriented image, cut before resizing.
    /// Default: none (the whole image).
    pub crop: Option<Crop>,
    /// Resize step. Default: none (keep the cropped size).
    pub resize: Option<Resize>,
    /// Filter for the resize step. Default: [`Filter::Bilinear`].
    pub filter: Filter,
    /// Output channels. Default: [`ChannelOrder::Rgb`].
    pub channels: ChannelOrder,
    /// Divide by 255 so values lie in \[0,1\] (float dtypes only). Default: false; implied by
    /// `normalize`.
    pub scale: bool,
    /// Per-channel `(x - mean) / std` on \[0,1\] values (float dtypes only). Default: none.
    pub normalize: Option<Normalize>,
    /// Memory layout of each image. Default: [`Layout::Nhwc`].
    pub layout: Layout,
    /// Element type of the output. Default: [`DType::U8`].
    pub dtype: DType,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            decode: DecodeOptions::default(),
            crop: None,
            resize: None,
            filter: Filter::Bilinear,
            channels: ChannelOrder::Rgb,
            scale: false,
            normalize: None,
            layout: Layout::Nhwc,
            dtype: DType::U8,
        }
    }
}

/// How inputs are decoded.
///
/// In JSON, `shrink` is a name (`"exact"`, `"balanced"`, `"fast"`). Specs written before
/// [`Shrink`] existed still read: `"exact": true` means [`Shrink::Exact`] and `"exact": false`
/// means [`Shrink::Fast`] (the default of those versions); giving both `exact` and a
/// contradicting `shrink` is an error. A spec is always written back with `shrink`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DecodeOptionsRepr")]
pub struct DecodeOptions {
    /// Shrink-on-load mode for JPEGs. Default: [`Shrink::Exact`] (full-resolution decode).
    pub shrink: Shrink,
    /// Overrides the reducing gap of [`Shrink::Balanced`] (2) or [`Shrink::Fast`] (1): the
    /// DCT-scaled decode keeps at least `reducing_gap` times the resize target on each axis
    /// (Pillow's `reducing_gap`), in \[1, 64\]. Ignored by [`Shrink::Exact`]. Default: none
    /// (the mode's own gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reducing_gap: Option<f32>,
    /// Background that transparent pixels are flattened onto, RGB. Default: white.
    pub background: [u8; 3],
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            shrink: Shrink::Exact,
            reducing_gap: None,
            background: [255, 255, 255],
        }
    }
}

impl DecodeOptions {
    /// The reducing gap a JPEG decode plans with, or `None` when it must decode at full
    /// resolution ([`Shrink::Exact`]).
    pub fn effective_gap(&self) -> Option<f32> {
        self.shrink
            .reducing_gap()
            .map(|g| self.reducing_gap.unwrap_or(g))
    }
}

/// The serialized form of [`DecodeOptions`], which also accepts the pre-`shrink` field
/// `exact`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DecodeOptionsRepr {
    shrink: Option<Shrink>,
    exact: Option<bool>,
    reducing_gap: Option<f32>,
    background: [u8; 3],
}

impl Default for DecodeOptionsRepr {
    fn default() -> Self {
        let d = DecodeOptions::default();
        DecodeOptionsRepr {
            shrink: None,
            exact: None,
            reducing_gap: d.reducing_gap,
            background: d.background,
        }
    }
}

impl TryFrom<DecodeOptionsRepr> for DecodeOptions {
    type Error = String;
    fn try_from(r: DecodeOptionsRepr) -> std::result::Result<Self, String> {
        let legacy = r
            .exact
            .map(|e| if e { Shrink::Exact } else { Shrink::Fast });
        let shrink = match (r.shrink, legacy) {
            (Some(s), Some(l)) if s != l => {
                return Err(format!(
                    "decode.exact ({}) contradicts decode.shrink ({}); give shrink alone",
                    r.exact.unwrap_or_default(),
                    s.name()
                ))
            }
            (Some(s), _) | (None, Some(s)) => s,
            (None, None) => Shrink::default(),
        };
        Ok(DecodeOptions {
            shrink,
            reducing_gap: r.reducing_gap,
            background: r.background,
        })
    }
}

/// Shrink-on-load: how far a JPEG may be reduced in the DCT domain (libjpeg-turbo's scaled
/// IDCT, 1/2, 1/4 or 1/8) before the antialiased resize filter runs. Other formats always
/// decode at full resolution.
///
/// The distances below are 8-bit levels from an independent reference: an f64 antialiased
/// triangle filter (Pillow's `BILINEAR` with its support scaled by the reduction) applied to
/// the full-resolution decode and rounded, over the content area of a letterbox. "W1" is the
/// benchmark set (24 x 4032x3024 q90 to 640x640; `cargo test --release --test shrink_quality
/// -- --ignored`), "photos" are sharp camera JPEGs of 1-2.5 MP to 224 and 640
/// (`tests/shrink_quality.rs`, asserted); docs/benchmarks.md has the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Shrink {
    /// Decode at full resolution, then filter: within 1 level of the reference (W1: mean
    /// 0.075, max 1; photos: mean 0.07-0.08, max 1), i.e. of Pillow's `resize(BILINEAR)`.
    /// The slowest: a 12 MP JPEG's full decode costs about 1.9x the 1/4-scale one.
    #[default]
    Exact,
    /// Decode at the smallest DCT scale that keeps at least twice the target on each axis
    /// (reducing gap 2, as Pillow's `thumbnail`), then filter. W1 (DCT 1/2): mean 0.19
    /// (0.17-0.22 per file), max 2-5 per file; photos: mean 0.26-0.36, max 7-27 (Pillow's
    /// `thumbnail` is as far: the scaled IDCT keeps block-sized errors at sharp edges).
    Balanced,
    /// Decode at the smallest DCT scale that still covers the target (reducing gap 1: Pillow's
    /// `draft`, libvips' `thumbnail`), then filter: the fastest, the least faithful. W1 (DCT
    /// 1/4): mean 0.42 (0.36-0.59 per file), max 6-16 per file; photos: mean 0.30-1.05,
    /// max 24-57.
    Fast,
}

impl Shrink {
    /// Every mode, for tests and sweeps.
    pub const ALL: [Shrink; 3] = [Shrink::Exact, Shrink::Balanced, Shrink::Fast];

    /// Name as used in specs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shrink::Exact => "exact",
            Shrink::Balanced => "balanced",
            Shrink::Fast => "fast",
        }
    }

    /// The mode's reducing gap: the decoded image stays at least this many times the resize
    /// target on each axis. `None` for [`Shrink::Exact`] (never shrinks). Balanced's 2 is
    /// Pillow's `thumbnail` default (`reducing_gap=2.0`); fast's 1 is Pillow's `draft`.
    pub fn reducing_gap(self) -> Option<f32> {
        match self {
            Shrink::Exact => None,
            Shrink::Balanced => Some(2.0),
            Shrink::Fast => Some(1.0),
        }
    }
}

impl std::fmt::Display for Shrink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Shrink {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Shrink::ALL
            .into_iter()
            .find(|m| m.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::spec(
                    "decode.shrink",
                    format!("unknown shrink mode {s:?} (exact, balanced, fast)"),
                )
            })
    }
}

/// A rectangle in pixels of the EXIF-oriented image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (> 0).
    pub width: u32,
    /// Height (> 0).
    pub height: u32,
}

/// The resize step: target size and how the image maps onto it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Resize {
    /// Scale each axis independently to exactly `width` x `height` (aspect not kept).
    Stretch {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
    /// Letterbox: scale to fit inside `width` x `height` keeping the aspect ratio, then pad
    /// with `pad` (an RGB pixel value, normalized like image pixels).
    Fit {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// Where the image sits in the box. Default: centred.
        #[serde(default)]
        anchor: Anchor,
        /// Pad colour, RGB. Default: black.
        #[serde(default)]
        pad: [u8; 3],
    },
    /// Scale by `scale` keeping the aspect ratio (sides rounded) and place the result in a
    /// `width` x `height` canvas at `anchor`, padding with `pad`; an image that would not
    /// fit is scaled down to fit, as [`Resize::Fit`] does. The face detector's extra passes
    /// use it: a portrait zoomed out inside its 416x416 input, or a photo at a fixed scale.
    Place {
        /// Canvas width.
        width: u32,
        /// Canvas height.
        height: u32,
        /// Output pixels per source pixel (> 0).
        scale: f64,
        /// Where the image sits in the canvas. Default: centred.
        #[serde(default)]
        anchor: Anchor,
        /// Pad colour, RGB. Default: black.
        #[serde(default)]
        pad: [u8; 3],
    },
    /// Scale to cover `width` x `height` keeping the aspect ratio, then centre-crop.
    Fill {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
    /// Scale so the shorter side is `size` (aspect kept); the longer side is capped at
    /// `max_size` when given. Output shape varies with the input's aspect ratio.
    ShorterSide {
        /// Length of the shorter side.
        size: u32,
        /// Optional cap on the longer side.
        #[serde(default)]
        max_size: Option<u32>,
    },
}

/// Where a letterboxed image sits in its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// Centred (padding split evenly, the odd pixel right/bottom).
    #[default]
    Center,
    /// Top-left corner (padding right and bottom), as face-api's detectors expect.
    TopLeft,
}

/// Resampling filter. All but [`Filter::Nearest`] are antialiased on downscale: the filter's
/// support is scaled by the reduction factor, as Pillow and torchvision `antialias=True` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Filter {
    /// Point sampling (the source pixel whose centre is nearest). Never antialiased: use
    /// [`Filter::Box`] for an area average.
    Nearest,
    /// Box (area average on downscale, nearest on upscale).
    Box,
    /// Triangle filter (bilinear), support 1.
    Bilinear,
    /// Catmull-Rom cubic (a = -0.5, Pillow's `BICUBIC`), support 2.
    Bicubic,
    /// Lanczos windowed sinc, support 3.
    Lanczos3,
}

impl Filter {
    /// Every filter, for tests and sweeps.
    pub const ALL: [Filter; 5] = [
        Filter::Nearest,
        Filter::Box,
        Filter::Bilinear,
        Filter::Bicubic,
        Filter::Lanczos3,
    ];

    /// Name as used in specs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "nearest",
            Filter::Box => "box",
            Filter::Bilinear => "bilinear",
            Filter::Bicubic => "bicubic",
            Filter::Lanczos3 => "lanczos3",
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Filter::ALL
            .into_iter()
            .find(|f| f.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::spec(
                    "filter",
                    format!("unknown filter {s:?} (nearest, box, bilinear, bicubic, lanczos3)"),
                )
            })
    }
}

/// Output channel order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV-trained models).
    Bgr,
    /// One channel of ITU-R 601 luma, `(19595 R + 38470 G + 7471 B + 32768) >> 16` (Pillow's
    /// `L`), computed on the resized 8-bit pixels.
    Gray,
}

impl ChannelOrder {
    /// Number of output channels.
    pub fn channels(self) -> usize {
        match self {
            ChannelOrder::Gray => 1,
            _ => 3,
        }
    }
}

/// Mean and standard deviation per channel, in \[0,1\] units. For gray output the first
/// element of each is used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// Subtracted from each channel (after scaling to \[0,1\]).
    pub mean: [f32; 3],
    /// Divides each channel (non-zero, finite).
    pub std: [f32; 3],
}

impl Normalize {
    /// torchvision's ImageNet statistics.
    pub const IMAGENET: Normalize = Normalize {
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
}

/// Memory layout of one image (a batch adds a leading N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Layout {
    /// Channel planes: C x H x W.
    Nchw,
    /// Interleaved: H x W x C.
    Nhwc,
}

/// Output element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DType {
    /// 8-bit unsigned pixel values (no scaling or normalization).
    U8,
    /// 32-bit float.
    F32,
    /// IEEE half float (round to nearest even).
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::F16 => 2,
            DType::F32 => 4,
        }
    }

    /// Name as used in specs, `.npy` headers aside.
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::F16 => "f16",
            DType::F32 => "f32",
        }
    }
}

impl Pipeline {
    /// The default pipeline (see [`Pipeline`]'s field docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Letterbox into `width` x `height`, centred, black padding.
    #[must_use]
    pub fn fit(mut self, width: u32, height: u32) -> Self {
        self.resize = Some(Resize::Fit {
            width,
            height,
            anchor: Anchor::Center,
            pad: [0, 0, 0],
        });
        self
    }

    /// Scale to cover `width` x `height`, then centre-crop.
    #[must_use]
    pub fn fill(mut self, width: u32, height: u32) -> Self {
        self.resize = Some(Resize::Fill { width, height });
        self
    }

    /// Stretch to exactly `width` x `height`.
    #[must_use]
    pub fn stretch(mut self, width: u32, height: u32) -> Self {
        self.resize = Some(Resize::Stretch { width, height });
        self
    }

    /// Sets the resize step.
    #[must_use]
    pub fn resize(mut self, resize: Resize) -> Self {
        self.resize = Some(resize);
        self
    }

    /// Sets the region of interest.
    #[must_use]
    pub fn crop(mut self, x: u32, y: u32, width: u32, height: u32) -> Self {
        self.crop = Some(Crop {
            x,
            y,
            width,
            height,
        });
        self
    }

    /// Sets the resampling filter.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets the channel order.
    #[must_use]
    pub fn channels(mut self, channels: ChannelOrder) -> Self {
        self.channels = channels;
        self
    }

    /// Scale to \[0,1\] (float output) without mean/std.
    #[must_use]
    pub fn scaled(mut self) -> Self {
        self.scale = true;
        if self.dtype == DType::U8 {
            self.dtype = DType::F32;
        }
        self
    }

    /// Normalize with `mean`/`std` (in \[0,1\] units); switches a u8 dtype to f32.
    #[must_use]
    pub fn normalize(mut self, mean: [f32; 3], std: [f32; 3]) -> Self {
        self.normalize = Some(Normalize { mean, std });
        self.scale = true;
        if self.dtype == DType::U8 {
            self.dtype = DType::F32;
        }
        self
    }

    /// ImageNet normalization (torchvision constants), f32 unless already f16.
    #[must_use]
    pub fn imagenet(self) -> Self {
        self.normalize(IMAGENET_MEAN, IMAGENET_STD)
    }

    /// Sets the layout.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets the output dtype.
    #[must_use]
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets the shrink-on-load mode (default [`Shrink::Exact`]).
    #[must_use]
    pub fn shrink(mut self, shrink: Shrink) -> Self {
        self.decode.shrink = shrink;
        self
    }

    /// `true`: [`Shrink::Exact`]; `false`: [`Shrink::Fast`] (the default before the default
    /// became exact).
    #[deprecated(note = "use `shrink(Shrink::Exact)` or another `Shrink` mode")]
    #[must_use]
    pub fn exact(self, exact: bool) -> Self {
        self.shrink(if exact { Shrink::Exact } else { Shrink::Fast })
    }

    /// Checks every field; the error names the first offending one.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSpec`](crate::ErrorKind::InvalidSpec) with the field's dotted path.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = self.decode.reducing_gap {
            if !(g.is_finite() && (1.0..=64.0).contains(&g)) {
                return Err(Error::spec(
                    "decode.reducing_gap",
                    format!("must be in [1, 64], got {g}"),
                ));
            }
        }
        if let Some(c) = self.crop {
            if c.width == 0 {
                return Err(Error::spec("crop.width", "must be > 0"));
            }
            if c.height == 0 {
                return Err(Error::spec("crop.height", "must be > 0"));
            }
            if c.x.checked_add(c.width).is_none() || c.y.checked_add(c.height).is_none() {
                return Err(Error::spec("crop", "rectangle overflows"));
            }
        }
        if let Some(r) = self.resize {
            let side = |field: &str, v: u32| -> Result<()> {
                if v == 0 {
                    Err(Error::spec(format!("resize.{field}"), "must be > 0"))
                } else if v > MAX_OUTPUT_SIDE {
                    Err(Error::spec(
                        format!("resize.{field}"),
                        format!("{v} is over the maximum of {MAX_OUTPUT_SIDE}"),
                    ))
                } else {
                    Ok(())
                }
            };
            match r {
                Resize::Stretch { width, height }
                | Resize::Fit { width, height, .. }
                | Resize::Fill { width, height } => {
                    side("width", width)?;
                    side("height", height)?;
                }
                Resize::Place {
                    width,
                    height,
                    scale,
                    ..
                } => {
                    side("width", width)?;
                    side("height", height)?;
                    if !(scale.is_finite() && scale > 0.0) {
                        return Err(Error::spec(
                            "resize.scale",
                            format!("{scale} is not a positive number"),
                        ));
                    }
                }
                Resize::ShorterSide { size, max_size } => {
                    side("size", size)?;
                    if let Some(m) = max_size {
                        side("max_size", m)?;
                        if m < size {
                            return Err(Error::spec(
                                "resize.max_size",
                                format!("{m} is smaller than size {size}"),
                            ));
                        }
                    }
                }
            }
        }
        if self.dtype == DType::U8 {
            if self.normalize.is_some() {
                return Err(Error::spec(
                    "normalize",
                    "u8 output cannot be normalized; use dtype f32 or f16",
                ));
            }
            if self.scale {
                return Err(Error::spec(
                    "scale",
                    "u8 output cannot be scaled to [0,1]; use dtype f32 or f16",
                ));
            }
        }
        if let Some(n) = self.normalize {
            for i in 0..3 {
                if !n.mean[i].is_finite() {
                    return Err(Error::spec(
                        format!("normalize.mean[{i}]"),
                        format!("must be finite, got {}", n.mean[i]),
                    ));
                }
                let s = n.std[i];
                if !s.is_finite() || s == 0.0 {
                    return Err(Error::spec(
                        format!("normalize.std[{i}]"),
                        format!("must be finite and non-zero, got {s}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A hash of everything that changes the output, stable across runs, platforms and engine
    /// builds (it keys persistent caches). Two pipelines with equal fields hash equal.
    pub fn stable_hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.pipeline.v1\0");
        // serde_json writes fields in declaration order and floats with shortest round-trip
        // formatting, so this encoding is canonical for a given spec version.
        match serde_json::to_vec(self) {
            Ok(bytes) => {
                h.update(&bytes);
            }
            // Serializing plain data cannot fail; hash the Debug form rather than panic.
            Err(_) => {
                h.update(format!("{self:?}").as_bytes());
            }
        }
        *h.finalize().as_bytes()
    }

    /// `stable_hash` as lowercase hex.
    pub fn stable_hash_hex(&self) -> String {
        hex(&self.stable_hash())
    }

    /// Number of output channels.
    pub fn out_channels(&self) -> usize {
        self.channels.channels()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn field_of(e: Error) -> String {
        match e.into_kind() {
            ErrorKind::InvalidSpec { field, .. } => field,
            k => panic!("expected InvalidSpec, got {k:?}"),
        }
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let e = Pipeline::new().fit(0, 10).validate().unwrap_err();
        assert_eq!(field_of(e), "resize.width");
        let e = Pipeline::new()
            .fit(10, 10)
            .normalize([0.5; 3], [1.0, 0.0, 1.0])
            .validate()
            .unwrap_err();
        assert_eq!(field_of(e), "normalize.std[1]");
        let e = Pipeline::new()
            .normalize([f32::NAN, 0.0, 0.0], [1.0; 3])
            .validate()
            .unwrap_err();
        assert_eq!(field_of(e), "normalize.mean[0]");
        let mut p = Pipeline::new().imagenet();
        p.dtype = DType::U8;
        assert_eq!(field_of(p.validate().unwrap_err()), "normalize");
        let e = Pipeline::new().crop(0, 0, 0, 5).validate().unwrap_err();
        assert_eq!(field_of(e), "crop.width");
        let e = Pipeline::new()
            .crop(u32::MAX, 0, 2, 5)
            .validate()
            .unwrap_err();
        assert_eq!(field_of(e), "crop");
        let e = Pipeline::new()
            .resize(Resize::ShorterSide {
                size: 300,
                max_size: Some(200),
            })
            .validate()
            .unwrap_err();
        assert_eq!(field_of(e), "resize.max_size");
        let e = Pipeline::new().stretch(5, 100_000).validate().unwrap_err();
        assert_eq!(field_of(e), "resize.height");
    }

    #[test]
    fn json_round_trip_and_unknown_fields() {
        let p = Pipeline::new()
            .fit(640, 480)
            .crop(1, 2, 3, 4)
            .filter(Filter::Lanczos3)
            .imagenet()
            .layout(Layout::Nchw)
            .dtype(DType::F16);
        let s = serde_json::to_string(&p).unwrap();
        let q: Pipeline = serde_json::from_str(&s).unwrap();
        assert_eq!(p, q);
        assert_eq!(p.stable_hash(), q.stable_hash());
        let err = serde_json::from_str::<Pipeline>(r#"{"resise": null}"#).unwrap_err();
        assert!(err.to_string().contains("resise"), "{err}");
        let r: Pipeline =
            serde_json::from_str(r#"{"resize": {"mode": "fill", "width": 3, "height": 4}}"#)
                .unwrap();
        assert_eq!(
            r.resize,
            Some(Resize::Fill {
                width: 3,
                height: 4
            })
        );
    }

    #[test]
    fn hash_changes_with_every_field() {
        let base = Pipeline::new().fit(640, 640).imagenet();
        let variants = [
            base.clone().filter(Filter::Bicubic),
            base.clone().layout(Layout::Nchw),
            base.clone().dtype(DType::F16),
            base.clone().shrink(Shrink::Fast),
            base.clone().shrink(Shrink::Balanced),
            base.clone().channels(ChannelOrder::Bgr),
            base.clone().crop(0, 0, 10, 10),
            base.clone().fill(640, 640),
            base.clone().normalize([0.5; 3], [0.5; 3]),
        ];
        for v in &variants {
            assert_ne!(v.stable_hash(), base.stable_hash(), "{v:?}");
        }
        // Pinned value: a change here breaks every persistent cache key, so it must be
        // deliberate (bump the version prefix).
        assert_eq!(Pipeline::new().stable_hash_hex().len(), 64);
        assert_eq!(
            Pipeline::new().stable_hash_hex(),
            Pipeline::default().stable_hash_hex()
        );
    }

    #[test]
    fn shrink_modes_and_the_legacy_exact_field() {
        let d = |json: &str| serde_json::from_str::<DecodeOptions>(json);
        assert_eq!(DecodeOptions::default().shrink, Shrink::Exact);
        assert_eq!(d("{}").unwrap(), DecodeOptions::default());
        for m in Shrink::ALL {
            let o = d(&format!(r#"{{"shrink": "{m}"}}"#)).unwrap();
            assert_eq!(o.shrink, m);
            assert_eq!(m.name().parse::<Shrink>().unwrap(), m);
            // written back with `shrink`, never `exact`
            let text = serde_json::to_string(&o).unwrap();
            assert!(!text.contains("exact\":"), "{text}");
            assert_eq!(d(&text).unwrap(), o);
        }
        // specs written before `shrink`: exact true/false keep their meaning
        assert_eq!(d(r#"{"exact": true}"#).unwrap().shrink, Shrink::Exact);
        assert_eq!(d(r#"{"exact": false}"#).unwrap().shrink, Shrink::Fast);
        assert_eq!(
            d(r#"{"exact": false, "reducing_gap": 2.0}"#)
                .unwrap()
                .effective_gap(),
            Some(2.0)
        );
        assert_eq!(
            d(r#"{"exact": true, "shrink": "exact"}"#).unwrap().shrink,
            Shrink::Exact
        );
        let e = d(r#"{"exact": true, "shrink": "fast"}"#).unwrap_err();
        assert!(e.to_string().contains("contradicts"), "{e}");
        assert!(d(r#"{"shrink": "draft"}"#).is_err());
        assert!(
            d(r#"{"shrnk": "fast"}"#).is_err(),
            "unknown fields are refused"
        );
        // the effective gap per mode, and the override
        assert_eq!(DecodeOptions::default().effective_gap(), None);
        let p = Pipeline::new().shrink(Shrink::Balanced);
        assert_eq!(p.decode.effective_gap(), Some(2.0));
        assert_eq!(
            Pipeline::new().shrink(Shrink::Fast).decode.effective_gap(),
            Some(1.0)
        );
        let mut q = p.clone();
        q.decode.reducing_gap = Some(0.5);
        assert_eq!(field_of(q.validate().unwrap_err()), "decode.reducing_gap");
        #[allow(deprecated, reason = "the alias is what is tested")]
        {
            assert_eq!(Pipeline::new().exact(true).decode.shrink, Shrink::Exact);
            assert_eq!(Pipeline::new().exact(false).decode.shrink, Shrink::Fast);
        }
        let e = "draft".parse::<Shrink>().unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidSpec { field, .. } if field == "decode.shrink")
        );
        // a whole pipeline from a legacy spec file
        let p: Pipeline = serde_json::from_str(
            r#"{"decode": {"exact": true}, "resize": {"mode": "fit", "width": 8, "height": 8}}"#,
        )
        .unwrap();
        assert_eq!(p.decode.shrink, Shrink::Exact);
    }

    #[test]
    fn filter_from_str() {
        assert_eq!("Lanczos3".parse::<Filter>().unwrap(), Filter::Lanczos3);
        assert!("cubic".parse::<Filter>().is_err());
    }
}
