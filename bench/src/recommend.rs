//! Recommendations derived from a report: where the GPU starts to win (batch size x
//! resolution), and the workers, batch size and budgets to configure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BenchReport, Measurement, NOISE_FLOOR};
use crate::noise::{clearly_faster, is_noisy, NOISY_FOREIGN_SHARE};

/// A batch size is "enough" once it reaches this fraction of the best measured throughput:
/// past it a bigger batch buys under 10% (about the dev-2c run-to-run noise) and only adds
/// latency and memory.
pub const BATCH_EFFICIENCY: f64 = 0.90;

/// The GPU "wins" a point when its median throughput beats the CPU's by at least this
/// margin (the comparison noise floor, [`super::NOISE_FLOOR`]) and by more than the
/// measured noise ([`crate::noise::noise_threshold`], which includes that floor).
pub const WIN_MARGIN: f64 = super::NOISE_FLOOR;

/// Budgets are the measured peaks times this: reservations vary with each image's size and
/// with which items of concurrent batches overlap; 1.5x covered every memory-suite peak on
/// the development machine.
pub const BUDGET_HEADROOM: f64 = 1.5;

/// The smallest host budget recommended: one 12 MP photo (4032x3024, the W1 size) decoded
/// at full resolution (`Pipeline::exact`, or a format without shrink-on-load) holds two
/// 36 MB frames plus intermediates, ~110 MiB; a budget below that would refuse real photos
/// that small generated inputs never exercise.
pub const MIN_HOST_BUDGET: u64 = 128 << 20;

/// Where the GPU starts to win at one input resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    /// Input width.
    pub width: u32,
    /// Input height.
    pub height: u32,
    /// The smallest measured batch size from which the GPU path is faster than the CPU
    /// path at every larger measured batch; `None` when it never is.
    pub gpu_wins_from_batch: Option<usize>,
    /// Batch sizes measured on both paths.
    pub batches_measured: Vec<usize>,
    /// GPU/CPU throughput ratio at the largest measured batch.
    pub gpu_over_cpu_at_largest: f64,
}

/// What to configure on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// Per measured resolution, where the GPU starts to win.
    pub crossover: Vec<Crossover>,
    /// The path with the best throughput at the batch suite's resolution.
    pub path: String,
    /// CPU worker threads (`EngineBuilder::cpu_threads`).
    pub workers: usize,
    /// Batches to run concurrently (callers of `Engine::run`).
    pub concurrent_batches: usize,
    /// Items per batch (`StreamOptions::batch_size`).
    pub batch_size: usize,
    /// Host budget (`EngineBuilder::host_memory_limit`), bytes.
    pub host_budget_bytes: u64,
    /// GPU budget (`EngineBuilder::gpu_memory_limit`), bytes, when a GPU was measured.
    pub gpu_budget_bytes: Option<u64>,
    /// One line per recommendation, saying what it is based on.
    pub reasons: Vec<String>,
}

fn by_key<'a>(
    ms: impl Iterator<Item = &'a Measurement>,
) -> BTreeMap<(u32, u32, usize, String), &'a Measurement> {
    ms.map(|m| {
        (
            (
                m.case.width,
                m.case.height,
                m.case.batch,
                m.case.path.clone(),
            ),
            m,
        )
    })
    .collect()
}

/// One batch size of a crossover: (batch, gpu/cpu throughput ratio, gpu clearly faster).
type Point = (usize, f64, bool);

