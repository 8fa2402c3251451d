//! `#[xev::test]` and `#[xev::main]`: what the expansion does at run time, and
//! (through trybuild) which misuses are rejected at compile time and with
//! which message.

use std::io;
use std::time::{Duration, Instant};

#[xev::test]
async fn result_ok_with_question_mark() -> Result<(), io::Error> {
    // `?` inside the body converts to the declared return type.
    let n: u32 = "42".parse().map_err(io::Error::other)?;
    assert_eq!(n, 42);
    Ok(())
}

#[xev::test]
async fn early_return_leaves_the_body() -> Result<(), io::Error> {
    // `black_box` keeps the compiler from proving the `Err` below dead.
    if std::hint::black_box(true) {
        return Ok(());
    }
    Err(io::Error::other("`return` did not leave the test body"))
}

#[xev::test]
async fn body_runs_inside_the_runtime() {
    // `spawn` panics outside `block_on`, so this proves the body is driven
    // by an xev runtime.
    let handle = xev::rt::spawn(async { 6 * 7 });
    assert_eq!(handle.await.unwrap(), 42);
}

#[xev::test]
#[should_panic(expected = "boom after an await")]
async fn panic_in_body_fails_the_test() {
    xev::time::sleep(Duration::from_millis(1)).await;
    panic!("boom after an await");
}

#[xev::test(timeout_ms = 50)]
#[should_panic(expected = "test `slow_body_times_out` timed out after 50 ms")]
async fn slow_body_times_out() {
    xev::time::sleep(Duration::from_secs(5)).await;
}

#[xev::test(timeout_ms = 5000)]
async fn body_within_timeout_passes() -> Result<(), io::Error> {
    let start = Instant::now();
    xev::time::sleep(Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));
    Ok(())
}

#[xev::test(crate = "xev")]
async fn crate_path_option() {
    let answer = xev::time::timeout(Duration::from_secs(5), async { 7 }).await;
    assert_eq!(answer.ok(), Some(7));
}

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
