//! Any bytes as a dskit KeyValuePair and as push/pull user state: no panic, and
//! decoded pairs re-encode to bytes that decode to the same pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkit_memberlist::wire::kv::{self, KeyValuePair};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = KeyValuePair::decode_bytes(data) {
        assert_eq!(KeyValuePair::decode_bytes(&p.encode_bytes()).unwrap(), p);
    }
    let pairs: Vec<KeyValuePair> = kv::decode_user_state(data).map_while(Result::ok).collect();
    let again = kv::encode_user_state(&pairs);
    let back: Vec<KeyValuePair> = kv::decode_user_state(&again)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, pairs);
});
