//! One listening socket per server thread on the same address (`SO_REUSEPORT`): the
//! kernel spreads new connections over the threads, and no thread waits on another's
//! accept queue.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// `n` listeners bound to `addr`; port 0 picks a free port, shared by all of them.
/// Returns them and the address they really listen on.
pub fn reuseport_listeners(
    addr: SocketAddr,
    n: usize,
) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let mut out = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&bound.into())
            .map_err(|e| io::Error::new(e.kind(), format!("--listen {addr}: {e}")))?;
        s.listen(4096)?;
        if bound.port() == 0 {
            bound = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("listener has no socket address"))?;
        }
        out.push(TcpListener::from(s));
    }
    Ok((out, bound))
}
