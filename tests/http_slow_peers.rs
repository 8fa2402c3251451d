//! Slow and stalled peers cannot hold the hyper example's server: clients
//! trickling request heads (slowloris) and idle keep-alive connections are
//! cut off by hyper's header timeout on `xev::hyper::Timer`, and a client
//! that never reads its responses by `xev::hyper::Io`'s write timeout, with
//! the server's memory bounded meanwhile.
//!
//! Each test runs the server of `examples/hyper_server.rs` in a child
//! process (this binary, re-run for that one test), so that its file
//! descriptors and memory are counted apart from the clients'. The clients
//! are tokio, hyper's client and blocking `std::net` sockets in this
//! process. The child serves for a minute at most and is killed when its
//! test ends, pass or fail. Linux only: counts come from `/proc`.
#![cfg(target_os = "linux")]

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::child::{self, is_child};
use common::http;

#[allow(dead_code)] // its `main`
#[path = "../examples/hyper_server.rs"]
mod hyper_server;

use hyper_server::{Limits, Protocol};

/// The tests measure latencies and time limits on a small machine: one at
/// a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The header timeout and write timeout of the servers under test.
const TIMEOUT: Duration = Duration::from_secs(1);

/// In the child: serves HTTP/1.1 with `limits` on an ephemeral port, says
/// where, and serves for a minute at most (the parent kills it sooner).
fn serve_in_child(limits: Limits) {
    xev::rt::block_on(async {
        let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        let serve = hyper_server::serve(listener, Protocol::Http1, limits);
        let _ = xev::time::timeout(Duration::from_secs(60), serve).await;
    });
}

