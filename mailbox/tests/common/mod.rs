//! Test helpers shared by the mailbox's integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A message that records its own drop in a shared table, so tests can assert that every
/// message is dropped exactly once.
#[derive(Debug)]
pub struct Tracked {
    /// The message id (an index into the drop table).
    pub id: usize,
    drops: Arc<Vec<AtomicU32>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

/// Makes up to `n` tracked messages and checks their drop counts.
pub struct DropTable(Arc<Vec<AtomicU32>>);

impl DropTable {
    /// A table for ids `0..n`.
    pub fn new(n: usize) -> Self {
        Self(Arc::new((0..n).map(|_| AtomicU32::new(0)).collect()))
    }
    /// A tracked message with this id.
    pub fn make(&self, id: usize) -> Tracked {
        Tracked {
            id,
            drops: self.0.clone(),
        }
    }
    /// How often message `id` was dropped.
    pub fn count(&self, id: usize) -> u32 {
        self.0[id].load(Ordering::SeqCst)
    }
    /// Asserts that messages `0..made` were each dropped exactly once.
    pub fn assert_each_dropped_once(&self, made: usize) {
        for id in 0..made {
            assert_eq!(
                self.count(id),
                1,
                "message {id} dropped {} times",
                self.count(id)
            );
        }
    }
}
