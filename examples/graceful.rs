//! Graceful shutdown on one runtime: a line echo server that, on Ctrl-C
//! (`SIGINT`) or `SIGTERM`, stops accepting at once, lets the connections
//! it has finish for up to a grace period, then aborts the rest and exits 0.
//!
//! The pattern: connection tasks go in a [`JoinSet`]; the accept loop
//! races the signal; after it, the listener is dropped (new connections
//! are refused), `join_next` waits for the live ones under a timeout, and
//! dropping the set aborts whatever is left. With several cores,
//! `xev::rt::Pool` does the same for you (`examples/hyper_multicore.rs`).
//!
//! ```text
//! cargo run --example graceful -- [--addr 127.0.0.1:7000] [--grace SECS]
//! nc 127.0.0.1 7000       # type lines; they come back
//! kill -TERM <pid>        # the nc session goes on until you end it, or the grace period does
//! ```
//!
//! `tests/signal.rs` runs it in a child process and sends it `SIGTERM`.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use futures::future::{select, Either};
use xev::net::{TcpListener, TcpStream};
use xev::rt::JoinSet;

fn main() -> io::Result<()> {
    let (addr, grace) = parse_args()?;
    xev::rt::block_on(async {
        let listener = TcpListener::bind(addr.as_str())?;
        let stop = stop_signal()?;
        println!("listening on {}", listener.local_addr()?);
        serve(listener, stop, grace).await;
        eprintln!("stopped");
        Ok(())
    })
}

/// Echoes lines on every connection until `stop` completes, then lets the
/// live connections finish for up to `grace`.
pub async fn serve(listener: TcpListener, stop: impl Future<Output = ()>, grace: Duration) {
    let mut stop = pin!(stop);
    let mut connections = JoinSet::new();
    loop {
        let stream = match select(pin!(listener.accept()), stop.as_mut()).await {
            Either::Left((Ok((stream, _peer)), _)) => stream,
            Either::Left((Err(error), _)) => {
                // Out of file descriptors and the like: back off.
                eprintln!("accept failed: {error}");
                xev::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Either::Right(((), _)) => break,
        };
        connections.spawn(echo_lines(stream));
        // Finished connections leave the set here, so it holds only live ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    eprintln!(
        "shutting down: {} connection(s) may finish (at most {grace:?})",
        connections.len()
    );
    let all_done = async { while connections.join_next().await.is_some() {} };
    if xev::time::timeout(grace, all_done).await.is_err() {
        eprintln!(
            "grace period over: aborting {} connection(s)",
            connections.len()
        );
    }
    // Dropping the set aborts what is left.
}

/// Completes on the first `SIGINT` or `SIGTERM`. The listeners are
/// registered here, before the caller announces its address.
#[cfg(unix)]
pub fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    use xev::signal::unix::{signal, SignalKind};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        select(pin!(interrupt.recv()), pin!(terminate.recv())).await;
    })
}

#[cfg(not(unix))]
pub fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(std::future::pending())
}

/// Sends back every byte it receives, until the client closes.
async fn echo_lines(stream: TcpStream) {
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        if stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

fn parse_args() -> io::Result<(String, Duration)> {
    let mut addr = String::from("127.0.0.1:7000");
    let mut grace = Duration::from_secs(10);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            ("--grace", Some(value)) => {
                let secs: f64 = value.parse().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "--grace takes seconds")
                })?;
                grace = Duration::try_from_secs_f64(secs).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "--grace takes seconds")
                })?;
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                    "unknown argument {arg:?}; usage: graceful [--addr HOST:PORT] [--grace SECS]"
                ),
                ))
            }
        }
    }
    Ok((addr, grace))
}
