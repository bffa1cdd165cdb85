//! Actors, their addresses, and the run loop that drives them.
//!
//! An actor is a value (its state, reached as `&mut self`) with a mailbox. Each message type it
//! accepts has a [`Handler`]; lifecycle hooks run when it starts and stops. Every handler and
//! hook runs under `catch_unwind`: a panic becomes the actor's [`ExitReason::Panicked`], which
//! reaches its links and monitors, and never takes the runtime down.
//!
//! Messages are plain Rust values (moved into the sending thread's arena, no serialization,
//! no `Box`) or rkyv archives read in place ([`Actor::handle_archived`]). Signals (exit,
//! down, link, monitor, kill) travel on the mailbox's system lane: a full user mailbox never
//! blocks or delays them.
//!
//! ```
//! use airssys_rt::{Actor, Ctx, Handler, ManualDriver};
//!
//! struct Counter(u64);
//! impl Actor for Counter {}
//!
//! struct Add(u64);
//! impl Handler<Add> for Counter {
//!     type Reply = u64;
//!     fn handle(&mut self, Add(n): Add, _ctx: &mut Ctx<Self>) -> u64 {
//!         self.0 += n;
//!         self.0
//!     }
//! }
//!
//! let driver = ManualDriver::new(7);
//! let counter = driver.system().spawn(Counter(0)).unwrap();
//! counter.tell(Add(2)).unwrap();
//! let reply = counter.ask(Add(3));
//! driver.run_until_idle();
//! assert_eq!(reply.try_take(), Some(Ok(5)));
//! ```

use core::fmt;
use core::panic::AssertUnwindSafe;
use core::ptr::NonNull;
use std::any::Any;
use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::catch_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::arena;
use crate::codec::{self, Message};
use crate::exit::{ActorId, ExitReason, MonitorRef};
use crate::mailbox::{Boxed, Envelope, Mailbox, PushError, Received, RunToken};
use crate::registry::{marks, Groups, Names, RegisterError, Slab};
use crate::timer::{TimerRef, Timers};

/// The default number of user messages a run handles before it yields.
pub const DEFAULT_BUDGET: usize = 128;

/// An actor: its state and its lifecycle hooks. Messages are accepted through [`Handler`]
/// implementations (plain values) and [`handle_archived`](Actor::handle_archived) (archives).
#[allow(unused_variables)]
pub trait Actor: Send + Sized + 'static {
    /// Runs once, before any message.
    fn started(&mut self, ctx: &mut Ctx<Self>) {}

    /// Runs when the actor stops (not when it is killed), while it can still use its
    /// context (send last messages, unregister). Then [`stopped`](Actor::stopped) runs.
    fn stopping(&mut self, ctx: &mut Ctx<Self>, reason: &ExitReason) {}

    /// Runs last, on every exit including a kill, with the final reason; the actor is then
    /// dropped. Its links and monitors are told right after.
    fn stopped(&mut self, reason: &ExitReason) {}

    /// An exit signal from a linked actor (or a [`stop`](ActorRef::stop) request) while the
    /// actor traps exits ([`Ctx::trap_exit`]). The default stops the actor with the same
    /// reason unless it is `normal`, as a gen_server does.
    ///
    /// As in Erlang, where the signal becomes an `{'EXIT', ..}` message, the call comes in
    /// turn with the messages: after those that were in the mailbox when the signal arrived,
    /// so after every message its sender sent before it. (Without trapping, an abnormal exit
    /// signal stops the actor at once, whatever is queued.)
    fn handle_exit(&mut self, ctx: &mut Ctx<Self>, from: Option<ActorId>, reason: ExitReason) {
        if !reason.is_normal() {
            ctx.stop_with(reason);
        }
    }

    /// A monitored actor stopped (or did not exist: [`ExitReason::NoProc`]). Like
    /// [`handle_exit`](Actor::handle_exit), it comes in turn with the messages, as Erlang's
    /// `{'DOWN', ..}` message does: a result that the actor sent before it stopped is
    /// handled first.
    fn handle_down(
        &mut self,
        ctx: &mut Ctx<Self>,
        monitor: MonitorRef,
        from: ActorId,
        reason: ExitReason,
    ) {
    }

    /// An archived message (sent with [`ActorRef::tell_archived`] or from outside the
    /// process). Look at it with [`Archived::get`]. The default counts it as a dead letter.
    fn handle_archived(&mut self, ctx: &mut Ctx<Self>, msg: Archived<'_>) {
        ctx.dead_letter();
    }
}

/// How an actor handles messages of type `M` (plain Rust values, moved, not serialized).
pub trait Handler<M: Send + 'static>: Actor {
    /// What [`ActorRef::ask`] returns.
    type Reply: Send + 'static;

    /// Handles one message.
    fn handle(&mut self, msg: M, ctx: &mut Ctx<Self>) -> Self::Reply;
}

/// An archived message, read in place in the sender's arena chunk.
pub struct Archived<'a> {
    env: &'a Envelope,
}

impl<'a> Archived<'a> {
    /// The message as an `M`, if it is one (type tag and validity checked).
    pub fn get<M: Message>(&self) -> Option<&'a rkyv::Archived<M>> {
        codec::view::<M>(self.env).ok()
    }

    /// The message's type tag.
    pub fn type_tag(&self) -> u32 {
        self.env.type_tag()
    }

    /// The envelope (for zero-copy forwarding checks and diagnostics).
    pub fn envelope(&self) -> &'a Envelope {
        self.env
    }
}

/// Control signals (the mailbox's system lane).
enum Signal {
    /// An exit signal: from a link that ended (`linked`), or a request to stop from an
    /// actor (a supervisor stopping its child) or from outside (`from: None`).
    Exit {
        from: Option<ActorId>,
        reason: ExitReason,
        /// `from` has stopped: the link to it is gone. A request leaves links alone.
        linked: bool,
    },
    Kill,
    Down {
        monitor: MonitorRef,
        from: ActorId,
        reason: ExitReason,
    },
    Link(Pid),
    Unlink(ActorId),
    Monitor {
        monitor: MonitorRef,
        watcher: Pid,
    },
    Demonitor(MonitorRef),
    /// Complete this with the final exit reason (`Pid::exit_reason`).
    WatchExit(ReplyTo<ExitReason>),
}

type ActorMailbox = Mailbox<Envelope, Boxed<Signal>, CellCold>;

/// A plain message on its way: the delivery function first (so the receiver can find it
/// without knowing `M`), then the payload.
#[repr(C)]
struct Letter<A: Actor, M> {
    deliver: Deliver<A>,
    payload: M,
}

type Deliver<A> = fn(&mut A, &mut Ctx<A>, Envelope) -> Option<Pending>;

/// An async handler in progress. Its lifetime is erased: see `deliver_async`.
type Pending = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

fn deliver_tell<A: Handler<M>, M: Send + 'static>(
    actor: &mut A,
    ctx: &mut Ctx<A>,
    env: Envelope,
) -> Option<Pending> {
    if let Ok(letter) = env.take::<Letter<A, M>>() {
        let _ = actor.handle(letter.payload, ctx);
    }
    None
}

/// A trapped exit signal or a down notification, once its signal has been processed: queued in
/// the user lane behind the messages already there, as Erlang puts `{'EXIT', ..}` and
/// `{'DOWN', ..}` in the message queue. So a message that an actor sent before it stopped
/// reaches the receiver before the news of its stop does (signals between one pair of actors
/// keep their order).
enum Notice {
    Exit {
        from: Option<ActorId>,
        reason: ExitReason,
    },
    Down {
        monitor: MonitorRef,
        from: ActorId,
        reason: ExitReason,
    },
}

fn deliver_notice<A: Actor>(actor: &mut A, ctx: &mut Ctx<A>, env: Envelope) -> Option<Pending> {
    let Ok(letter) = env.take::<Letter<A, Notice>>() else {
        return None;
    };
    match letter.payload {
        Notice::Exit { from, reason } => actor.handle_exit(ctx, from, reason),
        Notice::Down {
            monitor,
            from,
            reason,
        } => {
            // A `demonitor` since the signal was processed discards it (see `Ctx::demonitor`).
            let watched = ctx.state.rel_mut().is_some_and(|r| {
                let pos = r.monitoring.iter().position(|m| *m == monitor);
                pos.map(|pos| r.monitoring.swap_remove(pos)).is_some()
            });
            if watched {
                actor.handle_down(ctx, monitor, from, reason);
            }
        }
    }
    None
}

fn deliver_ask<A: Handler<M>, M: Send + 'static>(
    actor: &mut A,
    ctx: &mut Ctx<A>,
    env: Envelope,
) -> Option<Pending> {
    if let Ok(letter) = env.take::<Letter<A, (M, ReplyTo<A::Reply>)>>() {
        let (msg, reply) = letter.payload;
        reply.send(actor.handle(msg, ctx));
    }
    None
}

fn deliver_async<A: AsyncHandler<M>, M: Send + 'static>(
    actor: &mut A,
    ctx: &mut Ctx<A>,
    env: Envelope,
) -> Option<Pending> {
    let letter = env
        .take::<Letter<A, (M, Option<ReplyTo<A::Reply>>)>>()
        .ok()?;
    let (msg, reply) = letter.payload;
    let handle = ActorHandle {
        myself: ctx.myself(),
        system: ctx.system(),
        stop: ctx
            .state
            .rel()
            .stop
            .get_or_insert_with(Default::default)
            .clone(),
    };
    let handling = actor.handle(msg, handle);
    let future: Pin<Box<dyn Future<Output = ()> + Send + '_>> = Box::pin(async move {
        let value = handling.await;
        if let Some(reply) = reply {
            reply.send(value);
        }
    });
    // SAFETY: only the lifetime is changed (same layout). The future borrows `*actor`, which
    // lives in its cell's `actor` field, at a stable address inside the cell's `Arc`. The cell
    // keeps the future in `CellState::pending` and upholds what the borrow needs: it polls it
    // only from a run (exclusive), never touches the actor while the future exists (no user
    // message is dispatched and no hook runs; exits and downs wait in the mailbox as notices), and
    // drops the future before the actor is taken out or dropped.
    Some(unsafe {
        core::mem::transmute::<Pin<Box<dyn Future<Output = ()> + Send + '_>>, Pending>(future)
    })
}

