//! `xev::io::WriteQueue` on real sockets (DESIGN §2, issue 4): libxev's
//! second TCP test, scale under a small send buffer and a slow reader, many
//! writers, progress nobody awaits, every buffer type, flush and the
//! backpressure counters, errors, `abort`, dropping the queue with its
//! stream, a runtime dropped under a queue, SIGPIPE, and the `broadcast`
//! example.
//!
//! Linux loopback with a small `SO_SNDBUF` moves only about 2 MB/s (the MTU
//! is 64 KiB, so each send waits for an acknowledgement), which is why the
//! tests that shrink the send buffer stay at a few MiB.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use futures::future::{self, FutureExt};
use xev::io::{WriteQueue, WriteRequest};
use xev::net::{TcpListener, TcpSocket, TcpStream};
use xev::rt::{spawn, yield_now};
use xev::time::{sleep, timeout};

#[path = "../examples/broadcast.rs"]
#[allow(dead_code)] // the example's `main` and argument parsing
mod broadcast;

mod common;

use common::Rng;

/// libxev's test data: `1, 2, ..., 9, 0` repeated.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i + 1) % 10) as u8).collect()
}

/// A connected pair on loopback: (client, server side).
async fn pair() -> io::Result<(Rc<TcpStream>, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let (accepted, connected) = future::join(
        listener.accept(),
        TcpStream::connect(listener.local_addr()?),
    )
    .await;
    Ok((Rc::new(connected?), accepted?.0))
}

/// Reads exactly `len` bytes.
async fn read_len(stream: &TcpStream, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads until end of stream.
async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// `assert_eq!` for large buffers: names the first differing byte instead
/// of printing megabytes.
fn assert_same_bytes(got: &[u8], expected: &[u8]) {
    if let Some(at) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "byte {at} differs: got {}, expected {}",
            got[at], expected[at]
        );
    }
    assert_eq!(got.len(), expected.len(), "lengths differ");
}

/// Awaits every request, in order.
async fn results(requests: Vec<WriteRequest>) -> Vec<io::Result<usize>> {
    future::join_all(requests).await
}

/// Gives the runtime turns until `ready` holds, failing after many.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if ready() {
            return;
        }
        sleep(Duration::from_millis(1)).await;
    }
    panic!("still waiting for {what}");
}

/// Waits until the queue stops draining (the peer's buffers are full): its
/// backlog unchanged for 100 ms.
async fn until_stalled(queue: &WriteQueue) {
    let mut last = queue.queued_bytes();
    for _ in 0..100 {
        sleep(Duration::from_millis(100)).await;
        let now = queue.queued_bytes();
        if now == last && now > 0 {
            return;
        }
        last = now;
    }
    panic!(
        "the queue still drains: {} bytes queued",
        queue.queued_bytes()
    );
}

/// Whether `future` is still pending after `wait`.
async fn still_pending_after<F: Future>(wait: Duration, future: F) -> bool {
    timeout(wait, future).await.is_err()
}

/// libxev's second TCP test (`test "tcp: queued writes"`), ported: a plain
/// write of 1,000,000 bytes into an 8 KiB send buffer comes back short, the
/// rest goes through the queue, and the receiver gets every byte in order.
#[xev::test(timeout_ms = 20000)]
async fn libxev_queued_writes() -> io::Result<()> {
    let address: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = TcpSocket::for_addr(&address)?;
    server.bind(address)?;
    let listener = server.listen(1)?;
    let address = listener.local_addr()?;
    let client = TcpSocket::for_addr(&address)?;
    let (accepted, connected) = future::join(listener.accept(), client.connect(address)).await;
    let (connection, _) = accepted?;
    let client = Rc::new(connected?);

    client.set_send_buffer_size(8192)?;
    let send_buf = pattern(1_000_000);
    let sent = client.write(&send_buf).await?;
    assert!(
        sent > 0 && sent < 100_000,
        "a plain write into an 8 KiB send buffer is short, got {sent}"
    );

    let queue = WriteQueue::with_send_buffer_size(client.clone(), 8192)?;
    let request = queue.push(send_buf[sent..].to_vec());

    let mut recv_buf = vec![0; send_buf.len()];
    let mut received = 0;
    while received < recv_buf.len() {
        let n = connection.read(&mut recv_buf[received..]).await?;
        assert_ne!(n, 0, "end of stream after {received} bytes");
        received += n;
    }
    let queued = request.await?;
    assert_eq!(sent + queued, send_buf.len(), "the counts add up");
    assert_same_bytes(&recv_buf, &send_buf);
    assert!(queue.is_empty());

    client.shutdown(Shutdown::Both)?;
    assert_eq!(connection.read(&mut recv_buf).await?, 0, "end of stream");
    // Once dropped and empty, the queue lets go of the stream.
    drop(queue);
    until("the queue to release the stream", || {
        Rc::strong_count(&client) == 1
    })
    .await;
    Rc::into_inner(client).unwrap().close().await?;
    connection.close().await?;
    drop(listener);
    Ok(())
}

