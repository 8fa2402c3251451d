//! Socket options of a connected stream.

use std::io;
use std::time::Duration;

use socket2::SockRef;

use super::TcpStream;

impl TcpStream {
    /// Whether Nagle's algorithm is off (`TCP_NODELAY`).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.nodelay()
    }

    /// Turns Nagle's algorithm off (`true`) or on (`TCP_NODELAY`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.set_nodelay(nodelay)
    }

    /// The send buffer size (`SO_SNDBUF`), as the kernel reports it (Linux
    /// reports twice the value set, to account for its bookkeeping).
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        SockRef::from(&self.io).send_buffer_size().map(saturate)
    }

    /// Sets the send buffer size (`SO_SNDBUF`); the kernel may round it.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        SockRef::from(&self.io).set_send_buffer_size(size as usize)
    }

    /// The receive buffer size (`SO_RCVBUF`), as the kernel reports it.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        SockRef::from(&self.io).recv_buffer_size().map(saturate)
    }

    /// Sets the receive buffer size (`SO_RCVBUF`); the kernel may round it.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        SockRef::from(&self.io).set_recv_buffer_size(size as usize)
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(&self.io).linger()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes closing the stream
    /// reset the connection (RST) instead of a graceful FIN (see
    /// [`set_zero_linger`](Self::set_zero_linger)).
    ///
    /// A non-zero duration makes dropping the stream block the thread, and
    /// so the runtime, until the unsent data is acknowledged or the time
    /// runs out: prefer [`shutdown`](Self::shutdown) and reading to end of
    /// stream.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(&self.io).set_linger(linger)
    }

    /// Sets `SO_LINGER` to zero: dropping the stream aborts the connection
    /// with a reset (RST) instead of the FIN handshake. Unsent data is
    /// discarded, the peer's next read or write fails with
    /// [`ConnectionReset`](io::ErrorKind::ConnectionReset), and this end
    /// skips `TIME_WAIT`. Dropping never blocks.
    ///
    /// # Examples
    /// Aborting a connection: the peer sees a reset, not end of stream.
    /// ```
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.set_zero_linger()?;
    /// assert_eq!(client.linger()?, Some(Duration::ZERO));
    /// drop(client);
    ///
    /// let mut buf = [0; 16];
    /// let error = server.read(&mut buf).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// The IP time-to-live of outgoing packets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.ttl()
    }

    /// Sets the IP time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.set_ttl(ttl)
    }
}

/// Saturates a `usize` socket option to the `u32` xev's API uses.
fn saturate(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}
