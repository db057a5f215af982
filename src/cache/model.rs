//! The model cache: named tensor sets in three tiers.
//!
//! ```text
//! get_gpu(name, upload)  GPU tier hit -> Arc (a map lookup)
//!                        miss -> get(name) -> upload -> GPU tier (LRU under its budget;
//!                        an evicted model keeps its host copy)
//! get(name)              host tier hit -> Arc
//!                        miss -> single flight: disk tier (fast binary form, memory-mapped,
//!                        no parsing) -> else the source (TF.js manifest + .bin, dequantized)
//!                        -> host tier (LRU under its budget; an evicted model is written to
//!                        the disk tier first)
//! ```
//! Concurrent callers for one model share one load. The CPU path uses the host copy.

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::disk::{DiskStore, EntryKind, Miss};
use super::{CacheEvent, CacheListener, SystemTimeSource, TierStats, WallClock, WeightedLru};
use crate::error::{Error, ErrorKind, Result};

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
pub struct TensorData(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Arc<[f32]>),
    /// `len` f32 at byte `offset` of the map; offset and alignment checked at construction.
    Mapped {
        map: Arc<super::Mapped>,
        offset: usize,
        len: usize,
    },
}

impl TensorData {
    /// A view of `len` f32 at byte `offset` of `map`, when in bounds and 4-byte aligned on a
    /// little-endian host (the fast form's byte order); `None` otherwise.
    fn mapped(map: &Arc<super::Mapped>, offset: usize, len: usize) -> Option<TensorData> {
        let bytes = map.get(offset..offset.checked_add(len.checked_mul(4)?)?)?;
        let ok =
            cfg!(target_endian = "little") && bytemuck::try_cast_slice::<u8, f32>(bytes).is_ok();
        ok.then(|| {
            TensorData(Repr::Mapped {
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

impl std::ops::Deref for TensorData {
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

impl From<Vec<f32>> for TensorData {
    fn from(v: Vec<f32>) -> Self {
        TensorData(Repr::Owned(v.into()))
    }
}

impl PartialEq for TensorData {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for TensorData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "TensorData({kind}, {} f32)", self.len())
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
    pub data: TensorData,
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

/// Fast-form tensor data starts on this byte boundary (of the payload, which itself starts
/// 64 bytes into a page-aligned map), so mapped views are aligned for f32 and SIMD loads.
const FAST_ALIGN: usize = 64;
const FAST_MAGIC: &[u8; 4] = b"VDM2";

impl Model {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&ModelTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Bytes of tensor data.
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64 * 4).sum()
    }

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
    fn from_fast_mapped(name: &str, map: Arc<super::Mapped>, base: usize) -> Result<Model> {
        let payload = map.get(base..).unwrap_or(&[]);
        Self::parse_fast(name, payload, |off, n| {
            TensorData::mapped(&map, base.checked_add(off)?, n)
        })
    }

    /// Parses the table; `data(offset, elements)` produces each tensor's values.
    fn parse_fast(
        name: &str,
        b: &[u8],
        data: impl Fn(usize, usize) -> Option<TensorData>,
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
    fn load(&self, name: &str) -> Result<Model> {
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
    fn fingerprint(&self) -> String {
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

/// Model cache settings. Every field has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct ModelCacheConfig {
    gpu_bytes: u64,
    host_bytes: u64,
    dir: Option<PathBuf>,
    disk_bytes: u64,
    clock: WallClock,
    listener: Option<Arc<dyn CacheListener>>,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        ModelCacheConfig {
            gpu_bytes: 256 << 20,
            host_bytes: 256 << 20,
            dir: None,
            disk_bytes: 1 << 30,
            clock: Arc::new(SystemTimeSource),
            listener: None,
        }
    }
}

impl ModelCacheConfig {
    /// GPU tier budget in bytes (part of the engine's GPU budget). Default: 256 MiB.
    pub fn gpu_bytes(mut self, b: u64) -> Self {
        self.gpu_bytes = b;
        self
    }

    /// Host tier budget in bytes. Default: 256 MiB.
    pub fn host_bytes(mut self, b: u64) -> Self {
        self.host_bytes = b;
        self
    }

    /// Disk tier directory (spill target, fast reloads). Default: none.
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Disk tier byte cap. Default: 1 GiB.
    pub fn disk_bytes(mut self, b: u64) -> Self {
        self.disk_bytes = b;
        self
    }

    /// Wall clock for the disk tier. Default: the system clock.
    pub fn clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// A listener for evict, spill and reload events. Default: none.
    pub fn listener(mut self, l: Arc<dyn CacheListener>) -> Self {
        self.listener = Some(l);
        self
    }
}

/// Counters per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ModelCacheStats {
    /// GPU-resident tier.
    pub gpu: TierStats,
    /// Host tier.
    pub host: TierStats,
    /// Disk tier (`load_time`: reloads from it).
    pub disk: TierStats,
    /// Loads from the original source (`load_time`: parsing + dequantizing).
    pub source: TierStats,
}

#[derive(Debug, Default)]
struct Flight {
    done: Mutex<Option<std::result::Result<Arc<Model>, String>>>,
    cv: Condvar,
}

type GpuEntry = Arc<dyn Any + Send + Sync>;

/// The model cache. Thread-safe.
#[derive(Debug)]
pub struct ModelCache {
    sources: Mutex<HashMap<String, ModelSource>>,
    gpu: Mutex<WeightedLru<String, GpuEntry>>,
    host: Mutex<WeightedLru<String, Arc<Model>>>,
    disk: Option<DiskStore>,
    inflight: Mutex<HashMap<String, Arc<Flight>>>,
    stats: Mutex<ModelCacheStats>,
    listener: Option<Arc<dyn CacheListener>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ModelCache {
    /// A cache with `cfg`.
    ///
    /// # Errors
    /// `Cache` when the spill directory cannot be created.
    pub fn new(cfg: ModelCacheConfig) -> Result<ModelCache> {
        let disk = match &cfg.dir {
            Some(d) => Some(DiskStore::open(d, cfg.disk_bytes, None, cfg.clock.clone())?),
            None => None,
        };
        Ok(ModelCache {
            sources: Mutex::new(HashMap::new()),
            gpu: Mutex::new(WeightedLru::new(cfg.gpu_bytes)),
            host: Mutex::new(WeightedLru::new(cfg.host_bytes)),
            disk,
            inflight: Mutex::new(HashMap::new()),
            stats: Mutex::new(ModelCacheStats::default()),
            listener: cfg.listener,
        })
    }

    fn emit(&self, e: CacheEvent) {
        if let Some(l) = &self.listener {
            l.on_event(&e);
        }
    }

    /// Registers where `name` loads from (replacing any earlier source).
    pub fn register(&self, name: &str, source: ModelSource) {
        lock(&self.sources).insert(name.to_string(), source);
    }

    fn disk_key(&self, name: &str) -> Option<String> {
        let src = lock(&self.sources).get(name)?.fingerprint();
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.model.v1\0");
        h.update(name.as_bytes());
        h.update(src.as_bytes());
        Some(h.finalize().to_hex().to_string())
    }

    /// The host copy of `name`: memory, else the disk tier, else the source. Concurrent
    /// callers share one load.
    ///
    /// # Errors
    /// `Cache` when the model is unknown or its source is malformed; `Io` for unreadable
    /// files.
    pub fn get(&self, name: &str) -> Result<Arc<Model>> {
        if let Some(m) = lock(&self.host).get(&name.to_string()) {
            let m = m.clone();
            lock(&self.stats).host.hits += 1;
            return Ok(m);
        }
        let (flight, leader) = {
            let mut inflight = lock(&self.inflight);
            match inflight.get(name) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    inflight.insert(name.to_string(), f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            let mut done = lock(&flight.done);
            while done.is_none() {
                done = flight.cv.wait(done).unwrap_or_else(|e| e.into_inner());
            }
            return match done.as_ref() {
                Some(Ok(m)) => Ok(m.clone()),
                Some(Err(e)) => Err(Error::new(ErrorKind::Cache(e.clone()))),
                None => Err(Error::new(ErrorKind::Cache("load vanished".into()))),
            };
        }
        lock(&self.stats).host.misses += 1;
        let result = self.load(name);
        {
            let mut done = lock(&flight.done);
            *done = Some(match &result {
                Ok(m) => Ok(m.clone()),
                Err(e) => Err(e.to_string()),
            });
            flight.cv.notify_all();
        }
        lock(&self.inflight).remove(name);
        result
    }

    fn load(&self, name: &str) -> Result<Arc<Model>> {
        let key = self.disk_key(name);
        if let (Some(disk), Some(key)) = (&self.disk, &key) {
            let t0 = Instant::now();
            match disk.get_mapped(key, EntryKind::Model) {
                Ok(entry) => {
                    let (map, base) = entry.into_parts();
                    if let Ok(m) = Model::from_fast_mapped(name, Arc::new(map), base) {
                        let m = Arc::new(m);
                        {
                            let mut s = lock(&self.stats);
                            s.disk.hits += 1;
                            s.disk.loads += 1;
                            s.disk.load_time += t0.elapsed();
                        }
                        self.emit(CacheEvent::Reloaded {
                            from: "disk",
                            key: name.to_string(),
                        });
                        self.insert_host(name, m.clone());
                        return Ok(m);
                    }
                    disk.remove(key);
                    lock(&self.stats).disk.corrupt += 1;
                }
                Err(Miss::Corrupt) => lock(&self.stats).disk.corrupt += 1,
                Err(_) => lock(&self.stats).disk.misses += 1,
            }
        }
        let source = lock(&self.sources)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Cache(format!("unknown model {name:?}"))))?;
        let t0 = Instant::now();
        let m = Arc::new(source.load(name)?);
        {
            let mut s = lock(&self.stats);
            s.source.loads += 1;
            s.source.load_time += t0.elapsed();
        }
        self.insert_host(name, m.clone());
        Ok(m)
    }

    fn insert_host(&self, name: &str, m: Arc<Model>) {
        let w = m.bytes();
        let evicted = {
            let mut h = lock(&self.host);
            let ev = h.insert(name.to_string(), m, w);
            let mut s = lock(&self.stats);
            s.host.insertions += 1;
            s.host.bytes = h.bytes();
            ev
        };
        for (k, model, bytes) in evicted {
            self.spill(&k, &model, bytes);
        }
    }

    /// Writes an evicted host model to the disk tier (when configured).
    fn spill(&self, name: &str, model: &Model, bytes: u64) {
        lock(&self.stats).host.evictions += 1;
        self.emit(CacheEvent::Evicted {
            tier: "host",
            key: name.to_string(),
            bytes,
        });
        if let (Some(disk), Some(key)) = (&self.disk, self.disk_key(name)) {
            // the key names the source version, so a verified entry already holds these
            // tensors (a model reloaded from disk and evicted again is not rewritten)
            let written = !disk.holds_verified(&key);
            if !written
                || disk
                    .put(&key, EntryKind::Model, &model.to_fast_bytes())
                    .is_ok()
            {
                if written {
                    lock(&self.stats).disk.insertions += 1;
                }
                self.emit(CacheEvent::Spilled {
                    to: "disk",
                    key: name.to_string(),
                });
            }
        }
    }

    /// Drops `name` from the host tier, spilling it to disk (as a budget eviction would).
    pub fn evict_host(&self, name: &str) {
        let removed = lock(&self.host).remove(&name.to_string());
        if let Some((m, bytes)) = removed {
            lock(&self.stats).host.bytes = lock(&self.host).bytes();
            self.spill(name, &m, bytes);
        }
    }

    /// The GPU-resident form of `name`: a hit is a map lookup; a miss takes the host copy
    /// (loading it if needed) and calls `upload`, which returns the device object and its
    /// bytes. GPU evictions keep the host copy.
    ///
    /// # Errors
    /// Whatever loading or `upload` returns; `Cache` when the stored object is of another
    /// type than `T`.
    pub fn get_gpu<T: Any + Send + Sync>(
        &self,
        name: &str,
        upload: impl FnOnce(&Model) -> Result<(T, u64)>,
    ) -> Result<Arc<T>> {
        let hit = lock(&self.gpu).get(&name.to_string()).cloned();
        if let Some(e) = hit {
            lock(&self.stats).gpu.hits += 1;
            return e.downcast::<T>().map_err(|_| {
                Error::new(ErrorKind::Cache(format!("model {name}: gpu type mismatch")))
            });
        }
        lock(&self.stats).gpu.misses += 1;
        let model = self.get(name)?;
        let t0 = Instant::now();
        let (obj, bytes) = upload(&model)?;
        let obj = Arc::new(obj);
        let evicted = {
            let mut g = lock(&self.gpu);
            let ev = g.insert(name.to_string(), obj.clone() as GpuEntry, bytes);
            let mut s = lock(&self.stats);
            s.gpu.insertions += 1;
            s.gpu.loads += 1;
            s.gpu.load_time += t0.elapsed();
            s.gpu.bytes = g.bytes();
            s.gpu.evictions += ev.iter().filter(|e| e.0 != name).count() as u64;
            ev
        };
        for (k, _, b) in evicted {
            self.emit(CacheEvent::Evicted {
                tier: "gpu",
                key: k,
                bytes: b,
            });
        }
        Ok(obj)
    }

    /// Loads the named models ahead of use (host tier), stopping at the first failure.
    ///
    /// # Errors
    /// The first model that fails to load.
    pub fn preload(&self, names: &[&str]) -> Result<()> {
        for n in names {
            self.get(n)?;
        }
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> ModelCacheStats {
        let mut s = *lock(&self.stats);
        if let Some(d) = &self.disk {
            s.disk.bytes = d.bytes();
        }
        s
    }

    /// Empties every tier (the disk tier's files included).
    pub fn wipe(&self) {
        lock(&self.gpu).clear();
        lock(&self.host).clear();
        if let Some(d) = &self.disk {
            d.wipe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_source() -> ModelSource {
        let manifest = br#"[{"paths":["w.bin"],"weights":[
            {"name":"a","shape":[2,2],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.5,"min":-1.0}},
            {"name":"b","shape":[3],"dtype":"float32"}]}]"#;
        let mut w = vec![0u8, 1, 2, 255];
        for v in [1.5f32, -2.0, 0.25] {
            w.extend_from_slice(&v.to_le_bytes());
        }
        ModelSource::TfjsBytes {
            manifest: manifest.to_vec().into(),
            weights: w.into(),
        }
    }

    #[test]
    fn parses_quantized_and_float_tensors() {
        let c = ModelCache::new(ModelCacheConfig::default()).unwrap();
        c.register("m", tiny_source());
        let m = c.get("m").unwrap();
        assert_eq!(&m.tensor("a").unwrap().data[..], &[-1.0, -0.5, 0.0, 126.5]);
        assert_eq!(&m.tensor("b").unwrap().data[..], &[1.5, -2.0, 0.25]);
        let fast = m.to_fast_bytes();
        let back = Model::from_fast_bytes("m", &fast).unwrap();
        assert_eq!(&back, &*m);
        // every truncation and a table pointing past the end are errors, never panics
        for n in 0..fast.len() {
            assert!(Model::from_fast_bytes("m", &fast[..n]).is_err(), "{n}");
        }
        let mut bad = fast.clone();
        // the first tensor's data offset (after magic, count and its 37-byte entry) + 4 KiB
        bad[8 + 37 + 1] ^= 0x10;
        assert!(Model::from_fast_bytes("m", &bad).is_err());
    }

    #[test]
    fn wrong_weight_length_is_refused() {
        let c = ModelCache::new(ModelCacheConfig::default()).unwrap();
        c.register(
            "m",
            ModelSource::TfjsBytes {
                manifest:
                    br#"[{"paths":[],"weights":[{"name":"a","shape":[4],"dtype":"float32"}]}]"#
                        .to_vec()
                        .into(),
                weights: vec![0u8; 15].into(),
            },
        );
        assert!(c.get("m").is_err());
        assert!(c.get("unknown").is_err());
    }

    #[test]
    fn gpu_tier_hits_and_evicts_to_host() {
        let c = ModelCache::new(ModelCacheConfig::default().gpu_bytes(100)).unwrap();
        c.register("m", tiny_source());
        c.register("n", tiny_source());
        let up = |m: &Model| Ok((m.bytes(), 60));
        let a = c.get_gpu("m", up).unwrap();
        let b = c
            .get_gpu("m", |_| -> Result<(u64, u64)> { panic!("must hit") })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        c.get_gpu("n", up).unwrap();
        let s = c.stats();
        assert_eq!((s.gpu.hits, s.gpu.evictions), (1, 1), "{s:?}");
        // "m" left the gpu tier but its host copy remains
        assert!(c.get("m").is_ok());
        assert_eq!(c.stats().source.loads, 2, "no reload from the source");
    }
}
