//! Setting up a ring: the best flags this kernel takes, the opcodes we need, the
//! io-wq worker cap.
//!
//! Flags, best first, stepping down on `EINVAL`: `SINGLE_ISSUER | DEFER_TASKRUN |
//! TASKRUN_FLAG | SUBMIT_ALL` (6.1), then `COOP_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL`
//! (5.19), then none. Opcodes (probed): `SPLICE` (5.7), `READ`/`WRITE` (5.6),
//! `SEND`, `POLL_ADD`, `ASYNC_CANCEL` (5.5–5.6). `register_iowq_max_workers` (5.15)
//! is best effort: older kernels keep the default worker limit.

use std::io;

use io_uring::{opcode, IoUring, Probe};

/// A ring with `entries` SQ entries and 4× as many CQ entries.
pub(crate) fn new_ring(entries: u32, iowq_max_workers: u32) -> io::Result<IoUring> {
    let ring = setup(entries)?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::Splice::CODE, "SPLICE"),
        (opcode::Read::CODE, "READ"),
        (opcode::Write::CODE, "WRITE"),
        (opcode::Send::CODE, "SEND"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks IORING_OP_{name}"),
            ));
        }
    }
    // Every SPLICE runs on an io-wq worker: cap them (kernels < 5.15 lack this).
    let w = iowq_max_workers;
    let _ = ring.submitter().register_iowq_max_workers(&mut [w, w]);
    Ok(ring)
}

fn setup(entries: u32) -> io::Result<IoUring> {
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag()
                .setup_submit_all();
        },
        |b| {
            b.setup_coop_taskrun()
                .setup_taskrun_flag()
                .setup_submit_all();
        },
        |_| {},
    ];
    let mut last = None;
    for f in attempts {
        let mut b = IoUring::builder();
        b.setup_cqsize(entries * 4).setup_clamp();
        f(&mut b);
        match b.build(entries) {
            Ok(r) => return Ok(r),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
}
