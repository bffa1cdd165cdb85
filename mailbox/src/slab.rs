//! [`Slab`]: a generational slab with wait-free lookups (actor ids in airssys-rt).
//!
//! Slots live in segments that double in size (64, 128, 256, ... slots) and are never freed or
//! moved while the slab lives, so a slot reference stays valid. Each slot has a generation,
//! bumped (by a compare-exchange from the id's generation) when the slot is released: a
//! [`SlabId`] is `(index, generation)` and resolves only while the slot still has that
//! generation and holds that id's entry, so a stale id never resolves, even after the slot has
//! been reused. Free slots form a Treiber stack whose head carries a tag, bumped by every
//! change, against ABA.
//!
//! # A slot's word
//!
//! ```text
//!   63            32 31             0
//!  ┌────────────────┬────────────────┐
//!  │   generation   │    readers     │   Slot::state (AtomicU64)
//!  └────────────────┴────────────────┘
//! ```
//!
//! The entry itself is an `Arc` behind an `AtomicPtr` (from `Arc::into_raw`; null when the
//! slot is empty). A lookup counts itself in `readers` (one `fetch_add`), checks the generation
//! of the value it got, clones the entry's `Arc`, and counts itself out. A remove bumps the
//! generation (a compare-exchange from the id's generation, which later lookups then fail),
//! takes the entry pointer out, and waits until `readers` is zero before it releases its
//! reference: a lookup that counted itself in before the bump may still be cloning. Lookups
//! never wait and take no lock; a remove waits only for lookups of the same slot already under
//! way (a few instructions each, but a lookup preempted there delays the remove: removes are
//! not lock-free). Insert and remove cost a handful of atomic operations on the slot and the
//! free list, where an `arc-swap` cell per slot (the earlier design) walked every thread's debt
//! list on each store.
//!
//! The loom model is `tests/loom_slab.rs` (mutants `slab_no_generation_bump` and
//! `slab_no_reader_wait`).

use core::fmt;
use core::ptr;
use std::sync::Arc;

use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

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

/// One reader in `Slot::state` (the low 32 bits count readers).
const READER: u64 = 1;
const READERS: u64 = u32::MAX as u64;
/// One generation in `Slot::state` (the high 32 bits).
const GENERATION_ONE: u64 = 1 << 32;

fn generation_of(state: u64) -> u32 {
    (state >> 32) as u32
}

struct Slot<T> {
    /// `generation << 32 | readers`: see the module docs.
    state: AtomicU64,
    /// The next free slot while this one is free.
    next_free: AtomicU32,
    /// The entry, from `Arc::into_raw`; null while the slot is empty.
    entry: AtomicPtr<(SlabId, T)>,
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        let entry = self.entry.load(Ordering::Acquire);
        if !entry.is_null() {
            // SAFETY: the slot's own reference (from `Arc::into_raw` in `insert`); `&mut self`
            // means no lookup is cloning it.
            drop(unsafe { Arc::from_raw(entry) });
        }
    }
}

/// A generational slab of shared entries, with wait-free lookups. See the [module docs](self).
///
/// ```
/// use airssys_rt_mailbox::Slab;
///
/// let slab: Slab<&str> = Slab::new();
/// let (a, _) = slab.insert(|_| "a").unwrap();
/// assert_eq!(slab.get(a).as_deref().map(|e| e.1), Some("a"));
/// assert!(slab.remove(a));
/// let (b, _) = slab.insert(|_| "b").unwrap();
/// assert_eq!(b.index, a.index); // the slot is reused...
/// assert!(slab.get(a).is_none()); // ...but the stale id never resolves
/// ```
pub struct Slab<T> {
    segments: [AtomicPtr<Slot<T>>; SEGMENTS],
    /// Slots handed out so far (the next never-used index).
    high: AtomicU32,
    /// Free list head: `(tag << 32) | index`.
    free: AtomicU64,
    live: AtomicU32,
}

