//! The server of `examples/hyper_server.rs`, on tokio's current-thread
//! runtime instead of xev: the peer that `benches/README.md` ("HTTP
//! (hyper)") measures xev against. Same service, same hyper settings, one
//! thread, one task per connection; hyper-util's `TokioIo` is the adapter.
//!
//! ```text
//! cargo run --release --example hyper_tokio [-- --addr 127.0.0.1:3001]
//! ```

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = parse_addr()?;
    let listener = TcpListener::bind(addr.as_str()).await?;
    println!("listening on http://{}", listener.local_addr()?);
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
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(respond));
            if let Err(error) = connection.await {
                if !error.is_incomplete_message() {
                    eprintln!("connection failed: {error}");
                }
            }
        });
    }
}

/// The service of `hyper_server.rs`, unchanged.
async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => Response::new(Full::new(Bytes::from_static(b"Hello, World!\n"))),
        (&Method::POST, "/echo") => {
            let body = request.into_body().collect().await?.to_bytes();
            Response::new(Full::new(body))
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// `--addr HOST:PORT`, default `127.0.0.1:3001`.
fn parse_addr() -> io::Result<String> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:3001");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown argument {arg:?}; usage: hyper_tokio [--addr HOST:PORT]"),
                ))
            }
        }
    }
    Ok(addr)
}
