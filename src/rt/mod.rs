//! The runtime: an executor for `!Send` futures on one thread, a mio reactor
//! and timers.
//!
//! [`block_on`] is the entry point: it builds a [`Runtime`], runs a future to
//! completion on the current thread, and drops the runtime (and every task
//! still on it). Inside, [`spawn`] starts tasks that run concurrently with
//! the main future, on the same thread.
//!
//! ```
//! use std::time::Duration;
//!
//! let total = xev::rt::block_on(async {
//!     let tasks: Vec<_> = (1..=3u64)
//!         .map(|n| {
//!             xev::rt::spawn(async move {
//!                 xev::time::sleep(Duration::from_millis(n)).await;
//!                 n * 10
//!             })
//!         })
//!         .collect();
//!     let mut total = 0;
//!     for task in tasks {
//!         total += task.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 60);
//! ```

mod backend;
mod blocking;
mod builder;
mod completion;
pub(crate) mod context;
mod handle;
mod id;
mod join;
mod join_set;
mod metrics;
mod pool;
pub(crate) mod reactor;
pub(crate) mod run_queue;
pub(crate) mod runtime;
pub(crate) mod shared;
pub(crate) mod task;
pub(crate) mod timer;
pub(crate) mod waiters;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use backend::Backend;
pub use builder::Builder;
pub use handle::{EnterGuard, Handle, TryCurrentError};
pub use id::Id;
pub use join::{AbortHandle, JoinError, JoinHandle};
pub use join_set::JoinSet;
pub use metrics::RuntimeMetrics;
pub use pool::{AcceptMode, Pool, PoolBuilder, Server, ShutdownHandle, ShutdownRequested, Worker};
pub use runtime::Runtime;

/// Runs `future` to completion on a new runtime on the current thread, then
/// drops the runtime: tasks still running are dropped, on this thread.
///
/// # Panics
/// If called from inside a runtime (use [`spawn`] or `.await` there), if the
/// OS refuses to create the reactor, or if `future` panics.
///
/// # Examples
/// ```
/// let n = xev::rt::block_on(async { 6 * 7 });
/// assert_eq!(n, 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime =
        Runtime::new().unwrap_or_else(|error| panic!("xev: failed to build a runtime: {error}"));
    runtime.block_on(future)
}

/// Spawns a task on the current runtime and returns its [`JoinHandle`].
///
/// The future need not be `Send`: it is polled and dropped only on the
/// runtime's thread. The task starts at the runtime's next tick, not inside
/// `spawn`. While the runtime is being dropped (from a destructor of one of
/// its tasks, say), the future is dropped at once and its handle reports
/// the task cancelled.
///
/// To spawn from another thread, use a [`Handle`]; to spawn outside
/// `block_on`, [`Runtime::spawn`] or [`Runtime::enter`].
///
/// # Panics
/// Outside a runtime, with a message saying to call it inside `block_on`.
///
/// # Examples
/// ```
/// use std::rc::Rc;
///
/// xev::rt::block_on(async {
///     let shared = Rc::new(5); // not Send, and that is fine
///     let task = xev::rt::spawn({
///         let shared = shared.clone();
///         async move { *shared * 2 }
///     });
///     assert_eq!(task.await.unwrap(), 10);
/// });
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    context::current("`xev::rt::spawn`").spawn(future)
}

/// Runs `f` on a thread of the runtime's blocking pool, and returns a
/// [`JoinHandle`] for its result: for blocking calls and long computations
/// that would otherwise stop every task on the runtime's thread.
///
/// Threads start on demand, up to [`Builder::max_blocking_threads`]
/// (default 512); past that, closures wait in a queue. An idle thread exits
/// after [`Builder::thread_keep_alive`] (default 10 s). A panic in `f` comes
/// back as a [`JoinError`] ([`is_panic`](JoinError::is_panic)). When the
/// result is ready, the awaiting task is woken through the runtime's
/// cross-thread wake.
///
/// A closure cannot be stopped once it runs: [`JoinHandle::abort`] only
/// keeps a queued one from starting. Dropping the runtime does not wait for
/// closures: those running finish on their threads (which then exit), those
/// still queued are dropped and their handles report cancellation.
///
/// # Panics
/// Outside a runtime; or if the OS refuses to start a thread and the pool
/// has none.
///
/// # Examples
/// ```
/// let sum = xev::rt::block_on(async {
///     // The runtime's thread goes on serving other tasks meanwhile.
///     let task = xev::rt::spawn_blocking(|| (1..=1_000_000u64).sum::<u64>());
///     task.await.unwrap()
/// });
/// assert_eq!(sum, 500_000_500_000);
/// ```
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    context::current("`xev::rt::spawn_blocking`")
        .shared
        .blocking
        .spawn(f)
}

/// The [`Id`] of the task being polled, or `None` outside a task: outside a
/// runtime, and in the future given to `block_on` (which is not a task).
///
/// # Examples
/// ```
/// xev::rt::block_on(async {
///     assert_eq!(xev::rt::try_id(), None); // block_on's own future
///     let task = xev::rt::spawn(async { xev::rt::try_id() });
///     let id = task.id();
///     assert_eq!(task.await.unwrap(), Some(id));
/// });
/// assert_eq!(xev::rt::try_id(), None);
/// ```
pub fn try_id() -> Option<Id> {
    context::with_current(|core| core.current_task_id()).flatten()
}

/// Counts of the current runtime's tasks, sockets and timers: for tests
/// and monitoring (a leak shows as a count that keeps growing).
///
/// # Panics
/// Outside a runtime.
///
/// ```
/// xev::rt::block_on(async {
///     let before = xev::rt::metrics();
///     let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     assert_eq!(xev::rt::metrics().registered_sockets, before.registered_sockets + 1);
///     drop(listener);
///     assert_eq!(xev::rt::metrics(), before);
/// });
/// ```
pub fn metrics() -> RuntimeMetrics {
    context::current("`xev::rt::metrics`").metrics()
}

/// Yields to the runtime once: other ready tasks, I/O and timers get a turn
/// before the caller goes on.
///
/// # Cancel safety
/// Cancel safe: it holds no state, so dropping it loses nothing (the wake it
/// queued at most polls the task once more).
///
/// # Examples
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// xev::rt::block_on(async {
///     let ran = Rc::new(Cell::new(false));
///     let task = xev::rt::spawn({
///         let ran = ran.clone();
///         async move { ran.set(true) }
///     });
///     assert!(!ran.get()); // a spawned task starts at the next tick...
///     xev::rt::yield_now().await;
///     assert!(ran.get()); // ...which the yield let happen
///     task.await.unwrap();
/// });
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
