//! The servers of `examples/hyper_server.rs` and `examples/https_server.rs`
//! on tokio's current-thread runtime instead of xev: the peer that
//! `benches/hyper_wrk.sh` measures xev against. Same service, same hyper
//! settings (compiled in from `hyper_server.rs`), same TLS configuration;
//! one thread, one task per connection; hyper-util's `TokioIo`,
//! `TokioTimer` and `TokioExecutor`, and tokio-rustls for TLS.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_tokio [-- --addr 127.0.0.1:3001] [--h2] [--tls]
//! ```
//!
//! hyper-util has no write timeout: that limit of the xev server is the
//! one thing this peer goes without.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[allow(dead_code)] // its `main` and the xev server
#[path = "https_server.rs"]
mod https_server;

use https_server::hyper_server::{self, Limits, Protocol};

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let (addr, protocol, tls) = parse_args()?;
    let acceptor = match tls {
        true => {
            let (chain, key) = https_server::self_signed();
            let config = https_server::server_config(chain, key)?;
            Some(TlsAcceptor::from(Arc::new(config)))
        }
        false => None,
    };
    let limits = Limits::default();
    let listener = TcpListener::bind(addr.as_str()).await?;
    let scheme = if tls { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("accept failed: {error}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve_connection(stream, protocol, limits).await;
            };
            let handshake = acceptor.accept(stream);
            let Ok(Ok(tls)) = tokio::time::timeout(limits.header_read_timeout, handshake).await
            else {
                return;
            };
            let protocol = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            serve_connection(tls, protocol, limits).await;
        });
    }
}

/// `hyper_server::serve_connection`, with tokio's adapters.
async fn serve_connection<S>(stream: S, protocol: Protocol, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let service = service_fn(move |request| hyper_server::respond(request, limits.max_body));
    let served = match protocol {
        Protocol::Http1 => {
            http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_buf_size)
                .keep_alive(true)
                .serve_connection(io, service)
                .await
        }
        Protocol::Http2 => {
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.keep_alive_interval)
                .keep_alive_timeout(limits.keep_alive_interval)
                .max_concurrent_streams(limits.max_concurrent_streams)
                .serve_connection(io, service)
                .await
        }
    };
    if let Err(error) = served {
        if !hyper_server::is_routine(&error) {
            eprintln!("connection failed: {error}");
        }
    }
}

/// `--addr HOST:PORT` (default `127.0.0.1:3001`), `--h2`, `--tls`.
fn parse_args() -> io::Result<(String, Protocol, bool)> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:3001");
    let mut protocol = Protocol::Http1;
    let mut tls = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or_else(|| usage("--addr needs a value"))?,
            "--h2" => protocol = Protocol::Http2,
            "--tls" => tls = true,
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok((addr, protocol, tls))
}

fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}; usage: hyper_tokio [--addr HOST:PORT] [--h2] [--tls]"),
    )
}
