//! [`IdleWakers`]: how the idle workers of a future-driven pool wait for work (by returning
//! `Pending` with their waker registered) and are woken, with no lost wake-up and no lock taken
//! by a schedule while every worker is busy.
//!
//! The driver this serves (airssys-rt's `FutureDriver`) has one shared queue of runnable tasks
//! and worker futures polled by any executor. A schedule pushes a task, then calls
//! [`IdleWakers::notify_pushed`]. A worker that finds the queue empty calls
//! [`idle_unless`](IdleWakers::idle_unless) with its waker: if that returns `true`, the worker
//! returns `Pending` and a later schedule wakes it.
//!
//! # The protocol
//!
//! * The wakers of idle workers are kept under a mutex, with their number in an atomic
//!   `count` that a schedule reads first: while no worker is idle, a schedule takes no lock.
//! * A schedule wakes **one** idle worker (the most recently registered) and removes its
//!   waker; a worker registers its waker at most once (`will_wake`).
//! * **No lost wake-up.** Going idle and scheduling are a Dekker pair:
//!
//!   ```text
//!   worker:    push waker, count = len (under the lock);  fence(SeqCst);  look at the queue
//!   scheduler: push the task;                             fence(SeqCst);  look at count
//!   ```
//!
//!   Of the two fences, one comes first in the single order of `SeqCst` fences. If the
//!   worker's does, the scheduler sees its count and wakes it (or another idle worker, which
//!   then runs the task). If the scheduler's does, the worker's look sees the task: it takes
//!   its waker back out and runs the task itself, so that no schedule spends its only wake-up
//!   on a worker that is not idle.
//! * **Stop.** [`stop`](IdleWakers::stop) sets `stopped`, then takes every waker under the
//!   lock and wakes it. A worker registering at the same time either is taken (its
//!   registration came first under the lock) or sees `stopped` after its own lock.
//!
//! The queue itself is the caller's: `idle_unless` takes the look at it as a closure (which
//! must read what a push wrote with atomic loads, as crossbeam's `Injector::is_empty` does).
//!
//! The loom model is `tests/loom_idle_wakers.rs` (mutants `idle_no_fence`, `push_no_fence`
//! and `idle_no_look`).

use core::fmt;

use crate::sync::{fence, AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};

/// What [`IdleWakers`] needs of a waker: `std::task::Waker` is one.
pub trait IdleWaker: Clone {
    /// Wakes the task (consuming this handle).
    fn wake(self);
    /// Whether `self` and `other` wake the same task (a worker registers once).
    fn will_wake(&self, other: &Self) -> bool;
}

impl IdleWaker for core::task::Waker {
    #[inline]
    fn wake(self) {
        core::task::Waker::wake(self);
    }

    #[inline]
    fn will_wake(&self, other: &Self) -> bool {
        core::task::Waker::will_wake(self, other)
    }
}

/// The idle workers of a future-driven pool. See the [module docs](self).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::task::Waker;
/// use airssys_rt_mailbox::IdleWakers;
///
/// let idle: IdleWakers<Waker> = IdleWakers::new();
/// let tasks = AtomicUsize::new(0); // a queue of interchangeable tasks
/// // A worker's poll found nothing: it registers, and may return `Pending`.
/// assert!(idle.idle_unless(Waker::noop(), || tasks.load(Ordering::Acquire) > 0));
/// assert_eq!(idle.idle_count(), 1);
/// // A schedule: push, then wake an idle worker.
/// tasks.fetch_add(1, Ordering::AcqRel);
/// idle.notify_pushed();
/// assert_eq!(idle.idle_count(), 0);
/// // With a task queued, a worker does not go idle.
/// assert!(!idle.idle_unless(Waker::noop(), || tasks.load(Ordering::Acquire) > 0));
/// assert_eq!(idle.idle_count(), 0);
/// ```
pub struct IdleWakers<W> {
    wakers: Mutex<Vec<W>>,
    /// `wakers.len()`, read without the lock.
    count: AtomicUsize,
    stopped: AtomicBool,
}

impl<W: IdleWaker> IdleWakers<W> {
    /// No worker idle, not stopped.
    pub fn new() -> Self {
        Self {
            wakers: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<W>> {
        self.wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `waker` as an idle worker's (once), then looks: `true` if the worker may wait
    /// (`has_work()` is false and the pool is not stopped), `false` if it must go on (the
    /// registration is then taken back).
    pub fn idle_unless(&self, waker: &W, has_work: impl FnOnce() -> bool) -> bool {
        {
            let mut wakers = self.lock();
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
            }
            self.count.store(wakers.len(), Ordering::Relaxed);
        }
        // Dekker with `notify_pushed`: published as idle, then the look at the queue.
        if !crate::sync::mutant("idle_no_fence") {
            fence(Ordering::SeqCst);
        }
        let go_on = (!crate::sync::mutant("idle_no_look") && has_work())
            || self.stopped.load(Ordering::SeqCst);
        if !go_on {
            return true;
        }
        // A task came while we registered (we take it ourselves, so a schedule must not spend
        // its wake-up on us while another worker waits), or the pool stopped.
        let mut wakers = self.lock();
        wakers.retain(|w| !w.will_wake(waker));
        self.count.store(wakers.len(), Ordering::Relaxed);
        false
    }

    /// Call after pushing a task to the shared queue: wakes one idle worker, if any. Takes no
    /// lock while none is idle.
    #[inline]
    pub fn notify_pushed(&self) {
        // Dekker with `idle_unless`: the push, then the look at idle workers.
        if !crate::sync::mutant("push_no_fence") {
            fence(Ordering::SeqCst);
        }
        if self.count.load(Ordering::Relaxed) > 0 {
            self.wake_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        let wake = {
            let mut wakers = self.lock();
            let wake = wakers.pop();
            self.count.store(wakers.len(), Ordering::Relaxed);
            wake
        };
        if let Some(w) = wake {
            w.wake();
        }
    }

    /// Stops the pool: wakes every idle worker, and [`idle_unless`](Self::idle_unless) answers
    /// `false` from now on.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let wakers = {
            let mut wakers = self.lock();
            self.count.store(0, Ordering::Relaxed);
            core::mem::take(&mut *wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// How many workers are registered as idle (a snapshot, for diagnostics).
    pub fn idle_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl<W: IdleWaker> Default for IdleWakers<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W> fmt::Debug for IdleWakers<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleWakers")
            .field("idle", &self.count.load(Ordering::Relaxed))
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish()
    }
}
