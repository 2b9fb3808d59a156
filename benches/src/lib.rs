//! Fixtures shared by the criterion benches: a page-cached file and a loopback socket
//! whose peer discards everything.
#![allow(missing_docs)]

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};

/// A temp file of `len` bytes, written and read once (page-cache hot).
pub fn hot_file(len: usize) -> File {
    let mut f = tempfile::tempfile().expect("tempfile");
    f.write_all(&vec![0x5a; len]).expect("write");
    f.rewind().expect("rewind");
    std::io::copy(&mut (&f).take(len as u64), &mut std::io::sink()).expect("read");
    f
}

/// A TCP client connected to a thread that reads and discards until EOF.
pub fn discarding_socket() -> TcpStream {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (mut s, _) = l.accept().expect("accept");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    c
}
