//! `xev::net` behaviour: one test per promise of DESIGN §2 `xev::net` and
//! §4, over loopback only.
//!
//! Every test is bounded: async tests by `#[xev::test(timeout_ms = ...)]`
//! (and `xev::time::timeout` where one step must finish sooner), child
//! processes by a deadline in [`run_in_child`].
//!
//! Tests that need a process of their own run there: the SIGPIPE test needs
//! the default SIGPIPE disposition (the Rust runtime ignores it), the EMFILE
//! test lowers the process's fd limit, and the fd-leak and fd-reuse tests
//! count or predict fd numbers, which the other tests running on parallel
//! threads would disturb. Such a test re-executes this binary with `--exact`
//! and an environment variable that tells the copy to run the body.

use std::cell::Cell;
use std::io::{self, ErrorKind, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures::future;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use xev::net::{TcpListener, TcpSocket, TcpStream};
use xev::rt::spawn;
use xev::time::sleep;
#[cfg(target_os = "linux")]
use xev::time::timeout;

mod common;

#[cfg(target_os = "linux")]
use common::child::open_fds;
#[cfg(unix)]
use common::child::{is_child, run as run_in_child};
use common::{assert_kind, connected_pair, pattern, read_to_end, within, Fnv};

/// The error of a send to a peer that has closed the connection.
fn assert_peer_gone(error: io::Error) {
    assert!(
        matches!(
            error.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "expected BrokenPipe or ConnectionReset, got {error:?}"
    );
}

// ---------------------------------------------------------------------------
// Addresses and connecting

#[xev::test(timeout_ms = 5000)]
async fn bind_twice_is_addr_in_use() -> io::Result<()> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let addr = first.local_addr()?;
    // `bind` sets SO_REUSEADDR, which must not let a second socket take a
    // port someone listens on.
    assert_kind(TcpListener::bind(addr), ErrorKind::AddrInUse);

    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    assert_kind(socket.bind(addr), ErrorKind::AddrInUse);
    Ok(())
}

/// Connects to a listener on `listener_addr` and checks that each end's
/// addresses are the other's, then sends a few bytes each way.
async fn check_address_plumbing(listener: TcpListener, client: TcpSocket) -> io::Result<()> {
    let listen_addr = listener.local_addr()?;
    let (connected, accepted) = future::join(client.connect(listen_addr), listener.accept()).await;
    let client = connected?;
    let (server, peer) = accepted?;

    assert_eq!(client.peer_addr()?, listen_addr);
    assert_eq!(server.local_addr()?, listen_addr);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    assert_eq!(peer, client.local_addr()?);
    assert_eq!(client.local_addr()?.ip(), listen_addr.ip());

    client.write_all(b"to server").await?;
    let mut buf = [0; 9];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"to server");
    server.write_all(b"to client").await?;
    client.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"to client");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn ipv4_address_plumbing_both_ways() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    check_address_plumbing(listener, TcpSocket::new_v4()?).await?;

    // The same through `TcpSocket` on the listening side, and through
    // `TcpStream::connect` with a string address on the connecting side.
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse().unwrap())?;
    let listener = socket.listen(16)?;
    let addr = listener.local_addr()?;
    let (client, accepted) = future::join(
        TcpStream::connect(format!("127.0.0.1:{}", addr.port())),
        listener.accept(),
    )
    .await;
    let (client, (server, peer)) = (client?, accepted?);
    assert_eq!(client.peer_addr()?, addr);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    assert_eq!(peer, client.local_addr()?);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn ipv6_address_plumbing_both_ways() -> io::Result<()> {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    let socket = TcpSocket::new_v6()?;
    match socket.bind(addr) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::AddrNotAvailable => {
            println!("skipped: this host has no [::1] to bind ({error})");
            return Ok(());
        }
        Err(error) => return Err(error),
    }
    let listener = socket.listen(16)?;
    assert!(listener.local_addr()?.is_ipv6());
    check_address_plumbing(listener, TcpSocket::new_v6()?).await?;

    let listener = TcpListener::bind("[::1]:0")?;
    let client = TcpSocket::for_addr(&listener.local_addr()?)?;
    check_address_plumbing(listener, client).await
}

