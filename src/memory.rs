//! Host memory: a budget by accounting, pressure levels, and the system probe behind them.
//!
//! ```text
//! HostBudget::new(limit)           the engine's own accounting (never above `limit`)
//!   .reserve(bytes) -> Reservation  released on drop; ExceedsBudget / InsufficientNow
//!   .pressure(probe)                Normal | High | Critical from the accounting and the
//!                                   system's available memory (sysinfo, or a fake in tests)
//! ```
//!
//! Under pressure the engine shrinks batches, then trims pools and caches, then pauses
//! intake (see `Engine::stream`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{LimitError, Result};

/// Reads the system's memory state. Implemented with sysinfo; tests inject fakes.
pub trait SystemProbe: Send + Sync + std::fmt::Debug {
    /// Total physical memory in bytes.
    fn total_memory(&self) -> u64;
    /// Memory available to new allocations, in bytes.
    fn available_memory(&self) -> u64;
    /// Resident set size of this process, in bytes (0 when unknown).
    fn process_rss(&self) -> u64;
}

/// The real probe: sysinfo, refreshing only memory (and this process) on each call.
#[derive(Debug)]
pub struct SysinfoProbe {
    sys: Mutex<sysinfo::System>,
    pid: Option<sysinfo::Pid>,
}

impl SysinfoProbe {
    /// A probe for this machine and process.
    pub fn new() -> SysinfoProbe {
        let sys = sysinfo::System::new_with_specifics(
            sysinfo::RefreshKind::nothing().with_memory(sysinfo::MemoryRefreshKind::everything()),
        );
        SysinfoProbe {
            sys: Mutex::new(sys),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut sysinfo::System) -> T) -> T {
        let mut s = self.sys.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }
}

impl Default for SysinfoProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemProbe for SysinfoProbe {
    fn total_memory(&self) -> u64 {
        self.with(|s| {
            s.refresh_memory();
            s.total_memory()
        })
    }

    fn available_memory(&self) -> u64 {
        self.with(|s| {
            s.refresh_memory();
            s.available_memory()
        })
    }

    fn process_rss(&self) -> u64 {
        let Some(pid) = self.pid else { return 0 };
        self.with(|s| {
            s.refresh_processes_specifics(
                sysinfo::ProcessesToUpdate::Some(&[pid]),
                false,
                sysinfo::ProcessRefreshKind::nothing().with_memory(),
            );
            s.process(pid).map_or(0, |p| p.memory())
        })
    }
}

/// A memory limit: absolute, or a fraction of what is available when the engine is built.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MemoryLimit {
    /// A number of bytes.
    Bytes(u64),
    /// This fraction (0, 1] of the system's available memory at build time.
    FractionOfAvailable(f64),
}

impl MemoryLimit {
    /// Resolves to bytes against `probe`.
    pub fn resolve(self, probe: &dyn SystemProbe) -> u64 {
        match self {
            MemoryLimit::Bytes(b) => b,
            MemoryLimit::FractionOfAvailable(f) => {
                (probe.available_memory() as f64 * f.clamp(0.0, 1.0)) as u64
            }
        }
    }
}

/// How tight memory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pressure {
    /// Plenty of headroom.
    Normal,
    /// The budget is 80% used or the system has under 10% available: shrink batches, trim.
    High,
    /// The budget is 95% used or the system has under 5% available: pause intake.
    Critical,
}

/// Budget fraction above which pressure is high. 80/95% leave one batch of headroom at the
/// default batch sizes (a 64-item batch of 640x640 f32 outputs is 315 MB of a 4 GB budget).
const HIGH_USED: f64 = 0.80;
/// Budget fraction above which pressure is critical.
const CRITICAL_USED: f64 = 0.95;
/// System-available fraction below which pressure is high.
const HIGH_SYSTEM: f64 = 0.10;
/// System-available fraction below which pressure is critical.
const CRITICAL_SYSTEM: f64 = 0.05;

#[derive(Debug)]
struct BudgetInner {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
    what: crate::error::Resource,
    /// Signalled whenever a reservation is released (for `reserve_wait`).
    released: (Mutex<()>, Condvar),
}

/// A byte budget shared by everything that reserves against it. Cloning shares it.
#[derive(Debug, Clone)]
pub struct HostBudget {
    inner: Arc<BudgetInner>,
}

/// Bytes held against a [`HostBudget`]; released when dropped. Not `Clone`: one holder.
#[derive(Debug)]
#[must_use = "a reservation is released as soon as it is dropped"]
pub struct Reservation {
    inner: Arc<BudgetInner>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
        let (lock, cv) = &self.inner.released;
        let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
        cv.notify_all();
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Releases all but `bytes` of the reservation (no-op when it holds no more): a decode
    /// reserves its peak, then keeps only what its result holds.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes >= self.bytes {
            return;
        }
        self.inner
            .used
            .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
        self.bytes = bytes;
        let (lock, cv) = &self.inner.released;
        let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
        cv.notify_all();
    }
}

