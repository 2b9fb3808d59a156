//! `ferry proxy`: a TCP (layer 4) reverse proxy, one `LocalEngine` ring per thread;
//! each client is joined to a backend (round robin) by the engine's two-way proxy.
//! Layout: `backends` (round robin, down marks shared by the threads), `access_log`
//! (a line per connection), `proxy_protocol` (the optional PROXY header), `self_loop`
//! (a backend that is the proxy itself is refused), `handshake` (a TLS client's
//! handshake, then kernel TLS where it can), `tls_pair` (a TLS client's two directions),
//! `worker` (the ring loop); threads and listeners from `crate::rings`.
//! See docs/proxy.md.

mod access_log;
mod backends;
mod handshake;
mod proxy_protocol;
mod self_loop;
mod tls_pair;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferry_engine::LocalEngine;

use crate::error_log;
use crate::fd_budget::{warn_over_budget, FdBudget};
use crate::log_file::Target;
use crate::rings::{self, Rings};
use worker::{Settings, Worker};

#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// Address to listen on: IP:PORT, [IPv6]:PORT, NAME:PORT (resolved at start), or
    /// PORT / :PORT for every IPv4 address; port 0 picks a free port (printed when ready).
    #[arg(long, value_name = "ADDR", value_parser = crate::addr::listen)]
    pub listen: SocketAddr,
    /// A backend to forward to (repeat for several: round robin; one that refuses or
    /// times out is skipped for 2 s and the client tries the next). NAME:PORT is
    /// resolved at start, every address it has becoming a backend, in order.
    #[arg(long = "backend", value_name = "ADDR", required = true,
          value_parser = crate::addr::resolve)]
    pub backends: Vec<Vec<SocketAddr>>,
    /// Proxy threads, each with its own io_uring ring and SO_REUSEPORT listener
    /// (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Seconds a pair may go without a byte moving either way before both sides are closed.
    #[arg(long, default_value_t = 300.0, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: f64,
    /// Seconds a backend has to accept a connection before the next one is tried.
    #[arg(long, default_value_t = 5.0, value_name = "SECS", value_parser = parse_secs)]
    pub connect_timeout: f64,
    /// Most client connections at once; connections past it are closed at once
    /// (default: what the fd limit holds at four fds a pair).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,
    /// After SIGINT/SIGTERM/SIGQUIT, seconds live pairs may go on before they are cut.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs)]
    pub grace: f64,
    /// Send a PROXY protocol header (v1 text or v2 binary) to the backend first, so it
    /// sees the client's address (HAProxy's send-proxy / send-proxy-v2).
    #[arg(long, value_name = "VERSION")]
    pub send_proxy: Option<proxy_protocol::Version>,
    /// TCP congestion control for both sides, clients and backends (default: the
    /// machine's, net.ipv4.tcp_congestion_control). On loopback a pacing algorithm such
    /// as bbr costs timers and CPU for nothing: docs/proxy.md, "Congestion control".
    #[arg(long, value_name = "ALG")]
    pub congestion: Option<crate::congestion::Congestion>,
    /// Write a line per client connection (client, backend, bytes each way, how long,
    /// how each side ended) to FILE (`-`: standard output). Off by default.
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Write the error log (start, stop, signals, backends down and up, connect
    /// failures, accept limits; each kind at most one line a second) to FILE (`-`:
    /// standard output) instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub error_log: Option<PathBuf>,
    /// Terminate TLS: clients speak TLS 1.3/1.2 (no ALPN), backends get plain TCP;
    /// after each handshake the records move to the kernel where it has TLS, so bytes
    /// are still spliced both ways (docs/proxy.md, "TLS").
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Seconds a TLS client has, from its connect, to finish its handshake.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs)]
    pub handshake_timeout: f64,
    /// Say more in the ready line: how pairs are driven (io_uring or the epoll
    /// fallback), the congestion control, the fd limit.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Fds a pair holds: the client's socket, the backend's, and a pooled pipe pair while
/// bytes are spliced.
const FDS_PER_PAIR: u64 = 4;

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

/// Runs the proxy until SIGINT/SIGTERM/SIGQUIT; returns once every thread has finished.
pub fn run(args: ProxyArgs) -> io::Result<()> {
    error_log::init("ferry proxy", args.error_log.as_deref())?;
    let backend_list: Vec<SocketAddr> = args.backends.iter().flatten().copied().collect();
    self_loop::refuse_self(args.listen, &backend_list)?;
    let threads = rings::thread_count(args.threads);
    let budget = FdBudget::take();
    let derived = budget.connections(threads, 0, FDS_PER_PAIR);
    let max_connections = args.max_connections.unwrap_or(derived);
    warn_over_budget(max_connections, derived);
    let kernel_tls = crate::tls::kernel_support();
    let tls = crate::tls::load(&args.tls, kernel_tls.is_ok(), &[])?;
    let access_log = args
        .access_log
        .as_deref()
        .map(|p| Target::open("--access-log", p))
        .transpose()?;
    let settings = Settings {
        backends: backends::Health::new(backend_list.clone()),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        max_connections: (max_connections as usize).div_ceil(threads),
        grace: Duration::from_secs_f64(args.grace),
        send_proxy: args.send_proxy,
        congestion: args.congestion.clone(),
        access_log,
        tls: tls.clone(),
        kernel_tls: kernel_tls.is_ok(),
        handshake_timeout: Duration::from_secs_f64(args.handshake_timeout),
    };
    let rings = Rings::start(
        "ferry-proxy",
        args.listen,
        args.congestion.as_ref(),
        threads,
        |i| {
            let settings = settings.clone();
            Ok(move |ring: LocalEngine, listener, stop| {
                Worker::new(ring, listener, settings, i, stop)?.run()
            })
        },
    )?;
    let backends: Vec<String> = backend_list.iter().map(|b| b.to_string()).collect();
    let mut line = format!(
        "ferry proxy: listening on {} (backends {}, {}, up to {} connections",
        rings.addr,
        backends.join(", "),
        rings.threads_text(),
        max_connections,
    );
    if tls.is_some() {
        line += &crate::tls::ready_text(&kernel_tls);
    }
    if args.verbose {
        line += &format!("; {}, {}", rings.mechanics(), budget.describe());
    }
    println!("{line})");
    error_log::lifecycle(format_args!("started: {line})"));
    let r = rings.join();
    if tls.is_some() {
        error_log::lifecycle(format_args!("TLS connections: {}", crate::tls::counts()));
    }
    r
}
