//! The fast binary form of a model (the model cache's disk tier stores it): no JSON, no
//! dequantization, and values aligned so that a memory-mapped file is used in place.

use std::sync::Arc;

use super::{Mapped, Model, ModelTensor, Quantization, WeightData};
use crate::error::{Error, ErrorKind, Result};

/// Fast-form tensor data starts on this byte boundary (of the payload, which itself starts
/// 64 bytes into a page-aligned map), so mapped views are aligned for f32 and SIMD loads.
const FAST_ALIGN: usize = 64;
const FAST_MAGIC: &[u8; 4] = b"VDM2";

impl Model {
    /// The fast binary form (the disk tier's payload): `"VDM2" | count u32 | per tensor:
    /// name len u16, name, ndim u8, dims u64, quantized u8, scale f32, min f32, elements u64,
    /// data offset u64` then each tensor's little-endian f32 values at its offset (a multiple
    /// of 64 bytes from the payload start, so a mapped reload can view them in place).
    pub fn to_fast_bytes(&self) -> Vec<u8> {
        let mut out = FAST_MAGIC.to_vec();
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        let table: usize = self
            .tensors
            .iter()
            .map(|t| 2 + t.name.len() + 1 + 8 * t.shape.len() + 1 + 4 + 4 + 8 + 8)
            .sum();
        let mut off = (8 + table).next_multiple_of(FAST_ALIGN);
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            out.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
            out.extend_from_slice(t.name.as_bytes());
            out.push(t.shape.len() as u8);
            for d in &t.shape {
                out.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            let q = t.quantization.unwrap_or(Quantization {
                scale: 0.0,
                min: 0.0,
            });
            out.push(t.quantization.is_some() as u8);
            out.extend_from_slice(&q.scale.to_le_bytes());
            out.extend_from_slice(&q.min.to_le_bytes());
            out.extend_from_slice(&(t.data.len() as u64).to_le_bytes());
            out.extend_from_slice(&(off as u64).to_le_bytes());
            offsets.push(off);
            off = (off + 4 * t.data.len()).next_multiple_of(FAST_ALIGN);
        }
        for (t, &o) in self.tensors.iter().zip(&offsets) {
            out.resize(o, 0);
            for v in t.data.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Reads the fast binary form, copying the values (no JSON, no dequantization).
    ///
    /// # Errors
    /// `Cache` when malformed.
    pub fn from_fast_bytes(name: &str, b: &[u8]) -> Result<Model> {
        Self::parse_fast(name, b, |off, n| {
            let raw = b.get(off..off.checked_add(n.checked_mul(4)?)?)?;
            let v: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Some(v.into())
        })
    }

    /// Reads the fast form from a mapped disk entry whose payload starts at byte `base`:
    /// the tensors are views into the map (zero-copy; the map lives as long as they do).
    pub(crate) fn from_fast_mapped(name: &str, map: Arc<Mapped>, base: usize) -> Result<Model> {
        let payload = map.get(base..).unwrap_or(&[]);
        Self::parse_fast(name, payload, |off, n| {
            WeightData::mapped(&map, base.checked_add(off)?, n)
        })
    }

    /// Parses the table; `data(offset, elements)` produces each tensor's values.
    fn parse_fast(
        name: &str,
        b: &[u8],
        data: impl Fn(usize, usize) -> Option<WeightData>,
    ) -> Result<Model> {
        let bad = || {
            Error::new(ErrorKind::Cache(format!(
                "model {name}: malformed fast form"
            )))
        };
        let mut pos = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = b
                .get(pos..pos.checked_add(n).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            pos += n;
            Ok(s)
        };
        if take(4)? != FAST_MAGIC {
            return Err(bad());
        }
        let u64_le = |s: &[u8]| -> Result<usize> {
            let a: [u8; 8] = s.try_into().map_err(|_| bad())?;
            usize::try_from(u64::from_le_bytes(a)).map_err(|_| bad())
        };
        let f32_le =
            |s: &[u8]| -> Result<f32> { Ok(f32::from_le_bytes(s.try_into().map_err(|_| bad())?)) };
        let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
        let mut tensors = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let nl = u16::from_le_bytes(take(2)?.try_into().map_err(|_| bad())?) as usize;
            let tname = std::str::from_utf8(take(nl)?)
                .map_err(|_| bad())?
                .to_string();
            let nd = take(1)?[0] as usize;
            let mut shape = Vec::with_capacity(nd);
            for _ in 0..nd {
                shape.push(u64_le(take(8)?)?);
            }
            let quantized = take(1)?[0] == 1;
            let scale = f32_le(take(4)?)?;
            let min = f32_le(take(4)?)?;
            let n = u64_le(take(8)?)?;
            let off = u64_le(take(8)?)?;
            if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(n) {
                return Err(bad());
            }
            tensors.push(ModelTensor {
                name: tname,
                shape,
                data: data(off, n).ok_or_else(bad)?,
                quantization: quantized.then_some(Quantization { scale, min }),
            });
        }
        Ok(Model {
            name: name.to_string(),
            tensors,
        })
    }
}
