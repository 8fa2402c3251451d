//! The readiness surface: `Interest`, `Ready`, `ready()`, `poll_*_ready`,
//! the vectored `try_*` operations and `try_io`, and how waiting for
//! readiness relates to the cooperative I/O budget.

use std::cell::Cell;
use std::future::poll_fn;
use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read};
use std::rc::Rc;
use std::time::Duration;

use xev::net::{Interest, Ready};
use xev::rt::{spawn, yield_now};
use xev::time::timeout;

mod common;

use common::{connected_pair, within};

const HANG: Duration = Duration::from_secs(5);

#[xev::test(timeout_ms = 10000)]
async fn ready_reports_writable_at_once_and_readable_once_data_arrives() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let ready = server
        .ready(Interest::READABLE | Interest::WRITABLE)
        .await?;
    assert!(ready.is_writable());
    assert!(!ready.is_readable() && !ready.is_read_closed());

    let waiting = timeout(Duration::from_millis(20), server.ready(Interest::READABLE)).await;
    assert!(waiting.is_err(), "nothing was sent: not readable");

    client.write_all(b"hi").await?;
    let ready = within(HANG, "ready(READABLE)", server.ready(Interest::READABLE)).await?;
    assert!(ready.is_readable());
    assert!(
        !ready.is_writable(),
        "only the interest's directions are reported"
    );

    drop(client);
    let mut buf = [0; 8];
    assert_eq!(server.read(&mut buf).await?, 2);
    let ready = within(HANG, "ready after FIN", server.ready(Interest::READABLE)).await?;
    assert!(ready.is_read_closed() && ready.is_readable());
    Ok(())
}

#[test]
fn interest_and_ready_combine_like_tokio() {
    let both = Interest::READABLE | Interest::WRITABLE;
    assert!(both.is_readable() && both.is_writable());
    let mut read = Interest::READABLE;
    read |= Interest::READABLE;
    assert_eq!(read, Interest::READABLE);
    assert_eq!(format!("{both:?}"), "READABLE | WRITABLE");

    let ready = Ready::READABLE | Ready::WRITE_CLOSED;
    assert!(ready.is_readable() && ready.is_writable() && ready.is_write_closed());
    assert!(!ready.is_read_closed());
    assert!((ready - Ready::READABLE - Ready::WRITE_CLOSED).is_empty());
    assert!(Ready::EMPTY.is_empty() && !Ready::ALL.is_empty());
}

#[xev::test(timeout_ms = 10000)]
async fn poll_read_ready_and_poll_write_ready_wait_and_wake() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    poll_fn(|cx| server.poll_write_ready(cx)).await?;
    let server = Rc::new(server);
    let reader = spawn({
        let server = server.clone();
        async move { poll_fn(|cx| server.poll_read_ready(cx)).await }
    });
    yield_now().await;
    assert!(!reader.is_finished());
    client.write_all(b"x").await?;
    within(HANG, "poll_read_ready", reader).await??;
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn vectored_try_read_and_try_write_move_bytes_in_order() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let mut a = [0; 3];
    let mut b = [0; 5];
    let error = server
        .try_read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WouldBlock);

    client.writable().await?;
    let n = client.try_write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defgh")])?;
    assert_eq!(n, 8);
    let n = loop {
        server.readable().await?;
        match server.try_read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)]) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    assert_eq!(n, 8);
    assert_eq!((&a, &b), (b"abc", b"defgh"));
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn try_io_skips_its_closure_when_not_ready_and_clears_readiness_on_would_block(
) -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let calls = Cell::new(0);
    let result = server.try_io(Interest::READABLE, || {
        calls.set(calls.get() + 1);
        Ok(())
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(calls.get(), 0, "not ready: the closure must not run");

    client.write_all(b"data").await?;
    server.readable().await?;
    let result: io::Result<()> = server.try_io(Interest::READABLE, || {
        calls.set(calls.get() + 1);
        Err(ErrorKind::WouldBlock.into())
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(calls.get(), 1);
    // The readiness is gone although the bytes are still in the kernel:
    // try_read does not even try.
    let mut buf = [0; 4];
    assert_eq!(
        server.try_read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );

    // A real read through try_io, once new data brings a new edge.
    client.write_all(b"more").await?;
    let mut all = [0; 8];
    let n = loop {
        server.readable().await?;
        let raw = socket2::SockRef::from(&server);
        match server.try_io(Interest::READABLE, || (&*raw).read(&mut all)) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    assert_eq!(&all[..n], b"datamore");
    Ok(())
}

/// Runs `body` in one task while a second task waits to run; says whether
/// the second ran before `body` finished (i.e. whether `body` yielded).
async fn yields_while<F: std::future::Future<Output = io::Result<()>>>(
    body: F,
) -> io::Result<bool> {
    let ran = Rc::new(Cell::new(false));
    let other = spawn({
        let ran = ran.clone();
        async move { ran.set(true) }
    });
    body.await?;
    let yielded = ran.get();
    other.await.unwrap();
    Ok(yielded)
}

#[xev::test(timeout_ms = 10000)]
async fn waiting_for_readiness_takes_no_io_budget() -> io::Result<()> {
    let (client, _server) = connected_pair().await?;
    client.writable().await?;
    let yielded = yields_while(async {
        for _ in 0..1000 {
            client.writable().await?;
            client.ready(Interest::WRITABLE).await?;
        }
        Ok(())
    })
    .await?;
    assert!(
        !yielded,
        "2,000 ready waits on a ready socket must not yield"
    );
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn a_loop_of_writable_and_try_write_still_yields() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let drain = spawn(async move {
        let mut buf = [0; 4096];
        while server.read(&mut buf).await? > 0 {}
        io::Result::Ok(())
    });
    client.writable().await?;
    let yielded = yields_while(async {
        for _ in 0..1000 {
            client.writable().await?;
            match client.try_write(b"x") {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await?;
    assert!(yielded, "1,000 try_writes must spend the budget and yield");
    drop(client);
    within(HANG, "the drain", drain).await??;
    Ok(())
}

#[xev::test(timeout_ms = 10000)]
async fn halves_have_the_readiness_surface_too() -> io::Result<()> {
    let (client, server) = connected_pair().await?;
    let (read, write) = xev::net::TcpStream::split(&server);
    assert!(write.ready(Interest::WRITABLE).await?.is_writable());
    poll_fn(|cx| write.poll_write_ready(cx)).await?;
    assert_eq!(
        write.try_write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"c")])?,
        3
    );
    client.write_all(b"xyz").await?;
    let ready = within(HANG, "ready on a read half", read.ready(Interest::READABLE)).await?;
    assert!(ready.is_readable());
    poll_fn(|cx| read.poll_read_ready(cx)).await?;
    let (mut a, mut b) = ([0; 1], [0; 2]);
    let n = read.try_read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])?;
    assert_eq!((n, &a, &b), (3, b"x", b"yz"));

    let (owned_read, owned_write) = server.into_split();
    owned_write.writable().await?;
    assert_eq!(owned_write.try_write(b"d")?, 1);
    client.write_all(b"!").await?;
    within(
        HANG,
        "ready on an owned read half",
        owned_read.ready(Interest::READABLE),
    )
    .await?;
    let mut got = [0; 4];
    client.read_exact(&mut got).await?;
    assert_eq!(&got, b"abcd");
    Ok(())
}
