//! [`Sleepers`] with real threads: the burst rule (a woken worker counts as searching, so a
//! burst of schedules wakes one sleeper and the others are woken one at a time, each by the
//! previous one when it finds work). The interleavings are the loom models' job
//! (`loom_sleepers.rs`); this checks the counts a pool sees, deterministically: each woken
//! worker holds its search open until the test lets it go.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use airssys_rt_mailbox::{Sleepers, Slept};

#[test]
fn a_burst_of_schedules_wakes_one_sleeper_and_each_woken_worker_wakes_the_next() {
    const WORKERS: usize = 3;
    let sleepers = Arc::new(Sleepers::new());
    let (woken_tx, woken_rx) = mpsc::channel();
    let mut releases = Vec::new();
    let mut handles = Vec::new();
    for i in 0..WORKERS {
        let (sleepers, woken_tx) = (sleepers.clone(), woken_tx.clone());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        releases.push(release_tx);
        handles.push(thread::spawn(move || {
            sleepers.start_searching();
            // The last look before sleeping finds nothing: the test's schedules stand for
            // tasks but queue none, so a worker leaves its sleep only by a wake-up, and the
            // counts below are the protocol's alone. (Were the look to see the first
            // schedule's task, a worker still on its way to sleep would take it and, as the
            // last searcher, wake another: correct, but not the count this test pins down.)
            let slept = sleepers.sleep_unless(|| false);
            woken_tx.send((i, slept)).unwrap();
            if slept == Slept::Woken {
                // Searching (its waker counted it) until the test lets it find its work.
                release_rx.recv().unwrap();
                sleepers.stop_searching_with_work();
            }
        }));
    }
    // All asleep: each publishes itself as a sleeper, then stops searching, under the lock it
    // holds until it waits (so a wake-up cannot come before its wait).
    while sleepers.asleep() < WORKERS || sleepers.searching() > 0 {
        thread::yield_now();
    }

    // The burst: the first schedule wakes a sleeper; the rest see it searching.
    assert!(
        sleepers.notify_pushed(),
        "the first schedule wakes a sleeper"
    );
    for _ in 0..10 {
        assert!(
            !sleepers.notify_pushed(),
            "a schedule woke a second sleeper while the first woken worker had not looked"
        );
    }
    let (first, slept) = woken_rx.recv().unwrap();
    assert_eq!(slept, Slept::Woken);
    assert_eq!(sleepers.asleep(), WORKERS - 1);

    // Each woken worker, finding work as the last searcher, wakes the next sleeper.
    let mut woken = vec![first];
    while woken.len() < WORKERS {
        releases[*woken.last().unwrap()].send(()).unwrap();
        let (next, slept) = woken_rx.recv().unwrap();
        assert_eq!(slept, Slept::Woken);
        assert!(!woken.contains(&next), "worker {next} was woken twice");
        woken.push(next);
    }
    assert_eq!(sleepers.asleep(), 0);
    releases[*woken.last().unwrap()].send(()).unwrap();
    for h in handles {
        h.join().unwrap();
    }
    // Nobody left to wake, and nobody searching: a schedule now finds no sleeper.
    assert!(!sleepers.notify_pushed());
}
