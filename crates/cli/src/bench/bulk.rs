//! The bulk scenarios: file → socket, socket → socket (a proxy), file → file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ferry_compat::SpliceFlags;
use ferry_engine::Transfer;
use ferry_pipes::{PipePool, PoolConfig};

use super::common::{cpu_time, fail, fill_pattern, new_hist, Checksum, Method, RunResult};
use super::Engines;

const BUF: usize = 1 << 20;

/// Reads a socket to EOF on its own thread: (bytes, checksum, its CPU seconds).
fn spawn_sink(
    listener: TcpListener,
    verify: bool,
) -> std::thread::JoinHandle<io::Result<(u64, Checksum, f64)>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; BUF];
        let (mut n, mut sum) = (0u64, Checksum::default());
        loop {
            let k = s.read(&mut buf)?;
            if k == 0 {
                break;
            }
            if verify {
                sum.update(&buf[..k]);
            }
            n += k as u64;
        }
        Ok((n, sum, cpu_time(true).as_secs_f64()))
    })
}

fn pipe_pool() -> io::Result<PipePool> {
    PipePool::new(PoolConfig {
        capacity: 4,
        pipe_size: 1 << 20,
        nonblocking: false,
    })
}

/// Moves everything in `pipe` to `dst` (blocking splice).
fn drain_pipe(
    pipe: &ferry_pipes::PooledPipe,
    dst: &impl std::os::fd::AsFd,
    mut n: usize,
    dst_off: Option<&mut u64>,
) -> io::Result<()> {
    let mut off = dst_off;
    while n > 0 {
        let o = off.as_deref().copied();
        let k = ferry_compat::splice(pipe.reader(), dst, n, None, o, SpliceFlags::MORE)?;
        if k == 0 {
            return Err(fail("splice into destination returned 0"));
        }
        if let Some(o) = off.as_deref_mut() {
            *o += k as u64;
        }
        n -= k;
    }
    Ok(())
}

fn not_a_mover(m: Method) -> io::Error {
    fail(format!(
        "{} runs only in its own scenario ({})",
        m.name(),
        m.family().name()
    ))
}

fn engine_for(method: Method, engines: &Engines) -> io::Result<&ferry_engine::Engine> {
    let e = match method {
        Method::EngineUring => &engines.uring,
        _ => &engines.blocking,
    };
    e.as_ref().map_err(|r| fail(r.clone()))
}

/// Moves `size` bytes of `src` (from offset 0) to `dst` with `method`. `dst` is a socket
/// or (`dst_is_file`) a fresh file written from offset 0.
fn send_file<D>(
    method: Method,
    src: &File,
    dst: &Arc<D>,
    dst_is_file: bool,
    size: u64,
    engines: &Engines,
) -> io::Result<()>
where
    D: std::os::fd::AsFd + Send + Sync + 'static,
    for<'a> &'a D: Write,
{
    let out: &D = dst;
    match method {
        Method::ReadWrite => {
            let mut buf = vec![0u8; BUF];
            loop {
                let n = (&mut &*src).read(&mut buf)?;
                if n == 0 {
                    break;
                }
                (&mut &*out).write_all(&buf[..n])?;
            }
        }
        Method::StdCopy => {
            io::copy(&mut &*src, &mut &*out)?;
        }
        Method::Sendfile => {
            let mut off = 0u64;
            while off < size {
                let n = ferry_compat::sendfile(out, src, Some(off), (size - off) as usize)?;
                if n == 0 {
                    break;
                }
                off += n as u64;
            }
        }
        Method::Splice => {
            let pool = pipe_pool()?;
            let pipe = pool.get()?;
            let (mut off, mut doff) = (0u64, 0u64);
            while off < size {
                let want = ((size - off) as usize).min(pipe.size());
                let n = ferry_compat::splice(
                    src,
                    pipe.writer(),
                    want,
                    Some(off),
                    None,
                    SpliceFlags::empty(),
                )?;
                if n == 0 {
                    break;
                }
                drain_pipe(&pipe, out, n, dst_is_file.then_some(&mut doff))?;
                off += n as u64;
            }
        }
        Method::EngineUring | Method::EngineBlocking => {
            let engine = engine_for(method, engines)?;
            let t = Transfer::new(Arc::new(src.try_clone()?), dst.clone())
                .src_offset(Some(0))
                .len(Some(size));
            engine.submit(t)?.wait()?;
        }
        Method::EngineLocal => {
            let t = Transfer::new(Arc::new(src.try_clone()?), dst.clone())
                .src_offset(Some(0))
                .len(Some(size));
            let mut ring = ferry_engine::LocalEngine::new()?;
            let h = ring.submit(t)?;
            ring.wait(h)?;
        }
        // Servers and proxies (http-static, tcp-proxy) are not byte movers.
        other => return Err(not_a_mover(other)),
    }
    Ok(())
}

/// Sends `path` (`size` bytes) with `method` to a discarding TCP receiver.
pub fn file_to_socket(
    method: Method,
    path: &Path,
    size: u64,
    engines: &Engines,
    expect: Option<Checksum>,
) -> io::Result<RunResult> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sink = spawn_sink(listener, expect.is_some());
    let client = Arc::new(TcpStream::connect(addr)?);
    let file = File::open(path)?;
    let cpu0 = cpu_time(false);
    let t0 = Instant::now();
    send_file(method, &file, &client, false, size, engines)?;
    client.shutdown(Shutdown::Write)?;
    drop(client);
    let (bytes, sum, sink_cpu) = sink.join().map_err(|_| fail("receiver panicked"))??;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time(false) - cpu0).as_secs_f64() - sink_cpu;
    check(method, bytes, size, sum, expect)?;
    Ok(bulk_result(bytes, secs, cpu))
}

