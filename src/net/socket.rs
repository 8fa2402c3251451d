use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::{sys, TcpListener, TcpStream};

/// A TCP socket not yet connected or listening: set options, then
/// [`bind`](Self::bind) and [`listen`](Self::listen), or
/// [`connect`](Self::connect). This is libxev's `init` / `bind` / `listen` /
/// `connect` split.
///
/// # Examples
/// ```
/// use xev::net::TcpSocket;
///
/// xev::rt::block_on(async {
///     let socket = TcpSocket::new_v4()?;
///     socket.set_reuseaddr(true)?;
///     socket.bind("127.0.0.1:0".parse().unwrap())?;
///     let listener = socket.listen(128)?;
///
///     let client = TcpSocket::new_v4()?;
///     client.set_send_buffer_size(8192)?;
///     client.set_nodelay(true)?;
///     let stream = client.connect(listener.local_addr()?).await?;
///     assert!(stream.nodelay()?);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpSocket {
    socket: Socket,
}

impl TcpSocket {
    /// A new IPv4 TCP socket.
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV4)
    }

    /// A new IPv6 TCP socket.
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV6)
    }

    /// A new TCP socket of the family of `addr`.
    pub fn for_addr(addr: &SocketAddr) -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::for_address(*addr))
    }

    /// Turns a `std` stream into a `TcpSocket`, to set options socket2 or
    /// `std` can create a socket with and xev cannot, then
    /// [`connect`](Self::connect) or [`listen`](Self::listen) with xev. It
    /// is switched to non-blocking mode.
    ///
    /// # Examples
    /// A socket made with socket2, then connected with xev:
    /// ```
    /// use socket2::{Domain, Socket, Type};
    /// use xev::net::{TcpListener, TcpSocket};
    ///
    /// xev::rt::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let raw = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    ///     let socket = TcpSocket::from_std_stream(raw.into());
    ///     let stream = socket.connect(listener.local_addr()?).await?;
    ///     assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn from_std_stream(stream: std::net::TcpStream) -> TcpSocket {
        let socket = Socket::from(stream);
        // This fails only for a descriptor that is not a socket, which the
        // first `bind`, `listen` or `connect` then reports.
        let _ = socket.set_nonblocking(true);
        TcpSocket { socket }
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        // socket2 creates it close-on-exec, as std does.
        let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        Ok(TcpSocket { socket })
    }

    /// Allows binding to an address in `TIME_WAIT` (`SO_REUSEADDR`).
    pub fn set_reuseaddr(&self, reuse: bool) -> io::Result<()> {
        self.socket.set_reuse_address(reuse)
    }

    /// Whether `SO_REUSEADDR` is set.
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_reuseaddr(true)?;
    /// assert!(socket.reuseaddr()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.socket.reuse_address()
    }

    /// Allows several sockets to bind the same address and port
    /// (`SO_REUSEPORT`; Unix only, `Unsupported` elsewhere). See
    /// [`TcpListener::bind_reuseport`] for what that does to listeners.
    pub fn set_reuseport(&self, reuse: bool) -> io::Result<()> {
        sys::set_reuse_port(SockRef::from(&self.socket), reuse)
    }

    /// Whether `SO_REUSEPORT` is set (Unix only, `Unsupported` elsewhere).
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_reuseport(true)?;
    /// assert!(socket.reuseport()?);
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn reuseport(&self) -> io::Result<bool> {
        sys::reuse_port(SockRef::from(&self.socket))
    }

    /// Sets the send buffer size (`SO_SNDBUF`); Linux doubles the value and
    /// enforces a minimum of about 4.5 KiB.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.socket.set_send_buffer_size(size as usize)
    }

    /// The send buffer size (`SO_SNDBUF`), as the kernel reports it (Linux
    /// reports twice the value set, to account for its bookkeeping).
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_send_buffer_size(64 * 1024)?;
    /// assert!(socket.send_buffer_size()? >= 64 * 1024);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        self.socket.send_buffer_size().map(saturate)
    }

    /// Sets the receive buffer size (`SO_RCVBUF`); the kernel may round it
    /// (Linux doubles it).
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.socket.set_recv_buffer_size(size as usize)
    }

    /// The receive buffer size (`SO_RCVBUF`), as the kernel reports it.
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_recv_buffer_size(64 * 1024)?;
    /// assert!(socket.recv_buffer_size()? >= 64 * 1024);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        self.socket.recv_buffer_size().map(saturate)
    }

    /// Turns Nagle's algorithm off (`true`) or on (`TCP_NODELAY`). A
    /// connected stream keeps the setting.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.set_tcp_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`).
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_nodelay(true)?;
    /// assert!(socket.nodelay()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.tcp_nodelay()
    }

    /// Turns TCP keep-alive probes on or off (`SO_KEEPALIVE`).
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.socket.set_keepalive(keepalive)
    }

    /// Whether TCP keep-alive probes are on (`SO_KEEPALIVE`).
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_keepalive(true)?;
    /// assert!(socket.keepalive()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn keepalive(&self) -> io::Result<bool> {
        self.socket.keepalive()
    }

    /// Sets `SO_LINGER`; `Some(Duration::ZERO)` makes close send a reset
    /// (see [`set_zero_linger`](Self::set_zero_linger)).
    ///
    /// A non-zero duration makes closing the socket block the thread, and so
    /// the runtime, until the unsent data is acknowledged or the time runs
    /// out: prefer `shutdown` and reading to end of stream.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.socket.set_linger(linger)
    }

    /// Sets `SO_LINGER` to zero: closing the socket (or the stream it
    /// becomes) aborts the connection with a reset (RST) instead of the
    /// FIN handshake. Unsent data is discarded, the peer's next read or
    /// write fails with [`ConnectionReset`](io::ErrorKind::ConnectionReset),
    /// and this end skips `TIME_WAIT`. Closing never blocks.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_zero_linger()?;
    /// assert_eq!(socket.linger()?, Some(Duration::ZERO));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.socket.set_linger(Some(Duration::ZERO))
    }

    /// The `SO_LINGER` setting: `None` when off (the default).
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// assert_eq!(socket.linger()?, None);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.socket.linger()
    }

    /// Sets the type-of-service field of outgoing IPv4 packets (`IP_TOS`),
    /// e.g. a DSCP class for routers to prioritize. It may have no effect
    /// on an IPv6 socket; `Unsupported` on platforms without the option.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_tos_v4(0x10)?; // "minimize delay"
    /// assert_eq!(socket.tos_v4()?, 0x10);
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        sys::set_tos_v4(SockRef::from(&self.socket), tos)
    }

    /// The type-of-service field of outgoing IPv4 packets (`IP_TOS`); see
    /// [`set_tos_v4`](Self::set_tos_v4).
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// assert_eq!(socket.tos_v4()?, 0); // the default
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn tos_v4(&self) -> io::Result<u32> {
        sys::tos_v4(SockRef::from(&self.socket))
    }

    /// The older name of [`set_tos_v4`](Self::set_tos_v4), the same option;
    /// kept so code written for it keeps working.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_tos(0x10)?;
    /// assert_eq!(socket.tos_v4()?, 0x10);
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.set_tos_v4(tos)
    }

    /// The older name of [`tos_v4`](Self::tos_v4), the same option; kept
    /// so code written for it keeps working.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v4()?;
    /// socket.set_tos_v4(0x08)?;
    /// assert_eq!(socket.tos()?, 0x08);
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn tos(&self) -> io::Result<u32> {
        self.tos_v4()
    }

    /// Sets the traffic class field of outgoing IPv6 packets
    /// (`IPV6_TCLASS`), IPv6's type-of-service. It may have no effect on an
    /// IPv4 socket; `Unsupported` on platforms without the option.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v6()?;
    /// socket.set_tclass_v6(0x10)?;
    /// assert_eq!(socket.tclass_v6()?, 0x10);
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_tclass_v6(&self, tclass: u32) -> io::Result<()> {
        sys::set_tclass_v6(SockRef::from(&self.socket), tclass)
    }

    /// The traffic class field of outgoing IPv6 packets (`IPV6_TCLASS`);
    /// see [`set_tclass_v6`](Self::set_tclass_v6).
    ///
    /// # Examples
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let socket = xev::net::TcpSocket::new_v6()?;
    /// assert_eq!(socket.tclass_v6()?, 0); // the default
    /// # }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn tclass_v6(&self) -> io::Result<u32> {
        sys::tclass_v6(SockRef::from(&self.socket))
    }

    /// Restricts an IPv6 socket to IPv6 (`IPV6_V6ONLY`): with `false`, a
    /// socket bound to `[::]` also takes IPv4 connections, from
    /// IPv4-mapped addresses. The default depends on the system (Linux:
    /// `false`, from `net.ipv6.bindv6only`; Windows: `true`). Set it before
    /// [`bind`](Self::bind). An IPv4 socket has no such option (an error).
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v6()?;
    /// socket.set_only_v6(true)?;
    /// assert!(socket.only_v6()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        self.socket.set_only_v6(only_v6)
    }

    /// Whether an IPv6 socket is restricted to IPv6 (`IPV6_V6ONLY`); see
    /// [`set_only_v6`](Self::set_only_v6).
    ///
    /// # Examples
    /// ```
    /// let socket = xev::net::TcpSocket::new_v6()?;
    /// socket.set_only_v6(false)?;
    /// assert!(!socket.only_v6()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn only_v6(&self) -> io::Result<bool> {
        self.socket.only_v6()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// Binds the socket to a local address.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.socket.bind(&addr.into())
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
    }

    /// Starts listening, with room for `backlog` connections waiting to be
    /// accepted.
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self.socket.listen(backlog)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(self.socket.into()))
    }

    /// Connects to `addr`. Resolves once the connection is established; a
    /// refused connection fails with
    /// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused).
    ///
    /// # Cancel safety
    /// Dropping the future closes the socket; no connection is left behind.
    ///
    /// # Panics
    /// Outside a runtime (at the first poll).
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        match self.socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(error) if connect_in_progress(&error) => {}
            Err(error) => return Err(error),
        }
        let stream = TcpStream::from_mio(mio::net::TcpStream::from_std(self.socket.into()))?;
        stream.finish_connect().await
    }
}

/// Saturates a `usize` socket option to the `u32` xev's API uses.
fn saturate(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

/// Whether a non-blocking `connect` has started and will finish later.
fn connect_in_progress(error: &io::Error) -> bool {
    #[cfg(unix)]
    const EINPROGRESS: i32 = if cfg!(any(
        target_os = "linux",
        target_os = "android",
        target_os = "fuchsia"
    )) {
        115
    } else {
        36
    };
    #[cfg(unix)]
    if error.raw_os_error() == Some(EINPROGRESS) {
        return true;
    }
    error.kind() == io::ErrorKind::WouldBlock
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

#[cfg(unix)]
mod fd {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

    use super::TcpSocket;

    impl AsFd for TcpSocket {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.socket.as_fd()
        }
    }

    impl AsRawFd for TcpSocket {
        fn as_raw_fd(&self) -> RawFd {
            self.socket.as_raw_fd()
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

    use super::TcpSocket;

    impl AsSocket for TcpSocket {
        fn as_socket(&self) -> BorrowedSocket<'_> {
            self.socket.as_socket()
        }
    }

    impl AsRawSocket for TcpSocket {
        fn as_raw_socket(&self) -> RawSocket {
            self.socket.as_raw_socket()
        }
    }
}
