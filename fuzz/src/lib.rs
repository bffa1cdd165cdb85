//! The logic of airssys-rt's fuzz targets, shared by the cargo-fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`) and by the regression test (`tests/fuzz_regressions.rs`, which
//! includes this file with `#[path]` and replays every file in `fuzz/regressions/<target>/`).
//!
//! Because the root crate's test compiles this file too, it may use only what the root crate
//! depends on: `airssys_rt` (the mailbox crate only through `airssys_rt::mailbox`) and `rkyv`.
//! Inputs are decoded by hand with [`Reader`] (no `arbitrary`): every byte string is a valid
//! input, and a missing byte reads as zero.
//!
//! * [`external_bytes`]: frames and payloads from outside the process (`parse_frame`,
//!   `ingest_frame`, `ingest`, `validate`, `view`) for four message types, checked against a
//!   model of the frame format and against each other; round trips through `to_frame`.
//! * [`mailbox_ops`]: sends, receives, shares, closes and retires on one mailbox and one small
//!   arena pool, against a `VecDeque` model: FIFO, contents, exactly-once drops, no leaked
//!   chunk.
//! * [`arena_layout`]: writes of every size around chunk boundaries and on the large path:
//!   alignment, placement, no overlap, contents intact, budget respected.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem::{align_of, size_of, MaybeUninit};
use std::num::NonZeroU32;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use airssys_rt::codec::{self, ExternalError, Message, ViewError, FRAME_HEADER_LEN, FRAME_MAGIC};
use airssys_rt::mailbox::{
    ArenaWriter, Envelope, FillError, Kind, Mailbox, PoolConfig, PushError, Received, RunToken,
    WriteError, CHUNK_ALIGN, TYPE_TAG_MASK,
};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Archived, Deserialize, Serialize};

/// The targets, by name (the directory names under `fuzz/regressions/`).
pub const TARGETS: [&str; 3] = ["external_bytes", "mailbox_ops", "arena_layout"];

/// Runs the target called `name` on `data`. Returns `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "external_bytes" => external_bytes(data),
        "mailbox_ops" => mailbox_ops(data),
        "arena_layout" => arena_layout(data),
        _ => return false,
    }
    true
}

/// Checks a pool with no message alive (retiring the writer's current chunk first): no large
/// chunk is alive (the bytes in use are whole regular chunks), and no regular chunk leaked (the
/// whole budget can be filled with inline messages again, one regular chunk after another).
fn check_idle_pool(writer: &mut ArenaWriter) {
    writer.retire_current();
    let chunk = writer.config().get_chunk_size();
    let stats = writer.stats();
    assert!(
        stats.bytes <= stats.max_bytes
            && stats.bytes <= stats.chunks_allocated * chunk
            && stats.bytes.is_multiple_of(chunk),
        "a large chunk outlived its messages: {stats:?}"
    );
    check_idle_pool_takes_largest(writer);
    let per_pool = stats.max_bytes / chunk;
    let inline = vec![0x5a; writer.max_inline()];
    let mut fill = Vec::new();
    let mut seen = BTreeSet::new();
    loop {
        match writer.copy_bytes(1, &inline) {
            Ok(env) => {
                seen.insert(env.payload_chunk().expect("bytes").start);
                fill.push(env);
            }
            Err(WriteError::Exhausted) => break,
            Err(e) => panic!("refilling the pool: {e:?}"),
        }
        assert!(fill.len() <= per_pool * 16, "pool never exhausted");
    }
    assert_eq!(
        seen.len(),
        per_pool,
        "chunks leaked: {per_pool} regular chunks fit the budget, {} could be had: {:?}",
        seen.len(),
        writer.stats()
    );
}

/// An idle pool (no message alive, writer retired) takes the largest message
/// that fits its budget (regression: free chunks used to keep their bytes in the budget, so a
/// large message got `Exhausted` forever from an idle pool).
fn check_idle_pool_takes_largest(writer: &mut ArenaWriter) {
    let max = writer.config().get_max_bytes();
    let len = (max & !15) - 80;
    let env = writer
        .write_bytes_sized::<()>(3, len, |region| {
            if region.len() < len {
                return Err(FillError::Overflow);
            }
            fill_pattern(7, &mut region[..len]);
            Ok(len)
        })
        .unwrap_or_else(|e| {
            panic!(
                "an idle pool refused {len} bytes (budget {max}): {e:?}, {:?}",
                writer.stats()
            )
        });
    assert!(is_pattern(7, env.bytes().expect("bytes")));
}

/// Reads fuzz input front to back; past the end every read gives zero.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// The low bit of the next byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` next bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

// ---------------------------------------------------------------------------------------------
// external_bytes
// ---------------------------------------------------------------------------------------------

/// Gives a message type a tag that does not depend on the module it is compiled in (the
/// `message!` macro hashes `module_path!()`, which differs between the fuzz crate and the
/// regression test, and frames in `fuzz/regressions` carry the tag).
macro_rules! fixed_tag_message {
    ($($ty:ident),+ $(,)?) => {$(
        impl Message for $ty {
            const TAG: u32 = codec::type_tag(concat!("airssys_rt_fuzz::", stringify!($ty)));
        }
    )+};
}

/// Plain old data, with fields whose archived forms bytecheck must validate (`bool`, `char`)
/// and the largest alignment (`u128`).
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct Pod {
    a: u8,
    b: u16,
    c: u32,
    d: u64,
    e: u128,
    f: i32,
    flag: bool,
    letter: char,
    array: [u8; 5],
    pair: (u16, i64),
}

/// Out-of-line data: strings and vectors (relative pointers, lengths, UTF-8).
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct Text {
    name: String,
    values: Vec<u32>,
    words: Vec<String>,
    note: Option<String>,
}

/// An enum whose variants hold data, including boxes and nested options.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum Shape {
    /// No data.
    Empty,
    /// Inline fields.
    Point {
        /// x.
        x: i32,
        /// y.
        y: i32,
    },
    /// A vector of tuples.
    Poly(Vec<(i16, i16)>),
    /// A string and a byte.
    Label(String, u8),
    /// A boxed struct, maybe.
    Wrapped(Option<Box<Pod>>),
    /// Boxed out-of-line data inside a vector.
    Many(Vec<Option<Box<Text>>>),
}

/// A recursive type: validation and deserialization recurse as deep as the archive nests.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
#[rkyv(serialize_bounds(
    __S: rkyv::ser::Writer + rkyv::ser::Allocator,
    __S::Error: rkyv::rancor::Source,
))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(
    __C: rkyv::validation::ArchiveContext,
    __C::Error: rkyv::rancor::Source,
)))]
pub struct Tree {
    value: u32,
    #[rkyv(omit_bounds)]
    children: Vec<Tree>,
    #[rkyv(omit_bounds)]
    next: Option<Box<Tree>>,
}

fixed_tag_message!(Pod, Text, Shape, Tree);

/// How deep [`Generate`] nests boxes and trees.
const MAX_DEPTH: u32 = 6;

