#[xev::test(flavor = "multi_thread")]
async fn unknown_option() {}

fn main() {}
