//! [`Io`]: a futures-io stream as hyper's `Read` + `Write`, with an
//! optional write timeout.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use pin_project_lite::pin_project;

use super::sleep::SendSleep;

/// Bytes read per `poll_read` at most: hyper's read buffer grows up to its
/// `max_buf_size` (about 400 KiB by default) when reads keep filling it.
const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// The buffer reads land in before they are copied into hyper's: one
    /// per thread (reads on a thread run one at a time), not one per
    /// connection.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

pin_project! {
    /// A stream that speaks futures-io ([`TcpStream`](crate::net::TcpStream),
    /// its halves, a TLS stream such as futures-rustls's) as hyper's
    /// [`Read`](hyper::rt::Read) and [`Write`](hyper::rt::Write): what
    /// hyper's `serve_connection` and `handshake` take.
    ///
    /// hyper reads into a cursor over possibly uninitialised memory, which
    /// safe code cannot fill in place. `Io` stays safe: a read lands in
    /// a buffer of the thread's (64 KiB, shared by every `Io` on the thread)
    /// and is copied into hyper's; a `memcpy` of what one syscall returned
    /// costs little next to the syscall.
    ///
    /// Writes go straight through. `Io` tells hyper it writes vectored, so
    /// hyper hands over a response's head and body as separate slices
    /// instead of copying them into one buffer: xev's streams send them with
    /// one `sendmsg`, and futures-rustls encrypts them in one go. For a
    /// stream whose `poll_write_vectored` is futures-io's default (it writes
    /// the first slice only) this is still correct, at the cost of more
    /// writes; hyper's `writev(false)` switches it off.
    ///
    /// # Write timeout
    /// A peer that stops reading makes writes wait for ever, and the
    /// connection with them. With [`set_write_timeout`](Io::set_write_timeout),
    /// a write (or flush, or shutdown) that has been waiting for `timeout`
    /// without the peer taking a single byte fails with
    /// [`TimedOut`](io::ErrorKind::TimedOut), which makes hyper end the
    /// connection. Any progress starts the clock again, so a slow reader is
    /// served; a reader that stalls is cut off. The timer is an xev timer,
    /// so with a timeout set, `Io` must be polled on an xev runtime.
    ///
    /// # Examples
    /// An HTTP/1.1 server and client on one runtime:
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Empty, Full};
    /// use hyper::{Request, Response};
    /// use xev::hyper::{Io, Timer};
    /// use xev::net::{TcpListener, TcpStream};
    ///
    /// xev::rt::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     xev::rt::spawn(async move {
    ///         let (stream, _) = listener.accept().await?;
    ///         let mut io = Io::new(stream);
    ///         io.set_write_timeout(Some(Duration::from_secs(10)));
    ///         let service = hyper::service::service_fn(|_request| async {
    ///             Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("hello"))))
    ///         });
    ///         hyper::server::conn::http1::Builder::new()
    ///             .timer(Timer::new())
    ///             .header_read_timeout(Duration::from_secs(5))
    ///             .serve_connection(io, service)
    ///             .await
    ///             .map_err(std::io::Error::other)
    ///     });
    ///
    ///     let stream = TcpStream::connect(addr).await?;
    ///     let (mut sender, connection) = hyper::client::conn::http1::handshake(Io::new(stream))
    ///         .await
    ///         .map_err(std::io::Error::other)?;
    ///     xev::rt::spawn(connection);
    ///     let request = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
    ///     let response = sender.send_request(request).await.map_err(std::io::Error::other)?;
    ///     let body = response.into_body().collect().await.map_err(std::io::Error::other)?;
    ///     assert_eq!(body.to_bytes(), "hello");
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub struct Io<T> {
        #[pin]
        inner: T,
        write_timeout: Option<Duration>,
        // Armed when a write first waits, dropped when a write completes:
        // fires once the peer has taken nothing for `write_timeout`.
        stall: Option<SendSleep>,
    }
}

impl<T> Io<T> {
    /// Wraps `inner`, with no write timeout.
    pub fn new(inner: T) -> Io<T> {
        Io {
            inner,
            write_timeout: None,
            stall: None,
        }
    }

    /// The wrapped stream.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Sets how long a write may wait without the peer taking any byte
    /// before it fails with [`TimedOut`](io::ErrorKind::TimedOut); `None`
    /// (the default) waits for ever. See [the type's docs](Io#write-timeout).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut io = xev::hyper::Io::new(futures::io::Cursor::new(Vec::<u8>::new()));
    /// io.set_write_timeout(Some(Duration::from_secs(30)));
    /// assert_eq!(io.write_timeout(), Some(Duration::from_secs(30)));
    /// ```
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
        self.stall = None;
    }

    /// The write timeout, if any.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }
}

/// Passes a write-side poll through, watching for a stall: a `Pending`
/// arms the stall timer (once), any result drops it.
fn watch<R>(
    poll: Poll<io::Result<R>>,
    write_timeout: Option<Duration>,
    stall: &mut Option<SendSleep>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    if poll.is_ready() {
        *stall = None;
        return poll;
    }
    let Some(timeout) = write_timeout else {
        return Poll::Pending;
    };
    let sleep = stall.get_or_insert_with(|| {
        let now = crate::time::now();
        SendSleep::until(
            now.checked_add(timeout)
                .unwrap_or_else(|| crate::time::far_future(now)),
        )
    });
    ready!(Pin::new(sleep).poll(cx));
    *stall = None;
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "write timed out: the peer took no data for {timeout:?} (xev::hyper::Io's write \
             timeout); it is not reading, so the connection is given up"
        ),
    )))
}

impl<T: AsyncRead> hyper::rt::Read for Io<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.project().inner;
        let mut read_into = |scratch: &mut [u8]| {
            let len = buf.remaining().min(scratch.len());
            let n = ready!(inner.as_mut().poll_read(cx, &mut scratch[..len]))?;
            buf.put_slice(&scratch[..n]);
            Poll::Ready(Ok(()))
        };
        let shared = SCRATCH.try_with(|scratch| {
            // Busy only if a stream's `poll_read` reads another `Io`.
            let mut scratch = scratch.try_borrow_mut().ok()?;
            Some(read_into(&mut scratch))
        });
        match shared {
            Ok(Some(poll)) => poll,
            _ => read_into(&mut vec![0; SCRATCH_BYTES]),
        }
    }
}

impl<T: AsyncWrite> hyper::rt::Write for Io<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write(cx, buf);
        watch(poll, *this.write_timeout, this.stall, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write_vectored(cx, bufs);
        watch(poll, *this.write_timeout, this.stall, cx)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_flush(cx);
        watch(poll, *this.write_timeout, this.stall, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_close(cx);
        watch(poll, *this.write_timeout, this.stall, cx)
    }
}

impl<T: fmt::Debug> fmt::Debug for Io<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("inner", &self.inner)
            .field("write_timeout", &self.write_timeout)
            .finish()
    }
}
