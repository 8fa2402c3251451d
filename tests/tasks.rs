//! The tasks API (`xev::rt`): task ids, `AbortHandle`, `JoinSet`, `Handle`
//! and `Runtime::enter`, with tokio's names and meanings.
//!
//! Every test is bounded: bodies run under `xev::time::timeout`, and a
//! thread that could hang is watched from the runtime's side.

use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use futures::channel::oneshot;
use xev::rt::{self, AbortHandle, Handle, Id, JoinSet, Runtime};
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

fn block_on_bounded<F: Future>(future: F) -> F::Output {
    rt::block_on(bounded(future))
}

/// Waits (on the runtime) until `thread` has finished, then joins it.
async fn join_thread<T>(thread: thread::JoinHandle<T>) -> T {
    while !thread.is_finished() {
        sleep(Duration::from_millis(1)).await;
    }
    match thread.join() {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Sets its flag when dropped (from whichever thread).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn abort_handle_and_handle_are_send_and_sync() {
    assert_send_sync::<AbortHandle>();
    assert_send_sync::<Handle>();
    assert_send_sync::<Id>();
}

// ---------------------------------------------------------------------------
// Ids

#[test]
fn task_ids_are_unique_across_tasks_and_runtimes_and_display_as_numbers() {
    let mut ids = HashSet::new();
    for _ in 0..2 {
        let batch: Vec<Id> = block_on_bounded(async {
            let handles: Vec<_> = (0..1500).map(|_| rt::spawn(async {})).collect();
            let ids = handles.iter().map(|handle| handle.id()).collect();
            for handle in handles {
                handle.await.unwrap();
            }
            ids
        });
        ids.extend(batch);
    }
    // Runtimes on other threads draw from the same ids.
    let other: Vec<Id> = thread::spawn(|| {
        block_on_bounded(async { (0..1500).map(|_| rt::spawn(async {}).id()).collect() })
    })
    .join()
    .unwrap();
    ids.extend(other);
    assert_eq!(ids.len(), 4500, "an id was handed out twice");

    let id = *ids.iter().next().unwrap();
    let number: u64 = id.to_string().parse().expect("an id displays as a number");
    assert!(number > 0);
    assert_eq!(format!("{id:?}"), format!("Id({number})"));
}

#[test]
fn try_id_is_the_polled_tasks_id_and_none_outside_tasks() {
    assert_eq!(rt::try_id(), None, "outside a runtime");
    block_on_bounded(async {
        assert_eq!(rt::try_id(), None, "in block_on's own future");
        let task = rt::spawn(async {
            let first = rt::try_id();
            rt::yield_now().await;
            (first, rt::try_id())
        });
        let id = task.id();
        assert_eq!(task.abort_handle().id(), id);
        assert_eq!(task.await.unwrap(), (Some(id), Some(id)));
        assert_eq!(rt::try_id(), None);
    });
}

// ---------------------------------------------------------------------------
// AbortHandle

#[test]
fn abort_handle_used_from_another_thread_cancels_the_task() {
    let dropped = Arc::new(AtomicBool::new(false));
    let error = block_on_bounded(async {
        let task = rt::spawn({
            let guard = DropFlag(dropped.clone());
            async move {
                let _guard = guard;
                // Nothing else wakes the loop: the abort must.
                sleep(Duration::from_secs(3600)).await;
            }
        });
        rt::yield_now().await;
        let abort = task.abort_handle();
        assert!(!abort.is_finished());
        let aborter = thread::spawn(move || {
            abort.abort();
            abort
        });
        let error = task.await.unwrap_err();
        let abort = join_thread(aborter).await;
        assert!(abort.is_finished());
        error
    });
    assert!(error.is_cancelled());
    assert!(dropped.load(Ordering::Acquire));
}

#[test]
fn abort_handle_abort_after_completion_keeps_the_output() {
    block_on_bounded(async {
        let task = rt::spawn(async { 3 });
        let abort = task.abort_handle();
        rt::yield_now().await;
        assert!(abort.is_finished());
        abort.abort();
        assert_eq!(task.await.unwrap(), 3);
    });
}

// ---------------------------------------------------------------------------
// JoinSet

#[test]
fn join_set_returns_results_in_the_order_tasks_finish() {
    block_on_bounded(async {
        let mut set = JoinSet::new();
        let mut senders = Vec::new();
        for n in 0..4u32 {
            let (send, receive) = oneshot::channel::<()>();
            senders.push(Some(send));
            set.spawn(async move {
                receive.await.unwrap();
                n
            });
        }
        assert_eq!(set.len(), 4);
        // One at a time...
        senders[2].take().unwrap().send(()).unwrap();
        assert_eq!(set.join_next().await.unwrap().unwrap(), 2);
        // ...and several finishing in one tick, in the order they finish.
        for n in [3, 0, 1] {
            senders[n].take().unwrap().send(()).unwrap();
            rt::yield_now().await;
        }
        let mut rest = Vec::new();
        while let Some(result) = set.join_next().await {
            rest.push(result.unwrap());
        }
        assert_eq!(rest, [3, 0, 1]);
        assert!(set.is_empty());
    });
}

#[test]
fn join_next_on_an_empty_set_is_none() {
    block_on_bounded(async {
        let mut set = JoinSet::<u8>::new();
        assert!(set.join_next().await.is_none());
        assert!(set.try_join_next().is_none());
        set.spawn(async { 1 });
        assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
        assert!(set.join_next().await.is_none());
    });
}

#[test]
fn try_join_next_returns_only_finished_tasks() {
    block_on_bounded(async {
        let mut set = JoinSet::new();
        let (send, receive) = oneshot::channel::<()>();
        set.spawn(async move {
            receive.await.unwrap();
            "late"
        });
        set.spawn(async { "early" });
        assert!(set.try_join_next().is_none());
        rt::yield_now().await;
        assert_eq!(set.try_join_next().unwrap().unwrap(), "early");
        assert!(set.try_join_next().is_none());
        send.send(()).unwrap();
        rt::yield_now().await;
        assert_eq!(set.try_join_next().unwrap().unwrap(), "late");
        assert!(set.is_empty());
    });
}

#[test]
fn join_set_reports_panics_and_aborts_through_its_abort_handles() {
    block_on_bounded(async {
        let mut set = JoinSet::new();
        let sleeper = set.spawn(sleep(Duration::from_secs(3600)));
        set.spawn(async { panic!("task boom") });
        let first = set.join_next().await.unwrap().unwrap_err();
        assert!(first.is_panic());
        sleeper.abort();
        let second = set.join_next().await.unwrap().unwrap_err();
        assert!(second.is_cancelled());
        assert!(set.join_next().await.is_none());
    });
}

#[test]
fn dropping_a_join_set_aborts_its_tasks_and_drops_their_futures() {
    let dropped = Arc::new(AtomicBool::new(false));
    let completed = Rc::new(Cell::new(false));
    block_on_bounded(async {
        let mut set = JoinSet::new();
        set.spawn({
            let (guard, completed) = (DropFlag(dropped.clone()), completed.clone());
            async move {
                let _guard = guard;
                sleep(Duration::from_millis(20)).await;
                completed.set(true);
            }
        });
        rt::yield_now().await;
        drop(set);
        // The task's future is dropped by the runtime at its next turn.
        while !dropped.load(Ordering::Acquire) {
            rt::yield_now().await;
        }
        sleep(Duration::from_millis(40)).await;
    });
    assert!(!completed.get(), "an aborted task ran to completion");
    assert_eq!(rt::block_on(async { rt::metrics().tasks }), 0);
}

#[test]
fn join_set_shutdown_aborts_every_task_and_empties_the_set() {
    let dropped = Arc::new(AtomicBool::new(false));
    block_on_bounded(async {
        let mut set = JoinSet::new();
        for _ in 0..10 {
            let guard = DropFlag(dropped.clone());
            set.spawn(async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            });
        }
        set.shutdown().await;
        assert!(set.is_empty());
        assert_eq!(rt::metrics().tasks, 0);
    });
    assert!(dropped.load(Ordering::Acquire));
}

#[test]
fn detach_all_keeps_the_tasks_running() {
    let delivered = block_on_bounded(async {
        let mut set = JoinSet::new();
        let mut receivers = Vec::new();
        for n in 0..3u32 {
            let (send, receive) = oneshot::channel();
            receivers.push(receive);
            set.spawn(async move {
                sleep(Duration::from_millis(5)).await;
                send.send(n).unwrap();
            });
        }
        set.detach_all();
        assert!(set.is_empty());
        drop(set);
        let mut delivered = Vec::new();
        for receive in receivers {
            delivered.push(receive.await.unwrap());
        }
        delivered
    });
    assert_eq!(delivered, [0, 1, 2]);
}

// ---------------------------------------------------------------------------
// Handle

#[test]
fn handle_spawn_from_a_std_thread_runs_on_the_runtime_and_resolves_there() {
    let runtime_thread = thread::current().id();
    let (ran_on, task_id, handle_id) = block_on_bounded(async {
        let handle = Handle::current();
        let spawner = thread::spawn(move || {
            let join = handle.spawn(async { (thread::current().id(), rt::try_id()) });
            let handle_id = join.id();
            let (ran_on, task_id) = futures::executor::block_on(join).unwrap();
            (ran_on, task_id, handle_id)
        });
        join_thread(spawner).await
    });
    assert_eq!(ran_on, runtime_thread);
    assert_eq!(task_id, Some(handle_id));
}

#[test]
fn handle_spawn_reaches_a_loop_blocked_in_the_reactor() {
    let runtime = Runtime::new().unwrap();
    let handle = runtime.handle();
    let (result_tx, result_rx) = oneshot::channel();
    let spawner = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        let join = handle.spawn(async { 7 });
        result_tx
            .send(futures::executor::block_on(join).unwrap())
            .unwrap();
    });
    // The loop waits on nothing but the result: the spawn must wake it.
    let value = runtime.block_on(bounded(result_rx)).unwrap();
    assert_eq!(value, 7);
    spawner.join().unwrap();
}

