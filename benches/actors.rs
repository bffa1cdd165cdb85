//! Actor workloads on airssys-rt next to tokio tasks doing the same, in one bench run.
//!
//! Every airssys workload has a tokio baseline built the same way (unbounded mpsc channels
//! standing in for unbounded mailboxes, one task per actor), on the same number of threads:
//!
//! * `ping_pong/same_thread`: two actors bounce a ball, on a [`ManualDriver`] (driven with
//!   `run_until_idle` inside the clock) vs two tasks on a tokio `current_thread` runtime. One
//!   iteration is one round trip (two messages).
//! * `ping_pong/2_workers`: the same on `ThreadPool::new(2)` vs a 2-worker tokio
//!   `multi_thread` runtime.
//! * `fan_in/1_producer`: [`PER_PRODUCER`] messages into one counting actor. Two variants:
//!   `*_same_thread` (the bench thread sends them all, then the [`ManualDriver`] / tokio
//!   `current_thread` runtime delivers them), and `airssys_pool` / `tokio_multi_thread` (a
//!   producer thread sends while 2 workers deliver).
//! * `fan_in/4_producers`: [`PRODUCERS`] producer threads into one actor on 2 workers.
//! * `spawn`: [`SPAWNS`] actors, each handling one message and stopping, on a [`ManualDriver`]
//!   vs `tokio::spawn` of tasks receiving one message on a oneshot. One iteration is one
//!   actor: spawn, send, run, stop.
//! * `ring/*`: the Savina thread ring: [`RING`] actors in a ring pass a token for
//!   [`RING_HOPS`] hops, same thread and on 2 workers.
//! * `ask_from_outside`: the bench thread asks an actor on 2 workers and blocks for each
//!   reply, with the pool's default idle spins and with `idle_spins(0)`, vs `block_on` of a
//!   request to a tokio task on a 2-worker runtime (see [`ask_from_outside`]).
//! * Before the timings, the memory of [`IDLE`] idle actors (no user state) vs as many idle
//!   tokio tasks each waiting on an mpsc receiver: heap bytes counted by this file's global
//!   allocator, and the RSS delta from `/proc/self/statm`.
//!
//! Every workload checks its own result: a lap that does not finish, or a count that does not
//! match the messages sent, fails the bench.
//!
//! Producer threads are started once and reused, so their arena writers (airssys) are warm,
//! as in a long-running program. On a 2-core machine the pool groups oversubscribe the cores
//! (producers + 2 workers), for both runtimes alike.

use std::alloc::{GlobalAlloc, Layout, System as SystemAlloc};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use airssys_rt::{Actor, ActorRef, Ctx, Handler, ManualDriver, SendError, System, ThreadPool};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc as tmpsc;

/// Messages each producer sends per fan-in iteration.
const PER_PRODUCER: u64 = 50_000;
/// Producer threads in `fan_in/4_producers`.
const PRODUCERS: usize = 4;
/// Actors spawned per `spawn` iteration.
const SPAWNS: u64 = 10_000;
/// Actors in the thread ring.
const RING: usize = 503;
/// Hops per ring iteration.
const RING_HOPS: u64 = 100_000;
/// Idle actors (and tasks) in the memory probe.
const IDLE: usize = 100_000;
/// How long a lap on a thread pool may take before the bench fails (a lost message).
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Counting allocator (memory probe only)
// ---------------------------------------------------------------------------------------------

/// Forwards to the system allocator; counts the net bytes of the thread that switched
/// counting on, so other threads (criterion's, the pool's) do not disturb the probe.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Net bytes allocated by this thread while counting (allocations minus frees).
    static NET_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = NET_BYTES.try_with(|c| c.set(c.get() + delta));
    }
}

