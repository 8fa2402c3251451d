//! Tasks, their wakers and their join handles.
//!
//! A task is one `Rc` holding the future (boxed, so safe code can pin it),
//! its result once finished, and the waker of whoever awaits its
//! [`JoinHandle`]. The executor's slab holds it as `Rc<dyn Runnable>`; the
//! handle holds it as `Rc<dyn Join<T>>`, so neither needs to name the future's
//! type.
//!
//! Wakers must be `Send + Sync`, so they cannot point at the task: a
//! [`TaskWaker`] carries the task's id and a handle to the runtime's
//! thread-safe [`Shared`] state, and waking it puts the id on a run queue.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::runtime::Shared;

/// A task's slab key plus the generation of the task that owns the slot, so
/// a wake for a finished task never runs the task that reuses its slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TaskId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

/// The id `block_on` gives its own future, which lives on its stack.
pub(crate) const MAIN_TASK: TaskId = TaskId {
    key: u32::MAX,
    generation: 0,
};

/// The waker of one task.
pub(crate) struct TaskWaker {
    id: TaskId,
    /// Set from the moment the task is queued through its `Waker` until it
    /// is polled, so a burst of wakes queues it once; set for good when the
    /// task finishes, so late wakes cost nothing. (The reactor queues a task
    /// without it; the executor skips the duplicates that can make.)
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl TaskWaker {
    /// A waker for a task that is about to be queued (hence `scheduled`).
    pub(crate) fn new(id: TaskId, shared: Arc<Shared>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            id,
            scheduled: AtomicBool::new(true),
            shared,
        })
    }

    /// Called right before the task is polled: wakes from now on queue it
    /// again. A swap, not a store: its acquire half pairs with the release
    /// half of a wake that found the flag still set, so the poll sees what
    /// that waker's thread wrote before waking.
    pub(crate) fn unschedule(&self) {
        self.scheduled.swap(false, Ordering::AcqRel);
    }

    /// Marks the task queued; `false` if it already was (or has finished).
    pub(crate) fn mark_scheduled(&self) -> bool {
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// The task's `Waker`. Every xev waker is made here, so they all share
    /// one vtable, which lets the reactor recognise them.
    pub(crate) fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(self.clone())
    }
}

impl Wake for TaskWaker {
    #[inline]
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        if self.mark_scheduled() {
            self.shared.schedule(self.id);
        }
    }
}

/// What the executor needs of a task, whatever its future's type.
pub(crate) trait Runnable {
    /// Polls the task once. Returns `true` once it has finished (completed,
    /// panicked or been aborted) and can leave the slab.
    fn run(&self) -> bool;

    /// Drops the future now, reporting the task as cancelled. Used when the
    /// runtime shuts down.
    fn shutdown(&self);
}

/// What a [`JoinHandle`] needs of a task.
trait Join<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    fn abort(&self);
    fn is_finished(&self) -> bool;
    /// The handle is being dropped: drop the result if there is one, and
    /// any result to come as soon as it comes.
    fn detach(&self);
}

enum Stage<F: Future> {
    Running(Pin<Box<F>>),
    Finished(Result<F::Output, JoinError>),
    /// The result has been taken by the `JoinHandle`.
    Consumed,
}

pub(crate) struct Task<F: Future> {
    stage: RefCell<Stage<F>>,
    waker: Waker,
    waker_state: Arc<TaskWaker>,
    /// Set by `JoinHandle::abort`; the executor drops the future instead of
    /// polling it.
    aborted: Cell<bool>,
    /// Whoever awaits the `JoinHandle`.
    join_waker: Cell<Option<Waker>>,
    /// Set when the `JoinHandle` is dropped: the result goes nowhere, so it
    /// is dropped as soon as the task finishes.
    detached: Cell<bool>,
}

