//! Raw baseline: one OS thread per actor, unbounded `crossbeam-channel` channels, no actor
//! library. A thread blocks in `recv` while its mailbox is empty, so every hand-off between
//! actors on different threads is a kernel wake-up. One thread cannot host two actors (no
//! same-thread ping-pong), and 100,000 idle threads cannot be created here (`pid_max` is
//! 32,768 on this machine), so those two cells are n/a.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, Sender};
use tokio::sync::mpsc::unbounded_channel;

use super::{Contender, Kind, Memory, MemoryError};
use crate::harness::{block_recv, block_recv_n, fault, Bench, Latch, Producers, Threads};
use crate::workload::{
    chameneos_check, expect_eq, fan_in_check, fan_in_expected, fj_expected, fj_step, ring_check,
    BigNext, BigState, Color, MallNext, MallState,
};

/// Threads and crossbeam channels.
pub struct Crossbeam;

/// Threads spawned by the spawn workload before they are joined (this machine's `pid_max` is
/// 32,768; the joins are timed).
const SPAWN_BATCH: u64 = 1_000;

/// `send`; a failure is a fault of the run.
fn send<M>(to: &Sender<M>, msg: M, what: &str) {
    if to.send(msg).is_err() {
        fault(format!("crossbeam: {what} could not be sent"));
    }
}

/// A thread for one actor, with a small stack.
fn actor_thread(f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(f)
        .map_err(|e| format!("spawn a thread: {e}"))
}

fn join_all(threads: Vec<JoinHandle<()>>) {
    for t in threads {
        let _ = t.join();
    }
}

/// A ring message: the token, or the end of the run.
enum RingMsg {
    Token(u64),
    Stop,
}

enum CounterMsg {
    Inc,
    Get(Sender<u64>),
}

enum BigMsg {
    Go,
    Ping(u32),
    Pong,
    Stop,
}

enum MallMsg {
    Meet(Color, Sender<ChamMsg>),
    Report(u64),
}

enum ChamMsg {
    Start,
    MeetWith(Color, Sender<ChamMsg>),
    Change(Color),
    Exit,
}

