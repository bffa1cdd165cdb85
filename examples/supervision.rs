//! A supervision tree on the thread pool: prints the tree (as Graphviz DOT text), crashes
//! workers and shows the restarts, then makes a child supervisor give up so that the failure
//! escalates to the root, which restarts the whole subtree.
//!
//! ```text
//! cargo run --release --example supervision            # the story, with DOT pictures
//! cargo run --release --example supervision | sed -n '/^digraph/,/^}/p' | dot -Tsvg > tree.svg
//! ```
//!
//! The tree:
//!
//! ```text
//! root (one_for_one, 3 restarts in 5 s)
//! ├── db        worker, permanent
//! ├── sessions  supervisor (one_for_all, 1 restart in 5 s)
//! │   ├── auth  worker
//! │   └── store worker
//! └── conns     supervisor (simple_one_for_one, template "conn", transient)
//! ```

use std::time::{Duration, Instant};

use airssys_rt::supervisor::{
    ChildKind, ChildSpec, ChildState, Restart, Strategy, Supervisor, SupervisorEvent,
    SupervisorRef, SupervisorSpec,
};
use airssys_rt::{Actor, Ctx, Handler, Pid, ThreadPool};

const WAIT: Duration = Duration::from_secs(5);

/// A worker that does nothing until told to crash.
struct Worker;
impl Actor for Worker {}

