//! The scheduling state word of a mailbox.
//!
//! One word per mailbox decides who may run its consumer. It follows async-task's `state.rs`
//! (and tokio's task state) in spirit: a few documented bits, changed only by
//! read-modify-write operations. What it adds is that a send to a mailbox that is already
//! scheduled or running writes nothing here at all: it only reads the word.
//!
//! # Layout (`u64`)
//!
//! | bit | name | set by | cleared by | meaning |
//! |---|---|---|---|---|
//! | 0 | `SCHEDULED` | a push or [`wake`](SchedState::wake) that found it clear (and so took the token) | [`finish`](SchedState::finish) | a [`RunToken`](crate::RunToken) exists or a run is in progress: exactly one party owns the consumer |
//! | 1 | `CLOSED` | [`close`](SchedState::close) | never | no new message is accepted; whatever is still queued or in flight is handed back by later runs |
//! | 2 | `WOKEN` | a [`wake`](SchedState::wake) that found `SCHEDULED` set | `begin_run`, `finish` | a wake-up without a message came while scheduled or running: the run must go again, even with empty queues |
//!
//! # Transitions
//!
//! ```text
//!          push, then load: SCHEDULED clear -> fetch_or(SCHEDULED): the token
//!   IDLE ─────────────────────────────────────────────────────────▶ SCHEDULED (token, then run)
//!    ▲                                                                  │
//!    │ finish: fetch_and(!SCHEDULED), then look at the queues:          │ push: load only,
//!    │ empty and not WOKEN -> stays IDLE                                │ nothing written
//!    └──────────────────────────────────────────────────────────────────┘
//!      (queues not empty, or WOKEN: finish takes the token back with fetch_or)
//! ```
//!
//! `begin_run` writes nothing (the token already stands for `SCHEDULED`), except to clear a
//! `WOKEN` that came while the token was pending, which this run serves. A `finish` that
//! `yielded` (stopped with work left) writes nothing either and keeps the token.
//!
//! # Why a push need not write: the store-load handshake
//!
//! A producer pushes (the queue's `head.swap`), then *loads* the word. A finishing consumer
//! clears `SCHEDULED` (a `fetch_and`), then *loads* the queues' `head`s (only those: the moment
//! it lets go, another run may begin and own the consumer's end). All four accesses are
//! `SeqCst`, so they fall in one total order, and whichever of the two writes comes first in
//! it is seen by the other side's load (the store-buffering litmus test, forbidden for
//! `SeqCst`). So either the producer sees `SCHEDULED` clear and takes the token itself, or the
//! consumer sees the message and takes the token back: a message is never stranded. Both may
//! try; `fetch_or` lets exactly one win.
//!
//! Under loom, `SeqCst` accesses are modelled as `AcqRel` only (loom#180), which would report
//! this handshake as broken; the loom build puts a `fence(SeqCst)` between each write and its
//! load instead (`sync::loom_seqcst_fence`), which forbids the same outcome. Outside
//! loom the fence is not emitted: the `SeqCst` accesses are enough on their own, and on x86
//! the producer's swap and the consumer's `fetch_and` are locked instructions (full barriers)
//! already, while a `SeqCst` load is a plain load.
//!
//! A wake-up has no message for the consumer to find, so it cannot use the handshake: it sets
//! `WOKEN` (one CAS) when the mailbox is scheduled, and `finish` sees it in the value its
//! `fetch_and` returns.
//!
//! # Invariants
//!
//! * **S1, exactly one runner.** A [`RunToken`](crate::RunToken) is created only by the
//!   `fetch_or` (or CAS) that sets `SCHEDULED` from clear, and `SCHEDULED` stays set until the
//!   token's run finishes. So at most one token or run exists at a time.
//! * **S2, no lost message.** A push either finds `SCHEDULED` clear (and takes the token) or
//!   the consumer's `finish` finds its message (the handshake above).
//! * **S3, no lost wake-up.** A wake either takes the token or sets `WOKEN` while
//!   `SCHEDULED` is set; the RMWs on one word are totally ordered, so the `finish` of that run
//!   (or a later one) returns it and runs again.
//! * **S4, every write is an RMW.** No plain `store`: clearer, and loom#254 reports false
//!   races when a plain store meets concurrent RMWs on the same atomic.
//!
//! # Orderings
//!
//! `finish`'s `fetch_and` Releases and `begin_run`'s load Acquires: between two runs on
//! different threads, this pair hands over `&mut` access to the consumer's state (the actor).
//! Every write to the word is an RMW, so whatever value `begin_run` reads lies in the release
//! sequence of the last `finish`; the `fetch_or` that takes the token can therefore be
//! Relaxed. A wake-up's CAS Releases what the waker did to the run it causes. A token passed
//! to another thread by the host (a run queue) is also handed over by the host's own
//! synchronisation. Loom mutants weaken each of these and remove each fence.

