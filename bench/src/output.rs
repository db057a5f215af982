//! Writing a report: JSON, a Markdown summary, SVG charts (hand-written SVG text, readable
//! in any browser), and the calibration files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{noise, BenchReport, Measurement, Summary};
use veridoc::{Error, Result};

/// One line of a line chart: points `(x, y, y_low, y_high)` (the band is drawn as an
/// error bar; use `y` for both ends for none).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, sorted by x or not.
    pub points: Vec<(f64, f64, f64, f64)>,
}

const W: f64 = 760.0;
const H: f64 = 430.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stable colour per label: the paths keep theirs across charts.
fn colour(name: &str, i: usize) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f",
    ];
    let base = name.split_whitespace().next().unwrap_or("");
    match base {
        "cpu" => PALETTE[0],
        "gpu" => PALETTE[1],
        "auto" => PALETTE[2],
        "split" => PALETTE[3],
        _ => PALETTE[(i + 4) % PALETTE.len()],
    }
}

/// "Nice" tick step for a range (1, 2 or 5 times a power of ten), about `n` ticks.
fn nice_step(range: f64, n: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The SVG header and title; a second line of `title` (after `\n`) is drawn smaller
/// under the first (the machine and adapter of the charts).
fn header(s: &mut String, title: &str, w: f64, h: f64) {
    let (first, second) = title.split_once('\n').unwrap_or((title, ""));
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{}" y="20" text-anchor="middle" font-size="15" font-weight="bold">{}</text>
<text x="{}" y="36" text-anchor="middle" font-size="11">{}</text>
"##,
        w / 2.0,
        esc(first),
        w / 2.0,
        esc(second)
    );
}

/// The charts' second title line: the machine and the adapter the series ran on.
fn machine_line(r: &BenchReport) -> String {
    let f = &r.fingerprint;
    format!(
        "{} ({} threads); adapter {}{}",
        f.cpu_model,
        f.engine_threads,
        f.adapter,
        if f.adapter_is_software {
            " (software: gpu numbers functional only)"
        } else {
            ""
        }
    )
}

