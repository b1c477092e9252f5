//! Token generation benchmarks (spec/ring.md §8.2).
//!
//! - `spread_minimizing/instance-zone-a-1000`: dskit's
//!   `BenchmarkSpreadMinimizingTokenGenerator_GenerateTokens` shape, 512 tokens for
//!   `instance-zone-a-1000` with 3 zones. dskit replays the joins on every call, so the
//!   comparable number is `uncached` (fresh generator per iteration); `cached` is what a
//!   lifecycler pays on repeated calls.
//! - `random/512_of_500x512_taken`: 512 random tokens against a ring of 500 instances with
//!   512 tokens each (256 000 taken), sorted as `Desc::all_tokens` returns them, and unsorted.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use ringkit_ring::tokens::{RandomTokenGenerator, SpreadMinimizingTokenGenerator, TokenGenerator};
use std::hint::black_box;

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

fn spread_minimizing(c: &mut Criterion) {
    let mut group = c.benchmark_group("spread_minimizing");
    let mut rng = SmallRng::seed_from_u64(0);
    group.bench_function("instance-zone-a-1000/uncached", |b| {
        b.iter(|| {
            let g = SpreadMinimizingTokenGenerator::new(
                black_box("instance-zone-a-1000"),
                "zone-a",
                &ZONES,
                true,
            )
            .unwrap();
            g.generate_tokens(512, &[], &mut rng).unwrap()
        })
    });
    let g = SpreadMinimizingTokenGenerator::new("instance-zone-a-1000", "zone-a", &ZONES, true)
        .unwrap();
    group.bench_function("instance-zone-a-1000/cached", |b| {
        b.iter(|| g.generate_tokens(black_box(512), &[], &mut rng).unwrap())
    });
    group.finish();
}

fn random(c: &mut Criterion) {
    let mut group = c.benchmark_group("random");
    let mut rng = SmallRng::seed_from_u64(1);
    let mut taken = RandomTokenGenerator
        .generate_tokens(500 * 512, &[], &mut rng)
        .unwrap();
    group.bench_with_input(
        BenchmarkId::new("512_of_500x512_taken", "sorted"),
        &taken,
        |b, taken| {
            b.iter(|| {
                RandomTokenGenerator
                    .generate_tokens(512, black_box(taken), &mut rng)
                    .unwrap()
            })
        },
    );
    // Interleave so the slice is far from sorted, as a hand-built list might be.
    let half = taken.len() / 2;
    let (lo, hi) = taken.split_at(half);
    let unsorted: Vec<u32> = hi.iter().zip(lo).flat_map(|(a, b)| [*a, *b]).collect();
    taken.clear();
    group.bench_with_input(
        BenchmarkId::new("512_of_500x512_taken", "unsorted"),
        &unsorted,
        |b, taken| {
            b.iter(|| {
                RandomTokenGenerator
                    .generate_tokens(512, black_box(taken), &mut rng)
                    .unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, spread_minimizing, random);
criterion_main!(benches);
