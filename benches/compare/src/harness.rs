//! What every system shares: running a workload several times and taking the median, faults
//! raised by actors, waiting with a deadline, count-down latches, reusable producer threads
//! and tokio runtimes of the sizes the workloads use.
//!
//! A run fails (and its cell is reported as FAILED, never as a time) when it panics on the
//! bench thread, when an actor calls [`fault`] (a message out of order, a count that does not
//! match, a send that failed), or when the result it waits for does not come within [`WAIT`]
//! (a lost message).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How long a run may wait for its result before it is declared lost.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a waiting bench thread looks for a fault raised by an actor.
const FAULT_POLL: Duration = Duration::from_millis(50);

/// How many threads run the actors of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One thread (the bench thread, or a tokio `current_thread` runtime).
    One,
    /// Two worker threads.
    Two,
}

impl Threads {
    /// The number of threads.
    pub fn count(self) -> usize {
        match self {
            Threads::One => 1,
            Threads::Two => 2,
        }
    }
}

/// A tokio runtime with `threads` workers (`current_thread` for one), time and I/O enabled.
pub fn tokio_runtime(threads: Threads) -> Runtime {
    let mut builder = match threads {
        Threads::One => Builder::new_current_thread(),
        Threads::Two => {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    builder.enable_all().build().expect("a tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

static FAULTED: AtomicBool = AtomicBool::new(false);
static FAULT: Mutex<Option<String>> = Mutex::new(None);

/// Records that the current run went wrong (the first fault of a run is kept). Actors call it
/// instead of panicking, so that a broken run is reported even where a runtime would swallow
/// the panic.
pub fn fault(what: impl Into<String>) {
    let mut slot = FAULT.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(what.into());
    }
    FAULTED.store(true, Ordering::SeqCst);
}

/// Whether a fault was raised in this run.
pub fn faulted() -> bool {
    FAULTED.load(Ordering::SeqCst)
}

/// Takes the run's fault, if any, and clears it.
fn take_fault() -> Option<String> {
    FAULTED.store(false, Ordering::SeqCst);
    FAULT.lock().unwrap_or_else(PoisonError::into_inner).take()
}

fn fault_message() -> String {
    FAULT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| "fault".to_string())
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Waits (asynchronously, on whatever runtime polls it) for the next value on `rx`, failing on
/// a fault, on a closed channel, or after [`WAIT`].
pub async fn recv<T>(rx: &mut UnboundedReceiver<T>) -> Result<T, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout(FAULT_POLL, rx.recv()).await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => return Err("every sender of the result is gone (an actor died?)".into()),
            Err(_) => {
                if faulted() {
                    return Err(fault_message());
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "no result within {} s: a message was lost",
                        WAIT.as_secs()
                    ));
                }
            }
        }
    }
}

/// Yields (on whatever runtime polls it) until `done()` holds; fails after [`WAIT`].
pub async fn until(done: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("not done within {} s", WAIT.as_secs()));
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// [`recv`] `n` values.
pub async fn recv_n<T>(rx: &mut UnboundedReceiver<T>, n: usize) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(recv(rx).await?);
    }
    Ok(out)
}

thread_local! {
    /// A runtime for threads that wait outside any runtime (the bench thread of a thread pool
    /// or of plain threads): it only parks the thread until the value or a timer comes.
    static WAITER: Runtime = Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
}

/// [`recv`] from a thread that is not inside a runtime.
pub fn block_recv<T>(rx: &mut UnboundedReceiver<T>) -> Result<T, String> {
    WAITER.with(|rt| rt.block_on(recv(rx)))
}

/// [`recv_n`] from a thread that is not inside a runtime.
pub fn block_recv_n<T>(rx: &mut UnboundedReceiver<T>, n: usize) -> Result<Vec<T>, String> {
    WAITER.with(|rt| rt.block_on(recv_n(rx, n)))
}

/// A count-down latch: the call that brings it to zero sends `()` on its channel.
pub struct Latch {
    left: AtomicU64,
    done: UnboundedSender<()>,
}

impl Latch {
    /// A latch of `n`, and the receiver that gets `()` when it reaches zero.
    pub fn new(n: u64) -> (Arc<Latch>, UnboundedReceiver<()>) {
        let (done, rx) = unbounded_channel();
        (
            Arc::new(Latch {
                left: AtomicU64::new(n),
                done,
            }),
            rx,
        )
    }

