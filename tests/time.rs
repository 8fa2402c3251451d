//! Timers (`xev::time`): sleep bounds, rounding, cancellation, scale,
//! `timeout` and `interval` (with its missed-tick behaviours and resets),
//! and timers polled on the wrong runtime. Each test pins one promise of
//! DESIGN §2 or §10.
//!
//! Every test body runs under `xev::time::timeout`, so a timer that never
//! fires fails the test instead of hanging CI.

use std::future::{poll_fn, Future};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::noop_waker_ref;
use futures::{poll, StreamExt};
use xev::rt::Runtime;
use xev::time::{
    interval, interval_at, sleep, sleep_until, timeout, Interval, MissedTickBehavior, Sleep,
};

/// The most any test body may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(10);

/// `xev::rt::block_on(future)`, failing the test if `future` takes longer
/// than [`LIMIT`].
fn block_on_bounded<F: Future>(future: F) -> F::Output {
    xev::rt::block_on(async {
        match timeout(LIMIT, future).await {
            Ok(output) => output,
            Err(_) => panic!("test body still pending after {LIMIT:?}"),
        }
    })
}

/// A tiny xorshift64 generator: reproducible random durations without a
/// `rand` dependency.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Awaits `sleep` and returns how many times it was polled: every poll after
/// the first is a wake-up, so a spurious wake shows up as an extra poll.
async fn count_polls(mut sleep: Sleep) -> usize {
    let mut polls = 0;
    poll_fn(|cx| {
        polls += 1;
        Pin::new(&mut sleep).poll(cx)
    })
    .await;
    polls
}

/// Polls `ticks` once, with the calling task's waker.
async fn try_tick(ticks: &mut Interval) -> Poll<Instant> {
    poll!(poll_fn(|cx| ticks.poll_tick(cx)))
}

/// Polls `future` once with a waker that does nothing, outside any runtime.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(noop_waker_ref()))
}

/// The message of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// A sleep armed (polled once) on `rt`, due in an hour.
#[allow(clippy::async_yields_async)] // the sleep is handed out to be polled elsewhere
fn sleep_armed_on(rt: &Runtime) -> Sleep {
    rt.block_on(async {
        let mut sleep = sleep(Duration::from_secs(3600));
        assert!(poll!(&mut sleep).is_pending());
        sleep
    })
}

/// CPU time (user + system) this thread has used so far.
///
/// Read from `/proc/thread-self/stat` rather than `/proc/self/stat`: the test
/// harness runs other tests on other threads of this process at the same
/// time, and their CPU time must not count.
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Field 2, the command name, may contain spaces: count from its ')'.
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields[14 - 3].parse().unwrap();
    let stime: u64 = fields[15 - 3].parse().unwrap();
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(ticks_per_second > 0, "sysconf(_SC_CLK_TCK) failed");
    Duration::from_secs_f64((utime + stime) as f64 / ticks_per_second as f64)
}

// ---------------------------------------------------------------------------
// sleep

