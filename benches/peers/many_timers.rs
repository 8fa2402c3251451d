//! The timer scenario: a million sleeps armed at once, then all fired.
//!
//! One future arms every sleep by polling each once, then awaits them in
//! order of length. So the runtime holds all of them armed together, and
//! nothing but the timers themselves is measured: no task per timer and no
//! `FuturesUnordered` node per timer. (`FuturesUnordered` is also a trap on
//! tokio: a sleep polled after tokio's co-operative budget is spent defers
//! its wake-up instead of waking during the poll, so `FuturesUnordered`
//! re-polls every pending sleep on every turn — quadratic, minutes for a
//! million.)

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// The sleeps' lengths: 1 to 50 ms, pseudo-random from a fixed seed, so
/// every peer arms exactly the same timers in the same order.
pub fn durations(n: usize) -> impl Iterator<Item = Duration> {
    // xorshift64: enough to spread deadlines over the 50 milliseconds.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(1 + state % 50)
    })
}

/// Arms `n` sleeps made by `sleep`, then waits until all have fired.
/// Returns how many fired (all of them).
pub async fn arm_and_wait<S, F>(n: usize, sleep: S) -> usize
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let mut sleeps: Vec<(Duration, Option<Pin<Box<F>>>)> = durations(n)
        .map(|duration| (duration, Some(Box::pin(sleep(duration)))))
        .collect();
    let mut fired = 0;
    poll_fn(|cx| {
        for (_, slot) in &mut sleeps {
            if let Some(sleep) = slot {
                if sleep.as_mut().poll(cx).is_ready() {
                    *slot = None;
                    fired += 1;
                }
            }
        }
        Poll::Ready(())
    })
    .await;
    sleeps.sort_by_key(|(duration, _)| *duration);
    for (_, slot) in sleeps {
        if let Some(sleep) = slot {
            sleep.await;
            fired += 1;
        }
    }
    fired
}
