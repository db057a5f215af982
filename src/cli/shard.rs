//! Shard mode for jobs past one machine (Kubernetes Indexed Jobs, Slurm job arrays):
//! `verify --manifest M --shard I/N --out DIR` verifies a deterministic slice of the
//! manifest and streams its reports to `DIR/part-I-of-N.jsonl`; `preprocess` does the same
//! with one line per item (its tensors are files beside it). Both are crash-safe the same
//! way, through [`ShardOut`], generic over the row type ([`ShardRow`]):
//!
//! - rows go to `DIR/part-I-of-N.jsonl.partial`, flushed and fsynced after every chunk
//!   (32 items): a pre-empted task loses at most one chunk;
//! - a restarted task keeps the partial file's complete lines (a torn last line is cut)
//!   and goes on from the next row of its slice;
//! - at the end the file is fsynced and renamed to `part-I-of-N.jsonl`, then a done marker
//!   `part-I-of-N.done.json` records the counts and the manifest, spec (profile or
//!   pipeline) and engine hashes (written to a temporary name, fsynced, renamed);
//! - an index whose marker is there, for the same manifest, spec and engine, exits 0 at
//!   once; a marker for anything else is refused (status 2), never overwritten.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Fatal;
use crate::verify::{PhotoReport, Verdict};

/// Rows per commit of a shard's part file (the caller commits after each chunk): the
/// verifier's chunk (32 photos), the unit the scheduler decides CPU or GPU for; a kill
/// loses at most this many rows of work.
pub(super) const SHARD_CHUNK: usize = 32;

/// One line of a shard's part file.
pub(super) trait ShardRow: Serialize + DeserializeOwned {
    /// The done marker's names for the number of rows, then for each outcome.
    const COUNTS: &'static [&'static str];
    /// This row's outcome: an index into `COUNTS[1..]`.
    fn outcome(&self) -> usize;
}

impl ShardRow for PhotoReport {
    const COUNTS: &'static [&'static str] = &["photos", "accepted", "rejected", "errors"];

    fn outcome(&self) -> usize {
        match self.verdict {
            Verdict::Accepted => 0,
            Verdict::Rejected => 1,
            Verdict::Error => 2,
        }
    }
}

/// `--shard I/N`: index `I` (0-based, as Kubernetes' `JOB_COMPLETION_INDEX`) of `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shard {
    pub(super) index: usize,
    pub(super) count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected I/N (e.g. 0/8)"))?;
        let index: usize = i.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        let count: usize = n.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        if count == 0 || index >= count {
            return Err(format!("{s:?}: needs 0 <= I < N"));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The rows of a manifest of `rows` this shard owns: contiguous, the first
    /// `rows % N` shards one row longer; every row in exactly one shard.
    pub(super) fn slice(&self, rows: usize) -> Range<usize> {
        let base = rows / self.count;
        let extra = rows % self.count;
        let start = self.index * base + self.index.min(extra);
        let len = base + usize::from(self.index < extra);
        start..start + len
    }

    fn stem(&self) -> String {
        format!("part-{}-of-{}", self.index, self.count)
    }
}

/// What a finished shard records (`part-I-of-N.done.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct DoneMarker {
    /// `I/N`.
    pub(super) shard: String,
    /// The manifest rows of this shard, `[start, end)`.
    pub(super) rows: [usize; 2],
    /// BLAKE3 of the manifest file's bytes.
    pub(super) manifest_hash: String,
    pub(super) engine_version: String,
    pub(super) build_id: String,
    /// The part file, relative to the output directory.
    pub(super) part: String,
    /// The counts ([`ShardRow::COUNTS`]: `photos`, `accepted`, ... for verify) and the
    /// spec ([`Identity::spec`]: `profile`, `profile_hash` for verify).
    #[serde(flatten)]
    pub(super) kind: Map<String, Value>,
}

impl DoneMarker {
    /// The count called `name` (0 when absent).
    pub(super) fn count(&self, name: &str) -> usize {
        self.kind
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }

    /// `150 photos: 100 accepted, 40 rejected, 10 errors`, from `R`'s count names.
    pub(super) fn counts<R: ShardRow>(&self) -> String {
        let [total, parts @ ..] = R::COUNTS else {
            return String::new();
        };
        let parts: Vec<String> = parts
            .iter()
            .map(|n| format!("{} {n}", self.count(n)))
            .collect();
        format!("{} {total}: {}", self.count(total), parts.join(", "))
    }
}

