//! [`Input`]: what a batch is made of (a file, bytes in memory, or an already decoded frame).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::frame::Frame;

/// One item of a batch. Errors about an item name it by [`Input::name`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// An image file, read when processed.
    Path(PathBuf),
    /// Encoded image bytes already in memory.
    Bytes {
        /// Name used in reports and errors.
        name: String,
        /// The encoded image.
        bytes: Arc<[u8]>,
    },
    /// An already decoded RGB8 image (no decode step).
    Frame {
        /// Name used in reports and errors.
        name: String,
        /// The pixels.
        frame: Frame,
    },
}

impl Input {
    /// A file input.
    pub fn path(p: impl Into<PathBuf>) -> Input {
        Input::Path(p.into())
    }

    /// An in-memory encoded input.
    pub fn bytes(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Input {
        Input::Bytes {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// A decoded input.
    pub fn frame(name: impl Into<String>, frame: Frame) -> Input {
        Input::Frame {
            name: name.into(),
            frame,
        }
    }

    /// Inputs from command-line style paths: a directory gives its image files (by
    /// extension: jpg, jpeg, png, webp, bmp, tif, tiff, gif; sorted, not recursive); a file
    /// is taken as given, so a missing or bad one fails later as its own item.
    ///
    /// # Errors
    /// `Io` when a directory cannot be listed.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Vec<Input>> {
        let mut inputs = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(p)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file() && is_image_name(f))
                    .collect();
                files.sort();
                inputs.extend(files.into_iter().map(Input::Path));
            } else {
                inputs.push(Input::Path(p.clone()));
            }
        }
        Ok(inputs)
    }

    /// The name errors and reports use: the path, or the given name.
    pub fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Bytes { name, .. } | Input::Frame { name, .. } => name.clone(),
        }
    }

    /// The file stem for output naming (`photo` for `dir/photo.jpg`).
    pub fn stem(&self) -> String {
        match self {
            Input::Path(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into()),
            Input::Bytes { name, .. } | Input::Frame { name, .. } => Path::new(name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone()),
        }
    }

    /// Encoded bytes, reading the file if needed (`None` for frames).
    pub(crate) fn read(&self) -> Result<Option<Arc<[u8]>>> {
        match self {
            Input::Path(p) => Ok(Some(std::fs::read(p)?.into())),
            Input::Bytes { bytes, .. } => Ok(Some(bytes.clone())),
            Input::Frame { .. } => Ok(None),
        }
    }

    /// Size of the encoded input in bytes, when cheaply known (file metadata or memory).
    pub fn encoded_len(&self) -> Option<u64> {
        match self {
            Input::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Bytes { bytes, .. } => Some(bytes.len() as u64),
            Input::Frame { .. } => None,
        }
    }
}

impl From<PathBuf> for Input {
    fn from(p: PathBuf) -> Input {
        Input::Path(p)
    }
}

impl From<&Path> for Input {
    fn from(p: &Path) -> Input {
        Input::Path(p.to_path_buf())
    }
}

/// Whether `p` has an image file extension the decoder supports.
fn is_image_name(p: &Path) -> bool {
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "jpg" | "jpeg" | "png" | "webp" | "bmp" | "tif" | "tiff" | "gif"
    )
}
