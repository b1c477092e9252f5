//! Simulated cluster numbers with dskit's settings: join convergence, broadcast
//! dissemination time and bytes per node per second, for several cluster sizes.
//!
//! `cargo run --release -p ringkit-memberlist --example sim_scale -- [N ...]`
//! (default: 100 1000). Optional env: `SIM_SEED`, `SIM_LOSS` (default 0.05).
//!
//! With `SIM_HEARTBEATS=<seconds>` the run after convergence is instead the ring
//! load: every node heartbeats its ring entry every 5 s (`SIM_ENTRY_BYTES` per
//! entry, default 700) for that many virtual seconds, and the example reports the
//! largest broadcast queue of any node (messages and bytes), what was dropped, the
//! oldest heartbeat any node held of any instance, and the traffic. The ring
//! entries are shared, not copied (`Sim::shared_ring_entries`: a message carries
//! each entry's instance index and timestamp, the queues and byte counters see
//! the full `SIM_ENTRY_BYTES` per entry); `SIM_PLAIN_ENTRIES=1` sends the padded
//! bytes instead, with the same numbers at a higher cost.
//!
//! `SIM_BOOTSTRAP=1` skips the joins: every node starts knowing every other node
//! alive, as after a converged join (`Sim::assume_converged`), and no join news
//! is gossiped. Only the ring load runs then (join convergence is not measured);
//! the ring views start empty as in the join mode.
//!
//! The ring load costs about 2 s of CPU per virtual second per million node
//! pairs (N²) on the 2-core VM of the README (before the leaner member table and
//! queue: about 3–4.5 s): 1000 nodes about 45 s for 20 s, 5000 nodes about a
//! minute per virtual second. Every core holds every member (about 130 B per node
//! pair once bootstrapped, names shared) and, under the ring load, about a
//! second's worth of heartbeats in its queues, so memory grows with N² too: 0.3
//! GB at 1000 nodes, about 6 GB at 5000. Progress lines (stderr) show the
//! resident memory.
//!
//! Cost grows faster than N²: every node gossips news of every join
//! `retransmit_limit` times (16 at 5000 nodes) and each of those messages is
//! encoded, decoded and merged. 1000 nodes take about half a minute on one core,
//! 5000 nodes need about 12 GB of memory and most of an hour on a loaded machine.
//! Progress goes to stderr.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ringkit_memberlist::sim::{LinkConfig, RingLoad, Sim, seed_from_env};
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

/// Largest per-node queue (messages, bytes) now, and the drops summed over nodes
/// (at the queues' bounds, received beyond the handoff depth).
fn queue_numbers(sim: &Sim) -> (usize, usize, u64, u64) {
    let mut out = (0, 0, 0, 0);
    for c in (0..sim.len()).filter_map(|i| sim.core(i)) {
        let s = c.broadcast_stats();
        out.0 = out.0.max(s.messages());
        out.1 = out.1.max(s.bytes());
        out.2 += s.dropped();
        out.3 += s.received_dropped;
    }
    out
}

