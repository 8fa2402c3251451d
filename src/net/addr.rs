//! Addresses to connect to, and name resolution that never blocks the loop.
//!
//! An IP address (or `"ip:port"` text) becomes a [`SocketAddr`] inline. A
//! host name goes to the system resolver (`getaddrinfo`), which blocks: it
//! runs on the runtime's blocking pool ([`spawn_blocking`]), and the loop
//! keeps serving other tasks meanwhile.
//!
//! [`spawn_blocking`]: crate::rt::spawn_blocking

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What [`TcpStream::connect`](crate::net::TcpStream::connect) and
/// [`lookup_host`] take: the types tokio's `ToSocketAddrs` is implemented
/// for. The trait is sealed: its method is this crate's own.
///
/// Implemented for [`SocketAddr`], [`SocketAddrV4`], [`SocketAddrV6`],
/// `(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`, `(&str, u16)`,
/// `(String, u16)`, `&str` and `String` (`"host:port"`), `&[SocketAddr]`,
/// and `&T` for each of them.
///
/// IP addresses resolve inline; host names resolve on the blocking pool.
///
/// # Examples
/// ```
/// use xev::net::{TcpListener, TcpStream};
///
/// xev::rt::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let port = listener.local_addr()?.port();
///     // A host name: resolved off the runtime's thread, then each address
///     // it resolves to is tried in turn.
///     let by_name = TcpStream::connect(("localhost", port)).await;
///     // An address: no resolver at all.
///     let by_ip = TcpStream::connect(("127.0.0.1", port)).await?;
///     assert_eq!(by_ip.peer_addr()?.port(), port);
///     # drop(by_name);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use super::*;

    /// The addresses a value stands for, or the name to resolve first.
    #[derive(Debug)]
    pub enum Resolve {
        /// Known without asking a resolver.
        Addrs(Vec<SocketAddr>),
        /// `(host, port)` for the system resolver.
        HostPort(String, u16),
        /// `"host:port"` for the system resolver.
        Text(String),
    }

    /// The method behind [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait ToSocketAddrsPriv {
        /// The addresses, or what to resolve to get them.
        fn resolve(&self) -> Resolve;
    }
}

use sealed::{Resolve, ToSocketAddrsPriv};

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrsPriv + ?Sized> ToSocketAddrsPriv for &T {
    fn resolve(&self) -> Resolve {
        (**self).resolve()
    }
}

macro_rules! inline_addrs {
    ($($ty:ty => |$value:ident| $addr:expr;)*) => {$(
        impl ToSocketAddrs for $ty {}
        impl ToSocketAddrsPriv for $ty {
            fn resolve(&self) -> Resolve {
                let $value = self;
                Resolve::Addrs(vec![$addr])
            }
        }
    )*};
}

inline_addrs! {
    SocketAddr => |addr| *addr;
    SocketAddrV4 => |addr| SocketAddr::V4(*addr);
    SocketAddrV6 => |addr| SocketAddr::V6(*addr);
    (IpAddr, u16) => |pair| SocketAddr::new(pair.0, pair.1);
    (Ipv4Addr, u16) => |pair| SocketAddr::new(IpAddr::V4(pair.0), pair.1);
    (Ipv6Addr, u16) => |pair| SocketAddr::new(IpAddr::V6(pair.0), pair.1);
}

impl ToSocketAddrs for [SocketAddr] {}
impl ToSocketAddrsPriv for [SocketAddr] {
    fn resolve(&self) -> Resolve {
        Resolve::Addrs(self.to_vec())
    }
}

impl ToSocketAddrs for str {}
impl ToSocketAddrsPriv for str {
    fn resolve(&self) -> Resolve {
        match self.parse() {
            Ok(addr) => Resolve::Addrs(vec![addr]),
            Err(_) => Resolve::Text(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}
impl ToSocketAddrsPriv for String {
    fn resolve(&self) -> Resolve {
        self.as_str().resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl ToSocketAddrsPriv for (&str, u16) {
    fn resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Addrs(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Resolve::HostPort(self.0.to_owned(), self.1),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl ToSocketAddrsPriv for (String, u16) {
    fn resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).resolve()
    }
}

/// The addresses `addr` stands for: inline for IP addresses, through the
/// system resolver on the blocking pool for host names.
pub(crate) async fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    let lookup = match addr.resolve() {
        Resolve::Addrs(addrs) => return Ok(addrs),
        Resolve::HostPort(host, port) => crate::rt::spawn_blocking(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map(Iterator::collect)
        }),
        Resolve::Text(text) => crate::rt::spawn_blocking(move || {
            std::net::ToSocketAddrs::to_socket_addrs(text.as_str()).map(Iterator::collect)
        }),
    };
    lookup.await?
}

/// Resolves `host` to socket addresses, the way
/// [`TcpStream::connect`](crate::net::TcpStream::connect) does: an IP
/// address at once, a host name with the system resolver on the blocking
/// pool, so the runtime's thread never waits for DNS.
///
/// # Errors
/// What the resolver reports (an unknown host, no network), or a
/// [`JoinError`](crate::rt::JoinError) turned into `io::Error` if the
/// lookup was cancelled (its runtime shut down).
///
/// # Cancel safety
/// Cancel safe: dropping the future abandons the lookup; a resolver call
/// already running finishes on its thread and its answer is dropped.
///
/// # Panics
/// Outside a runtime, for a host name (the lookup needs the blocking pool).
///
/// # Examples
/// ```
/// xev::rt::block_on(async {
///     let addrs: Vec<_> = xev::net::lookup_host("localhost:80").await?.collect();
///     assert!(addrs.iter().all(|addr| addr.ip().is_loopback() && addr.port() == 80));
///
///     let ip: Vec<_> = xev::net::lookup_host(("127.0.0.1", 8080)).await?.collect();
///     assert_eq!(ip, ["127.0.0.1:8080".parse().unwrap()]);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<impl Iterator<Item = SocketAddr>> {
    resolve(&host).await.map(Vec::into_iter)
}
