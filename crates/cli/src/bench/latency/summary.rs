//! The latency study's tables and JSON: per case and offered rate, one row per subject
//! (the floor first) with the rate it achieved, whether the generator kept up, the
//! corrected percentiles, the closed-loop view of the same run, server CPU per request,
//! errors, and a verdict on p99 and p99.9 against the method whose peak set the rates,
//! only where every run beat (or lost to) every run of it.

use std::io;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::super::common::{new_hist, Method};
use super::super::stats::{median, Verdict};
use super::super::table::{case_name, size_name};
use super::super::Case;
use super::encoding::to_base64;
use super::generator::Measured;
use super::subject::Subject;

/// Every run of one subject at one offered rate.
pub struct Point {
    pub case: Case,
    /// Of the baseline's closed-loop peak.
    pub fraction: f64,
    /// Requests a second offered.
    pub offered: f64,
    /// The method whose peak set the rate (the verdicts compare with it).
    pub baseline: Method,
    pub subject: Subject,
    pub runs: Vec<Measured>,
}

fn merge(hs: impl Iterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut all = new_hist();
    for h in hs {
        let _ = all.add(&h);
    }
    all
}

impl Point {
    /// The corrected latencies of all runs together.
    pub fn corrected(&self) -> Histogram<u64> {
        merge(self.runs.iter().map(|r| r.corrected.clone()))
    }

    fn sent(&self) -> Histogram<u64> {
        merge(self.runs.iter().map(|r| r.from_send.clone()))
    }

    fn lag(&self) -> Histogram<u64> {
        merge(self.runs.iter().map(|r| r.lag.clone()))
    }

    /// The corrected latency at quantile `q` of each run, in µs.
    fn per_run(&self, q: f64) -> Vec<f64> {
        self.runs
            .iter()
            .map(|r| r.corrected.value_at_quantile(q) as f64)
            .collect()
    }

    fn achieved(&self) -> f64 {
        median(self.runs.iter().map(Measured::achieved).collect())
    }

    /// How busy the generator's thread was (of one CPU), median of the runs.
    fn generator_busy(&self) -> f64 {
        median(
            self.runs
                .iter()
                .map(|r| r.cpu_secs / r.secs.max(1e-9))
                .collect(),
        )
    }

    fn errors(&self) -> u64 {
        self.runs.iter().map(|r| r.errors + r.unanswered).sum()
    }

    /// Server CPU µs per answer (median of the runs), where it was measured.
    fn cpu_us(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| Some(r.server_cpu_secs? * 1e6 / r.requests.max(1) as f64))
            .collect();
        (!v.is_empty()).then(|| median(v))
    }
}

fn lo_hi(v: &[f64]) -> (f64, f64) {
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(0.0, f64::max),
    )
}

/// Lower latency is better: a win only when every run was below every baseline run,
/// a loss only when every run was above; never from one run each.
fn verdict(subject: &[f64], base: &[f64]) -> Option<Verdict> {
    if subject.len() < 2 || base.len() < 2 {
        return None;
    }
    let (slo, shi) = lo_hi(subject);
    let (blo, bhi) = lo_hi(base);
    Some(if shi < blo {
        Verdict::Win
    } else if slo > bhi {
        Verdict::Loss
    } else {
        Verdict::Tie
    })
}

/// The verdicts of `p` on p99 and p99.9 against the baseline's point at its rate.
fn verdicts(p: &Point, base: Option<&Point>) -> [Option<Verdict>; 2] {
    let Some(b) = base else {
        return [None, None];
    };
    if p.subject == b.subject {
        return [Some(Verdict::Baseline); 2];
    }
    if p.subject == Subject::Floor {
        return [None, None];
    }
    [0.99, 0.999].map(|q| verdict(&p.per_run(q), &b.per_run(q)))
}

fn us(v: u64) -> String {
    if v >= 100_000 {
        format!("{:.0}ms", v as f64 / 1000.0)
    } else {
        v.to_string()
    }
}

pub fn print_legend(secs: f64, warmup: f64, quick: bool) {
    println!(
        "How to read the latency tables: the load generator (docs/latency.md)\n\
         sends at a fixed rate whatever the server does, each connection's requests N/rate apart\n\
         on a schedule; a late answer delays the connection's next request, whose latency is\n\
         still counted from its planned time (coordinated omission corrected). Each point runs\n\
         {warmup} s unrecorded, then {secs} s recorded{0}; subjects interleave at each rate.\n\
         \x20 offered        requests a second asked for: a fraction of the closed-loop peak of\n\
         \x20                the baseline (the best syscall method; nginx; HAProxy), measured first\n\
         \x20 req/s          answers a second achieved (median of runs); * = more than 2 % below\n\
         \x20                offered: the subject fell behind, its queue grew during the run and\n\
         \x20                its tail is that queue\n\
         \x20 gen %          the generator thread's CPU (of one; the kernel's TCP work for its\n\
         \x20                sockets included): near 100 % it is itself a queue in the tail\n\
         \x20 lag p99/max    how late the generator itself wrote requests (µs): it kept the\n\
         \x20                rate where these are small\n\
         \x20 p50 … max      latency from each request's planned time to its answer's last\n\
         \x20                byte, all runs merged (µs; ms where marked)\n\
         \x20 sent p99.9     the same answers timed from when their requests were written: what\n\
         \x20                a closed-loop tool would report\n\
         \x20 CPU µs/req     the server's CPU per answer (process; in-process servers: minus\n\
         \x20                the generator's thread; the floor: its thread)\n\
         \x20 err            failed or unanswered requests\n\
         \x20 p99 / p99.9    win or loss against the baseline only when every run beat (lost\n\
         \x20                to) every baseline run; else tie\n\
         \x20 floor          a trivial responder (one answer from a memfd by sendfile): the\n\
         \x20                generator's own latency at that rate, while the responder has\n\
         \x20                CPU to spare",
        if quick { " (--quick: too short for stable tails)" } else { "" }
    );
    println!();
}