#[xev::test(timeout_ms = 5000)]
async fn refused_connect_is_connection_refused() -> io::Result<()> {
    // A port that was just listened on and is now closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    assert_kind(TcpStream::connect(addr).await, ErrorKind::ConnectionRefused);
    assert_kind(
        TcpSocket::new_v4()?.connect(addr).await,
        ErrorKind::ConnectionRefused,
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Moving bytes

/// Echoes everything it reads until end of stream, one task per connection.
async fn echo_server(listener: TcpListener) {
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        // Detached: the connection's task ends at end of stream.
        drop(spawn(async move {
            let mut buf = vec![0; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
}

#[xev::test(timeout_ms = 20000)]
async fn echo_1024_messages_of_11_bytes() -> io::Result<()> {
    const CONNECTIONS: usize = 32;
    const MESSAGES: usize = 1024 / CONNECTIONS;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = spawn(echo_server(listener));

    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                let mut echoed = [0; 11];
                for message in 0..MESSAGES {
                    let sent = format!("{connection:03}:{message:06}\n");
                    assert_eq!(sent.len(), 11);
                    stream.write_all(sent.as_bytes()).await?;
                    stream.read_exact(&mut echoed).await?;
                    assert_eq!(&echoed, sent.as_bytes());
                }
                io::Result::Ok(MESSAGES)
            })
        })
        .collect();
    let mut echoes = 0;
    for client in clients {
        echoes += client.await.expect("client task")?;
    }
    assert_eq!(echoes, 1024);
    server.abort();
    Ok(())
}

#[xev::test(timeout_ms = 30000)]
async fn ping_pong_20000_single_bytes_on_one_connection() -> io::Result<()> {
    const ROUND_TRIPS: usize = 20_000;
    let (client, server) = connected_pair().await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let server = spawn(async move {
        let mut byte = [0; 1];
        let mut answered = 0;
        while server.read(&mut byte).await? == 1 {
            byte[0] = byte[0].wrapping_add(1);
            server.write_all(&byte).await?;
            answered += 1;
        }
        io::Result::Ok(answered)
    });
    let mut byte = [0; 1];
    for i in 0..ROUND_TRIPS {
        client.write_all(&[i as u8]).await?;
        client.read_exact(&mut byte).await?;
        assert_eq!(byte[0], (i as u8).wrapping_add(1));
    }
    drop(client);
    assert_eq!(server.await.expect("server task")?, ROUND_TRIPS);
    Ok(())
}

/// Writes `data` in chunks, then shuts down the write side.
async fn write_then_shutdown(stream: Rc<TcpStream>, data: Rc<Vec<u8>>) -> io::Result<()> {
    for chunk in data.chunks(256 << 10) {
        stream.write_all(chunk).await?;
    }
    stream.shutdown(Shutdown::Write)
}

/// Reads until end of stream: how many bytes, and their checksum.
async fn read_to_end_checksum(stream: Rc<TcpStream>) -> io::Result<(usize, Fnv)> {
    let mut buf = vec![0; 64 << 10];
    let (mut total, mut fnv) = (0, Fnv::new());
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok((total, fnv)),
            n => {
                total += n;
                fnv.update(&buf[..n]);
            }
        }
    }
}

#[xev::test(timeout_ms = 60000)]
async fn duplex_16_mib_each_way_reader_and_writer_tasks_on_one_stream() -> io::Result<()> {
    const BYTES: usize = 16 << 20;
    let (client, server) = connected_pair().await?;
    let (client, server) = (Rc::new(client), Rc::new(server));
    let to_server = Rc::new(pattern(1, BYTES));
    let to_client = Rc::new(pattern(2, BYTES));

    // Both writers first: neither side reads before it writes, so a lost
    // wake-up on either direction of either socket stalls the test.
    let writers = [
        spawn(write_then_shutdown(client.clone(), to_server.clone())),
        spawn(write_then_shutdown(server.clone(), to_client.clone())),
    ];
    let server_reader = spawn(read_to_end_checksum(server.clone()));
    let client_reader = spawn(read_to_end_checksum(client.clone()));
    for writer in writers {
        writer.await.expect("writer task")?;
    }
    let server_got = server_reader.await.expect("server reader task")?;
    let client_got = client_reader.await.expect("client reader task")?;
    assert_eq!(server_got, (BYTES, Fnv::of(&to_server)));
    assert_eq!(client_got, (BYTES, Fnv::of(&to_client)));
    Ok(())
}

