//! HTTP with [hyper] 1.x on xev: one thread, one task per connection,
//! HTTP/1.1 with keep-alive, or HTTP/2 with prior knowledge (h2c) with
//! `--h2`, through `xev::hyper` (feature `hyper`).
//!
//! ```text
//! cargo run --release --features hyper --example hyper_server [-- --addr 127.0.0.1:3000] [--h2]
//! curl http://127.0.0.1:3000/                        # Hello, World!
//! curl --data 'some bytes' http://127.0.0.1:3000/echo
//! curl --http2-prior-knowledge http://127.0.0.1:3000/   # with --h2
//! ```
//!
//! The defaults ([`Limits::default`]) keep slow or stalled clients from
//! holding connections, file descriptors and memory:
//!
//! - **Slowloris.** hyper's `header_read_timeout` (10 s here; it needs
//!   `xev::hyper::Timer`) closes a connection whose request head is not
//!   complete in time, however slowly its bytes trickle in.
//! - **Idle keep-alive.** hyper runs that same clock whenever it waits for
//!   a request head, so a keep-alive connection idle for 10 s is closed.
//! - **Clients that never read.** hyper buffers at most `max_buf_size`
//!   (64 KiB here, plus the response being written) per connection: it
//!   stops reading requests while it cannot write. The unsent output thus
//!   stays under that bound plus the socket's send buffer, and once the peer
//!   has taken nothing for the write timeout (10 s,
//!   `xev::hyper::Io::set_write_timeout`), the connection is closed.
//! - **Large bodies.** `/echo` collects at most 4 MiB (413 beyond).
//!
//! HTTP/2 has no header timeout in hyper: there, keep-alive pings (every
//! 20 s, 20 s to answer) close connections whose peer has gone away, the
//! write timeout covers a peer that stops reading, and at most 250 streams
//! run at once per connection.
//!
//! `tests/hyper.rs` runs [`serve`] against hyper's client, curl and
//! hand-written HTTP/1.1; `examples/hyper_tokio.rs` is the same server on
//! tokio, for comparison (`benches/hyper_wrk.sh`).
//!
//! [hyper]: https://docs.rs/hyper

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncWrite};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use xev::hyper::{Executor, Io, Timer};
use xev::net::TcpListener;

fn main() -> io::Result<()> {
    let (addr, protocol) = parse_args()?;
    xev::rt::block_on(async {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("listening on http://{}", listener.local_addr()?);
        serve(listener, protocol, Limits::default()).await;
        Ok(())
    })
}

/// Which HTTP a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 from the first byte (prior knowledge, or ALPN `h2` over TLS).
    Http2,
}

/// The bounds a connection is served with; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// HTTP/1: a request head must arrive within this, counted from when
    /// hyper starts waiting for it (so it is the keep-alive idle timeout too).
    pub header_read_timeout: Duration,
    /// A write that the peer takes nothing of for this long ends the
    /// connection.
    pub write_timeout: Duration,
    /// HTTP/1: what hyper buffers per connection at most, each way.
    pub max_buf_size: usize,
    /// The largest request body `/echo` collects.
    pub max_body: usize,
    /// HTTP/2: how often to ping the peer, and how long it has to answer.
    pub keep_alive_interval: Duration,
    /// HTTP/2: at most this many requests at once per connection.
    pub max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_buf_size: 64 * 1024,
            max_body: 4 * 1024 * 1024,
            keep_alive_interval: Duration::from_secs(20),
            max_concurrent_streams: 250,
        }
    }
}

/// Accepts connections forever and serves each in a task of its own.
pub async fn serve(listener: TcpListener, protocol: Protocol, limits: Limits) {
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
        drop(xev::rt::spawn(serve_connection(stream, protocol, limits)));
    }
}

/// Serves one connection (plain TCP, or TLS from `https_server.rs`) until
/// it ends.
pub async fn serve_connection<S>(stream: S, protocol: Protocol, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut io = Io::new(stream);
    io.set_write_timeout(Some(limits.write_timeout));
    let service = service_fn(move |request| respond(request, limits.max_body));
    let served = match protocol {
        Protocol::Http1 => {
            http1::Builder::new()
                .timer(Timer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_buf_size)
                .keep_alive(true)
                .serve_connection(io, service)
                .await
        }
        Protocol::Http2 => {
            http2::Builder::new(Executor::new())
                .timer(Timer::new())
                .keep_alive_interval(limits.keep_alive_interval)
                .keep_alive_timeout(limits.keep_alive_interval)
                .max_concurrent_streams(limits.max_concurrent_streams)
                .serve_connection(io, service)
                .await
        }
    };
    if let Err(error) = served {
        if !is_routine(&error) {
            eprintln!("connection failed: {error}");
        }
    }
}

/// Errors that say a client went away or was cut off by a limit: routine
/// on a public server, so not logged.
pub fn is_routine(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_timeout() || error.is_canceled() {
        return true;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io_error.kind(),
                io::ErrorKind::TimedOut
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

/// The service: `GET /` says hello, `POST /echo` returns the request body
/// (up to `max_body` bytes), anything else is a 404.
pub async fn respond(
    request: Request<Incoming>,
    max_body: usize,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => Response::new(Full::new(Bytes::from_static(b"Hello, World!\n"))),
        (&Method::POST, "/echo") => {
            match Limited::new(request.into_body(), max_body).collect().await {
                Ok(body) => Response::new(Full::new(body.to_bytes())),
                Err(error) => match error.downcast::<hyper::Error>() {
                    Ok(error) => return Err(*error),
                    // `LengthLimitError`: the body is larger than allowed.
                    Err(_) => with_status(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
                },
            }
        }
        _ => with_status(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

fn with_status(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// `--addr HOST:PORT` (default `127.0.0.1:3000`), `--h2`.
fn parse_args() -> io::Result<(String, Protocol)> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:3000");
    let mut protocol = Protocol::Http1;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or_else(|| usage("--addr needs a value"))?,
            "--h2" => protocol = Protocol::Http2,
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok((addr, protocol))
}

fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}; usage: hyper_server [--addr HOST:PORT] [--h2]"),
    )
}
