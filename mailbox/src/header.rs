//! The intrusive node every queued message starts with.
//!
//! # Memory layout
//!
//! ```text
//!  MsgHeader (16 bytes, align 16)                 payload (16-byte aligned)
//! +----------------------+-----------+-----------+------------------------------
//! | link.next: *Link (8) | len: u32  | tag: u32  | len bytes ...
//! +----------------------+-----------+-----------+------------------------------
//!  ^ the queue links this
//! ```
//!
//! * `link` is the intrusive queue node ([`Link`]). It is the first field, so a pointer to a
//!   header *is* a pointer to its link (`#[repr(C)]`); the queue never looks past it.
//! * `len` is the exact payload length in bytes. An archived message's root object sits at the
//!   end of its payload, so readers need the exact length, not a rounded one.
//! * `tag` identifies the payload's type (see [`MsgHeader::tag`]).
//!
//! Because the header is 16 bytes and 16-byte aligned, the payload that follows it is 16-byte
//! aligned too, which is the largest alignment an rkyv archive needs.

use core::fmt;

use crate::sync::{AtomicPtr, Ordering};

/// The link field of an intrusive queue node: one pointer to the next node.
///
/// Every message a [`MpscQueue`](crate::MpscQueue) carries starts with a `Link` (usually as the
/// first field of a [`MsgHeader`]). The queue writes `next` while the node is queued; the owner
/// of the node must not touch it then.
#[repr(C)]
pub struct Link {
    pub(crate) next: AtomicPtr<Link>,
}

impl Link {
    /// A link that points nowhere.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            next: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// A link that points nowhere.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            next: AtomicPtr::new(core::ptr::null_mut()),
        }
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("next", &self.next.load(Ordering::Relaxed))
            .finish()
    }
}

/// The header at the front of every message: the queue link, the payload length and a type tag.
///
/// See the [module docs](self) for the layout. A header is created by whoever writes the
/// message (an arena writer, or [`Boxed`](crate::Boxed) for heap nodes) and is immutable after
/// the message is published, except for the link, which belongs to the queue while the message
/// is queued.
#[repr(C, align(16))]
pub struct MsgHeader {
    link: Link,
    len: u32,
    tag: u32,
}

const _: () = assert!(core::mem::size_of::<MsgHeader>() == 16);
const _: () = assert!(core::mem::align_of::<MsgHeader>() == 16);

impl MsgHeader {
    /// The payload alignment every header guarantees.
    pub const PAYLOAD_ALIGN: usize = 16;

    /// A header for a payload of `len` bytes with type tag `tag`.
    pub fn new(len: u32, tag: u32) -> Self {
        Self {
            link: Link::new(),
            len,
            tag,
        }
    }

    /// The exact payload length in bytes.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The type tag of the payload.
    ///
    /// The mailbox crate gives tags no meaning; the layer above assigns them (a stable hash of
    /// the message type, with the top bit telling archived bytes from plain Rust values).
    #[inline]
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// The header's queue link.
    #[inline]
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// A pointer to the first payload byte, which follows the header.
    #[inline]
    pub fn payload_ptr(this: *const Self) -> *const u8 {
        this.cast::<u8>().wrapping_add(core::mem::size_of::<Self>())
    }
}

impl fmt::Debug for MsgHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgHeader")
            .field("len", &self.len)
            .field("tag", &format_args!("{:#010x}", self.tag))
            .finish_non_exhaustive()
    }
}
