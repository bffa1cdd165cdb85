//! Erlang's ordering and link rules for exit signals and down notifications:
//!
//! * signals between one pair of actors keep their order: a message that an actor sent before
//!   it stopped is received before its trapped exit or its down notification (the Erlang
//!   Reference Manual, "Processes", Delivery of Signals);
//! * an exit signal from a link that the receiver has removed (`unlink`) is dropped;
//! * the notices a signal becomes are never refused by a full bounded mailbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airssys_rt::{
    Actor, ActorId, ActorRef, Ctx, ExitReason, Handler, ManualDriver, MonitorRef, Pid, SendError,
    ThreadPool,
};

const WAIT: Duration = Duration::from_secs(10);

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// The entries of `name`, in order.
fn entries_of(log: &Log, name: &str) -> Vec<String> {
    let prefix = format!("{name}: ");
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// A plain Erlang-like process: it logs every message, trapped exit and down notification,
/// and (unlike the default `handle_exit`) does not stop on a trapped exit.
struct P {
    name: &'static str,
    log: Log,
    trap: bool,
}

impl P {
    fn new(name: &'static str, log: &Log, trap: bool) -> Self {
        Self {
            name,
            log: log.clone(),
            trap,
        }
    }

    fn note(&self, s: String) {
        self.log.lock().unwrap().push(format!("{}: {s}", self.name));
    }
}

impl Actor for P {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.trap_exit(self.trap);
    }

    fn handle_exit(&mut self, _: &mut Ctx<Self>, from: Option<ActorId>, reason: ExitReason) {
        let from = from.map_or("outside".to_string(), |f| f.to_string());
        self.note(format!("EXIT {from} {reason}"));
    }

    fn handle_down(&mut self, _: &mut Ctx<Self>, _: MonitorRef, from: ActorId, reason: ExitReason) {
        self.note(format!("DOWN {from} {reason}"));
    }
}

