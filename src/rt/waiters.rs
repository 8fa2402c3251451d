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

use std::cell::Cell;
use std::task::{Context, Waker};

use slab::Slab;

use super::task::TaskId;

/// Who to wake.
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
    #[inline]
    fn of(task: Option<TaskId>, cx: &Context<'_>) -> Waiter {
        match task {
            Some(id) => Waiter::Task(id),
            None => Waiter::Waker(cx.waker().clone()),
        }
    }

    /// Queues a task at once; keeps any other waker for later.
    #[inline(always)]
    fn wake(self, wake_task: &impl Fn(TaskId), wakers: &mut Wakers) {
        match self {
            Waiter::Task(id) => wake_task(id),
            Waiter::Waker(waker) => wakers.push(waker),
        }
    }

    /// Whether this waiter already wakes whoever polls with `cx`.
    #[inline]
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
///
/// Four bytes, so the futures that carry one stay small.
#[derive(Debug)]
pub(crate) struct WaitKey(u32);

impl WaitKey {
    const NONE: u32 = u32::MAX;

    /// The index of the entry this key holds, if it holds one.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<usize> {
        (self.0 != WaitKey::NONE).then_some(self.0 as usize)
    }

    #[inline(always)]
    fn set(&mut self, index: usize) {
        self.0 = u32::try_from(index)
            .ok()
            .filter(|&index| index != WaitKey::NONE)
            .expect("xev: more than 4 billion waiters on one socket");
    }
}

impl Default for WaitKey {
    fn default() -> WaitKey {
        WaitKey(WaitKey::NONE)
    }
}

/// How an entry past the first is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// By a [`WaitKey`]; the waiter is `None` once woken, until its future
    /// waits again or is dropped.
    Held,
    /// Without a key; freed when woken.
    Loose,
}

/// An entry past the first.
struct Entry {
    kind: Kind,
    waiter: Option<Waiter>,
}

/// Key 0: how it is taken and who waits in it, in one `Copy` value, so the
/// common case (one task waiting) reads and writes one cell. A foreign
/// waker itself sits beside it, in [`WaiterList::first_waker`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum First {
    #[default]
    Free,
    /// Held by a [`WaitKey`] whose future was woken since it last waited.
    Held,
    /// Held, for an xev task.
    HeldTask(TaskId),
    /// Held, for the waker in `first_waker`.
    HeldWaker,
    /// Taken without a key, for an xev task; freed when woken.
    LooseTask(TaskId),
    /// Taken without a key, for the waker in `first_waker`.
    LooseWaker,
}

impl First {
    /// Held by a key, for the xev task `task`, or else for a waker (which
    /// the caller puts in `first_waker`).
    #[inline(always)]
    fn held(task: Option<TaskId>) -> First {
        match task {
            Some(id) => First::HeldTask(id),
            None => First::HeldWaker,
        }
    }

    /// Taken without a key, for `task` or a waker, as [`held`](Self::held).
    #[inline(always)]
    fn loose(task: Option<TaskId>) -> First {
        match task {
            Some(id) => First::LooseTask(id),
            None => First::LooseWaker,
        }
    }

    /// Whether its waker is in `first_waker`.
    #[inline(always)]
    fn has_waker(self) -> bool {
        matches!(self, First::HeldWaker | First::LooseWaker)
    }
}

/// The waiters of one direction of one socket.
///
/// It mutates through `&self`, with `Cell`s only: the first entry is one
/// `Copy` value (plus a cell for a foreign waker), so the common case (one
/// task waiting) is a few loads and stores; the other entries live in a
/// slab taken out of its cell while it is used. No method runs foreign
/// code: wakers are handed out, never woken or dropped here.
#[derive(Default)]
pub(crate) struct WaiterList {
    /// Key 0.
    first: Cell<First>,
    /// Key 0's waker, while `first` says it has one (`HeldWaker`,
    /// `LooseWaker`); `None` otherwise.
    first_waker: Cell<Option<Waker>>,
    /// Keys 1 and up (slab index + 1): allocated with the second waiter.
    more: Cell<Option<Box<Slab<Entry>>>>,
    /// Whether `more` is allocated (it then stays so): read without taking
    /// the slab out of its cell, by every wake.
    has_more: Cell<bool>,
}

