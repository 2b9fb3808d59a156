//! The `connections` scenario's table and JSON: memory per idle connection, what the
//! server kept after they left, and the active load's CPU per request with and
//! without them, per subject, against its peer (ferry serve against nginx, ferry proxy
//! against HAProxy).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::common::{Method, RunResult};
use super::idle::{IdleRun, ACTIVE_CONNECTIONS, ACTIVE_SIZE};
use super::table::size_name;

/// Medians (and ranges) of one subject's runs.
pub struct IdleSummary {
    pub method: Method,
    pub idle: usize,
    pub runs: usize,
    /// Bytes of RSS per idle connection: median, min, max.
    pub per_idle: (f64, f64, f64),
    pub held_mb: f64,
    /// KB the server kept after the idle clients left (after − before): median, max.
    pub kept_kb: (f64, f64),
    pub cpu_alone_us: f64,
    pub cpu_idle_us: f64,
    /// CPU per request with the idle held over without, median of the per-run ratios.
    pub cpu_ratio: f64,
    pub rps_idle: f64,
    pub p99_alone_us: Option<u64>,
    pub p99_idle_us: Option<u64>,
    /// Against the peer: per-idle bytes over the peer's, and win/loss/tie.
    pub vs_peer: Option<(f64, &'static str)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn cpu_per_request_us(r: &RunResult) -> f64 {
    r.cpu_secs * 1e6 / r.requests.unwrap_or(0).max(1) as f64
}

fn p99(runs: &[IdleRun], f: impl Fn(&IdleRun) -> &RunResult) -> Option<u64> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| f(r).latency.map(|l| l.p99_us as f64))
        .collect();
    (!v.is_empty()).then(|| median(v) as u64)
}

/// The peer a ferry subject is compared with.
fn peer_of(m: Method) -> Option<Method> {
    match m {
        Method::FerryServe => Some(Method::Nginx),
        Method::FerryProxy => Some(Method::Haproxy),
        _ => None,
    }
}

/// Every run is measured against the subject's RSS before its *first* idle clients:
/// a server that keeps what the first N cost and reuses it for the next N still
/// holds that memory for idle connections.
pub fn summarise(per: &BTreeMap<Method, Vec<IdleRun>>) -> Vec<IdleSummary> {
    let mut out: Vec<IdleSummary> = per
        .iter()
        .filter(|(_, runs)| !runs.is_empty())
        .map(|(&method, runs)| {
            let base = runs[0].before_kb;
            let per_idle: Vec<f64> = runs.iter().map(|r| r.bytes_per_idle(base)).collect();
            let kept: Vec<f64> = runs
                .iter()
                .map(|r| r.after_kb as f64 - base as f64)
                .collect();
            let ratios = runs
                .iter()
                .map(|r| {
                    cpu_per_request_us(&r.active_with_idle) / cpu_per_request_us(&r.active_alone)
                })
                .collect();
            IdleSummary {
                method,
                idle: runs[0].idle,
                runs: runs.len(),
                per_idle: (
                    median(per_idle.clone()),
                    per_idle.iter().copied().fold(f64::INFINITY, f64::min),
                    per_idle.iter().copied().fold(0.0, f64::max),
                ),
                held_mb: median(runs.iter().map(|r| r.held_kb as f64 / 1024.0).collect()),
                kept_kb: (
                    median(kept.clone()),
                    kept.iter().copied().fold(f64::MIN, f64::max),
                ),
                cpu_alone_us: median(
                    runs.iter()
                        .map(|r| cpu_per_request_us(&r.active_alone))
                        .collect(),
                ),
                cpu_idle_us: median(
                    runs.iter()
                        .map(|r| cpu_per_request_us(&r.active_with_idle))
                        .collect(),
                ),
                cpu_ratio: median(ratios),
                rps_idle: median(
                    runs.iter()
                        .map(|r| {
                            r.active_with_idle.requests.unwrap_or(0) as f64
                                / r.active_with_idle.secs.max(1e-9)
                        })
                        .collect(),
                ),
                p99_alone_us: p99(runs, |r| &r.active_alone),
                p99_idle_us: p99(runs, |r| &r.active_with_idle),
                vs_peer: None,
            }
        })
        .collect();
    // A win or loss only when every run of one is below every run of the other.
    let ranges: BTreeMap<Method, (f64, f64, f64)> =
        out.iter().map(|s| (s.method, s.per_idle)).collect();
    for s in &mut out {
        let Some(peer) = peer_of(s.method).and_then(|p| ranges.get(&p)) else {
            continue;
        };
        let verdict = if s.per_idle.2 < peer.1 {
            "win"
        } else if s.per_idle.1 > peer.2 {
            "loss"
        } else {
            "tie"
        };
        s.vs_peer = Some((s.per_idle.0 / peer.0.max(1e-9), verdict));
    }
    out
}

