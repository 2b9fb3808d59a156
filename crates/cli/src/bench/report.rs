//! Summaries (medians over runs, merged histograms), the table, JSON and the SVG plot.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::common::{new_hist, Method, Scenario};
use super::{Case, MethodOutcome};

/// One row: a method on a case.
#[derive(Debug, Clone)]
pub struct Summary {
    pub case: Case,
    pub method: Method,
    pub runs: usize,
    pub bytes_per_sec: f64,
    pub bytes_per_sec_min: f64,
    pub bytes_per_sec_max: f64,
    pub requests_per_sec: Option<f64>,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub cpu_sec_per_gb: f64,
    /// Throughput (req/s where it applies) over the best non-ferry method's.
    pub ratio: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn merged(outcome: &MethodOutcome) -> Option<Histogram<u64>> {
    let MethodOutcome::Ran(runs) = outcome else {
        return None;
    };
    let mut h = new_hist();
    for r in runs {
        h.add(&r.hist).ok()?;
    }
    Some(h)
}

pub fn summarise(results: &[(Case, BTreeMap<Method, MethodOutcome>)]) -> Vec<Summary> {
    let mut out = Vec::new();
    for (case, per) in results {
        let mut rows = Vec::new();
        for (&method, outcome) in per {
            let MethodOutcome::Ran(runs) = outcome else {
                continue;
            };
            if runs.is_empty() {
                continue;
            }
            let bps: Vec<f64> = runs.iter().map(|r| r.bytes as f64 / r.secs).collect();
            let h = merged(outcome).unwrap_or_else(new_hist);
            rows.push(Summary {
                case: *case,
                method,
                runs: runs.len(),
                bytes_per_sec: median(bps.clone()),
                bytes_per_sec_min: bps.iter().copied().fold(f64::INFINITY, f64::min),
                bytes_per_sec_max: bps.iter().copied().fold(0.0, f64::max),
                requests_per_sec: runs[0].requests.map(|_| {
                    median(
                        runs.iter()
                            .map(|r| r.requests.unwrap_or(0) as f64 / r.secs)
                            .collect(),
                    )
                }),
                p50_us: h.value_at_quantile(0.5),
                p90_us: h.value_at_quantile(0.9),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
                cpu_sec_per_gb: median(
                    runs.iter()
                        .map(|r| r.cpu_secs / (r.bytes.max(1) as f64 / 1e9))
                        .collect(),
                ),
                ratio: None,
            });
        }
        let metric = |s: &Summary| s.requests_per_sec.unwrap_or(s.bytes_per_sec);
        let best = rows
            .iter()
            .filter(|s| !s.method.is_ferry())
            .map(metric)
            .fold(0.0, f64::max);
        for s in &mut rows {
            if best > 0.0 {
                s.ratio = Some(metric(s) / best);
            }
        }
        out.extend(rows);
    }
    out
}

fn human_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB/s", b / 1e6)
    } else {
        format!("{:.0} kB/s", b / 1e3)
    }
}

fn size_name(b: u64) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

pub fn print_tables(
    results: &[(Case, BTreeMap<Method, MethodOutcome>)],
    sums: &[Summary],
    runs: usize,
) {
    for (case, per) in results {
        println!(
            "\n{}  size {}  connections {}  runs {runs}",
            case.scenario.name(),
            size_name(case.size),
            case.connections
        );
        println!(
            "  {:<16} {:>11} {:>21} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "method",
            "throughput",
            "min-max",
            "req/s",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9",
            "max us",
            "CPU s/GB",
            "vs best"
        );
        for s in sums.iter().filter(|s| s.case == *case) {
            println!(
                "  {:<16} {:>11} {:>21} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.3} {:>7}",
                s.method.name(),
                human_bytes(s.bytes_per_sec),
                format!(
                    "{}-{}",
                    human_bytes(s.bytes_per_sec_min)
                        .replace(" GB/s", "")
                        .replace(" MB/s", "M"),
                    human_bytes(s.bytes_per_sec_max)
                ),
                s.requests_per_sec.map_or("-".into(), |r| format!("{r:.0}")),
                s.p50_us,
                s.p90_us,
                s.p99_us,
                s.p999_us,
                s.max_us,
                s.cpu_sec_per_gb,
                s.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            );
        }
        for (m, o) in per {
            if let MethodOutcome::Skipped(why) = o {
                println!("  {:<16} not run: {why}", m.name());
            }
        }
    }
}

