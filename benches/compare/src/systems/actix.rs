//! actix: actors as `actix::Actor` with a `Context`, one `Handler<M>` per message, `do_send`
//! for tell (it ignores the mailbox capacity, so it is actix's unbounded send), `send(..).await`
//! for ask.
//!
//! An actix actor lives on one arbiter (a thread with a single-threaded runtime) for life;
//! there is no work stealing. One thread: everything on the `System` arbiter, run by the
//! bench thread. Two workers: two `Arbiter`s; a workload's actors are split in two halves, the
//! first half on one arbiter and the second on the other (a ring crosses threads twice per
//! lap, ping-pong on every message); spawned one-shot actors alternate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::{per_actor, Contender, Kind, Memory, MemoryError, IDLE_BATCH};
use crate::alloc;
use crate::harness::{fault, recv, recv_n, until, Bench, Latch, Producers, Threads};
use crate::workload::{
    chameneos_check, expect_eq, fan_in_check, fan_in_expected, fj_expected, fj_step, ring_check,
    BigNext, BigState, Color, MallNext, MallState,
};

/// actix on its own arbiters.
pub struct Actix;

/// `impl Message` with `Result = ()` for each type.
macro_rules! messages {
    ($($t:ty),* $(,)?) => {
        $(impl actix::Message for $t {
            type Result = ();
        })*
    };
}

/// Stops the actor that receives it (untimed clean-up after a run).
struct Stop;

/// Where the actors of one cell live.
struct Host {
    system: SystemRunner,
    arbiters: Vec<Arbiter>,
}

impl Host {
    fn new(threads: Threads) -> Self {
        let system = System::new();
        let arbiters = match threads {
            Threads::One => Vec::new(),
            Threads::Two => (0..2).map(|_| Arbiter::new()).collect(),
        };
        Self { system, arbiters }
    }

