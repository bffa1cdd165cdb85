//! [`Boxed`]: a heap-allocated message node, for values that do not live in an arena.

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::header::{Link, MsgHeader};
use crate::queue::Linked;

#[repr(C)]
struct Node<T> {
    header: MsgHeader,
    value: T,
}

/// A value in its own heap node, ready to be queued: a [`MsgHeader`] followed by the value.
///
/// This is the simple way to queue a Rust value: one allocation per message. The runtime
/// uses it for control signals (which must never depend on arena space) and tests use it
/// everywhere; user traffic goes through arena chunks instead.
///
/// ```
/// use airssys_rt_mailbox::Boxed;
///
/// let msg = Boxed::new(String::from("hello"));
/// assert_eq!(msg.len(), 5); // derefs to the value
/// assert_eq!(msg.into_inner(), "hello");
/// ```
pub struct Boxed<T>(Box<Node<T>>);

impl<T> Boxed<T> {
    /// Puts `value` in a new node.
    pub fn new(value: T) -> Self {
        Self::with_tag(value, 0)
    }

    /// Puts `value` in a new node whose header carries `tag`.
    pub fn with_tag(value: T, tag: u32) -> Self {
        let len = u32::try_from(core::mem::size_of::<T>()).unwrap_or(u32::MAX);
        Self(Box::new(Node {
            header: MsgHeader::new(len, tag),
            value,
        }))
    }

    /// The node's header.
    pub fn header(&self) -> &MsgHeader {
        &self.0.header
    }

    /// Takes the value out of the node.
    pub fn into_inner(self) -> T {
        self.0.value
    }
}

impl<T> Deref for Boxed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> DerefMut for Boxed<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Boxed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Boxed").field(&self.0.value).finish()
    }
}

impl<T: PartialEq> PartialEq for Boxed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.value == other.0.value
    }
}

// SAFETY: the link is the first field of the header, which is the first field of the
// `#[repr(C)]` node, so the node pointer is the link pointer. The node is a `Box` allocation:
// stable address until `from_link` rebuilds the `Box`, and nobody else can reach the link
// while the `Box` is given up. A `Box` is never at the dangling address.
unsafe impl<T> Linked for Boxed<T> {
    #[inline]
    fn into_link(self) -> NonNull<Link> {
        let node = Box::into_raw(self.0);
        // SAFETY: `Box::into_raw` never returns null.
        unsafe { NonNull::new_unchecked(node.cast::<Link>()) }
    }

    #[inline]
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        // SAFETY: by the caller's contract `link` came from `into_link` above, i.e. from
        // `Box::into_raw` of a `Node<T>`, and is taken back once.
        Self(unsafe { Box::from_raw(link.as_ptr().cast::<Node<T>>()) })
    }
}
