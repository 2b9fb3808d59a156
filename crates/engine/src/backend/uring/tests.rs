//! Tests of the io_uring executor's internals: what happens when the ring fails, and
//! the driver's cancel bookkeeping.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_pipes::{PipePool, PoolConfig};

use super::Uring;
use crate::backend::{Config, Ctx, Executor};
use crate::handle::{Slot, TransferHandle};
use crate::job::Job;
use crate::plan::Plan;
use crate::resolve::{resolve, FdCache};
use crate::stats::Recorder;
use crate::transfer::{SharedFd, Transfer};

pub(super) fn ctx() -> Ctx {
    Ctx {
        recorder: Arc::new(Recorder::default()),
        pool: PipePool::new(PoolConfig {
            capacity: 4,
            pipe_size: 1 << 16,
            nonblocking: true,
        })
        .unwrap(),
        config: Config {
            threads: 1,
            max_in_flight: 16,
            small_threshold: 64 * 1024,
            ring_entries: 64,
            iowq_max_workers: 4,
            link_splices: true,
        },
    }
}

pub(super) fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (c, l.accept().unwrap().0)
}

/// A socket → socket job that stays idle (nobody writes to its source).
pub(super) fn idle_job(
    id: u64,
    ctx: &Ctx,
    caps: crate::plan::Caps,
) -> (Job, TransferHandle, SharedFd) {
    let (src, _peer) = tcp_pair();
    let (dst, _peer2) = tcp_pair();
    std::mem::forget((_peer, _peer2)); // keep the connections open for the test
    let src: SharedFd = Arc::new(src);
    let t = Transfer::from_shared(src.clone(), Arc::new(dst));
    let r = resolve(&t, &FdCache::default()).unwrap();
    let small = (crate::plan::SmallBody::Staged, ctx.config.small_threshold);
    let plan = Plan::new(&r, Vec::new(), Vec::new(), caps, small);
    let slot = Slot::new(id, Arc::new(|_| {}), Box::new(|| {}), None);
    let mut job = Job::new(
        id,
        r.kind,
        (r.src_kind, r.dst_kind),
        plan,
        (t.src, t.dst),
        None,
        Instant::now(),
        slot.clone(),
    );
    job.own_streams();
    (job, TransferHandle::new(slot), src)
}

/// Fault 2: when the ring fails, a transfer whose op may still be in the kernel is
/// failed but nothing it owns is freed (the fd stays open, leaked); before, its fds,
/// buffers and pipe were dropped while the kernel could still use them.
#[test]
fn a_failed_ring_fails_the_handles_but_frees_nothing_the_kernel_may_use() {
    let ctx = ctx();
    let mut uring = Uring::start(ctx.clone()).unwrap();
    let (job, handle, src) = idle_job(1, &ctx, uring.caps(crate::TransferKind::SocketToSocket));
    let weak = Arc::downgrade(&src);
    drop(src);
    uring.submit(job);
    std::thread::sleep(Duration::from_millis(50)); // its POLL_ADD is in the kernel
    uring.inject_failure();
    let e = handle
        .wait_timeout(Duration::from_secs(5))
        .expect("the handle completes")
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Other, "{e}");
    assert!(
        weak.upgrade().is_some(),
        "the source fd was freed with an op in flight"
    );
    // New work is refused, not lost.
    let (job, handle, _src) = idle_job(2, &ctx, Default::default());
    uring.submit(job);
    let r = handle
        .wait_timeout(Duration::from_secs(5))
        .expect("completes");
    assert!(r.is_err());
    uring.shutdown();
}
