//! The sorted token table: radix/bucket sort of all tokens, deterministic owners of
//! duplicated tokens, and the bucket index that finds a key's first token in one table read.

use super::*;

/// Token tables: shared between snapshots whose topology is equal.
#[derive(Debug)]
pub(super) struct TokenTable {
    /// All tokens, sorted, unique (a duplicated token keeps one deterministic owner).
    pub(super) tokens: Vec<u32>,
    /// `owners[i]` owns `tokens[i]`.
    pub(super) owners: Vec<InstanceIdx>,
    /// `bucket[b]` = index of the first token whose top `bits` bits are >= b.
    pub(super) bucket: Vec<u32>,
    /// `32 - bits`.
    pub(super) shift: u32,
    /// Per-zone tables, built on first use: lookups never need them, so a rebuild does not
    /// pay for them (status pages and shuffle sharding do, once per topology).
    pub(super) zoned: OnceLock<ZoneTables>,
    /// The walk's answer for every start token when no instance met extends the set,
    /// built on the first lookup (see [`PrimaryWalks`]).
    pub(super) walks: OnceLock<PrimaryWalks>,
    /// Keys owned per instance in the whole ring (first replica of each key), built on
    /// first use: only status pages and ownership queries read it.
    pub(super) owned_global: OnceLock<Vec<u64>>,
    /// Whether no token is claimed by two instances. Then every subset of the instances
    /// has exactly its own tokens in its table, which lets shuffle-shard sub-rings skip
    /// duplicate resolution (see [`RingSnapshot::subring`]).
    pub(super) unique: bool,
}
impl RingSnapshot {
    /// All tokens of the ring, sorted and unique.
    pub fn tokens(&self) -> &[u32] {
        &self.table.tokens
    }

    /// Owner index of each token in [`Self::tokens`].
    pub fn token_owners(&self) -> &[InstanceIdx] {
        &self.table.owners
    }

    /// Index of the first token strictly greater than `key`, wrapping to 0 (dskit's
    /// `searchToken`). The ring must not be empty.
    #[inline]
    pub fn search_token(&self, key: u32) -> usize {
        let t = &*self.table;
        search_indexed(&t.tokens, &t.bucket, t.shift, key)
    }

    /// [`Self::search_token`] in zone `z`'s tokens ([`Self::zone_tokens`]), which must not
    /// be empty.
    #[inline]
    pub(crate) fn search_zone_token(&self, z: usize, key: u32) -> usize {
        let zt = self.zone_tables();
        let (bucket, shift) = &zt.zone_index[z];
        search_indexed(&zt.zone_tokens[z].0, bucket, *shift, key)
    }
}

pub(super) fn build_token_table(instances: &[InstanceDesc], hot: &[Hot]) -> TokenTable {
    // The normal ring claims no token twice: the lean build for that case, and the
    // general one (pairs sorted by token and owner) only when the result shows a repeat.
    let table = unique_token_table(instances.len(), |i| &instances[i].tokens);
    if !has_adjacent_repeat(&table.tokens) {
        return table;
    }
    drop(table);
    let total: usize = instances.iter().map(|d| d.tokens.len()).sum();
    let bits = bucket_bits(total);
    let (pairs, bucket) = bucket_sort(instances, total, bits);

    // Resolve duplicated tokens deterministically: a non-LEAVING owner beats a LEAVING
    // one, then the lowest instance ID (= lowest index) wins (spec/ring.md §10.2).
    let leaving = |i: u32| hot[i as usize].state == InstanceState::Leaving as i32;
    let mut tokens: Vec<u32> = Vec::with_capacity(total);
    let mut owners: Vec<InstanceIdx> = Vec::with_capacity(total);
    for &p in &pairs {
        let token = (p >> 32) as u32;
        let idx = p as u32;
        if tokens.last() == Some(&token) {
            let cur = owners.last_mut().expect("parallel arrays");
            // Pairs with equal tokens arrive in index order, so `cur` < `idx`.
            if leaving(*cur) && !leaving(idx) {
                *cur = idx;
            }
            continue;
        }
        tokens.push(token);
        owners.push(idx);
    }
    drop(pairs);
    // The bucket starts counted pairs; with duplicates they must be recounted on tokens.
    let unique = tokens.len() == total;
    let index = unique.then_some((bucket, 32 - bits));
    finish_token_table(tokens, owners, index)
}

