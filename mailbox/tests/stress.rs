//! Multi-thread stress: 4 producers x 200,000 messages into one mailbox, consumed by runs on
//! one consumer thread. Checks the exact count and per-producer order, and that the mailbox
//! ends idle with nothing left.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use airssys_rt_mailbox::{Boxed, Mailbox, Received, RunToken};

const PRODUCERS: usize = 4;
const PER_PRODUCER: u32 = 200_000;
const BUDGET: usize = 128;

#[test]
fn four_producers_exact_counts_and_per_producer_order() {
    let mb: Arc<Mailbox<Boxed<(usize, u32)>>> = Arc::new(Mailbox::unbounded());
    // Tokens go to the consumer thread, whoever got them (a one-thread host).
    let (token_tx, token_rx) = mpsc::channel::<RunToken>();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (mb, tx) = (mb.clone(), token_tx.clone());
            thread::spawn(move || {
                for seq in 0..PER_PRODUCER {
                    if let Some(token) = mb.try_push(Boxed::new((p, seq))).unwrap() {
                        tx.send(token).unwrap();
                    }
                }
            })
        })
        .collect();
    drop(token_tx);

    let mut next = [0u32; PRODUCERS];
    let mut received = 0u64;
    // Ends when every producer is done and no token is left in flight.
    while let Ok(mut token) = token_rx.recv() {
        loop {
            let mut run = mb.begin_run(token);
            let mut handled = 0;
            while handled < BUDGET {
                match run.pop() {
                    Some(Received::User(m)) => {
                        let (p, seq) = *m;
                        assert_eq!(seq, next[p], "producer {p}: out of order or lost");
                        next[p] += 1;
                        handled += 1;
                        received += 1;
                    }
                    Some(Received::System(_)) => unreachable!(),
                    None => break,
                }
            }
            match run.finish(handled == BUDGET) {
                Some(t) => token = t,
                None => break,
            }
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(received, PRODUCERS as u64 * PER_PRODUCER as u64);
    assert_eq!(next, [PER_PRODUCER; PRODUCERS]);
    assert_eq!(mb.state().load(), 0, "no wake-up left over");
    assert!(!mb.is_scheduled(), "ends idle");
    assert!(
        mb.notify().is_some(),
        "idle and empty: a notify schedules again"
    );
}
