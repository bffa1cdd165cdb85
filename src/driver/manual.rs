//! A deterministic single-threaded driver for tests.

use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use crate::actor::{Runnable, Schedule, System};
use crate::timer::Timers;

struct Queue {
    tasks: Mutex<std::collections::VecDeque<Runnable>>,
    /// `None`: first scheduled, first run.
    rng: Mutex<Option<u64>>,
}

struct Scheduler(Arc<Queue>);

impl Schedule for Scheduler {
    fn schedule(&self, task: Runnable) {
        self.0
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(task);
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
            tasks: Mutex::new(std::collections::VecDeque::new()),
            rng: Mutex::new(rng),
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
        let task = {
            let mut tasks = self
                .queue
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if tasks.is_empty() {
                return false;
            }
            let mut rng = self
                .queue
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match rng.as_mut() {
                None => tasks.pop_front(),
                Some(rng) => {
                    // xorshift64*
                    *rng ^= *rng >> 12;
                    *rng ^= *rng << 25;
                    *rng ^= *rng >> 27;
                    let pick =
                        (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % tasks.len() as u64) as usize;
                    tasks.swap_remove_back(pick)
                }
            }
            .expect("not empty")
        };
        task.run(self.system.budget());
        true
    }

    /// Runs until no actor is scheduled. Returns the number of runs.
    pub fn run_until_idle(&self) -> usize {
        let mut runs = 0;
        while self.step() {
            runs += 1;
        }
        runs
    }

    /// Runs at most `max` runs (for programs that never go idle). Returns the number of runs.
    pub fn run_steps(&self, max: usize) -> usize {
        (0..max).take_while(|_| self.step()).count()
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
        self.queue
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for ManualDriver {
    fn drop(&mut self) {
        // Queued runnables hold their actors: drop them to break the cycle with the system.
        let tasks = std::mem::take(
            &mut *self
                .queue
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        drop(tasks);
    }
}