/// The ring load after convergence: queue sizes and heartbeat freshness, sampled
/// every virtual second.
fn run_heartbeats(sim: &mut Sim, n: usize, secs: u64, entry_len: usize, wall: Instant) {
    let period = Duration::from_secs(5);
    sim.start_ring_load(RingLoad { period, entry_len });
    let (p0, s0) = total_bytes(sim);
    let t0 = sim.elapsed();
    let (mut max_msgs, mut max_bytes) = (0usize, 0usize);
    let mut stale = Duration::ZERO;
    let mut stale_after_warmup = Duration::ZERO;
    let mut last = (0usize, 0usize);
    for step in 1..=secs {
        sim.run_for(Duration::from_secs(1));
        let (m, b, _, _) = queue_numbers(sim);
        max_msgs = max_msgs.max(m);
        max_bytes = max_bytes.max(b);
        last = (m, b);
        if let Some((age, ..)) = sim.ring_staleness() {
            stale = stale.max(age);
            // After two periods every instance has beaten at least once everywhere.
            if Duration::from_secs(step) > 2 * period {
                stale_after_warmup = stale_after_warmup.max(age);
            }
        }
        // Every second at large N, where a virtual second takes minutes.
        if step % 10 == 0 || n >= 2000 {
            eprintln!(
                "N={n}: ring load {step}/{secs} s virtual, wall {:.1?}, RSS {} MB, largest queue {m} msgs / {b} B, oldest heartbeat {:?}",
                wall.elapsed(),
                rss_mb(),
                sim.ring_staleness().map(|s| s.0).unwrap_or_default()
            );
        }
    }
    let (p1, s1) = total_bytes(sim);
    let secs_f = (sim.elapsed() - t0).as_secs_f64();
    let per_node = |b: u64| b as f64 / n as f64 / secs_f;
    let (_, _, dropped, received_dropped) = queue_numbers(sim);
    let decode_errors: u64 = (0..n).map(|i| sim.stats(i).decode_errors).sum();
    println!(
        "N={n:5} ring load ({secs} s, heartbeat every {period:?}, {entry_len} B per entry): \
         largest broadcast queue of any node {max_msgs} msgs / {max_bytes} B (at the end {} / {} B); \
         dropped at queue bounds {dropped}, received dropped {received_dropped}; \
         oldest heartbeat held {stale_after_warmup:?} after the first 10 s ({stale:?} including them); \
         {:.0} B/s per node in packets + {:.0} B/s in push/pull; decode errors {decode_errors}; wall {:.1?}",
        last.0,
        last.1,
        per_node(p1 - p0),
        per_node(s1 - s0),
        wall.elapsed(),
    );
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
    sim.record_links = false;
    sim.shared_ring_entries = env_num::<u8>("SIM_PLAIN_ENTRIES").unwrap_or(0) == 0;
    let heartbeats = env_num::<u64>("SIM_HEARTBEATS");
    if let (Some(secs), Some(1)) = (heartbeats, env_num::<u8>("SIM_BOOTSTRAP")) {
        sim.assume_converged();
        let ok = converged(&sim);
        eprintln!(
            "N={n}: bootstrapped converged ({ok}), wall {:.1?}, RSS {} MB",
            wall.elapsed(),
            rss_mb()
        );
        println!("N={n:5} loss={loss:.2}: membership bootstrapped, converged: {ok}");
        // One second for the timers to settle, as the join mode's last check.
        sim.run_for(Duration::from_secs(1));
        run_heartbeats(
            &mut sim,
            n,
            secs,
            env_num("SIM_ENTRY_BYTES").unwrap_or(700),
            wall,
        );
        return;
    }
    // Nodes start 10 ms apart and join node 0, retrying every second like dskit.
    sim.join_all_through(0, Duration::from_millis(10));
    let joined_at = sim.elapsed();
    eprintln!(
        "N={n}: all joined at {joined_at:?} virtual, wall {:.1?}",
        wall.elapsed()
    );
    let join_took = sim
        .run_until_joined(0, Duration::from_secs(1), 600, converged)
        .map(|steps| Duration::from_secs(steps.into()));
    eprintln!(
        "N={n}: convergence check done at {:?} virtual, wall {:.1?}",
        sim.elapsed(),
        wall.elapsed()
    );
    if let Some(secs) = heartbeats {
        let entry_len = env_num("SIM_ENTRY_BYTES").unwrap_or(700);
        println!(
            "N={n:5} loss={loss:.2}: join converged {} after the last join ({joined_at:?} virtual)",
            join_took.map_or("NOT".to_string(), |d| format!("{d:?}")),
        );
        run_heartbeats(&mut sim, n, secs, entry_len, wall);
        return;
    }
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

/// Resident memory of this process in MB, where Linux tells it (progress lines
/// only; peak RSS comes from `/usr/bin/time -v`).
fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| (pages * 4096) >> 20)
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
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
