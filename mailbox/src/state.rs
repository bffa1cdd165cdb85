//! The scheduling state word of a mailbox.
//!
//! One `u32` per mailbox decides who may run its consumer. It follows async-task's `state.rs`
//! (and tokio's task state): the bits below, changed only by read-modify-write operations.
//!
//! # Layout (`u64`)
//!
//! | bits | name | set by | cleared by | meaning |
//! |---|---|---|---|---|
//! | 0 | `RUNNING` | [`begin_run`](SchedState::begin_run) | [`finish`](SchedState::finish) | a consumer is running; it owns the consumer end of the queues and the actor state |
//! | 1 | `CLOSED` | [`close`](SchedState::close) | never | no new message is accepted; whatever is still queued or in flight is handed back by later runs |
//! | 2..64 | `NOTIFIED` (a count) | [`notify`](SchedState::notify) adds one (a send, a wake-up); `finish` sets it to one when it reschedules | `begin_run` (to zero) | notifications not yet seen by a run. The mailbox is *scheduled* when the count is non-zero: if `RUNNING` is clear, exactly one [`RunToken`](crate::RunToken) exists for it |
//!
//! Why a count and not a `SCHEDULED` bit: a notify must learn whether the mailbox was idle
//! (no notification pending *and* not running). With a bit, that needs `fetch_or` plus a test of
//! two bits of the old value, which x86 compiles to a `lock cmpxchg` retry loop; with a count
//! it is one `lock xadd` (`fetch_add`), wait-free. `NOTIFIED` is 62 bits wide: it cannot
//! overflow (each notify follows a push of a distinct message, or a wake-up).
//!
//! # Transitions
//!
//! ```text
//!                 notify (count 0 -> 1, returns "schedule it")
//!   IDLE ─────────────────────────────────────────────▶ SCHEDULED (count > 0)
//!    ▲                                                     │ begin_run (count := 0)
//!    │ finish, count still 0                               ▼
//!    └──────────────────────────────────────────────── RUNNING ◀──┐
//!                                                          │ notify │ (count += 1, no token:
//!    SCHEDULED ◀── finish (yielded, or count > 0) ── RUNNING, count > 0    the runner reschedules)
//! ```
//!
//! `CLOSED` is orthogonal: it is ORed in once and never removed, and every transition above
//! keeps it. A notify on a closed mailbox still schedules a run, so that messages that raced
//! with the close (accepted just before it) are drained and handed back by that run.
//!
//! # Invariants
//!
//! * **S1, exactly one runner.** A [`RunToken`](crate::RunToken) is created only by the
//!   transition into *scheduled* with `RUNNING` clear: by the notify that moves the count from
//!   0 with `RUNNING` clear, or by a `finish` that leaves the count non-zero. So at most one
//!   token exists at a time, and `RUNNING` excludes a second runner.
//! * **S2, no lost wake-up.** A notify either finds the mailbox idle (and schedules it) or
//!   finds it scheduled or running. In the running case its increment is seen by `finish`
//!   (the RMWs on one word are totally ordered), so the runner reschedules.
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

use crate::sync::{ord, AtomicU64, Ordering};

/// A consumer is running.
pub const RUNNING: u64 = 1 << 0;
/// The mailbox takes no new messages.
pub const CLOSED: u64 = 1 << 1;
/// One notification (the `NOTIFIED` count starts at bit 2).
pub const NOTIFIED_ONE: u64 = 1 << 2;
/// The bits of the `NOTIFIED` count.
pub const NOTIFIED_MASK: u64 = !(NOTIFIED_ONE - 1);

/// The scheduling state word. See the [module docs](self) for the bits and invariants.
pub struct SchedState(AtomicU64);

impl SchedState {
    /// A new state: idle and open.
    pub fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Records that there is work. Returns `true` if the caller must schedule a run: the
    /// mailbox was idle, and the caller now holds the only token.
    #[inline]
    pub fn notify(&self) -> bool {
        let prev = self.0.fetch_add(NOTIFIED_ONE, Ordering::AcqRel);
        if crate::sync::mutant("notify_closed_no_token") && prev & CLOSED != 0 {
            return false;
        }
        prev & (NOTIFIED_MASK | RUNNING) == 0
    }

    /// Starts a run: the count goes to zero and `RUNNING` is set. Returns the state before.
    ///
    /// The caller must hold the token (count non-zero, `RUNNING` clear).
    #[inline]
    pub fn begin_run(&self) -> u64 {
        let prev = self.update(ord::BEGIN_RUN(), |s| (s & CLOSED) | RUNNING);
        debug_assert!(
            prev & RUNNING == 0 && prev & NOTIFIED_MASK != 0,
            "begin_run without the token"
        );
        prev
    }

    /// Ends a run. Returns `true` if the mailbox stays scheduled and the caller now holds the
    /// token again: because it `yielded` (stopped with work left), or because a notify came
    /// during the run.
    #[inline]
    pub fn finish(&self, yielded: bool) -> bool {
        let recheck = !crate::sync::mutant("no_recheck");
        let prev = self.update(ord::FINISH_RUN(), |s| {
            if yielded || (recheck && s & NOTIFIED_MASK != 0) {
                (s & CLOSED) | NOTIFIED_ONE
            } else {
                s & CLOSED
            }
        });
        debug_assert!(prev & RUNNING != 0, "finish without begin_run");
        yielded || (recheck && prev & NOTIFIED_MASK != 0)
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

    /// A snapshot of the word (for diagnostics and tests; it may be stale at once).
    #[inline]
    pub fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// A compare-exchange loop applying `f`; returns the previous value. Only `begin_run` and
    /// `finish` use it (once per run), and they race only with notifies and a close.
    #[inline]
    fn update(&self, success: Ordering, f: impl Fn(u64) -> u64) -> u64 {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            match self
                .0
                .compare_exchange_weak(current, f(current), success, Ordering::Relaxed)
            {
                Ok(prev) => return prev,
                Err(actual) => current = actual,
            }
        }
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
            .field("notified", &(s >> NOTIFIED_ONE.trailing_zeros()))
            .field("running", &(s & RUNNING != 0))
            .field("closed", &(s & CLOSED != 0))
            .finish()
    }
}
