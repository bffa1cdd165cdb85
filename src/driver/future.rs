//! The `Future` adapter: actors driven by any async executor.
//!
//! A [`FutureDriver`] owns a run queue. Its [`worker`](FutureDriver::worker) futures take
//! runnables from the queue and run them; a worker runs at most [`RUNS_PER_POLL`] actor runs
//! per poll, then wakes itself and returns `Pending`, so it shares its executor fairly. An idle
//! worker registers its waker and sleeps until an actor is scheduled. Spawn one worker per
//! thread you want actors to use: `tokio::spawn(driver.worker())`, `smol::spawn(...)`,
//! `futures::executor::block_on(...)`, or your own executor.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::actor::{Runnable, Schedule, System};

/// Actor runs a worker makes per poll before yielding to its executor.
pub const RUNS_PER_POLL: usize = 64;

struct State {
    queue: VecDeque<Runnable>,
    idle: Vec<Waker>,
}

struct Shared {
    state: Mutex<State>,
    stopped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Scheduler(Arc<Shared>);

impl Schedule for Scheduler {
    fn schedule(&self, task: Runnable) {
        let mut state = self.0.lock();
        state.queue.push_back(task);
        let wake = state.idle.pop();
        drop(state);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// Drives actors from futures that any executor polls.
///
/// ```
/// use airssys_rt::{Actor, Ctx, FutureDriver, Handler};
///
/// struct Echo;
/// impl Actor for Echo {}
/// impl Handler<u32> for Echo {
///     type Reply = u32;
///     fn handle(&mut self, n: u32, _: &mut Ctx<Self>) -> u32 { n + 1 }
/// }
///
/// let driver = FutureDriver::new();
/// let echo = driver.system().spawn(Echo).unwrap();
/// let reply = echo.ask(41);
/// // Any executor: here a plain `block_on` runs a worker until the reply is in.
/// let answer = airssys_rt::block_on_with(driver.worker(), reply);
/// assert_eq!(answer, Ok(42));
/// ```
pub struct FutureDriver {
    shared: Arc<Shared>,
    system: System,
}

impl FutureDriver {
    /// A driver with an empty run queue and no worker yet.
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                idle: Vec::new(),
            }),
            stopped: AtomicBool::new(false),
        });
        let system = System::new(Scheduler(shared.clone()));
        Self { shared, system }
    }

    /// The system whose actors this driver runs.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// A worker future: runs actors until [`stop`](Self::stop). Spawn as many as you want
    /// threads working (on a multi-threaded executor).
    pub fn worker(&self) -> Worker {
        Worker {
            shared: self.shared.clone(),
            system: self.system.clone(),
        }
    }

    /// Makes every worker complete (after its current run). Scheduled actors stay queued.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let idle = std::mem::take(&mut self.shared.lock().idle);
        for w in idle {
            w.wake();
        }
    }
}

impl Default for FutureDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FutureDriver {
    fn drop(&mut self) {
        self.stop();
        // Queued runnables hold their actors: drop them to break the cycle with the system.
        let left = std::mem::take(&mut self.shared.lock().queue);
        drop(left);
    }
}

/// A future that runs actors of a [`FutureDriver`]; completes when the driver is stopped.
pub struct Worker {
    shared: Arc<Shared>,
    system: System,
}

impl Future for Worker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let budget = self.system.budget();
        for _ in 0..RUNS_PER_POLL {
            if self.shared.stopped.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            let task = {
                let mut state = self.shared.lock();
                match state.queue.pop_front() {
                    Some(task) => task,
                    None => {
                        // Idle: sleep until a schedule wakes us. Registered under the same lock
                        // that schedules take, so no wake-up is lost.
                        if !state.idle.iter().any(|w| w.will_wake(cx.waker())) {
                            state.idle.push(cx.waker().clone());
                        }
                        return Poll::Pending;
                    }
                }
            };
            task.run(budget);
        }
        // Used our slice: let the executor run other tasks, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Runs `worker` and `until` on the current thread until `until` completes (a tiny
/// `block_on` for examples and tests; real programs use their executor).
pub fn block_on_with<T>(worker: Worker, until: impl Future<Output = T>) -> T {
    use std::task::Wake;

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut worker = std::pin::pin!(worker);
    let mut until = std::pin::pin!(until);
    loop {
        if let Poll::Ready(v) = until.as_mut().poll(&mut cx) {
            return v;
        }
        let _ = worker.as_mut().poll(&mut cx);
        if let Poll::Ready(v) = until.as_mut().poll(&mut cx) {
            return v;
        }
        // Every wake-up (a schedule, the reply, the worker's own yield) unparks us.
        std::thread::park();
    }
}

/// Spawns `workers` worker futures on a tokio runtime and returns the driver.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// let driver = airssys_rt::spawn_on_tokio(rt.handle(), 2);
/// # drop(driver); }
/// ```
#[cfg(feature = "tokio")]
pub fn spawn_on_tokio(handle: &tokio::runtime::Handle, workers: usize) -> FutureDriver {
    let driver = FutureDriver::new();
    for _ in 0..workers.max(1) {
        handle.spawn(driver.worker());
    }
    driver
}

/// Spawns `workers` worker futures on a smol executor and returns the driver.
#[cfg(feature = "smol")]
pub fn spawn_on_smol(executor: &smol::Executor<'static>, workers: usize) -> FutureDriver {
    let driver = FutureDriver::new();
    for _ in 0..workers.max(1) {
        executor.spawn(driver.worker()).detach();
    }
    driver
}
