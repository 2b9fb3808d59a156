//! `LocalProxyHandle`: a two-way proxy running on a `LocalEngine`.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::LocalHandle;
use crate::events::OpId;
use crate::group::Group;
use crate::proxy::ProxyHandle;

/// A proxy on a [`LocalEngine`](super::LocalEngine), from
/// [`LocalEngine::proxy`](super::LocalEngine::proxy). Its two directions report
/// [`Event::TransferDone`](crate::Event::TransferDone) with the ids of [`ids`](Self::ids);
/// once [`is_finished`](Self::is_finished), [`try_take`](Self::try_take) gives
/// `(client_to_server, server_to_client)` bytes or the first failure (a
/// [`ProxyError`](crate::ProxyError) inside the `io::Error`).
pub struct LocalProxyHandle {
    ids: [OpId; 2],
    /// Boxed: the handle travels by value through `try_take`.
    inner: Box<ProxyHandle>,
}

impl fmt::Debug for LocalProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProxyHandle")
            .field("ids", &self.ids)
            .field("inner", &self.inner)
            .finish()
    }
}

impl LocalProxyHandle {
    pub(super) fn new(up: LocalHandle, down: LocalHandle, group: Arc<Group>) -> Self {
        LocalProxyHandle {
            ids: [up.id(), down.id()],
            inner: Box::new(ProxyHandle::new(up.inner, down.inner, group)),
        }
    }

    /// The ids of the two directions' `TransferDone` events: (client → server,
    /// server → client).
    pub fn ids(&self) -> [OpId; 2] {
        self.ids
    }

    /// Whether both directions have ended.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Bytes moved so far: (client → server, server → client).
    pub fn bytes(&self) -> (u64, u64) {
        self.inner.bytes()
    }

    /// Stops both directions (seen at the next turn); the result is then `Interrupted`.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// The result once both directions ended; the handle back otherwise.
    pub fn try_take(self) -> Result<io::Result<(u64, u64)>, LocalProxyHandle> {
        if self.is_finished() {
            Ok(self.inner.wait())
        } else {
            Err(self)
        }
    }
}
