//! The supervisor's Rust API: what the OTP traces do not show (panics, typed errors, real
//! threads and real time, async stop), and the runtime pieces it is built on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airssys_rt::supervisor::{
    ChildError, ChildSpec, Restart, Shutdown, SpecError, StartResult, Strategy, Supervisor,
    SupervisorEvent, SupervisorRef, SupervisorSpec,
};
use airssys_rt::{
    Actor, ActorHandle, ActorId, AsyncHandler, Ctx, ExitReason, Handler, ManualDriver, Pid,
    ThreadPool,
};

const WAIT: Duration = Duration::from_secs(20);

struct Worker;
impl Actor for Worker {}

struct Panic;
impl Handler<Panic> for Worker {
    type Reply = ();
    fn handle(&mut self, _: Panic, _: &mut Ctx<Self>) {
        panic!("worker bug");
    }
}

/// Traps exits and never stops by itself: only a kill ends it.
struct Stubborn;
impl Actor for Stubborn {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.trap_exit(true);
    }
    fn handle_exit(&mut self, _: &mut Ctx<Self>, _: Option<ActorId>, _: ExitReason) {}
}

fn worker(id: &str) -> ChildSpec {
    ChildSpec::worker(id, |s| s.spawn(Worker).into())
}

/// (event kind, child, reason) rows.
type Log = Arc<Mutex<Vec<(String, String, String)>>>;

/// Records (kind, child, reason) of every event.
fn recorder() -> (Log, impl Fn(&SupervisorEvent<'_>) + Send + Sync + 'static) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let observer = move |e: &SupervisorEvent<'_>| {
        let row = match e {
            SupervisorEvent::ChildStarted { child, .. } => ("started", *child, String::new()),
            SupervisorEvent::StartFailed { child, reason, .. } => {
                ("start_failed", *child, reason.to_string())
            }
            SupervisorEvent::StartIgnored { child, .. } => ("ignored", *child, String::new()),
            SupervisorEvent::ChildExited { child, reason, .. } => {
                ("exited", *child, reason.to_string())
            }
            SupervisorEvent::GaveUp { child, .. } => ("gave_up", *child, String::new()),
            SupervisorEvent::Stopped {
                supervisor, reason, ..
            } => ("stopped", *supervisor, reason.to_string()),
        };
        sink.lock()
            .unwrap()
            .push((row.0.to_string(), row.1.to_string(), row.2));
    };
    (log, observer)
}

fn start(d: &ManualDriver, spec: SupervisorSpec) -> Result<SupervisorRef, ExitReason> {
    let starting = Supervisor::start(d.system(), spec);
    assert!(d.run_until_quiescent(100));
    starting.try_take().expect("answered")
}

fn child_pid(d: &ManualDriver, sup: &SupervisorRef, id: &str) -> Option<Pid> {
    let which = sup.which_children();
    d.run_until_idle();
    which
        .try_take()
        .unwrap()
        .unwrap()
        .into_iter()
        .find(|c| &*c.id == id)
        .and_then(|c| c.pid)
}

#[test]
fn a_panicking_child_is_a_crash_and_is_restarted() {
    let d = ManualDriver::new(3);
    let (log, observer) = recorder();
    let sup = start(
        &d,
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(5, Duration::from_secs(5))
            .child(worker("w"))
            .observer(observer),
    )
    .unwrap();
    let first = child_pid(&d, &sup, "w").unwrap();
    first.downcast::<Worker>().unwrap().tell(Panic).unwrap();
    d.run_until_quiescent(100);
    let second = child_pid(&d, &sup, "w").unwrap();
    assert_ne!(first, second);
    assert!(!first.is_alive() && second.is_alive());
    let log = log.lock().unwrap();
    assert!(
        log.contains(&("exited".into(), "w".into(), "panicked: worker bug".into())),
        "{log:?}"
    );
    assert_eq!(log.iter().filter(|r| r.0 == "started").count(), 2);
}