fn check(
    method: Method,
    bytes: u64,
    size: u64,
    sum: Checksum,
    expect: Option<Checksum>,
) -> io::Result<()> {
    if bytes != size {
        return Err(fail(format!(
            "{}: {bytes} bytes arrived, {size} expected",
            method.name()
        )));
    }
    if let Some(e) = expect {
        if sum.value() != e.value() {
            return Err(fail(format!(
                "{}: the bytes that arrived differ from the source (checksum)",
                method.name()
            )));
        }
    }
    Ok(())
}

fn bulk_result(bytes: u64, secs: f64, cpu: f64) -> RunResult {
    let mut hist = new_hist();
    hist.saturating_record((secs * 1e6) as u64);
    RunResult {
        bytes,
        secs,
        requests: None,
        hist,
        cpu_secs: cpu.max(0.0),
        latency: None,
        machine_cpu_secs: None,
    }
}

/// The sender's data: a 1 MiB pattern repeated.
fn sender_block() -> Vec<u8> {
    let mut b = vec![0u8; BUF];
    fill_pattern(&mut b, 42);
    b
}

/// The checksum of `size` bytes of the sender's data.
pub fn sender_checksum(size: u64) -> Checksum {
    let b = sender_block();
    let mut c = Checksum::default();
    let mut left = size;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        c.update(&b[..n]);
        left -= n as u64;
    }
    c
}

/// A sender → proxy (the method) → sink chain over loopback.
pub fn socket_to_socket(
    method: Method,
    size: u64,
    engines: &Engines,
    expect: Option<Checksum>,
) -> io::Result<RunResult> {
    let sink_l = TcpListener::bind("127.0.0.1:0")?;
    let sink_addr = sink_l.local_addr()?;
    let sink = spawn_sink(sink_l, expect.is_some());
    let proxy_l = TcpListener::bind("127.0.0.1:0")?;
    let proxy_addr = proxy_l.local_addr()?;
    let sender = std::thread::spawn(move || -> io::Result<f64> {
        let mut s = TcpStream::connect(proxy_addr)?;
        let b = sender_block();
        let mut left = size;
        while left > 0 {
            let n = left.min(BUF as u64) as usize;
            s.write_all(&b[..n])?;
            left -= n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        Ok(cpu_time(true).as_secs_f64())
    });
    let (mut inbound, _) = proxy_l.accept()?;
    let mut outbound = TcpStream::connect(sink_addr)?;
    let cpu0 = cpu_time(false);
    let t0 = Instant::now();
    match method {
        Method::ReadWrite => {
            let mut buf = vec![0u8; BUF];
            loop {
                let n = inbound.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                outbound.write_all(&buf[..n])?;
            }
        }
        Method::StdCopy => {
            io::copy(&mut inbound, &mut outbound)?;
        }
        Method::Splice => {
            let pool = pipe_pool()?;
            let pipe = pool.get()?;
            loop {
                let n = ferry_compat::splice(
                    &inbound,
                    pipe.writer(),
                    pipe.size(),
                    None,
                    None,
                    SpliceFlags::empty(),
                )?;
                if n == 0 {
                    break;
                }
                drain_pipe(&pipe, &outbound, n, None)?;
            }
        }
        Method::EngineUring | Method::EngineBlocking => {
            let engine = engine_for(method, engines)?;
            engine
                .submit(Transfer::new(
                    Arc::new(inbound.try_clone()?),
                    Arc::new(outbound.try_clone()?),
                ))?
                .wait()?;
        }
        Method::EngineLocal => {
            let mut ring = ferry_engine::LocalEngine::new()?;
            let h = ring.submit(Transfer::new(
                Arc::new(inbound.try_clone()?),
                Arc::new(outbound.try_clone()?),
            ))?;
            ring.wait(h)?;
        }
        Method::Sendfile => return Err(fail("sendfile does not apply to socket-to-socket")),
        // Servers and proxies (http-static, tcp-proxy) are not byte movers.
        other => return Err(not_a_mover(other)),
    }
    outbound.shutdown(Shutdown::Write)?;
    drop((inbound, outbound));
    let sender_cpu = sender.join().map_err(|_| fail("sender panicked"))??;
    let (bytes, sum, sink_cpu) = sink.join().map_err(|_| fail("sink panicked"))??;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time(false) - cpu0).as_secs_f64() - sink_cpu - sender_cpu;
    check(method, bytes, size, sum, expect)?;
    Ok(bulk_result(bytes, secs, cpu))
}

/// Copies `src` (`size` bytes) to a new file in `dir` with `method`.
pub fn file_to_file(
    method: Method,
    src_path: &Path,
    size: u64,
    dir: &Path,
    engines: &Engines,
    expect: Option<Checksum>,
) -> io::Result<RunResult> {
    let dst_path = dir.join(format!("copy-{}", method.name()));
    let _ = std::fs::remove_file(&dst_path);
    let src = File::open(src_path)?;
    let dst = Arc::new(
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dst_path)?,
    );
    let cpu0 = cpu_time(false);
    let t0 = Instant::now();
    send_file(method, &src, &dst, true, size, engines)?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time(false) - cpu0).as_secs_f64();
    let bytes = dst.metadata()?.len();
    let sum = match expect {
        Some(_) => Checksum::of_file(&dst_path, 0, bytes)?,
        None => Checksum::default(),
    };
    drop(dst);
    std::fs::remove_file(&dst_path)?;
    check(method, bytes, size, sum, expect)?;
    Ok(bulk_result(bytes, secs, cpu))
}