/// Who computes the shard: what a done marker must match to be trusted.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) manifest_hash: String,
    /// What computes each row, as the marker records it: `profile` and `profile_hash` for
    /// verify, `pipeline` and `pipeline_hash` for preprocess. Every entry must match.
    pub(super) spec: Vec<(&'static str, String)>,
}

impl Identity {
    fn matches(&self, m: &DoneMarker) -> bool {
        m.manifest_hash == self.manifest_hash
            && self
                .spec
                .iter()
                .all(|(k, v)| m.kind.get(*k).and_then(Value::as_str) == Some(v.as_str()))
            && m.engine_version == crate::VERSION
            && m.build_id == crate::BUILD_ID
    }
}

/// A shard being written, with rows of type `R`.
pub(super) struct ShardOut<R: ShardRow> {
    shard: Shard,
    rows: Range<usize>,
    partial: PathBuf,
    part: PathBuf,
    marker: PathBuf,
    w: BufWriter<File>,
    /// Rows of the slice already in the partial file when this run started.
    pub(super) resumed: usize,
    /// Rows by outcome ([`ShardRow::outcome`]).
    counts: Vec<usize>,
    rows_of: std::marker::PhantomData<fn() -> R>,
}

impl<R: ShardRow> std::fmt::Debug for ShardOut<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardOut")
            .field("shard", &self.shard)
            .field("partial", &self.partial)
            .finish()
    }
}

/// How `open` found the shard.
#[allow(
    clippy::large_enum_variant,
    reason = "made once per run; the marker is returned as it was read"
)]
enum Opened<R: ShardRow> {
    /// Already done for this manifest, spec and engine: nothing to do.
    Done(DoneMarker),
    /// To run (from `resumed` rows into its slice).
    Run(ShardOut<R>),
}

fn named(p: &Path) -> impl Fn(std::io::Error) -> Fatal + '_ {
    move |e| Fatal(format!("{}: {e}", p.display()))
}

