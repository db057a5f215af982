//! Test doubles for the engine's injectable parts, public so that applications embedding the
//! crate can test their own code against them too: a clock that moves only when told and a
//! memory probe that reports what it is given. Synthetic inputs come from
//! [`Frame::synthetic`](crate::Frame::synthetic) and [`Frame::encode_jpeg`](crate::Frame::encode_jpeg).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::clock::Clock;
use crate::memory::SystemProbe;

/// A clock that moves only when told to: [`ManualClock::advance`] moves its monotonic and
/// its wall reading together.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock at the current time.
    pub fn new() -> ManualClock {
        ManualClock {
            start: Instant::now(),
            wall_start: SystemTime::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += d;
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }
    fn wall(&self) -> SystemTime {
        self.wall_start + self.offset()
    }
}

/// A memory probe for tests and simulations: it reports what its fields hold.
#[derive(Debug, Default)]
pub struct FakeProbe {
    /// Total memory reported.
    pub total: AtomicU64,
    /// Available memory reported.
    pub available: AtomicU64,
    /// Process RSS reported.
    pub rss: AtomicU64,
}

impl FakeProbe {
    /// A probe reporting `total` and `available` bytes.
    pub fn new(total: u64, available: u64) -> FakeProbe {
        FakeProbe {
            total: AtomicU64::new(total),
            available: AtomicU64::new(available),
            rss: AtomicU64::new(0),
        }
    }
}

impl SystemProbe for FakeProbe {
    fn total_memory(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
    fn available_memory(&self) -> u64 {
        self.available.load(Ordering::Relaxed)
    }
    fn process_rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }
}

/// PNG's chunk CRC (ISO 3309 / ITU-T V.42, as the PNG specification gives it), for
/// hand-made test chunks: bit by bit, no table (tests only).
pub fn png_crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_both_readings_together() {
        let c = ManualClock::new();
        let (m, w) = (c.now(), c.wall());
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now() - m, Duration::from_secs(90));
        assert_eq!(
            c.wall().duration_since(w).ok(),
            Some(Duration::from_secs(90))
        );
    }
}
