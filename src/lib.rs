//! # xev
//!
//! A small single-threaded async runtime for TCP, in the spirit of the Zig
//! event loop [libxev]: one thread runs an executor and a [mio] reactor, whose
//! wakers resolve `accept`, `connect`, `read` and `write` futures, and a
//! [`WriteQueue`](io::WriteQueue) takes care of ordered, partial, vectored
//! writes.
//!
//! ```
//! use xev::net::{TcpListener, TcpStream};
//!
//! xev::rt::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     // A task: runs concurrently with this future, on this same thread.
//!     let server = xev::rt::spawn(async move {
//!         let (stream, _peer) = listener.accept().await?;
//!         let mut buf = [0; 64];
//!         let n = stream.read(&mut buf).await?;
//!         stream.write_all(&buf[..n]).await?;
//!         std::io::Result::Ok(())
//!     });
//!
//!     let client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut echo = [0; 5];
//!     client.read_exact(&mut echo).await?;
//!     assert_eq!(&echo, b"hello");
//!     server.await??;
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # The model
//!
//! **One thread, one runtime.** [`rt::block_on`] (or [`#[xev::main]`](main),
//! or [`rt::Runtime::block_on`]) runs a future to completion on the thread that
//! calls it. Everything else — every task, every socket, every timer — lives
//! on that thread too. Nothing is ever moved to another thread, so nothing has
//! to be `Send`: share state between tasks with `Rc` and `RefCell`. A runtime
//! per thread (each with its own sockets) is how to use more cores: see
//! [More than one core](#more-than-one-core).
//!
//! The flip side: a task that blocks the thread (a blocking syscall, a long
//! computation, `std::thread::sleep`) stops everything else. Run such work
//! with [`rt::spawn_blocking`], on the runtime's pool of threads, or on a
//! `std::thread` that sends the result back with a channel; wakers may be
//! used from any thread, and a wake from another thread interrupts the
//! reactor:
//!
//! ```
//! use futures::channel::oneshot;
//!
//! let sum = xev::rt::block_on(async {
//!     let (tx, rx) = oneshot::channel();
//!     std::thread::spawn(move || {
//!         let sum: u64 = (1..=1_000_000).sum(); // stand-in for blocking work
//!         let _ = tx.send(sum);
//!     });
//!     rx.await.unwrap()
//! });
//! assert_eq!(sum, 500_000_500_000);
//! ```
//!
//! **Tasks.** [`rt::spawn`] starts a task: a future the runtime polls
//! whenever it has been woken. It returns a [`JoinHandle`](rt::JoinHandle),
//! itself a future for the task's output. Dropping the handle detaches the task
//! (it keeps running); [`abort`](rt::JoinHandle::abort) cancels it. A panic in a
//! task is caught and comes back as a [`JoinError`](rt::JoinError); it never
//! takes the runtime down. When the runtime ends (when `rt::block_on` returns),
//! the tasks still running are dropped.
//!
//! **The reactor.** Each socket is registered with the runtime current when it
//! was created, and must be used on that runtime. When a read (say) finds no
//! data, its future stores the task's waker and returns `Pending`; when no task
//! is ready, the runtime sleeps in the OS's poller (`epoll`, `kqueue`, IOCP via
//! mio) until a socket is ready, the next timer is due, or another thread wakes
//! a task. The ready socket's waker then schedules exactly the task waiting on
//! it. Timers ([`time::sleep`], [`time::timeout`], [`time::interval`]) have one
//! millisecond resolution and never fire early; they belong to the runtime
//! that first polls them, and run on its clock, [`time::now`].
//!
//! **Fairness.** Each turn of the loop polls the tasks that were ready when
//! it began (a bounded batch), then checks for I/O and timers: a task that
//! keeps waking itself runs once per turn and cannot starve the others. A
//! task looping over a socket that is always ready is made to yield too:
//! after a budget of I/O operations in one poll, xev's I/O futures return
//! `Pending` and reschedule it (tokio calls this cooperative scheduling).
//! Plain computation, though, holds the thread until it reaches an
//! `.await` that returns `Pending`; [`rt::yield_now`] gives the others a
//! turn inside a long loop.
//!
//! # More than one core
//!
//! xev stays single-threaded inside: to use N cores, run N runtimes, one
//! per thread, each with its own sockets and tasks (thread per core, as
//! monoio, glommio and actix do). [`rt::Pool`] does that: N worker threads
//! (optionally pinned, one per CPU), each running its own runtime.
//! [`Pool::run`](rt::Pool::run) runs an async function on every worker and
//! returns the outputs in worker order; [`Pool::serve`](rt::Pool::serve)
//! accepts TCP connections on every worker and runs a handler per
//! connection, on the worker that has it. Nothing inside a worker has to be
//! `Send`; only the function given to the pool crosses threads.
//!
//! Two ways to share one port ([`rt::AcceptMode`]):
//!
//! - `ReusePort`: every worker has its own `SO_REUSEPORT` listener and the
//!   kernel picks one per connection, **by a hash of the addresses, not by
//!   load**; closing one listener of the group **resets the connections
//!   still queued on it**, unless `net.ipv4.tcp_migrate_req=1` (Linux 5.14+).
//! - `Acceptor`: one listener; worker 0 accepts and hands each connection
//!   (a `std` socket, through a queue and the runtime's cross-thread wake)
//!   to the worker with the fewest live connections. The spread follows the
//!   load and the listener closes in one step, at the cost of one hand-off
//!   per connection.
//!
//! **Graceful shutdown.** [`Pool::shutdown_handle`](rt::Pool::shutdown_handle)
//! gives a [`ShutdownHandle`](rt::ShutdownHandle) (`Clone + Send + Sync`):
//! [`shutdown(grace)`](rt::ShutdownHandle::shutdown) closes every listener at
//! once, lets the live connections finish for up to `grace`, aborts the
//! rest, and `serve` returns. Wire it to [`signal::ctrl_c`] or
//! [`signal::unix::signal`] (`SIGTERM`): any runtime, any number of them,
//! can listen for a signal. On a single runtime, the same pattern is a
//! [`JoinSet`](rt::JoinSet) of connection tasks and a timeout (see
//! [`signal`] and `examples/graceful.rs`).
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use xev::rt::{AcceptMode, Pool, Worker};
//!
//! let pool = Pool::builder().threads(2).build()?;
//! let server = pool.bind("127.0.0.1:0", AcceptMode::Acceptor)?;
//! let addr = server.local_addr()?;
//! let shutdown = pool.shutdown_handle();
//! let client = std::thread::spawn(move || {
//!     let mut answers = Vec::new();
//!     for _ in 0..4 {
//!         let mut stream = std::net::TcpStream::connect(addr)?;
//!         let mut answer = String::new();
//!         stream.read_to_string(&mut answer)?;
//!         answers.push(answer);
//!     }
//!     shutdown.shutdown(Duration::from_secs(5)); // in a real server: on SIGTERM
//!     std::io::Result::Ok(answers)
//! });
//! server.serve(|stream, _peer| async move {
//!     let worker = Worker::current().unwrap();
//!     let _ = stream.write_all(format!("worker {}", worker.index()).as_bytes()).await;
//! })?;
//! let answers = client.join().unwrap()?;
//! assert!(answers.contains(&"worker 0".to_string()));
//! assert!(answers.contains(&"worker 1".to_string()));
//! # std::io::Result::Ok(())
//! ```
//!
//! `examples/hyper_multicore.rs` is an HTTP/1.1 server on every core that
//! shuts down gracefully on `SIGINT`/`SIGTERM`; `cargo bench --bench peers
//! -- multicore` compares the pool with tokio's multi-threaded runtime.
//!
//! # Cancel safety
//!
//! Dropping a future cancels it: that is what [`time::timeout`],
//! `futures::select!` and an aborted task do. Every async method in xev says in
//! its docs (`# Cancel safety`) what is lost when its future is dropped before
//! it completes. In short: [`read`](net::TcpStream::read),
//! [`write`](net::TcpStream::write), [`accept`](net::TcpListener::accept),
//! [`readable`](net::TcpStream::readable), [`peek`](net::TcpStream::peek) and
//! [`Interval::tick`](time::Interval::tick) lose nothing — they either completed
//! or had no effect — so they can be retried in a loop with a timeout or in a
//! `select!`. [`read_exact`](net::TcpStream::read_exact) and
//! [`write_all`](net::TcpStream::write_all) are not: when dropped, an unknown
//! part of the buffer has been transferred.
//!
//! ```
//! use std::time::Duration;
//! use xev::net::{TcpListener, TcpStream};
//!
//! xev::rt::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let client = TcpStream::connect(listener.local_addr()?).await?;
//!     let (server, _) = listener.accept().await?;
//!
//!     let mut buf = [0; 16];
//!     // Nothing has arrived: the read times out, and nothing is lost...
//!     let waited = xev::time::timeout(Duration::from_millis(10), server.read(&mut buf)).await;
//!     assert!(waited.is_err());
//!     // ...so the next read gets all of it.
//!     client.write_all(b"late").await?;
//!     let n = server.read(&mut buf).await?;
//!     assert_eq!(&buf[..n], b"late");
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # When to use `WriteQueue`
//!
//! [`TcpStream::write_all`](net::TcpStream::write_all) is right when the task
//! that writes waits for the write anyway: a request/response loop, a proxy
//! copying one direction. Reach for [`WriteQueue`](io::WriteQueue) when:
//!
//! - **several tasks write to one socket** (replies from many handlers,
//!   messages from many peers): each [`push`](io::WriteQueue::push) is written
//!   whole and in order, never interleaved with another;
//! - **the writer should not wait** (fan-out to many clients, fire-and-forget
//!   notifications): the runtime drains the queue whether or not anyone awaits
//!   the [`WriteRequest`](io::WriteRequest);
//! - **many small messages** are sent: adjacent buffers go out in one vectored
//!   send, so they cost one syscall, not one each;
//! - **a write must not be torn by cancellation**: dropping a request does not
//!   cancel its write, unlike dropping `write_all`.
//!
//! Watch [`queued_bytes`](io::WriteQueue::queued_bytes) to apply backpressure
//! to a peer that reads slower than you write. (tokio has no equivalent: there,
//! one writes through a channel to a writer task.)
//!
//! ```
//! use std::rc::Rc;
//! use xev::io::WriteQueue;
//! use xev::net::{TcpListener, TcpStream};
//!
//! xev::rt::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let client = TcpStream::connect(listener.local_addr()?).await?;
//!     let (server, _) = listener.accept().await?;
//!
//!     let queue = Rc::new(WriteQueue::new(Rc::new(server)));
//!     let tasks: Vec<_> = (0..3)
//!         .map(|i| {
//!             let queue = queue.clone();
//!             // Each task pushes and moves on; each message arrives whole.
//!             xev::rt::spawn(async move {
//!                 drop(queue.push(format!("message {i}\n")));
//!             })
//!         })
//!         .collect();
//!     for task in tasks {
//!         task.await.unwrap();
//!     }
//!     queue.flush().await?;
//!
//!     let mut got = vec![0; 30];
//!     client.read_exact(&mut got).await?;
//!     assert_eq!(got, b"message 0\nmessage 1\nmessage 2\n");
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # Coming from tokio
//!
//! xev is close to tokio's current-thread runtime with `LocalSet`, minus
//! everything that is not TCP or timers. The names map as follows.
//!
//! | tokio | xev | notes |
//! |---|---|---|
//! | `#[tokio::main(flavor = "current_thread")]` | [`#[xev::main]`](main) | |
//! | `#[tokio::test]` | [`#[xev::test]`](test) | `#[xev::test(timeout_ms = 2000)]` bounds a test (in real time) |
//! | `#[tokio::test(start_paused = true)]`, `time::{pause, resume, advance}` | the same, with feature `test-util` | a paused clock jumps to the next timer when idle |
//! | `runtime::Builder::new_current_thread().enable_all().build()` | [`rt::Runtime::builder().build()`](rt::Runtime::builder) | I/O and timers are always on |
//! | `Runtime::block_on(&self, f)` | [`rt::Runtime::block_on`], [`rt::block_on`] | `rt::block_on` builds a runtime for the call |
//! | `tokio::spawn`, `task::spawn_local` + `LocalSet` | [`rt::spawn`] | no `Send` bound, no `LocalSet` |
//! | `task::JoinHandle`, `task::JoinError` | [`rt::JoinHandle`], [`rt::JoinError`] | `abort()`, `is_finished()`, `id()`, `abort_handle()`; dropping detaches |
//! | `task::AbortHandle`, `task::Id`, `task::try_id` | [`rt::AbortHandle`], [`rt::Id`], [`rt::try_id`] | `AbortHandle` is `Send + Sync` |
//! | `task::JoinSet` | [`rt::JoinSet`] | `spawn` takes `!Send` futures |
//! | `runtime::Handle`, `Runtime::enter` | [`rt::Handle`], [`rt::Runtime::enter`] | `Handle::spawn` (`Send` futures) works from any thread |
//! | `task::yield_now` | [`rt::yield_now`] | |
//! | `runtime::Builder::new_multi_thread().worker_threads(n)` | [`rt::Pool::builder().threads(n)`](rt::Pool::builder) | thread per core: tasks never move between workers; [`Pool::serve`](rt::Pool::serve) spreads connections |
//! | `signal::ctrl_c`, `signal::unix::{signal, SignalKind}` | [`signal::ctrl_c`], [`signal::unix::signal`] | Unix |
//! | `task::spawn_blocking` | [`rt::spawn_blocking`] | a pool per runtime; dropping the runtime does not wait for it |
//! | `time::sleep`, `sleep_until`, `timeout`, `timeout_at` | [`time::sleep`], [`time::sleep_until`], [`time::timeout`], [`time::timeout_at`] | `Err(Elapsed)` on timeout |
//! | `time::interval(p)` + `.tick().await` | [`time::interval`] + [`tick`](time::Interval::tick) | also a `Stream`; [`time::MissedTickBehavior`] and the `reset` methods as tokio's |
//! | `time::Instant::now()` | [`time::now()`](time::now) | `time::Instant` is `std::time::Instant` |
//! | `time::{Duration, Instant}` | [`time::Duration`], [`time::Instant`] | re-exported from `std::time` |
//! | `net::TcpListener::bind(a).await` | [`net::TcpListener::bind(a)`](net::TcpListener::bind) | **not async** (it never waits; a host name resolves on the calling thread); `SO_REUSEADDR` set; [`bind_reuseport`](net::TcpListener::bind_reuseport) for `SO_REUSEPORT` |
//! | `listener.accept().await` | [`listener.accept().await`](net::TcpListener::accept) | also [`incoming()`](net::TcpListener::incoming), a `Stream` |
//! | `net::TcpStream::connect(a).await` | [`net::TcpStream::connect(a).await`](net::TcpStream::connect) | takes [`net::ToSocketAddrs`]; host names resolve on the blocking pool; each address is tried in turn |
//! | `net::lookup_host`, `net::ToSocketAddrs` | [`net::lookup_host`], [`net::ToSocketAddrs`] | sealed, implemented for the same types |
//! | `net::TcpSocket` | [`net::TcpSocket`] | the same setters and getters; `set_tos`/`tos` kept beside `set_tos_v4`/`tos_v4`; Linux-only options return `Unsupported` elsewhere instead of being absent |
//! | `set_linger(Some(ZERO))` | [`set_zero_linger()`](net::TcpStream::set_zero_linger) | on streams and sockets |
//! | `TcpStream::try_from(std)`, `from_std` | the same | `from_std` switches the socket to non-blocking mode itself |
//! | `AsyncReadExt::read(&mut s, buf)` | [`s.read(buf)`](net::TcpStream::read) | inherent, takes `&self` |
//! | `AsyncReadExt::read_exact` | [`s.read_exact(buf)`](net::TcpStream::read_exact) | returns `()`, not the length |
//! | `AsyncWriteExt::write`, `write_all` | [`s.write`](net::TcpStream::write), [`s.write_all`](net::TcpStream::write_all) | inherent, `&self`; no flush needed |
//! | `AsyncWriteExt::shutdown(&mut s)` | [`s.shutdown(Shutdown::Write)`](net::TcpStream::shutdown) | synchronous |
//! | `s.split()` (borrowed halves) | [`s.split()`](net::TcpStream::split), or just `&s` / `Rc<TcpStream>` | every method takes `&self`; call it as `TcpStream::split(&s)` when `futures::AsyncReadExt` is in scope (its own `split` would win) |
//! | `net::tcp::{ReadHalf, WriteHalf, OwnedReadHalf, OwnedWriteHalf}` | [`net::tcp`] | also at `xev::net::*`; all have `AsRef<TcpStream>`, `peer_addr`, `local_addr` |
//! | `s.into_split()`, `reunite` | [`s.into_split()`](net::TcpStream::into_split), [`reunite`](net::OwnedReadHalf::reunite) | dropping the write half sends FIN |
//! | `readable`, `writable`, `try_read`, `try_write`, `peek` | the same names on [`net::TcpStream`] | waiting for readiness takes no cooperative budget; `try_*` spend it |
//! | `ready(Interest)`, `io::{Interest, Ready}`, `try_io`, `poll_read_ready`, `poll_write_ready`, `try_read_vectored`, `try_write_vectored` | the same on [`net::TcpStream`]; [`net::Interest`], [`net::Ready`] (also in [`io`]) | |
//! | `io::copy`, `io::BufReader`, `AsyncBufReadExt::lines` | `futures::io::{copy, BufReader, AsyncBufReadExt}` | or tokio's, with feature `tokio-io` |
//! | `tokio_util::codec::Framed` | the same, with feature `tokio-io` | |
//! | `mpsc` channel + a writer task | [`io::WriteQueue`] | [when to use it](#when-to-use-writequeue) |
//! | `sync::{mpsc, oneshot, Mutex, Notify}` | `futures::channel`, or `tokio::sync` itself | tokio's sync types need no tokio runtime |
//! | `select!` | `futures::select!`, `futures::future::select` | |
//!
//! What differs, and why: `TcpListener::bind` is synchronous because binding
//! never waits (tokio's is `async` only to resolve names off-thread); I/O
//! methods are inherent and take `&self`, so sharing a stream between tasks
//! needs no split; `spawn` takes `!Send` futures because each runtime is one
//! thread; there is no `LocalSet`, no multi-threaded scheduler and no
//! `tokio::sync` of xev's own (tokio's and `futures`' channels work as they
//! are).
//!
//! # Interoperating
//!
//! - **`futures`**: [`TcpStream`](net::TcpStream), `&TcpStream` and the owned
//!   halves implement `futures_io::AsyncRead` and `AsyncWrite`, and
//!   [`incoming()`](net::TcpListener::incoming) and [`time::Interval`] are
//!   `futures_core::Stream`s, so `futures::io::{copy, BufReader}`,
//!   `AsyncBufReadExt::lines` and `StreamExt` work on them.
//! - **tokio's I/O traits**: with the `tokio-io` feature, the same types
//!   implement `tokio::io::AsyncRead` and `AsyncWrite`, so `tokio-util` codecs
//!   and TLS crates built on tokio's traits run on xev (no tokio runtime is
//!   started).
//! - **hyper** (feature `hyper`): [`xev::hyper`]'s `Io`,
//!   `Timer` and `Executor` are hyper 1.x's runtime traits, so hyper's
//!   servers and clients run on xev, HTTP/2 and hyper's timeouts included;
//!   `examples/hyper_server.rs` and `examples/https_server.rs` are servers
//!   that slow clients cannot hold.
//!
//! Since xev's own `read`/`write` methods are inherent, they take precedence
//! over the extension traits' methods of the same name: importing
//! `futures::AsyncReadExt` or `tokio::io::AsyncReadExt` does not make
//! `stream.read(buf)` ambiguous.
//!
//! ```
//! use futures::io::{AsyncBufReadExt, BufReader};
//! use futures::TryStreamExt;
//! use xev::net::{TcpListener, TcpStream};
//!
//! xev::rt::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let client = TcpStream::connect(listener.local_addr()?).await?;
//!     let (server, _) = listener.accept().await?;
//!     client.write_all(b"one\ntwo\n").await?;
//!     drop(client);
//!
//!     let lines: Vec<String> = BufReader::new(&server).lines().try_collect().await?;
//!     assert_eq!(lines, ["one", "two"]);
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # HTTP with hyper
//!
//! With the feature `hyper`, [`xev::hyper`] gives hyper 1.x
//! what it asks of a runtime, as hyper-util's `TokioIo`, `TokioTimer` and
//! `TokioExecutor` do for tokio:
//!
//! | hyper needs | xev | for |
//! |---|---|---|
//! | `hyper::rt::Read` + `Write` | `xev::hyper::Io<T>`, over any futures-io stream | every connection, plain or TLS |
//! | `hyper::rt::Timer` | `xev::hyper::Timer` | `header_read_timeout` (slowloris, idle keep-alive), HTTP/2 keep-alive |
//! | `hyper::rt::Executor` | `xev::hyper::Executor` | HTTP/2: a `!Send` task per stream |
//!
//! `Io::set_write_timeout` cuts off a client that stops reading its
//! responses. Services need not be `Send`. The module's docs show a server
//! and a client; TLS goes through futures-rustls (its streams are
//! futures-io, which `Io` takes as they are).
//!
//! # Backends: poll or io_uring
//!
//! A runtime waits for I/O with one of two backends, libxev's
//! `TCPDynamic` choice made at run time ([`rt::Backend`]):
//!
//! - **`Poll`** (the default): mio's readiness (epoll on Linux, kqueue on
//!   macOS and the BSDs). A read or write is a system call on the socket,
//!   made when epoll says it can proceed.
//! - **`IoUring`** (Linux 5.11+): an io_uring ring. A read that finds
//!   nothing arms a receive into a buffer the runtime owns; the kernel
//!   fills it when data comes, and reads copy out of it. A
//!   [`WriteQueue`](io::WriteQueue) lends its own buffers to a `sendmsg` in
//!   the ring (no copy). Everything a loop turn queued (receives, queued
//!   sends, polls of new sockets, cancellations) goes to the kernel, and
//!   every completion comes back, in one `io_uring_enter`. Plain writes
//!   (`write`, `write_all`, `try_write`) stay `send` calls on the socket,
//!   so `Ok(n)` means the same on both: the kernel has the bytes.
//! - **`Auto`**: `IoUring` where the kernel allows it, `Poll` otherwise.
//!   io_uring is probed once per process (a ring set up; the features and
//!   opcodes used checked); any refusal (`ENOSYS` from an old kernel or a
//!   seccomp profile, `EPERM` from `kernel.io_uring_disabled`, `ENOMEM`, a
//!   missing opcode) falls back to `Poll`.
//!
//! Choose with [`Builder::backend`](rt::Builder::backend), or for a whole
//! process with the environment variable `XEV_BACKEND=poll|io_uring|auto`
//! (an explicit `Builder::backend` wins). An explicit `IoUring` the kernel
//! refuses makes `build` fail with the kernel's errno; it never falls back
//! silently. [`Runtime::backend`](rt::Runtime::backend) (and
//! [`Handle::backend`](rt::Handle::backend)) says which one runs,
//! [`Runtime::backend_reason`](rt::Runtime::backend_reason) why, and the
//! runtime's `Debug` shows both:
//!
//! ```
//! use xev::rt::{Backend, Runtime};
//!
//! let rt = Runtime::builder().backend(Backend::Auto).build()?;
//! println!("{:?}: {}", rt.backend(), rt.backend_reason());
//! // e.g. "IoUring: io_uring, auto (set by Builder::backend): the kernel allows it"
//! //  or  "Poll: poll, auto (...): io_uring refused: io_uring_setup: Operation
//! //       not permitted (os error 1)"
//! # std::io::Result::Ok(())
//! ```
//!
//! **The same API, the same meaning.** Every public type and method works on
//! both, with the same cancellation guarantees; the whole test suite runs
//! on each. What differs is inside, and shows only here:
//!
//! - *Reads are cancel safe on both*; under `IoUring` a read dropped while
//!   its receive is armed leaves it armed: the bytes wait in the runtime's
//!   buffer for the next read (or `try_read`, `peek`, `readable`).
//! - *Memory*: under `IoUring` a stream with a read pending holds a
//!   receive buffer: the read's length, at least 2 KiB, doubled each time
//!   a receive fills it, up to 64 KiB; under `Poll` the kernel holds the
//!   bytes until they are read.
//! - *`into_std`* of an `IoUring` stream fails (`Other`, saying why) while
//!   the runtime holds bytes for it or has a receive armed: read them first.
//! - *[`try_io`](net::TcpStream::try_io)* runs your own syscall on the
//!   socket; under `IoUring` bytes the runtime already received for a read
//!   are not in the socket any more: use it on streams you do not also
//!   `read`.
//! - *`WriteQueue::abort`* drops the queued buffers at once, except a batch
//!   lent to a send in flight in the ring: the kernel may read it until the
//!   cancellation completes, at the loop's next turn.
//! - *Closing* a stream cancels its operations in the ring; the socket
//!   closes when the cancellations are submitted, at the end of the loop
//!   turn (at once outside `block_on`).
//!
//! **Safety.** xev itself has no `unsafe`. The ring lives in the workspace
//! crate `xev-uring` (on the `io-uring` crate), whose one rule is that a
//! buffer the kernel may read or write belongs to the ring from submission
//! until its completion is reaped, cancellations included, and a dropped
//! ring drains (or leaks) rather than frees; its tests of that rule run
//! under valgrind in CI.
//!
//! **Which is faster.** Measured in `benches/README.md` ("Backends"), with
//! tokio and a hand-written mio loop in the same run. Under `IoUring` an
//! echo server replying through a `WriteQueue` makes 0.05 system calls per
//! round trip at 64 connections (one `io_uring_enter` per loop turn),
//! against 2.02 under `Poll`, and a 64 KiB stream moves 1.27× the bytes
//! per second; but at 1 to 64 connections its CPU time per round trip is
//! no lower than `Poll`'s (the kernel's work is ~90% of it either way), and
//! idle connections hold their receive buffers. So `Poll` stays the
//! default; try `XEV_BACKEND=io_uring` on your own load.
//!
//! # Features
//!
//! - `tokio-io` (off by default): `tokio::io::AsyncRead`/`AsyncWrite` for
//!   [`net::TcpStream`], `&TcpStream`, [`net::OwnedReadHalf`] and
//!   [`net::OwnedWriteHalf`]. Adds a dependency on `tokio` with no features
//!   (the traits only).
//! - `hyper` (off by default): [`xev::hyper`]. Adds a
//!   dependency on `hyper` with no features (its runtime traits; the
//!   application picks hyper's server or client and protocols).
//! - `test-util` (off by default): a pausable runtime clock for tests
//!   ([`time`]'s `pause`, `resume`, `advance`, and
//!   `#[xev::test(start_paused = true)]`).
//!
//! [libxev]: https://github.com/mitchellh/libxev
//! [mio]: https://docs.rs/mio
#![cfg_attr(feature = "hyper", doc = "[`xev::hyper`]: crate::hyper")]
#![cfg_attr(
    not(feature = "hyper"),
    doc = "[`xev::hyper`]: https://docs.rs/xev/latest/xev/hyper/index.html"
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
pub mod net;
pub mod rt;
#[cfg(unix)]
pub mod signal;
pub mod time;

pub use xev_macros::{main, test};
