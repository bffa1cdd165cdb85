//! Behaviour of `Mailbox` through its public API, one property per test.

mod common;

use std::num::NonZeroU32;

use airssys_rt_mailbox::{Boxed, Mailbox, PushError, Received};
use common::DropTable;

type Mb<T> = Mailbox<Boxed<T>, Boxed<T>>;

fn user<U, S>(r: Option<Received<U, S>>) -> U {
    match r {
        Some(Received::User(u)) => u,
        Some(Received::System(_)) => panic!("expected a user message, got a signal"),
        None => panic!("expected a user message, got nothing"),
    }
}

/// The size half of the idle-mailbox budget; that creating one allocates nothing is shown by
/// `examples/mailbox_size.rs` (it needs a counting global allocator). The mailbox's own fields
/// take 64 bytes; the default adds only the gap that keeps its two ends apart.
#[test]
fn idle_mailbox_is_at_most_64_bytes_plus_the_gap() {
    use airssys_rt_mailbox::GAP_BYTES;
    use std::mem::size_of;
    assert!(size_of::<Mailbox<Boxed<u64>, Boxed<u64>, ()>>() <= 64);
    assert_eq!(
        size_of::<Mb<u64>>(),
        size_of::<Mailbox<Boxed<u64>, Boxed<u64>, ()>>() + GAP_BYTES
    );
    const { assert!(Mb::<u64>::ENDS_APART) };
}

/// Whatever the owner keeps in the gap is reachable, and the mailbox works the same with it.
#[test]
fn a_mailbox_keeps_its_owners_cold_data_between_its_ends() {
    #[derive(Debug, PartialEq)]
    struct Cold {
        id: u64,
        name: [u8; 32],
    }
    let mb: Mailbox<Boxed<u32>, Boxed<u32>, Cold> = Mailbox::with_cold(
        None,
        Cold {
            id: 7,
            name: [1; 32],
        },
    );
    const { assert!(Mailbox::<Boxed<u32>, Boxed<u32>, Cold>::ENDS_APART) };
    assert_eq!(mb.cold().id, 7);
    let token = mb.try_push(Boxed::new(5)).unwrap().expect("idle");
    let mut run = mb.begin_run(token);
    assert_eq!(*user(run.pop()), 5);
    assert!(run.finish(false).is_none());
    assert_eq!(
        mb.cold(),
        &Cold {
            id: 7,
            name: [1; 32]
        }
    );
}

#[test]
fn first_push_schedules_once_then_finish_goes_idle() {
    let mb: Mb<u32> = Mailbox::unbounded();
    let token = mb
        .try_push(Boxed::new(1))
        .unwrap()
        .expect("idle mailbox: schedule it");
    assert!(mb.try_push(Boxed::new(2)).unwrap().is_none());
    assert!(mb.notify().is_none(), "already scheduled");
    let mut run = mb.begin_run(token);
    assert_eq!(*user(run.pop()), 1);
    assert_eq!(*user(run.pop()), 2);
    assert!(run.pop().is_none());
    assert!(run.finish(false).is_none());
    assert_eq!(mb.state().load(), 0);
    assert!(!mb.is_scheduled(), "idle: parked");
    // Idle again: the next push schedules again.
    assert!(mb.try_push(Boxed::new(3)).unwrap().is_some());
}

#[test]
fn push_during_run_makes_finish_reschedule() {
    let mb: Mb<u32> = Mailbox::unbounded();
    let token = mb.notify().unwrap();
    let mut run = mb.begin_run(token);
    assert!(run.pop().is_none());
    assert!(
        mb.try_push(Boxed::new(9)).unwrap().is_none(),
        "running: no second token"
    );
    let token = run.finish(false).expect("a message arrived during the run");
    let mut run = mb.begin_run(token);
    assert_eq!(*user(run.pop()), 9);
    assert!(run.finish(false).is_none());
}

#[test]
fn wake_during_run_makes_finish_reschedule_with_empty_queues() {
    let mb: Mb<u32> = Mailbox::unbounded();
    let token = mb.notify().unwrap();
    let run = mb.begin_run(token);
    assert!(mb.notify().is_none(), "running: no second token");
    let token = run
        .finish(false)
        .expect("a wake-up came during the run: it runs again");
    let run = mb.begin_run(token);
    assert!(run.finish(false).is_none(), "the wake-up was used up");
    assert_eq!(mb.state().load(), 0);
    assert!(!mb.is_scheduled());
}

