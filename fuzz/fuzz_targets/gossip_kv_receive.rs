//! Any bytes as a gossip broadcast and as push/pull state, into a store holding a ring
//! (ringDesc codec: snappy + protobuf ring.Desc): no panic, and the store stays usable
//! (its full state re-merges into a fresh store without rejections).
#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ringkit_lifecycle::RingDescCodec;
use ringkit_memberlist::kv::{KvConfig, KvState, MergeOps};
use ringkit_memberlist::wire::kv::KeyValuePair;

fn store() -> KvState {
    let mut s = KvState::new(KvConfig::default());
    s.register(Arc::new(MergeOps::new(Arc::new(RingDescCodec))));
    s
}

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut s = store();
    if let Ok(pair) = KeyValuePair::decode_bytes(data) {
        let _ = s.receive(pair, now);
    }
    // The same bytes as the value of a ring pair (exercises the ring codec).
    let _ = s.receive(
        KeyValuePair {
            key: "collectors/ring".into(),
            value: data.to_vec(),
            codec: "ringDesc".into(),
            deleted: false,
            update_time_millis: 0,
        },
        now,
    );
    let _ = s.receive_state(data, now);
    let full = s.local_state();
    let (_, rejected) = store().receive_state(&full, now);
    assert_eq!(rejected, 0, "our own state must merge cleanly");
});
