//! proptest: the generational id slab against a model. Every live id resolves to its actor;
//! every dead id never resolves again, even after its slot has been reused; names follow.

use std::collections::HashMap;

use airssys_rt::{Actor, ActorId, ActorRef, ManualDriver, RegisterError};
use proptest::prelude::*;

struct Idle;
impl Actor for Idle {}

#[derive(Debug, Clone)]
enum Op {
    Spawn,
    Kill(usize),
    Name(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Spawn),
        3 => any::<usize>().prop_map(Op::Kill),
        1 => any::<usize>().prop_map(Op::Name),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn stale_ids_never_resolve(ops in prop::collection::vec(op(), 1..150)) {
        let d = ManualDriver::new(7);
        let sys = d.system();
        let mut live: Vec<ActorRef<Idle>> = Vec::new();
        let mut dead: Vec<ActorId> = Vec::new();
        let mut names: HashMap<String, ActorId> = HashMap::new();
        for op in ops {
            match op {
                Op::Spawn => live.push(sys.spawn(Idle).unwrap()),
                Op::Kill(i) if !live.is_empty() => {
                    let a = live.swap_remove(i % live.len());
                    a.kill();
                    d.run_until_idle();
                    names.retain(|_, id| *id != a.id());
                    dead.push(a.id());
                }
                Op::Name(i) if !live.is_empty() => {
                    let a = &live[i % live.len()];
                    let name = format!("n{}", i % 5);
                    let taken = names.get(&name).copied();
                    let own = names.iter().find(|(_, id)| **id == a.id()).map(|(n, _)| n.clone());
                    match sys.register(&name, &a.pid()) {
                        Ok(()) => {
                            prop_assert!(taken.is_none() && own.is_none());
                            names.insert(name, a.id());
                        }
                        // One name per actor, as in Erlang.
                        Err(RegisterError::AlreadyNamed { actor, name: held }) => {
                            prop_assert!(taken.is_none());
                            prop_assert_eq!(actor, a.id());
                            prop_assert_eq!(Some(held.to_string()), own);
                        }
                        Err(RegisterError::Taken { holder, .. }) => {
                            prop_assert_eq!(Some(holder), taken);
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                _ => {}
            }
            d.run_until_idle();
            for a in &live {
                prop_assert_eq!(sys.lookup(a.id()).map(|p| p.id()), Some(a.id()));
            }
            for id in &dead {
                prop_assert!(sys.lookup(*id).is_none(), "stale id {} resolved", id);
            }
            for (name, id) in &names {
                prop_assert_eq!(sys.whereis(name).map(|p| p.id()), Some(*id));
            }
            prop_assert_eq!(sys.stats().live as usize, live.len());
        }
    }
}
