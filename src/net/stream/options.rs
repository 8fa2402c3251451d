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
    /// reset the connection (RST) instead of a graceful FIN.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(&self.io).set_linger(linger)
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
