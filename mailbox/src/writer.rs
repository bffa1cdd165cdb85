//! [`ArenaWriter`]: one thread's bump allocator over its pool's chunks.

use core::convert::Infallible;
use core::fmt;
use core::mem::{self, MaybeUninit};
use core::ptr::NonNull;
use core::task::Waker;

use crate::chunk::{
    ChunkError, ChunkHeader, PoolConfig, PoolShared, PoolStats, BIAS, DATA_OFFSET, REFS_PER_MESSAGE,
};
use crate::envelope::{Envelope, Kind, PlainNode, SharedNode, VTableOf, TYPE_TAG_MASK};
use crate::header::MsgHeader;

const HEADER: usize = mem::size_of::<MsgHeader>();

/// What a fill closure of [`ArenaWriter::write_bytes`] reports when it cannot finish.
#[derive(Debug, PartialEq, Eq)]
pub enum FillError<E> {
    /// The region was too small: the writer retries with a larger one.
    Overflow,
    /// Writing failed for another reason: the writer gives up and returns it.
    Failed(E),
}

/// Why a message could not be written into the arena.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError<E = Infallible> {
    /// The pool's byte budget is used up: retry once receivers have released messages (or
    /// wait: [`ArenaWriter::register_waiter`]).
    Exhausted,
    /// The message needs more than the pool's whole budget: it can never be written.
    TooLarge {
        /// The pool's byte budget.
        max_bytes: usize,
    },
    /// Only bytes (not plain values) can be shared with several receivers.
    NotShareable,
    /// The fill closure failed.
    Failed(E),
}

impl<E: fmt::Display> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Exhausted => {
                f.write_str("arena pool exhausted: no chunk free within the byte budget")
            }
            WriteError::TooLarge { max_bytes } => {
                write!(
                    f,
                    "message larger than the arena pool's whole budget of {max_bytes} bytes"
                )
            }
            WriteError::NotShareable => {
                f.write_str("a plain value cannot be shared between receivers")
            }
            WriteError::Failed(e) => write!(f, "writing the message failed: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for WriteError<E> {}

impl<E> From<ChunkError> for WriteError<E> {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::Exhausted => WriteError::Exhausted,
            ChunkError::TooLarge => WriteError::TooLarge { max_bytes: 0 },
        }
    }
}

/// One thread's writer into its own pool of arena chunks.
///
/// The writer bumps a cursor through its current chunk, writing each message (header, then
/// payload) in place. Messages up to a sixteenth of a chunk go inline; a chunk with less room
/// than that left is retired and a fresh one taken; a message too large for a chunk gets a
/// dedicated large chunk with the same header format. See [`chunk`](crate::chunk) for the
/// reference counting and the pool.
///
/// ```
/// use airssys_rt_mailbox::{ArenaWriter, FillError, PoolConfig};
///
/// let mut writer = ArenaWriter::new(PoolConfig::default());
/// // Write in place: the closure gets the free region and says how much it used.
/// let env = writer
///     .write_bytes::<()>(42, |region| {
///         if region.len() < 3 {
///             return Err(FillError::Overflow);
///         }
///         for (dst, b) in region.iter_mut().zip(*b"abc") {
///             dst.write(b);
///         }
///         Ok(3)
///     })
///     .unwrap();
/// assert_eq!(env.bytes(), Some(&b"abc"[..]));
/// assert_eq!(env.bytes().unwrap().as_ptr() as usize % 16, 0); // payloads are 16-aligned
/// ```
pub struct ArenaWriter {
    pool: NonNull<PoolShared>,
    /// The current chunk (the writer holds its bias), if any.
    chunk: Option<NonNull<ChunkHeader>>,
    /// Offset of the next header in the current chunk.
    cursor: usize,
    /// Size of the current chunk, cached: the chunk header's cache line is written by every
    /// receiver's release, so the send path must not read it.
    end: usize,
    /// References issued from the current chunk ([`REFS_PER_MESSAGE`] per message, plus
    /// nothing else).
    issued: usize,
}

// SAFETY: the writer is the only writer of its chunks and the only consumer of its pool's free
// list wherever it is; moving it to another thread moves that role with it.
unsafe impl Send for ArenaWriter {}

impl ArenaWriter {
    /// A writer with a new, empty pool. Nothing is allocated until the first write.
    pub fn new(config: PoolConfig) -> Self {
        Self {
            pool: PoolShared::create(config),
            chunk: None,
            cursor: 0,
            end: 0,
            issued: 0,
        }
    }

    fn shared(&self) -> &PoolShared {
        // SAFETY: the writer holds a reference on its pool.
        unsafe { self.pool.as_ref() }
    }

    /// The pool's configuration.
    pub fn config(&self) -> PoolConfig {
        self.shared().config
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.shared().stats()
    }