#[test]
fn handle_spawned_task_can_be_aborted_from_its_spawning_thread() {
    let dropped = Arc::new(AtomicBool::new(false));
    let error = block_on_bounded(async {
        let handle = Handle::current();
        let guard = DropFlag(dropped.clone());
        let spawner = thread::spawn(move || {
            let join = handle.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            join.abort();
            futures::executor::block_on(join).unwrap_err()
        });
        join_thread(spawner).await
    });
    assert!(error.is_cancelled());
    assert!(dropped.load(Ordering::Acquire));
}

#[test]
fn handle_spawn_after_the_runtime_is_dropped_reports_cancelled() {
    let runtime = Runtime::new().unwrap();
    let handle = runtime.handle();
    // Queued but never run (the runtime is not current here, so this goes
    // through the remote queue, as from another thread); then the runtime
    // goes.
    let pending = handle.spawn(async { 2 });
    assert!(!pending.is_finished());
    drop(runtime);
    assert!(futures::executor::block_on(pending)
        .unwrap_err()
        .is_cancelled());
    let late = handle.spawn(async { 3 });
    assert!(late.is_finished());
    assert!(futures::executor::block_on(late)
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn handle_spawn_on_the_runtimes_own_thread_is_an_ordinary_spawn() {
    block_on_bounded(async {
        let handle = Handle::current();
        let task = handle.spawn(async { rt::try_id() });
        let id = task.id();
        assert_eq!(task.await.unwrap(), Some(id));
    });
}

#[test]
fn handle_current_outside_a_runtime_panics_with_a_clear_message() {
    let payload = panic::catch_unwind(Handle::current).unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("block_on"), "unhelpful message: {message}");
    let error = Handle::try_current().unwrap_err();
    assert!(error.is_missing_context());
    assert!(!error.is_thread_local_destroyed());
    assert!(error.to_string().contains("block_on"));
}

// ---------------------------------------------------------------------------
// Runtime::enter

#[test]
fn runtime_enter_lets_spawn_and_sockets_work_outside_block_on() {
    let runtime = Runtime::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let (task, listener) = {
        let _guard = runtime.enter();
        assert!(Handle::try_current().is_ok());
        let task = rt::spawn({
            let ran = ran.clone();
            async move { ran.set(true) }
        });
        let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (task, listener)
    };
    assert!(!ran.get(), "tasks run at the next block_on, not before");
    // The guard is gone: spawning panics again.
    assert!(panic::catch_unwind(AssertUnwindSafe(|| rt::spawn(async {}))).is_err());
    runtime.block_on(bounded(async {
        task.await.unwrap();
        // The listener was registered with this runtime: it accepts here.
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            futures::future::join(xev::net::TcpStream::connect(addr), listener.accept()).await;
        client.unwrap();
        accepted.unwrap();
    }));
    assert!(ran.get());
}

#[test]
fn block_on_works_while_the_runtime_is_entered() {
    let runtime = Runtime::new().unwrap();
    let _guard = runtime.enter();
    let task = rt::spawn(async { 5 });
    assert_eq!(runtime.block_on(bounded(task)).unwrap(), 5);
    // And after block_on returns, the runtime is still the entered one.
    assert_eq!(
        runtime.block_on(bounded(rt::spawn(async { 6 }))).unwrap(),
        6
    );
}
