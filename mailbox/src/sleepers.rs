//! [`Sleepers`]: how the idle workers of a pool go to sleep and are woken, with no lost
//! wake-up and no wake-up per schedule.
//!
//! The pool this serves (airssys-rt's `ThreadPool`) has one shared queue of runnable tasks. A
//! schedule pushes a task, then calls [`Sleepers::notify_pushed`]. A worker that finds the
//! queue empty calls [`start_searching`](Sleepers::start_searching), looks again for a while,
//! and then either [`stop_searching_with_work`](Sleepers::stop_searching_with_work) (it saw a
//! task) or [`sleep_unless`](Sleepers::sleep_unless) (it did not).
//!
//! # The rules (tokio's "searching" workers)
//!
//! * While a worker is **searching**, a schedule wakes nobody: the searcher will find the
//!   task. A burst of schedules costs no wake-up at all while someone searches, and at most
//!   one while nobody does (`idle` counts sleepers nobody is waking yet).
//! * A searcher that finds work and was the **last** one searching wakes a sleeper for the
//!   rest: the schedules it made skip their wake-ups may have queued more than it takes.
//!   This holds whether it finds the work while looking or in its last look before sleeping.
//! * **No lost wake-up.** Going to sleep and scheduling are a Dekker pair:
//!
//!   ```text
//!   sleeper:   idle += 1; searching -= 1;  fence(SeqCst);  look at the queue
//!   scheduler: push the task;              fence(SeqCst);  look at searching, then idle
//!   ```
//!
//!   Of the two fences, one comes first in the single order of `SeqCst` fences. If the
//!   sleeper's does, the scheduler sees it gone from `searching` and counted in `idle`, and
//!   wakes it (or another sleeper). If the scheduler's does, the sleeper's look at the queue
//!   sees the task, and it does not sleep. The same holds between a searcher that finds work
//!   (its `searching -= 1`, then a fence, then its look at `idle`) and a sleeper.
//!
//! The queue itself is the caller's: `sleep_unless` takes the look at it as a closure (which
//! must read what a push wrote with atomic loads, as crossbeam's `Injector::is_empty` does).
//!
//! The loom model is `tests/loom_sleepers.rs` (mutants `sleep_no_fence`, `notify_no_fence`,
//! `searcher_no_wake` and `sleep_found_work_no_wake`). It found the last rule missing on one
//! path: a searcher whose last look, on its way to sleep, finds work used to take it without
//! waking anyone, so a second task queued meanwhile waited for that worker, for ever if its
//! task blocked on the second (a handler waiting for another actor's reply).

use core::fmt;

use crate::sync::{fence, AtomicBool, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering};

/// Who sleeps, under `Sleepers::sleep`.
#[derive(Debug)]
struct SleepCount {
    /// Workers waiting on `ready`.
    sleepers: usize,
    /// Wake-ups sent and not yet taken by a sleeper.
    notified: usize,
}

/// The sleep and wake-up protocol of a pool's idle workers. See the [module docs](self).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use airssys_rt_mailbox::Sleepers;
///
/// let sleepers = Arc::new(Sleepers::new());
/// let tasks = Arc::new(AtomicUsize::new(0)); // a queue of interchangeable tasks
/// let worker = {
///     let (sleepers, tasks) = (sleepers.clone(), tasks.clone());
///     std::thread::spawn(move || loop {
///         if tasks.load(Ordering::Acquire) > 0 {
///             tasks.fetch_sub(1, Ordering::AcqRel);
///             return; // ran the task
///         }
///         sleepers.start_searching();
///         if tasks.load(Ordering::Acquire) > 0 {
///             sleepers.stop_searching_with_work();
///         } else {
///             sleepers.sleep_unless(|| tasks.load(Ordering::Acquire) > 0);
///         }
///     })
/// };
/// tasks.fetch_add(1, Ordering::AcqRel); // schedule: push...
/// sleepers.notify_pushed(); // ...then wake a sleeper if nobody is searching
/// worker.join().unwrap();
/// ```
pub struct Sleepers {
    sleep: Mutex<SleepCount>,
    /// `sleepers - notified`: sleepers nobody is waking yet (read without the lock).
    idle: AtomicUsize,
    /// Workers looking for work: a schedule wakes nobody while one of them looks.
    searching: AtomicUsize,
    ready: Condvar,
    stopping: AtomicBool,
}

