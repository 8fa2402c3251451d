//! The executor (`xev::rt`): tasks, join handles, wakers, fairness, and the
//! runtime's life cycle. Each test pins one promise of DESIGN §2 and §4.
//!
//! Every test is bounded. Most wrap their body in `xev::time::timeout`; the
//! tests about the loop itself (cross-thread wakes, starvation, stack depth)
//! run the runtime on a thread watched from outside instead, because a timer
//! inside the runtime would wake the loop and hide exactly the lost wake-up
//! or starved timer they look for.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread::{self, ThreadId};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{self, Either};
use xev::rt::{self, Runtime};
use xev::time::{sleep, timeout};

/// The most any test body may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(10);

/// `future`, failing the test if it takes longer than [`LIMIT`].
async fn bounded<F: Future>(future: F) -> F::Output {
    match timeout(LIMIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("test body still pending after {LIMIT:?}"),
    }
}

/// `rt::block_on`, bounded by [`LIMIT`].
fn block_on_bounded<F: Future>(future: F) -> F::Output {
    rt::block_on(bounded(future))
}

/// Runs `f` on a new thread (with `stack_size`, if given) and fails the test
/// if it has not returned within [`LIMIT`]. A panic in `f` is re-raised here.
fn on_watched_thread<T: Send + 'static>(
    stack_size: Option<usize>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = mpsc::channel();
    let mut builder = thread::Builder::new().name("xev-runtime-under-test".into());
    if let Some(size) = stack_size {
        builder = builder.stack_size(size);
    }
    let thread = builder
        .spawn(move || {
            let _ = done.send(f());
        })
        .expect("failed to start the runtime thread");
    match result.recv_timeout(LIMIT) {
        Ok(value) => {
            thread
                .join()
                .expect("runtime thread panicked after finishing");
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the runtime thread is still running after {LIMIT:?}: hung or lost a wake-up")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the thread ended without sending its result"),
        },
    }
}

/// The message of a panic payload (`panic!` gives `&str` or `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        String::from("<non-string panic payload>")
    }
}

/// A tiny xorshift64 generator: reproducible random delays without a `rand`
/// dependency.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Records, when dropped, the thread it was dropped on.
struct DropRecorder(Arc<Mutex<Vec<ThreadId>>>);

impl Drop for DropRecorder {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(thread::current().id());
    }
}

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Yields until `done()` holds. The number of yields is capped too, so a
/// `yield_now` that never yields (and so never lets a timeout fire) fails
/// instead of spinning forever.
async fn yield_until(mut done: impl FnMut() -> bool) {
    const MAX_YIELDS: u32 = 100_000;
    for _ in 0..MAX_YIELDS {
        if done() {
            return;
        }
        rt::yield_now().await;
    }
    panic!("condition still false after {MAX_YIELDS} yields");
}

/// What a test hands the waker thread: wake this waker after this delay,
/// having set this flag first.
type WakeRequest = (Waker, Arc<AtomicBool>, Duration);

