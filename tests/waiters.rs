//! Every waiter wakes: any number of tasks (and foreign wakers) may wait on
//! one direction of one socket or listener, and readiness wakes them all; a
//! future dropped while waiting removes only its own entry.
//!
//! Each test is named after the hang it pins; on a reactor with one waiter
//! slot per direction, each of them times out. Every wait is bounded.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
use std::rc::Rc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use xev::io::WriteQueue;
use xev::net::{TcpListener, TcpStream};
use xev::rt::{spawn, yield_now, Runtime};
use xev::time::{sleep, timeout};

mod common;

#[cfg(target_os = "linux")]
use common::child::{is_child, run as run_in_child};
use common::{connected_pair, pattern, read_to_end, within};

/// How long any one step may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(5);

#[xev::test(timeout_ms = 20000)]
async fn several_tasks_accepting_on_one_listener_all_get_a_connection() -> io::Result<()> {
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let acceptors: Vec<_> = (0..4)
        .map(|_| {
            let listener = listener.clone();
            spawn(async move { listener.accept().await.map(|(stream, _)| stream) })
        })
        .collect();
    // Every acceptor is waiting before the first connection arrives.
    for _ in 0..3 {
        yield_now().await;
    }
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(TcpStream::connect(addr).await?);
    }
    let mut peers = Vec::new();
    for acceptor in acceptors {
        let stream = within(HANG, "an acceptor sharing the listener", acceptor).await??;
        peers.push(stream.peer_addr()?);
    }
    peers.sort();
    let mut expected: Vec<_> = clients
        .iter()
        .map(|client| client.local_addr())
        .collect::<io::Result<_>>()?;
    expected.sort();
    assert_eq!(peers, expected);
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn two_tasks_awaiting_readable_on_one_stream_both_wake() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let server = Rc::new(server);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let server = server.clone();
            spawn(async move { server.readable().await })
        })
        .collect();
    yield_now().await;
    yield_now().await;
    client.write_all(b"x").await?;
    for waiter in waiters {
        within(HANG, "a task awaiting readable()", waiter).await??;
    }
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn two_tasks_reading_one_stream_both_get_data() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let server = Rc::new(server);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let server = server.clone();
            spawn(async move {
                let mut buf = [0; 1];
                server.read(&mut buf).await.map(|n| buf[..n].to_vec())
            })
        })
        .collect();
    yield_now().await;
    yield_now().await;
    // One byte at a time, each after the readers had a turn: each read
    // takes one byte, and neither reader is left waiting with data queued.
    for byte in [b'a', b'b'] {
        client.write_all(&[byte]).await?;
        sleep(Duration::from_millis(5)).await;
    }
    let mut got = Vec::new();
    for reader in readers {
        got.extend(within(HANG, "a task reading a shared stream", reader).await??);
    }
    got.sort();
    assert_eq!(got, b"ab");
    Ok(())
}

#[xev::test(timeout_ms = 30000)]
async fn write_queue_drain_and_a_writable_waiter_on_one_stream_both_progress() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let client = Rc::new(client);
    let queue = WriteQueue::with_send_buffer_size(client.clone(), 8192)?;
    let data = pattern(11, 2 << 20);
    let request = queue.push(data.clone());
    // Let the drain fill the socket, so both wait for the same edge.
    sleep(Duration::from_millis(20)).await;
    let writable = spawn({
        let client = client.clone();
        async move {
            // The queue keeps the socket full: wait until a send of our own
            // fits, as a second writer on a shared stream would.
            client.writable().await
        }
    });
    yield_now().await;
    let reader = spawn(async move { read_to_end(&server).await });
    within(
        HANG,
        "a WriteRequest while another task awaits writable()",
        request,
    )
    .await?;
    within(
        HANG,
        "flush() while another task awaits writable()",
        queue.flush(),
    )
    .await?;
    within(HANG, "writable() while a WriteQueue drains", writable).await??;
    drop(queue);
    client.shutdown(std::net::Shutdown::Write)?;
    let got = within(HANG, "the reader", reader).await??;
    assert!(got == data, "the receiver got other bytes than were queued");
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn timeout_around_readable_dropped_does_not_strand_another_waiter() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let server = Rc::new(server);
    let waiter = spawn({
        let server = server.clone();
        async move { server.readable().await }
    });
    yield_now().await;
    // Registers on the same direction, then is dropped when it expires.
    for _ in 0..3 {
        let expired = timeout(Duration::from_millis(1), server.readable()).await;
        assert!(
            expired.is_err(),
            "nothing was sent, readable() must not resolve"
        );
    }
    client.write_all(b"x").await?;
    within(HANG, "the first waiter after another gave up", waiter).await??;
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn a_foreign_waker_and_a_task_waiting_on_one_direction_both_wake() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let server = Rc::new(server);
    let task = spawn({
        let server = server.clone();
        async move { server.readable().await }
    });
    // A FuturesUnordered polls its futures with wakers of its own.
    let mut set: FuturesUnordered<_> = (0..3).map(|_| server.readable()).collect();
    assert!(futures::poll!(set.next()).is_pending());
    client.write_all(b"x").await?;
    for _ in 0..3 {
        within(HANG, "a readable() inside FuturesUnordered", set.next())
            .await
            .expect("three futures")?;
    }
    within(HANG, "the task beside them", task).await??;
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn read_vectored_over_iov_max_slices_leaves_the_rest_readable() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let data = pattern(3, 3000);
    client.write_all(&data).await?;
    // Let all of it arrive, then read into more one-byte slices than one
    // readv takes (IOV_MAX, 1024 on Linux).
    sleep(Duration::from_millis(20)).await;
    let mut bytes = vec![0u8; 2000];
    let mut slices: Vec<IoSliceMut<'_>> = bytes.chunks_mut(1).map(IoSliceMut::new).collect();
    let n = server.read_vectored(&mut slices).await?;
    assert!(n > 0 && n <= 2000);
    let mut got = bytes[..n].to_vec();
    // The rest is still queued: the next read must not wait for an edge.
    while got.len() < data.len() {
        let mut buf = [0; 4096];
        let more = within(
            HANG,
            "a read after a capped read_vectored",
            server.read(&mut buf),
        )
        .await?;
        assert!(more > 0, "early end of stream");
        got.extend_from_slice(&buf[..more]);
    }
    assert!(got == data);
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn write_vectored_over_iov_max_slices_sends_a_prefix() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let data = pattern(4, 3000);
    let slices: Vec<IoSlice<'_>> = data.chunks(1).map(IoSlice::new).collect();
    let mut sent = 0;
    while sent < data.len() {
        let n = client.write_vectored(&slices[sent..]).await?;
        assert!(n > 0, "a vectored send of many slices must send, not fail");
        sent += n;
    }
    drop(client);
    let got = within(HANG, "the receiver", read_to_end(&server)).await?;
    assert!(got == data);
    Ok(())
}

