//! Loom model: the pool's sleep and wake-up protocol ([`Sleepers`]). Workers run the pool's
//! loop over a shared queue (here a counter of interchangeable tasks: a push is an increment,
//! a take a decrement, the look a load); the main thread schedules. However the threads
//! interleave and whatever stale values their loads see, every task is run, and a task that
//! blocks until another task has run (a handler waiting for another actor's reply) is not left
//! waiting while a worker sleeps with that task queued: loom reports a deadlock if it is.
//!
//! Mutants that must fail here: `sleep_no_fence` and `notify_no_fence` (either side of the
//! Dekker pair loses its fence) and `searcher_no_wake` (the last searcher to find work does not
//! wake a sleeper for the rest).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_sleepers`
#![cfg(loom)]

#[path = "common/loom_tasks.rs"]
mod loom_tasks;

use airssys_rt_mailbox::Sleepers;
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
    /// them; more looks only add interleavings in which the worker finds the task).
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
            if self.queue.has_work() {
                self.sleepers.stop_searching_with_work();
            } else {
                self.sleepers.sleep_unless(|| self.queue.has_work());
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
/// worker for the second task.
#[test]
fn a_searcher_that_finds_work_wakes_a_sleeper_for_the_rest() {
    run_model::<Pool>(2, 2);
}
