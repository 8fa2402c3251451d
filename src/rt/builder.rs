//! [`Builder`]: a runtime's settings.

use std::io;
use std::time::Duration;

use super::backend::Backend;
use super::blocking::{DEFAULT_KEEP_ALIVE, DEFAULT_MAX_THREADS};
use super::runtime::Runtime;

/// The default capacity of the reactor's event buffer.
const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = xev::rt::Runtime::builder().event_capacity(256).build().unwrap();
/// assert_eq!(rt.block_on(async { 7 }), 7);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) event_capacity: usize,
    pub(crate) max_blocking_threads: usize,
    pub(crate) thread_keep_alive: Duration,
    /// Set by `start_paused` (feature `test-util`, in `time::clock`).
    pub(crate) start_paused: bool,
    /// `None`: `XEV_BACKEND`'s, else `Poll`.
    pub(crate) backend: Option<Backend>,
}

impl Builder {
    /// A builder with default settings.
    pub fn new() -> Builder {
        Builder {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            max_blocking_threads: DEFAULT_MAX_THREADS,
            thread_keep_alive: DEFAULT_KEEP_ALIVE,
            start_paused: false,
            backend: None,
        }
    }

    /// How many I/O events one reactor poll can return (default 1024). More
    /// events than this are simply collected by the next poll.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Builder {
        assert!(capacity > 0, "event capacity must be at least 1");
        self.event_capacity = capacity;
        self
    }

    /// The most threads [`spawn_blocking`](crate::rt::spawn_blocking) may
    /// run at once (default 512). Closures spawned while all are busy wait
    /// in a queue, in order. Threads start only when needed.
    ///
    /// # Panics
    /// If `threads` is zero.
    ///
    /// ```
    /// let rt = xev::rt::Runtime::builder().max_blocking_threads(2).build().unwrap();
    /// let sum = rt.block_on(async {
    ///     let a = xev::rt::spawn_blocking(|| (1..=100u32).sum::<u32>());
    ///     let b = xev::rt::spawn_blocking(|| (101..=200u32).sum::<u32>());
    ///     a.await.unwrap() + b.await.unwrap()
    /// });
    /// assert_eq!(sum, 20100);
    /// ```
    pub fn max_blocking_threads(&mut self, threads: usize) -> &mut Builder {
        assert!(threads > 0, "max_blocking_threads must be at least 1");
        self.max_blocking_threads = threads;
        self
    }

    /// How long an idle [`spawn_blocking`](crate::rt::spawn_blocking)
    /// thread waits for more work before it exits (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = xev::rt::Runtime::builder()
    ///     .thread_keep_alive(Duration::from_millis(100))
    ///     .build()
    ///     .unwrap();
    /// let one = rt.block_on(async { xev::rt::spawn_blocking(|| 1).await });
    /// assert_eq!(one.unwrap(), 1);
    /// ```
    pub fn thread_keep_alive(&mut self, keep_alive: Duration) -> &mut Builder {
        self.thread_keep_alive = keep_alive;
        self
    }

    /// How the runtime waits for I/O: mio's epoll ([`Backend::Poll`]),
    /// io_uring ([`Backend::IoUring`]), or io_uring where the kernel allows
    /// it ([`Backend::Auto`]). Without this call, the environment variable
    /// `XEV_BACKEND` (`auto`, `poll`, `io_uring`) decides, and `Poll` when
    /// it is unset. The API behaves the same on every backend.
    ///
    /// ```
    /// use xev::rt::{Backend, Runtime};
    ///
    /// let rt = Runtime::builder().backend(Backend::Auto).build().unwrap();
    /// // Whichever was chosen, sockets work the same:
    /// let echoed = rt.block_on(async {
    ///     let listener = xev::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let client = xev::net::TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"hi").await?;
    ///     let mut buf = [0; 2];
    ///     server.read_exact(&mut buf).await?;
    ///     std::io::Result::Ok(buf)
    /// });
    /// assert_eq!(&echoed.unwrap(), b"hi");
    /// ```
    pub fn backend(&mut self, backend: Backend) -> &mut Builder {
        self.backend = Some(backend);
        self
    }

    /// Builds the runtime.
    ///
    /// # Errors
    /// If the OS refuses to create the `epoll` instance or its eventfd;
    /// with [`Backend::IoUring`], if the kernel refuses io_uring (its
    /// errno: `ENOSYS`, `EPERM`, `ENOMEM`; `Unsupported` for a missing
    /// feature); [`InvalidInput`](io::ErrorKind::InvalidInput) if
    /// `XEV_BACKEND` holds something else than `auto`, `poll` or
    /// `io_uring`.
    pub fn build(&self) -> io::Result<Runtime> {
        Runtime::build(self)
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}
