//! The LIFO slot of the worker running on this thread, shared by the built-in drivers
//! ([`ThreadPool`](crate::ThreadPool) workers, [`FutureDriver`](crate::FutureDriver) workers
//! while polled), and the steal loop over their shared queue.
//!
//! An actor that a worker runs and that schedules another actor of the same driver (a reply,
//! the next hop of a ring) puts it in the worker's slot, and the worker runs it next, with its
//! data still in cache and no trip through the shared queue (tokio's LIFO-slot idea). A worker
//! takes its slot at most [`LIFO_LIMIT`] times in a row while other tasks wait for it, so that
//! they are not starved (the slot's task then goes behind them, [`Driver::requeue`]); a thread
//! about to block inside a run hands the slot's task to the shared queue ([`flush`]), or only
//! the blocked worker could run it.

use std::cell::RefCell;
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal};

use crate::actor::Runnable;

/// How many times in a row a worker may take its LIFO slot before looking at the shared queue.
const LIFO_LIMIT: u32 = 16;

/// The driver of the worker running on this thread.
#[derive(Clone, Copy)]
pub(super) struct Owner {
    /// The driver's shared state (opaque here; it identifies the driver).
    driver: *const (),
    /// Pushes a task to that driver's shared queue.
    ///
    /// # Safety
    ///
    /// Called only with `driver`, while the worker that set this owner holds the driver's
    /// shared state alive.
    push_global: unsafe fn(*const (), Runnable),
    /// Puts a task whose turn in the slot of the worker running on this thread ended behind
    /// the tasks waiting for that worker ([`Driver::requeue`]).
    ///
    /// # Safety
    ///
    /// As for `push_global`.
    requeue: unsafe fn(*const (), Runnable),
}

/// A driver whose workers have LIFO slots: it says where a task goes when it leaves a slot.
pub(super) trait Driver: Send + Sync + 'static {
    /// Pushes `task` to the driver's shared queue (and wakes a worker for it).
    fn push_global(&self, task: Runnable);

    /// Pushes `task`, just displaced from the slot of the worker running on this thread by a
    /// schedule made there: to that worker's own queue if it has one (where other workers can
    /// steal it), else to the shared queue.
    fn push_displaced(&self, task: Runnable) {
        self.push_global(task);
    }

    /// Puts `task`, whose turn in the slot of the worker running on this thread ended while
    /// other tasks wait, behind them: by default in the shared queue.
    fn requeue(&self, task: Runnable) {
        self.push_global(task);
    }
}

impl Owner {
    /// `driver` as a slot's owner. The worker that [`enter`]s with it keeps `driver` alive
    /// until [`leave`].
    pub(super) fn of<D: Driver>(driver: &Arc<D>) -> Owner {
        /// # Safety
        ///
        /// `driver` points to a live `D` (see [`Owner::push_global`]).
        unsafe fn push_global<D: Driver>(driver: *const (), task: Runnable) {
            // SAFETY: by the contract, `driver` is the live `D` this owner was made from.
            unsafe { &*driver.cast::<D>() }.push_global(task);
        }
        /// # Safety
        ///
        /// `driver` points to a live `D` (see [`Owner::requeue`]).
        unsafe fn requeue<D: Driver>(driver: *const (), task: Runnable) {
            // SAFETY: by the contract, `driver` is the live `D` this owner was made from.
            unsafe { &*driver.cast::<D>() }.requeue(task);
        }
        Owner {
            driver: Arc::as_ptr(driver).cast(),
            push_global: push_global::<D>,
            requeue: requeue::<D>,
        }
    }
}

/// Schedules `task` on `driver`: on one of its workers, into that worker's slot (and whatever
/// was there goes to [`Driver::push_displaced`]); elsewhere, to the shared queue.
pub(super) fn schedule<D: Driver>(driver: &Arc<D>, task: Runnable) {
    match offer(Arc::as_ptr(driver).cast(), task) {
        Offered::InSlot(None) => {}
        Offered::InSlot(Some(displaced)) => driver.push_displaced(displaced),
        Offered::NotHere(task) => driver.push_global(task),
    }
}

/// What [`offer`] did with a task.
enum Offered {
    /// Put it in the slot of this thread's worker, displacing what was there, if anything.
    InSlot(Option<Runnable>),
    /// No worker of that driver runs on this thread: the task is given back.
    NotHere(Runnable),
}

