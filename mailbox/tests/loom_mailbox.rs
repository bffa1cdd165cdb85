//! Loom models of the mailbox: queue + run token (the user head's parked mark) + state word +
//! close + system lane.
//!
//! (b) `schedule_exactly_once`: senders that get the token run the mailbox themselves (as a
//!     work-stealing host would): at most one token exists, handlers never overlap (the actor
//!     state is a loom `UnsafeCell`), no wake-up is lost (everything is handled, the mailbox
//!     ends idle).
//! (c) `close_races_sends`: every message is handled, returned to its sender, or handed to the
//!     dead-letter path by a run that saw the close: exactly once.
//! (d) `system_lane_before_user`: a signal pushed before a user message is received first.
//! (e) `wake_during_run_is_not_lost`: a wake-up without a message (a timer, a future) that
//!     races with a run is seen by that run or makes the mailbox run again.
//! (f) `a_signal_racing_with_the_end_of_a_run_is_not_lost`: a signal pushed while a run
//!     parks the mailbox is taken by that run, or its sender takes the token.
//! (g) `kept_links_are_released_once_and_never_written_after`: runs pop with
//!     `pop_keeping_link` (the last message's link stays as the queue's end until the next pop
//!     or the park) while senders push: every message is handled once, in order per sender,
//!     and every node's two references (handle, link) are released exactly once. A node is
//!     freed (its memory handed back to the allocator) on its last release, so a link written
//!     after its release would be a use after free, which loom reports or the model's checks
//!     see (lost or duplicated messages).
//! (h) `a_kept_link_is_given_up_when_a_run_parks_awaiting`: a run that parks with messages
//!     left (awaiting) gives its kept link up first, racing a sender; a wake-up runs the rest.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_mailbox`
#![cfg(loom)]

use std::ptr::NonNull;

use airssys_rt_mailbox::{Boxed, Link, Linked, Mailbox, PushError, Received, RunToken};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

type Mb = Mailbox<Boxed<usize>, Boxed<usize>>;

/// The "actor": its state is only touched inside runs, through an `UnsafeCell`, so loom reports
/// two runs that overlap (or that are not ordered by the token's hand-over) as a data race.
struct Actor {
    mailbox: Mb,
    /// Received messages, in order: `(is_system, id, mailbox_was_closed)`.
    log: UnsafeCell<Vec<(bool, usize, bool)>>,
    /// Tokens in existence (S1: never above 1).
    tokens: AtomicUsize,
}

impl Actor {
    fn new() -> Self {
        Self {
            mailbox: Mailbox::unbounded(),
            log: UnsafeCell::new(Vec::new()),
            tokens: AtomicUsize::new(0),
        }
    }

    fn got_token(&self, token: Option<RunToken>) -> Option<RunToken> {
        if token.is_some() {
            let before = self.tokens.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "two run tokens exist at once");
        }
        token
    }

    /// Runs the mailbox for as long as it hands back tokens, `budget` user messages per run.
    fn drive(&self, token: Option<RunToken>, budget: usize) {
        let Some(mut token) = self.got_token(token) else {
            return;
        };
        loop {
            self.tokens.fetch_sub(1, Ordering::SeqCst);
            let mut run = self.mailbox.begin_run(token);
            let mut handled = 0;
            let mut popped = false;
            while handled < budget {
                let Some(msg) = run.pop() else { break };
                popped = true;
                let closed = run.is_closed();
                let entry = match msg {
                    Received::System(s) => (true, *s, closed),
                    Received::User(u) => {
                        handled += 1;
                        (false, *u, closed)
                    }
                };
                // SAFETY: only a run touches the log, and runs of one mailbox are exclusive;
                // that exclusivity is what this model checks (loom reports any overlap).
                self.log.with_mut(|log| unsafe { (*log).push(entry) });
            }
            match self.got_token(run.finish(handled == budget)) {
                Some(t) => token = t,
                None => return,
            }
            if !popped {
                // Run again with nothing taken: a producer is between its swap and its link
                // (the run gets its token back until the link lands). A host runs other work
                // first; here, let the other threads go (loom would otherwise explore this
                // spin forever).
                thread::yield_now();
            }
        }
    }

    fn log(&self) -> Vec<(bool, usize, bool)> {
        // SAFETY: called after every thread has been joined: no run is in progress.
        self.log.with(|log| unsafe { (*log).clone() })
    }
}

