//! Timers: a binary heap of deadlines with lazy cancellation.
//!
//! Deadlines are kept exactly (nanoseconds since the queue was made), and a
//! timer fires once the runtime's clock has reached its deadline, never
//! before. The loop blocks until the earliest deadline in whole
//! milliseconds, rounded up, so a sub-millisecond wait parks the thread for
//! about a millisecond instead of turning into a zero-timeout poll.
//!
//! Each armed timer owns a slab entry (its waker and its [`TimerState`]); the
//! heap only orders `(deadline, key, generation)` triples. Dropping a timer
//! frees its slab entry in O(1) and leaves its heap triple behind, recognised
//! as stale by its generation when it reaches the top, or swept when stale
//! triples outnumber live timers. A timer found past its deadline before the
//! loop fired it (polled late, or reset to an instant already past) is marked
//! fired on the spot; its heap triple goes stale the same way.
//!
//! The loop's side is here too: how long `Core::park` may block for the
//! next deadline, moving a paused clock to it, and firing what is due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

use super::runtime::Core;
use crate::time::clock::Clock;

/// Names an armed timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    key: usize,
    generation: u64,
}

/// Where a timer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerState {
    /// Waiting in the heap for its deadline.
    Armed,
    /// Its deadline has passed.
    Fired,
    /// Its runtime was dropped: it never fires, and polling it is a bug.
    Orphaned,
}

struct TimerEntry {
    /// Changes on every re-arm, so the heap triples of earlier arms go stale.
    generation: u64,
    waker: Option<Waker>,
    state: TimerState,
}

pub(crate) struct TimerQueue {
    /// Deadline zero: the clock's reading when the runtime was built.
    origin: Instant,
    heap: BinaryHeap<Reverse<(u64, usize, u64)>>,
    entries: Slab<TimerEntry>,
    next_generation: u64,
    /// Set when the runtime is dropped: no timer is armed again.
    shut_down: bool,
}

impl TimerQueue {
    pub(crate) fn new(origin: Instant) -> TimerQueue {
        TimerQueue {
            origin,
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            next_generation: 0,
            shut_down: false,
        }
    }

    /// `instant` as nanoseconds since the origin (an instant before it is 0).
    fn nanos(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant_of(&self, nanos: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or_else(|| crate::time::far_future(self.origin))
    }

    /// Arms entry `key` for `deadline` under a new generation. The entry is
    /// updated before the heap may be swept, so the sweep keeps its triple.
    fn arm(&mut self, key: usize, deadline: Instant) -> TimerKey {
        let at = self.nanos(deadline);
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = &mut self.entries[key];
        entry.generation = generation;
        entry.state = TimerState::Armed;
        self.heap.push(Reverse((at, key, generation)));
        if self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
            self.sweep();
        }
        TimerKey { key, generation }
    }

    /// Arms a timer for `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = self.entries.insert(TimerEntry {
            generation: 0,
            waker: Some(waker),
            state: TimerState::Armed,
        });
        self.arm(key, deadline)
    }

    /// Moves `timer` to `deadline`, given the clock reads `now`; returns its
    /// new key, and the waker to wake if the timer was waiting and the new
    /// deadline has already passed (it is then fired at once). A timer whose
    /// runtime is gone stays orphaned.
    pub(crate) fn reset(
        &mut self,
        timer: TimerKey,
        deadline: Instant,
        now: Instant,
    ) -> (TimerKey, Option<Waker>) {
        if self.shut_down {
            return (timer, None);
        }
        if deadline <= now {
            return (timer, self.expire(timer));
        }
        (self.arm(timer.key, deadline), None)
    }

    pub(crate) fn state(&self, timer: TimerKey) -> TimerState {
        self.entries[timer.key].state
    }

    /// Marks an armed timer fired because its deadline has passed, before the
    /// loop got to it; returns the waker it held.
    pub(crate) fn expire(&mut self, timer: TimerKey) -> Option<Waker> {
        let entry = &mut self.entries[timer.key];
        if entry.state != TimerState::Armed {
            return None;
        }
        entry.state = TimerState::Fired;
        entry.waker.take()
    }

    /// Stores `waker`, to be woken when `timer` fires.
    pub(crate) fn register(&mut self, timer: TimerKey, waker: &Waker) {
        let entry = &mut self.entries[timer.key];
        match &entry.waker {
            Some(stored) if stored.will_wake(waker) => {}
            _ => entry.waker = Some(waker.clone()),
        }
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
        while let Some(&Reverse((at, key, generation))) = self.heap.peek() {
            if self.is_live(key, generation) {
                return Some(self.instant_of(at));
            }
            self.heap.pop();
        }
        None
    }

    /// How long the loop may block before the earliest armed timer is due,
    /// in whole milliseconds rounded up; `None` if no timer is armed. Reads
    /// the clock only if one is.
    pub(crate) fn wait_time(&mut self, clock: &Clock) -> Option<Duration> {
        let wait = self.next_deadline()?.saturating_duration_since(clock.now());
        let millis = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 != 0);
        Some(Duration::from_millis(
            u64::try_from(millis).unwrap_or(u64::MAX),
        ))
    }

    /// Marks every timer due at `now` as fired and collects its waker, in
    /// deadline order.
    pub(crate) fn fire(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        let now = self.nanos(now);
        while let Some(&Reverse((at, key, generation))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.is_live(key, generation) {
                let entry = &mut self.entries[key];
                entry.state = TimerState::Fired;
                wakers.extend(entry.waker.take());
            }
        }
    }

    fn is_live(&self, key: usize, generation: u64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|entry| entry.generation == generation && entry.state == TimerState::Armed)
    }

    /// Drops the heap triples of disarmed, re-armed and fired timers.
    fn sweep(&mut self) {
        let entries = &self.entries;
        self.heap.retain(|&Reverse((_, key, generation))| {
            entries.get(key).is_some_and(|entry| {
                entry.generation == generation && entry.state == TimerState::Armed
            })
        });
    }

    /// Orphans every timer (the runtime is going away): none fires, and
    /// polling one panics. Returns the wakers of timers still waited on.
    pub(crate) fn shutdown(&mut self) -> Vec<Waker> {
        self.shut_down = true;
        self.heap.clear();
        self.entries
            .iter_mut()
            .filter_map(|(_, entry)| {
                entry.state = TimerState::Orphaned;
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

impl Core {
    /// How long the reactor may block when no task is ready: until the next
    /// timer deadline, or for good (`None`). A paused clock does not move by
    /// itself, so waiting would bring no deadline nearer: the reactor is
    /// polled without blocking, and `park` then moves the clock.
    pub(super) fn idle_timeout(&self) -> Option<Duration> {
        let mut timers = self.timers.borrow_mut();
        if self.clock.is_paused() {
            let armed = timers.next_deadline().is_some();
            return (armed && self.may_auto_advance()).then_some(Duration::ZERO);
        }
        timers.wait_time(&self.clock)
    }

    /// Moves a paused clock to the earliest armed timer's deadline.
    pub(super) fn advance_to_next_timer(&self) {
        let next = self.timers.borrow_mut().next_deadline();
        if let Some(deadline) = next {
            self.clock.advance_to(deadline);
        }
    }

    /// Wakes the tasks whose timers are due, in deadline order. Reads the
    /// clock only if a timer is armed.
    pub(crate) fn fire_timers(&self) {
        let mut wakers = Vec::new();
        {
            let mut timers = self.timers.borrow_mut();
            if timers.is_empty() {
                return;
            }
            timers.fire(self.clock.now(), &mut wakers);
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}