/// Waits until another thread wakes it: the first poll hands the waker and a
/// delay to `waker_thread`, which sleeps that long, sets the flag and wakes.
async fn woken_from_thread(waker_thread: &mpsc::Sender<WakeRequest>, delay: Duration) {
    let woken = Arc::new(AtomicBool::new(false));
    let mut sent = false;
    poll_fn(|cx| {
        if !sent {
            sent = true;
            waker_thread
                .send((cx.waker().clone(), woken.clone(), delay))
                .expect("the waker thread is gone");
        }
        if woken.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// A thread that, for each `(waker, flag, delay)` it receives, sleeps
/// `delay`, sets `flag` and wakes `waker`. It ends when the sender is dropped.
fn spawn_waker_thread() -> (mpsc::Sender<WakeRequest>, thread::JoinHandle<()>) {
    let (requests, inbox) = mpsc::channel::<WakeRequest>();
    let thread = thread::spawn(move || {
        for (waker, woken, delay) in inbox {
            thread::sleep(delay);
            woken.store(true, Ordering::Release);
            waker.wake();
        }
    });
    (requests, thread)
}

// ---------------------------------------------------------------------------
// Scale

#[test]
fn hundred_thousand_spawned_tasks_all_complete() {
    const TASKS: u64 = 100_000;
    let sum = block_on_bounded(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|n| {
                rt::spawn(async move {
                    rt::yield_now().await;
                    n
                })
            })
            .collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, TASKS * (TASKS - 1) / 2);
}

/// One link of a spawn chain: counts itself, then spawns the next link and
/// returns; the last one reports the count.
async fn spawn_chain_link(remaining: u32, count: Rc<Cell<u32>>, done: oneshot::Sender<u32>) {
    count.set(count.get() + 1);
    if remaining == 0 {
        let _ = done.send(count.get());
    } else {
        drop(rt::spawn(spawn_chain_link(remaining - 1, count, done)));
    }
}

#[test]
fn million_task_spawn_chain_runs_on_a_one_mib_stack() {
    const LINKS: u32 = 1_000_000;
    let links = on_watched_thread(Some(1 << 20), || {
        rt::block_on(async {
            let (done, finished) = oneshot::channel();
            drop(rt::spawn(spawn_chain_link(
                LINKS - 1,
                Rc::new(Cell::new(0)),
                done,
            )));
            finished.await.unwrap()
        })
    });
    assert_eq!(links, LINKS);
}

/// Adds one to its counter when dropped.
struct DropCount(Rc<Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// The two ends of a [`join_chain`]: the deepest task reports on `reached`
/// that the chain is built, then waits for `release`.
struct ChainEnds {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<u32>,
}

/// A chain of `depth + 1` tasks, each spawning the next and awaiting its
/// join handle. Every level holds a [`DropCount`] on `dropped`.
fn join_chain(
    depth: u32,
    dropped: Rc<Cell<u32>>,
    ends: ChainEnds,
) -> Pin<Box<dyn Future<Output = u32>>> {
    Box::pin(async move {
        let _count = DropCount(dropped.clone());
        if depth == 0 {
            let _ = ends.reached.send(());
            return ends.release.await.unwrap_or(0);
        }
        rt::spawn(join_chain(depth - 1, dropped, ends))
            .await
            .unwrap()
            + 1
    })
}

#[test]
fn hundred_thousand_nested_join_handles_resolve_on_a_one_mib_stack() {
    const DEPTH: u32 = 100_000;
    let value = on_watched_thread(Some(1 << 20), || {
        rt::block_on(async {
            let (reached, chain_built) = oneshot::channel();
            let (release, bottom) = oneshot::channel();
            let ends = ChainEnds {
                reached,
                release: bottom,
            };
            let top = rt::spawn(join_chain(DEPTH, Rc::new(Cell::new(0)), ends));
            // The whole chain is built and parked before its bottom resolves,
            // so completions cascade back up through 100,000 join wakers.
            chain_built.await.unwrap();
            release.send(0).unwrap();
            top.await.unwrap()
        })
    });
    assert_eq!(value, DEPTH);
}

#[test]
fn runtime_drop_with_a_hundred_thousand_chained_tasks_does_not_overflow() {
    const DEPTH: u32 = 100_000;
    let dropped = on_watched_thread(Some(1 << 20), || {
        let dropped = Rc::new(Cell::new(0));
        let (_never_released, bottom) = oneshot::channel();
        rt::block_on(async {
            let (reached, chain_built) = oneshot::channel();
            let ends = ChainEnds {
                reached,
                release: bottom,
            };
            drop(rt::spawn(join_chain(DEPTH, dropped.clone(), ends)));
            chain_built.await.unwrap();
        });
        // `block_on` has dropped the runtime and the whole pending chain.
        dropped.get()
    });
    assert_eq!(dropped, DEPTH + 1);
}

// ---------------------------------------------------------------------------
// Wakes from other threads

#[test]
fn cross_thread_wakes_land_while_the_loop_is_blocked() {
    const WAKES: usize = 2_000;
    // No timer is armed inside the runtime: a lost wake leaves it blocked in
    // `epoll_wait` for good, and the watchdog fails the test.
    let completed = on_watched_thread(None, || {
        let (waker_thread, thread) = spawn_waker_thread();
        let completed = rt::block_on(async move {
            let task = rt::spawn(async move {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
                let mut completed = 0;
                for _ in 0..WAKES {
                    let delay = Duration::from_micros(rng.below(101));
                    woken_from_thread(&waker_thread, delay).await;
                    completed += 1;
                }
                completed
            });
            task.await.unwrap()
        });
        thread.join().unwrap();
        completed
    });
    assert_eq!(completed, WAKES);
}

#[test]
fn cross_thread_wakes_of_the_block_on_future_land() {
    const WAKES: usize = 2_000;
    let completed = on_watched_thread(None, || {
        let (waker_thread, thread) = spawn_waker_thread();
        let completed = rt::block_on(async move {
            let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
            let mut completed = 0;
            for _ in 0..WAKES {
                let delay = Duration::from_micros(rng.below(101));
                woken_from_thread(&waker_thread, delay).await;
                completed += 1;
            }
            completed
        });
        thread.join().unwrap();
        completed
    });
    assert_eq!(completed, WAKES);
}

#[test]
fn wake_storm_from_four_threads_completes() {
    const THREADS: usize = 4;
    const WAKES_PER_THREAD: usize = 50_000;
    const TOTAL: usize = THREADS * WAKES_PER_THREAD;
    let seen = on_watched_thread(None, || {
        let count = Arc::new(AtomicUsize::new(0));
        let (seen, storm) = rt::block_on({
            let count = count.clone();
            async move {
                let task = rt::spawn(async move {
                    let mut storm = Vec::new();
                    poll_fn(|cx| {
                        if storm.is_empty() {
                            storm = (0..THREADS)
                                .map(|_| {
                                    let (count, waker) = (count.clone(), cx.waker().clone());
                                    thread::spawn(move || {
                                        for _ in 0..WAKES_PER_THREAD {
                                            count.fetch_add(1, Ordering::Release);
                                            waker.wake_by_ref();
                                        }
                                    })
                                })
                                .collect();
                        }
                        if count.load(Ordering::Acquire) == TOTAL {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await;
                    (count.load(Ordering::Acquire), storm)
                });
                task.await.unwrap()
            }
        });
        for thread in storm {
            thread.join().unwrap();
        }
        seen
    });
    assert_eq!(seen, TOTAL);
}

#[test]
fn wake_between_block_on_calls_is_not_lost() {
    let runtime = Runtime::new().unwrap();
    let (waker_slot, woken) = (
        Arc::new(Mutex::new(None::<Waker>)),
        Arc::new(AtomicBool::new(false)),
    );
    let task = runtime.spawn({
        let (waker_slot, woken) = (waker_slot.clone(), woken.clone());
        poll_fn(move |cx| {
            if woken.load(Ordering::Acquire) {
                return Poll::Ready("woken");
            }
            *waker_slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        })
    });
    runtime.block_on(bounded(yield_until(|| {
        waker_slot.lock().unwrap().is_some()
    })));
    // No `block_on` is running while the other thread wakes the task.
    thread::spawn(move || {
        woken.store(true, Ordering::Release);
        waker_slot.lock().unwrap().take().unwrap().wake();
    })
    .join()
    .unwrap();
    assert_eq!(runtime.block_on(bounded(task)).unwrap(), "woken");
}

#[test]
fn waking_a_task_after_its_runtime_is_dropped_is_harmless() {
    let waker_slot = Arc::new(Mutex::new(None::<Waker>));
    rt::block_on({
        let waker_slot = waker_slot.clone();
        async move {
            drop(rt::spawn(poll_fn(move |cx| {
                *waker_slot.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })));
            rt::yield_now().await;
        }
    });
    let waker = waker_slot
        .lock()
        .unwrap()
        .take()
        .expect("the task never ran");
    waker.wake_by_ref();
    thread::spawn(move || waker.wake()).join().unwrap();
}

// ---------------------------------------------------------------------------
// Runtime drop

/// What a pending task waits on when the runtime is dropped.
fn pending_forever(kind: usize) -> Pin<Box<dyn Future<Output = ()>>> {
    match kind % 4 {
        0 => Box::pin(future::pending()),
        1 => Box::pin(sleep(Duration::from_secs(3600))),
        // Self-waking: still on the run queue when the runtime goes away.
        2 => Box::pin(async {
            loop {
                rt::yield_now().await;
            }
        }),
        _ => Box::pin(async {
            let _ = rt::spawn(future::pending::<()>()).await;
        }),
    }
}

#[test]
fn dropping_a_runtime_drops_its_pending_tasks_on_its_thread() {
    const TASKS: usize = 1_000;
    let (runtime_thread, dropped_on) = on_watched_thread(None, || {
        let dropped_on = Arc::new(Mutex::new(Vec::new()));
        let runtime = Runtime::new().unwrap();
        runtime.block_on(async {
            for kind in 0..TASKS {
                let recorder = DropRecorder(dropped_on.clone());
                drop(rt::spawn(async move {
                    let _recorder = recorder;
                    pending_forever(kind).await;
                }));
            }
            // Every task gets polled once and parks.
            rt::yield_now().await;
        });
        assert!(
            dropped_on.lock().unwrap().is_empty(),
            "a pending task was dropped by `block_on`"
        );
        drop(runtime);
        let dropped_on = dropped_on.lock().unwrap().clone();
        (thread::current().id(), dropped_on)
    });
    assert_eq!(dropped_on.len(), TASKS);
    assert!(dropped_on.iter().all(|&id| id == runtime_thread));
}

#[test]
fn block_on_return_drops_remaining_tasks_on_its_thread() {
    const TASKS: usize = 1_000;
    let (runtime_thread, dropped_on) = on_watched_thread(None, || {
        let dropped_on = Arc::new(Mutex::new(Vec::new()));
        rt::block_on(async {
            for kind in 0..TASKS {
                let recorder = DropRecorder(dropped_on.clone());
                drop(rt::spawn(async move {
                    let _recorder = recorder;
                    pending_forever(kind).await;
                }));
            }
            rt::yield_now().await;
        });
        let dropped_on = dropped_on.lock().unwrap().clone();
        (thread::current().id(), dropped_on)
    });
    assert_eq!(dropped_on.len(), TASKS);
    assert!(dropped_on.iter().all(|&id| id == runtime_thread));
}

#[test]
fn tasks_spawned_by_destructors_during_runtime_drop_are_dropped_too() {
    /// Spawns, when dropped, a task holding `spawn_more - 1` more of itself.
    struct SpawnOnDrop {
        spawn_more: u32,
        dropped: Rc<Cell<u32>>,
    }
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            self.dropped.set(self.dropped.get() + 1);
            if self.spawn_more > 0 {
                let next = SpawnOnDrop {
                    spawn_more: self.spawn_more - 1,
                    dropped: self.dropped.clone(),
                };
                drop(rt::spawn(async move {
                    let _next = next;
                    future::pending::<()>().await;
                }));
            }
        }
    }
    let dropped = on_watched_thread(None, || {
        let dropped = Rc::new(Cell::new(0));
        let guard = SpawnOnDrop {
            spawn_more: 10,
            dropped: dropped.clone(),
        };
        rt::block_on(async move {
            drop(rt::spawn(async move {
                let _guard = guard;
                future::pending::<()>().await;
            }));
            rt::yield_now().await;
        });
        dropped.get()
    });
    assert_eq!(dropped, 11);
}

#[test]
fn join_handle_outliving_its_runtime_reports_cancelled() {
    let runtime = Runtime::new().unwrap();
    let handle = runtime.spawn(future::pending::<()>());
    runtime.block_on(rt::yield_now());
    drop(runtime);
    assert!(handle.is_finished());
    let error = futures::executor::block_on(handle).unwrap_err();
    assert!(error.is_cancelled());
}

// ---------------------------------------------------------------------------
// Runtime and JoinHandle API

#[test]
fn runtime_spawn_before_block_on_runs_the_task() {
    let runtime = Runtime::new().unwrap();
    let handle = runtime.spawn(async { 40 });
    assert_eq!(runtime.block_on(bounded(handle)).unwrap() + 2, 42);
}

#[test]
fn one_runtime_can_block_on_many_times_and_tasks_carry_over() {
    let runtime = Runtime::new().unwrap();
    let (send, receive) = oneshot::channel::<u32>();
    // A task started by the first call waits, across calls, for the second.
    let mut waiter = None;
    runtime.block_on(async {
        waiter = Some(rt::spawn(async move { receive.await.unwrap() * 2 }));
        rt::yield_now().await;
    });
    let waiter = waiter.unwrap();
    assert!(!waiter.is_finished());
    runtime.block_on(async move { send.send(21).unwrap() });
    assert_eq!(runtime.block_on(bounded(waiter)).unwrap(), 42);
    for n in 0..100 {
        assert_eq!(
            runtime.block_on(async move { rt::spawn(async move { n }).await.unwrap() }),
            n
        );
    }
}

/// A `block_on` future that wakes itself, then spawns `tasks`, and
/// completes (or panics) on its next poll: the tasks are queued right
/// behind it, in the batch its completion interrupts.
fn finish_ahead_of_queued_tasks(
    tasks: Vec<Rc<Cell<bool>>>,
    panics: bool,
) -> impl Future<Output = ()> {
    let mut tasks = Some(tasks);
    poll_fn(move |cx| match tasks.take() {
        Some(tasks) => {
            cx.waker().wake_by_ref();
            for ran in tasks {
                drop(rt::spawn(async move { ran.set(true) }));
            }
            Poll::Pending
        }
        None if panics => panic!("main boom"),
        None => Poll::Ready(()),
    })
}

#[test]
fn tasks_queued_behind_a_finishing_block_on_future_run_at_the_next_call() {
    for panics in [false, true] {
        let runtime = Runtime::new().unwrap();
        let ran: Vec<_> = (0..3).map(|_| Rc::new(Cell::new(false))).collect();
        let first = panic::catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(finish_ahead_of_queued_tasks(ran.clone(), panics))
        }));
        assert_eq!(first.is_err(), panics);
        assert!(ran.iter().all(|ran| !ran.get()), "ran before their turn");
        runtime.block_on(bounded(rt::yield_now()));
        assert!(
            ran.iter().all(|ran| ran.get()),
            "tasks lost when block_on returned (panicked: {panics})"
        );
        assert_eq!(runtime.block_on(async { rt::metrics().tasks }), 0);
    }
}

#[test]
fn task_aborted_before_its_first_poll_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let error = block_on_bounded(async {
        let handle = rt::spawn({
            let ran = ran.clone();
            async move { ran.set(true) }
        });
        handle.abort();
        handle.await.unwrap_err()
    });
    assert!(error.is_cancelled());
    assert!(!error.is_panic());
    assert!(!ran.get());
}

