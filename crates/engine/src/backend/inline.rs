//! The inline attempt: a small file body into a socket is sent from the submitting
//! thread, running the job's plan with calls that cannot block, until it is done or a
//! step would have to wait. Then the same plan, in the same state, goes to a backend.
//! This removes the two thread hand-offs that otherwise dominate small responses
//! (docs/engine.md has the numbers), without ever blocking the caller: a body not in
//! the page cache or a full socket buffer is the backend's to wait for.
//!
//! * Zero-copy when it is safe: the body is entirely in the page cache (`cachestat`),
//!   the socket is non-blocking, and a header goes first with `MSG_NOSIGNAL` (a dead
//!   peer then shows as `EPIPE` there, before `sendfile` — which has no such flag —
//!   could raise SIGPIPE): `send(header, MSG_MORE)` + `sendfile(body)`.
//! * Otherwise buffered: `preadv2(RWF_NOWAIT)` (page cache only) into the staging buffer
//!   behind the header, then one `send(MSG_DONTWAIT|MSG_NOSIGNAL)`.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ferry_pipes::PipePool;

use super::drive::{drive, Issued};
use super::{steps, Ctx};
use crate::group::Group;
use crate::handle::Slot;
use crate::job::Job;
use crate::plan::{Caps, Plan, SmallBody, Step, Strategy};
use crate::resolved::{FdKind, Resolved};
use crate::sys;
use crate::transfer::Transfer;

/// What a start needs besides the transfer: its id, how a cancel reaches its executor,
/// the group it fails with (a proxy's other direction), and what runs once it is done
/// (after the in-flight count drops: the gate's slot back, a helper's event).
pub(crate) struct Start {
    pub id: u64,
    pub canceller: Arc<dyn Fn(u64) + Send + Sync>,
    pub group: Option<Arc<Group>>,
    pub done: Box<dyn Fn() + Send + Sync>,
}

/// The start every submit path shares (`Engine` and `LocalEngine`): the transfer
/// counted in flight, its completion slot, the job prepared for an executor that can
/// do `caps` (`memory`: the body from a body cache), and the inline attempt. Returns
/// the slot, and the job still to hand over (`None`: it finished inline).
pub(crate) fn start(
    s: Start,
    t: Transfer,
    r: &Resolved,
    caps: Caps,
    ctx: &Ctx,
    memory: Option<Arc<[u8]>>,
) -> (Arc<Slot>, Option<Job>) {
    let rec = ctx.recorder.clone();
    rec.in_flight.fetch_add(1, Ordering::Relaxed);
    let done = s.done;
    let slot = Slot::new(
        s.id,
        s.canceller,
        Box::new(move || {
            rec.in_flight.fetch_sub(1, Ordering::Relaxed);
            done();
        }),
        s.group,
    );
    let job = prepare(t, r, slot.clone(), caps, ctx, memory);
    (slot, or_hand_over(job, ctx))
}

/// The job of a checked transfer, for an executor that can do `caps` (every
/// submit path — `Engine` and `LocalEngine` — builds it here). `memory`: the source
/// file's whole contents from a body cache (the plan then sends from it).
pub(crate) fn prepare(
    t: Transfer,
    r: &Resolved,
    slot: Arc<Slot>,
    caps: Caps,
    ctx: &Ctx,
    memory: Option<Arc<[u8]>>,
) -> Job {
    let submitted = Instant::now();
    // `splice_only`: no relay start, no staged or cached small body.
    let (caps, small, memory) = match t.splice_only {
        true => (
            Caps {
                relay: false,
                ..caps
            },
            0,
            None,
        ),
        false => (caps, ctx.config.small_threshold, memory),
    };
    let mut r = r.clone();
    let small_body = if let Some(m) = &memory {
        // Known exactly: the buffered strategy sizes its staging to it.
        r.src_avail = Some((m.len() as u64).saturating_sub(r.src_off.unwrap_or(0)));
        SmallBody::Memory
    } else if zero_copy_ok(&t, &r, small) {
        SmallBody::ZeroCopy
    } else {
        SmallBody::Staged
    };
    let r = &r;
    let mut plan = Plan::new(r, t.header, t.trailer, caps, (small_body, small));
    if let Some(sealer) = t.seal {
        plan.seal_with(sealer, r.src_kind);
    }
    let mut job = Job::new(
        slot.id,
        r.kind,
        (r.src_kind, r.dst_kind),
        plan,
        (t.src, t.dst),
        t.timeout.map(|d| submitted + d),
        submitted,
        slot,
    );
    job.idle = t.idle;
    job.memory = memory;
    job.half_close = t.half_close;
    job.small = r.src_kind == FdKind::File
        && match (r.len, r.src_avail) {
            (Some(l), a) => l.min(a.unwrap_or(l)) <= small,
            (None, a) => a.is_some_and(|a| a <= small),
        };
    job
}

/// Runs the inline attempt where it applies: `None` when the job is complete (its
/// handle woken), else the job for the backend, its streams made non-blocking.
pub(crate) fn or_hand_over(mut job: Job, ctx: &Ctx) -> Option<Job> {
    let rec = &ctx.recorder;
    if eligible(&job) {
        if attempt(&mut job, &ctx.pool) {
            rec.inline_done.fetch_add(1, Ordering::Relaxed);
            job.finish(rec);
            return None;
        }
        rec.inline_handoff.fetch_add(1, Ordering::Relaxed);
    }
    job.own_streams();
    Some(job)
}

/// Whether a small file body may go out zero-copy from the caller's thread.
pub(crate) fn zero_copy_ok(t: &Transfer, r: &Resolved, small: u64) -> bool {
    let body = match (r.len, r.src_avail) {
        (Some(l), Some(a)) => l.min(a),
        (Some(l), None) => l,
        (None, Some(a)) => a,
        (None, None) => return false,
    };
    r.src_kind == FdKind::File
        && r.dst_kind == FdKind::Socket
        && !t.header.is_empty()
        && body <= small
        && r.dst_nonblocking.unwrap_or_else(|| {
            sys::get_fl(t.dst.as_fd()).is_ok_and(|fl| fl & libc::O_NONBLOCK != 0)
        })
        && sys::all_cached(t.src.as_fd(), r.src_off.unwrap_or(0), body)
}

/// Whether `job` is one the inline attempt may run: a small file body into a socket,
/// buffered or zero-copy.
pub(crate) fn eligible(job: &Job) -> bool {
    job.dst_kind == FdKind::Socket
        && job.small
        && matches!(
            job.plan.strategy(),
            Strategy::Buffered | Strategy::Sendfile | Strategy::Memory
        )
}

/// Runs the plan while no step would block; true when the plan has ended (success or
/// failure), false when a backend must continue it.
pub(crate) fn attempt(job: &mut Job, pool: &PipePool) -> bool {
    drive(job, |job, step| match step {
        Step::Read { .. }
        | Step::Send { .. }
        | Step::Header { .. }
        | Step::Sendfile { .. }
        | Step::Gather { .. }
        | Step::Trailer { .. } => match steps::run(job, step, pool, true) {
            // Not cached / socket full: the same step, elsewhere.
            Err(libc::EAGAIN) => Issued::Pending,
            r => Issued::Ran(r),
        },
        _ => Issued::Pending,
    })
}
