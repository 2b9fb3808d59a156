//! Unit tests of the plan alone: a scripted "kernel" answers each step.

use super::*;
use crate::transfer::TransferKind;

fn resolved(src: FdKind, dst: FdKind, len: Option<u64>, avail: Option<u64>) -> Resolved {
    Resolved {
        kind: TransferKind::StreamOther,
        src_kind: src,
        dst_kind: dst,
        src_off: (src == FdKind::File).then_some(100),
        dst_off: (dst == FdKind::File).then_some(0),
        len,
        src_avail: avail,
        src_nonblocking: true,
        dst_nonblocking: Some(true),
    }
}

// The splice path of streams is tested with relay off; `relay_*` tests turn it on.
const URING: Caps = Caps {
    relay: false,
    ..Caps::RING
};
const SYSCALLS: Caps = Caps {
    relay: false,
    ..Caps::SYSCALLS
};

fn plan(r: Resolved, header: &[u8], trailer: &[u8], caps: Caps) -> Plan {
    plan_of(r, header, trailer, caps, SmallBody::Staged)
}

fn plan_of(r: Resolved, header: &[u8], trailer: &[u8], caps: Caps, body: SmallBody) -> Plan {
    Plan::new(
        &r,
        header.to_vec(),
        trailer.to_vec(),
        caps,
        (body, 64 * 1024),
    )
}

/// A fake kernel: a source of `src_len` bytes (0 = reads end at once), and a
/// destination taking at most `dst_chunk` bytes per write; `answer` may override.
struct Kernel {
    src_left: usize,
    dst_chunk: usize,
    pipe: usize,
    out: usize,
    steps: Vec<Step>,
}

impl Kernel {
    fn new(src_len: usize, dst_chunk: usize) -> Kernel {
        Kernel {
            src_left: src_len,
            dst_chunk,
            pipe: 0,
            out: 0,
            steps: Vec::new(),
        }
    }

    fn answer(&mut self, step: Step) -> Result<usize, i32> {
        self.steps.push(step);
        let read = |k: &mut Kernel, want: usize| {
            let n = want.min(k.src_left);
            k.src_left -= n;
            n
        };
        Ok(match step {
            Step::Header { .. } | Step::Trailer { .. } => self.dst_chunk,
            Step::Send { len, .. } => {
                let n = len.min(self.dst_chunk);
                self.out += n;
                n
            }
            Step::Read { len, .. } => read(self, len),
            Step::Sendfile { len, .. } | Step::CopyRange { len, .. } => {
                let n = read(self, len.min(self.dst_chunk));
                self.out += n;
                n
            }
            Step::Fill { max, .. } => {
                let n = read(self, max.min(1 << 16));
                self.pipe += n;
                n
            }
            Step::Drain { len, .. } => {
                let n = len.min(self.dst_chunk).min(self.pipe);
                self.pipe -= n;
                self.out += n;
                n
            }
            Step::Gather {
                header_from,
                body_len,
                trailer_from,
                ..
            } => {
                let _ = (header_from, trailer_from);
                let n = body_len.min(self.dst_chunk);
                self.out += n;
                self.dst_chunk // clipped by `run` to what the step asked
            }
            Step::Poll(_) => 1,
            Step::Done => 0,
        })
    }

    /// Runs the plan to its end; header/trailer writes are capped by `dst_chunk` and
    /// clipped to what is left by the plan itself.
    fn run(&mut self, p: &mut Plan) -> Option<io::Error> {
        for _ in 0..100_000 {
            let step = p.next();
            if step == Step::Done {
                return p.take_error();
            }
            let r = match (step, self.answer(step)) {
                (Step::Header { from, .. }, Ok(n)) => Ok(n.min(p.header().len() - from)),
                (Step::Trailer { from, .. }, Ok(n)) => Ok(n.min(p.trailer().len() - from)),
                (
                    Step::Gather {
                        header_from,
                        body_len,
                        trailer_from,
                        ..
                    },
                    Ok(n),
                ) => Ok(n.min(
                    p.header().len() - header_from + body_len + p.trailer().len() - trailer_from,
                )),
                (_, r) => r,
            };
            p.complete(step, r);
        }
        panic!(
            "the plan did not end: {:?}",
            &self.steps[self.steps.len() - 5..]
        );
    }
}

