//! Prints the size and alignment of a mailbox and checks that an idle one owns no heap memory.
//!
//! A mailbox's own fields take 64 bytes: `Mailbox<U, S, ()>`. The default `Mailbox<U, S>`
//! also holds a 24-byte [`Gap`](airssys_rt_mailbox::Gap) between its producers' and its
//! consumer's fields, so they never share a cache line; an actor cell fills that gap with its
//! own cold fields instead (id, system pointer, registry marks), leaving 7 bytes of padding.
//!
//! ```text
//! cargo run --release --example mailbox_size
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicUsize, Ordering};

use airssys_rt_mailbox::{Boxed, Mailbox, MpscQueue, SchedState, GAP_BYTES};

/// The system allocator, counting allocations and bytes (this thread does all the work here).
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`, per the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`, per the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (usize, usize) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

type M = Mailbox<Boxed<u64>, Boxed<u64>>;
/// The mailbox's own fields, with nothing kept between its two ends.
type Own = Mailbox<Boxed<u64>, Boxed<u64>, ()>;

fn main() {
    let size = size_of::<Own>();
    let align = align_of::<M>();
    println!("size_of::<Mailbox<Boxed<u64>, Boxed<u64>, ()>>() = {size} bytes (target <= 64): its own fields");
    println!(
        "size_of::<Mailbox<Boxed<u64>, Boxed<u64>>>()     = {} bytes: with the {GAP_BYTES}-byte gap that keeps its two ends on different cache lines",
        size_of::<M>()
    );
    println!("align_of::<Mailbox<Boxed<u64>, Boxed<u64>>>()    = {align} bytes");
    println!(
        "  parts: MpscQueue = {} bytes x 2, SchedState = {} bytes, Option<Mailbox> = {} bytes",
        size_of::<MpscQueue<Boxed<u64>>>(),
        size_of::<SchedState>(),
        size_of::<Option<M>>()
    );

    // Construct (and, separately, box and drop) idle mailboxes between two counter snapshots.
    let before = counters();
    let idle: M = std::hint::black_box(Mailbox::unbounded());
    let bounded: Own = std::hint::black_box(Mailbox::bounded(8.try_into().unwrap()));
    let after = counters();
    let (allocs, bytes) = (after.0 - before.0, after.1 - before.1);
    println!("idle Mailbox::unbounded() + ::bounded(8): {allocs} allocations, {bytes} bytes");

    // Sanity check that the counter works: one Boxed node is one allocation.
    let before = counters();
    let node = std::hint::black_box(Boxed::new(7u64));
    let after = counters();
    println!(
        "(control) Boxed::new(7u64): {} allocation(s), {} bytes",
        after.0 - before.0,
        after.1 - before.1
    );
    drop(node);
    drop((idle, bounded));

    assert!(
        size <= 64,
        "a mailbox's own fields are {size} bytes, over the 64-byte target"
    );
    assert_eq!(
        size_of::<M>(),
        size + GAP_BYTES,
        "the gap is all the default adds"
    );
    assert_eq!(bytes, 0, "an idle mailbox must own no heap allocation");
    println!("OK: own fields {size} bytes <= 64, idle mailbox allocates 0 bytes");
}
