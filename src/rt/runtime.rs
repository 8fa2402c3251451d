//! The executor: [`Runtime`], its loop, and the state wakers share with it.
//!
//! One loop iteration ("tick"):
//! 1. poll the tasks queued when the tick began (at most [`BUDGET`]): a task
//!    that wakes itself runs again next tick, after I/O and timers had
//!    their turn;
//! 2. poll the reactor: with a zero timeout if tasks are still queued,
//!    otherwise until the next timer deadline (or forever); a paused clock
//!    (feature `test-util`) jumps to the next deadline instead, if that
//!    poll found nothing to do;
//! 3. fire due timers;
//! 4. move wakes that came from other threads onto the run queue.
//!
//! Nothing is polled from inside `wake`: waking only queues a task id.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWakerVTable, Waker};
use std::time::Duration;

use slab::Slab;

use super::context;
use super::reactor::Reactor;
use super::task::{JoinHandle, Runnable, Task, TaskId, TaskWaker, MAIN_TASK};
use super::timer::TimerQueue;
use crate::time::clock::Clock;

/// How many queued tasks one tick polls before it looks at I/O and timers.
const BUDGET: usize = 128;

/// How many I/O operations that find their socket ready one poll of a task
/// may run before they start returning `Pending` (with the task woken): a
/// task looping over a socket that is always ready still yields to the
/// others.
const IO_BUDGET: u32 = 128;

/// The default capacity of the reactor's event buffer.
const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// The part of a runtime that other threads touch: the queue of wakes that
/// come from them, and the means to interrupt the reactor.
pub(crate) struct Shared {
    remote_queue: Mutex<Vec<TaskId>>,
    /// True from the first remote wake until the loop drains the remote queue,
    /// so a storm of wakes writes to the reactor's eventfd once.
    notified: AtomicBool,
    unpark: mio::Waker,
}

impl Shared {
    /// Queues a woken task: on the local run queue when called on the
    /// runtime's own thread while it is current, else on the remote queue.
    #[inline]
    pub(crate) fn schedule(self: &Arc<Shared>, id: TaskId) {
        let local = context::with_current(|core| {
            if Arc::ptr_eq(&core.shared, self) {
                core.run_queue.borrow_mut().push(id);
                true
            } else {
                false
            }
        });
        if local != Some(true) {
            self.schedule_remote(id);
        }
    }

    #[cold]
    fn schedule_remote(&self, id: TaskId) {
        self.remote_queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(id);
        if !self.notified.swap(true, Ordering::AcqRel) {
            // Fails only if the eventfd is gone, i.e. the runtime is being
            // dropped: then there is nobody left to wake.
            let _ = self.unpark.wake();
        }
    }
}

struct TaskSlot {
    generation: u32,
    task: Rc<dyn Runnable>,
    running: Running,
    /// The tick in which the task was last polled.
    polled_in: Cell<u64>,
}

/// The task being polled, and the identity of its waker: a waker the
/// reactor recognises as this one is stored as the task's id, and woken
/// without touching the `Waker` (no reference count, no thread-local).
#[derive(Clone, Copy)]
struct Running {
    id: TaskId,
    waker_data: *const (),
    waker_vtable: *const RawWakerVTable,
}

impl Running {
    fn of(id: TaskId, waker: &Waker) -> Running {
        Running {
            id,
            waker_data: waker.data(),
            waker_vtable: waker.vtable(),
        }
    }
}

/// A runtime's thread-local state: its tasks, run queue, reactor and timers.
pub(crate) struct Core {
    pub(crate) shared: Arc<Shared>,
    /// Tasks woken since the current batch was taken, in order.
    run_queue: RefCell<Vec<TaskId>>,
    tasks: RefCell<Slab<TaskSlot>>,
    /// Distinguishes successive tasks that use the same slab slot.
    next_generation: Cell<u32>,
    pub(crate) reactor: Reactor,
    pub(crate) timers: RefCell<TimerQueue>,
    /// What timers are measured against: real time, unless paused.
    pub(crate) clock: Clock,
    /// The task being polled, so the reactor can recognise its waker.
    running: Cell<Option<Running>>,
    /// Set once the runtime is being dropped.
    shutting_down: Cell<bool>,
    /// I/O operations the task being polled may still complete.
    io_budget: Cell<u32>,
    /// Counts ticks (batches taken), to poll a task at most once per tick.
    tick: Cell<u64>,
}