/// 8 MiB in pushes of random size (0 to 64 KiB) through an 8 KiB send
/// buffer, to a reader that takes small bites and naps: every byte arrives,
/// in order, and the requests account for all of them.
#[xev::test(timeout_ms = 40000)]
async fn eight_mib_of_random_pushes_reach_a_slow_reader_byte_exact() -> io::Result<()> {
    const TOTAL: usize = 8 << 20;
    let (client, server) = pair().await?;
    let queue = WriteQueue::with_send_buffer_size(client.clone(), 8192)?;

    let reader = spawn(async move {
        let mut rng = Rng::new(7);
        let mut got = Vec::with_capacity(TOTAL);
        let mut buf = vec![0; 4096];
        loop {
            let want = 1 + rng.below(buf.len());
            let n = server.read(&mut buf[..want]).await?;
            if n == 0 {
                return io::Result::Ok(got);
            }
            got.extend_from_slice(&buf[..n]);
            if rng.below(64) == 0 {
                sleep(Duration::from_millis(1 + rng.below(3) as u64)).await;
            }
        }
    });

    let mut rng = Rng::new(8);
    let expected = rng.bytes(TOTAL);
    let mut requests = Vec::new();
    let mut pushed = 0;
    while pushed < TOTAL {
        let len = rng.below(64 * 1024 + 1).min(TOTAL - pushed);
        requests.push(queue.push(expected[pushed..pushed + len].to_vec()));
        pushed += len;
        if rng.below(8) == 0 {
            yield_now().await;
        }
    }
    let lens: Vec<usize> = requests.iter().map(WriteRequest::len).collect();
    let written: Vec<usize> = results(requests)
        .await
        .into_iter()
        .collect::<io::Result<_>>()?;
    assert_eq!(written, lens, "each request reports its whole buffer");
    assert_eq!(written.iter().sum::<usize>(), TOTAL);
    queue.flush().await?;
    assert_eq!(queue.queued_bytes(), 0);

    client.shutdown(Shutdown::Write)?;
    let got = reader.await.unwrap()?;
    assert_same_bytes(&got, &expected);
    Ok(())
}

