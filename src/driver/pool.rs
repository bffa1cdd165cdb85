//! The built-in thread pool: no async runtime needed.
//!
//! One shared FIFO queue plus, per worker, a LIFO slot: an actor scheduled by the actor a
//! worker is running (a reply, the next hop of a ring) runs next on the same worker, with its
//! data still in cache and no trip through the shared queue (tokio's LIFO-slot idea). The
//! slot is used at most [`LIFO_LIMIT`] times in a row, so that the shared queue is not
//! starved. Idle workers sleep on a condition variable, and a schedule wakes one only when
//! some worker is asleep: no spinning, no needless wake-ups.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use crate::actor::{Runnable, Schedule, System};

/// How many times in a row a worker may take its LIFO slot before looking at the shared queue.
const LIFO_LIMIT: u32 = 16;

struct Queue {
    tasks: VecDeque<Runnable>,
    sleepers: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    stopping: AtomicBool,
}

impl Shared {
    fn push_global(&self, task: Runnable) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.tasks.push_back(task);
        let wake = queue.sleepers > 0;
        drop(queue);
        if wake {
            self.ready.notify_one();
        }
    }
}

thread_local! {
    /// The LIFO slot of the current worker thread, with the pool it belongs to.
    static LIFO: RefCell<Option<(*const Shared, Option<Runnable>)>> = const { RefCell::new(None) };
}

struct Scheduler(Arc<Shared>);

impl Schedule for Scheduler {
    fn schedule(&self, task: Runnable) {
        let me = Arc::as_ptr(&self.0);
        // On one of our workers: the task goes to its LIFO slot, and whatever was there moves
        // to the shared queue.
        let overflow = LIFO.with(|slot| match &mut *slot.borrow_mut() {
            Some((pool, lifo)) if *pool == me => lifo.replace(task),
            _ => Some(task),
        });
        if let Some(task) = overflow {
            self.0.push_global(task);
        }
    }
}

/// Runs actors on a fixed set of threads. Idle workers sleep on a condition variable (no
/// spinning). Dropping the pool stops its workers; actors still scheduled do not run again.
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
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                sleepers: 0,
            }),
            ready: Condvar::new(),
            stopping: AtomicBool::new(false),
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
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // Runnables left in the queue hold their actors: drop them to free the actors.
        let left = std::mem::take(
            &mut self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tasks,
        );
        drop(left);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn worker(shared: &Arc<Shared>, system: &System) {
    LIFO.with(|slot| *slot.borrow_mut() = Some((Arc::as_ptr(shared), None)));
    let take_lifo =
        || LIFO.with(|slot| slot.borrow_mut().as_mut().and_then(|(_, lifo)| lifo.take()));
    let mut lifo_streak = 0;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        if lifo_streak < LIFO_LIMIT {
            if let Some(task) = take_lifo() {
                lifo_streak += 1;
                task.run(system.budget());
                continue;
            }
        } else if let Some(task) = take_lifo() {
            // Streak over: the slot's task waits its turn in the shared queue.
            shared.push_global(task);
        }
        lifo_streak = 0;
        let task = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if shared.stopping.load(Ordering::SeqCst) {
                    drop(queue);
                    LIFO.with(|slot| slot.borrow_mut().take());
                    return;
                }
                if let Some(task) = queue.tasks.pop_front() {
                    break task;
                }
                queue.sleepers += 1;
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.sleepers -= 1;
            }
        };
        task.run(system.budget());
    }
    // Drop a task left in the slot (it holds its actor).
    LIFO.with(|slot| slot.borrow_mut().take());
}