impl HostBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> HostBudget {
        Self::named(crate::error::Resource::HostMemory, limit)
    }

    pub(crate) fn named(what: crate::error::Resource, limit: u64) -> HostBudget {
        HostBudget {
            inner: Arc::new(BudgetInner {
                limit,
                used: AtomicU64::new(0),
                peak: AtomicU64::new(0),
                what,
                released: (Mutex::new(()), Condvar::new()),
            }),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Highest `used` seen.
    pub fn peak(&self) -> u64 {
        self.inner.peak.load(Ordering::Acquire)
    }

    /// Restarts peak tracking from what is reserved now and returns the previous peak
    /// (benchmarks measure one peak per case on a long-lived engine).
    pub fn reset_peak(&self) -> u64 {
        self.inner.peak.swap(self.used(), Ordering::AcqRel)
    }

    /// Reserves `bytes`, or fails without reserving anything.
    ///
    /// # Errors
    /// `ExceedsBudget` when `bytes` alone is over the limit (it can never fit: shrink the
    /// work); `InsufficientNow` when it does not fit beside what is reserved now (wait for
    /// in-flight work).
    pub fn reserve(&self, bytes: u64) -> Result<Reservation> {
        let b = &self.inner;
        if bytes > b.limit {
            return Err(LimitError::ExceedsBudget {
                what: b.what,
                requested: bytes,
                limit: b.limit,
            }
            .into());
        }
        let mut cur = b.used.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(bytes);
            if next > b.limit {
                return Err(LimitError::InsufficientNow {
                    what: b.what,
                    requested: bytes,
                    available: b.limit - cur,
                }
                .into());
            }
            match b
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    b.peak.fetch_max(next, Ordering::AcqRel);
                    return Ok(Reservation {
                        inner: b.clone(),
                        bytes,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Reserves `bytes`, waiting up to `timeout` for other holders to release memory.
    ///
    /// # Errors
    /// As [`HostBudget::reserve`]; `InsufficientNow` once the timeout has passed.
    pub fn reserve_wait(&self, bytes: u64, timeout: std::time::Duration) -> Result<Reservation> {
        let deadline = std::time::Instant::now() + timeout;
        let (lock, cv) = &self.inner.released;
        loop {
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            match self.reserve(bytes) {
                Err(e) if e.is_retryable() => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    // Woken by a release, or re-checked at least every 50 ms.
                    let wait = (deadline - now).min(std::time::Duration::from_millis(50));
                    let _ = cv.wait_timeout(guard, wait);
                }
                other => return other,
            }
        }
    }

    /// Waits until some reservation is released or `timeout` passes.
    pub fn wait_release(&self, timeout: std::time::Duration) {
        let (lock, cv) = &self.inner.released;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv.wait_timeout(guard, timeout);
    }

    /// Pressure from this budget's use and the system's available memory.
    pub fn pressure(&self, probe: &dyn SystemProbe) -> Pressure {
        let used = self.used() as f64 / self.limit().max(1) as f64;
        let total = probe.total_memory().max(1) as f64;
        let avail = probe.available_memory() as f64 / total;
        if used >= CRITICAL_USED || avail < CRITICAL_SYSTEM {
            Pressure::Critical
        } else if used >= HIGH_USED || avail < HIGH_SYSTEM {
            Pressure::High
        } else {
            Pressure::Normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::testing::FakeProbe;

    #[test]
    fn works_unlimited_sufficient_and_tight() {
        // image-rs's three-part form: no limit, just enough, too tight.
        let big = HostBudget::new(u64::MAX);
        let r = big.reserve(1 << 40).unwrap();
        assert_eq!(big.used(), 1 << 40);
        drop(r);
        assert_eq!(big.used(), 0);
        let just = HostBudget::new(100);
        let a = just.reserve(60).unwrap();
        let b = just.reserve(40).unwrap();
        assert_eq!(just.used(), 100);
        let e = just.reserve(1).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::Limit(LimitError::InsufficientNow { .. })
        ));
        assert!(e.is_retryable());
        drop((a, b));
        let e = just.reserve(101).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::Limit(LimitError::ExceedsBudget { .. })
        ));
        assert_eq!(just.peak(), 100);
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let b = HostBudget::new(1000);
        std::thread::scope(|s| {
            for t in 0..8 {
                let b = b.clone();
                s.spawn(move || {
                    for i in 0..2000u64 {
                        if let Ok(r) = b.reserve(1 + (i * 7 + t) % 97) {
                            assert!(b.used() <= 1000, "over the limit");
                            drop(r);
                        }
                    }
                });
            }
        });
        assert_eq!(b.used(), 0);
        assert!(b.peak() <= 1000);
    }

    #[test]
    fn pressure_levels() {
        let probe = FakeProbe::new(1000, 500);
        let b = HostBudget::new(100);
        assert_eq!(b.pressure(&probe), Pressure::Normal);
        let _r = b.reserve(85).unwrap();
        assert_eq!(b.pressure(&probe), Pressure::High);
        let _s = b.reserve(11).unwrap();
        assert_eq!(b.pressure(&probe), Pressure::Critical);
        let fresh = HostBudget::new(100);
        probe.available.store(40, Ordering::Relaxed);
        assert_eq!(fresh.pressure(&probe), Pressure::Critical);
        probe.available.store(80, Ordering::Relaxed);
        assert_eq!(fresh.pressure(&probe), Pressure::High);
    }

    #[test]
    fn fraction_limit_resolves_against_the_probe() {
        let probe = FakeProbe::new(1000, 800);
        assert_eq!(MemoryLimit::FractionOfAvailable(0.5).resolve(&probe), 400);
        assert_eq!(MemoryLimit::Bytes(7).resolve(&probe), 7);
    }
}
