//! Loom model: the biased reference count of an arena chunk and its recycling.
//!
//! A writer with a budget of exactly one chunk writes two messages, hands them to two receiver
//! threads, retires the chunk, and then writes again, which can only succeed once the chunk
//! has been recycled. Receivers read their payload (loom sees the read through the chunk's
//! probe cell) and drop the message. The writer's reuse writes the probe. Checks: the chunk is
//! recycled exactly once per retirement, and reused only after every reader is done (loom
//! reports a data race otherwise: mutants `chunk_release_relaxed`, `chunk_no_fence`).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_chunk`
#![cfg(loom)]

use airssys_rt_mailbox::{ArenaWriter, PoolConfig, WriteError};
use loom::thread;

#[test]
fn chunk_recycled_once_and_not_reused_early() {
    loom::model(|| {
        let one_chunk = 4096;
        let mut writer = ArenaWriter::new(
            PoolConfig::default()
                .chunk_size(one_chunk)
                .max_bytes(one_chunk),
        );
        let a = writer.copy_bytes(1, b"first").unwrap();
        let b = writer.copy_bytes(2, b"second").unwrap();
        let receivers = [(a, &b"first"[..]), (b, &b"second"[..])].map(|(env, want)| {
            thread::spawn(move || {
                assert_eq!(env.bytes(), Some(want));
                drop(env);
            })
        });
        writer.retire_current();
        // The budget holds one chunk: this write succeeds only with the recycled chunk.
        let c = loop {
            match writer.copy_bytes(3, b"third") {
                Ok(env) => break env,
                Err(WriteError::Exhausted) => thread::yield_now(),
                Err(e) => panic!("unexpected {e:?}"),
            }
        };
        assert_eq!(c.bytes(), Some(&b"third"[..]));
        let stats = writer.stats();
        assert_eq!(stats.chunks_allocated, 1, "a second chunk was allocated");
        assert_eq!(stats.chunks_recycled, 1, "recycled exactly once");
        for r in receivers {
            r.join().unwrap();
        }
        drop(c);
        writer.retire_current();
        assert_eq!(writer.stats().chunks_recycled, 2);
    });
}

#[test]
fn writer_exit_with_messages_in_flight_frees_everything() {
    loom::model(|| {
        let mut writer = ArenaWriter::new(PoolConfig::default().chunk_size(4096));
        let a = writer.copy_bytes(1, b"outlives its writer").unwrap();
        let receiver = thread::spawn(move || {
            assert_eq!(a.bytes(), Some(&b"outlives its writer"[..]));
        });
        // The writer goes away first (or not): the last of the two frees the pool.
        drop(writer);
        receiver.join().unwrap();
    });
}