/// How an actor handles messages of type `M` with a handler that can `.await` (I/O, timers,
/// other actors' replies). While the future is pending, the actor handles no other user
/// message; control signals still act (a kill stops it at once, dropping the future). The
/// actor is woken by the future's waker, on whatever executor drives it.
///
/// ```
/// use airssys_rt::{Actor, ActorHandle, AsyncHandler, ManualDriver};
///
/// struct Fetcher;
/// impl Actor for Fetcher {}
/// impl AsyncHandler<u32> for Fetcher {
///     type Reply = u32;
///     async fn handle(&mut self, n: u32, _me: ActorHandle<Self>) -> u32 {
///         std::future::ready(n * 10).await
///     }
/// }
///
/// let d = ManualDriver::new(1);
/// let f = d.system().spawn(Fetcher).unwrap();
/// let reply = f.ask_async(4);
/// d.run_until_idle();
/// assert_eq!(reply.try_take(), Some(Ok(40)));
/// ```
pub trait AsyncHandler<M: Send + 'static>: Actor {
    /// What [`ActorRef::ask_async`] returns.
    type Reply: Send + 'static;

    /// Handles one message; the actor waits for the future before its next user message.
    fn handle(&mut self, msg: M, me: ActorHandle<Self>)
        -> impl Future<Output = Self::Reply> + Send;
}

/// What an async handler keeps across `.await`s: its own address, the system, and a way to
/// stop the actor.
pub struct ActorHandle<A: Actor> {
    myself: ActorRef<A>,
    system: System,
    stop: Arc<StopRequest>,
}

/// A stop asked for by an async handler ([`ActorHandle::stop_with`]); read by the run loop
/// after each poll of the handler.
#[derive(Default)]
struct StopRequest {
    requested: AtomicBool,
    reason: Mutex<Option<ExitReason>>,
}

impl<A: Actor> ActorHandle<A> {
    /// This actor's address.
    pub fn myself(&self) -> &ActorRef<A> {
        &self.myself
    }

    /// The system the actor runs in.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// Stops the actor with `reason` when the handler returns (or at its next `.await`,
    /// which then never resumes): the async counterpart of [`Ctx::stop_with`]. The first
    /// reason asked for wins.
    pub fn stop_with(&self, reason: ExitReason) {
        let mut slot = self
            .stop
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason);
            self.stop.requested.store(true, Ordering::Release);
        }
    }

    /// Starts a child linked to this actor (the async counterpart of [`Ctx::spawn_link`]).
    /// The link is recorded on this actor's side by a signal to itself, handled before any
    /// exit signal of the child can be.
    pub fn spawn_link<C: Actor>(&self, child: C) -> Result<ActorRef<C>, SpawnError> {
        let me = self.myself.cell.pid();
        let child = spawn_cell(&self.myself.cell.system, child, None, Some(me.clone()))?;
        // The child's exit signal to us is pushed after this (it needs the child to run, and
        // the child is linked to us already), and the system lane is FIFO.
        let _ = me.signal(Signal::Link(child.pid()));
        Ok(child)
    }
}

/// Wakes an actor (from an async handler's future): a weak reference, so a parked future
/// does not keep its actor alive.
struct CellWaker<A: Actor>(std::sync::Weak<Cell<A>>);

impl<A: Actor> std::task::Wake for CellWaker<A> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(cell) = self.0.upgrade() {
            cell.schedule(cell.mailbox.notify());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Replies
// ------------------------------------------------------------------------------------------

struct ReplySlot<R> {
    state: Mutex<ReplyState<R>>,
    ready: Condvar,
}

enum ReplyState<R> {
    Waiting(Option<Waker>),
    Done(Result<R, AskError>),
    Taken,
}

/// The sending half of a reply (inside an ask's letter). Dropping it unanswered (the actor
/// died with the request queued) completes the ask with [`AskError::ActorDied`].
struct ReplyTo<R>(Option<Arc<ReplySlot<R>>>);

impl<R> ReplyTo<R> {
    fn send(mut self, value: R) {
        if let Some(slot) = self.0.take() {
            slot.complete(Ok(value));
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.complete(Err(AskError::ActorDied));
        }
    }
}

impl<R> ReplySlot<R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReplyState<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, result: Result<R, AskError>) {
        let mut state = self.lock();
        // The first completion wins (a reply, a timeout, or the actor's death).
        let ReplyState::Waiting(waker) = &mut *state else {
            return;
        };
        let waker = waker.take();
        *state = ReplyState::Done(result);
        drop(state);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Why an ask got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskError {
    /// No reply within the timeout.
    Timeout,
    /// The actor stopped before replying (or was already gone).
    ActorDied,
    /// The actor's mailbox (or the sender's arena) had no room.
    Full,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AskError::Timeout => "ask timed out",
            AskError::ActorDied => "the actor stopped before replying",
            AskError::Full => "the actor's mailbox is full",
        })
    }
}

impl std::error::Error for AskError {}

/// A pending reply: wait for it ([`wait`](Reply::wait)), poll it ([`try_take`](Reply::try_take)),
/// or `.await` it.
pub struct Reply<R> {
    slot: Arc<ReplySlot<R>>,
}

impl<R> Reply<R> {
    /// A reply that has already arrived.
    pub(crate) fn ready(value: R) -> Self {
        Self {
            slot: Arc::new(ReplySlot {
                state: Mutex::new(ReplyState::Done(Ok(value))),
                ready: Condvar::new(),
            }),
        }
    }

    fn failed(e: AskError) -> Self {
        Self {
            slot: Arc::new(ReplySlot {
                state: Mutex::new(ReplyState::Done(Err(e))),
                ready: Condvar::new(),
            }),
        }
    }

    /// The reply if it has arrived (once).
    pub fn try_take(&self) -> Option<Result<R, AskError>> {
        let mut state = self.slot.lock();
        match std::mem::replace(&mut *state, ReplyState::Taken) {
            ReplyState::Done(r) => Some(r),
            other => {
                *state = other;
                None
            }
        }
    }

    /// Blocks the thread until the reply arrives or `timeout` passes (real time). Do not call
    /// it from inside an actor of the same single-threaded driver: nothing would run the
    /// actor that must reply. On a [`ThreadPool`](crate::ThreadPool) with more than one
    /// worker a handler may block on it (the asked actor goes to the shared queue, not to the
    /// blocked worker's LIFO slot). On an async executor, await the reply in an async handler
    /// instead: a blocked handler blocks the executor's thread, and the executor may keep the
    /// task that must run the replying actor behind it (tokio's LIFO slot is not stolen).
    pub fn wait(self, timeout: Duration) -> Result<R, AskError> {
        // Called from a handler, the thread may hold back chunk releases (see
        // `ReleaseBatch`) and, on a worker, the actor it just asked (in its LIFO slot): give
        // them back before blocking.
        airssys_rt_mailbox::chunk::ReleaseBatch::flush();
        crate::driver::before_blocking();
        let deadline = Instant::now() + timeout;
        let mut state = self.slot.lock();
        loop {
            if let ReplyState::Done(_) = &*state {
                let ReplyState::Done(r) = std::mem::replace(&mut *state, ReplyState::Taken) else {
                    unreachable!()
                };
                return r;
            }
            if matches!(&*state, ReplyState::Taken) {
                return Err(AskError::ActorDied);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AskError::Timeout);
            }
            state = self
                .slot
                .ready
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl<R> core::future::Future for Reply<R> {
    type Output = Result<R, AskError>;
    fn poll(
        self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Self::Output> {
        let mut state = self.slot.lock();
        match std::mem::replace(&mut *state, ReplyState::Taken) {
            ReplyState::Done(r) => core::task::Poll::Ready(r),
            ReplyState::Waiting(_) => {
                *state = ReplyState::Waiting(Some(cx.waker().clone()));
                core::task::Poll::Pending
            }
            ReplyState::Taken => core::task::Poll::Ready(Err(AskError::ActorDied)),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

/// Why a message was not sent. The message is inside: nothing is dropped silently.
#[derive(PartialEq, Eq)]
pub enum SendError<M> {
    /// The mailbox (or the sender's arena pool) has no room now.
    Full(M),
    /// The actor has stopped.
    Dead(M),
}

impl<M> SendError<M> {
    /// Gives the message back.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Dead(m) => m,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "Full(..)",
            SendError::Dead(_) => "Dead(..)",
        })
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "the actor's mailbox is full: message returned",
            SendError::Dead(_) => "the actor has stopped: message returned",
        })
    }
}

impl<M> std::error::Error for SendError<M> {}

/// Why an actor could not be spawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The system is shutting down.
    ShuttingDown,
    /// The id space is exhausted.
    TooManyActors,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpawnError::ShuttingDown => "the actor system is shutting down",
            SpawnError::TooManyActors => "no actor id left",
        })
    }
}

impl std::error::Error for SpawnError {}

// ------------------------------------------------------------------------------------------
// Scheduling
// ------------------------------------------------------------------------------------------