#[test]
fn small_file_body_is_one_read_and_one_send_of_header_body_trailer() {
    let mut p = plan(
        resolved(FdKind::File, FdKind::Socket, Some(1000), Some(1000)),
        b"HEAD",
        b"TAIL",
        URING,
    );
    assert_eq!(p.strategy(), Strategy::Buffered);
    let mut k = Kernel::new(1000, usize::MAX);
    assert!(k.run(&mut p).is_none());
    assert_eq!(k.steps.len(), 2, "{:?}", k.steps);
    assert!(matches!(
        k.steps[0],
        Step::Read {
            src_off: Some(100),
            at: 4,
            len: 1000
        }
    ));
    assert!(matches!(
        k.steps[1],
        Step::Send {
            at: 0,
            len: 1008,
            more: false,
            ..
        }
    ));
    assert_eq!(
        (p.header_bytes(), p.body_bytes(), p.trailer_bytes()),
        (4, 1000, 4)
    );
}

#[test]
fn short_reads_and_short_writes_add_up_exactly() {
    for caps in [URING, SYSCALLS] {
        for (size, chunk) in [(1000, 7), (300_000, 4096), (3 << 20, 100_000)] {
            let mut p = plan(
                resolved(FdKind::File, FdKind::Socket, Some(size as u64), None),
                b"HEADER",
                b"TRAILER",
                caps,
            );
            let mut k = Kernel::new(size, chunk);
            assert!(k.run(&mut p).is_none(), "{caps:?} {size}");
            assert_eq!(p.body_bytes(), size as u64);
            assert_eq!(
                k.out,
                size + if p.strategy() == Strategy::Buffered {
                    13
                } else {
                    0
                }
            );
            assert_eq!((p.header_bytes(), p.trailer_bytes()), (6, 7));
            assert_eq!(p.in_pipe(), 0);
        }
    }
}

#[test]
fn len_none_ends_at_a_read_of_zero_not_at_the_size_seen_at_submit() {
    // The file grew from 1000 to 5000 bytes after submit: all 5000 go out.
    for caps in [URING, SYSCALLS] {
        let mut p = plan(
            resolved(FdKind::File, FdKind::Socket, None, Some(1000)),
            b"",
            b"T",
            caps,
        );
        let mut k = Kernel::new(5000, usize::MAX);
        assert!(k.run(&mut p).is_none());
        assert_eq!(p.body_bytes(), 5000, "{caps:?}");
        assert_eq!(p.trailer_bytes(), 1);
    }
    // A /proc-like file (size 0 at submit) is read until EOF.
    let mut p = plan(
        resolved(FdKind::File, FdKind::Pipe, None, Some(0)),
        b"",
        b"",
        URING,
    );
    let mut k = Kernel::new(20_000, usize::MAX);
    assert!(k.run(&mut p).is_none());
    assert_eq!(p.body_bytes(), 20_000);
}

#[test]
fn a_source_ending_before_len_is_unexpected_eof_after_its_bytes_without_trailer() {
    for caps in [URING, SYSCALLS] {
        for (len, have) in [
            (2000u64, 1000usize),
            (70_000, 60_000),
            (5 << 20, 3 << 20),
            (10, 0),
        ] {
            let mut p = plan(
                resolved(FdKind::File, FdKind::Socket, Some(len), Some(have as u64)),
                b"H",
                b"TRAILER",
                caps,
            );
            let mut k = Kernel::new(have, 4096);
            let e = k.run(&mut p).expect("must fail");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{caps:?} {len}");
            assert_eq!(TransferError::of(&e).unwrap().bytes, have as u64);
            assert_eq!(
                p.body_bytes(),
                have as u64,
                "every byte it had was delivered"
            );
            assert_eq!(p.header_bytes(), 1);
            assert_eq!(p.trailer_bytes(), 0, "no trailer after a short body");
        }
    }
}

