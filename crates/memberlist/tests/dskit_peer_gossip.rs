//! Ring updates gossiped in a mixed cluster (one real Go dskit node, two `ringkit node`s),
//! as the dskit node's message history recorded them (`testdata/dskit-peer-gossip.jsonl`,
//! described in `testdata/dskit-peer-gossip.README.md`).
//!
//! Checked without Go: dskit's deltas carry exactly the instances it reported as changed;
//! the values ringkit sent (and dskit accepted) re-encode to the same bytes; replaying
//! dskit's broadcasts into our gossip store rebuilds the ring dskit itself held
//! (`testdata/ring-desc-dskit-interop.*` at the top of the repo), tombstone included.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use ringkit_kv::Codec;
use ringkit_lifecycle::RingDescCodec;
use ringkit_memberlist::kv::{KvConfig, KvState, MergeOps};
use ringkit_memberlist::wire::kv::KeyValuePair;
use ringkit_ring::model::InstanceState;
use serde_json::Value;

const CAPTURE: &str = include_str!("../testdata/dskit-peer-gossip.jsonl");
const FINAL_RING: &[u8] =
    include_bytes!("../../../testdata/ring-desc-dskit-interop.snappy-proto.bin");

/// One recorded message: who sent it, the pair, and the ids dskit saw change.
struct Recorded {
    sent_by_dskit: bool,
    pair: KeyValuePair,
    changes: BTreeSet<String>,
}

fn capture() -> Vec<Recorded> {
    CAPTURE
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Recorded {
                sent_by_dskit: v["dir"] == "sent_by_dskit",
                pair: KeyValuePair {
                    key: v["key"].as_str().unwrap().to_owned(),
                    value: hex::decode(v["value_hex"].as_str().unwrap()).unwrap(),
                    codec: v["codec"].as_str().unwrap().to_owned(),
                    deleted: false,
                    update_time_millis: 0,
                },
                changes: v["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            }
        })
        .collect()
}

fn ids(bytes: &[u8]) -> BTreeSet<String> {
    RingDescCodec
        .decode(bytes)
        .unwrap()
        .0
        .ingesters
        .into_keys()
        .collect()
}

#[test]
fn every_value_decodes_and_dskit_deltas_hold_only_the_changes() {
    let msgs = capture();
    assert!(msgs.len() > 200, "{} lines", msgs.len());
    let mut deltas = 0;
    for m in &msgs {
        assert_eq!(m.pair.key, "collectors/ring");
        assert_eq!(m.pair.codec, "ringDesc");
        let got = ids(&m.pair.value);
        if m.sent_by_dskit && !m.changes.is_empty() {
            assert_eq!(got, m.changes);
            deltas += 1;
        }
    }
    assert!(deltas > 100, "{deltas} deltas");
}

#[test]
fn values_ringkit_sent_re_encode_byte_for_byte() {
    let mut n = 0;
    for m in capture().iter().filter(|m| !m.sent_by_dskit) {
        let desc = RingDescCodec.decode(&m.pair.value).unwrap();
        assert_eq!(RingDescCodec.encode(&desc), m.pair.value);
        n += 1;
    }
    assert!(n > 50, "{n} values");
}

#[test]
fn replaying_dskit_broadcasts_rebuilds_dskit_ring() {
    let want = RingDescCodec.decode(FINAL_RING).unwrap().0;
    let newest = want.ingesters.values().map(|d| d.timestamp).max().unwrap();
    // A clock just after the capture, so no tombstone is old enough to purge.
    let now = UNIX_EPOCH + Duration::from_secs(newest as u64 + 1);
    let mut s = KvState::new(KvConfig::default());
    assert!(s.register(Arc::new(MergeOps::new(Arc::new(RingDescCodec)))));
    for m in capture().into_iter().filter(|m| m.sent_by_dskit) {
        s.receive(m.pair, now).expect("dskit's update is accepted");
    }
    let (codec, bytes) = s.encoded("collectors/ring").expect("the ring key");
    assert_eq!(codec, "ringDesc");
    let got = RingDescCodec.decode(&bytes).unwrap().0;
    assert_eq!(
        got.ingesters.keys().collect::<Vec<_>>(),
        want.ingesters.keys().collect::<Vec<_>>()
    );
    for (id, w) in &want.ingesters {
        let g = &got.ingesters[id];
        // The history was read just after the ring, so heartbeats may be newer.
        assert!(g.timestamp >= w.timestamp, "{id}");
        let mut g = g.clone();
        g.timestamp = w.timestamp;
        assert_eq!(&g, w, "{id}");
    }
    assert_eq!(got.ingesters["ing-2"].state(), InstanceState::Left);
}
