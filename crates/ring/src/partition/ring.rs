//! [`PartitionRing`]: an immutable snapshot of a partition ring and its lookups
//! (spec/partition-ring.md §4): the active partition of a key, shuffle sharding with and
//! without lookback (with a bounded per-snapshot cache), counts, IDs, owners and token
//! ranges.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::PartitionRingError;
use super::model::unix_parts;
use crate::gorand::ShardRng;
use crate::model::{Desc, InstanceState, PartitionDesc, PartitionRingDesc, PartitionState};
use crate::shuffle::shuffle_shard_seed;
use crate::snapshot::{RingConfig, RingSnapshot};
use crate::token_ranges::TokenRanges;

/// Default bound on each of a snapshot's two shuffle-shard caches (without and with
/// lookback). dskit's maps are unbounded; at the bound new results are not stored (and
/// counted in [`ShuffleShardCacheStats::dropped`]) so memory stays bounded.
pub const DEFAULT_SHUFFLE_SHARD_CACHE_SIZE: usize = 10_000;

/// Index of the first token strictly greater than `key`, wrapping to 0, exactly as dskit's
/// `searchToken` (which, on a run of duplicates equal to `key`, lands on the second copy).
pub(crate) fn search_token(tokens: &[u32], key: u32) -> usize {
    let i = tokens.partition_point(|&t| t < key);
    let i = if i < tokens.len() && tokens[i] == key {
        i + 1
    } else {
        i
    };
    if i >= tokens.len() { 0 } else { i }
}

/// `now - lookback` in whole Unix seconds, floored as Go's `Time.Unix`.
fn window_start(now: SystemTime, lookback: Duration) -> i64 {
    let (secs, nanos) = unix_parts(now);
    let now_ns = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    let start = now_ns - lookback.as_nanos().min(i128::MAX as u128 / 2) as i128;
    start
        .div_euclid(1_000_000_000)
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Counters of a snapshot's shuffle-shard cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShuffleShardCacheStats {
    /// Cached subrings (both caches).
    pub entries: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that computed a subring.
    pub misses: u64,
    /// Results not stored because the cache was full.
    pub dropped: u64,
}

struct LookbackEntry {
    size: usize,
    lookback: Duration,
    ring: Arc<PartitionRing>,
    valid_from: i64,
    valid_to: i64,
}

/// Entries by identifier, so a lookup borrows the identifier instead of building a key.
#[derive(Default)]
struct CacheMaps {
    /// `(size, subring)` per identifier.
    plain: HashMap<String, Vec<(usize, Arc<PartitionRing>)>>,
    lookback: HashMap<String, Vec<LookbackEntry>>,
    plain_len: usize,
    lookback_len: usize,
}

/// dskit's `partitionRingShuffleShardCache`, bounded.
struct ShuffleShardCache {
    capacity: usize,
    maps: Mutex<CacheMaps>,
    hits: AtomicU64,
    misses: AtomicU64,
    dropped: AtomicU64,
}

