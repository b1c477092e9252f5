//! Simulated cluster numbers with dskit's settings: join convergence, broadcast
//! dissemination time and bytes per node per second, for several cluster sizes.
//!
//! `cargo run --release -p ringkit-memberlist --example sim_scale -- [N ...]`
//! (default: 100 1000). Optional env: `SIM_SEED`, `SIM_LOSS` (default 0.05).
//!
//! Cost grows faster than N²: every node gossips news of every join
//! `retransmit_limit` times (16 at 5000 nodes) and each of those messages is
//! encoded, decoded and merged. 1000 nodes take about half a minute on one core,
//! 5000 nodes need about 12 GB of memory and most of an hour on a loaded machine.
//! Progress goes to stderr.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ringkit_memberlist::sim::{LinkConfig, Sim, seed_from_env};
use ringkit_memberlist::swim::{Config, Event, State};

/// Every running node sees every running node alive. The O(1) per-node count
/// of alive members rules most checks out cheaply; only when every count fits
/// are the N² member lookups done, so checking every simulated second stays
/// cheap even at 5000 nodes.
fn converged(sim: &Sim) -> bool {
    let running = sim.running();
    let counts_fit = running.iter().all(|&i| {
        sim.core(i).is_some_and(|c| {
            c.num_alive() == running.len() && c.num_in_state(State::Alive) == running.len()
        })
    });
    counts_fit
        && running.iter().all(|&i| {
            sim.core(i).is_some_and(|c| {
                running.iter().all(|&j| {
                    c.member(sim.name(j))
                        .is_some_and(|m| m.state == State::Alive)
                })
            })
        })
}

fn total_bytes(sim: &Sim) -> (u64, u64) {
    (0..sim.len()).fold((0, 0), |(p, s), i| {
        let st = sim.stats(i);
        (p + st.packet_bytes, s + st.stream_bytes)
    })
}

/// Membership broadcasts still queued, averaged over nodes: the join news each
/// node gossips `retransmit_limit` times. While it drains, "steady state"
/// traffic is still join traffic.
fn queued_per_node(sim: &Sim) -> f64 {
    let total: usize = (0..sim.len())
        .filter_map(|i| sim.core(i))
        .map(|c| c.queued_broadcasts().0)
        .sum();
    total as f64 / sim.len().max(1) as f64
}

fn run(n: usize, seed: u64, loss: f64) {
    let wall = Instant::now();
    let link = LinkConfig {
        loss,
        duplicate: 0.0,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(20),
        stream_failure: loss,
    };
    let mut sim = Sim::new(n, seed, Config::dskit(), link);
    sim.record_membership = false;
    // Nodes start 10 ms apart and join node 0, retrying every second like dskit.
    for i in 1..n {
        sim.join(i, &[0]);
        sim.run_for(Duration::from_millis(10));
    }
    let joined_at = sim.elapsed();
    eprintln!(
        "N={n}: all joined at {joined_at:?} virtual, wall {:.1?}",
        wall.elapsed()
    );
    let mut join_took = None;
    for step in 1..=600u32 {
        sim.run_for(Duration::from_secs(1));
        if converged(&sim) {
            join_took = Some(Duration::from_secs(step.into()));
            break;
        }
        for i in 0..n {
            if sim.core(i).is_some_and(|c| c.num_alive() < 2) {
                sim.join(i, &[0]);
            }
        }
    }
    eprintln!(
        "N={n}: convergence check done at {:?} virtual, wall {:.1?}",
        sim.elapsed(),
        wall.elapsed()
    );
    let (p0, s0) = total_bytes(&sim);
    let q0 = queued_per_node(&sim);
    let t0 = sim.elapsed();
    // Steady state: one minute without changes.
    sim.run_for(Duration::from_secs(60));
    let (p1, s1) = total_bytes(&sim);
    let q1 = queued_per_node(&sim);
    let secs = (sim.elapsed() - t0).as_secs_f64();
    let per_node = |b: u64| b as f64 / n as f64 / secs;
    // Broadcast dissemination (the KV stand-in re-broadcasts first-seen messages).
    sim.take_events();
    let b0 = sim.elapsed();
    let origin = n / 2;
    sim.broadcast(origin, vec![0x42; 200]);
    let mut first: BTreeMap<usize, Duration> = BTreeMap::new();
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(100));
        for e in sim.take_events() {
            if matches!(e.event, Event::UserMessage { .. }) && e.node != origin {
                first.entry(e.node).or_insert(e.at - b0);
            }
        }
        if first.len() >= n - 1 {
            break;
        }
    }
    let mut times: Vec<Duration> = first.values().copied().collect();
    times.sort();
    let pct = |q: f64| {
        times
            .get(((times.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let decode_errors: u64 = (0..n).map(|i| sim.stats(i).decode_errors).sum();
    println!(
        "N={n:5} loss={loss:.2}: join converged {} after the last join ({:?} virtual); \
         steady state {:.0} B/s per node in packets + {:.0} B/s in push/pull \
         (membership broadcasts queued per node: {q0:.0} at its start, {q1:.0} at its end); \
         broadcast reached {}/{} nodes, p50 {:?}, p99 {:?}, max {:?}; \
         decode errors {decode_errors}; wall {:.1?}",
        join_took.map_or("NOT".to_string(), |d| format!("{d:?}")),
        joined_at,
        per_node(p1 - p0),
        per_node(s1 - s0),
        first.len(),
        n - 1,
        pct(0.5),
        pct(0.99),
        times.last().copied().unwrap_or_default(),
        wall.elapsed(),
    );
}

fn main() {
    let seed = seed_from_env(42);
    let loss = std::env::var("SIM_LOSS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.05);
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    for n in sizes {
        run(n, seed, loss);
    }
}
