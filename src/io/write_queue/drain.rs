//! The drain task: the runtime's side of a queue, which writes the buffers
//! whether or not anyone awaits them (libxev's loop draining its queue).
//!
//! It holds the queue's core and its own handle to the stream, so a queue
//! dropped with buffers pending is still written; it ends, letting both go,
//! once the queue is dropped and empty or has failed. Dropped before that
//! (its runtime shut down, or the queue aborted), it fails what is pending,
//! so no request or flush waits for a write that will never happen.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[cfg(target_os = "linux")]
use super::buf::WriteBuf;
use super::buf::{Sink, WriteTarget};
use super::queue_core::{self, QueueCore, IDLE_STAGING_BYTES, MAX_SLICES};
#[cfg(target_os = "linux")]
use crate::net::TcpStream;
#[cfg(target_os = "linux")]
use crate::rt::reactor::Direction;

/// Batches whose buffers average fewer bytes than this are copied into one
/// buffer and sent with `send` rather than `sendmsg`.
const COALESCE_BELOW: usize = 512;

/// The future of the drain task.
pub(super) struct Drain {
    core: Rc<RefCell<QueueCore>>,
    /// Keeps the stream open until the queue is written, even once the
    /// `WriteQueue` and the user's handles are gone.
    target: Rc<WriteTarget>,
    /// The copy buffer for batches of small buffers, reused across sends.
    staging: Vec<u8>,
    /// `poll` returned `Ready`: nothing is left pending for `drop` to fail.
    done: bool,
    /// Under `IoUring`: the send in flight in the ring, which owns the
    /// buffers lent to it.
    #[cfg(target_os = "linux")]
    in_flight: Option<xev_uring::OpId>,
    /// Under `IoUring`: a send ended with `EAGAIN`; the next waits for the
    /// socket to be writable.
    #[cfg(target_os = "linux")]
    await_writable: bool,
}

impl Drain {
    pub(super) fn new(core: Rc<RefCell<QueueCore>>, target: Rc<WriteTarget>) -> Drain {
        Drain {
            core,
            target,
            staging: Vec::new(),
            done: false,
            #[cfg(target_os = "linux")]
            in_flight: None,
            #[cfg(target_os = "linux")]
            await_writable: false,
        }
    }
}

impl Future for Drain {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        #[cfg(target_os = "linux")]
        if this.target.stream().registration().ring_io().is_some() {
            let outcome = poll_drain_ring(
                &this.core,
                this.target.stream(),
                &mut this.in_flight,
                &mut this.await_writable,
                cx,
            );
            this.done = outcome.is_ready();
            return outcome;
        }
        let outcome = poll_drain(&this.core, this.target.stream(), &mut this.staging, cx);
        this.done = outcome.is_ready();
        outcome
    }
}

