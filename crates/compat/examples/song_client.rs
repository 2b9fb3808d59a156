//! Client of `song_server`: asks for the song `N` times and writes the last copy to a
//! file. Usage: `song_client ADDR N OUT`.
use std::io::{Read, Write};
use std::net::TcpStream;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, n, out] = &args[..] else {
        eprintln!("usage: song_client ADDR N OUT");
        std::process::exit(2);
    };
    let n: usize = n
        .parse()
        .map_err(|_| std::io::Error::other("N must be a number"))?;
    let mut sock = TcpStream::connect(addr)?;
    let mut song = Vec::new();
    for _ in 0..n {
        sock.write_all(b"play it again")?;
        let mut len = [0u8; 8];
        sock.read_exact(&mut len)?;
        song.resize(u64::from_be_bytes(len) as usize, 0);
        sock.read_exact(&mut song)?;
    }
    std::fs::write(out, &song)?;
    println!("received {n} x {} bytes", song.len());
    Ok(())
}
