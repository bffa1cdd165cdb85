//! Replays an OTP conformance case on airssys-rt's supervisor and records its trace in the
//! format of `tests/otp/README.md`.
//!
//! * The tree is built from the case's JSON with its defaults; every worker is a
//!   [`TestWorker`] whose start function follows the case's start plan (attempts counted per
//!   id, or per name for dynamic children).
//! * `start`, `start_failed` and `start_ignored` come from the supervisors' observer, called
//!   when a start function returns, before the supervisor goes on. A worker records its own
//!   `exit` in its `stopped` hook (before its links hear of it); a supervisor's `exit` is its
//!   observer's `Stopped` event, sent after its children have stopped.
//! * Everything runs on a [`ManualDriver`] (FIFO, or seeded); after each step the driver runs until no actor is
//!   scheduled and no timer is waiting, moving virtual time to each timer in turn (shutdown
//!   timeouts, clean-up delays). `advance` moves the same clock by exactly `seconds`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airssys_rt::supervisor::{
    AutoShutdown, ChildError, ChildKind, ChildSpec, ChildState, Restart, Shutdown, SpecError,
    StartResult, Strategy, Supervisor, SupervisorEvent, SupervisorRef, SupervisorSpec,
};
use airssys_rt::{Actor, ActorId, Ctx, ExitReason, Handler, ManualDriver, Pid, TimerRef};
use serde_json::{json, Value};

/// Timers the driver may fire while settling one step before the run is declared stuck.
const MAX_TIMERS_PER_STEP: usize = 10_000;

