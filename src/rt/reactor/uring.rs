//! The `IoUring` driver: the ring, and what its completions mean.
//!
//! A socket's operations in the ring are its multishot poll (armed at
//! registration for listeners, on first use of the readiness API for
//! streams; edge-triggered, like the `Poll` driver's epoll registration),
//! and a stream's receive and `WriteQueue` send ([`ring_io`](super::ring_io)).
//! Each carries a token naming its kind, the socket's slab key and the low
//! bits of its generation, so completions of a closed socket are dropped. A
//! poll the kernel ends while its socket is still registered is armed
//! again. Sources without a descriptor of their own (signal listeners) stay
//! on a nested mio poller, whose descriptor is itself polled through the
//! ring.
//!
//! One `io_uring_enter` per loop turn submits what the turn queued and
//! waits for, or collects, completions. Closing a socket cancels its
//! operations; until the cancellations are submitted they keep the socket
//! open, so those queued while the loop is not running are submitted at
//! once ([`RingDriver::flush`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::Interest;
use xev_uring::{OpId, Ring, RingWaker, EBADF, ECANCELED};

use super::{Reactor, ScheduledIo, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};
use crate::rt::task::TaskId;
use crate::rt::waiters::Wakers;

/// The token of the nested mio poller's own poll.
const NESTED_TOKEN: u64 = u64::MAX;

/// The most submissions one turn queues before the ring submits them
/// early; completions beyond twice this wait in the kernel (`NODROP`).
const MAX_ENTRIES: usize = 4096;

/// What a ring operation of a socket is, in the top bits of its token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Poll = 0,
    Recv = 1,
    QueueSend = 2,
}

const KIND_SHIFT: u32 = 62;
/// The generation bits a ring token keeps (the rest hold the kind).
const TOKEN_GENERATION: u64 = (1 << 30) - 1;

/// The ring token of a socket's operation: its kind, the low bits of the
/// socket's generation, its slab key.
pub(crate) fn token(kind: Kind, key: usize, generation: u32) -> u64 {
    (kind as u64) << KIND_SHIFT | (u64::from(generation) & TOKEN_GENERATION) << 32 | key as u64
}

fn kind_of(token: u64) -> Kind {
    match token >> KIND_SHIFT {
        0 => Kind::Poll,
        1 => Kind::Recv,
        _ => Kind::QueueSend,
    }
}

/// A socket's poll armed in the ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armed {
    op: OpId,
    fd: RawFd,
    events: u32,
}

/// One completion, copied out of the ring so that dispatch runs with the
/// ring released (a woken waker may close sockets).
struct Done {
    token: u64,
    op: OpId,
    result: Result<u32, i32>,
    more: bool,
    buf: Option<Vec<u8>>,
    bufs: Vec<xev_uring::OwnedBuf>,
}

pub(crate) struct RingDriver {
    ring: RefCell<Ring>,
    /// Completions of the current turn (kept to reuse the allocation).
    done: Cell<Vec<Done>>,
    /// The nested mio poller's descriptor (once created) and its poll in
    /// the ring.
    nested_fd: Cell<Option<RawFd>>,
    nested: Cell<Option<OpId>>,
}

impl RingDriver {
    /// A ring sized for `event_capacity` events per turn.
    pub(super) fn new(event_capacity: usize) -> io::Result<RingDriver> {
        let entries = event_capacity.clamp(8, MAX_ENTRIES).next_power_of_two();
        let ring = Ring::new(entries as u32)?;
        Ok(RingDriver {
            ring: RefCell::new(ring),
            done: Cell::new(Vec::with_capacity(entries)),
            nested_fd: Cell::new(None),
            nested: Cell::new(None),
        })
    }

    /// Polls the nested mio poller `poll` through the ring.
    pub(super) fn arm_nested(&self, poll: &mio::Poll) -> io::Result<()> {
        self.nested_fd.set(Some(poll.as_raw_fd()));
        self.rearm_nested()
    }

    fn rearm_nested(&self) -> io::Result<()> {
        let Some(fd) = self.nested_fd.get() else {
            return Ok(());
        };
        let op = self
            .ring
            .borrow_mut()
            .poll_raw(fd, xev_uring::POLLIN, NESTED_TOKEN)?;
        self.nested.set(Some(op));
        Ok(())
    }

