//! libxev's first TCP test (`test "tcp: accept, connect, send, recv, close"`
//! in `src/watcher/tcp.zig`), ported to xev as a user would write it: bind
//! 127.0.0.1:0 and listen with a backlog of 1, accept and connect
//! concurrently, send `[1, 1, 2, 3, 5, 8, 13]` from the client, receive it on
//! the server into a 128-byte buffer, then close all three sockets.

use std::net::SocketAddr;

use futures::future;
use xev::net::TcpSocket;

#[xev::test(timeout_ms = 5000)]
async fn accept_connect_send_recv_close() -> std::io::Result<()> {
    let address: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = TcpSocket::for_addr(&address)?;
    server.bind(address)?;
    let listener = server.listen(1)?;
    let address = listener.local_addr()?;

    // Accept and connect at the same time, as libxev queues both
    // completions before running the loop.
    let client = TcpSocket::for_addr(&address)?;
    let (accepted, connected) = future::join(listener.accept(), client.connect(address)).await;
    let (connection, peer) = accepted?;
    let client = connected?;
    assert_eq!(peer, client.local_addr()?);
    assert_eq!(client.peer_addr()?, address);

    let send_buf = [1, 1, 2, 3, 5, 8, 13];
    let sent = client.write(&send_buf).await?;
    assert_eq!(sent, send_buf.len());

    // One read suffices on loopback for libxev; a `read` may legally return
    // fewer bytes, so keep reading until all seven are in.
    let mut recv_buf = [0u8; 128];
    let mut received = 0;
    while received < send_buf.len() {
        let n = connection.read(&mut recv_buf[received..]).await?;
        assert_ne!(n, 0, "the client closed before sending everything");
        received += n;
    }
    assert_eq!(&recv_buf[..received], &send_buf);

    drop(listener); // a listener has no `close`: dropping it closes it
    connection.close().await?;
    client.close().await?;
    Ok(())
}
