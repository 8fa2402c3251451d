//! The little that differs between platforms: sending on a socket, the
//! kernel's limits on one call, and the socket options only some systems
//! have (elsewhere they fail with [`Unsupported`](io::ErrorKind::Unsupported),
//! so the public API is the same everywhere).
//!
//! A send to a peer that has gone raises `SIGPIPE` on Unix, which kills a
//! process that has not ignored it. Where the OS has `MSG_NOSIGNAL`, every
//! send passes it; Apple systems lack it and get `SO_NOSIGPIPE` on the socket
//! instead; Windows has no `SIGPIPE`.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::raw::c_int;

use socket2::SockRef;

/// Flags for every `send`/`sendmsg`.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
pub(crate) const SEND_FLAGS: c_int = 0x4000;
#[cfg(target_os = "freebsd")]
pub(crate) const SEND_FLAGS: c_int = 0x20000;
#[cfg(any(target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) const SEND_FLAGS: c_int = 0x400;
#[cfg(any(target_os = "illumos", target_os = "solaris"))]
pub(crate) const SEND_FLAGS: c_int = 0x200;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "fuchsia",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris",
)))]
pub(crate) const SEND_FLAGS: c_int = 0;

/// Prepares a socket xev is about to own: on Apple systems, turns off
/// `SIGPIPE` for it.
pub(crate) fn prepare(socket: SockRef<'_>) -> io::Result<()> {
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos"
    ))]
    socket.set_nosigpipe(true)?;
    let _ = socket;
    Ok(())
}

/// The most slices one vectored read or send passes to the kernel:
/// `IOV_MAX` on Linux and the BSDs (a `sendmsg` with more fails with
/// `EMSGSIZE`; std's `readv` quietly passes only this many).
pub(crate) const MAX_IOV: usize = 1024;

/// The slices of `bufs` one vectored send passes to the kernel.
pub(crate) fn max_iov<'a, 'b>(bufs: &'a [IoSlice<'b>]) -> &'a [IoSlice<'b>] {
    &bufs[..bufs.len().min(MAX_IOV)]
}

/// The slices of `bufs` one vectored read passes to the kernel.
pub(crate) fn max_iov_mut<'a, 'b>(bufs: &'a mut [IoSliceMut<'b>]) -> &'a mut [IoSliceMut<'b>] {
    let len = bufs.len().min(MAX_IOV);
    &mut bufs[..len]
}

/// Items for the platforms matching a `cfg` predicate, and their stand-ins
/// for the others.
macro_rules! where_available {
    (cfg($cfg:meta) { $($yes:item)* } else { $($no:item)* }) => {
        $(#[cfg($cfg)] $yes)*
        $(#[cfg(not($cfg))] $no)*
    };
}

/// The error for a socket option this platform does not have.
#[allow(dead_code)] // unused where every option exists
fn unsupported(option: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("the socket option {option} is not available on this platform"),
    )
}

// Where socket2 offers `SO_REUSEPORT`.
where_available! {
    cfg(all(
        unix,
        not(any(
            target_os = "solaris",
            target_os = "illumos",
            target_os = "cygwin",
            target_os = "nuttx",
            target_os = "wasi"
        ))
    )) {
        pub(crate) fn set_reuse_port(socket: SockRef<'_>, reuse: bool) -> io::Result<()> {
            socket.set_reuse_port(reuse)
        }

        pub(crate) fn reuse_port(socket: SockRef<'_>) -> io::Result<bool> {
            socket.reuse_port()
        }
    } else {
        pub(crate) fn set_reuse_port(_: SockRef<'_>, _: bool) -> io::Result<()> {
            Err(unsupported("SO_REUSEPORT"))
        }

        pub(crate) fn reuse_port(_: SockRef<'_>) -> io::Result<bool> {
            Err(unsupported("SO_REUSEPORT"))
        }
    }
}

// Where socket2 offers `IP_TOS`.
where_available! {
    cfg(not(any(
        target_os = "fuchsia",
        target_os = "redox",
        target_os = "solaris",
        target_os = "haiku",
        target_os = "wasi"
    ))) {
        pub(crate) fn set_tos_v4(socket: SockRef<'_>, tos: u32) -> io::Result<()> {
            socket.set_tos_v4(tos)
        }

        pub(crate) fn tos_v4(socket: SockRef<'_>) -> io::Result<u32> {
            socket.tos_v4()
        }
    } else {
        pub(crate) fn set_tos_v4(_: SockRef<'_>, _: u32) -> io::Result<()> {
            Err(unsupported("IP_TOS"))
        }

        pub(crate) fn tos_v4(_: SockRef<'_>) -> io::Result<u32> {
            Err(unsupported("IP_TOS"))
        }
    }
}

// Where socket2 offers `IPV6_TCLASS`.
where_available! {
    cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "cygwin",
        target_os = "illumos"
    )) {
        pub(crate) fn set_tclass_v6(socket: SockRef<'_>, tclass: u32) -> io::Result<()> {
            socket.set_tclass_v6(tclass)
        }

        pub(crate) fn tclass_v6(socket: SockRef<'_>) -> io::Result<u32> {
            socket.tclass_v6()
        }
    } else {
        pub(crate) fn set_tclass_v6(_: SockRef<'_>, _: u32) -> io::Result<()> {
            Err(unsupported("IPV6_TCLASS"))
        }

        pub(crate) fn tclass_v6(_: SockRef<'_>) -> io::Result<u32> {
            Err(unsupported("IPV6_TCLASS"))
        }
    }
}
