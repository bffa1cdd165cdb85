//! Arena chunks, the writer and envelopes, through the public API.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use airssys_rt_mailbox::{
    ArenaWriter, Boxed, Envelope, FillError, Kind, Mailbox, PoolConfig, Received, WriteError,
    CHUNK_ALIGN,
};
use common::DropTable;

fn small_pool(chunks: usize) -> ArenaWriter {
    ArenaWriter::new(
        PoolConfig::default()
            .chunk_size(4096)
            .max_bytes(chunks * 4096),
    )
}

#[test]
fn bytes_round_trip_aligned_in_the_chunk() {
    let mut w = ArenaWriter::new(PoolConfig::default());
    let mut envs = Vec::new();
    for i in 0..100u8 {
        let payload = vec![i; i as usize];
        let env = w.copy_bytes(u32::from(i), &payload).unwrap();
        assert_eq!(env.kind(), Kind::Bytes);
        assert_eq!(env.bytes().unwrap(), &payload[..]);
        assert_eq!(env.type_tag(), u32::from(i));
        let addr = env.bytes().unwrap().as_ptr() as usize;
        assert_eq!(addr % 16, 0, "payload not 16-aligned");
        let chunk = env.payload_chunk().unwrap();
        assert!(chunk.contains(&addr) && chunk.start.is_multiple_of(CHUNK_ALIGN));
        envs.push(env);
    }
    // All in one 64 KiB chunk, in order.
    let first = envs[0].payload_chunk().unwrap();
    assert!(envs.iter().all(|e| e.payload_chunk().unwrap() == first));
    assert_eq!(w.stats().chunks_allocated, 1);
}

#[test]
fn plain_values_drop_exactly_once_on_every_path() {
    let table = DropTable::new(4);
    let mut w = ArenaWriter::new(PoolConfig::default());
    // Taken: the receiver owns it, its drop is the receiver's.
    let taken = w
        .write_plain(table.make(0))
        .unwrap()
        .take::<common::Tracked>()
        .unwrap();
    assert_eq!(table.count(0), 0);
    drop(taken);
    // Dropped unread.
    drop(w.write_plain(table.make(1)).unwrap());
    // Dropped with a mailbox, and returned by a closed one.
    {
        let mb: Mailbox<Envelope, Boxed<()>> = Mailbox::unbounded();
        let _token = mb.try_push(w.write_plain(table.make(2)).unwrap()).unwrap();
        mb.close();
        let back = mb
            .try_push(w.write_plain(table.make(3)).unwrap())
            .unwrap_err()
            .into_inner();
        assert_eq!(table.count(3), 0);
        drop(back);
    }
    table.assert_each_dropped_once(4);
}

#[test]
fn take_with_the_wrong_type_gives_the_envelope_back() {
    let mut w = ArenaWriter::new(PoolConfig::default());
    let env = w.write_plain(5u64).unwrap();
    assert!(env.is::<u64>() && !env.is::<u32>());
    assert_eq!(env.plain_type_name(), Some("u64"));
    let env = env.take::<u32>().unwrap_err();
    assert_eq!(env.take::<u64>().unwrap(), 5);
    let bytes = w.copy_bytes(1, b"x").unwrap();
    assert!(bytes.take::<u64>().is_err());
}

#[test]
fn over_aligned_and_large_plain_values() {
    #[repr(align(64))]
    #[derive(Debug, PartialEq)]
    struct Aligned(u8);
    let mut w = ArenaWriter::new(PoolConfig::default());
    for i in 0..50 {
        let _pad = w.copy_bytes(0, &vec![0; i]).unwrap();
        let env = w.write_plain(Aligned(i as u8)).unwrap();
        assert_eq!(env.take::<Aligned>().unwrap(), Aligned(i as u8));
    }
    let big = vec![7u8; 100_000].into_boxed_slice();
    let arr: Box<[u8; 100_000]> = big.try_into().unwrap();
    let env = w.write_plain(*arr).unwrap();
    assert_eq!(w.stats().large_allocated, 1);
    assert!(env.take::<[u8; 100_000]>().unwrap().iter().all(|&b| b == 7));
}

