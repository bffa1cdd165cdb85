//! [`Envelope`]: the owning handle to one message in an arena chunk.
//!
//! # Payload kinds
//!
//! The top two bits of [`MsgHeader::tag`] say what follows the header; the low 30 bits are the
//! message's type tag (given by the layer above: a stable hash of the type's name).
//!
//! | kind | payload | released by |
//! |---|---|---|
//! | [`Kind::Bytes`] | `len` bytes, 16-byte aligned, unverified (any bytes) | dropping the envelope |
//! | [`Kind::Archived`] | `len` bytes, 16-byte aligned, *verified*: written by a trusted serializer, or validated, for the type tag ([`ArenaWriter::write_verified`](crate::ArenaWriter::write_verified)) | dropping the envelope |
//! | [`Kind::Plain`] | a `&'static PlainVTable` then a Rust value `T` (moved in, not serialized) | [`take`](Envelope::take) (moves `T` out) or drop (runs `T`'s destructor) |
//! | [`Kind::Shared`] | a pointer to a `Bytes` or `Archived` message in another place (a broadcast copy) | dropping: releases both chunks |

use core::any::TypeId;
use core::fmt;
use core::ptr::NonNull;

use crate::chunk::{ChunkHeader, REFS_PER_MESSAGE};
use crate::header::{Link, MsgHeader};
use crate::queue::Linked;

/// Bit position of the kind in a header's tag.
pub const KIND_SHIFT: u32 = 30;
/// The bits of a tag that carry the message type.
pub const TYPE_TAG_MASK: u32 = (1 << KIND_SHIFT) - 1;

/// What an [`Envelope`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bytes written in place, not verified.
    Bytes,
    /// Bytes verified for their type tag (see [`Envelope::is_verified`]).
    Archived,
    /// A Rust value moved into the arena.
    Plain,
    /// A reference to bytes published once for many receivers.
    Shared,
}

impl Kind {
    pub(crate) const fn bits(self) -> u32 {
        (match self {
            Kind::Bytes => 0,
            Kind::Plain => 1,
            Kind::Shared => 2,
            Kind::Archived => 3,
        }) << KIND_SHIFT
    }

    fn of(tag: u32) -> Kind {
        match tag >> KIND_SHIFT {
            0 => Kind::Bytes,
            1 => Kind::Plain,
            2 => Kind::Shared,
            _ => Kind::Archived,
        }
    }
}

/// How to drop and identify a plain value in the arena.
pub(crate) struct PlainVTable {
    /// Drops the value in place.
    ///
    /// # Safety
    ///
    /// The pointer is to an initialised value of the type this vtable was made for, which is
    /// not used again afterwards.
    pub(crate) drop_value: unsafe fn(*mut u8),
    pub(crate) type_id: fn() -> TypeId,
    pub(crate) type_name: fn() -> &'static str,
    /// Offset of the value from the start of the payload.
    pub(crate) value_offset: usize,
}

/// The payload of a plain message: the vtable, then the value.
#[repr(C)]
pub(crate) struct PlainNode<T> {
    pub(crate) vtable: &'static PlainVTable,
    pub(crate) value: T,
}

pub(crate) struct VTableOf<T>(core::marker::PhantomData<T>);

impl<T: 'static> VTableOf<T> {
    pub(crate) const VTABLE: PlainVTable = PlainVTable {
        drop_value: drop_value::<T>,
        type_id: TypeId::of::<T>,
        type_name: core::any::type_name::<T>,
        value_offset: core::mem::offset_of!(PlainNode<T>, value),
    };
}

/// # Safety
///
/// `value` points to a live, initialised `T` that is dropped here once.
unsafe fn drop_value<T>(value: *mut u8) {
    // SAFETY: by the caller's contract.
    unsafe { core::ptr::drop_in_place(value.cast::<T>()) }
}

/// The payload of a shared message: the published original.
#[repr(C, align(16))]
pub(crate) struct SharedNode {
    pub(crate) target: NonNull<MsgHeader>,
}