/// A message type the external target can check: build a value from bytes, read an archive.
pub trait FuzzMessage: Message + PartialEq + core::fmt::Debug + Sized {
    /// A value built from the reader's bytes.
    fn generate(r: &mut Reader<'_>, depth: u32) -> Self;
    /// Deserializes a (validated) archive, reading every field. Panics if rkyv fails.
    fn decode(archived: &Archived<Self>) -> Self;
}

macro_rules! decode_impl {
    () => {
        fn decode(archived: &Archived<Self>) -> Self {
            rkyv::deserialize::<Self, rancor::Error>(archived)
                .expect("a validated archive must deserialize")
        }
    };
}

fn gen_string(r: &mut Reader<'_>) -> String {
    let len = usize::from(r.u8() % 48);
    let bytes = r.take(len);
    String::from_utf8_lossy(bytes).into_owned()
}

fn gen_char(r: &mut Reader<'_>) -> char {
    char::from_u32(r.u32() % 0x11_0000).unwrap_or('\u{fffd}')
}

impl FuzzMessage for Pod {
    fn generate(r: &mut Reader<'_>, _depth: u32) -> Self {
        Pod {
            a: r.u8(),
            b: r.u16(),
            c: r.u32(),
            d: r.u64(),
            e: u128::from(r.u64()) << 64 | u128::from(r.u64()),
            f: r.u32() as i32,
            flag: r.bool(),
            letter: gen_char(r),
            array: [r.u8(), r.u8(), r.u8(), r.u8(), r.u8()],
            pair: (r.u16(), r.u64() as i64),
        }
    }
    decode_impl!();
}

impl FuzzMessage for Text {
    fn generate(r: &mut Reader<'_>, _depth: u32) -> Self {
        let name = gen_string(r);
        // Mostly short; sometimes long enough for the arena's large path (up to ~80 KB).
        let len = match r.u8() % 8 {
            0 => usize::from(r.u16()) % 20_000,
            _ => usize::from(r.u8() % 16),
        };
        let (base, step) = (r.u32(), r.u32());
        let values = (0..len as u32)
            .map(|i| base.wrapping_add(i.wrapping_mul(step)))
            .collect();
        let words = (0..r.u8() % 5).map(|_| gen_string(r)).collect();
        let note = r.bool().then(|| gen_string(r));
        Text {
            name,
            values,
            words,
            note,
        }
    }
    decode_impl!();
}

impl FuzzMessage for Shape {
    fn generate(r: &mut Reader<'_>, depth: u32) -> Self {
        match r.u8() % 6 {
            0 => Shape::Empty,
            1 => Shape::Point {
                x: r.u32() as i32,
                y: r.u32() as i32,
            },
            2 => Shape::Poly(
                (0..r.u8() % 32)
                    .map(|_| (r.u16() as i16, r.u16() as i16))
                    .collect(),
            ),
            3 => Shape::Label(gen_string(r), r.u8()),
            4 => Shape::Wrapped(r.bool().then(|| Box::new(Pod::generate(r, depth + 1)))),
            _ => Shape::Many(
                (0..r.u8() % 4)
                    .map(|_| r.bool().then(|| Box::new(Text::generate(r, depth + 1))))
                    .collect(),
            ),
        }
    }
    decode_impl!();
}

impl FuzzMessage for Tree {
    fn generate(r: &mut Reader<'_>, depth: u32) -> Self {
        let value = r.u32();
        if depth >= MAX_DEPTH {
            return Tree {
                value,
                children: Vec::new(),
                next: None,
            };
        }
        let children = (0..r.u8() % 4)
            .map(|_| Tree::generate(r, depth + 1))
            .collect();
        let next = r.bool().then(|| Box::new(Tree::generate(r, depth + 1)));
        Tree {
            value,
            children,
            next,
        }
    }
    decode_impl!();
}

/// The pool of the writers that take external bytes: small chunks (so that payloads over 256
/// bytes take the large path), a budget far above any fuzz input.
fn external_pool() -> PoolConfig {
    PoolConfig::default().chunk_size(4096).max_bytes(16 << 20)
}

/// Fuzz target: arbitrary bytes into the validated external path.
///
/// The first byte picks the message type (bits 0..2) and the path (the rest, modulo 5): a raw
/// frame, a payload behind a well-formed header (with a declared length that is sometimes
/// off by a few bytes), a bare payload, a round trip of a value built from the input, or a
/// round trip whose frame is then corrupted.
pub fn external_bytes(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = selector >> 2;
    match selector & 3 {
        0 => external::<Pod>(mode, rest),
        1 => external::<Text>(mode, rest),
        2 => external::<Shape>(mode, rest),
        _ => external::<Tree>(mode, rest),
    }
}

fn external<T: FuzzMessage>(mode: u8, rest: &[u8]) {
    match mode % 5 {
        0 => check_frame::<T>(rest),
        1 => {
            let (&skew, payload) = rest.split_first().unwrap_or((&0, &[]));
            let declared = match skew % 8 {
                0 => payload.len().saturating_sub(1),
                1 => payload.len() + 1,
                2 => payload.len().saturating_sub(16),
                _ => payload.len(),
            };
            check_frame::<T>(&frame_of(T::TAG, declared as u32, payload));
        }
        2 => {
            let _ = check_payload::<T>(rest);
        }
        3 => round_trip::<T>(rest, false),
        _ => round_trip::<T>(rest, true),
    }
}

/// A frame with the given header fields, built by the spec (not by `to_frame`).
fn frame_of(tag: u32, declared: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(b"ARS1");
    frame.extend_from_slice(&tag.to_le_bytes());
    frame.extend_from_slice(&declared.to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// The frame format of `codec::ingest_frame`'s docs, written out independently.
fn model_parse_frame(expected: u32, frame: &[u8]) -> Result<&[u8], ExternalError> {
    if frame.len() < 16 {
        return Err(ExternalError::ShortHeader { len: frame.len() });
    }
    let word = |i: usize| u32::from_le_bytes(frame[i..i + 4].try_into().unwrap());
    let magic: [u8; 4] = frame[..4].try_into().unwrap();
    if &magic != b"ARS1" {
        return Err(ExternalError::BadMagic { found: magic });
    }
    if word(12) != 0 {
        return Err(ExternalError::BadReserved { found: word(12) });
    }
    if word(4) != expected {
        return Err(ExternalError::WrongType {
            expected,
            found: word(4),
        });
    }
    let (declared, available) = (word(8) as usize, frame.len() - 16);
    if declared > available {
        Err(ExternalError::Truncated {
            declared,
            available,
        })
    } else if declared < available {
        Err(ExternalError::TrailingBytes {
            declared,
            available,
        })
    } else {
        Ok(&frame[16..])
    }
}

/// Same variant, and equal unless it is `Invalid` (whose text holds addresses).
fn same_error(a: &ExternalError, b: &ExternalError) -> bool {
    match (a, b) {
        (ExternalError::Invalid(_), ExternalError::Invalid(_)) => true,
        _ => a == b,
    }
}

/// Checks a frame: the parser against the model, `ingest_frame` against the payload checks.
fn check_frame<T: FuzzMessage>(frame: &[u8]) {
    let parsed = codec::parse_frame(T::TAG, frame);
    assert_eq!(parsed, model_parse_frame(T::TAG, frame), "parse_frame");
    if let Ok(payload) = parsed {
        assert_eq!(payload.as_ptr(), frame[FRAME_HEADER_LEN..].as_ptr());
    }
    let mut writer = ArenaWriter::new(external_pool());
    let ingested = codec::ingest_frame::<T>(&mut writer, frame);
    match parsed {
        Err(e) => match ingested {
            Ok(env) => panic!("ingest_frame accepted a frame parse_frame rejects ({e:?}): {env:?}"),
            Err(got) => assert_eq!(got, e, "ingest_frame and parse_frame disagree"),
        },
        Ok(payload) => {
            let expected = check_payload::<T>(payload);
            match (ingested, expected) {
                (Ok(env), Ok(value)) => {
                    check_verified::<T>(&env, payload);
                    let viewed = codec::view::<T>(&env).expect("view of an ingested frame");
                    assert_eq!(T::decode(viewed), value);
                }
                (Err(got), Err(want)) => {
                    assert!(
                        same_error(&got, &want),
                        "ingest_frame: {got:?}, validate: {want:?}"
                    )
                }
                (Ok(env), Err(want)) => {
                    panic!("ingest_frame accepted what validate rejects ({want:?}): {env:?}")
                }
                (Err(got), Ok(value)) => {
                    panic!("ingest_frame rejected ({got:?}) what validate accepts: {value:?}")
                }
            }
        }
    }
}

/// Checks an envelope made by `ingest`/`ingest_frame`/`encode`: verified, typed, 16-aligned,
/// in its chunk, holding exactly `payload`.
fn check_verified<T: Message>(env: &Envelope, payload: &[u8]) {
    assert_eq!(env.kind(), Kind::Archived);
    assert!(env.is_verified());
    assert_eq!(env.type_tag(), T::TAG);
    assert_eq!(env.len(), payload.len());
    check_placement(env);
    assert_eq!(env.bytes(), Some(payload));
}

/// The payload of a bytes envelope is 16-aligned and inside its chunk, after the chunk header,
/// with its own header within the first `CHUNK_ALIGN` bytes.
fn check_placement(env: &Envelope) -> Range<usize> {
    let bytes = env.bytes().expect("a bytes envelope");
    let start = bytes.as_ptr() as usize;
    let chunk = env.payload_chunk().expect("bytes have a chunk");
    assert_eq!(start % 16, 0, "payload not 16-aligned");
    assert_eq!(
        chunk.start % CHUNK_ALIGN,
        0,
        "chunk not CHUNK_ALIGN-aligned"
    );
    assert!(
        start - 16 >= chunk.start + 64,
        "message header overlaps the chunk header"
    );
    assert!(
        start - 16 - chunk.start < CHUNK_ALIGN,
        "header beyond CHUNK_ALIGN"
    );
    assert!(
        start + bytes.len() <= chunk.end,
        "payload overruns its chunk"
    );
    start - 16..start + bytes.len()
}

/// Checks a payload on every path that takes it; returns what validation in place says (the
/// value, decoded), which all the other paths must agree with.
fn check_payload<T: FuzzMessage>(payload: &[u8]) -> Result<T, ExternalError> {
    // In place, on a 16-aligned copy.
    // (Capacity at least 1: an empty `AlignedVec` points at address 1, not 16-aligned.)
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len().max(1));
    aligned.extend_from_slice(payload);
    let validated = codec::validate::<T>(&aligned).map(T::decode);
    let needed = size_of::<Archived<T>>();
    match &validated {
        Ok(_) => assert!(payload.len() >= needed),
        Err(ExternalError::TooShort { needed: n, len }) => {
            assert_eq!((*n, *len), (needed, payload.len()));
            assert!(payload.len() < needed);
        }
        Err(ExternalError::Invalid(_)) => assert!(payload.len() >= needed),
        Err(e) => panic!("validate returned {e:?}"),
    }

    // In place, misaligned by 1..=15 bytes: always refused, before anything is read.
    let offset = 1 + payload.len() % 15;
    let mut shifted = AlignedVec::<16>::with_capacity(offset + payload.len());
    shifted.extend_from_slice(&[0xa5; 16][..offset]);
    shifted.extend_from_slice(payload);
    let misaligned = &shifted[offset..];
    match codec::validate::<T>(misaligned) {
        Err(ExternalError::Misaligned { address }) => {
            assert_eq!(address, misaligned.as_ptr() as usize)
        }
        Err(e) => panic!("misaligned bytes: {e:?}, expected Misaligned"),
        Ok(_) => panic!("misaligned bytes validated"),
    }

    // Copied into the arena and validated there.
    let mut writer = ArenaWriter::new(external_pool());
    let ingested = match codec::ingest::<T>(&mut writer, payload) {
        Ok(env) => {
            check_verified::<T>(&env, payload);
            let value = T::decode(codec::view::<T>(&env).expect("view of an ingested payload"));
            match &validated {
                Ok(v) => assert_eq!(&value, v),
                Err(e) => panic!("ingest accepted what validate rejects ({e:?}): {value:?}"),
            }
            // A broadcast copy of verified bytes is verified and reads the same.
            let shared = writer.share(&env).expect("share");
            assert_eq!(shared.kind(), Kind::Shared);
            assert!(shared.is_verified());
            assert_eq!(
                shared.bytes().map(<[u8]>::as_ptr),
                env.bytes().map(<[u8]>::as_ptr)
            );
            let again = T::decode(codec::view::<T>(&shared).expect("view of a shared copy"));
            assert_eq!(again, value);
            Some(env)
        }
        Err(ExternalError::Arena(e)) => panic!("arena refused {} bytes: {e:?}", payload.len()),
        Err(got) => {
            match &validated {
                Ok(v) => panic!("ingest rejected ({got:?}) what validate accepts: {v:?}"),
                Err(want) => assert!(same_error(&got, want), "ingest {got:?}, validate {want:?}"),
            }
            None
        }
    };

    // As unverified bytes: `view` validates them itself.
    let raw = writer
        .copy_bytes(T::TAG, payload)
        .expect("copy_bytes of an external payload");
    assert_eq!(raw.kind(), Kind::Bytes);
    assert!(!raw.is_verified());
    assert_eq!(raw.bytes(), Some(payload));
    check_placement(&raw);
    let shared_raw = writer.share(&raw).expect("share");
    assert!(!shared_raw.is_verified());
    for env in [&raw, &shared_raw] {
        match (codec::view::<T>(env), &validated) {
            (Ok(archived), Ok(v)) => assert_eq!(&T::decode(archived), v),
            (Err(ViewError::TooShort { needed: n, len }), Err(ExternalError::TooShort { .. })) => {
                assert_eq!((n, len), (needed, payload.len()))
            }
            (Err(ViewError::Invalid(_)), Err(ExternalError::Invalid(_))) => {}
            (got, want) => panic!(
                "view of unverified bytes: {:?}, validate: {want:?}",
                got.map(|_| ())
            ),
        }
    }

    // Another type's view is refused by tag, whatever the bytes.
    for env in ingested.iter().chain([&raw]) {
        let other = if T::TAG == Pod::TAG {
            Text::TAG
        } else {
            Pod::TAG
        };
        let refused = if other == Pod::TAG {
            codec::view::<Pod>(env).map(|_| ())
        } else {
            codec::view::<Text>(env).map(|_| ())
        };
        assert_eq!(
            refused,
            Err(ViewError::WrongType {
                expected: other,
                found: T::TAG
            })
        );
    }
    validated
}

/// Builds a value from the input, frames it, ingests the frame and reads it back; with
/// `corrupt`, then flips a few bytes of the frame and checks it again.
fn round_trip<T: FuzzMessage>(rest: &[u8], corrupt: bool) {
    let mut r = Reader::new(rest);
    let value = T::generate(&mut r, 0);
    let mut frame = codec::to_frame(&value).expect("to_frame");
    let payload_len = frame.len() - FRAME_HEADER_LEN;
    assert_eq!(
        frame[..FRAME_HEADER_LEN],
        frame_of(T::TAG, payload_len as u32, &[])[..],
        "to_frame header"
    );
    assert_eq!(FRAME_MAGIC, *b"ARS1");

    let mut writer = ArenaWriter::new(external_pool());
    let env = codec::ingest_frame::<T>(&mut writer, &frame).expect("a frame from to_frame");
    check_verified::<T>(&env, &frame[FRAME_HEADER_LEN..]);
    assert_eq!(T::decode(codec::view::<T>(&env).expect("view")), value);

    // Serialized in place, the archive is the same bytes.
    let encoded = codec::encode(&mut writer, &value).expect("encode");
    check_verified::<T>(&encoded, &frame[FRAME_HEADER_LEN..]);
    assert_eq!(T::decode(codec::view::<T>(&encoded).expect("view")), value);
    drop((env, encoded));

    let checked = check_payload::<T>(&frame[FRAME_HEADER_LEN..]);
    assert_eq!(checked.as_ref().ok(), Some(&value));
    check_frame::<T>(&frame);

    if corrupt {
        for _ in 0..1 + r.u8() % 4 {
            let at = r.u32() as usize % frame.len();
            frame[at] ^= r.u8() | 1;
        }
        check_frame::<T>(&frame);
    }
}

// ---------------------------------------------------------------------------------------------
// mailbox_ops
// ---------------------------------------------------------------------------------------------

/// Counts creations and drops of tracked plain values, by sequence number.
#[derive(Default)]
struct DropLog {
    /// seq -> (created, dropped)
    counts: Mutex<BTreeMap<u64, (u32, u32)>>,
}

impl DropLog {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<u64, (u32, u32)>) -> R) -> R {
        f(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn make(self: &Arc<Self>, seq: u64) -> Tracked {
        self.with(|m| m.entry(seq).or_default().0 += 1);
        Tracked {
            seq,
            log: Arc::clone(self),
        }
    }

    fn drops(&self, seq: u64) -> u32 {
        self.with(|m| m.get(&seq).map_or(0, |c| c.1))
    }

    fn assert_each_dropped_once(&self) {
        self.with(|m| {
            for (seq, (created, dropped)) in m.iter() {
                assert_eq!(
                    (*created, *dropped),
                    (1, 1),
                    "plain value #{seq}: created {created} times, dropped {dropped} times"
                );
            }
        });
    }
}

/// A plain value whose drops are counted.
struct Tracked {
    seq: u64,
    log: Arc<DropLog>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.log.with(|m| m.entry(self.seq).or_default().1 += 1);
    }
}

/// Too large for a 4 KiB chunk's inline limit: the plain large path.
struct BigPlain {
    tracked: Tracked,
    pad: [u8; 300],
}

/// Over-aligned: padding before the header on the inline path.
#[repr(align(64))]
struct Align64Plain {
    tracked: Tracked,
    check: u64,
}

/// Page-aligned (the largest alignment plain values support): the large path, header far
/// into its chunk.
#[repr(align(4096))]
struct PagePlain {
    tracked: Tracked,
    check: u64,
}

impl Drop for Align64Plain {
    fn drop(&mut self) {
        // Dropped in place in the arena, or after `take`: aligned either way.
        assert_eq!(
            self as *const Self as usize % 64,
            0,
            "Align64Plain misaligned"
        );
        assert_eq!(self.check, !self.tracked.seq, "Align64Plain corrupted");
    }
}

impl Drop for PagePlain {
    fn drop(&mut self) {
        assert_eq!(
            self as *const Self as usize % 4096,
            0,
            "PagePlain misaligned"
        );
        assert_eq!(self.check, !self.tracked.seq, "PagePlain corrupted");
    }
}

fn pattern_byte(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31).wrapping_add(i as u8) ^ (i >> 8) as u8
}

