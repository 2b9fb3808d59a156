//! The request-response case's wire format, spoken by every server (`rr`,
//! `rr_local`) and the client: a request is one byte; a response is a 16-byte header
//! (`b"RESP"`, the body length as a little-endian u64, 4 bytes of padding) and the body.

/// Bytes of a response header.
pub const HDR: usize = 16;

/// The header of a response with `size` body bytes.
pub fn header(size: u64) -> [u8; HDR] {
    let mut h = [0u8; HDR];
    h[..4].copy_from_slice(b"RESP");
    h[4..12].copy_from_slice(&size.to_le_bytes());
    h
}
