//! hyper 1.x serving HTTP/1.1 and HTTP/2 on xev: the server of
//! `examples/hyper_server.rs` (compiled in here, so the tests run the
//! example's own code) on runtime threads of its own, checked by real
//! clients — hyper's client on tokio, curl where installed — and by
//! hand-written HTTP/1.1 over blocking `std::net` sockets, so nothing but
//! xev runs the server side.
//!
//! Every client wait is bounded (socket read timeouts, `common::http`'s
//! step limit): a server that stops answering fails the test instead of
//! hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;

mod common;

use common::http::{self, Sender};

#[allow(dead_code)] // its `main`
#[path = "../examples/hyper_server.rs"]
mod hyper_server;

use hyper_server::{Limits, Protocol};

/// Starts the example's server with `protocol` and the example's default
/// limits on a thread that runs an xev runtime for the life of the test
/// process.
fn start(protocol: Protocol) -> SocketAddr {
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        xev::rt::block_on(async move {
            let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            hyper_server::serve(listener, protocol, Limits::default()).await;
        })
    });
    addr_rx.recv().expect("the server thread binds a listener")
}

/// The HTTP/1.1 server, started once for all the tests in this file.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| start(Protocol::Http1))
}

/// The HTTP/2 (prior knowledge) server, started once.
fn h2c_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| start(Protocol::Http2))
}

/// A connection to the server with a 5 s read timeout.
fn connect() -> TcpStream {
    let stream = TcpStream::connect(server()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// One parsed response: the status line, the lower-cased headers, the body.
#[derive(Debug)]
struct Response {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads one response with a `content-length` body (all this server sends).
fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (key, value) = line.split_once(':').expect("a header line has a colon");
        headers.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(key, _)| key == "content-length")
        .expect("the response has a content-length")
        .1
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Response {
        status_line: status_line.trim_end().to_owned(),
        headers,
        body,
    })
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Several requests, one after the other, on one keep-alive connection:
/// each gets its own complete, correct response and the connection stays
/// open between them.
#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let mut stream = connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for round in 0..5 {
        stream.write_all(get("/").as_bytes()).unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status_line, "HTTP/1.1 200 OK", "round {round}");
        assert_eq!(response.body, b"Hello, World!\n", "round {round}");
        assert_ne!(response.header("connection"), Some("close"));

        let body = format!("echo me, round {round}");
        stream.write_all(&post("/echo", body.as_bytes())).unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status_line, "HTTP/1.1 200 OK", "round {round}");
        assert_eq!(response.body, body.as_bytes(), "round {round}");

        stream.write_all(get("/missing").as_bytes()).unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status_line, "HTTP/1.1 404 Not Found");
        assert_eq!(response.body, b"not found\n");
    }
}

/// Pipelined requests, all sent in one write before any response is read,
/// are answered in order: the adapter hands hyper bytes that belong to the
/// next request without losing them.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut stream = connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut requests = Vec::new();
    for i in 0..20 {
        requests.extend_from_slice(&post("/echo", format!("request {i}").as_bytes()));
    }
    stream.write_all(&requests).unwrap();
    for i in 0..20 {
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.body, format!("request {i}").as_bytes());
    }
}

/// A body far larger than the socket buffers and the adapter's scratch
/// buffer comes back byte for byte: partial reads and partial vectored
/// writes on both sides.
#[test]
fn large_body_is_echoed_intact() {
    let stream = connect();
    let body: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    // Write from another thread: the server starts answering before it has
    // read everything, and a client that only writes would deadlock.
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let request = post("/echo", &body);
        std::thread::spawn(move || stream.write_all(&request))
    };
    let response = read_response(&mut BufReader::new(stream)).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(response.status_line, "HTTP/1.1 200 OK");
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "the echoed body differs");
}

/// `Connection: close` is honoured: the response says so and the server
/// then closes the connection (the client reads end of stream).
#[test]
fn connection_close_ends_the_connection() {
    let mut stream = connect();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader).unwrap();
    assert_eq!(response.status_line, "HTTP/1.1 200 OK");
    assert_eq!(response.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
}

