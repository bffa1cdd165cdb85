//! The sending thread's arena, and sends into a [`Mailbox`] of [`Envelope`]s.
//!
//! Every thread that sends gets its own [`ArenaWriter`] (created on first use, with the pool
//! configuration set by [`set_pool_config`]). When the thread exits, its writer goes; chunks
//! still referenced by queued messages live on until those messages are dropped.
//!
//! * [`try_send`] / [`try_send_plain`] never block: when the arena pool or the mailbox has no
//!   room, the message comes back in [`TrySendError::Full`]; nothing is dropped silently.
//! * [`send_waiting`] waits (parks the thread) while the arena pool is exhausted, then sends.
//!
//! ```
//! use airssys_rt::arena::{self, TrySendError};
//! use airssys_rt::codec;
//! use airssys_rt::mailbox::{Boxed, Envelope, Mailbox, Received};
//!
//! #[derive(rkyv::Archive, rkyv::Serialize)]
//! struct Tick(u64);
//! airssys_rt::message!(Tick);
//!
//! let mailbox: Mailbox<Envelope, Boxed<()>> = Mailbox::unbounded();
//! let token = arena::try_send(&mailbox, Tick(1)).unwrap().expect("idle: schedule it");
//! arena::try_send_plain(&mailbox, String::from("plain")).unwrap();
//!
//! let mut run = mailbox.begin_run(token);
//! let Some(Received::User(env)) = run.pop() else { unreachable!() };
//! assert_eq!(codec::view::<Tick>(&env).unwrap().0, 1);
//! let Some(Received::User(env)) = run.pop() else { unreachable!() };
//! assert_eq!(env.take::<String>().unwrap(), "plain");
//! # let _ = run.finish(false);
//! ```

use core::cell::RefCell;
use core::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};
use std::thread::{self, Thread};

use crate::codec::{self, EncodeError, Message};
use crate::mailbox::{
    ArenaWriter, Envelope, Linked, Mailbox, PoolConfig, PushError, RunToken, WriteError,
};

static POOL_CONFIG: Mutex<Option<PoolConfig>> = Mutex::new(None);

/// Sets the pool configuration of writers created from now on (each thread creates its writer
/// on its first send). Threads that already have a writer keep theirs.
pub fn set_pool_config(config: PoolConfig) {
    *POOL_CONFIG.lock().unwrap_or_else(PoisonError::into_inner) = Some(config);
}

fn pool_config() -> PoolConfig {
    POOL_CONFIG
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or_default()
}

thread_local! {
    static WRITER: RefCell<Option<ArenaWriter>> = const { RefCell::new(None) };
}

/// Gives the current thread a new writer with its own pool configuration (for a thread with
/// unusual traffic: a broadcaster, a bulk loader). The old writer, if any, is dropped: its
/// chunks live on until their messages are dropped.
pub fn set_thread_pool_config(config: PoolConfig) {
    WRITER.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = Some(ArenaWriter::new(config));
        }
    });
}

/// Runs `f` with this thread's arena writer (created on first use).
///
/// Re-entrant calls (from inside `f`) get a temporary writer of their own.
#[inline]
pub fn with_writer<R>(f: impl FnOnce(&mut ArenaWriter) -> R) -> R {
    let mut f = Some(f);
    let result = WRITER.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let writer = slot.get_or_insert_with(|| ArenaWriter::new(pool_config()));
        Some((f.take().expect("called once"))(writer))
    });
    match result {
        Ok(Some(r)) => r,
        // Re-entered, or the thread is exiting: a writer just for this call.
        _ => (f.take().expect("not called yet"))(&mut ArenaWriter::new(pool_config())),
    }
}

/// Moves `value` into an arena node even when this thread's pool is exhausted (then into a
/// chunk of a one-off writer, outside the pool's budget): for what the runtime itself queues
/// and must not refuse. Gives the value back only if even that fails (a value larger than a
/// whole pool).
pub(crate) fn write_plain_unrefused<T: Send + 'static>(value: T) -> Result<Envelope, T> {
    with_writer(|w| w.write_plain(value)).or_else(|(value, _)| {
        ArenaWriter::new(pool_config())
            .write_plain(value)
            .map_err(|(value, _)| value)
    })
}

/// Why a send did not happen. The message is inside: nothing is dropped.
#[derive(PartialEq, Eq)]
pub enum TrySendError<M> {
    /// No room now: the arena pool is exhausted, or the mailbox is at its bound.
    Full(M),
    /// The mailbox is closed (its actor is gone).
    Closed(M),
    /// The message is larger than the arena pool's whole budget: it can never be sent.
    TooLarge(M),
    /// Serialization failed.
    Encode(M, EncodeError),
}

impl<M> TrySendError<M> {
    /// Gives the message back.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m)
            | TrySendError::Closed(m)
            | TrySendError::TooLarge(m)
            | TrySendError::Encode(m, _) => m,
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
            TrySendError::TooLarge(_) => f.write_str("TooLarge(..)"),
            TrySendError::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
        }
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => {
                f.write_str("no room (arena pool or mailbox full): message returned")
            }
            TrySendError::Closed(_) => f.write_str("mailbox closed: message returned"),
            TrySendError::TooLarge(_) => f.write_str("message larger than the arena pool's budget"),
            TrySendError::Encode(_, e) => write!(f, "{e}"),
        }
    }
}

