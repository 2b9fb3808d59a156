//! Addresses as operators write them, for `--listen` and `--backend`.
//!
//! | written | means |
//! |---|---|
//! | `8080`, `:8080` | every IPv4 address, port 8080 (nginx's `listen 8080`) |
//! | `127.0.0.1:8080`, `[::1]:8080`, `[::]:8080` | that address |
//! | `localhost:8080`, `origin.internal:443` | the name resolved at start (`getaddrinfo`): a listener takes the first address, a backend every one, in order |

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Every address `s` names (at least one), or why not, naming what was written.
pub fn resolve(s: &str) -> Result<Vec<SocketAddr>, String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| format!("{s:?}: the port must be 0 to 65535"))?;
        return Ok(vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))]);
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "{s:?}: expected PORT, :PORT, IP:PORT, [IPv6]:PORT or NAME:PORT"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: {port:?} is not a port (0 to 65535)"))?;
    if host.is_empty() || host.contains(':') {
        return Err(format!(
            "{s:?}: expected PORT, :PORT, IP:PORT, [IPv6]:PORT or NAME:PORT (an IPv6 address goes in brackets)"
        ));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{s:?}: {host} does not resolve ({e})"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{s:?}: {host} resolves to no address"));
    }
    Ok(addrs)
}

/// A `--listen` value: the first address it names.
pub fn listen(s: &str) -> Result<SocketAddr, String> {
    resolve(s).map(|v| v[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_operators_write() {
        let any = |p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, p));
        assert_eq!(listen("8080"), Ok(any(8080)));
        assert_eq!(listen(":8080"), Ok(any(8080)));
        assert_eq!(
            listen("127.0.0.1:8080"),
            Ok("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(listen("[::]:8080"), Ok("[::]:8080".parse().unwrap()));
        assert_eq!(listen("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        let local = resolve("localhost:8080").unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{local:?}"
        );
    }

    #[test]
    fn bad_ones_say_what_is_wrong() {
        for (s, says) in [
            ("70000", "0 to 65535"),
            ("host:http", "not a port"),
            ("::1:80", "brackets"),
            ("nope.invalid:80", "does not resolve"),
            ("", "expected PORT"),
            ("localhost", "expected PORT"),
        ] {
            let e = resolve(s).unwrap_err();
            assert!(
                e.contains(says) && e.contains(&format!("{s:?}")),
                "{s}: {e}"
            );
        }
    }
}
