//! A proxy pointed at itself: `--backend` naming an address one of its own listeners
//! answers would turn one client into connections without end (what it did before:
//! docs/operations.md). Refused at start, as a configuration error.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Socket, Type};

/// Fails (`InvalidInput`, naming both flags) when a connection to a backend would reach
/// the listener at `listen`: the same address, or a wildcard listener (`0.0.0.0`, `[::]`)
/// and a backend at one of this host's addresses on its port. A port-0 listener has no
/// port yet and cannot be checked.
pub fn refuse_self(listen: SocketAddr, backends: &[SocketAddr]) -> io::Result<()> {
    match backends.iter().find(|&&b| reaches(listen, b)) {
        Some(b) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--backend {b} is this proxy's own --listen {listen}: every client would be \
                 proxied to the proxy again, without end"
            ),
        )),
        None => Ok(()),
    }
}

/// Whether a connection to `backend` arrives at a listener bound to `listen`.
fn reaches(listen: SocketAddr, backend: SocketAddr) -> bool {
    if listen.port() == 0 || listen.port() != backend.port() {
        return false;
    }
    let (l, b) = (listen.ip().to_canonical(), backend.ip().to_canonical());
    if b.is_unspecified() {
        // connect() to 0.0.0.0 or :: goes to the loopback address.
        return l.is_unspecified() || l.is_loopback();
    }
    if l.is_unspecified() {
        // `[::]` is dual-stack on Linux (net.ipv6.bindv6only = 0): it takes IPv4 too.
        let family_covered = listen.is_ipv6() || b.is_ipv4();
        return family_covered && is_local(b);
    }
    l == b
}

/// Whether `ip` is an address of this host (a socket can be bound to it).
fn is_local(ip: IpAddr) -> bool {
    let domain = match ip {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    Socket::new(domain, Type::STREAM, None)
        .and_then(|s| s.bind(&SocketAddr::new(ip, 0).into()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_same_address_or_a_wildcard_covering_it_is_refused() {
        for (listen, backend) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.2:8080"),
            ("0.0.0.0:8080", "0.0.0.0:8080"),
            ("127.0.0.1:8080", "0.0.0.0:8080"),
            ("[::]:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("[::1]:8080", "[::1]:8080"),
            ("127.0.0.1:8080", "[::ffff:127.0.0.1]:8080"),
        ] {
            let err = refuse_self(a(listen), &[a("10.9.9.9:1"), a(backend)]).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{listen} {backend}"
            );
            assert!(err.to_string().contains(backend), "{err}");
        }
    }

    #[test]
    fn other_ports_hosts_and_port_zero_pass() {
        for (listen, backend) in [
            ("127.0.0.1:8080", "127.0.0.1:8081"),
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("0.0.0.0:8080", "192.0.2.1:8080"),
            ("0.0.0.0:8080", "[::1]:8080"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            assert!(
                refuse_self(a(listen), &[a(backend)]).is_ok(),
                "{listen} {backend}"
            );
        }
    }
}
