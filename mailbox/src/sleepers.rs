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
//!   one while nobody does.
//! * **A woken worker counts as searching** from the moment its wake-up is handed out (the
//!   waker counts it, under the lock), not from when the OS gets round to running it. So the
//!   rest of a burst wakes nobody else, and the wake-ups spread one at a time (next rule)
//!   instead of every sleeper at once: at most one wake-up is ever outstanding. The woken
//!   worker returns from its sleep searching ([`Slept::Woken`]).
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
//! # Watching a busy worker's queue
//!
//! A pool may also give each worker a local queue that the others take from only when that pays
//! (airssys-rt's `ThreadPool` leaves a short backlog to its owner, whose cache holds it). Then a
//! task can sit in a queue that no idle worker may take from yet, behind a run that may not
//! return soon (a long handler, a blocked one). Someone must look again later:
//!
//! * A worker about to sleep while another worker's queue holds tasks (`must_watch()`, looked at
//!   after the same fence as `has_work()`) **watches** instead: it sleeps for at most the given
//!   time ([`Slept::Watched`]), then looks again (and takes the tasks if their owner made no
//!   progress meanwhile: the caller's rule).
//! * **One watcher at a time.** A worker about to sleep while another already watches sleeps
//!   without watching (so an idle pool of many workers costs one wake-up per watch, not one
//!   per idle worker). The watch is handed on by the searching rules: a watcher whose watch
//!   ends searches; if it finds work, it was the last searcher (the sleepers are not
//!   searching) and wakes a sleeper, which watches in its turn if the queue still holds
//!   tasks; if it finds none, it watches again.
//! * A push (or a batch moved in) that makes a local queue non-empty calls
//!   [`Sleepers::notify_queued`]: it wakes a sleeper unless a worker searches or watches.
//!   Going to sleep without watching and such a push are the same Dekker pair as above, so a queue never holds tasks while every other
//!   worker sleeps without watching: either the sleeper's last look sees the task (and it
//!   watches), or the push sees the sleeper (and wakes it).
//!
//! The loom models are in `tests/loom_sleepers.rs` (mutants `sleep_no_fence`, `notify_no_fence`,
//! `searcher_no_wake` and `sleep_found_work_no_wake`; `woken_not_searching` for the burst rule,
//! whose "one wake-up outstanding" the models assert under the lock; for watching, `queued_no_fence`,
//! `queued_no_wake`, `sleep_no_watch` and `watch_keeps_wakeup`; for the hand-off of the one
//! watch, `searcher_no_wake` again). The first found the last rule missing on one
//! path: a searcher whose last look, on its way to sleep, finds work used to take it without
//! waking anyone, so a second task queued meanwhile waited for that worker, for ever if its
//! task blocked on the second (a handler waiting for another actor's reply).

use core::fmt;
use core::time::Duration;

use crate::sync::{fence, AtomicBool, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering};

/// Who sleeps, under `Sleepers::sleep`.
#[derive(Debug)]
struct SleepCount {
    /// Workers waiting on `ready`.
    sleepers: usize,
    /// Wake-ups sent and not yet taken by a sleeper.
    notified: usize,
}

/// How [`Sleepers::sleep_or_watch`] returned, and whether the caller is searching now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slept {
    /// It did not sleep: its last look found work, or the pool is stopping. The caller is no
    /// longer searching.
    FoundWork,
    /// It slept, and a schedule (or the pool's stop) woke it. The caller is **searching**
    /// (its waker counted it): it looks for work, and ends the search as any searcher does,
    /// with [`stop_searching_with_work`](Sleepers::stop_searching_with_work) or another sleep.
    Woken,
    /// It watched another worker's queue, and the time ran out (or it was woken early). The
    /// caller is **searching**, as after [`Woken`](Self::Woken): it looks at that queue again.
    Watched,
}