/// The host's side of scheduling: called with a [`Runnable`] whenever an actor needs a run.
///
/// The host must eventually call [`Runnable::run`] exactly once for each runnable it gets, on
/// any thread. At most one runnable per actor exists at a time.
pub trait Schedule: Send + Sync + 'static {
    /// Queues `task` to be run.
    fn schedule(&self, task: Runnable);
}

/// The right to run one actor once. See [`Schedule`].
///
/// It points at its actor's cell. While the actor has not stopped (it is in the system's
/// table), the table's reference keeps the cell alive, and the runnable borrows that: making
/// one costs no reference-count update, which would be two locked instructions per message
/// hop. A runnable for an actor that has stopped holds a reference of its own. See
/// `Runnable::new` (a private function, documented in the source) for why the borrow cannot
/// outlive the cell.
///
/// # Layout
///
/// Two words, so that the hosts move it in registers: the cell's (wide) pointer, whose data
/// address has its low bit set when the runnable owns a reference (`OWNED`; a
/// cell is aligned to at least 8). The mailbox's run token is not stored: it was set aside
/// ([`RunToken::set_aside`]) when the runnable was made, and the run reclaims it.
pub struct Runnable {
    cell: NonNull<dyn RunCell>,
}

// Two words (see "Layout"): the hosts' queues and slots move it in registers.
const _: () =
    assert!(core::mem::size_of::<Option<Runnable>>() == 2 * core::mem::size_of::<usize>());

// SAFETY: a runnable is only a pointer to a cell (`RunCell: Send + Sync`) plus the right to run
// it (a token, which is `Send`); the cell stays alive for as long as the runnable exists (see
// `Runnable::new`).
unsafe impl Send for Runnable {}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The mailbox is empty: the actor waits for messages.
    Idle,
    /// The actor has more to do and has already been scheduled again (through [`Schedule`]).
    Yielded,
    /// The actor has stopped.
    Exited,
}

impl Runnable {
    /// The tag bit in the cell pointer's address: this runnable owns a reference to the cell
    /// (from `Arc::into_raw`).
    const OWNED: usize = 1;

    /// The runnable of `cell`, for the holder of its mailbox's `token`.
    ///
    /// Borrowed (no reference taken) while the cell's mailbox is open. This is sound because:
    /// * the system's table holds a strong reference to every cell from its spawn until
    ///   `terminate`, which runs inside a run of the cell and closes the mailbox before it
    ///   unregisters the cell (nothing else closes a cell's mailbox); so open means registered;
    /// * a run needs the mailbox's token, and only one token exists at a time (invariant S1 of
    ///   `airssys_rt_mailbox::state`): the one this runnable carries. So no run, hence no
    ///   close or unregistering, happens between now and this runnable's own run; that run
    ///   keeps a reference of its own before it unregisters (see `RunCell for Cell`);
    /// * a mailbox closed earlier is seen as closed: the close is an RMW on the state word
    ///   before that run parks the mailbox (a Release CAS on its user head), and every token
    ///   after that comes from an RMW that reads that park (a push's swap, an unpark's CAS:
    ///   both Acquire) or from the same thread.
    ///
    /// The token is set aside, to be reclaimed by the run (`RunCell::run`): the runnable stands
    /// for it until then.
    ///
    /// The loom model `mailbox/tests/loom_runnable.rs` checks this argument against the real
    /// mailbox (a terminating run racing a sender and a wake-up that take the token after the
    /// park; mutant `runnable_borrows_when_closed` drops the look at the close).
    fn new<A: Actor>(cell: &Arc<Cell<A>>, token: RunToken) -> Self {
        const { assert!(core::mem::align_of::<Cell<A>>() > Self::OWNED) };
        token.set_aside();
        let ptr: *const dyn RunCell = if !cell.mailbox.is_closed() {
            Arc::<Cell<A>>::as_ptr(cell)
        } else {
            let owned: Arc<dyn RunCell> = cell.clone();
            Arc::into_raw(owned).map_addr(|a| a | Self::OWNED)
        };
        Runnable {
            // SAFETY: a pointer to an `Arc`'s value is never null (nor is it with a tag bit).
            cell: unsafe { NonNull::new_unchecked(ptr.cast_mut()) },
        }
    }

    /// The cell's pointer without the tag, and whether this runnable owns a reference to it.
    fn untagged(&self) -> (*const dyn RunCell, bool) {
        let ptr = self.cell.as_ptr().cast_const();
        (
            ptr.map_addr(|a| a & !Self::OWNED),
            ptr.addr() & Self::OWNED != 0,
        )
    }

    fn cell(&self) -> &dyn RunCell {
        // SAFETY: the cell outlives this runnable (see `new`), and the pointer without its tag
        // is the one `new` was given.
        unsafe { &*self.untagged().0 }
    }

    /// Runs the actor: handles up to `budget` user messages (signals first, not counted),
    /// then yields.
    pub fn run(self, budget: usize) -> RunOutcome {
        let this = core::mem::ManuallyDrop::new(self);
        let (cell, owned) = this.untagged();
        // SAFETY: the cell is alive (see `new`); this runnable stands for the token set aside in
        // `new`, and is consumed here without being dropped (`ManuallyDrop`), so the token is
        // reclaimed once.
        let outcome = unsafe { (*cell).run(budget) };
        if owned {
            // SAFETY: the reference this runnable owned, from `Arc::into_raw` in `new` (tag
            // removed); the run is over and nothing uses the pointer after this.
            drop(unsafe { Arc::from_raw(cell) });
        }
        outcome
    }

    /// The actor this runnable runs.
    pub fn actor_id(&self) -> ActorId {
        self.cell().id()
    }
}

impl Drop for Runnable {
    fn drop(&mut self) {
        let (cell, owned) = self.untagged();
        if owned {
            // SAFETY: the reference this runnable owned, from `Arc::into_raw` in `new` (tag
            // removed), released once (a runnable that runs does not drop: see `run`).
            drop(unsafe { Arc::from_raw(cell) });
        }
    }
}

impl fmt::Debug for Runnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runnable")
            .field("actor", &self.cell().id())
            .finish()
    }
}

trait RunCell: Send + Sync {
    /// Runs the cell, which must live in an `Arc` (every cell does: `spawn_cell`).
    ///
    /// # Safety
    ///
    /// The caller stands for the cell's mailbox token, set aside ([`RunToken::set_aside`])
    /// and not reclaimed since: the run reclaims it (a [`Runnable`] is such a caller).
    unsafe fn run(&self, budget: usize) -> RunOutcome;
    fn id(&self) -> ActorId;
    fn signal(self: Arc<Self>, signal: Signal) -> Result<(), Signal>;
    fn is_alive(&self) -> bool;
    /// Pushes an archived envelope (a broadcast copy) into the user lane.
    fn push_archived(self: Arc<Self>, env: Envelope) -> Result<(), Envelope>;
    /// The cell as `Any` (for [`Pid::downcast`]).
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// What the actor holds in the registry ([`registry::marks`](crate::registry::marks)).
    fn registry_marks(&self) -> &AtomicU8;
}

// ------------------------------------------------------------------------------------------
// The system
// ------------------------------------------------------------------------------------------

/// Counters of an actor system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemStats {
    /// Actors alive now.
    pub live: u32,
    /// Actors spawned, ever.
    pub spawned: u64,
    /// Actors that exited abnormally (panic, error, kill), ever.
    pub crashed: u64,
    /// Handler panics caught, ever.
    pub panics: u64,
    /// Messages that could not be handled (the actor stopped with them queued, or had no
    /// handler for them), ever.
    pub dead_letters: u64,
}

pub(crate) struct SystemInner {
    scheduler: Arc<dyn Schedule>,
    pub(crate) timers: Arc<Timers>,
    slab: Slab,
    pub(crate) names: Names,
    pub(crate) groups: Groups,
    budget: AtomicUsize,
    shutting_down: AtomicBool,
    next_monitor: AtomicU64,
    crashed: AtomicU64,
    panics: AtomicU64,
    dead_letters: AtomicU64,
}

/// An actor system: where actors are spawned, named and looked up. Cheap to clone.
///
/// A system is driven by a host through [`Schedule`]: the built-in
/// [`ThreadPool`](crate::ThreadPool) and [`ManualDriver`](crate::ManualDriver) make one for
/// you, or pass your own scheduler to [`System::new`].
#[derive(Clone)]
pub struct System {
    pub(crate) inner: Arc<SystemInner>,
}

impl System {
    /// A system whose actors are run by `scheduler`.
    pub fn new(scheduler: impl Schedule) -> Self {
        Self::with_scheduler(Arc::new(scheduler))
    }

    /// A system over a shared scheduler, with real-time timers.
    pub fn with_scheduler(scheduler: Arc<dyn Schedule>) -> Self {
        Self::with_parts(scheduler, Timers::real())
    }

    pub(crate) fn with_parts(scheduler: Arc<dyn Schedule>, timers: Arc<Timers>) -> Self {
        Self {
            inner: Arc::new(SystemInner {
                scheduler,
                timers,
                slab: Slab::new(),
                names: Names::new(),
                groups: Groups::new(),
                budget: AtomicUsize::new(DEFAULT_BUDGET),
                shutting_down: AtomicBool::new(false),
                next_monitor: AtomicU64::new(1),
                crashed: AtomicU64::new(0),
                panics: AtomicU64::new(0),
                dead_letters: AtomicU64::new(0),
            }),
        }
    }

    /// Starts `actor` with an unbounded mailbox.
    pub fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, SpawnError> {
        spawn_cell(&self.inner, actor, None, None)
    }

