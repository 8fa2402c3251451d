//! [`Registration`]: a socket's handle on the reactor, and the operations'
//! readiness rule.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use mio::event::Source;
use mio::{Interest, Token};

use super::{
    shut_down_error, wrong_runtime_error, Direction, ScheduledIo, GENERATION_MASK, KEY_BITS,
    KEY_MASK, MAX_TRANSFER, SHUT_DOWN,
};
use crate::rt::context;
use crate::rt::runtime::Core;
use crate::rt::waiters::{WaitKey, WaiterList};

/// A socket registered with the current runtime's reactor, for both
/// directions.
///
/// Dropping it frees its readiness slot. The socket itself need not be
/// deregistered from epoll: closing its fd does that, and any event still
/// queued for it carries a stale generation.
pub(crate) struct Registration {
    pub(super) core: Rc<Core>,
    pub(super) io: Rc<ScheduledIo>,
    key: usize,
}

impl Registration {
    /// Registers `source` with the current runtime: with the ring, by its
    /// descriptor, under `IoUring`; with mio otherwise.
    ///
    /// # Panics
    /// Outside a runtime; `what` names the caller in the message.
    #[cfg(unix)]
    pub(crate) fn new<S>(source: &mut S, interest: Interest, what: &str) -> io::Result<Registration>
    where
        S: Source + std::os::fd::AsRawFd,
    {
        let fd = source.as_raw_fd();
        Registration::register(source, Some(fd), interest, false, what)
    }

    /// Registers a stream with the current runtime, for both directions:
    /// under `IoUring`, its reads and sends go through the ring, and its
    /// poll is armed only once readiness is asked for.
    ///
    /// # Panics
    /// Outside a runtime; `what` names the caller in the message.
    #[cfg(unix)]
    pub(crate) fn new_stream<S>(source: &mut S, what: &str) -> io::Result<Registration>
    where
        S: Source + std::os::fd::AsRawFd,
    {
        let fd = source.as_raw_fd();
        Registration::register(
            source,
            Some(fd),
            Interest::READABLE | Interest::WRITABLE,
            true,
            what,
        )
    }

    /// Registers `source` with the current runtime's mio poller (under
    /// `IoUring`, the nested one polled through the ring), for sources that
    /// expose no descriptor of their own.
    ///
    /// # Panics
    /// Outside a runtime; `what` names the caller in the message.
    pub(crate) fn new_source(
        source: &mut impl Source,
        interest: Interest,
        what: &str,
    ) -> io::Result<Registration> {
        Registration::register(source, None, interest, false, what)
    }

