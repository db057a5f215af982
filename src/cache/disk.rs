//! The persistent tier: one file per entry in a directory that survives restarts and can be
//! shared by several processes.
//!
//! ```text
//! entry file <key>.vde = header (64 bytes) + payload
//!   header: magic "VDOC" | format version u16 | kind u8 | reserved u8 | created (unix s) u64
//!           | ttl (s, 0 = none) u64 | payload length u64 | checksum [32]
//!   checksum = blake3("veridoc.disk.v2" | key length u64 | key | header bytes 0..32 | payload):
//!           the key, kind, timestamps and TTL are covered as well as the payload, so an
//!           entry renamed to another key's file name, or with its header edited, is corrupt
//! open:  create the directory, prove it writable (a probe file), then one scan builds the
//!        in-memory index (key -> size, in least-recently-used order by modification time)
//! put:   write ".tmp-<pid>-<n>" -> rename to <key>.vde (atomic: readers see the old entry,
//!        the new one, or none; a writer killed mid-write leaves only a temp file) -> index
//!        -> evict from the index's LRU end while over the byte cap (O(1) amortised per put;
//!        no directory scan). Not fsynced: a crash may lose or truncate recent entries, and
//!        the checksum turns those into misses; a cache needs no durability.
//! get:   lstat: only a regular file is opened (a FIFO, directory or symlink named like an
//!        entry is refused as a corrupt miss without being opened) -> read it whole into
//!        memory (never mapped: truncating a mapped file would raise SIGBUS) -> check magic,
//!        version, length, TTL, checksum -> touch mtime (LRU order across processes);
//!        a corrupt, truncated or expired entry is removed and reported as a miss.
//!        The checksum is skipped for a file version this store already verified or wrote
//!        (same device, inode, size, modification and change time, header checksum): the
//!        change time cannot be set by a writer, so any edit, even one that restores the
//!        modification time, is re-verified. A new store (a restart) verifies every entry
//!        the first time it reads it.
//! evict: least recently used entries of the index go first. Entries written by other
//!        processes join the index at the next rescan (at open, every RESCAN_EVERY on put,
//!        and on an explicit enforce_cap), so with several writers the directory can exceed
//!        the cap by what the others wrote since this store's last scan.
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};

const MAGIC: &[u8; 4] = b"VDOC";
/// Bumped whenever the header, the checksum or a payload encoding changes; older entries
/// become misses. 2: the checksum covers key and header too.
pub const FORMAT_VERSION: u16 = 2;
const HEADER: usize = 64;
const EXT: &str = "vde";
/// Domain separation of the entry checksum.
const CHECKSUM_DOMAIN: &[u8] = b"veridoc.disk.v2\0";
/// Temp files older than this are leftovers of killed writers and are deleted on scans.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// File versions remembered as verified, per store. An entry costs ~120 bytes; 4096 covers
/// a 1 GiB directory of 256 KiB entries, and a forgotten version is simply verified again.
const VERIFIED_MEMO: usize = 4096;
/// Entries up to this size are written with one system call (header and payload copied
/// together; the copy costs less than a second write below this size).
const ONE_WRITE_MAX: usize = 256 << 10;
/// How often a put rescans the directory to pick up other processes' entries. A scan of
/// 10,000 entries took ~15 ms on dev-2c; once a minute keeps that below 0.03% of a run and
/// bounds how far several writers together can exceed the cap (one minute of their writes).
const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// A file version: what must be unchanged for an earlier checksum verification to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    len: u64,
    modified: SystemTime,
    /// Change time (s, ns): set by the kernel on every write or metadata change, and not
    /// settable by a writer (unlike the modification time).
    changed: (i64, i64),
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
            changed: (meta.ctime(), meta.ctime_nsec()),
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
    /// Bad magic, version, length or checksum, or not a regular file (removed).
    Corrupt,
}

/// The in-memory view of the directory: each entry's size in least-recently-used order,
/// and their total. Built by one scan at open; puts, hits and removals keep it current.
#[derive(Debug)]
struct Index {
    lru: lru::LruCache<String, u64>,
    total: u64,
    scanned: Instant,
}

