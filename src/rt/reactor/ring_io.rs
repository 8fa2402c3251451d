//! A stream's reads and sends through the io_uring ring (`IoUring` only).
//!
//! **Receive.** A read that finds nothing received arms one `RECV` into a
//! buffer the runtime owns (the ring holds it while the kernel may write
//! it); its completion wakes the readers, and reads copy out of it (one
//! `memcpy`). A read future dropped meanwhile leaves the receive armed: the
//! bytes wait in the buffer for the next read, so nothing is lost and
//! `read` stays cancel safe.
//!
//! **Queued sends.** A `WriteQueue` hands its buffers to the ring as they
//! are (`SENDMSG` over the queue's own bytes, no copy): at most one such
//! send per stream is in flight, its buffers owned by the ring until the
//! completion gives them back to the queue. Plain writes (`write`,
//! `write_all`, `try_write`) stay `send` calls on the socket, so their
//! meaning is the same on both backends: `Ok(n)` means the kernel has the
//! bytes.
//!
//! **Readiness.** The readiness API (`readable`, `try_read`, `ready`,
//! `try_io`) sees the receive buffer first; with nothing received and no
//! receive armed, it falls back to a poll of the socket, armed in the ring
//! on first use; so does write readiness.
//!
//! All submissions go in with the loop's next `io_uring_enter`, so a turn
//! in which many streams read and write costs one system call.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::task::{Context, Poll};

use xev_uring::{OpId, OwnedBuf, ECONNRESET};

use super::registration::Registration;
use super::uring::{Kind, RingDriver};
use super::{
    shut_down_error, Direction, ScheduledIo, READABLE, READ_CLOSED, SHUT_DOWN, WRITE_CLOSED,
};
use crate::rt::waiters::WaitKey;

/// The receive buffer's size bounds. A receive takes the read's length
/// within these (an idle connection reading a few bytes holds the
/// smallest), and doubles each time a receive fills its buffer, up to the
/// largest (a stream in full flow).
const RX_MIN: usize = 2 * 1024;
const RX_MAX: usize = 64 * 1024;

/// The ring-side state of one stream.
pub(crate) struct RingIo {
    pub(super) fd: RawFd,
    rx: RefCell<Rx>,
    /// A `WriteQueue` send in flight, then its outcome with its buffers.
    queued: RefCell<QueuedSend>,
    /// A send on the socket failed with `ECONNRESET`: a receive that then
    /// ends with 0 reports the reset instead.
    reset: Cell<bool>,
}

/// The state of a stream's `WriteQueue` send through the ring.
#[derive(Default)]
pub(crate) enum QueuedSend {
    #[default]
    Idle,
    InFlight(OpId),
    /// In flight, cancelled: its queue is gone; the buffers are dropped
    /// when it completes.
    Abandoned(OpId),
    /// Completed: bytes sent (or the errno), and the buffers back.
    Done(OpId, Result<u32, i32>, Vec<OwnedBuf>),
}

#[derive(Default)]
struct Rx {
    state: RxState,
    /// The buffer for the next receive, kept between receives.
    spare: Vec<u8>,
    /// The size of the next receive buffer (0: [`RX_MIN`]).
    size: usize,
    /// A receive ended with `EAGAIN`: wait for readability before the next.
    poll_first: bool,
}

#[derive(Default)]
enum RxState {
    /// No receive armed, nothing received.
    #[default]
    Idle,
    /// A receive is in flight; the ring owns its buffer.
    Armed(OpId),
    /// Bytes received and not yet read: `buf[start..end]`.
    Filled {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    },
    /// The peer closed its side: every read returns 0. `seen` once a read
    /// returned it.
    Eof { seen: bool },
    /// A receive failed: the next read returns the error.
    Failed(i32),
}

impl RingIo {
    pub(super) fn new(fd: RawFd) -> RingIo {
        RingIo {
            fd,
            rx: RefCell::default(),
            queued: RefCell::default(),
            reset: Cell::new(false),
        }
    }

    /// A receive completed with `result`, its buffer back in `buf`.
    pub(super) fn received(&self, op: OpId, result: Result<u32, i32>, buf: Option<Vec<u8>>) {
        let mut rx = self.rx.borrow_mut();
        if !matches!(rx.state, RxState::Armed(armed) if armed == op) {
            return;
        }
        let buf = buf.unwrap_or_default();
        rx.state = match result {
            // A reset ends the receive with 0 when a send took the error
            // first: the reader still learns of the reset.
            Ok(0) if self.reset.get() => {
                rx.spare = buf;
                RxState::Failed(ECONNRESET)
            }
            Ok(0) => {
                rx.spare = buf;
                RxState::Eof { seen: false }
            }
            Ok(n) => {
                if n as usize == buf.len() {
                    rx.size = (buf.len() * 2).min(RX_MAX);
                }
                RxState::Filled {
                    buf,
                    start: 0,
                    end: n as usize,
                }
            }
            Err(code) => {
                rx.spare = buf;
                if code == xev_uring::EAGAIN {
                    // The kernel gave up waiting for data (it may, on a
                    // non-blocking socket): the next read waits for the
                    // socket's readiness before it arms a receive again.
                    rx.poll_first = true;
                    RxState::Idle
                } else if code == xev_uring::ECANCELED {
                    RxState::Idle
                } else {
                    RxState::Failed(code)
                }
            }
        };
    }

