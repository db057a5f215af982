//! Photo verification: decode, detect faces, run the quality checks of a [`Profile`], report.
//!
//! ```no_run
//! use veridoc::{Engine, Input};
//! use veridoc::verify::{Profile, VerifyOptions};
//!
//! let engine = Engine::builder().build()?;
//! engine.register_face_model("fixtures/models/tiny_face_detector_model-weights_manifest.json");
//! let out = engine.verify(&VerifyOptions::new(Profile::passport()), &[Input::path("photo.jpg")])?;
//! println!("{}", serde_json::to_string_pretty(&out.reports[0]).unwrap());
//! # Ok::<(), veridoc::Error>(())
//! ```
//!
//! Per photo: the photo is decoded once, with shrink-on-load to an analysis image whose
//! longer side is at least [`ANALYSIS_MIN_SIDE`]; the detector's 416x416 input is made from
//! it by the engine's preprocessing ([`crate::detect::detector_pipeline`]) on the chosen
//! path; TinyFaceDetector runs on the same path; the checks run on the CPU over the analysis
//! image (they cost ~3 ms per photo on the dev machine, less than a round trip to the GPU).

pub mod checks;
mod profile;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cache::ModelSource;
use crate::decode::{self, DecodeInfo};
use crate::detect::{self, Face, TinyFaceWeights, TINY_FACE_MODEL};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::input::Input;
use crate::plan::ValueLut;
use crate::scheduler::Placement;
use crate::spec::{ChannelOrder, DType, DecodeOptions, Layout, Pipeline};
use crate::tensor::Tensor;

use checks::{Luma, FACE_SHARPNESS_HEIGHT, SHARPNESS_SIDE};
pub use profile::{Profile, Range};
pub use report::{
    Check, CheckStatus, PhotoReport, StageTimes, Verdict, VerifyOutput, VerifySummary,
};

/// The analysis image's longer side is at least this (shrink-on-load stops before going
/// under it). 960 px keeps a passport portrait's face over 300 px tall for the sharpness
/// check while a 12 MP JPEG decodes at 1/4 scale (~40 ms instead of ~150 ms at full size on
/// the dev machine).
pub const ANALYSIS_MIN_SIDE: u32 = 960;

/// Photos processed together: bounds memory (each holds ~2.5 MB of analysis image and a
/// 2 MB detector input) while giving the GPU batches to amortize its submissions.
pub const VERIFY_CHUNK: usize = 32;

/// What to verify against and where.
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifyOptions {
    /// The profile. Default: [`Profile::passport`].
    pub profile: Profile,
    /// Force a path (`Cpu` or `Gpu`); `None` (default) lets the scheduler decide.
    pub placement: Option<Placement>,
    /// Use the engine's result cache when it has one. Default: true.
    pub use_cache: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions::new(Profile::passport())
    }
}

impl VerifyOptions {
    /// Options for `profile`, scheduler-chosen path, cache on.
    pub fn new(profile: Profile) -> Self {
        VerifyOptions {
            profile,
            placement: None,
            use_cache: true,
        }
    }

    /// Forces a path.
    pub fn placement(mut self, p: Placement) -> Self {
        self.placement = Some(p);
        self
    }

    /// Turns the result cache off for these calls.
    pub fn use_cache(mut self, on: bool) -> Self {
        self.use_cache = on;
        self
    }
}

/// A decoded photo ready for detection.
struct Analysed {
    frame: Frame,
    info: Option<DecodeInfo>,
    decode: Duration,
}

/// An analysed photo through the detector: preprocessing time, raw heads, detector time.
type Staged = (Analysed, Duration, Vec<f32>, Duration);

/// The face detections of one photo, in photo pixels.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Faces, best first.
    pub faces: Vec<Face>,
    /// Full-resolution photo size (after orientation).
    pub size: (u32, u32),
}

impl Engine {
    /// Registers TinyFaceDetector's TF.js weights manifest (the `.bin` beside it) with the
    /// model cache under [`TINY_FACE_MODEL`]. Nothing is read until first use.
    pub fn register_face_model(&self, manifest: impl Into<std::path::PathBuf>) {
        self.models().register(
            TINY_FACE_MODEL,
            ModelSource::TfjsFiles {
                manifest: manifest.into(),
            },
        );
    }