/// An owning handle to one published message in an arena chunk.
///
/// Made by an [`ArenaWriter`](crate::ArenaWriter); travels through a [`Mailbox`](crate::Mailbox)
/// as a pointer (it is [`Linked`]); dropped by the receiver, which releases its reference on
/// the chunk (the chunk is recycled when its last message goes). The payload is never copied
/// and never changes after publication.
///
/// ```
/// use airssys_rt_mailbox::{ArenaWriter, Kind, PoolConfig};
///
/// let mut writer = ArenaWriter::new(PoolConfig::default());
/// let env = writer.write_plain(String::from("hi")).unwrap();
/// assert_eq!(env.kind(), Kind::Plain);
/// assert_eq!(env.take::<String>().unwrap(), "hi");
///
/// let env = writer.copy_bytes(7, b"raw bytes").unwrap();
/// assert_eq!(env.bytes(), Some(&b"raw bytes"[..]));
/// assert_eq!(env.type_tag(), 7);
/// ```
pub struct Envelope {
    /// The message's header, with [`Envelope::LINK_KEPT`] in its low bit when a queue still
    /// uses the link (and holds the link's chunk reference).
    header: NonNull<MsgHeader>,
}

// SAFETY: an envelope owns its message. Bytes never change after publication; a plain value is
// `Send` (the writer requires it) and is only moved out by value or dropped, never shared.
unsafe impl Send for Envelope {}

impl Envelope {
    /// Wraps a published header.
    ///
    /// # Safety
    ///
    /// `header` is a fully written message in an arena chunk, and the caller gives this
    /// envelope the references on the chunk that the message holds (`REFS_PER_MESSAGE`).
    pub(crate) unsafe fn from_header(header: NonNull<MsgHeader>) -> Self {
        Self { header }
    }

    /// The tag bit of `header` (headers are 16-byte aligned): a queue kept this message's link
    /// and its reference ([`Linked::from_link_keeping_link`]); the envelope holds only its own.
    const LINK_KEPT: usize = 1;

    /// The header pointer, without the tag.
    #[inline(always)]
    fn ptr(&self) -> NonNull<MsgHeader> {
        self.header.map_addr(|a| {
            // SAFETY: clearing the tag bit of a 16-byte aligned, non-null address leaves it
            // non-null.
            unsafe { core::num::NonZeroUsize::new_unchecked(a.get() & !Self::LINK_KEPT) }
        })
    }

    /// The chunk references this envelope holds: both of its message's, or only its own when
    /// a queue kept the link's.
    #[inline(always)]
    fn own_refs(&self) -> usize {
        if self.header.addr().get() & Self::LINK_KEPT != 0 {
            REFS_PER_MESSAGE - 1
        } else {
            REFS_PER_MESSAGE
        }
    }

    #[inline(always)]
    fn header(&self) -> &MsgHeader {
        // SAFETY: the envelope keeps its chunk alive, and the header's `len` and `tag` are
        // immutable (the link belongs to a queue while the envelope is given up to it, or while
        // a queue keeps it; it is atomic, so a shared reference to it is fine meanwhile).
        unsafe { self.ptr().as_ref() }
    }

    /// What the envelope carries.
    #[inline]
    pub fn kind(&self) -> Kind {
        Kind::of(self.header().tag())
    }

    /// The message type tag (30 bits) given by the writer.
    #[inline]
    pub fn type_tag(&self) -> u32 {
        self.header().tag() & TYPE_TAG_MASK
    }

