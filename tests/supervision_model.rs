//! proptest: random supervision trees under random crashes, kills, clock advances and dynamic
//! child operations, replayed by the OTP runner. After the final stop:
//!
//! * no actor of the tree is alive (the system has no live actor);
//! * every process that started (each `start` event, an id and an incarnation) has exactly
//!   one `exit` event, after its start, and nothing exits that did not start;
//! * no supervisor reported a child's exit twice;
//! * every step settled (no restart loop, no shutdown that never ends).
//!
//! Trees and steps are built from a seed by a small generator (so a failure prints a seed
//! that reproduces it), with up to 3 levels, every strategy, restart type and shutdown kind,
//! start plans with errors and ignores, slow clean-ups longer or shorter than the shutdown
//! timeout, and significant children under both auto shutdown rules.

#[path = "otp/runner.rs"]
mod runner;

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{json, Value};

/// xorshift64*: the generator behind a scenario.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What the step generator needs to know about the tree.
#[derive(Default)]
struct Names {
    workers: Vec<String>,
    /// Supervisor ids and whether each is simple_one_for_one.
    sups: Vec<(String, bool)>,
    next: usize,
}

impl Names {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }
}

fn worker(g: &mut Gen, names: &mut Names, auto: &str) -> Value {
    let id = names.fresh("w");
    names.workers.push(id.clone());
    let restart = *g.pick(&["permanent", "permanent", "transient", "temporary"]);
    let mut w = json!({
        "id": id,
        "restart": restart,
        "start": g.pick(&[json!("ok"), json!("ok"), json!("ok"), json!(["ok", "error", "ok"]),
            json!(["ok", "ignore"]), json!(["ok", "error"])]).clone(),
    });
    match g.below(4) {
        0 => w["shutdown"] = json!("brutal_kill"),
        1 => w["shutdown"] = json!("infinity"),
        2 => w["shutdown"] = json!(g.below(300)),
        _ => {}
    }
    if g.chance(25) {
        w["terminate_delay_ms"] = json!(1 + g.below(500));
    }
    if auto != "never" && restart != "permanent" && g.chance(50) {
        w["significant"] = json!(true);
    }
    w
}

fn supervisor(g: &mut Gen, names: &mut Names, depth: usize, id: String) -> Value {
    let strategy = *g.pick(&[
        "one_for_one",
        "one_for_all",
        "rest_for_one",
        "simple_one_for_one",
    ]);
    let auto = *g.pick(&["never", "never", "any_significant", "all_significant"]);
    names
        .sups
        .push((id.clone(), strategy == "simple_one_for_one"));
    let children: Vec<Value> = if strategy == "simple_one_for_one" {
        let mut template = worker(g, names, auto);
        // The template's id is not a process name: dynamic children are named.
        names.workers.pop();
        template["id"] = json!(names.fresh("template"));
        vec![template]
    } else {
        (0..1 + g.below(3))
            .map(|_| {
                if depth < 2 && g.chance(25) {
                    let sub = names.fresh("s");
                    let restart = *g.pick(&["permanent", "transient", "temporary"]);
                    let spec = supervisor(g, names, depth + 1, sub.clone());
                    let mut child = json!({"id": sub, "type": "supervisor", "restart": restart,
                        "supervisor": spec});
                    if auto != "never" && restart != "permanent" && g.chance(50) {
                        child["significant"] = json!(true);
                    }
                    child
                } else {
                    worker(g, names, auto)
                }
            })
            .collect()
    };
    json!({
        "id": id,
        "strategy": strategy,
        "intensity": g.below(4),
        "period": 1 + g.below(10),
        "auto_shutdown": auto,
        "children": children,
    })
}

fn steps(g: &mut Gen, names: &mut Names, n: usize) -> Vec<Value> {
    let mut steps = Vec::new();
    for _ in 0..n {
        let sup = names.sups[g.below(names.sups.len())].clone();
        let any_id = |g: &mut Gen, names: &Names| -> String {
            if !names.sups.is_empty() && g.chance(15) {
                names.sups[g.below(names.sups.len())].0.clone()
            } else if names.workers.is_empty() {
                "nobody".into()
            } else {
                names.workers[g.below(names.workers.len())].clone()
            }
        };
        let step = match g.below(10) {
            0..=2 => json!({"op": "crash", "id": any_id(g, names),
                "reason": g.pick(&["normal", "shutdown", "boom", "kill", "shutdown:done"])}),
            3 => json!({"op": "advance", "seconds": 1 + g.below(12)}),
            4 => {
                if sup.1 {
                    let name = names.fresh("n");
                    names.workers.push(name.clone());
                    json!({"op": "start_child", "sup": sup.0, "name": name})
                } else {
                    let child = worker(g, names, "never");
                    json!({"op": "start_child", "sup": sup.0, "child": child})
                }
            }
            5 => {
                let id = any_id(g, names);
                if sup.1 {
                    json!({"op": "terminate_child", "sup": sup.0, "name": id})
                } else {
                    json!({"op": "terminate_child", "sup": sup.0, "id": id})
                }
            }
            6 => json!({"op": "restart_child", "sup": sup.0, "id": any_id(g, names)}),
            7 => json!({"op": "delete_child", "sup": sup.0, "id": any_id(g, names)}),
            8 => json!({"op": *g.pick(&["which_children", "count_children"]), "sup": sup.0}),
            _ => json!({"op": "wait"}),
        };
        steps.push(step);
    }
    steps.push(json!({"op": "stop"}));
    steps
}

/// Checks the invariants; `Err` says which one failed.
fn check(seed: u64, tree: &Value, steps: &[Value], driver_seed: Option<u64>) -> Result<(), String> {
    let replay = runner::replay(tree, steps, driver_seed)?;
    if replay.live_at_end != 0 {
        return Err(format!(
            "{} actors alive after the final stop",
            replay.live_at_end
        ));
    }
    if !replay.reported_twice.is_empty() {
        return Err(format!("exits reported twice: {:?}", replay.reported_twice));
    }
    // (id, inc) -> [started, exited]
    let mut seen: HashMap<(String, u64), (u32, u32)> = HashMap::new();
    for e in &replay.trace {
        let key = || {
            (
                e["id"].as_str().unwrap_or_default().to_string(),
                e["inc"].as_u64().unwrap_or(0),
            )
        };
        match e["ev"].as_str() {
            Some("start") => seen.entry(key()).or_default().0 += 1,
            Some("exit") => {
                let entry = seen.entry(key()).or_default();
                if entry.0 == 0 {
                    return Err(format!("exit before (or without) a start: {e}"));
                }
                entry.1 += 1;
            }
            _ => {}
        }
    }
    for ((id, inc), (started, exited)) in &seen {
        if *started != 1 || *exited != 1 {
            return Err(format!(
                "{id} incarnation {inc}: started {started} times, exited {exited} times (seed \
                 {seed})"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_shut_down_completely(seed in any::<u64>(), n in 1usize..25) {
        let mut g = Gen(seed | 1);
        let mut names = Names::default();
        let tree = supervisor(&mut g, &mut names, 0, "root".into());
        let steps = steps(&mut g, &mut names, n);
        for driver in [None, Some(seed)] {
            if let Err(why) = check(seed, &tree, &steps, driver) {
                prop_assert!(false, "seed {seed}, driver {driver:?}: {why}\ntree: {tree}\nsteps: {}",
                    Value::Array(steps.clone()));
            }
        }
    }
}
