//! What verification returns: a [`PhotoReport`] per photo and a [`VerifySummary`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::measure::Subject;
use crate::detect::Face;
use crate::scheduler::{Decision, Device, Placement};

/// The outcome for one photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every evaluated check passed.
    Accepted,
    /// At least one check failed (see [`PhotoReport::failed`]).
    Rejected,
    /// The photo could not be processed (unreadable, corrupt, over limits).
    Error,
}

/// Whether a check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Within the profile's range.
    Pass,
    /// Outside it.
    Fail,
    /// Not evaluated: the profile has no range for it, or it needs a face and there is not
    /// exactly one.
    Skipped,
}

/// One quality check: what was measured, against what, and the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Check name (the profile field it is judged by).
    pub name: String,
    /// Measured value (`null` when not measured).
    pub value: Option<f64>,
    /// Lower bound of the accepted range (inclusive; `null`: none).
    pub min: Option<f64>,
    /// Upper bound (inclusive; `null`: none).
    pub max: Option<f64>,
    /// Unit of the value (`px`, `deg`, `ratio`, `fraction`, `count`, `luma`, ...).
    pub unit: String,
    /// Pass, fail or skipped.
    pub status: CheckStatus,
    /// The clause of the standard it implements (ICAO 9303-3, ISO/IEC 19794-5).
    pub clause: String,
    /// A short human reason ("head too small: 0.62 < 0.70"), or why it was skipped.
    pub message: String,
}

/// Time per stage for one photo, milliseconds. GPU stages of a batch are shared by its
/// photos, so each photo carries its share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Reading and decoding (with shrink-on-load).
    pub decode_ms: f64,
    /// Detector and face-crop input preprocessing (resize, normalize).
    pub preprocess_ms: f64,
    /// Face detection (every pass of the search: networks and head decoding).
    pub detect_ms: f64,
    /// Landmark and expression networks.
    #[serde(default)]
    pub landmarks_ms: f64,
    /// Quality checks.
    pub checks_ms: f64,
    /// Sum of the above.
    pub total_ms: f64,
}

/// Version of the report's JSON schema (`docs/report.schema.json`). 2: checks as
/// `{name, value, min, max, unit, status, clause, message}`, the subject's landmarks and
/// measurements, the face search's completeness. 3: `profile_hash`, the hash of the exact
/// profile the photo was judged against (two profiles of one name are told apart).
pub const REPORT_SCHEMA: u32 = 3;

/// The verification report of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoReport {
    /// [`REPORT_SCHEMA`].
    pub schema_version: u32,
    /// Input name (path or given name).
    pub name: String,
    /// Accepted, rejected or error.
    pub verdict: Verdict,
    /// Names of the failed checks.
    pub failed: Vec<String>,
    /// Why the photo could not be processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The profile it was judged against.
    pub profile: String,
    /// BLAKE3 of the profile's canonical JSON ([`crate::verify::Profile::stable_hash`]), hex.
    #[serde(default)]
    pub profile_hash: String,
    /// Full-resolution width after EXIF orientation (0 on error).
    pub width: u32,
    /// Full-resolution height after EXIF orientation.
    pub height: u32,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
    /// Detected faces, best first, in photo pixels.
    pub faces: Vec<Face>,
    /// False when the face search stopped early because the verdict was already decided
    /// (or the fine pass was limited in scale): `faces` is then a lower bound.
    pub faces_complete: bool,
    /// The face the checks judged (the largest found), with its landmarks and
    /// measurements, in photo pixels.
    pub subject: Option<Subject>,
    /// Time per stage.
    pub timings: StageTimes,
    /// Where the networks and their preprocessing ran (`cpu` or `gpu`).
    pub device: Device,
    /// Served from the result cache (timings are those of the original computation).
    pub cached: bool,
    /// Things worth knowing that did not fail a check (EXIF orientation applied,
    /// shrink-on-load used, background too small to judge).
    pub warnings: Vec<String>,
}

impl PhotoReport {
    pub(crate) fn error(
        name: String,
        profile: &super::Profile,
        device: Device,
        e: &crate::Error,
    ) -> Self {
        PhotoReport {
            schema_version: REPORT_SCHEMA,
            name,
            verdict: Verdict::Error,
            failed: Vec::new(),
            error: Some(e.to_string()),
            profile: profile.name.clone(),
            profile_hash: profile.hash_hex(),
            width: 0,
            height: 0,
            checks: Vec::new(),
            faces: Vec::new(),
            faces_complete: false,
            subject: None,
            timings: StageTimes::default(),
            device,
            cached: false,
            warnings: Vec::new(),
        }
    }
}

