//! Intrusive multi-producer single-consumer queue (Dmitry Vyukov's algorithm).
//!
//! Producers are wait-free: a push is one `swap` and one `store`. The single consumer pops in
//! FIFO order per producer. Nodes are the callers' own memory (anything [`Linked`]), so the
//! queue never allocates.
//!
//! # The algorithm
//!
//! `head` is the producers' end, `tail` the consumer's. A *stub* link owned by the queue keeps
//! the list non-empty so that producers never need to touch `tail`:
//!
//! ```text
//! push(n):  n.next = null                      (Relaxed: published by the swap)
//!           prev = head.swap(n)                (AcqRel)
//!           ---- window: head == n, but prev.next is still null ----
//!           prev.next = n                      (Release: publishes n and its payload)
//!
//! pop():    tail = self.tail; next = tail.next (Acquire)
//!           if tail is the stub: if next is null -> Empty, else step over the stub
//!           if next != null: self.tail = next; return Data(tail)
//!           if tail != head -> Inconsistent    (a producer is inside its window)
//!           push(stub); next = tail.next; if next != null: self.tail = next; return Data(tail)
//!           return Inconsistent
//! ```
//!
//! **The inconsistent window.** Between a producer's `swap` and its link store, the consumer
//! can see a node whose `next` is null although `head` has moved on. The node after it exists
//! but is not reachable yet, and neither is anything pushed later. `pop` reports this as
//! [`Pop::Inconsistent`] instead of spinning: the mailbox ends the run there, and its `finish`,
//! which sees the queue is not [empty](MpscQueue::is_empty), keeps the token so the host runs
//! it again (after other work) and finds the node linked. Once every push has returned, `pop`
//! never reports `Inconsistent` again.
//!
//! **Orderings**, and why each is needed (each weakening has a loom mutant that the models in
//! `tests/loom_queue.rs` reject):
//!
//! | operation | ordering | why |
//! |---|---|---|
//! | `n.next = null` | Relaxed | the node is still private; the swap's Release publishes it |
//! | `head.swap(n)` | AcqRel | Acquire: our write to `prev.next` must come after `prev`'s producer initialised `prev`. Release: the next producer writes `n.next`, so it must see `n` initialised |
//! | `prev.next = n` | Release | publishes `n` and the payload behind it to the consumer |
//! | consumer `next` loads | Acquire | pairs with the link store: the payload is visible once the pointer is |
//! | consumer `head` load | Acquire | only compared, never dereferenced; Acquire for symmetry with futures-rs |
//!
//! **Reclamation.** A node is returned by `pop` only once its `next` is non-null (or it was
//! re-linked through the stub), and each node's `next` is written by exactly one producer, the
//! one that received it as `prev`. So a popped node is never written again by the queue: the
//! consumer owns it outright. No hazard pointers, no epochs, no ABA. The one exception is a
//! node handed out with its link kept (below): its `next` may still be written, and its link
//! stays the queue's (a reference of its own) until the queue releases it.
//!
//! **The stub is not an address.** `head`, `tail` and links refer to the stub through a
//! sentinel value (`STUB`) rather than through the stub's address. No stored pointer ever
//! points into the queue itself, so a queue that is not in use can be moved freely (it lives
//! inline in a mailbox, with no allocation of its own).
//!
//! **Parking (the mailbox's run token).** The low bit of `head` (`PARKED`) is free: every
//! link is at least 8-byte aligned. [`Mailbox`](crate::Mailbox) uses it on its user lane as its
//! scheduling token: set means "idle, nobody holds the right to consume". Only the consumer
//! sets it (`Ends::park`, a CAS, as its run ends; or a drain with exclusive access, putting
//! back a mark its own stub re-link took off); a producer's `swap` puts an
//! unmarked node in its place, so the push that finds the mark (in `prev`) is the one that takes
//! the token, at no cost beyond the swap it does anyway; anyone else takes it with
//! `Ends::unpark` (a CAS). Every change of the bit is an RMW on `head`, so exactly
//! one party takes each parking. A queue nobody parks (the system lane, [`MpscQueue`]) never
//! sees the bit. The protocol around it is in `state.rs`.
//!
//! **Keeping the last link.** Popping the last node costs the stub's `swap` (above). A
//! consumer that will park anyway can skip it: `Ends::pop_with` with `keep_link` hands the
//! last node out with [`Linked::from_link_keeping_link`] but leaves it in the list as the end
//! (`tail` marked `KEPT`), and `Ends::park` then swings `head` from that node straight to the
//! parked stub with its one CAS. If a push gets in first, the CAS fails, the node's `next` gets
//! linked, and the next pop steps over it. Either way the node's link is given up
//! ([`Linked::release_link`]) only once no producer can write it any more: after its `next` is
//! set (each `next` is written once, by the producer that swapped the node out of `head`), or
//! after the CAS moved `head` off it. Types opt in with [`Linked::KEEPS_LINK`]; an arena
//! [`Envelope`](crate::Envelope) holds a second chunk reference for its link for this.
//!
//! **Parts that may live apart.** The producers touch `head` on every push; the consumer
//! touches `tail` on every pop, and `head` only when it takes the last node; the stub is
//! written by a push into an empty queue and read by the consumer while the queue is at the
//! stub. The three are separate, so that an owner can put the ends on different cache lines
//! ([`Mailbox`](crate::Mailbox) does): otherwise a consumer streaming through a backlog and a
//! producer adding to it pull one line back and forth on every message.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use crate::header::Link;
use crate::sync::{ord, AtomicPtr, Ordering, UnsafeCell};

