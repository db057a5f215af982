//! The checks: what each one measures, the clause it implements, and how a photo's
//! measurements are judged against a profile.

use super::checks::{self, Luma, FACE_SHARPNESS_HEIGHT, SHARPNESS_SIDE};
use super::measure::{FaceMask, Subject};
use super::profile::{Profile, Range};
use super::report::{Check, CheckStatus};
use crate::detect::Face;
use crate::frame::Frame;

/// What a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSpec {
    /// Name (the profile field).
    pub name: &'static str,
    /// Unit of its value.
    pub unit: &'static str,
    /// The clause it implements.
    pub clause: &'static str,
    /// Message when the value is under the range.
    pub low: &'static str,
    /// Message when the value is over the range.
    pub high: &'static str,
}

const fn spec(
    name: &'static str,
    unit: &'static str,
    clause: &'static str,
    low: &'static str,
    high: &'static str,
) -> CheckSpec {
    CheckSpec {
        name,
        unit,
        clause,
        low,
        high,
    }
}

/// Every check, in report order. Clause numbers are those of ISO/IEC 19794-5:2005 and of
/// ICAO Doc 9303 Part 3 (8th edition, photo guidelines).
pub const CHECKS: &[CheckSpec] = &[
    spec(
        "width",
        "px",
        "ICAO 9303-3 (resolution)",
        "photo too narrow",
        "photo too wide",
    ),
    spec(
        "height",
        "px",
        "ICAO 9303-3 (resolution)",
        "photo too short",
        "photo too tall",
    ),
    spec(
        "aspect",
        "ratio",
        "ICAO 9303-3 (35 x 45 mm)",
        "photo too tall for its width",
        "photo too wide for its height",
    ),
    spec(
        "faces",
        "count",
        "ICAO 9303-3 (only the applicant)",
        "no face found",
        "more than one face",
    ),
    spec(
        "inter_eye_distance",
        "px",
        "ISO/IEC 19794-5 8.4.1",
        "eyes too close for the resolution",
        "eyes too far apart",
    ),
    spec(
        "eye_line",
        "fraction",
        "ISO/IEC 19794-5 8.3.3",
        "eyes too low",
        "eyes too high",
    ),
    spec(
        "eye_center_x",
        "fraction",
        "ISO/IEC 19794-5 8.3.2",
        "face left of centre",
        "face right of centre",
    ),
    spec(
        "head_height",
        "fraction",
        "ICAO 9303-3 (chin to crown 70-80 %)",
        "head too small",
        "head too large",
    ),
    spec(
        "head_width",
        "fraction",
        "ISO/IEC 19794-5 8.3.4",
        "head too narrow",
        "head too wide",
    ),
    spec(
        "head_inside",
        "fraction",
        "ICAO 9303-3 (whole head visible)",
        "head cut off by the frame",
        "head too far from the frame",
    ),
    spec(
        "roll",
        "deg",
        "ISO/IEC 19794-5 7.2.2",
        "head tilted (roll)",
        "head tilted (roll)",
    ),
    spec(
        "yaw",
        "deg",
        "ISO/IEC 19794-5 7.2.2",
        "head turned (yaw)",
        "head turned (yaw)",
    ),
    spec(
        "pitch",
        "deg",
        "ISO/IEC 19794-5 7.2.2",
        "head tilted down (pitch)",
        "head tilted up (pitch)",
    ),
    spec(
        "eyes_open",
        "ratio",
        "ISO/IEC 19794-5 7.2.3",
        "eyes closed or narrowed",
        "eyes wide open",
    ),
    spec(
        "mouth_closed",
        "ratio",
        "ISO/IEC 19794-5 7.2.3",
        "mouth closed",
        "mouth open",
    ),
    spec(
        "expression_neutral",
        "probability",
        "ISO/IEC 19794-5 7.2.3",
        "expression not neutral",
        "expression neutral",
    ),
    spec(
        "face_sharpness",
        "laplacian variance",
        "ISO/IEC 19794-5 7.3.2",
        "face blurred",
        "face over-sharpened",
    ),
    spec(
        "illumination_balance",
        "ratio",
        "ISO/IEC 19794-5 7.2.7, 7.2.8",
        "uneven light or a shadow on the face",
        "even light",
    ),
    spec(
        "face_brightness",
        "luma",
        "ISO/IEC 19794-5 7.2.7",
        "face too dark",
        "face too bright",
    ),
    spec(
        "face_highlights",
        "fraction",
        "ISO/IEC 19794-5 7.2.10",
        "no highlights",
        "hot spots on the face",
    ),
    spec(
        "face_shadows",
        "fraction",
        "ISO/IEC 19794-5 7.2.8",
        "no shadows",
        "clipped shadows on the face",
    ),
    spec(
        "colourfulness",
        "colourfulness",
        "ICAO 9303-3 (colour, natural skin tone)",
        "grayscale or washed-out colour",
        "oversaturated colour",
    ),
    spec(
        "cast",
        "ratio",
        "ICAO 9303-3 (natural colour)",
        "no cast",
        "colour cast",
    ),
    spec(
        "background_uniformity",
        "luma std",
        "ISO/IEC 19794-5 7.2.6",
        "background uniform",
        "background not uniform",
    ),
    spec(
        "background_texture",
        "gradient",
        "ISO/IEC 19794-5 7.2.6",
        "background plain",
        "background patterned",
    ),
    spec(
        "background_brightness",
        "luma",
        "ISO/IEC 19794-5 7.2.6",
        "background too dark",
        "background too bright",
    ),
    spec(
        "image_sharpness",
        "laplacian variance",
        "ISO/IEC 19794-5 7.3.2",
        "photo blurred",
        "photo over-sharpened",
    ),
    spec(
        "highlights",
        "fraction",
        "ISO/IEC 19794-5 7.3.3",
        "no highlights",
        "clipped highlights",
    ),
    spec(
        "shadows",
        "fraction",
        "ISO/IEC 19794-5 7.3.3",
        "no shadows",
        "clipped shadows",
    ),
    spec(
        "brightness",
        "luma",
        "ISO/IEC 19794-5 7.3.3",
        "photo too dark",
        "photo too bright",
    ),
    spec(
        "contrast",
        "luma std",
        "ISO/IEC 19794-5 7.3.3",
        "low contrast",
        "high contrast",
    ),
    spec(
        "face_height",
        "fraction",
        "detector box (legacy)",
        "face box too small",
        "face box too large",
    ),
    spec(
        "face_center_x",
        "fraction",
        "detector box (legacy)",
        "face box left of centre",
        "face box right of centre",
    ),
    spec(
        "face_center_y",
        "fraction",
        "detector box (legacy)",
        "face box too high",
        "face box too low",
    ),
];