    /// Starts `actor` with a mailbox bounded to `capacity` user messages (sends beyond it get
    /// [`SendError::Full`] with the message back).
    pub fn spawn_bounded<A: Actor>(
        &self,
        actor: A,
        capacity: u32,
    ) -> Result<ActorRef<A>, SpawnError> {
        spawn_cell(
            &self.inner,
            actor,
            core::num::NonZeroU32::new(capacity),
            None,
        )
    }

    /// The address of a live actor, by id. A stale id (its actor gone, even if the slot was
    /// reused) gives `None`.
    pub fn lookup(&self, id: ActorId) -> Option<Pid> {
        self.inner.slab.get(id)
    }

    /// Registers `name` for the actor at `pid`. The name is freed when the actor stops. As in
    /// Erlang, an actor has at most one name: a second one is
    /// [`RegisterError::AlreadyNamed`].
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), RegisterError> {
        self.inner.names.register(name.into(), pid.clone())
    }

    /// Removes a name. Returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.names.unregister(name, None)
    }

    /// The actor registered as `name`, if it is alive.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.names.whereis(name)
    }

    /// Adds the actor to process group `group` (a no-op if it is a member). It leaves when it
    /// stops. Returns `false` if the actor has stopped.
    pub fn join(&self, group: &str, pid: &Pid) -> bool {
        self.inner.groups.join(group, pid.clone())
    }

    /// Removes the actor from `group`. Returns whether it was a member.
    pub fn leave(&self, group: &str, pid: &Pid) -> bool {
        self.inner.groups.leave(group, pid.id())
    }

    /// The members of `group` (a snapshot: lookups never block).
    pub fn members(&self, group: &str) -> Vec<Pid> {
        self.inner
            .groups
            .members(group)
            .iter()
            .filter(|p| p.is_alive())
            .cloned()
            .collect()
    }

    /// Sends one archived message to every member of `group`, serialized **once**: each member
    /// gets a 32-byte reference to the same bytes in the sender's arena (no copy per member).
    /// Members receive it in [`Actor::handle_archived`]. Returns how many members it reached
    /// (members that stopped or are full are skipped, and counted as dead letters).
    pub fn broadcast<M: Message>(
        &self,
        group: &str,
        msg: &M,
    ) -> Result<usize, arena::TrySendError<()>> {
        let members = self.inner.groups.members(group);
        if members.is_empty() {
            return Ok(0);
        }
        arena::with_writer(|w| {
            let original = codec::encode(w, msg).map_err(|e| match e {
                crate::mailbox::WriteError::TooLarge { .. } => arena::TrySendError::TooLarge(()),
                crate::mailbox::WriteError::Failed(err) => arena::TrySendError::Encode((), err),
                _ => arena::TrySendError::Full(()),
            })?;
            let mut reached = 0;
            for member in members.iter() {
                let delivered = match w.share(&original) {
                    Ok(copy) => member.0.clone().push_archived(copy).is_ok(),
                    Err(_) => false,
                };
                if delivered {
                    reached += 1;
                } else {
                    self.inner.dead_letters.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(reached)
        })
    }

    /// Sets how many user messages a run handles before yielding (default 128).
    pub fn set_budget(&self, budget: usize) {
        self.inner.budget.store(budget.max(1), Ordering::Relaxed);
    }

    /// The per-run message budget.
    pub fn budget(&self) -> usize {
        self.inner.budget.load(Ordering::Relaxed)
    }

    /// The system clock: time since the system started (virtual time under a
    /// [`ManualDriver`](crate::ManualDriver)).
    pub fn now(&self) -> Duration {
        self.inner.timers.now()
    }

    /// Runs `f` once after `delay` on the system's clock (a timer thread, or virtual time).
    pub fn run_after(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> TimerRef {
        let mut f = Some(f);
        self.inner.timers.start(
            delay,
            Box::new(move || {
                if let Some(f) = f.take() {
                    f();
                }
                None
            }),
        )
    }

    /// Refuses new spawns from now on ([`SpawnError::ShuttingDown`]).
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Counters.
    pub fn stats(&self) -> SystemStats {
        let i = &self.inner;
        SystemStats {
            live: i.slab.live(),
            spawned: i.slab.spawned(),
            crashed: i.crashed.load(Ordering::Relaxed),
            panics: i.panics.load(Ordering::Relaxed),
            dead_letters: i.dead_letters.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("stats", &self.stats())
            .finish()
    }
}

// ------------------------------------------------------------------------------------------
// Cells
// ------------------------------------------------------------------------------------------

/// `repr(C)`, the mailbox first: its producers' fields come right after the `Arc`'s counts, and
/// everything the runner touches per message (the mailbox's consumer fields, `state`, the
/// actor) comes after the cold fields kept in the mailbox's gap (see [`Mailbox`]'s layout).
#[repr(C)]
struct Cell<A: Actor> {
    /// Holds the cell's cold fields ([`CellCold`]) between its two ends; `Deref` reaches them.
    mailbox: ActorMailbox,
    /// The actor itself, apart from the rest of the state: a pending async handler borrows
    /// it while the run loop keeps using `state`. Touched only by the current runner.
    actor: UnsafeCell<Option<A>>,
    /// Touched only by the current runner (the mailbox's run token makes it exclusive).
    state: UnsafeCell<CellState>,
}

/// The fields of a cell that neither producers nor the runner touch on every message: they sit
/// in the mailbox between its producers' line and its consumer's line, where padding would be.
#[repr(C)]
struct CellCold {
    system: Arc<SystemInner>,
    id: ActorId,
    /// What the actor holds in the registry, so that its exit searches the name and group
    /// tables only if it may be in them ([`registry::marks`](crate::registry::marks)).
    registry: AtomicU8,
    _gap: [u8; CELL_GAP],
}

/// The padding left in [`CellCold`] once its fields fill what they can of the mailbox's gap.
const CELL_GAP: usize = airssys_rt_mailbox::GAP_BYTES
    - core::mem::size_of::<Arc<SystemInner>>()
    - core::mem::size_of::<ActorId>()
    - core::mem::size_of::<AtomicU8>();

const _: () = assert!(core::mem::size_of::<CellCold>() == airssys_rt_mailbox::GAP_BYTES);
const _: () = assert!(ActorMailbox::ENDS_APART);

impl<A: Actor> core::ops::Deref for Cell<A> {
    type Target = CellCold;

    /// The cold fields, kept inside the mailbox (see [`CellCold`]).
    #[inline(always)]
    fn deref(&self) -> &CellCold {
        self.mailbox.cold()
    }
}

// SAFETY: `actor` and `state` are only accessed inside a run, and the mailbox's scheduling
// state guarantees that at most one run of a cell exists at a time, with Acquire/Release
// between runs (see `airssys_rt_mailbox::state`). `A: Send` lets the actor move between
// runner threads, and a pending future is `Send`.
unsafe impl<A: Actor> Sync for Cell<A> {}

/// A cell's runner-only state: 32 bytes, so that an idle actor stays small. What only some
/// actors need (links and monitors, an async handler) is boxed on first use.
struct CellState {
    ctx: CtxState,
    /// What only actors that await need: allocated on their first await.
    awaiting: Option<Box<AwaitState>>,
}

impl CellState {
    /// Whether an async handler is in progress.
    fn is_pending(&self) -> bool {
        self.awaiting.as_ref().is_some_and(|a| a.pending.is_some())
    }
}

#[derive(Default)]
struct AwaitState {
    /// An async handler in progress (it borrows the actor).
    pending: Option<Pending>,
    /// The waker handed to async handlers (made once).
    waker: Option<Waker>,
}

struct CtxState {
    /// Whether `started` has run.
    started: bool,
    trap_exit: bool,
    /// Set when the actor decided to stop.
    exit: ExitSlot,
    /// Links and monitors: allocated on first use, so an idle actor without any costs 8 bytes.
    rel: Option<Box<Relations>>,
}

#[derive(Default)]
struct Relations {
    links: Vec<Pid>,
    /// Who monitors this actor.
    watchers: Vec<(MonitorRef, Pid)>,
    /// The monitors this actor holds (to ignore downs after a demonitor).
    monitoring: Vec<MonitorRef>,
    parent: Option<Pid>,
    /// Waiting for this actor's exit reason (`Pid::exit_reason`).
    exit_waiters: Vec<ReplyTo<ExitReason>>,
    /// Where async handlers ask to stop (made by the first async message).
    stop: Option<Arc<StopRequest>>,
}

/// Why the actor is stopping, if it is: an `Option<ExitReason>` in 16 bytes instead of 32.
/// The reasons without data are stored inline; the others (panics, errors, tagged
/// shutdowns), rare, are boxed.
#[derive(Default)]
enum ExitSlot {
    /// Not stopping.
    #[default]
    Unset,
    Normal,
    Shutdown,
    Killed,
    NoProc,
    Other(Box<ExitReason>),
}

impl ExitSlot {
    fn is_set(&self) -> bool {
        !matches!(self, ExitSlot::Unset)
    }

    /// Sets the reason, replacing any earlier one.
    fn set(&mut self, reason: ExitReason) {
        *self = match reason {
            ExitReason::Normal => ExitSlot::Normal,
            ExitReason::Shutdown => ExitSlot::Shutdown,
            ExitReason::Killed => ExitSlot::Killed,
            ExitReason::NoProc => ExitSlot::NoProc,
            other => ExitSlot::Other(Box::new(other)),
        };
    }

    /// Sets the reason unless one is set: the first reason to stop wins.
    fn set_if_unset(&mut self, reason: ExitReason) {
        if !self.is_set() {
            self.set(reason);
        }
    }

    /// The reason, if set.
    fn get(&self) -> Option<&ExitReason> {
        static SHUTDOWN: ExitReason = ExitReason::Shutdown;
        static KILLED: ExitReason = ExitReason::Killed;
        static NO_PROC: ExitReason = ExitReason::NoProc;
        Some(match self {
            ExitSlot::Unset => return None,
            ExitSlot::Normal => &NORMAL,
            ExitSlot::Shutdown => &SHUTDOWN,
            ExitSlot::Killed => &KILLED,
            ExitSlot::NoProc => &NO_PROC,
            ExitSlot::Other(reason) => reason,
        })
    }
}

/// The reason of an actor that stops without one.
static NORMAL: ExitReason = ExitReason::Normal;

impl CtxState {
    /// The relations, allocated if needed (for adding one).
    fn rel(&mut self) -> &mut Relations {
        self.rel.get_or_insert_with(Default::default)
    }

    /// The relations if any exist (for removing or reading).
    fn rel_mut(&mut self) -> Option<&mut Relations> {
        self.rel.as_deref_mut()
    }
}

fn spawn_cell<A: Actor>(
    system: &Arc<SystemInner>,
    actor: A,
    capacity: Option<core::num::NonZeroU32>,
    parent: Option<Pid>,
) -> Result<ActorRef<A>, SpawnError> {
    if system.shutting_down.load(Ordering::SeqCst) {
        return Err(SpawnError::ShuttingDown);
    }
    let mut cell_out = None;
    let mut actor = Some(actor);
    system
        .slab
        .insert(|id| {
            let cell = Arc::new(Cell {
                mailbox: Mailbox::with_cold(
                    capacity,
                    CellCold {
                        system: system.clone(),
                        id,
                        registry: AtomicU8::new(0),
                        _gap: [0; CELL_GAP],
                    },
                ),
                actor: UnsafeCell::new(actor.take()),
                state: UnsafeCell::new(CellState {
                    awaiting: None,
                    ctx: CtxState {
                        started: false,
                        rel: parent.as_ref().map(|p| {
                            Box::new(Relations {
                                links: vec![p.clone()],
                                parent: Some(p.clone()),
                                ..Relations::default()
                            })
                        }),
                        trap_exit: false,
                        exit: ExitSlot::Unset,
                    },
                }),
            });
            cell_out = Some(cell.clone());
            Pid(cell)
        })
        .ok_or(SpawnError::TooManyActors)?;
    let cell = cell_out.expect("set by insert");
    // The first run calls `started`.
    if let Some(token) = cell.mailbox.notify() {
        system.scheduler.schedule(Runnable::new(&cell, token));
    }
    Ok(ActorRef { cell })
}

impl<A: Actor> Cell<A> {
    fn schedule(self: &Arc<Self>, token: Option<RunToken>) {
        if let Some(token) = token {
            self.system.scheduler.schedule(Runnable::new(self, token));
        }
    }

    fn push(self: &Arc<Self>, env: Envelope) -> Result<(), PushError<Envelope>> {
        let token = self.mailbox.try_push(env)?;
        self.schedule(token);
        Ok(())
    }

    fn pid(self: &Arc<Self>) -> Pid {
        Pid(self.clone())
    }

    /// The actor, if it has not stopped.
    ///
    /// # Safety
    ///
    /// Only the current runner calls this, and not while an async handler is pending (the
    /// pending future holds the only access to the actor then).
    #[allow(clippy::mut_from_ref)]
    unsafe fn actor(&self) -> Option<&mut A> {
        // SAFETY: by the caller's contract the access is exclusive.
        unsafe { (*self.actor.get()).as_mut() }
    }

    fn is_stopped(&self) -> bool {
        // SAFETY: runner only; reads the discriminant (no reference into the actor).
        unsafe { (*self.actor.get()).is_none() }
    }

    /// Queues a notice behind the user messages already in the mailbox (see [`Notice`]). It
    /// needs no arena space of the pool's and ignores the bound: a signal is never refused.
    fn queue_notice(self: &Arc<Self>, notice: Notice) {
        let letter = Letter {
            deliver: deliver_notice::<A> as Deliver<A>,
            payload: notice,
        };
        // The runner calls this, holding the token: the push takes none, and the mailbox is
        // open until this run closes it. Neither step can fail then (the letter is small); if
        // one did, the notice would be counted as a dead letter, not lost silently.
        let queued = arena::write_plain_unrefused(letter)
            .is_ok_and(|env| self.mailbox.push_past_bound(env).is_ok());
        if !queued {
            self.system.dead_letters.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn handle_signal(self: &Arc<Self>, state: &mut CellState, signal: Signal) {
        let ctx = &mut state.ctx;
        match signal {
            Signal::Kill => ctx.exit.set(ExitReason::Killed),
            Signal::Exit {
                from,
                reason,
                linked,
            } => {
                if let (Some(from), true) = (from, linked) {
                    // The link ends here. If this actor removed it first (`unlink`), the
                    // signal is dropped, as Erlang drops an exit signal from a deactivated link.
                    let was_linked = ctx.rel_mut().is_some_and(|r| {
                        let before = r.links.len();
                        r.links.retain(|p| p.id() != from);
                        r.links.len() != before
                    });
                    if !was_linked {
                        return;
                    }
                }
                if ctx.trap_exit {
                    self.queue_notice(Notice::Exit { from, reason });
                } else if !reason.is_normal() {
                    // A non-trapping actor ignores `normal` exit signals (as in Erlang) and
                    // stops with any other reason.
                    ctx.exit.set(reason);
                }
            }
            Signal::Down {
                monitor,
                from,
                reason,
            } => {
                // Still watched: the notice takes the monitor off when it is handled.
                if ctx
                    .rel
                    .as_ref()
                    .is_some_and(|r| r.monitoring.contains(&monitor))
                {
                    self.queue_notice(Notice::Down {
                        monitor,
                        from,
                        reason,
                    });
                }
            }
            Signal::Link(pid) => {
                // A closed actor has sent (or is sending) its exit signals to its links, us
                // included: keeping it would only hold its memory until we stop.
                if pid.is_alive() {
                    let links = &mut ctx.rel().links;
                    if !links.iter().any(|p| p.id() == pid.id()) {
                        links.push(pid);
                    }
                }
            }
            Signal::Unlink(id) => {
                if let Some(r) = ctx.rel_mut() {
                    r.links.retain(|p| p.id() != id);
                }
            }
            Signal::Monitor { monitor, watcher } => ctx.rel().watchers.push((monitor, watcher)),
            Signal::WatchExit(reply) => ctx.rel().exit_waiters.push(reply),
            Signal::Demonitor(monitor) => {
                if let Some(r) = ctx.rel_mut() {
                    r.watchers.retain(|(m, _)| *m != monitor);
                }
            }
        }
    }

    fn guarded_ctx(&self, c: &mut Ctx<'_, A>, f: impl FnOnce(&mut Ctx<'_, A>)) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(c))) {
            self.system.panics.fetch_add(1, Ordering::Relaxed);
            c.state
                .exit
                .set_if_unset(ExitReason::Panicked(panic_message(&*panic).into()));
        }
    }

    fn dispatch(self: &Arc<Self>, state: &mut CellState, env: Envelope) {
        // SAFETY: runner, and no handler is pending (the run loop dispatches only then).
        let Some(actor) = (unsafe { self.actor() }) else {
            self.system.dead_letters.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut c = Ctx {
            cell: self,
            state: &mut state.ctx,
        };
        let mut pending = None;
        match env.plain_ptr() {
            Some(ptr) => {
                // SAFETY: every plain value in an actor's mailbox is a `Letter<A, _>` (only
                // `ActorRef<A>` pushes plain values, always letters), which is `#[repr(C)]`
                // with its `Deliver<A>` first; the pointer is to the live value.
                let deliver = unsafe { *ptr.as_ptr().cast::<Deliver<A>>() };
                self.guarded_ctx(&mut c, |c| pending = deliver(actor, c, env));
            }
            None => self.guarded_ctx(&mut c, |c| actor.handle_archived(c, Archived { env: &env })),
        }
        if pending.is_some() {
            state.awaiting.get_or_insert_with(Default::default).pending = pending;
            self.poll_pending(state);
        }
    }

    /// Polls the pending async handler once; clears it when it completes (or panics).
    fn poll_pending(self: &Arc<Self>, state: &mut CellState) {
        let Some(awaiting) = state.awaiting.as_deref_mut() else {
            return;
        };
        let Some(future) = awaiting.pending.as_mut() else {
            return;
        };
        let waker = awaiting
            .waker
            .get_or_insert_with(|| Waker::from(Arc::new(CellWaker(Arc::downgrade(self)))));
        let mut cx = Context::from_waker(waker);
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(())) => awaiting.pending = None,
            Err(panic) => {
                self.system.panics.fetch_add(1, Ordering::Relaxed);
                state
                    .ctx
                    .exit
                    .set_if_unset(ExitReason::Panicked(panic_message(&*panic).into()));
                self.drop_pending(state);
            }
        }
        // A stop asked for by the handler (`ActorHandle::stop_with`).
        if let Some(stop) = state.ctx.rel.as_ref().and_then(|r| r.stop.as_ref()) {
            // A plain load first: most polls find no request, and need no locked RMW.
            if stop.requested.load(Ordering::Relaxed)
                && stop.requested.swap(false, Ordering::Acquire)
            {
                let reason = stop
                    .reason
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(reason) = reason {
                    state.ctx.exit.set_if_unset(reason);
                }
            }
        }
    }

    /// Drops a pending handler (its destructor may panic: that must not escape).
    fn drop_pending(&self, state: &mut CellState) {
        if let Some(future) = state.awaiting.as_mut().and_then(|a| a.pending.take()) {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
        }
    }

    /// Stops the actor: hooks, dead letters, links, monitors, registry.
    fn terminate(
        self: &Arc<Self>,
        state: &mut CellState,
        run: &mut crate::mailbox::Run<'_, Envelope, Boxed<Signal>, CellCold>,
    ) {
        run.close();
        // The pending handler borrows the actor: it goes first.
        self.drop_pending(state);
        // Out of the state while the hooks run (they get the state): put back at the end, for
        // the runs that hand back what arrives after the close.
        let exit = std::mem::take(&mut state.ctx.exit);
        let reason = exit.get().unwrap_or(&NORMAL);
        // SAFETY: runner; no handler is pending any more.
        if let Some(mut actor) = unsafe { (*self.actor.get()).take() } {
            if *reason != ExitReason::Killed {
                let mut c = Ctx {
                    cell: self,
                    state: &mut state.ctx,
                };
                self.guarded_ctx(&mut c, |c| actor.stopping(c, reason));
            }
            if catch_unwind(AssertUnwindSafe(|| actor.stopped(reason))).is_err() {
                self.system.panics.fetch_add(1, Ordering::Relaxed);
            }
            // The state's destructor may panic too: it must not take the runtime down.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(actor)));
        }
        state.awaiting = None;
        if reason.is_abnormal() {
            self.system.crashed.fetch_add(1, Ordering::Relaxed);
            if state
                .ctx
                .rel
                .as_ref()
                .is_none_or(|r| r.links.is_empty() && r.watchers.is_empty())
            {
                // Nobody will hear of it: log it (and it is counted in the stats).
                eprintln!("airssys-rt: actor {} exited: {reason}", self.id);
            }
        }
        self.drain_dead(reason, run);
        if let Some(rel) = state.ctx.rel.take() {
            let Relations {
                links,
                watchers,
                exit_waiters,
                ..
            } = *rel;
            for pid in links {
                let _ = pid.signal(Signal::Exit {
                    from: Some(self.id),
                    reason: reason.clone(),
                    linked: true,
                });
            }
            for (monitor, watcher) in watchers {
                let _ = watcher.signal(Signal::Down {
                    monitor,
                    from: self.id,
                    reason: reason.clone(),
                });
            }
            for waiter in exit_waiters {
                waiter.send(reason.clone());
            }
        }
        state.ctx.exit = exit;
        self.system.slab.remove(self.id);
        // From here on, registering a name or joining a group fails: the tables are searched
        // only if the actor was put in them before (see `registry::marks`).
        let marks = self.registry.fetch_or(marks::GONE, Ordering::AcqRel);
        if marks & marks::NAMED != 0 {
            self.system.names.unregister_actor(self.id);
        }
        if marks & marks::GROUPED != 0 {
            self.system.groups.leave_all(self.id);
        }
    }

    /// After the close: hand back whatever is still queued (dead letters, and answers to
    /// links and monitors that arrived too late).
    fn drain_dead(
        &self,
        reason: &ExitReason,
        run: &mut crate::mailbox::Run<'_, Envelope, Boxed<Signal>, CellCold>,
    ) {
        while let Some(msg) = run.pop() {
            match msg {
                Received::User(env) => {
                    self.system.dead_letters.fetch_add(1, Ordering::Relaxed);
                    drop(env);
                }
                Received::System(signal) => match signal.into_inner() {
                    Signal::Link(pid) => {
                        let _ = pid.signal(Signal::Exit {
                            from: Some(self.id),
                            reason: reason.clone(),
                            linked: true,
                        });
                    }
                    Signal::Monitor { monitor, watcher } => {
                        let _ = watcher.signal(Signal::Down {
                            monitor,
                            from: self.id,
                            reason: ExitReason::NoProc,
                        });
                    }
                    // Asked while it was stopping: it has just stopped with `reason`.
                    Signal::WatchExit(waiter) => waiter.send(reason.clone()),
                    _ => {}
                },
            }
        }
    }
}

