//! The cost model: a linear model per (path, arithmetic), refined online by recursive least
//! squares with outlier rejection.
//!
//! `t = θ · [1, items, encoded MB, frame Mpx, output Mpx]` seconds of wall time for a batch:
//! a fixed per-batch cost, a per-item cost, decode work (compressed bytes), resize work on
//! already-decoded frames (input pixels, and the upload on the GPU path) and output work
//! (normalize, layout, readback). Starting coefficients are measured constants of the
//! development machine; a short calibration at first use and every measured batch refine
//! them for the machine at hand.

use serde::{Deserialize, Serialize};

/// Number of features.
pub const FEATURES: usize = 5;

/// What a batch (or part of one) asks of a path, before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Items.
    pub items: f64,
    /// Compressed input, MB (inputs that must be decoded).
    pub encoded_mb: f64,
    /// Already-decoded input, megapixels.
    pub frame_mpx: f64,
    /// Output, megapixels.
    pub out_mpx: f64,
}

impl Features {
    /// The feature vector `[1, items, encoded MB, frame Mpx, output Mpx]`.
    pub fn vector(&self) -> [f64; FEATURES] {
        [
            1.0,
            self.items,
            self.encoded_mb,
            self.frame_mpx,
            self.out_mpx,
        ]
    }

    /// Sum of two feature sets.
    pub fn add(&self, o: &Features) -> Features {
        Features {
            items: self.items + o.items,
            encoded_mb: self.encoded_mb + o.encoded_mb,
            frame_mpx: self.frame_mpx + o.frame_mpx,
            out_mpx: self.out_mpx + o.out_mpx,
        }
    }

    /// Difference (for prefix sums).
    pub fn sub(&self, o: &Features) -> Features {
        Features {
            items: self.items - o.items,
            encoded_mb: self.encoded_mb - o.encoded_mb,
            frame_mpx: self.frame_mpx - o.frame_mpx,
            out_mpx: self.out_mpx - o.out_mpx,
        }
    }
}

/// Forgetting factor: weight of the past per observation. 0.95 lets ~20 recent batches
/// dominate, so a machine that gets busier is tracked within a few seconds of work.
const FORGET: f64 = 0.95;
/// A measurement more than this many robust deviations from the prediction is an outlier
/// (one slow batch, a page-cache miss, a GC pause in the host app) and is not learned from.
const OUTLIER_SIGMAS: f64 = 4.0;
/// Largest diagonal element the RLS covariance may reach. With a forgetting factor, batches
/// that keep the same features excite no other direction and the covariance grows as
/// 1/0.95^n there ("windup"): a bench sweep of thousands of identical small batches drove
/// predictions to 1e40 s. 10 is ten times the loosest prior (trust 1 -> 1.0), so bounding at
/// it never slows normal learning.
const P_MAX_DIAGONAL: f64 = 10.0;
/// A new shape's measurement this far from the prediction (relative to the larger of the
/// two: 0.5 = off by 2x) shows the model wrong there; see `observe_new_shape`.
const NEW_SHAPE_FAR: f64 = 0.5;
/// Observations before outlier rejection starts (the first ones define the scale).
const WARMUP_OBSERVATIONS: u32 = 4;

/// One path's linear model with its RLS state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Coefficients (seconds per unit of each feature).
    pub theta: [f64; FEATURES],
    /// RLS inverse-covariance estimate.
    p: [[f64; FEATURES]; FEATURES],
    /// Robust scale of relative residuals (EWMA of |residual| / prediction).
    scale: f64,
    /// Observations learned from.
    pub observations: u32,
    /// Observations rejected as outliers.
    pub outliers: u32,
}

impl LinearModel {
    /// A model starting from `theta`, with confidence `trust` in it (larger = more samples
    /// needed to move it).
    pub fn new(theta: [f64; FEATURES], trust: f64) -> LinearModel {
        let mut p = [[0.0; FEATURES]; FEATURES];
        for (i, row) in p.iter_mut().enumerate() {
            row[i] = 1.0 / trust.max(1e-9);
        }
        LinearModel {
            theta,
            p,
            scale: 0.25,
            observations: 0,
            outliers: 0,
        }
    }

    /// Predicted seconds for `f` (never negative).
    pub fn predict(&self, f: &Features) -> f64 {
        let x = f.vector();
        x.iter()
            .zip(&self.theta)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            .max(0.0)
    }

