//! `ferry bench`: every method on every case, interleaved (A B C A B C …), verified;
//! a header, one table per case printed as soon as it is done, a closing summary,
//! JSON and an SVG of latency percentiles.

mod bulk;
mod common;
mod header;
mod http;
mod https;
mod idle;
mod idle_case;
mod idle_report;
mod latency;
mod paced;
mod paced_table;
mod peers;
mod percentile_chart;
mod progress;
mod report;
mod rr;
mod rr_local;
mod rr_wire;
mod stats;
mod table;
mod tcp_proxy;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use ferry_engine::{Backend, Engine};

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
    /// Idle connection counts for the connections scenario.
    pub idle: Vec<usize>,
    pub runs: Option<usize>,
    /// Run the request-response server and load generator on different CPUs.
    pub pin: bool,
    /// The latency study (`latency`) instead of the closed-loop tables.
    pub latency: bool,
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

impl Case {
    /// Measured per request (req/s, latency percentiles, CPU per request): the
    /// request-response and http-static cases, and tcp-proxy with several connections
    /// (wrk through the proxy; with one it is a bulk stream).
    /// Also measured at a fixed low rate (`paced`): request-response and http-static
    /// with one connection and bodies up to 64 KiB (1000 MiB-answers a second would
    /// be no light load).
    pub fn paced(&self) -> bool {
        self.connections == 1
            && self.size <= 64 * 1024
            && matches!(
                self.scenario,
                Scenario::RequestResponse | Scenario::HttpStatic
            )
    }

    pub fn per_request(&self) -> bool {
        match self.scenario {
            Scenario::RequestResponse
            | Scenario::HttpStatic
            | Scenario::HttpsStatic
            | Scenario::HttpsHandshakes
            | Scenario::TlsProxy => true,
            Scenario::TcpProxy => self.connections > 1,
            _ => false,
        }
    }
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
        (Scenario::HttpStatic | Scenario::HttpsStatic | Scenario::TlsProxy, false) => {
            vec![4 * K, 64 * K, M]
        }
        (Scenario::HttpStatic | Scenario::HttpsStatic | Scenario::TlsProxy, true) => vec![4 * K],
        (Scenario::HttpsHandshakes, _) => vec![4 * K],
        (_, false) => vec![256 * M],
        (_, true) => vec![16 * M],
    }
}

fn cases(o: &Options) -> Vec<Case> {
    let mut v = Vec::new();
    for &scenario in &o.scenarios {
        if !o.methods.iter().any(|&m| scenario.compares(m)) {
            continue;
        }
        let case = |size, connections| Case {
            scenario,
            size,
            connections,
        };
        if scenario == Scenario::Connections {
            // The active load is fixed (4 KiB x64); what varies is how many are idle.
            for &n in &idle_counts(o) {
                v.push(case(idle::ACTIVE_SIZE, n));
            }
            continue;
        }
        if scenario == Scenario::TcpProxy && o.sizes.is_empty() && o.connections.is_empty() {
            // A bulk stream through one connection, then HTTP through the proxy.
            const K: u64 = 1024;
            const M: u64 = 1024 * 1024;
            let pairs: &[(u64, usize)] = if o.quick {
                &[(64 * M, 1), (4 * K, 16)]
            } else {
                &[(1024 * M, 1), (4 * K, 64), (M, 64)]
            };
            v.extend(pairs.iter().map(|&(s, c)| case(s, c)));
            continue;
        }
        let sizes = if o.sizes.is_empty() {
            default_sizes(scenario, o.quick)
        } else {
            o.sizes.clone()
        };
        let many = matches!(
            scenario,
            Scenario::RequestResponse
                | Scenario::HttpStatic
                | Scenario::HttpsStatic
                | Scenario::HttpsHandshakes
                | Scenario::TcpProxy
                | Scenario::TlsProxy
        );
        let conns = match scenario {
            _ if many && !o.connections.is_empty() => o.connections.clone(),
            Scenario::RequestResponse if o.quick => vec![1, 16],
            Scenario::HttpStatic | Scenario::HttpsStatic | Scenario::TlsProxy if o.quick => {
                vec![64]
            }
            _ if many => vec![1, 64],
            _ => vec![1],
        };
        for &size in &sizes {
            for &connections in &conns {
                v.push(case(size, connections));
            }
        }
    }
    v
}

/// The idle counts of the connections scenario: as given, or 4000 (`--quick`: 1000)
/// where the fd limit holds that many.
fn idle_counts(o: &Options) -> Vec<usize> {
    if !o.idle.is_empty() {
        return o.idle.clone();
    }
    let most = idle::most_idle(crate::fd_budget::limit().unwrap_or(1024));
    vec![(if o.quick { 1000 } else { 4000 }).min(most).max(1)]
}

