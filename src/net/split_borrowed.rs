//! The halves of a stream split by borrowing it ([`TcpStream::split`]): a
//! reader and a writer that live no longer than the stream and cost nothing
//! to make.
//!
//! They forward to the stream's own methods; what they add is a type per
//! direction, for code that takes "something that reads" and "something
//! that writes" (`futures::io::copy`, codecs). Dropping them does nothing to
//! the connection.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::TcpStream;

pub(super) fn split(stream: &TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf { stream }, WriteHalf { stream })
}

/// The read half of a [`TcpStream`] borrowed by [`TcpStream::split`].
///
/// # Examples
/// Echoing a stream to itself with `futures::io::copy`:
/// ```
/// use std::net::Shutdown;
/// use futures::AsyncReadExt;
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///
///     client.write_all(b"echo me").await?;
///     client.shutdown(Shutdown::Write)?; // FIN: the copy below ends after these bytes
///     // `server.split()` would be futures' `AsyncReadExt::split` here.
///     let (mut read, mut write) = TcpStream::split(&server);
///     let copied = futures::io::copy(&mut read, &mut write).await?;
///     assert_eq!(copied, 7);
///     drop((read, write));
///     drop(server); // closes the connection: the echo ends
///
///     let mut echo = Vec::new();
///     (&client).read_to_end(&mut echo).await?;
///     assert_eq!(echo, b"echo me");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct ReadHalf<'a> {
    stream: &'a TcpStream,
}

/// The write half of a [`TcpStream`] borrowed by [`TcpStream::split`].
///
/// Dropping it leaves the connection as it is: unlike an
/// [`OwnedWriteHalf`](super::OwnedWriteHalf), it does not shut down the
/// write side. [`shutdown`](Self::shutdown), or closing it through
/// `AsyncWrite`, does.
///
/// # Examples
/// ```
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///
///     let (_read, write) = client.split();
///     write.write_all(b"one").await?;
///     drop(write); // no FIN
///     client.write_all(b" two").await?; // the stream still writes
///
///     let mut got = [0; 7];
///     server.read_exact(&mut got).await?;
///     assert_eq!(&got, b"one two");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct WriteHalf<'a> {
    stream: &'a TcpStream,
}

impl ReadHalf<'_> {
    /// See [`TcpStream::read`].
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, no data
    /// was read.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    /// See [`TcpStream::read_exact`].
    ///
    /// # Cancel safety
    /// Not cancel safe: bytes read before the future is dropped are lost
    /// (they are in `buf`, but how many is unknown).
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        self.stream.read_exact(buf).await
    }

    /// See [`TcpStream::read_vectored`].
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, no data
    /// was read.
    pub async fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.stream.read_vectored(bufs).await
    }

    /// See [`TcpStream::peek`].
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }

    /// See [`TcpStream::readable`].
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no data and no readiness.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// See [`TcpStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}

impl WriteHalf<'_> {
    /// See [`TcpStream::write`].
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, nothing
    /// was written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf).await
    }

    /// See [`TcpStream::write_all`].
    ///
    /// # Cancel safety
    /// Not cancel safe: an unknown prefix of `buf` may have been written.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf).await
    }

    /// See [`TcpStream::write_vectored`].
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes, nothing
    /// was written.
    pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs).await
    }

    /// See [`TcpStream::writable`].
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no readiness.
    pub async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// See [`TcpStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }

    /// Shuts down the write side of the stream: the peer reads end of
    /// stream. (Dropping the half does not.)
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}

/// The stream both halves borrow, e.g. to set options after the split.
///
/// # Examples
/// ```
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (read, _write) = client.split();
/// read.as_ref().set_nodelay(true)?;
/// assert!(client.nodelay()?);
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
impl AsRef<TcpStream> for ReadHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.stream
    }
}

/// The stream both halves borrow, e.g. to set options after the split.
impl AsRef<TcpStream> for WriteHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.stream
    }
}

impl fmt::Debug for ReadHalf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadHalf").field(self.stream).finish()
    }
}

impl fmt::Debug for WriteHalf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteHalf").field(self.stream).finish()
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_read_priv(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_read_vectored_priv(cx, bufs)
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_vectored_priv(cx, bufs)
    }

    /// Sends are not buffered in user space: nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts down the write side: the peer reads end of stream.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown())
    }
}