pub fn print_legend() {
    println!(
        "\nconnections: N clients each GET {} once and stay open (keep-alive; through a\n\
         proxy, an idle client-backend pair), while wrk keeps {ACTIVE_CONNECTIONS} connections busy.\n\
         \x20 B/idle           the server's RssAnon growth / N: median and min-max\n\
         \x20 held MB          its RssAnon with the N held\n\
         \x20 kept KB          RssAnon after they all left minus before them (median, max):\n\
         \x20                  what it did not give back; runs repeat on one process\n\
         \x20 CPU µs/req       server CPU per request of the active load, alone and with N idle\n\
         \x20 idle/alone       the ratio of the two (median of the per-run ratios)\n\
         \x20 p99 µs           wrk's closed-loop p99, alone and with N idle\n\
         \x20 vs peer          B/idle over nginx's (ferry serve) or HAProxy's (ferry proxy);\n\
         \x20                  win or loss only when every run beat (lost to) every peer run",
        size_name(ACTIVE_SIZE)
    );
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

pub fn print(rows: &[IdleSummary], idle: usize, runs: usize) {
    println!(
        "\nconnections {idle} idle + {} x{ACTIVE_CONNECTIONS} active  ({runs} runs)",
        size_name(ACTIVE_SIZE)
    );
    println!(
        "  {:<12} {:>7} {:>13} {:>8} {:>13} {:>17} {:>10} {:>9} {:>15} {:>13}",
        "method",
        "B/idle",
        "min-max",
        "held MB",
        "kept KB",
        "CPU µs/req",
        "idle/alone",
        "req/s",
        "p99 µs",
        "vs peer"
    );
    for s in rows {
        let peer = s
            .vs_peer
            .map_or_else(|| "(peer)".into(), |(r, v)| format!("{r:.2}x {v}"));
        println!(
            "  {:<12} {:>7.0} {:>13} {:>8.1} {:>13} {:>17} {:>10.2} {:>9.0} {:>15} {:>13}",
            s.method.name(),
            s.per_idle.0,
            format!("{:.0}-{:.0}", s.per_idle.1, s.per_idle.2),
            s.held_mb,
            format!("{:.0} (≤{:.0})", s.kept_kb.0, s.kept_kb.1),
            format!("{:.1} / {:.1}", s.cpu_alone_us, s.cpu_idle_us),
            s.cpu_ratio,
            s.rps_idle,
            format!("{} / {}", opt(s.p99_alone_us), opt(s.p99_idle_us)),
            peer
        );
    }
}

pub fn json_rows(rows: &[IdleSummary]) -> Vec<Value> {
    rows.iter()
        .map(|s| {
            json!({
                "scenario": "connections",
                "method": s.method.name(),
                "idle_connections": s.idle,
                "active_connections": ACTIVE_CONNECTIONS,
                "active_size": ACTIVE_SIZE,
                "runs": s.runs,
                "rss_bytes_per_idle": s.per_idle.0,
                "rss_bytes_per_idle_min": s.per_idle.1,
                "rss_bytes_per_idle_max": s.per_idle.2,
                "rss_anon_held_mb": s.held_mb,
                "rss_kept_after_kb": s.kept_kb.0,
                "rss_kept_after_kb_max": s.kept_kb.1,
                "cpu_us_per_request_alone": s.cpu_alone_us,
                "cpu_us_per_request_with_idle": s.cpu_idle_us,
                "cpu_ratio_idle_to_alone": s.cpu_ratio,
                "requests_per_sec_with_idle": s.rps_idle,
                "p99_us_alone": s.p99_alone_us,
                "p99_us_with_idle": s.p99_idle_us,
                "per_idle_ratio_to_peer": s.vs_peer.map(|v| v.0),
                "verdict": s.vs_peer.map(|v| v.1),
            })
        })
        .collect()
}

/// The closing summary's lines for the connections cases.
pub fn print_summary(rows: &[IdleSummary]) {
    for s in rows.iter().filter(|s| s.vs_peer.is_some()) {
        let (ratio, verdict) = s.vs_peer.expect("filtered");
        println!(
            "  {:<34} {:<16} {:>6} vs {:<10} {verdict}  ({:.0} B per idle connection)",
            format!("connections {} idle (memory)", s.idle),
            s.method.name(),
            format!("{ratio:.2}x"),
            peer_of(s.method).map_or("-", Method::name),
            s.per_idle.0
        );
    }
}
