//! The step loop, once for every executor: before each step the stop checks (cancel,
//! deadline, idle timeout), then the plan's next step, carried out by the executor's
//! `issue`, then its result back to the plan — until the plan is done or a step is left
//! waiting. An executor supplies only how a step is issued and, for a step it leaves
//! waiting, how its result comes back later (`Plan::complete`, then `drive` again).

use crate::job::Job;
use crate::plan::Step;

/// What became of a step the executor was given.
pub(crate) enum Issued {
    /// It ran now; its result (bytes, or the errno).
    Ran(Result<usize, i32>),
    /// Not ready yet and not waited for: ask the plan again (after the stop checks).
    Again,
    /// In the kernel or in a wait: the executor completes it later and drives again.
    Pending,
}

/// Drives `job`'s plan: true when the plan is done (the caller finishes the job), false
/// when a step is pending.
pub(crate) fn drive(job: &mut Job, mut issue: impl FnMut(&mut Job, Step) -> Issued) -> bool {
    job.start();
    loop {
        job.check_stop_now();
        let step = job.plan.next();
        if step == Step::Done {
            return true;
        }
        match issue(job, step) {
            Issued::Ran(r) => {
                job.plan.complete(step, r);
                job.report_progress();
            }
            Issued::Again => {}
            Issued::Pending => return false,
        }
    }
}
