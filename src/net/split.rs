use std::fmt;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;

use super::halves::{impl_half_futures_io, read_half_methods, write_half_methods};
use super::TcpStream;

pub(super) fn split(stream: Rc<TcpStream>) -> (OwnedReadHalf, OwnedWriteHalf) {
    (
        OwnedReadHalf {
            stream: stream.clone(),
        },
        OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        },
    )
}

/// The read half of a [`TcpStream`], from [`TcpStream::into_split`].
///
/// # Examples
/// ```
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (read, write) = client.into_split();
///     drop(write); // sends FIN
///     let mut buf = [0; 8];
///     assert_eq!(server.read(&mut buf).await?, 0);
///     server.write_all(b"still open").await?;
///     let mut got = [0; 10];
///     read.read_exact(&mut got).await?;
///     assert_eq!(&got, b"still open");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct OwnedReadHalf {
    stream: Rc<TcpStream>,
}

/// The write half of a [`TcpStream`], from [`TcpStream::into_split`].
///
/// Dropping it shuts down the write side of the connection: the peer reads
/// end of stream, while the read half keeps working. (Not so when
/// [`reunite`](OwnedReadHalf::reunite) takes it back.)
///
/// # Examples
/// A task writes through the half; when the task ends, the half is dropped
/// and the peer reads end of stream.
/// ```
/// use futures::AsyncReadExt;
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (_read, write) = client.into_split();
///     let writer = xev::rt::spawn(async move { write.write_all(b"from a task").await });
///     writer.await.unwrap()?; // the task is over: `write` was dropped, FIN sent
///
///     let mut got = Vec::new();
///     (&server).read_to_end(&mut got).await?; // ends at the FIN
///     assert_eq!(got, b"from a task");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct OwnedWriteHalf {
    stream: Rc<TcpStream>,
    /// False once `reunite` has taken the stream back: the write side
    /// stays open.
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
    read_half_methods!();

    /// The stream, for trait impls in other modules.
    #[cfg_attr(not(feature = "tokio-io"), allow(dead_code))]
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    /// The halves, unchanged, if they come from different streams.
    pub fn reunite(self, write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !Rc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        let stream = write.forget();
        drop(self);
        Ok(Rc::into_inner(stream).expect("both halves of one stream were given back"))
    }
}

impl OwnedWriteHalf {
    write_half_methods!();

    /// Shuts down the write side now (what dropping the half does).
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// The stream, for [`WriteQueue`](crate::io::WriteQueue) and options.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Gives up the half without shutting down the write side. The half's
    /// own `Rc` is dropped, so the caller's can become the only one.
    fn forget(mut self) -> Rc<TcpStream> {
        self.shutdown_on_drop = false;
        Rc::clone(&self.stream)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // Errors mean the connection is already gone, which is what was asked.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

/// The halves given to [`OwnedReadHalf::reunite`] came from different streams.
///
/// It holds both halves, unchanged (the write half has not shut anything
/// down), so they can be paired up again.
///
/// # Examples
/// ```
/// use xev::net::{ReuniteError, TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (client_read, client_write) = client.into_split();
///     let (server_read, server_write) = server.into_split();
///
///     let ReuniteError(client_read, server_write) =
///         client_read.reunite(server_write).unwrap_err();
///     let client = client_read.reunite(client_write).expect("same stream");
///     let server = server_read.reunite(server_write).expect("same stream");
///     client.write_all(b"still open").await?; // no half was shut down
///     let mut got = [0; 10];
///     server.read_exact(&mut got).await?;
///     assert_eq!(&got, b"still open");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same stream")
    }
}

impl std::error::Error for ReuniteError {}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&*self.stream).finish()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedWriteHalf")
            .field(&*self.stream)
            .finish()
    }
}

/// The stream both halves share, e.g. to set options after the split.
///
/// # Examples
/// ```
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (read, write) = client.into_split();
/// read.as_ref().set_nodelay(true)?;
/// assert!(write.as_ref().nodelay()?);
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
impl AsRef<TcpStream> for OwnedReadHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.stream
    }
}

/// The stream both halves share, e.g. to set options after the split.
impl AsRef<TcpStream> for OwnedWriteHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.stream
    }
}

impl_half_futures_io!(read: OwnedReadHalf; write: OwnedWriteHalf);
