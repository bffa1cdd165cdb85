//! The lock-free core of [airssys-rt]: intrusive MPSC mailboxes with exactly-once scheduling.
//!
//! This crate knows nothing of actors, message types or executors. It moves message *nodes*
//! (anything [`Linked`]: a [`MsgHeader`] at the front of some memory) between threads, keeps
//! the run token that decides who runs a mailbox's consumer, and hands the host a
//! [`RunToken`] when a mailbox needs a run.
//!
//! | piece | what it is |
//! |---|---|
//! | [`MsgHeader`], [`Link`] | the 16-byte intrusive node at the front of every message |
//! | [`MpscQueue`] | Dmitry Vyukov's intrusive MPSC queue: wait-free push, single consumer |
//! | [`SchedState`] | the CLOSED / WOKEN word beside the run token (which is the user head's parked mark); the whole scheduling protocol is documented in [`state`] |
//! | [`Mailbox`] | user lane (optionally bounded, its head carrying the run token) + system lane + state word, its producers' and consumer's ends a cache line apart |
//! | [`Boxed`] | a heap node for a plain value (control signals, tests) |
//! | [`ArenaWriter`], [`chunk`] | one thread's bump allocator over pooled 64 KiB chunks, biased refcounts |
//! | [`Slab`] | a generational slab with wait-free lookups (actor ids) |
//! | [`Sleepers`] | how a pool's idle workers sleep and are woken: no lost wake-up, no wake-up per schedule |
//! | [`Envelope`] | the owning handle to one message in a chunk: bytes, a plain value, or a shared copy |
//!
//! Every lock-free structure here has a loom model (`tests/loom_*.rs`), run in CI together
//! with mutants (weakened orderings) that the models must reject.
//!
//! ```
//! use airssys_rt_mailbox::{Boxed, Mailbox, Received};
//!
//! let mailbox: Mailbox<Boxed<u32>, Boxed<&str>> = Mailbox::unbounded();
//! let token = mailbox.try_push(Boxed::new(7)).unwrap().unwrap();
//! mailbox.push_system(Boxed::new("stop")).unwrap(); // already scheduled: no second token
//!
//! let mut run = mailbox.begin_run(token);
//! assert!(matches!(run.pop(), Some(Received::System(s)) if *s == "stop")); // signals first
//! assert!(matches!(run.pop(), Some(Received::User(m)) if *m == 7));
//! assert!(run.pop().is_none());
//! assert!(run.finish(false).is_none());
//! ```
//!
//! [airssys-rt]: https://docs.rs/airssys-rt

#![warn(missing_docs)]

mod boxed;
pub mod chunk;
pub mod envelope;
pub mod header;
pub mod idle_wakers;
mod mailbox;
pub mod queue;
pub mod slab;
pub mod sleepers;
pub mod state;
mod sync;
mod writer;

pub use boxed::Boxed;
pub use chunk::{PoolConfig, PoolStats, CHUNK_ALIGN, DEFAULT_CHUNK_SIZE};
pub use envelope::{Envelope, Kind, KIND_SHIFT, TYPE_TAG_MASK};
pub use header::{Link, MsgHeader};
pub use idle_wakers::{IdleWaker, IdleWakers};
pub use mailbox::{Gap, Mailbox, PushError, Received, Run, RunToken, CACHE_LINE, GAP_BYTES};
pub use queue::{Linked, MpscQueue, Pop};
pub use slab::{Slab, SlabId};
pub use sleepers::{Sleepers, Slept};
pub use state::SchedState;
pub use writer::{ArenaWriter, FillError, WriteError};
