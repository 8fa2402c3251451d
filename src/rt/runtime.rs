//! The executor: [`Runtime`], its loop, and the state wakers share with it.
//!
//! One loop iteration ("tick"):
//! 1. poll the tasks queued when the tick began (at most
//!    [`BUDGET`](super::run_queue::BUDGET)): a task that wakes itself runs
//!    again next tick, after I/O and timers had their turn (the invariants
//!    are in [`run_queue`](super::run_queue));
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

use super::backend::{self, Backend};
use super::blocking::BlockingPool;
use super::builder::Builder;
use super::context;
use super::handle::{EnterGuard, Handle};
use super::id::{Id, IdBlock};
use super::join::JoinHandle;
use super::metrics::RuntimeMetrics;
use super::reactor::Reactor;
use super::run_queue::{Batch, RunQueue};
use super::shared::{RemoteQueue, Shared};
use super::task::{Runnable, Task, TaskId, TaskWaker, MAIN_TASK};
use super::timer::TimerQueue;
use crate::time::clock::Clock;

/// How many I/O operations that find their socket ready one poll of a task
/// may run before they start returning `Pending` (with the task woken): a
/// task looping over a socket that is always ready still yields to the
/// others.
const IO_BUDGET: u32 = 128;

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
    /// A reference, not a pointer: `Option<Running>` then needs no tag, and
    /// setting or clearing it is a few plain stores.
    waker_vtable: &'static RawWakerVTable,
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
    /// Tasks woken since the current batch was taken.
    pub(super) run_queue: RunQueue,
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
    /// The ids of tasks spawned on this thread.
    ids: IdBlock,
    /// I/O operations the task being polled may still complete.
    io_budget: Cell<u32>,
    /// A `block_on` is running the loop.
    driving: Cell<bool>,
    /// Why the reactor runs on its backend (which is in `shared`).
    backend_reason: String,
}

