//! The plainest `#[xev::main]`: an async body, no return value.

use std::time::Duration;

#[xev::main]
async fn main() {
    let answer = xev::time::timeout(Duration::from_secs(5), async { 6 * 7 }).await;
    assert_eq!(answer.ok(), Some(42));
}