/// The sentinel that stands for the queue's own stub link in `head`, `tail` and `next` fields.
///
/// It is a well-aligned, non-null address that no allocation can have. It is never
/// dereferenced: [`MpscQueue::resolve`] maps it to the stub.
const STUB: *mut Link = NonNull::<Link>::dangling().as_ptr();

/// The mark in a parkable lane's `head`: the lane's owner is idle and the next push (or an
/// [`unpark`](Ends::unpark)) takes its run token. Links are at least 8-byte aligned, so a real
/// pointer (or [`STUB`]) never has this bit.
const PARKED: usize = 1;

/// The mark in a queue's `tail`: the node there was popped already (its handle given back
/// with [`Linked::from_link_keeping_link`]) and stays as the queue's end, in place of the stub,
/// until a node is linked after it or the consumer parks. Only the consumer sees `tail`.
const KEPT: usize = 1;

/// `link` without the [`PARKED`] mark.
#[inline(always)]
fn unmarked(link: *mut Link) -> *mut Link {
    link.map_addr(|a| a & !PARKED)
}

/// Whether `link` (a `head` value) carries the [`PARKED`] mark.
#[inline(always)]
fn is_parked(link: *mut Link) -> bool {
    link.addr() & PARKED != 0
}

/// An owning handle that can travel through an intrusive queue as a pointer to its [`Link`].
///
/// # Safety
///
/// Implementors promise that:
/// * [`into_link`](Linked::into_link) gives a pointer to a valid `Link` that stays valid and at
///   the same address until the pointer is passed back to [`from_link`](Linked::from_link), and
///   that nothing but the queue reads or writes that `Link` in between;
/// * `from_link(into_link(x))` gives back a handle equivalent to `x` (it owns what `x` owned);
/// * the pointer is never [`NonNull::dangling`] for `Link` (no real allocation can be there).
pub unsafe trait Linked: Sized {
    /// Gives up the handle, returning its link.
    fn into_link(self) -> NonNull<Link>;

    /// Takes back a handle given up by [`into_link`](Linked::into_link).
    ///
    /// # Safety
    ///
    /// `link` must come from `into_link` of this same type, and must not have been taken back
    /// already.
    unsafe fn from_link(link: NonNull<Link>) -> Self;

    /// Whether a handle can be taken back while the queue keeps using its link
    /// ([`from_link_keeping_link`](Linked::from_link_keeping_link), then
    /// [`release_link`](Linked::release_link)). A queue that pops the last node this way
    /// keeps that node as its end instead of re-linking its stub (one locked instruction
    /// less per message to an idle mailbox; see [`Run::pop_keeping_link`](crate::Run::pop_keeping_link)).
    /// `false` by default.
    const KEEPS_LINK: bool = false;

