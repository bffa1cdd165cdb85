//! Arena chunks and the bounded pool that recycles them.
//!
//! # Memory layout
//!
//! ```text
//!  chunk: CHUNK_ALIGN-aligned (64 KiB), `chunk_size` bytes (64 KiB by default)
//! +------------------+------------+---------+------------+---------+-----
//! | ChunkHeader (64) | MsgHeader  | payload | MsgHeader  | payload | ...
//! | free_link, refs, | (16)       | (16-byte| (16)       |         |
//! | pool, size, kind |            | padded) |            |         |
//! +------------------+------------+---------+------------+---------+-----
//! ```
//!
//! * Every chunk is allocated at a [`CHUNK_ALIGN`] boundary and every message header lies in
//!   the first `CHUNK_ALIGN` bytes of its chunk, so the chunk of a message is found by masking
//!   the header's address: no back pointer, and the header stays 16 bytes.
//! * A *large* chunk holds one message that does not fit a regular chunk: same header format,
//!   its own allocation, freed (not pooled) when its last reference goes.
//!
//! # The biased reference count
//!
//! A regular chunk has one writer (an [`ArenaWriter`](crate::ArenaWriter)). When the writer
//! takes the chunk it sets `refs = BIAS`; then it issues messages counting them in a plain
//! local integer (no atomic per message on the send side). Each message holds two references
//! (`REFS_PER_MESSAGE`: its handle's and its queue link's, which a mailbox may keep a little
//! longer than the handle) and releases them with one `fetch_sub(2, Release)`, or one at a
//! time when they part; when the writer is done with the chunk (it rotates to another,
//! or it exits) it *retires* the chunk by releasing `BIAS - issued`. The releases add up to
//! exactly `BIAS`, so whoever brings `refs` to 0 (a receiver, or the writer at retire) is the
//! last, runs `fence(Acquire)` (so every earlier holder's reads happen-before what follows:
//! the `Arc` pattern) and recycles the chunk into its pool's free list. A broadcast adds
//! references with `fetch_add`, one per extra receiver; they are released the same way.
//!
//! # The pool
//!
//! Each writer has a pool. Its free list is an intrusive [`MpscQueue`] of chunks: any thread
//! that recycles a chunk pushes it, only the writer pops. The pool counts the bytes of every
//! chunk it has allocated (regular and large, in use or free) and never goes above
//! `max_bytes`: a writer that needs a chunk and finds none free and no budget left gets
//! [`WriteError::Exhausted`](crate::WriteError::Exhausted), and can wait for a recycle.
//!
//! The pool itself is freed when nothing refers to it any more: its writer holds one
//! reference, and every chunk that is out of the free list holds one. So a thread whose writer
//! is gone while its messages are still in mailboxes leaks nothing: the last release recycles
//! the last chunk, drops the last reference, and the pool frees every chunk in its free list.

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;
use core::task::Waker;

use crate::header::{Link, MsgHeader};
use crate::queue::{Linked, MpscQueue, Pop};
use crate::sync::{fence, ord, AtomicUsize, Mutex, Ordering};

/// Every chunk starts at a multiple of this, and every message header lies within this many
/// bytes of its chunk's start: the mask that maps a header to its chunk.
pub const CHUNK_ALIGN: usize = 64 * 1024;

/// The default size of a regular chunk.
pub const DEFAULT_CHUNK_SIZE: usize = CHUNK_ALIGN;

/// The smallest regular chunk a pool may use.
pub const MIN_CHUNK_SIZE: usize = 4 * 1024;

/// The bias a writer holds on its current chunk (see the module docs). Far above any number of
/// messages a chunk can hold, far below overflow.
pub(crate) const BIAS: usize = 1 << (usize::BITS - 2);

