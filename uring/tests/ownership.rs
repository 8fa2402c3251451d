//! Tests aimed at the ownership rule (see the crate docs): a buffer the
//! kernel may read or write belongs to the ring from queueing until its
//! last completion is reaped. CI also runs them under valgrind
//! (`.ci/valgrind-uring`).
//!
//! A freed buffer the kernel writes into afterwards is invisible to
//! valgrind (the kernel's writes bypass it) and may never be reused by the
//! allocator, so this binary's allocator keeps freed blocks of one chosen
//! size aside, filled with a poison byte, while a test looks: any byte that
//! changes was written after the free.
//!
//! Without io_uring (old kernel, seccomp, `kernel.io_uring_disabled`) each
//! test prints `skipped: io_uring unavailable: <reason>` and returns; with
//! `XEV_URING_REQUIRED` set it fails instead.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use xev_uring::{Completion, OpId, Ring, POLLIN};

// ---------------------------------------------------------------------------
// The quarantine allocator.

/// The block size kept aside when freed (0: none). Chosen so that nothing
/// but a test's own buffers has it.
static QUARANTINE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// Addresses of the blocks kept aside (0: free slot).
static QUARANTINED: [AtomicUsize; 512] = [const { AtomicUsize::new(0) }; 512];
const POISON: u8 = 0xA5;

struct Quarantine;

// SAFETY: every call is passed on to `System`, except that `dealloc` of a
// block of the quarantined size may keep the block (filled with `POISON`)
// until `Quarantined::drop` hands it to `System`; nothing else touches it.
unsafe impl GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() == QUARANTINE_SIZE.load(Ordering::SeqCst) {
            for slot in &QUARANTINED {
                if slot
                    .compare_exchange(0, ptr as usize, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    // SAFETY: the block is `layout.size()` bytes, ours
                    // until released.
                    unsafe { ptr.write_bytes(POISON, layout.size()) };
                    return;
                }
            }
        }
        // SAFETY: passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Quarantine = Quarantine;

/// While alive, freed blocks of `size` bytes (alignment 1) are kept aside;
/// dropping it frees them.
struct Quarantined {
    size: usize,
}

impl Quarantined {
    fn start(size: usize) -> Quarantined {
        QUARANTINE_SIZE.store(size, Ordering::SeqCst);
        Quarantined { size }
    }

    /// The blocks kept so far, and how many of them no longer hold only the
    /// poison byte (written after they were freed).
    fn check(&self) -> (usize, usize) {
        let mut kept = 0;
        let mut written = 0;
        for slot in &QUARANTINED {
            let address = slot.load(Ordering::SeqCst);
            if address != 0 {
                kept += 1;
                // SAFETY: a kept block of `self.size` bytes, not yet given
                // back to `System`.
                let bytes = unsafe { std::slice::from_raw_parts(address as *const u8, self.size) };
                if bytes.iter().any(|&byte| byte != POISON) {
                    written += 1;
                }
            }
        }
        (kept, written)
    }
}

