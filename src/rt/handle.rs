//! [`Handle`]: a runtime's address, for other threads; and [`EnterGuard`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use super::completion::{Completion, RemoteTask};
use super::context::{self, ContextGuard, Missing};
use super::id::Id;
use super::runtime::Runtime;
use super::shared::Shared;
use super::JoinHandle;

/// A handle to a runtime, to spawn tasks on it from any thread.
///
/// It is `Clone + Send + Sync`: get one with [`Handle::current`] (inside a
/// runtime) or [`Runtime::handle`], and hand it to other threads. Futures
/// given to [`spawn`](Handle::spawn) must be `Send`, because they move to the
/// runtime's thread; once there they run like any task, and the returned
/// [`JoinHandle`] can be awaited on the spawning thread (by any executor).
///
/// A handle does not keep its runtime alive: after the runtime is dropped,
/// `spawn` drops the future and its `JoinHandle` reports the task cancelled.
///
/// # Examples
/// ```
/// let rt = xev::rt::Runtime::new().unwrap();
/// let handle = rt.handle();
/// let answer = std::thread::spawn(move || {
///     // On another thread: the future runs on `rt`'s thread.
///     let task = handle.spawn(async { 6 * 7 });
///     futures::executor::block_on(task).unwrap()
/// });
/// // The runtime runs tasks while its thread is in `block_on`.
/// rt.block_on(async {
///     while !answer.is_finished() {
///         xev::time::sleep(std::time::Duration::from_millis(1)).await;
///     }
/// });
/// assert_eq!(answer.join().unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// The backend of the runtime this handle belongs to (see
    /// [`Runtime::backend`](super::Runtime::backend)).
    ///
    /// ```
    /// use xev::rt::{Backend, Handle};
    ///
    /// xev::rt::block_on(async {
    ///     let backend = Handle::current().backend();
    ///     assert!(matches!(backend, Backend::Poll | Backend::IoUring));
    /// });
    /// ```
    pub fn backend(&self) -> super::Backend {
        self.shared.backend
    }

    /// The handle of the current runtime.
    ///
    /// # Panics
    /// Outside a runtime (not inside `block_on`, nor under
    /// [`Runtime::enter`]), with a message saying so. See
    /// [`try_current`](Handle::try_current) for a version that does not
    /// panic.
    ///
    /// ```
    /// xev::rt::block_on(async {
    ///     let handle = xev::rt::Handle::current();
    ///     assert_eq!(handle.spawn(async { 1 }).await.unwrap(), 1);
    /// });
    /// ```
    pub fn current() -> Handle {
        Handle {
            shared: context::current("`Handle::current`").shared.clone(),
        }
    }

    /// The handle of the current runtime, or an error outside one.
    ///
    /// ```
    /// assert!(xev::rt::Handle::try_current().unwrap_err().is_missing_context());
    /// xev::rt::block_on(async {
    ///     assert!(xev::rt::Handle::try_current().is_ok());
    /// });
    /// ```
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        match context::try_with_current(|core| core.shared.clone()) {
            Ok(shared) => Ok(Handle { shared }),
            Err(missing) => Err(TryCurrentError { missing }),
        }
    }

    /// Spawns `future` on the runtime, from any thread.
    ///
    /// The future starts at the runtime's next tick (if the runtime is not
    /// inside `block_on`, at its next `block_on`). The [`JoinHandle`] can
    /// be awaited on this thread with any executor; on the runtime's own
    /// thread this is [`rt::spawn`](super::spawn).
    ///
    /// ```
    /// xev::rt::block_on(async {
    ///     let handle = xev::rt::Handle::current();
    ///     let from_thread = std::thread::spawn(move || {
    ///         futures::executor::block_on(handle.spawn(async { "ran on the runtime" }))
    ///     });
    ///     while !from_thread.is_finished() {
    ///         xev::rt::yield_now().await;
    ///     }
    ///     assert_eq!(from_thread.join().unwrap().unwrap(), "ran on the runtime");
    /// });
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let own = context::with_current(|core| {
            Arc::ptr_eq(&core.shared, &self.shared).then(|| core.clone())
        });
        if let Some(Some(core)) = own {
            return core.spawn(future);
        }
        let id = Id::next();
        let completion = Completion::new(id);
        let join = completion.join_handle();
        let task = RemoteTask::new(future, completion.clone());
        self.shared.spawn_remote(Box::new(move |core| {
            let handle = core.spawn_with_id(id, task);
            completion.set_task(handle.abort_handle());
        }));
        join
    }

    /// Runs `f` on the runtime's blocking pool, from any thread: see
    /// [`rt::spawn_blocking`](super::spawn_blocking).
    ///
    /// ```
    /// let rt = xev::rt::Runtime::new().unwrap();
    /// let handle = rt.handle();
    /// let task = handle.spawn_blocking(|| "done on a pool thread");
    /// assert_eq!(futures::executor::block_on(task).unwrap(), "done on a pool thread");
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.shared.blocking.spawn(f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The error of [`Handle::try_current`]: no runtime is current.
pub struct TryCurrentError {
    missing: Missing,
}

impl TryCurrentError {
    /// No runtime is current on this thread.
    pub fn is_missing_context(&self) -> bool {
        matches!(self.missing, Missing::Context)
    }

    /// The thread is exiting and its runtime context is already gone (a
    /// call from the destructor of a thread-local).
    pub fn is_thread_local_destroyed(&self) -> bool {
        matches!(self.missing, Missing::ThreadLocalDestroyed)
    }
}

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.missing {
            Missing::Context => f.write_str(&context::no_runtime_message("`Handle::try_current`")),
            Missing::ThreadLocalDestroyed => f.write_str(
                "the xev runtime context is gone: this thread is exiting (called from the \
                 destructor of a thread-local)",
            ),
        }
    }
}

impl fmt::Debug for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryCurrentError")
            .field("missing_context", &self.is_missing_context())
            .finish()
    }
}

impl std::error::Error for TryCurrentError {}

/// Keeps a runtime current on this thread, from [`Runtime::enter`].
///
/// While it lives, [`rt::spawn`](super::spawn), [`Handle::current`], timers
/// and socket constructors work outside `block_on`; tasks spawned then run
/// at the runtime's next `block_on`. Dropping it makes current again
/// whatever was before. It is not `Send`: it belongs to the thread that
/// entered.
#[must_use = "the runtime is current only while the guard lives"]
pub struct EnterGuard<'a> {
    _context: ContextGuard,
    _runtime: PhantomData<&'a Runtime>,
}

impl<'a> EnterGuard<'a> {
    pub(crate) fn new(context: ContextGuard) -> EnterGuard<'a> {
        EnterGuard {
            _context: context,
            _runtime: PhantomData,
        }
    }
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}
