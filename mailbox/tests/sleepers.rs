//! [`Sleepers`] with real threads: the burst rule (a woken worker counts as searching, so a
//! burst of schedules wakes one sleeper and the others are woken one at a time, each by the
//! previous one when it finds work). The interleavings are the loom models' job
//! (`loom_sleepers.rs`); this checks the counts a pool sees, deterministically: each woken
//! worker holds its search open until the test lets it go.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use airssys_rt_mailbox::{Sleepers, Slept};

#[test]
fn a_burst_of_schedules_wakes_one_sleeper_and_each_woken_worker_wakes_the_next() {
    const WORKERS: usize = 3;
    let sleepers = Arc::new(Sleepers::new());
    let queued = Arc::new(AtomicBool::new(false));
    let (woken_tx, woken_rx) = mpsc::channel();
    let mut releases = Vec::new();
    let mut handles = Vec::new();
    for i in 0..WORKERS {
        let (sleepers, queued, woken_tx) = (sleepers.clone(), queued.clone(), woken_tx.clone());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        releases.push(release_tx);
        handles.push(thread::spawn(move || {
            sleepers.start_searching();
            let slept = sleepers.sleep_unless(|| queued.load(Ordering::Acquire));
            woken_tx.send((i, slept)).unwrap();
            if slept == Slept::Woken {
                // Searching (its waker counted it) until the test lets it find its work.
                release_rx.recv().unwrap();
                sleepers.stop_searching_with_work();
            }
        }));
    }
    while sleepers.asleep() < WORKERS {
        thread::yield_now();
    }

    // The burst: the first schedule wakes a sleeper; the rest see it searching.
    queued.store(true, Ordering::Release);
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
