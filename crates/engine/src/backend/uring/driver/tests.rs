//! The driver's cancel bookkeeping, stepped by hand.

use std::time::Duration;

use super::*;
use crate::backend::uring::tests::{ctx, idle_job};

/// Fault 4: the cancel list names jobs by id, so a job that finished leaves it even
/// if a new job takes its table slot at once; before, the slot's key stayed listed
/// and woke the driver every 100 ms while the new job lived.
#[test]
fn a_cancelled_job_leaves_the_cancel_list_even_when_its_slot_is_reused() {
    let ctx = ctx();
    let (_tx, rx) = crossbeam_channel::unbounded();
    let wake = Arc::new(Wake::new().unwrap());
    let mut d = Driver::new(ctx.clone(), rx, wake).unwrap();
    let (x, hx, _) = idle_job(10, &ctx, Default::default());
    d.start(x);
    let kx = d.by_id[&10];
    d.backlog.flush(&mut d.ring).unwrap();
    d.ring.submit().unwrap();
    d.stop(kx, io::ErrorKind::Interrupted, "transfer cancelled");
    assert_eq!(d.cancelling, vec![10]);
    // Run the ring until the cancelled job is finished.
    let t0 = Instant::now();
    while !hx.is_finished() {
        assert!(t0.elapsed() < Duration::from_secs(5));
        d.backlog.flush(&mut d.ring).unwrap();
        d.ring.submit_and_wait(1).unwrap();
        d.reap();
    }
    // A new job takes the same slot before the driver looks at its cancel list.
    let (y, _hy, _) = idle_job(11, &ctx, Default::default());
    d.start(y);
    assert_eq!(d.by_id[&11], kx, "the slot is reused");
    d.check_deadlines();
    assert!(d.cancelling.is_empty(), "{:?}", d.cancelling);
    let ky = d.by_id[&11];
    d.stop(ky, io::ErrorKind::Interrupted, "done");
    while !d.jobs.is_empty() {
        d.backlog.flush(&mut d.ring).unwrap();
        d.ring.submit_and_wait(1).unwrap();
        d.reap();
    }
}
