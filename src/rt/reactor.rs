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
//! Everything here runs on the runtime's thread. Tasks are queued by id
//! during dispatch; other wakers are woken after each event with the slab
//! released, so a waker that drops a socket cannot hit a `RefCell` already
//! borrowed, and that socket's later events in the batch wake nobody.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use mio::event::Source;
use mio::{Events, Interest, Token};
use slab::Slab;

use super::context;
use super::runtime::Core;
use super::task::TaskId;
use super::waiters::{WaitKey, WaiterList, Wakers};

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

pub(crate) struct Reactor {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    ios: RefCell<Slab<Rc<ScheduledIo>>>,
    /// Tells successive sockets in the same slab slot apart.
    next_generation: Cell<u32>,
    /// Set when the runtime is dropped: sockets registered from then on
    /// start shut down.
    shut_down: Cell<bool>,
}

impl Reactor {
    pub(crate) fn new(event_capacity: usize) -> io::Result<Reactor> {
        Ok(Reactor {
            poll: RefCell::new(mio::Poll::new()?),
            events: RefCell::new(Events::with_capacity(event_capacity)),
            ios: RefCell::new(Slab::new()),
            next_generation: Cell::new(0),
            shut_down: Cell::new(false),
        })
    }

    /// A waker that interrupts `poll` from any thread.
    pub(crate) fn waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(self.poll.borrow().registry(), UNPARK_TOKEN)
    }

    /// Waits for events (at most `timeout`) and wakes the tasks they concern;
    /// `wake_task` queues an xev task by id.
    pub(crate) fn poll(&self, timeout: Option<Duration>, wake_task: impl Fn(TaskId)) {
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
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
            if let Some(io) = ios.get(token.0 & KEY_MASK) {
                if io.generation == (token.0 >> KEY_BITS) as u32 {
                    io.set_ready(ready, &wake_task, &mut wakers);
                }
            }
            if !wakers.is_empty() {
                drop(ios);
                wakers.wake_all();
                ios = self.ios.borrow();
            }
        }
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

/// A socket registered with the current runtime's reactor, for both
/// directions.
///
/// Dropping it frees its readiness slot. The socket itself need not be
/// deregistered from epoll: closing its fd does that, and any event still
/// queued for it carries a stale generation.
pub(crate) struct Registration {
    core: Rc<Core>,
    io: Rc<ScheduledIo>,
    key: usize,
}

impl Registration {
    /// Registers `source` with the current runtime.
    ///
    /// # Panics
    /// Outside a runtime; `what` names the caller in the message.
    pub(crate) fn new(
        source: &mut impl Source,
        interest: Interest,
        what: &str,
    ) -> io::Result<Registration> {
        let core = context::current(what);
        let reactor = &core.reactor;
        let generation = reactor.next_generation.get();
        reactor
            .next_generation
            .set(generation.wrapping_add(1) & GENERATION_MASK);
        let io = Rc::new(ScheduledIo {
            generation,
            readiness: Cell::new(if reactor.shut_down.get() {
                SHUT_DOWN
            } else {
                0
            }),
            readers: WaiterList::default(),
            writers: WaiterList::default(),
        });
        let key = {
            let mut ios = reactor.ios.borrow_mut();
            let entry = ios.vacant_entry();
            let key = entry.key();
            if key > KEY_MASK {
                return Err(io::Error::other(
                    "xev: too many sockets registered with one runtime",
                ));
            }
            let token = Token(key | (generation as usize) << KEY_BITS);
            reactor
                .poll
                .borrow()
                .registry()
                .register(source, token, interest)?;
            entry.insert(io.clone());
            key
        };
        Ok(Registration { core, io, key })
    }

