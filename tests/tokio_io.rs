//! The `tokio-io` feature: crates written against tokio's I/O traits run on
//! xev's sockets, with no tokio runtime anywhere.
//!
//! ```text
//! cargo test --features tokio-io --test tokio_io
//! ```
#![cfg(feature = "tokio-io")]

use std::io;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LinesCodec};
use xev::net::{TcpListener, TcpStream};

/// A listener on an ephemeral loopback port and a connection to it:
/// `(client, server)`.
async fn connected_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    Ok((client, server))
}

/// `tokio_util`'s `LinesCodec` frames both ends: the server answers each
/// line in upper case on a `Framed<TcpStream>`, the client talks through a
/// `FramedWrite` on the write half and a `FramedRead` on the read half, and
/// closing the client's sink (tokio's `poll_shutdown`) ends the server's
/// stream of lines.
#[xev::test(timeout_ms = 5000)]
async fn lines_codec_frames_both_ways() {
    let (client, server) = connected_pair().await.unwrap();
    let server = xev::rt::spawn(async move {
        let mut lines = Framed::new(server, LinesCodec::new());
        let mut seen = Vec::new();
        while let Some(line) = lines.next().await {
            let line = line.unwrap();
            lines.send(line.to_uppercase()).await.unwrap();
            seen.push(line);
        }
        seen
    });

    let (read, write) = client.into_split();
    let mut replies = FramedRead::new(read, LinesCodec::new());
    let mut requests = FramedWrite::new(write, LinesCodec::new());
    // Long enough lines that a frame spans several reads and sends.
    let sent: Vec<String> = (0..50)
        .map(|i| format!("line {i} {}", "x".repeat(i * 500)))
        .collect();
    for line in &sent {
        requests.send(line.as_str()).await.unwrap();
        let reply = replies.next().await.expect("a reply per line").unwrap();
        assert_eq!(reply, line.to_uppercase());
    }
    SinkExt::<&str>::close(&mut requests).await.unwrap();

    assert_eq!(server.await.unwrap(), sent);
    assert!(
        replies.next().await.is_none(),
        "the server closed after the last reply"
    );
}

/// `read_to_end` (tokio's, on `&TcpStream`, which hands uninitialised
/// buffers to `poll_read`) gets every byte of a payload larger than the
/// socket buffers, in order; `write_all` + `shutdown` on the owned write half
/// send it and the end of stream.
#[xev::test(timeout_ms = 10000)]
async fn read_to_end_and_shutdown_move_every_byte() {
    let (client, server) = connected_pair().await.unwrap();
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let writer = xev::rt::spawn({
        let payload = payload.clone();
        async move {
            let (_read, mut write) = client.into_split();
            AsyncWriteExt::write_all(&mut write, &payload).await?;
            AsyncWriteExt::shutdown(&mut write).await?;
            io::Result::Ok(())
        }
    });

    let mut got = Vec::new();
    let n = AsyncReadExt::read_to_end(&mut &server, &mut got)
        .await
        .unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(n, payload.len());
    assert!(got == payload, "the bytes arrived changed or out of order");
}

/// `tokio::io::copy` between xev streams: an echo server built from it
/// returns everything the client sends, and ends when the client shuts
/// down its write side.
#[xev::test(timeout_ms = 5000)]
async fn tokio_copy_echoes() {
    let (client, server) = connected_pair().await.unwrap();
    let echo = xev::rt::spawn(async move {
        let (mut read, mut write) = server.into_split();
        tokio::io::copy(&mut read, &mut write).await
    });

    let message = b"echo through tokio::io::copy".repeat(1000);
    let mut client = client;
    AsyncWriteExt::write_all(&mut client, &message)
        .await
        .unwrap();
    AsyncWriteExt::shutdown(&mut client).await.unwrap();
    let mut got = Vec::new();
    AsyncReadExt::read_to_end(&mut client, &mut got)
        .await
        .unwrap();
    assert_eq!(echo.await.unwrap().unwrap(), message.len() as u64);
    assert!(got == message, "the echo differs from what was sent");
}
