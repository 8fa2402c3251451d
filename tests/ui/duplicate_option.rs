#[xev::test(timeout_ms = 100, timeout_ms = 200)]
async fn timeout_given_twice() {}

fn main() {}
