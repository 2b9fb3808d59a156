//! `ferry serve`: static files over HTTP/1.1, one `LocalEngine` ring per thread.
//!
//! Semantics are those of nginx's static module (`sendfile on; etag on;
//! if_modified_since exact; autoindex off; index index.html`); see docs/serve.md.
//! Layout: `target` (request path → path beneath the root), `request` (head parsing),
//! `range` and `conditional` (HTTP rules), `meta` (what fstat said, validators),
//! `files` (opening beneath the root, the per-thread file cache), `respond` (request → response), `worker` (the ring loop),
//! `clock`, `access_log`; the threads and listeners come from `crate::rings`.

mod access_log;
mod clock;
mod conditional;
mod files;
#[cfg(test)]
mod fuzz;
mod meta;
mod mime;
mod range;
mod request;
mod respond;
mod target;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferry_engine::LocalEngine;

use crate::fd_budget::{warn_over_budget, FdBudget};
use crate::rings::{self, Rings};

use crate::error_log;
use crate::log_file::Target;
use access_log::AccessLog;
use files::{FileCache, Root};
use respond::Site;
use worker::{Limits, Worker};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory to serve. Files are opened beneath it only: `..`, and symlinks leading
    /// outside it, are refused.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub root: PathBuf,
    /// Address to listen on: IP:PORT, [IPv6]:PORT, NAME:PORT (resolved at start), or
    /// PORT / :PORT for every IPv4 address; port 0 picks a free port (printed when ready).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR",
          value_parser = crate::addr::listen)]
    pub listen: SocketAddr,
    /// Server threads, each with its own io_uring ring and SO_REUSEPORT listener
    /// (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Most open client connections; connections past it are closed at once (default:
    /// what the fd limit holds at two fds a connection, after the open-file cache).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,
    /// Seconds a client has to send a whole request head once it started one (slowloris).
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs)]
    pub header_timeout: f64,
    /// Seconds an idle keep-alive connection is kept between requests.
    #[arg(long, default_value_t = 65.0, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: f64,
    /// Seconds a response may go without the client taking a byte.
    #[arg(long, default_value_t = 60.0, value_name = "SECS", value_parser = parse_secs)]
    pub send_timeout: f64,
    /// After SIGINT/SIGTERM/SIGQUIT, seconds responses in flight may take before they are cut.
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
    /// Write the error log (start, stop, signals, accept limits, log-file errors; each
    /// kind at most one line a second) to FILE (`-`: standard output) instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub error_log: Option<PathBuf>,
    /// TCP congestion control for the client connections (default: the machine's,
    /// net.ipv4.tcp_congestion_control). docs/proxy.md, "Congestion control", says when
    /// it matters.
    #[arg(long, value_name = "ALG")]
    pub congestion: Option<crate::congestion::Congestion>,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Say more in the ready line: how connections are driven (io_uring or the epoll
    /// fallback), the congestion control, how files are kept beneath the root, the fd
    /// limit.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Fds a connection holds: its socket and the file it is being sent (files kept open
/// between requests are the cache's, counted apart).
const FDS_PER_CONNECTION: u64 = 2;

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

/// Runs the server until SIGINT/SIGTERM/SIGQUIT; returns once every thread has finished.
pub fn run(args: ServeArgs) -> io::Result<()> {
    error_log::init("ferry serve", args.error_log.as_deref())?;
    let root = Root::open(&args.root)?;
    let kernel_tls = crate::tls::kernel_support();
    let tls = crate::tls::load(&args.tls, kernel_tls.is_ok(), &[b"http/1.1"])?;
    let threads = rings::thread_count(args.threads);
    let log = args
        .access_log
        .as_deref()
        .map(|p| Target::open("--access-log", p))
        .transpose()?;
    let budget = FdBudget::take();
    // The open-file cache may hold a quarter of the budget, 4096 fds a thread at most.
    let cache_fds = (budget.free(threads) / 4 / threads as u64).clamp(1, 4096);
    let derived = budget.connections(threads, cache_fds * threads as u64, FDS_PER_CONNECTION);
    let max_connections = args.max_connections.unwrap_or(derived);
    warn_over_budget(max_connections, derived);
    let limits = Limits {
        max_connections: (max_connections as usize).div_ceil(threads),
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        send_timeout: Duration::from_secs_f64(args.send_timeout),
        grace: Duration::from_secs_f64(args.grace),
    };
    let small = args.memory_cache_max;
    let rings = Rings::start(
        "ferry-serve",
        args.listen,
        args.congestion.as_ref(),
        threads,
        |_| {
            let root = root.try_clone()?;
            let limits = limits.clone();
            let log = log.as_ref().map(AccessLog::new).transpose()?;
            let (tls, kernel) = (tls.clone(), kernel_tls.is_ok());
            Ok(move |ring: LocalEngine, listener, stop| {
                let cache = FileCache::new(Duration::from_secs(1), cache_fds as usize, small);
                Worker::new(ring, Site::new(root, cache), listener, limits, log, stop)
                    .with_tls(tls, kernel)
                    .run()
            })
        },
    )?;
    let mut line = format!(
        "ferry serve: listening on {}://{} (root {}, {}, up to {} connections",
        if tls.is_some() { "https" } else { "http" },
        rings.addr,
        args.root.display(),
        rings.threads_text(),
        max_connections,
    );
    if tls.is_some() {
        line += &crate::tls::ready_text(&kernel_tls);
    }
    if args.verbose {
        let containment = if root.uses_openat2() {
            "openat2(RESOLVE_BENEATH)"
        } else {
            "a component walk"
        };
        line += &format!(
            "; {}, files opened by {containment}, {}",
            rings.mechanics(),
            budget.describe()
        );
    }
    println!("{line})");
    error_log::lifecycle(format_args!("started: {line})"));
    let r = rings.join();
    if tls.is_some() {
        error_log::lifecycle(format_args!("TLS connections: {}", crate::tls::counts()));
    }
    r
}
