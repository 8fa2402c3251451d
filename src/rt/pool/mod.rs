//! [`Pool`]: more than one core, thread per core.
//!
//! A pool is N threads, each running its own single-threaded xev runtime:
//! nothing is shared between workers and nothing inside a worker needs to
//! be `Send`, as in monoio, glommio or actix. Work reaches a worker as a
//! remote spawn on its runtime (its [`Handle`](super::Handle)'s queue and
//! cross-thread wake); [`Pool::run`] sends the same function to every
//! worker, and [`Pool::serve`] runs a TCP server on all of them.
//!
//! - `notify`: the cross-thread event that closes the pool, stops a `run`
//!   and starts a shutdown;
//! - `worker`: starting, pinning and naming the threads; [`Worker`];
//! - `server`: [`Pool::bind`], [`Server`] and the per-worker accept loops;
//! - `handoff`: the `Acceptor` mode's least-loaded choice and inboxes;
//! - `connections`: the connection tasks a worker runs, for the grace
//!   period;
//! - `shutdown`: [`ShutdownHandle`].

mod connections;
mod handoff;
mod notify;
mod server;
mod shutdown;
mod worker;

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::Poll;

use notify::Notifier;
use worker::{Start, WorkerThread};

pub use server::{AcceptMode, Server};
pub use shutdown::{ShutdownHandle, ShutdownRequested};
pub use worker::Worker;

use super::runtime::Core;
use super::{Builder, JoinHandle};
use crate::net::TcpStream;

/// N threads, each with its own single-threaded runtime: xev on more than
/// one core.
///
/// Build one with [`Pool::builder`]. [`run`](Pool::run) runs the same async
/// function on every worker and returns their outputs;
/// [`serve`](Pool::serve) accepts TCP connections on every worker until
/// [`ShutdownHandle::shutdown`] stops it gracefully. The workers keep
/// their runtimes between calls: a task spawned in one `run` goes on
/// running after it returns. Dropping the pool drops every worker's tasks,
/// on the worker's thread, and joins the threads.
///
/// Since each worker is a plain xev runtime, code inside a worker is the
/// same as on one thread: `Rc`, `RefCell`, `xev::rt::spawn` of `!Send`
/// futures. What crosses threads is the function given to `run` or
/// `serve` (it must be `Send + Sync`, and is called once per worker, or
/// once per connection) and the outputs.
///
/// # Examples
/// ```
/// use std::rc::Rc;
///
/// let pool = xev::rt::Pool::builder().threads(4).build()?;
/// let outputs = pool.run(|worker| async move {
///     let local = Rc::new(worker.index()); // not Send, and that is fine
///     let task = xev::rt::spawn({
///         let local = local.clone();
///         async move { *local * 10 }
///     });
///     task.await.unwrap()
/// });
/// assert_eq!(outputs, [0, 10, 20, 30]); // in worker order
/// # std::io::Result::Ok(())
/// ```
pub struct Pool {
    inner: Arc<Inner>,
}

/// A pool's threads, shared with its [`Server`]s (never with its workers,
/// so the last reference is dropped on a thread that can join them).
struct Inner {
    workers: Vec<WorkerThread>,
    /// Ends every worker's runtime when the pool is dropped.
    close: Arc<Notifier>,
    shutdown: ShutdownHandle,
    /// Recognises this pool's own threads.
    id: u64,
}

/// Configures and builds a [`Pool`]: from [`Pool::builder`].
///
/// ```
/// let pool = xev::rt::Pool::builder().threads(2).pin_cores(false).build()?;
/// assert_eq!(pool.threads(), 2);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    threads: Option<usize>,
    pin_cores: bool,
    runtime: Builder,
}

impl PoolBuilder {
    /// How many worker threads (default: the number of CPUs this process
    /// may run on, [`std::thread::available_parallelism`]). Zero is an
    /// error at [`build`](Self::build). Without pinning, more threads than
    /// CPUs is allowed (they share the CPUs).
    pub fn threads(&mut self, threads: usize) -> &mut PoolBuilder {
        self.threads = Some(threads);
        self
    }

