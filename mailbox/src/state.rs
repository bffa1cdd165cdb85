//! How a mailbox is scheduled: its run token, and the state word beside it.
//!
//! Exactly one party may run a mailbox's consumer at a time. That right is the
//! [`RunToken`](crate::RunToken), and it lives in two places that only RMWs change:
//!
//! * **The user lane's head carries the token.** Its low bit, `PARKED` (see `queue.rs`), is set
//!   while the mailbox is idle and nobody holds the token. The consumer sets it as a run ends
//!   (one CAS that expects the head it saw). A push's `swap` replaces the head with an unmarked
//!   node, so the push that finds the mark in the value it swapped out *is* the one that takes
//!   the token, with no other write: a message to an idle mailbox costs one locked instruction
//!   (the swap every push does anyway), not two. This is Pony's actor queue trick.
//! * **The state word ([`SchedState`], this module) holds what is not a message**: `CLOSED`
//!   and `WOKEN`.
//!
//! # The state word (`u64`)
//!
//! | bit | name | set by | cleared by | meaning |
//! |---|---|---|---|---|
//! | 0 | `CLOSED` | [`close`](SchedState::close) | never | no new message is accepted; whatever is still queued or in flight is handed back by later runs |
//! | 1 | `WOKEN` | [`wake`](SchedState::wake) | [`take_woken`](SchedState::take_woken) (at the start and at the end of a run) | a wake-up without a message came: the run must go again, even with empty queues |
//!
//! # Transitions of the token
//!
//! ```text
//!           user push: swap finds PARKED                 ┌──────────────────────┐
//!   PARKED ──────────────────────────────────────────▶  │ token held: pending  │
//!   (idle)   signal push or wake-up: unpark (a CAS)      │ run, or running      │
//!     ▲                                                  └──────────┬───────────┘
//!     │  the run ends: queues empty, no WOKEN → park (CAS)          │ user push: swap, nothing
//!     └─────────────────────────────────────────────────────────────┘ else written
//!        (the CAS fails when a push got in first: the run keeps the token)
//! ```
//!
//! A run that yields (stops with work left) keeps the token and writes nothing. A run that
//! ends awaiting (an actor inside an async handler, which takes only signals meanwhile) parks
//! with its user messages left queued: the next push, signal or wake-up takes the token.
//!
//! # Why nothing is stranded
//!
//! * **User messages**: a push and the run's park are RMWs on the same word, the head. If the
//!   push comes first, the park's CAS (which expects the queue's end the run saw with nothing
//!   after it: the stub, or a kept last link) fails and the run goes on; if the park comes
//!   first, the push's swap finds the mark and takes the token. (A run that parks awaiting,
//!   with messages left on purpose, retries its CAS on whatever the head is.)
//! * **Signals and wake-ups** live elsewhere (the system lane's head, the `WOKEN` bit), so
//!   they use a store-load handshake. The sender writes (its swap on the system head, or the
//!   `fetch_or` of `WOKEN`), then loads the user head and, if parked, unparks it. A finishing
//!   run parks (its CAS), then loads the system head and the word and, if there is anything,
//!   unparks. All of these are `SeqCst` (the wake-up's `fetch_or` too: a Release write would
//!   stay out of the order), so they fall in one total order, and whichever write
//!   comes first in it is seen by the other side's load (the store-buffering litmus test,
//!   forbidden for `SeqCst`). So the sender sees the mark, or the run sees the signal or the
//!   bit; both may try, and the CAS lets exactly one take the token. A wake-up first tries to
//!   unpark directly (an idle mailbox needs no `WOKEN`), and sets `WOKEN` only if that fails.
//!
//! Under loom, `SeqCst` accesses are modelled as `AcqRel` only (loom#180), which would report
//! these handshakes as broken; the loom build puts a `fence(SeqCst)` between each write and
//! its load instead (`sync::loom_seqcst_fence`), which forbids the same outcome. Outside loom
//! the fence is not emitted: the `SeqCst` accesses are enough on their own, and on x86 the
//! writes are locked instructions (full barriers) already, while a `SeqCst` load is a plain
//! load.
//!
//! # Invariants
//!
//! * **S1, exactly one runner.** A token is created only by the RMW that takes the `PARKED`
//!   mark off the user head (a push's swap or an unpark's CAS), and only the token's holder puts
//!   the mark back (its run's park). So at most one token or run exists at a time. (A
//!   `Mailbox::drain` or drop, with exclusive access and no token anywhere, may take the mark
//!   off by re-linking the stub and put it back at once.)
//! * **S2, no lost message.** A user push either takes the token or lands before the park's
//!   CAS, which then fails. A signal either finds the head parked (and unparks it) or the run
//!   that parks sees it (the handshake above).
//! * **S3, no lost wake-up.** A wake-up either unparks the mailbox or sets `WOKEN` while it is
//!   not parked; a run takes `WOKEN` before it parks, or sees it after parking (the handshake)
//!   and unparks again.
//! * **S4, every write to the word is an RMW.** No plain `store`: clearer, and loom#254
//!   reports false races when a plain store meets concurrent RMWs on the same atomic.
//!
//! # Orderings
//!
//! The park's CAS Releases and every RMW that takes the token (the push's `SeqCst` swap, the
//! unpark's `AcqRel` CAS) Acquires: this pair hands `&mut` access to the consumer's state (the
//! actor) from one run to the next, through whoever took the token (a host that moves the
//! token to another thread synchronises that move itself). `WOKEN`'s `fetch_or` (`SeqCst`)
//! Releases what the waker did, and the run that clears it (an `AcqRel` RMW) Acquires it. Loom mutants weaken
//! each of these and remove each fence.

use core::fmt;

use crate::sync::{ord, AtomicU64, Ordering};

/// The mailbox takes no new messages.
pub const CLOSED: u64 = 1 << 0;
/// A wake-up came while the mailbox was scheduled or running: the run must go again.
pub const WOKEN: u64 = 1 << 1;

/// The state word beside a mailbox's run token: `CLOSED` and `WOKEN`. See the
/// [module docs](self) for the bits, the token and the invariants.
pub struct SchedState(AtomicU64);

impl SchedState {
    /// A new state: open, no wake-up pending.
    pub fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Records a wake-up without a message (a timer fired, a future became ready) for the
    /// run in progress or pending. The caller then looks at the token (the handshake in the
    /// module docs).
    #[inline]
    pub fn wake(&self) {
        if !crate::sync::mutant("no_woken") {
            self.0.fetch_or(WOKEN, ord::WAKE());
        }
    }

    /// Takes a pending wake-up: clears `WOKEN` and returns `true` if it was set. A run does
    /// this as it starts (it serves the wake-up) and before it parks (it must go again).
    #[inline]
    pub fn take_woken(&self) -> bool {
        // The load keeps the common case (no wake-up) free of writes; the RMW that clears the
        // bit Acquires what the waker released.
        self.0.load(Ordering::Acquire) & WOKEN != 0
            && self.0.fetch_and(!WOKEN, Ordering::AcqRel) & WOKEN != 0
    }

    /// Whether a wake-up is pending. `SeqCst`: the load of a run's handshake after it parks.
    #[inline]
    pub fn is_woken(&self) -> bool {
        self.0.load(Ordering::SeqCst) & WOKEN != 0
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
            .field("woken", &(s & WOKEN != 0))
            .field("closed", &(s & CLOSED != 0))
            .finish()
    }
}
