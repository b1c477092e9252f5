//! Differential test: the optimised snapshot lookup against a plain, obviously-correct
//! transcription of the walk and filter of spec/ring.md §3.3 (sorted `(token, id)` list,
//! linear scans, no precomputation), on random rings with random states, zones, heartbeats
//! and operations.

use std::time::Duration;

use proptest::prelude::*;
use ringkit_ring::snapshot::{ReplicationStrategy, unix_seconds};
use ringkit_ring::{
    Desc, GetBuffer, InstanceDesc, InstanceState, Operation, RingConfig, RingSnapshot,
};

const NOW: i64 = 1_000_000;
const TIMEOUT: i64 = 60;

/// Reference `Get`: returns (ids, max_errors) or None on error.
fn reference_get(
    desc: &Desc,
    cfg: &RingConfig,
    key: u32,
    op: Operation,
) -> Option<(Vec<String>, usize)> {
    // Token list with deterministic owner for duplicates: non-LEAVING beats LEAVING,
    // then lowest id.
    let mut pairs: Vec<(u32, &InstanceDesc)> = desc
        .ingesters
        .values()
        .flat_map(|d| d.tokens.iter().map(move |&t| (t, d)))
        .collect();
    pairs.sort_by(|a, b| {
        let leaving = |d: &InstanceDesc| d.state == InstanceState::Leaving as i32;
        a.0.cmp(&b.0)
            .then(leaving(a.1).cmp(&leaving(b.1)))
            .then(a.1.id.cmp(&b.1.id))
    });
    pairs.dedup_by_key(|p| p.0);
    if pairs.is_empty() {
        return None;
    }
    let mut zones: Vec<&str> = desc.ingesters.values().map(|d| d.zone.as_str()).collect();
    zones.sort();
    zones.dedup();
    let total = |z: &str| desc.ingesters.values().filter(|d| d.zone == z).count();

    let rf = cfg.replication_factor;
    let mut set_size = rf;
    let mut found: Vec<&InstanceDesc> = Vec::new();
    let mut zone_found = vec![0usize; zones.len()];
    let mut zone_examined = vec![0usize; zones.len()];
    let start = pairs.iter().position(|p| p.0 > key).unwrap_or(0);
    let mut i = start;
    let mut iterations = 0;
    while found.len() < desc.ingesters.len().min(set_size) && iterations < pairs.len() {
        if cfg.zone_awareness_enabled
            && zones
                .iter()
                .enumerate()
                .all(|(z, name)| zone_found[z] >= 1 || zone_examined[z] >= total(name))
        {
            break;
        }
        iterations += 1;
        let d = pairs[i % pairs.len()].1;
        i += 1;
        if found.iter().any(|f| f.id == d.id) {
            continue;
        }
        let z = zones.iter().position(|z| *z == d.zone).unwrap();
        let zoned = cfg.zone_awareness_enabled && !d.zone.is_empty();
        if zoned {
            if zone_found[z] >= 1 {
                continue;
            }
            zone_examined[z] += 1;
        }
        if op.extends_on(d.state) {
            set_size += 1;
        } else if zoned {
            zone_found[z] += 1;
        }
        found.push(d);
    }
    let healthy = |d: &InstanceDesc| op.is_state_healthy(d.state) && NOW - d.timestamp <= TIMEOUT;
    let n = rf.max(found.len());
    let live: Vec<String> = found
        .iter()
        .filter(|d| healthy(d))
        .map(|d| d.id.clone())
        .collect();
    match cfg.strategy {
        ReplicationStrategy::Default => {
            let min_success = n / 2 + 1;
            (live.len() >= min_success).then(|| {
                let e = live.len() - min_success;
                (live, e)
            })
        }
        ReplicationStrategy::IgnoreUnhealthy => (!live.is_empty()).then(|| {
            let e = live.len() - 1;
            (live, e)
        }),
    }
}

