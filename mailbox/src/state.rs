//! The scheduling state word of a mailbox.
//!
//! One `u32` per mailbox decides who may run its consumer. It follows async-task's `state.rs`
//! (and tokio's task state): the bits below, changed only by read-modify-write operations.
//!
//! # Bits
//!
//! | bit | name | set by | cleared by | meaning |
//! |---|---|---|---|---|
//! | 0 | `SCHEDULED` | [`notify`](SchedState::notify) (a send, a wake-up), [`finish`](SchedState::finish) when it reschedules | [`begin_run`](SchedState::begin_run) | the consumer has work it has not started on. If `RUNNING` is clear, exactly one [`RunToken`](crate::RunToken) exists for it |
//! | 1 | `RUNNING` | `begin_run` | `finish` | a consumer is running; it owns the consumer end of the queues and the actor state |
//! | 2 | `CLOSED` | [`close`](SchedState::close) | never | no new message is accepted; whatever is still queued or in flight is handed back by later runs |
//!
//! Bits 3..32 are zero.
//!
//! # Transitions
//!
//! ```text
//!              notify (returns "schedule it")
//!   IDLE ───────────────────────────────────────▶ SCHEDULED
//!    ▲                                                │ begin_run
//!    │ finish, no notify came                         ▼
//!    └──────────────────────────────────────────── RUNNING ◀──┐
//!                                                     │ notify│ (no token: the runner
//!    SCHEDULED ◀── finish (yielded, or notified) ─ RUNNING|SCHEDULED  will reschedule)
//! ```
//!
//! `CLOSED` is orthogonal: it is ORed in once and never removed, and every transition above
//! keeps it. A notify on a closed mailbox still schedules a run, so that messages that raced
//! with the close (accepted just before it) are drained and handed back by that run.
//!
//! # Invariants
//!
//! * **S1, exactly one runner.** A [`RunToken`](crate::RunToken) is created only by the
//!   transition into `SCHEDULED` with `RUNNING` clear: by a notify that finds neither bit set,
//!   or by a `finish` that leaves `SCHEDULED` set. So at most one token exists at a time, and
//!   `RUNNING` excludes a second runner.
//! * **S2, no lost wake-up.** A notify either finds the mailbox idle (and schedules it) or
//!   finds it scheduled or running. In the running case it sets `SCHEDULED`, which `finish`
//!   sees (the RMWs on one word are totally ordered), so the runner reschedules.
//! * **S4, every write is an RMW.** No plain `store`: clearer, and loom#254 reports false
//!   races when a plain store meets concurrent RMWs on the same atomic.
//!
//! # Orderings
//!
//! `notify` is AcqRel: its Release half makes the push before it visible to the run that
//! starts after it (the queue's own link store publishes the payload too, but the state word
//! also hands over whatever else the sender wrote). `begin_run` Acquires and `finish`
//! Releases: between two runs on different threads, this pair hands over `&mut` access to the
//! consumer's state (the actor). Loom mutants weaken each of them.

use core::fmt;

use crate::sync::{ord, AtomicU32, Ordering};

/// A consumer has work it has not started on.
pub const SCHEDULED: u32 = 1 << 0;
/// A consumer is running.
pub const RUNNING: u32 = 1 << 1;
/// The mailbox takes no new messages.
pub const CLOSED: u32 = 1 << 2;

/// The scheduling state word. See the [module docs](self) for the bits and invariants.
pub struct SchedState(AtomicU32);

impl SchedState {
    /// A new state: idle and open.
    pub fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Records that there is work. Returns `true` if the caller must schedule a run: the
    /// mailbox was idle, and the caller now holds the only token.
    #[inline]
    pub fn notify(&self) -> bool {
        let prev = self.0.fetch_or(SCHEDULED, Ordering::AcqRel);
        if crate::sync::mutant("notify_closed_no_token") && prev & CLOSED != 0 {
            return false;
        }
        prev & (SCHEDULED | RUNNING) == 0
    }

    /// Starts a run: `SCHEDULED` becomes `RUNNING`. Returns the state before.
    ///
    /// The caller must hold the token (`SCHEDULED` set, `RUNNING` clear).
    #[inline]
    pub fn begin_run(&self) -> u32 {
        // With SCHEDULED set and RUNNING clear (the token's precondition), flipping both bits
        // clears SCHEDULED and sets RUNNING in one RMW, keeping CLOSED.
        let prev = self.0.fetch_xor(SCHEDULED | RUNNING, ord::BEGIN_RUN());
        debug_assert_eq!(
            prev & (SCHEDULED | RUNNING),
            SCHEDULED,
            "begin_run without the token"
        );
        prev
    }

    /// Ends a run. Returns `true` if the mailbox stays scheduled and the caller now holds the
    /// token again: because it `yielded` (stopped with work left), or because a notify came
    /// during the run.
    #[inline]
    pub fn finish(&self, yielded: bool) -> bool {
        if yielded {
            // Two RMWs: in between (RUNNING|SCHEDULED) notifiers get no token; after the second
            // one the state is SCHEDULED and the token is ours.
            self.0.fetch_or(SCHEDULED, Ordering::AcqRel);
            self.0.fetch_and(!RUNNING, ord::FINISH_RUN());
            return true;
        }
        let prev = self.0.fetch_and(!RUNNING, ord::FINISH_RUN());
        debug_assert!(prev & RUNNING != 0, "finish without begin_run");
        if crate::sync::mutant("no_recheck") {
            return false;
        }
        // A notify during the run set SCHEDULED but got no token (it saw RUNNING): we take it.
        prev & SCHEDULED != 0
    }

    /// Closes. Returns `true` if this call closed it (it was open).
    #[inline]
    pub fn close(&self) -> bool {
        self.0.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0
    }

    /// Whether the mailbox is closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire) & CLOSED != 0
    }

    /// A snapshot of the bits (for diagnostics and tests; it may be stale at once).
    #[inline]
    pub fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

impl Default for SchedState {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SchedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.load();
        f.debug_struct("SchedState")
            .field("scheduled", &(s & SCHEDULED != 0))
            .field("running", &(s & RUNNING != 0))
            .field("closed", &(s & CLOSED != 0))
            .finish()
    }
}