#[test]
fn chunks_are_recycled_in_steady_state() {
    let mut w = small_pool(2);
    for round in 0..1000u32 {
        let envs: Vec<_> = (0..10)
            .map(|i| w.copy_bytes(i, &round.to_le_bytes()).unwrap())
            .collect();
        for e in &envs {
            assert_eq!(e.bytes().unwrap(), round.to_le_bytes());
        }
    }
    let stats = w.stats();
    assert!(stats.chunks_allocated <= 2, "{stats:?}");
    // 10,000 messages of 32 bytes through 4 KiB chunks: about 84 chunks worth.
    assert!(stats.chunks_recycled > 50, "{stats:?}");
    assert!(stats.bytes <= stats.max_bytes);
}

#[test]
fn exhausted_pool_gives_values_back_and_recovers() {
    let mut w = small_pool(2);
    let mut held = Vec::new();
    let err = loop {
        match w.copy_bytes(1, &[1; 200]) {
            Ok(e) => held.push(e),
            Err(e) => break e,
        }
        assert!(w.stats().bytes <= 2 * 4096);
    };
    assert_eq!(err, WriteError::Exhausted);
    let (value, err) = w.write_plain(String::from("back to sender")).unwrap_err();
    assert_eq!(
        (value.as_str(), err),
        ("back to sender", WriteError::Exhausted)
    );
    held.clear();
    assert!(w.copy_bytes(1, b"after release").is_ok());
    assert!(w.stats().chunks_allocated <= 2);
}

#[test]
fn waiter_is_woken_when_space_returns() {
    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut w = small_pool(1);
    let mut held = Vec::new();
    while let Ok(e) = w.copy_bytes(1, &[0; 100]) {
        held.push(e);
    }
    let flag = Arc::new(Flag(AtomicUsize::new(0)));
    w.register_waiter(&Waker::from(flag.clone()));
    assert!(w.copy_bytes(1, b"x").is_err(), "still exhausted");
    held.clear();
    assert_eq!(
        flag.0.load(Ordering::SeqCst),
        1,
        "recycling woke the waiter"
    );
    assert!(w.copy_bytes(1, b"x").is_ok());
}

#[test]
fn large_messages_get_their_own_chunk_and_free_it() {
    let mut w = ArenaWriter::new(PoolConfig::default().max_bytes(1 << 20));
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let env = w.copy_bytes(9, &payload).unwrap();
    assert_eq!(env.bytes().unwrap(), &payload[..]);
    assert_eq!(env.bytes().unwrap().as_ptr() as usize % 16, 0);
    assert_eq!(w.stats().large_allocated, 1);
    let during = w.stats().bytes;
    drop(env);
    assert!(w.stats().bytes < during, "large chunk freed on release");
    // Larger than the whole budget: a typed error, never a wait that cannot end.
    let huge = vec![0u8; 2 << 20];
    assert_eq!(
        w.copy_bytes(1, &huge).unwrap_err(),
        WriteError::TooLarge { max_bytes: 1 << 20 }
    );
}

#[test]
fn fill_errors_and_retries() {
    let mut w = ArenaWriter::new(PoolConfig::default());
    let mut calls = 0;
    // A fill that overflows twice, then fits: the writer retries with larger regions.
    let env = w
        .write_bytes::<()>(3, |region| {
            calls += 1;
            if calls < 3 {
                return Err(FillError::Overflow);
            }
            region[0].write(42);
            Ok(1)
        })
        .unwrap();
    assert_eq!(env.bytes(), Some(&[42][..]));
    let err = w
        .write_bytes(3, |_| Err(FillError::Failed("nope")))
        .unwrap_err();
    assert_eq!(err, WriteError::Failed("nope"));
    assert_eq!(err.to_string(), "writing the message failed: nope");
}

