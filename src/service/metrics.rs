//! The server's counters, gauges and histograms, written by hand in Prometheus's text
//! exposition format (version 0.0.4): a handful of series under one lock, no registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::verify::{PhotoReport, Verdict};

/// Histogram upper bounds in seconds: the Prometheus client libraries' default buckets
/// (`DefBuckets`: 5 ms .. 10 s) with 1 and 2.5 ms added below, where one photo's stages
/// land (~15-25 ms of engine time a photo on the CPU path, split over five stages).
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations per bucket (not cumulative; summed when written).
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, label: &str) {
        let mut acc = 0;
        for (b, c) in BUCKETS.iter().zip(self.counts) {
            acc += c;
            let _ = writeln!(out, "{name}_bucket{{{label},le=\"{b}\"}} {acc}");
        }
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{label}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{label}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// HTTP responses by endpoint and status.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// Request latency (arrival to response) by endpoint.
    latency: BTreeMap<&'static str, Histogram>,
    /// Engine stage times of verified photos (and the time spent queued).
    stages: BTreeMap<&'static str, Histogram>,
    verdicts: BTreeMap<&'static str, u64>,
    check_failures: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    photos_by_device: BTreeMap<&'static str, u64>,
    cache_hits: u64,
    batches: u64,
    batched_jobs: u64,
    expired: u64,
}

