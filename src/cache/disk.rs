//! The persistent tier: a directory that survives restarts and can be shared by several
//! processes. Small entries are appended to segment files (one write, no file of their
//! own); large entries and models get one file each.
//!
//! ```text
//! entry header (64 bytes): magic "VDOC" | format version u16 | kind u8 | reserved u8
//!           | created (unix s) u64 | ttl (s, 0 = none) u64 | payload length u64 | checksum [32]
//!   checksum = XXH3-128("veridoc.disk.v3" | key length u64 | key | header bytes 0..32
//!           | payload), then the write time (unix ns u64: which of a key's records or
//!           tombstones is the latest, whatever segment it is in) and 8 zero bytes: the key,
//!           kind, timestamps and TTL are covered as
//!           well as the payload, so an entry renamed to another key's file name, or with its
//!           header edited, is corrupt. A checksum against accidents (torn or truncated
//!           writes, bit flips, edits), as ccache checks its entries; keys are content
//!           digests (BLAKE3). No unkeyed checksum stops someone who can write the
//!           directory from forging an entry, BLAKE3 included.
//! entry file <key>.vde = header + payload                       (payloads over the pack limit)
//! segment seg-<pid>-<nonce>-<n>.vds = "VDSEG\0" u16 version, then records, each
//!           key length u16 | key | header | payload              (payloads up to the pack limit)
//!           a record of kind 0 with no payload is a tombstone: the key was removed
//! open:  create the directory, prove it writable (a probe file), then one scan builds the
//!        in-memory index (key -> where its entry is and its size; eviction units -- entry
//!        files and whole segments -- in least-recently-used order by modification time;
//!        a segment's records are read header by header, its payloads skipped)
//! put:   small: one append to this store's own segment (segments are never shared by
//!        writers; a new one is started when the current one is full) -> index.
//!        large: write ".tmp-<pid>-<n>" -> rename to <key>.vde (atomic: readers see the old
//!        entry, the new one, or none; a writer killed mid-write leaves only a temp file).
//!        Then evict from the index's LRU end while over the byte cap (O(1) amortised per
//!        put; no directory scan). Not fsynced: a crash may lose or truncate recent entries,
//!        and the checksum turns those into misses; a cache needs no durability.
//! get:   entry file: lstat: only a regular file is opened (a FIFO, directory or symlink
//!        named like an entry is refused as a corrupt miss without being opened) -> read it
//!        whole into memory (never mapped: truncating a mapped file would raise SIGBUS) ->
//!        check magic, version, length, TTL, checksum -> touch mtime (LRU order across
//!        processes); a corrupt, truncated or expired entry is removed and reported as a miss.
//!        The checksum is skipped for a file version this store already verified or wrote
//!        (same device, inode, size, modification and change time, header checksum): the
//!        change time cannot be set by a writer, so any edit, even one that restores the
//!        modification time, is re-verified. A new store (a restart) verifies every entry
//!        the first time it reads it.
//!        packed record: one positioned read of the record from its segment -> the same
//!        checks, the checksum always (a segment changes with every append, so there is no
//!        stable version to remember) -> a record found in another segment than the one
//!        this store appends to is appended again (the same bytes: its creation time and
//!        TTL are kept), so a hit moves it to the young end -- FIFO eviction of segments
//!        with reinsertion of what is used, as log-structured caches do. A corrupt, expired
//!        or removed record gets a tombstone, so a restart does not find it again.
//! evict: the index's least recently used unit goes first: an entry file, or a whole
//!        segment (with every record in it; the segment this store appends to is the most
//!        recent). Entries written by other processes join the index at the next rescan
//!        (at open, every RESCAN_EVERY on put, and on an explicit enforce_cap), so with
//!        several writers the directory can exceed the cap by what the others wrote since
//!        this store's last scan, and another process's packed entries are misses here
//!        until then.
//! ```
//!
//! Why segments: on dev-2c (ext4) creating, writing and renaming one 27 KiB entry file took
//! 37-63 us, appending the same bytes to an open file 4 us; with the byte cap reached every
//! put also unlinks an evicted file. 10,000 cold 160x120 thumbnails paid ~39 us of wall time
//! each for the disk tier (1.40x the run without a cache; the target is 1.3x).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};

const MAGIC: &[u8; 4] = b"VDOC";
/// Bumped whenever the header, the checksum or a payload encoding changes; older entries
/// become misses. 2: the checksum covers key and header too. 3: XXH3-128 instead of
/// BLAKE3 (a 27 KiB thumbnail tensor: BLAKE3 was 40 % of the cold disk tier's cost).
pub const FORMAT_VERSION: u16 = 3;
const HEADER: usize = 64;
const EXT: &str = "vde";
/// Segment files: extension and leading bytes (magic and format version).
const SEG_EXT: &str = "vds";
const SEG_MAGIC: [u8; 8] = [b'V', b'D', b'S', b'E', b'G', 0, 3, 0];
const SEG_HEADER: u64 = SEG_MAGIC.len() as u64;
/// The kind byte of a tombstone record.
const TOMBSTONE: u8 = 0;
/// Default pack limit: payloads up to this size are appended to segments. At 64 KiB the
/// data written (~15 us) already outweighs the file's own create + rename + unlink cost.
pub const PACK_MAX: usize = 64 << 10;
/// Segments hold an eighth of the byte cap (evicting one frees 12.5 % of the cache), at
/// most this much. Each new segment is a file creation, whose inode allocation cost ext4
/// ~100 us on dev-2c after many deletions (4 % of a cold thumbnail run with sixteenths)...
const SEGMENT_MAX: u64 = 8 << 20;
/// ...and at least this much: below a 512 KiB cap entries are not packed (a segment would
/// be too coarse a unit of eviction).
const SEGMENT_MIN: u64 = 64 << 10;
/// Domain separation of the entry checksum.
const CHECKSUM_DOMAIN: &[u8] = b"veridoc.disk.v3\0";
/// Temp files older than this are leftovers of killed writers and are deleted on scans.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// File versions remembered as verified, per store. An entry costs ~120 bytes; 4096 covers
/// a 1 GiB directory of 256 KiB entries, and a forgotten version is simply verified again.
const VERIFIED_MEMO: usize = 4096;
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