thread_local! {
    static SLOT: RefCell<Option<(Owner, Option<Runnable>)>> = const { RefCell::new(None) };
}

/// Makes `owner`'s worker the one running on this thread, with an empty slot; returns what
/// was there before, for [`leave`]. The worker must keep `owner.driver` alive until `leave`.
pub(super) fn enter(owner: Owner) -> Option<(Owner, Option<Runnable>)> {
    enter_with(owner, None)
}

/// [`enter`], with `task` in the slot to begin with (one the worker carried over from its
/// previous turn).
pub(super) fn enter_with(
    owner: Owner,
    task: Option<Runnable>,
) -> Option<(Owner, Option<Runnable>)> {
    SLOT.with(|slot| slot.replace(Some((owner, task))))
}

/// Ends the current worker's turn on this thread, putting back what [`enter`] returned; gives
/// the task left in its slot, if any.
pub(super) fn leave(outer: Option<(Owner, Option<Runnable>)>) -> Option<Runnable> {
    SLOT.with(|slot| slot.replace(outer))
        .and_then(|(_, task)| task)
}

/// The task in the current worker's slot, if it may run next: `streak` counts the slot's tasks
/// run in a row. After [`LIFO_LIMIT`] of them, if `others_wait()` (the worker's queues have
/// tasks), the streak ends (`None`) and a task left in the slot waits its turn behind them
/// ([`Driver::requeue`]); with nobody waiting, the streak starts over and the slot's task runs on here (so a
/// chain of hops, a ring's token say, does not hop to another worker's cache every
/// [`LIFO_LIMIT`] runs for nothing). An empty slot ends the streak too.
pub(super) fn take_in_turn(
    streak: &mut u32,
    others_wait: impl FnOnce() -> bool,
) -> Option<Runnable> {
    if *streak >= LIFO_LIMIT {
        if others_wait() {
            requeue();
            *streak = 0;
            return None;
        }
        *streak = 0;
    }
    let task = SLOT.with(|slot| slot.borrow_mut().as_mut().and_then(|(_, task)| task.take()));
    if task.is_some() {
        *streak += 1;
    } else {
        *streak = 0;
    }
    task
}

/// Puts `task` in the slot if the worker running on this thread belongs to `driver`.
fn offer(driver: *const (), task: Runnable) -> Offered {
    SLOT.with(|slot| match &mut *slot.borrow_mut() {
        Some((owner, lifo)) if owner.driver == driver => Offered::InSlot(lifo.replace(task)),
        _ => Offered::NotHere(task),
    })
}

/// Ends the slot's turn: its task, if any, goes behind the tasks waiting for the worker
/// ([`Driver::requeue`]).
fn requeue() {
    if let Some((owner, task)) = take_slot() {
        // SAFETY: as in `flush`.
        unsafe { (owner.requeue)(owner.driver, task) };
    }
}

/// The task in the slot of the worker running on this thread, with that worker's owner.
fn take_slot() -> Option<(Owner, Runnable)> {
    SLOT.with(|slot| {
        slot.borrow_mut()
            .as_mut()
            .and_then(|(owner, task)| task.take().map(|task| (*owner, task)))
    })
}

/// Before the current thread blocks inside an actor run (a handler waiting for a reply): the
/// task in this worker's slot, if any, goes to its driver's shared queue, where other workers
/// can take it. Left in the slot, only this (blocked) worker could run it: a reply it must give
/// would never come.
pub(crate) fn flush() {
    if let Some((owner, task)) = take_slot() {
        // SAFETY: the owner was set by the worker running on this thread (`enter`), which
        // keeps its driver alive until `leave`; we are inside that span.
        unsafe { (owner.push_global)(owner.driver, task) };
    }
}

/// Takes a task from a shared queue (retrying a steal that raced with another).
pub(super) fn steal(queue: &Injector<Runnable>) -> Option<Runnable> {
    retry(|| queue.steal())
}

/// Runs `steal` until it does not race with another steal.
pub(super) fn retry(mut steal: impl FnMut() -> Steal<Runnable>) -> Option<Runnable> {
    loop {
        match steal() {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}
