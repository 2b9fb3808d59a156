//! Transfers that stand or fall together (a proxy's two directions): the first one to
//! fail cancels the others, and is remembered so that its error is the one reported.

use std::sync::{Arc, Mutex, OnceLock};

/// Asks one member to stop.
type Cancel = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub(crate) struct Group {
    members: Mutex<Vec<(u64, Cancel)>>,
    first_failure: OnceLock<u64>,
}

impl Group {
    /// Adds member `id` (before it is submitted), stopped by `cancel`.
    pub(crate) fn join(&self, id: u64, cancel: Cancel) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, cancel));
    }

    /// Member `id` failed: if it is the first, cancel every other member.
    pub(crate) fn failed(&self, id: u64) {
        if self.first_failure.set(id).is_err() {
            return;
        }
        let others: Vec<Cancel> = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(m, _)| *m != id)
            .map(|(_, c)| c.clone())
            .collect();
        for cancel in others {
            cancel();
        }
    }

    /// The member that failed first.
    pub(crate) fn first_failure(&self) -> Option<u64> {
        self.first_failure.get().copied()
    }
}
