//! Queued writes: [`WriteQueue`], libxev's write queue as futures.
//!
//! The `futures-io` traits ([`AsyncRead`](futures_io::AsyncRead) and
//! [`AsyncWrite`](futures_io::AsyncWrite)) are implemented by
//! [`TcpStream`](crate::net::TcpStream), `&TcpStream` and the owned halves,
//! so the `futures` crate's I/O utilities work with them.

mod write_queue;

pub use write_queue::{WriteBuf, WriteQueue, WriteRequest, WriteTarget};

/// Also here, where tokio has them (`tokio::io::{Interest, Ready}`).
pub use crate::net::{Interest, Ready};