#[test]
fn a_panicking_start_function_is_a_failed_start() {
    let d = ManualDriver::new(1);
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("ok"))
        .child(ChildSpec::worker("bad", |_| panic!("cannot open")));
    let err = start(&d, spec).unwrap_err();
    assert_eq!(
        err,
        ExitReason::FailedToStartChild {
            child: "bad".into(),
            reason: Arc::new(ExitReason::Panicked("cannot open".into())),
        }
    );
    assert!(err.is_shutdown());
    // The child that had started was shut down again: nothing is left.
    assert_eq!(d.system().stats().live, 0);
}

#[test]
fn invalid_specs_are_typed_errors() {
    let d = ManualDriver::new(1);
    let dup = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a"))
        .child(worker("a"));
    assert_eq!(dup.validate(), Err(SpecError::DuplicateChildId("a".into())));
    assert_eq!(
        start(&d, dup).unwrap_err(),
        ExitReason::InvalidSpec(SpecError::DuplicateChildId("a".into()))
    );
    let template = SupervisorSpec::new(Strategy::SimpleOneForOne);
    assert_eq!(
        template.validate(),
        Err(SpecError::SimpleOneForOneTemplate(0))
    );
    let sig = SupervisorSpec::new(Strategy::OneForOne).child(worker("p").significant(true));
    assert_eq!(
        sig.validate(),
        Err(SpecError::SignificantWithoutAutoShutdown("p".into()))
    );
    let zero = SupervisorSpec::new(Strategy::OneForOne).intensity(1, Duration::ZERO);
    assert_eq!(zero.validate(), Err(SpecError::InvalidPeriod));
    // start_child checks the spec too.
    let sup = start(&d, SupervisorSpec::new(Strategy::OneForOne)).unwrap();
    let call = sup.start_child(worker("s").restart(Restart::Transient).significant(true));
    d.run_until_idle();
    assert_eq!(
        call.try_take(),
        Some(Err(ChildError::InvalidSpec(
            SpecError::SignificantWithoutAutoShutdown("s".into())
        )))
    );
}

#[test]
fn a_restart_storm_ends_the_supervisor_with_shutdown() {
    let d = ManualDriver::new(5);
    let (log, observer) = recorder();
    let sup = start(
        &d,
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(2, Duration::from_secs(5))
            .child(worker("w"))
            .child(worker("other"))
            .observer(observer),
    )
    .unwrap();
    let exit = sup.pid().exit_reason();
    for _ in 0..3 {
        let pid = child_pid(&d, &sup, "w").unwrap();
        pid.downcast::<Worker>().unwrap().tell(Panic).unwrap();
        d.run_until_quiescent(100);
    }
    assert_eq!(exit.try_take(), Some(Ok(ExitReason::Shutdown)));
    let log = log.lock().unwrap();
    assert!(log.contains(&("gave_up".into(), "w".into(), String::new())));
    assert_eq!(d.system().stats().live, 0);
    // Calls to a stopped supervisor: noproc.
    let call = sup.which_children();
    d.run_until_idle();
    assert_eq!(
        call.try_take().map(|r| r.map(|_| ())),
        Some(Err(ChildError::NoProc))
    );
}

/// OTP counts restart times in whole seconds (`erlang:monotonic_time(1)`): a restart is in
/// the window if its second is at least the current second minus the period. With intensity 3
/// and a period of 1 s, crashes 0.4 s apart are a storm (the fourth restart, at 1.2 s, still
/// sees the one at 0.0 s), although no four of them fall within one second of each other;
/// crashes 0.9 s apart are not (at 2.7 s the window holds seconds 1 and 2 only).
#[test]
fn restart_intensity_counts_whole_seconds_as_otp_does() {
    fn crashes_every(gap: Duration, crashes: u32) -> Option<ExitReason> {
        let d = ManualDriver::new(5);
        let sup = start(
            &d,
            SupervisorSpec::new(Strategy::OneForOne)
                .intensity(3, Duration::from_secs(1))
                .child(worker("w")),
        )
        .unwrap();
        let exit = sup.pid().exit_reason();
        for i in 0..crashes {
            if i > 0 {
                d.advance(gap);
            }
            let Some(pid) = child_pid(&d, &sup, "w") else {
                break;
            };
            pid.downcast::<Worker>().unwrap().tell(Panic).unwrap();
            d.run_until_quiescent(100);
        }
        exit.try_take().map(Result::unwrap)
    }
    // Restarts at 0.0, 0.4, 0.8 and 1.2 s: four in seconds 0 and 1.
    assert_eq!(
        crashes_every(Duration::from_millis(400), 4),
        Some(ExitReason::Shutdown)
    );
    // Three restarts at 0.0, 0.4 and 0.8 s: at the limit, not over it.
    assert_eq!(crashes_every(Duration::from_millis(400), 3), None);
    // Restarts at 0.0, 0.9, 1.8, 2.7 and 3.6 s: never more than three in two adjacent seconds.
    assert_eq!(crashes_every(Duration::from_millis(900), 5), None);
}