impl Core {
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_with_id(self.ids.next(), future)
    }

    pub(crate) fn spawn_with_id<F>(&self, task_id: Id, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.shutting_down.get() {
            // Never queued: its waker is marked scheduled for good when the
            // task is cancelled just below, so the id is never read.
            let waker = TaskWaker::new(MAIN_TASK, task_id, self.shared.clone());
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
        let waker = TaskWaker::new(id, task_id, self.shared.clone());
        let task = Rc::new(Task::new(future, waker));
        entry.insert(TaskSlot {
            generation,
            task: task.clone(),
            running: Running::of(id, task.waker()),
            polled_in: Cell::new(u64::MAX),
        });
        drop(tasks);
        self.run_queue.push(id);
        JoinHandle::new(task)
    }

    /// The public id of the task being polled; `None` for `block_on`'s own
    /// future, and between polls.
    pub(crate) fn current_task_id(&self) -> Option<Id> {
        let running = self.running.get()?;
        let tasks = self.tasks.try_borrow().ok()?;
        let slot = tasks.get(running.id.key as usize)?;
        (slot.generation == running.id.generation).then(|| slot.task.id())
    }

    /// How many `spawn_blocking` closures are queued or running: while
    /// any is, the runtime is not idle (its result may wake a task). The
    /// runtime's reactor is woken when this drops to zero.
    pub(crate) fn blocking_in_flight(&self) -> usize {
        self.shared.blocking.in_flight()
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

    /// Whether the polled task may run another operation without taking
    /// from its budget (waiting for readiness): `false`, with the task
    /// woken, once the budget is spent.
    #[inline]
    pub(crate) fn has_io_budget(&self, cx: &Context<'_>) -> bool {
        if self.io_budget.get() == 0 {
            cx.waker().wake_by_ref();
            return false;
        }
        true
    }

    /// Takes one unit of the budget for an operation that never waits
    /// (`try_read`, `try_write`, `try_io`): it runs anyway, and the task's
    /// next wait for readiness yields once the budget is spent.
    #[inline]
    pub(crate) fn spend_io_budget(&self) {
        self.io_budget.set(self.io_budget.get().saturating_sub(1));
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
        self.run_queue.push(id);
    }

    /// Polls one queued task, and frees its slot if it finished.
    ///
    /// A task is polled at most once per tick: every id in a tick's batch
    /// was queued before the tick began, so a second one for a task already
    /// polled in it is a duplicate wake (see [`wake_task`](Core::wake_task)).
    fn run_task(&self, id: TaskId) {
        let tick = self.run_queue.tick();
        let task = match self.tasks.borrow().get(id.key as usize) {
            Some(slot) if slot.generation == id.generation && slot.polled_in.get() != tick => {
                slot.polled_in.set(tick);
                self.running.set(Some(slot.running));
                slot.task.clone()
            }
            _ => return,
        };
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

    /// Moves wakes from other threads onto the run queue, and spawns the
    /// futures they sent.
    fn drain_remote_queue(&self) {
        if !self.shared.notified.load(Ordering::Acquire) {
            return;
        }
        self.shared.notified.store(false, Ordering::Release);
        let mut queue = self.shared.lock_remote();
        let wakes = std::mem::take(&mut queue.wakes);
        let spawns = std::mem::take(&mut queue.spawns);
        drop(queue);
        self.run_queue.extend(wakes);
        for spawn in spawns {
            spawn(self);
        }
    }

    /// Blocks in the reactor until I/O, a timer deadline or a remote wake,
    /// or just collects ready events if tasks are queued (or `backlog` says
    /// some are still waiting for their turn); then fires timers.
    fn park(&self, backlog: bool) {
        let idle =
            !backlog && self.run_queue.is_empty() && !self.shared.notified.load(Ordering::Acquire);
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
    /// poll that did not wait (ready I/O has queued its tasks by then), and
    /// no `spawn_blocking` closure is queued or running: its result is work
    /// on its way, and its completion wakes the loop.
    pub(super) fn may_auto_advance(&self) -> bool {
        self.run_queue.is_empty()
            && !self.shared.notified.load(Ordering::Acquire)
            && self.blocking_in_flight() == 0
    }

    /// Drops every task, timer and socket waiter, on this thread.
    ///
    /// From here on `spawn` drops its future at once (the task is reported
    /// cancelled): a destructor or waker that spawns cannot leave a task
    /// holding sockets, and through them this `Core`, alive in a cycle.
    fn shutdown(&self) {
        self.shutting_down.set(true);
        // Futures sent from other threads are dropped here, and any sent
        // from now on by the sender: each reports its task cancelled.
        let spawns = {
            let mut queue = self.shared.lock_remote();
            queue.closed = true;
            std::mem::take(&mut queue.spawns)
        };
        drop(spawns);
        self.shared.blocking.shutdown();
        // Taken out first: dropping a task runs user code.
        let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        for (_, slot) in tasks {
            slot.task.shutdown();
        }
        self.run_queue.clear();
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

    /// The backend this runtime waits for I/O with: [`Backend::Poll`] or
    /// [`Backend::IoUring`], never `Auto` (which resolves to one of them
    /// when the runtime is built).
    ///
    /// ```
    /// use xev::rt::{Backend, Runtime};
    ///
    /// let rt = Runtime::builder().backend(Backend::Poll).build().unwrap();
    /// assert_eq!(rt.backend(), Backend::Poll);
    /// ```
    pub fn backend(&self) -> Backend {
        self.core.shared.backend
    }

    /// Why the runtime runs on [`backend`](Self::backend): who asked for
    /// it (the builder, `XEV_BACKEND`, the default) and, under
    /// [`Backend::Auto`], what the io_uring probe found, e.g. `"poll, auto
    /// (set by XEV_BACKEND): io_uring refused: io_uring_setup: Operation not
    /// permitted (os error 1)"`. Also in the runtime's `Debug` output.
    pub fn backend_reason(&self) -> &str {
        &self.core.backend_reason
    }

    /// A [`Handle`] to this runtime, to spawn on it from other threads.
    ///
    /// ```
    /// use futures::channel::oneshot;
    ///
    /// let rt = xev::rt::Runtime::new().unwrap();
    /// let handle = rt.handle();
    /// let (sum, result) = oneshot::channel();
    /// let thread = std::thread::spawn(move || {
    ///     let task = handle.spawn(async { 2 + 2 }); // runs on `rt`'s thread
    ///     sum.send(futures::executor::block_on(task).unwrap()).unwrap();
    /// });
    /// assert_eq!(rt.block_on(result).unwrap(), 4);
    /// thread.join().unwrap();
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.core.shared.clone(),
        }
    }

    /// Makes this runtime the current one on this thread until the guard is
    /// dropped, without running it: [`rt::spawn`](crate::rt::spawn),
    /// [`Handle::current`], timers and socket constructors work meanwhile.
    /// Tasks spawned then run at the next [`block_on`](Self::block_on),
    /// which may be called while the guard lives.
    ///
    /// ```
    /// let rt = xev::rt::Runtime::new().unwrap();
    /// let task = {
    ///     let _guard = rt.enter();
    ///     xev::rt::spawn(async { "spawned outside block_on" })
    /// };
    /// assert_eq!(rt.block_on(task).unwrap(), "spawned outside block_on");
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard::new(context::enter(&self.core))
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
        let _enter = context::enter_driving(&self.core);
        let core = &*self.core;
        let _driving = Driving::start(core);
        let mut future = pin!(future);
        let main_waker = TaskWaker::new(MAIN_TASK, core.ids.next(), core.shared.clone());
        let waker = main_waker.waker();
        let mut cx = Context::from_waker(&waker);
        let running = Running::of(MAIN_TASK, &waker);
        core.running.set(None);
        core.run_queue.push(MAIN_TASK);
        let mut batch = Batch::new(&core.run_queue);
        let mut main_polled_in = None;
        loop {
            batch.take();
            while let Some(id) = batch.next() {
                if id == MAIN_TASK {
                    // At most once per tick, as `run_task` does for tasks.
                    let tick = Some(core.run_queue.tick());
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

impl Core {
    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            tasks: self.tasks.borrow().len(),
            registered_sockets: self.reactor.registrations(),
            timers: self.timers.borrow().len(),
            blocking_tasks: self.blocking_in_flight(),
        }
    }
}

/// Marks the loop as running for as long as `block_on` runs it; when it
/// stops (return or panic), submits what the reactor has queued, which the
/// loop's next turn would have.
struct Driving<'a>(&'a Core);

impl<'a> Driving<'a> {
    fn start(core: &'a Core) -> Driving<'a> {
        core.driving.set(true);
        Driving(core)
    }
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        self.0.driving.set(false);
        self.0.reactor.flush();
    }
}

impl Core {
    /// Whether a `block_on` is running this runtime's loop: what the
    /// reactor queues now is submitted by the loop's next turn.
    pub(crate) fn is_driving(&self) -> bool {
        self.driving.get()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Tasks are dropped inside this runtime's context, so their
        // destructors can still reach its reactor and timers.
        let _enter = context::enter(&self.core);
        self.core.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("backend", &self.core.shared.backend)
            .field("backend_reason", &self.core.backend_reason)
            .field("tasks", &self.core.tasks.borrow().len())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime configured by `builder`.
    pub(crate) fn build(builder: &Builder) -> io::Result<Runtime> {
        let choice = backend::choose(builder.backend)?;
        let reactor = Reactor::new(choice.backend, builder.event_capacity)?;
        let unpark = Arc::new(reactor.unpark()?);
        let blocking = BlockingPool::new(
            builder.max_blocking_threads,
            builder.thread_keep_alive,
            unpark.clone(),
        );
        let shared = Arc::new(Shared {
            remote_queue: Mutex::new(RemoteQueue::default()),
            notified: AtomicBool::new(false),
            unpark,
            blocking,
            backend: choice.backend,
        });
        let clock = Clock::new(builder.start_paused);
        let core = Core {
            shared,
            run_queue: RunQueue::new(),
            tasks: RefCell::new(Slab::new()),
            next_generation: Cell::new(0),
            reactor,
            timers: RefCell::new(TimerQueue::new(clock.now())),
            clock,
            running: Cell::new(None),
            shutting_down: Cell::new(false),
            ids: IdBlock::new(),
            io_budget: Cell::new(IO_BUDGET),
            driving: Cell::new(false),
            backend_reason: choice.reason,
        };
        Ok(Runtime {
            core: Rc::new(core),
        })
    }
}
