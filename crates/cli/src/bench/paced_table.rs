//! The light-load table under a one-connection case: each method's server CPU per
//! request at [`RATE`](super::paced::RATE) requests a second (`super::paced`), the
//! ratio to the cheapest non-ferry method, a verdict by the every-run rule, and the
//! latency from each request's planned time.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::common::{new_hist, Method, RunResult};
use super::paced::RATE;
use super::stats::{is_baseline_candidate, median};
use super::Case;

/// One method's paced runs, summed up.
pub struct PacedRow {
    pub method: Method,
    /// CPU µs per request of each run.
    pub cpu_us: Vec<f64>,
    /// Requests a second each run achieved.
    pub rates: Vec<f64>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub ratio: Option<f64>,
    pub verdict: Option<&'static str>,
}

fn cpu_us(r: &RunResult) -> f64 {
    r.cpu_secs * 1e6 / r.requests.unwrap_or(0).max(1) as f64
}

/// The rows of one case's paced runs, with the baseline (the non-ferry method with the
/// least median CPU) and verdicts set.
pub fn summarise(runs: &BTreeMap<Method, Vec<RunResult>>) -> Vec<PacedRow> {
    let mut rows: Vec<PacedRow> = runs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(&method, v)| {
            let mut h = new_hist();
            for r in v {
                let _ = h.add(&r.hist);
            }
            PacedRow {
                method,
                cpu_us: v.iter().map(cpu_us).collect(),
                rates: v
                    .iter()
                    .map(|r| r.requests.unwrap_or(0) as f64 / r.secs.max(1e-9))
                    .collect(),
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
                ratio: None,
                verdict: None,
            }
        })
        .collect();
    let base = rows
        .iter()
        .filter(|r| is_baseline_candidate(r.method))
        .min_by(|a, b| median(a.cpu_us.clone()).total_cmp(&median(b.cpu_us.clone())))
        .map(|r| (r.method, r.cpu_us.clone()));
    if let Some((bm, bv)) = base {
        let bmed = median(bv.clone());
        let (bmin, bmax) = (
            bv.iter().copied().fold(f64::INFINITY, f64::min),
            bv.iter().copied().fold(0.0, f64::max),
        );
        for r in rows.iter_mut() {
            r.ratio = Some(median(r.cpu_us.clone()) / bmed.max(1e-9));
            r.verdict = Some(if r.method == bm {
                "baseline"
            } else if r.cpu_us.iter().all(|&c| c < bmin) {
                "win"
            } else if r.cpu_us.iter().all(|&c| c > bmax) {
                "loss"
            } else {
                "tie"
            });
        }
    }
    rows
}

pub fn print(rows: &[PacedRow], secs: f64) {
    if rows.is_empty() {
        return;
    }
    let runs = rows.iter().map(|r| r.cpu_us.len()).max().unwrap_or(0);
    println!(
        "  light load: {RATE} req/s on one connection, {secs} s x {runs} runs, interleaved \
         (less CPU is better; latency from each request's planned time)"
    );
    println!(
        "  {:<16} {:>10} {:>15} {:>8} {:>9} {:>7} {:>7} {:>7}  verdict",
        "method", "CPU µs/req", "min-max", "vs base", "req/s", "p50 µs", "p99 µs", "max µs"
    );
    for r in rows {
        let lo = r.cpu_us.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.cpu_us.iter().copied().fold(0.0, f64::max);
        println!(
            "  {:<16} {:>10.2} {:>15} {:>8} {:>9.0} {:>7} {:>7} {:>7}  {}",
            r.method.name(),
            median(r.cpu_us.clone()),
            format!("{lo:.2}-{hi:.2}"),
            r.ratio.map_or("-".into(), |x| format!("{x:.2}x")),
            median(r.rates.clone()),
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.verdict.unwrap_or("-"),
        );
    }
}

/// JSON rows for `--json` (`"paced"`).
pub fn json_rows(case: &Case, rows: &[PacedRow]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            json!({
                "scenario": case.scenario.name(),
                "size": case.size,
                "connections": case.connections,
                "rate_per_sec": RATE,
                "method": r.method.name(),
                "cpu_us_per_request": median(r.cpu_us.clone()),
                "cpu_us_per_request_samples": r.cpu_us,
                "achieved_per_sec": median(r.rates.clone()),
                "p50_us": r.p50_us,
                "p99_us": r.p99_us,
                "max_us": r.max_us,
                "cpu_ratio_to_baseline": r.ratio,
                "verdict": r.verdict,
            })
        })
        .collect()
}
