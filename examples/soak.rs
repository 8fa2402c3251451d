//! A soak test: mixed traffic on one runtime for N seconds, checking that no
//! operation fails unexpectedly and that nothing leaks.
//!
//! ```text
//! cargo run --release --example soak -- --secs 20 [--every SECS]
//! ```
//!
//! The traffic, all at once, on one thread:
//! - **echo**: 16 clients, each opening connection after connection and
//!   echoing 1 to 40 messages of up to 16 KiB on each, byte-checked;
//! - **queued writes**: 4 clients each pushing 64 KiB to 1 MiB through a
//!   `WriteQueue` in random pieces, to a server that answers with the
//!   length and checksum of what it read;
//! - **refused connects**: to a port nobody listens on, which must fail with
//!   `ConnectionRefused`;
//! - **cancelled connects**: dropped at a random point (a connect that
//!   completes anyway must echo);
//! - **timers**: sleeps and timeouts of up to 5 ms, which must never fire
//!   early.
//!
//! Every `--every` seconds (default: a tenth of the run) it prints the
//! operations and errors so far, the open fds, the RSS and the runtime's
//! counts. The first quarter of the run is warm-up; afterwards the fd count
//! and the RSS must stay within a margin of their warm-up peaks. At the end
//! the traffic stops and every fd, socket, task and timer must be gone.
//! The exit status is 1 if an operation failed unexpectedly or a check did
//! not hold, so the program can run in CI.
//!
//! Servers close their side first, so the TIME_WAIT sockets pile up on the
//! listening ports rather than on the clients' ephemeral ports.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use xev::io::WriteQueue;
use xev::net::{TcpListener, TcpSocket, TcpStream};
use xev::rt::spawn;
use xev::time::{sleep, timeout};

const ECHO_CLIENTS: usize = 16;
const QUEUE_CLIENTS: usize = 4;
const TIMER_TASKS: usize = 4;
/// How far past its warm-up peak the fd count may go: connections in
/// flight vary from one sample to the next.
const FD_MARGIN: usize = 64;
/// How far past its warm-up peak the RSS may go: the larger of this and a
/// quarter of the peak (allocators keep some memory they could return).
const RSS_MARGIN: usize = 8 << 20;

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("soak: {message}\nusage: soak [--secs N] [--every SECS]");
            return ExitCode::from(2);
        }
    };
    let failures = xev::rt::block_on(soak(options));
    if failures.is_empty() {
        println!("soak: passed");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("soak: FAILED: {failure}");
        }
        ExitCode::FAILURE
    }
}

struct Options {
    run: Duration,
    every: Duration,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut secs = 10.0;
        let mut every = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = args.next();
            let number = |name: &str| -> Result<f64, String> {
                let value = value.as_deref().ok_or(format!("{name} takes a number"))?;
                match value.parse::<f64>() {
                    Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
                    _ => Err(format!("{name} takes a positive number, not {value:?}")),
                }
            };
            match arg.as_str() {
                "--secs" => secs = number("--secs")?,
                "--every" => every = Some(number("--every")?),
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        Ok(Options {
            run: Duration::from_secs_f64(secs),
            every: Duration::from_secs_f64(every.unwrap_or(secs / 10.0)),
        })
    }
}

/// Counts shared by the workers and the reporter.
#[derive(Default)]
struct Stats {
    echo_round_trips: Cell<u64>,
    echo_connections: Cell<u64>,
    queued_connections: Cell<u64>,
    queued_bytes: Cell<u64>,
    refused: Cell<u64>,
    cancelled_connects: Cell<u64>,
    completed_connects: Cell<u64>,
    timers: Cell<u64>,
    /// Connections that ended before saying anything: the server's side
    /// of a cancelled connect. Expected, and counted apart.
    abandoned: Cell<u64>,
    errors: RefCell<Vec<String>>,
}

impl Stats {
    fn add(counter: &Cell<u64>, n: u64) {
        counter.set(counter.get() + n);
    }

    fn operations(&self) -> u64 {
        self.echo_round_trips.get()
            + self.queued_connections.get()
            + self.refused.get()
            + self.cancelled_connects.get()
            + self.completed_connects.get()
            + self.timers.get()
    }

