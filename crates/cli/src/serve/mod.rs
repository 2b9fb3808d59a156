//! `ferry serve`: static files over HTTP/1.1, one `LocalEngine` ring per thread.
//!
//! Semantics are those of nginx's static module (`sendfile on; etag on;
//! if_modified_since exact; autoindex off; index index.html`); see docs/serve.md.
//! Layout: `target` (request path → path beneath the root), `request` (head parsing),
//! `range` and `conditional` (HTTP rules), `files` (opening beneath the root, the
//! per-thread file cache), `respond` (request → response), `worker` (the ring loop),
//! `listen`, `clock`, `access_log`.

mod access_log;
mod clock;
mod conditional;
mod files;
#[cfg(test)]
mod fuzz;
mod listen;
mod range;
mod request;
mod respond;
mod target;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::LocalEngine;

use files::{FileCache, Root};
use respond::Site;
use worker::{Limits, Worker};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory to serve. Files are opened beneath it only: `..`, and symlinks leading
    /// outside it, are refused.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub root: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed when ready).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Server threads, each with its own io_uring ring and SO_REUSEPORT listener
    /// (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Most open client connections; connections past it are closed at once.
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Seconds a client has to send a whole request head once it started one (slowloris).
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs)]
    pub header_timeout: f64,
    /// Seconds an idle keep-alive connection is kept between requests.
    #[arg(long, default_value_t = 65.0, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: f64,
    /// Seconds a response may go without the client taking a byte.
    #[arg(long, default_value_t = 60.0, value_name = "SECS", value_parser = parse_secs)]
    pub send_timeout: f64,
    /// After SIGINT/SIGTERM, seconds responses in flight may take before they are cut.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs)]
    pub grace: f64,
    /// Files up to this many bytes are kept in memory per thread (while unchanged) and
    /// sent with their head in one send; larger ones go zero-copy from the page cache.
    /// 0 turns the memory cache off. See docs/serve.md for how the default was measured.
    #[arg(long, default_value_t = 8 * 1024, value_name = "BYTES")]
    pub memory_cache_max: u64,
    /// Write an access log in Common Log Format to FILE (`-`: standard output). Off by default.
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

/// Runs the server until SIGINT/SIGTERM; returns once every thread has finished.
pub fn run(args: ServeArgs) -> io::Result<()> {
    let root = Root::open(&args.root)?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    );
    let log = args
        .access_log
        .as_deref()
        .map(access_log::Sink::open)
        .transpose()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let (listeners, addr) = listen::reuseport_listeners(args.listen, threads)?;
    let limits = Limits {
        max_connections: (args.max_connections as usize).div_ceil(threads),
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        send_timeout: Duration::from_secs_f64(args.send_timeout),
        grace: Duration::from_secs_f64(args.grace),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let root = root.try_clone()?;
        let limits = limits.clone();
        let log = log.as_ref().map(|s| s.writer()).transpose()?;
        let stop = stop.clone();
        let ready = ready_tx.clone();
        let small = args.memory_cache_max;
        let h = std::thread::Builder::new()
            .name(format!("ferry-serve-{i}"))
            .spawn(move || -> io::Result<()> {
                let ring = LocalEngine::new();
                let _ = ready.send(
                    ring.as_ref()
                        .map(|r| r.backend())
                        .map_err(|e| e.to_string()),
                );
                let cache = FileCache::new(Duration::from_secs(1), 4096, small);
                Worker::new(ring?, Site::new(root, cache), listener, limits, log, stop).run()
            })?;
        handles.push(h);
    }
    drop(ready_tx);
    let mut backend = None;
    for r in ready_rx.iter().take(threads) {
        backend = Some(r.map_err(|e| io::Error::other(format!("cannot start a ring: {e}")))?);
    }
    println!(
        "ferry serve: listening on http://{addr} ({threads} thread{}, backend {:?}, root {}, containment {})",
        if threads == 1 { "" } else { "s" },
        backend.expect("at least one thread"),
        args.root.display(),
        if root.uses_openat2() { "openat2" } else { "component walk" },
    );
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(io::Error::other("a server thread panicked"))),
        }
    }
    first_err.map_or(Ok(()), Err)
}
