//! [`Sleep`]: one deadline, armed in its runtime's timer queue on first poll.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::rt::context;
use crate::rt::runtime::Core;
use crate::rt::timer::{TimerKey, TimerState};

/// Waits until `duration` has elapsed on the runtime's clock.
///
/// Equivalent to `sleep_until(xev::time::now() + duration)`.
///
/// # Cancel safety
/// Dropping the future disarms the timer (in O(1)); nothing else is lost.
///
/// # Panics
/// When polled outside a runtime, after its runtime was dropped, or on
/// another runtime than the one that first polled it; see [`Sleep`].
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
///
/// xev::rt::block_on(async {
///     let start = Instant::now();
///     xev::time::sleep(Duration::from_millis(20)).await;
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let now = super::now();
    sleep_until(
        now.checked_add(duration)
            .unwrap_or_else(|| super::far_future(now)),
    )
}

/// Waits until the runtime's clock reaches `deadline`. A deadline in the
/// past completes at the first poll.
///
/// # Cancel safety
/// Dropping the future disarms the timer; nothing else is lost.
///
/// # Panics
/// When polled outside a runtime (unless the deadline has passed), after
/// its runtime was dropped, or on another runtime than the one that first
/// polled it; see [`Sleep`].
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use futures::FutureExt;
///
/// xev::rt::block_on(async {
///     let start = Instant::now();
///     xev::time::sleep_until(start + Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
///     // A deadline already past completes at once, without arming a timer.
///     assert_eq!(xev::time::sleep_until(start).now_or_never(), Some(()));
/// });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
    }
}

/// A timer armed in a runtime's timer queue; disarmed when dropped.
struct ArmedTimer {
    core: Rc<Core>,
    key: TimerKey,
}

impl Drop for ArmedTimer {
    fn drop(&mut self) {
        let waker = self.core.timers.borrow_mut().remove(self.key);
        drop(waker);
    }
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// It is `Unpin`, so it can be polled through `&mut` without pinning, and
/// [`reset`](Sleep::reset) to a new deadline. Once its deadline has passed
/// it is ready at its next poll, whether or not the runtime has fired its
/// timer yet.
///
/// # Cancel safety
/// Dropping it disarms the timer; nothing else is lost. Awaiting `&mut sleep`
/// and dropping that `.await` loses nothing at all: the sleep can be awaited
/// again.
///
/// # Panics
/// A `Sleep` belongs to the runtime that first polls it (the one that arms
/// its timer). Polling it where that runtime cannot fire it is a mistake
/// that would otherwise hang or end the wait early, so it panics, as tokio's
/// timers do:
/// - after its runtime was dropped: its timer can never fire;
/// - while its deadline is still ahead, outside a runtime, or on another
///   runtime than its own (two runtimes used one after the other on one
///   thread): its own runtime is not running, so it would never fire.
///
/// A sleep whose deadline has passed completes anywhere, as long as its
/// runtime is alive.
///
/// # Examples
/// One deadline over many steps, awaited through `&mut` at each of them:
/// ```
/// use std::time::Duration;
/// use futures::future::{select, Either};
///
/// xev::rt::block_on(async {
///     let mut deadline = xev::time::sleep(Duration::from_millis(30));
///     let mut steps = 0;
///     loop {
///         let step = xev::time::sleep(Duration::from_millis(5));
///         match select(&mut deadline, step).await {
///             Either::Left(_) => break, // out of time
///             Either::Right(_) => steps += 1,
///         }
///     }
///     assert!(deadline.is_elapsed());
///     assert!(steps <= 6, "a timer never fires early");
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    timer: Option<ArmedTimer>,
}

impl Sleep {
    /// The instant this sleep completes at (or after), on the runtime's
    /// clock.
    ///
    /// ```
    /// use xev::time::{self, Duration};
    ///
    /// xev::rt::block_on(async {
    ///     let start = time::now();
    ///     let sleep = time::sleep(Duration::from_secs(1));
    ///     assert!(sleep.deadline() >= start + Duration::from_secs(1));
    /// });
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed on the runtime's clock.
    ///
    /// ```
    /// use xev::time::{self, Duration};
    ///
    /// xev::rt::block_on(async {
    ///     assert!(time::sleep(Duration::ZERO).is_elapsed());
    ///     assert!(!time::sleep(Duration::from_secs(60)).is_elapsed());
    /// });
    /// ```
    pub fn is_elapsed(&self) -> bool {
        self.now() >= self.deadline
    }

