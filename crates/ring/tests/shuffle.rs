//! Shuffle sharding (spec/ring.md §3.5): dskit's test tables ported as facts, and the
//! stability, consistency, shuffling, read-only and caching properties.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringkit_ring::gorand::GoRand;
use ringkit_ring::shuffle::{
    shuffle_shard_expected_instances, shuffle_shard_expected_instances_per_zone, shuffle_shard_seed,
};
use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{Desc, GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};

const NOW: i64 = 1_800_000_000;
const H: i64 = 3600;

fn cfg(zone_aware: bool) -> RingConfig {
    RingConfig {
        zone_awareness_enabled: zone_aware,
        heartbeat_timeout: Duration::from_secs(3600),
        ..RingConfig::default()
    }
}

/// Sorted instance ids of a (sub)ring.
fn ids(r: &RingSnapshot) -> Vec<String> {
    r.instances().iter().map(|d| d.id.clone()).collect()
}

/// `n` instances `instance-1..=n` in zones `zone-(i % zones)`, `tokens` unique random
/// tokens each.
fn random_desc(n: usize, zones: usize, tokens: usize, seed: u64) -> Desc {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut used = HashSet::new();
    let mut d = Desc::new();
    for i in 1..=n {
        let mut t = Vec::with_capacity(tokens);
        while t.len() < tokens {
            let v: u32 = rng.random();
            if used.insert(v) {
                t.push(v);
            }
        }
        let id = format!("instance-{i}");
        d.add_instance(
            &id,
            &format!("10.0.0.{i}:9095"),
            &format!("zone-{}", i % zones),
            t,
            InstanceState::Active,
            NOW - 10 * H,
            NOW,
        );
    }
    d
}

fn snapshot(d: Desc, zone_aware: bool) -> Arc<RingSnapshot> {
    Arc::new(RingSnapshot::new(d, cfg(zone_aware)).expect("valid ring config"))
}

#[test]
fn shard_seed_is_the_big_endian_md5_prefix_go_computes() {
    // Printed by Go: int64(binary.BigEndian.Uint64(md5(tenant [0 zone])[:8])).
    assert_eq!(shuffle_shard_seed("tenant-1", ""), -2305785636457368283);
    assert_eq!(
        shuffle_shard_seed("tenant-1", "zone-a"),
        -179216323567045239
    );
    assert_eq!(shuffle_shard_seed("user-1", "zone-a"), 3671243352370911787);
    assert_eq!(shuffle_shard_seed("user-1", "zone-b"), -2439092500582034227);
    assert_eq!(shuffle_shard_seed("user-1", "zone-c"), -8618239895887427219);
    assert_eq!(shuffle_shard_seed("", ""), -3162216497309240828);
    assert_eq!(shuffle_shard_seed("", "z"), 4924731446826402359);
    assert_eq!(shuffle_shard_seed("1", "zone-0"), 2575021263764472237);
}

#[test]
fn shard_generator_draws_the_uint32s_go_draws_for_a_tenant() {
    // rand.New(rand.NewSource(ShuffleShardSeed(tenant, zone))).Uint32() x3, from Go.
    let cases: [(&str, &str, [u32; 3]); 4] = [
        ("tenant-1", "", [473989800, 2554148951, 2239962155]),
        ("tenant-1", "zone-a", [389085022, 1129191885, 2938445658]),
        ("user-1", "zone-b", [2605000809, 125677480, 458395524]),
        ("1", "zone-0", [3242178188, 2962279118, 706882955]),
    ];
    for (tenant, zone, want) in cases {
        let mut g = GoRand::new(shuffle_shard_seed(tenant, zone));
        let got = [g.uint32(), g.uint32(), g.uint32()];
        assert_eq!(got, want, "{tenant}/{zone}");
    }
}

#[test]
fn expected_instances_per_zone_rounds_up_like_dskit() {
    assert_eq!(shuffle_shard_expected_instances_per_zone(1, 1), 1);
    assert_eq!(shuffle_shard_expected_instances_per_zone(1, 3), 1);
    assert_eq!(shuffle_shard_expected_instances_per_zone(3, 3), 1);
    assert_eq!(shuffle_shard_expected_instances_per_zone(4, 3), 2);
    assert_eq!(shuffle_shard_expected_instances_per_zone(6, 3), 2);
    assert_eq!(
        shuffle_shard_expected_instances_per_zone(i64::MAX as usize, 3),
        i64::MAX as usize
    );
}

#[test]
fn expected_instances_total_is_per_zone_times_zones_like_dskit() {
    // dskit's ShuffleShardExpectedInstances: a size-4 shard over 3 zones takes 2 per zone.
    assert_eq!(shuffle_shard_expected_instances(4, 3), 6);
    assert_eq!(shuffle_shard_expected_instances(3, 3), 3);
    assert_eq!(shuffle_shard_expected_instances(5, 1), 5);
    assert_eq!(shuffle_shard_expected_instances(usize::MAX, 3), usize::MAX);
}