/// A recognisable payload: the sequence number (LE) first, then a pattern seeded by it.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    let head = seq.to_le_bytes();
    (0..len)
        .map(|i| head.get(i).copied().unwrap_or_else(|| pattern_byte(seq, i)))
        .collect()
}

fn fill_pattern(seq: u64, region: &mut [MaybeUninit<u8>]) {
    let head = seq.to_le_bytes();
    for (i, dst) in region.iter_mut().enumerate() {
        dst.write(head.get(i).copied().unwrap_or_else(|| pattern_byte(seq, i)));
    }
}

fn is_pattern(seq: u64, bytes: &[u8]) -> bool {
    let head = seq.to_le_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == head.get(i).copied().unwrap_or_else(|| pattern_byte(seq, i)))
}

/// Which plain type a message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlainType {
    Tracked,
    Big,
    Align64,
    Page,
    Vec(usize),
}

/// What the model expects of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Bytes written with `copy_bytes`: `len` bytes of `pattern(seq)`, tag `tag`.
    Bytes { seq: u64, len: usize, tag: u32 },
    /// A broadcast copy of such bytes.
    Shared { seq: u64, len: usize, tag: u32 },
    /// A plain value.
    Plain { seq: u64, ty: PlainType },
}

/// Checks an envelope against what the model expects, without consuming it.
fn verify(env: &Envelope, expect: &Expect) {
    match *expect {
        Expect::Bytes { seq, len, tag } | Expect::Shared { seq, len, tag } => {
            let kind = if matches!(expect, Expect::Bytes { .. }) {
                Kind::Bytes
            } else {
                Kind::Shared
            };
            assert_eq!(env.kind(), kind, "{expect:?}");
            assert_eq!(env.type_tag(), tag, "{expect:?}");
            assert_eq!(env.len(), len, "{expect:?}");
            assert!(!env.is_verified());
            assert!(env.plain_type_name().is_none());
            check_placement(env);
            let bytes = env.bytes().expect("bytes");
            assert!(is_pattern(seq, bytes), "payload of {expect:?} corrupted");
        }
        Expect::Plain { ty, .. } => {
            assert_eq!(env.kind(), Kind::Plain, "{expect:?}");
            assert_eq!(env.type_tag(), 0);
            assert!(env.bytes().is_none() && env.payload_chunk().is_none());
            assert!(!env.is_verified());
            let (is, name) = match ty {
                PlainType::Tracked => (env.is::<Tracked>(), core::any::type_name::<Tracked>()),
                PlainType::Big => (env.is::<BigPlain>(), core::any::type_name::<BigPlain>()),
                PlainType::Align64 => (
                    env.is::<Align64Plain>(),
                    core::any::type_name::<Align64Plain>(),
                ),
                PlainType::Page => (env.is::<PagePlain>(), core::any::type_name::<PagePlain>()),
                PlainType::Vec(_) => (env.is::<Vec<u8>>(), core::any::type_name::<Vec<u8>>()),
            };
            assert!(is, "{expect:?} holds {:?}", env.plain_type_name());
            assert_eq!(env.plain_type_name(), Some(name));
            assert!(!env.is::<u8>());
        }
    }
}

