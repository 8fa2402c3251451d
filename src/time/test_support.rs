//! What `#[xev::test]` expands to. Not part of the API: no stability promise.

use std::future::Future;
use std::time::Duration;

use crate::rt::Runtime;

/// The runtime of `#[xev::test(start_paused = true)]`, whose clock starts
/// paused: only with the feature `test-util`, which the error message says
/// when it is missing.
#[diagnostic::on_unimplemented(
    message = "`start_paused = true` needs xev's `test-util` feature",
    label = "the clock can be paused only with the `test-util` feature",
    note = "enable it where xev is a dev-dependency: \
            `xev = {{ version = \"...\", features = [\"test-util\"] }}`"
)]
pub trait StartPaused {
    /// A runtime whose clock starts paused.
    fn runtime() -> Runtime;
}

#[cfg(feature = "test-util")]
impl StartPaused for () {
    fn runtime() -> Runtime {
        Runtime::builder()
            .start_paused(true)
            .build()
            .unwrap_or_else(|error| panic!("xev: failed to build a runtime: {error}"))
    }
}

/// `timeout_ms`: runs `future` for at most `limit` of real time, whether or
/// not the runtime's clock is paused; `None` if it ran out of time.
///
/// The clock cannot be paused without `test-util`, so a timer does.
#[cfg(not(feature = "test-util"))]
pub async fn real_time_limit<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    super::timeout(limit, future).await.ok()
}

/// `timeout_ms`: runs `future` for at most `limit` of real time, whether or
/// not the runtime's clock is paused; `None` if it ran out of time.
///
/// A paused clock would let a timer fire at once (auto-advance) or never,
/// so a thread counts real time and wakes the test when it is up.
#[cfg(feature = "test-util")]
pub async fn real_time_limit<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    use std::pin::pin;
    use std::task::Poll;

    let watchdog = watchdog::Watchdog::start(limit);
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        watchdog.poll_expired(cx).map(|()| None)
    })
    .await
}

#[cfg(feature = "test-util")]
mod watchdog {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    /// A thread that wakes the test once `limit` of real time has passed.
    pub(super) struct Watchdog {
        shared: Arc<Shared>,
        /// Dropped with the watchdog: the thread sees the channel close and
        /// ends at once.
        _stop: mpsc::Sender<()>,
    }

    struct Shared {
        expired: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Watchdog {
        pub(super) fn start(limit: Duration) -> Watchdog {
            let shared = Arc::new(Shared {
                expired: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            let (stop, stopped) = mpsc::channel::<()>();
            let thread_shared = shared.clone();
            std::thread::Builder::new()
                .name("xev-test-timeout".into())
                .spawn(move || {
                    if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                        thread_shared.expired.store(true, Ordering::Release);
                        let waker = thread_shared
                            .waker
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .take();
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                    }
                })
                .expect("xev: failed to start the thread that counts `timeout_ms`");
            Watchdog {
                shared,
                _stop: stop,
            }
        }

        pub(super) fn poll_expired(&self, cx: &Context<'_>) -> Poll<()> {
            if self.shared.expired.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self
                .shared
                .waker
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cx.waker().clone());
            // Expired between the check and the store: its wake may have
            // found no waker.
            if self.shared.expired.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            Poll::Pending
        }
    }
}
