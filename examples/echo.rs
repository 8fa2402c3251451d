//! An echo server: every byte a client sends comes back to it. One spawned
//! task serves each connection.
//!
//! ```text
//! cargo run --example echo [-- --addr HOST:PORT]   # default 127.0.0.1:7000
//! ```
//!
//! Then, from another terminal, type lines and see them come back:
//!
//! ```text
//! nc 127.0.0.1 7000
//! socat - TCP:127.0.0.1:7000
//! ```
//!
//! An accept error (`EMFILE` when the process is out of file descriptors,
//! `ECONNABORTED`, ...) does not stop the server: it logs it, waits, and tries
//! again, waiting twice as long after each error in a row, up to a second.
//! Retrying at once would spin, since the connection that caused `EMFILE`
//! is still waiting in the backlog.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use xev::net::{TcpListener, TcpStream};

const DEFAULT_ADDR: &str = "127.0.0.1:7000";
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[xev::main]
async fn main() -> io::Result<()> {
    let listener = TcpListener::bind(parse_addr()?)?;
    println!("listening on {}", listener.local_addr()?);

    let mut backoff = FIRST_BACKOFF;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = FIRST_BACKOFF;
                // Detached: the task ends when the client goes away.
                drop(xev::rt::spawn(serve(stream, peer)));
            }
            Err(error) => {
                eprintln!("accept failed: {error}; retrying in {backoff:?}");
                xev::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Echoes until the client closes its side, then closes ours.
async fn serve(stream: TcpStream, peer: SocketAddr) {
    eprintln!("{peer}: connected");
    let mut buf = vec![0; 16 * 1024];
    let outcome = loop {
        match stream.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(error) = stream.write_all(&buf[..n]).await {
                    break Err(error);
                }
            }
            Err(error) => break Err(error),
        }
    };
    match outcome.and(stream.close().await) {
        Ok(()) => eprintln!("{peer}: closed"),
        Err(error) => eprintln!("{peer}: {error}"),
    }
}

fn parse_addr() -> io::Result<String> {
    let mut args = std::env::args().skip(1);
    let mut addr = DEFAULT_ADDR.to_string();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown argument {arg:?}; usage: echo [--addr HOST:PORT]"),
                ))
            }
        }
    }
    Ok(addr)
}