impl<A: Actor> Cell<A> {
    /// One run (see [`RunCell::run`]), with the cell as an `Arc` for the scheduling and the
    /// `Pid`s it makes.
    fn run_arc(self: &Arc<Self>, token: RunToken, budget: usize) -> RunOutcome {
        let mut run = self.mailbox.begin_run(token);
        // SAFETY: we hold the mailbox's run (its token): no other run of this cell exists, and
        // the previous one's accesses happen-before ours (begin_run Acquires what finish
        // Released, or the driver's queue handed the token over). `state` does not overlap
        // the actor, which a pending future may borrow.
        let state = unsafe { &mut *self.state.get() };
        if self.is_stopped() {
            // The table no longer holds the cell: keep it for the rest of the run.
            let _keep = Arc::clone(self);
            // Stopped earlier: whatever raced with the close is handed back, and a push that
            // raced with this drain schedules one more.
            self.drain_dead(state.ctx.exit.get().unwrap_or(&NORMAL), &mut run);
            self.schedule(run.finish(false));
            return RunOutcome::Exited;
        }
        if !state.ctx.started {
            state.ctx.started = true;
            // SAFETY: runner; nothing is pending before the first message.
            if let Some(actor) = unsafe { self.actor() } {
                let mut c = Ctx {
                    cell: self,
                    state: &mut state.ctx,
                };
                self.guarded_ctx(&mut c, |c| actor.started(c));
            }
        }
        // Resume an async handler (this run may come from its waker).
        if state.awaiting.is_some() {
            self.poll_pending(state);
        }
        let mut handled = 0;
        while !state.ctx.exit.is_set() && handled < budget {
            if state.is_pending() {
                // Awaiting: only signals act; user messages wait.
                match run.pop_system() {
                    Some(signal) => self.handle_signal(state, signal.into_inner()),
                    None => break,
                }
                continue;
            }
            // SAFETY: a received envelope is never pushed again: `dispatch` hands handlers a
            // `&Envelope` (archived) or takes the value out of it (plain), and drops it.
            match unsafe { run.pop_keeping_link() } {
                Some(Received::System(signal)) => self.handle_signal(state, signal.into_inner()),
                Some(Received::User(env)) => {
                    handled += 1;
                    self.dispatch(state, env);
                }
                None => break,
            }
        }
        if state.ctx.exit.is_set() {
            // `terminate` unregisters the cell: keep it for the rest of the run.
            let _keep = Arc::clone(self);
            self.terminate(state, &mut run);
            self.schedule(run.finish(false));
            return RunOutcome::Exited;
        }
        // Awaiting with nothing else to do: user messages wait, and the handler's waker will
        // schedule us.
        let again = if state.is_pending() {
            run.finish_awaiting()
        } else {
            run.finish(handled == budget)
        };
        match again {
            Some(token) => {
                self.schedule(Some(token));
                RunOutcome::Yielded
            }
            None => RunOutcome::Idle,
        }
    }
}

