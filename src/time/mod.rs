//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`], on the
//! runtime's clock, [`now`].
//!
//! A timer fires once the clock has reached its deadline, never before. The
//! thread waits for the next deadline in whole milliseconds, rounded up, so
//! a timer fires up to about a millisecond late, and a sub-millisecond sleep
//! parks the thread for about a millisecond instead of spinning.
//!
//! Timers are armed lazily, on their first poll, in the runtime that polls
//! them, and belong to that runtime from then on: creating a [`Sleep`]
//! outside a runtime is fine, polling it outside one panics. A deadline
//! already past completes at the first poll without touching the runtime,
//! and a [`timeout`] whose future is ready at once never arms a timer at
//! all. A timer polled after its runtime was dropped, or on another runtime
//! than its own, panics with a message saying so: it could never fire, and
//! a silent hang would be harder to find.
//!
//! # The clock
//!
//! [`Instant`] is [`std::time::Instant`]. The runtime's clock is real
//! monotonic time, which tests can stop and move by hand with the feature
//! `test-util` ([`pause`], [`resume`], [`advance`], and
//! `#[xev::test(start_paused = true)]`). Every timer, [`Sleep::deadline`]
//! and [`Interval`] is on that clock; [`now`] reads it. While the clock runs,
//! `now()` and `Instant::now()` agree; while it is paused, read `now()`.
//!
//! # Examples
//! ```
//! use xev::time::{self, Duration};
//!
//! xev::rt::block_on(async {
//!     let start = time::now();
//!     time::sleep(Duration::from_millis(5)).await;
//!     assert!(time::now() - start >= Duration::from_millis(5));
//! });
//! ```
#![cfg_attr(
    not(feature = "test-util"),
    doc = r#"
[`pause`]: https://docs.rs/xev/latest/xev/time/fn.pause.html
[`resume`]: https://docs.rs/xev/latest/xev/time/fn.resume.html
[`advance`]: https://docs.rs/xev/latest/xev/time/fn.advance.html
"#
)]

pub(crate) mod clock;
mod interval;
mod sleep;
#[doc(hidden)]
pub mod test_support;
mod timeout;

pub use std::time::{Duration, Instant};

#[cfg(feature = "test-util")]
pub use clock::{advance, pause, resume};
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};

/// The current reading of the runtime's clock: the instant timers compare
/// their deadlines with.
///
/// It is real monotonic time, the same as [`Instant::now`], unless a test
/// has paused or advanced the clock (feature `test-util`: [`pause`],
/// [`advance`]); then it is the paused reading. Outside a runtime it is
/// `Instant::now()`.
///
/// # Examples
/// ```
/// use xev::time::{self, Duration};
///
/// xev::rt::block_on(async {
///     let deadline = time::now() + Duration::from_millis(5);
///     time::sleep_until(deadline).await;
///     assert!(time::now() >= deadline);
/// });
/// ```
#[cfg_attr(
    not(feature = "test-util"),
    doc = r#"
[`pause`]: https://docs.rs/xev/latest/xev/time/fn.pause.html
[`advance`]: https://docs.rs/xev/latest/xev/time/fn.advance.html
"#
)]
pub fn now() -> Instant {
    #[cfg(feature = "test-util")]
    if let Some(now) = crate::rt::context::with_current(|core| core.clock.now()) {
        return now;
    }
    Instant::now()
}

/// About thirty years from `now`: "never", for durations too large to add.
pub(crate) fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365 * 30)
}
