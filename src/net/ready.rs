//! What a caller waits for ([`Interest`]) and what it finds ([`Ready`]).

use std::fmt;
use std::ops;

use crate::rt::reactor::{READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};

/// The directions an operation waits for: [`READABLE`](Interest::READABLE),
/// [`WRITABLE`](Interest::WRITABLE), or both (`READABLE | WRITABLE`).
///
/// # Examples
/// ```
/// use xev::net::Interest;
///
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert!(!Interest::READABLE.is_writable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Interest in reading (or end of stream, or an error).
    pub const READABLE: Interest = Interest(READABLE);
    /// Interest in writing (or the write side closing, or an error).
    pub const WRITABLE: Interest = Interest(WRITABLE);

    /// Whether this includes reading.
    pub const fn is_readable(self) -> bool {
        self.0 & READABLE != 0
    }

    /// Whether this includes writing.
    pub const fn is_writable(self) -> bool {
        self.0 & WRITABLE != 0
    }

    /// Both interests together (the `|` operator, usable in `const`).
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// The readiness bits that satisfy this interest.
    pub(crate) fn mask(self) -> u8 {
        let mut mask = 0;
        if self.is_readable() {
            mask |= READABLE | READ_CLOSED;
        }
        if self.is_writable() {
            mask |= WRITABLE | WRITE_CLOSED;
        }
        mask
    }
}

impl ops::BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl ops::BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        *self = self.add(other);
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (false, false) => f.write_str("(none)"),
        }
    }
}

/// The readiness a socket was found in, from
/// [`TcpStream::ready`](crate::net::TcpStream::ready).
///
/// Readiness is a hint: an operation can still say `WouldBlock`. A closed
/// direction counts as ready (the operation returns end of stream or an
/// error at once).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ready(u8);

impl Ready {
    /// No readiness.
    pub const EMPTY: Ready = Ready(0);
    /// Readable.
    pub const READABLE: Ready = Ready(READABLE);
    /// Writable.
    pub const WRITABLE: Ready = Ready(WRITABLE);
    /// The peer closed its write side: reads return end of stream.
    pub const READ_CLOSED: Ready = Ready(READ_CLOSED);
    /// The write side is closed: sends fail.
    pub const WRITE_CLOSED: Ready = Ready(WRITE_CLOSED);
    /// Every kind of readiness.
    pub const ALL: Ready = Ready(READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED);

    pub(crate) fn from_bits(bits: u8) -> Ready {
        Ready(bits & Ready::ALL.0)
    }

    /// Whether there is no readiness at all.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a read would not wait: readable or read-closed.
    pub fn is_readable(self) -> bool {
        self.0 & (READABLE | READ_CLOSED) != 0
    }

    /// Whether a send would not wait: writable or write-closed.
    pub fn is_writable(self) -> bool {
        self.0 & (WRITABLE | WRITE_CLOSED) != 0
    }

    /// Whether the peer closed its write side (reads return end of stream).
    pub fn is_read_closed(self) -> bool {
        self.0 & READ_CLOSED != 0
    }

    /// Whether the write side is closed.
    pub fn is_write_closed(self) -> bool {
        self.0 & WRITE_CLOSED != 0
    }
}

impl ops::BitOr for Ready {
    type Output = Ready;

    fn bitor(self, other: Ready) -> Ready {
        Ready(self.0 | other.0)
    }
}

impl ops::BitOrAssign for Ready {
    fn bitor_assign(&mut self, other: Ready) {
        self.0 |= other.0;
    }
}

impl ops::Sub for Ready {
    type Output = Ready;

    fn sub(self, other: Ready) -> Ready {
        Ready(self.0 & !other.0)
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready")
            .field("is_readable", &self.is_readable())
            .field("is_writable", &self.is_writable())
            .field("is_read_closed", &self.is_read_closed())
            .field("is_write_closed", &self.is_write_closed())
            .finish()
    }
}
