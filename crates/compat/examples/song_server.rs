//! The classic sendfile demo: a TCP server that answers each client message with a
//! file, sent zero-copy with `ferry_compat::socket_sendfile`.
//!
//! Protocol: the client sends any message (up to 1 KiB); the server answers with the
//! file's length as 8 bytes big-endian, then the file. Run:
//!
//! ```text
//! cargo run -p ferry-compat --example song_server -- song.mp3 127.0.0.1:9000
//! cargo run -p ferry-compat --example song_client -- 127.0.0.1:9000 1 out.mp3
//! ```
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

fn serve(mut client: TcpStream, path: PathBuf) -> std::io::Result<()> {
    let mut msg = [0u8; 1024];
    let mut file = File::open(&path)?;
    let len = file.metadata()?.len();
    loop {
        if client.read(&mut msg)? == 0 {
            return Ok(()); // client hung up
        }
        client.write_all(&len.to_be_bytes())?;
        let sent = ferry_compat::socket_sendfile(&client, &mut file, 0, None)?;
        if sent != len {
            return Err(std::io::Error::other(format!("sent {sent} of {len} bytes")));
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let path = PathBuf::from(args.next().expect("usage: song_server FILE [ADDR]"));
    let addr = args
        .next()
        .map_or("127.0.0.1:0".into(), |a| a.to_string_lossy().into_owned());
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    for client in listener.incoming() {
        let client = client?;
        let path = path.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(client, path) {
                eprintln!("song_server: client error: {e}");
            }
        });
    }
    Ok(())
}