    /// Takes back a handle given up by [`into_link`](Linked::into_link) while the `Link`
    /// itself stays in the queue's use: the link's memory must stay valid, and nothing but the
    /// queue may touch it, until [`release_link`](Linked::release_link) is called for it,
    /// whatever happens to the handle meanwhile (it may be dropped first). Only called when
    /// [`KEEPS_LINK`](Linked::KEEPS_LINK) is `true`; by default the same as `from_link`.
    ///
    /// # Safety
    ///
    /// As for `from_link`; and the handle this returns must never be given to `into_link`
    /// (its link is still in a queue).
    unsafe fn from_link_keeping_link(link: NonNull<Link>) -> Self {
        // SAFETY: the caller's contract includes `from_link`'s.
        unsafe { Self::from_link(link) }
    }

    /// The queue is done with a link whose handle it gave back with
    /// [`from_link_keeping_link`](Linked::from_link_keeping_link). Nothing by default.
    ///
    /// # Safety
    ///
    /// `link` was given to `from_link_keeping_link`, once, and is released once; the queue
    /// touches it no more.
    unsafe fn release_link(link: NonNull<Link>) {
        let _ = link;
    }
}

/// What [`MpscQueue::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<T> {
    /// The oldest message.
    Data(T),
    /// Nothing is queued (a producer may be inside its window, see the module docs).
    Empty,
    /// A producer is between its swap and its link: messages exist but cannot be reached yet.
    /// That producer links them within a few instructions (unless it is preempted there).
    Inconsistent,
}

/// The producers' end of a queue: the last node pushed (or [`STUB`]).
///
/// A queue is two ends that may live apart: [`MpscQueue`] keeps them side by side, and
/// [`Mailbox`](crate::Mailbox) puts them on different cache lines, so that a consumer taking
/// messages does not pull the line that producers write on every push (see its docs).
pub(crate) struct ProducerEnd {
    head: AtomicPtr<Link>,
}

/// The consumer's end of a queue: the next node to pop (or [`STUB`]).
///
/// The queue's third part, its stub [`Link`] (in the list whenever the list would otherwise be
/// empty), is the owner's to place: a producer pushing into an empty queue writes its `next`,
/// and the consumer reads it whenever the queue is at the stub. [`Mailbox`](crate::Mailbox)
/// keeps the user lane's stub with the producers (it is written on every push into an idle
/// mailbox) and the system lane's with the consumer (read on every pop, written by rare
/// signals).
pub(crate) struct ConsumerEnd {
    tail: UnsafeCell<*mut Link>,
}

impl ProducerEnd {
    /// An empty end, not parked.
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicPtr::new(STUB),
        }
    }

    /// An empty end, parked: the first push takes the token.
    pub(crate) fn parked() -> Self {
        Self {
            head: AtomicPtr::new(STUB.map_addr(|a| a | PARKED)),
        }
    }
}

impl ConsumerEnd {
    pub(crate) fn new() -> Self {
        Self {
            tail: UnsafeCell::new(STUB),
        }
    }
}

/// The parts of one queue (two ends and the stub), where the algorithm lives. `T` is what the
/// queue carries: the parts themselves are untyped, so whoever holds them must always use the
/// same `T`.
pub(crate) struct Ends<'a, T: Linked> {
    head: &'a ProducerEnd,
    tail: &'a ConsumerEnd,
    stub: &'a Link,
    _carries: PhantomData<fn(T) -> T>,
}

impl<'a, T: Linked> Ends<'a, T> {
    /// The queue made of these parts.
    ///
    /// # Safety
    ///
    /// `head`, `tail` and `stub` were made together (by `new`) as the parts of one queue and
    /// stay together, every `Ends` over them carries the same `T`, and the nodes they hold are
    /// dropped by their owner (a queue's parts do not drop what they hold).
    #[inline(always)]
    pub(crate) unsafe fn new(head: &'a ProducerEnd, tail: &'a ConsumerEnd, stub: &'a Link) -> Self {
        Self {
            head,
            tail,
            stub,
            _carries: PhantomData,
        }
    }

