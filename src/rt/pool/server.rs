//! [`Pool::bind`](super::Pool::bind), [`Server`], and what each worker runs
//! while serving: accept (or receive) connections until the shutdown, then
//! give the live ones their grace period.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use super::connections::Connections;
use super::handoff::{Balancer, Inbox};
use super::shutdown::ShutdownHandle;
use super::{Inner, Worker};
use crate::net::TcpStream;
use crate::rt::reactor::{Direction, Registration};

/// The backlog of a pool's listeners, as for [`crate::net::TcpListener::bind`].
const BACKLOG: i32 = 1024;
/// How long a worker waits after an accept error that retrying at once
/// would only repeat (out of file descriptors, out of memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How a [`Pool`](super::Pool)'s workers share one listening port.
///
/// What Linux does, which decides between them:
/// - **`ReusePort`**: each worker accepts on its own listener, all bound to
///   the same address with `SO_REUSEPORT`. The kernel gives each new
///   connection to one listener by a hash of its addresses and ports:
///   nothing crosses threads, but the spread is by hash, not by load (a
///   busy worker gets its share all the same), and a few clients (or one
///   client address, as in a benchmark from one machine) can land
///   unevenly. Closing one listener of the group resets the connections
///   still queued on it, unless the sysctl `net.ipv4.tcp_migrate_req` is 1
///   (Linux 5.14 and later), which moves them to another listener; a
///   shutdown takes each queue's connections before closing, but a
///   connection that completes its handshake in between is reset. Needs
///   `SO_REUSEPORT` (not on Windows or illumos: `bind` fails with
///   [`Unsupported`](io::ErrorKind::Unsupported) there).
/// - **`Acceptor`**: one listener; worker 0 accepts every connection and
///   hands each (as a `std` socket, through a queue and the runtime's
///   cross-thread wake) to the worker with the fewest live connections,
///   itself included. The spread follows the load, and closing the one
///   listener is a single step. The cost is one hand-off per connection,
///   and worker 0's share of the accepting.
///
/// Long-lived connections (keep-alive HTTP, WebSocket) balance better with
/// `Acceptor`; a flood of short connections from many clients costs less
/// with `ReusePort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcceptMode {
    /// A listener per worker, bound with `SO_REUSEPORT`; the kernel picks
    /// the worker by hash.
    ReusePort,
    /// One listener; worker 0 accepts and hands each connection to the
    /// worker with the fewest live connections.
    Acceptor,
}

/// A port bound for a [`Pool`](super::Pool), ready to serve: from
/// [`Pool::bind`](super::Pool::bind).
///
/// Its address is known before [`serve`](Server::serve) starts (port 0 is
/// resolved), so a test or a supervisor can connect to it. A `Server` is
/// `Send`: it can be served from another thread.
///
/// ```
/// use xev::rt::{AcceptMode, Pool};
///
/// let pool = Pool::builder().threads(2).build()?;
/// let server = pool.bind("127.0.0.1:0", AcceptMode::ReusePort)?;
/// assert_ne!(server.local_addr()?.port(), 0);
/// # std::io::Result::Ok(())
/// ```
pub struct Server {
    pool: Arc<Inner>,
    mode: AcceptMode,
    local_addr: SocketAddr,
    /// `ReusePort`: one per worker, in worker order; `Acceptor`: one.
    listeners: Vec<std::net::TcpListener>,
}

