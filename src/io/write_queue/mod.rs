//! [`WriteQueue`]: libxev's write queue, as futures.
//!
//! The queue is three parts, split where their invariants split:
//! - `buf`: what a queue takes ([`WriteBuf`]) and writes to ([`WriteTarget`]);
//! - `queue_core`: sequence numbers, the buffers, the waiters, and the
//!   failure that ends the queue (with the model tests of the whole queue);
//! - `drain`: the runtime task that writes the buffers, and what it fails
//!   when it is dropped unfinished.
//!
//! This file holds the handles users see: [`WriteQueue`] and [`WriteRequest`].

mod buf;
mod drain;
mod queue_core;

use std::cell::RefCell;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::net::TcpStream;
use crate::rt::JoinHandle;

pub use buf::{WriteBuf, WriteTarget};
use drain::Drain;
use queue_core::QueueCore;

/// The batch size used when the send buffer size cannot be read.
const FALLBACK_BATCH_BYTES: usize = 64 * 1024;

/// An ordered queue of owned buffers that the runtime writes to a
/// [`TcpStream`] — libxev's write queue, as futures.
///
/// [`push`](Self::push) hands a buffer over and returns a [`WriteRequest`]
/// that resolves to the buffer's length once its last byte is in the kernel.
/// The buffers are written in order, each one completely before the next,
/// however many partial writes that takes; adjacent buffers go out together
/// in one vectored send (up to 1024 slices and about one send buffer of
/// bytes), so many small messages cost few syscalls. A batch of small
/// buffers (under 512 bytes on average) is first copied into one buffer,
/// which the kernel takes faster than a thousand tiny slices.
///
/// Progress does not depend on anyone awaiting: a task of the runtime drains
/// the queue, as libxev's loop does. Awaiting a request (or
/// [`flush`](Self::flush)) only observes the outcome; dropping a
/// `WriteRequest` does not cancel its write.
///
/// # Errors
/// The first failed send fails its request and every request queued behind
/// it, each with an error of the same [`ErrorKind`](io::ErrorKind); later
/// pushes fail at once. A request never reports bytes written that were not.
///
/// # Dropping the queue (and the stream)
/// Dropping the queue does not drop what was pushed: the drain task goes on
/// writing, and holds the buffers and its own handle to the stream (the
/// `Rc<TcpStream>` or the [`OwnedWriteHalf`](crate::net::OwnedWriteHalf))
/// until the last byte is in the kernel or a send fails; then it ends and
/// lets both go. So dropping the queue *and* your `Rc<TcpStream>` does not
/// close the socket while bytes are queued: the peer receives every byte,
/// then end of stream. (A queue on an `OwnedWriteHalf` shuts down the write
/// side at that point, even if the read half lives on.)
///
/// Against a peer that never reads and never closes, that wait has no end:
/// the socket and the buffers stay until the connection fails or the
/// runtime is dropped. Bound it yourself, and give up with
/// [`abort`](Self::abort), which fails what is pending, frees the buffers
/// at once and stops the drain task; dropping the queue and your handles
/// then closes the socket (at the runtime's next turn, when the stopped
/// task lets go of its handle).
///
/// If the runtime shuts down first, the drain task is dropped with it:
/// the buffers are dropped unwritten, and every pending request and flush,
/// and every later push, fails with an error of kind
/// [`Other`](io::ErrorKind::Other) saying the runtime has been shut down.
///
/// There is no `close` method: to end the connection once everything is
/// written, `queue.flush().await?` and then
/// `queue.stream().shutdown(Shutdown::Write)?` (or drop a queue built on an
/// `OwnedWriteHalf`).
///
/// # Backpressure and memory
/// The queue takes whatever it is given. Watch [`queued_bytes`](Self::queued_bytes)
/// (or await requests or `flush`) to keep memory bounded against a slow
/// reader.
///
/// Each buffer is dropped as soon as it is written (or the queue fails).
/// Beyond its fixed size, an empty queue keeps at most 16 KiB: whatever a
/// burst grew beyond that (the copy buffer that batches small buffers, the
/// list of queued buffers, the list of flush waiters) is freed when the
/// queue empties, so many connections that each lagged once do not keep
/// their peak.
///
/// # Panics
/// [`new`](Self::new) panics outside a runtime: the drain task runs on it.
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// use xev::io::WriteQueue;
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = Rc::new(TcpStream::connect(listener.local_addr()?).await?);
///     let (server, _) = listener.accept().await?;
///
///     let queue = WriteQueue::new(client.clone());
///     let shared: Rc<[u8]> = Rc::from(&b"shared, "[..]);
///     queue.push("hello, ");
///     queue.push(shared);
///     let last = queue.push(b"world".to_vec());
///     assert_eq!(last.await?, 5);
///
///     let mut got = [0; 20];
///     server.read_exact(&mut got).await?;
///     assert_eq!(&got, b"hello, shared, world");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct WriteQueue {
    core: Rc<RefCell<QueueCore>>,
    target: Rc<WriteTarget>,
    /// Only to stop the drain task on [`abort`](Self::abort); dropping it
    /// detaches the task, which finishes the queue.
    drain: JoinHandle<()>,
}