    /// Moves the deadline, whether or not the sleep has completed; the sleep
    /// can then be awaited again. A deadline already past makes it ready at
    /// its next poll (and wakes the task waiting for it, if any).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use futures::FutureExt;
    ///
    /// xev::rt::block_on(async {
    ///     let mut sleep = xev::time::sleep(Duration::from_secs(3600));
    ///     sleep.reset(Instant::now() + Duration::from_millis(5));
    ///     (&mut sleep).await;
    ///     assert!(sleep.is_elapsed());
    ///     // Back in the past: ready at once.
    ///     sleep.reset(Instant::now());
    ///     assert_eq!((&mut sleep).now_or_never(), Some(()));
    /// });
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        let Some(timer) = &self.timer else {
            // Not armed: the next poll compares the new deadline with the clock.
            self.deadline = deadline;
            return;
        };
        let now = timer.core.clock.now();
        if let Some(waker) = self.reset_at(deadline, now) {
            waker.wake();
        }
    }

    /// Moves the deadline like [`reset`](Sleep::reset), but returns the
    /// waker to wake instead of waking it: for callers that hold a borrow
    /// a foreign waker's `wake` might need.
    #[cfg(feature = "hyper")]
    pub(crate) fn reset_deferring_wake(&mut self, deadline: Instant) -> Option<Waker> {
        let now = self.now();
        self.reset_at(deadline, now)
    }

    /// Moves the deadline, given the clock reads `now`; returns the waker
    /// of a task that waited for the timer, if the timer has fired by moving.
    pub(super) fn reset_at(&mut self, deadline: Instant, now: Instant) -> Option<Waker> {
        self.deadline = deadline;
        let timer = self.timer.as_mut()?;
        let (key, waker) = timer
            .core
            .timers
            .borrow_mut()
            .reset(timer.key, deadline, now);
        timer.key = key;
        waker
    }

    /// The clock of the runtime this sleep belongs to, or the current one.
    pub(super) fn now(&self) -> Instant {
        match &self.timer {
            Some(timer) => timer.core.clock.now(),
            None => super::now(),
        }
    }

    /// The poll of a sleep whose timer is armed. Only a timer that has not
    /// fired reads the clock (its deadline may have passed before the loop
    /// fired it) and checks which runtime polls it (where it stores the
    /// waker).
    fn poll_armed(timer: &ArmedTimer, deadline: Instant, cx: &Context<'_>) -> Poll<()> {
        let core = &*timer.core;
        let mut timers = core.timers.borrow_mut();
        match timers.state(timer.key) {
            TimerState::Fired => Poll::Ready(()),
            TimerState::Orphaned => {
                drop(timers);
                panic!(
                    "xev::time: a timer (`Sleep`, `Timeout` or `Interval`) was polled after the \
                     runtime it belongs to was dropped, so it can never fire. A timer belongs to \
                     the runtime that first polled it: create a new one on the current runtime."
                )
            }
            TimerState::Armed => {
                if core.clock.now() >= deadline {
                    let waker = timers.expire(timer.key);
                    drop(timers);
                    drop(waker);
                    return Poll::Ready(());
                }
                let own_runtime = context::with_current(|current| std::ptr::eq(&**current, core));
                if own_runtime != Some(true) {
                    drop(timers);
                    if own_runtime.is_none() {
                        context::current("`xev::time::Sleep`");
                    }
                    panic!(
                        "xev::time: a timer (`Sleep`, `Timeout` or `Interval`) was polled on another \
                         xev runtime than the one that first polled it. That runtime is not running, \
                         so the timer would never fire: poll it inside its own runtime's `block_on`, \
                         or create a new one on this runtime."
                    );
                }
                timers.register(timer.key, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(timer) = &this.timer {
            return Sleep::poll_armed(timer, this.deadline, cx);
        }
        if super::now() >= this.deadline {
            return Poll::Ready(());
        }
        let core = context::current("`xev::time::Sleep`");
        let key = core
            .timers
            .borrow_mut()
            .insert(this.deadline, cx.waker().clone());
        this.timer = Some(ArmedTimer { core, key });
        Poll::Pending
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("armed", &self.timer.is_some())
            .finish()
    }
}
