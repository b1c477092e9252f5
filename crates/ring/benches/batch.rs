//! `DoBatch` benchmarks shaped like dskit's `BenchmarkBatch{10x100,100x100,100x1000}`
//! (spec/ring.md §8.2): N instances × M random keys, 512 tokens each, RF 3, Write, a
//! callback that returns at once. `plan` measures the synchronous grouping step alone.

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{
    BatchBuffers, BatchOptions, Desc, InstanceState, Operation, RingConfig, RingSnapshot, do_batch,
};

const NOW: i64 = 1_800_000_000;

/// As dskit's benchmark ring: instance `i` has ID `i`, address `instance-i`, zone `i`.
fn ring(instances: usize, rng: &mut SmallRng) -> RingSnapshot {
    let mut taken = HashSet::new();
    let mut d = Desc::new();
    for i in 0..instances {
        let mut tokens = Vec::with_capacity(512);
        while tokens.len() < 512 {
            let t: u32 = rng.random();
            if taken.insert(t) {
                tokens.push(t);
            }
        }
        d.add_instance(
            &i.to_string(),
            &format!("instance-{i}"),
            &i.to_string(),
            tokens,
            InstanceState::Active,
            NOW - 3600,
            NOW,
        );
    }
    RingSnapshot::new(d, RingConfig::default()).expect("valid ring config")
}

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("Batch");
    for (instances, keys) in [(10, 100), (100, 100), (100, 1000)] {
        let mut rng = SmallRng::seed_from_u64(42);
        let r = ring(instances, &mut rng);
        // A few key sets, rotated, so branch predictors do not learn one batch.
        let key_sets: Vec<Vec<u32>> = (0..16)
            .map(|_| (0..keys).map(|_| rng.random()).collect())
            .collect();
        let now = unix_seconds(NOW);
        let name = format!("{instances}x{keys}");
        let mut bufs = BatchBuffers::new();

        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("do_batch", &name), |b| {
            b.iter(|| {
                k = (k + 1) & 15;
                let out = futures::executor::block_on(do_batch(
                    &r,
                    Operation::WRITE,
                    now,
                    &key_sets[k],
                    &mut bufs,
                    |_, items| {
                        black_box(items.len());
                        async { Ok::<(), ()>(()) }
                    },
                    BatchOptions::default(),
                ));
                assert!(out.result.is_ok());
                black_box(out.rest);
            })
        });

        let mut gb = ringkit_ring::GetBuffer::new();
        group.bench_function(BenchmarkId::new("get_only", &name), |b| {
            b.iter(|| {
                k = (k + 1) & 15;
                let mut n = 0;
                for &key in &key_sets[k] {
                    n += r.get(key, Operation::WRITE, now, &mut gb).unwrap().len();
                }
                black_box(n);
            })
        });

        group.bench_function(BenchmarkId::new("plan", &name), |b| {
            b.iter(|| {
                k = (k + 1) & 15;
                let plan = bufs
                    .plan(&r, Operation::WRITE, now, &key_sets[k])
                    .expect("plan");
                black_box(plan.calls());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_batch);

/// `BATCH_FIXED=<instances>x<keys>:<iterations>[:plan]` runs that many `do_batch` (or
/// `plan`) iterations and exits, for `perf stat`: on a shared 2-core machine the CPU time
/// per iteration is steadier than criterion's wall-clock figures.
fn fixed(spec: &str) {
    let parse = |s: Option<&str>| s.and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let mut parts = spec.split(':');
    let mut shape = parts.next().unwrap_or("").split('x');
    let (instances, keys) = (parse(shape.next()), parse(shape.next()));
    let iterations = parse(parts.next());
    let plan_only = parts.next() == Some("plan");
    let mut rng = SmallRng::seed_from_u64(42);
    let r = ring(instances, &mut rng);
    let key_sets: Vec<Vec<u32>> = (0..16)
        .map(|_| (0..keys).map(|_| rng.random()).collect())
        .collect();
    let mut bufs = BatchBuffers::new();
    // One batch first: it builds the ring's lazy lookup tables and grows the buffers.
    fixed_loop(&r, &key_sets, &mut bufs, 1, plan_only);
    fixed_loop(&r, &key_sets, &mut bufs, iterations, plan_only);
}

/// The measured loop, apart for `valgrind --toggle-collect=*fixed_loop*`.
#[inline(never)]
fn fixed_loop(
    r: &RingSnapshot,
    key_sets: &[Vec<u32>],
    bufs: &mut BatchBuffers,
    iterations: usize,
    plan_only: bool,
) {
    let now = unix_seconds(NOW);
    for i in 0..iterations {
        let keys = &key_sets[i & 15];
        if plan_only {
            let plan = bufs.plan(r, Operation::WRITE, now, keys).expect("plan");
            black_box(plan.calls());
        } else {
            let out = futures::executor::block_on(do_batch(
                r,
                Operation::WRITE,
                now,
                keys,
                bufs,
                |_, items| {
                    black_box(items.len());
                    async { Ok::<(), ()>(()) }
                },
                BatchOptions::default(),
            ));
            assert!(out.result.is_ok());
            black_box(out.rest);
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("BATCH_FIXED") {
        fixed(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
