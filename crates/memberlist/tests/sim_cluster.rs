//! 100-node simulations with dskit's settings and 5 % packet loss: dissemination
//! bound, partition healing, crash detection without false positives.
//!
//! Every run prints its seed; replay a failure with `SIM_SEED=<seed>`.

use std::collections::BTreeMap;
use std::time::Duration;

use ringkit_memberlist::sim::{LinkConfig, Sim, SimEvent, seed_from_env};
use ringkit_memberlist::swim::{Config, Event, State};

const N: usize = 100;

fn lossy() -> LinkConfig {
    LinkConfig {
        loss: 0.05,
        duplicate: 0.01,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(20),
        stream_failure: 0.05,
    }
}

/// True when every running node sees every running node alive and nothing else
/// as alive or suspect.
fn converged(sim: &Sim) -> bool {
    let running = sim.running();
    running.iter().all(|&i| {
        let c = sim.core(i).unwrap();
        let alive = c.members().filter(|m| !m.state.is_dead_or_left()).count();
        alive == running.len()
            && running.iter().all(|&j| {
                c.member(sim.name(j))
                    .is_some_and(|m| m.state == State::Alive)
            })
    })
}

/// Runs in steps of `step` until `converged` or `limit`; returns the time taken.
fn run_until_converged(sim: &mut Sim, step: Duration, limit: Duration) -> Option<Duration> {
    let start = sim.elapsed();
    while sim.elapsed() - start < limit {
        sim.run_for(step);
        if converged(sim) {
            return Some(sim.elapsed() - start);
        }
    }
    None
}

/// `N` dskit nodes joining node 0 one after another (10 ms apart), run until
/// every node sees every other alive.
fn joined_cluster(seed: u64) -> Sim {
    let mut sim = Sim::new(N, seed, Config::dskit(), lossy());
    sim.join_all_through(0, Duration::from_millis(10));
    // Like dskit's join with retries: a node whose join push/pull failed (5 %
    // stream failures) tries again.
    let steps = sim
        .run_until_joined(0, Duration::from_millis(500), 300, converged)
        .expect("the cluster did not converge after joining");
    let took = Duration::from_millis(500) * steps;
    println!("join convergence: {:?} after the last join", took);
    for i in 0..N {
        assert_eq!(sim.stats(i).decode_errors, 0, "codec failure at node {i}");
    }
    sim.take_events();
    sim
}

