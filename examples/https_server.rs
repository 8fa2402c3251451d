//! HTTPS with hyper and rustls on xev: the service and limits of
//! `hyper_server.rs` behind TLS, HTTP/2 or HTTP/1.1 as ALPN decides.
//!
//! ```text
//! cargo run --release --features hyper --example https_server [-- --addr 127.0.0.1:3443]
//!     [--cert cert.pem --key key.pem]
//! curl -k https://127.0.0.1:3443/                  # HTTP/2 (ALPN h2)
//! curl -k --http1.1 --data 'hi' https://127.0.0.1:3443/echo
//! ```
//!
//! Without `--cert`/`--key` (PEM files: the certificate chain, and its
//! private key in PKCS#8, PKCS#1 or SEC1), a self-signed certificate for
//! `localhost` and `127.0.0.1` is made at start (rcgen): clients must skip
//! verification (`curl -k`) or trust it explicitly.
//!
//! TLS is rustls through **futures-rustls**, which wraps any futures-io
//! stream, as xev's `TcpStream` is; its `TlsStream` is futures-io again, so
//! `xev::hyper::Io` takes it as it takes a plain stream. (tokio-rustls would
//! need xev's `tokio-io` feature for the same result: one more trait layer
//! for nothing.) rustls uses its `ring` provider: aws-lc-rs, the default,
//! builds C code with cmake.
//!
//! The TLS handshake has the header timeout of `hyper_server.rs` to finish
//! (a client trickling its handshake is cut off like one trickling
//! headers); ALPN offers `h2` then `http/1.1`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use xev::net::TcpListener;

#[allow(dead_code)] // its `main`
#[path = "hyper_server.rs"]
pub mod hyper_server;

use hyper_server::{Limits, Protocol};

fn main() -> io::Result<()> {
    let args = parse_args()?;
    let (chain, key) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => load_pem(cert, key)?,
        (None, None) => self_signed(),
        _ => return Err(usage("--cert and --key go together")),
    };
    let acceptor = TlsAcceptor::from(Arc::new(server_config(chain, key)?));
    xev::rt::block_on(async {
        let listener = TcpListener::bind(args.addr.as_str())?;
        println!("listening on https://{}", listener.local_addr()?);
        serve(listener, acceptor, Limits::default()).await;
        Ok(())
    })
}

/// A TLS server configuration for one certificate chain and key, with the
/// `ring` provider and ALPN `h2`, `http/1.1`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the certificate and key do not make a TLS identity: {error}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`, and its
/// key.
pub fn self_signed() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names)
        .expect("rcgen makes a certificate for fixed, valid names");
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    (vec![certified.cert.der().clone()], key.into())
}

/// Reads a PEM certificate chain and a PEM private key.
fn load_pem(
    cert: &str,
    key: &str,
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let bad = |what: &str, path: &str, error: rustls::pki_types::pem::Error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot read the {what} from {path:?} (a PEM file is expected): {error}"),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| bad("certificate chain", cert, error))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| bad("private key", key, error))?;
    Ok((chain, key))
}

/// Accepts connections forever; each does its TLS handshake, then speaks
/// the protocol ALPN chose, in a task of its own.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, limits: Limits) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("accept failed: {error}; retrying in 100 ms");
                xev::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        drop(xev::rt::spawn(async move {
            let handshake = acceptor.accept(stream);
            let tls = match xev::time::timeout(limits.header_read_timeout, handshake).await {
                Ok(Ok(tls)) => tls,
                // Not TLS, a failed handshake, or too slow: nothing to serve.
                Ok(Err(_)) | Err(_) => return,
            };
            let protocol = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            hyper_server::serve_connection(tls, protocol, limits).await;
        }));
    }
}

struct Args {
    addr: String,
    cert: Option<String>,
    key: Option<String>,
}

/// `--addr HOST:PORT` (default `127.0.0.1:3443`), `--cert PATH --key PATH`.
fn parse_args() -> io::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        addr: String::from("127.0.0.1:3443"),
        cert: None,
        key: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--addr" => parsed.addr = value()?,
            "--cert" => parsed.cert = Some(value()?),
            "--key" => parsed.key = Some(value()?),
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok(parsed)
}

fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}; usage: https_server [--addr HOST:PORT] [--cert PEM --key PEM]"),
    )
}
