//! Archived messages: zero-copy in place, round trips, bad external bytes, backpressure.

use std::sync::Arc;
use std::thread;

use airssys_rt::arena::{self, TrySendError};
use airssys_rt::codec::{self, ExternalError, Message, ViewError};
use airssys_rt::mailbox::{
    ArenaWriter, Boxed, Envelope, Mailbox, PoolConfig, Received, WriteError,
};
use proptest::prelude::*;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
struct Pod {
    a: u64,
    b: u32,
    c: u8,
    d: f64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
struct Rich {
    id: u64,
    name: String,
    values: Vec<u32>,
    payload: Vec<u8>,
    nested: Option<Box<Pod>>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
enum Command {
    Stop,
    Move { x: i32, y: i32 },
    Say(String),
    Batch(Vec<Pod>),
}

airssys_rt::message!(Pod, Rich, Command);

fn pod() -> impl Strategy<Value = Pod> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u8>(),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()),
    )
        .prop_map(|(a, b, c, d)| Pod { a, b, c, d })
}

fn rich() -> impl Strategy<Value = Rich> {
    (
        any::<u64>(),
        ".{0,40}",
        prop::collection::vec(any::<u32>(), 0..50),
        prop::collection::vec(any::<u8>(), 0..6000),
        prop::option::of(pod()),
    )
        .prop_map(|(id, name, values, payload, nested)| Rich {
            id,
            name,
            values,
            payload,
            nested: nested.map(Box::new),
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Stop),
        (any::<i32>(), any::<i32>()).prop_map(|(x, y)| Command::Move { x, y }),
        ".{0,100}".prop_map(Command::Say),
        prop::collection::vec(pod(), 0..20).prop_map(Command::Batch),
    ]
}

/// Encodes, then reads back through both paths: the unchecked view (verified bytes) and a
/// bytecheck-validated access of the same bytes; both must deserialize to the original.
fn round_trip<M>(writer: &mut ArenaWriter, value: &M)
where
    M: Message + PartialEq + std::fmt::Debug,
    rkyv::Archived<M>:
        rkyv::Deserialize<M, rkyv::rancor::Strategy<rkyv::de::Pool, rkyv::rancor::Error>>,
{
    let env = codec::encode(writer, value).unwrap();
    assert!(env.is_verified());
    let unchecked = codec::view::<M>(&env).unwrap();
    let checked = codec::validate::<M>(env.bytes().unwrap()).unwrap();
    assert!(
        std::ptr::eq(unchecked, checked),
        "both views read the same bytes in place"
    );
    let a: M = rkyv::deserialize::<M, rkyv::rancor::Error>(unchecked).unwrap();
    let b: M = rkyv::deserialize::<M, rkyv::rancor::Error>(checked).unwrap();
    assert_eq!(&a, value);
    assert_eq!(&b, value);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn archived_round_trip_checked_and_unchecked_agree(
        pods in prop::collection::vec(pod(), 1..5),
        riches in prop::collection::vec(rich(), 1..5),
        commands in prop::collection::vec(command(), 1..5),
    ) {
        // A small pool forces chunk rotation and the large path along the way.
        let mut w = ArenaWriter::new(PoolConfig::default().chunk_size(16 * 1024).max_bytes(1 << 20));
        for p in &pods { round_trip(&mut w, p); }
        for r in &riches { round_trip(&mut w, r); }
        for c in &commands { round_trip(&mut w, c); }
    }

    #[test]
    fn frames_round_trip_through_ingest(r in rich()) {
        let frame = codec::to_frame(&r).unwrap();
        let mut w = ArenaWriter::new(PoolConfig::default());
        let env = codec::ingest_frame::<Rich>(&mut w, &frame).unwrap();
        prop_assert!(env.is_verified());
        let back: Rich = rkyv::deserialize::<Rich, rkyv::rancor::Error>(codec::view::<Rich>(&env).unwrap()).unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut w = ArenaWriter::new(PoolConfig::default());
        let _ = codec::ingest::<Rich>(&mut w, &bytes);
        let _ = codec::ingest::<Command>(&mut w, &bytes);
        let _ = codec::ingest_frame::<Pod>(&mut w, &bytes);
    }
}