    fn face_weights(&self) -> Result<TinyFaceWeights> {
        let m = self.models().get(TINY_FACE_MODEL).map_err(|e| {
            Error::new(ErrorKind::Model(format!(
                "face detector unavailable ({e}); register it with Engine::register_face_model"
            )))
        })?;
        TinyFaceWeights::from_model(&m)
    }

    /// Decodes with shrink-on-load down to the analysis size.
    fn analyse(&self, input: &Input) -> Result<Analysed> {
        let t0 = Instant::now();
        let Some(bytes) = input.read()? else {
            let Input::Frame { frame, .. } = input else {
                return Err(Error::invalid("input has neither bytes nor a frame"));
            };
            return Ok(Analysed {
                frame: frame.clone(),
                info: None,
                decode: t0.elapsed(),
            });
        };
        let d = decode::load(
            &bytes,
            &DecodeOptions::default(),
            self.decode_limits(),
            |h| {
                let (w, hh) = h.oriented_size();
                let long = w.max(hh);
                Ok([8u32, 4, 2]
                    .into_iter()
                    .find(|k| long / k >= ANALYSIS_MIN_SIDE)
                    .unwrap_or(1))
            },
        )?;
        Ok(Analysed {
            frame: d.frame,
            info: Some(d.info),
            decode: t0.elapsed(),
        })
    }

    /// The path detection runs on for these frames (`requested` overrides), and why.
    fn verify_placement(
        &self,
        requested: Option<Placement>,
        frames: &[Input],
    ) -> (Placement, String) {
        if let Some(p) = requested {
            return (p, "requested".into());
        }
        match self.decide_for(&detect::detector_pipeline(), frames) {
            Ok(d) => match d.placement {
                Placement::Gpu => (Placement::Gpu, format!("{:?}", d.reason)),
                // A batch runs on one path: the detector's layers are too short to split.
                _ => (Placement::Cpu, format!("{:?}", d.reason)),
            },
            Err(e) => (Placement::Cpu, format!("scheduler: {e}")),
        }
    }

    /// Detector inputs (416x416x3 NHWC f32) for analysed frames on `placement`, with the
    /// time each took.
    fn detector_inputs(
        &self,
        frames: &[&Frame],
        placement: Placement,
    ) -> Vec<(Result<Tensor>, Duration)> {
        let p = detect::detector_pipeline();
        if placement == Placement::Gpu {
            let inputs: Vec<Input> = frames
                .iter()
                .enumerate()
                .map(|(i, f)| Input::frame(format!("#{i}"), (*f).clone()))
                .collect();
            let t0 = Instant::now();
            match self.run_on(&p, &inputs, Placement::Gpu) {
                Ok(out) => {
                    let share = t0.elapsed() / frames.len().max(1) as u32;
                    return out.items.into_iter().map(|i| (i.result, share)).collect();
                }
                Err(e) => {
                    return frames
                        .iter()
                        .map(|_| (Err(e.duplicate()), Duration::ZERO))
                        .collect()
                }
            }
        }
        let lut = ValueLut::new(&p);
        self.pool().install(|| {
            frames
                .par_iter()
                .map(|f| {
                    let t0 = Instant::now();
                    let r = Geometry::plan(f.width(), f.height(), &p)
                        .and_then(|g| crate::cpu::preprocess(f, &g, &p, &lut));
                    (r, t0.elapsed())
                })
                .collect()
        })
    }

    /// Raw detector heads for 416x416 inputs on `placement`, with the time each took.
    fn detector_heads(
        &self,
        weights: &TinyFaceWeights,
        inputs: &[&Tensor],
        placement: Placement,
    ) -> Vec<(Result<Vec<f32>>, Duration)> {
        let side = detect::INPUT_SIDE as usize;
        #[cfg(feature = "gpu")]
        if placement == Placement::Gpu {
            let t0 = Instant::now();
            let r = self.gpu_detect(inputs);
            let share = t0.elapsed() / inputs.len().max(1) as u32;
            return match r {
                Ok(heads) => heads.into_iter().map(|h| (Ok(h), share)).collect(),
                Err(e) => inputs.iter().map(|_| (Err(e.duplicate()), share)).collect(),
            };
        }
        let _ = placement;
        self.pool().install(|| {
            inputs
                .par_iter()
                .map(|t| {
                    let t0 = Instant::now();
                    let r = t
                        .as_f32()
                        .ok_or_else(|| Error::invalid("detector input is not f32"))
                        .and_then(|x| crate::cpu::detect::forward(weights, x, side));
                    (r, t0.elapsed())
                })
                .collect()
        })
    }

