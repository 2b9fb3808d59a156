//! The files `ferry bench` writes: `--json` (the documented shape plus per-run
//! samples, spread and verdict) and `--plot` (SVG latency percentile curves), and the
//! up-front check that both can be written.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::percentile_chart::{write_svg, Chart};

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

/// Says that `flag`'s file `path` was written, or keeps why not in `failed`: the
/// outputs are independent, one failing does not skip the other.
pub fn written(flag: &str, path: &Path, r: io::Result<()>, failed: &mut Vec<String>) {
    match r {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => failed.push(format!("{flag} {}: {e}", path.display())),
    }
}

/// Ok when every output was written, else one error naming each failure.
pub fn all_written(failed: Vec<String>) -> io::Result<()> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(failed.join("; ")))
    }
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
    let rr: Vec<_> = results
        .iter()
        .filter(|(c, _)| c.scenario == Scenario::RequestResponse)
        .map(|(case, per)| {
            let hists: Vec<(Method, Histogram<u64>)> = per
                .iter()
                .filter_map(|(m, o)| Some((*m, merged(o)?)))
                .collect();
            (case, hists)
        })
        .collect();
    if rr.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--plot: no request-response case was run",
        ));
    }
    let charts: Vec<Chart> = rr
        .iter()
        .map(|(case, hists)| Chart {
            title: format!(
                "request-response {} x{} (closed loop, latency µs)",
                size_name(case.size),
                case.connections
            ),
            lines: hists
                .iter()
                .map(|(m, h)| (m.name().to_string(), h))
                .collect(),
        })
        .collect();
    write_svg(path, &charts)
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