/// The Go test helper `userToken`: the `skip`-th Uint32 of the tenant's zone generator.
fn user_token(user: &str, zone: &str, skip: usize) -> u32 {
    let mut g = GoRand::new(shuffle_shard_seed(user, zone));
    for _ in 0..skip {
        g.uint32();
    }
    g.uint32()
}

/// One step of a lookback timeline: add (id, zone, token skip, token offset, registered
/// timestamp, read-only, read-only timestamp), remove, or test (shard size, expected ids).
enum Ev {
    Add(&'static str, &'static str, usize, u32, i64, bool, i64),
    Remove(&'static str),
    Test(usize, &'static [&'static str]),
}
use Ev::*;

/// dskit's `TestRing_ShuffleShardWithLookback` table (lookback 1h, tenant "user-1", zone
/// awareness on), transcribed event by event.
const LOOKBACK_TIMELINES: &[(&str, &[Ev])] = &[
    (
        "single zone, shard size = 1, recently bootstrapped cluster",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 60, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 60, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 60, false, 0),
            Test(1, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, shard size = 0, recently bootstrapped cluster",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 60, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 60, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 60, false, 0),
            Test(0, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, shard size = 1, instances scale up",
        &[
            Add("instance-1", "zone-a", 0, 3, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(1, &["instance-1"]),
            Add("instance-4", "zone-a", 0, 2, NOW - 600, false, 0),
            Test(1, &["instance-4", "instance-1"]),
            Add("instance-5", "zone-a", 0, 1, NOW - 300, false, 0),
            Test(1, &["instance-5", "instance-4", "instance-1"]),
        ],
    ),
    (
        "single zone, shard size = 1, instances scale down",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(1, &["instance-1"]),
            Remove("instance-3"),
            Test(1, &["instance-1"]),
            Remove("instance-1"),
            Test(1, &["instance-2"]),
        ],
    ),
    (
        "single zone, shard size = 1, rollout with instances unregistered (removed and re-added one by one)",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(1, &["instance-1"]),
            Remove("instance-3"),
            Test(1, &["instance-1"]),
            Add("instance-3", "zone-a", 2, 1, NOW, false, 0),
            Test(1, &["instance-1"]),
            Remove("instance-2"),
            Test(1, &["instance-1"]),
            Add("instance-2", "zone-a", 1, 1, NOW, false, 0),
            Test(1, &["instance-1"]),
            Remove("instance-1"),
            Test(1, &["instance-2", "instance-3"]),
            Add("instance-1", "zone-a", 0, 1, NOW, false, 0),
            Test(1, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, shard size = 2, rollout with instances unregistered (removed and re-added one by one)",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-a", 3, 1, NOW - 2 * H, false, 0),
            Test(2, &["instance-1", "instance-2"]),
            Remove("instance-4"),
            Test(2, &["instance-1", "instance-2"]),
            Add("instance-4", "zone-a", 3, 1, NOW, false, 0),
            Test(2, &["instance-1", "instance-2"]),
            Remove("instance-3"),
            Test(2, &["instance-1", "instance-2"]),
            Add("instance-3", "zone-a", 2, 1, NOW, false, 0),
            Test(2, &["instance-1", "instance-2"]),
            Remove("instance-2"),
            Test(2, &["instance-1", "instance-3", "instance-4"]),
            Add("instance-2", "zone-a", 1, 1, NOW, false, 0),
            Test(2, &["instance-1", "instance-2", "instance-3", "instance-4"]),
            Remove("instance-1"),
            Test(2, &["instance-2", "instance-3", "instance-4"]),
            Add("instance-1", "zone-a", 0, 1, NOW, false, 0),
            Test(2, &["instance-1", "instance-2", "instance-3", "instance-4"]),
        ],
    ),
    (
        "single zone, increase shard size",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(1, &["instance-1"]),
            Test(2, &["instance-1", "instance-2"]),
            Test(3, &["instance-1", "instance-2", "instance-3"]),
            Test(4, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, within lookback, shardSize=2",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, NOW + H / 2),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(2, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, not within lookback, shardSize=2",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, NOW - 2 * H),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(2, &["instance-1", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, at lookback boundary, shardSize=2",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, NOW + H),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(2, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, with unknown ReadOnlyUpdatedTimestamp, shardSize=2",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(2, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, within lookback, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, NOW + H / 2),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(0, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, not within lookback, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, NOW - 2 * H),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(0, &["instance-1", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, at lookback boundary, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, NOW + H),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(0, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "single zone, with read only instance, with unknown ReadOnlyUpdatedTimestamp, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-a", 1, 1, NOW - 2 * H, true, 0),
            Add("instance-3", "zone-a", 2, 1, NOW - 2 * H, false, 0),
            Test(2, &["instance-1", "instance-2", "instance-3"]),
        ],
    ),
    (
        "multi zone, shard size = 3, recently bootstrapped cluster",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 60, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 60, false, 0),
            Add("instance-3", "zone-c", 2, 1, NOW - 60, false, 0),
            Add("instance-4", "zone-a", 3, 1, NOW - 60, false, 0),
            Add("instance-5", "zone-b", 4, 1, NOW - 60, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 60, false, 0),
            Test(
                3,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, shard size = 3, instances scale up",
        &[
            Add("instance-1", "zone-a", 0, 2, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 2, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-c", 2, 2, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-a", 0, 3, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-b", 1, 3, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 2, 3, NOW - 2 * H, false, 0),
            Test(3, &["instance-1", "instance-2", "instance-3"]),
            Add("instance-7", "zone-a", 0, 1, NOW, false, 0),
            Test(3, &["instance-7", "instance-2", "instance-3", "instance-1"]),
            Add("instance-8", "zone-b", 1, 1, NOW, false, 0),
            Test(
                3,
                &[
                    "instance-7",
                    "instance-8",
                    "instance-3",
                    "instance-1",
                    "instance-2",
                ],
            ),
            Add("instance-9", "zone-c", 2, 1, NOW, false, 0),
            Test(
                3,
                &[
                    "instance-7",
                    "instance-8",
                    "instance-9",
                    "instance-1",
                    "instance-2",
                    "instance-3",
                ],
            ),
        ],
    ),
    (
        "multi zone, shard size = 3, instances scale down",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-c", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-a", 0, 3, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-b", 1, 3, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 2, 3, NOW - 2 * H, false, 0),
            Add("instance-7", "zone-a", 0, 2, NOW - 2 * H, false, 0),
            Add("instance-8", "zone-b", 1, 2, NOW - 2 * H, false, 0),
            Add("instance-9", "zone-c", 2, 2, NOW - 2 * H, false, 0),
            Test(3, &["instance-1", "instance-2", "instance-3"]),
            Remove("instance-1"),
            Test(3, &["instance-7", "instance-2", "instance-3"]),
            Remove("instance-2"),
            Test(3, &["instance-7", "instance-8", "instance-3"]),
            Remove("instance-3"),
            Test(3, &["instance-7", "instance-8", "instance-9"]),
        ],
    ),
    (
        "multi zone, increase shard size",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, false, 0),
            Add("instance-3", "zone-c", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-a", 0, 3, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-b", 1, 3, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 2, 3, NOW - 2 * H, false, 0),
            Add("instance-7", "zone-a", 0, 2, NOW - 2 * H, false, 0),
            Add("instance-8", "zone-b", 1, 2, NOW - 2 * H, false, 0),
            Add("instance-9", "zone-c", 2, 2, NOW - 2 * H, false, 0),
            Test(3, &["instance-1", "instance-2", "instance-3"]),
            Test(
                6,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-7",
                    "instance-8",
                    "instance-9",
                ],
            ),
        ],
    ),
    (
        "multi zone, shard size = 3, instances without registered timestamp",
        &[
            Add("instance-1", "zone-a", 0, 1, 0, false, 0),
            Add("instance-2", "zone-b", 0, 1, 0, false, 0),
            Add("instance-3", "zone-c", 0, 1, 0, false, 0),
            Add("instance-4", "zone-a", 1, 1, 0, false, 0),
            Add("instance-5", "zone-b", 1, 1, 0, false, 0),
            Add("instance-6", "zone-c", 1, 1, 0, false, 0),
            Test(3, &["instance-1", "instance-2", "instance-3"]),
            Remove("instance-1"),
            Remove("instance-2"),
            Remove("instance-3"),
            Add("instance-1", "zone-a", 0, 1, NOW - 60, false, 0),
            Add("instance-2", "zone-b", 0, 1, NOW - 60, false, 0),
            Add("instance-3", "zone-c", 0, 1, NOW - 60, false, 0),
            Test(
                3,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
            Remove("instance-4"),
            Remove("instance-5"),
            Remove("instance-6"),
            Add("instance-4", "zone-a", 1, 1, NOW - 60, false, 0),
            Add("instance-5", "zone-b", 1, 1, NOW - 60, false, 0),
            Add("instance-6", "zone-c", 1, 1, NOW - 60, false, 0),
            Test(
                3,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, with read only instance, within lookback, shardSize=3",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, NOW + H / 2),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, true, NOW + H / 2),
            Test(
                3,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, with read only instance, at lookback boundary, shardSize=3",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, NOW + H),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, false, 0),
            Test(3, &["instance-1", "instance-2", "instance-3", "instance-6"]),
        ],
    ),
    (
        "multi zone, with read only instance, not within lookback, shardSize=3",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, NOW - 2 * H),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, false, 0),
            Test(3, &["instance-1", "instance-3", "instance-6"]),
        ],
    ),
    (
        "multi zone, with read only instance, with unknown ReadOnlyUpdatedTimestamp, shardSize=3",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, 0),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, true, 0),
            Test(
                3,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, with read only instance, within lookback, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, NOW + H / 2),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, true, NOW + H / 2),
            Test(
                0,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, with read only instance, at lookback boundary, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, NOW + H),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, false, 0),
            Test(
                0,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, with read only instance, not within lookback, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, NOW - 2 * H),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, false, 0),
            Test(
                0,
                &[
                    "instance-1",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
        ],
    ),
    (
        "multi zone, with read only instance, with unknown ReadOnlyUpdatedTimestamp, shardSize=0",
        &[
            Add("instance-1", "zone-a", 0, 1, NOW - 2 * H, false, 0),
            Add("instance-2", "zone-b", 1, 1, NOW - 2 * H, true, 0),
            Add("instance-3", "zone-b", 2, 1, NOW - 2 * H, false, 0),
            Add("instance-4", "zone-c", 3, 1, NOW - 2 * H, false, 0),
            Add("instance-5", "zone-c", 4, 1, NOW - 2 * H, false, 0),
            Add("instance-6", "zone-c", 5, 1, NOW - 2 * H, true, 0),
            Test(
                0,
                &[
                    "instance-1",
                    "instance-2",
                    "instance-3",
                    "instance-4",
                    "instance-5",
                    "instance-6",
                ],
            ),
        ],
    ),
];

