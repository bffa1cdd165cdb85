//! [`Slab`]: a generational slab with wait-free lookups (actor ids in airssys-rt).
//!
//! Slots live in segments that double in size (64, 128, 256, ... slots) and are never freed or
//! moved while the slab lives, so a slot reference stays valid. Each slot has a generation,
//! bumped (by a compare-exchange from the id's generation) when the slot is released: a
//! [`SlabId`] is `(index, generation)` and resolves only while the slot still has that
//! generation and holds that id's entry, so a stale id never resolves, even after the slot has
//! been reused.
//!
//! # The free slots
//!
//! Free slots are kept on two lists, so that threads that insert and threads that remove do not
//! pass one cache line back and forth on every spawn:
//!
//! - **`returned`**: a remove pushes the slot it freed here (a compare-exchange). Nothing is
//!   ever popped from it one by one: an insert takes the whole list at once with a `swap`, so
//!   it needs no tag (a push's compare-exchange only relies on the head it links to being the
//!   head still, whatever happened in between).
//! - **`spare`**: inserts pop from here, a Treiber stack whose head carries a tag, bumped by
//!   every change, against ABA. An insert that finds it empty takes all of `returned`, keeps
//!   the first slot and moves the rest here.
//!
//! An actor system's spawning thread thus pops from a line that only inserting threads touch,
//! and meets the removing threads' line once per batch of freed slots, not once per spawn (a
//! single stack cost a third of a spawn, profiled, with spawns and exits on different cores).
//!
//! # A slot
//!
//! ```text
//!   63            32   31    30             0
//!  ┌────────────────┬──────┬────────────────┐
//!  │   generation   │ FULL │    readers     │   Slot::state (AtomicU64)
//!  └────────────────┴──────┴────────────────┘
//!  Slot::next_free (AtomicU32)    Slot::entry (the value itself, written while the slot is free)
//! ```
//!
//! The entry is stored in the slot itself (no allocation per entry). `FULL` says the entry is
//! initialised: an insert writes the entry into its (free, so private) slot and then sets
//! `FULL` with a Release `fetch_or`. A lookup counts itself in `readers` (one Acquire
//! `fetch_add`); if the value it got has the id's generation and `FULL`, it clones the entry,
//! then counts itself out (Release `fetch_sub`). A remove clears `FULL` and bumps the
//! generation in one compare-exchange (from a value with the id's generation and `FULL`, which
//! later lookups and removes then fail), waits until `readers` is zero (lookups that counted in
//! before may still be cloning), then moves the entry out. Lookups never wait and take no lock;
//! a remove waits only for lookups of the same slot already under way (a few instructions
//! each, but a lookup preempted there delays the remove: removes are not lock-free).
//!
//! A slot is 32 bytes for an entry of 16 (an actor's address): the slab costs a live actor
//! 32 bytes and no allocation of its own (an `Arc` per entry, the earlier design, cost 40 more
//! bytes and an allocation per spawn; an `arc-swap` cell per slot, the one before, walked
//! every thread's debt list on each store).
//!
//! The loom model is `tests/loom_slab.rs` (mutants `slab_no_generation_bump`,
//! `slab_no_reader_wait` and `slab_publish_relaxed`).

use core::fmt;
use core::mem::MaybeUninit;
use core::ptr;

use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering, UnsafeCell};

const FIRST_SEGMENT: usize = 64;
const SEGMENTS: usize = 26;
const NONE: u32 = u32::MAX;

/// A slot's identity: its index and the generation it had when the entry was inserted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SlabId {
    /// The slot index.
    pub index: u32,
    /// The slot's generation.
    pub generation: u32,
}

/// One reader in `Slot::state` (bits 0..31 count readers).
const READER: u64 = 1;
const READERS: u64 = (1 << 31) - 1;
/// The slot holds an initialised entry.
const FULL: u64 = 1 << 31;
/// One generation in `Slot::state` (the high 32 bits).
const GENERATION_ONE: u64 = 1 << 32;

fn generation_of(state: u64) -> u32 {
    (state >> 32) as u32
}

/// Whether `state` (a slot's word) holds the live entry of generation `generation`.
fn holds(state: u64, generation: u32) -> bool {
    generation_of(state) == generation && state & FULL != 0
}

