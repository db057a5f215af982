//! Verification profiles: the acceptance ranges, as data (JSON or TOML).
//!
//! Unknown fields are errors that name the field, so a typo in a custom profile never
//! silently falls back to a default. A profile file may start from another profile
//! (`extends = "passport"`, or a path to another profile file) and give only the fields it
//! changes; `"off"` switches a check off. docs/verification.md describes the format.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::DetectorConfig;
use crate::error::{Error, ErrorKind, Result};

/// The value that switches a check off in a profile file (TOML has no `null`; JSON accepts
/// both).
const OFF: &str = "off";

/// How many profile files may extend one another in a chain (a file extending a file ...
/// extending a built-in profile).
const MAX_EXTENDS_DEPTH: usize = 8;

/// The built-in profiles, by name.
const BUILTIN_NAMES: &[&str] = &["passport"];

/// What each range field measures, in the struct's (and the printed file's) order; its unit
/// and clause come from [`super::CHECKS`].
const FIELD_DOCS: &[(&str, &str)] = &[
    (
        "width",
        "Photo width in pixels (after EXIF orientation, full resolution).",
    ),
    ("height", "Photo height in pixels."),
    ("aspect", "Width / height."),
    ("faces", "Number of faces found anywhere in the photo."),
    (
        "inter_eye_distance",
        "Distance between the eye centres, photo pixels.",
    ),
    (
        "eye_line",
        "Height of the eye midpoint above the bottom edge / photo height.",
    ),
    ("eye_center_x", "Eye midpoint x / photo width."),
    ("head_height", "Chin-to-crown head height / photo height."),
    ("head_width", "Head width / photo width."),
    (
        "head_inside",
        "Smallest head-to-edge distance / photo height (negative: cut off).",
    ),
    ("roll", "In-plane rotation of the eye line, degrees."),
    ("yaw", "Left-right head rotation, degrees."),
    ("pitch", "Up-down head rotation estimate, degrees."),
    ("eyes_open", "Eye aspect ratio of the less open eye."),
    ("mouth_closed", "Inner-lip gap / mouth width."),
    (
        "expression_neutral",
        "Probability of a neutral expression (expression model).",
    ),
    (
        "face_sharpness",
        "Variance of the Laplacian of the face at its native scale.",
    ),
    (
        "illumination_balance",
        "Darker face half's mean luma / brighter half's.",
    ),
    ("face_brightness", "Mean luma of the face, 0..1."),
    (
        "face_highlights",
        "Fraction of the face's pixels that are clipped highlights.",
    ),
    (
        "face_shadows",
        "Fraction of the face's pixels that are clipped shadows.",
    ),
    (
        "colourfulness",
        "Colourfulness of the face (a grayscale photo has 0).",
    ),
    (
        "cast",
        "Colour cast of the whole photo (gray-world deviation), 0 neutral.",
    ),
    (
        "background_uniformity",
        "Standard deviation of the background's luma, 0..1.",
    ),
    (
        "background_texture",
        "Mean gradient magnitude of the background, 0..1 per pixel.",
    ),
    ("background_brightness", "Mean background luma, 0..1."),
    (
        "image_sharpness",
        "Whole-image sharpness (variance of the Laplacian, fixed size).",
    ),
    ("highlights", "Whole-image fraction of clipped highlights."),
    ("shadows", "Whole-image fraction of clipped shadows."),
    ("brightness", "Whole-image mean luma, 0..1."),
    ("contrast", "Whole-image RMS contrast, 0..1."),
    ("face_height", "Detector box height / photo height."),
    ("face_center_x", "Detector box centre x / photo width."),
    ("face_center_y", "Detector box centre y / photo height."),
];

/// An inclusive range; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Lower bound (inclusive), if any.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound (inclusive), if any.
    #[serde(default)]
    pub max: Option<f64>,
}

impl Range {
    /// `[min, max]`.
    pub const fn new(min: f64, max: f64) -> Range {
        Range {
            min: Some(min),
            max: Some(max),
        }
    }

    /// `[min, ∞)`.
    pub const fn at_least(min: f64) -> Range {
        Range {
            min: Some(min),
            max: None,
        }
    }

    /// `(-∞, max]`.
    pub const fn at_most(max: f64) -> Range {
        Range {
            min: None,
            max: Some(max),
        }
    }

    /// Whether `v` lies in the range (NaN never does).
    pub fn contains(&self, v: f64) -> bool {
        !v.is_nan() && self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    fn validate(&self, field: &str) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::new(ErrorKind::InvalidSpec {
                field: field.to_string(),
                reason: reason.to_string(),
            }))
        };
        for v in [self.min, self.max].into_iter().flatten() {
            if !v.is_finite() {
                return bad("bounds must be finite");
            }
        }
        if let (Some(a), Some(b)) = (self.min, self.max) {
            if a > b {
                return bad("min is greater than max");
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) => write!(f, "[{a}, {b}]"),
            (Some(a), None) => write!(f, ">= {a}"),
            (None, Some(b)) => write!(f, "<= {b}"),
            (None, None) => write!(f, "any"),
        }
    }
}

