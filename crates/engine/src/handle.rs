//! Transfer handles: where a completion is delivered (blocking `wait`, `Future`, both).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::group::Group;
use crate::transfer::TransferKind;

/// What a successful transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// Body bytes moved from `src` to `dst` (header and trailer not included).
    pub bytes: u64,
    /// Header bytes written.
    pub header_bytes: u64,
    /// Trailer bytes written.
    pub trailer_bytes: u64,
    /// What kind of transfer it was.
    pub kind: TransferKind,
    /// Time from submit until the engine started it (queueing).
    pub queued: Duration,
    /// Time from start until the last byte was written.
    pub elapsed: Duration,
}

#[derive(Default)]
struct State {
    result: Option<io::Result<Completed>>,
    taken: bool,
    waker: Option<Waker>,
    /// A thread is blocked in `wait`: only then is the condvar notified (a notify is a
    /// futex syscall even when nobody waits).
    waiting: bool,
}

/// Shared between a handle and the backend running the transfer.
pub(crate) struct Slot {
    state: Mutex<State>,
    cv: Condvar,
    pub(crate) cancel: AtomicBool,
    /// Body bytes delivered so far (final once the result is in).
    pub(crate) progress: AtomicU64,
    pub(crate) id: u64,
    canceller: Arc<dyn Fn(u64) + Send + Sync>,
    on_done: Box<dyn Fn() + Send + Sync>,
    /// Transfers that fail together with this one.
    group: Option<Arc<Group>>,
}

