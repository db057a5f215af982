//! Other processes' CPU use during a measurement, and the noise threshold that comparisons
//! and recommendations share.
//!
//! On a shared machine another tenant's compiler steals cores from a benchmark without
//! changing the benchmark's own spread much when it runs through all repeats: seven slow
//! calls agree with each other. What tells such a run apart is the machine's CPU time spent
//! outside this process while it was measured: busy time from `/proc/stat` (all cores,
//! including time stolen by the hypervisor) minus this process's own user + system time
//! from `/proc/self/stat`. Both count in the kernel's `USER_HZ` ticks (10 ms on Linux), so
//! calls shorter than a few ticks are judged together, over the whole measurement.

use super::{Measurement, NOISE_FLOOR, NOISE_SIGMAS};

/// A timed call (or a measurement) is *noisy* when other processes used more than this
/// share of the machine's CPU time (all cores) meanwhile. 10%: every case runs on all
/// cores, so a foreign share `f` takes up to `f` of its throughput; 10% is twice the 5%
/// change a comparison counts ([`NOISE_FLOOR`]) and a fifth of one core on the 2-core
/// development machine, where one other tenant's compile job alone is 50%.
pub const NOISY_FOREIGN_SHARE: f64 = 0.10;

/// A call's own share is trusted only when the machine's CPU time over it spans at least
/// this many ticks (all cores together; 20 ticks = 0.2 s of CPU time, 0.1 s of wall time on
/// 2 cores): with 10 ms ticks, one tick of rounding then moves the share by at most 5%.
pub const MIN_TICKS: u64 = 20;

/// Timed calls re-run per measurement at most, when a call was noisy. Default of
/// [`crate::RunConfig::noise_retries`]: 3 keeps a 7-repeat measurement within 1.5x of its
/// quiet duration while replacing the calls that a passing compile job spoiled.
pub const DEFAULT_NOISE_RETRIES: usize = 3;

/// CPU counters at one instant, in `USER_HZ` ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// Machine busy time, all cores (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    /// Machine busy + idle (idle, iowait) time, all cores.
    pub total: u64,
    /// This process's user + system time, all threads.
    pub own: u64,
}

impl CpuSample {
    /// Reads `/proc/stat` and `/proc/self/stat`; `None` where they are missing or not in
    /// the Linux format (then measurements are not judged for noise).
    pub fn read() -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        CpuSample::parse(&stat, &own)
    }

    /// Parses the two files' texts (see [`CpuSample::read`]).
    pub fn parse(proc_stat: &str, self_stat: &str) -> Option<CpuSample> {
        let (busy, total) = parse_proc_stat(proc_stat)?;
        Some(CpuSample {
            busy,
            total,
            own: parse_self_stat(self_stat)?,
        })
    }
}