#[test]
fn sleep_200ms_takes_at_least_200ms_and_under_400ms() {
    let elapsed = block_on_bounded(async {
        let start = Instant::now();
        sleep(Duration::from_millis(200)).await;
        start.elapsed()
    });
    assert!(
        elapsed >= Duration::from_millis(200),
        "woke early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(400),
        "woke late: {elapsed:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn sub_millisecond_sleeps_use_less_than_half_a_core() {
    let (cpu, wall) = block_on_bounded(async {
        let (cpu_start, wall_start) = (thread_cpu_time(), Instant::now());
        for _ in 0..1_000 {
            sleep(Duration::from_micros(900)).await;
        }
        (thread_cpu_time() - cpu_start, wall_start.elapsed())
    });
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(
        share < 0.5,
        "1000 sleeps of 900 µs used {cpu:?} of CPU in {wall:?} ({share:.2} of a core): \
         sub-millisecond waits must park, not spin"
    );
}

#[test]
fn sleep_never_fires_early() {
    block_on_bounded(async {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..100 {
            let requested = Duration::from_micros(rng.below(5_001));
            let start = Instant::now();
            sleep(requested).await;
            let elapsed = start.elapsed();
            assert!(
                elapsed >= requested,
                "asked for {requested:?}, woke after {elapsed:?}"
            );
        }
    });
}

#[test]
fn sleep_until_never_fires_before_its_deadline() {
    block_on_bounded(async {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for _ in 0..100 {
            let deadline = Instant::now() + Duration::from_micros(rng.below(5_001));
            sleep_until(deadline).await;
            let now = Instant::now();
            assert!(now >= deadline, "woke {:?} early", deadline - now);
        }
    });
}

#[test]
fn hundred_thousand_concurrent_sleeps_all_complete_and_none_early() {
    const SLEEPS: u64 = 100_000;
    let early = block_on_bounded(async {
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let tasks: Vec<_> = (0..SLEEPS)
            .map(|_| {
                let requested = Duration::from_micros(rng.below(20_001));
                xev::rt::spawn(async move {
                    let start = Instant::now();
                    sleep(requested).await;
                    start.elapsed() < requested
                })
            })
            .collect();
        let mut early = 0;
        for task in tasks {
            early += u32::from(task.await.unwrap());
        }
        early
    });
    assert_eq!(early, 0, "{early} sleeps woke before their duration");
}

#[test]
fn sleep_until_a_past_deadline_is_ready_at_the_first_poll() {
    block_on_bounded(async {
        let past = Instant::now() - Duration::from_millis(1);
        assert!(poll!(sleep_until(past)).is_ready());
        assert!(poll!(sleep_until(Instant::now())).is_ready());
        assert!(poll!(sleep(Duration::ZERO)).is_ready());
    });
}

#[test]
fn reset_sleep_fires_at_its_new_deadline_not_its_old_one() {
    block_on_bounded(async {
        let mut sleep = sleep(Duration::from_millis(10));
        assert!(poll!(&mut sleep).is_pending());
        // Pushed back: the old 10 ms deadline must not fire it.
        sleep.reset(Instant::now() + Duration::from_secs(3600));
        let early = timeout(Duration::from_millis(40), &mut sleep).await;
        assert!(
            early.is_err(),
            "fired at the deadline it was reset away from"
        );
        // Pulled in: it fires at the new deadline, not the hour-long one.
        let deadline = Instant::now() + Duration::from_millis(5);
        sleep.reset(deadline);
        (&mut sleep).await;
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn polling_a_sleep_outside_a_runtime_panics_naming_block_on() {
    let payload = panic::catch_unwind(|| {
        futures::executor::block_on(sleep(Duration::from_millis(10)));
    })
    .unwrap_err();
    let message = panic_message(payload);
    assert!(message.contains("block_on"), "unhelpful message: {message}");
}

#[test]
fn sleep_reset_to_past_deadline_is_ready_at_next_poll() {
    block_on_bounded(async {
        // Armed in the timer queue, then moved into the past.
        let mut sleep = sleep(Duration::from_secs(3600));
        assert!(poll!(&mut sleep).is_pending());
        sleep.reset(Instant::now() - Duration::from_millis(1));
        assert!(poll!(&mut sleep).is_ready(), "needed a loop turn");

        // Fired, reset into the future (armed again), then into the past.
        sleep.reset(Instant::now() + Duration::from_secs(3600));
        assert!(poll!(&mut sleep).is_pending());
        sleep.reset(Instant::now());
        assert!(poll!(&mut sleep).is_ready(), "needed a loop turn");
    });
}

#[test]
fn sleep_past_its_deadline_is_ready_at_next_poll_before_the_loop_fires_it() {
    block_on_bounded(async {
        let mut sleep = sleep(Duration::from_millis(2));
        assert!(poll!(&mut sleep).is_pending());
        // The thread is busy: the deadline passes with no loop turn.
        std::thread::sleep(Duration::from_millis(5));
        assert!(poll!(&mut sleep).is_ready(), "needed a loop turn");
    });
}

#[test]
fn sleep_reset_to_past_deadline_wakes_the_task_waiting_for_it() {
    block_on_bounded(async {
        let shared = std::rc::Rc::new(std::cell::RefCell::new(sleep(Duration::from_secs(3600))));
        let waiter = xev::rt::spawn({
            let shared = shared.clone();
            poll_fn(move |cx| Pin::new(&mut *shared.borrow_mut()).poll(cx))
        });
        xev::rt::yield_now().await; // the waiter arms the sleep
        assert!(!waiter.is_finished());
        shared.borrow_mut().reset(Instant::now());
        timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the waiting task was never woken")
            .unwrap();
    });
}

// ---------------------------------------------------------------------------
// A timer on the wrong runtime

#[test]
fn sleep_polled_after_its_runtime_dropped_panics() {
    let rt = Runtime::new().unwrap();
    let mut sleep = sleep_armed_on(&rt);
    drop(rt);
    // Outside any runtime...
    let payload = panic::catch_unwind(AssertUnwindSafe(|| poll_once(&mut sleep))).unwrap_err();
    let message = panic_message(payload);
    assert!(message.contains("dropped"), "unhelpful message: {message}");
    // ...and inside a new one.
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        xev::rt::block_on(timeout(Duration::from_secs(1), &mut sleep))
    }))
    .unwrap_err();
    let message = panic_message(payload);
    assert!(message.contains("dropped"), "unhelpful message: {message}");
}

#[test]
fn timeout_and_interval_polled_after_their_runtime_dropped_panic() {
    let rt = Runtime::new().unwrap();
    let (mut limited, mut ticks) = rt.block_on(async {
        let mut limited = timeout(Duration::from_secs(3600), std::future::pending::<()>());
        assert!(poll!(&mut limited).is_pending());
        let mut ticks = interval(Duration::from_secs(3600));
        ticks.tick().await; // at once
        assert!(try_tick(&mut ticks).await.is_pending());
        (limited, ticks)
    });
    drop(rt);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| poll_once(&mut limited))).unwrap_err();
    assert!(panic_message(payload).contains("dropped"));
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        poll_once(&mut poll_fn(|cx| ticks.poll_tick(cx)))
    }))
    .unwrap_err();
    assert!(panic_message(payload).contains("dropped"));
    // A timeout whose future is ready still returns its output.
    let mut ready = timeout(Duration::from_secs(1), std::future::ready(7));
    assert_eq!(poll_once(&mut ready), Poll::Ready(Ok(7)));
}

