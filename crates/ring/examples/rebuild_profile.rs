//! Builds a 500-instance x 512-token ring snapshot repeatedly: a profiling target for
//! `perf record` / `valgrind --tool=callgrind` (wall-clock benches live in benches/).

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringkit_ring::{Desc, InstanceState, RingConfig, RingSnapshot};

fn main() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut taken = HashSet::new();
    let mut d = Desc::new();
    for i in 0..500 {
        let mut mine = Vec::new();
        while mine.len() < 512 {
            let t: u32 = rng.random();
            if taken.insert(t) {
                mine.push(t);
            }
        }
        let zone = format!("zone-{}", i % 3);
        d.add_instance(
            &format!("instance-{i}"),
            "10.0.0.1:9095",
            &zone,
            mine,
            InstanceState::Active,
            1,
            1,
        );
    }
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let start = std::time::Instant::now();
    let mut total = 0;
    for _ in 0..iterations {
        let snap = RingSnapshot::new(d.clone(), RingConfig::default()).expect("valid ring config");
        total += snap.tokens().len();
    }
    println!(
        "{} builds, {:?} per build ({total} tokens)",
        iterations,
        start.elapsed() / iterations as u32
    );
}