#[test]
fn len_zero_and_header_trailer_only() {
    for caps in [URING, SYSCALLS] {
        let mut p = plan(
            resolved(FdKind::File, FdKind::Socket, Some(0), Some(50)),
            b"HEAD",
            b"TAIL",
            caps,
        );
        let mut k = Kernel::new(50, 3);
        assert!(k.run(&mut p).is_none());
        assert_eq!(
            (p.header_bytes(), p.body_bytes(), p.trailer_bytes()),
            (4, 0, 4)
        );
        assert!(!k
            .steps
            .iter()
            .any(|s| matches!(s, Step::Read { .. } | Step::Fill { .. })));
    }
    // Nothing at all: done at once.
    let mut p = plan(
        resolved(FdKind::File, FdKind::Socket, Some(0), None),
        b"",
        b"",
        URING,
    );
    assert_eq!(p.next(), Step::Done);
    assert!(p.take_error().is_none());
    // A stream with a header and an empty body.
    let mut p = plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"HI",
        b"",
        URING,
    );
    let mut k = Kernel::new(0, 100);
    assert!(k.run(&mut p).is_none());
    assert_eq!((p.header_bytes(), p.body_bytes()), (2, 0));
}

#[test]
fn eagain_waits_for_the_side_that_was_not_ready_then_repeats_the_step() {
    let mut p = plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"H",
        b"",
        URING,
    );
    let h = p.next();
    assert!(
        matches!(
            h,
            Step::Header {
                from: 0,
                more: false,
                ..
            }
        ),
        "unknown length: no MORE"
    );
    p.complete(h, Err(libc::EAGAIN));
    assert_eq!(p.next(), Step::Poll(Side::Dst));
    p.complete(Step::Poll(Side::Dst), Ok(1));
    assert_eq!(p.next(), h);
    p.complete(h, Ok(1));
    let fill = p.next();
    assert!(matches!(fill, Step::Fill { src_off: None, .. }));
    p.complete(fill, Err(libc::EAGAIN));
    assert_eq!(p.next(), Step::Poll(Side::Src));
    p.complete(Step::Poll(Side::Src), Err(libc::EINTR));
    assert_eq!(p.next(), Step::Poll(Side::Src), "EINTR repeats");
    p.complete(Step::Poll(Side::Src), Ok(1));
    assert_eq!(p.next(), fill);
    p.complete(fill, Ok(10));
    let drain = p.next();
    assert_eq!(
        drain,
        Step::Drain {
            len: 10,
            more: false,
            dst_off: None
        }
    );
    p.complete(drain, Err(libc::EAGAIN));
    assert_eq!(p.next(), Step::Poll(Side::Dst));
    p.complete(Step::Poll(Side::Dst), Ok(1));
    p.complete(drain, Ok(4));
    assert_eq!(
        p.next(),
        Step::Drain {
            len: 6,
            more: false,
            dst_off: None
        }
    );
    assert_eq!(p.in_pipe(), 6);
}

#[test]
fn errors_at_each_step_fail_with_the_errno_and_the_bytes_so_far() {
    // (step index at which the kernel fails, errno)
    for fail_at in 0..5 {
        for caps in [URING, SYSCALLS] {
            let mut p = plan(
                resolved(FdKind::File, FdKind::Socket, Some(3 << 20), None),
                b"H",
                b"T",
                caps,
            );
            let mut k = Kernel::new(3 << 20, 1 << 20);
            let mut i = 0;
            let err = loop {
                let step = p.next();
                if step == Step::Done {
                    break p.take_error();
                }
                let r = if i == fail_at {
                    Err(libc::EIO)
                } else {
                    k.answer(step)
                };
                i += 1;
                let r = match (step, r) {
                    (Step::Header { .. }, Ok(_)) => Ok(1),
                    (Step::Trailer { .. }, Ok(_)) => Ok(1),
                    (_, r) => r,
                };
                p.complete(step, r);
            };
            let e = err.expect("fails");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{caps:?} step {fail_at}");
            assert_eq!(p.body_bytes() as usize, k.out, "bytes so far");
        }
    }
}

