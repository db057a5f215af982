//! What the GPU modules' unit tests share: a seeded generator for weights and inputs, and a
//! backend that skips loudly without an adapter.

use super::{GpuBackend, GpuSelection};

/// A deterministic generator (xorshift) for weights and inputs in [-1, 1).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` values scaled by `sqrt(3 / fan_in)` (unit variance through a layer, so
    /// activations stay O(1) to the head like a trained network's).
    pub(crate) fn vec(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let k = (3.0 / fan_in as f32).sqrt();
        (0..n).map(|_| self.next() * k).collect()
    }
}

/// A backend, or `None` (loudly) without an adapter; `VERIDOC_REQUIRE_GPU=1` makes that
/// a failure, as `tests/common::gpu_or_skip` does.
pub(crate) fn backend(test: &str, budget: Option<u64>) -> Option<GpuBackend> {
    match GpuBackend::new(&GpuSelection::Auto, budget) {
        Ok(Some(b)) => Some(b),
        other => {
            let why = other.err().map_or("no adapter".into(), |e| e.to_string());
            assert!(
                std::env::var("VERIDOC_REQUIRE_GPU").as_deref() != Ok("1"),
                "{test}: VERIDOC_REQUIRE_GPU=1 but no GPU: {why}"
            );
            eprintln!("SKIPPED (no adapter) {test}: {why}");
            None
        }
    }
}
