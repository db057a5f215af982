//! Photo verification: decode, search for faces, measure the subject's face (68 landmarks,
//! expression), run the checks of a [`Profile`], report.
//!
//! ```no_run
//! use veridoc::{Engine, Input};
//! use veridoc::verify::{Profile, VerifyOptions};
//!
//! let engine = Engine::builder().build()?;
//! engine.register_face_models("fixtures/models"); // detector, landmarks, expression
//! let out = engine.verify(&VerifyOptions::new(Profile::passport()), &[Input::path("photo.jpg")])?;
//! println!("{}", serde_json::to_string_pretty(&out.reports[0]).unwrap());
//! # Ok::<(), veridoc::Error>(())
//! ```
//!
//! A [`Verifier`] is verification as a client of the engine: it holds the models and the
//! profile, and per chunk of photos it
//!
//! 1. decodes each photo once, with shrink-on-load to an analysis image whose longer side
//!    is at least [`ANALYSIS_MIN_SIDE`];
//! 2. asks the scheduler where the chunk runs (one typed [`crate::Decision`] per chunk);
//! 3. runs the face search's coarse passes ([`crate::detect::Pass`]: face-api's letterbox,
//!    and a zoomed-out portrait pass) for every photo in one batch;
//! 4. runs the landmark and expression networks on the largest face of each photo;
//! 5. judges every check on the CPU ([`CHECKS`]);
//! 6. where the verdict could still be "accepted", runs the fine pass (the photo at the
//!    scale that resolves the smallest face to find) and counts its faces; elsewhere the
//!    search stops and the report says its face count is a lower bound.
//!
//! Networks and preprocessing run on the decided path (CPU or GPU, batched per stage);
//! the checks always run on the CPU over the analysis image.

pub mod annotate;
pub mod checks;
mod judge;
pub mod measure;
mod profile;
mod report;
pub mod review;
mod search;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::decode::{self, DecodeInfo};
use crate::detect::{self, Detection, Face, TinyFaceWeights, TINY_FACE_MODEL};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::frame::Frame;
use crate::geometry::Geometry;
use crate::input::Input;
use crate::landmarks::{FaceNetWeights, EXPRESSION_MODEL, LANDMARK_MODEL};
use crate::model::ModelSource;
use crate::plan::ValueLut;
use crate::scheduler::{Decision, Device, Placement, Reason};
use crate::spec::{ChannelOrder, DType, DecodeOptions, Layout, Pipeline, Shrink};
use crate::tensor::Tensor;

use checks::Luma;
pub use judge::{check_spec, CheckSpec, CHECKS};
pub use measure::{CrownSource, Pose, Rect, Subject};
pub use profile::{Profile, Range};
pub use report::{
    printable, Check, CheckStatus, ChunkDecision, PhotoReport, ReportError, StageTimes, Verdict,
    VerifyOutput, VerifySummary, REPORT_SCHEMA,
};
use report::{Stamp, SummaryBuilder};

/// The analysis image's longer side is at least this (shrink-on-load stops before going
/// under it). 960 px keeps a passport portrait's face over 300 px tall for the sharpness
/// check while a 12 MP JPEG decodes at 1/4 scale (~40 ms instead of ~150 ms at full size on
/// the dev machine).
pub const ANALYSIS_MIN_SIDE: u32 = 960;

/// Photos processed together: bounds memory (each holds ~2.5 MB of analysis image and
/// ~4 MB of detector inputs) while giving the GPU batches to amortize its submissions.
pub const VERIFY_CHUNK: usize = 32;

/// Checks that need the 68-point landmark model.
const LANDMARK_CHECKS: &[&str] = &[
    "inter_eye_distance",
    "eye_line",
    "eye_center_x",
    "head_height",
    "head_width",
    "head_inside",
    "roll",
    "yaw",
    "pitch",
    "eyes_open",
    "mouth_closed",
    "illumination_balance",
    "face_brightness",
    "face_highlights",
    "face_shadows",
    "colourfulness",
    "background_uniformity",
    "background_texture",
    "background_brightness",
];

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
    /// Search for faces with every pass even when the verdict is already decided (the
    /// report's face count is then never a lower bound). Default: false (a photo already
    /// rejected skips the fine pass).
    pub complete_search: bool,
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
            complete_search: false,
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

    /// Runs every pass of the face search on every photo (see
    /// [`VerifyOptions::complete_search`]).
    pub fn complete_search(mut self, on: bool) -> Self {
        self.complete_search = on;
        self
    }
}

/// The models a verifier runs.
#[derive(Debug)]
struct Models {
    detector: TinyFaceWeights,
    landmarks: Option<FaceNetWeights>,
    expression: Option<FaceNetWeights>,
    /// Content hash of every model's weights (part of the result cache's key).
    fingerprint: [u8; 32],
}