// SAFETY: every call forwards to the system allocator with the same arguments; the wrapper
// only updates thread-local counters (which never allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize);
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { SystemAlloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { SystemAlloc.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `SystemAlloc` (every allocation goes through us) with
        // `layout`, as our caller guarantees.
        unsafe { SystemAlloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size as isize - layout.size() as isize);
        // SAFETY: as for `dealloc`; `new_size` is valid as our caller guarantees.
        unsafe { SystemAlloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The net heap bytes this thread allocated while `f` ran, with `f`'s result.
fn net_allocated<R>(f: impl FnOnce() -> R) -> (R, isize) {
    NET_BYTES.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, NET_BYTES.with(Cell::get))
}

/// Resident set size in bytes (`/proc/self/statm`, second field, in 4 KiB pages).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

// ---------------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------------

/// Where the airssys actors of one benchmark run.
enum Host {
    /// The bench thread runs them (`run_until_idle`).
    Manual(ManualDriver),
    /// Two worker threads run them; the bench thread waits.
    Pool(ThreadPool),
}

impl Host {
    fn manual() -> Self {
        Host::Manual(ManualDriver::new(1))
    }

    fn pool() -> Self {
        Host::Pool(ThreadPool::new(2))
    }

    fn system(&self) -> &System {
        match self {
            Host::Manual(d) => d.system(),
            Host::Pool(p) => p.system(),
        }
    }

    /// Runs the actors until they are idle (manual), or waits (pool), until `done` has a
    /// value. Panics if it never comes: a message was lost.
    fn wait<T>(&self, done: &mpsc::Receiver<T>) -> T {
        match self {
            Host::Manual(d) => {
                d.run_until_idle();
                done.try_recv()
                    .expect("lost message: the actors went idle before finishing")
            }
            Host::Pool(_) => done
                .recv_timeout(WAIT)
                .expect("lost message: the actors did not finish in time"),
        }
    }

    /// Asks `actor` and returns the reply.
    fn ask<A: Handler<M>, M: Send + 'static>(&self, actor: &ActorRef<A>, msg: M) -> A::Reply {
        match self {
            Host::Manual(d) => {
                let reply = actor.ask(msg);
                d.run_until_idle();
                reply
                    .try_take()
                    .expect("idle: the reply is there")
                    .expect("ask")
            }
            Host::Pool(_) => actor.ask_timeout(msg, WAIT).expect("ask"),
        }
    }
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

fn two_workers() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Rings (ping-pong is a ring of two)
// ---------------------------------------------------------------------------------------------

/// A ring member: passes the token on until it has no hops left.
struct Node {
    next: Option<ActorRef<Node>>,
    /// Tokens this node has handled (checked against the tokens sent).
    handled: u64,
    done: mpsc::Sender<()>,
}

impl Actor for Node {}

/// Links a node to the next one.
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
        self.handled += 1;
        if left == 0 {
            self.done.send(()).expect("the bench is waiting");
        } else {
            let next = self.next.as_ref().expect("linked before the first lap");
            if next.tell(Token(left - 1)).is_err() {
                // Caught by the runtime; the lap then never finishes and the bench fails.
                panic!("token lost");
            }
        }
    }
}

/// Reads a node's `handled` count.
struct Handled;

impl Handler<Handled> for Node {
    type Reply = u64;
    fn handle(&mut self, _: Handled, _ctx: &mut Ctx<Self>) -> u64 {
        self.handled
    }
}

/// `len` airssys actors in a ring.
struct AirRing {
    nodes: Vec<ActorRef<Node>>,
    done: mpsc::Receiver<()>,
    /// Tokens delivered so far, over all laps.
    sent: u64,
}

impl AirRing {
    fn new(host: &Host, len: usize) -> Self {
        let (tx, done) = mpsc::channel();
        let nodes: Vec<ActorRef<Node>> = (0..len)
            .map(|_| {
                host.system()
                    .spawn(Node {
                        next: None,
                        handled: 0,
                        done: tx.clone(),
                    })
                    .expect("spawn")
            })
            .collect();
        for (i, node) in nodes.iter().enumerate() {
            node.tell(Next(nodes[(i + 1) % len].clone())).expect("link");
        }
        let ring = Self {
            nodes,
            done,
            sent: 0,
        };
        ring.check(host); // every node is linked
        ring
    }

    /// Sends the token around for `hops` deliveries (the first from the bench thread) and
    /// waits until the last one.
    fn lap(&mut self, host: &Host, hops: u64) {
        self.nodes[0].tell(Token(hops - 1)).expect("send");
        host.wait(&self.done);
        self.sent += hops;
    }