/// The acceptance ranges of every check. A check whose range is `None` is not evaluated:
/// in a file, `"off"` (or JSON's `null`) or, in a file without `extends`, a missing field.
/// `width`, `height` and `faces` are always evaluated. Checks marked "(landmarks)" need the
/// 68-point landmark model, `expression_neutral` the expression model.
///
/// A profile file either gives every required field (`name`, `width`, `height`, `faces`;
/// every other check it leaves out is off) or starts from another profile with `extends`
/// (a built-in name such as `passport`, or a path to a profile file, relative to the
/// extending file) and gives only what it changes. The resolved profile keeps no trace of
/// `extends`: two files that resolve to the same ranges have the same
/// [`Profile::stable_hash`].
///
/// # Examples
///
/// ```
/// use veridoc::verify::{Profile, Range};
///
/// let lenient = Profile::from_toml(
///     r#"
///     extends = "passport"
///     name = "passport-lenient-roll"
///     roll = { min = -12.0, max = 12.0 }
///     yaw = "off"
///     "#,
/// )?;
/// assert_eq!(lenient.roll, Some(Range::new(-12.0, 12.0)));
/// assert_eq!(lenient.yaw, None);
/// assert_eq!(lenient.eye_line, Profile::passport().eye_line);
/// // The printed form reads back as the same profile.
/// assert_eq!(Profile::from_toml(&lenient.to_toml())?, lenient);
/// # Ok::<(), veridoc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (reports carry it).
    pub name: String,
    /// Photo width in pixels (after EXIF orientation, full resolution).
    pub width: Range,
    /// Photo height in pixels.
    pub height: Range,
    /// Width / height.
    #[serde(default, deserialize_with = "range_or_off")]
    pub aspect: Option<Range>,
    /// Number of faces found anywhere in the photo (the face search's passes).
    pub faces: Range,
    /// Distance between the eye centres, photo pixels (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub inter_eye_distance: Option<Range>,
    /// Height of the eye midpoint above the photo's bottom edge / photo height (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub eye_line: Option<Range>,
    /// Eye midpoint x / photo width (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub eye_center_x: Option<Range>,
    /// Chin-to-crown head height / photo height (landmarks and the head's top edge).
    #[serde(default, deserialize_with = "range_or_off")]
    pub head_height: Option<Range>,
    /// Head width / photo width (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub head_width: Option<Range>,
    /// Smallest distance from the head (crown, chin, sides) to the photo's edge / photo
    /// height; negative when the head is cut off (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub head_inside: Option<Range>,
    /// In-plane rotation of the eye line, degrees (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub roll: Option<Range>,
    /// Left-right head rotation estimate, degrees (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub yaw: Option<Range>,
    /// Up-down head rotation estimate, degrees (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub pitch: Option<Range>,
    /// Eye aspect ratio of the less open eye (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub eyes_open: Option<Range>,
    /// Inner-lip gap / mouth width (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub mouth_closed: Option<Range>,
    /// Probability of a neutral expression (expression model).
    #[serde(default, deserialize_with = "range_or_off")]
    pub expression_neutral: Option<Range>,
    /// Variance of the Laplacian of the face at its native scale (downscaled only).
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_sharpness: Option<Range>,
    /// Darker face half's mean luma / brighter half's (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub illumination_balance: Option<Range>,
    /// Mean luma of the face, 0..1 (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_brightness: Option<Range>,
    /// Fraction of the face's pixels that are clipped highlights (hot spots) (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_highlights: Option<Range>,
    /// Fraction of the face's pixels that are clipped shadows (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_shadows: Option<Range>,
    /// Colourfulness of the face's pixels (a grayscale photo has 0) (landmarks).
    #[serde(default, deserialize_with = "range_or_off")]
    pub colourfulness: Option<Range>,
    /// Colour cast of the whole photo (gray-world deviation of a channel mean), 0 neutral.
    #[serde(default, deserialize_with = "range_or_off")]
    pub cast: Option<Range>,
    /// Standard deviation of the background's luma, 0..1 (beside and above the head).
    #[serde(default, deserialize_with = "range_or_off")]
    pub background_uniformity: Option<Range>,
    /// Mean gradient magnitude of the background, 0..1 per pixel (patterns raise it).
    #[serde(default, deserialize_with = "range_or_off")]
    pub background_texture: Option<Range>,
    /// Mean background luma, 0..1 (a light background: high).
    #[serde(default, deserialize_with = "range_or_off")]
    pub background_brightness: Option<Range>,
    /// Whole-image sharpness (variance of the Laplacian at a fixed size).
    #[serde(default, deserialize_with = "range_or_off")]
    pub image_sharpness: Option<Range>,
    /// Whole-image fraction of clipped highlights (clothing and windows count too).
    #[serde(default, deserialize_with = "range_or_off")]
    pub highlights: Option<Range>,
    /// Whole-image fraction of clipped shadows.
    #[serde(default, deserialize_with = "range_or_off")]
    pub shadows: Option<Range>,
    /// Whole-image mean luma, 0..1.
    #[serde(default, deserialize_with = "range_or_off")]
    pub brightness: Option<Range>,
    /// Whole-image RMS contrast, 0..1.
    #[serde(default, deserialize_with = "range_or_off")]
    pub contrast: Option<Range>,
    /// Detector box height / photo height (the box spans about brows to chin).
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_height: Option<Range>,
    /// Detector box centre x / photo width.
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_center_x: Option<Range>,
    /// Detector box centre y / photo height.
    #[serde(default, deserialize_with = "range_or_off")]
    pub face_center_y: Option<Range>,
    /// Detector settings and the face search.
    #[serde(default)]
    pub detector: DetectorConfig,
}