fn replay_lookback_timeline(name: &str, timeline: &[Ev], cache: bool, incremental: bool) {
    let mut desc = Desc::new();
    let mut ring: Option<Arc<RingSnapshot>> = None;
    let build = |desc: &Desc, prev: &Option<Arc<RingSnapshot>>| {
        let r = match prev {
            Some(p) if incremental => p.update(desc.clone()),
            _ => RingSnapshot::new(desc.clone(), cfg(true)).expect("valid ring config"),
        };
        Arc::new(if cache { r } else { r.without_subring_cache() })
    };
    for (step, ev) in timeline.iter().enumerate() {
        match *ev {
            Add(id, zone, skip, plus, registered, read_only, read_only_ts) => {
                let token = user_token("user-1", zone, skip).wrapping_add(plus);
                let d = desc.add_instance(
                    id,
                    id,
                    zone,
                    vec![token],
                    InstanceState::Active,
                    registered,
                    NOW,
                );
                d.read_only = read_only;
                d.read_only_updated_timestamp = read_only_ts;
                ring = Some(build(&desc, &ring));
            }
            Remove(id) => {
                desc.ingesters.remove(id);
                ring = Some(build(&desc, &ring));
            }
            Test(size, expected) => {
                let r = ring.as_ref().expect("timeline starts with instances");
                let want: BTreeSet<&str> = expected.iter().copied().collect();
                // Twice: the second call may be served from the cache.
                for _ in 0..2 {
                    let shard = r.shuffle_shard_with_lookback(
                        "user-1",
                        size,
                        Duration::from_secs(H as u64),
                        unix_seconds(NOW),
                    );
                    let got: BTreeSet<String> = ids(&shard).into_iter().collect();
                    let got: BTreeSet<&str> = got.iter().map(String::as_str).collect();
                    assert_eq!(got, want, "{name}: step {step} (cache {cache})");
                }
            }
        }
    }
}

