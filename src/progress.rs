//! Progress events with a smoothed rate and ETA, throttled, on an injectable clock.
//!
//! A [`ProgressTracker`] is fed counts as items finish and hands out a [`Progress`] event at
//! most once per interval (plus always the final one). The rate is an exponentially
//! weighted average over the throttle windows, so a burst of cache hits or one slow batch
//! does not swing the ETA; with an unknown total there is a rate but no ETA.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::Clock;

/// What the engine is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Stage {
    /// Reading and decoding inputs.
    Decode,
    /// Resizing and converting (CPU or GPU).
    Preprocess,
    /// Waiting for memory (intake paused under pressure).
    Paused,
    /// Finished (or cancelled).
    Done,
}

/// One progress event.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Items finished (ok or failed).
    pub done: usize,
    /// Of which failed.
    pub failed: usize,
    /// Total items, when known.
    pub total: Option<usize>,
    /// Smoothed items per second.
    pub rate: f64,
    /// Estimated time to completion (total known and rate > 0).
    pub eta: Option<Duration>,
    /// Time since the start.
    pub elapsed: Duration,
    /// Current stage.
    pub stage: Stage,
}

/// Weight of the newest window in the smoothed rate. 0.3 settles within ~7 windows (0.7 s
/// at the default interval) while damping single-window bursts to a third.
const RATE_ALPHA: f64 = 0.3;

/// Turns completion counts into throttled [`Progress`] events.
#[derive(Debug)]
pub(crate) struct ProgressTracker {
    clock: Arc<dyn Clock>,
    start: Instant,
    interval: Duration,
    total: Option<usize>,
    done: usize,
    failed: usize,
    last_emit: Option<Instant>,
    last_done: usize,
    rate: Option<f64>,
}

impl ProgressTracker {
    /// A tracker emitting at most once per `interval`.
    pub(crate) fn new(total: Option<usize>, interval: Duration, clock: Arc<dyn Clock>) -> Self {
        let start = clock.now();
        ProgressTracker {
            clock,
            start,
            interval,
            total,
            done: 0,
            failed: 0,
            last_emit: None,
            last_done: 0,
            rate: None,
        }
    }

    /// Records finished items; returns an event when the interval has passed.
    pub(crate) fn record(&mut self, done: usize, failed: usize, stage: Stage) -> Option<Progress> {
        self.done += done;
        self.failed += failed;
        let now = self.clock.now();
        let since = now.duration_since(self.last_emit.unwrap_or(self.start));
        if since < self.interval {
            return None;
        }
        Some(self.emit(now, since, stage))
    }

    /// The final event (always emitted).
    pub(crate) fn finish(&mut self) -> Progress {
        let now = self.clock.now();
        let since = now.duration_since(self.last_emit.unwrap_or(self.start));
        self.emit(now, since, Stage::Done)
    }

    /// An event now regardless of the interval (stage changes).
    pub(crate) fn snapshot(&mut self, stage: Stage) -> Progress {
        let now = self.clock.now();
        let since = now.duration_since(self.last_emit.unwrap_or(self.start));
        self.emit(now, since, stage)
    }

    fn emit(&mut self, now: Instant, since: Duration, stage: Stage) -> Progress {
        let secs = since.as_secs_f64();
        if secs > 0.0 {
            let window = (self.done - self.last_done) as f64 / secs;
            self.rate = Some(match self.rate {
                None => window,
                Some(r) => RATE_ALPHA * window + (1.0 - RATE_ALPHA) * r,
            });
        }
        self.last_emit = Some(now);
        self.last_done = self.done;
        let rate = self.rate.unwrap_or(0.0);
        let eta = match self.total {
            Some(t) if rate > 0.0 => Some(Duration::from_secs_f64(
                t.saturating_sub(self.done) as f64 / rate,
            )),
            Some(t) if t <= self.done => Some(Duration::ZERO),
            _ => None,
        };
        Progress {
            done: self.done,
            failed: self.failed,
            total: self.total,
            rate,
            eta,
            elapsed: now.duration_since(self.start),
            stage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_and_estimates() {
        let clock = Arc::new(crate::testing::ManualClock::new());
        let mut t = ProgressTracker::new(Some(100), Duration::from_millis(100), clock.clone());
        assert!(
            t.record(5, 0, Stage::Preprocess).is_none(),
            "within the interval"
        );
        clock.advance(Duration::from_millis(100));
        let p = t.record(5, 1, Stage::Preprocess).unwrap();
        assert_eq!((p.done, p.failed), (10, 1));
        assert!(
            (p.rate - 100.0).abs() < 1e-6,
            "10 items in 0.1 s: {}",
            p.rate
        );
        assert_eq!(p.eta, Some(Duration::from_millis(900)));
        // a burst window is damped
        clock.advance(Duration::from_millis(100));
        let p = t.record(50, 0, Stage::Preprocess).unwrap();
        assert!(p.rate < 250.0 && p.rate > 100.0, "smoothed: {}", p.rate);
        let f = t.finish();
        assert_eq!(f.stage, Stage::Done);
    }

    #[test]
    fn unknown_total_has_rate_but_no_eta() {
        let clock = Arc::new(crate::testing::ManualClock::new());
        let mut t = ProgressTracker::new(None, Duration::from_millis(50), clock.clone());
        clock.advance(Duration::from_millis(50));
        let p = t.record(10, 0, Stage::Decode).unwrap();
        assert!(p.rate > 0.0);
        assert_eq!(p.eta, None);
        assert_eq!(p.total, None);
    }
}
