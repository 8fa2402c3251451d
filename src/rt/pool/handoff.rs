//! The `Acceptor` mode's hand-off: which worker gets the next connection,
//! and how it gets there.
//!
//! One worker accepts; for each connection, the [`Balancer`] names the
//! worker with the fewest live connections, and the connection goes to
//! that worker's [`Inbox`] as a `std` socket (a file descriptor crosses
//! threads; no xev state does). Pushing wakes the worker's server task
//! through its waker, i.e. the runtime's remote queue and `mio::Waker`:
//! a burst of pushes before the worker runs costs one wake.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A connection on its way to a worker.
pub(super) type HandedOff = (TcpStream, SocketAddr);

/// Live connections per worker, as the acceptor counts them.
pub(super) struct Balancer {
    workers: Box<[Load]>,
    /// Where the next search starts, so that ties go round the workers
    /// instead of always to the first: with short connections every count
    /// is often zero. Only the acceptor reads and writes it.
    next: AtomicUsize,
}

/// One worker's count, on a cache line of its own: each worker writes its
/// own, and the acceptor reads them all.
#[repr(align(64))]
struct Load {
    live: AtomicUsize,
    /// Connections ever given to this worker: breaks ties between equally
    /// loaded workers, so that short connections, which leave the counts
    /// equal most of the time, still add up evenly.
    given: AtomicUsize,
}

impl Balancer {
    pub(super) fn new(workers: usize) -> Balancer {
        Balancer {
            workers: (0..workers)
                .map(|_| Load {
                    live: AtomicUsize::new(0),
                    given: AtomicUsize::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The worker with the fewest live connections (ties: the one given
    /// the fewest so far, then the next one round from the last choice),
    /// counting the new connection to it.
    ///
    /// A worker's count goes up here, before the connection reaches it, so
    /// a burst of connections spreads at once instead of all going to
    /// whoever looked idle before it.
    pub(super) fn pick(&self) -> usize {
        let count = self.workers.len();
        let start = self.next.load(Ordering::Relaxed);
        let mut best = start;
        let mut fewest = (usize::MAX, usize::MAX);
        for offset in 0..count {
            let index = (start + offset) % count;
            let load = &self.workers[index];
            let key = (
                load.live.load(Ordering::Relaxed),
                load.given.load(Ordering::Relaxed),
            );
            if key < fewest {
                best = index;
                fewest = key;
            }
        }
        self.next.store((best + 1) % count, Ordering::Relaxed);
        self.started(best);
        best
    }

    /// Counts a connection given to `index` without [`pick`](Self::pick).
    pub(super) fn started(&self, index: usize) {
        self.workers[index].live.fetch_add(1, Ordering::Relaxed);
        self.workers[index].given.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection of `index` has ended (its handler finished, or was
    /// dropped).
    pub(super) fn finished(&self, index: usize) {
        self.workers[index].live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes back a connection [`pick`](Self::pick) gave `index` and that
    /// never reached it.
    pub(super) fn withdrawn(&self, index: usize) {
        self.finished(index);
        self.workers[index].given.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections handed to one worker and not yet started there.
pub(super) struct Inbox {
    state: Mutex<InboxState>,
}

#[derive(Default)]
struct InboxState {
    connections: Vec<HandedOff>,
    /// The worker's server task, while it waits for connections.
    waker: Option<Waker>,
    /// The worker no longer takes connections (its server is shutting
    /// down): pushes fail and the acceptor starts the connection itself.
    closed: bool,
}

impl Inbox {
    pub(super) fn new() -> Inbox {
        Inbox {
            state: Mutex::new(InboxState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands `connection` to the worker and wakes it; gives it back if the
    /// inbox is closed.
    pub(super) fn push(&self, connection: HandedOff) -> Result<(), HandedOff> {
        let waker = {
            let mut state = self.lock();
            if state.closed {
                return Err(connection);
            }
            state.connections.push(connection);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Moves every waiting connection into `batch`; pending (with the
    /// task's waker stored) if there are none.
    pub(super) fn poll_take(&self, cx: &mut Context<'_>, batch: &mut Vec<HandedOff>) -> Poll<()> {
        let mut state = self.lock();
        if state.connections.is_empty() {
            match &mut state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                waker => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        std::mem::swap(&mut state.connections, batch);
        Poll::Ready(())
    }

    /// Refuses further connections, and returns those still waiting.
    pub(super) fn close(&self) -> Vec<HandedOff> {
        let mut state = self.lock();
        state.closed = true;
        state.waker = None;
        std::mem::take(&mut state.connections)
    }
}
