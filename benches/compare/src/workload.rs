//! The workloads, their sizes, and the pieces of their logic that every system shares (so that
//! every system does exactly the same work): the expected results, the fork-join computation,
//! the random numbers of Savina big, the colours of Savina chameneos.

use crate::harness::{Bench, Threads};
use crate::systems::Contender;

/// The size of every workload. [`Sizes::full`] is the documented default; [`Sizes::quick`] is a
/// tenth of it (for trying the harness out).
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Round trips per ping-pong run.
    pub round_trips: u64,
    /// Messages per fan-in run (split evenly between the producers).
    pub fan_in: u64,
    /// Actors per spawn run.
    pub spawns: u64,
    /// Idle actors in the memory probe.
    pub idle: usize,
    /// Actors in the thread ring.
    pub ring_len: usize,
    /// Hops per thread-ring run.
    pub ring_hops: u64,
    /// Increments per counting run.
    pub counting: u64,
    /// Actors in fork-join.
    pub fj_actors: usize,
    /// Messages each fork-join actor receives.
    pub fj_per_actor: u64,
    /// Actors in big.
    pub big_actors: usize,
    /// Pings each big actor sends (each answered by a pong).
    pub big_pings: u64,
    /// Chameneos (plus one mall).
    pub chameneos: usize,
    /// Meetings per chameneos run.
    pub meetings: u64,
}

impl Sizes {
    /// The default sizes (what `results.md` reports).
    pub fn full() -> Self {
        Self {
            round_trips: 100_000,
            fan_in: 400_000,
            spawns: 100_000,
            idle: 100_000,
            ring_len: 503,
            ring_hops: 1_000_000,
            counting: 1_000_000,
            fj_actors: 40,
            fj_per_actor: 10_000,
            big_actors: 500,
            big_pings: 400,
            chameneos: 100,
            meetings: 100_000,
        }
    }

    /// A tenth of [`full`](Self::full).
    pub fn quick() -> Self {
        Self::scaled(0.1)
    }

    /// [`full`](Self::full) with every count scaled by `f` (the ring keeps its 503 actors, and
    /// fork-join, big and chameneos their actors).
    pub fn scaled(f: f64) -> Self {
        let s = Self::full();
        let n = |v: u64| ((v as f64 * f).round() as u64).max(1);
        Self {
            round_trips: n(s.round_trips),
            fan_in: n(s.fan_in / 4) * 4,
            spawns: n(s.spawns),
            idle: n(s.idle as u64) as usize,
            ring_hops: n(s.ring_hops),
            counting: n(s.counting),
            fj_per_actor: n(s.fj_per_actor),
            big_pings: n(s.big_pings),
            meetings: n(s.meetings),
            ..s
        }
    }
}

