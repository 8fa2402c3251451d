//! The scenarios of issue 5, each run for every peer in turn (xev, tokio,
//! mio, xev, tokio, mio, ...) so that a slow spell of this noisy machine
//! hits all of them alike; the tables show medians.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use xev::rt::AcceptMode;

use crate::cpu::{self, ThreadClock, CLIENT_CPU, SERVER_CPU};
use crate::echo::{self, EchoConfig, ServerPhase};
use crate::loadgen::{self, Until};
use crate::multicore;
use crate::report::{self, Metric, Samples};
use crate::{Peer, ROLE_VAR};

/// How long and how big each scenario is.
#[derive(Clone, Debug)]
pub struct Plan {
    pub runs: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub pongs: u64,
    pub tasks: u64,
    pub timers: usize,
    pub wakes: u64,
    pub idle_conns: usize,
    /// Worker threads of the `multicore` servers.
    pub workers: usize,
    /// Short connections of the `multicore-spread` scenarios.
    pub short_conns: usize,
    /// How long one thread may run before the run fails as hung.
    pub thread_limit: Duration,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            runs: 5,
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(1500),
            pongs: 50_000,
            tasks: 1_000_000,
            timers: 1_000_000,
            wakes: 20_000,
            idle_conns: 10_000,
            workers: 2,
            short_conns: 10_000,
            thread_limit: Duration::from_secs(300),
        }
    }

    /// Small enough for CI (well under a minute), big enough to print
    /// sensible figures; one run each, so no medians worth the name.
    pub fn quick() -> Plan {
        Plan {
            runs: 1,
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(250),
            pongs: 5_000,
            tasks: 200_000,
            timers: 200_000,
            wakes: 2_000,
            idle_conns: 1_000,
            workers: 2,
            short_conns: 1_000,
            thread_limit: Duration::from_secs(20),
        }
    }
}

type Run = Box<dyn Fn(Peer) -> io::Result<Vec<f64>>>;

pub struct Scenario {
    pub name: String,
    pub about: String,
    pub peers: &'static [Peer],
    pub metrics: &'static [Metric],
    run: Run,
}

impl Scenario {
    /// Runs every peer `runs` times, interleaved (xev/io_uring only where
    /// the kernel allows io_uring).
    pub fn run(&self, runs: usize) -> io::Result<Samples> {
        let peers: Vec<Peer> = self
            .peers
            .iter()
            .copied()
            .filter(|p| p.available())
            .collect();
        let mut samples = Samples::new(self.metrics, &peers);
        for _ in 0..runs {
            for &peer in &peers {
                let values = (self.run)(peer).map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("{} on {}: {error}", self.name, peer.name()),
                    )
                })?;
                samples.record(peer, &values);
            }
        }
        Ok(samples)
    }
}

/// The runtime-only scenarios: xev on its default backend (`Poll`) and tokio.
const RUNTIMES: &[Peer] = &[Peer::Xev, Peer::Tokio];

const PINGPONG: &[Metric] = &[
    Metric::higher("round trips/s", 0),
    Metric::lower("p50 latency µs", 1),
    Metric::lower("p99 latency µs", 1),
    Metric::lower("server CPU ns/round trip", 0),
    Metric::neither("server busy %", 0),
    Metric::neither("load generator busy %", 0),
];
const STREAM: &[Metric] = &[
    Metric::higher("MB/s echoed", 0),
    Metric::lower("server CPU µs/MB", 1),
    Metric::neither("server busy %", 0),
    Metric::neither("load generator busy %", 0),
];
const PING_PONGS: &[Metric] = &[Metric::higher("round trips/s", 0)];
const TIMED: &[Metric] = &[Metric::lower("wall ms", 1), Metric::lower("CPU ms", 1)];
const WAKES: &[Metric] = &[
    Metric::higher("round trips/s", 0),
    Metric::lower("µs/round trip", 2),
];
const MULTICORE_PINGPONG: &[Metric] = &[
    Metric::higher("round trips/s", 0),
    Metric::lower("p50 latency µs", 1),
    Metric::lower("p99 latency µs", 1),
    Metric::lower("server CPU ns/round trip", 0),
    Metric::neither("server CPU % (all workers)", 0),
    Metric::neither("connections max/min per worker", 2),
];
const MULTICORE_SPREAD: &[Metric] = &[
    Metric::higher("connections/s", 0),
    Metric::lower("max/min connections per worker", 2),
    Metric::neither("most on one worker", 0),
    Metric::neither("fewest on one worker", 0),
];
const MEMORY: &[Metric] = &[
    Metric::lower("RSS bytes/idle connection", 0),
    Metric::neither("server RSS with them, MiB", 1),
];

