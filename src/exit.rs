//! Exit reasons, actor ids and monitor references.

use core::fmt;
use std::sync::Arc;

use crate::supervisor::SpecError;

/// Why an actor stopped. Cheap to clone: it is sent to every link and monitor.
///
/// The names follow Erlang's: `normal`, `shutdown`, `{shutdown, Tag}`, `killed`, `noproc`,
/// and any other reason (here: a panic or an error).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The actor finished its work (`normal`). Linked actors that do not trap exits ignore it.
    Normal,
    /// Asked to stop (`shutdown`), by [`ActorRef::stop`](crate::ActorRef::stop) or a supervisor.
    Shutdown,
    /// Asked to stop, with a tag (`{shutdown, Tag}`).
    ShutdownWith(Arc<str>),
    /// Killed: [`ActorRef::kill`](crate::ActorRef::kill), untrappable (`killed`).
    Killed,
    /// A handler or hook panicked; the panic message.
    Panicked(Arc<str>),
    /// The actor stopped with an error.
    Error(Arc<str>),
    /// The actor did not exist (a link or monitor to a dead actor, `noproc`).
    NoProc,
    /// A supervisor could not start: child `child` failed to start with `reason`
    /// (`{shutdown, {failed_to_start_child, Child, Reason}}`). It nests through levels of a
    /// tree. A shutdown reason: a transient parent does not restart for it.
    FailedToStartChild {
        /// The id of the child that failed.
        child: Arc<str>,
        /// Why it failed.
        reason: Arc<ExitReason>,
    },
    /// A supervisor's specification was invalid (`{start_spec, What}`).
    InvalidSpec(SpecError),
}

impl ExitReason {
    /// An error reason.
    pub fn error(why: impl fmt::Display) -> Self {
        ExitReason::Error(why.to_string().into())
    }

    /// Whether this is `normal`.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// Whether this is `shutdown` or `{shutdown, _}` (a failed supervisor start is one).
    pub fn is_shutdown(&self) -> bool {
        matches!(
            self,
            ExitReason::Shutdown
                | ExitReason::ShutdownWith(_)
                | ExitReason::FailedToStartChild { .. }
        )
    }

    /// Whether the exit was abnormal: anything but `normal`, `shutdown` and `{shutdown, _}`
    /// (what a transient child is restarted for, and what is logged as a crash).
    pub fn is_abnormal(&self) -> bool {
        !self.is_normal() && !self.is_shutdown()
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::ShutdownWith(tag) => write!(f, "{{shutdown, {tag}}}"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Panicked(msg) => write!(f, "panicked: {msg}"),
            ExitReason::Error(e) => write!(f, "error: {e}"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::FailedToStartChild { child, reason } => {
                write!(f, "failed to start child {child}: {reason}")
            }
            ExitReason::InvalidSpec(e) => write!(f, "invalid supervisor spec: {e}"),
        }
    }
}

impl fmt::Debug for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An actor's identity: a slot index and the slot's generation.
///
/// Ids are never reused while anything could confuse them: a slot's generation changes every
/// time it is reused, so a stale id never names a new actor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ActorId {
    /// The slot index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot generation.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}.{}>", self.index, self.generation)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Identifies one monitor (returned by [`Ctx::monitor`](crate::Ctx::monitor), carried by the
/// down notification).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MonitorRef(pub(crate) u64);
