//! Engine statistics: counts, bytes and hdrhistogram latencies per transfer kind and
//! size class, plus retry counters, io-wq workers and pipe-pool stats.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use crate::backend_kind::Backend;
use crate::transfer::TransferKind;

/// Body size classes for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeClass {
    /// Up to 64 KiB.
    Small,
    /// Up to 1 MiB.
    Medium,
    /// Above 1 MiB.
    Large,
}

impl SizeClass {
    /// The class of a body of `bytes`.
    pub fn of(bytes: u64) -> SizeClass {
        match bytes {
            0..=65_536 => SizeClass::Small,
            65_537..=1_048_576 => SizeClass::Medium,
            _ => SizeClass::Large,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Counters of one (kind, size class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindStats {
    /// The transfer kind.
    pub kind: TransferKind,
    /// The size class of the bodies.
    pub class: SizeClass,
    /// Transfers finished (successfully or not).
    pub transfers: u64,
    /// Transfers that failed (including timeouts and cancels).
    pub errors: u64,
    /// Body bytes moved (failed transfers included).
    pub bytes: u64,
    /// Submit → start (waiting in the queue).
    pub queued: Latency,
    /// Start → last byte (in the kernel and the engine).
    pub kernel: Latency,
    /// Submit → completion.
    pub total: Latency,
}

/// A snapshot from [`Engine::stats`](crate::Engine::stats).
#[derive(Debug, Clone)]
pub struct EngineStats {
    /// The backend in use.
    pub backend: Backend,
    /// Per kind and size class, only those that saw transfers.
    pub kinds: Vec<KindStats>,
    /// Operations re-issued after `EAGAIN` (each after a readiness wait).
    pub eagain_retries: u64,
    /// Operations that moved fewer bytes than asked (and were continued).
    pub short_ops: u64,
    /// Transfers submitted and not yet finished.
    pub in_flight: u64,
    /// Transfers finished entirely by the inline attempt on the submitting thread.
    pub inline_completed: u64,
    /// Inline attempts that handed the rest to the backend (socket full, or body
    /// not in the page cache).
    pub inline_handed_over: u64,
    /// Transfers whose file body came from a `LocalEngine`'s body cache (sent from
    /// memory, see `LocalEngineBuilder::body_cache`).
    pub from_memory: u64,
    /// io_uring io-wq worker threads alive in this process (`iou-wrk-*`), now.
    pub iowq_workers: usize,
    /// The engine's pipe pool.
    pub pipes: ferry_pipes::PoolStats,
}

impl EngineStats {
    /// Sum over all kinds and classes: (transfers, errors, bytes).
    pub fn totals(&self) -> (u64, u64, u64) {
        self.kinds.iter().fold((0, 0, 0), |(t, e, b), k| {
            (t + k.transfers, e + k.errors, b + k.bytes)
        })
    }
}

struct Entry {
    transfers: u64,
    errors: u64,
    bytes: u64,
    queued: Histogram<u64>,
    kernel: Histogram<u64>,
    total: Histogram<u64>,
}

fn hist() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits; these bounds are valid by construction.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The engine's recorder: one mutex for the histograms (taken once per finished
/// transfer), relaxed atomics for per-operation counters.
#[derive(Default)]
pub(crate) struct Recorder {
    entries: Mutex<BTreeMap<(TransferKind, SizeClass), Entry>>,
    pub eagain: AtomicU64,
    pub short: AtomicU64,
    pub in_flight: AtomicU64,
    pub inline_done: AtomicU64,
    pub inline_handoff: AtomicU64,
    pub from_memory: AtomicU64,
}

impl Recorder {
    pub(crate) fn record(
        &self,
        kind: TransferKind,
        bytes: u64,
        ok: bool,
        queued: Duration,
        kernel: Duration,
    ) {
        let us = |d: Duration| (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map
            .entry((kind, SizeClass::of(bytes)))
            .or_insert_with(|| Entry {
                transfers: 0,
                errors: 0,
                bytes: 0,
                queued: hist(),
                kernel: hist(),
                total: hist(),
            });
        e.transfers += 1;
        e.errors += u64::from(!ok);
        e.bytes += bytes;
        e.queued.saturating_record(us(queued));
        e.kernel.saturating_record(us(kernel));
        e.total.saturating_record(us(queued + kernel));
    }

    pub(crate) fn snapshot(&self, backend: Backend, pipes: ferry_pipes::PoolStats) -> EngineStats {
        let kinds = {
            let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|(&(kind, class), e)| KindStats {
                    kind,
                    class,
                    transfers: e.transfers,
                    errors: e.errors,
                    bytes: e.bytes,
                    queued: Latency::of(&e.queued),
                    kernel: Latency::of(&e.kernel),
                    total: Latency::of(&e.total),
                })
                .collect()
        };
        EngineStats {
            backend,
            kinds,
            eagain_retries: self.eagain.load(Relaxed),
            short_ops: self.short.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            inline_completed: self.inline_done.load(Relaxed),
            inline_handed_over: self.inline_handoff.load(Relaxed),
            from_memory: self.from_memory.load(Relaxed),
            iowq_workers: iowq_workers(),
            pipes,
        }
    }
}

/// Counts this process's io-wq workers (threads named `iou-wrk-*`).
pub(crate) fn iowq_workers() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("iou-wrk"))
        })
        .count()
}