/// The spec of check `name`.
pub fn check_spec(name: &str) -> Option<&'static CheckSpec> {
    CHECKS.iter().find(|c| c.name == name)
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Judges `value` against `range` for check `spec`; `missing` says why a value is absent.
fn judge_one(spec: &CheckSpec, value: Option<f64>, range: Option<Range>, missing: &str) -> Check {
    let (status, message) = match (value, range) {
        (_, None) => (CheckStatus::Skipped, "not in the profile".to_string()),
        (None, Some(_)) => (CheckStatus::Skipped, missing.to_string()),
        (Some(v), Some(r)) if r.contains(v) => (CheckStatus::Pass, String::new()),
        (Some(v), Some(r)) => {
            let low = r.min.is_some_and(|m| v < m) || v.is_nan();
            let msg = if low {
                format!(
                    "{}: {} < {}",
                    spec.low,
                    fmt(v),
                    fmt(r.min.unwrap_or(f64::NAN))
                )
            } else {
                format!(
                    "{}: {} > {}",
                    spec.high,
                    fmt(v),
                    fmt(r.max.unwrap_or(f64::NAN))
                )
            };
            (CheckStatus::Fail, msg)
        }
    };
    Check {
        name: spec.name.to_string(),
        value,
        min: range.and_then(|r| r.min),
        max: range.and_then(|r| r.max),
        unit: spec.unit.to_string(),
        status,
        clause: spec.clause.to_string(),
        message,
    }
}

