//! airssys-rt: an actor runtime with Erlang/OTP fault tolerance.
//!
//! The lock-free core lives in [`airssys_rt_mailbox`], re-exported here as [`mailbox`].

pub use airssys_rt_mailbox as mailbox;
