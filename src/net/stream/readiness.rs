//! Waiting for readiness, and operations that never wait.
//!
//! Waiting takes none of the task's cooperative I/O budget; the `try_*`
//! operations do, so a loop of `writable()` and `try_write` still yields to
//! the other tasks once the budget is spent.

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::task::{Context, Poll};

use super::TcpStream;
use crate::net::{sys, Interest, Ready};
use crate::rt::reactor::Direction;
#[cfg(target_os = "linux")]
use crate::rt::reactor::ReadInto;

impl TcpStream {
    /// Waits until the stream may be readable (libxev's `poll` for reading).
    /// The readiness can be spurious: follow with [`try_read`](Self::try_read),
    /// which says `WouldBlock` if it was.
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no data and no readiness.
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"data").await?;
    ///
    /// let mut buf = [0; 64];
    /// let n = loop {
    ///     server.readable().await?;
    ///     match server.try_read(&mut buf) {
    ///         Ok(n) => break n,
    ///         Err(e) if e.kind() == ErrorKind::WouldBlock => continue, // spurious
    ///         Err(e) => return Err(e),
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"data");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(|cx| {
            self.registration
                .poll_ready(cx, Direction::Read, waiting.key())
        })
        .await
    }

    /// Waits until the stream may be writable; see [`readable`](Self::readable).
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no readiness.
    pub async fn writable(&self) -> io::Result<()> {
        let mut waiting = self.registration.waiting(Direction::Write);
        poll_fn(|cx| {
            self.registration
                .poll_ready(cx, Direction::Write, waiting.key())
        })
        .await
    }

    /// Reads without waiting: [`WouldBlock`](io::ErrorKind::WouldBlock) if no
    /// data is ready. `Ok(0)` means end of stream (or an empty `buf`). See
    /// [`readable`](Self::readable) for the loop that waits between tries.
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let _client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// let mut buf = [0; 16];
    /// // Nothing has been sent: no waiting, just `WouldBlock`.
    /// let error = server.try_read(&mut buf).unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::WouldBlock);
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = self.registration.ring_io() {
            if let Some(result) = self.registration.try_ring_read(ring, ReadInto::Buf(buf)) {
                return result;
            }
        }
        let len = buf.len();
        self.registration
            .try_transfer(Direction::Read, len, || (&self.io).read(buf))
    }

    /// Writes without waiting: [`WouldBlock`](io::ErrorKind::WouldBlock) if the
    /// socket's send buffer is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.registration
            .try_transfer(Direction::Write, buf.len(), || self.send(buf))
    }

    /// Waits until the stream is ready for any of `interest`'s directions,
    /// and says which readiness it found (a closed direction counts as
    /// ready). Follow with `try_read`/`try_write` (or [`try_io`](Self::try_io)),
    /// which say `WouldBlock` if the readiness was spurious.
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no data and no readiness.
    ///
    /// # Examples
    /// One task serving both directions of a connection:
    /// ```
    /// use std::io::ErrorKind;
    /// use xev::net::Interest;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"ping").await?;
    ///
    /// let ready = server.ready(Interest::READABLE | Interest::WRITABLE).await?;
    /// assert!(ready.is_writable()); // an idle connection can always send
    /// let mut buf = [0; 4];
    /// loop {
    ///     server.ready(Interest::READABLE).await?;
    ///     match server.try_read(&mut buf) {
    ///         Ok(n) => break assert_eq!(&buf[..n], b"ping"),
    ///         Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        let mut read = self.registration.waiting(Direction::Read);
        let mut write = self.registration.waiting(Direction::Write);
        poll_fn(|cx| {
            let wanted = [
                (interest.is_readable(), Direction::Read, &mut read),
                (interest.is_writable(), Direction::Write, &mut write),
            ];
            for (wanted, direction, waiting) in wanted {
                if !wanted {
                    continue;
                }
                match self.registration.poll_ready(cx, direction, waiting.key()) {
                    Poll::Ready(Ok(())) => {
                        let ready = self.registration.readiness() & interest.mask();
                        return Poll::Ready(Ok(Ready::from_bits(ready)));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Polls for read readiness: `Ready(Ok(()))` once the stream may be
    /// readable, else stores `cx`'s waker and is pending.
    ///
    /// Any number of callers may poll at once; each waker stays stored until
    /// readiness wakes it (a caller that gives up costs one spurious wake
    /// later). The [`readable`](Self::readable) future removes its waker
    /// when dropped.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.registration.poll_ready(cx, Direction::Read, None)
    }

    /// Polls for write readiness; see [`poll_read_ready`](Self::poll_read_ready).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.registration.poll_ready(cx, Direction::Write, None)
    }

    /// [`try_read`](Self::try_read) into several buffers in order (`readv`;
    /// at most 1024 of them are filled by one call).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let bufs = sys::max_iov_mut(bufs);
        #[cfg(target_os = "linux")]
        if let Some(ring) = self.registration.ring_io() {
            if let Some(result) = self
                .registration
                .try_ring_read(ring, ReadInto::Vectored(&mut *bufs))
            {
                return result;
            }
        }
        let len = bufs.iter().map(|buf| buf.len()).sum();
        self.registration
            .try_transfer(Direction::Read, len, || (&self.io).read_vectored(bufs))
    }

    /// [`try_write`](Self::try_write) from several buffers in order, with one
    /// `sendmsg` (at most 1024 of them are sent from by one call).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let bufs = sys::max_iov(bufs);
        let len = bufs.iter().map(|buf| buf.len()).sum();
        self.registration
            .try_transfer(Direction::Write, len, || self.send_vectored(bufs))
    }

    /// Runs `f`, an operation of your own on the socket (through
    /// [`AsFd`](std::os::fd::AsFd) or [`SockRef`](socket2::SockRef)), if the
    /// stream is believed ready for `interest`; says `WouldBlock` without
    /// calling `f` otherwise.
    ///
    /// If `f` returns `WouldBlock`, the readiness it was called on is
    /// cleared, and the next [`ready`](Self::ready) waits for the kernel to
    /// report a change; so `f` must return `WouldBlock` only when the socket
    /// said so.
    ///
    /// # Examples
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use xev::net::Interest;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"raw").await?;
    ///
    /// let mut buf = [0; 8];
    /// let n = loop {
    ///     server.readable().await?;
    ///     let raw = socket2::SockRef::from(&server);
    ///     match server.try_io(Interest::READABLE, || (&*raw).read(&mut buf)) {
    ///         Ok(n) => break n,
    ///         Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"raw");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        self.registration.try_io(interest.mask(), f)
    }
}
