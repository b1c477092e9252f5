//! libFuzzer target `stream_decode`: the checks live in `ringkit_fuzz_bodies::stream_decode`, which a
//! stable test also runs over the seed corpus and its mutations in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkit_fuzz_bodies::stream_decode(data));
