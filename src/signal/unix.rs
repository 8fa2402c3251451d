//! Unix signals: [`signal`] registers a listener, [`Signal::recv`] waits
//! for the next delivery.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use mio::Interest;
use signal_hook::consts::signal as raw;
use signal_hook_mio::v1_0::Signals;

use crate::rt::reactor::{Direction, Registration};
use crate::rt::waiters::WaitKey;

/// A kind of Unix signal, by number.
///
/// ```
/// use xev::signal::unix::SignalKind;
///
/// assert_eq!(SignalKind::from_raw(15), SignalKind::terminate()); // on Linux
/// assert_eq!(SignalKind::interrupt().as_raw_value(), 2);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// The signal with number `signum` (as in `libc::SIGUSR1`).
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> i32 {
        self.0
    }

    /// `SIGINT`: Ctrl-C in a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(raw::SIGINT)
    }

    /// `SIGTERM`: the polite request to stop (`kill`, systemd, Kubernetes).
    pub const fn terminate() -> SignalKind {
        SignalKind(raw::SIGTERM)
    }

    /// `SIGHUP`: the terminal went away; daemons take it as "reload".
    pub const fn hangup() -> SignalKind {
        SignalKind(raw::SIGHUP)
    }

    /// `SIGQUIT`: Ctrl-\ in a terminal.
    pub const fn quit() -> SignalKind {
        SignalKind(raw::SIGQUIT)
    }

    /// `SIGUSR1`, for the application's own use.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(raw::SIGUSR1)
    }

    /// `SIGUSR2`, for the application's own use.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(raw::SIGUSR2)
    }

    /// `SIGCHLD`: a child process stopped or exited.
    pub const fn child() -> SignalKind {
        SignalKind(raw::SIGCHLD)
    }

    /// `SIGALRM`: a timer set with `alarm` expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(raw::SIGALRM)
    }

    /// `SIGPIPE`: a write to a pipe or socket with no reader. (xev's own
    /// sends never raise it.)
    pub const fn pipe() -> SignalKind {
        SignalKind(raw::SIGPIPE)
    }

    /// `SIGWINCH`: the terminal's size changed.
    pub const fn window_change() -> SignalKind {
        SignalKind(raw::SIGWINCH)
    }
}

impl From<i32> for SignalKind {
    fn from(signum: i32) -> SignalKind {
        SignalKind(signum)
    }
}

impl From<SignalKind> for i32 {
    fn from(kind: SignalKind) -> i32 {
        kind.0
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignalKind").field(&self.0).finish()
    }
}

/// A listener for one kind of signal, registered with the current
/// runtime: from [`signal`].
///
/// Each delivery of the signal wakes [`recv`](Signal::recv) once; several
/// deliveries before the next `recv` count as one. Any number of
/// listeners, on one runtime or on several, may listen for the same
/// signal: each sees every delivery. Like a socket, a `Signal` belongs to
/// the runtime it was created on.
///
/// Dropping the last listener of a signal does not give the signal its
/// default action back (see the [module docs](crate::signal)).
pub struct Signal {
    signals: Signals,
    registration: Registration,
    kind: SignalKind,
}

/// Listens for signals of `kind` from now on: a signal that arrives
/// between this call and the first [`recv`](Signal::recv) is delivered to
/// that `recv`.
///
/// From this call on, the process no longer takes the signal's default
/// action (for `SIGTERM`: ending), for good.
///
/// # Errors
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for a signal that
/// cannot be caught or must not be (`SIGKILL`, `SIGSTOP`, `SIGSEGV`,
/// `SIGILL`, `SIGFPE`); an error for a number that is not a signal; the
/// OS's if it refuses the listener's pipe (`EMFILE`).
///
/// # Panics
/// Outside a runtime.
///
/// # Examples
/// ```
/// use xev::signal::unix::{signal, SignalKind};
///
/// xev::rt::block_on(async {
///     let mut usr1 = signal(SignalKind::user_defined1())?;
///     // Another process (or thread) sends it; here, `kill -USR1 <pid>`.
///     std::process::Command::new("kill")
///         .args(["-USR1", &std::process::id().to_string()])
///         .status()?;
///     assert_eq!(usr1.recv().await, Some(()));
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    // signal-hook panics on these rather than failing.
    if signal_hook::consts::FORBIDDEN.contains(&kind.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot listen for signal {}: SIGKILL and SIGSTOP cannot be caught, and \
                 SIGSEGV, SIGILL and SIGFPE must not be",
                kind.0
            ),
        ));
    }
    let mut signals = Signals::new([kind.0]).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot listen for signal {}: {error}", kind.0),
        )
    })?;
    let registration = Registration::new_source(
        &mut signals,
        Interest::READABLE,
        "`xev::signal::unix::signal`",
    )?;
    Ok(Signal {
        signals,
        registration,
        kind,
    })
}

impl Signal {
    /// Waits for the next delivery of the signal. `None` only when no
    /// delivery can be seen any more: the runtime is shutting down, or
    /// the listener is polled outside the runtime it was created on.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery is taken only by the poll that returns it,
    /// so one that arrives while the future is dropped waits for the next
    /// `recv`.
    pub async fn recv(&mut self) -> Option<()> {
        let Signal {
            signals,
            registration,
            ..
        } = self;
        let mut waiting = registration.waiting(Direction::Read);
        poll_fn(|cx| poll_recv(signals, registration, cx, waiting.key())).await
    }

    /// Polls for the next delivery; see [`recv`](Self::recv). A caller
    /// that stops polling leaves its waker stored until the next delivery.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        poll_recv(&mut self.signals, &self.registration, cx, None)
    }

    /// The kind of signal this listener receives.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }
}

fn poll_recv(
    signals: &mut Signals,
    registration: &Registration,
    cx: &mut Context<'_>,
    key: Option<&mut WaitKey>,
) -> Poll<Option<()>> {
    // `pending` drains the listener's pipe, then takes the flag the
    // handler set before writing to it: a delivery that lands after the
    // drain writes again, and that edge wakes us.
    let delivered = registration.poll_io(
        cx,
        Direction::Read,
        || match signals.pending().next() {
            Some(_) => Ok(()),
            None => Err(io::ErrorKind::WouldBlock.into()),
        },
        key,
    );
    delivered.map(|result| result.ok())
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}

/// The error of a listener whose runtime has shut down.
pub(super) fn runtime_gone() -> io::Error {
    io::Error::other("the xev runtime this signal listener belongs to has been shut down")
}
