//! `xev::rt::Pool`: workers, `run`, both accept modes under load, balance,
//! and graceful shutdown (in-process, and of `examples/hyper_multicore.rs`
//! in a child process that gets a real `SIGTERM`).
//!
//! Every test body that blocks runs under [`bounded`], and every client
//! socket has a read timeout: a lost wake-up fails the test instead of
//! hanging it. Four workers on a two-core machine is fine: unpinned
//! workers share the CPUs.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use xev::rt::{AcceptMode, Pool, Worker};

mod common;

#[allow(dead_code)] // its `main`
#[path = "../examples/hyper_multicore.rs"]
mod hyper_multicore;

/// Runs `body` on a thread of its own and fails the test if it takes
/// longer than `limit` (the thread is left behind; the test process ends
/// with the failure).
fn bounded<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(body));
        let _ = done_tx.send(());
        result
    });
    if done_rx.recv_timeout(limit).is_err() {
        panic!("{what}: still running after {limit:?}");
    }
    match thread.join().expect("the bounded thread catches panics") {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// A blocking client connection with generous timeouts.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// Per-worker counters a handler can bump from any worker.
fn counters(workers: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect())
}

fn snapshot(counts: &[AtomicUsize]) -> Vec<usize> {
    counts
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect()
}

/// Echoes what the connection sends until it closes, counting it to the
/// worker that runs it.
fn counting_echo(
    counts: Arc<Vec<AtomicUsize>>,
) -> impl Fn(
    xev::net::TcpStream,
    SocketAddr,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
       + Send
       + Sync
       + 'static {
    move |stream, _peer| {
        let worker = Worker::current().expect("handlers run on a worker");
        counts[worker.index()].fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let mut buf = [0; 1024];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    }
}

#[test]
fn run_on_four_workers_returns_four_distinct_indices_in_order() {
    bounded(Duration::from_secs(20), "pool.run", || {
        let pool = Pool::builder().threads(4).build().unwrap();
        assert_eq!(pool.threads(), 4);
        let seen = pool.run(|worker| async move {
            // Each worker is a runtime of its own: a task runs on it.
            let on_worker = xev::rt::spawn(async { Worker::current() }).await.unwrap();
            let thread = std::thread::current().name().map(str::to_owned);
            (worker.index(), worker.count(), on_worker, thread)
        });
        let indices: Vec<usize> = seen.iter().map(|seen| seen.0).collect();
        assert_eq!(indices, [0, 1, 2, 3]);
        for (index, count, on_worker, thread) in &seen {
            assert_eq!(*count, 4);
            assert_eq!(on_worker.map(|worker| worker.index()), Some(*index));
            assert_eq!(
                thread.as_deref(),
                Some(format!("xev-worker-{index}").as_str())
            );
        }
        assert_eq!(Worker::current(), None, "the caller's thread is no worker");
    });
}

#[test]
fn a_worker_panic_is_reported_and_the_other_workers_are_stopped() {
    bounded(Duration::from_secs(20), "a panicking run", || {
        let pool = Pool::builder().threads(4).build().unwrap();
        let dropped = counters(1);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let dropped = dropped.clone();
            pool.run(move |worker| {
                // Counts the futures dropped unfinished: the panic's
                // victims.
                struct OnDrop(Arc<Vec<AtomicUsize>>);
                impl Drop for OnDrop {
                    fn drop(&mut self) {
                        self.0[0].fetch_add(1, Ordering::SeqCst);
                    }
                }
                let guard = OnDrop(dropped.clone());
                async move {
                    let _guard = guard;
                    if worker.index() == 2 {
                        xev::time::sleep(Duration::from_millis(20)).await;
                        panic!("worker 2 failed");
                    }
                    std::future::pending::<()>().await
                }
            })
        }));
        let payload = result.expect_err("run reports the panic");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker 2 failed"));
        // The three waiting workers were cancelled (and the panicking one
        // unwound): every future is dropped soon after.
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped[0].load(Ordering::SeqCst) < 4 {
            assert!(Instant::now() < deadline, "the other workers kept running");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The pool is still usable.
        assert_eq!(
            pool.run(|worker| async move { worker.index() }),
            [0, 1, 2, 3]
        );
    });
}

#[test]
fn zero_threads_is_an_error_that_says_what_to_do() {
    let error = Pool::builder().threads(0).build().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.to_string().contains("threads(n)"), "{error}");
}