/// References a message holds on its chunk from its publication: one for its [`Envelope`]
/// (the handle), one for its [`Link`](crate::Link) (the queue node), so that a queue may keep
/// using the link after handing the envelope out (see
/// [`Linked::KEEPS_LINK`](crate::Linked::KEEPS_LINK)). An envelope that owns both releases
/// both at once; the writer issues both at once: no atomic more per message either way.
pub(crate) const REFS_PER_MESSAGE: usize = 2;

/// Whether a chunk is pooled (regular) or freed on its last release (large).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    Regular,
    Large,
}

/// The header at the start of every chunk.
#[repr(C, align(64))]
pub(crate) struct ChunkHeader {
    /// Links the chunk into its pool's free list (first field: the chunk pointer is the link).
    free_link: Link,
    /// The biased reference count (see the module docs).
    pub(crate) refs: AtomicUsize,
    /// The pool the chunk belongs to; the chunk holds a reference on it while it is out of the
    /// free list.
    pool: NonNull<PoolShared>,
    /// Bytes of the whole allocation.
    size: usize,
    kind: ChunkKind,
    /// Under loom: stands for the chunk's bytes. The writer writes it when it (re)uses the
    /// chunk, readers read it when they look at a payload; loom reports a reuse that is not
    /// ordered after every read.
    #[cfg(loom)]
    pub(crate) probe: crate::sync::UnsafeCell<usize>,
}

/// Where the first message header of a chunk goes.
pub(crate) const DATA_OFFSET: usize = core::mem::size_of::<ChunkHeader>();

const _: () = assert!(DATA_OFFSET.is_multiple_of(MsgHeader::PAYLOAD_ALIGN));

impl ChunkHeader {
    /// The chunk that holds `msg`.
    #[inline(always)]
    pub(crate) fn of(msg: NonNull<MsgHeader>) -> NonNull<ChunkHeader> {
        let offset = msg.as_ptr() as usize & (CHUNK_ALIGN - 1);
        // Keeps the provenance of `msg` (the chunk allocation); never null, since a header is
        // at least `DATA_OFFSET` bytes into its chunk.
        let base = msg.as_ptr().cast::<u8>().wrapping_sub(offset);
        // SAFETY: see above: `base` is the start of a live chunk allocation.
        unsafe { NonNull::new_unchecked(base.cast::<ChunkHeader>()) }
    }