impl ShuffleShardCache {
    fn new(capacity: usize) -> ShuffleShardCache {
        ShuffleShardCache {
            capacity,
            maps: Mutex::new(CacheMaps::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheMaps> {
        // A panic while holding the lock cannot leave the maps inconsistent (each
        // operation is one insert or one get), so a poisoned lock is still usable.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for ShuffleShardCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShuffleShardCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// An immutable view of a partition ring (dskit's `PartitionRing`).
///
/// Build one per descriptor update with [`PartitionRing::new`] and share it behind an
/// `Arc`; lookups never change it (the shuffle-shard cache is interior and invisible in
/// results). Like dskit, it uses every partition and owner it is given, whatever their
/// state: strip tombstones first (the KV stores do; see
/// [`PartitionRingDesc::remove_tombstones`]).
#[derive(Debug)]
pub struct PartitionRing {
    desc: PartitionRingDesc,
    /// All tokens of all partitions, sorted, duplicates kept.
    tokens: Vec<u32>,
    /// Dense index of the partition that listed each token (for duplicates this differs
    /// from `token_part`); subrings are filtered with it.
    token_lister: Vec<u32>,
    /// Dense index (into `part_ids`) of the partition of each token. A duplicated token
    /// maps to its highest partition ID at every copy: one of the outcomes Go's map order
    /// allows.
    token_part: Vec<u32>,
    /// Partition IDs in ascending order, and their state and state timestamp.
    part_ids: Vec<i32>,
    part_state: Vec<i32>,
    part_ts: Vec<i64>,
    /// For each token index, the index of the first token at or after it (clockwise) whose
    /// partition is ACTIVE, or `u32::MAX` if none.
    next_active: Vec<u32>,
    owners_by_partition: BTreeMap<i32, Vec<String>>,
    active_count: usize,
    cache: ShuffleShardCache,
}

impl PartitionRing {
    /// Builds a snapshot (dskit's `NewPartitionRing`) with the default cache bound.
    pub fn new(desc: PartitionRingDesc) -> PartitionRing {
        PartitionRing::with_shuffle_shard_cache_size(desc, DEFAULT_SHUFFLE_SHARD_CACHE_SIZE)
    }

    /// Builds a snapshot whose shuffle-shard caches hold at most `cache_size` subrings
    /// each (0 disables caching).
    pub fn with_shuffle_shard_cache_size(
        desc: PartitionRingDesc,
        cache_size: usize,
    ) -> PartitionRing {
        let part_ids: Vec<i32> = desc.partitions.keys().copied().collect();
        // Sorted by (token, partition): dense indices follow partition order.
        let mut pairs: Vec<(u32, u32)> = desc
            .partitions
            .values()
            .enumerate()
            .flat_map(|(i, p)| p.tokens.iter().map(move |t| (*t, i as u32)))
            .collect();
        pairs.sort_unstable();
        let (tokens, token_lister) = pairs.into_iter().unzip();
        PartitionRing::from_parts(desc, part_ids, tokens, token_lister, cache_size)
    }

    /// Builds the snapshot from the sorted tokens and, per token, the dense index (into
    /// `part_ids`, the descriptor's partition IDs in order) of the partition listing it,
    /// ascending among equal tokens.
    fn from_parts(
        desc: PartitionRingDesc,
        part_ids: Vec<i32>,
        tokens: Vec<u32>,
        token_lister: Vec<u32>,
        cache_size: usize,
    ) -> PartitionRing {
        let part_state: Vec<i32> = desc.partitions.values().map(|p| p.state).collect();
        let part_ts: Vec<i64> = desc
            .partitions
            .values()
            .map(|p| p.state_timestamp)
            .collect();
        let mut token_part: Vec<u32> = Vec::with_capacity(tokens.len());
        let mut i = 0;
        while i < tokens.len() {
            let mut j = i + 1;
            while j < tokens.len() && tokens[j] == tokens[i] {
                j += 1;
            }
            // The last of a run of equal tokens has the highest partition ID.
            token_part.extend(std::iter::repeat_n(token_lister[j - 1], j - i));
            i = j;
        }
        let active_state = PartitionState::PartitionActive as i32;
        let n = tokens.len();
        let mut next_active = vec![u32::MAX; n];
        let mut next = u32::MAX;
        // Two backward passes: the second carries the first active token across the wrap.
        for _ in 0..2 {
            for k in (0..n).rev() {
                if part_state[token_part[k] as usize] == active_state {
                    next = k as u32;
                }
                next_active[k] = next;
            }
        }
        PartitionRing {
            owners_by_partition: desc.owners_by_partition(),
            active_count: desc.active_partitions_count(),
            desc,
            tokens,
            token_lister,
            token_part,
            part_ids,
            part_state,
            part_ts,
            next_active,
            cache: ShuffleShardCache::new(cache_size),
        }
    }

    /// The descriptor this snapshot was built from.
    pub fn desc(&self) -> &PartitionRingDesc {
        &self.desc
    }

    /// All tokens of all partitions, sorted (duplicates kept).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The partition a key is written to (dskit's `ActivePartitionForKey`): starting at
    /// the first token strictly greater than `key`, the partition of the first token
    /// clockwise whose partition is ACTIVE. Replication factor is always 1.
    pub fn active_partition_for_key(&self, key: u32) -> Result<i32, PartitionRingError> {
        if self.tokens.is_empty() {
            return Err(PartitionRingError::NoActivePartitionFound);
        }
        let start = search_token(&self.tokens, key);
        match self.next_active[start] {
            u32::MAX => Err(PartitionRingError::NoActivePartitionFound),
            i => Ok(self.part_ids[self.token_part[i as usize] as usize]),
        }
    }

    /// Number of partitions a [`Self::shuffle_shard`] of `size` returns (dskit's
    /// `ShuffleShardSize`): `size`, or the number of ACTIVE partitions when `size` is 0 or
    /// larger.
    pub fn shuffle_shard_size(&self, size: usize) -> usize {
        if size == 0 || size > self.active_count {
            self.active_count
        } else {
            size
        }
    }

    /// The tenant's shard of `size` ACTIVE partitions (all of them when `size` is 0 or at
    /// least the number of partitions), picked with dskit's seeded walk so every node and
    /// dskit itself pick the same partitions (dskit's `ShuffleShard`). The subring carries
    /// the picked partitions and their owners. Cached per `(identifier, size)`.
    pub fn shuffle_shard(
        &self,
        identifier: &str,
        size: usize,
    ) -> Result<Arc<PartitionRing>, PartitionRingError> {
        let hit = self.cache.lock().plain.get(identifier).and_then(|v| {
            v.iter()
                .find(|(sz, _)| *sz == size)
                .map(|(_, ring)| Arc::clone(ring))
        });
        if let Some(hit) = hit {
            self.cache.count(true);
            return Ok(hit);
        }
        self.cache.count(false);
        let ring = Arc::new(self.shuffle(identifier, size, None)?);
        let mut maps = self.cache.lock();
        let maps = &mut *maps;
        let entries = maps.plain.entry(identifier.to_owned()).or_default();
        if let Some(e) = entries.iter_mut().find(|(sz, _)| *sz == size) {
            e.1 = Arc::clone(&ring);
        } else if maps.plain_len < self.cache.capacity {
            entries.push((size, Arc::clone(&ring)));
            maps.plain_len += 1;
        } else {
            if entries.is_empty() {
                maps.plain.remove(identifier);
            }
            self.cache.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ring)
    }

    /// Like [`Self::shuffle_shard`], plus every partition whose state changed within
    /// `[now - lookback, now]` that the walk meets (dskit's `ShuffleShardWithLookback`, for
    /// reads): INACTIVE partitions are then included, and each such partition (ACTIVE ones
    /// too) extends the shard by one. PENDING partitions are never included. Cached per
    /// `(identifier, size, lookback)` for the window starts the result stays valid for.
    pub fn shuffle_shard_with_lookback(
        &self,
        identifier: &str,
        size: usize,
        lookback: Duration,
        now: SystemTime,
    ) -> Result<Arc<PartitionRing>, PartitionRingError> {
        let start = window_start(now, lookback);
        let matches = |e: &LookbackEntry| e.size == size && e.lookback == lookback;
        let hit = self.cache.lock().lookback.get(identifier).and_then(|v| {
            v.iter()
                .find(|e| matches(e))
                .filter(|e| e.valid_from <= start && start <= e.valid_to)
                .map(|e| Arc::clone(&e.ring))
        });
        if let Some(hit) = hit {
            self.cache.count(true);
            return Ok(hit);
        }
        self.cache.count(false);
        let ring = Arc::new(self.shuffle(identifier, size, Some((lookback, now)))?);
        let valid_to = ring
            .desc
            .partitions
            .values()
            .map(|p| p.state_timestamp)
            .filter(|ts| *ts >= start)
            .min()
            .unwrap_or(i64::MAX);
        let fresh = LookbackEntry {
            size,
            lookback,
            ring: Arc::clone(&ring),
            valid_from: start,
            valid_to,
        };
        let mut maps = self.cache.lock();
        let maps = &mut *maps;
        let entries = maps.lookback.entry(identifier.to_owned()).or_default();
        // As dskit: replace an entry only with one whose window starts later.
        if let Some(old) = entries.iter_mut().find(|e| matches(e)) {
            if old.valid_from < start {
                *old = fresh;
            }
        } else if maps.lookback_len < self.cache.capacity {
            entries.push(fresh);
            maps.lookback_len += 1;
        } else {
            if entries.is_empty() {
                maps.lookback.remove(identifier);
            }
            self.cache.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ring)
    }

    /// Counters of this snapshot's shuffle-shard cache.
    pub fn shuffle_shard_cache_stats(&self) -> ShuffleShardCacheStats {
        let maps = self.cache.lock();
        ShuffleShardCacheStats {
            entries: maps.plain_len + maps.lookback_len,
            hits: self.cache.hits.load(Ordering::Relaxed),
            misses: self.cache.misses.load(Ordering::Relaxed),
            dropped: self.cache.dropped.load(Ordering::Relaxed),
        }
    }

    /// dskit's `shuffleShard`, uncached (spec §4.3).
    fn shuffle(
        &self,
        identifier: &str,
        size: usize,
        lookback: Option<(Duration, SystemTime)>,
    ) -> Result<PartitionRing, PartitionRingError> {
        let total = self.desc.partitions.len();
        let mut size = if size == 0 || size >= total {
            total
        } else {
            size
        };
        // dskit applies lookback only when the period is positive.
        let until = match lookback {
            Some((period, now)) if !period.is_zero() => Some(window_start(now, period)),
            _ => None,
        };
        let mut rng = ShardRng::new(shuffle_shard_seed(identifier, ""));
        let n = self.tokens.len();
        // Per dense partition index: 0 = not met yet, INCLUDED or EXCLUDED.
        const INCLUDED: u8 = 1;
        const EXCLUDED: u8 = 2;
        let mut mark = vec![0u8; self.part_ids.len()];
        let mut included = 0usize;
        let pending = PartitionState::PartitionPending as i32;
        let active = PartitionState::PartitionActive as i32;
        while included < size {
            let mut i = search_token(&self.tokens, rng.uint32());
            let mut found = false;
            let mut iterations = 0;
            while !found && iterations < n {
                iterations += 1;
                if i >= n {
                    i %= n;
                }
                let p = self.token_part[i] as usize;
                i += 1;
                if mark[p] != 0 {
                    continue;
                }
                if self.part_state[p] == pending {
                    mark[p] = EXCLUDED;
                    continue;
                }
                let within = until.is_some_and(|u| self.part_ts[p] >= u);
                let include = self.part_state[p] == active || within;
                if include {
                    mark[p] = INCLUDED;
                    included += 1;
                } else {
                    mark[p] = EXCLUDED;
                }
                if within {
                    size += 1;
                }
                if include && !within {
                    found = true;
                }
            }
            if !found {
                break;
            }
        }
        // Child dense index of each included parent partition (order is kept).
        let mut remap = vec![u32::MAX; mark.len()];
        let mut result: BTreeSet<i32> = BTreeSet::new();
        for (p, m) in mark.iter().enumerate() {
            if *m == INCLUDED {
                remap[p] = result.len() as u32;
                result.insert(self.part_ids[p]);
            }
        }
        let mut tokens = Vec::new();
        let mut lister = Vec::new();
        for (t, p) in self.tokens.iter().zip(&self.token_lister) {
            let child = remap[*p as usize];
            if child != u32::MAX {
                tokens.push(*t);
                lister.push(child);
            }
        }
        Ok(PartitionRing::from_parts(
            self.desc.with_partitions(&result),
            result.into_iter().collect(),
            tokens,
            lister,
            self.cache.capacity,
        ))
    }

    /// The indexes of `keys` grouped by the partition each is written to, in ascending
    /// partition order (what dskit's `ActivePartitionBatchRing` makes `DoBatch` do, and
    /// its later `GetKeysByPartition`). Fails on the first key without an ACTIVE
    /// partition.
    pub fn keys_by_partition(
        &self,
        keys: &[u32],
    ) -> Result<Vec<(i32, Vec<usize>)>, PartitionRingError> {
        let mut by: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            by.entry(self.active_partition_for_key(*key)?)
                .or_default()
                .push(i);
        }
        Ok(by.into_iter().collect())
    }

    /// An instance ring with one instance per ACTIVE partition, so the instance ring's
    /// `DoBatch` ([`crate::batch::do_batch`]) sends each key to its partition (dskit's
    /// `ActivePartitionBatchRing`): replication factor 1, each instance's ID and address
    /// the decimal partition ID, state ACTIVE, never heartbeat-unhealthy, and the
    /// partition's tokens, so [`RingSnapshot::get`] returns the partition of
    /// [`Self::active_partition_for_key`]. ACTIVE partitions without tokens are counted as
    /// instances but own no key, as in dskit.
    pub fn active_partition_batch_ring(&self) -> RingSnapshot {
        let mut desc = Desc::new();
        for (id, p) in &self.desc.partitions {
            if !p.is_active() {
                continue;
            }
            let name = id.to_string();
            let inst = desc.add_instance(
                &name,
                &name,
                "",
                p.tokens.clone(),
                InstanceState::Active,
                0,
                i64::MAX,
            );
            inst.timestamp = i64::MAX;
        }
        RingSnapshot::new(
            desc,
            RingConfig {
                replication_factor: 1,
                ..RingConfig::default()
            },
        )
        .expect("replication factor 1 and the default heartbeat timeout are valid")
    }

    /// Number of partitions, any state.
    pub fn partitions_count(&self) -> usize {
        self.desc.partitions.len()
    }

    /// Number of ACTIVE partitions (including ones without tokens, as in dskit).
    pub fn active_partitions_count(&self) -> usize {
        self.active_count
    }

    /// Copies of all partitions, in ascending ID order.
    pub fn partitions(&self) -> Vec<PartitionDesc> {
        self.desc.partitions.values().cloned().collect()
    }

    /// The partition `id`, if present.
    pub fn partition(&self, id: i32) -> Option<&PartitionDesc> {
        self.desc.partitions.get(&id)
    }

    /// All partition IDs, ascending.
    pub fn partition_ids(&self) -> Vec<i32> {
        self.desc.partitions.keys().copied().collect()
    }

    fn ids_in_state(&self, state: PartitionState) -> Vec<i32> {
        self.desc
            .partitions
            .iter()
            .filter(|(_, p)| p.state == state as i32)
            .map(|(id, _)| *id)
            .collect()
    }

    /// PENDING partition IDs, ascending.
    pub fn pending_partition_ids(&self) -> Vec<i32> {
        self.ids_in_state(PartitionState::PartitionPending)
    }

    /// ACTIVE partition IDs, ascending.
    pub fn active_partition_ids(&self) -> Vec<i32> {
        self.ids_in_state(PartitionState::PartitionActive)
    }

    /// INACTIVE partition IDs, ascending.
    pub fn inactive_partition_ids(&self) -> Vec<i32> {
        self.ids_in_state(PartitionState::PartitionInactive)
    }

    /// Partitions per state (see [`PartitionRingDesc::count_partitions_by_state`]).
    pub fn count_partitions_by_state(&self) -> BTreeMap<PartitionState, usize> {
        self.desc.count_partitions_by_state()
    }

    /// Owner IDs of `partition`, sorted, any owner state; empty if none.
    pub fn partition_owner_ids(&self, partition: i32) -> &[String] {
        self.owners_by_partition
            .get(&partition)
            .map_or(&[], Vec::as_slice)
    }

    /// Owner IDs of `partition` with the multi-partition suffix (everything from the last
    /// `/`) removed, in owner-ID order (dskit's `MultiPartitionOwnerIDs`).
    pub fn multi_partition_owner_ids(&self, partition: i32) -> Vec<&str> {
        self.partition_owner_ids(partition)
            .iter()
            .map(|id| id.rsplit_once('/').map_or(id.as_str(), |(head, _)| head))
            .collect()
    }

    /// The key ranges partition `partition` owns in this ring, whatever the partitions'
    /// states (dskit's `GetTokenRangesForPartition`; call it on a shuffle shard for the
    /// effective ownership). A token `t` owns `[previous ring token, t - 1]`; adjacent
    /// ranges are merged and the wrap-around range is split at 0.
    pub fn get_token_ranges_for_partition(
        &self,
        partition: i32,
    ) -> Result<TokenRanges, PartitionRingError> {
        let p = self
            .desc
            .partitions
            .get(&partition)
            .ok_or(PartitionRingError::PartitionDoesNotExist)?;
        let mut ranges: Vec<u32> = Vec::with_capacity(2 * (p.tokens.len() + 1));
        let add = |ranges: &mut Vec<u32>, start: u32, end: u32| {
            if let Some(last) = ranges.last_mut()
                && *last == start.wrapping_sub(1)
            {
                *last = end;
                return;
            }
            ranges.push(start);
            ranges.push(end);
        };
        let mut owns_last = false;
        let mut start_of_last = 0u32;
        // dskit narrows the searched slice as it goes; `base` is where it starts.
        let mut base = 0usize;
        for (iter, &t) in p.tokens.iter().enumerate() {
            let last_owned = t.wrapping_sub(1);
            let view = &self.tokens[base..];
            let ix = search_token(view, last_owned);
            if ix == 0 {
                if iter > 0 {
                    return Err(PartitionRingError::InconsistentTokensInfo);
                }
                let prev = *view
                    .last()
                    .ok_or(PartitionRingError::InconsistentTokensInfo)?;
                owns_last = true;
                start_of_last = prev;
                if t > 0 {
                    add(&mut ranges, 0, last_owned);
                }
            } else {
                add(&mut ranges, view[ix - 1], last_owned);
            }
            base += ix;
        }
        if owns_last {
            add(&mut ranges, start_of_last, u32::MAX);
        }
        Ok(TokenRanges::from_sorted(ranges))
    }
}

impl From<PartitionRingDesc> for PartitionRing {
    fn from(desc: PartitionRingDesc) -> Self {
        PartitionRing::new(desc)
    }
}
