//! What the numbers of one case say: medians over the interleaved runs, the spread of
//! each method, the baseline (the best syscall method, named), and whether a method
//! really differs from it — a win or a loss only when the run-to-run ranges do not
//! overlap, a tie otherwise.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::common::{new_hist, Method, RunResult};
use super::{Case, MethodOutcome};

/// How a method compares with the baseline of its case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every run beat every baseline run.
    Win,
    /// The ranges overlap: within this machine's noise.
    Tie,
    /// Every run lost to every baseline run.
    Loss,
    /// This is the baseline.
    Baseline,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Win => "win",
            Verdict::Tie => "tie",
            Verdict::Loss => "loss",
            Verdict::Baseline => "baseline",
        }
    }
}

/// One row: a method on a case.
#[derive(Debug, Clone)]
pub struct Summary {
    pub case: Case,
    pub method: Method,
    /// The per-run figure compared across methods: req/s for request-response,
    /// bytes/s otherwise.
    pub samples: Vec<f64>,
    pub bytes_per_sec: f64,
    pub bytes_per_sec_min: f64,
    pub bytes_per_sec_max: f64,
    pub requests_per_sec: Option<f64>,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    /// `None` where the latencies came from wrk, which does not report p99.9.
    pub p999_us: Option<u64>,
    pub max_us: u64,
    /// Latency samples in the merged histogram (percentiles are shown only with
    /// enough of them).
    pub latency_samples: u64,
    pub cpu_sec_per_gb: f64,
    /// CPU µs per request (request-response, http-static).
    pub cpu_us_per_request: Option<f64>,
    /// CPU per byte over the baseline's (lower is better).
    pub cpu_ratio: Option<f64>,
    /// The whole machine's busy CPU per request (per-request cases) or per GB (bulk),
    /// where the scenario measures it (a peer process: http-static, tcp-proxy).
    pub machine_cpu: Option<f64>,
    /// `machine_cpu` over the baseline's.
    pub machine_cpu_ratio: Option<f64>,
    /// (max − min) / median of `samples`: how noisy this method was here.
    pub spread: f64,
    /// Median over the baseline's median.
    pub ratio: Option<f64>,
    pub verdict: Option<Verdict>,
}

