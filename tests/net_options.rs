//! Socket options read back what was set, on `TcpSocket` and `TcpStream`;
//! a zero linger resets the peer; `TryFrom` the `std` sockets; several
//! listeners on one port with `bind_reuseport`.
//!
//! Every test is bounded by `#[xev::test(timeout_ms = ...)]`.

mod common;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{assert_kind, connected_pair};
use futures::future::{self, Either};
use xev::net::{TcpListener, TcpSocket, TcpStream};

#[test]
fn socket_options_read_back_what_was_set() -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    // Each boolean both ways, so a getter stuck at its default fails.
    for on in [true, false] {
        socket.set_reuseaddr(on)?;
        assert_eq!(socket.reuseaddr()?, on);
        socket.set_nodelay(on)?;
        assert_eq!(socket.nodelay()?, on);
        socket.set_keepalive(on)?;
        assert_eq!(socket.keepalive()?, on);
        #[cfg(unix)]
        {
            socket.set_reuseport(on)?;
            assert_eq!(socket.reuseport()?, on);
        }
    }

    // Linux doubles buffer sizes; every kernel reports at least the size set
    // when it is well above the minimum.
    let small = socket.send_buffer_size()?;
    socket.set_send_buffer_size(small * 4)?;
    assert!(socket.send_buffer_size()? >= small * 4);
    let small = socket.recv_buffer_size()?;
    socket.set_recv_buffer_size(small * 4)?;
    assert!(socket.recv_buffer_size()? >= small * 4);

    assert_eq!(socket.linger()?, None);
    socket.set_linger(Some(Duration::from_secs(3)))?;
    assert_eq!(socket.linger()?, Some(Duration::from_secs(3)));
    socket.set_zero_linger()?;
    assert_eq!(socket.linger()?, Some(Duration::ZERO));
    socket.set_linger(None)?;
    assert_eq!(socket.linger()?, None);

    #[cfg(target_os = "linux")]
    {
        assert_eq!(socket.tos_v4()?, 0);
        socket.set_tos_v4(0x10)?;
        assert_eq!(socket.tos_v4()?, 0x10);
        assert_eq!(socket.tos()?, 0x10, "`tos` reads the same option");
        socket.set_tos(0x08)?;
        assert_eq!(socket.tos_v4()?, 0x08, "`set_tos` sets the same option");
    }

    socket.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = socket.local_addr()?;
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert!(socket.take_error()?.is_none());
    Ok(())
}

