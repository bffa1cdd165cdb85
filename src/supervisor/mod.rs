//! Supervision trees with OTP semantics.
//!
//! A [`Supervisor`] is an actor that starts its children in order, links to them, traps
//! their exits and restarts them as its [`Strategy`] says, giving up when restarts come too
//! often. It follows OTP's `supervisor` (stdlib 4.2, OTP 25) rule for rule, and is tested
//! against event traces recorded from it (`tests/otp/`):
//!
//! * restart types ([`Restart`]): a permanent child is restarted whatever its exit reason,
//!   `normal` included; a transient one only after an abnormal exit; a temporary one never
//!   (its spec is dropped);
//! * intensity: more than `intensity` restarts within `period` (a sliding, inclusive window
//!   on the system clock, so virtual time under a [`ManualDriver`](crate::ManualDriver), in
//!   whole seconds as OTP counts them: a restart belongs to the window if its second is at
//!   least the current second minus the period) makes
//!   the supervisor shut its children down in reverse start order and exit with `shutdown`,
//!   which its parent sees as a child exit. A failed restart is retried after the messages
//!   already queued, and each retry counts;
//! * shutdown ([`Shutdown`]): one child at a time, in reverse start order, each waited for
//!   (killed after its timeout); simple_one_for_one children all at once;
//! * start failures: at start, the first failure stops the supervisor with
//!   [`ExitReason::FailedToStartChild`] after shutting down the children already started;
//! * significant children and [`AutoShutdown`];
//! * the dynamic API of [`SupervisorRef`] with OTP's error values ([`ChildError`]).
//!
//! Every operation a supervisor performs is synchronous for it: while it starts or stops a
//! child, it handles nothing else (its own exit signals wait), exactly as OTP's does. A
//! [`kill`](crate::Pid::kill) still acts at once; the children then die through their links.
//!
//! An exit signal from the supervisor's parent (the actor that started it), or from outside
//! the actor system ([`Pid::stop`], [`Pid::exit`]), stops it: it shuts its children down and
//! exits with that reason. Exit signals from other linked actors that are not its children are
//! ignored.
//!
//! ```
//! use std::time::Duration;
//! use airssys_rt::{Actor, Ctx, Handler, ManualDriver};
//! use airssys_rt::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
//!
//! struct Worker;
//! impl Actor for Worker {}
//! struct Crash;
//! impl Handler<Crash> for Worker {
//!     type Reply = ();
//!     fn handle(&mut self, _: Crash, _: &mut Ctx<Self>) {
//!         panic!("boom");
//!     }
//! }
//!
//! let driver = ManualDriver::new(1);
//! let spec = SupervisorSpec::new(Strategy::OneForOne)
//!     .intensity(3, Duration::from_secs(5))
//!     .child(ChildSpec::worker("w", |s| s.spawn(Worker).into()));
//! let starting = Supervisor::start(driver.system(), spec);
//! driver.run_until_idle();
//! let sup = starting.try_take().unwrap().unwrap();
//!
//! let first = sup.which_children();
//! driver.run_until_idle();
//! let first = first.try_take().unwrap().unwrap()[0].pid.clone().unwrap();
//! first.downcast::<Worker>().unwrap().tell(Crash).unwrap();
//! driver.run_until_idle();
//!
//! let now = sup.which_children();
//! driver.run_until_idle();
//! let now = now.try_take().unwrap().unwrap()[0].pid.clone().unwrap();
//! assert_ne!(now, first); // restarted
//! assert!(now.is_alive());
//! ```

mod spec;

use core::fmt;
use std::any::Any;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use spec::{
    AutoShutdown, ChildKind, ChildSpec, ChildStarter, Restart, Shutdown, SpecError, StartFn,
    StartResult, Strategy, SupervisorFlags, SupervisorSpec,
};

use crate::actor::{
    panic_message, Actor, ActorHandle, ActorRef, AskError, AsyncHandler, Ctx, Handler, Pid, Reply,
    System,
};
use crate::exit::{ActorId, ExitReason};
use spec::{check_child, ChildStart};

/// Receives a supervisor's [`SupervisorEvent`]s (see [`SupervisorSpec::observer`]).
pub type Observer = Arc<dyn Fn(&SupervisorEvent<'_>) + Send + Sync>;

/// What a supervisor did, for logs and tests (OTP's progress and error reports).
#[derive(Debug)]
pub enum SupervisorEvent<'a> {
    /// A child's start function returned a running child.
    ChildStarted {
        /// The supervisor's name.
        supervisor: &'a str,
        /// The child's id (for a dynamic child, the template's).
        child: &'a str,
        /// A dynamic child's argument.
        arg: Option<&'a (dyn Any + Send + Sync)>,
        /// The new process.
        pid: &'a Pid,
        /// Worker or supervisor.
        kind: ChildKind,
    },
    /// A child's start function failed.
    StartFailed {
        /// The supervisor's name.
        supervisor: &'a str,
        /// The child's id.
        child: &'a str,
        /// A dynamic child's argument.
        arg: Option<&'a (dyn Any + Send + Sync)>,
        /// Why.
        reason: &'a ExitReason,
    },
    /// A child's start function returned [`StartResult::Ignore`].
    StartIgnored {
        /// The supervisor's name.
        supervisor: &'a str,
        /// The child's id.
        child: &'a str,
        /// A dynamic child's argument.
        arg: Option<&'a (dyn Any + Send + Sync)>,
    },
    /// The supervisor learned that a child exited (it crashed, or the supervisor stopped it).
    ChildExited {
        /// The supervisor's name.
        supervisor: &'a str,
        /// The child's id.
        child: &'a str,
        /// A dynamic child's argument.
        arg: Option<&'a (dyn Any + Send + Sync)>,
        /// The process that exited.
        pid: ActorId,
        /// Its exit reason (`noproc` if it had gone before the supervisor stopped it).
        reason: &'a ExitReason,
    },
    /// Too many restarts: the supervisor gives up (`reached_max_restart_intensity`).
    GaveUp {
        /// The supervisor's name.
        supervisor: &'a str,
        /// The child whose restart was one too many.
        child: &'a str,
    },
    /// The supervisor itself stopped, after its children (only if it had started).
    Stopped {
        /// The supervisor's name.
        supervisor: &'a str,
        /// Its process.
        pid: ActorId,
        /// Its exit reason.
        reason: &'a ExitReason,
    },
}

