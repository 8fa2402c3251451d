//! Tasks and their wakers.
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
//! It also holds what other threads may ask of the task (its [`Id`], and
//! the abort and finished flags), so an [`AbortHandle`] is a `TaskWaker`.
//!
//! [`JoinHandle`]: super::JoinHandle

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::id::Id;
use super::join::{Abort, AbortHandle, Join, JoinError};
use super::shared::Shared;

/// A task's slab key plus the generation of the task that owns the slot, so
/// a wake for a finished task never runs the task that reuses its slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct TaskId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

/// The id `block_on` gives its own future, which lives on its stack.
pub(crate) const MAIN_TASK: TaskId = TaskId {
    key: u32::MAX,
    generation: 0,
};

/// The waker of one task, and what other threads may ask of it.
pub(crate) struct TaskWaker {
    id: TaskId,
    /// Set from the moment the task is queued through its `Waker` until it
    /// is polled, so a burst of wakes queues it once; set for good when the
    /// task finishes, so late wakes cost nothing. (The reactor queues a task
    /// without it; the executor skips the duplicates that can make.)
    scheduled: AtomicBool,
    shared: Arc<Shared>,
    /// The id users see.
    task_id: Id,
    /// Set by `abort` (from any thread); the executor drops the future
    /// instead of polling it.
    aborted: AtomicBool,
    /// Set once the task's result is ready (or dropped, if detached), for
    /// `AbortHandle::is_finished` on other threads.
    finished: AtomicBool,
}

impl TaskWaker {
    /// A waker for a task that is about to be queued (hence `scheduled`).
    pub(crate) fn new(id: TaskId, task_id: Id, shared: Arc<Shared>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            id,
            scheduled: AtomicBool::new(true),
            shared,
            task_id,
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
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

impl Abort for TaskWaker {
    fn abort(&self) {
        if !self.finished.load(Ordering::Acquire)
            && !self.aborted.swap(true, Ordering::AcqRel)
            && self.mark_scheduled()
        {
            self.shared.schedule(self.id);
        }
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn id(&self) -> Id {
        self.task_id
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

    /// The id users see.
    fn id(&self) -> Id;
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
        }
        self.waker_state.finished.store(true, Ordering::Release);
        if let Some(waker) = self.join_waker.take() {
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
        let waker_state = &*self.waker_state;
        waker_state.unschedule();
        if waker_state.aborted.load(Ordering::Acquire) {
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

    fn id(&self) -> Id {
        self.waker_state.task_id
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
        Abort::abort(&*self.waker_state);
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.stage.try_borrow().as_deref(),
            Ok(Stage::Finished(_) | Stage::Consumed)
        )
    }

    fn id(&self) -> Id {
        self.waker_state.task_id
    }

    fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(self.waker_state.clone())
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
