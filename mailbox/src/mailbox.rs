//! [`Mailbox`]: a user lane (whose head carries the run token), a system lane, a state word
//! and an optional bound.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};
use core::num::NonZeroU32;

use crate::header::Link;
use crate::queue::{ConsumerEnd, Ends, Linked, Pop, ProducerEnd};
use crate::state::SchedState;
use crate::sync::{AtomicU32, Ordering};

/// The cache-line size that [`Mailbox`] keeps its producers' and consumer's ends apart by
/// (x86-64 and most ARM cores).
pub const CACHE_LINE: usize = 64;

/// The producers' fields of a mailbox, at its front: the two lanes' heads, the user lane's
/// stub, the state word and the bound. Kept as one `repr(C)` block so their size is known to
/// [`GAP_BYTES`].
#[repr(C)]
struct ProducerFields {
    /// Swapped by every user push: the word that must not share a line with the consumer's.
    user_head: ProducerEnd,
    /// Written by every push into an empty user lane (each message to an idle actor), and read
    /// by the consumer only while the lane is at its stub: so it sits with the producers.
    user_stub: Link,
    system_head: ProducerEnd,
    state: SchedState,
    /// User messages accepted and not yet popped. Kept only when bounded.
    len: AtomicU32,
    capacity: Option<NonZeroU32>,
}

/// How many bytes of `C` a [`Mailbox`] needs between its two ends so that no cache line holds
/// both the user lane's head (written by every push) and anything the consumer reads on every
/// pop (24 on 64-bit targets). [`Gap`] is exactly this size.
///
/// The consumer's fields must start at least a [`CACHE_LINE`] after the head *starts*: the
/// head is aligned, so it lies in one line, and that line ends at most a line's length after
/// the head's first byte.
pub const GAP_BYTES: usize =
    CACHE_LINE + offset_of!(ProducerFields, user_head) - size_of::<ProducerFields>();

/// Padding that keeps a [`Mailbox`]'s two ends on different cache lines: the default for its
/// `C` parameter. An owner with data of its own that the consumer does not touch per message
/// (ids, back pointers) puts that there instead, and wastes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap([u8; GAP_BYTES]);

impl Default for Gap {
    fn default() -> Self {
        Self([0; GAP_BYTES])
    }
}

/// Why a message was not accepted. The message is inside: nothing is dropped.
#[derive(PartialEq, Eq)]
pub enum PushError<T> {
    /// The mailbox holds as many user messages as its bound allows.
    Full(T),
    /// The mailbox is closed (its consumer has stopped).
    Closed(T),
}

impl<T> PushError<T> {
    /// Gives the message back.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(t) | PushError::Closed(t) => t,
        }
    }

    /// Whether the mailbox was full.
    pub fn is_full(&self) -> bool {
        matches!(self, PushError::Full(_))
    }

    /// Whether the mailbox was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, PushError::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("Full(..)"),
            PushError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("mailbox full: the message was not sent"),
            PushError::Closed(_) => f.write_str("mailbox closed: the message was not sent"),
        }
    }
}

impl<T> std::error::Error for PushError<T> {}

/// The right to run a mailbox's consumer once: at most one exists per mailbox at any time.
///
/// A token comes from a push, a [`notify`](Mailbox::notify) or a [`finish`](Run::finish) that
/// found the mailbox needing a run. The host must eventually pass it to
/// [`begin_run`](Mailbox::begin_run) of the same mailbox. A token that is dropped instead
/// leaves the mailbox scheduled with nobody to run it: it never runs again (its messages are
/// still dropped, once each, with the mailbox).
#[must_use = "a RunToken must be run with Mailbox::begin_run, or the mailbox never runs again"]
#[derive(Debug, PartialEq, Eq)]
pub struct RunToken {
    mailbox: usize,
}

impl RunToken {
    /// Sets the token aside without running it: the mailbox stays scheduled, and the only way
    /// back to a token is [`Mailbox::reclaim_token`] on the same mailbox.
    ///
    /// For a host whose task is already a pointer to the mailbox's owner: it keeps the token
    /// implicit instead of storing it (a word less per queued task).
    ///
    /// ```
    /// use airssys_rt_mailbox::{Boxed, Mailbox};
    ///
    /// let mailbox: Mailbox<Boxed<u32>> = Mailbox::unbounded();
    /// let token = mailbox.try_push(Boxed::new(7)).unwrap().expect("idle: the push schedules it");
    /// token.set_aside();
    /// // Later, where the host runs the task:
    /// // SAFETY: the one token of this mailbox was set aside above and not reclaimed since.
    /// let token = unsafe { mailbox.reclaim_token() };
    /// let mut run = mailbox.begin_run(token);
    /// assert!(run.pop().is_some());
    /// assert!(run.finish(false).is_none());
    /// ```
    #[inline]
    pub fn set_aside(self) {
        let RunToken { .. } = self;
    }
}

