//! What every read half and every write half has, owned or borrowed: the
//! stream's methods for its direction, forwarded through `AsRef<TcpStream>`,
//! and the `futures-io` trait for it. One definition for both kinds, so they
//! cannot drift apart.

use super::TcpStream;

/// The read-direction methods of a half, inside its `impl` block.
macro_rules! read_half_methods {
    () => {
        /// See [`TcpStream::read`](crate::net::TcpStream::read).
        ///
        /// # Cancel safety
        /// Cancel safe: if the future is dropped before it completes, no data
        /// was read.
        pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.as_ref().read(buf).await
        }

        /// See [`TcpStream::read_exact`](crate::net::TcpStream::read_exact).
        ///
        /// # Cancel safety
        /// Not cancel safe: bytes read before the future is dropped are lost
        /// (they are in `buf`, but how many is unknown).
        pub async fn read_exact(&self, buf: &mut [u8]) -> std::io::Result<()> {
            self.as_ref().read_exact(buf).await
        }

        /// See [`TcpStream::read_vectored`](crate::net::TcpStream::read_vectored).
        ///
        /// # Cancel safety
        /// Cancel safe: if the future is dropped before it completes, no data
        /// was read.
        pub async fn read_vectored(
            &self,
            bufs: &mut [std::io::IoSliceMut<'_>],
        ) -> std::io::Result<usize> {
            self.as_ref().read_vectored(bufs).await
        }

        /// See [`TcpStream::peek`](crate::net::TcpStream::peek).
        ///
        /// # Cancel safety
        /// Cancel safe: nothing is consumed.
        pub async fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.as_ref().peek(buf).await
        }

        /// See [`TcpStream::readable`](crate::net::TcpStream::readable).
        ///
        /// # Cancel safety
        /// Cancel safe: waiting consumes no data and no readiness.
        pub async fn readable(&self) -> std::io::Result<()> {
            self.as_ref().readable().await
        }

        /// See [`TcpStream::ready`](crate::net::TcpStream::ready).
        ///
        /// # Cancel safety
        /// Cancel safe: waiting consumes no data and no readiness.
        pub async fn ready(
            &self,
            interest: crate::net::Interest,
        ) -> std::io::Result<crate::net::Ready> {
            self.as_ref().ready(interest).await
        }

        /// See [`TcpStream::poll_read_ready`](crate::net::TcpStream::poll_read_ready).
        pub fn poll_read_ready(
            &self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.as_ref().poll_read_ready(cx)
        }

        /// See [`TcpStream::try_read`](crate::net::TcpStream::try_read).
        pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.as_ref().try_read(buf)
        }

        /// See [`TcpStream::try_read_vectored`](crate::net::TcpStream::try_read_vectored).
        pub fn try_read_vectored(
            &self,
            bufs: &mut [std::io::IoSliceMut<'_>],
        ) -> std::io::Result<usize> {
            self.as_ref().try_read_vectored(bufs)
        }

        /// The local address of the connection.
        pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            self.as_ref().local_addr()
        }

        /// The peer's address.
        pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            self.as_ref().peer_addr()
        }
    };
}

/// The write-direction methods of a half, inside its `impl` block.
macro_rules! write_half_methods {
    () => {
        /// See [`TcpStream::write`](crate::net::TcpStream::write).
        ///
        /// # Cancel safety
        /// Cancel safe: if the future is dropped before it completes, nothing
        /// was written.
        pub async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.as_ref().write(buf).await
        }

        /// See [`TcpStream::write_all`](crate::net::TcpStream::write_all).
        ///
        /// # Cancel safety
        /// Not cancel safe: an unknown prefix of `buf` may have been written.
        pub async fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
            self.as_ref().write_all(buf).await
        }

        /// See [`TcpStream::write_vectored`](crate::net::TcpStream::write_vectored).
        ///
        /// # Cancel safety
        /// Cancel safe: if the future is dropped before it completes, nothing
        /// was written.
        pub async fn write_vectored(
            &self,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::io::Result<usize> {
            self.as_ref().write_vectored(bufs).await
        }

        /// See [`TcpStream::writable`](crate::net::TcpStream::writable).
        ///
        /// # Cancel safety
        /// Cancel safe: waiting consumes no readiness.
        pub async fn writable(&self) -> std::io::Result<()> {
            self.as_ref().writable().await
        }

        /// See [`TcpStream::ready`](crate::net::TcpStream::ready).
        ///
        /// # Cancel safety
        /// Cancel safe: waiting consumes no readiness.
        pub async fn ready(
            &self,
            interest: crate::net::Interest,
        ) -> std::io::Result<crate::net::Ready> {
            self.as_ref().ready(interest).await
        }

        /// See [`TcpStream::poll_write_ready`](crate::net::TcpStream::poll_write_ready).
        pub fn poll_write_ready(
            &self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.as_ref().poll_write_ready(cx)
        }

        /// See [`TcpStream::try_write`](crate::net::TcpStream::try_write).
        pub fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.as_ref().try_write(buf)
        }

        /// See [`TcpStream::try_write_vectored`](crate::net::TcpStream::try_write_vectored).
        pub fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            self.as_ref().try_write_vectored(bufs)
        }

        /// The local address of the connection.
        pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            self.as_ref().local_addr()
        }

        /// The peer's address.
        pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            self.as_ref().peer_addr()
        }
    };
}

/// `futures_io::AsyncRead` for read halves and `AsyncWrite` for write
/// halves (`poll_close` shuts down the write side, through the half's own
/// `shutdown`).
macro_rules! impl_half_futures_io {
    (read: $($read:ty),*; write: $($write:ty),*) => {

        $(impl futures_io::AsyncRead for $read {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::halves::stream(&*self).poll_read_priv(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::halves::stream(&*self).poll_read_vectored_priv(cx, bufs)
            }
        })*

        $(impl futures_io::AsyncWrite for $write {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::halves::stream(&*self).poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::halves::stream(&*self).poll_write_vectored_priv(cx, bufs)
            }

            /// Sends are not buffered in user space: nothing to flush.
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            /// Shuts down the write side: the peer reads end of stream.
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown())
            }
        })*
    };
}

/// The stream behind a pinned half (`Pin` has an `as_ref` of its own).
pub(super) fn stream<T: AsRef<TcpStream>>(half: &T) -> &TcpStream {
    half.as_ref()
}

pub(super) use {impl_half_futures_io, read_half_methods, write_half_methods};
