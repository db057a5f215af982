//! `veridoc preprocess`: images into model-ready tensors, one `.npy` per image or one
//! stacked batch, with a manifest that maps every input to its output and status.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::ImageEncoder;
use indicatif::{ProgressBar, ProgressStyle};

use super::engine::{EngineArgs, MemoryTier};
use super::inputs::InputArgs;
use super::io::{create_file, csv_field, writable_dir, Lines};
use super::shard::Shard;
use super::{exit, Fatal, Signals};
use crate::verify::printable;
use crate::{
    Anchor, DType, Filter, Frame, Input, Layout, Pipeline, Resize, Shrink, StreamOptions, Tensor,
    IMAGENET_MEAN, IMAGENET_STD,
};

/// `--mode`.
mod shard;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Letterbox: the whole image, scaled to fit, padded.
    Fit,
    /// Cover and centre-crop.
    Fill,
    /// Both axes scaled independently.
    Stretch,
    /// The shorter side scaled to the size (output sizes vary: no `--stack`).
    ShorterSide,
}

/// `--filter`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum FilterArg {
    /// Point sampling.
    Nearest,
    /// Area average.
    Box,
    /// Triangle (antialiased on downscale).
    Bilinear,
    /// Catmull-Rom cubic (Pillow's BICUBIC).
    Bicubic,
    /// Lanczos, support 3.
    Lanczos3,
}

/// `--layout`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LayoutArg {
    /// Channels, height, width (PyTorch).
    Nchw,
    /// Height, width, channels (TensorFlow).
    Nhwc,
}

/// `--shrink`: [`Shrink`]'s modes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ShrinkArg {
    /// Full-resolution decode, then the filter: within 1 level of Pillow's resize.
    Exact,
    /// JPEG DCT-scaled decode to at least twice the target (Pillow's thumbnail): <= 3 levels.
    Balanced,
    /// JPEG DCT-scaled decode to the smallest scale covering the target (Pillow's draft).
    Fast,
}

/// `--dtype`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum DTypeArg {
    /// 32-bit float, normalized.
    F32,
    /// 16-bit float, normalized.
    F16,
    /// 8-bit unsigned, never normalized.
    U8,
}

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Output size WxH (or S for S x S).
    #[arg(long, default_value = "640x640", value_name = "WxH")]
    size: String,
    /// How the image is fitted to the size.
    #[arg(long, value_enum, default_value_t = Mode::Fit)]
    mode: Mode,
    /// Resampling filter.
    #[arg(long, value_enum, default_value_t = FilterArg::Bilinear)]
    filter: FilterArg,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = LayoutArg::Nchw)]
    layout: LayoutArg,
    /// Output element type.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,
    /// Per-channel mean in [0,1] units, R,G,B. Default: ImageNet's.
    #[arg(long, value_name = "R,G,B")]
    mean: Option<String>,
    /// Per-channel std in [0,1] units, R,G,B. Default: ImageNet's.
    #[arg(long, value_name = "R,G,B")]
    std: Option<String>,
    /// JPEG shrink-on-load: exact (full-resolution decode), balanced (decode to at least 2x
    /// the target, then filter) or fast (smallest DCT scale covering the target).
    #[arg(long, value_enum, default_value_t = ShrinkArg::Exact)]
    shrink: ShrinkArg,
    /// Deprecated: the default now; same as `--shrink exact`.
    #[arg(long, hide = true, conflicts_with = "shrink")]
    exact: bool,
    /// Output directory (created; in shard mode, shared by every shard).
    #[arg(long, default_value = "out/preprocess", value_name = "DIR")]
    out: PathBuf,
    /// Shard mode: a manifest of image paths, one per line (`#` comments and blank lines
    /// ignored); needs --shard.
    #[arg(long, value_name = "FILE", requires = "shard", conflicts_with_all = ["inputs", "files_from", "stack"])]
    manifest: Option<PathBuf>,
    /// Shard mode: preprocess slice I of N of the manifest (0-based I, e.g.
    /// `$JOB_COMPLETION_INDEX/8`) into OUT/tensors/<row>.npy, one line per row in
    /// OUT/part-I-of-N.jsonl, and a done marker; a finished index exits 0 at once, an
    /// interrupted one resumes.
    #[arg(long, value_name = "I/N", requires = "manifest")]
    shard: Option<Shard>,
    /// One stacked `batch.npy` of shape (N, ...) instead of one file per input; a failed
    /// input's row is zeros (the manifest says which).
    #[arg(long)]
    stack: bool,
    /// Items per batch. Default: planned from the budget.
    #[arg(long)]
    batch: Option<usize>,
    /// Exit 0 even when some items failed (the manifest still says which).
    #[arg(long)]
    keep_going: bool,
    /// No line per item: only the total.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    input: InputArgs,
}