/// Verification over an engine: the models and the profile, loaded and checked once.
#[derive(Debug)]
pub struct Verifier<'e> {
    engine: &'e Engine,
    opts: VerifyOptions,
    models: Models,
    /// What every report carries about the profile, models and build.
    stamp: Stamp,
}

/// A decoded photo ready for the search.
struct Analysed {
    frame: Frame,
    info: Option<DecodeInfo>,
    decode: Duration,
    /// The frame's bytes, held against the engine's host budget until the chunk is done.
    _reservation: Option<crate::memory::Reservation>,
}

impl Analysed {
    fn photo_size(&self) -> (u32, u32) {
        self.info
            .map_or((self.frame.width(), self.frame.height()), |i| i.original)
    }
}

fn hash_weights(h: &mut blake3::Hasher, m: &crate::model::Model) {
    for t in &m.tensors {
        h.update(t.name.as_bytes());
        h.update(bytemuck::cast_slice(&t.data[..]));
    }
}

impl Engine {
    /// Registers TinyFaceDetector's TF.js weights manifest (the `.bin` beside it) with the
    /// model cache under [`TINY_FACE_MODEL`]. The files are read once now to record their
    /// digest (see [`crate::cache::ModelCache::register`]); the network is built on first
    /// use.
    pub fn register_face_model(&self, manifest: impl Into<std::path::PathBuf>) {
        self.models().register(
            TINY_FACE_MODEL,
            ModelSource::TfjsFiles {
                manifest: manifest.into(),
            },
        );
    }

    /// Registers face-api's 68-point landmark network (`face_landmark_68_model`, or the
    /// tiny one) under [`LANDMARK_MODEL`].
    pub fn register_landmark_model(&self, manifest: impl Into<std::path::PathBuf>) {
        self.models().register(
            LANDMARK_MODEL,
            ModelSource::TfjsFiles {
                manifest: manifest.into(),
            },
        );
    }

    /// Registers face-api's expression network under [`EXPRESSION_MODEL`].
    pub fn register_expression_model(&self, manifest: impl Into<std::path::PathBuf>) {
        self.models().register(
            EXPRESSION_MODEL,
            ModelSource::TfjsFiles {
                manifest: manifest.into(),
            },
        );
    }

    /// Registers every face-api model found in `dir` under its published file name
    /// (`tiny_face_detector_model`, `face_landmark_68_model`, `face_expression_model`);
    /// returns the names registered.
    pub fn register_face_models(&self, dir: impl AsRef<Path>) -> Vec<&'static str> {
        let dir = dir.as_ref();
        let mut done = Vec::new();
        let m = |f: &str| dir.join(format!("{f}-weights_manifest.json"));
        if m("tiny_face_detector_model").is_file() {
            self.register_face_model(m("tiny_face_detector_model"));
            done.push(TINY_FACE_MODEL);
        }
        if m("face_landmark_68_model").is_file() {
            self.register_landmark_model(m("face_landmark_68_model"));
            done.push(LANDMARK_MODEL);
        }
        if m("face_expression_model").is_file() {
            self.register_expression_model(m("face_expression_model"));
            done.push(EXPRESSION_MODEL);
        }
        done
    }

    fn model_or(&self, name: &str, register: &str) -> Result<Arc<crate::model::Model>> {
        self.models().get(name).map_err(|e| {
            Error::new(ErrorKind::Model(format!(
                "{name} unavailable ({e}); register it with Engine::{register}"
            )))
        })
    }

    /// A verifier for `opts`: loads and checks the models the profile needs.
    ///
    /// # Errors
    /// `InvalidSpec` for an invalid profile; `Model` when a model the profile needs is not
    /// registered or malformed.
    pub fn verifier(&self, opts: VerifyOptions) -> Result<Verifier<'_>> {
        opts.profile.validate()?;
        let needs_landmarks = LANDMARK_CHECKS
            .iter()
            .any(|c| opts.profile.range(c).is_some());
        let needs_expression = opts.profile.range("expression_neutral").is_some();
        Verifier::load(
            self,
            opts,
            needs_landmarks || needs_expression,
            needs_expression,
        )
    }

    /// Detects faces in each input on `placement` (`None`: the scheduler's choice) with
    /// every pass of the face search. One result per input, in order; a bad input fails
    /// alone.
    ///
    /// # Errors
    /// `Model` when the face model is not registered or malformed.
    pub fn detect_faces(
        &self,
        inputs: &[Input],
        placement: Option<Placement>,
        cfg: &detect::DetectorConfig,
    ) -> Result<Vec<Result<Detection>>> {
        let mut profile = Profile::passport();
        profile.detector = *cfg;
        let mut opts = VerifyOptions::new(profile);
        opts.placement = placement;
        let v = Verifier::load(self, opts, false, false)?;
        Ok(v.detect(inputs))
    }

    /// Verifies each input against `opts.profile`. One report per input, in order: a photo
    /// that cannot be read gets a report with verdict `error`, and the rest go on.
    ///
    /// # Errors
    /// As [`Engine::verifier`].
    pub fn verify(&self, opts: &VerifyOptions, inputs: &[Input]) -> Result<VerifyOutput> {
        Ok(self.verifier(opts.clone())?.verify(inputs))
    }

    /// [`Engine::verify`], calling `progress(done)` after each chunk of photos.
    ///
    /// # Errors
    /// As [`Engine::verifier`].
    pub fn verify_with_progress(
        &self,
        opts: &VerifyOptions,
        inputs: &[Input],
        progress: impl FnMut(usize),
    ) -> Result<VerifyOutput> {
        Ok(self
            .verifier(opts.clone())?
            .verify_with_progress(inputs, progress))
    }

    /// The face detector resident on the GPU (the model cache's GPU tier): a hit is a map
    /// lookup; a miss loads the host copy (from the disk tier or the source files) and
    /// uploads it. Use it to warm the GPU before the first batch.
    ///
    /// # Errors
    /// `Gpu` without a GPU; `Model` when the model is not registered or malformed.
    pub fn gpu_face_model(&self) -> Result<Arc<crate::gpu::GpuDetector>> {
        let gpu = self.gpu_backend().ok_or_else(|| {
            Error::from(crate::GpuError::NoAdapter("no gpu in this engine".into()))
        })?;
        self.models().get_gpu(TINY_FACE_MODEL, |m| {
            gpu.upload_detector(&TinyFaceWeights::from_model(m)?)
        })
    }
}