/// The built-in data file of `size` bytes (pattern bytes, in the page cache) and its
/// checksum, written on first use into `dir`.
fn data_file(
    files: &mut BTreeMap<u64, (PathBuf, Checksum)>,
    dir: &std::path::Path,
    size: u64,
    progress: &mut progress::Progress,
) -> io::Result<(PathBuf, Checksum)> {
    if let Some(f) = files.get(&size) {
        return Ok(f.clone());
    }
    progress.note(&format!("writing {} of test data", table::size_name(size)));
    let p = dir.join(format!("data-{size}"));
    common::make_file(&p, size, size)?;
    let sum = Checksum::of_file(&p, 0, size)?;
    files.insert(size, (p.clone(), sum));
    Ok((p, sum))
}

/// The error that ends the bench when `m` delivered wrong bytes in `case`.
fn verification_failed(case: &Case, m: Method, e: &io::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "VERIFICATION FAILED: {} / {} / {} bytes x{}: {e}",
            case.scenario.name(),
            m.name(),
            case.size,
            case.connections
        ),
    )
}

/// Runs the benchmark and prints/writes the reports.
pub fn run(o: &Options) -> io::Result<()> {
    // Every process of the benchmark (peers included: they inherit it) may use the
    // whole fd limit, as `ferry serve` does.
    let fd_limit = crate::fd_budget::raise_soft_limit();
    if o.scenarios.contains(&Scenario::Connections) {
        let most = idle::most_idle(fd_limit);
        if let Some(&n) = o.idle.iter().find(|&&n| n > most) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--idle {n}: the fd limit ({fd_limit}, hard) holds at most {most} idle \
                     connections here (this process holds one fd for each, a proxy two); \
                     raise the hard limit (ulimit -Hn, as root) for more"
                ),
            ));
        }
    }
    // Outputs are checked before any work: a bad path fails in a second, not after
    // minutes, and names the flag.
    if let Some(p) = &o.json {
        report::check_writable("--json", p)?;
    }
    if let Some(p) = &o.plot {
        if p.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--plot {}: the file name must end in .svg", p.display()),
            ));
        }
        if !o.latency && !o.scenarios.contains(&Scenario::RequestResponse) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--plot: needs the request-response scenario (latency curves)",
            ));
        }
        report::check_writable("--plot", p)?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if o.pin && cpus < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--pin: needs at least 2 CPUs",
        ));
    }
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
    let local = ferry_engine::LocalEngine::new()
        .map(|r| match r.fallback_reason() {
            Some(why) => format!("{} ({why})", r.runs_on()),
            None => r.runs_on().to_string(),
        })
        .unwrap_or_else(|e| format!("unavailable: {e}"));
    let placement = if o.pin {
        "servers (request-response, http-static) on CPU 0, load generators on CPU 1 (bulk scenarios unpinned)".into()
    } else {
        "unpinned (--pin puts servers and load generators on different CPUs)".into()
    };
    let ctx = header::Context::gather(
        vec![
            (
                "engine-uring",
                match &engines.uring {
                    Ok(_) => "io_uring rings (Engine)".into(),
                    Err(e) => e.clone(),
                },
            ),
            (
                "engine-blocking",
                match &engines.blocking {
                    Ok(_) => "blocking syscall threads (Engine)".into(),
                    Err(e) => e.clone(),
                },
            ),
            ("engine-local", local),
        ],
        placement,
    );
    ctx.print();
    if o.latency {
        return latency::run(o, &engines, dir.path(), ctx.json());
    }
    table::print_legend(runs);
    let cases = cases(o);
    let steps: usize = cases
        .iter()
        .map(|c| {
            let methods = o
                .methods
                .iter()
                .filter(|&&m| c.scenario.compares(m))
                .count();
            methods * (runs + 1 + if c.paced() { runs } else { 0 })
        })
        .sum();
    let mut progress = progress::Progress::new(steps);
    let paced_secs = if o.quick { 0.5 } else { 2.0 };
    let mut paced_json = Vec::new();
    let mut http_servers: Option<http::Servers> = None;
    let mut https_servers: Option<http::Servers> = None;
    let mut proxies: Option<tcp_proxy::Proxies> = None;
    let mut tls_proxies: Option<tcp_proxy::Proxies> = None;
    let mut idle_subjects: Option<idle::Subjects> = None;
    let mut idle_rows = Vec::new();
    let mut idle_summaries = Vec::new();
    let mut idle_legend = false;
    let http_secs = if o.quick { 1 } else { 2 };
    let mut results: Vec<(Case, BTreeMap<Method, MethodOutcome>)> = Vec::new();
    let mut summaries = Vec::new();
    let mut files: BTreeMap<u64, (PathBuf, Checksum)> = BTreeMap::new();
    for case in &cases {
        let data = if case.scenario == Scenario::SocketToSocket {
            None
        } else {
            Some(data_file(&mut files, dir.path(), case.size, &mut progress)?)
        };
        if case.scenario == Scenario::Connections {
            let (path, sum) = data.as_ref().expect("data");
            let most = cases
                .iter()
                .filter(|c| c.scenario == Scenario::Connections)
                .map(|c| c.connections)
                .max()
                .unwrap_or(case.connections);
            if idle_subjects.is_none() {
                progress.note("starting nginx, HAProxy, ferry serve and ferry proxy");
                idle_subjects = Some(idle::Subjects::start(dir.path(), o.pin, most));
            }
            let subjects = idle_subjects.as_ref().expect("started");
            let body = std::fs::read(path)?;
            let run = idle_case::IdleCase {
                case,
                subjects,
                body: &body,
                want: *sum,
                runs,
                secs: http_secs,
            };
            let rows = run.run(&o.methods, &mut progress)?;
            progress.suspend(|| {
                if !idle_legend {
                    idle_report::print_legend();
                    idle_legend = true;
                }
                idle_report::print(&rows.rows, case.connections, runs);
                for (m, why) in &rows.skipped {
                    println!("  {:<12} {why}", m.name());
                }
            });
            idle_rows.extend(idle_report::json_rows(&rows.rows));
            idle_summaries.extend(rows.rows);
            continue;
        }
        if case.scenario == Scenario::TcpProxy && proxies.is_none() {
            progress.note("starting the origins of tcp-proxy");
            proxies = Some(tcp_proxy::Proxies::start(dir.path(), o.pin)?);
        }
        if case.scenario == Scenario::TlsProxy && tls_proxies.is_none() {
            progress.note("starting the origin of tls-proxy");
            tls_proxies = Some(tcp_proxy::Proxies::start_tls(dir.path(), o.pin)?);
        }
        if case.scenario == Scenario::HttpStatic && http_servers.is_none() {
            progress.note("starting nginx and ferry serve");
            http_servers = Some(http::Servers::start(dir.path(), o.pin));
        }
        let https = matches!(
            case.scenario,
            Scenario::HttpsStatic | Scenario::HttpsHandshakes
        );
        if https && https_servers.is_none() {
            progress.note("starting nginx and ferry serve with TLS");
            https_servers = Some(http::Servers::start_tls(dir.path(), o.pin));
        }
        let methods: Vec<Method> = o
            .methods
            .iter()
            .copied()
            .filter(|&m| case.scenario.compares(m))
            .collect();
        let mut per: BTreeMap<Method, MethodOutcome> = BTreeMap::new();
        for &m in &methods {
            let skip = case
                .scenario
                .not_applicable(m)
                .map(str::to_string)
                .or_else(|| match m {
                    Method::EngineUring => engines.uring.as_ref().err().cloned(),
                    Method::EngineBlocking => engines.blocking.as_ref().err().cloned(),
                    Method::Nginx | Method::NginxNoPush | Method::FerryServe => {
                        http_servers.as_ref().and_then(|h| h.unavailable(m))
                    }
                    Method::NginxTls | Method::FerryServeTls => {
                        https_servers.as_ref().and_then(|h| h.unavailable(m))
                    }
                    Method::Haproxy | Method::HaproxySplice | Method::FerryProxy => proxies
                        .as_ref()
                        .and_then(|p| p.unavailable(m, case.connections)),
                    Method::HaproxyTls | Method::FerryProxyTls => tls_proxies
                        .as_ref()
                        .and_then(|p| p.unavailable(m, case.connections)),
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
        // Run 0 checks every byte (a checksum slows the load generator) and is not
        // timed; runs 1..=runs are timed, interleaved across methods.
        for run in 0..=runs {
            let verify = run == 0;
            for &m in &methods {
                let what = if verify {
                    "verifying every byte (untimed)".to_string()
                } else {
                    format!("run {run}/{runs}")
                };
                progress.step(&format!("{}: {} {what}", table::case_name(case), m.name()));
                let Some(MethodOutcome::Ran(v)) = per.get_mut(&m) else {
                    continue;
                };
                let expect = match (&data, verify) {
                    _ if verify && case.scenario == Scenario::TcpProxy && case.connections <= 1 => {
                        Some(tcp_proxy::origin_checksum(case.size))
                    }
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
                    Scenario::TcpProxy => proxies.as_mut().expect("started").run(
                        m,
                        case.size,
                        case.connections,
                        http_secs,
                        expect,
                    ),
                    Scenario::TlsProxy => tls_proxies.as_mut().expect("started").run(
                        m,
                        case.size,
                        case.connections,
                        http_secs,
                        expect,
                    ),
                    Scenario::HttpStatic => http_servers.as_ref().expect("started").run(
                        m,
                        case.size,
                        case.connections,
                        http_secs,
                        expect,
                    ),
                    Scenario::HttpsStatic => https_servers.as_ref().expect("started").run(
                        m,
                        case.size,
                        case.connections,
                        http_secs,
                        expect,
                    ),
                    Scenario::HttpsHandshakes => https_servers
                        .as_ref()
                        .expect("started")
                        .run_new_connections(m, case.size, case.connections, http_secs, expect),
                    Scenario::Connections => unreachable!("run above"),
                    Scenario::RequestResponse => rr::request_response(
                        m,
                        &data.as_ref().expect("data").0,
                        case.size,
                        case.connections,
                        rr_time,
                        &engines,
                        expect,
                        o.pin,
                        None,
                    ),
                };
                match r {
                    Ok(r) if !verify => v.push(r),
                    Ok(_) => {}
                    // A wrong answer fails the whole benchmark, loudly.
                    Err(e)
                        if e.kind() == io::ErrorKind::InvalidData
                            || e.to_string().contains("differ")
                            || e.to_string().contains("arrived") =>
                    {
                        progress.finish();
                        return Err(verification_failed(case, m, &e));
                    }
                    Err(e) => {
                        per.insert(m, MethodOutcome::Skipped(format!("unavailable: {e}")));
                    }
                }
            }
        }
        // Light load: the methods that ran, interleaved, at a fixed rate.
        let mut paced_runs: BTreeMap<Method, Vec<RunResult>> = BTreeMap::new();
        let mut paced_failed: Vec<(Method, String)> = Vec::new();
        for run in 1..=runs {
            for &m in methods.iter().filter(|_| case.paced()) {
                progress.step(&format!(
                    "{}: {} at {} req/s, run {run}/{runs}",
                    table::case_name(case),
                    m.name(),
                    paced::RATE
                ));
                let ran = matches!(per.get(&m), Some(MethodOutcome::Ran(_)));
                if !ran || paced_failed.iter().any(|(f, _)| *f == m) {
                    continue;
                }
                let r = match case.scenario {
                    Scenario::HttpStatic => http_servers
                        .as_ref()
                        .expect("started")
                        .paced(m, case.size, paced_secs),
                    _ => rr::request_response(
                        m,
                        &data.as_ref().expect("data").0,
                        case.size,
                        1,
                        Duration::from_secs_f64(paced_secs),
                        &engines,
                        None,
                        o.pin,
                        Some(paced::RATE),
                    ),
                };
                match r {
                    Ok(r) => paced_runs.entry(m).or_default().push(r),
                    Err(e) => {
                        paced_runs.remove(&m);
                        paced_failed.push((m, e.to_string()));
                    }
                }
            }
        }
        let paced_rows = paced_table::summarise(&paced_runs);
        paced_json.extend(paced_table::json_rows(case, &paced_rows));
        let rows = stats::summarise_case(*case, &per);
        progress.suspend(|| {
            table::print_case(case, &rows, &per, runs);
            paced_table::print(&paced_rows, paced_secs);
            for (m, why) in &paced_failed {
                println!("  {:<16} light load not run: {why}", m.name());
            }
        });
        summaries.extend(rows);
        results.push((*case, per));
    }
    progress.finish();
    drop(http_servers);
    drop(proxies);
    drop(idle_subjects);
    table::print_summary(&summaries, &cases);
    idle_report::print_summary(&idle_summaries);
    // The two outputs are independent: one failing does not skip the other.
    let mut failed = Vec::new();
    if let Some(path) = &o.json {
        let r = report::write_json(
            path,
            ctx.json(),
            &summaries,
            &results,
            idle_rows,
            paced_json,
        );
        report::written("--json", path, r, &mut failed);
    }
    if let Some(path) = &o.plot {
        let r = report::write_plot(path, &results);
        report::written("--plot", path, r, &mut failed);
    }
    report::all_written(failed)
}
