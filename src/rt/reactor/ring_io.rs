//! A stream's reads and sends through the io_uring ring (`IoUring` only).
//!
//! **Receive.** A read that finds nothing received arms one `RECV` into a
//! buffer the runtime owns (the ring holds it while the kernel may write
//! it); its completion wakes the readers, and reads copy out of it (one
//! `memcpy`). A read future dropped meanwhile leaves the receive armed: the
//! bytes wait in the buffer for the next read, so nothing is lost and
//! `read` stays cancel safe.
//!
//! **Send.** A write copies its bytes into the stream's send buffer and
//! returns; at most one `SEND` is in flight per stream, from a buffer the
//! ring owns, and its completion starts the next with what accumulated.
//! At most [`TX_LIMIT`] bytes wait per stream: beyond that a write waits,
//! which is the backpressure `Poll` gets from the kernel's buffer. A send
//! error is kept and returned by every later write and flush; `flush`
//! waits until the kernel has taken every byte; a write-side shutdown
//! waits for them too (the peer reads all bytes, then end of stream).
//!
//! **Readiness.** The readiness API (`readable`, `try_read`, `ready`,
//! `try_io`) sees the receive buffer first; with nothing received and no
//! receive armed, it falls back to a poll of the socket, armed in the ring
//! on first use. Writes are ready whenever the send buffer has room.
//!
//! All submissions go in with the loop's next `io_uring_enter`, so a turn
//! in which many streams read and write costs one system call.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::os::fd::{OwnedFd, RawFd};
use std::task::{Context, Poll};

use xev_uring::{OpId, ECONNRESET};

use super::registration::Registration;
use super::uring::{Kind, RingDriver};
use super::{
    shut_down_error, Direction, ScheduledIo, READABLE, READ_CLOSED, SHUT_DOWN, WRITABLE,
    WRITE_CLOSED,
};
use crate::rt::waiters::WaitKey;

/// The most bytes a stream's writes may have accepted and the kernel not
/// yet taken, unless its `SO_SNDBUF` was set ([`RingIo::set_tx_limit`]):
/// then that size, so a small send buffer still makes writes short and
/// pushes the rest to a `WriteQueue`, as under `Poll`.
pub(crate) const TX_LIMIT: usize = 256 * 1024;
/// The receive buffer's size bounds: a read asks for its own length,
/// within these.
const RX_MIN: usize = 4 * 1024;
const RX_MAX: usize = 64 * 1024;
/// Send buffers kept between sends are at most this large.
const TX_KEEP: usize = 64 * 1024;

/// The ring-side state of one stream.
pub(crate) struct RingIo {
    pub(super) fd: RawFd,
    /// How many bytes writes may have accepted and the kernel not yet
    /// taken.
    tx_limit: Cell<usize>,
    rx: RefCell<Rx>,
    tx: RefCell<Tx>,
}

#[derive(Default)]
struct Rx {
    state: RxState,
    /// The buffer for the next receive, kept between receives.
    spare: Vec<u8>,
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

#[derive(Default)]
struct Tx {
    /// Bytes accepted by writes and not yet handed to the kernel.
    pending: Vec<u8>,
    /// The send in flight: its id and how many of its bytes are not yet
    /// sent.
    inflight: Option<(OpId, usize)>,
    /// A send buffer kept for reuse.
    spare: Vec<u8>,
    /// The errno of a failed send: every later write and flush fails so.
    error: Option<i32>,
    /// The write side is shut down (or will be, once the bytes are sent).
    shut: bool,
    /// The shutdown waits for the bytes before it.
    shutdown_queued: bool,
    /// The stream was dropped with bytes still to send: the socket, kept
    /// open until they are sent.
    lingering: Option<OwnedFd>,
}

impl Tx {
    fn queued(&self) -> usize {
        self.pending.len() + self.inflight.map_or(0, |(_, left)| left)
    }

    fn is_busy(&self) -> bool {
        self.inflight.is_some() || !self.pending.is_empty()
    }
}

impl RingIo {
    pub(super) fn new(fd: RawFd) -> RingIo {
        RingIo {
            fd,
            tx_limit: Cell::new(TX_LIMIT),
            rx: RefCell::default(),
            tx: RefCell::default(),
        }
    }