    /// Every token sent was handled exactly once.
    fn check(&self, host: &Host) {
        let handled: u64 = self.nodes.iter().map(|n| host.ask(n, Handled)).sum();
        assert_eq!(handled, self.sent, "tokens handled != tokens sent");
    }
}

/// `len` tokio tasks in a ring, linked by unbounded mpsc channels.
struct TokioRing {
    first: tmpsc::UnboundedSender<u64>,
    done: tmpsc::UnboundedReceiver<()>,
    /// Tokens each task has handled (a plain store of a local count per token).
    handled: Vec<Arc<AtomicU64>>,
    sent: u64,
}

impl TokioRing {
    fn new(rt: &Runtime, len: usize) -> Self {
        let (done_tx, done) = tmpsc::unbounded_channel();
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..len).map(|_| tmpsc::unbounded_channel()).unzip();
        let handled: Vec<Arc<AtomicU64>> = (0..len).map(|_| Arc::new(AtomicU64::new(0))).collect();
        for (i, mut rx) in rxs.into_iter().enumerate() {
            let next: tmpsc::UnboundedSender<u64> = txs[(i + 1) % len].clone();
            let done = done_tx.clone();
            let counter = handled[i].clone();
            rt.spawn(async move {
                let mut count = 0;
                while let Some(left) = rx.recv().await {
                    count += 1;
                    counter.store(count, Ordering::Relaxed);
                    if left == 0 {
                        done.send(()).expect("the bench is waiting");
                    } else {
                        next.send(left - 1).expect("token lost");
                    }
                }
            });
        }
        Self {
            first: txs[0].clone(),
            done,
            handled,
            sent: 0,
        }
    }

    fn lap(&mut self, rt: &Runtime, hops: u64) {
        self.first.send(hops - 1).expect("send");
        rt.block_on(self.done.recv()).expect("the ring is alive");
        self.sent += hops;
    }

    fn check(&self) {
        let handled: u64 = self.handled.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(handled, self.sent, "tokens handled != tokens sent");
    }
}

/// One airssys ring benchmark: each iteration sends `hops` tokens.
fn bench_air_ring(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    host: Host,
    len: usize,
    hops: u64,
) {
    let mut ring = AirRing::new(&host, len);
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                ring.lap(&host, hops);
            }
            let elapsed = start.elapsed();
            ring.check(&host);
            elapsed
        });
    });
}

/// The tokio baseline of [`bench_air_ring`].
fn bench_tokio_ring(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: Runtime,
    len: usize,
    hops: u64,
) {
    let mut ring = TokioRing::new(&rt, len);
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                ring.lap(&rt, hops);
            }
            let elapsed = start.elapsed();
            ring.check();
            elapsed
        });
    });
}

/// Ping-pong: one iteration is one round trip. A lap of `iters` round trips is one ball
/// bounced `2 * iters` times, so the per-lap cost (first send, final wake-up) is amortized.
fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong/same_thread");
    g.throughput(Throughput::Elements(1));
    bench_air_ping_pong(&mut g, "airssys_manual", Host::manual());
    bench_tokio_ping_pong(&mut g, "tokio_current_thread", current_thread());
    g.finish();

    let mut g = c.benchmark_group("ping_pong/2_workers");
    g.throughput(Throughput::Elements(1));
    bench_air_ping_pong(&mut g, "airssys_pool", Host::pool());
    bench_tokio_ping_pong(&mut g, "tokio_multi_thread", two_workers());
    g.finish();
}

fn bench_air_ping_pong(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    host: Host,
) {
    let mut ring = AirRing::new(&host, 2);
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            ring.lap(&host, 2 * iters);
            let elapsed = start.elapsed();
            ring.check(&host);
            elapsed
        });
    });
}

fn bench_tokio_ping_pong(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: Runtime,
) {
    let mut ring = TokioRing::new(&rt, 2);
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            ring.lap(&rt, 2 * iters);
            let elapsed = start.elapsed();
            ring.check();
            elapsed
        });
    });
}

