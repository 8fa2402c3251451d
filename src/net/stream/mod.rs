use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use socket2::SockRef;

mod options;
mod readiness;
mod transfer;

use super::split::{OwnedReadHalf, OwnedWriteHalf};
use super::split_borrowed::{ReadHalf, WriteHalf};
use super::sys;
use super::{TcpSocket, ToSocketAddrs};
use crate::rt::reactor::{Direction, Registration};

/// A TCP connection registered with the current runtime.
///
/// Get one from [`TcpStream::connect`], [`TcpListener::accept`](super::TcpListener::accept)
/// or [`TcpSocket::connect`]. Every method takes `&self`, so one task can
/// read while another writes, sharing the stream through an `Rc` (or with
/// [`into_split`](Self::into_split)). Two tasks reading at once (or writing at once)
/// is allowed but rarely meaningful: the bytes go to whichever polls first.
///
/// Sends never raise `SIGPIPE`: writing to a connection the peer has closed
/// fails with [`BrokenPipe`](io::ErrorKind::BrokenPipe) or
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset).
///
/// Dropping the stream closes it.
///
/// # Examples
/// ```
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = xev::rt::spawn(async move {
///         let (stream, _) = listener.accept().await?;
///         let mut buf = [0; 5];
///         stream.read_exact(&mut buf).await?;
///         stream.write_all(&buf).await?;
///         std::io::Result::Ok(())
///     });
///     let client = TcpStream::connect(addr).await?;
///     client.write_all(b"hello").await?;
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo).await?;
///     assert_eq!(&echo, b"hello");
///     server.await??;
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpStream {
    /// Dropped first: under `IoUring` its drop may submit operations that
    /// name the descriptor, which must still be open then.
    registration: Registration,
    io: mio::net::TcpStream,
}

impl TcpStream {
    /// The stream's handle on the reactor.
    #[cfg(target_os = "linux")]
    pub(crate) fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Wraps a connected or connecting mio stream.
    pub(crate) fn from_mio(mut io: mio::net::TcpStream) -> io::Result<TcpStream> {
        sys::prepare(SockRef::from(&io))?;
        let registration = Registration::new_stream(&mut io, "`TcpStream` construction")?;
        Ok(TcpStream { registration, io })
    }

    /// Opens a connection to `addr`, trying each address it resolves to in
    /// turn until one connects; fails with the last address's error.
    ///
    /// A refused connection fails here with
    /// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused); a stream is
    /// only returned once the kernel reports the connection established.
    ///
    /// `addr` is anything [`ToSocketAddrs`] takes. An IP address is used as
    /// it is; a host name is resolved with [`lookup_host`](super::lookup_host),
    /// on the blocking pool, so the runtime's thread never waits for DNS.
    /// The addresses are tried in the order the resolver gives them.
    ///
    /// # Cancel safety
    /// Dropping the future (e.g. in a [`timeout`](crate::time::timeout))
    /// closes the socket of the attempt in progress; no connection is left
    /// behind. A name lookup in progress finishes on its thread and its
    /// answer is dropped.
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// use xev::net::TcpStream;
    ///
    /// xev::rt::block_on(async {
    ///     // A port nothing listens on: bind one, then free it.
    ///     let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    ///     let error = TcpStream::connect(addr).await.unwrap_err();
    ///     assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last_error = None;
        for addr in super::addr::resolve(&addr).await? {
            let attempt = match TcpSocket::for_addr(&addr) {
                Ok(socket) => socket.connect(addr).await,
                Err(error) => Err(error),
            };
            match attempt {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        }))
    }

    /// Waits until a connect started on this stream has finished: writable,
    /// then `SO_ERROR` clear, then a peer address.
    pub(crate) async fn finish_connect(self) -> io::Result<TcpStream> {
        self.connected().await?;
        Ok(self)
    }

    async fn connected(&self) -> io::Result<()> {
        let mut waiting = self.registration.waiting(Direction::Write);
        poll_fn(|cx| loop {
            ready!(self
                .registration
                .poll_socket_ready(cx, Direction::Write, waiting.key()))?;
            if let Some(error) = self.io.take_error()? {
                return Poll::Ready(Err(error));
            }
            match self.io.peer_addr() {
                Ok(_) => {
                    // Reads and sends of a ring stream need no poll.
                    #[cfg(target_os = "linux")]
                    self.registration.disarm_poll();
                    return Poll::Ready(Ok(()));
                }
                // Woken before the handshake completed: wait for the next
                // event, unless the write side is closed for good.
                Err(error) if error.kind() == io::ErrorKind::NotConnected => {
                    self.registration.clear_ready(Direction::Write);
                    if self.registration.is_ready(Direction::Write) {
                        return Poll::Ready(Err(error));
                    }
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        })
        .await
    }

    /// Wraps a connected `std` stream (it is switched to non-blocking mode).
    /// `TcpStream::try_from(stream)` does the same.
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    /// Unregisters the stream and returns it as a non-blocking `std` stream.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let TcpStream {
            mut io,
            registration,
        } = self;
        #[cfg(target_os = "linux")]
        if let Some(ring) = registration.ring_io() {
            if registration.ring_holds_bytes(ring) {
                return Err(io::Error::other(
                    "xev: under the io_uring backend, this stream has a receive in flight (a \
                     read was pending or cancelled), bytes received and not yet read, or a \
                     WriteQueue send in flight: read them, or flush the queue, before `into_std`",
                ));
            }
        }
        registration.deregister(&mut io)?;
        Ok(io.into())
    }

    /// Shuts down the read side, the write side (the peer reads end of
    /// stream) or both. Shutting down a side twice is not an error.
    ///
    /// # Examples
    /// A half-close: the client says "no more requests" and still reads the
    /// reply.
    /// ```
    /// use std::net::Shutdown;
    /// use futures::AsyncReadExt;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"request").await?;
    /// client.shutdown(Shutdown::Write)?;
    ///
    /// let mut request = Vec::new();
    /// (&server).read_to_end(&mut request).await?; // ends at the client's FIN
    /// assert_eq!(request, b"request");
    /// server.write_all(b"reply").await?;
    ///
    /// let mut reply = [0; 5];
    /// client.read_exact(&mut reply).await?;
    /// assert_eq!(&reply, b"reply");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self.io.shutdown(how) {
            // Linux reports ENOTCONN once the connection is fully closed.
            Err(error)
                if error.kind() == io::ErrorKind::NotConnected && self.io.peer_addr().is_err() =>
            {
                Ok(())
            }
            result => result,
        }
    }

    /// Closes the stream, like dropping it, but first reports an error the
    /// socket has pending (`SO_ERROR`, e.g. a reset that no operation has
    /// seen yet). The socket is closed either way.
    ///
    /// # Cancel safety
    /// Completes at its first poll. Dropping the future before that closes
    /// the stream without checking for a pending error, as dropping the
    /// stream does; only that error is lost.
    ///
    /// # Examples
    /// ```
    /// use futures::AsyncReadExt;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"last words").await?;
    /// client.close().await?; // no error was pending
    ///
    /// let mut got = Vec::new();
    /// (&server).read_to_end(&mut got).await?;
    /// assert_eq!(got, b"last words");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub async fn close(self) -> io::Result<()> {
        match self.io.take_error()? {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Splits the stream into a read half and a write half that can move to
    /// different tasks. Dropping the write half shuts down the write side
    /// (the peer reads end of stream); the socket closes when both halves
    /// are gone.
    ///
    /// # Examples
    /// One task reads while another writes:
    /// ```
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// let (read, write) = server.into_split();
    /// let reader = xev::rt::spawn(async move {
    ///     let mut buf = [0; 4];
    ///     read.read_exact(&mut buf).await.map(|()| buf)
    /// });
    /// let writer = xev::rt::spawn(async move { write.write_all(b"pong").await });
    ///
    /// client.write_all(b"ping").await?;
    /// assert_eq!(&reader.await.unwrap()?, b"ping");
    /// writer.await.unwrap()?;
    /// let mut got = [0; 4];
    /// client.read_exact(&mut got).await?;
    /// assert_eq!(&got, b"pong");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        super::split::split(Rc::new(self))
    }

    /// Splits the stream into a read half and a write half that borrow it,
    /// so one future can read while another writes, in the same task (e.g.
    /// with `futures::join!`). Unlike [`into_split`](Self::into_split), no
    /// `Rc` is allocated, and dropping the write half does not shut
    /// anything down: the stream stays as it was.
    ///
    /// With `futures::AsyncReadExt` in scope, `stream.split()` calls that
    /// trait's `split` instead (it takes the stream by value and comes
    /// first in method lookup); write `TcpStream::split(&stream)` there.
    ///
    /// # Examples
    /// Reading the reply while the request is still being written:
    /// ```
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// let (read, write) = client.split();
    /// let mut reply = [0; 4];
    /// let (sent, received) = futures::join!(write.write_all(b"ping"), async {
    ///     let mut request = [0; 4];
    ///     server.read_exact(&mut request).await?;
    ///     server.write_all(b"pong").await?;
    ///     read.read_exact(&mut reply).await
    /// });
    /// sent?;
    /// received?;
    /// assert_eq!(&reply, b"pong");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn split(&self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        super::split_borrowed::split(self)
    }

    /// The local address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.take_error()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.io.local_addr().ok())
            .field("peer_addr", &self.io.peer_addr().ok())
            .finish()
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// The same as [`TcpStream::from_std`]: switches the stream to
    /// non-blocking mode and registers it with the current runtime.
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// # Examples
    /// ```
    /// use xev::net::{TcpListener, TcpStream};
    ///
    /// xev::rt::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     // A blocking connect, made before handing the stream to xev.
    ///     let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    ///     let client = TcpStream::try_from(std_stream)?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"hi").await?;
    ///     let mut got = [0; 2];
    ///     server.read_exact(&mut got).await?;
    ///     assert_eq!(&got, b"hi");
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    fn try_from(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_std(stream)
    }
}

/// `futures-io` for `TcpStream` and `&TcpStream` alike (the second lets a
/// stream shared through an `Rc` be read and written by two tasks).
macro_rules! impl_futures_io {
    ($($stream:ty),*) => {$(
        impl AsyncRead for $stream {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_priv(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_vectored_priv(cx, bufs)
            }
        }

        impl AsyncWrite for $stream {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_vectored_priv(cx, bufs)
            }

            /// Sends are not buffered in user space: nothing to flush.
            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Shuts down the write side: the peer reads end of stream.
            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }
    )*};
}

impl_futures_io!(TcpStream, &TcpStream);

#[cfg(unix)]
mod fd {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

    use super::TcpStream;

    impl AsFd for TcpStream {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.io.as_fd()
        }
    }

    impl AsRawFd for TcpStream {
        fn as_raw_fd(&self) -> RawFd {
            self.io.as_raw_fd()
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

    use super::TcpStream;

    impl AsSocket for TcpStream {
        fn as_socket(&self) -> BorrowedSocket<'_> {
            self.io.as_socket()
        }
    }

    impl AsRawSocket for TcpStream {
        fn as_raw_socket(&self) -> RawSocket {
            self.io.as_raw_socket()
        }
    }
}