/// 20 tasks push tagged records into one queue: on the wire each record is
/// whole (never interleaved with another) and each task's records are in
/// the order it pushed them.
#[xev::test(timeout_ms = 30000)]
async fn records_from_twenty_tasks_stay_whole_and_in_each_tasks_order() -> io::Result<()> {
    const TASKS: u8 = 20;
    const RECORDS: u16 = 60;
    /// Payload byte `i` of record `seq` of task `task`.
    fn payload_byte(task: u8, seq: u16, i: usize) -> u8 {
        (task as usize * 31 + seq as usize * 7 + i) as u8
    }

    let (client, server) = pair().await?;
    let queue = Rc::new(WriteQueue::with_send_buffer_size(client.clone(), 8192)?);
    let mut writers = Vec::new();
    for task in 0..TASKS {
        let queue = queue.clone();
        writers.push(spawn(async move {
            let mut rng = Rng::new(100 + task as u64);
            for seq in 0..RECORDS {
                // Mostly small records, some larger than the send buffer.
                let len = match rng.below(10) {
                    0 => rng.below(20_000),
                    _ => rng.below(1500),
                };
                // [task, seq (LE), len (LE), payload]
                let mut record = vec![task];
                record.extend_from_slice(&seq.to_le_bytes());
                record.extend_from_slice(&(len as u16).to_le_bytes());
                record.extend((0..len).map(|i| payload_byte(task, seq, i)));
                let request = queue.push(record);
                match rng.below(4) {
                    0 => assert_eq!(request.await?, 5 + len),
                    1 => yield_now().await,
                    2 => sleep(Duration::from_millis(1)).await,
                    _ => {}
                }
            }
            io::Result::Ok(())
        }));
    }

    let mut next_seq = [0u16; TASKS as usize];
    let mut header = [0u8; 5];
    for record in 0..TASKS as usize * RECORDS as usize {
        server.read_exact(&mut header).await?;
        let task = header[0];
        let seq = u16::from_le_bytes([header[1], header[2]]);
        let len = u16::from_le_bytes([header[3], header[4]]) as usize;
        assert!(
            task < TASKS,
            "record {record}: a header where task {task} is"
        );
        assert_eq!(
            seq, next_seq[task as usize],
            "record {record}: task {task} out of order"
        );
        next_seq[task as usize] += 1;
        let payload = read_len(&server, len).await?;
        let expected: Vec<u8> = (0..len).map(|i| payload_byte(task, seq, i)).collect();
        assert!(
            payload == expected,
            "record {record} (task {task}, seq {seq}) is not whole"
        );
    }
    for writer in writers {
        writer.await.unwrap()?;
    }
    assert_eq!(next_seq, [RECORDS; TASKS as usize]);
    queue.flush().await?;
    client.shutdown(Shutdown::Write)?;
    assert!(
        read_to_end(&server).await?.is_empty(),
        "nothing after the last record"
    );
    Ok(())
}

/// `push` alone writes: the request is dropped at once, unawaited.
#[xev::test(timeout_ms = 5000)]
async fn a_push_nobody_awaits_is_still_written() -> io::Result<()> {
    let (client, server) = pair().await?;
    let queue = WriteQueue::new(client);
    drop(queue.push(b"fire and ".to_vec()));
    drop(queue.push("forget"));
    assert_eq!(read_len(&server, 15).await?, b"fire and forget");
    Ok(())
}

/// Dropping the queue finishes what was pushed; with an `OwnedWriteHalf`
/// the peer then reads end of stream, right after the last byte.
#[xev::test(timeout_ms = 10000)]
async fn dropping_the_queue_finishes_queued_writes() -> io::Result<()> {
    let data = pattern(1 << 20);

    let (client, server) = pair().await?;
    let queue = WriteQueue::new(client.clone());
    drop(queue.push(data.clone()));
    drop(queue);
    assert_same_bytes(&read_len(&server, data.len()).await?, &data);

    let (client, server) = pair().await?;
    let (_read_half, write_half) = Rc::into_inner(client).unwrap().into_split();
    let queue = WriteQueue::new(write_half);
    drop(queue.push(data.clone()));
    drop(queue);
    assert_same_bytes(&read_to_end(&server).await?, &data);
    Ok(())
}

/// Dropping the queue and the only handle to the stream, with 1 MiB still
/// queued and a peer that starts reading later: every byte arrives, then
/// end of stream (the drain task held the stream until it was written).
#[xev::test(timeout_ms = 10000)]
async fn write_queue_dropped_with_the_stream_finishes_writing() -> io::Result<()> {
    let data = pattern(1 << 20);
    let (client, server) = pair().await?;
    let queue = WriteQueue::new(client); // the queue holds the only `Rc`
    drop(queue.push(data.clone()));
    assert_eq!(queue.queued_bytes(), data.len(), "nothing written yet");
    drop(queue);
    sleep(Duration::from_millis(20)).await; // the peer reads late
    assert_same_bytes(&read_to_end(&server).await?, &data);
    Ok(())
}

