//! airssys-rt, in two columns: on its own drivers (a [`ManualDriver`] run by the bench thread
//! for one thread, a [`ThreadPool`] of 2 workers otherwise) and hosted on tokio
//! ([`spawn_on_tokio`] workers on a `current_thread` runtime, or on a 2-worker `multi_thread`
//! runtime). The actors are the same in both; only the host differs.
//!
//! Plain `tell` never blocks: when the sending thread's arena pool is exhausted it gives the
//! message back (`SendError::Full`). A producer outside the actors (the bench thread, producer
//! threads) then retries after a `yield_now`; a producer actor uses the async `send().await`,
//! which waits for arena space without blocking its worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use airssys_rt::{
    spawn_on_tokio, Actor, ActorHandle, ActorRef, AsyncHandler, Ctx, ExitReason, FutureDriver,
    Handler, ManualDriver, SendError, System, ThreadPool,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{per_actor, Contender, Kind, Memory, MemoryError, IDLE_BATCH};
use crate::alloc;
use crate::harness::{
    block_recv, block_recv_n, fault, recv, recv_n, tokio_runtime, Bench, Latch, Producers, Threads,
    WAIT,
};
use crate::workload::{
    chameneos_check, expect_eq, fan_in_check, fan_in_expected, fj_expected, fj_step, ring_check,
    BigNext, BigState, Color, MallNext, MallState,
};

/// airssys-rt on its own drivers (`on_tokio: false`) or on tokio.
pub struct Airssys {
    /// Hosted on tokio workers instead of the built-in drivers.
    pub on_tokio: bool,
}

/// Where the actors of one cell run.
enum Host {
    /// The bench thread runs them (`run_until_idle`).
    Manual(ManualDriver),
    /// Two pool workers run them; the bench thread waits.
    Pool(ThreadPool),
    /// `spawn_on_tokio` workers run them (the driver is dropped, and its workers stopped,
    /// before the runtime).
    Tokio { driver: FutureDriver, rt: Runtime },
}

impl Host {
    fn new(on_tokio: bool, threads: Threads) -> Self {
        match (on_tokio, threads) {
            (false, Threads::One) => Host::Manual(ManualDriver::new(1)),
            (false, Threads::Two) => Host::Pool(ThreadPool::new(2)),
            (true, threads) => {
                let rt = tokio_runtime(threads);
                let driver = spawn_on_tokio(rt.handle(), threads.count());
                Host::Tokio { driver, rt }
            }
        }
    }

    fn system(&self) -> &System {
        match self {
            Host::Manual(d) => d.system(),
            Host::Pool(p) => p.system(),
            Host::Tokio { driver, .. } => driver.system(),
        }
    }

    fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, String> {
        self.system()
            .spawn(actor)
            .map_err(|e| format!("spawn: {e}"))
    }

    /// Runs (or waits for) the actors until a value arrives on `rx`.
    fn recv<T>(&self, rx: &mut UnboundedReceiver<T>) -> Result<T, String> {
        self.recv_n(rx, 1).map(|mut v| v.remove(0))
    }

    /// Runs (or waits for) the actors until `n` values arrived on `rx`.
    fn recv_n<T>(&self, rx: &mut UnboundedReceiver<T>, n: usize) -> Result<Vec<T>, String> {
        match self {
            Host::Manual(d) => {
                d.run_until_idle();
                let got: Vec<T> = std::iter::from_fn(|| rx.try_recv().ok()).take(n).collect();
                if got.len() == n {
                    Ok(got)
                } else {
                    Err("the actors went idle before finishing: a message was lost".into())
                }
            }
            Host::Pool(_) => {
                if n == 1 {
                    block_recv(rx).map(|v| vec![v])
                } else {
                    block_recv_n(rx, n)
                }
            }
            Host::Tokio { rt, .. } => rt.block_on(async {
                if n == 1 {
                    recv(rx).await.map(|v| vec![v])
                } else {
                    recv_n(rx, n).await
                }
            }),
        }
    }

    /// Runs (or waits for) the actors until `done()` holds.
    fn drive_until(&self, done: impl Fn() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        match self {
            Host::Manual(d) => {
                d.run_until_idle();
                if done() {
                    Ok(())
                } else {
                    Err("the actors went idle before finishing".into())
                }
            }
            Host::Pool(_) => {
                while !done() {
                    if Instant::now() > deadline {
                        return Err("timed out".into());
                    }
                    thread::sleep(Duration::from_micros(100));
                }
                Ok(())
            }
            Host::Tokio { rt, .. } => rt.block_on(async {
                while !done() {
                    if Instant::now() > deadline {
                        return Err("timed out".to_string());
                    }
                    tokio::task::yield_now().await;
                }
                Ok(())
            }),
        }
    }
}

