//! xtra: actors as `xtra::Actor` with one async `Handler<M>` per message, spawned on tokio with
//! `xtra::spawn_tokio(actor, Mailbox::unbounded())`; tell is `send(..).detach().await` (it
//! completes once the message is queued), ask is `send(..).await`. Sending needs an async
//! context: producer threads enter the runtime with `Handle::block_on`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Runtime;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use xtra::prelude::*;

use super::{per_actor, Contender, Kind, Memory, MemoryError, IDLE_BATCH};
use crate::alloc;
use crate::harness::{fault, recv, recv_n, tokio_runtime, until, Bench, Latch, Producers, Threads};
use crate::workload::{
    chameneos_check, expect_eq, fan_in_check, fan_in_expected, fj_expected, fj_step, ring_check,
    BigNext, BigState, Color, MallNext, MallState,
};

/// xtra on tokio.
pub struct Xtra;

/// Spawns `actor` with an unbounded mailbox (inside a runtime).
fn spawn<A: Actor<Stop = ()>>(actor: A) -> Address<A> {
    xtra::spawn_tokio(actor, Mailbox::unbounded())
}

/// `send(..).detach().await`; a failure is a fault of the run.
async fn send<A: Handler<M>, M: Send + 'static>(to: &Address<A>, msg: M, what: &str) {
    if to.send(msg).detach().await.is_err() {
        fault(format!("xtra: {what} could not be sent"));
    }
}

/// Stops the actor that receives it (untimed clean-up after a run).
struct Stop;

/// `impl Actor` with no stop value, and a `Stop` handler, for each type.
macro_rules! plain_actors {
    ($($t:ty),* $(,)?) => {
        $(
            impl Actor for $t {
                type Stop = ();
                async fn stopped(self) {}
            }

            impl Handler<Stop> for $t {
                type Return = ();
                async fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
                    ctx.stop_self();
                }
            }
        )*
    };
}

plain_actors!(Node, Sink, Counter, Producer, FjActor, BigActor, Mall, Chameneo);

// ---------------------------------------------------------------------------------------------
// Ring
// ---------------------------------------------------------------------------------------------

struct Node {
    next: Option<Address<Node>>,
    expect: Option<u64>,
    len: u64,
    done: UnboundedSender<()>,
}

struct Next(Address<Node>);
struct Token(u64);

impl Handler<Next> for Node {
    type Return = ();
    async fn handle(&mut self, Next(next): Next, _ctx: &mut Context<Self>) {
        self.next = Some(next);
    }
}

impl Handler<Token> for Node {
    type Return = ();
    async fn handle(&mut self, Token(left): Token, _ctx: &mut Context<Self>) {
        ring_check(&mut self.expect, self.len, left);
        if left == 0 {
            let _ = self.done.send(());
        } else if let Some(next) = &self.next {
            send(next, Token(left - 1), "a token").await;
        } else {
            fault("ring: a token before the link");
        }
    }
}

