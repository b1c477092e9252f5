//! The `UpdateRingState` and `Ring_Get_OneZoneLeaving` benchmark loops (benches/ring.rs)
//! as a plain program, for load-independent instruction counts with
//! `valgrind --tool=callgrind`: run it with two iteration counts and divide the
//! difference of the totals by the difference of the counts.
//!
//! `cargo run --release -p ringkit-ring --example update_profile -- MODE INSTANCES TOKENS ITERATIONS`
//! with MODE `states` (states-only update), `tokens` (every token changed), `first-get`
//! (tokens changed, then one lookup) or `leaving` (lookups in a 1,200-instance, 4-zone ring
//! with one zone LEAVING; INSTANCES and TOKENS are ignored).

use std::hint::black_box;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringkit_ring::snapshot::{ReplicationStrategy, unix_seconds};
use ringkit_ring::{Desc, GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};
use support::{NOW, random_ring};

#[path = "../benches/support/mod.rs"]
mod support;

/// The allocator the benches and the `ringkit` binary use: freeing descriptors is part of
/// an update's cost, so it is counted with the allocator that pays it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mode = args.get(1).map_or("states", String::as_str);
    let (instances, tokens, iterations) = (arg(2, 500), arg(3, 512), arg(4, 100));
    let now = unix_seconds(NOW);
    let mut buf = GetBuffer::new();
    if mode == "leaving" {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut desc = random_ring(0..1200, 4, 512, &mut rng);
        for d in desc.ingesters.values_mut().filter(|d| d.zone == "zone-2") {
            d.state = InstanceState::Leaving as i32;
        }
        let cfg = RingConfig {
            replication_factor: 4,
            zone_awareness_enabled: true,
            heartbeat_timeout: Duration::from_secs(3600),
            strategy: ReplicationStrategy::IgnoreUnhealthy,
            ..RingConfig::default()
        };
        let ring = RingSnapshot::new(desc, cfg).expect("valid ring config");
        let mut found = 0;
        for _ in 0..iterations {
            let key: u32 = rng.random();
            found += ring
                .get(black_box(key), Operation::WRITE, now, &mut buf)
                .map_or(0, |s| s.len());
        }
        println!("{iterations} lookups, {found} replicas");
        return;
    }
    let cfg = RingConfig {
        zone_awareness_enabled: true,
        ..RingConfig::default()
    };
    let mut rng = SmallRng::seed_from_u64(7);
    let a = random_ring(0..instances, instances, tokens, &mut rng);
    let other = if mode == "states" {
        let mut b = a.clone();
        for d in b.ingesters.values_mut() {
            d.state = InstanceState::Joining as i32;
        }
        b
    } else {
        random_ring(0..instances, instances, tokens, &mut rng)
    };
    // Copies made up front, as the bench makes them outside the timed part.
    let descs: Vec<Desc> = (0..iterations)
        .map(|i| if i % 2 == 0 { other.clone() } else { a.clone() })
        .collect();
    let mut current = RingSnapshot::new(a.clone(), cfg).expect("valid ring config");
    let mut total = 0usize;
    for (i, d) in descs.into_iter().enumerate() {
        current = current.update(d);
        if mode == "first-get" {
            let key = (i as u32).wrapping_mul(0x9e37_79b9);
            total += current
                .get(key, Operation::WRITE, now, &mut buf)
                .map_or(0, |s| s.len());
        }
        total += current.tokens().len();
    }
    println!("{iterations} updates ({mode}), {total}");
}