/// `tell` from a thread outside the actors, retrying while the thread's arena pool is full
/// (the receiver is behind). `false` (and a fault) if the actor is gone or never catches up.
fn tell_retrying<A: Handler<M>, M: Send + 'static>(to: &ActorRef<A>, mut msg: M) -> bool {
    let mut since: Option<Instant> = None;
    loop {
        match to.tell(msg) {
            Ok(()) => return true,
            Err(SendError::Full(m)) => {
                msg = m;
                let since = *since.get_or_insert_with(Instant::now);
                if since.elapsed() > WAIT {
                    fault("airssys: the arena pool stayed full");
                    return false;
                }
                thread::yield_now();
            }
            Err(SendError::Dead(_)) => {
                fault("airssys: a message was sent to a stopped actor");
                return false;
            }
        }
    }
}

/// `tell` from inside an actor; a failure is a fault of the run.
fn send<A: Handler<M>, M: Send + 'static>(to: &ActorRef<A>, msg: M, what: &str) {
    if to.tell(msg).is_err() {
        fault(format!("airssys: {what} could not be sent"));
    }
}

// ---------------------------------------------------------------------------------------------
// Ring (and ping-pong, a ring of two)
// ---------------------------------------------------------------------------------------------

struct Node {
    next: Option<ActorRef<Node>>,
    expect: Option<u64>,
    len: u64,
    done: UnboundedSender<()>,
}

impl Actor for Node {}

struct Next(ActorRef<Node>);

impl Handler<Next> for Node {
    type Reply = ();
    fn handle(&mut self, Next(next): Next, _ctx: &mut Ctx<Self>) {
        self.next = Some(next);
    }
}

/// The token, with the hops still to go after this one.
struct Token(u64);

impl Handler<Token> for Node {
    type Reply = ();
    fn handle(&mut self, Token(left): Token, _ctx: &mut Ctx<Self>) {
        ring_check(&mut self.expect, self.len, left);
        if left == 0 {
            let _ = self.done.send(());
        } else if let Some(next) = &self.next {
            send(next, Token(left - 1), "a token");
        } else {
            fault("ring: a token before the link");
        }
    }
}

