//! cargo-fuzz target `arena_layout`. The logic is in fuzz/src/lib.rs, which
//! tests/fuzz_regressions.rs also runs on every file in fuzz/regressions/arena_layout/.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airssys_rt_fuzz::arena_layout(data));
