use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::net::{OwnedWriteHalf, TcpStream};

/// Most slices one `sendmsg` is given (`IOV_MAX` on Linux and the BSDs).
const MAX_SLICES: usize = 1024;

/// Batches whose buffers average fewer bytes than this are copied into one
/// buffer and sent with `send` rather than `sendmsg`.
const COALESCE_BELOW: usize = 512;

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
/// # Dropping the queue
/// Buffers already pushed are still written: the drain task finishes them,
/// then ends and releases the stream (if it was an [`OwnedWriteHalf`] and the
/// last handle to it, the write side is then shut down). They are dropped
/// unwritten only if the runtime itself shuts down first.
///
/// # Backpressure
/// The queue takes whatever it is given. Watch [`queued_bytes`](Self::queued_bytes)
/// (or await requests or `flush`) to keep memory bounded against a slow
/// reader.
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
}

impl WriteQueue {
    /// A queue writing to `stream`: an `Rc<TcpStream>` (shared with readers)
    /// or an [`OwnedWriteHalf`].
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
        let drain = {
            let core = core.clone();
            let target = target.clone();
            async move {
                let mut staging = Vec::new();
                poll_fn(|cx| poll_drain(&core, target.stream(), &mut staging, cx)).await
            }
        };
        // Detached: the task ends by itself once the queue is dropped and
        // empty, or failed.
        drop(crate::rt::spawn(drain));
        WriteQueue { core, target }
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
    /// happen.
    pub fn push(&self, buf: impl Into<WriteBuf>) -> WriteRequest {
        let buf = buf.into();
        let len = buf.as_slice().len();
        let (seq, drainer) = {
            let mut core = self.core.borrow_mut();
            let seq = core.push(buf);
            (seq, core.drainer.take())
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
        self.core.borrow().queued_bytes
    }

    /// Buffers pushed and not yet completely written.
    pub fn len(&self) -> usize {
        self.core.borrow().entries.len()
    }

    /// Whether everything pushed has been written.
    pub fn is_empty(&self) -> bool {
        self.core.borrow().entries.is_empty()
    }

    /// The stream the queue writes to.
    pub fn stream(&self) -> &TcpStream {
        self.target.stream()
    }
}

impl Drop for WriteQueue {
    fn drop(&mut self) {
        let drainer = {
            let mut core = self.core.borrow_mut();
            core.closed = true;
            core.drainer.take()
        };
        if let Some(drainer) = drainer {
            drainer.wake();
        }
    }
}

impl fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.core.borrow();
        f.debug_struct("WriteQueue")
            .field("len", &core.entries.len())
            .field("queued_bytes", &core.queued_bytes)
            .field("failed", &core.failure.is_some())
            .finish()
    }
}

/// The outcome of one [`WriteQueue::push`]: resolves to the buffer's length
/// once the whole buffer has been written, or to the queue's error.
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

/// An owned buffer for [`WriteQueue::push`]: made from `Vec<u8>`,
/// `Box<[u8]>`, `&'static [u8]`, `&'static str`, `String`, or `Rc<[u8]>` (to
/// send one buffer to many queues without copying it).
///
/// [`push`](WriteQueue::push) takes any of these with `impl Into<WriteBuf>`;
/// naming `WriteBuf` is only needed to mix them in one collection.
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// use xev::io::WriteBuf;
///
/// let header: Rc<[u8]> = Rc::from(&b"HTTP/1.1 200 OK\r\n"[..]);
/// let bufs = [
///     WriteBuf::from("static text"),
///     WriteBuf::from(b"static bytes"),
///     WriteBuf::from(format!("{} formatted", 1)),
///     WriteBuf::from(vec![1u8, 2, 3]),
///     WriteBuf::from(vec![4u8, 5].into_boxed_slice()),
///     WriteBuf::from(header.clone()), // shares the bytes, does not copy them
/// ];
/// assert_eq!(bufs[2].as_slice(), b"1 formatted");
/// assert_eq!(bufs[5].as_slice().as_ptr(), header.as_ptr());
/// ```
pub struct WriteBuf(Repr);

