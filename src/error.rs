//! The crate's one error type.
//!
//! [`Error`] is opaque and cheap to move (one box); [`Error::kind`] tells what went wrong and
//! whose fault it is, so a caller can act on it: fix the input, shrink the batch, retry later,
//! or fall back to the CPU. Batch APIs return one `Result` per item, and an item's error names
//! the input it came from ([`Error::input`]).

use std::fmt;

/// Shorthand for `Result<T, veridoc::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the engine: a [`ErrorKind`] plus, for per-item errors, the input it concerns.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    input: Option<String>,
}

/// What went wrong. Each variant says whose fault it is and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A pipeline spec or builder setting is invalid (the caller's fault): `field` names the
    /// offending field (`resize.width`, `normalize.std[1]`, ...). Fix the spec.
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// Dotted path of the field, as in the serialized spec.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// An input or argument is unusable (the caller's fault): empty bytes, a buffer whose length
    /// does not match its dimensions, a crop outside the image, an empty batch.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The input could not be decoded: corrupt, truncated or malformed data (the input's fault).
    /// Other items of a batch are unaffected.
    #[error("decode failed ({format}): {reason}")]
    Decode {
        /// The detected format, or `unknown`.
        format: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// The format or feature is not supported (by this build or at all).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A limit or budget was exceeded; see [`LimitError`] for whether it can ever fit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The GPU path failed; see [`GpuError`]. With the `auto` policy the engine re-runs the
    /// batch on the CPU.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A cache entry or cache directory problem (corrupt entry, checksum mismatch).
    #[error("cache: {0}")]
    Cache(String),
    /// A model is malformed or is not the architecture its user expects (a tensor missing or
    /// of the wrong shape). Supply the right model files.
    #[error("model: {0}")]
    Model(String),
    /// The operation was cancelled through its cancellation token.
    #[error("cancelled")]
    Cancelled,
    /// An I/O error reading an input or writing output.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What a budget or limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resource {
    /// The engine's host memory budget (decoded frames, intermediates, outputs).
    HostMemory,
    /// The GPU memory budget (by the engine's own accounting).
    GpuMemory,
    /// One allocation a decoder asks for.
    DecodeAllocation,
    /// The size of one input (file or buffer) before it is read.
    InputBytes,
    /// Metadata of one input: JPEG APPn/COM segments, PNG ancillary chunks (iCCP, zTXt,
    /// iTXt, ...), counted before decoding.
    Metadata,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::HostMemory => "host memory",
            Resource::GpuMemory => "gpu memory",
            Resource::DecodeAllocation => "decode allocation",
            Resource::InputBytes => "input size",
            Resource::Metadata => "image metadata",
        })
    }
}

/// A limit or budget was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The request can never fit under the configured limit: shrink the batch or the images,
    /// or raise the limit.
    #[error("{what}: requested {} exceeds the limit of {}", fmt_bytes(*requested), fmt_bytes(*limit))]
    ExceedsBudget {
        /// What was being reserved.
        what: Resource,
        /// Bytes requested.
        requested: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The request fits the limit but not right now: wait for in-flight work, trim caches or
    /// retry ([`Error::is_retryable`]).
    #[error("{what}: requested {} but only {} is available now", fmt_bytes(*requested), fmt_bytes(*available))]
    InsufficientNow {
        /// What was being reserved.
        what: Resource,
        /// Bytes requested.
        requested: u64,
        /// Bytes available at the time of the request.
        available: u64,
    },
    /// An image dimension or pixel count is over a configured decode limit (possibly a
    /// decompression bomb). Raise the limit only for trusted inputs.
    #[error("image {width}x{height} is over the limit ({limit})")]
    DimensionTooLarge {
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// Which limit was hit, with its value.
        limit: String,
    },
    /// A progressive JPEG needs more scans than allowed (each scan passes over the whole
    /// image: thousands of tiny scans cost minutes for a few hundred kilobytes).
    #[error("jpeg has more than {limit} scans")]
    TooManyScans {
        /// The configured limit.
        limit: u32,
    },
    /// One item took longer than its deadline; the work stopped where it was checked.
    #[error("{stage} took over the deadline of {} ms", limit.as_millis())]
    Deadline {
        /// What was running (e.g. "jpeg decode").
        stage: &'static str,
        /// The configured deadline.
        limit: std::time::Duration,
    },
}