impl Profile {
    /// The passport profile: ICAO 9303 Part 3 and ISO/IEC 19794-5 (full frontal) photo
    /// rules, with each check's clause in [`super::CHECKS`]. Where a number deviates from
    /// the standard, the measurement behind it is written beside it (and in
    /// docs/verification.md, from the conformance corpus).
    pub fn passport() -> Profile {
        Profile {
            name: "passport".into(),
            // ICAO 9303-3 asks for at least 300 dpi over 35 x 45 mm (413 x 531 px); a
            // little under that is accepted when the eyes are 90 px apart.
            width: Range::at_least(400.0),
            height: Range::at_least(500.0),
            // 35:45 = 0.78; 0.70..0.85 allows crops slightly off the standard.
            aspect: Some(Range::new(0.70, 0.85)),
            faces: Range::new(1.0, 1.0),
            // ISO/IEC 19794-5 8.4.1: 90 px between the eye centres (full frontal).
            inter_eye_distance: Some(Range::at_least(90.0)),
            // ISO/IEC 19794-5 8.3.3: eye line 50-70 % of the height from the bottom.
            eye_line: Some(Range::new(0.50, 0.70)),
            // ISO/IEC 19794-5 8.3.2: eye midpoint at 45-55 % of the width.
            eye_center_x: Some(Range::new(0.45, 0.55)),
            // ICAO 9303-3: chin to crown 32-36 mm of 45 mm, i.e. 70-80 % of the height.
            head_height: Some(Range::new(0.70, 0.80)),
            // ISO/IEC 19794-5 8.3.4 gives 50-75 % of the width of its 3:4 image; in a
            // 35:45 photo with the head at 70-80 % of the height the same head spans up
            // to ~85 % of the narrower width (the corpus's compliant portraits measure
            // 0.65-0.80), so the upper bound is 0.85.
            head_width: Some(Range::new(0.50, 0.85)),
            // ICAO 9303-3: the whole head, crown to chin, inside the frame.
            head_inside: Some(Range::at_least(0.0)),
            // ISO/IEC 19794-5 7.2.2: roll within 8 degrees, yaw and pitch within 5. Roll
            // is measured (0.5 degrees median error on the corpus); yaw is calibrated
            // against a face-mesh head pose (0.87 degrees mean error, 2.4 at the 95th
            // percentile; measure::YAW_GAIN), so it takes the standard's 5. Pitch is an
            // estimate from 2D landmarks (a generic 3D face, weak perspective) that mixes
            // in facial proportions: the corpus's neutral, level portraits read -24 to +4,
            // so the profile flags only a clearly tilted head (over 25).
            roll: Some(Range::new(-8.0, 8.0)),
            yaw: Some(Range::new(-5.0, 5.0)),
            pitch: Some(Range::new(-25.0, 25.0)),
            // ISO/IEC 19794-5 7.2.3: eyes open.
            eyes_open: Some(Range::at_least(0.18)),
            // ISO/IEC 19794-5 7.2.3: mouth closed.
            mouth_closed: Some(Range::at_most(0.08)),
            // ISO/IEC 19794-5 7.2.3: neutral expression.
            expression_neutral: Some(Range::at_least(0.5)),
            // ISO/IEC 19794-5 7.3.2: in focus.
            face_sharpness: Some(Range::at_least(60.0)),
            // ISO/IEC 19794-5 7.2.7-7.2.8: even lighting, no shadows over the face.
            illumination_balance: Some(Range::at_least(0.70)),
            face_brightness: Some(Range::new(0.25, 0.90)),
            // ISO/IEC 19794-5 7.2.10: no hot spots.
            face_highlights: Some(Range::at_most(0.02)),
            face_shadows: Some(Range::at_most(0.02)),
            // ICAO 9303-3: colour photo, natural skin tone.
            colourfulness: Some(Range::at_least(5.0)),
            cast: Some(Range::at_most(0.35)),
            // ISO/IEC 19794-5 7.2.6: plain, uniform, light background. On the corpus
            // (docs/verification.md) plain backgrounds measure under 0.01 and 0.001,
            // photographed backdrops 0.02-0.04 and 0.004, patterns (stripes, checks,
            // folds, textures) 0.04-0.15 and 0.004-0.026: the spread about a fitted plane
            // tells most patterns, the gradient the fine-grained ones.
            background_uniformity: Some(Range::at_most(0.04)),
            background_texture: Some(Range::at_most(0.008)),
            background_brightness: Some(Range::at_least(0.50)),
            image_sharpness: None,
            highlights: None,
            shadows: None,
            brightness: None,
            contrast: None,
            face_height: None,
            face_center_x: None,
            face_center_y: None,
            // only the applicant: a second face as small as 30 px beside the shoulder of
            // an 800 px photo must be found (the corpus's second_face class), under the
            // general 40 px; and at least 3 % of the longer side (the general 2.5 % is for
            // group photos; 3 % of a 12 MP photo is 116 px, and the fine pass's input is a
            // third smaller than at 2.5 %)
            detector: DetectorConfig {
                search: crate::detect::SearchConfig {
                    min_face_px: 28.0,
                    min_face_fraction: 0.03,
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    /// The range of check `name` (`None`: not evaluated).
    pub fn range(&self, name: &str) -> Option<Range> {
        Some(match name {
            "width" => self.width,
            "height" => self.height,
            "faces" => self.faces,
            "aspect" => self.aspect?,
            "inter_eye_distance" => self.inter_eye_distance?,
            "eye_line" => self.eye_line?,
            "eye_center_x" => self.eye_center_x?,
            "head_height" => self.head_height?,
            "head_width" => self.head_width?,
            "head_inside" => self.head_inside?,
            "roll" => self.roll?,
            "yaw" => self.yaw?,
            "pitch" => self.pitch?,
            "eyes_open" => self.eyes_open?,
            "mouth_closed" => self.mouth_closed?,
            "expression_neutral" => self.expression_neutral?,
            "face_sharpness" => self.face_sharpness?,
            "illumination_balance" => self.illumination_balance?,
            "face_brightness" => self.face_brightness?,
            "face_highlights" => self.face_highlights?,
            "face_shadows" => self.face_shadows?,
            "colourfulness" => self.colourfulness?,
            "cast" => self.cast?,
            "background_uniformity" => self.background_uniformity?,
            "background_texture" => self.background_texture?,
            "background_brightness" => self.background_brightness?,
            "image_sharpness" => self.image_sharpness?,
            "highlights" => self.highlights?,
            "shadows" => self.shadows?,
            "brightness" => self.brightness?,
            "contrast" => self.contrast?,
            "face_height" => self.face_height?,
            "face_center_x" => self.face_center_x?,
            "face_center_y" => self.face_center_y?,
            _ => return None,
        })
    }

    /// The names [`Profile::builtin`] knows, e.g. for a command line's help.
    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    /// A built-in profile by name ([`Profile::builtin_names`]): `passport`.
    ///
    /// # Errors
    /// `InvalidSpec` for an unknown name.
    pub fn builtin(name: &str) -> Result<Profile> {
        match name {
            "passport" => Ok(Profile::passport()),
            _ => Err(unknown_builtin("profile", name)),
        }
    }

    /// Parses a JSON profile. An `extends` that names a file is resolved against the working
    /// directory ([`Profile::load`] resolves it against the extending file's directory).
    ///
    /// # Errors
    /// `InvalidSpec` naming the unknown or malformed field, or a bad range; as
    /// [`Profile::load`] for a file named by `extends`.
    pub fn from_json(s: &str) -> Result<Profile> {
        parse(s, Format::Json, None, &mut Vec::new())
    }

    /// Parses a TOML profile (`extends` as in [`Profile::from_json`]).
    ///
    /// # Errors
    /// As [`Profile::from_json`].
    pub fn from_toml(s: &str) -> Result<Profile> {
        parse(s, Format::Toml, None, &mut Vec::new())
    }

    /// A profile named on a command line or in a request: a bare name (no path separator, no
    /// extension, e.g. `passport`) is always the built-in profile of that name, never a file
    /// that happens to carry it in the working directory; anything else is a file path
    /// ([`Profile::load`]).
    ///
    /// # Errors
    /// As [`Profile::builtin`] for a bare name, as [`Profile::load`] for a path (a missing
    /// file is an `Io` error naming it).
    pub fn resolve(arg: &str) -> Result<Profile> {
        if is_path(arg) {
            Profile::load(Path::new(arg))
        } else {
            Profile::builtin(arg)
        }
    }

    /// Loads a profile file (`.toml` as TOML, anything else as JSON), resolving its
    /// `extends` chain: a built-in name, or a profile file whose relative path is taken from
    /// the extending file's directory (at most 8 files in a chain; a cycle is refused).
    ///
    /// # Errors
    /// `Io` naming the path when a file cannot be read (this one or one it extends);
    /// otherwise as [`Profile::from_json`], and the error's [`Error::input`] (shown first in
    /// its message) is the file at fault.
    pub fn load(path: &Path) -> Result<Profile> {
        load_file(path, &mut Vec::new())
    }

    /// The profile as a commented TOML file: every field, each after a line saying what it
    /// measures, its unit and the clause it implements; a check that is off reads `"off"`.
    /// [`Profile::from_toml`] reads it back as the same profile. (For JSON, serialize the
    /// profile with serde: an off check is `null`.)
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        // `write!` to a String cannot fail.
        let _ = writeln!(
            out,
            "# veridoc verification profile `{}`, every field given.\n\
             # A range is {{ min = .., max = .. }} (inclusive; either end may be left out);\n\
             # \"{OFF}\" switches a check off. A profile of your own can start with\n\
             # extends = \"passport\" and give only the fields it changes.\n",
            printable_name(&self.name),
        );
        let _ = writeln!(out, "# Profile name (reports carry it).");
        let _ = writeln!(out, "name = {}", toml::Value::String(self.name.clone()));
        for (field, doc) in FIELD_DOCS {
            let _ = write!(out, "\n# {doc}");
            if let Some(c) = super::check_spec(field) {
                let _ = write!(out, " Unit: {}; {}.", c.unit, c.clause);
            }
            let value = match self.range(field) {
                Some(r) => toml_range(&r),
                None => format!("\"{OFF}\""),
            };
            let _ = writeln!(out, "\n{field} = {value}");
        }
        #[derive(Serialize)]
        struct Detector<'a> {
            detector: &'a DetectorConfig,
        }
        let _ = writeln!(
            out,
            "\n# Detector settings and the face search (DetectorConfig and SearchConfig in the\n\
             # API documentation)."
        );
        match toml::to_string(&Detector {
            detector: &self.detector,
        }) {
            Ok(t) => out.push_str(&t),
            Err(e) => {
                let _ = writeln!(out, "# (the detector settings could not be written: {e})");
            }
        }
        out
    }

    /// Checks every range (finite bounds, min <= max) and the detector settings.
    ///
    /// # Errors
    /// `InvalidSpec` naming the field.
    pub fn validate(&self) -> Result<()> {
        self.width.validate("width")?;
        self.height.validate("height")?;
        self.faces.validate("faces")?;
        for c in super::CHECKS {
            if let Some(r) = self.range(c.name) {
                r.validate(c.name)?;
            }
        }
        let d = &self.detector;
        if !(d.score_threshold > 0.0 && d.score_threshold < 1.0) {
            return Err(Error::new(ErrorKind::InvalidSpec {
                field: "detector.score_threshold".into(),
                reason: format!("{} is not in (0, 1)", d.score_threshold),
            }));
        }
        let s = &d.search;
        let positive = [
            (
                "detector.search.portrait_zoom",
                s.portrait_zoom >= 1.0 && s.portrait_zoom <= 8.0,
            ),
            (
                "detector.search.min_face_px",
                s.min_face_px.is_finite() && s.min_face_px >= 1.0,
            ),
            (
                "detector.search.min_face_fraction",
                s.min_face_fraction.is_finite() && (0.0..1.0).contains(&s.min_face_fraction),
            ),
            (
                "detector.search.fine_face_px",
                s.fine_face_px >= 16.0 && s.fine_face_px <= 400.0,
            ),
            (
                "detector.nms_contained",
                d.nms_contained > 0.0 && d.nms_contained <= 1.0,
            ),
            (
                "detector.nms_contained_min_width",
                (0.0..=1.0).contains(&d.nms_contained_min_width),
            ),
        ];
        for (field, ok) in positive {
            if !ok {
                return Err(Error::new(ErrorKind::InvalidSpec {
                    field: field.into(),
                    reason: "out of range".into(),
                }));
            }
        }
        if !(d.nms_iou > 0.0 && d.nms_iou <= 1.0) {
            return Err(Error::new(ErrorKind::InvalidSpec {
                field: "detector.nms_iou".into(),
                reason: format!("{} is not in (0, 1]", d.nms_iou),
            }));
        }
        Ok(())
    }

    /// A stable hash of the profile (it keys cached verification results).
    pub fn stable_hash(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).unwrap_or_default();
        *blake3::hash(&json).as_bytes()
    }

    /// [`Profile::stable_hash`] as hex (what reports carry).
    pub fn hash_hex(&self) -> String {
        blake3::Hash::from(self.stable_hash()).to_hex().to_string()
    }
}

/// The format of a profile's text.
#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Toml,
}

