//! Outgoing connections: a socket address in the kernel's layout, `connect(2)` and the
//! deferred result of a non-blocking connect (`SO_ERROR`).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::error::from_ret;

/// A `SocketAddr` as `struct sockaddr_in`/`sockaddr_in6`, kept alive (boxed by the ring)
/// while the kernel reads it.
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn new(addr: &SocketAddr) -> RawAddr {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn len(&self) -> libc::socklen_t {
        self.len
    }
}

/// `connect(fd, addr)`; on a non-blocking socket `Err(EINPROGRESS)` means "wait until
/// writable, then ask [`socket_error`]". `EINTR` also means "in progress".
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: &RawAddr) -> Result<(), i32> {
    // SAFETY: `addr` points at a live sockaddr of `len` bytes; the fd is borrowed.
    let r = unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr(), addr.len()) };
    match from_ret(r as isize) {
        Ok(_) => Ok(()),
        Err(libc::EINTR) => Err(libc::EINPROGRESS),
        Err(e) => Err(e),
    }
}

/// The outcome of a finished non-blocking connect (`SO_ERROR`; 0 is success).
pub(crate) fn socket_error(fd: BorrowedFd<'_>) -> Result<(), i32> {
    match super::socket_option(fd, libc::SO_ERROR)? {
        0 => Ok(()),
        e => Err(e),
    }
}