fn take_plain<T: 'static>(env: Envelope) -> T {
    match env.take::<T>() {
        Ok(v) => v,
        Err(env) => panic!("take::<{}> refused {env:?}", core::any::type_name::<T>()),
    }
}

/// Checks the value of a taken (or returned) plain message.
fn check_value(seq: u64, ty: PlainType, value: Box<dyn core::any::Any>) {
    match ty {
        PlainType::Tracked => assert_eq!(value.downcast_ref::<Tracked>().unwrap().seq, seq),
        PlainType::Big => {
            let v = value.downcast_ref::<BigPlain>().unwrap();
            assert_eq!(v.tracked.seq, seq);
            assert!(is_pattern(seq, &v.pad), "BigPlain corrupted");
        }
        PlainType::Align64 => {
            let v = value.downcast_ref::<Align64Plain>().unwrap();
            assert_eq!((v.tracked.seq, v.check), (seq, !seq));
        }
        PlainType::Page => {
            let v = value.downcast_ref::<PagePlain>().unwrap();
            assert_eq!((v.tracked.seq, v.check), (seq, !seq));
        }
        PlainType::Vec(len) => {
            let v = value.downcast_ref::<Vec<u8>>().unwrap();
            assert_eq!(v.len(), len);
            assert!(is_pattern(seq, v), "Vec payload corrupted");
        }
    }
}