#[test]
fn finish_awaiting_leaves_user_messages_but_not_signals() {
    let mb: Mb<u32> = Mailbox::unbounded();
    let token = mb.try_push(Boxed::new(1)).unwrap().unwrap();
    let run = mb.begin_run(token);
    assert!(
        run.finish_awaiting().is_none(),
        "a queued user message does not bring an awaiting run back"
    );
    let token = mb.notify().expect("idle: a wake-up schedules");
    let run = mb.begin_run(token);
    mb.push_system(Boxed::new(7)).unwrap();
    let token = run
        .finish_awaiting()
        .expect("a queued signal brings it back");
    let mut run = mb.begin_run(token);
    assert!(matches!(run.pop(), Some(Received::System(s)) if *s == 7));
    assert_eq!(*user(run.pop()), 1, "the user message waited, in order");
    assert!(run.finish(false).is_none());
}

#[test]
fn drain_of_a_mailbox_parked_with_messages_left_keeps_it_idle() {
    let mut mb: Mb<u32> = Mailbox::unbounded();
    let token = mb.try_push(Boxed::new(1)).unwrap().unwrap();
    assert!(mb.try_push(Boxed::new(2)).unwrap().is_none());
    // Parked with both messages left (an actor awaiting inside a handler).
    assert!(mb.begin_run(token).finish_awaiting().is_none());
    assert!(!mb.is_scheduled());
    let mut got = Vec::new();
    mb.drain(|r| got.push(*user(Some(r))));
    assert_eq!(got, [1, 2]);
    // Still idle: the drain's re-link of the stub did not take the token for nobody.
    assert!(
        !mb.is_scheduled(),
        "drained, but left scheduled with no token"
    );
    assert!(
        mb.try_push(Boxed::new(3)).unwrap().is_some(),
        "idle: the next push takes the token"
    );
}

#[test]
fn yielded_run_keeps_the_token() {
    let mb: Mb<u32> = Mailbox::unbounded();
    let token = mb.try_push(Boxed::new(1)).unwrap().unwrap();
    mb.try_push(Boxed::new(2)).unwrap();
    let mut run = mb.begin_run(token);
    assert_eq!(*user(run.pop()), 1);
    let token = run.finish(true).expect("yielded: still scheduled");
    assert!(
        mb.notify().is_none(),
        "the yielded run holds the only token"
    );
    let mut run = mb.begin_run(token);
    assert_eq!(*user(run.pop()), 2);
    assert!(run.finish(false).is_none());
}