    fn register(
        source: &mut impl Source,
        #[cfg(unix)] fd: Option<std::os::fd::RawFd>,
        #[cfg(not(unix))] _fd: Option<()>,
        interest: Interest,
        stream: bool,
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
            #[cfg(target_os = "linux")]
            ring_poll: Cell::new(None),
            #[cfg(target_os = "linux")]
            ring_io: match fd {
                Some(fd) if stream && reactor.ring.is_some() => {
                    Some(Box::new(super::ring_io::RingIo::new(fd)))
                }
                _ => None,
            },
            #[cfg(target_os = "linux")]
            queued_in: Cell::new(0),
        });
        #[cfg(not(target_os = "linux"))]
        let _ = stream;
        let key =
            {
                let mut ios = reactor.ios.borrow_mut();
                let entry = ios.vacant_entry();
                let key = entry.key();
                if key > KEY_MASK {
                    return Err(io::Error::other(
                        "xev: too many sockets registered with one runtime",
                    ));
                }
                let token = key | (generation as usize) << KEY_BITS;
                match () {
                    #[cfg(target_os = "linux")]
                    () if io.ring_io.is_some() => {
                        // Polled only once readiness is asked for.
                    }
                    #[cfg(target_os = "linux")]
                    () if reactor.ring.is_some() && fd.is_some() => {
                        let ring = reactor.ring.as_ref().expect("checked above");
                        let fd = fd.expect("checked above");
                        let token = super::uring::token(super::uring::Kind::Poll, key, generation);
                        io.ring_poll
                            .set(Some(ring.arm(fd, interest, token, &io.queued_in)?));
                    }
                    () => reactor.mio()?.borrow().registry().register(
                        source,
                        Token(token),
                        interest,
                    )?,
                }
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
        #[cfg(target_os = "linux")]
        if let Some(ring_io) = self.io.ring() {
            return self.poll_ring_ready(ring_io, cx, direction, key);
        }
        self.poll_socket_ready(cx, direction, key)
    }

    /// [`poll_ready`](Self::poll_ready) by the socket's own readiness,
    /// whatever the ring holds: for a connect, which waits for the socket
    /// to become writable.
    pub(crate) fn poll_socket_ready(
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
        #[cfg(target_os = "linux")]
        if let Err(error) = self.ensure_polled() {
            return Poll::Ready(Err(error));
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
    pub(super) fn wait<T>(
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

    /// The ring token of this socket's operations of `kind`.
    #[cfg(target_os = "linux")]
    pub(super) fn token(&self, kind: super::uring::Kind) -> u64 {
        super::uring::token(kind, self.key, self.io.generation)
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
        // A ring stream never polled tries its syscall, and is polled from
        // its first `WouldBlock` on.
        while self.io.is_ready(direction) || self.unpolled() {
            if !self.core.take_io_budget(cx) {
                return Poll::Pending;
            }
            match self.transfer(direction, len, &mut op) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    #[cfg(target_os = "linux")]
                    if let Err(error) = self.ensure_polled() {
                        return Poll::Ready(Err(error));
                    }
                }
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
        if !self.io.is_ready(direction) && !self.unpolled() {
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
        let bits = self.io.readiness.get() & !SHUT_DOWN;
        #[cfg(target_os = "linux")]
        if let Some(ring_io) = self.io.ring() {
            return bits | self.ring_readiness(ring_io);
        }
        bits
    }

    /// A ring stream whose poll was never armed: its readiness bits say
    /// nothing, so a `try_*` makes its syscall to find out.
    #[inline]
    fn unpolled(&self) -> bool {
        #[cfg(target_os = "linux")]
        if self.io.ring_io.is_some() && self.io.ring_poll.get().is_none() {
            return !self.io.is_shut_down();
        }
        false
    }

    /// Runs `op` if a direction in `mask` (readiness bits) is believed
    /// ready, else says `WouldBlock`; clears the ready directions in `mask`
    /// if `op` says `WouldBlock`.
    pub(crate) fn try_io<R>(&self, mask: u8, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        // A ring stream never polled has no readiness to go by: poll it
        // from now on; until its first event, nothing is ready.
        #[cfg(target_os = "linux")]
        if self.unpolled() {
            self.ensure_polled()?;
        }
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
        #[cfg(target_os = "linux")]
        if self.io.ring_poll.get().is_some() || self.io.ring_io.is_some() {
            let ring = self.core.reactor.ring.as_ref().expect("armed in a ring");
            if let Some(armed) = self.io.ring_poll.take() {
                ring.disarm(armed);
            }
            // The caller owns the socket from now on: no poll of ours may
            // stay armed on it.
            ring.flush();
            return Ok(());
        }
        self.core
            .reactor
            .mio()?
            .borrow()
            .registry()
            .deregister(source)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.core.reactor.ring {
            // The ring's operations hold the socket open until they end:
            // queue their cancellations, submitted at the loop's next turn,
            // or now if the loop is not running.
            if let Some(armed) = self.io.ring_poll.take() {
                ring.disarm(armed);
            }
            if let Some(ring_io) = self.io.ring() {
                if let Some(op) = ring_io.armed_recv() {
                    ring.cancel(op);
                }
                if let Some(op) = ring_io.queued_send() {
                    ring.cancel(op);
                }
            }
            if !self.core.is_driving() {
                ring.flush();
            } else {
                ring.submit_before_close(self.io.queued_in.get());
            }
        }
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
