//! [`Slab`]: a lock-free generational slab (actor ids in airssys-rt).
//!
//! Slots live in segments that double in size (64, 128, 256, ... slots) and are never freed or
//! moved while the slab lives, so a slot reference stays valid. Each slot has a generation,
//! bumped (by a compare-exchange from the id's generation) when the slot is released: a
//! [`SlabId`] is `(index, generation)` and resolves only while the slot still has that
//! generation and holds that id's entry, so a stale id never resolves, even after the slot has
//! been reused. Free slots form a Treiber stack whose head carries a tag, bumped by every
//! change, against ABA. Reads are wait-free: a segment load, a generation check, an entry load.
//!
//! The loom model is `tests/loom_slab.rs` (mutant `slab_no_generation_bump`).

use core::fmt;
use core::ptr;
use std::sync::Arc;

use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering, SnapshotCell};

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

struct Slot<T> {
    generation: AtomicU32,
    /// The next free slot while this one is free.
    next_free: AtomicU32,
    entry: SnapshotCell<(SlabId, T)>,
}

/// A lock-free generational slab of shared entries. See the [module docs](self).
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
                generation: AtomicU32::new(0),
                next_free: AtomicU32::new(NONE),
                entry: SnapshotCell::empty(),
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
            generation: slot.generation.load(Ordering::Acquire),
        };
        let entry = Arc::new((id, make(id)));
        slot.entry.store(Some(entry.clone()));
        self.live.fetch_add(1, Ordering::Relaxed);
        Some((id, entry))
    }

    /// The entry of `id`, if it has not been removed.
    pub fn get(&self, id: SlabId) -> Option<Arc<(SlabId, T)>> {
        let slot = self.slot(id.index)?;
        if slot.generation.load(Ordering::Acquire) != id.generation {
            return None;
        }
        // The slot may be released and reused between the two loads: check the entry's id.
        slot.entry.load().filter(|e| e.0 == id)
    }

    /// Removes `id`'s entry: the id never resolves again. Returns `false` if it was already
    /// removed.
    pub fn remove(&self, id: SlabId) -> bool {
        let Some(slot) = self.slot(id.index) else {
            return false;
        };
        let next = if crate::sync::mutant("slab_no_generation_bump") {
            id.generation
        } else {
            id.generation.wrapping_add(1)
        };
        if slot
            .generation
            .compare_exchange(id.generation, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        slot.entry.store(None);
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
