//! The scenarios on tokio's `current_thread` runtime: the code a user of
//! tokio would write.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cpu::{Stopwatch, Timing};
use crate::cross_thread::{self, Answer};
use crate::echo::{EchoConfig, ServerPhase};
use crate::many_timers;
use crate::ping_pongs::{MessageCounter, PING, PONG};

/// Runs `future` as a spawned task on a fresh runtime, as a server's work
/// runs. (Waking the `block_on` future itself costs tokio a write to its
/// driver's eventfd, even from the runtime's own thread; waking a task
/// does not.)
fn run<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio builds a runtime")
        .block_on(async { tokio::spawn(future).await.expect("the task does not panic") })
}

pub fn echo_server(listener: std::net::TcpListener, mut config: EchoConfig) -> io::Result<()> {
    run(async move {
        let listener = TcpListener::from_std(listener)?;
        config.notify(ServerPhase::Listening);
        let mut connections = Vec::with_capacity(config.conns);
        for _ in 0..config.conns {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            connections.push(tokio::spawn(echo(stream, config.buf_size)));
        }
        if config.observer.is_some() {
            // Lets every connection's task run up to its first read.
            tokio::time::sleep(Duration::from_millis(20)).await;
            config.notify(ServerPhase::Idle);
        }
        for connection in connections {
            connection.await??;
        }
        Ok(())
    })
}

async fn echo(mut stream: TcpStream, buf_size: usize) -> io::Result<()> {
    let mut buf = vec![0; buf_size];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

pub fn ping_pongs_server(listener: std::net::TcpListener) -> io::Result<()> {
    run(async move {
        let listener = TcpListener::from_std(listener)?;
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let mut pings = MessageCounter::new(PING);
        let mut buf = [0; 4096];
        let mut replies = Vec::new();
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            for _ in 0..pings.feed(&buf[..n])? {
                replies.extend_from_slice(PONG);
            }
            stream.write_all(&replies).await?;
            replies.clear();
        }
    })
}

pub fn ping_pongs_client(addr: SocketAddr, pongs: u64) -> io::Result<Duration> {
    run(async move {
        let start = Instant::now();
        let mut stream = TcpStream::connect(addr).await?;
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
pub fn spawn_join(n: u64) -> Timing {
    run(async move {
        let stopwatch = Stopwatch::start();
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
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
pub fn timers(n: usize) -> Timing {
    run(async move {
        let stopwatch = Stopwatch::start();
        // Without `unconstrained`, tokio's co-operative budget lets only 128
        // sleeps arm per poll; a program arming a million timers at once
        // would opt out too.
        let fired =
            tokio::task::unconstrained(many_timers::arm_and_wait(n, tokio::time::sleep)).await;
        assert_eq!(fired, n);
        stopwatch.stop()
    })
}

pub fn cross_thread_wakes(n: u64) -> io::Result<Duration> {
    cross_thread::round_trips(n, |answer: Answer| run(answer))
}