    /// The face detector resident on the GPU (the model cache's GPU tier): a hit is a map
    /// lookup; a miss loads the host copy (from the disk tier or the source files) and
    /// uploads it. Use it to warm the GPU before the first batch.
    ///
    /// # Errors
    /// `Gpu` without a GPU; `Model` when the model is not registered or malformed.
    #[cfg(feature = "gpu")]
    pub fn gpu_face_model(&self) -> Result<Arc<crate::gpu::GpuDetector>> {
        let gpu = self.gpu_backend().ok_or_else(|| {
            Error::from(crate::GpuError::NoAdapter("no gpu in this engine".into()))
        })?;
        self.models().get_gpu(TINY_FACE_MODEL, |m| {
            gpu.upload_detector(&TinyFaceWeights::from_model(m)?)
        })
    }

    #[cfg(feature = "gpu")]
    fn gpu_detect(&self, inputs: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let det = self.gpu_face_model()?;
        let gpu = self.gpu_backend().ok_or_else(|| {
            Error::from(crate::GpuError::NoAdapter("no gpu in this engine".into()))
        })?;
        let xs: Vec<&[f32]> = inputs
            .iter()
            .map(|t| {
                t.as_f32()
                    .ok_or_else(|| Error::invalid("detector input is not f32"))
            })
            .collect::<Result<_>>()?;
        gpu.detect(&det, &xs, detect::INPUT_SIDE as usize)
    }

