//! Loom model: how a future-driven pool's idle workers wait and are woken ([`IdleWakers`]).
//! Workers run the `FutureDriver`'s poll loop over a shared queue (here a counter of
//! interchangeable tasks: a push is an increment, a take a decrement, the look a load); a
//! worker that goes idle "returns `Pending`" by waiting until its waker is woken. The main
//! thread schedules. However the threads interleave and whatever stale values their loads see,
//! every task is run, and a task that blocks until another task has run (a handler waiting for
//! another actor's reply) is not left waiting while a worker waits with that task queued:
//! loom reports a deadlock if it is.
//!
//! Mutants that must fail here: `idle_no_fence` and `push_no_fence` (either side of the Dekker
//! pair loses its fence) and `idle_no_look` (a worker goes idle without looking at the queue
//! after registering).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_idle_wakers`
#![cfg(loom)]

#[path = "common/loom_tasks.rs"]
mod loom_tasks;

use airssys_rt_mailbox::{IdleWaker, IdleWakers};
use loom::sync::{Arc, Condvar, Mutex};
use loom_tasks::{run_model, Queue, Tasks};

/// A worker's waker: waking sets a flag that the worker, "returned `Pending`", waits for.
#[derive(Clone)]
struct ModelWaker(Arc<WakeFlag>);

struct WakeFlag {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl ModelWaker {
    fn new() -> Self {
        Self(Arc::new(WakeFlag {
            woken: Mutex::new(false),
            cv: Condvar::new(),
        }))
    }

    /// The executor's side: the worker is not polled again until woken.
    fn wait(&self) {
        let mut woken = self.0.woken.lock().unwrap();
        while !*woken {
            woken = self.0.cv.wait(woken).unwrap();
        }
        *woken = false;
    }
}

impl IdleWaker for ModelWaker {
    fn wake(self) {
        *self.0.woken.lock().unwrap() = true;
        self.0.cv.notify_all();
    }

    fn will_wake(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

struct Pool {
    idle: IdleWakers<ModelWaker>,
    queue: Queue,
    tasks: Tasks,
}

impl loom_tasks::Pool for Pool {
    fn new(tasks: usize) -> Self {
        Pool {
            idle: IdleWakers::new(),
            queue: Queue::new(),
            tasks: Tasks::new(tasks),
        }
    }

    fn schedule(&self) {
        self.queue.push();
        self.idle.notify_pushed();
    }

    /// The `FutureDriver` worker's polls: run what is queued; when nothing is, register as
    /// idle and, if allowed, wait to be woken (the next poll).
    fn worker(&self) {
        let waker = ModelWaker::new();
        loop {
            if self.idle.is_stopped() {
                return;
            }
            if self.queue.take() {
                self.tasks.run(|| self.idle.stop());
                continue;
            }
            if self.idle.idle_unless(&waker, || self.queue.has_work()) {
                waker.wait();
            }
        }
    }

    fn tasks(&self) -> &Tasks {
        &self.tasks
    }
}

/// One worker, one task: the schedule races with the worker going idle.
#[test]
fn a_schedule_racing_with_idle_wakes_the_worker() {
    run_model::<Pool>(1, 1);
}

/// Two workers, two tasks, the first blocked until the second runs: the second schedule must
/// reach the worker that is not blocked, whether it is idle, going idle, or about to look.
#[test]
fn a_blocked_task_does_not_keep_the_next_one_from_a_worker() {
    run_model::<Pool>(2, 2);
}