#[test]
fn task_spawned_on_a_runtime_and_aborted_before_block_on_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let runtime = Runtime::new().unwrap();
    let handle = runtime.spawn({
        let ran = ran.clone();
        async move { ran.set(true) }
    });
    handle.abort();
    assert!(runtime
        .block_on(bounded(handle))
        .unwrap_err()
        .is_cancelled());
    assert!(!ran.get());
}

#[test]
fn abort_of_a_sleeping_task_cancels_it_and_drops_its_future() {
    let (started, dropped) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let error = block_on_bounded(async {
        let handle = rt::spawn({
            let (started, guard) = (started.clone(), DropFlag(dropped.clone()));
            async move {
                let _guard = guard;
                started.set(true);
                sleep(Duration::from_secs(3600)).await;
            }
        });
        yield_until(|| started.get()).await;
        assert!(!handle.is_finished());
        handle.abort();
        handle.await.unwrap_err()
    });
    assert!(error.is_cancelled());
    assert!(dropped.get());
}

#[test]
fn abort_after_completion_keeps_the_output() {
    let output = block_on_bounded(async {
        let handle = rt::spawn(async { 7 });
        yield_until(|| handle.is_finished()).await;
        handle.abort();
        handle.await
    });
    assert_eq!(output.unwrap(), 7);
}

