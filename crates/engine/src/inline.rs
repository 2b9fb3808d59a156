//! The inline attempt: a small file body into a socket is sent from the submitting
//! thread, running the job's plan with calls that cannot block (`preadv2(RWF_NOWAIT)`
//! reads only what is in the page cache, `send(MSG_DONTWAIT|MSG_NOSIGNAL)`), until it
//! is done or a step would have to wait. Then the same plan, in the same state, goes
//! to a backend. This removes the two thread hand-offs that otherwise dominate small
//! responses (docs/engine.md has the numbers), without ever blocking the caller: a
//! body not in the page cache or a full socket buffer is the backend's to wait for.

use ferry_pipes::PipePool;

use crate::backend::steps;
use crate::job::Job;
use crate::plan::{Step, Strategy};
use crate::resolve::FdKind;

/// Whether `job` is one the inline attempt may run (buffered file body → socket).
pub(crate) fn eligible(job: &Job) -> bool {
    job.plan.strategy() == Strategy::Buffered && job.dst_kind == FdKind::Socket
}

/// Runs the plan while no step would block; true when the plan has ended (success or
/// failure), false when a backend must continue it.
pub(crate) fn attempt(job: &mut Job, pool: &PipePool) -> bool {
    job.start();
    loop {
        let step = job.plan.next();
        match step {
            Step::Done => return true,
            Step::Read { .. } | Step::Send { .. } => {
                let r = steps::run(job, step, pool, true);
                if r == Err(libc::EAGAIN) {
                    return false; // not cached / socket full: the same step, elsewhere
                }
                job.plan.complete(step, r);
            }
            _ => return false,
        }
    }
}