impl Engine {
    /// A face-crop network (`LANDMARK_MODEL` or `EXPRESSION_MODEL`) resident on the GPU,
    /// through the model cache's GPU tier as the detector.
    pub(crate) fn gpu_face_net(
        &self,
        name: &str,
        outputs: usize,
    ) -> Result<Arc<crate::gpu::GpuFaceNet>> {
        let gpu = self.gpu_backend().ok_or_else(|| {
            Error::from(crate::GpuError::NoAdapter("no gpu in this engine".into()))
        })?;
        self.models().get_gpu(name, |m| {
            gpu.upload_face_net(&FaceNetWeights::from_model(m, outputs)?)
        })
    }
}

impl<'e> Verifier<'e> {
    fn load(
        engine: &'e Engine,
        opts: VerifyOptions,
        landmarks: bool,
        expression: bool,
    ) -> Result<Verifier<'e>> {
        let det = engine.model_or(TINY_FACE_MODEL, "register_face_model")?;
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.models.v1\0");
        hash_weights(&mut h, &det);
        let detector = TinyFaceWeights::from_model(&det)?;
        let lm = if landmarks {
            let m = engine.model_or(LANDMARK_MODEL, "register_landmark_model")?;
            hash_weights(&mut h, &m);
            Some(FaceNetWeights::from_model(
                &m,
                2 * crate::landmarks::POINTS,
            )?)
        } else {
            None
        };
        let ex = if expression {
            let m = engine.model_or(EXPRESSION_MODEL, "register_expression_model")?;
            hash_weights(&mut h, &m);
            Some(FaceNetWeights::from_model(
                &m,
                crate::landmarks::EXPRESSIONS.len(),
            )?)
        } else {
            None
        };
        let fingerprint = *h.finalize().as_bytes();
        Ok(Verifier {
            engine,
            stamp: Stamp::new(&opts.profile, &fingerprint),
            opts,
            models: Models {
                detector,
                landmarks: lm,
                expression: ex,
                fingerprint,
            },
        })
    }

    /// Landmarks and expression of each of `faces` (boxes in `frame`'s pixels), on the
    /// verifier's placement (the CPU when none was requested), as verification computes
    /// them for its subject.
    ///
    /// # Errors
    /// `Model` without the landmark model; the first per-face error otherwise.
    pub fn measure_faces(
        &self,
        frame: &Frame,
        faces: &[Face],
    ) -> Result<
        Vec<(
            crate::landmarks::Landmarks,
            Option<crate::landmarks::Expression>,
        )>,
    > {
        if self.models.landmarks.is_none() {
            return Err(Error::new(ErrorKind::Model(
                "the landmark model is not loaded (profile without landmark checks?)".into(),
            )));
        }
        let frames: Vec<&Frame> = faces.iter().map(|_| frame).collect();
        let boxes: Vec<Option<Face>> = faces.iter().copied().map(Some).collect();
        let on = self.opts.placement.unwrap_or(Placement::Cpu);
        self.run_face_nets(&frames, &boxes, on)
            .results
            .into_iter()
            .map(|r| r.and_then(|o| o.ok_or_else(|| Error::invalid("face outside the image"))))
            .collect()
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.opts.profile
    }

    /// Verifies each input. One report per input, in order.
    pub fn verify(&self, inputs: &[Input]) -> VerifyOutput {
        self.verify_with_progress(inputs, |_| {})
    }

    /// [`Verifier::verify`], calling `progress(done)` after each chunk of photos.
    pub fn verify_with_progress(
        &self,
        inputs: &[Input],
        mut progress: impl FnMut(usize),
    ) -> VerifyOutput {
        let mut reports = Vec::with_capacity(inputs.len());
        let summary = self.verify_each(inputs, None, |chunk| {
            reports.extend(chunk);
            progress(reports.len());
            std::ops::ControlFlow::Continue(())
        });
        VerifyOutput { reports, summary }
    }

    /// Verifies `inputs` chunk by chunk (a few dozen photos, batched on the decided path),
    /// handing each chunk's reports, in input order, to `each` as soon as they are ready,
    /// and keeping none: memory does not grow with the number of inputs. `each` returning
    /// `Break`, or `cancel` being cancelled, stops the run after the current chunk (the
    /// summary then says `cancelled` and counts the photos verified).
    ///
    /// # Examples
    /// ```no_run
    /// # fn main() -> veridoc::Result<()> {
    /// use std::ops::ControlFlow;
    /// use veridoc::verify::{Profile, VerifyOptions};
    /// use veridoc::{Engine, Input};
    ///
    /// let engine = Engine::builder().build()?;
    /// engine.register_face_models("fixtures/models");
    /// let verifier = engine.verifier(VerifyOptions::new(Profile::passport()))?;
    /// let inputs = Input::from_paths(&["photos/".into()])?;
    /// let summary = verifier.verify_each(&inputs, None, |reports| {
    ///     for r in reports {
    ///         println!("{}", serde_json::to_string(&r).unwrap_or_default()); // JSON Lines
    ///     }
    ///     ControlFlow::Continue(())
    /// });
    /// println!("{summary}");
    /// # Ok(()) }
    /// ```
    pub fn verify_each(
        &self,
        inputs: &[Input],
        cancel: Option<&crate::CancelToken>,
        mut each: impl FnMut(Vec<PhotoReport>) -> std::ops::ControlFlow<()>,
    ) -> VerifySummary {
        let start = Instant::now();
        let mut acc = SummaryBuilder::default();
        let mut decisions = Vec::new();
        let mut done = 0usize;
        let mut cancelled = false;
        for chunk in inputs.chunks(VERIFY_CHUNK) {
            if cancel.is_some_and(crate::CancelToken::is_cancelled) {
                cancelled = true;
                break;
            }
            let (r, decision) = self.verify_chunk(chunk);
            SummaryBuilder::decision(
                &mut decisions,
                ChunkDecision {
                    first: done,
                    photos: chunk.len(),
                    decision,
                },
            );
            done += chunk.len();
            for rep in &r {
                acc.add(rep);
            }
            if each(r).is_break() {
                cancelled = done < inputs.len();
                break;
            }
        }
        acc.finish(decisions, start.elapsed(), cancelled)
    }

    /// Detects faces with every pass of the search.
    fn detect(&self, inputs: &[Input]) -> Vec<Result<Detection>> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(VERIFY_CHUNK) {
            let analysed: Vec<Result<Analysed>> = self
                .engine
                .pool()
                .install(|| chunk.par_iter().map(|i| self.analyse(i)).collect());
            let ok: Vec<&Analysed> = analysed.iter().flatten().collect();
            let frames: Vec<&Frame> = ok.iter().map(|a| &a.frame).collect();
            let decision = self.decide(&frames);
            self.engine.count_detector_photos(frames.len());
            let cfg = &self.opts.profile.detector;
            let passes: Vec<Vec<detect::PlannedPass>> = ok
                .iter()
                .map(|a| {
                    let size = (a.frame.width(), a.frame.height());
                    let mut p = detect::coarse_passes(size, cfg);
                    p.extend(detect::fine_pass(size, a.photo_size(), cfg));
                    p
                })
                .collect();
            let found = self.run_passes(&frames, &passes, decision.placement);
            let mut found = found.results.into_iter();
            for a in analysed {
                out.push(a.and_then(|a| {
                    let faces = found
                        .next()
                        .unwrap_or_else(|| Err(Error::invalid("missing detection")))?;
                    let size = a.photo_size();
                    let k = size.0 as f32 / a.frame.width().max(1) as f32;
                    Ok(Detection {
                        faces: detect::merge(faces, cfg)
                            .into_iter()
                            .map(|f| f.scaled(k))
                            .collect(),
                        size,
                    })
                }));
            }
        }
        out
    }

    /// Where a chunk runs: the requested path, or the scheduler's decision for the
    /// detector's input (a split runs on the CPU: the networks' layers are too short to
    /// split a batch across paths).
    fn decide(&self, frames: &[&Frame]) -> Decision {
        if let Some(p) = self.opts.placement {
            return Decision::fixed(p, Reason::Requested);
        }
        let mut d = self
            .engine
            .decide_frames(&detect::detector_pipeline(), frames);
        if let Placement::Split { .. } = d.placement {
            d.placement = Placement::Cpu;
        }
        d
    }

    /// Decodes with shrink-on-load down to the analysis size. The decode's peak memory is
    /// reserved against the engine's host budget before it starts (waiting for other items
    /// to release theirs); formats that cannot shrink on load are reduced to the analysis
    /// size right after decoding, so a chunk holds analysis images, never full frames.
    fn analyse(&self, input: &Input) -> Result<Analysed> {
        let t0 = Instant::now();
        let limits = self.engine.decode_limits();
        let Some(bytes) = input.read(limits.max_input_bytes)? else {
            let Input::Frame { frame, .. } = input else {
                return Err(Error::invalid("input has neither bytes nor a frame"));
            };
            return Ok(Analysed {
                frame: frame.clone(),
                info: None,
                decode: t0.elapsed(),
                _reservation: None,
            });
        };
        let host = self.engine.host_budget();
        let search = &self.opts.profile.detector.search;
        let mut reservation = None;
        let mut wanted = 1;
        // Shrink-on-load stays on here whatever the library default is: the analysis image is
        // never a user-facing tensor, and `analysis_shrink` below picks the factor itself.
        let opts = DecodeOptions {
            shrink: Shrink::Fast,
            ..DecodeOptions::default()
        };
        let d = decode::load(&bytes, &opts, limits, |h| {
            wanted = analysis_shrink(h.oriented_size(), search);
            let factor = if h.format == decode::ImageFormat::Jpeg {
                wanted
            } else {
                1
            };
            let peak = h.decode_peak(factor) + bytes.len() as u64;
            reservation = Some(host.reserve_wait(peak, crate::engine::RESERVE_TIMEOUT)?);
            Ok(wanted)
        })?;
        drop(bytes);
        let mut info = d.info;
        let frame = if info.shrink < wanted {
            let (w, h) = (
                info.original.0.div_ceil(wanted).max(1),
                info.original.1.div_ceil(wanted).max(1),
            );
            let reduced = reduce(&d.frame, w, h)?;
            info.decoded = (w, h);
            reduced
        } else {
            d.frame
        };
        if let Some(r) = reservation.as_mut() {
            r.shrink_to(frame.as_bytes().len() as u64);
        }
        Ok(Analysed {
            frame,
            info: Some(info),
            decode: t0.elapsed(),
            _reservation: reservation,
        })
    }

    /// The result cache key of a photo: its content, the profile, the models' weights, the
    /// engine version and the build fingerprint ([`crate::BUILD_ID`]: a rebuilt engine, with
    /// other check constants, never serves its predecessor's reports).
    fn report_key(&self, digest: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.verify.v3\0");
        h.update(digest);
        h.update(&self.opts.profile.stable_hash());
        h.update(&self.models.fingerprint);
        h.update(crate::VERSION.as_bytes());
        h.update(b"\0");
        h.update(crate::BUILD_ID.as_bytes());
        *h.finalize().as_bytes()
    }

    fn verify_chunk(&self, inputs: &[Input]) -> (Vec<PhotoReport>, Decision) {
        let profile = &self.opts.profile;
        let cfg = &profile.detector;
        let cache = self.engine.result_cache().filter(|_| self.opts.use_cache);
        let keys: Vec<Option<[u8; 32]>> = match cache {
            Some(c) => self.engine.pool().install(|| {
                inputs
                    .par_iter()
                    .map(|i| {
                        c.digest(i, self.engine.decode_limits().max_input_bytes)
                            .ok()
                            .map(|d| self.report_key(&d))
                    })
                    .collect()
            }),
            None => vec![None; inputs.len()],
        };
        // lookups and stores on the pool, like `Engine::run`'s (a disk entry is kernel work)
        let mut slots: Vec<Option<PhotoReport>> = match cache {
            Some(c) => self.engine.pool().install(|| {
                keys.par_iter()
                    .zip(inputs)
                    .map(|(k, input)| k.and_then(|k| cached_report(c, &k, input)))
                    .collect()
            }),
            None => vec![None; inputs.len()],
        };
        let todo: Vec<usize> = (0..inputs.len()).filter(|&i| slots[i].is_none()).collect();
        if todo.is_empty() {
            return (
                slots.into_iter().flatten().collect(),
                Decision::fixed(Placement::Cpu, Reason::AllCached),
            );
        }
        let analysed: Vec<Result<Analysed>> = self
            .engine
            .pool()
            .install(|| todo.par_iter().map(|&i| self.analyse(&inputs[i])).collect());
        let ok_idx: Vec<usize> = (0..todo.len()).filter(|&k| analysed[k].is_ok()).collect();
        let ok: Vec<&Analysed> = analysed.iter().flatten().collect();
        let frames: Vec<&Frame> = ok.iter().map(|a| &a.frame).collect();
        let mut decision = self.decide(&frames);
        self.engine.count_detector_photos(frames.len());
        let placement = decision.placement;
        let mut fell_back: Option<String> = None;

        // 1. coarse passes
        let passes: Vec<Vec<detect::PlannedPass>> = ok
            .iter()
            .map(|a| detect::coarse_passes((a.frame.width(), a.frame.height()), cfg))
            .collect();
        let coarse = self.run_passes(&frames, &passes, placement);
        fell_back = fell_back.or(coarse.fell_back.clone());
        let mut faces: Vec<Result<Vec<Face>>> = coarse
            .results
            .into_iter()
            .map(|r| r.map(|f| detect::merge(f, cfg)))
            .collect();
        // 2. landmarks and expression of the largest face
        let subject_face: Vec<Option<Face>> = faces
            .iter()
            .map(|r| {
                r.as_ref().ok().and_then(|f| {
                    f.iter()
                        .copied()
                        .max_by(|a, b| (a.width * a.height).total_cmp(&(b.width * b.height)))
                })
            })
            .collect();
        let nets_on = if fell_back.is_some() {
            Placement::Cpu
        } else {
            placement
        };
        let nets = self.run_face_nets(&frames, &subject_face, nets_on);
        fell_back = fell_back.or(nets.fell_back.clone());
        // 3. measure and judge (CPU), on the analysis image reduced to CHECKS_SIDE
        let t_judge = Instant::now();
        let looks: Vec<Look<'_>> = self
            .engine
            .pool()
            .install(|| frames.par_iter().map(|f| Look::new(f)).collect());
        let subjects: Vec<Result<Option<Subject>>> = self.engine.pool().install(|| {
            nets.results
                .par_iter()
                .enumerate()
                .map(|(k, r)| match r {
                    Err(e) => Err(e.duplicate()),
                    Ok(None) => Ok(None),
                    Ok(Some((lm, ex))) => Ok(subject_face[k].map(|face| {
                        let l = &looks[k];
                        Subject::measure(
                            face.scaled(l.scale),
                            lm.scaled(l.scale),
                            ex.clone(),
                            l.frame(),
                            &l.luma,
                        )
                    })),
                })
                .collect()
        });
        let judge_one = |k: usize, faces: &[Face], subject: Option<&Subject>| -> Vec<Check> {
            let a = ok[k];
            let l = &looks[k];
            let faces: Vec<Face> = faces.iter().map(|f| f.scaled(l.scale)).collect();
            judge::judge(
                profile,
                &judge::Evidence {
                    photo: a.photo_size(),
                    frame: l.frame(),
                    luma: &l.luma,
                    sharp: (&a.frame, 1.0 / l.scale),
                    faces: &faces,
                    subject,
                    no_subject: if self.models.landmarks.is_none() {
                        "landmark model not registered"
                    } else {
                        "needs a face"
                    },
                },
            )
        };
        let mut judged: Vec<Option<Vec<Check>>> = self.engine.pool().install(|| {
            (0..ok.len())
                .into_par_iter()
                .map(|k| match (&faces[k], &subjects[k]) {
                    (Ok(f), Ok(s)) => Some(judge_one(k, f, s.as_ref())),
                    _ => None,
                })
                .collect()
        });
        let mut judge_t: Vec<Duration> = vec![t_judge.elapsed() / ok.len().max(1) as u32; ok.len()];
        // 4. the fine pass, where the verdict could still be "accepted"
        let fine: Vec<Option<detect::PlannedPass>> = ok
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let size = (a.frame.width(), a.frame.height());
                let p = detect::fine_pass(size, a.photo_size(), cfg)?;
                if self.opts.complete_search {
                    return faces[k].is_ok().then_some(p);
                }
                let open = judged[k].as_ref().is_some_and(|checks| {
                    checks
                        .iter()
                        .all(|c| c.name == "faces" || c.status != CheckStatus::Fail)
                });
                let count_ok = faces[k]
                    .as_ref()
                    .is_ok_and(|f| profile.faces.max.is_none_or(|m| f.len() as f64 <= m));
                (open && count_ok).then_some(p)
            })
            .collect();
        let mut complete: Vec<bool> = ok
            .iter()
            .map(|a| {
                detect::fine_pass((a.frame.width(), a.frame.height()), a.photo_size(), cfg)
                    .is_none()
            })
            .collect();
        let fine_idx: Vec<usize> = (0..ok.len()).filter(|&k| fine[k].is_some()).collect();
        let mut fine_pre = vec![Duration::ZERO; ok.len()];
        let mut fine_net = vec![Duration::ZERO; ok.len()];
        if !fine_idx.is_empty() {
            let fframes: Vec<&Frame> = fine_idx.iter().map(|&k| frames[k]).collect();
            let fpasses: Vec<Vec<detect::PlannedPass>> = fine_idx
                .iter()
                .map(|&k| fine[k].iter().cloned().collect())
                .collect();
            let on = if fell_back.is_some() {
                Placement::Cpu
            } else {
                placement
            };
            let out = self.run_passes(&fframes, &fpasses, on);
            fell_back = fell_back.or(out.fell_back.clone());
            for (j, (&k, r)) in fine_idx.iter().zip(out.results).enumerate() {
                fine_pre[k] = out.preprocess[j];
                fine_net[k] = out.network[j];
                match (r, &mut faces[k]) {
                    (Ok(extra), Ok(f)) => {
                        let before = f.len();
                        let mut all = std::mem::take(f);
                        all.extend(extra);
                        *f = detect::merge(all, cfg);
                        complete[k] = !fine[k].as_ref().is_some_and(|p| p.limited);
                        if f.len() != before {
                            let t = Instant::now();
                            let s = subjects[k].as_ref().ok().and_then(|s| s.as_ref());
                            judged[k] = Some(judge_one(k, f, s));
                            judge_t[k] += t.elapsed();
                        }
                    }
                    (Err(e), slot) => *slot = Err(e),
                    (Ok(_), Err(_)) => {}
                }
            }
        }
        if let Some(error) = fell_back {
            decision = Decision::fixed(Placement::Cpu, Reason::GpuFailedFellBack { error });
        }
        let device = if decision.placement == Placement::Gpu {
            Device::Gpu
        } else {
            Device::Cpu
        };
        let look_scale: Vec<f32> = looks.iter().map(|l| l.scale).collect();
        drop(looks);
        // 5. reports
        let mut staged = analysed.into_iter();
        let mut k = 0usize;
        let mut done: Vec<(usize, PhotoReport)> = Vec::with_capacity(todo.len());
        for (j, &i) in todo.iter().enumerate() {
            let a = match staged.next() {
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    done.push((i, PhotoReport::error(&inputs[i], &self.stamp, device, &e)));
                    continue;
                }
                None => continue,
            };
            debug_assert_eq!(ok_idx.get(k), Some(&j));
            let rep = match (&faces[k], &subjects[k], judged[k].take()) {
                (Ok(f), Ok(s), Some(checks)) => {
                    let ms = |d: Duration| d.as_secs_f64() * 1e3;
                    let pre = coarse.preprocess[k] + fine_pre[k];
                    let det = coarse.network[k] + fine_net[k];
                    let lm = nets.preprocess[k] + nets.network[k];
                    let timings = StageTimes {
                        decode_ms: ms(a.decode),
                        preprocess_ms: ms(pre),
                        detect_ms: ms(det),
                        landmarks_ms: ms(lm),
                        checks_ms: ms(judge_t[k]),
                        total_ms: ms(a.decode + pre + det + lm + judge_t[k]),
                    };
                    report(
                        &inputs[i],
                        &self.stamp,
                        profile,
                        &a,
                        look_scale[k],
                        f,
                        s.as_ref(),
                        checks,
                        complete[k],
                        timings,
                        device,
                    )
                }
                (Err(e), _, _) | (_, Err(e), _) => {
                    PhotoReport::error(&inputs[i], &self.stamp, device, e)
                }
                _ => PhotoReport::error(
                    &inputs[i],
                    &self.stamp,
                    device,
                    &Error::invalid("verification lost a photo"),
                ),
            };
            k += 1;
            done.push((i, rep));
        }
        if let Some(c) = cache {
            self.engine.pool().install(|| {
                done.par_iter().for_each(|(i, rep)| {
                    if let Some(key) = keys[*i].filter(|_| rep.verdict != Verdict::Error) {
                        store_report(c, &key, rep);
                    }
                })
            });
        }
        for (i, rep) in done {
            slots[i] = Some(rep);
        }
        (slots.into_iter().flatten().collect(), decision)
    }
}

