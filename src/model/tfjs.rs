//! The TF.js weights format: a JSON manifest (groups of `{name, shape, dtype,
//! quantization}` entries) and the weight bytes of its `paths`, in manifest order.

use serde::Deserialize;

use super::{Model, ModelTensor, Quantization};
use crate::error::{Error, ErrorKind, Result};

impl Model {
    /// Parses a TF.js layers/graph weights manifest and its weight bytes (float32, or uint8
    /// with per-tensor quantization), in manifest order.
    ///
    /// # Errors
    /// `Cache` for a malformed manifest or weights of the wrong length.
    pub fn from_tfjs(name: &str, manifest: &[u8], weights: &[u8]) -> Result<Model> {
        #[derive(Deserialize)]
        struct Group {
            weights: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            name: String,
            shape: Vec<usize>,
            dtype: String,
            quantization: Option<Quant>,
        }
        #[derive(Deserialize)]
        struct Quant {
            dtype: String,
            scale: f32,
            min: f32,
        }
        let bad = |m: String| Error::new(ErrorKind::Cache(format!("model {name}: {m}")));
        let groups: Vec<Group> =
            serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest: {e}")))?;
        let mut off = 0usize;
        let mut tensors = Vec::new();
        for e in groups.into_iter().flat_map(|g| g.weights) {
            let n: usize = e.shape.iter().product();
            let (data, quantization) = match (&e.quantization, e.dtype.as_str()) {
                (Some(q), _) if q.dtype == "uint8" => {
                    let raw = weights
                        .get(off..off + n)
                        .ok_or_else(|| bad(format!("{}: weights end early", e.name)))?;
                    off += n;
                    (
                        raw.iter()
                            .map(|&b| b as f32 * q.scale + q.min)
                            .collect::<Vec<f32>>(),
                        Some(Quantization {
                            scale: q.scale,
                            min: q.min,
                        }),
                    )
                }
                (None, "float32") => {
                    let raw = weights
                        .get(off..off + 4 * n)
                        .ok_or_else(|| bad(format!("{}: weights end early", e.name)))?;
                    off += 4 * n;
                    (
                        raw.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect(),
                        None,
                    )
                }
                (q, d) => {
                    return Err(bad(format!(
                        "{}: unsupported dtype {d} (quantization {:?})",
                        e.name,
                        q.as_ref().map(|q| q.dtype.clone())
                    )))
                }
            };
            tensors.push(ModelTensor {
                name: e.name,
                shape: e.shape,
                data: data.into(),
                quantization,
            });
        }
        if off != weights.len() {
            return Err(bad(format!(
                "weights have {} bytes, the manifest describes {off}",
                weights.len()
            )));
        }
        Ok(Model {
            name: name.to_string(),
            tensors,
        })
    }
}
