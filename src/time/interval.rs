//! [`Interval`]: ticks one period apart, and what to do about missed ones.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use super::{far_future, sleep_until, Sleep};

/// How late a tick must be to count as missed: a tick taken within this of
/// its instant is on time (the timer itself may be a millisecond late).
const MISSED_AFTER: Duration = Duration::from_millis(5);

/// A stream that yields at `start`, `start + period`, `start + 2 × period`…
/// where `start` is when it was created.
///
/// Tick `k` is never yielded before `start + k × period`. If the task falls
/// behind (it did not poll for several periods), the missed ticks are
/// yielded back to back, each ready at once, until it has caught up: the
/// default [`MissedTickBehavior::Burst`]; see
/// [`set_missed_tick_behavior`](Interval::set_missed_tick_behavior) for the
/// others. The first tick completes at once.
///
/// # Panics
/// If `period` is zero.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
///
/// xev::rt::block_on(async {
///     let start = Instant::now();
///     let mut ticks = xev::time::interval(Duration::from_millis(10));
///     for k in 0..3 {
///         let at = ticks.tick().await;
///         assert!(at >= start + Duration::from_millis(10) * k);
///     }
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(super::now(), period)
}

/// Like [`interval`], with the first tick at `start`.
///
/// # Panics
/// If `period` is zero.
///
/// # Examples
/// The first tick a full period from now, instead of at once:
/// ```
/// use std::time::{Duration, Instant};
///
/// xev::rt::block_on(async {
///     let period = Duration::from_millis(10);
///     let start = Instant::now() + period;
///     let mut ticks = xev::time::interval_at(start, period);
///     assert_eq!(ticks.tick().await, start);
///     assert!(Instant::now() >= start);
///     assert_eq!(ticks.tick().await, start + period);
/// });
/// ```
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "`xev::time::interval` needs a non-zero period"
    );
    Interval {
        sleep: sleep_until(start),
        period,
        missed_tick_behavior: MissedTickBehavior::Burst,
    }
}

/// What an [`Interval`] does when ticks were missed: when its task comes
/// back to it more than a few milliseconds after a tick was due (it was busy,
/// or did not poll).
///
/// The late tick itself is always yielded at once, and reports the instant
/// it was scheduled for. The behaviours differ in when the ticks after it
/// are scheduled. With a period of 10 ms, ticks due at 0, 10, 20… and the
/// task back only at 35 ms:
///
/// | Behaviour | ticks yielded at 35 ms | next ticks scheduled for |
/// |---|---|---|
/// | [`Burst`](Self::Burst) (default) | 10, 20, 30, back to back | 40, 50, … |
/// | [`Delay`](Self::Delay) | 10 | 45, 55, … |
/// | [`Skip`](Self::Skip) | 10 | 40, 50, … |
///
/// These are tokio's names and meanings (including the 5 ms of lateness
/// below which a tick is not considered missed).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use xev::time::{interval, MissedTickBehavior};
///
/// xev::rt::block_on(async {
///     let mut ticks = interval(Duration::from_millis(10));
///     assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Burst);
///     ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
///     ticks.tick().await;
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MissedTickBehavior {
    /// Ticks as fast as possible until caught up: the missed ticks are
    /// yielded back to back, each ready at once, then ticks go on at
    /// `start + k × period` as if none had been missed. The yielded
    /// instants are those of the original schedule.
    #[default]
    Burst,
    /// Starts the schedule afresh from the late tick: the next tick is one
    /// full period after the moment the late one was yielded, and the
    /// schedule goes on from there.
    Delay,
    /// Drops the missed ticks: the next tick is the next instant of the
    /// original schedule (`start + k × period`) that is still in the future.
    Skip,
}

impl MissedTickBehavior {
    /// The instant of the tick after one scheduled for `tick`, taken late at
    /// `now`.
    fn next_tick(self, tick: Instant, now: Instant, period: Duration) -> Option<Instant> {
        match self {
            MissedTickBehavior::Burst => tick.checked_add(period),
            MissedTickBehavior::Delay => now.checked_add(period),
            MissedTickBehavior::Skip => {
                // The time already gone into the current period, which is
                // less than `period`, so the subtraction cannot underflow.
                let into_period = (now - tick).as_nanos() % period.as_nanos();
                let into_period = Duration::from_nanos(u64::try_from(into_period).ok()?);
                now.checked_add(period - into_period)
            }
        }
    }
}