    /// Maps the [`STUB`] sentinel to the real stub link. `link` carries no [`PARKED`] mark.
    #[inline(always)]
    fn resolve(&self, link: *mut Link) -> *const Link {
        if link == STUB {
            self.stub
        } else {
            link
        }
    }

    /// Appends `item`. Wait-free: one swap and one store, whatever other threads do. Returns
    /// `true` if the queue was [parked](Self::park): the caller has taken its owner's token.
    #[inline]
    pub(crate) fn push(&self, item: T) -> bool {
        let node = item.into_link().as_ptr();
        debug_assert_ne!(
            node, STUB,
            "Linked::into_link returned the dangling pointer"
        );
        // SAFETY: by the `Linked` contract, `node` is a valid link that nobody else touches
        // until the consumer pops it; it is not in any list yet.
        unsafe { (*node).next.store(ptr::null_mut(), Ordering::Relaxed) };
        self.push_link(node)
    }

    /// Links `node` (a real node or [`STUB`]) at the head. Its `next` must already be null.
    /// Returns whether the head was parked (the swap took the mark off: the caller has the
    /// token).
    #[inline(always)]
    fn push_link(&self, node: *mut Link) -> bool {
        let prev = self.head.head.swap(node, ord::QUEUE_SWAP());
        // The window of inconsistency: `head == node`, but `prev.next` is still null.
        let parked = is_parked(prev);
        let prev = self.resolve(unmarked(prev));
        // SAFETY: `prev` was the head, so it is either the stub (alive as long as `self`) or a
        // node whose link the queue still holds: the consumer pops a node only once its `next`
        // is set, or keeps its link (and its memory) until its `next` is set or the head has
        // moved off it by the consumer's own CAS, which our swap would have made fail; only we
        // (who received it from the swap) set it. So `prev` is alive and only we write it.
        unsafe { (*prev).next.store(node, ord::QUEUE_LINK()) };
        parked
    }

    /// Removes the oldest message.
    ///
    /// # Safety
    ///
    /// Only one thread at a time may call the consumer methods (`pop`, `has_data`, `is_empty`):
    /// the caller must be the queue's single consumer for the duration of the call.
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Pop<T> {
        // SAFETY: the caller's contract.
        unsafe { self.pop_with(false) }
    }

