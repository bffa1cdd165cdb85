//! A deterministic single-threaded driver for tests (and for programs that want every actor on
//! one thread).
//!
//! # The run queue
//!
//! One thread steps at a time (the *stepping* thread; others wait their turn). What the actors
//! schedule while that thread runs them goes to a **local** queue that only the stepping thread
//! touches: no lock and no atomic read-modify-write per schedule or per step. Schedules from
//! anywhere else (another thread, a timer fired by [`ManualDriver::advance`], a `tell` from the
//! test between steps) go to a **remote** queue behind a mutex, with a flag the next step reads;
//! that step moves them to the back of the local queue. Both preserve schedule order, so the
//! FIFO order (and a seeded order) is what it was with one locked queue.

use core::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::actor::{Runnable, Schedule, System};
use crate::mailbox::chunk::ReleaseBatch;
use crate::timer::Timers;

struct Queue {
    /// Scheduled from the stepping thread, inside a step. Touched only by the thread that holds
    /// `stepping` (see [`Session`]), in short borrows that never span a run.
    local: UnsafeCell<Local>,
    /// Scheduled from anywhere else.
    remote: Mutex<VecDeque<Runnable>>,
    /// `remote` may be non-empty (set after a push, under its lock).
    has_remote: AtomicBool,
    /// A thread is stepping (it owns `local`).
    stepping: AtomicBool,
}

struct Local {
    tasks: VecDeque<Runnable>,
    /// `None`: first scheduled, first run.
    rng: Option<u64>,
}

// SAFETY: `local` is only accessed by the thread that holds `stepping` (an Acquire swap to take
// it, a Release store to give it back, so one holder's accesses happen-before the next's), and
// by `Drop` through `&mut`. `Runnable` is `Send`. Everything else is `Sync` on its own.
unsafe impl Sync for Queue {}

thread_local! {
    /// The queue this thread is stepping, if any (null otherwise).
    static STEPPING: Cell<*const Queue> = const { Cell::new(core::ptr::null()) };
}

impl Queue {
    /// Whether the current thread is stepping this queue.
    fn stepped_here(&self) -> bool {
        STEPPING.with(|s| core::ptr::eq(s.get(), self))
    }

    /// Runs `f` with the local queue.
    ///
    /// # Safety
    ///
    /// The current thread must hold `stepping` (be inside a [`Session`] of this queue), and `f`
    /// must not reach this queue again (it never runs an actor).
    unsafe fn with_local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        // SAFETY: per this function's contract, only this thread touches `local` now, and no
        // other borrow of it is live (borrows never span a run, and `f` does not re-enter).
        f(unsafe { &mut *self.local.get() })
    }

    fn lock_remote(&self) -> std::sync::MutexGuard<'_, VecDeque<Runnable>> {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right to step a queue, held by one thread at a time (re-entered freely by that thread).
struct Session<'a> {
    queue: &'a Queue,
    /// This session took `stepping` (it is not a re-entry) and gives it back on drop.
    outer: bool,
    /// The queue this thread was stepping before (another driver's, stepped from one of its
    /// runs), restored on drop.
    previous: *const Queue,
}

impl<'a> Session<'a> {
    fn enter(queue: &'a Queue) -> Self {
        if queue.stepped_here() {
            // A run on this thread steps the driver again: it already holds the right.
            return Session {
                queue,
                outer: false,
                previous: queue,
            };
        }
        while queue.stepping.swap(true, Ordering::Acquire) {
            // Another thread is stepping: wait for its turn to end.
            std::thread::yield_now();
        }
        let previous = STEPPING.with(|s| s.replace(queue));
        Session {
            queue,
            outer: true,
            previous,
        }
    }

    /// Takes the next task to run, moving remote schedules in first.
    fn next(&self) -> Option<Runnable> {
        let queue = self.queue;
        if queue.has_remote.load(Ordering::Acquire) {
            let mut remote = queue.lock_remote();
            queue.has_remote.store(false, Ordering::Relaxed);
            // SAFETY: inside a session; the closure only moves tasks.
            unsafe { queue.with_local(|local| local.tasks.extend(remote.drain(..))) };
        }
        // SAFETY: inside a session; the closure only picks a task.
        unsafe {
            queue.with_local(|local| match local.rng.as_mut() {
                None => local.tasks.pop_front(),
                Some(_) if local.tasks.is_empty() => None,
                Some(rng) => {
                    // xorshift64*
                    *rng ^= *rng >> 12;
                    *rng ^= *rng << 25;
                    *rng ^= *rng >> 27;
                    let pick = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % local.tasks.len() as u64)
                        as usize;
                    local.tasks.swap_remove_back(pick)
                }
            })
        }
    }

    /// Scheduled and not yet run.
    fn len(&self) -> usize {
        // SAFETY: inside a session; the closure only reads a length.
        let local = unsafe { self.queue.with_local(|local| local.tasks.len()) };
        local + self.queue.lock_remote().len()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if self.outer {
            STEPPING.with(|s| s.set(self.previous));
            self.queue.stepping.store(false, Ordering::Release);
        }
    }
}

struct Scheduler(Arc<Queue>);