/// The state of a child, as [`SupervisorRef::which_children`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildState {
    /// It has a process.
    Running,
    /// Its spec is kept, with no process (stopped, ignored, or ended as a transient).
    Undefined,
    /// A restart failed; the supervisor will try again.
    Restarting,
}

/// One child, as [`SupervisorRef::which_children`] reports it.
#[derive(Clone)]
pub struct ChildInfo {
    /// The child's id (a dynamic child has its template's).
    pub id: Arc<str>,
    /// A dynamic child's argument.
    pub arg: Option<Arc<dyn Any + Send + Sync>>,
    /// Its process, if running.
    pub pid: Option<Pid>,
    /// Running, stopped, or waiting for a restart.
    pub state: ChildState,
    /// Worker or supervisor.
    pub kind: ChildKind,
}

impl fmt::Debug for ChildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildInfo")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .field("state", &self.state)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// [`SupervisorRef::count_children`]: OTP's `count_children/1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChildCounts {
    /// Child specs (1 for simple_one_for_one: the template).
    pub specs: usize,
    /// Children with a live process.
    pub active: usize,
    /// Children that are supervisors (specs; dynamic children for simple_one_for_one).
    pub supervisors: usize,
    /// Children that are workers (likewise).
    pub workers: usize,
}

/// Why a [`SupervisorRef`] call failed: OTP's `{error, What}` values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildError {
    /// A child with this id runs already (`{already_started, Pid}`).
    AlreadyStarted(Pid),
    /// A child with this id exists, stopped (`already_present`).
    AlreadyPresent,
    /// The child is running (`running`).
    Running,
    /// The child is waiting for a restart (`restarting`).
    Restarting,
    /// No such child (`not_found`).
    NotFound,
    /// Not possible under simple_one_for_one (`simple_one_for_one`).
    SimpleOneForOne,
    /// Only possible under simple_one_for_one (dynamic children).
    NotSimpleOneForOne,
    /// The start function failed.
    StartFailed(ExitReason),
    /// The child spec is invalid.
    InvalidSpec(SpecError),
    /// The supervisor is not running (`noproc`).
    NoProc,
    /// [`Call::wait`] ran out of time.
    Timeout,
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::AlreadyStarted(pid) => write!(f, "child already started as {pid:?}"),
            ChildError::AlreadyPresent => f.write_str("child already present"),
            ChildError::Running => f.write_str("child is running"),
            ChildError::Restarting => f.write_str("child is restarting"),
            ChildError::NotFound => f.write_str("no such child"),
            ChildError::SimpleOneForOne => f.write_str("not supported by simple_one_for_one"),
            ChildError::NotSimpleOneForOne => f.write_str("only for simple_one_for_one"),
            ChildError::StartFailed(r) => write!(f, "child failed to start: {r}"),
            ChildError::InvalidSpec(e) => write!(f, "invalid child spec: {e}"),
            ChildError::NoProc => f.write_str("the supervisor is not running"),
            ChildError::Timeout => f.write_str("the supervisor did not answer in time"),
        }
    }
}

impl std::error::Error for ChildError {}

/// A pending answer from a supervisor: `.await` it, poll it with
/// [`try_take`](Call::try_take), or block on it with [`wait`](Call::wait).
pub struct Call<T, E> {
    reply: Reply<Result<T, E>>,
    lost: fn(AskError) -> E,
}

impl<T, E> Call<T, E> {
    fn new(reply: Reply<Result<T, E>>, lost: fn(AskError) -> E) -> Self {
        Self { reply, lost }
    }

    /// The answer, if it has arrived (once).
    pub fn try_take(&self) -> Option<Result<T, E>> {
        self.reply
            .try_take()
            .map(|r| r.unwrap_or_else(|e| Err((self.lost)(e))))
    }

    /// Blocks the thread until the answer arrives or `timeout` passes (see [`Reply::wait`]).
    pub fn wait(self, timeout: Duration) -> Result<T, E> {
        let lost = self.lost;
        self.reply.wait(timeout).unwrap_or_else(|e| Err(lost(e)))
    }
}

impl<T, E> Future for Call<T, E> {
    type Output = Result<T, E>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lost = self.lost;
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|e| Err(lost(e))))
    }
}

fn child_call_lost(e: AskError) -> ChildError {
    match e {
        AskError::Timeout => ChildError::Timeout,
        AskError::ActorDied | AskError::Full => ChildError::NoProc,
    }
}

fn start_call_lost(e: AskError) -> ExitReason {
    match e {
        AskError::Timeout => ExitReason::error("the supervisor did not start in time"),
        AskError::ActorDied | AskError::Full => ExitReason::NoProc,
    }
}

/// The address of a running supervisor.
#[derive(Clone)]
pub struct SupervisorRef {
    actor: ActorRef<Supervisor>,
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SupervisorRef({})", self.actor.id())
    }
}

impl SupervisorRef {
    /// The supervisor of `pid`, if it is one (for example a child of kind supervisor in
    /// [`which_children`](Self::which_children)).
    pub fn from_pid(pid: &Pid) -> Option<Self> {
        pid.downcast::<Supervisor>().map(|actor| Self { actor })
    }

    /// Its process.
    pub fn pid(&self) -> Pid {
        self.actor.pid()
    }

    /// Its id.
    pub fn id(&self) -> ActorId {
        self.actor.id()
    }

    /// Whether it runs.
    pub fn is_alive(&self) -> bool {
        self.actor.is_alive()
    }

    /// Stops it as its parent would: exit signal `shutdown`; it shuts its children down
    /// first. Returns `false` if it had stopped.
    pub fn stop(&self) -> bool {
        self.actor.stop()
    }