fn ring_on(host: &Host, b: &mut Bench, len: usize, hops: u64) {
    b.run(|| {
        let (tx, mut rx) = unbounded_channel();
        let nodes = (0..len)
            .map(|_| {
                host.spawn(Node {
                    next: None,
                    expect: None,
                    len: len as u64,
                    done: tx.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, node) in nodes.iter().enumerate() {
            send(node, Next(nodes[(i + 1) % len].clone()), "a link");
        }
        let start = Instant::now();
        send(&nodes[0], Token(hops - 1), "the first token");
        let result = host.recv(&mut rx).map(|()| start.elapsed());
        for node in &nodes {
            node.stop();
        }
        result
    });
}

// ---------------------------------------------------------------------------------------------
// Fan-in
// ---------------------------------------------------------------------------------------------

struct Sink {
    next: Vec<u64>,
    count: u64,
    sum: u64,
    total: u64,
    done: UnboundedSender<(u64, u64)>,
}

impl Actor for Sink {}

impl Handler<(u32, u64)> for Sink {
    type Reply = ();
    fn handle(&mut self, (producer, seq): (u32, u64), ctx: &mut Ctx<Self>) {
        if let Err(e) = fan_in_check(&mut self.next, producer, seq) {
            fault(e);
        }
        self.count += 1;
        self.sum += seq;
        if self.count == self.total {
            let _ = self.done.send((self.count, self.sum));
            ctx.stop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Spawn
// ---------------------------------------------------------------------------------------------

struct OneShot {
    handled: bool,
    latch: Arc<Latch>,
}

impl Actor for OneShot {
    fn stopped(&mut self, _reason: &ExitReason) {
        if !self.handled {
            fault("spawn: an actor stopped before handling its message");
        }
        self.latch.count_down();
    }
}

impl Handler<u64> for OneShot {
    type Reply = ();
    fn handle(&mut self, _: u64, ctx: &mut Ctx<Self>) {
        self.handled = true;
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Idle actors
// ---------------------------------------------------------------------------------------------

static IDLE_STARTED: AtomicUsize = AtomicUsize::new(0);
static IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);

/// No state at all: what it costs is the runtime's alone.
struct Idle;

impl Actor for Idle {
    fn started(&mut self, _ctx: &mut Ctx<Self>) {
        IDLE_STARTED.fetch_add(1, Ordering::Relaxed);
    }
}

impl Handler<u8> for Idle {
    type Reply = ();
    fn handle(&mut self, _: u8, _ctx: &mut Ctx<Self>) {
        IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

struct Counter(u64);

impl Actor for Counter {}

struct Inc;
struct Get;

impl Handler<Inc> for Counter {
    type Reply = ();
    fn handle(&mut self, _: Inc, _ctx: &mut Ctx<Self>) {
        self.0 += 1;
    }
}

impl Handler<Get> for Counter {
    type Reply = u64;
    fn handle(&mut self, _: Get, _ctx: &mut Ctx<Self>) -> u64 {
        self.0
    }
}

struct Producer {
    counter: ActorRef<Counter>,
    done: UnboundedSender<u64>,
}

impl Actor for Producer {}

/// Send this many increments, then ask for the value.
struct Produce(u64);

impl AsyncHandler<Produce> for Producer {
    type Reply = ();
    async fn handle(&mut self, Produce(n): Produce, _me: ActorHandle<Self>) {
        for _ in 0..n {
            if self.counter.send(Inc).await.is_err() {
                fault("counting: an increment could not be sent");
                return;
            }
        }
        match self.counter.ask(Get).await {
            Ok(v) => {
                let _ = self.done.send(v);
            }
            Err(e) => fault(format!("counting: the ask failed: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fork-join
// ---------------------------------------------------------------------------------------------

struct FjActor {
    next: u64,
    acc: u64,
    per_actor: u64,
    done: UnboundedSender<u64>,
}

impl Actor for FjActor {}

impl Handler<u64> for FjActor {
    type Reply = ();
    fn handle(&mut self, seq: u64, ctx: &mut Ctx<Self>) {
        self.acc = fj_step(&mut self.next, self.acc, seq);
        if self.next == self.per_actor {
            let _ = self.done.send(self.acc);
            ctx.stop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Big
// ---------------------------------------------------------------------------------------------

struct BigActor {
    state: BigState,
    peers: Option<Arc<Vec<ActorRef<BigActor>>>>,
    done: UnboundedSender<u64>,
}

impl Actor for BigActor {}

struct Peers(Arc<Vec<ActorRef<BigActor>>>);
struct Go;
struct Ping(u32);
struct Pong;

impl BigActor {
    fn act(&mut self, next: BigNext) {
        match next {
            BigNext::Ping(to) => match &self.peers {
                Some(peers) => send(&peers[to], Ping(self.state.me as u32), "a ping"),
                None => fault("big: a ping before the peers"),
            },
            BigNext::Done => {
                let _ = self.done.send(self.state.pongs);
            }
        }
    }
}

impl Handler<Peers> for BigActor {
    type Reply = ();
    fn handle(&mut self, Peers(peers): Peers, _ctx: &mut Ctx<Self>) {
        self.peers = Some(peers);
    }
}

impl Handler<Go> for BigActor {
    type Reply = ();
    fn handle(&mut self, _: Go, _ctx: &mut Ctx<Self>) {
        let next = self.state.start();
        self.act(next);
    }
}

impl Handler<Ping> for BigActor {
    type Reply = ();
    fn handle(&mut self, Ping(from): Ping, _ctx: &mut Ctx<Self>) {
        match &self.peers {
            Some(peers) => send(&peers[from as usize], Pong, "a pong"),
            None => fault("big: a ping before the peers"),
        }
    }
}

impl Handler<Pong> for BigActor {
    type Reply = ();
    fn handle(&mut self, _: Pong, _ctx: &mut Ctx<Self>) {
        let next = self.state.pong();
        self.act(next);
    }
}

// ---------------------------------------------------------------------------------------------
// Chameneos
// ---------------------------------------------------------------------------------------------

struct Mall {
    state: MallState<ActorRef<Chameneo>>,
    done: UnboundedSender<(usize, u64)>,
}

impl Actor for Mall {}

struct Meet(Color, ActorRef<Chameneo>);
struct Report(u64);

impl Handler<Meet> for Mall {
    type Reply = ();
    fn handle(&mut self, Meet(color, who): Meet, _ctx: &mut Ctx<Self>) {
        match self.state.arrive(color, who) {
            MallNext::Wait => {}
            MallNext::Meet(first, color, second) => {
                send(&first, MeetWith(color, second), "a meeting");
            }
            MallNext::Exit(who) => send(&who, Exit, "an exit"),
        }
    }
}

impl Handler<Report> for Mall {
    type Reply = ();
    fn handle(&mut self, Report(meetings): Report, _ctx: &mut Ctx<Self>) {
        if let Some(result) = self.state.report(meetings) {
            let _ = self.done.send(result);
        }
    }
}

struct Chameneo {
    color: Color,
    meetings: u64,
    mall: ActorRef<Mall>,
}

impl Actor for Chameneo {}

struct Start;
struct MeetWith(Color, ActorRef<Chameneo>);
struct Change(Color);
struct Exit;

impl Chameneo {
    fn to_mall(&self, ctx: &mut Ctx<Self>) {
        send(
            &self.mall,
            Meet(self.color, ctx.myself()),
            "a visit to the mall",
        );
    }
}

impl Handler<Start> for Chameneo {
    type Reply = ();
    fn handle(&mut self, _: Start, ctx: &mut Ctx<Self>) {
        self.to_mall(ctx);
    }
}

impl Handler<MeetWith> for Chameneo {
    type Reply = ();
    fn handle(&mut self, MeetWith(other_color, other): MeetWith, ctx: &mut Ctx<Self>) {
        self.color = self.color.complement(other_color);
        self.meetings += 1;
        send(&other, Change(self.color), "a colour change");
        self.to_mall(ctx);
    }
}

impl Handler<Change> for Chameneo {
    type Reply = ();
    fn handle(&mut self, Change(color): Change, ctx: &mut Ctx<Self>) {
        self.color = color;
        self.meetings += 1;
        self.to_mall(ctx);
    }
}

impl Handler<Exit> for Chameneo {
    type Reply = ();
    fn handle(&mut self, _: Exit, ctx: &mut Ctx<Self>) {
        send(&self.mall, Report(self.meetings), "a report");
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// The workloads
// ---------------------------------------------------------------------------------------------

impl Contender for Airssys {
    fn name(&self) -> &'static str {
        if self.on_tokio {
            "airssys-rt on tokio"
        } else {
            "airssys-rt"
        }
    }

    fn kind(&self) -> Kind {
        Kind::Airssys
    }

    fn host(&self) -> &'static str {
        if self.on_tokio {
            "`spawn_on_tokio` workers: 1 on a `current_thread` runtime, 2 on a 2-worker \
             `multi_thread` runtime"
        } else {
            "`ManualDriver` run by the bench thread (one thread), `ThreadPool::new(2)` (2 workers)"
        }
    }

    fn ping_pong(&self, b: &mut Bench, threads: Threads, round_trips: u64) {
        ring_on(&Host::new(self.on_tokio, threads), b, 2, 2 * round_trips);
    }

    fn ring(&self, b: &mut Bench, len: usize, hops: u64) {
        ring_on(&Host::new(self.on_tokio, Threads::Two), b, len, hops);
    }

    fn fan_in(&self, b: &mut Bench, producers: usize, per_producer: u64) {
        let host = Host::new(self.on_tokio, Threads::Two);
        let threads = Producers::new(producers);
        b.run(|| {
            let (tx, mut rx) = unbounded_channel();
            let sink = host.spawn(Sink {
                next: vec![0; producers],
                count: 0,
                sum: 0,
                total: producers as u64 * per_producer,
                done: tx,
            })?;
            let go = threads.prepare(|i| {
                let sink = sink.clone();
                Box::new(move || {
                    for seq in 0..per_producer {
                        if !tell_retrying(&sink, (i as u32, seq)) {
                            return;
                        }
                    }
                })
            });
            go.wait();
            let start = Instant::now();
            let got = host.recv(&mut rx)?;
            let elapsed = start.elapsed();
            expect_eq(
                "fan-in (count, sum)",
                got,
                fan_in_expected(producers, per_producer),
            )?;
            Ok(elapsed)
        });
    }

    fn spawn(&self, b: &mut Bench, actors: u64) {
        let host = Host::new(self.on_tokio, Threads::Two);
        b.run(|| {
            let (latch, mut rx) = Latch::new(actors);
            let mut refs = Vec::with_capacity(actors as usize);
            let start = Instant::now();
            for _ in 0..actors {
                let actor = host.spawn(OneShot {
                    handled: false,
                    latch: latch.clone(),
                })?;
                if !tell_retrying(&actor, 1) {
                    break;
                }
                refs.push(actor);
            }
            host.recv(&mut rx)?;
            let elapsed = start.elapsed();
            drop(refs);
            Ok(elapsed)
        });
    }

    fn counting(&self, b: &mut Bench, increments: u64) {
        let host = Host::new(self.on_tokio, Threads::Two);
        b.run(|| {
            let (tx, mut rx) = unbounded_channel();
            let counter = host.spawn(Counter(0))?;
            let producer = host.spawn(Producer {
                counter: counter.clone(),
                done: tx,
            })?;
            let start = Instant::now();
            if producer.tell_async(Produce(increments)).is_err() {
                return Err("counting: the start message could not be sent".into());
            }
            let got = host.recv(&mut rx)?;
            let elapsed = start.elapsed();
            producer.stop();
            counter.stop();
            expect_eq("counting: the counter's value", got, increments)?;
            Ok(elapsed)
        });
    }

    fn fork_join(&self, b: &mut Bench, actors: usize, per_actor: u64) {
        let host = Host::new(self.on_tokio, Threads::Two);
        let expected = fj_expected(per_actor);
        b.run(|| {
            let (tx, mut rx) = unbounded_channel();
            let workers = (0..actors)
                .map(|_| {
                    host.spawn(FjActor {
                        next: 0,
                        acc: 0,
                        per_actor,
                        done: tx.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let start = Instant::now();
            'send: for seq in 0..per_actor {
                for w in &workers {
                    if !tell_retrying(w, seq) {
                        break 'send;
                    }
                }
            }
            let got = host.recv_n(&mut rx, actors)?;
            let elapsed = start.elapsed();
            expect_eq("fork-join: accumulators", got, vec![expected; actors])?;
            Ok(elapsed)
        });
    }

    fn big(&self, b: &mut Bench, actors: usize, pings: u64) {
        let host = Host::new(self.on_tokio, Threads::Two);
        b.run(|| {
            let (tx, mut rx) = unbounded_channel();
            let refs = (0..actors)
                .map(|me| {
                    host.spawn(BigActor {
                        state: BigState::new(me, actors, pings),
                        peers: None,
                        done: tx.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let peers = Arc::new(refs.clone());
            for r in &refs {
                send(r, Peers(peers.clone()), "the peers");
            }
            drop(peers);
            let start = Instant::now();
            for r in &refs {
                send(r, Go, "the start");
            }
            let got = host.recv_n(&mut rx, actors);
            let elapsed = start.elapsed();
            for r in &refs {
                r.stop();
            }
            expect_eq("big: pongs per actor", got?, vec![pings; actors])?;
            Ok(elapsed)
        });
    }

    fn chameneos(&self, b: &mut Bench, chameneos: usize, meetings: u64) {
        let host = Host::new(self.on_tokio, Threads::Two);
        b.run(|| {
            let (tx, mut rx) = unbounded_channel();
            let mall = host.spawn(Mall {
                state: MallState::new(chameneos, meetings),
                done: tx,
            })?;
            let chams = (0..chameneos)
                .map(|i| {
                    host.spawn(Chameneo {
                        color: Color::of(i),
                        meetings: 0,
                        mall: mall.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let start = Instant::now();
            for c in &chams {
                send(c, Start, "the start");
            }
            let got = host.recv(&mut rx);
            let elapsed = start.elapsed();
            mall.stop();
            chameneos_check(got?, chameneos, meetings)?;
            Ok(elapsed)
        });
    }

    fn idle_memory(&self, actors: usize) -> Result<Memory, MemoryError> {
        let host = Host::new(self.on_tokio, Threads::One);
        let mut refs = Vec::with_capacity(actors);
        let (spawned, heap, rss) = alloc::measure(|| -> Result<(), String> {
            while refs.len() < actors {
                for _ in 0..IDLE_BATCH.min(actors - refs.len()) {
                    refs.push(host.spawn(Idle)?);
                }
                let n = refs.len();
                host.drive_until(|| IDLE_STARTED.load(Ordering::Relaxed) >= n)?;
            }
            Ok(())
        });
        spawned?;
        // Every actor is alive and answers (in batches: the arena pool is bounded).
        for (i, batch) in refs.chunks(IDLE_BATCH).enumerate() {
            for a in batch {
                a.tell(1u8)
                    .map_err(|_| "memory: an idle actor is gone".to_string())?;
            }
            let n = i * IDLE_BATCH + batch.len();
            host.drive_until(|| IDLE_HANDLED.load(Ordering::Relaxed) >= n)?;
        }
        Ok(per_actor(actors, heap, rss))
    }
}