#[cfg(target_os = "linux")]
#[test]
fn pinning_gives_each_worker_its_own_allowed_cpu_and_refuses_more_workers_than_cpus() {
    bounded(Duration::from_secs(20), "pinned pools", || {
        // Pinned without a thread count: a worker per allowed CPU.
        let allowed = Pool::builder().pin_cores(true).build().unwrap().threads();
        assert!(allowed >= 1);
        let error = Pool::builder()
            .threads(allowed + 1)
            .pin_cores(true)
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(error.to_string().contains("pin_cores(false)"), "{error}");

        let pool = Pool::builder()
            .threads(allowed)
            .pin_cores(true)
            .build()
            .unwrap();
        let cpus = pool.run(|_| async {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_owned()
        });
        for cpu in &cpus {
            assert!(
                cpu.parse::<usize>().is_ok(),
                "a worker may run on {cpu:?}, not one CPU"
            );
        }
        let mut distinct = cpus.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), allowed, "workers share CPUs: {cpus:?}");
    });
}

/// 1,000 short connections, one after another from one client thread: each
/// sends 8 bytes and must get them back.
fn thousand_short_connections(mode: AcceptMode) -> Vec<usize> {
    const WORKERS: usize = 4;
    const CONNECTIONS: usize = 1000;
    let pool = Pool::builder().threads(WORKERS).build().unwrap();
    let server = pool.bind("127.0.0.1:0", mode).unwrap();
    let addr = server.local_addr().unwrap();
    let counts = counters(WORKERS);
    let shutdown = pool.shutdown_handle();
    let client = std::thread::spawn(move || {
        let result = (0..CONNECTIONS).try_for_each(|n| {
            let mut stream = connect(addr)?;
            let message = (n as u64).to_le_bytes();
            stream.write_all(&message)?;
            let mut echo = [0; 8];
            stream.read_exact(&mut echo)?;
            assert_eq!(echo, message, "connection {n} got another's bytes");
            Ok::<_, io::Error>(())
        });
        shutdown.shutdown(Duration::from_secs(5));
        result
    });
    server.serve(counting_echo(counts.clone())).unwrap();
    client.join().unwrap().expect("every connection echoes");
    let per_worker = snapshot(&counts);
    println!("{mode:?}: connections per worker {per_worker:?}");
    assert_eq!(per_worker.iter().sum::<usize>(), CONNECTIONS);
    per_worker
}

#[test]
fn reuseport_echoes_a_thousand_short_connections() {
    bounded(
        Duration::from_secs(60),
        "ReusePort, 1,000 connections",
        || {
            thousand_short_connections(AcceptMode::ReusePort);
        },
    );
}

#[test]
fn acceptor_echoes_a_thousand_short_connections_on_every_worker() {
    bounded(
        Duration::from_secs(60),
        "Acceptor, 1,000 connections",
        || {
            let per_worker = thousand_short_connections(AcceptMode::Acceptor);
            assert!(per_worker.iter().all(|&n| n > 0), "{per_worker:?}");
        },
    );
}

#[test]
fn acceptor_spreads_64_long_lived_connections_within_one_of_even() {
    bounded(Duration::from_secs(30), "64 long-lived connections", || {
        const WORKERS: usize = 4;
        let pool = Pool::builder().threads(WORKERS).build().unwrap();
        let server = pool.bind("127.0.0.1:0", AcceptMode::Acceptor).unwrap();
        let addr = server.local_addr().unwrap();
        let counts = counters(WORKERS);
        let shutdown = pool.shutdown_handle();
        let client = std::thread::spawn({
            let counts = counts.clone();
            move || {
                // Each connection makes a round trip, so its handler runs,
                // and stays open.
                let streams = (0..64)
                    .map(|_| {
                        let mut stream = connect(addr)?;
                        stream.write_all(b"x")?;
                        stream.read_exact(&mut [0])?;
                        Ok(stream)
                    })
                    .collect::<io::Result<Vec<_>>>();
                let per_worker = snapshot(&counts);
                shutdown.shutdown(Duration::from_secs(5));
                streams.map(|_| per_worker)
            }
        });
        server.serve(counting_echo(counts)).unwrap();
        let per_worker = client
            .join()
            .unwrap()
            .expect("64 connections make a round trip");
        println!("Acceptor: 64 live connections per worker {per_worker:?}");
        assert_eq!(per_worker.iter().sum::<usize>(), 64);
        let (min, max) = (
            per_worker.iter().min().unwrap(),
            per_worker.iter().max().unwrap(),
        );
        assert!(max - min <= 1, "uneven: {per_worker:?}");
    });
}