impl<M> std::error::Error for TrySendError<M> {}

/// Why the arena could not take the message (before any push).
enum NotWritten<M> {
    /// The pool is exhausted: waiting may help.
    Exhausted(M),
    /// Any other failure, final.
    Failed(TrySendError<M>),
}

/// Serializes and pushes, telling an exhausted arena apart from other failures.
fn send_archived<M: Message, S: Linked, C>(
    mailbox: &Mailbox<Envelope, S, C>,
    msg: M,
) -> Result<Option<RunToken>, NotWritten<M>> {
    if mailbox.is_closed() {
        return Err(NotWritten::Failed(TrySendError::Closed(msg)));
    }
    let env = match with_writer(|w| codec::encode(w, &msg)) {
        Ok(env) => env,
        Err(WriteError::Exhausted) => return Err(NotWritten::Exhausted(msg)),
        Err(WriteError::TooLarge { .. }) => {
            return Err(NotWritten::Failed(TrySendError::TooLarge(msg)))
        }
        Err(WriteError::Failed(e)) => return Err(NotWritten::Failed(TrySendError::Encode(msg, e))),
        Err(WriteError::NotShareable) => unreachable!("encode does not share"),
    };
    // On failure the envelope is dropped here, releasing its arena space; `msg` goes back.
    mailbox.try_push(env).map_err(|e| {
        NotWritten::Failed(match e {
            PushError::Full(_) => TrySendError::Full(msg),
            PushError::Closed(_) => TrySendError::Closed(msg),
        })
    })
}

/// Serializes `msg` into this thread's arena and pushes it. Returns the run token if the
/// mailbox was idle (the caller schedules it). Never blocks.
pub fn try_send<M: Message, S: Linked, C>(
    mailbox: &Mailbox<Envelope, S, C>,
    msg: M,
) -> Result<Option<RunToken>, TrySendError<M>> {
    send_archived(mailbox, msg).map_err(|e| match e {
        NotWritten::Exhausted(m) => TrySendError::Full(m),
        NotWritten::Failed(e) => e,
    })
}

/// Moves `value` into this thread's arena (no serialization) and pushes it. Never blocks.
pub fn try_send_plain<T: Send + 'static, S: Linked, C>(
    mailbox: &Mailbox<Envelope, S, C>,
    value: T,
) -> Result<Option<RunToken>, TrySendError<T>> {
    if mailbox.is_closed() {
        return Err(TrySendError::Closed(value));
    }
    match with_writer(|w| w.write_plain(value)) {
        Ok(env) => match mailbox.try_push(env) {
            Ok(token) => Ok(token),
            // The value is inside the envelope: take it back out.
            Err(PushError::Full(env)) => Err(TrySendError::Full(take_back(env))),
            Err(PushError::Closed(env)) => Err(TrySendError::Closed(take_back(env))),
        },
        Err((value, WriteError::TooLarge { .. })) => Err(TrySendError::TooLarge(value)),
        Err((value, _)) => Err(TrySendError::Full(value)),
    }
}

fn take_back<T: 'static>(env: Envelope) -> T {
    match env.take::<T>() {
        Ok(v) => v,
        Err(_) => unreachable!("the envelope was just written with a T"),
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Like [`try_send`], but while the arena pool is exhausted it parks the thread until a chunk
/// comes back, then retries. Other failures (mailbox full or closed, too large) return at once.
///
/// Do not call it from a thread that must itself consume the messages that would free the
/// pool (an actor sending to itself): that thread would wait for itself. Inside an actor's
/// handler this includes the message being handled: its mailbox keeps its link, and so one
/// reference on its chunk, until the handler returns (`Run::pop_keeping_link`), so a handler
/// that waits here for its own thread's pool can wait for the chunk of its own message.
pub fn send_waiting<M: Message, S: Linked, C>(
    mailbox: &Mailbox<Envelope, S, C>,
    msg: M,
) -> Result<Option<RunToken>, TrySendError<M>> {
    let mut waker: Option<Waker> = None;
    let mut msg = msg;
    loop {
        match send_archived(mailbox, msg) {
            Ok(token) => return Ok(token),
            Err(NotWritten::Failed(e)) => return Err(e),
            Err(NotWritten::Exhausted(m)) => msg = m,
        }
        let waker = waker.get_or_insert_with(|| Waker::from(Arc::new(Unpark(thread::current()))));
        with_writer(|w| {
            // Give our own half-used chunk back too, so that it can be recycled.
            w.retire_current();
            w.register_waiter(waker);
        });
        // Retry once after registering (space may have come back just before), then park
        // until a recycle wakes us.
        match send_archived(mailbox, msg) {
            Ok(token) => return Ok(token),
            Err(NotWritten::Failed(e)) => return Err(e),
            Err(NotWritten::Exhausted(m)) => {
                msg = m;
                thread::park();
            }
        }
    }
}
