//! The `Future` adapter: actors driven by any async executor.
//!
//! A [`FutureDriver`] owns a run queue. Its [`worker`](FutureDriver::worker) futures take
//! runnables from the queue and run them; a worker runs at most [`RUNS_PER_POLL`] actor runs
//! per poll, then wakes itself and returns `Pending`, so it shares its executor fairly. An idle
//! worker registers its waker and sleeps until an actor is scheduled. Spawn one worker per
//! thread you want actors to use: `tokio::spawn(driver.worker())`, `smol::spawn(...)`,
//! `futures::executor::block_on(...)`, or your own executor.
//!
//! While a worker is polled, an actor it runs that schedules another (a reply, the next hop)
//! puts it in the worker's LIFO slot, and the worker runs it next (as the thread pool does);
//! what is left in the slot when the poll returns goes to the shared queue.
//!
//! The run queue is crossbeam's lock-free `Injector` (a schedule is a push, a worker takes
//! with a steal). Idle workers' wakers are kept in the mailbox crate's [`IdleWakers`], under
//! a mutex that only idle workers and the schedules that wake them take: a schedule reads a
//! count of them first. Registering and scheduling are a Dekker pair, as in the thread pool's
//! `Sleepers`: the worker publishes its waker, then looks at the queue; the schedule pushes,
//! then looks at the count; a `SeqCst` fence on each side makes at least one of them see the
//! other, so no task is left queued with every worker idle (loom model
//! `mailbox/tests/loom_idle_wakers.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crossbeam_deque::Injector;

use super::lifo::{self, Driver as _};
use crate::actor::{Runnable, Schedule, System};
use crate::mailbox::chunk::ReleaseBatch;
use crate::mailbox::IdleWakers;

/// Actor runs a worker makes per poll before yielding to its executor.
pub const RUNS_PER_POLL: usize = 64;

struct Shared {
    queue: Injector<Runnable>,
    /// Idle workers' wakers, and the stop flag (the protocol and its loom model live in the
    /// mailbox crate).
    idle: IdleWakers<Waker>,
}

impl Shared {
    fn pop(&self) -> Option<Runnable> {
        lifo::steal(&self.queue)
    }

    /// Registers `waker` as an idle worker's, then looks at the queue: `true` if the worker
    /// may return `Pending` (no task, not stopped).
    fn register_idle(&self, waker: &Waker) -> bool {
        self.idle.idle_unless(waker, || !self.queue.is_empty())
    }
}

impl lifo::Driver for Shared {
    fn push_global(&self, task: Runnable) {
        self.queue.push(task);
        self.idle.notify_pushed();
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
            queue: Injector::new(),
            idle: IdleWakers::new(),
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
            carried: None,
        }
    }

    /// Makes every worker complete (after its current run). Scheduled actors stay queued.
    pub fn stop(&self) {
        self.shared.idle.stop();
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
        while self.shared.pop().is_some() {}
    }
}

/// A future that runs actors of a [`FutureDriver`]; completes when the driver is stopped.
pub struct Worker {
    shared: Arc<Shared>,
    system: System,
    /// The task left in the LIFO slot when the last poll used up its slice with nothing else
    /// queued: it goes back into the slot at the next poll (see `poll`).
    carried: Option<Runnable>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker dropped between polls gives its carried task to the others.
        if let Some(task) = self.carried.take() {
            self.shared.push_global(task);
        }
    }
}

impl Future for Worker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // The slot is per poll (`this` keeps the driver alive until `leave`); a worker polled
        // from inside an actor run of another driver puts that one's back after.
        let outer = lifo::enter_with(lifo::Owner::of(&this.shared), this.carried.take());
        // Letters' chunk releases are coalesced across this poll's runs (given back when the
        // batch ends, at the end of the poll).
        let batch = ReleaseBatch::begin();
        let result = this.runs(cx);
        drop(batch);
        if let Some(task) = lifo::leave(outer) {
            if result.is_pending() && this.shared.queue.is_empty() {
                // The poll used up its slice (a task is left in the slot only then) and woke
                // this worker, so it is polled again soon; nothing else is queued. Keep the
                // task for that poll rather than moving it through the shared queue to
                // whichever worker takes it first, with cold caches (a chain of hops would
                // change threads every `RUNS_PER_POLL` runs).
                this.carried = Some(task);
            } else {
                // Others wait, or the worker is done: the slot's task goes where any worker
                // can take it.
                this.shared.push_global(task);
            }
        }
        result
    }
}

impl Worker {
    /// Up to [`RUNS_PER_POLL`] runs, the LIFO slot first (see `lifo::take_in_turn`).
    fn runs(&self, cx: &mut Context<'_>) -> Poll<()> {
        let budget = self.system.budget();
        let mut lifo_streak = 0;
        for _ in 0..RUNS_PER_POLL {
            if self.shared.idle.is_stopped() {
                return Poll::Ready(());
            }
            if let Some(task) =
                lifo::take_in_turn(&mut lifo_streak, || !self.shared.queue.is_empty())
            {
                task.run(budget);
                continue;
            }
            match self.shared.pop() {
                Some(task) => {
                    task.run(budget);
                }
                // Idle: sleep until a schedule wakes us, unless a task came meanwhile.
                None => {
                    if self.shared.register_idle(cx.waker()) {
                        return Poll::Pending;
                    }
                }
            }
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
