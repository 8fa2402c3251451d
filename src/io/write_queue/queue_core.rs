//! The queue without its socket: sequence numbers, buffers, waiters, and
//! the failure that ends it.
//!
//! Buffer number `seq` (counting pushes from zero) is complete when
//! `seq < completed`; the buffers from `completed` on are `entries`, in
//! order, the first of them `front_written` bytes in. Once `failure` is set
//! it never changes: every request not complete by then, every later push
//! and every flush waiting for one of them reports it.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem::size_of;
use std::task::{Context, Poll, Waker};

use super::buf::WriteBuf;

/// Most slices one `sendmsg` is given (`IOV_MAX` on Linux and the BSDs).
pub(super) const MAX_SLICES: usize = 1024;

/// What an idle queue keeps, at most, of the memory a burst made it
/// allocate: its copy buffer for small writes, its list of buffers and its
/// list of flush waiters together. The rest is freed when the queue empties.
const IDLE_CAPACITY_BYTES: usize = 16 * 1024;

/// The copy buffer's share of [`IDLE_CAPACITY_BYTES`].
pub(super) const IDLE_STAGING_BYTES: usize = 8 * 1024;

/// The buffer list's share: 6 KiB of entries.
const IDLE_ENTRIES: usize = 6 * 1024 / size_of::<Entry>();

/// The flush waiters' share: 1 KiB.
const IDLE_FLUSH_WAITERS: usize = 1024 / size_of::<(u64, Waker)>();

const _: () = assert!(
    IDLE_STAGING_BYTES
        + IDLE_ENTRIES * size_of::<Entry>()
        + IDLE_FLUSH_WAITERS * size_of::<(u64, Waker)>()
        <= IDLE_CAPACITY_BYTES,
    "the shares fit the idle bound"
);

/// The error of the requests and flushes that
/// [`WriteQueue::abort`](super::WriteQueue::abort) fails, and of every push
/// after it.
pub(super) fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the WriteQueue was aborted: buffers not yet written were dropped \
         (create a new WriteQueue to write to the stream again)",
    )
}

/// The error of the requests and flushes left when the drain task is dropped
/// without finishing: its runtime was shut down.
pub(super) fn runtime_gone() -> io::Error {
    io::Error::other(
        "the runtime that drives this WriteQueue has been shut down: buffers not yet \
         written were dropped (keep the runtime running until the queue is flushed)",
    )
}

struct Entry {
    buf: WriteBuf,
    /// The waker of this buffer's `WriteRequest`, if it was awaited.
    waker: Option<Waker>,
}

