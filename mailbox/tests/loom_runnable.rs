//! Loom model of the runtime's borrowed `Runnable` (airssys-rt, `src/actor.rs`,
//! `Runnable::new`), against the real mailbox.
//!
//! The runtime's rule: a runnable made while its cell's mailbox is open *borrows* the cell (it
//! takes no reference: the system's table holds one from spawn until the actor terminates);
//! one made once the mailbox is closed takes a reference of its own. A terminating run keeps a
//! reference of its own, closes the mailbox, then drops the table's, and parks the mailbox.
//! The argument that a borrow never outlives the cell: a run needs the token, only one token
//! exists, and a token taken after the terminating run parked comes from an RMW that reads
//! that park (Acquire against its Release), so its holder sees the close and takes a
//! reference instead of borrowing.
//!
//! The model makes the runtime's reference count explicit (`Cell::refs`) and the cell's memory
//! a loom `UnsafeCell` that the last release writes (the deallocation) and every use through a
//! runnable reads. A use after the free is then either unordered with it (loom reports the
//! race) or ordered after it (the model's assert fails).
//!
//! (a) `a_runnable_borrows_its_cell_only_while_the_table_holds_it`: a run terminates the
//!     actor while another thread, holding the actor's last other reference (an `ActorRef`),
//!     sends to it, takes the token if the send found the mailbox parked, makes the runnable,
//!     drops its reference, and runs the runnable. A third sends a wake-up (a timer's).
//!     Every reference is released exactly once and no runnable touches a freed cell.
//!
//! Mutants: `runnable_borrows_when_closed` (the model's `Runnable::new` skips its look at the
//! close), and the mailbox's own `finish_relaxed` (the park does not Release the close).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p airssys-rt-mailbox --release --test loom_runnable`
#![cfg(loom)]

use airssys_rt_mailbox::{Boxed, Mailbox, PushError, RunToken};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

type Mb = Mailbox<Boxed<usize>, Boxed<usize>>;

/// The user message that makes the actor stop.
const STOP: usize = 0;

/// Whether the model's own mutant `name` is switched on (the mailbox's are switched on by the
/// same variable, inside the crate).
fn mutant(name: &str) -> bool {
    std::env::var("AIRSSYS_MUTANT").as_deref() == Ok(name)
}

/// An actor's cell, with its reference count made explicit.
struct Cell {
    mailbox: Mb,
    /// The runtime's strong references: the table's, handles', owned runnables', and a
    /// terminating run's own.
    refs: AtomicUsize,
    /// `true` while the cell is allocated: the last release writes `false`.
    memory: UnsafeCell<bool>,
    /// The runner's state: stopped (only runs touch it).
    stopped: UnsafeCell<bool>,
}

impl Cell {
    /// `Arc::clone` (the caller holds a reference).
    fn acquire(&self) {
        self.refs.fetch_add(1, Ordering::Relaxed);
    }

    /// `Arc::drop`: the last release frees the cell.
    fn release(&self) {
        if self.refs.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            // SAFETY: the last reference is gone: nothing may use the cell any more (that is
            // what this model checks; loom reports a use that is not ordered before this).
            self.memory.with_mut(|m| unsafe { *m = false });
        }
    }

    /// A use of the cell's memory (through a runnable).
    fn touch(&self) {
        // SAFETY: a read, racing (loom reports it) only with the release that frees the cell.
        let allocated = self.memory.with(|m| unsafe { *m });
        assert!(allocated, "a runnable used its cell after it was freed");
    }
}

/// The runtime's `Runnable`: the token, and the cell, borrowed or owned. (The loom `Arc` here
/// only keeps the model's memory valid; the runtime's references are `Cell::refs`, and a use
/// after their last release is caught through `Cell::memory` whatever the `Arc` holds.)
struct Runnable {
    cell: Arc<Cell>,
    token: RunToken,
    owned: bool,
}

