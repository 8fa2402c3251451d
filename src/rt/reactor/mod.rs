//! The reactor: a `mio::Poll` and the readiness of every registered socket.
//!
//! Each registered socket has a [`ScheduledIo`]: the readiness the reactor
//! has seen and not yet been told is gone, and a list of waiters per
//! direction ([`WaiterList`]: any number of tasks and wakers, all woken by
//! readiness; a future's entry goes when the future is dropped). The
//! socket's [`Registration`] and the reactor's slab share it (an `Rc`), so an
//! operation reaches it directly and only event dispatch looks it up, by
//! token. The mio token is the slab key plus a generation, so an event
//! still queued for a socket that was closed, and whose fd and slot were
//! reused, is recognised as stale and dropped.
//!
//! Sockets are registered once, edge-triggered, for both directions. An
//! operation first checks the cached readiness; only when the syscall says
//! `WouldBlock`, or a read or send moves fewer bytes than asked (the socket's
//! buffer is then drained or full, and the kernel signals the next change as
//! a new edge), is that direction's readiness cleared and a waiter added. So
//! readiness that arrives while an operation is in flight is never lost, and
//! no `epoll_ctl` is needed per operation.
//!
//! "Short" counts only what one call can move: at most `IOV_MAX` slices
//! (the stream passes no more) and at most Linux's `MAX_RW_COUNT` bytes, so
//! a capped call never clears readiness while data or room remains.
//!
//! Waiting for readiness (`readable()`, `ready()`) takes none of the task's
//! cooperative budget but yields once it is spent; transfers, including the
//! `try_*` operations, spend it.
//!
//! Two drivers deliver the readiness ([`Backend`](super::Backend)): mio
//! (`Poll`: epoll, kqueue), or an io_uring ring (`IoUring`, in
//! [`uring`]) in which each socket has a multishot poll armed, edge-triggered
//! like epoll's registration. Everything above the driver (readiness bits,
//! waiters, the transfer rule) is shared.
//!
//! Everything here runs on the runtime's thread. Tasks are queued by id
//! during dispatch; other wakers are woken after each event with the slab
//! released, so a waker that drops a socket cannot hit a `RefCell` already
//! borrowed, and that socket's later events in the batch wake nobody.

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use mio::{Events, Token};
use slab::Slab;

use super::backend::Backend;
use super::task::TaskId;
use super::waiters::{WaiterList, Wakers};

mod registration;
#[cfg(target_os = "linux")]
mod ring_io;
#[cfg(target_os = "linux")]
mod uring;

#[cfg(target_os = "linux")]
pub(crate) use ring_io::ReadInto;

pub(crate) use registration::{Registration, Waiting};

/// Low bits of a token hold the slab key, high bits the generation.
const KEY_BITS: u32 = if usize::BITS >= 64 { 32 } else { 24 };
const KEY_MASK: usize = (1 << KEY_BITS) - 1;
/// Generations wrap within the bits left above the key.
const GENERATION_MASK: u32 = if usize::BITS >= 64 {
    u32::MAX
} else {
    (1 << (usize::BITS - KEY_BITS)) - 1
};
/// The most bytes one read or send moves on any platform xev runs on
/// (Linux caps every transfer at `MAX_RW_COUNT`, 2 GiB less a page): a
/// larger request that moves this much says nothing about the buffer.
const MAX_TRANSFER: usize = 0x7fff_f000;
/// The token of the eventfd that other threads use to interrupt `poll`.
const UNPARK_TOKEN: Token = Token(usize::MAX);

pub(crate) const READABLE: u8 = 0b0001;
pub(crate) const WRITABLE: u8 = 0b0010;
pub(crate) const READ_CLOSED: u8 = 0b0100;
pub(crate) const WRITE_CLOSED: u8 = 0b1000;
/// Set, alone, on every socket when the runtime shuts down: operations then
/// fail instead of waiting for events that will never come. Checked only
/// once an operation finds its direction not ready.
const SHUT_DOWN: u8 = 0b1_0000;

