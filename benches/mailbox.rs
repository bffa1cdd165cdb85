//! Message throughput of the airssys mailbox next to channel baselines, in one bench run.
//!
//! * `push_pop/1_producer`: one thread pushes a batch of [`BATCH`] messages, then pops them
//!   all. The airssys variants recycle a pre-allocated pool of [`Boxed`] nodes, so the timed
//!   loop measures the queue, not `malloc`. Baselines send `u64` by value.
//! * `push_pop/4_producers`: [`PRODUCERS`] threads each send [`PER_PRODUCER`] messages to one
//!   consumer thread; the consumer times the whole transfer (from a start barrier to the last
//!   message). The airssys nodes are allocated per producer before the clock starts, and the
//!   consumer stashes received nodes in a pre-reserved `Vec` that is dropped after the clock
//!   stops, so neither allocation nor free is timed (the arena chunks of a later issue make
//!   that the real cost model too).
//!
//! Caveat: the `4_producers` group runs 5 threads; on a 2-core machine they are
//! oversubscribed, so its numbers depend heavily on how each consumer waits (the channels
//! park, the raw queue yields, the mailbox parks on its token hand-off channel).

use std::sync::mpsc;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use std::hint::black_box;

use airssys_rt_mailbox::{Boxed, Mailbox, MpscQueue, Pop, Received, RunToken};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

/// Messages per iteration in the single-thread group.
const BATCH: usize = 1024;
/// Producer threads in the multi-thread group.
const PRODUCERS: usize = 4;
/// Messages each producer sends in the multi-thread group.
const PER_PRODUCER: usize = 50_000;
/// Messages the consumer receives per transfer in the multi-thread group.
const TOTAL: usize = PRODUCERS * PER_PRODUCER;

type Node = Boxed<u64>;

fn pool(n: usize) -> Vec<Node> {
    (0..n as u64).map(Boxed::new).collect()
}

// ---------------------------------------------------------------------------------------------
// 1 producer: push BATCH, then pop BATCH, on one thread.
// ---------------------------------------------------------------------------------------------

fn one_producer(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_pop/1_producer");
    g.throughput(Throughput::Elements(BATCH as u64));

    g.bench_function("airssys_mpsc_queue", |b| {
        let queue: MpscQueue<Node> = MpscQueue::new();
        let mut nodes = pool(BATCH);
        b.iter(|| {
            for node in nodes.drain(..) {
                queue.push(node);
            }
            let mut sum = 0u64;
            // SAFETY: this thread is the queue's only consumer.
            while let Pop::Data(node) = unsafe { queue.pop() } {
                sum += *node;
                nodes.push(node);
            }
            debug_assert_eq!(nodes.len(), BATCH);
            black_box(sum)
        });
    });

    g.bench_function("airssys_mailbox", |b| {
        let mailbox: Mailbox<Node> = Mailbox::unbounded();
        let mut nodes = pool(BATCH);
        b.iter(|| {
            let mut token = None;
            for node in nodes.drain(..) {
                if let Some(t) = mailbox.try_push(node).expect("mailbox is open") {
                    token = Some(t);
                }
            }
            let mut run = mailbox.begin_run(token.expect("the first push schedules"));
            let mut sum = 0u64;
            while let Some(Received::User(node)) = run.pop() {
                sum += *node;
                nodes.push(node);
            }
            let again = run.finish(false);
            assert!(
                again.is_none(),
                "single thread: nothing arrived during the run"
            );
            debug_assert_eq!(nodes.len(), BATCH);
            black_box(sum)
        });
    });

    g.bench_function("std_mpsc", |b| {
        let (tx, rx) = mpsc::channel::<u64>();
        b.iter(|| {
            for i in 0..BATCH as u64 {
                tx.send(i).unwrap();
            }
            let mut sum = 0u64;
            while let Ok(v) = rx.try_recv() {
                sum += v;
            }
            black_box(sum)
        });
    });

    g.bench_function("crossbeam_unbounded", |b| {
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        b.iter(|| {
            for i in 0..BATCH as u64 {
                tx.send(i).unwrap();
            }
            let mut sum = 0u64;
            while let Ok(v) = rx.try_recv() {
                sum += v;
            }
            black_box(sum)
        });
    });

    g.bench_function("tokio_unbounded", |b| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        b.iter(|| {
            for i in 0..BATCH as u64 {
                tx.send(i).unwrap();
            }
            let mut sum = 0u64;
            while let Ok(v) = rx.try_recv() {
                sum += v;
            }
            black_box(sum)
        });
    });

    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 4 producers -> 1 consumer.