fn arb_desc() -> impl Strategy<Value = Desc> {
    let instance = (
        0usize..4,                                               // zone
        0i32..5,                                                 // state
        prop::collection::vec(0u32..2000, 0..6),                 // tokens (small space: duplicates)
        prop_oneof![Just(0i64), Just(30), Just(61), Just(-100)], // heartbeat age
    );
    prop::collection::vec(instance, 1..12).prop_map(|list| {
        let mut d = Desc::new();
        for (i, (zone, state, tokens, age)) in list.into_iter().enumerate() {
            let zone = ["", "za", "zb", "zc"][zone];
            let e = d.add_instance(
                &format!("i{i:02}"),
                &format!("10.0.0.{i}:9095"),
                zone,
                tokens,
                InstanceState::Active,
                1,
                NOW - age,
            );
            e.state = state;
        }
        d
    })
}

fn arb_op() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::WRITE),
        Just(Operation::WRITE_NO_EXTEND),
        Just(Operation::READ),
        Just(Operation::REPORTING),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn snapshot_get_matches_reference(
        desc in arb_desc(),
        rf in 1usize..5,
        zone_aware in any::<bool>(),
        ignore_unhealthy in any::<bool>(),
        op in arb_op(),
        keys in prop::collection::vec(0u32..2100, 1..20),
    ) {
        let cfg = RingConfig {
            replication_factor: rf,
            zone_awareness_enabled: zone_aware,
            heartbeat_timeout: Duration::from_secs(TIMEOUT as u64),
            strategy: if ignore_unhealthy { ReplicationStrategy::IgnoreUnhealthy } else { ReplicationStrategy::Default },
            ..RingConfig::default()
        };
        // LEFT entries are kept by the snapshot, as dskit keeps them.
        let visible = desc.clone();
        let snap = RingSnapshot::new(desc, cfg.clone()).expect("valid ring config");
        let mut buf = GetBuffer::new();
        for key in keys.into_iter().chain([u32::MAX, 0]) {
            let got = snap
                .get(key, op, unix_seconds(NOW), &mut buf)
                .ok()
                .map(|s| (s.instances().map(|d| d.id.clone()).collect::<Vec<_>>(), s.max_errors));
            let want = reference_get(&visible, &cfg, key, op);
            prop_assert_eq!(got, want, "key {}", key);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A zone whose instances are all in one state that extends the set (a zone being
    /// rolled out, all LEAVING): lookups leave such a zone out of the walk when the
    /// operation finds its instances unhealthy, and must still answer as the full walk.
    #[test]
    fn snapshot_get_with_a_dead_zone_matches_reference(
        desc in arb_desc(),
        dead_state in prop_oneof![
            Just(InstanceState::Leaving),
            Just(InstanceState::Joining),
            Just(InstanceState::Pending),
            Just(InstanceState::Left),
        ],
        rf in 1usize..5,
        ignore_unhealthy in any::<bool>(),
        op in arb_op(),
        keys in prop::collection::vec(0u32..2100, 1..20),
    ) {
        let mut desc = desc;
        for d in desc.ingesters.values_mut().filter(|d| d.zone == "zb") {
            d.state = dead_state as i32;
        }
        let cfg = RingConfig {
            replication_factor: rf,
            zone_awareness_enabled: true,
            heartbeat_timeout: Duration::from_secs(TIMEOUT as u64),
            strategy: if ignore_unhealthy { ReplicationStrategy::IgnoreUnhealthy } else { ReplicationStrategy::Default },
            ..RingConfig::default()
        };
        let visible = desc.clone();
        // The same ring reached by a states-only update of an all-ACTIVE one, which keeps
        // the token and walk tables and refreshes only states.
        let mut all_active = desc.clone();
        for d in all_active.ingesters.values_mut() {
            d.state = InstanceState::Active as i32;
        }
        let updated = RingSnapshot::new(all_active, cfg.clone()).expect("valid ring config").update(desc.clone());
        let snap = RingSnapshot::new(desc, cfg.clone()).expect("valid ring config");
        let mut buf = GetBuffer::new();
        for key in keys.into_iter().chain([u32::MAX, 0]) {
            let want = reference_get(&visible, &cfg, key, op);
            for s in [&snap, &updated] {
                let got = s
                    .get(key, op, unix_seconds(NOW), &mut buf)
                    .ok()
                    .map(|s| (s.instances().map(|d| d.id.clone()).collect::<Vec<_>>(), s.max_errors));
                prop_assert_eq!(got, want.clone(), "key {}", key);
            }
        }
    }
}