impl Slot {
    pub(crate) fn new(
        id: u64,
        canceller: Arc<dyn Fn(u64) + Send + Sync>,
        on_done: Box<dyn Fn() + Send + Sync>,
        group: Option<Arc<Group>>,
    ) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            cancel: AtomicBool::new(false),
            progress: AtomicU64::new(0),
            id,
            canceller,
            on_done,
            group,
        });
        // A member of a group (a proxy's two directions) is stopped when another fails.
        if let Some(g) = &slot.group {
            let weak = Arc::downgrade(&slot);
            g.join(
                id,
                Arc::new(move || {
                    if let Some(s) = weak.upgrade() {
                        s.request_cancel();
                    }
                }),
            );
        }
        slot
    }

    /// Asks for the transfer to stop (once; later calls do nothing).
    pub(crate) fn request_cancel(&self) {
        if !self.cancel.swap(true, Ordering::AcqRel) {
            (self.canceller)(self.id);
        }
    }

    /// Delivers the result (once) and wakes whoever waits.
    pub(crate) fn complete(&self, result: io::Result<Completed>) {
        let (waker, waiting) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.result.is_some() || st.taken {
                return;
            }
            if result.is_err() {
                if let Some(g) = &self.group {
                    g.failed(self.id);
                }
            }
            st.result = Some(result);
            (st.waker.take(), st.waiting)
        };
        (self.on_done)();
        if waiting {
            self.cv.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

/// A submitted transfer. `wait()` blocks for its result; it is also a `Future`.
///
/// Dropping the handle does **not** cancel the transfer: it runs to completion and the
/// result is discarded. Call [`cancel`](Self::cancel) to stop it.
pub struct TransferHandle {
    slot: Arc<Slot>,
}

impl fmt::Debug for TransferHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferHandle")
            .field("id", &self.slot.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl TransferHandle {
    pub(crate) fn new(slot: Arc<Slot>) -> Self {
        TransferHandle { slot }
    }

    /// Blocks until the transfer finishes and returns its result.
    pub fn wait(self) -> io::Result<Completed> {
        let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = st.result.take() {
                st.taken = true;
                return r;
            }
            st.waiting = true;
            st = self.slot.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`wait`](Self::wait) with a limit; `Err(self)` if it is still running.
    pub fn wait_timeout(self, d: Duration) -> Result<io::Result<Completed>, TransferHandle> {
        let deadline = std::time::Instant::now() + d;
        {
            let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(r) = st.result.take() {
                    st.taken = true;
                    return Ok(r);
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                st.waiting = true;
                st = self
                    .slot
                    .cv
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        Err(self)
    }

    /// Whether the result is ready.
    pub fn is_finished(&self) -> bool {
        let st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        st.result.is_some() || st.taken
    }

    /// A live view of the body bytes this transfer has delivered: useful after a
    /// failure (a kernel error is a plain OS error, with no room for the count) and
    /// to watch a long transfer. Keep it before `wait`/`.await` consume the handle.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let engine = ferry_engine::Engine::new()?;
    /// # let (_r, w) = std::io::pipe()?;
    /// # let file = Arc::new(tempfile::tempfile()?);
    /// let h = engine.submit(ferry_engine::Transfer::new(file, Arc::new(w)).len(Some(0)))?;
    /// let progress = h.progress();
    /// let result = h.wait();
    /// println!("{:?} after {} body bytes", result.map(|c| c.bytes), progress.bytes());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn progress(&self) -> Progress {
        Progress {
            slot: self.slot.clone(),
        }
    }

    /// Asks the engine to stop the transfer; it then fails with `Interrupted` (unless it
    /// finished first). Returns at once; the result still arrives through the handle.
    pub fn cancel(&self) {
        self.slot.request_cancel();
    }

    /// This handle, as a future (and `wait`) that **cancels the transfer when dropped**
    /// before it finished: the behaviour a tokio user expects from `select!` or
    /// `tokio::time::timeout`. Dropping it after the transfer finished does nothing.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let engine = ferry_engine::Engine::new()?;
    /// let (r, w) = std::io::pipe()?;
    /// let (_reader_end, writer_end) = std::os::unix::net::UnixStream::pair()?;
    /// let h = engine.submit(ferry_engine::Transfer::new(Arc::new(r), Arc::new(writer_end)))?;
    /// let guard = h.cancel_on_drop();
    /// let progress = guard.progress();
    /// drop(guard); // nobody waits any more: the transfer is cancelled
    /// # drop(w);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel_on_drop(self) -> CancelOnDrop {
        CancelOnDrop { handle: Some(self) }
    }

    pub(crate) fn id(&self) -> u64 {
        self.slot.id
    }
}

impl Future for TransferHandle {
    type Output = io::Result<Completed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = st.result.take() {
            st.taken = true;
            return Poll::Ready(r);
        }
        if st.taken {
            return Poll::Ready(Err(io::Error::other("result already taken")));
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A [`TransferHandle`] that cancels its transfer when dropped unfinished; from
/// [`TransferHandle::cancel_on_drop`]. A `Future` like the handle.
#[derive(Debug)]
pub struct CancelOnDrop {
    handle: Option<TransferHandle>,
}

impl CancelOnDrop {
    /// Blocks until the transfer finishes (it is not cancelled while waiting).
    pub fn wait(mut self) -> io::Result<Completed> {
        match self.handle.take() {
            Some(h) => h.wait(),
            None => Err(io::Error::other("result already taken")),
        }
    }

    /// Asks the engine to stop the transfer now.
    pub fn cancel(&self) {
        if let Some(h) = &self.handle {
            h.cancel();
        }
    }

    /// Body bytes delivered; see [`TransferHandle::progress`].
    pub fn progress(&self) -> Option<Progress> {
        self.handle.as_ref().map(TransferHandle::progress)
    }
}

impl Future for CancelOnDrop {
    type Output = io::Result<Completed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.handle.as_mut() {
            Some(h) => Pin::new(h).poll(cx),
            None => Poll::Ready(Err(io::Error::other("result already taken"))),
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            if !h.is_finished() {
                h.cancel();
            }
        }
    }
}

/// Body bytes a transfer has delivered; from [`TransferHandle::progress`].
#[derive(Clone)]
pub struct Progress {
    slot: Arc<Slot>,
}

impl Progress {
    /// Body bytes delivered to `dst` so far; after completion, the final count
    /// (including for a failed transfer).
    pub fn bytes(&self) -> u64 {
        self.slot.progress.load(Ordering::Acquire)
    }

    /// Whether the transfer has finished (its result is in or was taken).
    pub fn is_finished(&self) -> bool {
        let st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        st.result.is_some() || st.taken
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("id", &self.slot.id)
            .field("bytes", &self.bytes())
            .finish()
    }
}