impl Runnable {
    /// `Runnable::new`: the caller holds a reference to the cell (an `&Arc`).
    fn new(cell: &Arc<Cell>, token: RunToken) -> Self {
        let owned = cell.mailbox.is_closed() && !mutant("runnable_borrows_when_closed");
        if owned {
            cell.acquire();
        }
        Runnable {
            cell: cell.clone(),
            token,
            owned,
        }
    }

    /// `RunCell::run` (`Cell::run_arc`): handles what is queued; on `STOP`, terminates (keeps a
    /// reference, closes, drops the table's). Returns the runnable it scheduled if the mailbox
    /// handed the token back: the caller runs it after this run has returned (and released
    /// what it held), as a host's queue would.
    fn run(self) -> Option<Runnable> {
        let cell = &self.cell;
        cell.touch();
        let mut run = cell.mailbox.begin_run(self.token);
        // SAFETY: runs of one mailbox are exclusive and ordered by the token's hand-over (the
        // mailbox models check that); this is the runner's state.
        let stopped = cell.stopped.with(|s| unsafe { *s });
        let mut stop = false;
        while let Some(msg) = run.pop() {
            if let airssys_rt_mailbox::Received::User(m) = msg {
                stop |= !stopped && *m == STOP;
            }
        }
        let next = if stopped || stop {
            // A reference of its own for the rest of the run (`_keep`).
            cell.acquire();
            if stop {
                // `terminate`: the close, then the table's reference dropped (`slab.remove`).
                // SAFETY: as above (the runner's state).
                cell.stopped.with_mut(|s| unsafe { *s = true });
                run.close();
                cell.release();
                // Dead letters: what raced with the close.
                while run.pop().is_some() {}
            }
            let next = run.finish(false).map(|token| Runnable::new(cell, token));
            cell.release();
            next
        } else {
            run.finish(false).map(|token| Runnable::new(cell, token))
        };
        if self.owned {
            self.cell.release();
        }
        next
    }

    /// Runs this runnable and every one it schedules, on this thread.
    fn run_all(self) {
        let mut next = self.run();
        while let Some(r) = next {
            // A run handed back because a sender was between its two steps comes back at once
            // otherwise: let the sender go on (as a host's queue would, behind other work).
            thread::yield_now();
            next = r.run();
        }
    }
}

#[test]
fn a_runnable_borrows_its_cell_only_while_the_table_holds_it() {
    loom::model(|| {
        let cell = Arc::new(Cell {
            mailbox: Mb::unbounded(),
            // The table's, the sender's `ActorRef`, the timer's `Pid`.
            refs: AtomicUsize::new(3),
            memory: UnsafeCell::new(true),
            stopped: UnsafeCell::new(false),
        });
        // The spawn's first run has happened: the mailbox is idle. The stop goes in first.
        let token = cell
            .mailbox
            .try_push(Boxed::new(STOP))
            .expect("open")
            .expect("idle: the push takes the token");
        let first = Runnable::new(&cell, token);
        assert!(!first.owned, "open: the runnable borrows");
        let runner = thread::spawn(move || first.run_all());

        let c = cell.clone();
        let sender = thread::spawn(move || {
            match c.mailbox.try_push(Boxed::new(1)) {
                Ok(Some(token)) => {
                    let runnable = Runnable::new(&c, token);
                    // The `ActorRef` goes; the runnable is run later (here: next).
                    c.release();
                    runnable.run_all();
                }
                Ok(None) => c.release(),
                Err(PushError::Closed(_)) => c.release(),
                Err(PushError::Full(_)) => unreachable!("unbounded"),
            }
        });

        let c = cell.clone();
        let timer = thread::spawn(move || {
            let runnable = c.mailbox.notify().map(|token| Runnable::new(&c, token));
            c.release();
            if let Some(r) = runnable {
                r.run_all();
            }
        });

        for t in [runner, sender, timer] {
            t.join().unwrap();
        }
        assert_eq!(
            cell.refs.load(Ordering::SeqCst),
            0,
            "a reference was never released"
        );
        let allocated = cell.memory.with(|m| {
            // SAFETY: every thread has been joined: nothing else touches the cell.
            unsafe { *m }
        });
        assert!(!allocated, "the cell was never freed");
    });
}