#[test]
fn ipv6_socket_options_read_back_what_was_set() -> std::io::Result<()> {
    let socket = match TcpSocket::new_v6() {
        Ok(socket) => socket,
        Err(error) => {
            println!("skipped: no IPv6 sockets here ({error})");
            return Ok(());
        }
    };
    for on in [true, false, true] {
        socket.set_only_v6(on)?;
        assert_eq!(socket.only_v6()?, on);
    }
    if let Err(error) = socket.bind(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))) {
        println!("skipped: cannot bind [::1] ({error})");
        return Ok(());
    }
    assert!(socket.only_v6()?, "kept after bind");

    #[cfg(target_os = "linux")]
    {
        assert_eq!(socket.tclass_v6()?, 0);
        socket.set_tclass_v6(0x10)?;
        assert_eq!(socket.tclass_v6()?, 0x10);
    }
    // IPV6_V6ONLY is an IPv6 option: an IPv4 socket has none.
    assert!(TcpSocket::new_v4()?.set_only_v6(true).is_err());
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn ipv6_socket_options_carry_over_to_the_stream() -> std::io::Result<()> {
    let listener = match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(listener) => listener,
        Err(error) => {
            println!("skipped: cannot listen on [::1] ({error})");
            return Ok(());
        }
    };
    let socket = TcpSocket::new_v6()?;
    #[cfg(target_os = "linux")]
    socket.set_tclass_v6(0x20)?;
    socket.set_nodelay(true)?;
    let client = socket.connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    assert!(client.nodelay()?);
    #[cfg(target_os = "linux")]
    assert_eq!(
        socket2::SockRef::from(&client).tclass_v6()?,
        0x20,
        "the connected stream keeps the traffic class"
    );

    client.write_all(b"over IPv6").await?;
    let mut got = [0; 9];
    server.read_exact(&mut got).await?;
    assert_eq!(&got, b"over IPv6");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn stream_zero_linger_reads_back() -> std::io::Result<()> {
    let (client, _server) = connected_pair().await?;
    assert_eq!(client.linger()?, None);
    client.set_zero_linger()?;
    assert_eq!(client.linger()?, Some(Duration::ZERO));
    client.set_linger(None)?;
    assert_eq!(client.linger()?, None);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn zero_linger_stream_dropped_resets_the_peer() -> std::io::Result<()> {
    let (client, server) = connected_pair().await?;
    client.write_all(b"before").await?;
    let mut got = [0; 6];
    server.read_exact(&mut got).await?;

    client.set_zero_linger()?;
    drop(client);
    let mut buf = [0; 16];
    assert_kind(server.read(&mut buf).await, ErrorKind::ConnectionReset);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn zero_linger_set_on_the_socket_resets_the_peer() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let socket = TcpSocket::new_v4()?;
    socket.set_zero_linger()?;
    let client = socket.connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    assert_eq!(client.linger()?, Some(Duration::ZERO));

    drop(client);
    let mut buf = [0; 16];
    assert_kind(server.read(&mut buf).await, ErrorKind::ConnectionReset);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn without_zero_linger_the_peer_reads_end_of_stream() -> std::io::Result<()> {
    // The control for the two tests above: a plain drop is a FIN.
    let (client, server) = connected_pair().await?;
    drop(client);
    let mut buf = [0; 16];
    assert_eq!(server.read(&mut buf).await?, 0);
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn try_from_std_sockets_do_io() -> std::io::Result<()> {
    let listener = TcpListener::try_from(std::net::TcpListener::bind("127.0.0.1:0")?)?;
    let addr = listener.local_addr()?;
    // A blocking connect to a listening loopback port completes at once.
    let client = TcpStream::try_from(std::net::TcpStream::connect(addr)?)?;
    let (server, peer) = listener.accept().await?;
    assert_eq!(peer, client.local_addr()?);

    client.write_all(b"request").await?;
    let mut got = [0; 7];
    server.read_exact(&mut got).await?;
    assert_eq!(&got, b"request");
    server.write_all(b"reply").await?;
    let mut got = [0; 5];
    client.read_exact(&mut got).await?;
    assert_eq!(&got, b"reply");

    // Waiting works too: the read starts before anything is sent.
    let mut buf = [0; 4];
    let (read, sent) = future::join(client.read_exact(&mut buf), async {
        xev::time::sleep(Duration::from_millis(20)).await;
        server.write_all(b"late").await
    })
    .await;
    read?;
    sent?;
    assert_eq!(&buf, b"late");
    Ok(())
}

#[test]
#[should_panic(expected = "there is no xev runtime running")]
fn try_from_std_stream_outside_a_runtime_panics() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _ = TcpStream::try_from(stream);
}

#[test]
#[should_panic(expected = "there is no xev runtime running")]
fn try_from_std_listener_outside_a_runtime_panics() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _ = TcpListener::try_from(listener);
}

#[xev::test(timeout_ms = 5000)]
async fn socket_from_std_stream_connects() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let socket = TcpSocket::from_std_stream(raw.into());
    socket.set_nodelay(true)?;
    let client = socket.connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    assert!(client.nodelay()?);
    client.write_all(b"made elsewhere").await?;
    let mut got = [0; 14];
    server.read_exact(&mut got).await?;
    assert_eq!(&got, b"made elsewhere");
    Ok(())
}

#[xev::test(timeout_ms = 5000)]
async fn plain_bind_twice_is_addr_in_use() -> std::io::Result<()> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let addr = first.local_addr()?;
    assert_kind(TcpListener::bind(addr), ErrorKind::AddrInUse);
    // Nor can a reuseport listener join a port bound without the option.
    #[cfg(unix)]
    assert_kind(TcpListener::bind_reuseport(addr), ErrorKind::AddrInUse);
    Ok(())
}

#[cfg(unix)]
#[xev::test(timeout_ms = 10000)]
async fn bind_reuseport_twice_and_every_connection_is_accepted() -> std::io::Result<()> {
    const CLIENTS: usize = 64;
    let first = TcpListener::bind_reuseport("127.0.0.1:0")?;
    let addr = first.local_addr()?;
    let second = TcpListener::bind_reuseport(addr)?;
    assert_eq!(second.local_addr()?, addr);

    // Each connect completes in the kernel once the handshake is done, with
    // the connection waiting in one listener's backlog (1024 deep).
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(TcpStream::connect(addr).await?);
    }
    let expected: HashSet<SocketAddr> = clients
        .iter()
        .map(|client| client.local_addr())
        .collect::<Result<_, _>>()?;
    assert_eq!(expected.len(), CLIENTS);

    // `accept` is cancel safe: the losing side of each race loses nothing.
    let mut accepted = HashSet::new();
    let mut per_listener = [0; 2];
    while accepted.len() < CLIENTS {
        let (stream, peer, which) =
            match future::select(Box::pin(first.accept()), Box::pin(second.accept())).await {
                Either::Left((result, _)) => {
                    let (stream, peer) = result?;
                    (stream, peer, 0)
                }
                Either::Right((result, _)) => {
                    let (stream, peer) = result?;
                    (stream, peer, 1)
                }
            };
        assert_eq!(stream.peer_addr()?, peer);
        assert!(accepted.insert(peer), "{peer} accepted twice");
        per_listener[which] += 1;
    }
    assert_eq!(accepted, expected);
    println!("accepted per listener: {per_listener:?}");
    Ok(())
}

#[cfg(not(unix))]
#[xev::test(timeout_ms = 5000)]
async fn bind_reuseport_is_unsupported_here() {
    assert_kind(
        TcpListener::bind_reuseport("127.0.0.1:0"),
        ErrorKind::Unsupported,
    );
}
