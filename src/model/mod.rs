//! Models: named tensor sets, dequantized to f32, and where they come from.
//!
//! - [`Model`] and [`ModelTensor`]: a model's tensors in source order, values as
//!   [`WeightData`] (owned, or a zero-copy view into a memory-mapped file).
//! - `tfjs.rs`: the TF.js weights format (a JSON manifest plus `.bin` files; float32, or
//!   uint8 with a per-tensor `{scale, min}`), which face-api's models use.
//! - `fast.rs`: the engine's own binary form (`VDM2`), aligned so that a memory-mapped
//!   file is used in place; the model cache's disk tier stores it.
//! - [`ModelSource`]: files on disk or bytes supplied by the application.
//!
//! The network code (`crate::detect`, `crate::landmarks`) reads models from here; the
//! model cache (`crate::cache::ModelCache`) only decides which tier holds them.

mod fast;
mod integrity;
mod tfjs;

pub use integrity::{MIN_VARYING, PUBLISHED};

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Largest model file read: 4 GiB, the largest buffer a GPU we target binds
/// (`max_buffer_size` on the H200, docs/gpu-notes.md); face-api's files are under 1 MB.
const MODEL_FILE_MAX: u64 = 4 << 30;

/// A read-only memory map of a file.
pub(crate) type Mapped = memmap2::Mmap;

/// Per-tensor uint8 quantization of the source: `value = byte * scale + min`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    /// Step.
    pub scale: f32,
    /// Offset.
    pub min: f32,
}

/// Tensor values (f32): owned, or a zero-copy view into a memory-mapped disk-tier entry (a
/// reload maps the fast binary form and hands out views, so it neither parses nor copies).
/// Dereferences to `&[f32]`.
#[derive(Clone)]
pub struct WeightData(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Arc<[f32]>),
    /// `len` f32 at byte `offset` of the map; offset and alignment checked at construction.
    Mapped {
        map: Arc<Mapped>,
        offset: usize,
        len: usize,
    },
}

impl WeightData {
    /// A view of `len` f32 at byte `offset` of `map`, when in bounds and 4-byte aligned on a
    /// little-endian host (the fast form's byte order); `None` otherwise.
    pub(crate) fn mapped(map: &Arc<Mapped>, offset: usize, len: usize) -> Option<WeightData> {
        let bytes = map.get(offset..offset.checked_add(len.checked_mul(4)?)?)?;
        let ok =
            cfg!(target_endian = "little") && bytemuck::try_cast_slice::<u8, f32>(bytes).is_ok();
        ok.then(|| {
            WeightData(Repr::Mapped {
                map: map.clone(),
                offset,
                len,
            })
        })
    }

    /// True when the values live in a memory-mapped disk-tier entry.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped { .. })
    }
}

impl std::ops::Deref for WeightData {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.0 {
            Repr::Owned(v) => v,
            // in bounds and aligned: checked in `mapped`, and the map never changes
            Repr::Mapped { map, offset, len } => map
                .get(*offset..offset + len * 4)
                .and_then(|b| bytemuck::try_cast_slice(b).ok())
                .unwrap_or(&[]),
        }
    }
}

impl From<Vec<f32>> for WeightData {
    fn from(v: Vec<f32>) -> Self {
        WeightData(Repr::Owned(v.into()))
    }
}

impl PartialEq for WeightData {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for WeightData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "WeightData({kind}, {} f32)", self.len())
    }
}

/// One named tensor of a model, dequantized to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTensor {
    /// Name (`conv0/filters`).
    pub name: String,
    /// Shape as stored (TF.js: HWIO for convolutions).
    pub shape: Vec<usize>,
    /// Values.
    pub data: WeightData,
    /// The source's quantization, if it was quantized.
    pub quantization: Option<Quantization>,
}

/// A named set of tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Model name.
    pub name: String,
    /// Tensors in source order.
    pub tensors: Vec<ModelTensor>,
}

impl Model {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&ModelTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Bytes of tensor data.
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64 * 4).sum()
    }
}