impl Drop for Quarantined {
    fn drop(&mut self) {
        QUARANTINE_SIZE.store(0, Ordering::SeqCst);
        let layout = Layout::from_size_align(self.size, 1).unwrap();
        for slot in &QUARANTINED {
            let address = slot.swap(0, Ordering::SeqCst);
            if address != 0 {
                // SAFETY: a kept block of this layout, freed once.
                unsafe { System.dealloc(address as *mut u8, layout) };
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// One test at a time: the fd counts and the quarantine are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the serial lock and arms a watchdog that aborts the process if the
/// test is still running after `secs` (a hung `wait` cannot be
/// interrupted otherwise); `None` (after saying so) if io_uring is
/// unavailable.
fn start(name: &'static str, secs: u64) -> Option<Running> {
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Err(error) = xev_uring::probe() {
        if std::env::var_os("XEV_URING_REQUIRED").is_some() {
            panic!("XEV_URING_REQUIRED is set but io_uring is unavailable: {error}");
        }
        // Straight to stderr: the test harness captures `println!`.
        let _ = writeln!(
            io::stderr(),
            "{name}: skipped: io_uring unavailable: {error}"
        );
        return None;
    }
    let (done, timer) = mpsc::channel::<()>();
    thread::spawn(move || {
        if timer.recv_timeout(Duration::from_secs(secs)) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = writeln!(
                io::stderr(),
                "{name}: still running after {secs} s: aborting"
            );
            std::process::abort();
        }
    });
    Some(Running {
        _serial: serial,
        _done: done,
    })
}

struct Running {
    _serial: MutexGuard<'static, ()>,
    _done: mpsc::Sender<()>,
}

/// A connected loopback pair: `ours` (non-blocking, for the ring) and the
/// `peer` (blocking, for the test).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    (ours, peer)
}

/// Waits for and reaps completions until `op`'s last one, which it
/// returns; every completion reaped is also pushed to `seen`.
fn finish(ring: &mut Ring, op: OpId, seen: &mut Vec<Completion>) -> Completion {
    finish_stepping(ring, op, seen, Duration::from_secs(10), || {})
}

/// [`finish`], waiting at most `step` at a time and calling `between`
/// before each wait (for work this thread must do meanwhile: no other
/// thread may run while one is blocked in the ring under valgrind).
fn finish_stepping(
    ring: &mut Ring,
    op: OpId,
    seen: &mut Vec<Completion>,
    step: Duration,
    mut between: impl FnMut(),
) -> Completion {
    loop {
        let mut last = None;
        ring.complete(|completion| {
            if completion.op == op && !completion.more {
                last = Some(completion);
            } else {
                seen.push(completion);
            }
        })
        .unwrap();
        if let Some(last) = last {
            return last;
        }
        between();
        ring.wait(Some(step)).unwrap();
    }
}

/// Bytes readable now from a non-blocking socket.
fn drain(socket: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match socket.read(&mut chunk) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return bytes,
            Err(error) => panic!("read failed: {error}"),
        }
    }
}

/// The open descriptors of this process, with what each names (but for
/// the one listing them).
fn open_fds() -> Vec<(i32, String)> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .filter(|(_, target)| !(target.starts_with("/proc/") && target.ends_with("/fd")))
        .collect()
}