    /// The payload length in bytes (for a plain value: its arena node).
    #[inline]
    pub fn len(&self) -> usize {
        self.header().len() as usize
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header the bytes live behind (the original one, for a shared message).
    #[inline]
    fn bytes_header(&self) -> Option<NonNull<MsgHeader>> {
        match self.kind() {
            Kind::Bytes | Kind::Archived => Some(self.ptr()),
            Kind::Shared => {
                // SAFETY: a shared node's payload is a `SharedNode` written before publication.
                let node = unsafe { &*Self::payload(self.ptr()).cast::<SharedNode>() };
                Some(node.target)
            }
            Kind::Plain => None,
        }
    }

    /// The header of the message's bytes (the original's, for a shared message; the node's own
    /// for a plain value).
    #[inline]
    pub(crate) fn bytes_target(&self) -> NonNull<MsgHeader> {
        self.bytes_header().unwrap_or(self.ptr())
    }

    /// The node's own header.
    #[inline(always)]
    pub(crate) fn raw_header(&self) -> NonNull<MsgHeader> {
        self.ptr()
    }

    #[inline(always)]
    fn payload(header: NonNull<MsgHeader>) -> *mut u8 {
        MsgHeader::payload_ptr(header.as_ptr()).cast_mut()
    }

    /// The payload bytes, read in place (16-byte aligned); `None` for a plain value.
    #[inline]
    pub fn bytes(&self) -> Option<&[u8]> {
        let header = self.bytes_header()?;
        #[cfg(loom)]
        // SAFETY: the chunk is alive while we hold a reference on it.
        unsafe {
            (*ChunkHeader::of(header).as_ptr()).probe.with(|p| {
                let _ = *p;
            })
        };
        // SAFETY: the header and its `len` payload bytes were written before publication, are
        // never written again, and stay alive while this envelope holds its reference.
        unsafe {
            let h = header.as_ref();
            Some(core::slice::from_raw_parts(
                Self::payload(header),
                h.len() as usize,
            ))
        }
    }

    /// Whether the bytes are verified for the type tag: written by a trusted serializer or
    /// validated before publication (kind [`Kind::Archived`], or a shared copy of such bytes).
    /// Readers may skip validation exactly when this is `true`.
    #[inline]
    pub fn is_verified(&self) -> bool {
        self.bytes_header()
            // SAFETY: the original's header is alive while we hold a reference on its chunk.
            .is_some_and(|h| Kind::of(unsafe { h.as_ref() }.tag()) == Kind::Archived)
    }

    /// The address range of the chunk that holds the payload bytes (for zero-copy checks and
    /// diagnostics). `None` for a plain value.
    pub fn payload_chunk(&self) -> Option<core::ops::Range<usize>> {
        let chunk = ChunkHeader::of(self.bytes_header()?);
        let start = chunk.as_ptr() as usize;
        Some(start..start + ChunkHeader::size(chunk))
    }

    #[inline]
    fn vtable(&self) -> Option<&'static PlainVTable> {
        (self.kind() == Kind::Plain).then(|| {
            // SAFETY: a plain node's payload starts with its vtable reference.
            unsafe { (*Self::payload(self.ptr()).cast::<PlainNode<()>>()).vtable }
        })
    }

    /// Whether this is a plain value of type `T`.
    pub fn is<T: 'static>(&self) -> bool {
        self.vtable()
            .is_some_and(|vt| (vt.type_id)() == TypeId::of::<T>())
    }

    /// The type name of a plain value (for error messages).
    pub fn plain_type_name(&self) -> Option<&'static str> {
        self.vtable().map(|vt| (vt.type_name)())
    }

    /// The address of a plain value (for layers that know the value's type by construction,
    /// such as a dispatch function stored at its start). `None` for bytes.
    #[inline]
    pub fn plain_ptr(&self) -> Option<NonNull<u8>> {
        let vt = self.vtable()?;
        NonNull::new(Self::payload(self.ptr()).wrapping_add(vt.value_offset))
    }

    /// Moves a plain value of type `T` out; gives the envelope back if it holds something else.
    #[inline]
    pub fn take<T: 'static>(self) -> Result<T, Self> {
        let Some(vt) = self
            .vtable()
            .filter(|vt| (vt.type_id)() == TypeId::of::<T>())
        else {
            return Err(self);
        };
        let value_ptr = Self::payload(self.ptr())
            .wrapping_add(vt.value_offset)
            .cast::<T>();
        // SAFETY: the node holds an initialised `T` (checked by `TypeId`) written before
        // publication; we read it once and then release the chunk without dropping it.
        let value = unsafe { value_ptr.read() };
        let (header, refs) = (self.ptr(), self.own_refs());
        core::mem::forget(self);
        // SAFETY: the references this envelope held.
        unsafe { ChunkHeader::release(ChunkHeader::of(header), refs) };
        Ok(value)
    }
}