#[test]
fn lookback_shards_match_every_dskit_timeline() {
    for (name, timeline) in LOOKBACK_TIMELINES {
        for cache in [false, true] {
            replay_lookback_timeline(name, timeline, cache, false);
        }
    }
}

#[test]
fn lookback_shards_match_every_dskit_timeline_when_snapshots_are_updated_in_place() {
    for (name, timeline) in LOOKBACK_TIMELINES {
        replay_lookback_timeline(name, timeline, true, true);
    }
}

/// Instances of a shard per zone name.
fn per_zone(r: &RingSnapshot) -> Vec<(String, usize)> {
    r.zones()
        .iter()
        .map(|z| (z.clone(), r.instances_in_zone_count(z)))
        .collect()
}

/// A ring from (id, zone, read-only) with 128 random tokens each.
fn small_ring(specs: &[(&str, &str, bool)], zone_aware: bool) -> Arc<RingSnapshot> {
    let mut rng = SmallRng::seed_from_u64(99);
    let mut d = Desc::new();
    for &(id, zone, ro) in specs {
        let t: Vec<u32> = (0..128).map(|_| rng.random()).collect();
        let inst = d.add_instance(id, id, zone, t, InstanceState::Active, NOW - H, NOW);
        inst.read_only = ro;
        inst.read_only_updated_timestamp = if ro { NOW } else { 0 };
    }
    snapshot(d, zone_aware)
}