/// The Savina thread ring: one iteration is a lap of [`RING_HOPS`] hops.
fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/same_thread");
    g.throughput(Throughput::Elements(RING_HOPS));
    bench_air_ring(&mut g, "airssys_manual", Host::manual(), RING, RING_HOPS);
    bench_tokio_ring(
        &mut g,
        "tokio_current_thread",
        current_thread(),
        RING,
        RING_HOPS,
    );
    g.finish();

    let mut g = c.benchmark_group("ring/2_workers");
    g.throughput(Throughput::Elements(RING_HOPS));
    bench_air_ring(&mut g, "airssys_pool", Host::pool(), RING, RING_HOPS);
    bench_tokio_ring(&mut g, "tokio_multi_thread", two_workers(), RING, RING_HOPS);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Fan-in
// ---------------------------------------------------------------------------------------------

/// Counts and sums `u64` messages; reports `(count, sum)` and stops after `expect` of them.
struct Sink {
    count: u64,
    sum: u64,
    expect: u64,
    done: mpsc::Sender<(u64, u64)>,
}

impl Actor for Sink {}

impl Handler<u64> for Sink {
    type Reply = ();
    fn handle(&mut self, value: u64, ctx: &mut Ctx<Self>) {
        self.count += 1;
        self.sum += value;
        if self.count == self.expect {
            self.done
                .send((self.count, self.sum))
                .expect("the bench is waiting");
            ctx.stop();
        }
    }
}

/// The `(count, sum)` every fan-in iteration must end with.
fn fan_in_expected(producers: usize) -> (u64, u64) {
    let n = producers as u64;
    (
        n * PER_PRODUCER,
        n * (PER_PRODUCER * (PER_PRODUCER - 1) / 2),
    )
}