#[test]
fn a_reset_destination_socket_is_epipe_on_every_write_step_but_a_reset_source_keeps_its_errno() {
    let mut p = plan(
        resolved(FdKind::File, FdKind::Socket, Some(10), None),
        b"H",
        b"",
        URING,
    );
    step(&mut p, Ok(10)); // the read
    let s = p.next();
    assert!(matches!(s, Step::Send { .. }));
    p.complete(s, Err(libc::ECONNRESET));
    assert_eq!(p.take_error().unwrap().raw_os_error(), Some(libc::EPIPE));
    let mut p = plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"",
        b"",
        URING,
    );
    let s = p.next();
    p.complete(s, Err(libc::ECONNRESET));
    assert_eq!(
        p.take_error().unwrap().raw_os_error(),
        Some(libc::ECONNRESET)
    );
}

#[test]
fn kernel_internal_codes_become_interrupted() {
    let mut p = plan(
        resolved(FdKind::Socket, FdKind::Pipe, None, None),
        b"",
        b"",
        URING,
    );
    let s = p.next();
    p.complete(s, Err(512));
    let e = p.take_error().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::Interrupted);
}

#[test]
fn unsupported_fast_paths_step_down_to_splice_keeping_bytes() {
    // copy_file_range: EXDEV after some bytes → splice continues at the same offsets.
    let mut p = plan(
        resolved(FdKind::File, FdKind::File, Some(3000), None),
        b"",
        b"",
        SYSCALLS,
    );
    assert_eq!(p.strategy(), Strategy::CopyRange);
    let s = p.next();
    p.complete(s, Ok(1000));
    let s = p.next();
    assert!(matches!(
        s,
        Step::CopyRange {
            src_off: 1100,
            dst_off: 1000,
            len: 2000
        }
    ));
    p.complete(s, Err(libc::EXDEV));
    assert_eq!(p.strategy(), Strategy::Splice);
    assert!(matches!(
        p.next(),
        Step::Fill {
            src_off: Some(1100),
            max: 2000
        }
    ));
    // A first copy of 0 below the known end means "unsupported" too.
    let mut p = plan(
        resolved(FdKind::File, FdKind::File, None, Some(10)),
        b"",
        b"",
        SYSCALLS,
    );
    let s = p.next();
    p.complete(s, Ok(0));
    assert_eq!(p.strategy(), Strategy::Splice);
    // sendfile refused before any byte: splice.
    let mut p = plan(
        resolved(FdKind::File, FdKind::Pipe, Some(1 << 20), None),
        b"",
        b"",
        SYSCALLS,
    );
    assert_eq!(p.strategy(), Strategy::Sendfile);
    let s = p.next();
    p.complete(s, Err(libc::EINVAL));
    assert_eq!(p.strategy(), Strategy::Splice);
}

#[test]
fn more_is_set_only_while_bytes_are_known_to_follow() {
    let mut p = plan(
        resolved(FdKind::File, FdKind::Socket, Some(3 << 20), None),
        b"H",
        b"",
        URING,
    );
    assert!(matches!(p.next(), Step::Header { more: true, .. }));
    step(&mut p, Ok(1));
    let fill = p.next();
    p.complete(fill, Ok(1 << 20));
    assert!(matches!(p.next(), Step::Drain { more: true, .. }));
    step(&mut p, Ok(1 << 20));
    step(&mut p, Ok(1 << 20));
    step(&mut p, Ok(1 << 20));
    step(&mut p, Ok(1 << 20));
    assert!(
        matches!(p.next(), Step::Drain { more: false, .. }),
        "the last chunk is not corked"
    );
    assert_eq!(p.linked_drain(5).len_for_test(), 5);
}