    /// Bounds what writes accept to `bytes` (the socket's `SO_SNDBUF`
    /// after the user set it).
    pub(crate) fn set_tx_limit(&self, bytes: usize) {
        self.tx_limit.set(bytes.max(1));
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
            Ok(0) if self.tx.borrow().error == Some(ECONNRESET) => {
                rx.spare = buf;
                RxState::Failed(ECONNRESET)
            }
            Ok(0) => {
                rx.spare = buf;
                RxState::Eof { seen: false }
            }
            Ok(n) => RxState::Filled {
                buf,
                start: 0,
                end: n as usize,
            },
            Err(code) => {
                rx.spare = buf;
                if code == xev_uring::ECANCELED {
                    RxState::Idle
                } else {
                    RxState::Failed(code)
                }
            }
        };
    }

    /// A send completed: resubmits the rest of a short one, or starts the
    /// next with what accumulated, or the shutdown that waited for it.
    /// Returns whether the stream's lingering socket may now close.
    pub(super) fn sent(
        &self,
        ring: &RingDriver,
        token: u64,
        op: OpId,
        result: Result<u32, i32>,
        buf: Option<Vec<u8>>,
        queued: &Cell<u64>,
    ) -> bool {
        let mut tx = self.tx.borrow_mut();
        let Some((inflight, left)) = tx.inflight else {
            return false;
        };
        if inflight != op {
            return false;
        }
        tx.inflight = None;
        let mut buf = buf.unwrap_or_default();
        match result {
            Ok(n) if (n as usize) < left && n > 0 => {
                // A short send: the rest goes next, before anything newer.
                let start = buf.len() - left + n as usize;
                match ring.send(self.fd, buf, start, token, queued) {
                    Ok(op) => tx.inflight = Some((op, left - n as usize)),
                    Err(error) => fail(&mut tx, error.raw_os_error().unwrap_or(xev_uring::EPIPE)),
                }
                return false;
            }
            Ok(_) => {
                if buf.capacity() <= TX_KEEP && tx.spare.capacity() < buf.capacity() {
                    buf.clear();
                    tx.spare = buf;
                }
            }
            Err(code) if code == xev_uring::ECANCELED => return tx.lingering.is_some(),
            Err(code) => {
                fail(&mut tx, code);
                // A reset that a receive reported as a plain end of stream
                // (the send took the error first): tell the reader.
                let mut rx = self.rx.borrow_mut();
                if code == ECONNRESET && matches!(rx.state, RxState::Eof { seen: false }) {
                    rx.state = RxState::Failed(ECONNRESET);
                }
            }
        }
        if !tx.pending.is_empty() {
            self.start_send(ring, &mut tx, token, queued);
            return false;
        }
        if tx.shutdown_queued && tx.error.is_none() {
            tx.shutdown_queued = false;
            let _ = ring.shutdown(self.fd, token, queued);
        }
        tx.lingering.is_some()
    }

    fn start_send(&self, ring: &RingDriver, tx: &mut Tx, token: u64, queued: &Cell<u64>) {
        let spare = std::mem::take(&mut tx.spare);
        let buf = std::mem::replace(&mut tx.pending, spare);
        let len = buf.len();
        match ring.send(self.fd, buf, 0, token, queued) {
            Ok(op) => tx.inflight = Some((op, len)),
            Err(error) => fail(tx, error.raw_os_error().unwrap_or(xev_uring::EPIPE)),
        }
    }