/// Where a model comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ModelSource {
    /// A TF.js weights manifest on disk; the weight files sit beside it.
    TfjsFiles {
        /// Path of the `*-weights_manifest.json`.
        manifest: PathBuf,
    },
    /// A TF.js manifest and its concatenated weights, supplied by the application.
    TfjsBytes {
        /// Manifest JSON.
        manifest: Arc<[u8]>,
        /// Weight bytes, in manifest order.
        weights: Arc<[u8]>,
    },
}

/// What a source's files hold: the manifest, the weights in manifest order, and the BLAKE3
/// digest of both (length-prefixed, so no two splits of the same bytes collide).
pub(crate) struct SourceBytes {
    manifest: Vec<u8>,
    weights: Vec<u8>,
    pub(crate) digest: [u8; 32],
}

impl ModelSource {
    /// Reads the source, refusing files named like published ones that are not them.
    pub(crate) fn read(&self, name: &str) -> Result<SourceBytes> {
        let (manifest, weights) = match self {
            ModelSource::TfjsFiles { manifest } => {
                let file = |p: &std::path::Path| -> Result<Vec<u8>> {
                    // regular files only, opened without waiting (a FIFO would hang)
                    let b = crate::input::read_file(p, MODEL_FILE_MAX)?.to_vec();
                    let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    integrity::check_published(name, n.as_deref().unwrap_or_default(), &b)?;
                    Ok(b)
                };
                let m = file(manifest)?;
                let groups: Vec<serde_json::Value> = serde_json::from_slice(&m).map_err(|e| {
                    Error::new(ErrorKind::Cache(format!(
                        "model {name}: {}: {e}",
                        manifest.display()
                    )))
                })?;
                let dir = manifest.parent().map(PathBuf::from).unwrap_or_default();
                let mut weights = Vec::new();
                for g in &groups {
                    for p in g["paths"].as_array().into_iter().flatten() {
                        let f = p.as_str().unwrap_or_default();
                        weights.extend_from_slice(&file(&dir.join(f))?);
                    }
                }
                (m, weights)
            }
            ModelSource::TfjsBytes { manifest, weights } => (manifest.to_vec(), weights.to_vec()),
        };
        let mut h = blake3::Hasher::new();
        h.update(&(manifest.len() as u64).to_le_bytes());
        h.update(&manifest);
        h.update(&weights);
        Ok(SourceBytes {
            digest: *h.finalize().as_bytes(),
            manifest,
            weights,
        })
    }

    /// Loads the model, checking the content against the digest recorded at registration
    /// (`expected`) and refusing degenerate weights.
    pub(crate) fn load(&self, name: &str, expected: Option<&[u8; 32]>) -> Result<Model> {
        let b = self.read(name)?;
        if let Some(want) = expected {
            if *want != b.digest {
                return Err(Error::new(ErrorKind::Model(format!(
                    "model {name}: its files changed since it was registered (blake3 {} now, \
                     {} then); register it again to accept the new content",
                    blake3::Hash::from(b.digest).to_hex(),
                    blake3::Hash::from(*want).to_hex()
                ))));
            }
        }
        let m = Model::from_tfjs(name, &b.manifest, &b.weights)?;
        m.check_weights()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_io_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent-weights_manifest.json");
        let e = ModelSource::TfjsFiles {
            manifest: missing.clone(),
        }
        .load("detector", None)
        .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        // A weights file the manifest names but that is not there.
        let manifest = dir.path().join("m-weights_manifest.json");
        std::fs::write(
            &manifest,
            r#"[{"paths": ["m-shard1"], "weights": [{"name": "a", "shape": [1], "dtype": "float32"}]}]"#,
        )
        .unwrap();
        let e = ModelSource::TfjsFiles {
            manifest: manifest.clone(),
        }
        .load("m", None)
        .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
        let shard = dir.path().join("m-shard1");
        assert!(e.to_string().contains(&shard.display().to_string()), "{e}");
        // A manifest that is not JSON is named too.
        std::fs::write(&manifest, "not json").unwrap();
        let e = ModelSource::TfjsFiles {
            manifest: manifest.clone(),
        }
        .load("m", None)
        .unwrap_err();
        assert!(
            e.to_string().contains(&manifest.display().to_string()),
            "{e}"
        );
    }
}
