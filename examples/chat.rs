//! A line-based chat server built from the `futures` crate's pieces on xev's
//! sockets: `listener.incoming()` with `StreamExt`, `BufReader` and
//! `AsyncBufReadExt::lines` to read each client's lines, and
//! `futures::io::copy` to write to each client from a channel.
//!
//! Every client is `guest-N` until it sends `/nick NAME`; every other line
//! goes to everyone else as `NAME: line`, and joins and leaves are
//! announced. A client that falls `QUEUE` messages behind is disconnected,
//! so one stalled reader costs the others nothing.
//!
//! (`examples/broadcast.rs` is the same fan-out written with xev's own
//! `WriteQueue` instead of a channel and a writer task per client.)
//!
//! ```text
//! cargo run --example chat [-- --addr 127.0.0.1:7002]
//! nc 127.0.0.1 7002        # in two or more terminals, then type lines
//! ```
//!
//! `tests/futures_io.rs` runs [`serve`] with a few clients.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::io::{AsyncBufReadExt, BufReader};
use futures::{StreamExt, TryStreamExt};
use xev::net::{TcpListener, TcpStream};

/// Messages a client may have waiting to be sent before it is dropped.
const QUEUE: usize = 1024;

/// One message, allocated once and shared by every client's queue.
type Message = Rc<[u8]>;

/// The connected clients, by id.
#[derive(Default)]
struct Room {
    clients: RefCell<HashMap<u64, Client>>,
}

struct Client {
    name: String,
    /// Feeds the client's writer task.
    outbox: mpsc::Sender<Message>,
    /// To disconnect the client when it falls too far behind: its reader
    /// then sees the end of the stream and cleans up.
    stream: Rc<TcpStream>,
}

#[xev::main]
async fn main() -> io::Result<()> {
    let addr = parse_addr()?;
    let listener = TcpListener::bind(addr.as_str())?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener).await;
    Ok(())
}

/// Accepts clients forever and runs the chat between them.
pub async fn serve(listener: TcpListener) {
    let room = Rc::new(Room::default());
    let mut ids = 1..;
    // `incoming()` never ends; an accept error (e.g. out of file
    // descriptors) is logged, and the next item is the next attempt.
    let mut incoming = listener.incoming();
    while let Some(accepted) = incoming.next().await {
        match accepted {
            Ok(stream) => {
                let id = ids.next().expect("ids do not run out");
                // Detached: the task ends when the client leaves.
                drop(xev::rt::spawn(run_client(room.clone(), id, stream)));
            }
            Err(error) => {
                eprintln!("accept failed: {error}; retrying in 100 ms");
                xev::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: a writer task that copies its outbox to the socket, and this
/// task, which reads its lines and handles them.
async fn run_client(room: Rc<Room>, id: u64, stream: TcpStream) {
    let stream = Rc::new(stream);
    let (outbox, messages) = mpsc::channel::<Message>(QUEUE);
    let writer = xev::rt::spawn({
        let stream = stream.clone();
        async move {
            // The channel as an `AsyncRead`, copied to the socket until the
            // sender is dropped (the client has left) or a write fails.
            let mut messages = messages.map(Ok::<_, io::Error>).into_async_read();
            futures::io::copy(&mut messages, &mut &*stream).await
        }
    });

    let name = format!("guest-{id}");
    room.clients.borrow_mut().insert(
        id,
        Client {
            name: name.clone(),
            outbox,
            stream: stream.clone(),
        },
    );
    room.send_to(
        id,
        format!("welcome, {name}; /nick NAME to change your name\n"),
    );
    room.broadcast(id, format!("* {name} joined\n"));

    // `lines()` keeps reading until a newline: a server facing the open
    // internet would cap the line length (see `broadcast.rs`'s MAX_LINE).
    let mut lines = BufReader::new(&*stream).lines();
    while let Ok(Some(line)) = lines.try_next().await {
        room.handle_line(id, &line);
    }

    let name = room.leave(id);
    room.broadcast(id, format!("* {name} left\n"));
    // The outbox is gone with the client entry: the writer sends what is
    // queued, then ends.
    let _ = writer.await;
}

impl Room {
    fn handle_line(&self, id: u64, line: &str) {
        let line = line.trim_end_matches('\r');
        if let Some(new_name) = line.strip_prefix("/nick ") {
            let new_name = new_name.trim().to_owned();
            let old_name = match self.clients.borrow_mut().get_mut(&id) {
                Some(client) => std::mem::replace(&mut client.name, new_name.clone()),
                None => return,
            };
            self.broadcast(id, format!("* {old_name} is now {new_name}\n"));
            self.send_to(id, format!("you are now {new_name}\n"));
        } else if !line.is_empty() {
            let name = match self.clients.borrow().get(&id) {
                Some(client) => client.name.clone(),
                None => return,
            };
            self.broadcast(id, format!("{name}: {line}\n"));
        }
    }

    /// Queues `text` for one client.
    fn send_to(&self, id: u64, text: String) {
        let message: Message = Rc::from(text.into_bytes());
        if let Some(client) = self.clients.borrow_mut().get_mut(&id) {
            client.offer(message);
        }
    }

    /// Queues `text` for everyone but `from`, with one allocation for all.
    fn broadcast(&self, from: u64, text: String) {
        let message: Message = Rc::from(text.into_bytes());
        for (&id, client) in self.clients.borrow_mut().iter_mut() {
            if id != from {
                client.offer(message.clone());
            }
        }
    }

    /// Removes a client; returns its name.
    fn leave(&self, id: u64) -> String {
        self.clients
            .borrow_mut()
            .remove(&id)
            .map(|client| client.name)
            .unwrap_or_default()
    }
}

impl Client {
    /// Queues `message`, or disconnects a client whose queue is full.
    fn offer(&mut self, message: Message) {
        if self.outbox.try_send(message).is_err() {
            // Its reader wakes with end of stream and announces the leave.
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }
}

/// `--addr HOST:PORT`, default `127.0.0.1:7002`.
fn parse_addr() -> io::Result<String> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:7002");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown argument {arg:?}; usage: chat [--addr HOST:PORT]"),
                ))
            }
        }
    }
    Ok(addr)
}