    /// Allocates a chunk of `size` bytes (a multiple of 16, at least `DATA_OFFSET + 16`) for
    /// `pool`. Its `refs` is 0: the caller sets it. Returns `None` if the allocator fails.
    fn allocate(pool: NonNull<PoolShared>, size: usize, kind: ChunkKind) -> Option<NonNull<Self>> {
        let layout = Layout::from_size_align(size, CHUNK_ALIGN).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc(layout) })?.cast::<ChunkHeader>();
        // SAFETY: `ptr` is a fresh allocation, aligned and large enough for the header.
        unsafe {
            ptr.as_ptr().write(ChunkHeader {
                free_link: Link::new(),
                refs: AtomicUsize::new(0),
                pool,
                size,
                kind,
                #[cfg(loom)]
                probe: crate::sync::UnsafeCell::new(0),
            })
        };
        Some(ptr)
    }

    /// Frees a chunk's memory.
    ///
    /// # Safety
    ///
    /// `chunk` came from [`allocate`](Self::allocate), nothing refers to it any more, and it is
    /// freed once.
    unsafe fn deallocate(chunk: NonNull<Self>) {
        // SAFETY: the header is alive until we drop it here.
        let size = unsafe { (*chunk.as_ptr()).size };
        // SAFETY: as above; the header has no resources besides the memory we free next.
        unsafe { core::ptr::drop_in_place(chunk.as_ptr()) };
        let layout =
            Layout::from_size_align(size, CHUNK_ALIGN).expect("layout was valid at allocation");
        // SAFETY: allocated with this layout by `allocate`.
        unsafe { std::alloc::dealloc(chunk.as_ptr().cast::<u8>(), layout) };
    }

    /// The address of byte `offset` of the chunk.
    #[inline(always)]
    pub(crate) fn at(chunk: NonNull<Self>, offset: usize) -> *mut u8 {
        chunk.as_ptr().cast::<u8>().wrapping_add(offset)
    }

    /// Bytes of the chunk.
    #[inline(always)]
    pub(crate) fn size(chunk: NonNull<Self>) -> usize {
        // SAFETY: callers pass live chunks; `size` is never written after allocation.
        unsafe { (*chunk.as_ptr()).size }
    }

    /// Adds `n` references (a broadcast).
    ///
    /// # Safety
    ///
    /// The caller holds a reference on `chunk` (so it is alive and `refs > 0`).
    #[inline]
    pub(crate) unsafe fn acquire(chunk: NonNull<Self>, n: usize) {
        // Relaxed, as in `Arc::clone`: a new reference is made from an existing one, which
        // already orders everything; only the release needs Release/Acquire.
        // SAFETY: alive, by the caller's contract.
        unsafe { (*chunk.as_ptr()).refs.fetch_add(n, Ordering::Relaxed) };
    }

    /// Drops `n` references; the last one recycles (or frees) the chunk. Inside a
    /// [`ReleaseBatch`] the drop may be deferred to the batch's end (same thread).
    ///
    /// # Safety
    ///
    /// The caller holds `n` references on `chunk` and gives them up.
    #[inline]
    pub(crate) unsafe fn release(chunk: NonNull<Self>, n: usize) {
        #[cfg(not(loom))]
        if batch::defer(chunk, n) {
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { Self::release_now(chunk, n) }
    }

    /// [`release`](Self::release), never deferred.
    ///
    /// # Safety
    ///
    /// As for `release`.
    #[inline]
    pub(crate) unsafe fn release_now(chunk: NonNull<Self>, n: usize) {
        // SAFETY: alive while we hold references.
        let prev = unsafe { (*chunk.as_ptr()).refs.fetch_sub(n, ord::CHUNK_RELEASE()) };
        debug_assert!(prev >= n, "chunk reference count underflow");
        if prev == n {
            // The last reference: every other holder released with Release; this fence makes
            // all their accesses happen-before the recycle (and the reuse that follows it).
            if !crate::sync::mutant("chunk_no_fence") {
                fence(Ordering::Acquire);
            }
            // SAFETY: we were the last holder.
            unsafe { Self::last_release(chunk) };
        }
    }

    /// Recycles a regular chunk into its pool, or frees a large one.
    ///
    /// # Safety
    ///
    /// No references to `chunk` remain.
    #[cold]
    unsafe fn last_release(chunk: NonNull<Self>) {
        // SAFETY: the chunk is alive and ours alone now.
        let (pool, kind, size) = unsafe {
            let c = &*chunk.as_ptr();
            (c.pool, c.kind, c.size)
        };
        // SAFETY: the chunk holds a reference on its pool, so the pool is alive.
        let shared = unsafe { pool.as_ref() };
        match kind {
            ChunkKind::Regular => {
                shared.stats_recycled.fetch_add(1, Ordering::Relaxed);
                shared.free.push(ChunkRef(chunk));
            }
            ChunkKind::Large => {
                // SAFETY: no references remain.
                unsafe { Self::deallocate(chunk) };
                shared.bytes.fetch_sub(size, Ordering::Release);
            }
        }
        shared.wake_waiters();
        // SAFETY: the reference the chunk held on its pool; the pool may be freed here.
        unsafe { PoolShared::release(pool) };
    }
}

/// A chunk in a free list (owning: dropping it frees the chunk's memory).
pub(crate) struct ChunkRef(NonNull<ChunkHeader>);

