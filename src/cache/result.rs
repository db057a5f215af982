//! The result cache: preprocessed tensors, in memory (LRU weighted by bytes) and on disk.
//!
//! ```text
//! key = blake3("veridoc.result.v2" | input digest | pipeline.stable_hash() | engine version
//!              | build fingerprint)
//! input digest = blake3(encoded bytes) | blake3(frame size + pixels)
//!   fast path for files (unix only; elsewhere every file is hashed):
//!   (canonical path, size, mtime ns, device, inode, ctime ns) -> digest, remembered in
//!   memory and on disk. A write or a rename into place changes the change time (which no
//!   writer can set back) or the inode, so an edit that keeps the size and restores the
//!   mtime, or a same-size file renamed over the old one, is hashed again. Residual: two
//!   writes within one tick of the filesystem's timestamp clock (a few ms on ext4, xfs,
//!   btrfs, tmpfs; 1-2 s on FAT, HFS+ and some network filesystems) can share a ctime; set
//!   `fast_path(false)` where inputs are rewritten that fast or timestamps are coarse.
//!   The build fingerprint ([`crate::BUILD_ID`]) makes a rebuilt engine miss every entry
//!   its predecessor wrote.
//! get: memory -> disk (verified, then promoted to memory) -> miss
//! put: memory (evicting LRU entries by bytes) and disk (atomic, checksummed, TTL, capped)
//! ```

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use lru::LruCache;
use serde::Serialize;

use super::disk::{DiskStore, EntryKind, Miss};
use super::{CacheEvent, CacheListener, RemovalCause, Tier, TierSettings, TierStats, WeightedLru};
use crate::error::Result;
use crate::input::Input;
use crate::spec::Pipeline;
use crate::tensor::Tensor;

/// Result cache settings. Every field has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheConfig {
    memory_bytes: u64,
    ttl: Duration,
    fast_path: bool,
    tiers: TierSettings,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_bytes: 256 << 20,
            ttl: Duration::from_secs(24 * 3600),
            fast_path: true,
            tiers: TierSettings::new(2 << 30),
        }
    }
}

impl CacheConfig {
    /// Memory tier only (nothing persisted). Default memory budget: 256 MiB.
    pub fn memory(bytes: u64) -> Self {
        CacheConfig {
            memory_bytes: bytes,
            ..Self::default()
        }
    }

    /// Memory tier budget in bytes. Default: 256 MiB.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    super::tier_setters!(
        disk: "Enables the disk tier in `dir`. Default: none (no-persist mode).",
        disk_bytes: "Disk tier byte cap (least recently used entries evicted). Default: 2 GiB.",
        clock: "The wall clock for TTLs. Default: the system clock.",
        listener: "A listener for evictions, spills, reloads and removals. Default: none.",
    );

    /// Time to live of disk entries (identity photos should not linger). Default: 24 h.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Skip hashing files whose (path, size, mtime, device, inode, ctime) was seen before
    /// (unix only; elsewhere files are always hashed). Default: true.
    pub fn fast_path(mut self, on: bool) -> Self {
        self.fast_path = on;
        self
    }
}

/// A content digest, with the file's bytes when they had to be read for it.
pub(crate) type Digested = ([u8; 32], Option<Arc<[u8]>>);

/// Counters of the result cache, per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ResultCacheStats {
    /// The memory tier.
    pub memory: TierStats,
    /// The disk tier (`bytes` read from the directory).
    pub disk: TierStats,
    /// Input digests served by the file-version fast path.
    pub fast_path_hits: u64,
    /// Input digests computed by hashing the content.
    pub digests_computed: u64,
}

/// A file version as the fast path identifies it: canonical path, size, modification time
/// (ns since the epoch, -1 unknown), device, inode and change time (ns).
type PathKey = (PathBuf, u64, i128, u64, u64, i128);