impl Drop for Drain {
    /// Dropped unfinished: the runtime is shutting down (an aborted queue
    /// has already failed, so this changes nothing for it). What is pending
    /// fails now, rather than waiting forever for this task.
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(op) = self.in_flight {
            let registration = self.target.stream().registration();
            if let Some(ring) = registration.ring_io() {
                registration.cancel_queued_send(ring, op);
            }
        }
        if self.done {
            return;
        }
        let mut wakers = Vec::new();
        self.core
            .borrow_mut()
            .fail_once(queue_core::runtime_gone, &mut wakers);
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Writes queued buffers until the queue is empty, the socket is full, or a
/// send fails. Ready once the queue has failed, or is dropped and empty.
///
/// `staging` is the drain task's copy buffer for batches of small buffers;
/// it shrinks back (as does the queue's bookkeeping) whenever the queue
/// empties.
pub(super) fn poll_drain(
    core: &RefCell<QueueCore>,
    sink: &impl Sink,
    staging: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut wakers = Vec::new();
    let outcome = loop {
        let mut queue = core.borrow_mut();
        if let Some(outcome) = queue.settle(cx, &mut wakers) {
            if queue.is_empty() {
                staging.clear();
                staging.shrink_to(IDLE_STAGING_BYTES);
            }
            break outcome;
        }
        let mut slices = Vec::with_capacity(queue.len().min(MAX_SLICES));
        queue.fill_slices(&mut slices);
        let sent = if coalesce(&slices) {
            staging.clear();
            slices
                .iter()
                .for_each(|slice| staging.extend_from_slice(slice));
            drop(slices);
            sink.poll_send(cx, &[IoSlice::new(staging)])
        } else {
            sink.poll_send(cx, &slices)
        };
        match sent {
            Poll::Pending => break Poll::Pending,
            Poll::Ready(Ok(0)) => queue.fail(&io::ErrorKind::WriteZero.into(), &mut wakers),
            Poll::Ready(Ok(n)) => queue.advance(n, &mut wakers),
            Poll::Ready(Err(error)) => queue.fail(&error, &mut wakers),
        }
    };
    // Woken after the queue's borrow ends: a woken request may be polled by
    // a foreign executor right away.
    wakers.into_iter().for_each(Waker::wake);
    outcome
}

/// [`poll_drain`] under `IoUring`: each batch's buffers are lent to one
/// `sendmsg` in the ring, which owns them until it completes (no copy, one
/// `io_uring_enter` per loop turn for every queue), then given back to the
/// queue before the bytes sent are accounted.
#[cfg(target_os = "linux")]
fn poll_drain_ring(
    core: &RefCell<QueueCore>,
    stream: &TcpStream,
    in_flight: &mut Option<xev_uring::OpId>,
    await_writable: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let registration = stream.registration();
    let ring = registration.ring_io().expect("a ring stream");
    let mut wakers = Vec::new();
    let outcome = loop {
        if let Some(op) = *in_flight {
            let Poll::Ready((result, bufs)) = registration.poll_queue_sent(ring, cx, op) else {
                break Poll::Pending;
            };
            *in_flight = None;
            let mut queue = core.borrow_mut();
            queue.restore(bufs.into_iter().map(WriteBuf::from_owned).collect());
            match result {
                Ok(0) => queue.fail(&io::ErrorKind::WriteZero.into(), &mut wakers),
                Ok(n) => queue.advance(n, &mut wakers),
                // The kernel gave up waiting for room (it may, on a
                // non-blocking socket): wait for writability, then resend.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    registration.clear_ready(Direction::Write);
                    *await_writable = true;
                }
                Err(error) => queue.fail(&error, &mut wakers),
            }
        }
        let mut queue = core.borrow_mut();
        if let Some(outcome) = queue.settle(cx, &mut wakers) {
            break outcome;
        }
        if *await_writable {
            drop(queue);
            match registration.poll_socket_ready(cx, Direction::Write, None) {
                Poll::Pending => break Poll::Pending,
                Poll::Ready(Err(error)) => {
                    core.borrow_mut().fail(&error, &mut wakers);
                    break Poll::Ready(());
                }
                Poll::Ready(Ok(())) => {
                    *await_writable = false;
                    continue;
                }
            }
        }
        let (lent, offset) = queue.lend_batch();
        let mut bufs = Some(lent.into_iter().map(WriteBuf::into_owned).collect());
        match registration.poll_send_queued(ring, cx, &mut bufs, offset) {
            Poll::Ready(Ok(op)) => *in_flight = Some(op),
            Poll::Ready(Err(error)) => queue.fail(&error, &mut wakers),
            Poll::Pending => {
                // An aborted queue's send is still in flight: take the
                // buffers back and wait for it.
                let bufs = bufs.take().unwrap_or_default();
                queue.restore(bufs.into_iter().map(WriteBuf::from_owned).collect());
                break Poll::Pending;
            }
        }
    };
    wakers.into_iter().for_each(Waker::wake);
    outcome
}

/// Whether a batch is better copied into one buffer than sent as it is:
/// many small slices cost the kernel more per byte than one copy here.
fn coalesce(slices: &[IoSlice<'_>]) -> bool {
    let bytes: usize = slices.iter().map(|slice| slice.len()).sum();
    slices.len() > 1 && bytes < slices.len() * COALESCE_BELOW
}
