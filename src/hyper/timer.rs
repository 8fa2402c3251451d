//! [`Timer`]: hyper's `Timer` on the runtime's clock.

use std::pin::Pin;
use std::time::{Duration, Instant};

use super::sleep::SendSleep;

/// [`hyper::rt::Timer`] on xev's timers: what hyper's timeouts run on.
///
/// Give it to hyper's connection builders (`timer(Timer::new())`) to make
/// `header_read_timeout` (HTTP/1) and `keep_alive_interval`/`keep_alive_timeout`
/// (HTTP/2) work; without a timer hyper ignores those settings, or panics
/// where one was configured explicitly.
///
/// hyper requires its sleeps to be `Send + Sync`, which xev's
/// [`Sleep`](crate::time::Sleep) is not (it belongs to its runtime's thread).
/// This timer's sleeps are: each is a handle holding its deadline and, once
/// polled, the key of an xev timer armed on the polling runtime's thread.
/// Such a sleep is armed on its first poll (so it can be made anywhere), wakes
/// its task once the deadline has passed (never earlier, within the runtime's
/// 1 ms resolution), can be reset in place, and can be dropped on any thread:
/// a drop on the runtime's thread disarms the timer at once, a drop elsewhere
/// lets the runtime's thread free it the next time it arms one of these
/// sleeps.
///
/// Deadlines are on the runtime's clock, [`time::now`](crate::time::now),
/// which is also what [`now`](hyper::rt::Timer::now) returns: hyper's timeouts
/// follow a paused test clock (feature `test-util`).
///
/// # Panics
/// Its sleeps panic where xev's [`Sleep`](crate::time::Sleep) does: when
/// polled outside a runtime while their deadline is still ahead, or after the
/// runtime that first polled them was dropped. hyper polls them inside the
/// connection's future, so a connection served on a runtime is fine.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use hyper::rt::Timer as _;
///
/// xev::rt::block_on(async {
///     let timer = xev::hyper::Timer::new();
///     let start = timer.now();
///     timer.sleep(Duration::from_millis(10)).await;
///     assert!(timer.now() - start >= Duration::from_millis(10));
///
///     // The sleeps are `Send + Sync`: hyper may keep them in `Send` futures.
///     let mut sleep = timer.sleep(Duration::from_secs(3600));
///     timer.reset(&mut sleep, start); // moved into the past: ready at once
///     sleep.await;
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer;

impl Timer {
    /// A timer on the current runtime's clock (whichever runtime polls its
    /// sleeps); the same as `Timer` or `Timer::default()`.
    pub fn new() -> Timer {
        Timer
    }
}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = crate::time::now();
        let deadline = now
            .checked_add(duration)
            .unwrap_or_else(|| crate::time::far_future(now));
        Box::pin(SendSleep::until(deadline))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SendSleep::until(deadline))
    }

    fn now(&self) -> Instant {
        crate::time::now()
    }

    /// Moves the sleep in place when it is one of this timer's (it keeps its
    /// timer entry and its waiting task); replaces it otherwise.
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<SendSleep>() {
            Some(own) => own.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