/// Checks an error is the one `WriteQueue::abort` gives.
fn assert_aborted<T: std::fmt::Debug>(outcome: io::Result<T>, what: &str) {
    let error = outcome.expect_err(what);
    assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted, "{what}");
    assert!(error.to_string().contains("aborted"), "{what}: {error}");
}

/// `abort` with a backlog the peer does not read: requests and a flush
/// awaited by other tasks fail with `ConnectionAborted`, the requests
/// already written keep their `Ok`, and the queued buffers are dropped at
/// once (before any task runs).
#[xev::test(timeout_ms = 10000)]
async fn write_queue_abort_fails_pending_requests_and_flush() -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let (client, _server) = pair().await?; // never reads
    let queue = Rc::new(WriteQueue::with_send_buffer_size(client, 8192)?);
    assert_eq!(queue.push(b"first".to_vec()).await?, 5);
    let chunk: Rc<[u8]> = pattern(CHUNK).into();
    let requests: Vec<WriteRequest> = (0..32).map(|_| queue.push(chunk.clone())).collect();
    let waiting = spawn(results(requests));
    let flushing = spawn({
        let queue = queue.clone();
        async move { queue.flush().await }
    });
    until_stalled(&queue).await;
    assert!(!waiting.is_finished() && !flushing.is_finished());

    queue.abort();
    if xev::rt::Handle::current().backend() == xev::rt::Backend::IoUring {
        // The buffers lent to the ring's send in flight come back with its
        // cancellation's completion, at the loop's next turn (the kernel
        // may read them until then); the others are dropped at once.
        timeout(Duration::from_secs(2), async {
            while Rc::strong_count(&chunk) > 1 {
                sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the buffers lent to the ring come back within 2 s");
    }
    assert_eq!(
        Rc::strong_count(&chunk),
        1,
        "the queued buffers are dropped at once"
    );
    assert_eq!((queue.queued_bytes(), queue.len()), (0, 0));
    let outcomes = waiting.await.unwrap();
    let written = outcomes
        .iter()
        .take_while(|outcome| outcome.is_ok())
        .count();
    assert!(written < outcomes.len(), "some requests were still pending");
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(n) => assert!(index < written && n == CHUNK),
            Err(_) => assert_aborted(outcome, &format!("request {index}")),
        }
    }
    assert_aborted(flushing.await.unwrap(), "the pending flush");
    Ok(())
}

/// After `abort`, `push` and `flush` fail at once with the same error, and
/// the pushed buffer is not kept.
#[xev::test(timeout_ms = 5000)]
async fn write_queue_push_after_abort_fails() -> io::Result<()> {
    let (client, _server) = pair().await?;
    let queue = WriteQueue::new(client);
    queue.abort();
    let shared: Rc<[u8]> = Rc::from(&b"late"[..]);
    let late = queue.push(shared.clone());
    assert_eq!(Rc::strong_count(&shared), 1, "the buffer is not queued");
    assert_eq!((queue.queued_bytes(), queue.len()), (0, 0));
    let outcome = late
        .now_or_never()
        .expect("a push after abort fails at once");
    assert_aborted(outcome, "a push after abort");
    let flushed = queue.flush().now_or_never().expect("flush fails at once");
    assert_aborted(flushed, "a flush after abort");
    queue.abort(); // a second abort changes nothing
    assert_aborted(queue.push("again").await, "a push after two aborts");
    Ok(())
}