    /// [`pop`](Self::pop); with `keep_link` (and `T::KEEPS_LINK`), the last node is taken back
    /// with [`Linked::from_link_keeping_link`] and stays as the queue's end (`tail` marked
    /// [`KEPT`]) instead of the stub being re-linked behind it (a `swap`). The next pop, or
    /// the consumer's [`park`](Self::park) or [`unkeep`](Self::unkeep), gives it up.
    ///
    /// # Safety
    ///
    /// As for `pop`; with `keep_link`, the caller never gives a handle returned here to
    /// [`Linked::into_link`].
    #[inline]
    pub(crate) unsafe fn pop_with(&self, keep_link: bool) -> Pop<T> {
        self.tail.tail.with_mut(|tail_slot| {
            // SAFETY: the caller is the only consumer, so nobody else touches `tail`.
            let mut tail = unsafe { *tail_slot };
            if tail.addr() & KEPT != 0 {
                let kept = tail.map_addr(|a| a & !KEPT);
                // SAFETY: a kept node stays alive until we release its link (below, or in
                // `park`/`unkeep`).
                let next = unsafe { (*kept).next.load(ord::QUEUE_NEXT()) };
                if next.is_null() {
                    // Nothing after it: empty, unless a producer is inside its window.
                    return if kept == unmarked(self.head.head.load(Ordering::Acquire)) {
                        Pop::Empty
                    } else {
                        Pop::Inconsistent
                    };
                }
                // A node is linked after it: its producer wrote its `next` and never will again.
                // SAFETY: given back with `from_link_keeping_link`, released once, here.
                unsafe { T::release_link(NonNull::new_unchecked(kept)) };
                tail = next;
                // SAFETY: single consumer.
                unsafe { *tail_slot = tail };
            }
            // SAFETY: `tail` is the stub or a node the consumer owns but has not returned yet
            // (see the module docs, "Reclamation"); either way it is alive.
            let mut next = unsafe { (*self.resolve(tail)).next.load(ord::QUEUE_NEXT()) };
            if tail == STUB {
                if next.is_null() {
                    return Pop::Empty;
                }
                // Step over the stub: it has been re-linked behind real nodes.
                tail = next;
                // SAFETY: as above; the stub never links to itself, so `next` is a real node.
                unsafe { *tail_slot = tail };
                // SAFETY: `tail` is a real, unpopped node.
                next = unsafe { (*tail).next.load(ord::QUEUE_NEXT()) };
            }
            if !next.is_null() {
                // SAFETY: single consumer; `tail` is linked and no producer will write it again.
                unsafe {
                    *tail_slot = next;
                    return Pop::Data(T::from_link(NonNull::new_unchecked(tail)));
                }
            }
            // `tail` is the last linked node. If `head` moved past it, a producer is inside its
            // window and `tail.next` will be set soon.
            // (A lane is parked only while empty or while its consumer holds no token: never
            // in a run, but a `drain` with exclusive access can see the mark.)
            if tail != unmarked(self.head.head.load(Ordering::Acquire)) {
                return Pop::Inconsistent;
            }
            if T::KEEPS_LINK && keep_link {
                // `tail` is the last node: hand it out, but keep its link as the queue's end.
                // SAFETY: single consumer; `tail` is a real node, linked and ours to return,
                // and the caller never re-links the handle (this method's contract).
                unsafe {
                    *tail_slot = tail.map_addr(|a| a | KEPT);
                    return Pop::Data(T::from_link_keeping_link(NonNull::new_unchecked(tail)));
                }
            }
            // `tail` is the last node: push the stub behind it so `tail` can be taken.
            // SAFETY: `tail` is still a real node we own, the last one seen.
            next = unsafe { self.relink_stub_behind(tail) };
            if !next.is_null() {
                // SAFETY: as in the first `Data` branch.
                unsafe {
                    *tail_slot = next;
                    return Pop::Data(T::from_link(NonNull::new_unchecked(tail)));
                }
            }
            // A producer swapped in between our `head` load and our stub push.
            Pop::Inconsistent
        })
    }

    /// Pushes the stub behind `last` so that `last` can leave the list, and returns `last`'s
    /// `next` after that: the stub, or a node that a producer swapped in just before our push
    /// (null if that producer has not linked it yet).
    ///
    /// A run never finds its lane parked (it holds the token), but a drain with exclusive
    /// access can find it parked with `last` queued (a consumer parked awaiting, messages
    /// left): our swap then took the mark off, and we put it back (nobody else pushes).
    ///
    /// # Safety
    ///
    /// The caller is the single consumer; `last` is a live node in the list, seen with a null
    /// `next` while `head` was `last`.
    #[inline]
    unsafe fn relink_stub_behind(&self, last: *mut Link) -> *mut Link {
        self.stub.next.store(ptr::null_mut(), Ordering::Relaxed);
        if self.push_link(STUB) {
            let _ = self.head.head.compare_exchange(
                STUB,
                STUB.map_addr(|a| a | PARKED),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        // SAFETY: `last` is alive (the caller's contract).
        unsafe { (*last).next.load(ord::QUEUE_NEXT()) }
    }

    /// See [`MpscQueue::has_data`].
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop): the caller must be the single consumer.
    #[inline]
    pub(crate) unsafe fn has_data(&self) -> bool {
        self.tail.tail.with(|tail_slot| {
            // SAFETY: the caller is the only consumer, so `tail` is not being written.
            let tail = unsafe { *tail_slot };
            if tail.addr() & KEPT != 0 {
                let kept = tail.map_addr(|a| a & !KEPT);
                // SAFETY: a kept node is alive until the consumer releases its link.
                return !unsafe { (*kept).next.load(ord::QUEUE_NEXT()) }.is_null();
            }
            tail != STUB || !self.stub.next.load(ord::QUEUE_NEXT()).is_null()
        })
    }

    /// See [`MpscQueue::is_empty`].
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop): the caller must be the single consumer.
    #[inline]
    pub(crate) unsafe fn is_empty(&self) -> bool {
        // SAFETY: the caller is the only consumer, so `tail` is not being written.
        let tail = self.tail.tail.with(|tail_slot| unsafe { *tail_slot });
        // Empty means `head` is still the queue's end: the stub, or the kept node.
        tail.map_addr(|a| a & !KEPT) == unmarked(self.head.head.load(Ordering::SeqCst))
            && (tail.addr() & KEPT != 0 || tail == STUB)
    }