impl WaiterList {
    /// The common case of [`wait_held`](Self::wait_held), small enough to
    /// inline into every operation: the xev task `task` waits through `key`
    /// in key 0, which is free or already the key's. `false` if that is not
    /// the case (or key 0 holds a waker, which the caller must drop): then
    /// nothing changed, and `wait_held` does the rest.
    #[inline(always)]
    pub(crate) fn wait_task(&self, key: &mut WaitKey, task: TaskId) -> bool {
        match (key.get(), self.first.get()) {
            (None, First::Free) => key.set(0),
            (Some(0), First::Held | First::HeldTask(_)) => {}
            _ => return false,
        }
        self.first.set(First::HeldTask(task));
        true
    }

    /// Stores who polls with `cx` in the entry `key` holds, taking one if it
    /// holds none. Returns the waker it replaces, to be dropped by the
    /// caller (a waker's destructor is foreign code).
    pub(crate) fn wait_held(
        &self,
        key: &mut WaitKey,
        task: Option<TaskId>,
        cx: &Context<'_>,
    ) -> Option<Waker> {
        match key.get() {
            None if self.first.get() == First::Free => {
                key.set(0);
                self.set_first(First::held(task), cx)
            }
            Some(0) => self.set_first(First::held(task), cx),
            None => {
                key.set(self.insert_more(Kind::Held, Waiter::of(task, cx)));
                None
            }
            Some(index) => self.rewait_more(index, task, cx),
        }
    }

    /// Makes key 0 `first`, with `cx`'s waker if `first` has one (kept if
    /// it is the same); returns a waker it replaces.
    fn set_first(&self, first: First, cx: &Context<'_>) -> Option<Waker> {
        let old = self.first.replace(first);
        let waker = if old.has_waker() {
            self.first_waker.take()
        } else {
            None
        };
        if !first.has_waker() {
            return waker;
        }
        match waker {
            Some(waker) if waker.will_wake(cx.waker()) => {
                self.first_waker.set(Some(waker));
                None
            }
            old => {
                self.first_waker.set(Some(cx.waker().clone()));
                old
            }
        }
    }

    /// Stores who polls with `cx` as a loose entry, unless one already
    /// wakes it.
    pub(crate) fn wait_loose(&self, task: Option<TaskId>, cx: &Context<'_>) {
        let same = match (self.first.get(), task) {
            (First::LooseTask(id), Some(task)) => id == task,
            (First::LooseWaker, None) => {
                let waker = self.first_waker.take();
                let same = waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
                self.first_waker.set(waker);
                same
            }
            _ => false,
        };
        if same {
            return;
        }
        let more = self.more.take();
        let known = more.as_ref().is_some_and(|more| {
            more.iter().any(|(_, e)| {
                e.kind == Kind::Loose && e.waiter.as_ref().is_some_and(|w| w.is(task, cx))
            })
        });
        self.more.set(more);
        if known {
            return;
        }
        if self.first.get() == First::Free {
            // Key 0 is free, so it holds no waker to drop.
            drop(self.set_first(First::loose(task), cx));
        } else {
            self.insert_more(Kind::Loose, Waiter::of(task, cx));
        }
    }

    /// Frees the entry a dropped future held, returning its waker (to be
    /// dropped by the caller).
    #[inline(always)]
    pub(crate) fn release(&self, index: usize) -> Option<Waker> {
        // The common case, inline: key 0 without a waker to hand back.
        if index == 0 && self.first.get() != First::HeldWaker {
            debug_assert!(matches!(self.first.get(), First::Held | First::HeldTask(_)));
            self.first.set(First::Free);
            return None;
        }
        self.release_waker_or_more(index)
    }