/// Aborting a queue whose peer never reads, then dropping it and the only
/// handle to the stream, closes the socket: the process's fd count goes
/// back to where it was with only the peer's socket open, and the peer,
/// reading at last, gets a prefix of the data and then end of stream. (Run
/// in a child process: other tests' sockets would move the count.)
#[cfg(target_os = "linux")]
#[test]
fn write_queue_abort_releases_the_socket() {
    use common::child::{self, fd_summary, is_child, open_fds};

    const NAME: &str = "write_queue_abort_releases_the_socket";
    if !is_child(NAME) {
        return child::run(NAME);
    }
    let outcome = xev::rt::block_on(timeout(Duration::from_secs(20), async {
        let data = pattern(4 << 20);
        let before = open_fds();
        let (client, server) = pair().await?;
        assert_eq!(open_fds(), before + 2, "{}", fd_summary());
        let queue = WriteQueue::with_send_buffer_size(client, 8192)?;
        drop(queue.push(data.clone()));
        until_stalled(&queue).await;

        queue.abort();
        drop(queue);
        until("the aborted queue's socket to close", || {
            open_fds() == before + 1
        })
        .await;
        let got = read_to_end(&server).await?;
        assert!(
            got.len() < data.len(),
            "everything arrived: nothing was aborted"
        );
        assert_same_bytes(&got, &data[..got.len()]);
        drop(server);
        assert_eq!(open_fds(), before, "{}", fd_summary());
        io::Result::Ok(())
    }));
    outcome.expect("finishes in time").unwrap();
}

/// A runtime dropped while its queue's drain task waits on a peer that does
/// not read: the pending requests and flush, and later pushes, resolve at
/// once with an error saying the runtime has been shut down, wherever they
/// are polled afterwards (no runtime at all, or another runtime).
#[test]
fn write_request_after_runtime_dropped_fails() {
    fn assert_runtime_gone<T: std::fmt::Debug>(outcome: Option<io::Result<T>>, what: &str) {
        let error = outcome
            .unwrap_or_else(|| panic!("{what}: still pending"))
            .expect_err(what);
        assert_eq!(error.kind(), io::ErrorKind::Other, "{what}");
        assert!(
            error.to_string().contains("runtime") && error.to_string().contains("shut down"),
            "{what}: {error}"
        );
    }

    let runtime = xev::rt::Runtime::new().unwrap();
    let (queue, requests, _server) = runtime.block_on(async {
        let (client, server) = pair().await.unwrap();
        let queue = WriteQueue::with_send_buffer_size(client, 8192).unwrap();
        let requests = [queue.push(pattern(2 << 20)), queue.push(pattern(1024))];
        until_stalled(&queue).await;
        (queue, requests, server)
    });
    let mut flushed = Box::pin(queue.flush());
    assert!(flushed.as_mut().now_or_never().is_none(), "flush waits");
    drop(runtime);

    let [first, second] = requests;
    assert_runtime_gone(first.now_or_never(), "a request polled with no runtime");
    assert_runtime_gone(flushed.now_or_never(), "the flush that was waiting");
    assert_runtime_gone(
        queue.push("late").now_or_never(),
        "a push after the runtime is gone",
    );
    assert_eq!((queue.queued_bytes(), queue.len()), (0, 0));
    let on_another_runtime = xev::rt::block_on(timeout(Duration::from_secs(5), second));
    assert_runtime_gone(
        on_another_runtime.ok(),
        "a request awaited on another runtime",
    );
}

/// Every buffer type is accepted and written in push order; one `Rc<[u8]>`
/// goes to three queues without copies and is released once written.
#[xev::test(timeout_ms = 10000)]
async fn every_buffer_type_is_written_and_one_rc_fans_out_to_three_queues() -> io::Result<()> {
    let (client, server) = pair().await?;
    let queue = WriteQueue::new(client);
    let static_bytes: &'static [u8] = b"static bytes|";
    let shared: Rc<[u8]> = Rc::from(&b"rc|"[..]);
    let requests = vec![
        queue.push(b"vec|".to_vec()),
        queue.push(b"boxed|".to_vec().into_boxed_slice()),
        queue.push(static_bytes),
        queue.push(b"array|"),
        queue.push("str|"),
        queue.push(String::from("string|")),
        queue.push(Vec::new()),
        queue.push(shared),
    ];
    let expected = b"vec|boxed|static bytes|array|str|string|rc|";
    let lens: Vec<usize> = results(requests)
        .await
        .into_iter()
        .collect::<io::Result<_>>()?;
    assert_eq!(lens, [4, 6, 13, 6, 4, 7, 0, 3]);
    assert_eq!(read_len(&server, expected.len()).await?, expected);

    let shared: Rc<[u8]> = pattern(256 * 1024).into();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let (client, server) = pair().await?;
        let queue = WriteQueue::new(client);
        drop(queue.push(shared.clone()));
        peers.push((queue, server));
    }
    for (queue, server) in &peers {
        assert_same_bytes(&read_len(server, shared.len()).await?, &shared);
        queue.flush().await?;
    }
    assert_eq!(Rc::strong_count(&shared), 1, "written buffers are released");
    Ok(())
}