#[xev::test(timeout_ms = 30000)]
async fn read_1_mib_one_byte_at_a_time() -> io::Result<()> {
    const BYTES: usize = 1 << 20;
    let (client, server) = connected_pair().await?;
    let sent = pattern(3, BYTES);
    let writer = spawn(async move {
        client.write_all(&pattern(3, BYTES)).await?;
        client.close().await
    });
    let mut received = Vec::with_capacity(BYTES);
    let mut byte = [0; 1];
    while server.read(&mut byte).await? == 1 {
        received.push(byte[0]);
    }
    writer.await.expect("writer task")?;
    assert_eq!(received.len(), BYTES);
    assert!(received == sent, "bytes differ from what was sent");
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn write_then_drop_peer_reads_exactly_the_bytes_then_eof() -> io::Result<()> {
    // Small enough to sit in the socket buffers: the writer is gone before
    // the reader starts.
    let (client, server) = connected_pair().await?;
    client.write_all(b"last words").await?;
    drop(client);
    assert_eq!(read_to_end(&server).await?, b"last words");
    let mut buf = [0; 64];
    assert_eq!(server.read(&mut buf).await?, 0, "end of stream stays");

    // Larger than the buffers: the drop comes while the reader is reading.
    const BYTES: usize = 4 << 20;
    let (client, server) = connected_pair().await?;
    let writer = spawn(async move {
        client.write_all(&pattern(4, BYTES)).await?;
        drop(client);
        io::Result::Ok(())
    });
    let (total, fnv) = read_to_end_checksum(Rc::new(server)).await?;
    writer.await.expect("writer task")?;
    assert_eq!((total, fnv), (BYTES, Fnv::of(&pattern(4, BYTES))));
    Ok(())
}

/// A task that waits on many sockets with its own waker (here one
/// `poll_fn` polling a read on each) and finds them all ready in one
/// reactor poll is polled once, not once per socket.
#[xev::test(timeout_ms = 10000)]
async fn task_waiting_on_many_sockets_is_polled_once_when_all_become_ready() -> io::Result<()> {
    // Fewer than one tick's batch of tasks, so all wakes land in one tick.
    const SOCKETS: usize = 100;
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..SOCKETS {
        let (client, server) = connected_pair().await?;
        clients.push(client);
        servers.push(server);
    }
    let polls = Rc::new(Cell::new(0));
    let received = Rc::new(Cell::new(0));
    let reader = spawn({
        let (polls, received) = (polls.clone(), received.clone());
        async move {
            let mut done = vec![false; SOCKETS];
            future::poll_fn(|cx| {
                polls.set(polls.get() + 1);
                for (server, done) in servers.iter().zip(&mut done) {
                    let mut byte = [0];
                    // The trait method: a `read()` future dropped while
                    // pending would take its waiter with it.
                    if !*done && Pin::new(&mut &*server).poll_read(cx, &mut byte).is_ready() {
                        *done = true;
                        received.set(received.get() + 1);
                    }
                }
                // Never completes: a duplicate wake would poll it again.
                std::task::Poll::<()>::Pending
            })
            .await
        }
    });
    while polls.get() == 0 {
        xev::rt::yield_now().await;
    }
    for client in &clients {
        client.write_all(b"x").await?;
    }
    while received.get() < SOCKETS {
        xev::rt::yield_now().await;
    }
    for _ in 0..3 {
        xev::rt::yield_now().await;
    }
    assert_eq!(
        polls.get(),
        2,
        "polled once to wait, once when all were ready"
    );
    reader.abort();
    Ok(())
}

// ---------------------------------------------------------------------------
// Closing

#[xev::test(timeout_ms = 5000)]
async fn half_close_peer_reads_eof_and_can_still_write() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    client.write_all(b"request").await?;
    client.shutdown(Shutdown::Write)?;

    assert_eq!(read_to_end(&server).await?, b"request");
    server.write_all(b"response").await?;
    drop(server);

    let mut response = [0; 8];
    client.read_exact(&mut response).await?;
    assert_eq!(&response, b"response");
    let mut buf = [0; 64];
    assert_eq!(client.read(&mut buf).await?, 0);
    assert_kind(
        client.write_all(b"after shutdown").await,
        ErrorKind::BrokenPipe,
    );
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn dropping_the_write_half_sends_fin() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let (read_half, write_half) = client.into_split();
    write_half.write_all(b"bye").await?;
    drop(write_half);

    let mut buf = [0; 3];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"bye");
    assert_eq!(
        server.read(&mut buf).await?,
        0,
        "FIN after the write half's drop"
    );

    server.write_all(b"still open").await?;
    let mut reply = [0; 10];
    read_half.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"still open");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn shutdown_three_times_is_ok() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    for _ in 0..3 {
        client.shutdown(Shutdown::Write)?;
    }
    for _ in 0..3 {
        client.shutdown(Shutdown::Both)?;
    }
    for _ in 0..3 {
        server.shutdown(Shutdown::Read)?;
    }

    // Once the connection is fully closed, Linux says ENOTCONN; still Ok.
    let mut buf = [0; 1];
    assert_eq!(server.read(&mut buf).await?, 0);
    drop(server);
    assert_eq!(client.read(&mut buf).await?, 0);
    for _ in 0..3 {
        client.shutdown(Shutdown::Both)?;
    }
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn reset_wakes_a_blocked_reader_and_a_blocked_writer_with_errors() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    // Small buffers, so the writer blocks after a few KiB.
    client.set_send_buffer_size(4096)?;
    server.set_recv_buffer_size(4096)?;
    let client = Rc::new(client);

    let reader = spawn({
        let client = client.clone();
        async move {
            let mut buf = [0; 1024];
            client.read(&mut buf).await
        }
    });
    let written = Rc::new(Cell::new(0));
    let writer = spawn({
        let (client, written) = (client.clone(), written.clone());
        async move {
            let chunk = vec![0x5a; 64 << 10];
            loop {
                match client.write(&chunk).await {
                    Ok(n) => written.set(written.get() + n),
                    Err(error) => return error,
                }
            }
        }
    });

    // The server never reads, so the writer stalls: wait until it has.
    loop {
        let before = written.get();
        sleep(Duration::from_millis(20)).await;
        if before > 0 && written.get() == before {
            break;
        }
    }
    assert!(!reader.is_finished(), "the reader has nothing to read yet");

    server.set_linger(Some(Duration::ZERO))?;
    drop(server); // RST

    let read = within(Duration::from_secs(2), "the blocked read", reader).await;
    assert_kind(read.expect("reader task"), ErrorKind::ConnectionReset);
    let write = within(Duration::from_secs(2), "the blocked write", writer)
        .await
        .expect("writer task");
    assert!(
        matches!(
            write.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "unexpected write error {write:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Child processes

#[cfg(unix)]
#[test]
fn write_to_a_dropped_peer_fails_without_sigpipe() {
    const NAME: &str = "write_to_a_dropped_peer_fails_without_sigpipe";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    // The Rust runtime ignores SIGPIPE; restore the default, which kills
    // the process on any send that raises it.
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);

    xev::rt::block_on(within(
        Duration::from_secs(20),
        "the SIGPIPE child",
        async {
            let chunk = vec![1u8; 256 << 10];

            // write_all: the first send succeeds into the buffer and draws a
            // reset; the first failing send consumes the reset, and the ones
            // after it are those that raise SIGPIPE without MSG_NOSIGNAL.
            let (client, server) = connected_pair().await?;
            drop(server);
            let error = loop {
                if let Err(error) = client.write_all(&chunk).await {
                    break error;
                }
            };
            assert_peer_gone(error);
            for _ in 0..3 {
                assert_peer_gone(client.write_all(&chunk).await.unwrap_err());
            }

            // write_vectored (sendmsg), the same way.
            let (client, server) = connected_pair().await?;
            drop(server);
            let slices = [IoSlice::new(&chunk), IoSlice::new(b"tail")];
            let error = loop {
                if let Err(error) = client.write_vectored(&slices).await {
                    break error;
                }
            };
            assert_peer_gone(error);
            for _ in 0..3 {
                assert_peer_gone(client.write_vectored(&slices).await.unwrap_err());
            }
            io::Result::Ok(())
        },
    ))
    .expect("I/O in the SIGPIPE child");
}

#[cfg(target_os = "linux")]
#[test]
fn connect_accept_drop_2000_times_leaks_no_fd() {
    const NAME: &str = "connect_accept_drop_2000_times_leaks_no_fd";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    xev::rt::block_on(within(
        Duration::from_secs(40),
        "2,000 connect/accept/drop cycles",
        async {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let before = open_fds();
            for cycle in 0..2000 {
                let (client, accepted) =
                    future::join(TcpStream::connect(addr), listener.accept()).await;
                let (client, (server, _)) = (client?, accepted?);
                // Vary who closes first, and how.
                match cycle % 3 {
                    0 => drop((client, server)),
                    1 => {
                        server.close().await?;
                        client.close().await?;
                    }
                    _ => {
                        let (read, write) = client.into_split();
                        drop(write);
                        drop(server);
                        drop(read);
                    }
                }
            }
            assert_eq!(open_fds(), before, "fds leaked");
            io::Result::Ok(())
        },
    ))
    .expect("I/O in the fd-leak child");
}

#[cfg(target_os = "linux")]
#[test]
fn accept_under_emfile_returns_the_error_without_spinning() {
    const NAME: &str = "accept_under_emfile_returns_the_error_without_spinning";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    xev::rt::block_on(within(
        Duration::from_secs(20),
        "the EMFILE child",
        accept_under_emfile(),
    ))
    .expect("I/O in the EMFILE child");
}

#[cfg(target_os = "linux")]
async fn accept_under_emfile() -> io::Result<()> {
    use std::time::Instant;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    // Connected in the kernel, waiting in the backlog to be accepted.
    let client = TcpStream::connect(listener.local_addr()?).await?;

    // A soft limit of 8 fds more than are open now.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes only to the `rlimit` it is given.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit.rlim_cur = (open_fds() + 8) as libc::rlim_t;
    // SAFETY: `setrlimit` only reads the `rlimit` it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);

    let mut hogs = Vec::new();
    loop {
        match std::net::UdpSocket::bind("127.0.0.1:0") {
            Ok(socket) => hogs.push(socket),
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error:?}");
                break;
            }
        }
        assert!(hogs.len() < 100, "RLIMIT_NOFILE has no effect");
    }

    let error = within(
        Duration::from_secs(1),
        "accept under EMFILE",
        listener.accept(),
    )
    .await
    .expect_err("no fd is free to accept with");
    assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error:?}");

    // The back-off loop of the docs: the loop must sleep, not spin.
    let cpu_before = cpu_time();
    let start = Instant::now();
    let mut failures = 0;
    while start.elapsed() < Duration::from_millis(200) {
        match listener.accept().await {
            Err(error) if error.raw_os_error() == Some(libc::EMFILE) => {
                failures += 1;
                sleep(Duration::from_millis(10)).await;
            }
            other => panic!("expected EMFILE, got {other:?}"),
        }
    }
    let (cpu, wall) = (cpu_time() - cpu_before, start.elapsed());
    assert!(failures >= 2, "only {failures} accept attempts");
    assert!(
        cpu < wall / 10,
        "the back-off loop used {cpu:?} of CPU in {wall:?}"
    );

    // One free fd, and the waiting connection comes through.
    drop(hogs.pop());
    let (server, peer) = within(
        Duration::from_secs(1),
        "accept with a free fd",
        listener.accept(),
    )
    .await?;
    assert_eq!(peer, client.local_addr()?);
    client.write_all(b"in").await?;
    let mut buf = [0; 2];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"in");
    Ok(())
}

