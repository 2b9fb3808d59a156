//! `ferry bench --latency`: latency at fixed offered loads, coordinated omission
//! corrected, every subject at the same rates, interleaved.
//!
//! For each case (scenario, size, connections) of request-response, http-static and
//! tcp-proxy: every subject's answer is checked byte for byte; the baseline's
//! closed-loop peak is found with the same generator (the best of the syscall methods,
//! of the two nginx configurations, of the two HAProxy configurations); then at 50 %,
//! 80 % and 95 % of that peak each subject, and the trivial responder that gives the
//! generator's floor, is run in turn for the same time, `runs` times over.

mod answer;
mod encoding;
mod generator;
mod responder;
mod subject;
mod summary;
mod timer;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::common::{Checksum, Method, Scenario};
use super::percentile_chart::{write_svg, Chart};
use super::progress::Progress;
use super::stats::{is_baseline_candidate, median};
use super::table::case_name;
use super::{report, Case, Engines, Options};
use subject::{Pace, Servers, Subject};
use summary::Point;

/// The offered rates, as fractions of the baseline's closed-loop peak.
const FRACTIONS: [f64; 3] = [0.5, 0.8, 0.95];

/// The scenarios the study covers.
pub const SCENARIOS: [Scenario; 3] = [
    Scenario::RequestResponse,
    Scenario::HttpStatic,
    Scenario::TcpProxy,
];

/// How long and how often.
struct Timing {
    runs: usize,
    point: Pace,
    peak: Pace,
}

impl Timing {
    fn of(o: &Options) -> Timing {
        let (secs, warmup, peak_secs) = if o.quick {
            (2.0, 0.5, 1.0)
        } else {
            (10.0, 1.0, 3.0)
        };
        let pace = |secs: f64| Pace {
            rate: None,
            warmup: Duration::from_secs_f64(warmup),
            measure: Duration::from_secs_f64(secs),
        };
        Timing {
            runs: o.runs.unwrap_or(if o.quick { 2 } else { 3 }).max(1),
            point: pace(secs),
            peak: pace(peak_secs),
        }
    }
}

fn cases(o: &Options) -> io::Result<Vec<Case>> {
    let scenarios: Vec<Scenario> = SCENARIOS
        .into_iter()
        .filter(|s| o.scenarios.contains(s))
        .filter(|s| o.methods.iter().any(|&m| s.compares(m)))
        .collect();
    if scenarios.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--latency: covers request-response, http-static and tcp-proxy; \
             no method of those was selected",
        ));
    }
    const K: u64 = 1024;
    let sizes = match (o.sizes.is_empty(), o.quick) {
        (false, _) => o.sizes.clone(),
        (true, false) => vec![4 * K, 64 * K],
        (true, true) => vec![4 * K],
    };
    let conns = if o.connections.is_empty() {
        vec![64]
    } else {
        o.connections.clone()
    };
    let mut v = Vec::new();
    for &scenario in &scenarios {
        for &size in &sizes {
            for &connections in &conns {
                v.push(Case {
                    scenario,
                    size,
                    connections,
                });
            }
        }
    }
    Ok(v)
}

