//! The built-in thread pool: no async runtime needed.
//!
//! One shared FIFO queue (crossbeam's lock-free `Injector`: a schedule from any thread is a
//! push, a worker takes with a steal, nobody waits on a lock) plus, per worker, a LIFO slot:
//! an actor scheduled by the actor a worker is running (a reply, the next hop of a ring) runs
//! next on the same worker, with its data still in cache and no trip through the shared queue
//! (tokio's LIFO-slot idea). The slot is used at most [`LIFO_LIMIT`] times in a row, so that
//! the shared queue is not starved.
//!
//! A worker with nothing to do looks again for a little while ([`SPINS`] yields), then sleeps
//! on a condition variable. While it looks it counts as *searching*, and a schedule wakes no
//! one while some worker searches (it will find the task); otherwise a schedule wakes a
//! sleeper only if one is asleep and not already being woken, so a burst of schedules costs
//! one wake-up. A searcher that finds work and was the last one searching wakes a sleeper for
//! the rest (tokio's rule). The sleep protocol is a Dekker pair: the sleeper publishes itself
//! (and stops searching), then looks at the queue; the scheduler pushes, then looks for
//! searchers and sleepers; a `SeqCst` fence on each side makes at least one of them see the
//! other, so no task is left in the queue with every worker asleep.

use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use crossbeam_deque::{Injector, Steal};

use crate::actor::{Runnable, Schedule, System};

/// How many times in a row a worker may take its LIFO slot before looking at the shared queue.
const LIFO_LIMIT: u32 = 16;

/// How many times an idle worker yields and looks at the shared queue again before it sleeps.
const SPINS: u32 = 64;

/// Who sleeps, under `Shared::sleep`.
struct Sleep {
    /// Workers waiting on `ready`.
    sleepers: usize,
    /// Wake-ups sent and not yet taken by a sleeper.
    notified: usize,
}

struct Shared {
    tasks: Injector<Runnable>,
    sleep: Mutex<Sleep>,
    /// `sleepers - notified`: sleepers nobody is waking yet (read without the lock).
    idle: AtomicUsize,
    /// Workers looking for work (in their [`SPINS`] loop): a schedule does not wake a sleeper
    /// while one of them is looking, as it will find the task (tokio's "searching" workers).
    searching: AtomicUsize,
    ready: Condvar,
    stopping: AtomicBool,
}

impl Shared {
    fn push_global(&self, task: Runnable) {
        self.tasks.push(task);
        // Dekker with `sleep_unless_work`: the push, then the look at searchers and sleepers.
        fence(Ordering::SeqCst);
        if self.searching.load(Ordering::Relaxed) == 0 {
            self.wake_a_sleeper();
        }
    }

    /// A searching worker found work. Schedules skipped waking anyone while it searched; if it
    /// was the last searcher, it wakes a sleeper for whatever it will not take itself.
    fn stop_searching_with_work(&self) {
        if self.searching.fetch_sub(1, Ordering::Relaxed) == 1 {
            // Dekker with `sleep_unless_work` (as in `push_global`): a sleeper either is seen
            // here or sees in its last look every task whose schedule saw us searching.
            fence(Ordering::SeqCst);
            self.wake_a_sleeper();
        }
    }

    /// Wakes one sleeper that nobody is waking yet, if there is one.
    fn wake_a_sleeper(&self) {
        if self.idle.load(Ordering::Relaxed) > 0 {
            let mut sleep = self.lock_sleep();
            if sleep.sleepers > sleep.notified {
                sleep.notified += 1;
                self.idle
                    .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
                drop(sleep);
                self.ready.notify_one();
            }
        }
    }

    fn lock_sleep(&self) -> std::sync::MutexGuard<'_, Sleep> {
        self.sleep.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pop_global(&self) -> Option<Runnable> {
        loop {
            match self.tasks.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// Sleeps until a schedule wakes this worker, unless there is work (or a stop) already.
    /// The caller is counted in `searching`; this call stops counting it.
    fn sleep_unless_work(&self) {
        let mut sleep = self.lock_sleep();
        sleep.sleepers += 1;
        self.idle
            .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
        // Published as a sleeper first, then no longer searching: a schedule that sees either
        // change before the fence below wakes a sleeper.
        self.searching.fetch_sub(1, Ordering::Relaxed);
        // Dekker with `push_global`: published as a sleeper, then the look at the queue.
        fence(Ordering::SeqCst);
        if self.tasks.is_empty() && !self.stopping.load(Ordering::SeqCst) {
            loop {
                sleep = self
                    .ready
                    .wait(sleep)
                    .unwrap_or_else(PoisonError::into_inner);
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
        self.idle
            .store(sleep.sleepers - sleep.notified, Ordering::Relaxed);
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
            sleep: Mutex::new(Sleep {
                sleepers: 0,
                notified: 0,
            }),
            idle: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
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
        // Under the lock: a worker between its look at `stopping` and its wait cannot miss it.
        drop(self.shared.lock_sleep());
        self.shared.ready.notify_all();
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
        let task = match shared.pop_global() {
            Some(task) => task,
            None => {
                // Nothing now: look again for a little while (counted as searching, so that
                // schedules meanwhile wake nobody), then sleep.
                shared.searching.fetch_add(1, Ordering::Relaxed);
                for _ in 0..SPINS {
                    if !shared.tasks.is_empty() || shared.stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    thread::yield_now();
                }
                if shared.tasks.is_empty() {
                    shared.sleep_unless_work();
                } else {
                    shared.stop_searching_with_work();
                }
                continue;
            }
        };
        task.run(system.budget());
    }
    // Drop a task left in the slot (it holds its actor).
    LIFO.with(|slot| slot.borrow_mut().take());
}
