//! The systems under comparison, one module each, behind one trait.
//!
//! Every module implements every workload the way a user of that library would write it
//! (its actor trait, its own spawn/tell/ask, unbounded mailboxes everywhere), with the shared
//! logic of [`crate::workload`] so that all do the same work. Each timed method sets up what
//! one cell needs (runtime, producers), then hands [`Bench::run`] a closure that performs one
//! run: set up actors (untimed), time the work, check the result, stop the actors (untimed).

use crate::harness::{Bench, Threads};

pub mod actix;
pub mod airssys;
pub mod crossbeam;
pub mod kameo;
pub mod ractor;
pub mod tokio_mpsc;
pub mod xtra;

/// What a system is to the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// airssys-rt itself (one column per host).
    Airssys,
    /// A peer actor library: the ratio is taken against the best of these.
    Peer,
    /// A raw baseline (channels and tasks or threads, no actor library).
    Baseline,
}

/// Idle-actor memory, per actor.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// Net heap bytes per actor.
    pub heap: f64,
    /// Resident-set growth per actor, if `/proc/self/statm` is readable.
    pub rss: Option<f64>,
}

/// One system: the workloads, implemented idiomatically for it.
pub trait Contender {
    /// The column name.
    fn name(&self) -> &'static str;
    /// Airssys, peer or baseline.
    fn kind(&self) -> Kind;
    /// How it runs actors, for the report's notes.
    fn host(&self) -> &'static str;
    /// What a reader of its figures must know, if anything.
    fn remark(&self) -> Option<&'static str> {
        None
    }

    /// Two actors bounce a ball `round_trips` times (two messages per round trip).
    fn ping_pong(&self, b: &mut Bench, threads: Threads, round_trips: u64);
    /// `producers` threads each send `per_producer` sequence numbers to one actor (2 workers),
    /// which checks per-producer order.
    fn fan_in(&self, b: &mut Bench, producers: usize, per_producer: u64);
    /// Spawns `actors` actors, sends each one message; each handles it and stops (2 workers).
    fn spawn(&self, b: &mut Bench, actors: u64);
    /// `len` actors in a ring pass one token for `hops` hops (2 workers).
    fn ring(&self, b: &mut Bench, len: usize, hops: u64);
    /// A producer actor sends `increments` increments to a counter actor, then asks it for the
    /// value (2 workers).
    fn counting(&self, b: &mut Bench, increments: u64);
    /// The bench thread sends `per_actor` messages to each of `actors` actors, round robin; each
    /// does a small computation per message (2 workers).
    fn fork_join(&self, b: &mut Bench, actors: usize, per_actor: u64);
    /// `actors` actors each send `pings` pings to random others, one at a time, each answered
    /// by a pong (2 workers).
    fn big(&self, b: &mut Bench, actors: usize, pings: u64);
    /// `chameneos` chameneos meet through a mall `meetings` times (2 workers).
    fn chameneos(&self, b: &mut Bench, chameneos: usize, meetings: u64);
    /// Spawns `actors` idle actors on one thread and measures what they cost; then checks that
    /// each still answers. Runs in a child process of its own (clean heap and RSS).
    fn idle_memory(&self, actors: usize) -> Result<Memory, MemoryError>;
}

/// Why a memory probe has no figure.
#[derive(Clone, Debug)]
pub enum MemoryError {
    /// The probe ran and went wrong.
    Failed(String),
    /// The probe does not apply to this system.
    NotApplicable(&'static str),
}

impl From<String> for MemoryError {
    fn from(s: String) -> Self {
        MemoryError::Failed(s)
    }
}

/// Every system, in column order.
pub fn all() -> Vec<Box<dyn Contender>> {
    vec![
        Box::new(airssys::Airssys { on_tokio: false }),
        Box::new(airssys::Airssys { on_tokio: true }),
        Box::new(ractor::Ractor),
        Box::new(kameo::Kameo),
        Box::new(actix::Actix),
        Box::new(xtra::Xtra),
        Box::new(tokio_mpsc::TokioMpsc),
        Box::new(crossbeam::Crossbeam),
    ]
}

/// The per-actor figures of a memory probe of `actors` actors.
pub fn per_actor(actors: usize, heap: isize, rss: Option<isize>) -> Memory {
    Memory {
        heap: heap as f64 / actors as f64,
        rss: rss.map(|r| r as f64 / actors as f64),
    }
}

/// Spawned in batches of this many in the memory probes, each batch started before the next,
/// so that run queues stay small and the figure is the actors' own cost.
pub const IDLE_BATCH: usize = 1_000;
