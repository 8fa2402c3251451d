//! Reliability (issue 6): how xev behaves when things go wrong — peers that
//! reset, close, half-close or never read; futures dropped at any point;
//! thousands of sockets opened, refused, cancelled and dropped; re-entrant
//! drops and wakes; ten thousand connections at once.
//!
//! The time-sensitive guarantees (RST within 100 ms, fairness) live in
//! `tests/reliability_timing.rs`, which runs its tests one at a time.
//! `docs/RELIABILITY.md` maps every guarantee to the test that proves it.
//!
//! Every test is bounded: async tests by `#[xev::test(timeout_ms = ...)]`,
//! child processes by a deadline in [`child::finish`]. Tests that count or
//! predict fd numbers, or that may abort the process, run in a copy of this
//! binary (the pattern of `tests/tcp.rs`): the test re-executes the binary
//! with `--exact` and an environment variable telling the copy to run the
//! body, so other tests' sockets on parallel threads cannot disturb it.
//!
//! Linux only: the suite reads `/proc`, sets `RLIMIT_NOFILE` and counts fds.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::future;
use futures::io::AsyncRead;
use futures::StreamExt;
use xev::io::{WriteQueue, WriteRequest};
use xev::net::{TcpListener, TcpSocket, TcpStream};
use xev::rt::{spawn, yield_now, JoinHandle, Runtime};
use xev::time::{sleep, timeout};

mod common;

use common::child::{self, fd_summary, is_child, open_fds};
use common::{assert_kind, connected_pair, pattern, read_to_end, within, Fnv, Rng};

// ---------------------------------------------------------------------------
// Helpers

/// Counts the heap bytes live on each thread, so a test can tell how much its
/// runtime (which runs on the test's thread) allocated, undisturbed by the
/// tests on other threads.
struct CountingAllocator;

thread_local! {
    static LIVE_HEAP_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count_heap(delta: isize) {
    // `try_with`: allocations during thread teardown are simply not counted.
    let _ = LIVE_HEAP_BYTES.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping only touches a const-initialised thread-local `Cell`, which
// never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            count_heap(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            count_heap(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count_heap(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            count_heap(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Heap bytes allocated and not yet freed by this thread.
fn live_heap_bytes() -> isize {
    LIVE_HEAP_BYTES.with(Cell::get)
}

/// CPU time of the calling thread: the runtime's, since it is single-threaded.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec`, which `ts` is.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

enum Either<L, R> {
    Left(L),
    Right(R),
}

/// Polls `left`, then `right`, until one is ready, and drops the other where
/// it stands: the `select!` of these tests.
async fn race<L: Future, R: Future>(left: L, right: R) -> Either<L::Output, R::Output> {
    let mut left = pin!(left);
    let mut right = pin!(right);
    poll_fn(|cx| {
        if let Poll::Ready(output) = left.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(output));
        }
        if let Poll::Ready(output) = right.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(output));
        }
        Poll::Pending
    })
    .await
}

/// Completes at a random point: at once (so the future raced against it is
/// polled exactly once, then dropped), after a yield, or after a short sleep.
async fn interruption(choice: u64) {
    match choice % 5 {
        0 => {}
        1 => yield_now().await,
        2 => sleep(Duration::from_micros(200)).await,
        3 => sleep(Duration::from_millis(1)).await,
        _ => sleep(Duration::from_millis(2)).await,
    }
}

/// Gives the runtime turns until `done` holds, failing after `limit`.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    within(limit, what, async {
        while !done() {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// The runtime's counts, taken after a yield: the test's own timeout arms
/// its timer at the body's first await, and a baseline taken before that
/// would count one timer short.
async fn baseline_metrics() -> xev::rt::RuntimeMetrics {
    yield_now().await;
    xev::rt::metrics()
}

/// A loopback address nobody listens on (it was listened on a moment ago).
fn refused_addr() -> io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Polls a read on `stream` once with `cx`: registers `cx`'s waker as the
/// stream's reader without keeping a future (or a borrow) alive.
fn poll_read_once(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let mut buf = [0; 64];
    Pin::new(&mut &*stream).poll_read(cx, &mut buf)
}

/// The waker of the task that calls it.
async fn current_waker() -> Waker {
    poll_fn(|cx| Poll::Ready(cx.waker().clone())).await
}

/// Echoes everything each connection sends until it ends; `live` counts the
/// connections being served.
async fn echo_server(listener: TcpListener, live: Rc<Cell<usize>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let live = live.clone();
        live.set(live.get() + 1);
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
            live.set(live.get() - 1);
        }));
    }
}

// ---------------------------------------------------------------------------
// 2. Peer faults

/// The peer closes its socket, with bytes unread, while a `WriteQueue` is
/// draining a backlog that several tasks await: the requests written before
/// succeed, every other one fails with one error kind, `queued_bytes` drops
/// to zero, every buffer is released at once (the queue keeps no copy), and
/// the queue's drain task and the socket leave the runtime.
#[xev::test(timeout_ms = 20000)]
async fn peer_close_during_a_queue_drain_fails_every_pending_request_and_frees_its_buffers(
) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    const REQUESTS: usize = 48;
    for linger_zero in [false, true] {
        let before = baseline_metrics().await;
        let (client, server) = connected_pair().await?;
        let queue = Rc::new(WriteQueue::with_send_buffer_size(Rc::new(client), 8192)?);
        let buffers: Vec<Rc<[u8]>> = (0..REQUESTS)
            .map(|i| Rc::from(pattern(i as u64, CHUNK)))
            .collect();
        let requests: Vec<WriteRequest> = buffers.iter().map(|b| queue.push(b.clone())).collect();
        assert_eq!(queue.queued_bytes(), REQUESTS * CHUNK);

        // Three tasks await a third of the requests each; one awaits a flush.
        let mut requests = requests.into_iter();
        let waiters: Vec<JoinHandle<Vec<io::Result<usize>>>> = (0..3)
            .map(|_| {
                let mine: Vec<WriteRequest> = requests.by_ref().take(REQUESTS / 3).collect();
                spawn(future::join_all(mine))
            })
            .collect();
        let flusher = spawn({
            let queue = queue.clone();
            async move { queue.flush().await }
        });

        // The peer reads a little, then closes with the rest unread: the
        // kernel answers with a reset (or, with linger zero, sends one).
        let mut head = vec![0; 100_000];
        server.read_exact(&mut head).await?;
        assert!(head[..CHUNK] == buffers[0][..] && head[CHUNK..] == buffers[1][..100_000 - CHUNK]);
        if linger_zero {
            server.set_linger(Some(Duration::ZERO))?;
        }
        drop(server);

        let mut outcomes = Vec::new();
        for waiter in waiters {
            let results = within(Duration::from_secs(5), "the request waiters", waiter)
                .await
                .expect("waiter task");
            outcomes.extend(results);
        }
        let flushed = within(Duration::from_secs(5), "the flush", flusher)
            .await
            .expect("flush task");

        let first_failed = outcomes
            .iter()
            .position(Result::is_err)
            .expect("closing the peer fails some request");
        assert!(
            first_failed >= 1,
            "100,000 bytes were read: request 0 was written"
        );
        let kind = outcomes[first_failed].as_ref().unwrap_err().kind();
        assert!(
            matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{kind:?}"
        );
        for (index, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Ok(n) => assert!(index < first_failed && *n == CHUNK, "request {index}"),
                Err(error) => assert_eq!(error.kind(), kind, "request {index}"),
            }
        }
        assert_eq!(flushed.unwrap_err().kind(), kind, "the flush fails too");
        assert_eq!((queue.queued_bytes(), queue.len()), (0, 0));
        for (index, buffer) in buffers.iter().enumerate() {
            assert_eq!(
                Rc::strong_count(buffer),
                1,
                "linger_zero={linger_zero}: buffer {index} is still held by the failed queue"
            );
        }

        drop(queue);
        until(Duration::from_secs(2), "the drain task to end", || {
            xev::rt::metrics() == before
        })
        .await;
    }
    Ok(())
}