/// The broadcast reaches every node within the epidemic bound.
///
/// Bound: with fanout f = 3 (gossip_nodes), delivery probability q = 0.95 and
/// N = 100, push gossip needs about log_{1+fq}(N) = 3.4 rounds to reach most
/// nodes and ln(N)/(fq) = 1.6 more rounds for the stragglers, i.e. ~5 rounds of
/// 200 ms plus up to 20 ms of delay per hop, ~1.1 s. We assert twice that:
/// 2 × (⌈3.4⌉ + ⌈1.6⌉) × (200 ms + 20 ms) = 2.64 s.
#[test]
fn a_broadcast_reaches_all_100_nodes_at_5_percent_loss_within_the_epidemic_bound() {
    let seed = seed_from_env(0x5eed_0001);
    let mut sim = joined_cluster(seed);
    let t0 = sim.elapsed();
    // The sim re-queues a user message at each node that sees it first, as
    // dskit's KV does with every change it merges.
    assert!(sim.rebroadcast_user_messages);
    sim.broadcast(7, b"ring-update".to_vec());
    sim.run_for(Duration::from_secs(10));
    let mut first: BTreeMap<usize, Duration> = BTreeMap::new();
    for SimEvent { at, node, event } in sim.take_events() {
        if let Event::UserMessage { bytes, .. } = event
            && node != 7
        {
            assert_eq!(bytes, b"ring-update");
            first.entry(node).or_insert(at - t0);
        }
    }
    let missing: Vec<usize> = (0..N)
        .filter(|i| *i != 7 && !first.contains_key(i))
        .collect();
    assert!(
        missing.is_empty(),
        "{} never received, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let worst = first.values().max().copied().unwrap_or_default();
    let rounds = (3.4f64.ceil() + 1.6f64.ceil()) as u32;
    let bound = 2 * rounds * (Duration::from_millis(200) + Duration::from_millis(20));
    println!(
        "broadcast reached all {} nodes in {:?} (bound {:?})",
        N - 1,
        worst,
        bound
    );
    assert!(worst <= bound, "took {worst:?}, bound {bound:?}");
}

/// A 20 s partition splits the cluster in halves. Each side suspects the other;
/// the minimum suspicion timeout at N = 100 is 4 × log10(100) × 5 s = 40 s, so
/// members that are not probed by the other side soon after the heal (and so do
/// not learn that they must refute) can still be declared dead; memberlist
/// behaves the same. What must hold: views converge to "everyone alive" once the
/// partition heals, because a member declared dead keeps receiving gossip for
/// `gossip_to_the_dead_time` (30 s), sees its own `dead` and refutes.
///
/// Bound after the heal: a suspicion nobody confirms lasts at most the maximum
/// timeout, 6 × 40 s = 240 s (usually the suspect refutes much earlier, when a
/// suspecting member probes it with ping + suspect); its `dead` then reaches the
/// victim within the 30 s dead-gossip window, and the refutation spreads in a few
/// gossip rounds: 240 + 30 + 5 = 275 s. Seeds tried: 5.5 s, 29.5 s, 4.5 s, 72.5 s.
#[test]
fn a_short_partition_heals_and_views_converge() {
    let seed = seed_from_env(0x5eed_0002);
    let mut sim = joined_cluster(seed);
    let groups = (0..N).map(|i| u32::from(i >= N / 2)).collect();
    sim.net.partition(groups);
    sim.run_for(Duration::from_secs(20));
    let suspects = sim
        .take_events()
        .iter()
        .filter(|e| matches!(e.event, Event::MemberSuspect(_)))
        .count();
    assert!(suspects > 0, "the partition should cause suspicions");
    sim.net.heal();
    let bound = Duration::from_secs(240 + 30 + 5);
    let took = run_until_converged(&mut sim, Duration::from_millis(500), bound);
    let deaths = sim
        .take_events()
        .iter()
        .filter(|e| matches!(e.event, Event::MemberDead(_)))
        .count();
    println!(
        "{suspects} suspect events during the partition; {deaths} transient dead events; \
         converged {took:?} after the heal (bound {bound:?})"
    );
    assert!(
        took.is_some(),
        "views did not converge within {bound:?} of the heal"
    );
}

/// A 300 s partition outlasts the maximum suspicion timeout: each side declares
/// the other dead and forgets it. After the heal, nodes rejoin (as dskit's
/// `rejoin_interval` does) through one seed on each side and views converge.
#[test]
fn a_long_partition_heals_after_a_rejoin_and_views_converge() {
    let seed = seed_from_env(0x5eed_0003);
    let mut sim = joined_cluster(seed);
    sim.record_membership = false;
    let groups = (0..N).map(|i| u32::from(i >= N / 2)).collect();
    sim.net.partition(groups);
    sim.run_for(Duration::from_secs(300));
    let other_side_dead = sim
        .core(0)
        .unwrap()
        .member(sim.name(N - 1))
        .is_none_or(|m| m.state.is_dead_or_left());
    assert!(
        other_side_dead,
        "node 0 should consider node {} gone",
        N - 1
    );
    sim.net.heal();
    for i in 0..N {
        sim.join(i, &[0, N - 1]);
    }
    let took = run_until_converged(
        &mut sim,
        Duration::from_millis(500),
        Duration::from_secs(120),
    )
    .expect("views did not converge after the rejoin");
    println!("converged {took:?} after heal and rejoin");
}

/// Node 42 crashes at t0. Every live node must declare it dead within the SWIM
/// bound, and no live node is ever declared dead over 10 minutes at 5 % loss.
///
/// Bound: detection within 6 probe intervals (each tick ~99 probers pick 42 with
/// probability 1/99 each, so P(undetected for 30 s) ≈ e^-6), a failed probe
/// lasting at most probe_interval × awareness_max_multiplier (40 s), the longest
/// (unconfirmed) suspicion timeout 6 × 40 s = 240 s, and 5 s for the `dead`
/// broadcast to spread: 30 + 40 + 240 + 5 = 315 s.
#[test]
fn a_crashed_node_is_declared_dead_by_all_within_the_swim_bound_and_no_live_node_ever_is() {
    let seed = seed_from_env(0x5eed_0004);
    let mut sim = joined_cluster(seed);
    let victim = 42;
    let victim_name = sim.name(victim).to_vec();
    sim.crash(victim);
    let t0 = sim.elapsed();
    let mut dead_at: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut false_deaths = Vec::new();
    let mut suspicions = 0usize;
    for _ in 0..600 {
        sim.run_for(Duration::from_secs(1));
        for e in sim.take_events() {
            match &e.event {
                Event::MemberDead(m) if *m.name == *victim_name => {
                    dead_at.entry(e.node).or_insert(e.at - t0);
                }
                Event::MemberDead(m) => false_deaths.push((e.at, e.node, m.name.clone())),
                Event::MemberSuspect(m) if *m.name != *victim_name => suspicions += 1,
                _ => {}
            }
        }
    }
    let bound = Duration::from_secs(30 + 40 + 240 + 5);
    let live: Vec<usize> = sim.running();
    let missing: Vec<usize> = live
        .iter()
        .copied()
        .filter(|i| !dead_at.contains_key(i))
        .collect();
    assert!(missing.is_empty(), "never declared dead at {missing:?}");
    let first = dead_at.values().min().copied().unwrap_or_default();
    let worst = dead_at.values().max().copied().unwrap_or_default();
    println!(
        "crash: first declared dead after {first:?}, by all after {worst:?} (bound {bound:?}); \
         {suspicions} suspect events about live nodes, all refuted"
    );
    assert!(worst <= bound, "took {worst:?}, bound {bound:?}");
    assert!(
        false_deaths.is_empty(),
        "{} live-node deaths, first: {:?}",
        false_deaths.len(),
        false_deaths.first()
    );
    // A suspicion may be in flight at the end, but no live node is dead or left
    // in anyone's view.
    for &i in &live {
        let c = sim.core(i).unwrap();
        for &j in &live {
            let st = c.member(sim.name(j)).map(|m| m.state);
            assert!(
                matches!(st, Some(State::Alive | State::Suspect)),
                "node {i} sees node {j} as {st:?}"
            );
        }
    }
}

#[test]
fn under_ring_heartbeats_every_view_stays_fresh_and_every_queue_small() {
    use ringkit_memberlist::sim::RingLoad;
    // Smaller than the other tests: every node gossips every heartbeat on, which is
    // the expensive part (examples/sim_scale.rs runs it at 1000 and 2000 nodes).
    const M: usize = 30;
    let seed = seed_from_env(14);
    let mut sim = Sim::new(M, seed, Config::dskit(), lossy());
    sim.join_all_through(0, Duration::from_millis(10));
    let joined = sim.run_until_joined(0, Duration::from_secs(1), 60, converged);
    assert!(joined.is_some(), "the cluster did not converge");
    sim.start_ring_load(RingLoad {
        period: Duration::from_secs(5),
        entry_len: 700,
    });
    let mut worst_queue = 0;
    let mut worst_age = Duration::ZERO;
    for step in 1..=30u64 {
        sim.run_for(Duration::from_secs(1));
        for i in sim.running() {
            worst_queue = worst_queue.max(sim.core(i).unwrap().broadcast_stats().messages());
        }
        if step > 10 {
            worst_age = worst_age.max(sim.ring_staleness().unwrap().0);
        }
    }
    // Every node has every instance's heartbeat from within about one period plus
    // the spread (well inside dskit's 1 min heartbeat timeout).
    assert!(
        worst_age < Duration::from_secs(10),
        "oldest heartbeat {worst_age:?}"
    );
    // M heartbeats per 5 s, each queued for about a second: far below the bound.
    assert!(worst_queue < M, "largest queue {worst_queue}");
    let mut dropped = 0;
    for i in sim.running() {
        let s = sim.core(i).unwrap().broadcast_stats();
        dropped += s.dropped() + s.received_dropped;
    }
    assert_eq!(dropped, 0, "nothing dropped at this load");
    let decode_errors: u64 = (0..M).map(|i| sim.stats(i).decode_errors).sum();
    assert_eq!(decode_errors, 0);
    println!("oldest heartbeat {worst_age:?}, largest queue {worst_queue}");
}