#[test]
fn sleep_polled_on_another_runtime_panics() {
    let first = Runtime::new().unwrap();
    let second = Runtime::new().unwrap();
    let mut sleep = sleep_armed_on(&first);
    // Bounded: before the check, this waited forever for `first`.
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        second.block_on(timeout(Duration::from_secs(2), &mut sleep))
    }))
    .unwrap_err();
    let message = panic_message(payload);
    assert!(
        message.contains("another xev runtime"),
        "unhelpful message: {message}"
    );
    // On its own runtime the sleep still works.
    first.block_on(async {
        sleep.reset(Instant::now() + Duration::from_millis(2));
        timeout(LIMIT, &mut sleep).await.unwrap();
    });
}

#[test]
fn armed_sleep_polled_outside_any_runtime_panics_naming_block_on() {
    let rt = Runtime::new().unwrap();
    let mut sleep = sleep_armed_on(&rt);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| poll_once(&mut sleep))).unwrap_err();
    let message = panic_message(payload);
    assert!(message.contains("block_on"), "unhelpful message: {message}");
}

// ---------------------------------------------------------------------------
// Dropped and many timers

/// Arms `count` sleeps due at `deadline` (polling each once, with the
/// caller's waker) and drops them all.
async fn arm_and_drop(count: usize, deadline: Instant) {
    let mut sleeps = Vec::with_capacity(count);
    for _ in 0..count {
        let mut sleep = sleep_until(deadline);
        assert!(poll!(&mut sleep).is_pending());
        sleeps.push(sleep);
    }
    drop(sleeps);
}

#[test]
fn dropped_sleeps_never_fire() {
    block_on_bounded(async {
        let dropped_deadline = Instant::now() + Duration::from_millis(200);
        let start = Instant::now();
        // Armed with this task's waker: if any of them fired, it would wake us.
        arm_and_drop(10_000, dropped_deadline).await;
        let arm_and_drop_time = start.elapsed();
        assert!(
            arm_and_drop_time < Duration::from_secs(2),
            "arming and dropping 10,000 sleeps took {arm_and_drop_time:?}"
        );

        // This sleep outlasts the dropped deadlines and reuses their slots.
        let deadline = dropped_deadline + Duration::from_millis(50);
        let polls = timeout(Duration::from_secs(2), count_polls(sleep_until(deadline)))
            .await
            .expect("a sleep armed after the drops never fired");
        let now = Instant::now();
        assert!(
            now >= deadline,
            "a reused timer slot fired {:?} early",
            deadline - now
        );
        assert_eq!(
            polls,
            2,
            "woken {} extra times by dropped timers",
            polls - 2
        );
    });
}

#[test]
fn sleep_armed_after_many_sleeps_are_dropped_still_fires() {
    block_on_bounded(async {
        arm_and_drop(100, Instant::now() + Duration::from_secs(3600)).await;
        let fired = timeout(Duration::from_secs(1), sleep(Duration::from_millis(5))).await;
        assert!(
            fired.is_ok(),
            "a 5 ms sleep armed after 100 dropped ones never fired"
        );
    });
}