/// User plus system CPU time of this process.
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes only to the `rusage` it is given.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// A dropped socket's events must never reach the socket that reuses its
/// fd number (and its slot in the reactor). To make the stale events real,
/// socket A's file is kept alive by a `dup`: epoll then keeps A's
/// registration, under A's old token, after A's fd number is closed and
/// reused by B, and reports A's data under that token.
#[cfg(target_os = "linux")]
#[test]
fn stale_event_for_a_dropped_socket_never_wakes_the_socket_reusing_its_fd() {
    const NAME: &str = "stale_event_for_a_dropped_socket_never_wakes_the_socket_reusing_its_fd";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    xev::rt::block_on(within(
        Duration::from_secs(20),
        "the fd-reuse child",
        stale_event_for_reused_fd(),
    ))
    .expect("I/O in the fd-reuse child");
}

#[cfg(target_os = "linux")]
async fn stale_event_for_reused_fd() -> io::Result<()> {
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (a_peer, accepted) = future::join(TcpStream::connect(addr), listener.accept()).await;
    let (a_peer, (a, _)) = (a_peer?, accepted?);

    // A is readable, and the reactor has seen it.
    a_peer.write_all(b"for A").await?;
    a.readable().await?;

    // In one tick: keep A's file alive, drop A, and give its fd number to B.
    let a_file = a.as_fd().try_clone_to_owned()?;
    let a_fd = a.as_raw_fd();
    drop(a);
    let mut fillers = Vec::new(); // lower free fds, if any, go to these
    let b_socket = loop {
        let socket = TcpSocket::new_v4()?;
        if socket.as_raw_fd() == a_fd {
            break socket;
        }
        assert!(socket.as_raw_fd() < a_fd, "fd {a_fd} was not reused");
        fillers.push(socket);
    };
    let (b, accepted) = future::join(b_socket.connect(addr), listener.accept()).await;
    let (b, (b_peer, _)) = (b?, accepted?);
    assert_eq!(b.as_raw_fd(), a_fd);

    // More events for A's socket, delivered under A's old token.
    a_peer.write_all(b", again").await?;
    a_peer.shutdown(Shutdown::Write)?;
    let stale = Duration::from_millis(150);
    assert!(
        timeout(stale, b.readable()).await.is_err(),
        "B woke for A's data"
    );
    let mut buf = [0; 64];
    assert_kind(b.try_read(&mut buf), ErrorKind::WouldBlock);
    assert!(
        timeout(stale, b.read(&mut buf)).await.is_err(),
        "B read returned instead of waiting"
    );

    // A's bytes went to A's file, and B still works.
    let mut a_file = std::net::TcpStream::from(a_file);
    a_file.set_nonblocking(false)?;
    let mut for_a = Vec::new();
    a_file.read_to_end(&mut for_a)?;
    assert_eq!(for_a, b"for A, again");
    b_peer.write_all(b"for B").await?;
    let mut for_b = [0; 5];
    b.read_exact(&mut for_b).await?;
    assert_eq!(&for_b, b"for B");
    Ok(())
}

