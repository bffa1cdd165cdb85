//! Loom model: the generational slab's free list and generations under concurrent insert and
//! remove. Two live entries never share a slot, every live id resolves to its own entry, and a
//! removed id never resolves again, even when its slot is reused at once (mutant
//! `slab_no_generation_bump` must fail here).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_slab`
#![cfg(loom)]

use airssys_rt_mailbox::Slab;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

#[test]
fn slots_unique_and_stale_ids_never_resolve() {
    loom::model(|| {
        let slab = Arc::new(Slab::<u32>::new());
        let (first, _) = slab.insert(|_| 0).unwrap();
        let other = {
            let slab = slab.clone();
            thread::spawn(move || slab.insert(|_| 1).unwrap().0)
        };
        // Free a slot and take one again while the other thread inserts.
        assert!(slab.remove(first));
        let (mine, _) = slab.insert(|_| 2).unwrap();
        let theirs = other.join().unwrap();
        assert_ne!(mine.index, theirs.index, "two live entries share a slot");
        assert!(slab.get(first).is_none(), "a removed id resolved");
        assert!(!slab.remove(first), "removed twice");
        assert_eq!(slab.get(mine).map(|e| e.1), Some(2));
        assert_eq!(slab.get(theirs).map(|e| e.1), Some(1));
        assert_eq!(slab.len(), 2);
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

/// A lookup racing with the remove of its entry gets either the entry, alive for as long as
/// the lookup holds it, or nothing; never a released entry (mutant `slab_no_reader_wait`
/// must fail here: the remove would release the entry while the lookup clones it).
#[test]
fn a_lookup_racing_with_remove_never_gets_a_released_entry() {
    loom::model(|| {
        let slab = Arc::new(Slab::<Tracked>::new());
        let dropped = Arc::new(AtomicBool::new(false));
        let (id, entry) = slab
            .insert(|_| Tracked {
                value: 7,
                dropped: dropped.clone(),
            })
            .unwrap();
        drop(entry);
        let reader = {
            let (slab, dropped) = (slab.clone(), dropped.clone());
            thread::spawn(move || {
                if let Some(found) = slab.get(id) {
                    assert_eq!(found.1.value, 7);
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
