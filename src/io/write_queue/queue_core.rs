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

    /// Completes the empty buffers at the front, which need no send.
    pub(super) fn complete_empty_front(&mut self, wakers: &mut Vec<Waker>) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.buf.as_slice().len() == self.front_written)
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
            let remaining = entry.buf.as_slice().len() - self.front_written;
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
mod tests {
    //! The model test: the queue's core and drain loop against a scripted
    //! writer that takes arbitrary byte counts, says `WouldBlock`, or fails;
    //! and the memory an idle queue keeps after a burst.

    use std::cell::{Cell, RefCell};
    use std::io::{self, IoSlice};
    use std::mem::size_of;
    use std::task::{Context, Poll};

    use super::super::buf::Sink;
    use super::super::drain::poll_drain;
    use super::{Entry, QueueCore, WriteBuf, IDLE_CAPACITY_BYTES, IDLE_STAGING_BYTES};

    /// xorshift64*: a seeded generator, so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Takes a random number of the offered bytes each send, or none
    /// (`WouldBlock`, i.e. pending), or fails once at a chosen send.
    struct ScriptedWriter {
        rng: RefCell<Rng>,
        written: RefCell<Vec<u8>>,
        sends: Cell<u64>,
        fail_at: Option<u64>,
    }

    impl Sink for ScriptedWriter {
        fn poll_send(
            &self,
            _cx: &mut Context<'_>,
            slices: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let send = self.sends.get();
            self.sends.set(send + 1);
            if self.fail_at == Some(send) {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            let offered: usize = slices.iter().map(|slice| slice.len()).sum();
            assert!(offered > 0, "the drain loop never offers an empty send");
            let mut rng = self.rng.borrow_mut();
            if rng.below(4) == 0 {
                return Poll::Pending;
            }
            let take = match rng.below(3) {
                0 => offered,
                _ => 1 + rng.below(offered as u64) as usize,
            };
            let mut left = take;
            let mut written = self.written.borrow_mut();
            for slice in slices {
                let n = left.min(slice.len());
                written.extend_from_slice(&slice[..n]);
                left -= n;
            }
            Poll::Ready(Ok(take))
        }
    }

    fn run_case(seed: u64) {
        let mut rng = Rng(seed | 1);
        let failing = rng.below(3) == 0;
        let writer = ScriptedWriter {
            rng: RefCell::new(Rng(rng.next() | 1)),
            written: RefCell::new(Vec::new()),
            sends: Cell::new(0),
            fail_at: failing.then(|| rng.below(20)),
        };
        let core = RefCell::new(QueueCore::new(1 + rng.below(3000) as usize));
        let mut pushed: Vec<Vec<u8>> = Vec::new();
        let waker = futures::task::noop_waker();
        let mut staging = Vec::new();
        let mut cx = Context::from_waker(&waker);

        for _ in 0..200 {
            if rng.below(3) == 0 {
                let len = match rng.below(10) {
                    0 => 0,
                    1 => rng.below(5000) as usize,
                    _ => rng.below(300) as usize,
                };
                let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                core.borrow_mut().push(WriteBuf::from(buf.clone()));
                pushed.push(buf);
            } else if poll_drain(&core, &writer, &mut staging, &mut cx).is_ready() {
                break;
            }
        }
        core.borrow_mut().closed = true;
        while poll_drain(&core, &writer, &mut staging, &mut cx).is_pending() {}

        let written = writer.written.borrow();
        let expected: Vec<u8> = pushed.concat();
        assert_eq!(
            &written[..],
            &expected[..written.len()],
            "seed {seed}: output is a prefix of the input"
        );
        let mut core = core.borrow_mut();
        if core.failure.is_none() {
            assert_eq!(
                written.len(),
                expected.len(),
                "seed {seed}: everything written"
            );
            assert_eq!(core.queued_bytes, 0);
        }
        // Each request's result: Ok(len) exactly for the buffers before the
        // first failed one, all of which are in the output; the error's kind
        // for that one and every one after it.
        let first_failed = if core.failure.is_some() {
            core.completed
        } else {
            u64::MAX
        };
        let mut end = 0;
        for (seq, buf) in pushed.iter().enumerate() {
            end += buf.len();
            match core.poll_request(seq as u64, buf.len(), &mut cx) {
                Poll::Ready(Ok(n)) => {
                    assert!(
                        (seq as u64) < first_failed,
                        "seed {seed}: request {seq} succeeded after the failure"
                    );
                    assert_eq!(n, buf.len());
                    assert!(
                        end <= written.len(),
                        "seed {seed}: request {seq} reported unwritten bytes"
                    );
                }
                Poll::Ready(Err(error)) => {
                    assert!(
                        (seq as u64) >= first_failed,
                        "seed {seed}: request {seq} failed before the failure"
                    );
                    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "seed {seed}");
                    if seq as u64 == first_failed && !buf.is_empty() {
                        assert!(
                            end > written.len(),
                            "seed {seed}: the failed buffer was not all written"
                        );
                    }
                }
                Poll::Pending => {
                    panic!("seed {seed}: request {seq} still pending after the drain ended")
                }
            }
        }
        if core.failure.is_some() {
            let later = core.push(WriteBuf::from(vec![1, 2, 3]));
            assert!(later >= first_failed);
            assert!(matches!(
                core.poll_request(later, 3, &mut cx),
                Poll::Ready(Err(_))
            ));
            assert_eq!(core.queued_bytes, 0, "a failed queue holds no bytes");
        }
    }

