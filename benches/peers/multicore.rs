//! The `multicore` scenarios: an echo server on N worker threads, xev's
//! `Pool` (one mode per scenario) against tokio's multi-threaded runtime
//! with the same number of workers, driven by the common load generator.
//!
//! Both servers are the code a user would write: xev's `Pool::serve` with
//! a handler per connection; tokio's accept loop in a spawned task that
//! spawns a task per connection. Neither pins its workers. The server's
//! CPU time is the process's CPU clock less the load generator's thread
//! over the measured window (the harness's other threads only wait).
//! Connections per worker are counted by the thread a connection's
//! handler first runs on.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use xev::rt::{AcceptMode, Pool};

use crate::cpu::{self, ThreadClock, CLIENT_CPU};
use crate::echo;
use crate::loadgen::{self, Until, MESSAGE_LEN};
use crate::report;
use crate::scenarios::{Plan, PINGPONG_BUFFER};
use crate::Peer;

/// Connections counted per thread that first ran their handler.
type PerThread = Arc<Mutex<HashMap<ThreadId, usize>>>;

fn count_here(per_thread: &PerThread) {
    let mut counts = per_thread.lock().unwrap();
    *counts.entry(std::thread::current().id()).or_insert(0) += 1;
}

/// A running multi-threaded echo server.
struct Server {
    addr: SocketAddr,
    stop: Box<dyn FnOnce() + Send>,
    thread: JoinHandle<io::Result<()>>,
    per_thread: PerThread,
    workers: usize,
}

impl Server {
    fn start(peer: Peer, mode: AcceptMode, workers: usize) -> io::Result<Server> {
        match peer {
            Peer::Xev => xev_server(mode, workers),
            Peer::Tokio => tokio_server(workers),
            Peer::XevUring | Peer::Mio => unreachable!("not a multicore peer"),
        }
    }

    /// Stops the server and returns the connections each worker served
    /// (a worker that served none counts as 0).
    fn stop(self) -> io::Result<Vec<usize>> {
        (self.stop)();
        cpu::join_within(self.thread, "multicore server")??;
        let counts = self.per_thread.lock().unwrap();
        let mut per_worker: Vec<usize> = counts.values().copied().collect();
        per_worker.resize(per_worker.len().max(self.workers), 0);
        Ok(per_worker)
    }
}

fn xev_server(mode: AcceptMode, workers: usize) -> io::Result<Server> {
    let pool = Pool::builder().threads(workers).build()?;
    let server = pool.bind("127.0.0.1:0", mode)?;
    let addr = server.local_addr()?;
    let shutdown = pool.shutdown_handle();
    let per_thread = PerThread::default();
    let counts = per_thread.clone();
    let thread = std::thread::spawn(move || {
        let served = server.serve(move |stream, _peer| {
            count_here(&counts);
            async move {
                if stream.set_nodelay(true).is_ok() {
                    let mut buf = vec![0; PINGPONG_BUFFER];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        drop(pool);
        served
    });
    Ok(Server {
        addr,
        stop: Box::new(move || shutdown.shutdown(Duration::from_secs(1))),
        thread,
        per_thread,
        workers,
    })
}

fn tokio_server(workers: usize) -> io::Result<Server> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (listener, addr) = echo::listener()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let per_thread = PerThread::default();
    let counts = per_thread.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let thread = std::thread::spawn(move || {
        let served = runtime.block_on(async move {
            // The accept loop is a task too, so all the work runs on the
            // runtime's workers (`block_on`'s future runs on this thread).
            tokio::spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::pin!(stop_rx);
                loop {
                    let (mut stream, _) = tokio::select! {
                        _ = &mut stop_rx => return Ok(()),
                        accepted = listener.accept() => accepted?,
                    };
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        count_here(&counts);
                        if stream.set_nodelay(true).is_ok() {
                            let mut buf = vec![0; PINGPONG_BUFFER];
                            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    });
                }
            })
            .await
            .expect("the accept loop does not panic")
        });
        // Dropping the runtime cancels the connection tasks left.
        drop(runtime);
        served
    });
    Ok(Server {
        addr,
        stop: Box::new(move || {
            let _ = stop_tx.send(());
        }),
        thread,
        per_thread,
        workers,
    })
}

/// max/min of connections per worker (infinite if a worker served none).
fn spread(per_worker: &[usize]) -> f64 {
    let max = per_worker.iter().copied().max().unwrap_or(0) as f64;
    let min = per_worker.iter().copied().min().unwrap_or(0) as f64;
    max / min
}

/// Ping-pong on `conns` connections against the multi-threaded server.
pub fn pingpong(peer: Peer, mode: AcceptMode, conns: usize, plan: &Plan) -> io::Result<Vec<f64>> {
    let server = Server::start(peer, mode, plan.workers)?;
    let addr = server.addr;
    let until = Until::Elapsed {
        warmup: plan.warmup,
        measure: plan.measure,
    };
    let client = cpu::spawn_pinned(CLIENT_CPU, "loadgen", move || {
        loadgen::ping_pong(addr, conns, until, Some(ThreadClock::process()))
    });
    let report = cpu::join_within(client, "load generator");
    let per_worker = server.stop()?;
    let mut report = report??;
    report.latencies.sort_unstable();
    let window = &report.window;
    // The process clock counts the load generator too.
    let server_cpu = window.server_cpu.saturating_sub(window.client_cpu);
    Ok(vec![
        report.round_trips as f64 / window.elapsed.as_secs_f64(),
        report::quantile(&report.latencies, 0.50) / 1e3,
        report::quantile(&report.latencies, 0.99) / 1e3,
        server_cpu.as_secs_f64() * 1e9 / report.round_trips as f64,
        100.0 * server_cpu.as_secs_f64() / window.elapsed.as_secs_f64(),
        spread(&per_worker),
    ])
}

/// Client threads that make the short connections, together.
const SHORT_CLIENTS: usize = 4;

/// `conns` short connections (connect, one 64-byte echo, close) from
/// [`SHORT_CLIENTS`] threads; how they spread over the workers.
pub fn short_connections(
    peer: Peer,
    mode: AcceptMode,
    conns: usize,
    plan: &Plan,
) -> io::Result<Vec<f64>> {
    let server = Server::start(peer, mode, plan.workers)?;
    let addr = server.addr;
    let start = Instant::now();
    let clients: Vec<_> = (0..SHORT_CLIENTS)
        .map(|client| {
            let share = conns / SHORT_CLIENTS + usize::from(client < conns % SHORT_CLIENTS);
            std::thread::spawn(move || -> io::Result<()> {
                let message = [0x5a; MESSAGE_LEN];
                let mut echo = [0; MESSAGE_LEN];
                for _ in 0..share {
                    let mut stream = std::net::TcpStream::connect(addr)?;
                    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                    stream.set_nodelay(true)?;
                    stream.write_all(&message)?;
                    stream.read_exact(&mut echo)?;
                }
                Ok(())
            })
        })
        .collect();
    let mut result = Ok(());
    for client in clients {
        let joined = cpu::join_within(client, "short-connection client").and_then(|r| r);
        result = result.and(joined);
    }
    let elapsed = start.elapsed();
    let per_worker = server.stop()?;
    result?;
    let served: usize = per_worker.iter().sum();
    if served != conns {
        return Err(io::Error::other(format!(
            "{served} connections served, not {conns}"
        )));
    }
    Ok(vec![
        conns as f64 / elapsed.as_secs_f64(),
        spread(&per_worker),
        per_worker.iter().copied().max().unwrap_or(0) as f64,
        per_worker.iter().copied().min().unwrap_or(0) as f64,
    ])
}