    /// The largest payload written inline (a sixteenth of a chunk); larger ones may get a
    /// large chunk of their own.
    pub fn max_inline(&self) -> usize {
        self.config().get_chunk_size() / 16
    }

    /// Registers `waker` to be woken when the pool gets space back (a chunk recycled, a large
    /// chunk freed). Retry the write after registering: space may have come back already.
    pub fn register_waiter(&self, waker: &Waker) {
        self.shared().register_waiter(waker);
    }

    /// Bytes left in the current chunk after its cursor.
    #[inline]
    fn room(&self) -> usize {
        match self.chunk {
            Some(_) => self.end - self.cursor,
            None => 0,
        }
    }

    /// Retires the current chunk and takes another (once per chunk: kept out of line).
    #[cold]
    #[inline(never)]
    fn rotate(&mut self) -> Result<(), ChunkError> {
        self.retire();
        // SAFETY: we are the pool's writer and hold our reference.
        let chunk = unsafe { PoolShared::take_chunk(self.pool) }?;
        self.chunk = Some(chunk);
        self.cursor = DATA_OFFSET;
        self.end = ChunkHeader::size(chunk);
        self.issued = 0;
        Ok(())
    }

    /// Gives up the current chunk now: it is recycled as soon as its last message is dropped,
    /// instead of when the writer next rotates. A thread about to block for a long time should
    /// call this, so that its half-used chunk does not stay pinned.
    pub fn retire_current(&mut self) {
        self.retire();
    }