#[test]
fn shard_sizes_and_zone_split_follow_dskit_table() {
    let six = [
        ("instance-1", "zone-a", false),
        ("instance-2", "zone-a", false),
        ("instance-3", "zone-b", false),
        ("instance-4", "zone-b", false),
        ("instance-5", "zone-c", false),
        ("instance-6", "zone-c", false),
    ];
    let unbalanced = [
        ("instance-1", "zone-a", false),
        ("instance-2", "zone-a", false),
        ("instance-3", "zone-a", false),
        ("instance-4", "zone-b", false),
        ("instance-5", "zone-b", false),
        ("instance-6", "zone-c", false),
    ];
    type Case<'a> = (
        &'a [(&'a str, &'a str, bool)],
        usize,
        bool,
        usize,
        &'a [usize],
    );
    let cases: &[Case<'_>] = &[
        (&[], 2, true, 0, &[]),
        (&[], 0, true, 0, &[]),
        (&six[..2], 3, true, 2, &[2]),
        (&six[..2], 0, true, 2, &[2]),
        (
            &[
                ("instance-1", "zone-a", false),
                ("instance-2", "zone-a", false),
                ("instance-3", "zone-a", false),
            ],
            2,
            true,
            2,
            &[2],
        ),
        (
            &[
                ("instance-1", "zone-a", false),
                ("instance-2", "zone-a", false),
                ("instance-3", "zone-a", true),
            ],
            3,
            true,
            2,
            &[2],
        ),
        (
            &[
                ("instance-1", "zone-a", false),
                ("instance-2", "zone-b", false),
                ("instance-3", "zone-c", false),
            ],
            2,
            true,
            3,
            &[1, 1, 1],
        ),
        (&six, 3, true, 3, &[1, 1, 1]),
        // Size 4 over 3 zones: ceil(4 / 3) = 2 per zone.
        (&six, 4, true, 6, &[2, 2, 2]),
        (&six, 4, false, 4, &[]),
        (
            &[
                ("instance-1", "zone-a", false),
                ("instance-2", "zone-b", false),
                ("instance-3", "zone-c", true),
            ],
            3,
            true,
            2,
            &[1, 1],
        ),
        (
            &[
                ("instance-1", "zone-a", false),
                ("instance-2", "zone-a", false),
                ("instance-3", "zone-b", true),
                ("instance-4", "zone-b", false),
                ("instance-5", "zone-c", false),
                ("instance-6", "zone-c", true),
            ],
            0,
            true,
            4,
            &[2, 1, 1],
        ),
        (&six, 6, true, 6, &[2, 2, 2]),
        (&unbalanced, 6, true, 5, &[2, 2, 1]),
        (&unbalanced, 9, true, 6, &[3, 2, 1]),
        (&unbalanced, 0, true, 6, &[3, 2, 1]),
    ];
    for (i, &(specs, size, zone_aware, want_len, want_split)) in cases.iter().enumerate() {
        let r = small_ring(specs, zone_aware);
        let shard = r.shuffle_shard("tenant-id", size);
        assert_eq!(shard.instances_count(), want_len, "case {i}");
        if zone_aware {
            let split: Vec<usize> = per_zone(&shard).into_iter().map(|(_, n)| n).collect();
            assert_eq!(split, want_split, "case {i}");
        }
        assert!(
            shard.instances().iter().all(|d| !d.read_only),
            "case {i}: no read-only instance in a shard"
        );
    }
}

#[test]
fn size_zero_without_read_only_instances_is_the_ring_itself() {
    let r = snapshot(random_desc(10, 3, 16, 1), true);
    assert!(Arc::ptr_eq(&r.shuffle_shard("t", 0), &r));
    let lb = r.shuffle_shard_with_lookback("t", 0, Duration::from_secs(60), unix_seconds(NOW));
    assert!(Arc::ptr_eq(&lb, &r));
}

#[test]
fn shards_are_stable_across_calls_and_equal_with_and_without_cache() {
    let desc = random_desc(50, 3, 128, 2);
    let cached = snapshot(desc.clone(), true);
    let uncached = Arc::new(
        RingSnapshot::new(desc, cfg(true))
            .expect("valid ring config")
            .without_subring_cache(),
    );
    for tenant in 1..=100 {
        let tenant = tenant.to_string();
        for size in [3, 6, 9, 12, 15] {
            let first = ids(&cached.shuffle_shard(&tenant, size));
            assert_eq!(first.len(), size);
            for _ in 0..3 {
                assert_eq!(ids(&cached.shuffle_shard(&tenant, size)), first);
                assert_eq!(ids(&uncached.shuffle_shard(&tenant, size)), first);
            }
            let mut idx: Vec<String> = uncached
                .shuffle_shard_indices(&tenant, size)
                .into_iter()
                .map(|i| uncached.instance_at(i).id.clone())
                .collect();
            idx.sort();
            assert_eq!(idx, first, "shuffle_shard_indices agrees");
        }
    }
}

fn diff(a: &[String], b: &[String]) -> (usize, usize) {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    (a.difference(&b).count(), b.difference(&a).count())
}