    /// The `WriteQueue` send completed.
    pub(super) fn queue_sent(&self, op: OpId, result: Result<u32, i32>, bufs: Vec<OwnedBuf>) {
        let mut queued = self.queued.borrow_mut();
        match *queued {
            QueuedSend::InFlight(inflight) if inflight == op => {
                *queued = QueuedSend::Done(op, result, bufs);
            }
            QueuedSend::Abandoned(abandoned) if abandoned == op => {
                *queued = QueuedSend::Idle;
                drop(queued);
                drop(bufs);
            }
            _ => {}
        }
    }

    /// A send on the socket failed with `error`: a reset also reaches a
    /// reader whose receive ended with a plain end of stream.
    pub(crate) fn note_send_error(&self, error: &io::Error) {
        if error.raw_os_error() == Some(ECONNRESET) {
            self.reset.set(true);
            let mut rx = self.rx.borrow_mut();
            if matches!(rx.state, RxState::Eof { seen: false }) {
                rx.state = RxState::Failed(ECONNRESET);
            }
        }
    }

    /// The `WriteQueue` send to cancel when the stream closes.
    pub(super) fn queued_send(&self) -> Option<OpId> {
        match *self.queued.borrow() {
            QueuedSend::InFlight(op) | QueuedSend::Abandoned(op) => Some(op),
            _ => None,
        }
    }

    /// The receive to cancel when the stream closes.
    pub(super) fn armed_recv(&self) -> Option<OpId> {
        match self.rx.borrow().state {
            RxState::Armed(op) => Some(op),
            _ => None,
        }
    }
}

/// Copies received bytes out of a filled receive buffer, consuming them
/// unless `peek`; an emptied buffer becomes the spare.
fn take_filled(rx: &mut Rx, into: &mut ReadInto<'_, '_>, peek: bool) -> usize {
    let RxState::Filled { buf, start, end } = &mut rx.state else {
        return 0;
    };
    let n = into.copy_from(&buf[*start..*end]);
    if !peek {
        *start += n;
        if *start == *end {
            if let RxState::Filled { buf, .. } = std::mem::take(&mut rx.state) {
                rx.spare = buf;
            }
        }
    }
    n
}

/// What a read does with the bytes it finds.
pub(crate) enum ReadInto<'a, 'b> {
    Buf(&'a mut [u8]),
    Vectored(&'a mut [io::IoSliceMut<'b>]),
}

impl ReadInto<'_, '_> {
    fn len(&self) -> usize {
        match self {
            ReadInto::Buf(buf) => buf.len(),
            ReadInto::Vectored(bufs) => bufs.iter().map(|buf| buf.len()).sum(),
        }
    }

    fn copy_from(&mut self, mut data: &[u8]) -> usize {
        match self {
            ReadInto::Buf(buf) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                n
            }
            ReadInto::Vectored(bufs) => {
                let mut copied = 0;
                for buf in bufs.iter_mut() {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    data = &data[n..];
                    copied += n;
                    if data.is_empty() {
                        break;
                    }
                }
                copied
            }
        }
    }
}

impl Registration {
    /// The stream's ring state, if it reads (and its `WriteQueue` sends)
    /// through the ring.
    #[inline]
    pub(crate) fn ring_io(&self) -> Option<&RingIo> {
        self.io.ring()
    }

    fn driver(&self) -> &RingDriver {
        self.core
            .reactor
            .ring
            .as_ref()
            .expect("a ring stream on a ring reactor")
    }

