//! # xev
//!
//! A small single-threaded async runtime for TCP, in the spirit of the Zig
//! event loop libxev: one thread runs an executor and a mio reactor, whose
//! wakers resolve `accept`, `connect`, `read` and `write` futures.
//!
//! ```
//! use std::time::Duration;
//!
//! xev::rt::block_on(async {
//!     let task = xev::rt::spawn(async {
//!         xev::time::sleep(Duration::from_millis(1)).await;
//!         "done"
//!     });
//!     assert_eq!(task.await.unwrap(), "done");
//! });
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod io;
pub mod net;
pub mod rt;
pub mod time;

pub use xev_macros::{main, test};