/// A slow handler is mid-request when the shutdown starts: it still
/// answers, new connections are refused, and `serve` returns.
fn shutdown_lets_a_slow_request_finish(mode: AcceptMode) {
    let pool = Pool::builder().threads(2).build().unwrap();
    let server = pool.bind("127.0.0.1:0", mode).unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = pool.shutdown_handle();
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    let client = std::thread::spawn(move || {
        let mut slow = connect(addr).unwrap();
        slow.write_all(b"?").unwrap();
        started_rx.recv().unwrap();
        let shutdown_at = Instant::now();
        shutdown.shutdown(Duration::from_secs(5));
        // Refused (or reset) from the moment the listeners are closed.
        let refused = refused_soon(addr);
        let mut reply = Vec::new();
        slow.read_to_end(&mut reply).unwrap();
        (reply, refused, shutdown_at.elapsed())
    });
    server
        .serve(move |stream, _peer| {
            let started = started_tx.clone();
            async move {
                let mut request = [0];
                if stream.read_exact(&mut request).await.is_ok() {
                    let _ = started.try_send(());
                    xev::time::sleep(Duration::from_millis(300)).await;
                    let _ = stream.write_all(b"slow reply").await;
                }
            }
        })
        .unwrap();
    let (reply, refused, took) = client.join().unwrap();
    assert_eq!(reply, b"slow reply");
    refused.expect("a connection after the shutdown is refused or reset");
    assert!(
        took < Duration::from_secs(5),
        "the reply waited for the grace period: {took:?}"
    );
}