/// Verifies and gets rid of a message: plain values are taken (and checked) or dropped in the
/// arena, as `take` says; bytes refuse `take`.
fn consume(env: Envelope, expect: Expect, take: bool, log: &DropLog) {
    verify(&env, &expect);
    match expect {
        Expect::Plain { seq, ty } => {
            if take {
                let value: Box<dyn core::any::Any> = match ty {
                    PlainType::Tracked => Box::new(take_plain::<Tracked>(env)),
                    PlainType::Big => Box::new(take_plain::<BigPlain>(env)),
                    PlainType::Align64 => Box::new(take_plain::<Align64Plain>(env)),
                    PlainType::Page => Box::new(take_plain::<PagePlain>(env)),
                    PlainType::Vec(_) => Box::new(take_plain::<Vec<u8>>(env)),
                };
                check_value(seq, ty, value);
            } else {
                // The wrong type is refused (the envelope comes back), then dropped in place.
                let env = env.take::<u16>().expect_err("take of the wrong type");
                drop(env);
            }
            if !matches!(ty, PlainType::Vec(_)) {
                assert_eq!(log.drops(seq), 1, "plain value #{seq} ({ty:?})");
            }
        }
        Expect::Bytes { .. } | Expect::Shared { .. } => {
            if let Ok(v) = env.take::<Tracked>() {
                panic!("took a plain value #{} out of bytes", v.seq);
            }
        }
    }
}

/// The system under test and its model.
struct Harness {
    writer: ArenaWriter,
    mailbox: Mailbox<Envelope>,
    capacity: Option<NonZeroU32>,
    token: Option<RunToken>,
    system: VecDeque<Expect>,
    user: VecDeque<Expect>,
    held: Vec<(Expect, Envelope)>,
    closed: bool,
    seq: u64,
    log: Arc<DropLog>,
}

const MAILBOX_CHUNK: usize = 4096;
/// The tag of system-lane messages (bytes).
const SYSTEM_TAG: u32 = TYPE_TAG_MASK;

/// The size of the large chunk `write_plain` takes for a `T` that does not go inline, by the
/// layout of a plain node (`#[repr(C)] { &'static PlainVTable, T }`) and of a chunk (a 64-byte
/// header, then the 16-byte message header right before the node).
fn plain_large_size<T>() -> Option<usize> {
    let node_align = align_of::<T>().max(8);
    let node_size =
        (8usize.next_multiple_of(align_of::<T>()) + size_of::<T>()).next_multiple_of(node_align);
    if node_align + 16 + node_size <= MAILBOX_CHUNK / 16 {
        return None;
    }
    let offset = (64usize + 16).next_multiple_of(node_align) - 16;
    Some((offset + 16 + node_size).next_multiple_of(16))
}

impl Harness {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn max_bytes(&self) -> usize {
        self.writer.config().get_max_bytes()
    }

    /// Checks what holds between any two operations.
    fn invariants(&self) {
        let queued = !self.user.is_empty() || !self.system.is_empty();
        assert_eq!(
            self.token.is_some(),
            queued,
            "a run token must exist exactly when messages are queued"
        );
        assert_eq!(self.mailbox.is_closed(), self.closed);
        assert_eq!(
            self.mailbox.occupancy(),
            self.capacity.map(|_| self.user.len())
        );
        let stats = self.writer.stats();
        assert!(
            stats.bytes <= stats.max_bytes,
            "pool over budget: {stats:?}"
        );
    }

    /// Pushes a user message; on success records it in the model.
    fn push_user(&mut self, env: Envelope, expect: Expect) {
        verify(&env, &expect);
        match self.mailbox.try_push(env) {
            Ok(token) => {
                assert!(!self.closed, "a closed mailbox accepted a message");
                let was_idle = self.token.is_none();
                assert_eq!(token.is_some(), was_idle, "token iff the mailbox was idle");
                if token.is_some() {
                    self.token = token;
                }
                self.user.push_back(expect);
            }
            Err(PushError::Full(env)) => {
                assert!(!self.closed);
                let cap = self.capacity.expect("an unbounded mailbox is never full");
                assert_eq!(self.user.len(), cap.get() as usize);
                self.give_back(env, expect);
            }
            Err(PushError::Closed(env)) => {
                assert!(self.closed, "an open mailbox refused as closed");
                self.give_back(env, expect);
            }
        }
    }

    /// A refused message comes back whole: take a plain value back out, drop bytes.
    fn give_back(&mut self, env: Envelope, expect: Expect) {
        consume(env, expect, true, &self.log);
    }

    fn send_bytes(&mut self, r: &mut Reader<'_>) {
        let raw = r.u16();
        let flags = r.u8();
        let len = match flags & 3 {
            0 => usize::from(raw % 64),
            1 => usize::from(raw % 300),
            2 => usize::from(raw % 9000),
            _ => usize::from(raw),
        };
        let seq = self.next_seq();
        let tag = (seq as u32).wrapping_mul(0x9e37_79b9) & TYPE_TAG_MASK;
        let result = self.writer.copy_bytes(tag, &pattern(seq, len));
        let needed = (64 + 16 + len).next_multiple_of(16);
        let large = len > self.writer.max_inline();
        match result {
            Ok(env) => {
                assert!(!large || needed <= self.max_bytes());
                let expect = Expect::Bytes { seq, len, tag };
                if flags & 4 != 0 {
                    // Keep the original; send a broadcast copy.
                    verify(&env, &expect);
                    match self.writer.share(&env) {
                        Ok(copy) => self.push_user(copy, Expect::Shared { seq, len, tag }),
                        Err(e) => assert_eq!(e, WriteError::Exhausted),
                    }
                    self.held.push((expect, env));
                } else {
                    self.push_user(env, expect);
                }
            }
            Err(WriteError::TooLarge { max_bytes }) => {
                assert_eq!(max_bytes, self.max_bytes());
                assert!(large && needed > max_bytes, "TooLarge for {len} bytes");
            }
            Err(WriteError::Exhausted) => assert!(!large || needed <= self.max_bytes()),
            Err(e) => panic!("copy_bytes: {e:?}"),
        }
    }

