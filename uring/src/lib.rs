//! The io_uring ring behind xev's `Backend::IoUring`: a small, safe API
//! over the [`io-uring`](https://docs.rs/io-uring) crate.
//!
//! xev itself forbids `unsafe`; submitting an operation to io_uring cannot
//! be made safe by the type system alone (the kernel keeps a raw pointer
//! into the buffer until the operation completes), so every `unsafe` block
//! of the backend lives here, each with its `// SAFETY:` argument, and this
//! crate's API is safe to call in any order.
//!
//! # The ownership rule
//!
//! **A buffer the kernel may read or write belongs to the [`Ring`] from
//! the moment its operation is queued until the operation's last
//! completion has been reaped.** Concretely:
//!
//! - [`Ring::recv`] and [`Ring::send`] take the buffer by value (a
//!   `Vec<u8>`); the ring keeps it in the operation's slot, never touches
//!   its bytes or capacity, and hands it back inside the final
//!   [`Completion`]. Moving the `Vec` value around does not move its heap
//!   allocation, which is what the kernel points at.
//! - [`Ring::cancel`] only *asks* the kernel to stop; the buffer stays with
//!   the ring until the cancelled operation's own completion arrives
//!   (`ECANCELED`, or its result if it won the race). Dropping the caller's
//!   handle to an operation therefore never frees memory the kernel may
//!   still write.
//! - Dropping the [`Ring`] cancels every operation and reaps until none is
//!   in flight; only then are the buffers freed. If the kernel does not
//!   finish within a bound (it always does for sockets), the buffers are
//!   leaked instead of freed: a leak, never a use after free.
//! - The eventfd behind [`RingWaker`] is read by an operation into an
//!   8-byte buffer the ring owns by the same rule.
//!
//! Files are named by descriptor number and resolved by the kernel when the
//! operation is *submitted* (at the next [`Ring::submit`] or
//! [`Ring::wait`]), not when it is queued. A caller that closes a file
//! should make sure its queued operations were submitted first
//! ([`Ring::has_unsubmitted`], [`Ring::submit`]), or they may reach a new
//! file that reuses the number. That is a logic error, not memory
//! unsafety: buffers stay owned by the ring either way.
//!
//! - Completions the ring had to take off the kernel's queue early (older
//!   kernels refuse submissions while completions they could not post
//!   wait) are kept in order and handed out by [`Ring::complete`]; the
//!   buffers stay in their slots until then.
//!
//! The tests in `tests/ownership.rs` aim at this rule, and CI runs them
//! under valgrind too (`.ci/valgrind-uring`):
//!
//! - `cancelled_recv_gives_back_its_own_buffer_then_the_bytes_arrive`: the
//!   same allocation comes back, and the bytes a cancel kept from the
//!   receive are still in the socket;
//! - `dropping_the_ring_with_reads_in_flight_frees_no_buffer_the_kernel_writes`
//!   and `dropping_the_ring_drains_even_while_the_kernel_ring_lives_on` (a
//!   second descriptor of the kernel's ring, as a forked child holds):
//!   the test's allocator keeps freed buffers aside, poisoned, and no
//!   byte of them changes when the peers write after the drop;
//! - `dropping_the_ring_with_receives_armed_closes_its_fds_and_frees_every_buffer`
//!   (200 sockets, a 4-entry ring): the descriptors are closed and every
//!   buffer freed, none leaked;
//! - `ten_thousand_cancel_races_lose_no_byte`: each operation ends once,
//!   with its byte or `ECANCELED`, and every byte written is received;
//! - `send_of_one_mebibyte_arrives_whole_resuming_partial_sends`,
//!   `a_waker_from_another_thread_ends_a_wait_without_timeout`,
//!   `multishot_poll_reports_readiness_with_more_until_cancelled`,
//!   `completions_beyond_the_completion_queue_are_all_delivered_while_queueing_goes_on`.
//!
//! valgrind cannot see the kernel write into freed memory (hence the
//! poisoned blocks); it checks this crate's own use of the memory.
#![deny(missing_docs)]
#![cfg(target_os = "linux")]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};
use slab::Slab;

