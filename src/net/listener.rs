use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use mio::Interest;

use super::{TcpSocket, TcpStream};
use crate::rt::reactor::{Direction, Registration, Waiting};
use crate::rt::waiters::WaitKey;

/// The backlog [`TcpListener::bind`] listens with.
const DEFAULT_BACKLOG: u32 = 1024;

/// A TCP socket listening for connections, registered with the current
/// runtime.
///
/// # Examples
/// An echo server that accepts connections forever:
/// ```no_run
/// use xev::net::TcpListener;
///
/// #[xev::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:7000")?;
///     loop {
///         let (stream, _peer) = listener.accept().await?;
///         xev::rt::spawn(async move {
///             let mut buf = vec![0; 4096];
///             while let Ok(n @ 1..) = stream.read(&mut buf).await {
///                 if stream.write_all(&buf[..n]).await.is_err() {
///                     break;
///                 }
///             }
///         });
///     }
/// }
/// ```
pub struct TcpListener {
    io: mio::net::TcpListener,
    registration: Registration,
}

impl TcpListener {
    pub(crate) fn from_mio(mut io: mio::net::TcpListener) -> io::Result<TcpListener> {
        let registration =
            Registration::new(&mut io, Interest::READABLE, "`TcpListener` construction")?;
        Ok(TcpListener { io, registration })
    }

    /// Binds to `addr` and listens, with `SO_REUSEADDR` set on Unix (so a
    /// restarted server can rebind a port in `TIME_WAIT`) and a backlog of
    /// 1024. If `addr` resolves to several addresses, each is tried in turn.
    /// Use [`TcpSocket`] for other options.
    ///
    /// Unlike tokio's, `bind` is not `async`: it never waits for the
    /// network. A host name in `addr` (`"localhost:8080"`) is resolved here,
    /// on the calling thread, by the system resolver; pass an IP address
    /// (`"127.0.0.1:8080"`, a [`SocketAddr`]) to keep the runtime's thread
    /// from ever blocking on DNS.
    ///
    /// # Errors
    /// [`AddrInUse`](io::ErrorKind::AddrInUse) if another socket listens there.
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        bind_each(addr, |addr| {
            let socket = TcpSocket::for_addr(&addr)?;
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(DEFAULT_BACKLOG)
        })
    }

    /// Binds to `addr` and listens like [`bind`](Self::bind), with
    /// `SO_REUSEPORT` (and `SO_REUSEADDR`) set before binding, so several
    /// listeners — in one process or several, on one thread each — can
    /// share one address and port. Each must be bound this way.
    ///
    /// What Linux does with such a group:
    /// - Each new connection goes to one listener, chosen by a hash of its
    ///   addresses and ports: the load spreads evenly over many clients,
    ///   not round-robin, and a listener whose thread is busy still gets its
    ///   share.
    /// - Closing one listener resets the connections waiting in its backlog
    ///   (not yet accepted), unless the sysctl `net.ipv4.tcp_migrate_req` is
    ///   1 (Linux 5.14 and later), which moves them to another listener of
    ///   the group.
    /// - Only sockets of the same user can join a group.
    ///
    /// The BSDs and macOS allow the shared bind, but may give every
    /// connection to one listener; Windows has no `SO_REUSEPORT`.
    ///
    /// # Errors
    /// [`Unsupported`](io::ErrorKind::Unsupported) on platforms without
    /// `SO_REUSEPORT` (Windows): bind one listener there and accept from it.
    /// [`AddrInUse`](io::ErrorKind::AddrInUse) if a socket not bound this
    /// way listens there.
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// # Examples
    /// Two listeners on one port; each connection reaches one of them:
    /// ```
    /// use xev::net::{TcpListener, TcpStream};
    ///
    /// # #[cfg(target_os = "linux")]
    /// xev::rt::block_on(async {
    ///     let first = TcpListener::bind_reuseport("127.0.0.1:0")?;
    ///     let addr = first.local_addr()?;
    ///     let second = TcpListener::bind_reuseport(addr)?;
    ///     assert_eq!(second.local_addr()?, addr);
    ///
    ///     let client = TcpStream::connect(addr).await?;
    ///     let (server, _) = futures::future::select(
    ///         Box::pin(first.accept()),
    ///         Box::pin(second.accept()),
    ///     )
    ///     .await
    ///     .factor_first()
    ///     .0?;
    ///     assert_eq!(server.peer_addr()?, client.local_addr()?);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        bind_each(addr, |addr| {
            let socket = TcpSocket::for_addr(&addr)?;
            // First, so that a platform without it fails before anything is set.
            socket.set_reuseport(true)?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(DEFAULT_BACKLOG)
        })
    }

    /// Accepts a connection, waiting for one if none is pending, and returns
    /// it with the peer's address.
    ///
    /// Errors such as `EMFILE` (too many open files) are returned as they
    /// are, and the connection that caused them stays in the backlog: a
    /// server should log, wait a little and retry, rather than stop or spin:
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn serve(listener: xev::net::TcpListener) {
    /// loop {
    ///     match listener.accept().await {
    ///         Ok((stream, _peer)) => drop(stream), // hand it to a task
    ///         Err(error) => {
    ///             eprintln!("accept failed: {error}");
    ///             xev::time::sleep(Duration::from_millis(100)).await;
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: a connection is only taken from the backlog by the poll
    /// that returns it, so dropping the future loses none.
    ///
    /// # Examples
    /// ```
    /// use xev::net::{TcpListener, TcpStream};
    ///
    /// xev::rt::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, peer) = listener.accept().await?;
    ///     assert_eq!(peer, client.local_addr()?);
    ///     assert_eq!(server.local_addr()?, client.peer_addr()?);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(|cx| self.poll_accept_with(cx, waiting.key())).await
    }

    /// Polls for a connection; see [`accept`](Self::accept).
    ///
    /// Any number of tasks may poll at once: all are woken when a connection
    /// arrives. A caller that stops polling before it is woken leaves its
    /// waker stored until the next connection (one spurious wake); the
    /// [`accept`](Self::accept) future removes its own when dropped.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.poll_accept_with(cx, None)
    }

    fn poll_accept_with(
        &self,
        cx: &mut Context<'_>,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (io, addr) =
            ready!(self
                .registration
                .poll_io(cx, Direction::Read, || self.io.accept(), key))?;
        Poll::Ready(TcpStream::from_mio(io).map(|stream| (stream, addr)))
    }

    /// The accepted connections as a [`Stream`] (without the peer addresses);
    /// it never ends, and yields accept errors as items: an `Err` is not the
    /// end of the stream, so handle it as [`accept`](Self::accept) describes.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use xev::net::{TcpListener, TcpStream};
    ///
    /// xev::rt::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     let clients = xev::rt::spawn(async move {
    ///         let first = TcpStream::connect(addr).await?;
    ///         let second = TcpStream::connect(addr).await?;
    ///         std::io::Result::Ok([first.local_addr()?, second.local_addr()?])
    ///     });
    ///
    ///     let mut peers = Vec::new();
    ///     let mut incoming = listener.incoming().take(2);
    ///     while let Some(stream) = incoming.next().await {
    ///         peers.push(stream?.peer_addr()?);
    ///     }
    ///     assert_eq!(peers, clients.await.unwrap()?);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            waiting: self.registration.waiting(Direction::Read),
        }
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Wraps a listening `std` socket (it is switched to non-blocking mode).
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    /// Unregisters the listener and returns it as a non-blocking `std`
    /// listener.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let TcpListener {
            mut io,
            registration,
        } = self;
        registration.deregister(&mut io)?;
        Ok(io.into())
    }

    /// The IP time-to-live of accepted connections' packets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.ttl()
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.set_ttl(ttl)
    }
}

