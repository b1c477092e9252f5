//! Rings for the benchmarks and profiling examples of this crate: random unique tokens and a
//! ring of ACTIVE instances built from them, so every bench and profile measures the same
//! shape of ring. Each user takes part of it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::ops::Range;

use rand::RngExt;
use rand::rngs::SmallRng;
use ringkit_ring::{Desc, InstanceState};

/// The benches' "now" (Unix seconds): heartbeats are fresh at this time.
pub(crate) const NOW: i64 = 1_800_000_000;

/// `n` random tokens that none of `taken` holds (and that are then taken).
pub(crate) fn unique_tokens(rng: &mut SmallRng, taken: &mut HashSet<u32>, n: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let t: u32 = rng.random();
        if taken.insert(t) {
            out.push(t);
        }
    }
    out
}

/// ACTIVE instances `instance-<i>` for `i` in `ids`, in zone `zone-<i % zones>`, each with
/// `tokens` unique random tokens, registered an hour before [`NOW`] and heartbeating at it.
pub(crate) fn random_ring(
    ids: Range<usize>,
    zones: usize,
    tokens: usize,
    rng: &mut SmallRng,
) -> Desc {
    let mut taken = HashSet::new();
    let mut d = Desc::new();
    for i in ids {
        let mine = unique_tokens(rng, &mut taken, tokens);
        d.add_instance(
            &format!("instance-{i}"),
            &format!("10.0.{}.{}:9095", i / 250, i % 250),
            &format!("zone-{}", i % zones),
            mine,
            InstanceState::Active,
            NOW - 3600,
            NOW,
        );
    }
    d
}