#[test]
fn the_receiver_reads_inside_the_senders_chunk() {
    // In an `Arc`: a mailbox must not move while a run token for it is outstanding.
    let mb: Arc<Mailbox<Envelope, Boxed<()>>> = Arc::new(Mailbox::unbounded());
    let msg = Rich {
        id: 1,
        name: "in place".into(),
        values: vec![1, 2, 3],
        payload: vec![9; 100],
        nested: None,
    };
    let (env, chunk) = arena::with_writer(|w| {
        let env = codec::encode(w, &msg).unwrap();
        let chunk = env.payload_chunk().unwrap();
        (env, chunk)
    });
    let token = mb.try_push(env).unwrap().unwrap();
    let receiver = thread::spawn(move || {
        let mut run = mb.begin_run(token);
        let Some(Received::User(env)) = run.pop() else {
            panic!()
        };
        let archived = codec::view::<Rich>(&env).unwrap();
        let root = archived as *const _ as usize;
        let name = archived.name.as_ptr() as usize;
        let payload = archived.payload.as_ptr() as usize;
        assert_eq!(archived.name, "in place");
        let _ = run.finish(false);
        (root, name, payload)
    });
    let (root, name, payload) = receiver.join().unwrap();
    for addr in [root, name, payload] {
        assert!(
            chunk.contains(&addr),
            "{addr:#x} is outside the sender's chunk {chunk:x?}"
        );
    }
}

#[test]
fn view_refuses_the_wrong_type_plain_values_and_unverified_garbage() {
    let mut w = ArenaWriter::new(PoolConfig::default());
    let env = codec::encode(
        &mut w,
        &Pod {
            a: 1,
            b: 2,
            c: 3,
            d: 4.0,
        },
    )
    .unwrap();
    assert_eq!(
        codec::view::<Rich>(&env).err().expect("wrong type refused"),
        ViewError::WrongType {
            expected: Rich::TAG,
            found: Pod::TAG
        }
    );
    let plain = w.write_plain(5u8).unwrap();
    assert!(matches!(
        codec::view::<Pod>(&plain),
        Err(ViewError::WrongType { .. })
    ));
    // Unverified bytes carrying a type's tag are validated, never trusted.
    let garbage = w.copy_bytes(Rich::TAG, &[0xFF; 64]).unwrap();
    assert!(!garbage.is_verified());
    assert!(matches!(
        codec::view::<Rich>(&garbage),
        Err(ViewError::Invalid(_))
    ));
    let short = w.copy_bytes(Pod::TAG, &[0; 3]).unwrap();
    assert!(matches!(
        codec::view::<Pod>(&short),
        Err(ViewError::TooShort { len: 3, .. })
    ));
}

#[test]
fn external_bytes_get_an_error_that_says_what_is_wrong() {
    let mut w = ArenaWriter::new(PoolConfig::default());
    let good = codec::to_frame(&Command::Say("hi".into())).unwrap();
    assert!(codec::ingest_frame::<Command>(&mut w, &good).is_ok());

    let err = |frame: &[u8]| {
        codec::ingest_frame::<Command>(&mut ArenaWriter::new(PoolConfig::default()), frame)
            .unwrap_err()
    };
    assert_eq!(err(&good[..10]), ExternalError::ShortHeader { len: 10 });
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    assert!(matches!(err(&bad_magic), ExternalError::BadMagic { found } if found[0] == b'X'));
    let mut reserved = good.clone();
    reserved[12] = 1;
    assert_eq!(err(&reserved), ExternalError::BadReserved { found: 1 });
    let pod_frame = codec::to_frame(&Pod {
        a: 0,
        b: 0,
        c: 0,
        d: 0.0,
    })
    .unwrap();
    assert_eq!(
        err(&pod_frame),
        ExternalError::WrongType {
            expected: Command::TAG,
            found: Pod::TAG
        }
    );
    let payload_len = good.len() - codec::FRAME_HEADER_LEN;
    assert_eq!(
        err(&good[..good.len() - 1]),
        ExternalError::Truncated {
            declared: payload_len,
            available: payload_len - 1
        }
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        err(&trailing),
        ExternalError::TrailingBytes {
            declared: payload_len,
            available: payload_len + 1
        }
    );
    // A corrupted payload (an enum discriminant out of range) is caught by validation.
    let mut corrupt = good.clone();
    for b in &mut corrupt[codec::FRAME_HEADER_LEN..] {
        *b = 0xEE;
    }
    let e = err(&corrupt);
    assert!(matches!(e, ExternalError::Invalid(_)), "{e:?}");
    assert!(e.to_string().starts_with("invalid archive: "));

    // In-place validation insists on alignment.
    let payload = &good[codec::FRAME_HEADER_LEN..];
    let mut buf = vec![0u128; payload.len() / 16 + 2];
    // SAFETY: viewing initialised `u128`s as bytes.
    let bytes: &mut [u8] =
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 16) };
    bytes[..payload.len()].copy_from_slice(payload);
    assert!(codec::validate::<Command>(&bytes[..payload.len()]).is_ok());
    bytes.copy_within(0..payload.len(), 1);
    assert!(matches!(
        codec::validate::<Command>(&bytes[1..=payload.len()]),
        Err(ExternalError::Misaligned { .. })
    ));
    assert!(matches!(
        codec::ingest::<Pod>(&mut w, &[1, 2]),
        Err(ExternalError::TooShort { needed: _, len: 2 })
    ));
}