fn machine() -> Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel": kernel.trim(),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu_model": cpu,
        "ferry_version": env!("CARGO_PKG_VERSION"),
    })
}

pub fn write_json(
    path: &Path,
    sums: &[Summary],
    results: &[(Case, BTreeMap<Method, MethodOutcome>)],
) -> io::Result<()> {
    let rows: Vec<Value> = sums
        .iter()
        .map(|s| {
            json!({
                "scenario": s.case.scenario.name(),
                "method": s.method.name(),
                "size": s.case.size,
                "connections": s.case.connections,
                "runs": s.runs,
                "bytes_per_sec": s.bytes_per_sec,
                "bytes_per_sec_min": s.bytes_per_sec_min,
                "bytes_per_sec_max": s.bytes_per_sec_max,
                "requests_per_sec": s.requests_per_sec,
                "p50_us": s.p50_us,
                "p90_us": s.p90_us,
                "p99_us": s.p99_us,
                "p999_us": s.p999_us,
                "max_us": s.max_us,
                "cpu_sec_per_gb": s.cpu_sec_per_gb,
            })
        })
        .collect();
    let mut m = machine();
    let skipped: Vec<String> = results
        .iter()
        .flat_map(|(c, per)| {
            per.iter().filter_map(move |(meth, o)| match o {
                MethodOutcome::Skipped(why) => Some(format!(
                    "{} {} ({} B x{}): {why}",
                    c.scenario.name(),
                    meth.name(),
                    c.size,
                    c.connections
                )),
                _ => None,
            })
        })
        .collect();
    m["not_run"] = json!(skipped);
    let doc = json!({ "version": 1, "machine": m, "results": rows });
    std::fs::write(
        path,
        serde_json::to_string_pretty(&doc).map_err(io::Error::other)? + "\n",
    )
}

/// HdrHistogram-style percentile curves, one chart per request-response case.
pub fn write_plot(
    path: &Path,
    results: &[(Case, BTreeMap<Method, MethodOutcome>)],
) -> io::Result<()> {
    use plotters::prelude::*;
    let rr: Vec<_> = results
        .iter()
        .filter(|(c, _)| c.scenario == Scenario::RequestResponse)
        .collect();
    if rr.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--plot: no request-response case was run",
        ));
    }
    let cols = 2usize.min(rr.len());
    let rows = rr.len().div_ceil(cols);
    let root = SVGBackend::new(path, (640 * cols as u32, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(io::Error::other)?;
    let palette = [&RED, &BLUE, &GREEN, &MAGENTA, &CYAN, &BLACK];
    // x = log10(1 / (1 - p)): 0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9%, 4 → 99.99%
    let xmax = 4.0f64;
    for ((case, per), area) in rr.iter().zip(root.split_evenly((rows, cols))) {
        let curves: Vec<(Method, Vec<(f64, f64)>)> = per
            .iter()
            .filter_map(|(m, o)| {
                let h = merged(o)?;
                if h.is_empty() {
                    return None;
                }
                let pts = (0..=400)
                    .map(|i| {
                        let x = i as f64 * xmax / 400.0;
                        let q = 1.0 - 10f64.powf(-x);
                        (x, h.value_at_quantile(q.min(1.0)) as f64)
                    })
                    .collect();
                Some((*m, pts))
            })
            .collect();
        let ymax = curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
            .fold(1.0, f64::max)
            * 1.5;
        let title = format!(
            "request-response {} x{} (latency, µs)",
            size_name(case.size),
            case.connections
        );
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, (1f64..ymax).log_scale())
            .map_err(io::Error::other)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("µs")
            .x_labels(5)
            .x_label_formatter(&|x| match x.round() as i64 {
                0 => "0%".into(),
                1 => "90%".into(),
                2 => "99%".into(),
                3 => "99.9%".into(),
                4 => "99.99%".into(),
                _ => String::new(),
            })
            .draw()
            .map_err(io::Error::other)?;
        for (i, (m, pts)) in curves.into_iter().enumerate() {
            let color = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(io::Error::other)?
                .label(m.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(io::Error::other)?;
    }
    root.present().map_err(io::Error::other)?;
    Ok(())
}