fn parse_triplet(s: &str, what: &str) -> Result<[f32; 3], Fatal> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| Fatal(format!("--{what} {s:?}: {e}")))?;
    <[f32; 3]>::try_from(v)
        .map_err(|_| Fatal(format!("--{what} needs three comma-separated values")))
}

fn pipeline(a: &Args) -> Result<Pipeline, Fatal> {
    let bad = |e: std::num::ParseIntError| Fatal(format!("--size {}: {e}", a.size));
    let (w, h) = match a.size.split_once(['x', 'X']) {
        Some((w, h)) => (
            w.parse::<u32>().map_err(bad)?,
            h.parse::<u32>().map_err(bad)?,
        ),
        None => {
            let s = a.size.parse::<u32>().map_err(bad)?;
            (s, s)
        }
    };
    let resize = match a.mode {
        Mode::Fit => Resize::Fit {
            width: w,
            height: h,
            anchor: Anchor::Center,
            pad: [0, 0, 0],
        },
        Mode::Fill => Resize::Fill {
            width: w,
            height: h,
        },
        Mode::Stretch => Resize::Stretch {
            width: w,
            height: h,
        },
        Mode::ShorterSide => Resize::ShorterSide {
            size: w.min(h),
            max_size: None,
        },
    };
    let filter = match a.filter {
        FilterArg::Nearest => Filter::Nearest,
        FilterArg::Box => Filter::Box,
        FilterArg::Bilinear => Filter::Bilinear,
        FilterArg::Bicubic => Filter::Bicubic,
        FilterArg::Lanczos3 => Filter::Lanczos3,
    };
    let layout = match a.layout {
        LayoutArg::Nchw => Layout::Nchw,
        LayoutArg::Nhwc => Layout::Nhwc,
    };
    let dtype = match a.dtype {
        DTypeArg::F32 => DType::F32,
        DTypeArg::F16 => DType::F16,
        DTypeArg::U8 => DType::U8,
    };
    let mut p = Pipeline::new()
        .resize(resize)
        .filter(filter)
        .layout(layout)
        .shrink(match a.shrink {
            _ if a.exact => Shrink::Exact,
            ShrinkArg::Exact => Shrink::Exact,
            ShrinkArg::Balanced => Shrink::Balanced,
            ShrinkArg::Fast => Shrink::Fast,
        });
    if dtype != DType::U8 || a.mean.is_some() || a.std.is_some() {
        let mean = match &a.mean {
            Some(s) => parse_triplet(s, "mean")?,
            None => IMAGENET_MEAN,
        };
        let std = match &a.std {
            Some(s) => parse_triplet(s, "std")?,
            None => IMAGENET_STD,
        };
        p = p.normalize(mean, std);
    }
    p = p.dtype(dtype);
    p.validate()?;
    Ok(p)
}

/// The built-in default set: generated JPEGs and PNGs of several sizes and aspect ratios.
fn default_inputs() -> Vec<Input> {
    let sizes = [
        (1600, 1200),
        (1200, 1600),
        (800, 800),
        (4032, 3024),
        (333, 517),
        (64, 48),
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let f = Frame::synthetic(w, h, i as u32 + 1);
            let mut bytes = Vec::new();
            let name = if i % 2 == 0 {
                f.encode_jpeg(90)
                    .map(|b| {
                        bytes = b;
                        format!("generated_{i}_{w}x{h}.jpg")
                    })
                    .map_err(|e| e.to_string())
            } else {
                image::codecs::png::PngEncoder::new(&mut bytes)
                    .write_image(f.as_bytes(), w, h, image::ExtendedColorType::Rgb8)
                    .map(|_| format!("generated_{i}_{w}x{h}.png"))
                    .map_err(|e| e.to_string())
            };
            Input::bytes(
                name.unwrap_or_else(|e| format!("generated_{i}: {e}")),
                bytes,
            )
        })
        .collect()
}