#[test]
fn is_finished_turns_true_when_the_task_completes() {
    block_on_bounded(async {
        let (send, receive) = oneshot::channel::<()>();
        let handle = rt::spawn(receive);
        rt::yield_now().await;
        assert!(!handle.is_finished());
        send.send(()).unwrap();
        yield_until(|| handle.is_finished()).await;
        assert!(handle.await.unwrap().is_ok());
    });
}

#[test]
fn dropping_a_join_handle_detaches_the_task() {
    let delivered = block_on_bounded(async {
        let (send, receive) = oneshot::channel();
        drop(rt::spawn(async move {
            sleep(Duration::from_millis(5)).await;
            send.send("ran to completion").unwrap();
        }));
        receive.await
    });
    assert_eq!(delivered, Ok("ran to completion"));
}

#[test]
fn finished_task_drops_its_captured_values_before_it_is_joined() {
    let captured = Rc::new(());
    block_on_bounded(async {
        let handle = rt::spawn({
            let captured = captured.clone();
            // A `poll_fn` keeps its closure, and what that captured, until
            // the future is dropped: only the runtime can free it.
            let mut yielded = false;
            poll_fn(move |cx| {
                if yielded {
                    return Poll::Ready(Rc::strong_count(&captured));
                }
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
        });
        assert_eq!(Rc::strong_count(&captured), 2);
        yield_until(|| handle.is_finished()).await;
        // The handle is still held and not awaited: only the output is kept.
        assert_eq!(Rc::strong_count(&captured), 1);
        assert_eq!(handle.await.unwrap(), 2);
    });
}

#[test]
fn join_handle_can_be_awaited_after_a_select_dropped_its_first_poll() {
    let output = block_on_bounded(async {
        let (send, receive) = oneshot::channel::<u32>();
        let mut handle = rt::spawn(async move { receive.await.unwrap() });
        match future::select(&mut handle, sleep(Duration::from_millis(1))).await {
            Either::Left(_) => panic!("the task finished before its input was sent"),
            Either::Right(((), _)) => {}
        }
        send.send(9).unwrap();
        handle.await
    });
    assert_eq!(output.unwrap(), 9);
}

#[test]
fn join_handle_moved_to_another_task_after_a_poll_wakes_the_new_awaiter() {
    let output = block_on_bounded(async {
        let (send, receive) = oneshot::channel::<u32>();
        let mut inner = rt::spawn(async move { receive.await.unwrap() });
        // The first poll registers this (main) task as the awaiter...
        assert!(futures::poll!(&mut inner).is_pending());
        // ...then another task takes the handle over.
        let outer = rt::spawn(async move { inner.await.unwrap() + 1 });
        rt::yield_now().await;
        send.send(41).unwrap();
        outer.await
    });
    assert_eq!(output.unwrap(), 42);
}

#[test]
fn builder_event_capacity_builds_a_working_runtime() {
    let runtime = Runtime::builder().event_capacity(1).build().unwrap();
    let output = runtime.block_on(bounded(async {
        let handle = rt::spawn(async {
            sleep(Duration::from_millis(1)).await;
            3
        });
        handle.await.unwrap()
    }));
    assert_eq!(output, 3);
}

// ---------------------------------------------------------------------------
// Panics

#[test]
fn panicking_task_reports_is_panic_and_the_runtime_keeps_running() {
    block_on_bounded(async {
        let survivor = rt::spawn(async {
            sleep(Duration::from_millis(10)).await;
            "still running"
        });
        let error = rt::spawn(async { panic!("task boom") }).await.unwrap_err();
        assert!(error.is_panic());
        assert!(!error.is_cancelled());
        let payload = error.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task boom"));

        // A formatted message arrives as a `String` payload.
        let n = std::hint::black_box(7);
        let error = rt::spawn(async move { panic!("formatted boom {n}") })
            .await
            .unwrap_err();
        assert_eq!(panic_message(&*error.into_panic()), "formatted boom 7");

        assert_eq!(survivor.await.unwrap(), "still running");
        assert_eq!(rt::spawn(async { 1 }).await.unwrap(), 1);
    });
}

#[test]
fn panicking_task_drops_its_captured_values() {
    let captured = Rc::new(());
    block_on_bounded(async {
        let handle = rt::spawn({
            let captured = captured.clone();
            poll_fn(move |_| -> Poll<()> {
                panic!(
                    "boom while holding {} references",
                    Rc::strong_count(&captured)
                )
            })
        });
        yield_until(|| handle.is_finished()).await;
        assert_eq!(Rc::strong_count(&captured), 1);
        assert!(handle.await.unwrap_err().is_panic());
    });
}

/// Counts its drop, then panics: a destructor that fails.
struct PanicOnDrop(Rc<Cell<u32>>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("destructor boom");
    }
}

#[test]
fn panic_in_drop_of_detached_task_output_is_caught() {
    let drops = Rc::new(Cell::new(0));
    let output = block_on_bounded(async {
        // Detached before the task runs: its output is dropped when it
        // completes, by the runtime.
        drop(rt::spawn({
            let drops = drops.clone();
            async move { PanicOnDrop(drops) }
        }));
        yield_until(|| drops.get() == 1).await;
        // Detached after it completed: the output is dropped with the handle.
        let handle = rt::spawn({
            let drops = drops.clone();
            async move { PanicOnDrop(drops) }
        });
        yield_until(|| handle.is_finished()).await;
        drop(handle);
        assert_eq!(drops.get(), 2);
        // The runtime goes on.
        rt::spawn(async {
            sleep(Duration::from_millis(1)).await;
            5
        })
        .await
        .unwrap()
    });
    assert_eq!(output, 5);
}

#[test]
fn panic_in_drop_of_an_aborted_tasks_future_is_reported_as_its_panic() {
    let drops = Rc::new(Cell::new(0));
    block_on_bounded(async {
        let handle = rt::spawn({
            let guard = PanicOnDrop(drops.clone());
            async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            }
        });
        rt::yield_now().await;
        handle.abort();
        let error = handle.await.unwrap_err();
        assert!(error.is_panic(), "{error:?}");
        assert_eq!(panic_message(&*error.into_panic()), "destructor boom");
        assert_eq!(drops.get(), 1);

        // Aborted and detached: the panic goes nowhere, and is caught.
        let handle = rt::spawn({
            let guard = PanicOnDrop(drops.clone());
            async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            }
        });
        handle.abort();
        drop(handle);
        yield_until(|| drops.get() == 2).await;
    });
}

