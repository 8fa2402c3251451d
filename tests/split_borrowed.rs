//! `TcpStream::split`: halves that borrow the stream. Reading and writing at
//! once in one task, dropping the write half leaves the connection open
//! (tokio's semantics, unlike the owned write half), options through
//! `AsRef<TcpStream>`, and the `futures-io` traits (and tokio's, with
//! feature `tokio-io`).
//!
//! Every test is bounded by `#[xev::test(timeout_ms = ...)]` or
//! `xev::time::timeout`.

mod common;

use std::io::{IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::time::Duration;

use common::{connected_pair, pattern, read_to_end};
use xev::net::{ReadHalf, TcpStream, WriteHalf};
use xev::time::timeout;

const MIB: usize = 1024 * 1024;

#[xev::test(timeout_ms = 20000)]
async fn borrowed_halves_read_while_writing_a_mib_each_way() -> std::io::Result<()> {
    let (client, server) = connected_pair().await?;
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let to_server = pattern(1, MIB);
    let to_client = pattern(2, MIB);
    let mut at_server = vec![0; MIB];
    let mut at_client = vec![0; MIB];

    // All four in one task: neither side reads until the other has written
    // everything would deadlock once the socket buffers fill, so this only
    // finishes if reads and writes on the same stream interleave.
    let (sent_up, sent_down, got_up, got_down) = futures::join!(
        client_write.write_all(&to_server),
        server_write.write_all(&to_client),
        server_read.read_exact(&mut at_server),
        client_read.read_exact(&mut at_client),
    );
    sent_up?;
    sent_down?;
    got_up?;
    got_down?;
    assert!(
        at_server == to_server,
        "the server got other bytes than sent"
    );
    assert!(
        at_client == to_client,
        "the client got other bytes than sent"
    );
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn dropping_the_borrowed_write_half_sends_no_fin() -> std::io::Result<()> {
    let (client, server) = connected_pair().await?;
    {
        let (_read, write) = client.split();
        write.write_all(b"before").await?;
    } // both halves dropped here

    let mut got = [0; 6];
    server.read_exact(&mut got).await?;
    assert_eq!(&got, b"before");
    // End of stream would be `Ok(0)` at once; an open connection has
    // nothing to read, so the read is still waiting when the time is up.
    let mut buf = [0; 16];
    let waited = timeout(Duration::from_millis(200), server.read(&mut buf)).await;
    assert!(waited.is_err(), "the read finished: {waited:?}");

    // The stream writes on, and ends when asked to.
    client.write_all(b" after").await?;
    client.shutdown(Shutdown::Write)?;
    assert_eq!(read_to_end(&server).await?, b" after");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn owned_write_half_dropped_sends_fin() -> std::io::Result<()> {
    // The contrast with the borrowed half above.
    let (client, server) = connected_pair().await?;
    let (_read, write) = client.into_split();
    drop(write);
    let mut buf = [0; 16];
    assert_eq!(server.read(&mut buf).await?, 0);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn borrowed_write_half_shutdown_sends_fin_and_the_read_half_reads_on() -> std::io::Result<()>
{
    let (client, server) = connected_pair().await?;
    let (read, write) = client.split();
    write.write_all(b"request").await?;
    write.shutdown()?;
    assert_eq!(read_to_end(&server).await?, b"request");

    server.write_all(b"reply").await?;
    let mut got = [0; 5];
    read.read_exact(&mut got).await?;
    assert_eq!(&got, b"reply");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn options_through_as_ref_after_a_split() -> std::io::Result<()> {
    let (client, server) = connected_pair().await?;
    let local = client.local_addr()?;
    let peer = client.peer_addr()?;
    {
        let (read, write): (ReadHalf<'_>, WriteHalf<'_>) = client.split();
        read.as_ref().set_nodelay(true)?;
        assert!(client.nodelay()?);
        write.as_ref().set_nodelay(false)?;
        assert!(!read.as_ref().nodelay()?);
        assert_eq!((read.local_addr()?, read.peer_addr()?), (local, peer));
        assert_eq!((write.local_addr()?, write.peer_addr()?), (local, peer));
    }

    let (read, write) = client.into_split();
    read.as_ref().set_nodelay(true)?;
    assert!(write.as_ref().nodelay()?);
    assert_eq!((read.local_addr()?, read.peer_addr()?), (local, peer));
    assert_eq!((write.local_addr()?, write.peer_addr()?), (local, peer));
    // The tokio paths name the same types.
    let _: &xev::net::tcp::OwnedReadHalf = &read;
    let _: &xev::net::tcp::OwnedWriteHalf = &write;
    drop((read, write));
    assert_eq!(read_to_end(&server).await?, b"");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn borrowed_halves_wait_peek_and_try() -> std::io::Result<()> {
    let (client, server) = connected_pair().await?;
    let (read, write) = server.split();

    let mut buf = [0; 8];
    assert_eq!(
        read.try_read(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    client.write_all(b"peekaboo").await?;
    read.readable().await?;
    let n = read.peek(&mut buf[..4]).await?;
    assert_eq!(&buf[..n], &b"peek"[..n]);
    let (mut head, mut tail) = ([0; 4], [0; 4]);
    let n = read
        .read_vectored(&mut [IoSliceMut::new(&mut head), IoSliceMut::new(&mut tail)])
        .await?;
    let mut got = [head, tail].concat();
    got.truncate(n);
    let mut rest = vec![0; 8 - n];
    read.read_exact(&mut rest).await?;
    got.extend_from_slice(&rest);
    assert_eq!(got, b"peekaboo");

    write.writable().await?;
    let mut sent = write.try_write(b"a")?;
    sent += write
        .write_vectored(&[IoSlice::new(b"b"), IoSlice::new(b"c")])
        .await?;
    while sent < 3 {
        sent += write.write(&b"abc"[sent..]).await?;
    }
    let mut got = [0; 3];
    client.read_exact(&mut got).await?;
    assert_eq!(&got, b"abc");
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn futures_io_copy_through_borrowed_halves() -> std::io::Result<()> {
    // With `AsyncReadExt` in scope, `stream.split()` is futures' own split
    // (it takes the stream by value): name xev's.
    use futures::{AsyncReadExt, AsyncWriteExt};

    let (client, server) = connected_pair().await?;
    let data = pattern(3, 256 * 1024);

    // The server echoes with `futures::io::copy` from its read half to its
    // write half, then closes the write half (`AsyncWrite::poll_close`: FIN).
    let echo = async {
        let (mut read, mut write) = TcpStream::split(&server);
        let copied = futures::io::copy(&mut read, &mut write).await?;
        write.close().await?;
        std::io::Result::Ok(copied)
    };
    // The client writes through `AsyncWriteExt` and reads through
    // `AsyncReadExt`, on its own borrowed halves (named, as the halves have
    // inherent methods of the same names).
    let talk = async {
        let (mut read, mut write) = TcpStream::split(&client);
        let (sent, received) = futures::join!(
            async {
                AsyncWriteExt::write_all(&mut write, &data).await?;
                write.close().await
            },
            async {
                let mut received = Vec::new();
                read.read_to_end(&mut received).await.map(|_| received)
            },
        );
        sent?;
        received
    };
    let (copied, received) = futures::join!(echo, talk);
    assert_eq!(copied?, data.len() as u64);
    assert!(received? == data, "the echo differs from what was sent");
    Ok(())
}

#[cfg(feature = "tokio-io")]
#[xev::test(timeout_ms = 10000)]
async fn tokio_io_copy_through_borrowed_halves() -> std::io::Result<()> {
    let (client, server) = connected_pair().await?;
    let data = pattern(4, 256 * 1024);
    let echo = async {
        let (mut read, mut write) = server.split();
        let copied = tokio::io::copy(&mut read, &mut write).await?;
        tokio::io::AsyncWriteExt::shutdown(&mut write).await?;
        std::io::Result::Ok(copied)
    };
    let talk = async {
        let (mut read, mut write) = client.split();
        let (sent, received) = futures::join!(
            async {
                tokio::io::AsyncWriteExt::write_all(&mut write, &data).await?;
                tokio::io::AsyncWriteExt::shutdown(&mut write).await
            },
            async {
                let mut received = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut read, &mut received)
                    .await
                    .map(|_| received)
            },
        );
        sent?;
        received
    };
    let (copied, received) = futures::join!(echo, talk);
    assert_eq!(copied?, data.len() as u64);
    assert!(received? == data, "the echo differs from what was sent");
    Ok(())
}

/// The halves borrow: they cannot outlive the stream (a compile-time
/// property; this only shows the intended use compiles).
#[allow(dead_code)]
fn halves_borrow_the_stream(stream: &TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    stream.split()
}
