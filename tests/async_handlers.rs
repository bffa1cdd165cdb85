//! Async handlers: an actor awaits inside a handler; meanwhile it takes no user message, a
//! kill still stops it, panics are crashes, and its waker works on every driver.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use airssys_rt::{
    Actor, ActorHandle, ActorId, ActorRef, AskError, AsyncHandler, Ctx, ExitReason, Handler,
    ManualDriver, MonitorRef, ThreadPool,
};

/// A future the test opens by hand.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);
impl Gate {
    fn open(&self) {
        let waker = {
            let mut g = self.0.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}
impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.0.lock().unwrap();
        if g.0 {
            Poll::Ready(())
        } else {
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Counts drops of the pending future's captured state.
struct DropFlag(Arc<AtomicU64>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Worker {
    log: Vec<String>,
}
impl Actor for Worker {}

struct Wait(Gate, &'static str, Arc<AtomicU64>);
impl AsyncHandler<Wait> for Worker {
    type Reply = Vec<String>;
    async fn handle(
        &mut self,
        Wait(gate, name, drops): Wait,
        _me: ActorHandle<Self>,
    ) -> Vec<String> {
        let _flag = DropFlag(drops);
        self.log.push(format!("{name} started"));
        gate.await;
        self.log.push(format!("{name} done"));
        self.log.clone()
    }
}

struct Note(&'static str);
impl Handler<Note> for Worker {
    type Reply = Vec<String>;
    fn handle(&mut self, Note(n): Note, _: &mut Ctx<Self>) -> Vec<String> {
        self.log.push(n.to_string());
        self.log.clone()
    }
}

struct Boom;
impl AsyncHandler<Boom> for Worker {
    type Reply = ();
    async fn handle(&mut self, _: Boom, _me: ActorHandle<Self>) {
        std::future::ready(()).await;
        panic!("async boom");
    }
}

#[test]
fn while_awaiting_no_other_user_message_is_handled() {
    let d = ManualDriver::new(1);
    let w = d.system().spawn(Worker::default()).unwrap();
    let gate = Gate::default();
    let drops = Arc::new(AtomicU64::new(0));
    let first = w.ask_async(Wait(gate.clone(), "a", drops.clone()));
    let second = w.ask(Note("b"));
    // It goes idle: a queued user message does not bring an awaiting actor back run after run.
    let runs = d.run_steps(100);
    assert!(runs < 100, "the awaiting actor kept running ({runs} runs)");
    assert_eq!(d.pending(), 0);
    assert_eq!(first.try_take(), None, "still awaiting");
    assert_eq!(
        second.try_take(),
        None,
        "a user message overtook the pending handler"
    );
    gate.open();
    d.run_until_idle();
    assert_eq!(
        first.try_take(),
        Some(Ok(vec!["a started".into(), "a done".into()]))
    );
    assert_eq!(
        second.try_take(),
        Some(Ok(vec!["a started".into(), "a done".into(), "b".into()]))
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_kill_while_awaiting_drops_the_future_and_fails_the_ask() {
    let d = ManualDriver::new(2);
    let w = d.system().spawn(Worker::default()).unwrap();
    let drops = Arc::new(AtomicU64::new(0));
    let pending = w.ask_async(Wait(Gate::default(), "a", drops.clone()));
    d.run_until_idle();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    w.kill();
    d.run_until_idle();
    assert!(!w.is_alive());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the pending future was dropped once"
    );
    assert_eq!(pending.try_take(), Some(Err(AskError::ActorDied)));
}

struct Watcher(Arc<Mutex<Vec<String>>>);
impl Actor for Watcher {
    fn handle_down(&mut self, _: &mut Ctx<Self>, _: MonitorRef, _: ActorId, reason: ExitReason) {
        self.0.lock().unwrap().push(reason.to_string());
    }
}
struct Watch(airssys_rt::Pid);
impl Handler<Watch> for Watcher {
    type Reply = ();
    fn handle(&mut self, Watch(p): Watch, ctx: &mut Ctx<Self>) {
        ctx.monitor(&p);
    }
}

#[test]
fn a_panic_inside_an_async_handler_is_a_crash() {
    let d = ManualDriver::new(3);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let w = d.system().spawn(Worker::default()).unwrap();
    let watcher = d.system().spawn(Watcher(seen.clone())).unwrap();
    watcher.tell(Watch(w.pid())).unwrap();
    d.run_until_idle();
    w.tell_async(Boom).unwrap();
    d.run_until_idle();
    assert!(!w.is_alive());
    assert_eq!(*seen.lock().unwrap(), ["panicked: async boom"]);
}

#[test]
fn a_trapping_actor_gets_exit_signals_after_its_await() {
    struct Trap(Arc<Mutex<Vec<String>>>);
    impl Actor for Trap {
        fn started(&mut self, ctx: &mut Ctx<Self>) {
            ctx.trap_exit(true);
        }
        fn handle_exit(&mut self, _: &mut Ctx<Self>, _: Option<ActorId>, r: ExitReason) {
            self.0.lock().unwrap().push(format!("exit {r}"));
        }
    }
    struct Hold(Gate);
    impl AsyncHandler<Hold> for Trap {
        type Reply = ();
        async fn handle(&mut self, Hold(g): Hold, _: ActorHandle<Self>) {
            g.await;
            self.0.lock().unwrap().push("awaited".into());
        }
    }
    let d = ManualDriver::new(4);
    let log = Arc::new(Mutex::new(Vec::new()));
    let t = d.system().spawn(Trap(log.clone())).unwrap();
    let gate = Gate::default();
    t.tell_async(Hold(gate.clone())).unwrap();
    d.run_until_idle();
    assert!(t.pid().exit(ExitReason::error("outside")));
    d.run_until_idle();
    assert!(
        log.lock().unwrap().is_empty(),
        "the hook ran while the handler held the actor"
    );
    gate.open();
    d.run_until_idle();
    assert_eq!(*log.lock().unwrap(), ["awaited", "exit error: outside"]);
    assert!(t.is_alive());
}

/// Awaits another actor's reply inside its handler: the reply's waker is this actor's.
struct Proxy(ActorRef<Worker>);
impl Actor for Proxy {}
impl AsyncHandler<&'static str> for Proxy {
    type Reply = usize;
    async fn handle(&mut self, note: &'static str, _: ActorHandle<Self>) -> usize {
        self.0
            .ask(Note(note))
            .await
            .map(|log| log.len())
            .unwrap_or(0)
    }
}

#[test]
fn awaiting_another_actors_reply_on_every_driver() {
    let d = ManualDriver::new(5);
    let w = d.system().spawn(Worker::default()).unwrap();
    let p = d.system().spawn(Proxy(w)).unwrap();
    let r = p.ask_async("x");
    d.run_until_idle();
    assert_eq!(r.try_take(), Some(Ok(1)));

    let pool = ThreadPool::new(2);
    let w = pool.system().spawn(Worker::default()).unwrap();
    let p = pool.system().spawn(Proxy(w)).unwrap();
    for i in 1..=100 {
        assert_eq!(p.ask_async("y").wait(Duration::from_secs(30)), Ok(i));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let driver = airssys_rt::FutureDriver::new();
    for _ in 0..2 {
        rt.spawn(driver.worker());
    }
    let w = driver.system().spawn(Worker::default()).unwrap();
    let p = driver.system().spawn(Proxy(w)).unwrap();
    let got = rt.block_on(async { p.ask_async("z").await });
    assert_eq!(got, Ok(1));
    driver.stop();
}

/// A supervisor-like actor: traps exits and shuts a linked child down synchronously, awaiting
/// its exit inside a handler (its own exit signals are held back meanwhile).
struct Parent {
    child: Option<airssys_rt::Pid>,
    log: Arc<Mutex<Vec<String>>>,
}
impl Actor for Parent {
    fn started(&mut self, ctx: &mut Ctx<Self>) {
        ctx.trap_exit(true);
        let child = ctx.spawn_link(Worker::default()).unwrap();
        self.child = Some(child.pid());
    }
    fn handle_exit(&mut self, _: &mut Ctx<Self>, _: Option<ActorId>, reason: ExitReason) {
        self.log
            .lock()
            .unwrap()
            .push(format!("exit signal {reason}"));
    }
}
struct ShutdownChild;
impl AsyncHandler<ShutdownChild> for Parent {
    type Reply = Result<ExitReason, AskError>;
    async fn handle(
        &mut self,
        _: ShutdownChild,
        _: ActorHandle<Self>,
    ) -> Result<ExitReason, AskError> {
        let child = self.child.take().unwrap();
        let exited = child.exit_reason();
        child.stop();
        let reason = exited.await;
        self.log
            .lock()
            .unwrap()
            .push(format!("child exited {:?}", reason));
        reason
    }
}

#[test]
fn a_handler_can_await_a_linked_childs_exit() {
    let d = ManualDriver::new(6);
    let log = Arc::new(Mutex::new(Vec::new()));
    let p = d
        .system()
        .spawn(Parent {
            child: None,
            log: log.clone(),
        })
        .unwrap();
    d.run_until_idle();
    let reply = p.ask_async(ShutdownChild);
    d.run_until_idle();
    assert_eq!(reply.try_take(), Some(Ok(Ok(ExitReason::Shutdown))));
    // The link's exit signal was held while the handler awaited, then delivered.
    assert_eq!(
        *log.lock().unwrap(),
        ["child exited Ok(shutdown)", "exit signal shutdown"]
    );
}