/// The server's process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts this binary's test `test` as the server's process and waits
    /// (10 s at most) for its address.
    fn start(test: &str) -> Server {
        let mut child = child::start(test, &[]);
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // After libtest's "test NAME ... ", on the same line.
                if let Some((_, addr)) = line.split_once("listening on ") {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().expect("an address"));
                }
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        // On failure, dropping `server` kills the child.
        server.addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server's process says where it listens within 10 s");
        server
    }

    fn proc_path(&self, file: &str) -> String {
        format!("/proc/{}/{file}", self.child.id())
    }

    /// How many fds the server's process has open.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(self.proc_path("fd"))
            .expect("list the server's fds")
            .count()
    }

    /// The server's resident memory, in KiB.
    fn rss_kib(&self) -> usize {
        let status = std::fs::read_to_string(self.proc_path("status")).expect("read its status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// Waits (5 s at most) for the server's fd count to come back to
    /// `baseline`.
    fn assert_fds_return_to(&self, baseline: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.open_fds() != baseline {
            assert!(
                Instant::now() < deadline,
                "the server still has {} fds open 5 s later, {baseline} before the test",
                self.open_fds()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `q`-quantile of `samples`.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index]
}

/// One slowloris connection: sends a request head one byte every 200 ms
/// and returns how long after it began connecting the server closed the
/// connection (the server's clock cannot start earlier). Fails if the
/// whole head (a few seconds' worth) got out.
async fn slowloris(addr: SocketAddr) -> Duration {
    let connecting = Instant::now();
    let stream = http::bounded("connect", tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: {}\r\n\r\n",
        "z".repeat(40)
    );
    let trickle = async {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                // Reset by the server: the read side sees it too.
                return std::future::pending().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let closed = async {
        let mut buf = [0; 1024];
        // A response (a 408, say) may come before the close.
        while let Ok(1..) = reader.read(&mut buf).await {}
    };
    tokio::select! {
        () = closed => connecting.elapsed(),
        () = trickle => panic!("the server let a slowloris client send its whole head"),
    }
}

/// 200 connections each send one header byte every 200 ms against a 1 s
/// header timeout: the server closes every one of them 1 to 1.5 s after it
/// began connecting, a normal client's requests keep succeeding meanwhile
/// (p99 under 250 ms: a debug build on two shared cores; the timeouts
/// are the point, not the latency), and the server's fd count returns to
/// what it was.
#[test]
fn slowloris_connections_are_cut_off_by_the_header_timeout() {
    const NAME: &str = "slowloris_connections_are_cut_off_by_the_header_timeout";
    if is_child(NAME) {
        return serve_in_child(Limits {
            header_read_timeout: TIMEOUT,
            ..Limits::default()
        });
    }
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let server = Server::start(NAME);
    let addr = server.addr;
    let baseline = server.open_fds();

    let (lifetimes, mut latencies, peak_fds) = http::on_tokio(async {
        let done = Arc::new(AtomicBool::new(false));
        let normal = tokio::spawn({
            let done = done.clone();
            async move {
                let mut sender = http::connect_http1(addr).await;
                let mut latencies = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let (status, body) = sender.send(http::request("/", None)).await;
                    latencies.push(start.elapsed());
                    assert_eq!(
                        (status, &body[..]),
                        (StatusCode::OK, &b"Hello, World!\n"[..])
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                latencies
            }
        });
        let slow: Vec<_> = (0..200).map(|_| tokio::spawn(slowloris(addr))).collect();
        tokio::time::sleep(TIMEOUT / 2).await;
        let peak_fds = server.open_fds();
        let mut lifetimes = Vec::new();
        for connection in slow {
            let lifetime = http::bounded("a slowloris connection's close", connection)
                .await
                .expect("a slowloris task failed");
            lifetimes.push(lifetime);
        }
        done.store(true, Ordering::Relaxed);
        let latencies = http::bounded("the normal client", normal)
            .await
            .expect("the normal client failed");
        (lifetimes, latencies, peak_fds)
    });

    assert!(
        peak_fds >= baseline + 200,
        "the server held {peak_fds} fds with 200 slow clients connected, {baseline} before"
    );
    let earliest = lifetimes.iter().min().unwrap();
    let latest = lifetimes.iter().max().unwrap();
    assert!(
        *earliest >= TIMEOUT,
        "a slowloris connection was closed after {earliest:?}, before the header timeout"
    );
    assert!(
        *latest <= TIMEOUT * 3 / 2,
        "a slowloris connection was still open {latest:?} after connecting (timeout {TIMEOUT:?})"
    );
    assert!(
        latencies.len() >= 20,
        "only {} normal requests",
        latencies.len()
    );
    let p99 = quantile(&mut latencies, 0.99);
    assert!(
        p99 < Duration::from_millis(250),
        "normal requests: p99 {p99:?} over {} requests while slowloris ran",
        latencies.len()
    );
    println!(
        "slowloris closed after {earliest:?}..{latest:?}; normal requests: {} with p50 {:?}, p99 {p99:?}",
        latencies.len(),
        quantile(&mut latencies, 0.5)
    );
    server.assert_fds_return_to(baseline);
}

/// A keep-alive connection left idle after a response is closed by the
/// server once the header timeout has passed (hyper waits for the next
/// request head under that clock): hyper's client sees its connection end
/// 1 to 1.5 s after its last response.
#[test]
fn idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    const NAME: &str = "idle_keep_alive_connection_is_closed_after_the_header_timeout";
    if is_child(NAME) {
        return serve_in_child(Limits {
            header_read_timeout: TIMEOUT,
            ..Limits::default()
        });
    }
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let server = Server::start(NAME);
    let baseline = server.open_fds();
    let idle = http::on_tokio(async {
        let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        let connection = tokio::spawn(connection);
        for _ in 0..3 {
            sender.ready().await.unwrap();
            let response =
                http::bounded("a response", sender.send_request(http::request("/", None)))
                    .await
                    .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap();
        }
        let last_response = Instant::now();
        http::bounded("the server closing the idle connection", connection)
            .await
            .expect("the connection task")
            .expect("a clean close");
        last_response.elapsed()
    });
    assert!(
        idle >= TIMEOUT - Duration::from_millis(50) && idle <= TIMEOUT * 3 / 2,
        "the idle connection was closed {idle:?} after its last response (timeout {TIMEOUT:?})"
    );
    server.assert_fds_return_to(baseline);
}

/// Clients that pipeline requests for 256 KiB responses and never read:
/// the server stops taking their requests once it cannot write (its memory
/// stays bounded), and disconnects each of them once its write has been
/// stalled for the 1 s write timeout. Afterwards its fd count is back to
/// what it was.
#[test]
fn client_that_never_reads_is_disconnected_with_bounded_memory() {
    const NAME: &str = "client_that_never_reads_is_disconnected_with_bounded_memory";
    const CLIENTS: usize = 8;
    const BODY: usize = 256 * 1024;
    if is_child(NAME) {
        return serve_in_child(Limits {
            write_timeout: TIMEOUT,
            ..Limits::default()
        });
    }
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let server = Server::start(NAME);
    let baseline_fds = server.open_fds();
    let baseline_rss = server.rss_kib();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || never_read(addr, BODY))
        })
        .collect();
    // Sample the server's memory while the clients push.
    let mut peak_rss = baseline_rss;
    while !clients.iter().all(|client| client.is_finished()) {
        peak_rss = peak_rss.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sent = 0;
    for client in clients {
        let (bytes, stalled) = client.join().expect("a never-reading client failed");
        assert!(
            stalled,
            "the client was disconnected before its writes stalled"
        );
        sent += bytes;
    }
    let growth_mib = (peak_rss - baseline_rss) / 1024;
    println!(
        "{CLIENTS} never-reading clients sent {} MiB before being cut off; server RSS grew by {growth_mib} MiB at most",
        sent >> 20
    );
    assert!(
        growth_mib < 64,
        "the server's memory grew by {growth_mib} MiB while {CLIENTS} clients did not read ({} MiB sent)",
        sent >> 20
    );
    server.assert_fds_return_to(baseline_fds);
}

/// Writes pipelined `POST /echo` requests with `body`-byte bodies to
/// `addr` without ever reading, until the server resets the connection
/// (within 30 s). Returns how many bytes got out and whether the writes
/// stalled (the server stopped taking requests) before the reset.
fn never_read(addr: SocketAddr, body: usize) -> (usize, bool) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut request =
        format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {body}\r\n\r\n")
            .into_bytes();
    request.resize(request.len() + body, b'x');
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut sent, mut offset, mut stalled) = (0, 0, false);
    loop {
        assert!(
            Instant::now() < deadline,
            "a client that never reads was still connected after 30 s ({} MiB sent)",
            sent >> 20
        );
        match stream.write(&request[offset..]) {
            Ok(n) => {
                sent += n;
                offset = (offset + n) % request.len();
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalled = true
            }
            Err(error) if is_disconnect(&error) => return (sent, stalled),
            Err(error) => panic!("unexpected write error: {error}"),
        }
        let _ = stream.flush();
    }
}

fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}
