//! [`RuntimeMetrics`]: counts of what a runtime holds.

/// Counts that describe a runtime's load, from [`metrics`](crate::rt::metrics).
///
/// # Examples
/// A leak check: what a piece of work creates is gone once it is done.
/// ```
/// use std::time::Duration;
///
/// xev::rt::block_on(async {
///     let before = xev::rt::metrics();
///     let task = xev::rt::spawn(xev::time::sleep(Duration::from_millis(1)));
///     assert_eq!(xev::rt::metrics().tasks, before.tasks + 1);
///     task.await.unwrap();
///     // The task is freed, and its timer with it.
///     assert_eq!(xev::rt::metrics(), before);
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Tasks spawned and not yet finished.
    pub tasks: usize,
    /// Sockets registered with the reactor.
    pub registered_sockets: usize,
    /// Timers armed (including fired ones whose `Sleep` is not dropped yet).
    pub timers: usize,
    /// [`spawn_blocking`](crate::rt::spawn_blocking) closures queued or
    /// running.
    pub blocking_tasks: usize,
}
