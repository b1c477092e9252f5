//! The gossip store's merge rules, sans I/O (`spec/memberlist.md` §2.6–2.10).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_kv::Codec;
use ringkit_kv::testsuite::{TestSet, TestSetCodec};
use ringkit_lifecycle::{RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{Applied, KvConfig, KvState, MergeOps, Rejected, ValueOps};
use ringkit_memberlist::wire::kv::{KeyValuePair, decode_user_state};
use ringkit_ring::model::{Desc, InstanceState};

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn state() -> KvState {
    let mut s = KvState::new(KvConfig::default());
    assert!(s.register(Arc::new(MergeOps::new(Arc::new(RingDescCodec)))));
    assert!(s.register(Arc::new(MergeOps::new(Arc::new(TestSetCodec)))));
    s
}

fn ring_pair(instances: &[(&str, i64, InstanceState, Vec<u32>)]) -> KeyValuePair {
    let mut d = Desc::new();
    for (id, ts, st, tokens) in instances {
        d.add_instance(id, "a:1", "", tokens.clone(), *st, 1, *ts);
    }
    KeyValuePair {
        key: "collectors/ring".into(),
        value: RingDescCodec.encode(&RingDesc(d)),
        codec: "ringDesc".into(),
        deleted: false,
        update_time_millis: 0,
    }
}

fn broadcast(a: Applied) -> KeyValuePair {
    match a {
        Applied::Changed {
            broadcast: Some(b), ..
        } => b.to_pair().expect("a broadcast decodes"),
        other => panic!("expected a change, got {other:?}"),
    }
}

fn ids(bytes: &[u8]) -> Vec<String> {
    RingDescCodec
        .decode(bytes)
        .unwrap()
        .0
        .ingesters
        .keys()
        .cloned()
        .collect()
}

#[test]
fn a_received_change_is_forwarded_as_received_and_old_news_is_ignored() {
    let mut s = state();
    let now = at(T0);
    s.receive(
        ring_pair(&[
            ("a", 10, InstanceState::Active, vec![1]),
            ("b", 10, InstanceState::Active, vec![2]),
        ]),
        now,
    )
    .unwrap();
    // A one-instance heartbeat: the gossip we pass on is exactly what we got.
    let hb = ring_pair(&[("a", 11, InstanceState::Active, vec![1])]);
    let out = broadcast(s.receive(hb.clone(), now).unwrap());
    assert_eq!(
        out.value, hb.value,
        "an unmodified change is forwarded verbatim"
    );
    assert_eq!(s.version("collectors/ring"), 2);
    // The same message again changes nothing and is not re-gossiped.
    assert_eq!(s.receive(hb, now).unwrap(), Applied::Unchanged);
    assert_eq!(s.version("collectors/ring"), 2);
}

#[test]
fn a_change_that_merge_altered_is_encoded_afresh() {
    let mut s = state();
    let now = at(T0);
    s.receive(ring_pair(&[("a", 10, InstanceState::Active, vec![1])]), now)
        .unwrap();
    // One stale entry and one newer: only the newer travels on.
    let mixed = ring_pair(&[
        ("a", 5, InstanceState::Active, vec![1]),
        ("b", 10, InstanceState::Active, vec![2]),
    ]);
    let out = broadcast(s.receive(mixed.clone(), now).unwrap());
    assert_ne!(out.value, mixed.value);
    assert_eq!(ids(&out.value), ["b"]);
}

#[test]
fn rejected_pairs_say_why_and_change_nothing() {
    let mut s = state();
    let now = at(T0);
    let mut p = ring_pair(&[("a", 10, InstanceState::Active, vec![1])]);
    p.key.clear();
    assert_eq!(s.receive(p, now), Err(Rejected::EmptyKey));
    let mut p = ring_pair(&[("a", 10, InstanceState::Active, vec![1])]);
    p.codec = "partitionRingDesc".into();
    assert_eq!(s.receive(p, now), Err(Rejected::UnknownCodec));
    let mut p = ring_pair(&[("a", 10, InstanceState::Active, vec![1])]);
    p.value = b"\xff\x00garbage".to_vec();
    assert_eq!(s.receive(p, now), Err(Rejected::Undecodable));
    assert!(s.is_empty());
}

#[test]
fn a_deletion_never_creates_a_key_and_deleted_keys_expire() {
    let mut s = state();
    let now = at(T0);
    let mut del = ring_pair(&[("a", 10, InstanceState::Active, vec![1])]);
    del.deleted = true;
    del.update_time_millis = 5;
    assert_eq!(s.receive(del.clone(), now).unwrap(), Applied::Unchanged);
    assert!(s.is_empty());

    s.receive(ring_pair(&[("a", 10, InstanceState::Active, vec![1])]), now)
        .unwrap();
    let out = broadcast(s.delete("collectors/ring", now));
    assert!(out.deleted);
    assert_eq!(ids(&out.value), ["a"], "deletions carry the value");
    assert_eq!(s.expire(now + Duration::from_secs(10)), 0, "too young");
    assert_eq!(s.expire(now + Duration::from_secs(31)), 1);
    assert!(s.is_empty());
}

#[test]
fn old_left_tombstones_are_purged_and_not_gossiped() {
    let mut s = state();
    let now = at(T0);
    let old = (T0 - 3600) as i64;
    s.receive(ring_pair(&[("a", 10, InstanceState::Active, vec![1])]), now)
        .unwrap();
    // A tombstone an hour old (left-ingesters-timeout is 5 min) is dropped on arrival.
    // (Values are scanned for expired tombstones at most once a second.)
    let later = now + Duration::from_secs(2);
    let stale = ring_pair(&[("a", old, InstanceState::Left, vec![])]);
    assert_eq!(s.receive(stale, later).unwrap(), Applied::Unchanged);
    assert_eq!(s.counts().tombstones_removed, 1);
    let (_, bytes) = s.encoded("collectors/ring").unwrap();
    assert!(ids(&bytes).is_empty());
}

#[test]
fn local_state_round_trips_into_another_store() {
    let mut a = state();
    let now = at(T0);
    a.receive(ring_pair(&[("a", 10, InstanceState::Active, vec![1])]), now)
        .unwrap();
    a.receive(
        KeyValuePair {
            key: "sets/x".into(),
            value: TestSetCodec.encode(&TestSet::of(["p", "q"])),
            codec: "testSet".into(),
            deleted: false,
            update_time_millis: 7,
        },
        now,
    )
    .unwrap();
    let full = a.local_state();
    let pairs: Vec<_> = decode_user_state(&full).map(Result::unwrap).collect();
    assert_eq!(pairs.len(), 2);
    let mut b = state();
    let (changes, rejected) = b.receive_state(&full, now);
    assert_eq!((changes.len(), rejected), (2, 0));
    assert_eq!(b.local_state(), full);
    // Merging the same state again is a no-op.
    let (changes, _) = b.receive_state(&full, now);
    assert!(changes.is_empty());
}

#[test]
fn ops_refuse_a_second_type_under_one_codec_id() {
    let mut s = state();
    let ops: Arc<dyn ValueOps> =
        Arc::new(MergeOps::new(Arc::new(ringkit_kv::testsuite::TestSetCodec)));
    assert!(s.register(ops), "same type again is fine");
    assert_eq!(s.ops("ringDesc").unwrap().id(), "ringDesc");
}

/// Wire times are whatever a peer sends: receiving, deleting, re-receiving and expiring
/// with extreme `UpdateTimeMillis` and instance timestamps never panics (issue 14).
mod extreme_times {
    use super::*;
    use proptest::prelude::*;

    fn extreme_i64() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MIN + 1),
            Just(-1),
            Just(0),
            Just(1),
            Just(i64::MAX - 1),
            Just(i64::MAX),
            any::<i64>(),
        ]
    }

    proptest! {
        #[test]
        fn extreme_wire_times_never_panic(
            times in proptest::collection::vec((extreme_i64(), extreme_i64(), any::<bool>()), 1..6),
            now in 0u64..u64::from(u32::MAX),
        ) {
            let mut s = state();
            let now = at(now);
            for (update_time, ts, deleted) in times {
                let mut pair = ring_pair(&[("a", ts, InstanceState::Active, vec![1, 2])]);
                pair.update_time_millis = update_time;
                pair.deleted = deleted;
                let _ = s.receive(pair, now);
                let _ = s.delete("collectors/ring", now);
                let _ = s.expire(now);
            }
            // Whatever it holds still encodes and decodes.
            let _ = decode_user_state(&s.local_state());
        }
    }
}