impl WriteQueue {
    /// A queue writing to `stream`: an `Rc<TcpStream>` (shared with readers)
    /// or an [`OwnedWriteHalf`](crate::net::OwnedWriteHalf).
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn new(stream: impl Into<WriteTarget>) -> WriteQueue {
        let target = Rc::new(stream.into());
        let batch_bytes = target
            .stream()
            .send_buffer_size()
            .map_or(FALLBACK_BATCH_BYTES, |size| size as usize);
        let core = Rc::new(RefCell::new(QueueCore::new(batch_bytes)));
        let drain = crate::rt::spawn(Drain::new(core.clone(), target.clone()));
        WriteQueue {
            core,
            target,
            drain,
        }
    }

    /// Sets the stream's send buffer (`SO_SNDBUF`) to `bytes`, then builds a
    /// queue whose batches are sized from the value the kernel reports back
    /// (Linux doubles it).
    ///
    /// # Errors
    /// If the socket option cannot be set.
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// # Examples
    /// A small send buffer keeps less data in the kernel, so
    /// [`queued_bytes`](Self::queued_bytes) tracks what the peer has not
    /// taken more closely:
    /// ```
    /// use std::rc::Rc;
    /// use xev::io::WriteQueue;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (_server, _) = listener.accept().await?;
    /// let queue = WriteQueue::with_send_buffer_size(Rc::new(client), 16 * 1024)?;
    /// // The size the kernel reports, which batches follow: twice 16 KiB on Linux.
    /// assert!(queue.stream().send_buffer_size()? >= 16 * 1024);
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn with_send_buffer_size(
        stream: impl Into<WriteTarget>,
        bytes: u32,
    ) -> io::Result<WriteQueue> {
        let target = stream.into();
        target.stream().set_send_buffer_size(bytes)?;
        Ok(WriteQueue::new(target))
    }

    /// Queues `buf` to be written after everything pushed before it.
    ///
    /// The returned request resolves to `Ok(buf.len())` once the whole
    /// buffer is in the kernel; it need not be awaited for the write to
    /// happen. After the queue has failed (a send failed, it was
    /// [aborted](Self::abort), or its runtime shut down), the buffer is
    /// dropped and the request resolves at once with the queue's error.
    pub fn push(&self, buf: impl Into<WriteBuf>) -> WriteRequest {
        let buf = buf.into();
        let len = buf.as_slice().len();
        let (seq, drainer) = {
            let mut core = self.core.borrow_mut();
            let seq = core.push(buf);
            (seq, core.take_drainer())
        };
        if let Some(drainer) = drainer {
            drainer.wake();
        }
        WriteRequest {
            core: self.core.clone(),
            seq,
            len,
        }
    }

