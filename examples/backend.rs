//! Which I/O backend a runtime gets on this machine, and why.
//!
//! ```sh
//! cargo run --example backend                       # XEV_BACKEND unset: poll
//! XEV_BACKEND=poll cargo run --example backend      # or io_uring, or auto
//! ```
//!
//! Prints two lines, `backend: Poll` or `backend: IoUring`, then `reason:`
//! and the runtime's explanation (for example why io_uring was refused).
//! CI runs it to decide whether this machine can run the tests on
//! io_uring.

use xev::rt::Runtime;

fn main() -> std::io::Result<()> {
    let rt = Runtime::new()?;
    println!("backend: {:?}", rt.backend());
    println!("reason: {}", rt.backend_reason());
    Ok(())
}