    /// Counts one down.
    pub fn count_down(&self) {
        match self.left.fetch_sub(1, Ordering::AcqRel) {
            1 => {
                let _ = self.done.send(());
            }
            0 => fault("a latch was counted down more times than there were actors"),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Producer threads
// ---------------------------------------------------------------------------------------------

/// A job for a producer thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// Producer threads started once per cell and reused by its runs, so that their per-thread
/// state (airssys arena writers, allocator caches) is warm, as in a long-running program.
pub struct Producers {
    jobs: Vec<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Producers {
    /// `n` idle producer threads.
    pub fn new(n: usize) -> Self {
        let (jobs, threads) = (0..n)
            .map(|i| {
                let (tx, rx) = mpsc::channel::<Job>();
                let handle = thread::Builder::new()
                    .name(format!("producer-{i}"))
                    .spawn(move || rx.into_iter().for_each(|job| job()))
                    .expect("spawn a producer thread");
                (tx, handle)
            })
            .unzip();
        Self { jobs, threads }
    }

    /// Gives producer `i` the job `make(i)`. The jobs wait on the returned barrier: the bench
    /// thread calls `wait()` on it to start them all at once (and starts its clock).
    pub fn prepare(&self, make: impl Fn(usize) -> Job) -> Arc<Barrier> {
        let start = Arc::new(Barrier::new(self.jobs.len() + 1));
        for (i, jobs) in self.jobs.iter().enumerate() {
            let start = start.clone();
            let job = make(i);
            jobs.send(Box::new(move || {
                start.wait();
                job();
            }))
            .expect("producer thread alive");
        }
        start
    }
}

impl Drop for Producers {
    fn drop(&mut self) {
        self.jobs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runs and medians
// ---------------------------------------------------------------------------------------------

/// The outcome of one workload on one system.
#[derive(Clone, Debug)]
pub enum Cell {
    /// Measured: the median over `runs` runs, with the fastest and slowest run.
    Value {
        /// Median of the runs.
        median: f64,
        /// Lowest run.
        min: f64,
        /// Highest run.
        max: f64,
        /// Runs measured.
        runs: usize,
    },
    /// A run did not produce the right result (or none).
    Failed(String),
    /// The workload does not apply to this system (why).
    NotApplicable(String),
}

impl Cell {
    /// The median, if measured.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Value { median, .. } => Some(*median),
            _ => None,
        }
    }
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Runs one cell: calls the system's run closure up to `runs` times and keeps the time per
/// operation of each run.
pub struct Bench {
    ops: u64,
    runs: usize,
    budget: Duration,
    samples: Vec<f64>,
    outcome: Option<Cell>,
}

impl Bench {
    /// A cell whose runs each perform `ops` operations; at most `runs` runs, fewer once the
    /// runs so far have taken `budget` (so a very slow system cannot stall the whole report).
    pub fn new(ops: u64, runs: usize, budget: Duration) -> Self {
        Self {
            ops,
            runs: runs.max(1),
            budget,
            samples: Vec::new(),
            outcome: None,
        }
    }

    /// Measures `one`, a closure that performs one run and returns the time it measured.
    /// Stops at the first failure.
    pub fn run(&mut self, mut one: impl FnMut() -> Result<Duration, String>) {
        let started = Instant::now();
        take_fault();
        for _ in 0..self.runs {
            let result = catch_unwind(AssertUnwindSafe(&mut one))
                .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&*panic))));
            let result = match take_fault() {
                Some(f) => Err(f),
                None => result,
            };
            match result {
                Ok(elapsed) => self
                    .samples
                    .push(elapsed.as_secs_f64() * 1e9 / self.ops as f64),
                Err(why) => {
                    self.outcome = Some(Cell::Failed(why));
                    return;
                }
            }
            if started.elapsed() >= self.budget {
                break;
            }
        }
    }

    /// Marks the cell as not applicable to this system.
    pub fn not_applicable(&mut self, why: &str) {
        self.outcome = Some(Cell::NotApplicable(why.to_string()));
    }

    /// Marks the cell as failed before any run (the setup went wrong).
    pub fn fail(&mut self, why: impl Into<String>) {
        self.outcome = Some(Cell::Failed(why.into()));
    }

    /// The cell's outcome: nanoseconds per operation, median of the runs.
    pub fn finish(self) -> Cell {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        if self.samples.is_empty() {
            return Cell::Failed("the system ran no measurement".into());
        }
        let min = self.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.samples.iter().copied().fold(0.0, f64::max);
        Cell::Value {
            median: median(&self.samples),
            min,
            max,
            runs: self.samples.len(),
        }
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn a_fault_fails_the_cell() {
        let mut b = Bench::new(1, 3, Duration::from_secs(10));
        b.run(|| {
            fault("out of order");
            Ok(Duration::from_nanos(1))
        });
        assert!(matches!(b.finish(), Cell::Failed(why) if why == "out of order"));
    }

    #[test]
    fn a_latch_fires_once_at_zero() {
        let (latch, mut rx) = Latch::new(2);
        latch.count_down();
        assert!(rx.try_recv().is_err());
        latch.count_down();
        assert!(rx.try_recv().is_ok());
    }
}
