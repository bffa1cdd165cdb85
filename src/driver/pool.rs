//! The built-in thread pool: no async runtime needed.
//!
//! Tokio's scheduler, in small: per worker, a LIFO slot and a local FIFO queue, plus one shared
//! FIFO queue, all lock-free (crossbeam's `Worker`/`Stealer` deques and `Injector`).
//!
//! * An actor scheduled by the actor a worker is running (a reply, the next hop of a ring) goes
//!   to that worker's **LIFO slot** and runs next, with its data still in cache (tokio's
//!   LIFO-slot idea, `driver/lifo.rs`). The slot is used at most 16 times in a row while other
//!   tasks wait, so that they are not starved; its task then goes behind them (the local queue
//!   if they are there, else the shared queue). Only its worker runs the slot's task: a run
//!   that does not return holds it up (as in tokio), unless it blocks on a
//!   [`Reply`](crate::Reply), which hands it to the shared queue first.
//! * What the slot displaces goes to the worker's **local queue**: a push and a pop there are
//!   the worker's own (no contended line), and idle workers may steal half of it (below).
//! * A schedule from outside the pool's workers goes to the **shared queue**. A worker takes
//!   from it when its local queue is empty (a batch at once), and first, every
//!   [`GLOBAL_INTERVAL`] tasks, so that it is never starved by local work.
//!
//! **Locality before balance.** Tasks in the shared queue are anybody's. A worker takes from
//! another worker's local queue only when that pays:
//!
//! * the owner's runs are coarse: its recent mean run time is [`COARSE_RUN`] or more, so a run
//!   costs more than moving it (a producer feeding a consumer in batches runs on two cores);
//! * or its backlog is long: its length times that mean is [`MIGRATION_COST`] or more;
//! * or the owner is blocked inside a run (a handler waiting on a [`Reply`](crate::Reply));
//! * or the owner has finished no run for [`WATCH`] (a long handler, or one blocked on
//!   something the pool is not told about).
//!
//! A short backlog of fine-grained runs stays where its actors' cells and letters are in
//! cache: moving it would cost the thief's wake-up and a transfer between cores for each line
//! it touches, for work its owner is about to do. (Linux's scheduler has the same rule: a task
//! that ran within `sched_migration_cost` is cache-hot and is not moved for balance.) A message
//! storm among actors that each run for a few hundred nanoseconds (chameneos' mall and its
//! clients) so stays on one core instead of moving its lines between two on every message:
//! on the comparison harness, that halved chameneos' time per meeting.
//!
//! A worker with nothing to do looks again for a little while ([`SPINS`] yields by default,
//! [`ThreadPoolBuilder::idle_spins`]), then sleeps
//! on a condition variable. If another worker's queue holds tasks it may not take yet, it
//! **watches** instead: it sleeps for at most [`WATCH`] and looks again (each further watch in
//! a row twice as long, up to [`WATCH_MAX`]), so a task queued behind a run that does not
//! return is taken within about two milliseconds at worst, and within about 100 µs if the
//! watcher has just started watching. While it looks it
//! counts as *searching*, and a schedule wakes no one while some worker searches (it will find
//! the task); otherwise a schedule wakes a sleeper if one is asleep. A woken worker counts as
//! searching from the moment its wake-up is handed out, so a burst of schedules wakes one
//! sleeper, not all of them: the rest are woken one at a time, each by the previous one when it
//! finds work (a searcher that finds work and was the last one searching wakes a sleeper for
//! the rest: tokio's rules). A push onto an empty local queue that no one may take yet wakes a
//! sleeper only if nobody searches or watches (so that somebody watches). No task is left in
//! a queue with every other worker asleep and not watching (a batch moved into a local queue
//! is announced as a push is): the protocol, its argument and its loom models are the
//! mailbox crate's [`Sleepers`](crate::mailbox::Sleepers).
//! One idle worker watches at a time (the others sleep), so a backlog of fine-grained runs on
//! one worker costs the rest of the pool one wake-up per watch, however many cores it has;
//! the watch is handed on when its watcher finds other work (`Sleepers`' one-watcher rule).

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Stealer, Worker};
use crossbeam_utils::CachePadded;

