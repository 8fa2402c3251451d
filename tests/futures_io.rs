//! The `futures` crate's I/O and stream utilities on xev's sockets, through
//! xev's `futures_io::{AsyncRead, AsyncWrite}` impls and `incoming()`'s
//! `futures_core::Stream` impl; and `examples/chat.rs`, which is built from
//! them.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::{future, StreamExt, TryStreamExt};
use xev::net::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};
use xev::time::{sleep, timeout};

#[allow(dead_code)] // its `main`
#[path = "../examples/chat.rs"]
mod chat;

/// A listener on an ephemeral loopback port and a connection to it:
/// `(client, server)`.
async fn connected_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    Ok((client, server))
}

/// `len` deterministic, position-dependent bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// An echo server made of `futures::io::copy` from the read half to the
/// write half returns every byte of a payload larger than the socket
/// buffers, and reports the right count once the client shuts down.
#[xev::test(timeout_ms = 10000)]
async fn copy_between_halves_echoes_everything() {
    let (client, server) = connected_pair().await.unwrap();
    let echo = xev::rt::spawn(async move {
        let (read, mut write) = server.into_split();
        let copied = futures::io::copy(read, &mut write).await?;
        write.close().await?;
        io::Result::Ok(copied)
    });

    let payload = pattern(4 * 1024 * 1024);
    let (read, mut write) = client.into_split();
    let sender = xev::rt::spawn({
        let payload = payload.clone();
        async move {
            write.write_all(&payload).await?;
            write.close().await
        }
    });
    let mut echoed = Vec::new();
    let mut read = read;
    AsyncReadExt::read_to_end(&mut read, &mut echoed)
        .await
        .unwrap();
    sender.await.unwrap().unwrap();
    assert_eq!(echo.await.unwrap().unwrap(), payload.len() as u64);
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echo differs from what was sent");
}

/// `BufReader` + `lines()` reassembles lines that arrive split across
/// writes at arbitrary points (including mid-`\r\n`), and ends at end of
/// stream with the unterminated last line.
#[xev::test(timeout_ms = 5000)]
async fn buf_reader_lines_reassemble_split_lines() {
    let (client, server) = connected_pair().await.unwrap();
    let text = "first\nsecond line\r\n\nfourth, after an empty one\nlast, unterminated";
    let writer = xev::rt::spawn(async move {
        client.set_nodelay(true)?;
        for chunk in text.as_bytes().chunks(3) {
            client.write_all(chunk).await?;
            // Let each chunk arrive on its own.
            sleep(Duration::from_millis(1)).await;
        }
        io::Result::Ok(())
        // The client is dropped here: end of stream.
    });

    let lines: Vec<String> = BufReader::new(&server).lines().try_collect().await.unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(
        lines,
        [
            "first",
            "second line",
            "",
            "fourth, after an empty one",
            "last, unterminated"
        ]
    );
}

/// `read_until` and `read_line` on a `BufReader` over an owned read half,
/// mixed with `read_exact` from the same buffer: nothing buffered is lost
/// between them.
#[xev::test(timeout_ms = 5000)]
async fn buf_reader_mixes_line_and_exact_reads() {
    let (client, server) = connected_pair().await.unwrap();
    client
        .write_all(b"HEADER 7\nPAYLOADtrailer;next\n")
        .await
        .unwrap();
    drop(client);

    let (read, _write) = server.into_split();
    let mut reader = BufReader::new(read);
    let mut header = String::new();
    reader.read_line(&mut header).await.unwrap();
    let len: usize = header
        .trim()
        .strip_prefix("HEADER ")
        .unwrap()
        .parse()
        .unwrap();
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).await.unwrap();
    let mut trailer = Vec::new();
    reader.read_until(b';', &mut trailer).await.unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).await.unwrap();
    assert_eq!(payload, b"PAYLOAD");
    assert_eq!(trailer, b"trailer;");
    assert_eq!(rest, "next\n");
}

/// `incoming()` with `StreamExt`: `take(n)` and `for_each_concurrent` serve
/// exactly the connections that come in, concurrently (each client waits
/// for the others before its reply is sent, so a sequential server would
/// never finish).
#[xev::test(timeout_ms = 5000)]
async fn incoming_works_with_stream_combinators() {
    const CLIENTS: usize = 8;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            xev::rt::spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.write_all(&[i as u8]).await?;
                let mut reply = [0; 1];
                stream.read_exact(&mut reply).await?;
                io::Result::Ok(reply[0])
            })
        })
        .collect();

    let arrived = std::cell::Cell::new(0);
    let all_arrived = &arrived;
    listener
        .incoming()
        .take(CLIENTS)
        .for_each_concurrent(None, |stream| async move {
            let stream = stream.unwrap();
            let mut byte = [0; 1];
            stream.read_exact(&mut byte).await.unwrap();
            all_arrived.set(all_arrived.get() + 1);
            while all_arrived.get() < CLIENTS {
                sleep(Duration::from_millis(1)).await;
            }
            stream.write_all(&[byte[0] + 100]).await.unwrap();
        })
        .await;

    let replies: Vec<u8> = future::try_join_all(
        clients
            .into_iter()
            .map(|client| async { client.await.unwrap() }),
    )
    .await
    .unwrap();
    let expected: Vec<u8> = (0..CLIENTS as u8).map(|i| i + 100).collect();
    assert_eq!(replies, expected);
}