    /// Whether to pin each worker thread to a CPU of its own (default
    /// `false`): worker `i` runs only on the `i`-th CPU of the set this
    /// process is allowed to run on (`sched_getaffinity`, so `taskset` and
    /// cgroup cpusets are respected). Then asking for more threads than
    /// that set has CPUs is an error at [`build`](Self::build).
    ///
    /// Pinning keeps each worker's caches warm and its interrupts local,
    /// when the machine is otherwise quiet; on a shared machine it can
    /// also stop a worker from moving off a CPU that something else is
    /// using.
    pub fn pin_cores(&mut self, pin: bool) -> &mut PoolBuilder {
        self.pin_cores = pin;
        self
    }

    /// The settings of every worker's runtime (default:
    /// [`Runtime::builder`](super::Runtime::builder)'s).
    ///
    /// ```
    /// let mut runtime = xev::rt::Runtime::builder();
    /// runtime.event_capacity(256);
    /// let pool = xev::rt::Pool::builder().threads(1).runtime(runtime).build()?;
    /// assert_eq!(pool.run(|_| async { 1 }), [1]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn runtime(&mut self, runtime: Builder) -> &mut PoolBuilder {
        self.runtime = runtime;
        self
    }

    /// Starts the worker threads, each with its runtime, and returns once
    /// all are running.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for zero threads, or,
    /// with [`pin_cores`](Self::pin_cores), for more threads than CPUs the
    /// process may run on; the error of a thread or runtime that the OS
    /// refused to start (the threads already started are stopped).
    pub fn build(&self) -> io::Result<Pool> {
        let cores = if self.pin_cores {
            Some(allowed_cores()?)
        } else {
            None
        };
        let threads = match (self.threads, &cores) {
            (Some(threads), _) => threads,
            (None, Some(cores)) => cores.len(),
            (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "xev::rt::Pool needs at least one worker thread: call `threads(n)` with n >= 1",
            ));
        }
        if let Some(cores) = &cores {
            if threads > cores.len() {
                let ids: Vec<usize> = cores.iter().map(|core| core.id).collect();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "xev::rt::Pool: {threads} worker threads cannot each be pinned to a CPU \
                         of their own: this process may run on {} CPU(s) ({ids:?}); use \
                         `threads({})` or fewer, or `pin_cores(false)`",
                        cores.len(),
                        cores.len()
                    ),
                ));
            }
        }
        let id = worker::next_pool_id();
        let close = Arc::new(Notifier::new());
        let mut pool = Inner {
            workers: Vec::with_capacity(threads),
            close: close.clone(),
            shutdown: ShutdownHandle::new(),
            id,
        };
        for index in 0..threads {
            // On error, dropping `pool` stops the threads already started.
            pool.workers.push(worker::start(Start {
                worker: Worker::new(index, threads, id),
                core: cores.as_ref().map(|cores| cores[index]),
                runtime: self.runtime.clone(),
                close: close.clone(),
            })?);
        }
        Ok(Pool {
            inner: Arc::new(pool),
        })
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cores() -> io::Result<Vec<core_affinity::CoreId>> {
    match core_affinity::get_core_ids() {
        Some(cores) if !cores.is_empty() => Ok(cores),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "xev::rt::Pool: cannot read the set of CPUs this process may run on, so cannot \
             pin workers to them; build the pool with `pin_cores(false)`",
        )),
    }
}

/// How one worker's part of a [`Pool::run`] ended.
enum Outcome<T> {
    Done(T),
    Panicked(Box<dyn Any + Send>),
    /// Stopped because another worker panicked (or failed, for `serve`).
    Stopped,
}