impl Sleepers {
    /// Nobody searching or asleep.
    pub fn new() -> Self {
        Self {
            sleep: Mutex::new(SleepCount {
                sleepers: 0,
                notified: 0,
            }),
            idle: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
            ready: Condvar::new(),
            stopping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SleepCount> {
        self.sleep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Call after pushing a task to the shared queue: wakes a sleeper unless a worker is
    /// searching (it will find the task) or every sleeper is already being woken.
    #[inline]
    pub fn notify_pushed(&self) {
        // Dekker with `sleep_unless`: the push, then the look at searchers and sleepers.
        if !crate::sync::mutant("notify_no_fence") {
            fence(Ordering::SeqCst);
        }
        if self.searching.load(Ordering::Relaxed) == 0 {
            self.wake_one();
        }
    }

    /// The calling worker found the queue empty and starts looking again: schedules wake
    /// nobody until it stops (with work, or by going to sleep).
    #[inline]
    pub fn start_searching(&self) {
        self.searching.fetch_add(1, Ordering::Relaxed);
    }

    /// A searching worker saw work. If it was the last searcher, it wakes a sleeper for
    /// whatever it will not take itself (schedules skipped their wake-ups while it searched).
    pub fn stop_searching_with_work(&self) {
        // Acquire: if a sleeper stopped searching before us, its `idle` count is visible to
        // the look in `wake_one` (its `fetch_sub` Releases).
        if self.searching.fetch_sub(1, Ordering::Acquire) == 1
            && !crate::sync::mutant("searcher_no_wake")
        {
            // Dekker with `sleep_unless` (as in `notify_pushed`): a sleeper either is seen
            // here or sees, in its last look, every task whose schedule saw us searching.
            fence(Ordering::SeqCst);
            self.wake_one();
        }
    }

    /// Sleeps until a schedule wakes the calling worker, unless `has_work()` (looked at after
    /// publishing this worker as a sleeper) or the pool is stopping. The caller is searching
    /// ([`start_searching`](Self::start_searching)); this call ends that.
    pub fn sleep_unless(&self, has_work: impl Fn() -> bool) {
        let mut sleep = self.lock();
        sleep.sleepers += 1;
        self.idle
            .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        // Published as a sleeper first, then no longer searching: a schedule that sees either
        // change after its fence wakes a sleeper. Release: pairs with the Acquire of a
        // searcher's `stop_searching_with_work`.
        let last_searcher = self.searching.fetch_sub(1, Ordering::Release) == 1;
        // Dekker with `notify_pushed`: published as a sleeper, then the look at the queue.
        if !crate::sync::mutant("sleep_no_fence") {
            fence(Ordering::SeqCst);
        }
        let found_work = has_work();
        if !found_work && !self.stopping.load(Ordering::SeqCst) {
            loop {
                sleep = self
                    .ready
                    .wait(sleep)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if sleep.notified > 0 {
                    sleep.notified -= 1;
                    break;
                }
                if self.stopping.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        sleep.sleepers -= 1;
        if found_work && last_searcher && !crate::sync::mutant("sleep_found_work_no_wake") {
            // A searcher that found work after all: as in `stop_searching_with_work`, the
            // last one wakes a sleeper for whatever it will not take itself (schedules
            // skipped their wake-ups while it searched).
            self.wake_one_locked(sleep);
        } else {
            self.idle
                .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        }
    }

    /// Wakes one sleeper that nobody is waking yet, if there is one.
    fn wake_one(&self) {
        if self.idle.load(Ordering::Relaxed) > 0 {
            self.wake_one_locked(self.lock());
        }
    }

    /// [`wake_one`](Self::wake_one) under the lock: hands a wake-up to a sleeper that nobody is
    /// waking yet, if there is one, and publishes `idle`.
    fn wake_one_locked(&self, mut sleep: MutexGuard<'_, SleepCount>) {
        let wake = sleep.sleepers > sleep.notified;
        if wake {
            sleep.notified += 1;
        }
        self.idle
            .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        drop(sleep);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Stops the pool: wakes every sleeper, and no worker sleeps from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Under the lock: a worker between its look at `stopping` and its wait cannot miss it.
        drop(self.lock());
        self.ready.notify_all();
    }

    /// Whether [`stop`](Self::stop) was called.
    #[inline]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

impl Default for Sleepers {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Sleepers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleepers")
            .field("searching", &self.searching.load(Ordering::Relaxed))
            .field("idle", &self.idle.load(Ordering::Relaxed))
            .field("stopping", &self.is_stopping())
            .finish()
    }
}
