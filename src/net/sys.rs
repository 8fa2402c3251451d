//! The little that differs between platforms when sending on a socket, and
//! the kernel's limits on one call.
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