impl Pool {
    /// A [`PoolBuilder`] with default settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            threads: None,
            pin_cores: false,
            runtime: Builder::new(),
        }
    }

    /// How many worker threads the pool has.
    pub fn threads(&self) -> usize {
        self.inner.workers.len()
    }

    /// A handle that shuts down this pool's servers gracefully, from any
    /// thread: see [`ShutdownHandle`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.inner.shutdown.clone()
    }

    /// Binds `addr` for [`Server::serve`], at once: port 0 is resolved, so
    /// [`Server::local_addr`] says where to connect before serving starts.
    /// See [`AcceptMode`] for how the workers share the port. If `addr`
    /// resolves to several addresses, each is tried in turn (host names
    /// are resolved on the calling thread).
    ///
    /// # Errors
    /// The bind's: [`AddrInUse`](io::ErrorKind::AddrInUse) if another
    /// socket listens there; [`Unsupported`](io::ErrorKind::Unsupported)
    /// for [`AcceptMode::ReusePort`] where the platform has no
    /// `SO_REUSEPORT`.
    ///
    /// # Examples
    /// An echo server on every worker, and a client that stops it:
    /// ```
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
    /// use xev::rt::{AcceptMode, Pool};
    ///
    /// let pool = Pool::builder().threads(2).build()?;
    /// let server = pool.bind("127.0.0.1:0", AcceptMode::ReusePort)?;
    /// let addr = server.local_addr()?;
    /// let shutdown = pool.shutdown_handle();
    /// let client = std::thread::spawn(move || {
    ///     let mut stream = std::net::TcpStream::connect(addr).unwrap();
    ///     stream.write_all(b"hello").unwrap();
    ///     let mut echo = [0; 5];
    ///     stream.read_exact(&mut echo).unwrap();
    ///     shutdown.shutdown(Duration::from_secs(1));
    ///     echo
    /// });
    /// server.serve(|stream, _peer| async move {
    ///     let mut buf = [0; 1024];
    ///     while let Ok(n @ 1..) = stream.read(&mut buf).await {
    ///         if stream.write_all(&buf[..n]).await.is_err() {
    ///             break;
    ///         }
    ///     }
    /// })?;
    /// assert_eq!(&client.join().unwrap(), b"hello");
    /// # std::io::Result::Ok(())
    /// ```
    pub fn bind(&self, addr: impl ToSocketAddrs, mode: AcceptMode) -> io::Result<Server> {
        Server::bind(self.inner.clone(), addr, mode)
    }

    /// Binds `addr` and serves connections on every worker until the
    /// pool's [`ShutdownHandle::shutdown`]: the same as
    /// `pool.bind(addr, mode)?.serve(handler)` (see [`Pool::bind`] and
    /// [`Server::serve`]).
    ///
    /// # Errors
    /// Those of [`Pool::bind`] and [`Server::serve`].
    ///
    /// # Examples
    /// ```no_run
    /// use xev::rt::{AcceptMode, Pool};
    ///
    /// let pool = Pool::builder().build()?; // a worker per CPU
    /// pool.serve("127.0.0.1:7000", AcceptMode::ReusePort, |stream, _peer| async move {
    ///     let _ = stream.write_all(b"hello from a worker\n").await;
    /// })
    /// # ; std::io::Result::Ok(())
    /// ```
    pub fn serve<H, Fut>(
        &self,
        addr: impl ToSocketAddrs,
        mode: AcceptMode,
        handler: H,
    ) -> io::Result<()>
    where
        H: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.bind(addr, mode)?.serve(handler)
    }

    /// Runs `f(worker)` on every worker, each on its own thread and
    /// runtime, blocks until every one has finished, and returns their
    /// outputs in worker-index order.
    ///
    /// `f` is called on the worker's thread, so the future need not be
    /// `Send`; it runs as a task of that worker's runtime. Tasks it spawns
    /// keep running on the worker after `run` returns.
    ///
    /// # Panics
    /// If a worker's future panics: the other workers' futures are
    /// cancelled (dropped at their next turn; a future that blocks its
    /// thread cannot be), and, once all have ended, `run` resumes the
    /// first panic with its original payload, as
    /// [`JoinHandle::join`](std::thread::JoinHandle::join) would report
    /// it. Also when called from one of this pool's own workers (it would
    /// wait for itself), or if a worker thread has died.
    ///
    /// # Examples
    /// A worker that panics is reported to the caller of `run`:
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    ///
    /// let pool = xev::rt::Pool::builder().threads(2).build()?;
    /// let result = catch_unwind(AssertUnwindSafe(|| {
    ///     pool.run(|worker| async move {
    ///         if worker.index() == 1 {
    ///             panic!("worker 1 gives up");
    ///         }
    ///         // Worker 0 would wait for ever: the panic cancels it.
    ///         std::future::pending::<()>().await
    ///     })
    /// }));
    /// let payload = result.unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker 1 gives up"));
    /// // The pool is still usable.
    /// assert_eq!(pool.run(|worker| async move { worker.index() }), [0, 1]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn run<F, Fut>(&self, f: F) -> Vec<Fut::Output>
    where
        F: Fn(Worker) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        self.inner
            .dispatch(f, |_| false)
            .into_iter()
            .enumerate()
            .map(|(index, output)| {
                output.unwrap_or_else(|| {
                    panic!(
                        "xev::rt::Pool: worker {index} ended without finishing `run`: its \
                         thread has exited"
                    )
                })
            })
            .collect()
    }
}

