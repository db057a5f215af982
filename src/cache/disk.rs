//! The persistent tier: one file per entry in a directory that survives restarts and can be
//! shared by several processes.
//!
//! ```text
//! entry file <key>.vde = header (64 bytes) + payload
//!   header: magic "VDOC" | format version u16 | kind u8 | reserved u8 | created (unix s) u64
//!           | ttl (s, 0 = none) u64 | payload length u64 | blake3(payload) [32]
//! put:   write ".tmp-<pid>-<n>" -> fsync -> rename to <key>.vde (atomic: readers see the old
//!        entry, the new one, or none; a writer killed mid-write leaves only a temp file)
//! get:   open -> check magic, version, length, TTL, checksum -> touch mtime (LRU order);
//!        a corrupt, truncated or expired entry is removed and reported as a miss.
//!        The checksum is skipped for a file version this store already verified or wrote
//!        (same device, inode, size, modification time and header checksum): files are
//!        replaced by rename, never edited in place, and an in-place edit by anyone else
//!        changes the modification time, so the version is re-verified. A new store (a
//!        restart) verifies every entry the first time it reads it.
//! evict: when the directory exceeds its byte cap, least recently used entries go first
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};

const MAGIC: &[u8; 4] = b"VDOC";
/// Bumped whenever the header or a payload encoding changes; older entries become misses.
pub const FORMAT_VERSION: u16 = 1;
const HEADER: usize = 64;
const EXT: &str = "vde";
/// Temp files older than this are leftovers of killed writers and are deleted on scans.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// File versions remembered as verified, per store. An entry costs ~120 bytes; 4096 covers
/// a 1 GiB directory of 256 KiB entries, and a forgotten version is simply verified again.
const VERIFIED_MEMO: usize = 4096;

/// A file version: what must be unchanged for an earlier checksum verification to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    len: u64,
    modified: SystemTime,
    digest: [u8; 32],
}

impl Version {
    /// `None` where the platform has no inode identity (then every read verifies).
    #[cfg(unix)]
    fn of(meta: &fs::Metadata, digest: &[u8]) -> Option<Version> {
        use std::os::unix::fs::MetadataExt;
        Some(Version {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok()?,
            digest: digest.try_into().ok()?,
        })
    }

    #[cfg(not(unix))]
    fn of(_meta: &fs::Metadata, _digest: &[u8]) -> Option<Version> {
        None
    }
}

/// What an entry holds (checked on read, so a model never decodes as a result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// A preprocessed tensor.
    Result = 1,
    /// A path fast-path record (content digest of a file version).
    PathIndex = 2,
    /// A model in its fast binary form.
    Model = 3,
}

/// Why a read found nothing usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No such entry.
    Absent,
    /// Older than its TTL (removed).
    Expired,
    /// Bad magic, version, length or checksum (removed).
    Corrupt,
}

/// A directory of checksummed entries with a byte cap and a TTL.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    cap: u64,
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
    counter: AtomicU64,
    verified: Mutex<lru::LruCache<String, Version>>,
}

fn io(e: std::io::Error, what: &str, path: &Path) -> Error {
    Error::new(ErrorKind::Cache(format!("{what} {}: {e}", path.display())))
}

