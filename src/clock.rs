//! The one clock abstraction: monotonic time for rates, ETAs and deadlines, wall time for
//! what outlives the process (cache entries' TTLs). The engine uses [`SystemClock`]; tests
//! move [`crate::testing::ManualClock`] by hand.

use std::time::{Instant, SystemTime};

/// A source of time: both readings come from one object, so a test that moves it moves
/// both.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic now (progress rates, ETAs).
    fn now(&self) -> Instant;
    /// Wall-clock now (persisted timestamps, TTLs).
    fn wall(&self) -> SystemTime;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}
