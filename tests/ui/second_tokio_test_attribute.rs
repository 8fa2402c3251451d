#[xev::test]
#[tokio::test]
async fn tested_by_two_runtimes() {}

fn main() {}
