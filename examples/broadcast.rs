//! A fan-out chat server: every line a client sends goes to every *other*
//! client. Each client has one `WriteQueue`; a line is copied once into an
//! `Rc<[u8]>` and that one allocation is pushed to every queue.
//!
//! Backpressure: a client that stops reading does not slow anyone else down.
//! Its queue grows instead, and once its `queued_bytes()` passes the limit
//! the server drops it, so one stalled reader costs at most `--limit` bytes.
//!
//! ```text
//! cargo run --example broadcast [-- --addr 127.0.0.1:7001] [--limit BYTES]
//! nc 127.0.0.1 7001        # in two or more terminals, then type lines
//! ```
//!
//! `tests/write_queue.rs` runs [`serve`] with three clients, one of which
//! never reads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use xev::io::WriteQueue;
use xev::net::{TcpListener, TcpStream};

/// Backlog (bytes) past which a client is dropped, unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 1 << 20;

/// Kernel send buffer per client. Kept small so that a stalled client's
/// backlog shows up in `queued_bytes()` soon, rather than sitting unseen in
/// several MiB of kernel buffer.
const SEND_BUFFER: u32 = 64 * 1024;

/// A client that sends a longer line than this without a newline is dropped.
const MAX_LINE: usize = 64 * 1024;

/// The connected clients, by id: the queue that writes to each one.
type Clients = Rc<RefCell<HashMap<u64, WriteQueue>>>;

#[xev::main]
async fn main() -> io::Result<()> {
    let (addr, limit) = parse_args()?;
    let listener = TcpListener::bind(addr.as_str())?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener, limit).await
}

/// Accepts clients forever and relays each one's lines to all the others,
/// dropping any client whose backlog passes `limit` bytes.
pub async fn serve(listener: TcpListener, limit: usize) -> io::Result<()> {
    let clients = Clients::default();
    let mut next_id = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait for some to be
            // freed rather than retrying in a tight loop.
            Err(error) => {
                eprintln!("accept failed: {error}; retrying in 100 ms");
                xev::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        let stream = Rc::new(stream);
        let queue = match WriteQueue::with_send_buffer_size(stream.clone(), SEND_BUFFER) {
            Ok(queue) => queue,
            Err(error) => {
                eprintln!("client {id} ({peer}) turned away: {error}");
                continue;
            }
        };
        // Registered before its reader starts, so its own first line already
        // finds it in the map (and skips it).
        clients.borrow_mut().insert(id, queue);
        eprintln!("client {id} ({peer}) joined");
        drop(xev::rt::spawn(client(id, stream, clients.clone(), limit)));
    }
}

/// Relays one client's lines until it hangs up or is dropped.
async fn client(id: u64, stream: Rc<TcpStream>, clients: Clients, limit: usize) {
    let outcome = relay_lines(id, &stream, &clients, limit).await;
    // Already gone if it was dropped for its backlog. Otherwise dropping its
    // queue still delivers what was queued for it (it may only have
    // half-closed).
    if clients.borrow_mut().remove(&id).is_some() {
        match outcome {
            Ok(()) => eprintln!("client {id} left"),
            Err(error) => eprintln!("client {id} dropped: {error}"),
        }
    }
}

async fn relay_lines(
    id: u64,
    stream: &TcpStream,
    clients: &Clients,
    limit: usize,
) -> io::Result<()> {
    let mut line = Vec::new(); // bytes read that do not end a line yet
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        for chunk in buf[..n].split_inclusive(|&byte| byte == b'\n') {
            line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                // One allocation per line, shared by every queue it goes to.
                broadcast(id, Rc::from(&line[..]), clients, limit);
                line.clear();
            }
        }
        if line.len() > MAX_LINE {
            let message = format!("a line longer than {MAX_LINE} bytes");
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
    }
}

/// Queues `line` for every client but its sender, and drops each client
/// whose backlog is then over `limit`.
fn broadcast(from: u64, line: Rc<[u8]>, clients: &Clients, limit: usize) {
    clients.borrow_mut().retain(|&id, queue| {
        if id == from {
            return true;
        }
        // Not awaited: the runtime writes it anyway, and a send error only
        // means this client is leaving, which its reader will notice.
        drop(queue.push(line.clone()));
        let backlog = queue.queued_bytes();
        if backlog <= limit {
            return true;
        }
        eprintln!("client {id} dropped: {backlog} bytes queued, over the limit of {limit}");
        // Dropping the queue alone would keep delivering its backlog for as
        // long as the client takes. Shutting the socket down fails the
        // backlog at once (freeing it) and wakes the client's reader with
        // end of stream, which ends its task and closes the socket.
        let _ = queue.stream().shutdown(Shutdown::Both);
        false
    });
}

fn parse_args() -> io::Result<(String, usize)> {
    let usage = "usage: broadcast [--addr HOST:PORT] [--limit BYTES]";
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let (mut addr, mut limit) = ("127.0.0.1:7001".to_string(), DEFAULT_LIMIT);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            ("--limit", Some(value)) => {
                limit = value.parse().map_err(|_| {
                    invalid(format!("--limit takes a number of bytes, not {value:?}"))
                })?;
            }
            _ => return Err(invalid(format!("unknown argument {arg:?}; {usage}"))),
        }
    }
    Ok((addr, limit))
}
