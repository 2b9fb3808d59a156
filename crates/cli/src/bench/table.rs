//! What `ferry bench` prints on stdout: a header (machine, backends, placement,
//! peers), a legend, one table per case as soon as it is done, and a closing summary.

use std::collections::BTreeMap;

use super::common::{Method, Scenario};
use super::stats::{baseline, Summary, Verdict};
use super::{Case, MethodOutcome};

/// Percentiles need this many latency samples to mean anything (p99.9 of fewer is
/// the maximum).
const MIN_LATENCY_SAMPLES: u64 = 1000;

pub fn size_name(b: u64) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

pub fn case_name(c: &Case) -> String {
    match c.scenario {
        Scenario::Connections => format!("connections {} idle", c.connections),
        _ if c.per_request() => format!(
            "{} {} x{}",
            c.scenario.name(),
            size_name(c.size),
            c.connections
        ),
        _ => format!("{} {}", c.scenario.name(), size_name(c.size)),
    }
}

pub fn print_legend(runs: usize) {
    println!(
        "How to read the tables: each method runs {runs} timed times, interleaved with the\n\
         others (A B C … A B C …), after one untimed run that verifies every byte.\n\
         \x20 median, min-max   the per-run figure: GB/s (bulk) or req/s (per-request cases)\n\
         \x20 spread            (max - min) / median: how noisy that method was here\n\
         \x20 CPU s/GB          CPU seconds of the method's threads per GB moved (less noisy)\n\
         \x20 vs base           median / the baseline's median; baseline = the best of the\n\
         \x20                   syscall methods read-write, std-copy, sendfile, splice\n\
         \x20                   (http-static: the better nginx, tcp_nopush on or off, docs/serve.md)\n\
         \x20 CPU µs/req        server CPU per request (request-response: the server's\n\
         \x20                   threads; http-static: the whole server process)\n\
         \x20 CPU vs base       CPU per byte over the baseline's: below 1 is less work\n\
         \x20 machine           (http-static, tcp-proxy) busy time of every CPU per request\n\
         \x20                   (µs) or per GB (s), and its ratio to the baseline's: the\n\
         \x20                   server's cost including work it leaves to peers and kernel\n\
         \x20 verdict           win or loss only when every run beat (or lost to) every\n\
         \x20                   baseline run; otherwise tie (a difference within the noise)\n\
         \x20 p50 … max µs      closed-loop request latency, request to last byte (request-response;\n\
         \x20                   http-static: wrk's closed-loop figures, which understate\n\
         \x20                   tails, and no p99.9; \"-\" when there were too few requests)\n\
         \x20 light load        (one connection, bodies up to 64 KiB) the same methods asked\n\
         \x20                   1000 times a second, each request sent at its planned time:\n\
         \x20                   server CPU per request while mostly waiting, its ratio to\n\
         \x20                   the cheapest non-ferry method, latency from the planned time"
    );
}

fn gbs(b: f64) -> String {
    format!("{:.2}", b / 1e9)
}

fn pct(s: &Summary, p: u64) -> String {
    if s.latency_samples >= MIN_LATENCY_SAMPLES {
        p.to_string()
    } else {
        "-".into()
    }
}