impl<A: Actor> RunCell for Cell<A> {
    /// # Safety
    ///
    /// [`RunCell::run`]'s contract: the caller stands for this mailbox's token, set aside.
    unsafe fn run(&self, budget: usize) -> RunOutcome {
        // SAFETY: the caller set this mailbox's token aside and hands it to us (the contract).
        let token = unsafe { self.mailbox.reclaim_token() };
        // SAFETY: every cell is made by `Arc::new` (`spawn_cell`), so `self` points into an
        // `Arc`'s allocation; `ManuallyDrop` keeps this view from releasing a reference it
        // does not own. The caller's runnable keeps the cell alive until the run returns,
        // except past `terminate`, which the exit paths below cover with a reference of their
        // own.
        let this = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(self) });
        // The letters of one run often come from one chunk: release them with one atomic.
        let _batch = airssys_rt_mailbox::chunk::ReleaseBatch::begin();
        this.run_arc(token, budget)
    }

    fn id(&self) -> ActorId {
        self.id
    }

    fn signal(self: Arc<Self>, signal: Signal) -> Result<(), Signal> {
        match self.mailbox.push_system(Boxed::new(signal)) {
            Ok(token) => {
                self.schedule(token);
                Ok(())
            }
            Err(back) => Err(back.into_inner()),
        }
    }

    fn is_alive(&self) -> bool {
        !self.mailbox.is_closed()
    }

    fn push_archived(self: Arc<Self>, env: Envelope) -> Result<(), Envelope> {
        self.push(env).map_err(PushError::into_inner)
    }

    fn registry_marks(&self) -> &AtomicU8 {
        &self.registry
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

// ------------------------------------------------------------------------------------------
// Addresses
// ------------------------------------------------------------------------------------------

/// An untyped actor address (an Erlang pid): link, monitor, stop, kill, compare. Cheap to
/// clone.
#[derive(Clone)]
pub struct Pid(Arc<dyn RunCell>);

impl Pid {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.0.id()
    }

    /// Whether the actor has not stopped yet (it may stop right after).
    pub fn is_alive(&self) -> bool {
        self.0.is_alive()
    }

    /// Sets `mark` in the actor's registry byte; returns the byte before
    /// ([`registry::marks`](crate::registry::marks)).
    pub(crate) fn mark_registry(&self, mark: u8) -> u8 {
        self.0.registry_marks().fetch_or(mark, Ordering::AcqRel)
    }

    /// Asks the actor to stop: an exit signal with reason `shutdown` (a trapping actor gets it
    /// in [`Actor::handle_exit`]). Returns `false` if it had already stopped.
    pub fn stop(&self) -> bool {
        self.exit(ExitReason::Shutdown)
    }

    /// Sends an exit signal with `reason` from outside (Erlang's `exit(Pid, Reason)`).
    pub fn exit(&self, reason: ExitReason) -> bool {
        self.signal(Signal::Exit {
            from: None,
            reason,
            linked: false,
        })
        .is_ok()
    }

    /// Kills the actor: untrappable, its `stopping` hook does not run. Returns `false` if it
    /// had already stopped.
    pub fn kill(&self) -> bool {
        self.signal(Signal::Kill).is_ok()
    }

    /// An exit signal sent by the live actor `from` (a supervisor stopping its child): the
    /// link between them stays until one of them stops.
    pub(crate) fn exit_from(&self, from: ActorId, reason: ExitReason) -> bool {
        self.signal(Signal::Exit {
            from: Some(from),
            reason,
            linked: false,
        })
        .is_ok()
    }

    /// The typed address, if this is an actor of type `A`.
    ///
    /// ```
    /// use airssys_rt::{Actor, ManualDriver};
    ///
    /// struct A;
    /// impl Actor for A {}
    /// struct B;
    /// impl Actor for B {}
    ///
    /// let d = ManualDriver::new(1);
    /// let pid = d.system().spawn(A).unwrap().pid();
    /// assert!(pid.downcast::<A>().is_some());
    /// assert!(pid.downcast::<B>().is_none());
    /// ```
    pub fn downcast<A: Actor>(&self) -> Option<ActorRef<A>> {
        self.0
            .clone()
            .as_any()
            .downcast::<Cell<A>>()
            .ok()
            .map(|cell| ActorRef { cell })
    }

    /// The actor's final exit reason, once it stops: await it, poll it, or `wait` for it (a
    /// join handle). Completed by the runtime itself, so an async handler can await a child's
    /// exit while its own exit signals are held back (a supervisor's synchronous shutdown).
    /// An actor that had already stopped gives [`ExitReason::NoProc`].
    ///
    /// ```
    /// use airssys_rt::{Actor, ExitReason, ManualDriver};
    ///
    /// struct Idle;
    /// impl Actor for Idle {}
    ///
    /// let d = ManualDriver::new(1);
    /// let a = d.system().spawn(Idle).unwrap();
    /// let exit = a.pid().exit_reason();
    /// a.kill();
    /// d.run_until_idle();
    /// assert_eq!(exit.try_take(), Some(Ok(ExitReason::Killed)));
    /// ```
    pub fn exit_reason(&self) -> Reply<ExitReason> {
        let slot = Arc::new(ReplySlot {
            state: Mutex::new(ReplyState::Waiting(None)),
            ready: Condvar::new(),
        });
        match self.signal(Signal::WatchExit(ReplyTo(Some(slot.clone())))) {
            Ok(()) => Reply { slot },
            Err(Signal::WatchExit(mut reply)) => {
                reply.0 = None;
                slot.complete(Ok(ExitReason::NoProc));
                Reply { slot }
            }
            Err(_) => unreachable!("the signal comes back as sent"),
        }
    }

    fn signal(&self, signal: Signal) -> Result<(), Signal> {
        self.0.clone().signal(signal)
    }
}