/// Crossovers from every measurement of suites `batch` and `size` that has both a `cpu`
/// and a `gpu` point at the same resolution and batch size. The GPU wins a point only when
/// it is faster by more than [`WIN_MARGIN`] plus the measured noise
/// ([`crate::noise::clearly_faster`]).
fn crossovers(r: &BenchReport) -> Vec<Crossover> {
    let pts = by_key(
        r.measurements
            .iter()
            .filter(|m| m.case.suite == "batch" || m.case.suite == "size"),
    );
    // per resolution: (batch, gpu/cpu ratio, gpu clearly faster)
    let mut grid: BTreeMap<(u32, u32), Vec<Point>> = BTreeMap::new();
    for ((w, h, b, path), cpu) in &pts {
        if path != "cpu" {
            continue;
        }
        if let Some(gpu) = pts.get(&(*w, *h, *b, "gpu".to_string())) {
            grid.entry((*w, *h)).or_default().push((
                *b,
                gpu.throughput.median / cpu.throughput.median.max(1e-12),
                clearly_faster(gpu, cpu, WIN_MARGIN - NOISE_FLOOR),
            ));
        }
    }
    grid.into_iter()
        .map(|((w, h), mut v)| {
            v.sort_by_key(|p| p.0);
            // The smallest batch from which the GPU wins at every larger measured batch.
            let mut from = None;
            for (b, _, wins) in v.iter().rev() {
                if *wins {
                    from = Some(*b);
                } else {
                    break;
                }
            }
            Crossover {
                width: w,
                height: h,
                gpu_wins_from_batch: from,
                batches_measured: v.iter().map(|p| p.0).collect(),
                gpu_over_cpu_at_largest: v.last().map_or(0.0, |p| p.1),
            }
        })
        .collect()
}

fn mib_up(b: f64) -> u64 {
    ((b / (1u64 << 20) as f64).ceil() as u64).max(1) << 20
}