/// The buffer each echo connection reads into, in the ping-pong scenarios.
pub const PINGPONG_BUFFER: usize = 4096;
/// The streaming scenario's write size, and its echo buffer.
const STREAM_CHUNK: usize = 64 * 1024;
/// The idle connections' buffer: small, so the figure is the runtime's own
/// cost per connection rather than the application's buffer.
const IDLE_BUFFER: usize = 64;

pub fn all(plan: &Plan) -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    for conns in [1, 64, 512] {
        let plan = plan.clone();
        scenarios.push(Scenario {
            name: format!("pingpong-{conns}"),
            about: format!(
                "TCP ping-pong, {} connection(s), one {}-byte message in flight on each; \
                 the peer is the echo server (CPU {SERVER_CPU}), a common mio load \
                 generator is the client (CPU {CLIENT_CPU})",
                conns,
                loadgen::MESSAGE_LEN
            ),
            peers: &Peer::ALL,
            metrics: PINGPONG,
            run: Box::new(move |peer| pingpong(peer, conns, &plan)),
        });
    }
    let stream_plan = plan.clone();
    scenarios.push(Scenario {
        name: "stream-64k".into(),
        about: "streaming echo on 1 connection: the load generator writes 64 KiB at a \
                time and reads the echo as it comes; the peer is the echo server"
            .into(),
        peers: &Peer::ALL,
        metrics: STREAM,
        run: Box::new(move |peer| stream(peer, &stream_plan)),
    });
    let pongs = plan.pongs;
    scenarios.push(Scenario {
        name: "ping_pongs".into(),
        about: format!(
            "libxev's ping-pongs: {pongs} PING/PONG round trips on 1 connection, both \
             ends on the peer (server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU})"
        ),
        peers: &Peer::ALL,
        metrics: PING_PONGS,
        run: Box::new(move |peer| ping_pongs(peer, pongs)),
    });
    let tasks = plan.tasks;
    scenarios.push(Scenario {
        name: "spawn-join".into(),
        about: format!("spawn {tasks} tasks, then await every JoinHandle (mio: n/a)"),
        peers: RUNTIMES,
        metrics: TIMED,
        run: Box::new(move |peer| {
            let timing = on_server_cpu(move || peer.spawn_join(tasks))?;
            Ok(vec![millis(timing.wall), millis(timing.cpu)])
        }),
    });
    let timers = plan.timers;
    scenarios.push(Scenario {
        name: "timers".into(),
        about: format!(
            "arm {timers} sleeps of 1..=50 ms (fixed pseudo-random lengths) at once, \
             then wait for all; wall time includes up to 50 ms of waiting, CPU time \
             does not (mio: n/a)"
        ),
        peers: RUNTIMES,
        metrics: TIMED,
        run: Box::new(move |peer| {
            let timing = on_server_cpu(move || peer.timers(timers))?;
            Ok(vec![millis(timing.wall), millis(timing.cpu)])
        }),
    });
    let wakes = plan.wakes;
    scenarios.push(Scenario {
        name: "cross-thread-wake".into(),
        about: format!(
            "{wakes} round trips: a thread (CPU {CLIENT_CPU}) wakes a future on the \
             runtime (CPU {SERVER_CPU}), which unparks the thread (mio: n/a)"
        ),
        peers: RUNTIMES,
        metrics: WAKES,
        run: Box::new(move |peer| {
            let elapsed = peer.cross_thread_wakes(wakes)?;
            let per_trip = elapsed.as_secs_f64() / wakes as f64;
            Ok(vec![1.0 / per_trip, per_trip * 1e6])
        }),
    });
    multicore_scenarios(plan, &mut scenarios);
    let idle_conns = plan.idle_conns;
    scenarios.push(Scenario {
        name: "memory-idle".into(),
        about: format!(
            "resident memory of an echo server holding {idle_conns} idle connections \
             ({IDLE_BUFFER}-byte buffers), VmRSS after accepting minus before; each run \
             is a fresh server process whose client is its own child process"
        ),
        peers: &Peer::ALL,
        metrics: MEMORY,
        run: Box::new(move |peer| memory_idle(peer, idle_conns)),
    });
    scenarios
}

