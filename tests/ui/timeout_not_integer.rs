#[xev::test(timeout_ms = "2000")]
async fn timeout_is_a_string() {}

fn main() {}
