//! AF_ALG's `sendmsg` with `SOL_ALG` control messages (Linux), and the refusal
//! elsewhere: the kernel half of `crate::afalg`.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::io::{self, IoSlice};
    use std::os::fd::{AsRawFd, BorrowedFd};

    use crate::flags::AlgOp;
    use crate::util::{cvt_r, invalid};

    pub(crate) fn available() -> bool {
        // SAFETY: socket() has no memory arguments; a returned fd is closed at once.
        let fd =
            unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        if fd >= 0 {
            // SAFETY: we own `fd`, just created.
            unsafe { libc::close(fd) };
        }
        fd >= 0
    }

    fn domain(sock: BorrowedFd<'_>) -> io::Result<libc::c_int> {
        crate::sys::common::getsockopt_int(sock, libc::SO_DOMAIN)
    }

    /// Appends one control message (header + payload, padded) to `buf`.
    fn push_cmsg(buf: &mut Vec<u8>, ty: libc::c_int, payload: &[u8]) {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(payload.len() as u32) as usize,
                libc::CMSG_LEN(payload.len() as u32) as usize,
            )
        };
        let hdr = libc::cmsghdr {
            cmsg_len: len as _,
            cmsg_level: libc::SOL_ALG,
            cmsg_type: ty,
        };
        let start = buf.len();
        buf.resize(start + space, 0);
        // SAFETY: `buf[start..]` has `space` bytes, more than a cmsghdr; cmsghdr is plain data and
        // write_unaligned needs no alignment.
        unsafe { std::ptr::write_unaligned(buf[start..].as_mut_ptr().cast(), hdr) };
        // CMSG_DATA follows the header, aligned, which CMSG_LEN accounts for.
        let data = start + (len - payload.len());
        buf[data..data + payload.len()].copy_from_slice(payload);
    }

    pub(crate) fn sendmsg_afalg(
        sock: BorrowedFd<'_>,
        msg: &[IoSlice<'_>],
        op: AlgOp,
        iv: Option<&[u8]>,
        assoclen: Option<u32>,
        flags: i32,
    ) -> io::Result<usize> {
        match domain(sock) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
                return Err(invalid("sock", "is not a socket"))
            }
            Err(e) => return Err(e),
            Ok(libc::AF_ALG) => {}
            Ok(d) if !available() => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("sock: not an AF_ALG socket (domain {d}), and this kernel has no AF_ALG (socket(AF_ALG) fails)"),
                ))
            }
            Ok(d) => return Err(invalid("sock", &format!("not an AF_ALG socket (domain {d})"))),
        }
        let mut control = Vec::with_capacity(64);
        push_cmsg(&mut control, libc::ALG_SET_OP, &op.as_raw().to_ne_bytes());
        if let Some(iv) = iv {
            let mut payload = (iv.len() as u32).to_ne_bytes().to_vec(); // af_alg_iv.ivlen
            payload.extend_from_slice(iv);
            push_cmsg(&mut control, libc::ALG_SET_IV, &payload);
        }
        if let Some(n) = assoclen {
            push_cmsg(&mut control, libc::ALG_SET_AEAD_ASSOCLEN, &n.to_ne_bytes());
        }
        // The kernel reads cmsghdrs at size_t alignment: copy into u64-aligned storage.
        let mut aligned = vec![0u64; control.len().div_ceil(8)];
        // SAFETY: `aligned` has at least `control.len()` bytes; u8 has no alignment.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), control.len())
        };
        bytes.copy_from_slice(&control);
        // SAFETY: an all-zero msghdr is valid.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = msg.as_ptr() as *mut libc::iovec; // IoSlice is ABI-compatible with iovec
        m.msg_iovlen = msg.len() as _;
        m.msg_control = aligned.as_mut_ptr().cast();
        m.msg_controllen = control.len() as _;
        // SAFETY: `m` points at `msg`'s iovecs and at `aligned`, both alive for the call.
        cvt_r(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &m, flags) }).map(|n| n as usize)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::io::{self, IoSlice};
    use std::os::fd::BorrowedFd;

    use crate::flags::AlgOp;

    pub(crate) fn available() -> bool {
        false
    }

    pub(crate) fn sendmsg_afalg(
        _sock: BorrowedFd<'_>,
        _msg: &[IoSlice<'_>],
        _op: AlgOp,
        _iv: Option<&[u8]>,
        _assoclen: Option<u32>,
        _flags: i32,
    ) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "AF_ALG exists only on Linux",
        ))
    }
}

pub(crate) use imp::{available, sendmsg_afalg};