use super::lifo;
use crate::actor::{Runnable, Schedule, System};
use crate::mailbox::chunk::ReleaseBatch;
use crate::mailbox::{Sleepers, Slept};

/// How many times an idle worker yields and looks for work again before it sleeps: the
/// default of [`ThreadPoolBuilder::idle_spins`].
const SPINS: u32 = 64;

/// A backlog that its owner works through faster than this stays with it: moving it to another
/// worker (that worker's wake-up, and a cache miss for each line of the moved actors and their
/// letters) would cost about as much as it saves. The default of
/// [`ThreadPoolBuilder::migration_cost`].
const MIGRATION_COST: Duration = Duration::from_micros(50);

/// Runs this long or longer are worth moving one at a time: a run costs more than the cache
/// misses of moving it (some tens of lines, each a transfer between cores), so an idle worker
/// that takes it gains. (A producer feeding a consumer in batches runs on two cores so.)
const COARSE_RUN: Duration = Duration::from_micros(1);

/// How long an idle worker first sleeps before it looks again at a queue it could not take
/// from yet; a worker that finished no run for this long while tasks wait in its queue gives
/// them up.
const WATCH: Duration = Duration::from_micros(50);

/// Each further watch in a row lasts twice as long as the last, up to this: a worker watching
/// a busy one that keeps making progress costs a wake-up per millisecond, not one per
/// [`WATCH`].
const WATCH_MAX: Duration = Duration::from_millis(1);

/// A worker measures its mean run time over this many runs.
const SAMPLE_RUNS: u32 = 64;

/// A worker looks at the shared queue before its own local queue once every this many tasks
/// (tokio's default), so that schedules from outside the pool are not starved by local work.
const GLOBAL_INTERVAL: u32 = 61;

struct Shared {
    /// Schedules from outside the workers.
    tasks: Injector<Runnable>,
    /// The workers' local queues, for stealing.
    stealers: Vec<Stealer<Runnable>>,
    /// What each worker publishes about its progress, for the others' stealing decisions.
    loads: Vec<CachePadded<Load>>,
    /// Searching and sleeping workers (the protocol and its loom model live in the mailbox
    /// crate). On lines of its own: idle workers write its counts, and `migration_ns` (read
    /// on every local push) had landed on its line. (No difference measured on 2 cores:
    /// counting, ring and ping-pong within their noise in A/B runs.)
    sleepers: CachePadded<Sleepers>,
    /// The pool's [`migration cost`](ThreadPoolBuilder::migration_cost), in nanoseconds.
    migration_ns: u64,
    /// The pool's [`idle spins`](ThreadPoolBuilder::idle_spins).
    spins: u32,
}

/// What a worker publishes about itself (each on its own cache line). Hints only: a stale
/// value makes a steal come early or late, never lose a task (`Sleepers` sees to that).
#[derive(Default)]
struct Load {
    /// Runs the worker finished (stored by it alone).
    runs: AtomicU64,
    /// Its recent mean run time, in nanoseconds (0 until measured).
    run_ns: AtomicU64,
    /// `runs + 1` as it was when the worker blocked inside a run (see [`before_blocking`]):
    /// while `runs` has not moved past it, that run is still blocked. (No store to clear it at
    /// the end of every run.)
    blocked_in: AtomicU64,
}

impl Load {
    /// Whether the worker is blocked inside its current run.
    fn is_blocked(&self) -> bool {
        self.blocked_in.load(Relaxed) == self.runs.load(Relaxed) + 1
    }
}

/// What a worker last saw of another's progress: its run count, and since when.
#[derive(Clone, Copy)]
struct Seen {
    runs: u64,
    since: Option<Instant>,
}

impl Seen {
    const NOTHING: Seen = Seen {
        runs: 0,
        since: None,
    };
}