#[test]
fn runtime_drop_catches_panics_in_the_destructors_of_its_tasks() {
    let drops = Rc::new(Cell::new(0));
    let runtime = Runtime::new().unwrap();
    // Pending, detached.
    drop(runtime.spawn({
        let guard = PanicOnDrop(drops.clone());
        async move {
            let _guard = guard;
            future::pending::<()>().await;
        }
    }));
    // Pending, with its handle kept past the runtime.
    let kept = runtime.spawn({
        let guard = PanicOnDrop(drops.clone());
        async move {
            let _guard = guard;
            future::pending::<()>().await;
        }
    });
    runtime.block_on(rt::yield_now());
    drop(runtime);
    assert_eq!(drops.get(), 2);
    assert!(kept.is_finished());
}

#[test]
fn panic_in_the_block_on_future_propagates() {
    let payload = panic::catch_unwind(|| rt::block_on(async { panic!("main boom") })).unwrap_err();
    assert_eq!(panic_message(&*payload), "main boom");
    // The thread is left clean: a new runtime runs fine.
    assert_eq!(
        block_on_bounded(async { rt::spawn(async { 2 }).await.unwrap() }),
        2
    );
}

#[test]
fn runtime_survives_a_panic_in_its_block_on_future() {
    let runtime = Runtime::new().unwrap();
    let (send, receive) = oneshot::channel::<u32>();
    let waiter = runtime.spawn(async move { receive.await.unwrap() });
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            rt::yield_now().await;
            panic!("main boom");
        })
    }));
    assert!(result.is_err());
    send.send(8).unwrap();
    assert_eq!(runtime.block_on(bounded(waiter)).unwrap(), 8);
}