    #[test]
    fn queue_output_is_the_concatenation_of_its_input_under_any_send_sizes() {
        for seed in 0..2000 {
            run_case(seed);
        }
    }

    #[test]
    fn batches_stop_at_the_slice_limit_and_the_byte_budget() {
        let mut core = QueueCore::new(100);
        for _ in 0..2000 {
            core.push(WriteBuf::from(&b"x"[..]));
        }
        let mut slices = Vec::new();
        core.fill_slices(&mut slices);
        assert_eq!(slices.len(), 100, "byte budget");

        let mut core = QueueCore::new(usize::MAX);
        for _ in 0..2000 {
            core.push(WriteBuf::from(&b"x"[..]));
        }
        let mut slices = Vec::new();
        core.fill_slices(&mut slices);
        assert_eq!(slices.len(), super::MAX_SLICES, "slice limit");
    }

    /// Takes every byte offered, or fails every send; remembers the
    /// largest single slice it was given (only a coalesced batch, copied
    /// into the drain's staging buffer, is larger than one pushed buffer).
    struct Greedy {
        fail: bool,
        taken: Cell<usize>,
        largest_slice: Cell<usize>,
    }

    impl Sink for Greedy {
        fn poll_send(
            &self,
            _cx: &mut Context<'_>,
            slices: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if self.fail {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let largest = slices.iter().map(|slice| slice.len()).max().unwrap_or(0);
            self.largest_slice
                .set(self.largest_slice.get().max(largest));
            let offered: usize = slices.iter().map(|slice| slice.len()).sum();
            self.taken.set(self.taken.get() + offered);
            Poll::Ready(Ok(offered))
        }
    }

    /// A burst queued behind a peer that lagged: 10,000 small buffers, each
    /// awaited by a flush. Returns the queue's bookkeeping size at its peak.
    fn burst(core: &RefCell<QueueCore>, cx: &mut Context<'_>) -> usize {
        let mut core = core.borrow_mut();
        for _ in 0..10_000 {
            core.push(WriteBuf::from(vec![7; 100]));
            let target = core.next_seq();
            assert!(core.poll_flush(target, cx).is_pending());
        }
        core.capacity_bytes()
    }

    #[test]
    fn write_queue_staging_shrinks_after_burst() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let core = RefCell::new(QueueCore::new(usize::MAX));
        let mut staging = Vec::new();

        // Drained: the staging buffer held whole batches on the way.
        let peak = burst(&core, &mut cx);
        assert!(peak >= 10_000 * (size_of::<Entry>() + 16), "peak {peak}");
        let sink = Greedy {
            fail: false,
            taken: Cell::new(0),
            largest_slice: Cell::new(0),
        };
        assert!(poll_drain(&core, &sink, &mut staging, &mut cx).is_pending());
        assert_eq!(sink.taken.get(), 1_000_000, "the burst was written");
        assert!(
            sink.largest_slice.get() >= 64 * 1024,
            "batches were coalesced in the staging buffer: {}",
            sink.largest_slice.get()
        );
        assert!(core.borrow().is_empty());
        let idle = staging.capacity() + core.borrow().capacity_bytes();
        assert!(staging.capacity() <= IDLE_STAGING_BYTES);
        assert!(
            idle <= IDLE_CAPACITY_BYTES,
            "an idle queue keeps {idle} bytes of its peak {peak}"
        );

        // Failed: the failure empties the queue, and shrinks it too.
        burst(&core, &mut cx);
        let sink = Greedy { fail: true, ..sink };
        assert!(poll_drain(&core, &sink, &mut staging, &mut cx).is_ready());
        let core = core.borrow();
        assert!(core.has_failed() && core.is_empty());
        assert!(core.capacity_bytes() <= IDLE_CAPACITY_BYTES - IDLE_STAGING_BYTES);
    }
}