/// 10,000 pushes of 16 bytes each arrive in order (the bench shows they go
/// out in a few large vectored sends).
#[xev::test(timeout_ms = 10000)]
async fn ten_thousand_small_pushes_arrive_in_order() -> io::Result<()> {
    let (client, server) = pair().await?;
    let queue = WriteQueue::new(client);
    let mut expected = Vec::new();
    for i in 0..10_000u64 {
        let message = [i.to_le_bytes(), (!i).to_le_bytes()].concat();
        expected.extend_from_slice(&message);
        drop(queue.push(message));
    }
    assert_eq!(queue.len(), 10_000);
    assert_eq!(queue.queued_bytes(), 160_000);
    assert_same_bytes(&read_len(&server, expected.len()).await?, &expected);
    queue.flush().await?;
    assert!(queue.is_empty());
    Ok(())
}

/// Against a peer that does not read, the counters show the backlog and
/// `flush` waits; once the peer reads, `flush` resolves with all written
/// and the counters at zero.
#[xev::test(timeout_ms = 20000)]
async fn flush_and_the_counters_follow_a_peer_that_reads_late() -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 2 << 20;
    let (client, server) = pair().await?;
    let queue = WriteQueue::with_send_buffer_size(client, 8192)?;
    let data = pattern(TOTAL);
    let requests: Vec<WriteRequest> = data.chunks(CHUNK).map(|c| queue.push(c.to_vec())).collect();
    assert_eq!(queue.queued_bytes(), TOTAL);
    assert_eq!(queue.len(), TOTAL / CHUNK);

    sleep(Duration::from_millis(50)).await;
    // The kernel holds a few hundred KiB at most; the rest waits here.
    let backlog = queue.queued_bytes();
    assert!(
        backlog > TOTAL / 2 && backlog < TOTAL,
        "queued_bytes {backlog}"
    );
    assert!(!queue.is_empty() && queue.len() > TOTAL / CHUNK / 2);
    assert!(still_pending_after(Duration::from_millis(100), queue.flush()).await);

    let reader = spawn(async move { read_len(&server, TOTAL).await });
    queue.flush().await?;
    assert_eq!((queue.queued_bytes(), queue.len()), (0, 0));
    assert!(queue.is_empty());
    for request in requests {
        assert_eq!(request.now_or_never().unwrap()?, CHUNK, "done before flush");
    }
    assert_same_bytes(&reader.await.unwrap()?, &data);
    Ok(())
}

/// `flush` waits for what was pushed before the call, not after it: a
/// backlog pushed after calling it (that the peer never reads) does not hold
/// it back.
#[xev::test(timeout_ms = 10000)]
async fn flush_does_not_wait_for_buffers_pushed_after_the_call() -> io::Result<()> {
    let (client, _server) = pair().await?;
    let queue = WriteQueue::with_send_buffer_size(client, 8192)?;
    drop(queue.push(b"before".to_vec()));
    let flushed = queue.flush();
    drop(queue.push(vec![0; 4 << 20]));
    match timeout(Duration::from_secs(2), flushed).await {
        Ok(result) => result?,
        Err(_) => panic!("flush waited for a buffer pushed after it was called"),
    }
    assert!(queue.queued_bytes() > 0, "the later buffer is still queued");
    Ok(())
}