impl Server {
    pub(super) fn bind(
        pool: Arc<Inner>,
        addr: impl ToSocketAddrs,
        mode: AcceptMode,
    ) -> io::Result<Server> {
        let count = match mode {
            AcceptMode::ReusePort => pool.workers.len(),
            AcceptMode::Acceptor => 1,
        };
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match bind_group(addr, mode, count) {
                Ok(listeners) => {
                    let local_addr = listeners[0].local_addr()?;
                    return Ok(Server {
                        pool,
                        mode,
                        local_addr,
                        listeners,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address to bind resolved to no address",
            )
        }))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// How the workers share the port.
    pub fn mode(&self) -> AcceptMode {
        self.mode
    }

    /// Serves connections on every worker until the pool's
    /// [`ShutdownHandle::shutdown`] is called, then returns once every
    /// connection has finished or been aborted at the end of the grace
    /// period. Blocks the calling thread meanwhile.
    ///
    /// `handler(stream, peer)` is called on the worker that will run the
    /// connection, and its future runs there as a task of its own: it
    /// need not be `Send`. A panic in a handler ends that connection only
    /// (the default panic hook reports it). Accept errors are not fatal:
    /// aborted handshakes are skipped, and running out of file descriptors
    /// makes the accepting worker pause for 50 ms before trying again.
    ///
    /// # Errors
    /// If a worker cannot register its listener with its runtime; the
    /// other workers are then stopped.
    ///
    /// # Panics
    /// When called from one of the pool's own workers (it would wait for
    /// itself).
    pub fn serve<H, Fut>(self, handler: H) -> io::Result<()>
    where
        H: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let count = self.pool.workers.len();
        let acceptor = self.mode == AcceptMode::Acceptor;
        let listeners: Vec<Option<std::net::TcpListener>> =
            self.listeners.into_iter().map(Some).collect();
        let state = Arc::new(ServeState {
            handler,
            shutdown: self.pool.shutdown.clone(),
            listeners: Mutex::new(listeners),
            balancer: acceptor.then(|| Arc::new(Balancer::new(count))),
            inboxes: if acceptor {
                (0..count).map(|_| Inbox::new()).collect()
            } else {
                Vec::new()
            },
        });
        let outputs = self.pool.dispatch(
            move |worker| serve_worker(state.clone(), worker),
            |result: &io::Result<()>| result.is_err(),
        );
        for output in outputs.into_iter().flatten() {
            output?;
        }
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("mode", &self.mode)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Binds `count` listeners to `addr` (the first one resolves port 0 for
/// the others): with `SO_REUSEPORT` for `ReusePort`.
fn bind_group(
    addr: SocketAddr,
    mode: AcceptMode,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = listen(addr, mode)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(listen(addr, mode)?);
    }
    Ok(listeners)
}

fn listen(addr: SocketAddr, mode: AcceptMode) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if mode == AcceptMode::ReusePort {
        set_reuse_port(&socket)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// `SO_REUSEPORT`, with an error that names the other mode where the
/// platform lacks it.
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    crate::net::sys::set_reuse_port(socket.into(), true).map_err(|error| {
        if error.kind() != io::ErrorKind::Unsupported {
            return error;
        }
        io::Error::new(
            io::ErrorKind::Unsupported,
            "AcceptMode::ReusePort needs SO_REUSEPORT, which this platform does not have; use \
             AcceptMode::Acceptor",
        )
    })
}

/// What the workers of one `serve` share.
struct ServeState<H> {
    handler: H,
    shutdown: ShutdownHandle,
    /// Taken by the workers that accept: in `ReusePort` mode worker `i`
    /// takes the `i`-th, in `Acceptor` mode worker 0 takes the only one.
    listeners: Mutex<Vec<Option<std::net::TcpListener>>>,
    /// `Acceptor` mode: the live count per worker.
    balancer: Option<Arc<Balancer>>,
    /// `Acceptor` mode: one per worker (worker 0's stays unused: it starts
    /// its own connections directly).
    inboxes: Vec<Inbox>,
}

impl<H, Fut> ServeState<H>
where
    H: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    fn take_listener(&self, index: usize) -> Option<std::net::TcpListener> {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        listeners.get_mut(index).and_then(Option::take)
    }

    /// Starts a connection's handler on this worker. The handler is called
    /// inside the task, so that a panic in it ends this connection only.
    fn start(
        self: &Arc<Self>,
        connections: &Connections,
        stream: mio::net::TcpStream,
        peer: SocketAddr,
    ) {
        let state = self.clone();
        connections.spawn(async move {
            // Fails only if the reactor refuses one more socket (out of
            // memory): the connection is closed, unanswered.
            if let Ok(stream) = TcpStream::from_mio(stream) {
                (state.handler)(stream, peer).await;
            }
        });
    }

    /// `Acceptor` mode, on worker 0: gives an accepted connection to the
    /// least-loaded worker; starts it here if that worker's inbox is
    /// already closed (it is shutting down; this worker still answers
    /// everything it accepted).
    fn hand_off(
        self: &Arc<Self>,
        connections: &Connections,
        here: usize,
        stream: mio::net::TcpStream,
        peer: SocketAddr,
    ) {
        let balancer = self
            .balancer
            .as_ref()
            .expect("Acceptor mode has a balancer");
        let target = balancer.pick();
        if target == here {
            return self.start(connections, stream, peer);
        }
        if let Err((stream, peer)) = self.inboxes[target].push((stream.into(), peer)) {
            balancer.withdrawn(target);
            balancer.started(here);
            self.start(connections, mio::net::TcpStream::from_std(stream), peer);
        }
    }
}

/// One worker's part of `serve`.
async fn serve_worker<H, Fut>(state: Arc<ServeState<H>>, worker: Worker) -> io::Result<()>
where
    H: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let index = worker.index();
    let load = state.balancer.clone().map(|balancer| (balancer, index));
    let connections = Connections::new(load);
    let listener = state
        .take_listener(index)
        .map(PoolListener::new)
        .transpose()?;
    match (&listener, state.balancer.is_some()) {
        (Some(listener), false) => {
            let accepting =
                listener.accept_forever(|stream, peer| state.start(&connections, stream, peer));
            until_shutdown(&state.shutdown, accepting).await;
        }
        (Some(listener), true) => {
            let accepting = listener
                .accept_forever(|stream, peer| state.hand_off(&connections, index, stream, peer));
            until_shutdown(&state.shutdown, accepting).await;
        }
        (None, _) => {
            if let Some(inbox) = state.inboxes.get(index) {
                let mut batch = Vec::new();
                let receiving = async {
                    loop {
                        poll_fn(|cx| inbox.poll_take(cx, &mut batch)).await;
                        for (stream, peer) in batch.drain(..) {
                            state.start(&connections, mio::net::TcpStream::from_std(stream), peer);
                        }
                    }
                };
                until_shutdown(&state.shutdown, receiving).await;
            }
        }
    }
    // The shutdown: take what is already queued, then close.
    if let Some(listener) = listener {
        while let Ok((stream, peer)) = listener.io.accept() {
            if state.balancer.is_some() {
                state.hand_off(&connections, index, stream, peer);
            } else {
                state.start(&connections, stream, peer);
            }
        }
        drop(listener);
    }
    if let Some(inbox) = state.inboxes.get(index) {
        for (stream, peer) in inbox.close() {
            state.start(&connections, mio::net::TcpStream::from_std(stream), peer);
        }
    }
    grace(&connections, &state.shutdown).await;
    Ok(())
}