    /// See [`MpscQueue::head_is_stub`]. A parked head counts as the stub.
    #[inline]
    pub(crate) fn head_is_stub(&self) -> bool {
        unmarked(self.head.head.load(Ordering::SeqCst)) == STUB
    }

    /// Whether the head carries the [`PARKED`] mark (a snapshot).
    #[inline]
    pub(crate) fn is_parked(&self) -> bool {
        is_parked(self.head.head.load(Ordering::Acquire))
    }

    /// Parks the lane: marks its head, so that the next push or [`unpark`](Self::unpark)
    /// takes the token. With `only_if_empty`, only if the head is still the queue's end
    /// (nothing pushed since the caller saw the queue empty); otherwise whatever the head is
    /// (the messages stay queued for a later run; a kept node must have been given up with
    /// [`unkeep`](Self::unkeep) first). Returns `false`, and leaves the token with the caller,
    /// if a push got in first (`only_if_empty`).
    ///
    /// With `only_if_empty` and a kept node at the end (see [`pop_with`](Self::pop_with)), the
    /// same CAS also puts the stub back as the end (`head`: kept node → parked stub): the
    /// re-link that `pop` would otherwise have paid a `swap` for.
    ///
    /// `SeqCst`, and Release: the mark hands what the consumer did to whoever takes the token
    /// next (its swap or CAS Acquires it).
    ///
    /// # Safety
    ///
    /// The caller holds the lane's token (the head is not parked), and is the queue's single
    /// consumer.
    #[inline]
    pub(crate) unsafe fn park(&self, only_if_empty: bool) -> bool {
        if !only_if_empty {
            let mut head = self.head.head.load(Ordering::Relaxed);
            loop {
                debug_assert!(!is_parked(head), "park without the token");
                match self.head.head.compare_exchange_weak(
                    head,
                    head.map_addr(|a| a | PARKED),
                    ord::PARK(),
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(now) => head = now,
                }
            }
        }
        // The cell accesses are kept short and apart from the CAS: once it succeeds, the next
        // run may begin at once, on any thread (what it sees of `tail` comes through the CAS).
        // SAFETY: the caller is the single consumer.
        let tail = self.tail.tail.with(|tail_slot| unsafe { *tail_slot });
        let kept = (tail.addr() & KEPT != 0).then(|| tail.map_addr(|a| a & !KEPT));
        // The end the queue has if nothing was pushed since the caller looked.
        let end = kept.unwrap_or(STUB);
        if kept.is_some() {
            // The stub is out of the list (the kept node is after it): reset it, and make it the
            // end *before* letting go (our CAS Releases these writes to the next run).
            self.stub.next.store(ptr::null_mut(), Ordering::Relaxed);
            // SAFETY: single consumer.
            self.tail
                .tail
                .with_mut(|tail_slot| unsafe { *tail_slot = STUB });
        }
        let early = crate::sync::mutant("keep_release_early");
        if let (Some(kept), true) = (kept, early) {
            // SAFETY: none: this mutant releases the link before knowing that no producer
            // will write it (the loom models must catch it).
            unsafe { T::release_link(NonNull::new_unchecked(kept)) };
        }
        loop {
            match self.head.head.compare_exchange_weak(
                end,
                STUB.map_addr(|a| a | PARKED),
                ord::PARK(),
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if let (Some(kept), false) = (kept, early) {
                        // `head` moved off the kept node by our CAS: no producer received it
                        // from a swap, so none will write its `next`.
                        // SAFETY: given back with `from_link_keeping_link`, released once.
                        unsafe { T::release_link(NonNull::new_unchecked(kept)) };
                    }
                    return true;
                }
                Err(now) if now == end => {} // spurious failure
                Err(_) => {
                    if kept.is_some() {
                        // A push got in: the kept node stays the end; we keep the token.
                        // SAFETY: single consumer (we still hold the token).
                        self.tail
                            .tail
                            .with_mut(|tail_slot| unsafe { *tail_slot = tail });
                    }
                    return false;
                }
            }
        }
    }

    /// Gives up a kept node at the end, re-linking the stub behind it (the `swap` that `pop`
    /// spared), for a consumer that parks with messages left queued or that must leave the
    /// queue in its plain form. Returns `false` if a producer is inside its window behind the
    /// kept node (its link is not visible yet): the node stays kept; try again later.
    ///
    /// # Safety
    ///
    /// The caller is the single consumer.
    #[inline]
    pub(crate) unsafe fn unkeep(&self) -> bool {
        self.tail.tail.with_mut(|tail_slot| {
            // SAFETY: the caller is the single consumer.
            let tail = unsafe { *tail_slot };
            if tail.addr() & KEPT == 0 {
                return true;
            }
            let kept = tail.map_addr(|a| a & !KEPT);
            // SAFETY: a kept node is alive until we release its link.
            let mut next = unsafe { (*kept).next.load(ord::QUEUE_NEXT()) };
            if next.is_null() {
                if kept != unmarked(self.head.head.load(Ordering::Acquire)) {
                    return false;
                }
                // SAFETY: a kept node is alive until we release its link, and the last seen.
                next = unsafe { self.relink_stub_behind(kept) };
                if next.is_null() {
                    // A producer swapped in between our look and our swap: its link lands soon.
                    return false;
                }
            }
            // SAFETY: a node (or the stub) is linked after the kept one, so no producer will
            // write its `next` again; given back with `from_link_keeping_link`, released once.
            unsafe {
                T::release_link(NonNull::new_unchecked(kept));
                *tail_slot = next;
            }
            true
        })
    }

    /// Takes the token of a parked lane: clears the mark, if it is there. Returns `true` if
    /// this call cleared it (the caller now holds the token), `false` if the lane is not
    /// parked (someone holds the token: a run, a pending task, or the push that unparked it).
    ///
    /// The load is `SeqCst` (the store-load handshake of `state.rs`); the CAS Acquires what the
    /// parking consumer released.
    #[inline]
    pub(crate) fn unpark(&self) -> bool {
        let mut head = self.head.head.load(Ordering::SeqCst);
        while is_parked(head) {
            match self.head.head.compare_exchange_weak(
                head,
                unmarked(head),
                ord::UNPARK(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => head = now,
            }
        }
        false
    }

    /// Pops and drops everything. For owners of the two ends, when they are dropped.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to both ends (no push is in flight, no other consumer).
    pub(crate) unsafe fn drop_all(&self) {
        loop {
            // SAFETY: the caller has exclusive access, so it is the only consumer.
            match unsafe { self.pop() } {
                Pop::Data(item) => drop(item),
                Pop::Empty => break,
                // Unreachable with exclusive access; leaking is better than looping or
                // panicking in a destructor.
                Pop::Inconsistent => break,
            }
        }
        // A node kept at the end (nothing after it) gives back its link.
        self.tail.tail.with_mut(|tail_slot| {
            // SAFETY: exclusive access.
            let tail = unsafe { *tail_slot };
            if tail.addr() & KEPT != 0 {
                // SAFETY: given back with `from_link_keeping_link`, released once; with
                // exclusive access no producer can write it.
                unsafe {
                    T::release_link(NonNull::new_unchecked(tail.map_addr(|a| a & !KEPT)));
                    *tail_slot = STUB;
                }
            }
        });
    }
}

