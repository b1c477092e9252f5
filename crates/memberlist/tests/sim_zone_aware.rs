//! Zone-aware routing in the simulator: 3 zones × (1 bridge + 3 members), dskit's
//! settings, ring heartbeats gossiped like dskit's KV does. With routing on, the
//! cluster converges and gossip and push/pull cross zones only between bridges
//! (probes still cross, as in dskit); with it off, members gossip across zones.
//!
//! Every run prints its seed; replay a failure with `SIM_SEED=<seed>`.

use std::time::Duration;

use ringkit_memberlist::sim::{LinkConfig, LinkStats, RingLoad, Sim, seed_from_env};
use ringkit_memberlist::swim::{Config, State, ZoneAwareRouting};
use ringkit_memberlist::wire::node_meta::{NodeMeta, NodeRole};

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const PER_ZONE: usize = 4;
const N: usize = ZONES.len() * PER_ZONE;

fn zone(i: usize) -> usize {
    i / PER_ZONE
}

fn is_bridge(i: usize) -> bool {
    i.is_multiple_of(PER_ZONE)
}

fn link() -> LinkConfig {
    LinkConfig {
        loss: 0.01,
        duplicate: 0.0,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(10),
        stream_failure: 0.01,
    }
}

/// Node `i`'s configuration: dskit's, plus (when `routed`) its zone and role, with
/// dskit's push/pull fan-out for the role.
fn config(i: usize, routed: bool) -> Config {
    if !routed {
        return Config::dskit();
    }
    let role = if is_bridge(i) {
        NodeRole::Bridge
    } else {
        NodeRole::Member
    };
    Config {
        push_pull_nodes: if is_bridge(i) { 2 } else { 1 },
        zone_aware_routing: Some(ZoneAwareRouting {
            role,
            zone: ZONES[zone(i)].as_bytes().to_vec(),
        }),
        ..Config::dskit()
    }
}

fn converged(sim: &Sim) -> bool {
    sim.running().iter().all(|&i| {
        let c = sim.core(i).unwrap();
        c.num_in_state(State::Alive) == N
    })
}

/// The cluster, joined through node 0 (retrying failed joins each second) and
/// converged; every node marked as done joining.
fn cluster(seed: u64, routed: bool) -> Sim {
    let configs = (0..N).map(|i| config(i, routed)).collect();
    let mut sim = Sim::with_configs(configs, seed, link());
    sim.join_all_through(0, Duration::from_millis(10));
    let joined = sim.run_until_joined(0, Duration::from_millis(500), 120, converged);
    assert!(joined.is_some(), "membership did not converge");
    for i in 0..N {
        sim.command(i, |c, _| c.mark_joined());
    }
    sim
}

struct Measured {
    /// Oldest heartbeat any node held of any instance after the warm-up.
    worst_age: Duration,
    /// Traffic between zones where at least one end is a member.
    cross_with_member: LinkStats,
    /// Traffic between the bridges of different zones.
    cross_bridges: LinkStats,
    /// Every byte sent.
    total: LinkStats,
}

/// Runs the ring load for 20 s of warm-up, then 60 s measured.
fn measure(sim: &mut Sim) -> Measured {
    sim.start_ring_load(RingLoad {
        period: Duration::from_secs(5),
        entry_len: 700,
    });
    sim.run_for(Duration::from_secs(20));
    sim.reset_link_stats();
    let mut worst_age = Duration::ZERO;
    for _ in 0..60 {
        sim.run_for(Duration::from_secs(1));
        worst_age = worst_age.max(sim.ring_staleness().unwrap().0);
    }
    for i in 0..N {
        assert_eq!(sim.stats(i).decode_errors, 0, "codec failure at node {i}");
    }
    Measured {
        worst_age,
        cross_with_member: sim
            .traffic_where(|a, b| zone(a) != zone(b) && !(is_bridge(a) && is_bridge(b))),
        cross_bridges: sim.traffic_where(|a, b| zone(a) != zone(b) && is_bridge(a) && is_bridge(b)),
        total: sim.traffic_where(|_, _| true),
    }
}

fn share(part: u64, total: u64) -> f64 {
    100.0 * part as f64 / total.max(1) as f64
}