    /// Places, preprocesses and runs the detector on analysed photos: one entry per photo,
    /// in order, with its preprocessing time, raw heads and detector time, or the first
    /// error on its way; plus the placement and why.
    fn detect_analysed(
        &self,
        weights: &TinyFaceWeights,
        analysed: Vec<Result<Analysed>>,
        requested: Option<Placement>,
    ) -> (Vec<Result<Staged>>, Placement, String) {
        let frames: Vec<&Frame> = analysed.iter().flatten().map(|a| &a.frame).collect();
        let frame_inputs: Vec<Input> = frames
            .iter()
            .map(|f| Input::frame("", (*f).clone()))
            .collect();
        let (placement, reason) = self.verify_placement(requested, &frame_inputs);
        let prepped = self.detector_inputs(&frames, placement);
        let ok: Vec<&Tensor> = prepped
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok())
            .collect();
        let heads = self.detector_heads(weights, &ok, placement);
        // Re-align: heads exist only for successful preprocessing, preprocessing only for
        // successful decodes.
        let mut heads = heads.into_iter();
        let mut prepped = prepped.into_iter();
        let staged = analysed
            .into_iter()
            .map(|a| {
                let a = a?;
                let (t, pre) = prepped
                    .next()
                    .unwrap_or((Err(Error::invalid("missing")), Duration::ZERO));
                t?;
                let (h, det) = heads
                    .next()
                    .unwrap_or((Err(Error::invalid("missing")), Duration::ZERO));
                Ok((a, pre, h?, det))
            })
            .collect();
        (staged, placement, reason)
    }

    /// Detects faces in each input on `placement` (`None`: the scheduler's choice). One
    /// result per input, in order; a bad input fails alone.
    ///
    /// # Errors
    /// `Model` when the face model is not registered or malformed.
    pub fn detect_faces(
        &self,
        inputs: &[Input],
        placement: Option<Placement>,
        cfg: &detect::DetectorConfig,
    ) -> Result<Vec<Result<Detection>>> {
        let weights = self.face_weights()?;
        let analysed: Vec<Result<Analysed>> = self
            .pool()
            .install(|| inputs.par_iter().map(|i| self.analyse(i)).collect());
        let (staged, _, _) = self.detect_analysed(&weights, analysed, placement);
        Ok(staged
            .into_iter()
            .map(|r| {
                let (a, _, heads, _) = r?;
                let size = a
                    .info
                    .map_or((a.frame.width(), a.frame.height()), |i| i.original);
                Ok(Detection {
                    faces: faces_in_photo(&heads, &a.frame, size, cfg),
                    size,
                })
            })
            .collect())
    }

    /// Verifies each input against `opts.profile`. One report per input, in order: a photo
    /// that cannot be read gets a report with verdict `error`, and the rest go on.
    ///
    /// # Errors
    /// `InvalidSpec` for an invalid profile, `Model` when the face model is not registered
    /// or malformed.
    pub fn verify(&self, opts: &VerifyOptions, inputs: &[Input]) -> Result<VerifyOutput> {
        self.verify_with_progress(opts, inputs, |_| {})
    }

    /// [`Engine::verify`], calling `progress(done)` after each chunk of photos.
    ///
    /// # Errors
    /// As [`Engine::verify`].
    pub fn verify_with_progress(
        &self,
        opts: &VerifyOptions,
        inputs: &[Input],
        mut progress: impl FnMut(usize),
    ) -> Result<VerifyOutput> {
        opts.profile.validate()?;
        let start = Instant::now();
        let weights = self.face_weights()?;
        let mut reports = Vec::with_capacity(inputs.len());
        let mut device = String::from("cpu");
        let mut reason = String::from("no photos");
        for chunk in inputs.chunks(VERIFY_CHUNK) {
            let (r, d, why) = self.verify_chunk(opts, &weights, chunk);
            reports.extend(r);
            device = d;
            reason = why;
            progress(reports.len());
        }
        let summary = VerifySummary::from_reports(&reports, &device, reason, start.elapsed());
        Ok(VerifyOutput { reports, summary })
    }

    fn verify_chunk(
        &self,
        opts: &VerifyOptions,
        weights: &TinyFaceWeights,
        inputs: &[Input],
    ) -> (Vec<PhotoReport>, String, String) {
        let profile = &opts.profile;
        let cache = self.result_cache().filter(|_| opts.use_cache);
        let keys: Vec<Option<[u8; 32]>> = match cache {
            Some(c) => self.pool().install(|| {
                inputs
                    .par_iter()
                    .map(|i| c.digest(i).ok().map(|d| report_key(&d, profile)))
                    .collect()
            }),
            None => vec![None; inputs.len()],
        };
        let mut slots: Vec<Option<PhotoReport>> = keys
            .iter()
            .map(|k| k.and_then(|k| cache.and_then(|c| cached_report(c, &k))))
            .collect();
        let todo: Vec<usize> = (0..inputs.len()).filter(|&i| slots[i].is_none()).collect();
        if todo.is_empty() {
            return (
                slots.into_iter().flatten().collect(),
                "cpu".into(),
                "AllCached".into(),
            );
        }
        let analysed: Vec<Result<Analysed>> = self
            .pool()
            .install(|| todo.par_iter().map(|&i| self.analyse(&inputs[i])).collect());
        let (staged, placement, reason) = self.detect_analysed(weights, analysed, opts.placement);
        let device = if placement == Placement::Gpu {
            "gpu"
        } else {
            "cpu"
        };
        let staged: Vec<_> = todo
            .iter()
            .zip(staged)
            .map(|(&i, r)| (i, inputs[i].name(), r))
            .collect();
        let done: Vec<(usize, PhotoReport)> = self.pool().install(|| {
            staged
                .into_par_iter()
                .map(|(i, name, r)| {
                    let rep = match r {
                        Ok((a, pre, head, det)) => {
                            judge(name, profile, &a, &head, pre, det, device)
                        }
                        Err(e) => PhotoReport::error(name, &profile.name, device, &e),
                    };
                    (i, rep)
                })
                .collect()
        });
        for (i, rep) in done {
            if let (Some(c), Some(k)) = (cache, keys[i]) {
                if rep.verdict != Verdict::Error {
                    store_report(c, &k, &rep);
                }
            }
            slots[i] = Some(rep);
        }
        (slots.into_iter().flatten().collect(), device.into(), reason)
    }
}

fn report_key(digest: &[u8; 32], profile: &Profile) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"veridoc.verify.v1\0");
    h.update(digest);
    h.update(&profile.stable_hash());
    h.update(crate::VERSION.as_bytes());
    *h.finalize().as_bytes()
}

/// Reports live in the result cache's tiers as their JSON bytes (a u8 tensor), so they
/// share its budget, TTL, integrity checks and wipe.
fn cached_report(c: &crate::cache::ResultCache, key: &[u8; 32]) -> Option<PhotoReport> {
    let t = c.get(key)?;
    let mut r: PhotoReport = serde_json::from_slice(t.as_u8()?).ok()?;
    r.cached = true;
    Some(r)
}

