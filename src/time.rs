//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! Resolution is one millisecond. A deadline is rounded *up* to the next
//! millisecond, so a timer never fires early and a sub-millisecond sleep
//! parks the thread for about a millisecond instead of spinning.
//!
//! Timers are armed lazily, on their first poll, in the runtime that polls
//! them: creating a [`Sleep`] outside a runtime is fine, polling it outside
//! one panics. A deadline already past completes at the first poll without
//! touching the runtime, and a [`timeout`] whose future is ready at once never
//! arms a timer at all.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::rt::context;
use crate::rt::runtime::Core;
use crate::rt::timer::TimerKey;

/// Waits until `duration` has elapsed.
///
/// Equivalent to `sleep_until(Instant::now() + duration)`.
///
/// # Cancel safety
/// Dropping the future disarms the timer (in O(1)); nothing else is lost.
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
    let now = Instant::now();
    sleep_until(now.checked_add(duration).unwrap_or_else(|| far_future(now)))
}

/// Waits until `deadline`. A deadline in the past completes at the first poll.
///
/// # Cancel safety
/// Dropping the future disarms the timer; nothing else is lost.
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

/// About thirty years from `now`: "never", for durations too large to add.
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365 * 30)
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
/// [`reset`](Sleep::reset) to a new deadline.
///
/// # Cancel safety
/// Dropping it disarms the timer; nothing else is lost. Awaiting `&mut sleep`
/// and dropping that `.await` loses nothing at all: the sleep can be awaited
/// again.
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
    /// The instant this sleep completes at (or after).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline, whether or not the sleep has completed; the sleep
    /// can then be awaited again.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// xev::rt::block_on(async {
    ///     let mut sleep = xev::time::sleep(Duration::from_secs(3600));
    ///     sleep.reset(Instant::now() + Duration::from_millis(5));
    ///     (&mut sleep).await;
    ///     assert!(sleep.is_elapsed());
    /// });
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(timer) = &mut self.timer {
            timer.key = timer.core.timers.borrow_mut().reset(timer.key, deadline);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match &this.timer {
            Some(timer) => {
                if timer
                    .core
                    .timers
                    .borrow_mut()
                    .poll_fired(timer.key, cx.waker())
                {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            None => {
                if Instant::now() >= this.deadline {
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

/// Runs `future` for at most `duration`.
///
/// Resolves to `Ok(output)` if the future completes first, or
/// `Err(Elapsed)` once `duration` has passed; the future is then dropped
/// when the `Timeout` is.
///
/// # Cancel safety
/// As cancel safe as `future`: dropping the `Timeout` drops `future`.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// xev::rt::block_on(async {
///     let slow = xev::time::sleep(Duration::from_secs(60));
///     let result = xev::time::timeout(Duration::from_millis(10), slow).await;
///     assert!(result.is_err());
///     assert_eq!(xev::time::timeout(Duration::from_secs(1), async { 5 }).await, Ok(5));
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Runs `future` until `deadline` at most; see [`timeout`].
///
/// # Cancel safety
/// As cancel safe as `future`: dropping the `Timeout` drops `future`.
///
/// # Examples
/// One deadline for several steps: each step gets the time that is left.
/// ```
/// use std::time::{Duration, Instant};
///
/// xev::rt::block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(20);
///     let quick = xev::time::timeout_at(deadline, async { 1 }).await;
///     assert_eq!(quick, Ok(1));
///     let slow = xev::time::sleep(Duration::from_secs(60));
///     assert!(xev::time::timeout_at(deadline, slow).await.is_err());
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

pin_project! {
    /// The future returned by [`timeout`] and [`timeout_at`]: the wrapped
    /// future and a [`Sleep`].
    ///
    /// It is `Unpin` when the wrapped future is, so it can be awaited through
    /// `&mut` and then [`into_inner`](Timeout::into_inner) taken back.
    ///
    /// # Cancel safety
    /// As cancel safe as the wrapped future: dropping the `Timeout` drops it.
    ///
    /// # Examples
    /// Give a task a short time limit, and if it is too slow, wait for it
    /// anyway (awaiting a `JoinHandle` is cancel safe, so it can be retried):
    /// ```
    /// use std::time::Duration;
    ///
    /// xev::rt::block_on(async {
    ///     let job = xev::rt::spawn(xev::time::sleep(Duration::from_millis(30)));
    ///     let mut limited = xev::time::timeout(Duration::from_millis(5), job);
    ///     assert!((&mut limited).await.is_err()); // too slow for the fast path...
    ///     let job = limited.into_inner();
    ///     job.await.unwrap(); // ...so wait without the limit
    /// });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The wrapped future, giving up the time limit.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose deadline passed first.
///
/// It converts into an [`io::Error`] of kind
/// [`TimedOut`](io::ErrorKind::TimedOut), so `?` works in a function
/// returning `io::Result`.
///
/// # Examples
/// ```
/// use std::io;
/// use std::time::Duration;
/// use xev::net::TcpStream;
///
/// async fn read_in_time(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
///     xev::time::timeout(Duration::from_millis(10), stream.read(buf)).await?
/// }
/// # xev::rt::block_on(async {
/// # let listener = xev::net::TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// # let (_server, _) = listener.accept().await?;
///
/// // Nothing is sent: the read times out.
/// let error = read_in_time(&client, &mut [0; 8]).await.unwrap_err();
/// assert_eq!(error.kind(), io::ErrorKind::TimedOut);
/// # io::Result::Ok(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}

/// A stream that yields at `start`, `start + period`, `start + 2 × period`…
/// where `start` is when it was created.
///
/// Tick `k` is never yielded before `start + k × period`. If the task falls
/// behind (it did not poll for several periods), the missed ticks are
/// yielded back to back until it has caught up, like tokio's default
/// `MissedTickBehavior::Burst`. The first tick completes at once.
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
    interval_at(Instant::now(), period)
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
    sleep: Sleep,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for.
    ///
    /// # Cancel safety
    /// Cancel safe: a tick is consumed only when this returns it.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick; see [`tick`](Self::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let tick = self.sleep.deadline();
        let next = tick
            .checked_add(self.period)
            .unwrap_or_else(|| far_future(tick));
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// The time between ticks.
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