impl<F: Future> Task<F> {
    pub(crate) fn new(future: F, waker_state: Arc<TaskWaker>) -> Task<F> {
        Task {
            stage: RefCell::new(Stage::Running(Box::pin(future))),
            waker: waker_state.waker(),
            waker_state,
            aborted: Cell::new(false),
            join_waker: Cell::new(None),
            detached: Cell::new(false),
        }
    }

    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Ends the task with `result`: drops the future, keeps the result for
    /// the handle (or drops it if the handle is gone), and wakes the handle.
    ///
    /// Nothing here unwinds into the executor. A panic in the future's
    /// destructor is caught: when the task was cancelled it becomes the
    /// task's error (as a panic in the task would), when it completed the
    /// output wins and the panic is dropped. A panic while dropping the
    /// result of a detached task is caught and dropped.
    fn finish(&self, result: Result<F::Output, JoinError>) {
        // Wakes after this point are for a task that no longer exists.
        self.waker_state.scheduled.store(true, Ordering::Release);
        let old = self.stage.replace(Stage::Finished(result));
        // The future is dropped outside the borrow: its destructor may use
        // this task's handle.
        if let Some(panic) = drop_catching(old) {
            let mut stage = self.stage.borrow_mut();
            match &*stage {
                Stage::Finished(Err(error)) if error.is_cancelled() => {
                    *stage = Stage::Finished(Err(JoinError::panic(panic)));
                }
                _ => {
                    drop(stage);
                    forget_panic(panic);
                }
            }
        }
        if self.detached.get() {
            let result = self.stage.replace(Stage::Consumed);
            if let Some(panic) = drop_catching(result) {
                forget_panic(panic);
            }
        } else if let Some(waker) = self.join_waker.take() {
            waker.wake();
        }
    }
}

/// Drops `value`, catching a panic in its destructor: the payload, if any.
pub(crate) fn drop_catching<T>(value: T) -> Option<Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).err()
}

/// Discards a caught panic that has nobody to go to. Its payload is dropped
/// too, unless that panics as well: then it is leaked rather than let unwind.
pub(crate) fn forget_panic(panic: Box<dyn Any + Send>) {
    if let Some(payload) = drop_catching(panic) {
        mem::forget(payload);
    }
}

impl<F: Future> Runnable for Task<F> {
    fn run(&self) -> bool {
        self.waker_state.unschedule();
        if self.aborted.get() {
            self.finish(Err(JoinError::cancelled()));
            return true;
        }
        let mut stage = self.stage.borrow_mut();
        let Stage::Running(future) = &mut *stage else {
            return true;
        };
        let mut cx = Context::from_waker(&self.waker);
        let result = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(panic) => Err(JoinError::panic(panic)),
        };
        drop(stage);
        self.finish(result);
        true
    }

    fn shutdown(&self) {
        let running = matches!(self.stage.try_borrow().as_deref(), Ok(Stage::Running(_)));
        if running {
            self.finish(Err(JoinError::cancelled()));
        }
    }
}

impl<F: Future> Join<F::Output> for Task<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        // A task awaiting its own handle finds its stage borrowed: it is
        // running, so it is not finished.
        if let Ok(mut stage) = self.stage.try_borrow_mut() {
            match mem::replace(&mut *stage, Stage::Consumed) {
                Stage::Finished(result) => return Poll::Ready(result),
                Stage::Consumed => panic!("`JoinHandle` polled after it completed"),
                running => *stage = running,
            }
        }
        self.join_waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    fn abort(&self) {
        if !self.is_finished() && !self.aborted.replace(true) {
            self.waker.wake_by_ref();
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.stage.try_borrow().as_deref(),
            Ok(Stage::Finished(_) | Stage::Consumed)
        )
    }

    fn detach(&self) {
        self.detached.set(true);
        drop(self.join_waker.take());
        // A task dropping its own handle finds its stage borrowed: it is
        // running, and `finish` will drop the result.
        let finished = match self.stage.try_borrow_mut() {
            Ok(mut stage) if matches!(&*stage, Stage::Finished(_)) => {
                mem::replace(&mut *stage, Stage::Consumed)
            }
            _ => return,
        };
        if let Some(panic) = drop_catching(finished) {
            forget_panic(panic);
        }
    }
}

/// An owned permission to await a spawned task's result.
///
/// Awaiting it gives `Ok(output)` once the task completes, or a [`JoinError`]
/// if the task panicked or was aborted. Dropping it *detaches* the task: the
/// task keeps running and its output is dropped when it completes. A panic
/// in the destructor of a detached task's output is caught and discarded:
/// it never reaches the runtime, `block_on` or the code dropping the handle.
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
#[must_use = "dropping a JoinHandle detaches the task; await it to get the output"]
pub struct JoinHandle<T> {
    task: Rc<dyn Join<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new<F>(task: Rc<Task<F>>) -> JoinHandle<T>
    where
        F: Future<Output = T> + 'static,
    {
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
    fn cancelled() -> JoinError {
        JoinError { panic: None }
    }

    fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
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