impl Core {
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.shutting_down.get() {
            // Never queued: its waker is marked scheduled for good when the
            // task is cancelled just below, so the id is never read.
            let waker = TaskWaker::new(MAIN_TASK, self.shared.clone());
            let task = Rc::new(Task::new(future, waker));
            task.shutdown();
            return JoinHandle::new(task);
        }
        let generation = self.next_generation.get();
        self.next_generation.set(generation.wrapping_add(1));
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let id = TaskId {
            // Beyond 2^32 - 1 live tasks (hundreds of GiB of them), the
            // slot number would not fit in an id.
            key: u32::try_from(entry.key())
                .ok()
                .filter(|&key| key != MAIN_TASK.key)
                .expect("xev: too many tasks on one runtime"),
            generation,
        };
        let task = Rc::new(Task::new(future, TaskWaker::new(id, self.shared.clone())));
        entry.insert(TaskSlot {
            generation,
            task: task.clone(),
            running: Running::of(id, task.waker()),
            polled_in: Cell::new(u64::MAX),
        });
        drop(tasks);
        self.run_queue.borrow_mut().push(id);
        JoinHandle::new(task)
    }

    /// The id of the task being polled, if `waker` is that task's waker.
    #[inline]
    pub(crate) fn running_task(&self, waker: &Waker) -> Option<TaskId> {
        let running = self.running.get()?;
        let own = std::ptr::eq(waker.data(), running.waker_data)
            && std::ptr::eq(waker.vtable(), running.waker_vtable);
        own.then_some(running.id)
    }

    /// Takes one unit of the polled task's I/O budget. With none left, the
    /// task is woken and `false` returned: the operation then says
    /// `Pending`, which only defers the task to the next tick.
    #[inline]
    pub(crate) fn take_io_budget(&self, cx: &Context<'_>) -> bool {
        let left = self.io_budget.get();
        if left == 0 {
            cx.waker().wake_by_ref();
            return false;
        }
        self.io_budget.set(left - 1);
        true
    }

    /// Queues a task for the reactor on this thread, which hands over the
    /// task's socket waiter: the task waited, so it has been polled since it
    /// was last queued.
    ///
    /// Its `scheduled` flag is neither checked nor set: a wake through its
    /// `Waker` before it runs queues it a second time, and a task that
    /// waited on several sockets that all became ready is queued once for
    /// each. Either costs a spurious poll, which futures allow; skipping the
    /// slab lookup and the atomic saves every I/O wake-up more than that.
    /// A queued id whose task has finished is skipped by [`run_task`].
    ///
    /// [`run_task`]: Core::run_task
    #[inline]
    pub(crate) fn wake_task(&self, id: TaskId) {
        self.run_queue.borrow_mut().push(id);
    }

    /// Polls one queued task, and frees its slot if it finished.
    ///
    /// A task is polled at most once per tick: every id in a tick's batch
    /// was queued before the tick began, so a second one for a task already
    /// polled in it is a duplicate wake (see [`wake_task`](Core::wake_task)).
    fn run_task(&self, id: TaskId) {
        let tick = self.tick.get();
        let (task, running) = match self.tasks.borrow().get(id.key as usize) {
            Some(slot) if slot.generation == id.generation && slot.polled_in.get() != tick => {
                slot.polled_in.set(tick);
                (slot.task.clone(), slot.running)
            }
            _ => return,
        };
        self.running.set(Some(running));
        self.io_budget.set(IO_BUDGET);
        let finished = task.run();
        self.running.set(None);
        // Full again for I/O polled outside a task's poll.
        self.io_budget.set(IO_BUDGET);
        if finished {
            // The slot is dropped after the borrow ends: dropping a detached
            // task's output runs user code, which may spawn.
            let slot = self.tasks.borrow_mut().try_remove(id.key as usize);
            drop(slot);
        }
    }

    /// Moves wakes from other threads onto the run queue.
    fn drain_remote_queue(&self) {
        if !self.shared.notified.load(Ordering::Acquire) {
            return;
        }
        self.shared.notified.store(false, Ordering::Release);
        let remote = std::mem::take(
            &mut *self
                .shared
                .remote_queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        self.run_queue.borrow_mut().extend(remote);
    }

    /// Blocks in the reactor until I/O, a timer deadline or a remote wake,
    /// or just collects ready events if tasks are queued (or `backlog` says
    /// some are still waiting for their turn); then fires timers.
    fn park(&self, backlog: bool) {
        let idle = !backlog
            && self.run_queue.borrow().is_empty()
            && !self.shared.notified.load(Ordering::Acquire);
        let timeout = if idle {
            self.idle_timeout()
        } else {
            Some(Duration::ZERO)
        };
        self.reactor.poll(timeout, |id| self.wake_task(id));
        if idle && self.clock.is_paused() && self.may_auto_advance() {
            self.advance_to_next_timer();
        }
        self.fire_timers();
        self.drain_remote_queue();
    }

    /// Whether a paused clock may jump to the next timer deadline: nothing
    /// is queued and no wake from another thread is pending, after a reactor
    /// poll that did not wait (ready I/O has queued its tasks by then). Work
    /// finishing on another thread, such as a running `spawn_blocking`
    /// closure, must hold it back too: its wake is on its way.
    pub(super) fn may_auto_advance(&self) -> bool {
        self.run_queue.borrow().is_empty() && !self.shared.notified.load(Ordering::Acquire)
    }

    /// Drops every task, timer and socket waiter, on this thread.
    ///
    /// From here on `spawn` drops its future at once (the task is reported
    /// cancelled): a destructor or waker that spawns cannot leave a task
    /// holding sockets, and through them this `Core`, alive in a cycle.
    fn shutdown(&self) {
        self.shutting_down.set(true);
        // Taken out first: dropping a task runs user code.
        let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        for (_, slot) in tasks {
            slot.task.shutdown();
        }
        self.run_queue.borrow_mut().clear();
        let wakers = self.timers.borrow_mut().shutdown();
        wakers.into_iter().for_each(Waker::wake);
        self.reactor.shutdown();
    }
}