#[test]
fn a_socket_polled_on_another_runtime_fails_instead_of_hanging() {
    let first = Runtime::new().unwrap();
    let (client, server) = first.block_on(connected_pair()).unwrap();
    let second = Runtime::new().unwrap();
    let error = second
        .block_on(async {
            let mut buf = [0; 8];
            timeout(HANG, server.read(&mut buf))
                .await
                .expect("must fail at once, not wait for the other runtime")
        })
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(
        error.to_string().contains("another xev runtime"),
        "unclear message: {error}"
    );
    // On its own runtime, the socket works as before.
    first
        .block_on(async {
            client.write_all(b"ok").await?;
            let mut buf = [0; 2];
            server.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"ok");
            io::Result::Ok(())
        })
        .unwrap();
}

#[test]
fn a_socket_polled_outside_any_runtime_fails_instead_of_hanging() {
    let rt = Runtime::new().unwrap();
    let (_client, server) = rt.block_on(connected_pair()).unwrap();
    let mut buf = [0; 8];
    let error = futures::executor::block_on(server.read(&mut buf)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
}

/// Resident memory, in KiB.
#[cfg(target_os = "linux")]
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Memory is measured in a child process of its own: tests running on
/// other threads of this one would move its RSS.
#[cfg(target_os = "linux")]
#[test]
fn a_million_readable_futures_polled_once_and_dropped_keep_memory_flat() {
    const NAME: &str = "a_million_readable_futures_polled_once_and_dropped_keep_memory_flat";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    xev::rt::block_on(million_readable_futures()).unwrap();
}

#[cfg(target_os = "linux")]
async fn million_readable_futures() -> io::Result<()> {
    let (_client, server) = connected_pair().await?;
    // Each one is polled from a fresh task-like context (a waker of its
    // own), so no deduplication by waker can hide an entry left behind.
    let round = |count: usize| {
        for _ in 0..count {
            let waker = futures::task::waker(std::sync::Arc::new(Noop));
            let mut cx = std::task::Context::from_waker(&waker);
            let mut future = std::pin::pin!(server.readable());
            assert!(future.as_mut().poll(&mut cx).is_pending());
        }
    };
    round(10_000);
    let before = rss_kib();
    round(1_000_000);
    let grown = rss_kib().saturating_sub(before);
    // An entry left behind per future would be tens of MiB.
    assert!(grown < 4096, "memory grew by {grown} KiB");
    Ok(())
}

struct Noop;

impl futures::task::ArcWake for Noop {
    fn wake_by_ref(_: &std::sync::Arc<Self>) {}
}

#[cfg(target_os = "linux")]
#[test]
fn thousands_of_expired_timeouts_around_readable_keep_memory_flat() {
    const NAME: &str = "thousands_of_expired_timeouts_around_readable_keep_memory_flat";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    xev::rt::block_on(expired_timeouts()).unwrap();
}

#[cfg(target_os = "linux")]
async fn expired_timeouts() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let tasks_before = xev::rt::metrics();
    let expired = Rc::new(Cell::new(0));
    let round = |count: usize| {
        let server = &server;
        let expired = expired.clone();
        async move {
            let mut set: FuturesUnordered<_> = (0..count)
                .map(|_| timeout(Duration::from_millis(1), server.readable()))
                .collect();
            while let Some(result) = set.next().await {
                assert!(result.is_err());
                expired.set(expired.get() + 1);
            }
        }
    };
    round(2000).await;
    let before = rss_kib();
    for _ in 0..5 {
        round(2000).await;
    }
    let grown = rss_kib().saturating_sub(before);
    assert_eq!(expired.get(), 12_000);
    assert!(grown < 2048, "memory grew by {grown} KiB");
    assert_eq!(xev::rt::metrics().timers, tasks_before.timers);
    // The socket still wakes a waiter afterwards.
    client.write_all(b"x").await?;
    within(HANG, "readable() after the expired ones", server.readable()).await?;
    Ok(())
}
