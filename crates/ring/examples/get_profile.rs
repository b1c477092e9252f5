//! Runs many `get` lookups on a 99-instance / 3-zone / 512-token ring: a profiling target
//! for `valgrind --tool=callgrind` (instruction counts do not suffer from a busy machine).

use std::collections::HashSet;
use std::hint::black_box;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{Desc, GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};

fn main() {
    let mut args = std::env::args().skip(1);
    let lookups: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let instances: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(99);
    let zones: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut rng = SmallRng::seed_from_u64(42);
    let mut taken = HashSet::new();
    let mut d = Desc::new();
    for i in 0..instances {
        let mut mine = Vec::new();
        while mine.len() < 512 {
            let t: u32 = rng.random();
            if taken.insert(t) {
                mine.push(t);
            }
        }
        let zone = format!("zone-{}", i % zones);
        let id = format!("instance-{i}");
        d.add_instance(
            &id,
            "10.0.0.1:9095",
            &zone,
            mine,
            InstanceState::Active,
            1,
            1000,
        );
    }
    let ring = RingSnapshot::new(
        d,
        RingConfig {
            zone_awareness_enabled: zones > 1,
            ..RingConfig::default()
        },
    )
    .expect("valid ring config");
    let keys: Vec<u32> = (0..4096).map(|_| rng.random()).collect();
    let mut buf = GetBuffer::new();
    let now = unix_seconds(1000);
    let start = std::time::Instant::now();
    let mut total = 0usize;
    for i in 0..lookups {
        let set = ring.get(black_box(keys[i & 4095]), Operation::WRITE, now, &mut buf);
        total += set.map(|s| s.len()).unwrap_or(0);
    }
    let per = start.elapsed() / lookups.max(1) as u32;
    println!("{lookups} lookups, {per:?} per lookup ({total} replicas)");
}