#[test]
fn stopping_keeps_counting_bytes_of_ops_still_in_the_kernel_and_ignores_their_errors() {
    let mut p = plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"",
        b"",
        URING,
    );
    let fill = p.next();
    p.complete(fill, Ok(100));
    let drain = p.next();
    p.stop(io::ErrorKind::TimedOut, "transfer timed out");
    p.complete(drain, Ok(40)); // the op finished while being cancelled
    p.complete(drain, Err(libc::ECANCELED));
    assert_eq!(p.next(), Step::Done);
    let e = p.take_error().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert_eq!(TransferError::of(&e).unwrap().bytes, 40);
    assert_eq!(
        p.in_pipe(),
        60,
        "the pipe holds bytes: it must be discarded"
    );
}

#[test]
fn a_blocking_stream_source_is_polled_before_each_fill() {
    let mut r = resolved(FdKind::Socket, FdKind::Socket, None, None);
    r.src_nonblocking = false;
    let mut p = plan(r, b"", b"", URING);
    assert_eq!(p.next(), Step::Poll(Side::Src));
    p.complete(Step::Poll(Side::Src), Ok(1));
    let fill = p.next();
    assert!(matches!(fill, Step::Fill { .. }));
    p.complete(fill, Ok(5));
    step(&mut p, Ok(5));
    assert_eq!(p.next(), Step::Poll(Side::Src));
    p.src_became_nonblocking();
    assert!(
        matches!(p.next(), Step::Fill { .. }),
        "no poll once non-blocking"
    );
}

impl Step {
    fn len_for_test(&self) -> usize {
        match self {
            Step::Drain { len, .. } => *len,
            _ => 0,
        }
    }
}

/// Completes the next step with `r`.
fn step(p: &mut Plan, r: Result<usize, i32>) {
    let s = p.next();
    p.complete(s, r);
}

const RELAY: Caps = Caps::RING;

#[test]
fn relay_sends_each_read_at_once_then_moves_to_splice_once_the_flow_is_bulky() {
    let mut p = plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"",
        b"",
        RELAY,
    );
    assert_eq!(p.strategy(), Strategy::Relay);
    // A small message goes out as soon as it is read, without MSG_MORE.
    let read = p.next();
    assert_eq!(
        read,
        Step::Read {
            src_off: None,
            at: 0,
            len: super::RELAY_BUF
        }
    );
    p.complete(read, Ok(100));
    assert_eq!(
        p.next(),
        Step::Send {
            at: 0,
            len: 100,
            more: false,
            dst_off: None
        }
    );
    step(&mut p, Ok(60)); // a short send: the rest goes next
    assert_eq!(
        p.next(),
        Step::Send {
            at: 60,
            len: 40,
            more: false,
            dst_off: None
        }
    );
    step(&mut p, Ok(40));
    // The read was short, so the source is most likely empty: wait for it first,
    // holding no buffer, then read again.
    assert_eq!(p.next(), Step::Poll(Side::Src));
    assert_eq!(
        p.staging.buf.capacity(),
        0,
        "an idle relay keeps its buffer"
    );
    step(&mut p, Ok(1));
    assert!(matches!(
        p.next(),
        Step::Read {
            len: super::RELAY_BUF,
            ..
        }
    ));
    assert_eq!(p.staging.buf.len(), super::RELAY_BUF);
    // Three reads in a row that fill the buffer: the flow is bulky, splice from now on.
    for _ in 0..super::RELAY_SWITCH {
        assert!(matches!(p.next(), Step::Read { .. }));
        step(&mut p, Ok(super::RELAY_BUF));
        step(&mut p, Ok(super::RELAY_BUF));
    }
    assert!(matches!(p.next(), Step::Fill { .. }), "{:?}", p.next());
    assert_eq!(p.strategy(), Strategy::Splice);
    assert_eq!(p.body_bytes(), 100 + 3 * super::RELAY_BUF as u64);
}