#[test]
fn bounded_mailbox_returns_the_message_when_full() {
    let mb: Mb<u32> = Mailbox::bounded(NonZeroU32::new(2).unwrap());
    let token = mb.try_push(Boxed::new(1)).unwrap().unwrap();
    mb.try_push(Boxed::new(2)).unwrap();
    match mb.try_push(Boxed::new(3)) {
        Err(PushError::Full(m)) => assert_eq!(*m, 3),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(mb.occupancy(), Some(2));
    // Signals are never bounded.
    assert!(mb.push_system(Boxed::new(100)).is_ok());
    let mut run = mb.begin_run(token);
    assert!(matches!(run.pop(), Some(Received::System(s)) if *s == 100));
    assert_eq!(*user(run.pop()), 1);
    assert_eq!(mb.occupancy(), Some(1));
    assert!(
        mb.try_push(Boxed::new(4)).is_ok(),
        "a slot was freed by the receive"
    );
    assert_eq!(*user(run.pop()), 2);
    assert_eq!(*user(run.pop()), 4);
    assert!(
        run.finish(false).is_none(),
        "what was pushed during the run was received by it: no second run"
    );
}

#[test]
fn closed_mailbox_returns_messages_and_signals() {
    let mb: Mb<u32> = Mailbox::unbounded();
    assert!(mb.close());
    assert!(!mb.close(), "second close reports it was already closed");
    let err = mb.try_push(Boxed::new(5)).unwrap_err();
    assert!(err.is_closed());
    assert_eq!(*err.into_inner(), 5);
    assert_eq!(*mb.push_system(Boxed::new(6)).unwrap_err(), 6);
    assert_eq!(
        PushError::Closed(()).to_string(),
        "mailbox closed: the message was not sent"
    );
}

#[test]
fn run_sees_close_and_drains_what_was_accepted() {
    let mb: Mb<u32> = Mailbox::unbounded();
    let token = mb.try_push(Boxed::new(1)).unwrap().unwrap();
    mb.try_push(Boxed::new(2)).unwrap();
    let mut run = mb.begin_run(token);
    assert!(!run.is_closed());
    assert_eq!(*user(run.pop()), 1);
    assert!(run.close());
    assert!(run.is_closed());
    // What was accepted before the close still comes out (for the dead-letter hook).
    assert_eq!(*user(run.pop()), 2);
    assert!(run.pop().is_none());
    assert!(run.finish(false).is_none());
    assert!(mb.try_push(Boxed::new(3)).unwrap_err().is_closed());
}

#[test]
fn dropping_a_mailbox_drops_each_queued_message_once() {
    let table = DropTable::new(10);
    {
        let mb: Mailbox<Boxed<common::Tracked>> = Mailbox::unbounded();
        let token = mb.try_push(Boxed::new(table.make(0))).unwrap();
        for id in 1..6 {
            mb.try_push(Boxed::new(table.make(id))).unwrap();
        }
        for id in 6..10 {
            mb.push_system(Boxed::new(table.make(id))).unwrap();
        }
        // Take two out and drop them here; leave the rest (and the token) to the mailbox.
        let mut run = mb.begin_run(token.unwrap());
        drop(run.pop());
        drop(run.pop());
        let _ = run.finish(false);
        assert_eq!(table.count(6) + table.count(7), 2);
    }
    table.assert_each_dropped_once(10);
}

#[test]
fn drain_hands_out_signals_then_user_messages() {
    let mut mb: Mb<u32> = Mailbox::bounded(NonZeroU32::new(8).unwrap());
    let _token = mb.try_push(Boxed::new(1)).unwrap();
    mb.push_system(Boxed::new(10)).unwrap();
    mb.try_push(Boxed::new(2)).unwrap();
    let mut got = Vec::new();
    mb.drain(|r| match r {
        Received::System(s) => got.push(("sys", *s)),
        Received::User(u) => got.push(("user", *u)),
    });
    assert_eq!(got, [("sys", 10), ("user", 1), ("user", 2)]);
    assert_eq!(mb.occupancy(), Some(0));
}

#[test]
#[should_panic(expected = "did not issue it")]
fn a_token_from_another_mailbox_is_refused() {
    let a: Mb<u32> = Mailbox::unbounded();
    let b: Mb<u32> = Mailbox::unbounded();
    let token = a.notify().unwrap();
    let _ = b.notify().unwrap();
    let _run = b.begin_run(token);
}

#[test]
fn a_kept_link_is_given_back_whether_the_run_parks_or_a_push_gets_in_first() {
    use airssys_rt_mailbox::{ArenaWriter, Envelope, PoolConfig};

    let mut writer = ArenaWriter::new(PoolConfig::default());
    let mb: Mailbox<Envelope, Boxed<u32>> = Mailbox::unbounded();
    let take = |r: Option<Received<Envelope, Boxed<u32>>>| match r {
        Some(Received::User(env)) => env.take::<u32>().unwrap(),
        other => panic!("expected a user message, got {other:?}"),
    };
    for round in 0..200u32 {
        let token = mb
            .try_push(writer.write_plain(round).unwrap())
            .unwrap()
            .expect("idle: the push takes the token");
        let mut run = mb.begin_run(token);
        // SAFETY: the envelopes are only read and dropped.
        assert_eq!(take(unsafe { run.pop_keeping_link() }), round);
        // SAFETY: as above.
        assert!(unsafe { run.pop_keeping_link() }.is_none());
        if round % 2 == 0 {
            // A push lands behind the kept link: the park's CAS fails, and the run keeps the
            // token (the push took none).
            assert!(mb
                .try_push(writer.write_plain(round + 1000).unwrap())
                .unwrap()
                .is_none());
            let token = run.finish(false).expect("a push got in before the park");
            let mut run = mb.begin_run(token);
            // SAFETY: as above.
            assert_eq!(take(unsafe { run.pop_keeping_link() }), round + 1000);
            assert!(run.finish(false).is_none());
        } else {
            assert!(run.finish(false).is_none(), "nothing left: parked");
        }
        assert!(!mb.is_scheduled());
    }
    // Every message's two references came back (the handle's, and the link's from the
    // queue; a double release would trip the count's underflow check): retiring the writer's
    // current chunk recycles it at once.
    let before = writer.stats();
    writer.retire_current();
    let after = writer.stats();
    assert_eq!(
        after.chunks_recycled,
        before.chunks_recycled + 1,
        "a reference was not given back: {after:?}"
    );
}
