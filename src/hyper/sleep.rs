//! [`SendSleep`]: an xev timer behind a `Send + Sync` handle, as hyper's
//! `Timer` requires of its sleeps.
//!
//! xev's own [`Sleep`](crate::time::Sleep) holds its runtime by `Rc`, so it
//! cannot cross threads. A `SendSleep` holds only plain data: its deadline
//! and, once polled, the key of an entry in a thread-local [`Registry`]
//! where the real `Sleep` lives. The entry is made on the first poll, on the
//! runtime's thread, and is found again by key on each later poll.
//!
//! The handle may be dropped anywhere. On the thread that armed it, the
//! drop removes its entry at once, which disarms the timer. Elsewhere (the
//! handle was moved after its first poll) the key goes to that registry's
//! `Graveyard`, a mutex-guarded list the owning thread sweeps the next time
//! it arms a sleep; until then the timer may still fire, which wakes
//! nobody that cares. A handle polled on a thread other than the one that
//! armed it buries the old entry the same way and arms anew where it is.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use slab::Slab;

use crate::time::Sleep;

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::new());
}

/// The sleeps armed on one thread.
struct Registry {
    /// Keys dropped on other threads, to remove here. Its address also
    /// names this registry: a handle armed here holds a clone.
    graveyard: Arc<Graveyard>,
    entries: Slab<Entry>,
    /// Stamped on each entry, so that a key reused by the slab never
    /// matches a handle (or a buried key) of an earlier entry.
    next_generation: u64,
}

struct Entry {
    generation: u64,
    sleep: Sleep,
}

/// Keys of entries whose handles were dropped on another thread.
#[derive(Default)]
struct Graveyard {
    /// Lets the owning thread skip the lock while nothing was buried.
    any: AtomicBool,
    keys: Mutex<Vec<(usize, u64)>>,
}

impl Graveyard {
    fn bury(&self, key: usize, generation: u64) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, generation));
        self.any.store(true, Ordering::Release);
    }
}

impl Registry {
    fn new() -> Registry {
        Registry {
            graveyard: Arc::default(),
            entries: Slab::new(),
            next_generation: 0,
        }
    }

    fn get_mut(&mut self, key: usize, generation: u64) -> Option<&mut Sleep> {
        match self.entries.get_mut(key) {
            Some(entry) if entry.generation == generation => Some(&mut entry.sleep),
            _ => None,
        }
    }

    /// Takes the entry out; the caller drops it once the registry is no
    /// longer borrowed (dropping a `Sleep` drops a waker, which may run
    /// foreign code).
    fn remove(&mut self, key: usize, generation: u64) -> Option<Sleep> {
        self.get_mut(key, generation)?;
        Some(self.entries.remove(key).sleep)
    }

    fn insert(&mut self, sleep: Sleep) -> (usize, u64) {
        let generation = self.next_generation;
        self.next_generation += 1;
        (self.entries.insert(Entry { generation, sleep }), generation)
    }

    /// Removes the entries whose handles were dropped on other threads.
    fn sweep(&mut self, dead: &mut Vec<Sleep>) {
        if !self.graveyard.any.swap(false, Ordering::Acquire) {
            return;
        }
        let keys = std::mem::take(
            &mut *self
                .graveyard
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        dead.extend(
            keys.into_iter()
                .filter_map(|(key, generation)| self.remove(key, generation)),
        );
    }
}

/// Where a polled [`SendSleep`] is armed.
struct Armed {
    /// The registry of the thread that armed it (by identity).
    graveyard: Arc<Graveyard>,
    key: usize,
    generation: u64,
}

impl Armed {
    fn is_in(&self, registry: &Registry) -> bool {
        Arc::ptr_eq(&self.graveyard, &registry.graveyard)
    }