/// The error every request not yet complete when it happened reports (the
/// queue's `completed` count stops there). `io::Error` is not `Clone`, so it
/// is kept in a form that can be rebuilt for each.
struct Failure {
    os_error: Option<i32>,
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn error(&self) -> io::Error {
        match self.os_error {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// The queue without its socket (see the module's docs).
pub(super) struct QueueCore {
    entries: VecDeque<Entry>,
    front_written: usize,
    completed: u64,
    /// Every push so far, failed ones included: the next push's number. Not
    /// derived from `entries`, which a failure empties, so a `flush` after
    /// a failure still waits for (and so reports) the failed buffers.
    pushed: u64,
    queued_bytes: usize,
    failure: Option<Failure>,
    /// `flush` calls waiting for `completed` to reach their target.
    flush_waiters: Vec<(u64, Waker)>,
    /// The drain task, parked while the queue is empty.
    drainer: Option<Waker>,
    /// The `WriteQueue` was dropped: the drain task ends once it is empty.
    closed: bool,
    /// About one send buffer: a batch stops growing once it has this many bytes.
    batch_bytes: usize,
}

impl QueueCore {
    pub(super) fn new(batch_bytes: usize) -> QueueCore {
        QueueCore {
            entries: VecDeque::new(),
            front_written: 0,
            completed: 0,
            pushed: 0,
            queued_bytes: 0,
            failure: None,
            flush_waiters: Vec::new(),
            drainer: None,
            closed: false,
            batch_bytes: batch_bytes.max(1),
        }
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.pushed
    }

    /// Queues `buf`; returns its sequence number. After a failure nothing
    /// is queued, and the number returned is one that reports the failure.
    pub(super) fn push(&mut self, buf: WriteBuf) -> u64 {
        let seq = self.pushed;
        self.pushed += 1;
        if self.failure.is_none() {
            self.queued_bytes += buf.as_slice().len();
            self.entries.push_back(Entry { buf, waker: None });
        }
        seq
    }

    /// The unwritten bytes, as slices for one send: at most `MAX_SLICES`
    /// of them, and no more buffers once `batch_bytes` are offered.
    pub(super) fn fill_slices<'a>(&'a self, slices: &mut Vec<IoSlice<'a>>) {
        let mut offered = 0;
        for (index, entry) in self.entries.iter().enumerate() {
            if slices.len() == MAX_SLICES || offered >= self.batch_bytes {
                break;
            }
            let bytes = entry.buf.as_slice();
            let bytes = if index == 0 {
                &bytes[self.front_written..]
            } else {
                bytes
            };
            if !bytes.is_empty() {
                offered += bytes.len();
                slices.push(IoSlice::new(bytes));
            }
        }
    }

    /// Lends the buffers of one batch (as [`fill_slices`](Self::fill_slices)
    /// would offer them) to a send that owns them until it completes (the
    /// `IoUring` backend's); returns them with the offset of the first
    /// unwritten byte in the first. The entries keep their lengths, so the
    /// queue's accounting goes on; [`restore`](Self::restore) puts the
    /// buffers back.
    #[cfg(target_os = "linux")]
    pub(super) fn lend_batch(&mut self) -> (Vec<WriteBuf>, usize) {
        let mut offered = 0;
        let mut lent = Vec::new();
        for (index, entry) in self.entries.iter_mut().enumerate() {
            if lent.len() == MAX_SLICES || offered >= self.batch_bytes {
                break;
            }
            let skip = if index == 0 { self.front_written } else { 0 };
            offered += entry.buf.len() - skip;
            lent.push(entry.buf.lend());
        }
        (lent, self.front_written)
    }

    /// Puts back buffers lent by [`lend_batch`](Self::lend_batch), before
    /// the send's outcome is applied. After a failure (the entries are
    /// gone), they are dropped.
    #[cfg(target_os = "linux")]
    pub(super) fn restore(&mut self, bufs: Vec<WriteBuf>) {
        for (entry, buf) in self.entries.iter_mut().zip(bufs) {
            debug_assert_eq!(entry.buf.len(), buf.len(), "restored out of order");
            entry.buf = buf;
        }
    }

    /// The drain task's outcome before a send: `Ready` once the queue has
    /// failed, or is dropped and empty; `Pending`, parked, while it is
    /// empty (its idle capacity released); `None` when there is something
    /// to send.
    pub(super) fn settle(&mut self, cx: &Context<'_>, wakers: &mut Vec<Waker>) -> Option<Poll<()>> {
        if self.has_failed() {
            return Some(Poll::Ready(()));
        }
        self.complete_empty_front(wakers);
        if !self.is_empty() {
            return None;
        }
        self.release_idle_capacity();
        if self.is_closed() {
            return Some(Poll::Ready(()));
        }
        self.park_drainer(cx);
        Some(Poll::Pending)
    }

    /// Completes the empty buffers at the front, which need no send.
    pub(super) fn complete_empty_front(&mut self, wakers: &mut Vec<Waker>) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.buf.len() == self.front_written)
        {
            self.complete_front(wakers);
        }
        self.wake_flushes(wakers);
    }

    fn complete_front(&mut self, wakers: &mut Vec<Waker>) {
        if let Some(entry) = self.entries.pop_front() {
            wakers.extend(entry.waker);
            self.completed += 1;
            self.front_written = 0;
        }
    }

