//! The thread-local "current runtime".
//!
//! `block_on` installs its runtime here for as long as it runs, and so does
//! [`Runtime::enter`](super::Runtime::enter) for as long as its guard
//! lives; wakers, `spawn`, timers and sockets find the runtime through it.
//! Separately, the thread remembers whether a `block_on` is driving a
//! runtime on it: only one can, which is what makes a nested `block_on` an
//! error rather than a deadlock. (Entering a runtime does not drive it, so
//! `block_on` under an entered runtime is fine.)

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::runtime::Core;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// Restores the previously current runtime when dropped (also on unwind),
/// and, for `block_on`, the "not driving" state.
pub(crate) struct ContextGuard {
    previous: Option<Rc<Core>>,
    driving: bool,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if self.driving {
            let _ = DRIVING.try_with(|driving| driving.set(false));
        }
        let previous = self.previous.take();
        // The replaced value is dropped outside the borrow: dropping a `Core`
        // may run arbitrary destructors.
        let _current = CURRENT.try_with(|c| c.replace(previous));
    }
}

/// Makes `core` the current runtime for `block_on`, which drives it.
///
/// # Panics
/// If a `block_on` is already driving a runtime on this thread.
pub(crate) fn enter_driving(core: &Rc<Core>) -> ContextGuard {
    let nested = DRIVING.with(|driving| driving.replace(true));
    if nested {
        panic!(
            "cannot start an xev runtime from within a runtime: `block_on` was called \
             while this thread is already driving one. Use `xev::rt::spawn` to run the \
             future on the current runtime, or `.await` it instead."
        );
    }
    let mut guard = enter(core);
    guard.driving = true;
    guard
}

/// Makes `core` the current runtime, even if another one is, for the
/// duration of the guard: for `Runtime::enter`, and to drop a runtime's
/// tasks inside their own context. While the thread is being torn down (a
/// runtime kept in a thread-local), the context may be gone already: then
/// nothing is entered.
pub(crate) fn enter(core: &Rc<Core>) -> ContextGuard {
    let previous = CURRENT
        .try_with(|c| c.replace(Some(core.clone())))
        .ok()
        .flatten();
    ContextGuard {
        previous,
        driving: false,
    }
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

/// Why there is no current runtime.
pub(crate) enum Missing {
    /// None is current on this thread.
    Context,
    /// The thread-local is gone: the thread is exiting.
    ThreadLocalDestroyed,
}

/// Runs `f` with the current runtime, or says why there is none.
pub(crate) fn try_with_current<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Result<R, Missing> {
    match CURRENT.try_with(|c| c.borrow().as_ref().map(f)) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(Missing::Context),
        Err(_) => Err(Missing::ThreadLocalDestroyed),
    }
}

/// The message for a call that needs a runtime and found none.
pub(crate) fn no_runtime_message(what: &str) -> String {
    format!(
        "there is no xev runtime running: {what} must be called from the context of \
         an xev runtime, inside `xev::rt::block_on`, `Runtime::block_on`, \
         `#[xev::main]` or `#[xev::test]` (or while a `Runtime::enter` guard lives)"
    )
}

/// The current runtime.
///
/// # Panics
/// Outside a runtime, with a message naming `what` and how to fix it.
pub(crate) fn current(what: &str) -> Rc<Core> {
    match with_current(Rc::clone) {
        Some(core) => core,
        None => panic!("{}", no_runtime_message(what)),
    }
}