#[test]
fn adding_removing_or_flipping_one_instance_changes_at_most_one_shard_member() {
    for (n, seed) in [(20usize, 3u64), (30, 4), (40, 5), (50, 6)] {
        let mut desc = random_desc(n, 3, 128, seed);
        // Some read-only instances, as dskit's test does.
        for i in (1..=n).step_by(8) {
            let d = desc.ingesters.get_mut(&format!("instance-{i}")).unwrap();
            d.read_only = true;
            d.read_only_updated_timestamp = NOW;
        }
        let before = snapshot(desc.clone(), true);
        let mut added = desc.clone();
        added.add_instance(
            "instance-new",
            "x",
            "zone-0",
            (0..128u32)
                .map(|i| i.wrapping_mul(2_654_435_761) ^ 0x5bd1_e995)
                .collect(),
            InstanceState::Active,
            NOW,
            NOW,
        );
        let mut removed = desc.clone();
        removed.ingesters.remove("instance-2");
        let mut flipped_on = desc.clone();
        flipped_on
            .ingesters
            .get_mut("instance-3")
            .unwrap()
            .read_only = true;
        let mut flipped_off = desc.clone();
        flipped_off
            .ingesters
            .get_mut("instance-1")
            .unwrap()
            .read_only = false;
        for changed in [added, removed, flipped_on, flipped_off] {
            let after = snapshot(changed, true);
            for size in [3, 6, 9, 12, 15] {
                for tenant in 0..100 {
                    let t = tenant.to_string();
                    let (gone, new) = diff(
                        &ids(&before.shuffle_shard(&t, size)),
                        &ids(&after.shuffle_shard(&t, size)),
                    );
                    assert!(
                        gone <= 1 && new <= 1,
                        "n {n} size {size} tenant {t}: -{gone} +{new}"
                    );
                }
            }
        }
    }
}

#[test]
fn growing_the_shard_keeps_earlier_picks_and_shrinking_returns_them() {
    let r = snapshot(random_desc(30, 3, 128, 7), true);
    let s3 = ids(&r.shuffle_shard("tenant-id", 3));
    let s6 = ids(&r.shuffle_shard("tenant-id", 6));
    let s9 = ids(&r.shuffle_shard("tenant-id", 9));
    assert_eq!((s3.len(), s6.len(), s9.len()), (3, 6, 9));
    assert!(s3.iter().all(|i| s6.contains(i)));
    assert!(s6.iter().all(|i| s9.contains(i)));
    assert_eq!(ids(&r.shuffle_shard("tenant-id", 6)), s6);
    assert_eq!(ids(&r.shuffle_shard("tenant-id", 3)), s3);
    // Without zone awareness too.
    let flat = snapshot(random_desc(30, 3, 128, 7), false);
    let mut prev: Vec<String> = Vec::new();
    for size in 1..=30 {
        let s = ids(&flat.shuffle_shard("tenant-id", size));
        assert_eq!(s.len(), size);
        assert!(prev.iter().all(|i| s.contains(i)), "size {size}");
        prev = s;
    }
}

#[test]
fn adding_a_zone_keeps_the_picks_of_existing_zones() {
    let mut desc = random_desc(20, 2, 128, 8);
    let r = snapshot(desc.clone(), true);
    let s2 = ids(&r.shuffle_shard("tenant-id", 2));
    let s4 = ids(&r.shuffle_shard("tenant-id", 4));
    assert!(s2.iter().all(|i| s4.contains(i)));
    let extra = random_desc(30, 3, 128, 9);
    for i in 21..=30 {
        let mut d = extra.ingesters[&format!("instance-{i}")].clone();
        d.zone = "zone-2".into();
        desc.ingesters.insert(d.id.clone(), d);
    }
    let grown = snapshot(desc, true);
    let s6 = ids(&grown.shuffle_shard("tenant-id", 6));
    let s9 = ids(&grown.shuffle_shard("tenant-id", 9));
    assert_eq!((s6.len(), s9.len()), (6, 9));
    assert!(s4.iter().all(|i| s6.contains(i)), "{s4:?} ⊄ {s6:?}");
    assert!(s6.iter().all(|i| s9.contains(i)));
}

/// dskit's `generateTokensLinear`: evenly spaced tokens, offset per instance.
fn linear_tokens(instance: i64, instances: i64, tokens: i64) -> Vec<u32> {
    let step = i64::from(u32::MAX) / tokens;
    let offset = (step / instances) * instance;
    let mut out = Vec::new();
    let mut t = offset;
    while t <= i64::from(u32::MAX) {
        out.push(t as u32);
        t += step;
    }
    out
}

#[test]
fn tenants_share_instances_as_rarely_as_theory_predicts() {
    // 90 instances, 3 zones, shard size 3: the share of tenant pairs with 0..3 common
    // instances must be within 10% (clamped to 0.2-1 points) of the theoretical values
    // dskit's TestRing_ShuffleShard_Shuffling uses.
    let mut d = Desc::new();
    for i in 0..90 {
        d.add_instance(
            &format!("instance-{i}"),
            &format!("127.0.0.{i}"),
            &format!("zone-{}", i % 3),
            linear_tokens(i, 90, 128),
            InstanceState::Active,
            NOW,
            NOW,
        );
    }
    let r = snapshot(d, true);
    let shards: Vec<Vec<u32>> = (1..=1000)
        .map(|t| r.shuffle_shard_indices(&t.to_string(), 3))
        .collect();
    let mut dist = [0u64; 4];
    for (a, sa) in shards.iter().enumerate() {
        for (b, sb) in shards.iter().enumerate() {
            if a != b {
                dist[sa.iter().filter(|i| sb.contains(i)).count()] += 1;
            }
        }
    }
    let total = (1000 * 1000 - 1000) as f64;
    for (k, theory) in [90.2239f64, 9.55312, 0.22217, 0.00085]
        .into_iter()
        .enumerate()
    {
        let actual = dist[k] as f64 / total * 100.0;
        let dev = (theory * 0.1).clamp(0.2, 1.0);
        assert!(
            (actual - theory).abs() <= dev,
            "{k} shared: {actual:.3}% vs {theory}%"
        );
    }
}

