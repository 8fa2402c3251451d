//! The scenarios on xev: the code a user of xev would write, on a runtime
//! built with the backend each function is given (`Peer::Xev` is
//! `Backend::Poll`, `Peer::XevUring` is `Backend::IoUring`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use xev::io::WriteQueue;
use xev::net::{TcpListener, TcpStream};
use xev::rt::{Backend, Runtime};

use crate::cpu::{Stopwatch, Timing};
use crate::cross_thread::{self, Answer};
use crate::echo::{EchoConfig, ServerPhase};
use crate::many_timers;
use crate::ping_pongs::{MessageCounter, PING, PONG};

/// How the echo servers send their replies (`--shape`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `read`, then `write_all` of what was read: one `send` per reply,
    /// a direct syscall on either backend.
    WriteAll,
    /// `read`, then `WriteQueue::push` of a copy of it (libxev's shape):
    /// sends batched by the queue, through the ring under io_uring.
    Queue,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::WriteAll => "write_all",
            Shape::Queue => "queue",
        }
    }

    pub fn from_name(name: &str) -> Option<Shape> {
        [Shape::WriteAll, Shape::Queue]
            .into_iter()
            .find(|shape| shape.name() == name)
    }
}

static SHAPE: OnceLock<Shape> = OnceLock::new();

/// Sets the echo servers' shape for the rest of the process (once, at
/// start-up); `write_all` until then.
pub fn set_shape(shape: Shape) {
    SHAPE.set(shape).expect("the shape is set once");
}

pub fn shape() -> Shape {
    *SHAPE.get().unwrap_or(&Shape::WriteAll)
}

/// Whether a runtime can be built on io_uring here; the error says why not.
pub fn io_uring_available() -> io::Result<()> {
    Runtime::builder()
        .backend(Backend::IoUring)
        .build()
        .map(drop)
}

/// Runs `future` as a spawned task on a fresh runtime on `backend`, as a
/// server's work runs (and as on tokio, where that matters).
fn run<F>(backend: Backend, future: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let runtime = Runtime::builder()
        .backend(backend)
        .build()
        .unwrap_or_else(|error| panic!("cannot build a runtime on {backend:?}: {error}"));
    runtime.block_on(async {
        xev::rt::spawn(future)
            .await
            .expect("the task does not panic")
    })
}

pub fn echo_server(
    listener: std::net::TcpListener,
    mut config: EchoConfig,
    backend: Backend,
) -> io::Result<()> {
    let shape = shape();
    run(backend, async move {
        let listener = TcpListener::from_std(listener)?;
        config.notify(ServerPhase::Listening);
        let mut connections = Vec::with_capacity(config.conns);
        for _ in 0..config.conns {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            connections.push(match shape {
                Shape::WriteAll => xev::rt::spawn(echo(stream, config.buf_size)),
                Shape::Queue => xev::rt::spawn(echo_queued(stream, config.buf_size)),
            });
        }
        if config.observer.is_some() {
            // Lets every connection's task run up to its first read.
            xev::time::sleep(Duration::from_millis(20)).await;
            config.notify(ServerPhase::Idle);
        }
        for connection in connections {
            connection.await??;
        }
        Ok(())
    })
}

async fn echo(stream: TcpStream, buf_size: usize) -> io::Result<()> {
    let mut buf = vec![0; buf_size];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// Queued writes stop being pushed above this many unwritten bytes until
/// the queue has drained (the backpressure `WriteQueue`'s docs suggest):
/// only the streaming scenario gets there.
const HIGH_WATER: usize = 256 * 1024;

/// The `queue` shape: each read's bytes pushed as an owned `Vec`, not
/// awaited (the next read starts at once), as libxev's echo does.
async fn echo_queued(stream: TcpStream, buf_size: usize) -> io::Result<()> {
    let stream = Rc::new(stream);
    let queue = WriteQueue::new(stream.clone());
    let mut buf = vec![0; buf_size];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return queue.flush().await;
        }
        if queue.queued_bytes() > HIGH_WATER {
            queue.flush().await?;
        }
        drop(queue.push(buf[..n].to_vec()));
    }
}

pub fn ping_pongs_server(listener: std::net::TcpListener, backend: Backend) -> io::Result<()> {
    let shape = shape();
    run(backend, async move {
        let listener = TcpListener::from_std(listener)?;
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let stream = Rc::new(stream);
        // Only the `queue` shape has one (a queue has a task of its own).
        let queue = (shape == Shape::Queue).then(|| WriteQueue::new(stream.clone()));
        let mut pings = MessageCounter::new(PING);
        let mut buf = [0; 4096];
        let mut replies = Vec::new();
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return match &queue {
                    Some(queue) => queue.flush().await,
                    None => Ok(()),
                };
            }
            for _ in 0..pings.feed(&buf[..n])? {
                replies.extend_from_slice(PONG);
            }
            match &queue {
                None => {
                    stream.write_all(&replies).await?;
                    replies.clear();
                }
                Some(queue) => drop(queue.push(std::mem::take(&mut replies))),
            }
        }
    })
}

pub fn ping_pongs_client(addr: SocketAddr, pongs: u64, backend: Backend) -> io::Result<Duration> {
    run(backend, async move {
        let start = Instant::now();
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(PING).await?;
        let mut counter = MessageCounter::new(PONG);
        let mut buf = [0; 4096];
        let mut seen = 0;
        while seen < pongs {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let new = counter.feed(&buf[..n])? as u64;
            seen += new;
            for _ in 0..new.min(pongs - seen) {
                stream.write_all(PING).await?;
            }
        }
        Ok(start.elapsed())
    })
}

/// Spawns `n` tasks, then joins them in order.
pub fn spawn_join(n: u64, backend: Backend) -> Timing {
    run(backend, async move {
        let stopwatch = Stopwatch::start();
        let handles: Vec<_> = (0..n).map(|i| xev::rt::spawn(async move { i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        assert_eq!(sum, n * (n - 1) / 2);
        stopwatch.stop()
    })
}

/// Arms `n` sleeps at once and waits until every one has fired (see
/// `many_timers`).
pub fn timers(n: usize, backend: Backend) -> Timing {
    run(backend, async move {
        let stopwatch = Stopwatch::start();
        let fired = many_timers::arm_and_wait(n, xev::time::sleep).await;
        assert_eq!(fired, n);
        stopwatch.stop()
    })
}

pub fn cross_thread_wakes(n: u64, backend: Backend) -> io::Result<Duration> {
    cross_thread::round_trips(n, move |answer: Answer| run(backend, answer))
}
