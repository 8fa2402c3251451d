//! The paused clock (feature `test-util`): `xev::time::{pause, resume,
//! advance}`, auto-advance when the runtime is idle, and
//! `#[xev::test(start_paused = true)]`. DESIGN §10, "Precise meanings /
//! Clock".
//!
//! Every test is bounded by `timeout_ms`, which counts real time even while
//! the clock is paused.

use std::cell::RefCell;
use std::io;
use std::panic;
use std::rc::Rc;
use std::time::Instant as RealInstant;

use futures::{join, poll};
use xev::net::{TcpListener, TcpStream};
use xev::time::{self, advance, interval, sleep, timeout, Duration};

/// The message of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[xev::test(start_paused = true, timeout_ms = 10_000)]
async fn a_30_s_timeout_resolves_under_a_paused_clock_in_well_under_a_second() {
    let real_start = RealInstant::now();
    let start = time::now();
    let result = timeout(Duration::from_secs(30), std::future::pending::<()>()).await;
    assert!(
        result.is_err(),
        "a future that never completes did not time out"
    );
    assert_eq!(time::now(), start + Duration::from_secs(30));
    let real = real_start.elapsed();
    assert!(real < Duration::from_secs(5), "took {real:?} of real time");
}

#[xev::test(start_paused = true, timeout_ms = 10_000)]
async fn advance_fires_due_sleeps_in_deadline_order() {
    let fired = Rc::new(RefCell::new(Vec::new()));
    // Spawned in the reverse of their deadlines' order.
    let tasks: Vec<_> = [40u64, 30, 20, 10, 50]
        .into_iter()
        .map(|ms| {
            let fired = fired.clone();
            xev::rt::spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                fired.borrow_mut().push(ms);
            })
        })
        .collect();
    xev::rt::yield_now().await; // every task arms its sleep
    let start = time::now();
    advance(Duration::from_millis(45)).await;
    assert_eq!(time::now(), start + Duration::from_millis(45));
    assert_eq!(*fired.borrow(), [10, 20, 30, 40], "wrong order, or early");
    advance(Duration::from_millis(5)).await;
    assert_eq!(*fired.borrow(), [10, 20, 30, 40, 50]);
    for task in tasks {
        task.await.unwrap();
    }
}

#[xev::test(start_paused = true, timeout_ms = 10_000)]
async fn resume_runs_on_from_the_paused_reading_and_never_jumps_back() {
    let start = time::now();
    advance(Duration::from_secs(3600)).await;
    let paused_at = time::now();
    assert_eq!(paused_at, start + Duration::from_secs(3600));
    // Real time passing does not move a paused clock.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(time::now(), paused_at);
    time::resume();
    let resumed = time::now();
    assert!(resumed >= paused_at, "the clock went back on resume");
    assert!(
        resumed < paused_at + Duration::from_secs(1),
        "the time spent paused was counted: {:?}",
        resumed - paused_at
    );
    // Running again: a sleep waits in real time.
    let real_start = RealInstant::now();
    sleep(Duration::from_millis(10)).await;
    assert!(real_start.elapsed() >= Duration::from_millis(10));
    assert!(time::now() >= resumed + Duration::from_millis(10));
}

#[xev::test(start_paused = true, timeout_ms = 10_000)]
async fn tcp_echo_works_while_the_clock_is_paused() -> io::Result<()> {
    let start = time::now();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = xev::rt::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut buf = vec![0; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    });
    let client = TcpStream::connect(addr).await?;
    let sent: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let (written, received) = join!(
        async {
            client.write_all(&sent).await?;
            client.shutdown(std::net::Shutdown::Write)
        },
        async {
            let mut received = Vec::new();
            let mut buf = vec![0; 4096];
            loop {
                let n = client.read(&mut buf).await?;
                if n == 0 {
                    return io::Result::Ok(received);
                }
                received.extend_from_slice(&buf[..n]);
            }
        }
    );
    written?;
    assert!(received? == sent, "the echo differs from what was sent");
    server.await.unwrap()?;
    // No timer was armed: the clock never moved.
    assert_eq!(time::now(), start);
    Ok(())
}

#[xev::test(start_paused = true, timeout_ms = 10_000)]
async fn interval_under_a_paused_clock_ticks_at_exact_period_multiples() {
    // Not a whole number of milliseconds, to show deadlines are exact.
    let period = Duration::from_micros(7_300);
    let start = time::now();
    let mut ticks = interval(period);
    for k in 0..200 {
        let at = ticks.tick().await;
        assert_eq!(at, start + period * k, "tick {k} scheduled off the period");
        assert_eq!(time::now(), at, "tick {k} yielded off its instant");
    }
}

#[xev::test(timeout_ms = 10_000)]
async fn pause_mid_run_freezes_the_clock_and_sleeps_jump_to_their_deadline() {
    time::pause();
    let frozen = time::now();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(time::now(), frozen);
    let mut long = sleep(Duration::from_secs(60));
    assert!(poll!(&mut long).is_pending());
    long.await;
    assert_eq!(time::now(), frozen + Duration::from_secs(60));
}

#[xev::test(start_paused = true, timeout_ms = 2_000)]
async fn timeout_ms_counts_real_time_so_a_long_paused_sleep_passes() {
    // 2 s of the test's limit against an hour of paused clock.
    sleep(Duration::from_secs(3600)).await;
}

#[xev::test(start_paused = true, timeout_ms = 200)]
#[should_panic(
    expected = "test `timeout_ms_fails_a_stuck_test_under_a_paused_clock` timed out after 200 ms"
)]
async fn timeout_ms_fails_a_stuck_test_under_a_paused_clock() {
    std::future::pending::<()>().await;
}

#[test]
fn pause_resume_and_advance_panic_when_misused() {
    let message = |f: fn()| panic_message(panic::catch_unwind(f).unwrap_err());
    assert!(message(time::pause).contains("no xev runtime running"));
    assert!(message(time::resume).contains("no xev runtime running"));
    assert!(message(|| xev::rt::block_on(async {
        time::pause();
        time::pause();
    }))
    .contains("already paused"));
    assert!(message(|| xev::rt::block_on(async { time::resume() })).contains("not paused"));
    assert!(message(|| xev::rt::block_on(advance(Duration::from_secs(1)))).contains("not paused"));
}

#[test]
fn now_outside_a_runtime_is_real_time() {
    let before = RealInstant::now();
    let now = time::now();
    assert!(now >= before && now <= RealInstant::now());
}
