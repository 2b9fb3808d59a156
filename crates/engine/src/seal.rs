//! `Seal`: how a transfer whose destination speaks TLS in user space turns plaintext
//! into what goes on the wire. The engine stays TLS-agnostic: the embedder's TLS
//! library (rustls, OpenSSL …) seals; the plan reads, hands each record's plaintext to
//! it and sends what it returns (`Strategy::Sealed`). A destination with kernel TLS
//! (`TLS_TX` set on the socket) needs none of this: it is an ordinary transfer, and
//! `sendfile`/`splice` into it are encrypted by the kernel.

use std::io;

/// Seals plaintext into records for the destination of one transfer
/// ([`Transfer::seal`](crate::Transfer::seal)). Called on the executor's thread, once per
/// record's worth of plaintext (at most [`SEAL_CHUNK`] bytes: a full TLS record), in
/// stream order: header, body, trailer.
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use ferry_engine::{Engine, Seal, Transfer};
///
/// /// A toy record layer (length-prefixed, XOR-ed): a TLS library goes here.
/// struct Toy;
/// impl Seal for Toy {
///     fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
///         out.extend_from_slice(&(plain.len() as u16).to_be_bytes());
///         out.extend(plain.iter().map(|b| b ^ 0x5a));
///         Ok(())
///     }
/// }
///
/// let engine = Engine::new()?;
/// let mut file = tempfile::tempfile()?;
/// file.write_all(b"hello")?;
/// let (mut r, w) = std::os::unix::net::UnixStream::pair()?;
/// let t = Transfer::new(Arc::new(file), Arc::new(w)).src_offset(Some(0)).seal(Toy);
/// assert_eq!(engine.submit(t)?.wait()?.bytes, 5); // body bytes, before sealing
/// let mut wire = [0u8; 7];
/// r.read_exact(&mut wire)?;
/// assert_eq!(&wire[..2], &[0, 5]);
/// assert_eq!(wire[2] ^ 0x5a, b'h');
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Seal: Send {
    /// Appends to `out` the bytes that carry all of `plain` (one or more records). An
    /// error fails the transfer with it.
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()>;
}

/// The most plaintext one `seal` call gets: a TLS record's maximum (2^14 bytes).
pub const SEAL_CHUNK: usize = 16 * 1024;