/// Prints the table of one case at one rate: `points` are its subjects' points.
pub fn print(points: &[&Point]) {
    let Some(first) = points.first() else {
        return;
    };
    println!(
        "{} — open loop at {:.0} % of {}'s closed-loop peak: {:.0} req/s offered, {} runs",
        case_name(&first.case),
        first.fraction * 100.0,
        first.baseline.name(),
        first.offered,
        first.runs.len()
    );
    println!(
        "  {:<16} {:>8} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>4}  p99 / p99.9",
        "subject", "req/s", "gen %", "lag p99", "lag max", "p50", "p90", "p99", "p99.9", "p99.99", "max",
        "sent p99.9", "CPU µs/req", "err"
    );
    let base = points
        .iter()
        .copied()
        .find(|p| p.subject == Subject::Method(p.baseline));
    for p in points {
        let (h, sent, lag) = (p.corrected(), p.sent(), p.lag());
        let q = |q: f64| us(h.value_at_quantile(q));
        let [v99, v999] = verdicts(p, base);
        let v = |v: Option<Verdict>| v.map_or("-", Verdict::name);
        let behind = if p.achieved() < 0.98 * p.offered {
            "*"
        } else {
            " "
        };
        println!(
            "  {:<16} {:>8.0}{behind}{:>5.0} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>4}  {} / {}",
            p.subject.name(),
            p.achieved(),
            p.generator_busy() * 100.0,
            us(lag.value_at_quantile(0.99)),
            us(lag.max()),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(0.9999),
            us(h.max()),
            us(sent.value_at_quantile(0.999)),
            p.cpu_us().map_or("-".into(), |c| format!("{c:.1}")),
            p.errors(),
            v(v99),
            v(v999),
        );
        if let Some(e) = p.runs.iter().find_map(|r| r.first_error.as_ref()) {
            println!("  {:<16} first failure: {e}", "");
        }
    }
    if let Some(floor) = points.iter().find(|p| p.subject == Subject::Floor) {
        let lag = floor.lag().value_at_quantile(0.99);
        let busy = floor.generator_busy();
        if lag > 1000 {
            println!(
                "  note: the generator fell behind its own schedule at this rate (lag p99 \
                 {lag} µs against the floor): these rows are bounded by the generator"
            );
        } else if busy > 0.9 {
            println!(
                "  note: the generator's thread was {:.0} % busy against the floor: answers wait \
                 to be read, and the tails above include that wait",
                busy * 100.0
            );
        } else if floor.achieved() < 0.98 * floor.offered {
            println!(
                "  note: the floor responder could not carry this rate ({:.0} of {:.0} req/s): \
                 here it is no floor, only one more plain epoll + sendfile server",
                floor.achieved(),
                floor.offered
            );
        }
    }
    println!();
}

fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50_us": h.value_at_quantile(0.5),
        "p90_us": h.value_at_quantile(0.9),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "p9999_us": h.value_at_quantile(0.9999),
        "max_us": h.max(),
        "count": h.len(),
    })
}

/// The JSON of one point: per-run figures with each run's histograms in HdrHistogram's
/// interchange encoding (base64 of the compressed V2 format), and the merged ones.
pub fn json_point(p: &Point, all: &[&Point]) -> io::Result<Value> {
    let base = all.iter().copied().find(|b| {
        b.case == p.case && b.fraction == p.fraction && b.subject == Subject::Method(b.baseline)
    });
    let [v99, v999] = verdicts(p, base);
    let runs = p
        .runs
        .iter()
        .map(|r| {
            Ok(json!({
                "achieved_per_sec": r.achieved(),
                "requests": r.requests,
                "errors": r.errors,
                "unanswered": r.unanswered,
                "corrected": percentiles(&r.corrected),
                "from_send": percentiles(&r.from_send),
                "generator_lag": percentiles(&r.lag),
                "server_cpu_us_per_request": r.server_cpu_secs.map(|c| c * 1e6 / r.requests.max(1) as f64),
                "generator_cpu_us_per_request": r.cpu_secs * 1e6 / r.requests.max(1) as f64,
                "histogram_corrected": to_base64(&r.corrected)?,
                "histogram_from_send": to_base64(&r.from_send)?,
                "first_error": r.first_error,
            }))
        })
        .collect::<io::Result<Vec<Value>>>()?;
    let corrected = p.corrected();
    Ok(json!({
        "scenario": p.case.scenario.name(),
        "size": p.case.size,
        "connections": p.case.connections,
        "fraction_of_peak": p.fraction,
        "offered_per_sec": p.offered,
        "rates_from": p.baseline.name(),
        "subject": p.subject.name(),
        "achieved_per_sec": p.achieved(),
        "corrected": percentiles(&corrected),
        "from_send": percentiles(&p.sent()),
        "generator_lag": percentiles(&p.lag()),
        "generator_busy": p.generator_busy(),
        "server_cpu_us_per_request": p.cpu_us(),
        "errors": p.errors(),
        "verdict_p99": v99.map(Verdict::name),
        "verdict_p999": v999.map(Verdict::name),
        "histogram_corrected": to_base64(&corrected)?,
        "histogram_unit": "µs",
        "runs": runs,
    }))
}

/// The chart title of one case at one rate.
pub fn chart_title(p: &Point) -> String {
    format!(
        "{} {} x{} at {:.0} req/s ({:.0} % of {}'s peak), µs",
        p.case.scenario.name(),
        size_name(p.case.size),
        p.case.connections,
        p.offered,
        p.fraction * 100.0,
        p.baseline.name()
    )
}
