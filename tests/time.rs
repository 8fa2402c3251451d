//! Timers (`xev::time`): sleep bounds, rounding, cancellation, scale,
//! `timeout` and `interval`. Each test pins one promise of DESIGN §2.
//!
//! Every test body runs under `xev::time::timeout`, so a timer that never
//! fires fails the test instead of hanging CI.

use std::future::{poll_fn, Future};
use std::panic;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::{poll, StreamExt};
use xev::time::{interval, sleep, sleep_until, timeout, Sleep};

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
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
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