// ---------------------------------------------------------------------------
// API surface

#[xev::test(timeout_ms = 5000)]
async fn futures_io_traits_on_streams_references_and_halves() -> io::Result<()> {
    // `TcpStream` itself, and `&TcpStream`. (The inherent methods of the
    // same names would win over the traits' without the paths.)
    let (mut client, server) = connected_pair().await?;
    AsyncWriteExt::write_all(&mut client, b"owned").await?;
    let mut buf = [0; 5];
    AsyncReadExt::read_exact(&mut &server, &mut buf).await?;
    assert_eq!(&buf, b"owned");
    AsyncWriteExt::write_all(&mut &server, b"by ref").await?;
    let mut buf = [0; 6];
    AsyncReadExt::read_exact(&mut client, &mut buf).await?;
    assert_eq!(&buf, b"by ref");
    // poll_close shuts down the write side; reading still works.
    AsyncWriteExt::close(&mut client).await?;
    let mut rest = Vec::new();
    AsyncReadExt::read_to_end(&mut &server, &mut rest).await?;
    assert!(rest.is_empty());
    AsyncWriteExt::write_all(&mut &server, b"after close").await?;
    let mut buf = [0; 11];
    AsyncReadExt::read_exact(&mut client, &mut buf).await?;
    assert_eq!(&buf, b"after close");

    // The owned halves.
    let (client, server) = connected_pair().await?;
    let (mut read, mut write) = client.into_split();
    AsyncWriteExt::write_all(&mut write, b"half").await?;
    AsyncWriteExt::flush(&mut write).await?;
    let mut buf = [0; 4];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"half");
    server.write_all(b"back").await?;
    AsyncReadExt::read_exact(&mut read, &mut buf).await?;
    assert_eq!(&buf, b"back");
    AsyncWriteExt::close(&mut write).await?;
    assert_eq!(server.read(&mut buf).await?, 0);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn peek_readable_writable_and_try_io() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let mut buf = [0; 16];
    assert_kind(server.try_read(&mut buf), ErrorKind::WouldBlock);

    // peek leaves the bytes for the next read.
    client.write_all(b"peekaboo").await?;
    let n = server.peek(&mut buf).await?;
    assert_eq!(&buf[..n], &b"peekaboo"[..n]);
    assert!(n > 0);
    let mut read = [0; 8];
    server.read_exact(&mut read).await?;
    assert_eq!(&read, b"peekaboo");
    assert_kind(server.try_read(&mut buf), ErrorKind::WouldBlock);

    // readable + try_read, retrying on spurious readiness.
    client.write_all(b"ready").await?;
    let mut got = Vec::new();
    while got.len() < 5 {
        server.readable().await?;
        match server.try_read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    assert_eq!(got, b"ready");
    assert_kind(server.try_read(&mut buf), ErrorKind::WouldBlock);

    // writable + try_write.
    let sent = loop {
        client.writable().await?;
        match client.try_write(b"tw") {
            Ok(n) => break n,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    };
    assert_eq!(sent, 2);
    let mut tw = [0; 2];
    server.read_exact(&mut tw).await?;
    assert_eq!(&tw, b"tw");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn std_conversions_round_trip_and_incoming_yields_connections() -> io::Result<()> {
    use std::io::{Read, Write};

    // Listener: std -> xev.
    let listener = TcpListener::from_std(std::net::TcpListener::bind("127.0.0.1:0")?)?;
    let addr = listener.local_addr()?;
    let std_client = std::net::TcpStream::connect(addr)?;
    let (server, peer) = listener.accept().await?;
    assert_eq!(peer, std_client.local_addr()?);

    // Stream: std -> xev -> std -> xev.
    let client = TcpStream::from_std(std_client)?;
    client.write_all(b"xev").await?;
    let mut buf = [0; 3];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"xev");
    let mut std_client = client.into_std()?;
    std_client.set_nonblocking(false)?;
    std_client.write_all(b"std")?;
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"std");
    server.write_all(b"two").await?;
    std_client.read_exact(&mut buf)?;
    assert_eq!(&buf, b"two");
    let client = TcpStream::from_std(std_client)?; // re-registers cleanly
    client.write_all(b"xev").await?;
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"xev");

    // Listener: xev -> std (non-blocking, no longer in the reactor) -> xev.
    let std_listener = listener.into_std()?;
    assert_kind(std_listener.accept(), ErrorKind::WouldBlock);
    let waiting = TcpStream::connect(addr).await?;
    std_listener.set_nonblocking(false)?;
    let (_accepted, peer) = std_listener.accept()?;
    assert_eq!(peer, waiting.local_addr()?);
    let listener = TcpListener::from_std(std_listener)?;

    // incoming() yields each connection.
    let mut incoming = listener.incoming();
    for _ in 0..3 {
        let client = TcpStream::connect(addr).await?;
        let server = incoming.next().await.expect("incoming never ends")?;
        assert_eq!(server.peer_addr()?, client.local_addr()?);
    }
    Ok(())
}

