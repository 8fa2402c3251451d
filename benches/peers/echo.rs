//! The echo server every peer implements, and how the harness sets it up and
//! watches it.
//!
//! The server accepts exactly `conns` connections, echoes whatever each one
//! sends until it closes, and returns once all of them have closed. Each
//! connection gets its own buffer of `buf_size` bytes; `TCP_NODELAY` is set
//! on every accepted connection.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// What an echo server reports to the harness as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerPhase {
    /// The runtime is built and the listener registered; nothing accepted.
    Listening,
    /// Every connection is accepted and waiting for data (its task has run
    /// up to its first read).
    Idle,
}

/// The echo server's instructions.
pub struct EchoConfig {
    pub conns: usize,
    pub buf_size: usize,
    /// Called on the server thread at each [`ServerPhase`]. Only the memory
    /// scenario needs it; without it the server skips the short pause that
    /// makes sure every connection reached its first read.
    pub observer: Option<Box<dyn FnMut(ServerPhase) + Send>>,
}

impl EchoConfig {
    pub fn new(conns: usize, buf_size: usize) -> EchoConfig {
        EchoConfig {
            conns,
            buf_size,
            observer: None,
        }
    }

    pub fn notify(&mut self, phase: ServerPhase) {
        if let Some(observer) = &mut self.observer {
            observer(phase);
        }
    }
}

/// A non-blocking listener on 127.0.0.1, an ephemeral port, `SO_REUSEADDR`
/// and a backlog of 1024 (std's `bind` uses 128, too few for a burst of
/// 10,000 connects). Every peer is handed the same kind of listener.
pub fn listener() -> io::Result<(TcpListener, SocketAddr)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    let listener = TcpListener::from(socket);
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