/// Binds with `bind` to each address `addr` resolves to, in turn, until one
/// succeeds; fails with the last address's error.
fn bind_each(
    addr: impl ToSocketAddrs,
    bind: impl Fn(SocketAddr) -> io::Result<TcpListener>,
) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        match bind(addr) {
            Ok(listener) => return Ok(listener),
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

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;

    /// The same as [`TcpListener::from_std`]: switches the listener to
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
    ///     let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let listener = TcpListener::try_from(std_listener)?;
    ///     let client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (_server, peer) = listener.accept().await?;
    ///     assert_eq!(peer, client.local_addr()?);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    fn try_from(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(listener)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.io.local_addr().ok())
            .finish()
    }
}

/// The stream of connections from [`TcpListener::incoming`].
///
/// # Cancel safety
/// Awaiting the next item (`StreamExt::next`) is cancel safe, as
/// [`accept`](TcpListener::accept) is: no connection is lost.
///
/// # Examples
/// ```
/// use futures::TryStreamExt;
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let mut incoming = listener.incoming();
///     let connect = TcpStream::connect(listener.local_addr()?);
///     let (client, server) = futures::join!(connect, incoming.try_next());
///     let server = server?.expect("`Incoming` never ends");
///     assert_eq!(server.peer_addr()?, client?.local_addr()?);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    /// Its place among the listener's waiters, freed when it is dropped.
    waiting: Waiting<'a>,
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", self.listener)
            .finish_non_exhaustive()
    }
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let accepted = ready!(this.listener.poll_accept_with(cx, this.waiting.key()));
        Poll::Ready(Some(accepted.map(|(stream, _)| stream)))
    }
}

#[cfg(unix)]
mod fd {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

    use super::TcpListener;

    impl AsFd for TcpListener {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.io.as_fd()
        }
    }

    impl AsRawFd for TcpListener {
        fn as_raw_fd(&self) -> RawFd {
            self.io.as_raw_fd()
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

    use super::TcpListener;

    impl AsSocket for TcpListener {
        fn as_socket(&self) -> BorrowedSocket<'_> {
            self.io.as_socket()
        }
    }

    impl AsRawSocket for TcpListener {
        fn as_raw_socket(&self) -> RawSocket {
            self.io.as_raw_socket()
        }
    }
}
