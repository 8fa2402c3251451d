//! `crate = "..."` names the runtime through another path, as a crate that
//! re-exports xev would.

mod reexport {
    pub use xev as runtime;
}

#[xev::main(crate = "crate::reexport::runtime")]
async fn main() {
    xev::time::sleep(std::time::Duration::from_millis(1)).await;
}