/// A message taken from a [`Mailbox`]: from the system lane or from the user lane.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<U, S> {
    /// A control signal (system lane).
    System(S),
    /// A user message.
    User(U),
}

/// An actor's mailbox: two intrusive MPSC queues, a run token and a state word.
///
/// * The **user lane** carries ordinary messages. It may be bounded: a push beyond the bound
///   gets [`PushError::Full`] with the message back.
/// * The **system lane** carries control signals (stop, exit, down, supervision). It is never
///   bounded and is always drained first, so user traffic can neither block nor delay a
///   signal. A signal pushed before a user message (by any thread, as long as the first push
///   happened-before the second) is received before it.
/// * **Scheduling is exactly-once**, and costs a message nothing beyond its push: the user
///   lane's head carries the run token (a *parked* mark while idle, see [`state`](crate::state)).
///   The push whose swap finds the mark returns the [`RunToken`]; the host runs it
///   ([`begin_run`](Self::begin_run) … [`finish`](Run::finish)); a run that ends with nothing
///   left parks the lane again with one CAS, which fails, keeping the token, if a push got in
///   first. A signal or a wake-up ([`notify`](Self::notify)) unparks the lane. The state word
///   ([`SchedState`]) beside it holds `CLOSED` and `WOKEN`.
/// * **Close** makes later pushes fail with the message back. Messages accepted before the
///   close (including pushes racing with it) are still received by a run, which sees
///   [`Run::is_closed`] and can hand them to a dead-letter hook. Every message is received,
///   returned to its sender, or dropped with the mailbox: exactly once.
///
/// # Memory layout: two ends on two cache lines
///
/// An idle mailbox owns no allocation. It is `repr(C)`, in three parts:
///
/// | part | bytes (64-bit) | who touches it |
/// |---|---|---|
/// | producers' fields: the user and system lanes' heads, the user lane's stub, the [state word](SchedState), the bound and its counter | 40 | every push swaps the user head (and takes the token if it was parked) after reading the state word (closed?); a push into an empty lane links the stub |
/// | `cold: C`, the owner's data ([`Gap`] padding by default) | at least [`GAP_BYTES`] (24) | whoever the owner decides; **not** the consumer on every message |
/// | consumer's fields: the system lane's tail and stub, the user lane's tail | 24 | every pop |
///
/// [`ENDS_APART`](Self::ENDS_APART) checks that the consumer's fields start at least a
/// [`CACHE_LINE`] after the user head does, so that they never share a line wherever the
/// mailbox is placed. Otherwise a consumer working through a backlog and a producer adding to
/// it pull one line between their cores on every message: keeping them apart made Savina
/// counting (one producer, one consumer) 2.5x faster and a 4-producer fan-in about 1.4x (A/B
/// runs of `cargo run --release -p airssys-rt-compare -- --filter counting`, `fan-in`). The
/// runtime puts an actor's id, back pointer and registry marks in `C`, so the gap costs an
/// actor 7 bytes of padding, not 24.
///
/// The user lane's stub sits with the producers: a message to an idle actor writes it (and
/// the head), and the consumer then reads it once, on the same line. With
/// it on the consumer's side, every such message would move two lines between cores instead
/// of one.
///
/// ```
/// use airssys_rt_mailbox::{Boxed, Mailbox, Received};
///
/// let mailbox: Mailbox<Boxed<&str>> = Mailbox::unbounded();
/// let token = mailbox.try_push(Boxed::new("hello")).unwrap().expect("idle: we schedule it");
/// assert!(mailbox.try_push(Boxed::new("world")).unwrap().is_none()); // already scheduled
///
/// let mut run = mailbox.begin_run(token);
/// let mut got = Vec::new();
/// while let Some(Received::User(msg)) = run.pop() {
///     got.push(msg.into_inner());
/// }
/// assert!(run.finish(false).is_none()); // nothing new arrived: the mailbox is idle
/// assert_eq!(got, ["hello", "world"]);
/// ```
#[repr(C)]
pub struct Mailbox<U: Linked, S: Linked = U, C = Gap> {
    /// First, so that only the owner's data precedes the user head within the mailbox.
    producers: ProducerFields,
    cold: C,
    system_tail: ConsumerEnd,
    /// Read on every pop (the system lane is looked at first), written only by signals.
    system_stub: Link,
    user_tail: ConsumerEnd,
    _owns: PhantomData<(U, S)>,
}

