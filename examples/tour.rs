//! A tour of airssys-rt: `cargo run --release --example tour`.
//!
//! Spawns ten thousand actors on the built-in thread pool, sends them plain and archived
//! (zero-copy) messages, asks one of them, finds one by name, lets one crash and watches the
//! crash arrive as an exit reason, and measures a ping-pong round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airssys_rt::{
    Actor, ActorId, ActorRef, Archived, Ctx, ExitReason, Handler, MonitorRef, ThreadPool,
};

/// A counter. Plain messages: `Add` (moved, not serialized) and `Get` (an ask).
struct Counter {
    total: u64,
    grand_total: Arc<AtomicU64>,
}

impl Actor for Counter {
    /// Archived messages arrive here, read in place in the sender's arena chunk.
    fn handle_archived(&mut self, ctx: &mut Ctx<Self>, msg: Archived<'_>) {
        if let Some(deposit) = msg.get::<Deposit>() {
            self.total += deposit.amount.to_native();
            self.grand_total
                .fetch_add(deposit.amount.to_native(), Ordering::Relaxed);
        } else {
            ctx.dead_letter();
        }
    }
}

/// A plain message.
struct Add(u64);
impl Handler<Add> for Counter {
    type Reply = ();
    fn handle(&mut self, Add(n): Add, _ctx: &mut Ctx<Self>) {
        self.total += n;
        self.grand_total.fetch_add(n, Ordering::Relaxed);
    }
}

/// An archived message: serialized once into the sender's arena, never copied.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Deposit {
    amount: u64,
}
airssys_rt::message!(Deposit);

struct Get;
impl Handler<Get> for Counter {
    type Reply = u64;
    fn handle(&mut self, _: Get, _ctx: &mut Ctx<Self>) -> u64 {
        self.total
    }
}

struct Crash;
impl Handler<Crash> for Counter {
    type Reply = ();
    fn handle(&mut self, _: Crash, _ctx: &mut Ctx<Self>) {
        panic!("counter {} hit a bug", self.total);
    }
}

/// Watches actors and reports how they ended.
struct Watcher {
    seen: Arc<Mutex<Vec<(ActorId, ExitReason)>>>,
}
impl Actor for Watcher {
    fn handle_down(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _m: MonitorRef,
        from: ActorId,
        reason: ExitReason,
    ) {
        self.seen.lock().unwrap().push((from, reason));
    }
}
struct Watch(airssys_rt::Pid);
impl Handler<Watch> for Watcher {
    type Reply = ();
    fn handle(&mut self, Watch(pid): Watch, ctx: &mut Ctx<Self>) {
        ctx.monitor(&pid);
    }
}

/// Ping-pong: each ball is bounced back until `left` reaches zero, then the ask is answered.
struct Player {
    partner: Option<ActorRef<Player>>,
}
impl Actor for Player {}
struct Serve(
    ActorRef<Player>,
    u64,
    Arc<Mutex<Option<std::sync::mpsc::Sender<()>>>>,
);
impl Handler<Serve> for Player {
    type Reply = ();
    fn handle(&mut self, Serve(from, left, done): Serve, ctx: &mut Ctx<Self>) {
        if left == 0 {
            if let Some(tx) = done.lock().unwrap().take() {
                let _ = tx.send(());
            }
            return;
        }
        let partner = self.partner.get_or_insert(from).clone();
        let _ = partner.tell(Serve(ctx.myself(), left - 1, done));
    }
}

fn main() {
    const ACTORS: usize = 10_000;
    const WAIT: Duration = Duration::from_secs(30);
    let pool = ThreadPool::with_available_parallelism();
    let system = pool.system();
    println!(
        "airssys-rt tour on a {}-thread pool",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Spawn many actors.
    let grand_total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let counters: Vec<ActorRef<Counter>> = (0..ACTORS)
        .map(|_| {
            system
                .spawn(Counter {
                    total: 0,
                    grand_total: grand_total.clone(),
                })
                .expect("spawn")
        })
        .collect();
    println!("spawned {ACTORS} actors in {:?}", start.elapsed());

    // 2. Plain and archived messages to every actor.
    let start = Instant::now();
    for (i, c) in counters.iter().enumerate() {
        c.tell(Add(1)).expect("plain send");
        c.tell_archived(Deposit {
            amount: i as u64 % 3,
        })
        .expect("archived send");
    }
    let expected: u64 = ACTORS as u64 + (0..ACTORS as u64).map(|i| i % 3).sum::<u64>();
    while grand_total.load(Ordering::Relaxed) < expected {
        assert!(start.elapsed() < WAIT, "messages did not arrive");
        std::thread::yield_now();
    }
    println!(
        "{} plain + {} archived messages handled in {:?} (sum {})",
        ACTORS,
        ACTORS,
        start.elapsed(),
        grand_total.load(Ordering::Relaxed)
    );

    // 3. An ask, and a name lookup.
    system
        .register("counter-42", &counters[42].pid())
        .expect("register");
    let found = system.whereis("counter-42").expect("the name resolves");
    println!("whereis(\"counter-42\") = {:?}", found);
    let total = counters[42].ask_timeout(Get, WAIT).expect("ask");
    println!("ask(counter-42, Get) = {total}");

    // 4. A crash: caught, turned into an exit reason, reported to the monitor.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watcher = system.spawn(Watcher { seen: seen.clone() }).expect("spawn");
    watcher.tell(Watch(counters[7].pid())).expect("watch");
    std::thread::sleep(Duration::from_millis(50));
    counters[7].tell(Crash).expect("send");
    let start = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < WAIT, "no down notification");
        std::thread::yield_now();
    }
    let (who, why) = seen.lock().unwrap()[0].clone();
    println!("monitor saw {who} exit: {why}  (the runtime keeps going)");
    println!(
        "counter-7 is alive: {}; counter-8 answers: {:?}",
        counters[7].is_alive(),
        counters[8].ask_timeout(Get, WAIT)
    );

    // 5. Ping-pong round trips between two actors.
    let rounds = 200_000u64;
    let a = system.spawn(Player { partner: None }).expect("spawn");
    let b = system.spawn(Player { partner: None }).expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    a.tell(Serve(b.clone(), rounds * 2, Arc::new(Mutex::new(Some(tx)))))
        .expect("serve");
    rx.recv_timeout(WAIT).expect("ping-pong finished");
    let elapsed = start.elapsed();
    println!(
        "ping-pong: {rounds} round trips in {elapsed:?} ({:.0} ns per round trip, {:.1} M messages/s)",
        elapsed.as_nanos() as f64 / rounds as f64,
        (rounds * 2) as f64 / elapsed.as_secs_f64() / 1e6
    );

    let stats = system.stats();
    println!(
        "stats: {} live, {} spawned, {} crashed, {} panics caught, {} dead letters",
        stats.live, stats.spawned, stats.crashed, stats.panics, stats.dead_letters
    );
}