/// A single-threaded runtime: an executor, a mio reactor and timers.
///
/// Most programs use [`xev::rt::block_on`](crate::rt::block_on) or
/// `#[xev::main]`, which build a `Runtime` and drop it when the future
/// completes. Build one yourself to spawn tasks before running, or to
/// `block_on` several times with tasks carried over between the calls.
///
/// A `Runtime` is not `Send`: it lives and dies on the thread that built it,
/// and so do all its tasks.
///
/// # Examples
/// ```
/// use xev::rt::Runtime;
///
/// let rt = Runtime::new().unwrap();
/// let handle = rt.spawn(async { 40 });
/// let answer = rt.block_on(async { handle.await.unwrap() + 2 });
/// assert_eq!(answer, 42);
/// ```
pub struct Runtime {
    core: Rc<Core>,
}

impl Runtime {
    /// A runtime with default settings.
    ///
    /// # Errors
    /// If the OS refuses to create the `epoll` instance or its eventfd
    /// (typically `EMFILE`, too many open files).
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Spawns a task on this runtime. It starts running at the next
    /// [`block_on`](Self::block_on) (or at once, if that is running).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(future)
    }

    /// Runs `future` to completion on the current thread, driving spawned
    /// tasks, I/O and timers meanwhile. Tasks still pending when it returns
    /// stay on the runtime and go on at the next `block_on`.
    ///
    /// A panic in `future` propagates to the caller; a panic in a spawned task
    /// is caught and reported through its [`JoinHandle`].
    ///
    /// # Panics
    /// If called from inside a runtime (a nested `block_on`).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _enter = context::enter(&self.core);
        let core = &*self.core;
        let mut future = pin!(future);
        let main_waker = TaskWaker::new(MAIN_TASK, core.shared.clone());
        let waker = main_waker.waker();
        let mut cx = Context::from_waker(&waker);
        let running = Running::of(MAIN_TASK, &waker);
        core.running.set(None);
        core.run_queue.borrow_mut().push(MAIN_TASK);
        let mut batch = Batch::new(core);
        let mut main_polled_in = None;
        loop {
            batch.take();
            while let Some(id) = batch.next() {
                if id == MAIN_TASK {
                    // At most once per tick, as `run_task` does for tasks.
                    let tick = Some(core.tick.get());
                    if main_polled_in == tick {
                        continue;
                    }
                    main_polled_in = tick;
                    main_waker.unschedule();
                    core.io_budget.set(IO_BUDGET);
                    core.running.set(Some(running));
                    let poll = future.as_mut().poll(&mut cx);
                    core.running.set(None);
                    core.io_budget.set(IO_BUDGET);
                    if let Poll::Ready(output) = poll {
                        return output;
                    }
                } else {
                    core.run_task(id);
                }
            }
            core.park(batch.has_backlog());
        }
    }
}