/// The peer resets the connection mid-drain: the requests written before
/// succeed, every later one and every flush fail with one error kind, later
/// pushes fail at once, and the queue lets go of its buffers.
#[xev::test(timeout_ms = 20000)]
async fn a_reset_fails_every_pending_request_and_flush_with_one_kind() -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let (client, server) = pair().await?;
    let queue = WriteQueue::with_send_buffer_size(client, 8192)?;
    // One shared buffer: its count shows whether the queue lets go of it.
    let chunk: Rc<[u8]> = pattern(CHUNK).into();
    let requests: Vec<WriteRequest> = (0..64).map(|_| queue.push(chunk.clone())).collect();
    let flushed = queue.flush();
    let peer = async move {
        read_len(&server, 100_000).await?;
        server.set_linger(Some(Duration::ZERO))?;
        drop(server); // RST
        io::Result::Ok(())
    };
    let (outcomes, flushed, peer) = future::join3(results(requests), flushed, peer).await;
    peer?;

    let first_failed = outcomes
        .iter()
        .position(Result::is_err)
        .expect("the reset fails some request");
    assert!(
        first_failed >= 1,
        "100,000 bytes were read, so request 0 was written"
    );
    let kind = outcomes[first_failed].as_ref().unwrap_err().kind();
    assert!(
        matches!(
            kind,
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{kind:?}"
    );
    for (index, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(n) => assert!(index < first_failed && *n == CHUNK),
            Err(error) => assert_eq!(error.kind(), kind, "request {index}"),
        }
    }
    assert_eq!(flushed.unwrap_err().kind(), kind);

    assert_eq!((queue.queued_bytes(), queue.len()), (0, 0));
    assert_eq!(
        Rc::strong_count(&chunk),
        1,
        "the failed buffers are released"
    );
    let late = queue.push(b"late".to_vec());
    let late = late
        .now_or_never()
        .expect("a push after the failure fails at once");
    assert_eq!(late.unwrap_err().kind(), kind);
    let flushed = queue.flush().now_or_never().expect("flush fails at once");
    assert_eq!(flushed.unwrap_err().kind(), kind, "flush after the failure");
    assert_eq!(queue.queued_bytes(), 0);
    Ok(())
}

/// Set in the environment of the child process of the SIGPIPE test.
#[cfg(unix)]
const SIGPIPE_CHILD: &str = "XEV_WRITE_QUEUE_SIGPIPE_CHILD";

/// With `SIGPIPE` at its default action (the Rust runtime ignores it, so
/// the test runs itself again in a child that restores it), queued writes
/// to a peer that has gone fail with errors and the process lives. A
/// control child that writes with plain `write(2)` is killed, proving the
/// child's signal setup would catch a send without `MSG_NOSIGNAL`.
#[cfg(unix)]
#[test]
fn queued_writes_to_a_closed_peer_never_raise_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    if let Ok(mode) = std::env::var(SIGPIPE_CHILD) {
        return sigpipe_child(&mode);
    }
    let run = |mode: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "queued_writes_to_a_closed_peer_never_raise_sigpipe",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SIGPIPE_CHILD, mode)
            .output()
            .unwrap()
    };
    let control = run("control");
    assert_eq!(
        control.status.signal(),
        Some(libc::SIGPIPE),
        "the control child dies of SIGPIPE: {control:?}"
    );
    let child = run("queue");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("queue child survived"),
        "{child:?}"
    );
}

#[cfg(unix)]
fn sigpipe_child(mode: &str) {
    use std::os::fd::AsRawFd;

    // SAFETY: restoring the default action of a signal has no memory-safety
    // preconditions; no other thread of this process handles signals.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let outcome = xev::rt::block_on(timeout(Duration::from_secs(10), async {
        let (client, server) = pair().await?;
        server.set_linger(Some(Duration::ZERO))?;
        drop(server); // RST: the first send fails, later ones are EPIPE
        sleep(Duration::from_millis(20)).await;
        if mode == "control" {
            for _ in 0..10 {
                // SAFETY: writes from a live buffer of the length given, to
                // a descriptor `client` owns for the whole call.
                unsafe { libc::write(client.as_raw_fd(), b"x".as_ptr().cast(), 1) };
            }
            return io::Result::Ok(());
        }
        for round in 0..3 {
            let queue = WriteQueue::new(client.clone());
            let requests: Vec<_> = (0..8).map(|_| queue.push(pattern(64 * 1024))).collect();
            let failed = results(requests)
                .await
                .iter()
                .filter(|r| r.is_err())
                .count();
            assert_eq!(
                failed, 8,
                "round {round}: every request to a gone peer fails"
            );
            assert!(queue.flush().await.is_err());
        }
        Ok(())
    }));
    outcome.expect("the child finishes in time").unwrap();
    println!("{mode} child survived");
}

