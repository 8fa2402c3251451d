//! [`JoinSet`]: a set of tasks, joined in the order they finish.
//!
//! Each task's `JoinHandle` sits in a slab, and is polled (first at spawn)
//! with a waker of its own that, when the task finishes, puts its slot
//! number on a shared ready list and wakes whoever awaits `join_next`. So
//! `join_next` polls only handles that were woken, in the order their
//! tasks finished: joining n tasks costs O(n), not O(n^2).

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use super::{spawn, AbortHandle, JoinError, JoinHandle};

/// A set of tasks spawned on the current runtime, to await in the order
/// they finish.
///
/// All tasks have the same output type `T`. [`spawn`](JoinSet::spawn) takes
/// futures that need not be `Send`, as [`rt::spawn`](super::spawn) does.
/// Dropping the set aborts every task still in it (use
/// [`detach_all`](JoinSet::detach_all) first to let them run on).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use xev::rt::JoinSet;
///
/// xev::rt::block_on(async {
///     let mut set = JoinSet::new();
///     for n in [30u64, 10, 20] {
///         set.spawn(async move {
///             xev::time::sleep(Duration::from_millis(n)).await;
///             n
///         });
///     }
///     let mut order = Vec::new();
///     while let Some(result) = set.join_next().await {
///         order.push(result.unwrap());
///     }
///     assert_eq!(order, [10, 20, 30]);
/// });
/// ```
pub struct JoinSet<T> {
    tasks: Slab<Entry<T>>,
    ready: Arc<ReadyList>,
}

struct Entry<T> {
    handle: JoinHandle<T>,
    /// Puts this entry on the ready list when the task finishes.
    waker: Waker,
    /// The same waker, to clear its `queued` flag.
    flag: Arc<EntryWaker>,
    /// The result, if the task finished before the set first polled its
    /// handle (a runtime shutting down cancels new tasks at once).
    early: Option<Result<T, JoinError>>,
}

/// The slots whose handles may be ready, and who waits for one.
struct ReadyList {
    state: Mutex<ReadyState>,
}

#[derive(Default)]
struct ReadyState {
    /// In the order the tasks finished (or were spawned, before their
    /// first poll).
    keys: VecDeque<usize>,
    waiter: Option<Waker>,
}

impl ReadyList {
    fn lock(&self) -> MutexGuard<'_, ReadyState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The waker one entry's handle is polled with.
struct EntryWaker {
    key: usize,
    /// On the ready list already: a burst of wakes adds it once.
    queued: AtomicBool,
    ready: Arc<ReadyList>,
}

impl Wake for EntryWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut state = self.ready.lock();
        state.keys.push_back(self.key);
        let waiter = state.waiter.take();
        drop(state);
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            tasks: Slab::new(),
            ready: Arc::new(ReadyList {
                state: Mutex::new(ReadyState::default()),
            }),
        }
    }

    /// How many tasks are in the set: spawned and not yet joined (finished
    /// ones included until `join_next` returns them).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Aborts every task in the set. They stay in it: `join_next` returns
    /// each (as cancelled, unless it finished first).
    pub fn abort_all(&mut self) {
        for (_, entry) in &self.tasks {
            entry.handle.abort();
        }
    }

    /// Removes every task from the set without aborting it: they run on,
    /// detached, and their outputs are dropped.
    pub fn detach_all(&mut self) {
        self.tasks.clear();
        self.ready.lock().keys.clear();
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns `task` on the current runtime, as [`rt::spawn`](super::spawn)
    /// does, and adds it to the set. Returns an [`AbortHandle`] for it.
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn spawn<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        let mut handle = spawn(task);
        let abort = handle.abort_handle();
        let entry = self.tasks.vacant_entry();
        let key = entry.key();
        let flag = Arc::new(EntryWaker {
            key,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        let waker = Waker::from(flag.clone());
        // Polled once now, so the handle holds the entry's waker and the
        // task is queued for `join_next` exactly when it finishes.
        let early = match Pin::new(&mut handle).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        };
        let finished = early.is_some();
        entry.insert(Entry {
            handle,
            waker,
            flag,
            early,
        });
        if finished {
            self.ready.lock().keys.push_back(key);
        }
        abort
    }

    /// Waits for one of the tasks to finish and returns its result, in the
    /// order they finish; `None` once the set is empty.
    ///
    /// # Cancel safety
    /// Cancel safe: a result is taken from the set only in the poll that
    /// returns it, so dropping the future loses no task.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// Polls for the next finished task: `Ready(None)` when the set is
    /// empty; `Pending` (with `cx`'s waker registered) while no task has
    /// finished.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        if let Some(result) = self.next_finished(Some(cx)) {
            return Poll::Ready(Some(result));
        }
        if self.tasks.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// The result of a task that has finished, if any, without waiting:
    /// `None` if the set is empty or no task has finished yet.
    ///
    /// ```
    /// xev::rt::block_on(async {
    ///     let mut set = xev::rt::JoinSet::new();
    ///     set.spawn(async { 5 });
    ///     assert!(set.try_join_next().is_none()); // not run yet
    ///     xev::rt::yield_now().await;
    ///     assert_eq!(set.try_join_next().unwrap().unwrap(), 5);
    ///     assert!(set.is_empty());
    /// });
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.next_finished(None)
    }

    /// Aborts every task and waits until all have finished; the set is
    /// then empty.
    ///
    /// # Cancel safety
    /// Cancel safe: the tasks are aborted by the first poll; dropping the
    /// future leaves the rest in the set.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// xev::rt::block_on(async {
    ///     let mut set = xev::rt::JoinSet::new();
    ///     set.spawn(xev::time::sleep(Duration::from_secs(60)));
    ///     set.shutdown().await;
    ///     assert!(set.is_empty());
    /// });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Polls the handles on the ready list until one is finished. With `cx`,
    /// registers its waker when the list runs out (in the same critical
    /// section that found it empty, so a wake in between is not lost).
    fn next_finished(&mut self, cx: Option<&mut Context<'_>>) -> Option<Result<T, JoinError>> {
        loop {
            let key = {
                let mut state = self.ready.lock();
                match state.keys.pop_front() {
                    Some(key) => key,
                    None => {
                        if let Some(cx) = &cx {
                            if !state
                                .waiter
                                .as_ref()
                                .is_some_and(|w| w.will_wake(cx.waker()))
                            {
                                state.waiter = Some(cx.waker().clone());
                            }
                        }
                        return None;
                    }
                }
            };
            // A key whose task was joined or detached since it was queued.
            let Some(entry) = self.tasks.get_mut(key) else {
                continue;
            };
            if let Some(result) = entry.early.take() {
                self.tasks.remove(key);
                return Some(result);
            }
            // The flag is cleared before the poll, so a finish during or
            // after it queues the entry again.
            entry.flag.queued.store(false, Ordering::Release);
            let mut entry_cx = Context::from_waker(&entry.waker);
            if let Poll::Ready(result) = Pin::new(&mut entry.handle).poll(&mut entry_cx) {
                self.tasks.remove(key);
                return Some(result);
            }
        }
    }
}

impl<T> Drop for JoinSet<T> {
    /// Aborts every task still in the set.
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}