impl Contender for Crossbeam {
    fn name(&self) -> &'static str {
        "crossbeam threads"
    }

    fn kind(&self) -> Kind {
        Kind::Baseline
    }

    fn host(&self) -> &'static str {
        "one OS thread per actor (64 KiB stacks), blocking `recv`"
    }

    fn ping_pong(&self, b: &mut Bench, threads: Threads, round_trips: u64) {
        if threads == Threads::One {
            b.not_applicable("one thread per actor: two actors cannot share a thread");
            return;
        }
        self.ring(b, 2, 2 * round_trips);
    }

    fn ring(&self, b: &mut Bench, len: usize, hops: u64) {
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let (txs, rxs): (Vec<Sender<RingMsg>>, Vec<Receiver<RingMsg>>) =
                (0..len).map(|_| unbounded()).unzip();
            let mut threads = Vec::with_capacity(len);
            for (i, rx) in rxs.into_iter().enumerate() {
                let next = txs[(i + 1) % len].clone();
                let done = done_tx.clone();
                threads.push(actor_thread(move || {
                    let mut expect = None;
                    while let Ok(RingMsg::Token(left)) = rx.recv() {
                        ring_check(&mut expect, len as u64, left);
                        if left == 0 {
                            let _ = done.send(());
                        } else {
                            send(&next, RingMsg::Token(left - 1), "a token");
                        }
                    }
                })?);
            }
            let start = Instant::now();
            send(&txs[0], RingMsg::Token(hops - 1), "the first token");
            let result = block_recv(&mut done).map(|()| start.elapsed());
            for tx in &txs {
                let _ = tx.send(RingMsg::Stop);
            }
            join_all(threads);
            result
        });
    }

    fn fan_in(&self, b: &mut Bench, producers: usize, per_producer: u64) {
        let threads = Producers::new(producers);
        let total = producers as u64 * per_producer;
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let (tx, rx) = unbounded::<(u32, u64)>();
            let sink = actor_thread(move || {
                let (mut next, mut count, mut sum) = (vec![0; producers], 0u64, 0u64);
                while let Ok((producer, seq)) = rx.recv() {
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
            })?;
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
            let got = block_recv(&mut done);
            let elapsed = start.elapsed();
            join_all(vec![sink]);
            expect_eq(
                "fan-in (count, sum)",
                got?,
                fan_in_expected(producers, per_producer),
            )?;
            Ok(elapsed)
        });
    }

    fn spawn(&self, b: &mut Bench, actors: u64) {
        b.run(|| {
            let (latch, mut done) = Latch::new(actors);
            let start = Instant::now();
            let mut left = actors;
            while left > 0 {
                let batch = left.min(SPAWN_BATCH);
                left -= batch;
                let mut threads = Vec::with_capacity(batch as usize);
                for _ in 0..batch {
                    let (tx, rx) = unbounded::<u64>();
                    let latch = latch.clone();
                    threads.push(actor_thread(move || {
                        if rx.recv().is_err() {
                            fault("spawn: a thread stopped before handling its message");
                        }
                        latch.count_down();
                    })?);
                    send(&tx, 1, "the message");
                }
                join_all(threads);
            }
            block_recv(&mut done)?;
            Ok(start.elapsed())
        });
    }

    fn counting(&self, b: &mut Bench, increments: u64) {
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let (counter, inbox) = unbounded::<CounterMsg>();
            let counter_thread = actor_thread(move || {
                let mut n = 0u64;
                while let Ok(msg) = inbox.recv() {
                    match msg {
                        CounterMsg::Inc => n += 1,
                        CounterMsg::Get(reply) => {
                            let _ = reply.send(n);
                        }
                    }
                }
            })?;
            let (kick, kicked) = unbounded::<u64>();
            let producer_thread = actor_thread(move || {
                while let Ok(n) = kicked.recv() {
                    for _ in 0..n {
                        send(&counter, CounterMsg::Inc, "an increment");
                    }
                    let (reply, value) = unbounded();
                    send(&counter, CounterMsg::Get(reply), "the ask");
                    match value.recv() {
                        Ok(v) => {
                            let _ = done_tx.send(v);
                        }
                        Err(_) => fault("counting: the ask got no reply"),
                    }
                }
            })?;
            let start = Instant::now();
            send(&kick, increments, "the start");
            let got = block_recv(&mut done);
            let elapsed = start.elapsed();
            drop(kick);
            join_all(vec![producer_thread, counter_thread]);
            expect_eq("counting: the counter's value", got?, increments)?;
            Ok(elapsed)
        });
    }

    fn fork_join(&self, b: &mut Bench, actors: usize, per_actor: u64) {
        let expected = fj_expected(per_actor);
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let mut workers = Vec::with_capacity(actors);
            let mut threads = Vec::with_capacity(actors);
            for _ in 0..actors {
                let (tx, rx) = unbounded::<u64>();
                let done = done_tx.clone();
                threads.push(actor_thread(move || {
                    let (mut next, mut acc) = (0u64, 0u64);
                    while let Ok(seq) = rx.recv() {
                        acc = fj_step(&mut next, acc, seq);
                        if next == per_actor {
                            let _ = done.send(acc);
                            return;
                        }
                    }
                })?);
                workers.push(tx);
            }
            let start = Instant::now();
            for seq in 0..per_actor {
                for w in &workers {
                    send(w, seq, "a fork-join message");
                }
            }
            let got = block_recv_n(&mut done, actors);
            let elapsed = start.elapsed();
            drop(workers);
            join_all(threads);
            expect_eq("fork-join: accumulators", got?, vec![expected; actors])?;
            Ok(elapsed)
        });
    }

    fn big(&self, b: &mut Bench, actors: usize, pings: u64) {
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let (txs, rxs): (Vec<Sender<BigMsg>>, Vec<Receiver<BigMsg>>) =
                (0..actors).map(|_| unbounded()).unzip();
            let peers = Arc::new(txs);
            let mut threads = Vec::with_capacity(actors);
            for (me, rx) in rxs.into_iter().enumerate() {
                let peers = peers.clone();
                let done = done_tx.clone();
                threads.push(actor_thread(move || {
                    let mut state = BigState::new(me, actors, pings);
                    while let Ok(msg) = rx.recv() {
                        let next = match msg {
                            BigMsg::Go => state.start(),
                            BigMsg::Pong => state.pong(),
                            BigMsg::Ping(from) => {
                                send(&peers[from as usize], BigMsg::Pong, "a pong");
                                continue;
                            }
                            BigMsg::Stop => return,
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
                })?);
            }
            let start = Instant::now();
            for p in peers.iter() {
                send(p, BigMsg::Go, "the start");
            }
            let got = block_recv_n(&mut done, actors);
            let elapsed = start.elapsed();
            for p in peers.iter() {
                let _ = p.send(BigMsg::Stop);
            }
            join_all(threads);
            expect_eq("big: pongs per actor", got?, vec![pings; actors])?;
            Ok(elapsed)
        });
    }

    fn chameneos(&self, b: &mut Bench, chameneos: usize, meetings: u64) {
        b.run(|| {
            let (done_tx, mut done) = unbounded_channel();
            let (mall, inbox) = unbounded::<MallMsg>();
            let mall_thread = actor_thread(move || {
                let mut state = MallState::new(chameneos, meetings);
                while let Ok(msg) = inbox.recv() {
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
                                return;
                            }
                        }
                    }
                }
            })?;
            let mut chams = Vec::with_capacity(chameneos);
            let mut threads = vec![mall_thread];
            for i in 0..chameneos {
                let (me, rx) = unbounded::<ChamMsg>();
                let mall = mall.clone();
                let myself = me.clone();
                threads.push(actor_thread(move || {
                    let (mut color, mut meetings) = (Color::of(i), 0u64);
                    while let Ok(msg) = rx.recv() {
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
                        send(&mall, MallMsg::Meet(color, myself.clone()), "a visit");
                    }
                })?);
                chams.push(me);
            }
            drop(mall);
            let start = Instant::now();
            for c in &chams {
                send(c, ChamMsg::Start, "the start");
            }
            let got = block_recv(&mut done);
            let elapsed = start.elapsed();
            drop(chams);
            // A chameneo that never got its exit (a failed run) would block the join.
            if got.is_ok() {
                join_all(threads);
            }
            chameneos_check(got?, chameneos, meetings)?;
            Ok(elapsed)
        });
    }

    fn idle_memory(&self, _actors: usize) -> Result<Memory, MemoryError> {
        Err(MemoryError::NotApplicable(
            "one OS thread per actor: 100,000 threads exceed this machine's pid_max (32,768)",
        ))
    }
}