    /// Records an operation that failed unexpectedly (the first 20 are kept
    /// for the report).
    fn error(&self, what: String) {
        let mut errors = self.errors.borrow_mut();
        if errors.len() < 20 {
            eprintln!("soak: unexpected: {what}");
        }
        errors.push(what);
    }
}

async fn soak(options: Options) -> Vec<String> {
    let start = Instant::now();
    let fds_at_start = open_fds();
    let metrics_at_start = xev::rt::metrics();
    let stats = Rc::new(Stats::default());
    let running = Rc::new(Cell::new(true));
    let mut failures = Vec::new();

    let servers = match start_servers(stats.clone()) {
        Ok(servers) => servers,
        Err(error) => return vec![format!("starting the servers: {error}")],
    };
    let mut workers = Vec::new();
    for seed in 0..ECHO_CLIENTS as u64 {
        workers.push(spawn(echo_client(
            servers.echo,
            seed,
            stats.clone(),
            running.clone(),
        )));
    }
    for seed in 0..QUEUE_CLIENTS as u64 {
        workers.push(spawn(queue_client(
            servers.sink,
            100 + seed,
            stats.clone(),
            running.clone(),
        )));
    }
    workers.push(spawn(refused_connects(
        servers.refused,
        stats.clone(),
        running.clone(),
    )));
    workers.push(spawn(cancelled_connects(
        servers.echo,
        200,
        stats.clone(),
        running.clone(),
    )));
    for seed in 0..TIMER_TASKS as u64 {
        workers.push(spawn(timers(300 + seed, stats.clone(), running.clone())));
    }

    // Report until the end of the run; check against the warm-up peaks.
    let warm_up = (options.run / 4).max(options.every);
    let (mut warm_fds, mut warm_rss) = (0, 0);
    let mut next = start;
    loop {
        next += options.every;
        let now = Instant::now();
        let end = start + options.run;
        sleep(next.min(end).saturating_duration_since(now)).await;
        let (fds, rss) = (open_fds(), rss_bytes());
        report(start, &stats, fds, rss);
        let elapsed = start.elapsed();
        if elapsed <= warm_up {
            warm_fds = warm_fds.max(fds.unwrap_or(0));
            warm_rss = warm_rss.max(rss.unwrap_or(0));
        } else {
            if let Some(fds) = fds.filter(|&fds| fds > warm_fds + FD_MARGIN) {
                failures.push(format!(
                    "at {elapsed:.1?}: {fds} fds open, past the warm-up peak of {warm_fds}"
                ));
            }
            let rss_limit = warm_rss + RSS_MARGIN.max(warm_rss / 4);
            if let Some(rss) = rss.filter(|&rss| rss > rss_limit) {
                failures.push(format!(
                    "at {elapsed:.1?}: RSS {} MiB, past the warm-up peak of {} MiB",
                    rss >> 20,
                    warm_rss >> 20
                ));
            }
        }
        if Instant::now() >= end {
            break;
        }
    }

    // Stop, let every worker finish its operation, and check that nothing
    // is left: no connection, task, timer or fd.
    running.set(false);
    let stopping = async {
        for worker in workers {
            if let Err(error) = worker.await {
                stats.error(format!("a worker task ended abnormally: {error}"));
            }
        }
    };
    if timeout(Duration::from_secs(30), stopping).await.is_err() {
        failures.push("the workers did not stop within 30 s".into());
    }
    servers.stop().await;
    // (The wait's own timer is armed meanwhile, so timers are compared after.)
    let settled = timeout(Duration::from_secs(10), async {
        loop {
            let metrics = xev::rt::metrics();
            if (metrics.tasks, metrics.registered_sockets)
                == (metrics_at_start.tasks, metrics_at_start.registered_sockets)
                && open_fds() == fds_at_start
            {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let (metrics, fds) = (xev::rt::metrics(), open_fds());
    report(start, &stats, fds, rss_bytes());
    if settled.is_err() || metrics != metrics_at_start {
        failures.push(format!(
            "after the run: {metrics:?} and {fds:?} fds, where it started with \
             {metrics_at_start:?} and {fds_at_start:?} fds"
        ));
    }
    let errors = stats.errors.borrow();
    if !errors.is_empty() {
        failures.push(format!(
            "{} operations failed unexpectedly; the first: {}",
            errors.len(),
            errors[0]
        ));
    }
    if stats.echo_round_trips.get() == 0
        || stats.queued_connections.get() == 0
        || stats.refused.get() == 0
        || stats.timers.get() == 0
    {
        failures.push("some kind of traffic never completed an operation".into());
    }
    failures
}

fn report(start: Instant, stats: &Stats, fds: Option<usize>, rss: Option<usize>) {
    let metrics = xev::rt::metrics();
    println!(
        "[{:>7.1}s] ops {} (echo {} round trips on {} conns, queued {} conns / {} MiB, \
         refused {}, connects {} cancelled / {} done, {} abandoned, timers {}) \
         errors {} | fds {} | rss {} | tasks {} sockets {} timers {}",
        start.elapsed().as_secs_f64(),
        stats.operations(),
        stats.echo_round_trips.get(),
        stats.echo_connections.get(),
        stats.queued_connections.get(),
        stats.queued_bytes.get() >> 20,
        stats.refused.get(),
        stats.cancelled_connects.get(),
        stats.completed_connects.get(),
        stats.abandoned.get(),
        stats.timers.get(),
        stats.errors.borrow().len(),
        fds.map_or("n/a".into(), |fds| fds.to_string()),
        rss.map_or("n/a".into(), |rss| format!(
            "{:.1} MiB",
            rss as f64 / (1 << 20) as f64
        )),
        metrics.tasks,
        metrics.registered_sockets,
        metrics.timers,
    );
}

// ---------------------------------------------------------------------------
// Servers

struct Servers {
    echo: SocketAddr,
    sink: SocketAddr,
    refused: SocketAddr,
    tasks: Vec<xev::rt::JoinHandle<()>>,
    /// Connections the servers are serving.
    live: Rc<Cell<usize>>,
}

impl Servers {
    /// Stops accepting and waits (up to 10 s) for the connections in hand.
    async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let live = self.live;
        let _ = timeout(Duration::from_secs(10), async {
            while live.get() > 0 {
                sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

fn start_servers(stats: Rc<Stats>) -> io::Result<Servers> {
    let echo = TcpListener::bind("127.0.0.1:0")?;
    let sink = TcpListener::bind("127.0.0.1:0")?;
    // A port that was just listened on, and no longer is.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let live = Rc::new(Cell::new(0));
    let addrs = (echo.local_addr()?, sink.local_addr()?);
    let tasks = vec![
        spawn(serve(echo, stats.clone(), live.clone(), Protocol::Echo)),
        spawn(serve(sink, stats, live.clone(), Protocol::Sink)),
    ];
    Ok(Servers {
        echo: addrs.0,
        sink: addrs.1,
        refused,
        tasks,
        live,
    })
}

#[derive(Clone, Copy)]
enum Protocol {
    /// Header `(rounds: u32, size: u32)`, then `rounds` messages of `size`
    /// bytes, each echoed back; then the server closes.
    Echo,
    /// Header `len: u64`, then `len` bytes; the server answers with
    /// `(len: u64, fnv: u64)` of what it read, then closes.
    Sink,
}

async fn serve(listener: TcpListener, stats: Rc<Stats>, live: Rc<Cell<usize>>, protocol: Protocol) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                stats.error(format!("accept: {error}"));
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        live.set(live.get() + 1);
        let (stats, live) = (stats.clone(), live.clone());
        drop(spawn(async move {
            let result = match protocol {
                Protocol::Echo => serve_echo(&stream, &stats).await,
                Protocol::Sink => serve_sink(&stream, &stats).await,
            };
            if let Err(error) = result {
                stats.error(format!("server connection: {error}"));
            }
            live.set(live.get() - 1);
        }));
    }
}

/// Reads a header of `N` bytes; `None` if the connection ended before one
/// byte of it came (the server's view of a cancelled connect).
async fn read_header<const N: usize>(
    stream: &TcpStream,
    stats: &Stats,
) -> io::Result<Option<[u8; N]>> {
    let mut header = [0; N];
    let mut got = 0;
    while got < N {
        match stream.read(&mut header[got..]).await {
            Ok(0) | Err(_) if got == 0 => {
                Stats::add(&stats.abandoned, 1);
                return Ok(None);
            }
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(error) => return Err(error),
        }
    }
    Ok(Some(header))
}

async fn serve_echo(stream: &TcpStream, stats: &Stats) -> io::Result<()> {
    let Some(header) = read_header::<8>(stream, stats).await? else {
        return Ok(());
    };
    let rounds = u32::from_le_bytes(header[..4].try_into().unwrap());
    let size = u32::from_le_bytes(header[4..].try_into().unwrap()) as usize;
    let mut buf = vec![0; size];
    for _ in 0..rounds {
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await?;
    }
    Ok(())
}

async fn serve_sink(stream: &TcpStream, stats: &Stats) -> io::Result<()> {
    let Some(header) = read_header::<8>(stream, stats).await? else {
        return Ok(());
    };
    let len = u64::from_le_bytes(header);
    let (mut got, mut fnv) = (0, Fnv::new());
    let mut buf = vec![0; 64 * 1024];
    while got < len {
        let want = buf.len().min((len - got) as usize);
        match stream.read(&mut buf[..want]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                fnv.update(&buf[..n]);
                got += n as u64;
            }
        }
    }
    let mut answer = [0; 16];
    answer[..8].copy_from_slice(&got.to_le_bytes());
    answer[8..].copy_from_slice(&fnv.0.to_le_bytes());
    stream.write_all(&answer).await
}

// ---------------------------------------------------------------------------
// Clients

async fn echo_client(addr: SocketAddr, seed: u64, stats: Rc<Stats>, running: Rc<Cell<bool>>) {
    let mut rng = Rng::new(seed);
    while running.get() {
        let rounds = 1 + rng.below(40) as u32;
        let size = 1 + rng.below(16 * 1024) as u32;
        if let Err(error) = echo_once(addr, rounds, size, &mut rng, &stats).await {
            stats.error(format!("echo client: {error}"));
        }
        sleep(Duration::from_millis(rng.below(3))).await;
    }
}

/// One echo connection: `rounds` messages of `size` bytes, each checked;
/// then end of stream from the server.
async fn echo_once(
    addr: SocketAddr,
    rounds: u32,
    size: u32,
    rng: &mut Rng,
    stats: &Stats,
) -> io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let mut header = [0; 8];
    header[..4].copy_from_slice(&rounds.to_le_bytes());
    header[4..].copy_from_slice(&size.to_le_bytes());
    stream.write_all(&header).await?;
    let mut echo = vec![0; size as usize];
    for _ in 0..rounds {
        let message = rng.bytes(size as usize);
        stream.write_all(&message).await?;
        stream.read_exact(&mut echo).await?;
        if echo != message {
            return Err(io::Error::other("the echo differs from the message"));
        }
        Stats::add(&stats.echo_round_trips, 1);
    }
    if stream.read(&mut echo).await? != 0 {
        return Err(io::Error::other("bytes after the last echo"));
    }
    Stats::add(&stats.echo_connections, 1);
    Ok(())
}

async fn queue_client(addr: SocketAddr, seed: u64, stats: Rc<Stats>, running: Rc<Cell<bool>>) {
    let mut rng = Rng::new(seed);
    while running.get() {
        let len = 64 * 1024 + rng.below(1 << 20) as usize;
        match queue_once(addr, len, &mut rng).await {
            Ok(()) => {
                Stats::add(&stats.queued_connections, 1);
                Stats::add(&stats.queued_bytes, len as u64);
            }
            Err(error) => stats.error(format!("queue client: {error}")),
        }
        sleep(Duration::from_millis(rng.below(5))).await;
    }
}

/// One sink connection: `len` bytes pushed through a `WriteQueue` in random
/// pieces, some requests awaited, some not; the server's answer must match.
async fn queue_once(addr: SocketAddr, len: usize, rng: &mut Rng) -> io::Result<()> {
    let stream = Rc::new(TcpStream::connect(addr).await?);
    let queue = WriteQueue::new(stream.clone());
    drop(queue.push((len as u64).to_le_bytes().to_vec()));
    let (mut pushed, mut fnv) = (0, Fnv::new());
    while pushed < len {
        let piece_len = (1 + rng.below(32 * 1024) as usize).min(len - pushed);
        let piece = rng.bytes(piece_len);
        fnv.update(&piece);
        pushed += piece.len();
        let request = queue.push(piece);
        match rng.below(8) {
            0 => {
                request.await?;
            }
            1 => queue.flush().await?,
            _ => drop(request),
        }
        if queue.queued_bytes() > 256 * 1024 {
            queue.flush().await?; // backpressure
        }
    }
    queue.flush().await?;
    let mut answer = [0; 16];
    stream.read_exact(&mut answer).await?;
    let got = u64::from_le_bytes(answer[..8].try_into().unwrap());
    let got_fnv = u64::from_le_bytes(answer[8..].try_into().unwrap());
    if (got, got_fnv) != (len as u64, fnv.0) {
        return Err(io::Error::other(format!(
            "the server read {got} bytes with checksum {got_fnv:x}, \
             {len} with {:x} were sent",
            fnv.0
        )));
    }
    if stream.read(&mut answer).await? != 0 {
        return Err(io::Error::other("bytes after the answer"));
    }
    Ok(())
}

async fn refused_connects(addr: SocketAddr, stats: Rc<Stats>, running: Rc<Cell<bool>>) {
    while running.get() {
        match TcpStream::connect(addr).await {
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                Stats::add(&stats.refused, 1);
            }
            Err(error) => stats.error(format!("refused connect: {error}")),
            Ok(_) => stats.error(format!("a connect to {addr} (nobody listens) succeeded")),
        }
        sleep(Duration::from_millis(2)).await;
    }
}

/// Connects dropped at a random point: at the first poll, after a yield or
/// after a short sleep. One that completes anyway must work.
async fn cancelled_connects(
    addr: SocketAddr,
    seed: u64,
    stats: Rc<Stats>,
    running: Rc<Cell<bool>>,
) {
    let mut rng = Rng::new(seed);
    while running.get() {
        let interruption = rng.below(4);
        let connect = async {
            match rng.below(2) {
                0 => TcpStream::connect(addr).await,
                _ => TcpSocket::new_v4()?.connect(addr).await,
            }
        };
        let outcome = race(connect, async {
            match interruption {
                0 => {}
                1 => xev::rt::yield_now().await,
                _ => sleep(Duration::from_micros(300 * interruption)).await,
            }
        })
        .await;
        match outcome {
            None => Stats::add(&stats.cancelled_connects, 1),
            Some(Ok(stream)) => {
                // Say nothing and close: the server counts it abandoned.
                drop(stream);
                Stats::add(&stats.completed_connects, 1);
            }
            Some(Err(error)) => stats.error(format!("cancelled connect: {error}")),
        }
        sleep(Duration::from_millis(1)).await;
    }
}

async fn timers(seed: u64, stats: Rc<Stats>, running: Rc<Cell<bool>>) {
    let mut rng = Rng::new(seed);
    while running.get() {
        let wait = Duration::from_micros(rng.below(5000));
        let start = Instant::now();
        match rng.below(3) {
            0 => {
                sleep(wait).await;
                if start.elapsed() < wait {
                    stats.error(format!("a sleep of {wait:?} fired early"));
                }
            }
            1 => {
                // The sleep is a second longer: even a stalled loop that
                // finds both due at once cannot let it win.
                if timeout(wait, sleep(wait + Duration::from_secs(1)))
                    .await
                    .is_ok()
                {
                    stats.error("a timeout let a longer sleep finish".into());
                }
                if start.elapsed() < wait {
                    stats.error(format!("a timeout of {wait:?} fired early"));
                }
            }
            _ => {
                if timeout(wait + Duration::from_millis(5), sleep(wait))
                    .await
                    .is_err()
                {
                    stats.error("a timeout fired before the shorter sleep".into());
                }
            }
        }
        Stats::add(&stats.timers, 1);
    }
}

/// Polls `future` against `interruption`; `None` if the interruption came
/// first (and `future` was dropped where it stood).
async fn race<F: Future>(future: F, interruption: impl Future<Output = ()>) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut interruption = pin!(interruption);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        interruption.as_mut().poll(cx).map(|()| None)
    })
    .await
}

// ---------------------------------------------------------------------------
// Measuring

/// Open fds of this process (Linux only).
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count)
}

/// Resident set size of this process (Linux only).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// xorshift64: the traffic is the same on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }
}

/// FNV-1a, 64 bit.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