#[test]
fn read_only_instances_are_never_in_a_plain_shard_but_kept_by_a_recent_lookback() {
    let mut desc = random_desc(30, 3, 64, 10);
    for i in [1, 5, 9, 13, 17] {
        let d = desc.ingesters.get_mut(&format!("instance-{i}")).unwrap();
        d.read_only = true;
        d.read_only_updated_timestamp = NOW - 60;
    }
    let r = snapshot(desc, true);
    let all = r.shuffle_shard("t", 0);
    assert_eq!(all.instances_count(), 25);
    assert!(all.instances().iter().all(|d| !d.read_only));
    for tenant in 0..50 {
        let s = r.shuffle_shard(&tenant.to_string(), 9);
        assert_eq!(s.instances_count(), 9);
        assert!(s.instances().iter().all(|d| !d.read_only));
        let lb = r.shuffle_shard_with_lookback(
            &tenant.to_string(),
            9,
            Duration::from_secs(H as u64),
            unix_seconds(NOW),
        );
        assert!(
            ids(&s).iter().all(|i| ids(&lb).contains(i)),
            "lookback ⊇ shard"
        );
        // A window that starts after the flips excludes them again.
        let short = r.shuffle_shard_with_lookback(
            &tenant.to_string(),
            9,
            Duration::from_secs(30),
            unix_seconds(NOW),
        );
        assert!(short.instances().iter().all(|d| !d.read_only));
    }
}

#[test]
fn cache_hits_return_the_same_shard_and_disabled_cache_recomputes() {
    let desc = random_desc(50, 3, 128, 11);
    let r = snapshot(desc.clone(), true);
    let a = r.shuffle_shard("tenant", 6);
    let b = r.shuffle_shard("tenant", 6);
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &r.shuffle_shard("tenant", 9)));
    let off = Arc::new(
        RingSnapshot::new(desc, cfg(true))
            .expect("valid ring config")
            .without_subring_cache(),
    );
    assert!(!off.subring_cache_enabled());
    let c = off.shuffle_shard("tenant", 6);
    let d = off.shuffle_shard("tenant", 6);
    assert!(!Arc::ptr_eq(&c, &d));
    assert_eq!(ids(&c), ids(&a));
    r.cleanup_shuffle_shard_cache("tenant");
    assert!(!Arc::ptr_eq(&a, &r.shuffle_shard("tenant", 6)));
}

#[test]
fn heartbeat_updates_keep_cached_shards_but_refresh_their_health() {
    let desc = random_desc(30, 3, 64, 12);
    let r = snapshot(desc.clone(), true);
    let before = r.shuffle_shard("tenant", 6);
    let member = before.instances()[0].id.clone();
    let mut beat = desc.clone();
    for d in beat.ingesters.values_mut() {
        d.timestamp = NOW + 100;
    }
    beat.ingesters.get_mut(&member).unwrap().state = InstanceState::Leaving as i32;
    let r2 = Arc::new(r.update(beat));
    let after = r2.shuffle_shard("tenant", 6);
    assert_eq!(ids(&after), ids(&before));
    assert!(after.instances().iter().all(|d| d.timestamp == NOW + 100));
    assert_eq!(
        after.instance(&member).unwrap().state,
        InstanceState::Leaving as i32
    );
    // The refreshed shard is stored: the next hit is the same Arc.
    assert!(Arc::ptr_eq(&after, &r2.shuffle_shard("tenant", 6)));
    // The old snapshot still serves its own health data.
    assert_eq!(r.shuffle_shard("tenant", 6).instances()[0].timestamp, NOW);
    // A topology change drops the cache: the shard is recomputed from the new ring.
    let mut topo = desc;
    topo.ingesters.remove(&member);
    let r3 = Arc::new(r2.update(topo));
    let moved = r3.shuffle_shard("tenant", 6);
    assert!(!ids(&moved).contains(&member));
    assert_eq!(moved.instances_count(), 6);
}