// SAFETY: the mailbox owns the messages it holds (as `MpscQueue` does); moving it to another
// thread moves them, so `U: Send` and `S: Send` are required and enough, plus `C: Send` for
// the owner's data. The raw pointers inside are owned nodes, not shared borrows.
unsafe impl<U: Linked + Send, S: Linked + Send, C: Send> Send for Mailbox<U, S, C> {}
// SAFETY: pushes (usable from many threads at once) move messages in, which needs `Send`;
// messages come out only through a `Run`, of which at most one exists (the run token), so
// `&Mailbox` never hands out shared access to a message. `cold()` shares `&C`: `C: Sync`.
unsafe impl<U: Linked + Send, S: Linked + Send, C: Sync> Sync for Mailbox<U, S, C> {}

impl<U: Linked, S: Linked, C: Default> Mailbox<U, S, C> {
    /// An open, idle mailbox with no bound on the user lane.
    pub fn unbounded() -> Self {
        Self::with_capacity(None)
    }

    /// An open, idle mailbox whose user lane holds at most `capacity` messages.
    pub fn bounded(capacity: NonZeroU32) -> Self {
        Self::with_capacity(Some(capacity))
    }

    /// An open, idle mailbox with an optional bound on the user lane.
    pub fn with_capacity(capacity: Option<NonZeroU32>) -> Self {
        Self::with_cold(capacity, C::default())
    }
}

impl<U: Linked, S: Linked, C> Mailbox<U, S, C> {
    /// Whether the consumer's fields start at least a [`CACHE_LINE`] after the user lane's head
    /// (written by every push) starts, so that they never share a line. True with the default
    /// [`Gap`]; an owner that puts its own `C` there asserts it in a `const`.
    ///
    /// ```
    /// use airssys_rt_mailbox::{Boxed, Mailbox};
    ///
    /// const _: () = assert!(Mailbox::<Boxed<u64>>::ENDS_APART);
    /// // With nothing in between, the two ends would share a line:
    /// const _: () = assert!(!Mailbox::<Boxed<u64>, Boxed<u64>, ()>::ENDS_APART);
    /// ```
    pub const ENDS_APART: bool = offset_of!(Self, system_tail)
        >= offset_of!(Self, producers) + offset_of!(ProducerFields, user_head) + CACHE_LINE;

    /// An open, idle mailbox with an optional bound on the user lane, holding `cold` between
    /// its producers' and its consumer's fields (see the type docs).
    pub fn with_cold(capacity: Option<NonZeroU32>, cold: C) -> Self {
        Self {
            producers: ProducerFields {
                // Parked: idle, and the first push takes the token.
                user_head: ProducerEnd::parked(),
                user_stub: Link::new(),
                system_head: ProducerEnd::new(),
                state: SchedState::new(),
                len: AtomicU32::new(0),
                capacity,
            },
            cold,
            system_tail: ConsumerEnd::new(),
            system_stub: Link::new(),
            user_tail: ConsumerEnd::new(),
            _owns: PhantomData,
        }
    }

    /// The owner's data kept between the two ends.
    #[inline]
    pub fn cold(&self) -> &C {
        &self.cold
    }