use core::fmt;

use crate::sync::{ord, AtomicU64, Ordering};

/// A token exists or a run is in progress.
pub const SCHEDULED: u64 = 1 << 0;
/// The mailbox takes no new messages.
pub const CLOSED: u64 = 1 << 1;
/// A wake-up came while scheduled: the run must go again.
pub const WOKEN: u64 = 1 << 2;

/// The scheduling state word. See the [module docs](self) for the bits and invariants.
pub struct SchedState(AtomicU64);

impl SchedState {
    /// A new state: idle and open.
    pub fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Called after a push. Returns `true` if the caller must schedule a run: the mailbox was
    /// idle, and the caller now holds the only token. When it was scheduled or running, this
    /// only reads the word: the run's `finish` finds the message (see the module docs).
    #[inline]
    pub fn notify_pushed(&self) -> bool {
        crate::sync::loom_seqcst_fence("push_no_seqcst");
        let s = self.0.load(Ordering::SeqCst);
        if crate::sync::mutant("notify_closed_no_token") && s & CLOSED != 0 {
            return false;
        }
        s & SCHEDULED == 0 && self.take_token()
    }

    /// A wake-up without a message (a timer fired, a future became ready). Returns `true` if
    /// the caller must schedule a run (the mailbox was idle); otherwise the current or pending
    /// run will run again.
    #[inline]
    pub fn wake(&self) -> bool {
        let no_woken = crate::sync::mutant("no_woken");
        let prev = self.update(ord::WAKE(), |s| {
            if s & SCHEDULED == 0 {
                s | SCHEDULED
            } else if no_woken {
                s
            } else {
                s | WOKEN
            }
        });
        prev & SCHEDULED == 0
    }

    /// Starts a run (the caller holds the token). Writes nothing, unless a wake-up came
    /// while the token was pending: this run serves it, so it clears `WOKEN` (otherwise
    /// `finish` would run the mailbox once more for nothing).
    #[inline]
    pub fn begin_run(&self) {
        if self.0.load(ord::BEGIN_RUN()) & WOKEN != 0 {
            self.0.fetch_and(!WOKEN, Ordering::AcqRel);
        }
    }

    /// Sets `SCHEDULED`; `true` if this call set it (the caller now holds the token).
    ///
    /// Relaxed: the run this token starts acquires at `begin_run`, and a pushed message is
    /// published by its queue link.
    #[inline]
    fn take_token(&self) -> bool {
        self.0.fetch_or(SCHEDULED, Ordering::Relaxed) & SCHEDULED == 0
    }

    /// Ends a run. Returns `true` if the mailbox stays scheduled and the caller holds the
    /// token again: because it `yielded` (stopped with work left; nothing is written), because
    /// a wake-up came, or because `pushed_since` finds messages after the run has let go.
    ///
    /// `pushed_since` runs after `SCHEDULED` is cleared, when another run may have begun: it
    /// must read only the queues' producer ends (their `head`s, with `SeqCst` loads), never
    /// the consumer's own state.
    #[inline]
    pub fn finish(&self, yielded: bool, pushed_since: impl FnOnce() -> bool) -> bool {
        if yielded {
            return true;
        }
        let prev = self.0.fetch_and(!(SCHEDULED | WOKEN), ord::FINISH_RUN());
        debug_assert!(prev & SCHEDULED != 0, "finish without a run");
        crate::sync::loom_seqcst_fence("finish_no_seqcst");
        let again = prev & WOKEN != 0 || (!crate::sync::mutant("no_recheck") && pushed_since());
        again && self.take_token()
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

    /// A compare-exchange loop applying `f`; returns the previous value (only `wake` uses it).
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
            .field("scheduled", &(s & SCHEDULED != 0))
            .field("woken", &(s & WOKEN != 0))
            .field("closed", &(s & CLOSED != 0))
            .finish()
    }
}