impl Summary {
    /// The median of the compared figure.
    pub fn metric(&self) -> f64 {
        median(self.samples.clone())
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
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

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

pub fn merged(outcome: &MethodOutcome) -> Option<Histogram<u64>> {
    let MethodOutcome::Ran(runs) = outcome else {
        return None;
    };
    let mut h = new_hist();
    for r in runs {
        h.add(&r.hist).ok()?;
    }
    Some(h)
}

/// The baseline methods: plain syscall loops, not ferry-engine.
pub fn is_baseline_candidate(m: Method) -> bool {
    matches!(
        m,
        Method::ReadWrite
            | Method::StdCopy
            | Method::Sendfile
            | Method::Splice
            | Method::Nginx
            | Method::NginxNoPush
            | Method::NginxTls
            | Method::Haproxy
            | Method::HaproxySplice
            | Method::HaproxyTls
    )
}

/// The rows of one case, with the baseline chosen and every verdict set.
pub fn summarise_case(case: Case, per: &BTreeMap<Method, MethodOutcome>) -> Vec<Summary> {
    let mut rows = Vec::new();
    for (&method, outcome) in per {
        let MethodOutcome::Ran(runs) = outcome else {
            continue;
        };
        if runs.is_empty() {
            continue;
        }
        let bps: Vec<f64> = runs.iter().map(|r| r.bytes as f64 / r.secs).collect();
        let rps: Option<Vec<f64>> = runs[0].requests.map(|_| {
            runs.iter()
                .map(|r| r.requests.unwrap_or(0) as f64 / r.secs)
                .collect()
        });
        let samples = rps.clone().unwrap_or_else(|| bps.clone());
        let h = merged(outcome).unwrap_or_else(new_hist);
        let mid = median(samples.clone());
        // Latency: our own histogram, or the load generator's percentiles per run.
        let peer: Vec<_> = runs.iter().filter_map(|r| r.latency).collect();
        let (p50, p90, p99, p999, max_us, latency_samples) = if peer.len() == runs.len() {
            let med = |f: fn(&super::common::PeerLatency) -> u64| {
                median(peer.iter().map(|l| f(l) as f64).collect()) as u64
            };
            (
                med(|l| l.p50_us),
                med(|l| l.p90_us),
                med(|l| l.p99_us),
                None,
                peer.iter().map(|l| l.max_us).max().unwrap_or(0),
                runs.iter().map(|r| r.requests.unwrap_or(0)).sum(),
            )
        } else {
            (
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                Some(h.value_at_quantile(0.999)),
                h.max(),
                h.len(),
            )
        };
        rows.push(Summary {
            case,
            method,
            spread: if mid > 0.0 {
                (max(&samples) - min(&samples)) / mid
            } else {
                0.0
            },
            samples,
            bytes_per_sec: median(bps.clone()),
            bytes_per_sec_min: min(&bps),
            bytes_per_sec_max: max(&bps),
            requests_per_sec: rps.map(median),
            p50_us: p50,
            p90_us: p90,
            p99_us: p99,
            p999_us: p999,
            max_us,
            latency_samples,
            cpu_sec_per_gb: median(
                runs.iter()
                    .map(|r| r.cpu_secs / (r.bytes.max(1) as f64 / 1e9))
                    .collect(),
            ),
            cpu_us_per_request: runs[0].requests.map(|_| {
                median(
                    runs.iter()
                        .map(|r| r.cpu_secs * 1e6 / r.requests.unwrap_or(0).max(1) as f64)
                        .collect(),
                )
            }),
            cpu_ratio: None,
            machine_cpu: machine_cpu(runs),
            machine_cpu_ratio: None,
            ratio: None,
            verdict: None,
        });
    }
    let base = rows
        .iter()
        .filter(|s| is_baseline_candidate(s.method))
        .max_by(|a, b| a.metric().total_cmp(&b.metric()))
        .map(|s| {
            (
                s.method,
                s.metric(),
                min(&s.samples),
                max(&s.samples),
                s.cpu_sec_per_gb,
                s.machine_cpu,
            )
        });
    if let Some((bm, bmid, bmin, bmax, bcpu, bmachine)) = base {
        for s in &mut rows {
            s.ratio = (bmid > 0.0).then(|| s.metric() / bmid);
            s.cpu_ratio = (bcpu > 0.0).then(|| s.cpu_sec_per_gb / bcpu);
            s.machine_cpu_ratio = match (s.machine_cpu, bmachine) {
                (Some(m), Some(b)) if b > 0.0 => Some(m / b),
                _ => None,
            };
            s.verdict = Some(if s.method == bm {
                Verdict::Baseline
            } else if min(&s.samples) > bmax {
                Verdict::Win
            } else if max(&s.samples) < bmin {
                Verdict::Loss
            } else {
                Verdict::Tie
            });
        }
    }
    rows
}

/// The median machine CPU per request (µs) or per GB (s), when every run measured it.
fn machine_cpu(runs: &[RunResult]) -> Option<f64> {
    let per: Option<Vec<f64>> = runs
        .iter()
        .map(|r| {
            let m = r.machine_cpu_secs?;
            Some(match r.requests {
                Some(n) => m * 1e6 / n.max(1) as f64,
                None => m / (r.bytes.max(1) as f64 / 1e9),
            })
        })
        .collect();
    per.filter(|v| !v.is_empty()).map(median)
}

/// The baseline row of a case's rows.
pub fn baseline(rows: &[Summary]) -> Option<&Summary> {
    rows.iter().find(|s| s.verdict == Some(Verdict::Baseline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::common::Scenario;

    fn run(bytes: u64, secs: f64) -> RunResult {
        RunResult {
            bytes,
            secs,
            requests: None,
            hist: new_hist(),
            cpu_secs: 0.1,
            latency: None,
            machine_cpu_secs: None,
        }
    }

    #[test]
    fn verdicts_need_ranges_that_do_not_overlap_and_the_baseline_is_a_syscall_method() {
        let case = Case {
            scenario: Scenario::FileToSocket,
            size: 1000,
            connections: 1,
        };
        let mut per = BTreeMap::new();
        per.insert(
            Method::Sendfile,
            MethodOutcome::Ran(vec![run(100, 1.0), run(110, 1.0), run(90, 1.0)]),
        );
        per.insert(
            Method::Splice,
            MethodOutcome::Ran(vec![run(80, 1.0), run(85, 1.0), run(82, 1.0)]),
        );
        // Faster than everything, but an engine: never the baseline.
        per.insert(
            Method::EngineUring,
            MethodOutcome::Ran(vec![run(120, 1.0), run(130, 1.0), run(125, 1.0)]),
        );
        per.insert(
            Method::EngineBlocking,
            MethodOutcome::Ran(vec![run(95, 1.0), run(115, 1.0), run(105, 1.0)]),
        );
        per.insert(Method::EngineLocal, MethodOutcome::Skipped("x".into()));
        let rows = summarise_case(case, &per);
        let v = |m: Method| rows.iter().find(|s| s.method == m).unwrap();
        assert_eq!(baseline(&rows).unwrap().method, Method::Sendfile);
        assert_eq!(v(Method::EngineUring).verdict, Some(Verdict::Win));
        assert_eq!(v(Method::EngineBlocking).verdict, Some(Verdict::Tie));
        assert_eq!(v(Method::Splice).verdict, Some(Verdict::Loss));
        assert!((v(Method::EngineUring).ratio.unwrap() - 1.25).abs() < 1e-9);
        assert!((v(Method::Sendfile).spread - 0.2).abs() < 1e-9);
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn machine_cpu_is_per_request_or_per_gb_and_absent_unless_every_run_has_it() {
        let with = |machine: f64, requests: Option<u64>| {
            let mut r = run(2_000_000_000, 1.0);
            r.machine_cpu_secs = Some(machine);
            r.requests = requests;
            r
        };
        // Bulk: seconds per GB, the median of 0.5 and 1.5.
        assert_eq!(machine_cpu(&[with(1.0, None), with(3.0, None)]), Some(1.0));
        // Per request: µs per request.
        let m = Some(1_000_000);
        assert_eq!(machine_cpu(&[with(1.0, m), with(3.0, m)]), Some(2.0));
        // One run without it: no figure rather than a biased one.
        assert_eq!(machine_cpu(&[with(1.0, None), run(1, 1.0)]), None);
    }
}