/// A line chart of `series` (y from 0, or on a log axis when the values span more than
/// 20x; x on a log2 axis when `log_x`, ticks at the measured x values), with a legend on
/// the right.
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> String {
    let mut s = String::new();
    header(&mut s, title, W, H);
    let pts = || series.iter().flat_map(|se| se.points.iter());
    let tx = |x: f64| if log_x { x.max(1e-9).log2() } else { x };
    let xs: Vec<f64> = pts().map(|p| p.0).filter(|x| x.is_finite()).collect();
    let (mut x0, mut x1) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(tx(x)), b.max(tx(x)))
        });
    if !x0.is_finite() {
        s.push_str("<text x=\"50%\" y=\"50%\" text-anchor=\"middle\">no data</text>\n</svg>\n");
        return s;
    }
    if x1 - x0 < 1e-9 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let ys = || {
        pts()
            .flat_map(|p| [p.1, p.2, p.3])
            .filter(|y| y.is_finite() && *y > 0.0)
    };
    let ymax = ys().fold(0.0, f64::max).max(1e-9);
    let ymin = ys().fold(f64::INFINITY, f64::min);
    // Paths that differ by more than 20x (a software GPU next to the CPU) would flatten the
    // slower one against the axis: switch to a log axis then.
    let log_y = ymin.is_finite() && ymax / ymin > 20.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * pw;
    let mut yticks = Vec::new();
    let (d0, d1, ytop) = if log_y {
        let (d0, d1) = (ymin.log10().floor(), ymax.log10().ceil());
        let mut d = d0;
        while d <= d1 + 1e-9 {
            for m in [1.0, 2.0, 5.0] {
                let v = 10f64.powf(d) * m;
                if v.log10() <= d1 + 1e-9 {
                    yticks.push(v);
                }
            }
            d += 1.0;
        }
        (d0, d1.max(d0 + 1.0), 0.0)
    } else {
        let step = nice_step(ymax, 5.0);
        let ytop = (ymax / step).ceil() * step;
        let mut y = 0.0;
        while y <= ytop + step * 0.01 {
            yticks.push(y);
            y += step;
        }
        (0.0, 0.0, ytop)
    };
    let py = |y: f64| {
        let f = if log_y {
            (y.max(10f64.powf(d0)).log10() - d0) / (d1 - d0)
        } else {
            y / ytop
        };
        TOP + ph - f.clamp(0.0, 1.05) * ph
    };
    for y in yticks {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py(y) + 4.0,
            fmt_tick(y),
            py = py(y)
        );
    }
    // x ticks at the measured values
    let mut ticks = xs.clone();
    ticks.sort_by(|a, b| a.total_cmp(b));
    ticks.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    for t in &ticks {
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 19.0,
            fmt_tick(*t),
            x = px(*t)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        LEFT + pw / 2.0,
        H - 14.0,
        esc(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(&if log_y {
            format!("{y_label}, log axis")
        } else {
            y_label.to_string()
        })
    );
    let mut seen: Vec<&str> = Vec::new();
    for (i, se) in series.iter().enumerate() {
        let c = colour(&se.name, i);
        // Series of the same path at other resolutions share its colour: dash them.
        let dash = match seen.iter().filter(|&&x| x == c).count() {
            0 => "",
            1 => r#" stroke-dasharray="7 4""#,
            _ => r#" stroke-dasharray="2 3""#,
        };
        seen.push(c);
        let mut p = se.points.clone();
        p.retain(|q| q.0.is_finite() && q.1.is_finite());
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line: Vec<String> = p
            .iter()
            .map(|q| format!("{:.1},{:.1}", px(q.0), py(q.1)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="{}"/>"##,
            line.join(" ")
        );
        for q in &p {
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{c}"/><circle cx="{x:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{}: x={} y={:.2} ({:.2}-{:.2})</title></circle>"##,
                py(q.2),
                py(q.3),
                py(q.1),
                esc(&se.name),
                fmt_tick(q.0),
                q.1,
                q.2,
                q.3,
                x = px(q.0)
            );
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"##,
            W - RIGHT + 14.0,
            W - RIGHT + 36.0,
            W - RIGHT + 42.0,
            ly + 4.0,
            esc(&se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal box plots on a log axis: box = p25..p75, bar = median, whiskers = min..p99,
/// dot = max. One row per `(label, summary)`.
pub fn box_plot_svg(title: &str, unit: &str, rows: &[(String, Summary)]) -> String {
    let label_w = 230.0;
    let row_h = 24.0;
    let h = TOP + BOTTOM + row_h * rows.len().max(1) as f64;
    let w = W;
    let mut s = String::new();
    header(&mut s, title, w, h);
    let vals = rows
        .iter()
        .flat_map(|r| [r.1.min, r.1.max])
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        s.push_str("<text x=\"50%\" y=\"50%\" text-anchor=\"middle\">no data</text>\n</svg>\n");
        return s;
    }
    let (d0, d1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let (x0, pw) = (label_w, w - label_w - 30.0);
    let px = |v: f64| x0 + (v.max(1e-12).log10() - d0) / (d1 - d0) * pw;
    let bottom = TOP + row_h * rows.len() as f64;
    let mut d = d0;
    while d <= d1 + 1e-9 {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(d) * m;
            if v.log10() > d1 + 1e-9 {
                break;
            }
            let x = px(v);
            let major = m == 1.0;
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="{}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{}">{}</text>"##,
                if major { "#cfcfcf" } else { "#eeeeee" },
                bottom + 16.0,
                if major { "#000" } else { "#888" },
                fmt_tick(v)
            );
        }
        d += 1.0;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log scale); box p25-p75, bar median, whiskers min-p99, dot max</text>"##,
        x0 + pw / 2.0,
        bottom + 36.0,
        esc(unit)
    );
    for (i, (label, q)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * row_h + row_h / 2.0;
        let c = colour(label, i);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>
<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}"/>
<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{c}" fill-opacity="0.25" stroke="{c}"/>
<line x1="{m:.1}" y1="{:.1}" x2="{m:.1}" y2="{:.1}" stroke="{c}" stroke-width="3"/>
<circle cx="{:.1}" cy="{y:.1}" r="2.5" fill="{c}"><title>{}: median {:.2}, p90 {:.2}, p99 {:.2}, max {:.2} {}</title></circle>"##,
            x0 - 8.0,
            y + 4.0,
            esc(label),
            px(q.min),
            px(q.p99),
            px(q.p25),
            y - 7.0,
            (px(q.p75) - px(q.p25)).max(1.0),
            14.0,
            y - 8.0,
            y + 8.0,
            px(q.max),
            esc(label),
            q.median,
            q.p90,
            q.p99,
            q.max,
            esc(unit),
            m = px(q.median)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One series per path (and resolution when `split_res`); `label_batch` names each
/// series' batch size (where the x axis is not the batch size).
fn series_by_path(
    ms: &[&Measurement],
    x: impl Fn(&Measurement) -> f64,
    split_res: bool,
    label_batch: bool,
) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for m in ms {
        let name = match (split_res, label_batch) {
            (true, true) => format!(
                "{} {}x{} b{}",
                m.case.path, m.case.width, m.case.height, m.case.batch
            ),
            (true, false) => format!("{} {}x{}", m.case.path, m.case.width, m.case.height),
            (false, true) => format!("{} b{}", m.case.path, m.case.batch),
            (false, false) => m.case.path.clone(),
        };
        let t = &m.throughput;
        let p = (x(m), t.median, t.p25, t.p75);
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(p),
            None => out.push(Series {
                name,
                points: vec![p],
            }),
        }
    }
    out
}

/// The charts of a report, as `(file name, svg)`.
pub(crate) fn charts(r: &BenchReport) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let machine = machine_line(r);
    let batch: Vec<&Measurement> = r.suite("batch").collect();
    if !batch.is_empty() {
        let mut res: Vec<(u32, u32)> = batch
            .iter()
            .map(|m| (m.case.width, m.case.height))
            .collect();
        res.sort_unstable();
        res.dedup();
        let title = if res.len() == 1 {
            format!(
                "Throughput vs batch size ({}x{} JPEG inputs)\n{machine}",
                res[0].0, res[0].1
            )
        } else {
            format!("Throughput vs batch size (JPEG inputs)\n{machine}")
        };
        out.push((
            "throughput_vs_batch.svg".to_string(),
            line_chart_svg(
                &title,
                "batch size (items per call, log2 axis)",
                "images/s (median, bar p25-p75)",
                &series_by_path(&batch, |m| m.case.batch as f64, res.len() > 1, false),
                true,
            ),
        ));
    }
    let size: Vec<&Measurement> = r.suite("size").collect();
    if !size.is_empty() {
        let b = size.first().map_or(0, |m| m.case.batch);
        out.push((
            "throughput_vs_size.svg".to_string(),
            line_chart_svg(
                &format!("Throughput vs input size (batch {b})\n{machine}"),
                "input megapixels (log2 axis)",
                "images/s (median, bar p25-p75)",
                &series_by_path(
                    &size,
                    |m| (m.case.megapixels() * 100.0).round() / 100.0,
                    false,
                    true,
                ),
                true,
            ),
        ));
    }
    let lat: Vec<(String, Summary)> = r
        .measurements
        .iter()
        .filter(|m| {
            matches!(
                m.case.suite.as_str(),
                "latency" | "paths" | "cache" | "memory" | "verify"
            )
        })
        .map(|m| {
            let label = if m.case.name.starts_with(&m.case.path) {
                format!("{} ({}, b{})", m.case.name, m.case.suite, m.case.batch)
            } else {
                format!(
                    "{} {} ({}, b{})",
                    m.case.path, m.case.name, m.case.suite, m.case.batch
                )
            };
            (label, m.latency_ms)
        })
        .collect();
    if !lat.is_empty() {
        out.push((
            "latency.svg".to_string(),
            box_plot_svg(
                &format!("Latency per call\n{machine}"),
                "milliseconds per call",
                &lat,
            ),
        ));
    }
    out
}

