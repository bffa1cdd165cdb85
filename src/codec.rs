//! Messages as rkyv archives, written straight into arena chunks and read in place.
//!
//! * A message type derives rkyv's `Archive` and `Serialize` and implements [`Message`] (most
//!   simply with the [`message!`](crate::message) macro), which gives it a stable 30-bit
//!   [type tag](Message::TAG).
//! * [`encode`] serializes *directly into* the free region of the sending thread's arena chunk:
//!   no intermediate buffer, and no allocation once the thread's scratch space is warm. The
//!   result is a verified [`Envelope`] (our own serializer wrote it).
//! * [`view`] gives the receiver `&Archived<M>` pointing into that same chunk. For verified
//!   bytes it checks the type tag and the length, then reads unchecked; any other bytes are
//!   validated with bytecheck first.
//! * [`ingest`] and [`ingest_frame`] take bytes from outside the process (a socket, a file, a
//!   WASM guest): they are copied into the arena and validated there before anyone can read
//!   them, and every kind of bad input gets its own [`ExternalError`].
//!
//! The archived format is pinned by the crate's rkyv features (`little_endian`,
//! `pointer_width_32`), so the bytes mean the same in every process.
//!
//! ```
//! use airssys_rt::codec::{self, Message};
//! use airssys_rt::mailbox::{ArenaWriter, PoolConfig};
//!
//! #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
//! struct Greet {
//!     name: String,
//!     times: u32,
//! }
//! airssys_rt::message!(Greet);
//!
//! let mut writer = ArenaWriter::new(PoolConfig::default());
//! let env = codec::encode(&mut writer, &Greet { name: "Ada".into(), times: 3 }).unwrap();
//! let greet: &ArchivedGreet = codec::view::<Greet>(&env).unwrap(); // in place, no copy
//! assert_eq!(greet.name, "Ada");
//! assert_eq!(greet.times, 3);
//! ```

use core::cell::{Cell, RefCell};
use core::fmt;
use core::mem::MaybeUninit;

use rkyv::api::low::LowValidator;
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::{self, Failure, Source, Strategy};
use rkyv::ser::allocator::{Arena, ArenaHandle};
use rkyv::ser::{Positional, Serializer, Writer};
use rkyv::{Archive, Archived, Serialize};

use crate::mailbox::{ArenaWriter, Envelope, FillError, WriteError, TYPE_TAG_MASK};

/// The serializer [`encode`] runs: rkyv's low-level serializer over a region of an arena
/// chunk, with the thread's scratch arena.
pub type ArenaSerializer<'a> = Strategy<Serializer<RegionWriter<'a>, ArenaHandle<'a>, ()>, Failure>;

/// The validator used for bytes that were not written by our serializer.
pub type ArchiveValidator<'a> = LowValidator<'a, rancor::Error>;

/// A message type that travels as an rkyv archive.
///
/// Implement it with [`message!`](crate::message) (which derives the tag from the type's path),
/// or by hand with a tag from [`type_tag`]. The tag must stay the same for as long as bytes of
/// the type may be exchanged (across processes, across versions); change it when the type's
/// layout changes.
pub trait Message:
    Archive<Archived: for<'a> CheckBytes<ArchiveValidator<'a>>>
    + for<'a> Serialize<ArenaSerializer<'a>>
    + Send
    + 'static
{
    /// The stable type tag (30 bits; see [`type_tag`]).
    const TAG: u32;
}

/// Implements [`Message`] for types, with the tag derived from the type's module path and name.
///
/// ```
/// #[derive(rkyv::Archive, rkyv::Serialize)]
/// struct Ping(u64);
/// airssys_rt::message!(Ping);
/// use airssys_rt::codec::Message;
/// assert_eq!(Ping::TAG, airssys_rt::codec::type_tag(concat!(module_path!(), "::", "Ping")));
/// ```
#[macro_export]
macro_rules! message {
    ($($ty:ident),+ $(,)?) => {$(
        impl $crate::codec::Message for $ty {
            const TAG: u32 = $crate::codec::type_tag(concat!(module_path!(), "::", stringify!($ty)));
        }
    )+};
}

/// A stable 30-bit type tag for a name: FNV-1a, folded to 30 bits (the top two bits of a
/// message header say what kind of payload follows).
pub const fn type_tag(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    (hash ^ (hash >> 30)) & TYPE_TAG_MASK
}