impl Format {
    /// `.toml` is TOML, anything else JSON.
    fn of(path: &Path) -> Format {
        if path.extension().is_some_and(|e| e == "toml") {
            Format::Toml
        } else {
            Format::Json
        }
    }
}

/// Whether a profile argument is a file path rather than a built-in name: it has a path
/// separator or an extension (a lexical rule, so no file can shadow a built-in name).
fn is_path(arg: &str) -> bool {
    arg.contains('/')
        || arg.contains(std::path::MAIN_SEPARATOR)
        || Path::new(arg).extension().is_some()
}

fn unknown_builtin(field: &str, name: &str) -> Error {
    Error::spec(
        field,
        format!(
            "unknown built-in profile `{name}` (built-in: {}; a file path needs a `/` or an \
             extension)",
            BUILTIN_NAMES.join(", ")
        ),
    )
}

/// A profile name fit for a comment line (control characters dropped).
fn printable_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).collect()
}

/// A range as a TOML inline table; `{}` is "any value".
fn toml_range(r: &Range) -> String {
    let ends: Vec<String> = [("min", r.min), ("max", r.max)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} = {}", toml::Value::Float(v))))
        .collect();
    if ends.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", ends.join(", "))
    }
}

/// Reads one profile file of an `extends` chain; `chain` holds the files being read (their
/// canonical paths), outermost first.
fn load_file(path: &Path, chain: &mut Vec<PathBuf>) -> Result<Profile> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io_at(path, e))?;
    let at = |e: Error| e.with_input(path.display().to_string());
    let real = std::fs::canonicalize(path).map_err(|e| Error::io_at(path, e))?;
    if let Some(i) = chain.iter().position(|p| *p == real) {
        let cycle: Vec<String> = chain[i..]
            .iter()
            .chain([&real])
            .map(|p| p.display().to_string())
            .collect();
        return Err(at(Error::spec(
            "extends",
            format!(
                "profiles extend one another in a cycle: {}",
                cycle.join(" -> ")
            ),
        )));
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        return Err(at(Error::spec(
            "extends",
            format!("more than {MAX_EXTENDS_DEPTH} profile files extend one another"),
        )));
    }
    chain.push(real);
    let profile = parse(&s, Format::of(path), path.parent(), chain).map_err(at);
    chain.pop();
    profile
}