/// `tell` that retries while the sender's arena pool is exhausted (the actor is behind).
fn tell_retrying(sink: &ActorRef<Sink>, mut value: u64) {
    loop {
        match sink.tell(value) {
            Ok(()) => return,
            Err(SendError::Full(v)) => {
                value = v;
                thread::yield_now();
            }
            Err(SendError::Dead(_)) => panic!("the sink stopped early"),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Producer threads started once and reused, so that their arena writers stay warm.
struct Producers {
    jobs: Vec<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Producers {
    fn new(n: usize) -> Self {
        let (jobs, threads) = (0..n)
            .map(|i| {
                let (tx, rx) = mpsc::channel::<Job>();
                let handle = thread::Builder::new()
                    .name(format!("producer-{i}"))
                    .spawn(move || rx.into_iter().for_each(|job| job()))
                    .expect("spawn a producer");
                (tx, handle)
            })
            .unzip();
        Self { jobs, threads }
    }

    /// Gives producer `i` the job `make(i)`; each job waits on `start` before sending.
    fn run(&self, start: &Arc<Barrier>, make: impl Fn(usize) -> Job) {
        for (i, jobs) in self.jobs.iter().enumerate() {
            let start = start.clone();
            let job = make(i);
            jobs.send(Box::new(move || {
                start.wait();
                job();
            }))
            .expect("producer alive");
        }
    }
}

impl Drop for Producers {
    fn drop(&mut self) {
        self.jobs.clear();
        for t in self.threads.drain(..) {
            t.join().expect("producer panicked");
        }
    }
}

/// Producer threads `tell` into one actor on `ThreadPool::new(2)`.
fn air_fan_in_pool(iters: u64, pool: &Host, producers: &Producers) -> Duration {
    let n = producers.jobs.len();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (tx, done) = mpsc::channel();
        let sink = pool
            .system()
            .spawn(Sink {
                count: 0,
                sum: 0,
                expect: n as u64 * PER_PRODUCER,
                done: tx,
            })
            .expect("spawn");
        let start = Arc::new(Barrier::new(n + 1));
        producers.run(&start, |_| {
            let sink = sink.clone();
            Box::new(move || (0..PER_PRODUCER).for_each(|v| tell_retrying(&sink, v)))
        });
        start.wait();
        let clock = Instant::now();
        let got = pool.wait(&done);
        total += clock.elapsed();
        assert_eq!(got, fan_in_expected(n), "(count, sum) of the messages");
    }
    total
}

/// Producer threads send into one tokio task on a 2-worker runtime.
fn tokio_fan_in_pool(iters: u64, rt: &Runtime, producers: &Producers) -> Duration {
    let n = producers.jobs.len();
    let expect = n as u64 * PER_PRODUCER;
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (tx, mut rx) = tmpsc::unbounded_channel::<u64>();
        let consumer = rt.spawn(async move {
            let (mut count, mut sum) = (0u64, 0u64);
            while count < expect {
                let Some(v) = rx.recv().await else { break };
                count += 1;
                sum += v;
            }
            (count, sum)
        });
        let start = Arc::new(Barrier::new(n + 1));
        producers.run(&start, |_| {
            let tx = tx.clone();
            Box::new(move || (0..PER_PRODUCER).for_each(|v| tx.send(v).expect("consumer alive")))
        });
        drop(tx);
        start.wait();
        let clock = Instant::now();
        let got = rt.block_on(consumer).expect("consumer task");
        total += clock.elapsed();
        assert_eq!(got, fan_in_expected(n), "(count, sum) of the messages");
    }
    total
}

fn fan_in(c: &mut Criterion) {
    let one = Producers::new(1);
    let four = Producers::new(PRODUCERS);

    let mut g = c.benchmark_group("fan_in/1_producer");
    g.throughput(Throughput::Elements(PER_PRODUCER));
    g.sampling_mode(SamplingMode::Flat);

    // Same thread: the bench thread sends everything, then the driver delivers it.
    let host = Host::manual();
    g.bench_function("airssys_manual_same_thread", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, done) = mpsc::channel();
                let sink = host
                    .system()
                    .spawn(Sink {
                        count: 0,
                        sum: 0,
                        expect: PER_PRODUCER,
                        done: tx,
                    })
                    .expect("spawn");
                let clock = Instant::now();
                for v in 0..PER_PRODUCER {
                    // PER_PRODUCER messages fit in the default 4 MiB arena pool.
                    sink.tell(v).expect("room in the arena pool");
                }
                let got = host.wait(&done);
                total += clock.elapsed();
                assert_eq!(got, fan_in_expected(1), "(count, sum) of the messages");
            }
            total
        });
    });
    let rt = current_thread();
    g.bench_function("tokio_current_thread_same_thread", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (elapsed, got) = rt.block_on(async {
                    let (tx, mut rx) = tmpsc::unbounded_channel::<u64>();
                    let consumer = tokio::spawn(async move {
                        let (mut count, mut sum) = (0u64, 0u64);
                        while count < PER_PRODUCER {
                            let Some(v) = rx.recv().await else { break };
                            count += 1;
                            sum += v;
                        }
                        (count, sum)
                    });
                    let clock = Instant::now();
                    for v in 0..PER_PRODUCER {
                        tx.send(v).expect("consumer alive");
                    }
                    let got = consumer.await.expect("consumer task");
                    (clock.elapsed(), got)
                });
                total += elapsed;
                assert_eq!(got, fan_in_expected(1), "(count, sum) of the messages");
            }
            total
        });
    });
    drop(rt);

    // A producer thread sends while two workers deliver.
    let pool = Host::pool();
    g.bench_function("airssys_pool", |b| {
        b.iter_custom(|iters| air_fan_in_pool(iters, &pool, &one));
    });
    drop(pool);
    let rt = two_workers();
    g.bench_function("tokio_multi_thread", |b| {
        b.iter_custom(|iters| tokio_fan_in_pool(iters, &rt, &one));
    });
    drop(rt);
    g.finish();

    let mut g = c.benchmark_group("fan_in/4_producers");
    g.throughput(Throughput::Elements(PRODUCERS as u64 * PER_PRODUCER));
    g.sampling_mode(SamplingMode::Flat);
    let pool = Host::pool();
    g.bench_function("airssys_pool", |b| {
        b.iter_custom(|iters| air_fan_in_pool(iters, &pool, &four));
    });
    drop(pool);
    let rt = two_workers();
    g.bench_function("tokio_multi_thread", |b| {
        b.iter_custom(|iters| tokio_fan_in_pool(iters, &rt, &four));
    });
    drop(rt);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Spawn
// ---------------------------------------------------------------------------------------------

/// One-message actors handled so far (airssys) and one-message tasks (tokio).
static AIR_ONE_SHOTS: AtomicU64 = AtomicU64::new(0);
static TOKIO_ONE_SHOTS: AtomicU64 = AtomicU64::new(0);