struct Slot<T> {
    /// `generation << 32 | FULL | readers`: see the module docs.
    state: AtomicU64,
    /// The next free slot while this one is free.
    next_free: AtomicU32,
    /// The entry: initialised exactly while `FULL` is set (and while a remove that cleared
    /// it is moving it out).
    entry: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    fn empty() -> Self {
        Self {
            state: AtomicU64::new(0),
            next_free: AtomicU32::new(NONE),
            entry: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) & FULL != 0 {
            // SAFETY: `FULL` means the entry is initialised; `&mut self` means no lookup is
            // cloning it and nobody can reach it again.
            self.entry
                .with_mut(|entry| unsafe { (*entry).assume_init_drop() });
        }
    }
}

/// Counts a lookup out of its slot's `readers` when dropped (also if a `clone` panics, so
/// a remove never waits for a lookup that is gone).
struct CountedIn<'a>(&'a AtomicU64);

impl Drop for CountedIn<'_> {
    fn drop(&mut self) {
        // Release: our clone of the entry happens-before the remove that waits for us.
        self.0.fetch_sub(READER, Ordering::Release);
    }
}

/// A generational slab of entries with wait-free lookups. See the [module docs](self).
///
/// ```
/// use airssys_rt_mailbox::Slab;
///
/// let slab: Slab<&str> = Slab::new();
/// let a = slab.insert(|_| "a").unwrap();
/// assert_eq!(slab.get(a), Some("a"));
/// assert!(slab.remove(a));
/// let b = slab.insert(|_| "b").unwrap();
/// assert_eq!(b.index, a.index); // the slot is reused...
/// assert!(slab.get(a).is_none()); // ...but the stale id never resolves
/// ```
pub struct Slab<T> {
    segments: [AtomicPtr<Slot<T>>; SEGMENTS],
    /// Slots handed out so far (the next never-used index).
    high: AtomicU32,
    /// Head (an index) of the slots removes freed, linked by `next_free`: pushed by removing
    /// threads, taken whole by inserting ones. Alone on its line.
    returned: Padded<AtomicU32>,
    /// Head of the free slots inserts pop from: `(tag << 32) | index`. Alone on its line,
    /// which only inserting threads touch.
    spare: Padded<AtomicU64>,
    /// Entries inserted, ever: written by inserting threads only.
    inserted: Padded<AtomicU64>,
    /// Entries removed, ever: written by removing threads only (often others than the
    /// inserting ones, hence two counters rather than one count of live entries).
    removed: Padded<AtomicU64>,
}

/// A value alone on its cache lines (128 bytes: x86 prefetches 64-byte lines in pairs), so
/// that threads writing it do not slow down threads touching its neighbours.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> core::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

// SAFETY: the slab owns its entries and hands out clones of them to any thread, and drops
// them on the thread that removes them: that needs `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for Slab<T> {}
// SAFETY: as above; entries are written only in private (free) slots and published by the
// `FULL` bit, read only by counted-in lookups, and moved out only once no lookup is reading.
unsafe impl<T: Send + Sync> Sync for Slab<T> {}

fn locate(index: u32) -> (usize, usize) {
    let i = index as usize + FIRST_SEGMENT;
    let segment =
        (usize::BITS - 1 - i.leading_zeros()) as usize - FIRST_SEGMENT.trailing_zeros() as usize;
    (segment, i - (FIRST_SEGMENT << segment))
}

impl<T> Slab<T> {
    /// An empty slab (no allocation until the first insert).
    pub fn new() -> Self {
        Self {
            segments: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            high: AtomicU32::new(0),
            returned: Padded(AtomicU32::new(NONE)),
            spare: Padded(AtomicU64::new(NONE as u64)),
            inserted: Padded(AtomicU64::new(0)),
            removed: Padded(AtomicU64::new(0)),
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        let (segment, offset) = locate(index);
        let base = self.segments.get(segment)?.load(Ordering::Acquire);
        // SAFETY: a non-null segment pointer is a leaked array of `FIRST_SEGMENT << segment`
        // initialised slots that is only freed with the slab; `offset` is in range.
        (!base.is_null()).then(|| unsafe { &*base.add(offset) })
    }

    fn slot_or_grow(&self, index: u32) -> Option<&Slot<T>> {
        if let Some(slot) = self.slot(index) {
            return Some(slot);
        }
        let (segment, _) = locate(index);
        let cell = self.segments.get(segment)?;
        let len = FIRST_SEGMENT << segment;
        let fresh: Box<[Slot<T>]> = (0..len).map(|_| Slot::empty()).collect();
        let fresh = Box::into_raw(fresh).cast::<Slot<T>>();
        if cell
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread installed the segment first.
            // SAFETY: `fresh` is ours, unpublished, made from a boxed slice of `len` slots.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, len)) });
        }
        self.slot(index)
    }