// SAFETY: `free_link` is the first field of the `#[repr(C)]` header, so the chunk pointer is
// the link pointer; the chunk is a live allocation until `from_link` takes it back, and nothing
// but the free list touches `free_link` meanwhile. A chunk is never at the dangling address.
unsafe impl Linked for ChunkRef {
    fn into_link(self) -> NonNull<Link> {
        let link = self.0.cast::<Link>();
        core::mem::forget(self);
        link
    }
    /// # Safety
    ///
    /// `Linked`'s contract: `link` came from `into_link` on a `ChunkRef` and is taken back
    /// once, so this `ChunkRef` is again the chunk's only owner.
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        ChunkRef(link.cast::<ChunkHeader>())
    }
}

// SAFETY: a free chunk is plain memory owned by whoever holds the `ChunkRef`.
unsafe impl Send for ChunkRef {}

impl Drop for ChunkRef {
    fn drop(&mut self) {
        // SAFETY: a free-listed chunk has no references; this `ChunkRef` owns it.
        unsafe { ChunkHeader::deallocate(self.0) };
    }
}

/// Defers this thread's chunk releases while it is open, so that a run receiving many
/// letters from one chunk gives their references back with one atomic `fetch_sub` instead of
/// one per letter.
///
/// The runtime opens one around each actor run, and its drivers one around a stretch of runs
/// (a pool worker's busy streak, a `FutureDriver` poll, a `ManualDriver` loop), so that the
/// letters of a ping-pong, which come from one chunk, are given back with one `fetch_sub` for
/// many hops. Releases are counted per chunk in a thread-local, for up to two chunks (a
/// worker's own writer's and one other sender's, interleaved): a release on a third chunk gives
/// back the one least recently turned to, and the end of the outermost batch and
/// [`ReleaseBatch::flush`] give back both. So a thread holds back at most two chunks'
/// references, and only until it turns to others, ends its batch, or is about to wait: a writer that finds its pool empty,
/// the arena's waits (`register_waiter`), the runtime's blocking waits and an idle pool worker
/// flush first, so a thread never waits for a chunk it holds back itself. Batches nest: an
/// inner one does nothing. Under
/// `cfg(loom)` releases are never deferred (the models check the atomic protocol, which this
/// only coalesces).
///
/// ```
/// use airssys_rt_mailbox::chunk::ReleaseBatch;
///
/// let batch = ReleaseBatch::begin();
/// // ... receive and drop envelopes: their chunk releases are coalesced ...
/// drop(batch); // given back here
/// ```
#[must_use = "releases are deferred only while the batch is alive"]
pub struct ReleaseBatch {
    outermost: bool,
    /// Thread-bound: the deferred releases live in this thread's local state.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl ReleaseBatch {
    /// Opens a batch on this thread (an inner batch, if one is open, does nothing).
    #[inline]
    pub fn begin() -> Self {
        #[cfg(not(loom))]
        let outermost = batch::open();
        #[cfg(loom)]
        let outermost = false;
        Self {
            outermost,
            _not_send: core::marker::PhantomData,
        }
    }

    /// Gives back the references this thread holds back now, batch or not (before the
    /// thread blocks).
    #[inline]
    pub fn flush() {
        #[cfg(not(loom))]
        batch::flush();
    }
}

impl Drop for ReleaseBatch {
    #[inline]
    fn drop(&mut self) {
        #[cfg(not(loom))]
        if self.outermost {
            batch::close();
        }
    }
}

impl fmt::Debug for ReleaseBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseBatch")
            .field("outermost", &self.outermost)
            .finish()
    }
}

/// The thread-local state of [`ReleaseBatch`].
#[cfg(not(loom))]
mod batch {
    use core::cell::Cell;
    use core::ptr::{self, NonNull};

    use super::ChunkHeader;

    /// How many chunks a thread holds references back on at once: two, so that a worker
    /// receiving letters from its own writer's chunk and from another thread's (any two
    /// senders, interleaved) does not give one back on every turn between them.
    const SLOTS: usize = 2;

    /// One thread's deferred releases: `n[i]` references on `chunk[i]` (null: none held). Slot
    /// 0 holds the chunk turned to last.
    struct Deferred {
        open: Cell<bool>,
        chunk: [Cell<*mut ChunkHeader>; SLOTS],
        n: [Cell<usize>; SLOTS],
    }

