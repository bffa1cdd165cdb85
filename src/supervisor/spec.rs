//! Supervisor and child specifications (OTP's sup flags and child specs) and their checks.

use core::fmt;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::{Actor, ActorRef, Pid, SpawnError, System};
use crate::exit::ExitReason;

use super::Observer;

/// How a supervisor reacts when a child has to be restarted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Restart only the child that exited.
    #[default]
    OneForOne,
    /// Terminate every other child (reverse start order), then start every child again (start
    /// order), including children that were stopped on purpose. Temporary children are
    /// dropped.
    OneForAll,
    /// Terminate the children started after the one that exited (reverse order), then start
    /// it and them again.
    RestForOne,
    /// One template; children are added at run time with
    /// [`start_dynamic_child`](super::SupervisorRef::start_dynamic_child), each with its own
    /// argument, and restarted one for one. They are shut down all at once.
    SimpleOneForOne,
}

/// When a child is restarted after it exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always, whatever the reason (`normal` included).
    #[default]
    Permanent,
    /// Only after an abnormal exit (not `normal`, `shutdown` or `{shutdown, _}`); otherwise
    /// its spec is kept, stopped.
    Transient,
    /// Never; its spec is removed when it exits.
    Temporary,
}

/// How a child is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Killed at once (untrappable; the exit reason is `killed`).
    BrutalKill,
    /// Sent exit signal `shutdown`; killed if it has not stopped after this long.
    Timeout(Duration),
    /// Sent exit signal `shutdown`, and waited for as long as it takes (the default for
    /// supervisors).
    Infinity,
}

/// Whether a child is a worker or a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// Any actor.
    Worker,
    /// A supervisor (its subtree is shut down before it exits).
    Supervisor,
}

/// When a supervisor stops by itself because significant children have exited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AutoShutdown {
    /// Never (the default; `significant` children are then invalid).
    #[default]
    Never,
    /// When any significant child exits and is not restarted.
    AnySignificant,
    /// When no significant child has a process left.
    AllSignificant,
}

/// A supervisor's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SupervisorFlags {
    /// The restart strategy.
    pub strategy: Strategy,
    /// More than this many restarts within `period` makes the supervisor give up.
    pub intensity: u32,
    /// The restart window (sliding, inclusive), on the system clock.
    pub period: Duration,
    /// When significant children end the supervisor.
    pub auto_shutdown: AutoShutdown,
}

impl Default for SupervisorFlags {
    /// OTP's defaults: one_for_one, 1 restart in 5 seconds, no auto shutdown.
    fn default() -> Self {
        Self {
            strategy: Strategy::OneForOne,
            intensity: 1,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
        }
    }
}

/// What a start function returns: OTP's `{ok, Pid}`, `ignore` or `{error, Reason}`.
#[derive(Debug)]
pub enum StartResult {
    /// The child runs (it must be linked to the supervisor: use [`ChildStarter::spawn`]).
    Started(Pid),
    /// Nothing to run now; the spec is kept (stopped) unless the child is temporary.
    Ignore,
    /// The start failed.
    Failed(ExitReason),
}

impl<A: Actor> From<ActorRef<A>> for StartResult {
    fn from(actor: ActorRef<A>) -> Self {
        StartResult::Started(actor.pid())
    }
}

impl<A: Actor> From<Result<ActorRef<A>, SpawnError>> for StartResult {
    fn from(result: Result<ActorRef<A>, SpawnError>) -> Self {
        match result {
            Ok(actor) => StartResult::Started(actor.pid()),
            Err(e) => StartResult::Failed(ExitReason::error(e)),
        }
    }
}

/// What a start function gets: the way to spawn the child linked to its supervisor, and the
/// dynamic child's argument (simple_one_for_one).
pub struct ChildStarter<'a> {
    pub(super) system: &'a System,
    pub(super) supervisor: &'a crate::actor::ActorHandle<super::Supervisor>,
    pub(super) arg: Option<&'a (dyn Any + Send + Sync)>,
}