    /// Adds and starts a child (`start_child/2`). `Ok(None)` if its start returned
    /// [`StartResult::Ignore`] (the spec is kept, stopped, unless it is temporary).
    pub fn start_child(&self, spec: ChildSpec) -> Call<Option<Pid>, ChildError> {
        Call::new(self.actor.ask_async(msg::StartChild(spec)), child_call_lost)
    }

    /// simple_one_for_one: starts a child from the template, with `arg` (its start function
    /// reads it with [`ChildStarter::arg`]; a restart gets the same argument).
    pub fn start_dynamic_child<T: Any + Send + Sync>(
        &self,
        arg: T,
    ) -> Call<Option<Pid>, ChildError> {
        Call::new(
            self.actor.ask_async(msg::StartDynamic(Arc::new(arg))),
            child_call_lost,
        )
    }

    /// Stops child `id`, keeping its spec unless it is temporary (`terminate_child/2`).
    pub fn terminate_child(&self, id: &str) -> Call<(), ChildError> {
        Call::new(
            self.actor
                .ask_async(msg::TerminateChild(msg::Target::Id(id.into()))),
            child_call_lost,
        )
    }

    /// Stops the child whose process is `pid`: the only way under simple_one_for_one (a `pid`
    /// that has already stopped gives `Ok`, as in OTP). Any other supervisor knows its
    /// children by id only and answers [`ChildError::NotFound`], as OTP does.
    pub fn terminate_child_pid(&self, pid: &Pid) -> Call<(), ChildError> {
        Call::new(
            self.actor
                .ask_async(msg::TerminateChild(msg::Target::Pid(pid.clone()))),
            child_call_lost,
        )
    }

    /// Starts a stopped child again (`restart_child/2`). A failed start is returned, not
    /// retried, and does not count toward the restart intensity.
    pub fn restart_child(&self, id: &str) -> Call<Option<Pid>, ChildError> {
        Call::new(
            self.actor.ask_async(msg::RestartChild(id.into())),
            child_call_lost,
        )
    }

    /// Removes a stopped child's spec (`delete_child/2`).
    pub fn delete_child(&self, id: &str) -> Call<(), ChildError> {
        Call::new(self.actor.ask(msg::DeleteChild(id.into())), child_call_lost)
    }

    /// The children, newest first (reverse start order), as OTP lists them.
    pub fn which_children(&self) -> Call<Vec<ChildInfo>, ChildError> {
        Call::new(self.actor.ask(msg::WhichChildren), child_call_lost)
    }

    /// The counts of `count_children/1`.
    pub fn count_children(&self) -> Call<ChildCounts, ChildError> {
        Call::new(self.actor.ask(msg::CountChildren), child_call_lost)
    }
}

/// The messages a supervisor handles (private: only [`SupervisorRef`] and the supervisor
/// itself send them).
mod msg {
    use super::*;

    pub struct Init;
    pub enum Event {
        ChildExit(ActorId, ExitReason),
        ParentExit(ExitReason),
        TryAgain(Key),
    }
    pub struct StartChild(pub ChildSpec);
    pub struct StartDynamic(pub Arc<dyn Any + Send + Sync>);
    pub enum Target {
        Id(Arc<str>),
        Pid(Pid),
    }
    pub struct TerminateChild(pub Target);
    pub struct RestartChild(pub Arc<str>);
    pub struct DeleteChild(pub Arc<str>);
    pub struct WhichChildren;
    pub struct CountChildren;

    /// A child, as a retry names it.
    #[derive(Clone)]
    pub enum Key {
        Static(Arc<str>),
        Dynamic(u64),
    }
}

use msg::{Event, Key};

enum ChildPid {
    Running(Pid),
    Undefined,
    Restarting,
}

impl ChildPid {
    fn state(&self) -> ChildState {
        match self {
            ChildPid::Running(_) => ChildState::Running,
            ChildPid::Undefined => ChildState::Undefined,
            ChildPid::Restarting => ChildState::Restarting,
        }
    }

    fn running(&self) -> Option<&Pid> {
        match self {
            ChildPid::Running(p) => Some(p),
            _ => None,
        }
    }
}

struct Child {
    spec: ChildSpec,
    pid: ChildPid,
}

struct DynChild {
    pid: ChildPid,
    /// The id of its latest process (a restarting child is still named by it).
    last: Option<ActorId>,
    arg: Arc<dyn Any + Send + Sync>,
}

/// What to do after handling an event.
enum Flow {
    Continue,
    /// Shut every child down and exit with this reason.
    Stop(ExitReason),
}

/// A supervisor actor. Start one with [`Supervisor::start`], or as a child with
/// [`ChildSpec::supervisor`]; talk to it through [`SupervisorRef`].
pub struct Supervisor {
    name: Arc<str>,
    flags: SupervisorFlags,
    /// The specs to start, until `Init`.
    specs: Vec<ChildSpec>,
    /// Static and added children, in start order (OTP keeps them newest first).
    children: Vec<Child>,
    /// simple_one_for_one: the template and the children, in start order of first start.
    template: Option<ChildSpec>,
    dynamic: BTreeMap<u64, DynChild>,
    by_pid: HashMap<ActorId, u64>,
    next_key: u64,
    /// simple_one_for_one children waiting for a restart.
    dynamic_restarts: usize,
    /// Times of the restarts inside the window, oldest first (at most `intensity + 1`).
    restarts: VecDeque<Duration>,
    observer: Option<Observer>,
    me: Option<ActorId>,
    parent: Option<ActorId>,
    /// `Init` succeeded.
    started: bool,
}

impl Supervisor {
    /// Starts a top-level supervisor (no parent: an exit signal from outside the actor
    /// system, such as [`SupervisorRef::stop`], stops it). The answer comes once every child
    /// has started; a child that fails to start makes it
    /// [`ExitReason::FailedToStartChild`], an invalid spec [`ExitReason::InvalidSpec`].
    pub fn start(system: &System, spec: SupervisorSpec) -> Call<SupervisorRef, ExitReason> {
        match system.spawn(Supervisor::new(spec)) {
            Ok(sup) => Call::new(sup.ask_async(msg::Init), start_call_lost),
            Err(e) => Call::new(Reply::ready(Err(ExitReason::error(e))), start_call_lost),
        }
    }