#[test]
fn sleep_reset_after_many_sleeps_are_dropped_still_fires() {
    block_on_bounded(async {
        let mut sleep = sleep(Duration::from_secs(3600));
        assert!(poll!(&mut sleep).is_pending());
        arm_and_drop(100, Instant::now() + Duration::from_secs(3600)).await;
        sleep.reset(Instant::now() + Duration::from_millis(5));
        let fired = timeout(Duration::from_secs(1), &mut sleep).await;
        assert!(
            fired.is_ok(),
            "a sleep reset to 5 ms after 100 dropped ones never fired"
        );
    });
}

#[test]
fn million_pending_timers_can_be_armed() {
    const TIMERS: u64 = 1_000_000;
    block_on_bounded(async {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut sleeps: Vec<Sleep> = (0..TIMERS)
            .map(|n| sleep_until(far + Duration::from_micros(n)))
            .collect();
        for sleep in &mut sleeps {
            assert!(poll!(sleep).is_pending());
        }
        // With a million timers armed, the earliest deadline still drives the loop.
        let start = Instant::now();
        sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert!(poll!(&mut sleeps[0]).is_pending());
        assert!(poll!(sleeps.last_mut().unwrap()).is_pending());
        drop(sleeps);
        let fired = timeout(Duration::from_secs(1), sleep(Duration::from_millis(1))).await;
        assert!(
            fired.is_ok(),
            "a sleep armed after dropping a million never fired"
        );
    });
}

// ---------------------------------------------------------------------------
// timeout

#[test]
fn timeout_returns_elapsed_for_a_slow_future_never_early() {
    let (result, elapsed) = block_on_bounded(async {
        let start = Instant::now();
        let result = timeout(Duration::from_millis(20), sleep(Duration::from_secs(3600))).await;
        (result, start.elapsed())
    });
    let error = result.unwrap_err();
    assert_eq!(error.to_string(), "deadline has elapsed");
    assert!(
        elapsed >= Duration::from_millis(20),
        "timed out early: {elapsed:?}"
    );
}

#[test]
fn timeout_returns_ok_for_a_fast_future() {
    let results = block_on_bounded(async {
        let ready = timeout(Duration::from_secs(5), async { 5 }).await;
        let sleeping = timeout(Duration::from_secs(5), async {
            sleep(Duration::from_millis(5)).await;
            6
        })
        .await;
        (ready, sleeping)
    });
    assert_eq!(results, (Ok(5), Ok(6)));
}

// ---------------------------------------------------------------------------
// interval

#[test]
fn interval_tick_k_is_never_before_start_plus_k_periods() {
    const PERIOD: Duration = Duration::from_millis(10);
    block_on_bounded(async {
        let start = Instant::now();
        let mut ticks = interval(PERIOD);
        for k in 0..5 {
            let at = ticks.tick().await;
            let earliest = start + PERIOD * k;
            assert!(
                at >= earliest,
                "tick {k} scheduled {:?} early",
                earliest - at
            );
            let now = Instant::now();
            assert!(
                now >= earliest,
                "tick {k} yielded {:?} early",
                earliest - now
            );
        }
    });
}

#[test]
fn interval_is_a_stream_of_instants() {
    const PERIOD: Duration = Duration::from_millis(5);
    block_on_bounded(async {
        let start = Instant::now();
        let ticks: Vec<Instant> = interval(PERIOD).take(3).collect().await;
        assert_eq!(ticks.len(), 3);
        for (k, &at) in (0u32..).zip(&ticks) {
            assert!(at >= start + PERIOD * k, "tick {k} early");
        }
        let mut stream = interval(PERIOD);
        assert!(stream.next().await.is_some());
    });
}

#[test]
fn interval_burst_yields_missed_ticks_back_to_back() {
    const PERIOD: Duration = Duration::from_millis(10);
    block_on_bounded(async {
        let start = Instant::now();
        let mut ticks = interval_at(start, PERIOD);
        assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Burst);
        assert_eq!(ticks.tick().await, start);
        // Waited for: the timer is armed in the runtime's queue.
        assert_eq!(ticks.tick().await, start + PERIOD);
        // The task is busy: the ticks due at 20, 30, 40 and 50 ms are missed.
        std::thread::sleep(PERIOD * 4 + PERIOD / 2);
        for k in 2..=5 {
            match try_tick(&mut ticks).await {
                Poll::Ready(at) => assert_eq!(at, start + PERIOD * k, "tick {k}"),
                Poll::Pending => panic!("missed tick {k} was not ready at once"),
            }
        }
    });
}