/// `--stack`: one `.npy` of `n` rows written in input order; its header is written first
/// (the shape is known from the pipeline), failed rows are zeros.
struct Stacked {
    path: PathBuf,
    w: BufWriter<File>,
    row_bytes: u64,
    rows: usize,
    shape: Vec<usize>,
}

impl Stacked {
    fn create(path: PathBuf, p: &Pipeline, n: usize) -> Result<Stacked, Fatal> {
        if matches!(p.resize, Some(Resize::ShorterSide { .. })) {
            return Err(Fatal(
                "--stack needs one output size: use --mode fit, fill or stretch".into(),
            ));
        }
        // fit, fill and stretch give the same output size for every source size
        let g = crate::geometry::Geometry::plan(1024, 1024, p)?;
        let (w, h) = (g.out.0 as usize, g.out.1 as usize);
        let c = p.out_channels();
        let item = match p.layout {
            Layout::Nchw => vec![c, h, w],
            Layout::Nhwc => vec![h, w, c],
        };
        let row_bytes = (c * h * w * p.dtype.size()) as u64;
        let mut shape = vec![n];
        shape.extend(&item);
        let f = create_file("--out", &path)?;
        let mut w = BufWriter::new(f);
        // the header of the final shape first: the rows follow it in input order
        w.write_all(&npy_header(p.dtype, &shape))
            .map_err(|e| Fatal(format!("{}: {e}", path.display())))?;
        Ok(Stacked {
            path,
            w,
            row_bytes,
            rows: 0,
            shape,
        })
    }