/// The JPEG shrink-on-load factor for the analysis image of a photo of `size`: the largest
/// of 8, 4, 2 that keeps the longer side at least [`ANALYSIS_MIN_SIDE`] and, when the fine
/// pass is on, the smallest face to find at least 90 % of
/// [`detect::SearchConfig::fine_face_px`] (the detector needs real detail: an upscaled
/// 30 px face is found less often than a decoded 54 px one).
pub fn analysis_shrink(size: (u32, u32), search: &detect::SearchConfig) -> u32 {
    let long = size.0.max(size.1);
    let face = detect::min_face(size, size, search);
    [8u32, 4, 2]
        .into_iter()
        .find(|&k| {
            long / k >= ANALYSIS_MIN_SIDE
                && (!search.fine || face / k as f32 >= 0.9 * search.fine_face_px)
        })
        .unwrap_or(1)
}

/// The checks run on the analysis image reduced to this longer side (they measure
/// ratios, means and spreads; a 12 MP photo's 2000 px analysis image would cost 4x for
/// the same verdict). Face sharpness reads the analysis image itself.
pub const CHECKS_SIDE: u32 = 1024;

/// The image the checks look at: the analysis image, or its reduction to
/// [`CHECKS_SIDE`], with its luma.
struct Look<'a> {
    reduced: Option<Frame>,
    original: &'a Frame,
    luma: Luma,
    /// Checks-image pixels per analysis pixel.
    scale: f32,
}

