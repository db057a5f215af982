//! Caches: a result cache (memory LRU + persistent disk tier) and a GPU-resident model cache
//! with host and disk fallback.
//!
//! - [`ResultCache`] (`result.rs`): preprocessed tensors keyed by input content + pipeline
//!   hash + engine version + build fingerprint ([`crate::BUILD_ID`]); memory tier weighted
//!   by bytes, disk tier with a byte cap, TTL and checksums; an optional fast path that skips
//!   hashing files whose `(path, size, mtime, device, inode, ctime)` was seen before.
//! - [`ModelCache`] (`model.rs`): named tensor sets (the face detector's weights) in three
//!   tiers: GPU-resident LRU under the GPU budget, host LRU, disk in a fast binary form that
//!   reloads into an anonymous map viewed in place (read and verified, never a mapping of
//!   the file); single-flight loads; preloading.
//! - [`DiskStore`] (`disk.rs`): the shared persistent tier (atomic writes, checksums, TTL,
//!   LRU byte cap kept by an in-memory index, safe for several processes).
//!
//! A disk tier whose directory cannot be created or written is switched off with a warning
//! ([`ResultCache::disk_warning`], [`ModelCache::disk_warning`], gathered by
//! [`Engine::warnings`](crate::Engine::warnings)): the caches then run in memory only, and
//! nothing fails because of them.
//!
//! Identity photos are sensitive: nothing is persisted unless a directory is configured,
//! every persistent entry has a TTL, and `wipe()` removes everything.

pub mod disk;
pub mod model;
pub mod result;

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};

pub use disk::{DiskStore, EntryKind, Miss};
pub use model::{ModelCache, ModelCacheConfig};
pub use result::{CacheConfig, ResultCache, PATH_RECORD_MIN_BYTES};

/// What both caches' settings share: the disk tier (directory, byte cap, TTL), the wall
/// clock and the event listener. Each cache's config holds one and exposes its setters
/// through [`tier_setters!`], so the two configs cannot drift apart.
#[derive(Debug, Clone)]
pub(crate) struct TierSettings {
    pub(crate) dir: Option<std::path::PathBuf>,
    pub(crate) disk_bytes: u64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) listener: Option<Arc<dyn CacheListener>>,
}

impl TierSettings {
    /// No disk tier (cap `disk_bytes` once one is set), the system clock, no listener.
    pub(crate) fn new(disk_bytes: u64) -> TierSettings {
        TierSettings {
            dir: None,
            disk_bytes,
            clock: Arc::new(SystemClock),
            listener: None,
        }
    }

    /// Opens the disk tier, if a directory was set, with entries living `ttl` (`None`: no
    /// expiry). A directory that cannot be created or written gives no disk tier and a
    /// warning naming `what` (the cache) and the cause, never an error.
    pub(crate) fn open_disk(
        &self,
        what: &str,
        ttl: Option<Duration>,
    ) -> (Option<DiskStore>, Option<String>) {
        let Some(d) = &self.dir else {
            return (None, None);
        };
        match DiskStore::open(d, self.disk_bytes, ttl, self.clock.clone()) {
            Ok(s) => (Some(s), None),
            Err(e) => (
                None,
                Some(format!(
                    "{what}: disk tier off, running in memory only: {e}"
                )),
            ),
        }
    }
}

/// The setters of a config's [`TierSettings`] (field `tiers`): the disk directory (under the
/// name given), its byte cap, the clock and the listener, each documented with its default.
macro_rules! tier_setters {
    (
        $dir_fn:ident: $dir_doc:literal,
        disk_bytes: $disk_doc:literal,
        clock: $clock_doc:literal,
        listener: $listener_doc:literal $(,)?
    ) => {
        #[doc = $dir_doc]
        pub fn $dir_fn(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.tiers.dir = Some(dir.into());
            self
        }

        #[doc = $disk_doc]
        pub fn disk_bytes(mut self, bytes: u64) -> Self {
            self.tiers.disk_bytes = bytes;
            self
        }

        #[doc = $clock_doc]
        pub fn clock(mut self, clock: std::sync::Arc<dyn $crate::clock::Clock>) -> Self {
            self.tiers.clock = clock;
            self
        }

        #[doc = $listener_doc]
        pub fn listener(mut self, l: std::sync::Arc<dyn $crate::cache::CacheListener>) -> Self {
            self.tiers.listener = Some(l);
            self
        }
    };
}
pub(crate) use tier_setters;

/// A cache tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Tier {
    /// The result cache's memory tier.
    Memory,
    /// A persistent disk tier.
    Disk,
    /// The model cache's host copy.
    Host,
    /// The model cache's GPU-resident tier.
    Gpu,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
            Tier::Host => "host",
            Tier::Gpu => "gpu",
        })
    }
}