/// The tasks one tick polls: those queued when it began, at most
/// [`BUDGET`]. Taken from the run queue in one swap, so neither polling them
/// nor queueing the tasks they wake touches the same buffer.
///
/// Past the budget, the rest stays here as a backlog, ahead of tasks woken
/// later: the next tick appends the run queue behind it.
struct Batch<'a> {
    core: &'a Core,
    ids: Vec<TaskId>,
    /// The next task to poll.
    next: usize,
    /// Where this tick's share ends.
    end: usize,
}

impl<'a> Batch<'a> {
    fn new(core: &'a Core) -> Batch<'a> {
        Batch {
            core,
            ids: Vec::new(),
            next: 0,
            end: 0,
        }
    }

    /// Takes the tasks queued since the last tick, and starts a new tick.
    fn take(&mut self) {
        self.core.tick.set(self.core.tick.get() + 1);
        let mut queue = self.core.run_queue.borrow_mut();
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

    fn next(&mut self) -> Option<TaskId> {
        if self.next == self.end {
            return None;
        }
        let id = self.ids[self.next];
        self.next += 1;
        Some(id)
    }

    /// Whether tasks past this tick's budget wait for the next one.
    fn has_backlog(&self) -> bool {
        self.end < self.ids.len()
    }
}

impl Drop for Batch<'_> {
    /// `block_on` returned (or its future panicked) in the middle of a
    /// batch: the tasks not yet polled go back to the front of the queue,
    /// for the next `block_on`.
    fn drop(&mut self) {
        let rest = &self.ids[self.next..];
        if let (false, Ok(mut queue)) = (rest.is_empty(), self.core.run_queue.try_borrow_mut()) {
            queue.splice(0..0, rest.iter().copied());
        }
    }
}

/// Counts that describe a runtime's load, from [`metrics`](crate::rt::metrics).
///
/// # Examples
/// A leak check: what a piece of work creates is gone once it is done.
/// ```
/// use std::time::Duration;
///
/// xev::rt::block_on(async {
///     let before = xev::rt::metrics();
///     let task = xev::rt::spawn(xev::time::sleep(Duration::from_millis(1)));
///     assert_eq!(xev::rt::metrics().tasks, before.tasks + 1);
///     task.await.unwrap();
///     // The task is freed, and its timer with it.
///     assert_eq!(xev::rt::metrics(), before);
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Tasks spawned and not yet finished.
    pub tasks: usize,
    /// Sockets registered with the reactor.
    pub registered_sockets: usize,
    /// Timers armed (including fired ones whose `Sleep` is not dropped yet).
    pub timers: usize,
}

impl Core {
    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            tasks: self.tasks.borrow().len(),
            registered_sockets: self.reactor.registrations(),
            timers: self.timers.borrow().len(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Tasks are dropped inside this runtime's context, so their
        // destructors can still reach its reactor and timers.
        let _enter = context::enter_unchecked(&self.core);
        self.core.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("tasks", &self.core.tasks.borrow().len())
            .finish_non_exhaustive()
    }
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = xev::rt::Runtime::builder().event_capacity(256).build().unwrap();
/// assert_eq!(rt.block_on(async { 7 }), 7);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    event_capacity: usize,
    /// Set by `start_paused` (feature `test-util`, in `time::clock`).
    pub(crate) start_paused: bool,
}

impl Builder {
    /// A builder with default settings.
    pub fn new() -> Builder {
        Builder {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            start_paused: false,
        }
    }

    /// How many I/O events one reactor poll can return (default 1024). More
    /// events than this are simply collected by the next poll.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Builder {
        assert!(capacity > 0, "event capacity must be at least 1");
        self.event_capacity = capacity;
        self
    }

    /// Builds the runtime.
    ///
    /// # Errors
    /// If the OS refuses to create the `epoll` instance or its eventfd.
    pub fn build(&self) -> io::Result<Runtime> {
        let reactor = Reactor::new(self.event_capacity)?;
        let unpark = reactor.waker()?;
        let shared = Arc::new(Shared {
            remote_queue: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            unpark,
        });
        let clock = Clock::new(self.start_paused);
        let core = Core {
            shared,
            run_queue: RefCell::new(Vec::new()),
            tasks: RefCell::new(Slab::new()),
            next_generation: Cell::new(0),
            reactor,
            timers: RefCell::new(TimerQueue::new(clock.now())),
            clock,
            running: Cell::new(None),
            shutting_down: Cell::new(false),
            io_budget: Cell::new(IO_BUDGET),
            tick: Cell::new(0),
        };
        Ok(Runtime {
            core: Rc::new(core),
        })
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}