/// Handles one message, then stops.
struct OneShot;

impl Actor for OneShot {}

impl Handler<u64> for OneShot {
    type Reply = ();
    fn handle(&mut self, value: u64, ctx: &mut Ctx<Self>) {
        AIR_ONE_SHOTS.fetch_add(value, Ordering::Relaxed);
        ctx.stop();
    }
}

/// One iteration is one actor: spawned, sent one message, run, stopped. Actors are spawned
/// [`SPAWNS`] at a time, then the driver runs them all.
fn spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn");
    g.throughput(Throughput::Elements(1));

    let driver = ManualDriver::new(1);
    let system = driver.system().clone();
    g.bench_function("airssys_manual", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(SPAWNS);
                left -= batch;
                let before = AIR_ONE_SHOTS.load(Ordering::Relaxed);
                let clock = Instant::now();
                for _ in 0..batch {
                    let actor = system.spawn(OneShot).expect("spawn");
                    actor.tell(1).expect("send");
                }
                driver.run_until_idle();
                total += clock.elapsed();
                assert_eq!(AIR_ONE_SHOTS.load(Ordering::Relaxed) - before, batch);
                assert_eq!(system.stats().live, 0, "every actor has stopped");
            }
            total
        });
    });
    assert_eq!(system.stats().dead_letters, 0);
    drop(system);
    drop(driver);

    let rt = current_thread();
    g.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(SPAWNS);
                left -= batch;
                let before = TOKIO_ONE_SHOTS.load(Ordering::Relaxed);
                total += rt.block_on(async {
                    let clock = Instant::now();
                    for _ in 0..batch {
                        let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                        // Detached: the task ends after its one message.
                        drop(tokio::spawn(async move {
                            if let Ok(v) = rx.await {
                                TOKIO_ONE_SHOTS.fetch_add(v, Ordering::Relaxed);
                            }
                        }));
                        tx.send(1).expect("task alive");
                    }
                    // Let every task run (yield_now puts this task behind them).
                    while TOKIO_ONE_SHOTS.load(Ordering::Relaxed) - before < batch {
                        tokio::task::yield_now().await;
                    }
                    clock.elapsed()
                });
                assert_eq!(TOKIO_ONE_SHOTS.load(Ordering::Relaxed) - before, batch);
            }
            total
        });
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Memory per idle actor (printed, not timed)
// ---------------------------------------------------------------------------------------------

/// An actor with no state at all: what it costs is the runtime's alone.
struct Idle;

impl Actor for Idle {}

static AIR_IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);
static TOKIO_IDLE_STARTED: AtomicUsize = AtomicUsize::new(0);
static TOKIO_IDLE_HANDLED: AtomicUsize = AtomicUsize::new(0);