    /// Learns from a measured batch; returns false when it was rejected as an outlier.
    pub fn observe(&mut self, f: &Features, seconds: f64) -> bool {
        self.learn(f, seconds, true)
    }

    /// Learns from a batch of a shape the model has (almost) never measured: no outlier
    /// test, since a large residual there is the model's extrapolation error, not noise.
    pub fn observe_new_shape(&mut self, f: &Features, seconds: f64) -> bool {
        self.learn(f, seconds, false)
    }

    fn learn(&mut self, f: &Features, seconds: f64, reject_outliers: bool) -> bool {
        if !seconds.is_finite() || seconds < 0.0 {
            return false;
        }
        let pred = self.predict(f);
        let rel = (seconds - pred).abs() / pred.max(seconds).max(1e-4);
        if reject_outliers
            && self.observations >= WARMUP_OBSERVATIONS
            && rel > OUTLIER_SIGMAS * self.scale.max(0.05)
        {
            self.outliers += 1;
            // Still widen the scale a little, so a real regime change is accepted after a
            // few consistent "outliers" instead of being ignored forever.
            self.scale = 0.9 * self.scale + 0.1 * rel;
            return false;
        }
        if reject_outliers {
            self.scale = 0.8 * self.scale + 0.2 * rel;
        }
        let x = f.vector();
        if !reject_outliers && rel > NEW_SHAPE_FAR {
            // Far off on a shape it has not measured: the model, not the measurement, is
            // wrong here. Widen the covariance so this measurement is taken in (95% of the
            // residual at x) instead of being averaged against confident but unrelated
            // history (a pinned model moved only ~40% per batch in the scheduler tests).
            let xpx: f64 = (0..FEATURES)
                .map(|i| x[i] * (0..FEATURES).map(|j| self.p[i][j] * x[j]).sum::<f64>())
                .sum();
            let want = 19.0 * FORGET;
            if xpx > 0.0 && xpx < want {
                let g = want / xpx;
                self.p.iter_mut().flatten().for_each(|v| *v *= g);
            }
        }
        // RLS: k = P x / (λ + xᵀ P x); θ += k (y - xᵀθ); P = (P - k xᵀ P) / λ, with costs
        // kept non-negative by an active set: a coefficient the update would push below zero
        // is pinned at zero and the update is recomputed over the others. (Clamping after
        // the fact loses the correction: a 45x too pessimistic model whose per-item term hit
        // zero kept 40% of its error per batch in the scheduler tests.)
        let before = (self.theta, self.p);
        let mut active = [true; FEATURES];
        let (mut px, mut k) = ([0.0; FEATURES], [0.0; FEATURES]);
        for _ in 0..FEATURES {
            for (i, row) in self.p.iter().enumerate() {
                px[i] = if active[i] {
                    row.iter()
                        .zip(&x)
                        .zip(&active)
                        .filter(|(_, a)| **a)
                        .map(|((p, v), _)| p * v)
                        .sum()
                } else {
                    0.0
                };
            }
            let denom = FORGET + x.iter().zip(&px).map(|(a, b)| a * b).sum::<f64>();
            if denom.abs() < 1e-12 {
                return false;
            }
            for (ki, v) in k.iter_mut().zip(&px) {
                *ki = v / denom;
            }
            let err = seconds - x.iter().zip(&self.theta).map(|(a, b)| a * b).sum::<f64>();
            let next: Vec<f64> = (0..FEATURES).map(|i| self.theta[i] + k[i] * err).collect();
            let negative: Vec<usize> = (0..FEATURES)
                .filter(|&i| active[i] && next[i] < 0.0)
                .collect();
            if negative.is_empty() {
                self.theta.copy_from_slice(&next);
                break;
            }
            for i in negative {
                active[i] = false;
                self.theta[i] = 0.0;
            }
        }
        // xᵀP is pxᵀ since P is symmetric (restricted to the active set)
        for (row, ki) in self.p.iter_mut().zip(&k) {
            for (v, pj) in row.iter_mut().zip(&px) {
                *v = (*v - ki * pj) / FORGET;
            }
        }
        // Anti-windup: bound the covariance (see P_MAX_DIAGONAL).
        let max_diag = (0..FEATURES).map(|i| self.p[i][i]).fold(0.0, f64::max);
        if max_diag > P_MAX_DIAGONAL {
            let s = P_MAX_DIAGONAL / max_diag;
            self.p.iter_mut().flatten().for_each(|v| *v *= s);
        }
        if self
            .theta
            .iter()
            .chain(self.p.iter().flatten())
            .any(|v| !v.is_finite())
        {
            (self.theta, self.p) = before;
            return false;
        }
        for t in self.theta.iter_mut() {
            *t = t.max(0.0);
        }
        self.observations += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(items: f64, mb: f64, mpx: f64, out: f64) -> Features {
        Features {
            items,
            encoded_mb: mb,
            frame_mpx: mpx,
            out_mpx: out,
        }
    }

    #[test]
    fn learns_a_linear_cost() {
        // truth: 2 ms fixed + 10 ms per encoded MB + 1 ms per output Mpx
        let truth = |x: &Features| 0.002 + 0.010 * x.encoded_mb + 0.001 * x.out_mpx;
        let mut m = LinearModel::new([0.01, 0.01, 0.01, 0.01, 0.01], 1.0);
        for i in 0..60 {
            let x = f(
                1.0 + (i % 7) as f64,
                0.5 + (i % 5) as f64 * 3.0,
                0.0,
                (i % 3) as f64,
            );
            m.observe(&x, truth(&x));
        }
        let probe = f(8.0, 24.0, 0.0, 3.3);
        let rel = (m.predict(&probe) - truth(&probe)).abs() / truth(&probe);
        assert!(rel < 0.05, "prediction off by {rel}");
    }

    #[test]
    fn one_slow_batch_does_not_flip_the_model() {
        let truth = |x: &Features| 0.001 + 0.02 * x.items;
        let mut m = LinearModel::new([0.0, 0.02, 0.0, 0.0, 0.0], 10.0);
        for i in 0..20 {
            let x = f(1.0 + (i % 4) as f64, 0.0, 0.0, 0.0);
            m.observe(&x, truth(&x));
        }
        let before = m.predict(&f(4.0, 0.0, 0.0, 0.0));
        let slow = f(4.0, 0.0, 0.0, 0.0);
        assert!(
            !m.observe(&slow, 10.0 * truth(&slow)),
            "rejected as an outlier"
        );
        let after = m.predict(&slow);
        assert!(
            (after - before).abs() / before < 0.01,
            "{before} -> {after}"
        );
        assert_eq!(m.outliers, 1);
    }

    #[test]
    fn thousands_of_identical_batches_do_not_wind_up_the_model() {
        let mut m = LinearModel::new([0.01, 0.01, 0.01, 0.01, 0.01], 1.0);
        let x = f(1.0, 0.1, 0.05, 0.0);
        for i in 0..20_000 {
            // 1.7 ms +- 5 % jitter, always the same features
            m.observe(&x, 0.0017 * (1.0 + 0.05 * ((i % 7) as f64 - 3.0) / 3.0));
        }
        let p = m.predict(&x);
        assert!(p.is_finite() && (p - 0.0017).abs() < 0.0005, "{p}");
        // other batch shapes stay finite too
        assert!(m.predict(&f(64.0, 6.4, 3.2, 0.0)).is_finite());
    }

    #[test]
    fn a_real_regime_change_is_eventually_accepted() {
        let mut m = LinearModel::new([0.0, 0.01, 0.0, 0.0, 0.0], 10.0);
        for _ in 0..10 {
            m.observe(&f(2.0, 0.0, 0.0, 0.0), 0.02);
        }
        // the machine becomes 3x slower for good
        for _ in 0..40 {
            m.observe(&f(2.0, 0.0, 0.0, 0.0), 0.06);
        }
        let p = m.predict(&f(2.0, 0.0, 0.0, 0.0));
        assert!((p - 0.06).abs() < 0.01, "tracked the new regime: {p}");
    }

    #[test]
    fn a_new_shape_far_from_the_model_is_taken_in_at_once() {
        // a confident model, 10x too pessimistic for this shape
        let mut m = LinearModel::new([0.0, 0.1, 0.0, 0.0, 0.0], 1000.0);
        m.observations = 100;
        m.scale = 0.05;
        let x = f(8.0, 0.4, 0.0, 3.3);
        assert!(
            !m.clone().observe(&x, 0.08),
            "the usual path rejects it as an outlier"
        );
        assert!(m.observe_new_shape(&x, 0.08));
        // most of the way from 0.8 s to the measured 0.08 s in one batch (the per-item term
        // carries the error; the others are pinned at zero by the non-negativity)
        let p = m.predict(&x);
        assert!(p > 0.0 && p < 0.15, "{p}");
    }
}
