//! Raw baseline: tokio tasks and unbounded `tokio::sync::mpsc` channels, no actor library (the
//! "actor" pattern written by hand: a task owning its state, looping on its receiver and
//! matching on a message enum). Replies go over `oneshot` channels.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Runtime;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{per_actor, Contender, Kind, Memory, MemoryError, IDLE_BATCH};
use crate::alloc;
use crate::harness::{fault, recv, recv_n, tokio_runtime, until, Bench, Latch, Producers, Threads};
use crate::workload::{
    chameneos_check, expect_eq, fan_in_check, fan_in_expected, fj_expected, fj_step, ring_check,
    BigNext, BigState, Color, MallNext, MallState,
};

/// tokio tasks and mpsc channels.
pub struct TokioMpsc;

/// `send`; a failure is a fault of the run.
fn send<M>(to: &UnboundedSender<M>, msg: M, what: &str) {
    if to.send(msg).is_err() {
        fault(format!("tokio: {what} could not be sent"));
    }
}

/// Aborts the tasks of a run (untimed clean-up).
fn abort_all(tasks: &[JoinHandle<()>]) {
    for t in tasks {
        t.abort();
    }
}

fn ring_on(rt: &Runtime, b: &mut Bench, len: usize, hops: u64) {
    b.run(|| {
        rt.block_on(async {
            let (done_tx, mut done) = unbounded_channel();
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..len).map(|_| unbounded_channel()).unzip();
            let tasks: Vec<JoinHandle<()>> = rxs
                .into_iter()
                .enumerate()
                .map(|(i, mut rx): (usize, UnboundedReceiver<u64>)| {
                    let next = txs[(i + 1) % len].clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let mut expect = None;
                        while let Some(left) = rx.recv().await {
                            ring_check(&mut expect, len as u64, left);
                            if left == 0 {
                                let _ = done.send(());
                            } else {
                                send(&next, left - 1, "a token");
                            }
                        }
                    })
                })
                .collect();
            let start = Instant::now();
            send(&txs[0], hops - 1, "the first token");
            let result = recv(&mut done).await.map(|()| start.elapsed());
            abort_all(&tasks);
            result
        })
    });
}

enum CounterMsg {
    Inc,
    Get(oneshot::Sender<u64>),
}

enum BigMsg {
    Go,
    Ping(u32),
    Pong,
}

enum MallMsg {
    Meet(Color, UnboundedSender<ChamMsg>),
    Report(u64),
}

enum ChamMsg {
    Start,
    MeetWith(Color, UnboundedSender<ChamMsg>),
    Change(Color),
    Exit,
}

static IDLE_STARTED: AtomicUsize = AtomicUsize::new(0);
static IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);

