//! The PROXY protocol header (HAProxy's `send-proxy`, v1 text and v2 binary) that tells
//! a backend the client's address before the client's bytes.

use std::net::SocketAddr;

/// Which PROXY protocol header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    V1,
    V2,
}

/// v2's fixed signature.
const SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a connection from `src` (the client) to `dst` (the address the client
/// connected to).
pub fn header(version: Version, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V6(d)) => match d.ip().to_ipv4_mapped() {
            Some(ip) => (SocketAddr::V4(s), SocketAddr::from((ip, d.port()))),
            None => (
                SocketAddr::from((s.ip().to_ipv6_mapped(), s.port())),
                SocketAddr::V6(d),
            ),
        },
        (SocketAddr::V6(s), SocketAddr::V4(d)) => (
            SocketAddr::V6(s),
            SocketAddr::from((d.ip().to_ipv6_mapped(), d.port())),
        ),
        other => other,
    };
    match version {
        Version::V1 => {
            let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut h = SIG.to_vec();
            h.push(0x21); // version 2, PROXY command
            let mut addrs = Vec::new();
            match (src, dst) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    h.push(0x11); // AF_INET, STREAM
                    addrs.extend_from_slice(&s.ip().octets());
                    addrs.extend_from_slice(&d.ip().octets());
                }
                (s, d) => {
                    h.push(0x21); // AF_INET6, STREAM
                    let v6 = |a: SocketAddr| match a {
                        SocketAddr::V6(a) => a.ip().octets(),
                        SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
                    };
                    addrs.extend_from_slice(&v6(s));
                    addrs.extend_from_slice(&v6(d));
                }
            }
            addrs.extend_from_slice(&src.port().to_be_bytes());
            addrs.extend_from_slice(&dst.port().to_be_bytes());
            h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
            h.extend_from_slice(&addrs);
            h
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_follow_the_spec() {
        let src: SocketAddr = "192.0.2.1:56324".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:443".parse().unwrap();
        assert_eq!(
            header(Version::V1, src, dst),
            b"PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n"
        );
        let v2 = header(Version::V2, src, dst);
        assert_eq!(&v2[..12], &SIG);
        assert_eq!(v2[12], 0x21);
        assert_eq!(v2[13], 0x11);
        assert_eq!(u16::from_be_bytes([v2[14], v2[15]]), 12);
        assert_eq!(&v2[16..20], &[192, 0, 2, 1]);
        assert_eq!(&v2[20..24], &[127, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([v2[24], v2[25]]), 56324);
        assert_eq!(u16::from_be_bytes([v2[26], v2[27]]), 443);
        let six: SocketAddr = "[2001:db8::1]:1000".parse().unwrap();
        let h = String::from_utf8(header(Version::V1, six, "[::1]:80".parse().unwrap())).unwrap();
        assert_eq!(h, "PROXY TCP6 2001:db8::1 ::1 1000 80\r\n");
        assert_eq!(
            header(Version::V2, six, "[::1]:80".parse().unwrap()).len(),
            16 + 36
        );
    }
}