/// What the run knows about the processes of the scenario.
#[derive(Default)]
struct Book {
    trace: Vec<Value>,
    /// Start attempts per id (or dynamic child name).
    attempts: HashMap<String, usize>,
    /// Successful starts per id.
    incs: HashMap<String, u64>,
    /// Every process started: its id, incarnation and kind.
    procs: HashMap<ActorId, (String, u64, &'static str)>,
    /// The latest process of each id.
    current: HashMap<String, Pid>,
    /// The latest incarnation of each supervisor.
    sups: HashMap<String, SupervisorRef>,
    /// How many times a supervisor reported each child's exit (`ChildExited`).
    reported: HashMap<ActorId, u32>,
}

type Shared = Arc<Mutex<Book>>;

fn lock(book: &Shared) -> std::sync::MutexGuard<'_, Book> {
    book.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Book {
    fn started(&mut self, name: &str, pid: &Pid, kind: &'static str) {
        let inc = self.incs.entry(name.to_string()).or_insert(0);
        *inc += 1;
        let inc = *inc;
        self.procs.insert(pid.id(), (name.to_string(), inc, kind));
        self.current.insert(name.to_string(), pid.clone());
        if kind == "supervisor" {
            if let Some(s) = SupervisorRef::from_pid(pid) {
                self.sups.insert(name.to_string(), s);
            }
        }
        self.trace
            .push(json!({"ev":"start","id":name,"inc":inc,"kind":kind}));
    }

    fn exited(&mut self, pid: ActorId, reason: &ExitReason) {
        if let Some((name, inc, kind)) = self.procs.get(&pid).cloned() {
            self.trace
                .push(json!({"ev":"exit","id":name,"inc":inc,"kind":kind,"reason":term(reason)}));
        }
    }
}

/// An exit reason as Erlang's `~w` writes it.
pub fn term(reason: &ExitReason) -> String {
    match reason {
        ExitReason::Normal => "normal".into(),
        ExitReason::Shutdown => "shutdown".into(),
        ExitReason::ShutdownWith(tag) => format!("{{shutdown,{tag}}}"),
        ExitReason::Killed => "killed".into(),
        ExitReason::NoProc => "noproc".into(),
        ExitReason::Error(e) => e.to_string(),
        ExitReason::Panicked(m) => format!("{{panic,{m:?}}}"),
        ExitReason::FailedToStartChild { child, reason } => {
            format!(
                "{{shutdown,{{failed_to_start_child,{child},{}}}}}",
                term(reason)
            )
        }
        ExitReason::InvalidSpec(e) => format!("{{start_spec,{}}}", spec_term(e)),
    }
}

fn spec_term(e: &SpecError) -> String {
    match e {
        SpecError::DuplicateChildId(id) => format!("{{duplicate_child_name,{id}}}"),
        SpecError::SignificantWithoutAutoShutdown(_) => {
            "{bad_combination,[{auto_shutdown,never},{significant,true}]}".into()
        }
        SpecError::SignificantPermanent(_) => {
            "{bad_combination,[{restart,permanent},{significant,true}]}".into()
        }
        SpecError::SimpleOneForOneTemplate(n) => format!("{{bad_start_spec,{n}}}"),
        SpecError::InvalidPeriod => "{invalid_period,0}".into(),
        SpecError::EmptyChildId => "{invalid_child_name,''}".into(),
    }
}

/// A `crash` reason of the scenario format.
fn reason_of(s: &str) -> ExitReason {
    match s {
        "normal" => ExitReason::Normal,
        "shutdown" => ExitReason::Shutdown,
        "killed" => ExitReason::Killed,
        _ => match s.strip_prefix("shutdown:") {
            Some(tag) => ExitReason::ShutdownWith(tag.into()),
            None => ExitReason::error(s),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The test worker
// ---------------------------------------------------------------------------------------------

/// Does nothing but crash when told, and take `delay` to clean up when its parent stops it.
struct TestWorker {
    book: Shared,
    delay: Option<Duration>,
    me: Option<ActorId>,
    parent: Option<ActorId>,
    cleanup: Option<TimerRef>,
}

struct Crash(ExitReason);
struct CleanedUp(ExitReason);

impl Actor for TestWorker {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        self.me = Some(ctx.id());
        self.parent = ctx.parent().map(Pid::id);
        if self.delay.is_some() {
            ctx.trap_exit(true);
        }
    }

    fn handle_exit(&mut self, ctx: &mut Ctx<Self>, from: Option<ActorId>, reason: ExitReason) {
        // As a gen_server: an exit signal from the parent ends it (after its clean-up);
        // others are ignored.
        let from_parent = from.is_none() || from == self.parent;
        if let (true, Some(delay), None) = (from_parent, self.delay, &self.cleanup) {
            self.cleanup = Some(ctx.send_after(delay, CleanedUp(reason)));
        }
    }

    fn stopped(&mut self, reason: &ExitReason) {
        if let Some(t) = self.cleanup.take() {
            t.cancel();
        }
        if let Some(me) = self.me {
            lock(&self.book).exited(me, reason);
        }
    }
}

impl Handler<Crash> for TestWorker {
    type Reply = ();
    fn handle(&mut self, Crash(reason): Crash, ctx: &mut Ctx<Self>) {
        ctx.stop_with(reason);
    }
}

impl Handler<CleanedUp> for TestWorker {
    type Reply = ();
    fn handle(&mut self, CleanedUp(reason): CleanedUp, ctx: &mut Ctx<Self>) {
        ctx.stop_with(reason);
    }
}

// ---------------------------------------------------------------------------------------------
// Building the tree
// ---------------------------------------------------------------------------------------------

fn plan_at(plan: &Value, attempt: usize) -> String {
    match plan {
        Value::Array(list) if !list.is_empty() => list[(attempt - 1).min(list.len() - 1)]
            .as_str()
            .unwrap_or("ok")
            .to_string(),
        Value::String(s) => s.clone(),
        _ => "ok".into(),
    }
}

fn str_of<'a>(v: &'a Value, key: &str, default: &'a str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or(default)
}

fn observer(book: &Shared) -> impl Fn(&SupervisorEvent<'_>) + Send + Sync + 'static {
    let book = book.clone();
    move |event| {
        let name = |child: &str, arg: Option<&(dyn std::any::Any + Send + Sync)>| {
            arg.and_then(|a| a.downcast_ref::<String>())
                .cloned()
                .unwrap_or_else(|| child.to_string())
        };
        let mut b = lock(&book);
        match event {
            SupervisorEvent::ChildStarted {
                child,
                arg,
                pid,
                kind,
                ..
            } => {
                let kind = match kind {
                    ChildKind::Worker => "worker",
                    ChildKind::Supervisor => "supervisor",
                };
                b.started(&name(child, *arg), pid, kind);
            }
            SupervisorEvent::StartFailed {
                child, arg, reason, ..
            } => {
                let id = name(child, *arg);
                b.trace
                    .push(json!({"ev":"start_failed","id":id,"reason":term(reason)}));
            }
            SupervisorEvent::StartIgnored { child, arg, .. } => {
                let id = name(child, *arg);
                b.trace.push(json!({"ev":"start_ignored","id":id}));
            }
            SupervisorEvent::Stopped { pid, reason, .. } => b.exited(*pid, reason),
            SupervisorEvent::ChildExited { pid, .. } => *b.reported.entry(*pid).or_insert(0) += 1,
            _ => {}
        }
    }
}

fn supervisor_spec(v: &Value, name: &str, book: &Shared) -> SupervisorSpec {
    let strategy = match str_of(v, "strategy", "one_for_one") {
        "one_for_all" => Strategy::OneForAll,
        "rest_for_one" => Strategy::RestForOne,
        "simple_one_for_one" => Strategy::SimpleOneForOne,
        _ => Strategy::OneForOne,
    };
    let intensity = v.get("intensity").and_then(Value::as_u64).unwrap_or(1) as u32;
    let period = v.get("period").and_then(Value::as_f64).unwrap_or(5.0);
    let auto = match str_of(v, "auto_shutdown", "never") {
        "any_significant" => AutoShutdown::AnySignificant,
        "all_significant" => AutoShutdown::AllSignificant,
        _ => AutoShutdown::Never,
    };
    let children = v
        .get("children")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(|c| child_spec(c, book)).collect::<Vec<_>>())
        .unwrap_or_default();
    SupervisorSpec::new(strategy)
        .name(name)
        .intensity(intensity, Duration::from_secs_f64(period))
        .auto_shutdown(auto)
        .children(children)
        .observer(observer(book))
}

fn child_spec(v: &Value, book: &Shared) -> ChildSpec {
    let id = str_of(v, "id", "").to_string();
    let is_sup = str_of(v, "type", "worker") == "supervisor";
    let spec = if is_sup {
        let sub = v.get("supervisor").cloned().unwrap_or_else(|| json!({}));
        ChildSpec::supervisor(id.clone(), supervisor_spec(&sub, &id, book))
    } else {
        let plan = v.get("start").cloned().unwrap_or_else(|| json!("ok"));
        let delay = v
            .get("terminate_delay_ms")
            .and_then(Value::as_u64)
            .filter(|d| *d > 0)
            .map(Duration::from_millis);
        let book = book.clone();
        let template = id.clone();
        ChildSpec::worker(id.clone(), move |s| {
            let name = s
                .arg::<String>()
                .cloned()
                .unwrap_or_else(|| template.clone());
            let attempt = {
                let mut b = lock(&book);
                let n = b.attempts.entry(name).or_insert(0);
                *n += 1;
                *n
            };
            match plan_at(&plan, attempt).as_str() {
                "error" => StartResult::Failed(ExitReason::error("planned_error")),
                "ignore" => StartResult::Ignore,
                _ => s
                    .spawn(TestWorker {
                        book: book.clone(),
                        delay,
                        me: None,
                        parent: None,
                        cleanup: None,
                    })
                    .into(),
            }
        })
    };
    let restart = match str_of(v, "restart", "permanent") {
        "transient" => Restart::Transient,
        "temporary" => Restart::Temporary,
        _ => Restart::Permanent,
    };
    let mut spec = spec.restart(restart);
    match v.get("shutdown") {
        Some(Value::String(s)) if s == "brutal_kill" => spec = spec.shutdown(Shutdown::BrutalKill),
        Some(Value::String(s)) if s == "infinity" => spec = spec.shutdown(Shutdown::Infinity),
        Some(ms) if ms.is_u64() => {
            spec = spec.shutdown(Shutdown::Timeout(Duration::from_millis(
                ms.as_u64().unwrap(),
            )))
        }
        _ => {}
    }
    spec.significant(
        v.get("significant")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    )
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

fn child_error(e: &ChildError) -> String {
    match e {
        ChildError::AlreadyStarted(_) => "error:already_started".into(),
        ChildError::AlreadyPresent => "error:already_present".into(),
        ChildError::Running => "error:running".into(),
        ChildError::Restarting => "error:restarting".into(),
        ChildError::NotFound => "error:not_found".into(),
        ChildError::SimpleOneForOne => "error:simple_one_for_one".into(),
        ChildError::NotSimpleOneForOne => "error:not_simple_one_for_one".into(),
        ChildError::StartFailed(r) => format!("error:start_failed:{}", term(r)),
        ChildError::InvalidSpec(e) => format!("error:invalid_child_spec:{}", spec_term(e)),
        ChildError::NoProc => "noproc".into(),
        ChildError::Timeout => "error:timeout".into(),
    }
}

fn started_value(r: Result<Option<Pid>, ChildError>) -> String {
    match r {
        Ok(Some(_)) => "ok".into(),
        Ok(None) => "ok:undefined".into(),
        Err(e) => child_error(&e),
    }
}

fn unit_value(r: Result<(), ChildError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => child_error(&e),
    }
}

/// One scenario on a fresh runtime.
struct Run {
    driver: ManualDriver,
    book: Shared,
    root_id: String,
    root: Option<SupervisorRef>,
}

impl Run {
    fn settle(&self) -> Result<(), String> {
        if self.driver.run_until_quiescent(MAX_TIMERS_PER_STEP) {
            Ok(())
        } else {
            Err(format!(
                "not quiescent after {MAX_TIMERS_PER_STEP} timers in one step"
            ))
        }
    }

    fn push(&self, ev: Value) {
        lock(&self.book).trace.push(ev);
    }

    fn result(&self, op: &str, id: &str, value: String) {
        self.push(json!({"ev":"result","op":op,"id":id,"value":value}));
    }

    fn sup(&self, step: &Value) -> (String, Option<SupervisorRef>) {
        let name = str_of(step, "sup", &self.root_id).to_string();
        let s = lock(&self.book).sups.get(&name).cloned();
        (name, s.filter(SupervisorRef::is_alive))
    }

    fn start_root(&mut self, tree: &Value) -> Result<(), String> {
        let id = self.root_id.clone();
        let attempt = {
            let mut b = lock(&self.book);
            let n = b.attempts.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        match plan_at(tree.get("start").unwrap_or(&json!("ok")), attempt).as_str() {
            "error" => {
                self.push(json!({"ev":"start_failed","id":id,"reason":"planned_error"}));
                return Ok(());
            }
            "ignore" => {
                self.push(json!({"ev":"start_ignored","id":id}));
                return Ok(());
            }
            _ => {}
        }
        let spec = supervisor_spec(tree, &id, &self.book);
        let starting = Supervisor::start(self.driver.system(), spec);
        self.settle()?;
        match starting.try_take() {
            Some(Ok(root)) => {
                lock(&self.book).started(&id, &root.pid(), "supervisor");
                self.root = Some(root);
            }
            Some(Err(reason)) => {
                self.push(json!({"ev":"start_failed","id":id,"reason":term(&reason)}));
            }
            None => return Err("the root supervisor's start got no answer".into()),
        }
        Ok(())
    }

    fn step(&mut self, step: &Value) -> Result<(), String> {
        let op = str_of(step, "op", "");
        match op {
            "crash" => {
                let id = str_of(step, "id", "");
                let reason = str_of(step, "reason", "boom");
                let (pid, is_sup) = {
                    let b = lock(&self.book);
                    (
                        b.current.get(id).cloned().filter(Pid::is_alive),
                        b.procs
                            .values()
                            .any(|(n, _, k)| n == id && *k == "supervisor"),
                    )
                };
                let Some(pid) = pid else {
                    self.result(op, id, "not_running".into());
                    return Ok(());
                };
                if reason == "kill" {
                    pid.kill();
                } else if is_sup {
                    pid.exit(reason_of(reason));
                } else {
                    let worker = pid
                        .downcast::<TestWorker>()
                        .ok_or_else(|| format!("{id} is not a test worker"))?;
                    let _ = worker.tell(Crash(reason_of(reason)));
                }
                self.settle()
            }
            "wait" => self.settle(),
            "advance" => {
                let secs = step.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                self.driver.advance(Duration::from_secs_f64(secs));
                self.settle()
            }
            "stop" => {
                if let Some(root) = &self.root {
                    root.pid().exit(ExitReason::Shutdown);
                }
                self.settle()
            }
            "start_child" => {
                let (_, sup) = self.sup(step);
                let (id, call) = match (step.get("child"), step.get("name").and_then(Value::as_str))
                {
                    (Some(child), _) => {
                        let spec = child_spec(child, &self.book);
                        (spec.id().to_string(), sup.map(|s| s.start_child(spec)))
                    }
                    (None, Some(name)) => (
                        name.to_string(),
                        sup.map(|s| s.start_dynamic_child(name.to_string())),
                    ),
                    _ => return Err("start_child without child or name".into()),
                };
                let value = match call {
                    Some(call) => started_value(self.take(call)?),
                    None => "noproc".into(),
                };
                self.result(op, &id, value);
                Ok(())
            }
            "terminate_child" => {
                let (_, sup) = self.sup(step);
                let (id, value) = if let Some(name) = step.get("name").and_then(Value::as_str) {
                    let pid = lock(&self.book).current.get(name).cloned();
                    let value = match (sup, pid) {
                        (Some(s), Some(pid)) => unit_value(self.take(s.terminate_child_pid(&pid))?),
                        (None, _) => "noproc".into(),
                        (Some(_), None) => "error:not_found".into(),
                    };
                    (name.to_string(), value)
                } else {
                    let id = str_of(step, "id", "");
                    let value = match sup {
                        Some(s) => unit_value(self.take(s.terminate_child(id))?),
                        None => "noproc".into(),
                    };
                    (id.to_string(), value)
                };
                self.result(op, &id, value);
                Ok(())
            }
            "restart_child" => {
                let (_, sup) = self.sup(step);
                let id = str_of(step, "id", "");
                let value = match sup {
                    Some(s) => started_value(self.take(s.restart_child(id))?),
                    None => "noproc".into(),
                };
                self.result(op, id, value);
                Ok(())
            }
            "delete_child" => {
                let (_, sup) = self.sup(step);
                let id = str_of(step, "id", "");
                let value = match sup {
                    Some(s) => unit_value(self.take(s.delete_child(id))?),
                    None => "noproc".into(),
                };
                self.result(op, id, value);
                Ok(())
            }
            "which_children" => {
                let (name, sup) = self.sup(step);
                let Some(s) = sup else {
                    self.result(op, &name, "noproc".into());
                    return Ok(());
                };
                match self.take(s.which_children())? {
                    Ok(children) => {
                        let simple = children.iter().any(|c| c.arg.is_some());
                        let mut list: Vec<(String, &str)> = children
                            .iter()
                            .map(|c| {
                                let id = c
                                    .arg
                                    .as_ref()
                                    .and_then(|a| a.downcast_ref::<String>())
                                    .cloned()
                                    .unwrap_or_else(|| c.id.to_string());
                                let state = match c.state {
                                    ChildState::Running => "running",
                                    ChildState::Undefined => "undefined",
                                    ChildState::Restarting => "restarting",
                                };
                                (id, state)
                            })
                            .collect();
                        if simple {
                            list.sort();
                        }
                        let list: Vec<Value> = list.iter().map(|(i, s)| json!([i, s])).collect();
                        self.push(json!({"ev":"which_children","sup":name,"children":list}));
                    }
                    Err(e) => self.result(op, &name, child_error(&e)),
                }
                Ok(())
            }
            "count_children" => {
                let (name, sup) = self.sup(step);
                let Some(s) = sup else {
                    self.result(op, &name, "noproc".into());
                    return Ok(());
                };
                match self.take(s.count_children())? {
                    Ok(c) => self.push(json!({"ev":"count_children","sup":name,"specs":c.specs,
                        "active":c.active,"supervisors":c.supervisors,"workers":c.workers})),
                    Err(e) => self.result(op, &name, child_error(&e)),
                }
                Ok(())
            }
            other => Err(format!("unknown op {other:?}")),
        }
    }

    /// Settles and takes a call's answer (a supervisor that died meanwhile gives `NoProc`).
    fn take<T>(
        &self,
        call: airssys_rt::supervisor::Call<T, ChildError>,
    ) -> Result<Result<T, ChildError>, String> {
        self.settle()?;
        call.try_take()
            .ok_or_else(|| "a supervisor call got no answer after settling".to_string())
    }
}

/// What a replay produced.
pub struct Replay {
    /// The trace.
    pub trace: Vec<Value>,
    /// Actors alive once the last step has settled.
    pub live_at_end: u32,
    /// Processes whose exit a supervisor reported more than once.
    pub reported_twice: Vec<ActorId>,
}

/// Replays a case and returns its trace (or why it could not be run). `seed`: the driver's
/// run order (`None`: FIFO).
pub fn run_case(tree: &Value, steps: &[Value], seed: Option<u64>) -> Result<Vec<Value>, String> {
    replay(tree, steps, seed).map(|r| r.trace)
}

/// Replays a case and reports what is left at the end.
pub fn replay(tree: &Value, steps: &[Value], seed: Option<u64>) -> Result<Replay, String> {
    let mut run = Run {
        driver: seed.map_or_else(ManualDriver::fifo, ManualDriver::new),
        book: Arc::default(),
        root_id: str_of(tree, "id", "root").to_string(),
        root: None,
    };
    run.push(json!({"ev":"step","n":0,"op":"start_root"}));
    run.start_root(tree)?;
    for (i, step) in steps.iter().enumerate() {
        run.push(json!({"ev":"step","n":i + 1,"op":str_of(step, "op", "")}));
        run.step(step)?;
    }
    let live_at_end = run.driver.system().stats().live;
    let (trace, reported_twice) = {
        let mut b = lock(&run.book);
        let twice = b
            .reported
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(p, _)| *p)
            .collect();
        (std::mem::take(&mut b.trace), twice)
    };
    // Leave nothing running behind (a case may end without a stop).
    if let Some(root) = &run.root {
        root.pid().kill();
        run.settle()?;
    }
    Ok(Replay {
        trace,
        live_at_end,
        reported_twice,
    })
}