    /// Starts a supervisor as a child of the calling actor, linked to it: an exit signal
    /// from that actor stops the supervisor (after its children), and the supervisor's exit
    /// reaches the actor through the link.
    ///
    /// ```
    /// use std::time::Duration;
    /// use airssys_rt::{Actor, Ctx, ManualDriver};
    /// use airssys_rt::supervisor::{Call, ChildSpec, Strategy, Supervisor, SupervisorRef, SupervisorSpec};
    /// use airssys_rt::ExitReason;
    ///
    /// struct Worker;
    /// impl Actor for Worker {}
    ///
    /// struct App(Option<Call<SupervisorRef, ExitReason>>);
    /// impl Actor for App {
    ///     fn started(&mut self, ctx: &mut Ctx<Self>) {
    ///         let spec = SupervisorSpec::new(Strategy::OneForOne)
    ///             .child(ChildSpec::worker("w", |s| s.spawn(Worker).into()));
    ///         self.0 = Some(Supervisor::start_link(ctx, spec));
    ///     }
    /// }
    ///
    /// let d = ManualDriver::new(1);
    /// let app = d.system().spawn(App(None)).unwrap();
    /// d.run_until_idle();
    /// assert_eq!(d.system().stats().live, 3); // app, supervisor, worker
    /// app.kill();                              // the supervisor stops with it, then the worker
    /// d.run_until_quiescent(10);
    /// assert_eq!(d.system().stats().live, 0);
    /// ```
    pub fn start_link<A: Actor>(
        ctx: &mut Ctx<A>,
        spec: SupervisorSpec,
    ) -> Call<SupervisorRef, ExitReason> {
        match ctx.spawn_link(Supervisor::new(spec)) {
            Ok(sup) => Call::new(sup.ask_async(msg::Init), start_call_lost),
            Err(e) => Call::new(Reply::ready(Err(ExitReason::error(e))), start_call_lost),
        }
    }

    fn new(spec: SupervisorSpec) -> Self {
        Self {
            name: spec.name,
            flags: spec.flags,
            specs: spec.children,
            children: Vec::new(),
            template: None,
            dynamic: BTreeMap::new(),
            by_pid: HashMap::new(),
            next_key: 0,
            dynamic_restarts: 0,
            restarts: VecDeque::new(),
            observer: spec.observer,
            me: None,
            parent: None,
            started: false,
        }
    }

    fn is_simple(&self) -> bool {
        self.flags.strategy == Strategy::SimpleOneForOne
    }

    fn emit(&self, event: SupervisorEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }

    /// Whether `id` is the process of one of the children now.
    fn is_current_child(&self, id: ActorId) -> bool {
        self.by_pid.contains_key(&id)
            || self
                .children
                .iter()
                .any(|c| c.pid.running().is_some_and(|p| p.id() == id))
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| &*c.spec.id == id)
    }

    /// Counts a restart at `now`; `false` if that makes too many within the period.
    ///
    /// As OTP's `add_restart/3`: restart times are whole seconds of the clock
    /// (`erlang:monotonic_time(1)`), and a restart is inside the window if its second is at
    /// least `now`'s second minus the period. The window so spans up to a second more than the
    /// period: restarts 0.4 s apart with intensity 3 and period 1 s are too many (the fourth
    /// falls in the second after the first), as they are for OTP. A period that is not a whole
    /// number of seconds (which OTP does not accept) is compared with exact times instead.
    fn add_restart(&mut self, now: Duration) -> bool {
        self.restarts.push_back(now);
        let period = self.flags.period;
        let whole_seconds = period.subsec_nanos() == 0;
        while let Some(&t) = self.restarts.front() {
            let outside = if whole_seconds {
                t.as_secs() < now.as_secs().saturating_sub(period.as_secs())
            } else {
                now.saturating_sub(t) > period
            };
            if outside {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.len() <= self.flags.intensity as usize
    }

    // -- starting -----------------------------------------------------------------------------

    async fn init(&mut self, me: &ActorHandle<Self>) -> Result<(), ExitReason> {
        let spec = SupervisorSpec {
            name: self.name.clone(),
            flags: self.flags,
            children: std::mem::take(&mut self.specs),
            observer: None,
        };
        spec.validate().map_err(ExitReason::InvalidSpec)?;
        if self.is_simple() {
            self.template = spec.children.into_iter().next();
            return Ok(());
        }
        self.children = spec
            .children
            .into_iter()
            .map(|spec| Child {
                spec,
                pid: ChildPid::Undefined,
            })
            .collect();
        if let Err((child, reason)) = self.start_children(0, me).await {
            self.terminate_children(0, me).await;
            return Err(ExitReason::FailedToStartChild {
                child,
                reason: Arc::new(reason),
            });
        }
        Ok(())
    }

    /// Runs a child's start function and reports the outcome.
    async fn start_spec(
        &self,
        spec: &ChildSpec,
        arg: Option<&Arc<dyn Any + Send + Sync>>,
        me: &ActorHandle<Self>,
    ) -> StartResult {
        let result = match &spec.start {
            ChildStart::Func(start) => {
                let starter = ChildStarter {
                    system: me.system(),
                    supervisor: me,
                    arg: arg.map(|a| &**a),
                };
                catch_unwind(AssertUnwindSafe(|| start(&starter))).unwrap_or_else(|panic| {
                    StartResult::Failed(ExitReason::Panicked(panic_message(&*panic).into()))
                })
            }
            ChildStart::Supervisor(sub) => {
                let mut sub = (**sub).clone();
                sub.name = spec.id.clone();
                if sub.observer.is_none() {
                    sub.observer = self.observer.clone();
                }
                start_child_supervisor(me, sub).await
            }
        };
        let (supervisor, child, arg) = (&*self.name, &*spec.id, arg.map(|a| &**a));
        self.emit(match &result {
            StartResult::Started(pid) => SupervisorEvent::ChildStarted {
                supervisor,
                child,
                arg,
                pid,
                kind: spec.kind,
            },
            StartResult::Ignore => SupervisorEvent::StartIgnored {
                supervisor,
                child,
                arg,
            },
            StartResult::Failed(reason) => SupervisorEvent::StartFailed {
                supervisor,
                child,
                arg,
                reason,
            },
        });
        result
    }

    /// Starts the children from index `from` on, in order (`start_children/2`). Stops at the
    /// first failure, leaving it and the later ones stopped.
    async fn start_children(
        &mut self,
        from: usize,
        me: &ActorHandle<Self>,
    ) -> Result<(), (Arc<str>, ExitReason)> {
        let mut i = from;
        while i < self.children.len() {
            let spec = self.children[i].spec.clone();
            match self.start_spec(&spec, None, me).await {
                StartResult::Started(pid) => self.children[i].pid = ChildPid::Running(pid),
                StartResult::Ignore if spec.restart == Restart::Temporary => {
                    self.children.remove(i);
                    continue;
                }
                StartResult::Ignore => self.children[i].pid = ChildPid::Undefined,
                StartResult::Failed(reason) => return Err((spec.id, reason)),
            }
            i += 1;
        }
        Ok(())
    }

    // -- stopping -----------------------------------------------------------------------------

    /// Stops one child and waits for its exit (`shutdown/2`).
    async fn shutdown_child(&self, pid: &Pid, how: Shutdown, me: &ActorHandle<Self>) -> ExitReason {
        let exit = pid.exit_reason();
        let mine = me.myself().id();
        let timer = match how {
            Shutdown::BrutalKill => {
                pid.kill();
                None
            }
            Shutdown::Infinity => {
                pid.exit_from(mine, ExitReason::Shutdown);
                None
            }
            Shutdown::Timeout(after) => {
                pid.exit_from(mine, ExitReason::Shutdown);
                let pid = pid.clone();
                Some(me.system().run_after(after, move || {
                    pid.kill();
                }))
            }
        };
        let reason = exit.await.unwrap_or(ExitReason::NoProc);
        if let Some(timer) = timer {
            timer.cancel();
        }
        reason
    }

    /// Stops the child at `i` if it runs, and forgets its process.
    async fn terminate_at(&mut self, i: usize, me: &ActorHandle<Self>) {
        let pid = std::mem::replace(&mut self.children[i].pid, ChildPid::Undefined);
        if let ChildPid::Running(pid) = pid {
            let spec = &self.children[i].spec;
            let reason = self.shutdown_child(&pid, spec.shutdown, me).await;
            self.emit(SupervisorEvent::ChildExited {
                supervisor: &self.name,
                child: &spec.id,
                arg: None,
                pid: pid.id(),
                reason: &reason,
            });
        }
    }

    /// Stops the children from index `from` on, newest first; drops temporary ones
    /// (`terminate_children/2`).
    async fn terminate_children(&mut self, from: usize, me: &ActorHandle<Self>) {
        let mut i = self.children.len();
        while i > from {
            i -= 1;
            self.terminate_at(i, me).await;
            if self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            }
        }
    }

    /// simple_one_for_one: stops every child at once, with one timer.
    async fn terminate_dynamic(&mut self, me: &ActorHandle<Self>) {
        let Some(template) = &self.template else {
            return;
        };
        let mine = me.myself().id();
        let running: Vec<(u64, Pid)> = self
            .dynamic
            .iter()
            .filter_map(|(k, d)| d.pid.running().map(|p| (*k, p.clone())))
            .collect();
        let exits: Vec<Reply<ExitReason>> = running.iter().map(|(_, p)| p.exit_reason()).collect();
        let timer = match template.shutdown {
            Shutdown::BrutalKill => {
                for (_, p) in &running {
                    p.kill();
                }
                None
            }
            how => {
                for (_, p) in &running {
                    p.exit_from(mine, ExitReason::Shutdown);
                }
                match how {
                    Shutdown::Timeout(after) => {
                        let pids: Vec<Pid> = running.iter().map(|(_, p)| p.clone()).collect();
                        Some(me.system().run_after(after, move || {
                            for p in &pids {
                                p.kill();
                            }
                        }))
                    }
                    _ => None,
                }
            }
        };
        for ((key, pid), exit) in running.iter().zip(exits) {
            let reason = exit.await.unwrap_or(ExitReason::NoProc);
            self.emit(SupervisorEvent::ChildExited {
                supervisor: &self.name,
                child: &template.id,
                arg: self.dynamic.get(key).map(|d| &*d.arg),
                pid: pid.id(),
                reason: &reason,
            });
        }
        if let Some(timer) = timer {
            timer.cancel();
        }
        self.dynamic.clear();
        self.by_pid.clear();
        self.dynamic_restarts = 0;
    }

    /// Stops every child (the supervisor is exiting).
    async fn terminate_all(&mut self, me: &ActorHandle<Self>) {
        if self.is_simple() {
            self.terminate_dynamic(me).await;
        } else {
            self.terminate_children(0, me).await;
        }
    }

    /// Carries out `flow`: on `Stop`, shuts the children down and exits.
    async fn settle(&mut self, flow: Flow, me: &ActorHandle<Self>) {
        if let Flow::Stop(reason) = flow {
            self.terminate_all(me).await;
            me.stop_with(reason);
        }
    }

    // -- restarting ---------------------------------------------------------------------------

    /// A child exited (`restart_child/3`); exits of processes that are not current children
    /// are ignored.
    async fn child_exited(
        &mut self,
        from: ActorId,
        reason: ExitReason,
        me: &ActorHandle<Self>,
    ) -> Flow {
        let key = if let Some(i) = self
            .children
            .iter()
            .position(|c| c.pid.running().is_some_and(|p| p.id() == from))
        {
            self.children[i].pid = ChildPid::Undefined;
            Key::Static(self.children[i].spec.id.clone())
        } else if let Some(k) = self.by_pid.remove(&from) {
            if let Some(d) = self.dynamic.get_mut(&k) {
                d.pid = ChildPid::Undefined;
            }
            Key::Dynamic(k)
        } else {
            return Flow::Continue;
        };
        let (restart, significant, child) = self.spec_of(&key);
        self.emit(SupervisorEvent::ChildExited {
            supervisor: &self.name,
            child: &child,
            arg: self.arg_of(&key),
            pid: from,
            reason: &reason,
        });
        // `do_restart/3`.
        match restart {
            Restart::Permanent => self.restart(key, me).await,
            Restart::Transient if reason.is_abnormal() => self.restart(key, me).await,
            Restart::Transient | Restart::Temporary => {
                self.del_child(&key);
                self.auto_shutdown(significant)
            }
        }
    }

    /// A child's restart type, significance and id.
    fn spec_of(&self, key: &Key) -> (Restart, bool, Arc<str>) {
        let spec = match key {
            Key::Static(id) => self
                .children
                .iter()
                .find(|c| c.spec.id == *id)
                .map(|c| &c.spec),
            Key::Dynamic(_) => self.template.as_ref(),
        }
        .expect("a key names a child");
        (spec.restart, spec.significant, spec.id.clone())
    }

    fn arg_of(&self, key: &Key) -> Option<&(dyn Any + Send + Sync)> {
        match key {
            Key::Static(_) => None,
            Key::Dynamic(k) => self.dynamic.get(k).map(|d| &*d.arg),
        }
    }

    /// Forgets a child that is not restarted: temporary specs and dynamic children are
    /// removed, others kept stopped (`del_child/2`).
    fn del_child(&mut self, key: &Key) {
        match key {
            Key::Static(id) => {
                if let Some(i) = self.index_of(id) {
                    if self.children[i].spec.restart == Restart::Temporary {
                        self.children.remove(i);
                    } else {
                        self.children[i].pid = ChildPid::Undefined;
                    }
                }
            }
            Key::Dynamic(k) => {
                if let Some(d) = self.dynamic.remove(k) {
                    match d.pid {
                        ChildPid::Restarting => self.dynamic_restarts -= 1,
                        ChildPid::Running(p) => {
                            self.by_pid.remove(&p.id());
                        }
                        ChildPid::Undefined => {}
                    }
                }
            }
        }
    }

    /// A significant child ended and is not restarted (`do_auto_shutdown/2`).
    fn auto_shutdown(&self, significant: bool) -> Flow {
        match self.flags.auto_shutdown {
            AutoShutdown::Never => Flow::Continue,
            _ if !significant => Flow::Continue,
            AutoShutdown::AnySignificant => Flow::Stop(ExitReason::Shutdown),
            AutoShutdown::AllSignificant => {
                let left = if self.is_simple() {
                    !self.dynamic.is_empty()
                } else {
                    self.children
                        .iter()
                        .any(|c| c.spec.significant && !matches!(c.pid, ChildPid::Undefined))
                };
                if left {
                    Flow::Continue
                } else {
                    Flow::Stop(ExitReason::Shutdown)
                }
            }
        }
    }

    /// Restarts a child by the strategy, after counting the restart (`restart/2`).
    async fn restart(&mut self, key: Key, me: &ActorHandle<Self>) -> Flow {
        if !self.add_restart(me.system().now()) {
            let (_, _, child) = self.spec_of(&key);
            self.emit(SupervisorEvent::GaveUp {
                supervisor: &self.name,
                child: &child,
            });
            self.del_child(&key);
            return Flow::Stop(ExitReason::Shutdown);
        }
        match (&key, self.flags.strategy) {
            (Key::Dynamic(k), _) => self.restart_dynamic(*k, me).await,
            (Key::Static(id), Strategy::OneForOne | Strategy::SimpleOneForOne) => {
                let Some(i) = self.index_of(id) else {
                    return Flow::Continue;
                };
                let spec = self.children[i].spec.clone();
                let started = self.start_spec(&spec, None, me).await;
                self.children[i].pid = match started {
                    StartResult::Started(pid) => ChildPid::Running(pid),
                    StartResult::Ignore => ChildPid::Undefined,
                    StartResult::Failed(_) => {
                        self.try_again_later(key, me);
                        ChildPid::Restarting
                    }
                };
            }
            (Key::Static(id), Strategy::OneForAll | Strategy::RestForOne) => {
                let Some(i) = self.index_of(id) else {
                    return Flow::Continue;
                };
                self.children[i].pid = ChildPid::Undefined;
                let from = if self.flags.strategy == Strategy::OneForAll {
                    0
                } else {
                    i
                };
                self.terminate_children(from, me).await;
                if let Err((failed, _)) = self.start_children(from, me).await {
                    if let Some(j) = self.index_of(&failed) {
                        self.children[j].pid = ChildPid::Restarting;
                    }
                    self.try_again_later(Key::Static(failed), me);
                }
            }
        }
        Flow::Continue
    }

    async fn restart_dynamic(&mut self, k: u64, me: &ActorHandle<Self>) {
        let (Some(template), Some(d)) = (self.template.clone(), self.dynamic.get(&k)) else {
            return;
        };
        let arg = d.arg.clone();
        let was_restarting = matches!(d.pid, ChildPid::Restarting);
        let started = self.start_spec(&template, Some(&arg), me).await;
        match started {
            StartResult::Started(pid) => {
                if was_restarting {
                    self.dynamic_restarts -= 1;
                }
                self.by_pid.insert(pid.id(), k);
                if let Some(d) = self.dynamic.get_mut(&k) {
                    d.last = Some(pid.id());
                    d.pid = ChildPid::Running(pid);
                }
            }
            StartResult::Ignore => self.del_child(&Key::Dynamic(k)),
            StartResult::Failed(_) => {
                if !was_restarting {
                    self.dynamic_restarts += 1;
                }
                if let Some(d) = self.dynamic.get_mut(&k) {
                    d.pid = ChildPid::Restarting;
                }
                self.try_again_later(Key::Dynamic(k), me);
            }
        }
    }

    /// Retries a failed restart after the messages already queued (`try_again_restart`).
    fn try_again_later(&self, key: Key, me: &ActorHandle<Self>) {
        // Our own mailbox is unbounded and open while we run.
        let _ = me.myself().tell_async(Event::TryAgain(key));
    }

    async fn try_again(&mut self, key: Key, me: &ActorHandle<Self>) -> Flow {
        let restarting = match &key {
            Key::Static(id) => self
                .children
                .iter()
                .any(|c| c.spec.id == *id && matches!(c.pid, ChildPid::Restarting)),
            Key::Dynamic(k) => self
                .dynamic
                .get(k)
                .is_some_and(|d| matches!(d.pid, ChildPid::Restarting)),
        };
        if restarting {
            self.restart(key, me).await
        } else {
            Flow::Continue
        }
    }

    // -- the API --------------------------------------------------------------------------------

    async fn add_child(
        &mut self,
        spec: ChildSpec,
        me: &ActorHandle<Self>,
    ) -> Result<Option<Pid>, ChildError> {
        if self.is_simple() {
            return Err(ChildError::SimpleOneForOne);
        }
        check_child(&spec, self.flags.auto_shutdown).map_err(ChildError::InvalidSpec)?;
        if let Some(i) = self.index_of(&spec.id) {
            return Err(match &self.children[i].pid {
                ChildPid::Running(pid) => ChildError::AlreadyStarted(pid.clone()),
                _ => ChildError::AlreadyPresent,
            });
        }
        match self.start_spec(&spec, None, me).await {
            StartResult::Started(pid) => {
                self.children.push(Child {
                    spec,
                    pid: ChildPid::Running(pid.clone()),
                });
                Ok(Some(pid))
            }
            StartResult::Ignore => {
                if spec.restart != Restart::Temporary {
                    self.children.push(Child {
                        spec,
                        pid: ChildPid::Undefined,
                    });
                }
                Ok(None)
            }
            StartResult::Failed(reason) => Err(ChildError::StartFailed(reason)),
        }
    }

    async fn add_dynamic(
        &mut self,
        arg: Arc<dyn Any + Send + Sync>,
        me: &ActorHandle<Self>,
    ) -> Result<Option<Pid>, ChildError> {
        let Some(template) = self.template.clone() else {
            return Err(ChildError::NotSimpleOneForOne);
        };
        match self.start_spec(&template, Some(&arg), me).await {
            StartResult::Started(pid) => {
                let k = self.next_key;
                self.next_key += 1;
                self.by_pid.insert(pid.id(), k);
                self.dynamic.insert(
                    k,
                    DynChild {
                        pid: ChildPid::Running(pid.clone()),
                        last: Some(pid.id()),
                        arg,
                    },
                );
                Ok(Some(pid))
            }
            StartResult::Ignore => Ok(None),
            StartResult::Failed(reason) => Err(ChildError::StartFailed(reason)),
        }
    }

    async fn remove_child(
        &mut self,
        target: msg::Target,
        me: &ActorHandle<Self>,
    ) -> Result<(), ChildError> {
        match target {
            msg::Target::Id(_) if self.is_simple() => Err(ChildError::SimpleOneForOne),
            msg::Target::Id(id) => {
                let i = self.index_of(&id).ok_or(ChildError::NotFound)?;
                self.terminate_at(i, me).await;
                self.del_child(&Key::Static(id));
                Ok(())
            }
            msg::Target::Pid(pid) if self.is_simple() => {
                let key = self.by_pid.get(&pid.id()).copied().or_else(|| {
                    self.dynamic
                        .iter()
                        .find(|(_, d)| d.last == Some(pid.id()))
                        .map(|(k, _)| *k)
                });
                let Some(k) = key else {
                    // A process that has gone: as OTP, `ok`.
                    return if pid.is_alive() {
                        Err(ChildError::NotFound)
                    } else {
                        Ok(())
                    };
                };
                if let Some(running) = self.dynamic.get(&k).and_then(|d| d.pid.running()) {
                    let running = running.clone();
                    let how = self
                        .template
                        .as_ref()
                        .map_or(Shutdown::Infinity, |t| t.shutdown);
                    let reason = self.shutdown_child(&running, how, me).await;
                    self.emit(SupervisorEvent::ChildExited {
                        supervisor: &self.name,
                        child: self.template.as_ref().map_or("", |t| &t.id),
                        arg: self.arg_of(&Key::Dynamic(k)),
                        pid: running.id(),
                        reason: &reason,
                    });
                }
                self.del_child(&Key::Dynamic(k));
                Ok(())
            }
            // Only a simple_one_for_one supervisor knows its children by pid: OTP's
            // `find_child/2` looks a pid up as a child id elsewhere, and finds none.
            msg::Target::Pid(_) => Err(ChildError::NotFound),
        }
    }

    async fn restart_stopped(
        &mut self,
        id: Arc<str>,
        me: &ActorHandle<Self>,
    ) -> Result<Option<Pid>, ChildError> {
        if self.is_simple() {
            return Err(ChildError::SimpleOneForOne);
        }
        let i = self.index_of(&id).ok_or(ChildError::NotFound)?;
        match self.children[i].pid {
            ChildPid::Running(_) => return Err(ChildError::Running),
            ChildPid::Restarting => return Err(ChildError::Restarting),
            ChildPid::Undefined => {}
        }
        let spec = self.children[i].spec.clone();
        match self.start_spec(&spec, None, me).await {
            StartResult::Started(pid) => {
                self.children[i].pid = ChildPid::Running(pid.clone());
                Ok(Some(pid))
            }
            StartResult::Ignore => Ok(None),
            StartResult::Failed(reason) => Err(ChildError::StartFailed(reason)),
        }
    }

    fn which(&self) -> Vec<ChildInfo> {
        if let Some(template) = &self.template {
            return self
                .dynamic
                .values()
                .map(|d| ChildInfo {
                    id: template.id.clone(),
                    arg: Some(d.arg.clone()),
                    pid: d.pid.running().cloned(),
                    state: d.pid.state(),
                    kind: template.kind,
                })
                .collect();
        }
        self.children
            .iter()
            .rev()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                arg: None,
                pid: c.pid.running().cloned(),
                state: c.pid.state(),
                kind: c.spec.kind,
            })
            .collect()
    }

    fn count(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        if let Some(template) = &self.template {
            counts.specs = 1;
            counts.active = self.dynamic.len() - self.dynamic_restarts;
            match template.kind {
                ChildKind::Worker => counts.workers = self.dynamic.len(),
                ChildKind::Supervisor => counts.supervisors = self.dynamic.len(),
            }
            return counts;
        }
        for c in &self.children {
            counts.specs += 1;
            if c.pid.running().is_some_and(Pid::is_alive) {
                counts.active += 1;
            }
            match c.spec.kind {
                ChildKind::Worker => counts.workers += 1,
                ChildKind::Supervisor => counts.supervisors += 1,
            }
        }
        counts
    }
}