    /// A read through the ring: copies out received bytes (consuming them
    /// unless `peek`), or arms a receive and waits.
    pub(crate) fn poll_ring_read(
        &self,
        ring_io: &RingIo,
        cx: &mut Context<'_>,
        mut into: ReadInto<'_, '_>,
        peek: bool,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        let want = into.len();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut rx = ring_io.rx.borrow_mut();
        match &mut rx.state {
            RxState::Filled { .. } => {
                if !self.core.take_io_budget(cx) {
                    return Poll::Pending;
                }
                Poll::Ready(Ok(take_filled(&mut rx, &mut into, peek)))
            }
            RxState::Eof { seen } => {
                *seen = true;
                Poll::Ready(Ok(0))
            }
            RxState::Failed(code) => {
                let code = *code;
                rx.state = RxState::Idle;
                Poll::Ready(Err(io::Error::from_raw_os_error(code)))
            }
            RxState::Armed(_) => {
                drop(rx);
                self.wait(cx, Direction::Read, key)
            }
            RxState::Idle => {
                if self.io.is_shut_down() {
                    return Poll::Ready(Err(shut_down_error()));
                }
                if rx.poll_first {
                    drop(rx);
                    std::task::ready!(self.poll_socket_ready(cx, Direction::Read, key))?;
                    ring_io.rx.borrow_mut().poll_first = false;
                    // Readable: the receive armed next takes the data, so
                    // the readiness seen is spent.
                    self.io.clear_ready(Direction::Read);
                    return self.poll_ring_read(ring_io, cx, into, peek, None);
                }
                let mut buf = std::mem::take(&mut rx.spare);
                // The read's own length, or more once receives have
                // filled their buffers (a stream in full flow).
                let size = rx.size.max(want).clamp(RX_MIN, RX_MAX);
                if buf.len() < size {
                    buf.resize(size, 0);
                }
                match self.driver().recv(
                    ring_io.fd,
                    buf,
                    self.token(Kind::Recv),
                    &self.io.queued_in,
                ) {
                    Ok(op) => rx.state = RxState::Armed(op),
                    Err(error) => return Poll::Ready(Err(error)),
                }
                drop(rx);
                self.wait(cx, Direction::Read, key)
            }
        }
    }

    /// `try_read` through the ring: `None` when nothing is received and no
    /// receive is armed (the caller then reads the socket itself).
    pub(crate) fn try_ring_read(
        &self,
        ring_io: &RingIo,
        mut into: ReadInto<'_, '_>,
    ) -> Option<io::Result<usize>> {
        let mut rx = ring_io.rx.borrow_mut();
        match &mut rx.state {
            RxState::Idle => None,
            RxState::Armed(_) => Some(Err(io::ErrorKind::WouldBlock.into())),
            RxState::Eof { seen } => {
                *seen = true;
                Some(Ok(0))
            }
            RxState::Failed(code) => {
                let code = *code;
                rx.state = RxState::Idle;
                Some(Err(io::Error::from_raw_os_error(code)))
            }
            RxState::Filled { .. } => {
                self.core.spend_io_budget();
                Some(Ok(take_filled(&mut rx, &mut into, false)))
            }
        }
    }

    /// Whether a read would find something (bytes, end of stream, an
    /// error) in the ring state; `None` when the ring has nothing to say
    /// (no receive armed), `Some(false)` when a receive is armed.
    pub(crate) fn ring_read_ready(&self, ring_io: &RingIo) -> Option<bool> {
        match ring_io.rx.borrow().state {
            RxState::Idle => None,
            RxState::Armed(_) => Some(false),
            _ => Some(true),
        }
    }

