//! `preprocess --manifest M --shard I/N --out DIR`: shard mode for preprocessing, with
//! verify's contract (`crate::cli::shard`). What a shard writes:
//!
//! - one tensor file per manifest row that succeeded, `DIR/tensors/<row>.npy` (`<row>`: the
//!   row's 0-based index in the manifest, so names never collide between shards and a
//!   re-run writes the same names), written and fsynced before its line is committed;
//! - the part file `DIR/part-I-of-N.jsonl`, one line per row of the slice, in manifest
//!   order: `{"index", "input", "status": "ok"|"error", "output", "shape", "dtype",
//!   "error": {"code", "message"}|null}`, committed every [`SHARD_CHUNK`] rows;
//! - the done marker `DIR/part-I-of-N.done.json` with the counts (`items`, `ok`,
//!   `errors`), the manifest's hash, the pipeline (`pipeline`, its JSON, and
//!   `pipeline_hash`) and the engine build.
//!
//! A killed shard resumes from its complete lines: a tensor written after the last commit
//! is written again under the same name.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Args;
use crate::cli::engine::MemoryTier;
use crate::cli::io::writable_dir;
use crate::cli::shard::{read_manifest, Identity, Shard, ShardOut, ShardRow, SHARD_CHUNK};
use crate::cli::{exit, Fatal, Signals};
use crate::verify::printable;
use crate::{Input, Pipeline, StreamOptions, Tensor};

/// The tensors' folder inside the output directory.
const TENSORS: &str = "tensors";

/// What became of one manifest row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Error,
}

/// An item's failure, as a report's `error` (a stable code and a message).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ItemError {
    code: String,
    message: String,
}

/// One line of a preprocess shard's part file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardItem {
    /// The row's 0-based index in the manifest (comments and blank lines not counted).
    index: usize,
    /// The row: the image's path as the manifest gives it.
    input: String,
    status: Status,
    /// The tensor file, relative to the output directory.
    output: Option<String>,
    shape: Option<Vec<usize>>,
    dtype: Option<String>,
    error: Option<ItemError>,
}

impl ShardRow for ShardItem {
    const COUNTS: &'static [&'static str] = &["items", "ok", "errors"];

    fn outcome(&self) -> usize {
        match self.status {
            Status::Ok => 0,
            Status::Error => 1,
        }
    }
}

/// Writes `t` as `.npy` to `path` and makes it durable.
fn write_durable(path: &Path, t: &Tensor) -> crate::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    t.write_npy(&mut w)?;
    let f = w
        .into_inner()
        .map_err(|e| crate::Error::from(e.into_error()))?;
    f.sync_data()?;
    Ok(())
}

/// Runs shard `sh` of `manifest` with pipeline `p` into `a.out`.
pub(super) fn run(
    a: &Args,
    p: &Pipeline,
    manifest: &Path,
    sh: Shard,
    sig: &Signals,
) -> Result<u8, Fatal> {
    let (rows, manifest_hash) = read_manifest(manifest)?;
    let who = Identity {
        manifest_hash,
        spec: vec![
            ("pipeline", serde_json::to_string(p)?),
            ("pipeline_hash", p.stable_hash_hex()),
        ],
    };
    let dir = a.out.as_path();
    let Some(mut out) = ShardOut::<ShardItem>::start(dir, sh, rows.len(), &who)? else {
        return Ok(exit::OK);
    };
    let tensors = dir.join(TENSORS);
    writable_dir("--out", &tensors)?;
    let engine = a.engine.build(MemoryTier::WithDir)?;
    let todo = out.todo();
    let first = todo.start;
    let paths: Vec<PathBuf> = rows[todo].to_vec();
    let inputs: Vec<Input> = paths.iter().cloned().map(Input::Path).collect();
    let total = inputs.len();
    let mut opts = StreamOptions::new()
        .cancel(sig.cancel.clone())
        .ordered(true);
    if let Some(n) = a.batch {
        opts = opts.batch_size(n);
    }
    let (mut done, mut since_commit) = (0usize, 0usize);
    let mut fatal: Option<Fatal> = None;
    let t0 = Instant::now();
    engine.stream(p, inputs, opts, |it| {
        if fatal.is_some() {
            return;
        }
        let step = || -> Result<(), Fatal> {
            // rows are in input order (ordered stream); a gap would be a bug
            if it.index != done {
                return Err(Fatal(format!(
                    "item {} arrived before item {done}",
                    it.index
                )));
            }
            let index = first + it.index;
            let name = format!("{TENSORS}/{index}.npy");
            let written = it
                .item
                .result
                .and_then(|t| write_durable(&dir.join(&name), &t).map(|()| t));
            let row = match written {
                Ok(t) => ShardItem {
                    index,
                    input: paths[it.index].display().to_string(),
                    status: Status::Ok,
                    output: Some(name),
                    shape: Some(t.shape().to_vec()),
                    dtype: Some(t.dtype().name().to_string()),
                    error: None,
                },
                Err(e) => {
                    if !a.quiet {
                        eprintln!("FAIL  {}", printable(&e.to_string()));
                    }
                    ShardItem {
                        index,
                        input: paths[it.index].display().to_string(),
                        status: Status::Error,
                        output: None,
                        shape: None,
                        dtype: None,
                        error: Some(ItemError {
                            code: e.code().to_string(),
                            message: e.to_string(),
                        }),
                    }
                }
            };
            out.record(&row)?;
            done += 1;
            since_commit += 1;
            if since_commit == SHARD_CHUNK {
                out.commit()?;
                since_commit = 0;
            }
            Ok(())
        };
        if let Err(e) = step() {
            fatal = Some(e);
            sig.cancel.cancel();
        }
    })?;
    out.commit()?;
    if let Some(e) = fatal {
        return Err(e);
    }
    if sig.interrupted() || done < total {
        eprintln!(
            "veridoc: shard {sh} interrupted after {done} of {total} items; its part file is \
             committed (run it again to resume)"
        );
        return Ok(if sig.interrupted() {
            sig.code()
        } else {
            exit::FATAL
        });
    }
    let m = out.finish(&who)?;
    eprintln!(
        "veridoc: shard {} done: {} in {} ({:.2} s)",
        m.shard,
        m.counts::<ShardItem>(),
        dir.join(&m.part).display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(if m.count("errors") > 0 && !a.keep_going {
        exit::ITEM_ERRORS
    } else {
        exit::OK
    })
}
