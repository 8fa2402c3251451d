#[xev::test(crate = "not a path")]
async fn crate_is_not_a_path() {}

fn main() {}
