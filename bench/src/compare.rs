//! Comparing two reports: a case regressed when its median throughput dropped by more than
//! the noise both runs measured.

use serde::{Deserialize, Serialize};

use super::{BenchReport, Measurement};

/// How many combined standard deviations a change must exceed to count. 3 sigma: with 7
/// repeats per side, a pure-noise change crosses it in well under 1% of cases.
pub const NOISE_SIGMAS: f64 = 3.0;

/// The smallest relative change ever flagged (5%): below that, machine state the spread
/// does not see (turbo, page cache, other tenants) moves medians on the 2-core development
/// machine even when each run's own spread is tight.
pub const NOISE_FLOOR: f64 = 0.05;

/// What happened to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Verdict {
    /// Slower by more than the noise.
    Regression,
    /// Faster by more than the noise.
    Improvement,
    /// Within the noise.
    Unchanged,
    /// Only in the old report.
    Missing,
    /// Only in the new report.
    New,
}

/// One case in both reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// `suite/name`.
    pub key: String,
    /// Old median throughput, items/s.
    pub old: Option<f64>,
    /// New median throughput, items/s.
    pub new: Option<f64>,
    /// `new / old - 1`.
    pub change: Option<f64>,
    /// The relative change that counts: `max(NOISE_SIGMAS * combined spread, NOISE_FLOOR)`.
    pub threshold: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// One row per case, in the new report's order, then missing ones.
    pub rows: Vec<ComparisonRow>,
    /// Differences between the two machine fingerprints (a different machine makes every
    /// verdict doubtful).
    pub fingerprint_differences: Vec<String>,
}

impl Comparison {
    /// Rows that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &ComparisonRow> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
    }

    /// A Markdown table of the comparison.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        for d in &self.fingerprint_differences {
            s.push_str(&format!("> different machine: {d}\n"));
        }
        if !self.fingerprint_differences.is_empty() {
            s.push('\n');
        }
        s.push_str("| case | old items/s | new items/s | change | noise threshold | verdict |\n");
        s.push_str("|---|---:|---:|---:|---:|---|\n");
        let f = |v: Option<f64>, pct: bool| match v {
            Some(x) if pct => format!("{:+.1}%", x * 100.0),
            Some(x) => format!("{x:.2}"),
            None => "-".into(),
        };
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.key,
                f(r.old, false),
                f(r.new, false),
                f(r.change, true),
                r.threshold
                    .map_or("-".into(), |t| format!("+-{:.1}%", t * 100.0)),
                match r.verdict {
                    Verdict::Regression => "**REGRESSION**",
                    Verdict::Improvement => "improvement",
                    Verdict::Unchanged => "unchanged",
                    Verdict::Missing => "missing in new",
                    Verdict::New => "new",
                }
            ));
        }
        s
    }
}

fn row(key: String, old: Option<&Measurement>, new: Option<&Measurement>) -> ComparisonRow {
    match (old, new) {
        (Some(o), Some(n)) => {
            let (a, b) = (o.throughput.median, n.throughput.median);
            let noise = o
                .throughput
                .relative_spread()
                .hypot(n.throughput.relative_spread());
            let threshold = (NOISE_SIGMAS * noise).max(NOISE_FLOOR);
            let change = if a > 0.0 { b / a - 1.0 } else { 0.0 };
            let verdict = if change < -threshold {
                Verdict::Regression
            } else if change > threshold {
                Verdict::Improvement
            } else {
                Verdict::Unchanged
            };
            ComparisonRow {
                key,
                old: Some(a),
                new: Some(b),
                change: Some(change),
                threshold: Some(threshold),
                verdict,
            }
        }
        (o, n) => ComparisonRow {
            key,
            old: o.map(|m| m.throughput.median),
            new: n.map(|m| m.throughput.median),
            change: None,
            threshold: None,
            verdict: if o.is_some() {
                Verdict::Missing
            } else {
                Verdict::New
            },
        },
    }
}

