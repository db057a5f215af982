//! [`Input`]: what a batch is made of (a file, bytes in memory, or an already decoded frame).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, LimitError, Resource, Result};
use crate::frame::Frame;

/// One item of a batch. Errors about an item name it by [`Input::name`].
///
/// # Examples
///
/// ```
/// use std::path::PathBuf;
/// use veridoc::{Frame, Input};
///
/// let upload: Vec<u8> = Vec::new(); // e.g. a request body
/// let mut inputs = vec![
///     Input::path("photos/a.jpg"),                            // read when processed
///     Input::bytes("upload-17", upload),                      // encoded, in memory
///     Input::frame("synthetic", Frame::synthetic(64, 64, 1)), // already decoded
/// ];
/// // A directory gives its image files; a file is taken as given (a missing one fails
/// // later, as its own item).
/// inputs.extend(Input::from_paths(&[PathBuf::from("photos/b.png")])?);
/// assert_eq!(inputs[1].name(), "upload-17");
/// assert_eq!(inputs[3].name(), "photos/b.png");
/// # Ok::<(), veridoc::Error>(())
/// ```
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

    /// Inputs from command-line style paths, as [`Input::from_paths`] but descending into
    /// sub-directories when `recursive` (symbolic links to directories are not followed, so
    /// a link cycle cannot loop), and counting what a directory held that was not taken.
    ///
    /// # Errors
    /// `Io` naming the directory when one cannot be listed.
    pub fn collect(paths: &[PathBuf], recursive: bool) -> Result<Collected> {
        let mut out = Collected::default();
        for p in paths {
            if p.is_dir() {
                walk(p, recursive, &mut out)?;
            } else {
                out.inputs.push(Input::Path(p.clone()));
            }
        }
        Ok(out)
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

    /// Encoded bytes, reading the file if needed (`None` for frames), refused when over
    /// `max_bytes` (before anything is read) or when the path is not a regular file.
    pub(crate) fn read(&self, max_bytes: u64) -> Result<Option<Arc<[u8]>>> {
        match self {
            Input::Path(p) => read_file(p, max_bytes).map(Some),
            Input::Bytes { bytes, .. } => {
                check_size(bytes.len() as u64, max_bytes)?;
                Ok(Some(bytes.clone()))
            }
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

fn check_size(len: u64, max_bytes: u64) -> Result<()> {
    if len > max_bytes {
        return Err(Error::from(LimitError::ExceedsBudget {
            what: Resource::InputBytes,
            requested: len,
            limit: max_bytes,
        }));
    }
    Ok(())
}

/// What a non-regular file is, for the error that refuses it.
fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads a regular file of at most `max_bytes` in one read into its final buffer (no second
/// copy). FIFOs, devices and directories are refused from their metadata before they are
/// opened (opening a FIFO would wait for a writer; `/dev/zero` would never end), and the
/// size is checked before any allocation.
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> Result<Arc<[u8]>> {
    use std::io::Read;
    let named = |e| Error::io_at(path, e);
    let meta = std::fs::metadata(path).map_err(named)?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{}: {} (only regular files are read)",
            path.display(),
            file_kind(meta.file_type())
        )));
    }
    check_size(meta.len(), max_bytes)?;
    let (mut f, opened) = open_regular(path).map_err(named)?;
    if !opened.is_file() || opened.len() != meta.len() {
        // replaced between the check and the open (a FIFO swapped in would have blocked
        // a plain open for a writer; it is opened without waiting, then refused here)
        return Err(Error::invalid(format!(
            "{}: changed while being opened ({}, {} bytes; only regular files are read)",
            path.display(),
            file_kind(opened.file_type()),
            opened.len()
        )));
    }
    let len = usize::try_from(meta.len())
        .map_err(|_| Error::invalid(format!("{}: too large for this platform", path.display())))?;
    // Collected straight into the shared buffer (one allocation of the final size).
    let mut buf: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
    let Some(dst) = Arc::get_mut(&mut buf) else {
        return Err(Error::invalid("input buffer is shared"));
    };
    f.read_exact(dst).map_err(named)?;
    Ok(buf)
}

/// Opens `path` for reading without ever waiting: `O_NONBLOCK` makes the open of a FIFO or
/// device that replaced a checked file return at once (it has no effect on regular files,
/// whose reads never block), and `O_NOCTTY` keeps a terminal from becoming ours. Returns the
/// handle with the metadata of what was actually opened, for the caller to check.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let f = o.open(path)?;
    let meta = f.metadata()?;
    Ok((f, meta))
}

