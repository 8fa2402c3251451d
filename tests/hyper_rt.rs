//! `xev::hyper`'s runtime pieces on their own: `Timer`'s `Send + Sync`
//! sleeps (due, reset, dropped on another thread, on a paused clock),
//! `Io`'s write timeout, and `Executor` with a `!Send` future.

use std::cell::Cell;
use std::future::poll_fn;
use std::io::ErrorKind;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hyper::rt::{Executor as _, Timer as _, Write as _};
use xev::hyper::{Executor, Io, Timer};
use xev::net::TcpStream;

mod common;

use common::{connected_pair, within};

fn assert_send_sync<T: Send + Sync + ?Sized>(_: &T) {}

/// A sleep is `Send + Sync`, wakes its task once due and not before.
#[xev::test(timeout_ms = 5000)]
async fn timer_sleep_wakes_when_due_and_never_early() {
    let timer = Timer::new();
    let start = Instant::now();
    let sleep = timer.sleep(Duration::from_millis(30));
    assert_send_sync(&sleep);
    sleep.await;
    assert!(start.elapsed() >= Duration::from_millis(30));

    let deadline = timer.now() + Duration::from_millis(20);
    timer.sleep_until(deadline).await;
    assert!(timer.now() >= deadline);
}

/// Many sleeps at once, on several tasks: each wakes at its own deadline.
#[xev::test(timeout_ms = 5000)]
async fn timer_sleeps_on_many_tasks_each_wake_at_their_deadline() {
    let start = Instant::now();
    let tasks: Vec<_> = (1..=50u64)
        .map(|i| {
            xev::rt::spawn(async move {
                Timer::new().sleep(Duration::from_millis(i)).await;
                start.elapsed() >= Duration::from_millis(i)
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap(), "a sleep completed before its deadline");
    }
}

/// Reset moves a sleep that already waits (armed, its waker stored):
/// later, then into the past, where it is ready at once.
#[xev::test(timeout_ms = 5000)]
async fn timer_reset_moves_a_waiting_sleep() {
    let timer = Timer::new();
    let mut sleep = timer.sleep(Duration::from_millis(10));
    // Arm it and leave a waker behind.
    assert!(futures::poll!(sleep.as_mut()).is_pending());

    let start = Instant::now();
    timer.reset(&mut sleep, timer.now() + Duration::from_millis(60));
    sleep.as_mut().await;
    assert!(
        start.elapsed() >= Duration::from_millis(60),
        "reset later was ignored"
    );

    timer.reset(&mut sleep, timer.now() + Duration::from_secs(3600));
    assert!(futures::poll!(sleep.as_mut()).is_pending());
    timer.reset(&mut sleep, timer.now());
    assert!(
        futures::poll!(sleep.as_mut()).is_ready(),
        "a past deadline is ready at once"
    );
}

/// A task waiting on a sleep whose deadline another party moves into the
/// past is woken by the reset itself, as hyper may reset a sleep that a
/// connection task waits on.
#[xev::test(timeout_ms = 5000)]
async fn timer_reset_into_the_past_wakes_the_waiting_task() {
    let timer = Timer::new();
    let sleep = std::sync::Arc::new(std::sync::Mutex::new(
        timer.sleep(Duration::from_secs(3600)),
    ));
    let waiter = xev::rt::spawn({
        let sleep = sleep.clone();
        async move { poll_fn(|cx| sleep.lock().unwrap().as_mut().poll(cx)).await }
    });
    xev::rt::yield_now().await; // the waiter arms the sleep and waits
    assert!(!waiter.is_finished());
    timer.reset(&mut sleep.lock().unwrap(), timer.now());
    within(
        Duration::from_secs(1),
        "the waiter woken by the reset",
        waiter,
    )
    .await
    .unwrap();
}

/// A sleep armed on the runtime can be dropped on another thread: nothing
/// breaks, and the runtime goes on arming and firing sleeps.
#[xev::test(timeout_ms = 5000)]
async fn timer_sleep_dropped_on_another_thread() {
    let timer = Timer::new();
    for _ in 0..100 {
        let mut sleep = timer.sleep(Duration::from_millis(5));
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        std::thread::spawn(move || drop(sleep)).join().unwrap();
    }
    let start = Instant::now();
    timer.sleep(Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));
}

/// A sleep moved to another runtime's thread after its first poll is
/// armed anew there and still completes at its deadline.
#[test]
fn timer_sleep_moved_to_another_runtime_thread_completes() {
    let timer = Timer::new();
    let mut sleep = timer.sleep(Duration::from_millis(30));
    xev::rt::block_on(async {
        assert!(futures::poll!(sleep.as_mut()).is_pending());
    });
    let start = Instant::now();
    std::thread::spawn(move || {
        xev::rt::block_on(async move {
            xev::time::timeout(Duration::from_secs(5), sleep.as_mut())
                .await
                .expect("the moved sleep completes");
        })
    })
    .join()
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// hyper reads the time through `Timer::now`: on a paused clock, it is the
/// paused reading, and an hour-long sleep completes by auto-advance.
#[cfg(feature = "test-util")]
#[xev::test(start_paused = true, timeout_ms = 5000)]
async fn timer_follows_the_paused_clock() {
    let timer = Timer::new();
    let start = timer.now();
    assert_eq!(start, xev::time::now());
    timer.sleep(Duration::from_secs(3600)).await;
    assert!(timer.now() - start >= Duration::from_secs(3600));
}

/// A connection whose client end never reads, with small fixed socket
/// buffers (no autotuning to make room later): `(client, server)`.
async fn stalling_pair() -> (TcpStream, TcpStream) {
    let (client, server) = connected_pair().await.unwrap();
    client.set_recv_buffer_size(16 * 1024).unwrap();
    server.set_send_buffer_size(16 * 1024).unwrap();
    (client, server)
}

/// Writes through hyper's `Write` until a write has waited 100 ms (the
/// socket buffers are full and stay full), then returns that write's
/// outcome, waiting `limit` at most.
async fn stall_and_wait(io: &mut Io<TcpStream>, limit: Duration) -> Option<std::io::Result<usize>> {
    let chunk = vec![0x5a; 64 * 1024];
    loop {
        let write = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, &chunk));
        match xev::time::timeout(Duration::from_millis(100), write).await {
            Ok(written) => drop(written.expect("writes succeed until the buffers are full")),
            Err(_) => break,
        }
    }
    let write = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, &chunk));
    xev::time::timeout(limit, write).await.ok()
}