fn ring_on(rt: &Runtime, b: &mut Bench, len: usize, hops: u64) {
    b.run(|| {
        rt.block_on(async {
            let (tx, mut rx) = unbounded_channel();
            let nodes: Vec<Address<Node>> = (0..len)
                .map(|_| {
                    spawn(Node {
                        next: None,
                        expect: None,
                        len: len as u64,
                        done: tx.clone(),
                    })
                })
                .collect();
            for (i, node) in nodes.iter().enumerate() {
                send(node, Next(nodes[(i + 1) % len].clone()), "a link").await;
            }
            let start = Instant::now();
            send(&nodes[0], Token(hops - 1), "the first token").await;
            let result = recv(&mut rx).await.map(|()| start.elapsed());
            for node in &nodes {
                send(node, Stop, "a stop").await;
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

impl Handler<(u32, u64)> for Sink {
    type Return = ();
    async fn handle(&mut self, (producer, seq): (u32, u64), ctx: &mut Context<Self>) {
        if let Err(e) = fan_in_check(&mut self.next, producer, seq) {
            fault(e);
        }
        self.count += 1;
        self.sum += seq;
        if self.count == self.total {
            let _ = self.done.send((self.count, self.sum));
            ctx.stop_self();
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
    type Stop = ();
    async fn stopped(self) {
        if !self.handled {
            fault("spawn: an actor stopped before handling its message");
        }
        self.latch.count_down();
    }
}

impl Handler<u64> for OneShot {
    type Return = ();
    async fn handle(&mut self, _: u64, ctx: &mut Context<Self>) {
        self.handled = true;
        ctx.stop_self();
    }
}

// ---------------------------------------------------------------------------------------------
// Idle actors
// ---------------------------------------------------------------------------------------------

static IDLE_STARTED: AtomicUsize = AtomicUsize::new(0);
static IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);

struct Idle;

impl Actor for Idle {
    type Stop = ();

    async fn started(&mut self, _mailbox: &Mailbox<Self>) -> Result<(), ()> {
        IDLE_STARTED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn stopped(self) {}
}

impl Handler<u8> for Idle {
    type Return = ();
    async fn handle(&mut self, _: u8, _ctx: &mut Context<Self>) {
        IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

struct Counter(u64);

struct Inc;
struct Get;

impl Handler<Inc> for Counter {
    type Return = ();
    async fn handle(&mut self, _: Inc, _ctx: &mut Context<Self>) {
        self.0 += 1;
    }
}

impl Handler<Get> for Counter {
    type Return = u64;
    async fn handle(&mut self, _: Get, _ctx: &mut Context<Self>) -> u64 {
        self.0
    }
}

struct Producer {
    counter: Address<Counter>,
    done: UnboundedSender<u64>,
}

/// Send this many increments, then ask for the value.
struct Produce(u64);

impl Handler<Produce> for Producer {
    type Return = ();
    async fn handle(&mut self, Produce(n): Produce, _ctx: &mut Context<Self>) {
        for _ in 0..n {
            send(&self.counter, Inc, "an increment").await;
        }
        match self.counter.send(Get).await {
            Ok(v) => {
                let _ = self.done.send(v);
            }
            Err(e) => fault(format!("counting: the ask failed: {e:?}")),
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

impl Handler<u64> for FjActor {
    type Return = ();
    async fn handle(&mut self, seq: u64, ctx: &mut Context<Self>) {
        self.acc = fj_step(&mut self.next, self.acc, seq);
        if self.next == self.per_actor {
            let _ = self.done.send(self.acc);
            ctx.stop_self();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Big
// ---------------------------------------------------------------------------------------------

struct BigActor {
    state: BigState,
    peers: Option<Arc<Vec<Address<BigActor>>>>,
    done: UnboundedSender<u64>,
}

struct Peers(Arc<Vec<Address<BigActor>>>);
struct Go;
struct Ping(u32);
struct Pong;

impl BigActor {
    async fn act(&mut self, next: BigNext) {
        match next {
            BigNext::Ping(to) => match &self.peers {
                Some(peers) => send(&peers[to], Ping(self.state.me as u32), "a ping").await,
                None => fault("big: a ping before the peers"),
            },
            BigNext::Done => {
                let _ = self.done.send(self.state.pongs);
            }
        }
    }
}

impl Handler<Peers> for BigActor {
    type Return = ();
    async fn handle(&mut self, Peers(peers): Peers, _ctx: &mut Context<Self>) {
        self.peers = Some(peers);
    }
}

impl Handler<Go> for BigActor {
    type Return = ();
    async fn handle(&mut self, _: Go, _ctx: &mut Context<Self>) {
        let next = self.state.start();
        self.act(next).await;
    }
}

impl Handler<Ping> for BigActor {
    type Return = ();
    async fn handle(&mut self, Ping(from): Ping, _ctx: &mut Context<Self>) {
        match &self.peers {
            Some(peers) => send(&peers[from as usize], Pong, "a pong").await,
            None => fault("big: a ping before the peers"),
        }
    }
}

impl Handler<Pong> for BigActor {
    type Return = ();
    async fn handle(&mut self, _: Pong, _ctx: &mut Context<Self>) {
        let next = self.state.pong();
        self.act(next).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Chameneos
// ---------------------------------------------------------------------------------------------

struct Mall {
    state: MallState<Address<Chameneo>>,
    done: UnboundedSender<(usize, u64)>,
}

struct Meet(Color, Address<Chameneo>);
struct Report(u64);

impl Handler<Meet> for Mall {
    type Return = ();
    async fn handle(&mut self, Meet(color, who): Meet, _ctx: &mut Context<Self>) {
        match self.state.arrive(color, who) {
            MallNext::Wait => {}
            MallNext::Meet(first, color, second) => {
                send(&first, MeetWith(color, second), "a meeting").await;
            }
            MallNext::Exit(who) => send(&who, Exit, "an exit").await,
        }
    }
}

impl Handler<Report> for Mall {
    type Return = ();
    async fn handle(&mut self, Report(meetings): Report, _ctx: &mut Context<Self>) {
        if let Some(result) = self.state.report(meetings) {
            let _ = self.done.send(result);
        }
    }
}

struct Chameneo {
    color: Color,
    meetings: u64,
    mall: Address<Mall>,
}

struct Start;
struct MeetWith(Color, Address<Chameneo>);
struct Change(Color);
struct Exit;

impl Chameneo {
    async fn to_mall(&self, ctx: &mut Context<Self>) {
        match ctx.mailbox().address().try_upgrade() {
            Some(me) => send(&self.mall, Meet(self.color, me), "a visit to the mall").await,
            None => fault("chameneos: a chameneo lost its own address"),
        }
    }
}

impl Handler<Start> for Chameneo {
    type Return = ();
    async fn handle(&mut self, _: Start, ctx: &mut Context<Self>) {
        self.to_mall(ctx).await;
    }
}

impl Handler<MeetWith> for Chameneo {
    type Return = ();
    async fn handle(&mut self, MeetWith(other_color, other): MeetWith, ctx: &mut Context<Self>) {
        self.color = self.color.complement(other_color);
        self.meetings += 1;
        send(&other, Change(self.color), "a colour change").await;
        self.to_mall(ctx).await;
    }
}

impl Handler<Change> for Chameneo {
    type Return = ();
    async fn handle(&mut self, Change(color): Change, ctx: &mut Context<Self>) {
        self.color = color;
        self.meetings += 1;
        self.to_mall(ctx).await;
    }
}

impl Handler<Exit> for Chameneo {
    type Return = ();
    async fn handle(&mut self, _: Exit, ctx: &mut Context<Self>) {
        send(&self.mall, Report(self.meetings), "a report").await;
        ctx.stop_self();
    }
}

// ---------------------------------------------------------------------------------------------
// The workloads
// ---------------------------------------------------------------------------------------------

impl Contender for Xtra {
    fn name(&self) -> &'static str {
        "xtra"
    }

    fn kind(&self) -> Kind {
        Kind::Peer
    }

    fn host(&self) -> &'static str {
        "tokio `current_thread` (one thread), 2-worker `multi_thread` (2 workers)"
    }

    fn remark(&self) -> Option<&'static str> {
        Some(
            "xtra 0.6.0 keeps an actor's queued messages in a `BinaryHeap` ordered by priority \
             only (`unicast_queue` in its `src/chan.rs`): equal-priority messages from one sender \
             come out in heap order, not in the order sent. Its FAILED cells are that: the \
             workloads that queue several messages per actor see them out of order.",
        )
    }

    fn ping_pong(&self, b: &mut Bench, threads: Threads, round_trips: u64) {
        ring_on(&tokio_runtime(threads), b, 2, 2 * round_trips);
    }

    fn ring(&self, b: &mut Bench, len: usize, hops: u64) {
        ring_on(&tokio_runtime(Threads::Two), b, len, hops);
    }

    fn fan_in(&self, b: &mut Bench, producers: usize, per_producer: u64) {
        let rt = tokio_runtime(Threads::Two);
        let threads = Producers::new(producers);
        b.run(|| {
            let (tx, mut rx) = unbounded_channel();
            let sink = {
                let _rt = rt.enter();
                spawn(Sink {
                    next: vec![0; producers],
                    count: 0,
                    sum: 0,
                    total: producers as u64 * per_producer,
                    done: tx,
                })
            };
            let go = threads.prepare(|i| {
                let sink = sink.clone();
                let handle = rt.handle().clone();
                Box::new(move || {
                    handle.block_on(async {
                        for seq in 0..per_producer {
                            send(&sink, (i as u32, seq), "a fan-in message").await;
                        }
                    });
                })
            });
            go.wait();
            let start = Instant::now();
            let got = rt.block_on(recv(&mut rx))?;
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
        let rt = tokio_runtime(Threads::Two);
        b.run(|| {
            rt.block_on(async {
                let (latch, mut rx) = Latch::new(actors);
                let mut refs = Vec::with_capacity(actors as usize);
                let start = Instant::now();
                for _ in 0..actors {
                    let actor = spawn(OneShot {
                        handled: false,
                        latch: latch.clone(),
                    });
                    send(&actor, 1u64, "the message").await;
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
        let rt = tokio_runtime(Threads::Two);
        b.run(|| {
            rt.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let counter = spawn(Counter(0));
                let producer = spawn(Producer {
                    counter: counter.clone(),
                    done: tx,
                });
                let start = Instant::now();
                send(&producer, Produce(increments), "the start").await;
                let got = recv(&mut rx).await?;
                let elapsed = start.elapsed();
                send(&producer, Stop, "a stop").await;
                send(&counter, Stop, "a stop").await;
                expect_eq("counting: the counter's value", got, increments)?;
                Ok(elapsed)
            })
        });
    }

    fn fork_join(&self, b: &mut Bench, actors: usize, per_actor: u64) {
        let rt = tokio_runtime(Threads::Two);
        let expected = fj_expected(per_actor);
        b.run(|| {
            rt.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let workers: Vec<Address<FjActor>> = (0..actors)
                    .map(|_| {
                        spawn(FjActor {
                            next: 0,
                            acc: 0,
                            per_actor,
                            done: tx.clone(),
                        })
                    })
                    .collect();
                let start = Instant::now();
                for seq in 0..per_actor {
                    for w in &workers {
                        send(w, seq, "a fork-join message").await;
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
        let rt = tokio_runtime(Threads::Two);
        b.run(|| {
            rt.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let refs: Vec<Address<BigActor>> = (0..actors)
                    .map(|me| {
                        spawn(BigActor {
                            state: BigState::new(me, actors, pings),
                            peers: None,
                            done: tx.clone(),
                        })
                    })
                    .collect();
                let peers = Arc::new(refs.clone());
                for r in &refs {
                    send(r, Peers(peers.clone()), "the peers").await;
                }
                drop(peers);
                let start = Instant::now();
                for r in &refs {
                    send(r, Go, "the start").await;
                }
                let got = recv_n(&mut rx, actors).await;
                let elapsed = start.elapsed();
                for r in &refs {
                    send(r, Stop, "a stop").await;
                }
                expect_eq("big: pongs per actor", got?, vec![pings; actors])?;
                Ok(elapsed)
            })
        });
    }

    fn chameneos(&self, b: &mut Bench, chameneos: usize, meetings: u64) {
        let rt = tokio_runtime(Threads::Two);
        b.run(|| {
            rt.block_on(async {
                let (tx, mut rx) = unbounded_channel();
                let mall = spawn(Mall {
                    state: MallState::new(chameneos, meetings),
                    done: tx,
                });
                let chams: Vec<Address<Chameneo>> = (0..chameneos)
                    .map(|i| {
                        spawn(Chameneo {
                            color: Color::of(i),
                            meetings: 0,
                            mall: mall.clone(),
                        })
                    })
                    .collect();
                let start = Instant::now();
                for c in &chams {
                    send(c, Start, "the start").await;
                }
                let got = recv(&mut rx).await;
                let elapsed = start.elapsed();
                send(&mall, Stop, "a stop").await;
                chameneos_check(got?, chameneos, meetings)?;
                Ok(elapsed)
            })
        });
    }

    fn idle_memory(&self, actors: usize) -> Result<Memory, MemoryError> {
        let rt = tokio_runtime(Threads::One);
        let mut refs = Vec::with_capacity(actors);
        let (spawned, heap, rss) = alloc::measure(|| {
            rt.block_on(async {
                while refs.len() < actors {
                    for _ in 0..IDLE_BATCH.min(actors - refs.len()) {
                        refs.push(spawn(Idle));
                    }
                    let n = refs.len();
                    until(|| IDLE_STARTED.load(Ordering::Relaxed) >= n).await?;
                }
                Ok::<(), String>(())
            })
        });
        spawned?;
        rt.block_on(async {
            for (i, batch) in refs.chunks(IDLE_BATCH).enumerate() {
                for r in batch {
                    send(r, 1u8, "a message to an idle actor").await;
                }
                let n = i * IDLE_BATCH + batch.len();
                until(|| IDLE_HANDLED.load(Ordering::Relaxed) >= n).await?;
            }
            Ok::<(), String>(())
        })?;
        Ok(per_actor(actors, heap, rss))
    }
}
