//! ractor: actors as `ractor::Actor` implementations (a message enum and a state per actor) on
//! a tokio runtime; `Actor::spawn(..).await`, `send_message` for tell, `call` for ask. A
//! ractor mailbox is an unbounded tokio channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::{per_actor, Contender, Kind, Memory, MemoryError, IDLE_BATCH};
use crate::alloc;
use crate::harness::{fault, recv, recv_n, tokio_runtime, until, Bench, Latch, Producers, Threads};
use crate::workload::{
    chameneos_check, expect_eq, fan_in_check, fan_in_expected, fj_expected, fj_step, ring_check,
    BigNext, BigState, Color, MallNext, MallState,
};

/// ractor on tokio.
pub struct Ractor;

type Res = Result<(), ActorProcessingErr>;

/// `send_message`; a failure is a fault of the run.
fn send<M: ractor::Message>(to: &ActorRef<M>, msg: M, what: &str) {
    if to.send_message(msg).is_err() {
        fault(format!("ractor: {what} could not be sent"));
    }
}

/// Spawns an actor and waits until it started (its `pre_start` ran).
async fn spawn<A: Actor>(actor: A, args: A::Arguments) -> Result<ActorRef<A::Msg>, String> {
    Actor::spawn(None, actor, args)
        .await
        .map(|(r, _join)| r)
        .map_err(|e| format!("ractor spawn: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Ring
// ---------------------------------------------------------------------------------------------

struct Node;

enum NodeMsg {
    Next(ActorRef<NodeMsg>),
    Token(u64),
}

struct NodeState {
    next: Option<ActorRef<NodeMsg>>,
    expect: Option<u64>,
    len: u64,
    done: UnboundedSender<()>,
}

impl Actor for Node {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = NodeState;

    async fn pre_start(
        &self,
        _myself: ActorRef<NodeMsg>,
        state: NodeState,
    ) -> Result<NodeState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(&self, _myself: ActorRef<NodeMsg>, msg: NodeMsg, st: &mut NodeState) -> Res {
        match msg {
            NodeMsg::Next(next) => st.next = Some(next),
            NodeMsg::Token(left) => {
                ring_check(&mut st.expect, st.len, left);
                if left == 0 {
                    let _ = st.done.send(());
                } else if let Some(next) = &st.next {
                    send(next, NodeMsg::Token(left - 1), "a token");
                } else {
                    fault("ring: a token before the link");
                }
            }
        }
        Ok(())
    }
}

fn ring_on(rt: &Runtime, b: &mut Bench, len: usize, hops: u64) {
    b.run(|| {
        rt.block_on(async {
            let (tx, mut rx) = unbounded_channel();
            let mut nodes = Vec::with_capacity(len);
            for _ in 0..len {
                let state = NodeState {
                    next: None,
                    expect: None,
                    len: len as u64,
                    done: tx.clone(),
                };
                nodes.push(spawn(Node, state).await?);
            }
            for (i, node) in nodes.iter().enumerate() {
                send(node, NodeMsg::Next(nodes[(i + 1) % len].clone()), "a link");
            }
            let start = Instant::now();
            send(&nodes[0], NodeMsg::Token(hops - 1), "the first token");
            let result = recv(&mut rx).await.map(|()| start.elapsed());
            for node in &nodes {
                node.stop(None);
            }
            result
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Fan-in
// ---------------------------------------------------------------------------------------------

struct Sink;

struct SinkState {
    next: Vec<u64>,
    count: u64,
    sum: u64,
    total: u64,
    done: UnboundedSender<(u64, u64)>,
}

impl Actor for Sink {
    type Msg = (u32, u64);
    type State = SinkState;
    type Arguments = SinkState;

    async fn pre_start(
        &self,
        _myself: ActorRef<(u32, u64)>,
        state: SinkState,
    ) -> Result<SinkState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<(u32, u64)>,
        (producer, seq): (u32, u64),
        st: &mut SinkState,
    ) -> Res {
        if let Err(e) = fan_in_check(&mut st.next, producer, seq) {
            fault(e);
        }
        st.count += 1;
        st.sum += seq;
        if st.count == st.total {
            let _ = st.done.send((st.count, st.sum));
            myself.stop(None);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Spawn
// ---------------------------------------------------------------------------------------------

struct OneShot;

struct OneShotState {
    handled: bool,
    latch: Arc<Latch>,
}

impl Actor for OneShot {
    type Msg = u64;
    type State = OneShotState;
    type Arguments = Arc<Latch>;

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        latch: Arc<Latch>,
    ) -> Result<OneShotState, ActorProcessingErr> {
        Ok(OneShotState {
            handled: false,
            latch,
        })
    }

    async fn handle(&self, myself: ActorRef<u64>, _: u64, st: &mut OneShotState) -> Res {
        st.handled = true;
        myself.stop(None);
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<u64>, st: &mut OneShotState) -> Res {
        if !st.handled {
            fault("spawn: an actor stopped before handling its message");
        }
        st.latch.count_down();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Idle actors
// ---------------------------------------------------------------------------------------------

static IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);

struct Idle;

impl Actor for Idle {
    type Msg = u8;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<u8>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _myself: ActorRef<u8>, _: u8, _: &mut ()) -> Res {
        IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

struct Counter;

enum CounterMsg {
    Inc,
    Get(ractor::RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<CounterMsg>,
        _: (),
    ) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(&self, _myself: ActorRef<CounterMsg>, msg: CounterMsg, n: &mut u64) -> Res {
        match msg {
            CounterMsg::Inc => *n += 1,
            CounterMsg::Get(reply) => {
                let _ = reply.send(*n);
            }
        }
        Ok(())
    }
}

struct Producer;

impl Actor for Producer {
    /// Send this many increments, then ask for the value.
    type Msg = u64;
    type State = (ActorRef<CounterMsg>, UnboundedSender<u64>);
    type Arguments = (ActorRef<CounterMsg>, UnboundedSender<u64>);

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(&self, _myself: ActorRef<u64>, n: u64, st: &mut Self::State) -> Res {
        let (counter, done) = st;
        for _ in 0..n {
            send(counter, CounterMsg::Inc, "an increment");
        }
        match counter.call(CounterMsg::Get, None).await {
            Ok(CallResult::Success(v)) => {
                let _ = done.send(v);
            }
            _ => fault("counting: the call failed"),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Fork-join
// ---------------------------------------------------------------------------------------------

struct FjActor;

struct FjState {
    next: u64,
    acc: u64,
    per_actor: u64,
    done: UnboundedSender<u64>,
}

impl Actor for FjActor {
    type Msg = u64;
    type State = FjState;
    type Arguments = FjState;

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        state: FjState,
    ) -> Result<FjState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(&self, myself: ActorRef<u64>, seq: u64, st: &mut FjState) -> Res {
        st.acc = fj_step(&mut st.next, st.acc, seq);
        if st.next == st.per_actor {
            let _ = st.done.send(st.acc);
            myself.stop(None);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Big
// ---------------------------------------------------------------------------------------------

struct BigActor;

enum BigMsg {
    Peers(Arc<Vec<ActorRef<BigMsg>>>),
    Go,
    Ping(u32),
    Pong,
}

struct BigActorState {
    state: BigState,
    peers: Option<Arc<Vec<ActorRef<BigMsg>>>>,
    done: UnboundedSender<u64>,
}

impl BigActorState {
    fn act(&mut self, next: BigNext) {
        match next {
            BigNext::Ping(to) => match &self.peers {
                Some(peers) => send(&peers[to], BigMsg::Ping(self.state.me as u32), "a ping"),
                None => fault("big: a ping before the peers"),
            },
            BigNext::Done => {
                let _ = self.done.send(self.state.pongs);
            }
        }
    }
}

impl Actor for BigActor {
    type Msg = BigMsg;
    type State = BigActorState;
    type Arguments = BigActorState;

    async fn pre_start(
        &self,
        _myself: ActorRef<BigMsg>,
        state: BigActorState,
    ) -> Result<BigActorState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(&self, _myself: ActorRef<BigMsg>, msg: BigMsg, st: &mut BigActorState) -> Res {
        match msg {
            BigMsg::Peers(peers) => st.peers = Some(peers),
            BigMsg::Go => {
                let next = st.state.start();
                st.act(next);
            }
            BigMsg::Ping(from) => match &st.peers {
                Some(peers) => send(&peers[from as usize], BigMsg::Pong, "a pong"),
                None => fault("big: a ping before the peers"),
            },
            BigMsg::Pong => {
                let next = st.state.pong();
                st.act(next);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Chameneos
// ---------------------------------------------------------------------------------------------

struct Mall;

enum MallMsg {
    Meet(Color, ActorRef<ChamMsg>),
    Report(u64),
}

struct MallActorState {
    state: MallState<ActorRef<ChamMsg>>,
    done: UnboundedSender<(usize, u64)>,
}

impl Actor for Mall {
    type Msg = MallMsg;
    type State = MallActorState;
    type Arguments = MallActorState;

    async fn pre_start(
        &self,
        _myself: ActorRef<MallMsg>,
        state: MallActorState,
    ) -> Result<MallActorState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<MallMsg>,
        msg: MallMsg,
        st: &mut MallActorState,
    ) -> Res {
        match msg {
            MallMsg::Meet(color, who) => match st.state.arrive(color, who) {
                MallNext::Wait => {}
                MallNext::Meet(first, color, second) => {
                    send(&first, ChamMsg::MeetWith(color, second), "a meeting");
                }
                MallNext::Exit(who) => send(&who, ChamMsg::Exit, "an exit"),
            },
            MallMsg::Report(meetings) => {
                if let Some(result) = st.state.report(meetings) {
                    let _ = st.done.send(result);
                }
            }
        }
        Ok(())
    }
}

struct Chameneo;

enum ChamMsg {
    Start,
    MeetWith(Color, ActorRef<ChamMsg>),
    Change(Color),
    Exit,
}

struct ChamState {
    color: Color,
    meetings: u64,
    mall: ActorRef<MallMsg>,
}

impl Actor for Chameneo {
    type Msg = ChamMsg;
    type State = ChamState;
    type Arguments = ChamState;

    async fn pre_start(
        &self,
        _myself: ActorRef<ChamMsg>,
        state: ChamState,
    ) -> Result<ChamState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(&self, myself: ActorRef<ChamMsg>, msg: ChamMsg, st: &mut ChamState) -> Res {
        match msg {
            ChamMsg::Start => {}
            ChamMsg::MeetWith(other_color, other) => {
                st.color = st.color.complement(other_color);
                st.meetings += 1;
                send(&other, ChamMsg::Change(st.color), "a colour change");
            }
            ChamMsg::Change(color) => {
                st.color = color;
                st.meetings += 1;
            }
            ChamMsg::Exit => {
                send(&st.mall, MallMsg::Report(st.meetings), "a report");
                myself.stop(None);
                return Ok(());
            }
        }
        send(
            &st.mall,
            MallMsg::Meet(st.color, myself),
            "a visit to the mall",
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The workloads
// ---------------------------------------------------------------------------------------------

impl Contender for Ractor {
    fn name(&self) -> &'static str {
        "ractor"
    }

    fn kind(&self) -> Kind {
        Kind::Peer
    }

    fn host(&self) -> &'static str {
        "tokio `current_thread` (one thread), 2-worker `multi_thread` (2 workers)"
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
            let state = SinkState {
                next: vec![0; producers],
                count: 0,
                sum: 0,
                total: producers as u64 * per_producer,
                done: tx,
            };
            let sink = rt.block_on(spawn(Sink, state))?;
            let go = threads.prepare(|i| {
                let sink = sink.clone();
                Box::new(move || {
                    for seq in 0..per_producer {
                        send(&sink, (i as u32, seq), "a fan-in message");
                    }
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
                    let actor = spawn(OneShot, latch.clone()).await?;
                    send(&actor, 1, "the message");
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
                let counter = spawn(Counter, ()).await?;
                let producer = spawn(Producer, (counter.clone(), tx)).await?;
                let start = Instant::now();
                send(&producer, increments, "the start");
                let got = recv(&mut rx).await?;
                let elapsed = start.elapsed();
                producer.stop(None);
                counter.stop(None);
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
                let mut workers = Vec::with_capacity(actors);
                for _ in 0..actors {
                    let state = FjState {
                        next: 0,
                        acc: 0,
                        per_actor,
                        done: tx.clone(),
                    };
                    workers.push(spawn(FjActor, state).await?);
                }
                let start = Instant::now();
                for seq in 0..per_actor {
                    for w in &workers {
                        send(w, seq, "a fork-join message");
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
                let mut refs = Vec::with_capacity(actors);
                for me in 0..actors {
                    let state = BigActorState {
                        state: BigState::new(me, actors, pings),
                        peers: None,
                        done: tx.clone(),
                    };
                    refs.push(spawn(BigActor, state).await?);
                }
                let peers = Arc::new(refs.clone());
                for r in &refs {
                    send(r, BigMsg::Peers(peers.clone()), "the peers");
                }
                drop(peers);
                let start = Instant::now();
                for r in &refs {
                    send(r, BigMsg::Go, "the start");
                }
                let got = recv_n(&mut rx, actors).await;
                let elapsed = start.elapsed();
                for r in &refs {
                    r.stop(None);
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
                let state = MallActorState {
                    state: MallState::new(chameneos, meetings),
                    done: tx,
                };
                let mall = spawn(Mall, state).await?;
                let mut chams = Vec::with_capacity(chameneos);
                for i in 0..chameneos {
                    let state = ChamState {
                        color: Color::of(i),
                        meetings: 0,
                        mall: mall.clone(),
                    };
                    chams.push(spawn(Chameneo, state).await?);
                }
                let start = Instant::now();
                for c in &chams {
                    send(c, ChamMsg::Start, "the start");
                }
                let got = recv(&mut rx).await;
                let elapsed = start.elapsed();
                mall.stop(None);
                chameneos_check(got?, chameneos, meetings)?;
                Ok(elapsed)
            })
        });
    }

    fn idle_memory(&self, actors: usize) -> Result<Memory, MemoryError> {
        let rt = tokio_runtime(Threads::One);
        let mut refs = Vec::with_capacity(actors);
        // `spawn(..).await` returns once the actor has started.
        let (spawned, heap, rss) = alloc::measure(|| {
            rt.block_on(async {
                for _ in 0..actors {
                    refs.push(spawn(Idle, ()).await?);
                }
                Ok::<(), String>(())
            })
        });
        spawned?;
        rt.block_on(async {
            for (i, batch) in refs.chunks(IDLE_BATCH).enumerate() {
                for r in batch {
                    send(r, 1u8, "a message to an idle actor");
                }
                let n = i * IDLE_BATCH + batch.len();
                until(|| IDLE_HANDLED.load(Ordering::Relaxed) >= n).await?;
            }
            Ok::<(), String>(())
        })?;
        Ok(per_actor(actors, heap, rss))
    }
}