impl Inner {
    /// Runs `f` on every worker as [`run`](Pool::run) does, and returns
    /// each worker's output, or `None` for one that was stopped: every
    /// other worker is stopped as soon as an output satisfies `stop`, or a
    /// worker panics (the panic is then resumed here).
    fn dispatch<F, Fut>(&self, f: F, stop: fn(&Fut::Output) -> bool) -> Vec<Option<Fut::Output>>
    where
        F: Fn(Worker) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        if Worker::current().is_some_and(|worker| worker.pool() == self.id) {
            panic!(
                "xev::rt::Pool: `run` or `serve` called from one of the pool's own workers, \
                 which would wait for itself; spawn the work with `xev::rt::spawn` instead"
            );
        }
        let count = self.workers.len();
        let f = Arc::new(f);
        let halt = Arc::new(Notifier::new());
        let (results_tx, results) = mpsc::channel();
        for (index, thread) in self.workers.iter().enumerate() {
            let worker = Worker::new(index, count, self.id);
            let (f, halt, results_tx) = (f.clone(), halt.clone(), results_tx.clone());
            // If the worker's runtime is gone, the closure is dropped, and
            // so is its sender: `results` then disconnects.
            thread
                .handle
                .shared
                .spawn_remote(Box::new(move |core: &Core| {
                    // `f` is called inside the task, so that a panic in it
                    // is caught and reported like one in the future.
                    let task = core.spawn(async move { f(worker).await });
                    drop(core.spawn(supervise(task, halt, index, results_tx)));
                }));
        }
        drop(results_tx);
        let mut outputs: Vec<Option<Fut::Output>> = (0..count).map(|_| None).collect();
        let mut panic = None;
        for _ in 0..count {
            let Ok((index, outcome)) = results.recv() else {
                break;
            };
            match outcome {
                Outcome::Done(output) => {
                    if stop(&output) {
                        halt.notify();
                    }
                    outputs[index] = Some(output);
                }
                Outcome::Panicked(payload) => {
                    panic.get_or_insert(payload);
                    halt.notify();
                }
                Outcome::Stopped => {}
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        outputs
    }
}

/// Waits for a worker's task, or for `halt`, and reports which came first.
async fn supervise<T>(
    mut task: JoinHandle<T>,
    halt: Arc<Notifier>,
    index: usize,
    results: mpsc::Sender<(usize, Outcome<T>)>,
) {
    let mut halted = halt.notified();
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(result) = Pin::new(&mut task).poll(cx) {
            return Poll::Ready(match result {
                Ok(output) => Outcome::Done(output),
                Err(error) if error.is_panic() => Outcome::Panicked(error.into_panic()),
                Err(_) => Outcome::Stopped,
            });
        }
        if halted.poll_changed(cx).is_ready() {
            task.abort();
            return Poll::Ready(Outcome::Stopped);
        }
        Poll::Pending
    })
    .await;
    let _ = results.send((index, outcome));
}

impl Drop for Inner {
    /// Ends every worker's runtime (dropping the tasks left on it, on the
    /// worker's thread) and joins the threads.
    fn drop(&mut self) {
        self.close.notify();
        let here = std::thread::current().id();
        for worker in &mut self.workers {
            // A pool dropped by a task on one of its own workers cannot
            // wait for that worker: its thread ends on its own, once the
            // task returns to the runtime.
            if let Some(thread) = worker.thread.take_if(|thread| thread.thread().id() != here) {
                // A worker whose runtime panicked has already said so on
                // stderr; there is nothing more to report from a drop.
                let _ = thread.join();
            }
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.inner.workers.len())
            .finish_non_exhaustive()
    }
}
