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
//! by a mutex and publish a new table. Process groups are kept the same way.
//!
//! # Leaving the tables on exit
//!
//! An actor that stops leaves both tables, but it searches them only if it may be in them:
//! each actor has a byte of [`marks`], set by `register` and `join` (under the table's mutex,
//! before they check that the actor is alive) and by the actor's exit (`GONE`). Both are
//! read-modify-writes of the same byte, so one of them comes first: either the exit sees the
//! mark, and then takes the table's mutex (after the `register` or `join` that set it has
//! published its table) and removes the actor; or `register` or `join` sees `GONE` and
//! fails with the actor not alive. An actor that never had a name or a group exits without
//! touching either table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::exit::ActorId;
use crate::mailbox::{Slab as GenerationalSlab, SlabId};
use crate::Pid;

/// Bits of an actor's registry byte (see the [module docs](self)).
pub(crate) mod marks {
    /// The actor was given a name (it may still have it).
    pub(crate) const NAMED: u8 = 1;
    /// The actor joined a group (it may still be a member).
    pub(crate) const GROUPED: u8 = 2;
    /// The actor is leaving the tables: it can no longer be named or join.
    pub(crate) const GONE: u8 = 4;
}

/// Marks `pid` as holding `mark`; `false` if it is gone (or stopping): it must not be added.
fn mark(pid: &Pid, mark: u8) -> bool {
    pid.mark_registry(mark) & marks::GONE == 0 && pid.is_alive()
}

/// Actor addresses by id: the mailbox crate's generational slab with wait-free lookups
/// (loom-checked). Each slot holds the actor's `Pid` itself (32 bytes a live actor).
pub(crate) struct Slab(GenerationalSlab<Pid>);

fn actor_id(id: SlabId) -> ActorId {
    ActorId {
        index: id.index,
        generation: id.generation,
    }
}

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
        self.0.insert(|id| make(actor_id(id))).map(actor_id)
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

    /// Actors registered, ever.
    pub(crate) fn spawned(&self) -> u64 {
        self.0.inserted()
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
    /// The actor already has a name: an actor has at most one, as an Erlang process does
    /// (`register/2` fails with `badarg`). Unregister it first to rename the actor.
    AlreadyNamed {
        /// The actor.
        actor: ActorId,
        /// The name it has.
        name: Arc<str>,
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
            RegisterError::AlreadyNamed { actor, name } => {
                write!(f, "actor {actor} is already registered as {name:?}")
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
        if let Some((held, _)) = current
            .iter()
            .find(|(_, p)| p.id() == pid.id() && p.is_alive())
        {
            return Err(RegisterError::AlreadyNamed {
                actor: pid.id(),
                name: held.clone(),
            });
        }
        if !mark(&pid, marks::NAMED) {
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

    /// Removes every name of `id` (when it stops).
    pub(crate) fn unregister_actor(&self, id: ActorId) {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load();
        if current.values().any(|p| p.id() == id) {
            let mut next = HashMap::clone(&current);
            next.retain(|_, p| p.id() != id);
            self.table.store(Arc::new(next));
        }
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

    /// Publishes the table `f` makes from the current one, under the writer lock.
    fn update(&self, f: impl FnOnce(&mut HashMap<Arc<str>, Arc<Vec<Pid>>>)) {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.update_locked(f);
    }

    fn update_locked(&self, f: impl FnOnce(&mut HashMap<Arc<str>, Arc<Vec<Pid>>>)) {
        let mut next = HashMap::clone(&self.table.load());
        f(&mut next);
        next.retain(|_, members| !members.is_empty());
        self.table.store(Arc::new(next));
    }

    /// Adds `pid` to `group` (once). Returns `false` if the actor is not alive.
    pub(crate) fn join(&self, group: &str, pid: Pid) -> bool {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if !mark(&pid, marks::GROUPED) {
            return false;
        }
        self.update_locked(|t| {
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
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let table = self.table.load();
        if table.values().any(|m| m.iter().any(|p| p.id() == id)) {
            drop(table);
            self.update_locked(|t| {
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

#[cfg(test)]
mod tests {
    use crate::{Actor, Ctx, Handler, ThreadPool};

    struct StopOnMessage;

    impl Actor for StopOnMessage {}

    impl Handler<u8> for StopOnMessage {
        type Reply = ();
        fn handle(&mut self, _: u8, ctx: &mut Ctx<Self>) {
            ctx.stop();
        }
    }

    /// Actors stop on the pool's threads while this thread names them and adds them to a
    /// group: whichever wins, no name or membership of a dead actor is left in the tables
    /// (it would keep the actor's cell alive for ever).
    #[test]
    fn an_exit_racing_with_register_and_join_leaves_no_entry() {
        let pool = ThreadPool::new(2);
        let sys = pool.system().clone();
        let mut named = 0;
        for i in 0..2_000 {
            let a = sys.spawn(StopOnMessage).unwrap();
            a.tell(0u8).unwrap();
            if sys.register(&format!("n{i}"), &a.pid()).is_ok() {
                named += 1;
            }
            sys.join("group", &a.pid());
        }
        while sys.stats().live > 0 {
            std::thread::yield_now();
        }
        // Every run, including the tail of each exit, is over once the workers are joined.
        pool.shutdown();
        let names = sys.inner.names.table.load();
        assert!(
            names.is_empty(),
            "{} of {named} names outlived their actors",
            names.len()
        );
        let groups = sys.inner.groups.table.load();
        assert!(
            groups.is_empty(),
            "dead members are left: {:?}",
            groups.get("group").map(|m| m.len())
        );
    }
}