fn is_canceled(result: &io::Result<u32>) -> bool {
    matches!(result, Err(error) if error.raw_os_error() == Some(libc::ECANCELED))
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn cancelled_recv_gives_back_its_own_buffer_then_the_bytes_arrive() {
    let Some(_running) = start("cancelled_recv", 60) else {
        return;
    };
    let mut ring = Ring::new(8).unwrap();
    let (ours, mut peer) = pair();
    let buf = vec![0u8; 64];
    let (address, len) = (buf.as_ptr(), buf.len());
    let op = ring.recv(ours.as_fd(), buf, 7).unwrap();
    ring.submit().unwrap();
    ring.cancel(op).unwrap();
    peer.write_all(b"hello, ring").unwrap();
    let mut others = Vec::new();
    let done = finish(&mut ring, op, &mut others);
    assert!(
        others.is_empty(),
        "completions for nothing queued: {others:?}"
    );
    assert_eq!(done.token, 7);
    let buf = done.buf.expect("the last completion gives the buffer back");
    assert_eq!(
        buf.as_ptr(),
        address,
        "the buffer given back is the one queued"
    );
    assert_eq!(buf.len(), len);
    let mut received = match done.result {
        Ok(n) => buf[..n as usize].to_vec(),
        Err(_) if is_canceled(&done.result) => Vec::new(),
        Err(error) => panic!("a cancelled recv ends with ECANCELED or data, not {error}"),
    };
    assert_eq!(ring.in_flight(), 0);

    // The bytes the cancelled recv did not take are still in the socket.
    while received.len() < b"hello, ring".len() {
        let op = ring.recv(ours.as_fd(), buf.clone(), 8).unwrap();
        let done = finish(&mut ring, op, &mut others);
        let n = done.result.unwrap() as usize;
        assert!(n > 0, "the peer's bytes are there, not the end of stream");
        received.extend_from_slice(&done.buf.unwrap()[..n]);
    }
    assert_eq!(received, b"hello, ring");
    assert_eq!(ring.in_flight(), 0);
}

/// Receives in flight when the ring is dropped: their buffers are freed
/// only after the kernel is done with them, so the peers' bytes, written
/// after the drop, land in no freed block (and stay in the sockets).
fn drop_with_reads_in_flight(name: &'static str, keep_kernel_ring: bool) {
    const SIZE: usize = 3001;
    const PAIRS: usize = 16;
    let Some(_running) = start(name, 60) else {
        return;
    };
    let mut pairs: Vec<_> = (0..PAIRS).map(|_| pair()).collect();
    let quarantine = Quarantined::start(SIZE);
    let before: HashSet<i32> = open_fds().into_iter().map(|(fd, _)| fd).collect();
    let mut ring = Ring::new(8).unwrap();
    // A second descriptor of the kernel's ring, as a forked child would
    // hold: closing the ring's own then does not end its operations, and
    // only the drop's cancel-and-drain keeps the kernel off the buffers.
    let kernel_ring = keep_kernel_ring.then(|| {
        let (fd, _) = open_fds()
            .into_iter()
            .find(|(fd, target)| !before.contains(fd) && target.contains("io_uring"))
            .expect("the ring's descriptor is in /proc/self/fd");
        // SAFETY: `dup` has no memory arguments.
        let copy = unsafe { libc::dup(fd) };
        assert!(copy >= 0, "dup: {}", io::Error::last_os_error());
        // SAFETY: just returned by `dup`, owned by nothing else.
        unsafe { OwnedFd::from_raw_fd(copy) }
    });
    for (token, (ours, _)) in pairs.iter().enumerate() {
        ring.recv(ours.as_fd(), vec![0u8; SIZE], token as u64)
            .unwrap();
    }
    ring.submit().unwrap();
    assert_eq!(ring.in_flight(), PAIRS);
    drop(ring);
    assert_eq!(
        quarantine.check(),
        (PAIRS, 0),
        "dropping the ring frees every buffer, once the kernel is done with it"
    );

    for (_, peer) in &mut pairs {
        peer.write_all(&[b'x'; 100]).unwrap();
    }
    // Give any receive still armed time to run (it would run on this
    // thread's way back from a system call).
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(5));
    }
    let (kept, written) = quarantine.check();
    assert_eq!(written, 0, "the kernel wrote into {written} freed buffers");
    assert_eq!(kept, PAIRS);
    // Fresh memory of the same size stays as written too.
    let fresh: Vec<Vec<u8>> = (0..PAIRS).map(|i| vec![i as u8; SIZE]).collect();
    thread::sleep(Duration::from_millis(20));
    for (i, block) in fresh.iter().enumerate() {
        assert!(block.iter().all(|&byte| byte == i as u8));
    }
    // No cancelled receive took the bytes.
    for (ours, _) in &mut pairs {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = drain(ours);
        while got.len() < 100 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
            got.extend(drain(ours));
        }
        assert_eq!(got, [b'x'; 100]);
    }
    drop(kernel_ring);
    drop(quarantine);
}

#[test]
fn dropping_the_ring_with_reads_in_flight_frees_no_buffer_the_kernel_writes() {
    drop_with_reads_in_flight("drop_reads_in_flight", false);
}

#[test]
fn dropping_the_ring_drains_even_while_the_kernel_ring_lives_on() {
    drop_with_reads_in_flight("drop_reads_kernel_ring_alive", true);
}

#[test]
fn dropping_the_ring_with_receives_armed_closes_its_fds_and_frees_every_buffer() {
    const SIZE: usize = 2999;
    const PAIRS: usize = 200;
    let Some(_running) = start("drop_receives_armed", 120) else {
        return;
    };
    let mut pairs: Vec<_> = (0..PAIRS).map(|_| pair()).collect();
    let fds_before = open_fds().len();
    let quarantine = Quarantined::start(SIZE);
    // A small ring: the drop's cancellations overflow the submission queue
    // and the cancelled receives the completion queue.
    let mut ring = Ring::new(4).unwrap();
    assert_eq!(open_fds().len(), fds_before + 2, "the ring and its eventfd");
    for (token, (ours, _)) in pairs.iter().enumerate() {
        ring.recv(ours.as_fd(), vec![0u8; SIZE], token as u64)
            .unwrap();
    }
    ring.submit().unwrap();
    assert_eq!(ring.in_flight(), PAIRS);
    drop(ring);
    assert_eq!(
        open_fds().len(),
        fds_before,
        "the ring's descriptors are closed"
    );
    assert_eq!(
        quarantine.check(),
        (PAIRS, 0),
        "every buffer is freed, none leaked"
    );
    drop(quarantine);

    // The sockets are untouched: open, and the peers' bytes all arrive.
    for (i, (_, peer)) in pairs.iter_mut().enumerate() {
        peer.write_all(&(i as u32).to_le_bytes()).unwrap();
    }
    for (i, (ours, _)) in pairs.iter_mut().enumerate() {
        ours.set_nonblocking(false).unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = [0u8; 4];
        ours.read_exact(&mut got).unwrap();
        assert_eq!(u32::from_le_bytes(got), i as u32);
    }
}

