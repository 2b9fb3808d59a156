//! The io_uring executor of a `LocalEngine`: one ring driven by its owner's thread
//! (no driver thread, no hand-off), with an eventfd that becomes readable when
//! completions are posted — registered with the ring only once the owner asks for the
//! fd: the kernel signals a registered eventfd for every CQE, and an owner that only
//! calls `turn` would pay for that (and for a read of it each turn) for nothing.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::driver::{Driver, Msg};
use super::wake::Wake;
use crate::backend::blocking::Blocking;
use crate::backend::ops::ConnOp;
use crate::backend::Executor;
use crate::backend::{Ctx, LocalExec};
use crate::backend_kind::RunsOn;
use crate::events::{Event, OpId};
use crate::job::Job;
use crate::plan::Caps;
use crate::sys;
use crate::transfer::TransferKind;

pub(crate) struct UringLocal {
    driver: Driver,
    tx: Sender<Msg>,
    wake: Arc<Wake>,
    /// Signalled by the kernel for every CQE (`IORING_REGISTER_EVENTFD`) once
    /// `registered`.
    notify: OwnedFd,
    registered: Cell<bool>,
    /// Why registering failed (reported by the next turn).
    register_error: RefCell<Option<io::Error>>,
    /// File → file transfers (io_uring has no `copy_file_range`): one worker thread,
    /// started on the first; a job it finished is told to the ring (`Msg::Done`), whose
    /// next turn reports it.
    files: Option<Blocking>,
    /// The worker could not start: the ring splices file → file itself.
    files_failed: bool,
    ctx: Ctx,
}

impl UringLocal {
    pub(crate) fn new(ctx: Ctx) -> io::Result<UringLocal> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let wake = Arc::new(Wake::new()?);
        let mut driver = Driver::new(ctx.clone(), rx, wake.clone())?;
        let notify = sys::eventfd()?;
        driver.set_local();
        Ok(UringLocal {
            driver,
            tx,
            wake,
            notify,
            registered: Cell::new(false),
            register_error: RefCell::new(None),
            files: None,
            files_failed: false,
            ctx,
        })
    }
}

impl UringLocal {
    /// Sends `msg` to the ring's owner from any thread, and wakes it.
    fn message(&self) -> impl Fn(Msg) + Send + Sync + 'static {
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        move |msg| {
            if tx.send(msg).is_ok() {
                wake.wake();
                // The owner may be asleep in epoll on our fd rather than in the ring.
                wake.signal_anyway();
            }
        }
    }
}

impl LocalExec for UringLocal {
    fn runs_on(&self) -> RunsOn {
        RunsOn::OwnerRing
    }

    fn caps(&self, kind: TransferKind) -> Caps {
        match kind {
            TransferKind::FileToFile if !self.files_failed => Caps::SYSCALLS,
            _ => Caps::RING,
        }
    }

    fn submit(&mut self, job: Job) {
        if job.kind == TransferKind::FileToFile && !self.files_failed {
            if self.files.is_none() {
                let message = self.message();
                let notify: Arc<dyn Fn(u64) + Send + Sync> =
                    Arc::new(move |id| message(Msg::Done(id)));
                let ctx = self.ctx.clone();
                match Blocking::start_notifying(ctx, 1, "ferry-local-file", Some(notify)) {
                    Ok(b) => self.files = Some(b),
                    // Planned for copy_file_range, the job still runs on the ring: with
                    // no opcode for it, the plan steps down to splice.
                    Err(_) => self.files_failed = true,
                }
            }
            if let Some(files) = &self.files {
                return files.submit(job);
            }
        }
        self.driver.submit_job(job);
    }

    fn start_conn(&mut self, id: u64, op: Box<dyn ConnOp>) {
        self.driver.start_conn(id, op);
    }

    fn cancel_conn(&mut self, id: u64) {
        self.driver.cancel_conn(id);
    }

    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        if let Some(e) = self.register_error.borrow_mut().take() {
            return Err(e);
        }
        if self.registered.get() {
            // Empty the eventfd first: a CQE posted after the reap below signals it
            // again, so an owner sleeping on it never misses one.
            sys::eventfd_drain(self.notify.as_fd());
        }
        self.driver.turn(timeout)?;
        out.append(&mut self.driver.events);
        out.extend(
            self.driver
                .finished
                .drain(..)
                .map(|id| Event::TransferDone { op: OpId(id) }),
        );
        Ok(())
    }

    fn fd(&self) -> BorrowedFd<'_> {
        if !self.registered.replace(true) {
            match self.driver.register_eventfd(self.notify.as_raw_fd()) {
                // Completions may already wait: readable once, so the owner turns.
                Ok(()) => sys::eventfd_signal(self.notify.as_fd()),
                Err(e) => {
                    sys::eventfd_signal(self.notify.as_fd()); // the turn reports it
                    *self.register_error.borrow_mut() = Some(e);
                }
            }
        }
        self.notify.as_fd()
    }

    fn canceller(&self) -> Arc<dyn Fn(u64) + Send + Sync> {
        let message = self.message();
        Arc::new(move |id| message(Msg::Cancel(id)))
    }

    fn shutdown(&mut self) {
        // File jobs first: their completions still find the ring to tell.
        if let Some(files) = &mut self.files {
            files.shutdown();
        }
        self.driver.shutdown_local();
    }
}
