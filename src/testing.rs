//! Test doubles for the engine's injectable parts, public so that applications embedding the
//! crate can test their own code against them too: a clock that moves only when told and a
//! memory probe that reports what it is given, a seeded mutator for fuzzing. Synthetic inputs come from
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

/// A seeded mutator for fuzzing decoders with valid files bent out of shape: each call to
/// [`Mutator::mutate`] applies 1 to 4 of bit flips, "interesting" byte values (0, 0xFF,
/// 0x7F, 0x80) written over bytes and big-endian length fields, truncation, duplicated or
/// deleted spans, and inserted random bytes. The same seed gives the same mutants on every
/// machine (xorshift64*), so a failure is reproducible from the seed and the index.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator seeded with `seed` (0 is replaced by a fixed non-zero constant).
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// One mutant of `input`.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut b = input.to_vec();
        let rounds = 1 + self.below(4);
        for _ in 0..rounds {
            if b.is_empty() {
                b.push(self.next() as u8);
                continue;
            }
            let at = self.below(b.len());
            match self.below(7) {
                0 => {
                    let bit = self.below(8);
                    b[at] ^= 1 << bit;
                }
                1 => {
                    const INTERESTING: [u8; 4] = [0x00, 0xFF, 0x7F, 0x80];
                    b[at] = INTERESTING[self.below(4)];
                }
                2 => {
                    // a big-endian 16- or 32-bit field (lengths, sizes) set to an extreme
                    let v: u32 = [0, 1, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF][self.below(5)];
                    let n = if self.below(2) == 0 { 2 } else { 4 };
                    let bytes = v.to_be_bytes();
                    for (k, dst) in b.iter_mut().skip(at).take(n).enumerate() {
                        *dst = bytes[4 - n + k];
                    }
                }
                3 => b.truncate(at.max(1)),
                4 => {
                    let len = 1 + self.below(64.min(b.len() - at));
                    let span: Vec<u8> = b[at..at + len].to_vec();
                    let to = self.below(b.len());
                    b.splice(to..to, span);
                }
                5 => {
                    let len = 1 + self.below(64.min(b.len() - at));
                    b.drain(at..at + len);
                }
                _ => {
                    let len = 1 + self.below(16);
                    let junk: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
                    b.splice(at..at, junk);
                }
            }
        }
        b
    }
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