#[test]
fn relay_counts_every_byte_to_the_end_with_short_writes() {
    for (src, chunk) in [(0, 1000), (1, 1), (100_000, 7000), (3 << 20, 1 << 20)] {
        let mut p = plan(
            resolved(FdKind::Socket, FdKind::Socket, None, None),
            b"",
            b"",
            RELAY,
        );
        let mut k = Kernel::new(src, chunk);
        assert!(k.run(&mut p).is_none(), "{src}");
        assert_eq!((k.out, p.body_bytes()), (src, src as u64), "{src}");
        assert_eq!(k.pipe, 0);
        let splices = k.steps.iter().any(|s| matches!(s, Step::Fill { .. }));
        assert_eq!(
            splices,
            src >= 3 * super::RELAY_BUF,
            "{src}: splice only for bulky flows"
        );
    }
    // A header or trailer keeps the splice path (relay carries body bytes only).
    let p = plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"h",
        b"",
        RELAY,
    );
    assert_eq!(p.strategy(), Strategy::Splice);
}

/// A plan whose body comes from memory.
fn memory_plan(r: Resolved, header: &[u8], trailer: &[u8]) -> Plan {
    plan_of(r, header, trailer, Caps::RING, SmallBody::Memory)
}

#[test]
fn a_body_in_memory_is_one_gather_send_continued_after_short_writes() {
    let mut p = memory_plan(
        resolved(FdKind::File, FdKind::Socket, Some(1000), Some(1000)),
        b"HEAD",
        b"TAIL",
    );
    assert_eq!(p.strategy(), Strategy::Memory);
    let mut k = Kernel::new(0, usize::MAX);
    assert!(k.run(&mut p).is_none());
    assert_eq!(k.steps.len(), 1, "{:?}", k.steps);
    assert_eq!(
        k.steps[0],
        Step::Gather {
            header_from: 0,
            body_off: 100,
            body_len: 1000,
            trailer_from: 0
        }
    );
    assert_eq!(
        (p.header_bytes(), p.body_bytes(), p.trailer_bytes()),
        (4, 1000, 4)
    );
    // Writes of 3 bytes: every byte once, in order, the offsets advancing.
    let mut p = memory_plan(
        resolved(FdKind::File, FdKind::Socket, None, Some(50)),
        b"HEAD",
        b"TAIL",
    );
    let mut k = Kernel::new(0, 3);
    assert!(k.run(&mut p).is_none());
    assert_eq!(
        (p.header_bytes(), p.body_bytes(), p.trailer_bytes()),
        (4, 50, 4)
    );
    assert_eq!(k.steps.len(), 58usize.div_ceil(3));
    assert_eq!(
        k.steps[2],
        Step::Gather {
            header_from: 4,
            body_off: 102,
            body_len: 48,
            trailer_from: 0
        }
    );
    assert_eq!(p.short_writes(), 19);
}

#[test]
fn a_body_in_memory_shorter_than_len_fails_after_it_without_the_trailer() {
    let mut p = memory_plan(
        resolved(FdKind::File, FdKind::Socket, Some(1000), Some(600)),
        b"HEAD",
        b"TAIL",
    );
    let mut k = Kernel::new(0, usize::MAX);
    let e = k.run(&mut p).expect("short source");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        (p.header_bytes(), p.body_bytes(), p.trailer_bytes()),
        (4, 600, 0)
    );
    assert!(matches!(
        k.steps[0],
        Step::Gather {
            body_len: 600,
            trailer_from: 4,
            ..
        }
    ));
}

#[test]
fn a_body_in_memory_waits_on_eagain_and_fails_with_epipe_on_a_reset() {
    let mut p = memory_plan(
        resolved(FdKind::File, FdKind::Socket, Some(10), Some(10)),
        b"H",
        b"",
    );
    let step = p.next();
    p.complete(step, Err(libc::EAGAIN));
    assert_eq!(p.next(), Step::Poll(Side::Dst));
    p.complete(Step::Poll(Side::Dst), Ok(1));
    let step = p.next();
    assert_eq!(
        step,
        Step::Gather {
            header_from: 0,
            body_off: 100,
            body_len: 10,
            trailer_from: 0
        }
    );
    p.complete(step, Err(libc::ECONNRESET));
    assert_eq!(p.next(), Step::Done);
    assert_eq!(p.take_error().unwrap().raw_os_error(), Some(libc::EPIPE));
}