/// The owner measures its runs: it counts them (published for the stuck rule) and their mean
/// length (published for the backlog estimate) over samples of [`SAMPLE_RUNS`] runs. A sample
/// that contains an idle spell is not published (idle time is not run time), but the busy
/// spell it started with is, if it ran at least [`MIN_SAMPLE_RUNS`] runs: so a worker that
/// idles every few dozen runs still publishes a mean. The clock is read at most twice per
/// sample (a read costs ~40 ns here: once per idle spell would cost a worker that idles
/// between messages that much per message).
struct RunMeter {
    runs: u64,
    /// `runs` when the sample started (samples end on multiples of [`SAMPLE_RUNS`], so a run
    /// pays one test, not a second counter).
    sample_first: u64,
    sample_start: Instant,
    /// The worker went idle since `sample_start`.
    went_idle: bool,
}

/// A busy spell shorter than this many runs publishes no mean (too few to tell).
const MIN_SAMPLE_RUNS: u64 = 8;

impl RunMeter {
    fn new() -> Self {
        Self {
            runs: 0,
            sample_first: 0,
            sample_start: Instant::now(),
            went_idle: false,
        }
    }

    /// After each run.
    #[inline]
    fn ran(&mut self, load: &Load) {
        self.runs += 1;
        load.runs.store(self.runs, Relaxed);
        if self.runs.is_multiple_of(u64::from(SAMPLE_RUNS)) {
            self.end_sample(load);
        }
    }

    /// At the end of a sample: publishes its mean run time if it had no idle spell, and
    /// starts the next.
    #[cold]
    fn end_sample(&mut self, load: &Load) {
        let now = Instant::now();
        if !self.went_idle {
            self.publish(load, now);
        }
        self.sample_start = now;
        self.sample_first = self.runs;
        self.went_idle = false;
    }

    /// The worker found nothing to do: the busy spell that started the sample is published
    /// if it is long enough to tell; the rest of the sample is not.
    fn going_idle(&mut self, load: &Load) {
        if !self.went_idle && self.runs - self.sample_first >= MIN_SAMPLE_RUNS {
            self.publish(load, Instant::now());
        }
        self.went_idle = true;
    }

    fn publish(&self, load: &Load, now: Instant) {
        let runs = u128::from((self.runs - self.sample_first).max(1));
        let ns = now.duration_since(self.sample_start).as_nanos() / runs;
        load.run_ns
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Relaxed);
    }
}

/// Whether `queued` tasks of `run_ns` each are worth moving to another worker, where moving
/// costs `migration_ns` (a cost of zero: always).
fn worth_moving(queued: usize, run_ns: u64, migration_ns: u64) -> bool {
    run_ns >= COARSE_RUN.as_nanos() as u64 || (queued as u64).saturating_mul(run_ns) >= migration_ns
}

thread_local! {
    /// The pool, the local queue and the index of the pool worker running on this thread
    /// (null elsewhere). Set by `worker` for its whole life, to a queue on its own stack.
    static LOCAL: Cell<(*const Shared, *const Worker<Runnable>, usize)> =
        const { Cell::new((ptr::null(), ptr::null(), 0)) };
}

/// Before the current thread blocks inside a run: if it is a pool worker, its local queue is
/// anybody's until the run ends, and a sleeper is woken to take it.
pub(super) fn before_blocking() {
    let (pool, local, me) = LOCAL.with(Cell::get);
    if pool.is_null() || local.is_null() {
        return;
    }
    // SAFETY: `LOCAL` names a pool and a queue only while a worker of that pool runs on this
    // thread, and the worker keeps both alive for that whole time (see `worker`); `Worker` is
    // used from its own thread only (this one).
    let (pool, local) = unsafe { (&*pool, &*local) };
    let load = &pool.loads[me];
    // Only this worker stores `runs`, and it is inside a run: `runs + 1` names this run.
    load.blocked_in.store(load.runs.load(Relaxed) + 1, Relaxed);
    if !local.is_empty() {
        pool.sleepers.notify_pushed();
    }
}

impl Shared {
    fn pop_global(&self) -> Option<Runnable> {
        lifo::steal(&self.tasks)
    }

    /// The other workers' indices, from `me`'s neighbour on.
    fn others(&self, me: usize) -> impl Iterator<Item = usize> {
        let n = self.stealers.len();
        (1..n).map(move |k| (me + k) % n)
    }

