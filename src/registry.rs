//! Actor ids, names and process groups.
//!
//! # Ids
//!
//! An [`ActorId`] is a slot of the mailbox crate's generational
//! [`Slab`](crate::mailbox::Slab) (wait-free lookups; index + generation; a stale id never resolves, even after
//! its slot is reused; loom model `mailbox/tests/loom_slab.rs`).
//!
//! # Names
//!
//! The name table is a small, read-mostly `HashMap` published as an `arc-swap` snapshot:
//! readers never block and see the old or the new table, never a mix; writers are serialized
//! by a mutex and publish a new table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::exit::ActorId;
use crate::mailbox::{Slab as GenerationalSlab, SlabId};
use crate::Pid;

/// Actor addresses by id: the mailbox crate's generational slab with wait-free lookups
/// (loom-checked). Each slot holds the actor's `Pid` itself (32 bytes a live actor).
pub(crate) struct Slab(GenerationalSlab<Pid>);

fn slab_id(id: ActorId) -> SlabId {
    SlabId {
        index: id.index,
        generation: id.generation,
    }
}

impl Slab {
    pub(crate) fn new() -> Self {
        Self(GenerationalSlab::new())
    }

    /// Takes a slot for `pid` (made by `make` from the new id). `None` when ids run out.
    pub(crate) fn insert(&self, make: impl FnOnce(ActorId) -> Pid) -> Option<ActorId> {
        let id = self.0.insert(|id| {
            make(ActorId {
                index: id.index,
                generation: id.generation,
            })
        })?;
        Some(ActorId {
            index: id.index,
            generation: id.generation,
        })
    }

    /// The address of `id`, if it is still alive: a stale id never resolves.
    pub(crate) fn get(&self, id: ActorId) -> Option<Pid> {
        self.0.get(slab_id(id))
    }

    /// Releases `id`'s slot: the id never resolves again.
    pub(crate) fn remove(&self, id: ActorId) {
        self.0.remove(slab_id(id));
    }

    /// Actors registered now.
    pub(crate) fn live(&self) -> u32 {
        self.0.len() as u32
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