/// A peer that half-closes (sends FIN) still receives everything: our reads
/// say end of stream (again and again, at once), while a `WriteQueue` and a
/// plain `write_all` keep sending 2 MiB to it. And the other way round: after
/// we half-close, the peer's 2 MiB still reach us.
#[xev::test(timeout_ms = 20000)]
async fn half_closed_peers_still_receive_and_send_everything() -> io::Result<()> {
    const BYTES: usize = 2 << 20;
    let (ours, theirs) = connected_pair().await?;
    let ours = Rc::new(ours);
    theirs.write_all(b"request").await?;
    theirs.shutdown(Shutdown::Write)?;

    assert_eq!(read_to_end(&ours).await?, b"request");
    let mut buf = [0; 64];
    for _ in 0..3 {
        let n = within(
            Duration::from_secs(1),
            "a read after EOF",
            ours.read(&mut buf),
        )
        .await?;
        assert_eq!(n, 0, "end of stream stays");
    }

    // Our response: half through a queue, then half with write_all.
    let response = pattern(21, BYTES);
    let queue = WriteQueue::new(ours.clone());
    let requests: Vec<_> = response[..BYTES / 2]
        .chunks(100_000)
        .map(|chunk| queue.push(chunk.to_vec()))
        .collect();
    let writer = spawn({
        let ours = ours.clone();
        let tail = response[BYTES / 2..].to_vec();
        async move {
            for request in requests {
                request.await?;
            }
            ours.write_all(&tail).await?;
            ours.shutdown(Shutdown::Write)
        }
    });
    let received = read_to_end(&theirs).await?;
    writer.await.expect("writer task")?;
    assert_eq!(received.len(), BYTES);
    assert!(
        Fnv::of(&received) == Fnv::of(&response),
        "response bytes differ"
    );

    // The other way round: we have half-closed; the peer still sends.
    let (ours, theirs) = connected_pair().await?;
    ours.shutdown(Shutdown::Write)?;
    assert_eq!(theirs.read(&mut buf).await?, 0);
    let upload = pattern(22, BYTES);
    let sender = spawn(async move {
        theirs.write_all(&pattern(22, BYTES)).await?;
        theirs.shutdown(Shutdown::Write)
    });
    let received = read_to_end(&ours).await?;
    sender.await.expect("sender task")?;
    assert_eq!(received.len(), BYTES);
    assert!(
        Fnv::of(&received) == Fnv::of(&upload),
        "upload bytes differ"
    );
    Ok(())
}