/// The token table of instances that claim no token twice (a subset of a ring whose
/// table is [`TokenTable::unique`]), built without pairs or duplicate checks: one counting
/// pass, one scatter pass straight into the token and owner arrays, and one insertion pass
/// that orders each bucket's few tokens. The bucket starts become the lookup index.
///
/// This is most of the cost of an uncached shuffle shard, so the loops are kept lean: bucket
/// numbers are masked to the counter table's length (no bounds checks), the prefix sums run
/// as two independent chains, and the insertion pass keeps the running maximum in a
/// register and only branches away for a token smaller than it.
pub(super) fn unique_token_table<'a>(
    n: usize,
    tokens_of: impl Fn(usize) -> &'a [u32],
) -> TokenTable {
    let total: usize = (0..n).map(|i| tokens_of(i).len()).sum();
    let bits = bucket_bits(total);
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mask = buckets - 1;
    // `counts[b]` counts bucket `b`, then (prefix sums) marks its end; the scatter below
    // fills each bucket backwards, leaving `counts[b]` at its start.
    let mut bucket = vec![0u32; buckets + 1];
    let counts = &mut bucket[..buckets];
    for i in 0..n {
        let mut quads = tokens_of(i).chunks_exact(4);
        for q in &mut quads {
            for &t in q {
                counts[(t >> shift) as usize & mask] += 1;
            }
        }
        for &t in quads.remainder() {
            counts[(t >> shift) as usize & mask] += 1;
        }
    }
    prefix_sums(counts);
    let mut tokens = vec![0u32; total];
    let mut owners = vec![0 as InstanceIdx; total];
    {
        let owners = &mut owners[..tokens.len()];
        // Backwards over instances and tokens, so each bucket ends up in (index, token) order.
        for i in (0..n).rev() {
            for &t in tokens_of(i).iter().rev() {
                let c = &mut counts[(t >> shift) as usize & mask];
                let p = *c - 1;
                *c = p;
                tokens[p as usize] = t;
                owners[p as usize] = i as InstanceIdx;
            }
        }
    }
    bucket[buckets] = total as u32;
    sort_bucketed(&mut tokens, &mut owners);
    finish_token_table(tokens, owners, Some((bucket, shift)))
}

/// Whether sorted `tokens` hold some value twice. No early exit, so that it vectorises.
fn has_adjacent_repeat(tokens: &[u32]) -> bool {
    tokens
        .windows(2)
        .fold(false, |repeat, w| repeat | (w[0] == w[1]))
}

/// In-place inclusive prefix sums, as two independent chains (the halves, the second
/// offset by the first's total) so that the additions overlap instead of waiting on each
/// other.
pub(super) fn prefix_sums(v: &mut [u32]) {
    let (lo, hi) = v.split_at_mut(v.len() / 2);
    let mut a = 0u32;
    let mut b: u32 = lo.iter().sum();
    let (hi, tail) = hi.split_at_mut(lo.len());
    for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
        a += *x;
        *x = a;
        b += *y;
        *y = b;
    }
    for x in tail {
        b += *x;
        *x = b;
    }
}

/// Sorts `tokens` (moving `owners` along) when it is already in order but for short runs
/// (buckets of about one token). Insertion sort, with the largest token so far kept in a
/// register: an element at least as large, the common case, costs one comparison.
pub(super) fn sort_bucketed(tokens: &mut [u32], owners: &mut [InstanceIdx]) {
    let Some(&first) = tokens.first() else {
        return;
    };
    let owners = &mut owners[..tokens.len()];
    let mut max = first;
    for k in 1..tokens.len() {
        let t = tokens[k];
        if t < max {
            // `t` belongs before `max`; the slot at `k` gets `max` back, so `max` stays.
            let o = owners[k];
            let mut j = k;
            while j > 0 && tokens[j - 1] > t {
                tokens[j] = tokens[j - 1];
                owners[j] = owners[j - 1];
                j -= 1;
            }
            tokens[j] = t;
            owners[j] = o;
        } else {
            max = t;
        }
    }
}

