//! Lookup and rebuild benchmarks shaped like dskit's `BenchmarkRing_Get` and
//! `BenchmarkUpdateRingState` (spec/ring.md §8.2), so the figures compare.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringkit_ring::snapshot::{ReplicationStrategy, unix_seconds};
use ringkit_ring::{GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};
use support::{NOW, random_ring};

/// The `ringkit` binary's allocator: a node's rebuilds allocate and free with it, and a
/// states-only update is mostly freeing the previous descriptors.
mod support;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("Ring_Get");
    let cases = [
        ("with zone awareness", 99, 3, true),
        ("one excluded zone", 99, 3, true),
        ("without zone awareness", 3, 1, false),
        ("without zone awareness, not enough instances", 2, 1, false),
    ];
    for (name, instances, zones, zone_aware) in cases {
        let mut rng = SmallRng::seed_from_u64(42);
        let desc = random_ring(0..instances, zones, 512, &mut rng);
        let cfg = RingConfig {
            replication_factor: 3,
            zone_awareness_enabled: zone_aware,
            heartbeat_timeout: Duration::from_secs(60),
            excluded_zones: if name == "one excluded zone" {
                vec!["zone-2".into()]
            } else {
                vec![]
            },
            ..RingConfig::default()
        };
        let ring = RingSnapshot::new(desc, cfg).expect("valid ring config");
        let keys: Vec<u32> = (0..4096).map(|_| rng.random()).collect();
        let mut buf = GetBuffer::new();
        let now = unix_seconds(NOW);
        let mut k = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 1) & 4095;
                let set = ring.get(black_box(keys[k]), Operation::WRITE, now, &mut buf);
                black_box(set.map(|s| s.max_errors).ok());
            })
        });
    }
    group.finish();
}

fn bench_update_ring_state(c: &mut Criterion) {
    // As dskit's BenchmarkUpdateRingState: RF 3, zone-aware, one zone per instance, the
    // snapshot flip-flops between two descriptors that differ either in every token list
    // ("tokens changed": full rebuild) or only in states ("state only"). The descriptor
    // clone is prepared outside the timed part: a watcher owns the decoded value anyway.
    let mut group = c.benchmark_group("UpdateRingState");
    group.sample_size(20);
    let cfg = RingConfig {
        zone_awareness_enabled: true,
        ..RingConfig::default()
    };
    for (instances, tokens) in [(50, 128), (100, 256), (500, 512)] {
        let mut rng = SmallRng::seed_from_u64(7);
        let a = random_ring(0..instances, instances, tokens, &mut rng);
        let b_tokens = random_ring(0..instances, instances, tokens, &mut rng);
        let mut b_state = a.clone();
        for d in b_state.ingesters.values_mut() {
            d.state = InstanceState::Joining as i32;
        }
        for (name, other) in [("tokens changed", &b_tokens), ("state only", &b_state)] {
            let mut current = RingSnapshot::new(a.clone(), cfg.clone()).expect("valid ring config");
            let mut flip = false;
            group.bench_function(
                BenchmarkId::new(name, format!("{instances}x{tokens}")),
                |bch| {
                    bch.iter_batched(
                        || {
                            flip = !flip;
                            if flip { other.clone() } else { a.clone() }
                        },
                        |d| {
                            current = current.update(d);
                            black_box(current.tokens().len())
                        },
                        criterion::BatchSize::LargeInput,
                    )
                },
            );
        }
        // What a request after a topology change waits for, end to end: the rebuild and
        // the first lookup (every table a lookup reads is built by the rebuild).
        let mut current = RingSnapshot::new(a.clone(), cfg.clone()).expect("valid ring config");
        let mut flip = false;
        let mut buf = GetBuffer::new();
        let now = unix_seconds(NOW);
        let mut key = 0u32;
        group.bench_function(
            BenchmarkId::new(
                "tokens changed + first get",
                format!("{instances}x{tokens}"),
            ),
            |bch| {
                bch.iter_batched(
                    || {
                        flip = !flip;
                        if flip { b_tokens.clone() } else { a.clone() }
                    },
                    |d| {
                        current = current.update(d);
                        key = key.wrapping_add(0x9e37_79b9);
                        let set = current.get(key, Operation::WRITE, now, &mut buf);
                        black_box(set.map(|s| s.max_errors).ok())
                    },
                    criterion::BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// dskit's `BenchmarkRing_Get_OneZoneLeaving`: 1,200 instances in 4 zones, 512 tokens
/// each, RF 4, zone-aware, the ignore-unhealthy strategy, writes; every instance of
/// `zone-2` LEAVING (a zone being rolled out) or none. Each lookup must return one
/// instance of each zone that is not leaving.
fn bench_get_one_zone_leaving(c: &mut Criterion) {
    let mut group = c.benchmark_group("Ring_Get_OneZoneLeaving");
    for leaving in [true, false] {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut desc = random_ring(0..1200, 4, 512, &mut rng);
        if leaving {
            for d in desc.ingesters.values_mut().filter(|d| d.zone == "zone-2") {
                d.state = InstanceState::Leaving as i32;
            }
        }
        let cfg = RingConfig {
            replication_factor: 4,
            zone_awareness_enabled: true,
            heartbeat_timeout: Duration::from_secs(3600),
            strategy: ReplicationStrategy::IgnoreUnhealthy,
            ..RingConfig::default()
        };
        let ring = RingSnapshot::new(desc, cfg).expect("valid ring config");
        let keys: Vec<u32> = (0..4096).map(|_| rng.random()).collect();
        let want = if leaving { 3 } else { 4 };
        let mut buf = GetBuffer::new();
        let now = unix_seconds(NOW);
        let mut k = 0usize;
        group.bench_function(format!("one zone leaving = {leaving}"), |b| {
            b.iter(|| {
                k = (k + 1) & 4095;
                let set = ring
                    .get(black_box(keys[k]), Operation::WRITE, now, &mut buf)
                    .expect("a healthy instance in three zones");
                assert_eq!(set.len(), want);
                black_box(set.max_errors)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_get,
    bench_get_one_zone_leaving,
    bench_update_ring_state
);
criterion_main!(benches);
