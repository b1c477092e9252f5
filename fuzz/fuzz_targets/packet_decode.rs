//! Any bytes as a memberlist packet: no panic, and a decoded packet that we can
//! re-encode must decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkit_memberlist::wire::{Message, decode_packet, encode_packet};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = decode_packet(data) else { return };
    let mut lossy = false;
    p.message.walk(&mut |m| {
        if let Message::Compound(c) = m {
            lossy |= c.truncated > 0;
        }
    });
    if lossy {
        return;
    }
    if let Ok(bytes) = encode_packet(&p) {
        assert_eq!(decode_packet(&bytes).expect("own encoding decodes"), p);
    }
});
