//! Any bytes as a whole dskit TCP connection: classify, split, check MD5, then
//! decode the packet or the stream messages inside; no panic anywhere, and a
//! valid packet frame re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkit_memberlist::wire::dskit_tcp::{self, Connection};
use ringkit_memberlist::wire::{decode_packet, decode_stream};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = dskit_tcp::decode_packet_frame_unchecked(data) {
        let _ = decode_packet(f.packet);
        if let (true, Ok(from)) = (f.digest_ok, std::str::from_utf8(f.from)) {
            assert_eq!(dskit_tcp::encode_packet_frame(from, f.packet).unwrap(), data);
        }
    }
    if let Ok(Connection::Stream(mut rest)) = dskit_tcp::decode_connection(data) {
        while let Ok(Some((_, used))) = decode_stream(rest) {
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
});
