//! Any bytes as a memberlist stream (push/pull, user, ping, errResp, compressed):
//! no panic; a complete message re-encodes in both dialects to bytes that decode
//! to the same message; every prefix of a complete message is "incomplete".
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkit_memberlist::wire::{Dialect, decode_stream, encode_stream};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((m, used))) = decode_stream(data) else { return };
    assert!(used <= data.len());
    for dialect in [Dialect::Legacy, Dialect::V2] {
        if let Ok(bytes) = encode_stream(&m, dialect) {
            let (back, n) = decode_stream(&bytes)
                .expect("own encoding decodes")
                .expect("own encoding is complete");
            assert_eq!(n, bytes.len());
            assert_eq!(back, m);
        }
    }
    if used <= 4096 {
        for cut in 0..used {
            assert!(!matches!(decode_stream(&data[..cut]), Ok(Some(_))), "prefix {cut} complete");
        }
    }
});
