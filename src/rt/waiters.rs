//! Who waits for one direction of one socket: a list, never a slot.
//!
//! Any number of tasks and foreign wakers may wait on the same direction at
//! once (two tasks accepting on one listener, a `WriteQueue` draining while
//! another task awaits `writable()`). Readiness wakes all of them; each
//! retries its operation, and those that find nothing to do wait again.
//!
//! An entry comes in one of two kinds:
//! - **held**: taken by a future through its [`WaitKey`], which keeps the
//!   entry from its first wait until the future is dropped. Waking empties
//!   the entry but leaves it taken, so the key stays valid and a future
//!   polled again reuses its place instead of adding a second one. Dropping
//!   the future frees it: a cancelled wait leaves nothing behind.
//! - **loose**: stored by a call that has nowhere to keep a key
//!   (`AsyncRead::poll_read`, `poll_accept` and the other `poll_*`
//!   methods). A loose entry is freed when woken; a second call with the
//!   same waker finds it and adds nothing. A caller that gives up without
//!   being woken leaves its entry until the next readiness, which costs one
//!   spurious wake at most.
//!
//! The first entry is stored inline, so the common case (one waiter) never
//! allocates; the others go in a slab allocated with the second waiter.

use std::task::{Context, Waker};

use slab::Slab;

use super::task::TaskId;

/// Who to wake.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// An xev task, polled with its own waker: queued by id, without
    /// cloning, waking and dropping a `Waker`.
    Task(TaskId),
    /// Anything else (a combinator's waker, another executor's).
    Waker(Waker),
}

impl Waiter {
    /// The waiter for `cx`: `task` is the polled xev task if `cx` carries
    /// that task's own waker.
    fn of(task: Option<TaskId>, cx: &Context<'_>) -> Waiter {
        match task {
            Some(id) => Waiter::Task(id),
            None => Waiter::Waker(cx.waker().clone()),
        }
    }

    /// Whether this waiter already wakes whoever polls with `cx`.
    fn is(&self, task: Option<TaskId>, cx: &Context<'_>) -> bool {
        match (self, task) {
            (Waiter::Task(id), Some(task)) => *id == task,
            (Waiter::Waker(waker), None) => waker.will_wake(cx.waker()),
            _ => false,
        }
    }
}

/// A future's place in a [`WaiterList`], from its first wait until it is
/// dropped (then it must be given back with [`WaiterList::release`]).
#[derive(Debug, Default)]
pub(crate) struct WaitKey(Option<usize>);

impl WaitKey {
    /// The index of the entry this key holds, if it holds one.
    pub(crate) fn take(&mut self) -> Option<usize> {
        self.0.take()
    }
}

#[derive(Debug, Default)]
enum Entry {
    #[default]
    Free,
    /// Held by a [`WaitKey`]; `None` once woken, until its future waits
    /// again or is dropped.
    Held(Option<Waiter>),
    /// Stored without a key; freed when woken.
    Loose(Waiter),
}

/// The waiters of one direction of one socket.
#[derive(Debug, Default)]
pub(crate) struct WaiterList {
    /// Key 0: the first waiter, inline.
    first: Entry,
    /// Keys 1 and up (slab index + 1): allocated with the second waiter.
    more: Option<Box<Slab<Entry>>>,
}

impl WaiterList {
    /// Stores who polls with `cx` in the entry `key` holds, taking one if it
    /// holds none. Returns the waiter it replaces, to be dropped by the
    /// caller once it no longer borrows the list (a waker's destructor is
    /// foreign code).
    pub(crate) fn wait_held(
        &mut self,
        key: &mut WaitKey,
        task: Option<TaskId>,
        cx: &Context<'_>,
    ) -> Option<Waiter> {
        let Some(index) = key.0 else {
            key.0 = Some(self.insert(Entry::Held(Some(Waiter::of(task, cx)))));
            return None;
        };
        let Entry::Held(slot) = self.entry_mut(index) else {
            unreachable!("xev: a wait key points at an entry it does not hold");
        };
        match slot {
            Some(waiter) if waiter.is(task, cx) => None,
            _ => slot.replace(Waiter::of(task, cx)),
        }
    }

