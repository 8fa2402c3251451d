//! [`Shared`]: the part of a runtime that other threads touch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::blocking::BlockingPool;
use super::context;
use super::runtime::Core;
use super::task::TaskId;

/// The part of a runtime that other threads touch: the queue of wakes and
/// spawns that come from them, and the means to interrupt the reactor.
pub(crate) struct Shared {
    pub(super) remote_queue: Mutex<RemoteQueue>,
    /// True from the first remote wake until the loop drains the remote queue,
    /// so a storm of wakes writes to the reactor's eventfd once.
    pub(super) notified: AtomicBool,
    pub(super) unpark: Arc<crate::rt::reactor::Unpark>,
    /// The threads of `spawn_blocking`.
    pub(crate) blocking: BlockingPool,
    /// The backend the runtime's reactor runs on.
    pub(crate) backend: super::Backend,
}

/// A future sent from another thread, with what spawns it on the runtime's
/// thread.
pub(crate) type RemoteSpawn = Box<dyn FnOnce(&Core) + Send>;

#[derive(Default)]
pub(crate) struct RemoteQueue {
    pub(super) wakes: Vec<TaskId>,
    pub(super) spawns: Vec<RemoteSpawn>,
    /// The runtime is gone or going: spawns are dropped at once (which
    /// reports their tasks cancelled).
    pub(super) closed: bool,
}

impl Shared {
    /// Queues a woken task: on the local run queue when called on the
    /// runtime's own thread while it is current, else on the remote queue.
    #[inline]
    pub(crate) fn schedule(self: &Arc<Shared>, id: TaskId) {
        let local = context::with_current(|core| {
            if Arc::ptr_eq(&core.shared, self) {
                core.run_queue.push(id);
                true
            } else {
                false
            }
        });
        if local != Some(true) {
            self.schedule_remote(id);
        }
    }

    #[cold]
    fn schedule_remote(&self, id: TaskId) {
        self.lock_remote().wakes.push(id);
        self.notify();
    }

    /// Queues a spawn from another thread (or from the runtime's own thread
    /// while the runtime is not current); drops it if the runtime is gone.
    pub(crate) fn spawn_remote(&self, spawn: RemoteSpawn) {
        let mut queue = self.lock_remote();
        if queue.closed {
            drop(queue);
            drop(spawn);
            return;
        }
        queue.spawns.push(spawn);
        drop(queue);
        self.notify();
    }

    pub(super) fn lock_remote(&self) -> std::sync::MutexGuard<'_, RemoteQueue> {
        self.remote_queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // Fails only if the eventfd is gone, i.e. the runtime is being
            // dropped: then there is nobody left to wake.
            let _ = self.unpark.wake();
        }
    }
}