enum Cmd {
    Link(Pid),
    Monitor(Pid),
    Msg(&'static str),
    /// Sends `Msg(text)` to the actor, then stops with the reason.
    SendThenStop(ActorRef<P>, &'static str, ExitReason),
    /// Makes `other` exit, waits until it has (its exit signal to us is then queued), then
    /// unlinks it. Needs a thread pool: the other actor runs on another worker.
    CrashThenUnlink(Pid, ExitReason),
}

impl Handler<Cmd> for P {
    type Reply = ();

    fn handle(&mut self, cmd: Cmd, ctx: &mut Ctx<Self>) {
        match cmd {
            Cmd::Link(p) => ctx.link(&p),
            Cmd::Monitor(p) => {
                ctx.monitor(&p);
            }
            Cmd::Msg(s) => self.note(format!("msg {s}")),
            Cmd::SendThenStop(to, s, reason) => {
                assert!(to.tell(Cmd::Msg(s)).is_ok());
                ctx.stop_with(reason);
            }
            Cmd::CrashThenUnlink(p, reason) => {
                let exit = p.exit_reason();
                p.exit(reason);
                exit.wait(WAIT).unwrap();
                ctx.unlink(&p);
            }
        }
    }
}

#[test]
fn a_message_sent_before_an_exit_is_received_before_the_trapped_exit() {
    let d = ManualDriver::fifo();
    let l = log();
    let r = d.system().spawn(P::new("r", &l, true)).unwrap();
    let s = d.system().spawn(P::new("s", &l, false)).unwrap();
    r.tell(Cmd::Link(s.pid())).ok().unwrap();
    d.run_until_idle();
    s.tell(Cmd::SendThenStop(
        r.clone(),
        "hello",
        ExitReason::error("done"),
    ))
    .ok()
    .unwrap();
    d.run_until_idle();
    assert_eq!(
        entries_of(&l, "r"),
        [
            "msg hello".to_string(),
            format!("EXIT {} error: done", s.id())
        ]
    );
}

#[test]
fn a_result_sent_before_a_normal_exit_is_received_before_the_down() {
    for seed in 0..20 {
        let d = ManualDriver::new(seed);
        let l = log();
        let r = d.system().spawn(P::new("r", &l, false)).unwrap();
        let s = d.system().spawn(P::new("s", &l, false)).unwrap();
        r.tell(Cmd::Monitor(s.pid())).ok().unwrap();
        d.run_until_idle();
        s.tell(Cmd::SendThenStop(r.clone(), "result", ExitReason::Normal))
            .ok()
            .unwrap();
        d.run_until_idle();
        assert_eq!(
            entries_of(&l, "r"),
            ["msg result".to_string(), format!("DOWN {} normal", s.id())],
            "seed {seed}"
        );
    }
}

#[test]
fn a_result_is_received_before_the_down_on_a_thread_pool() {
    let pool = ThreadPool::new(2);
    for round in 0..100 {
        let l = log();
        let r = pool.system().spawn(P::new("r", &l, false)).unwrap();
        let s = pool.system().spawn(P::new("s", &l, false)).unwrap();
        r.ask(Cmd::Monitor(s.pid())).wait(WAIT).unwrap();
        let r_exit = r.pid().exit_reason();
        s.tell(Cmd::SendThenStop(r.clone(), "result", ExitReason::Normal))
            .ok()
            .unwrap();
        s.pid().exit_reason().wait(WAIT).unwrap();
        // The down signal is in r's mailbox now; a stop from outside is handled after it
        // (signals first, and r does not trap), so wait for r to see both messages first.
        let deadline = std::time::Instant::now() + WAIT;
        while entries_of(&l, "r").len() < 2 {
            assert!(std::time::Instant::now() < deadline, "round {round}: {l:?}");
            std::thread::yield_now();
        }
        assert_eq!(
            entries_of(&l, "r"),
            ["msg result".to_string(), format!("DOWN {} normal", s.id())],
            "round {round}"
        );
        r.stop();
        r_exit.wait(WAIT).unwrap();
    }
    pool.shutdown();
}

#[test]
fn an_exit_signal_of_a_link_removed_before_it_is_processed_is_dropped() {
    let pool = ThreadPool::new(2);
    let l = log();
    let a = pool.system().spawn(P::new("a", &l, false)).unwrap();
    let b = pool.system().spawn(P::new("b", &l, false)).unwrap();
    a.ask(Cmd::Link(b.pid())).wait(WAIT).unwrap();
    let a_exit = a.pid().exit_reason();
    a.ask(Cmd::CrashThenUnlink(b.pid(), ExitReason::error("crash")))
        .wait(WAIT)
        .unwrap();
    // b's exit signal was queued while `a` still had the link, and processed after the
    // unlink: dropped, so `a` lives and answers.
    a.ask(Cmd::Msg("alive")).wait(WAIT).unwrap();
    assert_eq!(entries_of(&l, "a"), ["msg alive"]);
    assert!(a.is_alive());
    a.stop();
    assert_eq!(a_exit.wait(WAIT).unwrap(), ExitReason::Shutdown);
    pool.shutdown();
}

#[test]
fn notices_go_past_a_full_bound_and_the_bound_still_holds() {
    let d = ManualDriver::fifo();
    let l = log();
    let r = d.system().spawn_bounded(P::new("r", &l, true), 1).unwrap();
    let s = d.system().spawn(P::new("s", &l, false)).unwrap();
    r.tell(Cmd::Link(s.pid())).ok().unwrap();
    d.run_until_idle();
    r.tell(Cmd::Monitor(s.pid())).ok().unwrap();
    d.run_until_idle();
    // r's mailbox is full; s stops: the exit and the down are queued past the bound.
    r.tell(Cmd::Msg("first")).ok().unwrap();
    assert!(matches!(
        r.tell(Cmd::Msg("refused")),
        Err(SendError::Full(_))
    ));
    s.pid().exit(ExitReason::error("gone"));
    d.run_until_idle();
    let from = s.id();
    assert_eq!(
        entries_of(&l, "r"),
        [
            "msg first".to_string(),
            format!("EXIT {from} error: gone"),
            format!("DOWN {from} error: gone"),
        ]
    );
    // Every slot came back: the bound is one message again, no more, no less.
    r.tell(Cmd::Msg("again")).ok().unwrap();
    assert!(matches!(
        r.tell(Cmd::Msg("refused")),
        Err(SendError::Full(_))
    ));
    d.run_until_idle();
    assert_eq!(entries_of(&l, "r").last().unwrap(), "msg again");
}