/// rkyv's writer over a region of an arena chunk. It never grows: when the region is too
/// small it records the overflow (so the arena can retry with a larger region) and fails.
pub struct RegionWriter<'a> {
    region: &'a mut [MaybeUninit<u8>],
    pos: usize,
    overflowed: &'a Cell<bool>,
}

impl Positional for RegionWriter<'_> {
    #[inline]
    fn pos(&self) -> usize {
        self.pos
    }
}

impl<E: Source> Writer<E> for RegionWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        let end = self.pos + bytes.len();
        let Some(dst) = self.region.get_mut(self.pos..end) else {
            self.overflowed.set(true);
            return Err(E::new(RegionFull));
        };
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the lengths are equal.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                dst.as_mut_ptr().cast::<u8>(),
                bytes.len(),
            );
        }
        self.pos = end;
        Ok(())
    }
}

#[derive(Debug)]
struct RegionFull;

impl fmt::Display for RegionFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("arena region full")
    }
}

impl std::error::Error for RegionFull {}

/// Serialization failed for a reason other than room (rkyv reported an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// The message's type tag.
    pub tag: u32,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rkyv could not serialize the message with tag {:#x}",
            self.tag
        )
    }
}

impl std::error::Error for EncodeError {}

thread_local! {
    /// Scratch space for rkyv's serializer (resolver state of collections): reused, so a warm
    /// thread serializes without allocating.
    static SCRATCH: RefCell<Arena> = RefCell::new(Arena::new());
}

/// Serializes `msg` in place into `writer`'s arena. The envelope is verified: receivers read it
/// without validation.
///
/// Errors: [`WriteError::Exhausted`] when the pool has no room (the message is not consumed:
/// retry or wait), [`WriteError::TooLarge`], or [`WriteError::Failed`] if rkyv fails.
pub fn encode<M: Message>(
    writer: &mut ArenaWriter,
    msg: &M,
) -> Result<Envelope, WriteError<EncodeError>> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut arena) => encode_with(writer, msg, &mut arena),
        // Re-entered from inside a serializer: use a fresh scratch arena.
        Err(_) => encode_with(writer, msg, &mut Arena::new()),
    })
}

fn encode_with<M: Message>(
    writer: &mut ArenaWriter,
    msg: &M,
    arena: &mut Arena,
) -> Result<Envelope, WriteError<EncodeError>> {
    let fill = |region: &mut [MaybeUninit<u8>]| {
        let overflowed = Cell::new(false);
        let out = RegionWriter {
            region,
            pos: 0,
            overflowed: &overflowed,
        };
        match rkyv::api::low::to_bytes_in_with_alloc::<_, _, Failure>(msg, out, arena.acquire()) {
            Ok(out) => Ok(out.pos),
            Err(_) if overflowed.get() => Err(FillError::Overflow),
            Err(_) => Err(FillError::Failed(EncodeError { tag: M::TAG })),
        }
    };
    // SAFETY: `fill` returns `Ok(len)` only when rkyv's serializer completed an archive of `M`
    // in the first `len` bytes of the region (root last, as `access` expects), and the region
    // starts 16-byte aligned, which keeps every archived object aligned (rkyv pads relative to
    // the writer's position).
    unsafe { writer.write_verified(M::TAG, 0, fill) }
}

/// Why an envelope could not be viewed as a message type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// The envelope holds another type.
    WrongType {
        /// The tag of the type asked for.
        expected: u32,
        /// The tag in the envelope.
        found: u32,
    },
    /// The envelope holds a plain Rust value, not bytes.
    NotArchived,
    /// The bytes are shorter than the archived root object.
    TooShort {
        /// Bytes needed at least.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// Unverified bytes failed validation.
    Invalid(String),
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::WrongType { expected, found } => {
                write!(
                    f,
                    "wrong message type: expected tag {expected:#x}, found {found:#x}"
                )
            }
            ViewError::NotArchived => {
                f.write_str("the envelope holds a plain value, not an archive")
            }
            ViewError::TooShort { needed, len } => {
                write!(f, "archive too short: {len} bytes, the root needs {needed}")
            }
            ViewError::Invalid(why) => write!(f, "invalid archive: {why}"),
        }
    }
}

impl std::error::Error for ViewError {}

