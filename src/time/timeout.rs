//! [`timeout`]: a future and a [`Sleep`], whichever completes first.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::{sleep, sleep_until, Sleep};

/// Runs `future` for at most `duration` on the runtime's clock.
///
/// Resolves to `Ok(output)` if the future completes first, or
/// `Err(Elapsed)` once `duration` has passed; the future is then dropped
/// when the `Timeout` is.
///
/// # Cancel safety
/// As cancel safe as `future`: dropping the `Timeout` drops `future`.
///
/// # Panics
/// When polled after its runtime was dropped, or on another runtime than
/// the one that first polled it, unless the wrapped future is ready: see
/// [`Sleep`].
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
    /// # Panics
    /// Polled after its runtime was dropped, or on another runtime than the
    /// one that first polled it, it panics unless the wrapped future is
    /// ready: see [`Sleep`].
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