    /// Gives up the bias on the current chunk: its last message recycles it.
    fn retire(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            // SAFETY: we hold `BIAS - issued` of the chunk's references (the bias minus the
            // ones handed to messages).
            unsafe { ChunkHeader::release(chunk, BIAS - self.issued) };
        }
    }

    /// Makes sure the current chunk has at least `need` bytes after the cursor.
    #[inline]
    fn ensure_room(&mut self, need: usize) -> Result<(), ChunkError> {
        if self.chunk.is_none() || self.room() < need {
            self.rotate()?;
        }
        Ok(())
    }

    /// Writes the header at the cursor for a payload of `len` bytes taking `span` bytes, and
    /// issues the message.
    fn commit(&mut self, tag: u32, len: usize, span: usize) -> Envelope {
        let chunk = self.chunk.expect("commit needs a chunk");
        let header = ChunkHeader::at(chunk, self.cursor).cast::<MsgHeader>();
        // SAFETY: `cursor` is 16-aligned, inside the chunk, with `span >= HEADER + len` bytes of
        // room that no published message uses.
        unsafe { header.write(MsgHeader::new(len as u32, tag)) };
        self.cursor += round16(span);
        self.issued += REFS_PER_MESSAGE;
        // SAFETY: the message is fully written and gets the references we issue for it.
        unsafe { Envelope::from_header(NonNull::new_unchecked(header)) }
    }

    /// Writes a message of bytes in place: `fill` gets the free region (16-byte aligned) and
    /// returns how many bytes it wrote, or [`FillError::Overflow`] to be called again with a
    /// larger region (it may be called several times; only the last call's bytes count).
    ///
    /// `type_tag` must fit in 30 bits ([`TYPE_TAG_MASK`]); higher bits are ignored.
    pub fn write_bytes<E>(
        &mut self,
        type_tag: u32,
        fill: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<usize, FillError<E>>,
    ) -> Result<Envelope, WriteError<E>> {
        self.write_bytes_sized(type_tag, 0, fill)
    }

    /// [`write_bytes`](Self::write_bytes) for a payload known to need at least `min_len`
    /// bytes: a payload too large for a chunk goes straight to a large chunk of the right size.
    pub fn write_bytes_sized<E>(
        &mut self,
        type_tag: u32,
        min_len: usize,
        fill: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<usize, FillError<E>>,
    ) -> Result<Envelope, WriteError<E>> {
        self.write_kind(Kind::Bytes, type_tag, min_len, fill)
    }

    /// Like [`write_bytes_sized`](Self::write_bytes_sized), but the message is marked verified
    /// ([`Kind::Archived`]): readers may trust its bytes for `type_tag` without validating.
    ///
    /// # Safety
    ///
    /// Whenever `fill` returns `Ok(len)`, the `len` bytes it wrote at the start of its region
    /// must be a valid encoding of the type that `type_tag` names, by the definition of
    /// whoever reads them unchecked (in airssys-rt: an rkyv archive of that type, written by
    /// rkyv's serializer or validated with bytecheck), given that they start 16-byte aligned.
    pub unsafe fn write_verified<E>(
        &mut self,
        type_tag: u32,
        min_len: usize,
        fill: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<usize, FillError<E>>,
    ) -> Result<Envelope, WriteError<E>> {
        self.write_kind(Kind::Archived, type_tag, min_len, fill)
    }

    fn write_kind<E>(
        &mut self,
        kind: Kind,
        type_tag: u32,
        min_len: usize,
        mut fill: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<usize, FillError<E>>,
    ) -> Result<Envelope, WriteError<E>> {
        let tag = (type_tag & TYPE_TAG_MASK) | kind.bits();
        let inline = self.max_inline();
        if min_len > inline {
            return self.write_large(tag, min_len, fill);
        }
        self.ensure_room(HEADER + inline)
            .map_err(|e| self.error(e))?;
        let mut fresh = self.cursor == DATA_OFFSET;
        loop {
            let chunk = self.chunk.expect("ensured above");
            let start = self.cursor + HEADER;
            let end = self.end;
            // SAFETY: `start..end` is the unused tail of our current chunk: nobody reads it.
            let region = unsafe { region(chunk, start, end) };
            match fill(region) {
                Ok(len) => {
                    assert!(
                        len <= end - start,
                        "fill reported more bytes than its region holds"
                    );
                    return Ok(self.commit(tag, len, HEADER + len));
                }
                Err(FillError::Failed(e)) => return Err(WriteError::Failed(e)),
                Err(FillError::Overflow) if !fresh => {
                    self.rotate().map_err(|e| self.error(e))?;
                    fresh = true;
                }
                Err(FillError::Overflow) => break,
            }
        }
        self.write_large(tag, min_len, fill)
    }

    /// The large-message path: a dedicated chunk, doubled until the message fits or the
    /// budget is reached.
    fn write_large<E>(
        &mut self,
        tag: u32,
        min_len: usize,
        mut fill: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<usize, FillError<E>>,
    ) -> Result<Envelope, WriteError<E>> {
        let max = self.config().get_max_bytes();
        let needed = (DATA_OFFSET + HEADER)
            .saturating_add(min_len)
            .next_multiple_of(16);
        let mut size = needed.max(self.config().get_chunk_size() * 2).min(max);
        if needed > max {
            return Err(WriteError::TooLarge { max_bytes: max });
        }
        loop {
            let chunk = self.take_large(size).map_err(|e| self.error(e))?;
            let start = DATA_OFFSET + HEADER;
            // SAFETY: a fresh chunk of ours: nobody else can see it yet.
            let region = unsafe { region(chunk, start, size) };
            match fill(region) {
                Ok(len) => {
                    assert!(
                        len <= size - start,
                        "fill reported more bytes than its region holds"
                    );
                    let header = ChunkHeader::at(chunk, DATA_OFFSET).cast::<MsgHeader>();
                    // SAFETY: the header slot of the fresh chunk; its one message's references
                    // go to the envelope.
                    unsafe {
                        header.write(MsgHeader::new(len as u32, tag));
                        return Ok(Envelope::from_header(NonNull::new_unchecked(header)));
                    }
                }
                Err(e) => {
                    // SAFETY: the chunk's only references are ours; this frees it.
                    unsafe { ChunkHeader::release(chunk, REFS_PER_MESSAGE) };
                    match e {
                        FillError::Failed(e) => return Err(WriteError::Failed(e)),
                        FillError::Overflow if size >= max => {
                            return Err(WriteError::TooLarge { max_bytes: max })
                        }
                        FillError::Overflow => size = size.saturating_mul(2).min(max),
                    }
                }
            }
        }
    }

    /// Copies `bytes` into the arena as a message (for bytes that already exist; serializers
    /// should write in place with [`write_bytes`](Self::write_bytes)).
    pub fn copy_bytes(&mut self, type_tag: u32, bytes: &[u8]) -> Result<Envelope, WriteError> {
        self.write_bytes_sized(type_tag, bytes.len(), |region| {
            if region.len() < bytes.len() {
                return Err(FillError::Overflow);
            }
            for (dst, b) in region.iter_mut().zip(bytes) {
                dst.write(*b);
            }
            Ok(bytes.len())
        })
    }

    /// Moves a Rust value into the arena (no serialization, no allocation per message). The
    /// receiver gets it back with [`Envelope::take`]; if nobody takes it, its destructor runs
    /// once when the envelope is dropped. On failure the value comes back with the reason.
    pub fn write_plain<T: Send + 'static>(
        &mut self,
        value: T,
    ) -> Result<Envelope, (T, WriteError)> {
        const {
            assert!(
                mem::align_of::<T>() <= 4096,
                "plain messages support alignment up to 4096"
            )
        };
        let tag = Kind::Plain.bits();
        let node_size = mem::size_of::<PlainNode<T>>();
        let node_align = mem::align_of::<PlainNode<T>>();
        let len = u32::try_from(node_size).unwrap_or(u32::MAX);
        // The header goes `pad` bytes past `cursor`, so that the node after it is aligned.
        let pad = |cursor: usize| (cursor + HEADER).next_multiple_of(node_align) - HEADER - cursor;
        // The most room the message can take, whatever the cursor.
        let worst_span = node_align + HEADER + node_size;
        let header = if worst_span <= self.max_inline() {
            if let Err(e) = self.ensure_room(worst_span) {
                return Err((value, self.error(e)));
            }
            self.cursor += pad(self.cursor);
            let header = ChunkHeader::at(self.chunk.expect("ensured above"), self.cursor);
            self.cursor += round16(HEADER + node_size);
            self.issued += REFS_PER_MESSAGE;
            header.cast::<MsgHeader>()
        } else {
            let offset = DATA_OFFSET + pad(DATA_OFFSET);
            let size = (offset + HEADER + node_size).next_multiple_of(16);
            match self.take_large(size) {
                Ok(chunk) => ChunkHeader::at(chunk, offset).cast::<MsgHeader>(),
                Err(e) => return Err((value, self.error(e))),
            }
        };
        // SAFETY: `header` is a 16-aligned slot with room for the header and the node right
        // after it (aligned for `PlainNode<T>`), unused by any published message; the message
        // holds its references (issued above, or the large chunk's only ones).
        unsafe {
            header.write(MsgHeader::new(len, tag));
            let node = MsgHeader::payload_ptr(header)
                .cast_mut()
                .cast::<PlainNode<T>>();
            node.write(PlainNode {
                vtable: &VTableOf::<T>::VTABLE,
                value,
            });
            Ok(Envelope::from_header(NonNull::new_unchecked(header)))
        }
    }

    /// Publishes one more reference to the bytes of `original` (a broadcast): a 32-byte node
    /// that points at the same payload, which is not copied. The payload's chunk stays alive
    /// until every copy is dropped.
    pub fn share(&mut self, original: &Envelope) -> Result<Envelope, WriteError> {
        if original.kind() == Kind::Plain {
            return Err(WriteError::NotShareable);
        }
        let target = original.bytes_target();
        let span = HEADER + mem::size_of::<SharedNode>();
        self.ensure_room(span).map_err(|e| self.error(e))?;
        // SAFETY: `original` holds a reference on the target's chunk, so it is alive.
        unsafe { ChunkHeader::acquire(ChunkHeader::of(target), 1) };
        // SAFETY: the node slot after the header is ours (room ensured above).
        let env = self.commit(
            (original.type_tag() & TYPE_TAG_MASK) | Kind::Shared.bits(),
            original.len(),
            span,
        );
        // SAFETY: the payload slot of the header just written; written before the envelope is
        // handed out.
        unsafe {
            MsgHeader::payload_ptr(env.raw_header().as_ptr())
                .cast_mut()
                .cast::<SharedNode>()
                .write(SharedNode { target })
        };
        Ok(env)
    }

    /// Takes a large chunk. When the budget is short, first gives back our own current chunk
    /// (a large message would not go there anyway) so that its space can be reused.
    fn take_large(&mut self, size: usize) -> Result<NonNull<ChunkHeader>, ChunkError> {
        // SAFETY: we are the pool's writer and hold our reference.
        match unsafe { PoolShared::take_large(self.pool, size) } {
            Err(ChunkError::Exhausted) if self.chunk.is_some() => {
                self.retire();
                // SAFETY: as above.
                unsafe { PoolShared::take_large(self.pool, size) }
            }
            other => other,
        }
    }

    fn error<E>(&self, e: ChunkError) -> WriteError<E> {
        match e {
            ChunkError::Exhausted => WriteError::Exhausted,
            ChunkError::TooLarge => WriteError::TooLarge {
                max_bytes: self.config().get_max_bytes(),
            },
        }
    }
}

impl Drop for ArenaWriter {
    fn drop(&mut self) {
        self.retire();
        // SAFETY: the writer's reference on its pool; the pool lives on while chunks are out.
        unsafe { PoolShared::release(self.pool) };
    }
}

impl fmt::Debug for ArenaWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArenaWriter")
            .field("stats", &self.stats())
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

#[inline(always)]
fn round16(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// The bytes `start..end` of `chunk` as uninitialised memory.
///
/// # Safety
///
/// The range is inside the chunk and no published message uses it.
#[inline(always)]
unsafe fn region<'a>(
    chunk: NonNull<ChunkHeader>,
    start: usize,
    end: usize,
) -> &'a mut [MaybeUninit<u8>] {
    // SAFETY: by the caller's contract.
    unsafe {
        core::slice::from_raw_parts_mut(
            ChunkHeader::at(chunk, start).cast::<MaybeUninit<u8>>(),
            end - start,
        )
    }
}