impl DiskStore {
    /// Opens (creating) `dir` with a byte cap and an optional TTL.
    ///
    /// # Errors
    /// `Cache` when the directory cannot be created.
    pub fn open(
        dir: impl Into<PathBuf>,
        cap: u64,
        ttl: Option<Duration>,
        clock: Arc<dyn Clock>,
    ) -> Result<DiskStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io(e, "create", &dir))?;
        Ok(DiskStore {
            dir,
            cap,
            ttl,
            clock,
            counter: AtomicU64::new(0),
            verified: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(VERIFIED_MEMO).unwrap_or(NonZeroUsize::MIN),
            )),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.{EXT}"))
    }

    fn now_secs(&self) -> u64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Writes an entry atomically, then enforces the byte cap.
    ///
    /// # Errors
    /// `Cache` on I/O failure (the previous entry, if any, is unaffected).
    pub fn put(&self, key: &str, kind: EntryKind, payload: &[u8]) -> Result<()> {
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(MAGIC);
        header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[6] = kind as u8;
        header[8..16].copy_from_slice(&self.now_secs().to_le_bytes());
        let ttl = self.ttl.map_or(0, |t| t.as_secs().max(1));
        header[16..24].copy_from_slice(&ttl.to_le_bytes());
        header[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        header[32..64].copy_from_slice(blake3::hash(payload).as_bytes());
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{n}-{key}", std::process::id()));
        self.forget(key);
        let write = || -> std::io::Result<Option<Version>> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&header)?;
            f.write_all(payload)?;
            // a precise modification time: kernels stamp writes with a coarse (jiffy) clock,
            // so an in-place edit right after this put still gets a different time
            f.set_modified(SystemTime::now())?;
            f.sync_all()?;
            // the version as written (rename keeps inode and modification time)
            let version = f
                .metadata()
                .ok()
                .and_then(|m| Version::of(&m, &header[32..64]));
            fs::rename(&tmp, self.path(key))?;
            Ok(version)
        };
        match write() {
            Ok(version) => self.remember(key, version),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io(e, "write", &self.path(key)));
            }
        }
        self.enforce_cap()?;
        Ok(())
    }

    /// Reads an entry; a corrupt, truncated, expired or mismatched entry is removed.
    pub fn get(&self, key: &str, kind: EntryKind) -> std::result::Result<Vec<u8>, Miss> {
        let path = self.path(key);
        let Ok(mut f) = File::open(&path) else {
            return Err(Miss::Absent);
        };
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Err(Miss::Absent);
        }
        self.accept(key, &path, &f, &buf, kind)?;
        buf.drain(..HEADER);
        Ok(buf)
    }

    /// Reads an entry into a memory map (models: no copy, no parsing), verified like `get`.
    pub fn get_mapped(&self, key: &str, kind: EntryKind) -> std::result::Result<MappedEntry, Miss> {
        let path = self.path(key);
        let Ok(f) = File::open(&path) else {
            return Err(Miss::Absent);
        };
        let Ok(map) = super::map_file(&f) else {
            return Err(Miss::Absent);
        };
        self.accept(key, &path, &f, &map, kind)?;
        Ok(MappedEntry { map })
    }

    /// Checks an entry read from `f` (removing it when unusable), then refreshes its LRU
    /// position. The checksum is computed only for a version this store has not verified.
    fn accept(
        &self,
        key: &str,
        path: &Path,
        f: &File,
        buf: &[u8],
        kind: EntryKind,
    ) -> std::result::Result<(), Miss> {
        let checked = self.check_header(buf, kind).and_then(|()| {
            let version = f
                .metadata()
                .ok()
                .and_then(|m| Version::of(&m, &buf[32..64]));
            let known = version.is_some() && self.lock_memo().peek(key) == version.as_ref();
            if known || blake3::hash(&buf[HEADER..]).as_bytes() == &buf[32..64] {
                Ok(())
            } else {
                Err(Miss::Corrupt)
            }
        });
        if let Err(m) = checked {
            self.forget(key);
            let _ = fs::remove_file(path);
            return Err(m);
        }
        // LRU order for eviction: a hit refreshes the entry's modification time; the
        // refreshed version is the one remembered as verified
        let _ = f.set_modified(SystemTime::now());
        let version = f
            .metadata()
            .ok()
            .and_then(|m| Version::of(&m, &buf[32..64]));
        self.remember(key, version);
        Ok(())
    }

    fn check_header(&self, buf: &[u8], kind: EntryKind) -> std::result::Result<(), Miss> {
        if buf.len() < HEADER || &buf[..4] != MAGIC {
            return Err(Miss::Corrupt);
        }
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[o..o + 8]);
            u64::from_le_bytes(b)
        };
        if u16::from_le_bytes([buf[4], buf[5]]) != FORMAT_VERSION || buf[6] != kind as u8 {
            return Err(Miss::Corrupt);
        }
        let (created, ttl, len) = (u64_at(8), u64_at(16), u64_at(24));
        if len != (buf.len() - HEADER) as u64 {
            return Err(Miss::Corrupt);
        }
        if ttl > 0 && self.now_secs() >= created.saturating_add(ttl) {
            return Err(Miss::Expired);
        }
        Ok(())
    }

    /// True when the entry for `key` is a version this store wrote or verified (one stat, no
    /// read): a writer holding the same payload can skip rewriting it.
    pub fn holds_verified(&self, key: &str) -> bool {
        let Ok(meta) = fs::metadata(self.path(key)) else {
            return false;
        };
        let memo = self.lock_memo();
        let Some(known) = memo.peek(key) else {
            return false;
        };
        Version::of(&meta, &known.digest).as_ref() == Some(known)
    }

    fn lock_memo(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, Version>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, key: &str, version: Option<Version>) {
        match version {
            Some(v) => {
                self.lock_memo().put(key.to_string(), v);
            }
            None => self.forget(key),
        }
    }

    fn forget(&self, key: &str) {
        self.lock_memo().pop(key);
    }

    /// Removes one entry (absent is fine).
    pub fn remove(&self, key: &str) {
        self.forget(key);
        let _ = fs::remove_file(self.path(key));
    }

    /// Entries as (path, size, modified), temp files cleaned up on the way.
    fn scan(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut out = Vec::new();
        for e in rd.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            if path.extension().is_some_and(|x| x == EXT) {
                out.push((path, meta.len(), modified));
            }
        }
        out
    }

    /// Bytes of all entries.
    pub fn bytes(&self) -> u64 {
        self.scan().iter().map(|e| e.1).sum()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.scan().len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes least recently used entries until the directory is under its cap; returns
    /// how many were evicted.
    ///
    /// # Errors
    /// Never for races with other processes (vanished files are skipped).
    pub fn enforce_cap(&self) -> Result<usize> {
        let mut entries = self.scan();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.cap {
            return Ok(0);
        }
        entries.sort_by_key(|e| e.2);
        let mut evicted = 0;
        for (path, size, _) in entries {
            if total <= self.cap {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                evicted += 1;
            }
            total = total.saturating_sub(size);
        }
        Ok(evicted)
    }

    /// Deletes every entry (and temp file); returns how many entries were removed.
    pub fn wipe(&self) -> usize {
        self.lock_memo().clear();
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ours = name.starts_with(".tmp-") || e.path().extension().is_some_and(|x| x == EXT);
            if ours && fs::remove_file(e.path()).is_ok() && !name.starts_with(".tmp-") {
                n += 1;
            }
        }
        n
    }
}