enum Repr {
    Vec(Vec<u8>),
    Boxed(Box<[u8]>),
    Static(&'static [u8]),
    Shared(Rc<[u8]>),
}

impl WriteBuf {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Vec(vec) => vec,
            Repr::Boxed(boxed) => boxed,
            Repr::Static(slice) => slice,
            Repr::Shared(shared) => shared,
        }
    }
}

impl fmt::Debug for WriteBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBuf")
            .field("len", &self.as_slice().len())
            .finish()
    }
}

impl From<Vec<u8>> for WriteBuf {
    fn from(vec: Vec<u8>) -> WriteBuf {
        WriteBuf(Repr::Vec(vec))
    }
}

impl From<Box<[u8]>> for WriteBuf {
    fn from(boxed: Box<[u8]>) -> WriteBuf {
        WriteBuf(Repr::Boxed(boxed))
    }
}

impl From<&'static [u8]> for WriteBuf {
    fn from(slice: &'static [u8]) -> WriteBuf {
        WriteBuf(Repr::Static(slice))
    }
}

impl<const N: usize> From<&'static [u8; N]> for WriteBuf {
    fn from(array: &'static [u8; N]) -> WriteBuf {
        WriteBuf(Repr::Static(array))
    }
}

impl From<&'static str> for WriteBuf {
    fn from(text: &'static str) -> WriteBuf {
        WriteBuf(Repr::Static(text.as_bytes()))
    }
}

impl From<String> for WriteBuf {
    fn from(text: String) -> WriteBuf {
        WriteBuf(Repr::Vec(text.into_bytes()))
    }
}

impl From<Rc<[u8]>> for WriteBuf {
    fn from(shared: Rc<[u8]>) -> WriteBuf {
        WriteBuf(Repr::Shared(shared))
    }
}

/// What a [`WriteQueue`] writes to: an `Rc<TcpStream>` or an
/// [`OwnedWriteHalf`] (both convert with `.into()`).
///
/// With an `Rc<TcpStream>`, the caller keeps the stream to read from it.
/// With an `OwnedWriteHalf`, the queue owns the write side: once the queue is
/// dropped and drained, the half is dropped, and the peer reads end of stream.
///
/// # Examples
/// ```
/// use xev::io::WriteQueue;
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// # let (server, _) = listener.accept().await?;
/// let (_read, write) = server.into_split();
/// let queue = WriteQueue::new(write); // `OwnedWriteHalf` into `WriteTarget`
/// queue.push("bye").await?;
/// drop(queue); // releases the half: the write side is shut down
///
/// let mut got = [0; 8];
/// client.read_exact(&mut got[..3]).await?;
/// assert_eq!(&got[..3], b"bye");
/// assert_eq!(client.read(&mut got).await?, 0); // end of stream
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub struct WriteTarget(Target);

enum Target {
    Stream(Rc<TcpStream>),
    Half(OwnedWriteHalf),
}

impl WriteTarget {
    fn stream(&self) -> &TcpStream {
        match &self.0 {
            Target::Stream(stream) => stream,
            Target::Half(half) => half.stream(),
        }
    }
}

impl fmt::Debug for WriteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteTarget").field(self.stream()).finish()
    }
}

impl From<Rc<TcpStream>> for WriteTarget {
    fn from(stream: Rc<TcpStream>) -> WriteTarget {
        WriteTarget(Target::Stream(stream))
    }
}

impl From<OwnedWriteHalf> for WriteTarget {
    fn from(half: OwnedWriteHalf) -> WriteTarget {
        WriteTarget(Target::Half(half))
    }
}

