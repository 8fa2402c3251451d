//! The halves of a stream split by borrowing it ([`TcpStream::split`]): a
//! reader and a writer that live no longer than the stream and cost nothing
//! to make.
//!
//! They forward to the stream's own methods; what they add is a type per
//! direction, for code that takes "something that reads" and "something
//! that writes" (`futures::io::copy`, codecs). Dropping them does nothing to
//! the connection.

use std::fmt;
use std::io;
use std::net::Shutdown;

use super::halves::{impl_half_futures_io, read_half_methods, write_half_methods};
use super::TcpStream;

pub(super) fn split(stream: &TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf { stream }, WriteHalf { stream })
}

/// The read half of a [`TcpStream`] borrowed by [`TcpStream::split`].
///
/// # Examples
/// Echoing a stream to itself with `futures::io::copy`:
/// ```
/// use std::net::Shutdown;
/// use futures::AsyncReadExt;
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///
///     client.write_all(b"echo me").await?;
///     client.shutdown(Shutdown::Write)?; // FIN: the copy below ends after these bytes
///     // `server.split()` would be futures' `AsyncReadExt::split` here.
///     let (mut read, mut write) = TcpStream::split(&server);
///     let copied = futures::io::copy(&mut read, &mut write).await?;
///     assert_eq!(copied, 7);
///     drop((read, write));
///     drop(server); // closes the connection: the echo ends
///
///     let mut echo = Vec::new();
///     (&client).read_to_end(&mut echo).await?;
///     assert_eq!(echo, b"echo me");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct ReadHalf<'a> {
    stream: &'a TcpStream,
}

/// The write half of a [`TcpStream`] borrowed by [`TcpStream::split`].
///
/// Dropping it leaves the connection as it is: unlike an
/// [`OwnedWriteHalf`](super::OwnedWriteHalf), it does not shut down the
/// write side. [`shutdown`](Self::shutdown), or closing it through
/// `AsyncWrite`, does.
///
/// # Examples
/// ```
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///
///     let (_read, write) = client.split();
///     write.write_all(b"one").await?;
///     drop(write); // no FIN
///     client.write_all(b" two").await?; // the stream still writes
///
///     let mut got = [0; 7];
///     server.read_exact(&mut got).await?;
///     assert_eq!(&got, b"one two");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct WriteHalf<'a> {
    stream: &'a TcpStream,
}

impl ReadHalf<'_> {
    read_half_methods!();
}

impl WriteHalf<'_> {
    write_half_methods!();

    /// Shuts down the write side of the stream: the peer reads end of
    /// stream. (Dropping the half does not.)
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

/// The stream both halves borrow, e.g. to set options after the split.
///
/// # Examples
/// ```
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (read, _write) = client.split();
/// read.as_ref().set_nodelay(true)?;
/// assert!(client.nodelay()?);
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
impl AsRef<TcpStream> for ReadHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.stream
    }
}

/// The stream both halves borrow, e.g. to set options after the split.
impl AsRef<TcpStream> for WriteHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.stream
    }
}

impl fmt::Debug for ReadHalf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadHalf").field(self.stream).finish()
    }
}

impl fmt::Debug for WriteHalf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteHalf").field(self.stream).finish()
    }
}

impl_half_futures_io!(read: ReadHalf<'_>; write: WriteHalf<'_>);