/// The user data of operations whose completions nobody waits for
/// (cancellations).
const IGNORED: u64 = u64::MAX;

/// How long dropping a ring waits for cancelled operations before leaking
/// their buffers.
const DRAIN_BOUND: Duration = Duration::from_secs(5);

/// `POLLIN`, as reported in a poll completion's result.
pub const POLLIN: u32 = libc::POLLIN as u32;
/// `POLLOUT`, as reported in a poll completion's result.
pub const POLLOUT: u32 = libc::POLLOUT as u32;
/// `POLLRDHUP`: the peer closed its side (end of stream).
pub const POLLRDHUP: u32 = libc::POLLRDHUP as u32;
/// `POLLHUP`: both directions are closed.
pub const POLLHUP: u32 = libc::POLLHUP as u32;
/// `POLLERR`: an error is pending on the socket.
pub const POLLERR: u32 = libc::POLLERR as u32;
/// The errno of a cancelled operation's completion.
pub const ECANCELED: i32 = libc::ECANCELED;
/// The errno of an operation on a closed descriptor.
pub const EBADF: i32 = libc::EBADF;
/// The errno of an operation the kernel would have had to wait for.
pub const EAGAIN: i32 = libc::EAGAIN;
/// The errno of a connection reset by the peer.
pub const ECONNRESET: i32 = libc::ECONNRESET;

/// Checks that io_uring can be used here: a ring can be set up, the kernel
/// has the features this crate relies on (`EXT_ARG` waits with a timeout,
/// `NODROP` completions) and every opcode it submits.
///
/// # Errors
/// The refusal, as the kernel gave it: `ENOSYS` (no io_uring, or a seccomp
/// filter), `EPERM` (`kernel.io_uring_disabled`, seccomp), `ENOMEM`
/// (locked-memory limit), or [`Unsupported`](io::ErrorKind::Unsupported)
/// naming the missing feature or opcode.
pub fn probe() -> io::Result<()> {
    let ring = setup(4)?;
    check_features(&ring)?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|error| context(error, "IORING_REGISTER_PROBE"))?;
    for (code, name) in [
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Read::CODE, "READ"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::SendMsg::CODE, "SENDMSG"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("this kernel's io_uring lacks the {name} opcode"),
            ));
        }
    }
    Ok(())
}

/// A ring whose completions are run by the thread that waits on it
/// (`SINGLE_ISSUER | DEFER_TASKRUN`, Linux 6.1+): the kernel defers the
/// work of completing operations to that thread's next `io_uring_enter`,
/// instead of interrupting it as each one completes. Older kernels refuse
/// the flags (`EINVAL`): then a plain ring.
fn setup(entries: u32) -> io::Result<IoUring> {
    let deferred = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(entries);
    match deferred {
        Ok(ring) => Ok(ring),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::new(entries).map_err(|error| context(error, "io_uring_setup"))
        }
        Err(error) => Err(context(error, "io_uring_setup")),
    }
}

fn check_features(ring: &IoUring) -> io::Result<()> {
    let params = ring.params();
    for (has, name) in [
        (params.is_feature_ext_arg(), "EXT_ARG (kernel 5.11)"),
        (params.is_feature_nodrop(), "NODROP (kernel 5.5)"),
    ] {
        if !has {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("this kernel's io_uring lacks the {name} feature"),
            ));
        }
    }
    Ok(())
}

/// Adds what was being done to an error, keeping its kind, and its errno
/// for [`os_error`].
fn context(error: io::Error, what: &'static str) -> io::Error {
    io::Error::new(error.kind(), Failed { what, error })
}

/// An error of this crate's, with what was being done when it happened.
#[derive(Debug)]
struct Failed {
    what: &'static str,
    error: io::Error,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.error)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The kernel's errno behind `error`, also when this crate added what it
/// was doing to it ([`probe`] and [`Ring::new`] do).
pub fn os_error(error: &io::Error) -> Option<i32> {
    error.raw_os_error().or_else(|| {
        error
            .get_ref()?
            .downcast_ref::<Failed>()?
            .error
            .raw_os_error()
    })
}

