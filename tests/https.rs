//! HTTPS on xev: the server of `examples/https_server.rs` (compiled in, so
//! the tests run the example's own code: rustls through futures-rustls,
//! ALPN `h2` and `http/1.1`, hyper through `xev::hyper`) on a runtime thread
//! of its own, with a self-signed certificate made at start, checked by
//! hyper's client over tokio-rustls and by curl where installed.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, OnceLock};

use bytes::Bytes;
use futures_rustls::TlsAcceptor;
use hyper::StatusCode;
use rustls::pki_types::CertificateDer;

mod common;

use common::http::{self, Sender};

#[allow(dead_code)] // its `main`
#[path = "../examples/https_server.rs"]
mod https_server;

/// The HTTPS server, started once for all the tests in this file, and the
/// certificate it presents.
fn server() -> &'static (SocketAddr, CertificateDer<'static>) {
    static SERVER: OnceLock<(SocketAddr, CertificateDer<'static>)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (chain, key) = https_server::self_signed();
        let certificate = chain[0].clone();
        let config = https_server::server_config(chain, key).expect("a valid TLS identity");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            xev::rt::block_on(async move {
                let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let limits = https_server::hyper_server::Limits::default();
                https_server::serve(listener, acceptor, limits).await;
            })
        });
        let addr = addr_rx.recv().expect("the server thread binds a listener");
        (addr, certificate)
    })
}

/// A client that trusts the server's certificate, offering `alpn`.
async fn connect(alpn: &[&[u8]]) -> Sender {
    let (addr, certificate) = server();
    let connector = http::tls_connector(certificate, alpn);
    let tls = http::connect_tls(*addr, &connector)
        .await
        .expect("a TLS handshake with a trusted certificate");
    http::over_tls(tls).await
}

/// `len` bytes that differ from position to position, so a lost or moved
/// chunk shows.
fn pattern(len: usize) -> Bytes {
    Bytes::from(common::pattern(0x5eed, len))
}

/// 100 requests, one after the other, over one keep-alive HTTP/1.1
/// connection over TLS: all answered correctly.
#[test]
fn hundred_requests_over_one_keep_alive_tls_connection() {
    http::on_tokio(async {
        let mut sender = connect(&[b"http/1.1"]).await;
        assert!(matches!(sender, Sender::Http1(_)));
        for i in 0..100 {
            let (status, body) = match i % 2 {
                0 => sender.send(http::request("/", None)).await,
                _ => {
                    let sent = Bytes::from(format!("request {i}"));
                    let answer = sender
                        .send(http::request("/echo", Some(sent.clone())))
                        .await;
                    assert_eq!(answer.1, sent, "request {i}");
                    answer
                }
            };
            assert_eq!(status, StatusCode::OK, "request {i}");
            assert!(!body.is_empty());
        }
    });
}

/// A 3 MiB body is echoed byte for byte over TLS, over HTTP/1.1 and over
/// HTTP/2 (ALPN): many TLS records, partial reads and writes, and HTTP/2
/// flow control on the way.
#[test]
fn three_mib_body_is_echoed_byte_exact_over_tls() {
    let body = pattern(3 * 1024 * 1024);
    http::on_tokio(async {
        for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
            let mut sender = connect(&[alpn]).await;
            let (status, echoed) = sender
                .send(http::request("/echo", Some(body.clone())))
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(echoed.len(), body.len(), "over {alpn:?}");
            assert!(echoed == body, "the body echoed over {alpn:?} differs");
        }
    });
}

/// ALPN: a client offering `h2` and `http/1.1` gets HTTP/2, and 100
/// concurrent streams on that one connection are all answered.
#[test]
fn alpn_chooses_http2_and_serves_concurrent_streams() {
    http::on_tokio(async {
        let Sender::Http2(sender) = connect(&[b"h2", b"http/1.1"]).await else {
            panic!("the server did not choose h2 through ALPN");
        };
        let streams: Vec<_> = (0..100)
            .map(|i| {
                let mut sender = Sender::Http2(sender.clone());
                tokio::spawn(async move {
                    let sent = Bytes::from(format!("tls stream {i}"));
                    let answer = sender
                        .send(http::request("/echo", Some(sent.clone())))
                        .await;
                    assert_eq!(answer, (StatusCode::OK, sent));
                })
            })
            .collect();
        for stream in streams {
            http::bounded("a stream's task", stream)
                .await
                .expect("a stream failed");
        }
    });
}

/// A client that trusts another certificate refuses the server's: the
/// handshake fails with a certificate error, and the server goes on
/// serving clients that do trust it.
#[test]
fn wrong_certificate_is_refused_by_the_client() {
    let (addr, _) = server();
    let (other, _) = https_server::self_signed();
    http::on_tokio(async {
        let connector = http::tls_connector(&other[0], &[b"http/1.1"]);
        let error = http::connect_tls(*addr, &connector)
            .await
            .expect_err("a handshake with an untrusted certificate");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
        let message = error.to_string();
        assert!(
            message.contains("certificate"),
            "unexpected error: {message}"
        );

        let mut sender = connect(&[b"http/1.1"]).await;
        let (status, _) = sender.send(http::request("/", None)).await;
        assert_eq!(status, StatusCode::OK);
    });
}

/// curl, with `-k` for the self-signed certificate: HTTP/2 by ALPN with
/// `--http2`, HTTP/1.1 with `--http1.1` (skipped with a printed reason
/// where curl is missing).
#[test]
fn curl_over_https_speaks_http2_and_http1() {
    let (addr, _) = server();
    let url = format!("https://localhost:{}/echo", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let Some(out) = http::curl(&[
        "-k",
        "--resolve",
        &resolve,
        "--http1.1",
        "-w",
        " %{http_version}",
        "--data-binary",
        "one",
        &url,
    ]) else {
        return;
    };
    assert!(out.status.success(), "curl failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one 1.1");

    if !http::curl_has_http2() {
        return;
    }
    let out = http::curl(&[
        "-k",
        "--resolve",
        &resolve,
        "--http2",
        "-w",
        " %{http_version}",
        "--data-binary",
        "two",
        &url,
    ])
    .unwrap();
    assert!(out.status.success(), "curl failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two 2");
}
