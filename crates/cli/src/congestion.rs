//! `--congestion ALG` of `ferry serve` and `ferry proxy`: the TCP congestion control of
//! the sockets they make (`TCP_CONGESTION` on each listener, which the sockets it accepts
//! inherit, and on each backend socket before it connects), and the machine's default
//! (`net.ipv4.tcp_congestion_control`) that `ferry bench` prints.
//!
//! Why it is there: `bbr` paces every send, in TCP itself (one timer per socket) on a
//! device without a qdisc such as loopback, and timers are dear on a VM: a loopback
//! proxy costs the machine more CPU per response under `bbr` (figures:
//! docs/benchmarks.md, "Congestion control"). Set on the proxy alone, with peers still
//! on `bbr`, it costs more, not less: docs/proxy.md, "Congestion control".

use std::io;
use std::str::FromStr;

use socket2::Socket;

const DEFAULT: &str = "/proc/sys/net/ipv4/tcp_congestion_control";
const AVAILABLE: &str = "/proc/sys/net/ipv4/tcp_available_congestion_control";
const ALLOWED: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";

/// A congestion control algorithm's name (`cubic`, `reno`, `bbr`, …), checked for shape
/// only; whether the kernel has it is known when it is first set on a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Congestion(String);

impl FromStr for Congestion {
    type Err = String;

    fn from_str(s: &str) -> Result<Congestion, String> {
        // TCP_CA_NAME_MAX is 16 bytes with the terminating NUL.
        if s.is_empty() || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{s:?} is not a congestion control name (1-15 printable characters, e.g. cubic)"
            ));
        }
        Ok(Congestion(s.to_string()))
    }
}

impl Congestion {
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Sets it on `socket`; the error names the flag, and for an algorithm the kernel
    /// lacks or forbids, the lists to pick from.
    pub fn apply(&self, socket: &Socket) -> io::Result<()> {
        socket.set_tcp_congestion(self.0.as_bytes()).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ENOENT) => format!(
                    "this kernel has no such algorithm (available: {}; a module may need \
                     loading, e.g. modprobe tcp_{})",
                    read_list(AVAILABLE),
                    self.0
                ),
                Some(libc::EPERM) => format!(
                    "not in net.ipv4.tcp_allowed_congestion_control ({}), the only ones an \
                     unprivileged process may pick",
                    read_list(ALLOWED)
                ),
                _ => e.to_string(),
            };
            io::Error::new(e.kind(), format!("--congestion {}: {why}", self.0))
        })
    }
}

fn read_list(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

/// The machine's default for new TCP sockets, if it can be read.
pub fn system_default() -> Option<String> {
    std::fs::read_to_string(DEFAULT)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether `name` paces every send in TCP itself (on loopback there is no qdisc to do
/// it): the algorithms that ask for pacing.
pub fn paces(name: &str) -> bool {
    name.starts_with("bbr")
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    #[test]
    fn names_are_checked_for_shape() {
        assert!("cubic".parse::<Congestion>().is_ok());
        for bad in ["", "a name", "sixteen-letters!", "tab\t"] {
            let e = bad.parse::<Congestion>().unwrap_err();
            assert!(e.contains("congestion control name"), "{e}");
        }
    }

    #[test]
    fn an_unknown_algorithm_is_refused_with_the_list_to_pick_from() {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let e = "nosuchalgo"
            .parse::<Congestion>()
            .unwrap()
            .apply(&s)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let msg = e.to_string();
        assert!(msg.starts_with("--congestion nosuchalgo: "), "{msg}");
        assert!(msg.contains("reno"), "reno is always built in: {msg}");
    }

    #[test]
    fn a_listener_passes_its_algorithm_to_the_sockets_it_accepts() {
        // Pick one that differs from the machine's default, or the test could not fail.
        let want = if system_default().as_deref() == Some("reno") {
            "cubic"
        } else {
            "reno"
        };
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let alg: Congestion = want.parse().unwrap();
        if let Err(e) = alg.apply(&l) {
            panic!("cannot set {want} on this kernel, so this cannot be tested: {e}");
        }
        l.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(1).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = l.accept().unwrap();
        let name = |v: Vec<u8>| {
            String::from_utf8_lossy(&v)
                .trim_end_matches('\0')
                .to_string()
        };
        assert_eq!(name(accepted.tcp_congestion().unwrap()), want);
        let client = Socket::from(client);
        assert_ne!(name(client.tcp_congestion().unwrap()), want);
    }
}
