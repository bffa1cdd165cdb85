//! Timers: `send_after`, `send_interval`, cancel, and ask timeouts.
//!
//! Time comes from the driver. Real drivers (the thread pool, the future driver) use a
//! real-time timer thread, started on the first timer. The [`ManualDriver`](crate::ManualDriver)
//! uses virtual time: nothing fires until the test calls
//! [`advance`](crate::ManualDriver::advance), so tests move time instead of sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// What a timer does when it fires. Returns the delay before it fires again (an interval), or
/// `None` (a one-shot, or the target is gone).
pub(crate) type TimerAction = Box<dyn FnMut() -> Option<Duration> + Send>;

/// A handle to cancel a timer. Dropping it does not cancel the timer.
#[derive(Clone, Debug)]
pub struct TimerRef {
    cancelled: Arc<AtomicBool>,
}

impl TimerRef {
    /// Cancels the timer: it will not fire (again). Returns `false` if it was already
    /// cancelled. A one-shot timer that already fired is unaffected.
    pub fn cancel(&self) -> bool {
        !self.cancelled.swap(true, Ordering::AcqRel)
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

struct Entry {
    /// When it is due, since the clock's origin.
    at: Duration,
    seq: u64,
    cancelled: Arc<AtomicBool>,
    action: TimerAction,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A clock and a queue of timers.
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
    seq: AtomicU64,
    kind: Kind,
}

enum Kind {
    /// Real time since `origin`; a thread fires the timers.
    Real {
        origin: Instant,
        thread: std::sync::Once,
        stop: AtomicBool,
    },
    /// Virtual time, moved by `advance`.
    Virtual { now: Mutex<Duration> },
}

impl Timers {
    pub(crate) fn real() -> Arc<Self> {
        Arc::new(Self::with(Kind::Real {
            origin: Instant::now(),
            thread: std::sync::Once::new(),
            stop: AtomicBool::new(false),
        }))
    }

    pub(crate) fn virtual_time() -> Arc<Self> {
        Arc::new(Self::with(Kind::Virtual {
            now: Mutex::new(Duration::ZERO),
        }))
    }

    fn with(kind: Kind) -> Self {
        Self {
            heap: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
            seq: AtomicU64::new(0),
            kind,
        }
    }

    /// Time since the clock's origin.
    pub(crate) fn now(&self) -> Duration {
        match &self.kind {
            Kind::Real { origin, .. } => origin.elapsed(),
            Kind::Virtual { now } => *now.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Runs `action` after `delay` (and again after each delay it returns).
    pub(crate) fn start(self: &Arc<Self>, delay: Duration, action: TimerAction) -> TimerRef {
        let cancelled = Arc::new(AtomicBool::new(false));
        self.insert(Entry {
            at: self.now() + delay,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            cancelled: cancelled.clone(),
            action,
        });
        if let Kind::Real { thread, .. } = &self.kind {
            thread.call_once(|| {
                let weak = Arc::downgrade(self);
                thread::Builder::new()
                    .name("airssys-timers".into())
                    .spawn(move || run_real(&weak))
                    .expect("spawn the timer thread");
            });
        }
        TimerRef { cancelled }
    }

    fn insert(&self, entry: Entry) {
        self.heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Reverse(entry));
        self.changed.notify_one();
    }

    /// Takes the earliest entry due at `now`, if any.
    fn pop_due(&self, now: Duration) -> Option<Entry> {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        match heap.peek() {
            Some(Reverse(e)) if e.at <= now => heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Fires an entry; re-arms it if it is an interval.
    fn fire(&self, mut entry: Entry) {
        if entry.cancelled.load(Ordering::Acquire) {
            return;
        }
        if let Some(again) = (entry.action)() {
            if !entry.cancelled.load(Ordering::Acquire) {
                entry.at += again.max(Duration::from_nanos(1));
                entry.seq = self.seq.fetch_add(1, Ordering::Relaxed);
                self.insert(entry);
            }
        }
    }

    /// Virtual time: moves the clock forward by `by`, firing every timer due on the way, in
    /// order of their deadlines. Returns how many fired.
    pub(crate) fn advance(&self, by: Duration) -> usize {
        let Kind::Virtual { now } = &self.kind else {
            return 0;
        };
        let target = *now.lock().unwrap_or_else(PoisonError::into_inner) + by;
        let mut fired = 0;
        loop {
            let next = {
                let heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
                heap.peek()
                    .map(|Reverse(e)| e.at)
                    .filter(|at| *at <= target)
            };
            let Some(at) = next else { break };
            *now.lock().unwrap_or_else(PoisonError::into_inner) = at;
            while let Some(entry) = self.pop_due(at) {
                fired += usize::from(!entry.cancelled.load(Ordering::Acquire));
                self.fire(entry);
            }
        }
        *now.lock().unwrap_or_else(PoisonError::into_inner) = target;
        fired
    }

    /// The deadline of the earliest timer that has not been cancelled (cancelled ones at the
    /// front are dropped on the way).
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(Reverse(e)) = heap.peek() {
            if !e.cancelled.load(Ordering::Acquire) {
                return Some(e.at);
            }
            heap.pop();
        }
        None
    }

    /// Timers waiting (cancelled ones included until their deadline).
    pub(crate) fn pending(&self) -> usize {
        self.heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        if let Kind::Real { stop, .. } = &self.kind {
            stop.store(true, Ordering::SeqCst);
            self.changed.notify_all();
        }
    }
}

fn run_real(timers: &std::sync::Weak<Timers>) {
    loop {
        let Some(t) = timers.upgrade() else { return };
        let Kind::Real { stop, .. } = &t.kind else {
            return;
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let now = t.now();
        if let Some(entry) = t.pop_due(now) {
            t.fire(entry);
            continue;
        }
        let heap = t.heap.lock().unwrap_or_else(PoisonError::into_inner);
        // Sleep until the next deadline, a new timer, or (at most) a second, so that the
        // thread notices when the system is gone.
        let wait = heap
            .peek()
            .map_or(Duration::from_secs(1), |Reverse(e)| {
                e.at.saturating_sub(now)
            })
            .min(Duration::from_secs(1));
        drop(
            t.changed
                .wait_timeout(heap, wait)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}