/// Why an entry was removed (as moka's `RemovalCause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RemovalCause {
    /// Its TTL had passed.
    Expired,
    /// It failed its checksum or did not parse.
    Corrupt,
    /// The application removed it (wipe, explicit removal).
    Explicit,
}

/// A cache event, for listeners (foyer's `EventListener`, moka's removal causes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// An entry left a tier because the tier was over its budget.
    Evicted {
        /// The tier it left.
        tier: Tier,
        /// Entry key or model name.
        key: String,
        /// Bytes released.
        bytes: u64,
    },
    /// An evicted entry was written to a lower tier.
    Spilled {
        /// The tier it went to.
        to: Tier,
        /// Entry key or model name.
        key: String,
    },
    /// An entry came back from a lower tier.
    Reloaded {
        /// The tier it came from.
        from: Tier,
        /// Entry key or model name.
        key: String,
    },
    /// An entry was removed (expired, corrupt, or by the API).
    Removed {
        /// Entry key or model name.
        key: String,
        /// Why.
        cause: RemovalCause,
    },
}

/// Receives cache events. Every method has a no-op default.
pub trait CacheListener: Send + Sync + std::fmt::Debug {
    /// Called for each event.
    fn on_event(&self, _event: &CacheEvent) {}
}

/// Counters of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TierStats {
    /// Lookups served by this tier.
    pub hits: u64,
    /// Lookups this tier could not serve.
    pub misses: u64,
    /// Entries evicted for space.
    pub evictions: u64,
    /// Entries written.
    pub insertions: u64,
    /// Entries found corrupt (removed, never returned).
    pub corrupt: u64,
    /// Entries found expired (removed).
    pub expired: u64,
    /// Bytes currently held (memory tiers; disk tiers report on demand).
    pub bytes: u64,
    /// Total time spent loading into this tier (model caches).
    pub load_time: Duration,
    /// Loads into this tier.
    pub loads: u64,
}

/// An LRU weighted by bytes: inserting evicts least recently used entries until the total
/// weight fits the capacity.
#[derive(Debug)]
pub(crate) struct WeightedLru<K: Hash + Eq, V> {
    lru: LruCache<K, (V, u64)>,
    bytes: u64,
    cap: u64,
}

impl<K: Hash + Eq + Clone, V> WeightedLru<K, V> {
    pub(crate) fn new(cap: u64) -> Self {
        WeightedLru {
            lru: LruCache::unbounded(),
            bytes: 0,
            cap,
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.lru.len()
    }

    pub(crate) fn get(&mut self, k: &K) -> Option<&V> {
        self.lru.get(k).map(|(v, _)| v)
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, k: &K) -> bool {
        self.lru.contains(k)
    }

    /// Inserts `v` of weight `w`; returns the entries evicted to make room (the new entry
    /// itself when it alone exceeds the capacity).
    pub(crate) fn insert(&mut self, k: K, v: V, w: u64) -> Vec<(K, V, u64)> {
        let mut out = Vec::new();
        if w > self.cap {
            out.push((k, v, w));
            return out;
        }
        if let Some((old, ow)) = self.lru.pop(&k) {
            self.bytes -= ow;
            drop(old);
        }
        while self.bytes + w > self.cap {
            match self.lru.pop_lru() {
                Some((ek, (ev, ew))) => {
                    self.bytes -= ew;
                    out.push((ek, ev, ew));
                }
                None => break,
            }
        }
        self.bytes += w;
        self.lru.push(k, (v, w));
        out
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<(V, u64)> {
        let r = self.lru.pop(k);
        if let Some((_, w)) = &r {
            self.bytes -= w;
        }
        r
    }

    pub(crate) fn clear(&mut self) {
        self.lru.clear();
        self.bytes = 0;
    }
}

pub(crate) use crate::model::Mapped;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_lru_evicts_by_bytes_in_lru_order() {
        let mut c = WeightedLru::new(10);
        assert!(c.insert("a", 1, 4).is_empty());
        assert!(c.insert("b", 2, 4).is_empty());
        c.get(&"a");
        let ev = c.insert("c", 3, 4);
        assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(c.bytes(), 8);
        // byte weight equals the sum of entries
        let sum: u64 = ["a", "c"]
            .iter()
            .map(|k| if c.contains(k) { 4 } else { 0 })
            .sum();
        assert_eq!(c.bytes(), sum);
        let ev = c.insert("huge", 9, 11);
        assert_eq!(ev.len(), 1, "too big for the cache: handed back");
        assert_eq!(c.len(), 2);
    }
}