    /// Takes every waiter: held entries stay taken (empty), loose ones are
    /// freed. Tasks are queued with `wake_task` at once; other wakers go to
    /// `wakers`, to be woken by the caller.
    #[inline(always)]
    pub(crate) fn wake_all(&self, wake_task: &impl Fn(TaskId), wakers: &mut Wakers) {
        match self.first.get() {
            First::Free | First::Held => {}
            First::HeldTask(id) => {
                self.first.set(First::Held);
                wake_task(id);
            }
            First::LooseTask(id) => {
                self.first.set(First::Free);
                wake_task(id);
            }
            First::HeldWaker | First::LooseWaker => self.wake_first_waker(wakers),
        }
        if self.has_more.get() {
            self.wake_more(wake_task, wakers);
        }
    }

    #[cold]
    fn wake_more(&self, wake_task: &impl Fn(TaskId), wakers: &mut Wakers) {
        if let Some(mut more) = self.more.take() {
            more.retain(|_, entry| {
                if let Some(waiter) = entry.waiter.take() {
                    waiter.wake(wake_task, wakers);
                }
                entry.kind == Kind::Held
            });
            self.more.set(Some(more));
        }
    }

    #[cold]
    fn wake_first_waker(&self, wakers: &mut Wakers) {
        let first = match self.first.get() {
            First::LooseWaker => First::Free,
            _ => First::Held,
        };
        self.first.set(first);
        if let Some(waker) = self.first_waker.take() {
            wakers.push(waker);
        }
    }

    /// How many entries are taken (held or loose).
    #[cfg(test)]
    fn len(&self) -> usize {
        let first = usize::from(self.first.get() != First::Free);
        let more = self.more.take();
        let len = first + more.as_ref().map_or(0, |more| more.len());
        self.more.set(more);
        len
    }

    #[cold]
    fn insert_more(&self, kind: Kind, waiter: Waiter) -> usize {
        let mut more = self.more.take().unwrap_or_default();
        let entry = Entry {
            kind,
            waiter: Some(waiter),
        };
        let index = more.insert(entry) + 1;
        self.more.set(Some(more));
        self.has_more.set(true);
        index
    }

    #[cold]
    fn rewait_more(&self, index: usize, task: Option<TaskId>, cx: &Context<'_>) -> Option<Waker> {
        let mut more = self
            .more
            .take()
            .expect("xev: a wait key points past its waiter list");
        let entry = more
            .get_mut(index - 1)
            .expect("xev: a wait key points past its waiter list");
        debug_assert_eq!(entry.kind, Kind::Held);
        let replaced = match &entry.waiter {
            Some(waiter) if waiter.is(task, cx) => None,
            _ => entry.waiter.replace(Waiter::of(task, cx)),
        };
        self.more.set(Some(more));
        match replaced {
            Some(Waiter::Waker(waker)) => Some(waker),
            _ => None,
        }
    }

    #[cold]
    fn release_waker_or_more(&self, index: usize) -> Option<Waker> {
        if index == 0 {
            debug_assert_eq!(self.first.get(), First::HeldWaker);
            self.first.set(First::Free);
            return self.first_waker.take();
        }
        let mut more = self.more.take()?;
        let entry = more.try_remove(index - 1);
        self.more.set(Some(more));
        debug_assert!(entry.as_ref().is_some_and(|e| e.kind == Kind::Held));
        match entry?.waiter {
            Some(Waiter::Waker(waker)) => Some(waker),
            _ => None,
        }
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
    #[inline]
    fn push(&mut self, waker: Waker) {
        match self.one {
            None => self.one = Some(waker),
            Some(_) => self.more.push(waker),
        }
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.one.is_none()
    }

    #[inline(always)]
    pub(crate) fn wake_all(&mut self) {
        if let Some(one) = self.one.take() {
            one.wake();
            self.more.drain(..).for_each(Waker::wake);
        }
    }
}

#[cfg(test)]
mod tests;
