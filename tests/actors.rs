//! The actor layer: messages, asks, panics, links, monitors, trap_exit, registry, bad input.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airssys_rt::{
    Actor, ActorId, ActorRef, AskError, Ctx, ExitReason, Handler, ManualDriver, MonitorRef, Pid,
    RegisterError, SendError, SpawnError, ThreadPool,
};

const WAIT: Duration = Duration::from_secs(10);

/// Records what happens to it.
#[derive(Default)]
struct Probe {
    log: Arc<Mutex<Vec<String>>>,
    trap: bool,
}

impl Probe {
    fn new(log: &Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            log: log.clone(),
            trap: false,
        }
    }
    fn trapping(log: &Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            log: log.clone(),
            trap: true,
        }
    }
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

impl Actor for Probe {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.trap_exit(self.trap);
    }
    fn stopping(&mut self, _ctx: &mut Ctx<Self>, reason: &ExitReason) {
        self.note(format!("stopping {reason}"));
    }
    fn stopped(&mut self, reason: &ExitReason) {
        if *reason == ExitReason::Killed {
            self.note("stopped killed".into());
        }
    }
    fn handle_exit(&mut self, _ctx: &mut Ctx<Self>, from: Option<ActorId>, reason: ExitReason) {
        self.note(format!(
            "exit from {} {reason}",
            from.map_or("outside".into(), |f| f.to_string())
        ));
    }
    fn handle_down(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _m: MonitorRef,
        from: ActorId,
        reason: ExitReason,
    ) {
        self.note(format!("down {from} {reason}"));
    }
}