    fn send_plain(&mut self, r: &mut Reader<'_>) {
        let seq = self.next_seq();
        match r.u8() % 5 {
            0 => {
                let v = self.log.make(seq);
                self.plain(v, seq, PlainType::Tracked);
            }
            1 => {
                let mut pad = [0; 300];
                pad.copy_from_slice(&pattern(seq, 300));
                let v = BigPlain {
                    tracked: self.log.make(seq),
                    pad,
                };
                self.plain(v, seq, PlainType::Big);
            }
            2 => {
                let v = Align64Plain {
                    tracked: self.log.make(seq),
                    check: !seq,
                };
                self.plain(v, seq, PlainType::Align64);
            }
            3 => {
                let v = PagePlain {
                    tracked: self.log.make(seq),
                    check: !seq,
                };
                self.plain(v, seq, PlainType::Page);
            }
            _ => {
                let len = usize::from(r.u8()) * 4;
                self.plain(pattern(seq, len), seq, PlainType::Vec(len));
            }
        }
    }

    fn plain<T: Send + 'static>(&mut self, value: T, seq: u64, ty: PlainType) {
        let large = plain_large_size::<T>();
        match self.writer.write_plain(value) {
            Ok(env) => {
                assert!(large.is_none_or(|size| size <= self.max_bytes()));
                self.push_user(env, Expect::Plain { seq, ty });
            }
            Err((value, e)) => {
                match e {
                    WriteError::TooLarge { max_bytes } => {
                        assert_eq!(max_bytes, self.max_bytes());
                        assert!(
                            large.is_some_and(|size| size > max_bytes),
                            "TooLarge {ty:?}"
                        );
                    }
                    WriteError::Exhausted => {
                        assert!(large.is_none_or(|size| size <= self.max_bytes()))
                    }
                    e => panic!("write_plain: {e:?}"),
                }
                // The value came back whole, not dropped.
                if !matches!(ty, PlainType::Vec(_)) {
                    assert_eq!(self.log.drops(seq), 0);
                }
                check_value(seq, ty, Box::new(value));
            }
        }
    }

    fn send_system(&mut self, r: &mut Reader<'_>) {
        let seq = self.next_seq();
        let len = usize::from(r.u8() % 48);
        let env = match self.writer.copy_bytes(SYSTEM_TAG, &pattern(seq, len)) {
            Ok(env) => env,
            Err(e) => return assert_eq!(e, WriteError::Exhausted),
        };
        let expect = Expect::Bytes {
            seq,
            len,
            tag: SYSTEM_TAG,
        };
        match self.mailbox.push_system(env) {
            Ok(token) => {
                assert!(!self.closed);
                assert_eq!(token.is_some(), self.token.is_none());
                if token.is_some() {
                    self.token = token;
                }
                self.system.push_back(expect);
            }
            Err(env) => {
                assert!(self.closed);
                consume(env, expect, true, &self.log);
            }
        }
    }

    /// One run: pops up to `budget` messages (at least one is attempted), checking each
    /// against the model; holds or consumes them as `flags` say.
    fn receive(&mut self, budget: usize, flags: u8) {
        let Some(token) = self.token.take() else {
            return;
        };
        let mut run = self.mailbox.begin_run(token);
        assert_eq!(run.is_closed(), self.closed);
        for i in 0..budget.max(1) {
            let expected = match self.system.pop_front() {
                Some(e) => Some(Received::System(e)),
                None => self.user.pop_front().map(Received::User),
            };
            let (env, expect) = match (run.pop(), expected) {
                (None, None) => break,
                (Some(Received::System(env)), Some(Received::System(e)))
                | (Some(Received::User(env)), Some(Received::User(e))) => (env, e),
                (got, want) => panic!("popped {got:?}, the model expects {want:?}"),
            };
            let bit = (flags >> (i % 4)) & 0x11;
            if bit & 1 != 0 {
                verify(&env, &expect);
                self.held.push((expect, env));
            } else {
                consume(env, expect, bit & 0x10 != 0, &self.log);
            }
        }
        if flags & 0x80 != 0 && !self.closed {
            assert!(run.close());
            self.closed = true;
        }
        let more = !self.user.is_empty() || !self.system.is_empty();
        let token = run.finish(more);
        assert_eq!(
            token.is_some(),
            more,
            "finish hands the token back iff work is left"
        );
        self.token = token;
    }

    fn drop_held(&mut self, r: &mut Reader<'_>) {
        if self.held.is_empty() {
            return;
        }
        let at = usize::from(r.u8()) % self.held.len();
        let (expect, env) = self.held.swap_remove(at);
        consume(env, expect, r.bool(), &self.log);
    }

    fn share_held(&mut self, r: &mut Reader<'_>) {
        if self.held.is_empty() {
            return;
        }
        let at = usize::from(r.u8()) % self.held.len();
        let (expect, env) = &self.held[at];
        let (expect, result) = (*expect, self.writer.share(env));
        match (expect, result) {
            (Expect::Plain { .. }, Err(e)) => assert_eq!(e, WriteError::NotShareable),
            (Expect::Plain { .. }, Ok(env)) => panic!("shared a plain value: {env:?}"),
            (Expect::Bytes { seq, len, tag } | Expect::Shared { seq, len, tag }, Ok(copy)) => {
                assert_eq!(
                    copy.bytes().map(<[u8]>::as_ptr),
                    self.held[at].1.bytes().map(<[u8]>::as_ptr),
                    "a shared copy must not copy the payload"
                );
                self.push_user(copy, Expect::Shared { seq, len, tag });
            }
            (_, Err(e)) => assert_eq!(e, WriteError::Exhausted),
        }
    }
}

/// Fuzz target: mailbox and arena operations, single-threaded, against a `VecDeque` model.
///
/// Input: a configuration byte (pool budget: 2..=9 chunks of 4 KiB; bit 7: bounded mailbox),
/// an end-mode byte (how the mailbox is emptied at the end), then operations, one byte each
/// plus their arguments.
pub fn mailbox_ops(data: &[u8]) {
    mailbox_ops_with(data)
}

