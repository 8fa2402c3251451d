//! The runtime's clock: real monotonic time, which tests can pause and move
//! by hand (feature `test-util`).
//!
//! Each runtime has its own [`Clock`]. Without the feature it is
//! `Instant::now()` and costs nothing. With it, the clock reads
//! `base + (real now - running_since)` while it runs, and `base` while it is
//! paused: pausing stores the current reading in `base`; advancing adds to
//! it; resuming starts counting real time again from there, so the clock
//! never goes back. The loop moves a paused clock to the next timer deadline
//! when it has nothing else to do (see `Core::park`).

use std::time::Instant;

#[cfg(feature = "test-util")]
use std::cell::Cell;
#[cfg(feature = "test-util")]
use std::time::Duration;

#[cfg(feature = "test-util")]
use crate::rt::{context, Builder};

/// A runtime's clock; see the module docs.
#[cfg(feature = "test-util")]
pub(crate) struct Clock {
    /// The reading when the clock last started running, or its reading for
    /// as long as it is paused.
    base: Cell<Instant>,
    /// The real instant the clock last started running; `None` while paused.
    running_since: Cell<Option<Instant>>,
}

#[cfg(feature = "test-util")]
impl Clock {
    pub(crate) fn new(start_paused: bool) -> Clock {
        let now = Instant::now();
        Clock {
            base: Cell::new(now),
            running_since: Cell::new((!start_paused).then_some(now)),
        }
    }

    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self.running_since.get() {
            Some(since) => self.base.get() + since.elapsed(),
            None => self.base.get(),
        }
    }

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        self.running_since.get().is_none()
    }

    /// Moves a paused clock forward to `instant`; never back.
    pub(crate) fn advance_to(&self, instant: Instant) {
        debug_assert!(self.is_paused());
        if instant > self.base.get() {
            self.base.set(instant);
        }
    }

    fn pause(&self) {
        self.base.set(self.now());
        self.running_since.set(None);
    }

    fn resume(&self) {
        self.running_since.set(Some(Instant::now()));
    }
}

/// A runtime's clock: real time, since it cannot be paused without the
/// feature `test-util`.
#[cfg(not(feature = "test-util"))]
pub(crate) struct Clock;

#[cfg(not(feature = "test-util"))]
impl Clock {
    pub(crate) fn new(_start_paused: bool) -> Clock {
        Clock
    }

    #[inline]
    pub(crate) fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        false
    }

    pub(crate) fn advance_to(&self, _instant: Instant) {}
}

/// Stops the current runtime's clock (feature `test-util`).
///
/// From then on [`now`](super::now) returns the same instant until
/// [`advance`] moves it forward or [`resume`] lets it run again, and a timer
/// fires only once the clock is moved to its deadline. `std`'s
/// `Instant::now()` keeps reading real time.
///
/// # Auto-advance
/// While the clock is paused and the runtime is idle — no task is ready, and
/// a poll of the reactor that does not wait found no I/O — the runtime moves
/// the clock straight to the next timer deadline and fires that timer,
/// instead of waiting. So a test that sleeps for a minute, or whose timeout
/// is 30 s, takes microseconds. I/O keeps working while the clock is paused:
/// the reactor is polled as usual, and only when it has nothing does the
/// clock jump.
///
/// # Panics
/// Outside a runtime, or if the clock is already paused (as tokio's `pause`).
///
/// # Examples
/// ```
/// use std::time::Instant;
/// use xev::time::{self, Duration};
///
/// xev::rt::block_on(async {
///     time::pause();
///     let (start, real_start) = (time::now(), Instant::now());
///     // Nothing else to do: the clock jumps to the deadline.
///     time::sleep(Duration::from_secs(3600)).await;
///     assert_eq!(time::now(), start + Duration::from_secs(3600));
///     assert!(real_start.elapsed() < Duration::from_secs(60));
/// });
/// ```
#[cfg(feature = "test-util")]
#[track_caller]
pub fn pause() {
    let core = context::current("`xev::time::pause`");
    assert!(
        !core.clock.is_paused(),
        "`xev::time::pause`: the clock is already paused; call `xev::time::resume` \
         before pausing it again"
    );
    core.clock.pause();
}