    std::thread_local! {
        static DEFERRED: Deferred = const {
            Deferred {
                open: Cell::new(false),
                chunk: [const { Cell::new(ptr::null_mut()) }; SLOTS],
                n: [const { Cell::new(0) }; SLOTS],
            }
        };
    }

    /// Opens the batch; `true` if it was closed (the caller is the outermost batch).
    #[inline]
    pub(super) fn open() -> bool {
        DEFERRED.with(|d| !d.open.replace(true))
    }

    /// Gives back what is held and closes the batch.
    pub(super) fn close() {
        flush();
        DEFERRED.with(|d| d.open.set(false));
    }

    /// Gives back what is held (the batch stays as it was).
    pub(super) fn flush() {
        for i in 0..SLOTS {
            let (chunk, n) =
                DEFERRED.with(|d| (d.chunk[i].replace(ptr::null_mut()), d.n[i].replace(0)));
            if let Some(chunk) = NonNull::new(chunk) {
                // SAFETY: `defer` took over these `n` references from their holders.
                unsafe { ChunkHeader::release_now(chunk, n) };
            }
        }
    }

    /// Takes over `n` references on `chunk` if a batch is open; `false` if not (the caller
    /// releases them itself).
    #[inline(always)]
    pub(super) fn defer(chunk: NonNull<ChunkHeader>, n: usize) -> bool {
        DEFERRED.with(|d| {
            if !d.open.get() {
                return false;
            }
            if d.chunk[0].get() == chunk.as_ptr() {
                d.n[0].set(d.n[0].get() + n);
            } else if d.chunk[1].get() == chunk.as_ptr() {
                d.n[1].set(d.n[1].get() + n);
            } else {
                switch(d, chunk, n);
            }
            true
        })
    }

    /// Holds `chunk` in slot 0; what slot 0 held moves to slot 1, and what slot 1 held is given
    /// back.
    #[cold]
    #[inline(never)]
    fn switch(d: &Deferred, chunk: NonNull<ChunkHeader>, n: usize) {
        let old = d.chunk[1].replace(d.chunk[0].replace(chunk.as_ptr()));
        let old_n = d.n[1].replace(d.n[0].replace(n));
        if let Some(old) = NonNull::new(old) {
            // SAFETY: held since an earlier `defer` on this thread.
            unsafe { ChunkHeader::release_now(old, old_n) };
        }
    }
}

/// How a writer's chunk pool is sized.
///
/// ```
/// use airssys_rt_mailbox::PoolConfig;
///
/// let config = PoolConfig::default().max_bytes(1 << 20).chunk_size(16 * 1024);
/// assert_eq!(config.get_max_bytes(), 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    chunk_size: usize,
    max_bytes: usize,
}

impl Default for PoolConfig {
    /// 64 KiB chunks, at most 4 MiB of chunks per writer.
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_bytes: 64 * DEFAULT_CHUNK_SIZE,
        }
    }
}

impl PoolConfig {
    /// Sets the size of regular chunks: rounded to a power of two and clamped to
    /// [`MIN_CHUNK_SIZE`]`..=`[`CHUNK_ALIGN`].
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes
            .clamp(MIN_CHUNK_SIZE, CHUNK_ALIGN)
            .next_power_of_two()
            .min(CHUNK_ALIGN);
        self
    }

    /// Sets the most bytes of chunks (regular and large, in use or free) the pool may hold.
    /// At least one regular chunk is always allowed.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The size of regular chunks.
    pub fn get_chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The byte budget of the pool.
    pub fn get_max_bytes(&self) -> usize {
        self.max_bytes.max(self.chunk_size)
    }
}

/// Counters of a pool (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of chunks allocated now (regular and large, in use or free).
    pub bytes: usize,
    /// The byte budget.
    pub max_bytes: usize,
    /// Regular chunks allocated from the system allocator, ever.
    pub chunks_allocated: usize,
    /// Regular chunks recycled into the free list, ever.
    pub chunks_recycled: usize,
    /// Large chunks allocated, ever.
    pub large_allocated: usize,
}

