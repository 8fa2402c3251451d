//! Choosing the backend (DESIGN §10 "Backends"): `Builder::backend` wins,
//! `XEV_BACKEND` sets the default, a malformed value is a clear error, and
//! `Runtime::backend` / `Handle::backend` / `Debug` say what runs. Then
//! guarantees that matter most under `IoUring`, checked on whichever
//! backend the suite runs with (CI runs it on both): a read dropped while
//! its receive is armed loses no byte, and closing a stream whose receive
//! is armed closes the socket at once.

mod common;

use std::io::{self, ErrorKind};
use std::rc::Rc;
use std::time::Duration;

use common::child;
use xev::net::{TcpListener, TcpStream};
use xev::rt::{Backend, Handle, Runtime};
use xev::time::{sleep, timeout};

/// Whether io_uring works here: the `Auto` choice of a fresh runtime.
fn io_uring_works() -> bool {
    let rt = Runtime::builder().backend(Backend::Auto).build().unwrap();
    rt.backend() == Backend::IoUring
}

#[test]
fn an_explicit_backend_is_the_one_in_use_and_says_why() {
    let rt = Runtime::builder().backend(Backend::Poll).build().unwrap();
    assert_eq!(rt.backend(), Backend::Poll);
    assert!(
        rt.backend_reason().contains("Builder::backend"),
        "{}",
        rt.backend_reason()
    );
    assert!(format!("{rt:?}").contains("Poll"), "{rt:?}");
    assert_eq!(
        rt.block_on(async { Handle::current().backend() }),
        Backend::Poll
    );

    let auto = Runtime::builder().backend(Backend::Auto).build().unwrap();
    assert_ne!(
        auto.backend(),
        Backend::Auto,
        "Auto resolves to a real backend"
    );
    match auto.backend() {
        Backend::IoUring => {
            let rt = Runtime::builder()
                .backend(Backend::IoUring)
                .build()
                .unwrap();
            assert_eq!(rt.backend(), Backend::IoUring);
            assert!(format!("{rt:?}").contains("IoUring"), "{rt:?}");
        }
        _ => {
            println!("io_uring unavailable here: {}", auto.backend_reason());
            assert!(
                auto.backend_reason().contains("refused"),
                "{}",
                auto.backend_reason()
            );
        }
    }
}

/// `XEV_BACKEND` is read by every runtime a builder makes without an
/// explicit backend; run in children, as the variable is process-wide.
#[test]
fn xev_backend_sets_the_default_and_a_bad_value_is_a_clear_error() {
    const NAME: &str = "xev_backend_sets_the_default_and_a_bad_value_is_a_clear_error";
    if child::is_child(NAME) {
        let wanted = std::env::var("XEV_BACKEND").unwrap();
        match Runtime::new() {
            Ok(rt) => println!("child: {:?} ({})", rt.backend(), rt.backend_reason()),
            Err(error) => println!("child error: {:?} {error}", error.kind()),
        }
        // An explicit choice wins over the variable.
        let rt = Runtime::builder().backend(Backend::Poll).build().unwrap();
        assert_eq!(rt.backend(), Backend::Poll, "XEV_BACKEND={wanted}");
        return;
    }
    let run = |value: &str| {
        let output = child::start(NAME, &[("XEV_BACKEND", value.to_owned())])
            .wait_with_output()
            .expect("the child runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "XEV_BACKEND={value}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let poll = run("poll");
    assert!(
        poll.contains("child: Poll (poll, set by XEV_BACKEND)"),
        "{poll}"
    );
    let bad = run("epoll");
    assert!(
        bad.contains("child error: InvalidInput") && bad.contains("auto, poll or io_uring"),
        "{bad}"
    );
    let uring = run("io_uring");
    if io_uring_works() {
        assert!(
            uring.contains("child: IoUring (io_uring, set by XEV_BACKEND)"),
            "{uring}"
        );
        let auto = run("auto");
        assert!(auto.contains("child: IoUring"), "{auto}");
    } else {
        assert!(uring.contains("child error:"), "{uring}");
        let auto = run("auto");
        assert!(auto.contains("child: Poll"), "{auto}");
    }
}

async fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    Ok((client, server))
}

/// A read whose receive is armed in the ring, dropped before data comes:
/// the bytes that arrive later are read by the next read, none lost or
/// repeated. (Under `Poll` the same holds trivially.)
#[xev::test(timeout_ms = 10000)]
async fn bytes_arriving_after_a_dropped_read_go_to_the_next_read() -> io::Result<()> {
    let (client, server) = pair().await?;
    for round in 0..100u8 {
        let mut buf = [0; 64];
        // Arms a receive (under IoUring) and gives up.
        assert!(timeout(Duration::from_millis(1), server.read(&mut buf))
            .await
            .is_err());
        client.write_all(&[round; 3]).await?;
        let mut got = [0; 3];
        server.read_exact(&mut got).await?;
        assert_eq!(got, [round; 3], "round {round}");
    }
    Ok(())
}

/// Dropping a stream whose receive is armed closes its socket at once: the
/// peer reads end of stream, and the descriptor is gone.
#[xev::test(timeout_ms = 10000)]
async fn dropping_a_stream_with_a_pending_read_closes_it() -> io::Result<()> {
    let (client, server) = pair().await?;
    let server = Rc::new(server);
    let reader = xev::rt::spawn({
        let server = server.clone();
        async move {
            let mut buf = [0; 16];
            server.read(&mut buf).await
        }
    });
    sleep(Duration::from_millis(10)).await; // the read waits
    reader.abort();
    let _ = reader.await;
    drop(server);
    let mut buf = [0; 16];
    let read = timeout(Duration::from_secs(2), client.read(&mut buf))
        .await
        .expect("the peer sees the close within 2 s");
    assert_eq!(read?, 0, "end of stream");
    Ok(())
}

/// `into_std` refuses a stream whose bytes the runtime still holds in the
/// ring, rather than lose them; once they are read, it works.
#[xev::test(timeout_ms = 10000)]
async fn into_std_does_not_lose_bytes_the_runtime_received() -> io::Result<()> {
    let (client, server) = pair().await?;
    client.write_all(b"abc").await?;
    let mut one = [0; 1];
    server.read_exact(&mut one).await?; // under IoUring, "bc" wait in the ring
    if Handle::current().backend() == Backend::IoUring {
        let error = server.into_std().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Other);
        assert!(error.to_string().contains("into_std"), "{error}");
        return Ok(());
    }
    let mut std_server = server.into_std()?;
    std_server.set_nonblocking(false)?;
    let mut rest = [0; 2];
    std::io::Read::read_exact(&mut std_server, &mut rest)?;
    assert_eq!(&rest, b"bc");
    Ok(())
}