fn store_report(c: &crate::cache::ResultCache, key: &[u8; 32], r: &PhotoReport) {
    let Ok(json) = serde_json::to_vec(r) else {
        return;
    };
    let n = json.len();
    if let Ok(t) = Tensor::new(vec![n], Layout::Nchw, crate::tensor::TensorData::U8(json)) {
        c.put(key, &t);
    }
}

/// Faces in photo pixels from a raw head computed on `frame` (the analysis image).
fn faces_in_photo(
    head: &[f32],
    frame: &Frame,
    size: (u32, u32),
    cfg: &detect::DetectorConfig,
) -> Vec<Face> {
    let side = frame.width().max(frame.height()) as f32;
    let scale = size.0 as f32 / frame.width() as f32;
    detect::decode_head(head, side, cfg)
        .into_iter()
        .map(|f| f.scaled(scale))
        .collect()
}

/// A u8 luma plane of `frame` (or of its `crop`) resampled to `w x h` by the engine's CPU
/// path (antialiased bilinear, fused grayscale conversion).
fn luma_resampled(frame: &Frame, crop: Option<[u32; 4]>, w: u32, h: u32) -> Result<Luma> {
    let mut p = Pipeline::new()
        .stretch(w.max(1), h.max(1))
        .channels(ChannelOrder::Gray)
        .dtype(DType::U8)
        .layout(Layout::Nchw);
    if let Some([x, y, cw, ch]) = crop {
        p = p.crop(x, y, cw, ch);
    }
    let g = Geometry::plan(frame.width(), frame.height(), &p)?;
    let t = crate::cpu::preprocess(frame, &g, &p, &ValueLut::new(&p))?;
    Ok(Luma {
        width: w.max(1) as usize,
        height: h.max(1) as usize,
        data: t.as_u8().map(<[u8]>::to_vec).unwrap_or_default(),
    })
}

fn check(name: &str, value: Option<f64>, range: Option<&Range>, note: Option<String>) -> Check {
    let (status, note) = match (value, range) {
        (_, None) => (CheckStatus::Skipped, Some("not in the profile".to_string())),
        (None, Some(_)) => (CheckStatus::Skipped, note),
        (Some(v), Some(r)) if r.contains(v) => (CheckStatus::Pass, note),
        (Some(_), Some(_)) => (CheckStatus::Fail, note),
    };
    Check {
        name: name.to_string(),
        value,
        expected: range.map_or_else(|| "-".to_string(), |r| r.to_string()),
        status,
        note,
    }
}