    /// Row `self.rows`: the tensor's bytes, or zeros.
    fn row(&mut self, t: Option<&Tensor>) -> Result<(), Fatal> {
        let named = |e: std::io::Error| Fatal(format!("{}: {e}", self.path.display()));
        match t {
            Some(t) if t.as_bytes().len() as u64 == self.row_bytes => {
                self.w.write_all(t.as_bytes()).map_err(named)?;
            }
            Some(t) => {
                return Err(Fatal(format!(
                    "{}: row {} has shape {:?}, the batch {:?}",
                    self.path.display(),
                    self.rows,
                    t.shape(),
                    &self.shape[1..]
                )))
            }
            None => {
                std::io::copy(&mut std::io::repeat(0).take(self.row_bytes), &mut self.w)
                    .map_err(named)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Pads the rows never reached (an interrupted run) with zeros and flushes.
    fn finish(mut self) -> Result<(), Fatal> {
        let named = |e: std::io::Error| Fatal(format!("{}: {e}", self.path.display()));
        self.w.flush().map_err(named)?;
        let mut f = self.w.into_inner().map_err(|e| named(e.into_error()))?;
        let end = f.seek(SeekFrom::End(0)).map_err(named)?;
        let missing = (self.shape[0] - self.rows) as u64 * self.row_bytes;
        f.set_len(end + missing).map_err(named)?;
        f.sync_data().map_err(named)
    }
}

/// A NumPy format 1.0 header for a C-order array of `dtype` and `shape`.
fn npy_header(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let descr = match dtype {
        DType::U8 => "|u1",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
    };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out
}

/// The manifest: one CSV row per input, in input order.
struct Manifest {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Manifest {
    const HEADER: &'static str = "index,input,path,status,output,row,shape,dtype,error_code,error";

    fn create(path: PathBuf) -> Result<Manifest, Fatal> {
        let mut w = BufWriter::new(create_file("--out", &path)?);
        writeln!(w, "{}", Self::HEADER).map_err(|e| Fatal(format!("{}: {e}", path.display())))?;
        Ok(Manifest { path, w })
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        index: usize,
        input: &str,
        path: Option<&Path>,
        status: &str,
        output: Option<&Path>,
        row: Option<usize>,
        tensor: Option<&Tensor>,
        error: Option<&crate::Error>,
    ) -> Result<(), Fatal> {
        let fields = [
            index.to_string(),
            csv_field(input),
            csv_field(&path.map(|p| p.display().to_string()).unwrap_or_default()),
            status.to_string(),
            csv_field(&output.map(|p| p.display().to_string()).unwrap_or_default()),
            row.map(|r| r.to_string()).unwrap_or_default(),
            tensor
                .map(|t| {
                    t.shape()
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("x")
                })
                .unwrap_or_default(),
            tensor
                .map(|t| t.dtype().name().to_string())
                .unwrap_or_default(),
            error.map(|e| e.code().to_string()).unwrap_or_default(),
            csv_field(&error.map(|e| e.to_string()).unwrap_or_default()),
        ];
        writeln!(self.w, "{}", fields.join(","))
            .map_err(|e| Fatal(format!("{}: {e}", self.path.display())))
    }

    fn flush(&mut self) -> Result<(), Fatal> {
        self.w
            .flush()
            .map_err(|e| Fatal(format!("{}: {e}", self.path.display())))
    }
}

pub(super) fn run(a: Args, sig: &Signals) -> Result<u8, Fatal> {
    let p = pipeline(&a)?;
    if let (Some(m), Some(sh)) = (&a.manifest, a.shard) {
        return shard::run(&a, &p, m, sh, sig);
    }
    let sel = if a.input.is_empty() {
        eprintln!("note: no inputs given: processing the built-in generated set");
        super::inputs::Selection {
            inputs: default_inputs(),
            ..Default::default()
        }
    } else {
        a.input.select()?
    };
    if let Some(n) = sel.note() {
        eprintln!("note: {n}");
    }
    let inputs = sel.inputs;
    if inputs.is_empty() {
        return Err(Fatal("no images to preprocess".into()));
    }
    // Every output is created before any work.
    writable_dir("--out", &a.out)?;
    let mut manifest = Manifest::create(a.out.join("manifest.csv"))?;
    let mut stacked = if a.stack {
        Some(Stacked::create(a.out.join("batch.npy"), &p, inputs.len())?)
    } else {
        None
    };
    let engine = a.engine.build(MemoryTier::WithDir)?;
    let mut lines = Lines::stdout();
    if let Some(gpu) = engine.gpu_info() {
        lines.line(&format!("gpu: {gpu}"));
    }
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let paths: Vec<Option<PathBuf>> = inputs
        .iter()
        .map(|i| match i {
            Input::Path(p) => Some(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            _ => None,
        })
        .collect();
    let stems: Vec<String> = inputs.iter().map(Input::stem).collect();
    let total = inputs.len();
    let bar = (std::io::stderr().is_terminal() && !a.quiet).then(|| {
        let b = ProgressBar::new(total as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut opts = StreamOptions::new()
        .cancel(sig.cancel.clone())
        .ordered(true);
    if let Some(n) = a.batch {
        opts = opts.batch_size(n);
    }
    if let Some(b) = bar.clone() {
        opts = opts.on_progress(move |p| {
            b.set_position(p.done as u64);
            b.set_message(format!("{} failed", p.failed));
        });
    }
    let mut used = HashSet::new();
    let (mut ok, mut failed, mut written) = (0usize, 0usize, 0usize);
    let mut next = 0usize;
    let mut fatal: Option<Fatal> = None;
    let t0 = Instant::now();
    let summary = engine.stream(&p, inputs, opts, |it| {
        if fatal.is_some() {
            return;
        }
        let i = it.index;
        let item = it.item;
        let mut step = || -> Result<(), Fatal> {
            // rows are in input order (ordered stream); a gap would be a bug
            if i != next {
                return Err(Fatal(format!("item {i} arrived before item {next}")));
            }
            next += 1;
            let path = paths[i].as_deref();
            match &item.result {
                Ok(t) => {
                    let (out, row) = match &mut stacked {
                        Some(s) => {
                            s.row(Some(t))?;
                            (s.path.clone(), Some(i))
                        }
                        None => {
                            let mut stem = stems[i].clone();
                            let mut k = 1;
                            while !used.insert(stem.clone()) {
                                k += 1;
                                stem = format!("{}_{k}", stems[i]);
                            }
                            let out = a.out.join(format!("{stem}.npy"));
                            let res = File::create(&out)
                                .map_err(crate::Error::from)
                                .and_then(|f| t.write_npy(BufWriter::new(f)));
                            if let Err(e) = res {
                                // a failed write is a failed item, never "ok"
                                failed += 1;
                                let e = e.with_input(out.display().to_string());
                                manifest.row(
                                    i,
                                    &names[i],
                                    path,
                                    "error",
                                    None,
                                    None,
                                    None,
                                    Some(&e),
                                )?;
                                say(
                                    &bar,
                                    &mut lines,
                                    a.quiet,
                                    format!("FAIL  {}", printable(&e.to_string())),
                                );
                                return Ok(());
                            }
                            (out, None)
                        }
                    };
                    ok += 1;
                    written += 1;
                    manifest.row(i, &names[i], path, "ok", Some(&out), row, Some(t), None)?;
                    let cached = if item.cached {
                        ", from the result cache"
                    } else {
                        ""
                    };
                    let shrink = item
                        .decode
                        .filter(|d| d.shrink > 1)
                        .map(|d| format!(", decoded at 1/{}", d.shrink))
                        .unwrap_or_default();
                    say(
                        &bar,
                        &mut lines,
                        a.quiet,
                        format!(
                            "ok    {} -> {} {:?} {}{shrink}{cached}",
                            printable(&names[i]),
                            out.display(),
                            t.shape(),
                            t.dtype().name()
                        ),
                    );
                }
                Err(e) => {
                    failed += 1;
                    let row = match &mut stacked {
                        Some(s) => {
                            s.row(None)?;
                            Some(i)
                        }
                        None => None,
                    };
                    manifest.row(i, &names[i], path, "error", None, row, None, Some(e))?;
                    say(
                        &bar,
                        &mut lines,
                        a.quiet,
                        format!("FAIL  {}", printable(&e.to_string())),
                    );
                }
            }
            Ok(())
        };
        if let Err(e) = step() {
            fatal = Some(e);
            sig.cancel.cancel();
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    // inputs never reached (interrupted): listed, so the manifest covers every input
    for i in next..total {
        if stacked.is_some() {
            manifest.row(
                i,
                &names[i],
                paths[i].as_deref(),
                "not_run",
                None,
                Some(i),
                None,
                None,
            )?;
        } else {
            manifest.row(
                i,
                &names[i],
                paths[i].as_deref(),
                "not_run",
                None,
                None,
                None,
                None,
            )?;
        }
    }
    manifest.flush()?;
    if let Some(s) = stacked {
        s.finish()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let what = if a.stack {
        format!("{} rows in {}", total, a.out.join("batch.npy").display())
    } else {
        format!("{written} .npy files in {}", a.out.display())
    };
    let line = format!(
        "total: {} items, {ok} ok, {failed} failed, {} served from the result cache, in {secs:.2} s \
         ({:.1} img/s over the ok ones); batches {} (cpu {}, gpu {}, split {}); host memory peak {} of {}; \
         {what}; manifest {}",
        summary.done,
        summary.cache_hits,
        ok as f64 / secs.max(1e-9),
        summary.batches,
        summary.placements[0],
        summary.placements[1],
        summary.placements[2],
        crate::fmt_bytes(summary.peak_reserved),
        crate::fmt_bytes(summary.budget),
        a.out.join("manifest.csv").display()
    );
    lines.line(&line);
    if let Some(d) = &summary.last_decision {
        lines.line(&format!("last decision: {d}"));
    }
    if let Some(e) = lines.take_error() {
        return Err(Fatal(format!("writing to standard output: {e}")));
    }
    if sig.interrupted() {
        eprintln!(
            "veridoc: interrupted after {} of {total} items; outputs flushed",
            summary.done
        );
        return Ok(sig.code());
    }
    Ok(if failed > 0 && !a.keep_going {
        exit::ITEM_ERRORS
    } else {
        exit::OK
    })
}

/// One line per item, above the progress bar; nothing with `--quiet`.
fn say(bar: &Option<ProgressBar>, lines: &mut Lines, quiet: bool, s: String) {
    if quiet {
        return;
    }
    match bar {
        Some(b) => {
            b.suspend(|| lines.line(&s));
        }
        None => {
            lines.line(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stacked_header_is_numpys() {
        // the same header as a whole tensor of that shape written by Tensor::write_npy
        let shape = vec![2, 3, 4, 5];
        let t = Tensor::stack(&[
            &Tensor::new(
                vec![3, 4, 5],
                Layout::Nchw,
                crate::TensorData::zeros(DType::F32, 60),
            )
            .unwrap(),
            &Tensor::new(
                vec![3, 4, 5],
                Layout::Nchw,
                crate::TensorData::zeros(DType::F32, 60),
            )
            .unwrap(),
        ])
        .unwrap();
        assert_eq!(t.shape(), &shape[..]);
        let mut whole = Vec::new();
        t.write_npy(&mut whole).unwrap();
        let h = npy_header(DType::F32, &shape);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&whole[..h.len()], &h[..]);
        assert_eq!(whole.len() - h.len(), 2 * 60 * 4);
    }
}