#[test]
fn schedule_exactly_once() {
    loom::model(|| {
        let actor = Arc::new(Actor::new());
        let senders: Vec<_> = (0..2)
            .map(|id| {
                let a = actor.clone();
                thread::spawn(move || {
                    let token = a.mailbox.try_push(Boxed::new(id)).unwrap();
                    a.drive(token, 1);
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        // No lost wake-up: both messages were handled, and the mailbox is idle.
        let mut ids: Vec<usize> = actor.log().iter().map(|e| e.1).collect();
        ids.sort();
        assert_eq!(ids, [0, 1], "a message was never handled (lost wake-up)");
        assert!(!actor.mailbox.is_scheduled(), "mailbox not idle at the end");
        assert_eq!(actor.mailbox.state().load(), 0, "a wake-up left over");
        assert_eq!(actor.tokens.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn close_races_sends() {
    loom::model(|| {
        let actor = Arc::new(Actor::new());
        // returned[i]: message i came back to its sender with `Closed`.
        let returned = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let senders: Vec<_> = (0..2)
            .map(|id| {
                let (a, r) = (actor.clone(), returned.clone());
                thread::spawn(move || match a.mailbox.try_push(Boxed::new(id)) {
                    Ok(token) => a.drive(token, 1),
                    Err(PushError::Closed(m)) => {
                        r[*m].fetch_add(1, Ordering::SeqCst);
                    }
                    Err(PushError::Full(_)) => unreachable!("unbounded"),
                })
            })
            .collect();
        actor.mailbox.close();
        for s in senders {
            s.join().unwrap();
        }
        let log = actor.log();
        for id in 0..2 {
            let received = log.iter().filter(|e| e.1 == id).count();
            let back = returned[id].load(Ordering::SeqCst);
            assert_eq!(
                received + back,
                1,
                "message {id}: received {received} times, returned {back} times"
            );
        }
        assert!(actor.mailbox.is_closed());
        assert_eq!(actor.tokens.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn system_lane_before_user() {
    loom::model(|| {
        let actor = Arc::new(Actor::new());
        // The consumer starts a run (a wake-up) while the producer pushes: signal 7, then user 8.
        let token = actor.mailbox.notify();
        let producer = {
            let a = actor.clone();
            thread::spawn(move || {
                let t1 = a.mailbox.push_system(Boxed::new(7)).unwrap();
                a.drive(t1, 1);
                let t2 = a.mailbox.try_push(Boxed::new(8)).unwrap();
                a.drive(t2, 1);
            })
        };
        actor.drive(token, 1);
        producer.join().unwrap();
        let order: Vec<(bool, usize)> = actor.log().iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(
            order,
            [(true, 7), (false, 8)],
            "a user message overtook a signal sent before it"
        );
    });
}

#[test]
fn wake_during_run_is_not_lost() {
    loom::model(|| {
        let actor = Arc::new(Actor::new());
        // What the wake-up announces (a future that became ready, say).
        let ready = Arc::new(AtomicBool::new(false));
        // The consumer is scheduled already (its first run) when the wake-up comes.
        let token = actor.mailbox.notify();
        let waker = {
            let (a, r) = (actor.clone(), ready.clone());
            thread::spawn(move || {
                // Relaxed on purpose: the wake-up itself must carry it to the run.
                r.store(true, Ordering::Relaxed);
                let token = a.mailbox.notify();
                run_until_idle(&a, &r, token);
            })
        };
        run_until_idle(&actor, &ready, token);
        waker.join().unwrap();
        assert!(
            !actor.log().is_empty(),
            "no run saw the wake-up's effect (lost wake-up)"
        );
        assert!(!actor.mailbox.is_scheduled(), "mailbox not idle");
        assert_eq!(actor.mailbox.state().load(), 0, "a wake-up left over");
        assert_eq!(actor.tokens.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_signal_racing_with_the_end_of_a_run_is_not_lost() {
    loom::model(|| {
        let actor = Arc::new(Actor::new());
        // A run is pending (a wake-up) when the signal comes.
        let token = actor.mailbox.notify();
        let sender = {
            let a = actor.clone();
            thread::spawn(move || {
                let token = a.mailbox.push_system(Boxed::new(5)).unwrap();
                a.drive(token, 1);
            })
        };
        actor.drive(token, 1);
        sender.join().unwrap();
        let log: Vec<(bool, usize)> = actor.log().iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(log, [(true, 5)], "the signal was never received (stranded)");
        assert!(!actor.mailbox.is_scheduled(), "mailbox not idle");
        assert_eq!(actor.tokens.load(Ordering::SeqCst), 0);
    });
}

/// Runs the (message-less) consumer while it hands back tokens; each run logs whether it saw
/// `ready`.
fn run_until_idle(actor: &Actor, ready: &AtomicBool, token: Option<RunToken>) {
    let Some(mut token) = actor.got_token(token) else {
        return;
    };
    loop {
        actor.tokens.fetch_sub(1, Ordering::SeqCst);
        let run = actor.mailbox.begin_run(token);
        if ready.load(Ordering::Relaxed) {
            // SAFETY: only runs touch the log, and they are exclusive (what loom checks).
            actor
                .log
                .with_mut(|log| unsafe { (*log).push((false, 0, false)) });
        }
        match actor.got_token(run.finish(false)) {
            Some(t) => token = t,
            None => return,
        }
    }
}

/// A node with two references, like an arena message: one for its handle, one for its link
/// (see `Linked::KEEPS_LINK`). The last release frees it.
#[repr(C)]
struct CountedNode {
    link: Link,
    /// `(sender, seq)`.
    value: (usize, usize),
    refs: AtomicUsize,
    /// Count of nodes freed, shared by the model.
    freed: Arc<AtomicUsize>,
}

/// The handle: owns one or two of its node's references.
struct Counted {
    node: NonNull<CountedNode>,
    refs: usize,
}

// SAFETY: the node is only shared through its atomic reference count.
unsafe impl Send for Counted {}

impl Counted {
    fn new(value: (usize, usize), freed: &Arc<AtomicUsize>) -> Self {
        let node = Box::new(CountedNode {
            link: Link::new(),
            value,
            refs: AtomicUsize::new(2),
            freed: freed.clone(),
        });
        Counted {
            node: NonNull::from(Box::leak(node)),
            refs: 2,
        }
    }

    fn value(&self) -> (usize, usize) {
        // SAFETY: alive while we hold a reference.
        unsafe { self.node.as_ref().value }
    }

    /// # Safety
    ///
    /// The caller holds `n` references on `node` and gives them up.
    unsafe fn release(node: NonNull<CountedNode>, n: usize) {
        // SAFETY: alive while the caller holds references.
        let prev = unsafe { node.as_ref() }.refs.fetch_sub(n, Ordering::AcqRel);
        assert!(prev >= n, "a node released more references than it had");
        if prev == n {
            // SAFETY: the last reference: nobody else may touch the node now.
            let node = unsafe { Box::from_raw(node.as_ptr()) };
            node.freed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // SAFETY: the references this handle holds.
        unsafe { Counted::release(self.node, self.refs) };
    }
}

// SAFETY: the link is the first field of the `repr(C)` node; the node stays alive while the
// handle's or the link's reference is held, and the queue alone touches the link meanwhile.
unsafe impl Linked for Counted {
    fn into_link(self) -> NonNull<Link> {
        assert_eq!(
            self.refs, 2,
            "a handle whose link a queue keeps was pushed again"
        );
        let link = self.node.cast::<Link>();
        std::mem::forget(self);
        link
    }

    /// # Safety
    ///
    /// `Linked`'s contract: `link` came from `into_link` and is taken back once; a message
    /// handed out holds 2 references (its own and its link's).
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        Counted {
            node: link.cast(),
            refs: 2,
        }
    }

    const KEEPS_LINK: bool = true;

    /// # Safety
    ///
    /// `Linked`'s contract: as `from_link`, while the queue keeps the link (and its
    /// reference), so the handle holds 1.
    unsafe fn from_link_keeping_link(link: NonNull<Link>) -> Self {
        Counted {
            node: link.cast(),
            refs: 1,
        }
    }

    /// # Safety
    ///
    /// `Linked`'s contract: called once per kept link, after its handle was given out.
    unsafe fn release_link(link: NonNull<Link>) {
        // SAFETY: the link's reference, kept by the queue.
        unsafe { Counted::release(link.cast(), 1) };
    }
}

type CountedMb = Mailbox<Counted, Boxed<usize>>;

/// Runs `mailbox` (`pop_keeping_link`, `budget` user messages per run) while it hands back
/// tokens, logging what it receives into `log` (touched only inside runs).
fn drive_keeping(
    mailbox: &CountedMb,
    log: &UnsafeCell<Vec<(usize, usize)>>,
    token: Option<RunToken>,
    budget: usize,
) {
    let Some(mut token) = token else { return };
    loop {
        let mut run = mailbox.begin_run(token);
        let mut handled = 0;
        let mut popped = false;
        while handled < budget {
            // SAFETY: handles are only read and dropped here, never pushed again.
            let Some(msg) = (unsafe { run.pop_keeping_link() }) else {
                break;
            };
            popped = true;
            if let Received::User(c) = msg {
                handled += 1;
                let v = c.value();
                // SAFETY: only runs touch the log, and runs are exclusive.
                log.with_mut(|l| unsafe { (*l).push(v) });
            }
        }
        match run.finish(handled == budget) {
            Some(t) => token = t,
            None => return,
        }
        if !popped {
            thread::yield_now();
        }
    }
}

#[test]
fn kept_links_are_released_once_and_never_written_after() {
    loom::model(|| {
        let freed = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new((CountedMb::unbounded(), UnsafeCell::new(Vec::new())));
        // Sender 0 sends two messages, sender 1 one; each runs the tokens it gets.
        let senders: Vec<_> = [2usize, 1]
            .into_iter()
            .enumerate()
            .map(|(id, n)| {
                let (shared, freed) = (shared.clone(), freed.clone());
                thread::spawn(move || {
                    for seq in 0..n {
                        let token = shared.0.try_push(Counted::new((id, seq), &freed)).unwrap();
                        drive_keeping(&shared.0, &shared.1, token, 1);
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        // SAFETY: every thread is joined: no run is in progress.
        let log = shared.1.with(|l| unsafe { (*l).clone() });
        let mut sorted = log.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [(0, 0), (0, 1), (1, 0)],
            "lost or duplicated: {log:?}"
        );
        let zero: Vec<_> = log.iter().filter(|v| v.0 == 0).collect();
        assert_eq!(zero, [&(0, 0), &(0, 1)], "one sender's messages reordered");
        assert!(!shared.0.is_scheduled(), "mailbox not idle at the end");
        // Every node freed exactly once: all references released (the last park gave back
        // the kept link).
        assert_eq!(
            freed.load(Ordering::SeqCst),
            3,
            "a node leaked or was freed twice"
        );
    });
}

/// A run that parks awaiting (user messages left on purpose) gives up its kept link first
/// (`unkeep`, re-linking the stub with a swap) while a sender pushes; a wake-up later runs the
/// rest. Every message is handled once and every node freed once.
#[test]
fn a_kept_link_is_given_up_when_a_run_parks_awaiting() {
    loom::model(|| {
        let freed = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new((CountedMb::unbounded(), UnsafeCell::new(Vec::new())));
        let token = shared
            .0
            .try_push(Counted::new((0, 0), &freed))
            .unwrap()
            .expect("idle: the first push takes the token");
        let sender = {
            let (shared, freed) = (shared.clone(), freed.clone());
            thread::spawn(move || {
                let token = shared.0.try_push(Counted::new((1, 0), &freed)).unwrap();
                drive_keeping(&shared.0, &shared.1, token, 1);
            })
        };
        let mut run = shared.0.begin_run(token);
        // SAFETY: handles are only read and dropped here.
        if let Some(Received::User(c)) = unsafe { run.pop_keeping_link() } {
            let v = c.value();
            // SAFETY: only runs touch the log, and runs are exclusive.
            shared.1.with_mut(|l| unsafe { (*l).push(v) });
        }
        // Awaiting: parks with whatever is queued left for later.
        let again = run.finish_awaiting();
        drive_keeping(&shared.0, &shared.1, again, 1);
        // The future it awaited is ready: a wake-up runs it again.
        let woken = shared.0.notify();
        drive_keeping(&shared.0, &shared.1, woken, 1);
        sender.join().unwrap();
        // SAFETY: every thread is joined: no run is in progress.
        let mut log = shared.1.with(|l| unsafe { (*l).clone() });
        log.sort();
        assert_eq!(log, [(0, 0), (1, 0)], "lost or duplicated");
        assert!(!shared.0.is_scheduled(), "mailbox not idle at the end");
        assert_eq!(
            freed.load(Ordering::SeqCst),
            2,
            "a node leaked or was freed twice"
        );
    });
}