#[test]
fn ten_thousand_cancel_races_lose_no_byte() {
    const ROUNDS: usize = 10_000;
    let Some(_running) = start("cancel_races", 300) else {
        return;
    };
    let mut ring = Ring::new(8).unwrap();
    let (mut ours, mut peer) = pair();
    // Completions run on the thread that submitted, on its way back from a
    // system call: a write from this thread lands before or after the
    // cancel in program order; one from another thread lands anywhere.
    let mut remote_peer = peer.try_clone().unwrap();
    let (go, write_now) = mpsc::channel::<()>();
    let remote = thread::spawn(move || {
        let mut written = 0usize;
        while write_now.recv().is_ok() {
            remote_peer.write_all(b"x").unwrap();
            written += 1;
        }
        written
    });
    let mut buf = vec![0u8; 16];
    let address = buf.as_ptr();
    let (mut received, mut won, mut cancelled) = (0usize, 0usize, 0usize);
    let mut others = Vec::new();
    for round in 0..ROUNDS {
        buf.fill(0);
        let op = ring.recv(ours.as_fd(), buf, round as u64).unwrap();
        // Sixteen orders: the recv submitted before the race or with the
        // cancel; the byte written before or after the cancel; the
        // cancel submitted at once or at the wait; the byte written here
        // or by the other thread.
        if round & 1 != 0 {
            ring.submit().unwrap();
        }
        let write = |peer: &mut TcpStream| {
            if round & 8 != 0 {
                go.send(()).unwrap();
            } else {
                peer.write_all(b"x").unwrap();
            }
        };
        if round & 2 != 0 {
            write(&mut peer);
        }
        ring.cancel(op).unwrap();
        if round & 4 != 0 {
            ring.submit().unwrap();
        }
        if round & 2 == 0 {
            write(&mut peer);
        }
        let done = finish(&mut ring, op, &mut others);
        assert!(
            others.is_empty(),
            "round {round}: stray completions {others:?}"
        );
        assert_eq!(done.token, round as u64);
        buf = done.buf.expect("the last completion gives the buffer back");
        assert_eq!(
            buf.as_ptr(),
            address,
            "round {round}: another buffer came back"
        );
        assert_eq!(buf.len(), 16);
        match done.result {
            Ok(n) => {
                let n = n as usize;
                assert!(n > 0, "round {round}: end of stream from a live peer");
                assert!(
                    buf[..n].iter().all(|&byte| byte == b'x'),
                    "round {round}: {buf:?}"
                );
                assert!(
                    buf[n..].iter().all(|&byte| byte == 0),
                    "round {round}: {buf:?}"
                );
                received += n;
                won += 1;
            }
            Err(_) if is_canceled(&done.result) => {
                assert!(buf.iter().all(|&byte| byte == 0), "round {round}: {buf:?}");
                cancelled += 1;
            }
            Err(error) => panic!("round {round}: neither bytes nor ECANCELED: {error}"),
        }
        assert_eq!(ring.in_flight(), 0);
        // A late completion would show up here.
        ring.complete(|completion| others.push(completion)).unwrap();
        assert!(
            others.is_empty(),
            "round {round}: completion after the last: {others:?}"
        );
    }
    drop(go);
    let remote_writes = remote.join().unwrap();
    assert_eq!(remote_writes, ROUNDS / 2);
    // The bytes of the rounds the cancel won are still in the socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = drain(&mut ours);
    while received + left.len() < ROUNDS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
        left.extend(drain(&mut ours));
    }
    assert!(left.iter().all(|&byte| byte == b'x'));
    assert_eq!(
        received + left.len(),
        ROUNDS,
        "{won} won, {cancelled} cancelled"
    );
    assert_eq!(won + cancelled, ROUNDS);
    assert!(cancelled > 0, "no cancel won: the races were not run");
    assert!(won > 0, "no recv won: the races were not run");
    let _ = writeln!(
        io::stderr(),
        "cancel races: {won} recvs won, {cancelled} cancelled"
    );
}

