//! The blocking pool: plain threads for [`spawn_blocking`](super::spawn_blocking).
//!
//! Each runtime has one pool, started empty. A closure is queued; if no
//! thread is idle and fewer than `max_threads` run, a thread is started for
//! it. A thread runs queued closures one after another, then waits for more
//! for `keep_alive` and exits if none comes.
//!
//! One mutex guards the queue and the counts; a condvar wakes idle threads.
//! `notified` counts wake-ups handed to idle threads that have not taken
//! them yet, so a burst of spawns starts new threads instead of queueing
//! behind one idle thread. A closure's result goes to its
//! [`Completion`], which wakes the awaiting task (from this thread, through
//! the runtime's remote queue).
//!
//! Shutdown (the runtime is dropped) does not wait: closures already
//! running finish on their threads, which then exit; closures still queued
//! are dropped, and their handles report cancellation.

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use super::completion::Completion;
use super::id::Id;
use super::join::{JoinError, JoinHandle};
use super::task::{drop_catching, forget_panic};

/// The default bound on blocking threads, tokio's.
pub(crate) const DEFAULT_MAX_THREADS: usize = 512;

/// How long an idle blocking thread waits for work by default, tokio's.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) struct BlockingPool {
    inner: Arc<Pool>,
}

struct Pool {
    state: Mutex<PoolState>,
    /// Idle threads wait here.
    work: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    /// Woken when the last closure in flight finishes, so a runtime that
    /// waits for blocking work to drain (a paused clock) looks again.
    unpark: Arc<crate::rt::reactor::Unpark>,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Box<dyn Job>>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work and not yet notified.
    idle: usize,
    /// Notifications sent to idle threads and not yet taken.
    notified: usize,
    /// Closures queued or running.
    in_flight: usize,
    shut_down: bool,
}

/// A queued closure, whatever its type.
trait Job: Send {
    fn run(self: Box<Self>);
}

struct BlockingTask<F, R> {
    /// `None` once run.
    f: Option<F>,
    completion: Arc<Completion<R>>,
}

impl<F, R> Job for BlockingTask<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    fn run(mut self: Box<Self>) {
        let Some(f) = self.f.take() else { return };
        if self.completion.is_aborted() {
            // Aborted before it started: it never runs.
            drop_closure(f);
            self.completion.complete(Err(JoinError::cancelled()));
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panic);
        self.completion.complete(result);
    }
}

impl<F, R> Drop for BlockingTask<F, R> {
    /// Dropped unrun (the runtime shut down): the task is cancelled.
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            drop_closure(f);
            self.completion.complete(Err(JoinError::cancelled()));
        }
    }
}

fn drop_closure<F>(f: F) {
    if let Some(panic) = drop_catching(f) {
        forget_panic(panic);
    }
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        unpark: Arc<crate::rt::reactor::Unpark>,
    ) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Pool {
                state: Mutex::new(PoolState::default()),
                work: Condvar::new(),
                max_threads,
                keep_alive,
                unpark,
            }),
        }
    }

    /// Queues `f`, starting a thread for it if none is idle and the bound
    /// allows.
    ///
    /// # Panics
    /// If the OS refuses to start a thread and the pool has none.
    pub(crate) fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let completion = Completion::new(Id::next());
        let join = completion.join_handle();
        let job = Box::new(BlockingTask {
            f: Some(f),
            completion,
        });
        let mut state = self.inner.lock();
        if state.shut_down {
            drop(state);
            drop(job);
            return join;
        }
        state.queue.push_back(job);
        state.in_flight += 1;
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            drop(state);
            self.inner.work.notify_one();
        } else if state.threads < self.inner.max_threads {
            state.threads += 1;
            drop(state);
            if let Err(error) = self.start_thread() {
                let mut state = self.inner.lock();
                state.threads -= 1;
                if state.threads == 0 {
                    panic!("xev: failed to start a thread for `spawn_blocking`: {error}");
                }
            }
        }
        join
    }

    fn start_thread(&self) -> io::Result<()> {
        let pool = self.inner.clone();
        thread::Builder::new()
            .name("xev-blocking".into())
            .spawn(move || pool.work())
            .map(drop)
    }

    /// Closures queued or running.
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.lock().in_flight
    }

    /// Drops the queued closures (their handles report cancellation) and
    /// lets every thread exit once its closure is done. Does not wait.
    pub(crate) fn shutdown(&self) {
        let mut state = self.inner.lock();
        state.shut_down = true;
        let queued = std::mem::take(&mut state.queue);
        state.in_flight -= queued.len();
        drop(state);
        self.inner.work.notify_all();
        drop(queued);
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // No code runs under the lock that could panic and leave it
        // inconsistent; closures run, and are dropped, outside it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A blocking thread's life: run queued closures; wait up to
    /// `keep_alive` for more; exit.
    fn work(&self) {
        let mut state = self.lock();
        'run: loop {
            while let Some(job) = state.queue.pop_front() {
                drop(state);
                job.run();
                state = self.lock();
                state.in_flight -= 1;
                if state.in_flight == 0 {
                    // Fails only if the runtime's eventfd is gone: then
                    // nobody waits.
                    let _ = self.unpark.wake();
                }
            }
            if state.shut_down {
                break;
            }
            state.idle += 1;
            loop {
                let (next, wait) = self
                    .work
                    .wait_timeout(state, self.keep_alive)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state = next;
                if state.notified > 0 {
                    state.notified -= 1;
                    continue 'run;
                }
                if state.shut_down || wait.timed_out() {
                    state.idle -= 1;
                    break 'run;
                }
                // A spurious wake-up: wait again.
            }
        }
        state.threads -= 1;
    }
}