    /// [`poll_ready`](Registration::poll_ready) of a ring stream: reads are
    /// ready with something received (or the end, or an error), wait for an
    /// armed receive, and otherwise go by the socket's poll, as writes
    /// always do.
    pub(super) fn poll_ring_ready(
        &self,
        ring_io: &RingIo,
        cx: &mut Context<'_>,
        direction: Direction,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<()>> {
        let ready = match direction {
            Direction::Read => match self.ring_read_ready(ring_io) {
                Some(ready) => ready,
                None => return self.poll_socket_ready(cx, direction, key),
            },
            Direction::Write => return self.poll_socket_ready(cx, direction, key),
        };
        if !ready {
            return self.wait(cx, direction, key);
        }
        if !self.core.has_io_budget(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// The readiness bits the ring state adds to the socket's.
    pub(super) fn ring_readiness(&self, ring_io: &RingIo) -> u8 {
        let mut bits = 0;
        match ring_io.rx.borrow().state {
            RxState::Filled { .. } | RxState::Failed(_) => bits |= READABLE,
            RxState::Eof { .. } => bits |= READABLE | READ_CLOSED,
            _ => {}
        }
        bits
    }

    /// Arms the socket's poll in the ring if it is not yet: readiness was
    /// asked for.
    pub(super) fn ensure_polled(&self) -> io::Result<()> {
        let Some(ring_io) = self.io.ring() else {
            return Ok(());
        };
        if self.io.ring_poll.get().is_some() {
            return Ok(());
        }
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        let armed = self.driver().arm(
            ring_io.fd,
            interest,
            self.token(Kind::Poll),
            &self.io.queued_in,
        )?;
        self.io.ring_poll.set(Some(armed));
        Ok(())
    }

    /// Cancels the socket's poll (a connect is done with it); readiness is
    /// then unknown until it is asked for again.
    pub(crate) fn disarm_poll(&self) {
        if let Some(armed) = self.io.ring_poll.take() {
            self.driver().disarm(armed);
            let closed = READ_CLOSED | WRITE_CLOSED | SHUT_DOWN;
            self.io.readiness.set(self.io.readiness.get() & closed);
        }
    }

    /// Whether the ring holds bytes of the stream a `std` stream would not
    /// see: received and unread, a receive armed, or a `WriteQueue` send in
    /// flight.
    pub(crate) fn ring_holds_bytes(&self, ring_io: &RingIo) -> bool {
        matches!(
            ring_io.rx.borrow().state,
            RxState::Filled { .. } | RxState::Armed(_)
        ) || !matches!(*ring_io.queued.borrow(), QueuedSend::Idle)
    }

    /// Sends `bufs` (the first from `offset`) through the ring for a
    /// `WriteQueue`, which collects them with
    /// [`poll_queue_sent`](Self::poll_queue_sent). Waits (loosely) while an
    /// earlier queue's send is still in flight on the stream (a queue
    /// aborted with its send cancelled, not yet completed).
    pub(crate) fn poll_send_queued(
        &self,
        ring_io: &RingIo,
        cx: &mut Context<'_>,
        bufs: &mut Option<Vec<OwnedBuf>>,
        offset: usize,
    ) -> Poll<io::Result<OpId>> {
        if self.io.is_shut_down() {
            return Poll::Ready(Err(shut_down_error()));
        }
        let mut queued = ring_io.queued.borrow_mut();
        if let QueuedSend::InFlight(_) | QueuedSend::Abandoned(_) = *queued {
            drop(queued);
            return self.wait(cx, Direction::Write, None);
        }
        // An abandoned queue's outcome: its buffers go.
        let stale = std::mem::take(&mut *queued);
        let bufs = bufs.take().expect("buffers to send");
        let sent = self.driver().send_bufs(
            ring_io.fd,
            bufs,
            offset,
            self.token(Kind::QueueSend),
            &self.io.queued_in,
        );
        if let Ok(op) = sent {
            *queued = QueuedSend::InFlight(op);
        }
        drop(queued);
        drop(stale);
        Poll::Ready(sent)
    }

    /// The outcome of the `WriteQueue` send `op`, with its buffers; waits
    /// (loosely) until it completes.
    pub(crate) fn poll_queue_sent(
        &self,
        ring_io: &RingIo,
        cx: &mut Context<'_>,
        op: OpId,
    ) -> Poll<(io::Result<usize>, Vec<OwnedBuf>)> {
        let mut queued = ring_io.queued.borrow_mut();
        match std::mem::take(&mut *queued) {
            QueuedSend::Done(done, result, bufs) if done == op => {
                drop(queued);
                let result = match result {
                    Ok(n) => Ok(n as usize),
                    Err(code) => {
                        let error = io::Error::from_raw_os_error(code);
                        ring_io.note_send_error(&error);
                        Err(error)
                    }
                };
                Poll::Ready((result, bufs))
            }
            QueuedSend::InFlight(inflight) if inflight == op => {
                *queued = QueuedSend::InFlight(inflight);
                drop(queued);
                match self.wait::<()>(cx, Direction::Write, None) {
                    Poll::Ready(Err(error)) => Poll::Ready((Err(error), Vec::new())),
                    _ => Poll::Pending,
                }
            }
            other => {
                // Not this send's: it was cancelled with its stream's
                // registration, and its buffers are gone.
                *queued = other;
                Poll::Ready((Err(shut_down_error()), Vec::new()))
            }
        }
    }

    /// Cancels a `WriteQueue` send in flight (the queue was aborted); its
    /// buffers are dropped when the cancellation completes.
    pub(crate) fn cancel_queued_send(&self, ring_io: &RingIo, op: OpId) {
        let mut queued = ring_io.queued.borrow_mut();
        if matches!(*queued, QueuedSend::Done(done, ..) if done == op) {
            // Completed, not collected: its buffers go now.
            let done = std::mem::take(&mut *queued);
            drop(queued);
            drop(done);
            return;
        }
        if matches!(*queued, QueuedSend::InFlight(inflight) if inflight == op) {
            *queued = QueuedSend::Abandoned(op);
            drop(queued);
            self.driver().cancel(op);
            if !self.core.is_driving() {
                self.driver().flush();
            }
        }
    }
}

impl ScheduledIo {
    /// The ring state of a stream, for completions.
    pub(super) fn ring(&self) -> Option<&RingIo> {
        self.ring_io.as_deref()
    }
}