/// The `broadcast` example's server: lines fan out to every other client,
/// never back to the sender, and a client that stops reading is dropped
/// once its backlog passes the limit, while the others go on.
#[xev::test(timeout_ms = 30000)]
async fn broadcast_fans_lines_out_and_drops_a_client_that_does_not_read() -> io::Result<()> {
    const LIMIT: usize = 256 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = spawn(broadcast::serve(listener, LIMIT));

    // Each client joins once the ones before it hear the previous one (the
    // server registers a client before reading its lines, so once a line
    // arrives its sender is listening too).
    let a = Rc::new(TcpStream::connect(addr).await?);
    let b = Rc::new(TcpStream::connect(addr).await?);
    let mut lines = [LineReader::new(a.clone()), LineReader::new(b.clone())];
    b.write_all(b"b joined\n").await?;
    assert_eq!(lines[0].line().await?, "b joined");
    // The client that will stall: a small receive buffer, so its backlog
    // builds up in the server's queue rather than in its kernel.
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let c = socket.connect(addr).await?;
    c.write_all(b"c joined\n").await?;
    assert_eq!(lines[0].line().await?, "c joined");
    assert_eq!(lines[1].line().await?, "c joined");
    a.write_all(b"hello from a\n").await?;
    b.write_all(b"hello from b\n").await?;
    assert_eq!(
        lines[0].line().await?,
        "hello from b",
        "a does not hear itself"
    );
    assert_eq!(lines[1].line().await?, "hello from a");
    let mut c_reader = LineReader::new(Rc::new(c));
    assert_eq!(c_reader.line().await?, "hello from a");
    assert_eq!(c_reader.line().await?, "hello from b");

    // c stops reading; a sends 4 MiB in 1 KiB lines, in rounds that b
    // reads as they come, so only c falls behind.
    let line = |n: usize| format!("{n:08} {}\n", "x".repeat(1014));
    for round in 0..64 {
        let chunk: String = (round * 64..round * 64 + 64).map(line).collect();
        a.write_all(chunk.as_bytes()).await?;
        for n in round * 64..round * 64 + 64 {
            assert_eq!(
                lines[1].line().await?,
                line(n).trim_end(),
                "b gets every line"
            );
        }
    }
    b.write_all(b"still here\n").await?;
    assert_eq!(lines[0].line().await?, "still here", "a and b go on");

    // c was dropped: it reads a prefix of the lines, then end of stream.
    let mut received = 0;
    loop {
        match c_reader.line().await {
            Ok(got) => {
                assert_eq!(got, line(received).trim_end(), "c's lines are a prefix");
                received += 1;
            }
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => break,
            Err(error) => return Err(error),
        }
    }
    assert!(
        received < 4096,
        "c got all {received} lines: it was never dropped"
    );
    assert!(!server.is_finished(), "the server still runs");
    server.abort();
    Ok(())
}

/// Reads `\n`-terminated lines from a stream.
struct LineReader {
    stream: Rc<TcpStream>,
    buffered: Vec<u8>,
}

impl LineReader {
    fn new(stream: Rc<TcpStream>) -> LineReader {
        LineReader {
            stream,
            buffered: Vec::new(),
        }
    }

    /// The next line, without its `\n`; `UnexpectedEof` at end of stream.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buffered.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffered.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let mut buf = [0; 8192];
            match self.stream.read(&mut buf).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buffered.extend_from_slice(&buf[..n]),
            }
        }
    }
}
