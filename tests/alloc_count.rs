//! Allocation counts (not timings): steady-state messaging allocates nothing, and a broadcast
//! allocates its payload once.
//!
//! A counting global allocator counts only the allocations of the thread that switched it on,
//! so the test harness's own threads do not disturb the counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use airssys_rt::arena;
use airssys_rt::codec;
use airssys_rt::mailbox::{Boxed, Envelope, Mailbox, Received, RunToken};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// (allocations, bytes, allocations over 64 KiB) of this thread while counting.
    static COUNTS: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

fn record(size: usize) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNTS.try_with(|c| {
            let (n, bytes, big) = c.get();
            c.set((n + 1, bytes + size, big + usize::from(size > 64 * 1024)));
        });
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, bytes, allocations over 64 KiB) made by this thread while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize, usize, usize) {
    COUNTS.with(|c| c.set((0, 0, 0)));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    let (n, bytes, big) = COUNTS.with(Cell::get);
    (r, n, bytes, big)
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
struct Order {
    id: u64,
    qty: u32,
    price: f64,
    symbol: String,
    fills: Vec<u32>,
    tags: Vec<String>,
}
airssys_rt::message!(Order);

#[derive(Debug, Clone, Copy, PartialEq)]
struct Tick {
    seq: u64,
    value: f64,
}

type Mb = Mailbox<Envelope, Boxed<()>>;

/// Sends `n` messages in batches of 100 with `send`, receiving each with `recv`.
fn pump(
    mb: &Mb,
    n: usize,
    mut send: impl FnMut(usize) -> Option<RunToken>,
    mut recv: impl FnMut(Envelope),
) {
    let mut token = None;
    let mut i = 0;
    while i < n {
        for _ in 0..100 {
            if let Some(t) = send(i) {
                token = Some(t);
            }
            i += 1;
        }
        let mut run = mb.begin_run(token.take().expect("a push scheduled the mailbox"));
        while let Some(Received::User(env)) = run.pop() {
            recv(env);
        }
        token = run.finish(false);
        assert!(token.is_none());
    }
}

#[test]
fn a_million_archived_and_plain_messages_allocate_nothing() {
    let mb: Mb = Mailbox::unbounded();
    let order = Order {
        id: 7,
        qty: 100,
        price: 12.5,
        symbol: "AIRS".into(),
        fills: vec![1, 2, 3, 4],
        tags: vec!["a".into(), "bb".into()],
    };
    let send_archived = |_: usize| {
        let env = arena::with_writer(|w| codec::encode(w, &order)).unwrap();
        mb.try_push(env).unwrap()
    };
    let mut sum = 0u64;
    let recv_archived = |env: Envelope| {
        let o = codec::view::<Order>(&env).unwrap();
        assert_eq!(o.symbol, "AIRS");
        sum += u64::from(o.qty.to_native()) + o.fills.len() as u64 + o.tags.len() as u64;
    };
    // Warm up: the thread's writer, its pool's chunks, the serializer's scratch.
    let mut recv = recv_archived;
    pump(&mb, 20_000, send_archived, &mut recv);
    let (_, allocs, bytes, _) = count(|| pump(&mb, 1_000_000, send_archived, &mut recv));
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "archived messages allocated in steady state"
    );

    let send_plain = |i: usize| {
        arena::try_send_plain(
            &mb,
            Tick {
                seq: i as u64,
                value: 1.5,
            },
        )
        .unwrap()
    };
    let mut next = 0u64;
    let mut recv_plain = |env: Envelope| {
        let t = env.take::<Tick>().unwrap();
        next = t.seq + 1;
    };
    pump(&mb, 20_000, send_plain, &mut recv_plain);
    let (_, allocs, bytes, _) = count(|| pump(&mb, 1_000_000, send_plain, &mut recv_plain));
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "plain messages allocated in steady state"
    );
    assert_eq!(next, 1_000_000);
    assert!(sum > 0);
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Blob {
    data: Vec<u8>,
}
airssys_rt::message!(Blob);

#[test]
fn broadcasting_64k_to_10000_mailboxes_allocates_the_payload_once() {
    const RECEIVERS: usize = 10_000;
    let blob = Blob {
        data: vec![0xAB; 64 * 1024],
    };
    let mailboxes: Vec<Mb> = (0..RECEIVERS).map(|_| Mailbox::unbounded()).collect();
    let mut tokens = Vec::with_capacity(RECEIVERS);
    let (_, allocs, bytes, big) = count(|| {
        arena::with_writer(|w| {
            let original = codec::encode(w, &blob).unwrap();
            for mb in &mailboxes {
                let copy = w.share(&original).unwrap();
                tokens.push(mb.try_push(copy).unwrap().unwrap());
            }
        })
    });
    // One allocation holds the payload (a large chunk); the 32-byte broadcast nodes fill a
    // handful of regular 64 KiB chunks. A copy per receiver would be 640 MiB.
    assert_eq!(big, 1, "the payload was allocated more than once");
    assert!(allocs <= 12, "{allocs} allocations");
    assert!(bytes < 1024 * 1024, "{bytes} bytes allocated");

    let mut addr = None;
    for (mb, token) in mailboxes.iter().zip(tokens) {
        let mut run = mb.begin_run(token);
        let Some(Received::User(env)) = run.pop() else {
            panic!("missing broadcast")
        };
        let data = &codec::view::<Blob>(&env).unwrap().data;
        assert_eq!(data.len(), 64 * 1024);
        let here = data.as_ptr();
        assert_eq!(*addr.get_or_insert(here), here, "a receiver got a copy");
        assert!(run.finish(false).is_none());
    }
}
