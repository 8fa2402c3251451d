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
    fn poll_send(&self, _cx: &mut Context<'_>, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
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
    fn poll_send(&self, _cx: &mut Context<'_>, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
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
