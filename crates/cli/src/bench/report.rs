//! The files `ferry bench` writes: `--json` (the documented shape plus per-run
//! samples, spread and verdict) and `--plot` (SVG latency percentile curves), and the
//! up-front check that both can be written.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde_json::{json, Value};

use super::common::{Method, Scenario};
use super::stats::{merged, Summary};
use super::table::size_name;
use super::{Case, MethodOutcome};

/// Checks before any work that `path` (given with `flag`) can be written: its
/// directory exists and a file can be created there. Errors name the flag and path.
pub fn check_writable(flag: &str, path: &Path) -> io::Result<()> {
    let fail = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{flag} {}: {why}", path.display()),
        )
    };
    if path.is_dir() {
        return Err(fail("is a directory".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!("directory {} does not exist", dir.display())));
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| fail(format!("cannot be written: {e}")))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

pub fn write_json(
    path: &Path,
    machine: Value,
    sums: &[Summary],
    results: &[(Case, BTreeMap<Method, MethodOutcome>)],
    connections: Vec<Value>,
    paced: Vec<Value>,
) -> io::Result<()> {
    let rows: Vec<Value> = sums
        .iter()
        .map(|s| {
            json!({
                "scenario": s.case.scenario.name(),
                "method": s.method.name(),
                "size": s.case.size,
                "connections": s.case.connections,
                "runs": s.samples.len(),
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
                "cpu_us_per_request": s.cpu_us_per_request,
                "cpu_ratio_to_baseline": s.cpu_ratio,
                "machine_cpu_us_per_request": s.machine_cpu.filter(|_| s.requests_per_sec.is_some()),
                "machine_cpu_sec_per_gb": s.machine_cpu.filter(|_| s.requests_per_sec.is_none()),
                "machine_cpu_ratio_to_baseline": s.machine_cpu_ratio,
                "samples": s.samples,
                "sample_unit": if s.requests_per_sec.is_some() { "requests/s" } else { "bytes/s" },
                "spread": s.spread,
                "ratio_to_baseline": s.ratio,
                "verdict": s.verdict.map(|v| v.name()),
            })
        })
        .collect();
    let mut m = machine;
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
    let doc = json!({
        "version": 1,
        "machine": m,
        "results": rows,
        "connections": connections,
        "paced": paced,
    });
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

#[cfg(test)]
mod tests {
    use super::check_writable;
    use std::path::Path;

    #[test]
    fn output_paths_are_checked_up_front_naming_the_flag_and_path() {
        let e = check_writable("--json", Path::new("/nonexistent-dir/x.json")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            e.to_string().starts_with("--json /nonexistent-dir/x.json:"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = check_writable("--plot", dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let ok = dir.path().join("out.json");
        check_writable("--json", &ok).unwrap();
        assert!(!ok.exists(), "the check leaves no file behind");
    }
}