/// Everything `/metrics` reports apart from the live gauges the caller passes in.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub(crate) queue_depth: usize,
    pub(crate) in_flight: usize,
    pub(crate) connections: usize,
    pub(crate) ready: bool,
    pub(crate) queue_capacity: usize,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // a panic elsewhere while holding the lock leaves plain counters: keep counting
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    /// One HTTP response.
    pub(crate) fn request(&self, endpoint: &'static str, status: u16, took: Duration) {
        self.with(|m| {
            *m.requests.entry((endpoint, status)).or_default() += 1;
            m.latency
                .entry(endpoint)
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    /// One batch run by the engine thread (`jobs` requests in it).
    pub(crate) fn batch(&self, jobs: usize) {
        self.with(|m| {
            m.batches += 1;
            m.batched_jobs += jobs as u64;
        });
    }

    /// A job dropped before it started: its deadline passed, or its client left.
    pub(crate) fn expired(&self) {
        self.with(|m| m.expired += 1);
    }

    /// Time a job waited in the queue.
    pub(crate) fn queued(&self, waited: Duration) {
        self.with(|m| {
            m.stages
                .entry("queue")
                .or_default()
                .observe(waited.as_secs_f64());
        });
    }

    /// One verification report.
    pub(crate) fn report(&self, r: &PhotoReport) {
        self.with(|m| {
            let verdict = match r.verdict {
                Verdict::Accepted => "accepted",
                Verdict::Rejected => "rejected",
                Verdict::Error => "error",
            };
            *m.verdicts.entry(verdict).or_default() += 1;
            for c in &r.failed {
                *m.check_failures.entry(c.clone()).or_default() += 1;
            }
            if let Some(e) = &r.error {
                *m.errors.entry(e.code.clone()).or_default() += 1;
            }
            if r.cached {
                m.cache_hits += 1;
                return;
            }
            if r.verdict == Verdict::Error {
                return;
            }
            *m.photos_by_device.entry(r.device.as_str()).or_default() += 1;
            let t = &r.timings;
            for (stage, ms) in [
                ("decode", t.decode_ms),
                ("preprocess", t.preprocess_ms),
                ("detect", t.detect_ms),
                ("landmarks", t.landmarks_ms),
                ("checks", t.checks_ms),
                ("engine_total", t.total_ms),
            ] {
                if ms.is_finite() {
                    m.stages.entry(stage).or_default().observe(ms / 1e3);
                }
            }
        });
    }

    /// The Prometheus text exposition of every series.
    pub(crate) fn render(&self, g: Gauges, device: &str) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut o = String::with_capacity(8192);
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut o,
            "veridoc_info",
            "gauge",
            "The server's build and the device policy it runs with.",
        );
        let _ = writeln!(
            o,
            "veridoc_info{{version=\"{}\",build=\"{}\",device=\"{device}\"}} 1",
            crate::VERSION,
            crate::BUILD_ID
        );
        head(
            &mut o,
            "veridoc_ready",
            "gauge",
            "1 once the models are loaded and a warm-up photo ran (what /readyz says).",
        );
        let _ = writeln!(o, "veridoc_ready {}", u8::from(g.ready));
        head(
            &mut o,
            "veridoc_queue_depth",
            "gauge",
            "Requests waiting for the engine thread.",
        );
        let _ = writeln!(o, "veridoc_queue_depth {}", g.queue_depth);
        head(
            &mut o,
            "veridoc_queue_capacity",
            "gauge",
            "Most requests that may wait (--queue); more are answered 503.",
        );
        let _ = writeln!(o, "veridoc_queue_capacity {}", g.queue_capacity);
        head(
            &mut o,
            "veridoc_in_flight",
            "gauge",
            "Verify and preprocess requests received and not yet answered.",
        );
        let _ = writeln!(o, "veridoc_in_flight {}", g.in_flight);
        head(
            &mut o,
            "veridoc_connections",
            "gauge",
            "Open client connections.",
        );
        let _ = writeln!(o, "veridoc_connections {}", g.connections);
        head(
            &mut o,
            "veridoc_requests_total",
            "counter",
            "HTTP responses by endpoint and status code.",
        );
        for ((e, s), n) in &m.requests {
            let _ = writeln!(
                o,
                "veridoc_requests_total{{endpoint=\"{e}\",status=\"{s}\"}} {n}"
            );
        }
        head(
            &mut o,
            "veridoc_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its response, by endpoint.",
        );
        for (e, h) in &m.latency {
            h.write(
                &mut o,
                "veridoc_request_duration_seconds",
                &format!("endpoint=\"{e}\""),
            );
        }
        head(
            &mut o,
            "veridoc_stage_duration_seconds",
            "histogram",
            "Engine stage times of verified photos (cache hits excluded), and time queued.",
        );
        for (s, h) in &m.stages {
            h.write(
                &mut o,
                "veridoc_stage_duration_seconds",
                &format!("stage=\"{s}\""),
            );
        }
        head(
            &mut o,
            "veridoc_verdicts_total",
            "counter",
            "Verification reports by verdict.",
        );
        for (v, n) in &m.verdicts {
            let _ = writeln!(o, "veridoc_verdicts_total{{verdict=\"{v}\"}} {n}");
        }
        head(
            &mut o,
            "veridoc_check_failures_total",
            "counter",
            "Failed checks of rejected photos, by check.",
        );
        for (c, n) in &m.check_failures {
            let _ = writeln!(
                o,
                "veridoc_check_failures_total{{check=\"{}\"}} {n}",
                label(c)
            );
        }
        head(
            &mut o,
            "veridoc_photo_errors_total",
            "counter",
            "Photos that could not be processed, by error code.",
        );
        for (c, n) in &m.errors {
            let _ = writeln!(o, "veridoc_photo_errors_total{{code=\"{}\"}} {n}", label(c));
        }
        head(
            &mut o,
            "veridoc_photos_total",
            "counter",
            "Photos verified by the engine (not from the cache), by the device that ran them.",
        );
        for (d, n) in &m.photos_by_device {
            let _ = writeln!(o, "veridoc_photos_total{{device=\"{d}\"}} {n}");
        }
        head(
            &mut o,
            "veridoc_cache_hits_total",
            "counter",
            "Reports answered from the result cache (same content digest).",
        );
        let _ = writeln!(o, "veridoc_cache_hits_total {}", m.cache_hits);
        head(
            &mut o,
            "veridoc_batches_total",
            "counter",
            "Micro-batches run by the engine thread.",
        );
        let _ = writeln!(o, "veridoc_batches_total {}", m.batches);
        head(
            &mut o,
            "veridoc_batched_requests_total",
            "counter",
            "Requests run in those batches (divide by batches for the mean batch size).",
        );
        let _ = writeln!(o, "veridoc_batched_requests_total {}", m.batched_jobs);
        head(
            &mut o,
            "veridoc_expired_total",
            "counter",
            "Queued requests dropped unstarted: deadline passed or client gone.",
        );
        let _ = writeln!(o, "veridoc_expired_total {}", m.expired);
        o
    }
}

/// A label value with `\`, `"` and newlines escaped as the exposition format asks.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.request("verify", 200, Duration::from_millis(3));
        m.request("verify", 200, Duration::from_millis(30));
        m.request("verify", 503, Duration::from_secs(60));
        let g = Gauges {
            queue_depth: 1,
            in_flight: 2,
            connections: 3,
            ready: true,
            queue_capacity: 4,
        };
        let text = m.render(g, "cpu");
        assert!(text.contains("veridoc_requests_total{endpoint=\"verify\",status=\"200\"} 2"));
        assert!(text.contains(
            "veridoc_request_duration_seconds_bucket{endpoint=\"verify\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("veridoc_request_duration_seconds_bucket{endpoint=\"verify\",le=\"10\"} 2"));
        assert!(text.contains(
            "veridoc_request_duration_seconds_bucket{endpoint=\"verify\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("veridoc_queue_depth 1"));
        assert_eq!(label("a\"b\\"), "a\\\"b\\\\");
    }
}
