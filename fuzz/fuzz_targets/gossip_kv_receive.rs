//! Any bytes as a gossip broadcast and as push/pull state, into a store holding a ring
//! (ringDesc codec: snappy + protobuf ring.Desc): no panic, and the store stays usable
//! (its full state re-merges into a fresh store without rejections). Also the receive
//! hot path (`receive_message`: in-place pair reader, heartbeat fast path, forwarding)
//! against a store that already holds a ring, and the in-place reader against prost.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ringkit_lifecycle::RingDescCodec;
use ringkit_memberlist::kv::{KvConfig, KvState, MergeOps};
use ringkit_memberlist::wire::kv::{KeyValuePair, KeyValuePairRef};
use ringkit_ring::codec;
use ringkit_ring::model::{Desc, InstanceState};

fn store() -> KvState {
    let mut s = KvState::new(KvConfig::default());
    s.register(Arc::new(MergeOps::new(Arc::new(RingDescCodec))));
    s
}

/// `value` as the ring key's value.
fn ring_pair(value: Vec<u8>) -> KeyValuePair {
    KeyValuePair {
        key: "collectors/ring".into(),
        value,
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    }
}

/// A store's full state merges into a fresh store without rejections.
fn assert_state_remerges(s: &KvState, now: std::time::SystemTime) {
    let (_, rejected) = store().receive_state(&s.local_state(), now);
    assert_eq!(rejected, 0, "our own state must merge cleanly");
}

/// A store holding a small ring, so heartbeats can take the fast path.
fn seeded(now: std::time::SystemTime) -> KvState {
    let mut d = Desc::new();
    for (i, zone) in ["a", "b", "c"].into_iter().enumerate() {
        let tokens = (0..8u32).map(|t| t * 1000 + i as u32).collect();
        d.add_instance(
            &format!("ing-{i}"),
            "10.0.0.1:9095",
            zone,
            tokens,
            InstanceState::Active,
            100,
            100,
        );
    }
    let mut s = store();
    s.receive_message(ring_pair(codec::encode(&d)).encode_bytes(), now)
        .expect("the seed ring merges");
    s
}

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Some((r, canonical)) = KeyValuePairRef::parse_checked(data) {
        assert_eq!(
            r.to_owned_pair().ok_or(()),
            KeyValuePair::decode_bytes(data).map_err(drop)
        );
        assert_eq!(canonical, r.encode() == data);
    }
    let mut hot = seeded(now);
    let _ = hot.receive_message(data.to_vec(), now);
    let _ = hot.receive_message(ring_pair(data.to_vec()).encode_bytes(), now);
    assert_state_remerges(&hot, now);
    let mut s = store();
    if let Ok(pair) = KeyValuePair::decode_bytes(data) {
        let _ = s.receive(pair, now);
    }
    // The same bytes as the value of a ring pair (exercises the ring codec).
    let _ = s.receive(ring_pair(data.to_vec()), now);
    let _ = s.receive_state(data, now);
    assert_state_remerges(&s, now);
});
