//! The partition ring rule by rule (spec/partition-ring.md), with the values the spec
//! recorded from dskit 6cdb4f7b, plus property tests for the merge and for robustness.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use ringkit_ring::partition::{
    MultiPartitionInstanceRing, OwnerDesc, OwnerState, PartitionDesc, PartitionInstanceRing,
    PartitionRing, PartitionRingDesc, PartitionRingError, PartitionState, codec,
    multi_partition_owner_id, partition_tokens,
};
use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{Desc, InstanceState, Operation, RingConfig, RingSnapshot};

use OwnerState::{OwnerActive, OwnerDeleted};
use PartitionState::{
    PartitionActive as Active, PartitionDeleted as Deleted, PartitionInactive as Inactive,
    PartitionPending as Pending,
};

const T: i64 = 1_700_000_000;

/// The spec's ring R: partitions 0..9; 0–6 Active, 7 and 9 Inactive, 8 Pending, with the
/// timestamps of the lookback vectors (0–5 Active since T−24h, 6 since T−20m, 7 Inactive
/// since T−1h, 8 Pending since T−24h, 9 Inactive since T−10m).
fn ring_r() -> PartitionRingDesc {
    let mut d = PartitionRingDesc::new();
    for id in 0..10 {
        d.add_partition(id, Active, T - 86_400).unwrap();
    }
    let set = |d: &mut PartitionRingDesc, id: i32, s: PartitionState, ts: i64| {
        let p = d.partitions.get_mut(&id).unwrap();
        p.state = s as i32;
        p.state_timestamp = ts;
    };
    set(&mut d, 6, Active, T - 20 * 60);
    set(&mut d, 7, Inactive, T - 3600);
    set(&mut d, 8, Pending, T - 86_400);
    set(&mut d, 9, Inactive, T - 600);
    d
}

fn ids(r: &PartitionRing) -> Vec<i32> {
    r.partition_ids()
}

#[test]
fn snapshots_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<PartitionRing>();
    shared::<PartitionInstanceRing>();
    shared::<MultiPartitionInstanceRing>();
}

#[test]
fn partition_tokens_match_the_spec_table() {
    for (id, first4, last) in [
        (0, [0, 8_388_608, 16_777_216, 25_165_824], 4_286_578_688u32),
        (
            1,
            [4_194_304, 12_582_912, 20_971_520, 29_360_128],
            4_290_772_992,
        ),
        (
            2,
            [2_146_085_552, 2_150_279_856, 2_154_474_160, 2_158_668_464],
            4_289_374_888,
        ),
        (
            3,
            [710_934_528, 715_128_832, 719_323_136, 723_517_440],
            2_854_223_872,
        ),
        (
            9,
            [546_098_384, 547_776_104, 550_292_688, 551_970_408],
            4_139_218_800,
        ),
        (
            63,
            [5_569_840, 9_764_144, 13_958_448, 18_152_752],
            4_293_549_696,
        ),
    ] {
        let t = partition_tokens(id).unwrap();
        assert_eq!(t.len(), 512);
        assert_eq!(t[..4], first4, "id {id}");
        assert_eq!(*t.last().unwrap(), last, "id {id}");
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        assert!(t.iter().all(|x| x % 8 == 0));
    }
    assert_eq!(
        partition_tokens(-1),
        Err(PartitionRingError::InvalidPartitionId(-1))
    );
    let mut d = PartitionRingDesc::new();
    assert!(d.add_partition(-3, Active, T).is_err());
    assert!(d.partitions.is_empty(), "a failed add changes nothing");
}

#[test]
fn active_partition_for_key_walks_past_non_active_partitions() {
    let r = PartitionRing::new(ring_r());
    for (key, want) in [
        (0u32, 4),
        (1, 4),
        (4_194_304, 4),
        (123_456_789, 5),
        (2_146_085_552, 0),
        (4_294_967_295, 0),
    ] {
        assert_eq!(r.active_partition_for_key(key), Ok(want), "key {key}");
    }
    // A key equal to a token belongs to the next token: key 0 (partition 0's token) goes
    // to the owner of 4194304 (partition 1) and key 4194304 to the owner of 8388608.
    let mut d = PartitionRingDesc::new();
    d.add_partition(0, Active, T).unwrap();
    d.add_partition(1, Active, T).unwrap();
    let r = PartitionRing::new(d);
    assert_eq!(r.active_partition_for_key(0), Ok(1));
    assert_eq!(r.active_partition_for_key(4_194_304), Ok(0));

    let empty = PartitionRing::new(PartitionRingDesc::new());
    assert_eq!(
        empty.active_partition_for_key(7),
        Err(PartitionRingError::NoActivePartitionFound)
    );
    let mut pending_only = PartitionRingDesc::new();
    pending_only.add_partition(0, Pending, T).unwrap();
    let err = PartitionRing::new(pending_only)
        .active_partition_for_key(7)
        .unwrap_err();
    assert_eq!(err.to_string(), "no active partition found");
}