/// Parses a profile's text. Without `extends` the text is the whole profile; with it, the
/// fields given override the base profile's (`dir`: where a relative base path starts).
fn parse(s: &str, format: Format, dir: Option<&Path>, chain: &mut Vec<PathBuf>) -> Result<Profile> {
    let tree: serde_json::Value = match format {
        Format::Json => serde_json::from_str(s).map_err(|e| parse_error(&e.to_string()))?,
        Format::Toml => toml::from_str(s).map_err(|e| parse_error(e.message()))?,
    };
    let serde_json::Value::Object(mut fields) = tree else {
        return Err(Error::spec("profile", "a profile is a table of fields"));
    };
    let Some(extends) = fields.remove("extends") else {
        refuse_required_off(&fields)?;
        // Parsed from the text itself, so that errors keep their line and column.
        let p: Profile = match format {
            Format::Json => serde_json::from_str(s).map_err(|e| parse_error(&e.to_string()))?,
            Format::Toml => toml::from_str(s).map_err(|e| parse_error(e.message()))?,
        };
        p.validate()?;
        return Ok(p);
    };
    let Some(target) = extends.as_str() else {
        return Err(Error::spec(
            "extends",
            "must be a string: a built-in profile name or a profile file's path",
        ));
    };
    let base = if is_path(target) {
        let path = dir.map_or_else(|| PathBuf::from(target), |d| d.join(target));
        load_file(&path, chain)?
    } else {
        Profile::builtin(target).map_err(|_| unknown_builtin("extends", target))?
    };
    let serde_json::Value::Object(mut merged) =
        serde_json::to_value(&base).map_err(|e| Error::spec("extends", e.to_string()))?
    else {
        return Err(Error::spec("extends", "the base profile is not a table"));
    };
    for (key, value) in fields {
        match (merged.get_mut(&key), value) {
            // The detector's settings merge field by field; a range is replaced whole.
            (Some(serde_json::Value::Object(base)), serde_json::Value::Object(over))
                if key == "detector" =>
            {
                merge_tables(base, over)
            }
            (_, value) => {
                merged.insert(key, value);
            }
        }
    }
    refuse_required_off(&merged)?;
    let p: Profile = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| parse_error(&e.to_string()))?;
    p.validate()?;
    Ok(p)
}