/// Against a peer that never reads, a `write_all` stays pending and a
/// `WriteQueue` keeps its backlog, while the runtime's thread sleeps (under
/// 10% of a core) and allocates nothing beyond what the user queued. When
/// the peer starts reading, every byte arrives, in order.
#[xev::test(timeout_ms = 30000)]
async fn a_peer_that_never_reads_parks_writers_without_spinning_or_copying() -> io::Result<()> {
    const WRITE_ALL: usize = 16 << 20;
    const QUEUED: usize = 16 << 20;
    const PARK: Duration = Duration::from_millis(300);
    let (plain, plain_peer) = connected_pair().await?;
    let (queued, queued_peer) = connected_pair().await?;

    let big = Rc::new(pattern(31, WRITE_ALL));
    let buffers: Vec<Rc<[u8]>> = pattern(32, QUEUED).chunks(1 << 20).map(Rc::from).collect();
    let heap_before_writing = live_heap_bytes();

    let mut writer = spawn({
        let big = big.clone();
        async move { plain.write_all(&big).await }
    });
    let queue = WriteQueue::new(Rc::new(queued));
    let requests: Vec<WriteRequest> = buffers.iter().map(|b| queue.push(b.clone())).collect();

    // Let both fill the kernel's buffers and park.
    let mut last = usize::MAX;
    until(
        Duration::from_secs(10),
        "the queue to stop draining",
        || {
            let now = queue.queued_bytes();
            let stalled = now == last;
            last = now;
            stalled
        },
    )
    .await;
    sleep(Duration::from_millis(50)).await;

    let (cpu, heap, start) = (thread_cpu_time(), live_heap_bytes(), Instant::now());
    assert!(
        timeout(PARK, &mut writer).await.is_err(),
        "write_all of 16 MiB to a peer that never reads finished"
    );
    let (cpu, heap, wall) = (
        thread_cpu_time() - cpu,
        live_heap_bytes() - heap,
        start.elapsed(),
    );
    let backlog = queue.queued_bytes();
    assert!(
        backlog > 0 && backlog <= QUEUED,
        "queued_bytes {backlog}: the backlog is what was pushed, minus what the kernel took"
    );
    assert!(
        cpu < wall / 10,
        "parked writers used {cpu:?} of CPU in {wall:?}"
    );
    assert!(
        heap.abs() < 16 * 1024,
        "the runtime's heap changed by {heap} bytes while the writers were parked"
    );
    // All the writing, from spawning the writer on, cost a few KiB: the
    // runtime holds the 32 MiB the user handed it, not a copy.
    let overhead = live_heap_bytes() - heap_before_writing;
    assert!(
        overhead < 64 * 1024,
        "writing to a parked peer allocated {overhead} bytes beyond the user's buffers"
    );
    for buffer in &buffers {
        assert!(Rc::strong_count(buffer) <= 2, "a queued buffer was cloned");
    }

    // The peers read, and everything arrives.
    let read_all = |stream: TcpStream, len: usize| async move {
        let mut fnv = Fnv::new();
        let mut total = 0;
        let mut buf = vec![0; 256 * 1024];
        while total < len {
            let n = stream.read(&mut buf).await?;
            assert_ne!(n, 0, "end of stream after {total} bytes");
            fnv.update(&buf[..n]);
            total += n;
        }
        io::Result::Ok(fnv)
    };
    let (plain_got, queued_got) = future::join(
        read_all(plain_peer, WRITE_ALL),
        read_all(queued_peer, QUEUED),
    )
    .await;
    assert_eq!(plain_got?, Fnv::of(&big));
    let all: Vec<u8> = buffers.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(queued_got?, Fnv::of(&all));
    writer.await.expect("writer task")?;
    for request in requests {
        assert_eq!(request.await?, 1 << 20);
    }
    assert_eq!(queue.queued_bytes(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Cancellation

/// Writes `data` with `write` futures that are dropped at random points,
/// then half-closes. Returns how many writes were dropped while pending.
async fn write_with_cancellations(
    stream: Rc<TcpStream>,
    data: Rc<Vec<u8>>,
    seed: u64,
) -> io::Result<usize> {
    let mut rng = Rng::new(seed);
    let (mut sent, mut cancelled) = (0, 0);
    while sent < data.len() {
        let slow = writer_phase(sent);
        let len = (1 + rng.below(if slow { 512 } else { 8192 })).min(data.len() - sent);
        match race(
            stream.write(&data[sent..sent + len]),
            interruption(rng.next()),
        )
        .await
        {
            Either::Left(written) => sent += written?,
            Either::Right(()) => cancelled += 1,
        }
        pause(&mut rng, slow).await;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(cancelled)
}

/// Pushes `data` into a `WriteQueue` in random pieces, racing `flush` (and
/// some requests) against random interruptions, then half-closes. Returns
/// how many flushes were dropped while pending.
async fn queue_with_cancelled_flushes(
    stream: Rc<TcpStream>,
    data: Rc<Vec<u8>>,
    seed: u64,
) -> io::Result<usize> {
    let mut rng = Rng::new(seed);
    let queue = WriteQueue::new(stream.clone());
    let (mut pushed, mut cancelled) = (0, 0);
    while pushed < data.len() {
        let slow = writer_phase(pushed);
        pause(&mut rng, slow).await;
        let len = (1 + rng.below(if slow { 512 } else { 8192 })).min(data.len() - pushed);
        let request = queue.push(data[pushed..pushed + len].to_vec());
        pushed += len;
        match rng.below(3) {
            0 => match race(queue.flush(), interruption(rng.next())).await {
                Either::Left(flushed) => flushed?,
                Either::Right(()) => cancelled += 1,
            },
            1 => {
                if let Either::Left(written) = race(request, interruption(rng.next())).await {
                    assert_eq!(written?, len);
                }
            }
            _ => drop(request),
        }
    }
    queue.flush().await?;
    stream.shutdown(Shutdown::Write)?;
    Ok(cancelled)
}

/// Reads to end of stream with `read` futures dropped at random points —
/// some in this task, some in short-lived tasks that are aborted — and
/// sleeps now and then, so the writers fill the buffers and block. Returns
/// the bytes' count and checksum, and how many reads were dropped.
async fn read_with_cancellations(
    stream: Rc<TcpStream>,
    seed: u64,
) -> io::Result<(usize, Fnv, usize)> {
    let mut rng = Rng::new(seed);
    let (mut total, mut fnv, mut cancelled) = (0, Fnv::new(), 0);
    let mut buf = vec![0; 16 * 1024];
    loop {
        let slow = !writer_phase(total);
        let want = 1 + rng.below(if slow { 512 } else { buf.len() });
        let got: Option<usize> = if rng.below(4) == 0 {
            // The read runs in a task of its own, aborted if it is slow: an
            // aborted task's read is dropped, never half-done.
            let mut task = spawn({
                let stream = stream.clone();
                async move {
                    let mut buf = vec![0; want];
                    let n = stream.read(&mut buf).await?;
                    buf.truncate(n);
                    io::Result::Ok(buf)
                }
            });
            let bytes = match race(&mut task, interruption(rng.next())).await {
                Either::Left(joined) => Some(joined.expect("read task")?),
                Either::Right(()) => {
                    task.abort();
                    match task.await {
                        Ok(read) => Some(read?),
                        Err(error) if error.is_cancelled() => None,
                        Err(error) => panic!("read task: {error}"),
                    }
                }
            };
            bytes.map(|bytes| {
                buf[..bytes.len()].copy_from_slice(&bytes);
                bytes.len()
            })
        } else {
            match race(stream.read(&mut buf[..want]), interruption(rng.next())).await {
                Either::Left(read) => Some(read?),
                Either::Right(()) => None,
            }
        };
        match got {
            Some(0) => return Ok((total, fnv, cancelled)),
            Some(n) => {
                total += n;
                fnv.update(&buf[..n]);
            }
            None => cancelled += 1,
        }
        pause(&mut rng, slow).await;
    }
}

/// Whether the stream's writer is the slow side at byte `position`: the
/// sides take turns every 32 KiB. A slow writer leaves its reader waiting
/// (so reads are dropped while pending); a slow reader lets the buffers
/// fill (so writes and flushes are).
fn writer_phase(position: usize) -> bool {
    (position / (32 * 1024)) % 2 == 0
}

/// The slow side naps for a millisecond every other step.
async fn pause(rng: &mut Rng, slow: bool) {
    if slow && rng.below(2) == 0 {
        sleep(Duration::from_millis(1)).await;
    }
}

/// Both directions of one connection at once, each end reading with
/// futures dropped at random points; one direction written with dropped
/// `write` futures, the other through a `WriteQueue` with dropped flushes
/// and requests. Thousands of drops; not one byte lost or repeated.
#[xev::test(timeout_ms = 40000)]
async fn dropped_reads_writes_and_flushes_lose_and_duplicate_no_byte() -> io::Result<()> {
    const BYTES: usize = 256 * 1024;
    let (client, server) = connected_pair().await?;
    // Small buffers, so that writes block while the reader is slow.
    for stream in [&client, &server] {
        stream.set_send_buffer_size(8 * 1024)?;
        stream.set_recv_buffer_size(8 * 1024)?;
    }
    let (client, server) = (Rc::new(client), Rc::new(server));
    let up = Rc::new(pattern(41, BYTES));
    let down = Rc::new(pattern(42, BYTES));

    let writer = spawn(write_with_cancellations(client.clone(), up.clone(), 1));
    let queue_writer = spawn(queue_with_cancelled_flushes(
        server.clone(),
        down.clone(),
        2,
    ));
    let server_reader = spawn(read_with_cancellations(server.clone(), 3));
    let client_reader = spawn(read_with_cancellations(client.clone(), 4));

    let dropped_writes = writer.await.expect("writer task")?;
    let dropped_flushes = queue_writer.await.expect("queue task")?;
    let (up_len, up_fnv, up_dropped) = server_reader.await.expect("server reader")?;
    let (down_len, down_fnv, down_dropped) = client_reader.await.expect("client reader")?;
    assert_eq!((up_len, up_fnv), (BYTES, Fnv::of(&up)), "client to server");
    assert_eq!(
        (down_len, down_fnv),
        (BYTES, Fnv::of(&down)),
        "server to client"
    );

    let dropped_reads = up_dropped + down_dropped;
    println!(
        "dropped while pending: {dropped_reads} reads, {dropped_writes} writes, \
         {dropped_flushes} flushes"
    );
    // The test means something only if the drops happened.
    assert!(
        dropped_reads >= 1000,
        "only {dropped_reads} reads were dropped"
    );
    assert!(
        dropped_writes >= 100,
        "only {dropped_writes} writes were dropped"
    );
    assert!(
        dropped_flushes >= 50,
        "only {dropped_flushes} flushes were dropped"
    );
    Ok(())
}

/// `accept` (and `incoming().next()`) dropped at random points over a
/// thousand connections: every connection is accepted exactly once.
#[xev::test(timeout_ms = 30000)]
async fn dropped_accepts_lose_and_duplicate_no_connection() -> io::Result<()> {
    const CONNECTIONS: usize = 1000;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let clients = spawn(async move {
        let mut rng = Rng::new(51);
        for id in 0..CONNECTIONS as u32 {
            let stream = TcpStream::connect(addr).await?;
            stream.write_all(&id.to_le_bytes()).await?;
            drop(stream); // the id and FIN wait in the kernel
            if rng.below(4) == 0 {
                sleep(Duration::from_millis(rng.below(3) as u64)).await;
            }
        }
        io::Result::Ok(())
    });

    let mut rng = Rng::new(52);
    let mut seen = vec![false; CONNECTIONS];
    let (mut accepted, mut dropped) = (0, 0);
    let mut incoming = listener.incoming();
    while accepted < CONNECTIONS {
        let outcome = if rng.below(2) == 0 {
            match race(listener.accept(), interruption(rng.next())).await {
                Either::Left(result) => Some(result?.0),
                Either::Right(()) => None,
            }
        } else {
            match race(incoming.next(), interruption(rng.next())).await {
                Either::Left(item) => Some(item.expect("incoming never ends")?),
                Either::Right(()) => None,
            }
        };
        let Some(stream) = outcome else {
            dropped += 1;
            continue;
        };
        let mut id = [0; 4];
        stream.read_exact(&mut id).await?;
        let id = u32::from_le_bytes(id) as usize;
        assert!(!seen[id], "connection {id} accepted twice");
        seen[id] = true;
        accepted += 1;
    }
    clients.await.expect("client task")?;
    assert!(seen.iter().all(|&seen| seen));
    assert!(
        timeout(Duration::from_millis(50), listener.accept())
            .await
            .is_err(),
        "a connection beyond the {CONNECTIONS} sent was accepted"
    );
    println!("{dropped} accepts dropped while pending");
    assert!(dropped >= 100, "only {dropped} accepts were dropped");
    Ok(())
}

/// `TcpStream::connect` and `TcpSocket::connect` dropped at random points,
/// two thousand times: the connects that complete carry their bytes both
/// ways, and the dropped ones leave no registration, timer or task behind.
#[xev::test(timeout_ms = 30000)]
async fn dropped_connects_leave_nothing_behind_and_completed_ones_work() -> io::Result<()> {
    const ATTEMPTS: usize = 2000;
    let before = baseline_metrics().await;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let live = Rc::new(Cell::new(0));
    let server = spawn(echo_server(listener, live.clone()));

    let mut rng = Rng::new(61);
    let (mut completed, mut dropped) = (0, 0);
    for attempt in 0..ATTEMPTS as u64 {
        let connect: Pin<Box<dyn Future<Output = io::Result<TcpStream>>>> = if rng.below(2) == 0 {
            Box::pin(TcpStream::connect(addr))
        } else {
            Box::pin(async move { TcpSocket::new_v4()?.connect(addr).await })
        };
        match race(connect, interruption(rng.next())).await {
            Either::Left(stream) => {
                let stream = stream?;
                stream.write_all(&attempt.to_le_bytes()).await?;
                let mut echo = [0; 8];
                stream.read_exact(&mut echo).await?;
                assert_eq!(u64::from_le_bytes(echo), attempt);
                completed += 1;
            }
            Either::Right(()) => dropped += 1,
        }
    }
    println!("{completed} connects completed, {dropped} dropped while pending");
    assert!(
        dropped >= 100 && completed >= 100,
        "{completed} completed, {dropped} dropped"
    );

    // The server sees the dropped connects end too.
    until(Duration::from_secs(10), "every connection to end", || {
        live.get() == 0
    })
    .await;
    server.abort();
    assert!(server.await.unwrap_err().is_cancelled());
    assert_eq!(xev::rt::metrics(), before, "left behind");
    Ok(())
}

/// Thousands of sleeps raced against each other and dropped, in 20 tasks
/// at once: the winner never fires early, and no timer stays armed.
#[xev::test(timeout_ms = 20000)]
async fn dropped_sleeps_never_fire_early_and_leave_no_timer() -> io::Result<()> {
    const TASKS: u64 = 20;
    const ROUNDS: usize = 200;
    let before = baseline_metrics().await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|seed| {
            spawn(async move {
                let mut rng = Rng::new(70 + seed);
                for _ in 0..ROUNDS {
                    let a = Duration::from_micros(rng.below(2500) as u64);
                    let b = Duration::from_micros(rng.below(2500) as u64);
                    let start = Instant::now();
                    let mut first = xev::time::sleep(a);
                    if rng.below(4) == 0 {
                        // Reset before or after arming, then drop.
                        if rng.below(2) == 0 {
                            let _ = race(&mut first, std::future::ready(())).await;
                        }
                        first.reset(start + a);
                    }
                    match race(first, sleep(b)).await {
                        Either::Left(()) => assert!(start.elapsed() >= a, "fired early"),
                        Either::Right(()) => assert!(start.elapsed() >= b, "fired early"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sleeper task");
    }
    assert_eq!(xev::rt::metrics(), before, "a timer or task left behind");
    let start = Instant::now();
    sleep(Duration::from_millis(5)).await;
    assert!(start.elapsed() >= Duration::from_millis(5));
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. fd and memory hygiene

/// 10,000 cycles of connect, accept, write and drop — a tenth refused, a
/// tenth cancelled connects, a tenth cancelled accepts, the rest echoing a
/// few bytes and closing in varied orders — leave the process's open fds
/// and the runtime's sockets, tasks and timers where they started.
#[test]
fn ten_thousand_connect_accept_write_drop_cycles_leave_fds_and_registrations_unchanged() {
    const NAME: &str =
        "ten_thousand_connect_accept_write_drop_cycles_leave_fds_and_registrations_unchanged";
    if !is_child(NAME) {
        return child::run(NAME);
    }
    xev::rt::block_on(within(
        Duration::from_secs(50),
        "10,000 cycles",
        connect_accept_cycles(10_000),
    ))
    .expect("I/O in the cycles child");
}

async fn connect_accept_cycles(cycles: usize) -> io::Result<()> {
    let refused = refused_addr()?;
    let fds_before = open_fds();
    let before = baseline_metrics().await;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let idle = TcpListener::bind("127.0.0.1:0")?; // nobody connects to it
    let live = Rc::new(Cell::new(0));
    let server = spawn(echo_server(listener, live.clone()));

    let mut rng = Rng::new(81);
    let mut counts = [0usize; 4];
    for cycle in 0..cycles {
        match rng.below(10) {
            0 => {
                assert_kind(
                    TcpStream::connect(refused).await,
                    ErrorKind::ConnectionRefused,
                );
                counts[0] += 1;
            }
            1 => {
                if let Either::Right(()) =
                    race(TcpStream::connect(addr), interruption(rng.next())).await
                {
                    counts[1] += 1;
                }
            }
            2 => {
                if let Either::Left(accepted) = race(idle.accept(), interruption(rng.next())).await
                {
                    panic!("accepted a connection nobody made: {accepted:?}");
                }
                counts[2] += 1;
            }
            _ => {
                let stream = TcpStream::connect(addr).await?;
                let message = pattern(cycle as u64, 1 + rng.below(64));
                stream.write_all(&message).await?;
                let mut echo = vec![0; message.len()];
                stream.read_exact(&mut echo).await?;
                assert_eq!(echo, message);
                match rng.below(4) {
                    0 => drop(stream),
                    1 => stream.close().await?,
                    2 => {
                        stream.shutdown(Shutdown::Write)?;
                        assert_eq!(stream.read(&mut echo).await?, 0);
                    }
                    _ => {
                        let (read, write) = stream.into_split();
                        drop(write);
                        assert_eq!(read.read(&mut echo).await?, 0);
                    }
                }
                counts[3] += 1;
            }
        }
    }
    until(
        Duration::from_secs(10),
        "the server's connections to end",
        || live.get() == 0,
    )
    .await;
    server.abort();
    assert!(server.await.unwrap_err().is_cancelled());
    println!(
        "{} refused, {} connects and {} accepts cancelled, {} echoed",
        counts[0], counts[1], counts[2], counts[3]
    );
    assert!(
        counts.iter().all(|&count| count > cycles / 100),
        "{counts:?}"
    );
    drop(idle);
    assert_eq!(
        xev::rt::metrics(),
        before,
        "sockets, tasks or timers left behind"
    );
    assert_eq!(open_fds(), fds_before, "fds leaked: {}", fd_summary());
    Ok(())
}

/// A runtime dropped with 4,000 connected sockets registered — some in
/// tasks blocked reading or writing, some in a queue's drain task, some
/// idle in pending tasks, plus a listener with a pending accept — closes
/// them all, and its own epoll and eventfd. Sockets that outlive it fail
/// their operations at once instead of hanging, and close when dropped.
#[test]
fn dropping_a_runtime_with_thousands_of_registered_sockets_closes_them_all() {
    const NAME: &str = "dropping_a_runtime_with_thousands_of_registered_sockets_closes_them_all";
    if !is_child(NAME) {
        return child::run(NAME);
    }
    const PAIRS: usize = 2000;
    const OUTLIVING_PAIRS: usize = 100;
    let fds_before = open_fds();
    let runtime = Runtime::new().expect("a runtime");
    let outliving = runtime
        .block_on(timeout(Duration::from_secs(30), async {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let mut pairs = Vec::new();
            for _ in 0..PAIRS {
                let (client, accepted) =
                    future::join(TcpStream::connect(addr), listener.accept()).await;
                pairs.push((client?, accepted?.0));
            }
            let outliving: Vec<_> = pairs.drain(..OUTLIVING_PAIRS).collect();
            for (index, (client, server)) in pairs.into_iter().enumerate() {
                let task = match index % 4 {
                    // Blocked in a read.
                    0 => spawn(async move {
                        let mut buf = [0; 16];
                        let _ = client.read(&mut buf).await;
                        drop(server);
                    }),
                    // Blocked in a write: the peer never reads.
                    1 if index < 200 => spawn(async move {
                        let _ = client.write_all(&vec![7; 8 << 20]).await;
                        drop(server);
                    }),
                    // A queue with a backlog, its drain task parked.
                    1 => {
                        client.set_send_buffer_size(4096)?;
                        let queue = WriteQueue::new(Rc::new(client));
                        drop(queue.push(vec![9; 1 << 20]));
                        spawn(async move {
                            let _ = queue.flush().await;
                            drop(server);
                        })
                    }
                    // Idle, in a sleeping task.
                    _ => spawn(async move {
                        sleep(Duration::from_secs(3600)).await;
                        drop((client, server));
                    }),
                };
                drop(task);
            }
            let acceptor = spawn(async move {
                let _ = listener.accept().await;
            });
            drop(acceptor);
            sleep(Duration::from_millis(50)).await; // everyone parks
            let metrics = xev::rt::metrics();
            assert!(
                metrics.registered_sockets > 2 * PAIRS,
                "only {} sockets registered",
                metrics.registered_sockets
            );
            io::Result::Ok(outliving)
        }))
        .expect("setting up within 30 s")
        .expect("I/O while setting up");
    assert!(open_fds() > fds_before + 2 * PAIRS);
    drop(runtime);

    // Only the outliving sockets are open, and the runtime's epoll and
    // eventfd, which they keep alive until they go.
    assert_eq!(open_fds(), fds_before + 2 * OUTLIVING_PAIRS + 2);
    for (client, server) in &outliving {
        let mut buf = [0; 8];
        let read = futures::executor::block_on(client.read(&mut buf));
        assert!(read.is_err(), "a read on a dead runtime: {read:?}");
        let write = futures::executor::block_on(server.write(b"x"));
        assert!(write.is_err(), "a write on a dead runtime: {write:?}");
    }
    drop(outliving);
    assert_eq!(
        open_fds(),
        fds_before,
        "fds leaked by a dropped runtime: {}",
        fd_summary()
    );
}

// ---------------------------------------------------------------------------
// 5 and 6. fd reuse and re-entrancy during event dispatch

thread_local! {
    /// Sockets that a waker, woken inside the reactor's event dispatch,
    /// drops or stores.
    static DOOMED: RefCell<Vec<Option<TcpStream>>> = const { RefCell::new(Vec::new()) };
    static REPLACEMENTS: RefCell<Vec<TcpStream>> = const { RefCell::new(Vec::new()) };
    static REPLACEMENT_ADDR: Cell<Option<SocketAddr>> = const { Cell::new(None) };
    /// (dropped socket's fd, replacement's fd), one pair per round.
    static REPLACEMENT_FDS: RefCell<Vec<(i32, i32)>> = const { RefCell::new(Vec::new()) };
}

/// Wakes for socket `index` of [`DOOMED`], inside the reactor's dispatch:
/// drops the *other* doomed socket (whose event may be later in the same
/// batch), opens a replacement socket that takes its fd number and reactor
/// slot, registers a reader waker on the replacement, and then wakes the
/// test's task.
struct DispatchWaker {
    index: usize,
    fired: Arc<AtomicUsize>,
    replacement_woken: Arc<AtomicUsize>,
    task: Waker,
}

impl Wake for DispatchWaker {
    fn wake(self: Arc<Self>) {
        use std::os::fd::AsRawFd;

        self.fired.fetch_add(1, Ordering::SeqCst);
        let other = DOOMED.with(|doomed| doomed.borrow_mut()[1 - self.index].take());
        if let Some(other) = other {
            let fd = other.as_raw_fd();
            drop(other);
            // Fill any lower free fd numbers, so the replacement gets `fd`.
            let mut fillers = Vec::new();
            loop {
                let filler = std::net::UdpSocket::bind("127.0.0.1:0").expect("a filler socket");
                if filler.as_raw_fd() >= fd {
                    break;
                }
                fillers.push(filler);
            }
            let addr = REPLACEMENT_ADDR.get().expect("replacement address");
            let std_stream = std::net::TcpStream::connect(addr).expect("replacement connect");
            drop(fillers);
            let replacement = TcpStream::from_std(std_stream).expect("register the replacement");
            REPLACEMENT_FDS.with(|fds| fds.borrow_mut().push((fd, replacement.as_raw_fd())));
            let counter = Waker::from(Arc::new(CountingWaker(self.replacement_woken.clone())));
            let polled = poll_read_once(&replacement, &mut Context::from_waker(&counter));
            assert!(polled.is_pending(), "the replacement has nothing to read");
            REPLACEMENTS.with(|r| r.borrow_mut().push(replacement));
            // The runtime's bookkeeping is usable from here too.
            let _ = xev::rt::metrics();
            drop(spawn(async {}));
        }
        self.task.wake_by_ref();
    }
}

struct CountingWaker(Arc<AtomicUsize>);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two sockets become readable in the same reactor batch; the first one's
/// waker (run inside the dispatch) drops the second and opens a socket that
/// reuses its fd number and slot. The second socket's event, still in the
/// batch, must wake nobody: not the dropped socket's waker, not the
/// replacement's. Two hundred rounds, in both orders. No `RefCell` panic.
#[test]
fn a_socket_dropped_during_dispatch_never_lends_its_pending_event_to_the_socket_reusing_its_fd() {
    const NAME: &str =
        "a_socket_dropped_during_dispatch_never_lends_its_pending_event_to_the_socket_reusing_its_fd";
    if !is_child(NAME) {
        return child::run(NAME);
    }
    xev::rt::block_on(within(
        Duration::from_secs(30),
        "the dispatch child",
        dispatch_drops(200),
    ))
    .expect("I/O in the dispatch child");
}

async fn dispatch_drops(rounds: usize) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let replacements = std::net::TcpListener::bind("127.0.0.1:0")?;
    REPLACEMENT_ADDR.set(Some(replacements.local_addr()?));
    let fds_before = open_fds();
    let before = baseline_metrics().await;

    let task = current_waker().await;
    let mut rng = Rng::new(91);
    for round in 0..rounds {
        let mut socks = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (client, accepted) =
                future::join(TcpStream::connect(addr), listener.accept()).await;
            socks.push(accepted?.0);
            peers.push(client?);
        }
        let fired = Arc::new(AtomicUsize::new(0));
        let replacement_woken = Arc::new(AtomicUsize::new(0));
        for (index, sock) in socks.iter().enumerate() {
            let waker = Waker::from(Arc::new(DispatchWaker {
                index,
                fired: fired.clone(),
                replacement_woken: replacement_woken.clone(),
                task: task.clone(),
            }));
            assert!(poll_read_once(sock, &mut Context::from_waker(&waker)).is_pending());
        }
        DOOMED.with(|doomed| *doomed.borrow_mut() = socks.into_iter().map(Some).collect());

        // Both peers write before the runtime polls: one batch, both events.
        let first = rng.below(2);
        peers[first].write_all(b"1").await?;
        peers[1 - first].write_all(b"2").await?;
        until(Duration::from_secs(5), "a dispatch waker", || {
            fired.load(Ordering::SeqCst) > 0
        })
        .await;
        for _ in 0..5 {
            yield_now().await;
        }
        sleep(Duration::from_millis(2)).await;
        assert_eq!(
            fired.load(Ordering::SeqCst),
            1,
            "round {round}: the dropped socket's waker was woken"
        );
        assert_eq!(
            replacement_woken.load(Ordering::SeqCst),
            0,
            "round {round}: the replacement woke for the dropped socket's event"
        );
        // The survivor reads its byte; the replacement has none.
        let survivor = DOOMED
            .with(|doomed| doomed.borrow_mut().iter_mut().find_map(Option::take))
            .expect("one doomed socket survives");
        let mut byte = [0; 1];
        survivor.read_exact(&mut byte).await?;
        let replacement = REPLACEMENTS
            .with(|r| r.borrow_mut().pop())
            .expect("a replacement");
        assert_kind(replacement.try_read(&mut byte), ErrorKind::WouldBlock);
        let _ = replacements.accept()?;
        drop((survivor, replacement, peers));
    }
    let fds = REPLACEMENT_FDS.with(|fds| fds.take());
    assert_eq!(fds.len(), rounds, "one replacement per round");
    for (round, (dropped, replacement)) in fds.into_iter().enumerate() {
        // Without the reuse the test would not test it.
        assert_eq!(
            dropped, replacement,
            "round {round}: the fd number was not reused"
        );
    }
    for _ in 0..3 {
        yield_now().await;
    }
    assert_eq!(xev::rt::metrics(), before, "sockets or tasks left behind");
    assert_eq!(open_fds(), fds_before, "fds leaked: {}", fd_summary());
    Ok(())
}

/// Two tasks each read their own socket; both sockets become readable in
/// one batch. The task that runs first drops the other task's socket (and
/// wakes it); the other then finds its socket gone. Five hundred rounds:
/// exactly one read and one eviction each time, no panic, nothing left.
#[xev::test(timeout_ms = 20000)]
async fn a_task_dropping_another_tasks_stream_mid_dispatch_is_harmless() -> io::Result<()> {
    type Slot = Rc<RefCell<Option<TcpStream>>>;
    type WakerSlot = Rc<RefCell<Option<Waker>>>;

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Read(u8),
        Evicted,
    }

    async fn reader(
        mine: Slot,
        my_waker: WakerSlot,
        theirs: Slot,
        their_waker: WakerSlot,
    ) -> Outcome {
        poll_fn(|cx| {
            let stream = mine.borrow();
            let Some(stream) = stream.as_ref() else {
                return Poll::Ready(Outcome::Evicted);
            };
            let mut byte = [0; 1];
            match Pin::new(&mut &*stream).poll_read(cx, &mut byte) {
                Poll::Ready(Ok(1)) => {
                    // Drop the other task's socket, then tell it.
                    drop(theirs.borrow_mut().take());
                    if let Some(waker) = their_waker.borrow_mut().take() {
                        waker.wake();
                    }
                    Poll::Ready(Outcome::Read(byte[0]))
                }
                Poll::Ready(other) => panic!("unexpected read result {other:?}"),
                Poll::Pending => {
                    *my_waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let before = baseline_metrics().await;
    for round in 0..500 {
        let mut slots: Vec<Slot> = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (client, accepted) =
                future::join(TcpStream::connect(addr), listener.accept()).await;
            slots.push(Rc::new(RefCell::new(Some(accepted?.0))));
            peers.push(client?);
        }
        let wakers: Vec<WakerSlot> = vec![Default::default(), Default::default()];
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                spawn(reader(
                    slots[i].clone(),
                    wakers[i].clone(),
                    slots[1 - i].clone(),
                    wakers[1 - i].clone(),
                ))
            })
            .collect();
        yield_now().await; // both readers park
        peers[round % 2].write_all(&[round as u8]).await?;
        peers[1 - round % 2].write_all(&[round as u8]).await?;
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(
                within(Duration::from_secs(5), "the readers", task)
                    .await
                    .unwrap(),
            );
        }
        outcomes.sort_by_key(|outcome| matches!(outcome, Outcome::Evicted));
        assert_eq!(
            outcomes,
            [Outcome::Read(round as u8), Outcome::Evicted],
            "round {round}"
        );
        drop(slots);
    }
    assert_eq!(xev::rt::metrics(), before);
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Re-entrancy: wakes inside a task's own poll and during shutdown

/// A task that wakes itself inside its own poll (by reference, by value,
/// twice) is polled once per poll that woke it; one that wakes itself and
/// then finishes never runs the task that next takes its slot; the
/// `block_on` future can do the same; a task that aborts itself inside its
/// poll ends cancelled. No deadlock, no `RefCell` panic.
#[xev::test(timeout_ms = 10000)]
async fn wake_inside_the_tasks_own_poll() -> io::Result<()> {
    /// A task that yields 1,100 times, counting its turns: the pace of one
    /// poll per tick, against which the self-waking tasks are measured.
    fn metronome() -> (JoinHandle<()>, Rc<Cell<usize>>) {
        let ticks = Rc::new(Cell::new(0));
        let task = spawn({
            let ticks = ticks.clone();
            async move {
                for _ in 0..1100 {
                    ticks.set(ticks.get() + 1);
                    yield_now().await;
                }
            }
        });
        (task, ticks)
    }

    // Wakes itself three ways per poll, 1,000 times: it is queued once per
    // poll, so it keeps pace with a task that yields once per poll.
    let (beat, ticks) = metronome();
    let polls = Rc::new(Cell::new(0));
    let task = spawn({
        let polls = polls.clone();
        poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            if polls.get() == 1000 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            let by_value = cx.waker().clone();
            by_value.wake();
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    });
    task.await.expect("self-waking task");
    let paced = ticks.get();
    assert!(
        (990..=1010).contains(&paced),
        "1,000 self-woken polls took {paced} turns of a yielding task: wakes were not de-duplicated"
    );
    beat.await.unwrap();

    // Wake, then finish in the same poll; the next task reuses the slot and
    // must be polled only when woken.
    for _ in 0..100 {
        let finished = spawn(poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::Ready(())
        }));
        yield_now().await;
        assert!(finished.is_finished());
        finished.await.expect("finishing task");
        let polls = Rc::new(Cell::new(0));
        let parked = spawn({
            let polls = polls.clone();
            poll_fn(move |_| {
                polls.set(polls.get() + 1);
                Poll::<()>::Pending
            })
        });
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(polls.get(), 1, "a stale wake ran the task reusing the slot");
        parked.abort();
        assert!(parked.await.unwrap_err().is_cancelled());
    }

    // The block_on future wakes itself inside its poll, 1,000 times.
    let (beat, ticks) = metronome();
    let mut own_polls = 0;
    poll_fn(|cx| {
        own_polls += 1;
        if own_polls == 1000 {
            return Poll::Ready(());
        }
        let by_value = cx.waker().clone();
        by_value.wake();
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    let paced = ticks.get();
    assert!(
        (990..=1010).contains(&paced),
        "1,000 self-woken polls of the block_on future took {paced} turns of a yielding task"
    );
    beat.await.unwrap();

    // A task aborts itself (through its own handle) inside its poll.
    let handle: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
    let polled = Rc::new(Cell::new(0));
    let task = spawn({
        let handle = handle.clone();
        let polled = polled.clone();
        poll_fn(move |cx| {
            polled.set(polled.get() + 1);
            if let Some(handle) = handle.borrow().as_ref() {
                handle.abort();
                assert!(!handle.is_finished(), "running, so not finished");
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    });
    let task2 = spawn(async {});
    *handle.borrow_mut() = Some(task);
    task2.await.unwrap();
    let task = handle.borrow_mut().take().unwrap();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(polled.get(), 1, "polled again after aborting itself");
    Ok(())
}

/// Runs a closure when dropped.
struct OnDrop(Option<Box<dyn FnOnce()>>);

impl OnDrop {
    fn new(f: impl FnOnce() + 'static) -> OnDrop {
        OnDrop(Some(Box::new(f)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

thread_local! {
    /// Sockets that wakers woken during shutdown drop.
    static SHUTDOWN_DOOMED: RefCell<Vec<TcpStream>> = const { RefCell::new(Vec::new()) };
}

/// How many [`ActionWaker`]s have run.
static ACTIONS_RUN: AtomicUsize = AtomicUsize::new(0);

/// A waker that, when woken, runs `action` on the thread that wakes it.
struct ActionWaker {
    action: fn(),
}

impl Wake for ActionWaker {
    fn wake(self: Arc<Self>) {
        (self.action)();
        ACTIONS_RUN.fetch_add(1, Ordering::SeqCst);
    }
}

/// While a runtime is dropped, destructors of its tasks' futures wake their
/// own task, wake other tasks (dropped or not yet), spawn tasks that hold
/// sockets, drop sockets, open new ones; and wakers woken by the timer and
/// reactor shutdown drop and open sockets too. No panic, no deadlock, and
/// every fd — sockets and the runtime's own — is closed afterwards.
#[test]
fn wakes_drops_and_spawns_from_destructors_during_runtime_shutdown() {
    const NAME: &str = "wakes_drops_and_spawns_from_destructors_during_runtime_shutdown";
    if !is_child(NAME) {
        return child::run(NAME);
    }
    let fds_before = open_fds();
    let runtime = Runtime::new().expect("a runtime");
    let outliving = runtime
        .block_on(timeout(Duration::from_secs(20), async {
            let listener = Rc::new(TcpListener::bind("127.0.0.1:0")?);
            let addr = listener.local_addr()?;
            let mut pairs = Vec::new();
            for _ in 0..8 {
                let (client, accepted) =
                    future::join(TcpStream::connect(addr), listener.accept()).await;
                pairs.push((client?, accepted?.0));
            }
            let wakers: Rc<RefCell<Vec<Waker>>> = Rc::default();

            for (index, (client, server)) in pairs.drain(..4).enumerate() {
                let wakers = wakers.clone();
                let listener = listener.clone();
                drop(spawn(async move {
                    let own = current_waker().await;
                    wakers.borrow_mut().push(own.clone());
                    let _guard = OnDrop::new({
                        let wakers = wakers.clone();
                        move || {
                            own.wake_by_ref();
                            for waker in wakers.borrow().iter() {
                                waker.wake_by_ref();
                            }
                            drop(server);
                            // A task spawned during shutdown, holding sockets
                            // and a timer.
                            drop(spawn(async move {
                                let _held = (client, listener);
                                sleep(Duration::from_secs(3600)).await;
                            }));
                            if index == 0 {
                                let extra = TcpListener::bind("127.0.0.1:0");
                                drop(extra);
                                let _ = xev::rt::metrics();
                            }
                        }
                    });
                    std::future::pending::<()>().await;
                }));
            }

            // Reader wakers (in the reactor) and a timer waker that act
            // during the reactor's and the timers' shutdown. Their socket and
            // timer outlive the runtime, so the wakers are still registered
            // when it shuts down.
            let mut outliving = Vec::new();
            for (client, server) in pairs.drain(..) {
                SHUTDOWN_DOOMED.with(|d| d.borrow_mut().push(server));
                let waker = Waker::from(Arc::new(ActionWaker {
                    action: || {
                        let doomed = SHUTDOWN_DOOMED.with(|d| d.borrow_mut().pop());
                        drop(doomed);
                        if let Ok(listener) = TcpListener::bind("127.0.0.1:0") {
                            drop(spawn(async move {
                                let _ = listener.accept().await;
                            }));
                        }
                    },
                }));
                assert!(poll_read_once(&client, &mut Context::from_waker(&waker)).is_pending());
                outliving.push(client);
            }
            let mut timer = sleep(Duration::from_secs(3600));
            let waker = Waker::from(Arc::new(ActionWaker {
                action: || {
                    let doomed = SHUTDOWN_DOOMED.with(|d| d.borrow_mut().pop());
                    drop(doomed);
                },
            }));
            assert!(Pin::new(&mut timer)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());

            for _ in 0..5 {
                yield_now().await;
            }
            io::Result::Ok((outliving, timer))
        }))
        .expect("set up within 20 s")
        .expect("I/O while setting up");
    let (outliving, mut timer) = outliving;
    drop(runtime);
    assert_eq!(
        ACTIONS_RUN.load(Ordering::SeqCst),
        5,
        "every reader and timer waker ran at shutdown"
    );
    // What outlived the runtime fails at once, never hangs: a socket
    // operation with an error, a timer (which can never fire) with a panic.
    let mut buf = [0; 1];
    assert!(futures::executor::block_on(outliving[0].read(&mut buf)).is_err());
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures::executor::block_on(&mut timer)
    }));
    assert!(polled.is_err(), "a timer of a dropped runtime completed");
    drop((outliving, timer));
    assert_eq!(
        open_fds(),
        fds_before,
        "fds left open after the runtime's drop: {}",
        fd_summary()
    );
}

thread_local! {
    static THREAD_RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// A runtime kept in a `thread_local!` is dropped when its thread exits,
/// after (or before) xev's own thread-local state: its tasks' destructors,
/// which wake wakers and drop sockets, run without a panic or an abort, and
/// the sockets are closed.
#[test]
fn a_runtime_in_a_thread_local_is_dropped_cleanly_at_thread_exit() {
    const NAME: &str = "a_runtime_in_a_thread_local_is_dropped_cleanly_at_thread_exit";
    if !is_child(NAME) {
        return child::run(NAME);
    }
    let fds_before = open_fds();
    std::thread::spawn(|| {
        THREAD_RUNTIME.with(|slot| *slot.borrow_mut() = Some(Runtime::new().unwrap()));
        THREAD_RUNTIME.with(|slot| {
            let slot = slot.borrow();
            let runtime = slot.as_ref().unwrap();
            runtime
                .block_on(async {
                    let (client, server) = connected_pair().await?;
                    drop(spawn(async move {
                        let own = current_waker().await;
                        let _guard = OnDrop::new(move || {
                            own.wake_by_ref();
                            drop(server);
                        });
                        let mut buf = [0; 1];
                        let _ = client.read(&mut buf).await;
                    }));
                    yield_now().await;
                    io::Result::Ok(())
                })
                .unwrap();
        });
    })
    .join()
    .expect("the runtime's thread exits cleanly");
    assert_eq!(
        open_fds(),
        fds_before,
        "fds left open by the thread's runtime: {}",
        fd_summary()
    );
}

// ---------------------------------------------------------------------------
// 8. Scale

/// The environment variable that gives the client child the server address.
const SCALE_ADDR_ENV: &str = "XEV_RELIABILITY_SCALE_ADDR";

/// 10,000 connections open at once, from a child process, each echoing
/// 1 KiB: every echo comes back intact, and the server held all 10,000 at
/// the same time.
#[test]
fn ten_thousand_concurrent_connections_each_echo_1_kib() {
    scale_test(
        "ten_thousand_concurrent_connections_each_echo_1_kib",
        10_000,
    );
}

fn scale_test(name: &str, connections: usize) {
    if is_child(name) {
        return scale_clients(connections);
    }
    let outcome = xev::rt::block_on(within(Duration::from_secs(60), "the scale test", async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let live = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let server = spawn({
            let (live, peak) = (live.clone(), peak.clone());
            async move {
                loop {
                    let (stream, _) = listener.accept().await.expect("accept");
                    live.set(live.get() + 1);
                    peak.set(peak.get().max(live.get()));
                    let live = live.clone();
                    drop(spawn(async move {
                        let mut buf = vec![0; 1024];
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
                        live.set(live.get() - 1);
                    }));
                }
            }
        });
        // The child runs while this runtime serves it; a thread waits for it.
        let child = child::start(name, &[(SCALE_ADDR_ENV, addr.to_string())]);
        let (done_tx, done_rx) = futures::channel::oneshot::channel();
        let test = name.to_string();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(|| child::finish(&test, child));
            let _ = done_tx.send(result);
        });
        let stdout = match done_rx.await.expect("the waiting thread") {
            Ok(stdout) => stdout,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        assert!(
            stdout.contains(&format!("{connections} connections echoed 1 KiB")),
            "{stdout}"
        );
        until(Duration::from_secs(10), "every connection to end", || {
            live.get() == 0
        })
        .await;
        assert_eq!(peak.get(), connections, "connections open at once");
        server.abort();
        io::Result::Ok(())
    }));
    outcome.expect("I/O in the scale test");
}

/// The child's side: opens `connections` connections (at most 500 handshakes
/// in flight, so the listener's backlog never overflows), then has each echo
/// 1 KiB while all are open, and only then closes them.
fn scale_clients(connections: usize) {
    let addr: SocketAddr = std::env::var(SCALE_ADDR_ENV)
        .expect("the server address")
        .parse()
        .unwrap();
    xev::rt::block_on(within(Duration::from_secs(50), "the clients", async {
        let mut streams = Vec::with_capacity(connections);
        while streams.len() < connections {
            let wave = (connections - streams.len()).min(500);
            for stream in future::join_all((0..wave).map(|_| TcpStream::connect(addr))).await {
                streams.push(Rc::new(stream?));
            }
        }
        let echoes: Vec<_> = streams
            .iter()
            .enumerate()
            .map(|(index, stream)| {
                let stream = stream.clone();
                spawn(async move {
                    let message = pattern(index as u64, 1024);
                    stream.write_all(&message).await?;
                    let mut echo = vec![0; 1024];
                    stream.read_exact(&mut echo).await?;
                    assert!(echo == message, "connection {index}: the echo differs");
                    io::Result::Ok(())
                })
            })
            .collect();
        for echo in echoes {
            echo.await.expect("echo task")?;
        }
        drop(streams);
        println!("{connections} connections echoed 1 KiB");
        io::Result::Ok(())
    }))
    .expect("I/O in the client child");
}
