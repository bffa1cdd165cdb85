//! The generational slab's behaviour on one thread: ids, reuse, stale and forged ids, entry
//! ownership, and a lookup whose `clone` panics. (Concurrency: `loom_slab.rs`.)
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use airssys_rt_mailbox::{Slab, SlabId};

#[test]
fn ids_resolve_until_removed_and_stale_ids_never_again() {
    let slab = Slab::new();
    let a = slab.insert(|id| (id, "a")).unwrap();
    let b = slab.insert(|id| (id, "b")).unwrap();
    assert_ne!(a.index, b.index);
    assert_eq!(
        slab.get(a),
        Some((a, "a")),
        "make gets the id it is stored under"
    );
    assert_eq!(slab.get(b), Some((b, "b")));
    assert_eq!(slab.len(), 2);

    assert_eq!(slab.take(a), Some((a, "a")));
    assert_eq!(slab.take(a), None, "taken twice");
    assert!(!slab.remove(a), "removed after take");
    assert_eq!(slab.get(a), None);
    assert_eq!(slab.len(), 1);

    let c = slab.insert(|id| (id, "c")).unwrap();
    assert_eq!(c.index, a.index, "the freed slot is reused");
    assert_ne!(c.generation, a.generation);
    assert_eq!(
        slab.get(a),
        None,
        "a stale id resolved to the slot's next entry"
    );
    assert_eq!(slab.get(c), Some((c, "c")));
}

#[test]
fn forged_ids_resolve_to_nothing_and_remove_nothing() {
    let slab = Slab::new();
    let a = slab.insert(|_| 1u32).unwrap();
    assert!(slab.remove(a));
    // The freed slot's current generation, but no entry: a forged id must not read it.
    let forged = SlabId {
        index: a.index,
        generation: a.generation.wrapping_add(1),
    };
    assert_eq!(slab.get(forged), None);
    assert!(!slab.remove(forged));
    // An index never handed out, in and beyond the first segment.
    for index in [5, 1_000, u32::MAX - 1] {
        let id = SlabId {
            index,
            generation: 0,
        };
        assert_eq!(slab.get(id), None);
        assert!(!slab.remove(id));
    }
    assert!(slab.is_empty());
    // The slot still works after the forged calls.
    let b = slab.insert(|_| 2).unwrap();
    assert_eq!(b, forged);
    assert_eq!(slab.get(b), Some(2));
}

#[test]
fn the_slab_owns_its_entries_and_drops_them_once() {
    let tracker = Arc::new(());
    let slab = Slab::new();
    let ids: Vec<_> = (0..200)
        .map(|_| slab.insert(|_| tracker.clone()).unwrap())
        .collect();
    assert_eq!(Arc::strong_count(&tracker), 201);
    let looked_up = slab.get(ids[3]).unwrap();
    assert_eq!(Arc::strong_count(&tracker), 202, "a lookup gives a clone");
    drop(looked_up);
    for id in &ids[..100] {
        assert!(slab.remove(*id));
    }
    assert_eq!(Arc::strong_count(&tracker), 101, "remove drops the entry");
    drop(slab);
    assert_eq!(
        Arc::strong_count(&tracker),
        1,
        "the slab drops the entries left"
    );
}

/// An entry whose clone panics.
struct Grenade;

impl Clone for Grenade {
    fn clone(&self) -> Self {
        panic!("clone failed")
    }
}

#[test]
fn a_lookup_whose_clone_panics_counts_itself_out() {
    let slab = Slab::new();
    let id = slab.insert(|_| Grenade).unwrap();
    let lookup = catch_unwind(AssertUnwindSafe(|| slab.get(id).is_some()));
    assert!(lookup.is_err(), "the clone's panic reaches the caller");
    // A remove waits for the lookups counted in: it would spin forever if the panicking one
    // had not counted itself out.
    assert!(slab.remove(id));
    assert!(slab.is_empty());
}

#[test]
fn every_freed_slot_is_reused_before_the_slab_grows() {
    let slab = Slab::new();
    let ids: Vec<_> = (0..300).map(|i| slab.insert(|_| i).unwrap()).collect();
    assert_eq!(slab.slots(), 300);
    // Free in two rounds with inserts between them, so that freed slots sit on both lists
    // (returned by removes, and spare ones an insert moved there).
    for id in &ids[..100] {
        assert!(slab.remove(*id));
    }
    let first: Vec<_> = (0..10)
        .map(|i| slab.insert(|_| 1_000 + i).unwrap())
        .collect();
    for id in &ids[100..200] {
        assert!(slab.remove(*id));
    }
    let second: Vec<_> = (0..190)
        .map(|i| slab.insert(|_| 2_000 + i).unwrap())
        .collect();
    assert_eq!(
        slab.slots(),
        300,
        "the slab grew while freed slots were left"
    );
    let mut indices: Vec<u32> = first
        .iter()
        .chain(&second)
        .chain(&ids[200..])
        .map(|id| id.index)
        .collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 300, "a slot was handed out twice");
    let next = slab.insert(|_| 0).unwrap();
    assert_eq!(next.index, 300, "with no slot free, the slab grows");
}

#[test]
fn slots_pass_between_threads_without_loss_or_sharing() {
    const PER_THREAD: usize = 2_000;
    let slab = Arc::new(Slab::new());
    // Two threads insert and hand ids over a channel; two others remove them.
    let (tx, rx) = std::sync::mpsc::channel::<SlabId>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let inserters: Vec<_> = (0..2u32)
        .map(|t| {
            let (slab, tx) = (slab.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in 0..PER_THREAD as u32 {
                    let value = t << 16 | i;
                    let id = slab.insert(|_| value).unwrap();
                    assert_eq!(slab.get(id), Some(value), "a live entry was overwritten");
                    tx.send(id).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let removers: Vec<_> = (0..2)
        .map(|_| {
            let (slab, rx) = (slab.clone(), rx.clone());
            std::thread::spawn(move || loop {
                let id = match rx.lock().unwrap().recv() {
                    Ok(id) => id,
                    Err(_) => return,
                };
                assert!(slab.remove(id), "an id was removed twice or lost its entry");
            })
        })
        .collect();
    for t in inserters.into_iter().chain(removers) {
        t.join().unwrap();
    }
    assert!(slab.is_empty());
    // Every slot handed out is free again: as many inserts as slots take them all, and only
    // then does the slab grow.
    let slots = slab.slots();
    let ids: Vec<_> = (0..slots).map(|_| slab.insert(|_| 0).unwrap()).collect();
    assert_eq!(slab.slots(), slots, "a freed slot was lost");
    let mut indices: Vec<u32> = ids.iter().map(|id| id.index).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), slots, "a slot was handed out twice");
}
