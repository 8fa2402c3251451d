//! The thread-local "current runtime".
//!
//! `block_on` installs its runtime here for as long as it runs; wakers, `spawn`,
//! timers and sockets find the runtime through it. Only one runtime can be
//! current on a thread at a time, which is what makes a nested `block_on` an
//! error rather than a deadlock.

use std::cell::RefCell;
use std::rc::Rc;

use super::runtime::Core;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Restores the previously current runtime when dropped (also on unwind).
pub(crate) struct EnterGuard {
    previous: Option<Rc<Core>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // The replaced value is dropped outside the borrow: dropping a `Core`
        // may run arbitrary destructors.
        let _current = CURRENT.try_with(|c| c.replace(previous));
    }
}

/// Makes `core` the current runtime for `block_on`.
///
/// # Panics
/// If a runtime is already current on this thread.
pub(crate) fn enter(core: &Rc<Core>) -> EnterGuard {
    let nested = CURRENT.with(|c| c.borrow().is_some());
    if nested {
        panic!(
            "cannot start an xev runtime from within a runtime: `block_on` was called \
             while this thread is already driving one. Use `xev::rt::spawn` to run the \
             future on the current runtime, or `.await` it instead."
        );
    }
    enter_unchecked(core)
}

/// Makes `core` the current runtime even if another one is, for the duration
/// of the guard. Used to drop a runtime's tasks inside their own context.
/// While the thread is being torn down (a runtime kept in a thread-local),
/// the context may be gone already: then nothing is entered.
pub(crate) fn enter_unchecked(core: &Rc<Core>) -> EnterGuard {
    let previous = CURRENT
        .try_with(|c| c.replace(Some(core.clone())))
        .ok()
        .flatten();
    EnterGuard { previous }
}

/// Runs `f` with the current runtime, or returns `None` outside one (and
/// while the thread is being torn down).
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// The current runtime.
///
/// # Panics
/// Outside a runtime, with a message naming `what` and how to fix it.
pub(crate) fn current(what: &str) -> Rc<Core> {
    match with_current(Rc::clone) {
        Some(core) => core,
        None => panic!(
            "there is no xev runtime running: {what} must be called from the context of \
             an xev runtime, inside `xev::rt::block_on`, `Runtime::block_on`, \
             `#[xev::main]` or `#[xev::test]`"
        ),
    }
}