/// Lets the current runtime's paused clock run again (feature `test-util`).
///
/// It runs on from the instant it shows: it never jumps back, so time added
/// by [`advance`] or auto-advance stays added, and time that passed in the
/// real world while it was paused does not count.
///
/// # Panics
/// Outside a runtime, or if the clock is not paused (as tokio's `resume`).
///
/// # Examples
/// ```
/// use xev::time::{self, Duration};
///
/// xev::rt::block_on(async {
///     time::pause();
///     time::advance(Duration::from_secs(60)).await;
///     let paused_at = time::now();
///     time::resume();
///     time::sleep(Duration::from_millis(5)).await; // real time again
///     assert!(time::now() >= paused_at + Duration::from_millis(5));
/// });
/// ```
#[cfg(feature = "test-util")]
#[track_caller]
pub fn resume() {
    let core = context::current("`xev::time::resume`");
    assert!(
        core.clock.is_paused(),
        "`xev::time::resume`: the clock is not paused; call `xev::time::pause` first"
    );
    core.clock.resume();
}

/// Moves the current runtime's paused clock forward by `duration` and fires
/// the timers that fell due, in deadline order (feature `test-util`).
///
/// The tasks those timers wake are polled once before this returns (it
/// yields to them). A timer due after the new instant stays pending.
///
/// # Cancel safety
/// The clock moves at the first poll; dropping the future after that only
/// skips the yield.
///
/// # Panics
/// Outside a runtime, if the clock is not paused (call [`pause`] first, or
/// use `#[xev::test(start_paused = true)]`), or if `duration` is too large to
/// add to the clock's reading.
///
/// # Examples
/// ```
/// use futures::FutureExt;
/// use xev::time::{self, Duration};
///
/// xev::rt::block_on(async {
///     time::pause();
///     let mut sleep = time::sleep(Duration::from_secs(10));
///     assert!((&mut sleep).now_or_never().is_none());
///     time::advance(Duration::from_secs(9)).await;
///     assert!((&mut sleep).now_or_never().is_none()); // not yet due
///     time::advance(Duration::from_secs(1)).await;
///     assert!(sleep.now_or_never().is_some());
/// });
/// ```
#[cfg(feature = "test-util")]
pub async fn advance(duration: Duration) {
    {
        let core = context::current("`xev::time::advance`");
        assert!(
            core.clock.is_paused(),
            "`xev::time::advance`: the clock is not paused; call `xev::time::pause` first, \
             or use `#[xev::test(start_paused = true)]`"
        );
        let to = core
            .clock
            .now()
            .checked_add(duration)
            .expect("`xev::time::advance`: the duration is too large to add to the clock");
        core.clock.advance_to(to);
        core.fire_timers();
    }
    crate::rt::yield_now().await;
}

#[cfg(feature = "test-util")]
impl Builder {
    /// Starts the runtime with its clock paused (feature `test-util`), as if
    /// [`pause`] were the first thing its `block_on` did. This is what
    /// `#[xev::test(start_paused = true)]` builds.
    ///
    /// ```
    /// use xev::time::{self, Duration};
    ///
    /// let rt = xev::rt::Runtime::builder().start_paused(true).build().unwrap();
    /// rt.block_on(async {
    ///     let start = time::now();
    ///     time::sleep(Duration::from_secs(60)).await; // at once, in real time
    ///     assert_eq!(time::now(), start + Duration::from_secs(60));
    /// });
    /// ```
    pub fn start_paused(&mut self, paused: bool) -> &mut Builder {
        self.start_paused = paused;
        self
    }
}