// ---------------------------------------------------------------------------------------------

/// Runs one transfer `iters` times and sums the consumer-measured durations.
///
/// `setup` builds fresh per-iteration state (outside the clock); `run` receives the state and
/// a start barrier shared by the producers and the consumer, and returns the consumer's time.
fn transfer<S>(
    iters: u64,
    mut setup: impl FnMut() -> S,
    mut run: impl FnMut(S, &Barrier) -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let state = setup();
        let barrier = Barrier::new(PRODUCERS + 1);
        total += run(state, &barrier);
    }
    total
}

fn four_producers(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_pop/4_producers");
    g.throughput(Throughput::Elements(TOTAL as u64));
    g.sampling_mode(SamplingMode::Flat);

    g.bench_function("airssys_mpsc_queue", |b| {
        b.iter_custom(|iters| {
            transfer(
                iters,
                || {
                    let per: Vec<Vec<Node>> = (0..PRODUCERS).map(|_| pool(PER_PRODUCER)).collect();
                    (MpscQueue::<Node>::new(), per, Vec::with_capacity(TOTAL))
                },
                |(queue, per, mut got), barrier| {
                    let elapsed = thread::scope(|s| {
                        for nodes in per {
                            let queue = &queue;
                            s.spawn(move || {
                                barrier.wait();
                                for node in nodes {
                                    queue.push(node);
                                }
                            });
                        }
                        let got = &mut got;
                        let queue = &queue;
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            while got.len() < TOTAL {
                                // SAFETY: this thread is the queue's only consumer.
                                match unsafe { queue.pop() } {
                                    Pop::Data(node) => got.push(node),
                                    // No notification in the raw queue: give the CPU to the
                                    // producers (the machine is oversubscribed).
                                    Pop::Empty | Pop::Inconsistent => thread::yield_now(),
                                }
                            }
                            start.elapsed()
                        })
                        .join()
                        .unwrap()
                    });
                    assert_eq!(got.len(), TOTAL);
                    drop(got); // after the clock
                    elapsed
                },
            )
        });
    });

    g.bench_function("airssys_mailbox", |b| {
        b.iter_custom(|iters| {
            transfer(
                iters,
                || {
                    let per: Vec<Vec<Node>> = (0..PRODUCERS).map(|_| pool(PER_PRODUCER)).collect();
                    // A producer whose push returns the RunToken hands it to the consumer here
                    // (the stand-in for an executor's run queue). Dropping it would strand the
                    // mailbox forever.
                    let (token_tx, token_rx) = crossbeam_channel::unbounded::<RunToken>();
                    (
                        Mailbox::<Node>::unbounded(),
                        per,
                        token_tx,
                        token_rx,
                        Vec::with_capacity(TOTAL),
                    )
                },
                |(mailbox, per, token_tx, token_rx, mut got), barrier| {
                    let (elapsed, pending) = thread::scope(|s| {
                        for nodes in per {
                            let mailbox = &mailbox;
                            let token_tx = token_tx.clone();
                            s.spawn(move || {
                                barrier.wait();
                                for node in nodes {
                                    if let Some(token) = mailbox.try_push(node).expect("open") {
                                        token_tx.send(token).expect("consumer alive");
                                    }
                                }
                            });
                        }
                        let got = &mut got;
                        let mailbox = &mailbox;
                        let token_rx = &token_rx;
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            let mut pending: Option<RunToken> = None;
                            while got.len() < TOTAL {
                                // Run our own reschedule token if `finish` gave one, else park
                                // until a producer hands one over.
                                let token = match pending.take() {
                                    Some(t) => t,
                                    None => token_rx
                                        .recv_timeout(Duration::from_secs(10))
                                        .expect("lost wake-up: no RunToken within 10 s"),
                                };
                                let mut run = mailbox.begin_run(token);
                                while let Some(msg) = run.pop() {
                                    match msg {
                                        Received::User(node) => got.push(node),
                                        Received::System(_) => unreachable!("no signals sent"),
                                    }
                                }
                                pending = run.finish(false);
                            }
                            (start.elapsed(), pending)
                        })
                        .join()
                        .unwrap()
                    });
                    assert_eq!(got.len(), TOTAL);
                    // Every producer has returned. A producer may have notified after the
                    // consumer popped its message, so one token can still be pending (ours or
                    // in the channel). Run it: no token is dropped, and the mailbox ends idle.
                    for t in pending.into_iter().chain(token_rx.try_iter()) {
                        let mut run = mailbox.begin_run(t);
                        assert!(run.pop().is_none());
                        assert!(run.finish(false).is_none());
                    }
                    drop(got); // after the clock
                    elapsed
                },
            )
        });
    });

    g.bench_function("std_mpsc", |b| {
        b.iter_custom(|iters| {
            transfer(
                iters,
                || (),
                |(), barrier| {
                    let (tx, rx) = mpsc::channel::<u64>();
                    thread::scope(|s| {
                        for _ in 0..PRODUCERS {
                            let tx = tx.clone();
                            s.spawn(move || {
                                barrier.wait();
                                for i in 0..PER_PRODUCER as u64 {
                                    tx.send(i).unwrap();
                                }
                            });
                        }
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            let mut sum = 0u64;
                            for _ in 0..TOTAL {
                                sum += rx.recv().unwrap();
                            }
                            let elapsed = start.elapsed();
                            black_box(sum);
                            elapsed
                        })
                        .join()
                        .unwrap()
                    })
                },
            )
        });
    });

    g.bench_function("crossbeam_unbounded", |b| {
        b.iter_custom(|iters| {
            transfer(
                iters,
                || (),
                |(), barrier| {
                    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
                    thread::scope(|s| {
                        for _ in 0..PRODUCERS {
                            let tx = tx.clone();
                            s.spawn(move || {
                                barrier.wait();
                                for i in 0..PER_PRODUCER as u64 {
                                    tx.send(i).unwrap();
                                }
                            });
                        }
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            let mut sum = 0u64;
                            for _ in 0..TOTAL {
                                sum += rx.recv().unwrap();
                            }
                            let elapsed = start.elapsed();
                            black_box(sum);
                            elapsed
                        })
                        .join()
                        .unwrap()
                    })
                },
            )
        });
    });

    g.bench_function("tokio_unbounded", |b| {
        b.iter_custom(|iters| {
            transfer(
                iters,
                || (),
                |(), barrier| {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                    thread::scope(|s| {
                        for _ in 0..PRODUCERS {
                            let tx = tx.clone();
                            s.spawn(move || {
                                barrier.wait();
                                for i in 0..PER_PRODUCER as u64 {
                                    tx.send(i).unwrap();
                                }
                            });
                        }
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            let mut sum = 0u64;
                            // Outside any runtime, `blocking_recv` parks the thread like the
                            // other channels' `recv`.
                            for _ in 0..TOTAL {
                                sum += rx.blocking_recv().unwrap();
                            }
                            let elapsed = start.elapsed();
                            black_box(sum);
                            elapsed
                        })
                        .join()
                        .unwrap()
                    })
                },
            )
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
    targets = one_producer, four_producers
}
criterion_main!(benches);
