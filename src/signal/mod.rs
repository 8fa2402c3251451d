//! Unix signals as futures: [`ctrl_c`] and [`unix::signal`].
//!
//! The process-wide handlers come from [signal-hook], which lets any
//! number of listeners share one signal: each listener has its own pipe,
//! which the handler writes a byte to and the listener's runtime polls like
//! a socket. So several runtimes (the workers of a
//! [`Pool`](crate::rt::Pool), say) can each wait for the same signal, and
//! every one of them sees it.
//!
//! As with tokio: once a signal has a listener, the process keeps its
//! handler for good, even after every listener is dropped, so the signal's
//! default action (ending the process, for `SIGINT` and `SIGTERM`) never
//! comes back; deliveries that nobody listens for are dropped. Several
//! deliveries between two `recv` calls may be seen as one.
//!
//! # Graceful shutdown on one runtime
//! Accept until Ctrl-C or `SIGTERM`, then give the connections in flight a
//! grace period (a `JoinSet` holds them; dropping it aborts the rest).
//! `examples/graceful.rs` is the complete program; with several cores, a
//! [`Pool`](crate::rt::Pool) does this for you
//! ([`ShutdownHandle`](crate::rt::ShutdownHandle)).
//! ```no_run
//! use std::pin::pin;
//! use std::time::Duration;
//! use futures::future::{select, Either};
//! use xev::net::TcpListener;
//! use xev::rt::JoinSet;
//! use xev::signal::unix::{signal, SignalKind};
//!
//! # fn main() -> std::io::Result<()> {
//! xev::rt::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:7000")?;
//!     let mut interrupt = signal(SignalKind::interrupt())?;
//!     let mut terminate = signal(SignalKind::terminate())?;
//!     let mut stop = pin!(async {
//!         select(pin!(interrupt.recv()), pin!(terminate.recv())).await;
//!     });
//!     let mut connections = JoinSet::new();
//!     loop {
//!         let (stream, _peer) = match select(pin!(listener.accept()), stop.as_mut()).await {
//!             Either::Left((Ok(accepted), _)) => accepted,
//!             Either::Left((Err(_), _)) => continue, // see `TcpListener::accept`
//!             Either::Right(_) => break,
//!         };
//!         connections.spawn(async move {
//!             let _ = stream.write_all(b"hello\n").await;
//!         });
//!         while connections.try_join_next().is_some() {} // forget finished ones
//!     }
//!     drop(listener); // later connection attempts are refused
//!     let all_done = async { while connections.join_next().await.is_some() {} };
//!     let _ = xev::time::timeout(Duration::from_secs(10), all_done).await;
//!     std::io::Result::Ok(()) // dropping `connections` aborts what is left
//! })
//! # }
//! ```
//!
//! [signal-hook]: https://docs.rs/signal-hook

use std::io;

pub mod unix;

/// Completes when the process receives Ctrl-C (`SIGINT`).
///
/// The listener is registered when the future is first polled: a `SIGINT`
/// that arrives before that is not seen by it (and, if nothing else
/// listens for `SIGINT` yet, ends the process as usual). To catch every
/// one from a point on, create a [`unix::signal`] listener there and await
/// its [`recv`](unix::Signal::recv) as often as needed.
///
/// # Errors
/// If the handler cannot be installed, or the runtime refuses one more
/// registration.
///
/// # Panics
/// When polled outside a runtime.
///
/// # Cancel safety
/// Cancel safe in the sense that dropping it loses nothing already
/// reported; a `SIGINT` that arrived while it was pending and not yet
/// polled is lost with it (its listener is dropped).
///
/// # Examples
/// ```no_run
/// #[xev::main]
/// async fn main() -> std::io::Result<()> {
///     println!("press Ctrl-C to stop");
///     xev::signal::ctrl_c().await?;
///     println!("stopping");
///     Ok(())
/// }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut interrupt = unix::signal(unix::SignalKind::interrupt())?;
    match interrupt.recv().await {
        Some(()) => Ok(()),
        None => Err(unix::runtime_gone()),
    }
}