/// `over`'s fields replace `base`'s, tables merging field by field.
fn merge_tables(
    base: &mut serde_json::Map<String, serde_json::Value>,
    over: serde_json::Map<String, serde_json::Value>,
) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(serde_json::Value::Object(b)), serde_json::Value::Object(o)) => {
                merge_tables(b, o)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `width`, `height` and `faces` are always evaluated: switching one off is an error that
/// says so (rather than serde's "invalid type").
fn refuse_required_off(fields: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    for field in ["width", "height", "faces"] {
        let off = match fields.get(field) {
            Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::String(s)) => s == OFF,
            _ => false,
        };
        if off {
            return Err(Error::spec(
                field,
                "is always evaluated and cannot be switched off (`{}` accepts any value)",
            ));
        }
    }
    Ok(())
}

/// Deserializes an optional range: a table is the range, `"off"` (or `null`) is `None`.
fn range_or_off<'de, D>(d: D) -> std::result::Result<Option<Range>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de;

    struct RangeOrOff;

    impl<'de> de::Visitor<'de> for RangeOrOff {
        type Value = Option<Range>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a range {{ min, max }} or \"{OFF}\"")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
            if s == OFF {
                Ok(None)
            } else {
                Err(E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }

        fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: serde::Deserializer<'de>>(
            self,
            d: D2,
        ) -> std::result::Result<Self::Value, D2::Error> {
            d.deserialize_any(RangeOrOff)
        }

        fn visit_map<A: de::MapAccess<'de>>(
            self,
            map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            Range::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    d.deserialize_any(RangeOrOff)
}