#[test]
fn on_a_thread_pool_a_child_that_ignores_shutdown_is_killed_after_its_timeout() {
    let pool = ThreadPool::new(2);
    let sup = Supervisor::start(
        pool.system(),
        SupervisorSpec::new(Strategy::OneForOne)
            .child(
                ChildSpec::worker("stubborn", |s| s.spawn(Stubborn).into())
                    .shutdown(Shutdown::Timeout(Duration::from_millis(20))),
            )
            .child(worker("w").shutdown(Shutdown::BrutalKill)),
    )
    .wait(WAIT)
    .unwrap();
    let children = sup.which_children().wait(WAIT).unwrap();
    let stubborn = children
        .iter()
        .find(|c| &*c.id == "stubborn")
        .and_then(|c| c.pid.clone())
        .unwrap();
    let stubborn_exit = stubborn.exit_reason();
    assert_eq!(sup.terminate_child("stubborn").wait(WAIT), Ok(()));
    assert_eq!(stubborn_exit.wait(WAIT), Ok(ExitReason::Killed));
    // Its spec is kept, stopped: restart it, then stop the tree.
    assert!(sup.restart_child("stubborn").wait(WAIT).unwrap().is_some());
    let exit = sup.pid().exit_reason();
    assert!(sup.stop());
    assert_eq!(exit.wait(WAIT), Ok(ExitReason::Shutdown));
    for c in children {
        assert!(c.pid.is_none_or(|p| !p.is_alive()));
    }
}

#[test]
fn dynamic_children_get_their_argument_back_on_restart() {
    let d = ManualDriver::new(9);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let template = ChildSpec::worker("conn", move |s| {
        sink.lock()
            .unwrap()
            .push(s.arg::<u16>().copied().unwrap_or(0));
        s.spawn(Worker).into()
    });
    let sup = start(
        &d,
        SupervisorSpec::new(Strategy::SimpleOneForOne)
            .intensity(5, Duration::from_secs(1))
            .child(template),
    )
    .unwrap();
    let a = sup.start_dynamic_child(8080u16);
    let b = sup.start_dynamic_child(9090u16);
    d.run_until_idle();
    let a = a.try_take().unwrap().unwrap().unwrap();
    assert!(b.try_take().unwrap().unwrap().is_some());
    a.downcast::<Worker>().unwrap().tell(Panic).unwrap();
    d.run_until_quiescent(100);
    assert_eq!(*seen.lock().unwrap(), vec![8080, 9090, 8080]);
    let counts = sup.count_children();
    d.run_until_idle();
    let counts = counts.try_take().unwrap().unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (1, 2, 2));
    // Static-child calls are refused under simple_one_for_one, and vice versa.
    let bad = sup.start_child(worker("x"));
    d.run_until_idle();
    assert_eq!(bad.try_take(), Some(Err(ChildError::SimpleOneForOne)));
    let plain = start(&d, SupervisorSpec::new(Strategy::OneForOne)).unwrap();
    let bad = plain.start_dynamic_child(1u8);
    d.run_until_idle();
    assert_eq!(bad.try_take(), Some(Err(ChildError::NotSimpleOneForOne)));
}

#[test]
fn an_ignored_start_keeps_a_permanent_spec_stopped() {
    let d = ManualDriver::new(2);
    let sup = start(
        &d,
        SupervisorSpec::new(Strategy::OneForOne)
            .child(ChildSpec::worker("later", |_| StartResult::Ignore)),
    )
    .unwrap();
    let which = sup.which_children();
    d.run_until_idle();
    let which = which.try_take().unwrap().unwrap();
    assert_eq!(which.len(), 1);
    assert!(which[0].pid.is_none());
    let again = sup.start_child(worker("later"));
    d.run_until_idle();
    assert_eq!(again.try_take(), Some(Err(ChildError::AlreadyPresent)));
}

