//! Reads and sends: the futures, and the `poll_*` functions the I/O traits
//! call.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::task::{ready, Context, Poll};

use socket2::SockRef;

use super::TcpStream;
use crate::net::sys;
use crate::rt::reactor::Direction;
#[cfg(target_os = "linux")]
use crate::rt::reactor::ReadInto;
use crate::rt::waiters::WaitKey;

impl TcpStream {
    /// Reads into `buf`, waiting until at least one byte is available.
    /// `Ok(0)` means the peer closed its side (end of stream), or `buf` is
    /// empty.
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, no data
    /// was read.
    ///
    /// # Examples
    /// Reading until the peer closes:
    /// ```
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"ping").await?;
    /// drop(client);
    ///
    /// let mut buf = [0; 1024];
    /// let mut got = Vec::new();
    /// loop {
    ///     match server.read(&mut buf).await? {
    ///         0 => break, // end of stream
    ///         n => got.extend_from_slice(&buf[..n]),
    ///     }
    /// }
    /// assert_eq!(got, b"ping");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn read<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(move |cx| self.poll_read_with(cx, buf, waiting.key()))
    }

    /// Reads exactly `buf.len()` bytes.
    ///
    /// # Errors
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) if the stream ends first.
    ///
    /// # Cancel safety
    /// Not cancel safe: bytes read before the future is dropped are lost
    /// (they are in `buf`, but how many is unknown).
    pub fn read_exact<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<()>> + 'a {
        let mut filled = 0;
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(move |cx| {
            while filled < buf.len() {
                match ready!(self.poll_read_with(cx, &mut buf[filled..], waiting.key()))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                    n => filled += n,
                }
            }
            Poll::Ready(Ok(()))
        })
    }

    /// Like [`read`](Self::read), into several buffers in order (`readv`).
    ///
    /// # Cancel safety
    /// Cancel safe, as `read`: if the future is dropped before it completes,
    /// no data was read.
    pub async fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(|cx| self.poll_read_vectored_with(cx, bufs, waiting.key())).await
    }

    /// Reads into `buf` without removing the bytes from the socket's queue:
    /// the next read returns them again.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed.
    ///
    /// # Examples
    /// ```
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"GET /").await?;
    ///
    /// let mut head = [0; 4];
    /// let n = server.peek(&mut head).await?; // look at the first bytes...
    /// assert_eq!(&head[..n], b"GET ");
    /// let mut all = [0; 5];
    /// server.read_exact(&mut all).await?; // ...which are still there to read
    /// assert_eq!(&all, b"GET /");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(|cx| {
            #[cfg(target_os = "linux")]
            if let Some(ring) = self.registration.ring_io() {
                return self.registration.poll_ring_read(
                    ring,
                    cx,
                    ReadInto::Buf(&mut *buf),
                    true,
                    waiting.key(),
                );
            }
            self.registration
                .poll_io(cx, Direction::Read, || self.io.peek(buf), waiting.key())
        })
        .await
    }

    /// Writes some of `buf` with one send, waiting until the socket can take
    /// at least one byte; returns how many bytes it took, which may be fewer
    /// than `buf.len()`.
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, nothing
    /// was written.
    ///
    /// # Examples
    /// What [`write_all`](Self::write_all) does, by hand:
    /// ```
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// let msg = b"hello";
    /// let mut sent = 0;
    /// while sent < msg.len() {
    ///     sent += client.write(&msg[sent..]).await?; // may take only a part
    /// }
    ///
    /// let mut got = [0; 5];
    /// server.read_exact(&mut got).await?;
    /// assert_eq!(&got, msg);
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn write<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        let mut waiting = self.registration.waiting(Direction::Write);
        poll_fn(move |cx| self.poll_write_with(cx, buf, waiting.key()))
    }

    /// Writes all of `buf`, with as many sends as it takes.
    ///
    /// # Cancel safety
    /// Not cancel safe: if the future is dropped, an unknown prefix of `buf`
    /// has been written. Use a [`WriteQueue`](crate::io::WriteQueue) to hand
    /// buffers over and not care.
    pub fn write_all<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + 'a {
        let mut written = 0;
        let mut waiting = self.registration.waiting(Direction::Write);
        poll_fn(move |cx| {
            while written < buf.len() {
                match ready!(self.poll_write_with(cx, &buf[written..], waiting.key()))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => written += n,
                }
            }
            Poll::Ready(Ok(()))
        })
    }

    /// Like [`write`](Self::write), from several buffers in order, with one
    /// `sendmsg`.
    ///
    /// # Cancel safety
    /// Cancel safe, as `write`: if the future is dropped before it completes,
    /// nothing was written.
    pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut waiting = self.registration.waiting(Direction::Write);
        poll_fn(|cx| self.poll_write_vectored_with(cx, bufs, waiting.key())).await
    }

    /// Passes a send's outcome on; under `IoUring`, a reset it reports
    /// also reaches a reader whose receive in the ring ended with 0.
    #[inline]
    pub(super) fn noted<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        #[cfg(target_os = "linux")]
        if let (Poll::Ready(Err(error)), Some(ring)) = (&result, self.registration.ring_io()) {
            ring.note_send_error(error);
        }
        result
    }

    /// One `send` with the no-`SIGPIPE` flag.
    pub(super) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        SockRef::from(&self.io).send_with_flags(buf, sys::SEND_FLAGS)
    }

    /// One `sendmsg` with the no-`SIGPIPE` flag.
    pub(super) fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        SockRef::from(&self.io).send_vectored_with_flags(bufs, sys::SEND_FLAGS)
    }

    /// Polls a read, waiting loosely (for callers with nowhere to keep a
    /// waiter key: the `poll_*` trait methods).
    pub(crate) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, buf, None)
    }

    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        #[cfg(target_os = "linux")]
        if let Some(ring) = self.registration.ring_io() {
            return self
                .registration
                .poll_ring_read(ring, cx, ReadInto::Buf(buf), false, key);
        }
        let len = buf.len();
        self.registration
            .poll_transfer(cx, Direction::Read, len, || (&self.io).read(buf), key)
    }

    pub(crate) fn poll_read_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_vectored_with(cx, bufs, None)
    }

    /// At most [`sys::MAX_IOV`] slices go to the kernel: the length that
    /// tells a short read is theirs, not the whole array's.
    fn poll_read_vectored_with(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = self.registration.ring_io() {
            return self.registration.poll_ring_read(
                ring,
                cx,
                ReadInto::Vectored(bufs),
                false,
                key,
            );
        }
        let bufs = sys::max_iov_mut(bufs);
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        self.registration.poll_transfer(
            cx,
            Direction::Read,
            len,
            || (&self.io).read_vectored(bufs),
            key,
        )
    }

    /// Polls a send, waiting loosely (see [`poll_read_priv`](Self::poll_read_priv)).
    pub(crate) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, buf, None)
    }

    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.noted(self.registration.poll_transfer(
            cx,
            Direction::Write,
            buf.len(),
            || self.send(buf),
            key,
        ))
    }

    pub(crate) fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_with(cx, bufs, None)
    }

    /// At most [`sys::MAX_IOV`] slices go to the kernel (more would fail
    /// with `EMSGSIZE`); the length that tells a short send is theirs.
    fn poll_write_vectored_with(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        let bufs = sys::max_iov(bufs);
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        self.noted(self.registration.poll_transfer(
            cx,
            Direction::Write,
            len,
            || self.send_vectored(bufs),
            key,
        ))
    }
}
