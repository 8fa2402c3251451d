//! [`Executor`]: hyper's `Executor` on [`rt::spawn`](crate::rt::spawn).

use std::future::Future;

/// [`hyper::rt::Executor`] that spawns onto the current xev runtime with
/// [`rt::spawn`](crate::rt::spawn): what HTTP/2 connections need.
///
/// An HTTP/2 connection runs each stream (each request and its response) as
/// a task of its own, and hyper's HTTP/2 builders take an executor to spawn
/// them. These tasks need not be `Send`: a service that keeps `Rc`s and
/// `RefCell`s works, as everywhere on xev. (HTTP/1 connections spawn
/// nothing and need no executor.)
///
/// # Panics
/// [`execute`](hyper::rt::Executor::execute) panics outside a runtime, as
/// `rt::spawn` does. hyper calls it from inside the connection's future, so
/// a connection served on a runtime is fine.
///
/// # Examples
/// An HTTP/2 server and client on one runtime (prior knowledge, no TLS):
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Empty, Full};
/// use hyper::{Request, Response};
/// use xev::hyper::{Executor, Io, Timer};
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     xev::rt::spawn(async move {
///         let (stream, _) = listener.accept().await?;
///         let service = hyper::service::service_fn(|_request| async {
///             Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("hello over h2"))))
///         });
///         hyper::server::conn::http2::Builder::new(Executor::new())
///             .timer(Timer::new())
///             .serve_connection(Io::new(stream), service)
///             .await
///             .map_err(std::io::Error::other)
///     });
///
///     let stream = TcpStream::connect(addr).await?;
///     let (mut sender, connection) = hyper::client::conn::http2::Builder::new(Executor::new())
///         .timer(Timer::new())
///         .handshake(Io::new(stream))
///         .await
///         .map_err(std::io::Error::other)?;
///     xev::rt::spawn(connection);
///     let request = Request::get("http://localhost/").body(Empty::<Bytes>::new()).unwrap();
///     let response = sender.send_request(request).await.map_err(std::io::Error::other)?;
///     let body = response.into_body().collect().await.map_err(std::io::Error::other)?;
///     assert_eq!(body.to_bytes(), "hello over h2");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor;

impl Executor {
    /// An executor for the current runtime (whichever runtime hyper calls it
    /// on); the same as `Executor` or `Executor::default()`.
    pub fn new() -> Executor {
        Executor
    }
}

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // Detached: the stream's task ends with its stream, and hyper keeps
        // no handle to it.
        drop(crate::rt::spawn(future));
    }
}
