//! [`ShutdownHandle`]: stops a pool's servers gracefully, from any thread.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::notify::{Changed, Notifier};

/// Stops a [`Pool`](super::Pool)'s servers gracefully: from
/// [`Pool::shutdown_handle`](super::Pool::shutdown_handle).
///
/// It is `Clone + Send + Sync`: hand it to a signal handler's task, an
/// admin endpoint, another thread. [`shutdown(grace)`](Self::shutdown)
///
/// 1. closes every listener of [`Pool::serve`](super::Pool::serve) at
///    once: later connection attempts are refused (or reset);
/// 2. lets the connections already accepted (those whose handler is still
///    running: the *live* ones) finish, for up to `grace`, including
///    connections accepted on one worker and not yet started on another;
/// 3. then aborts the handlers still running (their futures are dropped)
///    and `serve` returns `Ok(())`.
///
/// A handler can watch for the shutdown with [`requested`](Self::requested)
/// or [`is_requested`](Self::is_requested) to finish early: an HTTP server
/// stops keep-alive and closes idle connections, so that `serve` returns
/// as soon as the requests in flight are answered.
///
/// The shutdown is for good: a `serve` started afterwards on the same pool
/// returns at once. Calling `shutdown` again only shortens the grace
/// period, never lengthens it (a second Ctrl-C can hurry the first).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use xev::rt::{AcceptMode, Pool};
///
/// let pool = Pool::builder().threads(2).build()?;
/// let shutdown = pool.shutdown_handle();
/// let server = pool.bind("127.0.0.1:0", AcceptMode::Acceptor)?;
/// let addr = server.local_addr()?;
/// let client = std::thread::spawn(move || {
///     use std::io::{Read, Write};
///     let mut stream = std::net::TcpStream::connect(addr)?;
///     stream.write_all(b"ping")?;
///     let mut reply = [0; 4];
///     stream.read_exact(&mut reply)?;
///     // Done: stop the server, letting live connections finish for 1 s.
///     shutdown.shutdown(Duration::from_secs(1));
///     std::io::Result::Ok(reply)
/// });
/// server.serve(|stream, _peer| async move {
///     let mut buf = [0; 4];
///     if stream.read_exact(&mut buf).await.is_ok() {
///         let _ = stream.write_all(&buf).await;
///     }
/// })?;
/// assert_eq!(&client.join().unwrap()?, b"ping");
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    state: Arc<State>,
}

struct State {
    /// Raised by every `shutdown` call: the first starts the shutdown,
    /// later ones may move the deadline.
    notifier: Arc<Notifier>,
    /// When the grace period ends; `None` before the first `shutdown`.
    deadline: Mutex<Option<Instant>>,
}

/// The grace period of a `shutdown` whose `Instant` arithmetic overflows:
/// long enough to mean "no limit".
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl ShutdownHandle {
    pub(super) fn new() -> ShutdownHandle {
        ShutdownHandle {
            state: Arc::new(State {
                notifier: Arc::new(Notifier::new()),
                deadline: Mutex::new(None),
            }),
        }
    }

    /// Starts the shutdown: closes every listener of the pool's servers at
    /// once, lets the live connections finish for up to `grace`, then
    /// aborts those still running, and `serve` returns. Does not wait for
    /// any of that (wait for `serve` to return).
    ///
    /// A second call may shorten the grace period (the earlier deadline
    /// wins); `shutdown(Duration::ZERO)` aborts every connection at once.
    pub fn shutdown(&self, grace: Duration) {
        let now = Instant::now();
        let deadline = now
            .checked_add(grace)
            .or_else(|| now.checked_add(FOREVER))
            .unwrap_or(now);
        {
            let mut current = self.lock_deadline();
            match *current {
                Some(earlier) if earlier <= deadline => return,
                _ => *current = Some(deadline),
            }
        }
        self.state.notifier.notify();
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    ///
    /// ```
    /// let pool = xev::rt::Pool::builder().threads(1).build()?;
    /// let shutdown = pool.shutdown_handle();
    /// assert!(!shutdown.is_requested());
    /// shutdown.shutdown(std::time::Duration::from_secs(5));
    /// assert!(shutdown.is_requested());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn is_requested(&self) -> bool {
        self.state.notifier.is_notified()
    }

    /// A future that completes once [`shutdown`](Self::shutdown) has been
    /// called (at once if it has been already). It can be awaited on any
    /// runtime or thread.
    ///
    /// # Cancel safety
    /// Cancel safe: it holds no state but its waker, which dropping it
    /// removes.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = xev::rt::Pool::builder().threads(1).build()?;
    /// let shutdown = pool.shutdown_handle();
    /// let watcher = std::thread::spawn({
    ///     let shutdown = shutdown.clone();
    ///     move || xev::rt::block_on(shutdown.requested())
    /// });
    /// shutdown.shutdown(Duration::from_secs(1));
    /// watcher.join().unwrap();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn requested(&self) -> ShutdownRequested {
        ShutdownRequested {
            changed: self.state.notifier.notified(),
        }
    }

    fn lock_deadline(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.state
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When the grace period ends, once a shutdown has begun.
    pub(super) fn deadline(&self) -> Option<Instant> {
        *self.lock_deadline()
    }

    /// How many `shutdown` calls have moved the deadline.
    pub(super) fn version(&self) -> u64 {
        self.state.notifier.version()
    }

    /// Ready once the deadline moves past version `seen`.
    pub(super) fn changed(&self, seen: u64) -> Changed {
        self.state.notifier.changed(seen)
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.is_requested())
            .finish()
    }
}

/// The future of [`ShutdownHandle::requested`].
pub struct ShutdownRequested {
    changed: Changed,
}

impl Future for ShutdownRequested {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().changed.poll_changed(cx).map(drop)
    }
}

impl fmt::Debug for ShutdownRequested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownRequested").finish_non_exhaustive()
    }
}