/// A chat client for the tests: lines in through `BufReader::lines`, with a
/// time limit on each, lines out through the write half.
struct ChatClient {
    write: OwnedWriteHalf,
    lines: futures::io::Lines<BufReader<OwnedReadHalf>>,
}

impl ChatClient {
    /// Connects and checks the welcome line.
    async fn join(addr: SocketAddr, expected_name: &str) -> ChatClient {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = ChatClient {
            write,
            lines: BufReader::new(read).lines(),
        };
        assert_eq!(
            client.next_line().await,
            format!("welcome, {expected_name}; /nick NAME to change your name")
        );
        client
    }

    async fn say(&self, line: &str) {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn next_line(&mut self) -> String {
        match timeout(Duration::from_secs(5), self.lines.next()).await {
            Ok(Some(line)) => line.unwrap(),
            Ok(None) => panic!("the chat server closed the connection"),
            Err(_) => panic!("no line from the chat server within 5 s"),
        }
    }
}

/// The chat example's server, as a task of the test's runtime.
fn start_chat() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(xev::rt::spawn(chat::serve(listener)));
    addr
}

/// `examples/chat.rs`: joins, lines relayed to everyone else (not back to
/// the sender), renames and leaves, each announced to the others.
#[xev::test(timeout_ms = 10000)]
async fn chat_relays_lines_renames_and_leaves() {
    let addr = start_chat();
    let mut alice = ChatClient::join(addr, "guest-1").await;
    let mut bob = ChatClient::join(addr, "guest-2").await;
    assert_eq!(alice.next_line().await, "* guest-2 joined");

    alice.say("/nick alice").await;
    assert_eq!(alice.next_line().await, "you are now alice");
    assert_eq!(bob.next_line().await, "* guest-1 is now alice");

    alice.say("hello, bob").await;
    bob.say("hi alice").await;
    assert_eq!(bob.next_line().await, "alice: hello, bob");
    assert_eq!(alice.next_line().await, "guest-2: hi alice");

    let mut carol = ChatClient::join(addr, "guest-3").await;
    assert_eq!(alice.next_line().await, "* guest-3 joined");
    assert_eq!(bob.next_line().await, "* guest-3 joined");
    carol.say("many lines").await;
    carol.say("in order").await;
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.next_line().await, "guest-3: many lines");
        assert_eq!(client.next_line().await, "guest-3: in order");
    }

    drop(bob);
    assert_eq!(alice.next_line().await, "* guest-2 left");
    assert_eq!(carol.next_line().await, "* guest-2 left");
    // Nothing of one's own comes back: the next line alice sees is carol's.
    carol.say("still here").await;
    assert_eq!(alice.next_line().await, "guest-3: still here");
}

/// A client that never reads is disconnected once its queue is full, and
/// the clients that do read get every line regardless.
#[xev::test(timeout_ms = 20000)]
async fn chat_drops_a_client_that_stops_reading() {
    let addr = start_chat();
    let mut talker = ChatClient::join(addr, "guest-1").await;
    let mut listener = ChatClient::join(addr, "guest-2").await;
    assert_eq!(talker.next_line().await, "* guest-2 joined");
    let stalled = ChatClient::join(addr, "guest-3").await;
    assert_eq!(talker.next_line().await, "* guest-3 joined");
    assert_eq!(listener.next_line().await, "* guest-3 joined");

    // Far more than the stalled client's queue (1024 messages) plus what
    // the kernel buffers for it: 4000 lines of 4 KiB.
    let line = "x".repeat(4096);
    let mut dropped = false;
    for i in 0..4000 {
        talker.say(&format!("{i} {line}")).await;
        let mut got = listener.next_line().await;
        if got == "* guest-3 left" {
            dropped = true;
            got = listener.next_line().await;
        }
        assert_eq!(got, format!("guest-1: {i} {line}"));
    }
    if !dropped {
        assert_eq!(listener.next_line().await, "* guest-3 left");
    }
    drop(stalled);
}
