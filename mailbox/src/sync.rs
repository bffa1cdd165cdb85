//! The one place this crate takes its synchronization primitives from.
//!
//! Normally these are `std`'s. Under `RUSTFLAGS="--cfg loom"` they are [loom]'s, so that the
//! same source is model-checked: every atomic, `Arc`, `UnsafeCell` access, spin hint and yield
//! in the lock-free code goes through this module and nowhere else.
//!
//! `UnsafeCell` follows loom's API (`with` / `with_mut` closures) in both builds, which is what
//! lets loom see every access to cell contents.
//!
//! The [`mutant`] module exists only under `cfg(loom)`: it lets the loom CI step weaken one
//! memory ordering or skip one step at a time and check that the models reject each mutant.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
};
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
};
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) use std::sync::atomic::Ordering;

/// A spin-loop hint (`loom::hint::spin_loop` under loom, which also yields to the model).
#[allow(dead_code)]
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::hint::spin_loop();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Yields the current thread (a model yield under loom).
#[allow(dead_code)]
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` with loom's closure API, so the code reads the same in both builds.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline]
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Gives a shared raw pointer to the contents to `f`.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Gives a mutable raw pointer to the contents to `f`.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    #[allow(dead_code)]
    #[inline]
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

/// Orderings of the lock-free code, named by what they do.
///
/// In normal builds each is a constant. Under `cfg(loom)` each reads the mutant selected by the
/// `AIRSSYS_MUTANT` environment variable, so the loom CI step can weaken one ordering at a time
/// and assert that a model fails (see `mailbox/tests/loom_*.rs` and `.ci/loom-mutants`).
pub(crate) mod ord {
    use super::Ordering;

    macro_rules! orderings {
        ($( $(#[$doc:meta])* $name:ident = $strong:ident, mutant $mutant:literal => $weak:ident; )*) => {$(
            $(#[$doc])*
            #[inline(always)]
            #[allow(non_snake_case)]
            pub(crate) fn $name() -> Ordering {
                #[cfg(loom)]
                if super::mutant::active($mutant) {
                    return Ordering::$weak;
                }
                Ordering::$strong
            }
        )*};
    }

    orderings! {
        /// The producer's `head.swap`: Acquire so that linking into `prev` happens after
        /// `prev`'s producer initialised it, and so that a push that takes a parked mailbox's
        /// token sees what the parking run did; Release so the next producer sees our node
        /// initialised; SeqCst for the store-load handshake of a signal's push with a
        /// finishing run (see `state.rs`).
        QUEUE_SWAP = SeqCst, mutant "swap_release" => Release;
        /// The producer's link store `prev.next = node`: publishes the node and its payload to
        /// the consumer.
        QUEUE_LINK = Release, mutant "link_relaxed" => Relaxed;
        /// The consumer's loads of `next`: pairs with `QUEUE_LINK`.
        QUEUE_NEXT = Acquire, mutant "next_relaxed" => Relaxed;
        /// A chunk reference release (`fetch_sub`): Release so every access to the chunk by
        /// this holder happens-before the recycle (the last holder's Acquire fence).
        CHUNK_RELEASE = Release, mutant "chunk_release_relaxed" => Relaxed;
        /// A wake-up's `fetch_or(WOKEN)`: releases what the waker did before waking (a future
        /// made ready) to the run that sees the bit; SeqCst, because it is the waker's write
        /// in its store-load handshake with a parking run (see `state.rs`): a Release write
        /// stays out of the single `SeqCst` order, and the waker's look at the head and the
        /// run's look at the word could then both miss.
        WAKE = SeqCst, mutant "wake_relaxed" => Relaxed;
        /// A finishing run's CAS that parks the user lane: releases the actor state to
        /// whoever takes the token next (on any thread); SeqCst for the store-load handshake
        /// with signals and wake-ups (see `state.rs`).
        PARK = SeqCst, mutant "finish_relaxed" => Relaxed;
        /// A signal's, a wake-up's or a run's CAS that takes the token off a parked lane:
        /// Acquires what the parking run released (its run follows, here or through a host).
        UNPARK = AcqRel, mutant "unpark_relaxed" => Relaxed;
        /// The slab's `fetch_or` that marks a slot's entry initialised: publishes the entry
        /// to lookups (their Acquire `fetch_add`).
        SLAB_PUBLISH = Release, mutant "slab_publish_relaxed" => Relaxed;
        /// A remove's compare-exchange that puts the slot it freed on the slab's `returned`
        /// list: releases its move of the entry out to the insert that takes the slot.
        SLAB_RETURN = Release, mutant "slab_return_relaxed" => Relaxed;
        /// An insert's `swap` that takes all of `returned`: acquires the removes' moves.
        SLAB_TAKE_RETURNED = Acquire, mutant "slab_take_relaxed" => Relaxed;
    }
}

/// Mutation switches for the loom models (only under `cfg(loom)`).
///
/// `AIRSSYS_MUTANT=<name>` turns one of them on for the whole test process. The names are:
/// `swap_release`, `link_relaxed`, `next_relaxed`, `wake_relaxed`, `finish_relaxed`,
/// `unpark_relaxed`, `keep_release_early` (a run that parks gives up its kept link before its
/// CAS, so a producer that got in first writes a released node),
/// `no_recheck` (a run that parks does not look at the system lane and the wake-up bit
/// again), `push_no_seqcst` and `finish_no_seqcst` (one side of the store-load handshake
/// loses its fence), `no_woken` (a wake-up during a run is forgotten), `no_peek` (the user
/// lane is popped without first observing it, so a system signal sent earlier can be
/// overtaken), `notify_closed_no_token` (a push that unparks a closed mailbox schedules
/// nothing, stranding late messages), `chunk_release_relaxed`, `chunk_no_fence` (the last chunk release skips its
/// Acquire fence), `slab_no_generation_bump` (a released slot keeps its generation, so a
/// stale id would resolve to the next entry), `slab_no_reader_wait` (a remove moves the
/// entry out without waiting for lookups that are cloning it), `slab_publish_relaxed` (an
/// insert marks its entry initialised without publishing the write), `slab_return_relaxed`
/// and `slab_take_relaxed` (a freed slot passes from its remove to an insert unsynchronized),
/// `slab_drop_returned_rest` (an insert that takes the returned slots keeps one and loses
/// the rest), `slab_merge_unlinked` (an insert moves returned slots onto a non-empty `spare`
/// without linking them to its head), `sleep_no_fence` and
/// `notify_no_fence` (one side of the pool's sleep handshake loses its fence),
/// `searcher_no_wake` and `sleep_found_work_no_wake` (the last searcher to find work, while
/// looking or in its last look before sleeping, wakes no sleeper), `queued_no_fence` and
/// `queued_no_wake` (a push onto an empty local queue loses its fence, or wakes nobody), and
/// `sleep_no_watch` (a worker that sees another's queued tasks sleeps without watching them),
/// and `watch_keeps_wakeup` (a watcher woken during its watch leaves the wake-up counted).
#[cfg(loom)]
pub(crate) mod mutant {
    use std::sync::OnceLock;

    /// Whether the mutant `name` is switched on.
    pub(crate) fn active(name: &str) -> bool {
        static SELECTED: OnceLock<Option<String>> = OnceLock::new();
        SELECTED
            .get_or_init(|| std::env::var("AIRSSYS_MUTANT").ok())
            .as_deref()
            == Some(name)
    }
}

/// The store-load fence of a `SeqCst` handshake, as loom needs it (see `state.rs`).
///
/// Outside loom this is nothing: both sides of the handshake use `SeqCst` accesses, which are
/// in one total order, and that alone forbids the store-buffering outcome. Loom models
/// `SeqCst` accesses as `AcqRel` only (loom#180), so under `cfg(loom)` this is a
/// `fence(SeqCst)`, which forbids the same outcome, unless the mutant `name` removes it.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn loom_seqcst_fence(name: &str) {
    #[cfg(loom)]
    if !mutant::active(name) {
        fence(Ordering::SeqCst);
    }
}

/// Whether the mutant `name` is active: always `false` outside loom builds.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn mutant(name: &str) -> bool {
    #[cfg(loom)]
    return mutant::active(name);
    #[cfg(not(loom))]
    false
}