/// Where an entry lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Loc {
    /// Its own file, `<key>.vde`.
    File,
    /// A record at byte `off` of the segment named `seg`.
    Packed { seg: Arc<str>, off: u64 },
}

/// One entry of the index.
#[derive(Debug, Clone)]
struct Slot {
    /// Bytes on disk (the whole file, or the whole record).
    size: u64,
    loc: Loc,
    /// A packed record this store wrote or verified (see [`DiskStore::holds_verified`]).
    verified: bool,
}

/// A unit of eviction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Unit {
    File(String),
    Segment(Arc<str>),
}

/// A segment file as the index knows it.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// A read handle, opened on first use.
    file: Option<Arc<File>>,
    /// Keys with a record in it (some may have moved since).
    keys: Vec<String>,
}

/// What eviction deletes.
#[derive(Debug)]
enum Victim {
    File(String),
    Segment(PathBuf),
}

/// The in-memory view of the directory: where each entry is, the units of eviction (entry
/// files and segments) with their sizes in least-recently-used order, and their total.
/// Built by one scan at open; puts, hits and removals keep it current.
#[derive(Debug)]
struct Index {
    keys: HashMap<String, Slot>,
    units: lru::LruCache<Unit, u64>,
    segments: HashMap<Arc<str>, Segment>,
    total: u64,
    scanned: Instant,
}

impl Index {
    fn new() -> Index {
        Index {
            keys: HashMap::new(),
            units: lru::LruCache::unbounded(),
            segments: HashMap::new(),
            total: 0,
            scanned: Instant::now(),
        }
    }

    /// Forgets where `key` is; an entry file stops counting (the caller deletes it), a
    /// packed record keeps counting in its segment's bytes (it is still on disk).
    fn remove_key(&mut self, key: &str) -> Option<Slot> {
        let slot = self.keys.remove(key)?;
        if slot.loc == Loc::File {
            if let Some(size) = self.units.pop(&Unit::File(key.to_string())) {
                self.total = self.total.saturating_sub(size);
            }
        }
        Some(slot)
    }

    /// Records an entry file of `size` bytes as the most recently used unit.
    fn insert_file(&mut self, key: &str, size: u64) -> Option<Slot> {
        let old = self.remove_key(key);
        self.keys.insert(
            key.to_string(),
            Slot {
                size,
                loc: Loc::File,
                verified: false,
            },
        );
        if let Some(prev) = self.units.put(Unit::File(key.to_string()), size) {
            self.total = self.total.saturating_sub(prev);
        }
        self.total = self.total.saturating_add(size);
        old
    }

    /// Registers a segment of `bytes` bytes as the most recently used unit.
    fn add_segment(&mut self, name: Arc<str>, path: PathBuf, bytes: u64, file: Option<Arc<File>>) {
        if let Some(prev) = self.units.put(Unit::Segment(name.clone()), bytes) {
            self.total = self.total.saturating_sub(prev);
        }
        self.total = self.total.saturating_add(bytes);
        self.segments.entry(name).or_insert(Segment {
            path,
            file,
            keys: Vec::new(),
        });
    }

    /// Records `key`'s record (`size` bytes at `off` of segment `seg`, already counted in
    /// the segment's bytes); returns where the key was before.
    fn insert_packed(
        &mut self,
        key: &str,
        seg: &Arc<str>,
        off: u64,
        size: u64,
        verified: bool,
    ) -> Option<Slot> {
        let old = self.remove_key(key);
        if let Some(s) = self.segments.get_mut(seg) {
            s.keys.push(key.to_string());
            self.keys.insert(
                key.to_string(),
                Slot {
                    size,
                    loc: Loc::Packed {
                        seg: seg.clone(),
                        off,
                    },
                    verified,
                },
            );
        }
        old
    }

    /// Grows a segment by an appended record and makes it the most recently used unit.
    fn grow_segment(&mut self, seg: &Arc<str>, bytes: u64) {
        if let Some(size) = self.units.get_mut(&Unit::Segment(seg.clone())) {
            *size = size.saturating_add(bytes);
            self.total = self.total.saturating_add(bytes);
        }
    }

    /// Drops a segment and every key whose record is in it.
    fn drop_segment(&mut self, seg: &Arc<str>) -> Option<PathBuf> {
        if let Some(size) = self.units.pop(&Unit::Segment(seg.clone())) {
            self.total = self.total.saturating_sub(size);
        }
        let s = self.segments.remove(seg)?;
        for k in s.keys {
            if matches!(self.keys.get(&k), Some(Slot { loc: Loc::Packed { seg: at, .. }, .. }) if at == seg)
            {
                self.keys.remove(&k);
            }
        }
        Some(s.path)
    }

    /// Pops least recently used units until the total fits `cap`, never the segment `keep`
    /// (the one being appended to) while anything else is left.
    fn over_cap(&mut self, cap: u64, keep: Option<&Arc<str>>) -> Vec<Victim> {
        let mut out = Vec::new();
        while self.total > cap {
            let Some((unit, _)) = self.units.peek_lru() else {
                break;
            };
            let unit = unit.clone();
            if let (Unit::Segment(s), Some(k)) = (&unit, keep) {
                if s == k {
                    if self.units.len() == 1 {
                        break;
                    }
                    self.units.promote(&unit);
                    continue;
                }
            }
            match unit {
                Unit::File(k) => {
                    self.remove_key(&k);
                    out.push(Victim::File(k));
                }
                Unit::Segment(s) => {
                    if let Some(path) = self.drop_segment(&s) {
                        out.push(Victim::Segment(path));
                    } else {
                        self.units.pop(&Unit::Segment(s));
                    }
                }
            }
        }
        out
    }
}

