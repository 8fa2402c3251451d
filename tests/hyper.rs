//! hyper 1.x serving HTTP/1.1 on xev: the server of `examples/hyper_server.rs`
//! (compiled in here, so the test runs the example's own code) on a runtime
//! thread of its own, and hand-written HTTP/1.1 clients over blocking
//! `std::net` sockets, so nothing but xev runs the server side.
//!
//! Every client socket has a read timeout: a server that stops answering
//! fails the test instead of hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

#[allow(dead_code)] // its `main`
#[path = "../examples/hyper_server.rs"]
mod hyper_server;

/// The example's server, started once for all the tests in this file on a
/// thread that runs an xev runtime for the life of the test process.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            xev::rt::block_on(async move {
                let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                hyper_server::serve(listener).await;
            })
        });
        addr_rx.recv().expect("the server thread binds a listener")
    })
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