/// The direction of an I/O operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The readiness bits that let an operation in this direction proceed.
    /// Closed bits are never cleared: a closed direction never blocks again.
    fn mask(self) -> u8 {
        match self {
            Direction::Read => READABLE | READ_CLOSED,
            Direction::Write => WRITABLE | WRITE_CLOSED,
        }
    }

    /// The bit cleared when an operation sees `WouldBlock`.
    fn ready_bit(self) -> u8 {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// A registered socket's readiness and waiters, shared by the reactor's slab
/// and the socket's [`Registration`]: an operation reaches it without a
/// slab lookup.
struct ScheduledIo {
    generation: u32,
    readiness: Cell<u8>,
    readers: WaiterList,
    writers: WaiterList,
    /// The socket's multishot poll in the ring (`IoUring` only).
    #[cfg(target_os = "linux")]
    ring_poll: Cell<Option<uring::Armed>>,
    /// A stream's reads and sends through the ring (`IoUring` only).
    #[cfg(target_os = "linux")]
    ring_io: Option<Box<ring_io::RingIo>>,
    /// The ring's submission count when an operation on this socket was
    /// last queued (`IoUring` only).
    #[cfg(target_os = "linux")]
    queued_in: Cell<u64>,
}

impl ScheduledIo {
    #[inline]
    fn waiters(&self, direction: Direction) -> &WaiterList {
        match direction {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    /// Whether an operation in `direction` may proceed.
    #[inline]
    fn is_ready(&self, direction: Direction) -> bool {
        self.readiness.get() & direction.mask() != 0
    }

    /// Whether the runtime has shut down (see [`SHUT_DOWN`]).
    fn is_shut_down(&self) -> bool {
        self.readiness.get() & SHUT_DOWN != 0
    }

    /// Forgets `direction`'s readiness until epoll's next edge.
    #[inline]
    fn clear_ready(&self, direction: Direction) {
        self.readiness
            .set(self.readiness.get() & !direction.ready_bit());
    }

    /// Adds `ready` to the readiness and takes every waiter of each
    /// direction it concerns.
    #[inline(always)]
    fn set_ready(&self, ready: u8, wake_task: &impl Fn(TaskId), wakers: &mut Wakers) {
        self.readiness.set(self.readiness.get() | ready);
        if ready & Direction::Read.mask() != 0 {
            self.readers.wake_all(wake_task, wakers);
        }
        if ready & Direction::Write.mask() != 0 {
            self.writers.wake_all(wake_task, wakers);
        }
    }
}

/// What wakes the reactor from another thread.
pub(crate) enum Unpark {
    Poll(mio::Waker),
    #[cfg(target_os = "linux")]
    Ring(xev_uring::RingWaker),
}

impl Unpark {
    /// Interrupts the reactor's current or next wait.
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self {
            Unpark::Poll(waker) => waker.wake(),
            #[cfg(target_os = "linux")]
            Unpark::Ring(waker) => waker.wake(),
        }
    }
}

pub(crate) struct Reactor {
    /// The poller of the `Poll` backend; under `IoUring`, the poller of
    /// sources that expose no descriptor of their own (signal listeners),
    /// itself polled through the ring.
    /// Created with the reactor under `Poll`, on first use under `IoUring`.
    poll: OnceCell<RefCell<mio::Poll>>,
    events: RefCell<Events>,
    #[cfg(target_os = "linux")]
    ring: Option<uring::RingDriver>,
    ios: RefCell<Slab<Rc<ScheduledIo>>>,
    /// Tells successive sockets in the same slab slot apart.
    next_generation: Cell<u32>,
    /// Set when the runtime is dropped: sockets registered from then on
    /// start shut down.
    shut_down: Cell<bool>,
}

impl Reactor {
    /// A reactor driven by `backend` (`Poll` or `IoUring`, as chosen).
    pub(crate) fn new(backend: Backend, event_capacity: usize) -> io::Result<Reactor> {
        let poll = OnceCell::new();
        #[cfg(target_os = "linux")]
        let ring = match backend {
            Backend::IoUring => Some(uring::RingDriver::new(event_capacity)?),
            _ => None,
        };
        #[cfg(not(target_os = "linux"))]
        let _ = backend;
        #[cfg(target_os = "linux")]
        let uses_mio = ring.is_none();
        #[cfg(not(target_os = "linux"))]
        let uses_mio = true;
        if uses_mio {
            let _ = poll.set(RefCell::new(mio::Poll::new()?));
        }
        Ok(Reactor {
            poll,
            events: RefCell::new(Events::with_capacity(event_capacity)),
            #[cfg(target_os = "linux")]
            ring,
            ios: RefCell::new(Slab::new()),
            next_generation: Cell::new(0),
            shut_down: Cell::new(false),
        })
    }

    /// What interrupts `poll` from any thread.
    pub(crate) fn unpark(&self) -> io::Result<Unpark> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            return Ok(Unpark::Ring(ring.waker()));
        }
        Ok(Unpark::Poll(mio::Waker::new(
            self.mio()?.borrow().registry(),
            UNPARK_TOKEN,
        )?))
    }

    /// Waits for events (at most `timeout`) and wakes the tasks they concern;
    /// `wake_task` queues an xev task by id.
    pub(crate) fn poll(&self, timeout: Option<Duration>, wake_task: impl Fn(TaskId)) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            return ring.poll(self, timeout, &wake_task);
        }
        self.poll_mio(timeout, &wake_task);
    }

    /// Submits what the ring has queued (new polls, cancellations) without
    /// waiting, when the loop will not turn soon: `block_on` returns, or a
    /// socket is closed outside it. Nothing to do for `Poll`.
    pub(crate) fn flush(&self) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            ring.flush();
        }
    }

    /// Polls mio: the `Poll` backend's wait, and under `IoUring` the
    /// collection of the nested poller's events (with a zero timeout).
    fn poll_mio(&self, timeout: Option<Duration>, wake_task: &impl Fn(TaskId)) {
        let Some(poll) = self.poll.get() else {
            return;
        };
        let mut events = self.events.borrow_mut();
        match poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return,
            Err(error) => panic!("xev: polling the reactor for events failed: {error}"),
        }
        // Tasks are queued at once; other wakers are woken after each event,
        // with the slab released: a waker may drop a socket, whose events
        // later in the batch then find its slot empty (or reused, with a new
        // generation) and wake nobody.
        let mut wakers = Wakers::default();
        let mut ios = self.ios.borrow();
        for event in events.iter() {
            let token = event.token();
            if token == UNPARK_TOKEN {
                continue;
            }
            let mut ready = 0;
            if event.is_readable() {
                ready |= READABLE;
            }
            if event.is_writable() {
                ready |= WRITABLE;
            }
            if event.is_read_closed() {
                ready |= READ_CLOSED;
            }
            if event.is_write_closed() {
                ready |= WRITE_CLOSED;
            }
            if event.is_error() {
                // Let both directions try their syscall, which reports the
                // error.
                ready |= READABLE | WRITABLE;
            }
            if let Some(io) = self.lookup(&ios, token.0) {
                io.set_ready(ready, wake_task, &mut wakers);
            }
            if !wakers.is_empty() {
                drop(ios);
                wakers.wake_all();
                ios = self.ios.borrow();
            }
        }
    }

    /// The mio poller: `Poll`'s own, or the nested one of `IoUring`,
    /// created and armed in the ring on first use.
    fn mio(&self) -> io::Result<&RefCell<mio::Poll>> {
        if let Some(poll) = self.poll.get() {
            return Ok(poll);
        }
        let poll = mio::Poll::new()?;
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            ring.arm_nested(&poll)?;
        }
        Ok(self.poll.get_or_init(|| RefCell::new(poll)))
    }

    /// The socket a token names, unless it was closed since (its slot empty
    /// or reused under a new generation).
    fn lookup<'a>(
        &self,
        ios: &'a Slab<Rc<ScheduledIo>>,
        token: usize,
    ) -> Option<&'a Rc<ScheduledIo>> {
        ios.get(token & KEY_MASK)
            .filter(|io| io.generation == (token >> KEY_BITS) as u32)
    }

    /// Fails every pending and future operation on this reactor's sockets.
    pub(crate) fn shutdown(&self) {
        self.shut_down.set(true);
        // Tasks are gone by now; other wakers belong to whoever polls the
        // socket next, who then sees the shutdown error.
        let mut wakers = Wakers::default();
        for (_, io) in self.ios.borrow().iter() {
            io.set_ready(SHUT_DOWN | READ_CLOSED | WRITE_CLOSED, &|_| {}, &mut wakers);
            io.readiness.set(SHUT_DOWN);
        }
        wakers.wake_all();
    }

    /// How many sockets are registered.
    pub(crate) fn registrations(&self) -> usize {
        self.ios.borrow().len()
    }
}

pub(super) fn wrong_runtime_error() -> io::Error {
    io::Error::other(
        "xev: this socket belongs to another xev runtime than the one polling it (or none is \
         running); a socket must be used inside `block_on` of the runtime it was created on",
    )
}

pub(super) fn shut_down_error() -> io::Error {
    io::Error::other("the xev runtime this socket belongs to has been shut down")
}
