//! The connection tasks of one worker's server: spawned, counted, waited
//! for during the grace period, and aborted when it ends.
//!
//! Everything here lives on the worker's thread. Each task carries a
//! [`Live`] guard that takes it off the list when its handler finishes or
//! its future is dropped, so the list holds exactly the live connections,
//! and a worker whose list empties during a shutdown is done.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::handoff::Balancer;
use crate::rt::AbortHandle;

/// The live connections of one worker.
pub(super) struct Connections {
    state: Rc<RefCell<State>>,
    /// In `Acceptor` mode, the acceptor counts each connection it gives
    /// this worker; the worker counts it off when the handler ends.
    load: Option<(Arc<Balancer>, usize)>,
}

struct State {
    tasks: Slab<AbortHandle>,
    /// Who waits for the list to empty.
    idle: Option<Waker>,
}

impl Connections {
    pub(super) fn new(load: Option<(Arc<Balancer>, usize)>) -> Connections {
        Connections {
            state: Rc::new(RefCell::new(State {
                tasks: Slab::new(),
                idle: None,
            })),
            load,
        }
    }

    /// Runs `handler` as a task of its own, on this worker's runtime.
    pub(super) fn spawn(&self, handler: impl Future<Output = ()> + 'static) {
        let key = self.state.borrow().tasks.vacant_key();
        let live = Live {
            state: self.state.clone(),
            key,
            load: self.load.clone(),
        };
        let task = crate::rt::spawn(async move {
            let _live = live;
            handler.await;
        });
        let abort = task.abort_handle();
        // Detached: the list keeps what the grace period needs.
        drop(task);
        // A runtime that is shutting down drops a new task at once, and
        // its guard has already found nothing to remove.
        if !abort.is_finished() {
            let inserted = self.state.borrow_mut().tasks.insert(abort);
            debug_assert_eq!(inserted, key);
        }
    }

    /// Ready once no connection is live.
    pub(super) fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.borrow_mut();
        if state.tasks.is_empty() {
            return Poll::Ready(());
        }
        match &mut state.idle {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            idle => *idle = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Aborts every live connection's handler and waits until all their
    /// futures have been dropped (their sockets closed).
    pub(super) async fn abort_all(&self) {
        let tasks: Vec<AbortHandle> = self
            .state
            .borrow()
            .tasks
            .iter()
            .map(|(_, task)| task.clone())
            .collect();
        for task in tasks {
            task.abort();
        }
        poll_fn(|cx| self.poll_idle(cx)).await;
    }
}

/// Held by a connection's task: takes it off the list when the handler
/// ends, however it ends.
struct Live {
    state: Rc<RefCell<State>>,
    key: usize,
    load: Option<(Arc<Balancer>, usize)>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some((balancer, index)) = &self.load {
            balancer.finished(*index);
        }
        let (task, idle) = {
            let mut state = self.state.borrow_mut();
            let task = state.tasks.try_remove(self.key);
            let idle = if state.tasks.is_empty() {
                state.idle.take()
            } else {
                None
            };
            (task, idle)
        };
        drop(task);
        if let Some(idle) = idle {
            idle.wake();
        }
    }
}
