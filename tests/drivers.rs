//! One actor program on every driver: the same observable results everywhere.
//!
//! The program: a ping-pong of 1,000 round trips, a ring of 50 actors passing a token 5,000
//! hops, an ask, and a panicking actor observed by a monitor.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use airssys_rt::{Actor, ActorId, ActorRef, Ctx, ExitReason, Handler, MonitorRef, Reply, System};

#[derive(Debug, PartialEq)]
struct Observed {
    ping_pong_rounds: u64,
    ring_hops: u64,
    ask: u64,
    down: ExitReason,
    timer_fired: bool,
}

struct Alarm(Arc<AtomicU64>);
impl Actor for Alarm {}
struct Ring;
impl Handler<Ring> for Alarm {
    type Reply = ();
    fn handle(&mut self, _: Ring, _: &mut Ctx<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Player {
    rounds: Arc<AtomicU64>,
}
impl Actor for Player {}
struct Ball(ActorRef<Player>, u64);
impl Handler<Ball> for Player {
    type Reply = ();
    fn handle(&mut self, Ball(from, left): Ball, ctx: &mut Ctx<Self>) {
        if left % 2 == 0 {
            self.rounds.fetch_add(1, Ordering::SeqCst);
        }
        if left > 1 {
            from.tell(Ball(ctx.myself(), left - 1)).unwrap();
        }
    }
}

struct Node {
    next: Option<ActorRef<Node>>,
    hops: Arc<AtomicU64>,
}
impl Actor for Node {}
struct Next(ActorRef<Node>);
impl Handler<Next> for Node {
    type Reply = ();
    fn handle(&mut self, Next(n): Next, _: &mut Ctx<Self>) {
        self.next = Some(n);
    }
}
struct Token(u64);
impl Handler<Token> for Node {
    type Reply = ();
    fn handle(&mut self, Token(left): Token, _: &mut Ctx<Self>) {
        self.hops.fetch_add(1, Ordering::SeqCst);
        if left > 1 {
            self.next.as_ref().unwrap().tell(Token(left - 1)).unwrap();
        }
    }
}

struct Doubler;
impl Actor for Doubler {}
impl Handler<u64> for Doubler {
    type Reply = u64;
    fn handle(&mut self, n: u64, _: &mut Ctx<Self>) -> u64 {
        n * 2
    }
}

struct Bomb;
impl Actor for Bomb {}
impl Handler<()> for Bomb {
    type Reply = ();
    fn handle(&mut self, (): (), _: &mut Ctx<Self>) {
        panic!("kaboom");
    }
}

struct Watcher(Arc<Mutex<Option<ExitReason>>>);
impl Actor for Watcher {
    fn handle_down(&mut self, _: &mut Ctx<Self>, _: MonitorRef, _: ActorId, reason: ExitReason) {
        *self.0.lock().unwrap() = Some(reason);
    }
}
struct Watch(airssys_rt::Pid, ActorRef<Bomb>);
impl Handler<Watch> for Watcher {
    type Reply = ();
    fn handle(&mut self, Watch(pid, bomb): Watch, ctx: &mut Ctx<Self>) {
        ctx.monitor(&pid);
        // Detonate only once the monitor is in place (signals are ordered before later sends).
        bomb.tell(()).unwrap();
    }
}

const ROUNDS: u64 = 1_000;
const RING: usize = 50;
const HOPS: u64 = 5_000;

/// Runs the program on `system`, using `wait` to drive or wait until a condition holds.
fn program(system: &System, wait: &dyn Fn(&dyn Fn() -> bool)) -> Observed {
    let rounds = Arc::new(AtomicU64::new(0));
    let a = system
        .spawn(Player {
            rounds: rounds.clone(),
        })
        .unwrap();
    let b = system
        .spawn(Player {
            rounds: rounds.clone(),
        })
        .unwrap();
    a.tell(Ball(b, ROUNDS * 2)).unwrap();

    let hops = Arc::new(AtomicU64::new(0));
    let ring: Vec<_> = (0..RING)
        .map(|_| {
            system
                .spawn(Node {
                    next: None,
                    hops: hops.clone(),
                })
                .unwrap()
        })
        .collect();
    for (i, n) in ring.iter().enumerate() {
        n.tell(Next(ring[(i + 1) % RING].clone())).unwrap();
    }
    ring[0].tell(Token(HOPS)).unwrap();

    let doubler = system.spawn(Doubler).unwrap();
    let reply: Reply<u64> = doubler.ask(21);
    let answer = Arc::new(Mutex::new(None));

    let down = Arc::new(Mutex::new(None));
    let bomb = system.spawn(Bomb).unwrap();
    let watcher = system.spawn(Watcher(down.clone())).unwrap();
    watcher.tell(Watch(bomb.pid(), bomb.clone())).unwrap();

    let rang = Arc::new(AtomicU64::new(0));
    let alarm = system.spawn(Alarm(rang.clone())).unwrap();
    alarm.send_after(Duration::from_millis(2), Ring);

    wait(&|| {
        if answer.lock().unwrap().is_none() {
            *answer.lock().unwrap() = reply.try_take();
        }
        rounds.load(Ordering::SeqCst) == ROUNDS
            && hops.load(Ordering::SeqCst) == HOPS
            && answer.lock().unwrap().is_some()
            && down.lock().unwrap().is_some()
            && rang.load(Ordering::SeqCst) == 1
    });
    let ask = (*answer.lock().unwrap()).unwrap().unwrap();
    let down = down.lock().unwrap().clone().unwrap();
    Observed {
        ping_pong_rounds: rounds.load(Ordering::SeqCst),
        ring_hops: hops.load(Ordering::SeqCst),
        ask,
        down,
        timer_fired: rang.load(Ordering::SeqCst) == 1,
    }
}

fn expected() -> Observed {
    Observed {
        ping_pong_rounds: ROUNDS,
        ring_hops: HOPS,
        ask: 42,
        down: ExitReason::Panicked("kaboom".into()),
        timer_fired: true,
    }
}

/// Waits on another thread's progress, with a liveness deadline (not a timing assertion).
fn wait_threads(done: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "the program stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn manual_driver() {
    for seed in [1, 2, 3] {
        let d = airssys_rt::ManualDriver::new(seed);
        let observed = program(d.system(), &|done| {
            while !done() {
                // Idle: move virtual time so that the timer fires.
                if !d.step() {
                    assert!(
                        d.advance(Duration::from_millis(1)) > 0 || d.pending_timers() > 0,
                        "idle before the program finished"
                    );
                }
            }
        });
        assert_eq!(observed, expected(), "seed {seed}");
    }
}

#[test]
fn thread_pool() {
    let pool = airssys_rt::ThreadPool::new(2);
    assert_eq!(program(pool.system(), &wait_threads), expected());
}

/// The same program on a pool that takes whatever another worker has queued (a migration cost
/// of zero, tokio's rule), and on one that never finds a backlog worth moving (an idle worker
/// then takes another's queue only when it is blocked or stuck in one run), each with idle
/// workers that look again before sleeping (the default) and with ones that sleep at once
/// (every next task then needs a wake-up).
#[test]
fn thread_pool_with_either_stealing_rule() {
    for (cost, spins) in [
        (Duration::ZERO, 64),
        (Duration::from_secs(3600), 64),
        (Duration::ZERO, 0),
        (Duration::from_secs(3600), 0),
    ] {
        let pool = airssys_rt::ThreadPool::builder()
            .threads(3)
            .migration_cost(cost)
            .idle_spins(spins)
            .build()
            .unwrap();
        assert_eq!(
            program(pool.system(), &wait_threads),
            expected(),
            "migration cost {cost:?}, {spins} idle spins"
        );
    }
}

/// The builder's thread options reach the workers: their names, and the start and stop hooks,
/// once per worker with its index. A panicking start hook does not cost the pool its worker.
#[test]
fn thread_pool_builder_names_workers_and_runs_hooks() {
    struct WhereAmI;
    impl Actor for WhereAmI {}
    impl Handler<()> for WhereAmI {
        type Reply = Option<String>;
        fn handle(&mut self, _: (), _: &mut Ctx<Self>) -> Option<String> {
            std::thread::current().name().map(str::to_owned)
        }
    }
    let started = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let (s, t) = (started.clone(), stopped.clone());
    let pool = airssys_rt::ThreadPool::builder()
        .threads(3)
        .thread_name("agent")
        .stack_size(256 * 1024)
        .on_thread_start(move |i| s.lock().unwrap().push(i))
        .on_thread_stop(move |i| t.lock().unwrap().push(i))
        .build()
        .unwrap();
    let here = pool.system().spawn(WhereAmI).unwrap();
    let name = here.ask(()).wait(Duration::from_secs(10)).unwrap().unwrap();
    assert!(
        ["agent-0", "agent-1", "agent-2"].contains(&name.as_str()),
        "{name}"
    );
    pool.shutdown();
    let mut started = started.lock().unwrap().clone();
    let mut stopped = stopped.lock().unwrap().clone();
    started.sort_unstable();
    stopped.sort_unstable();
    assert_eq!(started, [0, 1, 2]);
    assert_eq!(stopped, [0, 1, 2]);

    // Every worker's start hook panics; the workers still run actors.
    let pool = airssys_rt::ThreadPool::builder()
        .threads(2)
        .on_thread_start(|i| panic!("start hook of worker {i}"))
        .build()
        .unwrap();
    let here = pool.system().spawn(WhereAmI).unwrap();
    let name = here.ask(()).wait(Duration::from_secs(10)).unwrap().unwrap();
    assert!(name.starts_with("airssys-worker-"), "{name}");
}

/// Completes once `done` holds (polled again on every wake).
struct Until<'a>(&'a dyn Fn() -> bool);
impl Future for Until<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if (self.0)() {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn future_driver_on_a_plain_block_on() {
    let driver = airssys_rt::FutureDriver::new();
    let observed = program(driver.system(), &|done| {
        airssys_rt::block_on_with(driver.worker(), Until(done))
    });
    assert_eq!(observed, expected());
}

#[test]
fn future_driver_on_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let driver = airssys_rt::FutureDriver::new();
    for _ in 0..2 {
        rt.spawn(driver.worker());
    }
    assert_eq!(program(driver.system(), &wait_threads), expected());
    driver.stop();
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_adapter() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let driver = airssys_rt::spawn_on_tokio(rt.handle(), 2);
    assert_eq!(program(driver.system(), &wait_threads), expected());
}

#[cfg(feature = "smol")]
#[test]
fn smol_adapter() {
    let executor: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
    for _ in 0..2 {
        std::thread::spawn(move || smol::block_on(executor.run(smol::future::pending::<()>())));
    }
    let driver = airssys_rt::spawn_on_smol(executor, 2);
    assert_eq!(program(driver.system(), &wait_threads), expected());
}

/// The pool's sleep protocol loses no wake-up: asks from outside, one at a time and in
/// bursts, with pauses that let the workers fall asleep in between; every one is answered.
#[test]
fn thread_pool_workers_wake_for_every_schedule() {
    struct Echo;
    impl Actor for Echo {}
    impl Handler<u64> for Echo {
        type Reply = u64;
        fn handle(&mut self, n: u64, _: &mut Ctx<Self>) -> u64 {
            n
        }
    }
    let pool = airssys_rt::ThreadPool::new(2);
    let echoes: Vec<_> = (0..8).map(|_| pool.system().spawn(Echo).unwrap()).collect();
    for round in 0..2_000u64 {
        if round % 100 == 0 {
            // Long enough for the workers to stop looking and sleep.
            std::thread::sleep(Duration::from_millis(2));
        }
        let burst = 1 + (round % 8) as usize;
        let replies: Vec<_> = echoes[..burst].iter().map(|e| e.ask(round)).collect();
        for r in replies {
            assert_eq!(r.wait(Duration::from_secs(10)), Ok(round), "round {round}");
        }
    }
}

/// A worker busy with local work (an endless chain of hops between actors it runs itself,
/// through its LIFO slot and its local queue) still takes schedules from outside the pool:
/// asks from this thread are answered while the chain goes on.
#[test]
fn thread_pool_local_work_does_not_starve_outside_schedules() {
    use std::sync::atomic::AtomicBool;

    struct Hop {
        next: Option<ActorRef<Hop>>,
        hops: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    }
    impl Actor for Hop {}
    struct SetNext(ActorRef<Hop>);
    impl Handler<SetNext> for Hop {
        type Reply = ();
        fn handle(&mut self, SetNext(next): SetNext, _: &mut Ctx<Self>) {
            self.next = Some(next);
        }
    }
    struct Token;
    impl Handler<Token> for Hop {
        type Reply = ();
        fn handle(&mut self, _: Token, _: &mut Ctx<Self>) {
            self.hops.fetch_add(1, Ordering::Relaxed);
            if !self.stop.load(Ordering::Relaxed) {
                // Two tokens in flight: one goes to the slot, the other to the local queue.
                let next = self.next.as_ref().expect("linked");
                next.tell(Token).unwrap();
            }
        }
    }
    struct Echo;
    impl Actor for Echo {}
    impl Handler<u64> for Echo {
        type Reply = u64;
        fn handle(&mut self, n: u64, _: &mut Ctx<Self>) -> u64 {
            n
        }
    }

    let pool = airssys_rt::ThreadPool::new(1);
    let (hops, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let ring: Vec<_> = (0..3)
        .map(|_| {
            let hop = Hop {
                next: None,
                hops: hops.clone(),
                stop: stop.clone(),
            };
            pool.system().spawn(hop).unwrap()
        })
        .collect();
    for (i, hop) in ring.iter().enumerate() {
        hop.tell(SetNext(ring[(i + 1) % ring.len()].clone()))
            .unwrap();
    }
    ring[0].tell(Token).unwrap();
    ring[1].tell(Token).unwrap();
    let echo = pool.system().spawn(Echo).unwrap();
    for n in 0..200u64 {
        assert_eq!(echo.ask(n).wait(Duration::from_secs(10)), Ok(n), "ask {n}");
    }
    assert!(
        hops.load(Ordering::Relaxed) > 0,
        "the chain ran meanwhile (the worker was busy with local work)"
    );
    stop.store(true, Ordering::Relaxed);
}

/// A run that does not return until another actor has run (a handler blocked on a plain
/// channel, which the pool is not told about, unlike a `Reply::wait`) does not keep that actor
/// from running when it waits in the blocked worker's local queue. The pool leaves a short
/// backlog to its owner (locality before balance), but an idle worker watches it and takes it
/// once the owner has finished no run for a while.
#[test]
fn thread_pool_takes_tasks_queued_behind_a_run_that_does_not_return() {
    use std::sync::mpsc;

    struct Signal(mpsc::Sender<u64>);
    impl Actor for Signal {}
    impl Handler<u64> for Signal {
        type Reply = ();
        fn handle(&mut self, n: u64, _: &mut Ctx<Self>) {
            if n > 0 {
                let _ = self.0.send(n);
            }
        }
    }
    struct Blocker {
        first: ActorRef<Signal>,
        second: ActorRef<Signal>,
        signals: mpsc::Receiver<u64>,
    }
    impl Actor for Blocker {}
    struct Go;
    impl Handler<Go> for Blocker {
        type Reply = Result<u64, String>;
        fn handle(&mut self, _: Go, _: &mut Ctx<Self>) -> Result<u64, String> {
            // Both are idle: the first goes to this worker's LIFO slot, and the second moves
            // it to the worker's local queue (the second stays in the slot, which only this
            // worker runs, as in tokio).
            self.first.tell(1).map_err(|e| e.to_string())?;
            self.second.tell(2).map_err(|e| e.to_string())?;
            // This run does not return until the first has run. (The second may run first if
            // it was still ending its previous run elsewhere when told.)
            loop {
                match self.signals.recv_timeout(Duration::from_secs(20)) {
                    Ok(1) => return Ok(1),
                    Ok(_) => {}
                    Err(e) => return Err(format!("the queued actor did not run: {e}")),
                }
            }
        }
    }

    // With three workers, the two idle ones take turns: one watches, the other sleeps.
    for (round, workers) in (0..20).zip([2, 3].into_iter().cycle()) {
        let pool = airssys_rt::ThreadPool::new(workers);
        let (tx, rx) = mpsc::channel();
        let first = pool.system().spawn(Signal(tx.clone())).unwrap();
        let second = pool.system().spawn(Signal(tx)).unwrap();
        // Both have started and are idle (parked) before the blocker runs.
        for s in [&first, &second] {
            assert_eq!(s.ask(0).wait(Duration::from_secs(10)), Ok(()));
        }
        // (Their runs end just after they reply; let them, so that the tells schedule them.)
        std::thread::sleep(Duration::from_millis(2));
        let blocker = pool
            .system()
            .spawn(Blocker {
                first: first.clone(),
                second,
                signals: rx,
            })
            .unwrap();
        assert_eq!(
            blocker.ask(Go).wait(Duration::from_secs(30)),
            Ok(Ok(1)),
            "round {round}, {workers} workers"
        );
    }
}

/// Counts what it is told; steps another driver when told to (a driver stepped from inside a
/// run of another).
struct Tally {
    seen: Vec<u64>,
    inner: Option<(Arc<airssys_rt::ManualDriver>, ActorRef<Tally>)>,
}

impl Actor for Tally {}

impl Handler<u64> for Tally {
    type Reply = ();
    fn handle(&mut self, n: u64, _ctx: &mut Ctx<Self>) {
        self.seen.push(n);
        if let Some((driver, other)) = &self.inner {
            other.tell(n).unwrap();
            driver.run_until_idle();
        }
    }
}

struct Seen;

impl Handler<Seen> for Tally {
    type Reply = Vec<u64>;
    fn handle(&mut self, _: Seen, _ctx: &mut Ctx<Self>) -> Vec<u64> {
        self.seen.clone()
    }
}

/// The manual driver's local run queue (no lock inside a step) still takes schedules from
/// other threads and from a second driver stepped inside one of its runs, and loses none.
#[test]
fn manual_driver_takes_schedules_from_other_threads_and_nested_drivers() {
    let outer = airssys_rt::ManualDriver::fifo();
    let inner = Arc::new(airssys_rt::ManualDriver::fifo());
    let nested = inner
        .system()
        .spawn(Tally {
            seen: Vec::new(),
            inner: None,
        })
        .unwrap();
    let front = outer
        .system()
        .spawn(Tally {
            seen: Vec::new(),
            inner: Some((inner.clone(), nested.clone())),
        })
        .unwrap();
    const N: u64 = 2000;
    let sender = {
        let front = front.clone();
        std::thread::spawn(move || {
            for n in 0..N {
                front.tell(n).unwrap();
                if n % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    // Step while the other thread sends; then once more after it has finished.
    while !sender.is_finished() {
        outer.run_until_idle();
    }
    sender.join().unwrap();
    outer.run_until_idle();
    assert_eq!(outer.pending(), 0);
    let seen = front.ask(Seen);
    outer.run_until_idle();
    assert_eq!(
        seen.try_take().unwrap().unwrap(),
        (0..N).collect::<Vec<_>>()
    );
    let seen = nested.ask(Seen);
    inner.run_until_idle();
    assert_eq!(
        seen.try_take().unwrap().unwrap(),
        (0..N).collect::<Vec<_>>()
    );
}

/// Asks a `Doubler` and blocks on the answer inside its own handler.
struct BlockingAsker(ActorRef<Doubler>);
impl Actor for BlockingAsker {}
impl Handler<u64> for BlockingAsker {
    type Reply = Result<u64, airssys_rt::AskError>;
    fn handle(&mut self, n: u64, _: &mut Ctx<Self>) -> Result<u64, airssys_rt::AskError> {
        self.0.ask_timeout(n, Duration::from_secs(10))
    }
}

/// A handler that blocks on another actor's reply does not hold that actor back: the ask
/// schedules it from inside the asker's run, which would put it in the worker's LIFO slot,
/// where only the blocked worker could take it.
///
/// (Not run on a driver hosted by tokio: there the blocked handler blocks a tokio worker
/// thread, and tokio may hold the woken airssys worker in that thread's LIFO slot, which other
/// tokio threads do not steal. Await the reply in an async handler there.)
fn blocking_ask_inside_a_handler(
    system: &System,
    wait: impl Fn(
        Reply<Result<u64, airssys_rt::AskError>>,
    ) -> Result<Result<u64, airssys_rt::AskError>, airssys_rt::AskError>,
) {
    let doubler = system.spawn(Doubler).unwrap();
    let asker = system.spawn(BlockingAsker(doubler)).unwrap();
    for n in 0..20 {
        assert_eq!(wait(asker.ask(n)), Ok(Ok(n * 2)), "ask {n}");
    }
}

#[test]
fn thread_pool_blocking_ask_inside_a_handler() {
    let pool = airssys_rt::ThreadPool::new(2);
    blocking_ask_inside_a_handler(pool.system(), |r| r.wait(Duration::from_secs(20)));
}