#[test]
fn shuffle_shards_match_the_spec_vectors() {
    let r = Arc::new(PartitionRing::new(ring_r()));
    for (size, want) in [
        (1usize, vec![0]),
        (2, vec![0, 2]),
        (3, vec![0, 2, 3]),
        (5, vec![0, 1, 2, 3, 4]),
        (0, (0..=6).collect()),
        (12, (0..=6).collect()),
    ] {
        assert_eq!(
            ids(&r.shuffle_shard("user-1", size).unwrap()),
            want,
            "size {size}"
        );
    }
    assert_eq!(ids(&r.shuffle_shard("tenant-a", 4).unwrap()), [0, 3, 4, 5]);
    assert_eq!(ids(&r.shuffle_shard("tenant-b", 4).unwrap()), [0, 1, 4, 6]);

    let now = unix_seconds(T);
    let min = |m: u64| Duration::from_secs(60 * m);
    let lb = |size, look| {
        ids(&r
            .shuffle_shard_with_lookback("user-1", size, look, now)
            .unwrap())
    };
    assert_eq!(lb(5, min(30)), [0, 1, 2, 3, 4, 9]);
    assert_eq!(lb(5, min(5)), [0, 1, 2, 3, 4]);
    assert_eq!(lb(3, min(120)), [0, 2, 3]);
    assert_eq!(lb(0, min(30)), [0, 1, 2, 3, 4, 5, 6, 9]);
    assert_eq!(lb(0, min(120)), [0, 1, 2, 3, 4, 5, 6, 7, 9]);

    // Every partition stamped "now" extends the shard: the whole readable ring.
    let mut fresh = ring_r();
    for id in 0..=6 {
        fresh.partitions.get_mut(&id).unwrap().state_timestamp = T;
    }
    let fresh = PartitionRing::new(fresh);
    assert_eq!(
        ids(&fresh
            .shuffle_shard_with_lookback("user-1", 3, min(30), now)
            .unwrap()),
        [0, 1, 2, 3, 4, 5, 6, 9]
    );

    // The subring carries the picked partitions' owners only.
    let mut owned = ring_r();
    for id in 0..10 {
        owned.add_or_update_owner(&format!("ingester-zone-a-{id}"), OwnerActive, id, T);
    }
    let sub = PartitionRing::new(owned)
        .shuffle_shard("user-1", 2)
        .unwrap();
    let owners: Vec<&str> = sub.desc().owners.keys().map(String::as_str).collect();
    assert_eq!(owners, ["ingester-zone-a-0", "ingester-zone-a-2"]);
}

#[test]
fn shuffle_shard_size_compares_with_active_partitions() {
    let r = PartitionRing::new(ring_r());
    assert_eq!(r.active_partitions_count(), 7);
    assert_eq!(r.partitions_count(), 10);
    assert_eq!(r.shuffle_shard_size(0), 7);
    assert_eq!(r.shuffle_shard_size(3), 3);
    assert_eq!(r.shuffle_shard_size(8), 7);
    // An Active partition without tokens is counted but never picked.
    let mut d = PartitionRingDesc::new();
    d.add_partition(0, Active, T).unwrap();
    d.partitions.insert(
        1,
        PartitionDesc {
            state: Active as i32,
            id: 1,
            ..Default::default()
        },
    );
    let r = PartitionRing::new(d);
    assert_eq!(r.active_partitions_count(), 2);
    assert_eq!(ids(&r.shuffle_shard("x", 0).unwrap()), [0]);
}

