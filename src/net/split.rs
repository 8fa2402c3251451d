use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::TcpStream;

pub(super) fn split(stream: Rc<TcpStream>) -> (OwnedReadHalf, OwnedWriteHalf) {
    (
        OwnedReadHalf {
            stream: stream.clone(),
        },
        OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        },
    )
}

/// The read half of a [`TcpStream`], from [`TcpStream::into_split`].
///
/// # Examples
/// ```
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (read, write) = client.into_split();
///     drop(write); // sends FIN
///     let mut buf = [0; 8];
///     assert_eq!(server.read(&mut buf).await?, 0);
///     server.write_all(b"still open").await?;
///     let mut got = [0; 10];
///     read.read_exact(&mut got).await?;
///     assert_eq!(&got, b"still open");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct OwnedReadHalf {
    stream: Rc<TcpStream>,
}

/// The write half of a [`TcpStream`], from [`TcpStream::into_split`].
///
/// Dropping it shuts down the write side of the connection: the peer reads
/// end of stream, while the read half keeps working. (Not so when
/// [`reunite`](OwnedReadHalf::reunite) takes it back.)
///
/// # Examples
/// A task writes through the half; when the task ends, the half is dropped
/// and the peer reads end of stream.
/// ```
/// use futures::AsyncReadExt;
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (_read, write) = client.into_split();
///     let writer = xev::rt::spawn(async move { write.write_all(b"from a task").await });
///     writer.await.unwrap()?; // the task is over: `write` was dropped, FIN sent
///
///     let mut got = Vec::new();
///     (&server).read_to_end(&mut got).await?; // ends at the FIN
///     assert_eq!(got, b"from a task");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct OwnedWriteHalf {
    stream: Rc<TcpStream>,
    /// False once `reunite` has taken the stream back: the write side
    /// stays open.
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
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

    /// The stream, for trait impls in other modules.
    #[cfg_attr(not(feature = "tokio-io"), allow(dead_code))]
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    /// The halves, unchanged, if they come from different streams.
    pub fn reunite(self, write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !Rc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        let stream = write.forget();
        drop(self);
        Ok(Rc::into_inner(stream).expect("both halves of one stream were given back"))
    }
}

impl OwnedWriteHalf {
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

    /// Shuts down the write side now (what dropping the half does).
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

    /// The stream, for [`WriteQueue`](crate::io::WriteQueue) and options.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Gives up the half without shutting down the write side. The half's
    /// own `Rc` is dropped, so the caller's can become the only one.
    fn forget(mut self) -> Rc<TcpStream> {
        self.shutdown_on_drop = false;
        Rc::clone(&self.stream)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // Errors mean the connection is already gone, which is what was asked.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

/// The halves given to [`OwnedReadHalf::reunite`] came from different streams.
///
/// It holds both halves, unchanged (the write half has not shut anything
/// down), so they can be paired up again.
///
/// # Examples
/// ```
/// use xev::net::{ReuniteError, TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (client_read, client_write) = client.into_split();
///     let (server_read, server_write) = server.into_split();
///
///     let ReuniteError(client_read, server_write) =
///         client_read.reunite(server_write).unwrap_err();
///     let client = client_read.reunite(client_write).expect("same stream");
///     let server = server_read.reunite(server_write).expect("same stream");
///     client.write_all(b"still open").await?; // no half was shut down
///     let mut got = [0; 10];
///     server.read_exact(&mut got).await?;
///     assert_eq!(&got, b"still open");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same stream")
    }
}

impl std::error::Error for ReuniteError {}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&*self.stream).finish()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedWriteHalf")
            .field(&*self.stream)
            .finish()
    }
}

/// The stream both halves share, e.g. to set options after the split.
///
/// # Examples
/// ```
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (read, write) = client.into_split();
/// read.as_ref().set_nodelay(true)?;
/// assert!(write.as_ref().nodelay()?);
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
impl AsRef<TcpStream> for OwnedReadHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.stream
    }
}

/// The stream both halves share, e.g. to set options after the split.
impl AsRef<TcpStream> for OwnedWriteHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for OwnedReadHalf {
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

impl AsyncWrite for OwnedWriteHalf {
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

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts down the write side: the peer reads end of stream.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown())
    }
}
