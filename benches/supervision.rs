//! Supervision costs, side by side with a hand-written restart loop in the same run.
//!
//! * `restart/one_for_one/*`: a child crashes (stops with reason `boom`) and its supervisor
//!   restarts it; one iteration ends when the replacement has handled its first message (an
//!   `ask`). On a [`ManualDriver`] (one thread, everything inline) and on a 2-worker
//!   [`ThreadPool`] (the bench thread waits for the new child's pid and its answer).
//! * `restart/manual_relink/same_thread`: the baseline: a plain actor that traps its child's
//!   exit and spawns a replacement with `spawn_link` (no specs, no intensity, no events):
//!   what a restart costs the runtime itself.
//! * `restart/one_for_all_100`: one of 100 children crashes; the other 99 are shut down in
//!   reverse order (each waited for) and all 100 are started again. One iteration is the whole
//!   group restart, on a [`ManualDriver`].
//!
//! Every iteration checks its result: the replacement must be a new process that answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use airssys_rt::supervisor::{
    ChildSpec, Strategy, Supervisor, SupervisorEvent, SupervisorRef, SupervisorSpec,
};
use airssys_rt::{
    Actor, ActorId, ActorRef, Ctx, ExitReason, Handler, ManualDriver, Pid, ThreadPool,
};
use criterion::{criterion_group, criterion_main, Criterion};

const WAIT: Duration = Duration::from_secs(10);

struct Worker;
impl Actor for Worker {}

struct Crash;
impl Handler<Crash> for Worker {
    type Reply = ();
    fn handle(&mut self, _: Crash, ctx: &mut Ctx<Self>) {
        ctx.stop_with(ExitReason::error("boom"));
    }
}

struct Ping;
impl Handler<Ping> for Worker {
    type Reply = u32;
    fn handle(&mut self, _: Ping, _: &mut Ctx<Self>) -> u32 {
        7
    }
}

fn spec(strategy: Strategy, children: usize, started: mpsc::Sender<Pid>) -> SupervisorSpec {
    let started = Mutex::new(started);
    SupervisorSpec::new(strategy)
        // Never give up: the bench crashes as fast as it can (the window is pruned as the
        // clock moves; see `advance` below).
        .intensity(u32::MAX, Duration::from_secs(1))
        .children(
            (0..children).map(|i| ChildSpec::worker(format!("w{i}"), |s| s.spawn(Worker).into())),
        )
        .observer(move |e| {
            if let SupervisorEvent::ChildStarted { pid, .. } = e {
                let _ = started.lock().unwrap().send((*pid).clone());
            }
        })
}

fn worker(pid: &Pid) -> ActorRef<Worker> {
    pid.downcast::<Worker>().expect("a worker")
}

/// The baseline: traps its child's exit and respawns it with `spawn_link`.
struct Relinker {
    started: mpsc::Sender<Pid>,
}
impl Actor for Relinker {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.trap_exit(true);
        let child = ctx.spawn_link(Worker).unwrap();
        let _ = self.started.send(child.pid());
    }
    fn handle_exit(&mut self, ctx: &mut Ctx<Self>, _: Option<ActorId>, _: ExitReason) {
        let child = ctx.spawn_link(Worker).unwrap();
        let _ = self.started.send(child.pid());
    }
}

fn bench_restart(c: &mut Criterion) {
    let mut g = c.benchmark_group("restart");

    // one_for_one, same thread.
    {
        let d = ManualDriver::fifo();
        let (tx, rx) = mpsc::channel();
        let starting = Supervisor::start(d.system(), spec(Strategy::OneForOne, 1, tx));
        d.run_until_idle();
        let sup: SupervisorRef = starting.try_take().unwrap().unwrap();
        let mut current = rx.try_recv().unwrap();
        let mut n = 0u64;
        g.bench_function("one_for_one/same_thread", |b| {
            b.iter(|| {
                worker(&current).tell(Crash).unwrap();
                d.run_until_idle();
                let next = rx.try_recv().expect("restarted");
                assert_ne!(next, current);
                let answer = worker(&next).ask(Ping);
                d.run_until_idle();
                assert_eq!(answer.try_take(), Some(Ok(7)));
                current = next;
                n += 1;
                if n.is_multiple_of(4096) {
                    d.advance(Duration::from_secs(2));
                }
            })
        });
        sup.stop();
        d.run_until_idle();
    }

    // The baseline, same thread.
    {
        let d = ManualDriver::fifo();
        let (tx, rx) = mpsc::channel();
        let relinker = d.system().spawn(Relinker { started: tx }).unwrap();
        d.run_until_idle();
        let mut current = rx.try_recv().unwrap();
        g.bench_function("manual_relink/same_thread", |b| {
            b.iter(|| {
                worker(&current).tell(Crash).unwrap();
                d.run_until_idle();
                let next = rx.try_recv().expect("restarted");
                let answer = worker(&next).ask(Ping);
                d.run_until_idle();
                assert_eq!(answer.try_take(), Some(Ok(7)));
                current = next;
            })
        });
        relinker.kill();
        d.run_until_idle();
    }

    // one_for_one on 2 workers.
    {
        let pool = ThreadPool::new(2);
        let (tx, rx) = mpsc::channel();
        let sup = Supervisor::start(pool.system(), spec(Strategy::OneForOne, 1, tx))
            .wait(WAIT)
            .unwrap();
        let mut current = rx.recv_timeout(WAIT).unwrap();
        g.bench_function("one_for_one/2_workers", |b| {
            b.iter(|| {
                worker(&current).tell(Crash).unwrap();
                let next = rx.recv_timeout(WAIT).expect("restarted");
                assert_eq!(worker(&next).ask(Ping).wait(WAIT), Ok(7));
                current = next;
            })
        });
        sup.stop();
    }

    // one_for_all, 100 children, same thread.
    {
        let d = ManualDriver::fifo();
        let (tx, rx) = mpsc::channel();
        let starting = Supervisor::start(d.system(), spec(Strategy::OneForAll, 100, tx));
        d.run_until_idle();
        let sup = starting.try_take().unwrap().unwrap();
        let mut first: Vec<Pid> = rx.try_iter().collect();
        assert_eq!(first.len(), 100);
        let restarts = AtomicU64::new(0);
        g.bench_function("one_for_all_100/same_thread", |b| {
            b.iter(|| {
                worker(&first[50]).tell(Crash).unwrap();
                d.run_until_idle();
                let now: Vec<Pid> = rx.try_iter().collect();
                assert_eq!(now.len(), 100, "all 100 restarted");
                assert!(first.iter().all(|p| !p.is_alive()));
                first = now;
                if restarts
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1024)
                {
                    d.advance(Duration::from_secs(2));
                }
            })
        });
        sup.stop();
        d.run_until_idle();
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_restart
}
criterion_main!(benches);