/// One row group of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Ping-pong on one thread.
    PingPongOne,
    /// Ping-pong on two workers.
    PingPongTwo,
    /// Fan-in from one producer thread.
    FanIn1,
    /// Fan-in from four producer threads.
    FanIn4,
    /// Spawn, one message, stop.
    Spawn,
    /// Memory per idle actor (two rows: heap and RSS).
    Memory,
    /// Savina thread ring.
    Ring,
    /// Savina counting.
    Counting,
    /// Savina fork-join throughput.
    ForkJoin,
    /// Savina big.
    Big,
    /// Savina chameneos.
    Chameneos,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 11] = [
        Workload::PingPongOne,
        Workload::PingPongTwo,
        Workload::FanIn1,
        Workload::FanIn4,
        Workload::Spawn,
        Workload::Memory,
        Workload::Ring,
        Workload::Counting,
        Workload::ForkJoin,
        Workload::Big,
        Workload::Chameneos,
    ];

    /// The name `--filter` matches (a substring of it selects the workload).
    pub fn key(self) -> &'static str {
        match self {
            Workload::PingPongOne => "ping-pong-1",
            Workload::PingPongTwo => "ping-pong-2",
            Workload::FanIn1 => "fan-in-1",
            Workload::FanIn4 => "fan-in-4",
            Workload::Spawn => "spawn",
            Workload::Memory => "memory",
            Workload::Ring => "ring",
            Workload::Counting => "counting",
            Workload::ForkJoin => "fork-join",
            Workload::Big => "big",
            Workload::Chameneos => "chameneos",
        }
    }

    /// The row title in the report.
    pub fn title(self) -> &'static str {
        match self {
            Workload::PingPongOne => "ping-pong, same thread",
            Workload::PingPongTwo => "ping-pong, 2 workers",
            Workload::FanIn1 => "fan-in, 1 producer",
            Workload::FanIn4 => "fan-in, 4 producers",
            Workload::Spawn => "spawn + 1 message + stop",
            Workload::Memory => "memory per idle actor",
            Workload::Ring => "Savina thread ring",
            Workload::Counting => "Savina counting",
            Workload::ForkJoin => "Savina fork-join",
            Workload::Big => "Savina big",
            Workload::Chameneos => "Savina chameneos",
        }
    }

    /// What one operation is (the unit is nanoseconds per operation).
    pub fn unit(self) -> &'static str {
        match self {
            Workload::PingPongOne | Workload::PingPongTwo => "ns/round trip",
            Workload::FanIn1
            | Workload::FanIn4
            | Workload::Counting
            | Workload::ForkJoin
            | Workload::Big => "ns/msg",
            Workload::Spawn => "ns/actor",
            Workload::Memory => "B/actor",
            Workload::Ring => "ns/hop",
            Workload::Chameneos => "ns/meeting",
        }
    }

    /// Operations per run.
    pub fn ops(self, s: &Sizes) -> u64 {
        match self {
            Workload::PingPongOne | Workload::PingPongTwo => s.round_trips,
            Workload::FanIn1 | Workload::FanIn4 => s.fan_in,
            Workload::Spawn => s.spawns,
            Workload::Memory => s.idle as u64,
            Workload::Ring => s.ring_hops,
            Workload::Counting => s.counting,
            Workload::ForkJoin => s.fj_actors as u64 * s.fj_per_actor,
            Workload::Big => 2 * s.big_actors as u64 * s.big_pings,
            Workload::Chameneos => s.meetings,
        }
    }

    /// The size of one run, in words.
    pub fn size(self, s: &Sizes) -> String {
        match self {
            Workload::PingPongOne | Workload::PingPongTwo => {
                format!("{} round trips", thousands(s.round_trips))
            }
            Workload::FanIn1 => format!("{} msgs", thousands(s.fan_in)),
            Workload::FanIn4 => format!("4 x {} msgs", thousands(s.fan_in / 4)),
            Workload::Spawn => format!("{} actors", thousands(s.spawns)),
            Workload::Memory => format!("{} actors", thousands(s.idle as u64)),
            Workload::Ring => format!("{} actors, {} hops", s.ring_len, thousands(s.ring_hops)),
            Workload::Counting => format!("{} increments + ask", thousands(s.counting)),
            Workload::ForkJoin => format!(
                "{} actors x {} msgs",
                s.fj_actors,
                thousands(s.fj_per_actor)
            ),
            Workload::Big => format!("{} actors x {} pings", s.big_actors, thousands(s.big_pings)),
            Workload::Chameneos => format!(
                "{} chameneos, {} meetings",
                s.chameneos,
                thousands(s.meetings)
            ),
        }
    }

    /// Runs this (timed) workload on `c`. [`Workload::Memory`] is measured apart, in child
    /// processes.
    pub fn run(self, c: &dyn Contender, b: &mut Bench, s: &Sizes) {
        match self {
            Workload::PingPongOne => c.ping_pong(b, Threads::One, s.round_trips),
            Workload::PingPongTwo => c.ping_pong(b, Threads::Two, s.round_trips),
            Workload::FanIn1 => c.fan_in(b, 1, s.fan_in),
            Workload::FanIn4 => c.fan_in(b, 4, s.fan_in / 4),
            Workload::Spawn => c.spawn(b, s.spawns),
            Workload::Memory => b.fail("memory is measured in child processes"),
            Workload::Ring => c.ring(b, s.ring_len, s.ring_hops),
            Workload::Counting => c.counting(b, s.counting),
            Workload::ForkJoin => c.fork_join(b, s.fj_actors, s.fj_per_actor),
            Workload::Big => c.big(b, s.big_actors, s.big_pings),
            Workload::Chameneos => c.chameneos(b, s.chameneos, s.meetings),
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared logic
// ---------------------------------------------------------------------------------------------

/// The `(count, sum)` a fan-in sink must end with: `producers` producers each sending the
/// sequence numbers `0..per_producer`.
pub fn fan_in_expected(producers: usize, per_producer: u64) -> (u64, u64) {
    let n = producers as u64;
    (
        n * per_producer,
        n * (per_producer * per_producer.saturating_sub(1) / 2),
    )
}

/// Checks one fan-in message: `next[producer]` is the sequence number expected from that
/// producer (per-sender FIFO order). Returns an error text on a gap or a reorder.
pub fn fan_in_check(next: &mut [u64], producer: u32, seq: u64) -> Result<(), String> {
    let Some(expected) = next.get_mut(producer as usize) else {
        return Err(format!("fan-in: message from unknown producer {producer}"));
    };
    if *expected != seq {
        return Err(format!(
            "fan-in: producer {producer} sent {seq} but {expected} was expected (lost or reordered)"
        ));
    }
    *expected += 1;
    Ok(())
}

/// The work a fork-join actor does per message (a few multiplies, so that the runtime, not the
/// computation, is measured).
pub fn fj_work(seq: u64) -> u64 {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// What each fork-join actor's accumulator must end with after `per_actor` messages.
pub fn fj_expected(per_actor: u64) -> u64 {
    (0..per_actor).fold(0u64, |acc, s| acc.wrapping_add(fj_work(s)))
}

/// Checks one fork-join message: sequence numbers arrive in order; returns the new accumulator.
pub fn fj_step(next: &mut u64, acc: u64, seq: u64) -> u64 {
    if *next != seq {
        crate::harness::fault(format!(
            "fork-join: got message {seq} but {} was expected (lost or reordered)",
            *next
        ));
    }
    *next += 1;
    acc.wrapping_add(fj_work(seq))
}

/// The ring check: a node that last saw `left` must next see `left - len` (a duplicated or
/// skipped token breaks it). Updates `expect` and reports a fault on a mismatch.
pub fn ring_check(expect: &mut Option<u64>, len: u64, left: u64) {
    if let Some(e) = *expect {
        if e != left {
            crate::harness::fault(format!("ring: a node got hop {left}, expected {e}"));
        }
    }
    *expect = left.checked_sub(len);
}

/// A xorshift generator: the same seed gives the same targets on every system.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The generator of big actor `index`.
    pub fn for_actor(index: usize) -> Self {
        Rng((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A random actor index in `0..n` other than `me` (`n >= 2`).
    pub fn other(&mut self, me: usize, n: usize) -> usize {
        let i = (self.next_u64() % (n as u64 - 1)) as usize;
        if i >= me {
            i + 1
        } else {
            i
        }
    }
}

/// The state of one big actor, shared by every system's implementation: it sends `pings`
/// pings, one at a time, each to a random other actor, and answers every ping it receives.
#[derive(Debug)]
pub struct BigState {
    /// This actor's index.
    pub me: usize,
    /// Actors in the run.
    pub n: usize,
    /// Pings to send in all.
    pub pings: u64,
    /// Pongs received so far.
    pub pongs: u64,
    /// Whether a ping of ours is waiting for its pong.
    pub outstanding: bool,
    rng: Rng,
}

/// What a big actor does next.
#[derive(Debug, PartialEq, Eq)]
pub enum BigNext {
    /// Send a ping to this actor.
    Ping(usize),
    /// All pongs are in: report done.
    Done,
}

impl BigState {
    /// Actor `me` of `n`, sending `pings` pings.
    pub fn new(me: usize, n: usize, pings: u64) -> Self {
        Self {
            me,
            n,
            pings,
            pongs: 0,
            outstanding: false,
            rng: Rng::for_actor(me),
        }
    }

    /// The first ping (on the start message).
    pub fn start(&mut self) -> BigNext {
        self.next()
    }

    /// A pong came back.
    pub fn pong(&mut self) -> BigNext {
        if !self.outstanding {
            crate::harness::fault("big: a pong without a ping (duplicated message)");
        }
        self.outstanding = false;
        self.pongs += 1;
        self.next()
    }

    fn next(&mut self) -> BigNext {
        if self.pongs == self.pings {
            BigNext::Done
        } else {
            self.outstanding = true;
            BigNext::Ping(self.rng.other(self.me, self.n))
        }
    }
}

/// A chameneos colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// Blue.
    Blue,
    /// Red.
    Red,
    /// Yellow.
    Yellow,
}

impl Color {
    /// The starting colour of chameneo `i`.
    pub fn of(i: usize) -> Self {
        [Color::Blue, Color::Red, Color::Yellow][i % 3]
    }

    /// The colour after meeting `other` (Savina's complement: the same colour stays, two
    /// different ones give the third).
    pub fn complement(self, other: Color) -> Color {
        use Color::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Blue, Red) | (Red, Blue) => Yellow,
            (Blue, Yellow) | (Yellow, Blue) => Red,
            _ => Blue,
        }
    }
}

/// The mall's bookkeeping, shared by every system: pairs arriving chameneos until `meetings`
/// meetings happened, then sends every arrival home, and sums the meeting counts they report.
#[derive(Debug)]
pub struct MallState<R> {
    /// Meetings still to arrange.
    pub left: u64,
    /// A chameneo waiting for a partner.
    pub waiting: Option<(Color, R)>,
    /// Chameneos that reported their count (faded).
    pub faded: usize,
    /// Sum of the reported meeting counts.
    pub sum: u64,
    /// Chameneos in the run.
    pub chameneos: usize,
}

/// What the mall does with an arrival.
#[derive(Debug)]
pub enum MallNext<R> {
    /// Nothing yet: it waits for a partner.
    Wait,
    /// Tell the first (`R`) to meet the second, who has this colour.
    Meet(R, Color, R),
    /// No meetings left: send the arrival home.
    Exit(R),
}

impl<R> MallState<R> {
    /// A mall for `chameneos` chameneos and `meetings` meetings.
    pub fn new(chameneos: usize, meetings: u64) -> Self {
        Self {
            left: meetings,
            waiting: None,
            faded: 0,
            sum: 0,
            chameneos,
        }
    }

    /// A chameneo of colour `color` arrived.
    pub fn arrive(&mut self, color: Color, who: R) -> MallNext<R> {
        if self.left == 0 {
            return MallNext::Exit(who);
        }
        match self.waiting.take() {
            None => {
                self.waiting = Some((color, who));
                MallNext::Wait
            }
            Some((_, first)) => {
                self.left -= 1;
                MallNext::Meet(first, color, who)
            }
        }
    }

    /// A chameneo went home after `meetings` meetings. Returns `Some((faded, sum))` when the
    /// last one did.
    pub fn report(&mut self, meetings: u64) -> Option<(usize, u64)> {
        self.faded += 1;
        self.sum += meetings;
        (self.faded == self.chameneos).then_some((self.faded, self.sum))
    }
}

/// Checks the chameneos result: every chameneo faded, and each meeting counted twice.
pub fn chameneos_check(got: (usize, u64), chameneos: usize, meetings: u64) -> Result<(), String> {
    if got == (chameneos, 2 * meetings) {
        Ok(())
    } else {
        Err(format!(
            "chameneos: {} faded with {} meetings counted, expected {} and {}",
            got.0,
            got.1,
            chameneos,
            2 * meetings
        ))
    }
}

/// Checks an equality, with a message naming the workload.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(503), "503");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn rng_never_picks_self() {
        let mut r = Rng::for_actor(3);
        for _ in 0..1000 {
            let o = r.other(3, 5);
            assert!(o < 5 && o != 3);
        }
    }

    #[test]
    fn mall_pairs_then_sends_home() {
        let mut m = MallState::new(2, 1);
        assert!(matches!(m.arrive(Color::Blue, 0), MallNext::Wait));
        assert!(matches!(
            m.arrive(Color::Red, 1),
            MallNext::Meet(0, Color::Red, 1)
        ));
        assert!(matches!(m.arrive(Color::Yellow, 0), MallNext::Exit(0)));
        assert_eq!(m.report(1), None);
        assert_eq!(m.report(1), Some((2, 2)));
    }

    #[test]
    fn complement_is_savinas() {
        assert_eq!(Color::Blue.complement(Color::Blue), Color::Blue);
        assert_eq!(Color::Blue.complement(Color::Red), Color::Yellow);
        assert_eq!(Color::Yellow.complement(Color::Red), Color::Blue);
    }
}