/// The archived message in `env`, read in place (no copy, no allocation).
///
/// Verified bytes (written by [`encode`], or validated by [`ingest`]) are accessed unchecked
/// once the type tag matches and the length covers the root; other bytes are validated with
/// bytecheck first.
pub fn view<M: Message>(env: &Envelope) -> Result<&Archived<M>, ViewError> {
    if env.type_tag() != M::TAG {
        return Err(ViewError::WrongType {
            expected: M::TAG,
            found: env.type_tag(),
        });
    }
    let bytes = env.bytes().ok_or(ViewError::NotArchived)?;
    let needed = core::mem::size_of::<Archived<M>>();
    if bytes.len() < needed {
        return Err(ViewError::TooShort {
            needed,
            len: bytes.len(),
        });
    }
    if env.is_verified() {
        #[cfg(debug_assertions)]
        if let Err(e) = rkyv::api::low::access::<Archived<M>, rancor::Error>(bytes) {
            unreachable!("verified bytes failed validation (a bug in airssys-rt): {e}");
        }
        // SAFETY: verified bytes are an archive of the type named by the tag (the contract of
        // `ArenaWriter::write_verified`), the tag is `M::TAG`, the slice ends exactly where the
        // archive ends (the header records the exact length), it starts 16-byte aligned, and
        // it is never written after publication.
        Ok(unsafe { rkyv::api::access_unchecked::<Archived<M>>(bytes) })
    } else {
        rkyv::api::low::access::<Archived<M>, rancor::Error>(bytes)
            .map_err(|e| ViewError::Invalid(e.to_string()))
    }
}

/// The magic number at the start of a [frame](ingest_frame): `b"ARS1"`.
pub const FRAME_MAGIC: [u8; 4] = *b"ARS1";
/// The length of a frame header.
pub const FRAME_HEADER_LEN: usize = 16;

/// Why bytes from outside the process were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ExternalError {
    /// Fewer bytes than a frame header.
    ShortHeader {
        /// Bytes present.
        len: usize,
    },
    /// The frame does not start with [`FRAME_MAGIC`].
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The frame's reserved field is not zero (a newer or corrupted format).
    BadReserved {
        /// The value found.
        found: u32,
    },
    /// The frame carries another message type.
    WrongType {
        /// The tag of the type asked for.
        expected: u32,
        /// The tag in the frame.
        found: u32,
    },
    /// The frame declares more payload bytes than it has.
    Truncated {
        /// Payload bytes declared.
        declared: usize,
        /// Payload bytes present.
        available: usize,
    },
    /// The frame has bytes after its declared payload.
    TrailingBytes {
        /// Payload bytes declared.
        declared: usize,
        /// Payload bytes present.
        available: usize,
    },
    /// Bytes validated in place do not start at a 16-byte boundary.
    Misaligned {
        /// The address of the first byte.
        address: usize,
    },
    /// The payload is shorter than the archived root object.
    TooShort {
        /// Bytes needed at least.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// bytecheck rejected the payload (the message says why).
    Invalid(String),
    /// The arena could not take the payload.
    Arena(WriteError),
}

impl fmt::Display for ExternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalError::ShortHeader { len } => {
                write!(
                    f,
                    "frame too short: {len} bytes, a header is {FRAME_HEADER_LEN}"
                )
            }
            ExternalError::BadMagic { found } => {
                write!(f, "bad frame magic {found:02x?}, expected \"ARS1\"")
            }
            ExternalError::BadReserved { found } => {
                write!(f, "frame reserved field is {found:#x}, expected 0")
            }
            ExternalError::WrongType { expected, found } => {
                write!(
                    f,
                    "wrong message type: expected tag {expected:#x}, found {found:#x}"
                )
            }
            ExternalError::Truncated {
                declared,
                available,
            } => {
                write!(
                    f,
                    "truncated payload: {declared} bytes declared, {available} present"
                )
            }
            ExternalError::TrailingBytes {
                declared,
                available,
            } => {
                write!(
                    f,
                    "trailing bytes: {declared} bytes declared, {available} present"
                )
            }
            ExternalError::Misaligned { address } => {
                write!(
                    f,
                    "misaligned payload at {address:#x}: archives must start 16-byte aligned"
                )
            }
            ExternalError::TooShort { needed, len } => {
                write!(f, "payload too short: {len} bytes, the root needs {needed}")
            }
            ExternalError::Invalid(why) => write!(f, "invalid archive: {why}"),
            ExternalError::Arena(e) => write!(f, "arena: {e}"),
        }
    }
}

impl std::error::Error for ExternalError {}

