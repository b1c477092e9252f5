//! libFuzzer target `msgpack_value`: the checks live in `ringkit_fuzz_bodies::msgpack_value`, which a
//! stable test also runs over the seed corpus and its mutations in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkit_fuzz_bodies::msgpack_value(data));