/// Runs `work` until the shutdown starts.
async fn until_shutdown(shutdown: &ShutdownHandle, work: impl Future<Output = ()>) {
    let mut work = pin!(work);
    let mut requested = pin!(shutdown.requested());
    poll_fn(|cx| {
        if requested.as_mut().poll(cx).is_ready() || work.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
}

/// Lets the live connections finish until the deadline (which a later
/// `shutdown` call may bring forward), then aborts the rest.
async fn grace(connections: &Connections, shutdown: &ShutdownHandle) {
    loop {
        let seen = shutdown.version();
        let Some(deadline) = shutdown.deadline() else {
            // Only a shutdown ends the accepting; be safe all the same.
            break;
        };
        let mut expired = pin!(crate::time::sleep_until(deadline));
        let mut moved = shutdown.changed(seen);
        enum Step {
            Idle,
            Expired,
            Moved,
        }
        let step = poll_fn(|cx| {
            if connections.poll_idle(cx).is_ready() {
                Poll::Ready(Step::Idle)
            } else if expired.as_mut().poll(cx).is_ready() {
                Poll::Ready(Step::Expired)
            } else if moved.poll_changed(cx).is_ready() {
                Poll::Ready(Step::Moved)
            } else {
                Poll::Pending
            }
        })
        .await;
        match step {
            Step::Idle => return,
            Step::Expired => break,
            Step::Moved => continue,
        }
    }
    connections.abort_all().await;
}

/// A listener registered with this worker's runtime, whose accepted
/// sockets are not: a connection for another worker leaves as it came.
struct PoolListener {
    io: mio::net::TcpListener,
    registration: Registration,
}

impl PoolListener {
    fn new(listener: std::net::TcpListener) -> io::Result<PoolListener> {
        let mut io = mio::net::TcpListener::from_std(listener);
        let registration = Registration::new(&mut io, Interest::READABLE, "`Pool::serve`")?;
        Ok(PoolListener { io, registration })
    }

    /// Accepts connections for ever, giving each to `start`.
    async fn accept_forever(&self, mut start: impl FnMut(mio::net::TcpStream, SocketAddr)) {
        let mut waiting = self.registration.waiting(Direction::Read);
        loop {
            let accepted = poll_fn(|cx| {
                self.registration
                    .poll_io(cx, Direction::Read, || self.io.accept(), waiting.key())
            })
            .await;
            match accepted {
                Ok((stream, peer)) => start(stream, peer),
                Err(error) => match error.kind() {
                    // The client gave up before we took it: nothing to do.
                    io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::Interrupted => {}
                    // Out of file descriptors or memory, or worse: retrying
                    // at once would spin; the connection waits in the
                    // backlog meanwhile.
                    _ => crate::time::sleep(ACCEPT_BACKOFF).await,
                },
            }
        }
    }
}