/// Validates `bytes` in place as an archive of `M` (no copy). The bytes must start 16-byte
/// aligned and end exactly where the archive ends.
pub fn validate<M: Message>(bytes: &[u8]) -> Result<&Archived<M>, ExternalError> {
    let address = bytes.as_ptr() as usize;
    if !address.is_multiple_of(16) {
        return Err(ExternalError::Misaligned { address });
    }
    let needed = core::mem::size_of::<Archived<M>>();
    if bytes.len() < needed {
        return Err(ExternalError::TooShort {
            needed,
            len: bytes.len(),
        });
    }
    rkyv::api::low::access::<Archived<M>, rancor::Error>(bytes)
        .map_err(|e| ExternalError::Invalid(e.to_string()))
}

/// Takes the payload of an `M` from outside the process: copies it into the arena (aligned),
/// validates it there, and returns a verified envelope. Invalid bytes never reach a reader.
pub fn ingest<M: Message>(
    writer: &mut ArenaWriter,
    payload: &[u8],
) -> Result<Envelope, ExternalError> {
    let mut invalid = None;
    let fill = |region: &mut [MaybeUninit<u8>]| {
        let Some(dst) = region.get_mut(..payload.len()) else {
            return Err(FillError::Overflow);
        };
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the lengths are equal.
        let dst = unsafe {
            core::ptr::copy_nonoverlapping(
                payload.as_ptr(),
                dst.as_mut_ptr().cast::<u8>(),
                payload.len(),
            );
            core::slice::from_raw_parts(dst.as_ptr().cast::<u8>(), payload.len())
        };
        match validate::<M>(dst) {
            Ok(_) => Ok(payload.len()),
            Err(e) => {
                invalid = Some(e);
                Err(FillError::Failed(()))
            }
        }
    };
    // SAFETY: `fill` returns `Ok(len)` only after bytecheck validated the `len` bytes it copied,
    // in place and 16-byte aligned, as an archive of `M`, whose tag we pass.
    match unsafe { writer.write_verified(M::TAG, payload.len(), fill) } {
        Ok(env) => Ok(env),
        Err(WriteError::Failed(())) => Err(invalid.take().expect("set on failure")),
        Err(WriteError::Exhausted) => Err(ExternalError::Arena(WriteError::Exhausted)),
        Err(WriteError::TooLarge { max_bytes }) => {
            Err(ExternalError::Arena(WriteError::TooLarge { max_bytes }))
        }
        Err(WriteError::NotShareable) => Err(ExternalError::Arena(WriteError::NotShareable)),
    }
}

/// Parses a frame, checks it carries an `M`, and [`ingest`]s its payload.
///
/// A frame is a 16-byte header and the payload:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `b"ARS1"` |
/// | 4 | 4 | type tag, little-endian `u32` |
/// | 8 | 4 | payload length, little-endian `u32` |
/// | 12 | 4 | reserved, zero |
/// | 16 | len | the rkyv archive |
pub fn ingest_frame<M: Message>(
    writer: &mut ArenaWriter,
    frame: &[u8],
) -> Result<Envelope, ExternalError> {
    let payload = parse_frame(M::TAG, frame)?;
    ingest::<M>(writer, payload)
}

/// Checks a frame's header for a message with tag `expected`; returns the payload.
pub fn parse_frame(expected: u32, frame: &[u8]) -> Result<&[u8], ExternalError> {
    let Some((header, payload)) = frame.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(ExternalError::ShortHeader { len: frame.len() });
    };
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let magic = [header[0], header[1], header[2], header[3]];
    if magic != FRAME_MAGIC {
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
    let declared = word(8) as usize;
    let available = payload.len();
    match declared.cmp(&available) {
        core::cmp::Ordering::Greater => Err(ExternalError::Truncated {
            declared,
            available,
        }),
        core::cmp::Ordering::Less => Err(ExternalError::TrailingBytes {
            declared,
            available,
        }),
        core::cmp::Ordering::Equal => Ok(payload),
    }
}

/// Serializes `msg` into a new frame (for sending to another process, and for tests).
pub fn to_frame<M: Message>(msg: &M) -> Result<Vec<u8>, EncodeError> {
    let mut writer = ArenaWriter::new(crate::mailbox::PoolConfig::default().max_bytes(1 << 30));
    let env = encode(&mut writer, msg).map_err(|_| EncodeError { tag: M::TAG })?;
    let payload = env.bytes().expect("encode writes bytes");
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(&FRAME_MAGIC);
    frame.extend_from_slice(&M::TAG.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}
