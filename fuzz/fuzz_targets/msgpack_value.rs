//! Any bytes: decoding a msgpack value must not panic, and a decoded value must
//! survive encode -> decode unchanged (compared through its encoding, so NaN floats
//! compare equal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkit_memberlist::wire::msgpack::{Reader, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok((v, used)) = Value::decode(data) {
        assert!(used <= data.len());
        let mut once = Vec::new();
        v.encode(&mut once);
        let (again, used) = Value::decode(&once).expect("own encoding decodes");
        assert_eq!(used, once.len());
        let mut twice = Vec::new();
        again.encode(&mut twice);
        assert_eq!(once, twice);
    }
    // The skipping path must agree with the value decoder on where a value ends.
    let mut r = Reader::new(data);
    if r.skip_value().is_ok() {
        if let Ok((_, used)) = Value::decode(data) {
            assert_eq!(used, r.position());
        }
    }
});