    /// Takes a free slot for the entry `make` builds from its id, and returns the id. `None`
    /// when the id space is exhausted (`make` is not called then).
    pub fn insert(&self, make: impl FnOnce(SlabId) -> T) -> Option<SlabId> {
        let index = self.pop_free().or_else(|| {
            let i = self.high.fetch_add(1, Ordering::Relaxed);
            (i != NONE).then_some(i)
        })?;
        let slot = self.slot_or_grow(index)?;
        // The slot is ours and empty (fresh, or emptied by the remove that freed it, which
        // happens-before our `pop_free`); only lookups' reader counts change its word now.
        let id = SlabId {
            index,
            generation: generation_of(slot.state.load(Ordering::Relaxed)),
        };
        let value = make(id);
        // SAFETY: `FULL` is clear, so no lookup reads the entry and no remove moves it: the
        // slot's entry is ours to write. The previous entry, if any, was moved out.
        slot.entry
            .with_mut(|entry| unsafe { (*entry).write(value) });
        // Counted before it is published, so before any removal of it (see `len`).
        self.inserted.fetch_add(1, Ordering::Relaxed);
        // Publish: Release, so a lookup that sees `FULL` (Acquire) sees the entry written.
        slot.state.fetch_or(FULL, crate::sync::ord::SLAB_PUBLISH());
        Some(id)
    }

    /// A clone of `id`'s entry, if it has not been removed.
    pub fn get(&self, id: SlabId) -> Option<T>
    where
        T: Clone,
    {
        let slot = self.slot(id.index)?;
        // A stale id is turned away without a write.
        if !holds(slot.state.load(Ordering::Relaxed), id.generation) {
            return None;
        }
        let state = slot.state.fetch_add(READER, Ordering::Acquire);
        let _counted_in = CountedIn(&slot.state);
        if !holds(state, id.generation) {
            return None;
        }
        // SAFETY: we are counted in, and the word had the id's generation and `FULL` when we
        // did: the insert that set `FULL` happens-before us (its Release `fetch_or`, our
        // Acquire `fetch_add` in its release sequence), so the entry is initialised; a remove
        // of it (which clears `FULL` after our count) waits for us to count out before it
        // moves the entry out. Lookups only read it.
        Some(
            slot.entry
                .with(|entry| unsafe { (*entry).assume_init_ref().clone() }),
        )
    }

    /// Removes `id`'s entry and drops it: the id never resolves again. Returns `false` if it
    /// was already removed (or never inserted).
    pub fn remove(&self, id: SlabId) -> bool {
        self.take(id).is_some()
    }