/// A failure on the GPU path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter matched the selection (or the `gpu` feature is off).
    #[error("no gpu adapter: {0}")]
    NoAdapter(String),
    /// The device could not be created.
    #[error("gpu device request failed: {0}")]
    RequestDevice(String),
    /// The device was lost (driver reset, removal); the engine must be rebuilt to use the GPU.
    #[error("gpu device lost: {0}")]
    DeviceLost(String),
    /// The driver ran out of memory despite the budget.
    #[error("gpu out of memory: {0}")]
    OutOfMemory(String),
    /// A wgpu validation error: a bug in the engine; please report it.
    #[error("gpu validation error: {0}")]
    Validation(String),
    /// Mapping a buffer for readback failed.
    #[error("gpu buffer map failed: {0}")]
    BufferMap(String),
    /// A shader failed to compile on this adapter.
    #[error("shader compile failed: {0}")]
    ShaderCompile(String),
    /// The request does not fit the adapter's limits (binding size, dispatch size).
    #[error("over gpu limit: {0}")]
    OverLimit(String),
}

impl Error {
    /// A copy of this error (the kind and the input), for reporting one failure on several
    /// items; I/O errors keep their kind and message.
    pub(crate) fn duplicate(&self) -> Error {
        let kind = match self.kind() {
            ErrorKind::InvalidSpec { field, reason } => ErrorKind::InvalidSpec {
                field: field.clone(),
                reason: reason.clone(),
            },
            ErrorKind::InvalidInput(s) => ErrorKind::InvalidInput(s.clone()),
            ErrorKind::Decode { format, reason } => ErrorKind::Decode {
                format,
                reason: reason.clone(),
            },
            ErrorKind::Unsupported(s) => ErrorKind::Unsupported(s.clone()),
            ErrorKind::Limit(l) => ErrorKind::Limit(l.clone()),
            ErrorKind::Gpu(g) => ErrorKind::Gpu(g.clone()),
            ErrorKind::Cache(s) => ErrorKind::Cache(s.clone()),
            ErrorKind::Model(s) => ErrorKind::Model(s.clone()),
            ErrorKind::Cancelled => ErrorKind::Cancelled,
            ErrorKind::Io(e) => ErrorKind::Io(std::io::Error::new(e.kind(), e.to_string())),
        };
        Error {
            inner: Box::new(Inner {
                kind,
                input: self.inner.input.clone(),
            }),
        }
    }

    /// A new error of this kind.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            inner: Box::new(Inner { kind, input: None }),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// Consumes the error, returning its kind.
    pub fn into_kind(self) -> ErrorKind {
        self.inner.kind
    }

    /// The input this error concerns (its path or name), for per-item errors.
    pub fn input(&self) -> Option<&str> {
        self.inner.input.as_deref()
    }

    /// Attaches the name of the input this error concerns (kept if one is already set).
    #[must_use]
    pub fn with_input(mut self, input: impl Into<String>) -> Self {
        if self.inner.input.is_none() {
            self.inner.input = Some(input.into());
        }
        self
    }

