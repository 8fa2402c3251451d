//! `xev::rt::spawn_blocking` and the blocking pool: closures run beside the
//! loop, panics come back as `JoinError`s, the pool is bounded and shrinks
//! when idle, and dropping the runtime does not wait for it.
//!
//! Every test is bounded by `xev::time::timeout` or a receive with a
//! timeout. The thread-count test runs in a child process, so the other
//! tests' threads cannot disturb the count.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use xev::net::{TcpListener, TcpStream};
use xev::rt::{self, Runtime};
use xev::time::{sleep, timeout};

/// The most any test body may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(future: F) -> F::Output {
    match timeout(LIMIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("test body still pending after {LIMIT:?}"),
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn spawn_blocking_runs_beside_the_loop_which_keeps_serving_tcp() {
    rt::block_on(bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                stream.write_all(&buf[..n]).await.unwrap();
            }
        });
        let blocking = rt::spawn_blocking(|| {
            thread::sleep(Duration::from_millis(500));
            thread::current().id()
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let mut reply = [0u8; 8];
        for round in 0..20u64 {
            client.write_all(&round.to_le_bytes()).await.unwrap();
            client.read_exact(&mut reply).await.unwrap();
            assert_eq!(u64::from_le_bytes(reply), round);
        }
        assert!(
            !blocking.is_finished(),
            "20 loopback echoes took longer than the 500 ms closure: the loop was blocked"
        );
        let pool_thread = blocking.await.unwrap();
        assert_ne!(pool_thread, thread::current().id());
        drop(client);
        server.await.unwrap();
    }));
}

#[test]
fn panic_in_a_blocking_closure_is_a_join_error() {
    rt::block_on(bounded(async {
        let error = rt::spawn_blocking(|| -> u8 { panic!("blocking boom") })
            .await
            .unwrap_err();
        assert!(error.is_panic());
        assert_eq!(
            error.into_panic().downcast_ref::<&str>(),
            Some(&"blocking boom")
        );
        // The pool goes on.
        assert_eq!(rt::spawn_blocking(|| 4).await.unwrap(), 4);
    }));
}

#[test]
fn max_blocking_threads_one_runs_closures_one_after_another() {
    let runtime = Runtime::builder().max_blocking_threads(1).build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let threads = runtime.block_on(bounded(async {
        let handles: Vec<_> = (0..5)
            .map(|n| {
                let (running, most, order) = (running.clone(), most.clone(), order.clone());
                rt::spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(10));
                    order.lock().unwrap().push(n);
                    running.fetch_sub(1, Ordering::SeqCst);
                    thread::current().id()
                })
            })
            .collect();
        let mut threads = Vec::new();
        for handle in handles {
            threads.push(handle.await.unwrap());
        }
        threads
    }));
    assert_eq!(most.load(Ordering::SeqCst), 1, "two closures ran at once");
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    assert!(threads.iter().all(|id| *id == threads[0]));
}

#[test]
fn blocking_closures_run_in_parallel_up_to_the_bound() {
    // Four closures that each wait for all four: they can only finish if
    // four threads run them at once.
    let runtime = Runtime::builder().max_blocking_threads(4).build().unwrap();
    let barrier = Arc::new(Barrier::new(4));
    runtime.block_on(bounded(async {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                rt::spawn_blocking(move || {
                    barrier.wait();
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }));
}

#[test]
fn abort_keeps_a_queued_closure_from_starting() {
    let runtime = Runtime::builder().max_blocking_threads(1).build().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let ran = Arc::new(AtomicBool::new(false));
    runtime.block_on(bounded(async {
        let first = rt::spawn_blocking(move || released.recv_timeout(LIMIT).is_ok());
        let second = rt::spawn_blocking({
            let ran = ran.clone();
            move || ran.store(true, Ordering::SeqCst)
        });
        second.abort();
        release.send(()).unwrap();
        assert!(first.await.unwrap(), "the first closure was not released");
        assert!(second.await.unwrap_err().is_cancelled());
    }));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn dropping_the_runtime_does_not_wait_for_blocking_closures_and_drops_queued_ones() {
    let runtime = Runtime::builder().max_blocking_threads(1).build().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let (started, start) = mpsc::channel::<()>();
    let (finished, finish) = mpsc::channel::<bool>();
    let queued_dropped = Arc::new(AtomicBool::new(false));
    let queued_ran = Arc::new(AtomicBool::new(false));
    let handles = runtime.block_on(async {
        let running = rt::spawn_blocking(move || {
            started.send(()).unwrap();
            // Released only after the runtime is dropped: if the drop
            // waited for this closure, this would time out.
            let released = released.recv_timeout(LIMIT).is_ok();
            finished.send(released).unwrap();
        });
        let queued = rt::spawn_blocking({
            let (guard, ran) = (DropFlag(queued_dropped.clone()), queued_ran.clone());
            move || {
                let _guard = guard;
                ran.store(true, Ordering::SeqCst);
            }
        });
        (running, queued)
    });
    start
        .recv_timeout(LIMIT)
        .expect("the closure never started");
    drop(runtime);
    release.send(()).unwrap();
    assert!(
        finish.recv_timeout(LIMIT).unwrap(),
        "dropping the runtime waited for the closure"
    );
    assert!(queued_dropped.load(Ordering::Acquire));
    assert!(!queued_ran.load(Ordering::SeqCst));
    let (running, queued) = handles;
    // The running closure's result still arrives; the queued one was cancelled.
    futures::executor::block_on(running).unwrap();
    assert!(futures::executor::block_on(queued)
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn metrics_count_blocking_closures_in_flight() {
    let runtime = Runtime::builder().max_blocking_threads(1).build().unwrap();
    runtime.block_on(bounded(async {
        let (release, released) = mpsc::channel::<()>();
        let first = rt::spawn_blocking(move || released.recv_timeout(LIMIT).is_ok());
        let second = rt::spawn_blocking(|| ());
        assert_eq!(rt::metrics().blocking_tasks, 2);
        release.send(()).unwrap();
        assert!(first.await.unwrap());
        second.await.unwrap();
        // The count drops once the thread has taken back the lock.
        let deadline = Instant::now() + LIMIT;
        while rt::metrics().blocking_tasks != 0 {
            assert!(Instant::now() < deadline, "blocking_tasks stuck above 0");
            sleep(Duration::from_millis(1)).await;
        }
    }));
}

/// How many threads this process has.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list /proc/self/task")
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn idle_blocking_threads_exit_after_their_keep_alive() {
    const NAME: &str = "idle_blocking_threads_exit_after_their_keep_alive";
    if !common::child::is_child(NAME) {
        common::child::run(NAME);
        return;
    }
    let runtime = Runtime::builder()
        .thread_keep_alive(Duration::from_millis(100))
        .build()
        .unwrap();
    let before = thread_count();
    runtime.block_on(bounded(async {
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                rt::spawn_blocking(move || {
                    barrier.wait();
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        // Four threads ran at once (the barrier needs them all); idle now,
        // they exit after the keep-alive.
        let deadline = Instant::now() + Duration::from_secs(5);
        while thread_count() > before {
            assert!(
                Instant::now() < deadline,
                "pool threads still alive 5 s after a 100 ms keep-alive: {} > {before}",
                thread_count()
            );
            sleep(Duration::from_millis(10)).await;
        }
        // The pool starts threads again on demand.
        assert_eq!(rt::spawn_blocking(|| 9).await.unwrap(), 9);
    }));
}