    pub(super) fn waker(&self) -> RingWaker {
        self.ring.borrow().waker()
    }

    /// Queues an operation on a socket with `queue`, and notes in `queued`
    /// the submission it goes in with (see
    /// [`submit_before_close`](Self::submit_before_close)).
    fn queue_for(
        &self,
        queued: &Cell<u64>,
        queue: impl FnOnce(&mut Ring) -> io::Result<OpId>,
    ) -> io::Result<OpId> {
        let mut ring = self.ring.borrow_mut();
        let op = queue(&mut ring)?;
        queued.set(ring.submissions());
        Ok(op)
    }

    /// Queues a receive into `buf`, which the ring owns until it completes.
    pub(super) fn recv(
        &self,
        fd: RawFd,
        buf: Vec<u8>,
        token: u64,
        queued: &Cell<u64>,
    ) -> io::Result<OpId> {
        self.queue_for(queued, |ring| ring.recv_raw(fd, buf, token))
    }

    /// Submits now if an operation on a socket, whose last was queued at
    /// `queued`, has not gone to the kernel yet: the socket's descriptor is
    /// about to close, and the kernel resolves descriptors at submission.
    pub(super) fn submit_before_close(&self, queued: u64) {
        let mut ring = self.ring.borrow_mut();
        if ring.has_unsubmitted() && ring.submissions() == queued {
            if let Err(error) = ring.submit() {
                panic!("xev: submitting to the io_uring ring failed: {error}");
            }
        }
    }

    /// Queues a `sendmsg` of a `WriteQueue`'s buffers, which the ring owns
    /// until it completes.
    pub(super) fn send_bufs(
        &self,
        fd: RawFd,
        bufs: Vec<xev_uring::OwnedBuf>,
        offset: usize,
        token: u64,
        queued: &Cell<u64>,
    ) -> io::Result<OpId> {
        self.queue_for(queued, |ring| ring.send_bufs(fd, bufs, offset, token))
    }

    /// Cancels an operation (submitted with the loop's next turn).
    pub(super) fn cancel(&self, op: OpId) {
        if let Err(error) = self.ring.borrow_mut().cancel(op) {
            panic!("xev: queueing a cancellation in the io_uring ring failed: {error}");
        }
    }

    /// Arms a multishot poll of `fd` for `interest`, under `token`.
    pub(super) fn arm(
        &self,
        fd: RawFd,
        interest: Interest,
        token: u64,
        queued: &Cell<u64>,
    ) -> io::Result<Armed> {
        let mut events = xev_uring::POLLERR | xev_uring::POLLHUP;
        if interest.is_readable() {
            events |= xev_uring::POLLIN | xev_uring::POLLRDHUP;
        }
        if interest.is_writable() {
            events |= xev_uring::POLLOUT;
        }
        let op = self.queue_for(queued, |ring| ring.poll_raw(fd, events, token))?;
        Ok(Armed { op, fd, events })
    }

    /// Cancels a socket's poll (submitted with the loop's next turn).
    pub(super) fn disarm(&self, armed: Armed) {
        self.cancel(armed.op);
    }

    /// Submits what is queued, without waiting.
    pub(super) fn flush(&self) {
        let mut ring = self.ring.borrow_mut();
        if ring.has_unsubmitted() {
            if let Err(error) = ring.submit() {
                panic!("xev: submitting to the io_uring ring failed: {error}");
            }
        }
    }

