use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::{TcpListener, TcpStream};

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

    /// Allows several sockets to bind the same address and port
    /// (`SO_REUSEPORT`; Unix only, `Unsupported` elsewhere).
    pub fn set_reuseport(&self, reuse: bool) -> io::Result<()> {
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        return self.socket.set_reuse_port(reuse);
        #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
        {
            let _ = reuse;
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    /// Sets the send buffer size (`SO_SNDBUF`); Linux doubles the value and
    /// enforces a minimum of about 4.5 KiB.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.socket.set_send_buffer_size(size as usize)
    }

    /// Sets the receive buffer size (`SO_RCVBUF`).
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.socket.set_recv_buffer_size(size as usize)
    }

    /// Turns Nagle's algorithm off (`true`) or on (`TCP_NODELAY`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.set_tcp_nodelay(nodelay)
    }

    /// Turns TCP keep-alive probes on or off (`SO_KEEPALIVE`).
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.socket.set_keepalive(keepalive)
    }

    /// Sets `SO_LINGER`; `Some(Duration::ZERO)` makes close send a reset.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.socket.set_linger(linger)
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
