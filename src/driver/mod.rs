//! Built-in drivers: a thread pool and a deterministic single-threaded driver.
//!
//! Any other host implements [`Schedule`](crate::Schedule) and runs the
//! [`Runnable`](crate::Runnable)s it is given.

mod manual;
mod pool;

pub use manual::ManualDriver;
pub use pool::ThreadPool;
