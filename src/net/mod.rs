//! TCP: [`TcpListener`], [`TcpStream`], [`TcpSocket`] and the halves of a
//! split stream (also under [`tcp`], where tokio keeps them).
//!
//! Each socket is registered with the runtime that created it (the one
//! current when it was constructed) and must be used on that runtime. Every
//! I/O method takes `&self`; each async method's docs say what is lost if its
//! future is dropped before it completes (`# Cancel safety`).

mod addr;
mod halves;
mod listener;
mod ready;
mod socket;
mod split;
mod split_borrowed;
mod stream;
pub(crate) mod sys;
#[cfg(feature = "tokio-io")]
mod tokio_io;

pub use addr::{lookup_host, ToSocketAddrs};
pub use listener::{Incoming, TcpListener};
pub use ready::{Interest, Ready};
pub use socket::TcpSocket;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use split_borrowed::{ReadHalf, WriteHalf};
pub use stream::TcpStream;

/// The halves of a split [`TcpStream`] at the paths tokio gives them
/// (`tokio::net::tcp::OwnedReadHalf` becomes `xev::net::tcp::OwnedReadHalf`);
/// the same types as in [`xev::net`](crate::net).
///
/// # Examples
/// ```
/// use xev::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (read, write): (OwnedReadHalf, OwnedWriteHalf) = client.into_split();
///     assert_eq!(read.peer_addr()?, write.peer_addr()?);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub mod tcp {
    pub use super::split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
    pub use super::split_borrowed::{ReadHalf, WriteHalf};
}
