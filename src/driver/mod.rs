//! Built-in drivers: a thread pool and a deterministic single-threaded driver.
//!
//! Any other host implements [`Schedule`](crate::Schedule) and runs the
//! [`Runnable`](crate::Runnable)s it is given.

mod future;
mod lifo;
mod manual;
mod pool;

#[cfg(feature = "smol")]
pub use future::spawn_on_smol;
#[cfg(feature = "tokio")]
pub use future::spawn_on_tokio;
pub use future::{block_on_with, FutureDriver, Worker, RUNS_PER_POLL};
pub use manual::ManualDriver;
pub use pool::{ThreadPool, ThreadPoolBuilder};

/// Called before the current thread blocks inside an actor run: schedules held back for this
/// thread's worker go where other workers can take them.
pub(crate) fn before_blocking() {
    pool::before_blocking();
    lifo::flush();
}
