//! `ferry`: zero-copy byte moving. `ferry bench` compares ferry with the usual ways of
//! moving bytes on this machine (see docs/benchmarks.md).
//!
//! `unsafe` lives in `sys` only.
#![deny(unsafe_code)]

mod acceptor;
mod activation;
mod addr;
mod bench;
mod congestion;
mod error_log;
mod fd_budget;
mod log_file;
mod proxy;
mod rings;
mod serve;
mod signals;
#[allow(unsafe_code)] // the calls libc has and rustix does not, each with its SAFETY
mod sys;
mod tables;
mod tls;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use bench::{Method, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Moves bytes between fds inside the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Side-by-side benchmark of ferry against plain syscall loops, nginx and HAProxy.
    ///
    /// Ten scenarios over loopback on built-in data: file → socket, socket → socket,
    /// request-response, file → file (ferry's engines against syscall loops),
    /// http-static (ferry serve against nginx under wrk), https-static (the same over
    /// TLS, one certificate made for the run; https-handshakes: a new connection per
    /// request), tcp-proxy (ferry proxy against HAProxy), tls-proxy (the same
    /// terminating TLS, under wrk over https) and connections (memory per idle connection and the active
    /// load's CPU with thousands idle, against nginx and HAProxy); absent peers are reported "not run" (scripts/install-peers.sh
    /// installs them). Every method runs interleaved with the others, every byte
    /// verified on an untimed first run; one-connection cases up to 64 KiB are also
    /// run at a light load (1000 req/s: server CPU per request while mostly waiting).
    /// The default run (3 timed runs) takes about 11 minutes on 2 CPUs, --quick about
    /// 60 s. A header says what machine, backends and
    /// peers ran; each case's table appears as soon as it is done; its columns: median
    /// and min-max of the per-run figure (GB/s, or req/s for per-request cases), spread =
    /// (max - min) / median, CPU seconds per GB or CPU µs per request, the ratio to the
    /// baseline (the best syscall method, nginx or HAProxy, named in the table's title)
    /// and a verdict: win or loss only when every run beat or lost to every baseline
    /// run, tie otherwise. Latency percentiles (µs) appear for per-request cases.
    /// A closing summary gives ferry's best method per case.
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),
    /// A static-file HTTP/1.1 server on io_uring rings (one per thread).
    ///
    /// GET and HEAD of regular files beneath --root, with nginx's static-module
    /// semantics: ETag and Last-Modified, If-None-Match / If-Modified-Since (exact) → 304,
    /// If-Match / If-Unmodified-Since → 412, Range (single, suffix, open, multipart;
    /// unsatisfiable → 416) and If-Range, a directory without a trailing slash → 301,
    /// index.html for a directory (403 without one), keep-alive and pipelining.
    /// `..` above the root, %00, backslashes → 400; files are opened with
    /// openat2(RESOLVE_BENEATH) so a symlink leading outside the root is refused (403).
    /// Prints "listening on http://IP:PORT" when ready; SIGINT/SIGTERM/SIGQUIT stop
    /// accepting, let responses in flight finish (--grace) and exit 0 (a second one: at
    /// once); SIGUSR1 and SIGHUP reopen the access log. A port already in use by another
    /// process is refused. docs/operations.md.
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// A TCP reverse proxy on io_uring rings: splices both ways between each client and
    /// a backend.
    ///
    /// Each client gets the next backend in turn (one that refuses or times out is
    /// skipped for 2 s; when none accepts, the client is closed). Bytes flow both ways
    /// unchanged until both directions ended; EOF on one side half-closes the other;
    /// a reset or error on one side resets the other. Prints "listening on IP:PORT"
    /// when ready; SIGINT/SIGTERM/SIGQUIT stop accepting, let live pairs go on for
    /// --grace seconds, then cut them, and exit 0 (a second one: at once). A backend that
    /// is the proxy's own listener, or a port already in use, is refused.
    #[command(verbatim_doc_comment)]
    Proxy(proxy::ProxyArgs),
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// A reduced run (small sizes, 2 repetitions), under 30 seconds.
    #[arg(long)]
    quick: bool,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write latency percentile curves of the request-response cases as SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Only these scenarios: file-to-socket, socket-to-socket, request-response,
    /// file-to-file, http-static (nginx vs ferry serve), https-static (the same over TLS),
    /// https-handshakes (a TLS handshake per request),
    /// tcp-proxy (HAProxy vs ferry proxy), tls-proxy (the same terminating TLS),
    /// connections (idle connections: nginx, ferry serve, HAProxy, ferry proxy).
    #[arg(long, value_parser = parse_scenario)]
    scenario: Vec<Scenario>,
    /// Only these methods: read-write, std-copy, sendfile, splice, engine-uring,
    /// engine-blocking, engine-local; nginx, nginx-nopush-off, ferry-serve (http-static);
    /// nginx-tls, ferry-serve-tls (https-static);
    /// haproxy, haproxy-splice, ferry-proxy (tcp-proxy); haproxy-tls, ferry-proxy-tls
    /// (tls-proxy).
    #[arg(long, value_parser = parse_method)]
    method: Vec<Method>,
    /// Payload sizes (e.g. 4K, 64KiB, 1M, 256MiB).
    #[arg(long, value_parser = parse_size)]
    size: Vec<u64>,
    /// Connection counts for request-response.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    connections: Vec<u64>,
    /// Idle connections for the connections scenario (default 4000, --quick 1000,
    /// fewer where the fd limit cannot hold them).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    idle: Vec<u64>,
    /// Repetitions of each method (default 3, --quick 2). More runs, tighter verdicts.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    runs: Option<u64>,
    /// Run the request-response server on CPU 0 and the load generator on CPU 1.
    #[arg(long)]
    pin: bool,
    /// Latency at fixed offered loads instead of the closed-loop tables: for
    /// request-response, http-static and tcp-proxy (default 4K and 64K, 64
    /// connections), the baseline's closed-loop peak, then 50/80/95 % of it offered to
    /// every method and to a trivial responder (the generator's floor), interleaved,
    /// 10 s a point (--quick: 2 s, too short for stable tails); latency from each
    /// request's planned time (coordinated omission corrected). --json holds the
    /// histograms (HdrHistogram V2, compressed, base64), --plot the percentile curves.
    /// A full run takes about an hour; --method and --size narrow it.
    #[arg(long, verbatim_doc_comment)]
    latency: bool,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    Scenario::parse(s).ok_or_else(|| {
        let all: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
        format!("unknown scenario {s:?}; expected one of {}", all.join(", "))
    })
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::parse(s).ok_or_else(|| {
        let all: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        format!("unknown method {s:?}; expected one of {}", all.join(", "))
    })
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected e.g. 4K, 1MiB, 65536"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("bad size unit in {s:?}: use K, M or G")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("size must be positive".into()),
        Some(v) if v <= 64 << 30 => Ok(v),
        _ => Err(format!("size {s:?} too large (max 64 GiB)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(a) => {
            let opts = bench::Options {
                quick: a.quick,
                json: a.json,
                plot: a.plot,
                scenarios: if a.scenario.is_empty() {
                    Scenario::ALL.to_vec()
                } else {
                    a.scenario
                },
                methods: if a.method.is_empty() {
                    Method::ALL.to_vec()
                } else {
                    a.method
                },
                sizes: a.size,
                connections: a.connections.into_iter().map(|c| c as usize).collect(),
                idle: a.idle.into_iter().map(|c| c as usize).collect(),
                runs: a.runs.map(|r| r as usize),
                pin: a.pin,
                latency: a.latency,
            };
            match bench::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ferry bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(a) => server_exit("ferry serve", serve::run(a)),
        Command::Proxy(a) => server_exit("ferry proxy", proxy::run(a)),
    }
}

/// How `ferry serve`/`ferry proxy` ended: said in the error log, and a failure on
/// stderr too (where a failed start is looked for).
fn server_exit(program: &str, result: std::io::Result<()>) -> ExitCode {
    use error_log::{Kind, Level};
    error_log::finish();
    match result {
        Ok(()) => {
            error_log::lifecycle("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            if error_log::is_file() {
                error_log::say(Level::Error, Kind::Lifecycle, format_args!("exiting: {e}"));
            }
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_bad_ones_name_the_problem() {
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("256mib"), Ok(256 << 20));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("0").unwrap_err().contains("positive"));
        assert!(parse_size("4X").unwrap_err().contains("unit"));
        assert!(parse_size("K").unwrap_err().contains("bad size"));
        assert!(parse_size("1000G").unwrap_err().contains("too large"));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for m in Method::ALL {
            assert_eq!(parse_method(m.name()), Ok(m));
        }
        for s in Scenario::ALL {
            assert_eq!(parse_scenario(s.name()), Ok(s));
        }
        assert!(parse_method("mmap").unwrap_err().contains("engine-uring"));
        assert!(parse_scenario("udp").unwrap_err().contains("file-to-file"));
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
