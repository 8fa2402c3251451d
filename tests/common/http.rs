//! HTTP clients for the tests of the hyper examples: hyper's own client on
//! a tokio runtime (an independent stack: tokio's sockets, hyper-util's
//! `TokioIo`, tokio-rustls), and curl where it is installed.
//!
//! Every wait is bounded: a server that stops answering fails the test.

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long any one client step may take before the test fails.
pub const STEP_LIMIT: Duration = Duration::from_secs(10);

/// Runs `future` on a fresh current-thread tokio runtime.
pub fn on_tokio<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// `future`, failing the test with `what` after [`STEP_LIMIT`].
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP_LIMIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: no answer after {STEP_LIMIT:?}"),
    }
}

/// A request: `GET` when `body` is `None`, `POST` otherwise.
pub fn request(path: &str, body: Option<Bytes>) -> Request<Full<Bytes>> {
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .body(Full::new(body.unwrap_or_default()))
        .expect("a valid request")
}

/// Either of hyper's request senders.
pub enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Sends `request` and collects the response: its status and body.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
        let response = bounded("a response's head", async {
            match self {
                Sender::Http1(sender) => {
                    sender
                        .ready()
                        .await
                        .expect("the connection takes a request");
                    sender.send_request(request).await
                }
                Sender::Http2(sender) => sender.send_request(request).await,
            }
        })
        .await
        .expect("a response");
        let status = response.status();
        let body = bounded("a response's body", response.into_body().collect())
            .await
            .expect("the whole body");
        (status, body.to_bytes())
    }
}

/// An HTTP/1.1 connection (keep-alive) over plain TCP.
pub async fn connect_http1(addr: SocketAddr) -> Sender {
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    handshake_http1(TokioIo::new(stream)).await
}

/// An HTTP/2 connection with prior knowledge (h2c) over plain TCP.
pub async fn connect_http2(addr: SocketAddr) -> Sender {
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    handshake_http2(TokioIo::new(stream)).await
}

async fn handshake_http1<T>(io: T) -> Sender
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = bounded("HTTP/1.1 handshake", http1::handshake(io))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    Sender::Http1(sender)
}

async fn handshake_http2<T>(io: T) -> Sender
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = bounded(
        "HTTP/2 handshake",
        http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    Sender::Http2(sender)
}

/// A TLS client trusting only `root`, offering ALPN `alpn`.
pub fn tls_connector(root: &CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("a usable root certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` for the name `localhost`.
pub async fn connect_tls(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let stream = bounded("connect", TcpStream::connect(addr)).await?;
    let name = ServerName::try_from("localhost").expect("a valid name");
    bounded("TLS handshake", connector.connect(name, stream)).await
}

/// HTTP over an established TLS connection: HTTP/2 if ALPN chose `h2`,
/// HTTP/1.1 otherwise.
pub async fn over_tls(tls: TlsStream<TcpStream>) -> Sender {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    match h2 {
        true => handshake_http2(TokioIo::new(tls)).await,
        false => handshake_http1(TokioIo::new(tls)).await,
    }
}

/// Runs curl with `args` (plus `--silent --show-error --max-time 10`), or
/// returns `None` after printing why when curl is not installed.
pub fn curl(args: &[&str]) -> Option<Output> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output();
    match output {
        Ok(output) => Some(output),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: curl is not installed (`curl` not found on PATH)");
            None
        }
        Err(error) => panic!("running curl failed: {error}"),
    }
}

/// Whether this curl speaks HTTP/2 (it was built with nghttp2).
pub fn curl_has_http2() -> bool {
    let Some(output) = curl(&["--version"]) else {
        return false;
    };
    let version = String::from_utf8_lossy(&output.stdout);
    let has = version
        .lines()
        .any(|line| line.starts_with("Features:") && line.contains("HTTP2"));
    if !has {
        println!("skipped: this curl has no HTTP/2 support\n{version}");
    }
    has
}