/// The segment this store appends to.
#[derive(Debug)]
struct Active {
    name: Arc<str>,
    file: File,
    len: u64,
}

/// A directory of checksummed entries with a byte cap and a TTL.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    cap: u64,
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
    counter: AtomicU64,
    /// Payloads up to this size are packed (0: never).
    pack_max: usize,
    /// Segments are started anew past this size.
    segment_max: u64,
    /// Distinguishes this store's segment names from other stores' of the same process.
    nonce: u64,
    verified: Mutex<lru::LruCache<String, Version>>,
    /// Lock order: `active`, then `index`.
    active: Mutex<Option<Active>>,
    index: Mutex<Index>,
}

fn io(e: std::io::Error, what: &str, path: &Path) -> Error {
    Error::new(ErrorKind::Cache(format!("{what} {}: {e}", path.display())))
}

/// The checksum of an entry: key, the header's first 32 bytes (magic, version, kind,
/// created, TTL, length) and the payload.
fn checksum(key: &str, head: &[u8], payload: &[u8]) -> [u8; 32] {
    checksum_parts(key, head, &[payload])
}

/// [`checksum`] of a payload given in parts (concatenated).
fn checksum_parts(key: &str, head: &[u8], payload: &[&[u8]]) -> [u8; 32] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(CHECKSUM_DOMAIN);
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update(head);
    for p in payload {
        h.update(p);
    }
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&h.digest128().to_le_bytes());
    out
}

/// Writes all of `parts` with as few system calls as the kernel allows (one `writev` for a
/// regular file): no copy of the payload into one buffer first.
fn write_parts(f: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn u64_at(buf: &[u8], o: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[o..o + 8]);
    u64::from_le_bytes(b)
}

/// Reads exactly `buf.len()` bytes at `off` without moving a shared cursor.
fn read_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n =
                std::os::windows::fs::FileExt::seek_read(f, &mut buf[done..], off + done as u64)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// A packed record's place: its segment (name and read handle), offset and size.
struct At {
    seg: Arc<str>,
    file: Arc<File>,
    off: u64,
    size: u64,
}

/// One record of a segment, as a scan finds it.
struct Scanned {
    key: String,
    off: u64,
    size: u64,
    tombstone: bool,
    /// Write time (unix ns) from the header.
    written: u64,
}

