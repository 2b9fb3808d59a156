//! Transfers into a TLS connection sealed in user space (`Transfer::seal`) by rustls,
//! read by a rustls client over loopback: header, body and trailer arrive byte for byte
//! and decrypt, on `Engine` and on both `LocalEngine` executors, from a file and from
//! a socket.
#![cfg(target_os = "linux")]

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;
use ferry_engine::{Engine, LocalEngine, Seal, Transfer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// A self-signed certificate for `localhost`, made now, and both sides' configs.
fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    // ring: a light build for a test peer (no post-quantum key exchange, not needed here).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// The server side's rustls connection as a `Seal`: plaintext in, records out.
struct RustlsSeal(Arc<Mutex<ServerConnection>>);

impl Seal for RustlsSeal {
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut c = self.0.lock().unwrap();
        c.writer().write_all(plain)?;
        while c.wants_write() {
            c.write_tls(out)?;
        }
        Ok(())
    }
}

/// A handshaken TLS connection over loopback: the server's socket and rustls state,
/// and the client's stream (read on another thread by the caller).
fn tls_pair(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
) -> (
    Arc<TcpStream>,
    Arc<Mutex<ServerConnection>>,
    rustls::StreamOwned<ClientConnection, TcpStream>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let client = client.clone();
    let c = std::thread::spawn(move || {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(client, name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        s
    });
    let (mut sock, _) = l.accept().unwrap();
    let mut conn = ServerConnection::new(server.clone()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock).unwrap(); // the session tickets
    }
    let client = c.join().unwrap();
    (Arc::new(sock), Arc::new(Mutex::new(conn)), client)
}

/// Reads `n` plaintext bytes on a thread.
fn read_plain(
    mut s: rustls::StreamOwned<ClientConnection, TcpStream>,
    n: usize,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut got = vec![0u8; n];
        s.read_exact(&mut got).unwrap();
        got
    })
}

enum Runner {
    Engine(Engine),
    Local(LocalEngine),
}

impl Runner {
    fn run(&mut self, t: Transfer) -> u64 {
        match self {
            Runner::Engine(e) => e.submit(t).unwrap().wait().unwrap().bytes,
            Runner::Local(r) => {
                let h = r.submit(t).unwrap();
                r.wait(h).unwrap().bytes
            }
        }
    }
}

fn runners() -> Vec<(String, Runner)> {
    let mut v = vec![("Engine".to_string(), Runner::Engine(engine()))];
    for b in local_backends() {
        v.push((format!("LocalEngine {b:?}"), Runner::Local(local_ring(b))));
    }
    v
}

#[test]
fn a_file_body_sealed_by_rustls_arrives_byte_for_byte() {
    let (server, client) = configs();
    for (name, mut runner) in runners() {
        for size in [0usize, 1, 16_383, 16_384, 100_000, 3 << 20] {
            let body = pattern(size, size as u32);
            let file = Arc::new(file_with(&body));
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
            let tail = b"\r\n-- end --\r\n".to_vec();
            let (sock, tls, client) = tls_pair(&server, &client);
            let want = [head.as_slice(), &body, &tail].concat();
            let reader = read_plain(client, want.len());
            let t = Transfer::new(file, sock)
                .src_offset(Some(0))
                .header(head)
                .trailer(tail)
                .seal(RustlsSeal(tls));
            assert_eq!(runner.run(t), size as u64, "{name} {size}");
            let got = reader.join().unwrap();
            assert!(got == want, "{name} {size}: the plaintext differs");
        }
    }
}

#[test]
fn a_socket_stream_sealed_by_rustls_arrives_byte_for_byte() {
    let (server, client) = configs();
    for (name, mut runner) in runners() {
        let body = pattern(1 << 20, 7);
        let (src, mut feeder) = tcp_pair();
        let (sock, tls, client) = tls_pair(&server, &client);
        let reader = read_plain(client, body.len());
        let b = body.clone();
        let w = std::thread::spawn(move || {
            for chunk in b.chunks(7000) {
                feeder.write_all(chunk).unwrap();
            }
            // EOF ends the transfer
        });
        let t = Transfer::new(Arc::new(src), sock).seal(RustlsSeal(tls));
        assert_eq!(runner.run(t), body.len() as u64, "{name}");
        w.join().unwrap();
        assert!(
            reader.join().unwrap() == body,
            "{name}: the plaintext differs"
        );
    }
}

#[test]
fn a_sealed_transfer_into_a_file_is_refused_naming_seal() {
    let (server, _client) = configs();
    let e = engine();
    let conn = Arc::new(Mutex::new(ServerConnection::new(server).unwrap()));
    let src = Arc::new(file_with(b"x"));
    let dst = Arc::new(tempfile::tempfile().unwrap());
    let err = e
        .submit(Transfer::new(src, dst).seal(RustlsSeal(conn)))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("seal"), "{err}");
}