/// Totals over a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifySummary {
    /// Photos in the batch.
    pub photos: usize,
    /// Accepted photos.
    pub accepted: usize,
    /// Rejected photos.
    pub rejected: usize,
    /// Photos that could not be processed.
    pub errors: usize,
    /// How many photos failed each check.
    pub failures_by_check: BTreeMap<String, usize>,
    /// Photos served from the result cache.
    pub cache_hits: usize,
    /// Where most photos ran (`cpu` or `gpu`; see `decisions` for each chunk).
    pub device: Device,
    /// Why, for that path (the decision's reason, in words).
    pub reason: String,
    /// The placement decision of each chunk of photos, typed.
    pub decisions: Vec<ChunkDecision>,
    /// Wall time of the batch, ms.
    pub wall_ms: f64,
    /// Photos per second over the wall time.
    pub photos_per_s: f64,
    /// Median per-photo stage times over computed (not cached) photos.
    pub median: StageTimes,
}

/// Where one chunk of a batch ran, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkDecision {
    /// Index of the chunk's first photo in the batch.
    pub first: usize,
    /// Photos in the chunk (cached ones included).
    pub photos: usize,
    /// The scheduler's decision (or the requested path, or `all_cached`).
    pub decision: Decision,
}

/// A batch's reports (in input order) and summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyOutput {
    /// One report per input, in order.
    pub reports: Vec<PhotoReport>,
    /// Totals.
    pub summary: VerifySummary,
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl VerifySummary {
    pub(crate) fn from_reports(
        reports: &[PhotoReport],
        decisions: Vec<ChunkDecision>,
        wall: std::time::Duration,
    ) -> Self {
        let mut on_gpu = 0usize;
        let mut on_cpu = 0usize;
        for d in &decisions {
            match d.decision.placement {
                Placement::Gpu => on_gpu += d.photos,
                _ => on_cpu += d.photos,
            }
        }
        let gpu = on_gpu > on_cpu;
        let reason = decisions
            .iter()
            .filter(|d| (d.decision.placement == Placement::Gpu) == gpu)
            .max_by_key(|d| d.photos)
            .map_or_else(
                || "no photos".to_string(),
                |d| d.decision.reason.to_string(),
            );
        let mut s = VerifySummary {
            photos: reports.len(),
            device: if gpu { Device::Gpu } else { Device::Cpu },
            reason,
            decisions,
            wall_ms: wall.as_secs_f64() * 1e3,
            ..Default::default()
        };
        for r in reports {
            match r.verdict {
                Verdict::Accepted => s.accepted += 1,
                Verdict::Rejected => s.rejected += 1,
                Verdict::Error => s.errors += 1,
            }
            s.cache_hits += r.cached as usize;
            for f in &r.failed {
                *s.failures_by_check.entry(f.clone()).or_default() += 1;
            }
        }
        let computed: Vec<&PhotoReport> = reports
            .iter()
            .filter(|r| !r.cached && r.verdict != Verdict::Error)
            .collect();
        let m =
            |f: fn(&StageTimes) -> f64| median(computed.iter().map(|r| f(&r.timings)).collect());
        s.median = StageTimes {
            decode_ms: m(|t| t.decode_ms),
            preprocess_ms: m(|t| t.preprocess_ms),
            detect_ms: m(|t| t.detect_ms),
            landmarks_ms: m(|t| t.landmarks_ms),
            checks_ms: m(|t| t.checks_ms),
            total_ms: m(|t| t.total_ms),
        };
        // processed photos only: an unreadable file costs nothing and proves nothing
        s.photos_per_s = if wall.as_secs_f64() > 0.0 {
            (reports.len() - s.errors) as f64 / wall.as_secs_f64()
        } else {
            0.0
        };
        s
    }
}

/// `s` with control characters (newline, ESC, ...) escaped as `\n`, `\u{1b}`: names and
/// messages printed to a terminal cannot forge table rows or send escape sequences.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl std::fmt::Display for VerifySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} photos: {} accepted, {} rejected, {} errors ({} from cache)",
            self.photos, self.accepted, self.rejected, self.errors, self.cache_hits
        )?;
        writeln!(
            f,
            "device {} ({}); {:.0} ms wall, {:.1} photos/s",
            self.device, self.reason, self.wall_ms, self.photos_per_s
        )?;
        writeln!(
            f,
            "median per photo: decode {:.1} ms, preprocess {:.1} ms, detect {:.1} ms, landmarks {:.1} ms, checks {:.1} ms, total {:.1} ms",
            self.median.decode_ms,
            self.median.preprocess_ms,
            self.median.detect_ms,
            self.median.landmarks_ms,
            self.median.checks_ms,
            self.median.total_ms
        )?;
        if !self.failures_by_check.is_empty() {
            let list: Vec<String> = self
                .failures_by_check
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(f, "failed checks: {}", list.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(super::printable("a b.jpg"), "a b.jpg");
        assert_eq!(
            super::printable("x\nok    forged.jpg\u{1b}[2J"),
            "x\\nok    forged.jpg\\u{1b}[2J"
        );
    }
}