/// `f` resized to `w` x `h` with the default (antialiased) filter.
fn reduce(f: &Frame, w: u32, h: u32) -> Result<Frame> {
    let p = Pipeline::new()
        .stretch(w, h)
        .dtype(DType::U8)
        .layout(Layout::Nhwc);
    let g = Geometry::plan(f.width(), f.height(), &p)?;
    let t = crate::cpu::preprocess(f, &g, &p, &ValueLut::new(&p))?;
    let px = t
        .as_u8()
        .ok_or_else(|| Error::invalid("reduction produced no 8-bit pixels"))?
        .to_vec();
    Frame::new(w, h, px)
}

impl<'a> Look<'a> {
    fn new(f: &'a Frame) -> Look<'a> {
        let long = f.width().max(f.height());
        let reduced = if long > CHECKS_SIDE {
            let s = CHECKS_SIDE as f64 / long as f64;
            let (w, h) = (
                ((f.width() as f64 * s).round() as u32).max(1),
                ((f.height() as f64 * s).round() as u32).max(1),
            );
            reduce(f, w, h).ok()
        } else {
            None
        };
        let frame = reduced.as_ref().unwrap_or(f);
        let scale = frame.width() as f32 / f.width().max(1) as f32;
        let luma = Luma::from_frame(frame);
        Look {
            reduced,
            original: f,
            luma,
            scale,
        }
    }

    fn frame(&self) -> &Frame {
        self.reduced.as_ref().unwrap_or(self.original)
    }
}

/// Builds a photo's report from its judged checks.
#[allow(clippy::too_many_arguments)]
fn report(
    input: &Input,
    stamp: &Stamp,
    profile: &Profile,
    a: &Analysed,
    look_scale: f32,
    faces: &[Face],
    subject: Option<&Subject>,
    checks: Vec<Check>,
    complete: bool,
    timings: StageTimes,
    device: Device,
) -> PhotoReport {
    let (w, h) = a.photo_size();
    // faces are in analysis pixels, the subject in the checks image's
    let k = w as f32 / a.frame.width().max(1) as f32;
    let ks = k / look_scale;
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
    if !complete {
        warnings.push(
            "face search stopped early (verdict already decided): the face count is a lower bound"
                .into(),
        );
    }
    if let Some(s) = subject {
        if s.crown_source == CrownSource::Landmarks {
            warnings.push(
                "crown estimated from the landmarks (background too busy for an edge)".into(),
            );
        }
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.name.clone())
        .collect();
    // A check the profile asks for that could not be measured never lets a photo pass.
    let unmeasured = checks
        .iter()
        .any(|c| c.status == CheckStatus::Skipped && profile.range(&c.name).is_some());
    PhotoReport {
        schema_version: REPORT_SCHEMA,
        engine_version: crate::VERSION.to_string(),
        build_id: crate::BUILD_ID.to_string(),
        name: input.name(),
        path: report::absolute_path(input),
        verdict: if failed.is_empty() && !unmeasured {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        },
        failed,
        error: None,
        profile: stamp.profile.clone(),
        profile_hash: stamp.profile_hash.clone(),
        models_hash: stamp.models_hash.clone(),
        pipeline_hash: stamp.pipeline_hash.clone(),
        width: w,
        height: h,
        checks,
        faces: faces.iter().map(|f| f.scaled(k)).collect(),
        faces_complete: complete,
        subject: subject.map(|s| s.scaled(ks)),
        timings,
        device,
        cached: false,
        warnings,
    }
}

/// Reports live in the result cache's tiers as their JSON bytes (a u8 tensor), so they
/// share its budget, TTL, integrity checks and wipe. A hit carries the requesting input's
/// name (duplicate content under another name is the same report).
fn cached_report(
    c: &crate::cache::ResultCache,
    key: &[u8; 32],
    input: &Input,
) -> Option<PhotoReport> {
    let t = c.get(key)?;
    let mut r: PhotoReport = serde_json::from_slice(t.as_u8()?).ok()?;
    if r.schema_version != REPORT_SCHEMA {
        return None;
    }
    r.cached = true;
    r.name = input.name();
    r.path = report::absolute_path(input);
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

#[allow(dead_code)]
fn _assert_send_sync() {
    fn s<T: Send + Sync>() {}
    s::<Arc<VerifyOutput>>();
    s::<Verifier<'static>>();
}
