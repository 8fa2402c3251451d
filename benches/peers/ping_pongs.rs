//! libxev's `ping-pongs` protocol, shared by the three peers' versions of it
//! (see `examples/ping_pongs.rs`): one connection, the client sends
//! `PING\n`, the server answers each full `PING\n` with `PONG\n`, and the
//! client sends again on each full `PONG\n` until it has seen N of them.
//! Every peer scans each received byte, as libxev does.

use std::io;

pub const PING: &[u8] = b"PING\n";
pub const PONG: &[u8] = b"PONG\n";

/// Counts the complete newline-terminated messages in a byte stream and
/// checks that each has the expected length.
pub struct MessageCounter {
    expected_len: usize,
    /// Bytes of an unfinished message seen so far.
    partial: usize,
}

impl MessageCounter {
    pub fn new(message: &[u8]) -> MessageCounter {
        MessageCounter {
            expected_len: message.len(),
            partial: 0,
        }
    }

    /// How many messages `bytes` completes.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut complete = 0;
        for &byte in bytes {
            self.partial += 1;
            if byte == b'\n' {
                if self.partial != self.expected_len {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed ping-pong message",
                    ));
                }
                self.partial = 0;
                complete += 1;
            }
        }
        Ok(complete)
    }
}