/// Commands a probe can be given.
enum Cmd {
    Panic(&'static str),
    Stop(ExitReason),
    Link(Pid),
    Monitor(Pid),
    Echo(u64),
}

impl Handler<Cmd> for Probe {
    type Reply = u64;
    fn handle(&mut self, cmd: Cmd, ctx: &mut Ctx<Self>) -> u64 {
        match cmd {
            Cmd::Panic(msg) => panic!("{msg}"),
            Cmd::Stop(reason) => ctx.stop_with(reason),
            Cmd::Link(pid) => ctx.link(&pid),
            Cmd::Monitor(pid) => {
                ctx.monitor(&pid);
            }
            Cmd::Echo(n) => return n,
        }
        0
    }
}

fn log() -> Arc<Mutex<Vec<String>>> {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[test]
fn a_panic_is_an_exit_reason_seen_by_monitors_and_the_runtime_goes_on() {
    let d = ManualDriver::new(1);
    let (wlog, vlog) = (log(), log());
    let watcher = d.system().spawn(Probe::new(&wlog)).unwrap();
    let victim = d.system().spawn(Probe::new(&vlog)).unwrap();
    watcher.tell(Cmd::Monitor(victim.pid())).unwrap();
    d.run_until_idle();
    victim.tell(Cmd::Panic("boom")).unwrap();
    d.run_until_idle();
    assert!(!victim.is_alive());
    assert_eq!(
        entries(&wlog),
        [format!("down {} panicked: boom", victim.id())]
    );
    assert_eq!(entries(&vlog), ["stopping panicked: boom"]);
    let stats = d.system().stats();
    assert_eq!((stats.panics, stats.crashed), (1, 1));
    // The runtime and the other actors are fine.
    let echo = watcher.ask(Cmd::Echo(9));
    d.run_until_idle();
    assert_eq!(echo.try_take(), Some(Ok(9)));
}

#[test]
fn links_propagate_abnormal_exits_and_trapping_actors_are_told() {
    let d = ManualDriver::new(2);
    let (a_log, b_log, c_log) = (log(), log(), log());
    let a = d.system().spawn(Probe::new(&a_log)).unwrap();
    let b = d.system().spawn(Probe::new(&b_log)).unwrap();
    let c = d.system().spawn(Probe::trapping(&c_log)).unwrap();
    a.tell(Cmd::Link(b.pid())).unwrap();
    a.tell(Cmd::Link(c.pid())).unwrap();
    d.run_until_idle();
    a.tell(Cmd::Stop(ExitReason::error("disk full"))).unwrap();
    d.run_until_idle();
    assert!(!a.is_alive() && !b.is_alive(), "b dies with its link");
    assert!(c.is_alive(), "c traps exits");
    assert_eq!(entries(&b_log), ["stopping error: disk full"]);
    assert_eq!(
        entries(&c_log),
        [format!("exit from {} error: disk full", a.id())]
    );
}

#[test]
fn a_normal_exit_does_not_take_links_down() {
    let d = ManualDriver::new(3);
    let (a_log, b_log) = (log(), log());
    let a = d.system().spawn(Probe::new(&a_log)).unwrap();
    let b = d.system().spawn(Probe::new(&b_log)).unwrap();
    a.tell(Cmd::Link(b.pid())).unwrap();
    d.run_until_idle();
    a.tell(Cmd::Stop(ExitReason::Normal)).unwrap();
    d.run_until_idle();
    assert!(!a.is_alive());
    assert!(b.is_alive());
    assert!(entries(&b_log).is_empty());
}

#[test]
fn monitoring_or_linking_a_dead_actor_reports_noproc() {
    let d = ManualDriver::new(4);
    let (w_log, t_log) = (log(), log());
    let dead = d.system().spawn(Probe::new(&log())).unwrap();
    dead.kill();
    d.run_until_idle();
    let watcher = d.system().spawn(Probe::trapping(&w_log)).unwrap();
    watcher.tell(Cmd::Monitor(dead.pid())).unwrap();
    watcher.tell(Cmd::Link(dead.pid())).unwrap();
    d.run_until_idle();
    assert_eq!(
        entries(&w_log),
        [
            format!("down {} noproc", dead.id()),
            format!("exit from {} noproc", dead.id())
        ]
    );
    // A non-trapping actor linking to a dead one dies with noproc.
    let t = d.system().spawn(Probe::new(&t_log)).unwrap();
    t.tell(Cmd::Link(dead.pid())).unwrap();
    d.run_until_idle();
    assert!(!t.is_alive());
    assert_eq!(entries(&t_log), ["stopping noproc"]);
}

#[test]
fn kill_is_untrappable_and_skips_the_stopping_hook() {
    let d = ManualDriver::new(5);
    let (k_log, w_log) = (log(), log());
    let k = d.system().spawn(Probe::trapping(&k_log)).unwrap();
    let w = d.system().spawn(Probe::new(&w_log)).unwrap();
    w.tell(Cmd::Monitor(k.pid())).unwrap();
    d.run_until_idle();
    assert!(k.kill());
    d.run_until_idle();
    assert!(!k.is_alive());
    assert_eq!(
        entries(&k_log),
        ["stopped killed"],
        "kill skips stopping but runs stopped"
    );
    assert_eq!(entries(&w_log), [format!("down {} killed", k.id())]);
    assert!(!k.kill(), "already dead");
}

#[test]
fn stop_is_trappable_and_the_default_handler_stops() {
    let d = ManualDriver::new(6);
    let l = log();
    let p = d.system().spawn(Probe::new(&l)).unwrap();
    d.run_until_idle();
    assert!(p.stop());
    d.run_until_idle();
    assert!(!p.is_alive());
    assert_eq!(entries(&l), ["stopping shutdown"]);
}

#[test]
fn sends_to_dead_actors_and_full_mailboxes_give_the_message_back() {
    let d = ManualDriver::new(7);
    let p = d.system().spawn_bounded(Probe::new(&log()), 2).unwrap();
    p.tell(Cmd::Echo(1)).unwrap();
    p.tell(Cmd::Echo(2)).unwrap();
    match p.tell(Cmd::Echo(3)) {
        Err(SendError::Full(Cmd::Echo(3))) => {}
        other => panic!("expected Full with the message, got {other:?}"),
    }
    assert_eq!(p.ask(Cmd::Echo(4)).try_take(), Some(Err(AskError::Full)));
    d.run_until_idle();
    p.kill();
    d.run_until_idle();
    match p.tell(Cmd::Echo(5)) {
        Err(SendError::Dead(Cmd::Echo(5))) => {}
        other => panic!("expected Dead with the message, got {other:?}"),
    }
    assert_eq!(
        p.ask(Cmd::Echo(6)).try_take(),
        Some(Err(AskError::ActorDied))
    );
}

#[test]
fn an_ask_whose_actor_dies_first_gets_actor_died_and_queued_messages_are_dead_letters() {
    let d = ManualDriver::new(8);
    let p = d.system().spawn(Probe::new(&log())).unwrap();
    p.tell(Cmd::Panic("first")).unwrap();
    let reply = p.ask(Cmd::Echo(1));
    p.tell(Cmd::Echo(2)).unwrap();
    d.run_until_idle();
    assert_eq!(reply.try_take(), Some(Err(AskError::ActorDied)));
    assert_eq!(d.system().stats().dead_letters, 2);
}

#[test]
fn ask_times_out_when_nobody_runs_the_actor() {
    let d = ManualDriver::new(9);
    let p = d.system().spawn(Probe::new(&log())).unwrap();
    assert_eq!(
        p.ask_timeout(Cmd::Echo(1), Duration::from_millis(20)),
        Err(AskError::Timeout)
    );
}

#[test]
fn stale_ids_never_resolve_even_after_their_slot_is_reused() {
    let d = ManualDriver::new(10);
    let first = d.system().spawn(Probe::new(&log())).unwrap();
    let old = first.id();
    assert_eq!(d.system().lookup(old).map(|p| p.id()), Some(old));
    first.kill();
    d.run_until_idle();
    assert!(d.system().lookup(old).is_none());
    let second = d.system().spawn(Probe::new(&log())).unwrap();
    assert_eq!(second.id().index(), old.index(), "the slot was reused");
    assert_ne!(second.id(), old);
    assert!(d.system().lookup(old).is_none(), "a stale id resolved");
    assert_eq!(
        d.system().lookup(second.id()).map(|p| p.id()),
        Some(second.id())
    );
}

#[test]
fn names_are_unique_and_die_with_their_actor() {
    let d = ManualDriver::new(11);
    let sys = d.system();
    let a = sys.spawn(Probe::new(&log())).unwrap();
    let b = sys.spawn(Probe::new(&log())).unwrap();
    sys.register("db", &a.pid()).unwrap();
    assert_eq!(
        sys.register("db", &b.pid()),
        Err(RegisterError::Taken {
            name: "db".into(),
            holder: a.id()
        })
    );
    assert_eq!(sys.whereis("db").map(|p| p.id()), Some(a.id()));
    assert!(sys.whereis("nobody").is_none());
    a.kill();
    d.run_until_idle();
    assert!(sys.whereis("db").is_none(), "the name died with its actor");
    sys.register("db", &b.pid()).unwrap();
    b.kill();
    d.run_until_idle();
    assert_eq!(
        sys.register("db", &b.pid()),
        Err(RegisterError::NotAlive(b.id()))
    );
}

#[test]
fn an_actor_has_at_most_one_name_as_in_erlang() {
    let d = ManualDriver::new(11);
    let sys = d.system();
    let a = sys.spawn(Probe::new(&log())).unwrap();
    sys.register("one", &a.pid()).unwrap();
    assert_eq!(
        sys.register("two", &a.pid()),
        Err(RegisterError::AlreadyNamed {
            actor: a.id(),
            name: "one".into()
        })
    );
    assert!(sys.whereis("two").is_none());
    // Renaming: unregister first.
    assert!(sys.unregister("one"));
    sys.register("two", &a.pid()).unwrap();
    assert_eq!(sys.whereis("two").map(|p| p.id()), Some(a.id()));
}

#[test]
fn spawning_after_shutdown_is_refused() {
    let d = ManualDriver::new(12);
    d.system().shutdown();
    assert_eq!(
        d.system().spawn(Probe::new(&log())).err(),
        Some(SpawnError::ShuttingDown)
    );
}

struct Count(Arc<AtomicUsize>);
impl Actor for Count {}
impl Handler<()> for Count {
    type Reply = ();
    fn handle(&mut self, (): (), _: &mut Ctx<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_run_handles_at_most_its_budget() {
    let d = ManualDriver::new(13);
    let n = Arc::new(AtomicUsize::new(0));
    let c = d.system().spawn(Count(n.clone())).unwrap();
    d.run_until_idle(); // started
    for _ in 0..300 {
        c.tell(()).unwrap();
    }
    assert!(d.step());
    assert_eq!(n.load(Ordering::SeqCst), 128);
    assert_eq!(d.pending(), 1, "yielded and rescheduled itself");
    d.run_until_idle();
    assert_eq!(n.load(Ordering::SeqCst), 300);
}

/// Links itself to a peer on start: many pairs link to each other at the same moment.
struct Linker {
    peer: Option<Pid>,
    done: Arc<AtomicUsize>,
}
impl Actor for Linker {}
impl Handler<Pid> for Linker {
    type Reply = ();
    fn handle(&mut self, peer: Pid, ctx: &mut Ctx<Self>) {
        ctx.link(&peer);
        self.peer = Some(peer);
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn mutual_links_at_the_same_time_do_not_deadlock_and_propagate() {
    let pool = ThreadPool::new(2);
    let done = Arc::new(AtomicUsize::new(0));
    let pairs: Vec<_> = (0..200)
        .map(|_| {
            let mk = || {
                pool.system()
                    .spawn(Linker {
                        peer: None,
                        done: done.clone(),
                    })
                    .unwrap()
            };
            (mk(), mk())
        })
        .collect();
    for (a, b) in &pairs {
        a.tell(b.pid()).unwrap();
        b.tell(a.pid()).unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while done.load(Ordering::SeqCst) < 400 {
        assert!(std::time::Instant::now() < deadline, "linking deadlocked");
        std::thread::yield_now();
    }
    // Killing one side takes the other down: the link exists exactly once, both ways.
    for (a, _) in &pairs {
        a.kill();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while pairs.iter().any(|(_, b)| b.is_alive()) {
        assert!(
            std::time::Instant::now() < deadline,
            "a link did not propagate"
        );
        std::thread::yield_now();
    }
}

struct Pinger {
    left: u64,
}
impl Actor for Pinger {}
struct Ball(airssys_rt::ActorRef<Pinger>, u64);
impl Handler<Ball> for Pinger {
    type Reply = ();
    fn handle(&mut self, Ball(peer, n): Ball, ctx: &mut Ctx<Self>) {
        if self.left == 0 {
            ctx.stop();
            return;
        }
        self.left -= 1;
        let _ = peer.tell(Ball(ctx.myself(), n + 1));
    }
}

#[test]
fn ping_pong_on_the_thread_pool() {
    let pool = ThreadPool::new(2);
    let a = pool.system().spawn(Pinger { left: 10_000 }).unwrap();
    let b = pool.system().spawn(Pinger { left: 10_000 }).unwrap();
    a.tell(Ball(b.clone(), 0)).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while a.is_alive() && b.is_alive() {
        assert!(std::time::Instant::now() < deadline, "ping-pong stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Sum(Arc<AtomicUsize>);
impl Actor for Sum {}
impl Handler<usize> for Sum {
    type Reply = ();
    fn handle(&mut self, n: usize, _: &mut Ctx<Self>) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }
}

#[test]
fn send_waits_for_arena_space_and_loses_nothing() {
    let pool = ThreadPool::new(2);
    let total = Arc::new(AtomicUsize::new(0));
    let sum = pool.system().spawn(Sum(total.clone())).unwrap();
    let sender = {
        let sum = sum.clone();
        std::thread::spawn(move || {
            // A tiny pool: the sender must wait for the receiver to recycle chunks.
            airssys_rt::arena::set_thread_pool_config(
                airssys_rt::mailbox::PoolConfig::default()
                    .chunk_size(4096)
                    .max_bytes(2 * 4096),
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..20_000 {
                    sum.send(i).await.unwrap();
                }
            });
            airssys_rt::arena::with_writer(|w| w.stats())
        })
    };
    let stats = sender.join().unwrap();
    assert!(stats.bytes <= 2 * 4096, "the sender's pool grew: {stats:?}");
    assert!(stats.chunks_recycled > 0);
    let deadline = std::time::Instant::now() + WAIT;
    while total.load(Ordering::SeqCst) < (0..20_000).sum::<usize>() {
        assert!(std::time::Instant::now() < deadline, "messages lost");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(total.load(Ordering::SeqCst), (0..20_000).sum::<usize>());
    sum.kill();
    let deadline = std::time::Instant::now() + WAIT;
    while sum.is_alive() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::yield_now();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(sum.send(7)), Err(SendError::Dead(7)));
    assert_eq!(sum.try_tell(8), Err(SendError::Dead(8)));
}

/// Passes a countdown back and forth with its peer (set after spawning).
struct Volley {
    peer: Option<ActorRef<Volley>>,
    hits: Arc<AtomicUsize>,
}
impl Actor for Volley {}
impl Handler<ActorRef<Volley>> for Volley {
    type Reply = ();
    fn handle(&mut self, peer: ActorRef<Volley>, _: &mut Ctx<Self>) {
        self.peer = Some(peer);
    }
}
impl Handler<u64> for Volley {
    type Reply = ();
    fn handle(&mut self, left: u64, _: &mut Ctx<Self>) {
        self.hits.fetch_add(1, Ordering::SeqCst);
        if left > 0 {
            let peer = self.peer.as_ref().expect("peer set first");
            peer.tell(left - 1)
                .expect("a two-chunk arena is enough for one letter in flight");
        }
    }
}

/// The drivers hold back the chunk references of received letters across runs (one
/// `fetch_sub` for many); a tiny arena must still recycle its chunks while they do, and never
/// refuse a send for want of a chunk that only this thread's held-back references pin.
#[test]
fn a_long_volley_in_a_two_chunk_arena_recycles_its_chunks() {
    const HOPS: u64 = 20_000;
    let d = ManualDriver::new(3);
    airssys_rt::arena::set_thread_pool_config(
        airssys_rt::mailbox::PoolConfig::default()
            .chunk_size(4096)
            .max_bytes(2 * 4096),
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let spawn = || {
        d.system()
            .spawn(Volley {
                peer: None,
                hits: hits.clone(),
            })
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    a.tell(b.clone()).unwrap();
    b.tell(a.clone()).unwrap();
    d.run_until_idle();
    a.tell(HOPS).unwrap();
    d.run_until_idle();
    assert_eq!(hits.load(Ordering::SeqCst), HOPS as usize + 1);
    let stats = airssys_rt::arena::with_writer(|w| w.stats());
    assert!(stats.bytes <= 2 * 4096, "the pool grew: {stats:?}");
    assert!(
        stats.chunks_recycled > 10,
        "chunks were not recycled: {stats:?}"
    );
    a.stop();
    b.stop();
    d.run_until_idle();
}

#[test]
fn exit_reason_is_a_join_handle_on_every_path() {
    let d = ManualDriver::new(14);
    let l = log();
    // A crash.
    let a = d.system().spawn(Probe::new(&l)).unwrap();
    let crash = a.pid().exit_reason();
    a.tell(Cmd::Panic("join me")).unwrap();
    d.run_until_idle();
    assert_eq!(
        crash.try_take(),
        Some(Ok(ExitReason::Panicked("join me".into())))
    );
    // Asked for twice, and for an actor that stops normally.
    let b = d.system().spawn(Probe::new(&l)).unwrap();
    let (w1, w2) = (b.pid().exit_reason(), b.pid().exit_reason());
    b.tell(Cmd::Stop(ExitReason::Normal)).unwrap();
    d.run_until_idle();
    assert_eq!(w1.try_take(), Some(Ok(ExitReason::Normal)));
    assert_eq!(w2.try_take(), Some(Ok(ExitReason::Normal)));
    // An actor that has already stopped.
    assert_eq!(
        a.pid().exit_reason().try_take(),
        Some(Ok(ExitReason::NoProc))
    );
    // Blocking wait on the thread pool.
    let pool = ThreadPool::new(2);
    let c = pool.system().spawn(Probe::new(&l)).unwrap();
    let exit = c.pid().exit_reason();
    c.stop();
    assert_eq!(exit.wait(WAIT), Ok(ExitReason::Shutdown));
}

#[test]
fn send_to_a_full_bounded_mailbox_returns_full_and_does_not_hang() {
    let d = ManualDriver::new(15);
    let total = Arc::new(AtomicUsize::new(0));
    let sum = d.system().spawn_bounded(Sum(total.clone()), 1).unwrap();
    sum.tell(1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The mailbox is at its bound: the message comes back at once (the future must not park
    // waiting for arena space it does not lack).
    assert_eq!(rt.block_on(sum.send(2)), Err(SendError::Full(2)));
    d.run_until_idle();
    assert_eq!(rt.block_on(sum.send(3)), Ok(()));
    d.run_until_idle();
    assert_eq!(total.load(Ordering::SeqCst), 4);
}