impl PartialEq for Pid {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Pid {}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({})", self.id())
    }
}

/// A typed address of an actor `A`: send it the messages it handles. Cheap to clone,
/// `Send + Sync`. Sends need no lookup: the address holds the actor's cell.
pub struct ActorRef<A: Actor> {
    cell: Arc<Cell<A>>,
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell.clone(),
        }
    }
}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ActorRef<{}>({})",
            std::any::type_name::<A>(),
            self.cell.id
        )
    }
}

impl<A: Actor> ActorRef<A> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.cell.id
    }

    /// The untyped address.
    pub fn pid(&self) -> Pid {
        self.cell.pid()
    }

    /// Whether the actor has not stopped yet.
    pub fn is_alive(&self) -> bool {
        !self.cell.mailbox.is_closed()
    }

    /// Sends `msg`; never blocks. On failure the message comes back with the reason.
    pub fn tell<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
    {
        self.send_letter(Letter {
            deliver: deliver_tell::<A, M> as Deliver<A>,
            payload: msg,
        })
        .map_err(|(e, letter)| e.map(letter.payload))
    }

    /// The same as [`tell`](Self::tell), by the name that says it never waits.
    pub fn try_tell<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
    {
        self.tell(msg)
    }

    /// Sends `msg`, waiting (asynchronously, without blocking a thread) while the sending
    /// thread's arena pool is exhausted: memory stays bounded and nothing is dropped. Fails at
    /// once, with the message back, if the actor has stopped or its bounded mailbox is full.
    pub fn send<M: Send + 'static>(&self, msg: M) -> SendFuture<'_, A, M>
    where
        A: Handler<M>,
    {
        SendFuture {
            to: self,
            letter: Some(Letter {
                deliver: deliver_tell::<A, M> as Deliver<A>,
                payload: msg,
            }),
        }
    }

    /// Sends `msg` and returns the pending reply. Errors (full, dead) are in the reply.
    pub fn ask<M: Send + 'static>(&self, msg: M) -> Reply<A::Reply>
    where
        A: Handler<M>,
    {
        let slot = Arc::new(ReplySlot {
            state: Mutex::new(ReplyState::Waiting(None)),
            ready: Condvar::new(),
        });
        let letter = Letter {
            deliver: deliver_ask::<A, M> as Deliver<A>,
            payload: (msg, ReplyTo(Some(slot.clone()))),
        };
        match self.send_letter(letter) {
            Ok(()) => Reply { slot },
            Err((e, letter)) => {
                // The request did not go: answer the reply here (without the drop's ActorDied).
                let (_msg, mut reply_to) = letter.payload;
                reply_to.0 = None;
                Reply::failed(match e {
                    SendError::Full(()) => AskError::Full,
                    SendError::Dead(()) => AskError::ActorDied,
                })
            }
        }
    }

    /// Sends `msg`; the reply fails with [`AskError::Timeout`] if it has not come within
    /// `timeout` on the system's clock (virtual time under a
    /// [`ManualDriver`](crate::ManualDriver)). Await it, poll it, or `wait` for it.
    pub fn ask_within<M: Send + 'static>(&self, msg: M, timeout: Duration) -> Reply<A::Reply>
    where
        A: Handler<M>,
    {
        let reply = self.ask(msg);
        let slot = Arc::downgrade(&reply.slot);
        self.cell.system.timers.start(
            timeout,
            Box::new(move || {
                if let Some(slot) = slot.upgrade() {
                    slot.complete(Err(AskError::Timeout));
                }
                None
            }),
        );
        reply
    }

    /// Delivers `msg` after `delay` on the system's clock. Cancel with the returned handle.
    pub fn send_after<M: Send + 'static>(&self, delay: Duration, msg: M) -> TimerRef
    where
        A: Handler<M>,
    {
        let target = self.clone();
        let mut msg = Some(msg);
        self.cell.system.timers.start(
            delay,
            Box::new(move || {
                if let Some(m) = msg.take() {
                    if let Err(e) = target.tell(m) {
                        drop(e.into_inner());
                        target
                            .cell
                            .system
                            .dead_letters
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                None
            }),
        )
    }

    /// Delivers a clone of `msg` every `period` until cancelled or the actor stops.
    pub fn send_interval<M: Clone + Send + 'static>(&self, period: Duration, msg: M) -> TimerRef
    where
        A: Handler<M>,
    {
        let target = self.clone();
        self.cell.system.timers.start(
            period,
            Box::new(move || match target.tell(msg.clone()) {
                Ok(()) => Some(period),
                // A full mailbox skips a tick; a dead actor ends the interval.
                Err(SendError::Full(_)) => Some(period),
                Err(SendError::Dead(_)) => None,
            }),
        )
    }

    /// Sends `msg` and blocks the calling thread until the reply, or until `timeout` passes on
    /// the system's clock (the same timers as [`ask_within`](Self::ask_within)), with a
    /// real-time bound of `timeout` as well. For threaded drivers; under a
    /// [`ManualDriver`](crate::ManualDriver) use `ask_within` and advance time instead.
    pub fn ask_timeout<M: Send + 'static>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<A::Reply, AskError>
    where
        A: Handler<M>,
    {
        self.ask_within(msg, timeout).wait(timeout)
    }

    fn send_letter<M: Send + 'static>(
        &self,
        letter: Letter<A, M>,
    ) -> Result<(), (SendError<()>, Letter<A, M>)> {
        self.send_letter_or_wait(letter, None)
            .map_err(|(why, letter)| {
                let e = match why {
                    NotSent::Dead => SendError::Dead(()),
                    NotSent::MailboxFull | NotSent::ArenaExhausted => SendError::Full(()),
                };
                (e, letter)
            })
    }

    /// Sends a letter, saying why it was not sent. When the sender's arena pool is exhausted
    /// and `waker` is given, the waker is registered with the pool (woken when space comes
    /// back) before `ArenaExhausted` is returned.
    fn send_letter_or_wait<M: Send + 'static>(
        &self,
        letter: Letter<A, M>,
        waker: Option<&Waker>,
    ) -> Result<(), (NotSent, Letter<A, M>)> {
        // No look at the mailbox first: `try_push` checks that it is open (and gives the letter
        // back if not). A second look would be one more read of a cache line the receiver
        // writes, on every send (perf showed it in cross-thread fan-in).
        let written = arena::with_writer(|w| match w.write_plain(letter) {
            // Arm by arm, not `other => other`: a whole-value copy of the result reloads it
            // with wider loads than its fields were stored with (a store-forwarding stall on
            // every send, seen with perf).
            Ok(env) => Ok(env),
            Err((letter, crate::mailbox::WriteError::Exhausted)) if waker.is_some() => {
                w.retire_current();
                w.register_waiter(waker.expect("checked"));
                // Space may have come back before we registered: one more try.
                w.write_plain(letter)
            }
            Err(e) => Err(e),
        });
        let env = match written {
            Ok(env) => env,
            Err((letter, crate::mailbox::WriteError::Exhausted)) => {
                return Err((NotSent::ArenaExhausted, letter))
            }
            // Larger than the whole pool: waiting cannot help.
            Err((letter, _)) => return Err((NotSent::MailboxFull, letter)),
        };
        self.cell.push(env).map_err(|e| {
            let (kind, env) = match e {
                PushError::Full(env) => (NotSent::MailboxFull, env),
                PushError::Closed(env) => (NotSent::Dead, env),
            };
            let letter = match env.take::<Letter<A, M>>() {
                Ok(l) => l,
                Err(_) => unreachable!("just written as this letter"),
            };
            (kind, letter)
        })
    }

    /// Sends `msg` to an [`AsyncHandler`]; never blocks. On failure the message comes back.
    pub fn tell_async<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: AsyncHandler<M>,
    {
        self.send_letter(Letter {
            deliver: deliver_async::<A, M> as Deliver<A>,
            payload: (msg, None::<ReplyTo<<A as AsyncHandler<M>>::Reply>>),
        })
        .map_err(|(e, letter)| e.map(letter.payload.0))
    }

    /// Sends `msg` to an [`AsyncHandler`] and returns the pending reply.
    pub fn ask_async<M: Send + 'static>(&self, msg: M) -> Reply<<A as AsyncHandler<M>>::Reply>
    where
        A: AsyncHandler<M>,
    {
        let slot = Arc::new(ReplySlot {
            state: Mutex::new(ReplyState::Waiting(None)),
            ready: Condvar::new(),
        });
        let letter = Letter {
            deliver: deliver_async::<A, M> as Deliver<A>,
            payload: (msg, Some(ReplyTo(Some(slot.clone())))),
        };
        match self.send_letter(letter) {
            Ok(()) => Reply { slot },
            Err((e, letter)) => {
                let (_msg, reply_to) = letter.payload;
                if let Some(mut r) = reply_to {
                    r.0 = None;
                }
                Reply::failed(match e {
                    SendError::Full(()) => AskError::Full,
                    SendError::Dead(()) => AskError::ActorDied,
                })
            }
        }
    }

    /// Sends an archived message (serialized into the sender's arena, read in place by the
    /// actor's [`Actor::handle_archived`]). On failure the message comes back.
    pub fn tell_archived<M: Message>(&self, msg: M) -> Result<(), SendError<M>> {
        match arena::try_send(&self.cell.mailbox, msg) {
            Ok(token) => {
                self.cell.schedule(token);
                Ok(())
            }
            Err(arena::TrySendError::Closed(m)) => Err(SendError::Dead(m)),
            Err(e) => Err(SendError::Full(e.into_inner())),
        }
    }

    /// Asks the actor to stop (exit signal `shutdown`). Returns `false` if it had stopped.
    pub fn stop(&self) -> bool {
        self.pid().stop()
    }

    /// Kills the actor (untrappable). Returns `false` if it had stopped.
    pub fn kill(&self) -> bool {
        self.pid().kill()
    }
}