/// Sorts all `(token << 32 | instance index)` pairs by token, then index: one counting
/// pass and one scatter pass over buckets of the top `bits` token bits (about one token
/// per bucket), then an insertion sort of each tiny bucket. Tokens are uniform, so this is
/// linear; the bucket starts double as the lookup index (see [`TokenTable::bucket`]).
/// (A loser-tree merge of the sorted per-instance lists was measured slower: its matches
/// are unpredictable, and 256k × 9 of them cost more than two scatter passes.)
pub(super) fn bucket_sort(
    instances: &[InstanceDesc],
    total: usize,
    bits: u32,
) -> (Vec<u64>, Vec<u32>) {
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mut bucket = vec![0u32; buckets + 1];
    for d in instances {
        for &t in &d.tokens {
            bucket[(t >> shift) as usize + 1] += 1;
        }
    }
    for b in 1..=buckets {
        bucket[b] += bucket[b - 1];
    }
    let mut cursor: Vec<u32> = bucket[..buckets].to_vec();
    let mut pairs = vec![0u64; total];
    for (i, d) in instances.iter().enumerate() {
        for &t in &d.tokens {
            let c = &mut cursor[(t >> shift) as usize];
            pairs[*c as usize] = (u64::from(t) << 32) | i as u64;
            *c += 1;
        }
    }
    drop(cursor);
    for b in 0..buckets {
        let (lo, hi) = (bucket[b] as usize, bucket[b + 1] as usize);
        if hi - lo > 1 {
            let run = &mut pairs[lo..hi];
            for k in 1..run.len() {
                let v = run[k];
                let mut j = k;
                while j > 0 && run[j - 1] > v {
                    run[j] = run[j - 1];
                    j -= 1;
                }
                run[j] = v;
            }
        }
    }
    (pairs, bucket)
}

/// The table of sorted `tokens` owned by `owners`, with its bucket index (`index`
/// when the caller already has it). `unique` = no token was claimed twice.
pub(super) fn finish_token_table(
    tokens: Vec<u32>,
    owners: Vec<InstanceIdx>,
    index: Option<(Vec<u32>, u32)>,
) -> TokenTable {
    let unique = index.is_some();
    let (bucket, shift) = index.unwrap_or_else(|| bucket_index(&tokens));
    TokenTable {
        tokens,
        owners,
        bucket,
        shift,
        zoned: OnceLock::new(),
        walks: OnceLock::new(),
        owned_global: OnceLock::new(),
        unique,
    }
}

/// The bucket index over sorted `tokens` and its shift (see [`TokenTable::bucket`]).
pub(super) fn bucket_index(tokens: &[u32]) -> (Vec<u32>, u32) {
    let bits = bucket_bits(tokens.len());
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mut bucket = vec![0u32; buckets + 1];
    // Count tokens per bucket, then prefix-sum into start indices.
    for &t in tokens {
        bucket[(t >> shift) as usize + 1] += 1;
    }
    for b in 1..=buckets {
        bucket[b] += bucket[b - 1];
    }
    (bucket, shift)
}

/// Index of the first of sorted `tokens` greater than `key`, wrapping to 0, through their
/// bucket index: one table read and a scan of about one token.
#[inline]
pub(super) fn search_indexed(tokens: &[u32], bucket: &[u32], shift: u32, key: u32) -> usize {
    let b = (key >> shift) as usize;
    let mut i = bucket[b] as usize;
    let end = bucket[b + 1] as usize;
    while i < end && tokens[i] <= key {
        i += 1;
    }
    if i == tokens.len() { 0 } else { i }
}

