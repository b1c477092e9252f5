//! The two shortcuts that make the ring load affordable at thousands of nodes
//! (`Sim::shared_ring_entries` and `Sim::assume_converged`) must not change what
//! is measured: shared entries give the same queues, traffic and freshness as the
//! padded bytes, and a bootstrapped cluster under ring heartbeats keeps every view
//! fresh and every queue small.
//!
//! Every run prints its seed; replay a failure with `SIM_SEED=<seed>`.

use std::time::Duration;

use ringkit_memberlist::sim::{LinkConfig, NodeStats, RingLoad, Sim, seed_from_env};
use ringkit_memberlist::swim::{BroadcastQueueStats, Config, State};

const M: usize = 30;

fn lossy() -> LinkConfig {
    LinkConfig {
        loss: 0.05,
        duplicate: 0.01,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(20),
        stream_failure: 0.05,
    }
}

fn load() -> RingLoad {
    RingLoad {
        period: Duration::from_secs(5),
        entry_len: 700,
    }
}

fn converged(sim: &Sim) -> bool {
    let running = sim.running();
    running.iter().all(|&i| {
        let c = sim.core(i).unwrap();
        c.num_alive() == running.len()
            && running.iter().all(|&j| {
                c.member(sim.name(j))
                    .is_some_and(|m| m.state == State::Alive)
            })
    })
}

/// Everything measured in one run, sampled every virtual second.
#[derive(Debug, PartialEq)]
struct Trace {
    /// Per second: oldest heartbeat held, and every node's queue numbers.
    samples: Vec<(Duration, Vec<BroadcastQueueStats>)>,
    /// Per node at the end.
    stats: Vec<NodeStats>,
    /// Every byte on every link at the end, by kind.
    link_bytes: (u64, u64, u64),
}

/// `M` nodes joining node 0 (10 ms apart, retrying), then 30 s of ring load.
fn run(seed: u64, shared: bool) -> Trace {
    let mut sim = Sim::new(M, seed, Config::dskit(), lossy());
    sim.shared_ring_entries = shared;
    sim.join_all_through(0, Duration::from_millis(10));
    let joined = sim.run_until_joined(0, Duration::from_secs(1), 60, converged);
    assert!(joined.is_some(), "the cluster did not converge");
    sim.start_ring_load(load());
    let mut samples = Vec::new();
    for _ in 0..30 {
        sim.run_for(Duration::from_secs(1));
        let queues = (0..M)
            .map(|i| sim.core(i).unwrap().broadcast_stats())
            .collect();
        samples.push((sim.ring_staleness().unwrap().0, queues));
    }
    let all = sim.traffic_where(|_, _| true);
    Trace {
        samples,
        stats: (0..M).map(|i| sim.stats(i)).collect(),
        link_bytes: (all.probe_bytes, all.gossip_bytes, all.stream_bytes),
    }
}

#[test]
fn shared_entries_measure_exactly_what_padded_bytes_do() {
    let seed = seed_from_env(21);
    let plain = run(seed, false);
    let shared = run(seed, true);
    // The load did run: heartbeats were relayed and pushed/pulled.
    let gossip_bytes = plain.link_bytes.1;
    assert!(
        gossip_bytes > (M as u64) * 700 * 6,
        "gossip bytes {gossip_bytes}"
    );
    assert!(
        plain
            .samples
            .iter()
            .any(|(_, q)| q.iter().any(|s| s.messages() > 0))
    );
    assert_eq!(plain.link_bytes, shared.link_bytes);
    assert_eq!(plain.stats, shared.stats);
    assert_eq!(plain.samples, shared.samples);
}

#[test]
fn a_bootstrapped_cluster_under_heartbeats_stays_fresh_and_small() {
    let seed = seed_from_env(22);
    let mut sim = Sim::new(M, seed, Config::dskit(), lossy());
    sim.shared_ring_entries = true;
    sim.record_membership = false;
    sim.assume_converged();
    assert!(
        converged(&sim),
        "bootstrap must leave every node seeing all"
    );
    for i in 0..M {
        let c = sim.core(i).unwrap();
        assert_eq!(c.queued_broadcasts().0, 0, "no join news queued at {i}");
    }
    sim.start_ring_load(load());
    let mut worst_queue = 0;
    let mut worst_age = Duration::ZERO;
    for step in 1..=40u64 {
        sim.run_for(Duration::from_secs(1));
        for i in sim.running() {
            let q = sim.core(i).unwrap().broadcast_stats();
            worst_queue = worst_queue.max(q.messages());
        }
        if step > 10 {
            worst_age = worst_age.max(sim.ring_staleness().unwrap().0);
        }
    }
    // Still one cluster: probes and gossip ran on the bootstrapped membership.
    assert!(converged(&sim), "the cluster fell apart");
    assert!(
        worst_age < Duration::from_secs(10),
        "oldest heartbeat {worst_age:?}"
    );
    assert!(worst_queue < M, "largest queue {worst_queue}");
    let mut dropped = 0;
    for i in sim.running() {
        let s = sim.core(i).unwrap().broadcast_stats();
        dropped += s.dropped() + s.received_dropped;
    }
    assert_eq!(dropped, 0, "nothing dropped at this load");
    let decode_errors: u64 = (0..M).map(|i| sim.stats(i).decode_errors).sum();
    assert_eq!(decode_errors, 0);
    let packets: u64 = (0..M).map(|i| sim.stats(i).packet_bytes).sum();
    // Each heartbeat reaches every node, so every node sends at least the full
    // entries it relays once: 8 beats per instance in 40 s, 700 B each.
    assert!(packets > (M * M * 8 * 700) as u64, "packet bytes {packets}");
    println!("oldest heartbeat {worst_age:?}, largest queue {worst_queue}");
}
