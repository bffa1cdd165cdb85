//! Memory stays flat while a supervisor stops and restarts children for ever: nothing of a
//! dead child (its cell, its link) is kept by the supervisor.

use std::alloc::{GlobalAlloc, Layout, System as SystemAlloc};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use airssys_rt::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use airssys_rt::{Actor, Ctx, ExitReason, Handler, ManualDriver};

/// Net bytes allocated by the whole process.
static NET: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        NET.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { SystemAlloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { SystemAlloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Worker;
impl Actor for Worker {}
struct Crash;
impl Handler<Crash> for Worker {
    type Reply = ();
    fn handle(&mut self, _: Crash, ctx: &mut Ctx<Self>) {
        ctx.stop_with(ExitReason::error("boom"));
    }
}

#[test]
fn stopping_and_restarting_children_does_not_grow_memory() {
    let d = ManualDriver::fifo();
    let starting = Supervisor::start(
        d.system(),
        SupervisorSpec::new(Strategy::OneForAll)
            .intensity(u32::MAX, Duration::from_secs(1))
            .child(ChildSpec::worker("a", |s| s.spawn(Worker).into()))
            .child(ChildSpec::worker("b", |s| s.spawn(Worker).into())),
    );
    d.run_until_quiescent(10);
    let sup = starting.try_take().unwrap().unwrap();
    let cycle = |d: &ManualDriver| {
        // A crash (group restart: b is stopped by the supervisor), then terminate/restart.
        let which = sup.which_children();
        d.run_until_idle();
        let a = which.try_take().unwrap().unwrap()[1].pid.clone().unwrap();
        a.downcast::<Worker>().unwrap().tell(Crash).unwrap();
        d.run_until_quiescent(10);
        let stop = sup.terminate_child("b");
        let again = sup.restart_child("b");
        d.run_until_quiescent(10);
        assert_eq!(stop.try_take(), Some(Ok(())));
        assert!(again.try_take().unwrap().unwrap().is_some());
        // Let virtual time prune the restart window.
        d.advance(Duration::from_secs(2));
    };
    for _ in 0..500 {
        cycle(&d);
    }
    let before = NET.load(Ordering::Relaxed);
    for _ in 0..2000 {
        cycle(&d);
    }
    let grown = NET.load(Ordering::Relaxed) - before;
    // 2000 cycles stop and start 8000 children: a leak of even one pointer-sized record per
    // child would show as >= 64 KiB.
    assert!(grown < 64 * 1024, "grew by {grown} bytes over 2000 cycles");
    sup.stop();
    d.run_until_quiescent(10);
    assert_eq!(d.system().stats().live, 0);
}
