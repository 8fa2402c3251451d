//! tokio's I/O traits, [`tokio::io::AsyncRead`] and [`tokio::io::AsyncWrite`],
//! for [`TcpStream`], `&TcpStream` and the owned and borrowed halves
//! (feature `tokio-io`).
//!
//! They let crates written against tokio's traits — `tokio-util`'s codecs,
//! TLS wrappers, `tokio::io::copy` — drive xev's sockets. Only the traits are
//! used: no tokio runtime runs, and none is needed; the futures they produce
//! are driven by xev's reactor like every other xev future.
//!
//! tokio reads into a [`ReadBuf`] whose tail may be uninitialised memory.
//! xev is safe code only, so a read first zeroes the part of the buffer it
//! reads into (once per `ReadBuf`: it remembers what it has initialised).
//! That part is capped at [`MAX_READ`] bytes: codecs hand over all the spare
//! capacity of their buffer, which after one large frame can be megabytes,
//! and zeroing all of it for every read would cost more than the read. The
//! semantics are those of the `futures-io` impls: reads
//! and writes are single syscalls, flushing does nothing (nothing is buffered
//! in user space), and shutdown closes the write side, so the peer reads end
//! of stream.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, TcpStream, WriteHalf};

/// Most bytes one read takes (and zeroes first, if the `ReadBuf` has not
/// initialised them): more than a loopback read usually returns, little
/// enough that zeroing it costs about what the kernel's copy does.
const MAX_READ: usize = 64 * 1024;

/// One read into the unfilled part of `buf`.
fn poll_read_buf(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let len = buf.remaining().min(MAX_READ);
    let n = ready!(stream.poll_read_priv(cx, buf.initialize_unfilled_to(len)))?;
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// Forwards tokio's `AsyncWrite` to the stream returned by `$stream`.
macro_rules! impl_async_write {
    ($ty:ty, |$this:ident| $stream:expr) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $stream.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $stream.poll_write_vectored_priv(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            /// Sends are not buffered in user space: nothing to flush.
            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Shuts down the write side: the peer reads end of stream.
            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $this = &*self;
                Poll::Ready($stream.shutdown(Shutdown::Write))
            }
        }
    };
}

/// Forwards tokio's `AsyncRead` to the stream returned by `$stream`.
macro_rules! impl_async_read {
    ($ty:ty, |$this:ident| $stream:expr) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                poll_read_buf($stream, cx, buf)
            }
        }
    };
}

impl_async_read!(TcpStream, |this| this);
impl_async_read!(&TcpStream, |this| *this);
impl_async_read!(OwnedReadHalf, |this| this.stream());
impl_async_read!(ReadHalf<'_>, |this| this.as_ref());

impl_async_write!(TcpStream, |this| this);
impl_async_write!(&TcpStream, |this| *this);
impl_async_write!(OwnedWriteHalf, |this| this.stream());
impl_async_write!(WriteHalf<'_>, |this| this.as_ref());