/// A write that the peer takes nothing of fails with `TimedOut` once the
/// write timeout has passed.
#[xev::test(timeout_ms = 10_000)]
async fn io_write_timeout_fails_a_stalled_write() {
    let (client, server) = stalling_pair().await;
    let mut io = Io::new(server);
    io.set_write_timeout(Some(Duration::from_millis(200)));
    let start = Instant::now();
    let outcome = stall_and_wait(&mut io, Duration::from_secs(5)).await;
    let error = outcome
        .expect("the stalled write ends within 5 s")
        .expect_err("a stalled write fails");
    assert_eq!(error.kind(), ErrorKind::TimedOut, "{error}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    drop(client);
}

/// Without a write timeout, a stalled write just waits.
#[xev::test(timeout_ms = 10_000)]
async fn io_without_write_timeout_waits() {
    let (_client, server) = stalling_pair().await;
    let mut io = Io::new(server);
    assert_eq!(io.write_timeout(), None);
    let outcome = stall_and_wait(&mut io, Duration::from_millis(300)).await;
    assert!(outcome.is_none(), "the write ended: {outcome:?}");
}

/// A slow reader that takes a little every 100 ms keeps a connection with
/// a 300 ms write timeout alive: progress starts the clock again.
#[xev::test(timeout_ms = 20_000)]
async fn io_write_timeout_spares_a_slow_reader() {
    let (client, server) = stalling_pair().await;
    let total = 1024 * 1024;
    let reader = xev::rt::spawn(async move {
        let mut buf = vec![0; 32 * 1024];
        let mut received = 0;
        while received < total {
            xev::time::sleep(Duration::from_millis(100)).await;
            let n = client.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "early end of stream");
            received += n;
        }
        received
    });
    let mut io = Io::new(server);
    io.set_write_timeout(Some(Duration::from_millis(300)));
    let data = vec![0xa5; total];
    let mut sent = 0;
    while sent < total {
        sent += poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &data[sent..]))
            .await
            .expect("a slow but reading peer is not cut off");
    }
    assert_eq!(reader.await.unwrap(), total);
}

/// `Executor` runs `!Send` futures as tasks on the current runtime.
#[xev::test(timeout_ms = 5000)]
async fn executor_spawns_not_send_futures() {
    let ran = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let ran = ran.clone();
        Executor::new().execute(async move { ran.set(ran.get() + 1) });
    }
    while ran.get() < 3 {
        xev::rt::yield_now().await;
    }
    assert_eq!(ran.get(), 3);
}