fn report(what: &str, m: &Measured) {
    let cross = m.cross_with_member.bytes() + m.cross_bridges.bytes();
    println!(
        "{what}: oldest heartbeat {:?}; cross-zone {:.1} % of {} bytes \
         (gossip {} B, push/pull {} B, probes {} B); gossip packets across zones: \
         bridge-bridge {}, with a member {}; push/pulls across zones: bridge-bridge {}, \
         with a member {}",
        m.worst_age,
        share(cross, m.total.bytes()),
        m.total.bytes(),
        m.cross_with_member.gossip_bytes + m.cross_bridges.gossip_bytes,
        m.cross_with_member.stream_bytes + m.cross_bridges.stream_bytes,
        m.cross_with_member.probe_bytes + m.cross_bridges.probe_bytes,
        m.cross_bridges.gossip_packets,
        m.cross_with_member.gossip_packets,
        m.cross_bridges.push_pulls,
        m.cross_with_member.push_pulls,
    );
}

#[test]
fn routed_cluster_converges_and_only_bridges_gossip_and_push_pull_across_zones() {
    let seed = seed_from_env(21);
    let mut sim = cluster(seed, true);
    // Every node announces its zone and role.
    for i in 0..N {
        let c = sim.core(i).unwrap();
        for j in 0..N {
            let meta = c.member(sim.name(j)).unwrap().meta.clone();
            let meta = NodeMeta(meta.as_deref());
            assert_eq!(meta.zone(), ZONES[zone(j)].as_bytes());
            assert_eq!(meta.role() == NodeRole::Bridge, is_bridge(j));
        }
    }
    let m = measure(&mut sim);
    report("zone-aware routing on", &m);
    assert!(
        m.worst_age < Duration::from_secs(10),
        "every node holds every instance's heartbeat from within two periods: {:?}",
        m.worst_age
    );
    assert_eq!(
        (
            m.cross_with_member.gossip_packets,
            m.cross_with_member.push_pulls
        ),
        (0, 0),
        "no gossip or push/pull between zones except bridge to bridge"
    );
    assert!(m.cross_bridges.gossip_packets > 0);
    assert!(m.cross_bridges.push_pulls > 0);
    for i in 0..N {
        let s = sim.core(i).unwrap().routing_stats();
        assert!(s.select_calls > 0);
        assert_eq!(s.skipped, 0, "node {i} never had a zone without a bridge");
    }
}

#[test]
fn without_routing_members_gossip_across_zones_and_more_bytes_cross() {
    let seed = seed_from_env(21);
    let mut off = cluster(seed, false);
    let m_off = measure(&mut off);
    report("zone-aware routing off", &m_off);
    assert!(m_off.worst_age < Duration::from_secs(10));
    assert!(m_off.cross_with_member.gossip_packets > 0);
    assert!(m_off.cross_with_member.push_pulls > 0);
    for i in 0..N {
        let c = off.core(i).unwrap();
        assert_eq!(c.routing_stats().select_calls, 0);
        assert!(c.members().all(|m| m.meta.is_none()));
    }

    let mut on = cluster(seed, true);
    let m_on = measure(&mut on);
    let cross = |m: &Measured| m.cross_with_member.bytes() + m.cross_bridges.bytes();
    let (share_on, share_off) = (
        share(cross(&m_on), m_on.total.bytes()),
        share(cross(&m_off), m_off.total.bytes()),
    );
    println!("cross-zone share: {share_on:.1} % routed, {share_off:.1} % unrouted");
    assert!(
        share_on < share_off,
        "routing cuts the cross-zone share ({share_on:.1} % vs {share_off:.1} %)"
    );
}

#[test]
fn a_zone_whose_bridge_is_gone_is_not_cut_off() {
    // zone-c's bridge crashes: every routed node falls back to gossiping with
    // anyone (dskit's safety rule), so zone-c's members keep every heartbeat fresh.
    let seed = seed_from_env(22);
    let mut sim = cluster(seed, true);
    sim.crash(2 * PER_ZONE);
    // Until everyone finds it dead, routing stays on and zone-c hears only through
    // probes; then the skip rule takes over.
    sim.run_for(Duration::from_secs(90));
    for i in sim.running() {
        let s = sim.core(i).unwrap().routing_stats();
        assert!(s.skipped > 0, "node {i} fell back to unrouted gossip");
    }
    let m = measure(&mut sim);
    report("zone-c without its bridge", &m);
    assert!(m.worst_age < Duration::from_secs(10), "{:?}", m.worst_age);
    assert!(m.cross_with_member.gossip_packets > 0);
}