#[test]
fn nested_block_on_panics_with_a_message_naming_block_on() {
    let payload =
        panic::catch_unwind(|| rt::block_on(async { rt::block_on(async {}) })).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("block_on"), "unhelpful message: {message}");

    let outer = Runtime::new().unwrap();
    let inner = Runtime::new().unwrap();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        outer.block_on(async { inner.block_on(async {}) })
    }))
    .unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("block_on"), "unhelpful message: {message}");
}

#[test]
fn failed_nested_block_on_leaves_the_outer_runtime_usable() {
    let output = block_on_bounded(async {
        let nested = panic::catch_unwind(|| rt::block_on(async {}));
        assert!(nested.is_err());
        // Still inside the outer runtime: spawn and timers work.
        let handle = rt::spawn(async {
            sleep(Duration::from_millis(1)).await;
            "outer still current"
        });
        handle.await.unwrap()
    });
    assert_eq!(output, "outer still current");
}

#[test]
fn spawn_outside_a_runtime_panics_naming_block_on() {
    let payload = panic::catch_unwind(|| drop(rt::spawn(async {}))).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("block_on"), "unhelpful message: {message}");
}

// ---------------------------------------------------------------------------
// Yielding and fairness

#[test]
fn yield_now_lets_two_tasks_interleave() {
    let log = Rc::new(RefCell::new(Vec::new()));
    block_on_bounded(async {
        let tasks: Vec<_> = ['a', 'b']
            .into_iter()
            .map(|name| {
                let log = log.clone();
                rt::spawn(async move {
                    for _ in 0..3 {
                        log.borrow_mut().push(name);
                        rt::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let log = log.borrow();
    let last = |name| log.iter().rposition(|&entry| entry == name).unwrap();
    let first = |name| log.iter().position(|&entry| entry == name).unwrap();
    assert!(
        first('b') < last('a') && first('a') < last('b'),
        "no interleaving: {log:?}"
    );
}

#[test]
fn yield_now_in_the_block_on_future_lets_a_spawned_task_run() {
    let ran = Rc::new(Cell::new(false));
    block_on_bounded(async {
        drop(rt::spawn({
            let ran = ran.clone();
            async move { ran.set(true) }
        }));
        rt::yield_now().await;
        assert!(ran.get(), "the spawned task did not run during the yield");
    });
}

/// Spawns a task that keeps waking itself through `yield_now` until `stop`
/// is set, counting its polls in `spins`.
fn spawn_busy_task(stop: Rc<Cell<bool>>, spins: Rc<Cell<u64>>) -> rt::JoinHandle<()> {
    rt::spawn(async move {
        while !stop.get() {
            spins.set(spins.get() + 1);
            rt::yield_now().await;
        }
    })
}

#[test]
fn self_waking_task_does_not_starve_a_timer() {
    // Watched from outside: a starved loop would starve an in-runtime timeout
    // just as well.
    let spins = on_watched_thread(None, || {
        rt::block_on(async {
            let (stop, spins) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
            let busy = spawn_busy_task(stop.clone(), spins.clone());
            sleep(Duration::from_millis(10)).await;
            stop.set(true);
            busy.await.unwrap();
            spins.get()
        })
    });
    assert!(spins > 0, "the busy task never ran");
}

#[test]
fn self_waking_task_does_not_starve_a_cross_thread_wake() {
    let spins = on_watched_thread(None, || {
        let (waker_thread, thread) = spawn_waker_thread();
        let spins = rt::block_on(async move {
            let (stop, spins) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
            let busy = spawn_busy_task(stop.clone(), spins.clone());
            woken_from_thread(&waker_thread, Duration::from_millis(5)).await;
            stop.set(true);
            busy.await.unwrap();
            spins.get()
        });
        thread.join().unwrap();
        spins
    });
    assert!(spins > 0, "the busy task never ran");
}

#[test]
fn self_waking_block_on_future_does_not_starve_a_sleeping_task() {
    let finished = on_watched_thread(None, || {
        rt::block_on(async {
            let sleeper = rt::spawn(sleep(Duration::from_millis(10)));
            yield_until(|| sleeper.is_finished()).await;
            sleeper.await.is_ok()
        })
    });
    assert!(finished);
}

// ---------------------------------------------------------------------------
// JoinError

#[test]
fn join_error_display_and_debug_say_cancelled_or_panicked() {
    let (cancelled, panicked) = block_on_bounded(async {
        let handle = rt::spawn(future::pending::<()>());
        handle.abort();
        let cancelled = handle.await.unwrap_err();
        let panicked = rt::spawn(async { panic!("display boom") })
            .await
            .unwrap_err();
        (cancelled, panicked)
    });
    let (display, debug) = (cancelled.to_string(), format!("{cancelled:?}"));
    assert!(
        display.contains("cancel"),
        "Display of a cancelled task: {display}"
    );
    assert!(
        debug.contains("Cancel"),
        "Debug of a cancelled task: {debug}"
    );
    assert!(cancelled.try_into_panic().is_err());

    let (display, debug) = (panicked.to_string(), format!("{panicked:?}"));
    assert!(
        display.contains("panic") && display.contains("display boom"),
        "Display of a panic: {display}"
    );
    assert!(
        debug.contains("Panic") && debug.contains("display boom"),
        "Debug of a panic: {debug}"
    );

    // It is a `std::error::Error`, so `?` can box it.
    let boxed: Box<dyn std::error::Error> = Box::new(panicked);
    assert!(boxed.to_string().contains("display boom"));
}