    /// A stable, machine-readable code for the kind of error, for reports, exit summaries
    /// and scripts (the message may change between versions; the code does not):
    ///
    /// | code | meaning | what to do |
    /// |---|---|---|
    /// | `invalid_spec` | a spec, profile or setting is invalid | fix the spec |
    /// | `invalid_input` | an input or argument is unusable | fix the input |
    /// | `not_found` | a file does not exist | fix the path |
    /// | `permission_denied` | a file cannot be opened | fix its permissions |
    /// | `io` | another read or write error | see the message |
    /// | `decode` | corrupt, truncated or malformed image data | the input is bad |
    /// | `unsupported` | a format or feature this build cannot handle | convert it |
    /// | `over_limit` | over a size, pixel, scan or budget limit (can never fit) | raise the limit for trusted inputs |
    /// | `busy` | a budget is full right now | retry later |
    /// | `deadline` | the item took longer than its deadline | raise the deadline |
    /// | `gpu` | the GPU path failed | use the CPU |
    /// | `cache` | a cache entry or directory problem | clear the cache |
    /// | `model` | a model is missing or malformed | supply the right model files |
    /// | `cancelled` | the run was cancelled | none |
    pub fn code(&self) -> &'static str {
        match self.kind() {
            ErrorKind::InvalidSpec { .. } => "invalid_spec",
            ErrorKind::InvalidInput(_) => "invalid_input",
            ErrorKind::Decode { .. } => "decode",
            ErrorKind::Unsupported(_) => "unsupported",
            ErrorKind::Limit(LimitError::InsufficientNow { .. }) => "busy",
            ErrorKind::Limit(LimitError::Deadline { .. }) => "deadline",
            ErrorKind::Limit(_) => "over_limit",
            ErrorKind::Gpu(_) => "gpu",
            ErrorKind::Cache(_) => "cache",
            ErrorKind::Model(_) => "model",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Io(e) => match e.kind() {
                std::io::ErrorKind::NotFound => "not_found",
                std::io::ErrorKind::PermissionDenied => "permission_denied",
                _ => "io",
            },
        }
    }

    /// True when the same request may succeed later (a transient budget shortfall, a device
    /// loss after which a rebuilt engine may work).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Limit(LimitError::InsufficientNow { .. })
                | ErrorKind::Gpu(GpuError::DeviceLost(_) | GpuError::OutOfMemory(_))
        )
    }

    /// True when the failed GPU work can be re-run on the CPU (what the `auto` policy does).
    pub fn is_gpu_fallback_eligible(&self) -> bool {
        matches!(self.kind(), ErrorKind::Gpu(_))
            || matches!(self.kind(), ErrorKind::Limit(_)) && self.is_gpu_budget()
    }

    fn is_gpu_budget(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Limit(
                LimitError::ExceedsBudget {
                    what: Resource::GpuMemory,
                    ..
                } | LimitError::InsufficientNow {
                    what: Resource::GpuMemory,
                    ..
                }
            )
        )
    }

    pub(crate) fn spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ErrorKind::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
        .into()
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        ErrorKind::InvalidInput(msg.into()).into()
    }

    /// An io error that names the file it happened on (same `io::ErrorKind`).
    pub(crate) fn io_at(path: &std::path::Path, e: std::io::Error) -> Self {
        std::io::Error::new(e.kind(), format!("{}: {e}", path.display())).into()
    }

    pub(crate) fn decode(format: &'static str, reason: impl Into<String>) -> Self {
        ErrorKind::Decode {
            format,
            reason: reason.into(),
        }
        .into()
    }

    pub(crate) fn unsupported(msg: impl Into<String>) -> Self {
        ErrorKind::Unsupported(msg.into()).into()
    }
}

impl<T: Into<ErrorKind>> From<T> for Error {
    fn from(kind: T) -> Self {
        Error::new(kind.into())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(input) = &self.inner.input {
            d.field("input", input);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.input {
            Some(input) => write!(f, "{input}: {}", self.inner.kind),
            None => write!(f, "{}", self.inner.kind),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Formats a byte count with binary units (`1.5 GiB`), as error messages and reports show it.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_input_and_numbers() {
        let e = Error::from(LimitError::ExceedsBudget {
            what: Resource::HostMemory,
            requested: 3 << 30,
            limit: 2 << 30,
        })
        .with_input("a.jpg");
        assert_eq!(
            e.to_string(),
            "a.jpg: host memory: requested 3.0 GiB exceeds the limit of 2.0 GiB"
        );
        assert_eq!(e.input(), Some("a.jpg"));
        assert!(!e.is_retryable(), "exceeding a budget can never succeed");
    }

    #[test]
    fn retryable_and_fallback() {
        let e = Error::from(LimitError::InsufficientNow {
            what: Resource::GpuMemory,
            requested: 10,
            available: 5,
        });
        assert!(e.is_retryable(), "insufficient-now is transient");
        assert!(
            e.is_gpu_fallback_eligible(),
            "gpu budget shortfall can run on cpu"
        );
        let e = Error::from(GpuError::DeviceLost("reset".into()));
        assert!(e.is_gpu_fallback_eligible(), "device loss falls back");
        let e = Error::spec("resize.width", "must be > 0");
        assert!(
            !e.is_gpu_fallback_eligible(),
            "spec errors are the caller's"
        );
    }

    #[test]
    fn fmt_bytes_units() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(512 << 20), "512.0 MiB");
    }
}