/// One case's table, printed as soon as the case is done.
pub fn print_case(
    case: &Case,
    rows: &[Summary],
    per: &BTreeMap<Method, MethodOutcome>,
    runs: usize,
) {
    let base = baseline(rows).map_or("none ran".to_string(), |b| b.method.name().to_string());
    println!("\n{}  ({runs} runs, baseline: {base})", case_name(case));
    let rr = case.per_request();
    let machine = rows.iter().any(|s| s.machine_cpu.is_some());
    let mcol = |s: &Summary| match (s.machine_cpu, s.machine_cpu_ratio) {
        (Some(m), Some(r)) if rr => format!("{m:.1} {r:.2}x"),
        (Some(m), None) if rr => format!("{m:.1}"),
        (Some(m), Some(r)) => format!("{m:.3} {r:.2}x"),
        (Some(m), None) => format!("{m:.3}"),
        (None, _) => "-".into(),
    };
    let width = if rr { 18 } else { 16 };
    let mhead = match (machine, rr) {
        (false, _) => String::new(),
        (true, true) => format!(" {:>width$}", "machine µs/req"),
        (true, false) => format!(" {:>width$}", "machine s/GB"),
    };
    // The verdict, then the machine column where the case has one.
    let tail = |s: &Summary, verdict: &str| {
        if machine {
            format!("{verdict:<8} {:>width$}", mcol(s))
        } else {
            verdict.to_string()
        }
    };
    if rr {
        println!(
            "  latency columns: closed loop (each connection waits for its answer; tails \
             understated: `ferry bench --latency` offers a fixed rate)"
        );
        let head = format!(
            "  {:<16} {:>10} {:>19} {:>6} {:>8} {:>7} {:>7} {:>8} {:>7} {:>10} {:>11} {:>7}  {:<8}{mhead}",
            "method",
            "req/s",
            "min-max req/s",
            "spread",
            "MB/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "CPU µs/req",
            "CPU vs base",
            "vs base",
            "verdict"
        );
        println!("{}", head.trim_end());
    } else {
        let head = format!(
            "  {:<16} {:>10} {:>15} {:>6} {:>8} {:>7}  {:<8}{mhead}",
            "method", "GB/s", "min-max GB/s", "spread", "CPU s/GB", "vs base", "verdict"
        );
        println!("{}", head.trim_end());
    }
    for s in rows {
        let ratio = s.ratio.map_or("-".into(), |r| format!("{r:.2}x"));
        let verdict = s.verdict.map_or("-", Verdict::name);
        let spread = format!("{:.0}%", s.spread * 100.0);
        if rr {
            let lo = s.samples.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = s.samples.iter().copied().fold(0.0, f64::max);
            println!(
                "  {:<16} {:>10.0} {:>19} {:>6} {:>8.1} {:>7} {:>7} {:>8} {:>7} {:>10.2} {:>11} {:>7}  {}",
                s.method.name(),
                s.requests_per_sec.unwrap_or(0.0),
                format!("{lo:.0}-{hi:.0}"),
                spread,
                s.bytes_per_sec / 1e6,
                pct(s, s.p50_us),
                pct(s, s.p99_us),
                s.p999_us.map_or("-".into(), |p| pct(s, p)),
                s.max_us,
                s.cpu_us_per_request.unwrap_or(0.0),
                s.cpu_ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                ratio,
                tail(s, verdict),
            );
        } else {
            println!(
                "  {:<16} {:>10} {:>15} {:>6} {:>8.3} {:>7}  {}",
                s.method.name(),
                gbs(s.bytes_per_sec),
                format!("{}-{}", gbs(s.bytes_per_sec_min), gbs(s.bytes_per_sec_max)),
                spread,
                s.cpu_sec_per_gb,
                ratio,
                tail(s, verdict),
            );
        }
    }
    for (m, o) in per.iter().filter(|(m, _)| case.scenario.compares(**m)) {
        if let MethodOutcome::Skipped(why) = o {
            println!("  {:<16} not run: {why}", m.name());
        }
    }
}

/// One line per case: ferry's best method against the baseline.
pub fn print_summary(all: &[Summary], cases: &[Case]) {
    println!("\nSummary: ferry's best method per case, against that case's baseline");
    // The connections scenario has its own lines (idle_report::print_summary).
    for c in cases.iter().filter(|c| c.scenario != Scenario::Connections) {
        let rows: Vec<&Summary> = all.iter().filter(|s| s.case == *c).collect();
        let base = rows.iter().find(|s| s.verdict == Some(Verdict::Baseline));
        let best = rows
            .iter()
            .filter(|s| s.method.is_ferry())
            .max_by(|a, b| a.metric().total_cmp(&b.metric()));
        match (best, base) {
            (Some(b), Some(base)) => println!(
                "  {:<34} {:<16} {:>6} vs {:<10} {}",
                case_name(c),
                b.method.name(),
                b.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                base.method.name(),
                b.verdict.map_or("-", Verdict::name)
            ),
            _ => println!("  {:<34} no comparison (a side did not run)", case_name(c)),
        }
    }
}