/// Reads a segment's records header by header (payloads are skipped, not read). Stops at
/// the first record that is cut off or malformed: what follows cannot be framed.
fn scan_segment(path: &Path) -> Option<(File, u64, Vec<Scanned>)> {
    let (f, meta) = crate::input::open_regular(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let mut r = BufReader::with_capacity(64 << 10, &f);
    let mut magic = [0u8; SEG_MAGIC.len()];
    r.read_exact(&mut magic).ok()?;
    if magic != SEG_MAGIC {
        return None;
    }
    let mut out = Vec::new();
    let mut off = SEG_HEADER;
    let mut head = [0u8; HEADER];
    loop {
        let mut kl = [0u8; 2];
        if off + 2 > len || r.read_exact(&mut kl).is_err() {
            break;
        }
        let kl = u16::from_le_bytes(kl) as u64;
        if off + 2 + kl + HEADER as u64 > len {
            break;
        }
        let mut key = vec![0u8; kl as usize];
        if r.read_exact(&mut key).is_err() || r.read_exact(&mut head).is_err() {
            break;
        }
        let Ok(key) = String::from_utf8(key) else {
            break;
        };
        if &head[..4] != MAGIC || u16::from_le_bytes([head[4], head[5]]) != FORMAT_VERSION {
            break;
        }
        let plen = u64_at(&head, 24);
        let size = 2 + kl + HEADER as u64 + plen;
        if plen > len || off + size > len {
            break;
        }
        let Ok(skip) = i64::try_from(plen) else { break };
        if r.seek_relative(skip).is_err() {
            break;
        }
        out.push(Scanned {
            key,
            off,
            size,
            tombstone: head[6] == TOMBSTONE,
            written: u64_at(&head, 48),
        });
        off += size;
    }
    drop(r);
    Some((f, len, out))
}

impl DiskStore {
    /// Opens (creating) `dir` with a byte cap and an optional TTL, and indexes its entries
    /// (one directory scan). Payloads up to [`PACK_MAX`] are packed into segments when the
    /// cap is at least 512 KiB (see [`packing`](Self::packing)).
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
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (&dir as *const PathBuf as u64).rotate_left(32);
        let segment_max = (cap / 8).min(SEGMENT_MAX);
        let mut store = DiskStore {
            dir,
            cap,
            ttl,
            clock,
            counter: AtomicU64::new(0),
            pack_max: 0,
            segment_max,
            nonce,
            verified: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(VERIFIED_MEMO).unwrap_or(NonZeroUsize::MIN),
            )),
            active: Mutex::new(None),
            index: Mutex::new(Index::new()),
        };
        store = store.packing(PACK_MAX);
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

    /// Packs payloads of at most `max_payload` bytes into segments (0: every entry gets its
    /// own file). The limit is also kept to a quarter of a segment (an eighth of the cap,
    /// at most 8 MiB), and nothing is packed under a 512 KiB cap. Default: [`PACK_MAX`].
    /// Models are never packed.
    #[must_use]
    pub fn packing(mut self, max_payload: usize) -> Self {
        self.pack_max = if self.segment_max >= SEGMENT_MIN {
            max_payload.min(usize::try_from(self.segment_max / 4).unwrap_or(usize::MAX))
        } else {
            0
        };
        self
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

    fn lock_active(&self) -> MutexGuard<'_, Option<Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The 64-byte header of an entry whose payload is `payload` concatenated (checksum
    /// included).
    fn header(&self, key: &str, kind: u8, payload: &[&[u8]]) -> [u8; HEADER] {
        let len: usize = payload.iter().map(|p| p.len()).sum();
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(MAGIC);
        header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[6] = kind;
        header[8..16].copy_from_slice(&self.now_secs().to_le_bytes());
        let ttl = self.ttl.map_or(0, |t| t.as_secs().max(1));
        header[16..24].copy_from_slice(&ttl.to_le_bytes());
        header[24..32].copy_from_slice(&(len as u64).to_le_bytes());
        let sum = checksum_parts(key, &header[..32], payload);
        header[32..64].copy_from_slice(&sum);
        // the write time orders a key's records across segments at scans (a segment's
        // modification time is jiffy-coarse and says nothing about the records inside)
        let written = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        header[48..56].copy_from_slice(&written.to_le_bytes());
        header
    }

    /// Writes an entry (a record appended to this store's segment, or a file renamed into
    /// place), then enforces the byte cap from the in-memory index.
    ///
    /// # Errors
    /// `Cache` on I/O failure (the previous entry, if any, is unaffected).
    pub fn put(&self, key: &str, kind: EntryKind, payload: &[u8]) -> Result<()> {
        self.put_parts(key, kind, &[payload])
    }

    /// [`put`](Self::put) of a payload given in parts (stored concatenated): a caller
    /// holding a small header and a large body writes both without joining them first.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn put_parts(&self, key: &str, kind: EntryKind, payload: &[&[u8]]) -> Result<()> {
        let header = self.header(key, kind as u8, payload);
        let len: usize = payload.iter().map(|p| p.len()).sum();
        if kind != EntryKind::Model && len <= self.pack_max && key.len() <= 4096 {
            let kl = (key.len() as u16).to_le_bytes();
            let mut parts: Vec<&[u8]> = Vec::with_capacity(3 + payload.len());
            parts.extend_from_slice(&[&kl[..], key.as_bytes(), &header[..]]);
            parts.extend_from_slice(payload);
            self.append(key, &parts, true)?;
        } else {
            self.put_file(key, &header, payload, len)?;
        }
        let rescan = self.lock_index().scanned.elapsed() >= RESCAN_EVERY;
        if rescan {
            self.rescan();
        }
        self.evict_over_cap();
        Ok(())
    }

    fn put_file(
        &self,
        key: &str,
        header: &[u8; HEADER],
        payload: &[&[u8]],
        len: usize,
    ) -> Result<()> {
        let tmp = self.temp_path(key);
        self.forget(key);
        let write = || -> std::io::Result<Option<Version>> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            // header and payload parts in one writev, never joined into one buffer
            let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + payload.len());
            parts.push(&header[..]);
            parts.extend_from_slice(payload);
            write_parts(&mut f, &parts)?;
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
        // a record of the key in a segment is superseded (it stays until its segment goes)
        self.lock_index().insert_file(key, (HEADER + len) as u64);
        Ok(())
    }

    /// Starts a new segment of this store (`create_new`: a name is never reused).
    fn new_segment(&self) -> std::io::Result<Active> {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "seg-{}-{:016x}-{n}.{SEG_EXT}",
                std::process::id(),
                self.nonce
            );
            let path = self.dir.join(&name);
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            if let Err(e) = file.write_all(&SEG_MAGIC) {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            let name: Arc<str> = name.into();
            self.lock_index()
                .add_segment(name.clone(), path, SEG_HEADER, None);
            return Ok(Active {
                name,
                file,
                len: SEG_HEADER,
            });
        }
    }

    /// Appends a record (key length, key, header, payload) for `key` to this store's
    /// segment, starting a new one when it is full, and indexes it.
    fn append(&self, key: &str, rec: &[&[u8]], verified: bool) -> Result<()> {
        let size: u64 = rec.iter().map(|p| p.len() as u64).sum();
        let mut active = self.lock_active();
        if active
            .as_ref()
            .is_some_and(|a| a.len > SEG_HEADER && a.len + size > self.segment_max)
        {
            *active = None;
        }
        let a = match active.as_mut() {
            Some(a) => a,
            None => active.insert(
                self.new_segment()
                    .map_err(|e| io(e, "start a segment in", &self.dir))?,
            ),
        };
        let off = a.len;
        if let Err(e) = write_parts(&mut a.file, rec) {
            // a partial record would hide every later one from scans: cut it off, and
            // start a new segment next time
            let _ = a.file.set_len(off);
            let name = a.name.clone();
            *active = None;
            return Err(io(e, "append to", &self.dir.join(&*name)));
        }
        a.len += size;
        let name = a.name.clone();
        let old = {
            let mut index = self.lock_index();
            index.grow_segment(&name, size);
            index.insert_packed(key, &name, off, size, verified)
        };
        drop(active);
        if old.is_some_and(|s| s.loc == Loc::File) {
            self.forget(key);
            let _ = fs::remove_file(self.path(key));
        }
        Ok(())
    }

    /// Appends a tombstone for `key` (best effort): scans after it do not index the key's
    /// earlier records.
    fn tombstone(&self, key: &str) {
        if self.pack_max == 0 || key.len() > 4096 {
            return;
        }
        let header = self.header(key, TOMBSTONE, &[]);
        let kl = (key.len() as u16).to_le_bytes();
        if self
            .append(key, &[&kl[..], key.as_bytes(), &header[..]], false)
            .is_ok()
        {
            self.lock_index().remove_key(key);
        }
    }

    /// Where `key`'s record is, when it is packed (`Some(None)`: in a segment that cannot
    /// be opened).
    fn packed(&self, key: &str) -> Option<Option<At>> {
        let mut index = self.lock_index();
        let slot = index.keys.get(key)?;
        let Loc::Packed { seg, off } = &slot.loc else {
            return None;
        };
        let (seg, off, size) = (seg.clone(), *off, slot.size);
        let Some(s) = index.segments.get_mut(&seg) else {
            return Some(None);
        };
        let file = match &s.file {
            Some(f) => f.clone(),
            None => match crate::input::open_regular(&s.path) {
                Ok((f, m)) if m.is_file() => {
                    let f = Arc::new(f);
                    s.file = Some(f.clone());
                    f
                }
                _ => return Some(None),
            },
        };
        Some(Some(At {
            seg,
            file,
            off,
            size,
        }))
    }

    /// Reads and checks a packed record; a hit outside this store's segment is appended
    /// again (reinsertion).
    fn get_packed(
        &self,
        key: &str,
        kind: EntryKind,
        at: Option<At>,
    ) -> std::result::Result<Vec<u8>, Miss> {
        let Some(At {
            seg,
            file,
            off,
            size,
        }) = at
        else {
            self.lock_index().remove_key(key);
            return Err(Miss::Absent);
        };
        let start = 2 + key.len();
        let mut rec = match usize::try_from(size) {
            Ok(n) if n >= start + HEADER && size <= self.cap => vec![0u8; n],
            _ => return Err(self.refuse_packed(key, Miss::Corrupt)),
        };
        if read_at(&file, &mut rec, off).is_err() {
            return Err(self.refuse_packed(key, Miss::Corrupt));
        }
        let framed = u16::from_le_bytes([rec[0], rec[1]]) as usize == key.len()
            && &rec[2..start] == key.as_bytes();
        let checked = if framed {
            let entry = &rec[start..];
            self.check_header(entry, kind).and_then(|expires| {
                if checksum(key, &entry[..32], &entry[HEADER..])[..16] != entry[32..48] {
                    Err(Miss::Corrupt)
                } else if expires.is_some_and(|t| self.now_secs() >= t) {
                    Err(Miss::Expired)
                } else {
                    Ok(())
                }
            })
        } else {
            Err(Miss::Corrupt)
        };
        if let Err(m) = checked {
            return Err(self.refuse_packed(key, m));
        }
        let ours = self.lock_active().as_ref().is_some_and(|a| a.name == seg);
        if ours {
            if let Some(s) = self.lock_index().keys.get_mut(key) {
                s.verified = true;
            }
        } else {
            // a failed reinsertion leaves the record where it is
            let _ = self.append(key, &[&rec[..]], true);
        }
        rec.drain(..start + HEADER);
        Ok(rec)
    }

    /// Forgets an unusable packed record (a tombstone keeps scans from finding it again)
    /// and returns `miss`.
    fn refuse_packed(&self, key: &str, miss: Miss) -> Miss {
        self.lock_index().remove_key(key);
        self.tombstone(key);
        miss
    }

    /// Reads an entry; a corrupt, truncated, expired or mismatched entry is removed.
    pub fn get(&self, key: &str, kind: EntryKind) -> std::result::Result<Vec<u8>, Miss> {
        if let Some(at) = self.packed(key) {
            return self.get_packed(key, kind, at);
        }
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
    /// place changes under the reader after its checksum was verified. Models are never
    /// packed, so this reads entry files only.
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
        self.lock_index().remove_key(key);
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
            if !known && checksum(key, &buf[..32], &buf[HEADER..])[..16] != buf[32..48] {
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
        self.lock_index().insert_file(key, buf.len() as u64);
        Ok(())
    }

    /// Checks magic, format version, kind and length; returns when the entry expires (unix
    /// seconds; `None`: no TTL).
    fn check_header(&self, buf: &[u8], kind: EntryKind) -> std::result::Result<Option<u64>, Miss> {
        if buf.len() < HEADER || &buf[..4] != MAGIC {
            return Err(Miss::Corrupt);
        }
        if u16::from_le_bytes([buf[4], buf[5]]) != FORMAT_VERSION || buf[6] != kind as u8 {
            return Err(Miss::Corrupt);
        }
        let (created, ttl, len) = (u64_at(buf, 8), u64_at(buf, 16), u64_at(buf, 24));
        if len != (buf.len() - HEADER) as u64 {
            return Err(Miss::Corrupt);
        }
        Ok((ttl > 0).then(|| created.saturating_add(ttl)))
    }

    /// True when the entry for `key` is a version this store wrote or verified (one lstat,
    /// no read): a writer holding the same payload can skip rewriting it.
    pub fn holds_verified(&self, key: &str) -> bool {
        if let Some(slot) = self.lock_index().keys.get(key) {
            if slot.loc != Loc::File {
                return slot.verified;
            }
        }
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

    /// Removes one entry (absent is fine). A packed record gets a tombstone.
    pub fn remove(&self, key: &str) {
        self.forget(key);
        let old = self.lock_index().remove_key(key);
        if old.is_some_and(|s| s.loc != Loc::File) {
            self.tombstone(key);
        }
        let _ = fs::remove_file(self.path(key));
    }

    /// Rebuilds the index from the directory (regular entry files and segments, in
    /// modification time order; a key found twice is where the later one says), deleting
    /// stale temp files on the way. Runs under the append lock, so this store's own
    /// segment is read whole.
    fn rescan(&self) {
        let mut active = self.lock_active();
        let now = SystemTime::now();
        // (modified, name, is a segment, length)
        let mut found: Vec<(SystemTime, String, bool, u64)> = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                // the entry's own type: a symlink is not followed
                let Ok(meta) = e.metadata() else { continue };
                if !meta.file_type().is_file() {
                    continue;
                }
                let modified = meta.modified().unwrap_or(UNIX_EPOCH);
                let name = e.file_name().to_string_lossy().into_owned();
                let stale = now.duration_since(modified).unwrap_or_default() > STALE_TEMP;
                if name.starts_with(".tmp-") {
                    if stale {
                        let _ = fs::remove_file(e.path());
                    }
                } else if name.ends_with(&format!(".{EXT}")) {
                    found.push((modified, name, false, meta.len()));
                } else if name.ends_with(&format!(".{SEG_EXT}")) {
                    found.push((modified, name, true, meta.len()));
                }
            }
        }
        // oldest first; the precise modification times set by every write make ties rare
        found.sort();
        // what the old index verified and the read handles it opened carry over
        let (verified, mut handles) = {
            let mut old = self.lock_index();
            let verified: std::collections::HashSet<(String, Loc)> = old
                .keys
                .iter()
                .filter(|(_, s)| s.verified)
                .map(|(k, s)| (k.clone(), s.loc.clone()))
                .collect();
            let handles: HashMap<Arc<str>, Arc<File>> = old
                .segments
                .iter_mut()
                .filter_map(|(n, s)| Some((n.clone(), s.file.take()?)))
                .collect();
            (verified, handles)
        };
        let mut idx = Index::new();
        let mut superseded = Vec::new();
        // where each key is: its latest entry file (by modification time, set precisely by
        // the writer) or record or tombstone (by the write time in its header)
        enum Found {
            File(String),
            Record(Scanned, Arc<str>),
        }
        let mut candidates: Vec<(u64, usize, Found)> = Vec::new();
        for (modified, name, segment, len) in found {
            let order = candidates.len();
            if !segment {
                if let Some(key) = name.strip_suffix(&format!(".{EXT}")) {
                    if let Some(prev) = idx.units.put(Unit::File(key.to_string()), len) {
                        idx.total = idx.total.saturating_sub(prev);
                    }
                    idx.total = idx.total.saturating_add(len);
                    let ns = modified
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64);
                    candidates.push((ns, order, Found::File(key.to_string())));
                }
                continue;
            }
            let path = self.dir.join(&name);
            let name: Arc<str> = name.into();
            let Some((file, len, records)) = scan_segment(&path) else {
                // not a segment (or one whose first bytes are not written yet)
                if len >= SEG_HEADER
                    && now.duration_since(modified).unwrap_or_default() > STALE_TEMP
                {
                    let _ = fs::remove_file(&path);
                }
                continue;
            };
            let file = handles.remove(&name).unwrap_or_else(|| Arc::new(file));
            idx.add_segment(name.clone(), path, len, Some(file));
            for (k, r) in records.into_iter().enumerate() {
                candidates.push((r.written, order + k, Found::Record(r, name.clone())));
            }
        }
        candidates.sort_by_key(|c| (c.0, c.1));
        for (_, _, c) in candidates {
            match c {
                Found::File(key) => {
                    let size = idx.units.peek(&Unit::File(key.clone())).copied();
                    idx.keys.insert(
                        key,
                        Slot {
                            size: size.unwrap_or(0),
                            loc: Loc::File,
                            verified: false,
                        },
                    );
                }
                Found::Record(r, seg) => {
                    let current = idx.keys.get(&r.key).map(|s| s.loc == Loc::File);
                    if r.tombstone {
                        // tombstones only ever follow packed records
                        if current == Some(false) {
                            idx.keys.remove(&r.key);
                        }
                        continue;
                    }
                    let loc = Loc::Packed {
                        seg: seg.clone(),
                        off: r.off,
                    };
                    let ok = verified.contains(&(r.key.clone(), loc));
                    if let Some(old) = idx.insert_packed(&r.key, &seg, r.off, r.size, ok) {
                        if old.loc == Loc::File {
                            superseded.push(r.key);
                        }
                    }
                }
            }
        }
        idx.scanned = Instant::now();
        // this store's segment was removed by another process: start a new one
        if active
            .as_ref()
            .is_some_and(|a| !idx.segments.contains_key(&a.name))
        {
            *active = None;
        }
        *self.lock_index() = idx;
        drop(active);
        for key in superseded {
            self.forget(&key);
            let _ = fs::remove_file(self.path(&key));
        }
    }

    /// Deletes the index's least recently used units (entry files, whole segments) until
    /// it fits the cap; returns how many units went.
    fn evict_over_cap(&self) -> usize {
        let keep = self.lock_active().as_ref().map(|a| a.name.clone());
        let victims = self.lock_index().over_cap(self.cap, keep.as_ref());
        for v in &victims {
            match v {
                Victim::File(key) => {
                    self.forget(key);
                    let _ = fs::remove_file(self.path(key));
                }
                Victim::Segment(path) => {
                    let _ = fs::remove_file(path);
                }
            }
        }
        victims.len()
    }

    /// Bytes of all entry files and segments, as this store's index knows them (its own
    /// writes and removals, other processes' as of its last scan). O(1).
    pub fn bytes(&self) -> u64 {
        self.lock_index().total
    }

    /// Number of entries, as the index knows them (see [`bytes`](Self::bytes)).
    pub fn len(&self) -> usize {
        self.lock_index().keys.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of the entries the index knows (see [`bytes`](Self::bytes)), sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.lock_index().keys.keys().cloned().collect();
        k.sort();
        k
    }

    /// Rescans the directory (picking up other processes' entries), then deletes least
    /// recently used units until it is under its cap; returns how many were evicted.
    /// Puts do this from the in-memory index without the scan.
    ///
    /// # Errors
    /// Never for races with other processes (vanished files are skipped).
    pub fn enforce_cap(&self) -> Result<usize> {
        self.rescan();
        Ok(self.evict_over_cap())
    }

    /// Deletes every entry, segment and temp file; returns how many entries were removed.
    pub fn wipe(&self) -> usize {
        self.lock_memo().clear();
        let mut active = self.lock_active();
        *active = None;
        let packed = {
            let mut index = self.lock_index();
            let n = index.keys.values().filter(|s| s.loc != Loc::File).count();
            *index = Index::new();
            n
        };
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return packed;
        };
        let mut n = packed;
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ext = e
                .path()
                .extension()
                .map(|x| x.to_string_lossy().into_owned());
            let temp = name.starts_with(".tmp-");
            let ours = temp || ext.as_deref() == Some(EXT) || ext.as_deref() == Some(SEG_EXT);
            if ours && fs::remove_file(e.path()).is_ok() && ext.as_deref() == Some(EXT) && !temp {
                n += 1;
            }
        }
        drop(active);
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

    /// A store writing one file per entry (the tests that edit entry files).
    fn store(dir: &Path, cap: u64, ttl: Option<Duration>) -> (DiskStore, Arc<ManualClock>) {
        let t = Arc::new(ManualClock::new());
        (
            DiskStore::open(dir, cap, ttl, t.clone())
                .unwrap()
                .packing(0),
            t,
        )
    }

    /// A store with the default packing (small entries go into segments).
    fn packed(dir: &Path, cap: u64, ttl: Option<Duration>) -> (DiskStore, Arc<ManualClock>) {
        let t = Arc::new(ManualClock::new());
        (DiskStore::open(dir, cap, ttl, t.clone()).unwrap(), t)
    }

    fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        v.sort();
        v
    }

    /// Offset of `needle` in `hay` (the tests find records by their payload bytes).
    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .expect("bytes not found")
    }

    #[test]
    fn round_trip_and_kind_check() {
        for open in [store, packed] {
            let d = tempfile::tempdir().unwrap();
            let (s, _) = open(d.path(), 1 << 20, None);
            round_trip(&s);
        }
    }

    fn round_trip(s: &DiskStore) {
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
        for open in [store, packed] {
            let d = tempfile::tempdir().unwrap();
            let (s, t) = open(d.path(), 1 << 20, Some(Duration::from_secs(60)));
            s.put("a", EntryKind::Result, b"x").unwrap();
            t.advance(Duration::from_secs(59));
            assert!(s.get("a", EntryKind::Result).is_ok());
            t.advance(Duration::from_secs(2));
            assert_eq!(s.get("a", EntryKind::Result), Err(Miss::Expired));
            assert!(s.is_empty(), "expired entry removed");
        }
    }

    #[test]
    fn a_payload_in_parts_is_stored_as_its_concatenation() {
        for open in [store, packed] {
            let d = tempfile::tempdir().unwrap();
            let (s, _) = open(d.path(), 16 << 20, None);
            let body: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
            s.put_parts("p", EntryKind::Result, &[b"head", &body, b"", b"tail"])
                .unwrap();
            let whole = [&b"head"[..], &body, b"tail"].concat();
            assert_eq!(s.get("p", EntryKind::Result).unwrap(), whole);
            // the same checksum as a put of the joined bytes: a restart verifies it
            let (fresh, _) = open(d.path(), 16 << 20, None);
            assert_eq!(fresh.get("p", EntryKind::Result).unwrap(), whole);
        }
    }

    #[test]
    fn small_entries_share_one_segment_and_survive_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = packed(d.path(), 16 << 20, None);
        let payload = |i: u32| -> Vec<u8> { (0..1000u32).map(|j| (i * 7 + j) as u8).collect() };
        for i in 0..100 {
            s.put(&format!("k{i}"), EntryKind::Result, &payload(i))
                .unwrap();
        }
        // models always get a file, as do payloads over the pack limit
        s.put("m", EntryKind::Model, b"model").unwrap();
        s.put("big", EntryKind::Result, &vec![1u8; PACK_MAX + 1])
            .unwrap();
        assert_eq!(files_with(d.path(), SEG_EXT).len(), 1);
        assert_eq!(files_with(d.path(), EXT).len(), 2);
        assert_eq!(s.len(), 102);
        for i in 0..100 {
            assert_eq!(
                s.get(&format!("k{i}"), EntryKind::Result).unwrap(),
                payload(i)
            );
        }
        // a restart indexes the records from the segment (payloads skipped, not read)
        let (fresh, _) = packed(d.path(), 16 << 20, None);
        assert_eq!((fresh.len(), fresh.bytes()), (102, s.bytes()));
        for i in 0..100 {
            assert!(!fresh.holds_verified(&format!("k{i}")), "not read yet");
            assert_eq!(
                fresh.get(&format!("k{i}"), EntryKind::Result).unwrap(),
                payload(i)
            );
        }
        // a key written again is found where the latest record says, also after a restart
        fresh.put("k5", EntryKind::Result, b"new").unwrap();
        assert_eq!(fresh.get("k5", EntryKind::Result).unwrap(), b"new");
        let (again, _) = packed(d.path(), 16 << 20, None);
        assert_eq!(again.get("k5", EntryKind::Result).unwrap(), b"new");
        assert_eq!(again.keys().len(), 102);
    }

    #[test]
    fn the_latest_record_of_a_key_wins_whatever_its_segment() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = packed(d.path(), 16 << 20, None);
        a.put("k", EntryKind::Result, b"old").unwrap();
        a.put("gone", EntryKind::Result, b"removed below").unwrap();
        let (b, _) = packed(d.path(), 16 << 20, None);
        b.put("k", EntryKind::Result, b"new").unwrap();
        b.remove("gone");
        // the older writer's segment modified last (as a later append would): segment
        // modification times do not decide, the records' write times do
        for seg in files_with(d.path(), SEG_EXT) {
            let f = File::options().write(true).open(&seg).unwrap();
            let t = if seg.to_string_lossy().contains(&format!("{:016x}", a.nonce)) {
                SystemTime::now() + Duration::from_secs(3600)
            } else {
                SystemTime::now() - Duration::from_secs(3600)
            };
            f.set_modified(t).unwrap();
        }
        let (c, _) = packed(d.path(), 16 << 20, None);
        assert_eq!(c.get("k", EntryKind::Result).unwrap(), b"new");
        assert_eq!(c.get("gone", EntryKind::Result), Err(Miss::Absent));
    }

    #[test]
    fn damaged_records_are_misses_never_data_and_stay_gone() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = packed(d.path(), 16 << 20, Some(Duration::from_secs(3600)));
        for (k, b) in [("a", 0xA0u8), ("b", 0xB0), ("c", 0xC0), ("d", 0xD0)] {
            s.put(k, EntryKind::Result, &[b; 500]).unwrap();
        }
        let seg = files_with(d.path(), SEG_EXT).remove(0);
        let mut raw = fs::read(&seg).unwrap();
        // a flipped payload byte in "a", an edited TTL in "b" (its header precedes the
        // payload: length at -40, TTL at -48 from the payload's start)
        let a = find(&raw, &[0xA0; 500]);
        raw[a + 200] ^= 0x01;
        let b = find(&raw, &[0xB0; 500]);
        raw[b - 48..b - 40].copy_from_slice(&0u64.to_le_bytes());
        fs::write(&seg, &raw).unwrap();
        let (fresh, _) = packed(d.path(), 16 << 20, Some(Duration::from_secs(3600)));
        assert_eq!(fresh.get("a", EntryKind::Result), Err(Miss::Corrupt));
        assert_eq!(fresh.get("b", EntryKind::Result), Err(Miss::Corrupt));
        assert_eq!(fresh.get("c", EntryKind::Result).unwrap(), vec![0xC0; 500]);
        // tombstones: a restart does not find the damaged records again
        let (again, _) = packed(d.path(), 16 << 20, Some(Duration::from_secs(3600)));
        assert_eq!(again.get("a", EntryKind::Result), Err(Miss::Absent));
        assert_eq!(again.get("b", EntryKind::Result), Err(Miss::Absent));
        // a segment cut in the middle of "d": "d" is gone, what precedes it is served
        let d_at = find(&raw, &[0xD0; 500]);
        File::options()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len((d_at + 100) as u64)
            .unwrap();
        let (cut, _) = packed(d.path(), 16 << 20, Some(Duration::from_secs(3600)));
        assert_eq!(cut.get("d", EntryKind::Result), Err(Miss::Absent));
        assert_eq!(cut.get("c", EntryKind::Result).unwrap(), vec![0xC0; 500]);
        // truncated under the store that wrote and indexed it: a miss, not short data
        let d2 = tempfile::tempdir().unwrap();
        let (w, _) = packed(d2.path(), 16 << 20, None);
        w.put("p", EntryKind::Result, &[9u8; 300]).unwrap();
        let seg2 = files_with(d2.path(), SEG_EXT).remove(0);
        File::options()
            .write(true)
            .open(&seg2)
            .unwrap()
            .set_len(SEG_HEADER + 10)
            .unwrap();
        assert_eq!(w.get("p", EntryKind::Result), Err(Miss::Corrupt));
        // removal writes a tombstone too
        let (r, _) = packed(d.path(), 16 << 20, None);
        r.put("x", EntryKind::Result, b"to be removed").unwrap();
        r.remove("x");
        let (after, _) = packed(d.path(), 16 << 20, None);
        assert_eq!(after.get("x", EntryKind::Result), Err(Miss::Absent));
    }

    #[test]
    fn whole_segments_are_evicted_and_hits_are_reinserted() {
        let d = tempfile::tempdir().unwrap();
        // a 1 MiB cap: 128 KiB segments, payloads up to 32 KiB packed
        let cap = 1 << 20;
        let (s, _) = packed(d.path(), cap, None);
        let payload = vec![5u8; 4000];
        s.put("hot", EntryKind::Result, b"kept by its hits")
            .unwrap();
        for i in 0..600 {
            s.put(&format!("k{i}"), EntryKind::Result, &payload)
                .unwrap();
            if i % 50 == 0 {
                assert!(s.get("hot", EntryKind::Result).is_ok(), "after {i} puts");
            }
        }
        assert!(s.bytes() <= cap, "{} bytes", s.bytes());
        let on_disk: u64 = files_with(d.path(), SEG_EXT)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, s.bytes(), "the index counts what is on disk");
        assert!(files_with(d.path(), SEG_EXT).len() <= 9);
        assert_eq!(
            s.get("k0", EntryKind::Result),
            Err(Miss::Absent),
            "oldest went"
        );
        assert!(s.get("k599", EntryKind::Result).is_ok());
        assert!(s.get("hot", EntryKind::Result).is_ok());
        // another store's packed entries are found by a rescan
        let (other, _) = packed(d.path(), u64::MAX, None);
        other
            .put("theirs", EntryKind::Result, b"from elsewhere")
            .unwrap();
        assert_eq!(s.get("theirs", EntryKind::Result), Err(Miss::Absent));
        s.enforce_cap().unwrap();
        assert_eq!(
            s.get("theirs", EntryKind::Result).unwrap(),
            b"from elsewhere"
        );
        let n = s.len();
        assert_eq!(s.wipe(), n);
        assert!(files_with(d.path(), SEG_EXT).is_empty());
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