    /// Removes `id`'s entry and returns it: the id never resolves again. `None` if it was
    /// already removed (or never inserted).
    pub fn take(&self, id: SlabId) -> Option<T> {
        let slot = self.slot(id.index)?;
        let bump = if crate::sync::mutant("slab_no_generation_bump") {
            0
        } else {
            GENERATION_ONE
        };
        let mut state = slot.state.load(Ordering::Relaxed);
        loop {
            if !holds(state, id.generation) {
                return None;
            }
            match slot.state.compare_exchange_weak(
                state,
                state.wrapping_add(bump) & !FULL,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        // Lookups that counted in before our compare-exchange may be cloning the entry: wait
        // for them (Acquire: their clones happen-before our move).
        if !crate::sync::mutant("slab_no_reader_wait") {
            while slot.state.load(Ordering::Acquire) & READERS != 0 {
                crate::sync::spin_loop();
            }
        }
        // SAFETY: our compare-exchange cleared `FULL` from the entry's generation, so we are
        // the only remover, and later lookups do not read the entry; earlier ones counted out.
        // The entry was initialised (`FULL` was set), and is moved out once: the slot is free
        // from here on.
        let entry = slot
            .entry
            .with_mut(|entry| unsafe { (*entry).assume_init_read() });
        // Release, so that `len`, having seen this removal, sees its insert (which
        // happens-before it).
        self.removed.fetch_add(1, Ordering::Release);
        self.push_free(id.index, slot);
        Some(entry)
    }

    /// Entries now (a snapshot: inserts and removes may race with it).
    pub fn len(&self) -> usize {
        // Removals first: an insert counts itself before it publishes its entry, so before
        // any removal of it, which counts itself with Release. Having seen a removal
        // (Acquire), the insert count we read next includes its insert: never fewer inserts
        // than removals.
        let removed = self.removed.load(Ordering::Acquire);
        let inserted = self.inserted.load(Ordering::Relaxed);
        inserted.saturating_sub(removed) as usize
    }

    /// Entries inserted since the slab was made (removed ones included).
    pub fn inserted(&self) -> u64 {
        self.inserted.load(Ordering::Relaxed)
    }

    /// Slots the slab has handed out so far, live or free: it grows only when no freed slot
    /// is left.
    ///
    /// ```
    /// use airssys_rt_mailbox::Slab;
    ///
    /// let slab: Slab<u8> = Slab::new();
    /// let a = slab.insert(|_| 1).unwrap();
    /// slab.remove(a);
    /// slab.insert(|_| 2).unwrap();
    /// assert_eq!(slab.slots(), 1);
    /// ```
    pub fn slots(&self) -> usize {
        self.high.load(Ordering::Relaxed) as usize
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A free slot: from `spare`, else the first of all the `returned` ones (the rest go to
    /// `spare`). `None` when no slot is free.
    fn pop_free(&self) -> Option<u32> {
        let mut head = self.spare.load(Ordering::Acquire);
        loop {
            let index = head as u32;
            if index == NONE {
                break;
            }
            // The slot may be taken, reused and freed again meanwhile (its `next_free` then
            // stale): the tag, bumped by every change of `spare`, fails our exchange then.
            let next = self.slot(index)?.next_free.load(Ordering::Acquire);
            match self.spare.compare_exchange(
                head,
                tagged(head, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(index),
                Err(actual) => head = actual,
            }
        }
        // Acquire: the removes that freed these slots (moving their entries out, linking them)
        // happen-before our use of them.
        let first = self
            .returned
            .swap(NONE, crate::sync::ord::SLAB_TAKE_RETURNED());
        if first == NONE {
            return None;
        }
        // The list is ours now: nobody else reads or writes these slots' links.
        let rest = self.slot(first)?.next_free.load(Ordering::Relaxed);
        if rest != NONE && !crate::sync::mutant("slab_drop_returned_rest") {
            self.give_spare(rest);
        }
        Some(first)
    }

    /// Pushes the list of free slots that starts at `first` (ours: taken from `returned`)
    /// onto `spare`.
    fn give_spare(&self, first: u32) {
        // The list's last slot, found only if `spare` is not empty (rarely: another insert
        // refilled it since we found it empty).
        let mut last: Option<&Slot<T>> = None;
        let mut head = self.spare.load(Ordering::Acquire);
        loop {
            if (head as u32 != NONE || last.is_some())
                && !crate::sync::mutant("slab_merge_unlinked")
            {
                let last = *last.get_or_insert_with(|| self.last_of(first));
                last.next_free.store(head as u32, Ordering::Relaxed);
            }
            // Release: the links we wrote (and the removes before them) happen-before the pops
            // that take these slots.
            match self.spare.compare_exchange(
                head,
                tagged(head, first),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// The last slot of a list of free slots that is ours.
    fn last_of(&self, first: u32) -> &Slot<T> {
        let mut slot = self.slot(first).expect("a free slot's segment exists");
        loop {
            let next = slot.next_free.load(Ordering::Relaxed);
            if next == NONE {
                return slot;
            }
            slot = self.slot(next).expect("a free slot's segment exists");
        }
    }

    /// Puts a slot a remove freed on `returned`.
    fn push_free(&self, index: u32, slot: &Slot<T>) {
        let mut head = self.returned.load(Ordering::Relaxed);
        loop {
            slot.next_free.store(head, Ordering::Relaxed);
            // Release: our move of the entry out and the link above happen-before the insert
            // that takes the list. No tag: `returned` is only ever taken whole, so a head
            // equal to the one we linked to is the head, whatever happened in between.
            match self.returned.compare_exchange(
                head,
                index,
                crate::sync::ord::SLAB_RETURN(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }
}

/// `spare`'s next head: `index`, with the tag of `head` bumped.
fn tagged(head: u64, index: u32) -> u64 {
    ((head >> 32).wrapping_add(1) << 32) | index as u64
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        for (segment, cell) in self.segments.iter().enumerate() {
            let base = cell.load(Ordering::Acquire);
            if !base.is_null() {
                let len = FIRST_SEGMENT << segment;
                // SAFETY: published by `slot_or_grow` from a boxed slice of `len`; `&mut self`
                // means nobody else can reach it.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(base, len)) });
            }
        }
    }
}

impl<T> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