struct Crash(&'static str);
impl Handler<Crash> for Worker {
    type Reply = ();
    fn handle(&mut self, Crash(why): Crash, _: &mut Ctx<Self>) {
        panic!("{why}");
    }
}

fn worker(id: &str) -> ChildSpec {
    ChildSpec::worker(id, |s| s.spawn(Worker).into())
}

/// Prints what the supervisors do, as OTP's progress and crash reports would.
fn report(e: &SupervisorEvent<'_>) {
    match e {
        SupervisorEvent::ChildStarted {
            supervisor,
            child,
            arg,
            pid,
            ..
        } => {
            let name = arg
                .and_then(|a| a.downcast_ref::<u16>())
                .map_or(child.to_string(), |port| format!("{child}:{port}"));
            println!("  [{supervisor}] started {name} as {}", pid.id());
        }
        SupervisorEvent::ChildExited {
            supervisor,
            child,
            arg,
            pid,
            reason,
        } => {
            let name = arg
                .and_then(|a| a.downcast_ref::<u16>())
                .map_or(child.to_string(), |port| format!("{child}:{port}"));
            println!("  [{supervisor}] child {name} ({pid}) exited: {reason}")
        }
        SupervisorEvent::StartFailed {
            supervisor,
            child,
            reason,
            ..
        } => println!("  [{supervisor}] {child} failed to start: {reason}"),
        SupervisorEvent::StartIgnored {
            supervisor, child, ..
        } => println!("  [{supervisor}] {child} ignored its start"),
        SupervisorEvent::GaveUp { supervisor, child } => {
            println!("  [{supervisor}] too many restarts (last: {child}): giving up")
        }
        SupervisorEvent::Stopped {
            supervisor, reason, ..
        } => println!("  [{supervisor}] stopped: {reason}"),
    }
}

/// The live tree as Graphviz DOT text, read with `which_children` level by level.
fn dot(root: &SupervisorRef, name: &str) -> String {
    let mut out = String::from(
        "digraph supervision {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    out += &format!(
        "  \"{}\" [label=\"{name}\\n{}\", shape=doubleoctagon];\n",
        root.id(),
        root.id()
    );
    walk(root, &mut out);
    out + "}\n"
}

fn walk(sup: &SupervisorRef, out: &mut String) {
    let Ok(children) = sup.which_children().wait(WAIT) else {
        return;
    };
    // which_children lists static children newest first: draw them in start order.
    let simple = children.iter().any(|c| c.arg.is_some());
    let ordered: Vec<_> = if simple {
        children.iter().collect()
    } else {
        children.iter().rev().collect()
    };
    for (i, c) in ordered.into_iter().enumerate() {
        let name = c
            .arg
            .as_ref()
            .and_then(|a| a.downcast_ref::<u16>())
            .map_or(c.id.to_string(), |port| format!("{}:{port}", c.id));
        let node = match &c.pid {
            Some(pid) => pid.id().to_string(),
            None => format!("{}-{name}-{i}", sup.id()),
        };
        let (shape, style) = match (c.kind, c.state) {
            (ChildKind::Supervisor, _) => ("octagon", "solid"),
            (_, ChildState::Running) => ("box", "solid"),
            _ => ("box", "dashed"),
        };
        let state = match c.state {
            ChildState::Running => node.clone(),
            ChildState::Undefined => "stopped".into(),
            ChildState::Restarting => "restarting".into(),
        };
        out.push_str(&format!(
            "  \"{node}\" [label=\"{name}\\n{state}\", shape={shape}, style={style}];\n  \"{}\" -> \"{node}\";\n",
            sup.id()
        ));
        if let Some(child) = c.pid.as_ref().and_then(SupervisorRef::from_pid) {
            walk(&child, out);
        }
    }
}

/// The current process of child `id` of `sup`.
fn child(sup: &SupervisorRef, id: &str) -> Option<Pid> {
    sup.which_children()
        .wait(WAIT)
        .ok()?
        .into_iter()
        .find(|c| &*c.id == id)?
        .pid
}

/// Waits until child `id` of `sup` runs as a process other than `old`.
fn replaced(sup: &SupervisorRef, id: &str, old: &Pid) -> Pid {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(p) = child(sup, id).filter(|p| p != old) {
            return p;
        }
        assert!(Instant::now() < deadline, "{id} was not restarted");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn crash(pid: &Pid, why: &'static str) {
    pid.downcast::<Worker>()
        .expect("a worker")
        .tell(Crash(why))
        .expect("alive");
}

fn main() {
    // Panics are crashes the supervisors handle; keep the default hook's noise out.
    std::panic::set_hook(Box::new(|_| {}));
    let pool = ThreadPool::new(2);
    let sessions = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(1, Duration::from_secs(5))
        .child(worker("auth"))
        .child(worker("store"));
    let conns = SupervisorSpec::new(Strategy::SimpleOneForOne)
        .intensity(10, Duration::from_secs(1))
        .child(worker("conn").restart(Restart::Transient));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .name("root")
        .intensity(3, Duration::from_secs(5))
        .child(worker("db"))
        .child(ChildSpec::supervisor("sessions", sessions))
        .child(ChildSpec::supervisor("conns", conns))
        .observer(report);

    println!("== starting the tree (children first, depth-first)");
    let root = Supervisor::start(pool.system(), spec)
        .wait(WAIT)
        .expect("the tree starts");
    let conns = child(&root, "conns")
        .and_then(|p| SupervisorRef::from_pid(&p))
        .expect("conns runs");
    for port in [8080u16, 8081, 8082] {
        conns
            .start_dynamic_child(port)
            .wait(WAIT)
            .expect("conn starts");
    }
    println!("\n{}", dot(&root, "root"));

    println!("== db panics: one_for_one restarts just db");
    let db = child(&root, "db").expect("db runs");
    crash(&db, "disk on fire");
    let db = replaced(&root, "db", &db);
    println!("  db is back as {}", db.id());

    println!("\n== auth panics: sessions is one_for_all, so store restarts with it");
    let sessions = child(&root, "sessions")
        .and_then(|p| SupervisorRef::from_pid(&p))
        .expect("sessions runs");
    let auth = child(&sessions, "auth").expect("auth runs");
    crash(&auth, "bad token");
    let auth = replaced(&sessions, "auth", &auth);

    println!("\n== auth panics again within 5 s: sessions gives up and escalates to root");
    let old_sessions = sessions.pid();
    crash(&auth, "bad token again");
    let new_sessions = replaced(&root, "sessions", &old_sessions);
    println!(
        "  root restarted the whole sessions subtree: {} -> {}",
        old_sessions.id(),
        new_sessions.id()
    );

    println!("\n== the live tree now\n{}", dot(&root, "root"));

    println!("== stopping the root: every child, depth-first, newest first");
    let exit = root.pid().exit_reason();
    root.stop();
    println!(
        "  root exit reason: {:?}",
        exit.wait(WAIT).expect("it stops")
    );
    println!("  actors still alive: {}", pool.system().stats().live);
}