    /// Whether a worker may take from worker `v`'s queue now (see the module docs): it holds
    /// tasks, and its owner is blocked, or they would take it [`MIGRATION_COST`] or more, or it
    /// has finished no run for [`WATCH`] (as `seen`, this worker's memory of it, tells).
    /// (Atomic loads only, as `Sleepers::sleep_or_watch` requires of its looks.)
    fn may_steal(&self, v: usize, seen: &Cell<Seen>) -> bool {
        let queued = self.stealers[v].len();
        if queued == 0 {
            seen.set(Seen::NOTHING);
            return false;
        }
        let load = &self.loads[v];
        if load.is_blocked() || worth_moving(queued, load.run_ns.load(Relaxed), self.migration_ns) {
            return true;
        }
        let runs = load.runs.load(Relaxed);
        let now = Instant::now();
        match seen.get() {
            Seen {
                runs: r,
                since: Some(since),
            } if r == runs => now.duration_since(since) >= WATCH,
            _ => {
                seen.set(Seen {
                    runs,
                    since: Some(now),
                });
                false
            }
        }
    }

    /// Whether worker `me` has anything to take: the shared queue, or a queue it may steal
    /// from.
    fn has_work(&self, me: usize, seen: &[Cell<Seen>]) -> bool {
        !self.tasks.is_empty() || self.others(me).any(|v| self.may_steal(v, &seen[v]))
    }

    /// Whether another worker's queue holds tasks (that `me` may not take yet).
    fn queued_elsewhere(&self, me: usize) -> bool {
        self.others(me).any(|v| !self.stealers[v].is_empty())
    }

    /// The next task for worker `me` (whose LIFO slot is empty or out of turn): its local
    /// queue, then the shared queue (a batch moves to the local queue), then another worker's
    /// local queue if [`may_steal`](Self::may_steal) (half of it moves). Every
    /// [`GLOBAL_INTERVAL`] ticks the shared queue comes first.
    fn next_task(
        &self,
        local: &Worker<Runnable>,
        me: usize,
        tick: u32,
        seen: &[Cell<Seen>],
    ) -> Option<Runnable> {
        if tick.is_multiple_of(GLOBAL_INTERVAL) {
            if let Some(task) = self.pop_global() {
                return Some(task);
            }
        }
        if let Some(task) = local.pop() {
            return Some(task);
        }
        let task = lifo::retry(|| self.tasks.steal_batch_and_pop(local)).or_else(|| {
            self.others(me)
                .filter(|&v| self.may_steal(v, &seen[v]))
                .find_map(|v| lifo::retry(|| self.stealers[v].steal_batch_and_pop(local)))
        })?;
        // A batch moved into the (empty) local queue: announce it as a push would. While it
        // moved, both queues could look empty to a worker on its way to sleep.
        if !local.is_empty() {
            self.announce_queued(local, me, true);
        }
        Some(task)
    }

    /// After tasks were queued in worker `me`'s `local` queue (which was empty before if
    /// `was_empty`): wakes a worker to take them if they are worth moving, else makes sure
    /// somebody watches the queue (see the module docs).
    fn announce_queued(&self, local: &Worker<Runnable>, me: usize, was_empty: bool) {
        if worth_moving(
            local.len(),
            self.loads[me].run_ns.load(Relaxed),
            self.migration_ns,
        ) {
            // Others may take them now: wake one if nobody is searching (as for the shared
            // queue).
            self.sleepers.notify_pushed();
        } else if was_empty {
            // Ours to run, unless this run does not return: make sure somebody watches.
            self.sleepers.notify_queued();
        }
    }

    /// Worker `me` found nothing to do: it looks again for a little while (counted as
    /// searching, so that schedules meanwhile wake nobody), then sleeps, or watches the queues
    /// it may not take from yet (and looks at them again each time the watch ends).
    fn idle(&self, me: usize, seen: &[Cell<Seen>]) {
        let has_work = || self.has_work(me, seen);
        let mut watch = WATCH;
        self.sleepers.start_searching();
        let mut spin = true;
        loop {
            if spin {
                for _ in 0..self.spins {
                    if has_work() || self.sleepers.is_stopping() {
                        break;
                    }
                    thread::yield_now();
                }
            }
            if has_work() {
                // As the last searcher, this wakes a sleeper for whatever it does not take:
                // after a burst, the wake-ups spread one worker at a time.
                self.sleepers.stop_searching_with_work();
                return;
            }
            // Woken or back from a watch, this worker is searching again (`Slept`).
            match self
                .sleepers
                .sleep_or_watch(has_work, || self.queued_elsewhere(me), watch)
            {
                Slept::Watched => {
                    watch = (watch * 2).min(WATCH_MAX);
                    spin = false;
                }
                Slept::Woken => {
                    watch = WATCH;
                    spin = true;
                }
                Slept::FoundWork => return,
            }
        }
    }
}

