//! `ferry bench`: every method on every case, interleaved (A B C A B C …), verified,
//! summarised as a table, JSON and an SVG of latency percentiles.

mod bulk;
mod common;
mod report;
mod rr;
mod rr_local;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use ferry_engine::{Backend, Engine};
use indicatif::{ProgressBar, ProgressStyle};

use common::{Checksum, RunResult};
pub use common::{Method, Scenario};

/// What to run; from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub scenarios: Vec<Scenario>,
    pub methods: Vec<Method>,
    pub sizes: Vec<u64>,
    pub connections: Vec<usize>,
    pub runs: Option<usize>,
}

/// The two engines, built once; an engine that cannot be built is a reason string.
pub struct Engines {
    pub uring: Result<Engine, String>,
    pub blocking: Result<Engine, String>,
}

/// One (scenario, size, connections) combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Case {
    pub scenario: Scenario,
    pub size: u64,
    pub connections: usize,
}

/// The outcome of one method on one case.
pub enum MethodOutcome {
    Ran(Vec<RunResult>),
    Skipped(String),
}

fn default_sizes(s: Scenario, quick: bool) -> Vec<u64> {
    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;
    match (s, quick) {
        (Scenario::RequestResponse, false) => vec![4 * K, 64 * K, M],
        (Scenario::RequestResponse, true) => vec![4 * K, M],
        (_, false) => vec![256 * M],
        (_, true) => vec![16 * M],
    }
}

fn cases(o: &Options) -> Vec<Case> {
    let mut v = Vec::new();
    for &scenario in &o.scenarios {
        let sizes = if o.sizes.is_empty() {
            default_sizes(scenario, o.quick)
        } else {
            o.sizes.clone()
        };
        let conns = match scenario {
            Scenario::RequestResponse if !o.connections.is_empty() => o.connections.clone(),
            Scenario::RequestResponse if o.quick => vec![1, 16],
            Scenario::RequestResponse => vec![1, 64],
            _ => vec![1],
        };
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
    v
}

/// Runs the benchmark and prints/writes the reports.
pub fn run(o: &Options) -> io::Result<()> {
    let runs = o.runs.unwrap_or(if o.quick { 2 } else { 3 }).max(1);
    let rr_time = if o.quick {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    };
    let dir = tempfile::Builder::new().prefix("ferry-bench-").tempdir()?;
    let engines = Engines {
        uring: if o.methods.contains(&Method::EngineUring) {
            Engine::builder()
                .backend(Backend::IoUring)
                // FERRY_BENCH_LINK=0: the plain one-op state machine (docs/benchmarks.md)
                .link_splices(std::env::var("FERRY_BENCH_LINK").map_or(true, |v| v != "0"))
                .build()
                .map_err(|e| format!("io_uring unavailable: {e}"))
        } else {
            Err("not selected".into())
        },
        blocking: Engine::builder()
            .backend(Backend::Blocking)
            .build()
            .map_err(|e| e.to_string()),
    };
    let cases = cases(o);
    let total = cases.len() * runs * o.methods.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results: Vec<(Case, BTreeMap<Method, MethodOutcome>)> = Vec::new();
    let mut files: BTreeMap<u64, (PathBuf, Checksum)> = BTreeMap::new();
    for case in &cases {
        let data = if case.scenario == Scenario::SocketToSocket {
            None
        } else {
            if let std::collections::btree_map::Entry::Vacant(slot) = files.entry(case.size) {
                bar.set_message(format!("writing {} bytes of test data", case.size));
                let p = dir.path().join(format!("data-{}", case.size));
                common::make_file(&p, case.size, case.size)?;
                let sum = Checksum::of_file(&p, 0, case.size)?;
                slot.insert((p, sum));
            }
            files.get(&case.size).cloned()
        };
        let mut per: BTreeMap<Method, MethodOutcome> = BTreeMap::new();
        for &m in &o.methods {
            let skip = case
                .scenario
                .not_applicable(m)
                .map(str::to_string)
                .or_else(|| match m {
                    Method::EngineUring => engines.uring.as_ref().err().cloned(),
                    Method::EngineBlocking => engines.blocking.as_ref().err().cloned(),
                    _ => None,
                });
            per.insert(
                m,
                match skip {
                    Some(why) => MethodOutcome::Skipped(why),
                    None => MethodOutcome::Ran(Vec::new()),
                },
            );
        }
        for run in 0..runs {
            let verify = run == 0;
            for &m in &o.methods {
                bar.set_message(format!(
                    "{} {} {}B x{} run {}",
                    case.scenario.name(),
                    m.name(),
                    case.size,
                    case.connections,
                    run + 1
                ));
                bar.inc(1);
                let Some(MethodOutcome::Ran(v)) = per.get_mut(&m) else {
                    continue;
                };
                let expect = match (&data, verify) {
                    (Some((_, sum)), true) => Some(*sum),
                    (None, true) => Some(bulk::sender_checksum(case.size)),
                    _ => None,
                };
                let r = match case.scenario {
                    Scenario::FileToSocket => bulk::file_to_socket(
                        m,
                        &data.as_ref().expect("data").0,
                        case.size,
                        &engines,
                        expect,
                    ),
                    Scenario::SocketToSocket => {
                        bulk::socket_to_socket(m, case.size, &engines, expect)
                    }
                    Scenario::FileToFile => bulk::file_to_file(
                        m,
                        &data.as_ref().expect("data").0,
                        case.size,
                        dir.path(),
                        &engines,
                        expect,
                    ),
                    Scenario::RequestResponse => rr::request_response(
                        m,
                        &data.as_ref().expect("data").0,
                        case.size,
                        case.connections,
                        rr_time,
                        &engines,
                        expect,
                    ),
                };
                match r {
                    Ok(r) => v.push(r),
                    // A wrong answer fails the whole benchmark, loudly.
                    Err(e)
                        if e.kind() == io::ErrorKind::InvalidData
                            || e.to_string().contains("differ")
                            || e.to_string().contains("arrived") =>
                    {
                        bar.abandon();
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "VERIFICATION FAILED: {} / {} / {} bytes x{}: {e}",
                                case.scenario.name(),
                                m.name(),
                                case.size,
                                case.connections
                            ),
                        ));
                    }
                    Err(e) => {
                        per.insert(m, MethodOutcome::Skipped(format!("unavailable: {e}")));
                    }
                }
            }
        }
        results.push((*case, per));
    }
    bar.finish_and_clear();
    let summaries = report::summarise(&results);
    report::print_tables(&results, &summaries, runs);
    if let Some(reason) = engines
        .uring
        .as_ref()
        .err()
        .filter(|_| o.methods.contains(&Method::EngineUring))
    {
        println!("note: engine-uring unavailable: {reason}");
    }
    if let Some(path) = &o.json {
        report::write_json(path, &summaries, &results)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &o.plot {
        report::write_plot(path, &results)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