/// Starts a child supervisor linked to `me` and waits for its children to start.
async fn start_child_supervisor(me: &ActorHandle<Supervisor>, spec: SupervisorSpec) -> StartResult {
    let sup = match me.spawn_link(Supervisor::new(spec)) {
        Ok(sup) => sup,
        Err(e) => return StartResult::Failed(ExitReason::error(e)),
    };
    match sup.ask_async(msg::Init).await {
        Ok(Ok(_)) => StartResult::Started(sup.pid()),
        Ok(Err(reason)) => StartResult::Failed(reason),
        // It died while starting (it was killed): its exit reason says why.
        Err(_) => StartResult::Failed(sup.pid().exit_reason().await.unwrap_or(ExitReason::NoProc)),
    }
}

impl Actor for Supervisor {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.trap_exit(true);
        self.me = Some(ctx.id());
        self.parent = ctx.parent().map(Pid::id);
    }

    fn handle_exit(&mut self, ctx: &mut Ctx<Self>, from: Option<ActorId>, reason: ExitReason) {
        let event = match from {
            // From the parent, or from outside the actor system.
            None => Event::ParentExit(reason),
            Some(id) if Some(id) == self.parent => Event::ParentExit(reason),
            Some(id) if self.is_current_child(id) => Event::ChildExit(id, reason),
            // A process that is no longer a child (one we stopped ourselves), or a linked
            // actor that is not our child: ignored, as OTP does.
            Some(_) => return,
        };
        // Our own mailbox is unbounded and open while we run.
        let _ = ctx.myself().tell_async(event);
    }

    fn stopped(&mut self, reason: &ExitReason) {
        if let (true, Some(pid)) = (self.started, self.me) {
            self.emit(SupervisorEvent::Stopped {
                supervisor: &self.name,
                pid,
                reason,
            });
        }
    }
}

