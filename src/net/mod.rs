//! TCP: [`TcpListener`], [`TcpStream`], [`TcpSocket`] and the owned halves
//! of a split stream.
//!
//! Each socket is registered with the runtime that created it (the one
//! current when it was constructed) and must be used on that runtime. Every
//! I/O method takes `&self`; each async method's docs say what is lost if its
//! future is dropped before it completes (`# Cancel safety`).

mod listener;
mod ready;
mod socket;
mod split;
mod stream;
mod sys;
#[cfg(feature = "tokio-io")]
mod tokio_io;

pub use listener::{Incoming, TcpListener};
pub use ready::{Interest, Ready};
pub use socket::TcpSocket;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