#[test]
fn counts_ids_and_owners() {
    let mut d = ring_r();
    d.add_or_update_owner("b-1", OwnerActive, 1, T);
    d.add_or_update_owner("a-1", OwnerDeleted, 1, T);
    d.add_or_update_owner("u/7", OwnerActive, 7, T);
    d.add_or_update_owner("x/y/7", OwnerActive, 7, T);
    let r = PartitionRing::new(d);
    assert_eq!(r.pending_partition_ids(), [8]);
    assert_eq!(r.active_partition_ids(), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(r.inactive_partition_ids(), [7, 9]);
    let by_state: Vec<(&str, usize)> = r
        .count_partitions_by_state()
        .into_iter()
        .map(|(s, n)| (s.clean_name(), n))
        .collect();
    assert_eq!(by_state, [("Pending", 1), ("Active", 7), ("Inactive", 2)]);
    // Owners sorted, tombstones included (dskit never looks at owner state here).
    assert_eq!(r.partition_owner_ids(1), ["a-1", "b-1"]);
    assert!(r.partition_owner_ids(3).is_empty());
    assert_eq!(r.multi_partition_owner_ids(7), ["u", "x/y"]);
    assert_eq!(multi_partition_owner_id("x/y", 7), "x/y/7");
    assert_eq!(r.partition(7).unwrap().state_time(), unix_seconds(T - 3600));
}

#[test]
fn token_ranges_of_partitions_match_the_spec() {
    let r = PartitionRing::new(ring_r());
    let p0 = r.get_token_ranges_for_partition(0).unwrap();
    assert_eq!(p0.len(), 2 * 512);
    assert_eq!(p0[..2], [7_270_128, 8_388_607]);
    assert_eq!(p0[p0.len() - 2..], [4_293_848_816, 4_294_967_295]);
    let p1 = r.get_token_ranges_for_partition(1).unwrap();
    assert_eq!(p1[..2], [3_075_824, 4_194_303]);
    assert_eq!(p1[p1.len() - 2..], [4_290_423_464, 4_290_772_991]);
    // Every key belongs to exactly one partition's ranges, the one that owns its token.
    let all: Vec<_> = (0..10)
        .map(|p| r.get_token_ranges_for_partition(p).unwrap())
        .collect();
    assert_eq!(all.iter().map(|t| t.key_count()).sum::<u64>(), 1u64 << 32);
    for key in [0u32, 5, 8_388_608, 123_456_789, u32::MAX] {
        assert_eq!(all.iter().filter(|t| t.includes_key(key)).count(), 1);
    }
    assert_eq!(
        r.get_token_ranges_for_partition(10),
        Err(PartitionRingError::PartitionDoesNotExist)
    );

    let explicit = |parts: &[(i32, Vec<u32>)]| {
        let mut d = PartitionRingDesc::new();
        for (id, tokens) in parts {
            d.partitions.insert(
                *id,
                PartitionDesc {
                    tokens: tokens.clone(),
                    state: Active as i32,
                    state_timestamp: T,
                    id: *id,
                    ..PartitionDesc::default()
                },
            );
        }
        PartitionRing::new(d)
    };
    let r = explicit(&[(1, vec![1]), (2, vec![0, 100])]);
    assert_eq!(
        r.get_token_ranges_for_partition(1).unwrap().as_slice(),
        [0, 0]
    );
    assert_eq!(
        r.get_token_ranges_for_partition(2).unwrap().as_slice(),
        [1, u32::MAX],
        "[1, 99] and the wrap range [100, max] are adjacent, so merged"
    );
    let single = explicit(&[(5, vec![42, 7_000])]);
    assert_eq!(
        single.get_token_ranges_for_partition(5).unwrap().as_slice(),
        [0, u32::MAX]
    );
    let unsorted = explicit(&[(1, vec![500, 100]), (2, vec![300])]);
    assert_eq!(
        unsorted.get_token_ranges_for_partition(1),
        Err(PartitionRingError::InconsistentTokensInfo)
    );
}

fn instance_ring(insts: &[(&str, &str, &[u32])], rf: usize) -> RingSnapshot {
    let mut d = Desc::new();
    for (id, zone, tokens) in insts {
        d.add_instance(id, id, zone, tokens.to_vec(), InstanceState::Active, T, T);
    }
    RingSnapshot::new(
        d,
        RingConfig {
            replication_factor: rf,
            zone_awareness_enabled: true,
            ..RingConfig::default()
        },
    )
    .expect("valid ring config")
}

#[test]
fn token_ranges_of_instances_match_the_spec() {
    let r = instance_ring(&[("A", "z", &[1, 100]), ("B", "z", &[50, 200])], 1);
    assert_eq!(
        r.get_token_ranges_for_instance("A").unwrap().as_slice(),
        [0, 0, 50, 99, 200, u32::MAX]
    );
    assert_eq!(
        r.get_token_ranges_for_instance("B").unwrap().as_slice(),
        [1, 49, 100, 199]
    );
    // dskit's edge: own token 1 that is not the zone's first token loses its range.
    let edge = instance_ring(&[("A", "z", &[1]), ("B", "z", &[0, 100])], 1);
    assert!(edge.get_token_ranges_for_instance("A").unwrap().is_empty());

    let errs = instance_ring(&[("A", "z", &[1]), ("B", "y", &[5]), ("C", "", &[9])], 2);
    for (id, msg) in [
        ("nope", "instance not found in the ring"),
        ("C", "zone not set"),
        (
            "A",
            "can't use ring configuration for computing token ranges",
        ),
    ] {
        assert_eq!(
            errs.get_token_ranges_for_instance(id)
                .unwrap_err()
                .to_string(),
            msg
        );
    }
}

#[test]
fn state_changes_follow_dskits_rules() {
    let mut d = PartitionRingDesc::new();
    d.add_partition(1, Pending, T).unwrap();
    assert_eq!(d.change_partition_state(1, Pending, T + 1), Ok(false));
    assert_eq!(d.partitions[&1].state_timestamp, T, "no-op keeps the stamp");
    assert_eq!(d.change_partition_state(1, Active, T + 2), Ok(true));
    assert_eq!(d.partitions[&1].state_timestamp, T + 2);
    assert_eq!(d.change_partition_state(1, Inactive, T + 3), Ok(true));
    assert_eq!(d.change_partition_state(1, Active, T + 4), Ok(true));
    assert_eq!(d.update_partition_state(1, Inactive, T + 5), Ok(true));
    let err = d.change_partition_state(1, Pending, T + 6).unwrap_err();
    assert_eq!(
        err.to_string(),
        "change partition state from Inactive to Pending: partition state change not allowed"
    );
    assert_eq!(
        d.change_partition_state(1, Deleted, T + 6).unwrap_err(),
        PartitionRingError::PartitionStateChangeNotAllowed {
            from: Inactive,
            to: Deleted
        }
    );
    assert_eq!(
        d.change_partition_state(2, Active, T),
        Err(PartitionRingError::PartitionDoesNotExist)
    );
    assert_eq!(d.update_partition_state(2, Active, T), Ok(false));
    assert!(Pending.can_change_to(Inactive));
    assert!(!Active.can_change_to(Pending));
}

#[test]
fn owners_keep_their_timestamp_until_they_change() {
    let mut d = PartitionRingDesc::new();
    assert!(d.add_or_update_owner("i-1", OwnerActive, 1, T));
    assert!(!d.add_or_update_owner("i-1", OwnerActive, 1, T + 50));
    assert_eq!(d.owners["i-1"].updated_timestamp, T);
    assert!(d.add_or_update_owner("i-1", OwnerActive, 2, T + 60));
    assert_eq!(d.owners["i-1"].updated_timestamp, T + 60);
    d.add_or_update_owner("i-2", OwnerDeleted, 2, T + 10);
    assert_eq!(d.partition_owners_count(2), 2, "tombstones count");
    assert_eq!(
        d.partition_owners_count_updated_before(2, T + 60),
        1,
        "strict"
    );
    assert_eq!(d.partition_owners_count_updated_before(2, T + 61), 2);
    assert!(d.remove_owner("i-1"));
    assert!(!d.remove_owner("i-1"));
}

#[test]
fn merge_follows_the_spec_rules() {
    let part = |state: PartitionState, ts: i64, tokens: Vec<u32>| PartitionDesc {
        tokens,
        state: state as i32,
        state_timestamp: ts,
        id: 1,
        ..PartitionDesc::default()
    };
    let owner = |p: i32, s: OwnerState, ts: i64| OwnerDesc {
        owned_partition: p,
        state: s as i32,
        updated_timestamp: ts,
    };
    let mut local = PartitionRingDesc::new();
    assert_eq!(local.merge(None, false, T), None);
    assert_eq!(local.merge(Some(&PartitionRingDesc::new()), false, T), None);

    // Unknown partition: stored as received, even with timestamp 0 or Deleted.
    let mut incoming = PartitionRingDesc::new();
    incoming.partitions.insert(1, part(Deleted, 0, vec![5]));
    let change = local.merge(Some(&incoming), false, T).unwrap();
    assert_eq!(local.partitions[&1], part(Deleted, 0, vec![5]));
    assert_eq!(change.partitions[&1], part(Deleted, 0, vec![5]));

    // Newer state revives it, tokens stay the local ones; the change carries local tokens.
    incoming.partitions.insert(1, part(Active, 10, vec![99]));
    let change = local.merge(Some(&incoming), false, T).unwrap();
    assert_eq!(local.partitions[&1], part(Active, 10, vec![5]));
    assert_eq!(change.partitions[&1], part(Active, 10, vec![5]));
    // Same timestamp: Deleted wins over a live state, two live states keep the local one.
    incoming.partitions.insert(1, part(Inactive, 10, vec![]));
    assert_eq!(local.merge(Some(&incoming), false, T), None);
    incoming.partitions.insert(1, part(Deleted, 10, vec![]));
    assert!(local.merge(Some(&incoming), false, T).is_some());
    assert_eq!(local.partitions[&1].state, Deleted as i32);

    // Owners: a missing owner with timestamp 0 is ignored unless it is a tombstone.
    let mut o = PartitionRingDesc::new();
    o.owners.insert("a".into(), owner(1, OwnerActive, 0));
    assert_eq!(local.merge(Some(&o), false, T), None);
    o.owners.insert("a".into(), owner(1, OwnerDeleted, 0));
    let change = local.merge(Some(&o), false, T).unwrap();
    assert_eq!(change.owners["a"], owner(1, OwnerDeleted, 0));
    assert!(change.partitions.is_empty());
    assert_eq!(change.merge_content(), ["", "a"]);

    // Local CAS: everything missing from the incoming value becomes a tombstone "now".
    let mut l = PartitionRingDesc::new();
    l.partitions.insert(1, part(Active, 10, vec![5]));
    l.partitions.insert(2, part(Deleted, 10, vec![6]));
    l.owners.insert("a".into(), owner(1, OwnerActive, 10));
    l.owners.insert("b".into(), owner(1, OwnerDeleted, 10));
    let mut gossip = l.clone();
    assert_eq!(
        gossip.merge(Some(&PartitionRingDesc::new()), false, T),
        None
    );
    let change = l
        .merge(Some(&PartitionRingDesc::new()), true, T + 5)
        .unwrap();
    assert_eq!(l.partitions[&1], part(Deleted, T + 5, vec![5]));
    assert_eq!(l.owners["a"], owner(1, OwnerDeleted, T + 5));
    assert_eq!(change.partitions.keys().collect::<Vec<_>>(), [&1]);
    assert_eq!(change.owners.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(change.merge_content(), ["", "", "1", "a"]);
}

#[test]
fn tombstones_are_removed_by_age() {
    let mut d = PartitionRingDesc::new();
    d.add_partition(1, Active, T).unwrap();
    d.add_partition(2, Active, T).unwrap();
    assert_eq!(d.update_partition_state(2, Deleted, T + 10), Ok(true));
    d.add_or_update_owner("a", OwnerDeleted, 1, T + 20);
    d.add_or_update_owner("b", OwnerActive, 1, T);
    let mut keep = d.clone();
    assert_eq!(keep.remove_tombstones(Some(unix_seconds(T + 10))), (2, 0));
    assert_eq!(keep.remove_tombstones(Some(unix_seconds(T + 11))), (1, 1));
    assert_eq!(d.remove_tombstones(None), (0, 2));
    assert_eq!(d.partitions.keys().collect::<Vec<_>>(), [&1]);
    assert_eq!(d.owners.keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn codec_matches_the_spec_vector_and_gogo_map_entries() {
    let mut d = PartitionRingDesc::new();
    d.partitions.insert(
        1,
        PartitionDesc {
            tokens: vec![10, 300],
            state: Active as i32,
            state_timestamp: T,
            id: 1,
            ..PartitionDesc::default()
        },
    );
    d.add_or_update_owner("ingester-zone-a-1", OwnerActive, 1, T);
    let proto = codec::encode_protobuf(&d);
    let hex: String = proto.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "0a130801120f0a030aac0210021880e2cfaa062001121f0a11696e6765737465722d7a6f6e652d612d31120a080110011880e2cfaa06"
    );
    let value = codec::encode(&d);
    assert_eq!(value[..2], [0x36, 0xd4]);
    assert_eq!(value[2..], proto[..]);
    assert_eq!(codec::decode(&value).unwrap(), d);

    // Partition 0 keeps its `08 00` key and an empty value keeps `12 00`, as gogo writes.
    let mut zero = PartitionRingDesc::new();
    zero.partitions.insert(0, PartitionDesc::default());
    assert_eq!(
        codec::encode_protobuf(&zero),
        [0x0a, 0x04, 0x08, 0x00, 0x12, 0x00]
    );
    // A negative ID is a 10-byte varint.
    let mut neg = PartitionRingDesc::new();
    neg.partitions.insert(-1, PartitionDesc::default());
    let bytes = codec::encode_protobuf(&neg);
    assert_eq!(bytes.len(), 2 + 1 + 10 + 2);
    assert_eq!(codec::decode_protobuf(&bytes).unwrap(), neg);
    // JSON as Go's encoding/json writes dskit's types.
    let text = codec::json::encode(&d);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "partitions": {"1": {"id": 1, "tokens": [10, 300], "state": 2, "stateTimestamp": T}},
            "owners": {"ingester-zone-a-1": {"ownedPartition": 1, "state": 1, "updatedTimestamp": T}},
        })
    );
    assert_eq!(codec::json::decode(&text).unwrap(), d);
    assert_eq!(
        codec::json::decode(r#"{"partitions":{"0":{}}}"#).unwrap(),
        zero
    );
    // Garbage is an error, not a panic.
    assert!(codec::decode(b"\xff\xff\xff").is_err());
    assert!(codec::decode_with_limit(&value, 10).is_err());
}

fn health_ring(insts: &[(&str, &str, InstanceState, i64, bool)]) -> Arc<RingSnapshot> {
    let mut d = Desc::new();
    for (id, zone, state, ts, ro) in insts {
        let e = d.add_instance(id, &format!("{id}:9095"), zone, vec![], *state, T, *ts);
        e.read_only = *ro;
    }
    Arc::new(RingSnapshot::new(d, RingConfig::default()).expect("valid ring config"))
}

#[test]
fn partition_instance_ring_builds_one_set_per_partition() {
    let mut d = PartitionRingDesc::new();
    d.add_partition(0, Active, T).unwrap();
    d.add_partition(1, Pending, T).unwrap();
    for (o, p) in [
        ("ing-a-0", 0),
        ("ing-b-0", 0),
        ("ing-a-1", 1),
        ("gone-1", 1),
    ] {
        d.add_or_update_owner(o, OwnerActive, p, T);
    }
    let instances = health_ring(&[
        ("ing-a-0", "a", InstanceState::Active, T, true),
        ("ing-b-0", "b", InstanceState::Active, T - 5, false),
        ("ing-a-1", "a", InstanceState::Joining, T, false),
    ]);
    let now = unix_seconds(T + 30);
    let timeout = Duration::from_secs(60);
    let pr = Arc::new(PartitionRing::new(d));
    let joined = PartitionInstanceRing::new(Arc::clone(&pr), Arc::clone(&instances), timeout);
    // JOINING is not healthy for reads; partition 1 (Pending, still covered) fails the call.
    let err = joined
        .get_replication_sets_for_operation(Operation::READ, now)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "partition 1: too many unhealthy instances in the ring"
    );
    let sets = joined
        .get_replication_sets_for_operation(Operation::REPORTING, now)
        .unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].1.ids(), ["ing-a-0", "ing-b-0"]);
    assert_eq!(sets[0].1.max_unavailable_zones, 1);
    assert!(sets[0].1.zone_awareness_enabled);
    assert_eq!(sets[1].1.ids(), ["ing-a-1"]);
    // Heartbeat exactly at the timeout is still healthy; one second later it is not.
    let at = unix_seconds(T - 5 + 60);
    let set = joined
        .get_replication_set_for_partition(0, Operation::WRITE, at)
        .unwrap();
    assert_eq!(set.ids(), ["ing-a-0", "ing-b-0"]);
    let set = joined
        .get_replication_set_for_partition(0, Operation::WRITE, unix_seconds(T + 56))
        .unwrap();
    assert_eq!(set.ids(), ["ing-a-0"]);
    let empty = PartitionInstanceRing::new(
        Arc::new(PartitionRing::new(PartitionRingDesc::new())),
        instances,
        timeout,
    );
    assert_eq!(
        empty.get_replication_sets_for_operation(Operation::READ, now),
        Err(PartitionRingError::EmptyRing)
    );
}