    /// Runs one run's body on the system arbiter (the bench thread).
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.system.block_on(f)
    }

    /// Starts actor `i` of `n`: on the system arbiter (one thread) or on the arbiter of its
    /// half. Call from inside [`block_on`](Self::block_on).
    fn start<A>(&self, i: usize, n: usize, make: impl FnOnce() -> A + Send + 'static) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        if self.arbiters.is_empty() {
            A::create(|_| make())
        } else {
            let arbiter = (i * self.arbiters.len() / n.max(1)).min(self.arbiters.len() - 1);
            A::start_in_arbiter(&self.arbiters[arbiter].handle(), |_| make())
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for a in self.arbiters.drain(..) {
            a.stop();
            let _ = a.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ring
// ---------------------------------------------------------------------------------------------

struct Node {
    next: Option<Addr<Node>>,
    expect: Option<u64>,
    len: u64,
    done: UnboundedSender<()>,
}

impl Actor for Node {
    type Context = Context<Self>;
}

struct Next(Addr<Node>);
struct Token(u64);
messages!(Next, Token, Stop);

impl Handler<Next> for Node {
    type Result = ();
    fn handle(&mut self, Next(next): Next, _ctx: &mut Context<Self>) {
        self.next = Some(next);
    }
}

impl Handler<Token> for Node {
    type Result = ();
    fn handle(&mut self, Token(left): Token, _ctx: &mut Context<Self>) {
        ring_check(&mut self.expect, self.len, left);
        if left == 0 {
            let _ = self.done.send(());
        } else if let Some(next) = &self.next {
            next.do_send(Token(left - 1));
        } else {
            fault("ring: a token before the link");
        }
    }
}

impl Handler<Stop> for Node {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

fn ring_on(host: &Host, b: &mut Bench, len: usize, hops: u64) {
    b.run(|| {
        host.block_on(async {
            let (tx, mut rx) = unbounded_channel();
            let nodes: Vec<Addr<Node>> = (0..len)
                .map(|i| {
                    let done = tx.clone();
                    host.start(i, len, move || Node {
                        next: None,
                        expect: None,
                        len: len as u64,
                        done,
                    })
                })
                .collect();
            for (i, node) in nodes.iter().enumerate() {
                node.do_send(Next(nodes[(i + 1) % len].clone()));
            }
            let start = Instant::now();
            nodes[0].do_send(Token(hops - 1));
            let result = recv(&mut rx).await.map(|()| start.elapsed());
            for node in &nodes {
                node.do_send(Stop);
            }
            result
        })
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

impl Actor for Sink {
    type Context = Context<Self>;
}

struct Seq(u32, u64);
messages!(Seq);

impl Handler<Seq> for Sink {
    type Result = ();
    fn handle(&mut self, Seq(producer, seq): Seq, ctx: &mut Context<Self>) {
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
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if !self.handled {
            fault("spawn: an actor stopped before handling its message");
        }
        self.latch.count_down();
    }
}

struct One;
messages!(One);

impl Handler<One> for OneShot {
    type Result = ();
    fn handle(&mut self, _: One, ctx: &mut Context<Self>) {
        self.handled = true;
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Idle actors
// ---------------------------------------------------------------------------------------------

static IDLE_STARTED: AtomicUsize = AtomicUsize::new(0);
static IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);

struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        IDLE_STARTED.fetch_add(1, Ordering::Relaxed);
    }
}

struct Poke;
messages!(Poke);

impl Handler<Poke> for Idle {
    type Result = ();
    fn handle(&mut self, _: Poke, _ctx: &mut Context<Self>) {
        IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

struct Counter(u64);

impl Actor for Counter {
    type Context = Context<Self>;
}

struct Inc;
struct Get;
messages!(Inc);

impl actix::Message for Get {
    type Result = u64;
}

impl Handler<Inc> for Counter {
    type Result = ();
    fn handle(&mut self, _: Inc, _ctx: &mut Context<Self>) {
        self.0 += 1;
    }
}

impl Handler<Get> for Counter {
    type Result = MessageResult<Get>;
    fn handle(&mut self, _: Get, _ctx: &mut Context<Self>) -> MessageResult<Get> {
        MessageResult(self.0)
    }
}

impl Handler<Stop> for Counter {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

struct Producer {
    counter: Addr<Counter>,
    done: UnboundedSender<u64>,
}

impl Actor for Producer {
    type Context = Context<Self>;
}

/// Send this many increments, then ask for the value.
struct Produce(u64);
messages!(Produce);

impl Handler<Produce> for Producer {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, Produce(n): Produce, _ctx: &mut Context<Self>) -> ResponseFuture<()> {
        for _ in 0..n {
            self.counter.do_send(Inc);
        }
        let (counter, done) = (self.counter.clone(), self.done.clone());
        Box::pin(async move {
            match counter.send(Get).await {
                Ok(v) => {
                    let _ = done.send(v);
                }
                Err(e) => fault(format!("counting: the ask failed: {e}")),
            }
        })
    }
}

impl Handler<Stop> for Producer {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
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

impl Actor for FjActor {
    type Context = Context<Self>;
}

struct FjMsg(u64);
messages!(FjMsg);

impl Handler<FjMsg> for FjActor {
    type Result = ();
    fn handle(&mut self, FjMsg(seq): FjMsg, ctx: &mut Context<Self>) {
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
    peers: Option<Arc<Vec<Addr<BigActor>>>>,
    done: UnboundedSender<u64>,
}

impl Actor for BigActor {
    type Context = Context<Self>;
}

struct Peers(Arc<Vec<Addr<BigActor>>>);
struct Go;
struct Ping(u32);
struct Pong;
messages!(Peers, Go, Ping, Pong);

impl BigActor {
    fn act(&mut self, next: BigNext) {
        match next {
            BigNext::Ping(to) => match &self.peers {
                Some(peers) => peers[to].do_send(Ping(self.state.me as u32)),
                None => fault("big: a ping before the peers"),
            },
            BigNext::Done => {
                let _ = self.done.send(self.state.pongs);
            }
        }
    }
}

impl Handler<Peers> for BigActor {
    type Result = ();
    fn handle(&mut self, Peers(peers): Peers, _ctx: &mut Context<Self>) {
        self.peers = Some(peers);
    }
}

impl Handler<Go> for BigActor {
    type Result = ();
    fn handle(&mut self, _: Go, _ctx: &mut Context<Self>) {
        let next = self.state.start();
        self.act(next);
    }
}

impl Handler<Ping> for BigActor {
    type Result = ();
    fn handle(&mut self, Ping(from): Ping, _ctx: &mut Context<Self>) {
        match &self.peers {
            Some(peers) => peers[from as usize].do_send(Pong),
            None => fault("big: a ping before the peers"),
        }
    }
}

impl Handler<Pong> for BigActor {
    type Result = ();
    fn handle(&mut self, _: Pong, _ctx: &mut Context<Self>) {
        let next = self.state.pong();
        self.act(next);
    }
}

impl Handler<Stop> for BigActor {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Chameneos
// ---------------------------------------------------------------------------------------------

struct Mall {
    state: MallState<Addr<Chameneo>>,
    done: UnboundedSender<(usize, u64)>,
}

impl Actor for Mall {
    type Context = Context<Self>;
}

struct Meet(Color, Addr<Chameneo>);
struct Report(u64);
messages!(Meet, Report);

impl Handler<Meet> for Mall {
    type Result = ();
    fn handle(&mut self, Meet(color, who): Meet, _ctx: &mut Context<Self>) {
        match self.state.arrive(color, who) {
            MallNext::Wait => {}
            MallNext::Meet(first, color, second) => first.do_send(MeetWith(color, second)),
            MallNext::Exit(who) => who.do_send(Exit),
        }
    }
}

impl Handler<Report> for Mall {
    type Result = ();
    fn handle(&mut self, Report(meetings): Report, _ctx: &mut Context<Self>) {
        if let Some(result) = self.state.report(meetings) {
            let _ = self.done.send(result);
        }
    }
}

impl Handler<Stop> for Mall {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

struct Chameneo {
    color: Color,
    meetings: u64,
    mall: Addr<Mall>,
}

impl Actor for Chameneo {
    type Context = Context<Self>;
}

struct Start;
struct MeetWith(Color, Addr<Chameneo>);
struct Change(Color);
struct Exit;
messages!(Start, MeetWith, Change, Exit);

impl Chameneo {
    fn to_mall(&self, ctx: &mut Context<Self>) {
        self.mall.do_send(Meet(self.color, ctx.address()));
    }
}

impl Handler<Start> for Chameneo {
    type Result = ();
    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) {
        self.to_mall(ctx);
    }
}

impl Handler<MeetWith> for Chameneo {
    type Result = ();
    fn handle(&mut self, MeetWith(other_color, other): MeetWith, ctx: &mut Context<Self>) {
        self.color = self.color.complement(other_color);
        self.meetings += 1;
        other.do_send(Change(self.color));
        self.to_mall(ctx);
    }
}

impl Handler<Change> for Chameneo {
    type Result = ();
    fn handle(&mut self, Change(color): Change, ctx: &mut Context<Self>) {
        self.color = color;
        self.meetings += 1;
        self.to_mall(ctx);
    }
}

impl Handler<Exit> for Chameneo {
    type Result = ();
    fn handle(&mut self, _: Exit, ctx: &mut Context<Self>) {
        self.mall.do_send(Report(self.meetings));
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// The workloads
// ---------------------------------------------------------------------------------------------

impl Contender for Actix {
    fn name(&self) -> &'static str {
        "actix"
    }

    fn kind(&self) -> Kind {
        Kind::Peer
    }

    fn host(&self) -> &'static str {
        "the `System` arbiter on the bench thread (one thread), two `Arbiter`s (2 workers; \
         actors split in halves between them, no work stealing)"
    }

    fn ping_pong(&self, b: &mut Bench, threads: Threads, round_trips: u64) {
        ring_on(&Host::new(threads), b, 2, 2 * round_trips);
    }

    fn ring(&self, b: &mut Bench, len: usize, hops: u64) {
        ring_on(&Host::new(Threads::Two), b, len, hops);
    }

    fn fan_in(&self, b: &mut Bench, producers: usize, per_producer: u64) {
        let host = Host::new(Threads::Two);
        let threads = Producers::new(producers);
        b.run(|| {
            host.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let sink = host.start(0, 1, move || Sink {
                    next: vec![0; producers],
                    count: 0,
                    sum: 0,
                    total: producers as u64 * per_producer,
                    done: tx,
                });
                let go = threads.prepare(|i| {
                    let sink = sink.clone();
                    Box::new(move || {
                        for seq in 0..per_producer {
                            sink.do_send(Seq(i as u32, seq));
                        }
                    })
                });
                go.wait();
                let start = Instant::now();
                let got = recv(&mut rx).await?;
                let elapsed = start.elapsed();
                expect_eq(
                    "fan-in (count, sum)",
                    got,
                    fan_in_expected(producers, per_producer),
                )?;
                Ok(elapsed)
            })
        });
    }

    fn spawn(&self, b: &mut Bench, actors: u64) {
        let host = Host::new(Threads::Two);
        b.run(|| {
            host.block_on(async {
                let (latch, mut rx) = Latch::new(actors);
                let mut refs = Vec::with_capacity(actors as usize);
                let start = Instant::now();
                for i in 0..actors as usize {
                    let latch = latch.clone();
                    // Alternate between the two arbiters.
                    let actor = host.start(i % 2, 2, move || OneShot {
                        handled: false,
                        latch,
                    });
                    actor.do_send(One);
                    refs.push(actor);
                }
                recv(&mut rx).await?;
                let elapsed = start.elapsed();
                drop(refs);
                Ok(elapsed)
            })
        });
    }

    fn counting(&self, b: &mut Bench, increments: u64) {
        let host = Host::new(Threads::Two);
        b.run(|| {
            host.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let counter = host.start(1, 2, || Counter(0));
                let c = counter.clone();
                let producer = host.start(0, 2, move || Producer {
                    counter: c,
                    done: tx,
                });
                let start = Instant::now();
                producer.do_send(Produce(increments));
                let got = recv(&mut rx).await?;
                let elapsed = start.elapsed();
                producer.do_send(Stop);
                counter.do_send(Stop);
                expect_eq("counting: the counter's value", got, increments)?;
                Ok(elapsed)
            })
        });
    }

    fn fork_join(&self, b: &mut Bench, actors: usize, per_actor: u64) {
        let host = Host::new(Threads::Two);
        let expected = fj_expected(per_actor);
        b.run(|| {
            host.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let workers: Vec<Addr<FjActor>> = (0..actors)
                    .map(|i| {
                        let done = tx.clone();
                        host.start(i, actors, move || FjActor {
                            next: 0,
                            acc: 0,
                            per_actor,
                            done,
                        })
                    })
                    .collect();
                let start = Instant::now();
                for seq in 0..per_actor {
                    for w in &workers {
                        w.do_send(FjMsg(seq));
                    }
                }
                let got = recv_n(&mut rx, actors).await?;
                let elapsed = start.elapsed();
                expect_eq("fork-join: accumulators", got, vec![expected; actors])?;
                Ok(elapsed)
            })
        });
    }

    fn big(&self, b: &mut Bench, actors: usize, pings: u64) {
        let host = Host::new(Threads::Two);
        b.run(|| {
            host.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let refs: Vec<Addr<BigActor>> = (0..actors)
                    .map(|me| {
                        let done = tx.clone();
                        host.start(me, actors, move || BigActor {
                            state: BigState::new(me, actors, pings),
                            peers: None,
                            done,
                        })
                    })
                    .collect();
                let peers = Arc::new(refs.clone());
                for r in &refs {
                    r.do_send(Peers(peers.clone()));
                }
                drop(peers);
                let start = Instant::now();
                for r in &refs {
                    r.do_send(Go);
                }
                let got = recv_n(&mut rx, actors).await;
                let elapsed = start.elapsed();
                for r in &refs {
                    r.do_send(Stop);
                }
                expect_eq("big: pongs per actor", got?, vec![pings; actors])?;
                Ok(elapsed)
            })
        });
    }

    fn chameneos(&self, b: &mut Bench, chameneos: usize, meetings: u64) {
        let host = Host::new(Threads::Two);
        b.run(|| {
            host.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let mall = host.start(0, 2, move || Mall {
                    state: MallState::new(chameneos, meetings),
                    done: tx,
                });
                let chams: Vec<Addr<Chameneo>> = (0..chameneos)
                    .map(|i| {
                        let mall = mall.clone();
                        host.start(i, chameneos, move || Chameneo {
                            color: Color::of(i),
                            meetings: 0,
                            mall,
                        })
                    })
                    .collect();
                let start = Instant::now();
                for c in &chams {
                    c.do_send(Start);
                }
                let got = recv(&mut rx).await;
                let elapsed = start.elapsed();
                mall.do_send(Stop);
                chameneos_check(got?, chameneos, meetings)?;
                Ok(elapsed)
            })
        });
    }

    fn idle_memory(&self, actors: usize) -> Result<Memory, MemoryError> {
        let host = Host::new(Threads::One);
        let mut refs = Vec::with_capacity(actors);
        let (spawned, heap, rss) = alloc::measure(|| {
            host.block_on(async {
                while refs.len() < actors {
                    for _ in 0..IDLE_BATCH.min(actors - refs.len()) {
                        refs.push(Idle.start());
                    }
                    let n = refs.len();
                    until(|| IDLE_STARTED.load(Ordering::Relaxed) >= n).await?;
                }
                Ok::<(), String>(())
            })
        });
        spawned?;
        host.block_on(async {
            for (i, batch) in refs.chunks(IDLE_BATCH).enumerate() {
                for r in batch {
                    r.do_send(Poke);
                }
                let n = i * IDLE_BATCH + batch.len();
                until(|| IDLE_HANDLED.load(Ordering::Relaxed) >= n).await?;
            }
            Ok::<(), String>(())
        })?;
        Ok(per_actor(actors, heap, rss))
    }
}
