//! A static-file responder on tokio: tokio accepts and reads the request, the engine
//! moves the response (head + file) into the socket without blocking a worker.
//!
//! `cargo run -p ferry-engine --example tokio_static -- [ADDR] [FILE]` serves FILE (this
//! source by default) to every request; `--self-test` serves a generated file on a free
//! port, fetches it, checks every byte and exits (the test suite runs this).
//!
//! The embedding points (docs/embedding.md): the socket is an `Arc<tokio::net::TcpStream>`
//! (the engine holds it until the kernel is done); `submit_async` waits for a slot
//! without blocking the runtime; `cancel_on_drop` stops the transfer if the task is
//! dropped (a timeout, a `select!`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::{Engine, Transfer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(engine: Arc<Engine>, listener: TcpListener, file: Arc<std::fs::File>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let (engine, file) = (engine.clone(), file.clone());
        tokio::spawn(async move {
            if let Err(e) = respond(&engine, conn, file).await {
                eprintln!("connection ended: {e}");
            }
        });
    }
}

/// Reads one request head (up to the blank line), then sends head + file.
async fn respond(engine: &Engine, mut conn: TcpStream, file: Arc<std::fs::File>) -> io::Result<()> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || req.len() > 16 << 10 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let len = file.metadata()?.len();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let conn = Arc::new(conn);
    let transfer = Transfer::new(file, conn.clone())
        .src_offset(Some(0))
        .len(Some(len))
        .header(head)
        .timeout(Duration::from_secs(30));
    let done = engine
        .submit_async(transfer)
        .await?
        .cancel_on_drop()
        .await?;
    eprintln!("sent {} body bytes", done.bytes);
    // The engine has released its copy: we own the socket again.
    let mut conn = Arc::into_inner(conn).expect("the engine let go of the socket");
    conn.shutdown().await
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Arc::new(Engine::new()?);
    if args.first().map(String::as_str) == Some("--self-test") {
        return rt.block_on(self_test(engine));
    }
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let path = args.get(1).cloned().unwrap_or_else(|| file!().into());
    let file = Arc::new(std::fs::File::open(path)?);
    rt.block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        serve(engine, listener, file).await;
        Ok(())
    })
}

async fn self_test(engine: Arc<Engine>) -> io::Result<()> {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut f = tempfile_in_tmp()?;
    std::io::Write::write_all(&mut f, &data)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(engine.clone(), listener, Arc::new(f)));
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).await?;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await?;
        let body_at = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4;
        assert!(got[..body_at].starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(got[body_at..] == data[..], "body differs");
    }
    println!("self-test passed: 3 responses of {} bytes", data.len());
    Ok(())
}

fn tempfile_in_tmp() -> io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("ferry-example-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}
