//! Actor ids (a lock-free generational slab) and names (`arc-swap` snapshots).
//!
//! # The slab
//!
//! Slots live in segments that double in size (64, 128, 256, ... slots) and are never freed or
//! moved, so a slot reference stays valid forever. Each slot has a generation, bumped every
//! time the slot is released: an [`ActorId`] is `(index, generation)` and resolves only while
//! the slot still has that generation, so a stale id never resolves, even after the slot has
//! been reused. Free slots form a Treiber stack whose head carries a tag (bumped by every
//! change) against ABA. Lookups are wait-free: a segment load, a generation check, and an
//! `arc-swap` load of the slot's entry.
//!
//! # Names
//!
//! The name table is a small, read-mostly `HashMap` published as an `arc-swap` snapshot:
//! readers never block and see the old or the new table, never a mix; writers are serialized
//! by a mutex and publish a new table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::exit::ActorId;
use crate::Pid;

const FIRST_SEGMENT: usize = 64;
const SEGMENTS: usize = 26;
const NONE: u32 = u32::MAX;

struct Slot {
    generation: AtomicU32,
    /// Next free slot while this one is free.
    next_free: AtomicU32,
    entry: ArcSwapOption<Pid>,
}

/// A lock-free generational slab of actor addresses.
pub(crate) struct Slab {
    segments: [AtomicPtr<Slot>; SEGMENTS],
    /// Slots handed out so far (the next never-used index).
    high: AtomicU32,
    /// Free list head: `(tag << 32) | index`.
    free: AtomicU64,
    live: AtomicU32,
}

fn locate(index: u32) -> (usize, usize) {
    let i = index as usize + FIRST_SEGMENT;
    let segment =
        (usize::BITS - 1 - i.leading_zeros()) as usize - FIRST_SEGMENT.trailing_zeros() as usize;
    (segment, i - (FIRST_SEGMENT << segment))
}

impl Slab {
    pub(crate) fn new() -> Self {
        Self {
            segments: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            high: AtomicU32::new(0),
            free: AtomicU64::new(NONE as u64),
            live: AtomicU32::new(0),
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot> {
        let (segment, offset) = locate(index);
        let base = self.segments.get(segment)?.load(Ordering::Acquire);
        // SAFETY: a non-null segment pointer is a leaked array of `FIRST_SEGMENT << segment`
        // initialised slots that is never freed while the slab lives; `offset` is in range.
        (!base.is_null()).then(|| unsafe { &*base.add(offset) })
    }

    fn slot_or_grow(&self, index: u32) -> Option<&Slot> {
        if let Some(slot) = self.slot(index) {
            return Some(slot);
        }
        let (segment, _) = locate(index);
        let len = FIRST_SEGMENT << segment;
        let fresh: Box<[Slot]> = (0..len)
            .map(|_| Slot {
                generation: AtomicU32::new(0),
                next_free: AtomicU32::new(NONE),
                entry: ArcSwapOption::empty(),
            })
            .collect();
        let fresh = Box::into_raw(fresh).cast::<Slot>();
        let cell = self.segments.get(segment)?;
        if cell
            .compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // Another thread installed the segment first.
            // SAFETY: `fresh` is ours, unpublished, and was made from a boxed slice of `len`.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, len)) });
        }
        self.slot(index)
    }

    /// Takes a slot for `pid` (made by `make` from the new id). `None` when the slab is full.
    pub(crate) fn insert(&self, make: impl FnOnce(ActorId) -> Pid) -> Option<(ActorId, Pid)> {
        let index = self.pop_free().or_else(|| {
            let i = self.high.fetch_add(1, Ordering::Relaxed);
            (i != NONE).then_some(i)
        })?;
        let slot = self.slot_or_grow(index)?;
        let id = ActorId {
            index,
            generation: slot.generation.load(Ordering::Acquire),
        };
        let pid = make(id);
        slot.entry.store(Some(Arc::new(pid.clone())));
        self.live.fetch_add(1, Ordering::Relaxed);
        Some((id, pid))
    }

    /// The address of `id`, if it is still alive (its slot has not been released).
    pub(crate) fn get(&self, id: ActorId) -> Option<Pid> {
        let slot = self.slot(id.index)?;
        if slot.generation.load(Ordering::Acquire) != id.generation {
            return None;
        }
        let entry = slot.entry.load_full()?;
        // The slot may have been released and reused between the two loads: check the entry.
        (entry.id() == id).then(|| (*entry).clone())
    }

    /// Releases `id`'s slot: the id never resolves again.
    pub(crate) fn remove(&self, id: ActorId) {
        let Some(slot) = self.slot(id.index) else {
            return;
        };
        if slot
            .generation
            .compare_exchange(
                id.generation,
                id.generation.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return; // already released
        }
        slot.entry.store(None);
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.push_free(id.index, slot);
    }

    /// Actors registered now.
    pub(crate) fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
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
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(index),
                Err(actual) => head = actual,
            }
        }
    }

    fn push_free(&self, index: u32, slot: &Slot) {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            slot.next_free.store(head as u32, Ordering::Release);
            let new = ((head >> 32).wrapping_add(1) << 32) | index as u64;
            match self
                .free
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        for (segment, cell) in self.segments.iter_mut().enumerate() {
            let base = *cell.get_mut();
            if !base.is_null() {
                let len = FIRST_SEGMENT << segment;
                // SAFETY: published by `slot_or_grow` from a boxed slice of `len`; `&mut self`
                // means nobody else can reach it.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, len)) });
            }
        }
    }
}

