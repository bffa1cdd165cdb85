//! What the loom models of worker pools (`loom_sleepers`, `loom_idle_wakers`) share: tasks
//! that need each other, and the model that schedules them onto workers.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A shared queue of interchangeable tasks: a push is an increment, a take a decrement, the
/// look a load.
pub struct Queue(AtomicUsize);

impl Queue {
    pub fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    pub fn push(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Takes a task, if one is queued.
    pub fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The workers' look at the queue.
    pub fn has_work(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// The tasks of a model: the first to start waits until every task has started (it needs
/// them, as a handler blocked on replies does); the last one to start ends the model.
pub struct Tasks {
    /// Tasks run (started).
    ran: Mutex<usize>,
    /// Signalled when a task starts.
    started: Condvar,
    /// Tasks the model schedules in all.
    total: usize,
}

impl Tasks {
    pub fn new(total: usize) -> Self {
        Self {
            ran: Mutex::new(0),
            started: Condvar::new(),
            total,
        }
    }

    /// Runs one task; the last one calls `stop_pool` (the pool's drop or stop, in the real
    /// thing).
    pub fn run(&self, stop_pool: impl FnOnce()) {
        let mut ran = self.ran.lock().unwrap();
        *ran += 1;
        if *ran == self.total {
            self.started.notify_all();
            drop(ran);
            stop_pool();
        } else if *ran == 1 {
            while *ran < self.total {
                ran = self.started.wait(ran).unwrap();
            }
        }
    }

    /// How many tasks ran.
    pub fn ran(&self) -> usize {
        *self.ran.lock().unwrap()
    }
}

/// A pool under a model: its workers' loop and its schedule.
pub trait Pool: Send + Sync + 'static {
    /// A pool for `tasks` tasks.
    fn new(tasks: usize) -> Self;
    /// One worker's loop, until the pool stops.
    fn worker(&self);
    /// Queues one task.
    fn schedule(&self);
    /// The model's tasks.
    fn tasks(&self) -> &Tasks;
}

/// `workers` workers, and the main thread scheduling `tasks` tasks: every task runs (and loom
/// reports a deadlock if a task waits while a worker waits with that task queued).
pub fn run_model<P: Pool>(workers: usize, tasks: usize) {
    loom::model(move || {
        let pool = Arc::new(P::new(tasks));
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || pool.worker())
            })
            .collect();
        for _ in 0..tasks {
            pool.schedule();
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(pool.tasks().ran(), tasks);
    });
}
