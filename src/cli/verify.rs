//! `veridoc verify`: photos against a profile, results streamed as they are ready.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::engine::{EngineArgs, MemoryTier};
use super::inputs::InputArgs;
use super::io::{cell, create_file, writable_dir, Lines, Sink};
use super::shard::{read_manifest, Identity, Shard, ShardOut};
use super::{assets_dir, exit, models_dir, Fatal, Signals};
use crate::verify::review::ReviewPage;
use crate::verify::{PhotoReport, Profile, Verdict, VerifyOptions};
use crate::{Engine, Input};

/// When the exit status says something went wrong.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailOn {
    /// Exit 3 when some photos could not be processed (the default).
    Error,
    /// Also exit 1 when some photos were rejected (and none failed).
    Rejected,
    /// Exit 0 whenever the run completed.
    Never,
}

/// Width of the photo column of the table.
const NAME_COLUMN: usize = 40;

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// A built-in profile name (`veridoc profile print` lists them) or a profile file
    /// (.toml or .json; a path needs a separator or an extension).
    #[arg(long, value_name = "NAME|FILE", default_value = "passport")]
    profile: String,
    /// Which outcomes give a non-zero exit status.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// Write each report as one JSON line as soon as it is ready, then a last line
    /// `{"summary": ...}` (`-`: standard output; the table then goes to standard error).
    #[arg(long, value_name = "FILE|-")]
    jsonl: Option<PathBuf>,
    /// Write `{"reports": [...], "summary": {...}}` (streamed too: valid after an
    /// interruption).
    #[arg(long, value_name = "FILE|-")]
    json: Option<PathBuf>,
    /// Write one self-contained HTML review page: a thumbnail of each photo with its face
    /// boxes, landmarks and background regions drawn, every failed check with its value and
    /// range, filters by verdict and by check.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write each photo with what verification saw drawn on it as DIR/<name>.jpg.
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    /// Folder of face-api's models (TinyFaceDetector, 68 landmarks, expression).
    /// Default: $VERIDOC_MODELS, else the fetched fixtures/models.
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// No table of photos: only the summary (and the JSON outputs).
    #[arg(short, long)]
    quiet: bool,
    /// After the run, verify each photo alone this many more times (cache off) and print
    /// the median and p90 single-photo latency.
    #[arg(long, default_value_t = 0, value_name = "N")]
    repeat: usize,
    /// Shard mode: a manifest of photo paths, one per line (`#` comments and blank lines
    /// ignored); needs --shard and --out.
    #[arg(long, value_name = "FILE", requires_all = ["shard", "out"], conflicts_with_all = ["inputs", "files_from"])]
    manifest: Option<PathBuf>,
    /// Shard mode: verify slice I of N of the manifest (0-based I, e.g.
    /// `$JOB_COMPLETION_INDEX/8`), streaming its reports to OUT/part-I-of-N.jsonl with a
    /// done marker; a finished index exits 0 at once, an interrupted one resumes.
    #[arg(long, value_name = "I/N", requires = "manifest")]
    shard: Option<Shard>,
    /// Shard mode: the output directory shared by every shard.
    #[arg(long, value_name = "DIR", requires = "manifest")]
    out: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    input: InputArgs,
}

/// Everything a chunk of reports is written to.
struct Outputs {
    lines: Lines,
    jsonl: Option<Sink>,
    json: Option<Sink>,
    json_items: usize,
    html: Option<(PathBuf, ReviewPage<BufWriter<File>>)>,
    shard: Option<ShardOut<PhotoReport>>,
    annotate: Option<PathBuf>,
    annotated: usize,
    names: HashSet<String>,
    quiet: bool,
}

