#[xev::main]
fn main() {}