fn mib(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0))
}

/// The Markdown summary: machine, overhead, one table per suite, recommendations, charts.
pub fn to_markdown(r: &BenchReport) -> String {
    let mut s = String::new();
    let f = &r.fingerprint;
    let _ = writeln!(s, "# veridoc benchmark report\n");
    let _ = writeln!(
        s,
        "Schema {}, engine {}, suites {}, {:.1} s.\n",
        r.schema_version,
        f.engine_version,
        r.suites.join(", "),
        r.duration_s
    );
    let _ = writeln!(s, "| machine | |\n|---|---|");
    let _ = writeln!(s, "| cpu | {} |", f.cpu_model);
    let _ = writeln!(
        s,
        "| cores | {} logical, {} physical; engine threads {} |",
        f.logical_cores,
        f.physical_cores.map_or("?".into(), |c| c.to_string()),
        f.engine_threads
    );
    let _ = writeln!(
        s,
        "| memory | {} |",
        veridoc::fmt_bytes(f.memory_total_bytes)
    );
    let _ = writeln!(s, "| os | {} |", f.os);
    let _ = writeln!(
        s,
        "| adapter | {} ({}; driver {}){}; gpu timestamps: {} |\n",
        f.adapter,
        if f.backend.is_empty() {
            "-"
        } else {
            &f.backend
        },
        if f.driver.is_empty() { "-" } else { &f.driver },
        if f.adapter_is_software {
            " **software adapter: gpu numbers are functional only**"
        } else {
            ""
        },
        f.gpu_timestamps
    );
    if let Some(o) = &r.monitor_overhead {
        let _ = writeln!(
            s,
            "Monitor overhead ({}, {} interleaved pairs of {}-call passes, {:.0} ms interval): with/without throughput ratio {:.3} (median of per-pair ratios), i.e. a {:.1}% drop; {:.1} vs {:.1} items/s median (pass-to-pass spread +-{:.1}%). One sample takes {:.0} us: the sampler keeps {:.2}% of one core busy.\n",
            o.workload,
            o.pairs,
            o.calls_per_pass,
            o.interval_ms,
            o.ratio_median,
            o.drop_percent,
            o.with.median,
            o.without.median,
            o.without.relative_spread() * 100.0,
            o.sample_us,
            o.sampler_load_percent
        );
    }
    let noisy = r.measurements.iter().filter(|m| noise::is_noisy(m)).count();
    let retried: usize = r.measurements.iter().map(|m| m.noisy_retries).sum();
    let mut shares: Vec<f64> = r
        .measurements
        .iter()
        .filter_map(|m| m.foreign_cpu)
        .collect();
    shares.sort_by(f64::total_cmp);
    let _ = writeln!(
        s,
        "Other processes' CPU use during the timed calls (machine busy time minus this process's, share of all cores): median {} over cases, max {}; {noisy} of {} cases flagged NOISY (over {:.0}%), {retried} noisy calls retried. Comparisons and recommendations count a difference only beyond the measured spread plus that load.\n",
        noise::fmt_share(shares.get(shares.len() / 2).copied()),
        noise::fmt_share(shares.last().copied()),
        r.measurements.len(),
        noise::NOISY_FOREIGN_SHARE * 100.0
    );
    let mut suites = r.suites.clone();
    for m in &r.measurements {
        if !suites.contains(&m.case.suite) {
            suites.push(m.case.suite.clone());
        }
    }
    for suite in &suites {
        let ms: Vec<&Measurement> = r.suite(suite).collect();
        if ms.is_empty() {
            continue;
        }
        let _ = writeln!(s, "## {suite}\n");
        let _ = writeln!(
            s,
            "| case | path | batch | input | runs | items/s median | spread | others' cpu | ms/call p50 | p90 | p99 | peak RSS MiB | peak reserved MiB | peak gpu MiB | ran on | note |"
        );
        let _ = writeln!(
            s,
            "|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|"
        );
        for m in ms {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.2} | +-{:.1}% | {}{} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
                m.case.name,
                m.case.path,
                m.case.batch,
                if m.case.width > 0 {
                    format!("{}x{}", m.case.width, m.case.height)
                } else {
                    "-".into()
                },
                m.runs,
                m.throughput.median,
                m.throughput.relative_spread() * 100.0,
                noise::fmt_share(m.foreign_cpu),
                noise::flag(m),
                m.latency_ms.median,
                m.latency_ms.p90,
                m.latency_ms.p99,
                mib(m.peak_rss_bytes),
                mib(m.peak_host_reserved_bytes),
                mib(m.peak_gpu_bytes),
                m.placement.as_deref().unwrap_or("-"),
                m.note.replace('|', "/")
            );
        }
        s.push('\n');
    }
    if let Some(rec) = &r.recommendations {
        let _ = writeln!(s, "## Recommendations\n");
        let _ = writeln!(
            s,
            "- path `{}`, {} cpu workers, batch size {}, {} concurrent batch(es), host budget {}, gpu budget {}",
            rec.path,
            rec.workers,
            rec.batch_size,
            rec.concurrent_batches,
            veridoc::fmt_bytes(rec.host_budget_bytes),
            rec.gpu_budget_bytes.map_or("-".into(), veridoc::fmt_bytes)
        );
        for line in &rec.reasons {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');
    }
    let charts = charts(r);
    if !charts.is_empty() {
        let _ = writeln!(s, "## Charts\n");
        for (name, _) in &charts {
            let _ = writeln!(s, "![{name}]({name})\n");
        }
    }
    s
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| {
        Error::from(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })
}