/// Tries connections for up to 2 s until one is refused or reset (one
/// that gets through was accepted before every listener closed).
fn refused_soon(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match connect(addr) {
            // A connect racing the close can be reset instead of refused.
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(())
            }
            Err(error) => return Err(format!("connect failed otherwise: {error}")),
            Ok(mut stream) => {
                let _ = stream.write_all(b"?");
                let mut buf = [0; 16];
                match stream.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Err(error) if error.kind() == ErrorKind::ConnectionReset => return Ok(()),
                    _ => {}
                }
            }
        }
        if Instant::now() > deadline {
            return Err("connections still accepted 2 s after the shutdown".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn reuseport_shutdown_lets_a_slow_request_finish_and_refuses_new_connections() {
    bounded(Duration::from_secs(30), "ReusePort shutdown", || {
        shutdown_lets_a_slow_request_finish(AcceptMode::ReusePort)
    });
}

#[test]
fn acceptor_shutdown_lets_a_slow_request_finish_and_refuses_new_connections() {
    bounded(Duration::from_secs(30), "Acceptor shutdown", || {
        shutdown_lets_a_slow_request_finish(AcceptMode::Acceptor)
    });
}

#[test]
fn handlers_still_running_when_the_grace_period_ends_are_aborted() {
    bounded(Duration::from_secs(30), "grace expiry", || {
        for mode in [AcceptMode::ReusePort, AcceptMode::Acceptor] {
            let pool = Pool::builder().threads(2).build().unwrap();
            let server = pool.bind("127.0.0.1:0", mode).unwrap();
            let addr = server.local_addr().unwrap();
            let shutdown = pool.shutdown_handle();
            let (started_tx, started_rx) = mpsc::sync_channel(4);
            let client = std::thread::spawn(move || {
                let mut stream = connect(addr).unwrap();
                stream.write_all(b"?").unwrap();
                started_rx.recv().unwrap();
                let start = Instant::now();
                shutdown.shutdown(Duration::from_millis(200));
                // The handler never answers: the abort closes the socket.
                let mut rest = Vec::new();
                let end = stream.read_to_end(&mut rest).map(|_| rest);
                (end, start.elapsed())
            });
            server
                .serve(move |stream, _peer| {
                    let started = started_tx.clone();
                    async move {
                        let mut request = [0];
                        let _ = stream.read_exact(&mut request).await;
                        let _ = started.try_send(());
                        xev::time::sleep(Duration::from_secs(60)).await;
                        let _ = stream.write_all(b"too late").await;
                    }
                })
                .unwrap();
            let (end, took) = client.join().unwrap();
            match end {
                Ok(bytes) => assert!(bytes.is_empty(), "{mode:?}: got {bytes:?}"),
                Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset),
            }
            assert!(
                took >= Duration::from_millis(200),
                "{mode:?}: aborted early: {took:?}"
            );
            assert!(
                took < Duration::from_secs(10),
                "{mode:?}: not aborted: {took:?}"
            );
        }
    });
}

#[test]
fn serve_after_a_shutdown_returns_at_once_and_closes_its_port() {
    bounded(Duration::from_secs(20), "serve after shutdown", || {
        let pool = Pool::builder().threads(2).build().unwrap();
        let shutdown = pool.shutdown_handle();
        assert!(!shutdown.is_requested());
        shutdown.shutdown(Duration::from_secs(1));
        assert!(shutdown.is_requested());
        let server = pool.bind("127.0.0.1:0", AcceptMode::ReusePort).unwrap();
        let addr = server.local_addr().unwrap();
        server.serve(|_stream, _peer| async {}).unwrap();
        let error = TcpStream::connect(addr).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn binding_a_port_in_use_fails_with_addr_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pool = Pool::builder().threads(2).build().unwrap();
    for mode in [AcceptMode::ReusePort, AcceptMode::Acceptor] {
        let error = pool.bind(taken.local_addr().unwrap(), mode).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AddrInUse, "{mode:?}");
    }
}

// ---------------------------------------------------------------------------
// examples/hyper_multicore.rs in a child process, stopped by SIGTERM.

const EXAMPLE_CHILD: &str = "hyper_multicore_child";
/// The example's grace period in the test.
const EXAMPLE_GRACE: Duration = Duration::from_secs(2);

/// The child's part: the example's `run`, in this fresh process.
#[test]
fn hyper_multicore_child() {
    if !common::child::is_child(EXAMPLE_CHILD) {
        return; // run by the test below, in a child process
    }
    let mode = match std::env::var("XEV_EXAMPLE_MODE").as_deref() {
        Ok("acceptor") => AcceptMode::Acceptor,
        _ => AcceptMode::ReusePort,
    };
    let options = hyper_multicore::Options {
        threads: 2,
        mode,
        addr: "127.0.0.1:0".to_owned(),
        grace: EXAMPLE_GRACE,
    };
    hyper_multicore::run(&options, |addr| println!("listening on http://{addr}")).unwrap();
}

/// Sends one HTTP/1.1 request and reads the whole response.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut stream = connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[cfg(unix)]
fn example_stops_gracefully_on_sigterm(mode: &str) {
    use std::process::Child;

    let mut child: Child =
        common::child::start(EXAMPLE_CHILD, &[("XEV_EXAMPLE_MODE", mode.to_owned())]);
    let mut lines = common::child::Lines::of(&mut child);
    let addr = lines.address_after("listening on http://");
    assert!(http_get(addr, "/").unwrap().ends_with("Hello, World!\n"));

    let slow = std::thread::spawn(move || http_get(addr, "/slow?ms=300"));
    std::thread::sleep(Duration::from_millis(100)); // the request is in
    common::child::terminate(&child);
    let signalled = Instant::now();

    std::thread::sleep(Duration::from_millis(100));
    let refused = refused_soon(addr);

    let status = common::child::exit_by(
        &mut child,
        signalled + EXAMPLE_GRACE + Duration::from_secs(1),
        "the example still runs grace + 1 s after SIGTERM",
    );
    let response = slow.join().unwrap().expect("the slow request is answered");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("slept 300 ms\n"), "{response}");
    refused.expect("a connection after SIGTERM is refused or reset");
    let output = lines.all();
    assert!(
        status.success(),
        "the example exited with {status}\n{output}"
    );
    assert!(
        output.contains("1 passed"),
        "the child ran no test:\n{output}"
    );
}

#[cfg(unix)]
#[test]
fn hyper_multicore_example_finishes_a_slow_request_on_sigterm_and_exits_0() {
    bounded(
        Duration::from_secs(60),
        "the example's graceful shutdown",
        || {
            example_stops_gracefully_on_sigterm("reuseport");
            example_stops_gracefully_on_sigterm("acceptor");
        },
    );
}
