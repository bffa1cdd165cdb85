//! Timers on virtual time (ManualDriver) and real time (ThreadPool).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airssys_rt::{Actor, AskError, Ctx, Handler, ManualDriver, ThreadPool};

struct Ticks(Arc<AtomicU64>);
impl Actor for Ticks {}

#[derive(Clone)]
struct Tick;
impl Handler<Tick> for Ticks {
    type Reply = u64;
    fn handle(&mut self, _: Tick, _: &mut Ctx<Self>) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Blocks its handler until the test says so: the reply comes only after that.
struct Hold(std::sync::mpsc::Receiver<()>);
impl Handler<Hold> for Ticks {
    type Reply = ();
    fn handle(&mut self, Hold(release): Hold, _: &mut Ctx<Self>) {
        let _ = release.recv();
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn send_after_fires_only_when_virtual_time_reaches_it() {
    let d = ManualDriver::new(1);
    let n = Arc::new(AtomicU64::new(0));
    let t = d.system().spawn(Ticks(n.clone())).unwrap();
    t.send_after(s(10), Tick);
    d.run_until_idle();
    assert_eq!(d.advance(s(9)), 0);
    d.run_until_idle();
    assert_eq!(n.load(Ordering::SeqCst), 0, "fired early");
    assert_eq!(d.advance(s(1)), 1);
    d.run_until_idle();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(d.now(), s(10));
    assert_eq!(d.system().now(), s(10));
}

#[test]
fn cancelled_timers_do_not_fire() {
    let d = ManualDriver::new(2);
    let n = Arc::new(AtomicU64::new(0));
    let t = d.system().spawn(Ticks(n.clone())).unwrap();
    let timer = t.send_after(s(5), Tick);
    assert!(timer.cancel());
    assert!(!timer.cancel(), "second cancel reports it was cancelled");
    d.advance(s(10));
    d.run_until_idle();
    assert_eq!(n.load(Ordering::SeqCst), 0);
}

#[test]
fn intervals_tick_until_cancelled_or_the_actor_stops() {
    let d = ManualDriver::new(3);
    let n = Arc::new(AtomicU64::new(0));
    let t = d.system().spawn(Ticks(n.clone())).unwrap();
    let every = t.send_interval(s(2), Tick);
    for _ in 0..5 {
        d.advance(s(2));
        d.run_until_idle();
    }
    assert_eq!(n.load(Ordering::SeqCst), 5);
    every.cancel();
    d.advance(s(20));
    d.run_until_idle();
    assert_eq!(n.load(Ordering::SeqCst), 5, "ticked after cancel");

    let m = Arc::new(AtomicU64::new(0));
    let u = d.system().spawn(Ticks(m.clone())).unwrap();
    u.send_interval(s(1), Tick);
    d.advance(s(3));
    d.run_until_idle();
    u.kill();
    d.run_until_idle();
    d.advance(s(1));
    assert_eq!(d.pending_timers(), 0, "a dead actor's interval ends");
    assert_eq!(m.load(Ordering::SeqCst), 3);
}

#[test]
fn ask_within_times_out_on_virtual_time() {
    let d = ManualDriver::new(4);
    let t = d
        .system()
        .spawn(Ticks(Arc::new(AtomicU64::new(0))))
        .unwrap();
    d.run_until_idle();
    // Nobody runs the actor before the deadline: the ask times out in virtual time.
    let reply = t.ask_within(Tick, s(5));
    d.advance(s(4));
    assert_eq!(reply.try_take(), None, "timed out early");
    d.advance(s(1));
    assert_eq!(reply.try_take(), Some(Err(AskError::Timeout)));
    d.run_until_idle(); // the late reply is discarded
                        // A reply that comes in time wins over the timer.
    let quick = t.ask_within(Tick, s(5));
    d.run_until_idle();
    d.advance(s(10));
    assert_eq!(
        quick.try_take(),
        Some(Ok(2)),
        "the timed-out ask was still handled (1), then this one (2)"
    );
}

#[test]
fn real_time_timers_fire_on_the_thread_pool() {
    let pool = ThreadPool::new(2);
    let n = Arc::new(AtomicU64::new(0));
    let t = pool.system().spawn(Ticks(n.clone())).unwrap();
    t.send_after(Duration::from_millis(5), Tick);
    let every = t.send_interval(Duration::from_millis(1), Tick);
    let deadline = Instant::now() + Duration::from_secs(30);
    while n.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "timers did not fire");
        std::thread::sleep(Duration::from_millis(1));
    }
    every.cancel();
    let (release, hold) = std::sync::mpsc::channel();
    let reply = t.ask_within(Hold(hold), Duration::from_millis(10));
    // The handler is blocked until we release it, so the timer must win.
    assert_eq!(reply.wait(Duration::from_secs(30)), Err(AskError::Timeout));
    release.send(()).unwrap();
}
