//! airssys-rt: an actor runtime with Erlang/OTP fault tolerance.
//!
//! * [`mailbox`] (the `airssys-rt-mailbox` crate): the lock-free core: intrusive MPSC
//!   mailboxes, the scheduling state word, arena chunks.
//! * [`codec`]: messages as rkyv archives written straight into arena chunks and read in
//!   place; bytes from outside the process validated before use.
//! * [`arena`]: each sending thread's arena writer, and non-blocking or waiting sends.

pub use airssys_rt_mailbox as mailbox;
pub use rkyv;

pub mod arena;
pub mod codec;

pub use codec::Message;