/// The sleep and wake-up protocol of a pool's idle workers. See the [module docs](self).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use airssys_rt_mailbox::{Sleepers, Slept};
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
///         loop {
///             if tasks.load(Ordering::Acquire) > 0 {
///                 sleepers.stop_searching_with_work();
///                 break;
///             }
///             // Woken: searching again (its waker counted it), so look again.
///             if sleepers.sleep_unless(|| tasks.load(Ordering::Acquire) > 0) != Slept::Woken {
///                 break;
///             }
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
    /// Sleepers watching other workers' queues (asleep for a bounded time): a push onto an
    /// empty local queue wakes nobody while one of them watches.
    watching: AtomicUsize,
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
            watching: AtomicUsize::new(0),
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
    /// searching (it will find the task; a worker woken and not yet running counts) or nobody
    /// sleeps. Returns whether it woke one.
    #[inline]
    pub fn notify_pushed(&self) -> bool {
        // Dekker with `sleep_unless`: the push, then the look at searchers and sleepers.
        if !crate::sync::mutant("notify_no_fence") {
            fence(Ordering::SeqCst);
        }
        self.searching.load(Ordering::Relaxed) == 0 && self.wake_one()
    }

    /// Call after a push that made a worker's local queue non-empty, when the push itself
    /// need not wake anyone (the queue's owner will run the task unless its run does not
    /// return): wakes a sleeper unless a worker searches or watches, so that somebody looks at
    /// that queue again later (see the [module docs](self)).
    #[inline]
    pub fn notify_queued(&self) {
        // Dekker with `sleep_or_watch`: the push, then the look at searchers and watchers.
        if !crate::sync::mutant("queued_no_fence") {
            fence(Ordering::SeqCst);
        }
        if self.searching.load(Ordering::Relaxed) == 0
            && self.watching.load(Ordering::Relaxed) == 0
            && !crate::sync::mutant("queued_no_wake")
        {
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
    /// ([`start_searching`](Self::start_searching)); this call ends that, and if it returns
    /// [`Slept::Woken`] the caller is searching again (see [`Slept`]).
    pub fn sleep_unless(&self, has_work: impl Fn() -> bool) -> Slept {
        self.sleep_or_watch(has_work, || false, Duration::ZERO)
    }

    /// [`sleep_unless`](Self::sleep_unless), except that if `must_watch()` (another worker's
    /// local queue holds tasks; looked at after `has_work()`), the worker sleeps for at most
    /// `watch_for` and then returns [`Slept::Watched`], so that it looks at that queue again.
    /// Under loom a watch does not wait: it ends at once, which models every time-out.
    pub fn sleep_or_watch(
        &self,
        has_work: impl Fn() -> bool,
        must_watch: impl Fn() -> bool,
        watch_for: Duration,
    ) -> Slept {
        let mut sleep = self.lock();
        sleep.sleepers += 1;
        self.idle
            .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        // Published as a sleeper first, then no longer searching: a schedule that sees either
        // change after its fence wakes a sleeper. Release: pairs with the Acquire of a
        // searcher's `stop_searching_with_work`.
        let last_searcher = self.searching.fetch_sub(1, Ordering::Release) == 1;
        // Dekker with `notify_pushed` and `notify_queued`: published as a sleeper (and not a
        // searcher nor a watcher), then the look at the queues.
        if !crate::sync::mutant("sleep_no_fence") {
            fence(Ordering::SeqCst);
        }
        let found_work = has_work();
        let mut slept = Slept::FoundWork;
        if !found_work && !self.stopping.load(Ordering::SeqCst) {
            // One watcher at a time: with one already watching (it changes only under this
            // lock), this worker sleeps. When that watcher stops watching, it searches, and
            // if it then goes off with work, it was the last searcher and wakes a sleeper
            // (this one), which watches in its turn; if it finds none, it watches again.
            let watched = self.watching.load(Ordering::Relaxed) > 0
                && !crate::sync::mutant("every_idle_worker_watches");
            if !crate::sync::mutant("sleep_no_watch") && !watched && must_watch() {
                self.watching.fetch_add(1, Ordering::Relaxed);
                sleep = self.watch(sleep, watch_for);
                self.watching.fetch_sub(1, Ordering::Relaxed);
                slept = Slept::Watched;
                if sleep.notified > 0 && !crate::sync::mutant("watch_keeps_wakeup") {
                    // Woken meanwhile: take the wake-up (it was meant for a sleeper, and this
                    // worker looks again now), and with it the search its waker counted.
                    // Left, it would outlive the sleepers it counts.
                    self.take_wakeup(&mut sleep);
                } else {
                    // The watch ran out: this worker searches again.
                    self.start_searching();
                }
            } else {
                slept = Slept::Woken;
                loop {
                    sleep = self
                        .ready
                        .wait(sleep)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if sleep.notified > 0 {
                        self.take_wakeup(&mut sleep);
                        break;
                    }
                    if self.stopping.load(Ordering::SeqCst) {
                        // Woken by the stop, which counted nobody: `Woken` means searching.
                        self.start_searching();
                        break;
                    }
                }
            }
        }
        sleep.sleepers -= 1;
        // Every wake-up handed out is for a sleeper still asleep (checked in model runs,
        // where a broken count would otherwise wrap silently in the release build).
        #[cfg(loom)]
        assert!(
            sleep.notified <= sleep.sleepers,
            "more wake-ups than sleepers"
        );
        if found_work && last_searcher && !crate::sync::mutant("sleep_found_work_no_wake") {
            // A searcher that found work after all: as in `stop_searching_with_work`, the
            // last one wakes a sleeper for whatever it will not take itself (schedules
            // skipped their wake-ups while it searched).
            self.wake_one_locked(sleep);
        } else {
            self.idle
                .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        }
        slept
    }

    /// Waits on `ready` for at most `watch_for` (a spurious or early wake-up ends it too: the
    /// caller looks again either way).
    #[cfg(not(loom))]
    fn watch<'a>(
        &self,
        sleep: MutexGuard<'a, SleepCount>,
        watch_for: Duration,
    ) -> MutexGuard<'a, SleepCount> {
        if self.stopping.load(Ordering::SeqCst) {
            return sleep;
        }
        self.ready
            .wait_timeout(sleep, watch_for)
            .map_or_else(|e| e.into_inner().0, |(guard, _)| guard)
    }

    /// Under loom the watch lets go of the lock, yields and takes it again: loom's
    /// `wait_timeout` never times out, and this way other threads may act (push, wake it,
    /// stop the pool) while it watches, and the time-out comes wherever the model puts it.
    #[cfg(loom)]
    fn watch<'a>(
        &'a self,
        sleep: MutexGuard<'a, SleepCount>,
        _watch_for: Duration,
    ) -> MutexGuard<'a, SleepCount> {
        drop(sleep);
        loom::thread::yield_now();
        self.lock()
    }

    /// A sleeper takes the wake-up handed to it. It is searching from here on: its waker
    /// counted it (or, under the `woken_not_searching` mutant, it counts itself only now).
    fn take_wakeup(&self, sleep: &mut SleepCount) {
        sleep.notified -= 1;
        if crate::sync::mutant("woken_not_searching") {
            self.start_searching();
        }
    }

    /// Wakes one sleeper that nobody is waking yet, if there is one. Returns whether it did.
    fn wake_one(&self) -> bool {
        self.idle.load(Ordering::Relaxed) > 0 && self.wake_one_locked(self.lock())
    }

    /// [`wake_one`](Self::wake_one) under the lock: hands a wake-up to a sleeper that nobody is
    /// waking yet, if there is one and no worker searches, and publishes `idle`. The woken
    /// worker counts as searching from here on (the module docs' burst rule), so at most one
    /// wake-up is outstanding at any time.
    fn wake_one_locked(&self, mut sleep: MutexGuard<'_, SleepCount>) -> bool {
        // Looked at again under the lock: a worker that another waker woke meanwhile counts as
        // searching, and it will find the work this wake-up is for (searching workers, woken
        // or not, end their search with a look at the queues, as in the module docs).
        let searching = self.searching.load(Ordering::Relaxed) > 0
            && !crate::sync::mutant("woken_not_searching");
        let wake = sleep.sleepers > sleep.notified && !searching;
        if wake {
            sleep.notified += 1;
            if !crate::sync::mutant("woken_not_searching") {
                self.start_searching();
            }
        }
        // The burst rule's promise, checked in model runs.
        #[cfg(loom)]
        assert!(
            sleep.notified <= 1,
            "a second wake-up handed out while the first woken worker has not looked yet"
        );
        self.idle
            .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        drop(sleep);
        if wake {
            self.ready.notify_one();
        }
        wake
    }

    /// Stops the pool: wakes every sleeper, and no worker sleeps from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Under the lock: a worker between its look at `stopping` and its wait cannot miss it.
        drop(self.lock());
        self.ready.notify_all();
    }

    /// Workers asleep (or watching) that no wake-up is on its way to yet: a snapshot, for
    /// metrics and tests.
    pub fn asleep(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    /// Workers searching now (including woken ones that have not looked yet): a snapshot, for
    /// metrics and tests.
    pub fn searching(&self) -> usize {
        self.searching.load(Ordering::Relaxed)
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
            .field("searching", &self.searching())
            .field("idle", &self.asleep())
            .field("watching", &self.watching.load(Ordering::Relaxed))
            .field("stopping", &self.is_stopping())
            .finish()
    }
}