#[test]
fn io_constructors_outside_a_runtime_panic_naming_block_on() {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn panic_message(f: impl FnOnce()) -> String {
        let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("no panic outside a runtime");
        match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => payload
                .downcast::<&str>()
                .map(|message| message.to_string())
                .unwrap_or_default(),
        }
    }

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let messages = [
        (
            "TcpListener::bind",
            panic_message(|| drop(TcpListener::bind("127.0.0.1:0"))),
        ),
        (
            "TcpListener::from_std",
            panic_message(|| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                drop(TcpListener::from_std(listener));
            }),
        ),
        (
            "TcpSocket::listen",
            panic_message(|| {
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
                drop(socket.listen(1));
            }),
        ),
        (
            "TcpStream::from_std",
            panic_message(|| {
                let stream = std::net::TcpStream::connect(addr).unwrap();
                drop(TcpStream::from_std(stream));
            }),
        ),
        (
            "TcpStream::connect",
            panic_message(|| drop(futures::executor::block_on(TcpStream::connect(addr)))),
        ),
    ];
    for (constructor, message) in messages {
        assert!(
            message.contains("block_on"),
            "{constructor}'s panic does not name `block_on`: {message:?}"
        );
    }
}

#[xev::test(timeout_ms = 5000)]
async fn reunite_gives_back_the_stream_and_rejects_foreign_halves() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let (other, _other_server) = connected_pair().await?;
    let (read, write) = client.into_split();
    let (other_read, other_write) = other.into_split();

    let error = read
        .reunite(other_write)
        .expect_err("halves of two streams");
    let (read, other_write) = (error.0, error.1);
    let client = read.reunite(write).expect("halves of one stream");
    drop((other_read, other_write));

    // Reuniting does not shut down the write side, as dropping the write
    // half would: the stream still writes.
    client.write_all(b"whole again").await?;
    let mut buf = [0; 11];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"whole again");
    Ok(())
}