/// A verified entry mapped into memory.
#[derive(Debug)]
pub struct MappedEntry {
    map: super::Mapped,
}

impl MappedEntry {
    /// The payload (after the header).
    pub fn payload(&self) -> &[u8] {
        &self.map[HEADER..]
    }

    /// The map and the payload's offset in it.
    pub(crate) fn into_parts(self) -> (super::Mapped, usize) {
        (self.map, HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualClock;
    use std::sync::Arc;

    fn store(dir: &Path, cap: u64, ttl: Option<Duration>) -> (DiskStore, Arc<ManualClock>) {
        let t = Arc::new(ManualClock::new());
        (DiskStore::open(dir, cap, ttl, t.clone()).unwrap(), t)
    }

    #[test]
    fn round_trip_and_kind_check() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = store(d.path(), 1 << 20, None);
        s.put("a", EntryKind::Result, b"hello").unwrap();
        assert_eq!(s.get("a", EntryKind::Result).unwrap(), b"hello");
        assert_eq!(
            s.get("a", EntryKind::Model),
            Err(Miss::Corrupt),
            "wrong kind is not data"
        );
        assert_eq!(
            s.get("a", EntryKind::Result),
            Err(Miss::Absent),
            "removed as corrupt"
        );
    }

    #[test]
    fn ttl_expires_with_the_injected_clock() {
        let d = tempfile::tempdir().unwrap();
        let (s, t) = store(d.path(), 1 << 20, Some(Duration::from_secs(60)));
        s.put("a", EntryKind::Result, b"x").unwrap();
        t.advance(Duration::from_secs(59));
        assert!(s.get("a", EntryKind::Result).is_ok());
        t.advance(Duration::from_secs(2));
        assert_eq!(s.get("a", EntryKind::Result), Err(Miss::Expired));
        assert!(s.is_empty(), "expired entry removed");
    }

    #[test]
    fn verified_versions_skip_the_checksum_but_any_edit_is_caught() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = store(d.path(), 1 << 20, None);
        let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let path = d.path().join("k.vde");
        s.put("k", EntryKind::Model, &payload).unwrap();
        for _ in 0..3 {
            // remembered as written, then as touched by each hit
            assert_eq!(
                s.get_mapped("k", EntryKind::Model).unwrap().payload(),
                &payload[..]
            );
            assert_eq!(s.get("k", EntryKind::Model).unwrap(), payload);
        }
        // an in-place edit right after a verified read (same inode and length)
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(HEADER as u64 + 100)).unwrap();
        f.write_all(&[payload[100] ^ 0x10]).unwrap();
        drop(f);
        assert_eq!(
            s.get_mapped("k", EntryKind::Model).err(),
            Some(Miss::Corrupt)
        );
        assert!(!path.exists());
        // an edit that even restores the modification time is caught by a new store (a
        // restart), which verifies every version it has not verified itself
        s.put("k", EntryKind::Model, &payload).unwrap();
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER + 7] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        let (fresh, _) = store(d.path(), 1 << 20, None);
        assert_eq!(fresh.get("k", EntryKind::Model), Err(Miss::Corrupt));
    }

    #[test]
    fn flipped_bytes_and_truncation_are_misses_never_data() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = store(d.path(), 1 << 20, None);
        let payload = vec![7u8; 1000];
        for (i, damage) in ["flip-payload", "flip-header", "truncate", "empty"]
            .iter()
            .enumerate()
        {
            let key = format!("k{i}");
            s.put(&key, EntryKind::Result, &payload).unwrap();
            let path = d.path().join(format!("{key}.vde"));
            let mut bytes = fs::read(&path).unwrap();
            match *damage {
                "flip-payload" => bytes[500] ^= 0x40,
                "flip-header" => bytes[25] ^= 0x01,
                "truncate" => bytes.truncate(700),
                _ => bytes.clear(),
            }
            fs::write(&path, &bytes).unwrap();
            assert_eq!(
                s.get(&key, EntryKind::Result),
                Err(Miss::Corrupt),
                "{damage}"
            );
            assert!(!path.exists(), "{damage}: corrupt entry removed");
        }
    }

    #[test]
    fn byte_cap_evicts_least_recently_used() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = store(d.path(), 3 * (1000 + 64), None);
        for k in ["a", "b", "c"] {
            s.put(k, EntryKind::Result, &[1u8; 1000]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        // touch "a" so "b" is the least recently used
        assert!(s.get("a", EntryKind::Result).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        s.put("d", EntryKind::Result, &[1u8; 1000]).unwrap();
        assert!(s.get("b", EntryKind::Result).is_err(), "lru evicted");
        assert!(s.get("a", EntryKind::Result).is_ok());
        assert!(s.bytes() <= 3 * 1064);
    }
}