    /// Resolves once everything pushed before the call has been written, or
    /// with the queue's error. Buffers pushed after the call (even before the
    /// future is first polled) are not waited for.
    ///
    /// # Errors
    /// As [`WriteRequest`]: the failed send's error, the
    /// [`abort`](Self::abort) error, or the runtime-shut-down error, if any of
    /// those came before the last buffer it waits for was written.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future cancels no write; only the wait for
    /// them is given up.
    ///
    /// # Examples
    /// ```
    /// use std::rc::Rc;
    /// use xev::io::WriteQueue;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// let queue = WriteQueue::new(Rc::new(client));
    /// for line in ["one\n", "two\n", "three\n"] {
    ///     drop(queue.push(line)); // no need to keep the requests
    /// }
    /// queue.flush().await?; // all three are in the kernel
    /// assert!(queue.is_empty());
    ///
    /// let mut got = [0; 14];
    /// server.read_exact(&mut got).await?;
    /// assert_eq!(&got, b"one\ntwo\nthree\n");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn flush(&self) -> impl Future<Output = io::Result<()>> + '_ {
        // Taken now, not at the first poll: "before the call" is the contract.
        let target = self.core.borrow().next_seq();
        poll_fn(move |cx| self.core.borrow_mut().poll_flush(target, cx))
    }

    /// Bytes pushed and not yet written (in the queue, not yet in the
    /// kernel). Zero after a failure: the failed buffers are dropped.
    ///
    /// # Examples
    /// Backpressure against a slow reader: stop producing while too much is
    /// queued.
    /// ```
    /// use std::rc::Rc;
    /// use xev::io::WriteQueue;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// # let reader = xev::rt::spawn(async move {
    /// #     server.read_exact(&mut vec![0; 100 * 4096]).await
    /// # });
    /// const HIGH_WATER: usize = 64 * 1024;
    ///
    /// let queue = WriteQueue::new(Rc::new(client));
    /// for _ in 0..100 {
    ///     if queue.queued_bytes() > HIGH_WATER {
    ///         queue.flush().await?; // wait for the reader to catch up
    ///     }
    ///     drop(queue.push(vec![7; 4096]));
    /// }
    /// queue.flush().await?;
    /// assert_eq!(queue.queued_bytes(), 0);
    /// # reader.await.unwrap()?;
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.core.borrow().queued_bytes()
    }

    /// Buffers pushed and not yet completely written.
    pub fn len(&self) -> usize {
        self.core.borrow().len()
    }

    /// Whether everything pushed has been written.
    pub fn is_empty(&self) -> bool {
        self.core.borrow().is_empty()
    }

    /// Gives up on the queue: every pending request and every pending
    /// [`flush`](Self::flush) fails with an error of kind
    /// [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) saying the
    /// queue was aborted, the queued buffers are dropped at once, the drain
    /// task stops (letting go of its handle to the stream at the runtime's
    /// next turn), and every later [`push`](Self::push) fails at once with
    /// the same error.
    ///
    /// Requests already complete keep their `Ok`. The peer may have
    /// received part of the buffer being written: the bytes already in the
    /// kernel still go out (set [`set_linger`](TcpStream::set_linger) to
    /// zero before closing to discard those too), so the stream's framing is
    /// broken and it is usually closed next. On a queue that has already
    /// failed, `abort` only stops the task; the first error stays.
    ///
    /// Use it to bound how long a dropped queue may hold a socket that the
    /// peer stopped reading (see [Dropping the queue](Self#dropping-the-queue-and-the-stream)).
    ///
    /// # Examples
    /// A peer that does not read: give it some time, then give up.
    /// ```
    /// use std::io::ErrorKind;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use xev::io::WriteQueue;
    /// use xev::time::timeout;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (_server, _) = listener.accept().await?; // never reads
    /// let queue = WriteQueue::with_send_buffer_size(Rc::new(client), 8192)?;
    /// let request = queue.push(vec![0; 8 << 20]);
    /// if timeout(Duration::from_millis(200), queue.flush()).await.is_err() {
    ///     queue.abort();
    /// }
    /// assert_eq!(request.await.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    /// assert_eq!(queue.queued_bytes(), 0); // the buffer is gone
    /// drop(queue); // the socket closes at the runtime's next turn
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn abort(&self) {
        let mut wakers = Vec::new();
        self.core
            .borrow_mut()
            .fail_once(queue_core::aborted, &mut wakers);
        self.drain.abort();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The stream the queue writes to.
    pub fn stream(&self) -> &TcpStream {
        self.target.stream()
    }
}

impl Drop for WriteQueue {
    /// Lets the drain task end once the queue is empty (see
    /// [Dropping the queue](WriteQueue#dropping-the-queue-and-the-stream)).
    fn drop(&mut self) {
        let drainer = self.core.borrow_mut().close();
        if let Some(drainer) = drainer {
            drainer.wake();
        }
    }
}

impl fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.core.borrow();
        f.debug_struct("WriteQueue")
            .field("len", &core.len())
            .field("queued_bytes", &core.queued_bytes())
            .field("failed", &core.has_failed())
            .finish()
    }
}

/// The outcome of one [`WriteQueue::push`]: resolves to the buffer's length
/// once the whole buffer has been written, or to the queue's error.
///
/// # Errors
/// The error of the send that failed (at this buffer or before it); kind
/// [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) if the queue was
/// [aborted](WriteQueue::abort) first; kind [`Other`](io::ErrorKind::Other)
/// if the runtime that drives the queue was shut down first. The request
/// needs no runtime to learn that: polled afterwards (on another runtime,
/// or any executor), it resolves at once.
///
/// # Cancel safety
/// Dropping it (or its `.await`) does not cancel the write; it only stops
/// observing it. Its outcome is then lost, but a failure still shows in
/// every later request and in [`flush`](WriteQueue::flush).
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// use xev::io::WriteQueue;
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// # let (server, _) = listener.accept().await?;
/// let queue = WriteQueue::new(Rc::new(client));
/// drop(queue.push("fire and forget, ")); // written all the same
/// let request = queue.push("then wait");
/// assert_eq!(request.len(), 9);
/// assert_eq!(request.await?, 9); // the whole buffer is in the kernel
///
/// let mut got = [0; 26];
/// server.read_exact(&mut got).await?;
/// assert_eq!(&got, b"fire and forget, then wait");
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
#[must_use = "the write happens anyway; await the request to learn its outcome"]
pub struct WriteRequest {
    core: Rc<RefCell<QueueCore>>,
    seq: u64,
    len: usize,
}

impl WriteRequest {
    /// The length of the buffer this request writes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Future for WriteRequest {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.core.borrow_mut().poll_request(self.seq, self.len, cx)
    }
}

impl fmt::Debug for WriteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteRequest")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .finish()
    }
}
