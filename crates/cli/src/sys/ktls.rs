//! Kernel TLS on a connected TCP socket: the `tls` upper-layer protocol, then the
//! crypto state of each direction (`SOL_TLS`, `TLS_TX` / `TLS_RX`). The crypto state
//! is the kernel's `struct tls12_crypto_info_*` (a `u16` version, a `u16` cipher, then
//! byte arrays), built by the caller (`tls/ktls.rs`) as bytes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const TCP_ULP: libc::c_int = 31;
const SOL_TLS: libc::c_int = 282;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;

/// Which direction a crypto state is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsDirection {
    /// What the socket sends (`TLS_TX`).
    Tx,
    /// What it receives (`TLS_RX`).
    Rx,
}

fn set(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is valid for reads of its length for the duration of the call;
    // the fd is borrowed and open.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches the `tls` upper-layer protocol (`ENOENT`: the kernel has no TLS module).
pub fn ktls_set_ulp(fd: BorrowedFd<'_>) -> io::Result<()> {
    set(fd, libc::SOL_TCP, TCP_ULP, b"tls")
}

/// Hands one direction's crypto state (`struct tls12_crypto_info_*` as bytes) to the
/// kernel: from then on it seals what is sent, or opens what is received.
pub fn ktls_set_crypto(fd: BorrowedFd<'_>, dir: KtlsDirection, info: &[u8]) -> io::Result<()> {
    let name = match dir {
        KtlsDirection::Tx => TLS_TX,
        KtlsDirection::Rx => TLS_RX,
    };
    set(fd, SOL_TLS, name, info)
}

/// `SOL_TLS` cmsg types: the record type of what is sent, or of what was received.
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
const TLS_GET_RECORD_TYPE: libc::c_int = 2;

/// Room for one cmsg carrying one byte, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgRoom([u8; 32]);

/// Receives from a kernel-TLS socket, non-blocking: the plaintext of (part of) one
/// record into `buf`, and the record's type (23: data, 21: an alert, 22: a handshake
/// message). What `read`/`splice` refuse (`EIO`/`EINVAL`: the next record is not data)
/// arrives here. `WouldBlock` when nothing is queued.
pub fn ktls_recv_record(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(u8, usize)> {
    let mut room = CmsgRoom([0; 32]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = room.0.as_mut_ptr().cast();
    msg.msg_controllen = room.0.len() as _;
    // SAFETY: `msg` points at `iov` (into `buf`) and `room`, all alive and writable
    // for the call; the fd is borrowed and open.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut kind = 23; // no cmsg: application data
                       // SAFETY: `msg` was filled by the kernel; the CMSG_* walk stays within
                       // `msg_control`/`msg_controllen`, and a header's data holds at least one byte
                       // when its length says so.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_TLS
                && (*c).cmsg_type == TLS_GET_RECORD_TYPE
                && (*c).cmsg_len as usize >= libc::CMSG_LEN(1) as usize
            {
                kind = *libc::CMSG_DATA(c);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((kind, n as usize))
}

/// Sends `data` as one record of type `kind` through a kernel-TLS socket (an alert:
/// 21), non-blocking.
pub fn ktls_send_record(fd: BorrowedFd<'_>, kind: u8, data: &[u8]) -> io::Result<usize> {
    let mut room = CmsgRoom([0; 32]);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: zeroed is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = room.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the one header written lies within
    // `room` (32 bytes ≥ CMSG_SPACE(1)), which `msg` points at; the kernel only reads
    // `data` through `iov`.
    let n = unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = SOL_TLS;
        (*c).cmsg_type = TLS_SET_RECORD_TYPE;
        (*c).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(c) = kind;
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