impl lifo::Driver for Shared {
    fn push_global(&self, task: Runnable) {
        self.tasks.push(task);
        self.sleepers.notify_pushed();
    }

    fn push_displaced(&self, task: Runnable) {
        let (pool, local, me) = LOCAL.with(Cell::get);
        if !ptr::eq(pool, self) || local.is_null() {
            return self.push_global(task);
        }
        // SAFETY: `LOCAL` names this pool and a queue only while a worker of this pool runs on
        // this thread, and that worker's queue lives on its stack for that whole time; `Worker`
        // is used from its own thread only (this one).
        let local = unsafe { &*local };
        let was_empty = local.is_empty();
        local.push(task);
        self.announce_queued(local, me, was_empty);
    }

    fn requeue(&self, task: Runnable) {
        // Behind the tasks that waited: the worker's own queue if they are there (it stays in
        // this worker's cache), else the shared queue, behind the schedules from outside
        // (which the worker takes before its own queue's next task only every
        // `GLOBAL_INTERVAL` tasks, so a local requeue would keep them waiting).
        let (pool, local, _) = LOCAL.with(Cell::get);
        // SAFETY: as in `push_displaced`.
        if ptr::eq(pool, self) && !local.is_null() && !unsafe { &*local }.is_empty() {
            self.push_displaced(task);
        } else {
            self.push_global(task);
        }
    }
}

/// Sets `LOCAL` for a worker's life, and puts back what was there.
struct LocalGuard((*const Shared, *const Worker<Runnable>, usize));

impl LocalGuard {
    fn set(shared: &Shared, local: &Worker<Runnable>, me: usize) -> Self {
        LocalGuard(LOCAL.with(|l| l.replace((shared, local, me))))
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
        // to the worker's local queue; elsewhere, to the shared queue.
        lifo::schedule(&self.0, task);
    }
}