impl Contender for TokioMpsc {
    fn name(&self) -> &'static str {
        "tokio mpsc"
    }

    fn kind(&self) -> Kind {
        Kind::Baseline
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
        let total = producers as u64 * per_producer;
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let (tx, mut rx) = unbounded_channel::<(u32, u64)>();
            let sink = rt.spawn(async move {
                let (mut next, mut count, mut sum) = (vec![0; producers], 0u64, 0u64);
                while let Some((producer, seq)) = rx.recv().await {
                    if let Err(e) = fan_in_check(&mut next, producer, seq) {
                        fault(e);
                    }
                    count += 1;
                    sum += seq;
                    if count == total {
                        let _ = done_tx.send((count, sum));
                        return;
                    }
                }
            });
            let go = threads.prepare(|i| {
                let tx = tx.clone();
                Box::new(move || {
                    for seq in 0..per_producer {
                        send(&tx, (i as u32, seq), "a fan-in message");
                    }
                })
            });
            drop(tx);
            go.wait();
            let start = Instant::now();
            let got = rt.block_on(recv(&mut done));
            let elapsed = start.elapsed();
            sink.abort();
            expect_eq(
                "fan-in (count, sum)",
                got?,
                fan_in_expected(producers, per_producer),
            )?;
            Ok(elapsed)
        });
    }

    fn spawn(&self, b: &mut Bench, actors: u64) {
        let rt = tokio_runtime(Threads::Two);
        b.run(|| {
            rt.block_on(async {
                let (latch, mut done) = Latch::new(actors);
                let mut refs = Vec::with_capacity(actors as usize);
                let start = Instant::now();
                for _ in 0..actors {
                    let (tx, mut rx) = unbounded_channel::<u64>();
                    let latch = latch.clone();
                    // Detached: the task ends after its one message.
                    drop(tokio::spawn(async move {
                        if rx.recv().await.is_none() {
                            fault("spawn: a task stopped before handling its message");
                        }
                        latch.count_down();
                    }));
                    send(&tx, 1, "the message");
                    refs.push(tx);
                }
                recv(&mut done).await?;
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
                let (done_tx, mut done) = unbounded_channel();
                let (counter, mut inbox) = unbounded_channel::<CounterMsg>();
                let counter_task = tokio::spawn(async move {
                    let mut n = 0u64;
                    while let Some(msg) = inbox.recv().await {
                        match msg {
                            CounterMsg::Inc => n += 1,
                            CounterMsg::Get(reply) => {
                                let _ = reply.send(n);
                            }
                        }
                    }
                });
                let (kick, mut kicked) = unbounded_channel::<u64>();
                let producer_task = tokio::spawn(async move {
                    while let Some(n) = kicked.recv().await {
                        for _ in 0..n {
                            send(&counter, CounterMsg::Inc, "an increment");
                        }
                        let (reply, value) = oneshot::channel();
                        send(&counter, CounterMsg::Get(reply), "the ask");
                        match value.await {
                            Ok(v) => {
                                let _ = done_tx.send(v);
                            }
                            Err(_) => fault("counting: the ask got no reply"),
                        }
                    }
                });
                let start = Instant::now();
                send(&kick, increments, "the start");
                let got = recv(&mut done).await;
                let elapsed = start.elapsed();
                abort_all(&[counter_task, producer_task]);
                expect_eq("counting: the counter's value", got?, increments)?;
                Ok(elapsed)
            })
        });
    }

    fn fork_join(&self, b: &mut Bench, actors: usize, per_actor: u64) {
        let rt = tokio_runtime(Threads::Two);
        let expected = fj_expected(per_actor);
        b.run(|| {
            rt.block_on(async {
                let (done_tx, mut done) = unbounded_channel();
                let workers: Vec<UnboundedSender<u64>> = (0..actors)
                    .map(|_| {
                        let (tx, mut rx) = unbounded_channel::<u64>();
                        let done = done_tx.clone();
                        drop(tokio::spawn(async move {
                            let (mut next, mut acc) = (0u64, 0u64);
                            while let Some(seq) = rx.recv().await {
                                acc = fj_step(&mut next, acc, seq);
                                if next == per_actor {
                                    let _ = done.send(acc);
                                    return;
                                }
                            }
                        }));
                        tx
                    })
                    .collect();
                let start = Instant::now();
                for seq in 0..per_actor {
                    for w in &workers {
                        send(w, seq, "a fork-join message");
                    }
                }
                let got = recv_n(&mut done, actors).await?;
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
                let (done_tx, mut done) = unbounded_channel();
                let (txs, rxs): (Vec<_>, Vec<_>) =
                    (0..actors).map(|_| unbounded_channel::<BigMsg>()).unzip();
                let peers = Arc::new(txs);
                let tasks: Vec<JoinHandle<()>> = rxs
                    .into_iter()
                    .enumerate()
                    .map(|(me, mut rx)| {
                        let peers = peers.clone();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            let mut state = BigState::new(me, actors, pings);
                            while let Some(msg) = rx.recv().await {
                                let next = match msg {
                                    BigMsg::Go => state.start(),
                                    BigMsg::Pong => state.pong(),
                                    BigMsg::Ping(from) => {
                                        send(&peers[from as usize], BigMsg::Pong, "a pong");
                                        continue;
                                    }
                                };
                                match next {
                                    BigNext::Ping(to) => {
                                        send(&peers[to], BigMsg::Ping(me as u32), "a ping")
                                    }
                                    BigNext::Done => {
                                        let _ = done.send(state.pongs);
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                let start = Instant::now();
                for p in peers.iter() {
                    send(p, BigMsg::Go, "the start");
                }
                let got = recv_n(&mut done, actors).await;
                let elapsed = start.elapsed();
                abort_all(&tasks);
                expect_eq("big: pongs per actor", got?, vec![pings; actors])?;
                Ok(elapsed)
            })
        });
    }

    fn chameneos(&self, b: &mut Bench, chameneos: usize, meetings: u64) {
        let rt = tokio_runtime(Threads::Two);
        b.run(|| {
            rt.block_on(async {
                let (done_tx, mut done) = unbounded_channel();
                let (mall, mut inbox) = unbounded_channel::<MallMsg>();
                let mall_task = tokio::spawn(async move {
                    let mut state = MallState::new(chameneos, meetings);
                    while let Some(msg) = inbox.recv().await {
                        match msg {
                            MallMsg::Meet(color, who) => match state.arrive(color, who) {
                                MallNext::Wait => {}
                                MallNext::Meet(first, color, second) => {
                                    send(&first, ChamMsg::MeetWith(color, second), "a meeting")
                                }
                                MallNext::Exit(who) => send(&who, ChamMsg::Exit, "an exit"),
                            },
                            MallMsg::Report(m) => {
                                if let Some(result) = state.report(m) {
                                    let _ = done_tx.send(result);
                                }
                            }
                        }
                    }
                });
                let chams: Vec<UnboundedSender<ChamMsg>> = (0..chameneos)
                    .map(|i| {
                        let (me, mut rx) = unbounded_channel::<ChamMsg>();
                        let mall = mall.clone();
                        let myself = me.clone();
                        drop(tokio::spawn(async move {
                            let (mut color, mut meetings) = (Color::of(i), 0u64);
                            while let Some(msg) = rx.recv().await {
                                match msg {
                                    ChamMsg::Start => {}
                                    ChamMsg::MeetWith(other_color, other) => {
                                        color = color.complement(other_color);
                                        meetings += 1;
                                        send(&other, ChamMsg::Change(color), "a colour change");
                                    }
                                    ChamMsg::Change(c) => {
                                        color = c;
                                        meetings += 1;
                                    }
                                    ChamMsg::Exit => {
                                        send(&mall, MallMsg::Report(meetings), "a report");
                                        return;
                                    }
                                }
                                let visit = MallMsg::Meet(color, myself.clone());
                                send(&mall, visit, "a visit to the mall");
                            }
                        }));
                        me
                    })
                    .collect();
                let start = Instant::now();
                for c in &chams {
                    send(c, ChamMsg::Start, "the start");
                }
                let got = recv(&mut done).await;
                let elapsed = start.elapsed();
                mall_task.abort();
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
                        let (tx, mut rx) = unbounded_channel::<u8>();
                        drop(tokio::spawn(async move {
                            IDLE_STARTED.fetch_add(1, Ordering::Relaxed);
                            while rx.recv().await.is_some() {
                                IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
                            }
                        }));
                        refs.push(tx);
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
                for tx in batch {
                    send(tx, 1u8, "a message to an idle task");
                }
                let n = i * IDLE_BATCH + batch.len();
                until(|| IDLE_HANDLED.load(Ordering::Relaxed) >= n).await?;
            }
            Ok::<(), String>(())
        })?;
        Ok(per_actor(actors, heap, rss))
    }
}
