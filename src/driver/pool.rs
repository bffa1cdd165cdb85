//! The built-in thread pool: no async runtime needed.
//!
//! One shared FIFO queue (crossbeam's lock-free `Injector`: a schedule from any thread is a
//! push, a worker takes with a steal, nobody waits on a lock) plus, per worker, a LIFO slot:
//! an actor scheduled by the actor a worker is running (a reply, the next hop of a ring) runs
//! next on the same worker, with its data still in cache and no trip through the shared queue
//! (tokio's LIFO-slot idea, `driver/lifo.rs`). The slot is used at most 16 times in a row while
//! the shared queue has tasks waiting, so that they are not starved.
//!
//! A worker with nothing to do looks again for a little while ([`SPINS`] yields), then sleeps
//! on a condition variable. While it looks it counts as *searching*, and a schedule wakes no
//! one while some worker searches (it will find the task); otherwise a schedule wakes a
//! sleeper only if one is asleep and not already being woken, so a burst of schedules costs
//! one wake-up. A searcher that finds work and was the last one searching wakes a sleeper for
//! the rest (tokio's rule). No task is left in the queue with every worker asleep: the
//! protocol, its argument and its loom model are the mailbox crate's
//! [`Sleepers`](crate::mailbox::Sleepers).

use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_deque::Injector;

use super::lifo;
use crate::actor::{Runnable, Schedule, System};
use crate::mailbox::chunk::ReleaseBatch;
use crate::mailbox::Sleepers;

/// How many times an idle worker yields and looks at the shared queue again before it sleeps.
const SPINS: u32 = 64;

struct Shared {
    tasks: Injector<Runnable>,
    /// Searching and sleeping workers (the protocol and its loom model live in the mailbox
    /// crate).
    sleepers: Sleepers,
}

impl Shared {
    fn pop_global(&self) -> Option<Runnable> {
        lifo::steal(&self.tasks)
    }
}

impl lifo::Driver for Shared {
    fn push_global(&self, task: Runnable) {
        self.tasks.push(task);
        self.sleepers.notify_pushed();
    }
}

struct Scheduler(Arc<Shared>);

impl Schedule for Scheduler {
    fn schedule(&self, task: Runnable) {
        // On one of our workers: the task goes to its LIFO slot, and whatever was there moves
        // to the shared queue.
        lifo::schedule(&self.0, task);
    }
}

/// Runs actors on a fixed set of threads. Idle workers look for work briefly, then sleep on a
/// condition variable. Dropping the pool stops its workers; actors still scheduled do not run
/// again.
///
/// ```
/// use std::time::Duration;
/// use airssys_rt::{Actor, Ctx, Handler, ThreadPool};
///
/// struct Doubler;
/// impl Actor for Doubler {}
/// impl Handler<u64> for Doubler {
///     type Reply = u64;
///     fn handle(&mut self, n: u64, _: &mut Ctx<Self>) -> u64 { n * 2 }
/// }
///
/// let pool = ThreadPool::new(2);
/// let doubler = pool.system().spawn(Doubler).unwrap();
/// assert_eq!(doubler.ask_timeout(21, Duration::from_secs(5)), Ok(42));
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    system: System,
}

impl ThreadPool {
    /// A pool of `threads` workers (at least one).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            tasks: Injector::new(),
            sleepers: Sleepers::new(),
        });
        let system = System::new(Scheduler(shared.clone()));
        let workers = (0..threads.max(1))
            .map(|i| {
                let (shared, system) = (shared.clone(), system.clone());
                thread::Builder::new()
                    .name(format!("airssys-worker-{i}"))
                    .spawn(move || worker(&shared, &system))
                    .expect("spawn a worker thread")
            })
            .collect();
        Self {
            shared,
            workers,
            system,
        }
    }

    /// A pool with one worker per available core.
    pub fn with_available_parallelism() -> Self {
        Self::new(thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The system whose actors this pool runs.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Stops the workers (after their current run) and waits for them.
    pub fn shutdown(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.shared.sleepers.stop();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // Runnables left in the queue hold their actors: drop them to free the actors.
        while self.shared.pop_global().is_some() {}
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn worker(shared: &Arc<Shared>, system: &System) {
    // The worker keeps `shared` alive until `leave`, at the end of this function.
    let outer = lifo::enter(lifo::Owner::of(shared));
    // Letters' chunk releases are coalesced across the runs of a busy streak, not only within
    // one run (a ping-pong's letters come from one chunk: one `fetch_sub` for many hops). At
    // most two chunks are held back, and they are given back before the worker goes looking.
    let _batch = ReleaseBatch::begin();
    let mut lifo_streak = 0;
    loop {
        if shared.sleepers.is_stopping() {
            break;
        }
        if let Some(task) = lifo::take_in_turn(&mut lifo_streak, || !shared.tasks.is_empty()) {
            task.run(system.budget());
            continue;
        }
        let task = match shared.pop_global() {
            Some(task) => task,
            None => {
                // Nothing now: look again for a little while (counted as searching, so that
                // schedules meanwhile wake nobody), then sleep.
                ReleaseBatch::flush();
                shared.sleepers.start_searching();
                for _ in 0..SPINS {
                    if !shared.tasks.is_empty() || shared.sleepers.is_stopping() {
                        break;
                    }
                    thread::yield_now();
                }
                if shared.tasks.is_empty() {
                    shared.sleepers.sleep_unless(|| !shared.tasks.is_empty());
                } else {
                    shared.sleepers.stop_searching_with_work();
                }
                continue;
            }
        };
        task.run(system.budget());
    }
    // Drop a task left in the slot (it holds its actor).
    drop(lifo::leave(outer));
}
