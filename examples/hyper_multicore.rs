//! HTTP/1.1 with [hyper] on every core: an [`xev::rt::Pool`] of workers,
//! each a single-threaded xev runtime serving its own connections, and a
//! graceful shutdown on Ctrl-C (`SIGINT`) or `SIGTERM`.
//!
//! ```text
//! cargo run --release --example hyper_multicore -- [--threads N] [--mode reuseport|acceptor]
//!                                                  [--addr 127.0.0.1:3000] [--grace SECS]
//! curl http://127.0.0.1:3000/            # Hello, World!
//! curl http://127.0.0.1:3000/worker      # which worker answered
//! curl http://127.0.0.1:3000/slow?ms=300 # answers after 300 ms
//! ```
//!
//! On the signal, every listener closes at once (new connections are
//! refused), each connection finishes the request it is serving and then
//! closes (hyper's `graceful_shutdown`), and the process exits 0 once all
//! are done, or after the grace period (default 10 s) with the stragglers
//! aborted. `tests/pool.rs` runs [`run`] in a child process and checks all
//! of that.
//!
//! [hyper]: https://docs.rs/hyper

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::mpsc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncWrite};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use xev::net::TcpStream;
use xev::rt::{AcceptMode, Pool, ShutdownHandle, Worker};

/// What to serve, and how.
pub struct Options {
    pub threads: usize,
    pub mode: AcceptMode,
    pub addr: String,
    /// How long requests in flight may take to finish after the signal.
    pub grace: Duration,
}

fn main() -> io::Result<()> {
    let options = parse_args()?;
    run(&options, |addr| println!("listening on http://{addr}"))
}

/// Serves until `SIGINT` or `SIGTERM`, then shuts down gracefully.
/// `listening` is called with the bound address once the signals are
/// caught and the port is open.
pub fn run(options: &Options, listening: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let pool = Pool::builder().threads(options.threads).build()?;
    let server = pool.bind(options.addr.as_str(), options.mode)?;

    // A thread of its own waits for the signals, on an xev runtime of its
    // own. Its listeners exist before the address is announced: from then
    // on, a SIGTERM is a request to stop, not the default "die now".
    let shutdown = pool.shutdown_handle();
    let grace = options.grace;
    let (caught_tx, caught_rx) = mpsc::channel();
    std::thread::spawn(move || {
        xev::rt::block_on(async move {
            let stop = stop_signal(caught_tx);
            if let Err(error) = stop.await {
                eprintln!("cannot listen for signals ({error}); stop with SIGKILL");
                return;
            }
            eprintln!("shutting down: finishing requests in flight (at most {grace:?})");
            shutdown.shutdown(grace);
        })
    });
    if caught_rx.recv().is_err() {
        return Err(io::Error::other("the signal thread ended before listening"));
    }

    listening(server.local_addr()?);
    let shutdown = pool.shutdown_handle();
    server.serve(move |stream, _peer| serve_connection(stream, shutdown.clone()))?;
    eprintln!("stopped");
    Ok(())
}

/// Completes on the first `SIGINT` or `SIGTERM`; says on `caught` once both
/// are being listened for.
#[cfg(unix)]
async fn stop_signal(caught: mpsc::Sender<()>) -> io::Result<()> {
    use xev::signal::unix::{signal, SignalKind};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let _ = caught.send(());
    futures::future::select(pin!(interrupt.recv()), pin!(terminate.recv())).await;
    Ok(())
}

#[cfg(not(unix))]
async fn stop_signal(caught: mpsc::Sender<()>) -> io::Result<()> {
    let _ = caught.send(());
    std::future::pending().await
}

/// One connection, on the worker that accepted it (or was handed it): HTTP
/// with keep-alive until the shutdown, then the request in flight is
/// answered and the connection closed.
async fn serve_connection(stream: TcpStream, shutdown: ShutdownHandle) {
    let _ = stream.set_nodelay(true);
    let mut connection = pin!(http1::Builder::new()
        .keep_alive(true)
        .serve_connection(HyperIo::new(stream), service_fn(respond)));
    let mut requested = pin!(shutdown.requested());
    let mut graceful = false;
    let result = std::future::poll_fn(|cx| {
        if !graceful && requested.as_mut().poll(cx).is_ready() {
            graceful = true;
            connection.as_mut().graceful_shutdown();
        }
        connection.as_mut().poll(cx)
    })
    .await;
    if let Err(error) = result {
        if !error.is_incomplete_message() {
            eprintln!("connection failed: {error}");
        }
    }
}

/// `GET /` says hello, `/worker` names the worker, `/slow?ms=N` answers
/// after N ms (default 300); anything else is a 404.
async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = match request.uri().path() {
        "/" => "Hello, World!\n".to_owned(),
        "/worker" => {
            let worker = Worker::current().expect("handlers run on the pool's workers");
            format!("worker {} of {}\n", worker.index(), worker.count())
        }
        "/slow" => {
            let ms = request
                .uri()
                .query()
                .and_then(|query| query.strip_prefix("ms="))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(300);
            xev::time::sleep(Duration::from_millis(ms)).await;
            format!("slept {ms} ms\n")
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// A `futures-io` stream as hyper's `Read` + `Write`, without `unsafe`: it
/// reads into a scratch buffer and copies into hyper's cursor.
struct HyperIo<S> {
    stream: S,
    scratch: Box<[u8]>,
}

impl<S> HyperIo<S> {
    fn new(stream: S) -> HyperIo<S> {
        HyperIo {
            stream,
            scratch: vec![0; 8 * 1024].into_boxed_slice(),
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

const USAGE: &str = "usage: hyper_multicore [--threads N] [--mode reuseport|acceptor] \
                     [--addr HOST:PORT] [--grace SECS]";

fn parse_args() -> io::Result<Options> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let mut options = Options {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mode: AcceptMode::ReusePort,
        addr: "127.0.0.1:3000".to_owned(),
        grace: Duration::from_secs(10),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| invalid(format!("{arg} needs a value; {USAGE}")))?;
        match arg.as_str() {
            "--threads" => {
                options.threads = value
                    .parse()
                    .map_err(|_| invalid(format!("--threads {value:?}: not a number")))?
            }
            "--mode" => {
                options.mode = match value.as_str() {
                    "reuseport" => AcceptMode::ReusePort,
                    "acceptor" => AcceptMode::Acceptor,
                    _ => return Err(invalid(format!("--mode {value:?}; {USAGE}"))),
                }
            }
            "--addr" => options.addr = value,
            "--grace" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| invalid(format!("--grace {value:?}: not a number")))?;
                options.grace = Duration::try_from_secs_f64(secs)
                    .map_err(|_| invalid(format!("--grace {value:?}: not a duration")))?;
            }
            _ => return Err(invalid(format!("unknown argument {arg:?}; {USAGE}"))),
        }
    }
    Ok(options)
}
