//! libxev's `ping-pongs` benchmark on xev: a server runtime on one thread, a
//! client runtime on the main thread, one connection. The client sends
//! `PING\n`, the server answers each full `PING\n` with `PONG\n`, and the
//! client sends again on each full `PONG\n`, until it has seen N of them.
//!
//! ```text
//! cargo run --release --example ping_pongs [-- --pongs N]
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Instant;

use xev::net::{TcpListener, TcpStream};

const PING: &[u8] = b"PING\n";
const PONG: &[u8] = b"PONG\n";

fn main() -> io::Result<()> {
    let pongs = parse_pongs()?;
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = std::thread::spawn(move || xev::rt::block_on(serve(addr_tx)));
    let addr = addr_rx
        .recv()
        .expect("the server thread reports its address")?;

    let start = Instant::now();
    xev::rt::block_on(client(addr, pongs))?;
    let elapsed = start.elapsed();
    server.join().expect("the server thread does not panic")?;

    println!(
        "{pongs} round trips in {:.3} s: {:.0} round trips/s",
        elapsed.as_secs_f64(),
        pongs as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn parse_pongs() -> io::Result<u64> {
    let mut args = std::env::args().skip(1);
    let mut pongs = 500_000;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--pongs", Some(n)) => {
                pongs = n
                    .parse()
                    .map_err(|_| invalid(format!("--pongs takes a number, not {n:?}")))?;
            }
            _ => {
                return Err(invalid(format!(
                    "unknown argument {arg:?}; usage: ping_pongs [--pongs N]"
                )))
            }
        }
    }
    Ok(pongs)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Answers every `PING\n` with `PONG\n` until the client hangs up.
async fn serve(addr_tx: mpsc::Sender<io::Result<SocketAddr>>) -> io::Result<()> {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(error) => {
            let _ = addr_tx.send(Err(io::Error::new(error.kind(), error.to_string())));
            return Err(error);
        }
    };
    let _ = addr_tx.send(listener.local_addr());
    let (stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let mut buf = [0; 4096];
    let mut replies = Vec::new();
    let mut partial = 0; // bytes of an unfinished PING seen so far
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        for &byte in &buf[..n] {
            partial += 1;
            if byte == b'\n' {
                if partial != PING.len() {
                    return Err(invalid("malformed ping".into()));
                }
                replies.extend_from_slice(PONG);
                partial = 0;
            }
        }
        stream.write_all(&replies).await?;
        replies.clear();
    }
}

/// Sends a `PING\n` for every `PONG\n` until `pongs` have come back.
async fn client(addr: SocketAddr, pongs: u64) -> io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(PING).await?;
    let mut buf = [0; 4096];
    let mut seen = 0;
    let mut partial = 0;
    while seen < pongs {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        for &byte in &buf[..n] {
            partial += 1;
            if byte == b'\n' {
                if partial != PONG.len() {
                    return Err(invalid("malformed pong".into()));
                }
                partial = 0;
                seen += 1;
                if seen < pongs {
                    stream.write_all(PING).await?;
                }
            }
        }
    }
    Ok(())
}
