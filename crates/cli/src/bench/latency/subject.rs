//! What the generator is pointed at in the latency study, and how each is reached: the
//! in-process request-response servers of `super::super::rr` (one per run, accepting
//! exactly the generator's connections), the peer processes of http-static (nginx,
//! `ferry serve`) and tcp-proxy (HAProxy, `ferry proxy` in front of the HTTP origin),
//! and the trivial responder that gives the generator's floor.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::super::common::{fail, Checksum, Method, Scenario};
use super::super::{http, rr, tcp_proxy, Engines};
use super::answer::Protocol;
use super::generator::{self, CpuOf, Load, Measured};
use super::responder::Responder;

/// Who answers the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// The trivial responder: the generator's own floor.
    Floor,
    Method(Method),
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Floor => "floor",
            Subject::Method(m) => m.name(),
        }
    }
}

/// How long a run lasts and how hard it pushes.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Requests a second; `None`: closed loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub measure: Duration,
}

/// The servers of one scenario, started once and kept for all its cases.
pub struct Servers<'a> {
    pub scenario: Scenario,
    engines: &'a Engines,
    pin: bool,
    http: Option<http::Servers>,
    proxies: Option<tcp_proxy::Proxies>,
}

impl<'a> Servers<'a> {
    /// Starts what `scenario` needs (its files in `dir`).
    pub fn start(
        scenario: Scenario,
        dir: &Path,
        engines: &'a Engines,
        pin: bool,
    ) -> io::Result<Servers<'a>> {
        let (mut http, mut proxies) = (None, None);
        match scenario {
            Scenario::HttpStatic => http = Some(http::Servers::start(dir, pin)),
            Scenario::TcpProxy => proxies = Some(tcp_proxy::Proxies::start(dir, pin)?),
            _ => {}
        }
        Ok(Servers {
            scenario,
            engines,
            pin,
            http,
            proxies,
        })
    }

    /// Checks one answer of `m` byte for byte (untimed); an error says why `m` cannot
    /// run (`InvalidData`: it answered wrongly).
    pub fn verify(&mut self, m: Method, data: &Path, size: u64, want: Checksum) -> io::Result<()> {
        match self.scenario {
            Scenario::RequestResponse => rr::request_response(
                m,
                data,
                size,
                1,
                Duration::from_millis(50),
                self.engines,
                Some(want),
                self.pin,
                None,
            )
            .map(drop),
            Scenario::HttpStatic => {
                let servers = self.http.as_ref().expect("started");
                servers.target(m)?;
                servers.run(m, size, 1, 0, Some(want)).map(drop)
            }
            Scenario::TcpProxy => {
                let front = self.proxies.as_mut().expect("started").http_front(m)?;
                let path = format!("/data-{size}");
                super::super::peers::verify_get(front.addr, front.name, &path, size, want)
            }
            _ => Err(fail("not a scenario of the latency study")),
        }
    }

    /// One run of the generator against `who` with `connections` connections.
    pub fn measure(
        &mut self,
        who: Subject,
        floor: &Responder,
        data: &Path,
        size: u64,
        connections: usize,
        pace: Pace,
    ) -> io::Result<Measured> {
        let proto = protocol(self.scenario, size);
        let load = |addr: SocketAddr, reconnect: bool, cpu_of: Option<CpuOf>| Load {
            addr,
            connections,
            rate: pace.rate,
            warmup: pace.warmup,
            measure: pace.measure,
            protocol: &proto,
            reconnect,
            cpu_of,
        };
        let pin = self.pin;
        let target = match (who, self.scenario) {
            (Subject::Floor, _) => Some((floor.addr(), CpuOf::Thread(floor.tid()))),
            (Subject::Method(m), Scenario::HttpStatic) => {
                let (addr, pid) = self.http.as_ref().expect("started").target(m)?;
                Some((addr, CpuOf::Process(pid)))
            }
            (Subject::Method(m), Scenario::TcpProxy) => {
                let front = self.proxies.as_mut().expect("started").http_front(m)?;
                Some((front.addr, CpuOf::Process(front.child.id())))
            }
            _ => None,
        };
        if let Some((addr, cpu)) = target {
            return on_generator_cpu(pin, || generator::run(&load(addr, true, Some(cpu))));
        }
        let Subject::Method(m) = who else {
            unreachable!("the floor has a target")
        };
        // An in-process server: its CPU is this process's minus the generator thread's.
        rr::with_server(m, data, size, connections, self.engines, pin, |addr| {
            let own = Some(CpuOf::Process(std::process::id()));
            let mut r = generator::run(&load(addr, false, own))?;
            r.server_cpu_secs = r.server_cpu_secs.map(|c| (c - r.cpu_secs).max(0.0));
            Ok(r)
        })
    }
}

/// Runs `f` on a thread of its own, on CPU 1 with `pin` (servers are on CPU 0).
fn on_generator_cpu<T: Send>(pin: bool, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("bench-generator".into())
            .spawn_scoped(s, || {
                if pin {
                    rr::pin_to_cpu(1)?;
                }
                f()
            })?
            .join()
            .map_err(|_| fail("the load generator panicked"))?
    })
}

/// The trivial responder for `scenario`'s dialogue with `size`-byte answers, on the
/// servers' CPU with `pin`.
pub fn floor(scenario: Scenario, size: u64, pin: bool) -> io::Result<Responder> {
    Responder::start(&protocol(scenario, size), pin.then_some(0), None)
}

/// What the generator asks in `scenario`.
fn protocol(scenario: Scenario, size: u64) -> Protocol {
    match scenario {
        Scenario::RequestResponse => Protocol::Wire { size },
        _ => Protocol::http(size),
    }
}