/// A toy record layer for the sealed strategy: `[len u16][plain ^ 0x5a]` per call.
struct Toy {
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail_at: Option<usize>,
}

impl crate::Seal for Toy {
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.fail_at == Some(n) {
            return Err(io::Error::other("sealer refused"));
        }
        assert!(!plain.is_empty() && plain.len() <= crate::SEAL_CHUNK);
        out.extend_from_slice(&(plain.len() as u16).to_be_bytes());
        out.extend(plain.iter().map(|b| b ^ 0x5a));
        Ok(())
    }
}

fn unseal(mut wire: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let (mut plain, mut records) = (Vec::new(), Vec::new());
    while wire.len() >= 2 {
        let n = u16::from_be_bytes([wire[0], wire[1]]) as usize;
        plain.extend(wire[2..2 + n].iter().map(|b| b ^ 0x5a));
        records.push(n);
        wire = &wire[2 + n..];
    }
    assert!(wire.is_empty(), "a torn record");
    (plain, records)
}

/// Runs a sealed plan against real bytes: reads copy from `src` (at most `read_chunk`
/// per read, `EAGAIN` every other read of a stream), sends take at most `send_chunk`.
fn run_sealed(
    p: &mut Plan,
    src: &[u8],
    read_chunk: usize,
    send_chunk: usize,
    stream: bool,
) -> (Vec<u8>, Option<io::Error>) {
    let (mut at_src, mut wire, mut flip) = (0usize, Vec::new(), false);
    for _ in 0..100_000 {
        let step = p.next();
        let r = match step {
            Step::Done => return (wire, p.take_error()),
            Step::Read { at, len, src_off } => {
                assert_eq!(src_off.is_none(), stream);
                flip = !flip;
                if stream && flip && at_src < src.len() {
                    Err(libc::EAGAIN)
                } else {
                    let n = len.min(read_chunk).min(src.len() - at_src);
                    p.staging_mut()[at..at + n].copy_from_slice(&src[at_src..at_src + n]);
                    at_src += n;
                    Ok(n)
                }
            }
            Step::Send { at, len, more, .. } => {
                // A stream's next bytes may be long in coming: its records are never
                // corked (MSG_MORE would hold them up to 200 ms in the kernel).
                assert!(
                    !(stream && more),
                    "a sealed stream's send asked for MSG_MORE"
                );
                let n = len.min(send_chunk);
                wire.extend_from_slice(&p.staging()[at..at + n]);
                Ok(n)
            }
            Step::Poll(_) => Ok(1),
            other => panic!("a sealed plan asked for {other:?}"),
        };
        p.complete(step, r);
    }
    panic!("the sealed plan did not end");
}

fn sealed_plan(r: Resolved, header: &[u8], trailer: &[u8], fail_at: Option<usize>) -> Plan {
    let src = r.src_kind;
    let mut p = plan(r, header, trailer, SYSCALLS);
    let calls = Default::default();
    p.seal_with(Box::new(Toy { calls, fail_at }), src);
    p
}