    /// Whether a dropped stream must stay open to send what its writes
    /// accepted; if so, keeps `socket` (a duplicate of its descriptor)
    /// until then.
    pub(super) fn linger(&self, socket: impl FnOnce() -> io::Result<OwnedFd>) -> bool {
        let mut tx = self.tx.borrow_mut();
        if !tx.is_busy() || tx.error.is_some() {
            return false;
        }
        match socket() {
            Ok(fd) => {
                tx.lingering = Some(fd);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the stream was dropped and stays open only to send what its
    /// writes accepted.
    pub(super) fn is_lingering(&self) -> bool {
        self.tx.borrow().lingering.is_some()
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

fn fail(tx: &mut Tx, code: i32) {
    tx.error = Some(code);
    tx.pending = Vec::new();
    tx.shutdown_queued = false;
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
    /// The stream's ring state, if it reads and sends through the ring.
    #[inline]
    pub(crate) fn ring_io(&self) -> Option<&RingIo> {
        self.io.ring_io.as_deref()
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
                let mut buf = std::mem::take(&mut rx.spare);
                let size = want.clamp(RX_MIN, RX_MAX);
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
    /// armed receive, and otherwise go by the socket's poll; writes are
    /// ready while the send buffer has room.
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
            Direction::Write => self.ring_write_ready(ring_io),
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
        if self.ring_write_ready(ring_io) {
            bits |= WRITABLE;
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

    /// Whether the stream still holds bytes a `std` stream would not see:
    /// received and unread, or accepted by writes and not yet sent.
    pub(crate) fn ring_holds_bytes(&self, ring_io: &RingIo) -> bool {
        matches!(
            ring_io.rx.borrow().state,
            RxState::Filled { .. } | RxState::Armed(_)
        ) || ring_io.tx.borrow().is_busy()
    }

    /// Whether a write would not wait.
    pub(crate) fn ring_write_ready(&self, ring_io: &RingIo) -> bool {
        let tx = ring_io.tx.borrow();
        tx.error.is_some() || tx.shut || tx.queued() < ring_io.tx_limit.get()
    }

    /// A write through the ring: copies what fits into the send buffer and
    /// starts a send if none is in flight; waits while the buffer is full.
    pub(crate) fn poll_ring_write(
        &self,
        ring_io: &RingIo,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        if !self.ring_write_ready(ring_io) {
            return self.wait(cx, Direction::Write, key);
        }
        if !self.core.take_io_budget(cx) {
            return Poll::Pending;
        }
        match self.try_ring_write(ring_io, bufs) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.wait(cx, Direction::Write, key)
            }
            result => Poll::Ready(result),
        }
    }

    /// `try_write` through the ring.
    pub(crate) fn try_ring_write(
        &self,
        ring_io: &RingIo,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let mut tx = ring_io.tx.borrow_mut();
        if let Some(code) = tx.error {
            return Err(io::Error::from_raw_os_error(code));
        }
        if tx.shut {
            return Err(io::Error::from_raw_os_error(xev_uring::EPIPE));
        }
        if self.io.is_shut_down() {
            return Err(shut_down_error());
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let room = ring_io.tx_limit.get().saturating_sub(tx.queued());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut left = room.min(total);
        let taken = left;
        for buf in bufs {
            let n = buf.len().min(left);
            tx.pending.extend_from_slice(&buf[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        if tx.inflight.is_none() {
            ring_io.start_send(
                self.driver(),
                &mut tx,
                self.token(Kind::Send),
                &self.io.queued_in,
            );
        }
        Ok(taken)
    }

    /// Waits until the kernel has taken every byte the writes accepted.
    pub(crate) fn poll_ring_flush(
        &self,
        ring_io: &RingIo,
        cx: &mut Context<'_>,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<()>> {
        let tx = ring_io.tx.borrow();
        if let Some(code) = tx.error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(code)));
        }
        if !tx.is_busy() {
            return Poll::Ready(Ok(()));
        }
        drop(tx);
        self.wait(cx, Direction::Write, key)
    }

    /// Shuts the write side down after the bytes the writes accepted:
    /// `true` if that is now queued, `false` if nothing waits to be sent
    /// (the caller shuts down at once).
    pub(crate) fn ring_shutdown_write(&self, ring_io: &RingIo) -> bool {
        let mut tx = ring_io.tx.borrow_mut();
        tx.shut = true;
        if tx.is_busy() && tx.error.is_none() {
            tx.shutdown_queued = true;
            return true;
        }
        false
    }
}

impl ScheduledIo {
    /// The ring state of a stream, for completions.
    pub(super) fn ring(&self) -> Option<&RingIo> {
        self.ring_io.as_deref()
    }
}