impl Outputs {
    /// Writes one report everywhere it goes.
    fn report(&mut self, r: &PhotoReport, input: &Input) -> Result<(), Fatal> {
        if let Some(s) = &mut self.shard {
            s.record(r)?;
        }
        if let Some(s) = &mut self.jsonl {
            s.record(r)?;
        }
        if let Some(s) = &mut self.json {
            if self.json_items > 0 {
                s.write(b",\n")?;
            }
            let v = serde_json::to_vec(r)?;
            s.write(&v)?;
            self.json_items += 1;
        }
        // one decode serves both drawings: the annotated copy's size, which the review
        // page's thumbnail scales down from
        let drawn = r.verdict != Verdict::Error && (self.html.is_some() || self.annotate.is_some());
        let photo = drawn.then(|| {
            let side = if self.annotate.is_some() {
                ANNOTATE_SIDE
            } else {
                crate::verify::review::THUMBNAIL_SIDE
            };
            decode_reduced(input, side)
        });
        if let Some((path, page)) = &mut self.html {
            // a photo that cannot be re-read gets a card without a thumbnail
            let thumb = photo.as_ref().and_then(|p| p.as_ref().ok());
            page.add(r, thumb)
                .map_err(|e| Fatal(format!("--html {}: {e}", path.display())))?;
        }
        if let (Some(dir), Some(frame)) = (&self.annotate, photo) {
            let frame = frame.map_err(|e| Fatal(e.to_string()))?;
            annotate_one(dir, &frame, r, &mut self.names)?;
            self.annotated += 1;
        }
        if !self.quiet {
            self.lines.line(&row(r));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Fatal> {
        for s in [&mut self.jsonl, &mut self.json].into_iter().flatten() {
            s.flush()?;
        }
        if let Some(s) = &mut self.shard {
            s.commit()?;
        }
        Ok(())
    }

    /// The reader of a stream went away (`| head`): stop quietly.
    fn closed(&self) -> bool {
        self.lines.closed()
            || [&self.jsonl, &self.json]
                .into_iter()
                .flatten()
                .any(Sink::closed)
    }
}

fn header() -> String {
    format!(
        "{:<w$} {:<9} {:>5} {:>9} {:>8}  failed checks / error",
        "photo",
        "verdict",
        "faces",
        "size",
        "ms",
        w = NAME_COLUMN
    )
}

fn row(r: &PhotoReport) -> String {
    let what = match (&r.verdict, &r.error) {
        (Verdict::Error, Some(e)) => crate::verify::printable(&e.message).into_owned(),
        _ => r.failed.join(", "),
    };
    let verdict = match r.verdict {
        Verdict::Accepted => "accepted",
        Verdict::Rejected => "rejected",
        Verdict::Error => "error",
    };
    let ms = if r.cached {
        "cached".to_string()
    } else {
        format!("{:.1}", r.timings.total_ms)
    };
    format!(
        "{:<w$} {:<9} {:>5} {:>9} {:>8}  {}",
        cell(&r.name, NAME_COLUMN),
        verdict,
        r.faces.len(),
        format!("{}x{}", r.width, r.height),
        ms,
        what,
        w = NAME_COLUMN
    )
}

pub(super) fn run(a: Args, sig: &Signals) -> Result<u8, Fatal> {
    let profile = Profile::resolve(&a.profile)?;
    // Shard mode: done already? (before loading anything)
    let mut shard = None;
    if let (Some(m), Some(sh), Some(dir)) = (&a.manifest, a.shard, &a.out) {
        let (rows, manifest_hash) = read_manifest(m)?;
        let who = Identity {
            manifest_hash,
            spec: vec![
                ("profile", profile.name.clone()),
                ("profile_hash", profile.hash_hex()),
            ],
        };
        let Some(out) = ShardOut::<PhotoReport>::start(dir, sh, rows.len(), &who)? else {
            return Ok(exit::OK);
        };
        let todo: Vec<PathBuf> = rows[out.todo()].to_vec();
        shard = Some((out, who, todo));
    }
    // Outputs are opened before any work: an unwritable path fails now.
    let stdout_sinks = [&a.jsonl, &a.json]
        .into_iter()
        .flatten()
        .filter(|p| p.as_path() == Path::new("-"))
        .count();
    if stdout_sinks > 1 {
        return Err(Fatal("only one of --jsonl and --json can be `-`".into()));
    }
    let jsonl = a
        .jsonl
        .as_deref()
        .map(|p| Sink::create("--jsonl", p))
        .transpose()?;
    let mut json = a
        .json
        .as_deref()
        .map(|p| Sink::create("--json", p))
        .transpose()?;
    if let Some(d) = &a.annotate {
        writable_dir("--annotate", d)?;
    }
    let html = match &a.html {
        Some(p) => {
            let f = create_file("--html", p)?;
            let title = format!("veridoc review: profile {}", profile.name);
            let page = ReviewPage::new(BufWriter::new(f), &title)
                .map_err(|e| Fatal(format!("--html {}: {e}", p.display())))?;
            Some((p.clone(), page))
        }
        None => None,
    };
    let to_stdout = [&jsonl, &json].into_iter().flatten().any(Sink::to_stdout);
    let engine = a.engine.build(MemoryTier::WithDir)?;
    let assets = assets_dir();
    let models = models_dir(a.models.clone());
    if engine.register_face_models(&models).is_empty() {
        return Err(Fatal(format!(
            "no face models in {} (run scripts/fetch-assets.sh, or pass --models)",
            models.display()
        )));
    }
    let sel = match &mut shard {
        // the manifest's rows, as they are: one input each
        Some((_, _, todo)) => super::inputs::Selection {
            inputs: std::mem::take(todo).into_iter().map(Input::Path).collect(),
            ..Default::default()
        },
        None => {
            let mut select = a.input.clone();
            if select.is_empty() {
                // the sample photos and the corpus's sample passport photos (fetched by setup)
                let dir = assets.join("photos");
                if !dir.is_dir() {
                    return Err(Fatal(format!(
                        "no inputs, and no sample photos in {} (run scripts/fetch-assets.sh)",
                        dir.display()
                    )));
                }
                select.inputs.push(dir);
                let samples = assets.join("corpus/samples");
                if samples.is_dir() {
                    select.inputs.push(samples);
                }
            }
            let sel = select.select()?;
            if let Some(n) = sel.note() {
                eprintln!("note: {n}");
            }
            if sel.inputs.is_empty() {
                return Err(Fatal("no photos to verify".into()));
            }
            sel
        }
    };
    let inputs = sel.inputs;
    let mut opts = VerifyOptions::new(profile).use_cache(!a.engine.no_cache);
    opts.placement = a.engine.placement();
    let verifier = engine.verifier(opts.clone())?;

    let bar = (std::io::stderr().is_terminal() && !a.quiet).then(|| {
        let b = ProgressBar::new(inputs.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(s) = &mut json {
        s.write(b"{\"reports\": [\n")?;
    }
    let (shard_out, who) = match shard {
        Some((o, w, _)) => (Some(o), Some(w)),
        None => (None, None),
    };
    let mut out = Outputs {
        lines: if to_stdout {
            Lines::stderr()
        } else {
            Lines::stdout()
        },
        jsonl,
        json,
        json_items: 0,
        html,
        shard: shard_out,
        annotate: a.annotate.clone(),
        annotated: 0,
        names: HashSet::new(),
        quiet: a.quiet,
    };
    if !a.quiet {
        out.lines.line(&header());
    }
    let t0 = Instant::now();
    let mut failure: Option<Fatal> = None;
    let mut done = 0usize;
    let summary = verifier.verify_each(&inputs, Some(&sig.cancel), |chunk| {
        let n = chunk.len();
        let written = chunk
            .iter()
            .enumerate()
            .try_for_each(|(k, r)| {
                let input = &inputs[done + k];
                match &bar {
                    Some(b) => b.suspend(|| out.report(r, input)),
                    None => out.report(r, input),
                }
            })
            .and_then(|()| out.flush());
        done += n;
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
        if let Err(e) = written {
            failure = Some(e);
            return ControlFlow::Break(());
        }
        if out.closed() || sig.interrupted() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(s) = &mut out.jsonl {
        s.record(&serde_json::json!({ "summary": &summary }))?;
        s.flush()?;
    }
    if let Some(s) = &mut out.json {
        s.write(b"\n],\n\"summary\": ")?;
        let v = serde_json::to_vec(&summary)?;
        s.write(&v)?;
        s.write(b"}\n")?;
        s.flush()?;
    }
    if let Some((path, page)) = out.html.take() {
        let named = |e: std::io::Error| Fatal(format!("--html {}: {e}", path.display()));
        page.finish().map_err(named)?.flush().map_err(named)?;
        if !out.closed() {
            out.lines
                .line(&format!("review page written to {}", path.display()));
        }
    }
    if !out.closed() {
        out.lines.line("");
        for l in summary.to_string().lines() {
            out.lines.line(l);
        }
        out.lines
            .line(&format!("total {:.2} s", t0.elapsed().as_secs_f64()));
        if let Some(dir) = &out.annotate {
            out.lines.line(&format!(
                "{} annotated photos written to {}",
                out.annotated,
                dir.display()
            ));
        }
        if let Some(p) = &a.json {
            out.lines
                .line(&format!("reports written to {}", p.display()));
        }
    }
    if let Some(e) = out.lines.take_error() {
        return Err(Fatal(format!("writing the table: {e}")));
    }
    if sig.interrupted() {
        eprintln!(
            "veridoc: interrupted after {} of {} photos; outputs flushed",
            summary.photos,
            inputs.len()
        );
        return Ok(sig.code());
    }
    let (mut errors, mut rejected) = (summary.errors, summary.rejected);
    if let (Some(part), Some(who)) = (out.shard.take(), &who) {
        if !out.closed() {
            // the whole slice is verified: seal it (its counts include a resumed start)
            let m = part.finish(who)?;
            eprintln!(
                "veridoc: shard {} done: {} in {}",
                m.shard,
                m.counts::<PhotoReport>(),
                a.out
                    .as_deref()
                    .unwrap_or(Path::new("."))
                    .join(&m.part)
                    .display()
            );
            (errors, rejected) = (m.count("errors"), m.count("rejected"));
        }
    }
    if a.repeat > 0 && !out.closed() {
        latency(&engine, &opts, &inputs, a.repeat, &mut out.lines)?;
    }
    Ok(status(errors, rejected, a.fail_on))
}

/// The exit status of a finished (or quietly stopped) run.
fn status(errors: usize, rejected: usize, fail_on: FailOn) -> u8 {
    match fail_on {
        FailOn::Never => exit::OK,
        _ if errors > 0 => exit::ITEM_ERRORS,
        FailOn::Rejected if rejected > 0 => exit::REJECTED,
        _ => exit::OK,
    }
}

/// `--repeat`: single-photo latency, warm, cache off.
fn latency(
    engine: &Engine,
    opts: &VerifyOptions,
    inputs: &[Input],
    repeat: usize,
    lines: &mut Lines,
) -> Result<(), Fatal> {
    let once = engine.verifier(opts.clone().use_cache(false))?;
    let mut ms = Vec::new();
    let mut stages = Vec::new();
    for _ in 0..repeat {
        for i in inputs {
            let t = Instant::now();
            let out = once.verify(std::slice::from_ref(i));
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            stages.push(out.summary.median);
        }
    }
    let stage = |f: fn(&crate::verify::StageTimes) -> f64| {
        quantile(&stages.iter().map(f).collect::<Vec<_>>(), 0.5)
    };
    lines.line(&format!(
        "single-photo latency over {} runs: median {:.1} ms, p90 {:.1} ms, min {:.1} ms \
         (median stages: decode {:.1}, preprocess {:.1}, detect {:.1}, landmarks {:.1}, checks {:.1} ms)",
        ms.len(),
        quantile(&ms, 0.5),
        quantile(&ms, 0.9),
        quantile(&ms, 0.0),
        stage(|s| s.decode_ms),
        stage(|s| s.preprocess_ms),
        stage(|s| s.detect_ms),
        stage(|s| s.landmarks_ms),
        stage(|s| s.checks_ms)
    ));
    Ok(())
}

/// The `q` quantile of `values`, interpolated linearly between order statistics as NumPy's
/// default does (the method of veridoc-bench's `Summary`); NaN when empty.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        }
    }
}

/// Longer side of the annotated copies (the photo is decoded at a reduced scale).
const ANNOTATE_SIDE: u32 = 1200;

/// The photo decoded at the smallest JPEG scale that keeps its longer side at least
/// `side` (reports are in full-resolution pixels; drawing scales them).
fn decode_reduced(input: &Input, side: u32) -> Result<crate::Frame, crate::Error> {
    match input {
        Input::Frame { frame, .. } => Ok(frame.clone()),
        _ => {
            let bytes = input
                .read(crate::DecodeLimits::default().max_input_bytes)?
                .unwrap_or_else(|| std::sync::Arc::from(Vec::new()));
            crate::decode::load_covering(&bytes, side)
        }
    }
}

/// Writes an annotated copy of one verified photo into `dir` (names made unique).
fn annotate_one(
    dir: &Path,
    frame: &crate::Frame,
    r: &PhotoReport,
    used: &mut HashSet<String>,
) -> Result<(), Fatal> {
    let img = crate::verify::annotate::annotate(frame, r);
    let stem = Path::new(&r.name)
        .file_stem()
        .map_or_else(|| "photo".to_string(), |s| s.to_string_lossy().into_owned());
    let mut name = format!("{stem}.jpg");
    let mut k = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}_{k}.jpg");
        k += 1;
    }
    let path = dir.join(name);
    let bytes = img.encode_jpeg(90)?;
    std::fs::write(&path, bytes).map_err(|e| Fatal(format!("{}: {e}", path.display())))
}
