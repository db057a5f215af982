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
/// 4: `engine_version`, `build_id`, `models_hash`, `pipeline_hash`, the input's absolute
/// `path`, errors as `{code, message, retryable}` ([`ReportError`]); every key is always
/// present (`null` where not measured).
pub const REPORT_SCHEMA: u32 = 4;

/// Why a photo could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportError {
    /// A stable code for the kind of failure ([`crate::Error::code`]: `not_found`,
    /// `decode`, `over_limit`, ...), for scripts; it does not change between versions.
    pub code: String,
    /// The error in words, naming the input.
    pub message: String,
    /// True when the same photo may succeed later (a budget busy right now).
    pub retryable: bool,
}

impl ReportError {
    /// The report form of `e`.
    pub fn from_error(e: &crate::Error) -> Self {
        ReportError {
            code: e.code().to_string(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

/// What every report of one verifier shares: who judged it, with what.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    pub(crate) profile: String,
    pub(crate) profile_hash: String,
    pub(crate) models_hash: String,
    pub(crate) pipeline_hash: String,
}

impl Stamp {
    /// The stamp of a verifier judging against `profile` with models of `models` content
    /// hash: `pipeline_hash` binds the engine build and the models (everything that turns
    /// pixels into measurements, apart from the profile).
    pub(crate) fn new(profile: &super::Profile, models: &[u8; 32]) -> Stamp {
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.verify.pipeline.v1\0");
        h.update(crate::VERSION.as_bytes());
        h.update(b"\0");
        h.update(crate::BUILD_ID.as_bytes());
        h.update(models);
        Stamp {
            profile: profile.name.clone(),
            profile_hash: profile.hash_hex(),
            models_hash: hex(models),
            pipeline_hash: h.finalize().to_hex().to_string(),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The absolute path of a file input (`None` for in-memory inputs): reports name the input
/// as given and where it was.
pub(crate) fn absolute_path(input: &crate::Input) -> Option<String> {
    match input {
        crate::Input::Path(p) => Some(
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
        ),
        _ => None,
    }
}

/// The verification report of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoReport {
    /// [`REPORT_SCHEMA`].
    pub schema_version: u32,
    /// The engine's version (`veridoc::VERSION`).
    pub engine_version: String,
    /// The engine build's fingerprint (`veridoc::BUILD_ID`: a hash of its source).
    pub build_id: String,
    /// Input name (the path as given, or the given name).
    pub name: String,
    /// The input's absolute path (`null` for in-memory inputs).
    pub path: Option<String>,
    /// Accepted, rejected or error.
    pub verdict: Verdict,
    /// Names of the failed checks.
    pub failed: Vec<String>,
    /// Why the photo could not be processed (`null` unless the verdict is `error`).
    pub error: Option<ReportError>,
    /// The profile it was judged against.
    pub profile: String,
    /// BLAKE3 of the profile's canonical JSON ([`crate::verify::Profile::stable_hash`]), hex.
    pub profile_hash: String,
    /// BLAKE3 over the weights of every model used (detector, landmarks, expression), hex.
    pub models_hash: String,
    /// BLAKE3 of the engine version, build and models: two reports with the same
    /// `pipeline_hash` and `profile_hash` were computed the same way.
    pub pipeline_hash: String,
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
        input: &crate::Input,
        stamp: &Stamp,
        device: Device,
        e: &crate::Error,
    ) -> Self {
        PhotoReport {
            schema_version: REPORT_SCHEMA,
            engine_version: crate::VERSION.to_string(),
            build_id: crate::BUILD_ID.to_string(),
            name: input.name(),
            path: absolute_path(input),
            verdict: Verdict::Error,
            failed: Vec::new(),
            error: Some(ReportError::from_error(e)),
            profile: stamp.profile.clone(),
            profile_hash: stamp.profile_hash.clone(),
            models_hash: stamp.models_hash.clone(),
            pipeline_hash: stamp.pipeline_hash.clone(),
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
    /// How many photos failed with each error code ([`ReportError::code`]).
    pub errors_by_code: BTreeMap<String, usize>,
    /// How many photos failed each check.
    pub failures_by_check: BTreeMap<String, usize>,
    /// Photos served from the result cache.
    pub cache_hits: usize,
    /// Where most photos ran (`cpu` or `gpu`; see `decisions` for each chunk).
    pub device: Device,
    /// Why, for that path (the decision's reason, in words).
    pub reason: String,
    /// The placement decisions, typed: one entry per run of chunks decided alike.
    pub decisions: Vec<ChunkDecision>,
    /// Wall time of the batch, ms.
    pub wall_ms: f64,
    /// Processed photos (accepted or rejected, not errors) per second over the wall time.
    pub photos_per_s: f64,
    /// Median per-photo stage times over computed (not cached) photos.
    pub median: StageTimes,
    /// True when the run was cancelled before every input was verified: `photos` counts
    /// the ones that were.
    pub cancelled: bool,
}

/// Where a run of chunks of a batch ran, and why: consecutive chunks with the same
/// placement and reason share one entry (with its first chunk's predictions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkDecision {
    /// Index of the chunk's first photo in the batch.
    pub first: usize,
    /// Photos in these chunks (cached ones included).
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

/// Stage times kept for the medians: every photo's up to this many, then a uniform sample
/// of this size (reservoir sampling), so a summary over millions of photos stays small.
/// The median of a 65,536-sample is within 0.4 percentile points of the true median
/// (standard error 0.5/sqrt(n) in quantile terms).
const TIMING_SAMPLE: usize = 65_536;

/// A [`VerifySummary`] built one report at a time (a stream keeps no reports).
#[derive(Debug, Default)]
pub(crate) struct SummaryBuilder {
    s: VerifySummary,
    /// Stage times of computed (not cached, not failed) photos, for the medians: all of
    /// them up to [`TIMING_SAMPLE`], a uniform sample after.
    timings: Vec<StageTimes>,
    /// Computed photos seen.
    computed: u64,
    /// The sampler's state (a 64-bit LCG: reproducible, no global RNG).
    rng: u64,
}

impl SummaryBuilder {
    fn sample(&mut self, t: StageTimes) {
        self.computed += 1;
        if self.timings.len() < TIMING_SAMPLE {
            self.timings.push(t);
            return;
        }
        // Algorithm R: the n-th item replaces a random slot with probability k/n
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (self.rng >> 11) % self.computed;
        if let Some(slot) = self.timings.get_mut(j as usize) {
            *slot = t;
        }
    }

    /// Adds a chunk's decision: a chunk decided as the one before it (same placement and
    /// reason) extends that entry, so a long run keeps one entry per change of decision,
    /// not one per chunk (the entry keeps its first chunk's predictions).
    pub(crate) fn decision(decisions: &mut Vec<ChunkDecision>, d: ChunkDecision) {
        if let Some(last) = decisions.last_mut() {
            if last.decision.placement == d.decision.placement
                && last.decision.reason == d.decision.reason
                && last.first + last.photos == d.first
            {
                last.photos += d.photos;
                return;
            }
        }
        decisions.push(d);
    }
}

impl SummaryBuilder {
    pub(crate) fn add(&mut self, r: &PhotoReport) {
        let s = &mut self.s;
        s.photos += 1;
        match r.verdict {
            Verdict::Accepted => s.accepted += 1,
            Verdict::Rejected => s.rejected += 1,
            Verdict::Error => {
                s.errors += 1;
                if let Some(e) = &r.error {
                    *s.errors_by_code.entry(e.code.clone()).or_default() += 1;
                }
            }
        }
        s.cache_hits += r.cached as usize;
        for f in &r.failed {
            *s.failures_by_check.entry(f.clone()).or_default() += 1;
        }
        if !r.cached && r.verdict != Verdict::Error {
            self.sample(r.timings);
        }
    }

    pub(crate) fn finish(
        self,
        decisions: Vec<ChunkDecision>,
        wall: std::time::Duration,
        cancelled: bool,
    ) -> VerifySummary {
        let mut s = self.s;
        let mut on_gpu = 0usize;
        let mut on_cpu = 0usize;
        for d in &decisions {
            match d.decision.placement {
                Placement::Gpu => on_gpu += d.photos,
                _ => on_cpu += d.photos,
            }
        }
        let gpu = on_gpu > on_cpu;
        s.reason = decisions
            .iter()
            .filter(|d| (d.decision.placement == Placement::Gpu) == gpu)
            .max_by_key(|d| d.photos)
            .map_or_else(
                || "no photos".to_string(),
                |d| d.decision.reason.to_string(),
            );
        s.device = if gpu { Device::Gpu } else { Device::Cpu };
        s.decisions = decisions;
        s.wall_ms = wall.as_secs_f64() * 1e3;
        s.cancelled = cancelled;
        let t = &self.timings;
        let m = |f: fn(&StageTimes) -> f64| median(t.iter().map(f).collect());
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
            (s.photos - s.errors) as f64 / wall.as_secs_f64()
        } else {
            0.0
        };
        s
    }
}

impl VerifySummary {
    /// The summary of `reports` (in any order) with the chunks' `decisions`, over `wall`.
    pub fn from_reports(
        reports: &[PhotoReport],
        decisions: Vec<ChunkDecision>,
        wall: std::time::Duration,
    ) -> Self {
        let mut b = SummaryBuilder::default();
        for r in reports {
            b.add(r);
        }
        b.finish(decisions, wall, false)
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
            "{} photos: {} accepted, {} rejected, {} errors ({} from cache){}",
            self.photos,
            self.accepted,
            self.rejected,
            self.errors,
            self.cache_hits,
            if self.cancelled { "; interrupted" } else { "" }
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
        if !self.errors_by_code.is_empty() {
            let list: Vec<String> = self
                .errors_by_code
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(f, "errors: {}", list.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Reason;

    #[test]
    fn summaries_stay_small_over_long_runs() {
        let mut b = SummaryBuilder::default();
        let n = 3 * TIMING_SAMPLE;
        for i in 0..n {
            b.sample(StageTimes {
                total_ms: i as f64,
                ..Default::default()
            });
        }
        assert_eq!(b.timings.len(), TIMING_SAMPLE);
        let s = b.finish(Vec::new(), std::time::Duration::from_secs(1), false);
        // a uniform sample of 0..n: its median near n/2 (within 1 % of n)
        let m = s.median.total_ms;
        assert!((m - n as f64 / 2.0).abs() < 0.01 * n as f64, "{m}");

        let d = |first, placement, reason| ChunkDecision {
            first,
            photos: 32,
            decision: Decision::fixed(placement, reason),
        };
        let mut v = Vec::new();
        for k in 0..1000 {
            SummaryBuilder::decision(&mut v, d(32 * k, Placement::Cpu, Reason::Fastest));
        }
        SummaryBuilder::decision(&mut v, d(32_000, Placement::Gpu, Reason::Fastest));
        SummaryBuilder::decision(&mut v, d(32_032, Placement::Cpu, Reason::Fastest));
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].first, v[0].photos), (0, 32_000));
        assert_eq!((v[2].first, v[2].photos), (32_032, 32));
    }
    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(super::printable("a b.jpg"), "a b.jpg");
        assert_eq!(
            super::printable("x\nok    forged.jpg\u{1b}[2J"),
            "x\\nok    forged.jpg\\u{1b}[2J"
        );
    }
}
