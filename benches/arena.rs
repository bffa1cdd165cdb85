//! Zero-copy messaging through arena chunks next to serialize-and-copy baselines, one thread.
//!
//! Every variant moves one message from sender to receiver on the same thread and reads a field
//! of it. Group `zero_copy` runs each variant at three payload sizes (16 B, 1 KiB, 64 KiB):
//!
//! * `archived`: [`codec::encode`] into an [`ArenaWriter`] (made once, outside the clock), push
//!   into a `Mailbox<Envelope, Boxed<()>>`, `begin_run`, pop, [`codec::view`], read, drop the
//!   envelope, `finish`. The message is borrowed from a prebuilt value: nothing is allocated
//!   per message on the airssys side except what the arena itself does (a large chunk for a
//!   payload above a sixteenth of a chunk: see the 64 KiB allocation report).
//! * `plain`: [`ArenaWriter::write_plain`] moves the owned value (the same struct) into the
//!   arena, then the same mailbox round trip and [`Envelope::take`]. The value is recycled
//!   from one message to the next (taken back out and moved in again), so the `Vec` of the
//!   byte payloads is never rebuilt: this measures the hand-off, not `malloc`.
//! * `rkyv_to_bytes`: `rkyv::to_bytes` into a fresh `AlignedVec` per message, sent through a
//!   `std::sync::mpsc` channel, received, **validated** with `rkyv::access` (bytecheck), read.
//! * `rkyv_to_bytes_unchecked`: the same, but read with `rkyv::access_unchecked` (what
//!   `archived` does for its verified bytes).
//! * `vec_clone`: clone a `Vec<u8>` of the payload bytes per message, send it through a std
//!   channel, receive, read a byte, drop.
//!
//! Group `broadcast_64k` delivers one 64 KiB payload to [`RECEIVERS`] receivers: `airssys`
//! encodes once and publishes [`ArenaWriter::share`] copies into a mailbox each; `vec_clone`
//! clones the `Vec<u8>` once per receiver into a std channel each; `arc_clone` (extra context)
//! sends an `Arc<Vec<u8>>` clone per receiver.
//!
//! Group `archived_16B_parts` splits the 16-byte `archived` time: `encode_view_drop` (the
//! arena alone), `mailbox_cycle` (the mailbox alone: one envelope recycled through push,
//! `begin_run`, pop, `finish`), and `archived_batch64` (64 messages per run, so scheduling is
//! paid once per batch; reported per message).
//!
//! Caveat, `archived/64KiB`: a payload above a sixteenth of a chunk gets a large chunk of its
//! own (128 KiB, 64 KiB-aligned), allocated and freed per message. With glibc that is either a
//! heap reuse (a few µs) or an `mmap` + `munmap` + page faults per message (tens of µs),
//! depending on malloc's dynamic mmap threshold, which criterion's own analysis raises before
//! this bench gets there: the numbers here are the favourable case. Run
//! `arena --bench zero_copy/archived/64KiB` alone to see the other one.
//!
//! Before each variant's criterion run, a fixed loop ([`WARMUP`] then [`MEASURED`] messages)
//! counts heap allocations with the counting global allocator below and prints
//! `ALLOC <variant>/<size>: <n> allocs/msg, <b> B/msg`, then times the variant for a fixed
//! budget of *thread CPU time* and prints `CPU <variant>/<size>: <t> ns/msg`: on a loaded
//! machine (other processes competing for the cores) criterion's wall-clock times include the
//! time the thread spent waiting for a CPU; the CPU-time figure does not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use airssys_rt::codec::{self, Message};
use airssys_rt::mailbox::{
    ArenaWriter, Boxed, Envelope, Mailbox, PoolConfig, Received, Run, RunToken,
};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::Archived;

// ---------------------------------------------------------------------------------------------
// Counting allocator.
// ---------------------------------------------------------------------------------------------