/// Compares `new` against `old` case by case (matched on `suite/name`, by median
/// throughput): a regression is a drop larger than
/// `max(NOISE_SIGMAS * sqrt(spread_old^2 + spread_new^2), NOISE_FLOOR)`, where a spread is
/// the MAD-based relative spread of that run's repeats.
pub fn compare(old: &BenchReport, new: &BenchReport) -> Comparison {
    let mut rows = Vec::new();
    let find =
        |r: &BenchReport, key: &str| r.measurements.iter().find(|m| m.case.key() == key).cloned();
    for n in &new.measurements {
        let key = n.case.key();
        rows.push(row(key.clone(), find(old, &key).as_ref(), Some(n)));
    }
    for o in &old.measurements {
        let key = o.case.key();
        if find(new, &key).is_none() {
            rows.push(row(key, Some(o), None));
        }
    }
    let (a, b) = (&old.fingerprint, &new.fingerprint);
    let mut diffs = Vec::new();
    let mut check = |what: &str, x: String, y: String| {
        if x != y {
            diffs.push(format!("{what}: {x} -> {y}"));
        }
    };
    check("cpu", a.cpu_model.clone(), b.cpu_model.clone());
    check(
        "logical cores",
        a.logical_cores.to_string(),
        b.logical_cores.to_string(),
    );
    check("adapter", a.adapter.clone(), b.adapter.clone());
    check("driver", a.driver.clone(), b.driver.clone());
    check(
        "engine threads",
        a.engine_threads.to_string(),
        b.engine_threads.to_string(),
    );
    check(
        "engine version",
        a.engine_version.clone(),
        b.engine_version.clone(),
    );
    Comparison {
        rows,
        fingerprint_differences: diffs,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake, fake_report};
    use super::*;

    #[test]
    fn flags_only_drops_beyond_the_noise() {
        let old = fake_report(vec![
            fake("batch", "quiet", "cpu", 8, (640, 480), 100.0, 0.01),
            fake("batch", "noisy", "cpu", 8, (640, 480), 100.0, 0.20),
            fake("batch", "faster", "cpu", 8, (640, 480), 100.0, 0.01),
            fake("batch", "gone", "cpu", 8, (640, 480), 100.0, 0.01),
        ]);
        let new = fake_report(vec![
            // 10% slower with a 1% spread: a regression (threshold is the 5% floor)
            fake("batch", "quiet", "cpu", 8, (640, 480), 90.0, 0.01),
            // 10% slower with a 20% spread: noise
            fake("batch", "noisy", "cpu", 8, (640, 480), 90.0, 0.20),
            fake("batch", "faster", "cpu", 8, (640, 480), 130.0, 0.01),
            fake("batch", "added", "cpu", 8, (640, 480), 100.0, 0.01),
        ]);
        let c = compare(&old, &new);
        let v = |k: &str| c.rows.iter().find(|r| r.key == k).unwrap().verdict;
        assert_eq!(v("batch/quiet"), Verdict::Regression);
        assert_eq!(v("batch/noisy"), Verdict::Unchanged);
        assert_eq!(v("batch/faster"), Verdict::Improvement);
        assert_eq!(v("batch/added"), Verdict::New);
        assert_eq!(v("batch/gone"), Verdict::Missing);
        assert_eq!(c.regressions().count(), 1);
        assert!(c.fingerprint_differences.is_empty());
        let quiet = c.rows.iter().find(|r| r.key == "batch/quiet").unwrap();
        assert_eq!(quiet.threshold, Some(NOISE_FLOOR));
        assert!(c.to_markdown().contains("**REGRESSION**"));
        // a 4% drop is under the floor even with no spread at all
        let same = fake_report(vec![fake(
            "batch",
            "quiet",
            "cpu",
            8,
            (640, 480),
            96.0,
            0.0,
        )]);
        let c = compare(
            &fake_report(vec![fake(
                "batch",
                "quiet",
                "cpu",
                8,
                (640, 480),
                100.0,
                0.0,
            )]),
            &same,
        );
        assert_eq!(c.rows[0].verdict, Verdict::Unchanged);
    }

    #[test]
    fn names_machine_differences() {
        let old = fake_report(vec![]);
        let mut new = fake_report(vec![]);
        new.fingerprint.adapter = "NVIDIA H200".into();
        let c = compare(&old, &new);
        assert_eq!(
            c.fingerprint_differences,
            vec!["adapter: none -> NVIDIA H200"]
        );
    }
}