/// Runs every check of `profile` on one analysed photo and builds its report.
fn judge(
    name: String,
    profile: &Profile,
    a: &Analysed,
    head: &[f32],
    pre: Duration,
    det: Duration,
    device: &str,
) -> PhotoReport {
    let t0 = Instant::now();
    let f = &a.frame;
    let (w, h) = a.info.map_or((f.width(), f.height()), |i| i.original);
    let faces = faces_in_photo(head, f, (w, h), &profile.detector);
    let mut warnings = Vec::new();
    if let Some(i) = a.info {
        if i.orientation > 1 {
            warnings.push(format!("EXIF orientation {} applied", i.orientation));
        }
        if i.shrink > 1 {
            warnings.push(format!(
                "shrink-on-load 1/{}: analysed at {}x{}",
                i.shrink, i.decoded.0, i.decoded.1
            ));
        }
    }
    let (fw, fh) = (f.width() as f64, f.height() as f64);
    let luma = Luma::from_frame(f);
    let mut out = vec![
        check("width", Some(w as f64), Some(&profile.width), None),
        check("height", Some(h as f64), Some(&profile.height), None),
        check(
            "aspect",
            Some(w as f64 / h.max(1) as f64),
            profile.aspect.as_ref(),
            None,
        ),
    ];
    // whole-image sharpness at a fixed size
    let s = SHARPNESS_SIDE as f64 / fw.max(fh);
    let sharp = luma_resampled(f, None, (fw * s).round() as u32, (fh * s).round() as u32)
        .map(|l| checks::laplacian_variance(&l))
        .ok();
    let e = checks::exposure(&luma);
    // colour: every 4th pixel is plenty for means and deviations (~190k samples at 1 MP)
    let c = checks::colour(f, 4);
    let one = (faces.len() == 1).then(|| faces[0].scaled(f.width() as f32 / w as f32));
    let need_face = || Some("needs exactly one face".to_string());
    let face_sharp = one.and_then(|face| {
        let x0 = face.x.max(0.0).floor() as u32;
        let y0 = face.y.max(0.0).floor() as u32;
        let x1 = ((face.x + face.width).ceil() as u32).min(f.width());
        let y1 = ((face.y + face.height).ceil() as u32).min(f.height());
        if x1 <= x0 + 2 || y1 <= y0 + 2 {
            return None;
        }
        let (cw, ch) = (x1 - x0, y1 - y0);
        let th = FACE_SHARPNESS_HEIGHT;
        let tw = ((cw as f64 * th as f64 / ch as f64).round() as u32).max(3);
        luma_resampled(f, Some([x0, y0, cw, ch]), tw, th)
            .map(|l| checks::laplacian_variance(&l))
            .ok()
    });
    out.push(check(
        "face_sharpness",
        face_sharp,
        profile.face_sharpness.as_ref(),
        face_sharp.is_none().then(need_face).flatten(),
    ));
    out.push(check(
        "image_sharpness",
        sharp,
        profile.image_sharpness.as_ref(),
        None,
    ));
    out.push(check(
        "highlights",
        Some(e.highlights),
        profile.highlights.as_ref(),
        None,
    ));
    out.push(check(
        "shadows",
        Some(e.shadows),
        profile.shadows.as_ref(),
        None,
    ));
    out.push(check(
        "brightness",
        Some(e.mean),
        profile.brightness.as_ref(),
        None,
    ));
    out.push(check(
        "contrast",
        Some(e.contrast),
        profile.contrast.as_ref(),
        None,
    ));
    out.push(check(
        "colourfulness",
        Some(c.colourfulness),
        profile.colourfulness.as_ref(),
        None,
    ));
    out.push(check("cast", Some(c.cast), profile.cast.as_ref(), None));
    let bg = one.and_then(|face| checks::background(&luma, &face));
    if one.is_some() && bg.is_none() {
        warnings.push("background too small to judge".into());
    }
    let bg_note = || {
        if one.is_none() {
            need_face()
        } else {
            Some("background region too small".to_string())
        }
    };
    out.push(check(
        "background_uniformity",
        bg.map(|b| b.std),
        profile.background_uniformity.as_ref(),
        bg.is_none().then(bg_note).flatten(),
    ));
    out.push(check(
        "background_brightness",
        bg.map(|b| b.mean),
        profile.background_brightness.as_ref(),
        bg.is_none().then(bg_note).flatten(),
    ));
    out.push(check(
        "faces",
        Some(faces.len() as f64),
        Some(&profile.faces),
        None,
    ));
    let face_val = |g: fn(&Face) -> f64| one.map(|face| g(&face));
    let fnote = || one.is_none().then(need_face).flatten();
    let hh = fh;
    let ww = fw;
    out.push(check(
        "face_height",
        face_val(|x| x.height as f64).map(|v| v / hh),
        profile.face_height.as_ref(),
        fnote(),
    ));
    out.push(check(
        "face_center_x",
        face_val(|x| x.center().0 as f64).map(|v| v / ww),
        profile.face_center_x.as_ref(),
        fnote(),
    ));
    out.push(check(
        "face_center_y",
        face_val(|x| x.center().1 as f64).map(|v| v / hh),
        profile.face_center_y.as_ref(),
        fnote(),
    ));
    let failed: Vec<String> = out
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.name.clone())
        .collect();
    let checks_t = t0.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let timings = StageTimes {
        decode_ms: ms(a.decode),
        preprocess_ms: ms(pre),
        detect_ms: ms(det),
        checks_ms: ms(checks_t),
        total_ms: ms(a.decode + pre + det + checks_t),
    };
    PhotoReport {
        name,
        verdict: if failed.is_empty() {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        },
        failed,
        error: None,
        profile: profile.name.clone(),
        width: w,
        height: h,
        checks: out,
        faces,
        timings,
        device: device.to_string(),
        cached: false,
        warnings,
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn s<T: Send + Sync>() {}
    s::<Arc<VerifyOutput>>();
}