impl AsyncHandler<msg::Init> for Supervisor {
    type Reply = Result<SupervisorRef, ExitReason>;

    async fn handle(&mut self, _: msg::Init, me: ActorHandle<Self>) -> Self::Reply {
        match self.init(&me).await {
            Ok(()) => {
                self.started = true;
                Ok(SupervisorRef {
                    actor: me.myself().clone(),
                })
            }
            Err(reason) => {
                me.stop_with(reason.clone());
                Err(reason)
            }
        }
    }
}

impl AsyncHandler<Event> for Supervisor {
    type Reply = ();

    async fn handle(&mut self, event: Event, me: ActorHandle<Self>) {
        let flow = match event {
            Event::ChildExit(from, reason) => self.child_exited(from, reason, &me).await,
            Event::ParentExit(reason) => Flow::Stop(reason),
            Event::TryAgain(key) => self.try_again(key, &me).await,
        };
        self.settle(flow, &me).await;
    }
}

impl AsyncHandler<msg::StartChild> for Supervisor {
    type Reply = Result<Option<Pid>, ChildError>;

    async fn handle(&mut self, msg: msg::StartChild, me: ActorHandle<Self>) -> Self::Reply {
        self.add_child(msg.0, &me).await
    }
}

impl AsyncHandler<msg::StartDynamic> for Supervisor {
    type Reply = Result<Option<Pid>, ChildError>;