#[test]
fn interval_delay_schedules_the_tick_after_a_late_one_a_full_period_later() {
    const PERIOD: Duration = Duration::from_millis(50);
    block_on_bounded(async {
        let mut ticks = interval(PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Delay);
        ticks.tick().await;
        ticks.tick().await;
        std::thread::sleep(PERIOD * 3 + PERIOD / 2);
        let before = Instant::now();
        let late = try_tick(&mut ticks).await;
        let after = Instant::now();
        assert!(matches!(late, Poll::Ready(at) if at < before), "{late:?}");
        // No burst (the next scheduled tick was already past): the next
        // tick is a full period after the late one.
        let next = ticks.tick().await;
        assert!(
            next >= before + PERIOD && next <= after + PERIOD,
            "next tick {:?} after the late one, not a period",
            next - before
        );
    });
}

#[test]
fn interval_skip_drops_missed_ticks_and_keeps_the_schedule() {
    const PERIOD: Duration = Duration::from_millis(50);
    block_on_bounded(async {
        let start = Instant::now();
        let mut ticks = interval_at(start, PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        ticks.tick().await;
        ticks.tick().await;
        std::thread::sleep(PERIOD * 3 + PERIOD / 2);
        let before = Instant::now();
        let late = try_tick(&mut ticks).await;
        let after = Instant::now();
        assert!(matches!(late, Poll::Ready(at) if at < before), "{late:?}");
        // No burst (those ticks were already past): the next one is still to come.
        let next = ticks.tick().await;
        assert_eq!(
            (next - start).as_nanos() % PERIOD.as_nanos(),
            0,
            "the next tick left the original schedule"
        );
        assert!(next > before && next <= after + PERIOD, "{next:?}");
    });
}

#[test]
fn interval_reset_immediately_makes_the_next_tick_ready_at_once() {
    block_on_bounded(async {
        let period = Duration::from_secs(3600);
        let mut ticks = interval(period);
        ticks.tick().await;
        assert!(try_tick(&mut ticks).await.is_pending());
        let before = Instant::now();
        ticks.reset_immediately();
        let Poll::Ready(at) = try_tick(&mut ticks).await else {
            panic!("the tick after reset_immediately was not ready at once");
        };
        assert!(at >= before && at <= Instant::now());
        // The one after it is a period later.
        assert!(try_tick(&mut ticks).await.is_pending());
    });
}

#[test]
fn interval_reset_makes_the_next_tick_a_full_period_from_now() {
    const PERIOD: Duration = Duration::from_millis(30);
    block_on_bounded(async {
        let mut ticks = interval(PERIOD);
        ticks.tick().await;
        sleep(Duration::from_millis(10)).await;
        let before = Instant::now();
        ticks.reset();
        let after = Instant::now();
        let at = ticks.tick().await;
        assert!(at >= before + PERIOD && at <= after + PERIOD, "{at:?}");
        assert!(Instant::now() >= at);
        assert_eq!(ticks.tick().await, at + PERIOD);
    });
}

#[test]
fn interval_reset_after_makes_the_next_tick_due_that_long_from_now() {
    block_on_bounded(async {
        let mut ticks = interval(Duration::from_secs(3600));
        ticks.tick().await;
        let after_by = Duration::from_millis(15);
        let before = Instant::now();
        ticks.reset_after(after_by);
        let after = Instant::now();
        let at = ticks.tick().await;
        assert!(at >= before + after_by && at <= after + after_by, "{at:?}");
        assert!(Instant::now() >= at);
    });
}

#[test]
fn interval_reset_at_makes_the_next_tick_due_at_that_instant() {
    const PERIOD: Duration = Duration::from_millis(5);
    block_on_bounded(async {
        let mut ticks = interval(PERIOD);
        ticks.tick().await;
        // Further away than a period.
        let deadline = Instant::now() + Duration::from_millis(20);
        ticks.reset_at(deadline);
        assert_eq!(ticks.tick().await, deadline);
        assert!(Instant::now() >= deadline);
        assert_eq!(ticks.tick().await, deadline + PERIOD);
        // In the past: ready at once, reporting that instant.
        let past = Instant::now() - Duration::from_millis(1);
        ticks.reset_at(past);
        assert_eq!(try_tick(&mut ticks).await, Poll::Ready(past));
    });
}
