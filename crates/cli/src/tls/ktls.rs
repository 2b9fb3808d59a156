//! Kernel TLS for a connection rustls has handshaken: its traffic secrets (and record
//! sequence numbers) go to the socket, which from then on seals what is sent — file
//! bodies by `sendfile`/`splice`, never entering user space — and opens what is
//! received. Whether the kernel can is probed once at start ([`probe`]).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use rustls::{ConnectionTrafficSecrets, ProtocolVersion, ServerConnection};

use crate::sys::{
    ktls_recv_record, ktls_send_record, ktls_set_crypto, ktls_set_ulp, KtlsDirection,
};

const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;

/// Whether this kernel takes the `tls` upper-layer protocol: `Err` says why not
/// (`ENOENT`: no TLS module).
pub fn probe() -> io::Result<()> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let _client = TcpStream::connect(l.local_addr()?)?;
    let (server, _) = l.accept()?;
    ktls_set_ulp(server.as_fd())
}

/// The kernel's `struct tls12_crypto_info_*` for one direction, as bytes.
fn crypto_info(version: u16, seq: u64, secrets: &ConnectionTrafficSecrets) -> io::Result<Vec<u8>> {
    let mut info = Vec::with_capacity(56);
    let (cipher, key, iv): (u16, &[u8], &[u8]) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
            (TLS_CIPHER_AES_GCM_128, key.as_ref(), iv.as_ref())
        }
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            (TLS_CIPHER_AES_GCM_256, key.as_ref(), iv.as_ref())
        }
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (TLS_CIPHER_CHACHA20_POLY1305, key.as_ref(), iv.as_ref())
        }
        _ => return Err(io::Error::other("a cipher kernel TLS does not take")),
    };
    info.extend_from_slice(&version.to_ne_bytes());
    info.extend_from_slice(&cipher.to_ne_bytes());
    if cipher == TLS_CIPHER_CHACHA20_POLY1305 {
        // iv[12], key[32], rec_seq[8]: the whole nonce is the iv, no salt.
        info.extend_from_slice(iv);
        info.extend_from_slice(key);
    } else {
        // iv[8], key, salt[4], rec_seq[8]: the nonce's first 4 bytes are the salt.
        info.extend_from_slice(&iv[4..12]);
        info.extend_from_slice(key);
        info.extend_from_slice(&iv[..4]);
    }
    info.extend_from_slice(&seq.to_be_bytes());
    Ok(info)
}

/// Moves `conn`'s record layer into `sock`'s kernel. `sock` must carry the `tls`
/// upper-layer protocol already ([`attach`]), and every record rustls sealed must
/// have been sent, every record received must have been given to it. On an error the
/// connection can only be closed (rustls' state is gone).
pub fn hand_over(conn: ServerConnection, sock: &TcpStream) -> io::Result<()> {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => TLS_1_3_VERSION,
        Some(ProtocolVersion::TLSv1_2) => TLS_1_2_VERSION,
        v => return Err(io::Error::other(format!("kernel TLS for {v:?}"))),
    };
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| io::Error::other(format!("extracting the secrets: {e}")))?;
    let tx = crypto_info(version, secrets.tx.0, &secrets.tx.1)?;
    let rx = crypto_info(version, secrets.rx.0, &secrets.rx.1)?;
    ktls_set_crypto(sock.as_fd(), KtlsDirection::Tx, &tx)?;
    ktls_set_crypto(sock.as_fd(), KtlsDirection::Rx, &rx)
}

/// Attaches the `tls` upper-layer protocol to `sock` (before [`hand_over`]; nothing
/// changes on the wire until the crypto state is set).
pub fn attach(sock: &TcpStream) -> io::Result<()> {
    ktls_set_ulp(sock.as_fd())
}

/// TLS record types (RFC 8446, 5.1).
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;

/// Why a kernel-TLS socket refused to give a received record as data.
#[derive(Debug, PartialEq, Eq)]
pub enum NotData {
    /// The peer's `close_notify`: an orderly end of what it sends.
    CloseNotify,
    /// Another alert (level, description): the peer gave up.
    Alert(u8, u8),
    /// A post-handshake message (a key update: the kernel cannot follow one before
    /// Linux 6.14, nor without rustls' help after).
    Handshake,
    /// Nothing queued, or data after all (the refusal was something else).
    Neither,
}

/// Takes the record the kernel would not pass as data off `sock` and says what it was.
pub fn next_not_data(sock: &TcpStream) -> io::Result<NotData> {
    let mut buf = [0u8; 64];
    let (kind, n) = match ktls_recv_record(sock.as_fd(), &mut buf) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(NotData::Neither),
        Err(e) => return Err(e),
    };
    Ok(match (kind, &buf[..n]) {
        (ALERT, [_, 0]) => NotData::CloseNotify,
        (ALERT, [level, desc]) => NotData::Alert(*level, *desc),
        (HANDSHAKE, _) => NotData::Handshake,
        _ => NotData::Neither,
    })
}

/// Sends `close_notify` through a kernel-TLS socket (best effort: a full send buffer
/// leaves it out; the FIN that follows still ends the stream).
pub fn send_close_notify(sock: &TcpStream) -> io::Result<()> {
    ktls_send_record(sock.as_fd(), ALERT, &[1, 0]).map(|_| ())
}
