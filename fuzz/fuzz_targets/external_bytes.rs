//! cargo-fuzz target `external_bytes`. The logic is in fuzz/src/lib.rs, which
//! tests/fuzz_regressions.rs also runs on every file in fuzz/regressions/external_bytes/.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airssys_rt_fuzz::external_bytes(data));