impl Index {
    fn insert(&mut self, key: &str, size: u64) {
        if let Some(old) = self.lru.put(key.to_string(), size) {
            self.total = self.total.saturating_sub(old);
        }
        self.total = self.total.saturating_add(size);
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.lru.pop(key) {
            self.total = self.total.saturating_sub(old);
        }
    }

    /// Pops least recently used keys until the total fits `cap`.
    fn over_cap(&mut self, cap: u64) -> Vec<String> {
        let mut out = Vec::new();
        while self.total > cap {
            let Some((k, size)) = self.lru.pop_lru() else {
                break;
            };
            self.total = self.total.saturating_sub(size);
            out.push(k);
        }
        out
    }
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
    index: Mutex<Index>,
}

fn io(e: std::io::Error, what: &str, path: &Path) -> Error {
    Error::new(ErrorKind::Cache(format!("{what} {}: {e}", path.display())))
}

/// The checksum of an entry: key, the header's first 32 bytes (magic, version, kind,
/// created, TTL, length) and the payload.
fn checksum(key: &str, head: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(CHECKSUM_DOMAIN);
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update(head);
    h.update(payload);
    *h.finalize().as_bytes()
}

impl DiskStore {
    /// Opens (creating) `dir` with a byte cap and an optional TTL, and indexes its entries
    /// (one directory scan).
    ///
    /// # Errors
    /// `Cache` when the directory cannot be created or is not writable (read-only, no
    /// permission): a probe file is created and removed to find out.
    pub fn open(
        dir: impl Into<PathBuf>,
        cap: u64,
        ttl: Option<Duration>,
        clock: Arc<dyn Clock>,
    ) -> Result<DiskStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io(e, "create", &dir))?;
        let store = DiskStore {
            dir,
            cap,
            ttl,
            clock,
            counter: AtomicU64::new(0),
            verified: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(VERIFIED_MEMO).unwrap_or(NonZeroUsize::MIN),
            )),
            index: Mutex::new(Index {
                lru: lru::LruCache::unbounded(),
                total: 0,
                scanned: Instant::now(),
            }),
        };
        let probe = store.temp_path("probe");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| io(e, "write into", &store.dir))?;
        let _ = fs::remove_file(&probe);
        store.rescan();
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.{EXT}"))
    }

    fn temp_path(&self, key: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!(".tmp-{}-{n}-{key}", std::process::id()))
    }

    fn now_secs(&self) -> u64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn lock_index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes an entry atomically, then enforces the byte cap from the in-memory index.
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
        let sum = checksum(key, &header[..32], payload);
        header[32..64].copy_from_slice(&sum);
        let tmp = self.temp_path(key);
        self.forget(key);
        let write = || -> std::io::Result<Option<Version>> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            if payload.len() <= ONE_WRITE_MAX {
                let mut entry = Vec::with_capacity(HEADER + payload.len());
                entry.extend_from_slice(&header);
                entry.extend_from_slice(payload);
                f.write_all(&entry)?;
            } else {
                f.write_all(&header)?;
                f.write_all(payload)?;
            }
            // a precise modification time: kernels stamp writes with a coarse (jiffy) clock,
            // so an in-place edit right after this put still gets a different time, and
            // entries written by several processes keep their order for eviction
            f.set_modified(SystemTime::now())?;
            fs::rename(&tmp, self.path(key))?;
            // the version as renamed (a rename may update the change time): the open
            // handle's inode is the one renamed, even if another writer replaced it since
            Ok(f.metadata()
                .ok()
                .and_then(|m| Version::of(&m, &header[32..64])))
        };
        match write() {
            Ok(version) => self.remember(key, version),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io(e, "write", &self.path(key)));
            }
        }
        let size = (HEADER + payload.len()) as u64;
        let rescan = {
            let mut index = self.lock_index();
            index.insert(key, size);
            index.scanned.elapsed() >= RESCAN_EVERY
        };
        if rescan {
            self.rescan();
        }
        self.evict_over_cap();
        Ok(())
    }

    /// Reads an entry; a corrupt, truncated, expired or mismatched entry is removed.
    pub fn get(&self, key: &str, kind: EntryKind) -> std::result::Result<Vec<u8>, Miss> {
        let path = self.path(key);
        let (mut f, len) = self.open_entry(key, &path)?;
        // `len` is at most the byte cap (checked in open_entry); one more byte shows growth
        let mut buf = Vec::new();
        if (&mut f)
            .take(len.saturating_add(1))
            .read_to_end(&mut buf)
            .is_err()
        {
            return Err(Miss::Absent);
        }
        self.accept(key, &path, &f, &buf, kind)?;
        buf.drain(..HEADER);
        Ok(buf)
    }

    /// Reads an entry, verified like `get`, into a private page-aligned anonymous map (the
    /// model fast form's tensors are viewed in place). The file itself is never mapped: a
    /// mapped file truncated by someone else raises SIGBUS on access, and one edited in
    /// place changes under the reader after its checksum was verified.
    pub fn get_mapped(&self, key: &str, kind: EntryKind) -> std::result::Result<MappedEntry, Miss> {
        let path = self.path(key);
        let (mut f, len) = self.open_entry(key, &path)?;
        let len = usize::try_from(len).map_err(|_| self.refuse(key, &path, Miss::Corrupt))?;
        // populated up front: one kernel call instead of a page fault per 4 KiB page
        let Ok(mut map) = memmap2::MmapOptions::new().len(len).populate().map_anon() else {
            return Err(Miss::Absent);
        };
        let mut probe = [0u8; 1];
        // a file that shrank fails read_exact; one that grew has a byte left
        if f.read_exact(&mut map).is_err() || f.read(&mut probe).map_or(true, |n| n != 0) {
            return Err(self.refuse(key, &path, Miss::Corrupt));
        }
        let Ok(map) = map.make_read_only() else {
            return Err(Miss::Absent);
        };
        self.accept(key, &path, &f, &map, kind)?;
        Ok(MappedEntry { map })
    }

    /// Opens the entry file of `key` for reading when it is a regular file of at most the
    /// byte cap; returns it with its length. Anything else named like an entry (a FIFO,
    /// which would block the open; a directory; a symlink; a device) is refused from its
    /// `lstat` without being opened, and removed when it can be (`remove_file` never
    /// touches a symlink's target or a directory's contents).
    fn open_entry(&self, key: &str, path: &Path) -> std::result::Result<(File, u64), Miss> {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return Err(Miss::Absent);
        };
        if !meta.file_type().is_file() || meta.len() > self.cap.max(HEADER as u64) {
            return Err(self.refuse(key, path, Miss::Corrupt));
        }
        // the name may have been replaced between lstat and open: the open never waits
        // (a FIFO swapped in would block a plain open), and what was opened is checked
        let Ok((f, m)) = crate::input::open_regular(path) else {
            return Err(Miss::Absent);
        };
        if m.is_file() && same_file(&m, &meta) {
            Ok((f, m.len()))
        } else if m.is_file() {
            Err(Miss::Absent)
        } else {
            Err(self.refuse(key, path, Miss::Corrupt))
        }
    }

    /// Removes an unusable entry (forgetting it) and returns `miss`.
    fn refuse(&self, key: &str, path: &Path, miss: Miss) -> Miss {
        self.forget(key);
        self.lock_index().remove(key);
        let _ = fs::remove_file(path);
        miss
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
        // structure first, then the checksum (over key, header and payload), then the TTL:
        // an entry whose TTL or creation time was edited is corrupt, not merely expired
        let checked = self.check_header(buf, kind).and_then(|expires| {
            let version = f
                .metadata()
                .ok()
                .and_then(|m| Version::of(&m, &buf[32..64]));
            let known = version.is_some() && self.lock_memo().peek(key) == version.as_ref();
            if !known && checksum(key, &buf[..32], &buf[HEADER..]) != buf[32..64] {
                Err(Miss::Corrupt)
            } else if expires.is_some_and(|t| self.now_secs() >= t) {
                Err(Miss::Expired)
            } else {
                Ok(())
            }
        });
        if let Err(m) = checked {
            return Err(self.refuse(key, path, m));
        }
        // LRU order for eviction: a hit refreshes the entry's modification time (for other
        // processes and restarts) and its place in this store's index; the refreshed
        // version is the one remembered as verified
        let _ = f.set_modified(SystemTime::now());
        let meta = f.metadata().ok();
        self.remember(
            key,
            meta.as_ref().and_then(|m| Version::of(m, &buf[32..64])),
        );
        self.lock_index().insert(key, buf.len() as u64);
        Ok(())
    }

    /// Checks magic, format version, kind and length; returns when the entry expires (unix
    /// seconds; `None`: no TTL).
    fn check_header(&self, buf: &[u8], kind: EntryKind) -> std::result::Result<Option<u64>, Miss> {
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
        Ok((ttl > 0).then(|| created.saturating_add(ttl)))
    }

    /// True when the entry for `key` is a version this store wrote or verified (one lstat,
    /// no read): a writer holding the same payload can skip rewriting it.
    pub fn holds_verified(&self, key: &str) -> bool {
        let Ok(meta) = fs::symlink_metadata(self.path(key)) else {
            return false;
        };
        if !meta.file_type().is_file() {
            return false;
        }
        let memo = self.lock_memo();
        let Some(known) = memo.peek(key) else {
            return false;
        };
        Version::of(&meta, &known.digest).as_ref() == Some(known)
    }

    fn lock_memo(&self) -> MutexGuard<'_, lru::LruCache<String, Version>> {
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
        self.lock_index().remove(key);
        let _ = fs::remove_file(self.path(key));
    }

    /// Rebuilds the index from the directory (regular `*.vde` files only, in modification
    /// time order), deleting stale temp files on the way.
    fn rescan(&self) {
        let mut entries = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            let now = SystemTime::now();
            for e in rd.flatten() {
                // the entry's own type: a symlink is not followed
                let Ok(meta) = e.metadata() else { continue };
                if !meta.file_type().is_file() {
                    continue;
                }
                let modified = meta.modified().unwrap_or(UNIX_EPOCH);
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".tmp-") {
                    if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                        let _ = fs::remove_file(e.path());
                    }
                    continue;
                }
                if let Some(key) = name.strip_suffix(&format!(".{EXT}")) {
                    entries.push((key.to_string(), meta.len(), modified));
                }
            }
        }
        entries.sort_by_key(|e| e.2);
        let mut index = self.lock_index();
        index.lru.clear();
        index.total = 0;
        for (key, size, _) in entries {
            index.insert(&key, size);
        }
        index.scanned = Instant::now();
    }

    /// Deletes the index's least recently used entries until it fits the cap.
    fn evict_over_cap(&self) -> usize {
        let victims = self.lock_index().over_cap(self.cap);
        for key in &victims {
            self.forget(key);
            let _ = fs::remove_file(self.path(key));
        }
        victims.len()
    }

    /// Bytes of all entries, as this store's index knows them (its own writes and
    /// removals, other processes' entries as of its last scan). O(1).
    pub fn bytes(&self) -> u64 {
        self.lock_index().total
    }

    /// Number of entries, as the index knows them (see [`bytes`](Self::bytes)).
    pub fn len(&self) -> usize {
        self.lock_index().lru.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rescans the directory (picking up other processes' entries), then deletes least
    /// recently used entries until it is under its cap; returns how many were evicted.
    /// Puts do this from the in-memory index without the scan.
    ///
    /// # Errors
    /// Never for races with other processes (vanished files are skipped).
    pub fn enforce_cap(&self) -> Result<usize> {
        self.rescan();
        Ok(self.evict_over_cap())
    }

    /// Deletes every entry (and temp file); returns how many entries were removed.
    pub fn wipe(&self) -> usize {
        self.lock_memo().clear();
        {
            let mut index = self.lock_index();
            index.lru.clear();
            index.total = 0;
        }
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

/// Whether two metadata describe the same file (device and inode; always true where the
/// platform has no inode identity).
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// A verified entry, held in a private anonymous map (a copy of the file, not a mapping of
/// it: nothing another process does to the file can change or invalidate it).
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
        // an edit that even restores the modification time changes the change time, so the
        // same store verifies again; so does a new store (a restart), which verifies every
        // version it has not verified itself
        s.put("k", EntryKind::Model, &payload).unwrap();
        assert!(s.get("k", EntryKind::Model).is_ok());
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
        assert_eq!(s.get("k", EntryKind::Model), Err(Miss::Corrupt));
        s.put("k", EntryKind::Model, &payload).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER + 7] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let (fresh, _) = store(d.path(), 1 << 20, None);
        assert_eq!(fresh.get("k", EntryKind::Model), Err(Miss::Corrupt));
    }

    #[test]
    fn entries_under_another_key_or_with_an_edited_header_are_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let (s, clock) = store(d.path(), 1 << 20, Some(Duration::from_secs(3600)));
        let file = |k: &str| d.path().join(format!("{k}.vde"));
        // an entry renamed to another key's file name: a valid file, for another key
        s.put("a", EntryKind::Result, b"payload of a").unwrap();
        s.put("b", EntryKind::Result, b"payload of b").unwrap();
        fs::rename(file("a"), file("b")).unwrap();
        let (fresh, _) = store(d.path(), 1 << 20, Some(Duration::from_secs(3600)));
        assert_eq!(fresh.get("b", EntryKind::Result), Err(Miss::Corrupt));
        assert!(!file("b").exists(), "removed");
        s.put("c", EntryKind::Result, b"payload of c").unwrap();
        fs::copy(file("c"), file("b")).unwrap();
        assert_eq!(
            s.get("b", EntryKind::Result),
            Err(Miss::Corrupt),
            "same store"
        );
        // header edits: a TTL of 0 (none), a later creation time, another kind
        let edits: [(usize, Vec<u8>); 3] = [
            (16, 0u64.to_le_bytes().to_vec()),
            (8, (400u64 * 86_400).to_le_bytes().to_vec()),
            (6, vec![EntryKind::PathIndex as u8]),
        ];
        for (i, (at, bytes)) in edits.iter().enumerate() {
            let key = format!("h{i}");
            s.put(&key, EntryKind::Result, b"old entry").unwrap();
            let mut raw = fs::read(file(&key)).unwrap();
            raw[*at..*at + bytes.len()].copy_from_slice(bytes);
            fs::write(file(&key), &raw).unwrap();
            let kind = if *at == 6 {
                EntryKind::PathIndex
            } else {
                EntryKind::Result
            };
            assert_eq!(s.get(&key, kind), Err(Miss::Corrupt), "edit at {at}");
            assert!(!file(&key).exists(), "edit at {at}: removed");
        }
        // a 400-day-old entry whose TTL was zeroed is not served either
        s.put("old", EntryKind::Result, b"x").unwrap();
        clock.advance(Duration::from_secs(400 * 86_400));
        let mut raw = fs::read(file("old")).unwrap();
        raw[16..24].copy_from_slice(&0u64.to_le_bytes());
        fs::write(file("old"), &raw).unwrap();
        assert_eq!(s.get("old", EntryKind::Result), Err(Miss::Corrupt));
    }

    #[cfg(unix)]
    #[test]
    fn non_regular_files_named_like_entries_are_refused_unopened() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let (s, _) = store(d.path(), 1 << 20, None);
        let file = |k: &str| d.path().join(format!("{k}.vde"));
        let made = std::process::Command::new("mkfifo")
            .arg(file("fifo"))
            .status();
        assert!(
            matches!(made, Ok(st) if st.success()),
            "mkfifo is needed for this test: {made:?}"
        );
        fs::create_dir(file("dir")).unwrap();
        // a symlink to a valid entry for the same key, written by a store elsewhere
        let (other, _) = store(elsewhere.path(), 1 << 20, None);
        other.put("link", EntryKind::Model, b"linked").unwrap();
        let target = elsewhere.path().join("link.vde");
        std::os::unix::fs::symlink(&target, file("link")).unwrap();
        let (fresh, _) = store(d.path(), 1 << 20, None);
        assert_eq!(fresh.len(), 0, "only regular files are indexed");
        // opening a FIFO for reading waits for a writer: run the reads on a thread and
        // fail, rather than hang, when they block
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = d.path().to_path_buf();
        std::thread::spawn(move || {
            let (s, _) = store(&d2, 1 << 20, None);
            let mut got = Vec::new();
            for k in ["fifo", "dir", "link"] {
                got.push((k, s.get(k, EntryKind::Model).err()));
                got.push((k, s.get_mapped(k, EntryKind::Model).err()));
            }
            let _ = tx.send(got);
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a read blocked on a non-regular file");
        for (k, miss) in got {
            assert!(
                matches!(miss, Some(Miss::Corrupt | Miss::Absent)),
                "{k}: {miss:?}"
            );
        }
        assert!(target.exists(), "a symlink's target is never touched");
        assert!(!file("link").exists(), "the symlink itself is removed");
        assert_eq!(s.get("link", EntryKind::Model), Err(Miss::Absent));
    }

    #[test]
    fn a_mapped_reload_survives_truncation_and_in_place_edits() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = store(d.path(), 1 << 20, None);
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let path = d.path().join("m.vde");
        s.put("m", EntryKind::Model, &payload).unwrap();
        let entry = s.get_mapped("m", EntryKind::Model).unwrap();
        // truncating a file that is memory-mapped raises SIGBUS on the next access of the
        // lost pages; the entry must be a private copy
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        assert_eq!(entry.payload(), &payload[..]);
        assert_eq!(
            s.get_mapped("m", EntryKind::Model).err(),
            Some(Miss::Corrupt)
        );
        // an in-place edit after a verified read, modification time restored: caught by
        // the change time even in the store that verified the version
        s.put("m", EntryKind::Model, &payload).unwrap();
        let entry = s.get_mapped("m", EntryKind::Model).unwrap();
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(HEADER as u64 + 1000)).unwrap();
        f.write_all(&[0xAA; 64]).unwrap();
        f.set_modified(modified).unwrap();
        drop(f);
        assert_eq!(entry.payload(), &payload[..], "the held copy is unchanged");
        assert_eq!(
            s.get_mapped("m", EntryKind::Model).err(),
            Some(Miss::Corrupt)
        );
    }

    #[test]
    fn the_cap_is_kept_from_the_index_and_a_rescan_finds_other_writers() {
        let d = tempfile::tempdir().unwrap();
        let entry = 1000 + HEADER as u64;
        let (s, _) = store(d.path(), 3 * entry, None);
        // another process's entries, written after this store's scan
        let (other, _) = store(d.path(), u64::MAX, None);
        for k in ["x", "y"] {
            other.put(k, EntryKind::Result, &[2u8; 1000]).unwrap();
        }
        for k in ["a", "b", "c", "d"] {
            s.put(k, EntryKind::Result, &[1u8; 1000]).unwrap();
        }
        // puts evict from the index (no directory scan): "a" went, the others are unseen
        assert_eq!((s.len(), s.bytes()), (3, 3 * entry));
        assert!(s.get("a", EntryKind::Result).is_err());
        assert!(d.path().join("x.vde").exists());
        // an explicit enforce_cap rescans: the oldest ("x", "y", then "b") go
        assert_eq!(s.enforce_cap().unwrap(), 2);
        assert_eq!((s.len(), s.bytes()), (3, 3 * entry));
        for k in ["b", "c", "d"] {
            assert!(s.get(k, EntryKind::Result).is_ok(), "{k}");
        }
        // removals and hits keep the index exact
        s.remove("b");
        assert_eq!((s.len(), s.bytes()), (2, 2 * entry));
        let (fresh, _) = store(d.path(), 3 * entry, None);
        assert_eq!((fresh.len(), fresh.bytes()), (2, 2 * entry));
    }

    #[test]
    fn an_unwritable_directory_fails_open() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        fs::write(&file, b"not a directory").unwrap();
        let t: Arc<ManualClock> = Arc::new(ManualClock::new());
        let e = DiskStore::open(file.join("sub"), 1 << 20, None, t).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Cache(_)), "{e}");
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
