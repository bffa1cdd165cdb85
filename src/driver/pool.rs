//! The built-in thread pool: no async runtime needed.
//!
//! Tokio's scheduler, in small: per worker, a LIFO slot and a local FIFO queue, plus one shared
//! FIFO queue, all lock-free (crossbeam's `Worker`/`Stealer` deques and `Injector`).
//!
//! * An actor scheduled by the actor a worker is running (a reply, the next hop of a ring) goes
//!   to that worker's **LIFO slot** and runs next, with its data still in cache (tokio's
//!   LIFO-slot idea, `driver/lifo.rs`). The slot is used at most 16 times in a row while other
//!   tasks wait, so that they are not starved.
//! * What the slot displaces goes to the worker's **local queue**: a push and a pop there are
//!   the worker's own (no contended line), and idle workers steal half of it.
//! * A schedule from outside the pool's workers goes to the **shared queue**. A worker takes
//!   from it when its local queue is empty (a batch at once), and first, every
//!   [`GLOBAL_INTERVAL`] tasks, so that it is never starved by local work.
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

use std::cell::Cell;
use std::ptr;

use crossbeam_deque::{Injector, Stealer, Worker};

use super::lifo;
use crate::actor::{Runnable, Schedule, System};
use crate::mailbox::chunk::ReleaseBatch;
use crate::mailbox::Sleepers;

/// How many times an idle worker yields and looks for work again before it sleeps.
const SPINS: u32 = 64;

/// A worker looks at the shared queue before its own local queue once every this many tasks
/// (tokio's default), so that schedules from outside the pool are not starved by local work.
const GLOBAL_INTERVAL: u32 = 61;

struct Shared {
    /// Schedules from outside the workers.
    tasks: Injector<Runnable>,
    /// The workers' local queues, for stealing.
    stealers: Vec<Stealer<Runnable>>,
    /// Searching and sleeping workers (the protocol and its loom model live in the mailbox
    /// crate).
    sleepers: Sleepers,
}

thread_local! {
    /// The pool and the local queue of the pool worker running on this thread (null
    /// elsewhere). Set by `worker` for its whole life, to a queue on its own stack.
    static LOCAL: Cell<(*const Shared, *const Worker<Runnable>)> =
        const { Cell::new((ptr::null(), ptr::null())) };
}

impl Shared {
    fn pop_global(&self) -> Option<Runnable> {
        lifo::steal(&self.tasks)
    }

    /// Whether any queue a worker could take from has a task: the shared queue or a local one.
    /// (Atomic loads only, as `Sleepers::sleep_unless` requires.)
    fn has_work(&self) -> bool {
        !self.tasks.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// The next task for worker `me` (whose LIFO slot is empty or out of turn): its local
    /// queue, then the shared queue (a batch moves to the local queue), then the other workers'
    /// local queues (half of one moves). Every [`GLOBAL_INTERVAL`] ticks the shared queue comes
    /// first.
    fn next_task(&self, local: &Worker<Runnable>, me: usize, tick: u32) -> Option<Runnable> {
        if tick.is_multiple_of(GLOBAL_INTERVAL) {
            if let Some(task) = self.pop_global() {
                return Some(task);
            }
        }
        if let Some(task) = local.pop() {
            return Some(task);
        }
        if let Some(task) = lifo::retry(|| self.tasks.steal_batch_and_pop(local)) {
            return Some(task);
        }
        let n = self.stealers.len();
        (1..n).find_map(|k| lifo::retry(|| self.stealers[(me + k) % n].steal_batch_and_pop(local)))
    }
}

impl lifo::Driver for Shared {
    fn push_global(&self, task: Runnable) {
        self.tasks.push(task);
        self.sleepers.notify_pushed();
    }

    fn push_displaced(&self, task: Runnable) {
        let (pool, local) = LOCAL.with(Cell::get);
        if !ptr::eq(pool, self) || local.is_null() {
            return self.push_global(task);
        }
        // SAFETY: `LOCAL` names this pool and a queue only while a worker of this pool runs on
        // this thread, and that worker's queue lives on its stack for that whole time; `Worker`
        // is used from its own thread only (this one).
        unsafe { &*local }.push(task);
        // Others may steal it: wake one if nobody is searching (as for the shared queue).
        self.sleepers.notify_pushed();
    }
}

/// Sets `LOCAL` for a worker's life, and puts back what was there.
struct LocalGuard((*const Shared, *const Worker<Runnable>));

impl LocalGuard {
    fn set(shared: &Shared, local: &Worker<Runnable>) -> Self {
        LocalGuard(LOCAL.with(|l| l.replace((shared, local))))
    }
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        LOCAL.with(|l| l.set(self.0));
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
        let locals: Vec<Worker<Runnable>> =
            (0..threads.max(1)).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(Shared {
            tasks: Injector::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            sleepers: Sleepers::new(),
        });
        let system = System::new(Scheduler(shared.clone()));
        let workers = locals
            .into_iter()
            .enumerate()
            .map(|(i, local)| {
                let (shared, system) = (shared.clone(), system.clone());
                thread::Builder::new()
                    .name(format!("airssys-worker-{i}"))
                    .spawn(move || worker(&shared, &system, &local, i))
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

fn worker(shared: &Arc<Shared>, system: &System, local: &Worker<Runnable>, me: usize) {
    // The worker keeps `shared` alive until `leave`, at the end of this function, and `local`
    // until it returns (tasks left in it are dropped with it, by the caller).
    let outer = lifo::enter(lifo::Owner::of(shared));
    let local_guard = LocalGuard::set(shared, local);
    // Letters' chunk releases are coalesced across the runs of a busy streak, not only within
    // one run (a ping-pong's letters come from one chunk: one `fetch_sub` for many hops). At
    // most two chunks are held back, and they are given back before the worker goes looking.
    let _batch = ReleaseBatch::begin();
    let mut lifo_streak = 0;
    let mut tick: u32 = 0;
    loop {
        if shared.sleepers.is_stopping() {
            break;
        }
        let others_wait = || !local.is_empty() || !shared.tasks.is_empty();
        if let Some(task) = lifo::take_in_turn(&mut lifo_streak, others_wait) {
            task.run(system.budget());
            continue;
        }
        tick = tick.wrapping_add(1);
        let task = match shared.next_task(local, me, tick) {
            Some(task) => task,
            None => {
                // Nothing now: look again for a little while (counted as searching, so that
                // schedules meanwhile wake nobody), then sleep.
                ReleaseBatch::flush();
                shared.sleepers.start_searching();
                for _ in 0..SPINS {
                    if shared.has_work() || shared.sleepers.is_stopping() {
                        break;
                    }
                    thread::yield_now();
                }
                if !shared.has_work() {
                    shared.sleepers.sleep_unless(|| shared.has_work());
                } else {
                    shared.sleepers.stop_searching_with_work();
                }
                continue;
            }
        };
        task.run(system.budget());
    }
    drop(local_guard);
    // Drop a task left in the slot (it holds its actor).
    drop(lifo::leave(outer));
}
