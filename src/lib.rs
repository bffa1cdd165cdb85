//! airssys-rt: an actor runtime with Erlang/OTP fault tolerance.
//!
//! * [`mailbox`] (the `airssys-rt-mailbox` crate): the lock-free core: intrusive MPSC
//!   mailboxes and their run tokens, arena chunks.
//! * [`codec`]: messages as rkyv archives written straight into arena chunks and read in
//!   place; bytes from outside the process validated before use.
//! * [`arena`]: each sending thread's arena writer, and non-blocking or waiting sends.
//! * [`Actor`], [`Handler`], [`ActorRef`], [`Ctx`]: the actor layer (links, monitors, exit
//!   reasons, ask).
//! * [`Schedule`] / [`Runnable`]: the host-facing API; [`ThreadPool`] and [`ManualDriver`]
//!   are the built-in hosts.
//! * [`supervisor`]: supervision trees with OTP's semantics (strategies, restart intensity,
//!   ordered shutdown, dynamic children).

pub use airssys_rt_mailbox as mailbox;
pub use rkyv;

mod actor;
pub mod arena;
pub mod codec;
mod driver;
mod exit;
mod registry;
pub mod supervisor;
mod timer;

pub use actor::{
    Actor, ActorHandle, ActorRef, Archived, AskError, AsyncHandler, Ctx, Handler, Pid, Reply,
    RunOutcome, Runnable, Schedule, SendError, SpawnError, System, SystemStats, DEFAULT_BUDGET,
};
pub use codec::Message;
#[cfg(feature = "smol")]
pub use driver::spawn_on_smol;
#[cfg(feature = "tokio")]
pub use driver::spawn_on_tokio;
pub use driver::{
    block_on_with, FutureDriver, ManualDriver, ThreadPool, ThreadPoolBuilder, Worker, RUNS_PER_POLL,
};
pub use exit::{ActorId, ExitReason, MonitorRef};
pub use registry::RegisterError;
pub use timer::TimerRef;

/// The README's code, compiled and run as doctests so that it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
