//! The run queue, and the batch of it that one tick polls.
//!
//! Waking a task pushes its id on the [`RunQueue`]; the loop takes the whole
//! queue at the start of each tick as a [`Batch`] and polls what it holds.
//! The invariants, which the executor's fairness rests on:
//!
//! - **A tick polls only what was queued before it began**, at most
//!   [`BUDGET`] tasks. A task that wakes itself (or is woken by another
//!   task) during the tick lands on the fresh queue and runs next tick,
//!   after the reactor and the timers have had their turn.
//! - **A task is polled at most once per tick.** The same id may be queued
//!   several times (the reactor queues a task once per ready socket it
//!   waited on, without the waker's `scheduled` flag); every id in a batch
//!   predates the tick, so a second one for a task already polled in it is
//!   a duplicate, and the executor skips it by comparing the task's last
//!   polled tick with [`RunQueue::tick`].
//! - **Past the budget, the rest is a backlog** that stays in the batch,
//!   ahead of tasks woken later: the next tick appends the queue behind it.
//!   While a backlog waits, the reactor is polled without blocking.
//! - **Nothing queued is lost when `block_on` returns** (or its future
//!   panics) in the middle of a batch: dropping the batch puts the ids not
//!   yet polled back at the front of the queue, for the next `block_on`.
//!
//! An id may name a task that has finished since it was queued; the
//! executor checks the slot's generation and skips it.

use std::cell::{Cell, RefCell};

use super::task::TaskId;

/// How many queued tasks one tick polls before it looks at I/O and timers.
pub(crate) const BUDGET: usize = 128;

/// The tasks woken since the current batch was taken, in order.
pub(crate) struct RunQueue {
    queue: RefCell<Vec<TaskId>>,
    /// Counts ticks (batches taken), to poll a task at most once per tick.
    tick: Cell<u64>,
}

impl RunQueue {
    pub(crate) fn new() -> RunQueue {
        RunQueue {
            queue: RefCell::new(Vec::new()),
            tick: Cell::new(0),
        }
    }

    /// Queues `id` for the next tick.
    #[inline]
    pub(crate) fn push(&self, id: TaskId) {
        self.queue.borrow_mut().push(id);
    }

    /// Queues every id of `ids`, in order.
    pub(crate) fn extend(&self, ids: Vec<TaskId>) {
        self.queue.borrow_mut().extend(ids);
    }

    /// Whether no task was woken since the current batch was taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// The current tick: it changes every time a batch is taken.
    #[inline]
    pub(crate) fn tick(&self) -> u64 {
        self.tick.get()
    }

    /// Forgets every queued id (the runtime is shutting down).
    pub(crate) fn clear(&self) {
        self.queue.borrow_mut().clear();
    }
}

/// The tasks one tick polls: those queued when it began, at most
/// [`BUDGET`]. Taken from the run queue in one swap, so neither polling them
/// nor queueing the tasks they wake touches the same buffer.
///
/// Past the budget, the rest stays here as a backlog, ahead of tasks woken
/// later: the next tick appends the run queue behind it.
pub(crate) struct Batch<'a> {
    run_queue: &'a RunQueue,
    ids: Vec<TaskId>,
    /// The next task to poll.
    next: usize,
    /// Where this tick's share ends.
    end: usize,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(run_queue: &'a RunQueue) -> Batch<'a> {
        Batch {
            run_queue,
            ids: Vec::new(),
            next: 0,
            end: 0,
        }
    }

    /// Takes the tasks queued since the last tick, and starts a new tick.
    pub(crate) fn take(&mut self) {
        self.run_queue.tick.set(self.run_queue.tick.get() + 1);
        let mut queue = self.run_queue.queue.borrow_mut();
        if self.next == self.ids.len() {
            // The usual case: the last batch is done, its buffer becomes
            // the new, empty run queue.
            self.ids.clear();
            self.next = 0;
            std::mem::swap(&mut *queue, &mut self.ids);
        } else {
            // Compacted only once the polled part is the larger one, so a
            // long backlog costs O(1) per task, not O(backlog) per tick.
            if self.next >= self.ids.len() - self.next {
                self.ids.drain(..self.next);
                self.next = 0;
            }
            self.ids.append(&mut queue);
        }
        self.end = self.ids.len().min(self.next + BUDGET);
    }

    /// The next task of this tick's share, if any is left.
    pub(crate) fn next(&mut self) -> Option<TaskId> {
        if self.next == self.end {
            return None;
        }
        let id = self.ids[self.next];
        self.next += 1;
        Some(id)
    }

    /// Whether tasks past this tick's budget wait for the next one.
    pub(crate) fn has_backlog(&self) -> bool {
        self.end < self.ids.len()
    }
}

impl Drop for Batch<'_> {
    /// `block_on` returned (or its future panicked) in the middle of a
    /// batch: the tasks not yet polled go back to the front of the queue,
    /// for the next `block_on`.
    fn drop(&mut self) {
        let rest = &self.ids[self.next..];
        if let (false, Ok(mut queue)) = (rest.is_empty(), self.run_queue.queue.try_borrow_mut()) {
            queue.splice(0..0, rest.iter().copied());
        }
    }
}