/// The identity of a file version beyond its size and mtime: (device, inode, change time in
/// ns). `None` off unix, where the fast path is off.
#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<(u64, u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let ctime = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
    Some((meta.dev(), meta.ino(), ctime))
}

#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<(u64, u64, i128)> {
    None
}

/// Inputs smaller than this get no disk path record (they are re-hashed after a restart):
/// reading and hashing 256 KiB takes ~0.1 ms on one core here, less than writing a record
/// file (create, write, rename: the disk tier's ~0.2-0.4 ms per entry, docs/benchmarks.md).
pub const PATH_RECORD_MIN_BYTES: u64 = 256 << 10;

/// Memory entries of the path fast path (about 100 bytes each).
const PATH_INDEX_ENTRIES: usize = 100_000;

/// Preprocessed tensors keyed by content and pipeline. Thread-safe.
#[derive(Debug)]
pub struct ResultCache {
    memory: Mutex<WeightedLru<[u8; 32], Tensor>>,
    paths: Mutex<LruCache<PathKey, [u8; 32]>>,
    disk: Option<DiskStore>,
    fast_path: bool,
    stats: Mutex<ResultCacheStats>,
    listener: Option<Arc<dyn CacheListener>>,
    disk_warning: Option<String>,
}

fn hex(b: &[u8; 32]) -> String {
    crate::spec::hex(b)
}