#[test]
fn multi_partition_ring_picks_one_instance_per_zone() {
    let mut d = PartitionRingDesc::new();
    d.add_partition(3, Active, T).unwrap();
    for o in [
        "ing-a-1/3",
        "ing-a-7/3",
        "ing-a-9/3",
        "ing-b-2/3",
        "ing-b-5/3",
        "ing-c/3",
    ] {
        d.add_or_update_owner(o, OwnerActive, 3, T);
    }
    let instances = health_ring(&[
        ("ing-a-1", "a", InstanceState::Active, T, false),
        ("ing-a-7", "a", InstanceState::Active, T, false),
        ("ing-a-9", "a", InstanceState::Active, T, true),
        ("ing-b-2", "b", InstanceState::Active, T, false),
        ("ing-b-5", "b", InstanceState::Active, T, false),
        ("ing-c", "c", InstanceState::Active, T, false),
    ]);
    let ring = MultiPartitionInstanceRing::new(
        Arc::new(PartitionRing::new(d)),
        instances,
        Duration::from_secs(60),
    );
    let now = unix_seconds(T);
    let set = ring
        .get_replication_set_for_partition_and_operation(3, Operation::WRITE, now)
        .unwrap();
    // Zone a: 9 is read-only, so the highest writable one (7); zone b: 5; zone c: no digits.
    assert_eq!(set.ids(), ["ing-a-7", "ing-b-5", "ing-c"]);
    assert_eq!(set.max_unavailable_zones, 2);
    assert_eq!(
        ring.get_replication_set_for_partition_and_operation(4, Operation::WRITE, now)
            .unwrap_err()
            .to_string(),
        "empty ring: no owners found for partition 4"
    );
}