    /// Removes the entry now if this thread owns it, or leaves its key for
    /// the owning thread to remove.
    fn disarm(self) {
        let removed = REGISTRY.try_with(|registry| {
            let mut registry = registry.try_borrow_mut().ok()?;
            if !self.is_in(&registry) {
                return None;
            }
            Some(registry.remove(self.key, self.generation))
        });
        match removed {
            // Dropped here, with the registry free again.
            Ok(Some(sleep)) => drop(sleep),
            // Another thread's entry, or this thread's registry is busy
            // (a drop from inside a waker) or being torn down.
            _ => self.graveyard.bury(self.key, self.generation),
        }
    }
}

/// A sleep until a deadline on the runtime's clock, `Send + Sync`: the
/// sleep of [`Timer`](super::Timer).
///
/// Created anywhere; armed in the current runtime's timers on its first
/// poll; the runtime wakes its task once the deadline has passed. It panics
/// when polled where xev's [`Sleep`] would: outside a runtime while its
/// deadline is still ahead, or after its runtime was dropped.
pub(crate) struct SendSleep {
    deadline: Instant,
    armed: Option<Armed>,
}

impl SendSleep {
    pub(crate) fn until(deadline: Instant) -> SendSleep {
        SendSleep {
            deadline,
            armed: None,
        }
    }

    /// Moves the deadline; the sleep can then be awaited again. A task
    /// waiting for it stays registered, and is woken at once if the new
    /// deadline has passed.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let Some(armed) = &self.armed else { return };
        let waker = REGISTRY.try_with(|registry| {
            let mut registry = registry.try_borrow_mut().ok()?;
            if !armed.is_in(&registry) {
                return None;
            }
            let sleep = registry.get_mut(armed.key, armed.generation)?;
            Some(sleep.reset_deferring_wake(deadline))
        });
        match waker {
            Ok(Some(waker)) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            // Not armed here (or not reachable): arm anew at the next poll.
            _ => {
                if let Some(armed) = self.armed.take() {
                    armed.disarm();
                }
            }
        }
    }
}

impl Future for SendSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut dead = Vec::new();
        let poll = REGISTRY.with(|registry| {
            let mut registry = registry.borrow_mut();
            if let Some(armed) = &this.armed {
                if armed.is_in(&registry) {
                    if let Some(sleep) = registry.get_mut(armed.key, armed.generation) {
                        return Pin::new(sleep).poll(cx);
                    }
                }
            }
            // First poll, or polled on another thread than the one that
            // armed it: arm it here.
            if let Some(stale) = this.armed.take() {
                if stale.is_in(&registry) {
                    dead.extend(registry.remove(stale.key, stale.generation));
                } else {
                    stale.graveyard.bury(stale.key, stale.generation);
                }
            }
            registry.sweep(&mut dead);
            let mut sleep = crate::time::sleep_until(this.deadline);
            if Pin::new(&mut sleep).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let (key, generation) = registry.insert(sleep);
            this.armed = Some(Armed {
                graveyard: registry.graveyard.clone(),
                key,
                generation,
            });
            Poll::Pending
        });
        drop(dead);
        poll
    }
}

impl Drop for SendSleep {
    fn drop(&mut self) {
        if let Some(armed) = self.armed.take() {
            armed.disarm();
        }
    }
}

impl hyper::rt::Sleep for SendSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn is_send_and_sync() {
        assert_send_sync::<SendSleep>();
    }

    fn armed_entries() -> usize {
        REGISTRY.with(|registry| registry.borrow().entries.len())
    }

    #[test]
    fn dropping_on_its_thread_frees_the_entry() {
        crate::rt::block_on(async {
            let mut sleep = SendSleep::until(crate::time::now() + Duration::from_secs(60));
            let before = armed_entries();
            assert!(poll_once(&mut sleep).is_pending());
            assert_eq!(armed_entries(), before + 1);
            drop(sleep);
            assert_eq!(armed_entries(), before);
        });
    }

    #[test]
    fn dropping_on_another_thread_frees_the_entry_at_the_next_arm() {
        crate::rt::block_on(async {
            let mut sleep = SendSleep::until(crate::time::now() + Duration::from_secs(60));
            let before = armed_entries();
            assert!(poll_once(&mut sleep).is_pending());
            std::thread::spawn(move || drop(sleep)).join().unwrap();
            assert_eq!(armed_entries(), before + 1, "buried, not yet swept");
            let mut next = SendSleep::until(crate::time::now() + Duration::from_secs(60));
            assert!(poll_once(&mut next).is_pending());
            assert_eq!(armed_entries(), before + 1, "swept, and the new one armed");
        });
    }

    fn poll_once(sleep: &mut SendSleep) -> Poll<()> {
        let waker = futures::task::noop_waker();
        Pin::new(sleep).poll(&mut Context::from_waker(&waker))
    }
}
