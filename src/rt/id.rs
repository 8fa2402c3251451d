//! Task ids: unique across every runtime of the process.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next id no runtime has handed out yet.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// How many ids a runtime takes from [`NEXT`] at once, so spawning on it
/// costs no atomic operation most of the time.
const BLOCK: u64 = 1024;

/// An opaque id of a task, unique among all tasks of all runtimes of the
/// process, for as long as it runs (ids are never reused).
///
/// [`JoinHandle::id`](crate::rt::JoinHandle::id) and
/// [`AbortHandle::id`](crate::rt::AbortHandle::id) give the id of their task;
/// [`rt::try_id`](crate::rt::try_id) the id of the task being polled. An id
/// says nothing about the order tasks were spawned in.
///
/// # Examples
/// ```
/// xev::rt::block_on(async {
///     let task = xev::rt::spawn(async { xev::rt::try_id() });
///     let id = task.id();
///     assert_eq!(task.await.unwrap(), Some(id));
///     println!("task {id} finished"); // `Display` prints a number
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// A fresh id, straight from the process-wide counter: for tasks
    /// spawned from outside their runtime's thread.
    pub(crate) fn next() -> Id {
        Id::from_counter(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn from_counter(value: u64) -> Id {
        // 2^64 ids would take centuries at a billion spawns a second.
        Id(NonZeroU64::new(value).expect("xev: task ids ran out"))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

/// The ids a runtime hands out to the tasks spawned on its thread: a block
/// taken from the process-wide counter.
pub(crate) struct IdBlock {
    next: Cell<u64>,
    end: Cell<u64>,
}

impl IdBlock {
    pub(crate) fn new() -> IdBlock {
        IdBlock {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    pub(crate) fn next(&self) -> Id {
        let mut next = self.next.get();
        if next == self.end.get() {
            next = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
            self.end.set(next + BLOCK);
        }
        self.next.set(next + 1);
        Id::from_counter(next)
    }
}