/// The shared part of a pool: lives as long as its writer or any of its chunks.
pub(crate) struct PoolShared {
    free: MpscQueue<ChunkRef>,
    /// References: 1 for the writer + 1 per chunk out of the free list.
    holders: AtomicUsize,
    /// Bytes of chunks allocated now.
    bytes: AtomicUsize,
    pub(crate) config: PoolConfig,
    /// Wakers of writers waiting for space (the slow path only).
    waiters: Mutex<Vec<Waker>>,
    waiting: AtomicUsize,
    stats_allocated: AtomicUsize,
    stats_recycled: AtomicUsize,
    stats_large: AtomicUsize,
}

/// Why a chunk could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// The byte budget is used up (for now).
    Exhausted,
    /// The request is larger than the whole budget: it can never succeed.
    TooLarge,
}

impl PoolShared {
    /// A new pool with one reference (the writer's).
    pub(crate) fn create(config: PoolConfig) -> NonNull<PoolShared> {
        let shared = Box::new(PoolShared {
            free: MpscQueue::new(),
            holders: AtomicUsize::new(1),
            bytes: AtomicUsize::new(0),
            config,
            waiters: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            stats_allocated: AtomicUsize::new(0),
            stats_recycled: AtomicUsize::new(0),
            stats_large: AtomicUsize::new(0),
        });
        NonNull::from(Box::leak(shared))
    }

    /// Drops one reference; the last one frees the pool and every chunk in its free list.
    ///
    /// # Safety
    ///
    /// The caller holds a reference and gives it up.
    pub(crate) unsafe fn release(pool: NonNull<PoolShared>) {
        // SAFETY: alive while we hold a reference.
        let prev = unsafe { pool.as_ref() }
            .holders
            .fetch_sub(1, Ordering::Release);
        if prev == 1 {
            fence(Ordering::Acquire);
            // SAFETY: the last reference: nobody else can reach the pool. Dropping the box
            // drops the free list, which frees each free chunk once.
            drop(unsafe { Box::from_raw(pool.as_ptr()) });
        }
    }

