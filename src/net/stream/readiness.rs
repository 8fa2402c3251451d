//! Waiting for readiness, and operations that never wait.

use std::future::poll_fn;
use std::io::{self, Read};

use super::TcpStream;
use crate::rt::reactor::Direction;

impl TcpStream {
    /// Waits until the stream may be readable (libxev's `poll` for reading).
    /// The readiness can be spurious: follow with [`try_read`](Self::try_read),
    /// which says `WouldBlock` if it was.
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no data and no readiness.
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// client.write_all(b"data").await?;
    ///
    /// let mut buf = [0; 64];
    /// let n = loop {
    ///     server.readable().await?;
    ///     match server.try_read(&mut buf) {
    ///         Ok(n) => break n,
    ///         Err(e) if e.kind() == ErrorKind::WouldBlock => continue, // spurious
    ///         Err(e) => return Err(e),
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"data");
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        let mut waiting = self.registration.waiting(Direction::Read);
        poll_fn(|cx| {
            self.registration
                .poll_ready(cx, Direction::Read, waiting.key())
        })
        .await
    }

    /// Waits until the stream may be writable; see [`readable`](Self::readable).
    ///
    /// # Cancel safety
    /// Cancel safe: waiting consumes no readiness.
    pub async fn writable(&self) -> io::Result<()> {
        let mut waiting = self.registration.waiting(Direction::Write);
        poll_fn(|cx| {
            self.registration
                .poll_ready(cx, Direction::Write, waiting.key())
        })
        .await
    }

    /// Reads without waiting: [`WouldBlock`](io::ErrorKind::WouldBlock) if no
    /// data is ready. `Ok(0)` means end of stream (or an empty `buf`). See
    /// [`readable`](Self::readable) for the loop that waits between tries.
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// # use xev::net::{TcpListener, TcpStream};
    /// # xev::rt::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let _client = TcpStream::connect(listener.local_addr()?).await?;
    /// # let (server, _) = listener.accept().await?;
    /// let mut buf = [0; 16];
    /// // Nothing has been sent: no waiting, just `WouldBlock`.
    /// let error = server.try_read(&mut buf).unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::WouldBlock);
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.registration
            .try_transfer(Direction::Read, len, || (&self.io).read(buf))
    }

    /// Writes without waiting: [`WouldBlock`](io::ErrorKind::WouldBlock) if the
    /// socket's send buffer is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.registration
            .try_transfer(Direction::Write, buf.len(), || self.send(buf))
    }
}
