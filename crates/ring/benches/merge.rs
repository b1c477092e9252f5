//! Gossip merge on a large ring, shaped like dskit's `BenchmarkMemberlistReceiveWithRingDesc`:
//! 600 instances × 128 tokens, and every received message is a one-instance heartbeat (newer
//! timestamp, same tokens), so every merge really updates the ring.
//!
//! The returned change is dropped inside the timed part (`is_some()`), as the memberlist layer
//! drops it soon after queueing the broadcast; keeping every change alive until the end of a
//! batch would mostly measure page faults of a growing heap.

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use ringkit_ring::merge::merge;
use ringkit_ring::{Desc, InstanceState, codec};
use support::unique_tokens;

mod support;

const INSTANCES: usize = 600;
const TOKENS: usize = 128;
const REGISTERED: i64 = 1_700_000_000;

fn big_ring(rng: &mut SmallRng, taken: &mut HashSet<u32>) -> Desc {
    let mut d = Desc::new();
    for i in 0..INSTANCES {
        let tokens = unique_tokens(rng, taken, TOKENS);
        d.add_instance(
            &format!("instance-{i}"),
            "127.0.0.1",
            "zone",
            tokens,
            InstanceState::Active,
            REGISTERED,
            REGISTERED,
        );
    }
    d
}

/// The heartbeat of `instance-0` at `timestamp`, as a one-instance delta.
fn heartbeat(ring: &Desc, timestamp: i64, tokens: Option<&[u32]>) -> Desc {
    let mut instance = ring.ingesters["instance-0"].clone();
    instance.timestamp = timestamp;
    if let Some(tokens) = tokens {
        instance.tokens = tokens.into();
    }
    let mut delta = Desc::new();
    delta.ingesters.insert("instance-0".to_owned(), instance);
    delta
}

fn bench_merge(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut taken = HashSet::new();
    let initial = big_ring(&mut rng, &mut taken);
    let now = REGISTERED;

    let mut group = c.benchmark_group("merge");

    // Merge only: the delta is decoded outside the timed part.
    {
        let mut local = initial.clone();
        let mut ts = REGISTERED;
        group.bench_function("heartbeat_600x128", |b| {
            b.iter_batched(
                || {
                    ts += 1;
                    heartbeat(&initial, ts, None)
                },
                |delta| merge(black_box(&mut local), delta, false, now).is_some(),
                BatchSize::SmallInput,
            )
        });
    }

    // Receive path without the memberlist envelope: snappy + protobuf decode, then merge.
    {
        let mut local = initial.clone();
        let mut ts = REGISTERED;
        group.bench_function("receive_heartbeat_600x128", |b| {
            b.iter_batched(
                || {
                    ts += 1;
                    codec::encode(&heartbeat(&initial, ts, None))
                },
                |bytes| {
                    let delta = codec::decode(black_box(&bytes)).expect("valid message");
                    merge(&mut local, delta, false, now).is_some()
                },
                BatchSize::SmallInput,
            )
        });
    }

    // Token-changing heartbeat: flips instance-0 between two token sets, which runs conflict
    // detection over the whole ring every time (no conflict is found).
    {
        let other_tokens = unique_tokens(&mut rng, &mut taken, TOKENS);
        let own_tokens = initial.ingesters["instance-0"].tokens.to_vec();
        let mut local = initial.clone();
        let mut ts = REGISTERED;
        group.bench_function("heartbeat_new_tokens_600x128", |b| {
            b.iter_batched(
                || {
                    ts += 1;
                    let tokens = if ts % 2 == 0 {
                        &other_tokens
                    } else {
                        &own_tokens
                    };
                    heartbeat(&initial, ts, Some(tokens))
                },
                |delta| merge(black_box(&mut local), delta, false, now).is_some(),
                BatchSize::SmallInput,
            )
        });
    }

    group.finish();
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);
