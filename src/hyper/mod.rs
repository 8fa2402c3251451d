//! [hyper] 1.x on xev (feature `hyper`): the I/O adapter, the timer and the
//! executor hyper's connections take.
//!
//! | hyper needs | xev gives | for |
//! |---|---|---|
//! | `hyper::rt::Read` + `Write` | [`Io<T>`](Io), over any futures-io stream | every connection |
//! | `hyper::rt::Timer` | [`Timer`] | `header_read_timeout`, HTTP/2 keep-alive |
//! | `hyper::rt::Executor` | [`Executor`], over [`rt::spawn`](crate::rt::spawn) | HTTP/2 (a task per stream) |
//!
//! They play the part of hyper-util's `TokioIo`, `TokioTimer` and
//! `TokioExecutor`, with xev's model: everything runs on the runtime's
//! thread, so services and their futures need not be `Send`.
//!
//! # A server that slow clients cannot hold
//!
//! A public HTTP/1 server needs bounds that hyper leaves off by default:
//!
//! - **Header timeout.** With a [`Timer`], hyper's `header_read_timeout`
//!   (30 s unless set) closes a connection whose request head has not fully
//!   arrived in time: a client trickling header bytes (slowloris) is cut
//!   off. hyper starts that clock whenever it waits for a head, including
//!   between the requests of a keep-alive connection, so it is also the
//!   idle timeout of keep-alive connections.
//! - **Write timeout.** A client that sends requests and never reads the
//!   responses stalls hyper's writes. hyper's `max_buf_size` bounds what
//!   it buffers per connection (it stops reading requests while its write
//!   buffer is full), and [`Io::set_write_timeout`] closes the connection
//!   once the peer has taken nothing for that long.
//! - **Body size.** hyper reads request bodies as the service asks; a
//!   service that collects a body whole should cap it
//!   (`http_body_util::Limited`).
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{server::conn::http1, service::service_fn, Response};
//! use xev::hyper::{Io, Timer};
//! use xev::net::TcpListener;
//!
//! async fn serve(listener: TcpListener) -> std::io::Result<()> {
//!     loop {
//!         let (stream, _peer) = listener.accept().await?;
//!         let mut io = Io::new(stream);
//!         io.set_write_timeout(Some(Duration::from_secs(10)));
//!         xev::rt::spawn(async move {
//!             let service = service_fn(|_request| async {
//!                 Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("hello"))))
//!             });
//!             let served = http1::Builder::new()
//!                 .timer(Timer::new())
//!                 .header_read_timeout(Duration::from_secs(10))
//!                 .max_buf_size(64 * 1024)
//!                 .serve_connection(io, service)
//!                 .await;
//!             if let Err(error) = served {
//!                 eprintln!("connection ended: {error}");
//!             }
//!         });
//!     }
//! }
//! # let _ = serve;
//! ```
//!
//! `examples/hyper_server.rs` is a complete server with these defaults and
//! HTTP/2 (prior knowledge), `examples/https_server.rs` the same over TLS
//! (rustls, ALPN `h2` and `http/1.1`).
//!
//! [hyper]: https://docs.rs/hyper

mod executor;
mod io;
mod sleep;
mod timer;

pub use executor::Executor;
pub use io::Io;
pub use timer::Timer;