/// An intrusive multi-producer single-consumer FIFO queue. See the [module docs](self).
///
/// ```
/// use airssys_rt_mailbox::{Boxed, MpscQueue, Pop};
///
/// let queue = MpscQueue::new();
/// queue.push(Boxed::new(1));
/// queue.push(Boxed::new(2));
/// // SAFETY: this thread is the only consumer.
/// unsafe {
///     assert!(matches!(queue.pop(), Pop::Data(b) if *b == 1));
///     assert!(matches!(queue.pop(), Pop::Data(b) if *b == 2));
///     assert_eq!(queue.pop(), Pop::Empty);
/// }
/// ```
pub struct MpscQueue<T: Linked> {
    /// Producers' end.
    head: ProducerEnd,
    /// Consumer's end. Only the consumer touches it.
    tail: ConsumerEnd,
    /// The queue's own link, in the list whenever it would otherwise be empty.
    stub: Link,
    _owns: PhantomData<T>,
}

// SAFETY: the queue owns the `T`s it holds; moving the queue to another thread moves them, so
// `T: Send` is required and enough. Raw pointers inside are owned nodes, not shared borrows.
unsafe impl<T: Linked + Send> Send for MpscQueue<T> {}
// SAFETY: `push` (the only method usable from many threads at once) moves a `T` in, which
// needs `T: Send`; the consumer-side methods are `unsafe` and require a single consumer, so
// `&MpscQueue` never hands out shared access to a `T`.
unsafe impl<T: Linked + Send> Sync for MpscQueue<T> {}