/// serde reports unknown fields as "unknown field `x`, expected one of ..."; keep the field
/// name as the error's field so callers can point at it.
fn parse_error(msg: &str) -> Error {
    let field = msg
        .split('`')
        .nth(1)
        .filter(|_| msg.contains("unknown field") || msg.contains("missing field"))
        .unwrap_or("profile")
        .to_string();
    Error::new(ErrorKind::InvalidSpec {
        field,
        reason: msg.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_built_in_and_paths_are_files() {
        assert_eq!(Profile::resolve("passport").unwrap(), Profile::passport());
        let e = Profile::resolve("visa").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidSpec { .. }), "{e:?}");
        assert!(e.to_string().contains("built-in"), "{e}");
        // A path (separator or extension) is a file, and a missing one says which.
        let e = Profile::resolve("/missing/dir/passport").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
        assert!(e.to_string().contains("/missing/dir/passport"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("strict.toml");
        let mut strict = Profile::passport();
        strict.name = "strict".into();
        std::fs::write(&f, toml::to_string(&strict).unwrap()).unwrap();
        assert_eq!(Profile::resolve(f.to_str().unwrap()).unwrap(), strict);
        // A file named like a built-in is never read for the bare name: `passport` does not
        // touch the file system (the rule is lexical), so no file can shadow it.
        let shadow = dir.path().join("passport");
        std::fs::write(&shadow, "not a profile").unwrap();
        assert_eq!(Profile::resolve("passport").unwrap(), Profile::passport());
        assert!(
            Profile::resolve(shadow.to_str().unwrap()).is_err(),
            "the file itself is a path"
        );
    }

    #[test]
    fn passport_round_trips_through_json_and_toml() {
        let p = Profile::passport();
        let j = serde_json::to_string_pretty(&p).unwrap();
        assert_eq!(Profile::from_json(&j).unwrap(), p);
        let t = toml::to_string(&p).unwrap();
        assert_eq!(Profile::from_toml(&t).unwrap(), p);
        assert_eq!(
            p.stable_hash(),
            Profile::from_json(&j).unwrap().stable_hash()
        );
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_field() {
        let mut v = serde_json::to_value(Profile::passport()).unwrap();
        v["head_hieght"] = serde_json::json!({"min": 0.3});
        let e = Profile::from_json(&v.to_string()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidSpec { field, .. } if field == "head_hieght"),
            "{e}"
        );
        let mut v = serde_json::to_value(Profile::passport()).unwrap();
        v["contrast"] = serde_json::json!({"minimum": 0.3});
        let e = Profile::from_json(&v.to_string()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidSpec { field, .. } if field == "minimum"),
            "{e}"
        );
        let t = toml::to_string(&Profile::passport()).unwrap() + "\nextra = 1\n";
        let e = Profile::from_toml(&t).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidSpec { field, .. } if field == "extra"),
            "{e}"
        );
    }

    #[test]
    fn bad_ranges_are_refused() {
        let mut p = Profile::passport();
        p.head_height = Some(Range::new(0.8, 0.2));
        let e = p.validate().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidSpec { field, .. } if field == "head_height"));
        let mut p = Profile::passport();
        p.detector.search.portrait_zoom = 0.5;
        assert!(p.validate().is_err());
        let mut p = Profile::passport();
        p.detector.score_threshold = 1.5;
        assert!(p.validate().is_err());
        assert!(Profile::builtin("visa-xx").is_err());
    }

    /// Writes `text` to `dir/name` and returns the path.
    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn spec_field(e: &Error) -> &str {
        match e.kind() {
            ErrorKind::InvalidSpec { field, .. } => field,
            _ => "",
        }
    }

    #[test]
    fn extends_overrides_only_the_fields_given() {
        let mut expected = Profile::passport();
        expected.roll = Some(Range::new(-10.0, 10.0));
        expected.face_sharpness = Some(Range::at_least(40.0));
        let t = Profile::from_toml(
            "extends = \"passport\"\nroll = { min = -10.0, max = 10.0 }\n\
             face_sharpness = { min = 40 }\n",
        )
        .unwrap();
        assert_eq!(t, expected);
        let j = Profile::from_json(
            r#"{"extends": "passport", "roll": {"min": -10, "max": 10},
                "face_sharpness": {"min": 40.0}}"#,
        )
        .unwrap();
        assert_eq!(j, expected);
        // Nothing of `extends` is kept: the hash is that of the resolved profile.
        assert_eq!(t.stable_hash(), expected.stable_hash());
        assert_eq!(t.name, "passport", "the name is inherited unless given");
        // The detector's settings merge field by field.
        let d = Profile::from_toml(
            "extends = \"passport\"\nname = \"d\"\n[detector.search]\nmin_face_px = 20.0\n",
        )
        .unwrap();
        let mut expected = Profile::passport();
        expected.name = "d".into();
        expected.detector.search.min_face_px = 20.0;
        assert_eq!(d, expected);
        // An unknown base is named as such.
        let e = Profile::from_toml("extends = \"visa\"\n").unwrap_err();
        assert_eq!(spec_field(&e), "extends", "{e}");
        assert!(e.to_string().contains("visa"), "{e}");
    }

    #[test]
    fn off_switches_a_check_off() {
        let mut expected = Profile::passport();
        expected.yaw = None;
        expected.pitch = None;
        let t =
            Profile::from_toml("extends = \"passport\"\nyaw = \"off\"\npitch = \"off\"\n").unwrap();
        assert_eq!(t, expected);
        let j =
            Profile::from_json(r#"{"extends": "passport", "yaw": "off", "pitch": null}"#).unwrap();
        assert_eq!(j, expected);
        // `{}` is a range that accepts anything: the check runs and passes.
        let any = Profile::from_toml("extends = \"passport\"\nyaw = {}\n").unwrap();
        assert_eq!(
            any.yaw,
            Some(Range {
                min: None,
                max: None
            })
        );
        // Any other string is refused.
        let e = Profile::from_toml("extends = \"passport\"\nroll = \"of\"\n").unwrap_err();
        assert_eq!(spec_field(&e), "profile", "{e}");
        assert!(e.to_string().contains("off"), "{e}");
        // The checks every photo gets cannot be switched off.
        for (text, field) in [
            ("extends = \"passport\"\nfaces = \"off\"\n", "faces"),
            (
                "name = \"x\"\nwidth = \"off\"\nheight = {}\nfaces = {}\n",
                "width",
            ),
        ] {
            let e = Profile::from_toml(text).unwrap_err();
            assert_eq!(spec_field(&e), field, "{e}");
        }
        let e = Profile::from_json(r#"{"extends": "passport", "height": null}"#).unwrap_err();
        assert_eq!(spec_field(&e), "height", "{e}");
    }

    #[test]
    fn a_file_without_extends_gives_every_required_field() {
        let p = Profile::from_toml(
            "name = \"minimal\"\nwidth = {}\nheight = {}\nfaces = { min = 1, max = 1 }\n\
             roll = { min = -5.0, max = 5.0 }\nyaw = \"off\"\n",
        )
        .unwrap();
        assert_eq!(p.roll, Some(Range::new(-5.0, 5.0)));
        assert_eq!(
            (p.yaw, p.eye_line),
            (None, None),
            "left out or off: not evaluated"
        );
        assert_eq!(p.detector, DetectorConfig::default());
        let e = Profile::from_toml("name = \"x\"\nwidth = {}\nheight = {}\n").unwrap_err();
        assert_eq!(spec_field(&e), "faces", "{e}");
    }

    #[test]
    fn extends_a_file_relative_to_the_extending_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("profiles");
        std::fs::create_dir(&sub).unwrap();
        write(
            &sub,
            "base.toml",
            "extends = \"passport\"\nname = \"base\"\nroll = { min = -6.0, max = 6.0 }\n",
        );
        let child = write(
            &sub,
            "child.json",
            r#"{"extends": "base.toml", "name": "child", "yaw": "off"}"#,
        );
        let mut expected = Profile::passport();
        expected.name = "child".into();
        expected.roll = Some(Range::new(-6.0, 6.0));
        expected.yaw = None;
        // The working directory is not `profiles/`: the base is found beside the child.
        assert_eq!(Profile::load(&child).unwrap(), expected);
        assert_eq!(Profile::resolve(child.to_str().unwrap()).unwrap(), expected);
        // A missing base is an io error naming it, reported against the extending file.
        let orphan = write(&sub, "orphan.toml", "extends = \"gone.toml\"\n");
        let e = Profile::load(&orphan).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with(&orphan.display().to_string()), "{msg}");
        assert!(
            msg.contains(&sub.join("gone.toml").display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn extends_cycles_and_deep_chains_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.toml", "extends = \"b.toml\"\n");
        write(dir.path(), "b.toml", "extends = \"./a.toml\"\n");
        let e = Profile::load(&a).unwrap_err();
        assert_eq!(spec_field(&e), "extends", "{e}");
        assert!(e.to_string().contains("cycle"), "{e}");
        let me = write(dir.path(), "me.json", r#"{"extends": "me.json"}"#);
        let e = Profile::load(&me).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
        // A chain of 10 files (each extends the next; the last extends passport).
        for i in 0..10 {
            let next = if i == 9 {
                "passport".to_string()
            } else {
                format!("c{}.toml", i + 1)
            };
            write(
                dir.path(),
                &format!("c{i}.toml"),
                &format!("extends = \"{next}\"\n"),
            );
        }
        let e = Profile::load(&dir.path().join("c0.toml")).unwrap_err();
        assert_eq!(spec_field(&e), "extends", "{e}");
        assert!(e.to_string().contains("more than 8"), "{e}");
        // ... while 8 are fine.
        assert_eq!(
            Profile::load(&dir.path().join("c2.toml")).unwrap(),
            Profile::passport()
        );
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "typo.toml",
                "extends = \"passport\"\nhead_hieght = { min = 0.3 }\n",
                "head_hieght",
            ),
            (
                "typo.json",
                r#"{"extends": "passport", "rol": {"max": 3}}"#,
                "rol",
            ),
            (
                "bad.toml",
                "extends = \"passport\"\nroll = { min = 9.0, max = 1.0 }\n",
                "roll",
            ),
            ("syntax.toml", "extends = \"passport\"\nroll = {", "profile"),
            ("syntax.json", "{\"extends\": ", "profile"),
        ];
        for (name, text, field) in cases {
            let path = write(dir.path(), name, text);
            let e = Profile::load(&path).unwrap_err();
            assert_eq!(spec_field(&e), field, "{name}: {e}");
            assert_eq!(e.input(), Some(path.display().to_string().as_str()));
            assert!(
                e.to_string().starts_with(&format!("{}: ", path.display())),
                "{e}"
            );
        }
        // An error in a base file names the base, not the file extending it.
        write(
            dir.path(),
            "base.toml",
            "extends = \"passport\"\nyaw = { min = 1.0, max = 0.0 }\n",
        );
        let top = write(dir.path(), "top.toml", "extends = \"base.toml\"\n");
        let e = Profile::load(&top).unwrap_err();
        assert_eq!(spec_field(&e), "yaw", "{e}");
        assert!(e.to_string().contains("base.toml"), "{e}");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        for arg in ["/missing.toml", "missing-profile.json", "./missing"] {
            let e = Profile::resolve(arg).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Io(_)), "{arg}: {e:?}");
            assert!(e.to_string().contains(arg), "{e}");
            assert!(!e.to_string().contains("built-in"), "{e}");
        }
    }

    #[test]
    fn printed_toml_round_trips_with_comments() {
        let p = Profile::passport();
        let t = p.to_toml();
        assert_eq!(Profile::from_toml(&t).unwrap(), p);
        assert_eq!(
            Profile::from_toml(&t).unwrap().stable_hash(),
            p.stable_hash()
        );
        assert!(t.contains("\n# Height of the eye midpoint above the bottom edge / photo height. Unit: fraction; ISO/IEC 19794-5 8.3.3.\neye_line = { min = 0.5, max = 0.7 }\n"), "{t}");
        assert!(t.contains("\nimage_sharpness = \"off\"\n"), "{t}");
        assert!(t.contains("\n[detector.search]\n"), "{t}");
        // Odd names, open and unbounded ranges and JSON print the same way.
        let mut q = Profile::passport();
        q.name = "a \"quoted\"\nname".into();
        q.roll = Some(Range {
            min: None,
            max: None,
        });
        q.yaw = Some(Range::at_most(1e-7));
        q.pitch = Some(Range::at_least(-1e16));
        assert_eq!(Profile::from_toml(&q.to_toml()).unwrap(), q);
        let j = serde_json::to_string_pretty(&q).unwrap();
        assert_eq!(Profile::from_json(&j).unwrap(), q);
        // The comment table covers every field the profile serializes.
        let keys: Vec<String> = match serde_json::to_value(&p).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let mut documented: Vec<String> = FIELD_DOCS.iter().map(|(f, _)| f.to_string()).collect();
        documented.extend(["name".to_string(), "detector".to_string()]);
        let (mut keys, mut documented) = (keys, documented);
        keys.sort();
        documented.sort();
        assert_eq!(keys, documented);
        assert!(FIELD_DOCS
            .iter()
            .all(|(f, _)| super::super::check_spec(f).is_some()));
        assert_eq!(Profile::builtin_names(), &["passport"]);
        for name in Profile::builtin_names() {
            assert!(Profile::builtin(name).is_ok());
        }
    }

    #[test]
    fn ranges_contain_their_bounds_and_never_nan() {
        let r = Range::new(0.3, 0.6);
        assert!(r.contains(0.3) && r.contains(0.6) && !r.contains(0.61));
        assert!(!r.contains(f64::NAN));
        assert!(Range::at_least(2.0).contains(1e9));
    }
}