/// Names one operation queued on a [`Ring`], to cancel it; stale ids (of
/// operations already finished) are recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId {
    key: u32,
    generation: u32,
}

impl OpId {
    fn user_data(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.key)
    }

    fn from_user_data(user_data: u64) -> OpId {
        OpId {
            key: user_data as u32,
            generation: (user_data >> 32) as u32,
        }
    }
}

/// What happened to one operation (one CQE).
#[derive(Debug)]
pub struct Completion {
    /// The operation.
    pub op: OpId,
    /// The caller's tag given when the operation was queued.
    pub token: u64,
    /// The kernel's result: bytes moved (recv, send), the ready poll events
    /// (poll), or the error.
    pub result: io::Result<u32>,
    /// More completions will follow for this operation (a multishot poll
    /// still armed). When `false`, the operation is over and its id stale.
    pub more: bool,
    /// The operation's buffer, given back with its last completion.
    pub buf: Option<Vec<u8>>,
    /// A [`send_bufs`](Ring::send_bufs)' buffers, given back with its
    /// completion.
    pub bufs: Vec<OwnedBuf>,
}

/// An owned buffer a [`Ring::send_bufs`] sends from without copying: kinds
/// whose bytes stay where they are for as long as the value lives, and
/// which nobody can change meanwhile.
#[derive(Debug)]
pub enum OwnedBuf {
    /// A vector's bytes.
    Vec(Vec<u8>),
    /// A boxed slice's bytes.
    Boxed(Box<[u8]>),
    /// Bytes that live for the whole program.
    Static(&'static [u8]),
    /// Bytes shared with other owners, none of which can change them.
    Shared(std::rc::Rc<[u8]>),
}

impl OwnedBuf {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            OwnedBuf::Vec(vec) => vec,
            OwnedBuf::Boxed(boxed) => boxed,
            OwnedBuf::Static(slice) => slice,
            OwnedBuf::Shared(shared) => shared,
        }
    }
}

/// What a `send_bufs` operation holds besides its buffers: the `iovec`
/// array and the `msghdr` the kernel reads.
struct MsgHeld {
    _iov: Vec<libc::iovec>,
    _msg: Box<libc::msghdr>,
}

/// One queued operation and what the ring owns for it.
struct Op {
    generation: u32,
    token: u64,
    /// The memory the kernel may read or write for this operation; kept
    /// here, untouched, until the last completion (the ownership rule).
    buf: Option<Vec<u8>>,
    /// A `send_bufs`' buffers, `iovec`s and `msghdr`, by the same rule.
    bufs: Vec<OwnedBuf>,
    msg: Option<MsgHeld>,
    /// A cancellation was queued: do not queue another.
    cancelled: bool,
    /// The ring's own eventfd read.
    waker: bool,
}

/// Wakes a thread blocked in [`Ring::wait`], from any thread.
#[derive(Clone, Debug)]
pub struct RingWaker {
    eventfd: Arc<File>,
}

