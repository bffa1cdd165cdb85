//! Memory probes: a counting global allocator (net heap bytes, all threads, only while a probe
//! is on, so that the timed workloads pay one relaxed load per allocation and nothing more)
//! and the resident set size from `/proc/self/statm`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Whether allocations are being counted.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Net bytes allocated (allocations minus frees) while counting, by every thread.
static NET: AtomicIsize = AtomicIsize::new(0);

/// Forwards to the system allocator; counts net bytes while [`COUNTING`] is on.
pub struct Counting;

fn record(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        NET.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the arguments it was given; the
// wrapper only updates two atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize);
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation of this
        // program goes through this wrapper), as our caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size as isize - layout.size() as isize);
        // SAFETY: as for `dealloc`; `new_size` is valid as our caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Resident set size in bytes (`/proc/self/statm`, second field, in 4 KiB pages).
pub fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What `f` added to the heap (net bytes, every thread) and to the resident set, with `f`'s
/// result.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, isize, Option<isize>) {
    let rss0 = rss_bytes();
    NET.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    let heap = NET.load(Ordering::SeqCst);
    let rss = rss0.zip(rss_bytes()).map(|(a, b)| b as isize - a as isize);
    (r, heap, rss)
}