fn mailbox_ops_with(data: &[u8]) {
    let mut r = Reader::new(data);
    let config = r.u8();
    let end_mode = r.u8();
    let chunks = 2 + usize::from(config % 8);
    let capacity = if config & 0x80 != 0 {
        NonZeroU32::new(1 + u32::from(r.u8() % 16))
    } else {
        None
    };
    let pool = PoolConfig::default()
        .chunk_size(MAILBOX_CHUNK)
        .max_bytes(chunks * MAILBOX_CHUNK);
    let log = Arc::new(DropLog::default());
    let mut h = Harness {
        writer: ArenaWriter::new(pool),
        mailbox: Mailbox::with_capacity(capacity),
        capacity,
        token: None,
        system: VecDeque::new(),
        user: VecDeque::new(),
        held: Vec::new(),
        closed: false,
        seq: 0,
        log: Arc::clone(&log),
    };
    assert_eq!(h.writer.max_inline(), MAILBOX_CHUNK / 16);

    let mut steps = 0;
    while !r.is_empty() && steps < 4096 {
        steps += 1;
        match r.u8() % 12 {
            0 | 1 => h.send_bytes(&mut r),
            2 | 3 => h.send_plain(&mut r),
            4 => h.send_system(&mut r),
            5 | 6 => {
                let flags = r.u8();
                h.receive(1, flags);
            }
            7 => {
                let (budget, flags) = (usize::from(r.u8() % 16), r.u8());
                h.receive(budget, flags);
            }
            8 => h.drop_held(&mut r),
            9 => {
                assert_eq!(h.mailbox.close(), !h.closed);
                h.closed = true;
            }
            10 => h.writer.retire_current(),
            _ => h.share_held(&mut r),
        }
        h.invariants();
    }

    // Empty the mailbox: by runs, by `drain` (after moving the mailbox: queues hold no
    // pointer into themselves, so a mailbox with messages may move; its token may not), or
    // by dropping it with the messages inside. `h` itself never moves: the run token names
    // the mailbox by its address.
    let (system, user) = (&mut h.system, &mut h.user);
    match end_mode % 3 {
        0 => {
            while let Some(t) = h.token.take() {
                let mut run = h.mailbox.begin_run(t);
                while let Some(got) = run.pop() {
                    let (env, expect) = match got {
                        Received::System(env) => (env, system.pop_front()),
                        Received::User(env) => {
                            assert!(system.is_empty(), "a user message before a signal");
                            (env, user.pop_front())
                        }
                    };
                    let expect = expect.expect("popped a message the model does not have");
                    consume(env, expect, true, &log);
                }
                h.token = run.finish(false);
            }
        }
        1 => {
            h.token = None; // the token is given up: the mailbox is emptied without a run
            let mut moved = Box::new(core::mem::replace(&mut h.mailbox, Mailbox::unbounded()));
            moved.drain(|got| {
                let (env, expect) = match got {
                    Received::System(env) => (env, system.pop_front()),
                    Received::User(env) => {
                        assert!(system.is_empty(), "drain: a user message before a signal");
                        (env, user.pop_front())
                    }
                };
                consume(
                    env,
                    expect.expect("drained an unknown message"),
                    false,
                    &log,
                );
            });
        }
        _ => {
            // Every message is dropped once with the mailbox (the drop log checks it).
            h.token = None; // the token is given up: the mailbox is emptied without a run
            drop(core::mem::replace(&mut h.mailbox, Mailbox::unbounded()));
            system.clear();
            user.clear();
        }
    }
    assert!(
        system.is_empty() && user.is_empty(),
        "messages lost: {system:?} {user:?}"
    );
    let Harness {
        mut writer,
        mailbox,
        mut held,
        ..
    } = h;
    drop(mailbox);

    // Drop what is still held, in an input-chosen order.
    while !held.is_empty() {
        let at = usize::from(r.u8()) % held.len();
        let (expect, env) = held.swap_remove(at);
        consume(env, expect, r.bool(), &log);
    }

    // Nothing refers to any chunk now.
    check_idle_pool(&mut writer);
    drop(writer);
    log.assert_each_dropped_once();
}

// ---------------------------------------------------------------------------------------------
// arena_layout
// ---------------------------------------------------------------------------------------------

/// Plain values of several sizes and alignments, each checking its contents when dropped (in
/// place in the arena, or after `take`).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Align64Bytes([u8; 64]);

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Align4096Bytes([u8; 100]);

/// A plain value with its expected contents.
struct Checked<T: Copy + 'static> {
    value: T,
    seq: u64,
}

impl<T: Copy + 'static> Drop for Checked<T> {
    fn drop(&mut self) {
        assert_eq!(
            self as *const Self as usize % align_of::<Self>(),
            0,
            "plain value misaligned"
        );
        // SAFETY: `T` is one of the plain-bytes types below (arrays of integers and
        // byte-array wrappers): every byte of it is initialised and a valid `u8`.
        let bytes = unsafe {
            core::slice::from_raw_parts((&self.value as *const T).cast::<u8>(), size_of::<T>())
        };
        assert!(is_pattern(self.seq, bytes), "plain value corrupted");
    }
}

fn checked<T: Copy + 'static>(seq: u64, mut value: T) -> Checked<T> {
    // SAFETY: as in `Checked::drop`: `T` is plain bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(
            (&mut value as *mut T).cast::<MaybeUninit<u8>>(),
            size_of::<T>(),
        )
    };
    fill_pattern(seq, bytes);
    Checked { value, seq }
}

/// Takes a plain value of the right type out of an envelope and drops it (it checks itself).
type TakeFn = fn(Envelope) -> Result<(), Envelope>;

fn take_checked<T: Copy + 'static>(env: Envelope) -> Result<(), Envelope> {
    env.take::<Checked<T>>().map(drop)
}

/// A live envelope of the layout target and what it should hold.
struct Live {
    env: Envelope,
    seq: u64,
    /// The payload length of bytes; `None` for a plain value.
    len: Option<usize>,
    /// For a plain value: how to take it out.
    take: Option<TakeFn>,
}

struct Layout {
    writer: ArenaWriter,
    chunk_size: usize,
    live: Vec<Live>,
    seq: u64,
    written: usize,
}

/// Interesting sizes: both sides of the inline limit, a chunk's room, the large-chunk sizes
/// and the budget.
fn boundary_size(r: &mut Reader<'_>, chunk: usize, max: usize) -> usize {
    let inline = chunk / 16;
    let bases = [
        0,
        16,
        inline,
        chunk - 80,
        chunk,
        2 * chunk - 80,
        CHUNK_ALIGN - 80,
        CHUNK_ALIGN,
        max - 80,
        max,
    ];
    let base = bases[usize::from(r.u8()) % bases.len()];
    let delta = isize::from(r.u8() % 33) - 16;
    base.saturating_add_signed(delta)
}

impl Layout {
    fn max_bytes(&self) -> usize {
        self.writer.config().get_max_bytes()
    }

    fn check_pool(&self) {
        let stats = self.writer.stats();
        assert!(
            stats.bytes <= stats.max_bytes,
            "pool over budget: {stats:?}"
        );
        assert_eq!(stats.max_bytes, self.max_bytes());
    }

    fn verify(&self, live: &Live) {
        match live.len {
            Some(len) => {
                assert_eq!(live.env.len(), len);
                check_placement(&live.env);
                assert!(
                    is_pattern(live.seq, live.env.bytes().expect("bytes")),
                    "payload #{} corrupted",
                    live.seq
                );
            }
            None => assert_eq!(live.env.kind(), Kind::Plain),
        }
    }

    /// A new bytes message must not overlap any live one (header and payload).
    fn check_disjoint(&self, env: &Envelope) {
        let new = check_placement(env);
        for other in &self.live {
            if other.len.is_none() || other.env.kind() == Kind::Shared {
                continue;
            }
            let old = check_placement(&other.env);
            assert!(
                new.end <= old.start || old.end <= new.start,
                "message #{} at {new:x?} overlaps #{} at {old:x?}",
                self.seq,
                other.seq
            );
        }
    }