// SAFETY: the slab owns its slots; entries are shared as `Arc<(SlabId, T)>` across threads,
// which needs `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for Slab<T> {}
// SAFETY: as above; every shared access goes through atomics or the snapshot cells.
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
            free: AtomicU64::new(NONE as u64),
            live: AtomicU32::new(0),
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
        let fresh: Box<[Slot<T>]> = (0..len)
            .map(|_| Slot {
                state: AtomicU64::new(0),
                next_free: AtomicU32::new(NONE),
                entry: AtomicPtr::new(ptr::null_mut()),
            })
            .collect();
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

    /// Takes a free slot for the entry `make` builds from its id. `None` when the id space is
    /// exhausted.
    pub fn insert(&self, make: impl FnOnce(SlabId) -> T) -> Option<(SlabId, Arc<(SlabId, T)>)> {
        let index = self.pop_free().or_else(|| {
            let i = self.high.fetch_add(1, Ordering::Relaxed);
            (i != NONE).then_some(i)
        })?;
        let slot = self.slot_or_grow(index)?;
        let id = SlabId {
            index,
            generation: generation_of(slot.state.load(Ordering::Acquire)),
        };
        let entry = Arc::new((id, make(id)));
        // The slot is ours and empty (fresh, or emptied by the remove that freed it).
        slot.entry
            .store(Arc::into_raw(entry.clone()).cast_mut(), Ordering::Release);
        self.live.fetch_add(1, Ordering::Relaxed);
        Some((id, entry))
    }

    /// The entry of `id`, if it has not been removed.
    pub fn get(&self, id: SlabId) -> Option<Arc<(SlabId, T)>> {
        let slot = self.slot(id.index)?;
        // A stale id is turned away without a write.
        if generation_of(slot.state.load(Ordering::Acquire)) != id.generation {
            return None;
        }
        let state = slot.state.fetch_add(READER, Ordering::Acquire);
        let mut found = None;
        if generation_of(state) == id.generation {
            let entry = slot.entry.load(Ordering::Acquire);
            if !entry.is_null() {
                // SAFETY: we are counted in `readers` with the entry's generation current at
                // that point, so a remove of this entry (which bumps the generation after our
                // count) waits for us to count out before releasing the slot's reference: the
                // pointer is live, from `Arc::into_raw`, and we take a reference of our own.
                found = Some(unsafe {
                    Arc::increment_strong_count(entry);
                    Arc::from_raw(entry)
                });
            }
        }
        // Count out: Release, so our clone happens-before the remove's release.
        slot.state.fetch_sub(READER, Ordering::Release);
        // The slot may have been released and reused before we counted in: check the id.
        found.filter(|e| e.0 == id)
    }

    /// Removes `id`'s entry: the id never resolves again. Returns `false` if it was already
    /// removed.
    pub fn remove(&self, id: SlabId) -> bool {
        let Some(slot) = self.slot(id.index) else {
            return false;
        };
        let bump = if crate::sync::mutant("slab_no_generation_bump") {
            0
        } else {
            GENERATION_ONE
        };
        let mut state = slot.state.load(Ordering::Relaxed);
        loop {
            if generation_of(state) != id.generation {
                return false;
            }
            match slot.state.compare_exchange_weak(
                state,
                state.wrapping_add(bump),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        let entry = slot.entry.swap(ptr::null_mut(), Ordering::AcqRel);
        // Lookups that counted in before the bump may be cloning `entry`: wait for them.
        if !crate::sync::mutant("slab_no_reader_wait") {
            while slot.state.load(Ordering::Acquire) & READERS != 0 {
                crate::sync::spin_loop();
            }
        }
        if !entry.is_null() {
            // SAFETY: the slot's reference, taken out of the slot above (so released once);
            // no lookup is cloning it any more.
            drop(unsafe { Arc::from_raw(entry) });
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.push_free(id.index, slot);
        true
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed) as usize
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop_free(&self) -> Option<u32> {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            let index = head as u32;
            if index == NONE {
                return None;
            }
            let next = self.slot(index)?.next_free.load(Ordering::Acquire);
            let new = ((head >> 32).wrapping_add(1) << 32) | next as u64;
            match self
                .free
                .compare_exchange(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(index),
                Err(actual) => head = actual,
            }
        }
    }

    fn push_free(&self, index: u32, slot: &Slot<T>) {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            slot.next_free.store(head as u32, Ordering::Release);
            let new = ((head >> 32).wrapping_add(1) << 32) | index as u64;
            match self
                .free
                .compare_exchange(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }
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
