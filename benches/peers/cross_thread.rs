//! Cross-thread wake round trips: a plain thread wakes a future on the
//! runtime, the future wakes the thread back, `n` times.
//!
//! The thread's side is a [`Doorbell`] (an atomic flag plus the runtime's
//! waker behind a mutex); the runtime's side is the [`Answer`] future. Both
//! peers run the very same code, so the difference is the runtime's remote
//! wake path: queueing the task from another thread and interrupting
//! `epoll_wait`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::cpu::{self, CLIENT_CPU, SERVER_CPU};

struct Doorbell {
    /// Set by the ringing thread, cleared by the runtime when it answers.
    rung: AtomicBool,
    /// Set by the runtime, cleared by the ringing thread.
    answered: AtomicBool,
    /// The waker of the task that answers; taken by each ring.
    runtime_waker: Mutex<Option<Waker>>,
    ringer: OnceLock<Thread>,
}

/// The runtime's side: answers `remaining` rings; resolves to the time from
/// its first poll to its last answer.
pub struct Answer {
    bell: Arc<Doorbell>,
    remaining: u64,
    started: Option<Instant>,
}

impl Future for Answer {
    type Output = Duration;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Duration> {
        let started = *self.started.get_or_insert_with(Instant::now);
        loop {
            if self.bell.rung.swap(false, Ordering::AcqRel) {
                self.bell.answered.store(true, Ordering::Release);
                self.bell.ringer.get().expect("ringer is set").unpark();
                self.remaining -= 1;
                if self.remaining == 0 {
                    return Poll::Ready(started.elapsed());
                }
                continue;
            }
            *self.bell.runtime_waker.lock().unwrap() = Some(cx.waker().clone());
            // A ring between the check above and storing the waker found no
            // waker to wake: look again.
            if !self.bell.rung.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
    }
}

/// Runs `n` round trips between a thread on the client CPU and `run_runtime`
/// on the server CPU, which must drive the given [`Answer`] to completion on
/// a fresh runtime and return its output.
pub fn round_trips<R>(n: u64, run_runtime: R) -> io::Result<Duration>
where
    R: FnOnce(Answer) -> Duration + Send + 'static,
{
    assert!(n > 0);
    let bell = Arc::new(Doorbell {
        rung: AtomicBool::new(false),
        answered: AtomicBool::new(false),
        runtime_waker: Mutex::new(None),
        ringer: OnceLock::new(),
    });
    let ringer = cpu::spawn_pinned(CLIENT_CPU, "ringer", {
        let bell = bell.clone();
        move || {
            for _ in 0..n {
                bell.rung.store(true, Ordering::Release);
                let waker = bell.runtime_waker.lock().unwrap().take();
                if let Some(waker) = waker {
                    waker.wake();
                }
                while !bell.answered.swap(false, Ordering::AcqRel) {
                    thread::park();
                }
            }
        }
    });
    bell.ringer
        .set(ringer.thread().clone())
        .expect("set only here");
    let answer = Answer {
        bell,
        remaining: n,
        started: None,
    };
    let runtime = cpu::spawn_pinned(SERVER_CPU, "runtime", move || run_runtime(answer));
    let elapsed = cpu::join_within(runtime, "runtime")?;
    cpu::join_within(ringer, "ringing")?;
    Ok(elapsed)
}
