//! cargo-fuzz target `mailbox_ops`. The logic is in fuzz/src/lib.rs, which
//! tests/fuzz_regressions.rs also runs on every file in fuzz/regressions/mailbox_ops/.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airssys_rt_fuzz::mailbox_ops(data));