/// The stream returned by [`interval`] and [`interval_at`]: a [`Stream`] of
/// tick instants (the instants the ticks were scheduled for), which never
/// ends.
///
/// # Cancel safety
/// Awaiting the next item (`StreamExt::next`) is cancel safe, as
/// [`tick`](Interval::tick) is: a tick is consumed only when it is returned.
///
/// # Panics
/// Polled after its runtime was dropped, or on another runtime than the one
/// that first polled it: see [`Sleep`].
///
/// # Examples
/// As a [`Stream`], with `futures::StreamExt`:
/// ```
/// use std::time::{Duration, Instant};
/// use futures::StreamExt;
///
/// xev::rt::block_on(async {
///     let mut ticks = xev::time::interval(Duration::from_millis(5));
///     let first = ticks.next().await.unwrap(); // at once
///     let second = ticks.next().await.unwrap();
///     assert_eq!(second - first, Duration::from_millis(5));
///     assert!(Instant::now() >= second);
/// });
/// ```
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Interval {
    /// Due at the next tick's instant.
    sleep: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for.
    ///
    /// # Cancel safety
    /// Cancel safe: a tick is consumed only when this returns it.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// xev::rt::block_on(async {
    ///     let mut ticks = xev::time::interval(Duration::from_millis(5));
    ///     let first = ticks.tick().await; // at once
    ///     assert_eq!(ticks.tick().await, first + Duration::from_millis(5));
    /// });
    /// ```
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick; see [`tick`](Self::tick). A tick whose
    /// instant has passed is ready at once, so missed ticks come back to back.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use std::time::Duration;
    ///
    /// xev::rt::block_on(async {
    ///     let mut ticks = xev::time::interval(Duration::from_millis(5));
    ///     let first = poll_fn(|cx| ticks.poll_tick(cx)).await;
    ///     assert_eq!(ticks.tick().await - first, Duration::from_millis(5));
    /// });
    /// ```
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let tick = self.sleep.deadline();
        let now = self.sleep.now();
        let next = if now > tick + MISSED_AFTER {
            self.missed_tick_behavior.next_tick(tick, now, self.period)
        } else {
            tick.checked_add(self.period)
        };
        // No task waits on the sleep that was just ready: nobody to wake.
        let nobody = self
            .sleep
            .reset_at(next.unwrap_or_else(|| far_future(tick)), now);
        debug_assert!(nobody.is_none());
        Poll::Ready(tick)
    }

    /// Starts the ticks afresh: the next one a full period from now, the
    /// ones after it a period apart. Missed ticks are dropped.
    ///
    /// Equivalent to `reset_at(xev::time::now() + period)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use xev::time::{self, interval};
    ///
    /// xev::rt::block_on(async {
    ///     let period = Duration::from_millis(10);
    ///     let mut ticks = interval(period);
    ///     ticks.tick().await; // at once
    ///     time::sleep(Duration::from_millis(4)).await;
    ///     let reset = time::now();
    ///     ticks.reset();
    ///     assert!(ticks.tick().await >= reset + period);
    /// });
    /// ```
    pub fn reset(&mut self) {
        let now = self.sleep.now();
        self.reset_at(
            now.checked_add(self.period)
                .unwrap_or_else(|| far_future(now)),
        );
    }

    /// Makes the next tick due now (ready at the next poll); the ones after
    /// it follow a period apart. Missed ticks are dropped.
    ///
    /// Equivalent to `reset_at(xev::time::now())`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::FutureExt;
    ///
    /// xev::rt::block_on(async {
    ///     let mut ticks = xev::time::interval(Duration::from_secs(60));
    ///     ticks.tick().await; // at once; the next one is a minute away
    ///     ticks.reset_immediately();
    ///     assert!(ticks.tick().now_or_never().is_some());
    /// });
    /// ```
    pub fn reset_immediately(&mut self) {
        let now = self.sleep.now();
        self.reset_at(now);
    }

    /// Makes the next tick due `after` from now; the ones after it follow a
    /// period apart. Missed ticks are dropped.
    ///
    /// Equivalent to `reset_at(xev::time::now() + after)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use xev::time::{self, interval};
    ///
    /// xev::rt::block_on(async {
    ///     let mut ticks = interval(Duration::from_secs(60));
    ///     ticks.tick().await; // at once; the next one is a minute away
    ///     let reset = time::now();
    ///     ticks.reset_after(Duration::from_millis(5));
    ///     assert!(ticks.tick().await >= reset + Duration::from_millis(5));
    /// });
    /// ```
    pub fn reset_after(&mut self, after: Duration) {
        let now = self.sleep.now();
        self.reset_at(now.checked_add(after).unwrap_or_else(|| far_future(now)));
    }

    /// Makes the next tick due at `deadline`, which may be further away than
    /// a period; the ones after it follow a period apart. Missed ticks are
    /// dropped. A deadline already past makes the next tick ready at once,
    /// late, and the [`MissedTickBehavior`] then schedules the one after.
    ///
    /// ```
    /// use std::time::Duration;
    /// use xev::time::{self, interval};
    ///
    /// xev::rt::block_on(async {
    ///     let period = Duration::from_millis(5);
    ///     let mut ticks = interval(period);
    ///     ticks.tick().await; // at once
    ///     let deadline = time::now() + Duration::from_millis(20);
    ///     ticks.reset_at(deadline);
    ///     assert_eq!(ticks.tick().await, deadline);
    ///     assert_eq!(ticks.tick().await, deadline + period);
    /// });
    /// ```
    pub fn reset_at(&mut self, deadline: Instant) {
        self.sleep.reset(deadline);
    }

    /// What happens when ticks are missed; [`MissedTickBehavior::Burst`]
    /// unless changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use xev::time::{interval, MissedTickBehavior};
    ///
    /// let ticks = interval(Duration::from_secs(1));
    /// assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Burst);
    /// ```
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets what happens when ticks are missed, from the next tick on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use xev::time::{interval, MissedTickBehavior};
    ///
    /// let mut ticks = interval(Duration::from_secs(1));
    /// ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    /// assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Skip);
    /// ```
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }

    /// The time between ticks.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let ticks = xev::time::interval(Duration::from_millis(250));
    /// assert_eq!(ticks.period(), Duration::from_millis(250));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}