/// Counts allocation calls (`alloc`, `alloc_zeroed`, `realloc`) and the bytes they ask for
/// (the new size, for `realloc`), while [`COUNTING`] is set. Forwards everything to [`System`].
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn count(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only atomics
// (it never allocates).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every allocation here does) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`, and the caller's contract for `new_size` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Messages sent before counting starts (pools, channel blocks and scratch space warm up).
const WARMUP: u64 = 1_000;
/// Messages counted.
const MEASURED: u64 = 10_000;

/// Thread CPU time spent in [`report_allocs`]'s timed loop, per variant.
const CPU_BUDGET_NS: u64 = 200_000_000;

/// This thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`), where available. Unlike
/// wall time it does not grow while the thread waits for a CPU, so it stays meaningful on a
/// loaded machine.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_ns() -> Option<u64> {
    /// `struct timespec` on 64-bit Linux.
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` (libc, always linked by std on Linux) writes one `timespec`,
    // whose 64-bit layout `Timespec` matches, through a pointer to a live local.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Runs `step` (which moves `per_step` messages) for [`WARMUP`] messages, then counts the
/// allocations of [`MEASURED`] messages and prints them per message; then runs it for about
/// [`CPU_BUDGET_NS`] of thread CPU time and prints the CPU time per message.
fn report_allocs(name: &str, per_step: u64, step: &mut impl FnMut() -> u64) {
    for _ in 0..WARMUP.div_ceil(per_step) {
        black_box(step());
    }
    let steps = MEASURED.div_ceil(per_step);
    let (calls0, bytes0) = (
        ALLOC_CALLS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::Relaxed);
    for _ in 0..steps {
        black_box(step());
    }
    COUNTING.store(false, Ordering::Relaxed);
    let msgs = (steps * per_step) as f64;
    let calls = (ALLOC_CALLS.load(Ordering::Relaxed) - calls0) as f64;
    let bytes = (ALLOC_BYTES.load(Ordering::Relaxed) - bytes0) as f64;
    println!(
        "ALLOC {name}: {:.3} allocs/msg, {:.1} B/msg",
        calls / msgs,
        bytes / msgs
    );

    let Some(start) = thread_cpu_ns() else {
        return;
    };
    let wall = std::time::Instant::now();
    let (mut now, mut done) = (start, 0u64);
    while now - start < CPU_BUDGET_NS {
        for _ in 0..steps {
            black_box(step());
        }
        done += steps;
        now = thread_cpu_ns().unwrap_or(u64::MAX / 2);
    }
    let msgs = (done * per_step) as f64;
    println!(
        "CPU {name}: {:.1} ns/msg (thread CPU time; wall {:.1} ns/msg; {msgs} msgs)",
        (now - start) as f64 / msgs,
        wall.elapsed().as_nanos() as f64 / msgs,
    );
}

// ---------------------------------------------------------------------------------------------
// Payloads.
// ---------------------------------------------------------------------------------------------

/// The 16-byte message: plain old data, 16 archived bytes.
#[derive(rkyv::Archive, rkyv::Serialize, Clone, Copy, Debug)]
struct Small {
    a: u64,
    b: u64,
}
airssys_rt::message!(Small);

/// The byte payloads: a `Vec<u8>` of 1 KiB or 64 KiB (8 more archived bytes: offset and length).
#[derive(rkyv::Archive, rkyv::Serialize, Clone, Debug)]
struct Blob {
    data: Vec<u8>,
}
airssys_rt::message!(Blob);

impl Blob {
    fn new(len: usize) -> Self {
        Self {
            data: (0..len).map(|i| (i * 7 + 1) as u8).collect(),
        }
    }
}

/// What every variant does with one payload type.
trait Payload: Message + Clone {
    /// Reads the field each variant reads, from the archive.
    fn read_archived(a: &Archived<Self>) -> u64;
    /// Reads the same field from the owned value.
    fn read_plain(&self) -> u64;
    /// Serializes to a fresh buffer (the `rkyv_to_bytes` baseline).
    fn to_aligned_vec(&self) -> AlignedVec;
    /// Validates `bytes` with bytecheck and reads the field.
    fn access_read(bytes: &[u8]) -> u64;
    /// Reads the field without validation.
    ///
    /// # Safety
    ///
    /// `bytes` came from [`to_aligned_vec`](Self::to_aligned_vec) of this type.
    unsafe fn access_unchecked_read(bytes: &[u8]) -> u64;
    /// The payload as raw bytes (the `vec_clone` baseline).
    fn raw_bytes(&self) -> Vec<u8>;
}

impl Payload for Small {
    fn read_archived(a: &ArchivedSmall) -> u64 {
        a.a.to_native()
    }
    fn read_plain(&self) -> u64 {
        self.a
    }
    fn to_aligned_vec(&self) -> AlignedVec {
        rkyv::to_bytes::<rancor::Error>(self).expect("serializes")
    }
    fn access_read(bytes: &[u8]) -> u64 {
        Self::read_archived(rkyv::access::<ArchivedSmall, rancor::Error>(bytes).expect("valid"))
    }
    unsafe fn access_unchecked_read(bytes: &[u8]) -> u64 {
        // SAFETY: by the caller's contract, `bytes` is an archive of `Small` written by rkyv
        // into an `AlignedVec` (16-byte aligned).
        Self::read_archived(unsafe { rkyv::access_unchecked::<ArchivedSmall>(bytes) })
    }
    fn raw_bytes(&self) -> Vec<u8> {
        let mut v = self.a.to_le_bytes().to_vec();
        v.extend_from_slice(&self.b.to_le_bytes());
        v
    }
}

impl Payload for Blob {
    fn read_archived(a: &ArchivedBlob) -> u64 {
        u64::from(a.data[a.data.len() - 1])
    }
    fn read_plain(&self) -> u64 {
        u64::from(self.data[self.data.len() - 1])
    }
    fn to_aligned_vec(&self) -> AlignedVec {
        rkyv::to_bytes::<rancor::Error>(self).expect("serializes")
    }
    fn access_read(bytes: &[u8]) -> u64 {
        Self::read_archived(rkyv::access::<ArchivedBlob, rancor::Error>(bytes).expect("valid"))
    }
    unsafe fn access_unchecked_read(bytes: &[u8]) -> u64 {
        // SAFETY: by the caller's contract, `bytes` is an archive of `Blob` written by rkyv
        // into an `AlignedVec` (16-byte aligned).
        Self::read_archived(unsafe { rkyv::access_unchecked::<ArchivedBlob>(bytes) })
    }
    fn raw_bytes(&self) -> Vec<u8> {
        self.data.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// One message, sender to receiver. Each builder returns a step closure that owns its state.
// ---------------------------------------------------------------------------------------------

type EnvMailbox = Mailbox<Envelope, Boxed<()>>;

/// Pushes into an idle mailbox: the push must hand back the run token.
#[inline(always)]
fn push_idle(mailbox: &EnvMailbox, env: Envelope) -> RunToken {
    mailbox
        .try_push(env)
        .expect("mailbox is open")
        .expect("an idle mailbox schedules")
}

/// Pops the one user message of a run.
#[inline(always)]
fn pop_user(run: &mut Run<'_, Envelope, Boxed<()>>) -> Envelope {
    match run.pop() {
        Some(Received::User(env)) => env,
        _ => unreachable!("one user message was pushed"),
    }
}

/// Ends a run that must leave the mailbox idle.
#[inline(always)]
fn finish_idle(run: Run<'_, Envelope, Boxed<()>>) {
    assert!(run.finish(false).is_none(), "single thread: nothing new");
}

fn archived<M: Payload>(msg: &M) -> impl FnMut() -> u64 + '_ {
    let mut writer = ArenaWriter::new(PoolConfig::default());
    let mailbox = EnvMailbox::unbounded();
    move || {
        let env = codec::encode(&mut writer, msg).expect("the arena has room");
        let mut run = mailbox.begin_run(push_idle(&mailbox, env));
        let env = pop_user(&mut run);
        let v = M::read_archived(codec::view::<M>(&env).expect("an archived M"));
        drop(env);
        finish_idle(run);
        v
    }
}

fn plain<M: Payload>(msg: &M) -> impl FnMut() -> u64 {
    let mut writer = ArenaWriter::new(PoolConfig::default());
    let mailbox = EnvMailbox::unbounded();
    // Built once; each step moves it in and takes it back out.
    let mut slot = Some(msg.clone());
    move || {
        let value = slot.take().expect("put back by the previous step");
        let env = writer
            .write_plain(value)
            .map_err(|(_, e)| e)
            .expect("the arena has room");
        let mut run = mailbox.begin_run(push_idle(&mailbox, env));
        let value = pop_user(&mut run).take::<M>().expect("a plain M");
        let v = value.read_plain();
        slot = Some(value);
        finish_idle(run);
        v
    }
}

fn rkyv_to_bytes<M: Payload, const CHECKED: bool>(msg: &M) -> impl FnMut() -> u64 + '_ {
    let (tx, rx) = mpsc::channel::<AlignedVec>();
    move || {
        tx.send(msg.to_aligned_vec()).expect("receiver alive");
        let bytes = rx.try_recv().expect("sent just now");
        if CHECKED {
            M::access_read(&bytes)
        } else {
            // SAFETY: `bytes` is what `to_aligned_vec` of an `M` produced.
            unsafe { M::access_unchecked_read(&bytes) }
        }
    }
}

fn vec_clone(bytes: Vec<u8>) -> impl FnMut() -> u64 {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    move || {
        tx.send(bytes.clone()).expect("receiver alive");
        let got = rx.try_recv().expect("sent just now");
        u64::from(got[got.len() - 1])
    }
}

fn variant(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    size: &str,
    mut step: impl FnMut() -> u64,
) {
    report_allocs(&format!("{name}/{size}"), 1, &mut step);
    g.bench_function(BenchmarkId::new(name, size), |b| b.iter(&mut step));
}

fn sizes<M: Payload>(g: &mut BenchmarkGroup<'_, WallTime>, size: &str, msg: &M) {
    variant(g, "archived", size, archived(msg));
    variant(g, "plain", size, plain(msg));
    variant(g, "rkyv_to_bytes", size, rkyv_to_bytes::<M, true>(msg));
    variant(
        g,
        "rkyv_to_bytes_unchecked",
        size,
        rkyv_to_bytes::<M, false>(msg),
    );
    variant(g, "vec_clone", size, vec_clone(msg.raw_bytes()));
}

fn zero_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("zero_copy");
    g.throughput(Throughput::Elements(1));
    sizes(
        &mut g,
        "16B",
        &Small {
            a: 0x0123_4567_89ab_cdef,
            b: 42,
        },
    );
    sizes(&mut g, "1KiB", &Blob::new(1024));
    sizes(&mut g, "64KiB", &Blob::new(64 * 1024));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Where the 16-byte `archived` time goes.
// ---------------------------------------------------------------------------------------------

/// Messages per run in `archived_batch`.
const BATCH: usize = 64;

/// The arena half alone: encode, view, read, drop (no mailbox).
fn encode_view_drop(msg: &Small) -> impl FnMut() -> u64 + '_ {
    let mut writer = ArenaWriter::new(PoolConfig::default());
    move || {
        let env = codec::encode(&mut writer, msg).expect("the arena has room");
        Small::read_archived(codec::view::<Small>(&env).expect("an archived Small"))
    }
}

/// The mailbox half alone: one envelope (written once) goes round push, `begin_run`, pop,
/// `finish`, and is kept for the next step.
fn mailbox_cycle(msg: &Small) -> impl FnMut() -> u64 {
    let mut writer = ArenaWriter::new(PoolConfig::default());
    let mailbox = EnvMailbox::unbounded();
    let mut slot = Some(codec::encode(&mut writer, msg).expect("the arena has room"));
    move || {
        let env = slot.take().expect("put back by the previous step");
        let mut run = mailbox.begin_run(push_idle(&mailbox, env));
        let env = pop_user(&mut run);
        let v = u64::from(env.type_tag());
        slot = Some(env);
        finish_idle(run);
        v
    }
}

/// `archived` with [`BATCH`] messages per run: the scheduling cost (token, `begin_run`,
/// `finish`, the queue's stub re-link) is paid once per batch.
fn archived_batch(msg: &Small) -> impl FnMut() -> u64 + '_ {
    let mut writer = ArenaWriter::new(PoolConfig::default());
    let mailbox = EnvMailbox::unbounded();
    move || {
        let mut token = None;
        for _ in 0..BATCH {
            let env = codec::encode(&mut writer, msg).expect("the arena has room");
            if let Some(t) = mailbox.try_push(env).expect("mailbox is open") {
                token = Some(t);
            }
        }
        let mut run = mailbox.begin_run(token.expect("the first push schedules"));
        let mut sum = 0;
        while let Some(Received::User(env)) = run.pop() {
            sum += Small::read_archived(codec::view::<Small>(&env).expect("an archived Small"));
        }
        finish_idle(run);
        sum
    }
}

fn archived_parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("archived_16B_parts");
    let msg = Small {
        a: 0x0123_4567_89ab_cdef,
        b: 42,
    };
    g.throughput(Throughput::Elements(1));
    variant(&mut g, "encode_view_drop", "16B", encode_view_drop(&msg));
    variant(&mut g, "mailbox_cycle", "16B", mailbox_cycle(&msg));
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut step = archived_batch(&msg);
    report_allocs("archived_batch64/16B", BATCH as u64, &mut step);
    g.bench_function(BenchmarkId::new("archived_batch64", "16B"), |b| {
        b.iter(&mut step)
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// One 64 KiB payload to RECEIVERS receivers.
// ---------------------------------------------------------------------------------------------

/// A variant's step, boxed so that different closures share one list.
type Step<'a> = Box<dyn FnMut() -> u64 + 'a>;

/// Receivers of one broadcast.
const RECEIVERS: usize = 1_000;

fn broadcast_airssys(msg: &Blob) -> impl FnMut() -> u64 + '_ {
    let mut writer = ArenaWriter::new(PoolConfig::default());
    let mailboxes: Vec<EnvMailbox> = (0..RECEIVERS).map(|_| EnvMailbox::unbounded()).collect();
    let mut tokens: Vec<RunToken> = Vec::with_capacity(RECEIVERS);
    move || {
        let original = codec::encode(&mut writer, msg).expect("the arena has room");
        for mailbox in &mailboxes {
            let copy = writer.share(&original).expect("the arena has room");
            tokens.push(push_idle(mailbox, copy));
        }
        drop(original);
        let mut sum = 0;
        for (mailbox, token) in mailboxes.iter().zip(tokens.drain(..)) {
            let mut run = mailbox.begin_run(token);
            let env = pop_user(&mut run);
            sum += Blob::read_archived(codec::view::<Blob>(&env).expect("an archived Blob"));
            drop(env);
            finish_idle(run);
        }
        sum
    }
}

fn broadcast_channels<T>(
    payload: T,
    clone: impl Fn(&T) -> T,
    read: impl Fn(&T) -> u64,
) -> impl FnMut() -> u64 {
    let channels: Vec<(mpsc::Sender<T>, mpsc::Receiver<T>)> =
        (0..RECEIVERS).map(|_| mpsc::channel()).collect();
    move || {
        for (tx, _) in &channels {
            tx.send(clone(&payload)).expect("receiver alive");
        }
        let mut sum = 0;
        for (_, rx) in &channels {
            sum += read(&rx.try_recv().expect("sent just now"));
        }
        sum
    }
}

fn broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_64k");
    g.throughput(Throughput::Elements(RECEIVERS as u64));
    g.sampling_mode(SamplingMode::Flat);
    let blob = Blob::new(64 * 1024);
    let read = |v: &Vec<u8>| u64::from(v[v.len() - 1]);

    let mut steps: Vec<(&str, Step<'_>)> = vec![
        ("airssys", Box::new(broadcast_airssys(&blob))),
        (
            "vec_clone",
            Box::new(broadcast_channels(blob.data.clone(), Vec::clone, read)),
        ),
        (
            "arc_clone",
            Box::new(broadcast_channels(
                Arc::new(blob.data.clone()),
                Arc::clone,
                move |v: &Arc<Vec<u8>>| read(v),
            )),
        ),
    ];
    for (name, step) in &mut steps {
        report_allocs(&format!("broadcast_64k/{name}"), RECEIVERS as u64, step);
        g.bench_function(*name, |b| b.iter(&mut *step));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = zero_copy, archived_parts, broadcast
}
criterion_main!(benches);
