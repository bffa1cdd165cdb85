//! Loom model: the pool's sleep and wake-up protocol ([`Sleepers`]). Workers run the pool's
//! loop over a shared queue (here a counter of interchangeable tasks: a push is an increment,
//! a take a decrement, the look a load); the main thread schedules. However the threads
//! interleave and whatever stale values their loads see, every task is run, and a task that
//! blocks until another task has run (a handler waiting for another actor's reply) is not left
//! waiting while a worker sleeps with that task queued: loom reports a deadlock if it is.
//!
//! Mutants that must fail here: `sleep_no_fence` and `notify_no_fence` (either side of the
//! Dekker pair loses its fence), `searcher_no_wake` and `sleep_found_work_no_wake` (the last
//! searcher to find work does not wake a sleeper for the rest), and for watching
//! `queued_no_fence`, `queued_no_wake`, `sleep_no_watch` and `watch_keeps_wakeup` (see the
//! watching models), `searcher_no_wake` again for the hand-off of the one watch, and
//! `woken_not_searching` (a woken worker is not counted as searching until it runs, so a burst
//! of schedules wakes every sleeper: `Sleepers` asserts under loom that at most one wake-up is
//! outstanding).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_sleepers`
#![cfg(loom)]

#[path = "common/loom_tasks.rs"]
mod loom_tasks;

use airssys_rt_mailbox::{Sleepers, Slept};
use loom_tasks::{run_model, Queue, Tasks};

struct Pool {
    sleepers: Sleepers,
    queue: Queue,
    tasks: Tasks,
}

impl loom_tasks::Pool for Pool {
    fn new(tasks: usize) -> Self {
        Pool {
            sleepers: Sleepers::new(),
            queue: Queue::new(),
            tasks: Tasks::new(tasks),
        }
    }

    fn schedule(&self) {
        self.queue.push();
        self.sleepers.notify_pushed();
    }

    /// The pool's worker loop, with one look while searching (the pool makes [`SPINS`] of
    /// them; more looks only add interleavings in which the worker finds the task). A worker
    /// woken from its sleep is searching (its waker counted it): it looks again, and ends that
    /// search as any searcher does.
    fn worker(&self) {
        loop {
            if self.sleepers.is_stopping() {
                return;
            }
            if self.queue.take() {
                self.tasks.run(|| self.sleepers.stop());
                continue;
            }
            self.sleepers.start_searching();
            loop {
                if self.queue.has_work() {
                    self.sleepers.stop_searching_with_work();
                    break;
                }
                if self.sleepers.sleep_unless(|| self.queue.has_work()) != Slept::Woken {
                    break;
                }
            }
        }
    }

    fn tasks(&self) -> &Tasks {
        &self.tasks
    }
}

/// One worker, one task: the schedule races with the worker going to sleep.
#[test]
fn a_schedule_racing_with_sleep_wakes_the_worker() {
    run_model::<Pool>(1, 1);
}

/// Two workers, two tasks, the first blocked until the second runs: schedules skip their
/// wake-ups while a worker searches, so the searcher that finds work must wake the other
/// worker for the second task. With both workers asleep before the schedules, the second
/// schedule must see the first one's woken worker as searching and wake nobody (the burst
/// rule; `woken_not_searching` fails here).
#[test]
fn a_searcher_that_finds_work_wakes_a_sleeper_for_the_rest() {
    run_model::<Pool>(2, 2);
}