impl ChildStarter<'_> {
    /// Spawns `actor` linked to the supervisor (unbounded mailbox).
    pub fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, SpawnError> {
        self.supervisor.spawn_link(actor)
    }

    /// The system the supervisor runs in.
    pub fn system(&self) -> &System {
        self.system
    }

    /// The supervisor's address.
    pub fn supervisor(&self) -> Pid {
        self.supervisor.myself().pid()
    }

    /// The argument of a dynamic child (simple_one_for_one), if it is a `T`. A restarted
    /// child gets the same argument again.
    pub fn arg<T: Any>(&self) -> Option<&T> {
        self.arg.and_then(|a| a.downcast_ref::<T>())
    }
}

/// A start function: called by the supervisor, on its own thread of control, each time the
/// child (re)starts.
pub type StartFn = Arc<dyn Fn(&ChildStarter<'_>) -> StartResult + Send + Sync>;

#[derive(Clone)]
pub(super) enum ChildStart {
    Func(StartFn),
    Supervisor(Arc<SupervisorSpec>),
}

/// A child specification: its id, how it starts, when it is restarted and how it is stopped.
///
/// ```
/// use std::time::Duration;
/// use airssys_rt::{Actor, supervisor::{ChildSpec, Restart, Shutdown}};
///
/// struct Worker;
/// impl Actor for Worker {}
///
/// let spec = ChildSpec::worker("cache", |s| s.spawn(Worker).into())
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_millis(500)));
/// assert_eq!(spec.id(), "cache");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(super) id: Arc<str>,
    pub(super) start: ChildStart,
    pub(super) restart: Restart,
    pub(super) shutdown: Shutdown,
    pub(super) kind: ChildKind,
    pub(super) significant: bool,
}

impl ChildSpec {
    /// A worker: permanent, shut down with a 5 s timeout (OTP's defaults).
    pub fn worker(
        id: impl Into<Arc<str>>,
        start: impl Fn(&ChildStarter<'_>) -> StartResult + Send + Sync + 'static,
    ) -> Self {
        Self {
            id: id.into(),
            start: ChildStart::Func(Arc::new(start)),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            kind: ChildKind::Worker,
            significant: false,
        }
    }

    /// A child supervisor: permanent, shutdown `infinity`. Its subtree starts before it
    /// counts as started, and is shut down before it exits.
    pub fn supervisor(id: impl Into<Arc<str>>, spec: SupervisorSpec) -> Self {
        Self {
            id: id.into(),
            start: ChildStart::Supervisor(Arc::new(spec)),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor,
            significant: false,
        }
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Marks the child significant (for [`AutoShutdown`]; not allowed for permanent children).
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Declares the kind (a start function that starts a supervisor of its own making).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// The child's id (unique among its supervisor's children).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// How the child is stopped.
    pub fn shutdown_kind(&self) -> Shutdown {
        self.shutdown
    }

    /// Worker or supervisor.
    pub fn child_kind(&self) -> ChildKind {
        self.kind
    }

    /// Whether the child is significant.
    pub fn is_significant(&self) -> bool {
        self.significant
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .finish_non_exhaustive()
    }
}

/// A supervisor: its flags and its children, in start order.
///
/// ```
/// use std::time::Duration;
/// use airssys_rt::{Actor, supervisor::{ChildSpec, Strategy, SupervisorSpec}};
///
/// struct Worker;
/// impl Actor for Worker {}
///
/// let spec = SupervisorSpec::new(Strategy::OneForAll)
///     .intensity(3, Duration::from_secs(10))
///     .child(ChildSpec::worker("a", |s| s.spawn(Worker).into()))
///     .child(ChildSpec::worker("b", |s| s.spawn(Worker).into()));
/// assert_eq!(spec.child_specs().len(), 2);
/// ```
#[derive(Clone)]
pub struct SupervisorSpec {
    pub(super) name: Arc<str>,
    pub(super) flags: SupervisorFlags,
    pub(super) children: Vec<ChildSpec>,
    pub(super) observer: Option<Observer>,
}

impl SupervisorSpec {
    /// A supervisor with `strategy` and OTP's other defaults (1 restart in 5 s).
    pub fn new(strategy: Strategy) -> Self {
        Self {
            name: "supervisor".into(),
            flags: SupervisorFlags {
                strategy,
                ..SupervisorFlags::default()
            },
            children: Vec::new(),
            observer: None,
        }
    }

    /// Names the supervisor in its events (a child supervisor takes its child spec's id).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// At most `intensity` restarts within `period` (more, and the supervisor gives up).
    pub fn intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.flags.intensity = intensity;
        self.flags.period = period;
        self
    }

    /// Sets the auto shutdown rule.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.flags.auto_shutdown = auto_shutdown;
        self
    }

