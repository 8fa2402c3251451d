//! Join handles, abort handles and join errors: what the spawner of a task
//! keeps.
//!
//! A [`JoinHandle`] holds its task through the [`Join`] trait, which two
//! kinds of task implement: a task spawned on the handle's own thread (the
//! `Rc`'d task itself: no atomics, no lock), and one whose result crosses
//! threads (a [`Completion`](super::completion::Completion): a mutex-guarded
//! slot, for `Handle::spawn` from another thread and `spawn_blocking`). An
//! [`AbortHandle`] holds the thread-safe part of either through [`Abort`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::id::Id;

/// What a [`JoinHandle`] needs of a task.
pub(crate) trait Join<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    fn abort(&self);
    fn is_finished(&self) -> bool;
    fn id(&self) -> Id;
    fn abort_handle(&self) -> AbortHandle;
    /// The handle is being dropped: drop the result if there is one, and
    /// any result to come as soon as it comes.
    fn detach(&self);
}

/// What an [`AbortHandle`] needs of a task, from any thread.
pub(crate) trait Abort: Send + Sync {
    fn abort(&self);
    fn is_finished(&self) -> bool;
    fn id(&self) -> Id;
}

/// An owned permission to await a spawned task's result.
///
/// Awaiting it gives `Ok(output)` once the task completes, or a [`JoinError`]
/// if the task panicked or was aborted. Dropping it *detaches* the task: the
/// task keeps running and its output is dropped when it completes. A panic
/// in the destructor of a detached task's output is caught and discarded:
/// it never reaches the runtime, `block_on` or the code dropping the handle.
///
/// A handle is not `Send`: it is awaited on the thread that got it. A handle
/// from [`Handle::spawn`](super::Handle::spawn) on another thread, or from
/// [`spawn_blocking`](super::spawn_blocking), can be awaited there by any
/// executor (its result crosses threads through a lock); a handle from
/// [`rt::spawn`](super::spawn) costs no atomic operation.
///
/// # Cancel safety
/// Awaiting a `JoinHandle` is cancel safe: dropping the `.await` loses
/// nothing, and the handle can be awaited again.
///
/// # Examples
/// ```
/// let sum = xev::rt::block_on(async {
///     let handle = xev::rt::spawn(async { 1 + 2 });
///     handle.await.unwrap()
/// });
/// assert_eq!(sum, 3);
/// ```
pub struct JoinHandle<T> {
    task: Rc<dyn Join<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Rc<dyn Join<T>>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    /// Cancels the task: its future is dropped (on the runtime's thread, the
    /// next time the executor reaches it) instead of being polled again, and
    /// awaiting this handle gives a [`JoinError`] whose
    /// [`is_cancelled`](JoinError::is_cancelled) is true. A task aborted
    /// before its first poll never runs. Aborting a finished task does
    /// nothing. If the future's destructor panics, that panic is caught and
    /// the error is a panic instead ([`is_panic`](JoinError::is_panic)), as
    /// if the task had panicked.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// xev::rt::block_on(async {
    ///     let handle = xev::rt::spawn(xev::time::sleep(Duration::from_secs(60)));
    ///     handle.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the task has finished: completed, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The task's [`Id`].
    ///
    /// ```
    /// xev::rt::block_on(async {
    ///     let a = xev::rt::spawn(async {});
    ///     let b = xev::rt::spawn(async {});
    ///     assert_ne!(a.id(), b.id());
    /// });
    /// ```
    pub fn id(&self) -> Id {
        self.task.id()
    }

    /// An [`AbortHandle`] for the task: it can cancel the task from any
    /// thread, but cannot await it. The task is not detached.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// xev::rt::block_on(async {
    ///     let handle = xev::rt::spawn(xev::time::sleep(Duration::from_secs(60)));
    ///     let abort = handle.abort_handle();
    ///     std::thread::spawn(move || abort.abort()).join().unwrap();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        self.task.abort_handle()
    }
}

impl<T> Drop for JoinHandle<T> {
    /// Detaches the task. If it has finished, its output is dropped here; a
    /// panic in that destructor is caught (the task is done, and nobody
    /// asked for its output).
    fn drop(&mut self) {
        self.task.detach();
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.task.poll_join(cx)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Permission to cancel a task, without awaiting it: from
/// [`JoinHandle::abort_handle`] or [`JoinSet::spawn`](super::JoinSet::spawn).
///
/// It is `Send + Sync` (tasks need not be), so another thread can cancel a
/// task: the task is woken, and the runtime drops its future on its own
/// thread. Dropping an `AbortHandle` does nothing to the task.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// xev::rt::block_on(async {
///     let task = xev::rt::spawn(xev::time::sleep(Duration::from_secs(60)));
///     let abort = task.abort_handle();
///     assert_eq!(abort.id(), task.id());
///     abort.abort();
///     assert!(task.await.unwrap_err().is_cancelled());
///     assert!(abort.is_finished());
/// });
/// ```
#[derive(Clone)]
pub struct AbortHandle {
    task: Arc<dyn Abort>,
}

impl AbortHandle {
    pub(crate) fn new(task: Arc<dyn Abort>) -> AbortHandle {
        AbortHandle { task }
    }

    /// Cancels the task, as [`JoinHandle::abort`] does. From another
    /// thread, the task is cancelled when its runtime next runs. A
    /// [`spawn_blocking`](super::spawn_blocking) closure that has started
    /// cannot be stopped: it runs to the end and its result is kept.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the task has finished: completed, panicked or been
    /// cancelled.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The task's [`Id`].
    pub fn id(&self) -> Id {
        self.task.id()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task did not produce its output: it was aborted, or it panicked.
///
/// A panic in a task is caught, so it never takes the runtime down; its
/// payload comes back here. Its `Display` includes the panic message when
/// the payload is a string.
///
/// # Examples
/// ```
/// xev::rt::block_on(async {
///     let task = xev::rt::spawn(async { panic!("boom") });
///     let error = task.await.unwrap_err();
///     assert!(error.is_panic());
///     assert_eq!(error.to_string(), r#"task panicked with message "boom""#);
///     let payload = error.into_panic();
///     assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// });
/// ```
pub struct JoinError {
    panic: Option<Box<dyn Any + Send + 'static>>,
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError { panic: None }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            panic: Some(payload),
        }
    }

    /// The task was aborted (or dropped by a runtime shutting down).
    pub fn is_cancelled(&self) -> bool {
        self.panic.is_none()
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        self.panic.is_some()
    }

    /// The panic's payload, to re-raise it with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    /// If the task was cancelled rather than panicking; check
    /// [`is_panic`](Self::is_panic) or use [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("`JoinError::into_panic` called on a cancelled task's error")
    }

    /// The panic's payload, or the error itself if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.panic {
            Some(payload) => Ok(payload),
            None => Err(self),
        }
    }

    fn panic_message(&self) -> Option<&str> {
        let payload = self.panic.as_ref()?;
        payload
            .downcast_ref::<&'static str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.panic, self.panic_message()) {
            (None, _) => f.write_str("task was cancelled"),
            (Some(_), Some(message)) => write!(f, "task panicked with message {message:?}"),
            (Some(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.panic, self.panic_message()) {
            (None, _) => f.write_str("JoinError::Cancelled"),
            (Some(_), Some(message)) => write!(f, "JoinError::Panic({message:?})"),
            (Some(_), None) => f.write_str("JoinError::Panic(..)"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(error: JoinError) -> io::Error {
        io::Error::other(error.to_string())
    }
}