    #[inline(always)]
    fn user(&self) -> Ends<'_, U> {
        // SAFETY: these parts were made together, always carry `U`, and `Drop` drops what they
        // hold.
        unsafe {
            Ends::new(
                &self.producers.user_head,
                &self.user_tail,
                &self.producers.user_stub,
            )
        }
    }

    #[inline(always)]
    fn system(&self) -> Ends<'_, S> {
        // SAFETY: as in `user`, for `S`.
        unsafe {
            Ends::new(
                &self.producers.system_head,
                &self.system_tail,
                &self.system_stub,
            )
        }
    }

    /// The bound on the user lane, if any.
    pub fn capacity(&self) -> Option<NonZeroU32> {
        self.producers.capacity
    }

    /// Slots of the bound in use: user messages accepted and not yet received, for a bounded
    /// mailbox (`None` when unbounded: counting would cost every send and receive an atomic
    /// operation).
    ///
    /// The value is a snapshot and may be stale at once.
    pub fn occupancy(&self) -> Option<usize> {
        self.producers
            .capacity
            .map(|_| self.producers.len.load(Ordering::Relaxed) as usize)
    }

    /// Pushes a user message. On success, returns the [`RunToken`] if the caller must schedule
    /// the mailbox (it was idle); on failure, returns the message with the reason.
    #[inline]
    pub fn try_push(&self, msg: U) -> Result<Option<RunToken>, PushError<U>> {
        self.push_user(msg, true)
    }

    /// Pushes a user message past the bound, if any: for what the mailbox's owner must not
    /// refuse (the runtime queues its own notices this way, behind the messages already
    /// there). The message still takes a slot of the bound until it is received, so a full
    /// mailbox stays full a little longer. Fails only when the mailbox is closed.
    ///
    /// ```
    /// use core::num::NonZeroU32;
    /// use airssys_rt_mailbox::{Boxed, Mailbox, PushError};
    ///
    /// let mailbox: Mailbox<Boxed<u32>> = Mailbox::bounded(NonZeroU32::new(1).unwrap());
    /// let token = mailbox.try_push(Boxed::new(1)).unwrap().unwrap();
    /// assert!(matches!(mailbox.try_push(Boxed::new(2)), Err(PushError::Full(_))));
    /// assert!(mailbox.push_past_bound(Boxed::new(3)).unwrap().is_none()); // scheduled already
    /// assert_eq!(mailbox.occupancy(), Some(2));
    ///
    /// let mut run = mailbox.begin_run(token);
    /// while run.pop().is_some() {}
    /// assert_eq!(mailbox.occupancy(), Some(0)); // both slots given back
    /// # let _ = run.finish(false);
    /// ```
    #[inline]
    pub fn push_past_bound(&self, msg: U) -> Result<Option<RunToken>, PushError<U>> {
        self.push_user(msg, false)
    }

    #[inline(always)]
    fn push_user(&self, msg: U, enforce_bound: bool) -> Result<Option<RunToken>, PushError<U>> {
        let p = &self.producers;
        if p.state.is_closed() {
            return Err(PushError::Closed(msg));
        }
        if let Some(cap) = p.capacity {
            // Reserve a slot. Relaxed: the counter guards no data (the queue publishes it).
            let prev = p.len.fetch_add(1, Ordering::Relaxed);
            if enforce_bound && prev >= cap.get() {
                p.len.fetch_sub(1, Ordering::Relaxed);
                return Err(PushError::Full(msg));
            }
        }
        // The swap that found the lane parked took the token (S1, S2 in `state`).
        if !self.user().push(msg) {
            return Ok(None);
        }
        if crate::sync::mutant("notify_closed_no_token") && p.state.is_closed() {
            return Ok(None);
        }
        Ok(Some(self.token()))
    }

    /// Pushes a control signal: never bounded, drained before user messages. Fails only when
    /// the mailbox is closed, giving the signal back.
    #[inline]
    pub fn push_system(&self, msg: S) -> Result<Option<RunToken>, S> {
        if self.producers.state.is_closed() {
            return Err(msg);
        }
        // The system lane is never parked: its push takes no token by itself.
        let _ = self.system().push(msg);
        // The sender's half of the store-load handshake (`state`): the swap, then a look at
        // the user head.
        crate::sync::loom_seqcst_fence("push_no_seqcst");
        Ok(self.unpark())
    }

    /// Takes the token if the mailbox is parked (idle).
    #[inline]
    fn unpark(&self) -> Option<RunToken> {
        self.user().unpark().then(|| self.token())
    }

    /// Asks for a run without a message (a wake-up: a timer fired, a future became ready).
    /// Returns the token if the caller must schedule it.
    #[inline]
    pub fn notify(&self) -> Option<RunToken> {
        // Idle: take the token; the run it starts serves this wake-up.
        if let Some(token) = self.unpark() {
            return Some(token);
        }
        // Scheduled or running: leave a note for the run, then look again, in case that run
        // parked in between (the handshake in `state`).
        self.producers.state.wake();
        crate::sync::loom_seqcst_fence("push_no_seqcst");
        self.unpark()
    }

    /// Whether a run is pending or in progress (somebody holds the token), as opposed to
    /// idle. A snapshot for diagnostics and tests: it may be stale at once.
    pub fn is_scheduled(&self) -> bool {
        !self.user().is_parked()
    }

    /// The token that [`RunToken::set_aside`] set aside.
    ///
    /// # Safety
    ///
    /// A token of this mailbox was set aside and has not been reclaimed since: the call turns
    /// that one back into a token. Reclaiming without one, or twice, would make a second token,
    /// hence two consumers of the queues at once (invariant S1 of `state`).
    #[inline]
    pub unsafe fn reclaim_token(&self) -> RunToken {
        self.token()
    }

    /// Closes the mailbox: later pushes fail with their message back. Returns `true` if this
    /// call closed it.
    ///
    /// Closing schedules nothing by itself: a run that is pending or in progress sees the
    /// close, and a push that raced with it schedules a run of its own, which receives it.
    pub fn close(&self) -> bool {
        self.producers.state.close()
    }

    /// Whether the mailbox is closed.
    pub fn is_closed(&self) -> bool {
        self.producers.state.is_closed()
    }

    /// The scheduling state (for diagnostics).
    pub fn state(&self) -> &SchedState {
        &self.producers.state
    }

    /// Starts a run: the caller becomes the consumer until [`Run::finish`].
    ///
    /// # Panics
    ///
    /// If `token` belongs to another mailbox (a bug in the host: tokens are not
    /// interchangeable). Checking costs one comparison and keeps the consumer unique.
    #[inline]
    pub fn begin_run(&self, token: RunToken) -> Run<'_, U, S, C> {
        assert_eq!(
            token.mailbox,
            self.addr(),
            "RunToken passed to a mailbox that did not issue it"
        );
        // Consumed: the run now stands for it (the user head stays unparked).
        let RunToken { .. } = token;
        // This run serves any wake-up that came while the token was pending.
        self.producers.state.take_woken();
        Run {
            mailbox: self,
            // Read once per run: the pops then need nothing from the producers' line.
            bounded: self.producers.capacity.is_some(),
            finished: false,
        }
    }

    /// Takes every queued message out, system lane first, for a final hand-off (to a
    /// dead-letter hook, say). `&mut self` proves that no push is in flight.
    pub fn drain(&mut self, mut f: impl FnMut(Received<U, S>)) {
        // SAFETY: `&mut self`: this thread is the only consumer and no producer is in flight.
        unsafe {
            while let Pop::Data(s) = self.system().pop() {
                f(Received::System(s));
            }
            let bounded = self.producers.capacity.is_some();
            while let Pop::Data(u) = self.user().pop() {
                self.release_slot(bounded);
                f(Received::User(u));
            }
        }
    }

    #[inline]
    fn token(&self) -> RunToken {
        RunToken {
            mailbox: self.addr(),
        }
    }

    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// Gives back the slot of a popped user message. `bounded` is the caller's copy of
    /// `capacity.is_some()`, so that an unbounded mailbox's pops read nothing on the producers'
    /// line.
    #[inline]
    fn release_slot(&self, bounded: bool) {
        if bounded {
            self.producers.len.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<U: Linked, S: Linked, C> Drop for Mailbox<U, S, C> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: every push has returned and this thread is the only consumer.
        // Each message is dropped exactly once, signals first.
        unsafe {
            self.system().drop_all();
            self.user().drop_all();
        }
    }
}

