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
mod tfjs;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

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

impl ModelSource {
    pub(crate) fn load(&self, name: &str) -> Result<Model> {
        match self {
            ModelSource::TfjsFiles { manifest } => {
                let m = std::fs::read(manifest)?;
                let paths: Vec<serde_json::Value> = serde_json::from_slice(&m)
                    .map_err(|e| Error::new(ErrorKind::Cache(format!("model {name}: {e}"))))?;
                let dir = manifest.parent().map(PathBuf::from).unwrap_or_default();
                let mut weights = Vec::new();
                for g in &paths {
                    for p in g["paths"].as_array().into_iter().flatten() {
                        let f = p.as_str().unwrap_or_default();
                        weights.extend_from_slice(&std::fs::read(dir.join(f))?);
                    }
                }
                Model::from_tfjs(name, &m, &weights)
            }
            ModelSource::TfjsBytes { manifest, weights } => {
                Model::from_tfjs(name, manifest, weights)
            }
        }
    }

    /// Identifies the source's current content, so a changed source never reloads a stale
    /// disk copy: file sizes and modification times, or a hash of supplied bytes.
    pub(crate) fn fingerprint(&self) -> String {
        match self {
            ModelSource::TfjsFiles { manifest } => {
                let meta = |p: &std::path::Path| {
                    std::fs::metadata(p).ok().map(|m| {
                        let t = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        format!("{}:{}", m.len(), t)
                    })
                };
                let bin = manifest.with_file_name(
                    manifest
                        .file_name()
                        .map(|n| {
                            n.to_string_lossy()
                                .replace("-weights_manifest.json", ".bin")
                        })
                        .unwrap_or_default(),
                );
                format!(
                    "{}|{:?}|{:?}",
                    manifest.display(),
                    meta(manifest),
                    meta(&bin)
                )
            }
            ModelSource::TfjsBytes { manifest, weights } => {
                let mut h = blake3::Hasher::new();
                h.update(manifest);
                h.update(weights);
                h.finalize().to_hex().to_string()
            }
        }
    }
}
