//! Timers: a binary heap of deadlines with lazy cancellation.
//!
//! Deadlines are kept in whole milliseconds since the queue was made
//! ("ticks"), rounded up, so a timer never fires early and a sub-millisecond
//! wait never turns into a zero-timeout poll. Each armed timer owns a slab
//! entry (its waker and whether it fired); the heap only orders
//! `(tick, key, generation)` triples. Dropping a timer frees its slab entry in
//! O(1) and leaves its heap triple behind, recognised as stale by its
//! generation when it reaches the top, or swept when stale triples
//! outnumber live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

/// Names an armed timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    key: usize,
    generation: u64,
}

struct TimerEntry {
    /// Changes on every re-arm, so the heap triples of earlier arms go stale.
    generation: u64,
    waker: Option<Waker>,
    fired: bool,
}

pub(crate) struct TimerQueue {
    /// Tick zero.
    origin: Instant,
    heap: BinaryHeap<Reverse<(u64, usize, u64)>>,
    entries: Slab<TimerEntry>,
    next_generation: u64,
}

impl TimerQueue {
    pub(crate) fn new() -> TimerQueue {
        TimerQueue {
            origin: Instant::now(),
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            next_generation: 0,
        }
    }

    /// The first tick at or after `deadline`.
    fn tick_at_or_after(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.origin);
        let millis = since.as_millis() + u128::from(since.subsec_nanos() % 1_000_000 != 0);
        u64::try_from(millis).unwrap_or(u64::MAX)
    }

    /// The last tick at or before `now`.
    fn tick_at_or_before(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_millis(tick))
            .unwrap_or_else(|| self.origin + Duration::from_secs(86_400 * 365 * 30))
    }

    /// Arms entry `key` for `tick` under a new generation. The entry is
    /// updated before the heap may be swept, so the sweep keeps its triple.
    fn arm(&mut self, key: usize, tick: u64) -> TimerKey {
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = &mut self.entries[key];
        entry.generation = generation;
        entry.fired = false;
        self.heap.push(Reverse((tick, key, generation)));
        if self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
            self.sweep();
        }
        TimerKey { key, generation }
    }

    /// Arms a timer for `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let tick = self.tick_at_or_after(deadline);
        let key = self.entries.insert(TimerEntry {
            generation: 0,
            waker: Some(waker),
            fired: false,
        });
        self.arm(key, tick)
    }

    /// Re-arms `timer` for a new deadline; returns its new key.
    pub(crate) fn reset(&mut self, timer: TimerKey, deadline: Instant) -> TimerKey {
        let tick = self.tick_at_or_after(deadline);
        self.arm(timer.key, tick)
    }

    /// Whether `timer` fired; if not, `waker` is stored to be woken when it does.
    pub(crate) fn poll_fired(&mut self, timer: TimerKey, waker: &Waker) -> bool {
        let entry = &mut self.entries[timer.key];
        if entry.fired {
            return true;
        }
        match &entry.waker {
            Some(stored) if stored.will_wake(waker) => {}
            _ => entry.waker = Some(waker.clone()),
        }
        false
    }

    /// Disarms `timer`; it never fires.
    pub(crate) fn remove(&mut self, timer: TimerKey) -> Option<Waker> {
        match self.entries.get(timer.key) {
            Some(entry) if entry.generation == timer.generation => {
                self.entries.remove(timer.key).waker
            }
            _ => None,
        }
    }

    /// When the earliest armed timer is due.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((tick, key, generation))) = self.heap.peek() {
            if self.is_live(key, generation) {
                return Some(self.instant_of(tick));
            }
            self.heap.pop();
        }
        None
    }

    /// Marks every timer due at `now` as fired and collects its waker.
    pub(crate) fn fire(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        let now = self.tick_at_or_before(now);
        while let Some(&Reverse((tick, key, generation))) = self.heap.peek() {
            if tick > now {
                break;
            }
            self.heap.pop();
            if self.is_live(key, generation) {
                let entry = &mut self.entries[key];
                entry.fired = true;
                wakers.extend(entry.waker.take());
            }
        }
    }

    fn is_live(&self, key: usize, generation: u64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|entry| entry.generation == generation && !entry.fired)
    }

    /// Drops the heap triples of disarmed and re-armed timers.
    fn sweep(&mut self) {
        let entries = &self.entries;
        self.heap.retain(|&Reverse((_, key, generation))| {
            entries
                .get(key)
                .is_some_and(|entry| entry.generation == generation && !entry.fired)
        });
    }

    /// Disarms everything (the runtime is going away); returns the wakers of
    /// timers still waited on.
    pub(crate) fn shutdown(&mut self) -> Vec<Waker> {
        self.heap.clear();
        self.entries
            .iter_mut()
            .filter_map(|(_, entry)| {
                entry.fired = true;
                entry.waker.take()
            })
            .collect()
    }

    /// How many timers are armed (fired ones not yet dropped included).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is armed (fired ones not yet dropped count as armed).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
