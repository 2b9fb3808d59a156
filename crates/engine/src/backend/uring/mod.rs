//! The io_uring executor: `threads` rings, each driven by its own thread
//! ([`driver`]), plus a few blocking workers for file → file (io_uring has no
//! `copy_file_range` opcode, and two io-wq splices per MiB are slower than one
//! `copy_file_range`: docs/engine.md). Jobs go to ring `id % threads`.

pub(crate) mod buf_ring;
mod conn;
mod driver;
mod local;
mod ring;
mod sqe;
mod wake;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use super::blocking::Blocking;
use super::{Ctx, Executor};
use crate::backend_kind::RunsOn;
use crate::job::Job;
use crate::plan::Caps;
use crate::transfer::TransferKind;
use driver::{Driver, Msg};
use wake::Wake;

pub(crate) use local::UringLocal;

/// Blocking workers of an io_uring engine for its file → file transfers.
const FILE_WORKERS: usize = 4;

struct DriverHandle {
    tx: Sender<Msg>,
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

pub(crate) struct Uring {
    ctx: Ctx,
    drivers: Vec<DriverHandle>,
    files: Blocking,
}

impl Uring {
    pub(crate) fn start(ctx: Ctx) -> io::Result<Uring> {
        let mut drivers = Vec::new();
        for i in 0..ctx.config.threads.max(1) {
            match start_driver(ctx.clone(), i) {
                Ok(d) => drivers.push(d),
                Err(e) => {
                    stop_drivers(&mut drivers);
                    return Err(e);
                }
            }
        }
        let files = match Blocking::start(ctx.clone(), FILE_WORKERS, "ferry-file") {
            Ok(f) => f,
            Err(e) => {
                stop_drivers(&mut drivers);
                return Err(e);
            }
        };
        Ok(Uring {
            ctx,
            drivers,
            files,
        })
    }

    /// Tells the driver of job `id` something; false if that driver is gone.
    fn send(drivers: &[DriverHandle], id: u64, msg: Msg) -> Result<(), Msg> {
        let d = &drivers[(id % drivers.len() as u64) as usize];
        d.tx.send(msg).map_err(|e| e.into_inner())?;
        d.wake.wake();
        Ok(())
    }

    #[cfg(test)]
    fn inject_failure(&self) {
        for d in &self.drivers {
            let _ = d.tx.send(Msg::Fail);
            d.wake.wake();
        }
    }
}

fn start_driver(ctx: Ctx, i: usize) -> io::Result<DriverHandle> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let wake = Arc::new(Wake::new()?);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<io::Result<()>>(1);
    let wake2 = wake.clone();
    let thread = std::thread::Builder::new()
        .name(format!("ferry-ring-{i}"))
        .spawn(move || match Driver::new(ctx, rx, wake2) {
            Ok(mut d) => {
                let _ = ready_tx.send(Ok(()));
                d.run();
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })?;
    let ready = ready_rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("ring thread died during setup")));
    if let Err(e) = ready {
        let _ = thread.join();
        return Err(e);
    }
    Ok(DriverHandle {
        tx,
        wake,
        thread: Some(thread),
    })
}

fn stop_drivers(drivers: &mut [DriverHandle]) {
    for d in drivers.iter() {
        let _ = d.tx.send(Msg::Shutdown);
        d.wake.wake();
    }
    for d in drivers.iter_mut() {
        if let Some(t) = d.thread.take() {
            let _ = t.join();
        }
    }
}

impl Executor for Uring {
    fn runs_on(&self) -> RunsOn {
        RunsOn::RingThreads
    }

    fn caps(&self, kind: TransferKind) -> Caps {
        match kind {
            TransferKind::FileToFile => self.files.caps(kind),
            _ => Caps::RING,
        }
    }

    fn submit(&self, job: Job) {
        if job.kind == TransferKind::FileToFile {
            return self.files.submit(job);
        }
        let id = job.id;
        if let Err(Msg::Submit(job)) = Self::send(&self.drivers, id, Msg::Submit(Box::new(job))) {
            job.fail(
                &self.ctx.recorder,
                io::ErrorKind::Other,
                "io_uring driver is gone",
            );
        }
    }

    fn canceller(&self) -> Arc<dyn Fn(u64) + Send + Sync> {
        let routes: Vec<DriverHandle> = self
            .drivers
            .iter()
            .map(|d| DriverHandle {
                tx: d.tx.clone(),
                wake: d.wake.clone(),
                thread: None,
            })
            .collect();
        Arc::new(move |id| {
            let _ = Self::send(&routes, id, Msg::Cancel(id));
        })
    }

    fn shutdown(&mut self) {
        stop_drivers(&mut self.drivers);
        self.files.shutdown();
    }
}

#[cfg(test)]
mod tests;