/// Writes `report.json`, `summary.md`, the SVG charts and `recommendations.json` into
/// `dir` (created if needed); returns the paths written.
///
/// # Errors
/// `Io` when the directory or a file cannot be written.
pub fn write_outputs(r: &BenchReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::from(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", dir.display()),
        ))
    })?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<()> {
        let p = dir.join(name);
        write(&p, text)?;
        written.push(p);
        Ok(())
    };
    put("report.json", &r.to_json()?)?;
    put("summary.md", &to_markdown(r))?;
    for (name, svg) in charts(r) {
        put(&name, &svg)?;
    }
    if let Some(rec) = &r.recommendations {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "schema_version": super::SCHEMA_VERSION,
            "fingerprint": &r.fingerprint,
            "recommendations": rec,
        }))
        .map_err(|e| super::invalid(format!("recommendations: {e}")))?;
        put("recommendations.json", &text)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake, fake_report};
    use super::*;

    /// Checks that tags balance (a small XML well-formedness check: no attribute may
    /// contain `<` or `>`, which `esc` guarantees).
    pub(crate) fn well_formed(svg: &str) -> std::result::Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let Some(j) = rest[i..].find('>') else {
                return Err("unclosed tag".into());
            };
            let tag = &rest[i + 1..i + j];
            rest = &rest[i + j + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
                let name = tag.split_whitespace().next().unwrap_or("").to_string();
                stack.push(name);
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    fn sample() -> BenchReport {
        let mut ms = Vec::new();
        for b in [1, 2, 4, 8] {
            ms.push(fake(
                "batch",
                &format!("cpu b{b}"),
                "cpu",
                b,
                (640, 480),
                50.0 * b as f64,
                0.05,
            ));
            ms.push(fake(
                "batch",
                &format!("gpu b{b}"),
                "gpu",
                b,
                (640, 480),
                20.0 * b as f64,
                0.05,
            ));
        }
        ms.push(fake("size", "cpu 1mp", "cpu", 8, (1280, 960), 80.0, 0.05));
        ms.push(fake("size", "cpu 3mp", "cpu", 8, (2048, 1536), 30.0, 0.05));
        ms.push(fake(
            "latency",
            "warm <&>",
            "cpu",
            1,
            (640, 480),
            100.0,
            0.1,
        ));
        let mut r = fake_report(ms);
        r.recommendations = Some(super::super::recommend(&r));
        r
    }

    #[test]
    fn charts_are_well_formed_svg() {
        let r = sample();
        let charts = charts(&r);
        let names: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "throughput_vs_batch.svg",
                "throughput_vs_size.svg",
                "latency.svg"
            ]
        );
        for (name, svg) in &charts {
            assert!(svg.starts_with("<svg"), "{name}");
            well_formed(svg).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(svg.contains("polyline") || svg.contains("rect"), "{name}");
        }
        assert!(charts[2].1.contains("warm &lt;&amp;&gt; (latency, b1)"));
        // every chart names the machine and the adapter; series on a size axis their batch
        for (name, svg) in &charts {
            assert!(svg.contains("test cpu (2 threads); adapter none"), "{name}");
        }
        assert!(charts[1].1.contains(">cpu b8<"), "{}", charts[1].1);
        let empty = line_chart_svg("t", "x", "y", &[], true);
        well_formed(&empty).unwrap();
        well_formed(&box_plot_svg("t", "ms", &[])).unwrap();
    }

    #[test]
    fn markdown_and_files() {
        let r = sample();
        let md = to_markdown(&r);
        assert!(
            md.contains("## batch") && md.contains("## Recommendations"),
            "{md}"
        );
        assert!(md.contains("![throughput_vs_batch.svg](throughput_vs_batch.svg)"));
        assert!(md.contains("0 of 11 cases flagged NOISY"), "{md}");
        let mut noisy = sample();
        noisy.measurements[0].foreign_cpu = Some(0.42);
        noisy.measurements[0].noisy_retries = 3;
        let md = to_markdown(&noisy);
        assert!(md.contains("| 42% NOISY (3 calls retried) |"), "{md}");
        assert!(md.contains("max 42%; 1 of 11 cases flagged NOISY"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        let files = write_outputs(&r, dir.path()).unwrap();
        assert_eq!(files.len(), 6, "{files:?}");
        let text = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
        let back = BenchReport::from_json(&text).unwrap();
        assert!(crate::monitor::tests::same_json(&back, &r));
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }
}