    /// Takes a regular chunk for the writer: a free one, else a new one within the budget.
    /// The chunk comes with `refs == BIAS` and a reference on the pool.
    ///
    /// # Safety
    ///
    /// Only the pool's writer calls this (it is the free list's single consumer), and it holds
    /// its reference on the pool.
    pub(crate) unsafe fn take_chunk(
        pool: NonNull<PoolShared>,
    ) -> Result<NonNull<ChunkHeader>, ChunkError> {
        // SAFETY: the writer's reference keeps the pool alive.
        let shared = unsafe { pool.as_ref() };
        // SAFETY: the writer is the single consumer.
        let mut popped = unsafe { shared.free.pop() };
        if !matches!(popped, Pop::Data(_)) {
            // References this thread holds back may be all that keeps a chunk from the list.
            ReleaseBatch::flush();
            // SAFETY: as above.
            popped = unsafe { shared.free.pop() };
        }
        let chunk = match popped {
            Pop::Data(c) => {
                let chunk = c.0;
                core::mem::forget(c);
                chunk
            }
            Pop::Empty | Pop::Inconsistent => {
                let size = shared.config.chunk_size;
                shared.reserve(size)?;
                match ChunkHeader::allocate(pool, size, ChunkKind::Regular) {
                    Some(c) => {
                        shared.stats_allocated.fetch_add(1, Ordering::Relaxed);
                        c
                    }
                    None => {
                        shared.bytes.fetch_sub(size, Ordering::Relaxed);
                        return Err(ChunkError::Exhausted);
                    }
                }
            }
        };
        shared.holders.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the chunk is ours alone: fresh, or recycled (its last holder's fence and the
        // free list's Release/Acquire order every earlier access before this point).
        unsafe {
            let c = &*chunk.as_ptr();
            #[cfg(loom)]
            c.probe.with_mut(|p| *p += 1);
            // Exclusive: no concurrent RMW can meet this store.
            c.refs.store(BIAS, Ordering::Relaxed);
        }
        Ok(chunk)
    }

    /// Allocates a large chunk of `size` bytes with `refs == REFS_PER_MESSAGE` (its one
    /// message's) and a reference on the pool.
    ///
    /// # Safety
    ///
    /// Only the pool's writer calls this (it may trim the free list, of which it is the single
    /// consumer), and it holds its reference on the pool.
    pub(crate) unsafe fn take_large(
        pool: NonNull<PoolShared>,
        size: usize,
    ) -> Result<NonNull<ChunkHeader>, ChunkError> {
        // SAFETY: the caller's reference keeps the pool alive.
        let shared = unsafe { pool.as_ref() };
        match shared.reserve(size) {
            Ok(()) => {}
            Err(ChunkError::Exhausted) => {
                // Free chunks count against the budget too: give them back to the system and
                // try again, so a large message is not refused for space nobody is using.
                // SAFETY: only the pool's writer calls this (see `# Safety`).
                unsafe { shared.trim() };
                shared.reserve(size)?;
            }
            Err(e @ ChunkError::TooLarge) => return Err(e),
        }
        let Some(chunk) = ChunkHeader::allocate(pool, size, ChunkKind::Large) else {
            shared.bytes.fetch_sub(size, Ordering::Relaxed);
            return Err(ChunkError::Exhausted);
        };
        shared.stats_large.fetch_add(1, Ordering::Relaxed);
        shared.holders.fetch_add(1, Ordering::Relaxed);
        // SAFETY: fresh and ours alone. Its one message's references.
        unsafe {
            (*chunk.as_ptr())
                .refs
                .store(REFS_PER_MESSAGE, Ordering::Relaxed)
        };
        Ok(chunk)
    }

    /// Frees every chunk in the free list, returning their bytes to the budget.
    ///
    /// # Safety
    ///
    /// Only the pool's writer calls this (the free list's single consumer).
    unsafe fn trim(&self) {
        // SAFETY: the caller is the single consumer.
        while let Pop::Data(chunk) = unsafe { self.free.pop() } {
            drop(chunk);
            self.bytes
                .fetch_sub(self.config.chunk_size, Ordering::Relaxed);
        }
    }

    /// Reserves `size` bytes of the budget.
    fn reserve(&self, size: usize) -> Result<(), ChunkError> {
        let max = self.config.get_max_bytes();
        if size > max {
            return Err(ChunkError::TooLarge);
        }
        let prev = self.bytes.fetch_add(size, Ordering::Acquire);
        if prev + size > max {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return Err(ChunkError::Exhausted);
        }
        Ok(())
    }

    /// Registers `waker` to be woken when a chunk is recycled or bytes are freed. The caller
    /// must try again after registering (a recycle may have happened just before).
    pub(crate) fn register_waiter(&self, waker: &Waker) {
        // The caller is about to wait for a chunk: give back any this thread holds back.
        ReleaseBatch::flush();
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        drop(waiters);
        // Pairs with the fence in `wake_waiters`: either the recycler sees `waiting > 0`, or
        // the caller's retry sees the recycled chunk.
        fence(Ordering::SeqCst);
    }

    fn wake_waiters(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            self.waiting.fetch_sub(waiters.len(), Ordering::SeqCst);
            core::mem::take(&mut *waiters)
        };
        for w in woken {
            w.wake();
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            bytes: self.bytes.load(Ordering::Relaxed),
            max_bytes: self.config.get_max_bytes(),
            chunks_allocated: self.stats_allocated.load(Ordering::Relaxed),
            chunks_recycled: self.stats_recycled.load(Ordering::Relaxed),
            large_allocated: self.stats_large.load(Ordering::Relaxed),
        }
    }
}