impl ResultCache {
    /// A cache with `cfg`.
    ///
    /// A disk directory that cannot be created or written leaves the cache without its disk
    /// tier, with a warning ([`disk_warning`](Self::disk_warning)).
    ///
    /// # Errors
    /// None at present (the `Result` is kept for settings that may fail later).
    pub fn new(cfg: CacheConfig) -> Result<ResultCache> {
        let (disk, disk_warning) = cfg.tiers.open_disk("result cache", Some(cfg.ttl));
        Ok(ResultCache {
            memory: Mutex::new(WeightedLru::new(cfg.memory_bytes)),
            paths: Mutex::new(LruCache::new(
                NonZeroUsize::new(PATH_INDEX_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            disk,
            fast_path: cfg.fast_path,
            stats: Mutex::new(ResultCacheStats::default()),
            listener: cfg.tiers.listener,
            disk_warning,
        })
    }

    /// Why the configured disk tier is off (its directory could not be created or written),
    /// if it is.
    pub fn disk_warning(&self) -> Option<&str> {
        self.disk_warning.as_deref()
    }

    fn stats_mut(&self) -> std::sync::MutexGuard<'_, ResultCacheStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, e: CacheEvent) {
        if let Some(l) = &self.listener {
            l.on_event(&e);
        }
    }

    /// The cache key of an input digest under a pipeline (engine version and build
    /// fingerprint included: a rebuilt engine never serves its predecessor's results).
    pub fn key(input_digest: &[u8; 32], p: &Pipeline) -> [u8; 32] {
        Self::key_with(input_digest, &p.stable_hash())
    }

    /// [`key`](Self::key) from the pipeline's [`Pipeline::stable_hash`], computed once for a
    /// batch (it serializes the spec: as much work as a thumbnail's content digest).
    pub(crate) fn key_with(input_digest: &[u8; 32], pipeline_hash: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"veridoc.result.v2\0");
        h.update(input_digest);
        h.update(pipeline_hash);
        h.update(crate::VERSION.as_bytes());
        h.update(b"\0");
        h.update(crate::BUILD_ID.as_bytes());
        *h.finalize().as_bytes()
    }

    /// The content digest of an input (the fast path skips hashing unchanged files: same
    /// path, size, mtime, device, inode and ctime; unix only). Files
    /// are read as the engine reads them: regular files of at most `max_bytes` only
    /// ([`DecodeLimits::max_input_bytes`](crate::DecodeLimits::max_input_bytes)).
    ///
    /// # Errors
    /// `Io` when a file cannot be read; `InvalidInput` for a FIFO, device or directory;
    /// `Limit` when it is over `max_bytes`.
    pub fn digest(&self, input: &Input, max_bytes: u64) -> Result<[u8; 32]> {
        self.digest_read(input, max_bytes).map(|(d, _)| d)
    }

    /// [`digest`](Self::digest), also returning a file's bytes when they had to be read
    /// (the engine decodes them instead of reading the file a second time).
    pub(crate) fn digest_read(&self, input: &Input, max_bytes: u64) -> Result<Digested> {
        let read = |path: &std::path::Path| -> Result<Digested> {
            let bytes = crate::input::read_file(path, max_bytes)?;
            Ok((content_digest(&bytes), Some(bytes)))
        };
        match input {
            Input::Path(path) if self.fast_path && cfg!(unix) => {
                let meta = std::fs::metadata(path)?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map_or(-1, |d| d.as_nanos() as i128);
                let Some((dev, ino, ctime)) = file_identity(&meta) else {
                    self.stats_mut().digests_computed += 1;
                    return read(path);
                };
                // device and inode identify the file, so the path only names it; the disk
                // record (which outlives this process and its working directory) gets the
                // canonical path, the in-memory map the given one (a canonicalize is a
                // syscall per path component, as much as a thumbnail's hashing)
                let disk_record = meta.len() >= PATH_RECORD_MIN_BYTES;
                let canon = if disk_record {
                    std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())
                } else {
                    path.clone()
                };
                let pk = (canon, meta.len(), mtime, dev, ino, ctime);
                // Small files skip the disk path record: reading and hashing them costs less
                // than writing (or looking up) a record file.
                let disk = self.disk.as_ref().filter(|_| disk_record);
                if let Some(d) = self
                    .paths
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&pk)
                {
                    self.stats_mut().fast_path_hits += 1;
                    return Ok((*d, None));
                }
                let index_key = {
                    let mut h = blake3::Hasher::new();
                    h.update(b"veridoc.path.v2\0");
                    h.update(pk.0.to_string_lossy().as_bytes());
                    h.update(b"\0");
                    h.update(&pk.1.to_le_bytes());
                    h.update(&pk.2.to_le_bytes());
                    h.update(&pk.3.to_le_bytes());
                    h.update(&pk.4.to_le_bytes());
                    h.update(&pk.5.to_le_bytes());
                    hex(h.finalize().as_bytes())
                };
                if let Some(disk) = disk {
                    if let Ok(b) = disk.get(&index_key, EntryKind::PathIndex) {
                        if let Ok(d) = <[u8; 32]>::try_from(b.as_slice()) {
                            self.paths
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .put(pk, d);
                            self.stats_mut().fast_path_hits += 1;
                            return Ok((d, None));
                        }
                    }
                }
                let (d, bytes) = read(path)?;
                self.stats_mut().digests_computed += 1;
                if let Some(disk) = disk {
                    let _ = disk.put(&index_key, EntryKind::PathIndex, &d);
                }
                self.paths
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .put(pk, d);
                Ok((d, bytes))
            }
            Input::Path(path) => {
                self.stats_mut().digests_computed += 1;
                read(path)
            }
            Input::Bytes { bytes, .. } => {
                self.stats_mut().digests_computed += 1;
                Ok((content_digest(bytes), None))
            }
            Input::Frame { frame, .. } => {
                self.stats_mut().digests_computed += 1;
                let mut h = blake3::Hasher::new();
                h.update(b"frame\0");
                h.update(&frame.width().to_le_bytes());
                h.update(&frame.height().to_le_bytes());
                hash_content(&mut h, frame.as_bytes());
                Ok((*h.finalize().as_bytes(), None))
            }
        }
    }

    /// Looks a key up: memory, then disk (promoting hits to memory).
    pub fn get(&self, key: &[u8; 32]) -> Option<Tensor> {
        if let Some(t) = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            let t = t.clone();
            self.stats_mut().memory.hits += 1;
            return Some(t);
        }
        self.stats_mut().memory.misses += 1;
        let disk = self.disk.as_ref()?;
        let name = hex(key);
        match disk.get(&name, EntryKind::Result) {
            Ok(bytes) => match Tensor::from_bytes(&bytes) {
                Ok(t) => {
                    self.stats_mut().disk.hits += 1;
                    self.emit(CacheEvent::Reloaded {
                        from: Tier::Disk,
                        key: name,
                    });
                    self.insert_memory(*key, t.clone());
                    Some(t)
                }
                Err(_) => {
                    disk.remove(&name);
                    let mut s = self.stats_mut();
                    s.disk.corrupt += 1;
                    s.disk.misses += 1;
                    None
                }
            },
            Err(miss) => {
                let mut s = self.stats_mut();
                s.disk.misses += 1;
                match miss {
                    Miss::Corrupt => s.disk.corrupt += 1,
                    Miss::Expired => s.disk.expired += 1,
                    Miss::Absent => {}
                }
                drop(s);
                if miss != Miss::Absent {
                    self.emit(CacheEvent::Removed {
                        key: name,
                        cause: if miss == Miss::Corrupt {
                            RemovalCause::Corrupt
                        } else {
                            RemovalCause::Expired
                        },
                    });
                }
                None
            }
        }
    }

    fn insert_memory(&self, key: [u8; 32], t: Tensor) {
        let w = t.as_bytes().len() as u64 + 64;
        let evicted = {
            let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            let ev = m.insert(key, t, w);
            let bytes = m.bytes();
            let mut s = self.stats_mut();
            s.memory.insertions += 1;
            s.memory.evictions += ev.iter().filter(|e| e.0 != key).count() as u64;
            s.memory.bytes = bytes;
            ev
        };
        for (k, _, b) in evicted {
            self.emit(CacheEvent::Evicted {
                tier: Tier::Memory,
                key: hex(&k),
                bytes: b,
            });
        }
    }

    /// Stores a result in memory and (when configured) on disk.
    pub fn put(&self, key: &[u8; 32], t: &Tensor) {
        self.insert_memory(*key, t.clone());
        if let Some(disk) = &self.disk {
            let t0 = Instant::now();
            if disk
                .put_parts(
                    &hex(key),
                    EntryKind::Result,
                    &[&t.bytes_header(), t.as_bytes()],
                )
                .is_ok()
            {
                let mut s = self.stats_mut();
                s.disk.insertions += 1;
                s.disk.load_time += t0.elapsed();
            }
        }
    }

    /// Counters (disk bytes read from the directory).
    pub fn stats(&self) -> ResultCacheStats {
        let mut s = *self.stats_mut();
        if let Some(d) = &self.disk {
            s.disk.bytes = d.bytes();
        }
        s
    }

    /// Removes every entry from memory and disk (privacy: "forget everything now").
    pub fn wipe(&self) -> usize {
        let mut n = {
            let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.len();
            m.clear();
            n
        };
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(d) = &self.disk {
            n += d.wipe();
        }
        self.stats_mut().memory.bytes = 0;
        n
    }

    /// The disk tier, if any.
    pub fn disk(&self) -> Option<&DiskStore> {
        self.disk.as_ref()
    }
}

/// Inputs at least this large are hashed on the rayon pool (blake3's tree hashing gives the
/// same digest). blake3's docs put the break-even of multithreading near 128 KiB; photos are
/// MBs: a 3.6 MB JPEG hashed in 816 µs on one core (cache bench, dev-2c).
const PARALLEL_HASH: usize = 256 << 10;

/// Feeds `bytes` to `h`, on the rayon pool when large.
fn hash_content(h: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= PARALLEL_HASH {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
}

/// The content digest of an input's bytes.
fn content_digest(bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    hash_content(&mut h, bytes);
    *h.finalize().as_bytes()
}
