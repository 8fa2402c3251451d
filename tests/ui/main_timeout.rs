#[xev::main(timeout_ms = 2000)]
async fn main() {}