    fn write(&mut self, len: usize, mode: u8) {
        if self.written > 8 << 20 {
            return;
        }
        self.written += len;
        self.seq += 1;
        let seq = self.seq;
        let chunk_size = self.chunk_size;
        let inline = self.writer.max_inline();
        assert_eq!(inline, chunk_size / 16);
        let max = self.max_bytes();
        let mut last_region = None;
        let mut calls = 0;
        let fill = |region: &mut [MaybeUninit<u8>]| {
            calls += 1;
            assert_eq!(
                region.as_ptr() as usize % 16,
                0,
                "fill region not 16-aligned"
            );
            last_region = Some((region.as_ptr() as usize, region.len()));
            // Scribble over the region offered (all of it, or a prefix): it is free space,
            // so no live message may be inside it.
            let scribble = if mode % 5 == 3 {
                region.len()
            } else {
                region.len().min(len + 64)
            };
            for b in &mut region[..scribble] {
                b.write(0xee);
            }
            if mode % 5 == 4 {
                return Err(FillError::Failed(()));
            }
            if region.len() < len || (mode % 5 == 3 && calls == 1) {
                return Err(FillError::Overflow);
            }
            fill_pattern(seq, &mut region[..len]);
            Ok(len)
        };
        let result = match mode % 5 {
            0 | 3 | 4 => self.writer.write_bytes(seq as u32, fill),
            1 => self.writer.write_bytes_sized(seq as u32, len, fill),
            _ => self.writer.write_bytes_sized(seq as u32, len / 2, fill),
        };
        self.check_pool();
        match result {
            Ok(env) => {
                assert!(mode % 5 != 4);
                assert_eq!(env.kind(), Kind::Bytes);
                assert_eq!(env.type_tag(), seq as u32 & TYPE_TAG_MASK);
                let (start, room) = last_region.expect("fill was called");
                let bytes = env.bytes().expect("bytes");
                assert_eq!(
                    bytes.as_ptr() as usize,
                    start,
                    "payload is not where fill wrote"
                );
                assert!(len <= room);
                self.check_disjoint(&env);
                let chunk = env.payload_chunk().expect("bytes");
                if mode % 5 == 1 && len > inline {
                    // Straight to a dedicated large chunk: the header right after the chunk's.
                    assert_eq!(
                        start,
                        chunk.start + 80,
                        "large message not at the chunk start"
                    );
                    assert!(chunk.len() >= (len + 80).next_multiple_of(16));
                } else if len <= inline && mode % 5 != 3 {
                    assert_eq!(
                        chunk.len(),
                        chunk_size,
                        "a small message not in a regular chunk"
                    );
                }
                let live = Live {
                    env,
                    seq,
                    len: Some(len),
                    take: None,
                };
                self.verify(&live);
                self.live.push(live);
            }
            Err(WriteError::TooLarge { max_bytes }) => {
                assert_eq!(max_bytes, max);
                assert!(mode % 5 != 4);
                // Sized: refused up front; unsized: after doubling up to the whole budget.
                assert!(
                    (len + 80).next_multiple_of(16) > max,
                    "TooLarge for {len} bytes, budget {max}"
                );
            }
            Err(WriteError::Exhausted) => {}
            Err(WriteError::Failed(())) => assert_eq!(mode % 5, 4),
            Err(WriteError::NotShareable) => panic!("write_bytes: NotShareable"),
        }
    }

    fn plain<T: Copy + Send + 'static>(&mut self, value: T) {
        self.seq += 1;
        let seq = self.seq;
        match self.writer.write_plain(checked(seq, value)) {
            Ok(env) => {
                assert!(env.is::<Checked<T>>());
                self.live.push(Live {
                    env,
                    seq,
                    len: None,
                    take: Some(take_checked::<T>),
                })
            }
            // The value comes back (and checks itself when dropped here).
            Err((back, e)) => {
                assert_eq!(back.seq, seq);
                assert!(matches!(
                    e,
                    WriteError::Exhausted | WriteError::TooLarge { .. }
                ));
            }
        }
        self.check_pool();
    }

    fn plain_of(&mut self, which: u8) {
        match which % 8 {
            0 => self.plain([0u8; 1]),
            1 => self.plain([0u8; 17]),
            2 => self.plain([0u8; 255]),
            3 => self.plain([0u8; 3000]),
            4 => self.plain([0u16; 3]),
            5 => self.plain([0u128; 2]),
            6 => self.plain(Align64Bytes([0; 64])),
            _ => self.plain(Align4096Bytes([0; 100])),
        }
    }

    fn release(&mut self, at: usize, take: bool) {
        if self.live.is_empty() {
            return;
        }
        let live = self.live.swap_remove(at % self.live.len());
        self.verify(&live);
        match live.take {
            // Moved out and dropped here (`Checked` checks its contents and alignment).
            Some(take_fn) if take => {
                if let Err(env) = take_fn(live.env) {
                    panic!("take refused its own type: {env:?}");
                }
            }
            // Dropped in place in the arena (the same checks run there).
            _ => drop(live.env),
        }
    }

    fn share(&mut self, at: usize) {
        if self.live.is_empty() {
            return;
        }
        let at = at % self.live.len();
        match self.writer.share(&self.live[at].env) {
            Ok(copy) => {
                let original = &self.live[at];
                assert!(original.len.is_some(), "shared a plain value");
                assert_eq!(
                    copy.bytes().map(<[u8]>::as_ptr),
                    original.env.bytes().map(<[u8]>::as_ptr)
                );
                let live = Live {
                    env: copy,
                    seq: original.seq,
                    len: original.len,
                    take: None,
                };
                self.verify(&live);
                self.live.push(live);
            }
            Err(WriteError::NotShareable) => assert!(self.live[at].len.is_none()),
            Err(e) => assert_eq!(e, WriteError::Exhausted),
        }
        self.check_pool();
    }
}

/// Fuzz target: writes of sizes around chunk boundaries and on the large path, and plain
/// values of several sizes and alignments, into one writer.
///
/// Input: a configuration byte (bits 0..2: chunk size 4, 8, 16 or 64 KiB; bits 2..5: budget
/// 1..=64 chunks; bit 5: plus 8..=56 bytes), then operations, one byte each plus their
/// arguments.
pub fn arena_layout(data: &[u8]) {
    arena_layout_with(data)
}

fn arena_layout_with(data: &[u8]) {
    let mut r = Reader::new(data);
    let config = r.u8();
    let chunk_size = [4096, 8192, 16384, 65536][usize::from(config & 3)];
    let mut max_bytes = chunk_size * [1, 2, 3, 5, 8, 16, 32, 64][usize::from((config >> 2) & 7)];
    if config & 0x20 != 0 {
        // A budget that is not a multiple of 16 (nor of the chunk size).
        max_bytes += 8 + 16 * usize::from(config >> 6);
    }
    let pool = PoolConfig::default()
        .chunk_size(chunk_size)
        .max_bytes(max_bytes);
    assert_eq!(pool.get_chunk_size(), chunk_size);
    let mut a = Layout {
        writer: ArenaWriter::new(pool),
        chunk_size,
        live: Vec::new(),
        seq: 0,
        written: 0,
    };
    let mut steps = 0;
    while !r.is_empty() && steps < 512 {
        steps += 1;
        match r.u8() % 10 {
            0 | 1 => {
                let len = r.u32() as usize % 300_001;
                let mode = r.u8();
                a.write(len, mode);
            }
            2..=4 => {
                let len = boundary_size(&mut r, chunk_size, max_bytes);
                let mode = r.u8();
                a.write(len, mode);
            }
            5 => {
                let which = r.u8();
                a.plain_of(which);
            }
            6 => {
                let (at, take) = (usize::from(r.u8()), r.bool());
                a.release(at, take);
            }
            7 => a.writer.retire_current(),
            8 => {
                for live in &a.live {
                    a.verify(live);
                }
            }
            _ => {
                let at = usize::from(r.u8());
                a.share(at);
            }
        }
    }
    for live in &a.live {
        a.verify(live);
    }
    while !a.live.is_empty() {
        let at = usize::from(r.u8());
        a.release(at, true);
    }
    check_idle_pool(&mut a.writer);
}