    /// Ready if the last operation in `direction` did not see `WouldBlock`
    /// or an event came since; otherwise waits (see [`wait`](Self::wait)).
    ///
    /// Waiting for readiness takes none of the task's I/O budget (only
    /// transfers do), but yields once the budget is spent: a loop of
    /// `writable()` and `try_write` still gives the other tasks their turn.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<()>> {
        if self.io.is_ready(direction) {
            if !self.core.has_io_budget(cx) {
                return Poll::Pending;
            }
            return Poll::Ready(Ok(()));
        }
        self.wait(cx, direction, key)
    }

    /// The slow path of every operation: fails if the runtime has shut down
    /// or is not the one polling, else adds who polls to `direction`'s
    /// waiters and is pending.
    ///
    /// `key` is the caller's place in the list, kept until it is given back
    /// with [`release`](Self::release) (a future's); `None` waits loosely,
    /// for callers with nowhere to keep one (`poll_*` methods).
    ///
    /// The common case, a future of an xev task waiting alone, is inline;
    /// the rest is in [`wait_any`](Self::wait_any).
    #[inline(always)]
    fn wait<T>(
        &self,
        cx: &Context<'_>,
        direction: Direction,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<T>> {
        match key {
            Some(key) => {
                // A task of this runtime is being polled, so the runtime is
                // running, not shut down (shutdown only drops tasks): no
                // shut-down check is needed before waiting.
                if let Some(task) = self.core.running_task(cx.waker()) {
                    if self.io.waiters(direction).wait_task(key, task) {
                        return Poll::Pending;
                    }
                }
                self.wait_any(cx, direction, Some(key))
            }
            None => self.wait_any(cx, direction, None),
        }
    }

    /// [`wait`](Self::wait), for every case.
    #[inline(never)]
    fn wait_any<T>(
        &self,
        cx: &Context<'_>,
        direction: Direction,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<T>> {
        if self.io.is_shut_down() {
            return Poll::Ready(Err(shut_down_error()));
        }
        let task = self.core.running_task(cx.waker());
        // A task of this runtime's is being polled, so this runtime is the
        // one running; otherwise check, or the wait would never end.
        if task.is_none()
            && context::with_current(|core| Rc::ptr_eq(core, &self.core)) != Some(true)
        {
            return Poll::Ready(Err(wrong_runtime_error()));
        }
        let waiters = self.io.waiters(direction);
        match key {
            Some(key) => {
                let replaced = waiters.wait_held(key, task, cx);
                // Dropped once the list is released: a waker's destructor
                // is foreign code.
                drop(replaced);
            }
            None => waiters.wait_loose(task, cx),
        }
        Poll::Pending
    }

    /// A place in `direction`'s waiters for one future, given back when it
    /// is dropped.
    #[inline]
    pub(crate) fn waiting(&self, direction: Direction) -> Waiting<'_> {
        Waiting {
            waiters: self.io.waiters(direction),
            key: WaitKey::default(),
        }
    }

    /// [`poll_io`](Self::poll_io) for a read or a send: `op` moves at most
    /// `len > 0` bytes and says how many it moved.
    ///
    /// A transfer shorter than `len` drained the receive buffer (or filled
    /// the send buffer), so it clears the readiness too: the next operation
    /// waits for epoll's next edge instead of making a syscall that would
    /// say `WouldBlock`. End of stream (`Ok(0)`) stays ready.
    #[inline]
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        len: usize,
        mut op: impl FnMut() -> io::Result<usize>,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        while self.io.is_ready(direction) {
            if !self.core.take_io_budget(cx) {
                return Poll::Pending;
            }
            match self.transfer(direction, len, &mut op) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
        self.wait(cx, direction, key)
    }

    /// Runs `op`, a read or send of at most `len` bytes, and clears
    /// `direction`'s readiness if it said `WouldBlock` or moved fewer than
    /// `len` bytes: the rule of [`poll_transfer`](Self::poll_transfer) and
    /// [`try_transfer`](Self::try_transfer).
    #[inline]
    fn transfer(
        &self,
        direction: Direction,
        len: usize,
        op: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let result = op();
        let drained = match &result {
            Ok(n) => *n > 0 && *n < len.min(MAX_TRANSFER),
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
        };
        if drained {
            self.io.clear_ready(direction);
        }
        result
    }

    /// Whether `direction` is believed ready, without registering a waker.
    #[inline]
    pub(crate) fn is_ready(&self, direction: Direction) -> bool {
        self.io.is_ready(direction)
    }

    /// Forgets `direction`'s readiness: the socket said `WouldBlock` (or a
    /// short read or write showed its buffer is drained), and edge-triggered
    /// epoll will report when it changes.
    #[inline]
    pub(crate) fn clear_ready(&self, direction: Direction) {
        self.io.clear_ready(direction);
    }

    /// Runs the non-blocking `op` once `direction` is ready, retrying after
    /// each `WouldBlock` once the reactor reports readiness again.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut() -> io::Result<R>,
        mut key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ready = self.poll_ready(cx, direction, key.as_deref_mut());
            if let Err(error) = std::task::ready!(ready) {
                return Poll::Ready(Err(error));
            }
            self.core.spend_io_budget();
            match op() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.clear_ready(direction)
                }
                result => return Poll::Ready(result),
            }
        }
    }

    /// [`poll_transfer`](Self::poll_transfer) without waiting: runs `op`
    /// if `direction` is believed ready, `WouldBlock` otherwise; clears the
    /// readiness on `WouldBlock` or a transfer shorter than `len`, alike.
    pub(crate) fn try_transfer(
        &self,
        direction: Direction,
        len: usize,
        op: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        if !self.io.is_ready(direction) {
            if self.io.is_shut_down() {
                return Err(shut_down_error());
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.core.spend_io_budget();
        self.transfer(direction, len, op)
    }

    /// The readiness bits of both directions, as last seen.
    pub(crate) fn readiness(&self) -> u8 {
        self.io.readiness.get() & !SHUT_DOWN
    }

    /// Runs `op` if a direction in `mask` (readiness bits) is believed
    /// ready, else says `WouldBlock`; clears the ready directions in `mask`
    /// if `op` says `WouldBlock`.
    pub(crate) fn try_io<R>(&self, mask: u8, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        let ready = self.readiness() & mask;
        if ready == 0 {
            if self.io.is_shut_down() {
                return Err(shut_down_error());
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.core.spend_io_budget();
        let result = op();
        if matches!(&result, Err(error) if error.kind() == io::ErrorKind::WouldBlock) {
            for direction in [Direction::Read, Direction::Write] {
                if ready & direction.mask() != 0 {
                    self.io.clear_ready(direction);
                }
            }
        }
        result
    }

    /// Removes `source` from epoll, for a socket handed back to the caller
    /// (`into_std`) that must not keep delivering events.
    pub(crate) fn deregister(&self, source: &mut impl Source) -> io::Result<()> {
        self.core
            .reactor
            .poll
            .borrow()
            .registry()
            .deregister(source)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut ios = self.core.reactor.ios.borrow_mut();
        if ios.get(self.key).is_some_and(|io| Rc::ptr_eq(io, &self.io)) {
            ios.remove(self.key);
        }
        drop(ios);
        // The waiters go with `self.io`, after the borrow: a waker's
        // destructor is user code.
    }
}

/// A future's place in one direction's waiters, given back when the future
/// is dropped: a cancelled wait leaves no entry behind.
pub(crate) struct Waiting<'a> {
    waiters: &'a WaiterList,
    key: WaitKey,
}

impl Waiting<'_> {
    /// The key to pass to the registration's `poll_*` methods.
    #[inline]
    pub(crate) fn key(&mut self) -> Option<&mut WaitKey> {
        Some(&mut self.key)
    }
}

impl Drop for Waiting<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(index) = self.key.get() {
            // Dropped here, outside the list: a waker's destructor is
            // foreign code.
            drop(self.waiters.release(index));
        }
    }
}

fn wrong_runtime_error() -> io::Error {
    io::Error::other(
        "xev: this socket belongs to another xev runtime than the one polling it (or none is \
         running); a socket must be used inside `block_on` of the runtime it was created on",
    )
}

fn shut_down_error() -> io::Error {
    io::Error::other("the xev runtime this socket belongs to has been shut down")
}
