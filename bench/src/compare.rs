//! Comparing two reports: a case regressed when its median throughput dropped by more than
//! the noise both runs measured.

use serde::{Deserialize, Serialize};

use super::{BenchReport, Measurement};
use crate::noise::{fmt_share, is_noisy, noise_threshold, spread_threshold};

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
    /// Changed by more than the repeats' spread, but other processes disturbed one of the
    /// runs ([`crate::noise::is_noisy`]): no verdict; measure again on a quieter machine.
    Noisy,
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
    /// The relative change that counts: `max(NOISE_SIGMAS * combined spread, NOISE_FLOOR)`
    /// plus the difference of the runs' foreign CPU shares ([`crate::noise::noise_threshold`]).
    pub threshold: Option<f64>,
    /// Other processes' CPU share during the old and the new run of the case.
    #[serde(default)]
    pub foreign: (Option<f64>, Option<f64>),
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
        s.push_str("| case | old items/s | new items/s | change | noise threshold | others' cpu old / new | verdict |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---|\n");
        let f = |v: Option<f64>, pct: bool| match v {
            Some(x) if pct => format!("{:+.1}%", x * 100.0),
            Some(x) => format!("{x:.2}"),
            None => "-".into(),
        };
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} / {} | {} |\n",
                r.key,
                f(r.old, false),
                f(r.new, false),
                f(r.change, true),
                r.threshold
                    .map_or("-".into(), |t| format!("+-{:.1}%", t * 100.0)),
                fmt_share(r.foreign.0),
                fmt_share(r.foreign.1),
                match r.verdict {
                    Verdict::Regression => "**REGRESSION**",
                    Verdict::Improvement => "improvement",
                    Verdict::Unchanged => "unchanged",
                    Verdict::Noisy => "noisy: measure again",
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
            let threshold = noise_threshold(o, n);
            let change = if a > 0.0 { b / a - 1.0 } else { 0.0 };
            // a disturbed run settles nothing beyond its spread, in either direction
            let verdict = if (is_noisy(o) || is_noisy(n)) && change.abs() > spread_threshold(o, n) {
                Verdict::Noisy
            } else if change < -threshold {
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
                foreign: (o.foreign_cpu, n.foreign_cpu),
                verdict,
            }
        }
        (o, n) => ComparisonRow {
            key,
            old: o.map(|m| m.throughput.median),
            new: n.map(|m| m.throughput.median),
            change: None,
            threshold: None,
            foreign: (o.and_then(|m| m.foreign_cpu), n.and_then(|m| m.foreign_cpu)),
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
/// `max(NOISE_SIGMAS * sqrt(spread_old^2 + spread_new^2), NOISE_FLOOR) + |foreign_old -
/// foreign_new|`, where a spread is the MAD-based relative spread of that run's repeats and
/// a foreign share the machine's CPU time other processes used meanwhile; a change past the
/// spread alone in a case that other processes disturbed is [`Verdict::Noisy`], not a
/// regression.
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
    fn a_change_during_foreign_load_is_noisy_not_a_regression() {
        let old = fake_report(vec![
            fake("batch", "loaded", "cpu", 8, (640, 480), 100.0, 0.01),
            fake("batch", "shifted", "cpu", 8, (640, 480), 100.0, 0.01),
        ]);
        let mut new = fake_report(vec![
            fake("batch", "loaded", "cpu", 8, (640, 480), 60.0, 0.01),
            fake("batch", "shifted", "cpu", 8, (640, 480), 92.0, 0.01),
        ]);
        // another tenant took half the machine during the new run of `loaded`: 40% slower
        // is past the spread, but the run is flagged, so no verdict
        new.measurements[0].foreign_cpu = Some(0.5);
        // 8% slower while others took 8% (under the noisy flag): the load difference widens
        // the threshold to 5% + 8%, so no regression either
        new.measurements[1].foreign_cpu = Some(0.08);
        let c = compare(&old, &new);
        assert_eq!(c.rows[0].verdict, Verdict::Noisy);
        assert_eq!(c.rows[1].verdict, Verdict::Unchanged);
        assert_eq!(c.rows[1].threshold, Some(NOISE_FLOOR + 0.08));
        assert_eq!(c.regressions().count(), 0);
        assert!(c.to_markdown().contains("noisy: measure again"));
        assert!(c.to_markdown().contains("| 0% / 50% |"));
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