/// A worker whose run does not return, with a task in its local queue that the others may not
/// take yet (`ThreadPool`'s locality rule): the owner pushes onto its empty local queue and
/// calls `notify_queued`, then blocks for good (here: ends without taking the task). The
/// other worker, whatever the interleaving, must end up watching that queue and, when its
/// watch ends (under loom, at once), take the task; if it sleeps without watching, loom
/// reports a deadlock.
///
/// The first watch that ends finds the owner still making progress (it takes nothing and
/// watches again); the second takes the task. A watch lets go of the lock while it lasts, so
/// the owner's wake-up can land during it.
///
/// Mutants that must fail here: `queued_no_fence` and `sleep_no_fence` (either side of the
/// Dekker pair between the push and going to sleep loses its fence), `queued_no_wake` (the
/// push wakes nobody), `sleep_no_watch` (a worker that sees the queued task sleeps anyway) and
/// `watch_keeps_wakeup` (a watcher woken during its watch leaves the wake-up counted, for a
/// sleeper that is not there).
#[test]
fn a_task_queued_behind_a_run_that_does_not_return_is_watched_and_taken() {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;

    loom::model(|| {
        let sleepers = Arc::new(Sleepers::new());
        let local = Arc::new(AtomicUsize::new(0));
        let owner = {
            let (sleepers, local) = (sleepers.clone(), local.clone());
            loom::thread::spawn(move || {
                // The push of a task displaced from the owner's slot onto its empty queue; the
                // backlog is short, so the push only makes sure that someone watches.
                local.store(1, Ordering::Release);
                sleepers.notify_queued();
                // ...and the owner's run never returns.
            })
        };
        // The other worker: nothing in the shared queue; the owner's queue may be taken only
        // once a watch of it ended with the owner still in its run.
        let mut watches = 0;
        sleepers.start_searching();
        loop {
            match sleepers.sleep_or_watch(|| false, || local.load(Ordering::Acquire) > 0, WATCH) {
                // Searching again after either.
                Slept::Watched => {
                    watches += 1;
                    if watches == 2 {
                        assert_eq!(local.swap(0, Ordering::AcqRel), 1, "watched an empty queue");
                        sleepers.stop_searching_with_work();
                        break;
                    }
                }
                Slept::Woken => {}
                Slept::FoundWork => sleepers.start_searching(),
            }
        }
        owner.join().unwrap();
    });
}

/// Any watch time: under loom a watch ends at once.
const WATCH: std::time::Duration = std::time::Duration::from_micros(50);

/// Three workers: the owner's run does not return, with a task in its local queue that the
/// others may not take yet, and it has also scheduled a task on the shared queue that blocks
/// until the local one has run (a handler waiting for the reply of an actor queued behind the
/// stuck run). Only one idle worker watches at a time: a worker that finds the other watching
/// sleeps. If the watcher then takes the shared task (and blocks in it), it must hand the
/// watch on: as the last searcher to find work, it wakes the sleeper, which watches and takes
/// the local task. If nobody watches while the shared task blocks, loom reports a deadlock.
///
/// Mutant that must fail here: `searcher_no_wake` (the hand-off). (`every_idle_worker_watches`
/// turns the one-watcher rule off: it costs wake-ups, not correctness, so no model rejects it.)
#[test]
fn one_watcher_at_a_time_hands_the_watch_on() {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;
    use std::cell::Cell;

    use loom_tasks::Pool as _;

    /// A worker of the model, as the pool's loop: the shared queue, then the owner's local
    /// queue once two of its own watches ended with the owner still stuck (the pool's
    /// "finished no run for a watch" rule); with nothing to take, `idle` as the pool's: search,
    /// then sleep or watch, and search again after a watch or a wake-up.
    fn worker(pool: &Pool, local: &AtomicUsize) {
        let watches = Cell::new(0);
        let may_take_local = || watches.get() >= 2 && local.load(Ordering::Acquire) > 0;
        let has_work = || pool.queue.has_work() || may_take_local();
        loop {
            if pool.sleepers.is_stopping() {
                return;
            }
            if pool.queue.take() || (may_take_local() && local.swap(0, Ordering::AcqRel) == 1) {
                pool.tasks.run(|| pool.sleepers.stop());
                continue;
            }
            pool.sleepers.start_searching();
            loop {
                if has_work() {
                    pool.sleepers.stop_searching_with_work();
                    break;
                }
                match pool.sleepers.sleep_or_watch(
                    has_work,
                    || local.load(Ordering::Acquire) > 0,
                    WATCH,
                ) {
                    // Searching again after either.
                    Slept::Watched => watches.set(watches.get() + 1),
                    Slept::Woken => {}
                    Slept::FoundWork => break,
                }
            }
        }
    }

    loom::model(|| {
        let pool = Arc::new(Pool::new(2));
        let local = Arc::new(AtomicUsize::new(0));
        let owner = {
            let (pool, local) = (pool.clone(), local.clone());
            loom::thread::spawn(move || {
                // Displaced onto its empty local queue (a short backlog: it only makes sure
                // that someone watches)...
                local.store(1, Ordering::Release);
                pool.sleepers.notify_queued();
                // ...and a task for the shared queue; then the run never returns.
                pool.schedule();
            })
        };
        let other = {
            let (pool, local) = (pool.clone(), local.clone());
            loom::thread::spawn(move || worker(&pool, &local))
        };
        worker(&pool, &local);
        other.join().unwrap();
        owner.join().unwrap();
        assert_eq!(pool.tasks.ran(), 2);
    });
}
