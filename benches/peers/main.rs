//! xev against its peers, in the same process run: tokio's `current_thread`
//! runtime, and a hand-written mio event loop (the floor for anything built
//! on mio). See `benches/README.md`.
//!
//! ```text
//! cargo bench --bench peers                       # every scenario, 5 interleaved runs
//! cargo bench --bench peers -- pingpong stream    # scenarios whose name contains a word
//! cargo bench --bench peers -- --quick            # short, for CI
//! cargo bench --bench peers -- serve-xev --conns 64 --rounds 20000
//!                                                 # only the server, for strace/valgrind
//! ```

mod cpu;
mod cross_thread;
mod echo;
mod loadgen;
mod many_timers;
mod mio_peer;
mod multicore;
mod ping_pongs;
mod report;
mod scenarios;
mod tokio_peer;
mod xev_peer;

use std::io;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use xev::rt::Backend;

use cpu::{ThreadClock, Timing, CLIENT_CPU, SERVER_CPU};
use echo::EchoConfig;
use loadgen::Until;
use scenarios::Plan;
use xev_peer::Shape;

/// Set in the environment of the child processes this binary starts of
/// itself, to the role the child plays.
pub const ROLE_VAR: &str = "XEV_PEERS_ROLE";

/// An implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// xev on `Backend::Poll` (mio's epoll).
    Xev,
    /// xev on `Backend::IoUring`: the TCP scenarios only, and only where
    /// the kernel allows io_uring ([`Peer::available`]).
    XevUring,
    Tokio,
    /// The hand-written mio loop: TCP scenarios only.
    Mio,
}

impl Peer {
    pub const ALL: [Peer; 4] = [Peer::Xev, Peer::XevUring, Peer::Tokio, Peer::Mio];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Xev => "xev/poll",
            Peer::XevUring => "xev/io_uring",
            Peer::Tokio => "tokio",
            Peer::Mio => "mio",
        }
    }

    fn from_name(name: &str) -> Option<Peer> {
        match name {
            "xev" => Some(Peer::Xev),
            _ => Peer::ALL.into_iter().find(|peer| peer.name() == name),
        }
    }

    /// The backend of an xev peer.
    fn backend(self) -> Backend {
        match self {
            Peer::XevUring => Backend::IoUring,
            _ => Backend::Poll,
        }
    }

    /// Whether this peer can run here: `XevUring` needs a kernel that
    /// allows io_uring (probed once; see [`Peer::unavailable_reason`]).
    pub fn available(self) -> bool {
        self != Peer::XevUring || Peer::unavailable_reason().is_none()
    }

    /// Why xev/io_uring cannot run here, if it cannot.
    pub fn unavailable_reason() -> Option<&'static str> {
        static REASON: OnceLock<Option<String>> = OnceLock::new();
        REASON
            .get_or_init(|| xev_peer::io_uring_available().err().map(|e| e.to_string()))
            .as_deref()
    }

    pub fn echo_server(
        self,
        listener: std::net::TcpListener,
        config: EchoConfig,
    ) -> io::Result<()> {
        match self {
            Peer::Xev | Peer::XevUring => xev_peer::echo_server(listener, config, self.backend()),
            Peer::Tokio => tokio_peer::echo_server(listener, config),
            Peer::Mio => mio_peer::echo_server(listener, config),
        }
    }

    pub fn ping_pongs_server(self, listener: std::net::TcpListener) -> io::Result<()> {
        match self {
            Peer::Xev | Peer::XevUring => xev_peer::ping_pongs_server(listener, self.backend()),
            Peer::Tokio => tokio_peer::ping_pongs_server(listener),
            Peer::Mio => mio_peer::ping_pongs_server(listener),
        }
    }

    pub fn ping_pongs_client(self, addr: SocketAddr, pongs: u64) -> io::Result<Duration> {
        match self {
            Peer::Xev | Peer::XevUring => xev_peer::ping_pongs_client(addr, pongs, self.backend()),
            Peer::Tokio => tokio_peer::ping_pongs_client(addr, pongs),
            Peer::Mio => mio_peer::ping_pongs_client(addr, pongs),
        }
    }

    pub fn spawn_join(self, tasks: u64) -> Timing {
        match self {
            Peer::Xev | Peer::XevUring => xev_peer::spawn_join(tasks, self.backend()),
            Peer::Tokio => tokio_peer::spawn_join(tasks),
            Peer::Mio => unreachable!("mio has no tasks"),
        }
    }

    pub fn timers(self, timers: usize) -> Timing {
        match self {
            Peer::Xev | Peer::XevUring => xev_peer::timers(timers, self.backend()),
            Peer::Tokio => tokio_peer::timers(timers),
            Peer::Mio => unreachable!("mio has no timers"),
        }
    }

    pub fn cross_thread_wakes(self, wakes: u64) -> io::Result<Duration> {
        match self {
            Peer::Xev | Peer::XevUring => xev_peer::cross_thread_wakes(wakes, self.backend()),
            Peer::Tokio => tokio_peer::cross_thread_wakes(wakes),
            Peer::Mio => unreachable!("mio has no wakers"),
        }
    }
}

