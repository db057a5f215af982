//! Which inputs a command works on: paths and directories (optionally recursive), `-` for
//! one image on standard input, and `--files-from FILE|-` for a list of paths.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Fatal;
use crate::Input;

/// Input selection shared by the commands.
#[derive(clap::Args, Debug, Clone, Default)]
pub(super) struct InputArgs {
    /// Image files or directories of images; `-` reads one image from standard input.
    pub(super) inputs: Vec<PathBuf>,
    /// Descend into sub-directories (symbolic links to directories are not followed).
    #[arg(short, long)]
    pub(super) recursive: bool,
    /// Read more input paths from FILE, one per line (`-`: standard input); blank lines
    /// and lines starting with `#` are ignored.
    #[arg(long, value_name = "FILE|-")]
    pub(super) files_from: Option<PathBuf>,
}

/// What was selected.
#[derive(Debug, Default)]
pub(super) struct Selection {
    pub(super) inputs: Vec<Input>,
    /// Files in the given directories that were not taken (not images, not regular files).
    pub(super) skipped: usize,
    /// Sub-directories not searched (no `--recursive`).
    pub(super) subdirs: usize,
}

impl Selection {
    /// A line for standard error about what the directories held that was not taken, or
    /// nothing.
    pub(super) fn note(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.skipped > 0 {
            parts.push(format!(
                "{} file(s) skipped (not images by extension, or not regular files)",
                self.skipped
            ));
        }
        if self.subdirs > 0 {
            parts.push(format!(
                "{} sub-director{} not searched (use --recursive)",
                self.subdirs,
                if self.subdirs == 1 { "y" } else { "ies" }
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Largest image read from standard input: the engine's default per-input limit
/// ([`crate::DecodeLimits::max_input_bytes`]).
fn stdin_limit() -> u64 {
    crate::DecodeLimits::default().max_input_bytes
}

impl InputArgs {
    /// True when no input was named.
    pub(super) fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.files_from.is_none()
    }

    /// The inputs, in order: each argument in turn (a directory's files sorted), then the
    /// paths of `--files-from`.
    pub(super) fn select(&self) -> Result<Selection, Fatal> {
        let stdin_list = self.files_from.as_deref() == Some(Path::new("-"));
        let stdin_image = self.inputs.iter().any(|p| p == Path::new("-"));
        if stdin_list && stdin_image {
            return Err(Fatal(
                "standard input cannot be both an image (`-`) and a list (--files-from -)".into(),
            ));
        }
        if self.inputs.iter().filter(|p| *p == Path::new("-")).count() > 1 {
            return Err(Fatal("`-` (standard input) can be given once".into()));
        }
        let mut sel = Selection::default();
        for p in &self.inputs {
            if p == Path::new("-") {
                sel.inputs.push(read_stdin()?);
            } else {
                self.add(&mut sel, p)?;
            }
        }
        if let Some(list) = &self.files_from {
            let text = if stdin_list {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| Fatal(format!("--files-from -: {e}")))?;
                s
            } else {
                std::fs::read_to_string(list)
                    .map_err(|e| Fatal(format!("--files-from {}: {e}", list.display())))?
            };
            for line in text.lines() {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                self.add(&mut sel, Path::new(line))?;
            }
        }
        Ok(sel)
    }

    fn add(&self, sel: &mut Selection, p: &Path) -> Result<(), Fatal> {
        let c = Input::collect(&[p.to_path_buf()], self.recursive)?;
        sel.inputs.extend(c.inputs);
        sel.skipped += c.skipped.len();
        sel.subdirs += c.subdirs;
        Ok(())
    }
}

/// One image from standard input, named `-`, held to the per-input size limit before it
/// is all read.
fn read_stdin() -> Result<Input, Fatal> {
    let limit = stdin_limit();
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Fatal(format!("reading standard input: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Fatal(format!(
            "standard input: over the input limit of {}",
            crate::fmt_bytes(limit)
        )));
    }
    Ok(Input::bytes("-", bytes))
}