impl<U: Linked, S: Linked, C> fmt::Debug for Mailbox<U, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("scheduled", &self.is_scheduled())
            .field("state", &self.producers.state)
            .field("occupancy", &self.occupancy())
            .field("capacity", &self.producers.capacity)
            .finish_non_exhaustive()
    }
}

/// A run of a mailbox's consumer: the only place messages come out.
///
/// Made by [`Mailbox::begin_run`]; end it with [`finish`](Run::finish). While it exists, its
/// holder is the mailbox's single consumer, and no other run of the same mailbox can exist.
///
/// Dropping a run without `finish` (an unwinding panic, say) ends it as `finish(false)` would,
/// but a token it should have handed back is lost, so the mailbox would never run again: the
/// runtime catches handler panics and always finishes its runs.
pub struct Run<'a, U: Linked, S: Linked, C = Gap> {
    mailbox: &'a Mailbox<U, S, C>,
    /// Whether the user lane is bounded (a copy, so pops stay off the producers' line).
    bounded: bool,
    finished: bool,
}

impl<U: Linked, S: Linked, C> Run<'_, U, S, C> {
    /// Takes the next message: a system signal if one is waiting, else the oldest user message.
    ///
    /// `None` means nothing can be taken now. Messages may still be in flight (a producer
    /// inside its push); [`finish`](Self::finish) then sees the queue is not empty and hands
    /// back a token, so they are received by a later run.
    ///
    /// Ordering: if a signal's push happened-before a user message's push, the signal comes
    /// out first.
    #[inline]
    pub fn pop(&mut self) -> Option<Received<U, S>> {
        // SAFETY: without `keep_link`, nothing is asked of the caller.
        unsafe { self.pop_with(false) }
    }

    /// [`pop`](Self::pop), except that the last user message's link may stay in the queue
    /// (as its end) after the message is handed out, until a pop finds a message after it or
    /// the mailbox parks (a run that keeps the token keeps the link into the next run): the
    /// run's [`finish`](Self::finish) then parks the mailbox and puts the queue's stub back
    /// with one CAS, instead of `pop` re-linking the stub with a `swap` and `finish`
    /// parking with a CAS. One locked instruction less per message to an idle mailbox.
    ///
    /// Only for message types that support it ([`Linked::KEEPS_LINK`], as
    /// [`Envelope`](crate::Envelope) does, with a second chunk reference per message); for
    /// others this is `pop`. The kept link holds that reference, so the message's chunk is not
    /// recycled before the link is given up (at the latest when the mailbox parks): a consumer
    /// that waits for its own writer's pool while handling the message waits for that chunk
    /// too.
    ///
    /// # Safety
    ///
    /// A user message returned by this call is never pushed into a queue again (given to
    /// [`Linked::into_link`]): its link may still be this queue's. Reading it, taking its
    /// value and dropping it are fine, on any thread, at any time.
    ///
    /// ```
    /// use airssys_rt_mailbox::{ArenaWriter, Envelope, Mailbox, PoolConfig, Received};
    ///
    /// let mut writer = ArenaWriter::new(PoolConfig::default());
    /// let mailbox: Mailbox<Envelope> = Mailbox::unbounded();
    /// let token = mailbox.try_push(writer.write_plain(7u64).unwrap()).unwrap().unwrap();
    /// let mut run = mailbox.begin_run(token);
    /// // SAFETY: the message is only read and dropped, never pushed again.
    /// let Some(Received::User(env)) = (unsafe { run.pop_keeping_link() }) else { panic!() };
    /// assert_eq!(env.take::<u64>().unwrap(), 7);
    /// assert!(run.finish(false).is_none()); // parks, and gives the queue its stub back
    /// ```
    #[inline]
    pub unsafe fn pop_keeping_link(&mut self) -> Option<Received<U, S>> {
        // SAFETY: the caller's contract is `pop_with`'s.
        unsafe { self.pop_with(true) }
    }

    /// # Safety
    ///
    /// With `keep_link`, as for [`pop_keeping_link`](Self::pop_keeping_link).
    #[inline(always)]
    unsafe fn pop_with(&mut self, keep_link: bool) -> Option<Received<U, S>> {
        let mailbox = self.mailbox;
        // Look at the user lane *before* the system lane: seeing a user message (an Acquire
        // load of its link) makes every signal pushed before it visible to the system check
        // that follows. Checking in the other order could miss such a signal and let the user
        // message overtake it.
        // SAFETY: a `Run` is the single consumer.
        let user_ready = crate::sync::mutant("no_peek") || unsafe { mailbox.user().has_data() };
        // SAFETY: as above.
        match unsafe { mailbox.system().pop() } {
            Pop::Data(s) => return Some(Received::System(s)),
            Pop::Empty => {}
            // A signal producer is mid-push, possibly behind a completed signal that we cannot
            // reach yet. Taking a user message now could overtake that signal, so stop here:
            // `finish` sees the lane is not empty and keeps the token.
            Pop::Inconsistent => return None,
        }
        if !user_ready {
            return None;
        }
        // SAFETY: as above; with `keep_link`, the caller never re-links what we return.
        match unsafe { mailbox.user().pop_with(keep_link) } {
            Pop::Data(u) => {
                mailbox.release_slot(self.bounded);
                Some(Received::User(u))
            }
            Pop::Empty | Pop::Inconsistent => None,
        }
    }

    /// Takes the next control signal only, leaving user messages queued (for a consumer that
    /// is busy with a user message, such as an actor awaiting inside a handler).
    #[inline]
    pub fn pop_system(&mut self) -> Option<S> {
        // SAFETY: a `Run` is the single consumer.
        match unsafe { self.mailbox.system().pop() } {
            Pop::Data(s) => Some(s),
            Pop::Empty | Pop::Inconsistent => None,
        }
    }

    /// Whether the mailbox has been closed (before or during this run). A run that sees it
    /// closed hands every message it pops to a dead-letter hook instead of handling it.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.mailbox.producers.state.is_closed()
    }

    /// Closes the mailbox from inside the run (the consumer stops). Returns `true` if this
    /// call closed it.
    pub fn close(&self) -> bool {
        self.mailbox.close()
    }

    /// Ends the run. `yielded` says the run stopped with work left (its budget ran out): the
    /// mailbox stays scheduled. Returns the token if the mailbox must run again, because it
    /// yielded, because a wake-up came during the run, or because a message is queued (or
    /// being pushed) once the run has let go; the caller schedules it.
    ///
    /// A run that stopped on [`Pop::Inconsistent`](crate::Pop::Inconsistent) (a producer
    /// between its two steps) gets the token back here, so the host runs it again shortly
    /// and finds the message linked.
    #[inline]
    pub fn finish(mut self, yielded: bool) -> Option<RunToken> {
        self.end(yielded, true)
    }

    /// Ends a run that leaves user messages queued on purpose, because the consumer waits
    /// for something else (an actor awaiting inside a handler takes only signals meanwhile).
    ///
    /// Like [`finish(false)`](Self::finish), except that queued user messages do not make
    /// the mailbox run again: only a queued signal or a wake-up ([`Mailbox::notify`]) does
    /// now, and a push after this call schedules a run as usual. Without this, a consumer
    /// that cannot take its user messages yet would be run again and again for them.
    #[inline]
    pub fn finish_awaiting(mut self) -> Option<RunToken> {
        self.end(false, false)
    }

    #[inline]
    fn end(&mut self, yielded: bool, user_lane_counts: bool) -> Option<RunToken> {
        self.finished = true;
        let mailbox = self.mailbox;
        let (user, system, state) = (mailbox.user(), mailbox.system(), &mailbox.producers.state);
        // While still the consumer: a message left behind (one a producer is still linking,
        // say) or a wake-up means run again, with the token kept. Nothing is written.
        // SAFETY: this run is the single consumer until it parks below.
        let keep = yielded
            || unsafe { (user_lane_counts && !user.is_empty()) || !system.is_empty() }
            || state.take_woken();
        if keep {
            return Some(mailbox.token());
        }
        // Parking with user messages left queued (awaiting) takes the queue in its plain form:
        // a link kept at its end (`pop_keeping_link`) is given up first, or the token kept.
        // SAFETY: this run is the single consumer.
        if !user_lane_counts && !unsafe { user.unkeep() } {
            return Some(mailbox.token());
        }
        // Let go: park the user lane (putting its stub back if a link was kept at its end).
        // Fails (and we keep the token) if a user push got in since `is_empty` above.
        // SAFETY: this run holds the token and is the single consumer.
        if !unsafe { user.park(user_lane_counts) } {
            return Some(mailbox.token());
        }
        // The run's half of the store-load handshake (`state`): a signal or a wake-up that
        // came after our looks above, and whose sender saw the lane not yet parked, is seen
        // here. From now on another run may be consuming: look only at the system lane's
        // producer end and at the word.
        crate::sync::loom_seqcst_fence("finish_no_seqcst");
        let again =
            !crate::sync::mutant("no_recheck") && (!system.head_is_stub() || state.is_woken());
        if again {
            mailbox.unpark()
        } else {
            None
        }
    }
}

impl<U: Linked, S: Linked, C> Drop for Run<'_, U, S, C> {
    fn drop(&mut self) {
        if !self.finished {
            // See the type docs: the token this might return is lost.
            let _ = self.end(false, true);
        }
    }
}

impl<U: Linked, S: Linked, C> fmt::Debug for Run<'_, U, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("mailbox", self.mailbox)
            .finish()
    }
}