const USAGE: &str = "\
usage: cargo bench --bench peers -- [OPTIONS] [WORD...]
       cargo bench --bench peers -- serve-PEER --conns N --rounds N [--shape S]

Runs the scenarios whose name contains one of the WORDs (all without WORDs)
for xev (on both backends in the TCP scenarios: xev/poll, xev/io_uring),
tokio current_thread and a hand-written mio loop, interleaved, and prints
medians with ratios. xev/io_uring is left out where the kernel refuses
io_uring.

options:
  --quick     short runs with smaller counts, one run each (for CI)
  --runs N    interleaved runs per peer (default 5, --quick 1)
  --workers N worker threads of the multicore scenarios (default 2)
  --shape S   how xev's echo servers reply: write_all (default: read, then
              write_all) or queue (read, then WriteQueue::push of a copy)
  --list      list the scenarios and exit
  -v          print every run's figures too

serve-PEER (PEER: xev/poll or xev, xev/io_uring, tokio, mio) runs only
PEER's echo server, on this process's main thread
(pinned to CPU 0), and starts the ping-pong load generator as a child
process: N connections, each making exactly N round trips (0: connect and
close). Point `strace -c` or `valgrind --tool=callgrind --trace-children=no`
at it; see benches/count.sh. On exit it prints, on standard error, the
process's CPU time (every thread's, io_uring's io-wq workers included) as
`cpu_all_ns=N`.";

#[derive(Default)]
struct Args {
    quick: bool,
    verbose: bool,
    list: bool,
    runs: Option<usize>,
    conns: Option<usize>,
    rounds: Option<u64>,
    workers: Option<usize>,
    addr: Option<SocketAddr>,
    peer: Option<Peer>,
    shape: Option<Shape>,
    words: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    fn value<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value
            .parse()
            .map_err(|_| format!("{flag}: cannot use {value:?}"))
    }
    let mut args = Args::default();
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            // `cargo bench` adds it to every benchmark's arguments.
            "--bench" => {}
            "--quick" => args.quick = true,
            "-v" | "--verbose" => args.verbose = true,
            "--list" => args.list = true,
            "-h" | "--help" => return Err(USAGE.into()),
            "--runs" => args.runs = Some(value(&arg, argv.next())?),
            "--conns" => args.conns = Some(value(&arg, argv.next())?),
            "--rounds" => args.rounds = Some(value(&arg, argv.next())?),
            "--workers" => args.workers = Some(value(&arg, argv.next())?),
            "--addr" => args.addr = Some(value(&arg, argv.next())?),
            "--peer" => {
                let name: String = value(&arg, argv.next())?;
                args.peer = Some(Peer::from_name(&name).ok_or(format!("no peer {name:?}"))?);
            }
            "--shape" => {
                let name: String = value(&arg, argv.next())?;
                args.shape = Some(
                    Shape::from_name(&name)
                        .ok_or(format!("no shape {name:?}: use write_all or queue"))?,
                );
            }
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?}\n\n{USAGE}"))
            }
            word => args.words.push(word.to_owned()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some(shape) = args.shape {
        xev_peer::set_shape(shape);
    }
    let result = match std::env::var(ROLE_VAR) {
        Ok(role) => child(&role, &args),
        Err(_) => match args.words.first().and_then(|w| w.strip_prefix("serve-")) {
            Some(name) => match Peer::from_name(name) {
                Some(peer) => serve(peer, &args),
                None => Err(io::Error::other(format!("no peer {name:?}\n\n{USAGE}"))),
            },
            None => bench(&args),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peers: {error}");
            ExitCode::FAILURE
        }
    }
}

fn required<T: Copy>(value: Option<T>, flag: &str) -> io::Result<T> {
    value.ok_or_else(|| io::Error::other(format!("{flag} is required")))
}

/// The roles of the child processes this binary starts of itself.
fn child(role: &str, args: &Args) -> io::Result<()> {
    match role {
        "pingpong-client" => {
            cpu::pin_current_thread(CLIENT_CPU);
            let addr = required(args.addr, "--addr")?;
            let conns = required(args.conns, "--conns")?;
            let rounds = required(args.rounds, "--rounds")?;
            loadgen::ping_pong(addr, conns, Until::Rounds(rounds), None).map(drop)
        }
        "idle-server" => scenarios::idle_server_process(
            required(args.peer, "--peer")?,
            required(args.conns, "--conns")?,
        ),
        "idle-client" => scenarios::idle_client_process(
            required(args.addr, "--addr")?,
            required(args.conns, "--conns")?,
        ),
        _ => Err(io::Error::other(format!("unknown {ROLE_VAR}={role:?}"))),
    }
}