/// xev's `Pool` in each accept mode against tokio's multi-threaded runtime,
/// with `plan.workers` worker threads each (`multicore.rs`).
fn multicore_scenarios(plan: &Plan, scenarios: &mut Vec<Scenario>) {
    let workers = plan.workers;
    for (word, mode) in [
        ("reuseport", AcceptMode::ReusePort),
        ("acceptor", AcceptMode::Acceptor),
    ] {
        for conns in [64, 512] {
            let plan = plan.clone();
            scenarios.push(Scenario {
                name: format!("multicore-{word}-{conns}"),
                about: format!(
                    "TCP ping-pong, {conns} connections, on {workers} worker threads: xev \
                     Pool (AcceptMode::{mode:?}) vs tokio multi_thread; the common load \
                     generator on CPU {CLIENT_CPU}, workers unpinned"
                ),
                peers: RUNTIMES,
                metrics: MULTICORE_PINGPONG,
                run: Box::new(move |peer| multicore::pingpong(peer, mode, conns, &plan)),
            });
        }
        let plan = plan.clone();
        let conns = plan.short_conns;
        scenarios.push(Scenario {
            name: format!("multicore-spread-{word}"),
            about: format!(
                "{conns} short connections (connect, one {}-byte echo, close) from 4 client \
                 threads, on {workers} worker threads: xev Pool (AcceptMode::{mode:?}) vs \
                 tokio multi_thread; how evenly they spread over the workers",
                loadgen::MESSAGE_LEN
            ),
            peers: RUNTIMES,
            metrics: MULTICORE_SPREAD,
            run: Box::new(move |peer| multicore::short_connections(peer, mode, conns, &plan)),
        });
    }
}

fn on_server_cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    cpu::join_within(cpu::spawn_pinned(SERVER_CPU, "runtime", f), "runtime")
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percent(part: Duration, whole: Duration) -> f64 {
    100.0 * part.as_secs_f64() / whole.as_secs_f64()
}

/// Starts `peer`'s echo server on the server CPU; returns its thread and the
/// address it listens on.
fn start_echo_server(
    peer: Peer,
    config: EchoConfig,
) -> io::Result<(std::thread::JoinHandle<io::Result<()>>, SocketAddr)> {
    let (listener, addr) = echo::listener()?;
    let server = cpu::spawn_pinned(SERVER_CPU, "server", move || {
        peer.echo_server(listener, config)
    });
    Ok((server, addr))
}

/// Joins a thread that returns a result. The client is joined first: if
/// it fails, the server may be waiting for connections that never come, so
/// it is left behind.
fn join<T>(thread: std::thread::JoinHandle<io::Result<T>>, what: &str) -> io::Result<T> {
    cpu::join_within(thread, what)?
}

fn pingpong(peer: Peer, conns: usize, plan: &Plan) -> io::Result<Vec<f64>> {
    let (server, addr) = start_echo_server(peer, EchoConfig::new(conns, PINGPONG_BUFFER))?;
    let server_clock = ThreadClock::process();
    let until = Until::Elapsed {
        warmup: plan.warmup,
        measure: plan.measure,
    };
    let client = cpu::spawn_pinned(CLIENT_CPU, "loadgen", move || {
        loadgen::ping_pong(addr, conns, until, Some(server_clock))
    });
    let mut report = join(client, "load generator")?;
    join(server, "server")?;
    let window = &report.window;
    let server_cpu = server_cpu(window);
    report.latencies.sort_unstable();
    Ok(vec![
        report.round_trips as f64 / window.elapsed.as_secs_f64(),
        report::quantile(&report.latencies, 0.50) / 1e3,
        report::quantile(&report.latencies, 0.99) / 1e3,
        server_cpu.as_secs_f64() * 1e9 / report.round_trips as f64,
        percent(server_cpu, window.elapsed),
        percent(window.client_cpu, window.elapsed),
    ])
}

fn stream(peer: Peer, plan: &Plan) -> io::Result<Vec<f64>> {
    let (server, addr) = start_echo_server(peer, EchoConfig::new(1, STREAM_CHUNK))?;
    let server_clock = ThreadClock::process();
    let (warmup, measure) = (plan.warmup, plan.measure);
    let client = cpu::spawn_pinned(CLIENT_CPU, "loadgen", move || {
        loadgen::stream(addr, STREAM_CHUNK, warmup, measure, server_clock)
    });
    let report = join(client, "load generator")?;
    join(server, "server")?;
    let window = &report.window;
    let server_cpu = server_cpu(window);
    let megabytes = report.bytes as f64 / 1e6;
    Ok(vec![
        megabytes / window.elapsed.as_secs_f64(),
        server_cpu.as_secs_f64() * 1e6 / megabytes,
        percent(server_cpu, window.elapsed),
        percent(window.client_cpu, window.elapsed),
    ])
}