#[test]
fn shuffle_shard_cache_is_bounded_and_invisible() {
    let r = PartitionRing::with_shuffle_shard_cache_size(ring_r(), 2);
    let first: Vec<Vec<i32>> = (0..5)
        .map(|i| ids(&r.shuffle_shard(&format!("t{i}"), 2).unwrap()))
        .collect();
    let stats = r.shuffle_shard_cache_stats();
    assert_eq!(stats.entries, 2);
    assert_eq!(stats.dropped, 3);
    assert_eq!(stats.misses, 5);
    let again: Vec<Vec<i32>> = (0..5)
        .map(|i| ids(&r.shuffle_shard(&format!("t{i}"), 2).unwrap()))
        .collect();
    assert_eq!(first, again);
    assert_eq!(r.shuffle_shard_cache_stats().hits, 2);

    // Lookback entries serve later "now"s until a change inside the window ages out.
    let look = Duration::from_secs(1800);
    let at = |s| {
        ids(&r
            .shuffle_shard_with_lookback("user-1", 5, look, unix_seconds(s))
            .unwrap())
    };
    assert_eq!(at(T), [0, 1, 2, 3, 4, 9]);
    assert_eq!(at(T + 60), [0, 1, 2, 3, 4, 9]);
    assert_eq!(r.shuffle_shard_cache_stats().hits, 3);
    // Partition 9 went Inactive at T−600: out of a 30-minute window from T+1200 on.
    assert_eq!(at(T + 1201), [0, 1, 2, 3, 4]);
}