#[test]
fn supervisor_ref_from_pid_only_for_supervisors() {
    let d = ManualDriver::new(1);
    let w = d.system().spawn(Worker).unwrap();
    assert!(SupervisorRef::from_pid(&w.pid()).is_none());
    let sup = start(
        &d,
        SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor(
            "sub",
            SupervisorSpec::new(Strategy::OneForAll),
        )),
    )
    .unwrap();
    let sub = child_pid(&d, &sup, "sub").unwrap();
    assert!(SupervisorRef::from_pid(&sub).is_some());
    assert!(SupervisorRef::from_pid(&sup.pid()).is_some());
}

// ------------------------------------------------------------------------------------------
// The runtime pieces the supervisor is built on
// ------------------------------------------------------------------------------------------

struct Quitter;
impl Actor for Quitter {}
struct QuitAfter(u32);
impl AsyncHandler<QuitAfter> for Quitter {
    type Reply = u32;
    async fn handle(&mut self, QuitAfter(n): QuitAfter, me: ActorHandle<Self>) -> u32 {
        me.stop_with(ExitReason::error(format!("quit {n}")));
        me.stop_with(ExitReason::Normal); // the first reason wins
        n
    }
}

#[test]
fn an_async_handler_can_stop_its_actor() {
    let d = ManualDriver::new(4);
    let q = d.system().spawn(Quitter).unwrap();
    let exit = q.pid().exit_reason();
    let reply = q.ask_async(QuitAfter(3));
    let late = q.ask_async(QuitAfter(4));
    d.run_until_idle();
    assert_eq!(reply.try_take(), Some(Ok(3)));
    assert_eq!(exit.try_take(), Some(Ok(ExitReason::error("quit 3"))));
    // The message queued behind it was not handled.
    assert_eq!(late.try_take(), Some(Err(airssys_rt::AskError::ActorDied)));
}

struct Parent {
    child: Option<Pid>,
}
impl Actor for Parent {}
struct SpawnChild;
impl AsyncHandler<SpawnChild> for Parent {
    type Reply = Pid;
    async fn handle(&mut self, _: SpawnChild, me: ActorHandle<Self>) -> Pid {
        let child = me.spawn_link(Worker).unwrap().pid();
        self.child = Some(child.clone());
        child
    }
}

#[test]
fn a_child_spawned_from_an_async_handler_is_linked_both_ways() {
    let d = ManualDriver::new(6);
    let parent = d.system().spawn(Parent { child: None }).unwrap();
    let child = parent.ask_async(SpawnChild);
    d.run_until_idle();
    let child = child.try_take().unwrap().unwrap();
    let child_exit = child.exit_reason();
    // Killing the parent takes the child down through the link.
    parent.kill();
    d.run_until_idle();
    assert_eq!(child_exit.try_take(), Some(Ok(ExitReason::Killed)));
}

#[test]
fn a_fifo_driver_runs_in_schedule_order_and_fires_timers_when_quiescent() {
    struct Log(Arc<Mutex<Vec<u32>>>, u32);
    impl Actor for Log {
        fn started(&mut self, _: &mut Ctx<Self>) {
            self.0.lock().unwrap().push(self.1);
        }
    }
    let d = ManualDriver::fifo();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20 {
        d.system().spawn(Log(log.clone(), i)).unwrap();
    }
    d.run_until_idle();
    assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
    // Timers: next_timer says how far, run_until_quiescent goes there.
    let fired = Arc::new(Mutex::new(false));
    let f = fired.clone();
    let cancelled = d.system().run_after(Duration::from_secs(1), || {});
    cancelled.cancel();
    d.system()
        .run_after(Duration::from_secs(7), move || *f.lock().unwrap() = true);
    assert_eq!(d.next_timer(), Some(Duration::from_secs(7)));
    assert!(d.run_until_quiescent(10));
    assert!(*fired.lock().unwrap());
    assert_eq!(d.now(), Duration::from_secs(7));
    assert_eq!(d.next_timer(), None);
}