/// Why a name could not be registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another live actor has the name.
    Taken {
        /// The name.
        name: Arc<str>,
        /// The actor that has it.
        holder: ActorId,
    },
    /// The actor to name is not alive.
    NotAlive(ActorId),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Taken { name, holder } => {
                write!(f, "name {name:?} is already registered to {holder}")
            }
            RegisterError::NotAlive(id) => write!(f, "actor {id} is not alive"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// The name table: snapshots for readers, a mutex for writers.
pub(crate) struct Names {
    table: ArcSwap<HashMap<Arc<str>, Pid>>,
    writer: Mutex<()>,
}

impl Names {
    pub(crate) fn new() -> Self {
        Self {
            table: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
        }
    }

    pub(crate) fn register(&self, name: Arc<str>, pid: Pid) -> Result<(), RegisterError> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load();
        if let Some(holder) = current.get(&name) {
            if holder.is_alive() {
                return Err(RegisterError::Taken {
                    name,
                    holder: holder.id(),
                });
            }
        }
        if !pid.is_alive() {
            return Err(RegisterError::NotAlive(pid.id()));
        }
        let mut next = HashMap::clone(&current);
        next.insert(name, pid);
        self.table.store(Arc::new(next));
        Ok(())
    }

    /// Removes `name` if `only_for` is `None` or the name belongs to that actor. Returns
    /// whether it was removed.
    pub(crate) fn unregister(&self, name: &str, only_for: Option<ActorId>) -> bool {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load();
        match current.get(name) {
            Some(holder) if only_for.is_none_or(|id| holder.id() == id) => {
                let mut next = HashMap::clone(&current);
                next.remove(name);
                self.table.store(Arc::new(next));
                true
            }
            _ => false,
        }
    }

    /// The names registered to `id`.
    pub(crate) fn names_of(&self, id: ActorId) -> Vec<Arc<str>> {
        let table = self.table.load();
        if table.is_empty() {
            return Vec::new();
        }
        table
            .iter()
            .filter(|(_, p)| p.id() == id)
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub(crate) fn whereis(&self, name: &str) -> Option<Pid> {
        self.table
            .load()
            .get(name)
            .filter(|p| p.is_alive())
            .cloned()
    }
}

/// Process groups: group name -> members, published as snapshots like the name table.
pub(crate) struct Groups {
    table: ArcSwap<HashMap<Arc<str>, Arc<Vec<Pid>>>>,
    writer: Mutex<()>,
}

impl Groups {
    pub(crate) fn new() -> Self {
        Self {
            table: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<Arc<str>, Arc<Vec<Pid>>>)) {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&self.table.load());
        f(&mut next);
        next.retain(|_, members| !members.is_empty());
        self.table.store(Arc::new(next));
    }

    /// Adds `pid` to `group` (once). Returns `false` if the actor is not alive.
    pub(crate) fn join(&self, group: &str, pid: Pid) -> bool {
        if !pid.is_alive() {
            return false;
        }
        self.update(|t| {
            let members = t.entry(group.into()).or_default();
            if !members.iter().any(|p| p.id() == pid.id()) {
                let mut m = Vec::clone(members);
                m.push(pid);
                *members = Arc::new(m);
            }
        });
        true
    }

    /// Removes `id` from `group`. Returns whether it was a member.
    pub(crate) fn leave(&self, group: &str, id: ActorId) -> bool {
        let mut was = false;
        self.update(|t| {
            if let Some(members) = t.get_mut(group) {
                was = members.iter().any(|p| p.id() == id);
                if was {
                    *members = Arc::new(members.iter().filter(|p| p.id() != id).cloned().collect());
                }
            }
        });
        was
    }

    /// Removes `id` from every group (when it stops).
    pub(crate) fn leave_all(&self, id: ActorId) {
        let table = self.table.load();
        if table.values().any(|m| m.iter().any(|p| p.id() == id)) {
            drop(table);
            self.update(|t| {
                for members in t.values_mut() {
                    if members.iter().any(|p| p.id() == id) {
                        *members =
                            Arc::new(members.iter().filter(|p| p.id() != id).cloned().collect());
                    }
                }
            });
        }
    }

    /// The live members of `group` (a snapshot).
    pub(crate) fn members(&self, group: &str) -> Arc<Vec<Pid>> {
        self.table.load().get(group).cloned().unwrap_or_default()
    }
}
