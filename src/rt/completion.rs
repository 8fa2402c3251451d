//! A task result that crosses threads.
//!
//! A [`Completion`] is the slot a task's result goes to when the task runs
//! on one thread and its [`JoinHandle`] is awaited on another: a future
//! given to [`Handle::spawn`](super::Handle::spawn) from another thread,
//! and a [`spawn_blocking`](super::spawn_blocking) closure. One mutex
//! guards the result, the awaiting waker and the abort request; wakers are
//! woken and results dropped after it is released.
//!
//! A future sent to the runtime runs there as an ordinary local task
//! wrapping it in a [`RemoteTask`], which delivers its output (or panic, or
//! cancellation) to the completion. Aborting through the completion aborts
//! that local task once it exists, and stops it from ever running if it
//! does not yet.

use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::id::Id;
use super::join::{Abort, AbortHandle, Join, JoinError, JoinHandle};
use super::task::{drop_catching, forget_panic};

pub(crate) struct Completion<T> {
    id: Id,
    state: Mutex<State<T>>,
}

struct State<T> {
    result: Slot<T>,
    join_waker: Option<Waker>,
    /// The `JoinHandle` is gone: a result is dropped as soon as it comes.
    detached: bool,
    /// Abort was asked for before the task finished.
    aborted: bool,
    /// The task producing the result, once it runs on the runtime's thread:
    /// aborting goes through it.
    task: Option<AbortHandle>,
}

enum Slot<T> {
    Pending,
    Finished(Result<T, JoinError>),
    /// Taken by the `JoinHandle`, or dropped because it was detached.
    Consumed,
}

impl<T> Completion<T> {
    pub(crate) fn new(id: Id) -> Arc<Completion<T>> {
        Arc::new(Completion {
            id,
            state: Mutex::new(State {
                result: Slot::Pending,
                join_waker: None,
                detached: false,
                aborted: false,
                task: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held, but a poisoned lock is
        // still consistent: every update is a single assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Delivers the task's result and wakes whoever awaits it. Only the first
    /// result counts.
    pub(crate) fn complete(&self, result: Result<T, JoinError>) {
        let mut state = self.lock();
        if !matches!(state.result, Slot::Pending) {
            drop(state);
            drop_quietly(result);
            return;
        }
        let waker = state.join_waker.take();
        let task = state.task.take();
        if state.detached {
            state.result = Slot::Consumed;
            drop(state);
            drop_quietly(result);
        } else {
            state.result = Slot::Finished(result);
            drop(state);
        }
        drop(task);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether abort was asked for: a blocking closure not yet started is
    /// then never run.
    pub(crate) fn is_aborted(&self) -> bool {
        self.lock().aborted
    }

    /// Records the task that produces the result; aborts it at once if
    /// abort was asked for before it existed.
    pub(crate) fn set_task(&self, task: AbortHandle) {
        let mut state = self.lock();
        if state.aborted {
            drop(state);
            task.abort();
        } else if matches!(state.result, Slot::Pending) {
            state.task = Some(task);
        }
    }
}

impl<T: Send + 'static> Completion<T> {
    /// A `JoinHandle` for the result, to be awaited on this thread.
    pub(crate) fn join_handle(self: &Arc<Self>) -> JoinHandle<T> {
        JoinHandle::new(Rc::new(RemoteJoin(self.clone())))
    }

    pub(crate) fn abort_handle(self: &Arc<Self>) -> AbortHandle {
        AbortHandle::new(self.clone())
    }
}

/// Drops a result nobody will read, on this thread, catching a panic in
/// its destructor.
fn drop_quietly<T>(value: T) {
    if let Some(panic) = drop_catching(value) {
        forget_panic(panic);
    }
}

impl<T: Send + 'static> Abort for Completion<T> {
    fn abort(&self) {
        let mut state = self.lock();
        if !matches!(state.result, Slot::Pending) {
            return;
        }
        state.aborted = true;
        let task = state.task.take();
        drop(state);
        if let Some(task) = task {
            task.abort();
        }
    }

    fn is_finished(&self) -> bool {
        !matches!(self.lock().result, Slot::Pending)
    }

    fn id(&self) -> Id {
        self.id
    }
}

/// The `JoinHandle` side of a completion.
struct RemoteJoin<T>(Arc<Completion<T>>);

impl<T: Send + 'static> Join<T> for RemoteJoin<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut state = self.0.lock();
        match mem::replace(&mut state.result, Slot::Consumed) {
            Slot::Finished(result) => Poll::Ready(result),
            Slot::Consumed => panic!("`JoinHandle` polled after it completed"),
            Slot::Pending => {
                state.result = Slot::Pending;
                let waker = match &mut state.join_waker {
                    Some(old) if old.will_wake(cx.waker()) => None,
                    slot => slot.replace(cx.waker().clone()),
                };
                drop(state);
                // A replaced waker is dropped outside the lock.
                drop(waker);
                Poll::Pending
            }
        }
    }

    fn abort(&self) {
        Abort::abort(&*self.0);
    }

    fn is_finished(&self) -> bool {
        Abort::is_finished(&*self.0)
    }

    fn id(&self) -> Id {
        self.0.id
    }

    fn abort_handle(&self) -> AbortHandle {
        self.0.abort_handle()
    }

    fn detach(&self) {
        let mut state = self.0.lock();
        state.detached = true;
        let waker = state.join_waker.take();
        let result = match &state.result {
            Slot::Finished(_) => mem::replace(&mut state.result, Slot::Consumed),
            _ => Slot::Consumed,
        };
        drop(state);
        drop(waker);
        drop_quietly(result);
    }
}

/// A future sent to a runtime from another thread, as the local task runs
/// it: its output, panic or cancellation goes to the completion.
pub(crate) struct RemoteTask<F: Future> {
    /// `None` once the future has finished.
    future: Option<Pin<Box<F>>>,
    completion: Arc<Completion<F::Output>>,
}

impl<F> RemoteTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(future: F, completion: Arc<Completion<F::Output>>) -> RemoteTask<F> {
        RemoteTask {
            future: Some(Box::pin(future)),
            completion,
        }
    }
}

impl<F> Future for RemoteTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(());
        };
        let result = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(panic) => Err(JoinError::panic(panic)),
        };
        // As for a local task: on completion, a panic in the future's
        // destructor is discarded and the output kept.
        drop_quietly(self.future.take());
        self.completion.complete(result);
        Poll::Ready(())
    }
}

impl<F: Future> Drop for RemoteTask<F> {
    /// Aborted, or dropped by a runtime shutting down (or one that had shut
    /// down already): the task is cancelled, or reports the panic of its
    /// future's destructor.
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            let result = match drop_catching(future) {
                None => Err(JoinError::cancelled()),
                Some(panic) => Err(JoinError::panic(panic)),
            };
            self.completion.complete(result);
        }
    }
}