impl Schedule for Scheduler {
    fn schedule(&self, task: Runnable) {
        let queue = &*self.0;
        if queue.stepped_here() {
            // SAFETY: this thread is stepping this queue (so it holds the session), and the
            // closure only pushes.
            unsafe { queue.with_local(|local| local.tasks.push_back(task)) };
        } else {
            let mut remote = queue.lock_remote();
            remote.push_back(task);
            queue.has_remote.store(true, Ordering::Release);
        }
    }
}

/// Runs actors on the calling thread, one run at a time, in an order chosen by a seeded
/// random generator (the same seed and the same program give the same interleaving), or in
/// the order they were scheduled ([`fifo`](Self::fifo)). Time is virtual: timers fire only
/// when the test calls [`advance`](Self::advance).
///
/// ```
/// use airssys_rt::{Actor, Ctx, Handler, ManualDriver};
///
/// struct Echo;
/// impl Actor for Echo {}
/// impl Handler<u32> for Echo {
///     type Reply = u32;
///     fn handle(&mut self, n: u32, _: &mut Ctx<Self>) -> u32 { n }
/// }
///
/// let driver = ManualDriver::new(42);
/// let echo = driver.system().spawn(Echo).unwrap();
/// let reply = echo.ask(7);
/// assert_eq!(reply.try_take(), None); // nothing ran yet
/// driver.run_until_idle();
/// assert_eq!(reply.try_take(), Some(Ok(7)));
/// ```
pub struct ManualDriver {
    queue: Arc<Queue>,
    timers: Arc<Timers>,
    system: System,
}

impl ManualDriver {
    /// A driver whose run order follows `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_order(Some(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }

    /// A driver that runs actors in the order they were scheduled, as a single BEAM
    /// scheduler's run queue does (what the recorded OTP traces assume).
    pub fn fifo() -> Self {
        Self::with_order(None)
    }

    fn with_order(rng: Option<u64>) -> Self {
        let queue = Arc::new(Queue {
            local: UnsafeCell::new(Local {
                tasks: VecDeque::new(),
                rng,
            }),
            remote: Mutex::new(VecDeque::new()),
            has_remote: AtomicBool::new(false),
            stepping: AtomicBool::new(false),
        });
        let timers = Timers::virtual_time();
        let system = System::with_parts(Arc::new(Scheduler(queue.clone())), timers.clone());
        Self {
            queue,
            timers,
            system,
        }
    }

    /// The system whose actors this driver runs.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Runs one scheduled actor (picked by the seeded generator). Returns `false` if none was
    /// scheduled.
    pub fn step(&self) -> bool {
        let session = Session::enter(&self.queue);
        self.step_in(&session)
    }

    fn step_in(&self, session: &Session<'_>) -> bool {
        match session.next() {
            Some(task) => {
                task.run(self.system.budget());
                true
            }
            None => false,
        }
    }

    /// Runs until no actor is scheduled. Returns the number of runs.
    pub fn run_until_idle(&self) -> usize {
        let session = Session::enter(&self.queue);
        // Chunk releases are coalesced across the runs, given back at the end.
        let _batch = ReleaseBatch::begin();
        let mut runs = 0;
        while self.step_in(&session) {
            runs += 1;
        }
        runs
    }

    /// Runs at most `max` runs (for programs that never go idle). Returns the number of runs.
    pub fn run_steps(&self, max: usize) -> usize {
        let session = Session::enter(&self.queue);
        let _batch = ReleaseBatch::begin();
        (0..max).take_while(|_| self.step_in(&session)).count()
    }

    /// Moves virtual time forward by `by`, firing every timer that falls due (in deadline
    /// order). Returns how many fired. Run the actors afterwards with
    /// [`run_until_idle`](Self::run_until_idle).
    pub fn advance(&self, by: Duration) -> usize {
        self.timers.advance(by)
    }

    /// Virtual time since the driver started.
    pub fn now(&self) -> Duration {
        self.timers.now()
    }

    /// How long until the next timer (not cancelled) falls due, if any: advance by it to
    /// fire it.
    pub fn next_timer(&self) -> Option<Duration> {
        self.timers
            .next_deadline()
            .map(|at| at.saturating_sub(self.timers.now()))
    }

    /// Runs until no actor is scheduled and no timer is waiting, moving virtual time to each
    /// next timer in turn; gives up after `max_timers` timers (an interval never ends) and
    /// returns `false` then.
    pub fn run_until_quiescent(&self, max_timers: usize) -> bool {
        for _ in 0..=max_timers {
            self.run_until_idle();
            match self.next_timer() {
                None => return true,
                Some(wait) => {
                    self.advance(wait);
                }
            }
        }
        false
    }

    /// Timers waiting to fire.
    pub fn pending_timers(&self) -> usize {
        self.timers.pending()
    }

    /// Actors scheduled and not yet run.
    pub fn pending(&self) -> usize {
        Session::enter(&self.queue).len()
    }
}

impl Drop for ManualDriver {
    fn drop(&mut self) {
        // Queued runnables hold their actors: drop them to break the cycle with the system.
        let remote = std::mem::take(&mut *self.queue.lock_remote());
        let session = Session::enter(&self.queue);
        // SAFETY: inside a session; the closure only takes the tasks out.
        let local = unsafe {
            self.queue
                .with_local(|local| std::mem::take(&mut local.tasks))
        };
        drop(session);
        // Dropped outside the session: a runnable's drop may schedule (remote, then).
        drop(remote);
        drop(local);
    }
}
