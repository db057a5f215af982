//! Output of the tool: lines to a terminal or pipe that may close, files opened before any
//! work and flushed with their errors seen, and the small formats (sizes, CSV fields,
//! table cells).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Fatal;

/// Where lines go: standard output or standard error. A closed pipe (`EPIPE`: `| head -1`)
/// is remembered, never a panic; the caller stops the run quietly.
#[derive(Debug)]
pub(super) struct Lines {
    stderr: bool,
    closed: bool,
    /// The first write error that is not a closed pipe.
    failed: Option<std::io::Error>,
}

impl Lines {
    pub(super) fn stdout() -> Lines {
        Lines {
            stderr: false,
            closed: false,
            failed: None,
        }
    }

    pub(super) fn stderr() -> Lines {
        Lines {
            stderr: true,
            ..Lines::stdout()
        }
    }

    /// Writes `s` and a newline; false once the stream is closed or failed.
    pub(super) fn line(&mut self, s: &str) -> bool {
        if self.closed || self.failed.is_some() {
            return false;
        }
        let r = if self.stderr {
            writeln!(std::io::stderr().lock(), "{s}")
        } else {
            writeln!(std::io::stdout().lock(), "{s}")
        };
        self.seen(r)
    }

    fn seen(&mut self, r: std::io::Result<()>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                false
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// True when the reader went away (the run should stop quietly).
    pub(super) fn closed(&self) -> bool {
        self.closed
    }

    /// The first write error other than a closed pipe (a full disk behind a redirection).
    pub(super) fn take_error(&mut self) -> Option<std::io::Error> {
        self.failed.take()
    }
}

/// A JSON Lines or JSON document sink: a file (created before any work) or standard output
/// (`-`). Each record is one `write_all` of a whole line, so an interrupted run leaves only
/// complete lines; `flush` is called after each chunk.
pub(super) struct Sink {
    name: String,
    w: Box<dyn Write>,
    to_stdout: bool,
    closed: bool,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("name", &self.name).finish()
    }
}

impl Sink {
    /// Opens `path` (`-` for standard output) for writing, now.
    pub(super) fn create(flag: &str, path: &Path) -> Result<Sink, Fatal> {
        if path == Path::new("-") {
            return Ok(Sink {
                name: "standard output".into(),
                w: Box::new(BufWriter::new(std::io::stdout())),
                to_stdout: true,
                closed: false,
            });
        }
        let f = create_file(flag, path)?;
        Ok(Sink {
            name: path.display().to_string(),
            w: Box::new(BufWriter::new(f)),
            to_stdout: false,
            closed: false,
        })
    }

    pub(super) fn to_stdout(&self) -> bool {
        self.to_stdout
    }

    /// True when standard output was closed by its reader.
    pub(super) fn closed(&self) -> bool {
        self.closed
    }

    /// Writes `bytes` whole. A closed standard output is remembered (not an error); any
    /// other failure is fatal (a full disk).
    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), Fatal> {
        if self.closed {
            return Ok(());
        }
        let r = self.w.write_all(bytes);
        self.check(r)
    }

    /// One JSON value and a newline.
    pub(super) fn record<T: serde::Serialize>(&mut self, v: &T) -> Result<(), Fatal> {
        let mut line = serde_json::to_vec(v).map_err(|e| Fatal(format!("{}: {e}", self.name)))?;
        line.push(b'\n');
        self.write(&line)
    }

    pub(super) fn flush(&mut self) -> Result<(), Fatal> {
        if self.closed {
            return Ok(());
        }
        let r = self.w.flush();
        self.check(r)
    }

    fn check(&mut self, r: std::io::Result<()>) -> Result<(), Fatal> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if self.to_stdout && e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Fatal(format!("writing {}: {e}", self.name))),
        }
    }
}

/// Creates (truncates) `path` for an output named by `flag`, before any work: an
/// unwritable path fails the run now, not after an hour of work.
pub(super) fn create_file(flag: &str, path: &Path) -> Result<File, Fatal> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Fatal(format!("{flag} {}: {e}", dir.display())))?;
    }
    File::create(path).map_err(|e| Fatal(format!("{flag} {}: {e}", path.display())))
}

/// Creates `dir` and checks that it takes a file, before any work.
pub(super) fn writable_dir(flag: &str, dir: &Path) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir).map_err(|e| Fatal(format!("{flag} {}: {e}", dir.display())))?;
    let probe: PathBuf = dir.join(format!(".veridoc-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| Fatal(format!("{flag} {}: not writable: {e}", dir.display())))
}

/// Parses a size with its unit: `512MiB`, `2GiB`, `1.5GB`, `64KiB`, `4096B`. A bare number
/// is refused (`--host-budget 12` meant 12 bytes and failed every item).
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("{s:?} needs a unit: B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"))?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|e| format!("{s:?}: {e}"))
        .and_then(|v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(format!("{s:?}: not a size"))
            }
        })?;
    let mul: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" => 1e12,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ))
        }
    };
    Ok((v * mul) as u64)
}

/// `s` in at most `width` characters: the middle replaced by `…` when longer (a file
/// name's start and its extension stay readable), control characters escaped.
pub(super) fn cell(s: &str, width: usize) -> String {
    let s = crate::verify::printable(s);
    let n = s.chars().count();
    if n <= width || width < 3 {
        return s.into_owned();
    }
    let keep = width - 1;
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_need_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096b"), Ok(4096));
        assert!(parse_size("12").unwrap_err().contains("needs a unit"));
        assert!(parse_size("12 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_size("-1GiB").is_err());
    }

    #[test]
    fn cells_keep_both_ends_and_escape() {
        assert_eq!(cell("short.jpg", 12), "short.jpg");
        let c = cell("a_very_long_file_name_from_a_camera_roll.jpg", 20);
        assert_eq!(c.chars().count(), 20);
        assert!(
            c.starts_with("a_very_lon") && c.ends_with("roll.jpg"),
            "{c}"
        );
        assert_eq!(cell("x\ny", 10), "x\\ny");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