/// `serve-PEER`: the echo server alone in this process (on the main thread,
/// so `strace` without `-f` sees all of it and none of the client), and the
/// load generator in a child process.
fn serve(peer: Peer, args: &Args) -> io::Result<()> {
    let conns = required(args.conns, "--conns")?;
    let rounds = required(args.rounds, "--rounds")?;
    if let (false, Some(reason)) = (peer.available(), Peer::unavailable_reason()) {
        return Err(io::Error::other(format!(
            "{} cannot run here: {reason}",
            peer.name()
        )));
    }
    cpu::pin_current_thread(SERVER_CPU);
    let (listener, addr) = echo::listener()?;
    let mut client = Command::new(std::env::current_exe()?)
        .env(ROLE_VAR, "pingpong-client")
        .args(["--addr", &addr.to_string()])
        .args([
            "--conns",
            &conns.to_string(),
            "--rounds",
            &rounds.to_string(),
        ])
        .spawn()?;
    // If the client fails before it has connected, the server would wait
    // for connections for ever: a watchdog ends the process instead.
    let watchdog = std::thread::spawn(move || {
        let status = client.wait();
        if !matches!(&status, Ok(status) if status.success()) {
            eprintln!("peers: the load generator failed: {status:?}");
            std::process::exit(1);
        }
    });
    let start = Instant::now();
    peer.echo_server(listener, EchoConfig::new(conns, scenarios::PINGPONG_BUFFER))?;
    let elapsed = start.elapsed();
    // `strace` without `-f` sees only the main thread: check that the
    // server did all its work there (the other thread is the watchdog).
    // io_uring's io-wq workers (`iou-wrk-*`, threads of this process run
    // by the kernel) do the ring's blocking work: `strace` does not see
    // them, the process's CPU clock below does.
    let (mut threads, mut io_workers) = (0, 0);
    for task in std::fs::read_dir("/proc/self/task")? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        if comm.starts_with("iou-") {
            io_workers += 1;
        } else {
            threads += 1;
        }
    }
    if threads > 2 {
        eprintln!("peers: warning: the server process has {threads} threads, not 2");
    }
    watchdog.join().expect("the watchdog does not panic");
    // Every thread's CPU time, exited ones included: the server's, the
    // watchdog's (it only waits), and the io-wq workers'.
    let cpu_all = ThreadClock::process().elapsed();
    let round_trips = conns as u64 * rounds;
    eprintln!(
        "peers: {} served {conns} connection(s) x {rounds} = {round_trips} round trips in {:.3} s",
        peer.name(),
        elapsed.as_secs_f64()
    );
    eprintln!(
        "peers: cpu_all_ns={} io_workers_at_exit={io_workers}",
        cpu_all.as_nanos()
    );
    Ok(())
}

fn bench(args: &Args) -> io::Result<()> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(runs) = args.runs {
        plan.runs = runs.max(1);
    }
    if let Some(workers) = args.workers {
        plan.workers = workers.max(1);
    }
    cpu::set_thread_limit(plan.thread_limit);
    let scenarios: Vec<_> = scenarios::all(&plan)
        .into_iter()
        .filter(|s| args.words.is_empty() || args.words.iter().any(|w| s.name.contains(w.as_str())))
        .collect();
    if args.list || scenarios.is_empty() {
        if scenarios.is_empty() {
            eprintln!("no scenario matches {:?}; the scenarios are:", args.words);
        }
        for scenario in scenarios::all(&plan) {
            println!("{:<18} {}", scenario.name, scenario.about);
        }
        return if args.list {
            Ok(())
        } else {
            Err(io::Error::other("nothing to run"))
        };
    }
    println!(
        "xev vs tokio current_thread vs a hand-written mio loop: {} CPU(s), servers and \
         runtimes pinned to CPU {SERVER_CPU}, clients to CPU {CLIENT_CPU}; median of {} \
         interleaved run(s){}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        plan.runs,
        if args.quick {
            " (--quick: smaller counts)"
        } else {
            ""
        }
    );
    match Peer::unavailable_reason() {
        None => println!(
            "xev runs on both backends in the TCP scenarios (xev/poll, xev/io_uring); \
             xev's echo servers reply with {}",
            xev_peer::shape().name()
        ),
        Some(reason) => println!(
            "xev/io_uring skipped: this kernel refuses io_uring ({reason}); xev's echo \
             servers reply with {}",
            xev_peer::shape().name()
        ),
    }
    println!("load average before: {}", load_average());
    let mut summary = Vec::new();
    for scenario in &scenarios {
        println!("\n== {}: {}", scenario.name, scenario.about);
        let started = Instant::now();
        let samples = scenario.run(plan.runs)?;
        print!("{}", samples.table(args.verbose));
        println!("  ({:.1} s)", started.elapsed().as_secs_f64());
        summary.push((scenario.name.clone(), samples));
    }
    println!("\n== summary: the first figure of each scenario");
    for (name, samples) in &summary {
        let table = samples.table(false);
        let headline = table.lines().nth(1).unwrap_or_default();
        println!("  {name:<18}{}", headline.trim_start());
    }
    println!("load average after: {}", load_average());
    Ok(())
}

/// `/proc/loadavg`: on a shared machine, how much else was running.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}