impl Handler<u8> for Idle {
    type Reply = ();
    fn handle(&mut self, _: u8, _ctx: &mut Ctx<Self>) {
        AIR_IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Spawned in batches, each driven to idle, so that run queues stay small and the count is
/// the actors' (tasks') own cost.
const IDLE_BATCH: usize = 1_000;

fn report(what: &str, heap: isize, rss: Option<(usize, usize)>) {
    let rss = rss.map_or_else(
        || "n/a".to_string(),
        |(a, b)| format!("{:.0}", (b as f64 - a as f64) / IDLE as f64),
    );
    println!(
        "memory/{what}: {IDLE} idle: {:.1} heap B each, {rss} RSS B each",
        heap as f64 / IDLE as f64
    );
}

fn memory(_c: &mut Criterion) {
    // airssys: ManualDriver, all on this thread (the allocator counts this thread only).
    let driver = ManualDriver::new(1);
    let mut actors = Vec::with_capacity(IDLE);
    let rss0 = rss_bytes();
    let ((), air_heap) = net_allocated(|| {
        for _ in 0..IDLE / IDLE_BATCH {
            for _ in 0..IDLE_BATCH {
                actors.push(driver.system().spawn(Idle).expect("spawn"));
            }
            driver.run_until_idle();
        }
    });
    let rss1 = rss_bytes();
    report("airssys_actor", air_heap, rss0.zip(rss1));
    // Every actor is alive and answers.
    assert_eq!(driver.system().stats().live as usize, IDLE);
    // (In batches: 100,000 queued messages would not fit in the sender's arena pool.)
    for batch in actors.chunks(IDLE_BATCH) {
        for a in batch {
            a.tell(1).expect("send");
        }
        driver.run_until_idle();
    }
    assert_eq!(AIR_IDLE_HANDLED.load(Ordering::Relaxed), IDLE);

    // tokio: current_thread runtime, all on this thread; tasks each wait on an mpsc receiver.
    let rt = current_thread();
    let mut senders = Vec::with_capacity(IDLE);
    let rss0 = rss_bytes();
    let ((), tokio_heap) = net_allocated(|| {
        rt.block_on(async {
            for batch in 1..=IDLE / IDLE_BATCH {
                for _ in 0..IDLE_BATCH {
                    let (tx, mut rx) = tmpsc::unbounded_channel::<u8>();
                    drop(tokio::spawn(async move {
                        TOKIO_IDLE_STARTED.fetch_add(1, Ordering::Relaxed);
                        while rx.recv().await.is_some() {
                            TOKIO_IDLE_HANDLED.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                    senders.push(tx);
                }
                while TOKIO_IDLE_STARTED.load(Ordering::Relaxed) < batch * IDLE_BATCH {
                    tokio::task::yield_now().await;
                }
            }
        });
    });
    let rss1 = rss_bytes();
    report("tokio_task", tokio_heap, rss0.zip(rss1));
    rt.block_on(async {
        for tx in &senders {
            tx.send(1).expect("task alive");
        }
        while TOKIO_IDLE_HANDLED.load(Ordering::Relaxed) < IDLE {
            tokio::task::yield_now().await;
        }
    });
    println!(
        "memory/ratio: airssys heap = {:.2} x tokio heap",
        air_heap as f64 / tokio_heap as f64
    );
    black_box((actors, senders));
}

// ---------------------------------------------------------------------------------------------
// Ask from outside the pool
// ---------------------------------------------------------------------------------------------

/// Answers `n` with `n + 1`.
struct Echo;

impl Actor for Echo {}

impl Handler<u64> for Echo {
    type Reply = u64;
    fn handle(&mut self, n: u64, _: &mut Ctx<Self>) -> u64 {
        n + 1
    }
}

/// The bench thread (outside the pool) asks an actor on 2 workers and blocks for the reply,
/// one request at a time: the latency a service thread sees. With the default idle spins the
/// worker that answered is still looking for work when the next request comes; with
/// `idle_spins(0)` it has gone to sleep and every request pays a wake-up. The tokio baseline:
/// `block_on` of a request over an mpsc channel to a task on a 2-worker runtime, answered on
/// a oneshot.
fn ask_from_outside(c: &mut Criterion) {
    let mut g = c.benchmark_group("ask_from_outside");
    g.throughput(Throughput::Elements(1));
    for (name, spins) in [
        ("airssys_pool", None),
        ("airssys_pool_idle_spins_0", Some(0)),
    ] {
        let mut builder = ThreadPool::builder().threads(2);
        if let Some(spins) = spins {
            builder = builder.idle_spins(spins);
        }
        let pool = builder.build().expect("pool");
        let echo = pool.system().spawn(Echo).expect("spawn");
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                let reply = echo.ask_timeout(n, WAIT).expect("ask");
                assert_eq!(reply, n + 1, "a wrong reply");
                n += 1;
            });
        });
    }

    let rt = two_workers();
    let (tx, mut rx) = tmpsc::unbounded_channel::<(u64, tokio::sync::oneshot::Sender<u64>)>();
    rt.spawn(async move {
        while let Some((n, reply)) = rx.recv().await {
            let _ = reply.send(n + 1);
        }
    });
    let mut n = 0u64;
    g.bench_function("tokio_multi_thread", |b| {
        b.iter(|| {
            let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
            tx.send((n, reply_tx)).expect("the echo task is running");
            let reply = rt.block_on(reply_rx).expect("a reply");
            assert_eq!(reply, n + 1, "a wrong reply");
            n += 1;
        });
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = memory, ping_pong, fan_in, spawn, ring, ask_from_outside
}
criterion_main!(benches);
