#[xev::test]
fn not_async() {}

fn main() {}
