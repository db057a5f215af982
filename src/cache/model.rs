//! The model cache: named tensor sets in three tiers.
//!
//! ```text
//! get_gpu(name, upload)  GPU tier hit -> Arc (a map lookup)
//!                        miss -> get(name) -> upload -> GPU tier (LRU under its budget;
//!                        an evicted model keeps its host copy)
//! get(name)              host tier hit -> Arc
//!                        miss -> single flight: disk tier (fast binary form, read and
//!                        verified into an anonymous map, viewed in place, no parsing) -> else the source (TF.js manifest + .bin, dequantized)
//!                        -> host tier (LRU under its budget; an evicted model is written to
//!                        the disk tier first)
//! ```
//! Concurrent callers for one model share one load. The CPU path uses the host copy.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::disk::{DiskStore, EntryKind, Miss};
use super::{CacheEvent, CacheListener, Tier, TierSettings, TierStats, WeightedLru};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Model, ModelSource};

/// A registered source and the digest of its content when it was registered.
#[derive(Debug, Clone)]
struct Registered {
    source: ModelSource,
    digest: std::result::Result<[u8; 32], Unread>,
}

/// Why a source could not be read at registration: an io error (its kind and its message,
/// which names the file) or another error's message.
#[derive(Debug, Clone)]
enum Unread {
    Io(std::io::ErrorKind, String),
    Other(String),
}

impl From<Error> for Unread {
    fn from(e: Error) -> Unread {
        match e.kind() {
            ErrorKind::Io(io) => Unread::Io(io.kind(), io.to_string()),
            _ => Unread::Other(e.to_string()),
        }
    }
}

/// Model cache settings. Every field has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct ModelCacheConfig {
    gpu_bytes: u64,
    host_bytes: u64,
    tiers: TierSettings,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        ModelCacheConfig {
            gpu_bytes: 256 << 20,
            host_bytes: 256 << 20,
            tiers: TierSettings::new(1 << 30),
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

    super::tier_setters!(
        spill_dir: "Disk tier directory (spill target, fast reloads). Default: none.",
        disk_bytes: "Disk tier byte cap. Default: 1 GiB.",
        clock: "Wall clock for the disk tier. Default: the system clock.",
        listener: "A listener for evict, spill and reload events. Default: none.",
    );
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
    sources: Mutex<HashMap<String, Registered>>,
    gpu: Mutex<WeightedLru<String, GpuEntry>>,
    host: Mutex<WeightedLru<String, Arc<Model>>>,
    disk: Option<DiskStore>,
    inflight: Mutex<HashMap<String, Arc<Flight>>>,
    stats: Mutex<ModelCacheStats>,
    listener: Option<Arc<dyn CacheListener>>,
    disk_warning: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ModelCache {
    /// A cache with `cfg`.
    ///
    /// A spill directory that cannot be created or written leaves the cache without its
    /// disk tier, with a warning ([`disk_warning`](Self::disk_warning)).
    ///
    /// # Errors
    /// None at present (the `Result` is kept for settings that may fail later).
    pub fn new(cfg: ModelCacheConfig) -> Result<ModelCache> {
        let (disk, disk_warning) = cfg.tiers.open_disk("model cache", None);
        Ok(ModelCache {
            sources: Mutex::new(HashMap::new()),
            gpu: Mutex::new(WeightedLru::new(cfg.gpu_bytes)),
            host: Mutex::new(WeightedLru::new(cfg.host_bytes)),
            disk,
            inflight: Mutex::new(HashMap::new()),
            stats: Mutex::new(ModelCacheStats::default()),
            listener: cfg.tiers.listener,
            disk_warning,
        })
    }

    /// Why the configured disk tier is off (its directory could not be created or written),
    /// if it is.
    pub fn disk_warning(&self) -> Option<&str> {
        self.disk_warning.as_deref()
    }

    fn emit(&self, e: CacheEvent) {
        if let Some(l) = &self.listener {
            l.on_event(&e);
        }
    }

    /// Registers where `name` loads from (replacing any earlier source) and records a
    /// digest of its content now: a later load of different content is refused, and the
    /// disk tier is keyed by content. Files named like face-api's published ones must be
    /// them ([`crate::model::PUBLISHED`]). A source that cannot be read now is recorded
    /// as such and reported when the model is first used.
    pub fn register(&self, name: &str, source: ModelSource) {
        let digest = source.read(name).map(|b| b.digest).map_err(Unread::from);
        lock(&self.sources).insert(name.to_string(), Registered { source, digest });
    }

    fn disk_key(&self, name: &str) -> Option<String> {
        let src = blake3::Hash::from(*lock(&self.sources).get(name)?.digest.as_ref().ok()?)
            .to_hex()
            .to_string();
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.model.v2\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(src.as_bytes());
        // a rebuilt engine re-derives the fast form from the source once
        h.update(b"\0");
        h.update(crate::BUILD_ID.as_bytes());
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
                            from: Tier::Disk,
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
        let Registered { source, digest } = lock(&self.sources)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Cache(format!("unknown model {name:?}"))))?;
        let digest = digest.map_err(|e| match e {
            // an unreadable file stays an io error (its message names the file)
            Unread::Io(kind, msg) => Error::from(std::io::Error::new(
                kind,
                format!("model {name} could not be read when registered: {msg}"),
            )),
            Unread::Other(msg) => Error::new(ErrorKind::Model(format!(
                "model {name} could not be read when registered: {msg}"
            ))),
        })?;
        let t0 = Instant::now();
        let m = Arc::new(source.load(name, Some(&digest))?);
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
            tier: Tier::Host,
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
                    to: Tier::Disk,
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
                tier: Tier::Gpu,
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
    fn a_missing_manifest_is_an_io_error_naming_it() {
        let c = ModelCache::new(ModelCacheConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("gone-weights_manifest.json");
        c.register(
            "gone",
            ModelSource::TfjsFiles {
                manifest: manifest.clone(),
            },
        );
        let e = c.get("gone").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&manifest.display().to_string()), "{msg}");
        assert!(msg.contains("when registered"), "{msg}");
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