#[test]
fn share_publishes_one_payload_to_many() {
    let mut w = ArenaWriter::new(PoolConfig::default());
    let payload = vec![5u8; 64 * 1024];
    let original = w.copy_bytes(11, &payload).unwrap();
    let copies: Vec<_> = (0..1000).map(|_| w.share(&original).unwrap()).collect();
    let addr = original.bytes().unwrap().as_ptr();
    for c in &copies {
        assert_eq!(c.kind(), Kind::Shared);
        assert_eq!(c.type_tag(), 11);
        assert_eq!(c.bytes().unwrap().as_ptr(), addr, "a copy was made");
    }
    assert_eq!(w.stats().large_allocated, 1);
    drop(original);
    let bytes_before = w.stats().bytes;
    // The payload stays alive for the copies; freed when the last copy goes.
    assert_eq!(copies[999].bytes().unwrap(), &payload[..]);
    drop(copies);
    assert!(w.stats().bytes < bytes_before);
    // A shared copy of a shared copy points at the original bytes too.
    let o = w.copy_bytes(1, b"abc").unwrap();
    let c1 = w.share(&o).unwrap();
    let c2 = w.share(&c1).unwrap();
    assert_eq!(c2.bytes().unwrap().as_ptr(), o.bytes().unwrap().as_ptr());
    let plain = w.write_plain(1u8).unwrap();
    assert_eq!(w.share(&plain).unwrap_err(), WriteError::NotShareable);
}

#[test]
fn envelopes_outlive_their_writer_and_cross_threads() {
    let mut w = small_pool(4);
    let mb: Arc<Mailbox<Envelope, Boxed<()>>> = Arc::new(Mailbox::unbounded());
    let token = mb
        .try_push(w.copy_bytes(1, b"one").unwrap())
        .unwrap()
        .unwrap();
    mb.try_push(w.write_plain(vec![1, 2, 3]).unwrap()).unwrap();
    drop(w); // the thread's writer goes away; its chunks live on in the mailbox
    let mb2 = mb.clone();
    std::thread::spawn(move || {
        let mut run = mb2.begin_run(token);
        let Some(Received::User(a)) = run.pop() else {
            panic!()
        };
        assert_eq!(a.bytes(), Some(&b"one"[..]));
        let Some(Received::User(b)) = run.pop() else {
            panic!()
        };
        assert_eq!(b.take::<Vec<i32>>().unwrap(), [1, 2, 3]);
        assert!(run.finish(false).is_none());
    })
    .join()
    .unwrap();
}

/// A writer and every envelope written into its first chunk, which the writer has retired
/// (so dropping them all recycles it).
fn one_retired_chunk() -> (ArenaWriter, Vec<Envelope>) {
    let mut w = small_pool(4);
    let mut envs: Vec<Envelope> = vec![w.copy_bytes(0, &[1; 64]).unwrap()];
    let chunk = envs[0].payload_chunk().unwrap();
    loop {
        let e = w.copy_bytes(0, &[1; 64]).unwrap();
        if e.payload_chunk().unwrap() != chunk {
            return (w, envs); // `e` is in the next chunk: dropping it recycles nothing
        }
        envs.push(e);
    }
}

#[test]
fn a_release_batch_gives_back_a_chunk_once_it_ends() {
    use airssys_rt_mailbox::chunk::ReleaseBatch;
    let (w, envs) = one_retired_chunk();
    let recycled = w.stats().chunks_recycled;
    {
        let _batch = ReleaseBatch::begin();
        let inner = ReleaseBatch::begin();
        drop(envs);
        drop(inner);
        assert_eq!(
            w.stats().chunks_recycled,
            recycled,
            "held back until the outermost batch ends"
        );
    }
    assert_eq!(
        w.stats().chunks_recycled,
        recycled + 1,
        "given back at the end"
    );

    // `flush` gives back what the open batch holds.
    let (w, envs) = one_retired_chunk();
    let recycled = w.stats().chunks_recycled;
    let _batch = ReleaseBatch::begin();
    drop(envs);
    assert_eq!(w.stats().chunks_recycled, recycled);
    ReleaseBatch::flush();
    assert_eq!(
        w.stats().chunks_recycled,
        recycled + 1,
        "given back by flush"
    );
}

#[test]
fn without_a_batch_releases_are_immediate() {
    let (w, envs) = one_retired_chunk();
    let recycled = w.stats().chunks_recycled;
    drop(envs);
    assert_eq!(w.stats().chunks_recycled, recycled + 1);
}
