//! Loom models: the generational slab's free list and generations under concurrent insert and
//! remove. Two live entries never share a slot, every live id resolves to its own entry, and a
//! removed id never resolves again, even when its slot is reused at once (mutant
//! `slab_no_generation_bump` must fail here); lookups racing with a remove or an insert read
//! the entry only while it is alive and written.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_slab`
#![cfg(loom)]

use airssys_rt_mailbox::{Slab, SlabId};
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

#[test]
fn slots_unique_and_stale_ids_never_resolve() {
    loom::model(|| {
        let slab = Arc::new(Slab::<u32>::new());
        let first = slab.insert(|_| 0).unwrap();
        let other = {
            let slab = slab.clone();
            thread::spawn(move || slab.insert(|_| 1).unwrap())
        };
        // Free a slot and take one again while the other thread inserts.
        assert!(slab.remove(first));
        let mine = slab.insert(|_| 2).unwrap();
        let theirs = other.join().unwrap();
        assert_ne!(mine.index, theirs.index, "two live entries share a slot");
        assert!(slab.get(first).is_none(), "a removed id resolved");
        assert!(!slab.remove(first), "removed twice");
        assert_eq!(slab.get(mine), Some(2));
        assert_eq!(slab.get(theirs), Some(1));
        assert_eq!(slab.len(), 2);
    });
}

/// Slots freed on one thread reach inserts on another in batches (all of `returned` taken at
/// once, the rest moved to `spare`): none is lost, so the slab does not grow while a freed
/// slot is left (mutant `slab_drop_returned_rest` must fail here), and a freed slot's remove
/// happens-before its reuse (mutants `slab_return_relaxed` and `slab_take_relaxed` must fail
/// here: loom reports the race on the slot's entry).
#[test]
fn freed_slots_are_reused_before_the_slab_grows() {
    loom::model(|| {
        let slab = Arc::new(Slab::<u32>::new());
        let a = slab.insert(|_| 0).unwrap();
        let b = slab.insert(|_| 1).unwrap();
        let c = slab.insert(|_| 2).unwrap();
        let remover = {
            let slab = slab.clone();
            thread::spawn(move || {
                assert!(slab.remove(a));
                assert!(slab.remove(b));
            })
        };
        assert!(slab.remove(c));
        // At least `c` is returned by now, so this takes a freed slot.
        let x = slab.insert(|_| 3).unwrap();
        remover.join().unwrap();
        let y = slab.insert(|_| 4).unwrap();
        let z = slab.insert(|_| 5).unwrap();
        assert_eq!(slab.slots(), 3, "a freed slot was lost: the slab grew");
        let mut indices = [x.index, y.index, z.index];
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2], "a slot was handed out twice");
        assert_eq!(
            [slab.get(x), slab.get(y), slab.get(z)],
            [Some(3), Some(4), Some(5)]
        );
    });
}

/// Two inserts that both find `spare` empty each take a batch of returned slots and move
/// its rest to `spare`, one of them onto the other's (its list's last slot linked to the
/// head it found): no slot is handed out twice or lost (mutant `slab_merge_unlinked`, which
/// skips that link, must fail here) and every live id resolves to its own entry.
#[test]
fn two_refills_of_the_spare_slots_merge() {
    loom::model(|| {
        let slab = Arc::new(Slab::<u32>::new());
        let ids: Vec<SlabId> = (0..4).map(|i| slab.insert(|_| i).unwrap()).collect();
        assert!(slab.remove(ids[0]));
        assert!(slab.remove(ids[1]));
        let remover = {
            let (slab, c, d) = (slab.clone(), ids[2], ids[3]);
            thread::spawn(move || {
                assert!(slab.remove(c));
                assert!(slab.remove(d));
            })
        };
        let inserter = {
            let slab = slab.clone();
            thread::spawn(move || slab.insert(|_| 10).unwrap())
        };
        let mine = slab.insert(|_| 11).unwrap();
        let theirs = inserter.join().unwrap();
        remover.join().unwrap();
        // Whatever is free now (two of the four slots, or three if an insert found none free,
        // the other holding the returned ones, and grew the slab: once at most), the next
        // inserts take it without sharing a slot and without growing the slab.
        let more: Vec<SlabId> = (0..3).map(|i| slab.insert(|_| 20 + i).unwrap()).collect();
        let mut indices: Vec<u32> = [mine, theirs]
            .iter()
            .chain(&more)
            .map(|id| id.index)
            .collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), 5, "a slot was handed out twice");
        assert!(slab.slots() <= 5, "the slab grew with slots free");
        assert_eq!(slab.get(mine), Some(11));
        assert_eq!(slab.get(theirs), Some(10));
        for (i, id) in more.iter().enumerate() {
            assert_eq!(slab.get(*id), Some(20 + i as u32));
        }
    });
}

/// An entry that records its drop in a flag outside itself.
struct Tracked {
    value: u32,
    dropped: Arc<AtomicBool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A lookup racing with the remove of its entry gets either a clone of the entry, made
/// while the entry was alive, or nothing; never a clone of a moved-out entry (mutant
/// `slab_no_reader_wait` must fail here: the remove would move the entry out and drop it while
/// the lookup clones it, which loom reports as a race on the slot).
#[test]
fn a_lookup_racing_with_remove_never_gets_a_released_entry() {
    loom::model(|| {
        let slab = Arc::new(Slab::<Arc<Tracked>>::new());
        let dropped = Arc::new(AtomicBool::new(false));
        let id = slab
            .insert(|_| {
                Arc::new(Tracked {
                    value: 7,
                    dropped: dropped.clone(),
                })
            })
            .unwrap();
        let reader = {
            let (slab, dropped) = (slab.clone(), dropped.clone());
            thread::spawn(move || {
                if let Some(found) = slab.get(id) {
                    assert_eq!(found.value, 7);
                    assert!(
                        !dropped.load(Ordering::SeqCst),
                        "a lookup got an entry already released"
                    );
                }
            })
        };
        assert!(slab.remove(id));
        reader.join().unwrap();
        assert!(slab.get(id).is_none());
        assert!(dropped.load(Ordering::SeqCst), "the entry leaked");
    });
}

/// An id handed to another thread without any synchronization of its own (a Relaxed store)
/// resolves there, if at all, to the entry fully written: the slab publishes the entry itself (mutant
/// `slab_publish_relaxed` must fail here: loom reports the unsynchronized read of the slot).
#[test]
fn an_inserted_entry_is_published_with_its_id() {
    loom::model(|| {
        let slab = Arc::new(Slab::<u64>::new());
        let handoff = Arc::new(AtomicU64::new(u64::MAX));
        let reader = {
            let (slab, handoff) = (slab.clone(), handoff.clone());
            thread::spawn(move || {
                let raw = handoff.load(Ordering::Relaxed);
                if raw != u64::MAX {
                    let id = SlabId {
                        index: raw as u32,
                        generation: (raw >> 32) as u32,
                    };
                    // Without synchronization the reader may not see the insert yet (`None`);
                    // whatever it sees of the entry is all of it.
                    if let Some(found) = slab.get(id) {
                        assert_eq!(found, 42);
                    }
                }
            })
        };
        let id = slab.insert(|_| 42).unwrap();
        handoff.store(
            (id.generation as u64) << 32 | id.index as u64,
            Ordering::Relaxed,
        );
        reader.join().unwrap();
    });
}