/// The server's CPU time over a load generator's window: the process's
/// (every thread's, io_uring's io-wq workers included) less the load
/// generator thread's. Nothing else runs then: the main thread waits in
/// `join`.
fn server_cpu(window: &loadgen::Window) -> Duration {
    window.server_cpu.saturating_sub(window.client_cpu)
}

fn ping_pongs(peer: Peer, pongs: u64) -> io::Result<Vec<f64>> {
    let (listener, addr) = echo::listener()?;
    let server = cpu::spawn_pinned(SERVER_CPU, "server", move || {
        peer.ping_pongs_server(listener)
    });
    let client = cpu::spawn_pinned(CLIENT_CPU, "client", move || {
        peer.ping_pongs_client(addr, pongs)
    });
    let elapsed = join(client, "client")?;
    join(server, "server")?;
    Ok(vec![pongs as f64 / elapsed.as_secs_f64()])
}

/// Runs [`idle_server_process`] in a fresh process, so that memory freed by
/// earlier runs cannot be reused and hide what this one allocates.
fn memory_idle(peer: Peer, conns: usize) -> io::Result<Vec<f64>> {
    let output = Command::new(std::env::current_exe()?)
        .env(ROLE_VAR, "idle-server")
        .args(["--peer", peer.name(), "--conns", &conns.to_string()])
        .args(["--shape", crate::xev_peer::shape().name()])
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "the idle-server process failed ({}): {stdout}",
            output.status
        )));
    }
    let field = |name: &str| -> io::Result<f64> {
        stdout
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {name}= in {stdout:?}")))
    };
    let (before, after) = (field("rss_before")?, field("rss_after")?);
    Ok(vec![
        (after - before) / conns as f64,
        after / (1024.0 * 1024.0),
    ])
}

/// The server side of the memory scenario, in its own process: an echo
/// server on the server CPU, its client a child process holding `conns`
/// idle connections. Prints `rss_before=B rss_after=A` (bytes).
pub fn idle_server_process(peer: Peer, conns: usize) -> io::Result<()> {
    let (phase_tx, phase_rx) = mpsc::channel();
    let mut config = EchoConfig::new(conns, IDLE_BUFFER);
    config.observer = Some(Box::new(move |phase| {
        let _ = phase_tx.send((phase, resident_bytes()));
    }));
    let (server, addr) = start_echo_server(peer, config)?;
    let phase = |expected: ServerPhase| -> io::Result<u64> {
        // A client that cannot connect them all would leave the server
        // waiting in accept for ever.
        match phase_rx.recv_timeout(Duration::from_secs(120)) {
            Ok((phase, rss)) if phase == expected => rss,
            Ok((phase, _)) => Err(io::Error::other(format!(
                "server at {phase:?}, not {expected:?}"
            ))),
            Err(_) => Err(io::Error::other(format!(
                "the server never reached {expected:?}"
            ))),
        }
    };
    let before = phase(ServerPhase::Listening)?;
    let mut client = Command::new(std::env::current_exe()?)
        .env(ROLE_VAR, "idle-client")
        .args(["--addr", &addr.to_string(), "--conns", &conns.to_string()])
        .stdin(Stdio::piped())
        .spawn()?;
    let after = phase(ServerPhase::Idle);
    // Closing its standard input tells the client to hang up.
    drop(client.stdin.take());
    let status = client.wait()?;
    let after = after?;
    join(server, "server")?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the idle client failed: {status}"
        )));
    }
    println!("rss_before={before} rss_after={after}");
    Ok(())
}

/// The idle-client child of [`idle_server_process`].
pub fn idle_client_process(addr: SocketAddr, conns: usize) -> io::Result<()> {
    cpu::pin_current_thread(CLIENT_CPU);
    loadgen::idle(addr, conns)
}

/// VmRSS of this process, in bytes.
fn resident_bytes() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let reader = BufReader::new(status.as_bytes());
    for line in reader.lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kib: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .map_err(io::Error::other)?;
            return Ok(kib * 1024);
        }
    }
    Err(io::Error::other("no VmRSS in /proc/self/status"))
}