#[test]
fn send_of_one_mebibyte_arrives_whole_resuming_partial_sends() {
    const LEN: usize = 1 << 20;
    let Some(_running) = start("send_mebibyte", 120) else {
        return;
    };
    let mut ring = Ring::new(8).unwrap();
    let (ours, mut peer) = pair();
    peer.set_nonblocking(true).unwrap();
    // A small send buffer, so that sends stop short and are resumed.
    let size: libc::c_int = 16 * 1024;
    // SAFETY: `size` is a live c_int and its length is passed with it.
    let set = unsafe {
        libc::setsockopt(
            ours.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_SNDBUF: {}", io::Error::last_os_error());
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let mut buf = data.clone();
    let address = buf.as_ptr();
    let (mut start, mut sends) = (0, 0);
    let mut got = Vec::with_capacity(LEN);
    let mut others = Vec::new();
    // One thread reads the peer between short waits: the event loop's
    // shape (and no thread has to run while another blocks in the ring).
    while start < LEN {
        let op = ring.send(ours.as_fd(), buf, start, sends).unwrap();
        let done = finish_stepping(
            &mut ring,
            op,
            &mut others,
            Duration::from_millis(10),
            || got.extend(drain(&mut peer)),
        );
        buf = done.buf.expect("the last completion gives the buffer back");
        assert_eq!(buf.as_ptr(), address);
        let n = done.result.unwrap() as usize;
        assert!(n > 0 && start + n <= LEN, "sent {n} at {start}");
        start += n;
        sends += 1;
    }
    assert!(others.is_empty());
    assert_eq!(ring.in_flight(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < LEN && Instant::now() < deadline {
        got.extend(drain(&mut peer));
    }
    assert_eq!(got.len(), LEN);
    assert!(got == data, "the peer received other bytes than were sent");
    assert!(
        sends > 1,
        "a 32 KiB send buffer took 1 MiB at once: nothing was resumed"
    );
    let _ = writeln!(io::stderr(), "send: 1 MiB in {sends} sends");
}

/// Whether this process runs under valgrind (which preloads its own
/// libraries).
fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|preload| preload.contains("vgpreload"))
}

#[test]
fn a_waker_from_another_thread_ends_a_wait_without_timeout() {
    let Some(_running) = start("waker", 60) else {
        return;
    };
    let mut ring = Ring::new(8).unwrap();
    // A wake before the wait counts for it, from this thread or another.
    ring.waker().wake().unwrap();
    ring.wait(None).unwrap();
    let mut handed_out = 0;
    ring.complete(|_| handed_out += 1).unwrap();
    assert_eq!(
        handed_out, 0,
        "the waker's own completion is not handed out"
    );
    let waker = ring.waker();
    thread::spawn(move || waker.wake()).join().unwrap().unwrap();
    ring.wait(None).unwrap();
    ring.complete(|_| handed_out += 1).unwrap();

    if under_valgrind() {
        // valgrind (3.19 at least) keeps its one-thread-at-a-time lock
        // through io_uring_enter: the waking thread would never run.
        let _ = writeln!(
            io::stderr(),
            "waker: a wake from another thread during a blocked wait: skipped under valgrind, \
             which runs no other thread while one waits in io_uring_enter"
        );
    } else {
        for _ in 0..3 {
            let waker = ring.waker();
            let waking = thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                waker.wake()
            });
            // Returns only once woken (the watchdog bounds it).
            ring.wait(None).unwrap();
            ring.complete(|_| handed_out += 1).unwrap();
            waking.join().unwrap().unwrap();
        }
    }
    assert_eq!(handed_out, 0);
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn multishot_poll_reports_readiness_with_more_until_cancelled() {
    let Some(_running) = start("multishot_poll", 60) else {
        return;
    };
    let mut ring = Ring::new(8).unwrap();
    let (mut ours, mut peer) = pair();
    let op = ring.poll(ours.as_fd(), POLLIN, 5).unwrap();
    let mut seen = Vec::new();
    for round in 0..3u8 {
        peer.write_all(&[round; 10]).unwrap();
        while seen.is_empty() {
            ring.wait(Some(Duration::from_secs(10))).unwrap();
            ring.complete(|completion| seen.push(completion)).unwrap();
        }
        for completion in seen.drain(..) {
            assert_eq!(completion.op, op);
            assert_eq!(completion.token, 5);
            assert!(completion.more, "the poll stays armed");
            assert!(completion.buf.is_none());
            assert_ne!(completion.result.unwrap() & POLLIN, 0);
        }
        // Edge-triggered: read all, so the next write is a new edge.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = drain(&mut ours);
        while got.len() < 10 && Instant::now() < deadline {
            got.extend(drain(&mut ours));
        }
        assert_eq!(got, [round; 10]);
    }
    assert_eq!(ring.in_flight(), 1);
    ring.cancel(op).unwrap();
    let last = finish(&mut ring, op, &mut seen);
    assert!(seen
        .iter()
        .all(|completion| completion.more && completion.op == op));
    assert!(!last.more);
    assert!(is_canceled(&last.result), "{:?}", last.result);
    assert_eq!(ring.in_flight(), 0);
    // The id is stale now: cancelling it again does nothing.
    ring.cancel(op).unwrap();
    ring.wait(Some(Duration::ZERO)).unwrap();
    ring.complete(|completion| panic!("stale cancel completed {completion:?}"))
        .unwrap();
}

#[test]
fn completions_beyond_the_completion_queue_are_all_delivered_while_queueing_goes_on() {
    const PAIRS: usize = 64;
    let Some(_running) = start("overflow", 60) else {
        return;
    };
    // Room for 4 submissions and 8 completions: the kernel holds the rest.
    let mut ring = Ring::new(4).unwrap();
    let mut pairs: Vec<_> = (0..PAIRS).map(|_| pair()).collect();
    let mut finals = vec![0usize; 2 * PAIRS];
    let check = |completion: Completion, finals: &mut Vec<usize>| {
        assert!(!completion.more);
        let token = completion.token as usize;
        finals[token] += 1;
        let n = completion.result.unwrap() as usize;
        let buf = completion.buf.unwrap();
        assert_eq!(&buf[..n], &(token as u32).to_le_bytes(), "token {token}");
    };
    for (i, (ours, _)) in pairs.iter().enumerate() {
        ring.recv(ours.as_fd(), vec![0u8; 16], i as u64).unwrap();
    }
    ring.submit().unwrap();
    for (i, (_, peer)) in pairs.iter_mut().enumerate() {
        peer.write_all(&(i as u32).to_le_bytes()).unwrap();
    }
    thread::sleep(Duration::from_millis(20));
    ring.submit().unwrap();
    // Queue more while the first completions wait unreaped.
    for (i, (ours, _)) in pairs.iter().enumerate() {
        ring.recv(ours.as_fd(), vec![0u8; 16], (PAIRS + i) as u64)
            .unwrap();
    }
    ring.submit().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut written_again = false;
    while finals.iter().sum::<usize>() < 2 * PAIRS && Instant::now() < deadline {
        ring.complete(|completion| check(completion, &mut finals))
            .unwrap();
        if !written_again && finals[..PAIRS].iter().all(|&count| count == 1) {
            // The second receives are armed only now that the first are
            // done: their bytes come after.
            for (i, (_, peer)) in pairs.iter_mut().enumerate() {
                peer.write_all(&((PAIRS + i) as u32).to_le_bytes()).unwrap();
            }
            written_again = true;
        }
        ring.wait(Some(Duration::from_millis(10))).unwrap();
    }
    ring.complete(|completion| check(completion, &mut finals))
        .unwrap();
    assert!(
        finals.iter().all(|&count| count == 1),
        "final completions per op: {finals:?}"
    );
    assert_eq!(ring.in_flight(), 0);
}