    /// Replaces all flags.
    pub fn flags(mut self, flags: SupervisorFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Adds a child (started after the ones before it).
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Adds children in order.
    pub fn children(mut self, children: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.children.extend(children);
        self
    }

    /// Tells `observer` about every start, failed start, exit and give-up in this
    /// supervisor and (unless they have their own) in its child supervisors.
    pub fn observer(
        mut self,
        observer: impl Fn(&super::SupervisorEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The flags.
    pub fn supervisor_flags(&self) -> &SupervisorFlags {
        &self.flags
    }

    /// The child specs, in start order.
    pub fn child_specs(&self) -> &[ChildSpec] {
        &self.children
    }

    /// Checks the spec as the supervisor does when it starts.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.flags.period.is_zero() {
            return Err(SpecError::InvalidPeriod);
        }
        if self.flags.strategy == Strategy::SimpleOneForOne && self.children.len() != 1 {
            return Err(SpecError::SimpleOneForOneTemplate(self.children.len()));
        }
        for (i, child) in self.children.iter().enumerate() {
            if self.children[..i].iter().any(|c| c.id == child.id) {
                return Err(SpecError::DuplicateChildId(child.id.clone()));
            }
            check_child(child, self.flags.auto_shutdown)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("name", &self.name)
            .field("flags", &self.flags)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

/// Checks one child spec against the supervisor's auto shutdown rule (`check_childspec`).
pub(super) fn check_child(child: &ChildSpec, auto: AutoShutdown) -> Result<(), SpecError> {
    if child.significant && auto == AutoShutdown::Never {
        return Err(SpecError::SignificantWithoutAutoShutdown(child.id.clone()));
    }
    if child.significant && child.restart == Restart::Permanent {
        return Err(SpecError::SignificantPermanent(child.id.clone()));
    }
    if child.id.is_empty() {
        return Err(SpecError::EmptyChildId);
    }
    Ok(())
}

/// Why a supervisor or child spec is invalid (OTP's `{start_spec, What}` and
/// `{error, What}` from `start_child`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SpecError {
    /// Two children have this id (`{duplicate_child_name, Id}`).
    DuplicateChildId(Arc<str>),
    /// A significant child under `auto_shutdown: never`
    /// (`{bad_combination, [{auto_shutdown, never}, {significant, true}]}`).
    SignificantWithoutAutoShutdown(Arc<str>),
    /// A significant permanent child
    /// (`{bad_combination, [{restart, permanent}, {significant, true}]}`).
    SignificantPermanent(Arc<str>),
    /// simple_one_for_one needs exactly one child spec (the template); it had this many.
    SimpleOneForOneTemplate(usize),
    /// The restart period must be longer than zero (`{invalid_period, 0}`).
    InvalidPeriod,
    /// A child id must not be empty.
    EmptyChildId,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::DuplicateChildId(id) => write!(f, "duplicate child id {id:?}"),
            SpecError::SignificantWithoutAutoShutdown(id) => {
                write!(f, "child {id:?} is significant but auto_shutdown is never")
            }
            SpecError::SignificantPermanent(id) => {
                write!(f, "child {id:?} is significant and permanent")
            }
            SpecError::SimpleOneForOneTemplate(n) => {
                write!(f, "simple_one_for_one needs exactly 1 child spec, not {n}")
            }
            SpecError::InvalidPeriod => f.write_str("the restart period must be positive"),
            SpecError::EmptyChildId => f.write_str("a child id must not be empty"),
        }
    }
}

impl std::error::Error for SpecError {}