    /// The driver's turn: one `io_uring_enter` that submits and waits (at
    /// most `timeout`), then the completions' readiness, dispatched as the
    /// `Poll` driver does.
    pub(super) fn poll(
        &self,
        reactor: &Reactor,
        timeout: Option<Duration>,
        wake_task: &impl Fn(TaskId),
    ) {
        let mut done = self.done.take();
        {
            let mut ring = self.ring.borrow_mut();
            if let Err(error) = ring.wait(timeout) {
                panic!("xev: waiting on the io_uring ring failed: {error}");
            }
            let reaped = ring.complete(|completion| {
                done.push(Done {
                    token: completion.token,
                    op: completion.op,
                    result: completion
                        .result
                        .map_err(|error| error.raw_os_error().unwrap_or(-1)),
                    more: completion.more,
                    buf: completion.buf,
                    bufs: completion.bufs,
                })
            });
            if let Err(error) = reaped {
                panic!("xev: reaping the io_uring ring failed: {error}");
            }
        }
        let mut wakers = Wakers::default();
        let mut ios = reactor.ios.borrow();
        for item in done.drain(..) {
            if item.token == NESTED_TOKEN {
                if !item.more && self.nested.get() == Some(item.op) {
                    self.nested.set(None);
                }
                drop(ios);
                reactor.poll_mio(Some(Duration::ZERO), wake_task);
                if self.nested.get().is_none() {
                    if let Err(error) = self.rearm_nested() {
                        panic!("xev: arming a poll in the io_uring ring failed: {error}");
                    }
                }
                ios = reactor.ios.borrow();
                continue;
            }
            let key = item.token as u32 as usize;
            let Some(io) = ios.get(key).filter(|io| {
                u64::from(io.generation) & TOKEN_GENERATION == (item.token >> 32) & TOKEN_GENERATION
            }) else {
                continue;
            };
            match kind_of(item.token) {
                Kind::Recv => {
                    if let Some(ring_io) = io.ring() {
                        ring_io.received(item.op, item.result, item.buf);
                        io.readers.wake_all(wake_task, &mut wakers);
                    }
                }
                Kind::QueueSend => {
                    if let Some(ring_io) = io.ring() {
                        ring_io.queue_sent(item.op, item.result, item.bufs);
                        io.writers.wake_all(wake_task, &mut wakers);
                    }
                }
                Kind::Poll => {
                    let ready = self.polled(io, item.token, item.op, item.result, item.more);
                    io.set_ready(ready, wake_task, &mut wakers);
                }
            }
            if !wakers.is_empty() {
                drop(ios);
                wakers.wake_all();
                ios = reactor.ios.borrow();
            }
        }
        drop(ios);
        self.done.set(done);
    }
}

impl RingDriver {
    /// A poll completed for `io`: the readiness it reports; a poll the
    /// kernel ended is armed again, unless the socket is gone from under it.
    fn polled(
        &self,
        io: &ScheduledIo,
        token: u64,
        op: OpId,
        result: Result<u32, i32>,
        more: bool,
    ) -> u8 {
        let armed = io.ring_poll.get().filter(|armed| armed.op == op);
        if let (false, Some(armed)) = (more, armed) {
            io.ring_poll.set(None);
            if !matches!(result, Err(code) if code == ECANCELED || code == EBADF) {
                let rearmed = self.queue_for(&io.queued_in, |ring| {
                    ring.poll_raw(armed.fd, armed.events, token)
                });
                match rearmed {
                    Ok(op) => io.ring_poll.set(Some(Armed { op, ..armed })),
                    Err(error) => panic!("xev: arming a poll in the io_uring ring failed: {error}"),
                }
            }
        }
        match result {
            Ok(events) => readiness(events),
            // Cancelled: the socket is being closed or handed back.
            Err(code) if code == ECANCELED => 0,
            // Let both directions try their syscall, which reports it.
            Err(_) => READABLE | WRITABLE,
        }
    }
}

/// The readiness bits for poll events, with the meanings mio gives epoll's.
fn readiness(events: u32) -> u8 {
    let mut ready = 0;
    if events & xev_uring::POLLIN != 0 {
        ready |= READABLE;
    }
    if events & xev_uring::POLLOUT != 0 {
        ready |= WRITABLE;
    }
    let hup = events & xev_uring::POLLHUP != 0;
    let err = events & xev_uring::POLLERR != 0;
    if hup || (events & xev_uring::POLLIN != 0 && events & xev_uring::POLLRDHUP != 0) {
        ready |= READ_CLOSED;
    }
    if hup || (events & xev_uring::POLLOUT != 0 && err) || events == xev_uring::POLLERR {
        ready |= WRITE_CLOSED;
    }
    if err {
        ready |= READABLE | WRITABLE;
    }
    ready
}
