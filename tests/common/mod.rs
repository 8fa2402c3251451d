//! Helpers shared by the integration tests: a seeded generator and the
//! byte patterns it makes, a checksum, loopback connections, bounded waits,
//! re-running one test in a child process, and (in `http`) HTTP clients
//! for the hyper examples' tests.
//!
//! Each test binary declares this module with `mod common;` and uses only
//! part of it.
#![allow(dead_code)]

pub mod http;

use std::future::Future;
use std::io::{self, ErrorKind};
use std::time::Duration;

use futures::future;
use xev::net::{TcpListener, TcpStream};
use xev::time::timeout;

/// xorshift64: a seeded generator, so a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// `len` bytes of a xorshift sequence: deterministic, and different for
/// each `seed`, so a lost, repeated or misplaced chunk changes the checksum.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// FNV-1a, 64 bit, fed incrementally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn of(bytes: &[u8]) -> Fnv {
        let mut fnv = Fnv::new();
        fnv.update(bytes);
        fnv
    }
}

/// A listener on an ephemeral loopback port and a connection to it:
/// `(client, server)`.
pub async fn connected_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let (client, accepted) = future::join(
        TcpStream::connect(listener.local_addr()?),
        listener.accept(),
    )
    .await;
    Ok((client?, accepted?.0))
}

/// Everything `stream` yields until end of stream.
pub async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await? {
            0 => return Ok(received),
            n => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// `future`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still pending after {limit:?}"),
    }
}

pub fn assert_kind<T: std::fmt::Debug>(result: io::Result<T>, kind: ErrorKind) {
    match result {
        Err(error) => assert_eq!(error.kind(), kind, "unexpected error {error:?}"),
        Ok(value) => panic!("expected an error of kind {kind:?}, got Ok({value:?})"),
    }
}

/// Running one test of this binary alone in a fresh copy of it.
#[cfg(unix)]
pub mod child {
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Tells a copy of this binary which test body it is to run.
    const CHILD_ENV: &str = "XEV_TEST_CHILD";

    /// How long a child may run before it counts as hung.
    const CHILD_LIMIT: Duration = Duration::from_secs(60);

    /// Whether this process is the child started for `test`.
    pub fn is_child(test: &str) -> bool {
        std::env::var(CHILD_ENV).is_ok_and(|name| name == test)
    }

    /// Starts a copy of this binary that runs only `test`, as its child.
    pub fn start(test: &str, env: &[(&str, String)]) -> Child {
        Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, test)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a child test process")
    }

    /// Waits for `child`, started for `test`, and returns its output; kills
    /// it and panics if it is still running after `limit`.
    pub fn wait_within(test: &str, child: Child, limit: Duration) -> Output {
        let pid = child.id();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || done_tx.send(child.wait_with_output()));
        match done_rx.recv_timeout(limit) {
            Ok(output) => output.expect("wait for the child"),
            Err(_) => {
                // SAFETY: `kill` has no memory-safety preconditions; the pid
                // is our unreaped child's, so it cannot have been reused.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                panic!("the child running `{test}` was still running after {limit:?}");
            }
        }
    }

    /// Waits for `child` (killing it after [`CHILD_LIMIT`]) and checks that it
    /// ran `test`, passed and was not killed by a signal. Returns its stdout.
    pub fn finish(test: &str, child: Child) -> String {
        use std::os::unix::process::ExitStatusExt;

        let output = wait_within(test, child, CHILD_LIMIT);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            None,
            "the child running `{test}` was killed by a signal\n\
             --- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        assert!(
            output.status.success(),
            "the child running `{test}` failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status
        );
        // A misspelt name would run nothing and exit 0.
        assert!(
            stdout.contains("1 passed"),
            "the child did not run `{test}`\n--- stdout\n{stdout}"
        );
        stdout
    }

    /// Runs the test `test` alone in a fresh copy of this binary and checks
    /// that it passed and was not killed by a signal.
    pub fn run(test: &str) {
        finish(test, start(test, &[]));
    }

    /// A child's stdout, read line by line on a thread of its own, so a
    /// test can wait for one line without blocking on the pipe for good.
    pub struct Lines {
        rx: mpsc::Receiver<String>,
        /// Every line received so far.
        pub seen: Vec<String>,
    }

    impl Lines {
        /// Takes `child`'s stdout (it must be piped, as [`start`] does).
        pub fn of(child: &mut Child) -> Lines {
            use std::io::{BufRead, BufReader};

            let stdout = child.stdout.take().expect("the child's stdout is piped");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    if tx.send(line.unwrap_or_default()).is_err() {
                        break;
                    }
                }
            });
            Lines {
                rx,
                seen: Vec::new(),
            }
        }

        /// Waits (20 s at most) for a line with `marker` followed by a
        /// socket address, and returns the address. libtest may print the
        /// test's name first on the same line.
        pub fn address_after(&mut self, marker: &str) -> std::net::SocketAddr {
            loop {
                let line = self
                    .rx
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|_| panic!("the child prints `{marker}ADDR`"));
                self.seen.push(line.clone());
                if let Some((_, addr)) = line.split_once(marker) {
                    return addr.trim().parse().expect("an address after the marker");
                }
            }
        }

        /// Every line the child printed, one per line: called once it has
        /// exited, this reads to the end of its output (at most 10 s), so a
        /// last line still on its way from the reader thread is not missed.
        pub fn all(&mut self) -> String {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(line) => self.seen.push(line),
                    // The end of the output, or the deadline.
                    Err(_) => break,
                }
            }
            self.seen.join("\n")
        }
    }

    /// Sends `SIGTERM` to `child`.
    pub fn terminate(child: &Child) {
        // SAFETY: `kill` has no memory-safety preconditions; the pid is our
        // unreaped child's, so it cannot have been reused.
        let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to the child");
    }

    /// Waits for `child` to exit until `deadline`; kills it and panics
    /// with `what` if it is still running then.
    pub fn exit_by(
        child: &mut Child,
        deadline: std::time::Instant,
        what: &str,
    ) -> std::process::ExitStatus {
        loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many fds this process has open.
    #[cfg(target_os = "linux")]
    pub fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("list /proc/self/fd")
            .count()
    }

    /// What this process's fds are, for failure messages: `socket` x 12,
    /// `anon_inode:[eventpoll]` x 1, ...
    #[cfg(target_os = "linux")]
    pub fn fd_summary() -> String {
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for entry in std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd") {
            let target = std::fs::read_link(entry.expect("an fd").path())
                .map(|target| target.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "(closed while listing)".into());
            let kind = match target.split_once(":[") {
                Some(("socket", _)) => "socket".to_string(),
                _ => target,
            };
            *kinds.entry(kind).or_default() += 1;
        }
        kinds
            .iter()
            .map(|(kind, count)| format!("{kind} x {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