/// What the checks read for one photo.
pub(crate) struct Evidence<'a> {
    /// Full-resolution photo size (after orientation).
    pub photo: (u32, u32),
    /// The image the checks measure (the analysis image, or its reduction).
    pub frame: &'a Frame,
    /// Its luma.
    pub luma: &'a Luma,
    /// The image face sharpness is measured on (the analysis image, at its native scale)
    /// and its pixels per `frame` pixel.
    pub sharp: (&'a Frame, f32),
    /// Faces found, in `frame`'s pixels.
    pub faces: &'a [Face],
    /// The subject, in `frame`'s pixels (`None` without a face or without landmarks).
    pub subject: Option<&'a Subject>,
    /// Why there is no subject, when there is none.
    pub no_subject: &'a str,
}

/// Laplacian variance of a face box at its native scale: the crop is downscaled to
/// [`FACE_SHARPNESS_HEIGHT`] when taller, never upscaled (an upscaled face looks blurred).
fn face_sharpness(frame: &Frame, face: &Face) -> Option<f64> {
    let x0 = face.x.max(0.0).floor() as u32;
    let y0 = face.y.max(0.0).floor() as u32;
    let x1 = ((face.x + face.width).ceil().max(0.0) as u32).min(frame.width());
    let y1 = ((face.y + face.height).ceil().max(0.0) as u32).min(frame.height());
    if x1 <= x0 + 2 || y1 <= y0 + 2 {
        return None;
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let th = FACE_SHARPNESS_HEIGHT.min(ch);
    let tw = ((cw as f64 * th as f64 / ch as f64).round() as u32).max(3);
    super::luma_resampled(frame, Some([x0, y0, cw, ch]), tw, th)
        .map(|l| checks::laplacian_variance(&l))
        .ok()
}

/// Every check of `profile` on `e`, in [`CHECKS`] order.
pub(crate) fn judge(profile: &Profile, e: &Evidence<'_>) -> Vec<Check> {
    let (pw, ph) = (e.photo.0 as f64, e.photo.1.max(1) as f64);
    let f = e.frame;
    let (fw, fh) = (f.width() as f64, f.height().max(1) as f64);
    // analysis pixels to photo pixels
    let k = pw / fw.max(1.0);
    let subj = e.subject;
    let need_subject = e.no_subject;
    let want = |name: &str| profile.range(name).is_some();
    let light = subj
        .filter(|_| {
            [
                "illumination_balance",
                "face_brightness",
                "face_highlights",
                "face_shadows",
                "colourfulness",
            ]
            .iter()
            .any(|n| want(n))
        })
        .and_then(|s| FaceMask::new(&s.landmarks, f.width() as usize, f.height() as usize))
        .and_then(|m| checks::face_light(f, e.luma, &m));
    let bg = subj
        .filter(|_| {
            [
                "background_uniformity",
                "background_texture",
                "background_brightness",
            ]
            .iter()
            .any(|n| want(n))
        })
        // under 2 % of the image is too little to judge (a head filling the frame)
        .and_then(|s| checks::region_stats(e.luma, &s.background, 0.02));
    let whole = (["highlights", "shadows", "brightness", "contrast"]
        .iter()
        .any(|n| want(n)))
    .then(|| checks::exposure(e.luma));
    let one = (e.faces.len() == 1).then(|| e.faces[0]);
    let mut out = Vec::with_capacity(CHECKS.len());
    for c in CHECKS {
        let range = profile.range(c.name);
        if range.is_none() {
            out.push(judge_one(c, None, None, ""));
            continue;
        }
        let mut missing = need_subject.to_string();
        let v: Option<f64> = match c.name {
            "width" => Some(pw),
            "height" => Some(ph),
            "aspect" => Some(pw / ph),
            "faces" => Some(e.faces.len() as f64),
            "inter_eye_distance" => subj.map(|s| s.inter_eye as f64 * k),
            "eye_line" => subj.map(|s| (fh - s.eye_mid.y as f64) / fh),
            "eye_center_x" => subj.map(|s| s.eye_mid.x as f64 / fw),
            "head_height" => subj.map(|s| s.head[3] as f64 / fh),
            "head_width" => subj.map(|s| s.head[2] as f64 / fw),
            "head_inside" => subj.map(|s| {
                let [x, y, w, h] = s.head;
                let m = [y as f64, fh - (y + h) as f64, x as f64, fw - (x + w) as f64];
                m.into_iter().fold(f64::INFINITY, f64::min) / fh
            }),
            "roll" => subj.map(|s| s.pose.roll as f64),
            "yaw" => subj.map(|s| s.pose.yaw as f64),
            "pitch" => subj.map(|s| s.pose.pitch as f64),
            "eyes_open" => subj.map(|s| s.eye_openness as f64),
            "mouth_closed" => subj.map(|s| s.mouth_gap as f64),
            "expression_neutral" => {
                if subj.is_some_and(|s| s.expression.is_none()) {
                    missing = "expression model not registered".into();
                }
                subj.and_then(|s| s.expression.as_ref())
                    .map(|x| x.probability("neutral") as f64)
            }
            "face_sharpness" => {
                let (sf, k) = e.sharp;
                match subj {
                    Some(s) => face_sharpness(sf, &s.face.scaled(k)),
                    None => one.and_then(|face| face_sharpness(sf, &face.scaled(k))),
                }
            }
            "illumination_balance" => light.map(|l| l.balance),
            "face_brightness" => light.map(|l| l.mean),
            "face_highlights" => light.map(|l| l.highlights),
            "face_shadows" => light.map(|l| l.shadows),
            "colourfulness" => light.map(|l| l.colourfulness),
            "cast" => Some(checks::colour(f, 4).cast),
            "background_uniformity" | "background_texture" | "background_brightness" => {
                if subj.is_some() && bg.is_none() {
                    missing = "background region too small to judge".into();
                }
                bg.map(|b| match c.name {
                    "background_uniformity" => b.std,
                    "background_texture" => b.texture,
                    _ => b.mean,
                })
            }
            "image_sharpness" => {
                let s = SHARPNESS_SIDE as f64 / fw.max(fh);
                super::luma_resampled(f, None, (fw * s).round() as u32, (fh * s).round() as u32)
                    .map(|l| checks::laplacian_variance(&l))
                    .ok()
            }
            "highlights" => whole.map(|x| x.highlights),
            "shadows" => whole.map(|x| x.shadows),
            "brightness" => whole.map(|x| x.mean),
            "contrast" => whole.map(|x| x.contrast),
            "face_height" | "face_center_x" | "face_center_y" => {
                missing = "needs exactly one face".into();
                one.map(|face| match c.name {
                    "face_height" => face.height as f64 / fh,
                    "face_center_x" => face.center().0 as f64 / fw,
                    _ => face.center().1 as f64 / fh,
                })
            }
            _ => None,
        };
        out.push(judge_one(c, v, range, &missing));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_field_has_a_check_and_every_check_a_field() {
        let p = Profile::passport();
        let v = serde_json::to_value(&p).unwrap();
        let fields: Vec<&String> = v.as_object().unwrap().keys().collect();
        for c in CHECKS {
            assert!(
                fields.iter().any(|f| *f == c.name),
                "{} has no profile field",
                c.name
            );
        }
        for f in fields {
            if f == "name" || f == "detector" {
                continue;
            }
            assert!(check_spec(f).is_some(), "profile field {f} has no check");
        }
    }

    #[test]
    fn failures_say_which_way_and_by_how_much() {
        let c = check_spec("head_height").unwrap();
        let r = Some(Range::new(0.7, 0.8));
        let low = judge_one(c, Some(0.62), r, "");
        assert_eq!(low.status, CheckStatus::Fail);
        assert_eq!(low.message, "head too small: 0.620 < 0.700");
        let high = judge_one(c, Some(0.9), r, "");
        assert!(high.message.starts_with("head too large"));
        let ok = judge_one(c, Some(0.75), r, "");
        assert_eq!(
            (ok.status, ok.min, ok.max),
            (CheckStatus::Pass, Some(0.7), Some(0.8))
        );
        let skipped = judge_one(c, None, r, "needs landmarks");
        assert_eq!(
            (skipped.status, skipped.message.as_str()),
            (CheckStatus::Skipped, "needs landmarks")
        );
    }
}