/// Runs the study and prints/writes its reports; `machine` is the header's JSON.
pub fn run(o: &Options, engines: &Engines, dir: &Path, machine: Value) -> io::Result<()> {
    let t = Timing::of(o);
    let cases = cases(o)?;
    summary::print_legend(
        t.point.measure.as_secs_f64(),
        t.point.warmup.as_secs_f64(),
        o.quick,
    );
    let methods_of = |c: &Case| -> Vec<Method> {
        o.methods
            .iter()
            .copied()
            .filter(|&m| c.scenario.compares(m) && c.scenario.not_applicable(m).is_none())
            .collect()
    };
    let steps = cases
        .iter()
        .map(|c| {
            let n = methods_of(c).len();
            n + n * t.runs + FRACTIONS.len() * t.runs * (n + 1)
        })
        .sum();
    let mut progress = Progress::new(steps);
    let mut points: Vec<Point> = Vec::new();
    let mut peaks: Vec<Value> = Vec::new();
    let mut files: BTreeMap<u64, (PathBuf, Checksum)> = BTreeMap::new();
    let mut servers: Option<Servers> = None;
    for case in &cases {
        let (data, want) = super::data_file(&mut files, dir, case.size, &mut progress)?;
        if servers.as_ref().map(|s| s.scenario) != Some(case.scenario) {
            drop(servers.take());
            progress.note(&format!("starting the servers of {}", case.scenario.name()));
            servers = Some(Servers::start(case.scenario, dir, engines, o.pin)?);
        }
        let srv = servers.as_mut().expect("started");
        // Every byte of one answer of each, untimed; what cannot run says why.
        let mut subjects = Vec::new();
        let mut not_run = Vec::new();
        for m in methods_of(case) {
            progress.step(&format!(
                "{}: {} verifying (untimed)",
                case_name(case),
                m.name()
            ));
            match srv.verify(m, &data, case.size, want) {
                Ok(()) => subjects.push(m),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    progress.finish();
                    return Err(super::verification_failed(case, m, &e));
                }
                Err(e) => not_run.push((m, e.to_string())),
            }
        }
        // The baseline's peak, closed loop, with the same generator.
        let candidates: Vec<Method> = match subjects.iter().any(|&m| is_baseline_candidate(m)) {
            true => subjects
                .iter()
                .copied()
                .filter(|&m| is_baseline_candidate(m))
                .collect(),
            false => subjects.clone(),
        };
        let floor = subject::floor(case.scenario, case.size, o.pin)?;
        let mut peak_of: Vec<(Method, Vec<f64>)> = Vec::new();
        for &m in &candidates {
            let mut v = Vec::new();
            for run in 1..=t.runs {
                progress.step(&format!(
                    "{}: {} closed-loop peak, run {run}/{}",
                    case_name(case),
                    m.name(),
                    t.runs
                ));
                let r = srv.measure(
                    Subject::Method(m),
                    &floor,
                    &data,
                    case.size,
                    case.connections,
                    t.peak,
                )?;
                v.push(r.achieved());
            }
            peak_of.push((m, v));
        }
        let Some((baseline, peak)) = peak_of
            .iter()
            .map(|(m, v)| (*m, median(v.clone())))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            progress.suspend(|| {
                println!("{}: nothing to measure", case_name(case));
                for (m, why) in &not_run {
                    println!("  {:<16} not run: {why}", m.name());
                }
            });
            continue;
        };
        for (m, v) in &peak_of {
            peaks.push(json!({
                "scenario": case.scenario.name(),
                "size": case.size,
                "connections": case.connections,
                "method": m.name(),
                "closed_loop_per_sec": median(v.clone()),
                "samples": v,
                "baseline": *m == baseline,
            }));
        }
        let mut who: Vec<Subject> = vec![Subject::Floor];
        who.extend(subjects.iter().map(|&m| Subject::Method(m)));
        for fraction in FRACTIONS {
            let rate = fraction * peak;
            let pace = Pace {
                rate: Some(rate),
                ..t.point
            };
            let first = points.len();
            for &s in &who {
                points.push(Point {
                    case: *case,
                    fraction,
                    offered: rate,
                    baseline,
                    subject: s,
                    runs: Vec::new(),
                });
            }
            for run in 1..=t.runs {
                for (k, &s) in who.iter().enumerate() {
                    progress.step(&format!(
                        "{}: {} at {rate:.0} req/s ({:.0} %), run {run}/{}",
                        case_name(case),
                        s.name(),
                        fraction * 100.0,
                        t.runs
                    ));
                    if not_run.iter().any(|(m, _)| Subject::Method(*m) == s) {
                        continue;
                    }
                    match srv.measure(s, &floor, &data, case.size, case.connections, pace) {
                        Ok(r) => points[first + k].runs.push(r),
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            progress.finish();
                            let m = match s {
                                Subject::Method(m) => m,
                                Subject::Floor => baseline,
                            };
                            return Err(super::verification_failed(case, m, &e));
                        }
                        Err(e) => {
                            if let Subject::Method(m) = s {
                                not_run.push((m, e.to_string()));
                            }
                        }
                    }
                }
            }
            let rows: Vec<&Point> = points[first..]
                .iter()
                .filter(|p| !p.runs.is_empty())
                .collect();
            progress.suspend(|| summary::print(&rows));
        }
        progress.suspend(|| {
            println!(
                "{}: closed-loop peaks (same generator, {} connections): {}",
                case_name(case),
                case.connections,
                peak_of
                    .iter()
                    .map(|(m, v)| format!("{} {:.0} req/s", m.name(), median(v.clone())))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for (m, why) in &not_run {
                println!("  {:<16} not run: {why}", m.name());
            }
            println!();
        });
        floor.stop()?;
    }
    progress.finish();
    drop(servers);
    write_outputs(o, machine, &points, peaks)
}

/// `--json` and `--plot`; one failing does not skip the other.
fn write_outputs(
    o: &Options,
    machine: Value,
    points: &[Point],
    peaks: Vec<Value>,
) -> io::Result<()> {
    let measured: Vec<&Point> = points.iter().filter(|p| !p.runs.is_empty()).collect();
    let mut failed = Vec::new();
    if let Some(path) = &o.json {
        let doc = measured
            .iter()
            .map(|p| summary::json_point(p, &measured))
            .collect::<io::Result<Vec<Value>>>()
            .and_then(|pts| {
                let doc = json!({
                    "version": 1,
                    "machine": machine,
                    "latency": { "peaks": peaks, "points": pts },
                });
                serde_json::to_string_pretty(&doc).map_err(io::Error::other)
            })
            .and_then(|text| std::fs::write(path, text + "\n"));
        report::written("--json", path, doc, &mut failed);
    }
    if let Some(path) = &o.plot {
        // One chart per case and rate, one line per subject.
        let mut groups: Vec<Vec<&Point>> = Vec::new();
        for p in &measured {
            match groups.last_mut() {
                Some(g) if g[0].case == p.case && g[0].fraction == p.fraction => g.push(p),
                _ => groups.push(vec![p]),
            }
        }
        let hists: Vec<Vec<(String, hdrhistogram::Histogram<u64>)>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|p| (p.subject.name().to_string(), p.corrected()))
                    .collect()
            })
            .collect();
        let charts: Vec<Chart> = groups
            .iter()
            .zip(&hists)
            .map(|(g, h)| Chart {
                title: summary::chart_title(g[0]),
                lines: h.iter().map(|(n, h)| (n.clone(), h)).collect(),
            })
            .collect();
        report::written("--plot", path, write_svg(path, &charts), &mut failed);
    }
    report::all_written(failed)
}
