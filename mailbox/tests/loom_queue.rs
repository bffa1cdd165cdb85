//! Loom model (a): the intrusive Vyukov queue with 2 producers and 1 consumer.
//!
//! Checks FIFO per producer, no loss, no duplicate, and that each payload (written through a
//! loom `UnsafeCell` before the push) is visible to the consumer without a data race.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_queue`
#![cfg(loom)]

use airssys_rt_mailbox::{Boxed, MpscQueue, Pop};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// (producer, sequence number, payload written after creation)
type Msg = Boxed<(usize, usize, UnsafeCell<u64>)>;

fn msg(producer: usize, seq: usize) -> Msg {
    let m = Boxed::new((producer, seq, UnsafeCell::new(0)));
    // Written after the node exists and before the push: only the queue's Release/Acquire
    // pair makes it visible to the consumer.
    // SAFETY: the node is not pushed yet: this thread is its only user.
    m.2.with_mut(|p| unsafe { *p = (producer * 100 + seq) as u64 });
    m
}

#[test]
fn vyukov_2p1c_fifo_no_loss_payload_visible() {
    loom::model(|| {
        let queue: Arc<MpscQueue<Msg>> = Arc::new(MpscQueue::new());
        // Producer 0 sends two messages (FIFO is checked between them), producer 1 sends one.
        let plan = [2usize, 1];
        let handles: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(p, &n)| {
                let q = queue.clone();
                thread::spawn(move || {
                    for seq in 0..n {
                        q.push(msg(p, seq));
                    }
                })
            })
            .collect();

        let total: usize = plan.iter().sum();
        let mut next_seq = [0usize; 2];
        let mut received = 0;
        while received < total {
            // SAFETY: this thread is the only consumer.
            match unsafe { queue.pop() } {
                Pop::Data(m) => {
                    let (p, seq) = (m.0, m.1);
                    assert_eq!(seq, next_seq[p], "FIFO violated for producer {p}");
                    next_seq[p] += 1;
                    // SAFETY: popped, so the producer's write happened-before (what loom checks).
                    let payload = m.2.with(|ptr| unsafe { *ptr });
                    assert_eq!(payload, (p * 100 + seq) as u64, "payload not visible");
                    received += 1;
                }
                Pop::Empty | Pop::Inconsistent => thread::yield_now(),
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        // SAFETY: single consumer. No duplicates: nothing is left after `total` messages.
        assert!(matches!(unsafe { queue.pop() }, Pop::Empty));
        assert_eq!(next_seq, plan);
    });
}