/// Runs actors on a fixed set of threads. Idle workers look for work briefly, then sleep on a
/// condition variable. Dropping the pool stops its workers; actors still scheduled do not run
/// again.
///
/// Work stays on the worker that made it unless moving it pays: an idle worker takes another's
/// queued actors when their runs are long (a microsecond or more each), when there are enough
/// of them to keep it busy for 50 µs, or when their worker is blocked or has been inside one
/// run for 50 µs (as an idle worker that watches it sees, waking every 50 µs to 1 ms).
/// Fine-grained message exchanges so keep their data in one core's cache; a handler that runs
/// long does not hold up the actors queued behind it for more than a millisecond or two, and
/// one that blocks on a [`Reply`](crate::Reply) not at all. (The one actor in its worker's LIFO
/// slot, the next to run there, waits for the run in front of it whatever it does, as in
/// tokio, unless that run blocks on a [`Reply`](crate::Reply).) The module docs of
/// `driver/pool.rs` give the rule and its reasons; [`ThreadPoolBuilder::migration_cost`] sets
/// the backlog that is worth moving, and [`ThreadPool::builder`] the workers' names, stack
/// size and start and stop hooks.
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
    /// A pool of `threads` workers (at least one), with the default options (see
    /// [`builder`](Self::builder) for the others).
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread, as [`std::thread::spawn`] does;
    /// [`ThreadPoolBuilder::build`] returns that error instead.
    pub fn new(threads: usize) -> Self {
        Self::builder()
            .threads(threads)
            .build()
            .expect("start the thread pool's workers")
    }

    /// A pool with one worker per available core.
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn with_available_parallelism() -> Self {
        Self::builder()
            .build()
            .expect("start the thread pool's workers")
    }

    /// Options for a pool: its number of workers, their names and stack size, hooks to run on
    /// each worker thread, and when idle workers take another's queued actors.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use airssys_rt::ThreadPool;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let counter = started.clone();
    /// let pool = ThreadPool::builder()
    ///     .threads(2)
    ///     .thread_name("agent-worker")
    ///     .stack_size(512 * 1024)
    ///     .on_thread_start(move |_worker| {
    ///         counter.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .expect("threads start");
    /// pool.shutdown();
    /// assert_eq!(started.load(Ordering::SeqCst), 2);
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    fn start(options: ThreadPoolBuilder) -> std::io::Result<Self> {
        let threads = options.threads.max(1);
        let locals: Vec<Worker<Runnable>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(Shared {
            tasks: Injector::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            loads: locals.iter().map(|_| CachePadded::default()).collect(),
            sleepers: CachePadded::new(Sleepers::new()),
            migration_ns: u64::try_from(options.migration_cost.as_nanos()).unwrap_or(u64::MAX),
            spins: options.idle_spins,
        });
        let system = System::new(Scheduler(shared.clone()));
        let mut pool = Self {
            shared,
            workers: Vec::with_capacity(threads),
            system,
        };
        let hooks = Arc::new(Hooks {
            on_start: options.on_start,
            on_stop: options.on_stop,
        });
        for (i, local) in locals.into_iter().enumerate() {
            let (shared, system, hooks) = (pool.shared.clone(), pool.system.clone(), hooks.clone());
            let mut builder = thread::Builder::new().name(format!("{}-{i}", options.name));
            if let Some(bytes) = options.stack_size {
                builder = builder.stack_size(bytes);
            }
            let spawned = builder.spawn(move || {
                run_hook(hooks.on_start.as_ref(), i);
                worker(&shared, &system, &local, i);
                run_hook(hooks.on_stop.as_ref(), i);
            });
            // On an error, the pool's drop stops (and joins) the workers already started.
            pool.workers.push(spawned?);
        }
        Ok(pool)
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

/// A hook run on each worker thread, given the worker's index.
type Hook = Arc<dyn Fn(usize) + Send + Sync>;

/// The hooks of a pool's workers.
struct Hooks {
    on_start: Option<Hook>,
    on_stop: Option<Hook>,
}

/// Runs `hook` (if any) for worker `i`. A panic in it is caught: the panic hook has reported
/// it, and the worker goes on (a pool with a worker short would be a silent loss of capacity,
/// or of every worker).
fn run_hook(hook: Option<&Hook>, i: usize) {
    if let Some(hook) = hook {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(i)));
    }
}

/// Options for a [`ThreadPool`], from [`ThreadPool::builder`].
///
/// The defaults: one worker per available core, named `airssys-worker-N`, the standard
/// library's stack size, no hooks, a [migration cost](Self::migration_cost) of 50 µs and 64
/// [idle spins](Self::idle_spins).
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ThreadPoolBuilder {
    threads: usize,
    name: String,
    stack_size: Option<usize>,
    migration_cost: Duration,
    idle_spins: u32,
    on_start: Option<Hook>,
    on_stop: Option<Hook>,
}

impl ThreadPoolBuilder {
    fn new() -> Self {
        Self {
            threads: thread::available_parallelism().map_or(1, |n| n.get()),
            name: "airssys-worker".into(),
            stack_size: None,
            migration_cost: MIGRATION_COST,
            idle_spins: SPINS,
            on_start: None,
            on_stop: None,
        }
    }

    /// How many worker threads (at least one; default: one per available core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The workers' thread names: `{prefix}-{index}` (default prefix `airssys-worker`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// The workers' stack size in bytes (default: the standard library's, see
    /// [`std::thread::Builder::stack_size`]). Handlers run on it, so deep recursion in a
    /// handler needs it larger.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// When an idle worker may take actors queued at another worker (whose runs are short,
    /// and which is neither blocked nor stuck in one run): when they would take their own
    /// worker this long or longer to get through (queue length times its recent mean run
    /// time). Default 50 µs.
    ///
    /// A shorter cost spreads fine-grained work over more cores sooner, at the price of
    /// moving actors' data between caches; [`Duration::ZERO`] takes whatever is queued, as
    /// tokio's and Go's schedulers do. Actors whose runs take a microsecond or more are always
    /// worth moving, and a worker blocked on a [`Reply`](crate::Reply) or inside one run for
    /// 50 µs gives up its queue whatever this cost (see the [`ThreadPool`] docs).
    pub fn migration_cost(mut self, cost: Duration) -> Self {
        self.migration_cost = cost;
        self
    }