    async fn handle(&mut self, msg: msg::StartDynamic, me: ActorHandle<Self>) -> Self::Reply {
        self.add_dynamic(msg.0, &me).await
    }
}

impl AsyncHandler<msg::TerminateChild> for Supervisor {
    type Reply = Result<(), ChildError>;

    async fn handle(&mut self, msg: msg::TerminateChild, me: ActorHandle<Self>) -> Self::Reply {
        self.remove_child(msg.0, &me).await
    }
}

impl AsyncHandler<msg::RestartChild> for Supervisor {
    type Reply = Result<Option<Pid>, ChildError>;

    async fn handle(&mut self, msg: msg::RestartChild, me: ActorHandle<Self>) -> Self::Reply {
        self.restart_stopped(msg.0, &me).await
    }
}

impl Handler<msg::DeleteChild> for Supervisor {
    type Reply = Result<(), ChildError>;

    fn handle(&mut self, msg: msg::DeleteChild, _: &mut Ctx<Self>) -> Self::Reply {
        if self.is_simple() {
            return Err(ChildError::SimpleOneForOne);
        }
        let i = self.index_of(&msg.0).ok_or(ChildError::NotFound)?;
        match self.children[i].pid {
            ChildPid::Running(_) => Err(ChildError::Running),
            ChildPid::Restarting => Err(ChildError::Restarting),
            ChildPid::Undefined => {
                self.children.remove(i);
                Ok(())
            }
        }
    }
}

impl Handler<msg::WhichChildren> for Supervisor {
    type Reply = Result<Vec<ChildInfo>, ChildError>;

    fn handle(&mut self, _: msg::WhichChildren, _: &mut Ctx<Self>) -> Self::Reply {
        Ok(self.which())
    }
}

impl Handler<msg::CountChildren> for Supervisor {
    type Reply = Result<ChildCounts, ChildError>;

    fn handle(&mut self, _: msg::CountChildren, _: &mut Ctx<Self>) -> Self::Reply {
        Ok(self.count())
    }
}
