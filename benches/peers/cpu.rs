//! Where threads run and how much CPU they use: pinning with
//! `sched_setaffinity` and per-thread CPU clocks.
//!
//! This is the only module of the benchmark with `unsafe`: three libc calls
//! that std does not wrap.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The CPU every server (the implementation under test) runs on.
pub const SERVER_CPU: usize = 0;
/// The CPU of the load generator, and of the other end of a two-thread
/// scenario.
pub const CLIENT_CPU: usize = 1;

/// Pins the calling thread to `cpu` (whatever mask it inherited: a child of
/// a pinned process inherits its mask). Where that fails, e.g. on a machine
/// with one CPU, it says so once and leaves the thread where it is, so the
/// benchmark still runs, with client and server sharing a core.
pub fn pin_current_thread(cpu: usize) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    // SAFETY: `set` is a plain bitmask owned by this frame; CPU_ZERO and
    // CPU_SET only write inside it (CPU_SET ignores a cpu beyond
    // CPU_SETSIZE), and sched_setaffinity(0, ..) reads
    // `size_of::<cpu_set_t>()` bytes of it for the calling thread.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result != 0 && !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "peers: cannot pin a thread to CPU {cpu} ({}); threads run unpinned",
            io::Error::last_os_error()
        );
    }
}

/// Runs `f` on a new thread pinned to `cpu`.
pub fn spawn_pinned<T, F>(cpu: usize, name: &str, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            pin_current_thread(cpu);
            f()
        })
        .expect("the OS lets the benchmark start a thread")
}

/// The CPU time (user + system) consumed by one thread, readable from any
/// thread of the process while that thread is alive.
#[derive(Clone, Copy, Debug)]
pub struct ThreadClock {
    clock: libc::clockid_t,
}

impl ThreadClock {
    /// The clock of the calling thread.
    pub fn current() -> ThreadClock {
        ThreadClock {
            clock: libc::CLOCK_THREAD_CPUTIME_ID,
        }
    }

    /// The CPU time of the whole process, all threads together.
    pub fn process() -> ThreadClock {
        ThreadClock {
            clock: libc::CLOCK_PROCESS_CPUTIME_ID,
        }
    }

    /// CPU time used so far.
    pub fn elapsed(self) -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to write into; the clock id came
        // from the OS (or is the calling thread's).
        let result = unsafe { libc::clock_gettime(self.clock, &mut now) };
        assert_eq!(
            result,
            0,
            "clock_gettime failed: {}",
            io::Error::last_os_error()
        );
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }
}

/// Wall time and the calling thread's CPU time since it started.
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

/// What a [`Stopwatch`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub wall: Duration,
    pub cpu: Duration,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch {
            wall: Instant::now(),
            cpu: ThreadClock::current().elapsed(),
        }
    }

    pub fn stop(&self) -> Timing {
        Timing {
            wall: self.wall.elapsed(),
            cpu: ThreadClock::current().elapsed() - self.cpu,
        }
    }
}

/// How long, in seconds, any one thread of a scenario may take before the
/// benchmark gives up on it: a lost wake-up in a runtime under test must
/// fail the run, not hang it (or CI) for ever. See [`set_thread_limit`].
static THREAD_LIMIT_SECS: AtomicU64 = AtomicU64::new(300);

pub fn set_thread_limit(limit: Duration) {
    THREAD_LIMIT_SECS.store(limit.as_secs().max(1), Ordering::Relaxed);
}

/// Joins `thread` if it finishes within the thread limit; otherwise leaves
/// it behind (the process exits with the error) and says which one hung.
pub fn join_within<T>(thread: JoinHandle<T>, what: &str) -> io::Result<T> {
    let limit = Duration::from_secs(THREAD_LIMIT_SECS.load(Ordering::Relaxed));
    let start = Instant::now();
    while !thread.is_finished() {
        if start.elapsed() > limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the {what} thread did not finish within {} s: a lost wake-up?",
                    limit.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(thread
        .join()
        .unwrap_or_else(|_| panic!("the {what} thread panicked")))
}