    /// How many times a worker that ran out of work yields its core and looks again before it
    /// sleeps (default 64: some tens of microseconds on an idle core).
    ///
    /// Looking again catches the next task without a wake-up: an `ask` from a thread outside
    /// the pool, one after another, took 2.8 µs a round trip with the default and 13.7 µs
    /// with `0` (2 cores; `cargo bench --bench actors -- ask_from_outside`). But on a machine
    /// with more runnable threads than cores, each yield hands the core to another thread and
    /// takes it back, and fewer spins leave those threads alone: with `0`, spawning from a
    /// thread outside the pool and a one-producer fan-in ran about 15% faster and Savina big
    /// about 8% (A/B runs of the comparison harness, 2 cores, 2 workers and the producing
    /// threads).
    pub fn idle_spins(mut self, spins: u32) -> Self {
        self.idle_spins = spins;
        self
    }

    /// Runs `hook` on each worker thread when it starts, before it runs any actor, with the
    /// worker's index (`0..threads`): to pin it to a core, set its priority, or start
    /// per-thread instrumentation. A panic in the hook is caught (and reported by the panic
    /// hook); the worker still starts.
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` on each worker thread when it stops (after its last run), with the
    /// worker's index. A panic in the hook is caught (and reported by the panic hook).
    pub fn on_thread_stop(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Arc::new(hook));
        self
    }

    /// Starts the pool. Fails if the operating system cannot start a worker thread (the
    /// workers already started are stopped again).
    pub fn build(self) -> std::io::Result<ThreadPool> {
        ThreadPool::start(self)
    }
}

impl std::fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("threads", &self.threads)
            .field("thread_name", &self.name)
            .field("stack_size", &self.stack_size)
            .field("migration_cost", &self.migration_cost)
            .field("idle_spins", &self.idle_spins)
            .field("on_thread_start", &self.on_start.is_some())
            .field("on_thread_stop", &self.on_stop.is_some())
            .finish()
    }
}

fn worker(shared: &Arc<Shared>, system: &System, local: &Worker<Runnable>, me: usize) {
    // The worker keeps `shared` alive until `leave`, at the end of this function, and `local`
    // until it returns (tasks left in it are dropped with it, by the caller).
    let outer = lifo::enter(lifo::Owner::of(shared));
    let local_guard = LocalGuard::set(shared, local, me);
    // Letters' chunk releases are coalesced across the runs of a busy streak, not only within
    // one run (a ping-pong's letters come from one chunk: one `fetch_sub` for many hops). At
    // most two chunks are held back, and they are given back before the worker goes looking.
    let _batch = ReleaseBatch::begin();
    let load = &shared.loads[me];
    let mut meter = RunMeter::new();
    let seen: Vec<Cell<Seen>> = shared
        .stealers
        .iter()
        .map(|_| Cell::new(Seen::NOTHING))
        .collect();
    let mut lifo_streak = 0;
    let mut tick: u32 = 0;
    loop {
        if shared.sleepers.is_stopping() {
            break;
        }
        let others_wait = || !local.is_empty() || !shared.tasks.is_empty();
        if let Some(task) = lifo::take_in_turn(&mut lifo_streak, others_wait) {
            task.run(system.budget());
            meter.ran(load);
            continue;
        }
        tick = tick.wrapping_add(1);
        let Some(task) = shared.next_task(local, me, tick, &seen) else {
            ReleaseBatch::flush();
            meter.going_idle(load);
            shared.idle(me, &seen);
            continue;
        };
        task.run(system.budget());
        meter.ran(load);
    }
    drop(local_guard);
    // Drop a task left in the slot (it holds its actor).
    drop(lifo::leave(outer));
}
