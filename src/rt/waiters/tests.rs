//! The waiter list against a reference model, and its allocation rules.

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
        let list = WaiterList::default();
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
                // Wait (again) through the party's key: the inline
                // case first, as the reactor does.
                0 | 1 => {
                    let party = &mut parties[who];
                    let cx = Context::from_waker(&party.waker);
                    let fast = party
                        .task
                        .is_some_and(|task| list.wait_task(&mut party.key, task));
                    if !fast {
                        drop(list.wait_held(&mut party.key, party.task, &cx));
                    }
                    party.waiting = true;
                }
                // Wait loosely (a `poll_*` call); the party keeps no key.
                2 => {
                    let party = &mut parties[who];
                    if party.key.get().is_none() {
                        let cx = Context::from_waker(&party.waker);
                        list.wait_loose(party.task, &cx);
                        party.waiting = true;
                    }
                }
                // Drop the future: its held entry goes away.
                3 => {
                    let party = &mut parties[who];
                    if let Some(index) = std::mem::take(&mut party.key).get() {
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
                    let held = parties.iter().filter(|p| p.key.get().is_some()).count();
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
    let list = WaiterList::default();
    let mut key = WaitKey::default();
    for _ in 0..3 {
        assert!(list.wait_held(&mut key, None, &cx).is_none());
        list.wait_loose(None, &cx);
    }
    assert_eq!(list.len(), 2);
    assert_eq!(list.len(), 2);
    assert!(list.first.get() == First::HeldWaker);
}

#[test]
fn one_waiter_does_not_allocate_the_overflow_slab() {
    let task = TaskId {
        key: 1,
        generation: 0,
    };
    let waker = futures::task::noop_waker();
    let cx = Context::from_waker(&waker);
    let list = WaiterList::default();
    let mut key = WaitKey::default();
    for _ in 0..1000 {
        list.wait_held(&mut key, Some(task), &cx);
        list.wake_all(&|_| {}, &mut Wakers::default());
        list.release(std::mem::take(&mut key).get().unwrap());
    }
    let more = list.more.take();
    assert!(more.is_none());
}