fn arb_desc() -> impl Strategy<Value = PartitionRingDesc> {
    let part = (
        0i32..6,
        0i32..6,
        0i64..4,
        proptest::collection::vec(any::<u32>(), 0..4),
    );
    let owner = (0usize..4, -1i32..6, 0i32..4, 0i64..4);
    (
        proptest::collection::vec(part, 0..6),
        proptest::collection::vec(owner, 0..5),
    )
        .prop_map(|(parts, owners)| {
            let mut d = PartitionRingDesc::new();
            for (id, state, ts, tokens) in parts {
                d.partitions.insert(
                    id,
                    PartitionDesc {
                        tokens,
                        state,
                        state_timestamp: ts,
                        id,
                        ..PartitionDesc::default()
                    },
                );
            }
            for (o, p, state, ts) in owners {
                d.owners.insert(
                    format!("o{o}"),
                    OwnerDesc {
                        owned_partition: p,
                        state,
                        updated_timestamp: ts,
                    },
                );
            }
            d
        })
}

/// Descriptors on which dskit's gossip merge commutes: tokens fixed by partition ID, and
/// equal timestamps only for equal contents (the timestamp encodes the state, or the
/// owner's whole content; never 0, which a missing owner would ignore).
fn arb_convergent_desc() -> impl Strategy<Value = PartitionRingDesc> {
    let part = (0i32..6, 0i32..5, 0i64..3);
    let owner = (0usize..4, 0i32..3, 0i32..3, 0i64..3);
    (
        proptest::collection::vec(part, 0..6),
        proptest::collection::vec(owner, 0..5),
    )
        .prop_map(|(parts, owners)| {
            let mut d = PartitionRingDesc::new();
            for (id, state, era) in parts {
                d.partitions.insert(
                    id,
                    PartitionDesc {
                        tokens: vec![id as u32 * 10, id as u32 * 10 + 1],
                        state,
                        state_timestamp: era * 8 + i64::from(state),
                        id,
                        ..PartitionDesc::default()
                    },
                );
            }
            for (o, p, state, era) in owners {
                d.owners.insert(
                    format!("o{o}"),
                    OwnerDesc {
                        owned_partition: p,
                        state,
                        updated_timestamp: era * 16 + i64::from(p * 3 + state) + 1,
                    },
                );
            }
            d
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gossip_merge_is_idempotent(a in arb_desc(), b in arb_desc()) {
        let mut m = a.clone();
        m.merge(Some(&b), false, T);
        let once = m.clone();
        prop_assert_eq!(m.merge(Some(&b), false, T), None);
        prop_assert_eq!(&m, &once);
        prop_assert_eq!(m.merge(Some(&once), false, T), None);
    }

    #[test]
    fn gossip_merge_commutes_where_dskits_does(
        a in arb_convergent_desc(),
        b in arb_convergent_desc(),
        c in arb_convergent_desc(),
    ) {
        let mut ab = a.clone();
        ab.merge(Some(&b), false, T);
        let mut ba = b.clone();
        ba.merge(Some(&a), false, T);
        prop_assert_eq!(&ab, &ba);
        let mut ab_c = ab.clone();
        ab_c.merge(Some(&c), false, T);
        let mut bc = b.clone();
        bc.merge(Some(&c), false, T);
        let mut a_bc = a.clone();
        a_bc.merge(Some(&bc), false, T);
        prop_assert_eq!(ab_c, a_bc);
    }

    #[test]
    fn merge_change_applied_to_the_old_value_gives_the_new_one(
        a in arb_desc(), b in arb_desc(), local_cas in any::<bool>(),
    ) {
        let mut m = a.clone();
        let change = m.merge(Some(&b), local_cas, T);
        let mut replay = a.clone();
        if let Some(change) = change {
            for (id, p) in change.partitions {
                replay.partitions.insert(id, p);
            }
            for (id, o) in change.owners {
                replay.owners.insert(id, o);
            }
        }
        prop_assert_eq!(replay, m);
    }

    #[test]
    fn lookups_never_panic_on_arbitrary_descs(
        d in arb_desc(), key in any::<u32>(), size in 0usize..8, look in 0u64..5, tenant in "[a-z]{0,6}",
    ) {
        let bytes = codec::encode(&d);
        prop_assert_eq!(&codec::decode(&bytes).unwrap(), &d);
        let r = PartitionRing::new(d.clone());
        let _ = r.active_partition_for_key(key);
        let sub = r.shuffle_shard(&tenant, size).unwrap();
        let look = r
            .shuffle_shard_with_lookback(&tenant, size, Duration::from_secs(look), unix_seconds(3))
            .unwrap();
        let picked: BTreeSet<i32> = sub.partition_ids().into_iter().collect();
        prop_assert!(picked.iter().all(|p| d.partitions[p].state == Active as i32));
        prop_assert!(look.partition_ids().iter().all(|p| d.partitions[p].state != Pending as i32));
        for p in d.partitions.keys() {
            let _ = r.get_token_ranges_for_partition(*p);
        }
    }

    #[test]
    fn cached_lookback_shards_equal_uncached_ones(
        d in arb_desc(),
        calls in proptest::collection::vec((0usize..4, 0u64..4, 0i64..6, "[ab]"), 1..12),
    ) {
        // Timestamps in arb_desc are 0..4 s; windows of 0..4 s at now 0..6 s cross them.
        let cached = PartitionRing::new(d.clone());
        let fresh = PartitionRing::with_shuffle_shard_cache_size(d, 0);
        for (size, look, now, tenant) in calls {
            let look = Duration::from_secs(look);
            let now = unix_seconds(now);
            let a = cached.shuffle_shard_with_lookback(&tenant, size, look, now).unwrap();
            let b = fresh.shuffle_shard_with_lookback(&tenant, size, look, now).unwrap();
            prop_assert_eq!(a.partition_ids(), b.partition_ids());
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = codec::decode(&bytes);
        let _ = codec::decode_protobuf(&bytes);
    }
}

#[tokio::test]
async fn do_batch_over_the_batch_ring_sends_each_key_to_its_partition() {
    use ringkit_ring::{BatchBuffers, BatchOptions, do_batch};
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    let r = PartitionRing::new(ring_r());
    let keys: Vec<u32> = (0..500u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
    let batch = r.active_partition_batch_ring();
    assert_eq!(batch.instances_count(), r.active_partitions_count());
    assert_eq!(batch.replication_factor(), 1);
    let calls = RefCell::new(BTreeMap::<i32, Vec<usize>>::new());
    let mut bufs = BatchBuffers::new();
    let out = do_batch(
        &batch,
        Operation::WRITE_NO_EXTEND,
        unix_seconds(T),
        &keys,
        &mut bufs,
        |inst, items| {
            let p: i32 = inst.addr.parse().unwrap();
            let mut items: Vec<usize> = items.iter().map(|i| *i as usize).collect();
            items.sort_unstable();
            calls.borrow_mut().insert(p, items);
            async { Ok::<(), ()>(()) }
        },
        BatchOptions::default(),
    )
    .await;
    out.rest.await;
    assert!(out.result.is_ok());
    let want: BTreeMap<i32, Vec<usize>> = r.keys_by_partition(&keys).unwrap().into_iter().collect();
    assert_eq!(calls.into_inner(), want);
    assert!(want.keys().all(|p| r.active_partition_ids().contains(p)));
}

/// dskit #799: a partition's state can be locked; the lock has its own timestamp and
/// merges on its own, and a locked state does not change.
#[test]
fn state_change_lock_blocks_changes_and_merges_by_its_own_timestamp() {
    let mut d = PartitionRingDesc::new();
    d.add_partition(1, Active, T).unwrap();
    assert!(d.update_partition_state_change_lock(1, true, T + 1));
    assert!(
        !d.update_partition_state_change_lock(1, true, T + 2),
        "same lock: no-op"
    );
    assert!(
        !d.update_partition_state_change_lock(9, true, T + 2),
        "unknown partition"
    );
    assert_eq!(d.partitions[&1].state_change_locked_timestamp, T + 1);
    assert_eq!(
        d.change_partition_state(1, Inactive, T + 3),
        Err(PartitionRingError::PartitionStateChangeLocked)
    );
    assert_eq!(
        d.update_partition_state(1, Inactive, T + 3),
        Err(PartitionRingError::PartitionStateChangeLocked)
    );
    // A transition dskit never allows is reported as such before the lock is looked at;
    // asking for the state it already has is a no-op even when locked.
    assert!(matches!(
        d.change_partition_state(1, Pending, T + 3),
        Err(PartitionRingError::PartitionStateChangeNotAllowed { .. })
    ));
    assert_eq!(d.change_partition_state(1, Active, T + 3), Ok(false));
    assert!(d.update_partition_state_change_lock(1, false, T + 4));
    assert_eq!(d.change_partition_state(1, Inactive, T + 5), Ok(true));

    // Merge: the lock moves only with a newer lock timestamp, whatever the state does.
    let base = {
        let mut b = PartitionRingDesc::new();
        b.add_partition(1, Active, T).unwrap();
        b
    };
    let mut locked = base.clone();
    locked.update_partition_state_change_lock(1, true, T + 10);
    let mut ours = base.clone();
    let change = ours
        .merge(Some(&locked), false, T + 20)
        .expect("the lock is news");
    assert!(change.partitions[&1].state_change_locked);
    assert!(ours.partitions[&1].state_change_locked);
    assert_eq!(ours.partitions[&1].state, Active as i32, "state untouched");
    assert_eq!(
        ours.merge(Some(&locked), false, T + 20),
        None,
        "same lock again"
    );
    // An older unlock loses; a newer one wins, also together with a state change.
    let mut old_unlock = base.clone();
    old_unlock
        .partitions
        .get_mut(&1)
        .unwrap()
        .state_change_locked_timestamp = T + 5;
    assert_eq!(ours.merge(Some(&old_unlock), false, T + 20), None);
    let mut newer = locked.clone();
    newer.update_partition_state_change_lock(1, false, T + 11);
    newer.update_partition_state(1, Inactive, T + 11).unwrap();
    let change = ours.merge(Some(&newer), false, T + 20).unwrap();
    let p = &change.partitions[&1];
    assert!(!p.state_change_locked);
    assert_eq!((p.state, p.state_timestamp), (Inactive as i32, T + 11));
    assert_eq!(ours, newer);

    // The wire: fields 5 (bool) and 6 (int64) of PartitionDesc, after the others.
    let mut w = PartitionRingDesc::new();
    w.partitions.insert(
        7,
        PartitionDesc {
            state: Active as i32,
            id: 7,
            state_change_locked: true,
            state_change_locked_timestamp: 300,
            ..PartitionDesc::default()
        },
    );
    let proto = codec::encode_protobuf(&w);
    assert!(
        proto.ends_with(&[0x20, 7, 0x28, 1, 0x30, 0xac, 0x02]),
        "{proto:x?}"
    );
    assert_eq!(codec::decode(&codec::encode(&w)).unwrap(), w);
    let json = codec::json::encode(&w);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["partitions"]["7"]["stateChangeLocked"], true, "{json}");
    assert_eq!(
        v["partitions"]["7"]["stateChangeLockedTimestamp"], 300,
        "{json}"
    );
    assert_eq!(codec::json::decode(&json).unwrap(), w);
}
