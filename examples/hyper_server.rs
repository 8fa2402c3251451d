//! HTTP/1.1 with [hyper] 1.x on xev: one thread, one task per connection,
//! keep-alive on.
//!
//! hyper brings its own I/O traits, `hyper::rt::Read` and `hyper::rt::Write`;
//! [`HyperIo`] below adapts anything that speaks `futures-io` (xev's
//! `TcpStream` and its halves do) to them. hyper needs an executor only for
//! HTTP/2, so HTTP/1 needs nothing else: `serve_connection` returns a future,
//! and `xev::rt::spawn` runs it (it is not `Send`, which xev does not ask).
//!
//! ```text
//! cargo run --release --example hyper_server [-- --addr 127.0.0.1:3000]
//! curl http://127.0.0.1:3000/                        # Hello, World!
//! curl --data 'some bytes' http://127.0.0.1:3000/echo
//! ```
//!
//! `tests/hyper.rs` runs [`serve`] and talks HTTP/1.1 to it over `std::net`;
//! `examples/hyper_tokio.rs` is the same server on tokio, for comparison
//! (`benches/README.md`, "HTTP (hyper)").
//!
//! [hyper]: https://docs.rs/hyper

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncWrite};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use xev::net::TcpListener;

fn main() -> io::Result<()> {
    let addr = parse_addr()?;
    xev::rt::block_on(async {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("listening on http://{}", listener.local_addr()?);
        serve(listener).await;
        Ok(())
    })
}

/// Accepts connections forever and serves HTTP/1.1 on each, in a task of its
/// own.
pub async fn serve(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            // Out of file descriptors and the like: back off rather than
            // retry in a tight loop; the connection waits in the backlog.
            Err(error) => {
                eprintln!("accept failed: {error}; retrying in 100 ms");
                xev::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Responses go out in one write each; don't let Nagle hold the last
        // segment back waiting for an ACK.
        let _ = stream.set_nodelay(true);
        // Detached: the task ends when the connection does.
        drop(xev::rt::spawn(async move {
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(HyperIo::new(stream), service_fn(respond));
            if let Err(error) = connection.await {
                // A client that hangs up mid-request is routine, not news.
                if !error.is_incomplete_message() {
                    eprintln!("connection failed: {error}");
                }
            }
        }));
    }
}

/// The service: `GET /` says hello, `POST /echo` returns the request body,
/// anything else is a 404.
pub async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => Response::new(Full::new(Bytes::from_static(b"Hello, World!\n"))),
        (&Method::POST, "/echo") => {
            let body = request.into_body().collect().await?.to_bytes();
            Response::new(Full::new(body))
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// Bytes read per `poll_read` at most: hyper's own read buffer starts at 8 KiB.
const SCRATCH_BYTES: usize = 8 * 1024;

/// A `futures-io` stream (such as `xev::net::TcpStream`) as hyper's
/// `Read` + `Write`.
///
/// hyper hands `poll_read` a cursor into possibly uninitialised memory, and
/// advancing it by hand is `unsafe`. This adapter stays safe: it reads into
/// a scratch buffer of its own and copies what arrived with `put_slice`, at
/// most one request's worth of `memcpy`, which costs nothing next to the
/// syscall.
pub struct HyperIo<S> {
    stream: S,
    scratch: Box<[u8]>,
}

impl<S> HyperIo<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> HyperIo<S> {
        HyperIo {
            stream,
            scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
        }
    }
}

impl<S: AsyncRead + Unpin> hyper::rt::Read for HyperIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let len = buf.remaining().min(this.scratch.len());
        let n = ready!(Pin::new(&mut this.stream).poll_read(cx, &mut this.scratch[..len]))?;
        buf.put_slice(&this.scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    /// xev's streams send all of hyper's header and body slices with one
    /// `sendmsg`, so hyper may queue them instead of copying them into one
    /// buffer. (For a stream with the trait's default `poll_write_vectored`,
    /// which writes the first slice only, this is still correct: hyper
    /// handles short writes.)
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}

/// `--addr HOST:PORT`, default `127.0.0.1:3000`.
fn parse_addr() -> io::Result<String> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:3000");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown argument {arg:?}; usage: hyper_server [--addr HOST:PORT]"),
                ))
            }
        }
    }
    Ok(addr)
}