    /// Stores who polls with `cx` as a loose entry, unless one already
    /// wakes it.
    pub(crate) fn wait_loose(&mut self, task: Option<TaskId>, cx: &Context<'_>) {
        let is_same = |entry: &Entry| matches!(entry, Entry::Loose(waiter) if waiter.is(task, cx));
        if is_same(&self.first) {
            return;
        }
        if let Some(more) = &self.more {
            if more.iter().any(|(_, entry)| is_same(entry)) {
                return;
            }
        }
        self.insert(Entry::Loose(Waiter::of(task, cx)));
    }

    /// Frees the entry a dropped future held, returning its waiter (to be
    /// dropped outside the borrow).
    pub(crate) fn release(&mut self, index: usize) -> Option<Waiter> {
        let entry = if index == 0 {
            std::mem::take(&mut self.first)
        } else {
            self.more
                .as_mut()
                .and_then(|more| more.try_remove(index - 1))
                .unwrap_or_default()
        };
        match entry {
            Entry::Held(waiter) => waiter,
            _ => unreachable!("xev: a wait key points at an entry it does not hold"),
        }
    }

    /// Takes every waiter: held entries stay taken (empty), loose ones are
    /// freed. Tasks are queued with `wake_task` at once; other wakers go to
    /// `wakers`, to be woken once the list is no longer borrowed.
    pub(crate) fn wake_all(&mut self, wake_task: &impl Fn(TaskId), wakers: &mut Wakers) {
        let mut wake = |waiter: Waiter| match waiter {
            Waiter::Task(id) => wake_task(id),
            Waiter::Waker(waker) => wakers.push(waker),
        };
        match &mut self.first {
            Entry::Free => {}
            Entry::Held(slot) => slot.take().into_iter().for_each(&mut wake),
            loose @ Entry::Loose(_) => {
                if let Entry::Loose(waiter) = std::mem::take(loose) {
                    wake(waiter);
                }
            }
        }
        if let Some(more) = &mut self.more {
            more.retain(|_, entry| match entry {
                Entry::Held(slot) => {
                    slot.take().into_iter().for_each(&mut wake);
                    true
                }
                Entry::Loose(_) => {
                    if let Entry::Loose(waiter) = std::mem::take(entry) {
                        wake(waiter);
                    }
                    false
                }
                Entry::Free => false,
            });
        }
    }

    /// How many entries are taken (held or loose).
    #[cfg(test)]
    fn len(&self) -> usize {
        let first = usize::from(!matches!(self.first, Entry::Free));
        first + self.more.as_ref().map_or(0, |more| more.len())
    }

    fn insert(&mut self, entry: Entry) -> usize {
        if let Entry::Free = self.first {
            self.first = entry;
            return 0;
        }
        self.more.get_or_insert_with(Box::default).insert(entry) + 1
    }

    fn entry_mut(&mut self, index: usize) -> &mut Entry {
        if index == 0 {
            return &mut self.first;
        }
        self.more
            .as_mut()
            .and_then(|more| more.get_mut(index - 1))
            .expect("xev: a wait key points past its waiter list")
    }
}

/// Foreign wakers taken out of a list, woken after its borrow ends. One
/// waker needs no allocation.
#[derive(Default)]
pub(crate) struct Wakers {
    one: Option<Waker>,
    more: Vec<Waker>,
}

impl Wakers {
    fn push(&mut self, waker: Waker) {
        match self.one {
            None => self.one = Some(waker),
            Some(_) => self.more.push(waker),
        }
    }