impl RingWaker {
    /// Ends the current (or next) [`Ring::wait`] of the ring it came from.
    ///
    /// # Errors
    /// Only if the eventfd write fails for another reason than its counter
    /// being full (which already means a wake is pending).
    pub fn wake(&self) -> io::Result<()> {
        match (&*self.eventfd).write(&1u64.to_ne_bytes()) {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// An io_uring instance and the operations in flight on it.
///
/// Not `Sync`: one thread queues, submits and reaps. Wakes from other
/// threads go through a [`RingWaker`].
pub struct Ring {
    ring: IoUring,
    ops: Slab<Op>,
    next_generation: u32,
    waker: RingWaker,
    /// Operations were queued since the last submission.
    unsubmitted: bool,
    /// How many times the submission queue went to the kernel.
    submitted: u64,
    /// The waker's read is queued (it is not between its completion and
    /// its re-arm, which can fail).
    waker_armed: bool,
    /// Completions taken off the kernel's queue before [`Ring::complete`]
    /// asked for them: older kernels (5.11 at least) take no submission
    /// while completions they could not post wait, and only reaping makes
    /// room. Their buffers stay in the operations' slots until handed out.
    stashed: VecDeque<cqueue::Entry>,
}

impl Ring {
    /// Sets up a ring with room for `entries` submissions per turn (the
    /// completion queue is twice that; completions beyond it are kept by
    /// the kernel, not dropped).
    ///
    /// # Errors
    /// As [`probe`]: the kernel's refusal, or a missing feature.
    pub fn new(entries: u32) -> io::Result<Ring> {
        let ring = setup(entries)?;
        check_features(&ring)?;
        // SAFETY: `eventfd` has no memory arguments; it returns a new
        // descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(context(io::Error::last_os_error(), "eventfd"));
        }
        // SAFETY: `fd` was just returned by `eventfd`, is open, and nothing
        // else owns it.
        let eventfd = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut ring = Ring {
            ring,
            ops: Slab::new(),
            next_generation: 0,
            waker: RingWaker {
                eventfd: Arc::new(eventfd),
            },
            unsubmitted: false,
            submitted: 0,
            waker_armed: false,
            stashed: VecDeque::new(),
        };
        ring.arm_waker()?;
        Ok(ring)
    }

    /// A waker for this ring, for other threads.
    pub fn waker(&self) -> RingWaker {
        self.waker.clone()
    }

    /// Queues a multishot poll of `fd` for `events` (e.g. [`POLLIN`]):
    /// a completion, with the ready events as its result, each time the
    /// file signals one of them (edge-triggered), until it is cancelled or
    /// the kernel ends it (a completion with `more == false`).
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn poll(&mut self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<OpId> {
        self.poll_raw(fd.as_raw_fd(), events, token)
    }

    /// [`poll`](Ring::poll) by descriptor number, for files whose owner
    /// exposes only that (the number is resolved at submission; see the
    /// crate docs).
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn poll_raw(&mut self, fd: RawFd, events: u32, token: u64) -> io::Result<OpId> {
        let entry = opcode::PollAdd::new(Fd(fd), events).multi(true).build();
        // SAFETY: a poll reads and writes no memory of ours.
        unsafe { self.queue(entry, token, None, false) }
    }

    /// Queues one receive from `fd` into `buf` (its whole length, which
    /// must be at most `u32::MAX`). The ring owns `buf` until the
    /// completion, which gives it back with the number of bytes received
    /// at its start.
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn recv(&mut self, fd: BorrowedFd<'_>, buf: Vec<u8>, token: u64) -> io::Result<OpId> {
        self.recv_raw(fd.as_raw_fd(), buf, token)
    }

    /// [`recv`](Ring::recv) by descriptor number (resolved at submission;
    /// see the crate docs).
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn recv_raw(&mut self, fd: RawFd, mut buf: Vec<u8>, token: u64) -> io::Result<OpId> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let entry = opcode::Recv::new(Fd(fd), buf.as_mut_ptr(), len).build();
        // SAFETY: `entry` points at `len` bytes of `buf`'s heap
        // allocation, which `queue` keeps in the operation's slot, unread
        // and unresized, until the last completion is reaped or the ring's
        // drop has drained it (or leaks it).
        unsafe { self.queue(entry, token, Some(buf), false) }
    }

    /// [`send`](Ring::send) by descriptor number (resolved at submission;
    /// see the crate docs).
    ///
    /// # Panics
    /// If `start > buf.len()`.
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn send_raw(
        &mut self,
        fd: RawFd,
        buf: Vec<u8>,
        start: usize,
        token: u64,
    ) -> io::Result<OpId> {
        let bytes = &buf[start..];
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(Fd(fd), bytes.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // SAFETY: `entry` points at `len` bytes of `buf`'s heap allocation
        // from `start`, which `queue` keeps in the operation's slot,
        // unmodified, until the last completion is reaped or the ring's
        // drop has drained it (or leaks it).
        unsafe { self.queue(entry, token, Some(buf), false) }
    }

    /// Queues one send to `fd` of `buf[start..]` (at most `u32::MAX`
    /// bytes; a stream socket may take fewer: the result says how many).
    /// `MSG_NOSIGNAL` is set: a closed peer gives `EPIPE`, never `SIGPIPE`.
    ///
    /// # Panics
    /// If `start > buf.len()`.
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: Vec<u8>,
        start: usize,
        token: u64,
    ) -> io::Result<OpId> {
        self.send_raw(fd.as_raw_fd(), buf, start, token)
    }

    /// Queues one `sendmsg` to `fd` of `bufs` in order, the first from
    /// `offset` (at most `IOV_MAX` = 1024 buffers; `MSG_NOSIGNAL`). The ring
    /// owns the buffers, and the `iovec`s and `msghdr` pointing at them,
    /// until the completion, which gives the buffers back with the number
    /// of bytes sent (a stream socket may take fewer than all).
    ///
    /// # Panics
    /// If `bufs` is empty, holds more than 1024 buffers, or `offset` is
    /// beyond the first.
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn send_bufs(
        &mut self,
        fd: RawFd,
        bufs: Vec<OwnedBuf>,
        offset: usize,
        token: u64,
    ) -> io::Result<OpId> {
        assert!(
            !bufs.is_empty() && bufs.len() <= 1024,
            "1 to 1024 buffers per sendmsg"
        );
        assert!(
            offset <= bufs[0].as_slice().len(),
            "offset beyond the first buffer"
        );
        let mut iov: Vec<libc::iovec> = bufs
            .iter()
            .enumerate()
            .map(|(index, buf)| {
                let bytes = if index == 0 {
                    &buf.as_slice()[offset..]
                } else {
                    buf.as_slice()
                };
                libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                }
            })
            .collect();
        // SAFETY: `msghdr` is plain old data; all zeroes is a valid value
        // (no name, no control data).
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        let entry = opcode::SendMsg::new(Fd(fd), &*msg as *const libc::msghdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build();
        // SAFETY: `entry` points at `msg` (a heap allocation), which points
        // at `iov`'s heap allocation, whose entries point into the heap
        // allocations (or static memory) of `bufs`; all of them move into
        // the operation's slot below, unmodified, until its completion is
        // reaped or the ring's drop has drained it (or leaks them). None of
        // the `OwnedBuf` kinds lets anyone change or free its bytes while
        // the slot holds it.
        let op = unsafe { self.queue(entry, token, None, false) }?;
        let slot = &mut self.ops[op.key as usize];
        slot.bufs = bufs;
        slot.msg = Some(MsgHeld {
            _iov: iov,
            _msg: msg,
        });
        Ok(op)
    }

    /// Asks the kernel to cancel `op`. Its completion still comes (with
    /// `ECANCELED`, or its result if it finished first), and only then is
    /// its buffer given back. A stale id, or a second cancel, does nothing.
    ///
    /// # Errors
    /// Only if the submission queue is full and submitting it fails.
    pub fn cancel(&mut self, op: OpId) -> io::Result<()> {
        match self.ops.get(op.key as usize) {
            Some(slot) if slot.generation == op.generation && !slot.cancelled => {}
            _ => return Ok(()),
        }
        let entry = opcode::AsyncCancel::new(op.user_data())
            .build()
            .user_data(IGNORED);
        // SAFETY: a cancellation reads and writes no memory of ours.
        unsafe { self.push(&entry) }?;
        // Only now: a cancel that failed to queue can be asked again.
        self.ops[op.key as usize].cancelled = true;
        Ok(())
    }

    /// Whether operations were queued since the last submission.
    pub fn has_unsubmitted(&self) -> bool {
        self.unsubmitted
    }

    /// How many times the queued operations went to the kernel: an
    /// operation queued when this said `n` has been submitted once it says
    /// more. A caller closing a file checks this against the count it noted
    /// when it last queued an operation on it (see the crate docs).
    pub fn submissions(&self) -> u64 {
        self.submitted
    }

    fn note_submitted(&mut self) {
        self.unsubmitted = false;
        self.submitted += 1;
    }

    /// How many operations are in flight (queued or submitted, without
    /// their last completion reaped), not counting the ring's own.
    pub fn in_flight(&self) -> usize {
        self.ops.len() - usize::from(self.waker_armed)
    }

    /// Submits what was queued, without waiting.
    ///
    /// # Errors
    /// The kernel's refusal (`EBUSY` when completions must be reaped
    /// first is not an error: it submits nothing and returns).
    pub fn submit(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => {
                self.note_submitted();
                Ok(())
            }
            Err(error) if is_retry(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Submits what was queued and waits until at least one completion is
    /// ready, the ring's [`RingWaker`] is woken, or `timeout` passes
    /// (`None`: no limit; zero: do not wait). One `io_uring_enter`.
    ///
    /// # Errors
    /// The kernel's refusal; a timeout or a signal is not an error. Also if
    /// re-arming the waker's read, which failed in [`Ring::complete`],
    /// fails again.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if !self.waker_armed {
            // Its re-arm failed in `complete`: without it no wake would
            // end this wait.
            self.arm_waker()?;
        }
        let ready = !self.stashed.is_empty() || !self.ring.completion().is_empty();
        let result = match timeout {
            _ if ready => self.ring.submit(),
            Some(timeout) if timeout.is_zero() => self.ring.submit(),
            Some(timeout) => {
                let ts = Timespec::from(timeout);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match result {
            Ok(_) => {
                self.note_submitted();
                Ok(())
            }
            Err(error) if error.raw_os_error() == Some(libc::ETIME) || is_retry(&error) => {
                // ETIME: the timeout passed (the submissions went in).
                // EINTR, EBUSY, EAGAIN: try again on the next turn.
                if error.raw_os_error() == Some(libc::ETIME) {
                    self.note_submitted();
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Hands every completion ready now to `each`, in order. The ring's own
    /// waker completions are handled here and not handed out.
    ///
    /// # Errors
    /// Only if re-arming the waker's read fails (the submission queue full
    /// and submitting it failing).
    pub fn complete(&mut self, mut each: impl FnMut(Completion)) -> io::Result<()> {
        loop {
            let Some(cqe) = self
                .stashed
                .pop_front()
                .or_else(|| self.ring.completion().next())
            else {
                return Ok(());
            };
            let user_data = cqe.user_data();
            if user_data == IGNORED {
                continue;
            }
            let op = OpId::from_user_data(user_data);
            let more = cqueue::more(cqe.flags());
            let Some(slot) = self.ops.get(op.key as usize) else {
                continue;
            };
            if slot.generation != op.generation {
                continue;
            }
            let slot = if more {
                None
            } else {
                Some(self.ops.remove(op.key as usize))
            };
            let result = match cqe.result() {
                n if n >= 0 => Ok(n as u32),
                errno => Err(io::Error::from_raw_os_error(-errno)),
            };
            match slot {
                Some(Op { waker: true, .. }) => {
                    self.waker_armed = false;
                    self.arm_waker()?;
                }
                Some(Op {
                    token, buf, bufs, ..
                }) => each(Completion {
                    op,
                    token,
                    result,
                    more,
                    buf,
                    bufs,
                }),
                None => {
                    let token = self.ops[op.key as usize].token;
                    each(Completion {
                        op,
                        token,
                        result,
                        more,
                        buf: None,
                        bufs: Vec::new(),
                    })
                }
            }
        }
    }

    /// Queues a read of the waker's eventfd into an 8-byte buffer the ring
    /// owns.
    fn arm_waker(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 8];
        let entry =
            opcode::Read::new(Fd(self.waker.eventfd.as_raw_fd()), buf.as_mut_ptr(), 8).build();
        // SAFETY: as for `recv`: `buf` stays in the operation's slot until
        // its completion. The eventfd stays open as long as the ring (the
        // ring holds an `Arc` of it).
        unsafe { self.queue(entry, 0, Some(buf), true) }?;
        self.waker_armed = true;
        Ok(())
    }

    /// Queues `entry`, keeping `buf` in the operation's slot.
    ///
    /// # Safety
    /// Every pointer in `entry` must point into `buf`'s heap allocation
    /// (which this function keeps alive and untouched until the
    /// operation's last completion), or the operation must read and write
    /// no memory of the caller's.
    unsafe fn queue(
        &mut self,
        entry: squeue::Entry,
        token: u64,
        buf: Option<Vec<u8>>,
        waker: bool,
    ) -> io::Result<OpId> {
        let entry_slot = self.ops.vacant_entry();
        let key =
            u32::try_from(entry_slot.key()).expect("xev-uring: too many operations in flight");
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        entry_slot.insert(Op {
            generation,
            token,
            buf,
            bufs: Vec::new(),
            msg: None,
            cancelled: false,
            waker,
        });
        let op = OpId { key, generation };
        // SAFETY: the caller's promise covers `entry`'s pointers, and the
        // buffer is now in the slot, where it stays until the completion.
        if let Err(error) = unsafe { self.push(&entry.user_data(op.user_data())) } {
            // Never reached the kernel: the buffer can go back.
            self.ops.remove(key as usize);
            return Err(error);
        }
        Ok(op)
    }

    /// Pushes `entry`, submitting first if the submission queue is full.
    ///
    /// # Safety
    /// Whatever memory `entry` points at must stay valid until its
    /// completion.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        let mut refused = 0;
        loop {
            // SAFETY: passed on from the caller.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.unsubmitted = true;
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {
                    refused = 0;
                    self.submitted += 1;
                }
                Err(error) if is_retry(&error) => {
                    // EBUSY (older kernels): the completion queue is full and
                    // the kernel holds more (NODROP) it cannot post; it
                    // takes no submission until some are reaped. Reap them
                    // into `stashed`, for `complete` to hand out in order.
                    let before = self.stashed.len();
                    self.stashed.extend(self.ring.completion());
                    if self.stashed.len() == before {
                        refused += 1;
                        if refused > 100 {
                            return Err(io::Error::new(
                                error.kind(),
                                format!(
                                    "io_uring_enter keeps refusing submissions \
                                     with no completion to reap ({error}): \
                                     reap with Ring::complete, then queue again"
                                ),
                            ));
                        }
                        std::thread::yield_now();
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn is_retry(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
    )
}

impl Drop for Ring {
    /// Cancels every operation and reaps until none is in flight, so that
    /// no buffer is freed while the kernel may still write it; after
    /// five seconds (`DRAIN_BOUND`), leaks the buffers still held instead.
    fn drop(&mut self) {
        let ops: Vec<OpId> = self
            .ops
            .iter()
            .map(|(key, op)| OpId {
                key: key as u32,
                generation: op.generation,
            })
            .collect();
        let mut failed = false;
        for op in ops {
            if let Some(slot) = self.ops.get_mut(op.key as usize) {
                // The waker's read is cancelled too: no re-arm happens
                // below, since completions are reaped by hand.
                slot.cancelled = false;
            }
            failed |= self.cancel(op).is_err();
        }
        let started = Instant::now();
        while !failed && !self.ops.is_empty() && started.elapsed() < DRAIN_BOUND {
            let ts = Timespec::from(Duration::from_millis(10));
            let args = SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::ETIME) || is_retry(&error) => {}
                Err(_) => break,
            }
            let reaped: Vec<cqueue::Entry> = self
                .stashed
                .drain(..)
                .chain(self.ring.completion())
                .collect();
            for cqe in reaped {
                let op = OpId::from_user_data(cqe.user_data());
                if cqe.user_data() != IGNORED
                    && !cqueue::more(cqe.flags())
                    && self
                        .ops
                        .get(op.key as usize)
                        .is_some_and(|slot| slot.generation == op.generation)
                {
                    self.ops.remove(op.key as usize);
                }
            }
        }
        // Whatever is left may still be written by the kernel: leak it.
        for op in self.ops.drain() {
            std::mem::forget(op.buf);
            std::mem::forget(op.bufs);
            std::mem::forget(op.msg);
        }
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("in_flight", &self.in_flight())
            .field("unsubmitted", &self.unsubmitted)
            .finish()
    }
}
