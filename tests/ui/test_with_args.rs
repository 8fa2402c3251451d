#[xev::test]
async fn takes_arguments(port: u16, host: &str) {
    let _ = (port, host);
}

fn main() {}