/// Derives recommendations from a report (any subset of suites; missing suites fall back
/// to the engine's defaults, and the reasons say so).
pub fn recommend(r: &BenchReport) -> Recommendations {
    let mut reasons = Vec::new();
    let crossover = crossovers(r);
    for c in &crossover {
        reasons.push(match c.gpu_wins_from_batch {
            Some(b) => format!(
                "{}x{}: the gpu path is faster from batch {b} (gpu/cpu {:.2} at batch {})",
                c.width,
                c.height,
                c.gpu_over_cpu_at_largest,
                c.batches_measured.last().copied().unwrap_or(0)
            ),
            None => format!(
                "{}x{}: the gpu path never beat the cpu up to batch {} (gpu/cpu {:.2})",
                c.width,
                c.height,
                c.batches_measured.last().copied().unwrap_or(0),
                c.gpu_over_cpu_at_largest
            ),
        });
    }
    // Batch size: on the best path of the batch suite.
    let batch: Vec<&Measurement> = r.suite("batch").collect();
    let best = batch
        .iter()
        .max_by(|a, b| a.throughput.median.total_cmp(&b.throughput.median));
    let (path, batch_size, peak_per_item) = match best {
        Some(best) => {
            let same: Vec<&&Measurement> = batch
                .iter()
                .filter(|m| {
                    m.case.path == best.case.path
                        && (m.case.width, m.case.height) == (best.case.width, best.case.height)
                })
                .collect();
            // "Enough" unless the best batch is faster by more than the efficiency margin
            // plus the noise: a batch whose shortfall the noise explains is not ruled out
            let margin = 1.0 / BATCH_EFFICIENCY - 1.0;
            let enough = same
                .iter()
                .filter(|m| !clearly_faster(best, m, margin))
                .min_by_key(|m| m.case.batch)
                .map_or(best.case.batch, |m| m.case.batch);
            reasons.push(format!(
                "batch size {enough}: the smallest batch on the {} path within {:.0}% of its best throughput plus the measured noise ({:.1} items/s at batch {}, {}x{})",
                best.case.path,
                (1.0 - BATCH_EFFICIENCY) * 100.0,
                best.throughput.median,
                best.case.batch,
                best.case.width,
                best.case.height
            ));
            let noisy = batch.iter().filter(|m| is_noisy(m)).count();
            if noisy > 0 {
                reasons.push(format!(
                    "{noisy} of {} batch cases ran while other processes used more than {:.0}% of the machine: their differences count only beyond that load",
                    batch.len(),
                    NOISY_FOREIGN_SHARE * 100.0
                ));
            }
            let per_item = same
                .iter()
                .filter_map(|m| {
                    m.peak_host_reserved_bytes
                        .map(|b| b as f64 / m.case.batch.max(1) as f64)
                })
                .fold(0.0, f64::max);
            // the engine's default path unless the best one beats it beyond the noise
            let auto = batch.iter().find(|m| {
                m.case.path == "auto"
                    && (m.case.width, m.case.height, m.case.batch)
                        == (best.case.width, best.case.height, best.case.batch)
            });
            let path = match auto {
                Some(a) if best.case.path != "auto" && !clearly_faster(best, a, 0.0) => {
                    reasons.push(format!(
                        "path auto: the {} path's lead over auto at batch {} ({:.1} vs {:.1} items/s) is within the measured noise",
                        best.case.path,
                        best.case.batch,
                        best.throughput.median,
                        a.throughput.median
                    ));
                    "auto".to_string()
                }
                _ => best.case.path.clone(),
            };
            (path, enough, per_item)
        }
        None => {
            reasons.push(format!(
                "batch size {}: the engine's default (no batch suite measured)",
                veridoc::MAX_BATCH.min(32)
            ));
            ("auto".into(), veridoc::MAX_BATCH.min(32), 0.0)
        }
    };
    // Concurrency: from the memory suite's levels.
    let mem: Vec<&Measurement> = r.suite("memory").collect();
    let concurrent_batches = match mem
        .iter()
        .max_by(|a, b| a.throughput.median.total_cmp(&b.throughput.median))
    {
        Some(top) => {
            let c = mem
                .iter()
                .filter(|m| m.throughput.median >= 0.95 * top.throughput.median)
                .map(|m| m.case.concurrency)
                .min()
                .unwrap_or(1);
            reasons.push(format!(
                "{c} concurrent batch(es): the fewest callers within 5% of the best memory-suite throughput ({:.1} items/s with {})",
                top.throughput.median, top.case.concurrency
            ));
            c
        }
        None => 1,
    };
    let workers = r.fingerprint.engine_threads.max(1);
    reasons.push(format!(
        "{workers} cpu workers: one per logical core (decode and resize scale with cores; the gpu path's upload fill uses them too)"
    ));
    let host_budget_bytes = if peak_per_item > 0.0 {
        let b =
            mib_up(peak_per_item * batch_size as f64 * concurrent_batches as f64 * BUDGET_HEADROOM);
        reasons.push(format!(
            "host budget {}: {} reserved per item at peak x {batch_size} items x {concurrent_batches} batch(es) x {BUDGET_HEADROOM} headroom = {}, at least {}",
            veridoc::fmt_bytes(b.max(MIN_HOST_BUDGET)),
            veridoc::fmt_bytes(peak_per_item as u64),
            veridoc::fmt_bytes(b),
            veridoc::fmt_bytes(MIN_HOST_BUDGET)
        ));
        b.max(MIN_HOST_BUDGET)
    } else {
        let b = (r.fingerprint.memory_total_bytes as f64 * veridoc::DEFAULT_HOST_FRACTION) as u64;
        reasons
            .push("host budget: the engine's default fraction (no reservations measured)".into());
        b
    };
    let gpu_peak = r.measurements.iter().filter_map(|m| m.peak_gpu_bytes).max();
    let gpu_budget_bytes = gpu_peak.filter(|&p| p > 0).map(|p| {
        let b = mib_up(p as f64 * BUDGET_HEADROOM);
        reasons.push(format!(
            "gpu budget {}: the largest gpu allocation measured ({}) x {BUDGET_HEADROOM}",
            veridoc::fmt_bytes(b),
            veridoc::fmt_bytes(p)
        ));
        b
    });
    Recommendations {
        crossover,
        path,
        workers,
        concurrent_batches,
        batch_size,
        host_budget_bytes,
        gpu_budget_bytes,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake, fake_report};
    use super::*;

    #[test]
    fn finds_the_crossover_and_the_smallest_efficient_batch() {
        let wh = (1280, 960);
        let mut ms = Vec::new();
        // cpu saturates at 100 items/s from batch 4; gpu keeps growing and passes it at 16
        for (b, cpu, gpu) in [
            (1, 40.0, 10.0),
            (2, 70.0, 20.0),
            (4, 95.0, 40.0),
            (8, 100.0, 80.0),
            (16, 100.0, 150.0),
            (32, 100.0, 250.0),
        ] {
            ms.push(fake("batch", &format!("cpu b{b}"), "cpu", b, wh, cpu, 0.02));
            ms.push(fake("batch", &format!("gpu b{b}"), "gpu", b, wh, gpu, 0.02));
        }
        // at a small size the gpu never wins
        ms.push(fake("size", "cpu s", "cpu", 8, (320, 240), 500.0, 0.02));
        ms.push(fake("size", "gpu s", "gpu", 8, (320, 240), 50.0, 0.02));
        let r = recommend(&fake_report(ms));
        let c = |w: u32| r.crossover.iter().find(|c| c.width == w).unwrap();
        assert_eq!(c(1280).gpu_wins_from_batch, Some(16));
        assert_eq!(c(1280).batches_measured, vec![1, 2, 4, 8, 16, 32]);
        assert!((c(1280).gpu_over_cpu_at_largest - 2.5).abs() < 1e-9);
        assert_eq!(c(320).gpu_wins_from_batch, None);
        // best path is gpu (250 at 32); 90% of 250 = 225 -> batch 32
        assert_eq!((r.path.as_str(), r.batch_size), ("gpu", 32));
        // fake peaks: 4 MiB reserved per item, 64 MiB on the gpu
        assert_eq!(r.host_budget_bytes, mib_up(4.0 * 1048576.0 * 32.0 * 1.5));
        assert!(r.host_budget_bytes >= MIN_HOST_BUDGET);
        assert_eq!(r.gpu_budget_bytes, Some(96 << 20));
        assert_eq!(r.workers, 2);
        assert!(r.reasons.iter().any(|l| l.contains("never beat")));
    }

    #[test]
    fn noise_does_not_flip_the_advice() {
        let wh = (640, 480);
        // batch 2 looks 20% faster than batch 1, but both cases have a 10% spread (robust
        // spread 7.4% each; 3 x 10.5% combined + the 11% margin = 42%): batch 1 stays
        // within reach, so the advice is 1
        // whichever of the two a run happens to favour
        for (one, two) in [(100.0, 120.0), (120.0, 100.0)] {
            let ms = vec![
                fake("batch", "cpu b1", "cpu", 1, wh, one, 0.10),
                fake("batch", "cpu b2", "cpu", 2, wh, two, 0.10),
            ];
            assert_eq!(recommend(&fake_report(ms)).batch_size, 1);
        }
        // quiet runs: a 20% gain is real and batch 2 is advised
        let ms = vec![
            fake("batch", "cpu b1", "cpu", 1, wh, 100.0, 0.0),
            fake("batch", "cpu b2", "cpu", 2, wh, 120.0, 0.0),
        ];
        assert_eq!(recommend(&fake_report(ms)).batch_size, 2);
        // the best path's lead over auto within the noise: auto (the default) is advised
        let ms = vec![
            fake("batch", "cpu b8", "cpu", 8, wh, 110.0, 0.10),
            fake("batch", "auto b8", "auto", 8, wh, 100.0, 0.10),
        ];
        assert_eq!(recommend(&fake_report(ms)).path, "auto");
        let ms = vec![
            fake("batch", "cpu b8", "cpu", 8, wh, 130.0, 0.0),
            fake("batch", "auto b8", "auto", 8, wh, 100.0, 0.0),
        ];
        assert_eq!(recommend(&fake_report(ms)).path, "cpu");
        // a gpu 30% ahead while others used 40% of the machine during the cpu case: no win
        let mut cpu = fake("batch", "cpu b8", "cpu", 8, wh, 100.0, 0.0);
        cpu.foreign_cpu = Some(0.4);
        let gpu = fake("batch", "gpu b8", "gpu", 8, wh, 130.0, 0.0);
        let r = recommend(&fake_report(vec![cpu, gpu]));
        assert_eq!(r.crossover[0].gpu_wins_from_batch, None);
        assert!(r.reasons.iter().any(|l| l.contains("other processes")));
    }

    #[test]
    fn a_win_must_hold_at_every_larger_batch() {
        let wh = (640, 480);
        let ms = vec![
            fake("batch", "cpu 4", "cpu", 4, wh, 100.0, 0.0),
            fake("batch", "gpu 4", "gpu", 4, wh, 120.0, 0.0),
            fake("batch", "cpu 8", "cpu", 8, wh, 100.0, 0.0),
            fake("batch", "gpu 8", "gpu", 8, wh, 90.0, 0.0),
        ];
        let r = recommend(&fake_report(ms));
        assert_eq!(r.crossover[0].gpu_wins_from_batch, None);
        let empty = recommend(&fake_report(vec![]));
        assert!(empty.crossover.is_empty());
        assert!(empty.batch_size >= 1);
    }
}