    pub(crate) fn wake_all(self) {
        self.one.into_iter().chain(self.more).for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A small deterministic generator (xorshift), so a failure reproduces
    /// from its seed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// One waiting party of the model: an xev task (woken by id) or a
    /// foreign waker, waiting through a held key or loosely.
    struct Party {
        task: Option<TaskId>,
        counter: Arc<Counter>,
        waker: Waker,
        key: WaitKey,
        /// The model: this party registered and was not woken or
        /// cancelled since.
        waiting: bool,
    }

    fn wakes(party: &Party, task_wakes: &HashMap<TaskId, usize>) -> usize {
        match party.task {
            Some(id) => task_wakes.get(&id).copied().unwrap_or(0),
            None => party.counter.0.load(Ordering::Relaxed),
        }
    }

    /// Random register / re-register / cancel / wake sequences against a
    /// reference model: after every wake, each party that was waiting has
    /// been woken, and the list holds exactly the live keys afterwards.
    #[test]
    fn no_live_waiter_is_left_unwoken_under_any_interleaving() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut list = WaiterList::default();
            let mut parties: Vec<Party> = (0..6)
                .map(|i| {
                    let counter = Arc::new(Counter(AtomicUsize::new(0)));
                    Party {
                        task: (i % 2 == 0).then_some(TaskId {
                            key: i,
                            generation: 0,
                        }),
                        waker: Waker::from(counter.clone()),
                        counter,
                        key: WaitKey::default(),
                        waiting: false,
                    }
                })
                .collect();
            let task_wakes: RefCell<HashMap<TaskId, usize>> = RefCell::default();
            for _ in 0..200 {
                let who = rng.below(parties.len() as u64) as usize;
                match rng.below(5) {
                    // Wait (again) through the party's key.
                    0 | 1 => {
                        let party = &mut parties[who];
                        let cx = Context::from_waker(&party.waker);
                        drop(list.wait_held(&mut party.key, party.task, &cx));
                        party.waiting = true;
                    }
                    // Wait loosely (a `poll_*` call); the party keeps no key.
                    2 => {
                        let party = &mut parties[who];
                        if party.key.0.is_none() {
                            let cx = Context::from_waker(&party.waker);
                            list.wait_loose(party.task, &cx);
                            party.waiting = true;
                        }
                    }
                    // Drop the future: its held entry goes away.
                    3 => {
                        let party = &mut parties[who];
                        if let Some(index) = party.key.take() {
                            drop(list.release(index));
                            party.waiting = false;
                        }
                    }
                    // Readiness.
                    _ => {
                        let before: Vec<usize> = parties
                            .iter()
                            .map(|p| wakes(p, &task_wakes.borrow()))
                            .collect();
                        let mut wakers = Wakers::default();
                        list.wake_all(
                            &|id| *task_wakes.borrow_mut().entry(id).or_default() += 1,
                            &mut wakers,
                        );
                        wakers.wake_all();
                        for (party, before) in parties.iter_mut().zip(before) {
                            if party.waiting {
                                assert!(
                                    wakes(party, &task_wakes.borrow()) > before,
                                    "seed {seed}: a waiting party was not woken"
                                );
                            }
                            party.waiting = false;
                        }
                        let held = parties.iter().filter(|p| p.key.0.is_some()).count();
                        assert_eq!(list.len(), held, "seed {seed}: entries leaked");
                    }
                }
            }
        }
    }

    #[test]
    fn a_waiter_polled_again_with_the_same_waker_adds_no_entry() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter);
        let cx = Context::from_waker(&waker);
        let mut list = WaiterList::default();
        let mut key = WaitKey::default();
        for _ in 0..3 {
            assert!(list.wait_held(&mut key, None, &cx).is_none());
            list.wait_loose(None, &cx);
        }
        assert_eq!(list.len(), 2);
        assert!(list.more.as_ref().is_some_and(|more| more.len() == 1));
    }

    #[test]
    fn one_waiter_does_not_allocate_the_overflow_slab() {
        let task = TaskId {
            key: 1,
            generation: 0,
        };
        let waker = futures::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let mut list = WaiterList::default();
        let mut key = WaitKey::default();
        for _ in 0..1000 {
            list.wait_held(&mut key, Some(task), &cx);
            list.wake_all(&|_| {}, &mut Wakers::default());
            list.release(key.take().unwrap());
        }
        assert!(list.more.is_none());
    }
}
