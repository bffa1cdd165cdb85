//! Bring your own executor: implement [`Schedule`] and run the [`Runnable`]s yourself.
//!
//! ```text
//! cargo run --release --example custom_executor
//! ```
//!
//! airssys-rt never starts a thread on its own. Whenever an actor needs to run (a message
//! arrived, a signal, or it used up its budget and has more to do), the system hands a
//! [`Runnable`] to the host's [`Schedule::schedule`]. The host runs it when and where it likes.
//! The contract:
//!
//! 1. **At most one runnable per actor exists at a time.** A send to an actor that is already
//!    scheduled (or running) only queues the message: no second runnable is made. So the host
//!    never runs the same actor on two threads at once, and needs no locking of its own.
//! 2. **Run each runnable exactly once**, on any thread, eventually. Dropping one without
//!    running it strands its actor: it stays "scheduled" and is never run again.
//! 3. **A run that yields has already rescheduled itself.** [`Runnable::run`] handles at most
//!    `budget` user messages; if more are waiting it calls `schedule` again (from inside `run`)
//!    and returns [`RunOutcome::Yielded`]. The host does nothing special with the outcome: it
//!    is for statistics and logging.
//!
//! Here the executor is a `std::sync::mpsc` channel of runnables, drained by a plain loop on
//! the main thread.

use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex};

use airssys_rt::{
    Actor, ActorId, ActorRef, Ctx, Handler, RunOutcome, Runnable, Schedule, System, DEFAULT_BUDGET,
};

// ---------------------------------------------------------------------------------------------
// The executor
// ---------------------------------------------------------------------------------------------

/// The host's side: every runnable the system hands over goes into a channel.
struct ChannelScheduler {
    queue: mpsc::Sender<Runnable>,
    /// Not needed by an executor: here only to check rule 1 (one runnable per actor).
    scheduled: Arc<Mutex<HashSet<ActorId>>>,
}

impl Schedule for ChannelScheduler {
    /// Called by the system, on whatever thread sent the message (or ran the actor). It must
    /// not run the actor itself (it may be called from inside a run): it only queues.
    fn schedule(&self, task: Runnable) {
        let fresh = self.scheduled.lock().unwrap().insert(task.actor_id());
        assert!(fresh, "rule 1: a second runnable for {}", task.actor_id());
        self.queue
            .send(task)
            .expect("the executor outlives the system");
    }
}

/// What the loop did.
#[derive(Debug, Default)]
struct Runs {
    idle: usize,
    yielded: usize,
    exited: usize,
}

/// The executor loop: runs queued runnables until none is left (every actor is idle).
fn run_until_idle(
    queue: &mpsc::Receiver<Runnable>,
    scheduled: &Mutex<HashSet<ActorId>>,
    budget: usize,
) -> Runs {
    let mut runs = Runs::default();
    // The system keeps a sender (inside the scheduler), so the channel never disconnects:
    // "empty" means nothing is scheduled.
    while let Ok(task) = queue.try_recv() {
        scheduled.lock().unwrap().remove(&task.actor_id());
        // Rule 2: `run` takes the runnable by value, so it runs exactly once.
        match task.run(budget) {
            RunOutcome::Idle => runs.idle += 1,
            // Rule 3: already back in the queue; nothing to do.
            RunOutcome::Yielded => runs.yielded += 1,
            RunOutcome::Exited => runs.exited += 1,
        }
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// Some actors
// ---------------------------------------------------------------------------------------------

/// Ping-pong: returns the ball until it has no bounces left, then tells the score keeper.
struct Player {
    partner: Option<ActorRef<Player>>,
    score: ActorRef<Score>,
}

impl Actor for Player {}

struct Meet(ActorRef<Player>);

impl Handler<Meet> for Player {
    type Reply = ();
    fn handle(&mut self, Meet(partner): Meet, _ctx: &mut Ctx<Self>) {
        self.partner = Some(partner);
    }
}

struct Ball(u32);

impl Handler<Ball> for Player {
    type Reply = ();
    fn handle(&mut self, Ball(left): Ball, _ctx: &mut Ctx<Self>) {
        self.score.tell(Hit).expect("score keeper alive");
        if left > 0 {
            let partner = self.partner.as_ref().expect("introduced");
            partner.tell(Ball(left - 1)).expect("partner alive");
        }
    }
}

/// Counts hits; answers an ask with the total.
#[derive(Default)]
struct Score {
    hits: u64,
}

impl Actor for Score {}

struct Hit;

impl Handler<Hit> for Score {
    type Reply = ();
    fn handle(&mut self, _: Hit, _ctx: &mut Ctx<Self>) {
        self.hits += 1;
    }
}

struct Total;

impl Handler<Total> for Score {
    type Reply = u64;
    fn handle(&mut self, _: Total, _ctx: &mut Ctx<Self>) -> u64 {
        self.hits
    }
}

/// Stops the actor once handled.
struct Quit;

impl Handler<Quit> for Score {
    type Reply = ();
    fn handle(&mut self, _: Quit, ctx: &mut Ctx<Self>) {
        ctx.stop();
    }
}

fn main() {
    // Build the executor and a system that schedules onto it.
    let (tx, queue) = mpsc::channel();
    let scheduled = Arc::new(Mutex::new(HashSet::new()));
    let system = System::new(ChannelScheduler {
        queue: tx,
        scheduled: scheduled.clone(),
    });
    let budget = DEFAULT_BUDGET;

    // Spawning schedules each actor once (its first run calls `Actor::started`).
    let score = system.spawn(Score::default()).expect("spawn");
    let player = || Player {
        partner: None,
        score: score.clone(),
    };
    let ping = system.spawn(player()).expect("spawn");
    let pong = system.spawn(player()).expect("spawn");
    ping.tell(Meet(pong.clone())).expect("send");
    pong.tell(Meet(ping.clone())).expect("send");
    println!(
        "after spawn: {} runnables queued",
        scheduled.lock().unwrap().len()
    );
    let runs = run_until_idle(&queue, &scheduled, budget);
    println!("setup:       {runs:?}");

    // A rally of 1,000 hits. Nothing happens until the loop runs the actors.
    ping.tell(Ball(999)).expect("serve");
    let runs = run_until_idle(&queue, &scheduled, budget);
    println!("rally:       {runs:?}");

    // An ask: the reply is ready once the loop has run the actor.
    let total = score.ask(Total);
    assert_eq!(total.try_take(), None, "nothing has run yet");
    run_until_idle(&queue, &scheduled, budget);
    let hits = total.try_take().expect("answered").expect("alive");
    println!("ask(Total) = {hits}");
    assert_eq!(hits, 1_000);

    // A burst larger than the budget: the run handles `budget` messages, reschedules itself
    // (rule 3) and returns `Yielded`; the loop simply picks it up again.
    for _ in 0..300 {
        score.tell(Hit).expect("send");
    }
    let runs = run_until_idle(&queue, &scheduled, budget);
    println!("300 tells:   {runs:?} (budget {budget})");
    assert_eq!(runs.yielded, 300 / budget);

    // Stopping: the last run reports `Exited`, and the address refuses further sends.
    score.tell(Quit).expect("send");
    let runs = run_until_idle(&queue, &scheduled, budget);
    println!("quit:        {runs:?}");
    assert!(!score.is_alive());
    assert!(score.tell(Hit).is_err());
}