impl<R: ShardRow> ShardOut<R> {
    /// Opens shard `shard` of a manifest of `rows` rows in `dir`: done, resumed or new.
    fn open(dir: &Path, shard: Shard, rows: usize, who: &Identity) -> Result<Opened<R>, Fatal> {
        super::io::writable_dir("--out", dir)?;
        let stem = shard.stem();
        let marker = dir.join(format!("{stem}.done.json"));
        let part = dir.join(format!("{stem}.jsonl"));
        let partial = dir.join(format!("{stem}.jsonl.partial"));
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let m: DoneMarker = serde_json::from_str(&text)
                .map_err(|e| Fatal(format!("{}: not a done marker: {e}", marker.display())))?;
            if who.matches(&m) && part.is_file() {
                return Ok(Opened::Done(m));
            }
            return Err(Fatal(format!(
                "{} records shard {} of another manifest, profile, pipeline or engine build; \
                 use another --out directory or remove it",
                marker.display(),
                m.shard
            )));
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(named(&partial))?;
        // keep the complete lines (each a report); cut a torn last line
        let mut keep = 0u64;
        let mut counts = vec![0usize; R::COUNTS.len().saturating_sub(1)];
        let mut resumed = 0usize;
        let mut r = BufReader::new(&f);
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line).map_err(named(&partial))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let Ok(row) = serde_json::from_str::<R>(&line) else {
                break;
            };
            count(&mut counts, &row);
            resumed += 1;
            keep += n as u64;
        }
        drop(r);
        let slice = shard.slice(rows);
        if resumed > slice.len() {
            return Err(Fatal(format!(
                "{} holds {resumed} reports, more than the {} rows of shard {shard}: \
                 another manifest? remove it",
                partial.display(),
                slice.len()
            )));
        }
        let mut f = f;
        f.set_len(keep).map_err(named(&partial))?;
        f.seek(SeekFrom::Start(keep)).map_err(named(&partial))?;
        Ok(Opened::Run(ShardOut {
            shard,
            rows: slice,
            partial,
            part,
            marker,
            w: BufWriter::new(f),
            resumed,
            counts,
            rows_of: std::marker::PhantomData,
        }))
    }

    /// [`ShardOut::open`] for a run: `None` when the shard is already done (said on
    /// standard error, with its counts); a resumed shard says after how many rows.
    pub(super) fn start(
        dir: &Path,
        shard: Shard,
        rows: usize,
        who: &Identity,
    ) -> Result<Option<ShardOut<R>>, Fatal> {
        match Self::open(dir, shard, rows, who)? {
            Opened::Done(m) => {
                eprintln!(
                    "veridoc: shard {} already done ({})",
                    m.shard,
                    m.counts::<R>()
                );
                Ok(None)
            }
            Opened::Run(out) => {
                if out.resumed > 0 {
                    eprintln!(
                        "veridoc: shard {shard} resumes after {} {} already written",
                        out.resumed,
                        R::COUNTS.first().copied().unwrap_or("rows")
                    );
                }
                Ok(Some(out))
            }
        }
    }

    /// The manifest rows still to do.
    pub(super) fn todo(&self) -> Range<usize> {
        self.rows.start + self.resumed..self.rows.end
    }

    /// Appends one row.
    pub(super) fn record(&mut self, r: &R) -> Result<(), Fatal> {
        let mut line = serde_json::to_vec(r)?;
        line.push(b'\n');
        self.w.write_all(&line).map_err(named(&self.partial))?;
        count(&mut self.counts, r);
        Ok(())
    }

    /// Makes every recorded row durable (after each chunk).
    pub(super) fn commit(&mut self) -> Result<(), Fatal> {
        self.w.flush().map_err(named(&self.partial))?;
        self.w.get_ref().sync_data().map_err(named(&self.partial))
    }

    /// Seals a complete shard: the part file in place, then its done marker.
    pub(super) fn finish(mut self, who: &Identity) -> Result<DoneMarker, Fatal> {
        self.commit()?;
        let total: usize = self.counts.iter().sum();
        if total != self.rows.len() {
            return Err(Fatal(format!(
                "shard {}: {total} rows written for {} rows",
                self.shard,
                self.rows.len()
            )));
        }
        std::fs::rename(&self.partial, &self.part).map_err(named(&self.part))?;
        let mut kind = Map::new();
        for (name, n) in R::COUNTS
            .iter()
            .zip(std::iter::once(total).chain(self.counts.iter().copied()))
        {
            kind.insert((*name).to_string(), Value::from(n));
        }
        for (k, v) in &who.spec {
            kind.insert((*k).to_string(), Value::from(v.as_str()));
        }
        let m = DoneMarker {
            shard: self.shard.to_string(),
            rows: [self.rows.start, self.rows.end],
            manifest_hash: who.manifest_hash.clone(),
            engine_version: crate::VERSION.to_string(),
            build_id: crate::BUILD_ID.to_string(),
            part: self
                .part
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kind,
        };
        let tmp = self.marker.with_extension("json.tmp");
        let mut f = File::create(&tmp).map_err(named(&tmp))?;
        f.write_all(&serde_json::to_vec_pretty(&m)?)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(named(&tmp))?;
        std::fs::rename(&tmp, &self.marker).map_err(named(&self.marker))?;
        // the renames themselves are durable once the directory is
        if let Some(dir) = self.marker.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(m)
    }
}

fn count<R: ShardRow>(c: &mut [usize], r: &R) {
    if let Some(n) = c.get_mut(r.outcome()) {
        *n += 1;
    }
}

/// Shard mode's manifest: its rows (paths, one per line; `#` comments and blank lines
/// ignored) and the BLAKE3 of its bytes.
pub(super) fn read_manifest(path: &Path) -> Result<(Vec<PathBuf>, String), Fatal> {
    let bytes =
        std::fs::read(path).map_err(|e| Fatal(format!("--manifest {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Fatal(format!("--manifest {}: not UTF-8 text", path.display())))?;
    let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
    let rows = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect();
    Ok((rows, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_row_once() {
        for rows in [0usize, 1, 7, 100, 101] {
            for n in [1usize, 2, 3, 8] {
                let mut next = 0;
                for i in 0..n {
                    let s = Shard { index: i, count: n }.slice(rows);
                    assert_eq!(s.start, next, "rows {rows}, shard {i}/{n}");
                    assert!(s.len() <= rows.div_ceil(n));
                    next = s.end;
                }
                assert_eq!(next, rows);
            }
        }
        assert_eq!("3/8".parse::<Shard>(), Ok(Shard { index: 3, count: 8 }));
        assert!("8/8".parse::<Shard>().is_err());
        assert!("1".parse::<Shard>().is_err());
    }
}