#[test]
fn a_stalled_receiver_bounds_memory_and_the_sender_gets_its_value_back() {
    let max = 4 * 16 * 1024;
    // A thread of its own, so that its thread writer uses this small pool.
    thread::spawn(move || {
        arena::set_thread_pool_config(PoolConfig::default().chunk_size(16 * 1024).max_bytes(max));
        let mb: Mailbox<Envelope, Boxed<()>> = Mailbox::unbounded();
        let msg = |i: u64| Rich {
            id: i,
            name: "backpressure".into(),
            values: vec![],
            payload: vec![1; 500],
            nested: None,
        };
        let mut token = None;
        let mut sent = 0u64;
        // Nobody receives: the pool fills, then sends come back Full with the value.
        let back = loop {
            match arena::try_send(&mb, msg(sent)) {
                Ok(t) => {
                    token = token.or(t);
                    sent += 1;
                }
                Err(TrySendError::Full(m)) => break m,
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert!(
                arena::with_writer(|w| w.stats().bytes) <= max,
                "pool grew past its cap"
            );
        };
        assert_eq!(back.id, sent, "the value that did not fit came back");
        assert!(sent > 10);
        // The receiver catches up: space comes back and sends succeed again.
        let mut run = mb.begin_run(token.unwrap());
        let mut received = 0;
        while let Some(Received::User(env)) = run.pop() {
            assert_eq!(codec::view::<Rich>(&env).unwrap().id, received);
            received += 1;
        }
        assert_eq!(received, sent);
        assert!(run.finish(false).is_none());
        assert!(arena::try_send(&mb, back).is_ok());
        assert_eq!(
            arena::with_writer(|w| w.stats()).bytes,
            max,
            "no chunk was allocated beyond the cap"
        );
    })
    .join()
    .unwrap();
}

#[test]
fn a_waiting_send_waits_for_the_receiver_to_free_space() {
    let mb: Arc<Mailbox<Envelope, Boxed<()>>> = Arc::new(Mailbox::unbounded());
    let (token_tx, token_rx) = std::sync::mpsc::channel();
    let total = 2_000u64;
    let sender = {
        let mb = mb.clone();
        thread::spawn(move || {
            arena::set_thread_pool_config(
                PoolConfig::default().chunk_size(4096).max_bytes(2 * 4096),
            );
            for i in 0..total {
                let msg = Pod {
                    a: i,
                    b: 0,
                    c: 0,
                    d: 0.0,
                };
                // Tokens go to the receiver: a token kept here would never run.
                if let Some(t) = arena::send_waiting(&mb, msg).unwrap() {
                    token_tx.send(t).unwrap();
                }
            }
            arena::with_writer(|w| w.stats())
        })
    };
    let mut received = 0u64;
    while let Ok(mut token) = token_rx.recv() {
        loop {
            let mut run = mb.begin_run(token);
            while let Some(Received::User(env)) = run.pop() {
                assert_eq!(codec::view::<Pod>(&env).unwrap().a, received);
                received += 1;
            }
            match run.finish(false) {
                Some(t) => token = t,
                None => break,
            }
        }
    }
    let stats = sender.join().unwrap();
    assert_eq!(received, total);
    assert!(stats.bytes <= 2 * 4096, "{stats:?}");
    assert!(
        stats.chunks_recycled > 10,
        "the sender waited for recycled chunks: {stats:?}"
    );
}

#[test]
fn messages_larger_than_the_pool_are_refused_not_waited_for() {
    thread::spawn(|| {
        arena::set_thread_pool_config(PoolConfig::default().max_bytes(256 * 1024));
        let mb: Mailbox<Envelope, Boxed<()>> = Mailbox::unbounded();
        let huge = Rich {
            id: 0,
            name: String::new(),
            values: vec![],
            payload: vec![0; 1 << 20],
            nested: None,
        };
        assert!(matches!(
            arena::send_waiting(&mb, huge),
            Err(TrySendError::TooLarge(_))
        ));
        let mut w = ArenaWriter::new(PoolConfig::default().max_bytes(256 * 1024));
        assert!(matches!(
            codec::ingest::<Rich>(&mut w, &vec![0; 1 << 20]),
            Err(ExternalError::Arena(WriteError::TooLarge { .. }))
        ));
    })
    .join()
    .unwrap();
}
