//! Table tests for every lookup rule of spec/ring.md §3.1-3.4, on small hand-made rings
//! whose answers can be worked out by hand.

use std::time::Duration;

use ringkit_ring::snapshot::{ReplicationStrategy, unix_seconds};
use ringkit_ring::{
    ConfigError, Desc, GetBuffer, InstanceBuilder, InstanceState, Operation, RingConfig, RingError,
    RingSnapshot, codec,
};

use InstanceState::*;

const NOW: i64 = 1_800_000_000;

/// One instance of a test ring: id, zone, state, tokens, heartbeat age in seconds.
type Spec<'a> = (&'a str, &'a str, InstanceState, &'a [u32], i64);

fn ring(specs: &[Spec<'_>], cfg: RingConfig) -> RingSnapshot {
    let mut d = Desc::new();
    for &(id, zone, state, tokens, age) in specs {
        d.add_instance(
            id,
            &format!("{id}:9095"),
            zone,
            tokens.to_vec(),
            state,
            1,
            NOW - age,
        );
    }
    RingSnapshot::new(d, cfg).expect("valid ring config")
}

fn cfg(rf: usize, zone_aware: bool) -> RingConfig {
    RingConfig {
        replication_factor: rf,
        zone_awareness_enabled: zone_aware,
        heartbeat_timeout: Duration::from_secs(60),
        ..RingConfig::default()
    }
}

/// `get` as (ids in walk order, max_errors) or the error text.
fn get(r: &RingSnapshot, key: u32, op: Operation) -> Result<(Vec<String>, usize), String> {
    let mut buf = GetBuffer::new();
    r.get(key, op, unix_seconds(NOW), &mut buf)
        .map(|set| {
            (
                set.instances().map(|d| d.id.clone()).collect(),
                set.max_errors,
            )
        })
        .map_err(|e| e.to_string())
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const FOUR: [Spec<'static>; 4] = [
    ("a", "", Active, &[10], 0),
    ("b", "", Active, &[20], 0),
    ("c", "", Active, &[30], 0),
    ("d", "", Active, &[40], 0),
];

fn four_with(id: &str, state: InstanceState, age: i64) -> RingSnapshot {
    let specs: Vec<Spec<'_>> = FOUR
        .iter()
        .map(|s| {
            if s.0 == id {
                (s.0, s.1, state, s.3, age)
            } else {
                *s
            }
        })
        .collect();
    ring(&specs, cfg(3, false))
}

#[test]
fn search_token_finds_first_token_strictly_greater_and_wraps() {
    let r = ring(&[("a", "", Active, &[3, 5], 0)], cfg(1, false));
    for (key, idx) in [(0, 0), (3, 1), (4, 1), (5, 0), (7, 0), (u32::MAX, 0)] {
        assert_eq!(r.search_token(key), idx, "key {key}");
    }
}

#[test]
fn search_token_agrees_with_binary_search_on_a_big_ring() {
    let r = RingSnapshot::new(
        codec::decode(include_bytes!(
            "../../../testdata/ring-desc-3x128.snappy-proto.bin"
        ))
        .unwrap(),
        cfg(3, true),
    )
    .expect("valid ring config");
    let tokens = r.tokens();
    let mut key = 0u32;
    for _ in 0..200_000 {
        let expect = match tokens.binary_search(&key) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        let expect = if expect == tokens.len() { 0 } else { expect };
        assert_eq!(r.search_token(key), expect, "key {key}");
        key = key.wrapping_add(21_474);
    }
    for &t in tokens {
        let i = r.search_token(t);
        assert!(tokens[i] > t || i == 0);
    }
}

#[test]
fn key_belongs_to_next_token_and_replicas_walk_clockwise() {
    let r = ring(&FOUR, cfg(3, false));
    assert_eq!(
        get(&r, 15, Operation::WRITE),
        Ok((ids(&["b", "c", "d"]), 1))
    );
    assert_eq!(
        get(&r, 20, Operation::WRITE),
        Ok((ids(&["c", "d", "a"]), 1))
    );
    assert_eq!(
        get(&r, 45, Operation::WRITE),
        Ok((ids(&["a", "b", "c"]), 1))
    );
    assert_eq!(get(&r, 0, Operation::WRITE), Ok((ids(&["a", "b", "c"]), 1)));
}

#[test]
fn multiple_tokens_of_one_instance_count_once() {
    let r = ring(
        &[
            ("a", "", Active, &[10, 11, 12], 0),
            ("b", "", Active, &[20, 21], 0),
            ("c", "", Active, &[30], 0),
        ],
        cfg(3, false),
    );
    assert_eq!(get(&r, 5, Operation::WRITE), Ok((ids(&["a", "b", "c"]), 1)));
    assert_eq!(
        get(&r, 11, Operation::WRITE),
        Ok((ids(&["a", "b", "c"]), 1))
    );
}

#[test]
fn write_extends_past_a_leaving_instance_and_drops_it() {
    // Walk: b, c (LEAVING: extends), d, a; filter drops c; n = 4 so quorum is 3.
    let r = four_with("c", Leaving, 0);
    assert_eq!(
        get(&r, 15, Operation::WRITE),
        Ok((ids(&["b", "d", "a"]), 0))
    );
}

#[test]
fn write_no_extend_keeps_the_set_at_rf_and_drops_the_leaving_one() {
    let r = four_with("c", Leaving, 0);
    assert_eq!(
        get(&r, 15, Operation::WRITE_NO_EXTEND),
        Ok((ids(&["b", "d"]), 0))
    );
}

#[test]
fn read_uses_leaving_instances_without_extending() {
    let r = four_with("c", Leaving, 0);
    assert_eq!(get(&r, 15, Operation::READ), Ok((ids(&["b", "c", "d"]), 1)));
}

#[test]
fn read_extends_on_pending_and_keeps_it_as_healthy() {
    let r = four_with("c", Pending, 0);
    assert_eq!(
        get(&r, 15, Operation::READ),
        Ok((ids(&["b", "c", "d", "a"]), 1))
    );
}

#[test]
fn read_extends_on_joining_and_drops_it() {
    let r = four_with("c", Joining, 0);
    assert_eq!(get(&r, 15, Operation::READ), Ok((ids(&["b", "d", "a"]), 0)));
}

#[test]
fn reporting_accepts_every_state_and_never_extends() {
    let r = four_with("c", Joining, 0);
    assert_eq!(
        get(&r, 15, Operation::REPORTING),
        Ok((ids(&["b", "c", "d"]), 1))
    );
}

#[test]
fn stale_heartbeat_is_unhealthy_but_still_counts_toward_the_set_size() {
    let r = four_with("c", Active, 61);
    assert_eq!(get(&r, 15, Operation::WRITE), Ok((ids(&["b", "d"]), 0)));
}

#[test]
fn two_stale_replicas_fail_the_quorum_with_dskits_message() {
    let r = ring(
        &[
            ("a", "", Active, &[10], 0),
            ("b", "", Active, &[20], 0),
            ("c", "", Active, &[30], 120),
            ("d", "", Active, &[40], 120),
        ],
        cfg(3, false),
    );
    assert_eq!(
        get(&r, 25, Operation::WRITE),
        Err(
            "at least 2 live replicas required, could only find 1 - unhealthy instances: c:9095,d:9095"
                .into()
        )
    );
}

#[test]
fn heartbeat_exactly_at_the_timeout_is_healthy_and_one_nanosecond_later_is_not() {
    let r = ring(&[("a", "", Active, &[10], 0)], cfg(1, false));
    let mut buf = GetBuffer::new();
    let at = unix_seconds(NOW + 60);
    assert!(r.get(1, Operation::WRITE, at, &mut buf).is_ok());
    let after = at + Duration::from_nanos(1);
    assert!(r.get(1, Operation::WRITE, after, &mut buf).is_err());
    assert!(r.is_healthy(0, Operation::WRITE, at));
    assert!(!r.is_healthy(0, Operation::WRITE, after));
}

#[test]
fn heartbeat_in_the_future_is_healthy() {
    let r = ring(&[("a", "", Active, &[10], -3600)], cfg(1, false));
    assert_eq!(get(&r, 1, Operation::WRITE), Ok((ids(&["a"]), 0)));
}

#[test]
fn fewer_instances_than_rf_need_a_majority_of_rf() {
    let two = ring(
        &[("a", "", Active, &[10], 0), ("b", "", Active, &[20], 0)],
        cfg(3, false),
    );
    assert_eq!(get(&two, 5, Operation::WRITE), Ok((ids(&["a", "b"]), 0)));
    let one = ring(&[("a", "", Active, &[10], 0)], cfg(3, false));
    assert_eq!(
        get(&one, 5, Operation::WRITE),
        Err("at least 2 live replicas required, could only find 1".into())
    );
}

#[test]
fn rf_one_with_a_dead_instance_reports_it() {
    let r = ring(&[("a", "", Active, &[10], 600)], cfg(1, false));
    assert_eq!(
        get(&r, 5, Operation::READ),
        Err(
            "at least 1 live replicas required, could only find 0 - unhealthy instances: a:9095"
                .into()
        )
    );
}

#[test]
fn empty_ring_and_ring_without_tokens_are_errors() {
    let empty = RingSnapshot::empty(cfg(3, false)).expect("valid ring config");
    assert_eq!(get(&empty, 1, Operation::WRITE), Err("empty ring".into()));
    let tokenless = ring(&[("a", "", Pending, &[], 0)], cfg(3, false));
    assert_eq!(
        get(&tokenless, 1, Operation::WRITE),
        Err("empty ring".into())
    );
    assert_eq!(tokenless.instances_count(), 1);
    assert!(
        tokenless
            .replication_set_for_operation(Operation::READ, unix_seconds(NOW))
            .is_err()
    );
}

#[test]
fn instance_without_tokens_is_visible_but_owns_nothing() {
    let r = ring(
        &[
            ("a", "", Active, &[10], 0),
            ("b", "", Active, &[20], 0),
            ("new", "", Pending, &[], 0),
        ],
        cfg(3, false),
    );
    assert!(r.has_instance("new"));
    assert_eq!(r.instances_count(), 3);
    assert_eq!(r.instances_with_tokens_count(), 2);
    let idx = r.instance_index("new").unwrap();
    assert_eq!(r.owned_keys(idx), 0);
    assert_eq!(r.ownership_in_zone(idx), 0.0);
    // max_instances counts it, but the walk can only find the two with tokens.
    assert_eq!(get(&r, 5, Operation::WRITE), Ok((ids(&["a", "b"]), 0)));
    assert_eq!(r.counts_by_state().by_wire_value(), [2, 0, 1, 0, 0]);
    assert_eq!(r.counts_by_state().total(), 3);
    assert_eq!(r.counts_by_state().get(Pending), 1);
}

// Zone-aware ring: zones a, b, c with two instances each; tokens interleaved so that
// walking clockwise meets two instances of the same zone in a row.
const ZONED: [Spec<'static>; 6] = [
    ("a1", "a", Active, &[10], 0),
    ("a2", "a", Active, &[20], 0),
    ("b1", "b", Active, &[30], 0),
    ("b2", "b", Active, &[40], 0),
    ("c1", "c", Active, &[50], 0),
    ("c2", "c", Active, &[60], 0),
];

fn zoned_with(id: &str, state: InstanceState, age: i64) -> RingSnapshot {
    let specs: Vec<Spec<'_>> = ZONED
        .iter()
        .map(|s| {
            if s.0 == id {
                (s.0, s.1, state, s.3, age)
            } else {
                *s
            }
        })
        .collect();
    ring(&specs, cfg(3, true))
}

#[test]
fn zone_aware_takes_one_instance_per_zone() {
    let r = ring(&ZONED, cfg(3, true));
    assert_eq!(
        get(&r, 5, Operation::WRITE),
        Ok((ids(&["a1", "b1", "c1"]), 1))
    );
    assert_eq!(
        get(&r, 15, Operation::WRITE),
        Ok((ids(&["a2", "b1", "c1"]), 1))
    );
    assert_eq!(
        get(&r, 45, Operation::WRITE),
        Ok((ids(&["c1", "a1", "b1"]), 1))
    );
    let plain = ring(&ZONED, cfg(3, false));
    assert_eq!(
        get(&plain, 5, Operation::WRITE),
        Ok((ids(&["a1", "a2", "b1"]), 1))
    );
}

#[test]
fn zone_aware_extension_looks_for_another_instance_in_the_same_zone() {
    // b1 LEAVING: set = a1, b1 (extends, not counted for zone b), b2, c1.
    let r = zoned_with("b1", Leaving, 0);
    assert_eq!(
        get(&r, 5, Operation::WRITE),
        Ok((ids(&["a1", "b2", "c1"]), 0))
    );
    assert_eq!(
        get(&r, 5, Operation::READ),
        Ok((ids(&["a1", "b1", "c1"]), 1))
    );
}

#[test]
fn zone_aware_whole_zone_leaving_makes_write_quorum_impossible() {
    let r = ring(
        &[
            ("a1", "a", Active, &[10], 0),
            ("a2", "a", Active, &[20], 0),
            ("b1", "b", Active, &[30], 0),
            ("b2", "b", Active, &[40], 0),
            ("c1", "c", Leaving, &[50], 0),
            ("c2", "c", Leaving, &[60], 0),
        ],
        cfg(3, true),
    );
    // Walk examines every zone-c instance: n = 4, quorum 3, only 2 healthy.
    assert_eq!(
        get(&r, 5, Operation::WRITE),
        Err("at least 3 live replicas required across different availability zones, could only find 2 - unhealthy instances: c1:9095,c2:9095".into())
    );
    // Without extension the set is a1, b1, c1 and the quorum of 2 holds.
    assert_eq!(
        get(&r, 5, Operation::WRITE_NO_EXTEND),
        Ok((ids(&["a1", "b1"]), 0))
    );
}

#[test]
fn zone_aware_with_fewer_zones_than_rf() {
    let two_zones = ring(
        &[
            ("a1", "a", Active, &[10], 0),
            ("a2", "a", Active, &[20], 0),
            ("b1", "b", Active, &[30], 0),
        ],
        cfg(3, true),
    );
    assert_eq!(
        get(&two_zones, 5, Operation::WRITE),
        Ok((ids(&["a1", "b1"]), 0))
    );
    let one_zone = ring(
        &[("a1", "a", Active, &[10], 0), ("a2", "a", Active, &[20], 0)],
        cfg(3, true),
    );
    assert_eq!(
        get(&one_zone, 5, Operation::WRITE),
        Err("at least 2 live replicas required across different availability zones, could only find 1".into())
    );
}

#[test]
fn zone_aware_with_more_zones_than_rf_uses_the_first_zones_met() {
    let r = ring(
        &[
            ("a1", "a", Active, &[10], 0),
            ("b1", "b", Active, &[20], 0),
            ("c1", "c", Active, &[30], 0),
            ("d1", "d", Active, &[40], 0),
        ],
        cfg(3, true),
    );
    assert_eq!(
        get(&r, 25, Operation::WRITE),
        Ok((ids(&["c1", "d1", "a1"]), 1))
    );
}

#[test]
fn excluded_zones_are_dropped_from_the_snapshot() {
    let mut c = cfg(3, true);
    c.excluded_zones = vec!["b".into()];
    let r = ring(&ZONED, c);
    assert!(!r.has_instance("b1"));
    assert_eq!(r.zones(), ["a", "c"]);
    assert_eq!(get(&r, 5, Operation::WRITE), Ok((ids(&["a1", "c1"]), 0)));
}

#[test]
fn ignore_unhealthy_strategy_needs_one_healthy_replica() {
    let mut c = cfg(3, false);
    c.strategy = ReplicationStrategy::IgnoreUnhealthy;
    let specs = [
        ("a", "", Active, &[10u32][..], 0),
        ("b", "", Active, &[20][..], 600),
        ("c", "", Active, &[30][..], 600),
    ];
    let r = ring(&specs, c.clone());
    assert_eq!(get(&r, 5, Operation::WRITE), Ok((ids(&["a"]), 0)));
    let dead = ring(&[("b", "", Active, &[20], 600)], c);
    assert_eq!(
        get(&dead, 5, Operation::WRITE),
        Err(
            "at least 1 healthy replica required, could only find 0 - unhealthy instances: b:9095"
                .into()
        )
    );
}

#[test]
fn per_call_replication_factor_needs_a_strategy_that_supports_it() {
    let r = ring(&FOUR, cfg(3, false));
    let mut buf = GetBuffer::new();
    let now = unix_seconds(NOW);
    let err = r
        .get_with_replication_factor(5, Operation::WRITE, 4, now, &mut buf)
        .unwrap_err();
    assert!(matches!(
        err,
        RingError::ReplicationFactorTooLarge {
            requested: 4,
            configured: 3
        }
    ));
    // Lower than configured is replaced by the configured factor.
    let set = r
        .get_with_replication_factor(5, Operation::WRITE, 1, now, &mut buf)
        .unwrap();
    assert_eq!(set.len(), 3);
    let mut c = cfg(3, false);
    c.strategy = ReplicationStrategy::IgnoreUnhealthy;
    let r = ring(&FOUR, c);
    let set = r
        .get_with_replication_factor(5, Operation::WRITE, 4, now, &mut buf)
        .unwrap();
    assert_eq!(set.len(), 4);
    assert_eq!(set.max_errors, 3);
}

#[test]
fn duplicated_tokens_have_one_deterministic_owner() {
    // Lowest id wins...
    let r = ring(
        &[("x", "", Active, &[50], 0), ("w", "", Active, &[50, 60], 0)],
        cfg(1, false),
    );
    assert_eq!(get(&r, 45, Operation::WRITE), Ok((ids(&["w"]), 0)));
    // ...unless it is LEAVING and the other is not.
    let r = ring(
        &[
            ("x", "", Active, &[50], 0),
            ("w", "", Leaving, &[50, 60], 0),
        ],
        cfg(1, false),
    );
    assert_eq!(r.tokens(), [50, 60]);
    assert_eq!(
        get(&r, 45, Operation::WRITE_NO_EXTEND),
        Ok((ids(&["x"]), 0))
    );
}

#[test]
fn get_all_healthy_lists_every_healthy_instance_without_quorum() {
    let r = four_with("c", Leaving, 0);
    let now = unix_seconds(NOW);
    let set = r.get_all_healthy(Operation::WRITE, now).unwrap();
    assert_eq!(set.addresses(), ["a:9095", "b:9095", "d:9095"]);
    assert_eq!(set.max_errors, 0);
    let set = r.get_all_healthy(Operation::REPORTING, now).unwrap();
    assert_eq!(set.instances.len(), 4);
    assert_eq!(
        RingSnapshot::empty(cfg(3, false))
            .expect("valid ring config")
            .get_all_healthy(Operation::READ, now),
        Err(RingError::EmptyRing)
    );
}

#[test]
fn replication_set_for_operation_without_zones_tolerates_rf_over_two_failures() {
    let now = unix_seconds(NOW);
    let all = ring(&FOUR, cfg(3, false));
    let set = all
        .replication_set_for_operation(Operation::READ, now)
        .unwrap();
    assert_eq!((set.instances.len(), set.max_errors), (4, 1));
    let one_down = four_with("c", Active, 600);
    let set = one_down
        .replication_set_for_operation(Operation::READ, now)
        .unwrap();
    assert_eq!((set.instances.len(), set.max_errors), (3, 0));
    let specs: Vec<Spec<'_>> = FOUR
        .iter()
        .map(|s| {
            if s.0 == "a" || s.0 == "b" {
                (s.0, s.1, s.2, s.3, 600)
            } else {
                *s
            }
        })
        .collect();
    let two_down = ring(&specs, cfg(3, false));
    assert_eq!(
        two_down.replication_set_for_operation(Operation::READ, now),
        Err(RingError::TooManyUnhealthyInstances)
    );
}

#[test]
fn replication_set_for_operation_zone_aware_drops_whole_failing_zones() {
    let now = unix_seconds(NOW);
    let healthy = ring(&ZONED, cfg(3, true));
    let set = healthy
        .replication_set_for_operation(Operation::READ, now)
        .unwrap();
    assert_eq!(set.instances.len(), 6);
    assert_eq!((set.max_errors, set.max_unavailable_zones), (0, 1));
    assert!(set.zone_awareness_enabled);

    let b_down = zoned_with("b1", Active, 600);
    let set = b_down
        .replication_set_for_operation(Operation::READ, now)
        .unwrap();
    let mut got: Vec<&str> = set.instances.iter().map(|d| d.id.as_str()).collect();
    got.sort();
    assert_eq!(
        got,
        ["a1", "a2", "c1", "c2"],
        "b2 is healthy but its zone failed"
    );
    assert_eq!(set.max_unavailable_zones, 0);

    let specs: Vec<Spec<'_>> = ZONED
        .iter()
        .map(|s| {
            if s.0 == "b1" || s.0 == "c2" {
                (s.0, s.1, s.2, s.3, 600)
            } else {
                *s
            }
        })
        .collect();
    assert_eq!(
        ring(&specs, cfg(3, true)).replication_set_for_operation(Operation::READ, now),
        Err(RingError::TooManyUnhealthyInstances)
    );
}

#[test]
fn subring_for_operation_states_filters_by_state_only() {
    let r = four_with("c", Leaving, 600);
    let sub = r.subring_for_operation_states(Operation::WRITE);
    assert_eq!(sub.instances_count(), 3);
    let sub = r.subring_for_operation_states(Operation::READ);
    assert_eq!(
        sub.instances_count(),
        4,
        "LEAVING is a read state; heartbeat ignored"
    );
}

#[test]
fn left_tombstones_count_like_dskit_but_never_serve() {
    // dskit's ring keeps a LEFT entry it is handed: it counts toward the set size (Write
    // extends past it, then drops it), so the quorum rises.
    let r = ring(
        &[
            ("a", "", Active, &[10], 0),
            ("b", "", Active, &[20], 0),
            ("c", "", Active, &[30], 0),
            ("gone", "", Left, &[15], 0),
        ],
        cfg(3, false),
    );
    assert!(r.has_instance("gone"));
    assert_eq!(
        get(&r, 12, Operation::WRITE),
        Ok((ids(&["b", "c", "a"]), 0))
    );
    // Whole ring: 4 instances need 3 healthy ones, and the tombstone is not one.
    let set = r
        .replication_set_for_operation(Operation::WRITE, unix_seconds(NOW))
        .unwrap();
    assert_eq!((set.instances.len(), set.max_errors), (3, 0));
    assert_eq!(
        r.get_all_healthy(Operation::REPORTING, unix_seconds(NOW))
            .unwrap()
            .instances
            .len(),
        4
    );
}

#[test]
fn counts_by_zone_and_state() {
    let r = zoned_with("b1", Leaving, 0);
    let counts = r.counts_by_zone_and_state();
    assert_eq!(counts[0].0, "a");
    assert_eq!(counts[0].1.by_wire_value(), [2, 0, 0, 0, 0]);
    assert_eq!(counts[1].0, "b");
    assert_eq!(counts[1].1.by_wire_value(), [1, 1, 0, 0, 0]);
    assert_eq!(counts[1].1.leaving, 1);
    assert_eq!(r.instances_in_zone_count("c"), 2);
    assert_eq!(r.instances_in_zone_count("nope"), 0);
    assert_eq!(r.writable_instances_with_tokens_in_zone_count("a"), 2);
}

#[test]
fn ownership_sums_to_the_whole_keyspace() {
    let r = RingSnapshot::new(
        codec::decode(include_bytes!(
            "../../../testdata/ring-desc-3x128.snappy-proto.bin"
        ))
        .unwrap(),
        cfg(3, true),
    )
    .expect("valid ring config");
    let global: f64 = (0..3).map(|i| r.ownership(i)).sum();
    assert!((global - 1.0).abs() < 1e-12);
    for i in 0..3 {
        // One instance per zone: each owns its whole zone ring.
        assert_eq!(r.ownership_in_zone(i), 1.0);
    }
    let zones: f64 = (0..3).map(|z| r.zone_ownership(z)).sum();
    assert!((zones - 1.0).abs() < 1e-12);
    // Zone-local ownership agrees with the descriptor helper.
    let owned = r.to_desc().owned_keyspace();
    assert_eq!(owned["peer-1"], r.owned_keys_in_zone(1));
}

#[test]
fn heartbeat_only_update_reuses_the_token_tables() {
    let r = ring(&FOUR, cfg(3, false));
    let mut d = r.to_desc();
    d.ingesters.get_mut("b").unwrap().timestamp += 5;
    d.ingesters.get_mut("c").unwrap().state = Leaving as i32;
    let r2 = r.update(d);
    assert!(std::ptr::eq(r.tokens().as_ptr(), r2.tokens().as_ptr()));
    assert_eq!(r2.instance("c").unwrap().state(), Leaving);
    assert_eq!(
        get(&r2, 15, Operation::WRITE),
        Ok((ids(&["b", "d", "a"]), 0))
    );

    let mut d = r2.to_desc();
    d.ingesters.get_mut("b").unwrap().tokens.make_mut().push(25);
    let r3 = r2.update(d);
    assert!(!std::ptr::eq(r2.tokens().as_ptr(), r3.tokens().as_ptr()));
    assert_eq!(r3.tokens(), [10, 20, 25, 30, 40]);
}

#[test]
fn real_dskit_ring_zone_aware_lookups_return_one_instance_per_zone() {
    let r = RingSnapshot::new(
        codec::decode(include_bytes!(
            "../../../testdata/ring-desc-3x128.snappy-proto.bin"
        ))
        .unwrap(),
        RingConfig {
            zone_awareness_enabled: true,
            heartbeat_timeout: Duration::from_secs(3600 * 24 * 365 * 100),
            ..RingConfig::default()
        },
    )
    .expect("valid ring config");
    let mut buf = GetBuffer::new();
    let mut key = 7u32;
    for _ in 0..10_000 {
        let set = r
            .get(key, Operation::WRITE, unix_seconds(1_795_545_723), &mut buf)
            .unwrap();
        let mut zones: Vec<&str> = set.instances().map(|d| d.zone.as_str()).collect();
        zones.sort();
        assert_eq!(zones, ["zone-a", "zone-b", "zone-c"]);
        assert_eq!(set.max_errors, 1);
        key = key.wrapping_mul(2_654_435_761).wrapping_add(1);
    }
}

#[test]
fn bad_configs_fail_when_the_snapshot_is_built_not_on_a_lookup() {
    // RF 0 with zone awareness used to divide by zero on the first lookup.
    let zero_rf = RingConfig {
        replication_factor: 0,
        zone_awareness_enabled: true,
        ..RingConfig::default()
    };
    assert_eq!(
        RingSnapshot::new(Desc::new(), zero_rf).err(),
        Some(ConfigError::ZeroReplicationFactor)
    );
    let zero_timeout = RingConfig {
        heartbeat_timeout: Duration::ZERO,
        ..RingConfig::default()
    };
    assert_eq!(
        RingSnapshot::empty(zero_timeout).err(),
        Some(ConfigError::ZeroHeartbeatTimeout)
    );
    // dskit allows fewer zones than the replication factor.
    let mut d = Desc::new();
    d.insert_instance(InstanceBuilder::new("a").zone("z1").tokens(vec![1]));
    let r = RingSnapshot::new(d, cfg(3, true)).expect("valid ring config");
    assert_eq!(r.zones_count(), 1);
}

#[test]
fn instance_state_is_typed_and_an_unknown_wire_value_is_an_error() {
    let mut d = Desc::new();
    d.insert_instance(InstanceBuilder::new("a").state(Leaving).tokens(vec![1]));
    // Cortex's READONLY = 5, which dskit's enum does not have.
    d.insert_instance(InstanceBuilder::new("ro").tokens(vec![2]))
        .state = 5;
    let r = RingSnapshot::new(d, cfg(1, false)).expect("valid ring config");
    assert_eq!(r.instance_state("a"), Ok(Leaving));
    assert_eq!(r.instance_state("ro"), Err(RingError::UnknownState(5)));
    assert_eq!(r.instance_state("nope"), Err(RingError::InstanceNotFound));
    let counts = r.counts_by_state();
    assert_eq!((counts.leaving, counts.unknown, counts.total()), (1, 1, 2));
}