/// What [`Input::collect`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Collected {
    /// Inputs in order: each argument in turn, a directory's files sorted by path.
    pub inputs: Vec<Input>,
    /// Files in the directories that were not taken: no image extension, not a regular
    /// file, or a symbolic link to a directory.
    pub skipped: Vec<PathBuf>,
    /// Sub-directories not descended into (the walk was not recursive).
    pub subdirs: usize,
}

fn walk(dir: &Path, recursive: bool, out: &mut Collected) -> Result<()> {
    let mut entries: Vec<(PathBuf, std::fs::FileType)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io_at(dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_type().ok().map(|t| (e.path(), t)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, t) in entries {
        if t.is_dir() {
            if recursive {
                walk(&path, recursive, out)?;
            } else {
                out.subdirs += 1;
            }
        } else if is_image_name(&path) && path.is_file() {
            // a regular file, or a link to one
            out.inputs.push(Input::Path(path));
        } else {
            out.skipped.push(path);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn regular_files_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(&*read_file(&p, 10).unwrap(), b"0123456789");
        assert!(read_file(&p, 0)
            .unwrap_err()
            .to_string()
            .contains("input size"));
        let e = read_file(&p, 9).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Limit(LimitError::ExceedsBudget {
                    what: Resource::InputBytes,
                    requested: 10,
                    limit: 9
                })
            ),
            "{e:?}"
        );
        // Bytes in memory are held to the same limit.
        let b = Input::bytes("b", vec![1u8; 10]);
        assert!(b.read(10).unwrap().is_some());
        assert!(b.read(9).is_err());
    }

    #[test]
    fn collect_walks_sorted_counts_skips_and_recurses_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        for f in [
            "b.jpg",
            "a.PNG",
            "notes.txt",
            "sub/c.webp",
            "sub/deeper/d.gif",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(d, d.join("sub/loop")).unwrap();
        let names = |c: &Collected| -> Vec<String> {
            c.inputs
                .iter()
                .map(|i| {
                    let n = i.name();
                    n[d.display().to_string().len() + 1..].to_string()
                })
                .collect()
        };
        let flat = Input::collect(&[d.to_path_buf()], false).unwrap();
        assert_eq!(names(&flat), ["a.PNG", "b.jpg"]);
        assert_eq!(flat.skipped, [d.join("notes.txt")]);
        assert_eq!(flat.subdirs, 1);
        let deep = Input::collect(&[d.to_path_buf()], true).unwrap();
        assert_eq!(
            names(&deep),
            ["a.PNG", "b.jpg", "sub/c.webp", "sub/deeper/d.gif"]
        );
        // the link back to the root is skipped, not followed (no loop)
        #[cfg(unix)]
        assert_eq!(deep.skipped, [d.join("notes.txt"), d.join("sub/loop")]);
        assert_eq!(deep.subdirs, 0);
        // a file argument is taken as given (a missing one fails later as its own item)
        let given = Input::collect(&[d.join("missing.jpg")], true).unwrap();
        assert_eq!(given.inputs.len(), 1);
        assert!(
            Input::collect(&[d.join("nope/")], true)
                .unwrap()
                .inputs
                .len()
                == 1
        );
    }

    #[test]
    fn empty_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        assert!(read_file(&p, 10).unwrap().is_empty());
        let missing = dir.path().join("missing.jpg");
        let e = read_file(&missing, 10).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
        assert!(
            e.to_string().contains("missing.jpg"),
            "the path is named: {e}"
        );
    }

    #[test]
    fn directories_and_devices_are_refused_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_file(dir.path(), u64::MAX).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidInput(_)), "{e:?}");
        assert!(e.to_string().contains("a directory"), "{e}");
        #[cfg(unix)]
        {
            // /dev/zero would be read until memory ran out.
            let e = read_file(Path::new("/dev/zero"), u64::MAX).unwrap_err();
            assert!(e.to_string().contains("a character device"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pipe.jpg");
        let made = std::process::Command::new("mkfifo").arg(&p).status();
        if !matches!(made, Ok(s) if s.success()) {
            panic!("mkfifo is needed for this test: {made:?}");
        }
        // Opening a FIFO for reading blocks until a writer appears: a hang here is the bug.
        let e = read_file(&p, u64::MAX).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        // a FIFO swapped in after the metadata check: the open itself does not wait, and
        // what was opened is seen to be no regular file (read_file refuses it then)
        let (_f, meta) = open_regular(&p).expect("opened without a writer");
        assert!(meta.file_type().is_fifo());
    }
}