impl Drop for Envelope {
    fn drop(&mut self) {
        /// Releases the chunk references even if a plain value's destructor panics.
        struct ReleaseOnDrop(NonNull<MsgHeader>, usize, Option<NonNull<MsgHeader>>);
        impl Drop for ReleaseOnDrop {
            fn drop(&mut self) {
                // SAFETY: the references the envelope held: its own node's, and for a shared
                // node, the one on the original's chunk.
                unsafe {
                    if let Some(target) = self.2 {
                        ChunkHeader::release(ChunkHeader::of(target), 1);
                    }
                    ChunkHeader::release(ChunkHeader::of(self.0), self.1);
                }
            }
        }
        let shared_target = (self.kind() == Kind::Shared)
            .then(|| self.bytes_header())
            .flatten();
        let _release = ReleaseOnDrop(self.ptr(), self.own_refs(), shared_target);
        if let Some(vt) = self.vtable() {
            // SAFETY: the plain value was not taken (take forgets the envelope), so it is
            // initialised, and it is dropped once, here.
            unsafe { (vt.drop_value)(Self::payload(self.ptr()).wrapping_add(vt.value_offset)) };
        }
    }
}

// SAFETY: the link is the first field of the `#[repr(C)]` header, so the header pointer is
// the link pointer. The envelope's references keep the chunk (and so the header) alive and in
// place until `from_link` takes them back, and nothing else touches the link meanwhile. With
// `from_link_keeping_link`, the envelope takes back only its own reference: the link's stays
// with the queue, so the link stays alive and in place until `release_link`, whatever the
// envelope does. A header is never at the dangling address (it is at least `DATA_OFFSET` into
// a chunk).
unsafe impl Linked for Envelope {
    #[inline]
    fn into_link(self) -> NonNull<Link> {
        debug_assert!(
            self.own_refs() == REFS_PER_MESSAGE,
            "an envelope whose link a queue still uses was pushed again"
        );
        let link = self.ptr().cast::<Link>();
        core::mem::forget(self);
        link
    }

    /// # Safety
    ///
    /// [`Linked::from_link`]'s contract: `link` came from `into_link` and is taken back once.
    /// The envelope then owns the message's references again; nothing unsafe is done here.
    #[inline]
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        Self {
            header: link.cast::<MsgHeader>(),
        }
    }

    const KEEPS_LINK: bool = true;

    /// # Safety
    ///
    /// [`Linked::from_link_keeping_link`]'s contract: the queue keeps the link (and its
    /// reference) until it calls [`release_link`](Linked::release_link).
    #[inline]
    unsafe fn from_link_keeping_link(link: NonNull<Link>) -> Self {
        // Nothing unsafe is done here: the caller's contract (the trait's) is what makes the
        // envelope own one reference only; the tag records that (headers are 16-byte aligned,
        // so bit 0 is free, and `ptr()` clears it before every use).
        Self {
            header: link.cast::<MsgHeader>().map_addr(|a| a | Self::LINK_KEPT),
        }
    }

    /// # Safety
    ///
    /// [`Linked::release_link`]'s contract: the link was kept by a queue and is released once.
    #[inline]
    unsafe fn release_link(link: NonNull<Link>) {
        // SAFETY: the link's reference, which the queue kept (the caller's contract).
        unsafe { ChunkHeader::release(ChunkHeader::of(link.cast::<MsgHeader>()), 1) };
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Envelope");
        d.field("kind", &self.kind())
            .field("type_tag", &format_args!("{:#x}", self.type_tag()))
            .field("len", &self.len());
        if let Some(name) = self.plain_type_name() {
            d.field("type", &name);
        }
        d.finish()
    }
}
