//! Shuffle-shard benchmarks shaped like dskit's `BenchmarkRing_ShuffleShard` (cache off)
//! and `BenchmarkRing_ShuffleShardCached`: zone awareness on, 128 random tokens per
//! instance, the same tenant every iteration.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use ringkit_ring::gorand::{GoRand, ShardRng};
use ringkit_ring::shuffle::shuffle_shard_seed;
use ringkit_ring::{RingConfig, RingSnapshot};
use support::random_ring;

mod support;

fn ring(instances: usize, zones: usize, cache: bool) -> Arc<RingSnapshot> {
    let mut rng = SmallRng::seed_from_u64(42);
    let cfg = RingConfig {
        zone_awareness_enabled: true,
        heartbeat_timeout: Duration::from_secs(3600),
        ..RingConfig::default()
    };
    let r = RingSnapshot::new(random_ring(1..instances + 1, zones, 128, &mut rng), cfg)
        .expect("valid ring config");
    Arc::new(if cache { r } else { r.without_subring_cache() })
}

fn bench_shuffle_shard(c: &mut Criterion) {
    for (name, cache) in [("ShuffleShard", false), ("ShuffleShardCached", true)] {
        let mut group = c.benchmark_group(name);
        for instances in [50, 100, 1000] {
            for zones in [1, 3] {
                let r = ring(instances, zones, cache);
                for size in [3, 10, 30] {
                    let id = format!("instances={instances}/zones={zones}/size={size}");
                    group.bench_function(BenchmarkId::from_parameter(id), |b| {
                        b.iter(|| black_box(r.shuffle_shard(black_box("tenant-1"), size)))
                    });
                }
            }
        }
        group.finish();
    }
}

fn bench_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("ShuffleShardParts");
    group.bench_function("seed_md5", |b| {
        b.iter(|| shuffle_shard_seed(black_box("tenant-1"), black_box("zone-1")))
    });
    group.bench_function("shard_rng_seed_and_10_draws", |b| {
        b.iter(|| {
            let mut g = ShardRng::new(black_box(12345));
            (0..10).fold(0u32, |a, _| a ^ g.uint32())
        })
    });
    group.bench_function("go_rand_full_seed", |b| {
        b.iter(|| GoRand::new(black_box(12345)).uint32())
    });
    let r = ring(1000, 3, false);
    group.bench_function("pick_only_1000x3_size30", |b| {
        b.iter(|| r.shuffle_shard_indices(black_box("tenant-1"), 30))
    });
    group.finish();
}

criterion_group!(benches, bench_shuffle_shard, bench_parts);

/// `SHUFFLE_FIXED=<instances>x<zones>x<size>:<iterations>` runs that many uncached
/// `shuffle_shard` calls and exits, for `valgrind --tool=callgrind` or `perf stat`: on a
/// shared 2-core machine instruction counts are steadier than wall-clock figures.
fn fixed(spec: &str) {
    let parse = |s: Option<&str>| s.and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let mut parts = spec.split(':');
    let mut shape = parts.next().unwrap_or("").split('x');
    let (instances, zones, size) = (
        parse(shape.next()),
        parse(shape.next()),
        parse(shape.next()),
    );
    let iterations = parse(parts.next());
    let r = ring(instances, zones.max(1), false);
    // The first call builds the parent's per-zone tables, once per topology.
    black_box(r.shuffle_shard(black_box("tenant-1"), size));
    fixed_loop(&r, size, iterations);
}

/// The measured loop, apart for `valgrind --toggle-collect=*fixed_loop*`.
#[inline(never)]
fn fixed_loop(r: &Arc<RingSnapshot>, size: usize, iterations: usize) {
    for _ in 0..iterations {
        black_box(r.shuffle_shard(black_box("tenant-1"), size));
    }
}

fn main() {
    if let Ok(spec) = std::env::var("SHUFFLE_FIXED") {
        fixed(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