fn cover(a: &Applied) -> ringkit_memberlist::swim::Cover {
    match a {
        Applied::Changed { cover: Some(c), .. } => c.clone(),
        other => panic!("expected a covered change, got {other:?}"),
    }
}

#[test]
fn every_change_says_which_instances_it_carries_and_the_version_it_made() {
    let mut s = state();
    let now = at(T0);
    let first = s
        .receive(
            ring_pair(&[
                ("a", 10, InstanceState::Active, vec![1]),
                ("b", 10, InstanceState::Active, vec![2]),
            ]),
            now,
        )
        .unwrap();
    let c = cover(&first);
    assert_eq!(
        (c.key.as_str(), c.content.clone(), c.version),
        ("collectors/ring", vec!["a".to_string(), "b".to_string()], 1)
    );
    // A heartbeat (the codec's shortcut, merged from the bytes): its one instance.
    let hb = ring_pair(&[("b", 11, InstanceState::Active, vec![2])]);
    let raw = hb.encode_bytes();
    let c = cover(&s.receive_message(raw.clone(), now).unwrap());
    assert_eq!((c.content, c.version), (vec!["b".to_string()], 2));
    // The general path: only what changed (a is stale, c is new).
    let mixed = ring_pair(&[
        ("a", 5, InstanceState::Active, vec![1]),
        ("c", 10, InstanceState::Active, vec![3]),
    ]);
    let c = cover(&s.receive(mixed, now).unwrap());
    assert_eq!((c.content, c.version), (vec!["c".to_string()], 3));
    // A newer change of a and b covers the earlier {a, b} broadcast.
    let both = ring_pair(&[
        ("a", 12, InstanceState::Active, vec![1]),
        ("b", 12, InstanceState::Active, vec![2]),
    ]);
    let c = cover(&s.receive(both, now).unwrap());
    assert!(c.covers(&cover(&first)));
    // A deletion carries the whole value.
    let c = cover(&s.delete("collectors/ring", at(T0 + 1)));
    assert_eq!(c.content, vec!["a", "b", "c"]);
    assert_eq!(c.version, 5);
}