/// `(busy, total)` ticks from the aggregate `cpu` line of `/proc/stat`: `user nice system
/// idle iowait irq softirq steal [guest guest_nice]` (guest time is already inside user).
fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if v.len() < 4 {
        return None;
    }
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let idle = get(3) + get(4);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some((busy, busy + idle))
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`; the command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_self_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, i.e. index 11
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Other processes' share of the machine's CPU time between `a` and `b` (0 to 1), or
/// `None` when fewer than `min_ticks` passed (too short to judge) or the counters went
/// backwards.
pub fn foreign_share(a: &CpuSample, b: &CpuSample, min_ticks: u64) -> Option<f64> {
    let total = b.total.checked_sub(a.total)?;
    if total < min_ticks.max(1) {
        return None;
    }
    let busy = b.busy.checked_sub(a.busy)?;
    let own = b.own.checked_sub(a.own)?;
    Some((busy.saturating_sub(own) as f64 / total as f64).clamp(0.0, 1.0))
}

/// What a measurement's noise bookkeeping concluded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NoiseTally {
    /// Foreign share over all kept timed calls (see [`foreign_share`]).
    pub foreign: Option<f64>,
    /// Calls measured again because they were noisy.
    pub retried: usize,
    /// Kept calls that were noisy (retries ran out).
    pub noisy_kept: usize,
}

/// Decides for one timed call whether to keep it: `share` is its foreign share (`None`:
/// too short to judge, kept), `retries_left` is decremented when the call is dropped.
pub fn keep_call(share: Option<f64>, retries_left: &mut usize, tally: &mut NoiseTally) -> bool {
    match share {
        Some(f) if f > NOISY_FOREIGN_SHARE => {
            if *retries_left > 0 {
                *retries_left -= 1;
                tally.retried += 1;
                false
            } else {
                tally.noisy_kept += 1;
                true
            }
        }
        _ => true,
    }
}

/// True when other processes disturbed `m`: their share over its timed calls exceeded
/// [`NOISY_FOREIGN_SHARE`], or more than half its kept calls were noisy.
pub fn is_noisy(m: &Measurement) -> bool {
    m.foreign_cpu.is_some_and(|f| f > NOISY_FOREIGN_SHARE) || m.noisy_calls * 2 > m.runs
}

/// A foreign share as a percentage of the machine (`?` when unknown).
pub fn fmt_share(share: Option<f64>) -> String {
    share.map_or("?".into(), |f| format!("{:.0}%", f * 100.0))
}

/// ` NOISY (n retried)`-style marker of a measurement, empty when it was quiet.
pub fn flag(m: &Measurement) -> String {
    match (is_noisy(m), m.noisy_retries) {
        (true, 0) => " NOISY".into(),
        (true, r) => format!(" NOISY ({r} calls retried)"),
        (false, 0) => String::new(),
        (false, r) => format!(" ({r} noisy calls retried)"),
    }
}

/// The relative throughput difference between `a` and `b` that noise can explain:
/// `max(NOISE_SIGMAS x sqrt(spread_a^2 + spread_b^2), NOISE_FLOOR)` plus the difference of
/// their foreign shares (a share `f` of the machine taken by others costs an all-core case
/// up to `f` of its throughput, and the repeats' spread does not see a load that lasted the
/// whole case).
pub fn noise_threshold(a: &Measurement, b: &Measurement) -> f64 {
    let foreign = (a.foreign_cpu.unwrap_or(0.0) - b.foreign_cpu.unwrap_or(0.0)).abs();
    spread_threshold(a, b) + foreign
}

/// The part of [`noise_threshold`] that the repeats' spread sets:
/// `max(NOISE_SIGMAS x sqrt(spread_a^2 + spread_b^2), NOISE_FLOOR)`.
pub fn spread_threshold(a: &Measurement, b: &Measurement) -> f64 {
    let spread = a
        .throughput
        .relative_spread()
        .hypot(b.throughput.relative_spread());
    (NOISE_SIGMAS * spread).max(NOISE_FLOOR)
}

/// True when `a`'s median throughput exceeds `b`'s by more than `margin` plus the noise
/// ([`noise_threshold`]): the only differences recommendations act on.
pub fn clearly_faster(a: &Measurement, b: &Measurement, margin: f64) -> bool {
    let (x, y) = (a.throughput.median, b.throughput.median);
    y > 0.0 && x / y - 1.0 > margin + noise_threshold(a, b)
}

#[cfg(test)]
mod tests {
    use super::super::tests::fake;
    use super::*;

    const STAT: &str =
        "cpu  1000 10 500 8000 90 5 5 20 0 0\ncpu0 500 5 250 4000 45 3 2 10 0 0\nintr 1\n";
    const SELF: &str = "4242 (bench (x) y) R 1 2 3 4 5 6 7 8 9 10 300 100 0 0 20 0 9 0 100 0 0";

    #[test]
    fn parses_proc_stat_and_self_stat() {
        let s = CpuSample::parse(STAT, SELF).unwrap();
        // busy = 1000+10+500+5+5+20, idle = 8000+90
        assert_eq!(s.busy, 1540);
        assert_eq!(s.total, 1540 + 8090);
        // utime 300 + stime 100, counted after the last ')'
        assert_eq!(s.own, 400);
        assert!(CpuSample::parse("intr 1\n", SELF).is_none());
        assert!(CpuSample::parse(STAT, "4242 (bench) R 1").is_none());
        assert!(CpuSample::parse("cpu  1 x 3 4\n", SELF).is_none());
    }

    fn at(busy: u64, total: u64, own: u64) -> CpuSample {
        CpuSample { busy, total, own }
    }

    #[test]
    fn foreign_share_is_busy_minus_own_over_total() {
        // 200 ticks on the machine, 150 busy, 100 of them ours: others took 25%
        let f = foreign_share(&at(0, 0, 0), &at(150, 200, 100), MIN_TICKS).unwrap();
        assert!((f - 0.25).abs() < 1e-12);
        // too short to judge, and counters that went backwards
        assert_eq!(foreign_share(&at(0, 0, 0), &at(5, 10, 5), MIN_TICKS), None);
        assert_eq!(foreign_share(&at(9, 90, 0), &at(0, 0, 0), MIN_TICKS), None);
        // our ticks can run ahead of the machine's (different sampling instants): clamped
        assert_eq!(
            foreign_share(&at(0, 0, 0), &at(50, 100, 60), MIN_TICKS),
            Some(0.0)
        );
    }

    #[test]
    fn noisy_calls_are_retried_until_the_budget_runs_out() {
        let mut left = 2;
        let mut t = NoiseTally::default();
        assert!(keep_call(Some(0.05), &mut left, &mut t));
        assert!(keep_call(None, &mut left, &mut t));
        assert!(!keep_call(Some(0.5), &mut left, &mut t));
        assert!(!keep_call(Some(0.5), &mut left, &mut t));
        assert!(keep_call(Some(0.5), &mut left, &mut t));
        assert_eq!((left, t.retried, t.noisy_kept), (0, 2, 1));
    }

    #[test]
    fn thresholds_widen_with_spread_and_foreign_load() {
        let quiet = fake("batch", "a", "cpu", 8, (640, 480), 100.0, 0.0);
        let mut b = fake("batch", "b", "cpu", 8, (640, 480), 108.0, 0.0);
        // no spread, no load: the floor
        assert!((noise_threshold(&quiet, &b) - NOISE_FLOOR).abs() < 1e-12);
        assert!(clearly_faster(&b, &quiet, 0.0));
        // 8% faster, but others took 30% during one of them and 5% during the other
        let mut a = quiet.clone();
        a.foreign_cpu = Some(0.30);
        b.foreign_cpu = Some(0.05);
        assert!((noise_threshold(&a, &b) - (NOISE_FLOOR + 0.25)).abs() < 1e-12);
        assert!(!clearly_faster(&b, &a, 0.0));
        assert!(is_noisy(&a) && !is_noisy(&b));
        // a margin adds to the threshold
        assert!(!clearly_faster(&b, &quiet, 0.05));
        // half the calls noisy is not yet noisy, more is
        b.noisy_calls = b.runs / 2;
        assert!(!is_noisy(&b));
        b.noisy_calls = b.runs / 2 + 1;
        assert!(is_noisy(&b));
    }
}