#[test]
fn sealed_file_bodies_arrive_whole_in_full_records_with_header_and_trailer() {
    for (size, send_chunk) in [(0usize, 1 << 20), (1, 7), (5000, 1 << 20), (100_000, 4093)] {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let mut p = sealed_plan(
            resolved(
                FdKind::File,
                FdKind::Socket,
                Some(size as u64),
                Some(size as u64),
            ),
            b"HEADER",
            b"TRAILER",
            None,
        );
        assert_eq!(p.strategy(), Strategy::Sealed);
        let (wire, err) = run_sealed(&mut p, &body, 3000, send_chunk, false);
        assert!(err.is_none(), "{size}: {err:?}");
        let (plain, records) = unseal(&wire);
        let want = [&b"HEADER"[..], &body, b"TRAILER"].concat();
        assert_eq!(plain, want, "{size}");
        // Every record but the last is full: the header rides with the first body bytes.
        let full = records.len() - 1;
        assert!(
            records[..full].iter().all(|&n| n == crate::SEAL_CHUNK),
            "{size}: {records:?}"
        );
        assert_eq!(
            records.len(),
            want.len().div_ceil(crate::SEAL_CHUNK),
            "{size}"
        );
        assert_eq!(
            (p.header_bytes(), p.body_bytes(), p.trailer_bytes()),
            (6, size as u64, 7),
            "{size}"
        );
    }
}

#[test]
fn a_sealed_stream_is_sealed_as_it_arrives() {
    let body: Vec<u8> = (0..50_000).map(|i| (i % 251) as u8).collect();
    let mut p = sealed_plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"",
        b"",
        None,
    );
    let (wire, err) = run_sealed(&mut p, &body, 1000, 1 << 20, true);
    assert!(err.is_none(), "{err:?}");
    let (plain, records) = unseal(&wire);
    assert_eq!(plain, body);
    // No waiting for a full record: each read is sealed at once.
    assert!(records.iter().all(|&n| n <= 1000), "{records:?}");
    assert_eq!(p.body_bytes(), 50_000);
}

#[test]
fn a_sealed_body_short_of_len_fails_after_it_without_the_trailer() {
    let body = vec![9u8; 20_000];
    let mut p = sealed_plan(
        resolved(FdKind::File, FdKind::Socket, Some(30_000), Some(30_000)),
        b"H",
        b"TAIL",
        None,
    );
    let (wire, err) = run_sealed(&mut p, &body, 1 << 20, 1 << 20, false);
    assert_eq!(err.expect("short").kind(), io::ErrorKind::UnexpectedEof);
    let (plain, _) = unseal(&wire);
    assert_eq!(
        plain,
        [&b"H"[..], &body].concat(),
        "every byte read, no trailer"
    );
    assert_eq!(p.body_bytes(), 20_000);
}

#[test]
fn a_sealer_error_fails_the_transfer_with_it_after_the_batches_before() {
    // A file body is sealed four records to a batch; the sixth record fails: the first
    // batch went out whole, nothing of the second (its first record sealed, unsent).
    let body = vec![1u8; 100_000];
    let mut p = sealed_plan(
        resolved(FdKind::File, FdKind::Socket, Some(100_000), Some(100_000)),
        b"",
        b"",
        Some(5),
    );
    let (wire, err) = run_sealed(&mut p, &body, 1 << 20, 1 << 20, false);
    let e = err.expect("sealer error");
    assert!(e.to_string().contains("sealer refused"), "{e}");
    let (plain, records) = unseal(&wire);
    let batch = 4 * crate::SEAL_CHUNK;
    assert_eq!((plain.len(), records.len()), (batch, 4));
    assert_eq!(p.body_bytes(), batch as u64);
}

#[test]
fn a_sealed_stream_reads_bigger_batches_once_a_read_fills_its_buffer() {
    let mut p = sealed_plan(
        resolved(FdKind::Socket, FdKind::Socket, None, None),
        b"",
        b"",
        None,
    );
    let mut reads = Vec::new();
    // Three reads, each filling what was asked; sends take everything.
    while reads.len() < 3 {
        let step = p.next();
        let r = match step {
            Step::Read { len, .. } => {
                reads.push(len);
                Ok(len)
            }
            Step::Send { len, .. } => Ok(len),
            Step::Poll(_) => Ok(1),
            other => panic!("{other:?}"),
        };
        p.complete(step, r);
    }
    // A record's worth first (most answers are small), then a batch of four.
    let chunk = crate::SEAL_CHUNK;
    assert_eq!(reads, [chunk, 4 * chunk, 4 * chunk]);
}
