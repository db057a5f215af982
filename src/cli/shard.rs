//! Shard mode for jobs past one machine (Kubernetes Indexed Jobs, Slurm job arrays):
//! `verify --manifest M --shard I/N --out DIR` verifies a deterministic slice of the
//! manifest and streams its reports to `DIR/part-I-of-N.jsonl`, crash-safe:
//!
//! - rows go to `DIR/part-I-of-N.jsonl.partial`, flushed and fsynced after every chunk
//!   (32 photos): a pre-empted task loses at most one chunk;
//! - a restarted task keeps the partial file's complete lines (a torn last line is cut)
//!   and goes on from the next row of its slice;
//! - at the end the file is fsynced and renamed to `part-I-of-N.jsonl`, then a done marker
//!   `part-I-of-N.done.json` records the counts and the manifest, profile and engine
//!   hashes (written to a temporary name, fsynced, renamed);
//! - an index whose marker is there, for the same manifest, profile and engine, exits 0 at
//!   once; a marker for anything else is refused (status 2), never overwritten.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Fatal;
use crate::verify::{PhotoReport, Verdict};

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
    /// Reports in the part file.
    pub(super) photos: usize,
    pub(super) accepted: usize,
    pub(super) rejected: usize,
    pub(super) errors: usize,
    /// BLAKE3 of the manifest file's bytes.
    pub(super) manifest_hash: String,
    pub(super) profile: String,
    pub(super) profile_hash: String,
    pub(super) engine_version: String,
    pub(super) build_id: String,
    /// The part file, relative to the output directory.
    pub(super) part: String,
}

/// Who computes the shard: what a done marker must match to be trusted.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) manifest_hash: String,
    pub(super) profile: String,
    pub(super) profile_hash: String,
}

impl Identity {
    fn matches(&self, m: &DoneMarker) -> bool {
        m.manifest_hash == self.manifest_hash
            && m.profile_hash == self.profile_hash
            && m.engine_version == crate::VERSION
            && m.build_id == crate::BUILD_ID
    }
}

/// A shard being written.
pub(super) struct ShardOut {
    shard: Shard,
    rows: Range<usize>,
    partial: PathBuf,
    part: PathBuf,
    marker: PathBuf,
    w: BufWriter<File>,
    /// Rows of the slice already in the partial file when this run started.
    pub(super) resumed: usize,
    counts: [usize; 3],
}

impl std::fmt::Debug for ShardOut {
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
pub(super) enum Opened {
    /// Already done for this manifest, profile and engine: nothing to do.
    Done(DoneMarker),
    /// To run (from `resumed` rows into its slice).
    Run(ShardOut),
}

fn named(p: &Path) -> impl Fn(std::io::Error) -> Fatal + '_ {
    move |e| Fatal(format!("{}: {e}", p.display()))
}

impl ShardOut {
    /// Opens shard `shard` of a manifest of `rows` rows in `dir`: done, resumed or new.
    pub(super) fn open(
        dir: &Path,
        shard: Shard,
        rows: usize,
        who: &Identity,
    ) -> Result<Opened, Fatal> {
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
                "{} records shard {} of another manifest, profile or engine build; \
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
        let mut counts = [0usize; 3];
        let mut resumed = 0usize;
        let mut r = BufReader::new(&f);
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line).map_err(named(&partial))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let Ok(rep) = serde_json::from_str::<PhotoReport>(&line) else {
                break;
            };
            count(&mut counts, &rep);
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
        }))
    }

    /// The manifest rows still to verify.
    pub(super) fn todo(&self) -> Range<usize> {
        self.rows.start + self.resumed..self.rows.end
    }

    /// Appends one report.
    pub(super) fn record(&mut self, r: &PhotoReport) -> Result<(), Fatal> {
        let mut line = serde_json::to_vec(r)?;
        line.push(b'\n');
        self.w.write_all(&line).map_err(named(&self.partial))?;
        count(&mut self.counts, r);
        Ok(())
    }

    /// Makes every recorded report durable (after each chunk).
    pub(super) fn commit(&mut self) -> Result<(), Fatal> {
        self.w.flush().map_err(named(&self.partial))?;
        self.w.get_ref().sync_data().map_err(named(&self.partial))
    }

    /// Seals a complete shard: the part file in place, then its done marker.
    pub(super) fn finish(mut self, who: &Identity) -> Result<DoneMarker, Fatal> {
        self.commit()?;
        let photos: usize = self.counts.iter().sum();
        if photos != self.rows.len() {
            return Err(Fatal(format!(
                "shard {}: {photos} reports for {} rows",
                self.shard,
                self.rows.len()
            )));
        }
        std::fs::rename(&self.partial, &self.part).map_err(named(&self.part))?;
        let m = DoneMarker {
            shard: self.shard.to_string(),
            rows: [self.rows.start, self.rows.end],
            photos,
            accepted: self.counts[0],
            rejected: self.counts[1],
            errors: self.counts[2],
            manifest_hash: who.manifest_hash.clone(),
            profile: who.profile.clone(),
            profile_hash: who.profile_hash.clone(),
            engine_version: crate::VERSION.to_string(),
            build_id: crate::BUILD_ID.to_string(),
            part: self
                .part
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
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

fn count(c: &mut [usize; 3], r: &PhotoReport) {
    match r.verdict {
        Verdict::Accepted => c[0] += 1,
        Verdict::Rejected => c[1] += 1,
        Verdict::Error => c[2] += 1,
    }
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