#[test]
fn a_shard_answers_lookups_with_its_own_instances_only() {
    let r = snapshot(random_desc(60, 3, 128, 13), true);
    let shard = r.shuffle_shard("tenant", 6);
    let members: HashSet<String> = ids(&shard).into_iter().collect();
    assert_eq!(shard.tokens().len(), 6 * 128);
    assert!(shard.tokens().windows(2).all(|w| w[0] < w[1]));
    for z in 0..shard.zones_count() {
        let (t, o) = shard.zone_tokens(z);
        assert_eq!(t.len(), 2 * 128);
        assert!(o.iter().all(|&i| shard.zone_of(i) == z));
    }
    let mut buf = GetBuffer::new();
    let mut key = 12345u32;
    for _ in 0..1000 {
        key = key.wrapping_mul(2_654_435_761).wrapping_add(1);
        let set = shard
            .get(key, Operation::WRITE, unix_seconds(NOW), &mut buf)
            .unwrap();
        assert_eq!(set.len(), 3);
        for d in set.instances() {
            assert!(members.contains(&d.id));
        }
    }
    // Same answers as a ring built from scratch from the shard's descriptor.
    let fresh = RingSnapshot::new(shard.to_desc(), cfg(true)).expect("valid ring config");
    assert_eq!(fresh.tokens(), shard.tokens());
    assert_eq!(fresh.token_owners(), shard.token_owners());
    for i in 0..shard.instances_count() as u32 {
        assert_eq!(fresh.owned_keys(i), shard.owned_keys(i));
        assert_eq!(fresh.owned_keys_in_zone(i), shard.owned_keys_in_zone(i));
    }
}

#[test]
fn shards_of_rings_with_duplicated_or_no_tokens_do_not_panic() {
    let mut d = Desc::new();
    d.add_instance(
        "a",
        "a",
        "z1",
        vec![1, 2, 3],
        InstanceState::Active,
        NOW,
        NOW,
    );
    d.add_instance(
        "b",
        "b",
        "z1",
        vec![2, 3, 4],
        InstanceState::Leaving,
        NOW,
        NOW,
    );
    d.add_instance("c", "c", "z2", vec![], InstanceState::Active, NOW, NOW);
    d.add_instance("d", "d", "", vec![9], InstanceState::Active, 0, NOW);
    for zone_aware in [false, true] {
        let r = snapshot(d.clone(), zone_aware);
        for size in [0, 1, 2, 3, 4, 100, usize::MAX] {
            let s = r.shuffle_shard("t", size);
            assert!(s.instances_count() <= 4);
            let _ = r.shuffle_shard_with_lookback(
                "t",
                size,
                Duration::from_secs(60),
                unix_seconds(NOW),
            );
            let _ = r.shuffle_shard_with_lookback("t", size, Duration::MAX, unix_seconds(0));
        }
    }
    let empty = snapshot(Desc::new(), true);
    assert_eq!(empty.shuffle_shard("t", 3).instances_count(), 0);
}

/// A shard shares its parent's descriptors instead of copying them; a shard of a shard
/// must still behave exactly like a snapshot built from its descriptor (instances, tokens,
/// ownership, lookups), with or without tokens shared between instances.
#[test]
fn shards_of_shards_behave_like_snapshots_built_from_their_descriptors() {
    for (seed, zone_aware) in [(1u64, true), (2, false)] {
        let mut d = random_desc(60, 3, 32, seed);
        if seed == 2 {
            // Two instances claim the same token: the general table build resolves it.
            let t = d.ingesters["instance-1"].tokens[0];
            let other = d.ingesters.get_mut("instance-2").unwrap();
            other.tokens.make_mut().push(t);
            other.tokens.make_mut().sort_unstable();
        }
        let r = snapshot(d, zone_aware);
        let outer = r.shuffle_shard("tenant-a", 24);
        let inner = outer.shuffle_shard("tenant-b", 9);
        let fresh_outer = Arc::new(
            RingSnapshot::new(outer.to_desc(), cfg(zone_aware)).expect("valid ring config"),
        );
        let fresh_inner = fresh_outer.shuffle_shard("tenant-b", 9);
        for (got, want) in [(&outer, &fresh_outer), (&inner, &fresh_inner)] {
            assert_eq!(ids(got), ids(want));
            assert_eq!(got.tokens(), want.tokens());
            assert_eq!(got.token_owners(), want.token_owners());
            assert_eq!(got.zones(), want.zones());
            for i in 0..got.instances_count() as u32 {
                assert_eq!(got.instance_at(i), want.instance_at(i));
                assert_eq!(got.owned_keys(i), want.owned_keys(i));
                assert_eq!(got.owned_keys_in_zone(i), want.owned_keys_in_zone(i));
            }
            let (mut ga, mut gb) = (GetBuffer::new(), GetBuffer::new());
            let mut rng = SmallRng::seed_from_u64(seed);
            for _ in 0..200 {
                let key: u32 = rng.random();
                let now = unix_seconds(NOW);
                let a = got
                    .get(key, Operation::WRITE, now, &mut ga)
                    .map(|s| s.indices().to_vec());
                let b = want
                    .get(key, Operation::WRITE, now, &mut gb)
                    .map(|s| s.indices().to_vec());
                assert_eq!(a, b);
            }
        }
    }
}
