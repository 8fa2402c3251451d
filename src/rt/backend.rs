//! [`Backend`]: how a runtime waits for I/O, chosen when it is built.
//!
//! `Poll` is mio (epoll on Linux, kqueue, IOCP). `IoUring` waits on an
//! io_uring ring instead: each registered socket has a multishot poll armed
//! in the ring, and one `io_uring_enter` per loop turn submits what the
//! turn queued (new sockets, cancellations) and reaps every completion.
//! The public API and its semantics are the same on both.
//!
//! `Auto` probes io_uring once per process (a ring set up, the features and
//! opcodes the backend uses checked) and falls back to `Poll` on any
//! refusal, recording why ([`Runtime::backend_reason`]).

use std::fmt;
use std::io;
use std::sync::OnceLock;

/// The environment variable that sets the default backend:
/// `auto`, `poll` or `io_uring`.
pub(crate) const ENV: &str = "XEV_BACKEND";

/// How a runtime waits for I/O (libxev's `TCPDynamic`): set with
/// [`Builder::backend`](crate::rt::Builder::backend), read back with
/// [`Runtime::backend`](crate::rt::Runtime::backend).
///
/// The default is [`Poll`](Backend::Poll) unless the environment variable
/// `XEV_BACKEND` says `auto`, `poll` or `io_uring`; the choice of default is
/// measured in `benches/README.md` ("Backends").
///
/// ```
/// use xev::rt::{Backend, Runtime};
///
/// // Use io_uring where the kernel allows it, mio's epoll otherwise.
/// let rt = Runtime::builder().backend(Backend::Auto).build().unwrap();
/// assert_ne!(rt.backend(), Backend::Auto); // the one actually in use
/// println!("{:?}: {}", rt.backend(), rt.backend_reason());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring where the kernel allows it (probed once per process),
    /// [`Poll`](Backend::Poll) otherwise: on any refusal (`ENOSYS`, `EPERM`
    /// from a seccomp profile or `kernel.io_uring_disabled`, `ENOMEM`, a
    /// missing feature or opcode) and on platforms other than Linux.
    Auto,
    /// Readiness through mio: epoll on Linux, kqueue on the BSDs and macOS.
    Poll,
    /// io_uring (Linux 5.11 or later). Building a runtime with it fails if
    /// the kernel refuses io_uring.
    IoUring,
}

impl Backend {
    /// The name `XEV_BACKEND` uses for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Poll => "poll",
            Backend::IoUring => "io_uring",
        }
    }

    /// The default a new `Builder` starts with: `XEV_BACKEND`, or `Poll`.
    ///
    /// # Errors
    /// If `XEV_BACKEND` is set to something else than its three names.
    pub(crate) fn from_env() -> io::Result<Option<Backend>> {
        let Some(value) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        match value.to_str().map(str::trim) {
            Some("auto") => Ok(Some(Backend::Auto)),
            Some("poll") => Ok(Some(Backend::Poll)),
            Some("io_uring" | "io-uring" | "iouring") => Ok(Some(Backend::IoUring)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ENV}={value:?} is not a backend; use auto, poll or io_uring"),
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether io_uring is usable in this process: probed once, the answer
/// kept (an error is kept as its kind, errno and message).
pub(crate) fn io_uring_usable() -> Result<(), ProbeError> {
    static PROBE: OnceLock<Result<(), ProbeError>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

/// A refusal of io_uring, kept so every runtime of the process can report
/// it.
#[derive(Clone, Debug)]
pub(crate) struct ProbeError {
    kind: io::ErrorKind,
    os_error: Option<i32>,
    message: String,
}

impl ProbeError {
    pub(crate) fn to_io_error(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }

    pub(crate) fn os_error(&self) -> Option<i32> {
        self.os_error
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(target_os = "linux")]
fn probe() -> Result<(), ProbeError> {
    xev_uring::probe().map_err(|error| ProbeError {
        kind: error.kind(),
        os_error: xev_uring::os_error(&error),
        message: error.to_string(),
    })
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Result<(), ProbeError> {
    Err(ProbeError {
        kind: io::ErrorKind::Unsupported,
        os_error: None,
        message: "io_uring exists only on Linux".to_owned(),
    })
}

/// The backend a runtime is built with, and why.
pub(crate) struct Choice {
    pub(crate) backend: Backend,
    pub(crate) reason: String,
}

/// Resolves `requested` (the builder's setting, or the environment's, or
/// the default) to `Poll` or `IoUring`.
///
/// # Errors
/// `IoUring` requested where it is refused: the refusal, with its errno;
/// a malformed `XEV_BACKEND`.
pub(crate) fn choose(requested: Option<Backend>) -> io::Result<Choice> {
    let (backend, source) = match requested {
        Some(backend) => (backend, "set by Builder::backend"),
        None => match Backend::from_env()? {
            Some(backend) => (backend, "set by XEV_BACKEND"),
            None => (Backend::Poll, "the default"),
        },
    };
    match backend {
        Backend::Poll => Ok(Choice {
            backend: Backend::Poll,
            reason: format!("poll, {source}"),
        }),
        Backend::IoUring => match io_uring_usable() {
            Ok(()) => Ok(Choice {
                backend: Backend::IoUring,
                reason: format!("io_uring, {source}"),
            }),
            // The kernel's errno as is (`ENOSYS`, `EPERM`, `ENOMEM`):
            // callers match on it; a missing feature is `Unsupported`.
            Err(error) => Err(match error.os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(
                    error.to_io_error().kind(),
                    format!("io_uring ({source}) is refused here: {error}"),
                ),
            }),
        },
        Backend::Auto => Ok(match io_uring_usable() {
            Ok(()) => Choice {
                backend: Backend::IoUring,
                reason: format!("io_uring, auto ({source}): the kernel allows it"),
            },
            Err(error) => Choice {
                backend: Backend::Poll,
                reason: format!("poll, auto ({source}): io_uring refused: {error}"),
            },
        }),
    }
}
