//! A TCP proxy on tokio: tokio accepts and connects, `Engine::proxy` splices both ways
//! (half-close on EOF, both stopped on a reset, an idle timeout).
//!
//! `cargo run -p ferry-engine --example tokio_proxy -- LISTEN BACKEND`, or `--self-test`:
//! an echo backend, the proxy and 20 clients on free ports, every byte checked.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::{Engine, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn proxy(engine: Arc<Engine>, listener: TcpListener, backend: String) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (engine, backend) = (engine.clone(), backend.clone());
        tokio::spawn(async move {
            let server = match TcpStream::connect(&backend).await {
                Ok(s) => s,
                Err(e) => return eprintln!("backend {backend}: {e}"),
            };
            let pair = Proxy::new(Arc::new(client), Arc::new(server))
                .idle_timeout(Duration::from_secs(300));
            match engine.proxy(pair) {
                // Both directions ended: the engine has closed its copies of the sockets.
                Ok(h) => match h.await {
                    Ok((up, down)) => eprintln!("pair done: {up} bytes up, {down} down"),
                    Err(e) => eprintln!("pair failed: {e}"),
                },
                Err(e) => eprintln!("cannot proxy: {e}"),
            }
        });
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let engine = Arc::new(Engine::new()?);
    if args.first().map(String::as_str) == Some("--self-test") {
        return rt.block_on(self_test(engine));
    }
    let [listen, backend] = args.as_slice() else {
        eprintln!("usage: tokio_proxy LISTEN BACKEND | --self-test");
        std::process::exit(2);
    };
    rt.block_on(async {
        let listener = TcpListener::bind(listen).await?;
        println!("listening on {}", listener.local_addr()?);
        proxy(engine, listener, backend.clone()).await;
        Ok(())
    })
}

async fn self_test(engine: Arc<Engine>) -> io::Result<()> {
    // An echo backend.
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let backend = echo.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(proxy(engine, listener, backend));
    let mut clients = Vec::new();
    for i in 0..20u32 {
        clients.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..200_000u32).map(|j| (i + j * 13) as u8).collect();
            let c = TcpStream::connect(addr).await?;
            let (mut r, mut w) = c.into_split();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&sent).await?;
                w.shutdown().await
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await?;
            writer.await.expect("writer")?;
            assert!(back == data, "client {i}: echo differs");
            io::Result::Ok(())
        }));
    }
    for c in clients {
        c.await.expect("client task")?;
    }
    println!("self-test passed: 20 clients echoed through the proxy");
    Ok(())
}