    /// Records that a send took `n` more bytes.
    pub(super) fn advance(&mut self, mut n: usize, wakers: &mut Vec<Waker>) {
        self.queued_bytes -= n;
        while let Some(entry) = self.entries.front() {
            let remaining = entry.buf.len() - self.front_written;
            if n < remaining {
                self.front_written += n;
                n = 0;
                break;
            }
            n -= remaining;
            self.complete_front(wakers);
        }
        debug_assert_eq!(n, 0, "a send reported more bytes than it was offered");
        self.wake_flushes(wakers);
    }

    /// Fails every queued buffer (and every later push) with `error`.
    pub(super) fn fail(&mut self, error: &io::Error, wakers: &mut Vec<Waker>) {
        self.failure = Some(Failure {
            os_error: error.raw_os_error(),
            kind: error.kind(),
            message: error.to_string(),
        });
        wakers.extend(self.entries.drain(..).filter_map(|entry| entry.waker));
        wakers.extend(self.flush_waiters.drain(..).map(|(_, waker)| waker));
        self.queued_bytes = 0;
        self.front_written = 0;
        self.release_idle_capacity();
    }

    /// Whether a send has failed, or the queue was aborted or lost its
    /// runtime: nothing more is written.
    pub(super) fn has_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Fails the queue with `error` unless it has already failed (the first
    /// failure stays, as the requests have seen it).
    pub(super) fn fail_once(&mut self, error: impl FnOnce() -> io::Error, wakers: &mut Vec<Waker>) {
        if self.failure.is_none() {
            self.fail(&error(), wakers);
        }
    }

    /// Frees what a burst grew past the idle bound: called when the queue
    /// has become empty, so 10,000 connections that each lagged once do
    /// not keep their peak memory.
    pub(super) fn release_idle_capacity(&mut self) {
        self.entries.shrink_to(IDLE_ENTRIES);
        self.flush_waiters.shrink_to(IDLE_FLUSH_WAITERS);
    }

    /// Bytes held by the buffer list and the flush waiters, whether used or
    /// not (the buffers' own bytes are the user's, and not counted).
    #[cfg(test)]
    fn capacity_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>()
            + self.flush_waiters.capacity() * size_of::<(u64, Waker)>()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Marks the queue dropped (the drain task ends once it is empty) and
    /// takes the drain task's waker if it is parked.
    pub(super) fn close(&mut self) -> Option<Waker> {
        self.closed = true;
        self.drainer.take()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes the drain task's waker if it is parked on an empty queue.
    pub(super) fn take_drainer(&mut self) -> Option<Waker> {
        self.drainer.take()
    }

    /// Parks the drain task on an empty queue: the next push wakes it.
    pub(super) fn park_drainer(&mut self, cx: &Context<'_>) {
        match &self.drainer {
            Some(drainer) if drainer.will_wake(cx.waker()) => {}
            _ => self.drainer = Some(cx.waker().clone()),
        }
    }

    fn wake_flushes(&mut self, wakers: &mut Vec<Waker>) {
        let completed = self.completed;
        self.flush_waiters.retain(|(target, waker)| {
            let done = *target <= completed;
            if done {
                wakers.push(waker.clone());
            }
            !done
        });
    }

    pub(super) fn poll_request(
        &mut self,
        seq: u64,
        len: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if seq < self.completed {
            return Poll::Ready(Ok(len));
        }
        if let Some(failure) = &self.failure {
            return Poll::Ready(Err(failure.error()));
        }
        let entry = &mut self.entries[(seq - self.completed) as usize];
        match &entry.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => entry.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub(super) fn poll_flush(&mut self, target: u64, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if target <= self.completed {
            return Poll::Ready(Ok(()));
        }
        if let Some(failure) = &self.failure {
            return Poll::Ready(Err(failure.error()));
        }
        let known = self
            .flush_waiters
            .iter()
            .any(|(waiting, waker)| *waiting == target && waker.will_wake(cx.waker()));
        if !known {
            self.flush_waiters.push((target, cx.waker().clone()));
        }
        Poll::Pending
    }
}

#[cfg(test)]
#[path = "queue_core_tests.rs"]
mod tests;
