#[xev::test(timeout_ms = 0)]
async fn timeout_is_zero() {}

fn main() {}