/// Why a letter was not sent.
enum NotSent {
    /// The actor has stopped.
    Dead,
    /// The bounded mailbox is at capacity (or the letter can never fit the sender's pool).
    MailboxFull,
    /// The sender's arena pool has no room now.
    ArenaExhausted,
}

/// The future of [`ActorRef::send`].
pub struct SendFuture<'a, A: Actor, M> {
    to: &'a ActorRef<A>,
    letter: Option<Letter<A, M>>,
}

impl<A: Actor, M> Unpin for SendFuture<'_, A, M> {}

impl<A: Handler<M>, M: Send + 'static> Future for SendFuture<'_, A, M> {
    type Output = Result<(), SendError<M>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(letter) = self.letter.take() else {
            return Poll::Ready(Ok(()));
        };
        match self.to.send_letter_or_wait(letter, Some(cx.waker())) {
            Ok(()) => Poll::Ready(Ok(())),
            Err((NotSent::Dead, letter)) => Poll::Ready(Err(SendError::Dead(letter.payload))),
            Err((NotSent::MailboxFull, letter)) => {
                Poll::Ready(Err(SendError::Full(letter.payload)))
            }
            Err((NotSent::ArenaExhausted, letter)) => {
                // Our waker is registered with the pool: a recycle wakes us to retry.
                self.letter = Some(letter);
                Poll::Pending
            }
        }
    }
}

impl<M> SendError<M> {
    fn map<N>(self, m: N) -> SendError<N> {
        match self {
            SendError::Full(_) => SendError::Full(m),
            SendError::Dead(_) => SendError::Dead(m),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Context
// ------------------------------------------------------------------------------------------

/// What a handler can do besides changing its state: its own address, stopping, children,
/// links, monitors, trapping exits.
pub struct Ctx<'a, A: Actor> {
    cell: &'a Arc<Cell<A>>,
    state: &'a mut CtxState,
}

impl<A: Actor> Ctx<'_, A> {
    /// This actor's address.
    pub fn myself(&self) -> ActorRef<A> {
        ActorRef {
            cell: self.cell.clone(),
        }
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.cell.id
    }

    /// The system the actor runs in.
    pub fn system(&self) -> System {
        System {
            inner: self.cell.system.clone(),
        }
    }

    /// Stops the actor with reason `normal` once the current handler returns.
    pub fn stop(&mut self) {
        self.stop_with(ExitReason::Normal);
    }

    /// Stops the actor with `reason` once the current handler returns.
    pub fn stop_with(&mut self, reason: ExitReason) {
        self.state.exit.set_if_unset(reason);
    }

    /// Whether exit signals from links arrive as [`Actor::handle_exit`] calls (`true`) or
    /// stop this actor when abnormal (`false`, the default).
    pub fn trap_exit(&mut self, trap: bool) {
        self.state.trap_exit = trap;
    }

    /// Links this actor and `other` both ways: when one stops abnormally, the other stops
    /// too (or, trapping exits, is told). Linking to a stopped actor delivers an exit signal
    /// `noproc` at once.
    pub fn link(&mut self, other: &Pid) {
        let linked = |r: &Relations| r.links.iter().any(|p| p.id() == other.id());
        if other.id() == self.cell.id || self.state.rel.as_deref().is_some_and(linked) {
            return;
        }
        // Linked from now on: the answer of a dead `other` (below, or from its last run) is the
        // exit signal of this link.
        self.state.rel().links.push(other.clone());
        if other.signal(Signal::Link(self.cell.pid())).is_err() {
            let _ = self.cell.clone().signal(Signal::Exit {
                from: Some(other.id()),
                reason: ExitReason::NoProc,
                linked: true,
            });
        }
    }

    /// Removes a link (both ways). An exit signal of the link that this actor has not processed
    /// yet is dropped, as in Erlang; a trapping actor may still receive, in
    /// [`Actor::handle_exit`], the exit of a signal processed before the call.
    pub fn unlink(&mut self, other: &Pid) {
        if let Some(r) = self.state.rel_mut() {
            r.links.retain(|p| p.id() != other.id());
        }
        let _ = other.signal(Signal::Unlink(self.cell.id));
    }

    /// Watches `other`: when it stops, [`Actor::handle_down`] gets its reason (`noproc` at once
    /// if it has already stopped).
    pub fn monitor(&mut self, other: &Pid) -> MonitorRef {
        let monitor = MonitorRef(
            self.cell
                .system
                .next_monitor
                .fetch_add(1, Ordering::Relaxed),
        );
        self.state.rel().monitoring.push(monitor);
        if other
            .signal(Signal::Monitor {
                monitor,
                watcher: self.cell.pid(),
            })
            .is_err()
        {
            let _ = self.cell.clone().signal(Signal::Down {
                monitor,
                from: other.id(),
                reason: ExitReason::NoProc,
            });
        }
        monitor
    }

    /// Stops watching; a down notification already on its way is discarded.
    pub fn demonitor(&mut self, other: &Pid, monitor: MonitorRef) {
        if let Some(r) = self.state.rel_mut() {
            r.monitoring.retain(|m| *m != monitor);
        }
        let _ = other.signal(Signal::Demonitor(monitor));
    }

    /// Starts a child linked to this actor.
    pub fn spawn_link<C: Actor>(&mut self, child: C) -> Result<ActorRef<C>, SpawnError> {
        let child = spawn_cell(&self.cell.system, child, None, Some(self.cell.pid()))?;
        self.state.rel().links.push(child.pid());
        Ok(child)
    }

    /// The actor that spawned this one with [`spawn_link`](Self::spawn_link), if any.
    pub fn parent(&self) -> Option<&Pid> {
        self.state.rel.as_ref().and_then(|r| r.parent.as_ref())
    }

    /// Delivers `msg` to this actor after `delay` on the system's clock.
    pub fn send_after<M: Send + 'static>(&self, delay: Duration, msg: M) -> TimerRef
    where
        A: Handler<M>,
    {
        self.myself().send_after(delay, msg)
    }

    /// Counts a message this actor could not handle as a dead letter.
    pub fn dead_letter(&mut self) {
        self.cell
            .system
            .dead_letters
            .fetch_add(1, Ordering::Relaxed);
    }
}
