//! Two actors bounce a ball back and forth:
//!
//! ```text
//! cargo run --release --example ping_pong
//! ```
//!
//! The same two actors are run twice: on a [`ManualDriver`] (everything on the calling thread,
//! which drives the actors itself) and on a two-thread [`ThreadPool`] (the actors run on the
//! workers; the main thread only starts the rally and waits for its end). Each prints the time
//! of one round trip (two messages).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use airssys_rt::{Actor, ActorRef, Ctx, Handler, ManualDriver, System, ThreadPool};

/// Round trips per rally.
const ROUNDS: u64 = 200_000;
/// How long the pool may take before we call the rally lost.
const WAIT: Duration = Duration::from_secs(10);

/// A player: hits the ball back to its partner until the rally is over.
struct Player {
    partner: Option<ActorRef<Player>>,
    /// How many times this player hit the ball.
    hits: u64,
    /// Told when the last ball arrives.
    done: mpsc::Sender<()>,
}

impl Actor for Player {}

/// Introduces a player's partner.
struct Meet(ActorRef<Player>);

impl Handler<Meet> for Player {
    type Reply = ();
    fn handle(&mut self, Meet(partner): Meet, _ctx: &mut Ctx<Self>) {
        self.partner = Some(partner);
    }
}

/// The ball, with the number of bounces still to go.
struct Ball {
    bounces_left: u64,
}

impl Handler<Ball> for Player {
    type Reply = ();
    fn handle(&mut self, ball: Ball, _ctx: &mut Ctx<Self>) {
        self.hits += 1;
        if ball.bounces_left == 0 {
            // End of the rally: wake whoever waits for it.
            let _ = self.done.send(());
            return;
        }
        let partner = self.partner.as_ref().expect("introduced before the rally");
        // `tell` never blocks. It fails only if the partner has stopped (or its mailbox is
        // bounded and full): neither can happen here.
        partner
            .tell(Ball {
                bounces_left: ball.bounces_left - 1,
            })
            .expect("the partner is alive");
    }
}

/// Asks a player how many times it hit the ball (an `ask`: a message with a reply).
struct Hits;

impl Handler<Hits> for Player {
    type Reply = u64;
    fn handle(&mut self, _: Hits, _ctx: &mut Ctx<Self>) -> u64 {
        self.hits
    }
}

/// Spawns two players on `system` and introduces them to each other.
fn pair(system: &System) -> (ActorRef<Player>, ActorRef<Player>, mpsc::Receiver<()>) {
    let (done_tx, done_rx) = mpsc::channel();
    let player = || Player {
        partner: None,
        hits: 0,
        done: done_tx.clone(),
    };
    let ping = system.spawn(player()).expect("spawn");
    let pong = system.spawn(player()).expect("spawn");
    ping.tell(Meet(pong.clone())).expect("ping is alive");
    pong.tell(Meet(ping.clone())).expect("pong is alive");
    (ping, pong, done_rx)
}

/// The first ball: `ROUNDS` round trips are `2 * ROUNDS` hits, the first of them by `ping`.
fn serve() -> Ball {
    Ball {
        bounces_left: 2 * ROUNDS - 1,
    }
}

fn report(host: &str, elapsed: Duration) {
    println!(
        "{host:<26} {ROUNDS} round trips in {elapsed:>10.2?}: {:>6.0} ns per round trip",
        elapsed.as_nanos() as f64 / ROUNDS as f64
    );
}

fn main() {
    // 1. Same thread. A ManualDriver runs nothing by itself: `run_until_idle` runs the
    //    scheduled actors on this thread until none is left. (It picks the next actor with
    //    a seeded generator, so a test can replay an interleaving; the seed does not matter
    //    here.)
    let driver = ManualDriver::new(1);
    let (ping, pong, done) = pair(driver.system());
    driver.run_until_idle(); // the players meet

    let start = Instant::now();
    ping.tell(serve()).expect("serve");
    driver.run_until_idle(); // the whole rally, ball after ball
    let elapsed = start.elapsed();
    done.try_recv().expect("the rally ended");

    // An ask's reply arrives once the actor has run: drive, then take it.
    let (ping_hits, pong_hits) = (ping.ask(Hits), pong.ask(Hits));
    driver.run_until_idle();
    let hits = ping_hits.try_take().expect("answered").expect("alive")
        + pong_hits.try_take().expect("answered").expect("alive");
    assert_eq!(hits, 2 * ROUNDS);
    report("ManualDriver (1 thread):", elapsed);

    // 2. A pool of two worker threads. Sends from the main thread schedule the actors on the
    //    pool; the main thread only waits.
    let pool = ThreadPool::new(2);
    let (ping, pong, done) = pair(pool.system());

    let start = Instant::now();
    ping.tell(serve()).expect("serve");
    done.recv_timeout(WAIT).expect("the rally ended");
    let elapsed = start.elapsed();

    // Outside a driver's thread, `ask_timeout` blocks until the reply comes.
    let hits = ping.ask_timeout(Hits, WAIT).expect("ping answers")
        + pong.ask_timeout(Hits, WAIT).expect("pong answers");
    assert_eq!(hits, 2 * ROUNDS);
    report("ThreadPool::new(2):", elapsed);
}