/// Bucket index size: about one bucket per token, between 2^4 and 2^20 buckets.
pub(super) fn bucket_bits(tokens: usize) -> u32 {
    let bits = usize::BITS - tokens.max(1).leading_zeros();
    bits.clamp(4, 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_table_is_sorted_unique_with_deterministic_owners_and_index() {
        let mut d = Desc::new();
        let mut x: u32 = 7;
        for i in 0..37 {
            let tokens: Vec<u32> = (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x % 20_000 // small range: many tokens shared between instances
                })
                .collect();
            let state = if i % 5 == 0 {
                InstanceState::Leaving
            } else {
                InstanceState::Active
            };
            d.add_instance(&format!("i{i:02}"), "a", "", tokens, state, 1, 1);
        }
        let instances: Vec<InstanceDesc> = d.ingesters.into_values().collect();
        let hot = RingSnapshot::index_instances(&instances).hot;
        let table = build_token_table(&instances, &hot);
        // Reference: every (token, index) pair sorted, first non-LEAVING claimant wins.
        let mut pairs: Vec<(u32, u32)> = instances
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.tokens.iter().map(move |&t| (t, i as u32)))
            .collect();
        pairs.sort_unstable();
        let mut want: Vec<(u32, u32)> = Vec::new();
        for (t, i) in pairs {
            let leaving = instances[i as usize].state == InstanceState::Leaving as i32;
            match want.last_mut() {
                Some(last) if last.0 == t => {
                    let cur_leaving =
                        instances[last.1 as usize].state == InstanceState::Leaving as i32;
                    if cur_leaving && !leaving {
                        last.1 = i;
                    }
                }
                _ => want.push((t, i)),
            }
        }
        let got: Vec<(u32, u32)> = table
            .tokens
            .iter()
            .copied()
            .zip(table.owners.iter().copied())
            .collect();
        assert_eq!(got, want);
        let (bucket, shift) = bucket_index(&table.tokens);
        assert_eq!((table.bucket.clone(), table.shift), (bucket, shift));
    }

    #[test]
    fn unique_token_table_matches_the_general_build() {
        let mut x: u32 = 11;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for n in [1usize, 2, 3, 7, 30] {
            let mut d = Desc::new();
            let mut taken = std::collections::HashSet::new();
            for i in 0..n {
                let mut tokens = Vec::new();
                while tokens.len() < 1 + (i * 37) % 200 {
                    let t = next();
                    if taken.insert(t) {
                        tokens.push(t);
                    }
                }
                d.add_instance(
                    &format!("i{i:02}"),
                    "a",
                    "z",
                    tokens,
                    InstanceState::Active,
                    1,
                    1,
                );
            }
            let instances: Vec<InstanceDesc> = d.ingesters.into_values().collect();
            let hot = RingSnapshot::index_instances(&instances).hot;
            let general = build_token_table(&instances, &hot);
            let lean = unique_token_table(instances.len(), |i| &instances[i].tokens);
            assert!(general.unique);
            assert_eq!(lean.tokens, general.tokens);
            assert_eq!(lean.owners, general.owners);
            assert_eq!((lean.bucket, lean.shift), (general.bucket, general.shift));
        }
    }

    #[test]
    fn prefix_sums_and_bucket_sort_match_the_plain_versions() {
        for len in [0usize, 1, 2, 3, 16, 17, 4096] {
            let v: Vec<u32> = (0..len as u32).map(|i| (i * 7919) % 5).collect();
            let mut got = v.clone();
            prefix_sums(&mut got);
            let want: Vec<u32> = v
                .iter()
                .scan(0u32, |s, &x| {
                    *s += x;
                    Some(*s)
                })
                .collect();
            assert_eq!(got, want, "len {len}");
        }
        // Runs of up to four out-of-order elements, owners moving along.
        let mut tokens = vec![3u32, 1, 2, 4, 9, 8, 7, 6, 10, 12, 11];
        let mut owners: Vec<InstanceIdx> = tokens.iter().map(|t| t + 100).collect();
        sort_bucketed(&mut tokens, &mut owners);
        assert!(tokens.is_sorted());
        assert!(tokens.iter().zip(&owners).all(|(t, o)| *o == t + 100));
        sort_bucketed(&mut [], &mut []);
    }
}
