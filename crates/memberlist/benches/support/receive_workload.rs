//! The gossip-receive workload shared by the `kv_receive` bench and the
//! `kv_receive_profile` example: a 600-instance × 128-token ring in a gossip store, and
//! one-instance heartbeat messages for it (shaped like dskit's
//! `BenchmarkMemberlistReceiveWithRingDesc`).

use std::sync::Arc;

use ringkit_kv::{ClientOptions, Codec};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::wire::kv::KeyValuePair;
use ringkit_ring::model::{Desc, InstanceState};

/// Instances in the ring.
pub(crate) const INSTANCES: usize = 600;
/// Tokens per instance.
pub(crate) const TOKENS: usize = 128;

/// A `KeyValuePair` broadcast carrying `d` under `collectors/ring`.
pub(crate) fn message(d: &Desc) -> Vec<u8> {
    KeyValuePair {
        key: "collectors/ring".into(),
        value: RingDescCodec.encode(&RingDesc(d.clone())),
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    }
    .encode_bytes()
}

/// The full ring at heartbeat time `now` (unique tokens without an RNG, as dskit does).
pub(crate) fn ring(now: i64) -> Desc {
    let mut ring = Desc::new();
    for i in 0..INSTANCES {
        let tokens = (0..TOKENS).map(|t| (i * 100_000 + t * 10) as u32).collect();
        ring.add_instance(
            &format!("instance-{i}"),
            "127.0.0.1",
            "zone",
            tokens,
            InstanceState::Active,
            now,
            now,
        );
    }
    ring
}

/// A store holding `ring` with the ring codec registered.
pub(crate) fn store(ring: &Desc) -> GossipKv {
    let kv = GossipKv::new(KvConfig::default());
    kv.client(Arc::new(RingDescCodec), ClientOptions::default())
        .expect("first registration");
    kv.notify_msg(&message(ring));
    kv
}

/// `instance-0`'s heartbeat at `timestamp`, as a one-instance delta message.
pub(crate) fn heartbeat(ring: &Desc, timestamp: i64) -> Vec<u8> {
    let mut inst = ring.ingesters["instance-0"].clone();
    inst.timestamp = timestamp;
    let mut delta = Desc::new();
    delta.ingesters.insert("instance-0".into(), inst);
    message(&delta)
}
