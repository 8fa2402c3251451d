//! Name resolution: `lookup_host` and `TcpStream::connect` with the address
//! types tokio's `ToSocketAddrs` takes; a host name never blocks the loop.

use std::cell::Cell;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use xev::net::{lookup_host, TcpListener, TcpStream};
use xev::rt::spawn;
use xev::time::{sleep, timeout};

mod common;

use common::within;

const HANG: Duration = Duration::from_secs(10);

#[xev::test(timeout_ms = 20000)]
async fn lookup_host_resolves_localhost_to_loopback_addresses() -> io::Result<()> {
    let addrs: Vec<SocketAddr> = within(HANG, "lookup_host", lookup_host("localhost:4242"))
        .await?
        .collect();
    assert!(!addrs.is_empty());
    for addr in &addrs {
        assert!(addr.ip().is_loopback(), "{addr} is not loopback");
        assert_eq!(addr.port(), 4242);
    }
    let pair: Vec<_> = lookup_host(("localhost", 7)).await?.collect();
    assert!(pair.iter().all(|addr| addr.port() == 7));
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn ip_addresses_resolve_inline_in_every_form() -> io::Result<()> {
    let want: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let v4 = Ipv4Addr::LOCALHOST;
    let forms: Vec<Vec<SocketAddr>> = vec![
        lookup_host(want).await?.collect(),
        lookup_host(&want).await?.collect(),
        lookup_host(SocketAddrV4::new(v4, 80)).await?.collect(),
        lookup_host((IpAddr::V4(v4), 80)).await?.collect(),
        lookup_host((v4, 80)).await?.collect(),
        lookup_host(("127.0.0.1", 80)).await?.collect(),
        lookup_host((String::from("127.0.0.1"), 80))
            .await?
            .collect(),
        lookup_host("127.0.0.1:80").await?.collect(),
        lookup_host(String::from("127.0.0.1:80")).await?.collect(),
        lookup_host(&[want][..]).await?.collect(),
    ];
    for form in forms {
        assert_eq!(form, [want]);
    }
    let v6: Vec<_> = lookup_host((Ipv6Addr::LOCALHOST, 80)).await?.collect();
    assert_eq!(v6, ["[::1]:80".parse::<SocketAddr>().unwrap()]);
    // No runtime needed for an address: no blocking pool is involved.
    assert_eq!(xev::rt::metrics().blocking_tasks, 0);
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn an_unknown_host_fails_with_an_error() -> io::Result<()> {
    let result = within(
        HANG,
        "lookup of an invalid name",
        lookup_host("no-such-host.invalid:80"),
    )
    .await;
    assert!(result.is_err(), "an .invalid name must not resolve");
    let text = lookup_host("not an address").await;
    assert!(text.is_err(), "text without a port must fail");
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn connect_by_host_name_reaches_a_loopback_listener() -> io::Result<()> {
    // Listen on both loopbacks where possible: "localhost" may resolve to
    // ::1 first, and connect tries each address in turn.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let accept = spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let client = within(
        HANG,
        "connect(\"localhost\")",
        TcpStream::connect(("localhost", port)),
    )
    .await?;
    assert_eq!(client.peer_addr()?.port(), port);
    let server = within(HANG, "accept", accept).await??;
    client.write_all(b"by name").await?;
    let mut buf = [0; 7];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"by name");
    // The "host:port" text form too.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let text = TcpStream::connect(format!("localhost:{port}")).await?;
    assert_eq!(text.peer_addr()?.port(), port);
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn a_lookup_leaves_the_loop_free_for_timers() -> io::Result<()> {
    // A timer task ticks every millisecond while names resolve. A lookup
    // made on the runtime's thread would complete without ever yielding,
    // so the ticker would not run at all.
    let ticks = Rc::new(Cell::new(0u32));
    let ticker = spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                sleep(Duration::from_millis(1)).await;
                ticks.set(ticks.get() + 1);
            }
        }
    });
    for _ in 0..20 {
        let addrs: Vec<_> = lookup_host(("localhost", 80)).await?.collect();
        assert!(!addrs.is_empty());
    }
    ticker.abort();
    assert!(
        ticks.get() > 0,
        "the timer task never ran during the lookups"
    );
    Ok(())
}

#[xev::test(timeout_ms = 20000)]
async fn a_timeout_around_connect_by_name_cancels_cleanly() -> io::Result<()> {
    let before = xev::rt::metrics();
    // Zero time: the lookup (or the connect) is dropped mid-way.
    for _ in 0..20 {
        let _ = timeout(Duration::ZERO, TcpStream::connect(("localhost", 9))).await;
    }
    // Nothing is left registered once lookups finish on their threads.
    within(HANG, "lookups to drain", async {
        while xev::rt::metrics().blocking_tasks > 0 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let after = xev::rt::metrics();
    assert_eq!(after.registered_sockets, before.registered_sockets);
    assert_eq!(after.tasks, before.tasks);
    Ok(())
}

#[test]
fn connect_to_a_refused_name_fails_with_the_last_addresses_error() {
    xev::rt::block_on(async {
        // A port nothing listens on, by name: every address is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = TcpStream::connect(("localhost", port)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    });
}
