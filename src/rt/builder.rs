//! [`Builder`]: a runtime's settings.

use std::io;

use super::runtime::Runtime;

/// The default capacity of the reactor's event buffer.
const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = xev::rt::Runtime::builder().event_capacity(256).build().unwrap();
/// assert_eq!(rt.block_on(async { 7 }), 7);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) event_capacity: usize,
}

impl Builder {
    /// A builder with default settings.
    pub fn new() -> Builder {
        Builder {
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// How many I/O events one reactor poll can return (default 1024). More
    /// events than this are simply collected by the next poll.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Builder {
        assert!(capacity > 0, "event capacity must be at least 1");
        self.event_capacity = capacity;
        self
    }

    /// Builds the runtime.
    ///
    /// # Errors
    /// If the OS refuses to create the `epoll` instance or its eventfd.
    pub fn build(&self) -> io::Result<Runtime> {
        Runtime::build(self)
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}