/// Many clients at once, each with several requests on its own keep-alive
/// connection: one xev thread serves them all.
#[test]
fn concurrent_keep_alive_clients_are_all_served() {
    let clients: Vec<_> = (0..32)
        .map(|client| {
            std::thread::spawn(move || {
                let mut stream = connect();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                for i in 0..20 {
                    let body = format!("client {client} request {i}");
                    stream.write_all(&post("/echo", body.as_bytes())).unwrap();
                    let response = read_response(&mut reader).unwrap();
                    assert_eq!(response.status_line, "HTTP/1.1 200 OK");
                    assert_eq!(response.body, body.as_bytes());
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread failed");
    }
}

/// hyper's own client, on tokio, sends 100 requests over one keep-alive
/// HTTP/1.1 connection: every one is answered correctly, and a body over
/// the example's limit is refused with 413 without ending the connection.
#[test]
fn hyper_client_keep_alive_requests_are_answered() {
    let addr = server();
    http::on_tokio(async {
        let mut sender = http::connect_http1(addr).await;
        for i in 0..100 {
            let (status, body) = sender.send(http::request("/", None)).await;
            assert_eq!(
                (status, &body[..]),
                (StatusCode::OK, &b"Hello, World!\n"[..])
            );
            let sent = Bytes::from(format!("request {i}"));
            let (status, body) = sender
                .send(http::request("/echo", Some(sent.clone())))
                .await;
            assert_eq!((status, body), (StatusCode::OK, sent), "request {i}");
        }
        let too_large = Bytes::from(vec![7; Limits::default().max_body + 1]);
        let (status, _) = sender.send(http::request("/echo", Some(too_large))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _) = sender.send(http::request("/missing", None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

/// HTTP/2 with prior knowledge: 100 requests in flight at once on one
/// connection, each its own stream with its own body, all answered with
/// their own body. (xev::hyper::Executor runs each stream as a task.)
#[test]
fn http2_hundred_concurrent_streams_on_one_connection_are_all_answered() {
    let addr = h2c_server();
    http::on_tokio(async {
        let Sender::Http2(sender) = http::connect_http2(addr).await else {
            unreachable!("connect_http2 speaks HTTP/2")
        };
        let streams: Vec<_> = (0..100)
            .map(|i| {
                let mut sender = Sender::Http2(sender.clone());
                tokio::spawn(async move {
                    let sent = Bytes::from(format!("stream {i} ").repeat(i + 1));
                    let (status, body) = sender
                        .send(http::request("/echo", Some(sent.clone())))
                        .await;
                    assert_eq!(status, StatusCode::OK, "stream {i}");
                    assert_eq!(body, sent, "stream {i}");
                })
            })
            .collect();
        let mut answered = 0;
        for stream in streams {
            http::bounded("a stream's task", stream)
                .await
                .expect("a stream failed");
            answered += 1;
        }
        assert_eq!(answered, 100);
    });
}

/// curl, HTTP/1.1 then HTTP/2 with prior knowledge (skipped with a
/// printed reason where curl, or its HTTP/2 support, is missing).
#[test]
fn curl_gets_and_posts_over_http1_and_h2c() {
    let url = |addr: SocketAddr, path: &str| format!("http://{addr}{path}");
    let Some(out) = http::curl(&["--http1.1", "-w", " %{http_version}", &url(server(), "/")])
    else {
        return;
    };
    assert!(out.status.success(), "curl failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!\n 1.1");

    let out = http::curl(&["--data-binary", "curl says hi", &url(server(), "/echo")]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "curl says hi");

    if !http::curl_has_http2() {
        return;
    }
    let h2 = url(h2c_server(), "/echo");
    let out = http::curl(&[
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        "--data-binary",
        "h2c",
        &h2,
    ])
    .unwrap();
    assert!(out.status.success(), "curl failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "h2c 2");
}