impl<T: Linked> MpscQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            head: ProducerEnd::new(),
            tail: ConsumerEnd::new(),
            stub: Link::new(),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn ends(&self) -> Ends<'_, T> {
        // SAFETY: our parts were made together, always carry `T`, and `Drop` drops what they
        // hold.
        unsafe { Ends::new(&self.head, &self.tail, &self.stub) }
    }

    /// Appends `item`. Wait-free: one swap and one store, whatever other threads do.
    #[inline]
    pub fn push(&self, item: T) {
        // Never parked (only a mailbox parks its lane), so this takes no token.
        let _ = self.ends().push(item);
    }

    /// Removes the oldest message.
    ///
    /// # Safety
    ///
    /// Only one thread at a time may call the consumer methods (`pop`, `has_data`,
    /// `is_empty`): the caller must be the queue's single consumer for the duration of the
    /// call.
    #[inline]
    pub unsafe fn pop(&self) -> Pop<T> {
        // SAFETY: this method's contract (the caller is the single consumer) is the one
        // `Ends::pop` requires, and `ends()` gives this queue's own parts.
        unsafe { self.ends().pop() }
    }

    /// Whether a message is visible at the consumer's end (without removing it).
    ///
    /// `true` means a node has been linked: everything its producer wrote before pushing it is
    /// visible to the caller from now on. A following `pop` can still answer `Inconsistent`
    /// when that node is the last one and another producer is inside its window.
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop): the caller must be the single consumer.
    #[inline]
    pub unsafe fn has_data(&self) -> bool {
        // SAFETY: this method's contract (the caller is the single consumer) is the one
        // `Ends::has_data` requires, and `ends()` gives this queue's own parts.
        unsafe { self.ends().has_data() }
    }

    /// Whether nothing at all has been pushed that the consumer has not popped, counting
    /// pushes still inside their window (swapped in, not yet linked).
    ///
    /// Empty means `tail` and `head` are both the stub: `head` leaves the stub only by a
    /// producer's swap, and only the consumer puts it back (when it takes the last node).
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop): the caller must be the single consumer.
    #[inline]
    pub unsafe fn is_empty(&self) -> bool {
        // SAFETY: this method's contract (the caller is the single consumer) is the one
        // `Ends::is_empty` requires, and `ends()` gives this queue's own parts.
        unsafe { self.ends().is_empty() }
    }

    /// Whether the producers' end is the stub: nothing has been pushed since the consumer
    /// last took the queue's last node (or ever). Any thread may ask; it reads only `head`.
    ///
    /// The load is `SeqCst`: a consumer that has just let go of its mailbox with a `SeqCst`
    /// write either sees a push here or that push's producer sees the write (see `state.rs`).
    #[inline]
    pub fn head_is_stub(&self) -> bool {
        self.ends().head_is_stub()
    }
}

impl<T: Linked> Default for MpscQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Linked> Drop for MpscQueue<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: every push has returned and this thread is the only consumer.
        // Each message is dropped exactly once.
        unsafe { self.ends().drop_all() }
    }
}

impl<T: Linked> fmt::Debug for MpscQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscQueue").finish_non_exhaustive()
    }
}
