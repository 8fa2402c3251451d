//! [`Notifier`]: an event that any thread can raise and any number of tasks,
//! on any runtimes, can wait for.
//!
//! The pool uses it where one thread must reach every worker at once: the
//! pool closing, a `run` stopping its workers after a panic, a shutdown
//! starting (or its grace period being cut short).
//!
//! A waiter remembers the version it last saw; it is ready once the version
//! has moved past it. Its waker sits in a slab under the lock, at a key the
//! waiter keeps with the version it registered at: a `notify` drains the
//! slab and bumps the version in one critical section, so a key whose
//! version is still current is still the waiter's own, and one whose
//! version is past was drained with the rest (and may now belong to someone
//! else: it is never touched again).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub(crate) struct Notifier {
    /// How many times `notify` was called; read without the lock on the
    /// fast path, written only under it.
    version: AtomicU64,
    wakers: Mutex<Slab<Waker>>,
}

impl Notifier {
    pub(crate) fn new() -> Notifier {
        Notifier::default()
    }

    fn lock(&self) -> MutexGuard<'_, Slab<Waker>> {
        // A waker that panicked in `wake` poisoned nothing we rely on.
        self.wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The number of notifications so far.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Whether `notify` was called at least once.
    pub(crate) fn is_notified(&self) -> bool {
        self.version() > 0
    }

    /// Moves the version on and wakes every waiter, from any thread.
    pub(crate) fn notify(&self) {
        let wakers = {
            let mut wakers = self.lock();
            self.version.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *wakers)
        };
        // Woken outside the lock: a waker may be foreign code.
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// A future that is ready once the version is past `seen`.
    pub(crate) fn changed(self: &Arc<Self>, seen: u64) -> Changed {
        Changed {
            notifier: self.clone(),
            seen,
            slot: None,
        }
    }

    /// A future that is ready once `notify` has been called (at once if it
    /// has been already).
    pub(crate) fn notified(self: &Arc<Self>) -> Changed {
        self.changed(0)
    }
}

/// The future of [`Notifier::changed`]: ready with the new version.
pub(crate) struct Changed {
    notifier: Arc<Notifier>,
    seen: u64,
    /// Where this future's waker is, and the version it was stored at.
    slot: Option<(usize, u64)>,
}

impl Changed {
    /// Polls for a version past the one this future was made with.
    pub(crate) fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let version = self.notifier.version();
        if version != self.seen {
            return Poll::Ready(version);
        }
        let mut wakers = self.notifier.lock();
        // Under the lock the version cannot move: check it again.
        let version = self.notifier.version();
        if version != self.seen {
            return Poll::Ready(version);
        }
        match self.slot {
            Some((key, stored_at)) if stored_at == version => {
                let stored = &mut wakers[key];
                if !stored.will_wake(cx.waker()) {
                    let old = std::mem::replace(stored, cx.waker().clone());
                    drop(wakers);
                    drop(old);
                }
            }
            _ => self.slot = Some((wakers.insert(cx.waker().clone()), version)),
        }
        Poll::Pending
    }
}

impl Future for Changed {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        self.get_mut().poll_changed(cx)
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let Some((key, stored_at)) = self.slot.take() {
            let mut wakers = self.notifier.lock();
            if self.notifier.version() == stored_at {
                let waker = wakers.try_remove(key);
                drop(wakers);
                drop(waker);
            }
        }
    }
}
