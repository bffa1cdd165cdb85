//! proptest: random operation sequences on a `Mailbox` against a `VecDeque` reference model.
//!
//! Operations: push (user or system lane) from one of several logical producers, begin a run,
//! pop, finish (yielded or not), notify, close, and finally drop with whatever is left. The
//! model predicts every result: which message comes out, when a token is handed back, Full and
//! Closed with the same message returned, and that every message is dropped exactly once.

mod common;

use std::collections::VecDeque;
use std::num::NonZeroU32;

use airssys_rt_mailbox::{Boxed, Mailbox, PushError, Received, RunToken};
use common::{DropTable, Tracked};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push { producer: u8, system: bool },
    BeginRun,
    Pop,
    Finish { yielded: bool },
    Notify,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, prop::bool::weighted(0.2)).prop_map(|(producer, system)| Op::Push { producer, system }),
        2 => Just(Op::BeginRun),
        6 => Just(Op::Pop),
        2 => any::<bool>().prop_map(|yielded| Op::Finish { yielded }),
        1 => Just(Op::Notify),
        1 => Just(Op::Close),
    ]
}

/// The reference: two FIFO lanes and the scheduling flags.
#[derive(Default)]
struct Model {
    user: VecDeque<usize>,
    system: VecDeque<usize>,
    scheduled: bool,
    running: bool,
    /// A wake-up came while scheduled or running.
    woken: bool,
    closed: bool,
}

impl Model {
    /// A push: returns whether it hands out a token.
    fn pushed(&mut self) -> bool {
        let token = !self.scheduled && !self.running;
        self.scheduled |= token;
        token
    }

    /// A wake-up without a message: returns whether it hands out a token.
    fn notify(&mut self) -> bool {
        let token = self.pushed();
        self.woken |= !token;
        token
    }
}

fn run_ops(capacity: Option<u32>, ops: Vec<Op>) {
    let table = DropTable::new(ops.len());
    let mut made = 0;
    {
        let mb: Mailbox<Boxed<Tracked>> =
            Mailbox::with_capacity(capacity.and_then(NonZeroU32::new));
        let mut model = Model::default();
        let mut token: Option<RunToken> = None;
        let mut run = None;
        // Per-producer sequence numbers, to check FIFO per producer as well as overall.
        let mut last_seq = [None::<usize>; 4];
        let mut producer_of = Vec::new();

        for op in ops {
            match op {
                Op::Push { producer, system } => {
                    let id = made;
                    made += 1;
                    producer_of.push(producer);
                    let msg = Boxed::new(table.make(id));
                    if system {
                        match mb.push_system(msg) {
                            Ok(t) => {
                                assert!(!model.closed);
                                model.system.push_back(id);
                                assert_eq!(t.is_some(), model.pushed());
                                if t.is_some() {
                                    token = t;
                                }
                            }
                            Err(back) => {
                                assert!(model.closed);
                                assert_eq!(back.id, id, "the signal given back is ours");
                            }
                        }
                    } else {
                        let full =
                            capacity.is_some_and(|c| c > 0 && model.user.len() >= c as usize);
                        match mb.try_push(msg) {
                            Ok(t) => {
                                assert!(!model.closed && !full);
                                model.user.push_back(id);
                                assert_eq!(t.is_some(), model.pushed());
                                if t.is_some() {
                                    token = t;
                                }
                            }
                            Err(PushError::Closed(back)) => {
                                assert!(model.closed);
                                assert_eq!(back.id, id);
                            }
                            Err(PushError::Full(back)) => {
                                assert!(!model.closed && full, "Full only at capacity");
                                assert_eq!(back.id, id);
                            }
                        }
                    }
                }
                Op::BeginRun => {
                    if let Some(t) = token.take() {
                        assert!(model.scheduled && !model.running);
                        model.running = true;
                        // A wake-up that came while the token was pending is served now.
                        model.woken = false;
                        run = Some(mb.begin_run(t));
                    }
                }
                Op::Pop => {
                    if let Some(r) = run.as_mut() {
                        let got = r.pop();
                        let expected = model
                            .system
                            .pop_front()
                            .map(|id| (true, id))
                            .or_else(|| model.user.pop_front().map(|id| (false, id)));
                        let got = got.map(|m| match m {
                            Received::System(s) => (true, s.id),
                            Received::User(u) => (false, u.id),
                        });
                        assert_eq!(got, expected, "wrong message out");
                        if let Some((false, id)) = got {
                            let p = producer_of[id] as usize;
                            assert!(last_seq[p] < Some(id), "FIFO per producer");
                            last_seq[p] = Some(id);
                        }
                    }
                }
                Op::Finish { yielded } => {
                    if let Some(r) = run.take() {
                        let t = r.finish(yielded);
                        model.running = false;
                        // Yielded keeps the token (and any wake-up for later); otherwise a
                        // wake-up or anything still queued brings it back.
                        let expect_token = yielded
                            || model.woken
                            || !model.user.is_empty()
                            || !model.system.is_empty();
                        if !yielded {
                            model.woken = false;
                        }
                        model.scheduled = expect_token;
                        assert_eq!(t.is_some(), expect_token, "finish token");
                        token = t;
                    }
                }
                Op::Notify => {
                    let t = mb.notify();
                    assert_eq!(t.is_some(), model.notify());
                    if t.is_some() {
                        token = t;
                    }
                }
                Op::Close => {
                    assert_eq!(mb.close(), !model.closed);
                    model.closed = true;
                }
            }
            assert_eq!(mb.is_closed(), model.closed);
            if capacity.is_some_and(|c| c > 0) {
                assert_eq!(mb.occupancy(), Some(model.user.len()));
            }
        }
        if let Some(r) = run.take() {
            let _ = r.finish(false);
        }
        // Everything not received is still in the mailbox: dropping it drops each once.
        let _unrun = token;
    }
    table.assert_each_dropped_once(made);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mailbox_matches_the_reference_model(
        capacity in prop_oneof![Just(None), (1u32..6).prop_map(Some)],
        ops in prop::collection::vec(op(), 0..120),
    ) {
        run_ops(capacity, ops);
    }
}
