//! `#[xev::main]` on a `Result`-returning main: `?` and an early `return`
//! in the body resolve to the declared return type.

use std::io;

#[xev::main]
pub async fn main() -> Result<(), io::Error> {
    let port: u16 = "8080".parse().map_err(io::Error::other)?;
    if port == 8080 {
        return Ok(());
    }
    Err(io::Error::other("the early return was skipped"))
}
