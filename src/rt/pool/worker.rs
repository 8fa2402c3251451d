//! A pool's worker threads: how each starts (pinned or not), which
//! [`Worker`] it is, and how it ends.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::notify::Notifier;
use crate::rt::{Builder, Handle};

thread_local! {
    /// The worker this thread is, on a pool's threads.
    static CURRENT: Cell<Option<Worker>> = const { Cell::new(None) };
}

/// Tells the pools of a process apart, so that a pool can recognise its own
/// threads (a `run` from one of them would wait for itself).
pub(super) fn next_pool_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One of a [`Pool`](super::Pool)'s threads, as the future running on it
/// sees it: which one it is, and how many there are.
///
/// A `Worker` is given to the function of [`Pool::run`](super::Pool::run),
/// and [`Worker::current`] finds it anywhere on a worker's thread (in a
/// connection handler of [`Pool::serve`](super::Pool::serve), say).
///
/// ```
/// let pool = xev::rt::Pool::builder().threads(2).build()?;
/// let seen = pool.run(|worker| async move {
///     assert_eq!(xev::rt::Worker::current(), Some(worker));
///     (worker.index(), worker.count())
/// });
/// assert_eq!(seen, [(0, 2), (1, 2)]);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Worker {
    index: usize,
    count: usize,
    pool: u64,
}

impl Worker {
    /// This worker's place in its pool, from 0 to [`count`](Self::count)
    /// less one.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers the pool has.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The worker whose thread this is, or `None` on a thread that is not a
    /// pool's.
    ///
    /// ```
    /// assert_eq!(xev::rt::Worker::current(), None);
    /// ```
    pub fn current() -> Option<Worker> {
        CURRENT.try_with(Cell::get).ok().flatten()
    }

    pub(super) fn pool(&self) -> u64 {
        self.pool
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("count", &self.count)
            .finish()
    }
}

/// A running worker thread: the address of its runtime, and the thread.
pub(super) struct WorkerThread {
    pub(super) handle: Handle,
    pub(super) thread: Option<JoinHandle<()>>,
}

/// What a worker thread needs to start.
pub(super) struct Start {
    pub(super) worker: Worker,
    pub(super) core: Option<core_affinity::CoreId>,
    pub(super) runtime: Builder,
    /// Raised when the pool is dropped: the worker's runtime then ends,
    /// dropping whatever tasks it still has.
    pub(super) close: Arc<Notifier>,
}

/// Starts a worker thread: pins it, builds its runtime, and has it run
/// until the pool closes. Returns once the runtime is up, or with the
/// error that kept it from starting.
pub(super) fn start(start: Start) -> io::Result<WorkerThread> {
    let index = start.worker.index;
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(format!("xev-worker-{index}"))
        .spawn(move || run(start, ready_tx))
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "xev::rt::Pool: the OS refused to start worker thread {index} ({error}); \
                     use fewer threads"
                ),
            )
        })?;
    match ready_rx.recv() {
        Ok(Ok(handle)) => Ok(WorkerThread {
            handle,
            thread: Some(thread),
        }),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(error)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other(format!(
                "xev::rt::Pool: worker thread {index} exited while starting"
            )))
        }
    }
}

/// The body of a worker thread.
fn run(start: Start, ready: mpsc::SyncSender<io::Result<Handle>>) {
    let Start {
        worker,
        core,
        runtime,
        close,
    } = start;
    if let Some(core) = core {
        if !core_affinity::set_for_current(core) {
            let _ = ready.send(Err(io::Error::other(format!(
                "xev::rt::Pool: could not pin worker {} to CPU {} (sched_setaffinity \
                 refused); build the pool with `pin_cores(false)`",
                worker.index, core.id
            ))));
            return;
        }
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(io::Error::new(
                error.kind(),
                format!(
                    "xev::rt::Pool: worker {} could not build its runtime: {error}",
                    worker.index
                ),
            )));
            return;
        }
    };
    CURRENT.with(|current| current.set(Some(worker)));
    if ready.send(Ok(runtime.handle())).is_err() {
        return;
    }
    // Everything the pool asks of this worker arrives as remote spawns;
    // the runtime serves them until the pool is dropped.
    runtime.block_on(close.notified());
    // The runtime (and every task left on it) is dropped here, while the
    // thread still says which worker it is.
    drop(runtime);
    CURRENT.with(|current| current.set(None));
}

impl Worker {
    pub(super) fn new(index: usize, count: usize, pool: u64) -> Worker {
        Worker { index, count, pool }
    }
}