/// Where the drain loop sends: the socket, or a scripted writer in tests.
trait Sink {
    fn poll_send(&self, cx: &mut Context<'_>, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
}

impl Sink for TcpStream {
    fn poll_send(&self, cx: &mut Context<'_>, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match slices {
            [one] => self.poll_write_priv(cx, one),
            many => self.poll_write_vectored_priv(cx, many),
        }
    }
}

/// Writes queued buffers until the queue is empty, the socket is full, or a
/// send fails. Ready once the queue has failed, or is dropped and empty.
///
/// `staging` is the drain task's copy buffer for batches of small buffers.
fn poll_drain(
    core: &RefCell<QueueCore>,
    sink: &impl Sink,
    staging: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut wakers = Vec::new();
    let outcome = loop {
        let mut queue = core.borrow_mut();
        if queue.failure.is_some() {
            break Poll::Ready(());
        }
        queue.complete_empty_front(&mut wakers);
        if queue.entries.is_empty() {
            if queue.closed {
                break Poll::Ready(());
            }
            match &queue.drainer {
                Some(drainer) if drainer.will_wake(cx.waker()) => {}
                _ => queue.drainer = Some(cx.waker().clone()),
            }
            break Poll::Pending;
        }
        let mut slices = Vec::with_capacity(queue.entries.len().min(MAX_SLICES));
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

/// Whether a batch is better copied into one buffer than sent as it is:
/// many small slices cost the kernel more per byte than one copy here.
fn coalesce(slices: &[IoSlice<'_>]) -> bool {
    let bytes: usize = slices.iter().map(|slice| slice.len()).sum();
    slices.len() > 1 && bytes < slices.len() * COALESCE_BELOW
}

struct Entry {
    buf: WriteBuf,
    /// The waker of this buffer's `WriteRequest`, if it was awaited.
    waker: Option<Waker>,
}

/// The error every request not yet complete when it happened reports (the
/// queue's `completed` count stops there). `io::Error` is not `Clone`, so it
/// is kept in a form that can be rebuilt for each.
struct Failure {
    os_error: Option<i32>,
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn error(&self) -> io::Error {
        match self.os_error {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// The queue without its socket: sequence numbers, buffers and waiters.
///
/// Buffer number `seq` (counting pushes from zero) is complete when
/// `seq < completed`; the buffers from `completed` on are `entries`, in
/// order, the first of them `front_written` bytes in.
struct QueueCore {
    entries: VecDeque<Entry>,
    front_written: usize,
    completed: u64,
    /// Every push so far, failed ones included: the next push's number. Not
    /// derived from `entries`, which a failure empties, so a `flush` after
    /// a failure still waits for (and so reports) the failed buffers.
    pushed: u64,
    queued_bytes: usize,
    failure: Option<Failure>,
    /// `flush` calls waiting for `completed` to reach their target.
    flush_waiters: Vec<(u64, Waker)>,
    /// The drain task, parked while the queue is empty.
    drainer: Option<Waker>,
    /// The `WriteQueue` was dropped: the drain task ends once it is empty.
    closed: bool,
    /// About one send buffer: a batch stops growing once it has this many bytes.
    batch_bytes: usize,
}

impl QueueCore {
    fn new(batch_bytes: usize) -> QueueCore {
        QueueCore {
            entries: VecDeque::new(),
            front_written: 0,
            completed: 0,
            pushed: 0,
            queued_bytes: 0,
            failure: None,
            flush_waiters: Vec::new(),
            drainer: None,
            closed: false,
            batch_bytes: batch_bytes.max(1),
        }
    }

    fn next_seq(&self) -> u64 {
        self.pushed
    }

    /// Queues `buf`; returns its sequence number. After a failure nothing
    /// is queued, and the number returned is one that reports the failure.
    fn push(&mut self, buf: WriteBuf) -> u64 {
        let seq = self.pushed;
        self.pushed += 1;
        if self.failure.is_none() {
            self.queued_bytes += buf.as_slice().len();
            self.entries.push_back(Entry { buf, waker: None });
        }
        seq
    }

    /// The unwritten bytes, as slices for one send: at most `MAX_SLICES`
    /// of them, and no more buffers once `batch_bytes` are offered.
    fn fill_slices<'a>(&'a self, slices: &mut Vec<IoSlice<'a>>) {
        let mut offered = 0;
        for (index, entry) in self.entries.iter().enumerate() {
            if slices.len() == MAX_SLICES || offered >= self.batch_bytes {
                break;
            }
            let bytes = entry.buf.as_slice();
            let bytes = if index == 0 {
                &bytes[self.front_written..]
            } else {
                bytes
            };
            if !bytes.is_empty() {
                offered += bytes.len();
                slices.push(IoSlice::new(bytes));
            }
        }
    }

    /// Completes the empty buffers at the front, which need no send.
    fn complete_empty_front(&mut self, wakers: &mut Vec<Waker>) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.buf.as_slice().len() == self.front_written)
        {
            self.complete_front(wakers);
        }
        self.wake_flushes(wakers);
    }

    fn complete_front(&mut self, wakers: &mut Vec<Waker>) {
        if let Some(entry) = self.entries.pop_front() {
            wakers.extend(entry.waker);
            self.completed += 1;
            self.front_written = 0;
        }
    }

    /// Records that a send took `n` more bytes.
    fn advance(&mut self, mut n: usize, wakers: &mut Vec<Waker>) {
        self.queued_bytes -= n;
        while let Some(entry) = self.entries.front() {
            let remaining = entry.buf.as_slice().len() - self.front_written;
            if n < remaining {
                self.front_written += n;
                n = 0;
                break;
            }
            n -= remaining;
            self.complete_front(wakers);
        }
        debug_assert_eq!(n, 0, "a send reported more bytes than it was offered");
        self.wake_flushes(wakers);
    }

    /// Fails every queued buffer (and every later push) with `error`.
    fn fail(&mut self, error: &io::Error, wakers: &mut Vec<Waker>) {
        self.failure = Some(Failure {
            os_error: error.raw_os_error(),
            kind: error.kind(),
            message: error.to_string(),
        });
        wakers.extend(self.entries.drain(..).filter_map(|entry| entry.waker));
        wakers.extend(self.flush_waiters.drain(..).map(|(_, waker)| waker));
        self.queued_bytes = 0;
        self.front_written = 0;
    }

    fn wake_flushes(&mut self, wakers: &mut Vec<Waker>) {
        let completed = self.completed;
        self.flush_waiters.retain(|(target, waker)| {
            let done = *target <= completed;
            if done {
                wakers.push(waker.clone());
            }
            !done
        });
    }

    fn poll_request(
        &mut self,
        seq: u64,
        len: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if seq < self.completed {
            return Poll::Ready(Ok(len));
        }
        if let Some(failure) = &self.failure {
            return Poll::Ready(Err(failure.error()));
        }
        let entry = &mut self.entries[(seq - self.completed) as usize];
        match &entry.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => entry.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn poll_flush(&mut self, target: u64, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if target <= self.completed {
            return Poll::Ready(Ok(()));
        }
        if let Some(failure) = &self.failure {
            return Poll::Ready(Err(failure.error()));
        }
        let known = self
            .flush_waiters
            .iter()
            .any(|(waiting, waker)| *waiting == target && waker.will_wake(cx.waker()));
        if !known {
            self.flush_waiters.push((target, cx.waker().clone()));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    //! The model test: the queue's core and drain loop against a scripted
    //! writer that takes arbitrary byte counts, says `WouldBlock`, or fails.

    use std::cell::{Cell, RefCell};
    use std::io::{self, IoSlice};
    use std::task::{Context, Poll};

    use super::{poll_drain, QueueCore, Sink, WriteBuf};

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
        fn poll_send(
            &self,
            _cx: &mut Context<'_>,
            slices: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
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
}
